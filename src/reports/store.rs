//! All SQL of the reports capability.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::model::HistoryEvent;
use crate::domain::{Actor, CONSENT_TEXT, Channel, Contact, Report, ReportKey, Status};
use crate::geo::BBox;

/// The columns that make a [`Report`], for `SELECT ... FROM reports r` built at run time
/// ([`list`]).
const REPORT_COLUMNS: &str =
    "r.id, r.reference, r.external_id, r.service_code, r.status, r.status_notes,
    r.description, r.address, r.zipcode, r.agency, r.channel,
    ST_X(r.location) AS lon, ST_Y(r.location) AS lat, r.h3_cell,
    r.requested_at, r.updated_at, r.closed_at, r.due_at, r.duplicate_of,
    (SELECT p.reference FROM reports p WHERE p.id = r.duplicate_of) AS duplicate_of_reference,
    r.supporters, r.media_url, r.attributes, r.hidden, r.change_seq";

/// `SELECT` [`REPORT_COLUMNS`] `FROM reports r` + `$rest`, checked at compile time: the same
/// columns, spelt out again because sqlx's macros take literals only, with the overrides they
/// need (`status` decodes into [`Status`]; `lon`/`lat` stay nullable: an empty point has none).
macro_rules! select_reports {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ReportRow,
            r#"SELECT r.id, r.reference, r.external_id, r.service_code,
                r.status AS "status: Status", r.status_notes, r.description, r.address,
                r.zipcode, r.agency, r.channel, ST_X(r.location) AS lon,
                ST_Y(r.location) AS lat, r.h3_cell, r.requested_at, r.updated_at,
                r.closed_at, r.due_at, r.duplicate_of,
                (SELECT p.reference FROM reports p WHERE p.id = r.duplicate_of)
                    AS duplicate_of_reference,
                r.supporters, r.media_url, r.attributes, r.hidden, r.change_seq
             FROM reports r "# + $rest
            $(, $arg)*
        )
    };
}

/// A report row as read, before its location is known to map to a position.
#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    reference: String,
    external_id: Option<String>,
    service_code: String,
    status: Status,
    status_notes: Option<String>,
    description: String,
    address: Option<String>,
    zipcode: Option<String>,
    agency: Option<String>,
    channel: String,
    lon: Option<f64>,
    lat: Option<f64>,
    h3_cell: i64,
    requested_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    duplicate_of: Option<Uuid>,
    duplicate_of_reference: Option<String>,
    supporters: i32,
    media_url: Option<String>,
    attributes: serde_json::Value,
    hidden: bool,
    change_seq: i64,
}

impl ReportRow {
    /// The [`Report`], or `None` (logged and counted) when its location maps to no position:
    /// every `Report` this module hands out has a valid one.
    fn mapped(self) -> Option<Report> {
        let p = crate::ops::metrics::stored_position("reports", self.id, self.lon, self.lat)?;
        Some(Report {
            id: self.id,
            reference: self.reference,
            external_id: self.external_id,
            service_code: self.service_code,
            status: self.status,
            status_notes: self.status_notes,
            description: self.description,
            address: self.address,
            zipcode: self.zipcode,
            agency: self.agency,
            channel: self.channel,
            lon: p.lon(),
            lat: p.lat(),
            h3_cell: self.h3_cell,
            requested_at: self.requested_at,
            updated_at: self.updated_at,
            closed_at: self.closed_at,
            due_at: self.due_at,
            duplicate_of: self.duplicate_of,
            duplicate_of_reference: self.duplicate_of_reference,
            supporters: self.supporters,
            media_url: self.media_url,
            attributes: self.attributes,
            hidden: self.hidden,
            change_seq: self.change_seq,
        })
    }
}

/// Stores the contact a report came with, and what its owner agreed to.
pub async fn insert_contact(
    conn: &mut PgConnection,
    c: &Contact,
    channel: Channel,
    actor: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    let consent = consent_text(conn, channel, actor).await?;
    insert_reporter(conn, c, now, &consent).await
}

