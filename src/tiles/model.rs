//! The tile filter: `service_code`, `status`, `start`, `end`, parsed once at the edge and
//! applied to every layer (counts included). Its canonical query string keys the cache.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::{Bound, ServiceCode, Source, Status, parse_time_bound};
use crate::error::{AppError, FieldError};
use crate::spatial_index::Incident;

/// The query string of `/tiles/...` and `/tiles.json`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    service_code: Option<String>,
    status: Option<String>,
    start: Option<String>,
    end: Option<String>,
    /// `index` (default) or `postgis`: who answers a tile (see [`Source`]).
    source: Option<String>,
}

/// Which incidents a tile shows.
///
/// Without `status`, every status except `duplicate` is shown: a duplicate is merged into its
/// parent (which counts it as a supporter), so drawing it too would count one problem twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileFilter {
    service_codes: Vec<String>,
    statuses: Vec<Status>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl Default for TileFilter {
    fn default() -> Self {
        Self {
            service_codes: Vec::new(),
            statuses: default_statuses(),
            start: None,
            end: None,
        }
    }
}

fn default_statuses() -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Duplicate)
        .collect()
}

impl FilterParams {
    /// The filter and who is to answer (`source`: the live index through the tile cache, or
    /// `PostGIS` `ST_AsMVT` on the reports table, uncached, `incidents` layer only, for staff).
    /// Every value at fault is named at once (400).
    pub fn parse_with_source(mut self) -> Result<(TileFilter, Source), AppError> {
        let mut errors = Vec::new();
        let source = Source::parse(self.source.take().as_deref()).unwrap_or_else(|e| {
            errors.push(FieldError::new("source", e.to_string()));
            Source::Index
        });
        let filter = self.parse_into(errors)?;
        Ok((filter, source))
    }

    /// The filter alone; `source` is refused here (it only means something for a tile).
    pub fn parse(self) -> Result<TileFilter, AppError> {
        self.parse_into(Vec::new())
    }

    fn parse_into(self, mut errors: Vec<FieldError>) -> Result<TileFilter, AppError> {
        if self.source.is_some() {
            errors.push(FieldError::new(
                "source",
                "only /tiles/{z}/{x}/{y}.mvt takes source",
            ));
        }
        let mut service_codes = Vec::new();
        for code in self
            .service_code
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            match ServiceCode::parse(code) {
                Ok(c) => service_codes.push(c.as_str().to_owned()),
                Err(m) => errors.push(FieldError::new("service_code", m.to_string())),
            }
        }
        service_codes.sort();
        service_codes.dedup();
        let statuses = match self.status.as_deref() {
            None => default_statuses(),
            Some(s) => Status::parse_filter(s).unwrap_or_else(|m| {
                errors.push(FieldError::new("status", m.to_string()));
                Vec::new()
            }),
        };
        let start = parse_time(self.start.as_deref(), "start", false, &mut errors);
        let end = parse_time(self.end.as_deref(), "end", true, &mut errors);
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                errors.push(FieldError::new("end", "is before start"));
            }
        }
        if errors.is_empty() {
            Ok(TileFilter {
                service_codes,
                statuses,
                start,
                end,
            })
        } else {
            Err(AppError::bad_fields(errors))
        }
    }
}

/// RFC 3339, or a plain date: `start=2024-01-31` means from that day's start (UTC), `end=…`
/// up to and including that whole day.
fn parse_time(
    s: Option<&str>,
    field: &str,
    end_of_day: bool,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let bound = if end_of_day { Bound::End } else { Bound::Start };
    parse_time_bound(s?, bound)
        .map_err(|e| errors.push(FieldError::new(field, e.to_string())))
        .ok()
}

