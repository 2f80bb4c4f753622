//! All SQL of the exports: incidents selected by the shared filter, streamed or paged by key.
//! The `reporters` table is never named here: no query can reach personal data.

use futures_util::StreamExt;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::model::{IncidentFilter, IncidentRow, TimeFilter, is_unmappable};

/// The columns of an [`IncidentRow`], public and operational; never personal data. Read by
/// position: keep this order and `IncidentRow::from_row` in step.
pub(crate) const COLUMNS: &str =
    "r.id, r.reference, r.service_code, r.status, r.status_notes, r.description,
    r.address, r.zipcode, r.channel, ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
    r.requested_at, r.updated_at, r.closed_at, r.supporters, r.duplicate_of,
    r.agency, r.due_at, r.external_id, r.hidden";

/// `WHERE` clauses for a filter, every value a bound parameter.
pub(crate) fn push_filter(q: &mut QueryBuilder<'static, Postgres>, f: &IncidentFilter) {
    q.push(" WHERE TRUE");
    if f.match_nothing {
        q.push(" AND FALSE");
    }
    if !f.include_hidden {
        q.push(" AND NOT r.hidden");
    }
    if let Some(b) = f.bbox {
        crate::db::sql::push_bbox_filter(q, b, "ST_Intersects(r.location, ", ")");
    }
    match f.time {
        Some(TimeFilter::Instant(t)) => {
            q.push(" AND r.requested_at = ").push_bind(t);
        }
        Some(TimeFilter::Interval { start, end }) => {
            if let Some(t) = start {
                q.push(" AND r.requested_at >= ").push_bind(t);
            }
            if let Some(t) = end {
                q.push(" AND r.requested_at <= ").push_bind(t);
            }
        }
        None => {}
    }
    crate::db::sql::push_code_and_status_filter(q, &f.service_codes, &f.statuses);
}

/// The query of a whole export, in no particular order (so `PostgreSQL` can stream it from a
/// sequential or bitmap scan without sorting). Run it with [`stream`].
pub fn export_query(f: &IncidentFilter) -> QueryBuilder<'static, Postgres> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM reports r"));
    push_filter(&mut q, f);
    q
}

/// Rows of an export query as they arrive from `PostgreSQL`: nothing is collected.
pub fn stream<'a>(
    pool: &'a PgPool,
    q: &'a mut QueryBuilder<'static, Postgres>,
) -> BoxStream<'a, Result<IncidentRow, sqlx::Error>> {
    skip_unmappable(q.build_query_as::<IncidentRow>().fetch(pool))
}

/// Drops the rows whose location maps to no position (each logged and counted as it was
/// decoded), so one bad row never fails a whole export or page.
fn skip_unmappable(
    rows: BoxStream<'_, Result<IncidentRow, sqlx::Error>>,
) -> BoxStream<'_, Result<IncidentRow, sqlx::Error>> {
    rows.filter(|r| std::future::ready(!matches!(r, Err(e) if is_unmappable(e))))
        .boxed()
}

/// One page in id order after `after` (keyset pagination: stable while rows are added, and
/// as fast on the last page as on the first).
pub async fn page(
    pool: &PgPool,
    f: &IncidentFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<IncidentRow>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM reports r"));
    push_filter(&mut q, f);
    if let Some(after) = after {
        q.push(" AND r.id > ").push_bind(after);
    }
    q.push(" ORDER BY r.id LIMIT ").push_bind(limit);
    skip_unmappable(q.build_query_as::<IncidentRow>().fetch(pool))
        .try_collect()
        .await
}

/// How many incidents match a filter (OGC `numberMatched`).
pub async fn count(pool: &PgPool, f: &IncidentFilter) -> Result<i64, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM reports r");
    push_filter(&mut q, f);
    q.build_query_scalar().fetch_one(pool).await
}

/// One incident by id, if the filter (hidden or not) lets the caller see it.
pub async fn one(
    pool: &PgPool,
    id: Uuid,
    include_hidden: bool,
) -> Result<Option<IncidentRow>, sqlx::Error> {
    // Built at run time like the others: `IncidentRow::from_row` is what skips an unmappable
    // row (a checked macro would build the struct itself).
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM reports r WHERE r.id = "));
    q.push_bind(id)
        .push(" AND (NOT r.hidden OR ")
        .push_bind(include_hidden)
        .push(")");
    match q.build_query_as::<IncidentRow>().fetch_optional(pool).await {
        Err(e) if is_unmappable(&e) => Ok(None),
        other => other,
    }
}
