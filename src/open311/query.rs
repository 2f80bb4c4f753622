//! The parsed `GET requests` query: the spec's filters, the 90-day window, the area (a circle
//! or a box), paging, extensions and `source`, read strictly from the query string.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::format::datetime;
use crate::domain::{RadiusMeters, Reference, ServiceCode, Source, Status};
use crate::error::FieldError;
use crate::geo::{BBox, Position, position_from_fields};

/// The spec's default and largest page: 1000 requests.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The spec's default window, and the widest a `start_date`..`end_date` range may span.
pub const WINDOW_DAYS: i64 = 90;
/// Radius used when `lat` and `long` come without `radius`, in metres.
pub const DEFAULT_RADIUS_M: f64 = 1000.0;

/// Where to look: a circle around a point, or a box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Area {
    Circle { center: Position, radius_m: f64 },
    Box(BBox),
}

/// A parsed `GET requests` query. `ids` overrides every other filter, as the spec says.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestsQuery {
    pub ids: Vec<String>,
    pub service_codes: Vec<String>,
    pub statuses: Vec<Status>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub area: Option<Area>,
    pub page: u32,
    pub page_size: u32,
    pub extensions: bool,
    /// Who answers an area query: the live index, or `PostGIS` (staff only; the baseline the
    /// benchmark compares with, through the same HTTP and JSON).
    pub source: Source,
}

impl RequestsQuery {
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }

    /// The ids as stored: references normalised (`cp7k3m9qxd` → `CP-7K3M-9QXD`), and each raw
    /// value too, which may be an imported (external) id.
    pub fn lookup_keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.ids.len() * 2);
        for id in &self.ids {
            if let Some(r) = Reference::parse(id) {
                keys.push(r.to_string());
            }
            keys.push(id.clone());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Parses the query string. Empty values act as absent; list parameters may be repeated
    /// or comma-delimited; `is_known_service` rejects codes the catalogue does not hold.
    pub fn parse(
        query: &str,
        now: DateTime<Utc>,
        is_known_service: impl Fn(&str) -> bool,
    ) -> Result<Self, Vec<FieldError>> {
        const KNOWN: &[&str] = &[
            "jurisdiction_id",
            "api_key",
            "service_request_id",
            "service_code",
            "start_date",
            "end_date",
            "status",
            "updated_after",
            "lat",
            "long",
            "radius",
            "bbox",
            "page",
            "page_size",
            "extensions",
            "source",
        ];
        const LISTS: &[&str] = &["service_request_id", "service_code", "status"];
        let mut errors = Vec::new();
        let params = QueryParams::parse(query, KNOWN, LISTS, &mut errors);

        let ids: Vec<String> = params.list("service_request_id");
        if !ids.is_empty() {
            return Self::by_ids(ids, &params);
        }
        let mut service_codes = Vec::new();
        for code in params.list("service_code") {
            if ServiceCode::parse(&code).is_ok() && is_known_service(&code) {
                service_codes.push(code);
            } else {
                errors.push(FieldError::new(
                    "service_code",
                    format!("{code:?} is not a known service code"),
                ));
            }
        }
        let statuses = match Status::parse_filter(&params.list("status").join(",")) {
            Ok(s) => s,
            Err(m) => {
                errors.push(FieldError::new("status", m.to_string()));
                Vec::new()
            }
        };
        let start = params
            .one("start_date")
            .and_then(|s| datetime("start_date", s, &mut errors));
        let end = params
            .one("end_date")
            .and_then(|s| datetime("end_date", s, &mut errors));
        let updated_after = params
            .one("updated_after")
            .and_then(|s| datetime("updated_after", s, &mut errors));
        let (start, end) = window(start, end, updated_after, now, &mut errors);

        let area = area(&params, &mut errors);
        let page = params
            .number("page", 1, 1_000_000, &mut errors)
            .unwrap_or(1);
        let page_size = params
            .number("page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE, &mut errors)
            .unwrap_or(MAX_PAGE_SIZE);
        let extensions = match params.one("extensions") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                errors.push(FieldError::new(
                    "extensions",
                    format!("{other:?} is neither true nor false"),
                ));
                false
            }
        };
        let source = source(&params, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            ids,
            service_codes,
            statuses,
            start,
            end,
            updated_after,
            area,
            page,
            page_size,
            extensions,
            source,
        })
    }

    /// The spec: `service_request_id` overrides every other argument, so the others are not
    /// even checked (a client that also sends a stale `service_code` or a bad date still gets
    /// its requests). Only `extensions=true` still shapes the answer.
    fn by_ids(ids: Vec<String>, params: &QueryParams) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if ids.len() > MAX_PAGE_SIZE as usize {
            errors.push(FieldError::new(
                "service_request_id",
                format!("at most {MAX_PAGE_SIZE} ids at once"),
            ));
        }
        if ids.iter().any(|id| id.chars().count() > 100) {
            errors.push(FieldError::new(
                "service_request_id",
                "ids are at most 100 characters",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            ids,
            service_codes: Vec::new(),
            statuses: Vec::new(),
            start: None,
            end: None,
            updated_after: None,
            area: None,
            page: 1,
            page_size: MAX_PAGE_SIZE,
            extensions: params.one("extensions") == Some("true"),
            source: Source::Index,
        })
    }
}

