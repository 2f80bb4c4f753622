//! Dedup decisions: at intake (inside the intake transaction, under an area lock, against
//! `PostGIS`), from the live index (suggestions, evaluation, benches), and by staff (merge,
//! unmerge), plus "me too".

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::model::{Candidate, DedupParams, Relation, Scored};
use super::{scoring, store};
use crate::app::AppState;
use crate::auth::Caller;
use crate::catalogue::{Catalogue, Service};
use crate::domain::{Actor, Contact, Report, Status};
use crate::error::AppError;
use crate::geo::Position;
use crate::reports::store as reports_store;
use crate::spatial_index::{Incident, SpatialIndex};

/// H3 resolution of the lock cells: edges of about 460 m, so the ring around a report's cell
/// covers every point within [`LOCK_REACH_M`] of it.
const LOCK_RESOLUTION: h3o::Resolution = h3o::Resolution::Eight;
/// A conservative inner radius of a resolution-8 ring (the smallest cells, near pentagons,
/// have edges of about 0.5 of the mean).
const LOCK_REACH_M: f64 = 200.0;

/// The advisory-lock keys an intake at `position` takes: one per (service group, coarse H3
/// cell) for the report's cell and its neighbours. Two reports within `radius_m` of each other
/// always share the cell of one of them, so their intakes run one after the other and the
/// second sees the first as a candidate.
pub fn lock_keys(position: Position, radius_m: f64, group: &str) -> Vec<i64> {
    let k = (radius_m / LOCK_REACH_M).ceil().max(1.0) as u32;
    let cells: Vec<h3o::CellIndex> = position.h3_cell(LOCK_RESOLUTION).grid_disk(k);
    cells
        .into_iter()
        .map(|cell| {
            let mut h = Sha256::new();
            h.update(b"citypin-dedup\0");
            h.update(group.as_bytes());
            h.update([0]);
            h.update(u64::from(cell).to_be_bytes());
            let d = h.finalize();
            i64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
        })
        .collect()
}

/// Service codes that may hold duplicates of `service`: itself and the rest of its group.
pub fn related_codes(catalogue: &Catalogue, service: &Service) -> Vec<String> {
    catalogue
        .all()
        .iter()
        .filter(|s| s.group == service.group)
        .map(|s| s.service_code.clone())
        .collect()
}

fn relation(service: &Service, code: &str) -> Relation {
    if code == service.service_code {
        Relation::SameService
    } else {
        Relation::SameGroup
    }
}

fn age_hours(now: DateTime<Utc>, then: DateTime<Utc>) -> f64 {
    // Clocks of two citypin hosts may differ by a little: a candidate "from the future" is
    // taken as brand new rather than dropped.
    ((now - then).num_milliseconds() as f64 / 3_600_000.0).max(0.0)
}

/// Where an intake of `service` at `position`, made at `requested_at`, looks for its parent;
/// `None` when the service has dedup off.
pub fn area(
    catalogue: &Catalogue,
    service: &Service,
    position: Position,
    requested_at: DateTime<Utc>,
    exclude: Uuid,
) -> Option<store::Area> {
    let params = DedupParams::of(service);
    if !params.enabled() {
        return None;
    }
    Some(store::Area {
        lock_keys: lock_keys(position, params.radius_m, &service.group),
        boxes: crate::geo::circle_bboxes(position, params.radius_m),
        codes: related_codes(catalogue, service),
        since: requested_at - chrono::Duration::seconds((params.window_hours * 3600.0) as i64),
        exclude,
    })
}

/// The best parent among the candidates read under the area lock, if it clears the threshold.
pub fn best_parent(
    service: &Service,
    description: &str,
    position: Position,
    requested_at: DateTime<Utc>,
    rows: &[store::CandidateRow],
) -> Option<Scored> {
    let params = DedupParams::of(service);
    let candidates = rows.iter().filter_map(|r| {
        Some(Candidate {
            id: r.id,
            distance_m: position.distance_m(r.position()?),
            age_hours: age_hours(requested_at, r.requested_at),
            relation: relation(service, &r.service_code),
            description: &r.description,
        })
    });
    scoring::best(&params, description, candidates)
}

