//! The OpenAPI 3.0 definition of `/ogc` (OGC API – Features, conformance class `oas30`).

use serde_json::{Value, json};

use super::model::{Collection, DEFAULT_HOTSPOT_RESOLUTION, DEFAULT_LIMIT, MAX_LIMIT};

fn param(name: &str, description: &str, schema: &Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "style": "form", "explode": false,
           "description": description, "schema": schema})
}

/// The whole document; `base` is the public URL of the service.
pub fn document(base: &str) -> Value {
    let f = param(
        "f",
        "Output format: json (default) or html",
        &json!({"type": "string", "enum": ["json", "html"]}),
    );
    let bbox = param(
        "bbox",
        "minLon,minLat,maxLon,maxLat in WGS 84 (CRS84)",
        &json!({"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}}),
    );
    let datetime = param(
        "datetime",
        "requested_at: an RFC 3339 instant or an interval start/end, `..` for an open end",
        &json!({"type": "string"}),
    );
    let limit = param(
        "limit",
        "Items per page",
        &json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
    );
    let cursor = param(
        "cursor",
        "Opaque position of the next page, as given in the `next` link",
        &json!({"type": "string"}),
    );
    let service_code = param(
        "service_code",
        "Comma-separated service codes",
        &json!({"type": "string"}),
    );
    let status = param(
        "status",
        "The detailed status, by equality (comma-separated values are alternatives)",
        &json!({"type": "string", "enum": crate::domain::Status::ALL.map(crate::domain::Status::as_str)}),
    );
    let open311_status = param(
        "open311_status",
        "open or closed (the Open311 grouping of the detailed statuses)",
        &json!({"type": "string", "enum": ["open", "closed"]}),
    );
    let resolution = param(
        "resolution",
        "H3 resolution of the hotspot cells",
        &json!({"type": "integer", "minimum": 5, "maximum": 9, "default": DEFAULT_HOTSPOT_RESOLUTION}),
    );
    let collection_id = json!({"name": "collectionId", "in": "path", "required": true,
        "schema": {"type": "string", "enum": Collection::ALL.map(Collection::id)}});
    let feature_id = json!({"name": "featureId", "in": "path", "required": true,
        "schema": {"type": "string"}});
    let ok = |description: &str, media: &str| {
        json!({"200": {"description": description,
                       "content": {media: {"schema": {"type": "object"}}, "text/html": {"schema": {"type": "string"}}}},
               "400": {"description": "A parameter is invalid (problem+json naming it)"},
               "404": {"description": "Not found"}})
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "citypin OGC API – Features",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "311 incidents, areas and hotspots as OGC API – Features (Part 1: Core, GeoJSON, HTML, OpenAPI 3.0). No personal data is ever served.",
            "license": {"name": "Apache-2.0"}
        },
        "servers": [{"url": format!("{base}/ogc")}],
        "paths": {
            "/": {"get": {"operationId": "getLandingPage", "summary": "Landing page",
                          "parameters": [f], "responses": ok("The landing page", "application/json")}},
            "/conformance": {"get": {"operationId": "getConformance", "summary": "Conformance classes",
                          "parameters": [f], "responses": ok("The conformance classes", "application/json")}},
            "/api": {"get": {"operationId": "getApi", "summary": "This document",
                          "responses": {"200": {"description": "The OpenAPI definition",
                              "content": {"application/vnd.oai.openapi+json;version=3.0": {"schema": {"type": "object"}}}}}}},
            "/collections": {"get": {"operationId": "getCollections", "summary": "The collections",
                          "parameters": [f], "responses": ok("The collections", "application/json")}},
            "/collections/{collectionId}": {"get": {"operationId": "describeCollection",
                          "summary": "One collection", "parameters": [collection_id, f],
                          "responses": ok("The collection", "application/json")}},
            "/collections/incidents/items": {"get": {"operationId": "getIncidents",
                          "summary": "Incidents, a page at a time (follow the `next` link)",
                          "parameters": [bbox, datetime, limit, cursor, service_code, status, open311_status, f],
                          "responses": ok("A GeoJSON FeatureCollection", "application/geo+json")}},
            "/collections/areas/items": {"get": {"operationId": "getAreas",
                          "summary": "Areas, a page at a time (follow the `next` link)",
                          "parameters": [bbox, limit, cursor, f],
                          "responses": ok("A GeoJSON FeatureCollection", "application/geo+json")}},
            "/collections/hotspots/items": {"get": {"operationId": "getHotspots",
                          "summary": "Hotspot cells, a page at a time (follow the `next` link)",
                          "parameters": [bbox, datetime, limit, cursor, service_code, status, open311_status, resolution, f],
                          "responses": ok("A GeoJSON FeatureCollection", "application/geo+json")}},
            "/collections/{collectionId}/items/{featureId}": {"get": {"operationId": "getFeature",
                          "summary": "One feature", "parameters": [collection_id, feature_id, f],
                          "responses": ok("A GeoJSON Feature", "application/geo+json")}}
        }
    })
}
