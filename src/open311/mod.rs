//! Open311 GeoReport v2 in XML and JSON at `/open311/...`: discovery, services, service
//! definitions, requests (GET with the spec's filters and the area/paging/extensions
//! additions, POST form-encoded with an `api_key`), one request, tokens.

pub mod form;
pub mod format;
pub mod handlers;
pub mod query;
pub mod response;
pub mod search;
pub mod xml;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    use handlers as h;
    let mut router = Router::new();
    // The router matches whole segments only, so each format gets its own literal path.
    for ext in ["json", "xml"] {
        router = router
            .route(&format!("/open311/discovery.{ext}"), get(h::discovery))
            .route(&format!("/open311/v2/services.{ext}"), get(h::services))
            .route(
                &format!("/open311/v2/requests.{ext}"),
                get(h::list_requests).post(h::create_request),
            );
    }
    router
        .route("/open311/v2/services/{file}", get(h::service_definition))
        .route("/open311/v2/requests/{file}", get(h::show_request))
        .route("/open311/v2/tokens/{file}", get(h::token))
        .route("/open311/{*rest}", get(h::not_found).post(h::not_found))
        // Last, so it covers every route above: a method a path does not take gets the
        // spec's error list (axum keeps the `Allow` header).
        .method_not_allowed_fallback(h::method_not_allowed)
}
