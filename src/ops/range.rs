//! Single byte ranges (RFC 9110 §14): what a `Range` header asks of a file of a known length.
//!
//! Hand-written rather than `http-range-header` (already in the tree through tower-http):
//! that crate answers a suffix longer than the file (`bytes=-500` of 100 bytes) and a malformed
//! header with the same "unsatisfiable" error, where RFC 9110 wants the whole file (§14.1.3)
//! and the header ignored (§14.2), respectively.

use std::ops::RangeInclusive;

use axum::http::{HeaderMap, header};

/// What to send for a `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No `Range`, a malformed one, another unit or several ranges: the whole file (200).
    /// Several ranges would need `multipart/byteranges`; RFC 9110 lets a server ignore them.
    Full,
    /// One satisfiable range: these bytes (206).
    Part(RangeInclusive<u64>),
    /// One range that starts past the end, or any range of an empty file (416).
    Unsatisfiable,
}

/// Reads the request's `Range` against a file of `len` bytes.
pub fn answer(headers: &HeaderMap, len: u64) -> RangeAnswer {
    let mut values = headers.get_all(header::RANGE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().map_or(RangeAnswer::Full, |v| parse(v, len)),
        _ => RangeAnswer::Full,
    }
}

/// One `Range` value against `len` bytes.
pub fn parse(value: &str, len: u64) -> RangeAnswer {
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeAnswer::Full,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part(len - n.min(len)..=len - 1),
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return RangeAnswer::Full;
            };
            let end = if last.is_empty() {
                None
            } else {
                match number(last) {
                    Some(end) if end >= start => Some(end),
                    _ => return RangeAnswer::Full,
                }
            };
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Part(start..=end.map_or(len - 1, |e| e.min(len - 1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    fn gives(value: &str, want: &RangeAnswer) {
        assert_eq!(&parse(value, 100), want, "{value}");
    }

    cases! { gives {
        a_closed_range_is_those_bytes: "bytes=0-9", &RangeAnswer::Part(0..=9);
        an_open_range_runs_to_the_end: "bytes=90-", &RangeAnswer::Part(90..=99);
        a_range_past_the_end_is_cut_at_the_end: "bytes=95-500", &RangeAnswer::Part(95..=99);
        a_suffix_is_the_last_bytes: "bytes=-10", &RangeAnswer::Part(90..=99);
        a_suffix_longer_than_the_file_is_the_whole_file: "bytes=-500", &RangeAnswer::Part(0..=99);
        the_unit_is_case_insensitive: "Bytes=0-0", &RangeAnswer::Part(0..=0);
        a_range_starting_at_the_length_is_unsatisfiable: "bytes=100-", &RangeAnswer::Unsatisfiable;
        a_zero_suffix_is_unsatisfiable: "bytes=-0", &RangeAnswer::Unsatisfiable;
        several_ranges_get_the_whole_file: "bytes=0-1,5-6", &RangeAnswer::Full;
        a_reversed_range_is_ignored: "bytes=9-1", &RangeAnswer::Full;
        another_unit_is_ignored: "items=0-1", &RangeAnswer::Full;
        a_signed_number_is_ignored: "bytes=+1-2", &RangeAnswer::Full;
        a_range_without_a_dash_is_ignored: "bytes=5", &RangeAnswer::Full;
    }}

    #[test]
    fn every_range_of_an_empty_file_is_unsatisfiable() {
        assert_eq!(parse("bytes=0-", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(parse("bytes=-1", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn two_range_headers_get_the_whole_file() {
        let mut h = HeaderMap::new();
        h.append(header::RANGE, "bytes=0-1".parse().unwrap());
        h.append(header::RANGE, "bytes=2-3".parse().unwrap());
        assert_eq!(answer(&h, 100), RangeAnswer::Full);
    }
}
