//! A row whose location maps to no position (issue 17, item 2). Migration 0013's CHECK refuses
//! such rows now, but a database migrated earlier can hold them: 0001's CHECK let `POINT EMPTY`
//! through, and 0013 reports those it finds and leaves them (nothing accepted is ever lost).
//! Each test puts one back the way such a database holds it: it restores 0001's CHECK in its own
//! database, then sets a report's location to `POINT EMPTY`. Every reader must skip the row with
//! an error log and `citypin_unmappable_rows_total`, never fail the answer, a sync or start-up.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, key, pothole};

/// 0001's CHECK, as a database migrated before 0013 held it.
async fn restore_old_check(pool: &PgPool) {
    sqlx::query(
        "ALTER TABLE reports DROP CONSTRAINT reports_location_valid,
         ADD CONSTRAINT reports_location_valid CHECK (
             ST_X(location) BETWEEN -180 AND 180 AND ST_Y(location) BETWEEN -90 AND 90
             AND ST_SRID(location) = 4326)",
    )
    .execute(pool)
    .await
    .expect("restore 0001's CHECK");
}

/// Posts a pothole and returns its id.
async fn post(app: &TestApp) -> Uuid {
    let (status, body) = app.post_report(&pothole(), &key()).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").parse().expect("uuid")
}

