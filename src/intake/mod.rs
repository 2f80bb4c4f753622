//! Report intake: the one road every new report takes, from the native JSON API, a multipart
//! form with photos, or Open311. Parse into [`NewReport`], then [`submit`]: one transaction
//! with the idempotency claim, the dedup decision, the report, its history, outbox and
//! photos; the live index hears of it after commit.

pub mod body;
pub mod handlers;
mod response;
pub mod store;
mod submit;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;

pub use body::{NewReport, NewReportBody};
pub use response::{REPLAYED, body as response_body, respond};
pub use submit::{ADMITTED_PER_CONNECTION, Idempotent, Outcome, submit};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/reports",
        // Large enough for three photos; a JSON body is still held to the global limit.
        post(handlers::create).layer(DefaultBodyLimit::max(
            crate::photos::model::MAX_UPLOAD_BYTES,
        )),
    )
}
