//! Short optional free text (an address, a note): trimmed, empty means absent, bounded.

use crate::error::FieldError;

/// `v` trimmed, `None` when absent or blank; a value longer than `max` characters or holding
/// control characters is refused, and `field` is named in `errors`.
pub fn optional_text(
    v: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
    if v.chars().count() > max || v.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} printable characters"),
        ));
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &str, max: usize) -> (Option<String>, usize) {
        let mut errors = Vec::new();
        let out = optional_text(Some(v.to_owned()), "note", max, &mut errors);
        (out, errors.len())
    }

    #[test]
    fn text_at_the_bound_is_kept_trimmed() {
        assert_eq!(run(" abc ", 3), (Some("abc".into()), 0));
    }

    #[test]
    fn text_past_the_bound_is_refused() {
        assert_eq!(run("abcd", 3), (None, 1));
    }

    #[test]
    fn blank_text_is_absent_without_error() {
        assert_eq!(run("   ", 3), (None, 0));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(run("a\u{1b}b", 10), (None, 1));
    }
}
