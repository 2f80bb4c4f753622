//! The S3-compatible photo store against a real S3-protocol server over HTTP: s3rver (npm,
//! installed by scripts/install-deps.sh), started per test on 127.0.0.1 with a port of its own
//! choosing. The tests look into the bucket through its HTTP API, not through citypin's code.
//! s3rver checks the access key of a `SigV4` request but not the signature itself; the signing is
//! rusty-s3's, tested there against AWS's published examples.

use std::io::Cursor;
use std::process::Stdio;

use citypin::config::{PhotoStoreSetting, S3Settings, Secret, Settings};
use citypin::photos::fixtures;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, key, workspace};
use crate::photos::{contains, get_bytes, photo, post_report, report_form, served, small_jpeg};

const BUCKET: &str = "city-photos";
const PREFIX: &str = "citypin/";

/// A running s3rver with one empty bucket; killed when dropped.
struct S3rver {
    endpoint: String,
    _child: Child,
    dir: std::path::PathBuf,
}

impl Drop for S3rver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl S3rver {
    /// Waits for the server's "listening on" line to learn its port.
    async fn start() -> Self {
        let bin = workspace().join("tests/tools/node_modules/.bin/s3rver");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-deps.sh",
            bin.display()
        );
        let dir = std::env::temp_dir().join(format!("citypin-s3rver-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("s3rver dir");
        let mut child = Command::new(bin)
            .arg("-d")
            .arg(&dir)
            .args(["-a", "127.0.0.1", "-p", "0", "--configure-bucket", BUCKET])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start s3rver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("s3rver output") {
                if let Some(addr) = line.trim().strip_prefix("S3rver listening on ") {
                    return addr.to_owned();
                }
            }
            panic!("s3rver exited before listening");
        })
        .await
        .expect("s3rver did not start within 30 s");
        // Keep reading its request log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            endpoint: format!("http://{addr}"),
            _child: child,
            dir,
        }
    }

    fn settings(&self, secret: &str) -> Settings {
        store_settings(&self.endpoint, secret)
    }

    /// The keys in the bucket, listed by the server.
    async fn keys(&self) -> Vec<String> {
        let xml = reqwest::get(format!("{}/{BUCKET}?list-type=2", self.endpoint))
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        xml.split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap_or_default().to_owned())
            .collect()
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        let res = reqwest::get(format!("{}/{BUCKET}/{key}", self.endpoint))
            .await
            .expect("get object");
        assert_eq!(res.status(), 200, "{key}");
        res.bytes().await.expect("object body").to_vec()
    }
}

