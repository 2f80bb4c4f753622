//! Open311 GeoReport v2 in XML and JSON at `/open311/...`.

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
