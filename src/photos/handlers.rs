//! Thin handlers: multipart uploads (streamed and counted as they arrive), adding photos to a
//! report, listing them, and serving the re-encoded files.

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::model::{
    LocationSuggestion, MAX_FIELD_BYTES, MAX_PHOTO_BYTES, MAX_PHOTOS_PER_REQUEST, PhotoKind,
    PhotoView, Size,
};
use super::store;
use crate::app::AppState;
use crate::auth::{Caller, Role};
use crate::error::{AppError, Path, parse_json};
use crate::reports::intake::{self, Idempotency, Outcome};
use crate::reports::model::{NewReport, NewReportBody, optional_text};

/// The text fields of a multipart report, named as in the JSON body (`contact.*` flattened).
const REPORT_FIELDS: &[&str] = &[
    "service_code",
    "lat",
    "lon",
    "description",
    "address",
    "channel",
    "media_url",
    "attributes",
    "contact.name",
    "contact.email",
    "contact.phone",
    "contact.consent",
    "contact.notify",
    "use_photo_location",
];

/// A multipart body read in full within the bounds: text fields and photo bytes.
struct Upload {
    fields: Vec<(String, String)>,
    photos: Vec<Bytes>,
}

impl Upload {
    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.fields.iter().position(|(n, _)| n == name)?;
        Some(self.fields.remove(i).1)
    }
}

/// Whether the request carries `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    crate::error::has_content_type(headers, "multipart/form-data")
}