/// s3rver's built-in credentials are S3RVER / S3RVER.
fn store_settings(endpoint: &str, secret: &str) -> Settings {
    Settings {
        photo_store: PhotoStoreSetting::S3(Box::new(S3Settings {
            endpoint: endpoint.parse().expect("endpoint"),
            bucket: BUCKET.to_owned(),
            prefix: PREFIX.to_owned(),
            region: "us-east-1".to_owned(),
            path_style: true,
            access_key_id: "S3RVER".to_owned(),
            secret_access_key: Secret::new(secret),
            session_token: None,
        })),
        ..Settings::default()
    }
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_photo_lands_in_the_bucket_re_encoded_without_exif_and_is_served_from_it(pool: PgPool) {
    let s3 = S3rver::start().await;
    let app = TestApp::spawn_with(pool, s3.settings("S3RVER")).await;
    let tagged = fixtures::with_exif(
        &fixtures::jpeg(600, 400, |x, y| [(x % 256) as u8, (y % 256) as u8, 90]),
        Some(1),
        Some((48.8584, 2.2945)),
    );
    let (status, body) = post_report(
        &app,
        report_form().part("photo", photo(tagged.clone(), "IMG.JPG", "image/jpeg")),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let mut keys = s3.keys().await;
    keys.sort();
    assert_eq!(keys.len(), 2, "display and thumbnail: {keys:?}");
    let mut objects = Vec::new();
    for key in &keys {
        let bytes = s3.object(key).await;
        let hex = citypin::auth::hex(&Sha256::digest(&bytes));
        assert_eq!(*key, format!("{PREFIX}{}/{hex}.jpg", &hex[..2]));
        assert_ne!(bytes, tagged);
        assert!(
            exif::Reader::new()
                .read_from_container(&mut Cursor::new(&bytes))
                .is_err()
        );
        assert!(!contains(&bytes, b"Exif\0\0"));
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("a JPEG");
        objects.push(bytes);
    }

    let photo = &body["photos"][0];
    let (status, headers, display) = get_bytes(&app, photo["display_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = format!("\"{}\"", citypin::auth::hex(&Sha256::digest(&display)));
    assert_eq!(headers["etag"], etag.as_str());
    let mut served_bytes = served(&app, &body).await;
    served_bytes.sort();
    objects.sort();
    assert_eq!(served_bytes, objects);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn two_reports_with_the_same_photo_share_one_object(pool: PgPool) {
    let s3 = S3rver::start().await;
    let app = TestApp::spawn_with(pool, s3.settings("S3RVER")).await;
    for _ in 0..2 {
        let form = report_form().part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"));
        let (status, body) = post_report(&app, form).await;
        assert_eq!(status, 201, "{body}");
    }
    // At this size the display and the thumbnail are the same bytes: one object for all four.
    assert_eq!(s3.keys().await.len(), 1);
    let shared: i64 = sqlx::query_scalar("SELECT count(DISTINCT display_sha256) FROM photos")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((count(&app.pool, "photos").await, shared), (2, 1));
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_upload_whose_transaction_fails_leaves_its_objects_to_the_sweep(pool: PgPool) {
    let s3 = S3rver::start().await;
    let app = TestApp::spawn_with(pool, s3.settings("S3RVER")).await;
    // The photo rows are written after the objects and the report row: make them fail.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON photos FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let form = report_form().part(
        "photo",
        photo(fixtures::phone_photo(800, 600), "a.jpg", "image/jpeg"),
    );
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(count(&app.pool, "reports").await, 0);
    // The objects stay until the orphan sweep, past the grace period, finds them unreferenced.
    assert_eq!(s3.keys().await.len(), 2);
    crate::photos::age_candidates(&app.pool).await;
    assert_eq!(crate::photos::sweep(&app).await.removed, 2);
    assert_eq!(s3.keys().await, Vec::<String>::new());
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_refused_twin_never_removes_the_object_of_the_upload_still_committing(pool: PgPool) {
    let s3 = S3rver::start().await;
    let app = TestApp::spawn_with(pool, s3.settings("S3RVER")).await;
    crate::photos::a_refused_twin_never_removes_the_photo_of_the_upload_still_committing(&app)
        .await;
    assert_eq!(s3.keys().await.len(), 2);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_hidden_reports_photo_is_not_served_from_the_bucket(pool: PgPool) {
    let s3 = S3rver::start().await;
    let app = TestApp::spawn_with(pool, s3.settings("S3RVER")).await;
    crate::photos::a_photo_stops_being_served_when_its_report_is_hidden(&app).await;
    // Still in the bucket: hiding is a moderation state, not a deletion.
    assert_eq!(s3.keys().await.len(), 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_store_that_is_down_gives_503_and_the_retry_on_a_healthy_replica_stores_the_report(
    pool: PgPool,
) {
    let s3 = S3rver::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = TestApp::spawn_with(
        pool.clone(),
        store_settings(&format!("http://{closed}"), "S3RVER"),
    )
    .await;
    let healthy = TestApp::spawn_with(pool, s3.settings("S3RVER")).await;
    let k = key();
    let form = || report_form().part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"));

    let res = down
        .client
        .post(down.url("/api/v1/reports"))
        .header("Idempotency-Key", &k)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["retry-after"], "1");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["status"], 503);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("photo store") && !d.contains("127.0.0.1")),
        "{problem}"
    );
    assert_eq!(count(&down.pool, "reports").await, 0);
    assert_eq!(count(&down.pool, "photos").await, 0);

    // The client's retry with the same key, on a replica that reaches the store.
    let res = healthy
        .client
        .post(healthy.url("/api/v1/reports"))
        .header("Idempotency-Key", &k)
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(count(&healthy.pool, "reports").await, 1);
    let url = body["photos"][0]["display_url"].as_str().unwrap();
    assert_eq!(get_bytes(&healthy, url).await.0, 200);
    // The replica without its store cannot serve it either: 503, not a 404 or a 500.
    let (status, headers, _) = get_bytes(&down, url).await;
    assert_eq!(status, 503);
    assert_eq!(headers["content-type"], "application/problem+json");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn requests_with_an_unknown_access_key_are_refused_by_the_server(pool: PgPool) {
    let s3 = S3rver::start().await;
    let mut settings = s3.settings("S3RVER");
    if let PhotoStoreSetting::S3(s) = &mut settings.photo_store {
        s.access_key_id = "NOT-A-KEY".to_owned();
    }
    let app = TestApp::spawn_with(pool, settings).await;
    let form = report_form().part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"));
    let (status, body) = post_report(&app, form).await;
    // A configuration fault, not an outage: 500 with nothing of S3's answer in it, and nothing
    // stored anywhere.
    assert_eq!(status, 500, "{body}");
    assert!(!body.to_string().contains("AccessKey"), "{body}");
    assert_eq!(s3.keys().await, Vec::<String>::new());
    assert_eq!(count(&app.pool, "reports").await, 0);
}
