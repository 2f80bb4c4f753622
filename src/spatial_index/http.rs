//! `GET /api/v1/incidents/nearby`: the open incidents nearest a crew, from the live index.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Hit;
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalogue::Catalogue;
use crate::domain::{RadiusMeters, Source, Status};
use crate::error::{AppError, FieldError, Query};
use crate::geo::position_from_fields;
use crate::geo::{Position, round7};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/incidents/nearby", get(nearby))
}

/// Largest number of incidents one nearby query returns.
pub const MAX_LIMIT: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearbyParams {
    lat: Option<f64>,
    lon: Option<f64>,
    radius_m: Option<f64>,
    limit: Option<usize>,
    status: Option<String>,
    service_code: Option<String>,
    source: Option<String>,
}

/// A parsed nearby query.
pub struct NearbyQuery {
    pub center: crate::geo::Position,
    pub radius_m: f64,
    pub limit: usize,
    pub statuses: Vec<Status>,
    pub service_codes: Vec<String>,
    pub source: Source,
}

impl NearbyParams {
    pub fn parse(self) -> Result<NearbyQuery, AppError> {
        let mut errors = Vec::new();
        let center = position_from_fields(self.lon, self.lat, "lon", "lat", &mut errors);
        let radius_m = RadiusMeters::new(self.radius_m.unwrap_or(500.0))
            .map_err(|e| errors.push(FieldError::new("radius_m", e.to_string())))
            .map_or(0.0, RadiusMeters::get);
        let limit = self.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_LIMIT {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let statuses = Status::parse_filter(self.status.as_deref().unwrap_or("open"))
            .map_err(|e| errors.push(FieldError::new("status", e.to_string())))
            .unwrap_or_default();
        let service_codes: Vec<String> = self
            .service_code
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let source = Source::parse(self.source.as_deref()).unwrap_or_else(|e| {
            errors.push(FieldError::new("source", e.to_string()));
            Source::Index
        });
        match center {
            Some(center) if errors.is_empty() => Ok(NearbyQuery {
                center,
                radius_m,
                limit,
                statuses,
                service_codes,
                source,
            }),
            _ => Err(AppError::bad_fields(errors)),
        }
    }
}

async fn nearby(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<NearbyParams>,
) -> Result<Response, AppError> {
    let q = params.parse()?;
    caller.require_source(q.source, "query nearby incidents from PostGIS")?;
    if q.source == Source::Postgis {
        let rows = super::store::nearby(
            &state.pool,
            q.center,
            q.radius_m,
            q.limit,
            &q.statuses,
            &q.service_codes,
        )
        .await?;
        let hits: Vec<Hit> = rows
            .into_iter()
            .filter_map(|r| {
                Some(Hit {
                    incident: r.row.to_incident(&state.catalogue)?,
                    distance_m: r.distance_m,
                })
            })
            .collect();
        let features = hits.iter().map(|h| {
            let i = &h.incident;
            Feature::new(
                &state.catalogue,
                FeatureFields {
                    id: i.id,
                    position: i.position,
                    reference: &i.reference,
                    service_code: &i.service_code,
                    group: &i.group,
                    status: i.status,
                    requested_at: i.requested_at,
                    supporters: i.supporters,
                },
                h.distance_m,
            )
        });
        return feature_collection(features.collect());
    }
    let filter = super::Filter {
        statuses: q.statuses,
        service_codes: q.service_codes,
    };
    let hits = state
        .spatial_index
        .nearby_compact(q.center, q.radius_m, q.limit, &filter);
    // Names are only ever appended, so a table taken after the query resolves every hit.
    let names = state.spatial_index.names();
    let name = |i: u16| names.get(usize::from(i)).map_or("", |n| &**n);
    let features = hits.iter().map(|h| {
        let c = &h.incident;
        Feature::new(
            &state.catalogue,
            FeatureFields {
                id: c.id,
                position: c.position,
                reference: c.reference(),
                service_code: name(c.service),
                group: name(c.group),
                status: c.status,
                requested_at: DateTime::from_timestamp_micros(c.requested_us).unwrap_or_default(),
                supporters: c.supporters,
            },
            h.distance_m,
        )
    });
    feature_collection(features.collect())
}

/// The public fields of one incident, borrowed from wherever the hit came from (the index's
/// compact record or a `PostGIS` row).
#[derive(Clone, Copy)]
struct FeatureFields<'a> {
    id: Uuid,
    position: Position,
    reference: &'a str,
    service_code: &'a str,
    group: &'a str,
    status: Status,
    requested_at: DateTime<Utc>,
    supporters: i32,
}

