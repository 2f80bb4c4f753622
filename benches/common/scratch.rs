//! A scratch database for one benchmark: created on the server `DATABASE_URL` names, migrated,
//! and dropped at the end, so the test cluster stays clean. Shared by the benches that need
//! `PostGIS` (included with `#[path]`; not a bench target of its own).

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub struct Scratch {
    admin: PgPool,
    name: String,
    pub pool: PgPool,
}

impl Scratch {
    /// `citypin_bench_<what>_<pid>` with `connections` pooled connections, migrations applied.
    pub async fn create(url: &str, what: &str, connections: u32) -> Self {
        let admin = PgPool::connect(url).await.expect("connect");
        let name = format!("citypin_bench_{what}_{}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        let opts: PgConnectOptions = url.parse().expect("url");
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(opts.database(&name))
            .await
            .expect("connect scratch database");
        citypin::db::MIGRATOR.run(&pool).await.expect("migrate");
        Self { admin, name, pool }
    }

    pub async fn drop(self) {
        self.pool.close().await;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .expect("drop database");
    }
}
