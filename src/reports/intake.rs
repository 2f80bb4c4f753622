//! Intake and status changes: one `PostGIS` transaction each (the report or change, its
//! history event, idempotency row and outbox event), then the live index is updated after
//! commit. An intake is four round trips whether dedup is on or off: begin; claim the
//! idempotency key and take the dedup area lock with the candidates; write everything (report,
//! events, outbox, the duplicate link, the stored response) in one statement; commit.

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::catalogue::Service;
use super::model::{
    Channel, NewReport, ParentRef, Reference, Report, ReportView, Status, StatusColumn, h3_cell_i64,
};
use super::store::{self, Actor};
use crate::app::AppState;
use crate::auth::Caller;
use crate::dedup::decide;
use crate::dedup::model::Scored;
use crate::dedup::store as dedup_store;
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

/// Intakes admitted at once per pool connection. Past that, the pool's queue would only make
/// every accepted write slower (each waits for the ones ahead) until the acquire timeout turns
/// them into slow 503s; a write past the bound is refused at once with 503 and `Retry-After`,
/// and the ones admitted keep a short wait. Four per connection keeps the connections busy
/// (a transaction spends part of its time in the service, between round trips).
pub const ADMITTED_PER_CONNECTION: usize = 4;

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
    let _admitted = state
        .intake_admission
        .try_acquire()
        .map_err(|_| AppError::Unavailable)?;
    let scope = caller
        .token_id()
        .map_or_else(|| "public".to_owned(), |t| t.to_string());
    let actor = Actor {
        role: caller.actor_role(),
        token: caller.token_id(),
    };
    // Stored to the microsecond, as the database keeps it, so the response built here equals
    // what a later read returns.
    let now = Utc::now().trunc_subsecs(6);
    let id = Uuid::now_v7();
    // Imported history keeps its own statuses and links; everything else is checked for
    // duplicates under an area lock held until commit. The lock is taken before the insert,
    // in the same round trip as the idempotency claim, and the candidates come from PostGIS
    // (the live index may not yet hold a twin another process just committed).
    let area = (new.channel != Channel::Import)
        .then(|| decide::area(&state.catalogue, &service, new.position, now, id))
        .flatten();
    let hash = idempotency
        .as_ref()
        .map(|i| Sha256::digest(i.body).to_vec());
    let claim = idempotency
        .as_ref()
        .zip(hash.as_deref())
        .map(|(i, h)| dedup_store::Claim {
            scope: &scope,
            key: i.key,
            request_hash: h,
        });
    let mut tx = state.pool.begin().await?;
    let (claimed, candidates) = if claim.is_some() || area.is_some() {
        dedup_store::claim_and_candidates(&mut tx, claim, area.as_ref()).await?
    } else {
        (true, Vec::new())
    };
    if let (false, Some(c)) = (claimed, claim) {
        return replay(&mut tx, c).await;
    }
    let reporter = match &new.contact {
        Some(c) => Some(store::insert_contact(&mut tx, c, new.channel, actor, now).await?),
        None => None,
    };
    let parent = area
        .as_ref()
        .and_then(|_| {
            decide::best_parent(
                &service,
                new.description.as_str(),
                new.position,
                now,
                &candidates,
            )
        })
        .and_then(|v| {
            let row = candidates.iter().find(|c| c.id == v.id)?;
            Some((v, row.reference.clone()))
        });
    let mut report = planned(&new, id, &service, now, parent.as_ref());
    let response = idempotency.as_ref().map(|i| (scope.as_str(), i.key));
    let (change_seq, parent) = write(
        state,
        &mut tx,
        &mut report,
        reporter,
        actor,
        parent.as_ref(),
        response,
        photos,
    )
    .await?;
    report.change_seq = change_seq;
    if !photos.is_empty() {
        crate::photos::store::insert(&mut tx, report.id, photos, actor).await?;
    }
    tx.commit().await?;
    state.metrics.reports_created.inc();
    index_after_commit(state, &report);
    if let Some(parent) = &parent {
        index_after_commit(state, parent);
    }
    Ok(Outcome::Created(Box::new(report)))
}

