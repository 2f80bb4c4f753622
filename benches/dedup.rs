//! Dedup benchmarks, side by side in one run:
//! 1. the in-process decision at 1,000,000 incidents: the live index against a linear scan
//!    (criterion), plus the p50/p99 of single decisions;
//! 2. intake throughput with dedup on against dedup off, through `intake::submit`
//!    on a real `PostGIS` (needs `DATABASE_URL`: run under `scripts/with-test-db.sh`).
//!
//! `scripts/with-test-db.sh cargo bench --bench dedup`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use citypin::app::AppState;
use citypin::auth::Caller;
use citypin::catalogue::{Catalogue, Service};
use citypin::config::Settings;
use citypin::dedup::decide::decide_from_index;
use citypin::dedup::model::{Candidate, DedupParams, Relation};
use citypin::dedup::scoring;
use citypin::domain::{Channel, Description, ServiceCode, Status};
use citypin::geo::Position;
use citypin::idempotency::{Fingerprint, IdempotencyKey};
use citypin::intake::{self, NewReport};
use citypin::spatial_index::{Incident, SpatialIndex};
use criterion::{Criterion, black_box};
use uuid::Uuid;

#[path = "common/scratch.rs"]
mod scratch;
use scratch::Scratch;

/// Greater Los Angeles: about 55 km by 72 km, so 1M incidents give ~250 per km².
const LON: (f64, f64) = (-118.70, -118.10);
const LAT: (f64, f64) = (33.70, 34.35);
const LA_CODES: [&str; 8] = [
    "bulky-items",
    "graffiti-removal",
    "illegal-dumping-pickup",
    "metal-household-appliances",
    "homeless-encampment",
    "electronic-waste",
    "dead-animal-removal",
    "single-streetlight-issue",
];

use citypin::import::generate::{SplitMix64 as Rng, bench_incidents};

/// A uniform position over Los Angeles.
fn position(rng: &mut Rng) -> Position {
    Position::new(
        LON.0 + (LON.1 - LON.0) * rng.unit(),
        LAT.0 + (LAT.1 - LAT.0) * rng.unit(),
    )
    .expect("inside LA")
}

fn world(catalogue: &Catalogue, rng: &mut Rng) -> (SpatialIndex, Vec<Incident>) {
    let now = Utc::now();
    let incidents: Vec<Incident> = (0..bench_incidents())
        .map(|i| {
            let code = LA_CODES[rng.below(LA_CODES.len())];
            let at = now - chrono::Duration::minutes((rng.unit() * 60.0 * 24.0 * 30.0) as i64);
            Incident {
                id: Uuid::now_v7(),
                reference: Arc::from("CP-0000-0000"),
                position: position(rng),
                service_code: Arc::from(code),
                group: Arc::from(catalogue.get(code).map_or("Other", |s| s.group.as_str())),
                status: if i % 5 == 0 {
                    Status::Fixed
                } else {
                    Status::New
                },
                requested_at: at,
                updated_at: at,
                supporters: 0,
                duplicate_of: None,
                h3_cell: 0,
                change_seq: 1,
            }
        })
        .collect();
    let spatial_index = SpatialIndex::new();
    spatial_index.replace_all(incidents.clone());
    (spatial_index, incidents)
}

/// The naive baseline: score every incident.
fn linear_scan(incidents: &[Incident], service: &Service, p: Position) -> Option<Uuid> {
    let params = DedupParams::of(service);
    let now = Utc::now();
    scoring::best(
        &params,
        "",
        incidents
            .iter()
            .filter(|i| i.status.is_open() && *i.group == *service.group)
            .map(|i| Candidate {
                id: i.id,
                distance_m: p.distance_m(i.position),
                age_hours: (now - i.requested_at).num_minutes() as f64 / 60.0,
                relation: if *i.service_code == *service.service_code {
                    Relation::SameService
                } else {
                    Relation::SameGroup
                },
                description: "",
            }),
    )
    .map(|s| s.id)
}

