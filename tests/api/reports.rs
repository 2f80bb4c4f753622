//! The native JSON API: intake, idempotency, lookup, history, status changes, bad input.

use citypin::auth::Role;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, key, pothole};

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_citizen_report_is_stored_and_found_by_its_reference(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, body) = app.post_report(&pothole(), &key()).await;
    assert_eq!(status, 201, "{body}");
    let reference = body["reference"].as_str().unwrap();
    assert!(reference.starts_with("CP-") && reference.len() == 12);
    assert_eq!(body["status"], "new");
    assert_eq!(body["open311_status"], "open");
    assert_eq!(body["channel"], "web");

    let (status, found) = app
        .get_json(&format!("/api/v1/reports/{}", reference.to_lowercase()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["id"], body["id"]);
    let (_, by_id) = app
        .get_json(&format!("/api/v1/reports/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id["reference"], reference);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_same_idempotency_key_and_body_replays_the_first_response(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = key();
    let (s1, first) = app.post_report(&pothole(), &k).await;
    let (s2, second) = app.post_report(&pothole(), &k).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second);
    assert_eq!(app.count_reports().await, 1);

    let mut other = pothole();
    other["description"] = json!("a different hole");
    let (s3, problem) = app.post_report(&other, &k).await;
    assert_eq!(s3, 422);
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count_reports().await, 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn concurrent_retries_with_one_key_store_one_report(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = key();
    let body = pothole();
    let (a, b, c) = tokio::join!(
        app.post_report(&body, &k),
        app.post_report(&body, &k),
        app.post_report(&body, &k)
    );
    assert_eq!(a.1["id"], b.1["id"]);
    assert_eq!(b.1["id"], c.1["id"]);
    assert_eq!(app.count_reports().await, 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_missing_idempotency_key_is_a_400_naming_the_header(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .post(app.url("/api/v1/reports"))
        .json(&pothole())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count_reports().await, 0);
}

/// Each bad body gets a 4xx problem naming the field, and nothing is written.
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn bad_input_is_refused_with_the_field_named_and_nothing_written(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (
            json!({"service_code": "pothole", "lon": -118.2}),
            422,
            "lat",
        ),
        (json!({"service_code": "pothole", "lat": 34.0}), 422, "lon"),
        (
            json!({"service_code": "pothole", "lat": 95.0, "lon": -118.2}),
            422,
            "lat",
        ),
        (
            json!({"service_code": "pothole", "lat": 34.0, "lon": 200.0}),
            422,
            "lon",
        ),
        (
            json!({"service_code": "pothole", "lat": "NaN", "lon": -118.2}),
            400,
            "lat",
        ),
        (
            json!({"service_code": "pothole", "lat": null, "lon": -118.2}),
            400,
            "body",
        ),
        (
            json!({"service_code": "no-such-service", "lat": 34.0, "lon": -118.2}),
            422,
            "service_code",
        ),
        (
            json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "description": "<img src=x onerror=alert(1)>"}),
            422,
            "description",
        ),
        (
            json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "description": "x".repeat(4001)}),
            422,
            "description",
        ),
        (
            json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "colour": "red"}),
            400,
            "colour",
        ),
        (
            json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "contact": {"email": "a@b.org"}}),
            422,
            "contact.consent",
        ),
        (
            json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "channel": "pigeon"}),
            422,
            "channel",
        ),
    ];
    for (body, status, field) in cases {
        // A number too large for f64 cannot be written by serde_json, so it goes in as text.
        let text = body.to_string().replace("null", "1e999");
        let res = app
            .client
            .post(app.url("/api/v1/reports"))
            .header("Idempotency-Key", crate::helpers::key())
            .header("content-type", "application/json")
            .body(if field == "body" {
                text
            } else {
                body.to_string()
            })
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{body}");
        let problem: serde_json::Value = res.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body} -> {problem}");
    }
    for (raw, ct, status) in [
        ("{not json", "application/json", 400),
        ("a=b", "application/x-www-form-urlencoded", 415),
    ] {
        let res = app
            .client
            .post(app.url("/api/v1/reports"))
            .header("Idempotency-Key", crate::helpers::key())
            .header("content-type", ct)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{raw}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    let big = json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "description": "y".repeat(100_000)});
    let (status, _) = app.post_report(&big, &crate::helpers::key()).await;
    assert_eq!(status, 413);
    assert_eq!(app.count_reports().await, 0);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_crew_status_change_is_recorded_in_the_history(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, report) = app.post_report(&pothole(), &key()).await;
    let id = report["id"].as_str().unwrap();
    let url = app.url(&format!("/api/v1/reports/{id}/status"));
    let change = json!({"status": "in_progress", "note": "crew on site"});

    let anonymous = app.client.post(&url).json(&change).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let analyst = app.token(Role::Analyst).await;
    let forbidden = app
        .client
        .post(&url)
        .bearer_auth(&analyst)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let crew = app.token(Role::Crew).await;
    let res = app
        .client
        .post(&url)
        .bearer_auth(&crew)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let fixed = app
        .client
        .post(&url)
        .bearer_auth(&crew)
        .json(&json!({"status": "fixed"}))
        .send()
        .await
        .unwrap();
    let fixed: serde_json::Value = fixed.json().await.unwrap();
    assert_eq!(fixed["open311_status"], "closed");
    assert!(fixed["closed_at"].is_string());

    let (_, history) = app.get_json(&format!("/api/v1/reports/{id}/history")).await;
    let events = history["events"].as_array().unwrap();
    let steps: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["to_status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("created", "new"),
            ("status", "in_progress"),
            ("status", "fixed")
        ]
    );
    assert_eq!(events[1]["note"], "crew on site");
    assert_eq!(events[1]["actor_role"], "crew");
    assert_eq!(events[2]["from_status"], "in_progress");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn contact_details_never_appear_in_public_responses(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut body = pothole();
    body["contact"] = json!({"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+1 555 0100", "consent": true, "notify": true});
    let (status, report) = app.post_report(&body, &key()).await;
    assert_eq!(status, 201);
    let id = report["id"].as_str().unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reporters WHERE email = 'ada@example.org'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1);
    for path in [
        format!("/api/v1/reports/{id}"),
        format!("/api/v1/reports/{id}/history"),
        "/api/v1/incidents/nearby?lat=34.0522&lon=-118.2437".to_owned(),
    ] {
        let text = app.get_text(&path).await;
        for secret in ["Ada", "ada@example.org", "555 0100"] {
            assert!(!text.contains(secret), "{path} leaks {secret}");
        }
    }
    let text = report.to_string();
    assert!(!text.contains("ada@example.org"));
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn nearby_returns_open_incidents_sorted_by_distance(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let spots = [
        (-118.2437, 34.0522),
        (-118.2447, 34.0522),
        (-118.2337, 34.0522),
    ];
    for (lon, lat) in spots {
        let mut b = pothole();
        b["lon"] = json!(lon);
        b["lat"] = json!(lat);
        assert_eq!(app.post_report(&b, &key()).await.0, 201);
    }
    assert_eq!(app.state.spatial_index.len(), 3);
    let (status, fc) = app
        .get_json("/api/v1/incidents/nearby?lat=34.0522&lon=-118.2437&radius_m=200")
        .await;
    assert_eq!(status, 200);
    let d: Vec<f64> = fc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["distance_m"].as_f64().unwrap())
        .collect();
    assert_eq!(d.len(), 2, "{fc}");
    assert!(d[0] < 1.0 && (d[1] - 92.2).abs() < 1.0, "{d:?}");
    let (status, problem) = app
        .get_json("/api/v1/incidents/nearby?lat=34&lon=-118&radius_m=999999")
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "radius_m");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn health_and_metrics_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.get_json("/health/live").await.0, 200);
    let (status, ready) = app.get_json("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["database"], "up");
    let _ = app.post_report(&pothole(), &key()).await;
    let text = app.get_text("/metrics").await;
    assert!(text.contains("citypin_reports_created_total 1"), "{text}");
    assert!(text.contains("citypin_http_requests_total"), "{text}");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_retry_whose_keys_come_in_another_order_is_the_same_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = key();
    let send = |text: &'static str| {
        app.client
            .post(app.url("/api/v1/reports"))
            .header("Idempotency-Key", k.clone())
            .header("content-type", "application/json")
            .body(text)
            .send()
    };
    let first = send(
        r#"{"service_code":"pothole","lat":34.05,"lon":-118.25,"description":"deep","attributes":{"a":1,"b":2}}"#,
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    let retry = send(
        r#"{ "attributes": {"b": 2, "a": 1}, "description": "deep", "lon": -118.25, "lat": 34.05, "service_code": "pothole" }"#,
    )
    .await
    .unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(app.count_reports().await, 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_structured_json_media_type_is_json(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("Idempotency-Key", key())
        .header(
            "content-type",
            "application/vnd.citypin+json; charset=utf-8",
        )
        .body(pothole().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(app.count_reports().await, 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_report_path_too_long_to_be_a_key_is_a_400_naming_the_path(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, problem) = app
        .get_json(&format!("/api/v1/reports/{}", "x".repeat(256)))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "path");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_unknown_imported_id_in_a_path_is_a_404(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, problem) = app.get_json("/api/v1/reports/1-870704831").await;
    assert_eq!(status, 404, "{problem}");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_intake_write_whose_reference_is_taken_writes_nothing(pool: PgPool) {
    // The intake draws another reference when `intake_write` returns no row: it must also have
    // written nothing, link and stored response included.
    use citypin::domain::Actor;
    use citypin::intake::store::{IntakeLink, IntakeWrite, insert_intake};
    let app = TestApp::spawn(pool).await;
    let (status, first) = app.post_report(&pothole(), &key()).await;
    assert_eq!(status, 201, "{first}");
    let mut conn = app.pool.acquire().await.unwrap();
    let stored =
        citypin::reports::store::fetch(&mut conn, first["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    let mut twin = stored.clone();
    twin.id = uuid::Uuid::now_v7();
    let data = json!({"score": 1.0});
    let body = json!({"id": twin.id});
    let write = IntakeWrite {
        report: &twin,
        reporter: None,
        actor: Actor {
            role: "citizen",
            token: None,
        },
        link: Some(IntakeLink {
            parent: stored.id,
            parent_note: "linked",
            data: &data,
        }),
        response: Some(("public", "a-key", &body)),
    };
    let counts = "SELECT (SELECT count(*) FROM reports) + (SELECT count(*) FROM report_events)
        + (SELECT count(*) FROM outbox) + (SELECT sum(supporters) FROM reports)::bigint";
    let before: i64 = sqlx::query_scalar(counts)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let written = insert_intake(&mut conn, &write).await.unwrap();
    assert!(written.is_none(), "a taken reference returns no row");
    let after: i64 = sqlx::query_scalar(counts)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(after, before, "nothing written");
}