/// Finds the parent of a stored report inside its transaction, after taking the area lock
/// (held until commit), reading candidates from `PostGIS`: the live index may not yet hold a
/// report that another process committed a moment ago. Whichever of two twin intakes takes
/// the lock second sees the first one's committed report and links to it. (Intake itself
/// takes the lock before its insert, in the same call as its idempotency claim: see
/// [`crate::intake`].)
pub async fn find_parent(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
    service: &Service,
    new: &Report,
) -> Result<Option<Scored>, sqlx::Error> {
    let Some(area) = area(catalogue, service, new.position(), new.requested_at, new.id) else {
        return Ok(None);
    };
    let rows = store::candidates(conn, &area).await?;
    Ok(best_parent(
        service,
        &new.description,
        new.position(),
        new.requested_at,
        &rows,
    ))
}

/// The data recorded on both reports' events by a duplicate link.
pub fn link_data(
    mut data: serde_json::Value,
    child: (Uuid, &str, Status, i32),
    parent: (Uuid, &str),
) -> serde_json::Value {
    let (child_id, child_reference, from_status, supporters) = child;
    data["parent"] = serde_json::json!(parent.0);
    data["parent_reference"] = serde_json::json!(parent.1);
    data["child"] = serde_json::json!(child_id);
    data["child_reference"] = serde_json::json!(child_reference);
    data["from_status"] = serde_json::json!(from_status.as_str());
    data["supporters_added"] = serde_json::json!(1 + supporters);
    data
}

