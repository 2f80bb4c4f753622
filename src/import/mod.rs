//! `citypin import FILE`: loads GeoReport-shaped CSV, GeoJSON or GeoJSON-Seq. Idempotent by
//! the source's `service_request_id`; bad rows are counted, shown and skipped, never fatal.

pub mod generate;
mod store;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::catalogue::Catalogue;
use crate::domain::Status;
use crate::geo::Position;

/// One input row in `GeoReport` v2 shape (the columns of the LA sample, all optional).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Row {
    #[serde(default)]
    pub service_request_id: Option<String>,
    #[serde(default)]
    pub service_code: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub status_raw: Option<String>,
    #[serde(default)]
    pub status_notes: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub requested_datetime: Option<String>,
    #[serde(default)]
    pub updated_datetime: Option<String>,
    #[serde(default)]
    pub closed_datetime: Option<String>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub lat: Option<f64>,
    #[serde(default, rename = "long", deserialize_with = "lenient_f64")]
    pub lon: Option<f64>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub zipcode: Option<String>,
    #[serde(default)]
    pub agency_responsible: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
}

/// Numbers arrive as numbers (`GeoJSON`) or text (CSV), and empty text means absent.
fn lenient_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        F(f64),
        S(String),
    }
    Ok(match Option::<Num>::deserialize(d)? {
        None => None,
        Some(Num::F(f)) => Some(f),
        Some(Num::S(s)) if s.trim().is_empty() => None,
        Some(Num::S(s)) => Some(s.trim().parse::<f64>().unwrap_or(f64::NAN)),
    })
}

