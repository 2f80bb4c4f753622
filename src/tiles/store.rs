//! The tiles' SQL: the `incidents` layer of a tile built by `PostGIS` (`ST_AsMVT`) straight
//! from the reports table, for `source=postgis` (the benchmark baseline and a cross-check).

use chrono::NaiveDate;
use sqlx::PgPool;

use super::build::INCIDENTS;
use super::model::TileFilter;
use crate::geo::TileId;

/// The MVT bytes of the tile's `incidents` layer as `PostGIS` builds them (empty when the tile
/// holds none, as citypin's are). Every point in the tile, however many: no clustering.
///
/// The same incidents, properties and order as citypin's `incidents` layer: visible reports
/// passing the filter in the tile's half-open square `[xmin, xmax) × (ymin, ymax]` of
/// EPSG:3857 (the rule [`TileId::from_coord`] follows), sorted by id. The `GiST` index on
/// `location` finds the candidates (a Web Mercator square is a lon/lat rectangle).
pub async fn postgis_incidents_tile(
    pool: &PgPool,
    tile: TileId,
    filter: &TileFilter,
    today: NaiveDate,
) -> Result<Vec<u8>, sqlx::Error> {
    let statuses: Vec<&str> = filter.statuses().iter().map(|s| s.as_str()).collect();
    let (start, end) = filter.time_window();
    let bytes = sqlx::query_scalar!(
        r#"
        WITH e AS (SELECT ST_TileEnvelope($1, $2, $3) AS env),
             c AS (SELECT r.*, ST_Transform(r.location, 3857) AS g
                   FROM reports r, e
                   WHERE r.location && ST_Transform(e.env, 4326) AND NOT r.hidden
                     AND r.status = ANY($5)
                     AND (cardinality($6::text[]) = 0 OR r.service_code = ANY($6))
                     AND ($7::timestamptz IS NULL OR r.requested_at >= $7)
                     AND ($8::timestamptz IS NULL OR r.requested_at <= $8))
        SELECT ST_AsMVT(t, $9, 4096, 'geom') FROM (
          SELECT ST_AsMVTGeom(c.g, e.env, 4096, 0, false) AS geom,
                 c.id::text AS id, c.reference, c.service_code,
                 COALESCE(s.group_name, 'Other') AS "group", c.status,
                 GREATEST(0, $4::date - (c.requested_at AT TIME ZONE 'UTC')::date) AS age_days,
                 c.supporters
          FROM c CROSS JOIN e LEFT JOIN services s ON s.service_code = c.service_code
          WHERE ST_X(c.g) >= ST_XMin(e.env) AND ST_X(c.g) < ST_XMax(e.env)
            AND ST_Y(c.g) > ST_YMin(e.env) AND ST_Y(c.g) <= ST_YMax(e.env)
          ORDER BY c.id) t"#,
        i32::from(tile.z()),
        tile.x() as i32,
        tile.y() as i32,
        today,
        &statuses as &[&str],
        filter.service_codes(),
        start,
        end,
        INCIDENTS,
    )
    .fetch_one(pool)
    .await?;
    Ok(bytes.unwrap_or_default())
}