/// What the citizen agreed to. Details an Open311 client sends were given to that client, so
/// the record names it: the client attests the citizen gave them for this report.
async fn consent_text(
    conn: &mut PgConnection,
    channel: Channel,
    actor: Actor<'_>,
) -> Result<String, sqlx::Error> {
    if channel != Channel::Open311 {
        return Ok(CONSENT_TEXT.to_owned());
    }
    let client = sqlx::query_scalar!("SELECT name FROM api_tokens WHERE id = $1", actor.token)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(format!(
        "Submitted via Open311 client {:?}, which received these details from the citizen for this report. {CONSENT_TEXT}",
        client.unwrap_or_else(|| "unknown".into())
    ))
}

async fn insert_reporter(
    conn: &mut PgConnection,
    c: &Contact,
    now: DateTime<Utc>,
    consent_text: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO reporters (id, name, email, phone, consent_at, consent_text, notify)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        c.name,
        c.email.as_ref().map(crate::domain::Email::as_str),
        c.phone.as_ref().map(crate::domain::Phone::as_written),
        now,
        consent_text,
        c.notify,
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Stores a contact and subscribes it to a report's updates.
pub async fn add_subscriber(
    conn: &mut PgConnection,
    report: Uuid,
    c: &Contact,
) -> Result<(), sqlx::Error> {
    let reporter = insert_reporter(conn, c, Utc::now(), CONSENT_TEXT).await?;
    subscribe(conn, report, reporter).await
}

pub async fn subscribe(
    conn: &mut PgConnection,
    report: Uuid,
    reporter: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO report_subscriptions (report_id, reporter_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
        report,
        reporter
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends a history event.
#[expect(
    clippy::too_many_arguments,
    reason = "one column each; a struct would only rename them"
)]
pub async fn insert_event(
    conn: &mut PgConnection,
    report: Uuid,
    kind: &str,
    from: Option<Status>,
    to: Option<Status>,
    note: Option<&str>,
    actor: Actor<'_>,
    data: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO report_events (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Uuid::now_v7(),
        report,
        kind,
        from.map(Status::as_str),
        to.map(Status::as_str),
        note,
        actor.role,
        actor.token,
        data,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues an event for the outside world, in the caller's transaction.
pub async fn outbox(
    conn: &mut PgConnection,
    report: Uuid,
    kind: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO outbox (id, report_id, kind, payload) VALUES ($1, $2, $3, $4)",
        Uuid::now_v7(),
        report,
        kind,
        payload
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    select_reports!("WHERE r.id = $1", id)
        .fetch_optional(conn)
        .await
        .map(|r| r.and_then(ReportRow::mapped))
}

/// Public reports with these ids, in no particular order (the caller orders them).
pub async fn fetch_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Report>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = select_reports!("WHERE r.id = ANY($1) AND NOT r.hidden", ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().filter_map(ReportRow::mapped).collect())
}

/// The histories of several reports in one query, each oldest first.
pub async fn histories(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<HistoryEvent>>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT report_id, at, kind, from_status, to_status, note, actor_role, data FROM report_events
         WHERE report_id = ANY($1) ORDER BY report_id, at, id",
        ids
    )
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<Uuid, Vec<HistoryEvent>> = HashMap::new();
    for r in rows {
        out.entry(r.report_id).or_default().push(HistoryEvent {
            at: r.at,
            kind: r.kind,
            from_status: r.from_status,
            to_status: r.to_status,
            note: r.note,
            actor_role: r.actor_role,
            data: Some(r.data),
        });
    }
    Ok(out)
}

/// Finds a report by its id, its reference or its imported id.
pub async fn find(pool: &PgPool, key: &ReportKey) -> Result<Option<Report>, sqlx::Error> {
    match key {
        ReportKey::Id(id) => select_reports!("WHERE r.id = $1", id)
            .fetch_optional(pool)
            .await
            .map(|r| r.and_then(ReportRow::mapped)),
        ReportKey::Reference(reference) => {
            select_reports!("WHERE r.reference = $1", reference.as_str())
                .fetch_optional(pool)
                .await
                .map(|r| r.and_then(ReportRow::mapped))
        }
        ReportKey::External(external) => select_reports!("WHERE r.external_id = $1", external)
            .fetch_optional(pool)
            .await
            .map(|r| r.and_then(ReportRow::mapped)),
    }
}

/// Locks a report row for an update in the caller's transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    select_reports!("WHERE r.id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await
        .map(|r| r.and_then(ReportRow::mapped))
}

