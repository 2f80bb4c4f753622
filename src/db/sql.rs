//! Small SQL-building pieces shared by the capabilities' stores (always bound parameters).

use sqlx::{Postgres, QueryBuilder};

use crate::domain::Status;
use crate::geo::{BBox, Position};

/// Pushes `ST_MakeEnvelope(minLon, minLat, maxLon, maxLat, 4326)` with bound values.
pub fn push_envelope(q: &mut QueryBuilder<'_, Postgres>, b: &BBox) {
    q.push("ST_MakeEnvelope(")
        .push_bind(b.min_lon())
        .push(", ")
        .push_bind(b.min_lat())
        .push(", ")
        .push_bind(b.max_lon())
        .push(", ")
        .push_bind(b.max_lat())
        .push(", 4326)");
}

/// Pushes ` AND (…)` testing `{before}<envelope>{after}` for the box, split into two envelopes
/// when it crosses the antimeridian, e.g. `before = "ST_Intersects(r.location, "`, `after =
/// ")"`. Use an exact test such as `ST_Intersects` (which takes the `GiST` index too): `&&`
/// alone compares single-precision boxes, rounded outwards, and lets points up to about a metre
/// outside the box through.
pub fn push_bbox_filter(q: &mut QueryBuilder<'_, Postgres>, b: BBox, before: &str, after: &str) {
    q.push(" AND (");
    for (i, part) in b.parts().iter().enumerate() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push(before);
        push_envelope(q, part);
        q.push(after);
    }
    q.push(")");
}

/// Pushes `(r.location && <box> [OR r.location && <box>])`: the `GiST` prefilter for every
/// point within `radius_m` of `center` (boxes from [`crate::geo::circle_bboxes`]; two across
/// the antimeridian). The exact distance test follows it in the caller's SQL.
pub fn push_circle_prefilter(q: &mut QueryBuilder<'_, Postgres>, center: Position, radius_m: f64) {
    q.push("(");
    for (i, b) in crate::geo::circle_bboxes(center, radius_m)
        .iter()
        .enumerate()
    {
        if i > 0 {
            q.push(" OR ");
        }
        q.push("r.location && ");
        push_envelope(q, b);
    }
    q.push(")");
}

/// Pushes ` AND r.service_code = ANY(…)` and ` AND r.status = ANY(…)` for the non-empty lists
/// (an empty list means no filter), on a query whose reports table is aliased `r`.
pub fn push_code_and_status_filter(
    q: &mut QueryBuilder<'_, Postgres>,
    service_codes: &[String],
    statuses: &[Status],
) {
    if !service_codes.is_empty() {
        q.push(" AND r.service_code = ANY(")
            .push_bind(service_codes.to_vec())
            .push(")");
    }
    if !statuses.is_empty() {
        let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        q.push(" AND r.status = ANY(").push_bind(names).push(")");
    }
}
