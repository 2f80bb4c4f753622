//! Streaming an export: rows flow from `PostgreSQL` through an encoder into the response in
//! chunks of about 64 KiB, through a channel of a few chunks, so memory does not grow with
//! the size of the export and a slow client slows the query instead of filling memory.

use axum::body::Body;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::model::{Fields, IncidentFeature, IncidentFilter, csv_header};
use super::store;
use crate::app::AppState;
use crate::error::AppError;

/// A chunk is sent once the encoder holds this much.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the query task and the response.
const CHANNEL_CHUNKS: usize = 4;

/// The three file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One RFC 7946 `FeatureCollection`.
    GeoJson,
    /// One feature per line (newline-delimited `GeoJSON`, as GDAL's `GeoJSONSeq` reads it).
    GeoJsonSeq,
    /// RFC 4180 CSV with `lon`, `lat` and `wkt` columns.
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GeoJson => "application/geo+json",
            Self::GeoJsonSeq => "application/geo+json-seq",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::GeoJson => "geojson",
            Self::GeoJsonSeq => "geojsonl",
            Self::Csv => "csv",
        }
    }
}

/// Turns features into bytes of one format, a chunk at a time (for a response here, for a
/// file in `snapshots`).
pub(super) struct Encoder {
    format: Format,
    json: Vec<u8>,
    /// Taken and rebuilt at each chunk: `csv::Writer` only gives its buffer back whole.
    csv: Option<csv::Writer<Vec<u8>>>,
    rows: u64,
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv_writer_after(&[])
}

/// A CSV writer whose buffer starts with `prefix`.
fn csv_writer_after(prefix: &[u8]) -> csv::Writer<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
    buf.extend_from_slice(prefix);
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(buf)
}

/// The UTF-8 byte order mark: without it Excel reads a CSV as the machine's legacy code page
/// and garbles every non-ASCII letter (GDAL, Python's csv with `utf-8-sig`, R and the csv
/// crate skip it).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

impl Encoder {
    fn csv_mut(&mut self) -> &mut csv::Writer<Vec<u8>> {
        self.csv.get_or_insert_with(csv_writer)
    }

    pub(super) fn new(format: Format, fields: Fields) -> Result<Self, csv::Error> {
        let mut e = Self {
            format,
            json: Vec::with_capacity(CHUNK_BYTES + 4096),
            csv: (format == Format::Csv).then(|| csv_writer_after(UTF8_BOM)),
            rows: 0,
        };
        match format {
            Format::GeoJson => e
                .json
                .extend_from_slice(br#"{"type":"FeatureCollection","features":["#),
            Format::GeoJsonSeq => {}
            Format::Csv => e.csv_mut().write_record(csv_header(fields))?,
        }
        Ok(e)
    }

    pub(super) fn push(&mut self, feature: &IncidentFeature<'_>) -> Result<(), EncodeError> {
        match self.format {
            Format::GeoJson => {
                if self.rows > 0 {
                    self.json.push(b',');
                }
                serde_json::to_writer(&mut self.json, feature)?;
            }
            Format::GeoJsonSeq => {
                serde_json::to_writer(&mut self.json, feature)?;
                self.json.push(b'\n');
            }
            Format::Csv => self
                .csv_mut()
                .write_record(feature.csv_record().iter().map(|c| c.as_bytes()))?,
        }
        self.rows += 1;
        Ok(())
    }

    pub(super) fn finish(&mut self) {
        if self.format == Format::GeoJson {
            self.json.extend_from_slice(b"]}\n");
        }
    }

    pub(super) fn len(&self) -> usize {
        self.json.len() + self.csv.as_ref().map_or(0, |w| w.get_ref().len())
    }

    pub(super) fn take(&mut self) -> Result<Bytes, EncodeError> {
        if let Some(w) = self.csv.take() {
            let out = w
                .into_inner()
                .map_err(|e| csv::Error::from(e.into_error()))?;
            self.csv = Some(csv_writer());
            return Ok(Bytes::from(out));
        }
        Ok(Bytes::from(std::mem::replace(
            &mut self.json,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        )))
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
}

impl From<EncodeError> for AppError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::Db(e) => e.into(),
            other => AppError::internal(other),
        }
    }
}

/// Starts the export and waits for its first chunk, so a query that fails at once is an
/// ordinary error response; a failure later aborts the body (the client sees a truncated
/// transfer, never a well-formed partial file).
pub async fn export_body(
    state: &AppState,
    filter: IncidentFilter,
    fields: Fields,
    format: Format,
) -> Result<Body, AppError> {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, EncodeError>>(CHANNEL_CHUNKS);
    let pool = state.pool.clone();
    let catalogue = state.catalogue.clone();
    let export = async move {
        let mut q = store::export_query(&filter);
        let mut rows = store::stream(&pool, &mut q);
        let mut sent = false;
        let result: Result<(), EncodeError> = async {
            let mut enc = Encoder::new(format, fields)?;
            while let Some(row) = rows.try_next().await? {
                enc.push(&IncidentFeature {
                    row: &row,
                    catalogue: &catalogue,
                    fields,
                })?;
                if enc.len() >= CHUNK_BYTES {
                    if tx.send(Ok(enc.take()?)).await.is_err() {
                        // The client went away: stop reading from the database.
                        return Ok(());
                    }
                    sent = true;
                }
            }
            enc.finish();
            tracing::info!(
                rows = enc.rows,
                format = format.extension(),
                "export finished"
            );
            let _ = tx.send(Ok(enc.take()?)).await;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // Before the first chunk the error becomes the response, logged by the request
            // middleware; after it, this is the only place that can log it.
            if sent {
                tracing::error!(error = %e, format = format.extension(), "export aborted");
            }
            let _ = tx.send(Err(e)).await;
        }
    };
    // In the request's span: "export finished" / "export aborted" belong to the request.
    tokio::spawn(export.in_current_span());
    let first = rx
        .recv()
        .await
        .ok_or_else(|| AppError::internal("the export task ended without output"))??;
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(Body::from_stream(
        futures_util::stream::once(async move { Ok(first) }).chain(rest),
    ))
}