pub async fn history(pool: &PgPool, id: Uuid) -> Result<Vec<HistoryEvent>, sqlx::Error> {
    Ok(histories(pool, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default())
}

/// Sets a report's status in the caller's transaction; closing stamps `closed_at`.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: Status,
    note: Option<&str>,
    duplicate_of: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE reports SET status = $2, status_notes = COALESCE($3, status_notes), updated_at = now(),
             closed_at = CASE WHEN $4 THEN NULL ELSE COALESCE(closed_at, now()) END,
             duplicate_of = $5
         WHERE id = $1",
        id,
        status.as_str(),
        note,
        status.is_open(),
        duplicate_of,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters of the Open311 `GET requests` family (all optional; combined with AND).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Matched against the reference and the imported (external) id.
    pub references: Vec<String>,
    pub service_codes: Vec<String>,
    pub statuses: Vec<Status>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub bbox: Option<BBox>,
    /// Centre (lon, lat) and radius in metres.
    pub near: Option<(f64, f64, f64)>,
    pub limit: i64,
    pub offset: i64,
}

/// Lists public reports, newest first.
pub async fn list(pool: &PgPool, f: &ListFilter) -> Result<Vec<Report>, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {REPORT_COLUMNS} FROM reports r WHERE NOT r.hidden"
    ));
    if !f.references.is_empty() {
        q.push(" AND (r.reference = ANY(")
            .push_bind(f.references.clone())
            .push(") OR r.external_id = ANY(")
            .push_bind(f.references.clone())
            .push("))");
    }
    crate::db::sql::push_code_and_status_filter(&mut q, &f.service_codes, &f.statuses);
    if let Some(t) = f.start {
        q.push(" AND r.requested_at >= ").push_bind(t);
    }
    if let Some(t) = f.end {
        q.push(" AND r.requested_at <= ").push_bind(t);
    }
    if let Some(t) = f.updated_after {
        q.push(" AND r.updated_at > ").push_bind(t);
    }
    if let Some(b) = f.bbox {
        crate::db::sql::push_bbox_filter(&mut q, b, "ST_Intersects(r.location, ", ")");
    }
    if let Some((lon, lat, radius)) = f.near {
        // The GiST prefilter: without a `location &&` box the geography test scans every row
        // (seconds at a million). The boxes are a sphere's; the test below is on the spheroid,
        // whose distances differ by under 0.6 %, so they are padded by 1 %.
        if let Ok(center) = crate::geo::Position::new(lon, lat) {
            q.push(" AND ");
            crate::db::sql::push_circle_prefilter(&mut q, center, radius * 1.01);
        }
        q.push(" AND ST_DWithin(r.location::geography, ST_SetSRID(ST_MakePoint(")
            .push_bind(lon)
            .push(", ")
            .push_bind(lat)
            .push("), 4326)::geography, ")
            .push_bind(radius)
            .push(")");
    }
    q.push(" ORDER BY r.requested_at DESC, r.id DESC LIMIT ")
        .push_bind(f.limit)
        .push(" OFFSET ")
        .push_bind(f.offset);
    let rows: Vec<ReportRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().filter_map(ReportRow::mapped).collect())
}

pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM reports"#)
        .fetch_one(pool)
        .await
}
