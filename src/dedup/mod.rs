//! Duplicates: suggestions before submitting, the decision at intake (scored, explained,
//! race-free), "me too" supporters, and staff merge and undo.

pub mod decide;
pub mod handlers;
pub mod model;
pub mod scoring;
pub mod store;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports/similar", get(handlers::similar))
        .route("/api/v1/reports/{id}/supporters", post(handlers::support))
        .route("/api/v1/reports/{id}/merge", post(handlers::merge))
        .route("/api/v1/reports/{id}/unmerge", post(handlers::unmerge))
}