/// The query string of the next page: the same arguments with `page` moved on, and without an
/// `api_key`, which a link must not repeat.
pub fn next_page_query(query: &str, next: u32) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "page" && k != "api_key" {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair("page", &next.to_string());
    out.finish()
}

/// `source`: the live index by default; `postgis` for the baseline (staff only, checked by
/// the handler).
fn source(params: &QueryParams, errors: &mut Vec<FieldError>) -> Source {
    Source::parse(params.one("source")).unwrap_or_else(|e| {
        errors.push(FieldError::new("source", e.to_string()));
        Source::Index
    })
}

/// The `requested_datetime` window: at most 90 days, the most recent 90 by default. A query
/// by `updated_after` alone (a client keeping in sync) gets no window.
fn window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    updated_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    errors: &mut Vec<FieldError>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let span = chrono::Duration::days(WINDOW_DAYS);
    match (start, end) {
        (Some(s), Some(e)) => {
            if e < s {
                errors.push(FieldError::new("end_date", "is before start_date"));
            } else if e - s > span {
                errors.push(FieldError::new(
                    "end_date",
                    format!("the range may not span more than {WINDOW_DAYS} days"),
                ));
            }
            (Some(s), Some(e))
        }
        (Some(s), None) => (Some(s), Some(s + span)),
        (None, Some(e)) => (Some(e - span), Some(e)),
        (None, None) if updated_after.is_some() => (None, None),
        (None, None) => (Some(now - span), None),
    }
}

fn area(params: &QueryParams, errors: &mut Vec<FieldError>) -> Option<Area> {
    let before = errors.len();
    let lat = params.float("lat", errors);
    let lon = params.float("long", errors);
    let unreadable_point = errors.len() > before;
    let radius = params.float("radius", errors);
    let bbox = params.one("bbox").and_then(|s| {
        BBox::parse(s)
            .map_err(|e| errors.push(FieldError::new("bbox", e.to_string())))
            .ok()
    });
    let has_point = params.one("lat").is_some() || params.one("long").is_some();
    if has_point && params.one("bbox").is_some() {
        errors.push(FieldError::new(
            "bbox",
            "give either lat, long and radius, or bbox, not both",
        ));
        return None;
    }
    if !has_point {
        if params.one("radius").is_some() {
            errors.push(FieldError::new("radius", "needs lat and long"));
        }
        return bbox.map(Area::Box);
    }
    if unreadable_point {
        return None;
    }
    let center = position_from_fields(lon, lat, "long", "lat", errors)?;
    match RadiusMeters::new(radius.unwrap_or(DEFAULT_RADIUS_M)) {
        Ok(r) => Some(Area::Circle {
            center,
            radius_m: r.get(),
        }),
        Err(e) => {
            errors.push(FieldError::new("radius", e.to_string()));
            None
        }
    }
}

