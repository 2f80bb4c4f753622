//! The offline basemap's boundary layers, read from the shared data folder (`CITYPIN_SHARED_DATA`)
//! on first request and kept in memory: the repository holds no copy of them, nor anything derived.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use geo::Simplify;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::config::shared_data;
use crate::error::AppError;

/// ~25 m: below what a 360 px screen shows at city zoom.
const TOLERANCE_DEG: f64 = 0.00025;

/// One served layer: its URL name, its source file in the shared data folder, and how the
/// source becomes the served GeoJSON.
pub struct Layer {
    pub file: &'static str,
    pub source: &'static str,
    prepare: fn(&str) -> Result<Vec<u8>, BasemapError>,
}

/// The layers `tiles/style.json` draws. The council districts are small (105 kB) and served as
/// they are; the neighbourhood councils' original is 2.5 MB, simplified here to ~90 kB.
pub static LAYERS: [Layer; 2] = [
    Layer {
        file: "la-council-districts.geojson",
        source: shared_data::LA_COUNCIL_DISTRICTS,
        prepare: |text| Ok(text.as_bytes().to_vec()),
    },
    Layer {
        file: "la-neighborhood-councils.geojson",
        source: shared_data::LA_NEIGHBORHOOD_COUNCILS,
        prepare: simplify_neighbourhoods,
    },
];

/// A source file that cannot be turned into the served layer.
#[derive(Debug, thiserror::Error)]
pub enum BasemapError {
    #[error("not a GeoJSON FeatureCollection: {0}")]
    NotGeoJson(#[source] Box<geojson::Error>),
    #[error("feature {index} has no (multi)polygon geometry")]
    NotPolygon { index: usize },
}

/// A layer built once, on first request, off the async threads.
pub struct Served {
    layer: &'static Layer,
    path: PathBuf,
    built: OnceCell<Built>,
}

struct Built {
    body: Bytes,
    etag: HeaderValue,
}

impl Served {
    pub fn new(layer: &'static Layer, shared_data: &Path) -> Self {
        let path = shared_data.join(layer.source);
        if !path.is_file() {
            tracing::warn!(
                path = %path.display(),
                "basemap boundaries not found (set CITYPIN_SHARED_DATA): /basemap/{} answers 404",
                layer.file
            );
        }
        Self {
            layer,
            path,
            built: OnceCell::new(),
        }
    }

    /// The layer as `application/geo+json` with an `ETag`; 304 when the client has it; 404 when
    /// the source file is missing.
    pub async fn respond(&self, req: &HeaderMap) -> Response {
        match self.built.get_or_try_init(|| self.build()).await {
            Ok(built) => built.respond(req),
            Err(e) => e.into_response(),
        }
    }

    async fn build(&self) -> Result<Built, AppError> {
        let path = self.path.clone();
        let prepare = self.layer.prepare;
        tokio::task::spawn_blocking(move || {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(AppError::NotFound("basemap layer"));
                }
                Err(e) => {
                    return Err(AppError::internal(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )));
                }
            };
            let body = prepare(&text)
                .map_err(|e| AppError::internal(format!("{}: {e}", path.display())))?;
            let hash = Sha256::digest(&body);
            let etag = format!("\"{}\"", hex(&hash[..16]));
            Ok(Built {
                body: Bytes::from(body),
                etag: HeaderValue::from_str(&etag).map_err(AppError::internal)?,
            })
        })
        .await
        .map_err(AppError::internal)?
    }
}

