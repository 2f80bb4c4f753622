//! What a new report arrives as, from JSON or from a multipart form (the same body type,
//! no detour through JSON), and the report it parses into.

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use crate::domain::{
    Channel, Contact, ContactBody, Description, Lines, ServiceCode, optional_text, plain_text,
};
use crate::error::{AppError, FieldError};
use crate::geo::{Position, position_from_fields};

/// A report ready to be stored: every field already valid.
#[derive(Clone, Debug)]
pub struct NewReport {
    pub service_code: ServiceCode,
    pub position: Position,
    pub description: Description,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub channel: Channel,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub media_url: Option<String>,
    pub contact: Option<Contact>,
}

/// The body of `POST /api/v1/reports`: the JSON object, or a form's text fields (named the
/// same, `contact.*` flattened).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewReportBody {
    pub service_code: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
    pub address: Option<String>,
    pub channel: Option<String>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub media_url: Option<String>,
    pub contact: Option<ContactBody>,
}

/// Most attributes one report may carry.
const MAX_ATTRIBUTES: usize = 50;

/// The text fields a multipart report may hold besides `photo` parts.
pub const FORM_FIELDS: &[&str] = &[
    "service_code",
    "lat",
    "lon",
    "description",
    "address",
    "channel",
    "media_url",
    "attributes",
    "contact.name",
    "contact.email",
    "contact.phone",
    "contact.consent",
    "contact.notify",
    "use_photo_location",
];

impl NewReportBody {
    /// The body a form's text fields stand for (`use_photo_location` is the caller's; every
    /// other name is one of [`FORM_FIELDS`], checked as the form was read). A number or flag
    /// that does not read as one is 400 naming the field.
    pub fn from_form(fields: &[(String, String)]) -> Result<Self, AppError> {
        let mut body = Self::default();
        let mut contact = ContactBody::default();
        let mut has_contact = false;
        for (name, value) in fields {
            let text = Some(value.clone());
            has_contact |= name.starts_with("contact.");
            match name.as_str() {
                "service_code" => body.service_code = text,
                "lat" => body.lat = Some(form_number(name, value)?),
                "lon" => body.lon = Some(form_number(name, value)?),
                "description" => body.description = text,
                "address" => body.address = text,
                "channel" => body.channel = text,
                "media_url" => body.media_url = text,
                "attributes" => {
                    body.attributes = crate::error::parse_json(value.as_bytes())
                        .map_err(|_| AppError::bad_field("attributes", "must be a JSON object"))?;
                }
                "contact.name" => contact.name = text,
                "contact.email" => contact.email = text,
                "contact.phone" => contact.phone = text,
                "contact.consent" => contact.consent = form_flag(name, value)?,
                "contact.notify" => contact.notify = form_flag(name, value)?,
                other => {
                    return Err(AppError::bad_field(other, "is not a field of this form"));
                }
            }
        }
        body.contact = has_contact.then_some(contact);
        Ok(body)
    }

    /// Parses the body, collecting every field error at once (422).
    pub fn parse(self, default_channel: Channel) -> Result<NewReport, AppError> {
        let mut errors = Vec::new();
        let service_code = match self.service_code.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(FieldError::new("service_code", "is required"));
                None
            }
            Some(s) => ServiceCode::parse(s)
                .map_err(|e| errors.push(FieldError::new("service_code", e.to_string())))
                .ok(),
        };
        let position = position_from_fields(self.lon, self.lat, "lon", "lat", &mut errors);
        let description = Description::parse(self.description.as_deref().unwrap_or(""))
            .map_err(|e| errors.push(FieldError::new("description", e.to_string())))
            .ok();
        let address = optional_text(self.address, "address", 300, &mut errors);
        let channel = match self.channel.as_deref() {
            None | Some("") => Some(default_channel),
            Some(c) => Channel::parse(c)
                .filter(|c| *c != Channel::Import)
                .or_else(|| {
                    errors.push(FieldError::new(
                        "channel",
                        format!(
                            "{c:?} is not one of web, app, phone, email, social, field, open311"
                        ),
                    ));
                    None
                }),
        };
        let media_url = parse_media_url(self.media_url, "media_url", &mut errors);
        let contact = self.contact.and_then(|c| c.parse("contact.", &mut errors));
        if self.attributes.len() > MAX_ATTRIBUTES {
            errors.push(FieldError::new(
                "attributes",
                format!("at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        let attributes = parse_attributes(self.attributes, "attributes", &mut errors);
        match (service_code, position, description, channel) {
            (Some(service_code), Some(position), Some(description), Some(channel))
                if errors.is_empty() =>
            {
                Ok(NewReport {
                    service_code,
                    position,
                    description,
                    address,
                    zipcode: None,
                    channel,
                    attributes,
                    media_url,
                    contact,
                })
            }
            _ => Err(AppError::Invalid(errors)),
        }
    }
}

/// Longest key inside `attributes`, in characters.
const MAX_ATTRIBUTE_KEY_CHARS: usize = 100;

/// The native API's `attributes`: any JSON object, nested values included (the service's form
/// gives them meaning, not the API), but every string in it at any depth is free text under
/// the one rule (several lines, at most [`Description::MAX_CHARS`] characters) and every key
/// one line of at most [`MAX_ATTRIBUTE_KEY_CHARS`]. A refusal names the path:
/// `attributes.depth`, `attributes.tags[1]`, `attributes.size.unit`.
fn parse_attributes(
    map: Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in map {
        let key = match plain_text(&key, MAX_ATTRIBUTE_KEY_CHARS, Lines::One) {
            Ok(k) if !k.is_empty() => k,
            Ok(_) => {
                errors.push(FieldError::new(path, "an attribute name must not be blank"));
                continue;
            }
            Err(e) => {
                errors.push(FieldError::new(path, format!("an attribute name {e}")));
                continue;
            }
        };
        let field = format!("{path}.{key}");
        let value = attribute_value(value, &field, errors);
        out.insert(key, value);
    }
    out
}

fn attribute_value(value: Value, field: &str, errors: &mut Vec<FieldError>) -> Value {
    match value {
        Value::String(s) => match plain_text(&s, Description::MAX_CHARS, Lines::Many) {
            Ok(t) => Value::String(t),
            Err(e) => {
                errors.push(FieldError::new(field, e.to_string()));
                Value::Null
            }
        },
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| attribute_value(v, &format!("{field}[{i}]"), errors))
                .collect(),
        ),
        Value::Object(map) => Value::Object(parse_attributes(map, field, errors)),
        other => other,
    }
}