/// A row ready for the database.
#[derive(Clone, Debug)]
struct Valid {
    external_id: String,
    service_code: String,
    status: Status,
    status_notes: Option<String>,
    description: String,
    address: Option<String>,
    zipcode: Option<String>,
    agency: String,
    channel: &'static str,
    position: Position,
    requested_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    pub read: usize,
    pub inserted: usize,
    pub already_present: usize,
    pub rejected: usize,
    /// The first few rejections: (row number, reason).
    pub examples: Vec<(usize, String)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "read {} rows: {} imported, {} already present, {} rejected",
            self.read, self.inserted, self.already_present, self.rejected
        )?;
        for (row, reason) in &self.examples {
            writeln!(f, "  row {row}: {reason}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Why one row of a file is not imported; the summary shows the first few, with their line.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("{0}")]
    Csv(String),
    #[error("not JSON: {0}")]
    Json(String),
    #[error("properties: {0}")]
    Properties(String),
    #[error("geometry must be a Point")]
    NotAPoint,
    #[error("service_code is missing")]
    NoServiceCode,
    #[error("service_code {0:?} is not in the catalogue")]
    UnknownService(String),
    #[error("no coordinates (lat/long)")]
    NoCoordinates,
    #[error("{0}")]
    Position(#[from] crate::geo::PositionError),
    #[error("{field} {value:?} is not an ISO 8601 datetime with an offset")]
    Time { field: &'static str, value: String },
    #[error("requested_datetime is missing")]
    NoRequestedTime,
    #[error("status {0:?} is neither open nor closed")]
    Status(Option<String>),
}

const BATCH: usize = 5_000;
const EXAMPLES: usize = 5;

/// Imports a file; `shift` moves every time by the same amount (the demo uses it to make the
/// sample city's newest report today; a plain import keeps times as they are).
pub async fn import_file(
    pool: &PgPool,
    catalogue: &Catalogue,
    path: &Path,
    shift: Option<Duration>,
) -> Result<Summary, ImportError> {
    let rows = read_rows(path)?;
    import_rows(pool, catalogue, rows, shift).await
}

/// Reads rows by the file's extension: `.csv`, `.geojson`/`.json`, `.geojsonl`/`.geojsons`/`.ndjson`.
pub fn read_rows(path: &Path) -> Result<Vec<Result<Row, RowError>>, ImportError> {
    let err =
        |e: &dyn std::fmt::Display| ImportError::Read(path.display().to_string(), e.to_string());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => {
            let mut reader = csv::Reader::from_path(path).map_err(|e| err(&e))?;
            Ok(reader
                .deserialize::<Row>()
                .map(|r| r.map_err(|e| RowError::Csv(e.to_string())))
                .collect())
        }
        "geojson" | "json" => {
            let text = std::fs::read_to_string(path).map_err(|e| err(&e))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(&e))?;
            let features = match value.get("type").and_then(|t| t.as_str()) {
                Some("FeatureCollection") => value
                    .get("features")
                    .and_then(|f| f.as_array())
                    .cloned()
                    .unwrap_or_default(),
                Some("Feature") => vec![value],
                _ => return Err(err(&"not a GeoJSON FeatureCollection or Feature")),
            };
            Ok(features.iter().map(feature_row).collect())
        }
        "geojsonl" | "geojsons" | "geojsonseq" | "ndjson" | "jsonl" => {
            let file = std::fs::File::open(path).map_err(|e| err(&e))?;
            let mut rows = Vec::new();
            for line in std::io::BufReader::new(file).lines() {
                let line = line.map_err(|e| err(&e))?;
                // RFC 8142 records start with the RS character; newline-delimited ones do not.
                let line = line.trim_start_matches('\u{1e}').trim();
                if line.is_empty() {
                    continue;
                }
                rows.push(
                    serde_json::from_str::<serde_json::Value>(line)
                        .map_err(|e| RowError::Json(e.to_string()))
                        .and_then(|v| feature_row(&v)),
                );
            }
            Ok(rows)
        }
        other => Err(err(&format!(
            "unknown file type {other:?}; use .csv, .geojson or .geojsonl"
        ))),
    }
}

fn feature_row(f: &serde_json::Value) -> Result<Row, RowError> {
    let props = f
        .get("properties")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let mut row: Row = if props.is_null() {
        Row::default()
    } else {
        serde_json::from_value(props).map_err(|e| RowError::Properties(e.to_string()))?
    };
    match f.get("geometry") {
        Some(g) if !g.is_null() => {
            let coords = g
                .get("coordinates")
                .and_then(|c| c.as_array())
                .filter(|_| g.get("type").and_then(|t| t.as_str()) == Some("Point"))
                .ok_or(RowError::NotAPoint)?;
            row.lon = coords.first().and_then(serde_json::Value::as_f64);
            row.lat = coords.get(1).and_then(serde_json::Value::as_f64);
        }
        _ => {}
    }
    if row.service_request_id.is_none() {
        row.service_request_id = f.get("id").and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    }
    Ok(row)
}

fn validate(row: Row, catalogue: &Catalogue, shift: Duration) -> Result<Valid, RowError> {
    let service_code = row
        .service_code
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(RowError::NoServiceCode)?;
    let service = catalogue
        .get(service_code)
        .ok_or_else(|| RowError::UnknownService(service_code.to_owned()))?;
    let position = match (row.lon, row.lat) {
        (Some(lon), Some(lat)) => Position::new(lon, lat)?,
        _ => return Err(RowError::NoCoordinates),
    };
    let now = Utc::now();
    let time =
        |v: &Option<String>, field: &'static str| -> Result<Option<DateTime<Utc>>, RowError> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => DateTime::<FixedOffset>::parse_from_rfc3339(s)
                    // A shifted time never lands in the future: the demo city's newest report is
                    // from now, so its later updates are clamped to now.
                    .map(|t| {
                        let t = t.with_timezone(&Utc) + shift;
                        Some(if shift.is_zero() { t } else { t.min(now) })
                    })
                    .map_err(|_| RowError::Time {
                        field,
                        value: s.to_owned(),
                    }),
            }
        };
    let requested_at =
        time(&row.requested_datetime, "requested_datetime")?.ok_or(RowError::NoRequestedTime)?;
    let updated_at = time(&row.updated_datetime, "updated_datetime")?.unwrap_or(requested_at);
    let closed_at = time(&row.closed_datetime, "closed_datetime")?;
    let status = map_status(row.status.as_deref(), row.status_raw.as_deref())?;
    let closed_at = if status.is_open() {
        None
    } else {
        closed_at.or(Some(updated_at))
    };
    let external_id = row
        .service_request_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            // No id in the source: the row's own content names it, so re-imports still match.
            let digest = Sha256::digest(format!(
                "{service_code}|{position}|{requested_at}|{:?}",
                row.description
            ));
            format!("sha256:{}", crate::auth::hex(&digest[..16]))
        });
    Ok(Valid {
        external_id,
        service_code: service_code.to_owned(),
        status,
        status_notes: row.status_notes.filter(|s| !s.trim().is_empty()),
        description: row.description.unwrap_or_default(),
        address: row.address.filter(|s| !s.trim().is_empty()),
        zipcode: row.zipcode.filter(|s| !s.trim().is_empty()),
        agency: row
            .agency_responsible
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| service.agency.clone()),
        channel: map_channel(row.channel.as_deref()),
        position,
        requested_at,
        updated_at: updated_at.max(requested_at),
        closed_at,
    })
}

