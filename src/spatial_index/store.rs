//! The spatial index's SQL: the lean columns it keeps, read in bulk at start-up and by id or
//! change number afterwards.

use sqlx::PgPool;
use uuid::Uuid;

use super::compact::{Names, Record, reference_bytes};
use crate::geo::Position;
use crate::reports::catalogue::Catalogue;
use crate::reports::model::StatusColumn;

const COLUMNS: &str = "r.id, r.reference, ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
    r.service_code, r.status, r.requested_at, r.updated_at, r.supporters, r.duplicate_of,
    r.h3_cell, r.change_seq, r.hidden";

/// One report as the index reads it.
#[derive(sqlx::FromRow)]
pub struct IndexRow {
    pub id: Uuid,
    pub reference: String,
    pub lon: f64,
    pub lat: f64,
    pub service_code: String,
    #[sqlx(try_from = "String")]
    pub status: StatusColumn,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub supporters: i32,
    pub duplicate_of: Option<Uuid>,
    pub h3_cell: i64,
    pub change_seq: i64,
    pub hidden: bool,
}

impl IndexRow {
    pub(crate) fn to_record(&self, catalogue: &Catalogue, names: &Names) -> Record {
        Record {
            id: self.id,
            duplicate_of: self.duplicate_of.unwrap_or(Uuid::nil()),
            // The CHECK constraint on `location` keeps stored coordinates in range.
            position: Position::new(self.lon, self.lat)
                .unwrap_or_else(|_| unreachable!("reports_location_valid")),
            h3_cell: self.h3_cell as u64,
            change_seq: self.change_seq,
            requested_us: self.requested_at.timestamp_micros(),
            updated_us: self.updated_at.timestamp_micros(),
            supporters: self.supporters,
            reference: reference_bytes(&self.reference),
            service: names.intern(&self.service_code),
            group: names.intern(super::group_of(catalogue, &self.service_code)),
            status: self.status.0 as u8,
        }
    }
}

/// Every report not hidden.
pub async fn load_visible(pool: &PgPool) -> Result<Vec<IndexRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM reports r WHERE NOT r.hidden"
    ))
    .fetch_all(pool)
    .await
}

/// The current rows of these reports, hidden ones included (the index removes those).
pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<IndexRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM reports r WHERE r.id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Every report changed after change number `after`, hidden ones included, oldest first.
pub async fn changed_since(pool: &PgPool, after: i64) -> Result<Vec<IndexRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM reports r WHERE r.change_seq > $1 ORDER BY r.change_seq"
    ))
    .bind(after)
    .fetch_all(pool)
    .await
}
