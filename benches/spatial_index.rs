//! The live spatial index with 1,000,000 incidents resampled from the LA sample: build time and
//! bytes per incident, radius (50 m, 500 m) and k-nearest (k = 20) latency, and read latency
//! while 1,000 writes/s are applied — each side by side with the obvious baseline, the
//! foundation's design (one `RwLock` over a lon/lat R-tree plus the incidents), as ratios.
//! With `DATABASE_URL` set (run under `scripts/with-test-db.sh`) it also times the build from
//! `PostGIS` after loading the million rows with `COPY` into a scratch database.
//!
//! Resampling: each incident takes the location (and service code) of a report drawn uniformly
//! from the LA 311 sample in the shared data folder; 90 % are then moved by a uniform random point of a 40 m disc,
//! 10 % keep the exact location, like the stacked reports of the real data. Seeded: every run
//! sees the same million.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use citypin::catalogue::Catalogue;
use citypin::domain::Status;
use citypin::geo::{EARTH_RADIUS_M, Position, REPORT_H3_RESOLUTION};
use citypin::spatial_index::{Filter, Incident, SpatialIndex};
use criterion::{Criterion, criterion_group, criterion_main};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use uuid::Uuid;

#[path = "common/scratch.rs"]
mod scratch;
use scratch::Scratch;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, as a
/// quick smoke run (few incidents, no `PostGIS` load) that keeps `make test` short.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// 1,000,000, or `BENCH_INCIDENTS` (`make bench-quick` sets 100,000).
fn incidents_n() -> usize {
    if full_run() {
        citypin::import::generate::bench_incidents()
    } else {
        5_000
    }
}

fn queries_n() -> usize {
    if full_run() { 20_000 } else { 200 }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.next() * n as f64) as usize).min(n - 1)
    }
}

/// (lon, lat, service code) of every LA sample report.
fn la_sample() -> Vec<(f64, f64, String)> {
    let path = citypin::config::shared_data::file(citypin::config::shared_data::LA311_CSV);
    let mut reader = csv::Reader::from_path(path).expect("la311.csv");
    let headers = reader.headers().expect("headers").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (lat, lon, code) = (col("lat"), col("long"), col("service_code"));
    reader
        .records()
        .filter_map(Result::ok)
        .filter_map(|r| {
            let lat: f64 = r.get(lat)?.parse().ok()?;
            let lon: f64 = r.get(lon)?.parse().ok()?;
            let code = r.get(code)?.to_owned();
            (lat.abs() > 1.0).then_some((lon, lat, code))
        })
        .collect()
}

fn jitter(rng: &mut Rng, lon: f64, lat: f64, max_m: f64) -> Position {
    let d = max_m * rng.next().sqrt();
    let bearing = rng.next() * std::f64::consts::TAU;
    let dlat = (d * bearing.cos() / EARTH_RADIUS_M).to_degrees();
    let dlon = (d * bearing.sin() / (EARTH_RADIUS_M * lat.to_radians().cos())).to_degrees();
    Position::new(lon + dlon, lat + dlat).expect("LA stays in range")
}

fn generate(n: usize, seed: u64) -> Vec<Incident> {
    let sample = la_sample();
    let catalogue = Catalogue::load(None).expect("catalogue");
    let mut rng = Rng(seed);
    let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("time");
    (0..n)
        .map(|i| {
            let (lon, lat, code) = &sample[rng.below(sample.len())];
            let position = if rng.next() < 0.1 {
                Position::new(*lon, *lat).expect("position")
            } else {
                jitter(&mut rng, *lon, *lat, 40.0)
            };
            // Statuses uniformly, but no `duplicate`: that needs a parent (a CHECK constraint).
            let status = match Status::ALL[rng.below(Status::ALL.len())] {
                Status::Duplicate => Status::New,
                s => s,
            };
            let group = catalogue.get(code).map_or("Other", |s| s.group.as_str());
            Incident {
                id: Uuid::from_u64_pair(0x0190_0000_0000_7000, i as u64),
                reference: Arc::from(format!("CP-{:04X}-{:04X}", i >> 16, i & 0xFFFF)),
                position,
                service_code: Arc::from(code.as_str()),
                group: Arc::from(group),
                status,
                requested_at: t0 + chrono::Duration::seconds(i as i64),
                updated_at: t0 + chrono::Duration::seconds(i as i64),
                supporters: 0,
                duplicate_of: None,
                h3_cell: position.h3_cell(REPORT_H3_RESOLUTION).into(),
                change_seq: i as i64 + 1,
            }
        })
        .collect()
}

