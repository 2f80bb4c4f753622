//! `POST /api/v1/reports`: a JSON body, or `multipart/form-data` with up to three photos. Both
//! read into the same body type and take the same road: parse, submit, answer.

use axum::extract::{Request, State};
use axum::response::Response;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::body::{FORM_FIELDS, NewReportBody, form_flag};
use super::{Idempotent, respond, submit};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{AppError, body_bytes_max, parse_json};
use crate::idempotency::{Fingerprint, IdempotencyKey};
use crate::ops::forwarded::PeerIp;
use crate::photos::model::{LocationSuggestion, PhotoKind};
use crate::photos::upload::{is_multipart, read_upload};

/// `POST /api/v1/reports` with a required `Idempotency-Key`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    PeerIp(peer): PeerIp,
    req: Request,
) -> Result<Response, AppError> {
    if is_multipart(req.headers()) {
        return create_with_photos(state, caller, key, peer, req).await;
    }
    crate::error::require_json(req.headers(), "application/json or multipart/form-data")?;
    // The route's body limit is raised for photos; a JSON body keeps the service-wide one.
    let bytes = body_bytes_max(req, state.settings.body_limit_bytes).await?;
    let body: NewReportBody = parse_json(&bytes)?;
    let fingerprint = Fingerprint::of(&body)?;
    let new = body.parse(caller.default_channel())?;
    let idempotent = Idempotent {
        key: &key,
        fingerprint,
    };
    let outcome = submit(&state, new, &caller, Some(idempotent), &[]).await?;
    respond(&state, outcome, &[], None)
}

/// The multipart form: the report's fields (named as in the JSON body, `contact.*` flattened),
/// up to three `photo` parts, and `use_photo_location` to take the position from a photo's
/// GPS tag when `lat`/`lon` are left out.
async fn create_with_photos(
    state: AppState,
    caller: Caller,
    key: IdempotencyKey,
    peer: Option<std::net::IpAddr>,
    req: Request,
) -> Result<Response, AppError> {
    let permit = state.photos.admit(peer).await?;
    let mut upload = read_upload(req, &state, FORM_FIELDS).await?;
    let use_photo_location = upload
        .take("use_photo_location")
        .map(|v| form_flag("use_photo_location", &v))
        .transpose()?
        .unwrap_or(false);
    let mut body = NewReportBody::from_form(&upload.fields)?;
    let wants_photo_location = use_photo_location && body.lat.is_none() && body.lon.is_none();
    // Bad fields are found before any photo is decoded.
    let early = if wants_photo_location {
        None
    } else {
        Some(body.clone().parse(caller.default_channel())?)
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
        body.lat = Some(s.lat);
        body.lon = Some(s.lon);
        body.clone().parse(caller.default_channel())?
    };
    // Replays match on the fields and the photos' own bytes.
    let fingerprint = Fingerprint::of(&serde_json::json!({
        "fields": body, "use_photo_location": use_photo_location, "photos": photo_hashes,
    }))?;

    // Stored and committed in a task of its own, so a client that goes away cannot cut the
    // commit off half-way; files without rows are the orphan sweep's (`photos::sweep`).
    let task_state = state.clone();
    let committed = tokio::spawn(
        async move {
            let _permit = permit;
            let state = task_state;
            let stored = state
                .photos
                .store_all(&state.pool, PhotoKind::Report, processed)
                .await?;
            let idempotent = Idempotent {
                key: &key,
                fingerprint,
            };
            // Unless Created, the files may be unreferenced: the orphan sweep settles them
            // (a twin with the same key and bytes may be committing rows that point at them).
            let outcome = submit(&state, new, &caller, Some(idempotent), &stored).await;
            outcome.map(|o| (o, stored))
        }
        .in_current_span(),
    );
    let (outcome, stored) = committed.await.map_err(AppError::internal)??;
    respond(&state, outcome, &stored, suggestion.as_ref())
}
