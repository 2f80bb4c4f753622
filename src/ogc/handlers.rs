//! Thin handlers of the OGC API: parse, ask the stores, build the JSON document, and render
//! it as JSON or HTML.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{
    CONFORMANCE, CRS84, Collection, GEOJSON, HTML, Hotspot, ItemsParams, JSON, Link, OPENAPI,
    Output, roll_up,
};
use super::{html, openapi, store};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{AppError, Path, Query};
use crate::exports::model::{Fields, FilterParams, IncidentFeature};
use crate::exports::store as incidents;
use crate::geo::BBox;
use crate::ops::forwarded::PublicBase;

/// Pages that take no parameter but the output format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatParam {
    f: Option<String>,
}

fn base(public: &str) -> String {
    format!("{public}/ogc")
}

/// The JSON document, or its HTML rendering, with the right media type.
fn respond(out: Output, title: &str, doc: &Value, media_type: &'static str) -> Response {
    match out {
        Output::Json => {
            let mut res = axum::Json(doc).into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
            res
        }
        Output::Html => axum::response::Html(html::render(title, doc)).into_response(),
    }
}

/// `self` and `alternate` links of a page at `href` (with no query string).
fn self_links(href: &str, out: Output, json_type: &'static str, title: &str) -> Vec<Link> {
    let json = Link::new(format!("{href}?f=json"), "self", json_type, title);
    let html = Link::new(format!("{href}?f=html"), "self", HTML, title);
    match out {
        Output::Json => vec![
            Link {
                href: href.to_owned(),
                ..json
            },
            Link {
                rel: "alternate",
                title: format!("{title} as HTML"),
                ..html
            },
        ],
        Output::Html => vec![
            html,
            Link {
                rel: "alternate",
                title: format!("{title} as JSON"),
                ..json
            },
        ],
    }
}

/// `GET /ogc`: the landing page.
pub async fn landing(
    PublicBase(public): PublicBase,
    headers: HeaderMap,
    Query(p): Query<FormatParam>,
) -> Result<Response, AppError> {
    let out = Output::negotiate(p.f.as_deref(), &headers)?;
    let base = base(&public);
    let mut links = self_links(&base, out, JSON, "This document");
    links.extend([
        Link::new(
            format!("{base}/api"),
            "service-desc",
            OPENAPI,
            "The API definition (OpenAPI 3.0)",
        ),
        Link::new(
            format!("{base}/conformance"),
            "conformance",
            JSON,
            "Conformance classes",
        ),
        Link::new(
            format!("{base}/conformance"),
            "http://www.opengis.net/def/rel/ogc/1.0/conformance",
            JSON,
            "Conformance classes",
        ),
        Link::new(
            format!("{base}/collections"),
            "data",
            JSON,
            "The collections",
        ),
        Link::new(
            format!("{base}/collections"),
            "http://www.opengis.net/def/rel/ogc/1.0/data",
            JSON,
            "The collections",
        ),
    ]);
    let doc = json!({
        "title": "citypin",
        "description": "A city's 311 incidents, areas and hotspots as OGC API – Features",
        "links": links,
    });
    Ok(respond(out, "citypin", &doc, JSON))
}

/// `GET /ogc/conformance`.
pub async fn conformance(
    headers: HeaderMap,
    Query(p): Query<FormatParam>,
) -> Result<Response, AppError> {
    let out = Output::negotiate(p.f.as_deref(), &headers)?;
    Ok(respond(
        out,
        "Conformance",
        &json!({"conformsTo": CONFORMANCE}),
        JSON,
    ))
}

/// `GET /ogc/api`: the OpenAPI 3.0 definition.
pub async fn api(PublicBase(public): PublicBase) -> Response {
    let doc = openapi::document(&public);
    respond(Output::Json, "API", &doc, OPENAPI)
}

