//! The shapes of every Open311 response, serialized to JSON directly and to XML through
//! `xml.rs`.

use serde::Serialize;

use super::form::{AttributeDef, attribute_defs};
use super::format::w3c;
use crate::catalogue::Service;
use crate::domain::{Report, Status};
use crate::reports::model::HistoryEvent;

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
    pub attributes: Option<Vec<AttributeOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_attributes: Option<ExtendedAttributes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<NoteOut>>,
}

/// `extensions=true`: what Open311's two statuses cannot say. `duplicate` and
/// `parent_service_request_id` are the names Chicago, Boston and San Francisco use;
/// `duplicate_of` is citypin's own name for the same parent.
#[derive(Clone, Debug, Serialize)]
pub struct ExtendedAttributes {
    pub detailed_status: &'static str,
    pub channel: String,
    pub supporters: i32,
    pub duplicate: bool,
    pub parent_service_request_id: Option<String>,
    pub duplicate_of: Option<String>,
    pub closed_datetime: Option<String>,
}

/// One submitted attribute under `extensions=true`: a multivaluelist gives one entry per
/// value, as the form sent them. Values are strings, as on the wire.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttributeOut {
    pub code: String,
    pub value: String,
}

/// The submitted attributes the service defines, in its order. Keys it does not define (the
/// native API stores any object) are never shown: they were not asked for in public.
pub fn attributes_out(stored: &serde_json::Value, service: &Service) -> Vec<AttributeOut> {
    use serde_json::Value;
    let mut out = Vec::new();
    for def in attribute_defs(service).into_iter().filter(|d| d.variable) {
        let values = match stored.get(&def.code) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => Vec::new(),
        };
        out.extend(values.into_iter().filter_map(|v| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some(AttributeOut {
                code: def.code.clone(),
                value,
            })
        }));
    }
    out
}

/// One history event under `extensions=true`, in the convention Chicago, Boston and San
/// Francisco serve (`datetime`, `summary`, `type` of opened/closed/activity, `description`),
/// with citypin's own fields alongside: who by role, never by name.
#[derive(Clone, Debug, Serialize)]
pub struct NoteOut {
    pub datetime: String,
    pub summary: String,
    #[serde(rename = "type")]
    pub note_type: &'static str,
    /// The note staff wrote (or the one the system wrote for a duplicate link).
    pub description: Option<String>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub role: String,
}

impl From<&HistoryEvent> for NoteOut {
    fn from(e: &HistoryEvent) -> Self {
        let (note_type, summary) = summarise(e);
        Self {
            datetime: w3c(e.at),
            summary,
            note_type,
            description: e.note.clone().filter(|n| !n.trim().is_empty()),
            kind: e.kind.clone(),
            from_status: e.from_status.clone(),
            to_status: e.to_status.clone(),
            role: e.actor_role.clone(),
        }
    }
}

