//! All SQL of the OGC API: areas (and their loader), collection extents and the per-cell
//! incident counts behind the hotspots. Incident pages come from the exports' store.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::model::Area;
use crate::exports::model::IncidentFilter;
use crate::exports::store::push_filter;
use crate::geo::BBox;

/// A spatial and temporal extent.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Extent {
    pub min_lon: Option<f64>,
    pub min_lat: Option<f64>,
    pub max_lon: Option<f64>,
    pub max_lat: Option<f64>,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

/// The extent of the public incidents: bounding box and first and last `requested_at`.
pub async fn incidents_extent(pool: &PgPool) -> Result<Extent, sqlx::Error> {
    sqlx::query_as!(
        Extent,
        "SELECT ST_XMin(e) AS min_lon, ST_YMin(e) AS min_lat, ST_XMax(e) AS max_lon,
                ST_YMax(e) AS max_lat, first, last
         FROM (SELECT ST_Extent(location)::geometry AS e, min(requested_at) AS first,
                      max(requested_at) AS last
               FROM reports WHERE NOT hidden) x"
    )
    .fetch_one(pool)
    .await
}

pub async fn areas_extent(pool: &PgPool) -> Result<Extent, sqlx::Error> {
    sqlx::query_as!(
        Extent,
        "SELECT ST_XMin(e) AS min_lon, ST_YMin(e) AS min_lat, ST_XMax(e) AS max_lon,
                ST_YMax(e) AS max_lat, NULL::timestamptz AS first, NULL::timestamptz AS last
         FROM (SELECT ST_Extent(geom)::geometry AS e FROM areas) x"
    )
    .fetch_one(pool)
    .await
}

/// Report counts per stored (resolution 9) H3 cell; the filter applies to the incidents
/// before they are counted.
pub async fn cell_counts(
    pool: &PgPool,
    f: &IncidentFilter,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let mut q = QueryBuilder::new("SELECT r.h3_cell, count(*) FROM reports r");
    push_filter(&mut q, f);
    q.push(" GROUP BY r.h3_cell");
    q.build_query_as().fetch_all(pool).await
}

/// The output geometry of an area: counter-clockwise exterior rings (RFC 7946 right-hand
/// rule), at most 7 decimals.
const AREA_COLUMNS: &str =
    "id, kind, name, ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS geometry";

/// One page of areas in id order after `after`, optionally those meeting a box.
pub async fn areas_page(
    pool: &PgPool,
    bbox: Option<BBox>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Area>, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {AREA_COLUMNS} FROM areas WHERE TRUE"));
    push_area_filter(&mut q, bbox);
    if let Some(after) = after {
        q.push(" AND id > ").push_bind(after.to_owned());
    }
    q.push(" ORDER BY id LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn areas_count(pool: &PgPool, bbox: Option<BBox>) -> Result<i64, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT count(*) FROM areas WHERE TRUE");
    push_area_filter(&mut q, bbox);
    q.build_query_scalar().fetch_one(pool).await
}

fn push_area_filter(q: &mut QueryBuilder<'_, Postgres>, bbox: Option<BBox>) {
    if let Some(b) = bbox {
        crate::db::sql::push_bbox_filter(q, b, "ST_Intersects(geom, ", ")");
    }
}

pub async fn area(pool: &PgPool, id: &str) -> Result<Option<Area>, sqlx::Error> {
    // AREA_COLUMNS, checked: one literal for sqlx's macro, with the override it needs.
    sqlx::query_as!(
        Area,
        r#"SELECT id, kind, name,
             ST_AsGeoJSON(ST_ForcePolygonCCW(geom), 7)::json AS "geometry!: Json<serde_json::Value>"
         FROM areas WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// One area read from a file, before it is stored.
#[derive(Debug)]
pub struct NewArea {
    pub id: String,
    pub kind: String,
    pub name: String,
    /// A `GeoJSON` Polygon or `MultiPolygon`, as text.
    pub geometry: String,
}

/// Replaces every area with these, in one transaction. Geometries are made valid, kept as
/// multipolygons and stored with counter-clockwise exterior rings.
pub async fn replace_areas(pool: &PgPool, areas: &[NewArea]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM areas").execute(&mut *tx).await?;
    for a in areas {
        sqlx::query!(
            "INSERT INTO areas (id, kind, name, geom)
             VALUES ($1, $2, $3, ST_ForcePolygonCCW(ST_Multi(ST_CollectionExtract(
                 ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON($4), 4326)), 3))))",
            a.id,
            a.kind,
            a.name,
            a.geometry,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
