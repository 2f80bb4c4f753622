//! The shapes of every Open311 response, serialized to JSON directly and to XML through
//! `xml.rs`.

use serde::Serialize;

use super::form::AttributeDef;
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
