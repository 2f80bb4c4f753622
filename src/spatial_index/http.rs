//! `GET /api/v1/incidents/nearby`: the open incidents nearest a crew, from the live index.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::Hit;
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::error::{AppError, FieldError, Query};
use crate::reports::model::{Status, parse_position};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/incidents/nearby", get(nearby))
}

/// Largest radius a nearby query may ask for, in metres.
pub const MAX_RADIUS_M: f64 = 50_000.0;
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

/// Where a nearby query is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The live in-memory index: the serving path.
    Index,
    /// The same query in `PostGIS`: for verifying the index and as the benchmark baseline.
    /// Staff only, since a public slow path invites abuse.
    Postgis,
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
        let center = parse_position(self.lon, self.lat, "lon", "lat", &mut errors);
        let radius_m = self.radius_m.unwrap_or(500.0);
        if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= MAX_RADIUS_M) {
            errors.push(FieldError::new(
                "radius_m",
                format!("must be a number of metres in (0, {MAX_RADIUS_M}]"),
            ));
        }
        let limit = self.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_LIMIT {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let statuses = Status::parse_filter(self.status.as_deref().unwrap_or("open"))
            .map_err(|m| errors.push(FieldError::new("status", m)))
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
        let source = match self.source.as_deref().unwrap_or("index") {
            "index" => Source::Index,
            "postgis" => Source::Postgis,
            _ => {
                errors.push(FieldError::new("source", "must be index or postgis"));
                Source::Index
            }
        };
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
    if q.source == Source::Postgis {
        caller.require(
            |r| matches!(r, Role::Analyst | Role::Admin),
            "query nearby incidents from PostGIS",
        )?;
        let hits: Vec<Hit> = super::store::nearby(
            &state.pool,
            q.center,
            q.radius_m,
            q.limit,
            &q.statuses,
            &q.service_codes,
        )
        .await?
        .into_iter()
        .map(|r| Hit {
            incident: r.row.to_incident(&state.catalogue),
            distance_m: r.distance_m,
        })
        .collect();
        return Ok(feature_collection(&state, &hits).into_response());
    }
    let filter = super::Filter {
        statuses: q.statuses,
        service_codes: q.service_codes,
    };
    let hits = state
        .spatial_index
        .nearby_matching(q.center, q.radius_m, q.limit, &filter);
    Ok(feature_collection(&state, &hits).into_response())
}

/// Hits as an RFC 7946 `FeatureCollection` with `distance_m`; public fields only.
pub fn feature_collection(state: &AppState, hits: &[Hit]) -> axum::Json<serde_json::Value> {
    let features: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            let i = &h.incident;
            let name = state
                .catalogue
                .get(&i.service_code)
                .map_or(&*i.service_code, |s| s.service_name.as_str());
            serde_json::json!({
                "type": "Feature",
                "id": i.id,
                "geometry": i.position.to_geojson(),
                "properties": {
                    "id": i.id, "reference": &*i.reference, "service_code": &*i.service_code,
                    "service_name": name, "group": &*i.group, "status": i.status,
                    "requested_at": i.requested_at, "supporters": i.supporters,
                    "distance_m": (h.distance_m * 100.0).round() / 100.0,
                }
            })
        })
        .collect();
    axum::Json(serde_json::json!({"type": "FeatureCollection", "features": features}))
}
