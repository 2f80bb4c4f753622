//! Operations: health probes, Prometheus metrics, tracing set-up, the request middleware
//! stack and graceful shutdown.

pub mod conditional;
pub mod forwarded;
pub mod metrics;
pub mod range;
pub mod store;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{AppError, LoggedError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics::render))
}

/// Ready when the database answers and the live index is loaded.
async fn ready(State(state): State<AppState>) -> Response {
    let db = tokio::time::timeout(Duration::from_secs(2), store::ping(&state.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    let index = state.spatial_index.is_loaded();
    let body = serde_json::json!({
        "database": if db { "up" } else { "down" },
        "spatial_index": if index { "loaded" } else { "loading" },
        "incidents": state.spatial_index.len(),
    });
    let status = if db && index {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Installs the tracing subscriber (pretty or JSON lines), filtered by `RUST_LOG`.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds request ids, one span per request (method, matched route, request id), one log line
/// per request with its status and duration, and the error of a 5xx logged exactly once; a
/// handler that panics answers 500 like any other internal error.
pub fn layers(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router
        // Innermost, so the request's span, log line and metrics see the 500.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            trace_request,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

/// A panic becomes the opaque 500 problem of [`AppError::Internal`] instead of a dropped
/// connection; its message is logged once, by [`trace_request`], never sent.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map_or_else(|| "no message".to_owned(), |s| (*s).to_owned()),
    };
    AppError::internal(format!("handler panicked: {message}")).into_response()
}

async fn trace_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("request", %method, %route, request_id = %request_id);
    let res = next.run(req).instrument(span.clone()).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = res.status().as_u16();
    state
        .metrics
        .observe_request(&route, method.as_str(), status, started.elapsed());
    span.in_scope(|| {
        if let Some(LoggedError(e)) = res.extensions().get::<LoggedError>() {
            tracing::error!(status, duration_ms, error = %e, "request failed");
        } else if status >= 500 {
            tracing::error!(status, duration_ms, "request failed");
        } else {
            tracing::debug!(status, duration_ms, "request served");
        }
    });
    res
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown requested");
}
