//! Open311 domain types: the response format, the parsed `GET requests` query, the parsed
//! `POST requests` form with its attributes checked against the service definition, and the
//! shapes of every response (serialized to JSON directly and to XML through `xml.rs`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::Service;
use crate::domain::{
    Channel, ContactBody, Description, RadiusMeters, Reference, Report, ServiceCode, Source,
    Status, optional_text,
};
use crate::error::FieldError;
use crate::geo::{BBox, Position, position_from_fields};
use crate::intake::NewReport;
use crate::intake::body::parse_media_url;
use crate::reports::model::HistoryEvent;

/// The response format, chosen by the path's extension as the spec says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    /// Splits `CP-7K3M-9QXD.json` into the name and its format.
    pub fn split(file: &str) -> Option<(&str, Format)> {
        let (stem, ext) = file.rsplit_once('.')?;
        let format = match ext {
            "xml" => Format::Xml,
            "json" => Format::Json,
            _ => return None,
        };
        (!stem.is_empty()).then_some((stem, format))
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
        }
    }
}

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

/// A W3C datetime with an offset (`2010-01-01T00:00:00Z`), or a date (midnight UTC).
pub fn datetime(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    errors.push(FieldError::new(
        field,
        format!("{s:?} is not a W3C datetime with an offset, e.g. 2010-01-01T00:00:00Z"),
    ));
    None
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

/// A `POST requests` form, decoded strictly (UTF-8, well-formed percent escapes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestForm {
    pub api_key: Option<String>,
    pub service_code: Option<String>,
    fields: BTreeMap<&'static str, String>,
    /// `attribute[CODE]=v` and `attribute[CODE][]=v` (the latter for multivaluelist).
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// The form fields the spec defines, besides `api_key`, `service_code` and `attribute[…]`.
const FORM_FIELDS: &[&str] = &[
    "jurisdiction_id",
    "lat",
    "long",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
];

impl RequestForm {
    /// Decodes `application/x-www-form-urlencoded`. Empty values act as absent; an unknown
    /// field, a repeated scalar field or bytes that are not UTF-8 make the body malformed.
    pub fn decode(body: &[u8]) -> Result<Self, FieldError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| FieldError::new("body", "is not UTF-8 form data"))?;
        let mut form = Self::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k)
                .ok_or_else(|| FieldError::new("body", "holds a malformed percent escape"))?;
            let v = percent_decode(v).ok_or_else(|| {
                FieldError::new(
                    k.clone(),
                    "holds a malformed percent escape or is not UTF-8",
                )
            })?;
            let v = v.trim().to_owned();
            if let Some(rest) = k.strip_prefix("attribute[") {
                let (code, many) = match rest.strip_suffix("][]") {
                    Some(code) => (code, true),
                    None => (rest.strip_suffix(']').unwrap_or(""), false),
                };
                if code.is_empty() || code.contains(['[', ']']) {
                    return Err(FieldError::new(k, "is not of the form attribute[CODE]"));
                }
                let values = form.attributes.entry(code.to_owned()).or_default();
                if !many && !values.is_empty() {
                    return Err(FieldError::new(k, "may be given only once"));
                }
                if !v.is_empty() {
                    values.push(v);
                }
                continue;
            }
            if v.is_empty() {
                continue;
            }
            let slot = match k.as_str() {
                "api_key" => &mut form.api_key,
                "service_code" => &mut form.service_code,
                other => {
                    let Some(name) = FORM_FIELDS.iter().find(|f| **f == other) else {
                        return Err(FieldError::new(
                            other,
                            "is not a field of a service request",
                        ));
                    };
                    if form.fields.insert(name, v).is_some() {
                        return Err(FieldError::new(other, "may be given only once"));
                    }
                    continue;
                }
            };
            if slot.replace(v).is_some() {
                return Err(FieldError::new(k, "may be given only once"));
            }
        }
        Ok(form)
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.fields.remove(name)
    }
}

