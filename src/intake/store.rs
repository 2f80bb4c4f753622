//! All SQL of intake: the first statement (the idempotency claim with the dedup area lock
//! and candidates, one round trip) and the last (everything the intake writes, one call).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::NewReport;
use crate::dedup::store::{Area, CandidateRow};
use crate::domain::{Actor, Reference, Report, Status};
use crate::geo::h3_cell_i64;
use crate::idempotency::Claim;
use crate::reports::store as reports;

/// Intake's first statement, one round trip (the `intake_claim_and_candidates` function in
/// migration 0011): claims the idempotency key if there is one, then, if there is an area,
/// takes its locks (held until commit) and reads the open, visible reports of its codes inside
/// its boxes, reported since its `since`. Returns whether the key was claimed (`false`: it was
/// seen before, nothing was locked) and the candidates. The caller measures the exact distance
/// (the same haversine as the live index).
pub async fn claim_and_candidates(
    conn: &mut PgConnection,
    claim: Option<Claim<'_>>,
    area: Option<&Area>,
) -> Result<(bool, Vec<CandidateRow>), sqlx::Error> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT * FROM intake_claim_and_candidates(");
    q.push_bind(claim.map(|c| c.scope))
        .push(", ")
        .push_bind(claim.map(|c| c.key.as_str()))
        .push(", ")
        .push_bind(claim.map(|c| c.fingerprint.as_bytes().to_vec()));
    crate::dedup::store::push_area_args(&mut q, area);
    crate::dedup::store::read_candidates(q, conn).await
}

/// The duplicate link an intake writes with its report (decided under the area lock).
pub struct IntakeLink<'a> {
    pub parent: Uuid,
    pub parent_note: &'a str,
    /// Recorded on both reports' events and on the outbox event.
    pub data: &'a serde_json::Value,
}

/// Everything one intake writes, in one call (see [`insert_intake`]).
pub struct IntakeWrite<'a> {
    /// The row as it is to be stored (status `new`, or `duplicate` with its parent).
    pub report: &'a Report,
    pub reporter: Option<Uuid>,
    pub actor: Actor<'a>,
    pub link: Option<IntakeLink<'a>>,
    /// The response a replay of the claimed `Idempotency-Key` returns: scope, key, body.
    pub response: Option<(&'a str, &'a str, &'a serde_json::Value)>,
}

/// Writes a new report in one call of `intake_write` (migration 0012), the intake's only write
/// round trip: the report (its reference unique), its reporter's subscription, its `created`
/// event and outbox event, and, when it is a duplicate, the link (events on both reports, the
/// reporter subscribed to the parent, the parent's supporters raised, a `report.duplicate`
/// outbox event), and the stored response of its idempotency key. Returns `None`, having
/// written nothing, when the reference is taken (draw another), else the new row's change
/// sequence and the parent as it now is.
pub async fn insert_intake(
    conn: &mut PgConnection,
    w: &IntakeWrite<'_>,
) -> Result<Option<(i64, Option<Report>)>, sqlx::Error> {
    use sqlx::{FromRow, Row};
    let r = w.report;
    // UUIDv7 in the order the rows are written, so history sorts them so: the created event
    // and outbox row, then the two duplicate events and the duplicate outbox row.
    let rows_added = if w.link.is_some() { 5 } else { 2 };
    let row_ids: Vec<Uuid> = (0..rows_added).map(|_| Uuid::now_v7()).collect();
    let link = w.link.as_ref();
    let row = sqlx::query(
        "SELECT * FROM intake_write($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
             $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31)",
    )
    .bind(r.id)
    .bind(&r.reference)
    .bind(&r.service_code)
    .bind(r.status().as_str())
    .bind(&r.status_notes)
    .bind(&r.description)
    .bind(&r.address)
    .bind(&r.zipcode)
    .bind(&r.agency)
    .bind(&r.channel)
    .bind(r.lon)
    .bind(r.lat)
    .bind(r.h3_cell)
    .bind(r.requested_at)
    .bind(r.updated_at)
    .bind(r.closed_at)
    .bind(r.due_at)
    .bind(r.duplicate_of)
    .bind(r.supporters)
    .bind(&r.media_url)
    .bind(&r.attributes)
    .bind(w.reporter)
    .bind(w.actor.role)
    .bind(w.actor.token)
    .bind(row_ids)
    .bind(link.map(|l| l.parent))
    .bind(link.map(|l| l.parent_note))
    .bind(link.map(|l| l.data))
    .bind(w.response.map(|(scope, _, _)| scope))
    .bind(w.response.map(|(_, key, _)| key))
    .bind(w.response.map(|(_, _, body)| body))
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let change_seq: i64 = row.try_get("new_change_seq")?;
    let parent = match link {
        Some(_) => Some(Report::from_row(&row)?),
        None => None,
    };
    Ok(Some((change_seq, parent)))
}

/// Stores a new report as it is, with no dedup decision: its reporter (if any), its `created`
/// event and an outbox event. Retries with a fresh reference on the (rare) collision. The
/// service's intake is [`crate::intake::submit`]; this plain write is for interleaving tests.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewReport,
    agency: &str,
    sla_hours: Option<i32>,
    actor: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let reporter_id = match &new.contact {
        Some(c) => Some(reports::insert_contact(conn, c, new.channel, actor, now).await?),
        None => None,
    };
    let id = Uuid::now_v7();
    let due_at = sla_hours.map(|h| now + chrono::Duration::hours(i64::from(h)));
    for attempt in 0..5 {
        let reference = Reference::random();
        let inserted = sqlx::query!(
            "INSERT INTO reports (id, reference, service_code, status, description, address, zipcode,
                 agency, channel, location, h3_cell, requested_at, updated_at, due_at, media_url,
                 attributes, reporter_id, created_by)
             VALUES ($1, $2, $3, 'new', $4, $5, $6, $7, $8, ST_SetSRID(ST_MakePoint($9, $10), 4326),
                 $11, $12, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (reference) DO NOTHING",
            id,
            reference.as_str(),
            new.service_code.as_str(),
            new.description.as_str(),
            new.address,
            new.zipcode,
            agency,
            new.channel.as_str(),
            new.position.lon(),
            new.position.lat(),
            h3_cell_i64(new.position),
            now,
            due_at,
            new.media_url,
            serde_json::Value::Object(new.attributes.clone()),
            reporter_id,
            actor.token,
        )
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            break;
        }
        if attempt == 4 {
            return Err(sqlx::Error::Protocol(
                "could not draw a unique reference".into(),
            ));
        }
    }
    if let Some(reporter) = reporter_id {
        reports::subscribe(conn, id, reporter).await?;
    }
    reports::insert_event(
        conn,
        id,
        "created",
        None,
        Some(Status::New),
        None,
        actor,
        serde_json::json!({}),
    )
    .await?;
    reports::outbox(conn, id, "report.created", serde_json::json!({})).await?;
    reports::fetch(conn, id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}
