//! Vector tiles (MVT) of the live index — incidents, clusters and H3 hotspots — with a cache
//! that each write invalidates, so a report accepted now shows in the next fetch of its tile.
//!
//! Building (`build`, with `cluster`, `hotspots`, the low-zoom `pyramid` and the `mvt` encoding), caching (`cache`)
//! and serving (`http`) are apart; the query filter lives in `model`, and `store` holds the
//! `PostGIS`-built baseline tile (`source=postgis`).

pub mod build;
pub mod cache;
pub mod cluster;
pub mod hotspots;
pub mod http;
pub mod model;
pub mod mvt;
pub mod pyramid;
pub mod store;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tiles.json", get(http::tilejson))
        .route("/tiles/{z}/{x}/{y}", get(http::tile))
}