/// Strict percent-decoding: `form_urlencoded` replaces bad bytes silently, but the spec says
/// everything received is UTF-8, so anything else is refused rather than stored mangled.
pub fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| (c as char).to_digit(16))?;
                let lo = bytes.next().and_then(|c| (c as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// What a valid form becomes (besides the caller): the report and the echoed account id.
pub struct ParsedRequest {
    pub report: NewReport,
    pub account_id: Option<String>,
}

/// Checks a decoded form against its service, collecting every field at fault.
pub fn parse_request(
    mut form: RequestForm,
    service: &Service,
) -> Result<ParsedRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let lat = form_float(&form, "lat", &mut errors);
    let lon = form_float(&form, "long", &mut errors);
    let bad_number = errors.iter().any(|e| e.field == "lat" || e.field == "long");
    let position = if bad_number {
        None
    } else if lat.is_none() && lon.is_none() {
        errors.push(FieldError::new(
            "lat",
            "lat and long are required: this city places every request on the map and does not geocode address_string or address_id",
        ));
        None
    } else {
        position_from_fields(lon, lat, "long", "lat", &mut errors)
    };
    let description = Description::parse(form.field("description").unwrap_or(""))
        .map_err(|e| errors.push(FieldError::new("description", e.to_string())))
        .ok();
    let address = optional_text(
        form.take("address_string"),
        "address_string",
        300,
        &mut errors,
    );
    let media_url = parse_media_url(form.take("media_url"), "media_url", &mut errors);
    let account_id = optional_text(form.take("account_id"), "account_id", 100, &mut errors);
    // Accepted as the spec allows, but not kept: a device id identifies a person's phone.
    let _ = optional_text(form.take("device_id"), "device_id", 200, &mut errors);
    let _ = optional_text(form.take("address_id"), "address_id", 100, &mut errors);
    let given = optional_text(form.take("first_name"), "first_name", 100, &mut errors);
    let family = optional_text(form.take("last_name"), "last_name", 100, &mut errors);
    let name = match (given, family) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    };
    let email = form.take("email");
    // An Open311 client sending contact details attests that the citizen gave them for this
    // report; the consent text recorded names the client (see reports::store::insert).
    let contact = ContactBody {
        notify: email.is_some(),
        name,
        email,
        phone: form.take("phone"),
        consent: true,
    }
    .parse("", &mut errors);
    let attributes = parse_attributes(&form.attributes, service, &mut errors);
    let service_code = ServiceCode::parse(&service.service_code)
        .map_err(|e| errors.push(FieldError::new("service_code", e.to_string())))
        .ok();
    match (service_code, position, description) {
        (Some(service_code), Some(position), Some(description)) if errors.is_empty() => {
            Ok(ParsedRequest {
                report: NewReport {
                    service_code,
                    position,
                    description,
                    address,
                    zipcode: None,
                    channel: Channel::Open311,
                    attributes,
                    media_url,
                    contact,
                },
                account_id,
            })
        }
        _ => Err(errors),
    }
}

fn form_float(form: &RequestForm, name: &str, errors: &mut Vec<FieldError>) -> Option<f64> {
    let s = form.field(name)?;
    let parsed = s.parse::<f64>().ok();
    if parsed.is_none() {
        errors.push(FieldError::new(name, format!("{s:?} is not a number")));
    }
    parsed
}

/// One attribute of a service definition, as the catalogue holds it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct AttributeDef {
    pub variable: bool,
    pub code: String,
    pub datatype: String,
    pub required: bool,
    #[serde(default)]
    pub datatype_description: Option<String>,
    #[serde(default)]
    pub order: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<AttributeValue>,
}

/// One choice of a list attribute. Keys are strings on the wire even if a catalogue wrote
/// them as numbers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct AttributeValue {
    #[serde(deserialize_with = "string_or_number")]
    pub key: String,
    pub name: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {other}"
        ))),
    }
}

/// The attribute definitions of a service, in their presentation order. Entries the
/// catalogue holds in another shape are skipped (the catalogue loader owns that file).
pub fn attribute_defs(service: &Service) -> Vec<AttributeDef> {
    let mut defs: Vec<AttributeDef> = service
        .attributes
        .iter()
        .filter_map(|a| AttributeDef::deserialize(a).ok())
        .collect();
    defs.sort_by_key(|a| a.order.unwrap_or(i64::MAX));
    defs
}

