//! All SQL of idempotency: reading a claimed key's stored answer.

use sqlx::PgConnection;

/// The stored answer of a key seen before: the fingerprint of its first request, the status
/// and the body. Waits for a twin still in flight (its row lock).
pub async fn response(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
) -> Result<Option<(Vec<u8>, i16, serde_json::Value)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys
         WHERE scope = $1 AND key = $2",
        scope,
        key
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.request_hash, r.response_status, r.response_body)))
}
