//! Conditional GET: whether a request's `If-None-Match` already names the current `ETag`, so the
//! answer is 304. One rule for every cached answer (tiles, photos, basemap files).

use axum::http::{HeaderMap, header};

/// True when any `If-None-Match` header lists `*` or `etag`, compared weakly (a `W/` prefix on
/// either side is ignored), as RFC 9110 asks for `If-None-Match`.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
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
}
