//! Fixtures for the tests of the index and of the capabilities built on it: incidents and a
//! small deterministic generator.

use std::sync::Arc;

use chrono::DateTime;
use uuid::Uuid;

use super::Incident;
use crate::domain::Status;
use crate::geo::Position;

/// A test incident numbered `n` (id `n + 1`, reference `CP-nnnnnnnn`), new and just reported,
/// for the tests of the capabilities built on the index.
pub(crate) fn test_incident(
    n: u32,
    position: Position,
    (service_code, group): (&str, &str),
    status: Status,
) -> Incident {
    let now = chrono::Utc::now();
    Incident {
        id: Uuid::from_u128(u128::from(n) + 1),
        reference: Arc::from(format!("CP-{n:08}").as_str()),
        position,
        service_code: Arc::from(service_code),
        group: Arc::from(group),
        status,
        requested_at: now,
        updated_at: now,
        supporters: 0,
        duplicate_of: None,
        h3_cell: u64::from(position.h3_cell(crate::geo::REPORT_H3_RESOLUTION)),
        change_seq: 1,
    }
}

pub(super) fn incident(lon: f64, lat: f64, seq: i64) -> Incident {
    let position = Position::new(lon, lat).unwrap();
    Incident {
        id: Uuid::now_v7(),
        reference: Arc::from("CP-0000-0000"),
        position,
        service_code: Arc::from("pothole"),
        group: Arc::from("Roads"),
        status: Status::New,
        requested_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        updated_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        supporters: 0,
        duplicate_of: None,
        h3_cell: position.h3_cell(crate::geo::REPORT_H3_RESOLUTION).into(),
        change_seq: seq,
    }
}

/// A small deterministic generator, so these tests need no extra crate.
pub(super) fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}
