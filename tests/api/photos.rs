//! Photos: multipart intake, staff uploads, serving, and hostile input (bombs, polyglots,
//! oversize and cut-off uploads, EXIF with GPS). Test images are made in the tests.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use citypin::auth::Role;
use citypin::config::Settings;
use citypin::photos::fixtures;
use citypin::photos::storage::ContentHash;
use citypin::photos::store as photo_store;
use citypin::photos::sweep::{self as photo_sweep, Swept};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, cases, key};

/// The app with its photo store in a fresh temporary directory.
async fn spawn(pool: PgPool) -> (TestApp, PathBuf) {
    let dir = std::env::temp_dir().join(format!("citypin-photos-{}", uuid::Uuid::new_v4()));
    let settings = Settings {
        photo_dir: Some(dir.clone()),
        ..Settings::default()
    };
    (TestApp::spawn_with(pool, settings).await, dir)
}

/// Every file under `dir` (none if it was never created).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                files_in(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

pub fn report_form() -> Form {
    Form::new()
        .text("service_code", "pothole")
        .text("lat", "34.0522")
        .text("lon", "-118.2437")
        .text("description", "Deep pothole, see photo")
}

pub fn photo(bytes: Vec<u8>, name: &str, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .expect("mime")
}

pub fn small_jpeg() -> Vec<u8> {
    fixtures::jpeg(64, 48, |x, y| [(x * 4) as u8, (y * 5) as u8, 90])
}

async fn post_form(
    app: &TestApp,
    path: &str,
    form: Form,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).multipart(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn post_report(app: &TestApp, form: Form) -> (u16, Value) {
    let k = key();
    post_form(app, "/api/v1/reports", form, &[("Idempotency-Key", &k)]).await
}

pub async fn get_bytes(
    app: &TestApp,
    path: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = app.client.get(app.url(path)).send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.expect("body").to_vec())
}

