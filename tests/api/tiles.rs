//! Vector tiles: freshness after a write, 304s, filters, TileJSON, and real LA tiles decoded by
//! GDAL's MVT driver and the Python `mapbox-vector-tile` package, checked against `PostGIS`.

use std::collections::BTreeSet;
use std::process::Command;

use citypin::geo::{Position, TileId};
use citypin::tiles::mvt::Tile;
use prost::Message as _;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, key, pothole, workspace};

struct Fetched {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
}

async fn fetch(app: &TestApp, path: &str, etag: Option<&str>) -> Fetched {
    let mut req = app.client.get(app.url(path));
    if let Some(e) = etag {
        req = req.header("If-None-Match", e);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = res.bytes().await.expect("body").to_vec();
    Fetched { status, etag, body }
}

fn tile_path(t: TileId) -> String {
    format!("/tiles/{}/{}/{}.mvt", t.z(), t.x(), t.y())
}

/// Each layer's features' string properties named `key`.
fn strings(tile: &Tile, layer: &str, key: &str) -> Vec<String> {
    let Some(l) = tile.layers.iter().find(|l| l.name == layer) else {
        return Vec::new();
    };
    let Some(k) = l.keys.iter().position(|k| k == key) else {
        return Vec::new();
    };
    l.features
        .iter()
        .filter_map(|f| {
            f.tags
                .chunks(2)
                .find(|p| p[0] as usize == k)
                .and_then(|p| l.values[p[1] as usize].string_value.clone())
        })
        .collect()
}

fn decode(bytes: &[u8]) -> Tile {
    Tile::decode(bytes).expect("a valid tile")
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_report_accepted_now_is_in_the_next_fetch_of_its_tile_and_far_tiles_answer_304(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let here = Position::new(-118.2437, 34.0522).expect("position");
    let far = Position::new(-118.4973, 34.0084).expect("position");
    let mut before = Vec::new();
    for z in [10u8, 14, 16] {
        for p in [here, far] {
            let f = fetch(&app, &tile_path(TileId::containing(p, z)), None).await;
            assert_eq!(f.status, 200);
            assert!(decode(&f.body).layers.is_empty(), "no incidents yet");
            before.push((z, p, f.etag.expect("an ETag")));
        }
    }

    let (status, report) = app.post_report(&pothole(), &key()).await;
    assert_eq!(status, 201, "{report}");
    let id = report["id"].as_str().expect("id").to_owned();

    for (z, p, etag) in before {
        let f = fetch(&app, &tile_path(TileId::containing(p, z)), Some(&etag)).await;
        if p == far && z >= 14 {
            assert_eq!(f.status, 304, "z{z} far away did not change");
            continue;
        }
        if p == far {
            // At z10 Santa Monica is 24 km away but within the hotspot margin of the tile
            // next door, so it is either unchanged (304) or changed by the hotspot only.
            assert!(f.status == 304 || f.status == 200);
            continue;
        }
        assert_eq!(f.status, 200, "z{z}: the tile holding the report changed");
        let tile = decode(&f.body);
        assert_eq!(
            strings(&tile, "incidents", "id"),
            std::slice::from_ref(&id),
            "z{z}"
        );
        assert_eq!(strings(&tile, "hotspots", "h3").len(), 1, "z{z}");
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn filters_apply_to_every_layer_and_bad_ones_name_their_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, _) = app.post_report(&pothole(), &key()).await;
    assert_eq!(status, 201);
    let t = TileId::containing(Position::new(-118.2437, 34.0522).expect("p"), 15);
    let shown = fetch(
        &app,
        &format!("{}?service_code=pothole&status=open", tile_path(t)),
        None,
    )
    .await;
    assert_eq!(
        strings(&decode(&shown.body), "incidents", "service_code"),
        ["pothole"]
    );
    for q in [
        "service_code=graffiti-removal",
        "status=closed",
        "end=2001-01-01",
    ] {
        let hidden = fetch(&app, &format!("{}?{q}", tile_path(t)), None).await;
        assert_eq!(hidden.status, 200);
        assert!(
            decode(&hidden.body).layers.is_empty(),
            "{q}: no layer at all"
        );
    }
    for (q, field) in [
        ("status=opened", "status"),
        ("start=last-week", "start"),
        ("colour=red", "colour"),
    ] {
        let (s, problem) = app.get_json(&format!("{}?{q}", tile_path(t))).await;
        assert_eq!(s, 400, "{q}: a bad query value is a bad request");
        assert_eq!(problem["errors"][0]["field"], field, "{q}: {problem}");
    }
    let (s, problem) = app.get_json("/tiles/15/99999/1.mvt").await;
    assert_eq!(s, 400);
    assert_eq!(problem["errors"][0]["field"], "x");
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn tilejson_describes_the_layers_bounds_and_passes_the_filter_through(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.post_report(&pothole(), &key()).await.0, 201);
    let (status, tj) = app
        .get_json("/tiles.json?status=open&service_code=pothole")
        .await;
    assert_eq!(status, 200, "{tj}");
    assert_eq!(tj["tilejson"], "3.0.0");
    let url = tj["tiles"][0].as_str().expect("url");
    assert_eq!(
        url,
        app.url("/tiles/{z}/{x}/{y}.mvt?service_code=pothole&status=new%2Cacknowledged%2Cscheduled%2Cin_progress")
    );
    let layers: Vec<&str> = tj["vector_layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(layers, ["incidents", "clusters", "hotspots"]);
    for field in [
        "id",
        "reference",
        "service_code",
        "group",
        "status",
        "age_days",
        "supporters",
    ] {
        assert!(
            tj["vector_layers"][0]["fields"][field].is_string(),
            "{field}"
        );
    }
    assert!(tj["vector_layers"][1]["fields"]["count_roads"].is_string());
    let b = &tj["bounds"];
    assert_eq!(b, &json!([-118.2437, 34.0522, -118.2437, 34.0522]));
}

/// Ids of the incidents `PostGIS` puts in the tile: the same half-open square
/// `[xmin, xmax) × (ymin, ymax]` in EPSG:3857 that citypin uses, duplicates left out.
async fn postgis_ids(pool: &PgPool, t: TileId) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "WITH e AS (SELECT ST_TileEnvelope($1, $2, $3) AS env),
              p AS (SELECT id, ST_Transform(location, 3857) AS g FROM reports
                    WHERE NOT hidden AND status <> 'duplicate')
         SELECT p.id::text FROM p, e
         WHERE ST_X(p.g) >= ST_XMin(e.env) AND ST_X(p.g) < ST_XMax(e.env)
           AND ST_Y(p.g) > ST_YMin(e.env) AND ST_Y(p.g) <= ST_YMax(e.env)",
    )
    .bind(i32::from(t.z()))
    .bind(t.x() as i32)
    .bind(t.y() as i32)
    .fetch_all(pool)
    .await
    .expect("postgis ids")
    .into_iter()
    .collect()
}

/// What one decoder saw in a tile: incident ids, and the sum of cluster `point_count`s.
#[derive(Debug, PartialEq)]
struct Seen {
    ids: BTreeSet<String>,
    clustered: u64,
}

fn python_decode(file: &std::path::Path) -> (Value, Seen) {
    let python = workspace().join("target/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (make test does)",
        python.display()
    );
    let out = Command::new(python)
        .arg(workspace().join("scripts/mvt_decode.py"))
        .arg(file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let feats = |layer: &str| v[layer]["features"].as_array().cloned().unwrap_or_default();
    let seen = Seen {
        ids: feats("incidents")
            .iter()
            .map(|f| f["id"].as_str().expect("id").to_owned())
            .collect(),
        clustered: feats("clusters")
            .iter()
            .map(|f| f["point_count"].as_u64().expect("count"))
            .sum(),
    };
    (v, seen)
}

/// Runs GDAL's MVT driver (`ogr2ogr` from gdal-bin) over one layer of a tile it fetches from
/// the server itself (`/vsicurl/`, z/x/y read from the URL), as `GeoJSON`.
async fn gdal_layer(url: &str, layer: &str) -> Vec<Value> {
    let out = tokio::process::Command::new("ogr2ogr")
        .args(["-f", "GeoJSON", "/vsistdout/"])
        .arg(format!("/vsicurl/{url}"))
        .arg(layer)
        .env("GDAL_HTTP_MAX_RETRY", "0")
        .output()
        .await
        .expect("ogr2ogr runs (apt install gdal-bin)");
    if !out.status.success() {
        // A layer absent from the tile is an error to ogr2ogr; anything else is a failure.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Couldn't fetch requested layer"), "{err}");
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("GeoJSON from GDAL");
    v["features"].as_array().cloned().unwrap_or_default()
}

async fn gdal_decode(url: &str) -> Seen {
    Seen {
        ids: gdal_layer(url, "incidents")
            .await
            .iter()
            .map(|f| f["properties"]["id"].as_str().expect("id").to_owned())
            .collect(),
        clustered: gdal_layer(url, "clusters")
            .await
            .iter()
            .map(|f| f["properties"]["point_count"].as_u64().expect("count"))
            .sum(),
    }
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn real_la_tiles_decoded_by_gdal_and_python_hold_what_postgis_finds(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.import_la_sample().await;
    let dir = workspace().join("target/tile-tests");
    std::fs::create_dir_all(&dir).expect("dir");
    // Downtown, Hollywood, the Valley and Venice; each at zooms 10 to 16.
    let places = [
        (-118.2437, 34.0522),
        (-118.3287, 34.0928),
        (-118.4487, 34.1867),
        (-118.4695, 33.9850),
    ];
    let mut checked_points = 0;
    for (lon, lat) in places {
        for z in 10u8..=16 {
            let t = TileId::containing(Position::new(lon, lat).expect("p"), z);
            let f = fetch(&app, &tile_path(t), None).await;
            assert_eq!(f.status, 200);
            let file = dir.join(format!("{}-{}-{}.mvt", t.z(), t.x(), t.y()));
            std::fs::write(&file, &f.body).expect("write");
            let expected = postgis_ids(&app.pool, t).await;

            let (py, from_python) = python_decode(&file);
            for layer in ["incidents", "clusters", "hotspots"] {
                if let Some(l) = py.get(layer) {
                    assert_eq!(l["version"], 2, "{t} {layer}");
                    assert_eq!(l["extent"], 4096, "{t} {layer}");
                }
            }
            let from_gdal = gdal_decode(&app.url(&tile_path(t))).await;
            assert_eq!(from_python, from_gdal, "{t}: the two decoders agree");
            assert_eq!(
                from_python.clustered + from_python.ids.len() as u64,
                expected.len() as u64,
                "{t}: clusters and points add up to PostGIS's count"
            );
            if from_python.clustered == 0 {
                assert_eq!(
                    from_python.ids, expected,
                    "{t}: the same incidents as PostGIS"
                );
                checked_points += 1;
            } else {
                assert!(from_python.ids.is_subset(&expected), "{t}");
            }
        }
    }
    assert!(
        checked_points >= 8,
        "at least some tiles were compared id for id"
    );
}

/// Each incident of a tile's `incidents` layer: id → every property, as decoded values.
fn incident_props(tile: &Tile) -> Vec<(String, Vec<(String, String)>)> {
    let Some(l) = tile.layers.iter().find(|l| l.name == "incidents") else {
        return Vec::new();
    };
    l.features
        .iter()
        .map(|f| {
            let mut props: Vec<(String, String)> = f
                .tags
                .chunks(2)
                .map(|p| {
                    let v = &l.values[p[1] as usize];
                    // PostGIS and citypin may pick different integer fields: compare numbers.
                    let shown = v.string_value.clone().unwrap_or_else(|| {
                        v.uint_value
                            .map(i128::from)
                            .or(v.int_value.map(i128::from))
                            .or(v.sint_value.map(i128::from))
                            .map_or_else(|| format!("{v:?}"), |n| n.to_string())
                    });
                    (l.keys[p[0] as usize].clone(), shown)
                })
                .collect();
            props.sort();
            let id = props
                .iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v.clone())
                .expect("every incident has an id");
            (id, props)
        })
        .collect()
}

#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn a_tile_answered_by_postgis_holds_the_same_incidents_and_is_for_staff_only(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.import_la_sample().await;
    let admin = app.token(citypin::auth::Role::Analyst).await;
    let crew = app.token(citypin::auth::Role::Crew).await;
    let as_staff = |path: String, token: &str| {
        app.client
            .get(app.url(&path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept-Encoding", "identity")
            .send()
    };
    let places = [
        (-118.2437, 34.0522),
        (-118.3287, 34.0928),
        (-118.4487, 34.1867),
        (-118.4695, 33.9850),
    ];
    let mut compared = 0;
    for (lon, lat) in places {
        for (z, filter) in [(14u8, ""), (15, ""), (16, ""), (14, "&status=open")] {
            let t = TileId::containing(Position::new(lon, lat).expect("p"), z);
            let plain = format!("{}{}", tile_path(t), filter.replacen('&', "?", 1));
            let ours = fetch(&app, &plain, None).await;
            assert_eq!(ours.status, 200, "{t}");
            let res = as_staff(format!("{}?source=postgis{filter}", tile_path(t)), &admin)
                .await
                .expect("request");
            assert_eq!(res.status(), 200, "{t}");
            assert_eq!(res.headers()["cache-control"], "private, no-store");
            let theirs = decode(&res.bytes().await.expect("body"));
            let (ours, theirs) = (incident_props(&decode(&ours.body)), incident_props(&theirs));
            assert_eq!(
                ours, theirs,
                "{t}{filter}: same incidents, properties and order"
            );
            compared += usize::from(!ours.is_empty());
        }
    }
    assert!(compared >= 8, "most tiles hold incidents: {compared}");

    let t = TileId::containing(Position::new(-118.2437, 34.0522).expect("p"), 14);
    let path = format!("{}?source=postgis", tile_path(t));
    assert_eq!(fetch(&app, &path, None).await.status, 401, "anonymous");
    let res = as_staff(path, &crew).await.expect("request");
    assert_eq!(res.status(), 403, "a crew token is not enough");
    let low = format!("/tiles/10/{}/{}.mvt?source=postgis", t.x() >> 4, t.y() >> 4);
    let res = as_staff(low, &admin).await.expect("request");
    assert_eq!(res.status(), 400, "no clusters from PostGIS");
    let body: Value = res.json().await.expect("problem");
    assert!(body.to_string().contains("\"z\""), "{body}");
    let (status, body) = app.get_json("/tiles.json?source=postgis").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["field"], "source", "{body}");
}

/// The style's boundary sources are served from the shared data folder (no copy in the
/// repository): the 15 council districts as they are, the 99 neighbourhoods simplified.
#[sqlx::test(migrator = "citypin::db::MIGRATOR")]
async fn the_style_s_basemap_boundaries_are_served_from_the_shared_data_folder(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, style) = app.get_json("/map-assets/style.json").await;
    assert_eq!(status, 200);
    let mut served = Vec::new();
    for source in style["sources"].as_object().expect("sources").values() {
        let Some(url) = source["data"].as_str() else {
            continue;
        };
        let res = app.client.get(app.url(url)).send().await.expect("request");
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(
            res.headers()["content-type"],
            "application/geo+json",
            "{url}"
        );
        let body: Value = res.json().await.expect("geojson");
        let features = body["features"].as_array().expect("features");
        assert!(
            features
                .iter()
                .all(|f| f["geometry"]["type"] == "MultiPolygon"
                    && f["properties"]["name"].is_string()),
            "{url}"
        );
        served.push((url.to_owned(), features.len()));
    }
    served.sort();
    assert_eq!(
        served,
        [
            ("/basemap/la-council-districts.geojson".to_owned(), 15),
            ("/basemap/la-neighborhood-councils.geojson".to_owned(), 99)
        ]
    );
}
