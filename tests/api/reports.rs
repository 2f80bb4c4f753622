//! The native JSON API: intake, idempotency, lookup, history, status changes, bad input.

use citypin::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, cases, key, pothole};

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

const JSON: &str = "application/json";

/// Posts `text` as `content_type` with a fresh key: the answer is a problem+json with `status`
/// naming `field` (when given), and nothing is written.
async fn is_refused(
    pool: PgPool,
    content_type: &str,
    text: &str,
    status: u16,
    field: Option<&str>,
) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("Idempotency-Key", key())
        .header("content-type", content_type)
        .body(text.to_owned())
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.expect("json");
    if let Some(field) = field {
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{problem}");
    }
    assert_eq!(app.count_reports().await, 0);
}

/// A bad JSON body: refused as [`is_refused`] says, naming `field`.
async fn body_is_refused(pool: PgPool, body: &Value, status: u16, field: &str) {
    is_refused(pool, JSON, &body.to_string(), status, Some(field)).await;
}

cases! { async body_is_refused {
    a_missing_latitude_is_refused_naming_lat:
        &json!({"service_code": "pothole", "lon": -118.2}), 422, "lat";
    a_missing_longitude_is_refused_naming_lon:
        &json!({"service_code": "pothole", "lat": 34.0}), 422, "lon";
    a_latitude_past_90_is_refused_naming_lat:
        &json!({"service_code": "pothole", "lat": 95.0, "lon": -118.2}), 422, "lat";
    a_longitude_past_180_is_refused_naming_lon:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": 200.0}), 422, "lon";
    a_nan_latitude_is_a_400_naming_lat:
        &json!({"service_code": "pothole", "lat": "NaN", "lon": -118.2}), 400, "lat";
    an_unknown_service_is_refused_naming_service_code:
        &json!({"service_code": "no-such-service", "lat": 34.0, "lon": -118.2}), 422, "service_code";
    a_description_with_a_control_character_is_refused_naming_description:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "description": "dark lamp\u{7}"}), 422, "description";
    an_address_with_a_control_character_is_refused_naming_address:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "address": "1 Main St\u{1b}[2J"}), 422, "address";
    an_address_of_two_lines_is_refused_naming_address:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "address": "1 Main St\nLos Angeles"}), 422, "address";
    an_attribute_with_a_control_character_is_refused_naming_it:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "attributes": {"depth": "deep\u{0}"}}), 422, "attributes.depth";
    a_nested_attribute_with_a_control_character_is_refused_naming_its_path:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "attributes": {"size": {"notes": ["ok", "bad\u{8}"]}}}),
        422, "attributes.size.notes[1]";
    a_description_of_4001_characters_is_refused_naming_description:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "description": "x".repeat(4001)}), 422, "description";
    an_unknown_field_is_a_400_naming_it:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "colour": "red"}),
        400, "colour";
    contact_details_without_consent_are_refused_naming_contact_consent:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "contact": {"email": "a@b.org"}}), 422, "contact.consent";
    an_unknown_channel_is_refused_naming_channel:
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2, "channel": "pigeon"}),
        422, "channel";
}}

cases! { async is_refused {
    // A number too large for f64 cannot be written by serde_json, so it goes in as text.
    a_latitude_too_large_for_a_number_is_a_400_naming_the_body:
        JSON, r#"{"service_code":"pothole","lat":1e999,"lon":-118.2}"#, 400, Some("body");
    malformed_json_is_a_400_problem: JSON, "{not json", 400, None;
    a_form_body_is_a_415_problem: "application/x-www-form-urlencoded", "a=b", 415, None;
    a_body_past_the_size_limit_is_a_413_problem:
        JSON,
        &json!({"service_code": "pothole", "lat": 34.0, "lon": -118.2,
                "description": "y".repeat(100_000)}).to_string(),
        413,
        None;
}}

