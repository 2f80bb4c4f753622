//! An e-mail address as the citizen record keys it: trimmed and lower-cased.

/// A plausible e-mail address (`local@domain.tld`), at most 254 characters, trimmed and
/// lower-cased so the same person is recognised however they typed it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why a text is not an e-mail address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("must be at most {max} printable characters", max = Email::MAX_CHARS)]
    TooLong,
    #[error("must be at most {max} printable characters", max = Email::MAX_CHARS)]
    Unprintable,
    #[error("is not an e-mail address")]
    NotAnAddress,
}

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(s: &str) -> Result<Self, InvalidEmail> {
        let s = s.trim();
        if s.chars().count() > Self::MAX_CHARS {
            return Err(InvalidEmail::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidEmail::Unprintable);
        }
        let valid = s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        });
        if !valid {
            return Err(InvalidEmail::NotAnAddress);
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse(" Bo@Example.ORG ").unwrap().as_str(),
            "bo@example.org"
        );
    }

    #[test]
    fn two_hundred_fifty_four_characters_are_accepted() {
        let s = format!("{}@example.org", "a".repeat(254 - 12));
        assert_eq!(s.chars().count(), 254);
        assert!(Email::parse(&s).is_ok());
    }

    #[test]
    fn two_hundred_fifty_five_characters_are_refused() {
        let s = format!("{}@example.org", "a".repeat(255 - 12));
        assert_eq!(Email::parse(&s), Err(InvalidEmail::TooLong));
    }

    fn is_not_an_address(text: &str) {
        assert_eq!(
            Email::parse(text),
            Err(InvalidEmail::NotAnAddress),
            "{text:?}"
        );
    }

    cases! { is_not_an_address {
        text_without_an_at_is_refused: "someone";
        an_address_without_a_local_part_is_refused: "@example.org";
        a_domain_without_a_dot_is_refused: "a@localhost";
        a_domain_starting_with_a_dot_is_refused: "a@.org";
        a_space_in_the_local_part_is_refused: "a b@example.org";
        two_ats_are_refused: "a@b@c.org";
    }}

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            Email::parse("a\u{0}@example.org"),
            Err(InvalidEmail::Unprintable)
        );
    }
}