async fn extent(state: &AppState, c: Collection) -> Result<store::Extent, AppError> {
    Ok(match c {
        Collection::Areas => store::areas_extent(&state.pool).await?,
        Collection::Incidents | Collection::Hotspots => {
            store::incidents_extent(&state.pool).await?
        }
    })
}

/// The description of one collection, with its extent.
fn describe(public: &str, c: Collection, extent: &store::Extent) -> Value {
    let base = base(public);
    let bbox = match (
        extent.min_lon,
        extent.min_lat,
        extent.max_lon,
        extent.max_lat,
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => [a, b, c, d],
        _ => [-180.0, -90.0, 180.0, 90.0],
    };
    let href = format!("{base}/collections/{}", c.id());
    let mut doc = json!({
        "id": c.id(),
        "title": c.title(),
        "description": c.description(),
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84}},
        "links": [
            Link::new(href.clone(), "self", JSON, c.title()),
            Link::new(format!("{href}?f=html"), "alternate", HTML, c.title()),
            Link::new(format!("{href}/items"), "items", GEOJSON, &format!("{} as GeoJSON", c.title())),
            Link::new(format!("{href}/items?f=html"), "items", HTML, &format!("{} as HTML", c.title())),
        ],
    });
    if c != Collection::Areas {
        doc["extent"]["temporal"] = json!({
            "interval": [[extent.first, extent.last]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        });
    }
    doc
}

/// `GET /ogc/collections`.
pub async fn collections(
    State(state): State<AppState>,
    PublicBase(public): PublicBase,
    headers: HeaderMap,
    Query(p): Query<FormatParam>,
) -> Result<Response, AppError> {
    let out = Output::negotiate(p.f.as_deref(), &headers)?;
    // Incidents and hotspots share one extent: scan the reports once.
    let incidents = extent(&state, Collection::Incidents).await?;
    let areas = extent(&state, Collection::Areas).await?;
    let all: Vec<Value> = Collection::ALL
        .into_iter()
        .map(|c| {
            let e = if c == Collection::Areas {
                &areas
            } else {
                &incidents
            };
            describe(&public, c, e)
        })
        .collect();
    let href = format!("{}/collections", base(&public));
    let doc = json!({
        "links": self_links(&href, out, JSON, "The collections"),
        "collections": all,
    });
    Ok(respond(out, "Collections", &doc, JSON))
}

/// `GET /ogc/collections/{id}`.
pub async fn collection(
    State(state): State<AppState>,
    PublicBase(public): PublicBase,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<FormatParam>,
) -> Result<Response, AppError> {
    let out = Output::negotiate(p.f.as_deref(), &headers)?;
    let c = Collection::parse(&id)?;
    let doc = describe(&public, c, &extent(&state, c).await?);
    Ok(respond(out, c.title(), &doc, JSON))
}

/// One page of features, before the links are added.
struct Page {
    features: Vec<Value>,
    /// `numberMatched`: given on a collection's first page only (a later page, asked with a
    /// cursor, would recount the whole match for every page: its cost would grow with the
    /// table, and GDAL's default pages of 10 fetched 28k incidents in 45 s).
    matched: Option<i64>,
    next_cursor: Option<String>,
}

impl Page {
    /// A page from `limit + 1` rows read: the extra row only says there is a next page, whose
    /// cursor is the last row kept.
    fn of<T>(
        mut rows: Vec<T>,
        limit: u32,
        matched: Option<i64>,
        feature: impl Fn(&T) -> Result<Value, serde_json::Error>,
        cursor: impl Fn(&T) -> String,
    ) -> Result<Self, AppError> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let features = rows
            .iter()
            .map(feature)
            .collect::<Result<Vec<_>, _>>()
            .map_err(AppError::internal)?;
        Ok(Self {
            next_cursor: more.then(|| rows.last().map(cursor)).flatten(),
            features,
            matched,
        })
    }
}