/// A link to media held elsewhere (Open311's `media_url`): an http(s) URL.
pub fn parse_media_url(
    v: Option<String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let v = optional_text(v, field, 2000, errors)?;
    if v.starts_with("https://") || v.starts_with("http://") {
        Some(v)
    } else {
        errors.push(FieldError::new(field, "must be an http(s) URL"));
        None
    }
}

fn form_number(name: &str, value: &str) -> Result<f64, AppError> {
    let n: f64 = value
        .trim()
        .parse()
        .map_err(|_| AppError::bad_field(name, format!("{value:?} is not a number")))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(AppError::invalid(name, "must be a finite number"))
    }
}

/// HTML forms send `on` for a ticked box; accept the usual spellings.
pub fn form_flag(name: &str, value: &str) -> Result<bool, AppError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" | "" => Ok(false),
        _ => Err(AppError::bad_field(name, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_at_fault(body: serde_json::Value) -> Vec<String> {
        let body: NewReportBody = serde_json::from_value(body).unwrap();
        match body.parse(Channel::Web) {
            Err(AppError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn body_errors_name_every_field_at_fault() {
        let fields = fields_at_fault(serde_json::json!({
            "service_code": "Pothole!", "lat": 91.0, "description": "bell\u{7}",
            "contact": {"email": "someone@example.org"}
        }));
        for f in ["service_code", "lon", "description", "contact.consent"] {
            assert!(fields.contains(&f.to_owned()), "{f} in {fields:?}");
        }
    }

    #[test]
    fn attribute_strings_are_plain_text_at_any_depth() {
        let body: NewReportBody = serde_json::from_value(serde_json::json!({
            "service_code": "pothole", "lat": 1.0, "lon": 1.0,
            "attributes": {"sign": " sign says <SLOW> ", "size": {"unit": "m", "tags": ["a", 2]}}
        }))
        .unwrap();
        let report = body.parse(Channel::Web).unwrap();
        assert_eq!(
            serde_json::Value::Object(report.attributes),
            serde_json::json!({"sign": "sign says <SLOW>", "size": {"unit": "m", "tags": ["a", 2]}})
        );
    }

    #[test]
    fn a_control_character_in_an_attribute_is_refused_naming_its_path() {
        let fields = fields_at_fault(serde_json::json!({
            "service_code": "pothole", "lat": 1.0, "lon": 1.0,
            "attributes": {"depth": "deep\u{0}", "size": {"tags": ["ok", "\u{1b}[2J"]}}
        }));
        assert_eq!(fields, vec!["attributes.depth", "attributes.size.tags[1]"]);
    }

    #[test]
    fn an_import_channel_is_refused_at_intake() {
        let fields = fields_at_fault(serde_json::json!({
            "service_code": "pothole", "lat": 1.0, "lon": 1.0, "channel": "import"
        }));
        assert_eq!(fields, vec!["channel"]);
    }

    #[test]
    fn a_form_reads_into_the_same_body_as_json() {
        let form: Vec<(String, String)> = [
            ("service_code", "pothole"),
            ("lat", "34.05"),
            ("lon", "-118.25"),
            ("attributes", r#"{"depth": "deep"}"#),
            ("contact.email", "a@example.org"),
            ("contact.consent", "on"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let from_form = NewReportBody::from_form(&form).unwrap();
        let from_json: NewReportBody = serde_json::from_value(serde_json::json!({
            "service_code": "pothole", "lat": 34.05, "lon": -118.25,
            "attributes": {"depth": "deep"},
            "contact": {"email": "a@example.org", "consent": true}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&from_form).unwrap(),
            serde_json::to_value(&from_json).unwrap()
        );
    }

    #[test]
    fn a_form_number_that_is_not_one_is_a_bad_request() {
        let form = vec![("lat".to_owned(), "north".to_owned())];
        let err = NewReportBody::from_form(&form).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(err.field_errors()[0].field, "lat");
    }

    #[test]
    fn a_form_flag_that_is_not_one_is_a_bad_request() {
        let form = vec![("contact.consent".to_owned(), "maybe".to_owned())];
        let err = NewReportBody::from_form(&form).unwrap_err();
        assert_eq!(err.field_errors()[0].field, "contact.consent");
    }
}
