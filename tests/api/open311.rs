//! `Open311` `GeoReport` v2: every path in both formats, checked against the official JSON
//! Schemas (XML is parsed into the same JSON shape and checked too), POST with attributes and
//! an `api_key`, bad input per case, the spec's defaults, and area queries from the live index.

use std::collections::HashSet;

use citypin::auth::{self, Role};
use citypin::open311::query::{Area, RequestsQuery};
use citypin::open311::search;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, cases, key};

// ---------------------------------------------------------------------------------------------
// Helpers: the official schemas, XML → JSON (the Spark convention in reverse), HTTP shortcuts.

const SCHEMA_BASE: &str = "https://schemas.open311.test/georeport-v2/";

/// One of the official schemas (open311/schema-validation, CC BY 3.0), read from the shared data
/// folder: third-party files are not copied into the repository.
fn schema_text(name: &str) -> String {
    let path = citypin::config::shared_data::file(&format!("open311/{name}"));
    std::fs::read_to_string(&path).expect("read the schema")
}

/// A validator for one of the official schemas, its relative `$ref`s resolved in memory and
/// `format` (date-time, uri) enforced.
fn validator(name: &str) -> jsonschema::Validator {
    let mut root: Value = serde_json::from_str(&schema_text(name)).expect("test helper input");
    root["$id"] = json!(format!("{SCHEMA_BASE}{name}"));
    let mut options = jsonschema::options();
    options.should_validate_formats(true);
    for part in ["request.json", "service.json"] {
        let contents: Value = serde_json::from_str(&schema_text(part)).expect("test helper input");
        options.with_resource(
            format!("{SCHEMA_BASE}{part}"),
            jsonschema::Resource::from_contents(contents).expect("test helper input"),
        );
    }
    options.build(&root).expect("test helper input")
}

fn assert_valid(schema: &str, value: &Value, what: &str) {
    let v = validator(schema);
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate against {schema}: {errors:?}\n{value:#}"
    );
}

/// Elements that hold a list, and leaves that are not strings.
const LISTS: &[&str] = &[
    "services",
    "service_requests",
    "attributes",
    "values",
    "errors",
    "endpoints",
    "formats",
    "notes",
];
const BOOLEANS: &[&str] = &["metadata", "variable", "required", "duplicate"];
const NUMBERS: &[&str] = &["lat", "long", "order", "supporters"];

#[derive(Debug, Default)]
struct Node {
    name: String,
    children: Vec<Node>,
    text: String,
}

fn parse_xml(xml: &str) -> Node {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(Node {
                name: String::from_utf8(e.name().as_ref().to_vec()).expect("test helper input"),
                ..Node::default()
            }),
            Event::Empty(e) => {
                let node = Node {
                    name: String::from_utf8(e.name().as_ref().to_vec()).expect("test helper input"),
                    ..Node::default()
                };
                stack
                    .last_mut()
                    .expect("test helper input")
                    .children
                    .push(node);
            }
            Event::Text(t) => stack
                .last_mut()
                .expect("test helper input")
                .text
                .push_str(&t.unescape().expect("valid escapes")),
            Event::End(_) => {
                let node = stack.pop().expect("test helper input");
                stack
                    .last_mut()
                    .expect("test helper input")
                    .children
                    .push(node);
            }
            Event::Eof => break,
            Event::Decl(d) => {
                let enc = d
                    .encoding()
                    .expect("encoding declared")
                    .expect("test helper input");
                assert!(enc.eq_ignore_ascii_case(b"utf-8"));
            }
            _ => {}
        }
    }
    let mut doc = stack.pop().expect("test helper input");
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().expect("test helper input")
}

fn to_json(node: &Node, parent: &str) -> Value {
    if LISTS.contains(&node.name.as_str()) {
        return Value::Array(
            node.children
                .iter()
                .map(|c| to_json(c, &node.name))
                .collect(),
        );
    }
    if !node.children.is_empty() {
        let mut map = serde_json::Map::new();
        for c in &node.children {
            assert!(
                map.insert(c.name.clone(), to_json(c, &node.name)).is_none(),
                "repeated element {} outside a list",
                c.name
            );
        }
        return Value::Object(map);
    }
    let text = node.text.as_str();
    if text.is_empty() {
        return Value::Null;
    }
    let name = node.name.as_str();
    if BOOLEANS.contains(&name) {
        return json!(text.parse::<bool>().expect("true or false"));
    }
    if NUMBERS.contains(&name) || (name == "code" && parent == "error") {
        // serde_json's own number parser, as for the JSON body (it rounds a few values
        // differently from `str::parse`).
        let n: Value = serde_json::from_str(text).expect("a number");
        assert!(n.is_number(), "{name} is not a number: {text}");
        return n;
    }
    Value::String(text.to_owned())
}

/// Parses an XML response into the JSON shape the spec's mapping gives.
fn xml_as_json(xml: &str) -> Value {
    to_json(&parse_xml(xml), "")
}

/// GETs a path in one format; returns (status, content type, body as the JSON shape).
async fn get(
    app: &TestApp,
    path_without_ext: &str,
    ext: &str,
    query: &str,
) -> (u16, String, Value) {
    let url = app.url(&format!("{path_without_ext}.{ext}{query}"));
    let res = app.client.get(url).send().await.expect("test helper input");
    let status = res.status().as_u16();
    let ct = res.headers()["content-type"]
        .to_str()
        .expect("test helper input")
        .to_owned();
    let text = res.text().await.expect("test helper input");
    let body = if ext == "xml" {
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{text}"
        );
        xml_as_json(&text)
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, ct, body)
}

/// GETs both formats, checks the content types, and that XML and JSON say the same.
async fn get_both(app: &TestApp, path_without_ext: &str, query: &str) -> (u16, Value) {
    let (sj, ctj, json_body) = get(app, path_without_ext, "json", query).await;
    let (sx, ctx, xml_body) = get(app, path_without_ext, "xml", query).await;
    assert_eq!(ctj, "application/json; charset=utf-8");
    assert_eq!(ctx, "text/xml; charset=utf-8");
    assert_eq!(sj, sx, "{path_without_ext}{query}");
    assert_eq!(
        json_body, xml_body,
        "XML and JSON differ for {path_without_ext}{query}"
    );
    (sj, json_body)
}

async fn post_form(app: &TestApp, ext: &str, body: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/open311/v2/requests.{ext}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("test helper input");
    let status = res.status().as_u16();
    let text = res.text().await.expect("test helper input");
    let body = if ext == "xml" {
        xml_as_json(&text)
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, body)
}

