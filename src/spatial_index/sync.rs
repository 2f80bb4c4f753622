//! Keeps the index coherent with `PostGIS` when other processes write: a listener on the
//! `citypin_reports` channel (the `reports_touch` trigger sends `<id> <change_seq>` on every
//! insert and update) and a periodic reconciliation by change number, which also runs after
//! the listener reconnects, so a lost notification or connection leaves the index stale for
//! at most one reconciliation interval.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::Notify;
use uuid::Uuid;

use super::SpatialIndex;
use super::store::{self, IndexRow};
use crate::catalogue::Catalogue;

/// The channel the `reports_touch` trigger notifies.
pub const CHANNEL: &str = "citypin_reports";

/// At most this many ids are fetched per round trip.
const BATCH: usize = 512;

impl SpatialIndex {
    /// Applies the current rows of reports: visible ones are upserted, hidden ones removed;
    /// a row older than what the index holds is ignored.
    pub fn apply_rows(&self, rows: &[IndexRow], catalogue: &Catalogue) {
        for row in rows {
            if row.hidden {
                self.remove_at(row.id, row.change_seq);
            } else if let Some(record) = row.to_record(catalogue, &self.names) {
                self.apply(row.id, super::Change::Live(record));
            } else {
                // Unmappable (logged and counted): an older mappable version must not linger.
                self.remove_at(row.id, row.change_seq);
            }
        }
    }

    /// Reads every report changed since the mark before last and applies it; returns how many
    /// rows were read.
    pub async fn reconcile(
        &self,
        pool: &PgPool,
        catalogue: &Catalogue,
    ) -> Result<usize, sqlx::Error> {
        let from = self.marks.lock().unwrap_or_else(PoisonError::into_inner).0;
        let rows = store::changed_since(pool, from).await?;
        self.apply_rows(&rows, catalogue);
        let newest = self.last_seq();
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        *marks = (marks.1, newest);
        Ok(rows.len())
    }

    /// Fetches and applies the reports named by notifications (`<id> <change_seq>`), skipping
    /// those the index already holds at that change or newer (its own writes, mostly).
    pub async fn apply_notifications(
        &self,
        pool: &PgPool,
        catalogue: &Catalogue,
        payloads: &[String],
    ) -> Result<usize, sqlx::Error> {
        let mut ids: Vec<Uuid> = payloads
            .iter()
            .filter_map(|p| {
                let (id, seq) = p.split_once(' ')?;
                let (id, seq) = (Uuid::parse_str(id).ok()?, seq.parse::<i64>().ok()?);
                (self.seq_of(id).is_none_or(|held| held < seq)).then_some(id)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(BATCH) {
            let rows = store::by_ids(pool, chunk).await?;
            self.apply_rows(&rows, catalogue);
        }
        Ok(ids.len())
    }
}

/// Starts the listener, the reconciler and the folder; they stop when `pool` is closed.
pub fn spawn(
    index: Arc<SpatialIndex>,
    pool: PgPool,
    catalogue: Arc<Catalogue>,
    reconcile_every: Duration,
) {
    let wake = Arc::new(Notify::new());
    tokio::spawn(listen(
        index.clone(),
        pool.clone(),
        catalogue.clone(),
        wake.clone(),
    ));
    tokio::spawn(reconcile_loop(
        index,
        pool,
        catalogue,
        reconcile_every,
        wake,
    ));
}

async fn listen(
    index: Arc<SpatialIndex>,
    pool: PgPool,
    catalogue: Arc<Catalogue>,
    wake: Arc<Notify>,
) {
    // Its own one-connection pool, so listening never takes a connection from requests.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut backoff = Duration::from_millis(100);
    while !pool.is_closed() {
        let mut listener = match connect(&own).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "spatial index listener cannot connect; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = pool.close_event() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // Whatever was committed while not listening is caught by a reconciliation.
        wake.notify_one();
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                // The listener holds `own`'s one connection: close waits for it to come back.
                () = pool.close_event() => { drop(listener); own.close().await; return; }
            };
            match next {
                Ok(Some(first)) => {
                    let mut payloads = vec![first.payload().to_owned()];
                    while let Some(n) = listener.next_buffered() {
                        payloads.push(n.payload().to_owned());
                    }
                    if let Err(e) = index
                        .apply_notifications(&pool, &catalogue, &payloads)
                        .await
                    {
                        tracing::warn!(error = %e, "spatial index could not fetch notified reports; reconciling");
                        wake.notify_one();
                    }
                }
                Ok(None) => {
                    // The connection dropped and was re-established: notifications in between
                    // are lost.
                    tracing::warn!("spatial index listener reconnected; reconciling");
                    wake.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "spatial index listener failed; reconnecting");
                    break;
                }
            }
        }
    }
    own.close().await;
}

async fn connect(own: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(own).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn reconcile_loop(
    index: Arc<SpatialIndex>,
    pool: PgPool,
    catalogue: Arc<Catalogue>,
    every: Duration,
    wake: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
            () = pool.close_event() => return,
        }
        match index.reconcile(&pool, &catalogue).await {
            Ok(n) => tracing::debug!(rows = n, "spatial index reconciled"),
            Err(e) if pool.is_closed() => {
                tracing::debug!(error = %e, "pool closed; reconciler stopping");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "spatial index reconciliation failed; will retry"),
        }
        if index.needs_fold() {
            let index = index.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || index.fold()).await {
                tracing::error!(error = %e, "spatial index fold panicked");
            }
        }
    }
}
