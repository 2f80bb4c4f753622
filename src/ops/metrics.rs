//! Prometheus metrics in the text exposition format.

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::AppState;
use crate::geo::Position;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReaderLabels {
    pub reader: &'static str,
}

/// Rows skipped because their location maps to no position (`POINT EMPTY`, NaN, out of
/// range): process-wide, since the stores that meet them take a pool, not the metrics.
static UNMAPPABLE_ROWS: LazyLock<Family<ReaderLabels, Counter>> = LazyLock::new(Family::default);

/// The position of a stored row, or `None` (after one error log naming only its id, and a
/// count in `citypin_unmappable_rows_total{reader}`) when its location maps to none: one bad
/// row is skipped by `reader`, never fails a whole answer, a sync or start-up.
pub fn stored_position(
    reader: &'static str,
    id: uuid::Uuid,
    lon: Option<f64>,
    lat: Option<f64>,
) -> Option<Position> {
    if let Some(p) = lon
        .zip(lat)
        .and_then(|(lon, lat)| Position::new(lon, lat).ok())
    {
        return Some(p);
    }
    tracing::error!(
        report.id = %id,
        reader,
        "report row has no valid point location; skipped (see migration 0013)"
    );
    UNMAPPABLE_ROWS
        .get_or_create(&ReaderLabels { reader })
        .inc();
    None
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Every metric citypin exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RequestLabels, Histogram>,
    pub reports_created: Counter,
    pub index_incidents: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("citypin");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        let reports_created = Counter::default();
        let index_incidents = Gauge::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_seconds.clone(),
        );
        registry.register(
            "reports_created",
            "Reports accepted and committed",
            reports_created.clone(),
        );
        registry.register(
            "spatial_index_incidents",
            "Incidents held by the live index",
            index_incidents.clone(),
        );
        registry.register(
            "unmappable_rows",
            "Report rows skipped because their location is not a valid point, by reader",
            UNMAPPABLE_ROWS.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            reports_created,
            index_incidents,
        }
    }
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            route: route.to_owned(),
            method: method.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

pub async fn render(State(state): State<AppState>) -> Response {
    state
        .metrics
        .index_incidents
        .set(state.spatial_index.len() as i64);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &state.metrics.registry).is_err() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
