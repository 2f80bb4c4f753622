//! The orphan sweep: a background job on every replica that removes photo files no committed
//! row references. Requests never delete a file (a twin upload of the same bytes may be about
//! to commit a row pointing at it); they note candidates before writing (`store::note_candidates`)
//! and this job settles them once they are older than the grace period.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::storage::{ContentHash, PhotoStore};
use super::store;

/// How long a candidate waits before the sweep may remove its file: far longer than any
/// upload takes from noting its files to committing its rows (requests time out in 30 s).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// The shortest grace `CITYPIN_PHOTO_ORPHAN_GRACE_SECS` accepts.
pub const MIN_GRACE: Duration = Duration::from_secs(300);
/// How often each replica sweeps.
pub const EVERY: Duration = Duration::from_secs(600);
/// Candidates claimed per transaction: the transaction holds their rows while their files are
/// removed, so it stays short.
pub const BATCH: i64 = 32;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Files removed: no row referenced them.
    pub removed: usize,
    /// Candidates dropped because a row references their file (kept).
    pub kept: usize,
}

/// Why a sweep stopped early; what it settled before is committed, the rest waits for the
/// next round.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("photo sweep database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("photo sweep could not remove a file: {0}")]
    Store(std::io::Error),
}

/// Settles every candidate older than `grace`, `batch` at a time, each batch in one short
/// transaction: claim (skipping rows another replica holds), check references, remove the
/// unreferenced files, drop the settled rows, commit. Safe to run on every replica at once.
pub async fn sweep(
    pool: &PgPool,
    storage: &dyn PhotoStore,
    grace: Duration,
    batch: i64,
) -> Result<Swept, SweepError> {
    let mut total = Swept::default();
    loop {
        let mut tx = pool.begin().await?;
        let claimed = store::claim_candidates(&mut tx, grace.as_secs_f64(), batch.max(1)).await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        let referenced = store::referenced_among(&mut tx, &claimed).await?;
        let mut settled = Vec::with_capacity(claimed.len());
        let mut failed = None;
        for hex in claimed {
            if referenced.contains(&hex) {
                total.kept += 1;
                settled.push(hex);
                continue;
            }
            let Some(hash) = ContentHash::parse(&hex) else {
                settled.push(hex);
                continue;
            };
            // Removed while the row is locked: an upload of the same bytes waits on the row,
            // then writes the file again.
            match storage.remove(hash).await {
                Ok(()) => {
                    total.removed += 1;
                    settled.push(hex);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        store::drop_candidates(&mut tx, &settled).await?;
        tx.commit().await?;
        if let Some(e) = failed {
            return Err(SweepError::Store(e));
        }
    }
}

/// Sweeps every [`EVERY`] until the pool is closed.
pub fn spawn(pool: PgPool, storage: Arc<dyn PhotoStore>, grace: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = pool.close_event() => return,
            }
            match sweep(&pool, storage.as_ref(), grace, BATCH).await {
                Ok(s) if s.removed > 0 => {
                    tracing::info!(
                        files = s.removed,
                        kept = s.kept,
                        "removed unreferenced photo files"
                    );
                }
                Ok(s) => tracing::debug!(kept = s.kept, "photo sweep found nothing to remove"),
                Err(_) if pool.is_closed() => return,
                Err(e) => tracing::warn!(error = %e, "photo sweep stopped early; will retry"),
            }
        }
    });
}