/// Checks submitted attribute values against the service definition: unknown codes,
/// missing required ones, list values that are not among the keys, and the datatypes.
pub fn parse_attributes(
    given: &BTreeMap<String, Vec<String>>,
    service: &Service,
    errors: &mut Vec<FieldError>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let defs = attribute_defs(service);
    let mut out = serde_json::Map::new();
    for code in given.keys() {
        if !defs.iter().any(|d| d.variable && &d.code == code) {
            errors.push(FieldError::new(
                format!("attribute[{code}]"),
                format!("is not an attribute of service {}", service.service_code),
            ));
        }
    }
    for def in defs.iter().filter(|d| d.variable) {
        let field = format!("attribute[{}]", def.code);
        let values = given.get(&def.code).map(Vec::as_slice).unwrap_or_default();
        if values.is_empty() {
            if def.required {
                errors.push(FieldError::new(field, "is required"));
            }
            continue;
        }
        let is_key = |v: &String| def.values.iter().any(|k| &k.key == v);
        let mut bad = |m: String| errors.push(FieldError::new(field.clone(), m));
        if def.datatype != "multivaluelist" && values.len() > 1 {
            bad("takes one value".into());
            continue;
        }
        let v = &values[0];
        let value = match def.datatype.as_str() {
            "singlevaluelist" if is_key(v) => Value::String(v.clone()),
            "multivaluelist" if values.iter().all(is_key) => {
                Value::Array(values.iter().cloned().map(Value::String).collect())
            }
            "singlevaluelist" | "multivaluelist" => {
                let keys: Vec<&str> = def.values.iter().map(|k| k.key.as_str()).collect();
                bad(format!("must be one of {}", keys.join(", ")));
                continue;
            }
            "number" => {
                let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) else {
                    bad(format!("{v:?} is not a number"));
                    continue;
                };
                Value::Number(n)
            }
            "datetime" => {
                let mut errs = Vec::new();
                let Some(t) = datetime(&field, v, &mut errs) else {
                    errors.extend(errs);
                    continue;
                };
                Value::String(w3c(t))
            }
            "string" if v.contains(['\n', '\r']) => {
                bad("must be a single line".into());
                continue;
            }
            _ => match Description::parse(v) {
                Ok(d) => Value::String(d.as_str().to_owned()),
                Err(m) => {
                    bad(m.to_string());
                    continue;
                }
            },
        };
        out.insert(def.code.clone(), value);
    }
    out
}

/// A datetime as the spec wants it: W3C / RFC 3339, always with an offset.
pub fn w3c(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One entry of `GET services`.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceOut {
    pub service_code: String,
    pub service_name: String,
    pub description: Option<String>,
    pub metadata: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub keywords: Option<String>,
    pub group: Option<String>,
}

impl From<&Service> for ServiceOut {
    fn from(s: &Service) -> Self {
        Self {
            service_code: s.service_code.clone(),
            service_name: s.service_name.clone(),
            description: Some(s.description.clone()).filter(|d| !d.is_empty()),
            metadata: s.has_attributes(),
            // Every request gets its id at once: no tokens, no black box.
            kind: "realtime",
            keywords: Some(s.keywords.join(", ")).filter(|k| !k.is_empty()),
            group: Some(s.group.clone()),
        }
    }
}

/// `GET services/{code}`.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceDefinition {
    pub service_code: String,
    pub attributes: Vec<AttributeDef>,
}

/// One service request as Open311 shows it. Holds no personal data.
#[derive(Clone, Debug, Serialize)]
pub struct RequestOut {
    pub service_request_id: String,
    pub status: &'static str,
    pub status_notes: Option<String>,
    pub service_name: Option<String>,
    pub service_code: String,
    pub description: Option<String>,
    pub agency_responsible: Option<String>,
    pub service_notice: Option<String>,
    pub requested_datetime: String,
    pub updated_datetime: Option<String>,
    pub expected_datetime: Option<String>,
    pub address: Option<String>,
    pub address_id: Option<String>,
    pub zipcode: Option<String>,
    pub lat: f64,
    pub long: f64,
    pub media_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_attributes: Option<ExtendedAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<NoteOut>>,
}

