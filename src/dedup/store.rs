//! All SQL of the dedup capability: the area lock, the in-transaction candidate look-up, the
//! duplicate link and its undo, and the "me too" claims.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::geo::Position;

/// Takes the transaction-scoped advisory locks for `keys`, in ascending order so that two
/// intakes wanting overlapping sets never wait on each other in a cycle.
pub async fn lock_area(conn: &mut PgConnection, keys: &[i64]) -> Result<(), sqlx::Error> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(k)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// An open report that might be the parent of a new one, read inside the intake transaction.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: Uuid,
    pub service_code: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub requested_at: DateTime<Utc>,
}

/// Open, visible reports of `codes` inside the boxes around a point, reported since `since`.
/// The caller measures the exact distance (the same haversine as the live index).
pub async fn candidates(
    conn: &mut PgConnection,
    boxes: &[crate::geo::BBox],
    codes: &[String],
    since: DateTime<Utc>,
    exclude: Uuid,
) -> Result<Vec<CandidateRow>, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT r.id, r.service_code, r.description, ST_X(r.location) AS lon,
             ST_Y(r.location) AS lat, r.requested_at
         FROM reports r
         WHERE r.status IN ('new', 'acknowledged', 'scheduled', 'in_progress') AND NOT r.hidden
           AND r.service_code = ANY(",
    );
    q.push_bind(codes.to_vec())
        .push(") AND r.requested_at >= ")
        .push_bind(since)
        .push(" AND r.id <> ")
        .push_bind(exclude)
        .push(" AND (");
    for (i, b) in boxes.iter().enumerate() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push("r.location && ST_MakeEnvelope(")
            .push_bind(b.min_lon)
            .push(", ")
            .push_bind(b.min_lat)
            .push(", ")
            .push_bind(b.max_lon)
            .push(", ")
            .push_bind(b.max_lat)
            .push(", 4326)");
    }
    q.push(") LIMIT 500");
    q.build_query_as().fetch_all(conn).await
}

impl CandidateRow {
    pub fn position(&self) -> Option<Position> {
        Position::new(self.lon, self.lat).ok()
    }
}

/// Links `child` to `parent` as its duplicate: closed with status `duplicate`.
pub async fn mark_duplicate(
    conn: &mut PgConnection,
    child: Uuid,
    parent: Uuid,
    note: &str,
) -> Result<(), sqlx::Error> {
    crate::reports::store::set_status(
        conn,
        child,
        crate::reports::model::Status::Duplicate,
        Some(note),
        Some(parent),
    )
    .await
}

/// Adds `n` (may be negative) to a report's supporter count, never below zero.
pub async fn add_supporters(conn: &mut PgConnection, id: Uuid, n: i32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET supporters = GREATEST(supporters + $2, 0), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(n)
    .execute(conn)
    .await?;
    Ok(())
}

/// Subscribes the reporter of `child` (if it has one) to `parent`'s updates.
pub async fn subscribe_reporter(
    conn: &mut PgConnection,
    child: Uuid,
    parent: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO report_subscriptions (report_id, reporter_id)
         SELECT $2, reporter_id FROM reports WHERE id = $1 AND reporter_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(child)
    .bind(parent)
    .execute(conn)
    .await?;
    Ok(())
}

/// The `data` of the latest link event (`duplicate` or `merge`) of a report: what unmerge
/// needs to restore.
pub async fn last_link(
    conn: &mut PgConnection,
    child: Uuid,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT data FROM report_events WHERE report_id = $1 AND kind IN ('duplicate', 'merge')
         ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(child)
    .fetch_optional(conn)
    .await
}

/// Restores a duplicate's previous status and unlinks it from its parent.
pub async fn unlink(
    conn: &mut PgConnection,
    child: Uuid,
    status: crate::reports::model::Status,
    note: &str,
) -> Result<(), sqlx::Error> {
    crate::reports::store::set_status(conn, child, status, Some(note), None).await
}

/// Records one "me too" by `key_hash`; false when that supporter was already counted.
pub async fn claim_support(
    conn: &mut PgConnection,
    report: Uuid,
    key_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO report_supports (report_id, key_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(report)
    .bind(key_hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Locks two reports in id order (so concurrent merges cannot deadlock) and returns them in
/// the order asked.
pub async fn lock_pair(
    conn: &mut PgConnection,
    a: Uuid,
    b: Uuid,
) -> Result<
    (
        Option<crate::reports::model::Report>,
        Option<crate::reports::model::Report>,
    ),
    sqlx::Error,
> {
    if a < b {
        let ra = crate::reports::store::lock(conn, a).await?;
        let rb = crate::reports::store::lock(conn, b).await?;
        Ok((ra, rb))
    } else {
        let rb = crate::reports::store::lock(conn, b).await?;
        let ra = crate::reports::store::lock(conn, a).await?;
        Ok((ra, rb))
    }
}
