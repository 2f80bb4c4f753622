//! Thin handlers of the native JSON API: extract, parse, call intake or the store, respond.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::intake::{self, Idempotency, Outcome};
use super::model::{Channel, HistoryEvent, NewReportBody, Status, StatusChangeBody};
use super::store;
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::error::{AppError, Json, Path, body_bytes_max, parse_json};

/// `GET /api/v1/services`: the catalogue as the web form needs it.
pub async fn services(State(state): State<AppState>) -> Response {
    axum::Json(
        state
            .catalogue
            .all()
            .iter()
            .map(|s| {
                serde_json::json!({
                    "service_code": s.service_code, "service_name": s.service_name,
                    "description": s.description, "group": s.group, "keywords": s.keywords,
                    "attributes": s.attributes,
                })
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `POST /api/v1/reports` with a required `Idempotency-Key`: a JSON body, or
/// `multipart/form-data` with photos (handled by the photos capability).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Response, AppError> {
    let key = idempotency_key(req.headers())?;
    if crate::photos::handlers::is_multipart(req.headers()) {
        return crate::photos::handlers::create_report(state, caller, key, req).await;
    }
    let is_json = crate::error::has_content_type(req.headers(), "application/json");
    if !is_json {
        return Err(AppError::UnsupportedMediaType(
            "expected Content-Type: application/json or multipart/form-data".into(),
        ));
    }
    // The route's body limit is raised for photos; a JSON body keeps the service-wide one.
    let bytes = body_bytes_max(req, state.settings.body_limit_bytes).await?;
    let body: NewReportBody = parse_json(&bytes)?;
    let new = body
        .parse(default_channel(&caller))
        .map_err(AppError::Invalid)?;
    let outcome = intake::submit(
        &state,
        new,
        &caller,
        Some(Idempotency {
            key: &key,
            body: &bytes,
        }),
    )
    .await?;
    Ok(match outcome {
        Outcome::Created(report) => {
            let view = intake::view(&state, &report);
            let location = format!("/api/v1/reports/{}", report.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                axum::Json(view),
            )
                .into_response()
        }
        Outcome::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (status, [("idempotent-replayed", "true")], axum::Json(body)).into_response()
        }
    })
}

/// Citizens report from the web by default; staff entering a report name the channel.
pub fn default_channel(caller: &Caller) -> Channel {
    match caller.role() {
        Some(Role::Agent) => Channel::Phone,
        Some(Role::Crew) => Channel::Field,
        Some(Role::Open311Client) => Channel::Open311,
        _ => Channel::Web,
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, AppError> {
    let value = headers
        .get("idempotency-key")
        .ok_or_else(|| AppError::bad_field("Idempotency-Key", "this header is required: send a unique value (e.g. a UUID) per report, and the same value when retrying"))?;
    let key = value
        .to_str()
        .map(str::trim)
        .map_err(|_| AppError::bad_field("Idempotency-Key", "must be printable ASCII"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(AppError::bad_field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(key.to_owned())
}

/// `GET /api/v1/reports/{id}`: by id, reference or imported id.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let report = intake::find_visible(&state, &id).await?;
    Ok(axum::Json(intake::view(&state, &report)).into_response())
}

#[derive(Serialize)]
struct History {
    id: uuid::Uuid,
    reference: String,
    status: Status,
    events: Vec<HistoryEvent>,
}

/// `GET /api/v1/reports/{id}/history`: every change, oldest first.
pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let report = intake::find_visible(&state, &id).await?;
    let events = store::history(&state.pool, report.id).await?;
    Ok(axum::Json(History {
        id: report.id,
        reference: report.reference.clone(),
        status: report.status(),
        events,
    })
    .into_response())
}

/// `POST /api/v1/reports/{id}/status` (agent, crew or admin token): `{status, note}`.
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<StatusChangeBody>,
) -> Result<Response, AppError> {
    caller.require(Role::is_field_staff, "change a report's status")?;
    let status = Status::parse(&body.status).ok_or_else(|| {
        AppError::invalid("status", format!("{:?} is not one of new, acknowledged, scheduled, in_progress, fixed, not_actionable, referred, cancelled", body.status))
    })?;
    let mut errors = Vec::new();
    let note = super::model::optional_text(body.note, "note", 2000, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let report = store::find(&state.pool, &id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    let report = intake::change_status(&state, report.id, status, note.as_deref(), &caller).await?;
    Ok(axum::Json(intake::view(&state, &report)).into_response())
}
