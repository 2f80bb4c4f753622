//! Export snapshots: the streamed exports written to files on a schedule, for clients that
//! need a length and byte ranges (QGIS and GDAL through `/vsicurl/`), served at stable URLs.
//!
//! One replica writes each generation (`generate`: a claimed row), into temporary files renamed
//! into place, so a reader always opens a whole file; `serve` answers with `Content-Length`, a
//! strong `ETag`, `Last-Modified`, single byte ranges and conditional requests. A snapshot
//! holds only the public fields, like the streamed export without a token, and no hidden report.

pub mod generate;
pub mod serve;
pub mod store;

use std::path::PathBuf;

use axum::Router;
use axum::routing::get;

use super::stream::Format;
use crate::app::AppState;
use crate::config::Settings;

pub use generate::{Outcome, SnapshotError, run_once, spawn};

/// Every format a snapshot is written in, each a file of its own.
pub const FORMATS: [Format; 3] = [Format::GeoJson, Format::GeoJsonSeq, Format::Csv];

/// The file name of a format's snapshot (also the last part of its URL).
pub fn file_name(format: Format) -> String {
    format!("incidents.{}", format.extension())
}

/// Where snapshots are written and read: `CITYPIN_SNAPSHOT_DIR`, else `DATA_DIR/snapshots`.
/// Replicas must share it (one writes, all serve).
pub fn dir(settings: &Settings) -> PathBuf {
    settings
        .snapshot_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("snapshots"))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/export/snapshots/incidents.geojson",
            get(serve::geojson),
        )
        .route(
            "/api/v1/export/snapshots/incidents.geojsonl",
            get(serve::geojson_seq),
        )
        .route("/api/v1/export/snapshots/incidents.csv", get(serve::csv))
}