async fn client_key(app: &TestApp) -> String {
    auth::create_token(&app.pool, Role::Open311Client, "Pothole Pal app")
        .await
        .expect("test helper input")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A valid Open311 form at a point `n` steps of ~200 m east of downtown LA (apart enough
/// that no two are near duplicates).
fn form(api_key: &str, n: u32) -> String {
    format!(
        "api_key={}&jurisdiction_id=lacity.org&service_code=pothole&lat=34.0522&long={}&description=Deep+hole+in+the+right+lane&address_string=200+N+Spring+St",
        enc(api_key),
        -118.2437 + f64::from(n) * 0.0022
    )
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("test helper input")
}

/// Asserts the spec's error list: the given HTTP status, and every entry a {code, description}.
fn assert_error_list(status: u16, body: &Value, expected: u16, mentions: &str) {
    assert_eq!(status, expected, "{body}");
    let list = body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"));
    assert!(!list.is_empty());
    for e in list {
        assert_eq!(e["code"], json!(expected), "{body}");
        assert!(e["description"].is_string(), "{body}");
    }
    assert!(
        list.iter().any(|e| e["description"]
            .as_str()
            .expect("test helper input")
            .contains(mentions)),
        "no error mentions {mentions:?}: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Every path, both formats, the official schemas.

/// A minimal request list the schema accepts.
fn minimal_requests() -> Value {
    json!([{"service_request_id": "CP-1", "status": "open", "service_code": "pothole",
            "requested_datetime": "2026-01-01T00:00:00-08:00"}])
}

#[test]
fn the_schema_check_accepts_a_minimal_request() {
    assert_valid("requests.json", &minimal_requests(), "a minimal request");
}

/// The minimal request with `field` set to `bad` does not validate.
fn the_schema_check_refuses(field: &str, bad: &Value) {
    let mut doc = minimal_requests();
    doc[0][field] = bad.clone();
    assert!(
        !validator("requests.json").is_valid(&doc),
        "{field} should be refused: {doc}"
    );
}

cases! { the_schema_check_refuses {
    the_schema_check_refuses_a_numeric_service_request_id: "service_request_id", &json!(638_344);
    the_schema_check_refuses_an_unknown_status: "status", &json!("pending");
    the_schema_check_refuses_a_datetime_that_is_not_rfc_3339:
        "requested_datetime", &json!("2026-01-01 00:00");
    the_schema_check_refuses_a_latitude_written_as_text: "lat", &json!("34.05");
    the_schema_check_refuses_a_media_url_that_is_not_a_uri: "media_url", &json!("not a uri");
}}

#[test]
fn the_schema_check_refuses_a_request_without_its_requested_datetime() {
    let mut missing = minimal_requests();
    missing[0]
        .as_object_mut()
        .expect("object")
        .remove("requested_datetime");
    assert!(!validator("requests.json").is_valid(&missing));
}

#[test]
fn the_schema_check_refuses_an_unknown_service_type() {
    let services = validator("services.json");
    assert!(!services.is_valid(
        &json!([{"service_code": "a", "service_name": "A", "metadata": false, "type": "sometimes"}])
    ));
}

#[test]
fn xml_is_parsed_into_the_json_shape_with_numbers_booleans_lists_and_empty_elements() {
    let x = xml_as_json(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><services><service><service_code>001</service_code><metadata>true</metadata><keywords/></service></services>",
    );
    assert_eq!(
        x,
        json!([{"service_code": "001", "metadata": true, "keywords": null}])
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn every_path_answers_in_both_formats_and_validates_against_the_official_schemas(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let api_key = client_key(&app).await;
    let (status, posted) = post_form(
        &app,
        "json",
        &(form(&api_key, 0) + "&attribute[DEPTH]=deep&media_url=https%3A%2F%2Fexample.org%2Fp.jpg"),
    )
    .await;
    assert_eq!(status, 200, "{posted}");
    let id = posted[0]["service_request_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post_report(
            &json!({"service_code": "graffiti-removal", "lat": 34.06, "lon": -118.30,
                    "description": "Tag on the wall"}),
            &key(),
        )
        .await;
    assert_eq!(status, 201);

    let (status, discovery) = get_both(&app, "/open311/discovery", "").await;
    assert_eq!(status, 200);
    let endpoint = &discovery["endpoints"][0];
    assert_eq!(
        endpoint["specification"],
        "http://wiki.open311.org/GeoReport_v2"
    );
    assert_eq!(endpoint["url"], app.url("/open311/v2"));
    assert_eq!(endpoint["formats"], json!(["text/xml", "application/json"]));

    let (status, services) = get_both(&app, "/open311/v2/services", "").await;
    assert_eq!(status, 200);
    assert_valid("services.json", &services, "services");
    let pothole = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_code"] == "pothole")
        .unwrap();
    assert_eq!(pothole["metadata"], true);
    assert_eq!(pothole["type"], "realtime");
    assert!(services.as_array().unwrap().len() >= 20);

    let (status, definition) = get_both(&app, "/open311/v2/services/pothole", "").await;
    assert_eq!(status, 200);
    assert_valid("service-definition.json", &definition, "service definition");
    assert_eq!(definition["attributes"][0]["code"], "DEPTH");
    assert_eq!(definition["attributes"][0]["values"][1]["key"], "deep");
    let (_, plain) = get_both(&app, "/open311/v2/services/bulky-items", "").await;
    assert_eq!(plain["attributes"], json!([]));

    for query in [
        "",
        "?extensions=true",
        "?status=open&service_code=pothole,graffiti-removal",
    ] {
        let (status, requests) = get_both(&app, "/open311/v2/requests", query).await;
        assert_eq!(status, 200);
        assert_valid("requests.json", &requests, &format!("requests{query}"));
    }
    let (_, requests) = get_both(&app, "/open311/v2/requests", "").await;
    assert_eq!(requests.as_array().unwrap().len(), 2);

    let (status, one) = get_both(&app, &format!("/open311/v2/requests/{id}"), "").await;
    assert_eq!(status, 200);
    assert_valid("requests.json", &one, "one request");
    let r = &one[0];
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(r["service_request_id"], id);
    assert_eq!(r["status"], "open");
    assert_eq!(r["status_notes"], "open: new");
    assert_eq!(r["service_name"], "Pothole");
    assert_eq!(r["agency_responsible"], "Street Services");
    assert_eq!(r["media_url"], "https://example.org/p.jpg");
    assert!(r["requested_datetime"].as_str().unwrap().ends_with('Z'));
    assert!(
        r["expected_datetime"].is_string(),
        "the SLA gives an expected time"
    );
    assert!((r["lat"].as_f64().unwrap() - 34.0522).abs() < 1e-9);

    let (status, token) = get_both(&app, &format!("/open311/v2/tokens/{id}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(token, json!([{"service_request_id": id, "token": id}]));

    // The POST answer, in XML too.
    let (status, posted_xml) = post_form(&app, "xml", &form(&api_key, 1)).await;
    assert_eq!(status, 200, "{posted_xml}");
    let entry = &posted_xml[0];
    assert!(
        entry["service_request_id"]
            .as_str()
            .unwrap()
            .starts_with("CP-")
    );
    assert!(
        entry["service_notice"]
            .as_str()
            .unwrap()
            .contains("72 hours")
    );
    assert_eq!(entry["account_id"], Value::Null);
}

/// An unknown resource gets the Open311 404 in the asked format (both are checked).
async fn is_not_found(pool: PgPool, path: &str) {
    let app = TestApp::spawn(pool).await;
    let (status, body) = get_both(&app, path, "").await;
    assert_error_list(status, &body, 404, "not found");
}

cases! { async is_not_found {
    an_unknown_service_is_an_open311_404: "/open311/v2/services/unicorns";
    an_unknown_reference_is_an_open311_404: "/open311/v2/requests/CP-0000-0000";
    an_unknown_imported_id_is_an_open311_404: "/open311/v2/requests/no-such-import-id";
    an_unknown_token_is_an_open311_404: "/open311/v2/tokens/12345";
    an_unknown_path_is_an_open311_404: "/open311/v2/frobnicate";
}}

// ---------------------------------------------------------------------------------------------
// POST.

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn markup_looking_text_in_a_posted_description_and_attribute_is_kept_as_text(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let api_key = client_key(&app).await;
    let text = "sign says <SLOW>";
    let body = form(&api_key, 0).replace(
        "description=Deep+hole+in+the+right+lane",
        &format!("description={}", enc(text)),
    ) + &format!("&attribute[LANE]={}", enc(text));
    let (status, posted) = post_form(&app, "json", &body).await;
    assert_eq!(status, 200, "{posted}");
    let id = posted[0]["service_request_id"].as_str().unwrap();
    let attributes: Value =
        sqlx::query_scalar("SELECT attributes FROM reports WHERE reference = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attributes["LANE"], text);
    // JSON and XML (escaped in the document, the same text once parsed) agree.
    let (_, found) = get_both(&app, &format!("/open311/v2/requests/{id}"), "").await;
    assert_eq!(found[0]["description"], text);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_posted_form_with_attributes_is_stored_through_intake_on_the_open311_channel(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let api_key = client_key(&app).await;
    let body =
        form(&api_key, 0) + "&attribute[DEPTH]=shallow&attribute[LANE]=right&account_id=acct-9";
    let (status, posted) = post_form(&app, "json", &body).await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!(posted[0]["account_id"], "acct-9");
    let id = posted[0]["service_request_id"].as_str().unwrap();

    let (channel, attributes, created_by): (String, Value, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT channel, attributes, created_by FROM reports WHERE reference = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(channel, "open311");
    assert_eq!(attributes, json!({"DEPTH": "shallow", "LANE": "right"}));
    assert!(created_by.is_some(), "the client's token is recorded");

    let (_, found) = get_both(
        &app,
        &format!("/open311/v2/requests/{id}"),
        "?extensions=true",
    )
    .await;
    let ext = &found[0]["extended_attributes"];
    assert_eq!(ext["channel"], "open311");
    assert_eq!(ext["detailed_status"], "new");
    assert_eq!(found[0]["notes"][0]["kind"], "created");
    assert_eq!(found[0]["notes"][0]["role"], "open311-client");
    // The report is in the live index right after the POST answered.
    let (_, near) = get_both(
        &app,
        "/open311/v2/requests",
        "?lat=34.0522&long=-118.2437&radius=50",
    )
    .await;
    assert_eq!(near[0]["service_request_id"], id);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_second_post_of_the_same_problem_is_told_which_request_it_joined(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let api_key = client_key(&app).await;
    let (_, first) = post_form(&app, "json", &form(&api_key, 0)).await;
    let (status, second) = post_form(&app, "xml", &form(&api_key, 0)).await;
    assert_eq!(status, 200, "{second}");
    let first_id = first[0]["service_request_id"].as_str().unwrap();
    let notice = second[0]["service_notice"].as_str().unwrap();
    assert!(
        notice.contains(&format!("already reported as {first_id}")),
        "{notice}"
    );
    let second_id = second[0]["service_request_id"].as_str().unwrap();
    let (_, found) = get_both(&app, &format!("/open311/v2/requests/{second_id}"), "").await;
    assert_eq!(found[0]["status"], "closed");
    let notes = found[0]["status_notes"].as_str().unwrap();
    assert!(
        notes.contains(&format!("duplicate of {first_id}")),
        "{notes}"
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn contact_details_are_kept_apart_with_consent_naming_the_client_and_never_shown(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let api_key = client_key(&app).await;
    let body = form(&api_key, 0)
        + "&email=ann.lee%40example.org&first_name=Ann&last_name=Lee&phone=%2B1+213+555+0100&device_id=dev-1";
    let (status, posted) = post_form(&app, "json", &body).await;
    assert_eq!(status, 200, "{posted}");
    let (name, email, phone, consent): (String, String, String, String) =
        sqlx::query_as("SELECT name, email, phone, consent_text FROM reporters")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (name.as_str(), email.as_str(), phone.as_str()),
        ("Ann Lee", "ann.lee@example.org", "+1 213 555 0100")
    );
    assert!(
        consent.contains("Open311 client \"Pothole Pal app\""),
        "{consent}"
    );

    let id = posted[0]["service_request_id"].as_str().unwrap();
    for ext in ["json", "xml"] {
        for path in [
            format!("/open311/v2/requests/{id}.{ext}?extensions=true"),
            format!("/open311/v2/requests.{ext}?extensions=true"),
        ] {
            let text = app.get_text(&path).await;
            for secret in ["Ann", "Lee", "example.org", "555", "dev-1", "Pothole Pal"] {
                assert!(!text.contains(secret), "{path} shows {secret}: {text}");
            }
        }
    }
}

/// Whose `api_key` a form carries.
#[derive(Clone, Copy)]
enum ApiKey {
    Absent,
    Unknown,
    TokenOf(Role),
}

/// A valid form posted in `ext` with `api_key` is refused with the Open311 403, and nothing is
/// written.
async fn a_post_is_refused_for_its_api_key(pool: PgPool, ext: &str, api_key: ApiKey) {
    let app = TestApp::spawn(pool).await;
    let body = match api_key {
        ApiKey::Absent => form("", 0).replacen("api_key=&", "", 1),
        ApiKey::Unknown => form("cp_not-a-real-key", 0),
        ApiKey::TokenOf(role) => form(&app.token(role).await, 0),
    };
    let (status, body) = post_form(&app, ext, &body).await;
    assert_error_list(status, &body, 403, "api_key");
    assert_eq!(app.count_reports().await, 0);
}

cases! { async a_post_is_refused_for_its_api_key {
    posting_without_an_api_key_is_403_in_json: "json", ApiKey::Absent;
    posting_without_an_api_key_is_403_in_xml: "xml", ApiKey::Absent;
    posting_with_an_unknown_api_key_is_403_in_json: "json", ApiKey::Unknown;
    posting_with_an_unknown_api_key_is_403_in_xml: "xml", ApiKey::Unknown;
    // A token of a role that does not speak Open311 is refused as well.
    posting_with_a_crew_token_is_403_in_json: "json", ApiKey::TokenOf(Role::Crew);
    posting_with_a_crew_token_is_403_in_xml: "xml", ApiKey::TokenOf(Role::Crew);
}}

/// An agent's token may post (a call centre using an Open311 tool).
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_agents_token_may_post(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let agent = app.token(Role::Agent).await;
    let (status, _) = post_form(&app, "json", &form(&agent, 0)).await;
    assert_eq!(status, 200);
}

/// No report, reporter or history event was written.
async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(app.count_reports().await, 0);
    assert_eq!(count(&app.pool, "reporters").await, 0);
    assert_eq!(count(&app.pool, "report_events").await, 0);
}

/// The valid form without the fields named in `without`, then `extra`, posted in `ext`: the
/// Open311 error list with `status`, one entry mentioning `mentions`, and nothing written.
async fn a_post_is_refused(
    pool: PgPool,
    ext: &str,
    without: &[&str],
    extra: &str,
    status: u16,
    mentions: &str,
) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let body = form(&k, 0)
        .split('&')
        .filter(|p| !without.iter().any(|f| p.starts_with(&format!("{f}="))))
        .collect::<Vec<_>>()
        .join("&")
        + extra;
    let (got, errors) = post_form(&app, ext, &body).await;
    assert!(got == status, "{ext}: {got} {errors}");
    assert_error_list(got, &errors, status, mentions);
    assert_nothing_written(&app).await;
}

cases! { async a_post_is_refused {
    a_posted_nan_latitude_is_a_400_naming_lat_in_json: "json", &["lat"], "&lat=NaN", 400, "lat";
    a_posted_nan_latitude_is_a_400_naming_lat_in_xml: "xml", &["lat"], "&lat=NaN", 400, "lat";
    a_posted_infinite_longitude_is_a_400_naming_long_in_json:
        "json", &["long"], "&long=-inf", 400, "long";
    a_posted_infinite_longitude_is_a_400_naming_long_in_xml:
        "xml", &["long"], "&long=-inf", 400, "long";
    a_posted_latitude_past_90_is_a_400_naming_lat_in_json: "json", &["lat"], "&lat=91", 400, "lat";
    a_posted_latitude_past_90_is_a_400_naming_lat_in_xml: "xml", &["lat"], "&lat=91", 400, "lat";
    a_posted_longitude_past_180_is_a_400_naming_long_in_json:
        "json", &["long"], "&long=181", 400, "long";
    a_posted_longitude_past_180_is_a_400_naming_long_in_xml:
        "xml", &["long"], "&long=181", 400, "long";
    a_post_without_coordinates_is_a_400_naming_lat_in_json:
        "json", &["lat", "long"], "", 400, "lat";
    a_post_without_coordinates_is_a_400_naming_lat_in_xml: "xml", &["lat", "long"], "", 400, "lat";
    a_post_without_a_service_code_is_a_400_naming_it_in_json:
        "json", &["service_code"], "", 400, "service_code";
    a_post_without_a_service_code_is_a_400_naming_it_in_xml:
        "xml", &["service_code"], "", 400, "service_code";
    a_posted_unknown_service_code_is_a_404_naming_it_in_json:
        "json", &["service_code"], "&service_code=unicorn-sighting", 404, "service_code";
    a_posted_unknown_service_code_is_a_404_naming_it_in_xml:
        "xml", &["service_code"], "&service_code=unicorn-sighting", 404, "service_code";
    a_posted_description_of_4001_characters_is_a_400_naming_it_in_json:
        "json", &["description"], &format!("&description={}", "a".repeat(4001)), 400, "description";
    a_posted_description_of_4001_characters_is_a_400_naming_it_in_xml:
        "xml", &["description"], &format!("&description={}", "a".repeat(4001)), 400, "description";
    a_posted_description_with_a_control_character_is_a_400_naming_it_in_json:
        "json", &["description"], "&description=dark%07lamp", 400, "description";
    a_posted_description_with_a_control_character_is_a_400_naming_it_in_xml:
        "xml", &["description"], "&description=dark%07lamp", 400, "description";
    a_posted_address_with_a_control_character_is_a_400_naming_it_in_json:
        "json", &["address_string"], "&address_string=1+Main%1B+St", 400, "address_string";
    a_posted_string_attribute_with_a_control_character_is_a_400_naming_it_in_json:
        "json", &[], "&attribute[LANE]=right%00", 400, "attribute[LANE]";
    a_posted_string_attribute_with_a_control_character_is_a_400_naming_it_in_xml:
        "xml", &[], "&attribute[LANE]=right%00", 400, "attribute[LANE]";
    a_posted_value_that_is_not_utf_8_is_a_400_naming_its_field_in_json:
        "json", &[], "&address_id=%FF%FE", 400, "address_id";
    a_posted_value_that_is_not_utf_8_is_a_400_naming_its_field_in_xml:
        "xml", &[], "&address_id=%FF%FE", 400, "address_id";
    a_broken_percent_escape_is_a_400_naming_its_field_in_json:
        "json", &[], "&address_id=%ZZ", 400, "address_id";
    a_broken_percent_escape_is_a_400_naming_its_field_in_xml:
        "xml", &[], "&address_id=%ZZ", 400, "address_id";
    a_posted_unknown_field_is_a_400_naming_it_in_json: "json", &[], "&colour=red", 400, "colour";
    a_posted_unknown_field_is_a_400_naming_it_in_xml: "xml", &[], "&colour=red", 400, "colour";
    a_posted_repeated_field_is_a_400_naming_it_in_json: "json", &[], "&lat=1", 400, "lat";
    a_posted_repeated_field_is_a_400_naming_it_in_xml: "xml", &[], "&lat=1", 400, "lat";
    a_posted_unknown_attribute_value_is_a_400_naming_the_attribute_in_json:
        "json", &[], "&attribute[DEPTH]=bottomless", 400, "attribute[DEPTH]";
    a_posted_unknown_attribute_value_is_a_400_naming_the_attribute_in_xml:
        "xml", &[], "&attribute[DEPTH]=bottomless", 400, "attribute[DEPTH]";
    a_posted_unknown_attribute_is_a_400_naming_it_in_json:
        "json", &[], "&attribute[COLOUR]=red", 400, "attribute[COLOUR]";
    a_posted_unknown_attribute_is_a_400_naming_it_in_xml:
        "xml", &[], "&attribute[COLOUR]=red", 400, "attribute[COLOUR]";
    a_posted_bad_email_is_a_400_naming_it_in_json:
        "json", &[], "&email=not-an-address", 400, "email";
    a_posted_bad_email_is_a_400_naming_it_in_xml: "xml", &[], "&email=not-an-address", 400, "email";
    a_posted_script_media_url_is_a_400_naming_it_in_json:
        "json", &[], "&media_url=javascript%3Aalert(1)", 400, "media_url";
    a_posted_script_media_url_is_a_400_naming_it_in_xml:
        "xml", &[], "&media_url=javascript%3Aalert(1)", 400, "media_url";
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_body_that_is_not_a_form_is_a_400_naming_the_content_type(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .post(app.url("/open311/v2/requests.json"))
        .header("content-type", "application/json")
        .body(r#"{"service_code":"pothole"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_error_list(400, &body, 400, "Content-Type");
    assert_nothing_written(&app).await;
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn an_oversized_form_is_a_413_in_the_asked_format(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let res = app
        .client
        .post(app.url("/open311/v2/requests.xml"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&k, 0) + "&address_string=" + &"x".repeat(200_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["content-type"], "text/xml; charset=utf-8");
    assert_error_list(
        413,
        &xml_as_json(&res.text().await.unwrap()),
        413,
        "too large",
    );
    assert_nothing_written(&app).await;
}

// ---------------------------------------------------------------------------------------------
// GET requests: filters, defaults, extensions, areas.

const REQUESTS: &str = "/open311/v2/requests";

/// `path` with `query` gets the Open311 400 in both formats, one entry mentioning `mentions`.
async fn a_query_is_refused(pool: PgPool, path: &str, query: &str, mentions: &str) {
    let app = TestApp::spawn(pool).await;
    let (status, body) = get_both(&app, path, query).await;
    assert_error_list(status, &body, 400, mentions);
}

cases! { async a_query_is_refused {
    a_start_date_that_is_not_a_date_is_a_400: REQUESTS, "?start_date=yesterday", "start_date";
    an_end_date_without_a_time_zone_is_a_400: REQUESTS, "?end_date=2026-01-01T00:00:00", "end_date";
    a_date_range_longer_than_90_days_is_a_400:
        REQUESTS, "?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "90 days";
    an_end_date_before_the_start_date_is_a_400_naming_end_date:
        REQUESTS, "?start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", "end_date";
    an_updated_after_that_is_not_a_date_is_a_400: REQUESTS, "?updated_after=soon", "updated_after";
    a_bbox_of_three_numbers_is_a_400: REQUESTS, "?bbox=1,2,3", "bbox";
    a_bbox_whose_south_is_above_its_north_is_a_400:
        REQUESTS, "?bbox=-118.3,34.1,-118.2,34.0", "bbox";
    a_bbox_of_letters_is_a_400: REQUESTS, "?bbox=a,b,c,d", "bbox";
    a_bbox_past_180_is_a_400: REQUESTS, "?bbox=-190,0,0,1", "bbox";
    a_latitude_without_a_longitude_is_a_400_naming_long: REQUESTS, "?lat=34.05", "long";
    a_nan_latitude_in_a_query_is_a_400_naming_lat: REQUESTS, "?lat=NaN&long=-118.2", "lat";
    a_latitude_past_90_in_a_query_is_a_400_naming_lat: REQUESTS, "?lat=95&long=-118.2", "lat";
    a_negative_radius_is_a_400: REQUESTS, "?lat=34&long=-118.2&radius=-5", "radius";
    a_radius_without_a_centre_is_a_400: REQUESTS, "?radius=100", "radius";
    a_circle_and_a_bbox_together_are_a_400_naming_bbox:
        REQUESTS, "?lat=34&long=-118&bbox=0,0,1,1", "bbox";
    an_unknown_status_in_a_query_is_a_400: REQUESTS, "?status=pending", "status";
    an_unknown_service_code_in_a_query_is_a_400:
        REQUESTS, "?service_code=unicorn-sighting", "service_code";
    page_zero_is_a_400: REQUESTS, "?page=0", "page";
    a_page_size_past_1000_is_a_400: REQUESTS, "?page_size=5000", "page_size";
    an_extensions_flag_that_is_not_a_boolean_is_a_400: REQUESTS, "?extensions=maybe", "extensions";
    an_unknown_requests_parameter_is_a_400_naming_it: REQUESTS, "?colour=red", "colour";
    an_unknown_services_parameter_is_a_400_naming_it:
        "/open311/v2/services", "?colour=red", "colour";
}}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn empty_optional_arguments_act_as_absent(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    for n in 0..3 {
        assert_eq!(post_form(&app, "json", &form(&k, n)).await.0, 200);
    }
    let (_, plain) = get_both(&app, "/open311/v2/requests", "").await;
    assert_eq!(plain.as_array().unwrap().len(), 3);
    let (status, empty) = get_both(
        &app,
        "/open311/v2/requests",
        "?jurisdiction_id=&service_request_id=&service_code=&start_date=&end_date=&status=&lat=&long=&radius=&bbox=&page=&page_size=&updated_after=&extensions=",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(plain, empty);
    let (_, services) = get_both(&app, "/open311/v2/services", "?jurisdiction_id=").await;
    assert!(services.as_array().unwrap().len() >= 20);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_default_window_is_the_last_90_days_and_dates_select_older_ones(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, recent) = post_form(&app, "json", &form(&k, 0)).await;
    let (_, old) = post_form(&app, "json", &form(&k, 1)).await;
    let old_id = old[0]["service_request_id"].as_str().unwrap();
    sqlx::query(
        "UPDATE reports SET requested_at = now() - interval '120 days' WHERE reference = $1",
    )
    .bind(old_id)
    .execute(&app.pool)
    .await
    .unwrap();

    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["service_request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, default) = get_both(&app, "/open311/v2/requests", "").await;
    assert_eq!(
        ids(&default),
        vec![recent[0]["service_request_id"].as_str().unwrap()]
    );

    let start = (chrono::Utc::now() - chrono::Duration::days(150)).format("%Y-%m-%dT%H:%M:%SZ");
    let (_, older) = get_both(
        &app,
        "/open311/v2/requests",
        &format!("?start_date={start}"),
    )
    .await;
    assert_eq!(ids(&older), vec![old_id]);
    // By id, the window does not apply: service_request_id overrides every other argument.
    let (_, by_id) = get_both(
        &app,
        "/open311/v2/requests",
        &format!("?service_request_id={old_id}&status=closed"),
    )
    .await;
    assert_eq!(ids(&by_id), vec![old_id]);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn one_request_is_a_one_element_list_found_by_reference_or_imported_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, posted) = post_form(&app, "json", &form(&k, 0)).await;
    let id = posted[0]["service_request_id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE reports SET external_id = '1-3500123456' WHERE reference = $1")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    for key in [
        id.clone(),
        id.to_lowercase().replace('-', ""),
        "1-3500123456".into(),
    ] {
        let (status, one) = get_both(&app, &format!("/open311/v2/requests/{key}"), "").await;
        assert_eq!(status, 200, "{key}");
        assert_eq!(one.as_array().unwrap().len(), 1);
        assert_eq!(one[0]["service_request_id"], id);
    }
    let (_, listed) = get_both(
        &app,
        "/open311/v2/requests",
        "?service_request_id=1-3500123456,CP-0000-0000",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn closed_requests_say_why_and_extensions_show_history_by_role(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, a) = post_form(&app, "json", &form(&k, 0)).await;
    let (_, b) = post_form(&app, "json", &form(&k, 1)).await;
    let crew = app.token(Role::Crew).await;
    let close = |id: String, status: &'static str, note: Option<&'static str>| {
        let app = &app;
        let crew = crew.clone();
        async move {
            let res = app
                .client
                .post(app.url(&format!("/api/v1/reports/{id}/status")))
                .bearer_auth(crew)
                .json(&json!({"status": status, "note": note}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    let a_id = a[0]["service_request_id"].as_str().unwrap().to_owned();
    let b_id = b[0]["service_request_id"].as_str().unwrap().to_owned();
    close(a_id.clone(), "not_actionable", None).await;
    close(b_id.clone(), "fixed", Some("Patched by crew 3")).await;

    let (_, closed) = get_both(
        &app,
        "/open311/v2/requests",
        "?status=closed&extensions=true",
    )
    .await;
    assert_valid("requests.json", &closed, "closed requests with extensions");
    let by_id = |id: &str| {
        closed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service_request_id"] == id)
            .cloned()
            .unwrap()
    };
    let a = by_id(&a_id);
    assert_eq!(a["status"], "closed");
    assert_eq!(a["status_notes"], "closed: not actionable");
    assert_eq!(
        a["extended_attributes"]["detailed_status"],
        "not_actionable"
    );
    assert!(a["extended_attributes"]["closed_datetime"].is_string());
    let b = by_id(&b_id);
    assert_eq!(b["status_notes"], "Patched by crew 3");
    let notes = b["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1]["role"], "crew");
    assert_eq!(notes[1]["from_status"], "new");
    assert_eq!(notes[1]["to_status"], "fixed");
    let (_, open) = get_both(&app, "/open311/v2/requests", "?status=open").await;
    assert_eq!(open, json!([]));
    // Without extensions=true, nothing beyond the spec's fields.
    let (_, plain) = get_both(&app, "/open311/v2/requests", "?status=closed").await;
    assert!(plain[0].get("extended_attributes").is_none() && plain[0].get("notes").is_none());
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn updated_after_returns_only_requests_changed_since(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, a) = post_form(&app, "json", &form(&k, 0)).await;
    let (_, _b) = post_form(&app, "json", &form(&k, 1)).await;
    let a_id = a[0]["service_request_id"].as_str().unwrap();
    sqlx::query("UPDATE reports SET updated_at = now() - interval '2 days' WHERE reference <> $1")
        .bind(a_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let since =
        (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%S%%2B00:00");
    let (_, changed) = get_both(
        &app,
        "/open311/v2/requests",
        &format!("?updated_after={since}"),
    )
    .await;
    assert_eq!(changed.as_array().unwrap().len(), 1);
    assert_eq!(changed[0]["service_request_id"], a_id);
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn area_queries_answered_from_the_spatial_index_match_postgis(pool: PgPool) {
    use citypin::auth::Caller;
    use citypin::domain::{Channel, Description, ServiceCode, Status};
    use citypin::intake::{self, NewReport};

    let app = TestApp::spawn(pool).await;
    let mut rng = Lcg(42);
    let codes = ["pothole", "graffiti-removal", "bulky-items"];
    let crew = app.token(Role::Crew).await;
    let staff = Caller {
        token: auth::lookup(&app.pool, &crew).await.unwrap(),
    };
    for i in 0..240 {
        let new = NewReport {
            service_code: ServiceCode::parse(codes[i % 3]).unwrap(),
            position: citypin::geo::Position::new(
                -118.30 + rng.unit() * 0.10,
                34.00 + rng.unit() * 0.10,
            )
            .unwrap(),
            description: Description::parse("generated").unwrap(),
            address: None,
            zipcode: None,
            channel: Channel::Web,
            attributes: serde_json::Map::new(),
            media_url: None,
            contact: None,
        };
        let intake::Outcome::Created(r) =
            intake::submit(&app.state, new, &Caller::citizen(), None, &[])
                .await
                .unwrap()
        else {
            panic!("not created");
        };
        // A duplicate's status follows its parent (changing it by hand is refused).
        if rng.unit() < 0.3 && r.status != Status::Duplicate {
            citypin::reports::change_status(&app.state, r.id, Status::Fixed, None, &staff)
                .await
                .unwrap();
        }
    }
    let now = chrono::Utc::now();
    let known = |c: &str| app.state.catalogue.get(c).is_some();
    let mut compared = 0;
    for round in 0..60 {
        let (lon, lat) = (-118.30 + rng.unit() * 0.10, 34.00 + rng.unit() * 0.10);
        let area = if round % 2 == 0 {
            format!(
                "lat={lat}&long={lon}&radius={}",
                300.0 + rng.unit() * 3000.0
            )
        } else {
            let (w, h) = (rng.unit() * 0.05, rng.unit() * 0.05);
            format!("bbox={},{},{},{}", lon, lat, lon + w, lat + h)
        };
        let extra = match round % 4 {
            0 => "",
            1 => "&status=open",
            2 => "&service_code=pothole,bulky-items&page_size=7&page=2",
            _ => "&status=closed&page_size=5",
        };
        let q = RequestsQuery::parse(&format!("{area}{extra}"), now, known).unwrap();
        let refs = |rs: Vec<citypin::domain::Report>| -> Vec<String> {
            rs.into_iter().map(|r| r.reference).collect()
        };
        let from_index = refs(search::find(&app.state, &q).await.unwrap());
        let from_postgis = refs(search::from_postgis(&app.state, &q).await.unwrap());
        if let (Some(Area::Circle { center, radius_m }), true) =
            (q.area, from_index != from_postgis)
        {
            // The index measures on the sphere and PostGIS on the spheroid: over the whole
            // (unpaged) list they may disagree only about points within 0.5 % of the edge.
            let whole = RequestsQuery {
                page: 1,
                page_size: 1000,
                ..q.clone()
            };
            let a = search::find(&app.state, &whole).await.unwrap();
            let b = search::from_postgis(&app.state, &whole).await.unwrap();
            let in_a: HashSet<&str> = a.iter().map(|r| r.reference.as_str()).collect();
            let in_b: HashSet<&str> = b.iter().map(|r| r.reference.as_str()).collect();
            for r in a.iter().chain(&b) {
                if in_a.contains(r.reference.as_str()) != in_b.contains(r.reference.as_str()) {
                    let d = center.distance_m(r.position());
                    assert!(
                        (d - radius_m).abs() < radius_m * 0.005,
                        "round {round}: {} at {d} m of {radius_m} m",
                        r.reference
                    );
                }
            }
            continue;
        }
        assert_eq!(from_index, from_postgis, "round {round}: {area}{extra}");
        compared += usize::from(!from_index.is_empty());
    }
    assert!(compared > 20, "too few non-empty comparisons: {compared}");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn pages_split_the_list_without_gaps_or_repeats(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    for n in 0..7 {
        assert_eq!(post_form(&app, "json", &form(&k, n)).await.0, 200);
    }
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["service_request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for area in ["", "&bbox=-118.3,34.0,-118.2,34.1"] {
        let (_, all) = get_both(
            &app,
            "/open311/v2/requests",
            &format!("?page_size=1000{area}"),
        )
        .await;
        let all = ids(&all);
        assert_eq!(all.len(), 7);
        let mut paged = Vec::new();
        for page in 1..=3 {
            let (_, p) = get_both(
                &app,
                "/open311/v2/requests",
                &format!("?page_size=3&page={page}{area}"),
            )
            .await;
            paged.extend(ids(&p));
        }
        assert_eq!(paged, all, "{area}");
    }
}

/// `source=postgis` is the same endpoint answered by `PostGIS` (the benchmark's baseline): the
/// same requests in the same order as the live index.
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn area_requests_from_postgis_equal_the_index_path(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.import_la_sample().await;
    let admin = app.token(Role::Admin).await;
    let window = "&start_date=2018-12-01T00:00:00Z&end_date=2019-01-01T00:00:00Z";
    let queries = [
        "lat=34.0522&long=-118.2437&radius=500",
        "lat=34.10&long=-118.33&radius=800&status=closed",
        "lat=34.05&long=-118.30&radius=1000&page_size=20&page=2",
        "lat=33.99&long=-118.40&radius=1500&service_code=graffiti-removal,bulky-items",
        "bbox=-118.26,34.04,-118.24,34.06",
    ];
    let get = |q: String, token: Option<&str>| {
        let mut req = app
            .client
            .get(app.url(&format!("/open311/v2/requests.json?{q}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|r| r["service_request_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let mut compared = 0;
    for q in queries {
        let (s1, index) = get(format!("{q}{window}"), None).await;
        let (s2, postgis) = get(format!("{q}{window}&source=postgis"), Some(&admin)).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {postgis}");
        assert_eq!(ids(&index), ids(&postgis), "{q}");
        assert_eq!(index, postgis, "{q}: same JSON");
        compared += ids(&index).len();
    }
    assert!(compared > 50, "too few requests compared: {compared}");
}

const POSTGIS_AREA: &str = "lat=34.0522&long=-118.2437&radius=500\
    &start_date=2018-12-01T00:00:00Z&end_date=2019-01-01T00:00:00Z&source=postgis";

/// An area query asked in `ext` with a token of `role` (none when `None`) gets the Open311
/// error list with `status`, its first description starting with `starts`.
async fn an_area_query_is_refused(
    pool: PgPool,
    ext: &str,
    role: Option<Role>,
    query: &str,
    status: u16,
    starts: &str,
) {
    let app = TestApp::spawn(pool).await;
    let mut req = app
        .client
        .get(app.url(&format!("/open311/v2/requests.{ext}?{query}")));
    if let Some(role) = role {
        req = req.bearer_auth(app.token(role).await);
    }
    let res = req.send().await.expect("request");
    assert_eq!(res.status(), status);
    let text = res.text().await.expect("body");
    let body = if ext == "xml" {
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{text}"
        );
        xml_as_json(&text)
    } else {
        serde_json::from_str(&text).expect("json")
    };
    assert_eq!(body[0]["code"], status, "{body}");
    assert!(
        body[0]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty() && d.starts_with(starts)),
        "{body}"
    );
}

cases! { async an_area_query_is_refused {
    an_area_query_from_postgis_without_a_token_is_403_in_json: "json", None, POSTGIS_AREA, 403, "";
    an_area_query_from_postgis_with_a_crew_token_is_403_in_json:
        "json", Some(Role::Crew), POSTGIS_AREA, 403, "";
    an_area_query_from_postgis_without_a_token_is_403_in_xml: "xml", None, POSTGIS_AREA, 403, "";
    an_unknown_source_is_a_400_naming_source:
        "json", Some(Role::Admin), "lat=34.0522&long=-118.2437&radius=500&source=mysql",
        400, "source:";
}}

async fn discovery_url(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let mut req = app.client.get(app.url("/open311/discovery.json"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("discovery");
    let body: Value = res.json().await.expect("discovery JSON");
    body["endpoints"][0]["url"]
        .as_str()
        .expect("an endpoint url")
        .to_owned()
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn discovery_names_the_public_url_a_trusted_proxy_forwards(pool: PgPool) {
    let settings = citypin::config::Settings {
        trusted_proxies: citypin::net::parse_list("127.0.0.0/8").unwrap(),
        ..Default::default()
    };
    let app = TestApp::spawn_with(pool, settings).await;
    let forwarded = [(
        "forwarded",
        "for=192.0.2.7;proto=https;host=311.city.example",
    )];
    assert_eq!(
        discovery_url(&app, &forwarded).await,
        "https://311.city.example/open311/v2"
    );
    let x_forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "city.example"),
    ];
    assert_eq!(
        discovery_url(&app, &x_forwarded).await,
        "https://city.example/open311/v2"
    );
    let (_, ogc) = app.get_json("/ogc?f=json").await;
    assert!(
        ogc.to_string()
            .contains(&format!("http://{}/ogc", app.addr)),
        "no header, no change"
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn discovery_ignores_forwarding_headers_from_an_untrusted_peer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let forwarded = [("forwarded", "proto=https;host=evil.example")];
    assert_eq!(
        discovery_url(&app, &forwarded).await,
        format!("http://{}/open311/v2", app.addr)
    );
}

// ---------------------------------------------------------------------------------------------
// Conformance (issue 17, items 11 to 15).

/// A request posted, then listed by its `service_request_id` with `extra` arguments, stale or
/// invalid: the id overrides them, in both formats.
async fn service_request_id_overrides(pool: PgPool, extra: &str) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, posted) = post_form(&app, "json", &form(&k, 0)).await;
    let id = posted[0]["service_request_id"].as_str().expect("id");
    let (status, found) = get_both(
        &app,
        "/open311/v2/requests",
        &format!("?service_request_id={id}{extra}"),
    )
    .await;
    assert_eq!(status, 200, "{extra}: {found}");
    assert_eq!(found[0]["service_request_id"], id, "{extra}");
}

cases! { async service_request_id_overrides {
    service_request_id_overrides_an_unknown_service_code: "&service_code=unicorn-sighting";
    service_request_id_overrides_a_start_date_that_is_not_a_date: "&start_date=yesterday";
    service_request_id_overrides_an_unknown_status_and_page_zero: "&status=pending&page=0";
    service_request_id_overrides_an_unknown_parameter_and_a_bad_bbox: "&colour=red&bbox=1,2,3";
}}

/// The one-request path: the id in the path overrides the rest the same way.
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_id_in_the_path_overrides_the_other_arguments(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, posted) = post_form(&app, "json", &form(&k, 0)).await;
    let id = posted[0]["service_request_id"].as_str().unwrap();
    let (status, one) = get_both(
        &app,
        &format!("/open311/v2/requests/{id}"),
        "?service_code=unicorn-sighting&extensions=true",
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert!(one[0]["extended_attributes"].is_object(), "{one}");
}

/// The committed catalogue with a multivaluelist attribute added to potholes, in a file of its
/// own that is removed when dropped.
struct MultivalueCatalogue(std::path::PathBuf);

impl MultivalueCatalogue {
    fn new() -> Self {
        let committed = crate::helpers::workspace().join("config/services.json");
        let mut catalogue: Value =
            serde_json::from_str(&std::fs::read_to_string(committed).expect("read catalogue"))
                .expect("catalogue JSON");
        let pothole = catalogue["services"]
            .as_array_mut()
            .expect("services")
            .iter_mut()
            .find(|s| s["service_code"] == "pothole")
            .expect("pothole");
        pothole["attributes"]
            .as_array_mut()
            .expect("attributes")
            .push(json!({
                "variable": true, "code": "HAZARDS", "datatype": "multivaluelist",
                "required": false, "datatype_description": null, "order": 9,
                "description": "What else is wrong?",
                "values": [{"key": "water", "name": "Standing water"},
                           {"key": "debris", "name": "Debris"},
                           {"key": "cones", "name": "Cones missing"}]
            }));
        let path =
            std::env::temp_dir().join(format!("citypin-multivalue-{}.json", uuid::Uuid::now_v7()));
        std::fs::write(&path, catalogue.to_string()).expect("write catalogue");
        Self(path)
    }
}

impl Drop for MultivalueCatalogue {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn multivaluelist_attributes_are_accepted_repeated_or_php_indexed(pool: PgPool) {
    let catalogue = MultivalueCatalogue::new();
    let settings = citypin::config::Settings {
        catalogue: Some(catalogue.0.clone()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(pool, settings).await;
    let k = client_key(&app).await;
    let stored = |id: String| {
        let pool = app.pool.clone();
        async move {
            let (attributes,): (Value,) =
                sqlx::query_as("SELECT attributes FROM reports WHERE reference = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("stored report");
            attributes
        }
    };
    for (n, fields) in [
        (0, "&attribute[HAZARDS]=water&attribute[HAZARDS]=debris"),
        (
            1,
            "&attribute[HAZARDS][0]=water&attribute[HAZARDS][1]=debris",
        ),
        (2, "&attribute[HAZARDS][]=water&attribute[HAZARDS][]=debris"),
    ] {
        let (status, posted) = post_form(&app, "json", &(form(&k, n) + fields)).await;
        assert!(status < 300, "{fields}: {status} {posted}");
        let id = posted[0]["service_request_id"].as_str().unwrap().to_owned();
        assert_eq!(
            stored(id).await,
            json!({"HAZARDS": ["water", "debris"]}),
            "{fields}"
        );
    }
    // An empty argument is absent, for an attribute the service does not define too.
    let (status, posted) = post_form(
        &app,
        "json",
        &(form(&k, 3) + "&attribute[COLOUR]=&attribute[HAZARDS]="),
    )
    .await;
    assert!(status < 300, "{status} {posted}");
    // A single-value attribute still takes one value.
    let (status, errors) = post_form(
        &app,
        "json",
        &(form(&k, 4) + "&attribute[DEPTH]=deep&attribute[DEPTH]=shallow"),
    )
    .await;
    assert_error_list(status, &errors, 400, "attribute[DEPTH]");
}

/// A crew member sets a request's status with a note, through the native API.
async fn crew_sets_status(app: &TestApp, id: &str, status: &str, note: &str) {
    let crew = app.token(Role::Crew).await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/reports/{id}/status")))
        .bearer_auth(&crew)
        .json(&json!({"status": status, "note": note}))
        .send()
        .await
        .expect("status change");
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn extensions_follow_the_chicago_boston_sf_convention_without_personal_data(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let contact =
        "&email=ann.lee%40example.org&first_name=Ann&last_name=Lee&phone=%2B1+213+555+0100";
    let (_, parent) = post_form(
        &app,
        "json",
        &(form(&k, 0) + "&attribute[DEPTH]=deep&attribute[LANE]=right" + contact),
    )
    .await;
    let (_, child) = post_form(&app, "json", &(form(&k, 0) + contact)).await;
    let parent_id = parent[0]["service_request_id"].as_str().unwrap().to_owned();
    let child_id = child[0]["service_request_id"].as_str().unwrap().to_owned();
    // Attributes the service does not define (the native API stores any object) stay hidden.
    sqlx::query(
        "UPDATE reports SET attributes = attributes || '{\"caller\": \"Ann Lee\"}' WHERE reference = $1",
    )
    .bind(&parent_id)
    .execute(&app.pool)
    .await
    .unwrap();
    crew_sets_status(&app, &parent_id, "fixed", "Patched by crew 3").await;

    let (status, found) = get_both(
        &app,
        "/open311/v2/requests",
        &format!("?service_request_id={parent_id},{child_id}&extensions=true"),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_valid("requests.json", &found, "requests with extensions");
    let by_id = |id: &str| {
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service_request_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing: {found}"))
    };
    let p = by_id(&parent_id);
    assert_eq!(
        p["attributes"],
        // LANE is free text, which may name a person or a plate: never shown.
        json!([{"code": "DEPTH", "value": "deep"}])
    );
    assert_eq!(p["extended_attributes"]["duplicate"], false);
    assert_eq!(
        p["extended_attributes"]["parent_service_request_id"],
        Value::Null
    );
    assert_eq!(p["extended_attributes"]["detailed_status"], "fixed");
    let notes = p["notes"].as_array().unwrap();
    assert_eq!(notes[0]["type"], "opened");
    assert_eq!(notes[0]["summary"], "Request opened");
    let last = notes.last().unwrap();
    assert_eq!(last["type"], "closed");
    assert_eq!(last["summary"], "Request closed: fixed");
    assert_eq!(last["description"], "Patched by crew 3");
    assert_eq!(last["role"], "crew");
    for n in notes {
        for field in ["datetime", "summary", "type"] {
            assert!(n[field].is_string(), "{field}: {n}");
        }
    }
    let c = by_id(&child_id);
    assert_eq!(c["extended_attributes"]["duplicate"], true);
    assert_eq!(
        c["extended_attributes"]["parent_service_request_id"],
        parent_id
    );
    assert_eq!(c["extended_attributes"]["duplicate_of"], parent_id);
    assert_eq!(c["attributes"], json!([]));

    for ext in ["json", "xml"] {
        let text = app
            .get_text(&format!(
                "/open311/v2/requests.{ext}?service_request_id={parent_id},{child_id}&extensions=true"
            ))
            .await;
        for secret in ["Ann", "Lee", "example.org", "555", "Pothole Pal", "caller"] {
            assert!(!text.contains(secret), "{ext} shows {secret}: {text}");
        }
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn xml_notes_hold_no_note_element_inside_a_note(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let (_, posted) = post_form(&app, "json", &form(&k, 0)).await;
    let id = posted[0]["service_request_id"].as_str().unwrap();
    crew_sets_status(&app, id, "in_progress", "Crew on site").await;
    let xml = app
        .get_text(&format!("/open311/v2/requests/{id}.xml?extensions=true"))
        .await;
    assert_eq!(xml.matches("<note>").count(), 2, "two events: {xml}");
    for note in xml.split("<note>").skip(1) {
        let body = note.split("</note>").next().unwrap_or_default();
        assert!(!body.contains("<note"), "a note inside a note: {xml}");
    }
    assert!(
        xml.contains("<description>Crew on site</description>"),
        "{xml}"
    );
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn posting_a_request_answers_200_as_the_georeport_swagger_documents(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    for (n, ext) in [(0, "json"), (1, "xml")] {
        let (status, posted) = post_form(&app, ext, &form(&k, n)).await;
        assert_eq!(status, 200, "{ext}: {posted}");
        assert!(posted[0]["service_request_id"].is_string(), "{posted}");
    }
    // The native API keeps 201 Created.
    let (status, _) = app.post_report(&crate::helpers::pothole(), &key()).await;
    assert_eq!(status, 201);
}

/// `method` on `path` in `ext` is a 405 whose `Allow` names `allow`, with the error list in that
/// format.
async fn a_method_is_not_allowed(
    pool: PgPool,
    method: reqwest::Method,
    path: &str,
    ext: &str,
    allow: &str,
) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .request(method.clone(), app.url(&format!("{path}.{ext}")))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let allowed = res.headers()["allow"]
        .to_str()
        .expect("ASCII Allow")
        .to_owned();
    assert!(allowed.contains(allow), "{method} {path}.{ext}: {allowed}");
    let ct = res.headers()["content-type"]
        .to_str()
        .expect("ASCII content type")
        .to_owned();
    let text = res.text().await.expect("body");
    let body = if ext == "xml" {
        assert_eq!(ct, "text/xml; charset=utf-8");
        xml_as_json(&text)
    } else {
        assert_eq!(ct, "application/json; charset=utf-8");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    assert_error_list(status, &body, 405, "not allowed");
}

cases! { async a_method_is_not_allowed {
    put_on_requests_is_405_allowing_post_in_json:
        reqwest::Method::PUT, "/open311/v2/requests", "json", "POST";
    put_on_requests_is_405_allowing_post_in_xml:
        reqwest::Method::PUT, "/open311/v2/requests", "xml", "POST";
    delete_on_services_is_405_allowing_get_in_json:
        reqwest::Method::DELETE, "/open311/v2/services", "json", "GET";
    delete_on_services_is_405_allowing_get_in_xml:
        reqwest::Method::DELETE, "/open311/v2/services", "xml", "GET";
    post_on_discovery_is_405_allowing_get_in_json:
        reqwest::Method::POST, "/open311/discovery", "json", "GET";
    post_on_discovery_is_405_allowing_get_in_xml:
        reqwest::Method::POST, "/open311/discovery", "xml", "GET";
    patch_on_a_request_is_405_allowing_get_in_json:
        reqwest::Method::PATCH, "/open311/v2/requests/CP-0000-0000", "json", "GET";
    patch_on_a_request_is_405_allowing_get_in_xml:
        reqwest::Method::PATCH, "/open311/v2/requests/CP-0000-0000", "xml", "GET";
}}

/// The `Link` header's target, if the answer has a next page.
fn next_link(res: &reqwest::Response) -> Option<String> {
    let link = res.headers().get("link")?.to_str().expect("ASCII link");
    let (target, rel) = link.split_once(">; ")?;
    assert_eq!(rel, "rel=\"next\"", "{link}");
    Some(target.trim_start_matches('<').to_owned())
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_list_cut_at_the_page_size_links_to_the_next_page(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    for n in 0..3 {
        assert_eq!(post_form(&app, "json", &form(&k, n)).await.0, 200);
    }
    // Smaller pages say so too, on the live index's path as well.
    for area in ["", "&bbox=-118.3,34.0,-118.2,34.1"] {
        let get = |page: u32| {
            let url = app.url(&format!(
                "/open311/v2/requests.json?page_size=2&page={page}{area}"
            ));
            let client = app.client.clone();
            async move { client.get(url).send().await.unwrap() }
        };
        let first = next_link(&get(1).await).expect("page 1 of a longer list");
        assert!(
            first.contains("page_size=2") && first.ends_with("page=2"),
            "{first}"
        );
        assert_eq!(next_link(&get(2).await), None, "{area}");
    }
    // 1,001 requests in the default window: one more than the largest page.
    sqlx::query(
        "INSERT INTO reports (id, reference, service_code, status, description, channel, location,
                              h3_cell, requested_at, updated_at)
         SELECT gen_random_uuid(), 'CP-T' || lpad(g::text, 4, '0') || '-0000', service_code, status,
                description, channel, location, h3_cell, requested_at - make_interval(secs => g),
                updated_at
         FROM (SELECT * FROM reports LIMIT 1) r, generate_series(1, 998) g",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for ext in ["json", "xml"] {
        let res = app
            .client
            .get(app.url(&format!("/open311/v2/requests.{ext}?status=open&api_key=k")))
            .send()
            .await
            .unwrap();
        let next = next_link(&res).expect("a cut list links to its next page");
        assert_eq!(
            next,
            app.url(&format!("/open311/v2/requests.{ext}?status=open&page=2"))
        );
        let text = res.text().await.unwrap();
        let first = if ext == "xml" {
            xml_as_json(&text)
        } else {
            serde_json::from_str(&text).unwrap()
        };
        assert_eq!(first.as_array().unwrap().len(), 1000);
        let res = app.client.get(&next).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(next_link(&res), None, "the last page links nowhere");
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn start_date_alone_selects_the_90_days_from_then_on(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let k = client_key(&app).await;
    let mut ids = Vec::new();
    for (n, days_ago) in [(0, 200), (1, 150), (2, 40)] {
        let (_, posted) = post_form(&app, "json", &form(&k, n)).await;
        let id = posted[0]["service_request_id"].as_str().unwrap().to_owned();
        sqlx::query(
            "UPDATE reports SET requested_at = now() - make_interval(days => $2) WHERE reference = $1",
        )
        .bind(&id)
        .bind(days_ago)
        .execute(&app.pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let start = (chrono::Utc::now() - chrono::Duration::days(160)).format("%Y-%m-%dT%H:%M:%SZ");
    let (status, found) = get_both(
        &app,
        "/open311/v2/requests",
        &format!("?start_date={start}"),
    )
    .await;
    assert_eq!(status, 200);
    let found: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["service_request_id"].as_str().unwrap())
        .collect();
    // From 160 days ago to 70 days ago: not the older one, nor the one 40 days old.
    assert_eq!(found, vec![ids[1].as_str()]);
}
