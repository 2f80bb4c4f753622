//! The HTTP load harness behind `make bench`: for each data size it creates a database, loads
//! generated incidents with COPY, starts the release `citypin serve` on loopback, and runs every
//! scenario against citypin and, in the same run and at the same concurrency, against its baseline
//! (the same question asked of `PostGIS` directly). Results go to `target/bench/results.{json,md}`.
//!
//! `DATABASE_URL` must name a PostgreSQL+PostGIS server where we may create databases (the bench
//! script starts a private one). Closed loop: `--connections` workers each send one request at a
//! time, for `--duration` seconds or until a scenario's request budget is spent.
//!
//! A new endpoint plugs in as one more entry in [`scenarios`]: a probe path (the scenario is
//! reported "not available" when citypin answers it with 404), the citypin request, and optionally
//! the baseline query.

use std::collections::BTreeSet;
use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use citypin::catalogue::Catalogue;
use citypin::geo::h3_cell_i64;
use citypin::import::generate::{Generator, Incident};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;
/// One request or query; true when it succeeded.
type Op = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

const SEED: u64 = 42;

/// The LA 311 sample in the shared data folder: imported as it is, and the generator's source.
fn source() -> PathBuf {
    citypin::config::shared_data::file(citypin::config::shared_data::LA311_CSV)
}

struct Args {
    quick: bool,
    scales: Vec<u64>,
    duration: Duration,
    connections: usize,
    /// Client concurrencies for the intake scenario (throughput against latency).
    intake_connections: Vec<usize>,
    out: PathBuf,
    bin: PathBuf,
    /// `--only a,b`: just these scenarios (for working on one; `make bench` runs them all).
    only: Option<BTreeSet<String>>,
}

