//! Free text a citizen wrote about a problem.

use super::text::{Lines, TextError, plain_text};

/// Plain text under the one free-text rule ([`plain_text`]), several lines, at most
/// [`Description::MAX_CHARS`] characters. Markup-looking text is text: outputs escape it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(s: &str) -> Result<Self, TextError> {
        plain_text(s, Self::MAX_CHARS, Lines::Many).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_thousand_characters_are_accepted() {
        // Characters, not bytes: 4,000 two-byte letters pass.
        assert!(Description::parse(&"é".repeat(4000)).is_ok());
    }

    #[test]
    fn four_thousand_and_one_characters_are_refused() {
        assert_eq!(
            Description::parse(&"x".repeat(4001)),
            Err(TextError::TooLong {
                chars: 4001,
                max: 4000
            })
        );
    }

    #[test]
    fn a_comparison_is_not_markup() {
        assert!(Description::parse("hole < 1 m wide").is_ok());
    }

    #[test]
    fn a_script_tag_is_accepted_as_text() {
        assert_eq!(
            Description::parse("<script>alert(1)</script>")
                .unwrap()
                .as_str(),
            "<script>alert(1)</script>"
        );
    }

    #[test]
    fn a_comment_opening_is_accepted_as_text() {
        assert_eq!(Description::parse("a <!-- b").unwrap().as_str(), "a <!-- b");
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_are_not() {
        assert_eq!(
            Description::parse("bell\u{7}"),
            Err(TextError::ControlCharacter { code: 7 })
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