/// Empties the location of report `id` (possible only under 0001's CHECK).
async fn empty_location(pool: &PgPool, id: Uuid) {
    sqlx::query("UPDATE reports SET location = 'SRID=4326;POINT EMPTY'::geometry WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .expect("empty the location");
}

/// A running server whose database holds one report with an empty point and, after it in id
/// order (so a reader that stopped at the bad row would miss it), one good report.
async fn with_bad_row(pool: PgPool) -> (TestApp, Uuid, Uuid) {
    restore_old_check(&pool).await;
    let app = TestApp::spawn(pool.clone()).await;
    let bad = post(&app).await;
    let good = post(&app).await;
    empty_location(&pool, bad).await;
    (app, good, bad)
}

/// The value of `citypin_unmappable_rows_total{reader="…"}`, 0 when absent. The counter is
/// process-wide (tests in this binary share it), so callers compare before and after.
async fn unmappable(app: &TestApp, reader: &str) -> u64 {
    let text = app.get_text("/metrics").await;
    let prefix = format!("citypin_unmappable_rows_total{{reader=\"{reader}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("counter value"))
}

fn ids(features: &Value) -> Vec<String> {
    features["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect()
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn start_up_loads_the_index_without_an_unmappable_row(pool: PgPool) {
    let (writer, good, bad) = with_bad_row(pool.clone()).await;
    drop(writer);
    // A second server starts, and loads its index, with the bad row there.
    let app = TestApp::spawn(pool).await;
    assert!(app.state.spatial_index.get(good).is_some());
    assert!(app.state.spatial_index.get(bad).is_none());
    assert!(unmappable(&app, "spatial_index").await >= 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn get_of_an_unmappable_report_is_404_not_500(pool: PgPool) {
    let (app, good, bad) = with_bad_row(pool).await;
    let before = unmappable(&app, "reports").await;
    assert_eq!(app.get_json(&format!("/api/v1/reports/{bad}")).await.0, 404);
    assert_eq!(
        app.get_json(&format!("/api/v1/reports/{good}")).await.0,
        200
    );
    assert!(unmappable(&app, "reports").await > before);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_default_open311_list_skips_an_unmappable_report(pool: PgPool) {
    let (app, good, _bad) = with_bad_row(pool).await;
    let before = unmappable(&app, "reports").await;
    let (status, list) = app.get_json("/open311/v2/requests.json").await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 1, "{list:?}");
    let reference: String = sqlx::query_scalar("SELECT reference FROM reports WHERE id = $1")
        .bind(good)
        .fetch_one(&app.pool)
        .await
        .expect("reference");
    assert_eq!(list[0]["service_request_id"], reference.as_str());
    assert!(unmappable(&app, "reports").await > before);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_geojson_export_skips_an_unmappable_report(pool: PgPool) {
    let (app, good, _bad) = with_bad_row(pool).await;
    let before = unmappable(&app, "exports").await;
    let res = app
        .client
        .get(app.url("/api/v1/export/incidents.geojson"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = serde_json::from_str(&res.text().await.expect("complete body"))
        .expect("a well-formed FeatureCollection");
    assert_eq!(ids(&body), [good.to_string()]);
    assert!(unmappable(&app, "exports").await > before);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn ogc_items_skip_an_unmappable_report(pool: PgPool) {
    let (app, good, bad) = with_bad_row(pool).await;
    let before = unmappable(&app, "exports").await;
    let (status, page) = app
        .get_json("/ogc/collections/incidents/items?f=json")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [good.to_string()]);
    let (status, _) = app
        .get_json(&format!("/ogc/collections/incidents/items/{bad}?f=json"))
        .await;
    assert_eq!(status, 404);
    assert!(unmappable(&app, "exports").await > before);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn sync_drops_a_report_whose_location_became_unmappable(pool: PgPool) {
    restore_old_check(&pool).await;
    let app = TestApp::spawn(pool.clone()).await;
    let kept = post(&app).await;
    let broken = post(&app).await;
    let index = &app.state.spatial_index;
    assert!(index.get(broken).is_some());
    let before = unmappable(&app, "spatial_index").await;
    empty_location(&pool, broken).await;
    // Reconciliation and a notification both meet the row; neither may fail.
    index
        .reconcile(&pool, &app.state.catalogue)
        .await
        .expect("reconcile");
    let seq: i64 = sqlx::query_scalar("SELECT change_seq FROM reports WHERE id = $1")
        .bind(broken)
        .fetch_one(&pool)
        .await
        .expect("seq");
    index
        .apply_notifications(
            &pool,
            &app.state.catalogue,
            &[format!("{broken} {}", seq + 1)],
        )
        .await
        .expect("notification");
    assert!(index.get(broken).is_none());
    assert!(index.get(kept).is_some());
    assert!(unmappable(&app, "spatial_index").await > before);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_location_check_refuses_an_empty_point_and_a_line(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let id = post(&app).await;
    let err = sqlx::query(
        "UPDATE reports SET location = 'SRID=4326;POINT EMPTY'::geometry WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect_err("POINT EMPTY refused");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("reports_location_valid"),
        "{err}"
    );
    // The column's type already refuses a line; the CHECK itself, asked directly, does too.
    sqlx::query(
        "UPDATE reports SET location = 'SRID=4326;LINESTRING(0 0, 1 1)'::geometry WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect_err("LineString refused");
    let check: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'reports_location_valid'",
    )
    .fetch_one(&pool)
    .await
    .expect("constraint");
    let holds = |wkt: &'static str| {
        let sql = format!(
            "SELECT {} FROM (SELECT $1::geometry AS location) r",
            check.trim_start_matches("CHECK ")
        );
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<bool>>(&sql)
                .bind(wkt)
                .fetch_one(&pool)
                .await
                .expect("evaluate the CHECK")
        }
    };
    assert_eq!(holds("SRID=4326;POINT(-118.2 34.05)").await, Some(true));
    assert_eq!(holds("SRID=4326;POINT EMPTY").await, Some(false));
    assert_eq!(holds("SRID=4326;LINESTRING(0 0, 1 1)").await, Some(false));
    assert_eq!(holds("SRID=4326;MULTIPOINT((0 0))").await, Some(false));
}

/// The migrator as it was before 0013: a scratch copy of the migrations up to 0012.
async fn migrator_before_0013() -> sqlx::migrate::Migrator {
    let dir = std::env::temp_dir().join(format!("citypin-before-0013-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for entry in std::fs::read_dir(crate::helpers::workspace().join("migrations")).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if path.extension().is_some_and(|e| e == "sql") && name.as_str() < "0013" {
            std::fs::copy(&path, dir.join(&name)).expect("copy");
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .expect("migrator");
    std::fs::remove_dir_all(&dir).expect("remove scratch dir");
    migrator
}

/// Whether `reports_location_valid` has been validated against every row.
async fn check_validated(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT convalidated FROM pg_constraint WHERE conname = 'reports_location_valid'",
    )
    .fetch_one(pool)
    .await
    .expect("constraint")
}

async fn migrate_holding(pool: PgPool, wkt: &str) -> bool {
    migrator_before_0013()
        .await
        .run(&pool)
        .await
        .expect("0001–0012");
    sqlx::query(
        "INSERT INTO services (service_code, service_name, group_name, agency)
         VALUES ('pothole', 'Pothole', 'Streets', 'Streets')",
    )
    .execute(&pool)
    .await
    .expect("service");
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO reports (id, reference, service_code, status, channel, location, h3_cell,
             requested_at, updated_at)
         VALUES ($1, 'CP-OLDROW01', 'pothole', 'new', 'web', $2::geometry, 0, now(), now())",
    )
    .bind(id)
    .bind(wkt)
    .execute(&pool)
    .await
    .expect("a row 0001's CHECK accepts");
    citypin::db::MIGRATOR
        .run(&pool)
        .await
        .expect("0013 never fails on old rows");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM reports WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(kept, 1, "a row already accepted is never deleted");
    check_validated(&pool).await
}

#[sqlx::test(migrations = false)]
async fn migration_0013_keeps_an_existing_empty_point_and_leaves_the_check_not_valid(pool: PgPool) {
    assert!(!migrate_holding(pool, "SRID=4326;POINT EMPTY").await);
}

#[sqlx::test(migrations = false)]
async fn migration_0013_validates_the_check_when_every_row_is_a_point(pool: PgPool) {
    assert!(migrate_holding(pool.clone(), "SRID=4326;POINT(-118.2 34.05)").await);
    sqlx::query("UPDATE reports SET location = 'SRID=4326;POINT EMPTY'::geometry")
        .execute(&pool)
        .await
        .expect_err("the validated CHECK refuses POINT EMPTY");
}