/// A note's `type` and `summary`: `opened` for the creation, `closed` for any move into a
/// closed status, `activity` for everything else.
fn summarise(e: &HistoryEvent) -> (&'static str, String) {
    let from = e.from_status.as_deref().and_then(Status::parse);
    let to = e.to_status.as_deref().and_then(Status::parse);
    let words = |s: Status| s.as_str().replace('_', " ");
    let activity = |s: &str| ("activity", s.to_owned());
    match (e.kind.as_str(), from, to) {
        ("created", _, _) => ("opened", "Request opened".into()),
        (_, _, Some(Status::Duplicate)) => ("closed", "Request closed as a duplicate".into()),
        (_, _, Some(t)) if !t.is_open() => ("closed", format!("Request closed: {}", words(t))),
        (_, Some(f), Some(t)) if !f.is_open() => {
            ("activity", format!("Request reopened: {}", words(t)))
        }
        (_, _, Some(t)) => ("activity", format!("Status changed to {}", words(t))),
        ("duplicate" | "merge", _, None) => activity("A duplicate was linked to this request"),
        ("unmerge", _, None) => activity("A duplicate was unlinked from this request"),
        ("supporter", ..) => activity("Supporter added"),
        ("photo", ..) => activity("Photo added"),
        ("note", ..) => activity("Note added"),
        _ => activity("Updated"),
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
            attributes: extensions.then(|| {
                service
                    .map(|s| attributes_out(&r.attributes, s))
                    .unwrap_or_default()
            }),
            extended_attributes: extensions.then(|| ExtendedAttributes {
                detailed_status: r.status().as_str(),
                channel: r.channel.clone(),
                supporters: r.supporters,
                duplicate: r.status() == Status::Duplicate,
                parent_service_request_id: r.duplicate_of_reference.clone(),
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
    use crate::open311::query::tests::now;

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

    fn event(kind: &str, from: Option<&str>, to: Option<&str>) -> HistoryEvent {
        HistoryEvent {
            at: now(),
            kind: kind.into(),
            from_status: from.map(Into::into),
            to_status: to.map(Into::into),
            note: Some("Patched by crew 3".into()),
            actor_role: "crew".into(),
            data: None,
        }
    }

    #[test]
    fn notes_carry_datetime_summary_type_and_description() {
        let n = NoteOut::from(&event("status", Some("new"), Some("fixed")));
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["datetime"], "2026-06-01T12:00:00Z");
        assert_eq!(v["type"], "closed");
        assert_eq!(v["summary"], "Request closed: fixed");
        assert_eq!(v["description"], "Patched by crew 3");
        assert_eq!(
            (v["kind"].as_str(), v["role"].as_str()),
            (Some("status"), Some("crew"))
        );
        assert!(v.get("note").is_none(), "{v}");
        let kinds = |k: &str, f: Option<&str>, t: Option<&str>| summarise(&event(k, f, t));
        assert_eq!(kinds("created", None, Some("new")).0, "opened");
        assert_eq!(
            kinds("duplicate", Some("new"), Some("duplicate")).0,
            "closed"
        );
        assert_eq!(kinds("merge", None, None).0, "activity");
        assert_eq!(
            kinds("status", Some("fixed"), Some("in_progress")),
            ("activity", "Request reopened: in progress".into())
        );
        assert_eq!(
            kinds("status", Some("new"), Some("scheduled")),
            ("activity", "Status changed to scheduled".into())
        );
    }

    #[test]
    fn extensions_show_the_defined_attributes_and_the_duplicate_parent() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "service_code": "pothole", "service_name": "Pothole", "group": "Streets",
            "agency": "BSS", "sla_hours": 72, "dedup": {"radius_m": 30, "window_hours": 24},
            "attributes": [
                {"variable": true, "code": "DEPTH", "datatype": "string", "required": false},
                {"variable": true, "code": "TAGS", "datatype": "multivaluelist", "required": false,
                 "values": [{"key": "x", "name": "X"}, {"key": "y", "name": "Y"}]},
                {"variable": true, "code": "WIDTH", "datatype": "number", "required": false}
            ]
        }))
        .unwrap();
        let mut r = sample_report();
        r.attributes = serde_json::json!({"DEPTH": "deep", "TAGS": ["x", "y"], "WIDTH": 1.5,
                                          "email": "ann@example.org"});
        r.status = Status::Duplicate;
        r.duplicate_of_reference = Some("CP-AAAA-BBBB".into());
        let out = RequestOut::new(&r, Some(&service), None, true);
        let pairs: Vec<(String, String)> = out
            .attributes
            .unwrap()
            .into_iter()
            .map(|a| (a.code, a.value))
            .collect();
        let expected = [
            ("DEPTH", "deep"),
            ("TAGS", "x"),
            ("TAGS", "y"),
            ("WIDTH", "1.5"),
        ];
        assert_eq!(pairs, expected.map(|(c, v)| (c.to_owned(), v.to_owned())));
        let ext = out.extended_attributes.unwrap();
        assert!(ext.duplicate);
        assert_eq!(
            ext.parent_service_request_id.as_deref(),
            Some("CP-AAAA-BBBB")
        );
        assert!(
            RequestOut::new(&r, Some(&service), None, false)
                .attributes
                .is_none()
        );
    }

    #[test]
    fn xml_notes_are_not_a_note_inside_a_note() {
        let r = sample_report();
        let out = RequestOut::new(
            &r,
            None,
            Some(&[event("status", Some("new"), Some("fixed"))]),
            true,
        );
        let xml =
            crate::open311::xml::render("service_requests", &serde_json::to_value([out]).unwrap());
        assert!(xml.contains("<notes><note>"), "{xml}");
        assert_eq!(xml.matches("<note>").count(), 1, "{xml}");
        assert!(
            xml.contains("<description>Patched by crew 3</description>"),
            "{xml}"
        );
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