fn decision(criterion: &mut Criterion, catalogue: &Catalogue) {
    let mut rng = Rng::new(7);
    let started = Instant::now();
    let (spatial_index, incidents) = world(catalogue, &mut rng);
    let n = incidents.len();
    println!("built {n} incidents in {:?}", started.elapsed());
    let services: Vec<Arc<Service>> = LA_CODES
        .iter()
        .filter_map(|c| catalogue.get(c).cloned())
        .collect();
    // Probes next to existing incidents, as real re-reports are, so candidates are scored.
    let probes: Vec<(Arc<Service>, Position)> = (0..100_000)
        .map(|_| {
            let i = &incidents[rng.below(n)];
            let s = catalogue
                .get(&i.service_code)
                .cloned()
                .unwrap_or_else(|| services[0].clone());
            let p = Position::new(
                i.position.lon() + (rng.unit() - 0.5) * 0.0008,
                i.position.lat() + (rng.unit() - 0.5) * 0.0006,
            )
            .expect("near LA");
            (s, p)
        })
        .collect();

    let mut latencies: Vec<Duration> = Vec::with_capacity(probes.len());
    let mut linked = 0usize;
    for (s, p) in &probes {
        let t = Instant::now();
        let v = decide_from_index(&spatial_index, s, *p, Utc::now());
        latencies.push(t.elapsed());
        linked += usize::from(v.is_some());
    }
    latencies.sort_unstable();
    let quantile = |f: f64| latencies[((latencies.len() - 1) as f64 * f) as usize];
    println!(
        "dedup decision at {n} incidents, {} probes ({linked} linked): p50 {:?}  p99 {:?}  max {:?}",
        probes.len(),
        quantile(0.5),
        quantile(0.99),
        latencies[latencies.len() - 1]
    );
    let p99_us = quantile(0.99).as_secs_f64() * 1e6;
    println!(
        "goal | dedup decision p99 at {n} incidents (issue 4) | < 50 µs | {p99_us:.1} µs | {} |",
        if p99_us < 50.0 { "yes" } else { "**no**" }
    );

    let mut group = criterion.benchmark_group("dedup_decision_1m");
    group.sample_size(10);
    let mut cursor = 0usize;
    group.bench_function("live_index", |b| {
        b.iter(|| {
            cursor = (cursor + 1) % probes.len();
            let (s, p) = &probes[cursor];
            black_box(decide_from_index(&spatial_index, s, *p, Utc::now()))
        });
    });
    group.bench_function("linear_scan_baseline", |b| {
        b.iter(|| {
            cursor = (cursor + 1) % probes.len();
            let (s, p) = &probes[cursor];
            black_box(linear_scan(&incidents, s, *p))
        });
    });
    group.finish();
}

