//! How a path names a report: its id, its public reference, or the id it was imported with.

use serde::Deserialize;
use uuid::Uuid;

use super::Reference;

/// A report's key as a URL path gives it, parsed once: a UUID is an id, a reference-shaped
/// string (any case, dashes optional) is a reference, anything else is an imported id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ReportKey {
    Id(Uuid),
    Reference(Reference),
    External(String),
}

/// A path segment that cannot name a report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReportKey {
    #[error("is empty; give a report's id, reference or imported id")]
    Empty,
    #[error("is {0} characters long; an imported id has at most {max}", max = ReportKey::MAX_EXTERNAL_CHARS)]
    TooLong(usize),
}

impl ReportKey {
    /// Longest imported id accepted (the import's own bound).
    pub const MAX_EXTERNAL_CHARS: usize = 255;

    pub fn parse(s: &str) -> Result<Self, InvalidReportKey> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidReportKey::Empty);
        }
        if let Ok(id) = Uuid::parse_str(s) {
            return Ok(Self::Id(id));
        }
        if let Some(r) = Reference::parse(s) {
            return Ok(Self::Reference(r));
        }
        let chars = s.chars().count();
        if chars > Self::MAX_EXTERNAL_CHARS {
            return Err(InvalidReportKey::TooLong(chars));
        }
        Ok(Self::External(s.to_owned()))
    }
}

impl TryFrom<String> for ReportKey {
    type Error = InvalidReportKey;
    fn try_from(s: String) -> Result<Self, InvalidReportKey> {
        Self::parse(&s)
    }
}

impl std::str::FromStr for ReportKey {
    type Err = InvalidReportKey;
    fn from_str(s: &str) -> Result<Self, InvalidReportKey> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_an_id() {
        let id = Uuid::now_v7();
        assert_eq!(ReportKey::parse(&id.to_string()), Ok(ReportKey::Id(id)));
    }

    #[test]
    fn a_loosely_typed_reference_is_a_reference() {
        let r = Reference::parse("CP-7K3M-9QXD").unwrap();
        assert_eq!(
            ReportKey::parse(" cp7k3m9qxd "),
            Ok(ReportKey::Reference(r))
        );
    }

    #[test]
    fn anything_else_is_an_imported_id() {
        assert_eq!(
            ReportKey::parse("1-870704831"),
            Ok(ReportKey::External("1-870704831".into()))
        );
    }

    #[test]
    fn an_empty_key_is_refused() {
        assert_eq!(ReportKey::parse("  "), Err(InvalidReportKey::Empty));
    }

    #[test]
    fn two_hundred_fifty_five_characters_are_accepted() {
        assert!(ReportKey::parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn two_hundred_fifty_six_characters_are_refused() {
        assert_eq!(
            ReportKey::parse(&"x".repeat(256)),
            Err(InvalidReportKey::TooLong(256))
        );
    }
}
