//! Reports once stored: reading them (by id, reference or imported id), their public view,
//! history and status changes, and the SQL every capability uses on report rows. New reports
//! come in through [`crate::intake`].

pub mod handlers;
pub mod model;
mod status;
pub mod store;
mod view;

use axum::Router;
use axum::routing::{get, post};
use sqlx::PgPool;

pub use status::change_status;
pub use view::view;

use crate::app::AppState;
use crate::domain::{Report, ReportKey};
use crate::error::AppError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/services", get(handlers::services))
        .route("/api/v1/reports/{id}", get(handlers::show))
        .route("/api/v1/reports/{id}/history", get(handlers::history))
        .route("/api/v1/reports/{id}/status", post(handlers::change_status))
}

/// The report a public path names, or 404 when there is none or moderation hid it: a hidden
/// report is not there for the public, whatever the path.
pub async fn find_visible(pool: &PgPool, key: &ReportKey) -> Result<Report, AppError> {
    store::find(pool, key)
        .await?
        .filter(|r| !r.hidden)
        .ok_or(AppError::NotFound("report"))
}
