//! `citypin generate`: synthetic incidents at any scale for benchmarks, resampled from a real
//! city's file so that locations, categories, statuses and ages keep the city's own shape.
//!
//! Method: every output row draws one source row uniformly at random (so the joint distribution
//! of place, category, status, channel and time-to-close is the source's), moves its point by a
//! Gaussian jitter (σ = [`JITTER_M`] metres) and its request time by up to ±12 hours, and keeps the
//! source's update and close delays. The same seed, count and source give the same rows, byte for
//! byte: the generator has its own `SplitMix64` rather than a library RNG whose stream could change.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::{ImportError, Valid, read_rows, validate};
use crate::catalogue::Catalogue;
use crate::domain::Status;
use crate::geo::Position;

/// Standard deviation of the location jitter, in metres: a few house numbers along a street.
pub const JITTER_M: f64 = 150.0;
const TIME_JITTER_S: i64 = 12 * 3600;
const METRES_PER_DEGREE: f64 = 111_320.0;

/// One synthetic incident.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// Position in the generated sequence (0-based).
    pub seq: u64,
    /// `gen<seed>-<seq>`: stable, so importing the same file twice adds nothing.
    pub external_id: String,
    pub service_code: String,
    pub status: Status,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub agency: String,
    pub channel: &'static str,
    pub position: Position,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Incident {
    /// A citizen reference unique within one generated set (`CP-XXXX-XXXX`): the sequence
    /// number scrambled by an odd multiplier modulo 2^40, a bijection, so 5 million rows never
    /// collide the way 5 million random draws from 10^12 would.
    pub fn reference(&self) -> String {
        let x = self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1);
        crate::domain::Reference::from_bits(x).to_string()
    }
}

/// `SplitMix64` (Steele, Lea, Flood 2014): tiny, fast, and fixed forever. Public so benches and
/// the dedup evaluation draw their data from the same stream the generator uses.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal by Box–Muller.
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// An endless, deterministic stream of incidents resampled from a source file.
pub struct Generator {
    source: Vec<Valid>,
    rng: SplitMix64,
    seed: u64,
    seq: u64,
}

impl Generator {
    /// Reads the source (any format `citypin import` reads); rows it would reject are left out.
    pub fn from_file(path: &Path, catalogue: &Catalogue, seed: u64) -> Result<Self, ImportError> {
        let source: Vec<Valid> = read_rows(path)?
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|r| validate(r, catalogue, Duration::zero()).ok())
            .collect();
        if source.is_empty() {
            return Err(ImportError::Read(
                path.display().to_string(),
                "no valid rows to resample".into(),
            ));
        }
        Ok(Self {
            source,
            rng: SplitMix64(seed),
            seed,
            seq: 0,
        })
    }

    fn jitter(&mut self, p: Position) -> Position {
        loop {
            let dy = self.rng.normal() * JITTER_M / METRES_PER_DEGREE;
            let dx = self.rng.normal() * JITTER_M
                / (METRES_PER_DEGREE * p.lat().to_radians().cos().max(0.01));
            if let Ok(q) = Position::new(p.lon() + dx, p.lat() + dy) {
                return q;
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Incident;

    fn next(&mut self) -> Option<Incident> {
        let i = self.rng.below(self.source.len());
        let position = self.jitter(self.source[i].position);
        let shift = Duration::seconds(
            (self.rng.unit() * (2 * TIME_JITTER_S) as f64) as i64 - TIME_JITTER_S,
        );
        let s = &self.source[i];
        let seq = self.seq;
        self.seq += 1;
        Some(Incident {
            seq,
            external_id: format!("gen{}-{seq}", self.seed),
            service_code: s.service_code.clone(),
            status: s.status,
            address: s.address.clone(),
            zipcode: s.zipcode.clone(),
            agency: s.agency.clone(),
            channel: s.channel,
            position,
            requested_at: s.requested_at + shift,
            updated_at: s.updated_at + shift,
            closed_at: s.closed_at.map(|t| t + shift),
        })
    }
}

/// The CSV columns `citypin import` reads, in `GeoReport` v2 shape.
pub const CSV_HEADER: [&str; 13] = [
    "service_request_id",
    "service_code",
    "status",
    "status_raw",
    "requested_datetime",
    "updated_datetime",
    "closed_datetime",
    "lat",
    "long",
    "address",
    "zipcode",
    "agency_responsible",
    "channel",
];

/// How many incidents the micro-benchmarks generate: `BENCH_INCIDENTS` (digits, `_` allowed)
/// or 1,000,000, the issues' reference size. `make bench-quick` sets 100,000. Not a `CITYPIN_`
/// variable on purpose: the service rejects unknown ones, and this one is never its setting.
pub fn bench_incidents() -> usize {
    std::env::var("BENCH_INCIDENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

/// Writes `count` incidents as `GeoReport`-shaped CSV.
pub fn write_csv(
    generator: Generator,
    count: u64,
    out: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, false);
    for inc in generator.take(count as usize) {
        w.write_record([
            inc.external_id.as_str(),
            &inc.service_code,
            if inc.status.is_open() {
                "open"
            } else {
                "closed"
            },
            inc.status.as_str(),
            &time(inc.requested_at),
            &time(inc.updated_at),
            &inc.closed_at.map(time).unwrap_or_default(),
            &format!("{:.7}", inc.position.lat()),
            &format!("{:.7}", inc.position.lon()),
            inc.address.as_deref().unwrap_or(""),
            inc.zipcode.as_deref().unwrap_or(""),
            &inc.agency,
            inc.channel,
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64) -> Generator {
        use crate::config::shared_data;
        let c = Catalogue::parse(crate::catalogue::DEFAULT_CATALOGUE).unwrap();
        let path = shared_data::file(shared_data::LA311_CSV);
        Generator::from_file(&path, &c, seed).unwrap()
    }

    #[test]
    fn the_same_seed_generates_the_same_incidents_and_another_seed_does_not() {
        let a: Vec<Incident> = sample(7).take(200).collect();
        let b: Vec<Incident> = sample(7).take(200).collect();
        let c: Vec<Incident> = sample(8).take(200).collect();
        assert_eq!(a, b);
        assert_ne!(
            a.iter().map(|i| i.position).collect::<Vec<_>>(),
            c.iter().map(|i| i.position).collect::<Vec<_>>()
        );
    }

    #[test]
    fn generated_csv_is_read_back_by_the_importer_without_rejections() {
        let c = Catalogue::parse(crate::catalogue::DEFAULT_CATALOGUE).unwrap();
        let mut buf = Vec::new();
        write_csv(sample(1), 500, &mut buf).unwrap();
        let dir = std::env::temp_dir().join(format!("citypin-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gen.csv");
        std::fs::write(&file, &buf).unwrap();
        let rows = read_rows(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let valid: Vec<Valid> = rows
            .into_iter()
            .map(|r| validate(r.unwrap(), &c, Duration::zero()).unwrap())
            .collect();
        let again: Vec<Incident> = sample(1).take(500).collect();
        assert_eq!(valid.len(), 500);
        for (v, g) in valid.iter().zip(&again) {
            assert_eq!(v.status, g.status);
            assert_eq!(v.external_id, g.external_id);
            assert!(v.position.distance_m(g.position) < 0.1);
        }
    }

    #[test]
    fn references_of_a_generated_set_are_distinct() {
        let refs: std::collections::HashSet<String> =
            sample(3).take(20_000).map(|i| i.reference()).collect();
        assert_eq!(refs.len(), 20_000);
    }
}