/// Both sizes of every photo in a response body, as served.
pub async fn served(app: &TestApp, body: &Value) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in body["photos"].as_array().expect("photos") {
        for url in [&p["display_url"], &p["thumb_url"]] {
            let (status, _, bytes) = get_bytes(app, url.as_str().expect("url")).await;
            assert_eq!(status, 200);
            out.push(bytes);
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_report_with_photos_is_stored_and_its_photos_served_safely(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        3000,
        200,
        image::Rgb([1, 2, 3]),
    ))
    .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    let form = report_form()
        .part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"))
        .part("photo", photo(png, "b.png", "image/png"));
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 201, "{body}");
    let photos = body["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 2);
    assert_eq!(
        (photos[1]["width"].as_u64(), photos[1]["height"].as_u64()),
        (Some(2048), Some(137))
    );
    assert!(body.get("location_suggestion").is_none());
    // Content-addressed: the small JPEG's display and thumbnail are the same bytes, one file.
    assert_eq!(files_in(&dir).len(), 3);

    let (status, headers, bytes) =
        get_bytes(&app, photos[0]["display_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    let etag = headers["etag"].clone();
    let res = app
        .client
        .get(app.url(photos[0]["display_url"].as_str().unwrap()))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    let (_, _, thumb) = get_bytes(&app, photos[1]["thumb_url"].as_str().unwrap()).await;
    let thumb = image::load_from_memory(&thumb).unwrap();
    assert!(thumb.width() <= 320 && thumb.height() <= 320);

    let (status, listed) = app
        .get_json(&format!(
            "/api/v1/reports/{}/photos",
            body["reference"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["photos"].as_array().unwrap().len(), 2);
    let (status, _) = app
        .get_json(&format!(
            "/api/v1/photos/{}/original",
            photos[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 400);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_1_kb_png_declaring_100000_pixels_a_side_is_refused_without_decoding(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let bomb = fixtures::png_declaring(100_000, 100_000);
    assert!(bomb.len() <= 1024);
    let (status, body) = post_report(
        &app,
        report_form().part("photo", photo(bomb, "bomb.png", "image/png")),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "photo[0]");
    assert!(
        body["detail"].as_str().unwrap().contains("100000 × 100000"),
        "{body}"
    );
    assert_eq!(app.count_reports().await, 0);
    assert!(files_in(&dir).is_empty());
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_jpeg_of_20000_pixels_a_side_is_refused_from_its_header(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let big = fixtures::jpeg_declaring(20_000, 20_000);
    let (status, body) = post_report(
        &app,
        report_form().part("photo", photo(big, "big.jpg", "image/jpeg")),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // This message comes only from the header check, which runs before any decoding.
    assert!(
        body["detail"].as_str().unwrap().contains("20000 × 20000"),
        "{body}"
    );
    assert_eq!(app.count_reports().await, 0);
    assert!(files_in(&dir).is_empty());
}

/// A file that is not an image, named and typed as a JPEG, is 415; nothing is written.
async fn a_fake_jpeg_is_415(pool: PgPool, fake: &[u8]) {
    let (app, dir) = spawn(pool).await;
    let form = report_form().part("photo", photo(fake.to_vec(), "photo.jpg", "image/jpeg"));
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(app.count_reports().await, 0);
    assert!(files_in(&dir).is_empty());
}

cases! { async a_fake_jpeg_is_415 {
    html_named_jpg_is_415: b"<!DOCTYPE html><html><script>alert(1)</script></html>";
    svg_named_jpg_is_415: br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#;
    pdf_named_jpg_is_415: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF";
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_jpeg_with_html_or_zip_appended_is_stored_re_encoded_without_them(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let html = b"<html><body><script>alert('polyglot')</script></body></html>";
    let zip = b"PK\x03\x04\x14\0\0\0\0\0evil.exePK\x05\x06";
    let mut with_html = small_jpeg();
    with_html.extend_from_slice(html);
    let mut with_zip = fixtures::jpeg(30, 30, |_, _| [200, 10, 10]);
    with_zip.extend_from_slice(zip);
    let form = report_form()
        .part("photo", photo(with_html, "a.jpg", "image/jpeg"))
        .part("photo", photo(with_zip, "b.jpg", "image/jpeg"));
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 201, "{body}");
    let mut stored: Vec<Vec<u8>> = files_in(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    stored.extend(served(&app, &body).await);
    // Two small photos: display and thumbnail are one file each; four sizes served.
    assert_eq!(stored.len(), 6);
    for bytes in &stored {
        assert!(image::load_from_memory(bytes).is_ok());
        for needle in [
            &b"<html"[..],
            b"<script",
            b"PK\x03\x04",
            b"PK\x05\x06",
            b"evil",
        ] {
            assert!(!contains(bytes, needle));
        }
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn exif_gps_and_metadata_are_stripped_and_the_orientation_applied(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    // Left half red, right half blue, tagged "rotate 90° clockwise to view": shown tall, red on top.
    let jpeg = fixtures::jpeg(
        40,
        20,
        |x, _| if x < 20 { [255, 0, 0] } else { [0, 0, 255] },
    );
    let tagged = fixtures::with_xmp_and_iptc(&fixtures::with_exif(
        &jpeg,
        Some(6),
        Some((48.8584, 2.2945)),
    ));
    assert!(
        exif::Reader::new()
            .read_from_container(&mut Cursor::new(&tagged))
            .is_ok()
    );
    let (status, body) = post_report(
        &app,
        report_form().part("photo", photo(tagged, "IMG_0001.JPG", "image/jpeg")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Offered back, not used: the report sits where the form put it.
    let suggestion = &body["location_suggestion"];
    assert!(
        (suggestion["lat"].as_f64().unwrap() - 48.8584).abs() < 1e-4,
        "{body}"
    );
    assert!((suggestion["lon"].as_f64().unwrap() - 2.2945).abs() < 1e-4);
    assert!((body["lat"].as_f64().unwrap() - 34.0522).abs() < 1e-9);
    let (_, shown) = app
        .get_json(&format!("/api/v1/reports/{}", body["id"].as_str().unwrap()))
        .await;
    assert!(shown.get("location_suggestion").is_none());

    let mut images: Vec<Vec<u8>> = files_in(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    images.extend(served(&app, &body).await);
    // One file (display and thumbnail are equal at this size), two sizes served.
    assert_eq!(images.len(), 3);
    for bytes in &images {
        assert!(
            exif::Reader::new()
                .read_from_container(&mut Cursor::new(bytes))
                .is_err()
        );
        // Only the encoder's own JFIF APP0: no APP1 (EXIF, XMP), no APP13 (IPTC).
        assert_eq!(fixtures::metadata_markers(bytes), vec![0xE0]);
        for needle in [
            &b"Exif\0\0"[..],
            b"http://ns.adobe.com/xap",
            b"Photoshop 3.0",
            b"Phone maker",
        ] {
            assert!(!contains(bytes, needle));
        }
        let img = image::load_from_memory(bytes).unwrap().to_rgb8();
        assert!(
            img.height() > img.width(),
            "{}×{}",
            img.width(),
            img.height()
        );
        let (top, bottom) = (
            img.get_pixel(img.width() / 2, img.height() / 8).0,
            img.get_pixel(img.width() / 2, img.height() * 7 / 8).0,
        );
        assert!(top[0] > 180 && top[2] < 80, "top {top:?}");
        assert!(bottom[2] > 180 && bottom[0] < 80, "bottom {bottom:?}");
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_photo_location_is_used_only_when_the_citizen_asks(pool: PgPool) {
    let (app, _dir) = spawn(pool).await;
    let tagged = fixtures::with_exif(&small_jpeg(), None, Some((34.05, -118.25)));
    let form = Form::new()
        .text("service_code", "pothole")
        .text("use_photo_location", "true")
        .part("photo", photo(tagged, "a.jpg", "image/jpeg"));
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 201, "{body}");
    assert!((body["lat"].as_f64().unwrap() - 34.05).abs() < 1e-4);
    assert!((body["lon"].as_f64().unwrap() + 118.25).abs() < 1e-4);

    let form = Form::new()
        .text("service_code", "pothole")
        .text("use_photo_location", "true")
        .part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"));
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "use_photo_location");
}

/// The start of a multipart request with a declared length, written by hand so the test
/// controls how much of the body is ever sent.
fn raw_head(app: &TestApp, boundary: &str, content_length: usize) -> Vec<u8> {
    format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: {}\r\nIdempotency-Key: {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {content_length}\r\n\r\n",
        app.addr,
        key()
    )
    .into_bytes()
}

fn raw_part(boundary: &str, name: &str, file: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").into_bytes();
    if let Some(f) = file {
        out.extend_from_slice(format!("; filename=\"{f}\"\r\nContent-Type: image/jpeg").as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn raw_fields(boundary: &str) -> Vec<u8> {
    [
        ("service_code", "pothole"),
        ("lat", "34.0522"),
        ("lon", "-118.2437"),
        ("description", "hole"),
    ]
    .iter()
    .flat_map(|(n, v)| raw_part(boundary, n, None, v.as_bytes()))
    .collect()
}

/// Sends `head` and `sent`, then either keeps the connection open (the rest of the declared
/// body never comes) or closes the writing side, and returns the response's status.
async fn send_partial(app: &TestApp, head: &[u8], sent: &[u8], close: bool) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream.write_all(head).await.expect("head");
    // The server may answer and stop reading before all of this is written.
    let _ = stream.write_all(sent).await;
    if close {
        let _ = stream.shutdown().await;
    }
    // A guard against hanging, not a speed check: a server that waited for the rest of the
    // body would never answer, since the rest is never sent.
    let response = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !contains(&buf, b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    })
    .await
    .expect("the server answered without the rest of the body");
    let line = String::from_utf8_lossy(&response);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_11_mb_photo_is_413_before_the_whole_body_is_read(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let boundary = "b0undary";
    let eleven_mb = 11 * 1024 * 1024;
    let mut sent = raw_fields(boundary);
    sent.extend_from_slice(&raw_part(boundary, "photo", Some("big.jpg"), &[])[..]);
    sent.truncate(sent.len() - 2); // open the part's data; no closing CRLF yet
    let declared = sent.len() + eleven_mb + 64;
    // A bit more than 10 MB of the 11: the last megabyte is never sent.
    sent.extend(std::iter::repeat_n(0xAB, 10 * 1024 * 1024 + 64 * 1024));
    let status = send_partial(&app, &raw_head(&app, boundary, declared), &sent, false).await;
    assert_eq!(status, 413);
    assert_eq!(app.count_reports().await, 0);
    assert!(files_in(&dir).is_empty());
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_fourth_photo_is_413_before_the_whole_body_is_read(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let boundary = "b0undary";
    let jpeg = small_jpeg();
    let mut sent = raw_fields(boundary);
    for i in 0..4 {
        sent.extend_from_slice(&raw_part(
            boundary,
            "photo",
            Some(&format!("{i}.jpg")),
            &jpeg,
        ));
    }
    let declared = sent.len() + 1024 * 1024;
    // The fourth part's headers and a few bytes, then nothing more.
    let fourth = sent.len() - jpeg.len() + 16;
    sent.truncate(fourth);
    let status = send_partial(&app, &raw_head(&app, boundary, declared), &sent, false).await;
    assert_eq!(status, 413);
    assert_eq!(app.count_reports().await, 0);
    assert!(files_in(&dir).is_empty());
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_upload_cut_off_half_way_leaves_no_report_and_no_file(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let boundary = "b0undary";
    let mut body = raw_fields(boundary);
    for i in 0..2 {
        body.extend_from_slice(&raw_part(
            boundary,
            "photo",
            Some(&format!("{i}.jpg")),
            &fixtures::phone_photo(400, 300),
        ));
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let head = raw_head(&app, boundary, body.len());
    // The first photo whole, the second half-way; then the client closes the connection.
    let half = body.len() * 3 / 4;
    let status = send_partial(&app, &head, &body[..half], true).await;
    assert!((400..500).contains(&status) || status == 0, "{status}");
    // The handler has answered (or dropped the request), so nothing more will be written.
    assert_eq!(app.count_reports().await, 0);
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    let photos: i64 = sqlx::query_scalar("SELECT count(*) FROM photos")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(photos, 0);

    // The same body sent whole is accepted: the cut was what made the first one fail.
    assert_eq!(
        send_partial(&app, &raw_head(&app, boundary, body.len()), &body, false).await,
        201
    );
    // Two equal photos, each a display and a thumbnail: two distinct files.
    assert_eq!(files_in(&dir).len(), 2);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_json_report_is_still_held_to_the_small_body_limit(pool: PgPool) {
    let (app, _dir) = spawn(pool).await;
    let mut body = crate::helpers::pothole();
    body["description"] = Value::String("x".repeat(100 * 1024));
    let (status, _) = app.post_report(&body, &key()).await;
    assert_eq!(status, 413);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_retry_with_the_same_key_and_photos_replays_and_other_photos_are_refused(pool: PgPool) {
    let (app, dir) = spawn(pool).await;
    let k = key();
    let headers = [("Idempotency-Key", k.as_str())];
    let send = |jpeg: Vec<u8>| {
        let form = report_form().part("photo", photo(jpeg, "a.jpg", "image/jpeg"));
        post_form(&app, "/api/v1/reports", form, &headers)
    };
    let (s1, first) = send(small_jpeg()).await;
    let (s2, second) = send(small_jpeg()).await;
    assert_eq!((s1, s2), (201, 201), "{first} {second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["photos"], second["photos"]);
    let (s3, problem) = send(fixtures::jpeg(10, 10, |_, _| [1, 1, 1])).await;
    assert_eq!(s3, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.count_reports().await, 1);
    // The refused retry's file stays until the orphan sweep, after the grace period.
    assert_eq!(files_in(&dir).len(), 2);
    age_candidates(&app.pool).await;
    sweep(&app).await;
    assert_eq!(files_in(&dir).len(), 1);
}

/// A staff photo form: `kind`, a note, one small JPEG.
fn staff_photo(kind: &str) -> Form {
    Form::new()
        .text("kind", kind.to_owned())
        .text("note", "filled")
        .part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"))
}

/// A staff photo of `kind` added with a token of `role` (none when `None`) is refused with
/// `status`, and the report has no photo.
async fn a_staff_photo_is_refused(pool: PgPool, role: Option<Role>, kind: &str, status: u16) {
    let (app, _dir) = spawn(pool).await;
    let (_, report) = app.post_report(&crate::helpers::pothole(), &key()).await;
    let path = format!(
        "/api/v1/reports/{}/photos",
        report["id"].as_str().expect("id")
    );
    let auth = match role {
        Some(role) => vec![format!("Bearer {}", app.token(role).await)],
        None => Vec::new(),
    };
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (got, body) = post_form(&app, &path, staff_photo(kind), &headers).await;
    assert_eq!(got, status, "{body}");
    let (_, listed) = app.get_json(&path).await;
    assert_eq!(listed["photos"].as_array().expect("photos").len(), 0);
}

cases! { async a_staff_photo_is_refused {
    a_citizen_cannot_add_a_staff_photo: None, "after", 401;
    an_analyst_cannot_add_a_staff_photo: Some(Role::Analyst), "after", 403;
    a_staff_photo_of_an_unknown_kind_is_422: Some(Role::Crew), "selfie", 422;
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn staff_add_before_and_after_photos(pool: PgPool) {
    let (app, _dir) = spawn(pool).await;
    let (_, report) = app.post_report(&crate::helpers::pothole(), &key()).await;
    let path = format!("/api/v1/reports/{}/photos", report["id"].as_str().unwrap());
    let crew = format!("Bearer {}", app.token(Role::Crew).await);
    let (status, body) = post_form(
        &app,
        &path,
        staff_photo("after"),
        &[("Authorization", &crew)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["photos"][0]["kind"], "after");

    let (_, listed) = app.get_json(&path).await;
    assert_eq!(listed["photos"].as_array().unwrap().len(), 1);
    let (_, history) = app
        .get_json(&format!(
            "/api/v1/reports/{}/history",
            report["id"].as_str().unwrap()
        ))
        .await;
    let event = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "photo")
        .expect("a photo event");
    assert_eq!(event["actor_role"], "crew");
    assert_eq!(event["note"], "filled");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn photos_of_hidden_reports_are_not_served(pool: PgPool) {
    let (app, _dir) = spawn(pool).await;
    a_photo_stops_being_served_when_its_report_is_hidden(&app).await;
}

/// Posts a report with a photo, checks it is served, hides the report, checks both sizes are
/// 404 (shared with the S3 store's tests).
pub async fn a_photo_stops_being_served_when_its_report_is_hidden(app: &TestApp) {
    let (status, body) = post_report(
        app,
        report_form().part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let url = body["photos"][0]["display_url"]
        .as_str()
        .expect("display_url")
        .to_owned();
    assert_eq!(get_bytes(app, &url).await.0, 200);
    sqlx::query("UPDATE reports SET hidden = true")
        .execute(&app.pool)
        .await
        .expect("hide");
    assert_eq!(get_bytes(app, &url).await.0, 404);
    assert_eq!(
        get_bytes(app, &url.replace("display", "thumb")).await.0,
        404
    );
}

/// Opens an upload and sends its body one byte at a time, `gap` apart, until the server
/// answers; returns the status and how long the answer took.
async fn trickle(app: &TestApp, gap: std::time::Duration) -> (u16, std::time::Duration) {
    let boundary = "trickle";
    let mut body = raw_fields(boundary);
    body.extend(raw_part(boundary, "photo", Some("p.jpg"), &small_jpeg()));
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream
        .write_all(&raw_head(app, boundary, body.len()))
        .await
        .expect("head");
    let started = std::time::Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        for b in body {
            if writer.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(gap).await;
        }
        writer
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !contains(&buf, b"\r\n\r\n") {
        match tokio::time::timeout(std::time::Duration::from_secs(60), reader.read(&mut chunk))
            .await
        {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    sender.abort();
    let status = String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_trickling_upload_is_refused_and_frees_its_slot(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("citypin-photos-{}", uuid::Uuid::new_v4()));
    let settings = Settings {
        photo_dir: Some(dir.clone()),
        upload_idle: std::time::Duration::from_secs(1),
        ..Settings::default()
    };
    let app = TestApp::spawn_with(pool, settings).await;
    let (status, took) = trickle(&app, std::time::Duration::from_millis(50)).await;
    assert_eq!(status, 408, "one byte every 50 ms is under 16 KiB/s");
    assert!(
        took < std::time::Duration::from_secs(20),
        "refused soon after the grace second, not at the request timeout: {took:?}"
    );
    // Its slots are free again: the same client uploads at once.
    let form = Form::new()
        .text("service_code", "pothole")
        .text("lat", "34.0522")
        .text("lon", "-118.2437")
        .part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"));
    let (status, body) = post_report(&app, form).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        app.count_reports().await,
        1,
        "the trickled report was not stored"
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn one_client_holds_at_most_two_upload_slots(pool: PgPool) {
    let (app, _dir) = spawn(pool).await;
    let boundary = "held";
    let fields = raw_fields(boundary);
    // Two uploads that announce a body and stall half way, from this test's address.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        s.write_all(&raw_head(&app, boundary, fields.len() + 10_000))
            .await
            .expect("head");
        s.write_all(&fields).await.expect("fields");
        held.push(s);
    }
    // Both are admitted (their fields read) before the third asks.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let form = Form::new()
        .text("service_code", "pothole")
        .text("lat", "34.0522")
        .text("lon", "-118.2437")
        .part("photo", photo(small_jpeg(), "a.jpg", "image/jpeg"));
    let res = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("Idempotency-Key", key())
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    drop(held);
    assert_eq!(app.count_reports().await, 0);
}

/// Makes every orphan candidate older than the default grace period, as two hours passing would.
pub async fn age_candidates(pool: &PgPool) {
    sqlx::query("UPDATE photo_orphans SET noted_at = noted_at - interval '2 hours'")
        .execute(pool)
        .await
        .expect("age candidates");
}

/// One orphan sweep by `app`, with the default grace period.
pub async fn sweep(app: &TestApp) -> Swept {
    photo_sweep::sweep(
        &app.pool,
        app.state.photos.storage.as_ref(),
        photo_sweep::DEFAULT_GRACE,
        photo_sweep::BATCH,
    )
    .await
    .expect("sweep")
}

async fn candidates(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM photo_orphans")
        .fetch_one(pool)
        .await
        .expect("count candidates")
}

/// Issue 17: a retry with the same key, refused while the first upload of the same photo is
/// still inside its transaction, must not remove the file that upload is about to reference.
/// The first upload is held between writing its files and inserting its photo rows (a lock on
/// `photos`); the retry is refused at admission (503) after writing the same files.
pub async fn a_refused_twin_never_removes_the_photo_of_the_upload_still_committing(app: &TestApp) {
    let k = key();
    let form = || {
        report_form().part(
            "photo",
            photo(fixtures::phone_photo(800, 600), "a.jpg", "image/jpeg"),
        )
    };
    let mut hold = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE photos IN SHARE MODE")
        .execute(&mut *hold)
        .await
        .expect("lock photos");
    let first = tokio::spawn({
        let req = app
            .client
            .post(app.url("/api/v1/reports"))
            .header("Idempotency-Key", k.clone())
            .multipart(form());
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    // Wait until the first upload's photo rows wait on the lock (or it has, wrongly, finished).
    let mut waiting = false;
    for _ in 0..50_000 {
        if first.is_finished() {
            break;
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE relation = 'photos'::regclass AND NOT granted",
        )
        .fetch_one(&app.pool)
        .await
        .expect("pg_locks");
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(waiting, "the first upload did not reach its photo rows");

    let admission = app.state.intake_admission.clone();
    let busy = admission
        .try_acquire_many(admission.available_permits() as u32)
        .expect("take every intake slot");
    let (status, body) =
        post_form(app, "/api/v1/reports", form(), &[("Idempotency-Key", &k)]).await;
    assert_eq!(status, 503, "{body}");
    drop(busy);

    hold.commit().await.expect("release photos");
    let (status, body) = first.await.expect("first upload");
    assert_eq!(status, 201, "{body}");
    served(app, &body).await;
    // Past the grace period the sweep settles the candidates and keeps the files: rows use them.
    age_candidates(&app.pool).await;
    assert_eq!(sweep(app).await.removed, 0);
    served(app, &body).await;
    assert_eq!(candidates(&app.pool).await, 0);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_refused_twin_never_removes_the_photo_of_the_upload_still_committing_locally(
    pool: PgPool,
) {
    let (app, _dir) = spawn(pool).await;
    a_refused_twin_never_removes_the_photo_of_the_upload_still_committing(&app).await;
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_sweep_removes_an_unreferenced_file_after_the_grace_period_and_keeps_a_referenced_one(
    pool: PgPool,
) {
    let (app, dir) = spawn(pool).await;
    let k = key();
    let headers = [("Idempotency-Key", k.as_str())];
    let send = |jpeg: Vec<u8>| {
        let form = report_form().part("photo", photo(jpeg, "a.jpg", "image/jpeg"));
        post_form(&app, "/api/v1/reports", form, &headers)
    };
    let (status, kept) = send(small_jpeg()).await;
    assert_eq!(status, 201, "{kept}");
    // The same key with another photo is refused after that photo's file was written.
    let (status, _) = send(fixtures::jpeg(10, 10, |_, _| [1, 1, 1])).await;
    assert_eq!(status, 422);
    assert_eq!(files_in(&dir).len(), 2);

    // Within the grace period nothing is removed.
    assert_eq!(sweep(&app).await, Swept::default());
    assert_eq!(files_in(&dir).len(), 2);

    age_candidates(&app.pool).await;
    assert_eq!(
        sweep(&app).await,
        Swept {
            removed: 1,
            kept: 1
        }
    );
    assert_eq!(files_in(&dir).len(), 1);
    served(&app, &kept).await;
    assert_eq!(candidates(&app.pool).await, 0);
    // A zero grace (tests only: settings refuse less than the minimum) needs no aging.
    let orphan = app
        .state
        .photos
        .storage
        .put(bytes::Bytes::from_static(b"an orphan"))
        .await
        .expect("put");
    photo_store::note_candidates(&app.pool, &[orphan])
        .await
        .expect("note");
    let swept = photo_sweep::sweep(
        &app.pool,
        app.state.photos.storage.as_ref(),
        std::time::Duration::ZERO,
        photo_sweep::BATCH,
    )
    .await
    .expect("sweep");
    assert_eq!(swept.removed, 1);
    assert_eq!(files_in(&dir).len(), 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn two_replicas_sweeping_at_once_remove_each_orphan_once_and_no_referenced_file(
    pool: PgPool,
) {
    let (app, dir) = spawn(pool.clone()).await;
    let other = TestApp::spawn_with(
        pool,
        Settings {
            photo_dir: Some(dir.clone()),
            ..Settings::default()
        },
    )
    .await;
    let mut reports = Vec::new();
    for i in 0..3u8 {
        let jpeg = fixtures::jpeg(20, 20, move |_, _| [i * 60, 10, 10]);
        let (status, body) = post_report(
            &app,
            report_form().part("photo", photo(jpeg, "a.jpg", "image/jpeg")),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        reports.push(body);
    }
    let referenced = files_in(&dir).len();
    // Files an upload noted and wrote but never committed (a process killed in between).
    for i in 0..20 {
        let bytes = bytes::Bytes::from(format!("orphan {i}"));
        photo_store::note_candidates(&app.pool, &[ContentHash::of(&bytes)])
            .await
            .expect("note");
        app.state.photos.storage.put(bytes).await.expect("put");
    }
    assert_eq!(files_in(&dir).len(), referenced + 20);
    age_candidates(&app.pool).await;

    let run = |a: &TestApp| {
        let (pool, storage) = (a.pool.clone(), a.state.photos.storage.clone());
        async move {
            photo_sweep::sweep(&pool, storage.as_ref(), photo_sweep::DEFAULT_GRACE, 2)
                .await
                .expect("sweep")
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(run(&app)), tokio::spawn(run(&other)));
    let (a, b) = (a.expect("first sweep"), b.expect("second sweep"));
    assert_eq!(a.removed + b.removed, 20, "{a:?} {b:?}");
    assert_eq!(a.kept + b.kept, referenced, "{a:?} {b:?}");
    assert_eq!(files_in(&dir).len(), referenced);
    for body in &reports {
        served(&app, body).await;
    }
    assert_eq!(candidates(&app.pool).await, 0);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_gps_position_written_by_piexif_is_offered_back(pool: PgPool) {
    let (app, _dir) = spawn(pool).await;
    // Python's piexif (PyPI, installed by scripts/install-deps.sh) writes the GPS tags into a
    // photo of ours, as a phone app or a script of a city's would.
    let work = std::env::temp_dir().join(format!("citypin-piexif-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).expect("dir");
    let (plain, tagged) = (work.join("plain.jpg"), work.join("tagged.jpg"));
    std::fs::write(&plain, fixtures::phone_photo(400, 300)).expect("write");
    let script = "import piexif, sys\n\
        def dms(v):\n    v = abs(v); d = int(v); m = int((v - d) * 60)\n    \
        return ((d, 1), (m, 1), (round(((v - d) * 60 - m) * 60 * 10000), 10000))\n\
        gps = {piexif.GPSIFD.GPSLatitudeRef: 'N', piexif.GPSIFD.GPSLatitude: dms(34.0522),\n       \
        piexif.GPSIFD.GPSLongitudeRef: 'W', piexif.GPSIFD.GPSLongitude: dms(118.2437)}\n\
        piexif.insert(piexif.dump({'0th': {}, 'Exif': {}, 'GPS': gps}), sys.argv[1], sys.argv[2])\n";
    let status =
        tokio::process::Command::new(crate::helpers::workspace().join("target/py/bin/python"))
            .arg("-c")
            .arg(script)
            .arg(&plain)
            .arg(&tagged)
            .status()
            .await
            .expect("python with piexif (scripts/install-deps.sh)");
    assert!(status.success(), "piexif wrote the tags");
    let form = Form::new()
        .text("service_code", "pothole")
        .text("use_photo_location", "true")
        .part(
            "photo",
            photo(std::fs::read(&tagged).expect("read"), "p.jpg", "image/jpeg"),
        );
    let (status, body) = post_report(&app, form).await;
    std::fs::remove_dir_all(&work).ok();
    assert_eq!(status, 201, "{body}");
    assert!(
        (body["lat"].as_f64().unwrap() - 34.0522).abs() < 1e-4,
        "{body}"
    );
    assert!(
        (body["lon"].as_f64().unwrap() + 118.2437).abs() < 1e-4,
        "{body}"
    );
}