/// Scores the open incidents of the live index around `position` as parents of a new report
/// of `service` made at `now`, best first. The index holds no descriptions, so text does not
/// count here.
pub fn score_from_index(
    spatial_index: &SpatialIndex,
    service: &Service,
    position: Position,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<(Scored, Incident)> {
    let params = DedupParams::of(service);
    if !params.enabled() {
        return Vec::new();
    }
    let window = chrono::Duration::seconds((params.window_hours * 3600.0) as i64);
    let hits = spatial_index.nearby(position, params.radius_m, 64, |i| {
        i.status.is_open()
            && *i.group == *service.group
            && i.requested_at <= now
            && now - i.requested_at <= window
    });
    let mut out: Vec<(Scored, Incident)> = hits
        .into_iter()
        .filter_map(|h| {
            let c = Candidate {
                id: h.incident.id,
                distance_m: h.distance_m,
                age_hours: age_hours(now, h.incident.requested_at),
                relation: relation(service, &h.incident.service_code),
                description: "",
            };
            scoring::score(&params, "", &c).map(|s| (s, h.incident))
        })
        .collect();
    out.sort_by(|a, b| {
        b.0.score
            .total_cmp(&a.0.score)
            .then(a.0.reasons.distance_m.total_cmp(&b.0.reasons.distance_m))
            .then(a.0.id.cmp(&b.0.id))
    });
    out.truncate(limit);
    out
}

/// The in-process decision: the parent the live index suggests, if it clears the threshold.
pub fn decide_from_index(
    spatial_index: &SpatialIndex,
    service: &Service,
    position: Position,
    now: DateTime<Utc>,
) -> Option<Scored> {
    let threshold = DedupParams::of(service).threshold;
    score_from_index(spatial_index, service, position, now, 1)
        .into_iter()
        .map(|(s, _)| s)
        .find(|s| s.score >= threshold)
}

/// Links a stored report to its parent inside the caller's transaction: closed as duplicate,
/// its reporter subscribed to the parent, the parent's supporters raised by one plus the
/// child's own supporters, and an event on both. Returns the parent as it now is.
pub async fn link(
    conn: &mut PgConnection,
    child: &Report,
    parent: &Report,
    kind: &str,
    data: serde_json::Value,
    note: Option<&str>,
    actor: Actor<'_>,
) -> Result<Report, sqlx::Error> {
    let added = 1 + child.supporters;
    let data = link_data(
        data,
        (child.id, &child.reference, child.status(), child.supporters),
        (parent.id, &parent.reference),
    );
    let status_note = format!("duplicate of {}", parent.reference);
    let parent_note = format!("{} linked as a duplicate", child.reference);
    store::link(
        conn,
        &store::LinkWrite {
            child: child.id,
            parent: parent.id,
            added,
            kind,
            from_status: child.status(),
            status_note: &status_note,
            child_note: note.unwrap_or(&status_note),
            parent_note: note.unwrap_or(&parent_note),
            actor,
            data: &data,
        },
    )
    .await?;
    reports_store::fetch(conn, parent.id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Follows `duplicate_of` links to the open report at the root of a group.
async fn root(conn: &mut PgConnection, mut report: Report) -> Result<Report, AppError> {
    for _ in 0..32 {
        let Some(parent) = report.duplicate_of else {
            return Ok(report);
        };
        report = reports_store::fetch(conn, parent)
            .await?
            .ok_or(AppError::NotFound("report"))?;
    }
    Err(AppError::internal("duplicate chain longer than 32"))
}

/// Staff merge: `child` becomes a duplicate of `into` (or of the root of `into`'s group).
pub async fn merge(
    state: &AppState,
    child: Uuid,
    into: Uuid,
    note: Option<&str>,
    caller: &Caller,
) -> Result<Report, AppError> {
    let mut tx = state.pool.begin().await?;
    let target = reports_store::fetch(&mut tx, into)
        .await?
        .ok_or_else(|| AppError::invalid("into", "no such report"))?;
    let target = root(&mut tx, target).await?;
    if target.id == child {
        return Err(AppError::Conflict(
            "a report cannot be merged into itself or into one of its own duplicates".into(),
        ));
    }
    let (c, p) = store::lock_pair(&mut tx, child, target.id).await?;
    let c = c.ok_or(AppError::NotFound("report"))?;
    let p = p.ok_or_else(|| AppError::invalid("into", "no such report"))?;
    if c.status() == Status::Duplicate {
        return Err(AppError::Conflict(format!(
            "{} is already a duplicate; unmerge it first",
            c.reference
        )));
    }
    if p.duplicate_of.is_some() {
        return Err(AppError::Conflict(
            "the target changed while merging; try again".into(),
        ));
    }
    if c.hidden || p.hidden {
        return Err(AppError::NotFound("report"));
    }
    let data = serde_json::json!({"manual": true});
    let parent = link(&mut tx, &c, &p, "merge", data, note, caller.actor()).await?;
    let child = reports_store::fetch(&mut tx, c.id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    tx.commit().await?;
    state
        .spatial_index
        .apply_all_committed([&child, &parent], &state.catalogue);
    Ok(child)
}

/// Staff undo of a merge (automatic or manual): the duplicate gets back its previous status
/// and the parent loses the supporters the link gave it.
pub async fn unmerge(
    state: &AppState,
    child: Uuid,
    note: Option<&str>,
    caller: &Caller,
) -> Result<Report, AppError> {
    let mut tx = state.pool.begin().await?;
    let current = reports_store::fetch(&mut tx, child)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    let Some(parent_id) = current.duplicate_of else {
        return Err(AppError::Conflict(format!(
            "{} is not merged into another report",
            current.reference
        )));
    };
    let (c, p) = store::lock_pair(&mut tx, child, parent_id).await?;
    let (c, p) = (
        c.ok_or(AppError::NotFound("report"))?,
        p.ok_or(AppError::NotFound("report"))?,
    );
    if c.duplicate_of != Some(p.id) {
        return Err(AppError::Conflict(
            "the report changed while unmerging; try again".into(),
        ));
    }
    let link = store::last_link(&mut tx, c.id).await?.unwrap_or_default();
    let restored = link
        .get("from_status")
        .and_then(serde_json::Value::as_str)
        .and_then(Status::parse)
        .filter(|s| *s != Status::Duplicate)
        .unwrap_or(Status::New);
    let removed = link
        .get("supporters_added")
        .and_then(serde_json::Value::as_i64)
        .map_or(1, |n| n as i32);
    let status_note = format!("unmerged from {}", p.reference);
    store::unlink(&mut tx, c.id, restored, &status_note).await?;
    store::add_supporters(&mut tx, p.id, -removed).await?;
    let data = serde_json::json!({
        "parent": p.id, "parent_reference": p.reference,
        "child": c.id, "child_reference": c.reference,
        "restored_status": restored.as_str(), "supporters_removed": removed,
    });
    let a = caller.actor();
    let note = note.unwrap_or(&status_note);
    reports_store::insert_event(
        &mut tx,
        c.id,
        "unmerge",
        Some(Status::Duplicate),
        Some(restored),
        Some(note),
        a,
        data.clone(),
    )
    .await?;
    reports_store::insert_event(
        &mut tx,
        p.id,
        "unmerge",
        None,
        None,
        Some(note),
        a,
        data.clone(),
    )
    .await?;
    reports_store::outbox(&mut tx, c.id, "report.unmerged", data).await?;
    let child = reports_store::fetch(&mut tx, c.id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    let parent = reports_store::fetch(&mut tx, p.id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    tx.commit().await?;
    state
        .spatial_index
        .apply_all_committed([&child, &parent], &state.catalogue);
    Ok(child)
}

/// Who a "me too" comes from, for counting each supporter once per report.
pub enum Supporter<'a> {
    /// Known by their e-mail or phone (stored as a contact, subscribed).
    Contact(&'a Contact),
    /// Anonymous, known only by the request's `Idempotency-Key`.
    Key(&'a str),
}

impl Supporter<'_> {
    /// A hash of the supporter's identity: the claims table never holds the contact itself.
    fn key_hash(&self) -> Option<Vec<u8>> {
        let identity = match self {
            Self::Contact(c) => {
                if let Some(e) = &c.email {
                    format!("email:{}", e.as_str())
                } else if let Some(p) = &c.phone {
                    format!("phone:{}", p.digits())
                } else {
                    return None;
                }
            }
            Self::Key(k) => format!("key:{k}"),
        };
        Some(Sha256::digest(identity.as_bytes()).to_vec())
    }
}

/// "Me too": raises the supporter count of the open report at the root of `id`'s group, once
/// per supporter, and subscribes the contact if one is given. Returns the report and whether
/// this call counted.
pub async fn support(
    state: &AppState,
    id: Uuid,
    supporter: &Supporter<'_>,
    idempotency_key: Option<&str>,
    caller: &Caller,
) -> Result<(Report, bool), AppError> {
    let mut tx = state.pool.begin().await?;
    let report = reports_store::fetch(&mut tx, id)
        .await?
        .filter(|r| !r.hidden)
        .ok_or(AppError::NotFound("report"))?;
    let report = root(&mut tx, report).await?;
    let report = reports_store::lock(&mut tx, report.id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    if !report.status().is_open() {
        return Err(AppError::Conflict(format!(
            "{} is {}; a closed report takes no more supporters",
            report.reference,
            report.status().as_str()
        )));
    }
    // A contact with only a name cannot be told apart from the next one: fall back to the key.
    let hash = supporter
        .key_hash()
        .or_else(|| idempotency_key.and_then(|k| Supporter::Key(k).key_hash()));
    let Some(hash) = hash else {
        return Err(AppError::bad_field(
            "Idempotency-Key",
            "send this header (a unique value per supporter), or a contact with an e-mail or phone",
        ));
    };
    if !store::claim_support(&mut tx, report.id, &hash).await? {
        tx.rollback().await?;
        return Ok((report, false));
    }
    if let Supporter::Contact(c) = supporter {
        reports_store::add_subscriber(&mut tx, report.id, c).await?;
    }
    store::add_supporters(&mut tx, report.id, 1).await?;
    reports_store::insert_event(
        &mut tx,
        report.id,
        "supporter",
        None,
        None,
        None,
        caller.actor(),
        serde_json::json!({"subscribed": matches!(supporter, Supporter::Contact(_))}),
    )
    .await?;
    reports_store::outbox(
        &mut tx,
        report.id,
        "report.supporter",
        serde_json::json!({}),
    )
    .await?;
    let report = reports_store::fetch(&mut tx, report.id)
        .await?
        .ok_or(AppError::NotFound("report"))?;
    tx.commit().await?;
    state
        .spatial_index
        .apply_committed(&report, &state.catalogue);
    Ok((report, true))
}
