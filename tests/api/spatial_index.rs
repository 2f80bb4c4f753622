//! The live spatial index against `PostGIS`: same answers as `ST_DWithin` on geography over the
//! LA sample (ties, antimeridian and poles included), readiness, and coherence between two
//! citypin processes on one database.

use std::time::{Duration, Instant};

use citypin::config::Settings;
use citypin::geo::Position;
use citypin::spatial_index::{CompactHit, Filter, Hit, SpatialIndex};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, key, pothole};

/// A seeded generator, so a failure names a reproducible case.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Ids and distances `PostGIS` answers for the same question, on the sphere (`use_spheroid` =
/// false: radius 6371008.8 m, as citypin's haversine).
async fn postgis_nearby(
    pool: &PgPool,
    c: Position,
    radius_m: Option<f64>,
    limit: i64,
) -> Vec<(Uuid, f64)> {
    sqlx::query_as(
        "WITH q AS (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS g)
         SELECT r.id, ST_Distance(r.location::geography, q.g, false) AS d
         FROM reports r, q
         WHERE NOT r.hidden AND ($3::float8 IS NULL OR ST_DWithin(r.location::geography, q.g, $3, false))
         ORDER BY d, r.id LIMIT $4",
    )
    .bind(c.lon())
    .bind(c.lat())
    .bind(radius_m)
    .bind(limit)
    .fetch_all(pool)
    .await
    .expect("postgis query")
}

/// Ids and distances of full hits (radius queries) ...
fn of_hits(hits: &[Hit]) -> Vec<(Uuid, f64)> {
    hits.iter().map(|h| (h.incident.id, h.distance_m)).collect()
}

/// ... and of compact ones (k-nearest).
fn of_compact(hits: &[CompactHit]) -> Vec<(Uuid, f64)> {
    hits.iter().map(|h| (h.incident.id, h.distance_m)).collect()
}

/// Same ids in the same order, where two neighbours may swap only if their distances are
/// within 1 cm; a result cut by `limit` may differ only among ties with its last distance.
fn assert_same(case: &str, index: &[(Uuid, f64)], postgis: &[(Uuid, f64)], limit: usize) {
    assert_eq!(index.len(), postgis.len(), "{case}: result sizes differ");
    let tol = 0.01;
    let last = postgis.last().map_or(0.0, |p| p.1);
    let cut = postgis.len() == limit;
    for (i, (&(id, d), &(pg_id, pg_d))) in index.iter().zip(postgis).enumerate() {
        assert!(
            (d - pg_d).abs() < tol,
            "{case}: rank {i}: index {d} m, PostGIS {pg_d} m"
        );
        if id != pg_id {
            let in_tie = postgis
                .iter()
                .find(|(other, _)| *other == id)
                .is_some_and(|(_, other_d)| (other_d - pg_d).abs() < tol);
            let at_cut = cut && (d - last).abs() < tol;
            assert!(
                in_tie || at_cut,
                "{case}: rank {i}: index has {id} at {d} m, PostGIS {pg_id} at {pg_d} m"
            );
        }
    }
}

