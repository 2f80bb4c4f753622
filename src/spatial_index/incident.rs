//! What the index hands out of one incident: [`Incident`], built from a committed report, and
//! [`Compact`], copied from the stored record without allocating.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::compact::Record;
use crate::catalogue::Catalogue;
use crate::domain::{Report, Status};
use crate::geo::Position;

/// What the index knows of one incident: public fields only. The query result type; the index
/// itself stores a compact record.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub id: Uuid,
    pub reference: Arc<str>,
    pub position: Position,
    pub service_code: Arc<str>,
    pub group: Arc<str>,
    pub status: Status,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub supporters: i32,
    pub duplicate_of: Option<Uuid>,
    pub h3_cell: u64,
    pub change_seq: i64,
}

impl Incident {
    pub fn from_report(r: &Report, catalogue: &Catalogue) -> Self {
        Self {
            id: r.id,
            reference: Arc::from(r.reference.as_str()),
            position: r.position(),
            service_code: Arc::from(r.service_code.as_str()),
            group: Arc::from(group_of(catalogue, &r.service_code)),
            status: r.status(),
            requested_at: r.requested_at,
            updated_at: r.updated_at,
            supporters: r.supporters,
            duplicate_of: r.duplicate_of,
            h3_cell: r.h3_cell as u64,
            change_seq: r.change_seq,
        }
    }
}

/// What a tile needs of one incident, copied from the compact record without allocating:
/// names are indices into [`SpatialIndex::names`](super::SpatialIndex::names), times
/// microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compact {
    pub id: Uuid,
    pub position: Position,
    pub h3_cell: u64,
    pub requested_us: i64,
    pub supporters: i32,
    reference: [u8; 12],
    pub service: u16,
    pub group: u16,
    pub status: Status,
}

impl Compact {
    pub(super) fn of(r: &Record) -> Self {
        Self {
            id: r.id,
            position: r.position,
            h3_cell: r.h3_cell,
            requested_us: r.requested_us,
            supporters: r.supporters,
            reference: r.reference,
            service: r.service,
            group: r.group,
            status: r.status(),
        }
    }

    /// The public reference (`CP-XXXX-XXXX`), borrowed from the record's bytes.
    pub fn reference(&self) -> &str {
        let len = self.reference.iter().position(|b| *b == 0).unwrap_or(12);
        std::str::from_utf8(&self.reference[..len]).unwrap_or("")
    }
}

/// The group a service belongs to, `Other` for codes the catalogue no longer has.
pub(crate) fn group_of<'a>(catalogue: &'a Catalogue, code: &str) -> &'a str {
    catalogue.get(code).map_or("Other", |s| s.group.as_str())
}
