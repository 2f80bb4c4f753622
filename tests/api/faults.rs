//! Faults under a stream of writes: PostgreSQL restarted, and `citypin serve` killed with
//! SIGKILL then started again. Writers retry every report with its `Idempotency-Key` until it
//! is acknowledged; afterwards every acknowledged report is in PostGIS exactly once, a retry of
//! any key creates nothing, and the live index holds what PostGIS holds. Bounded: a few
//! hundred reports, every wait with a deadline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use citypin::config::Settings;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{OwnCluster, TestApp};
use crate::process::{ServeProcess, database_url};

/// Concurrent writers.
const WRITERS: usize = 4;
/// How long one report may take to be acknowledged, retries included.
const ACK_DEADLINE: Duration = Duration::from_secs(60);

/// The n-th report: each ~200 m from the others (no duplicates), all within 20 km of downtown.
fn report(n: usize) -> Value {
    json!({
        "service_code": "pothole",
        "lat": 34.0 + (n % 50) as f64 * 0.002,
        "lon": -118.3 + (n / 50) as f64 * 0.002,
        "description": format!("fault test report {n}"),
    })
}

/// A report the service acknowledged: the key and body it was sent with, the id it got.
#[derive(Clone, Debug)]
struct Acked {
    key: String,
    body: Value,
    id: Uuid,
}

