//! How a report or a contact reached the city.

use serde::{Deserialize, Serialize};

/// How a report reached the city.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    pub const ALL: [Channel; 8] = [
        Self::Web,
        Self::App,
        Self::Phone,
        Self::Email,
        Self::Social,
        Self::Field,
        Self::Open311,
        Self::Import,
    ];

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
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_round_trips_through_its_name() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn an_unknown_channel_is_refused() {
        assert_eq!(Channel::parse("fax"), None);
    }

    #[test]
    fn channel_names_are_case_sensitive() {
        assert_eq!(Channel::parse("Web"), None);
    }
}
