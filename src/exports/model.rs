//! What an export or an OGC page holds: the incident filter both share, who sees which
//! fields, and the one mapping of an incident to a GeoJSON feature and to a CSV row.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;
use uuid::Uuid;

use crate::auth::{Caller, Role};
use crate::catalogue::Catalogue;
use crate::domain::{Bound, InvalidTime, ServiceCode, Status, is_plain_date, parse_time_bound};
use crate::error::{AppError, FieldError};
use crate::geo::{BBox, round7};

/// Which fields a caller may see. Personal data (the `reporters` table) is in neither: the
/// export queries never read that table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fields {
    /// What anyone may read (the same fields as the public report view).
    Public,
    /// Public fields plus the city's operational ones: agency, due date, imported id, hidden.
    Operational,
}

impl Fields {
    /// Analysts and admins get the operational fields; everyone else the public ones.
    pub fn for_caller(caller: &Caller) -> Self {
        if caller.role().is_some_and(Role::is_analyst) {
            Self::Operational
        } else {
            Self::Public
        }
    }
}

/// A time filter on `requested_at`: one instant, or an interval with open ends allowed
/// (OGC API `datetime`: `t`, `a/b`, `../b`, `a/..`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFilter {
    Instant(DateTime<Utc>),
    Interval {
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
}

/// Why a `datetime` value is not a time filter; carries the text at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTimeFilter {
    #[error(transparent)]
    Time(#[from] InvalidTime),
    #[error("{0:?}: give a date-time or an interval start/end")]
    Empty(String),
    #[error("{0:?}: the interval ends before it starts")]
    Reversed(String),
}

impl TimeFilter {
    /// Parses the OGC `datetime` parameter: RFC 3339 date-times with an offset, or plain
    /// dates (the rule of [`parse_time_bound`]: one date alone is that whole day).
    pub fn parse(s: &str) -> Result<Self, InvalidTimeFilter> {
        let one = |p: &str, bound: Bound| -> Result<Option<DateTime<Utc>>, InvalidTimeFilter> {
            let p = p.trim();
            if p.is_empty() || p == ".." {
                return Ok(None);
            }
            Ok(Some(parse_time_bound(p, bound)?))
        };
        match s.split_once('/') {
            None if is_plain_date(s) => Ok(Self::Interval {
                start: one(s, Bound::Start)?,
                end: one(s, Bound::End)?,
            }),
            None => one(s, Bound::Start)?
                .map(Self::Instant)
                .ok_or_else(|| InvalidTimeFilter::Empty(s.to_owned())),
            Some((a, b)) => {
                let (start, end) = (one(a, Bound::Start)?, one(b, Bound::End)?);
                if let (Some(a), Some(b)) = (start, end) {
                    if a > b {
                        return Err(InvalidTimeFilter::Reversed(s.to_owned()));
                    }
                }
                Ok(Self::Interval { start, end })
            }
        }
    }
}

/// The filters shared by the file exports and the OGC `incidents` items (combined with AND).
#[derive(Clone, Debug, Default)]
pub struct IncidentFilter {
    pub bbox: Option<BBox>,
    pub time: Option<TimeFilter>,
    pub service_codes: Vec<String>,
    pub statuses: Vec<Status>,
    /// Hidden (moderated) reports are left out unless the caller may see operational fields.
    pub include_hidden: bool,
    /// A status value no report can hold was asked for by equality (OGC queryables): nothing
    /// matches.
    pub match_nothing: bool,
}

/// The raw filter parameters as they arrive in a query string.
#[derive(Clone, Debug, Default)]
pub struct FilterParams {
    pub bbox: Option<String>,
    pub datetime: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub service_code: Option<String>,
    pub status: Option<String>,
}

