//! The layer stack every route runs under, with a route of the test's own mounted beneath it
//! (the production router has no route that panics).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use citypin::app::{self, AppState};
use citypin::config::Settings;
use citypin::error::AppError;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

async fn json_body(res: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_handler_panic_answers_the_opaque_500_problem_and_the_next_request_is_served(
    pool: PgPool,
) {
    crate::helpers::init_test_log();
    let state = AppState::open(pool, Settings::default())
        .await
        .expect("open");
    let routes = Router::new()
        .route(
            "/boom",
            get(|| async {
                panic!("secret detail of a bug");
                #[expect(unreachable_code, reason = "the handler's type needs a response")]
                ""
            }),
        )
        .route("/fine", get(|| async { "ok" }));
    let stack = app::layers(routes, state);
    let get = |uri: &'static str| {
        stack
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
    };

    let res = get("/boom")
        .await
        .expect("an answer, not a dropped request");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.headers().contains_key("x-request-id"));
    let body = json_body(res).await;
    let other_5xx = json_body(AppError::internal("anything").into_response()).await;
    assert_eq!(
        body, other_5xx,
        "the same shape and opaque detail as any 500"
    );
    assert!(!body.to_string().contains("secret"), "{body}");

    let res = get("/fine").await.expect("response");
    assert_eq!(res.status(), StatusCode::OK);
}
