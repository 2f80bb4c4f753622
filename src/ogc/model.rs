//! OGC API – Features types: collections, links, the items query, output negotiation and the
//! hotspot roll-up.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use crate::domain::Status;
use crate::error::{AppError, FieldError};

/// The conformance classes citypin implements (OGC API – Features – Part 1: Core).
pub const CONFORMANCE: [&str; 4] = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
];

/// WGS 84 longitude/latitude, the only CRS of Part 1 Core.
pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// `limit` when none is given, and the most one page may hold.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 10_000;

/// Hotspot cells are counted at this resolution unless `resolution` says otherwise.
pub const DEFAULT_HOTSPOT_RESOLUTION: u8 = 8;
/// The coarsest resolution the hotspots roll up to (cells of about 250 km²).
pub const MIN_HOTSPOT_RESOLUTION: u8 = 5;

/// The collections citypin serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    Incidents,
    Areas,
    Hotspots,
}

impl Collection {
    pub const ALL: [Collection; 3] = [Self::Incidents, Self::Areas, Self::Hotspots];

    pub fn id(self) -> &'static str {
        match self {
            Self::Incidents => "incidents",
            Self::Areas => "areas",
            Self::Hotspots => "hotspots",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AppError> {
        Self::ALL
            .into_iter()
            .find(|c| c.id() == s)
            .ok_or(AppError::NotFound("collection"))
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Incidents => "Incidents",
            Self::Areas => "Areas",
            Self::Hotspots => "Hotspots",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Incidents => {
                "Citizens' reports (311 incidents) as points: public fields, plus operational ones for analysts"
            }
            Self::Areas => "Administrative areas (council districts) as multipolygons",
            Self::Hotspots => {
                "H3 cells with the number of incidents in each; `resolution` (5-9, default 8) picks the cell size"
            }
        }
    }
}

/// A link of an OGC API response.
#[derive(Clone, Debug, Serialize)]
pub struct Link {
    pub href: String,
    pub rel: &'static str,
    #[serde(rename = "type")]
    pub media_type: &'static str,
    pub title: String,
}

impl Link {
    pub fn new(href: String, rel: &'static str, media_type: &'static str, title: &str) -> Self {
        Self {
            href,
            rel,
            media_type,
            title: title.to_owned(),
        }
    }
}

pub const JSON: &str = "application/json";
pub const GEOJSON: &str = "application/geo+json";
pub const HTML: &str = "text/html";
pub const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";

/// How a page is rendered: chosen by `f`, else by the `Accept` header, else JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Html,
}

impl Output {
    pub fn negotiate(f: Option<&str>, headers: &HeaderMap) -> Result<Self, AppError> {
        match f {
            Some("json" | "geojson") => return Ok(Self::Json),
            Some("html") => return Ok(Self::Html),
            Some(other) => {
                return Err(AppError::bad_field(
                    "f",
                    format!("{other:?} is not one of json, html"),
                ));
            }
            None => {}
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // A browser asks for text/html first; GIS clients ask for JSON. Only an explicit
        // preference for HTML over JSON gives HTML.
        let html = accept.find("text/html");
        let json = accept.find("json");
        Ok(match (html, json) {
            (Some(h), Some(j)) if h < j => Self::Html,
            (Some(_), None) => Self::Html,
            _ => Self::Json,
        })
    }
}

/// The query string of `/items` (all collections; each rejects what does not apply to it).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsParams {
    pub bbox: Option<String>,
    pub datetime: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub service_code: Option<String>,
    pub status: Option<String>,
    pub open311_status: Option<String>,
    pub resolution: Option<String>,
    pub f: Option<String>,
}

impl ItemsParams {
    /// `limit`: default [`DEFAULT_LIMIT`]; above [`MAX_LIMIT`] it is capped, as Part 1 allows.
    pub fn limit(&self) -> Result<u32, AppError> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_LIMIT),
            Some(s) => match s.trim().parse::<u64>() {
                Ok(0) | Err(_) => Err(AppError::bad_field(
                    "limit",
                    format!("{s:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )),
                Ok(n) => Ok(n.min(u64::from(MAX_LIMIT)) as u32),
            },
        }
    }

    /// Fails naming every parameter the collection does not take.
    pub fn only(&self, collection: Collection, allowed: &[&str]) -> Result<(), AppError> {
        let given = [
            ("datetime", self.datetime.is_some()),
            ("service_code", self.service_code.is_some()),
            ("status", self.status.is_some()),
            ("open311_status", self.open311_status.is_some()),
            ("resolution", self.resolution.is_some()),
        ];
        let errors: Vec<FieldError> = given
            .iter()
            .filter(|(name, present)| *present && !allowed.contains(name))
            .map(|(name, _)| {
                FieldError::new(
                    *name,
                    format!("does not apply to the {} collection", collection.id()),
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::bad_fields(errors))
        }
    }

    /// The statuses the queryables keep, by equality as OGC clients (GDAL's `-where
    /// "status='new'"`) expect: `status` is the detailed status (comma-separated values are
    /// alternatives), `open311_status` is `open` or `closed`; both given, a report must match
    /// both. `None`: no status filter; an empty list: no report can match. A value outside a
    /// queryable's list is a 400 naming it (`status=open` asks the wrong queryable).
    pub fn statuses(&self) -> Result<Option<Vec<Status>>, AppError> {
        let mut errors = Vec::new();
        let values = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let detailed = self.status.as_deref().map(|s| {
            values(s)
                .iter()
                .filter_map(|v| {
                    Status::parse(v).or_else(|| {
                        errors.push(FieldError::new(
                            "status",
                            format!(
                                "{v:?} is not a status (new, acknowledged, scheduled, in_progress, fixed, duplicate, not_actionable, referred, cancelled); for open or closed use open311_status"
                            ),
                        ));
                        None
                    })
                })
                .collect::<Vec<_>>()
        });
        let grouped = self.open311_status.as_deref().map(|s| {
            let wanted = values(s);
            for w in &wanted {
                if w != "open" && w != "closed" {
                    errors.push(FieldError::new(
                        "open311_status",
                        format!("{w:?} is neither open nor closed"),
                    ));
                }
            }
            Status::ALL
                .into_iter()
                .filter(|st| wanted.iter().any(|w| w == st.open311()))
                .collect::<Vec<_>>()
        });
        if !errors.is_empty() {
            return Err(AppError::bad_fields(errors));
        }
        Ok(match (detailed, grouped) {
            (Some(d), Some(g)) => Some(d.into_iter().filter(|s| g.contains(s)).collect()),
            (d, g) => d.or(g),
        })
    }

    /// The hotspot resolution, 5 to 9.
    pub fn resolution(&self) -> Result<h3o::Resolution, AppError> {
        let n = match self.resolution.as_deref() {
            None => DEFAULT_HOTSPOT_RESOLUTION,
            Some(s) => s
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| (MIN_HOTSPOT_RESOLUTION..=9).contains(n))
                .ok_or_else(|| {
                    AppError::bad_field(
                        "resolution",
                        format!("{s:?} is not an H3 resolution from {MIN_HOTSPOT_RESOLUTION} to 9"),
                    )
                })?,
        };
        h3o::Resolution::try_from(n).map_err(|e| AppError::bad_field("resolution", e.to_string()))
    }
}

