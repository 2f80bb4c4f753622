//! Real `citypin serve` processes (the binary cargo built for these tests), for what an
//! in-process server cannot show: several replicas on one database, and `kill -9`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `citypin serve`, killed (SIGKILL) when dropped.
pub struct ServeProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    /// Every line it has logged so far (JSON lines).
    pub log: Arc<Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// The URL of the database `pool` is connected to, on the test cluster of `DATABASE_URL`
/// (each `#[sqlx::test]` gets a database of its own there).
pub async fn database_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .expect("database name");
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (run under with-test-db.sh)");
    let mut url = reqwest::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl ServeProcess {
    /// Starts `citypin serve` on a free port with `env` added to a clean `CITYPIN_*`
    /// environment, and returns once it is ready (index loaded), or panics after 60 s.
    pub async fn start(database_url: &str, env: &[(&str, String)]) -> Self {
        let data_dir = std::env::temp_dir().join(format!("citypin-proc-{}", uuid::Uuid::new_v4()));
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_citypin"));
        cmd.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("CITYPIN_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("DATABASE_URL", database_url)
            .env("CITYPIN_LISTEN", "127.0.0.1:0")
            .env("CITYPIN_LOG_FORMAT", "json")
            .env("CITYPIN_DATA_DIR", &data_dir)
            .env("CITYPIN_SNAPSHOT_INTERVAL_SECS", "0")
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("citypin serve starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (out, addr_tx) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                Some(addr_tx),
            ),
            (Box::new(stderr), None),
        ] {
            let log = log.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if crate::helpers::test_log_enabled() {
                        eprintln!("[citypin] {line}");
                    }
                    if let Some(tx) = &addr_tx {
                        if let Some(addr) = serving_address(&line) {
                            let _ = tx.send(addr);
                        }
                    }
                    log.lock().expect("log").push(line);
                }
            }));
        }
        let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("citypin serve did not listen: {:?}", log.lock()));
        let p = Self {
            child,
            addr,
            log,
            readers,
        };
        p.wait_ready().await;
        p
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Polls `/health/ready` until it answers 200 (the index is loaded), at most 60 s.
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(self.url("/health/ready")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "citypin serve never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown, no flush, connections dropped mid-request. Returns once the
    /// process is gone and everything it wrote is in [`Self::log`].
    pub async fn kill9(&mut self) {
        self.child.kill().await.expect("SIGKILL");
        for r in self.readers.drain(..) {
            let _ = r.await;
        }
    }

    /// The logged lines whose message is `message`.
    pub fn logged(&self, message: &str) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .collect()
    }
}

/// The address in the JSON line "citypin serving".
fn serving_address(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"] != "citypin serving" {
        return None;
    }
    v["fields"]["address"].as_str()?.parse().ok()
}
