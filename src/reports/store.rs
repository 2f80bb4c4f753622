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
        Some(c) => Some(insert_contact(conn, c, new.channel, actor, now).await?),
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

/// The duplicate link an intake writes with its report (decided under the area lock).
pub struct IntakeLink<'a> {
    pub parent: Uuid,
    pub parent_note: &'a str,
    /// Recorded on both reports' events and on the outbox event.
    pub data: &'a serde_json::Value,
}

/// Everything one intake writes, in one statement (see [`insert_intake`]).
pub struct IntakeWrite<'a> {
    /// The row as it is to be stored (status `new`, or `duplicate` with its parent).
    pub report: &'a Report,
    pub reporter: Option<Uuid>,
    pub actor: Actor<'a>,
    pub link: Option<IntakeLink<'a>>,
    /// The response a replay of the claimed `Idempotency-Key` returns: scope, key, body.
    pub response: Option<(&'a str, &'a str, &'a serde_json::Value)>,
}

/// Writes a new report in one statement, the intake's only write round trip: the report (its
/// reference unique), its reporter's subscription, its `created` event and outbox event, and,
/// when it is a duplicate, the link (events on both reports, the reporter subscribed to the
/// parent, the parent's supporters raised, a `report.duplicate` outbox event), and the stored
/// response of its idempotency key. Returns `None`, having written nothing, when the reference
/// is taken (draw another), else the new row's change sequence and the parent as it now is.
#[expect(
    clippy::too_many_lines,
    reason = "one statement: a CTE per table it writes, each with its bound values"
)]
pub async fn insert_intake(
    conn: &mut PgConnection,
    w: &IntakeWrite<'_>,
) -> Result<Option<(i64, Option<Report>)>, sqlx::Error> {
    use sqlx::{FromRow, Row};
    let r = w.report;
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "WITH ins AS (INSERT INTO reports (id, reference, service_code, status, status_notes,
             description, address, zipcode, agency, channel, location, h3_cell, requested_at,
             updated_at, closed_at, due_at, duplicate_of, supporters, media_url, attributes,
             reporter_id, created_by) VALUES (",
    );
    {
        let mut v = q.separated(", ");
        v.push_bind(r.id)
            .push_bind(&r.reference)
            .push_bind(&r.service_code)
            .push_bind(r.status().as_str())
            .push_bind(&r.status_notes)
            .push_bind(&r.description)
            .push_bind(&r.address)
            .push_bind(&r.zipcode)
            .push_bind(&r.agency)
            .push_bind(&r.channel);
        v.push("ST_SetSRID(ST_MakePoint(")
            .push_bind_unseparated(r.lon)
            .push_unseparated(", ")
            .push_bind_unseparated(r.lat)
            .push_unseparated("), 4326)");
        v.push_bind(r.h3_cell)
            .push_bind(r.requested_at)
            .push_bind(r.updated_at)
            .push_bind(r.closed_at)
            .push_bind(r.due_at)
            .push_bind(r.duplicate_of)
            .push_bind(r.supporters)
            .push_bind(&r.media_url)
            .push_bind(&r.attributes)
            .push_bind(w.reporter)
            .push_bind(w.actor.token);
    }
    q.push(
        ") ON CONFLICT (reference) DO NOTHING RETURNING id, change_seq),
         ev AS (INSERT INTO report_events
             (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
             SELECT ",
    )
    .push_bind(Uuid::now_v7())
    .push(", id, 'created', NULL, 'new', NULL, ")
    .push_bind(w.actor.role)
    .push(", ")
    .push_bind(w.actor.token)
    .push(
        ", '{}' FROM ins),
         ob AS (INSERT INTO outbox (id, report_id, kind, payload) SELECT ",
    )
    .push_bind(Uuid::now_v7())
    .push(", id, 'report.created', '{}' FROM ins)");
    if let Some(reporter) = w.reporter {
        q.push(
            ", sub AS (INSERT INTO report_subscriptions (report_id, reporter_id)
             SELECT id, ",
        )
        .push_bind(reporter)
        .push(" FROM ins");
        if let Some(l) = &w.link {
            q.push(" UNION ALL SELECT ")
                .push_bind(l.parent)
                .push(", ")
                .push_bind(reporter)
                .push(" FROM ins");
        }
        q.push(" ON CONFLICT DO NOTHING)");
    }
    if let Some((scope, key, body)) = w.response {
        q.push(", idem AS (UPDATE idempotency_keys SET response_status = 201, response_body = ")
            .push_bind(body)
            .push(", report_id = ")
            .push_bind(r.id)
            .push(" WHERE scope = ")
            .push_bind(scope)
            .push(" AND key = ")
            .push_bind(key)
            .push(" AND EXISTS (SELECT 1 FROM ins))");
    }
    if let Some(l) = &w.link {
        q.push(
            ", lev AS (INSERT INTO report_events
                 (id, report_id, kind, from_status, to_status, note, actor_role, actor_token, data)
             SELECT ",
        )
        .push_bind(Uuid::now_v7())
        .push(", id, 'duplicate', 'new', 'duplicate', ")
        .push_bind(&r.status_notes)
        .push(", ")
        .push_bind(w.actor.role)
        .push(", ")
        .push_bind(w.actor.token)
        .push(", ")
        .push_bind(l.data)
        .push(" FROM ins UNION ALL SELECT ")
        .push_bind(Uuid::now_v7())
        .push(", ")
        .push_bind(l.parent)
        .push(", 'duplicate', NULL, NULL, ")
        .push_bind(l.parent_note)
        .push(", ")
        .push_bind(w.actor.role)
        .push(", ")
        .push_bind(w.actor.token)
        .push(", ")
        .push_bind(l.data)
        .push(
            " FROM ins),
             lob AS (INSERT INTO outbox (id, report_id, kind, payload) SELECT ",
        )
        .push_bind(Uuid::now_v7())
        .push(", id, 'report.duplicate', ")
        .push_bind(l.data)
        .push(
            " FROM ins),
             par AS (UPDATE reports r SET supporters = GREATEST(r.supporters + 1, 0),
                 updated_at = now() WHERE r.id = ",
        )
        .push_bind(l.parent)
        .push(format!(
            " AND EXISTS (SELECT 1 FROM ins) RETURNING {REPORT_COLUMNS})
             SELECT ins.change_seq AS new_change_seq, par.* FROM ins LEFT JOIN par ON true"
        ));
    } else {
        q.push(" SELECT change_seq AS new_change_seq FROM ins");
    }
    let Some(row) = q.build().fetch_optional(conn).await? else {
        return Ok(None);
    };
    let change_seq: i64 = row.try_get("new_change_seq")?;
    let parent = match &w.link {
        Some(_) => Some(Report::from_row(&row)?),
        None => None,
    };
    Ok(Some((change_seq, parent)))
}

/// The stored response of an `Idempotency-Key` seen before: the hash of its first request
/// body, the status and the body. Waits for a twin still in flight (its row lock).
pub async fn stored_response(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
) -> Result<Option<(Vec<u8>, i16, serde_json::Value)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(conn)
    .await
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

pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(pool)
        .await
}
