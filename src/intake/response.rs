//! The one answer of a native intake: 201 with `Location` and the report's public view (with
//! its photos), or the first answer again for a replay. The body stored for replays is built
//! here too, so a replay says what the first answer said.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Outcome;
use crate::app::AppState;
use crate::domain::Report;
use crate::error::AppError;
use crate::photos::model::{LocationSuggestion, StoredPhoto};

/// The header that marks a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// The body of a created report's answer, as stored for replays: the public view, and the
/// photos it came with.
pub fn body(
    state: &AppState,
    report: &Report,
    photos: &[StoredPhoto],
) -> Result<serde_json::Value, AppError> {
    let mut body =
        serde_json::to_value(crate::reports::view(state, report)).map_err(AppError::internal)?;
    if !photos.is_empty() {
        let views: Vec<_> = photos.iter().map(StoredPhoto::view).collect();
        body["photos"] = serde_json::to_value(views).map_err(AppError::internal)?;
    }
    Ok(body)
}

/// The HTTP answer to an outcome. A created report's answer also offers the position read
/// from a photo (never stored, so a replay does not repeat it).
pub fn respond(
    state: &AppState,
    outcome: Outcome,
    photos: &[StoredPhoto],
    suggestion: Option<&LocationSuggestion>,
) -> Result<Response, AppError> {
    Ok(match outcome {
        Outcome::Created(report) => {
            let mut body = body(state, &report, photos)?;
            if let Some(s) = suggestion {
                body["location_suggestion"] =
                    serde_json::to_value(s).map_err(AppError::internal)?;
            }
            let location = format!("/api/v1/reports/{}", report.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                axum::Json(body),
            )
                .into_response()
        }
        Outcome::Replayed(replay) => {
            (replay.status, [(REPLAYED, "true")], axum::Json(replay.body)).into_response()
        }
    })
}