impl Built {
    fn respond(&self, req: &HeaderMap) -> Response {
        let not_modified =
            crate::ops::conditional::not_modified(req, self.etag.to_str().unwrap_or_default());
        let etag = (header::ETAG, self.etag.clone());
        if not_modified {
            return (StatusCode::NOT_MODIFIED, [etag]).into_response();
        }
        let geojson = (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/geo+json"),
        );
        ([etag, geojson], self.body.clone()).into_response()
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The neighbourhood councils as the map draws them: rings simplified (Douglas–Peucker, ~25 m),
/// coordinates rounded to 1e-5° (~1 m), properties cut to `nc_id` and `name` (without the
/// trailing " NC"), every geometry a `MultiPolygon`.
pub fn simplify_neighbourhoods(text: &str) -> Result<Vec<u8>, BasemapError> {
    let collection: geojson::FeatureCollection = text
        .parse()
        .map_err(|e| BasemapError::NotGeoJson(Box::new(e)))?;
    let features = collection
        .features
        .iter()
        .enumerate()
        .map(|(index, feature)| {
            let polygons = feature
                .geometry
                .as_ref()
                .and_then(|g| geo::Geometry::<f64>::try_from(&g.value).ok())
                .and_then(|g| match g {
                    geo::Geometry::Polygon(p) => Some(geo::MultiPolygon::new(vec![p])),
                    geo::Geometry::MultiPolygon(m) => Some(m),
                    _ => None,
                })
                .ok_or(BasemapError::NotPolygon { index })?
                .simplify(&TOLERANCE_DEG);
            let property = |key: &str| {
                feature
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(key))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let name = match property("name") {
                Value::String(s) => Value::from(s.strip_suffix(" NC").unwrap_or(&s)),
                other => other,
            };
            Ok(json!({
                "type": "Feature",
                "properties": {"nc_id": property("nc_id"), "name": name},
                "geometry": {"type": "MultiPolygon", "coordinates": coordinates(&polygons)},
            }))
        })
        .collect::<Result<Vec<_>, BasemapError>>()?;
    let collection = json!({"type": "FeatureCollection", "features": features});
    Ok(collection.to_string().into_bytes())
}

fn coordinates(polygons: &geo::MultiPolygon<f64>) -> Vec<Vec<Vec<[f64; 2]>>> {
    let round = |v: f64| (v * 1e5).round() / 1e5;
    let ring = |r: &geo::LineString<f64>| r.coords().map(|c| [round(c.x), round(c.y)]).collect();
    polygons
        .iter()
        .map(|p| {
            std::iter::once(ring(p.exterior()))
                .chain(p.interiors().iter().map(ring))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(bytes: &[u8]) -> Vec<Value> {
        let v: Value = serde_json::from_slice(bytes).expect("json");
        v["features"].as_array().expect("features").clone()
    }

    #[test]
    fn a_neighbourhood_is_simplified_rounded_and_named_without_nc() {
        // A square with a needless point in the middle of each side, 2 cm off the line.
        let text = r#"{"type":"FeatureCollection","features":[{"type":"Feature",
            "properties":{"nc_id":"47","name":"LINCOLN HEIGHTS NC","objectid":"1"},
            "geometry":{"type":"Polygon","coordinates":[[[-118.2,34.0],[-118.15,34.0000002],
            [-118.1,34.0],[-118.1,34.1],[-118.2,34.1],[-118.2,34.0]]]}}]}"#;
        let out = features(&simplify_neighbourhoods(text).expect("simplify"));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0]["properties"],
            json!({"nc_id": "47", "name": "LINCOLN HEIGHTS"})
        );
        assert_eq!(out[0]["geometry"]["type"], "MultiPolygon");
        assert_eq!(
            out[0]["geometry"]["coordinates"],
            json!([[[
                [-118.2, 34.0],
                [-118.1, 34.0],
                [-118.1, 34.1],
                [-118.2, 34.1],
                [-118.2, 34.0]
            ]]])
        );
    }

    #[test]
    fn a_feature_without_a_polygon_is_refused_by_position() {
        let text = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
            "geometry":{"type":"Point","coordinates":[0,0]}}]}"#;
        let err = simplify_neighbourhoods(text).expect_err("a point is no boundary");
        assert!(
            matches!(err, BasemapError::NotPolygon { index: 0 }),
            "{err}"
        );
    }

    #[test]
    fn the_la_neighbourhood_councils_simplify_to_a_small_basemap() {
        let path = shared_data::file(shared_data::LA_NEIGHBORHOOD_COUNCILS);
        let text = std::fs::read_to_string(&path).expect("read");
        let bytes = simplify_neighbourhoods(&text).expect("simplify");
        assert!(
            bytes.len() < text.len() / 10 && bytes.len() < 150_000,
            "{} bytes from {}",
            bytes.len(),
            text.len()
        );
        let out = features(&bytes);
        assert_eq!(out.len(), 99);
        assert!(
            out.iter()
                .any(|f| f["properties"]["name"] == "LINCOLN HEIGHTS")
        );
        for f in &out {
            for polygon in f["geometry"]["coordinates"].as_array().expect("polygons") {
                for ring in polygon.as_array().expect("rings") {
                    let ring = ring.as_array().expect("ring");
                    assert!(ring.len() >= 4 && ring.first() == ring.last(), "{ring:?}");
                }
            }
        }
    }
}
