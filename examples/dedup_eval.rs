//! Precision and recall of the dedup decision on a labelled set built from the real Los Angeles
//! sample (`la311/la311_normalized.csv` in the shared data folder, `CITYPIN_SHARED_DATA`);
//! BENCHMARKS.md `## dedup` explains how the set is made.
//!
//! `cargo run --release --example dedup_eval [-- FILE]`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use citypin::catalogue::{Catalogue, Service};
use citypin::dedup::decide::score_from_index;
use citypin::dedup::model::DedupParams;
use citypin::domain::Status;
use citypin::geo::Position;
use citypin::spatial_index::{Incident, SpatialIndex};
use uuid::Uuid;

/// Other-block negatives lie at least this far from every earlier report of their service.
const OTHER_BLOCK_M: f64 = 100.0;
/// A report is "alone" when no other report of its service lies this close within its window.
const ALONE_M: f64 = 150.0;
const MAX_POSITIVES: usize = 3000;
const MAX_PER_NEGATIVE_KIND: usize = 1500;

struct Row {
    id: Uuid,
    code: Arc<str>,
    position: Position,
    at: DateTime<Utc>,
}

/// The generator's deterministic stream, so every run builds the same set.
use citypin::import::generate::SplitMix64 as Rng;

/// The point `distance_m` from `p` towards `bearing` (radians from north), on the sphere.
fn offset(p: Position, distance_m: f64, bearing: f64) -> Position {
    let d = distance_m / citypin::geo::EARTH_RADIUS_M;
    let (lat1, lon1) = (p.lat().to_radians(), p.lon().to_radians());
    let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * bearing.cos()).asin();
    let lon2 =
        lon1 + (bearing.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
    Position::new(lon2.to_degrees(), lat2.to_degrees()).expect("offset stays on the globe")
}

fn load(path: &str) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path).expect("open the sample");
    let headers = reader.headers().expect("headers").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (code, at, lat, lon) = (
        col("service_code"),
        col("requested_datetime"),
        col("lat"),
        col("long"),
    );
    let mut rows = Vec::new();
    for rec in reader.records() {
        let Ok(rec) = rec else { continue };
        let (Ok(la), Ok(lo)) = (rec[lat].parse::<f64>(), rec[lon].parse::<f64>()) else {
            continue;
        };
        let (Ok(position), Ok(at)) = (
            Position::new(lo, la),
            DateTime::parse_from_rfc3339(&rec[at]),
        ) else {
            continue;
        };
        rows.push(Row {
            id: Uuid::now_v7(),
            code: Arc::from(&rec[code]),
            position,
            at: at.with_timezone(&Utc),
        });
    }
    rows
}

fn incident(r: &Row, catalogue: &Catalogue) -> Incident {
    let group = catalogue
        .get(&r.code)
        .map_or_else(|| Arc::from("Other"), |s| Arc::from(s.group.as_str()));
    Incident {
        id: r.id,
        reference: Arc::from("CP-0000-0000"),
        position: r.position,
        service_code: r.code.clone(),
        group,
        status: Status::New,
        requested_at: r.at,
        updated_at: r.at,
        supporters: 0,
        duplicate_of: None,
        h3_cell: 0,
        change_seq: 1,
    }
}

/// Other reports near `r` within `within_m`, reported in `[from, to]`, that pass `keep`.
fn neighbours<'a>(
    spatial_index: &SpatialIndex,
    r: &'a Row,
    within_m: f64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: impl Fn(&Incident) -> bool + 'a,
) -> Vec<Incident> {
    spatial_index
        .nearby(r.position, within_m, 1000, |i| {
            i.id != r.id && i.requested_at >= from && i.requested_at <= to && keep(i)
        })
        .into_iter()
        .map(|h| h.incident)
        .collect()
}

struct Probe {
    kind: &'static str,
    service: Arc<Service>,
    position: Position,
    at: DateTime<Utc>,
    /// The report it duplicates, for positives.
    parent: Option<Uuid>,
}

