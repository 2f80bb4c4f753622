//! Report intake, the service catalogue, status changes and history (the native JSON API).

pub mod catalogue;
pub mod handlers;
pub mod intake;
pub mod model;
pub mod store;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/services", get(handlers::services))
        .route(
            "/api/v1/reports",
            // Large enough for three photos; a JSON body is still held to the global limit.
            post(handlers::create).layer(DefaultBodyLimit::max(
                crate::photos::model::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/api/v1/reports/{id}", get(handlers::show))
        .route("/api/v1/reports/{id}/history", get(handlers::history))
        .route("/api/v1/reports/{id}/status", post(handlers::change_status))
}
