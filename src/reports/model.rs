//! Report domain types: parsed at the edge, so the rest of the code only sees valid values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;
use crate::geo::{Position, REPORT_H3_RESOLUTION};

/// A report's detailed status. Open311 shows only `open`/`closed`; the detail goes in notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Acknowledged,
    Scheduled,
    InProgress,
    Fixed,
    Duplicate,
    NotActionable,
    Referred,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::New,
        Status::Acknowledged,
        Status::Scheduled,
        Status::InProgress,
        Status::Fixed,
        Status::Duplicate,
        Status::NotActionable,
        Status::Referred,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Acknowledged => "acknowledged",
            Self::Scheduled => "scheduled",
            Self::InProgress => "in_progress",
            Self::Fixed => "fixed",
            Self::Duplicate => "duplicate",
            Self::NotActionable => "not_actionable",
            Self::Referred => "referred",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::New | Self::Acknowledged | Self::Scheduled | Self::InProgress
        )
    }

    /// The two-valued Open311 status.
    pub fn open311(self) -> &'static str {
        if self.is_open() { "open" } else { "closed" }
    }

    /// Parses a status filter: detailed names, or Open311's `open` / `closed` groups.
    pub fn parse_filter(s: &str) -> Result<Vec<Status>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "open" => out.extend(Self::ALL.into_iter().filter(|s| s.is_open())),
                "closed" => out.extend(Self::ALL.into_iter().filter(|s| !s.is_open())),
                "all" => out.extend(Self::ALL),
                other => out.push(Self::parse(other).ok_or_else(|| {
                    format!("unknown status {other:?}; use open, closed, all or one of new, acknowledged, scheduled, in_progress, fixed, duplicate, not_actionable, referred, cancelled")
                })?),
            }
        }
        out.sort_by_key(|s| *s as u8);
        out.dedup();
        Ok(out)
    }
}

/// How a report reached the city.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Web,
    App,
    Phone,
    Email,
    Social,
    Field,
    Open311,
    Import,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::App => "app",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Social => "social",
            Self::Field => "field",
            Self::Open311 => "open311",
            Self::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Web,
            Self::App,
            Self::Phone,
            Self::Email,
            Self::Social,
            Self::Field,
            Self::Open311,
            Self::Import,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// A service code: lower-case letters, digits, `-` and `_`, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceCode(String);