/// `GeoReport`'s open/closed plus the source's own wording, mapped to citypin's statuses.
fn map_status(status: Option<&str>, raw: Option<&str>) -> Result<Status, RowError> {
    let raw = raw.map(|s| s.trim().to_ascii_lowercase());
    if let Some(s) = raw.as_deref().and_then(Status::parse) {
        return Ok(s);
    }
    Ok(match (status.map(str::trim), raw.as_deref()) {
        (_, Some("cancelled" | "canceled")) => Status::Cancelled,
        (_, Some("referred out" | "forwarded")) => Status::Referred,
        (_, Some("pending")) => Status::Acknowledged,
        (_, Some("in progress")) => Status::InProgress,
        (Some("open"), _) => Status::New,
        (Some("closed"), _) => Status::Fixed,
        (other, _) => return Err(RowError::Status(other.map(str::to_owned))),
    })
}

fn map_channel(c: Option<&str>) -> &'static str {
    match c.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("call" | "voicemail" | "phone") => "phone",
        Some("mobile app" | "app") => "app",
        Some("self service" | "web") => "web",
        Some("email" | "e-mail") => "email",
        Some("driver self report" | "field") => "field",
        Some("social" | "twitter" | "facebook") => "social",
        _ => "import",
    }
}

/// Imports parsed rows in batches of [`BATCH`].
pub async fn import_rows(
    pool: &PgPool,
    catalogue: &Catalogue,
    rows: Vec<Result<Row, RowError>>,
    shift: Option<Duration>,
) -> Result<Summary, ImportError> {
    let shift = shift.unwrap_or_else(Duration::zero);
    let mut summary = Summary::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut seen = HashSet::new();
    for (i, row) in rows.into_iter().enumerate() {
        summary.read += 1;
        // Row numbers as a person counts them in the file (CSV: the header is line 1).
        match row.and_then(|r| validate(r, catalogue, shift)) {
            Ok(v) if !seen.insert(v.external_id.clone()) => summary.already_present += 1,
            Ok(v) => batch.push(v),
            Err(reason) => {
                summary.rejected += 1;
                if summary.examples.len() < EXAMPLES {
                    summary.examples.push((i + 2, reason.to_string()));
                }
            }
        }
        if batch.len() == BATCH {
            insert_batch(pool, std::mem::take(&mut batch), &mut summary).await?;
        }
    }
    if !batch.is_empty() {
        insert_batch(pool, batch, &mut summary).await?;
    }
    Ok(summary)
}

async fn insert_batch(
    pool: &PgPool,
    mut batch: Vec<Valid>,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    // A fresh random reference can collide with a stored one; such rows are retried with new
    // references, so nothing valid is dropped.
    for _ in 0..5 {
        if batch.is_empty() {
            return Ok(());
        }
        let inserted: HashSet<String> = store::insert(pool, &batch).await?.into_iter().collect();
        summary.inserted += inserted.len();
        let missing: Vec<Valid> = batch
            .into_iter()
            .filter(|v| !inserted.contains(&v.external_id))
            .collect();
        let ids: Vec<String> = missing.iter().map(|v| v.external_id.clone()).collect();
        let present: HashSet<String> = store::present(pool, &ids).await?.into_iter().collect();
        summary.already_present += present.len();
        batch = missing
            .into_iter()
            .filter(|v| !present.contains(&v.external_id))
            .collect();
    }
    Err(ImportError::Db(sqlx::Error::Protocol(
        "could not draw unique references".into(),
    )))
}

