//! Exports and the OGC API, driven by real clients: GDAL's `ogrinfo` / `ogr2ogr` (OAPIF,
//! `GeoJSON`, `GeoJSONSeq`, CSV) and the independent `@placemarkio/check-geojson` checker, against
//! the real server with the Los Angeles sample imported.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use citypin::auth::Role;
use citypin::config::shared_data;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, cases, key, pothole, workspace};

/// Imports the LA sample (30,000 GeoReport rows) and the council districts.
async fn la_sample(app: &TestApp) {
    app.import_la_sample().await;
    citypin::ogc::areas::load_file(
        &app.pool,
        &shared_data::file(shared_data::LA_COUNCIL_DISTRICTS),
    )
    .await
    .expect("areas");
}

async fn public_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM reports WHERE NOT hidden")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// A fresh directory for one test's files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("citypin-exports-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs a command to completion without blocking the server's runtime; panics with its
/// output if it fails.
async fn run(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} could not start ({e}); run scripts/install-deps.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `Feature Count` `ogrinfo` reports for a layer.
async fn ogr_count(file: &Path, layer: &str) -> i64 {
    let info = run(
        "ogrinfo",
        &["-ro", "-so", &file.display().to_string(), layer],
    )
    .await;
    info.lines()
        .find_map(|l| l.strip_prefix("Feature Count: "))
        .unwrap_or_else(|| panic!("no feature count in {info}"))
        .trim()
        .parse()
        .expect("a count")
}

