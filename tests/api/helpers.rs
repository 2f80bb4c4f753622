//! Shared helpers: spawn the real server on a fresh database and talk to it over HTTP.
//!
//! `TEST_LOG=1` shows the server's log in the test output (`RUST_LOG` filters, default `info`):
//! `TEST_LOG=1 scripts/with-test-db.sh cargo test --test api NAME -- --nocapture`. Not a
//! `CITYPIN_*` name: citypin refuses unknown settings of its own.

use std::net::SocketAddr;

use citypin::app::{self, AppState};
use citypin::auth::{self, Role};
use citypin::config::Settings;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A running citypin on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub pool: PgPool,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Whether the server's live index is loaded before [`TestApp`] returns.
enum Index {
    Loaded,
    /// `AppState::open` only: the index stays empty, `/health/ready` says "loading", until the
    /// test calls `state.load_spatial_index()`.
    NotLoaded,
}

impl TestApp {
    /// Binds before spawning, so the server is accepting when this returns.
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, Settings::default()).await
    }

    pub async fn spawn_with(pool: PgPool, settings: Settings) -> Self {
        Self::launch(pool, settings, Index::Loaded).await
    }

    /// The server as `citypin serve` is while its index loads in the background.
    pub async fn spawn_not_loaded(pool: PgPool) -> Self {
        Self::launch(pool, Settings::default(), Index::NotLoaded).await
    }

    /// The one place a test server starts: bound on 127.0.0.1:0 before it is spawned, served
    /// until this value is dropped.
    async fn launch(pool: PgPool, mut settings: Settings, index: Index) -> Self {
        init_test_log();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        settings.listen = addr;
        settings.public_url = format!("http://{addr}");
        settings.web_root = workspace().join("web-map/dist");
        settings.assets_dir = workspace().join("tiles");
        settings.shared_data = citypin::config::shared_data::dir();
        // A test server writes export snapshots only into a directory its test gives it.
        if settings.snapshot_dir.is_none() {
            settings.snapshot_interval = std::time::Duration::ZERO;
        }
        let state = match index {
            Index::Loaded => AppState::start(pool.clone(), settings).await,
            Index::NotLoaded => AppState::open(pool.clone(), settings).await,
        }
        .expect("start");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        tokio::spawn(async move {
            let _ = app::serve(listener, s, async {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            addr,
            client: reqwest::Client::new(),
            state,
            pool,
            _shutdown: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn token(&self, role: Role) -> String {
        auth::create_token(&self.pool, role, "test")
            .await
            .expect("token")
    }

    /// Posts a report through the native API and returns (status, body).
    pub async fn post_report(&self, body: &Value, key: &str) -> (u16, Value) {
        let res = self
            .client
            .post(self.url("/api/v1/reports"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The body of a GET as text, whatever its status (the caller asserts on the content).
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    }

    /// Imports the LA sample (30,000 real GeoReport rows) and reloads the live index from it.
    pub async fn import_la_sample(&self) {
        let summary = citypin::import::import_file(
            &self.pool,
            &self.state.catalogue,
            &citypin::config::shared_data::file(citypin::config::shared_data::LA311_CSV),
            None,
        )
        .await
        .expect("import");
        assert!(summary.inserted > 20_000, "{summary}");
        self.state
            .spatial_index
            .load(&self.pool, &self.state.catalogue)
            .await
            .expect("load");
    }

    pub async fn count_reports(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM reports")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// A private PostgreSQL cluster of one test's own (citypin's embedded-cluster code), which the
/// test may stop and start; migrated, with a pool built from `settings`.
pub struct OwnCluster {
    pub pg: citypin::db::EmbeddedPostgres,
    pub pool: PgPool,
    pub dir: std::path::PathBuf,
}

impl OwnCluster {
    pub async fn start(settings: &Settings) -> Self {
        let dir = std::env::temp_dir().join(format!("citypin-cluster-{}", uuid::Uuid::new_v4()));
        let mut pg = citypin::db::EmbeddedPostgres::new(&dir, None).expect("cluster");
        tokio::task::block_in_place(|| pg.start()).expect("start");
        let pool = citypin::db::pool_options(settings)
            .connect_with(pg.connect_options())
            .await
            .expect("connect");
        citypin::db::MIGRATOR.run(&pool).await.expect("migrate");
        Self { pg, pool, dir }
    }

    pub fn stop(&mut self) {
        tokio::task::block_in_place(|| self.pg.stop_always()).expect("stop");
    }

    pub fn restart(&mut self) {
        tokio::task::block_in_place(|| self.pg.start()).expect("restart");
    }

    /// Stops the cluster and removes its files.
    pub fn remove(mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// With `TEST_LOG` set, the server's log goes to the test output (once per test binary).
pub fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !test_log_enabled() {
        return;
    }
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Whether `TEST_LOG` asks for the servers' logs (`citypin serve` processes' too).
pub fn test_log_enabled() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The repository root (tests run with the package directory as working directory).
pub fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A valid pothole report in downtown Los Angeles.
pub fn pothole() -> Value {
    json!({
        "service_code": "pothole",
        "lat": 34.0522,
        "lon": -118.2437,
        "description": "Deep pothole in the right lane",
        "address": "200 N Spring St"
    })
}

pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One test per case, so a failing case hides no other and its name says which behaviour broke.
/// `cases! { async check { name: arg, …; … } }` writes, for each line, a
/// `#[sqlx::test] async fn name(pool)` (its own database and server) that awaits
/// `check(pool, arg, …)`; without `async`, a plain `#[test] fn name()` calling `check(arg, …)`.
macro_rules! cases {
    (async $check:path { $($name:ident: $($arg:expr),* ;)+ }) => {
        $(
            #[sqlx::test(migrator = "citypin::db::MIGRATOR")]
            async fn $name(pool: sqlx::PgPool) {
                $check(pool, $($arg),*).await;
            }
        )+
    };
    ($check:path { $($name:ident: $($arg:expr),* ;)+ }) => {
        $(
            #[test]
            fn $name() {
                $check($($arg),*);
            }
        )+
    };
}
pub(crate) use cases;
