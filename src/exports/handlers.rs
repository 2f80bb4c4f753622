//! Thin handlers of the file exports: parse the filter, pick the caller's fields, stream.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::model::{Fields, FilterParams};
use super::stream::{Format, export_body};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{AppError, Query};

/// The query string of an export: the OGC items filters, plus `start`/`end` as an
/// alternative to `datetime`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    bbox: Option<String>,
    datetime: Option<String>,
    start: Option<String>,
    end: Option<String>,
    service_code: Option<String>,
    status: Option<String>,
}

pub async fn geojson(
    state: State<AppState>,
    caller: Caller,
    params: Query<ExportParams>,
) -> Result<Response, AppError> {
    export(state, caller, params, Format::GeoJson).await
}

pub async fn geojson_seq(
    state: State<AppState>,
    caller: Caller,
    params: Query<ExportParams>,
) -> Result<Response, AppError> {
    export(state, caller, params, Format::GeoJsonSeq).await
}

pub async fn csv(
    state: State<AppState>,
    caller: Caller,
    params: Query<ExportParams>,
) -> Result<Response, AppError> {
    export(state, caller, params, Format::Csv).await
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ExportParams>,
    format: Format,
) -> Result<Response, AppError> {
    let fields = Fields::for_caller(&caller);
    let filter = FilterParams {
        bbox: p.bbox,
        datetime: p.datetime,
        start: p.start,
        end: p.end,
        service_code: p.service_code,
        status: p.status,
    }
    .parse(fields)?;
    let body = export_body(&state, filter, fields, format).await?;
    let filename = format!(
        "incidents-{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            // Analysts' files differ from the public ones: never share them through a cache.
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}
