//! The wire formats: the response format a path's extension picks, and the spec's W3C
//! datetimes, read from queries and forms and written in responses.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::error::FieldError;

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

/// A datetime as the spec wants it: W3C / RFC 3339, always with an offset.
pub fn w3c(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::split("CP-1.json"), Some(("CP-1", Format::Json)));
        assert_eq!(Format::split("a.b.xml"), Some(("a.b", Format::Xml)));
        assert_eq!(Format::split("x.csv"), None);
        assert_eq!(Format::split(".json"), None);
        assert_eq!(Format::split("nothing"), None);
    }
}
