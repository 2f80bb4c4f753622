//! A database outage answers 503 quickly, and the service recovers by itself when PostgreSQL
//! returns. Runs its own private cluster (citypin's embedded-cluster code) so it can stop it.

use std::time::{Duration, Instant};

use citypin::config::Settings;

use crate::helpers::{OwnCluster, TestApp, key, pothole};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_503_and_the_service_recovers_when_postgres_returns() {
    let settings = Settings {
        db_acquire_timeout: Duration::from_millis(500),
        ..Settings::default()
    };
    let mut cluster = OwnCluster::start(&settings).await;
    let app = TestApp::spawn_with(cluster.pool.clone(), settings).await;
    let post = |k: String| {
        app.client
            .post(app.url("/api/v1/reports"))
            .header("Idempotency-Key", k)
            .json(&pothole())
            .send()
    };
    assert_eq!(post(key()).await.unwrap().status(), 201);

    cluster.stop();
    // How fast the 503 comes is the pool's acquire timeout (500 ms here), not something to time.
    let res = post(key()).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["retry-after"], "1");
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    cluster.restart();
    // The pool reconnects on its own: poll until a report is accepted, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = post(key()).await.unwrap().status();
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "only 503 while recovering");
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.remove();
}