#[derive(Default)]
struct Tally {
    positives: usize,
    negatives: usize,
    tp: usize,
    fp: usize,
    wrong_parent: usize,
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        let sample = citypin::config::shared_data::file(citypin::config::shared_data::LA311_CSV);
        sample.display().to_string()
    });
    let catalogue = Catalogue::load(None).expect("catalogue");
    let rows = load(&path);
    let spatial_index = SpatialIndex::new();
    spatial_index.replace_all(rows.iter().map(|r| incident(r, &catalogue)).collect());
    let probes = build_probes(&rows, &catalogue, &spatial_index);
    evaluate(&rows, &probes, &spatial_index);
    replay(&rows, &catalogue, &spatial_index);
}

/// Unlabelled: how many real reports would have been linked had they come in through intake,
/// and at what distance. Not part of precision/recall (nobody knows which LA pairs were truly
/// the same problem), but it shows what the radii do to a real city's stream.
fn replay(rows: &[Row], catalogue: &Catalogue, spatial_index: &SpatialIndex) {
    let (mut judged, mut linked) = (0usize, 0usize);
    let mut distances = Vec::new();
    for r in rows.iter().step_by(5) {
        let Some(service) = catalogue.get(&r.code) else {
            continue;
        };
        if !DedupParams::of(service).enabled() {
            continue;
        }
        judged += 1;
        let threshold = DedupParams::of(service).threshold;
        let at = r.at - Duration::seconds(1);
        if let Some((s, _)) = score_from_index(spatial_index, service, r.position, at, 1)
            .into_iter()
            .find(|(s, _)| s.score >= threshold)
        {
            linked += 1;
            distances.push(s.reasons.distance_m);
        }
    }
    distances.sort_unstable_by(f64::total_cmp);
    let share_within = |m: f64| {
        distances.iter().filter(|d| **d <= m).count() as f64 / distances.len().max(1) as f64
    };
    println!(
        "replay of {judged} real reports: {linked} ({:.1} %) would be linked; of those {:.1} % at 0 m (same geocoded address), {:.1} % within 30 m",
        100.0 * linked as f64 / judged.max(1) as f64,
        100.0 * share_within(0.5),
        100.0 * share_within(30.0)
    );
}

/// The labelled set: re-reports (positives) and real reports with only other services, or
/// only far-away reports of their own service, around them (negatives).
fn build_probes(rows: &[Row], catalogue: &Catalogue, spatial_index: &SpatialIndex) -> Vec<Probe> {
    let window = |s: &Service| Duration::hours(i64::from(s.dedup.window_hours));

    let mut rng = Rng::new(0x00C1_7F1B);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }

    let mut probes = Vec::new();
    let (mut n_pos, mut n_other_cat, mut n_other_block) = (0, 0, 0);
    for &i in &order {
        let r = &rows[i];
        let Some(service) = catalogue.get(&r.code).cloned() else {
            continue;
        };
        if !DedupParams::of(&service).enabled() {
            continue;
        }
        let w = window(&service);
        let same = |inc: &Incident| *inc.service_code == *r.code;
        let same_around = neighbours(spatial_index, r, ALONE_M, r.at - w, r.at + w, same);
        // Positives: a phone re-report of a report that is alone, so the right parent is
        // unambiguous. GPS error 5–60 m in any direction; 5 minutes to 3 days later.
        if same_around.is_empty() && n_pos < MAX_POSITIVES {
            let distance = 5.0 + 55.0 * rng.unit();
            let bearing = std::f64::consts::TAU * rng.unit();
            let minutes = (5.0_f64.ln() + rng.unit() * (4320.0_f64.ln() - 5.0_f64.ln())).exp();
            probes.push(Probe {
                kind: "re-report",
                service: service.clone(),
                position: offset(r.position, distance, bearing),
                at: r.at + Duration::seconds((minutes * 60.0) as i64),
                parent: Some(r.id),
            });
            n_pos += 1;
            continue;
        }
        // Negatives are real reports judged at the moment they came in (a second before, so
        // that they do not meet themselves), with no earlier report of their service close by.
        let before = r.at - Duration::seconds(1);
        let same_before = neighbours(spatial_index, r, ALONE_M, r.at - w, before, same);
        if !same_before.is_empty() {
            continue;
        }
        let group = &service.group;
        let other_nearby = neighbours(spatial_index, r, 75.0, r.at - w, before, |i| {
            *i.service_code != *r.code
        });
        if !other_nearby.is_empty() && n_other_cat < MAX_PER_NEGATIVE_KIND {
            // Prefer the hard case, another service of the same group, when there is one.
            let kind = if other_nearby.iter().any(|i| *i.group == **group) {
                "other service, same group, nearby"
            } else {
                "other group nearby"
            };
            probes.push(Probe {
                kind,
                service: service.clone(),
                position: r.position,
                at: before,
                parent: None,
            });
            n_other_cat += 1;
            continue;
        }
        let far_same = neighbours(spatial_index, r, 400.0, r.at - w, before, same);
        let nearest = far_same
            .iter()
            .map(|i| r.position.distance_m(i.position))
            .fold(f64::INFINITY, f64::min);
        if nearest >= OTHER_BLOCK_M && nearest.is_finite() && n_other_block < MAX_PER_NEGATIVE_KIND
        {
            probes.push(Probe {
                kind: "same service, other block",
                service,
                position: r.position,
                at: before,
                parent: None,
            });
            n_other_block += 1;
        }
    }
    probes
}