async fn post_at(app: &TestApp, lon: f64, lat: f64) -> Uuid {
    let mut body = pothole();
    body["lon"] = json!(lon);
    body["lat"] = json!(lat);
    let (status, body) = app.post_report(&body, &key()).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").parse().expect("uuid")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn nearby_and_k_nearest_answer_like_postgis_over_the_la_sample(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.import_la_sample().await;
    let index = &app.state.spatial_index;
    let all = Filter::default();
    // Many LA reports share coordinates: centre some queries exactly on them to hit ties.
    let stacked: Vec<(f64, f64)> = sqlx::query_as(
        "SELECT ST_X(location), ST_Y(location) FROM reports
         GROUP BY location HAVING count(*) >= 5 ORDER BY count(*) DESC, 1, 2 LIMIT 40",
    )
    .fetch_all(&app.pool)
    .await
    .expect("stacked points");
    assert!(stacked.len() >= 10, "the LA sample has stacked points");
    let mut rng = Lcg(20_260_101);
    for n in 0..240 {
        let c = if n % 3 == 0 {
            let (lon, lat) = stacked[n / 3 % stacked.len()];
            Position::new(lon, lat).expect("stored position")
        } else {
            Position::new(rng.range(-118.65, -118.15), rng.range(33.72, 34.32)).expect("position")
        };
        // Log-uniform radii from 20 m to 5 km; limits small enough to cut through ties.
        let radius = 20.0 * 250f64.powf(rng.next());
        let limit = [5, 20, 100, 500][n % 4];
        let case = format!("case {n}: centre {c}, radius {radius:.1} m, limit {limit}");
        let got = index.nearby_matching(c, radius, limit, &all);
        let want = postgis_nearby(&app.pool, c, Some(radius), limit as i64).await;
        assert_same(&case, &of_hits(&got), &want, limit);
        if n % 4 == 1 {
            let got = index.nearest(c, 20, &all);
            let want = postgis_nearby(&app.pool, c, None, 20).await;
            assert_same(&format!("{case} (k = 20)"), &of_compact(&got), &want, 20);
        }
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn nearby_answers_like_postgis_across_the_antimeridian_and_near_the_poles(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut rng = Lcg(7);
    let spots = [(180.0, 0.0), (180.0, 65.0), (0.0, 89.999), (45.0, -89.999)];
    for (lon0, lat0) in spots {
        for _ in 0..25 {
            let lat: f64 = (lat0 + rng.range(-0.004, 0.004)).clamp(-90.0, 90.0);
            let mut lon: f64 = lon0 + rng.range(-0.02, 0.02);
            if lat.abs() > 89.99 {
                lon = rng.range(-180.0, 180.0);
            }
            if lon > 180.0 {
                lon -= 360.0;
            }
            post_at(&app, lon, lat).await;
        }
        // Two reports on exactly the same spot: a tie PostGIS and the index must both break by id.
        post_at(&app, lon0.min(179.9999), lat0).await;
        post_at(&app, lon0.min(179.9999), lat0).await;
    }
    // The pole itself, at two longitudes that are the same point.
    post_at(&app, 10.0, 90.0).await;
    post_at(&app, -170.0, 90.0).await;
    let index = &app.state.spatial_index;
    let all = Filter::default();
    for (lon0, lat0) in spots {
        for n in 0..15 {
            let lat = (lat0 + rng.range(-0.003, 0.003)).clamp(-90.0, 90.0);
            let mut lon = lon0 + rng.range(-0.015, 0.015);
            if lon > 180.0 {
                lon -= 360.0;
            }
            let c = Position::new(lon, lat).expect("position");
            let radius = 50.0 * 40f64.powf(rng.next());
            let limit = if n % 2 == 0 { 10 } else { 200 };
            let case = format!("centre {c}, radius {radius:.1} m, limit {limit}");
            let want = postgis_nearby(&app.pool, c, Some(radius), limit as i64).await;
            assert_same(
                &case,
                &of_hits(&index.nearby_matching(c, radius, limit, &all)),
                &want,
                limit,
            );
            let want = postgis_nearby(&app.pool, c, None, 20).await;
            assert_same(
                &format!("{case} (k = 20)"),
                &of_compact(&index.nearest(c, 20, &all)),
                &want,
                20,
            );
        }
    }
    let pole = Position::new(0.0, 90.0).expect("pole");
    assert!(index.nearby_matching(pole, 1.0, 10, &all).len() >= 2);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn nearby_endpoint_orders_like_postgis(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.import_la_sample().await;
    let c = Position::new(-118.2437, 34.0522).expect("position");
    let (status, body) = app
        .get_json(
            "/api/v1/incidents/nearby?lat=34.0522&lon=-118.2437&radius_m=1500&limit=100&status=all",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<(Uuid, f64)> = body["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().expect("id").parse().expect("uuid"),
                f["properties"]["distance_m"].as_f64().expect("distance"),
            )
        })
        .collect();
    let want = postgis_nearby(&app.pool, c, Some(1500.0), 100).await;
    assert_eq!(got.len(), want.len());
    for ((id, d), (pg_id, pg_d)) in got.iter().zip(&want) {
        // distance_m is rounded to the centimetre on the wire.
        assert!((d - pg_d).abs() <= 0.006, "{id}: {d} vs {pg_d}");
        if id != pg_id {
            assert!(
                want.iter()
                    .any(|(w, wd)| w == id && (wd - pg_d).abs() < 0.01)
            );
        }
    }
}

/// Polls `check` until it holds or `within` passes; returns whether it held.
async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn feature_ids(body: &Value) -> Vec<String> {
    body["features"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| f["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_report_posted_to_one_process_is_seen_by_another_within_a_second(pool: PgPool) {
    // Reconciliation far off, so only LISTEN/NOTIFY can carry the change in time.
    let slow = Settings {
        reconcile_every: Duration::from_secs(3600),
        ..Settings::default()
    };
    let a = TestApp::spawn_with(pool.clone(), slow.clone()).await;
    let b = TestApp::spawn_with(pool, slow).await;
    // Let B's listener connect: its first reconciliation runs right after it does.
    let (_, body) = a.post_report(&pothole(), &key()).await;
    let first = body["id"].as_str().expect("id").to_owned();
    // status=all: the second pothole at the same spot is linked to the first as a duplicate.
    let near = "/api/v1/incidents/nearby?lat=34.0522&lon=-118.2437&radius_m=100&status=all";
    assert!(
        eventually(Duration::from_secs(5), async || feature_ids(
            &b.get_json(near).await.1
        )
        .contains(&first))
        .await
    );
    // Now B is listening: the next report must arrive within a second.
    let (status, body) = a.post_report(&pothole(), &key()).await;
    assert_eq!(status, 201);
    let id = body["id"].as_str().expect("id").to_owned();
    let posted = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), async || feature_ids(
            &b.get_json(near).await.1
        )
        .contains(&id))
        .await,
        "B did not see A's report within 1 s"
    );
    tracing::info!(latency_ms = posted.elapsed().as_millis() as u64, "seen");
    // A report hidden by moderation (a plain SQL update) leaves B's index too.
    sqlx::query("UPDATE reports SET hidden = true WHERE id = $1::uuid")
        .bind(&id)
        .execute(&a.pool)
        .await
        .expect("hide");
    assert!(
        eventually(Duration::from_secs(1), async || !feature_ids(
            &b.get_json(near).await.1
        )
        .contains(&id))
        .await,
        "B still shows a hidden report after 1 s"
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn reconciliation_repairs_a_missed_notification(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let kept = post_at(&app, -118.25, 34.05).await;
    // A second index on the same database that hears no notifications at all.
    let deaf = SpatialIndex::new();
    deaf.load(&pool, &app.state.catalogue).await.expect("load");
    assert!(deaf.get(kept).is_some());
    let missed = post_at(&app, -118.2501, 34.0501).await;
    sqlx::query("UPDATE reports SET status = 'fixed' WHERE id = $1")
        .bind(kept)
        .execute(&pool)
        .await
        .expect("update");
    sqlx::query("UPDATE reports SET hidden = true WHERE id = $1")
        .bind(missed)
        .execute(&pool)
        .await
        .expect("hide");
    let brand_new = post_at(&app, -118.2502, 34.0502).await;
    assert!(deaf.get(brand_new).is_none());
    let read = deaf
        .reconcile(&pool, &app.state.catalogue)
        .await
        .expect("reconcile");
    assert!(read >= 3);
    assert!(deaf.get(brand_new).is_some());
    assert!(deaf.get(missed).is_none());
    assert_eq!(
        deaf.get(kept).expect("kept").status,
        citypin::domain::Status::Fixed
    );
    // Against PostGIS, the truth: the app's own index hears the out-of-band UPDATEs through
    // NOTIFY, asynchronously, so comparing with it would race.
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM reports WHERE NOT hidden")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(deaf.len(), visible as usize);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn ready_is_unavailable_until_the_spatial_index_is_loaded(pool: PgPool) {
    let app = TestApp::spawn_not_loaded(pool).await;
    let client = &app.client;
    let url = app.url("/health/ready");
    let res = client.get(&url).send().await.expect("ready");
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["spatial_index"], "loading");
    let live = client
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);
    app.state.load_spatial_index().await.expect("load");
    let res = client.get(&url).send().await.expect("ready");
    assert_eq!(res.status().as_u16(), 200);
}

/// `source=postgis` is the same endpoint answered by `PostGIS`: same ids in the same order
/// (distance, then id) and the same feature fields as the live index, for staff only.
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn nearby_from_postgis_returns_what_the_index_returns_to_staff_only(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.import_la_sample().await;
    let token = app.token(citypin::auth::Role::Analyst).await;
    let queries = [
        // The sample has few open reports: the open queries need a wide radius to find any.
        "lat=34.05&lon=-118.25&radius_m=50000&limit=50",
        "lat=34.05&lon=-118.25&radius_m=500&limit=500&status=all",
        "lat=34.10&lon=-118.33&radius_m=2000&limit=20&status=closed",
        "lat=33.99&lon=-118.40&radius_m=5000&limit=100&status=all&service_code=graffiti-removal,illegal-dumping-pickup",
        "lat=34.20&lon=-118.50&radius_m=30000&limit=30&status=open,fixed",
    ];
    let get = |q: String, auth: Option<String>| {
        let mut req = app
            .client
            .get(app.url(&format!("/api/v1/incidents/nearby?{q}")));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.send().await.expect("request");
            (
                res.status().as_u16(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let mut compared = 0;
    for q in queries {
        let (s1, index) = get(q.to_owned(), None).await;
        let (s2, postgis) = get(format!("{q}&source=postgis"), Some(token.clone())).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {postgis}");
        let ids = |fc: &Value| -> Vec<String> {
            fc["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f["id"].as_str().expect("id").to_owned())
                .collect()
        };
        assert_eq!(ids(&index), ids(&postgis), "{q}");
        assert!(!ids(&index).is_empty(), "{q} should find incidents");
        compared += ids(&index).len();
        // Same shape: every feature carries the same property names and, distances aside, values.
        for (a, b) in index["features"]
            .as_array()
            .unwrap()
            .iter()
            .zip(postgis["features"].as_array().unwrap())
        {
            let (mut pa, mut pb) = (a["properties"].clone(), b["properties"].clone());
            let (da, db) = (pa["distance_m"].take(), pb["distance_m"].take());
            assert_eq!(pa, pb, "{q}");
            assert_eq!(a["geometry"], b["geometry"], "{q}");
            assert!(
                (da.as_f64().unwrap() - db.as_f64().unwrap()).abs() <= 0.01,
                "{q}: {da} vs {db}"
            );
        }
    }
    assert!(
        compared > 100,
        "the queries should find incidents: {compared}"
    );

    let q = "lat=34.05&lon=-118.25&radius_m=1000&source=postgis";
    assert_eq!(get(q.to_owned(), None).await.0, 401);
    let crew = app.token(citypin::auth::Role::Crew).await;
    assert_eq!(get(q.to_owned(), Some(crew)).await.0, 403);
    let (status, body) = get(format!("{q}&source=sql"), None).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("source"), "{body}");
}
