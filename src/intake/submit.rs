//! The intake transaction: four round trips whether dedup is on or off. Begin; claim the
//! idempotency key and take the dedup area lock with the candidates; write everything (report,
//! events, outbox, the duplicate link, the stored response) in one call of `intake_write`;
//! commit. The live index hears of the report after commit.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::NewReport;
use super::store::{self, IntakeLink, IntakeWrite};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalogue::Service;
use crate::dedup::decide;
use crate::dedup::model::Scored;
use crate::domain::{Actor, Channel, Reference, Report, Status};
use crate::error::AppError;
use crate::geo::h3_cell_i64;
use crate::idempotency::{self, Claim, Fingerprint, IdempotencyKey, Replay};
use crate::photos::model::StoredPhoto;

/// Intakes admitted at once per pool connection. Past that, the pool's queue would only make
/// every accepted write slower (each waits for the ones ahead) until the acquire timeout turns
/// them into slow 503s; a write past the bound is refused at once with 503 and `Retry-After`,
/// and the ones admitted keep a short wait. Four per connection keeps the connections busy
/// (a transaction spends part of its time in the service, between round trips).
pub const ADMITTED_PER_CONNECTION: usize = 4;

/// What a submission produced.
pub enum Outcome {
    /// A new report was stored.
    Created(Box<Report>),
    /// The same key and request were seen before: the first answer, to send again.
    Replayed(Replay),
}

/// The idempotency a submission asks for: the client's key and its request's fingerprint.
#[derive(Clone, Copy)]
pub struct Idempotent<'a> {
    pub key: &'a IdempotencyKey,
    pub fingerprint: Fingerprint,
}

/// Stores a new report, with references to photos already in the photo store written in the
/// same transaction (and listed in the answer a replay returns). With a key, a replay returns
/// the first answer and the same key with another request is refused (422).
pub async fn submit(
    state: &AppState,
    new: NewReport,
    caller: &Caller,
    idempotent: Option<Idempotent<'_>>,
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
    let actor = caller.actor();
    // Stored to the microsecond, as the database keeps it, so the answer built here equals
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
    let claim = idempotent.map(|i| Claim {
        scope: &scope,
        key: i.key,
        fingerprint: i.fingerprint,
    });
    let mut tx = state.pool.begin().await?;
    let (claimed, candidates) = if claim.is_some() || area.is_some() {
        store::claim_and_candidates(&mut tx, claim, area.as_ref()).await?
    } else {
        (true, Vec::new())
    };
    if let (false, Some(c)) = (claimed, claim) {
        return Ok(Outcome::Replayed(idempotency::stored(&mut tx, c).await?));
    }
    let reporter = match &new.contact {
        Some(c) => {
            Some(crate::reports::store::insert_contact(&mut tx, c, new.channel, actor, now).await?)
        }
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
    let (change_seq, parent) = write(
        state,
        &mut tx,
        &mut report,
        reporter,
        actor,
        parent.as_ref(),
        claim,
        photos,
    )
    .await?;
    report.change_seq = change_seq;
    if !photos.is_empty() {
        crate::photos::store::insert(&mut tx, report.id, photos, actor).await?;
    }
    tx.commit().await?;
    state.metrics.reports_created.inc();
    state
        .spatial_index
        .apply_all_committed(std::iter::once(&report).chain(&parent), &state.catalogue);
    Ok(Outcome::Created(Box::new(report)))
}

/// Writes the planned report in one call, drawing its reference (again on the rare
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
    claim: Option<Claim<'_>>,
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
        let body = match claim {
            Some(_) => Some(super::response::body(state, report, photos)?),
            None => None,
        };
        let w = IntakeWrite {
            report,
            reporter,
            actor,
            link: parent
                .zip(link_data.as_ref())
                .map(|((v, _), data)| IntakeLink {
                    parent: v.id,
                    parent_note: &parent_note,
                    data,
                }),
            response: claim
                .zip(body.as_ref())
                .map(|(c, b)| (c.scope, c.key.as_str(), b)),
        };
        if let Some(done) = store::insert_intake(tx, &w).await? {
            return Ok(done);
        }
    }
    Err(AppError::internal("could not draw a unique reference"))
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
        status,
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