/// `GET /ogc/collections/{id}/items`.
pub async fn items(
    State(state): State<AppState>,
    PublicBase(public): PublicBase,
    headers: HeaderMap,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Query(p): Query<ItemsParams>,
) -> Result<Response, AppError> {
    let out = Output::negotiate(p.f.as_deref(), &headers)?;
    let c = Collection::parse(&id)?;
    let limit = p.limit()?;
    let fields = Fields::for_caller(&caller);
    let page = match c {
        Collection::Incidents => incidents_page(&state, &p, fields, limit).await?,
        Collection::Areas => areas_page(&state, &p, limit).await?,
        Collection::Hotspots => hotspots_page(&state, &p, fields, limit).await?,
    };
    let href = format!("{}/collections/{}/items", base(&public), c.id());
    let mut links = self_links(&href, out, GEOJSON, &format!("{} items", c.title()));
    // `self` keeps the query that produced this page.
    if let Some(q) = raw.as_deref().filter(|q| !q.is_empty()) {
        links[0].href = format!("{href}?{q}");
    }
    links.push(Link::new(
        format!("{}/collections/{}", base(&public), c.id()),
        "collection",
        JSON,
        c.title(),
    ));
    if let Some(cursor) = &page.next_cursor {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
            if k != "cursor" {
                q.append_pair(&k, &v);
            }
        }
        q.append_pair("cursor", cursor);
        let media = if out == Output::Html { HTML } else { GEOJSON };
        links.push(Link::new(
            format!("{href}?{}", q.finish()),
            "next",
            media,
            "Next page",
        ));
    }
    let mut doc = json!({
        "type": "FeatureCollection",
        "numberReturned": page.features.len(),
        "timeStamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "links": links,
        "features": page.features,
    });
    if let Some(matched) = page.matched {
        doc["numberMatched"] = json!(matched);
    }
    let mut res = respond(out, &format!("{} items", c.title()), &doc, GEOJSON);
    if fields == Fields::Operational {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    Ok(res)
}

fn incident_filter(
    p: &ItemsParams,
    fields: Fields,
) -> Result<crate::exports::model::IncidentFilter, AppError> {
    let mut filter = FilterParams {
        bbox: p.bbox.clone(),
        datetime: p.datetime.clone(),
        start: None,
        end: None,
        service_code: p.service_code.clone(),
        status: None,
    }
    .parse(fields)?;
    if let Some(statuses) = p.statuses()? {
        filter.match_nothing = statuses.is_empty();
        filter.statuses = statuses;
    }
    Ok(filter)
}

async fn incidents_page(
    state: &AppState,
    p: &ItemsParams,
    fields: Fields,
    limit: u32,
) -> Result<Page, AppError> {
    p.only(
        Collection::Incidents,
        &["datetime", "service_code", "status", "open311_status"],
    )?;
    let filter = incident_filter(p, fields)?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            Uuid::parse_str(c)
                .map_err(|_| AppError::bad_field("cursor", "is not a cursor this API gave"))
        })
        .transpose()?;
    let rows = incidents::page(&state.pool, &filter, after, i64::from(limit) + 1).await?;
    let matched = match after {
        None => Some(incidents::count(&state.pool, &filter).await?),
        Some(_) => None,
    };
    Page::of(
        rows,
        limit,
        matched,
        |row| {
            serde_json::to_value(IncidentFeature {
                row,
                catalogue: &state.catalogue,
                fields,
            })
        },
        |r| r.id.to_string(),
    )
}

fn parse_bbox(p: &ItemsParams) -> Result<Option<BBox>, AppError> {
    p.bbox
        .as_deref()
        .map(|b| BBox::parse(b).map_err(|m| AppError::bad_field("bbox", m.to_string())))
        .transpose()
}

async fn areas_page(state: &AppState, p: &ItemsParams, limit: u32) -> Result<Page, AppError> {
    p.only(Collection::Areas, &[])?;
    let bbox = parse_bbox(p)?;
    let rows =
        store::areas_page(&state.pool, bbox, p.cursor.as_deref(), i64::from(limit) + 1).await?;
    let matched = match p.cursor {
        None => Some(store::areas_count(&state.pool, bbox).await?),
        Some(_) => None,
    };
    Page::of(
        rows,
        limit,
        matched,
        |a| serde_json::to_value(a),
        |a| a.id.clone(),
    )
}

