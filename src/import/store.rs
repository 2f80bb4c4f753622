//! All SQL of the import: a batch of rows in one statement, and which external ids are
//! already stored.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Valid;
use crate::domain::Reference;
use crate::geo::h3_cell_i64;

/// Inserts a batch (each row with a fresh id and reference) and its `created` events in one
/// statement. Returns the external ids inserted: a row whose external id or reference is
/// taken is skipped.
pub(super) async fn insert(pool: &PgPool, batch: &[Valid]) -> Result<Vec<String>, sqlx::Error> {
    let n = batch.len();
    let mut id = Vec::with_capacity(n);
    let mut reference = Vec::with_capacity(n);
    let mut ext = Vec::with_capacity(n);
    let mut code = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut notes = Vec::with_capacity(n);
    let mut desc = Vec::with_capacity(n);
    let mut addr = Vec::with_capacity(n);
    let mut zip = Vec::with_capacity(n);
    let mut agency = Vec::with_capacity(n);
    let mut channel = Vec::with_capacity(n);
    let mut lon = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let mut h3 = Vec::with_capacity(n);
    let mut req = Vec::with_capacity(n);
    let mut upd = Vec::with_capacity(n);
    let mut closed = Vec::with_capacity(n);
    for v in batch {
        id.push(Uuid::now_v7());
        reference.push(Reference::random().to_string());
        ext.push(v.external_id.clone());
        code.push(v.service_code.clone());
        status.push(v.status.as_str());
        notes.push(v.status_notes.clone());
        desc.push(v.description.clone());
        addr.push(v.address.clone());
        zip.push(v.zipcode.clone());
        agency.push(v.agency.clone());
        channel.push(v.channel);
        lon.push(v.position.lon());
        lat.push(v.position.lat());
        h3.push(h3_cell_i64(v.position));
        req.push(v.requested_at);
        upd.push(v.updated_at);
        closed.push(v.closed_at);
    }
    sqlx::query_scalar!(
        r#"WITH ins AS (
            INSERT INTO reports (id, reference, external_id, service_code, status, status_notes, description,
                address, zipcode, agency, channel, location, h3_cell, requested_at, updated_at, closed_at)
            SELECT id, reference, ext, code, status, notes, descr, addr, zip, agency, channel,
                ST_SetSRID(ST_MakePoint(lon, lat), 4326), h3, req, upd, closed
            FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[], $13::float8[], $14::int8[],
                $15::timestamptz[], $16::timestamptz[], $17::timestamptz[])
                AS t(id, reference, ext, code, status, notes, descr, addr, zip, agency, channel, lon, lat, h3, req, upd, closed)
            ON CONFLICT DO NOTHING
            RETURNING id, external_id, status, requested_at
        ), ev AS (
            INSERT INTO report_events (id, report_id, at, kind, to_status, actor_role, data)
            SELECT gen_random_uuid(), ins.id, ins.requested_at, 'created', ins.status, 'import', '{}'::jsonb FROM ins
        )
        SELECT external_id AS "external_id!" FROM ins"#,
        // The casts say what the arrays are: sqlx's check knows `text[]` only as `&[String]`
        // and `timestamptz[]` only without NULLs.
        &id,
        &reference,
        &ext,
        &code,
        &status as &[&str],
        &notes as &[Option<String>],
        &desc,
        &addr as &[Option<String>],
        &zip as &[Option<String>],
        &agency,
        &channel as &[&str],
        &lon,
        &lat,
        &h3,
        &req,
        &upd,
        &closed as &[Option<DateTime<Utc>>],
    )
    .fetch_all(pool)
    .await
}

/// Those of `external_ids` already stored.
pub(super) async fn present(
    pool: &PgPool,
    external_ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT external_id AS "external_id!" FROM reports WHERE external_id = ANY($1)"#,
        external_ids
    )
    .fetch_all(pool)
    .await
}