/// Each event of a report's history as (kind, status it moved to).
async fn steps(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let (_, history) = app.get_json(&format!("/api/v1/reports/{id}/history")).await;
    history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["to_status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A status change asked by `role` (no token when `None`) is refused with `status`, and the
/// history holds only the report's creation.
async fn a_status_change_is_refused(pool: PgPool, role: Option<Role>, status: u16) {
    let app = TestApp::spawn(pool).await;
    let (_, report) = app.post_report(&pothole(), &key()).await;
    let id = report["id"].as_str().expect("id");
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/reports/{id}/status")))
        .json(&json!({"status": "in_progress", "note": "crew on site"}));
    if let Some(role) = role {
        req = req.bearer_auth(app.token(role).await);
    }
    assert_eq!(req.send().await.expect("request").status(), status);
    assert_eq!(steps(&app, id).await, [("created".into(), "new".into())]);
}

cases! { async a_status_change_is_refused {
    a_status_change_without_a_token_is_401: None, 401;
    a_status_change_by_an_analyst_is_403: Some(Role::Analyst), 403;
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_crew_status_change_is_recorded_in_the_history(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, report) = app.post_report(&pothole(), &key()).await;
    let id = report["id"].as_str().unwrap();
    let url = app.url(&format!("/api/v1/reports/{id}/status"));
    let change = json!({"status": "in_progress", "note": "crew on site"});

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

    let to = |kind: &str, status: &str| (kind.to_owned(), status.to_owned());
    assert_eq!(
        steps(&app, id).await,
        [
            to("created", "new"),
            to("status", "in_progress"),
            to("status", "fixed")
        ]
    );
    let (_, history) = app.get_json(&format!("/api/v1/reports/{id}/history")).await;
    let events = history["events"].as_array().unwrap();
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

// ---------------------------------------------------------------------------------------------
// Free text: one plain-text rule; what looks like markup is text, kept as written.

const MARKUP_LOOKING: &str = "sign says <SLOW>";

/// A report whose `field` (a top-level field, or `attributes.<name>`) holds `text`; its id.
async fn report_with(app: &TestApp, field: &str, text: &str) -> String {
    let mut body = pothole();
    match field.strip_prefix("attributes.") {
        Some(name) => body["attributes"] = json!({ name: text }),
        None => body[field] = json!(text),
    }
    let (status, created) = app.post_report(&body, &key()).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

/// `sign says <SLOW>` in `field` is stored and read back as the same text.
async fn markup_looking_text_is_kept(pool: PgPool, field: &str) {
    let app = TestApp::spawn(pool).await;
    let id = report_with(&app, field, MARKUP_LOOKING).await;
    let read = if let Some(name) = field.strip_prefix("attributes.") {
        let attributes: Value =
            sqlx::query_scalar("SELECT attributes FROM reports WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&app.pool)
                .await
                .expect("stored");
        attributes[name].clone()
    } else {
        app.get_json(&format!("/api/v1/reports/{id}")).await.1[field].clone()
    };
    assert_eq!(read, MARKUP_LOOKING);
}

cases! { async markup_looking_text_is_kept {
    markup_looking_text_in_a_description_is_kept_as_text: "description";
    markup_looking_text_in_an_address_is_kept_as_text: "address";
    markup_looking_text_in_an_attribute_is_kept_as_text: "attributes.sign";
}}

/// Posts a status change with `note` as crew: the status and the answer.
async fn status_change_with_note(app: &TestApp, id: &str, note: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/api/v1/reports/{id}/status")))
        .bearer_auth(app.token(Role::Crew).await)
        .json(&json!({"status": "in_progress", "note": note}))
        .send()
        .await
        .expect("request");
    (res.status().as_u16(), res.json().await.expect("json"))
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn markup_looking_text_in_a_status_note_is_kept_as_text(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = report_with(&app, "description", "dark lamp").await;
    let note = format!("{MARKUP_LOOKING}\nsecond line");
    let (status, body) = status_change_with_note(&app, &id, &note).await;
    assert_eq!(status, 200, "{body}");
    let (_, history) = app.get_json(&format!("/api/v1/reports/{id}/history")).await;
    assert_eq!(history["events"][1]["note"], note.as_str());
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_status_note_with_a_control_character_is_refused_naming_note(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = report_with(&app, "description", "dark lamp").await;
    let (status, problem) = status_change_with_note(&app, &id, "crew\u{7} on site").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "note");
    assert_eq!(steps(&app, &id).await, [("created".into(), "new".into())]);
}
