//! citypin: the geospatial heart of a city's 311 system.
//!
//! One module per capability; `app` merges their routers, so every route is found in one place.

/// Application state and the one function that merges every capability's router.
pub mod app;
/// Tokens, roles and the caller extractor.
pub mod auth;
/// The service catalogue: what citizens can report, loaded from a file and upserted.
pub mod catalogue;
/// The command line: `serve`, `import`, `token create`, `postgres start|stop`.
pub mod cli;
/// Typed settings loaded once from the environment.
pub mod config;
/// The connection pool, migrations and the embedded private PostGIS cluster.
pub mod db;
/// Duplicates: suggestions, the decision at intake, "me too", staff merge and undo.
pub mod dedup;
/// The kernel: types every capability shares (`Status`, `ServiceCode`, `Reference`, …).
pub mod domain;
/// `AppError` → problem+json, and the project's own extractors.
pub mod error;
/// Streamed file exports of the incidents: GeoJSON, GeoJSON-Seq and CSV.
pub mod exports;
/// Positions, bounding boxes, distances and conversions to geo / geojson / h3o.
pub mod geo;
/// Idempotent writes: the `Idempotency-Key`, the request's fingerprint, the replay.
pub mod idempotency;
/// Loading GeoReport-shaped CSV, GeoJSON and GeoJSON-Seq files.
pub mod import;
/// New reports: JSON or multipart with photos, one transaction with dedup and idempotency.
pub mod intake;
/// Networks of trusted reverse proxies, and whether an address is in one.
pub mod net;
/// OGC API – Features: incidents, areas and hotspots for GIS clients.
pub mod ogc;
/// Open311 GeoReport v2 in XML and JSON.
pub mod open311;
/// Health, metrics, tracing and graceful shutdown.
pub mod ops;
/// Photos on reports: upload, safe re-encoding, content-addressed storage, serving.
pub mod photos;
/// Stored reports: reading, the public view, history and status changes.
pub mod reports;
/// The live in-memory index of incidents (R-tree + H3), a cache of PostGIS.
pub mod spatial_index;
/// Vector tiles (MVT) with clusters and H3 hotspots, a write-invalidated cache, TileJSON.
pub mod tiles;
/// The mobile-web map: the built front-end, the map style and the offline basemap.
pub mod web_map;

/// Unit tests' `cases!`: one `#[test]` per case of a table.
#[cfg(test)]
mod test_cases;