/// The foundation's design, as the baseline: one lock over a lon/lat R-tree and the incidents.
type LonLatTree = RTree<GeomWithData<[f64; 2], usize>>;

struct Baseline {
    inner: RwLock<(LonLatTree, Vec<Incident>)>,
}

impl Baseline {
    fn new(incidents: Vec<Incident>) -> Self {
        let entries = incidents
            .iter()
            .enumerate()
            .map(|(i, inc)| GeomWithData::new([inc.position.lon(), inc.position.lat()], i))
            .collect();
        Self {
            inner: RwLock::new((RTree::bulk_load(entries), incidents)),
        }
    }

    /// Box around the circle, haversine filter, sort (LA never crosses the antimeridian).
    fn nearby(&self, c: Position, radius_m: f64, limit: usize) -> Vec<(f64, Incident)> {
        let guard = self.inner.read().expect("lock");
        let dlat = (radius_m / EARTH_RADIUS_M).to_degrees() * 1.000_001;
        let dlon = dlat / c.lat().to_radians().cos();
        let env = rstar::AABB::from_corners(
            [c.lon() - dlon, c.lat() - dlat],
            [c.lon() + dlon, c.lat() + dlat],
        );
        let mut hits: Vec<(f64, usize)> = guard
            .0
            .locate_in_envelope(&env)
            .map(|e| (c.distance_m(guard.1[e.data].position), e.data))
            .filter(|(d, _)| *d <= radius_m)
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        hits.truncate(limit);
        hits.into_iter()
            .map(|(d, i)| (d, guard.1[i].clone()))
            .collect()
    }

    /// k-nearest: the lon/lat tree's own order is not geodesic, so widen a radius until k.
    fn nearest(&self, c: Position, k: usize) -> Vec<(f64, Incident)> {
        let mut r = 100.0;
        loop {
            let hits = self.nearby(c, r, k);
            if hits.len() >= k || r > 100_000.0 {
                return hits;
            }
            r *= 2.0;
        }
    }

