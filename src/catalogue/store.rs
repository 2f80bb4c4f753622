//! All SQL of the catalogue: writing it into the `services` table.

use std::sync::Arc;

use sqlx::PgPool;

use super::Service;

/// Inserts or updates every service by code, in one transaction.
pub async fn upsert(pool: &PgPool, services: &[Arc<Service>]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for s in services {
        sqlx::query!(
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
            s.service_code,
            s.service_name,
            s.description,
            s.group,
            &s.keywords,
            s.agency,
            s.sla_hours,
            s.dedup.radius_m,
            s.dedup.window_hours,
            serde_json::Value::Object(s.dedup.params.clone()),
            serde_json::Value::Array(s.attributes.clone()),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
