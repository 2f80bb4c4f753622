//! Thin handlers: staff adding photos to a report, listing a report's photos, and serving the
//! re-encoded files. (A citizen's photos come with the report, through intake.)

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::model::{PhotoKind, PhotoView, Size};
use super::store;
use super::upload::{is_multipart, read_upload};
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::domain::{ReportKey, optional_multiline_text};
use crate::error::{AppError, Path};
use crate::ops::forwarded::PeerIp;

/// `POST /api/v1/reports/{id}/photos` (agent, crew or admin token): up to three `photo` parts,
/// an optional `kind` (`before`, `after`, `other`; default `other`) and `note`.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<ReportKey>,
    PeerIp(peer): PeerIp,
    req: Request,
) -> Result<Response, AppError> {
    caller.require(Role::is_field_staff, "add photos to a report")?;
    if !is_multipart(req.headers()) {
        return Err(AppError::UnsupportedMediaType(
            "expected Content-Type: multipart/form-data".into(),
        ));
    }
    let report = crate::reports::store::find(&state.pool, &key)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    let permit = state.photos.admit(peer).await?;
    let mut upload = read_upload(req, &state, &["kind", "note"]).await?;
    let kind = match upload.take("kind") {
        None => PhotoKind::Other,
        Some(k) => PhotoKind::parse_staff(k.trim())
            .ok_or_else(|| AppError::invalid("kind", "must be before, after or other"))?,
    };
    let mut errors = Vec::new();
    let note = optional_multiline_text(upload.take("note"), "note", 2000, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if upload.photos.is_empty() {
        return Err(AppError::invalid("photo", "at least one photo is required"));
    }
    let processed = state.photos.process_all(upload.photos).await?;
    let task_state = state.clone();
    let committed = tokio::spawn(
        async move {
            let _permit = permit;
            let state = task_state;
            let stored = state.photos.store_all(&state.pool, kind, processed).await?;
            // On failure the files are left to the orphan sweep (`super::sweep`).
            super::attach(&state, report.id, &stored, note.as_deref(), &caller).await?;
            Ok::<_, AppError>(stored)
        }
        .in_current_span(),
    );
    let stored = committed.await.map_err(AppError::internal)??;
    let photos: Vec<PhotoView> = stored.iter().map(super::model::StoredPhoto::view).collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"report_id": report.id, "photos": photos})),
    )
        .into_response())
}

/// `GET /api/v1/reports/{id}/photos`: the photos of a visible report.
pub async fn list(
    State(state): State<AppState>,
    Path(key): Path<ReportKey>,
) -> Result<Response, AppError> {
    let report = crate::reports::find_visible(&state.pool, &key).await?;
    let photos = store::list(&state.pool, report.id).await?;
    Ok(axum::Json(serde_json::json!({"report_id": report.id, "photos": photos})).into_response())
}

/// `GET /api/v1/photos/{id}/{size}`: a re-encoded JPEG, cached for a year (the name behind it
/// is its content hash, so it never changes). Photos of hidden reports are not served.
pub async fn serve(
    State(state): State<AppState>,
    Path((id, size)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let size = Size::parse(&size)
        .ok_or_else(|| AppError::bad_field("size", "must be display or thumb"))?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| AppError::NotFound("photo"))?;
    let (hash, media_type) = store::find_visible(&state.pool, id, size)
        .await?
        .ok_or(AppError::NotFound("photo"))?;
    let etag = format!("\"{}\"", hash.hex());
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_owned(),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    if crate::ops::conditional::not_modified(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let bytes = state
        .photos
        .storage
        .get(hash)
        .await
        .map_err(super::store_error)?
        .ok_or(AppError::NotFound("photo"))?;
    let mut res = (cache, bytes).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&media_type).unwrap_or(HeaderValue::from_static("image/jpeg")),
    );
    Ok(res)
}
