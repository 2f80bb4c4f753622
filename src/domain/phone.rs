//! A telephone number: as the citizen wrote it, and in E.164 for matching.

/// A telephone number: digits with the usual separators (spaces, `-`, `(`, `)`, `.`) and an
/// optional leading `+` (or `00`) for the international form; 4 to 15 digits (E.164's
/// bound). Keeps the text as written (what staff read back) and its digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone {
    written: String,
    digits: String,
    international: bool,
}

/// Why a text is not a telephone number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPhone {
    #[error("must be at most {max} printable characters", max = Phone::MAX_CHARS)]
    TooLong,
    #[error("may hold only digits, spaces and + - ( ) .")]
    Characters,
    #[error("a + may only open the number")]
    MisplacedPlus,
    #[error("has {0} digits; a telephone number has 4 to 15")]
    DigitCount(usize),
}

impl Phone {
    pub const MAX_CHARS: usize = 40;

    pub fn parse(s: &str) -> Result<Self, InvalidPhone> {
        let s = s.trim();
        if s.chars().count() > Self::MAX_CHARS {
            return Err(InvalidPhone::TooLong);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err(InvalidPhone::Characters);
        }
        if s.char_indices().any(|(i, c)| c == '+' && i > 0) {
            return Err(InvalidPhone::MisplacedPlus);
        }
        let mut digits: String = s.chars().filter(char::is_ascii_digit).collect();
        let mut international = s.starts_with('+');
        if !international && digits.starts_with("00") {
            digits.drain(..2);
            international = true;
        }
        if !(4..=15).contains(&digits.len()) {
            return Err(InvalidPhone::DigitCount(digits.len()));
        }
        Ok(Self {
            written: s.to_owned(),
            digits,
            international,
        })
    }

    /// The number as the citizen wrote it (trimmed).
    pub fn as_written(&self) -> &str {
        &self.written
    }

    /// Its digits, without separators or an international prefix.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// E.164 (`+` and up to 15 digits). A number written in the national form takes the
    /// city's country calling code, and loses its trunk prefix (a leading 0) if it has one.
    pub fn e164(&self, country_calling_code: u16) -> String {
        if self.international {
            format!("+{}", self.digits)
        } else {
            let national = self.digits.strip_prefix('0').unwrap_or(&self.digits);
            format!("+{country_calling_code}{national}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_international_number_keeps_its_country() {
        let p = Phone::parse(" +1 (213) 555-0100 ").unwrap();
        assert_eq!(p.as_written(), "+1 (213) 555-0100");
        assert_eq!(p.e164(48), "+12135550100");
    }

    #[test]
    fn a_double_zero_prefix_is_international() {
        assert_eq!(
            Phone::parse("0048 71 777 77 77").unwrap().e164(1),
            "+48717777777"
        );
    }

    #[test]
    fn a_national_number_takes_the_city_calling_code_and_drops_its_trunk_zero() {
        assert_eq!(
            Phone::parse("071 777 77 77").unwrap().e164(48),
            "+48717777777"
        );
        assert_eq!(
            Phone::parse("(213) 555-0100").unwrap().e164(1),
            "+12135550100"
        );
    }

    #[test]
    fn fifteen_digits_are_accepted() {
        assert!(Phone::parse(&format!("+{}", "1".repeat(15))).is_ok());
    }

    #[test]
    fn sixteen_digits_are_refused() {
        assert_eq!(
            Phone::parse(&format!("+{}", "1".repeat(16))),
            Err(InvalidPhone::DigitCount(16))
        );
    }

    #[test]
    fn three_digits_are_refused() {
        assert_eq!(Phone::parse("112"), Err(InvalidPhone::DigitCount(3)));
    }

    #[test]
    fn letters_are_refused() {
        assert_eq!(Phone::parse("call me"), Err(InvalidPhone::Characters));
    }

    #[test]
    fn a_plus_inside_the_number_is_refused() {
        assert_eq!(Phone::parse("555+0100"), Err(InvalidPhone::MisplacedPlus));
    }

    #[test]
    fn forty_one_characters_are_refused() {
        assert_eq!(Phone::parse(&" 1".repeat(21)), Err(InvalidPhone::TooLong));
    }
}
