//! What the reports capability shows: the public view of a report, its history, and the
//! status-change body.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Status;

/// The public view of a report: what anyone may read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReportView {
    pub id: Uuid,
    pub reference: String,
    pub service_code: String,
    pub service_name: String,
    pub group: String,
    pub status: Status,
    pub open311_status: String,
    pub status_notes: Option<String>,
    pub description: String,
    pub address: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub channel: String,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub supporters: i32,
    pub duplicate_of: Option<ParentRef>,
    pub tracking_url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParentRef {
    pub id: Uuid,
    pub reference: String,
}

/// One history event as shown to the public: roles, not names.
#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow)]
pub struct HistoryEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
    pub actor_role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// The body of `POST /api/v1/reports/{id}/status`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeBody {
    pub status: String,
    pub note: Option<String>,
}
