//! Thin handlers of the native JSON API on stored reports: extract, parse, call, respond.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::model::{HistoryEvent, StatusChangeBody};
use super::{find_visible, store, view};
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::domain::{ReportKey, Status, optional_multiline_text};
use crate::error::{AppError, Json, Path};

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

/// `GET /api/v1/reports/{id}`: by id, reference or imported id.
pub async fn show(
    State(state): State<AppState>,
    Path(key): Path<ReportKey>,
) -> Result<Response, AppError> {
    let report = find_visible(&state.pool, &key).await?;
    Ok(axum::Json(view(&state, &report)).into_response())
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
    Path(key): Path<ReportKey>,
) -> Result<Response, AppError> {
    let report = find_visible(&state.pool, &key).await?;
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
    Path(key): Path<ReportKey>,
    Json(body): Json<StatusChangeBody>,
) -> Result<Response, AppError> {
    caller.require(Role::is_field_staff, "change a report's status")?;
    let status = Status::parse(&body.status).ok_or_else(|| {
        AppError::invalid("status", format!("{:?} is not one of new, acknowledged, scheduled, in_progress, fixed, not_actionable, referred, cancelled", body.status))
    })?;
    let mut errors = Vec::new();
    let note = optional_multiline_text(body.note, "note", 2000, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let report = store::find(&state.pool, &key)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    let report = super::change_status(&state, report.id, status, note.as_deref(), &caller).await?;
    Ok(axum::Json(view(&state, &report)).into_response())
}
