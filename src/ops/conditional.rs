//! Conditional GET: whether a request's `If-None-Match` already names the current `ETag`, so the
//! answer is 304. One rule for every cached answer (tiles, photos, basemap files); files served
//! whole or by ranges (the export snapshots) also get the full RFC 9110 §13.2.2 order
//! ([`evaluate`]) and `If-Range` ([`range_applies`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};

/// True when any `If-None-Match` header lists `*` or `etag`, compared weakly (a `W/` prefix on
/// either side is ignored), as RFC 9110 asks for `If-None-Match`.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    tags(headers, header::IF_NONE_MATCH)
        .map(|t| t.trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// A representation's validators: its strong `ETag` (quoted) and when it last changed.
#[derive(Clone, Copy, Debug)]
pub struct Validators<'a> {
    pub etag: &'a str,
    pub last_modified: SystemTime,
}

impl Validators<'_> {
    /// `Last-Modified` as HTTP sends it, to the second.
    pub fn last_modified_header(&self) -> String {
        httpdate::fmt_http_date(self.last_modified)
    }

    /// Whole seconds, as the header carries them: a date compared with `Last-Modified`.
    fn modified_secs(&self) -> u64 {
        self.last_modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// What the preconditions of a `GET`/`HEAD` say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Answer normally (200 or 206).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: `If-Match` or `If-Unmodified-Since` is false.
    Failed,
}

/// RFC 9110 §13.2.2 for a `GET` or `HEAD`: `If-Match` (strong), else `If-Unmodified-Since`;
/// then `If-None-Match` (weak), else `If-Modified-Since`. An unparsable date is ignored.
pub fn evaluate(headers: &HeaderMap, v: &Validators<'_>) -> Precondition {
    if headers.contains_key(header::IF_MATCH) {
        let any = tags(headers, header::IF_MATCH).any(|t| t == "*" || strong_eq(t, v.etag));
        if !any {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(headers, header::IF_UNMODIFIED_SINCE) {
        if v.modified_secs() > since {
            return Precondition::Failed;
        }
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if not_modified(headers, v.etag) {
            return Precondition::NotModified;
        }
    } else if let Some(since) = date(headers, header::IF_MODIFIED_SINCE) {
        if v.modified_secs() <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured: no `If-Range`, or one naming the current strong `ETag`
/// or exactly the `Last-Modified` date (RFC 9110 §13.1.5); otherwise the whole file goes out,
/// so a client never joins parts of two versions.
pub fn range_applies(headers: &HeaderMap, v: &Validators<'_>) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return strong_eq(value, v.etag);
    }
    http_date_secs(value) == Some(v.modified_secs())
}

/// The entity tags of every header of this name.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Strong comparison: both tags strong and equal.
fn strong_eq(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

/// A date header in whole seconds since the epoch, if it parses.
fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    http_date_secs(headers.get(name)?.to_str().ok()?)
}

/// An HTTP date in whole seconds since the epoch (a date before it counts as 0), if it parses.
fn http_date_secs(value: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_NONE_MATCH, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_current_tag_in_any_header_or_list_position_matches() {
        assert!(not_modified(&with(&["\"a\", \"b\""]), "\"b\""));
        assert!(not_modified(&with(&["\"x\"", "\"b\""]), "\"b\""));
    }

    #[test]
    fn a_weak_tag_matches_its_strong_twin_and_a_star_matches_anything() {
        assert!(not_modified(&with(&["W/\"b\""]), "\"b\""));
        assert!(not_modified(&with(&["*"]), "\"b\""));
    }

    #[test]
    fn another_tag_or_no_header_does_not_match() {
        assert!(!not_modified(&with(&["\"a\""]), "\"b\""));
        assert!(!not_modified(&HeaderMap::new(), "\"b\""));
    }

    fn file() -> (HeaderMap, SystemTime) {
        (
            HeaderMap::new(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
        )
    }

    fn check(name: header::HeaderName, value: &str) -> Precondition {
        let (mut h, modified) = file();
        h.insert(name, value.parse().unwrap());
        evaluate(
            &h,
            &Validators {
                etag: "\"v1\"",
                last_modified: modified,
            },
        )
    }

    #[test]
    fn if_match_compares_strongly() {
        assert_eq!(check(header::IF_MATCH, "\"v1\""), Precondition::Proceed);
        assert_eq!(check(header::IF_MATCH, "*"), Precondition::Proceed);
        assert_eq!(check(header::IF_MATCH, "W/\"v1\""), Precondition::Failed);
        assert_eq!(check(header::IF_MATCH, "\"v0\""), Precondition::Failed);
    }

    #[test]
    fn dates_compare_to_the_second() {
        let same = "Tue, 14 Nov 2023 22:13:20 GMT";
        let before = "Tue, 14 Nov 2023 22:13:19 GMT";
        for (name, date, want) in [
            (header::IF_MODIFIED_SINCE, same, Precondition::NotModified),
            (header::IF_MODIFIED_SINCE, before, Precondition::Proceed),
            (header::IF_UNMODIFIED_SINCE, same, Precondition::Proceed),
            (header::IF_UNMODIFIED_SINCE, before, Precondition::Failed),
            (
                header::IF_MODIFIED_SINCE,
                "yesterday",
                Precondition::Proceed,
            ),
        ] {
            assert_eq!(check(name.clone(), date), want, "{name}: {date}");
        }
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let (mut h, modified) = file();
        h.insert(header::IF_NONE_MATCH, "\"v0\"".parse().unwrap());
        h.insert(
            header::IF_MODIFIED_SINCE,
            "Tue, 14 Nov 2023 22:13:20 GMT".parse().unwrap(),
        );
        let v = Validators {
            etag: "\"v1\"",
            last_modified: modified,
        };
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_range_needs_the_strong_tag_or_the_exact_date() {
        let (_, modified) = file();
        let v = Validators {
            etag: "\"v1\"",
            last_modified: modified,
        };
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_RANGE, value.parse().unwrap());
            range_applies(&h, &v)
        };
        assert!(range_applies(&HeaderMap::new(), &v));
        assert!(with("\"v1\""));
        assert!(!with("W/\"v1\""));
        assert!(!with("\"v0\""));
        assert!(with("Tue, 14 Nov 2023 22:13:20 GMT"));
        assert!(!with("Tue, 14 Nov 2023 22:13:19 GMT"));
    }
}
