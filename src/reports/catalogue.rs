//! The service catalogue: what citizens can report, its group, agency, SLA, dedup settings
//! and Open311 attributes. Loaded from a committed JSON file and upserted at start-up, so a
//! city edits the file (or the table) and restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// The committed default catalogue (the 12 Los Angeles types plus common urban ones).
pub const DEFAULT_CATALOGUE: &str = include_str!("../../config/services.json");

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

/// The catalogue in memory: looked up on every intake.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    by_code: HashMap<String, Arc<Service>>,
    ordered: Vec<Arc<Service>>,
}

impl Catalogue {
    pub fn parse(json: &str) -> Result<Self, String> {
        let file: CatalogueFile =
            serde_json::from_str(json).map_err(|e| format!("service catalogue: {e}"))?;
        let mut by_code = HashMap::new();
        let mut ordered = Vec::new();
        for s in file.services {
            crate::reports::model::ServiceCode::parse(&s.service_code)
                .map_err(|e| format!("service catalogue: {e}"))?;
            let s = Arc::new(s);
            if by_code.insert(s.service_code.clone(), s.clone()).is_some() {
                return Err(format!(
                    "service catalogue: {} appears twice",
                    s.service_code
                ));
            }
            ordered.push(s);
        }
        Ok(Self { by_code, ordered })
    }

    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("service catalogue {}: {e}", p.display()))?;
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
        let mut tx = pool.begin().await?;
        for s in &self.ordered {
            sqlx::query(
                "INSERT INTO services (service_code, service_name, description, group_name, keywords, agency,
                     sla_hours, dedup_radius_m, dedup_window_hours, dedup_params, attributes, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
                 ON CONFLICT (service_code) DO UPDATE SET
                     service_name = EXCLUDED.service_name, description = EXCLUDED.description,
                     group_name = EXCLUDED.group_name, keywords = EXCLUDED.keywords,
                     agency = EXCLUDED.agency, sla_hours = EXCLUDED.sla_hours,
                     dedup_radius_m = EXCLUDED.dedup_radius_m,
                     dedup_window_hours = EXCLUDED.dedup_window_hours,
                     dedup_params = EXCLUDED.dedup_params, attributes = EXCLUDED.attributes,
                     active = true, updated_at = now()",
            )
            .bind(&s.service_code)
            .bind(&s.service_name)
            .bind(&s.description)
            .bind(&s.group)
            .bind(&s.keywords)
            .bind(&s.agency)
            .bind(s.sla_hours)
            .bind(s.dedup.radius_m)
            .bind(s.dedup.window_hours)
            .bind(serde_json::Value::Object(s.dedup.params.clone()))
            .bind(serde_json::Value::Array(s.attributes.clone()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
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
        assert!(Catalogue::parse(s).unwrap_err().contains("twice"));
    }
}