/// Rolls counts per stored (resolution 9) cell up to `res`, ordered by cell index.
/// Cells that are not valid H3 indexes (which the schema does not prevent) are skipped.
pub fn roll_up(counts: &[(i64, i64)], res: h3o::Resolution) -> BTreeMap<u64, i64> {
    let mut out = BTreeMap::new();
    for &(cell, n) in counts {
        let Ok(cell) = h3o::CellIndex::try_from(cell as u64) else {
            continue;
        };
        if let Some(parent) = cell.parent(res) {
            *out.entry(u64::from(parent)).or_insert(0) += n;
        }
    }
    out
}

/// A hotspot: one H3 cell and how many incidents it holds.
pub struct Hotspot {
    pub cell: h3o::CellIndex,
    pub count: i64,
}

impl Serialize for Hotspot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let id = format!("{:x}", self.cell);
        let center = crate::geo::h3_cell_center(self.cell);
        serde_json::json!({
            "type": "Feature",
            "id": id,
            "geometry": {"type": "Polygon", "coordinates": [crate::geo::h3_cell_ring(self.cell)]},
            "properties": {
                "cell": id,
                "resolution": u8::from(self.cell.resolution()),
                "count": self.count,
                "center_lon": crate::geo::round7(center.lon()),
                "center_lat": crate::geo::round7(center.lat()),
            }
        })
        .serialize(s)
    }
}

/// An area as stored: its `GeoJSON` geometry is already right-hand and 7 decimals.
#[derive(Debug, sqlx::FromRow)]
pub struct Area {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub geometry: sqlx::types::Json<serde_json::Value>,
}

impl Serialize for Area {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "type": "Feature",
            "id": self.id,
            "geometry": self.geometry.0,
            "properties": {"id": self.id, "name": self.name, "kind": self.kind},
        })
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::Position;

    #[test]
    fn hotspots_roll_up_into_parent_cells() {
        let a = Position::new(-118.2437, 34.0522).unwrap();
        let b = Position::new(-118.2440, 34.0525).unwrap();
        let far = Position::new(-118.5, 34.2).unwrap();
        let nine = h3o::Resolution::Nine;
        let counts: Vec<(i64, i64)> = [(a, 2), (b, 3), (far, 1)]
            .iter()
            .map(|(p, n)| (u64::from(p.h3_cell(nine)) as i64, *n))
            .collect();
        let seven = roll_up(&counts, h3o::Resolution::Seven);
        assert_eq!(seven.values().sum::<i64>(), 6);
        let downtown = u64::from(a.h3_cell(h3o::Resolution::Seven));
        assert_eq!(seven[&downtown], 5);
        assert_eq!(seven.len(), 2);
        assert!(roll_up(&[(42, 1)], h3o::Resolution::Seven).is_empty());
    }

    #[test]
    fn html_is_chosen_by_f_or_by_a_browser_accept_header() {
        let mut h = HeaderMap::new();
        assert_eq!(Output::negotiate(None, &h).unwrap(), Output::Json);
        h.insert(
            header::ACCEPT,
            "text/html,application/xhtml+xml,*/*;q=0.8".parse().unwrap(),
        );
        assert_eq!(Output::negotiate(None, &h).unwrap(), Output::Html);
        assert_eq!(Output::negotiate(Some("json"), &h).unwrap(), Output::Json);
        h.insert(
            header::ACCEPT,
            "application/geo+json, text/html;q=0.5".parse().unwrap(),
        );
        assert_eq!(Output::negotiate(None, &h).unwrap(), Output::Json);
        assert!(Output::negotiate(Some("xml"), &h).is_err());
    }

    #[test]
    fn limit_defaults_caps_and_rejects_zero() {
        let p = |l: &str| ItemsParams {
            limit: Some(l.into()),
            ..ItemsParams::default()
        };
        assert_eq!(ItemsParams::default().limit().unwrap(), DEFAULT_LIMIT);
        assert_eq!(p("20000").limit().unwrap(), MAX_LIMIT);
        assert!(p("0").limit().is_err());
        assert!(p("ten").limit().is_err());
    }
}
