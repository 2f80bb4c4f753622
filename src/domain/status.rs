//! A report's detailed status, and the status filters every query path shares.

use serde::{Deserialize, Serialize};

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

/// A status name that is not one of [`Status::ALL`] (nor, for filters, a group).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status {0:?}; use open, closed, all or one of new, acknowledged, scheduled, in_progress, fixed, duplicate, not_actionable, referred, cancelled"
)]
pub struct UnknownStatus(pub String);

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

    /// Parses a status filter: detailed names, or Open311's `open` / `closed` groups, or `all`;
    /// comma-separated, sorted and without repeats.
    pub fn parse_filter(s: &str) -> Result<Vec<Status>, UnknownStatus> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "open" => out.extend(Self::ALL.into_iter().filter(|s| s.is_open())),
                "closed" => out.extend(Self::ALL.into_iter().filter(|s| !s.is_open())),
                "all" => out.extend(Self::ALL),
                other => out.push(Self::parse(other).ok_or_else(|| UnknownStatus(other.into()))?),
            }
        }
        out.sort_by_key(|s| *s as u8);
        out.dedup();
        Ok(out)
    }
}

impl TryFrom<String> for Status {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<Self, UnknownStatus> {
        Self::parse(&s).ok_or(UnknownStatus(s))
    }
}

/// Stored as its name in a `text` column: a row decodes straight into a `Status` (checked
/// queries say `status AS "status: Status"`), and an unknown name is a decode error.
impl sqlx::Type<sqlx::Postgres> for Status {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Status {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let name = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::parse(name).ok_or_else(|| UnknownStatus(name.to_owned()))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(Status::try_from(s.as_str().to_owned()), Ok(s));
        }
    }

    #[test]
    fn open_statuses_are_open_in_open311_too() {
        assert_eq!(Status::ALL.iter().filter(|s| s.is_open()).count(), 4);
        assert_eq!(Status::InProgress.open311(), "open");
        assert_eq!(Status::Fixed.open311(), "closed");
    }

    #[test]
    fn filter_expands_open311_groups_and_drops_repeats() {
        let open = Status::parse_filter("open").unwrap();
        assert_eq!(open.len(), 4);
        assert!(open.iter().all(|s| s.is_open()));
        assert_eq!(Status::parse_filter("fixed,closed").unwrap().len(), 5);
        assert_eq!(Status::parse_filter("all").unwrap().len(), 9);
        assert_eq!(Status::parse_filter(" new , ").unwrap(), vec![Status::New]);
    }

    #[test]
    fn filter_error_carries_the_unknown_name() {
        assert_eq!(
            Status::parse_filter("new,bogus").unwrap_err(),
            UnknownStatus("bogus".into())
        );
    }

    #[test]
    fn filter_names_are_case_sensitive() {
        assert!(Status::parse_filter("Open").is_err());
    }
}
