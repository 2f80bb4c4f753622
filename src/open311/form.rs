//! The parsed `POST requests` form: decoded strictly, then checked against the service
//! definition (its attributes included) into the report intake takes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::{datetime, w3c};
use crate::catalogue::Service;
use crate::domain::{
    Channel, ContactBody, Description, Lines, ServiceCode, optional_text, plain_text,
};
use crate::error::FieldError;
use crate::geo::position_from_fields;
use crate::intake::NewReport;
use crate::intake::body::parse_media_url;

/// A `POST requests` form, decoded strictly (UTF-8, well-formed percent escapes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestForm {
    pub api_key: Option<String>,
    pub service_code: Option<String>,
    fields: BTreeMap<&'static str, String>,
    /// `attribute[CODE]=v`, repeated (or as `attribute[CODE][]=v`, `attribute[CODE][0]=v`)
    /// for multivaluelist.
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
            if v.is_empty() {
                continue;
            }
            if let Some(rest) = k.strip_prefix("attribute[") {
                let code = attribute_code(rest).ok_or_else(|| {
                    FieldError::new(k.clone(), "is not of the form attribute[CODE]")
                })?;
                // Repeats are collected; the service definition decides whether its datatype
                // takes more than one value.
                form.attributes.entry(code.to_owned()).or_default().push(v);
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

/// The code of an attribute field, given what follows `attribute[`: `CODE]`, and for
/// multivaluelist the forms clients send, `CODE][]` and PHP's indexed `CODE][0]`.
fn attribute_code(rest: &str) -> Option<&str> {
    let (code, tail) = rest.split_once(']')?;
    let index = tail.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let tail_ok = tail.is_empty() || index.is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()));
    (!code.is_empty() && !code.contains('[') && tail_ok).then_some(code)
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
            // `string` is one line, `text` several (GeoReport v2); both under the one rule.
            datatype => {
                let lines = if datatype == "string" {
                    Lines::One
                } else {
                    Lines::Many
                };
                match plain_text(v, Description::MAX_CHARS, lines) {
                    Ok(t) => Value::String(t),
                    Err(m) => {
                        bad(m.to_string());
                        continue;
                    }
                }
            }
        };
        out.insert(def.code.clone(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    fn service(attributes: &serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "service_code": "pothole", "service_name": "Pothole", "group": "Streets",
            "agency": "BSS", "sla_hours": 72, "dedup": {"radius_m": 30, "window_hours": 24},
            "attributes": attributes
        }))
        .unwrap()
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
    }

    /// Decoding the body fails, naming `field`.
    fn decoding_is_refused_naming(body: &[u8], field: &str) {
        assert_eq!(
            RequestForm::decode(body).unwrap_err().field,
            field,
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    cases! { decoding_is_refused_naming {
        a_repeated_field_is_refused: b"lat=1&lat=2", "lat";
        an_unknown_field_is_refused: b"colour=red", "colour";
        a_value_escaping_bytes_that_are_not_utf8_is_refused: b"description=%FF", "description";
        a_value_with_a_bad_percent_escape_is_refused: b"description=%G1", "description";
        a_body_that_is_not_utf8_is_refused: &[0xff, 0xfe], "body";
        a_non_empty_attribute_without_a_code_is_refused:
            b"attribute[]=x", "attribute[]=x".split('=').next().unwrap();
    }}

    #[test]
    fn multivalue_attributes_may_be_repeated_or_indexed_and_empty_ones_are_absent() {
        let f = RequestForm::decode(
            b"attribute[TAGS]=x&attribute[TAGS]=y&attribute[MORE][0]=a&attribute[MORE][1]=b&attribute[MORE][]=c&attribute[UNKNOWN]=&attribute[]=",
        )
        .unwrap();
        assert_eq!(f.attributes["TAGS"], vec!["x", "y"]);
        assert_eq!(f.attributes["MORE"], vec!["a", "b", "c"]);
        assert!(!f.attributes.contains_key("UNKNOWN"), "{f:?}");
    }

    fn is_a_malformed_attribute(bad: &str) {
        assert!(RequestForm::decode(bad.as_bytes()).is_err(), "{bad}");
    }

    cases! { is_a_malformed_attribute {
        an_attribute_index_that_is_not_a_number_is_refused: "attribute[X][a]=1";
        an_attribute_with_a_stray_bracket_is_refused: "attribute[X]]=1";
        an_attribute_with_two_indexes_is_refused: "attribute[X][0][1]=1";
        an_attribute_with_an_unclosed_bracket_is_refused: "attribute[X=1";
        an_attribute_with_a_doubled_bracket_is_refused: "attribute[[X]=1";
    }}

    /// Checks the attribute pairs against a service defining DEPTH (required list), WIDTH
    /// (number), TAGS (multivalue list), INFO (not variable), SIGN (string) and NOTE (text):
    /// the values and the fields
    /// named in errors.
    fn check(
        pairs: &[(&str, &[&str])],
    ) -> (serde_json::Map<String, serde_json::Value>, Vec<String>) {
        let s = service(&serde_json::json!([
            {"variable": true, "code": "DEPTH", "datatype": "singlevaluelist", "required": true,
             "values": [{"key": "deep", "name": "Deep"}, {"key": 2, "name": "Two"}]},
            {"variable": true, "code": "WIDTH", "datatype": "number", "required": false},
            {"variable": true, "code": "TAGS", "datatype": "multivaluelist", "required": false,
             "values": [{"key": "x", "name": "X"}, {"key": "y", "name": "Y"}]},
            {"variable": false, "code": "INFO", "datatype": "text", "required": false},
            {"variable": true, "code": "SIGN", "datatype": "string", "required": false},
            {"variable": true, "code": "NOTE", "datatype": "text", "required": false}
        ]));
        let given = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect();
        let mut errors = Vec::new();
        let out = parse_attributes(&given, &s, &mut errors);
        (out, errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn attributes_are_checked_against_the_service_definition() {
        let (out, errs) = check(&[
            ("DEPTH", &["2"]),
            ("WIDTH", &["1.5"]),
            ("TAGS", &["x", "y"]),
        ]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out["DEPTH"], "2");
        assert_eq!(out["WIDTH"], 1.5);
        assert_eq!(out["TAGS"], serde_json::json!(["x", "y"]));
    }

    #[test]
    fn string_and_text_attributes_are_plain_text_kept_as_written() {
        let (out, errs) = check(&[
            ("DEPTH", &["deep"]),
            ("SIGN", &[" sign says <SLOW> "]),
            ("NOTE", &["<b>two</b>\r\nlines"]),
        ]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out["SIGN"], "sign says <SLOW>");
        assert_eq!(out["NOTE"], "<b>two</b>\nlines");
    }

    /// The attributes are refused, naming only `field`.
    fn the_attribute_is_refused(pairs: &[(&str, &[&str])], field: &str) {
        assert_eq!(check(pairs).1, vec![field], "{pairs:?}");
    }

    cases! { the_attribute_is_refused {
        a_missing_required_attribute_is_refused: &[], "attribute[DEPTH]";
        a_value_outside_a_list_is_refused: &[("DEPTH", &["shallow"])], "attribute[DEPTH]";
        a_number_attribute_that_is_not_a_number_is_refused:
            &[("DEPTH", &["deep"]), ("WIDTH", &["wide"])], "attribute[WIDTH]";
        a_multivalue_outside_its_list_is_refused:
            &[("DEPTH", &["deep"]), ("TAGS", &["z"])], "attribute[TAGS]";
        an_attribute_that_is_not_variable_is_refused:
            &[("DEPTH", &["deep"]), ("INFO", &["x"])], "attribute[INFO]";
        an_unknown_attribute_is_refused:
            &[("DEPTH", &["deep"]), ("COLOUR", &["red"])], "attribute[COLOUR]";
        a_control_character_in_a_string_attribute_is_refused:
            &[("DEPTH", &["deep"]), ("SIGN", &["slow\u{7}"])], "attribute[SIGN]";
        a_control_character_in_a_text_attribute_is_refused:
            &[("DEPTH", &["deep"]), ("NOTE", &["a\u{0}b"])], "attribute[NOTE]";
        a_line_break_in_a_string_attribute_is_refused:
            &[("DEPTH", &["deep"]), ("SIGN", &["two\nlines"])], "attribute[SIGN]";
    }}

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

    /// The request form is refused, naming only `field`.
    fn the_request_is_refused_naming(body: &[u8], field: &str) {
        let s = service(&serde_json::json!([]));
        let fields = parse_request(RequestForm::decode(body).unwrap(), &s)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect::<Vec<_>>();
        assert_eq!(fields, vec![field], "{}", String::from_utf8_lossy(body));
    }

    cases! { the_request_is_refused_naming {
        a_nan_latitude_is_refused: b"lat=NaN&long=1", "lat";
        an_infinite_longitude_is_refused: b"lat=1&long=inf", "long";
        a_longitude_past_180_is_refused: b"lat=1&long=200", "long";
        a_latitude_that_is_not_a_number_is_refused: b"lat=x&long=1", "lat";
        an_address_without_a_position_is_refused: b"address_string=1+Main+St", "lat";
        a_description_with_a_control_character_is_refused:
            b"lat=1&long=1&description=bell%07", "description";
        an_address_with_a_control_character_is_refused:
            b"lat=1&long=1&address_string=1+Main%1B+St", "address_string";
        an_email_that_is_not_an_address_is_refused: b"lat=1&long=1&email=nope", "email";
        a_media_url_that_is_not_http_is_refused: b"lat=1&long=1&media_url=ftp%3A%2F%2Fx", "media_url";
    }}
}
