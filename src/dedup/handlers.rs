//! Thin handlers of the dedup endpoints: extract, parse, call `decide`, respond.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::decide::{self, Supporter};
use super::model::{MergeBody, SimilarParams, SupportBody, UnmergeBody, round3};
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::domain::{ReportKey, optional_multiline_text};
use crate::error::{AppError, FieldError, Json, Path, Query, body_bytes, parse_json};
use crate::geo::position_from_fields;
use crate::idempotency::IdempotencyKey;
use crate::reports::{find_visible, store as reports_store, view};

/// Most suggestions one `similar` query returns.
const MAX_SIMILAR: usize = 20;

/// `GET /api/v1/reports/similar?lat=&lon=&service_code=`: the open incidents a new report
/// there would most likely duplicate, best first, as `GeoJSON` with public fields only.
pub async fn similar(
    State(state): State<AppState>,
    Query(params): Query<SimilarParams>,
) -> Result<Response, AppError> {
    let mut errors = Vec::new();
    let position = position_from_fields(params.lon, params.lat, "lon", "lat", &mut errors);
    let service = match params.service_code.as_deref().map(str::trim) {
        None | Some("") => {
            errors.push(FieldError::new("service_code", "is required"));
            None
        }
        Some(code) => state.catalogue.get(code).cloned().or_else(|| {
            errors.push(FieldError::new(
                "service_code",
                format!("{code:?} is not a known service code"),
            ));
            None
        }),
    };
    let limit = params.limit.unwrap_or(5);
    if limit == 0 || limit > MAX_SIMILAR {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_SIMILAR}"),
        ));
    }
    let (Some(position), Some(service)) = (position, service) else {
        return Err(bad_query(errors));
    };
    if !errors.is_empty() {
        return Err(bad_query(errors));
    }
    let now = Utc::now();
    let suggest = super::model::DedupParams::of(&service).suggest_threshold;
    let features: Vec<serde_json::Value> =
        decide::score_from_index(&state.spatial_index, &service, position, now, limit)
            .into_iter()
            .filter(|(s, _)| s.score >= suggest)
            .map(|(s, i)| {
                let age_days = (now - i.requested_at).num_minutes() as f64 / 1440.0;
                serde_json::json!({
                    "type": "Feature",
                    "id": i.id,
                    "geometry": i.position.to_geojson(),
                    "properties": {
                        "id": i.id, "reference": &*i.reference,
                        "service_code": &*i.service_code, "status": i.status,
                        "distance_m": (s.reasons.distance_m * 10.0).round() / 10.0,
                        "age_days": (age_days.max(0.0) * 100.0).round() / 100.0,
                        "supporters": i.supporters, "score": round3(s.score),
                    }
                })
            })
            .collect();
    Ok(
        axum::Json(serde_json::json!({"type": "FeatureCollection", "features": features}))
            .into_response(),
    )
}

fn bad_query(errors: Vec<FieldError>) -> AppError {
    AppError::bad_fields(errors)
}

/// `POST /api/v1/reports/{id}/supporters` ("me too"), optional body `{"contact": {...}}`:
/// 201 when counted, 200 when this supporter was already counted; both return the report.
pub async fn support(
    State(state): State<AppState>,
    caller: Caller,
    Path(report_key): Path<ReportKey>,
    key: Option<IdempotencyKey>,
    req: Request,
) -> Result<Response, AppError> {
    let has_json_type = crate::error::is_json(req.headers());
    let bytes = body_bytes(req, &state).await?;
    let body: SupportBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        SupportBody::default()
    } else if has_json_type {
        parse_json(&bytes)?
    } else {
        return Err(AppError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        ));
    };
    let mut errors = Vec::new();
    let contact = body.contact.and_then(|c| c.parse("contact.", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let report = find_visible(&state.pool, &report_key).await?;
    let key = key.as_ref().map(IdempotencyKey::as_str);
    let supporter = match (&contact, key) {
        (Some(c), _) if c.email.is_some() || c.phone.is_some() => Supporter::Contact(c),
        (_, Some(k)) => Supporter::Key(k),
        (Some(c), None) => Supporter::Contact(c),
        (None, None) => {
            return Err(AppError::bad_field(
                "Idempotency-Key",
                "send this header (a unique value per supporter), or a contact with an e-mail or phone",
            ));
        }
    };
    let (report, counted) = decide::support(&state, report.id, &supporter, key, &caller).await?;
    let status = if counted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view(&state, &report))).into_response())
}

/// `POST /api/v1/reports/{id}/merge` (agent, crew or admin): `{"into": "<id or reference>"}`.
pub async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<ReportKey>,
    Json(body): Json<MergeBody>,
) -> Result<Response, AppError> {
    caller.require(Role::is_field_staff, "merge reports")?;
    let mut errors = Vec::new();
    let note = optional_multiline_text(body.note, "note", 2000, &mut errors);
    if body.into.trim().is_empty() {
        errors.push(FieldError::new("into", "is required: an id or a reference"));
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let child = find_visible(&state.pool, &key).await?;
    let into_key =
        ReportKey::parse(&body.into).map_err(|e| AppError::invalid("into", e.to_string()))?;
    let into = reports_store::find(&state.pool, &into_key)
        .await?
        .filter(|r| !r.hidden)
        .ok_or_else(|| {
            AppError::invalid("into", format!("{:?} is not a known report", body.into))
        })?;
    let report = decide::merge(&state, child.id, into.id, note.as_deref(), &caller).await?;
    Ok(axum::Json(view(&state, &report)).into_response())
}

/// `POST /api/v1/reports/{id}/unmerge` (agent, crew or admin), optional body `{"note": ...}`.
pub async fn unmerge(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<ReportKey>,
    req: Request,
) -> Result<Response, AppError> {
    caller.require(Role::is_field_staff, "unmerge reports")?;
    let bytes = body_bytes(req, &state).await?;
    let body: UnmergeBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        UnmergeBody::default()
    } else {
        parse_json(&bytes)?
    };
    let mut errors = Vec::new();
    let note = optional_multiline_text(body.note, "note", 2000, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let child = find_visible(&state.pool, &key).await?;
    let report = decide::unmerge(&state, child.id, note.as_deref(), &caller).await?;
    Ok(axum::Json(view(&state, &report)).into_response())
}