    fn move_to(&self, i: usize, p: Position) {
        let mut guard = self.inner.write().expect("lock");
        let old = guard.1[i].position;
        guard
            .0
            .remove(&GeomWithData::new([old.lon(), old.lat()], i));
        guard.0.insert(GeomWithData::new([p.lon(), p.lat()], i));
        guard.1[i].position = p;
    }
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn percentiles(mut ns: Vec<u64>) -> (f64, f64, f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    (at(0.5), at(0.99), at(0.999), at(1.0))
}

/// Prints the two sides and returns the index's p99, in µs.
fn report(name: &str, index: Vec<u64>, baseline: Vec<u64>) -> f64 {
    let (i50, i99, i999, imax) = percentiles(index);
    let (b50, b99, b999, bmax) = percentiles(baseline);
    println!(
        "{name:<34} index p50 {i50:8.1} µs p99 {i99:8.1} µs p99.9 {i999:8.1} µs max {imax:9.1} µs | baseline p50 {b50:8.1} µs p99 {b99:8.1} µs p99.9 {b999:8.1} µs max {bmax:9.1} µs | p99 ratio {:.2}x",
        b99 / i99
    );
    i99
}

/// One row of the benchmark suite's goals table (scripts/bench.sh collects `goal |` lines).
fn goal(figure: &str, target: &str, measured: &str, met: bool) {
    let met = if met { "yes" } else { "**no**" };
    println!("goal | {figure} | {target} | {measured} | {met} |");
}

fn time_each(centres: &[Position], mut f: impl FnMut(Position) -> usize) -> Vec<u64> {
    centres
        .iter()
        .map(|c| {
            let t = Instant::now();
            black_box(f(*c));
            t.elapsed().as_nanos() as u64
        })
        .collect()
}

struct World {
    index: Arc<SpatialIndex>,
    baseline: Arc<Baseline>,
    centres: Vec<Position>,
    open: Filter,
}

fn build_world() -> World {
    let t = Instant::now();
    let n = incidents_n();
    let incidents = generate(n, 2026);
    println!(
        "generated {n} incidents in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut rng = Rng(11);
    let centres: Vec<Position> = (0..queries_n())
        .map(|_| {
            let p = incidents[rng.below(n)].position;
            jitter(&mut rng, p.lon(), p.lat(), 200.0)
        })
        .collect();
    let baseline_copy = incidents.clone();
    let rss0 = rss_bytes();
    let t = Instant::now();
    let index = SpatialIndex::from_incidents(incidents);
    let build = t.elapsed();
    let rss1 = rss_bytes();
    println!(
        "build from Vec<Incident>: {:.2} s for {} incidents; heap {:.1} bytes/incident (counted); RSS growth {:.1} bytes/incident (includes the allocator's slack and the freed input)",
        build.as_secs_f64(),
        index.len(),
        index.heap_bytes() as f64 / index.len() as f64,
        rss1.saturating_sub(rss0) as f64 / index.len() as f64,
    );
    let t = Instant::now();
    let baseline = Baseline::new(baseline_copy);
    println!(
        "baseline build: {:.2} s (lon/lat R-tree over 2-D points plus {} bytes per Incident struct, strings apart)",
        t.elapsed().as_secs_f64(),
        std::mem::size_of::<Incident>()
    );
    World {
        index: Arc::new(index),
        baseline: Arc::new(baseline),
        centres,
        open: Filter::open(),
    }
}

fn in_process_percentiles(w: &World) {
    let all = Filter::default();
    let n = w.index.len();
    for radius in [50.0, 500.0] {
        let idx = time_each(&w.centres, |c| {
            w.index.nearby_compact(c, radius, 50, &all).len()
        });
        let base = time_each(&w.centres, |c| w.baseline.nearby(c, radius, 50).len());
        let p99 = report(&format!("radius {radius} m, limit 50"), idx, base);
        goal(
            &format!("radius {radius} m query p99 in process, {n} incidents (issue 3)"),
            "< 20 µs",
            &format!("{p99:.1} µs"),
            p99 < 20.0,
        );
    }
    let idx = time_each(&w.centres, |c| w.index.nearest(c, 20, &all).len());
    let base = time_each(&w.centres, |c| w.baseline.nearest(c, 20).len());
    let p99 = report("k-nearest k = 20", idx, base);
    goal(
        &format!("k-nearest (k = 20) p99 in process, {n} incidents (issue 3)"),
        "< 20 µs",
        &format!("{p99:.1} µs"),
        p99 < 20.0,
    );
    let idx = time_each(&w.centres, |c| {
        w.index.nearby_compact(c, 500.0, 50, &w.open).len()
    });
    report(
        "radius 500 m, open only (index)",
        idx,
        time_each(&w.centres, |c| w.baseline.nearby(c, 500.0, 50).len()),
    );
    let t = Instant::now();
    let cells = w
        .index
        .h3_counts(h3o::Resolution::Seven, None, &w.open)
        .len();
    println!(
        "h3_counts res 7, open, whole city: {cells} cells in {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
}

/// Radius-500 reads on this thread while another applies 1,000 moves a second for `secs`;
/// for the index a fold (the background rebuild) also runs in the middle.
fn under_writes(w: &World, secs: u64, index_side: bool) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (index, baseline, stop) = (w.index.clone(), w.baseline.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(5);
            let start = Instant::now();
            let mut n: u64 = 0;
            let total = index.len();
            let mut seq = 10 * total as i64;
            while !stop.load(Ordering::Relaxed) {
                // Paced: write number n is due at n ms.
                let due = start + Duration::from_millis(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let i = rng.below(total);
                let id = Uuid::from_u64_pair(0x0190_0000_0000_7000, i as u64);
                if index_side {
                    if let Some(mut inc) = index.get(id) {
                        inc.position =
                            jitter(&mut rng, inc.position.lon(), inc.position.lat(), 20.0);
                        seq += 1;
                        inc.change_seq = seq;
                        index.upsert(inc);
                    }
                } else {
                    let p = baseline.inner.read().expect("lock").1[i].position;
                    baseline.move_to(i, jitter(&mut rng, p.lon(), p.lat(), 20.0));
                }
                n += 1;
                if index_side && n == secs * 500 {
                    let index = index.clone();
                    std::thread::spawn(move || index.fold());
                }
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut lat = Vec::new();
    let mut k = 0;
    while Instant::now() < deadline {
        let c = w.centres[k % w.centres.len()];
        k += 1;
        let t = Instant::now();
        if index_side {
            black_box(w.index.nearby_compact(c, 500.0, 50, &w.open));
        } else {
            black_box(w.baseline.nearby(c, 500.0, 50));
        }
        lat.push(t.elapsed().as_nanos() as u64);
    }
    stop.store(true, Ordering::Relaxed);
    let rate = writer.join().expect("writer");
    println!(
        "  {} side: {:.0} writes/s applied, {} reads",
        if index_side { "index" } else { "baseline" },
        rate,
        lat.len()
    );
    lat
}

fn build_goals(n: usize, secs: f64, bytes_per_incident: f64) {
    goal(
        &format!("index build from PostGIS, {n} incidents (issue 3)"),
        "< 10 s",
        &format!("{secs:.2} s"),
        secs < 10.0,
    );
    goal(
        "index memory per incident, counted from its structures (issue 3)",
        "< 250 B",
        &format!("{bytes_per_incident:.1} B"),
        bytes_per_incident < 250.0,
    );
}

/// COPYs the million into a scratch database and times `SpatialIndex::load` from it.
fn build_from_postgis(incidents_seed: u64) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!(
            "build from PostGIS: not measured (DATABASE_URL unset; run under scripts/with-test-db.sh)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let scratch = Scratch::create(&url, "index", 4).await;
        let pool = scratch.pool.clone();
        let catalogue = Catalogue::load(None).expect("catalogue");
        catalogue.upsert(&pool).await.expect("catalogue");
        let n = incidents_n();
        let incidents = generate(n, incidents_seed);
        let known: HashSet<&str> = catalogue
            .all()
            .iter()
            .map(|s| s.service_code.as_str())
            .collect();
        let t = Instant::now();
        let mut conn = pool.acquire().await.expect("conn");
        let mut copy = conn
            .copy_in_raw(
                "COPY reports (id, reference, service_code, status, channel, location, h3_cell,
                 requested_at, updated_at) FROM STDIN (FORMAT csv)",
            )
            .await
            .expect("copy");
        let mut buf = String::new();
        for (n, i) in incidents.iter().enumerate() {
            let code = if known.contains(&*i.service_code) {
                &*i.service_code
            } else {
                "other"
            };
            let _ = writeln!(
                buf,
                "{},{},{},{},import,SRID=4326;POINT({} {}),{},{},{}",
                i.id,
                i.reference,
                code,
                i.status.as_str(),
                i.position.lon(),
                i.position.lat(),
                i.h3_cell as i64,
                i.requested_at.to_rfc3339(),
                i.updated_at.to_rfc3339()
            );
            if n % 50_000 == 49_999 {
                copy.send(buf.as_bytes()).await.expect("send");
                buf.clear();
            }
        }
        copy.send(buf.as_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
        drop(conn);
        sqlx::query("ANALYZE reports")
            .execute(&pool)
            .await
            .expect("analyze");
        println!("COPY of {n} rows: {:.1} s", t.elapsed().as_secs_f64());
        let index = SpatialIndex::new();
        let t = Instant::now();
        let n = index.load(&pool, &catalogue).await.expect("load");
        let (secs, per) = (
            t.elapsed().as_secs_f64(),
            index.heap_bytes() as f64 / n as f64,
        );
        println!(
            "build from PostGIS (SpatialIndex::load, {n} rows): {secs:.2} s; heap {per:.1} bytes/incident"
        );
        build_goals(n, secs, per);
        scratch.drop().await;
    });
}

fn benches(c: &mut Criterion) {
    let w = build_world();
    in_process_percentiles(&w);
    println!("read latency (radius 500 m, open, limit 50) while 1,000 writes/s are applied:");
    let secs = if full_run() { 6 } else { 1 };
    let idx = under_writes(&w, secs, true);
    let base = under_writes(&w, secs, false);
    report("reads under 1,000 writes/s", idx, base);
    if full_run() {
        build_from_postgis(2026);
    }

    let all = Filter::default();
    let mut g = c.benchmark_group("spatial_index");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut k = 0usize;
    let mut next = || {
        k = (k + 1) % w.centres.len();
        w.centres[k]
    };
    g.bench_function("radius_500m/index", |b| {
        b.iter(|| w.index.nearby_compact(next(), 500.0, 50, &all));
    });
    g.bench_function("radius_500m/baseline", |b| {
        b.iter(|| w.baseline.nearby(next(), 500.0, 50));
    });
    g.bench_function("k_nearest_20/index", |b| {
        b.iter(|| w.index.nearest(next(), 20, &all));
    });
    g.bench_function("k_nearest_20/baseline", |b| {
        b.iter(|| w.baseline.nearest(next(), 20));
    });
    g.finish();
}

criterion_group!(spatial_index, benches);
criterion_main!(spatial_index);