impl ServiceCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a service code (a-z, 0-9, '-', '_'; at most 64)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text a citizen wrote: plain text, at most [`Description::MAX_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let n = s.chars().count();
        if n > Self::MAX_CHARS {
            return Err(format!(
                "is {n} characters long; at most {} are accepted",
                Self::MAX_CHARS
            ));
        }
        if looks_like_markup(s) {
            return Err("must be plain text; HTML or other markup is not accepted".into());
        }
        if s.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err("contains control characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `<` followed by a letter, `/`, `!` or `?` opens a tag; "size < 1 m" stays fine.
fn looks_like_markup(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
}

/// A short reference a citizen can read over the phone: `CP-` and 8 Crockford base-32
/// characters (no I, L, O, U), e.g. `CP-7K3M-9QXD`. About 10^12 values, drawn at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reference([u8; 12]);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Reference {
    /// The reference whose 8 characters encode the low 40 bits of `x`, 5 bits each.
    pub fn from_bits(x: u64) -> Self {
        let mut out = *b"CP-0000-0000";
        for (i, slot) in [3, 4, 5, 6, 8, 9, 10, 11].into_iter().enumerate() {
            out[slot] = CROCKFORD[((x >> (35 - 5 * i)) & 31) as usize];
        }
        Self(out)
    }

    pub fn random() -> Self {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).unwrap_or_else(|_| {
            // The OS generator failing is not recoverable in any useful way; fall back to
            // the v4 UUID generator's own randomness rather than panicking mid-request.
            raw.copy_from_slice(&Uuid::new_v4().as_bytes()[..8]);
        });
        let mut out = *b"CP-0000-0000";
        let slots = [3, 4, 5, 6, 8, 9, 10, 11];
        for (slot, byte) in slots.iter().zip(raw) {
            out[*slot] = CROCKFORD[usize::from(byte & 31)];
        }
        Self(out)
    }

    /// Parses a reference as a person might type it: any case, with or without dashes.
    pub fn parse(s: &str) -> Option<Self> {
        let cleaned: Vec<u8> = s
            .bytes()
            .filter(|b| *b != b'-' && *b != b' ')
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let body = cleaned.strip_prefix(b"CP")?;
        if body.len() != 8 {
            return None;
        }
        let mut out = *b"CP-0000-0000";
        let slots = [3, 4, 5, 6, 8, 9, 10, 11];
        for (slot, b) in slots.iter().zip(body) {
            // Crockford decoding folds look-alikes: O→0, I/L→1.
            let b = match b {
                b'O' => b'0',
                b'I' | b'L' => b'1',
                other => *other,
            };
            if !CROCKFORD.contains(&b) {
                return None;
            }
            out[*slot] = b;
        }
        Some(Self(out))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("CP-????-????")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Contact details a citizen chose to give, with their consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub notify: bool,
}

/// The contact block as it arrives on the wire.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub consent: bool,
    #[serde(default)]
    pub notify: bool,
}

/// The consent text recorded with every stored contact.
pub const CONSENT_TEXT: &str =
    "I agree that the city stores my contact details to tell me about this report.";

impl ContactBody {
    /// `prefix` names the block in error messages (`contact` or the Open311 field names).
    pub fn parse(self, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Contact> {
        let clean = |v: Option<String>, field: &str, max: usize, errors: &mut Vec<FieldError>| {
            let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
            if v.chars().count() > max || v.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    format!("{prefix}{field}"),
                    format!("must be at most {max} printable characters"),
                ));
                return None;
            }
            Some(v)
        };
        let name = clean(self.name, "name", 200, errors);
        let email = clean(self.email, "email", 254, errors);
        let phone = clean(self.phone, "phone", 40, errors);
        if let Some(e) = &email {
            let valid = e
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            if !valid {
                errors.push(FieldError::new(
                    format!("{prefix}email"),
                    "is not an e-mail address",
                ));
            }
        }
        if let Some(p) = &phone {
            if !p
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            {
                errors.push(FieldError::new(
                    format!("{prefix}phone"),
                    "may hold only digits, spaces and + - ( ) .",
                ));
            }
        }
        if name.is_none() && email.is_none() && phone.is_none() {
            return None;
        }
        if !self.consent {
            errors.push(FieldError::new(
                format!("{prefix}consent"),
                "must be true to store contact details; leave contact out to report anonymously",
            ));
            return None;
        }
        Some(Contact {
            name,
            email,
            phone,
            notify: self.notify,
        })
    }
}

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

/// The JSON body of `POST /api/v1/reports`.
#[derive(Clone, Debug, Deserialize)]
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

/// Optional free-text fields: trimmed, empty means absent, bounded.
pub fn optional_text(
    v: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
    if v.chars().count() > max || v.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} printable characters"),
        ));
        return None;
    }
    Some(v)
}

/// Parses a position from two optional numbers, naming the missing or bad one.
pub fn parse_position(
    lon: Option<f64>,
    lat: Option<f64>,
    lon_name: &str,
    lat_name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Position> {
    match (lon, lat) {
        (Some(lon), Some(lat)) => Position::new(lon, lat)
            .map_err(|e| {
                let field = if e.field() == "lon" {
                    lon_name
                } else {
                    lat_name
                };
                errors.push(FieldError::new(field, e.to_string()));
            })
            .ok(),
        (lon, lat) => {
            if lat.is_none() {
                errors.push(FieldError::new(lat_name, "is required"));
            }
            if lon.is_none() {
                errors.push(FieldError::new(lon_name, "is required"));
            }
            None
        }
    }
}

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

impl NewReportBody {
    /// Parses the body, collecting every field error at once.
    pub fn parse(self, default_channel: Channel) -> Result<NewReport, Vec<FieldError>> {
        let mut errors = Vec::new();
        let service_code = match self.service_code.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(FieldError::new("service_code", "is required"));
                None
            }
            Some(s) => ServiceCode::parse(s)
                .map_err(|m| errors.push(FieldError::new("service_code", m)))
                .ok(),
        };
        let position = parse_position(self.lon, self.lat, "lon", "lat", &mut errors);
        let description = Description::parse(self.description.as_deref().unwrap_or(""))
            .map_err(|m| errors.push(FieldError::new("description", m)))
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
        if self.attributes.len() > 50 {
            errors.push(FieldError::new("attributes", "at most 50 attributes"));
        }
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
                    attributes: self.attributes,
                    media_url,
                    contact,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A stored report, as read back from `PostGIS`. Holds no personal data.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Report {
    pub id: Uuid,
    pub reference: String,
    pub external_id: Option<String>,
    pub service_code: String,
    #[sqlx(try_from = "String")]
    pub status: StatusColumn,
    pub status_notes: Option<String>,
    pub description: String,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub agency: Option<String>,
    pub channel: String,
    pub lon: f64,
    pub lat: f64,
    pub h3_cell: i64,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub duplicate_of: Option<Uuid>,
    pub duplicate_of_reference: Option<String>,
    pub supporters: i32,
    pub media_url: Option<String>,
    pub attributes: serde_json::Value,
    pub hidden: bool,
    pub change_seq: i64,
}

/// `Status` read from its column (the CHECK constraint keeps it one of the known names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusColumn(pub Status);

impl TryFrom<String> for StatusColumn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Status::parse(&s).map(StatusColumn).ok_or(s)
    }
}

impl Report {
    pub fn status(&self) -> Status {
        self.status.0
    }

    pub fn position(&self) -> Position {
        Position::new(self.lon, self.lat)
            .unwrap_or_else(|_| unreachable!("the database CHECK keeps positions valid"))
    }
}

/// The public view of a report: what anyone may read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReportView {
    pub id: Uuid,
    pub reference: String,
    pub service_code: String,
    pub service_name: String,
    pub group: String,
    pub status: Status,
    pub open311_status: String,
    pub status_notes: Option<String>,
    pub description: String,
    pub address: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub channel: String,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub supporters: i32,
    pub duplicate_of: Option<ParentRef>,
    pub tracking_url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParentRef {
    pub id: Uuid,
    pub reference: String,
}

/// One history event as shown to the public: roles, not names.
#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow)]
pub struct HistoryEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub note: Option<String>,
    pub actor_role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// The body of `POST /api/v1/reports/{id}/status`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChangeBody {
    pub status: String,
    pub note: Option<String>,
}

/// H3 cell of a position at the stored resolution, as `PostgreSQL`'s signed bigint.
pub fn h3_cell_i64(p: Position) -> i64 {
    u64::from(p.h3_cell(REPORT_H3_RESOLUTION)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_readable_and_parse_back_forgivingly() {
        let r = Reference::random();
        let s = r.to_string();
        assert_eq!(s.len(), 12);
        assert!(s.starts_with("CP-") && s.as_bytes()[7] == b'-');
        assert_eq!(Reference::parse(&s.to_lowercase()), Some(r));
        assert_eq!(Reference::parse(&s.replace('-', "")), Some(r));
        assert_eq!(
            Reference::parse("CP-OOOO-IIII").map(|r| r.to_string()),
            Some("CP-0000-1111".into())
        );
        assert_eq!(Reference::parse("CP-UUUU-0000"), None);
        assert_eq!(Reference::parse("XX-0000-0000"), None);
    }

    #[test]
    fn description_rejects_markup_but_not_comparisons() {
        assert!(Description::parse("hole < 1 m wide").is_ok());
        assert!(Description::parse("<script>alert(1)</script>").is_err());
        assert!(Description::parse(&"x".repeat(4001)).is_err());
        assert!(Description::parse("bell\u{7}").is_err());
    }

    #[test]
    fn status_filter_expands_open311_groups() {
        let open = Status::parse_filter("open").unwrap();
        assert_eq!(open.len(), 4);
        assert!(open.iter().all(|s| s.is_open()));
        assert_eq!(Status::parse_filter("fixed,closed").unwrap().len(), 5);
        assert!(Status::parse_filter("bogus").is_err());
    }

    #[test]
    fn body_errors_name_every_field_at_fault() {
        let body: NewReportBody = serde_json::from_value(serde_json::json!({
            "service_code": "Pothole!", "lat": 91.0, "description": "<b>x</b>",
            "contact": {"email": "someone@example.org"}
        }))
        .unwrap();
        let errs = body.parse(Channel::Web).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"service_code"));
        assert!(fields.contains(&"lon"));
        assert!(fields.contains(&"description"));
        assert!(fields.contains(&"contact.consent"));
    }
}
