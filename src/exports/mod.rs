//! File exports of the incidents: `GeoJSON` (RFC 7946), newline-delimited `GeoJSON` and CSV,
//! streamed from `PostGIS` with the same filters as the OGC API items, and the same files as
//! snapshots written on a schedule (`snapshots`) for clients that need lengths and ranges.

pub mod handlers;
pub mod model;
pub mod snapshots;
pub mod store;
pub mod stream;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/export/incidents.geojson", get(handlers::geojson))
        .route(
            "/api/v1/export/incidents.geojsonl",
            get(handlers::geojson_seq),
        )
        .route("/api/v1/export/incidents.csv", get(handlers::csv))
        .merge(snapshots::router())
}
