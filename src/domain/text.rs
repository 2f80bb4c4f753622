//! The one rule for free text people write (a description, an address, a note, an attribute
//! value): plain text, kept as written and escaped wherever it is shown, so `sign says <SLOW>`
//! is text, never refused and never markup.

use unicode_normalization::UnicodeNormalization;

use crate::error::FieldError;

/// Whether a field holds one line (an address, a name) or many (a description, a note).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// Any line break or tab is refused.
    One,
    /// `\n` and `\t` are kept; `\r\n`, a lone `\r` and U+2028/U+2029 become `\n`.
    Many,
}

/// Why a text is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is {chars} characters long; at most {max} are accepted")]
    TooLong { chars: usize, max: usize },
    #[error("must be a single line")]
    LineBreak,
    #[error("contains the control character U+{code:04X}")]
    ControlCharacter { code: u32 },
}

/// `s` as plain text: trimmed, in Unicode NFC (so the same words compare and deduplicate the
/// same whichever keyboard typed them), line breaks made `\n`, at most `max` characters
/// (counted after normalising). Control characters are refused: they are invisible, and
/// some (NUL) cannot be stored at all. Markup-looking text is accepted as it is; every
/// output escapes it.
pub fn plain_text(s: &str, max: usize, lines: Lines) -> Result<String, TextError> {
    let s = s.trim();
    let mut out = String::with_capacity(s.len());
    let mut chars = s.nfc().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\r' | '\n' | '\u{2028}' | '\u{2029}' | '\t' if lines == Lines::One => {
                return Err(TextError::LineBreak);
            }
            '\r' | '\u{2028}' | '\u{2029}' => '\n',
            '\n' | '\t' => c,
            c if c.is_control() => {
                return Err(TextError::ControlCharacter { code: u32::from(c) });
            }
            c => c,
        };
        out.push(c);
    }
    let chars = out.chars().count();
    if chars > max {
        return Err(TextError::TooLong { chars, max });
    }
    Ok(out)
}

/// `v` under [`plain_text`] on one line, `None` when absent or blank; a refusal names
/// `field` in `errors`.
pub fn optional_text(
    v: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    optional(v, field, max, Lines::One, errors)
}

/// As [`optional_text`], for text that may run over several lines (a note).
pub fn optional_multiline_text(
    v: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    optional(v, field, max, Lines::Many, errors)
}

fn optional(
    v: Option<String>,
    field: &str,
    max: usize,
    lines: Lines,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match plain_text(&v?, max, lines) {
        Ok(s) if s.is_empty() => None,
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(FieldError::new(field, e.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    fn run(v: &str, max: usize) -> (Option<String>, Vec<String>) {
        let mut errors = Vec::new();
        let out = optional_text(Some(v.to_owned()), "note", max, &mut errors);
        (out, errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn text_at_the_bound_is_kept_trimmed() {
        assert_eq!(run(" abc ", 3), (Some("abc".into()), vec![]));
    }

    #[test]
    fn text_past_the_bound_is_refused_naming_the_field() {
        assert_eq!(run("abcd", 3), (None, vec!["note".into()]));
    }

    #[test]
    fn the_bound_counts_characters_not_bytes() {
        assert_eq!(
            plain_text(&"é".repeat(3), 3, Lines::One).as_deref(),
            Ok("ééé")
        );
    }

    #[test]
    fn blank_text_is_absent_without_error() {
        assert_eq!(run("   ", 3), (None, vec![]));
    }

    fn is_kept_as_written(text: &str) {
        assert_eq!(plain_text(text, 100, Lines::One).as_deref(), Ok(text));
        assert_eq!(plain_text(text, 100, Lines::Many).as_deref(), Ok(text));
    }

    cases! { is_kept_as_written {
        markup_looking_text_is_text: "sign says <SLOW>";
        a_script_tag_is_text: "<script>alert(1)</script>";
        a_comment_opening_is_text: "a <!-- b";
        an_ampersand_and_quotes_are_text: r#"Smith & "Sons" 'Ltd'"#;
        a_comparison_is_text: "hole < 1 m wide";
        right_to_left_text_is_text: "حفرة في الطريق";
    }}

    fn is_refused_as(text: &str, lines: Lines, error: TextError) {
        assert_eq!(plain_text(text, 100, lines), Err(error));
    }

    cases! { is_refused_as {
        a_bell_is_refused: "bell\u{7}", Lines::Many, TextError::ControlCharacter { code: 7 };
        a_nul_is_refused: "a\0b", Lines::Many, TextError::ControlCharacter { code: 0 };
        an_escape_is_refused: "a\u{1b}[31mb", Lines::One, TextError::ControlCharacter { code: 0x1b };
        a_c1_control_is_refused: "a\u{85}b", Lines::Many, TextError::ControlCharacter { code: 0x85 };
        a_line_break_in_one_line_is_refused: "1 Main St\nLA", Lines::One, TextError::LineBreak;
        a_tab_in_one_line_is_refused: "1 Main St\tLA", Lines::One, TextError::LineBreak;
        a_line_separator_in_one_line_is_refused: "a\u{2028}b", Lines::One, TextError::LineBreak;
    }}

    #[test]
    fn line_breaks_and_tabs_are_kept_in_many_lines_as_newlines() {
        assert_eq!(
            plain_text("one\r\ntwo\rthree\u{2028}four\tfive", 100, Lines::Many).as_deref(),
            Ok("one\ntwo\nthree\nfour\tfive")
        );
    }

    #[test]
    fn text_is_stored_in_nfc() {
        // "e" + combining acute becomes the one character "é", and counts as one.
        assert_eq!(
            plain_text("cafe\u{301}", 4, Lines::One).as_deref(),
            Ok("café")
        );
    }
}