impl FilterParams {
    /// Parses every parameter, naming each one at fault in a single 400.
    pub fn parse(self, fields: Fields) -> Result<IncidentFilter, AppError> {
        let mut errors = Vec::new();
        let bbox = self.bbox.as_deref().and_then(|b| {
            BBox::parse(b)
                .map_err(|m| errors.push(FieldError::new("bbox", m.to_string())))
                .ok()
        });
        let mut time = self.datetime.as_deref().and_then(|d| {
            TimeFilter::parse(d)
                .map_err(|m| errors.push(FieldError::new("datetime", m.to_string())))
                .ok()
        });
        if self.start.is_some() || self.end.is_some() {
            if time.is_some() {
                errors.push(FieldError::new(
                    "datetime",
                    "give either datetime or start/end, not both",
                ));
            }
            let mut bound = |name: &str, v: Option<&str>, which: Bound| {
                v.and_then(|v| {
                    parse_time_bound(v, which)
                        .map_err(|e| errors.push(FieldError::new(name, e.to_string())))
                        .ok()
                })
            };
            let start = bound("start", self.start.as_deref(), Bound::Start);
            let end = bound("end", self.end.as_deref(), Bound::End);
            time = Some(TimeFilter::Interval { start, end });
        }
        let mut service_codes = Vec::new();
        for code in split_list(self.service_code.as_deref()) {
            match ServiceCode::parse(code) {
                Ok(c) => service_codes.push(c.as_str().to_owned()),
                Err(m) => errors.push(FieldError::new("service_code", m.to_string())),
            }
        }
        let statuses = self
            .status
            .as_deref()
            .map(|s| {
                Status::parse_filter(s)
                    .map_err(|m| errors.push(FieldError::new("status", m.to_string())))
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(AppError::bad_fields(errors));
        }
        Ok(IncidentFilter {
            bbox,
            time,
            service_codes,
            statuses,
            include_hidden: fields == Fields::Operational,
            match_nothing: false,
        })
    }
}

fn split_list(s: Option<&str>) -> impl Iterator<Item = &str> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// One incident as exports read it from `PostGIS`. Holds no personal data: the query never
/// touches `reporters`.
#[derive(Clone, Debug)]
pub struct IncidentRow {
    pub id: Uuid,
    pub reference: String,
    pub service_code: String,
    pub status: String,
    pub status_notes: Option<String>,
    pub description: String,
    pub address: Option<String>,
    pub zipcode: Option<String>,
    pub channel: String,
    pub lon: f64,
    pub lat: f64,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub supporters: i32,
    pub duplicate_of: Option<Uuid>,
    // Operational fields: shown to analysts and admins only.
    pub agency: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
    pub hidden: bool,
}

/// A row whose location maps to no position (already logged and counted): the stores skip it
/// (`exports::store::skip_unmappable`) instead of failing the export or the page.
#[derive(Debug, thiserror::Error)]
#[error("the row's location is not a valid point")]
pub struct Unmappable;

/// Whether `e` is [`Unmappable`]: a row to skip, not a failure.
pub fn is_unmappable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Decode(inner) if inner.is::<Unmappable>())
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for IncidentRow {
    /// By position, in the order of `exports::store::COLUMNS`: a million-row export would
    /// otherwise look every column up by name in every row.
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let id = row.try_get(0)?;
        let Some(position) =
            crate::ops::metrics::stored_position("exports", id, row.try_get(9)?, row.try_get(10)?)
        else {
            return Err(sqlx::Error::Decode(Box::new(Unmappable)));
        };
        Ok(Self {
            id,
            reference: row.try_get(1)?,
            service_code: row.try_get(2)?,
            status: row.try_get(3)?,
            status_notes: row.try_get(4)?,
            description: row.try_get(5)?,
            address: row.try_get(6)?,
            zipcode: row.try_get(7)?,
            channel: row.try_get(8)?,
            lon: position.lon(),
            lat: position.lat(),
            requested_at: row.try_get(11)?,
            updated_at: row.try_get(12)?,
            closed_at: row.try_get(13)?,
            supporters: row.try_get(14)?,
            duplicate_of: row.try_get(15)?,
            agency: row.try_get(16)?,
            due_at: row.try_get(17)?,
            external_id: row.try_get(18)?,
            hidden: row.try_get(19)?,
        })
    }
}

/// An incident with what it needs to render itself: the catalogue (service name and group)
/// and the caller's field set. The one incident → GeoJSON feature mapping.
pub struct IncidentFeature<'a> {
    pub row: &'a IncidentRow,
    pub catalogue: &'a Catalogue,
    pub fields: Fields,
}

/// A GeoJSON point, longitude first, 7 decimals at most (RFC 7946 §3.1.1, §11.2).
#[derive(Serialize)]
struct Point {
    #[serde(rename = "type")]
    kind: &'static str,
    coordinates: [f64; 2],
}

impl IncidentFeature<'_> {
    fn service(&self) -> (&str, &str) {
        self.catalogue
            .get(&self.row.service_code)
            .map_or((self.row.service_code.as_str(), "Other"), |s| {
                (s.service_name.as_str(), s.group.as_str())
            })
    }

    fn open311_status(&self) -> &'static str {
        Status::parse(&self.row.status).map_or("open", Status::open311)
    }
}