/// Writers posting reports to whatever `base` names, each retried with its key until 201.
struct Writers {
    base: Arc<RwLock<String>>,
    stop: Arc<AtomicBool>,
    /// Every acknowledged report.
    acked: Arc<Mutex<Vec<Acked>>>,
    /// Every answer that was not 201, by status (0: no answer: connection refused or reset).
    other: Arc<Mutex<BTreeMap<u16, usize>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(base: String) -> Self {
        let mut w = Self {
            base: Arc::new(RwLock::new(base)),
            stop: Arc::new(AtomicBool::new(false)),
            acked: Arc::default(),
            other: Arc::default(),
            tasks: Vec::new(),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        for first in 0..WRITERS {
            let (base, stop, acked, other, client) = (
                w.base.clone(),
                w.stop.clone(),
                w.acked.clone(),
                w.other.clone(),
                client.clone(),
            );
            w.tasks.push(tokio::spawn(async move {
                let mut n = first;
                while !stop.load(Ordering::Relaxed) {
                    let key = Uuid::new_v4().to_string();
                    let body = report(n);
                    let id = post_until_acknowledged(&client, &base, &key, &body, &other).await;
                    acked.lock().expect("acked").push(Acked { key, body, id });
                    n += WRITERS;
                }
            }));
        }
        w
    }

    fn acked(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Waits until `more` reports beyond `from` are acknowledged.
    async fn wait_for(&self, from: usize, more: usize) {
        let deadline = Instant::now() + ACK_DEADLINE;
        while self.acked() < from + more {
            assert!(
                Instant::now() < deadline,
                "writes stalled: {:?}",
                self.other
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the writers once each has its report in hand; the acknowledged keys and ids.
    async fn finish(self) -> (Vec<Acked>, BTreeMap<u16, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("writer");
        }
        let acked = self.acked.lock().expect("acked").clone();
        let other = self.other.lock().expect("other").clone();
        (acked, other)
    }
}

async fn post_until_acknowledged(
    client: &reqwest::Client,
    base: &RwLock<String>,
    key: &str,
    body: &Value,
    other: &Mutex<BTreeMap<u16, usize>>,
) -> Uuid {
    let deadline = Instant::now() + ACK_DEADLINE;
    loop {
        let url = format!("{}/api/v1/reports", base.read().expect("base"));
        let res = client
            .post(url)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        let status = match res {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if let Some(id) = v["id"].as_str().and_then(|s| s.parse().ok()) {
                    return id;
                }
                0 // the body was cut off: ask again
            }
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        *other.lock().expect("other").entry(status).or_default() += 1;
        assert!(Instant::now() < deadline, "{key} never acknowledged");
        // A retry's back-off, not a wait for the server.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every acknowledged report is in PostGIS exactly once and nothing else is; a retry of every
/// key answers the same report and adds nothing.
async fn every_acknowledged_report_once(
    pool: &PgPool,
    base: &str,
    acked: &[Acked],
    other: &BTreeMap<u16, usize>,
) {
    // The writers felt the fault, and got only "try again" answers while it lasted: 503, or
    // no answer at all.
    assert!(!other.is_empty(), "no write met the fault");
    assert!(
        other.keys().all(|s| matches!(s, 0 | 503)),
        "unexpected answers: {other:?}"
    );
    let ids: HashSet<Uuid> = acked.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), acked.len(), "two keys acknowledged one report");
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM reports")
        .fetch_all(pool)
        .await
        .expect("ids");
    assert_eq!(stored.len(), acked.len(), "reports stored ≠ acknowledged");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), ids);
    let client = reqwest::Client::new();
    for a in acked {
        let res = client
            .post(format!("{base}/api/v1/reports"))
            .header("Idempotency-Key", &a.key)
            .json(&a.body)
            .send()
            .await
            .expect("replay");
        assert_eq!(res.status(), 201, "{}", a.key);
        assert_eq!(res.headers()["idempotent-replayed"], "true");
        let v: Value = res.json().await.expect("body");
        assert_eq!(v["id"], a.id.to_string());
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM reports")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(after as usize, acked.len(), "a retry created a report");
}

/// PostGIS's `(id, change_seq)` of every visible report.
async fn postgis_rows(pool: &PgPool) -> HashMap<Uuid, i64> {
    sqlx::query_as::<_, (Uuid, i64)>("SELECT id, change_seq FROM reports WHERE NOT hidden")
        .fetch_all(pool)
        .await
        .expect("rows")
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_writes_loses_and_doubles_nothing() {
    let settings = Settings {
        db_acquire_timeout: Duration::from_millis(500),
        reconcile_every: Duration::from_secs(1),
        ..Settings::default()
    };
    let mut cluster = OwnCluster::start(&settings).await;
    let app = TestApp::spawn_with(cluster.pool.clone(), settings).await;
    let writers = Writers::start(format!("http://{}", app.addr));
    writers.wait_for(0, 40).await;

    cluster.stop();
    let during = writers.acked();
    cluster.restart();
    writers.wait_for(during, 40).await;
    let (acked, other) = writers.finish().await;
    every_acknowledged_report_once(&app.pool, &format!("http://{}", app.addr), &acked, &other)
        .await;

    // The live index lived through the outage: LISTEN reconnects, reconciliation repairs.
    let want = postgis_rows(&app.pool).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let index = &app.state.spatial_index;
        let same = index.len() == want.len()
            && want
                .iter()
                .all(|(id, seq)| index.get(*id).is_some_and(|i| i.change_seq == *seq));
        if same {
            break;
        }
        assert!(Instant::now() < deadline, "the index never matched PostGIS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.remove();
}

/// The ids the server's live index holds, through the nearby endpoint (every status, 50 km).
async fn index_ids(p: &ServeProcess) -> HashSet<Uuid> {
    let v: Value = reqwest::get(
        p.url("/api/v1/incidents/nearby?lat=34.05&lon=-118.25&radius_m=50000&limit=500&status=all"),
    )
    .await
    .expect("nearby")
    .json()
    .await
    .expect("json");
    v["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f["id"].as_str()?.parse().ok())
        .collect()
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_killed_server_restarted_under_writes_loses_and_doubles_nothing(pool: PgPool) {
    let url = database_url(&pool).await;
    let mut first = ServeProcess::start(&url, &[]).await;
    let writers = Writers::start(format!("http://{}", first.addr));
    writers.wait_for(0, 60).await;

    // Requests in flight die with it: committed or not, their writers retry their keys.
    first.kill9().await;
    let at_kill = writers.acked();
    let second = ServeProcess::start(&url, &[]).await;
    *writers.base.write().expect("base") = format!("http://{}", second.addr);
    writers.wait_for(at_kill, 60).await;
    let (acked, other) = writers.finish().await;
    assert!(acked.len() <= 500, "more than one nearby page");
    every_acknowledged_report_once(&pool, &format!("http://{}", second.addr), &acked, &other).await;

    let want: HashSet<Uuid> = postgis_rows(&pool).await.into_keys().collect();
    assert_eq!(index_ids(&second).await, want);
}
