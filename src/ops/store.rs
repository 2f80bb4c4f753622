//! All SQL of operations: the readiness probe's question to the database.

use sqlx::PgPool;

/// Succeeds when the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
