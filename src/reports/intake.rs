//! Intake and status changes: one `PostGIS` transaction each (report or change + history event
//! + idempotency row + outbox event), then the live index is updated after commit.

use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{Channel, NewReport, ParentRef, Report, ReportView, Status};
use super::store::{self, Actor};
use crate::app::AppState;
use crate::auth::Caller;
use crate::dedup::decide;
use crate::dedup::model::DedupParams;
use crate::error::AppError;
use crate::photos::model::StoredPhoto;
use crate::spatial_index::Incident;

/// An `Idempotency-Key` with the hash of the body it came with.
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub body: &'a [u8],
}

/// What a submission produced.
pub enum Outcome {
    /// A new report was stored.
    Created(Box<Report>),
    /// The same key and body were seen before: replay the first response.
    Replayed {
        status: u16,
        body: serde_json::Value,
    },
}

/// Stores a new report. With an idempotency key, a replay returns the first response and the
/// same key with a different body is refused (422).
pub async fn submit(
    state: &AppState,
    new: NewReport,
    caller: &Caller,
    idempotency: Option<Idempotency<'_>>,
) -> Result<Outcome, AppError> {
    submit_with_photos(state, new, caller, idempotency, &[]).await
}

/// [`submit`], with references to photos already in the photo store written in the same
/// transaction (and listed in the response a replay returns).
pub async fn submit_with_photos(
    state: &AppState,
    new: NewReport,
    caller: &Caller,
    idempotency: Option<Idempotency<'_>>,
    photos: &[StoredPhoto],
) -> Result<Outcome, AppError> {
    let service = state
        .catalogue
        .get(new.service_code.as_str())
        .ok_or_else(|| {
            AppError::invalid(
                "service_code",
                format!(
                    "{:?} is not a known service code",
                    new.service_code.as_str()
                ),
            )
        })?
        .clone();
    let scope = caller
        .token_id()
        .map_or_else(|| "public".to_owned(), |t| t.to_string());
    let mut tx = state.pool.begin().await?;
    if let Some(idem) = &idempotency {
        let hash = Sha256::digest(idem.body).to_vec();
        if let Some((seen_hash, status, body)) =
            store::claim_idempotency_key(&mut tx, &scope, idem.key, &hash).await?
        {
            if seen_hash != hash {
                return Err(AppError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request body",
                ));
            }
            return Ok(Outcome::Replayed {
                status: status as u16,
                body,
            });
        }
    }
    let actor = Actor {
        role: caller.actor_role(),
        token: caller.token_id(),
    };
    // Imported history keeps its own statuses and links; everything else is checked for
    // duplicates under an area lock held until commit (see `dedup::decide::find_parent`).
    let dedup = new.channel != Channel::Import && DedupParams::of(&service).enabled();
    let mut report = store::insert(
        &mut tx,
        &new,
        &service.agency,
        service.sla_hours,
        actor,
        Utc::now(),
    )
    .await?;
    if !photos.is_empty() {
        crate::photos::store::insert(&mut tx, report.id, photos, actor).await?;
    }
    let mut parent = None;
    if dedup {
        if let Some(verdict) =
            decide::find_parent(&mut tx, &state.catalogue, &service, &report).await?
        {
            let p = store::lock(&mut tx, verdict.id)
                .await?
                .ok_or(AppError::NotFound("report"))?;
            let data = verdict.to_json(p.id);
            parent =
                Some(decide::link(&mut tx, &report, &p, "duplicate", data, None, actor).await?);
            report = store::fetch(&mut tx, report.id)
                .await?
                .ok_or(AppError::NotFound("report"))?;
        }
    }
    if let Some(idem) = &idempotency {
        let mut body = serde_json::to_value(view(state, &report)).map_err(AppError::internal)?;
        if !photos.is_empty() {
            let views: Vec<_> = photos.iter().map(StoredPhoto::view).collect();
            body["photos"] = serde_json::to_value(views).map_err(AppError::internal)?;
        }
        store::store_idempotent_response(&mut tx, &scope, idem.key, 201, &body, report.id).await?;
    }
    tx.commit().await?;
    state.metrics.reports_created.inc();
    index_after_commit(state, &report);
    if let Some(parent) = &parent {
        index_after_commit(state, parent);
    }
    Ok(Outcome::Created(Box::new(report)))
}

/// Changes a report's status (staff only), recording who, when, from, to and the note.
pub async fn change_status(
    state: &AppState,
    id: Uuid,
    to: Status,
    note: Option<&str>,
    caller: &Caller,
) -> Result<Report, AppError> {
    let mut tx = state.pool.begin().await?;
    let current = store::lock(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    if to == Status::Duplicate {
        return Err(AppError::invalid(
            "status",
            "use POST /api/v1/reports/{id}/merge to mark a duplicate, so it is linked to its parent",
        ));
    }
    let from = current.status();
    let actor = Actor {
        role: caller.actor_role(),
        token: caller.token_id(),
    };
    store::set_status(&mut tx, id, to, note, None).await?;
    store::insert_event(
        &mut tx,
        id,
        "status",
        Some(from),
        Some(to),
        note,
        actor,
        serde_json::json!({}),
    )
    .await?;
    store::outbox(
        &mut tx,
        id,
        "report.status_changed",
        serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
    )
    .await?;
    let report = store::fetch(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    tx.commit().await?;
    index_after_commit(state, &report);
    Ok(report)
}

/// The report a public path names (id, reference or imported id), or 404 when there is none
/// or moderation hid it: a hidden report is not there for the public, whatever the path.
pub async fn find_visible(state: &AppState, key: &str) -> Result<Report, AppError> {
    store::find(&state.pool, key)
        .await?
        .filter(|r| !r.hidden)
        .ok_or(AppError::NotFound("report"))
}

/// Puts a freshly committed report into the live index.
pub fn index_after_commit(state: &AppState, report: &Report) {
    if report.hidden {
        state.spatial_index.remove(report.id);
    } else {
        state
            .spatial_index
            .upsert(Incident::from_report(report, &state.catalogue));
    }
}

/// The public view of a report.
pub fn view(state: &AppState, r: &Report) -> ReportView {
    let (service_name, group) = state.catalogue.get(&r.service_code).map_or_else(
        || (r.service_code.clone(), "Other".to_owned()),
        |s| (s.service_name.clone(), s.group.clone()),
    );
    ReportView {
        id: r.id,
        reference: r.reference.clone(),
        service_code: r.service_code.clone(),
        service_name,
        group,
        status: r.status(),
        open311_status: r.status().open311().to_owned(),
        status_notes: r.status_notes.clone(),
        description: r.description.clone(),
        address: r.address.clone(),
        lat: r.lat,
        lon: r.lon,
        channel: r.channel.clone(),
        requested_at: r.requested_at,
        updated_at: r.updated_at,
        closed_at: r.closed_at,
        supporters: r.supporters,
        duplicate_of: r
            .duplicate_of
            .zip(r.duplicate_of_reference.clone())
            .map(|(id, reference)| ParentRef { id, reference }),
        tracking_url: format!("{}/#/track/{}", state.settings.public_url, r.reference),
    }
}
