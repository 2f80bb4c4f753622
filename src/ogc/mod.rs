//! OGC API – Features Part 1 (Core, GeoJSON, HTML, OpenAPI 3.0) at `/ogc`: the collections
//! `incidents`, `areas` and `hotspots`, as QGIS, ArcGIS and GDAL add them by URL.

pub mod areas;
pub mod handlers;
pub mod html;
pub mod model;
pub mod openapi;
pub mod store;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ogc", get(handlers::landing))
        .route("/ogc/", get(handlers::landing))
        .route("/ogc/conformance", get(handlers::conformance))
        .route("/ogc/api", get(handlers::api))
        .route("/ogc/collections", get(handlers::collections))
        .route("/ogc/collections/{id}", get(handlers::collection))
        .route("/ogc/collections/{id}/items", get(handlers::items))
        .route("/ogc/collections/{id}/items/{fid}", get(handlers::item))
}
