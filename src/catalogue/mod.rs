//! The service catalogue: what citizens can report, its group, agency, SLA, dedup settings
//! and Open311 attributes. Loaded from a committed JSON file and upserted at start-up, so a
//! city edits the file (or the table) and restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::domain::{InvalidServiceCode, ServiceCode};

/// The committed default catalogue (the 12 Los Angeles types plus common urban ones).
pub const DEFAULT_CATALOGUE: &str = include_str!("../../config/services.json");

mod store;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueFile {
    pub version: u32,
    pub services: Vec<Service>,
}

/// One category of report.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub service_code: String,
    pub service_name: String,
    #[serde(default)]
    pub description: String,
    pub group: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub agency: String,
    pub sla_hours: Option<i32>,
    pub dedup: DedupSettings,
    /// Open311 attribute definitions (`variable, code, datatype, required, order, description, values`).
    #[serde(default)]
    pub attributes: Vec<serde_json::Value>,
}

/// How duplicates of this service are judged; the scoring weights have defaults in `dedup`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct DedupSettings {
    pub radius_m: f64,
    pub window_hours: i32,
    /// Scoring weights and threshold; absent keys take the dedup module's defaults.
    #[serde(flatten)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl Service {
    pub fn has_attributes(&self) -> bool {
        !self.attributes.is_empty()
    }
}

/// Why a catalogue cannot be loaded; the message names the file or the service at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("service catalogue {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("service catalogue: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("service catalogue: {0}")]
    Code(#[from] InvalidServiceCode),
    #[error("service catalogue: {0} appears twice")]
    Twice(String),
}

/// The catalogue in memory: looked up on every intake.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    by_code: HashMap<String, Arc<Service>>,
    ordered: Vec<Arc<Service>>,
}

impl Catalogue {
    pub fn parse(json: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = serde_json::from_str(json)?;
        let mut by_code = HashMap::new();
        let mut ordered = Vec::new();
        for s in file.services {
            ServiceCode::parse(&s.service_code)?;
            let s = Arc::new(s);
            if by_code.insert(s.service_code.clone(), s.clone()).is_some() {
                return Err(CatalogueError::Twice(s.service_code.clone()));
            }
            ordered.push(s);
        }
        Ok(Self { by_code, ordered })
    }

    pub fn load(path: Option<&Path>) -> Result<Self, CatalogueError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| CatalogueError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text)
            }
            None => Self::parse(DEFAULT_CATALOGUE),
        }
    }

    pub fn get(&self, code: &str) -> Option<&Arc<Service>> {
        self.by_code.get(code)
    }

    pub fn all(&self) -> &[Arc<Service>] {
        &self.ordered
    }

    /// Writes the catalogue into the `services` table (insert or update by code).
    pub async fn upsert(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        store::upsert(pool, &self.ordered).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_catalogue_parses_and_holds_the_la_types() {
        let c = Catalogue::parse(DEFAULT_CATALOGUE).unwrap();
        for code in [
            "bulky-items",
            "graffiti-removal",
            "single-streetlight-issue",
            "pothole",
        ] {
            assert!(c.get(code).is_some(), "{code}");
        }
        assert!(c.all().len() >= 20);
    }

    #[test]
    fn duplicate_codes_are_rejected() {
        let s = r#"{"version":1,"services":[
            {"service_code":"a","service_name":"A","group":"g","agency":"x","sla_hours":1,"dedup":{"radius_m":1,"window_hours":1}},
            {"service_code":"a","service_name":"A","group":"g","agency":"x","sla_hours":1,"dedup":{"radius_m":1,"window_hours":1}}]}"#;
        assert!(matches!(Catalogue::parse(s), Err(CatalogueError::Twice(code)) if code == "a"));
    }
}
