//! Duplicates: the decision at intake, suggestions, "me too", staff merge and undo, and the
//! race between simultaneous reports of one problem.

use citypin::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, key, pothole};

/// About one metre of latitude, in degrees.
const M: f64 = 1.0 / 111_195.0;

fn pothole_at(north_m: f64, east_m: f64) -> Value {
    let mut b = pothole();
    b["lat"] = json!(34.0522 + north_m * M);
    b["lon"] = json!(-118.2437 + east_m * M / 34.0522_f64.to_radians().cos());
    b
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let (s, h) = app.get_json(&format!("/api/v1/reports/{id}/history")).await;
    assert_eq!(s, 200, "{h}");
    h["events"].as_array().expect("events").clone()
}

async fn post_as(app: &TestApp, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let s = res.status().as_u16();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn near_duplicate_is_linked_to_the_open_incident(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (s, parent) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    assert_eq!(s, 201, "{parent}");
    let mut again = pothole_at(8.0, 5.0);
    again["description"] = json!("huge hole in the road, my tyre burst");
    again["contact"] =
        json!({"name": "Ana", "email": "ana@example.org", "consent": true, "notify": true});
    let (s, dup) = app.post_report(&again, &key()).await;
    assert_eq!(s, 201, "{dup}");
    assert_eq!(dup["status"], "duplicate");
    assert_eq!(dup["open311_status"], "closed");
    assert_eq!(dup["duplicate_of"]["id"], parent["id"]);
    assert_eq!(dup["duplicate_of"]["reference"], parent["reference"]);
    assert_ne!(
        dup["reference"], parent["reference"],
        "the duplicate keeps its own reference"
    );

    let pid = parent["id"].as_str().unwrap();
    let (_, p) = app.get_json(&format!("/api/v1/reports/{pid}")).await;
    assert_eq!(p["status"], "new");
    assert_eq!(p["supporters"], 1);

    let child_events = history(&app, dup["id"].as_str().unwrap()).await;
    let link = child_events
        .iter()
        .find(|e| e["kind"] == "duplicate")
        .unwrap();
    assert_eq!(link["to_status"], "duplicate");
    assert!(link["data"]["score"].as_f64().unwrap() >= 0.6, "{link}");
    assert_eq!(link["data"]["relation"], "same_service");
    assert!(link["data"]["distance_m"].as_f64().unwrap() < 12.0);
    let parent_events = history(&app, pid).await;
    assert!(
        parent_events
            .iter()
            .any(|e| e["kind"] == "duplicate" && e["data"]["child_reference"] == dup["reference"])
    );

    let subscribed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM report_subscriptions WHERE report_id = $1::uuid")
            .bind(pid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        subscribed, 1,
        "the duplicate's reporter hears about the parent"
    );
    let indexed = app.state.spatial_index.get(pid.parse().unwrap()).unwrap();
    assert_eq!(indexed.supporters, 1, "the live index holds the new count");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_different_category_nearby_is_not_linked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, first) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    for (code, text) in [
        ("graffiti-removal", "tag on the wall"),
        ("sidewalk-damage", "cracked paving slab"),
    ] {
        let mut other = pothole_at(3.0, 0.0);
        other["service_code"] = json!(code);
        other["description"] = json!(text);
        let (s, r) = app.post_report(&other, &key()).await;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["status"], "new", "{code}: {r}");
        assert!(r["duplicate_of"].is_null());
    }
    let (_, p) = app
        .get_json(&format!(
            "/api/v1/reports/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p["supporters"], 0);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_same_category_on_another_block_is_not_linked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    let (s, r) = app.post_report(&pothole_at(0.0, 150.0), &key()).await;
    assert_eq!(s, 201);
    assert_eq!(r["status"], "new", "{r}");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_report_older_than_the_window_is_not_linked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, old) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    // Potholes are judged over 720 hours: make the first one 31 days old.
    sqlx::query("UPDATE reports SET requested_at = now() - interval '31 days' WHERE id = $1::uuid")
        .bind(old["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, r) = app.post_report(&pothole_at(2.0, 0.0), &key()).await;
    assert_eq!(r["status"], "new", "{r}");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_closed_incident_is_not_a_parent(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let crew = app.token(Role::Crew).await;
    let (_, first) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    let id = first["id"].as_str().unwrap();
    let (s, _) = post_as(
        &app,
        Some(&crew),
        &format!("/api/v1/reports/{id}/status"),
        json!({"status": "fixed", "note": "filled"}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, r) = app.post_report(&pothole_at(1.0, 0.0), &key()).await;
    assert_eq!(r["status"], "new", "{r}");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn me_too_counts_each_supporter_once_and_subscribes_the_contact(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (_, parent) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    let id = parent["id"].as_str().unwrap();
    let path = format!("/api/v1/reports/{id}/supporters");
    let contact = json!({"contact": {"email": "Bo@Example.org", "consent": true, "notify": true}});

    let (s, v) = post_as(&app, None, &path, contact.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["supporters"], 1);
    assert_eq!(v["id"], parent["id"]);
    let same_person = json!({"contact": {"email": "bo@example.org ", "consent": true}});
    let (s, v) = post_as(&app, None, &path, same_person).await;
    assert_eq!(s, 200, "the same e-mail is counted once: {v}");
    assert_eq!(v["supporters"], 1);

    // Anonymous: counted by the Idempotency-Key, which a retry repeats.
    let (s, v) = (
        app.client
            .post(app.url(&path))
            .send()
            .await
            .unwrap()
            .status(),
        (),
    );
    assert_eq!(s, 400, "{v:?}");
    let k = key();
    for expected in [201, 200] {
        let res = app
            .client
            .post(app.url(&path))
            .header("Idempotency-Key", &k)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
    }
    let (_, p) = app.get_json(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(p["supporters"], 2);
    let events = history(&app, id).await;
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "supporter").count(),
        2
    );
    let subscribed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM report_subscriptions WHERE report_id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(subscribed, 1);
    assert_eq!(
        app.state
            .spatial_index
            .get(id.parse().unwrap())
            .unwrap()
            .supporters,
        2
    );

    let bad = json!({"contact": {"email": "x@example.org"}});
    let (s, v) = post_as(&app, None, &path, bad).await;
    assert_eq!(s, 422);
    assert_eq!(v["errors"][0]["field"], "contact.consent");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn staff_merge_and_unmerge_are_recorded_with_who_and_restore_the_counts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let crew = app.token(Role::Crew).await;
    let agent = app.token(Role::Agent).await;
    let analyst = app.token(Role::Analyst).await;
    let (_, a) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    let (_, b) = app.post_report(&pothole_at(0.0, 150.0), &key()).await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_eq!(b["status"], "new");
    let (s, _) = post_as(
        &app,
        Some(&crew),
        &format!("/api/v1/reports/{bid}/status"),
        json!({"status": "acknowledged"}),
    )
    .await;
    assert_eq!(s, 200);

    let merge = format!("/api/v1/reports/{bid}/merge");
    let into = json!({"into": a["reference"].as_str().unwrap().to_lowercase()});
    assert_eq!(post_as(&app, None, &merge, into.clone()).await.0, 401);
    assert_eq!(
        post_as(&app, Some(&analyst), &merge, into.clone()).await.0,
        403
    );
    let (s, v) = post_as(&app, Some(&crew), &merge, json!({"into": bid})).await;
    assert_eq!(s, 409, "not into itself: {v}");
    let (s, v) = post_as(&app, Some(&crew), &merge, json!({"into": "CP-0000-0000"})).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["errors"][0]["field"], "into");

    let (s, merged) = post_as(&app, Some(&crew), &merge, into).await;
    assert_eq!(s, 200, "{merged}");
    assert_eq!(merged["status"], "duplicate");
    assert_eq!(merged["duplicate_of"]["id"], a["id"]);
    let (_, pa) = app.get_json(&format!("/api/v1/reports/{aid}")).await;
    assert_eq!(pa["supporters"], 1);
    let ev = history(&app, bid).await;
    let m = ev.iter().find(|e| e["kind"] == "merge").unwrap();
    assert_eq!(m["actor_role"], "crew");
    assert_eq!(m["from_status"], "acknowledged");
    assert!(
        history(&app, aid)
            .await
            .iter()
            .any(|e| e["kind"] == "merge")
    );
    let (s, _) = post_as(&app, Some(&crew), &merge, json!({"into": aid})).await;
    assert_eq!(s, 409, "a duplicate must be unmerged before merging again");

    let unmerge = format!("/api/v1/reports/{bid}/unmerge");
    assert_eq!(
        post_as(&app, Some(&analyst), &unmerge, json!({})).await.0,
        403
    );
    let (s, back) = post_as(
        &app,
        Some(&agent),
        &unmerge,
        json!({"note": "different holes"}),
    )
    .await;
    assert_eq!(s, 200, "{back}");
    assert_eq!(back["status"], "acknowledged");
    assert!(back["duplicate_of"].is_null());
    assert!(back["closed_at"].is_null());
    let (_, pa) = app.get_json(&format!("/api/v1/reports/{aid}")).await;
    assert_eq!(pa["supporters"], 0);
    let ev = history(&app, bid).await;
    let u = ev.iter().find(|e| e["kind"] == "unmerge").unwrap();
    assert_eq!(u["actor_role"], "agent");
    assert_eq!(u["note"], "different holes");
    assert!(
        history(&app, aid)
            .await
            .iter()
            .any(|e| e["kind"] == "unmerge")
    );
    let (s, _) = post_as(&app, Some(&agent), &unmerge, json!({})).await;
    assert_eq!(s, 409, "nothing left to unmerge");
    assert_eq!(
        app.state
            .spatial_index
            .get(aid.parse().unwrap())
            .unwrap()
            .supporters,
        0
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn simultaneous_reports_of_one_problem_make_exactly_one_parent(pool: PgPool) {
    // Two servers on one database stand for two citypin processes, each with its own live
    // index: only the lock in PostgreSQL can keep them from both creating a parent.
    let app = TestApp::spawn(pool.clone()).await;
    let replica = TestApp::spawn(pool).await;
    let n = 12;
    let posts = (0..n).map(|i| {
        let body = pothole_at(f64::from(i % 4), f64::from(i / 4));
        let server = if i % 2 == 0 { &app } else { &replica };
        async move { server.post_report(&body, &key()).await }
    });
    let results = futures_util::future::join_all(posts).await;
    let mut parents = Vec::new();
    let mut links = Vec::new();
    for (s, r) in &results {
        assert_eq!(*s, 201, "{r}");
        if r["status"] == "new" {
            parents.push(r["id"].clone());
        } else {
            assert_eq!(r["status"], "duplicate");
            links.push(r["duplicate_of"]["id"].clone());
        }
    }
    assert_eq!(parents.len(), 1, "exactly one parent: {results:?}");
    assert!(links.iter().all(|l| *l == parents[0]));
    let pid = parents[0].as_str().unwrap();
    let (_, p) = app.get_json(&format!("/api/v1/reports/{pid}")).await;
    assert_eq!(p["supporters"], n - 1);

    // Nearby (open by default) shows the group as one incident with its supporters. Half the
    // links were committed by the other server, whose changes reach this one's index through
    // the index's own sync; a reload stands for that here.
    app.state
        .spatial_index
        .load(&app.pool, &app.state.catalogue)
        .await
        .unwrap();
    let (_, near) = app
        .get_json("/api/v1/incidents/nearby?lat=34.0522&lon=-118.2437&radius_m=200")
        .await;
    let features = near["features"].as_array().unwrap();
    assert_eq!(features.len(), 1, "{near}");
    assert_eq!(features[0]["properties"]["supporters"], n - 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn similar_suggests_open_incidents_best_first_without_personal_data(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut near = pothole_at(0.0, 0.0);
    near["contact"] = json!({"name": "Carmen Secret", "email": "carmen@example.org",
        "phone": "+1 555 0100", "consent": true});
    let (_, a) = app.post_report(&near, &key()).await;
    let (_, _b) = app.post_report(&pothole_at(0.0, 150.0), &key()).await;
    let mut graffiti = pothole_at(1.0, 0.0);
    graffiti["service_code"] = json!("graffiti-removal");
    app.post_report(&graffiti, &key()).await;

    let lat = 34.0522 + 6.0 * M;
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/reports/similar?lat={lat}&lon=-118.2437&service_code=pothole"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for secret in ["Carmen", "carmen@example.org", "555 0100"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let fc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(fc["type"], "FeatureCollection");
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), 1, "{fc}");
    let props = features[0]["properties"].as_object().unwrap();
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "age_days",
            "distance_m",
            "id",
            "reference",
            "score",
            "service_code",
            "status",
            "supporters"
        ]
    );
    assert_eq!(props["id"], a["id"]);
    assert!((props["distance_m"].as_f64().unwrap() - 6.0).abs() < 0.5);

    let (s, problem) = app
        .get_json("/api/v1/reports/similar?lat=34.05&lon=-118.24")
        .await;
    assert_eq!(s, 400);
    assert_eq!(problem["errors"][0]["field"], "service_code");
    let (s, problem) = app
        .get_json("/api/v1/reports/similar?lat=95&lon=-118.24&service_code=pothole")
        .await;
    assert_eq!(s, 400);
    assert_eq!(problem["errors"][0]["field"], "lat");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_intake_waits_for_a_twin_still_in_flight_and_links_to_it(pool: PgPool) {
    // A deterministic interleaving of the race: another process has stored a report at this
    // spot and is still inside its intake transaction. The HTTP intake must wait for it rather
    // than decide on the data it can see, then link to it once it commits.
    let app = TestApp::spawn(pool).await;
    let service = app.state.catalogue.get("pothole").unwrap().clone();
    let new: citypin::intake::NewReportBody = serde_json::from_value(pothole_at(0.0, 0.0)).unwrap();
    let new = new.parse(citypin::domain::Channel::Web).unwrap();
    let mut twin = app.pool.begin().await.unwrap();
    let actor = citypin::domain::Actor {
        role: "citizen",
        token: None,
    };
    let first = citypin::intake::store::insert(
        &mut twin,
        &new,
        &service.agency,
        service.sla_hours,
        actor,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let none =
        citypin::dedup::decide::find_parent(&mut twin, &app.state.catalogue, &service, &first)
            .await
            .unwrap();
    assert!(none.is_none());

    let body = pothole_at(3.0, 0.0);
    let second = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/api/v1/reports");
        async move {
            let res = client
                .post(url)
                .header("Idempotency-Key", key())
                .json(&body)
                .send()
                .await
                .expect("request");
            res.json::<Value>().await.expect("json")
        }
    });
    // Wait until the second intake is blocked on the area lock (or has, wrongly, finished).
    let mut waiting = false;
    for _ in 0..5_000 {
        if second.is_finished() {
            break;
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(waiting, "the second intake did not wait for the first");
    twin.commit().await.unwrap();
    let second = second.await.unwrap();
    assert_eq!(second["status"], "duplicate", "{second}");
    assert_eq!(second["duplicate_of"]["id"], json!(first.id));
}

/// The parent's supporters as its links and "me too" claims say: one per claim, plus, per
/// child still linked, the `supporters_added` of its last link event.
async fn supporters_by_links(app: &TestApp, parent: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM report_supports WHERE report_id = $1::uuid)
              + COALESCE((SELECT sum((SELECT (e.data->>'supporters_added')::bigint
                                      FROM report_events e
                                      WHERE e.report_id = c.id AND e.kind IN ('duplicate', 'merge')
                                      ORDER BY e.at DESC, e.id DESC LIMIT 1))
                          FROM reports c WHERE c.duplicate_of = $1::uuid), 0)::bigint",
    )
    .bind(parent)
    .fetch_one(&app.pool)
    .await
    .expect("supporters by links")
}

async fn supporters_shown(app: &TestApp, id: &str) -> i64 {
    app.get_json(&format!("/api/v1/reports/{id}")).await.1["supporters"]
        .as_i64()
        .expect("supporters")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_duplicates_status_is_not_changed_by_hand_so_counts_never_drift(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let crew = app.token(Role::Crew).await;
    let (_, a) = app.post_report(&pothole_at(0.0, 0.0), &key()).await;
    let (_, b) = app.post_report(&pothole_at(0.0, 150.0), &key()).await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let check = |when: &'static str| {
        let app = &app;
        async move {
            assert_eq!(
                supporters_shown(app, aid).await,
                supporters_by_links(app, aid).await,
                "{when}"
            );
        }
    };
    check("before any link").await;
    let (s, _) = post_as(
        &app,
        Some(&crew),
        &format!("/api/v1/reports/{bid}/merge"),
        json!({"into": aid}),
    )
    .await;
    assert_eq!(s, 200);
    check("after a merge").await;
    let (s, problem) = post_as(
        &app,
        Some(&crew),
        &format!("/api/v1/reports/{bid}/status"),
        json!({"status": "fixed"}),
    )
    .await;
    assert_eq!(s, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("unmerge"),
        "{problem}"
    );
    check("after a refused status change").await;
    let (s, _) = post_as(
        &app,
        Some(&crew),
        &format!("/api/v1/reports/{bid}/unmerge"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "unmerge still works");
    check("after the unmerge").await;
    let (s, _) = post_as(
        &app,
        Some(&crew),
        &format!("/api/v1/reports/{bid}/status"),
        json!({"status": "fixed"}),
    )
    .await;
    assert_eq!(s, 200, "once unmerged its status is its own");
    check("after the status change").await;
}
