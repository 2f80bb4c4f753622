//! Serving tiles: `/tiles/{z}/{x}/{y}.mvt` (ETag / If-None-Match → 304, gzip when accepted,
//! revalidate on every use) and `/tiles.json` (TileJSON 3.0).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::build::{self, CLUSTERS, HOTSPOTS, INCIDENTS, MAX_ZOOM};
use super::cache::CachedTile;
use super::model::FilterParams;
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::Source;
use crate::error::{AppError, Path, Query};
use crate::geo::TileId;

/// The media type of Mapbox Vector Tiles.
pub const MVT_MEDIA_TYPE: &str = "application/vnd.mapbox-vector-tile";

/// Clients may keep a tile but must ask again before using it: the data changes any second,
/// and a 304 costs a few bytes.
const CACHE_CONTROL: &str = "public, no-cache";

pub async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((z, x, y)): Path<(String, String, String)>,
    Query(params): Query<FilterParams>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let tile = parse_tile(&z, &x, &y)?;
    let (filter, source) = params.parse_with_source()?;
    let today = chrono::Utc::now().date_naive();
    caller.require_source(source, "build tiles in PostGIS")?;
    if source == Source::Postgis {
        if tile.z() < build::POINT_MIN_ZOOM {
            return Err(AppError::bad_field(
                "z",
                format!(
                    "source=postgis answers the incidents layer only, at zoom {} and deeper",
                    build::POINT_MIN_ZOOM
                ),
            ));
        }
        let bytes = super::store::postgis_incidents_tile(&state.pool, tile, &filter, today).await?;
        let mut res = respond(&CachedTile::new(bytes, today), &headers);
        // Built per request for staff: nothing is cached, by us or anyone between.
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        return Ok(res);
    }
    let key = filter.query_string();
    let cached = if let Some(hit) = state.tile_cache.get(tile, &key, today) {
        hit
    } else {
        let epoch = state.tile_cache.epoch();
        let index = state.spatial_index.clone();
        let pyramid = state.tile_pyramid.clone();
        // Encoding a dense tile is CPU work: keep it off the async threads.
        let built = tokio::task::spawn_blocking(move || {
            Arc::new(CachedTile::new(
                build::build_tile_with(&index, &pyramid, tile, &filter, today),
                today,
            ))
        })
        .await
        .map_err(AppError::internal)?;
        state.tile_cache.insert(tile, &key, &built, epoch);
        built
    };
    Ok(respond(&cached, &headers))
}

fn parse_tile(z: &str, x: &str, y: &str) -> Result<TileId, AppError> {
    let y = y.strip_suffix(".mvt").ok_or_else(|| {
        AppError::bad_field(
            "y",
            "the tile path must end in .mvt: /tiles/{z}/{x}/{y}.mvt",
        )
    })?;
    let number = |s: &str, field: &str| {
        s.parse::<u32>()
            .map_err(|_| AppError::bad_field(field, format!("{s:?} is not a whole number")))
    };
    TileId::new(number(z, "z")?, number(x, "x")?, number(y, "y")?)
        .map_err(|e| AppError::bad_field(e.field(), e.to_string()))
}

fn respond(tile: &CachedTile, req: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&tile.etag) {
        headers.insert(header::ETAG, etag);
    }
    let not_modified = crate::ops::conditional::not_modified(req, &tile.etag);
    if not_modified {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(MVT_MEDIA_TYPE),
    );
    let body = if accepts_gzip(req) {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        tile.gzip.clone()
    } else {
        tile.raw.clone()
    };
    (StatusCode::OK, headers, body).into_response()
}