fn evaluate(rows: &[Row], probes: &[Probe], spatial_index: &SpatialIndex) {
    let mut total = Tally::default();
    let mut by_kind: HashMap<&str, Tally> = HashMap::new();
    let mut by_service: HashMap<String, Tally> = HashMap::new();
    let mut latencies = Vec::with_capacity(probes.len());
    for p in probes {
        let started = Instant::now();
        let params = DedupParams::of(&p.service);
        let verdict = score_from_index(spatial_index, &p.service, p.position, p.at, 1)
            .into_iter()
            .map(|(s, _)| s)
            .find(|s| s.score >= params.threshold);
        latencies.push(started.elapsed());
        for t in [
            &mut total,
            by_kind.entry(p.kind).or_default(),
            by_service
                .entry(p.service.service_code.clone())
                .or_default(),
        ] {
            match (p.parent, &verdict) {
                (Some(parent), Some(v)) if v.id == parent => {
                    t.positives += 1;
                    t.tp += 1;
                }
                (Some(_), Some(_)) => {
                    t.positives += 1;
                    t.fp += 1;
                    t.wrong_parent += 1;
                }
                (Some(_), None) => t.positives += 1,
                (None, Some(_)) => {
                    t.negatives += 1;
                    t.fp += 1;
                }
                (None, None) => t.negatives += 1,
            }
        }
    }
    latencies.sort_unstable();
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let report = |name: &str, t: &Tally| {
        let precision = if t.tp + t.fp == 0 {
            1.0
        } else {
            t.tp as f64 / (t.tp + t.fp) as f64
        };
        let recall = if t.positives == 0 {
            f64::NAN
        } else {
            t.tp as f64 / t.positives as f64
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {precision:.3} | {recall:.3} |",
            t.positives, t.negatives, t.tp, t.fp, t.wrong_parent
        );
    };
    println!(
        "{} reports in the index; {} probes",
        rows.len(),
        probes.len()
    );
    println!(
        "| set | positives | negatives | linked right | linked wrong | wrong parent | precision | recall |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    report("**all**", &total);
    let mut kinds: Vec<_> = by_kind.iter().collect();
    kinds.sort_by_key(|(k, _)| *k);
    for (k, t) in kinds {
        report(k, t);
    }
    let mut services: Vec<_> = by_service.iter().collect();
    services.sort_by_key(|(k, _)| k.as_str());
    for (k, t) in services {
        report(k, t);
    }
    println!(
        "decision latency over {} incidents: p50 {:?}, p99 {:?}",
        rows.len(),
        pct(0.5),
        pct(0.99)
    );
}