/// Intake throughput, dedup on against dedup off, alternating rounds on one database.
#[expect(
    clippy::too_many_lines,
    reason = "one straight measurement script: set up, alternate rounds, report, clean up"
)]
fn intake_throughput() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        println!("intake throughput: skipped (no DATABASE_URL; run under scripts/with-test-db.sh)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let scratch = Scratch::create(&url, "dedup", 16).await;
        let pool = scratch.pool.clone();
        let on = AppState::start(pool.clone(), Settings::default())
            .await
            .expect("start");
        // The same catalogue with every radius at 0: dedup off.
        let mut off_json: serde_json::Value =
            serde_json::from_str(citypin::catalogue::DEFAULT_CATALOGUE).expect("json");
        for s in off_json["services"].as_array_mut().expect("services") {
            s["dedup"]["radius_m"] = serde_json::json!(0);
        }
        let off = AppState {
            catalogue: Arc::new(Catalogue::parse(&off_json.to_string()).expect("catalogue")),
            ..on.clone()
        };
        // Positions from the real sample: re-reports of the same spots make real duplicates.
        let sample = citypin::config::shared_data::file(citypin::config::shared_data::LA311_CSV);
        let mut reader = csv::Reader::from_path(sample).expect("sample");
        let rows: Vec<(String, Position)> = reader
            .records()
            .filter_map(Result::ok)
            .filter_map(|r| {
                let p = Position::new(r[9].parse().ok()?, r[8].parse().ok()?).ok()?;
                Some((r[1].to_owned(), p))
            })
            .filter(|(c, _)| c != "feedback")
            .collect();
        let per_round = 600;
        let concurrency = 8;
        let mut next = 0usize;
        // Without a key (as an Open311 POST comes) and with one (as the native API requires):
        // with a key, the claim and the dedup look-up share one round trip.
        for keyed in [false, true] {
            let mut totals = [(0usize, Duration::ZERO), (0usize, Duration::ZERO)];
            // Ten rounds each, alternating, so a swing in the machine's load hits both sides alike.
            for round in 0..20 {
                let (which, state) = if round % 2 == 0 { (0, &on) } else { (1, &off) };
                let batch: Vec<(String, Position)> = (0..per_round)
                    .map(|i| rows[(next + i) % rows.len()].clone())
                    .collect();
                next += per_round;
                let started = Instant::now();
                let chunks: Vec<Vec<(String, Position)>> = batch
                    .chunks(per_round / concurrency)
                    .map(<[_]>::to_vec)
                    .collect();
                let tasks = chunks.into_iter().map(|chunk| {
                    let state = state.clone();
                    tokio::spawn(async move {
                        for (code, p) in chunk {
                            let new = NewReport {
                                service_code: ServiceCode::parse(&code).expect("code"),
                                position: p,
                                description: Description::default(),
                                address: None,
                                zipcode: None,
                                channel: Channel::Web,
                                attributes: serde_json::Map::new(),
                                media_url: None,
                                contact: None,
                            };
                            let key = IdempotencyKey::parse(&uuid::Uuid::new_v4().to_string())
                                .expect("key");
                            let fingerprint = Fingerprint::of(&key.as_str()).expect("fingerprint");
                            let idempotency = keyed.then_some(intake::Idempotent {
                                key: &key,
                                fingerprint,
                            });
                            intake::submit(&state, new, &Caller::citizen(), idempotency, &[])
                                .await
                                .map_err(|e| e.to_string())
                                .expect("submit");
                        }
                    })
                });
                for t in tasks.collect::<Vec<_>>() {
                    t.await.expect("task");
                }
                totals[which].0 += per_round;
                totals[which].1 += started.elapsed();
            }
            let rate = |(n, d): (usize, Duration)| n as f64 / d.as_secs_f64();
            let (r_on, r_off) = (rate(totals[0]), rate(totals[1]));
            let dups: i64 =
                sqlx::query_scalar("SELECT count(*) FROM reports WHERE status = 'duplicate'")
                    .fetch_one(&pool)
                    .await
                    .expect("count");
            let how = if keyed {
                "with Idempotency-Key"
            } else {
                "without a key"
            };
            println!(
                "intake throughput {how} ({concurrency} concurrent, 10 rounds each, alternating): dedup on {r_on:.0}/s, off {r_off:.0}/s, on/off = {:.3} ({dups} duplicates linked so far)",
                r_on / r_off
            );
            println!(
                "goal | intake throughput {how}, dedup on ÷ off (issue 4) | ≥ 0.90 | {:.2} | {} |",
                r_on / r_off,
                if r_on / r_off >= 0.9 { "yes" } else { "**no**" }
            );
        }
        scratch.drop().await;
    });
}

fn main() {
    let catalogue = Catalogue::load(None).expect("catalogue");
    let mut c = Criterion::default().configure_from_args();
    // `cargo bench --bench dedup -- intake` measures only the intake throughput.
    if !std::env::args().any(|a| a == "intake") {
        decision(&mut c, &catalogue);
    }
    intake_throughput();
    c.final_summary();
}