/// Reads the parts as they arrive, counting bytes: a photo past 10 MB, a fourth photo or too
/// much text is refused (413) at that point, without reading the rest of the body.
async fn read_upload(req: Request, state: &AppState, allowed: &[&str]) -> Result<Upload, AppError> {
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| AppError::bad_request(format!("could not read the multipart body: {e}")))?;
    let mut upload = Upload {
        fields: Vec::new(),
        photos: Vec::new(),
    };
    let mut text_bytes = 0;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "photo" {
            if upload.photos.len() == MAX_PHOTOS_PER_REQUEST {
                return Err(AppError::PayloadTooLarge(format!(
                    "at most {MAX_PHOTOS_PER_REQUEST} photos per request"
                )));
            }
            let mut bytes = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
                if bytes.len() + chunk.len() > MAX_PHOTO_BYTES {
                    return Err(AppError::PayloadTooLarge(format!(
                        "photo[{}] is larger than {} MB",
                        upload.photos.len(),
                        MAX_PHOTO_BYTES / (1024 * 1024)
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            upload.photos.push(bytes.freeze());
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            return Err(AppError::bad_field(
                name,
                format!(
                    "is not a field of this form; expected photo or one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        if upload.fields.iter().any(|(n, _)| *n == name) {
            return Err(AppError::bad_field(name, "is given more than once"));
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
            text_bytes += chunk.len();
            if text_bytes > MAX_FIELD_BYTES {
                return Err(AppError::PayloadTooLarge(format!(
                    "the text fields are larger than {} KiB together",
                    MAX_FIELD_BYTES / 1024
                )));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value)
            .map_err(|_| AppError::bad_field(name.clone(), "must be UTF-8 text"))?;
        upload.fields.push((name, value));
    }
    Ok(upload)
}

fn multipart_error(e: &MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge("the request body is too large".into())
    } else {
        AppError::bad_request(format!(
            "could not read the multipart body: {}",
            e.body_text()
        ))
    }
}

/// `POST /api/v1/reports` with `multipart/form-data`: the report's fields and up to three
/// `photo` parts. Called by the reports handler, which owns the route and the key.
pub async fn create_report(
    state: AppState,
    caller: Caller,
    key: String,
    req: Request,
) -> Result<Response, AppError> {
    let permit = state.photos.admit().await?;
    let mut upload = read_upload(req, &state, REPORT_FIELDS).await?;
    let use_photo_location = upload
        .take("use_photo_location")
        .map(|v| parse_flag("use_photo_location", &v))
        .transpose()?
        .unwrap_or(false);
    let mut fields = report_fields(&upload.fields)?;
    let wants_photo_location =
        use_photo_location && !fields.contains_key("lat") && !fields.contains_key("lon");
    // Bad fields are found before any photo is decoded.
    let early = if wants_photo_location {
        None
    } else {
        Some(parse_report(&fields, &caller)?)
    };
    let photo_hashes: Vec<String> = upload
        .photos
        .iter()
        .map(|p| crate::auth::hex(&Sha256::digest(p)))
        .collect();
    let processed = state.photos.process_all(upload.photos).await?;
    let suggestion = LocationSuggestion::first(&processed);
    let new = if let Some(new) = early {
        new
    } else {
        let s = suggestion.as_ref().ok_or_else(|| {
            AppError::invalid(
                "use_photo_location",
                "no photo carries a GPS position; send lat and lon",
            )
        })?;
        fields.insert("lat".into(), s.lat.into());
        fields.insert("lon".into(), s.lon.into());
        parse_report(&fields, &caller)?
    };
    // Replays match on the fields and the photos' own bytes.
    let fingerprint = serde_json::to_vec(&serde_json::json!({
        "fields": fields, "use_photo_location": use_photo_location, "photos": photo_hashes,
    }))
    .map_err(AppError::internal)?;

    // Stored and committed in a task of its own: a client that goes away now cannot leave
    // files without rows, because the clean-up after a failed commit still runs.
    let task_state = state.clone();
    let committed = async move {
        let _permit = permit;
        let state = task_state;
        let stored = state
            .photos
            .store_all(&state.pool, PhotoKind::Report, processed)
            .await?;
        let idempotency = Idempotency {
            key: &key,
            body: &fingerprint,
        };
        let outcome =
            intake::submit_with_photos(&state, new, &caller, Some(idempotency), &stored).await;
        if !matches!(outcome, Ok(Outcome::Created(_))) {
            state.photos.forget_photos(&state.pool, &stored).await;
        }
        outcome.map(|o| (o, stored))
    };
    let committed = tokio::spawn(committed.in_current_span());
    let (outcome, stored) = committed.await.map_err(AppError::internal)??;
    Ok(match outcome {
        Outcome::Created(report) => {
            let mut body =
                serde_json::to_value(intake::view(&state, &report)).map_err(AppError::internal)?;
            body["photos"] = serde_json::to_value(
                stored
                    .iter()
                    .map(super::model::StoredPhoto::view)
                    .collect::<Vec<_>>(),
            )
            .map_err(AppError::internal)?;
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
        Outcome::Replayed { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (status, [("idempotent-replayed", "true")], axum::Json(body)).into_response()
        }
    })
}

/// The form's text fields as the JSON body they stand for.
fn report_fields(fields: &[(String, String)]) -> Result<Map<String, Value>, AppError> {
    let mut body = Map::new();
    let mut contact = Map::new();
    for (name, value) in fields {
        match name.as_str() {
            "lat" | "lon" => {
                let n: f64 = value.trim().parse().map_err(|_| {
                    AppError::bad_field(name.clone(), format!("{value:?} is not a number"))
                })?;
                let n = serde_json::Number::from_f64(n)
                    .ok_or_else(|| AppError::invalid(name.clone(), "must be a finite number"))?;
                body.insert(name.clone(), Value::Number(n));
            }
            "attributes" => {
                let attributes: Map<String, Value> = parse_json(value.as_bytes())
                    .map_err(|_| AppError::bad_field("attributes", "must be a JSON object"))?;
                body.insert(name.clone(), Value::Object(attributes));
            }
            "contact.consent" | "contact.notify" => {
                let flag = parse_flag(name, value)?;
                contact.insert(name["contact.".len()..].to_owned(), Value::Bool(flag));
            }
            other => {
                if let Some(sub) = other.strip_prefix("contact.") {
                    contact.insert(sub.to_owned(), Value::String(value.clone()));
                } else {
                    body.insert(name.clone(), Value::String(value.clone()));
                }
            }
        }
    }
    if !contact.is_empty() {
        body.insert("contact".into(), Value::Object(contact));
    }
    Ok(body)
}

fn parse_report(fields: &Map<String, Value>, caller: &Caller) -> Result<NewReport, AppError> {
    let body: NewReportBody = serde_json::from_value(Value::Object(fields.clone()))
        .map_err(|e| AppError::bad_request(format!("could not read the form: {e}")))?;
    body.parse(crate::reports::handlers::default_channel(caller))
        .map_err(AppError::Invalid)
}

/// HTML forms send `on` for a ticked box; accept the usual spellings.
fn parse_flag(name: &str, value: &str) -> Result<bool, AppError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" | "" => Ok(false),
        _ => Err(AppError::bad_field(name, "must be true or false")),
    }
}

/// `POST /api/v1/reports/{id}/photos` (agent, crew or admin token): up to three `photo` parts,
/// an optional `kind` (`before`, `after`, `other`; default `other`) and `note`.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, AppError> {
    caller.require(Role::is_field_staff, "add photos to a report")?;
    if !is_multipart(req.headers()) {
        return Err(AppError::UnsupportedMediaType(
            "expected Content-Type: multipart/form-data".into(),
        ));
    }
    let report = crate::reports::store::find(&state.pool, &id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    let permit = state.photos.admit().await?;
    let mut upload = read_upload(req, &state, &["kind", "note"]).await?;
    let kind = match upload.take("kind") {
        None => PhotoKind::Other,
        Some(k) => PhotoKind::parse_staff(k.trim())
            .ok_or_else(|| AppError::invalid("kind", "must be before, after or other"))?,
    };
    let mut errors = Vec::new();
    let note = optional_text(upload.take("note"), "note", 2000, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if upload.photos.is_empty() {
        return Err(AppError::invalid("photo", "at least one photo is required"));
    }
    let processed = state.photos.process_all(upload.photos).await?;
    let task_state = state.clone();
    let committed = async move {
        let _permit = permit;
        let state = task_state;
        let stored = state.photos.store_all(&state.pool, kind, processed).await?;
        let attached = super::attach(&state, report.id, &stored, note.as_deref(), &caller).await;
        if let Err(e) = attached {
            state.photos.forget_photos(&state.pool, &stored).await;
            return Err(e);
        }
        Ok(stored)
    };
    let committed = tokio::spawn(committed.in_current_span());
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
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let report = crate::reports::intake::find_visible(&state, &id).await?;
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
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
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