async fn download(app: &TestApp, path: &str, to: &Path) -> reqwest::header::HeaderMap {
    let res = app.client.get(app.url(path)).send().await.expect("request");
    assert_eq!(res.status(), 200, "{path}");
    let headers = res.headers().clone();
    std::fs::write(to, res.bytes().await.expect("body")).expect("write");
    headers
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn ogrinfo_lists_the_three_collections(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.post_report(&pothole(), &key()).await;
    let out = run("ogrinfo", &["-ro", &format!("OAPIF:{}", app.url("/ogc"))]).await;
    for layer in ["incidents", "areas", "hotspots"] {
        assert!(out.contains(layer), "{layer} missing from:\n{out}");
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn ogr2ogr_copies_the_incidents_into_a_geopackage_as_postgis_holds_them(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    la_sample(&app).await;
    let dir = scratch();
    let gpkg = dir.join("incidents.gpkg");
    run(
        "ogr2ogr",
        &[
            "-f",
            "GPKG",
            gpkg.to_str().unwrap(),
            &format!("OAPIF:{}", app.url("/ogc")),
            "incidents",
            "-oo",
            "PAGE_SIZE=5000",
        ],
    )
    .await;
    assert_eq!(
        ogr_count(&gpkg, "incidents").await,
        public_count(&app).await
    );

    // A sample of attribute values, read back from the GeoPackage, equals PostGIS.
    let geojson = dir.join("back.geojson");
    run(
        "ogr2ogr",
        &[
            "-f",
            "GeoJSON",
            geojson.to_str().unwrap(),
            gpkg.to_str().unwrap(),
            "-sql",
            "SELECT * FROM incidents ORDER BY reference LIMIT 200",
        ],
    )
    .await;
    let back: Value = serde_json::from_str(&std::fs::read_to_string(&geojson).unwrap()).unwrap();
    let features = back["features"].as_array().unwrap();
    assert_eq!(features.len(), 200);
    for f in features {
        let p = &f["properties"];
        let reference = p["reference"].as_str().unwrap();
        let (code, status, agency, lon, lat): (String, String, Option<String>, f64, f64) =
            sqlx::query_as(
                "SELECT service_code, status, agency, ST_X(location), ST_Y(location) FROM reports WHERE reference = $1",
            )
            .bind(reference)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(p["service_code"], code.as_str());
        assert_eq!(p["status"], status.as_str());
        // Operational fields are not public.
        assert!(p.get("agency").is_none(), "{p} has agency {agency:?}");
        let c = &f["geometry"]["coordinates"];
        assert!((c[0].as_f64().unwrap() - lon).abs() < 1e-7, "{c} vs {lon}");
        assert!((c[1].as_f64().unwrap() - lat).abs() < 1e-7, "{c} vs {lat}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn every_file_export_loads_in_ogr2ogr_and_passes_the_geojson_checker(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    la_sample(&app).await;
    let expected = public_count(&app).await;
    let dir = scratch();
    for (ext, driver_opts) in [
        ("geojson", vec![]),
        ("geojsonl", vec![]),
        (
            "csv",
            vec![
                "-oo",
                "X_POSSIBLE_NAMES=lon",
                "-oo",
                "Y_POSSIBLE_NAMES=lat",
                "-oo",
                "KEEP_GEOM_COLUMNS=NO",
            ],
        ),
    ] {
        let file = dir.join(format!("incidents.{ext}"));
        let headers = download(&app, &format!("/api/v1/export/incidents.{ext}"), &file).await;
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"incidents-")
                && disposition.ends_with(&format!(".{ext}\"")),
            "{disposition}"
        );
        let gpkg = dir.join(format!("{ext}.gpkg"));
        let mut args = vec!["-f", "GPKG", gpkg.to_str().unwrap(), file.to_str().unwrap()];
        args.extend(driver_opts);
        args.extend(["-nln", "incidents"]);
        run("ogr2ogr", &args).await;
        assert_eq!(ogr_count(&gpkg, "incidents").await, expected, "{ext}");
    }
    let checker = workspace().join("tests/tools/check-geojson.mjs");
    let out = run(
        "node",
        &[
            checker.to_str().unwrap(),
            dir.join("incidents.geojson").to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.starts_with("ok: 1 documents"), "{out}");
    let out = run(
        "node",
        &[
            checker.to_str().unwrap(),
            dir.join("incidents.geojsonl").to_str().unwrap(),
            "--seq",
        ],
    )
    .await;
    assert!(
        out.starts_with(&format!("ok: {expected} documents")),
        "{out}"
    );

    // RFC 7946: no crs member, longitude first (LA is west and north), at most 7 decimals.
    let text = std::fs::read_to_string(dir.join("incidents.geojson")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc.get("crs").is_none());
    for f in doc["features"].as_array().unwrap().iter().take(1000) {
        let c = &f["geometry"]["coordinates"];
        assert!(
            c[0].as_f64().unwrap() < -117.0 && c[1].as_f64().unwrap() > 33.0,
            "{c}"
        );
        for v in c.as_array().unwrap() {
            let s = v.to_string();
            assert!(s.split('.').nth(1).map_or(0, str::len) <= 7, "{s}");
        }
        let t = f["properties"]["requested_at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn filters_narrow_items_and_exports_as_postgis_counts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    la_sample(&app).await;
    let sql = |cond: &str| format!("SELECT count(*) FROM reports WHERE NOT hidden AND {cond}");
    let cases = [
        (
            "bbox=-118.3,34.0,-118.2,34.1",
            // Exactly the points in the box: `&&` alone compares single-precision boxes.
            "ST_Intersects(location, ST_MakeEnvelope(-118.3, 34.0, -118.2, 34.1, 4326))",
        ),
        (
            "datetime=2018-12-28T00:00:00Z/2018-12-29T12:00:00%2B02:00",
            "requested_at BETWEEN '2018-12-28T00:00:00Z' AND '2018-12-29T12:00:00+02:00'",
        ),
        (
            "datetime=../2018-01-01T00:00:00Z",
            "requested_at <= '2018-01-01T00:00:00Z'",
        ),
        (
            "datetime=2020-01-02T00:00:00Z/..",
            "requested_at >= '2020-01-02T00:00:00Z'",
        ),
        (
            "service_code=graffiti-removal,bulky-items",
            "service_code IN ('graffiti-removal', 'bulky-items')",
        ),
        (
            "status=new,acknowledged,scheduled,in_progress",
            "status IN ('new', 'acknowledged', 'scheduled', 'in_progress')",
        ),
    ];
    for (query, cond) in cases {
        let expected: i64 = sqlx::query_scalar(&sql(cond))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert!(expected > 0, "{cond} matches nothing: a useless case");
        let (status, page) = app
            .get_json(&format!(
                "/ogc/collections/incidents/items?limit=10&{query}"
            ))
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(page["numberMatched"], expected, "{query}");
        assert_eq!(page["numberReturned"], 10.min(expected), "{query}");
        let seq = app
            .client
            .get(app.url(&format!("/api/v1/export/incidents.geojsonl?{query}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(seq.lines().count() as i64, expected, "{query}");
    }
    // start/end on the exports mean the same as a datetime interval.
    let seq = app
        .get_text(
            "/api/v1/export/incidents.csv?start=2018-12-30T00:00:00Z&end=2018-12-31T12:00:00Z",
        )
        .await;
    let expected: i64 = sqlx::query_scalar(&sql(
        "requested_at BETWEEN '2018-12-30T00:00:00Z' AND '2018-12-31T12:00:00Z'",
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let mut reader = csv::Reader::from_reader(seq.as_bytes());
    assert_eq!(reader.records().count() as i64, expected);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn next_links_page_through_every_item_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for i in 0..11 {
        let mut r = pothole();
        r["lat"] = json!(34.05 + f64::from(i) * 0.001);
        assert_eq!(app.post_report(&r, &key()).await.0, 201);
    }
    let mut url = app.url("/ogc/collections/incidents/items?limit=4&status=new");
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        if pages == 1 {
            assert_eq!(page["numberMatched"], 11);
        } else {
            assert!(
                page.get("numberMatched").is_none(),
                "counted once, not per page"
            );
        }
        assert!(page["timeStamp"].as_str().unwrap().ends_with('Z'));
        for f in page["features"].as_array().unwrap() {
            assert!(
                seen.insert(f["id"].as_str().unwrap().to_owned()),
                "seen twice: {f}"
            );
        }
        let next = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .map(|l| l["href"].as_str().unwrap().to_owned());
        match next {
            Some(n) => {
                assert!(n.contains("status=new") && n.contains("cursor="), "{n}");
                url = n;
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (11, 3));
    // A single item, by the id the page gave.
    let id = seen.iter().next().unwrap();
    let (status, f) = app
        .get_json(&format!("/ogc/collections/incidents/items/{id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(&f["id"], id.as_str());
    assert!(
        f["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "collection")
    );
    let (status, _) = app
        .get_json("/ogc/collections/incidents/items/0190aaaa-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
}

/// Twice the signed area of a ring: positive when counter-clockwise.
fn signed_area2(ring: &Value) -> f64 {
    let pts: Vec<(f64, f64)> = ring
        .as_array()
        .expect("a ring")
        .iter()
        .map(|p| (p[0].as_f64().expect("lon"), p[1].as_f64().expect("lat")))
        .collect();
    pts.windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum()
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn areas_and_hotspots_follow_the_right_hand_rule_and_hotspots_count_every_incident(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    la_sample(&app).await;
    let (status, areas) = app.get_json("/ogc/collections/areas/items").await;
    assert_eq!(status, 200, "{areas}");
    assert_eq!(areas["numberMatched"], 15);
    for f in areas["features"].as_array().unwrap() {
        assert_eq!(f["geometry"]["type"], "MultiPolygon");
        for polygon in f["geometry"]["coordinates"].as_array().unwrap() {
            for (i, ring) in polygon.as_array().unwrap().iter().enumerate() {
                let a = signed_area2(ring);
                assert!(
                    if i == 0 { a > 0.0 } else { a < 0.0 },
                    "{} ring {i}",
                    f["id"]
                );
            }
        }
    }
    let (_, hot) = app
        .get_json("/ogc/collections/hotspots/items?resolution=6&limit=10000")
        .await;
    let total: i64 = hot["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let ring = &f["geometry"]["coordinates"][0];
            assert!(signed_area2(ring) > 0.0, "{f}");
            assert_eq!(f["properties"]["resolution"], 6);
            f["properties"]["count"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(total, public_count(&app).await);
    let first = &hot["features"][0];
    let (status, one) = app
        .get_json(&format!(
            "/ogc/collections/hotspots/items/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["properties"]["count"], first["properties"]["count"]);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn no_export_or_collection_carries_personal_data_whoever_asks(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut report = pothole();
    report["description"] = json!("=HYPERLINK(\"http://evil.example\")");
    report["contact"] = json!({
        "name": "Zebulon Quaxworth", "email": "zebulon.q@private.example",
        "phone": "+1 555 0199 4242", "consent": true, "notify": true
    });
    let (status, created) = app.post_report(&report, &key()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let analyst = app.token(Role::Analyst).await;
    let hot: Value = app.get_json("/ogc/collections/hotspots/items").await.1;
    let cell = hot["features"][0]["id"].as_str().unwrap().to_owned();
    let paths = [
        "/api/v1/export/incidents.geojson".to_owned(),
        "/api/v1/export/incidents.geojsonl".to_owned(),
        "/api/v1/export/incidents.csv".to_owned(),
        "/ogc".to_owned(),
        "/ogc/collections".to_owned(),
        "/ogc/collections/incidents".to_owned(),
        "/ogc/collections/incidents/items".to_owned(),
        "/ogc/collections/incidents/items?f=html".to_owned(),
        format!("/ogc/collections/incidents/items/{id}"),
        format!("/ogc/collections/incidents/items/{id}?f=html"),
        "/ogc/collections/hotspots/items".to_owned(),
        format!("/ogc/collections/hotspots/items/{cell}"),
        "/ogc/collections/areas/items".to_owned(),
    ];
    let secrets = [
        "Zebulon",
        "Quaxworth",
        "zebulon.q",
        "private.example",
        "555 0199 4242",
    ];
    for token in [None, Some(&analyst)] {
        for path in &paths {
            let mut req = app.client.get(app.url(path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
            let body = res.text().await.unwrap();
            for s in secrets {
                assert!(
                    !body.contains(s),
                    "{path} (analyst: {}) shows {s:?}",
                    token.is_some()
                );
            }
            if path.contains("incidents") && !path.ends_with("/incidents") {
                assert!(
                    body.contains(created["reference"].as_str().unwrap()),
                    "{path}"
                );
            }
        }
    }
    // The analyst sees the operational fields, the public does not; neither sees the reporter.
    let public: Value = app
        .get_json(&format!("/ogc/collections/incidents/items/{id}"))
        .await
        .1;
    assert!(public["properties"].get("agency").is_none());
    let op: Value = app
        .client
        .get(app.url(&format!("/ogc/collections/incidents/items/{id}")))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(op["properties"]["agency"].is_string(), "{op}");
    assert!(op["properties"].get("reporter_id").is_none());
    // The description cannot run as a formula in a spreadsheet.
    let csv = app.get_text("/api/v1/export/incidents.csv").await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = header.iter().position(|h| h == "description").unwrap();
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[col], "'=HYPERLINK(\"http://evil.example\")");
}

/// A bad parameter is a 400 problem+json naming it.
async fn a_parameter_is_refused(pool: PgPool, path: &str, field: &str) {
    let app = TestApp::spawn(pool).await;
    let res = app.client.get(app.url(path)).send().await.expect("request");
    assert_eq!(res.status(), 400, "{path}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
}

cases! { async a_parameter_is_refused {
    an_items_bbox_of_three_numbers_is_a_400_naming_bbox:
        "/ogc/collections/incidents/items?bbox=1,2,3", "bbox";
    an_items_limit_of_zero_is_a_400_naming_limit:
        "/ogc/collections/incidents/items?limit=0", "limit";
    an_items_datetime_that_is_not_a_date_is_a_400_naming_datetime:
        "/ogc/collections/incidents/items?datetime=yesterday", "datetime";
    an_unknown_items_status_is_a_400_naming_status:
        "/ogc/collections/incidents/items?status=lost", "status";
    a_cursor_that_is_not_ours_is_a_400_naming_cursor:
        "/ogc/collections/incidents/items?cursor=xyz", "cursor";
    an_unknown_items_parameter_is_a_400_naming_it:
        "/ogc/collections/incidents/items?colour=red", "colour";
    a_status_filter_on_areas_is_a_400_naming_status:
        "/ogc/collections/areas/items?status=open", "status";
    a_hotspot_resolution_past_the_stored_one_is_a_400_naming_resolution:
        "/ogc/collections/hotspots/items?resolution=12", "resolution";
    an_unsupported_output_format_is_a_400_naming_f: "/ogc/collections?f=xml", "f";
    an_export_start_that_is_not_a_date_is_a_400_naming_start:
        "/api/v1/export/incidents.csv?start=tomorrow", "start";
    an_export_bbox_whose_south_is_above_its_north_is_a_400_naming_bbox:
        "/api/v1/export/incidents.geojson?bbox=0,10,1,5", "bbox";
}}

/// An unknown collection is a 404.
async fn is_not_found(pool: PgPool, path: &str) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.get_json(path).await.0, 404);
}

cases! { async is_not_found {
    an_unknown_collection_is_a_404: "/ogc/collections/parcels";
    the_items_of_an_unknown_collection_are_a_404: "/ogc/collections/parcels/items";
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn pages_are_json_by_default_and_html_for_browsers(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, landing) = app.get_json("/ogc").await;
    assert_eq!(status, 200);
    let rels: Vec<&str> = landing["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    for rel in ["self", "service-desc", "conformance", "data"] {
        assert!(rels.contains(&rel), "{rel} missing: {rels:?}");
    }
    let (_, conf) = app.get_json("/ogc/conformance").await;
    assert!(
        conf["conformsTo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().ends_with("/conf/geojson"))
    );
    let api = app.client.get(app.url("/ogc/api")).send().await.unwrap();
    assert!(
        api.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/vnd.oai.openapi+json")
    );
    let api: Value = api.json().await.unwrap();
    assert_eq!(api["openapi"], "3.0.3");
    let items = app
        .client
        .get(app.url("/ogc/collections/incidents/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(items.headers()["content-type"], "application/geo+json");
    let html = app
        .client
        .get(app.url("/ogc/collections"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().await.unwrap().contains("<h1>Collections</h1>"));
}

/// Points a fraction of a metre outside a bbox, closer than the single-precision boxes the
/// `&&` operator compares (at 118° W their step is 7.6e-6°, about 0.7 m).
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_bbox_keeps_exactly_the_points_inside_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (lon, lat) = (-118.243_7, 34.052_2);
    for dlon in [0.0, 3e-6] {
        let mut body = pothole();
        body["lon"] = json!(lon + dlon);
        body["lat"] = json!(lat);
        body["service_code"] = json!(if dlon == 0.0 {
            "pothole"
        } else {
            "graffiti-removal"
        });
        let (status, created) = app.post_report(&body, &key()).await;
        assert_eq!(status, 201, "{created}");
    }
    let bbox = format!(
        "{},{},{},{}",
        lon - 0.01,
        lat - 0.01,
        lon + 1e-6,
        lat + 0.01
    );
    for path in [
        format!("/api/v1/export/incidents.geojson?bbox={bbox}"),
        format!("/ogc/collections/incidents/items?f=json&bbox={bbox}"),
        format!("/open311/v2/requests.json?bbox={bbox}&source=index"),
    ] {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let codes: Vec<&str> = match page.get("features").and_then(Value::as_array) {
            Some(features) => features
                .iter()
                .filter_map(|f| f["properties"]["service_code"].as_str())
                .collect(),
            None => page
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|r| r["service_code"].as_str())
                .collect(),
        };
        assert_eq!(
            codes,
            ["pothole"],
            "{path}: the point 0.3 m east of the box is outside"
        );
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_plain_date_means_that_whole_day_in_tiles_exports_and_ogc_alike(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    la_sample(&app).await;
    let whole_day =
        "requested_at >= '2018-12-28T00:00:00Z' AND requested_at < '2018-12-29T00:00:00Z'";
    let expected: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM reports WHERE NOT hidden AND {whole_day}"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert!(expected > 0, "a day with reports");
    let (status, page) = app
        .get_json("/ogc/collections/incidents/items?f=json&limit=1&datetime=2018-12-28")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["numberMatched"], expected);
    let seq = app
        .get_text("/api/v1/export/incidents.geojsonl?start=2018-12-28&end=2018-12-28")
        .await;
    assert_eq!(seq.lines().count() as i64, expected);
    let (status, page) = app
        .get_json("/ogc/collections/incidents/items?f=json&limit=1&datetime=2018-12-28/2018-12-28")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["numberMatched"], expected,
        "an interval of dates ends with the last day"
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_csv_export_carries_a_utf8_mark_so_spreadsheets_keep_accents(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut body = pothole();
    body["description"] = json!("Nid-de-poule près de l'école, ulica Świdnicka");
    let (status, _) = app.post_report(&body, &key()).await;
    assert_eq!(status, 201);
    let bytes = app
        .client
        .get(app.url("/api/v1/export/incidents.csv"))
        .send()
        .await
        .expect("export")
        .bytes()
        .await
        .expect("body");
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "a UTF-8 byte order mark first"
    );
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    assert!(text.starts_with("id,"), "then the header: {}", &text[..40]);
    assert!(text.contains("Nid-de-poule près de l'école, ulica Świdnicka"));
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn ogc_status_is_the_detailed_status_by_equality_and_open311_status_the_grouping(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    la_sample(&app).await;
    let count = |cond: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!(
                "SELECT count(*) FROM reports WHERE NOT hidden AND {cond}"
            ))
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    let open = count("status IN ('new', 'acknowledged', 'scheduled', 'in_progress')").await;
    let new = count("status = 'new'").await;
    assert!(
        open > new && new > 0,
        "open {open}, new {new}: a useful sample"
    );
    let matched = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app
                .get_json(&format!(
                    "/ogc/collections/incidents/items?f=json&limit=1&{query}"
                ))
                .await;
            assert_eq!(status, 200, "{query}: {page}");
            page["numberMatched"].as_i64().expect("numberMatched")
        }
    };
    assert_eq!(matched("status=new").await, new);
    assert_eq!(matched("open311_status=open").await, open);
    assert_eq!(matched("open311_status=open&status=new").await, new);
    assert_eq!(matched("open311_status=closed&status=new").await, 0);
    // GDAL sends `-where "status='open'"` as status=open: not a status, and the answer says
    // which queryable holds it.
    let (status, problem) = app
        .get_json("/ogc/collections/incidents/items?f=json&status=open")
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "status");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("open311_status")
    );
    // The native exports keep the grouping names.
    let seq = app
        .get_text("/api/v1/export/incidents.geojsonl?status=open")
        .await;
    assert_eq!(seq.lines().count() as i64, open);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_ogc_openapi_document_declares_only_what_each_collection_takes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, doc) = app.get_json("/ogc/api").await;
    assert_eq!(status, 200);
    let names = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} is documented"))
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    let hotspots = names("/collections/hotspots/items");
    let incidents = names("/collections/incidents/items");
    let areas = names("/collections/areas/items");
    assert!(hotspots.contains(&"resolution".to_owned()));
    assert!(!incidents.contains(&"resolution".to_owned()));
    assert!(incidents.contains(&"open311_status".to_owned()));
    assert_eq!(areas, ["bbox", "limit", "cursor", "f"]);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_script_in_a_description_is_escaped_text_in_the_ogc_html_pages(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut report = pothole();
    report["description"] = json!("<script>alert(1)</script>");
    let (status, created) = app.post_report(&report, &key()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    for path in [
        format!("/ogc/collections/incidents/items/{id}?f=html"),
        "/ogc/collections/incidents/items?f=html".to_owned(),
    ] {
        let html = app.get_text(&path).await;
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {html}"
        );
        assert!(!html.contains("<script"), "{path}: {html}");
    }
}