impl Args {
    fn wants(&self, scenario: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(scenario))
    }
}

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        quick: false,
        scales: vec![100_000, 1_000_000, 5_000_000],
        duration: Duration::from_secs(8),
        connections: 16,
        intake_connections: Vec::new(),
        out: PathBuf::from("target/bench"),
        bin: PathBuf::from("target/release/citypin"),
        only: None,
    };
    let mut scales_given = false;
    let mut duration_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            // cargo passes `--bench` to harness-less benches.
            "--bench" => {}
            "--quick" => a.quick = true,
            "--scales" => {
                a.scales = it
                    .next()
                    .ok_or("--scales needs a value")?
                    .split(',')
                    .map(|s| s.replace('_', "").parse::<u64>())
                    .collect::<Result<_, _>>()?;
                scales_given = true;
            }
            "--duration" => {
                a.duration = Duration::from_secs_f64(it.next().ok_or("--duration")?.parse()?);
                duration_given = true;
            }
            "--connections" => a.connections = it.next().ok_or("--connections")?.parse()?,
            "--intake-connections" => {
                a.intake_connections = it
                    .next()
                    .ok_or("--intake-connections needs a value")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--out" => a.out = PathBuf::from(it.next().ok_or("--out")?),
            "--bin" => a.bin = PathBuf::from(it.next().ok_or("--bin")?),
            "--only" => {
                let names = it.next().ok_or("--only needs scenario names")?;
                a.only = Some(names.split(',').map(str::to_owned).collect());
            }
            other => return Err(format!("unknown option {other:?}").into()),
        }
    }
    if a.intake_connections.is_empty() {
        a.intake_connections = if a.quick {
            vec![a.connections]
        } else {
            vec![4, a.connections, 64]
        };
    }
    if a.quick {
        if !scales_given {
            a.scales = vec![100_000];
        }
        if !duration_given {
            a.duration = Duration::from_secs(4);
        }
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    // `cargo test --all-targets` (make test) runs this binary without `--bench`: check the pure
    // helpers and stop, rather than starting a load run from inside the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        self_check();
        println!("load harness: self-check passed; the load run is `make bench`");
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> BoxResult<()> {
    let args = parse_args()?;
    let admin_url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set (run through scripts/bench.sh)")?;
    std::fs::create_dir_all(&args.out)?;
    let started = Instant::now();
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let catalogue = Catalogue::load(None)?;
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .connect(&admin_url)
        .await?;

    eprintln!("bench: importing the LA file through `citypin import`");
    let la = timed_import(&args, &admin, &admin_url, &source().to_string_lossy()).await?;
    eprintln!("bench: {la}");
    // The generator's CSV through the same importer, at 100,000 rows.
    let csv = args.out.join("generated-100000.csv").display().to_string();
    let generated = Command::new(&args.bin)
        .args([
            "generate",
            "--count",
            "100000",
            "--seed",
            &SEED.to_string(),
            "--out",
            &csv,
        ])
        .status()?;
    if !generated.success() {
        return Err("citypin generate failed".into());
    }
    eprintln!("bench: importing {csv} through `citypin import`");
    let generated_import = timed_import(&args, &admin, &admin_url, &csv).await?;
    eprintln!("bench: {generated_import}");
    std::fs::remove_file(&csv)?;

    let mut scales = Vec::new();
    let mut md = String::new();
    for &n in &args.scales {
        scales.push(run_scale(&args, &admin, &admin_url, &catalogue, n).await?);
        // Written after every size, so a long run stopped part-way keeps what it measured.
        let results = json!({
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "machine": machine(),
            "loadavg_at_start": load_at_start.trim(),
            "quick": args.quick,
            "duration_s": args.duration.as_secs_f64(),
            "connections": args.connections,
            "seed": SEED,
            "la_import": la,
            "generated_import": generated_import,
            "scales": scales,
            "total_s": started.elapsed().as_secs_f64(),
        });
        std::fs::write(
            args.out.join("results.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
        md = markdown(&results);
        std::fs::write(args.out.join("results.md"), &md)?;
    }
    println!("{md}");
    eprintln!(
        "bench: wrote {} in {:.0} s",
        args.out.join("results.{json,md}").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn self_check() {
    assert_eq!(
        db_url(
            "postgres://postgres@localhost:5432/citypin?host=/tmp/x/run",
            "b1"
        ),
        "postgres://postgres@localhost:5432/b1?host=/tmp/x/run"
    );
    assert_eq!(db_url("postgres://u@h/db", "b2"), "postgres://u@h/b2");
    // Los Angeles City Hall at z14 is tile 2810/6541 (slippy-map numbering).
    let city_hall = Point {
        lon: -118.2427,
        lat: 34.0537,
    };
    assert_eq!(tile_of(city_hall, 14), (14, 2810, 6541));
}

// ---------------------------------------------------------------- databases and data

fn db_url(admin_url: &str, db: &str) -> String {
    let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    if query.is_empty() {
        format!("{base}/{db}")
    } else {
        format!("{base}/{db}?{query}")
    }
}

async fn fresh_db(admin: &PgPool, name: &str) -> BoxResult<()> {
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    Ok(())
}

/// A file through the real `citypin import`, into an empty database (issue 2's figure for the
/// LA file).
async fn timed_import(
    args: &Args,
    admin: &PgPool,
    admin_url: &str,
    file: &str,
) -> BoxResult<Value> {
    fresh_db(admin, "citypin_bench_import").await?;
    let url = db_url(admin_url, "citypin_bench_import");
    // Migrations and the catalogue first, so the timed run is the import itself.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    citypin::db::MIGRATOR.run(&pool).await?;
    Catalogue::load(None)?.upsert(&pool).await?;
    pool.close().await;
    let t = Instant::now();
    let out = Command::new(&args.bin)
        .args(["import", file])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "error")
        .output()?;
    let wall = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "citypin import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let took = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("took ")?
                .strip_suffix(" s")?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(wall);
    // "read N rows: M imported, ..." (log lines may share stdout).
    let imported = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("read ")?
                .split_once(": ")?
                .1
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    admin
        .execute("DROP DATABASE IF EXISTS citypin_bench_import WITH (FORCE)")
        .await?;
    Ok(json!({
        "file": file, "imported": imported, "import_s": took, "process_wall_s": wall,
        "rows_per_s": imported as f64 / took,
    }))
}

/// Loads `n` generated incidents with COPY. Triggers are off for the load (one `pg_notify` per
/// row would only be heard by a server that is not running yet); constraints and indexes stay.
async fn copy_incidents(pool: &PgPool, catalogue: &Catalogue, n: u64) -> BoxResult<()> {
    let mut conn = pool.acquire().await?;
    conn.execute("SET session_replication_role = replica")
        .await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY reports (id, reference, external_id, service_code, status, address, zipcode, \
             agency, channel, location, h3_cell, requested_at, updated_at, closed_at) \
             FROM STDIN WITH (FORMAT csv)",
        )
        .await?;
    let generator = Generator::from_file(&source(), catalogue, SEED)?;
    let writer = || csv::Writer::from_writer(Vec::with_capacity(1 << 21));
    let mut w = writer();
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    for inc in generator.take(n as usize) {
        w.write_record([
            uuid::Uuid::now_v7().to_string(),
            inc.reference(),
            inc.external_id.clone(),
            inc.service_code.clone(),
            inc.status.as_str().to_owned(),
            inc.address.clone().unwrap_or_default(),
            inc.zipcode.clone().unwrap_or_default(),
            inc.agency.clone(),
            inc.channel.to_owned(),
            format!(
                "SRID=4326;POINT({} {})",
                inc.position.lon(),
                inc.position.lat()
            ),
            h3_cell_i64(inc.position).to_string(),
            time(inc.requested_at),
            time(inc.updated_at),
            inc.closed_at.map(time).unwrap_or_default(),
        ])?;
        if w.get_ref().len() > 1 << 20 {
            let buf = std::mem::replace(&mut w, writer()).into_inner()?;
            copy.send(buf).await?;
        }
    }
    copy.send(w.into_inner()?).await?;
    copy.finish().await?;
    conn.execute("SET session_replication_role = origin")
        .await?;
    conn.execute("SELECT setval('report_change_seq', (SELECT max(change_seq) FROM reports))")
        .await?;
    conn.execute("VACUUM ANALYZE reports").await?;
    Ok(())
}

// ---------------------------------------------------------------- the server

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(args: &Args, url: &str, log: &Path) -> BoxResult<(Self, Value)> {
        // A free loopback port: bind, read it, release it for the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(log)?;
        let t = Instant::now();
        let child = Command::new(&args.bin)
            .arg("serve")
            .env("DATABASE_URL", url)
            .env("CITYPIN_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("CITYPIN_SAMPLE")
            // No export snapshot written in the middle of a measurement.
            .env("CITYPIN_SNAPSHOT_INTERVAL_SECS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(20 * 60);
        loop {
            if let Ok(r) = client
                .get(format!("{}/health/ready", server.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    let body: Value = r.json().await?;
                    let ready_s = t.elapsed().as_secs_f64();
                    let mem = server.memory();
                    return Ok((
                        server,
                        json!({"ready_s": ready_s, "indexed": body["incidents"], "rss_ready_kb": mem.1, "peak_ready_kb": mem.0}),
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err("citypin did not become ready within 20 minutes".into());
            }
            // Polling a child process we started: there is no readiness event to wait on.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// (peak, current) resident set of the server, in kB, from /proc/<pid>/status.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// Resets the server's peak RSS to its current RSS (Linux `clear_refs` 5), so each scenario
    /// reports its own peak; returns the RSS at that moment, in kB.
    fn reset_peak(&self) -> u64 {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
        self.memory().1
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- measuring

#[derive(Clone, Copy)]
struct Point {
    lon: f64,
    lat: f64,
}

async fn measure(op: &Op, connections: usize, duration: Duration, budget: u64) -> Value {
    // A short warm-up (connections, prepared statements, caches), not recorded; none where
    // every request must be a first one (cold tiles).
    if budget == u64::MAX {
        run_loop(op, connections, Duration::from_millis(500), 200, 1 << 40).await;
    }
    let (hist, errors, elapsed) = run_loop(op, connections, duration, budget, 0).await;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let ok = hist.len() - errors;
    json!({
        "requests": hist.len(), "errors": errors, "elapsed_s": elapsed,
        "ok_per_s": ok as f64 / elapsed,
        "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": hist.max() as f64 / 1000.0,
    })
}

async fn run_loop(
    op: &Op,
    connections: usize,
    duration: Duration,
    budget: u64,
    offset: u64,
) -> (Histogram<u64>, u64, f64) {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
            let mut errors = 0;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= budget {
                    break;
                }
                let t = Instant::now();
                let ok = op(offset + i).await;
                hist.saturating_record((t.elapsed().as_micros() as u64).max(1));
                errors += u64::from(!ok);
            }
            (hist, errors)
        });
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (h, e) = r.expect("worker");
        hist.add(h).expect("same bounds");
        errors += e;
    }
    (hist, errors, start.elapsed().as_secs_f64())
}

fn http_get(client: &reqwest::Client, urls: Vec<String>) -> Op {
    http_get_with(client, urls, &[])
}

/// A staff read: the admin token the harness created for this database as a bearer token.
fn http_get_as(client: &reqwest::Client, urls: Vec<String>, token: &str) -> Op {
    http_get_with(
        client,
        urls,
        &[("authorization", format!("Bearer {token}"))],
    )
}

/// Tiles as a map client asks for them: gzip accepted (the body is counted, not decoded).
fn http_get_gzip(client: &reqwest::Client, urls: Vec<String>) -> Op {
    http_get_with(client, urls, &[("accept-encoding", "gzip".to_owned())])
}

/// Tiles as a staff client asks for them (`source=postgis`): gzip accepted, admin token.
fn http_get_gzip_as(client: &reqwest::Client, urls: Vec<String>, token: &str) -> Op {
    http_get_with(
        client,
        urls,
        &[
            ("accept-encoding", "gzip".to_owned()),
            ("authorization", format!("Bearer {token}")),
        ],
    )
}

fn http_get_with(
    client: &reqwest::Client,
    urls: Vec<String>,
    headers: &[(&'static str, String)],
) -> Op {
    let client = client.clone();
    let urls = Arc::new(urls);
    let headers = headers.to_vec();
    Arc::new(move |i| {
        let mut req = client.get(&urls[i as usize % urls.len()]);
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        Box::pin(async move {
            match req.send().await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    ok && r.bytes().await.is_ok()
                }
                Err(_) => false,
            }
        })
    })
}

// ---------------------------------------------------------------- scenarios

struct Ctx {
    base: String,
    client: reqwest::Client,
    baseline: PgPool,
    points: Arc<Vec<Point>>,
    services: Arc<Vec<String>>,
    /// Open311 window that covers the generated data (it is historical: 2017–2020).
    window: (String, String),
    scale: u64,
    /// An admin token in this database: `source=postgis` is staff only.
    admin_token: String,
}

struct Scenario {
    name: &'static str,
    what: &'static str,
    probe: String,
    citypin: Op,
    baseline: Option<(&'static str, Op)>,
    /// Most requests to send (cold tiles: each tile once).
    budget: u64,
}

/// Slippy-map tile of a point (Web Mercator), for the tile scenarios.
fn tile_of(point: Point, zoom: u32) -> (u32, u32, u32) {
    let tiles = f64::from(1u32 << zoom);
    let col = ((point.lon + 180.0) / 360.0 * tiles).floor();
    let lat = point.lat.to_radians();
    let row =
        ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * tiles).floor();
    (zoom, col as u32, row as u32)
}

#[expect(
    clippy::too_many_lines,
    reason = "one table of scenarios reads best in one place"
)]
fn scenarios(ctx: &Ctx) -> Vec<Scenario> {
    let base = &ctx.base;
    let pts = &ctx.points;
    // The baseline is the same endpoint answered by PostGIS (`source=postgis`): same HTTP,
    // same JSON, only the query engine differs, so the ratio is the index's own gain.
    let nearby = |radius: u32, status: &str, source: &str| -> Vec<String> {
        pts.iter()
            .map(|p| {
                format!(
                    "{base}/api/v1/incidents/nearby?lat={:.6}&lon={:.6}&radius_m={radius}&limit=50&status={status}{source}",
                    p.lat, p.lon
                )
            })
            .collect()
    };
    let postgis = "&source=postgis";
    let (from, to) = &ctx.window;
    // Open311's baseline likewise: the same endpoint with `source=postgis`.
    let open311 = |source: &str| -> Vec<String> {
        pts.iter()
            .map(|p| {
                format!(
                    "{base}/open311/v2/requests.json?lat={:.6}&long={:.6}&radius=500&start_date={from}&end_date={to}{source}",
                    p.lat, p.lon
                )
            })
            .collect()
    };
    // Cached tiles: a small working set of z14 tiles, asked again and again. Cold tiles: each
    // distinct z14 tile of the query points once, so no request can be a cache hit.
    let hot: Vec<(u32, u32, u32)> = pts
        .iter()
        .take(32)
        .map(|p| tile_of(*p, 14))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cold: Vec<(u32, u32, u32)> = pts
        .iter()
        .map(|p| tile_of(*p, 14))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let tile_urls = |t: &[(u32, u32, u32)], source: &str| -> Vec<String> {
        t.iter()
            .map(|(z, x, y)| format!("{base}/tiles/{z}/{x}/{y}.mvt{source}"))
            .collect()
    };
    // The tiles' baseline is the same endpoint built by PostGIS ST_AsMVT (`source=postgis`,
    // incidents layer, uncached), with the same HTTP and gzip.
    let postgis_tiles = |t: &[(u32, u32, u32)]| {
        http_get_gzip_as(
            &ctx.client,
            tile_urls(t, "?source=postgis"),
            &ctx.admin_token,
        )
    };
    vec![
        Scenario {
            name: "nearby_open",
            what: "GET /api/v1/incidents/nearby, open incidents within 1 km, limit 50",
            probe: nearby(1000, "open", "")[0].clone(),
            citypin: http_get(&ctx.client, nearby(1000, "open", "")),
            baseline: Some((
                "the same endpoint with source=postgis (HTTP + JSON; GiST bbox + ST_DWithin, ORDER BY distance, id)",
                http_get_as(&ctx.client, nearby(1000, "open", postgis), &ctx.admin_token),
            )),
            budget: u64::MAX,
        },
        Scenario {
            name: "nearby_all",
            what: "GET /api/v1/incidents/nearby, every status within 500 m, limit 50",
            probe: nearby(500, "all", "")[0].clone(),
            citypin: http_get(&ctx.client, nearby(500, "all", "")),
            baseline: Some((
                "the same endpoint with source=postgis (HTTP + JSON)",
                http_get_as(&ctx.client, nearby(500, "all", postgis), &ctx.admin_token),
            )),
            budget: u64::MAX,
        },
        Scenario {
            name: "open311_geo",
            what: "GET /open311/v2/requests.json with lat/long/radius=500 m and a date window",
            probe: open311("")[0].clone(),
            citypin: http_get(&ctx.client, open311("")),
            baseline: Some((
                "the same endpoint with source=postgis (HTTP + JSON; PostGIS radius + date window, newest first)",
                http_get_as(&ctx.client, open311(postgis), &ctx.admin_token),
            )),
            budget: u64::MAX,
        },
        Scenario {
            name: "tiles_cached",
            what: "GET /tiles/14/{x}/{y}.mvt over a working set of tiles (cache hits)",
            probe: tile_urls(&hot, "")[0].clone(),
            citypin: http_get_gzip(&ctx.client, tile_urls(&hot, "")),
            baseline: Some((
                "the same endpoint with source=postgis (ST_AsMVT of the incidents layer, uncached; HTTP + gzip)",
                postgis_tiles(&hot),
            )),
            budget: u64::MAX,
        },
        Scenario {
            name: "tiles_cold",
            what: "GET /tiles/14/{x}/{y}.mvt, each tile once (cache misses)",
            probe: format!("{base}/tiles/0/0/0.mvt"),
            citypin: http_get_gzip(&ctx.client, tile_urls(&cold, "")),
            baseline: Some((
                "the same endpoint with source=postgis (ST_AsMVT of the incidents layer, uncached; HTTP + gzip)",
                postgis_tiles(&cold),
            )),
            budget: cold.len() as u64,
        },
        intake(ctx),
    ]
}

/// Shows the first few failures of a run, so an error count comes with its cause.
fn note_failure(what: &str) {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("bench: {}", what.chars().take(300).collect::<String>());
    }
}

/// How the service answered one write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Posted {
    /// 201: stored durably.
    Created,
    /// 503 with `Retry-After`: refused quickly because the service is saturated.
    Shed,
    /// Anything else (a 503 without `Retry-After` counts here: a client would not know when
    /// to come back).
    Failed,
}

/// One intake request; what the service answered.
type WriteOp = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Posted> + Send>> + Send + Sync>;

/// `POST /api/v1/reports` through `client`: every request a new report with its own
/// Idempotency-Key (from `i`), at a point and service drawn from the data.
fn intake_post(ctx: &Ctx, client: &reqwest::Client) -> WriteOp {
    let client = client.clone();
    let url = format!("{}/api/v1/reports", ctx.base);
    let (points, services) = (ctx.points.clone(), ctx.services.clone());
    let run = format!("{}-{}", ctx.scale, std::process::id());
    Arc::new(move |i| {
        let p = points[i as usize % points.len()];
        let body = json!({
            "service_code": services[i as usize % services.len()],
            "lat": p.lat, "lon": p.lon,
            "description": format!("Bench report {i}"),
        });
        let req = client
            .post(&url)
            .header("Idempotency-Key", format!("bench-{run}-{i}"))
            .json(&body);
        Box::pin(async move {
            match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    let retry_after = r.headers().contains_key(reqwest::header::RETRY_AFTER);
                    let body = r.bytes().await;
                    match status {
                        reqwest::StatusCode::CREATED if body.is_ok() => Posted::Created,
                        reqwest::StatusCode::SERVICE_UNAVAILABLE if retry_after => Posted::Shed,
                        _ => {
                            note_failure(&format!("intake answered {status}: {body:?}"));
                            Posted::Failed
                        }
                    }
                }
                Err(e) => {
                    note_failure(&format!("intake failed: {e}"));
                    Posted::Failed
                }
            }
        })
    })
}

/// `POST /api/v1/reports`: every request a new report with its own Idempotency-Key, committed
/// durably (`synchronous_commit` on) before the 201.
fn intake(ctx: &Ctx) -> Scenario {
    let post = intake_post(ctx, &ctx.client);
    let op: Op = Arc::new(move |i| {
        let posted = post(i);
        Box::pin(async move { posted.await == Posted::Created })
    });
    Scenario {
        name: "intake",
        what: "POST /api/v1/reports, unique Idempotency-Key, durable commit",
        probe: format!("{}/api/v1/services", ctx.base),
        citypin: op,
        baseline: None,
        budget: u64::MAX,
    }
}

// ---------------------------------------------------------------- running scenarios

async fn available(ctx: &Ctx, url: &str) -> bool {
    let probe = ctx.client.get(url).send().await;
    // A missing route may fall through to the web map's HTML: that is not the endpoint.
    matches!(&probe, Ok(r) if r.status() != reqwest::StatusCode::NOT_FOUND
        && r.status() != reqwest::StatusCode::METHOD_NOT_ALLOWED
        && !r.headers().get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/html")))
}

fn unavailable(ctx: &Ctx, name: &str, what: &str) -> Value {
    eprintln!("bench: {}: {name}: not available in this build", ctx.scale);
    json!({"name": name, "what": what, "available": false})
}

async fn run_scenario(
    args: &Args,
    server: &Server,
    ctx: &Ctx,
    s: &Scenario,
    connections: usize,
) -> Value {
    if !available(ctx, &s.probe).await {
        return unavailable(ctx, s.name, s.what);
    }
    eprintln!("bench: {}: {}", ctx.scale, s.name);
    let before_kb = server.reset_peak();
    let citypin = measure(&s.citypin, connections, args.duration, s.budget).await;
    let (peak_kb, rss_kb) = server.memory();
    let baseline = match &s.baseline {
        Some((label, op)) => {
            eprintln!("bench: {}: {} baseline", ctx.scale, s.name);
            let b = measure(op, connections, args.duration, s.budget).await;
            Some(json!({"label": label, "stats": b}))
        }
        None => None,
    };
    let ratio = |k: &str| {
        baseline.as_ref().and_then(|b| {
            let (c, b) = (citypin[k].as_f64()?, b["stats"][k].as_f64()?);
            Some(if k == "ok_per_s" { c / b } else { b / c })
        })
    };
    json!({
        "name": s.name, "what": s.what, "available": true, "citypin": citypin,
        "baseline": baseline, "server_peak_rss_kb": peak_kb, "server_rss_kb": rss_kb,
        "server_rss_before_kb": before_kb,
        // How many times better citypin is than the baseline (>1: citypin wins).
        "speedup_p50": ratio("p50_ms"), "speedup_p99": ratio("p99_ms"),
        "throughput_ratio": ratio("ok_per_s"),
    })
}

/// Issue 3: nearby reads (closed loop) while intake writes arrive open loop at `WRITE_RATE`/s.
///
/// The writes are scheduled by the clock, not by answers: whenever the sender wakes it sends
/// every write that is due by then (so a late wake-up does not lower the rate), each on its own
/// task through a client whose connection pool can keep every write in flight (no reconnects).
/// Each write is counted by its answer: 201 stored, 503 with `Retry-After` shed by the service,
/// or failed; a write the harness could not send because `MAX_IN_FLIGHT` were outstanding is
/// counted as not sent. `ok_per_s` is the 201s over the whole time, the drain included.
/// Open loop: `op` started at `rate` per second whatever the answers take, latency from each
/// request's start; past `max_inflight` outstanding the harness counts a request as not sent.
async fn open_loop(op: &Op, rate: u64, duration: Duration, max_inflight: usize) -> Value {
    let start = Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    let (mut due_seen, mut not_sent, mut errors) = (0u64, 0u64, 0u64);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
    let mut tally = |r: Result<(bool, u64), tokio::task::JoinError>| match r {
        Ok((ok, us)) => {
            hist.saturating_record(us);
            errors += u64::from(!ok);
        }
        Err(_) => errors += 1,
    };
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        let due = (elapsed.as_secs_f64() * rate as f64) as u64;
        while let Some(r) = inflight.try_join_next() {
            tally(r);
        }
        while due_seen < due {
            let i = due_seen;
            due_seen += 1;
            if inflight.len() >= max_inflight {
                not_sent += 1;
                continue;
            }
            let request = op(i);
            inflight.spawn(async move {
                let t = Instant::now();
                let ok = request.await;
                (ok, (t.elapsed().as_micros() as u64).max(1))
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while let Some(r) = inflight.join_next().await {
        tally(r);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let ok = hist.len() - errors.min(hist.len());
    json!({
        "target_per_s": rate, "requests": hist.len(), "errors": errors, "not_sent": not_sent,
        "elapsed_s": elapsed, "ok_per_s": ok as f64 / elapsed,
        "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": hist.max() as f64 / 1000.0,
    })
}

/// Reads at a steady 1,000/s (open loop), first alone, then while `POST /api/v1/reports`
/// arrive open-loop at 1,000/s: what a crew's query costs on the day of a storm. Open loop on
/// both sides, so closed-loop readers cannot take the whole machine and starve the writes.
async fn reads_under_writes(args: &Args, server: &Server, ctx: &Ctx, reads: &Scenario) -> Value {
    const WRITE_RATE: u64 = 1_000;
    const READ_RATE: u64 = 1_000;
    const MAX_IN_FLIGHT: usize = 512;
    let (name, what) = (
        "nearby_under_writes",
        "nearby_all reads at 1,000/s while POST /api/v1/reports arrive at 1,000/s (both open loop)",
    );
    if !available(ctx, &reads.probe).await {
        return unavailable(ctx, name, what);
    }
    eprintln!("bench: {}: {name}", ctx.scale);
    let Ok(write_client) = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .timeout(Duration::from_secs(30))
        .build()
    else {
        return unavailable(ctx, name, "no HTTP client for the writes");
    };
    let post = intake_post(ctx, &write_client);
    let reads_alone = open_loop(&reads.citypin, READ_RATE, args.duration, MAX_IN_FLIGHT).await;
    let before_kb = server.reset_peak();
    let duration = args.duration;
    let write_load = tokio::spawn(async move {
        let start = Instant::now();
        let mut inflight = tokio::task::JoinSet::new();
        let (mut due_seen, mut sent, mut not_sent) = (0u64, 0u64, 0u64);
        let (mut created, mut shed, mut failed) = (0u64, 0u64, 0u64);
        let mut accepted = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
        let mut refused = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("bounds");
        let mut tally = |r: Result<(Posted, u64), tokio::task::JoinError>| match r {
            Ok((Posted::Created, us)) => {
                created += 1;
                accepted.saturating_record(us);
            }
            Ok((Posted::Shed, us)) => {
                shed += 1;
                refused.saturating_record(us);
            }
            _ => failed += 1,
        };
        // Keys far from the intake scenario's, so no write replays another.
        let mut i = 1u64 << 41;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= duration {
                break;
            }
            let due = (elapsed.as_secs_f64() * WRITE_RATE as f64) as u64;
            while let Some(r) = inflight.try_join_next() {
                tally(r);
            }
            while due_seen < due {
                due_seen += 1;
                // Bounded: past this many outstanding, the harness itself stops sending.
                if inflight.len() >= MAX_IN_FLIGHT {
                    not_sent += 1;
                    continue;
                }
                let posted = post(i);
                inflight.spawn(async move {
                    let t = Instant::now();
                    let p = posted.await;
                    (p, (t.elapsed().as_micros() as u64).max(1))
                });
                i += 1;
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let send_s = start.elapsed().as_secs_f64();
        while let Some(r) = inflight.join_next().await {
            tally(r);
        }
        let elapsed = start.elapsed().as_secs_f64();
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        json!({"target_per_s": WRITE_RATE, "sent": sent, "not_sent": not_sent,
               "sent_per_s": sent as f64 / send_s,
               "ok": created, "shed_503": shed, "failed": failed, "elapsed_s": elapsed,
               "ok_per_s": created as f64 / elapsed,
               "ok_p50_ms": ms(&accepted, 0.5), "ok_p99_ms": ms(&accepted, 0.99),
               "shed_p99_ms": ms(&refused, 0.99)})
    });
    let citypin = open_loop(&reads.citypin, READ_RATE, duration, MAX_IN_FLIGHT).await;
    let writes = write_load.await.unwrap_or(Value::Null);
    let (peak_kb, rss_kb) = server.memory();
    json!({
        "name": name, "what": what, "available": true, "citypin": citypin, "writes": writes,
        "reads_alone": reads_alone,
        "server_peak_rss_kb": peak_kb, "server_rss_kb": rss_kb, "server_rss_before_kb": before_kb,
    })
}

/// Issue 6: the whole table as `GeoJSON`, streamed by citypin, against `ogr2ogr` reading the same
/// table from `PostGIS`.
async fn export(server: &Server, ctx: &Ctx, db_url: &str) -> BoxResult<Value> {
    let (name, what) = (
        "export_geojson",
        "GET /api/v1/export/incidents.geojson, every incident, streamed",
    );
    let url = format!("{}/api/v1/export/incidents.geojson", ctx.base);
    if !available(ctx, &url).await {
        return Ok(unavailable(ctx, name, what));
    }
    eprintln!("bench: {}: {name}", ctx.scale);
    let before_kb = server.reset_peak();
    let t = Instant::now();
    let resp = reqwest::Client::new().get(&url).send().await?;
    let status = resp.status();
    let mut stream = resp.bytes_stream();
    let (mut bytes, mut features, mut tail) = (0usize, 0u64, Vec::new());
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk?;
        bytes += chunk.len();
        // Count `"Feature"` across chunk boundaries (it never matches `"FeatureCollection"`).
        tail.extend_from_slice(&chunk);
        features += tail.windows(9).filter(|w| w == b"\"Feature\"").count() as u64;
        tail.drain(..tail.len().saturating_sub(8));
    }
    let citypin_s = t.elapsed().as_secs_f64();
    let (peak_kb, rss_kb) = server.memory();

    let opts: sqlx::postgres::PgConnectOptions = db_url.parse()?;
    let host = opts
        .get_socket()
        .map_or_else(|| opts.get_host().to_owned(), |p| p.display().to_string());
    let conn = format!(
        "PG:host={host} port={} dbname={} user={}",
        opts.get_port(),
        opts.get_database().unwrap_or("postgres"),
        opts.get_username()
    );
    let t = Instant::now();
    let ogr = Command::new("ogr2ogr")
        .args(["-f", "GeoJSON", "/vsistdout/", &conn, "-sql"])
        .arg(
            "SELECT id::text AS id, reference, service_code, status, requested_at, updated_at, \
             location FROM reports WHERE NOT hidden",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let ogr_s = t.elapsed().as_secs_f64();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM reports WHERE NOT hidden")
        .fetch_one(&ctx.baseline)
        .await?;
    let baseline = match ogr {
        Ok(o) if o.status.success() => json!({"label": "ogr2ogr -f GeoJSON from PostGIS",
            "seconds": ogr_s, "features_per_s": rows as f64 / ogr_s}),
        Ok(o) => json!({"label": "ogr2ogr", "error": String::from_utf8_lossy(&o.stderr)}),
        Err(e) => json!({"label": "ogr2ogr", "error": e.to_string()}),
    };
    let features_per_s = features as f64 / citypin_s;
    Ok(json!({
        "name": name, "what": what, "available": true,
        "export": {"status": status.as_u16(), "seconds": citypin_s, "bytes": bytes,
                   "features": features, "features_per_s": features_per_s},
        "baseline": baseline,
        "throughput_ratio": baseline["features_per_s"].as_f64().map(|b| features_per_s / b),
        "server_peak_rss_kb": peak_kb, "server_rss_kb": rss_kb, "server_rss_before_kb": before_kb,
        "rss_growth_kb": peak_kb.saturating_sub(before_kb),
    }))
}

// ---------------------------------------------------------------- one data size

/// `citypin token create --role admin --name bench` against the bench database.
fn token_create(args: &Args, url: &str) -> BoxResult<String> {
    let out = Command::new(&args.bin)
        .args(["token", "create", "--role", "admin", "--name", "bench"])
        .env("DATABASE_URL", url)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err("citypin token create failed".into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Every scenario `args` wants: reads first, on the data as loaded; then the export; then the
/// scenarios that write.
async fn run_scenarios(
    args: &Args,
    server: &Server,
    ctx: &Ctx,
    url: &str,
) -> BoxResult<Vec<Value>> {
    let list = scenarios(ctx);
    // A misspelt name would otherwise run nothing, silently.
    let extra = ["export_geojson", "nearby_under_writes"];
    for name in args.only.iter().flatten() {
        if !list.iter().any(|s| s.name == name) && !extra.contains(&name.as_str()) {
            return Err(format!("--only: no scenario named {name:?}").into());
        }
    }
    let mut results = Vec::new();
    for s in list
        .iter()
        .filter(|s| s.name != "intake" && args.wants(s.name))
    {
        results.push(run_scenario(args, server, ctx, s, args.connections).await);
    }
    if args.wants("export_geojson") {
        results.push(export(server, ctx, url).await?);
    }
    if let Some(reads) = list.iter().find(|s| s.name == "nearby_all") {
        if args.wants("nearby_under_writes") {
            results.push(reads_under_writes(args, server, ctx, reads).await);
        }
    }
    for s in list
        .iter()
        .filter(|s| s.name == "intake" && args.wants(s.name))
    {
        // Throughput against latency: the same intake at other client concurrencies.
        for &c in &args.intake_connections {
            let mut r = run_scenario(args, server, ctx, s, c).await;
            r["connections"] = json!(c);
            if c != args.connections {
                r["name"] = json!(format!("intake_c{c}"));
            }
            results.push(r);
        }
    }
    Ok(results)
}

async fn run_scale(
    args: &Args,
    admin: &PgPool,
    admin_url: &str,
    catalogue: &Catalogue,
    n: u64,
) -> BoxResult<Value> {
    let name = format!("citypin_bench_{n}");
    fresh_db(admin, &name).await?;
    let url = db_url(admin_url, &name);
    let pool = PgPoolOptions::new()
        .max_connections(args.connections as u32)
        .connect(&url)
        .await?;
    citypin::db::MIGRATOR.run(&pool).await?;
    catalogue.upsert(&pool).await?;
    eprintln!("bench: {n}: loading incidents with COPY");
    let t = Instant::now();
    copy_incidents(&pool, catalogue, n).await?;
    let load_s = t.elapsed().as_secs_f64();
    let db_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&pool)
        .await?;
    eprintln!("bench: {n}: loaded in {load_s:.1} s; starting citypin");
    let admin_token = token_create(args, &url)?;
    let (server, startup) =
        Server::start(args, &url, &args.out.join(format!("serve-{n}.log"))).await?;
    eprintln!("bench: {n}: ready {startup}");

    // Query points follow the data (another seed, so they are not the stored points themselves).
    let sample: Vec<Incident> = Generator::from_file(&source(), catalogue, SEED + 1)?
        .take(20_000)
        .collect();
    let (lo, hi) = sample.iter().fold(
        (sample[0].requested_at, sample[0].requested_at),
        |(lo, hi), i| (lo.min(i.requested_at), hi.max(i.requested_at)),
    );
    // Open311 caps a window at 90 days: the newest 90 days of the data.
    let _ = lo;
    let from = (hi - chrono::Duration::days(89)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = hi.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ctx = Ctx {
        base: server.base.clone(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.connections)
            .timeout(Duration::from_secs(30))
            .build()?,
        baseline: pool.clone(),
        points: Arc::new(
            sample
                .iter()
                .map(|i| Point {
                    lon: i.position.lon(),
                    lat: i.position.lat(),
                })
                .collect(),
        ),
        services: Arc::new(
            catalogue
                .all()
                .iter()
                .map(|s| s.service_code.clone())
                .collect(),
        ),
        window: (from, to),
        scale: n,
        admin_token,
    };
    let results = run_scenarios(args, &server, &ctx, &url).await?;
    let peak_kb = results
        .iter()
        .filter_map(|r| r["server_peak_rss_kb"].as_u64())
        .chain([startup["peak_ready_kb"].as_u64().unwrap_or(0)])
        .max()
        .unwrap_or(0);
    server.stop();
    pool.close().await;
    // A 5M database is several GB: free the disk for the next size.
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    Ok(json!({
        "incidents": n, "load_s": load_s, "load_rows_per_s": n as f64 / load_s,
        "database_mb": db_bytes as f64 / 1_048_576.0, "startup": startup,
        "server_peak_rss_kb": peak_kb, "scenarios": results,
    }))
}

// ---------------------------------------------------------------- reporting

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "cpu": cpu, "memory_gib": mem_kb as f64 / 1_048_576.0,
        "loadavg_at_end": load.trim(),
    })
}

fn num(v: &Value) -> String {
    v.as_f64().map_or("–".to_owned(), |x| {
        if x.abs() >= 100.0 {
            format!("{x:.0}")
        } else if x.abs() >= 10.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.2}")
        }
    })
}

fn times(v: &Value) -> String {
    v.as_f64().map_or("–".to_owned(), |x| format!("{x:.2}×"))
}

fn mib(kb: &Value) -> String {
    num(&json!(kb.as_f64().unwrap_or(0.0) / 1024.0))
}

fn markdown(res: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mach = &res["machine"];
    let _ = writeln!(
        out,
        "Run {} · {} CPUs ({}) · {:.0} GiB · {} connections · {} s per scenario · load average (1/5/15 min) at the start {}, at the end {}\n",
        res["date"].as_str().unwrap_or(""),
        mach["cpus"],
        mach["cpu"].as_str().unwrap_or(""),
        mach["memory_gib"].as_f64().unwrap_or(0.0),
        res["connections"],
        res["duration_s"],
        res["loadavg_at_start"].as_str().unwrap_or(""),
        mach["loadavg_at_end"].as_str().unwrap_or("")
    );
    let la = &res["la_import"];
    let _ = writeln!(
        out,
        "LA file import (`citypin import {}`): {} rows in {} s = {} rows/s\n",
        la["file"].as_str().unwrap_or(""),
        la["imported"],
        num(&la["import_s"]),
        num(&la["rows_per_s"])
    );
    let gi = &res["generated_import"];
    let _ = writeln!(
        out,
        "Generated CSV import (`citypin generate --count 100000` then `citypin import`): {} rows in {} s = {} rows/s\n",
        gi["imported"],
        num(&gi["import_s"]),
        num(&gi["rows_per_s"])
    );
    out.push_str(&goals(res));
    for scale in res["scales"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "### {} incidents\n\nCOPY load {} s ({} rows/s), database {} MB; citypin ready (index loaded) after {} s, RSS {} MiB then; peak RSS over the run {} MiB.\n",
            scale["incidents"],
            num(&scale["load_s"]),
            num(&scale["load_rows_per_s"]),
            num(&scale["database_mb"]),
            num(&scale["startup"]["ready_s"]),
            mib(&scale["startup"]["rss_ready_kb"]),
            mib(&scale["server_peak_rss_kb"]),
        );
        out.push_str("| scenario | citypin ok/s | p50 ms | p99 ms | p99.9 ms | errors | PostGIS ok/s | p50 ms | p99 ms | throughput ratio | p50 speed-up | p99 speed-up | server peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for sc in scale["scenarios"].as_array().into_iter().flatten() {
            out.push_str(&scenario_row(sc));
        }
        out.push('\n');
    }
    out.push_str("Throughput ratio = citypin ok/s ÷ PostGIS ok/s; speed-up = PostGIS latency ÷ citypin latency (above 1: citypin is faster). PostGIS columns, at the same concurrency: the same endpoint with `source=postgis` (same HTTP and encoding, PostGIS answers instead of the index, admin token; tiles: `ST_AsMVT` of the incidents layer, uncached); for the export, `ogr2ogr` reading the same table.\n");
    out
}

fn scenario_row(sc: &Value) -> String {
    let name = sc["name"].as_str().unwrap_or("");
    if sc["available"] != json!(true) {
        return format!("| {name} | not in this build | | | | | | | | | | | |\n");
    }
    if let Some(e) = sc.get("export") {
        let b = &sc["baseline"];
        return format!(
            "| {name} | {} features/s ({} features, {} MB in {} s) | | | | status {} | ogr2ogr {} features/s ({} s) | | | {} | | | {} (growth {}) |\n",
            num(&e["features_per_s"]),
            e["features"],
            num(&json!(e["bytes"].as_f64().unwrap_or(0.0) / 1e6)),
            num(&e["seconds"]),
            e["status"],
            num(&b["features_per_s"]),
            num(&b["seconds"]),
            times(&sc["throughput_ratio"]),
            mib(&sc["server_peak_rss_kb"]),
            mib(&sc["rss_growth_kb"]),
        );
    }
    let c = &sc["citypin"];
    let b = &sc["baseline"]["stats"];
    let mut errors = c["errors"].to_string();
    if let Some(w) = sc.get("writes") {
        errors = format!(
            "{errors} (writes: {} ok/s, p99 {} ms; {} sent at {}/s, {} answered 503, {} failed, {} not sent)",
            num(&w["ok_per_s"]),
            num(&w["ok_p99_ms"]),
            w["sent"],
            num(&w["sent_per_s"]),
            w["shed_503"],
            w["failed"],
            w["not_sent"]
        );
        let alone = &sc["reads_alone"];
        errors = format!(
            "{errors}; the same reads without writes: p50 {} ms, p99 {} ms",
            num(&alone["p50_ms"]),
            num(&alone["p99_ms"])
        );
    }
    format!(
        "| {name} | {} | {} | {} | {} | {errors} | {} | {} | {} | {} | {} | {} | {} |\n",
        num(&c["ok_per_s"]),
        num(&c["p50_ms"]),
        num(&c["p99_ms"]),
        num(&c["p999_ms"]),
        num(&b["ok_per_s"]),
        num(&b["p50_ms"]),
        num(&b["p99_ms"]),
        times(&sc["throughput_ratio"]),
        times(&sc["speedup_p50"]),
        times(&sc["speedup_p99"]),
        mib(&sc["server_peak_rss_kb"]),
    )
}

/// The goals of issues 2, 3, 5 and 6 that this harness measures, each met or not. The issues
/// name 1,000,000 incidents; a run without that size is judged at its largest size, and says so.
#[expect(
    clippy::too_many_lines,
    reason = "one line per goal, as the issues list them"
)]
fn goals(res: &Value) -> String {
    use std::fmt::Write as _;
    let scales: Vec<&Value> = res["scales"].as_array().into_iter().flatten().collect();
    let Some(at) = scales
        .iter()
        .find(|s| s["incidents"] == json!(1_000_000))
        .or_else(|| scales.last())
    else {
        return String::new();
    };
    let find = |name: &str| {
        at["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == json!(name) && s["available"] == json!(true))
    };
    let n = at["incidents"].as_u64().unwrap_or(0);
    let mut rows: Vec<(String, String, String, Option<bool>)> = Vec::new();
    let mut goal =
        |what: &str, target: &str, v: Option<f64>, shown: String, ok: fn(f64) -> bool| {
            rows.push((what.to_owned(), target.to_owned(), shown, v.map(ok)));
        };
    let la = res["la_import"]["import_s"].as_f64();
    goal(
        "LA file import (issue 2)",
        "< 5 s",
        la,
        format!("{} s", num(&json!(la))),
        |v| v < 5.0,
    );
    // The goal is both at once: the fastest intake concurrency whose p99 is under 50 ms, or
    // the default concurrency when none is.
    let intakes: Vec<&Value> = at["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["available"] == json!(true)
                && s["name"].as_str().is_some_and(|n| n.starts_with("intake"))
        })
        .collect();
    let best = intakes
        .iter()
        .filter(|s| s["citypin"]["p99_ms"].as_f64().is_some_and(|p| p < 50.0))
        .max_by(|a, b| {
            let rate = |s: &Value| s["citypin"]["ok_per_s"].as_f64().unwrap_or(0.0);
            rate(a).total_cmp(&rate(b))
        })
        .or_else(|| intakes.iter().find(|s| s["name"] == json!("intake")))
        .copied();
    let at_c = best.map_or(String::new(), |s| {
        format!(" at {} connections", s["connections"])
    });
    let intake = best.map(|s| &s["citypin"]);
    let rate = intake.and_then(|c| c["ok_per_s"].as_f64());
    goal(
        "intake, accepted reports/s, durable (issue 2)",
        "≥ 1,000/s",
        rate,
        format!("{}/s{at_c}", num(&json!(rate))),
        |v| v >= 1000.0,
    );
    let p99 = intake.and_then(|c| c["p99_ms"].as_f64());
    goal(
        "intake p99 (issue 2)",
        "< 50 ms",
        p99,
        format!("{} ms{at_c}", num(&json!(p99))),
        |v| v < 50.0,
    );
    let ready = at["startup"]["ready_s"].as_f64();
    goal(
        "start-up to ready, index built from PostGIS (issue 3)",
        "< 10 s",
        ready,
        format!("{} s", num(&json!(ready))),
        |v| v < 10.0,
    );
    let per = at["startup"]["rss_ready_kb"]
        .as_f64()
        .map(|kb| kb * 1024.0 / n.max(1) as f64);
    goal(
        "process RSS after start-up ÷ incidents (issue 3; an upper bound on index bytes per incident)",
        "< 250 B",
        per,
        format!("{} B", num(&json!(per))),
        |v| v < 250.0,
    );
    // What each further incident costs the whole process (index, tile pyramid, allocator), with
    // the fixed cost of a running service taken out: the slope of ready RSS between the
    // smallest and the largest size of the run.
    let ready_kb = |s: &Value| {
        Some((
            s["incidents"].as_f64()?,
            s["startup"]["rss_ready_kb"].as_f64()?,
        ))
    };
    if let (Some(small), Some(large)) = (
        scales.first().and_then(|s| ready_kb(s)),
        scales.last().and_then(|s| ready_kb(s)),
    ) && large.0 > small.0
    {
        let slope = (large.1 - small.1) * 1024.0 / (large.0 - small.0);
        goal(
            &format!(
                "process RSS per further incident, {} → {} incidents (issue 3)",
                small.0, large.0
            ),
            "< 250 B",
            Some(slope),
            format!("{} B", num(&json!(slope))),
            |v| v < 250.0,
        );
    }
    for name in ["nearby_open", "nearby_all"] {
        let r = find(name).and_then(|s| s["throughput_ratio"].as_f64());
        goal(
            &format!("{name} throughput ÷ the same endpoint with source=postgis (issue 3)"),
            "≥ 10×",
            r,
            times(&json!(r)),
            |v| v >= 10.0,
        );
    }
    let uw = find("nearby_under_writes");
    let uw_p99 = uw.and_then(|s| s["citypin"]["p99_ms"].as_f64());
    let uw_w = uw.and_then(|s| s["writes"]["ok_per_s"].as_f64());
    let uw_alone = uw.and_then(|s| s["reads_alone"]["p99_ms"].as_f64());
    goal(
        "nearby p99 (reads at 1,000/s) while 1,000 writes/s are applied (issue 3)",
        "report",
        None,
        format!(
            "{} ms, {} ms without writes (writes accepted: {}/s of 1,000/s due)",
            num(&json!(uw_p99)),
            num(&json!(uw_alone)),
            num(&json!(uw_w))
        ),
        |_| true,
    );
    let cached = find("tiles_cached").map(|s| &s["citypin"]);
    let tr = cached.and_then(|c| c["ok_per_s"].as_f64());
    goal(
        "cached tiles/s (issue 5)",
        "≥ 20,000/s",
        tr,
        format!("{}/s", num(&json!(tr))),
        |v| v >= 20_000.0,
    );
    let tp = cached.and_then(|c| c["p99_ms"].as_f64());
    goal(
        "cached tile p99 (issue 5)",
        "≤ 5 ms",
        tp,
        format!("{} ms", num(&json!(tp))),
        |v| v <= 5.0,
    );
    let cold = find("tiles_cold");
    let cp = cold.and_then(|s| s["citypin"]["p50_ms"].as_f64());
    goal(
        "cold z14 tile p50 (issue 5)",
        "≤ 5 ms",
        cp,
        format!("{} ms", num(&json!(cp))),
        |v| v <= 5.0,
    );
    let cr = cold.and_then(|s| s["speedup_p50"].as_f64());
    goal(
        "cold tile vs PostGIS ST_AsMVT, p50 speed-up (issue 5)",
        "≥ 3×",
        cr,
        times(&json!(cr)),
        |v| v >= 3.0,
    );
    let ex = find("export_geojson");
    let ef = ex.and_then(|s| s["export"]["features_per_s"].as_f64());
    goal(
        "GeoJSON export, features/s (issue 6)",
        "≥ 150,000/s",
        ef,
        format!("{}/s", num(&json!(ef))),
        |v| v >= 150_000.0,
    );
    let eg = ex
        .and_then(|s| s["rss_growth_kb"].as_f64())
        .map(|kb| kb / 1024.0);
    goal(
        "GeoJSON export, peak RSS growth (issue 6)",
        "≤ 64 MB",
        eg,
        format!("{} MiB", num(&json!(eg))),
        |v| v <= 64.0,
    );

    let mut out = format!(
        "Goals judged at {n} incidents:\n\n| figure | goal | measured | met |\n|---|---|---|---|\n"
    );
    for (what, target, shown, ok) in rows {
        let met = match ok {
            Some(true) => "yes",
            Some(false) => "**no**",
            None if shown.starts_with('–') => "not measured (endpoint not in this build)",
            None => "–",
        };
        let shown = if shown.starts_with('–') {
            "–".to_owned()
        } else {
            shown
        };
        let _ = writeln!(out, "| {what} | {target} | {shown} | {met} |");
    }
    out.push('\n');
    out
}
