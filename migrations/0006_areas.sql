-- Areas (council districts and the like) that the OGC API serves as the `areas` collection.
-- Loaded from a GeoJSON file (CITYPIN_AREAS) by `ogc::store::load_areas`, which replaces them
-- all; stored valid, as MultiPolygons, with exterior rings counter-clockwise (RFC 7946).
CREATE TABLE areas (
    id      text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    kind    text NOT NULL DEFAULT '',
    name    text NOT NULL,
    geom    geometry(MultiPolygon, 4326) NOT NULL,
    CONSTRAINT areas_geom_valid CHECK (ST_IsValid(geom))
);
CREATE INDEX areas_geom_gist ON areas USING gist (geom);