impl Serialize for IncidentFeature<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("type", "Feature")?;
        m.serialize_entry("id", &self.row.id)?;
        m.serialize_entry(
            "geometry",
            &Point {
                kind: "Point",
                coordinates: [round7(self.row.lon), round7(self.row.lat)],
            },
        )?;
        m.serialize_entry("properties", &Properties(self))?;
        m.end()
    }
}

struct Properties<'a, 'b>(&'b IncidentFeature<'a>);

impl Serialize for Properties<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let r = f.row;
        let (service_name, group) = f.service();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &r.id)?;
        m.serialize_entry("reference", &r.reference)?;
        m.serialize_entry("service_code", &r.service_code)?;
        m.serialize_entry("service_name", service_name)?;
        m.serialize_entry("group", group)?;
        m.serialize_entry("status", &r.status)?;
        m.serialize_entry("open311_status", f.open311_status())?;
        m.serialize_entry("status_notes", &r.status_notes)?;
        m.serialize_entry("description", &r.description)?;
        m.serialize_entry("address", &r.address)?;
        m.serialize_entry("zipcode", &r.zipcode)?;
        m.serialize_entry("channel", &r.channel)?;
        m.serialize_entry("requested_at", &r.requested_at)?;
        m.serialize_entry("updated_at", &r.updated_at)?;
        m.serialize_entry("closed_at", &r.closed_at)?;
        m.serialize_entry("supporters", &r.supporters)?;
        m.serialize_entry("duplicate_of", &r.duplicate_of)?;
        if f.fields == Fields::Operational {
            m.serialize_entry("agency", &r.agency)?;
            m.serialize_entry("due_at", &r.due_at)?;
            m.serialize_entry("external_id", &r.external_id)?;
            m.serialize_entry("hidden", &r.hidden)?;
        }
        m.end()
    }
}

/// The CSV header for a field set: the same names as the GeoJSON properties, then the
/// geometry as `lon`, `lat` and `wkt`.
pub fn csv_header(fields: Fields) -> Vec<&'static str> {
    let mut h = vec![
        "id",
        "reference",
        "service_code",
        "service_name",
        "group",
        "status",
        "open311_status",
        "status_notes",
        "description",
        "address",
        "zipcode",
        "channel",
        "requested_at",
        "updated_at",
        "closed_at",
        "supporters",
        "duplicate_of",
    ];
    if fields == Fields::Operational {
        h.extend(["agency", "due_at", "external_id", "hidden"]);
    }
    h.extend(["lon", "lat", "wkt"]);
    h
}

impl IncidentFeature<'_> {
    /// The CSV cells, in [`csv_header`] order. Text cells are neutralised against formula
    /// injection; numbers and the geometry are left as they are.
    pub fn csv_record(&self) -> Vec<Cow<'_, str>> {
        let r = self.row;
        let (service_name, group) = self.service();
        let text = neutralise_formula;
        let time = |t: &DateTime<Utc>| Cow::Owned(t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        let opt_time = |t: &Option<DateTime<Utc>>| t.as_ref().map_or(Cow::Borrowed(""), time);
        let (lon, lat) = (round7(r.lon), round7(r.lat));
        let mut cells = vec![
            Cow::Owned(r.id.to_string()),
            text(&r.reference),
            text(&r.service_code),
            text(service_name),
            text(group),
            text(&r.status),
            Cow::Borrowed(self.open311_status()),
            opt(r.status_notes.as_deref()),
            text(&r.description),
            opt(r.address.as_deref()),
            opt(r.zipcode.as_deref()),
            text(&r.channel),
            time(&r.requested_at),
            time(&r.updated_at),
            opt_time(&r.closed_at),
            Cow::Owned(r.supporters.to_string()),
            r.duplicate_of
                .map_or(Cow::Borrowed(""), |d| Cow::Owned(d.to_string())),
        ];
        if self.fields == Fields::Operational {
            cells.extend([
                opt(r.agency.as_deref()),
                opt_time(&r.due_at),
                opt(r.external_id.as_deref()),
                Cow::Borrowed(if r.hidden { "true" } else { "false" }),
            ]);
        }
        cells.extend([
            Cow::Owned(lon.to_string()),
            Cow::Owned(lat.to_string()),
            Cow::Owned(format!("POINT ({lon} {lat})")),
        ]);
        cells
    }
}

fn opt(s: Option<&str>) -> Cow<'_, str> {
    s.map_or(Cow::Borrowed(""), neutralise_formula)
}

