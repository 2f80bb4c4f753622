//! Loading the `areas` collection from a `GeoJSON` file of (multi)polygons, such as the city's
//! council districts (`CITYPIN_AREAS`; `make run` uses the Los Angeles sample).

use std::path::Path;

use sqlx::PgPool;

use super::store::{self, NewArea};

/// Why an areas file cannot be loaded; names the file and the feature at fault.
#[derive(Debug, thiserror::Error)]
pub enum AreasError {
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("not a GeoJSON FeatureCollection")]
    NotFeatureCollection,
    #[error("feature {0} has no slug, id, external_id or name")]
    NoId(usize),
    #[error("feature {index} ({id}) is a {kind:?}, not a (Multi)Polygon")]
    NotPolygon {
        index: usize,
        id: String,
        kind: String,
    },
    #[error("areas file {path}: {source}")]
    File {
        path: String,
        source: Box<AreasError>,
    },
    #[error("areas file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("could not store the areas of {path}: {source}")]
    Store { path: String, source: sqlx::Error },
}

/// Reads the areas of a `FeatureCollection`: id from `slug`, the feature id, `external_id` or
/// `name` (the first present), name from `name`, kind from `kind`.
pub fn parse(text: &str) -> Result<Vec<NewArea>, AreasError> {
    let doc: serde_json::Value = serde_json::from_str(text)?;
    let features = doc["features"]
        .as_array()
        .ok_or(AreasError::NotFeatureCollection)?;
    features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = &f["properties"];
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let id = text(&p["slug"])
                .or_else(|| text(&f["id"]))
                .or_else(|| text(&p["external_id"]))
                .or_else(|| text(&p["name"]))
                .ok_or(AreasError::NoId(i))?;
            let kind = f["geometry"]["type"].as_str().unwrap_or("");
            if kind != "Polygon" && kind != "MultiPolygon" {
                return Err(AreasError::NotPolygon {
                    index: i,
                    id,
                    kind: kind.to_owned(),
                });
            }
            Ok(NewArea {
                name: text(&p["name"]).unwrap_or_else(|| id.clone()),
                kind: text(&p["kind"]).unwrap_or_default(),
                id,
                geometry: f["geometry"].to_string(),
            })
        })
        .collect()
}

/// Replaces the stored areas with those of the file; returns how many there are.
pub async fn load_file(pool: &PgPool, path: &Path) -> Result<usize, AreasError> {
    let name = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AreasError::Read {
        path: name(),
        source,
    })?;
    let areas = parse(&text).map_err(|e| AreasError::File {
        path: name(),
        source: Box::new(e),
    })?;
    store::replace_areas(pool, &areas)
        .await
        .map_err(|source| AreasError::Store {
            path: name(),
            source,
        })?;
    Ok(areas.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_la_council_districts_parse_with_stable_ids() {
        use crate::config::shared_data;
        let path = shared_data::file(shared_data::LA_COUNCIL_DISTRICTS);
        let text = std::fs::read_to_string(path).unwrap();
        let areas = parse(&text).unwrap();
        assert_eq!(areas.len(), 15);
        assert!(
            areas
                .iter()
                .any(|a| a.id == "10-la-city-council-district-2012" && a.name == "10")
        );
        assert!(parse(r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"x"},"geometry":{"type":"Point","coordinates":[0,0]}}]}"#).is_err());
    }
}