async fn hotspots_page(
    state: &AppState,
    p: &ItemsParams,
    fields: Fields,
    limit: u32,
) -> Result<Page, AppError> {
    p.only(
        Collection::Hotspots,
        &[
            "datetime",
            "service_code",
            "status",
            "open311_status",
            "resolution",
        ],
    )?;
    let filter = incident_filter(p, fields)?;
    let res = p.resolution()?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<h3o::CellIndex>()
                .map(u64::from)
                .map_err(|_| AppError::bad_field("cursor", "is not a cursor this API gave"))
        })
        .transpose()?;
    let counts = store::cell_counts(&state.pool, &filter).await?;
    let cells = roll_up(&counts, res);
    // The cells are rolled up in full for every page anyway: their count costs nothing.
    let matched = Some(cells.len() as i64);
    let range = match after {
        Some(a) => cells.range(a + 1..),
        None => cells.range(..),
    };
    let spots: Vec<Hotspot> = range
        .take(limit as usize + 1)
        .filter_map(|(cell, count)| {
            h3o::CellIndex::try_from(*cell).ok().map(|cell| Hotspot {
                cell,
                count: *count,
            })
        })
        .collect();
    Page::of(
        spots,
        limit,
        matched,
        |s| serde_json::to_value(s),
        |s| format!("{:x}", s.cell),
    )
}

/// `GET /ogc/collections/{id}/items/{fid}`.
pub async fn item(
    State(state): State<AppState>,
    PublicBase(public): PublicBase,
    headers: HeaderMap,
    caller: Caller,
    Path((id, fid)): Path<(String, String)>,
    Query(p): Query<FormatParam>,
) -> Result<Response, AppError> {
    let out = Output::negotiate(p.f.as_deref(), &headers)?;
    let c = Collection::parse(&id)?;
    let fields = Fields::for_caller(&caller);
    let not_found = AppError::NotFound("feature");
    let mut doc = match c {
        Collection::Incidents => {
            let id = Uuid::parse_str(&fid).map_err(|_| AppError::NotFound("feature"))?;
            let row = incidents::one(&state.pool, id, fields == Fields::Operational)
                .await?
                .ok_or(not_found)?;
            serde_json::to_value(IncidentFeature {
                row: &row,
                catalogue: &state.catalogue,
                fields,
            })
        }
        Collection::Areas => {
            let area = store::area(&state.pool, &fid).await?.ok_or(not_found)?;
            serde_json::to_value(&area)
        }
        Collection::Hotspots => {
            let cell = fid
                .parse::<h3o::CellIndex>()
                .ok()
                .filter(|c| {
                    u8::from(c.resolution()) >= super::model::MIN_HOTSPOT_RESOLUTION
                        && u8::from(c.resolution()) <= 9
                })
                .ok_or(AppError::NotFound("feature"))?;
            let counts = store::cell_counts(
                &state.pool,
                &incident_filter(&ItemsParams::default(), fields)?,
            )
            .await?;
            let count = roll_up(&counts, cell.resolution())
                .get(&u64::from(cell))
                .copied()
                .ok_or(not_found)?;
            serde_json::to_value(Hotspot { cell, count })
        }
    }
    .map_err(AppError::internal)?;
    let href = format!("{}/collections/{}/items/{}", base(&public), c.id(), fid);
    let mut links = self_links(&href, out, GEOJSON, "This feature");
    links.push(Link::new(
        format!("{}/collections/{}", base(&public), c.id()),
        "collection",
        JSON,
        c.title(),
    ));
    doc["links"] = serde_json::to_value(links).map_err(AppError::internal)?;
    Ok(respond(out, &format!("{} {fid}", c.title()), &doc, GEOJSON))
}
