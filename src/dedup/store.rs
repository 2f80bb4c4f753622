//! All SQL of the dedup capability: the area lock and the in-transaction candidate look-up
//! (the arguments and rows of the call intake makes together with its idempotency claim), the
//! duplicate link and its undo, and the "me too" claims.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::geo::Position;

/// An open report that might be the parent of a new one, read inside the intake transaction.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: Uuid,
    pub reference: String,
    pub service_code: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub requested_at: DateTime<Utc>,
}

/// Where an intake looks for duplicates: the area locks to take and the candidate filter.
#[derive(Clone, Debug)]
pub struct Area {
    pub lock_keys: Vec<i64>,
    pub boxes: Vec<crate::geo::BBox>,
    pub codes: Vec<String>,
    pub since: DateTime<Utc>,
    pub exclude: Uuid,
}

/// The candidates of `area` alone (no key to claim), under its locks: the same statement as
/// intake's first, for decisions made on a report already stored.
pub async fn candidates(
    conn: &mut PgConnection,
    area: &Area,
) -> Result<Vec<CandidateRow>, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT * FROM intake_claim_and_candidates(NULL, NULL, NULL");
    push_area_args(&mut q, Some(area));
    Ok(read_candidates(q, conn).await?.1)
}

/// The area arguments of `intake_claim_and_candidates`, closing its call: the sorted lock
/// keys, the codes, the window's start, the report to leave out and the boxes (all `NULL`
/// without an area).
pub fn push_area_args(q: &mut QueryBuilder<'_, Postgres>, area: Option<&Area>) {
    match area {
        Some(a) => {
            let mut keys = a.lock_keys.clone();
            keys.sort_unstable();
            keys.dedup();
            q.push(", ")
                .push_bind(keys)
                .push(", ")
                .push_bind(a.codes.clone())
                .push(", ")
                .push_bind(a.since)
                .push(", ")
                .push_bind(a.exclude)
                .push(", ST_Collect(ARRAY[");
            // Near the antimeridian the boxes split in two; their collection's bounding box is
            // then a whole band of latitudes: slower, still correct, and rare.
            for (i, b) in a.boxes.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                crate::db::sql::push_envelope(q, b);
            }
            q.push("]))");
        }
        None => {
            q.push(", NULL, NULL, NULL, NULL, NULL)");
        }
    }
}

/// Runs a built `intake_claim_and_candidates` call: whether the key was claimed (true when
/// there was none) and the candidates.
pub async fn read_candidates(
    mut q: QueryBuilder<'_, Postgres>,
    conn: &mut PgConnection,
) -> Result<(bool, Vec<CandidateRow>), sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        claimed: bool,
        id: Option<Uuid>,
        reference: Option<String>,
        service_code: Option<String>,
        description: Option<String>,
        lon: Option<f64>,
        lat: Option<f64>,
        requested_at: Option<DateTime<Utc>>,
    }
    let rows: Vec<Row> = q.build_query_as().fetch_all(conn).await?;
    let claimed = rows.iter().all(|r| r.claimed);
    let candidates = rows
        .into_iter()
        .filter_map(|r| {
            Some(CandidateRow {
                id: r.id?,
                reference: r.reference?,
                service_code: r.service_code?,
                description: r.description?,
                lon: r.lon?,
                lat: r.lat?,
                requested_at: r.requested_at?,
            })
        })
        .collect();
    Ok((claimed, candidates))
}

impl CandidateRow {
    pub fn position(&self) -> Option<Position> {
        Position::new(self.lon, self.lat).ok()
    }
}

/// What one duplicate link writes.
pub struct LinkWrite<'a> {
    pub child: Uuid,
    pub parent: Uuid,
    /// Added to the parent's supporters.
    pub added: i32,
    /// `duplicate` (automatic) or `merge` (staff).
    pub kind: &'a str,
    pub from_status: crate::domain::Status,
    pub status_note: &'a str,
    pub child_note: &'a str,
    pub parent_note: &'a str,
    pub actor: crate::domain::Actor<'a>,
    pub data: &'a serde_json::Value,
}

/// Writes a duplicate link in one statement (intake's hot path counts round trips): the
/// child closed as `duplicate` of the parent, its reporter subscribed to the parent, the
/// parent's supporters raised, an event on both, and an outbox event.
pub async fn link(conn: &mut PgConnection, w: &LinkWrite<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH child AS (
             UPDATE reports SET status = 'duplicate', status_notes = $4, updated_at = now(),
                 closed_at = COALESCE(closed_at, now()), duplicate_of = $2
             WHERE id = $1 RETURNING reporter_id),
         sub AS (
             INSERT INTO report_subscriptions (report_id, reporter_id)
             SELECT $2, reporter_id FROM child WHERE reporter_id IS NOT NULL
             ON CONFLICT DO NOTHING),
         par AS (
             UPDATE reports SET supporters = GREATEST(supporters + $3, 0), updated_at = now()
             WHERE id = $2),
         ev AS (
             INSERT INTO report_events
                 (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
             VALUES ($5, $1, $7, $8, 'duplicate', $9, $11, $12, $13),
                    ($6, $2, $7, NULL, NULL, $10, $11, $12, $13))
         INSERT INTO outbox (id, report_id, kind, payload)
         VALUES ($14, $1, 'report.duplicate', $13)",
        w.child,
        w.parent,
        w.added,
        w.status_note,
        Uuid::now_v7(),
        Uuid::now_v7(),
        w.kind,
        w.from_status.as_str(),
        w.child_note,
        w.parent_note,
        w.actor.role,
        w.actor.token,
        w.data,
        Uuid::now_v7(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `n` (may be negative) to a report's supporter count, never below zero.
pub async fn add_supporters(conn: &mut PgConnection, id: Uuid, n: i32) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE reports SET supporters = GREATEST(supporters + $2, 0), updated_at = now() WHERE id = $1",
        id,
        n
    )
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
    sqlx::query_scalar!(
        "SELECT data FROM report_events WHERE report_id = $1 AND kind IN ('duplicate', 'merge')
         ORDER BY at DESC, id DESC LIMIT 1",
        child
    )
    .fetch_optional(conn)
    .await
}

/// Restores a duplicate's previous status and unlinks it from its parent.
pub async fn unlink(
    conn: &mut PgConnection,
    child: Uuid,
    status: crate::domain::Status,
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
    let done = sqlx::query!(
        "INSERT INTO report_supports (report_id, key_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        report,
        key_hash
    )
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
) -> Result<(Option<crate::domain::Report>, Option<crate::domain::Report>), sqlx::Error> {
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