/// `Accept-Encoding` names gzip (or `*`) with a non-zero quality.
fn accepts_gzip(req: &HeaderMap) -> bool {
    req.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

/// TileJSON 3.0: the layers and their fields, zooms, the data's bounds, and the tile URL with
/// the same (canonical) filter.
pub async fn tilejson(
    State(state): State<AppState>,
    Query(params): Query<FilterParams>,
) -> Result<axum::Json<Value>, AppError> {
    let filter = params.parse()?;
    let qs = filter.query_string();
    let index = state.spatial_index.clone();
    let bounds = tokio::task::spawn_blocking(move || build::data_bounds(&index, &filter))
        .await
        .map_err(AppError::internal)?
        .unwrap_or([-180.0, -85.051_128_78, 180.0, 85.051_128_78]);
    let suffix = if qs.is_empty() {
        String::new()
    } else {
        format!("?{qs}")
    };
    let base = state.settings.public_url.trim_end_matches('/');
    let mut groups: Vec<&str> = state
        .catalogue
        .all()
        .iter()
        .map(|s| s.group.as_str())
        .collect();
    groups.push("Other");
    groups.sort_unstable();
    groups.dedup();
    let group_fields: serde_json::Map<String, Value> = groups
        .into_iter()
        .map(|g| {
            (
                super::cluster::group_key(g),
                json!(format!("Number of incidents in the group {g}")),
            )
        })
        .collect();
    let mut cluster_fields = serde_json::Map::new();
    cluster_fields.insert(
        "point_count".into(),
        json!("Number of incidents in the cluster"),
    );
    cluster_fields.insert(
        "point_count_abbreviated".into(),
        json!("point_count for labels: 999, 1.2k, 12k, 1.2M"),
    );
    cluster_fields.extend(group_fields);
    Ok(axum::Json(json!({
        "tilejson": "3.0.0",
        "name": "citypin incidents",
        "description": "311 incidents: points when zoomed in, clusters when zoomed out, H3 hotspots",
        "attribution": "citypin",
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{{z}}/{{x}}/{{y}}.mvt{suffix}")],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": bounds,
        "center": [f64::midpoint(bounds[0], bounds[2]), f64::midpoint(bounds[1], bounds[3]), 11],
        "vector_layers": [
            {
                "id": INCIDENTS,
                "description": "One point per incident (at low zoom, only incidents alone in their cluster cell)",
                "minzoom": 0,
                "maxzoom": MAX_ZOOM,
                "fields": {
                    "id": "Incident id (UUID)",
                    "reference": "Public reference, e.g. CP-7K3M-9QXD",
                    "service_code": "Service code",
                    "group": "Service group",
                    "status": "Detailed status (new, acknowledged, scheduled, in_progress, fixed, not_actionable, referred, cancelled, duplicate)",
                    "age_days": "Whole UTC days since the report was made",
                    "supporters": "People who reported the same problem"
                }
            },
            {
                "id": CLUSTERS,
                "description": "Incidents grouped on a global grid, 16 × 16 cells a tile; below zoom 14, or where a tile holds too many points",
                "minzoom": 0,
                "maxzoom": MAX_ZOOM,
                "fields": cluster_fields
            },
            {
                "id": HOTSPOTS,
                "description": "H3 cells with incidents, resolution from the zoom, with a Getis-Ord Gi* z-score",
                "minzoom": 0,
                "maxzoom": MAX_ZOOM,
                "fields": {
                    "h3": "H3 cell index (hex string)",
                    "count": "Incidents in the cell",
                    "score": "Getis-Ord Gi* z-score of the cell and its neighbours (above 1.96: hot at 95 %)"
                }
            }
        ]
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    fn with(name: header::HeaderName, v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(&with(
            header::ACCEPT_ENCODING,
            "br, gzip;q=0.8"
        )));
        assert!(accepts_gzip(&with(header::ACCEPT_ENCODING, "*")));
        assert!(!accepts_gzip(&with(
            header::ACCEPT_ENCODING,
            "gzip;q=0, br"
        )));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_tile_path_parses() {
        assert!(parse_tile("14", "2810", "6541.mvt").is_ok());
    }

    fn the_part_at_fault_is_named(z: &str, x: &str, y: &str, field: &str) {
        let e = parse_tile(z, x, y).expect_err("bad tile");
        assert_eq!(e.field_errors()[0].field, field);
    }

    cases! { the_part_at_fault_is_named {
        a_zoom_past_the_deepest_is_refused_naming_z: "23", "0", "0.mvt", "z";
        a_column_past_the_zoom_is_refused_naming_x: "1", "2", "0.mvt", "x";
        a_row_past_the_zoom_is_refused_naming_y: "1", "0", "2.mvt", "y";
        an_extension_other_than_mvt_is_refused_naming_y: "1", "0", "0.png", "y";
        a_zoom_that_is_not_a_number_is_refused_naming_z: "a", "0", "0.mvt", "z";
    }}

    #[test]
    fn a_matching_etag_gets_304_and_gzip_only_when_asked() {
        let t = CachedTile::new(vec![1, 2, 3], chrono::Utc::now().date_naive());
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&t.etag).unwrap(),
        );
        assert_eq!(respond(&t, &h).status(), StatusCode::NOT_MODIFIED);
        let plain = respond(&t, &HeaderMap::new());
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let gz = respond(&t, &with(header::ACCEPT_ENCODING, "gzip"));
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gz.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
    }
}
