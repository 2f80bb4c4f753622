//! Free text a citizen wrote about a problem.

/// Plain text, trimmed, at most [`Description::MAX_CHARS`] characters; no markup, no control
/// characters other than line breaks and tabs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Description(String);

/// Why a text is not a description.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error("is {chars} characters long; at most {max} are accepted", max = Description::MAX_CHARS)]
    TooLong { chars: usize },
    #[error("must be plain text; HTML or other markup is not accepted")]
    Markup,
    #[error("contains control characters")]
    ControlCharacters,
}

impl Description {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(s: &str) -> Result<Self, DescriptionError> {
        let s = s.trim();
        let chars = s.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(DescriptionError::TooLong { chars });
        }
        if looks_like_markup(s) {
            return Err(DescriptionError::Markup);
        }
        if s.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(DescriptionError::ControlCharacters);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `<` followed by a letter, `/`, `!` or `?` opens a tag; "size < 1 m" stays fine.
fn looks_like_markup(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    #[test]
    fn four_thousand_characters_are_accepted() {
        // Characters, not bytes: 4,000 two-byte letters pass.
        assert!(Description::parse(&"é".repeat(4000)).is_ok());
    }

    #[test]
    fn four_thousand_and_one_characters_are_refused() {
        assert_eq!(
            Description::parse(&"x".repeat(4001)),
            Err(DescriptionError::TooLong { chars: 4001 })
        );
    }

    #[test]
    fn a_comparison_is_not_markup() {
        assert!(Description::parse("hole < 1 m wide").is_ok());
    }

    fn is_refused_as_markup(text: &str) {
        assert_eq!(Description::parse(text), Err(DescriptionError::Markup));
    }

    cases! { is_refused_as_markup {
        a_script_tag_is_refused_as_markup: "<script>alert(1)</script>";
        a_comment_opening_is_refused_as_markup: "a <!-- b";
    }}

    #[test]
    fn control_characters_are_refused_but_line_breaks_are_not() {
        assert_eq!(
            Description::parse("bell\u{7}"),
            Err(DescriptionError::ControlCharacters)
        );
        assert!(Description::parse("line one\nline two\ttab").is_ok());
    }

    #[test]
    fn surrounding_space_is_trimmed() {
        assert_eq!(
            Description::parse("  dark lamp \n").unwrap().as_str(),
            "dark lamp"
        );
    }
}