/// Writes the planned report in one statement, drawing its reference (again on the rare
/// collision). Returns its change sequence and the parent as it now is.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one intake, each used once"
)]
async fn write(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    report: &mut Report,
    reporter: Option<Uuid>,
    actor: Actor<'_>,
    parent: Option<&(Scored, String)>,
    response: Option<(&str, &str)>,
    photos: &[StoredPhoto],
) -> Result<(i64, Option<Report>), AppError> {
    for _ in 0..5 {
        Reference::random()
            .as_str()
            .clone_into(&mut report.reference);
        let link_data = parent.map(|(v, parent_reference)| {
            decide::link_data(
                v.to_json(v.id),
                (report.id, &report.reference, Status::New, 0),
                (v.id, parent_reference),
            )
        });
        let parent_note = format!("{} linked as a duplicate", report.reference);
        let body = match response {
            Some(_) => Some(response_body(state, report, photos)?),
            None => None,
        };
        let w = store::IntakeWrite {
            report,
            reporter,
            actor,
            link: parent
                .zip(link_data.as_ref())
                .map(|((v, _), data)| store::IntakeLink {
                    parent: v.id,
                    parent_note: &parent_note,
                    data,
                }),
            response: response
                .zip(body.as_ref())
                .map(|((scope, key), b)| (scope, key, b)),
        };
        if let Some(done) = store::insert_intake(tx, &w).await? {
            return Ok(done);
        }
    }
    Err(AppError::internal(sqlx::Error::Protocol(
        "could not draw a unique reference".into(),
    )))
}

/// The answer to a key seen before: the first response for the same body, 422 for another.
async fn replay(
    tx: &mut sqlx::PgConnection,
    claim: dedup_store::Claim<'_>,
) -> Result<Outcome, AppError> {
    let (seen_hash, status, body) = store::stored_response(tx, claim.scope, claim.key)
        .await?
        .ok_or_else(|| AppError::internal("an idempotency key claimed by a twin vanished"))?;
    if seen_hash != claim.request_hash {
        return Err(AppError::invalid(
            "Idempotency-Key",
            "was already used with a different request body",
        ));
    }
    Ok(Outcome::Replayed {
        status: status as u16,
        body,
    })
}

/// The response stored for replays: the view, with the photos it came with.
fn response_body(
    state: &AppState,
    report: &Report,
    photos: &[StoredPhoto],
) -> Result<serde_json::Value, AppError> {
    let mut body = serde_json::to_value(view(state, report)).map_err(AppError::internal)?;
    if !photos.is_empty() {
        let views: Vec<_> = photos.iter().map(StoredPhoto::view).collect();
        body["photos"] = serde_json::to_value(views).map_err(AppError::internal)?;
    }
    Ok(body)
}

/// The row a new report is stored as: `new`, or closed as a duplicate of `parent` (decided
/// under the area lock, with the parent's reference). Its reference is drawn by the caller and
/// its change sequence comes back from the insert.
fn planned(
    new: &NewReport,
    id: Uuid,
    service: &Service,
    now: DateTime<Utc>,
    parent: Option<&(Scored, String)>,
) -> Report {
    let (status, status_notes, closed_at) = match parent {
        Some((_, reference)) => (
            Status::Duplicate,
            Some(format!("duplicate of {reference}")),
            Some(now),
        ),
        None => (Status::New, None, None),
    };
    Report {
        id,
        reference: String::new(),
        external_id: None,
        service_code: new.service_code.as_str().to_owned(),
        status: StatusColumn(status),
        status_notes,
        description: new.description.as_str().to_owned(),
        address: new.address.clone(),
        zipcode: new.zipcode.clone(),
        agency: Some(service.agency.clone()),
        channel: new.channel.as_str().to_owned(),
        lon: new.position.lon(),
        lat: new.position.lat(),
        h3_cell: h3_cell_i64(new.position),
        requested_at: now,
        updated_at: now,
        closed_at,
        due_at: service
            .sla_hours
            .map(|h| now + chrono::Duration::hours(i64::from(h))),
        duplicate_of: parent.map(|(v, _)| v.id),
        duplicate_of_reference: parent.map(|(_, r)| r.clone()),
        supporters: 0,
        media_url: new.media_url.clone(),
        attributes: serde_json::Value::Object(new.attributes.clone()),
        hidden: false,
        change_seq: 0,
    }
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