impl TileFilter {
    /// Whether a tile with this filter shows `i`.
    pub fn keep(&self, i: &Incident) -> bool {
        self.statuses.contains(&i.status)
            && (self.service_codes.is_empty()
                || self.service_codes.iter().any(|c| **c == *i.service_code))
            && self.start.is_none_or(|s| i.requested_at >= s)
            && self.end.is_none_or(|e| i.requested_at <= e)
    }

    /// The status and service part of the filter, for the index's compact-record visitor;
    /// `None` when it keeps nothing (the index reads an empty status list as "any").
    pub fn index_filter(&self) -> Option<crate::spatial_index::Filter> {
        (!self.statuses.is_empty()).then(|| crate::spatial_index::Filter {
            statuses: self.statuses.clone(),
            service_codes: self.service_codes.clone(),
        })
    }

    /// The time part of the filter, on a request time in microseconds since the epoch.
    pub fn keep_time(&self, requested_us: i64) -> bool {
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        let t = DateTime::from_timestamp_micros(requested_us).unwrap_or_default();
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }

    /// The statuses shown (never empty after parsing unless the filter keeps nothing).
    pub fn statuses(&self) -> &[Status] {
        &self.statuses
    }

    /// The service codes shown; empty means every service.
    pub fn service_codes(&self) -> &[String] {
        &self.service_codes
    }

    /// The request-time window, each end inclusive.
    pub fn time_window(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (self.start, self.end)
    }

    /// The status part of the filter.
    pub fn shows_status(&self, s: Status) -> bool {
        self.statuses.contains(&s)
    }

    /// Whether this is the default filter (every status but `duplicate`, any service, any time).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The canonical query string (empty for the default filter): equal filters give equal
    /// strings, so it keys the cache and is passed through to the TileJSON `tiles` URL.
    pub fn query_string(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !self.service_codes.is_empty() {
            q.append_pair("service_code", &self.service_codes.join(","));
        }
        if self.statuses != default_statuses() {
            let names: Vec<&str> = self.statuses.iter().map(|s| s.as_str()).collect();
            q.append_pair("status", &names.join(","));
        }
        let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        if let Some(s) = self.start {
            q.append_pair("start", &rfc(s));
        }
        if let Some(e) = self.end {
            q.append_pair("end", &rfc(e));
        }
        q.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(
        sc: Option<&str>,
        st: Option<&str>,
        a: Option<&str>,
        b: Option<&str>,
    ) -> FilterParams {
        FilterParams {
            service_code: sc.map(str::to_owned),
            status: st.map(str::to_owned),
            start: a.map(str::to_owned),
            end: b.map(str::to_owned),
            source: None,
        }
    }

    #[test]
    fn equal_filters_have_one_canonical_query_string() {
        let a = params(Some("pothole,graffiti-removal"), Some("open"), None, None)
            .parse()
            .unwrap();
        let b = params(
            Some("graffiti-removal, pothole,pothole"),
            Some("in_progress,new,scheduled,acknowledged"),
            None,
            None,
        )
        .parse()
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.query_string(), b.query_string());
        assert_eq!(
            a.query_string(),
            "service_code=graffiti-removal%2Cpothole&status=new%2Cacknowledged%2Cscheduled%2Cin_progress"
        );
        assert_eq!(FilterParams::default().parse().unwrap().query_string(), "");
    }

    #[test]
    fn a_date_end_covers_the_whole_day_and_bad_values_name_their_field() {
        let f = params(None, None, Some("2024-01-01"), Some("2024-01-31"))
            .parse()
            .unwrap();
        assert_eq!(
            f.query_string(),
            "start=2024-01-01T00%3A00%3A00Z&end=2024-01-31T23%3A59%3A59.999999999Z"
        );
        let err = params(Some("Pot Hole"), Some("opened"), Some("yesterday"), None)
            .parse()
            .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        let fields: Vec<&str> = err
            .field_errors()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["service_code", "status", "start"]);
        assert!(
            params(None, None, Some("2024-02-01"), Some("2024-01-01"))
                .parse()
                .is_err()
        );
    }
}
