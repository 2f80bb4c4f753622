//! A service (category) code, as the catalogue, Open311 and every filter spell it.

/// A service code: lower-case letters, digits, `-` and `_`, at most 64 characters, starting
/// with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceCode(String);

/// A string that is not a service code; carries the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a service code (a-z, 0-9, '-', '_'; at most 64)")]
pub struct InvalidServiceCode(pub String);

impl ServiceCode {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, InvalidServiceCode> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidServiceCode(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    #[test]
    fn sixty_four_characters_are_accepted() {
        let s = "a".repeat(64);
        assert_eq!(ServiceCode::parse(&s).unwrap().as_str(), s);
    }

    #[test]
    fn sixty_five_characters_are_refused_with_the_value() {
        let s = "a".repeat(65);
        assert_eq!(ServiceCode::parse(&s), Err(InvalidServiceCode(s)));
    }

    fn is_refused(code: &str) {
        assert!(ServiceCode::parse(code).is_err(), "{code:?}");
    }

    cases! { is_refused {
        upper_case_is_refused: "Pothole";
        a_space_is_refused: "pot hole";
        a_leading_hyphen_is_refused: "-pothole";
        a_leading_underscore_is_refused: "_x";
        an_empty_code_is_refused: "";
        punctuation_is_refused: "pothole!";
    }}

    fn is_accepted(code: &str) {
        assert!(ServiceCode::parse(code).is_ok(), "{code:?}");
    }

    cases! { is_accepted {
        a_lower_case_word_is_accepted: "pothole";
        a_hyphen_inside_is_accepted: "bulky-items";
        an_underscore_inside_is_accepted: "a_b";
        digits_are_accepted: "311";
    }}
}