/// The shift that moves a file's newest `requested_datetime` to now, so the sample city is
/// live (updates and closings it moves past now are clamped to now by the import).
pub fn shift_to_now(rows: &[Result<Row, RowError>]) -> Duration {
    let newest = rows
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|r| r.requested_datetime.as_deref())
        .filter_map(|s| DateTime::<FixedOffset>::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
        .max();
    newest.map_or_else(Duration::zero, |t| Utc::now() - t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_shift_makes_the_newest_report_now_and_puts_no_time_in_the_future() {
        let c = Catalogue::parse(crate::catalogue::DEFAULT_CATALOGUE).unwrap();
        let row = |req: &str, upd: &str| Row {
            service_code: Some("bulky-items".into()),
            status: Some("closed".into()),
            lat: Some(34.0),
            lon: Some(-118.0),
            requested_datetime: Some(req.into()),
            updated_datetime: Some(upd.into()),
            ..Row::default()
        };
        let rows = vec![
            Ok(row("2020-01-01T00:00:00Z", "2020-01-05T00:00:00Z")),
            Ok(row("2020-01-03T00:00:00Z", "2020-01-03T00:00:00Z")),
        ];
        let shift = shift_to_now(&rows);
        let newest = validate(
            row("2020-01-03T00:00:00Z", "2020-01-03T00:00:00Z"),
            &c,
            shift,
        )
        .unwrap();
        assert!((newest.requested_at - Utc::now()).num_seconds().abs() < 5);
        let older = validate(
            row("2020-01-01T00:00:00Z", "2020-01-05T00:00:00Z"),
            &c,
            shift,
        )
        .unwrap();
        assert!(older.updated_at <= Utc::now());
        assert!(older.closed_at.is_some_and(|t| t <= Utc::now()));
    }

    #[test]
    fn la_statuses_map_to_meaningful_ones() {
        assert_eq!(
            map_status(Some("closed"), Some("Cancelled")).unwrap(),
            Status::Cancelled
        );
        assert_eq!(
            map_status(Some("closed"), Some("Closed")).unwrap(),
            Status::Fixed
        );
        assert_eq!(
            map_status(Some("closed"), Some("Referred Out")).unwrap(),
            Status::Referred
        );
        assert_eq!(
            map_status(Some("open"), Some("Pending")).unwrap(),
            Status::Acknowledged
        );
        assert_eq!(map_status(Some("open"), None).unwrap(), Status::New);
        assert!(map_status(Some("maybe"), None).is_err());
    }

    /// A row with everything but coordinates.
    fn without_coordinates() -> Row {
        Row {
            service_code: Some("bulky-items".into()),
            status: Some("open".into()),
            requested_datetime: Some("2020-01-01T10:00:00-08:00".into()),
            ..Row::default()
        }
    }

    fn catalogue() -> Catalogue {
        Catalogue::parse(crate::catalogue::DEFAULT_CATALOGUE).unwrap()
    }

    #[test]
    fn a_row_without_coordinates_is_rejected_as_such() {
        let no_coords =
            validate(without_coordinates(), &catalogue(), Duration::zero()).unwrap_err();
        assert_eq!(no_coords, RowError::NoCoordinates);
    }

    #[test]
    fn a_row_with_a_nan_latitude_is_rejected_naming_the_latitude() {
        let nan = Row {
            lat: Some(f64::NAN),
            lon: Some(-118.0),
            ..without_coordinates()
        };
        assert!(matches!(
            validate(nan, &catalogue(), Duration::zero()),
            Err(RowError::Position(crate::geo::PositionError::Latitude(_)))
        ));
    }

    #[test]
    fn a_row_of_an_unknown_service_is_rejected_naming_it() {
        let unknown = Row {
            service_code: Some("nope".into()),
            lat: Some(34.0),
            lon: Some(-118.0),
            ..without_coordinates()
        };
        assert_eq!(
            validate(unknown, &catalogue(), Duration::zero()).unwrap_err(),
            RowError::UnknownService("nope".into())
        );
    }

    #[test]
    fn a_valid_row_is_read_in_utc_with_the_shift_applied_and_a_content_id() {
        let ok = Row {
            lat: Some(34.0),
            lon: Some(-118.0),
            ..without_coordinates()
        };
        let v = validate(ok, &catalogue(), Duration::hours(1)).unwrap();
        assert_eq!(v.requested_at.to_rfc3339(), "2020-01-01T19:00:00+00:00");
        assert!(v.external_id.starts_with("sha256:"));
    }
}
