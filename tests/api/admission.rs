//! Intake under overload: past the admission bound a report is refused at once with 503 and
//! `Retry-After` (not queued behind the pool until its acquire timeout), nothing is written,
//! and the same request is accepted once the service has room again.

use sqlx::PgPool;

use crate::helpers::{TestApp, key, pothole};

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_intake_past_the_admission_bound_gets_503_with_retry_after_and_writes_nothing(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    // Every admission permit taken, as by that many intakes in flight.
    let all = u32::try_from(app.state.intake_admission.available_permits()).unwrap();
    let held = app
        .state
        .intake_admission
        .clone()
        .acquire_many_owned(all)
        .await
        .unwrap();
    let k = key();
    let res = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("Idempotency-Key", &k)
        .json(&pothole())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count_reports().await, 0);

    // Bad input is still named as such under overload: validation comes before admission.
    let mut bad = pothole();
    bad["service_code"] = "no-such-service".into();
    let (status, problem) = app.post_report(&bad, &key()).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "service_code");

    drop(held);
    // The refused request was not recorded under its key: the retry is a first submission.
    let (status, body) = app.post_report(&pothole(), &k).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.count_reports().await, 1);
}
