//! All SQL of operations: the readiness probe's question to the database.

use sqlx::PgPool;

/// Succeeds when the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT 1 AS one")
        .fetch_one(pool)
        .await?;
    Ok(())
}