/// `extensions=true`: what Open311's two statuses cannot say.
#[derive(Clone, Debug, Serialize)]
pub struct ExtendedAttributes {
    pub detailed_status: &'static str,
    pub channel: String,
    pub supporters: i32,
    pub duplicate_of: Option<String>,
    pub closed_datetime: Option<String>,
}

/// One history event under `extensions=true`: who by role, never by name.
#[derive(Clone, Debug, Serialize)]
pub struct NoteOut {
    pub datetime: String,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
    pub role: String,
}

impl From<&HistoryEvent> for NoteOut {
    fn from(e: &HistoryEvent) -> Self {
        Self {
            datetime: w3c(e.at),
            kind: e.kind.clone(),
            from_status: e.from_status.clone(),
            to_status: e.to_status.clone(),
            note: e.note.clone(),
            role: e.actor_role.clone(),
        }
    }
}

/// The detail behind `open`/`closed`, for `status_notes` when staff wrote none
/// ("closed is not fixed").
pub fn detailed_status_note(r: &Report) -> String {
    let status = r.status();
    let detail = match status {
        Status::Duplicate => r
            .duplicate_of_reference
            .as_ref()
            .map_or_else(|| "duplicate".to_owned(), |p| format!("duplicate of {p}")),
        Status::Referred => "referred to another body".to_owned(),
        other => other.as_str().replace('_', " "),
    };
    format!("{}: {detail}", status.open311())
}

impl RequestOut {
    pub fn new(
        r: &Report,
        service: Option<&Service>,
        notes: Option<&[HistoryEvent]>,
        extensions: bool,
    ) -> Self {
        let status_notes = r
            .status_notes
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| detailed_status_note(r));
        Self {
            service_request_id: r.reference.clone(),
            status: r.status().open311(),
            status_notes: Some(status_notes),
            service_name: service.map(|s| s.service_name.clone()),
            service_code: r.service_code.clone(),
            description: Some(r.description.clone()).filter(|d| !d.is_empty()),
            agency_responsible: r.agency.clone(),
            service_notice: None,
            requested_datetime: w3c(r.requested_at),
            updated_datetime: Some(w3c(r.updated_at)),
            expected_datetime: r.due_at.map(w3c),
            address: r.address.clone(),
            address_id: None,
            zipcode: r.zipcode.clone(),
            lat: r.lat,
            long: r.lon,
            media_url: r.media_url.clone(),
            extended_attributes: extensions.then(|| ExtendedAttributes {
                detailed_status: r.status().as_str(),
                channel: r.channel.clone(),
                supporters: r.supporters,
                duplicate_of: r.duplicate_of_reference.clone(),
                closed_datetime: r.closed_at.map(w3c),
            }),
            notes: extensions.then(|| {
                notes
                    .unwrap_or_default()
                    .iter()
                    .map(NoteOut::from)
                    .collect()
            }),
        }
    }
}

/// The answer to `POST requests`.
#[derive(Clone, Debug, Serialize)]
pub struct PostedOut {
    pub service_request_id: String,
    pub service_notice: Option<String>,
    pub account_id: Option<String>,
}

/// What a citizen is told right after reporting; a report linked to an earlier one of the
/// same problem says so, since the earlier one's progress is what the citizen will see.
pub fn service_notice(report: &Report, service: &Service) -> String {
    let quote = format!(
        "Quote {} when you ask about this request.",
        report.reference
    );
    match (&report.duplicate_of_reference, service.sla_hours) {
        (Some(parent), _) => format!(
            "{quote} It was already reported as {parent}; yours is linked to it and follows its progress."
        ),
        (None, Some(h)) => format!(
            "{quote} {} aims to respond within {h} hours.",
            service.agency
        ),
        (None, None) => quote,
    }
}

/// The answer to `GET tokens/{token}`.
#[derive(Clone, Debug, Serialize)]
pub struct TokenOut {
    pub service_request_id: String,
    pub token: String,
}

/// One entry of the spec's error list.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorOut {
    pub code: u16,
    pub description: String,
}

