//! The spatial index's SQL: the lean columns it keeps, read in bulk at start-up and by id or
//! change number afterwards.

use std::sync::Arc;

use futures_util::TryStreamExt;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::compact::{Names, Record, reference_bytes};
use crate::catalogue::Catalogue;
use crate::domain::Status;
use crate::geo::Position;

/// The columns of an [`IndexRow`] over `reports r`, for [`nearby`] (built at run time).
const COLUMNS: &str = "r.id, r.reference, ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
    r.service_code, r.status, r.requested_at, r.updated_at, r.supporters, r.duplicate_of,
    r.h3_cell, r.change_seq, r.hidden";

/// `SELECT` [`COLUMNS`] `FROM reports r` + `$rest`, checked at compile time: the same columns
/// as one literal (sqlx's macros take literals only), with the overrides they need (`lon`/`lat`
/// stay nullable: an empty point has none).
macro_rules! select_index_rows {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            IndexRow,
            r#"SELECT r.id, r.reference, ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
                r.service_code, r.status AS "status: Status", r.requested_at, r.updated_at,
                r.supporters, r.duplicate_of, r.h3_cell, r.change_seq, r.hidden
             FROM reports r "# + $rest
            $(, $arg)*
        )
    };
}

/// One report as the index reads it.
#[derive(sqlx::FromRow)]
pub struct IndexRow {
    pub id: Uuid,
    pub reference: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub service_code: String,
    pub status: Status,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub supporters: i32,
    pub duplicate_of: Option<Uuid>,
    pub h3_cell: i64,
    pub change_seq: i64,
    pub hidden: bool,
}

impl IndexRow {
    /// The row's position, or `None` (logged and counted) when its location maps to none: the
    /// index skips such a row rather than fail a load or a sync.
    pub(crate) fn position(&self) -> Option<Position> {
        crate::ops::metrics::stored_position("spatial_index", self.id, self.lon, self.lat)
    }

    /// The query result type, as the index would return it for this row (`None`: unmappable).
    pub(crate) fn to_incident(&self, catalogue: &Catalogue) -> Option<super::Incident> {
        Some(super::Incident {
            id: self.id,
            reference: Arc::from(self.reference.as_str()),
            position: self.position()?,
            service_code: Arc::from(self.service_code.as_str()),
            group: Arc::from(super::group_of(catalogue, &self.service_code)),
            status: self.status,
            requested_at: self.requested_at,
            updated_at: self.updated_at,
            supporters: self.supporters,
            duplicate_of: self.duplicate_of,
            h3_cell: self.h3_cell as u64,
            change_seq: self.change_seq,
        })
    }

    /// The compact record of this row (`None`: unmappable).
    pub(crate) fn to_record(&self, catalogue: &Catalogue, names: &Names) -> Option<Record> {
        Some(Record {
            id: self.id,
            duplicate_of: self.duplicate_of.unwrap_or(Uuid::nil()),
            position: self.position()?,
            h3_cell: self.h3_cell as u64,
            change_seq: self.change_seq,
            requested_us: self.requested_at.timestamp_micros(),
            updated_us: self.updated_at.timestamp_micros(),
            supporters: self.supporters,
            reference: reference_bytes(&self.reference),
            service: names.intern(&self.service_code),
            group: names.intern(super::group_of(catalogue, &self.service_code)),
            status: self.status as u8,
        })
    }
}

/// Every report not hidden, handed to `each` one row at a time as it arrives: a million rows
/// never sit in memory together, so their strings do not stay behind in the allocator's free
/// lists once the index holds its compact records (that was ~100 B of RSS per incident).
pub async fn for_each_visible(
    pool: &PgPool,
    mut each: impl FnMut(IndexRow),
) -> Result<(), sqlx::Error> {
    let mut rows = select_index_rows!("WHERE NOT r.hidden").fetch(pool);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}

/// The current rows of these reports, hidden ones included (the index removes those).
pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<IndexRow>, sqlx::Error> {
    select_index_rows!("WHERE r.id = ANY($1)", ids)
        .fetch_all(pool)
        .await
}

/// Every report changed after change number `after`, hidden ones included, oldest first.
pub async fn changed_since(pool: &PgPool, after: i64) -> Result<Vec<IndexRow>, sqlx::Error> {
    select_index_rows!("WHERE r.change_seq > $1 ORDER BY r.change_seq", after)
        .fetch_all(pool)
        .await
}

/// A row of [`nearby`] with its distance from the query centre.
#[derive(sqlx::FromRow)]
pub struct NearbyRow {
    #[sqlx(flatten)]
    pub row: IndexRow,
    pub distance_m: f64,
}

/// The index's nearby query answered by `PostGIS` instead: visible reports within `radius_m`
/// of `center` with one of `statuses` (and one of `service_codes` unless empty), nearest
/// first, ties by id. Spherical (`use_spheroid = false`) so distances match the index's
/// haversine; the verification and benchmark baseline, not the serving path.
pub async fn nearby(
    pool: &PgPool,
    center: Position,
    radius_m: f64,
    limit: usize,
    statuses: &[Status],
    service_codes: &[String],
) -> Result<Vec<NearbyRow>, sqlx::Error> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS}, ST_Distance(r.location::geography, p.g::geography, false) AS distance_m \
         FROM reports r, (SELECT ST_SetSRID(ST_MakePoint("
    ));
    q.push_bind(center.lon())
        .push(", ")
        .push_bind(center.lat())
        .push("), 4326) AS g) p WHERE NOT r.hidden AND ");
    crate::db::sql::push_circle_prefilter(&mut q, center, radius_m);
    q.push(" AND r.status = ANY(").push_bind(statuses).push(")");
    if !service_codes.is_empty() {
        q.push(" AND r.service_code = ANY(")
            .push_bind(service_codes.to_vec())
            .push(")");
    }
    q.push(" AND ST_DWithin(r.location::geography, p.g::geography, ")
        .push_bind(radius_m)
        .push(", false) ORDER BY distance_m, r.id LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    q.build_query_as().fetch_all(pool).await
}
