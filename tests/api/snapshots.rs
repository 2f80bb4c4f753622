//! Export snapshots: files GDAL opens over HTTP (`/vsicurl/`, which needs a length and byte
//! ranges), single byte ranges and conditional requests by hand, public fields only, and one
//! writer per generation among replicas (two `citypin serve` processes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use citypin::config::Settings;
use citypin::exports::snapshots::{self, Outcome};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, cases, key, pothole};
use crate::process::{ServeProcess, database_url};

const GEOJSON: &str = "/api/v1/export/snapshots/incidents.geojson";

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("citypin-snapshots-{}", uuid::Uuid::new_v4()))
}

/// A server whose snapshots go to a directory of the test's own.
async fn app_with_snapshots(pool: PgPool) -> (TestApp, PathBuf) {
    let dir = scratch();
    let settings = Settings {
        snapshot_dir: Some(dir.clone()),
        ..Settings::default()
    };
    (TestApp::spawn_with(pool, settings).await, dir)
}

/// Writes a generation now (interval zero: always due); waits while the server's own
/// background job holds the claim (it writes one at start-up).
async fn generate(app: &TestApp, dir: &Path) -> (i64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match snapshots::run_once(&app.pool, &app.state.catalogue, dir, Duration::ZERO)
            .await
            .expect("generation")
        {
            Outcome::Generated {
                generation,
                features,
            } => return (generation, features),
            Outcome::Busy | Outcome::Fresh => {
                assert!(Instant::now() < deadline, "the claim was never free");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn public_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM reports WHERE NOT hidden")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// `ogrinfo -ro -al -so /vsicurl/URL`: GDAL reads the file over HTTP by ranges; its feature count.
async fn vsicurl_count(url: &str) -> i64 {
    let out = tokio::process::Command::new("ogrinfo")
        .args(["-ro", "-al", "-so", &format!("/vsicurl/{url}")])
        // No listing of the "directory" (a route, not a folder), no retries to hide a failure.
        .env("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
        .env("GDAL_HTTP_MAX_RETRY", "0")
        .output()
        .await
        .expect("ogrinfo runs (scripts/install-deps.sh installs gdal-bin)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ogrinfo {url}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Feature Count: "))
        .unwrap_or_else(|| panic!("no feature count in {stdout}"))
        .trim()
        .parse()
        .expect("a count")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn gdal_opens_every_snapshot_over_vsicurl_with_every_public_incident(pool: PgPool) {
    let (app, dir) = app_with_snapshots(pool).await;
    app.import_la_sample().await;
    sqlx::query("UPDATE reports SET hidden = true WHERE id IN (SELECT id FROM reports LIMIT 3)")
        .execute(&app.pool)
        .await
        .expect("hide three");
    let (_, features) = generate(&app, &dir).await;
    let public = public_count(&app).await;
    assert_eq!(features as i64, public);
    for name in ["incidents.geojson", "incidents.geojsonl", "incidents.csv"] {
        let url = app.url(&format!("/api/v1/export/snapshots/{name}"));
        assert_eq!(vsicurl_count(&url).await, public, "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_snapshot_holds_the_public_fields_only(pool: PgPool) {
    let (app, dir) = app_with_snapshots(pool).await;
    let mut report = pothole();
    report["contact"] = json!({
        "name": "Snapshot Reporter", "email": "snap@example.org",
        "phone": "+1 213 555 0199", "consent": true
    });
    assert_eq!(app.post_report(&report, &key()).await.0, 201);
    sqlx::query("UPDATE reports SET agency = 'Streets', external_id = 'EXT-9'")
        .execute(&app.pool)
        .await
        .expect("operational fields");
    generate(&app, &dir).await;
    for name in ["incidents.geojson", "incidents.geojsonl", "incidents.csv"] {
        let text = app
            .get_text(&format!("/api/v1/export/snapshots/{name}"))
            .await;
        assert!(text.contains("Deep pothole"), "{name}: {text}");
        for private in [
            "Snapshot Reporter",
            "snap@example.org",
            "555 0199",
            "agency",
            "Streets",
            "EXT-9",
        ] {
            assert!(!text.contains(private), "{name} holds {private:?}");
        }
    }
    let csv = app.get_text("/api/v1/export/snapshots/incidents.csv").await;
    let header = csv.trim_start_matches('\u{feff}').lines().next().unwrap();
    assert_eq!(
        header,
        citypin::exports::model::csv_header(citypin::exports::model::Fields::Public).join(",")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A server with two reports and one generation written; the snapshot's bytes and headers.
async fn written(pool: PgPool) -> (TestApp, PathBuf, Vec<u8>, reqwest::header::HeaderMap) {
    let (app, dir) = app_with_snapshots(pool).await;
    for _ in 0..2 {
        assert_eq!(app.post_report(&pothole(), &key()).await.0, 201);
    }
    generate(&app, &dir).await;
    let res = get_with(&app, &[]).await;
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("body").to_vec();
    (app, dir, body, headers)
}

async fn get_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url(GEOJSON));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_snapshot_has_a_length_a_strong_etag_and_a_date(pool: PgPool) {
    let (app, dir, body, h) = written(pool).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["features"].as_array().unwrap().len(), 2);
    assert_eq!(h["content-length"], body.len().to_string().as_str());
    assert_eq!(h["content-type"], "application/geo+json");
    assert_eq!(h["accept-ranges"], "bytes");
    let etag = h["etag"].to_str().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(httpdate::parse_http_date(h["last-modified"].to_str().unwrap()).is_ok());
    let head = app
        .client
        .head(app.url(GEOJSON))
        .send()
        .await
        .expect("request");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], h["content-length"]);
    assert_eq!(head.headers()["etag"], etag);
    assert!(head.bytes().await.expect("body").is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn one_range_answers_206_with_those_bytes(pool: PgPool) {
    let (app, dir, body, h) = written(pool).await;
    let len = body.len();
    for (range, from, to) in [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len - 1),
        ("bytes=-10", len - 10, len - 1),
        ("bytes=10-999999", 10, len - 1),
    ] {
        let res = get_with(&app, &[("Range", range)]).await;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes {from}-{to}/{len}").as_str()
        );
        assert_eq!(res.headers()["etag"], h["etag"]);
        assert_eq!(
            res.headers()["content-length"],
            (to - from + 1).to_string().as_str()
        );
        assert_eq!(res.bytes().await.expect("body"), body[from..=to], "{range}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn a_range_past_the_end_is_416(pool: PgPool, range: fn(usize) -> String) {
    let (app, dir, body, _) = written(pool).await;
    let res = get_with(&app, &[("Range", &range(body.len()))]).await;
    assert_eq!(res.status(), 416);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes */{}", body.len()).as_str()
    );
    let _ = std::fs::remove_dir_all(dir);
}

cases! { async a_range_past_the_end_is_416 {
    a_range_starting_at_the_length_is_416: |len| format!("bytes={len}-");
    a_range_starting_past_the_length_is_416: |len| format!("bytes={}-{}", len + 10, len + 20);
    a_zero_length_suffix_is_416: |_| "bytes=-0".to_owned();
}}

async fn the_whole_file_is_sent(pool: PgPool, range: &str) {
    let (app, dir, body, _) = written(pool).await;
    let res = get_with(&app, &[("Range", range)]).await;
    assert_eq!(res.status(), 200, "{range}");
    assert!(res.headers().get("content-range").is_none());
    assert_eq!(res.bytes().await.expect("body"), body);
    let _ = std::fs::remove_dir_all(dir);
}

cases! { async the_whole_file_is_sent {
    several_ranges_get_the_whole_file: "bytes=0-9,20-29";
    a_malformed_range_is_ignored: "bytes=abc";
    another_unit_is_ignored: "lines=0-9";
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn conditional_requests_follow_the_etag_and_the_date(pool: PgPool) {
    let (app, dir, body, h) = written(pool).await;
    let etag = h["etag"].to_str().unwrap().to_owned();
    let date = h["last-modified"].to_str().unwrap().to_owned();
    let res = get_with(&app, &[("If-None-Match", &etag)]).await;
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert_eq!(
        get_with(&app, &[("If-Modified-Since", &date)])
            .await
            .status(),
        304
    );
    assert_eq!(
        get_with(&app, &[("If-Match", "\"another\"")])
            .await
            .status(),
        412
    );
    assert_eq!(get_with(&app, &[("If-Match", &etag)]).await.status(), 200);
    // If-Range with the current tag: the range; with another: the whole (new) file.
    let part = get_with(&app, &[("Range", "bytes=0-9"), ("If-Range", &etag)]).await;
    assert_eq!(part.status(), 206);
    let whole = get_with(&app, &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")]).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.expect("body"), body);

    // A new generation is a new tag: the old one no longer gets 304 or a range.
    assert_eq!(app.post_report(&pothole(), &key()).await.0, 201);
    generate(&app, &dir).await;
    let res = get_with(&app, &[("If-None-Match", &etag)]).await;
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"], etag.as_str());
    let v: Value = serde_json::from_slice(&res.bytes().await.expect("body")).unwrap();
    assert_eq!(v["features"].as_array().unwrap().len(), 3);
    let stale = get_with(&app, &[("Range", "bytes=0-9"), ("If-Range", &etag)]).await;
    assert_eq!(stale.status(), 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn no_snapshot_is_404_until_one_is_written_and_when_turned_off(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .get(app.url(GEOJSON))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_generation_is_skipped_while_another_replica_holds_the_claim(pool: PgPool) {
    // No background job here (the server has no snapshot directory): only this test claims.
    let app = TestApp::spawn(pool).await;
    let dir = scratch();
    generate(&app, &dir).await;
    let mut other = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM export_snapshots FOR UPDATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let run = |interval: u64| {
        snapshots::run_once(
            &app.pool,
            &app.state.catalogue,
            &dir,
            Duration::from_secs(interval),
        )
    };
    assert_eq!(run(0).await.unwrap(), Outcome::Busy);
    other.rollback().await.unwrap();
    // Fresh within the interval, whoever asks.
    assert_eq!(run(3600).await.unwrap(), Outcome::Fresh);
    // A file gone (a new, empty volume) makes it due again.
    std::fs::remove_file(dir.join("incidents.csv")).unwrap();
    let again = run(3600).await.unwrap();
    assert!(matches!(again, Outcome::Generated { .. }), "{again:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Two `citypin serve` processes sharing the database and the snapshot directory, a
/// generation due every second: every generation number is written by exactly one of them,
/// and both serve the same file.
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn two_replicas_write_each_generation_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.post_report(&pothole(), &key()).await.0, 201);
    let url = database_url(&app.pool).await;
    let dir = scratch();
    let env = [
        ("CITYPIN_SNAPSHOT_INTERVAL_SECS", "1".to_owned()),
        ("CITYPIN_SNAPSHOT_DIR", dir.display().to_string()),
    ];
    let mut a = ServeProcess::start(&url, &env).await;
    let mut b = ServeProcess::start(&url, &env).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let generation = || async {
        sqlx::query_scalar::<_, i64>("SELECT generation FROM export_snapshots")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    while generation().await < 4 {
        assert!(Instant::now() < deadline, "generations did not come");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = reqwest::Client::new();
    let mut served = Vec::new();
    for p in [&a, &b] {
        let res = client.get(p.url(GEOJSON)).send().await.expect("request");
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["features"].as_array().unwrap().len(), 1);
        served.push(v);
    }
    assert_eq!(served[0], served[1]);
    // Stopped, so every generation either wrote is in its log and none is written after.
    a.kill9().await;
    b.kill9().await;
    let numbers = |p: &ServeProcess| -> Vec<i64> {
        p.logged("export snapshots written")
            .iter()
            .filter_map(|l| l["fields"]["generation"].as_i64())
            .collect()
    };
    let (from_a, from_b) = (numbers(&a), numbers(&b));
    let mut all: Vec<i64> = from_a.iter().chain(&from_b).copied().collect();
    all.sort_unstable();
    let last = *all.last().unwrap();
    assert_eq!(
        all,
        (1..=last).collect::<Vec<_>>(),
        "a: {from_a:?}, b: {from_b:?}"
    );
    // A process killed between its commit and its log line leaves the last number unlogged.
    assert!(generation().await - last <= 1);
    let _ = std::fs::remove_dir_all(dir);
}