/// A query string as name → values, empty values dropped (they act as absent).
struct QueryParams(BTreeMap<String, Vec<String>>);

impl QueryParams {
    fn parse(query: &str, known: &[&str], lists: &[&str], errors: &mut Vec<FieldError>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            if !known.contains(&k.as_ref()) {
                errors.push(FieldError::new(k.as_ref(), "is not a known parameter"));
                continue;
            }
            let is_list = lists.contains(&k.as_ref());
            if !is_list && map.contains_key(k.as_ref()) {
                errors.push(FieldError::new(k.as_ref(), "may be given only once"));
                continue;
            }
            let values = map.entry(k.into_owned()).or_default();
            if is_list {
                values.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(ToOwned::to_owned),
                );
            } else {
                values.push(v.to_owned());
            }
        }
        Self(map)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// A scalar parameter: the raw value (commas included, for `bbox`).
    fn one(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    fn float(&self, name: &str, errors: &mut Vec<FieldError>) -> Option<f64> {
        let s = self.one(name)?;
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                errors.push(FieldError::new(
                    name,
                    format!("{s:?} is not a finite number"),
                ));
                None
            }
        }
    }

    fn number(
        &self,
        name: &str,
        default: u32,
        max: u32,
        errors: &mut Vec<FieldError>,
    ) -> Option<u32> {
        let Some(s) = self.one(name) else {
            return Some(default);
        };
        match s.parse::<u32>() {
            Ok(v) if (1..=max).contains(&v) => Some(v),
            _ => {
                errors.push(FieldError::new(
                    name,
                    format!("{s:?} is not a whole number between 1 and {max}"),
                ));
                None
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::open311) fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn parse(q: &str) -> Result<RequestsQuery, Vec<String>> {
        RequestsQuery::parse(q, now(), |c| c == "pothole" || c == "graffiti-removal")
            .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn the_default_query_is_the_last_90_days_and_1000_requests() {
        let q = parse("").unwrap();
        assert_eq!(q.start, Some(now() - chrono::Duration::days(90)));
        assert_eq!(q.end, None);
        assert_eq!((q.page, q.page_size, q.offset()), (1, 1000, 0));
        assert!(q.statuses.is_empty() && q.area.is_none() && !q.extensions);
    }

    #[test]
    fn empty_arguments_act_as_absent() {
        let empty =
            parse("service_code=&status=&start_date=&end_date=&lat=&long=&bbox=&page=&extensions=")
                .unwrap();
        assert_eq!(empty, parse("").unwrap());
    }

    #[test]
    fn list_arguments_may_be_repeated_or_comma_delimited() {
        let q = parse("service_code=pothole,graffiti-removal&status=open&status=closed").unwrap();
        assert_eq!(q.service_codes, vec!["pothole", "graffiti-removal"]);
        assert_eq!(q.statuses.len(), Status::ALL.len());
        assert_eq!(parse("page=1&page=2").unwrap_err(), vec!["page"]);
    }

    #[test]
    fn a_date_range_is_bounded_to_90_days() {
        let q = parse("start_date=2026-01-01T00:00:00-08:00").unwrap();
        assert_eq!(
            q.end.unwrap() - q.start.unwrap(),
            chrono::Duration::days(90)
        );
        let q = parse("end_date=2026-03-01").unwrap();
        assert_eq!(
            q.end.unwrap() - q.start.unwrap(),
            chrono::Duration::days(90)
        );
        assert_eq!(
            parse("start_date=2026-01-01T00:00:00Z&end_date=2026-05-01T00:00:00Z").unwrap_err(),
            vec!["end_date"]
        );
        assert_eq!(
            parse("start_date=2026-01-01T00:00:00").unwrap_err(),
            vec!["start_date"]
        );
        assert_eq!(parse("end_date=yesterday").unwrap_err(), vec!["end_date"]);
        let sync = parse("updated_after=2026-05-31T00:00:00Z").unwrap();
        assert_eq!((sync.start, sync.end), (None, None));
    }

    #[test]
    fn areas_are_a_circle_or_a_box_never_both() {
        let q = parse("lat=34.05&long=-118.25&radius=200").unwrap();
        assert!(
            matches!(q.area, Some(Area::Circle { radius_m, .. }) if (radius_m - 200.0).abs() < 1e-9)
        );
        let q = parse("lat=34.05&long=-118.25").unwrap();
        assert!(
            matches!(q.area, Some(Area::Circle { radius_m, .. }) if (radius_m - DEFAULT_RADIUS_M).abs() < 1e-9)
        );
        assert!(matches!(
            parse("bbox=-118.3,34,-118.2,34.1").unwrap().area,
            Some(Area::Box(_))
        ));
        assert_eq!(parse("lat=34.05").unwrap_err(), vec!["long"]);
        assert_eq!(parse("lat=NaN&long=1").unwrap_err(), vec!["lat"]);
        assert_eq!(parse("lat=91&long=1").unwrap_err(), vec!["lat"]);
        assert_eq!(parse("lat=1&long=1&radius=0").unwrap_err(), vec!["radius"]);
        assert_eq!(
            parse("lat=1&long=1&radius=1e9").unwrap_err(),
            vec!["radius"]
        );
        assert_eq!(parse("radius=5").unwrap_err(), vec!["radius"]);
        assert_eq!(parse("bbox=1,2,3").unwrap_err(), vec!["bbox"]);
        assert_eq!(
            parse("bbox=0,0,1,1&lat=0&long=0").unwrap_err(),
            vec!["bbox"]
        );
    }

    #[test]
    fn unknown_parameters_codes_and_statuses_are_refused() {
        assert_eq!(parse("colour=red").unwrap_err(), vec!["colour"]);
        assert_eq!(
            parse("service_code=unicorns").unwrap_err(),
            vec!["service_code"]
        );
        assert_eq!(parse("status=pending").unwrap_err(), vec!["status"]);
        assert_eq!(parse("page_size=1001").unwrap_err(), vec!["page_size"]);
        assert_eq!(parse("extensions=yes").unwrap_err(), vec!["extensions"]);
    }

    #[test]
    fn service_request_id_overrides_every_other_argument_even_invalid_ones() {
        let q = parse(
            "service_request_id=CP-7K3M-9QXD&service_code=unicorns&start_date=yesterday&status=pending&page=0&colour=red&bbox=1,2,3&extensions=true",
        )
        .unwrap();
        assert_eq!(q.ids, vec!["CP-7K3M-9QXD"]);
        assert!(q.service_codes.is_empty() && q.statuses.is_empty() && q.area.is_none());
        assert_eq!((q.start, q.end, q.page), (None, None, 1));
        assert!(q.extensions);
        assert!(
            !parse("service_request_id=CP-1&extensions=maybe")
                .unwrap()
                .extensions
        );
        let too_long = format!("service_request_id={}&colour=red", "x".repeat(101));
        assert_eq!(parse(&too_long).unwrap_err(), vec!["service_request_id"]);
    }

    #[test]
    fn the_next_page_keeps_the_arguments_and_moves_page_on() {
        assert_eq!(
            next_page_query("status=open&page=3&service_code=a,b&api_key=secret", 4),
            "status=open&service_code=a%2Cb&page=4"
        );
        assert_eq!(next_page_query("", 2), "page=2");
    }

    #[test]
    fn ids_are_looked_up_as_references_and_as_imported_ids() {
        let q = parse("service_request_id=cp7k3m9qxd,LA-123").unwrap();
        assert_eq!(
            q.lookup_keys(),
            vec!["CP-7K3M-9QXD", "LA-123", "cp7k3m9qxd"]
        );
    }
}
