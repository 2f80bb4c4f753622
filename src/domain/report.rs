//! A stored report as read back from `PostGIS`: what every capability reads, none owns.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Status;
use crate::geo::Position;

/// A stored report. Holds no personal data (the reporter lives in `reporters`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Report {
    pub id: Uuid,
    pub reference: String,
    pub external_id: Option<String>,
    pub service_code: String,
    pub status: Status,
    pub status_notes: Option<String>,
    pub description: String,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub agency: Option<String>,
    pub channel: String,
    pub lon: f64,
    pub lat: f64,
    pub h3_cell: i64,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub duplicate_of: Option<Uuid>,
    pub duplicate_of_reference: Option<String>,
    pub supporters: i32,
    pub media_url: Option<String>,
    pub attributes: serde_json::Value,
    pub hidden: bool,
    pub change_seq: i64,
}

impl Report {
    pub fn status(&self) -> Status {
        self.status
    }

    pub fn position(&self) -> Position {
        Position::new(self.lon, self.lat).unwrap_or_else(|_| {
            unreachable!("reports::store hands out only rows whose location maps")
        })
    }
}
