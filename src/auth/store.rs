//! All SQL of auth: API tokens, stored by the SHA-256 of their secret.

use sqlx::PgPool;
use uuid::Uuid;

/// Stores a new token's hash under its name and role.
pub async fn insert_token(
    pool: &PgPool,
    id: Uuid,
    name: &str,
    role: &str,
    token_hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO api_tokens (id, name, role, token_hash) VALUES ($1, $2, $3, $4)",
        id,
        name,
        role,
        token_hash
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The id, name and role of the live (not revoked) token with this hash.
pub async fn live_token(
    pool: &PgPool,
    token_hash: &[u8],
) -> Result<Option<(Uuid, String, String)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT id, name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.id, r.name, r.role)))
}
