//! The snapshot schedule's SQL (migration 0060): claim the one row, record a generation.

use std::time::Duration;

use sqlx::{PgConnection, Postgres, Transaction};

/// The claimed schedule row.
pub struct Claimed {
    /// Whether the last generation finished less than the interval ago.
    pub fresh: bool,
}

/// Locks the schedule row for this transaction, or `None` when another replica holds it
/// (it is writing a generation now).
pub async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    interval: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let conn: &mut PgConnection = tx;
    sqlx::query_scalar!(
        r#"SELECT (finished_at IS NOT NULL
                   AND finished_at > now() - make_interval(secs => $1)) AS "fresh!"
           FROM export_snapshots FOR UPDATE SKIP LOCKED"#,
        interval.as_secs_f64()
    )
    .fetch_optional(conn)
    .await
    .map(|fresh| fresh.map(|fresh| Claimed { fresh }))
}

/// Records a finished generation; returns its number.
pub async fn record(tx: &mut Transaction<'_, Postgres>, features: u64) -> Result<i64, sqlx::Error> {
    let conn: &mut PgConnection = tx;
    sqlx::query_scalar!(
        "UPDATE export_snapshots
         SET generation = generation + 1, finished_at = now(), features = $1
         RETURNING generation",
        features as i64
    )
    .fetch_one(conn)
    .await
}