/// A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage
/// return before one) as a formula: prefixing `'` makes it plain text (OWASP CSV injection).
pub fn neutralise_formula(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    fn row() -> IncidentRow {
        IncidentRow {
            id: Uuid::nil(),
            reference: "CP-0000-0000".into(),
            service_code: "pothole".into(),
            status: "new".into(),
            status_notes: None,
            description: "=HYPERLINK(\"http://evil\")".into(),
            address: Some("@SUM(A1)".into()),
            zipcode: None,
            channel: "web".into(),
            lon: -118.123_456_789_9,
            lat: 34.000_000_04,
            requested_at: DateTime::parse_from_rfc3339("2024-05-01T10:00:00-07:00")
                .unwrap()
                .with_timezone(&Utc),
            updated_at: Utc::now(),
            closed_at: None,
            supporters: 0,
            duplicate_of: None,
            agency: Some("Streets".into()),
            due_at: None,
            external_id: Some("1-23".into()),
            hidden: false,
        }
    }

    #[test]
    fn a_feature_is_lon_lat_with_seven_decimals_and_public_fields_only() {
        let catalogue = Catalogue::load(None).unwrap();
        let r = row();
        let f = IncidentFeature {
            row: &r,
            catalogue: &catalogue,
            fields: Fields::Public,
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["geometry"]["coordinates"][0], -118.123_456_8);
        assert_eq!(v["geometry"]["coordinates"][1], 34.0);
        assert_eq!(v["properties"]["requested_at"], "2024-05-01T17:00:00Z");
        assert!(v["properties"].get("agency").is_none());
        assert!(v.get("crs").is_none());
        let op = IncidentFeature {
            fields: Fields::Operational,
            ..f
        };
        let v = serde_json::to_value(&op).unwrap();
        assert_eq!(v["properties"]["agency"], "Streets");
    }

    #[test]
    fn csv_cells_that_could_run_as_formulas_are_neutralised() {
        let catalogue = Catalogue::load(None).unwrap();
        let r = row();
        let f = IncidentFeature {
            row: &r,
            catalogue: &catalogue,
            fields: Fields::Public,
        };
        let cells = f.csv_record();
        let header = csv_header(Fields::Public);
        assert_eq!(cells.len(), header.len());
        let cell = |name: &str| &cells[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(cell("description"), "'=HYPERLINK(\"http://evil\")");
        assert_eq!(cell("address"), "'@SUM(A1)");
        // Numbers keep their sign: they are numbers, not text.
        assert_eq!(cell("lon"), "-118.1234568");
        assert_eq!(cell("wkt"), "POINT (-118.1234568 34)");
        assert_eq!(neutralise_formula("pothole"), "pothole");
    }

    fn is_neutralised(cell: &str) {
        assert!(neutralise_formula(cell).starts_with('\''), "{cell:?}");
    }

    cases! { is_neutralised {
        a_cell_starting_with_plus_is_neutralised: "+1";
        a_cell_starting_with_minus_is_neutralised: "-1";
        a_cell_starting_with_a_tab_is_neutralised: "\tx";
        a_cell_starting_with_a_carriage_return_is_neutralised: "\r=1";
    }}

    #[test]
    fn datetime_accepts_instants_and_open_intervals() {
        let t = TimeFilter::parse("2024-05-01T00:00:00Z").unwrap();
        assert!(matches!(t, TimeFilter::Instant(_)));
        let open_start = TimeFilter::parse("../2024-05-01T00:00:00+02:00").unwrap();
        assert!(matches!(
            open_start,
            TimeFilter::Interval {
                start: None,
                end: Some(_)
            }
        ));
        let open_end = TimeFilter::parse("2024-05-01T00:00:00Z/..").unwrap();
        assert!(matches!(
            open_end,
            TimeFilter::Interval {
                start: Some(_),
                end: None
            }
        ));
    }

    fn the_datetime_is_refused(text: &str) {
        assert!(TimeFilter::parse(text).is_err(), "{text}");
    }

    cases! { the_datetime_is_refused {
        an_interval_ending_before_it_starts_is_refused: "2024-05-02T00:00:00Z/2024-05-01T00:00:00Z";
        a_datetime_that_is_not_a_date_is_refused: "yesterday";
        a_datetime_without_a_time_zone_is_refused: "2024-05-01T00:00:00";
    }}

    #[test]
    fn filter_errors_name_each_parameter() {
        let err = FilterParams {
            bbox: Some("1,2,3".into()),
            status: Some("bogus".into()),
            service_code: Some("Pot Hole".into()),
            ..FilterParams::default()
        }
        .parse(Fields::Public)
        .unwrap_err();
        let fields: Vec<&str> = err
            .field_errors()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["bbox", "service_code", "status"]);
    }
}
