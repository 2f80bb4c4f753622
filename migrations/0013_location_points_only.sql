-- A report's location must be a non-empty point in range (issue 17, item 2). 0001's CHECK let
-- `POINT EMPTY` through: ST_X of an empty point is NULL, and a CHECK that is NULL passes. One
-- such row made report reads, exports, index loads and syncs fail. The new CHECK is false,
-- never NULL, for anything but a non-empty 2D point with longitude and latitude in range.
--
-- Rows that break it already are reported, never deleted or changed (nothing accepted is ever
-- lost, and there is no position to invent for them): the constraint is then left NOT VALID,
-- so it holds for every insert and update from now on, and each reader skips those rows with
-- an error log and `citypin_unmappable_rows_total`. Once their locations are set by hand:
--   ALTER TABLE reports VALIDATE CONSTRAINT reports_location_valid;
ALTER TABLE reports DROP CONSTRAINT reports_location_valid;

ALTER TABLE reports ADD CONSTRAINT reports_location_valid CHECK (COALESCE(
    GeometryType(location) = 'POINT' AND NOT ST_IsEmpty(location)
    -- BETWEEN is false for NaN and infinities, which PostgreSQL orders past every number.
    AND ST_X(location) BETWEEN -180 AND 180 AND ST_Y(location) BETWEEN -90 AND 90
    AND ST_SRID(location) = 4326,
    false)) NOT VALID;

DO $$
DECLARE
    bad_count bigint;
    bad_ids text;
BEGIN
    SELECT count(*), string_agg(id::text, ', ' ORDER BY id)
      INTO bad_count, bad_ids
      FROM reports
     WHERE NOT COALESCE(
               GeometryType(location) = 'POINT' AND NOT ST_IsEmpty(location)
               AND ST_X(location) BETWEEN -180 AND 180 AND ST_Y(location) BETWEEN -90 AND 90
               AND ST_SRID(location) = 4326,
               false);
    IF bad_count = 0 THEN
        ALTER TABLE reports VALIDATE CONSTRAINT reports_location_valid;
    ELSE
        RAISE WARNING 'citypin migration 0013: % report(s) have no valid point location and are skipped by every reader until fixed; reports_location_valid stays NOT VALID. Ids: %',
            bad_count, bad_ids;
    END IF;
END
$$;