// The response is serialized straight from these borrowed structs into one buffer: no
// `serde_json::Value` tree, no owned strings. Fields are in alphabetical order because that is
// the order the `Value`-based writer this replaced produced: clients see the same bytes.

/// An RFC 7946 Feature with `distance_m`; public fields only.
#[derive(Serialize)]
struct Feature<'a> {
    geometry: Point,
    id: Uuid,
    properties: Properties<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Point {
    coordinates: [f64; 2],
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Properties<'a> {
    distance_m: f64,
    group: &'a str,
    id: Uuid,
    reference: &'a str,
    requested_at: Rfc3339,
    service_code: &'a str,
    service_name: &'a str,
    status: Status,
    supporters: i32,
}

#[derive(Serialize)]
struct FeatureCollection<'a> {
    features: Vec<Feature<'a>>,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> Feature<'a> {
    fn new(catalogue: &'a Catalogue, f: FeatureFields<'a>, distance_m: f64) -> Self {
        let service_name = catalogue
            .get(f.service_code)
            .map_or(f.service_code, |s| s.service_name.as_str());
        Self {
            geometry: Point {
                coordinates: [round7(f.position.lon()), round7(f.position.lat())],
                kind: "Point",
            },
            id: f.id,
            properties: Properties {
                distance_m: (distance_m * 100.0).round() / 100.0,
                group: f.group,
                id: f.id,
                reference: f.reference,
                requested_at: Rfc3339(f.requested_at),
                service_code: f.service_code,
                service_name,
                status: f.status,
                supporters: f.supporters,
            },
            kind: "Feature",
        }
    }
}

/// A time as chrono's serde writes it (RFC 3339, `Z`, as many fraction digits as needed).
/// chrono's own impl goes through `collect_str`, which escapes its output a character at a
/// time: a sixth of the whole response's cost; formatting first and writing the string once
/// is a fraction of that.
struct Rfc3339(DateTime<Utc>);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// About the bytes one feature takes, so the buffer is allocated once.
const FEATURE_BYTES: usize = 420;

/// Features as an RFC 7946 `FeatureCollection`, written into one pre-sized buffer.
fn feature_collection(features: Vec<Feature<'_>>) -> Result<Response, AppError> {
    let mut body = Vec::with_capacity(64 + features.len() * FEATURE_BYTES);
    serde_json::to_writer(
        &mut body,
        &FeatureCollection {
            features,
            kind: "FeatureCollection",
        },
    )
    .map_err(|e| AppError::Internal(format!("nearby response: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        for us in [0, 250_000, 1, 123_456, 999_999] {
            let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap()
                + chrono::Duration::microseconds(us);
            assert_eq!(
                serde_json::to_string(&Rfc3339(t)).unwrap(),
                serde_json::to_string(&t).unwrap()
            );
        }
        let ns = DateTime::from_timestamp(1_700_000_000, 7).unwrap();
        assert_eq!(
            serde_json::to_string(&Rfc3339(ns)).unwrap(),
            serde_json::to_string(&ns).unwrap()
        );
    }

    #[test]
    fn a_feature_is_written_byte_for_byte_like_its_json_value() {
        let catalogue = Catalogue::load(None).unwrap();
        let service = &catalogue.all()[0];
        let id = Uuid::now_v7();
        let position = Position::new(-118.243_712_34, 34.052_2).unwrap();
        let requested_at = DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap();
        let feature = Feature::new(
            &catalogue,
            FeatureFields {
                id,
                position,
                reference: "CP-7K3M-9QXD",
                service_code: &service.service_code,
                group: "Roads \"east\"",
                status: Status::InProgress,
                requested_at,
                supporters: 3,
            },
            12.345_6,
        );
        // The shape the endpoint has always had, built the slow way.
        let want = serde_json::json!({
            "type": "Feature",
            "id": id,
            "geometry": position.to_geojson(),
            "properties": {
                "id": id, "reference": "CP-7K3M-9QXD", "service_code": &service.service_code,
                "service_name": &service.service_name, "group": "Roads \"east\"",
                "status": Status::InProgress, "requested_at": requested_at, "supporters": 3,
                "distance_m": 12.35,
            }
        });
        assert_eq!(
            serde_json::to_string(&feature).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
    }
}
