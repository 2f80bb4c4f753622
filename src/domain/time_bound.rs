//! One rule for the ends of a time range in every query (tiles, exports, OGC items): an RFC
//! 3339 date-time with an offset, or a plain `YYYY-MM-DD` date, which as a start means that
//! day's first instant (UTC) and as an end the whole day up to its last.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Which end of a range a value bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

/// A value that is neither form; carries the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is neither an RFC 3339 date-time with an offset (e.g. 2024-05-01T00:00:00Z) nor a YYYY-MM-DD date"
)]
pub struct InvalidTime(pub String);

/// Parses one end of a range.
pub fn parse_time_bound(s: &str, bound: Bound) -> Result<DateTime<Utc>, InvalidTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let invalid = || InvalidTime(s.to_owned());
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| invalid())?;
    match bound {
        Bound::Start => Ok(day.and_hms_opt(0, 0, 0).ok_or_else(invalid)?.and_utc()),
        // The end of a whole day: one nanosecond before the next day starts.
        Bound::End => Ok(day
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .ok_or_else(invalid)?
            .and_utc()
            - TimeDelta::nanoseconds(1)),
    }
}

/// Whether the text is a plain date (a whole day), not a date-time.
pub fn is_plain_date(s: &str) -> bool {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_time_keeps_its_instant_whichever_end() {
        let t = parse_time_bound("2024-05-01T12:00:00+02:00", Bound::End).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T10:00:00+00:00");
    }

    #[test]
    fn a_date_as_a_start_is_its_first_instant() {
        let t = parse_time_bound("2024-01-31", Bound::Start).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-31T00:00:00+00:00");
    }

    #[test]
    fn a_date_as_an_end_covers_the_whole_day() {
        let t = parse_time_bound("2024-01-31", Bound::End).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-31T23:59:59.999999999+00:00");
    }

    #[test]
    fn a_date_time_without_an_offset_is_refused() {
        assert_eq!(
            parse_time_bound("2024-05-01T00:00:00", Bound::Start),
            Err(InvalidTime("2024-05-01T00:00:00".into()))
        );
    }

    #[test]
    fn a_word_is_refused() {
        assert!(parse_time_bound("yesterday", Bound::End).is_err());
    }

    #[test]
    fn an_impossible_date_is_refused() {
        assert!(parse_time_bound("2024-02-30", Bound::Start).is_err());
    }
}