/// Service discovery (the `discovery.{json,xml}` document).
#[derive(Clone, Debug, Serialize)]
pub struct Discovery {
    pub changeset: String,
    pub contact: String,
    pub key_service: String,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub specification: &'static str,
    pub url: String,
    pub changeset: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub formats: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn parse(q: &str) -> Result<RequestsQuery, Vec<String>> {
        RequestsQuery::parse(q, now(), |c| c == "pothole" || c == "graffiti-removal")
            .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    fn service(attributes: &serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "service_code": "pothole", "service_name": "Pothole", "group": "Streets",
            "agency": "BSS", "sla_hours": 72, "dedup": {"radius_m": 30, "window_hours": 24},
            "attributes": attributes
        }))
        .unwrap()
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::split("CP-1.json"), Some(("CP-1", Format::Json)));
        assert_eq!(Format::split("a.b.xml"), Some(("a.b", Format::Xml)));
        assert_eq!(Format::split("x.csv"), None);
        assert_eq!(Format::split(".json"), None);
        assert_eq!(Format::split("nothing"), None);
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
    fn ids_are_looked_up_as_references_and_as_imported_ids() {
        let q = parse("service_request_id=cp7k3m9qxd,LA-123").unwrap();
        assert_eq!(
            q.lookup_keys(),
            vec!["CP-7K3M-9QXD", "LA-123", "cp7k3m9qxd"]
        );
    }

    #[test]
    fn forms_decode_strictly() {
        let f = RequestForm::decode(
            b"api_key=k&service_code=pothole&lat=34.05&long=-118.2&description=a+b%21&attribute[DEPTH]=deep&attribute[TAGS][]=x&attribute[TAGS][]=y&email=",
        )
        .unwrap();
        assert_eq!(f.api_key.as_deref(), Some("k"));
        assert_eq!(f.field("description"), Some("a b!"));
        assert_eq!(f.field("email"), None);
        assert_eq!(f.attributes["TAGS"], vec!["x", "y"]);
        assert_eq!(
            RequestForm::decode(b"lat=1&lat=2").unwrap_err().field,
            "lat"
        );
        assert_eq!(
            RequestForm::decode(b"colour=red").unwrap_err().field,
            "colour"
        );
        assert_eq!(
            RequestForm::decode(b"description=%FF").unwrap_err().field,
            "description"
        );
        assert_eq!(
            RequestForm::decode(b"description=%G1").unwrap_err().field,
            "description"
        );
        assert_eq!(
            RequestForm::decode(&[0xff, 0xfe]).unwrap_err().field,
            "body"
        );
        assert_eq!(
            RequestForm::decode(b"attribute[]=x").unwrap_err().field,
            "attribute[]=x".split('=').next().unwrap()
        );
    }

    #[test]
    fn attributes_are_checked_against_the_service_definition() {
        let s = service(&serde_json::json!([
            {"variable": true, "code": "DEPTH", "datatype": "singlevaluelist", "required": true,
             "values": [{"key": "deep", "name": "Deep"}, {"key": 2, "name": "Two"}]},
            {"variable": true, "code": "WIDTH", "datatype": "number", "required": false},
            {"variable": true, "code": "TAGS", "datatype": "multivaluelist", "required": false,
             "values": [{"key": "x", "name": "X"}, {"key": "y", "name": "Y"}]},
            {"variable": false, "code": "INFO", "datatype": "text", "required": false}
        ]));
        let check = |pairs: &[(&str, &[&str])]| {
            let given = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect();
            let mut errors = Vec::new();
            let out = parse_attributes(&given, &s, &mut errors);
            (out, errors.into_iter().map(|e| e.field).collect::<Vec<_>>())
        };
        let (out, errs) = check(&[
            ("DEPTH", &["2"]),
            ("WIDTH", &["1.5"]),
            ("TAGS", &["x", "y"]),
        ]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out["DEPTH"], "2");
        assert_eq!(out["WIDTH"], 1.5);
        assert_eq!(out["TAGS"], serde_json::json!(["x", "y"]));
        assert_eq!(check(&[]).1, vec!["attribute[DEPTH]"]);
        assert_eq!(
            check(&[("DEPTH", &["shallow"])]).1,
            vec!["attribute[DEPTH]"]
        );
        assert_eq!(
            check(&[("DEPTH", &["deep"]), ("WIDTH", &["wide"])]).1,
            vec!["attribute[WIDTH]"]
        );
        assert_eq!(
            check(&[("DEPTH", &["deep"]), ("TAGS", &["z"])]).1,
            vec!["attribute[TAGS]"]
        );
        assert_eq!(
            check(&[("DEPTH", &["deep"]), ("INFO", &["x"])]).1,
            vec!["attribute[INFO]"]
        );
        assert_eq!(
            check(&[("DEPTH", &["deep"]), ("COLOUR", &["red"])]).1,
            vec!["attribute[COLOUR]"]
        );
    }

    #[test]
    fn a_request_form_becomes_an_open311_report_with_consented_contact() {
        let s = service(&serde_json::json!([]));
        let form = RequestForm::decode(
            b"api_key=k&service_code=pothole&lat=34.05&long=-118.25&description=Hole&first_name=Ann&last_name=Lee&email=ann%40example.org&account_id=77",
        )
        .unwrap();
        let parsed = parse_request(form, &s).unwrap();
        assert_eq!(parsed.account_id.as_deref(), Some("77"));
        let c = parsed.report.contact.unwrap();
        assert_eq!(c.name.as_deref(), Some("Ann Lee"));
        assert!(c.notify);
        assert_eq!(parsed.report.channel, Channel::Open311);
    }

    #[test]
    fn bad_request_forms_name_each_field() {
        let s = service(&serde_json::json!([]));
        let fields = |body: &[u8]| {
            parse_request(RequestForm::decode(body).unwrap(), &s)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(b"lat=NaN&long=1"), vec!["lat"]);
        assert_eq!(fields(b"lat=1&long=inf"), vec!["long"]);
        assert_eq!(fields(b"lat=1&long=200"), vec!["long"]);
        assert_eq!(fields(b"lat=x&long=1"), vec!["lat"]);
        assert_eq!(fields(b"address_string=1+Main+St"), vec!["lat"]);
        assert_eq!(
            fields(b"lat=1&long=1&description=%3Cb%3Ehi%3C%2Fb%3E"),
            vec!["description"]
        );
        assert_eq!(fields(b"lat=1&long=1&email=nope"), vec!["email"]);
        assert_eq!(
            fields(b"lat=1&long=1&media_url=ftp%3A%2F%2Fx"),
            vec!["media_url"]
        );
    }

    #[test]
    fn status_notes_say_why_a_request_closed() {
        let mut r = sample_report();
        r.status = Status::Duplicate;
        r.duplicate_of_reference = Some("CP-AAAA-BBBB".into());
        assert_eq!(
            detailed_status_note(&r),
            "closed: duplicate of CP-AAAA-BBBB"
        );
        r.status = Status::NotActionable;
        assert_eq!(detailed_status_note(&r), "closed: not actionable");
        r.status = Status::InProgress;
        assert_eq!(detailed_status_note(&r), "open: in progress");
        r.status_notes = Some("crew on site".into());
        let out = RequestOut::new(&r, None, None, false);
        assert_eq!(out.status_notes.as_deref(), Some("crew on site"));
        assert!(out.extended_attributes.is_none() && out.notes.is_none());
    }

    fn sample_report() -> Report {
        Report {
            id: uuid::Uuid::now_v7(),
            reference: "CP-0000-0000".into(),
            external_id: None,
            service_code: "pothole".into(),
            status: Status::New,
            status_notes: None,
            description: String::new(),
            address: None,
            zipcode: None,
            agency: None,
            channel: "web".into(),
            lon: 0.0,
            lat: 0.0,
            h3_cell: 0,
            requested_at: now(),
            updated_at: now(),
            closed_at: None,
            due_at: None,
            duplicate_of: None,
            duplicate_of_reference: None,
            supporters: 0,
            media_url: None,
            attributes: serde_json::json!({}),
            hidden: false,
            change_seq: 0,
        }
    }
}
