//! The PostgreSQL connection pool, embedded migrations, and the private PostGIS cluster that
//! citypin runs itself when no `DATABASE_URL` is given.

pub mod embedded;
pub mod sql;

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Settings;
pub use embedded::EmbeddedPostgres;

/// The migrations in `migrations/`, compiled into the binary and applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("could not apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The database citypin talks to, and the private cluster behind it when there is one.
pub struct Database {
    pub pool: PgPool,
    pub options: PgConnectOptions,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects to `DATABASE_URL`, or starts the embedded cluster, then applies migrations.
    pub async fn open(settings: &Settings) -> Result<Self, DbError> {
        let (options, embedded) = if let Some(url) = &settings.database_url {
            (
                PgConnectOptions::from_str(url).map_err(|e| DbError::BadUrl(e.to_string()))?,
                None,
            )
        } else {
            let data_dir = settings.data_dir.clone();
            let pg_bin = settings.pg_bin.clone();
            let pg = tokio::task::spawn_blocking(move || {
                let mut pg = EmbeddedPostgres::new(&data_dir, pg_bin.as_deref())?;
                pg.start()?;
                Ok::<_, embedded::EmbeddedError>(pg)
            })
            .await
            .map_err(|e| embedded::EmbeddedError::Step {
                step: "start the embedded cluster".into(),
                detail: e.to_string(),
            })??;
            (pg.connect_options(), Some(pg))
        };
        let pool = pool_options(settings)
            .connect_with(options.clone())
            .await
            .map_err(DbError::Connect)?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            options,
            embedded,
        })
    }

    /// Closes the pool and stops the embedded cluster if this process started it.
    pub async fn close(mut self) {
        self.pool.close().await;
        if let Some(mut pg) = self.embedded.take() {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = pg.stop() {
                    tracing::warn!(error = %e, "could not stop the embedded PostgreSQL");
                }
            })
            .await;
        }
    }
}

/// Pool settings: a short acquire timeout so an outage or overload answers 503 quickly, and
/// connections checked so the pool recovers by itself when `PostgreSQL` returns. sqlx pings
/// every connection as it goes back to the pool (and drops a broken one); a connection that has
/// sat idle for a second or more is pinged again before use (the server may have gone while it
/// sat). A busy connection is not pinged twice: under load that ping was one more round trip
/// on every request.
pub fn pool_options(settings: &Settings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .min_connections(1)
        .acquire_timeout(settings.db_acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= std::time::Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}
