//! All SQL of the reports capability.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::model::{
    CONSENT_TEXT, Channel, Contact, HistoryEvent, NewReport, Reference, Report, Status, h3_cell_i64,
};
use crate::geo::BBox;

/// The columns that make a [`Report`], for `SELECT ... FROM reports r`.
pub const REPORT_COLUMNS: &str =
    "r.id, r.reference, r.external_id, r.service_code, r.status, r.status_notes,
    r.description, r.address, r.zipcode, r.agency, r.channel,
    ST_X(r.location) AS lon, ST_Y(r.location) AS lat, r.h3_cell,
    r.requested_at, r.updated_at, r.closed_at, r.due_at, r.duplicate_of,
    (SELECT p.reference FROM reports p WHERE p.id = r.duplicate_of) AS duplicate_of_reference,
    r.supporters, r.media_url, r.attributes, r.hidden, r.change_seq";

/// Who made a change, for the history.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub role: &'a str,
    pub token: Option<Uuid>,
}

/// Stores a new report, its reporter (if any), its `created` event and an outbox event.
/// Retries with a fresh reference on the (rare) collision.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewReport,
    agency: &str,
    sla_hours: Option<i32>,
    actor: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let reporter_id = match &new.contact {
        Some(c) => {
            let consent = consent_text(conn, new.channel, actor).await?;
            Some(insert_reporter(conn, c, now, &consent).await?)
        }
        None => None,
    };
    let id = Uuid::now_v7();
    let due_at = sla_hours.map(|h| now + chrono::Duration::hours(i64::from(h)));
    for attempt in 0..5 {
        let reference = Reference::random();
        let inserted = sqlx::query(
            "INSERT INTO reports (id, reference, service_code, status, description, address, zipcode,
                 agency, channel, location, h3_cell, requested_at, updated_at, due_at, media_url,
                 attributes, reporter_id, created_by)
             VALUES ($1, $2, $3, 'new', $4, $5, $6, $7, $8, ST_SetSRID(ST_MakePoint($9, $10), 4326),
                 $11, $12, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (reference) DO NOTHING",
        )
        .bind(id)
        .bind(reference.as_str())
        .bind(new.service_code.as_str())
        .bind(new.description.as_str())
        .bind(&new.address)
        .bind(&new.zipcode)
        .bind(agency)
        .bind(new.channel.as_str())
        .bind(new.position.lon())
        .bind(new.position.lat())
        .bind(h3_cell_i64(new.position))
        .bind(now)
        .bind(due_at)
        .bind(&new.media_url)
        .bind(serde_json::Value::Object(new.attributes.clone()))
        .bind(reporter_id)
        .bind(actor.token)
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
        subscribe(conn, id, reporter).await?;
    }
    insert_event(
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
    outbox(conn, id, "report.created", serde_json::json!({})).await?;
    fetch(conn, id).await?.ok_or(sqlx::Error::RowNotFound)
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
    let client: Option<String> = sqlx::query_scalar("SELECT name FROM api_tokens WHERE id = $1")
        .bind(actor.token)
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
    sqlx::query(
        "INSERT INTO reporters (id, name, email, phone, consent_at, consent_text, notify)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&c.name)
    .bind(&c.email)
    .bind(&c.phone)
    .bind(now)
    .bind(consent_text)
    .bind(c.notify)
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

async fn subscribe(
    conn: &mut PgConnection,
    report: Uuid,
    reporter: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO report_subscriptions (report_id, reporter_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(report)
        .bind(reporter)
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
    sqlx::query(
        "INSERT INTO report_events (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(report)
    .bind(kind)
    .bind(from.map(Status::as_str))
    .bind(to.map(Status::as_str))
    .bind(note)
    .bind(actor.role)
    .bind(actor.token)
    .bind(data)
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
    sqlx::query("INSERT INTO outbox (id, report_id, kind, payload) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(report)
        .bind(kind)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REPORT_COLUMNS} FROM reports r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Public reports with these ids, in no particular order (the caller orders them).
pub async fn fetch_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Report>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(&format!(
        "SELECT {REPORT_COLUMNS} FROM reports r WHERE r.id = ANY($1) AND NOT r.hidden"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// The histories of several reports in one query, each oldest first.
pub async fn histories(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<HistoryEvent>>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        report_id: Uuid,
        #[sqlx(flatten)]
        event: HistoryEvent,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT report_id, at, kind, from_status, to_status, note, actor_role, data FROM report_events
         WHERE report_id = ANY($1) ORDER BY report_id, at, id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut out: HashMap<Uuid, Vec<HistoryEvent>> = HashMap::new();
    for row in rows {
        out.entry(row.report_id).or_default().push(row.event);
    }
    Ok(out)
}

/// Finds a report by its id, its reference (typed loosely) or its imported id.
pub async fn find(pool: &PgPool, key: &str) -> Result<Option<Report>, sqlx::Error> {
    let key = key.trim();
    let q = format!("SELECT {REPORT_COLUMNS} FROM reports r WHERE ");
    if let Ok(id) = Uuid::parse_str(key) {
        return sqlx::query_as(&(q + "r.id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await;
    }
    if let Some(reference) = Reference::parse(key) {
        return sqlx::query_as(&(q + "r.reference = $1"))
            .bind(reference.as_str())
            .fetch_optional(pool)
            .await;
    }
    sqlx::query_as(&(q + "r.external_id = $1"))
        .bind(key)
        .fetch_optional(pool)
        .await
}

/// Locks a report row for an update in the caller's transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Report>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REPORT_COLUMNS} FROM reports r WHERE r.id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn history(pool: &PgPool, id: Uuid) -> Result<Vec<HistoryEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, kind, from_status, to_status, note, actor_role, data FROM report_events
         WHERE report_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// Sets a report's status in the caller's transaction; closing stamps `closed_at`.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: Status,
    note: Option<&str>,
    duplicate_of: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET status = $2, status_notes = COALESCE($3, status_notes), updated_at = now(),
             closed_at = CASE WHEN $4 THEN NULL ELSE COALESCE(closed_at, now()) END,
             duplicate_of = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(note)
    .bind(status.is_open())
    .bind(duplicate_of)
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
    if !f.service_codes.is_empty() {
        q.push(" AND r.service_code = ANY(")
            .push_bind(f.service_codes.clone())
            .push(")");
    }
    if !f.statuses.is_empty() {
        let names: Vec<&str> = f.statuses.iter().map(|s| s.as_str()).collect();
        q.push(" AND r.status = ANY(").push_bind(names).push(")");
    }
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
        crate::db::sql::push_bbox_filter(&mut q, b, "r.location && ", "");
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
    q.build_query_as().fetch_all(pool).await
}

/// Looks up a stored response for an idempotency key, locking out concurrent twins: the
/// insert of the same key by another transaction blocks here until that one commits.
pub async fn claim_idempotency_key(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    request_hash: &[u8],
) -> Result<Option<(Vec<u8>, i16, serde_json::Value)>, sqlx::Error> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
         VALUES ($1, $2, $3, 0, 'null') ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *conn)
    .await?;
    if claimed.rows_affected() == 1 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn store_idempotent_response(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    status: u16,
    body: &serde_json::Value,
    report: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4, report_id = $5
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(status as i16)
    .bind(body)
    .bind(report)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(pool)
        .await
}
