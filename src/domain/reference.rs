//! The short public reference a citizen quotes on the phone.

use uuid::Uuid;

/// `CP-` and 8 Crockford base-32 characters (no I, L, O, U), e.g. `CP-7K3M-9QXD`. About
/// 10^12 values, drawn at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reference([u8; 12]);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Where the 8 characters sit in `CP-0000-0000`.
const SLOTS: [usize; 8] = [3, 4, 5, 6, 8, 9, 10, 11];

impl Reference {
    /// The reference whose 8 characters encode the low 40 bits of `x`, 5 bits each.
    pub fn from_bits(x: u64) -> Self {
        let mut out = *b"CP-0000-0000";
        for (i, slot) in SLOTS.into_iter().enumerate() {
            out[slot] = CROCKFORD[((x >> (35 - 5 * i)) & 31) as usize];
        }
        Self(out)
    }

    pub fn random() -> Self {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).unwrap_or_else(|_| {
            // The OS generator failing is not recoverable in any useful way; fall back to
            // the v4 UUID generator's own randomness rather than panicking mid-request.
            raw.copy_from_slice(&Uuid::new_v4().as_bytes()[..8]);
        });
        let mut out = *b"CP-0000-0000";
        for (slot, byte) in SLOTS.iter().zip(raw) {
            out[*slot] = CROCKFORD[usize::from(byte & 31)];
        }
        Self(out)
    }

    /// Parses a reference as a person might type it: any case, with or without dashes or
    /// spaces, with Crockford's look-alikes folded (O→0, I/L→1).
    pub fn parse(s: &str) -> Option<Self> {
        let cleaned: Vec<u8> = s
            .bytes()
            .filter(|b| *b != b'-' && *b != b' ')
            .map(|b| b.to_ascii_uppercase())
            .collect();
        let body = cleaned.strip_prefix(b"CP")?;
        if body.len() != 8 {
            return None;
        }
        let mut out = *b"CP-0000-0000";
        for (slot, b) in SLOTS.iter().zip(body) {
            let b = match b {
                b'O' => b'0',
                b'I' | b'L' => b'1',
                other => *other,
            };
            if !CROCKFORD.contains(&b) {
                return None;
            }
            out[*slot] = b;
        }
        Some(Self(out))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("CP-????-????")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    #[test]
    fn references_are_readable_and_parse_back_forgivingly() {
        let r = Reference::random();
        let s = r.to_string();
        assert_eq!(s.len(), 12);
        assert!(s.starts_with("CP-") && s.as_bytes()[7] == b'-');
        assert_eq!(Reference::parse(&s.to_lowercase()), Some(r));
        assert_eq!(Reference::parse(&s.replace('-', "")), Some(r));
        assert_eq!(Reference::parse(&s.replace('-', " ")), Some(r));
    }

    #[test]
    fn look_alikes_fold_to_digits() {
        assert_eq!(
            Reference::parse("CP-OOOO-IIII").map(|r| r.to_string()),
            Some("CP-0000-1111".into())
        );
        assert_eq!(
            Reference::parse("cp-llll-0000").map(|r| r.to_string()),
            Some("CP-1111-0000".into())
        );
    }

    fn is_refused(text: &str) {
        assert_eq!(Reference::parse(text), None, "{text:?}");
    }

    cases! { is_refused {
        a_letter_outside_the_alphabet_is_refused: "CP-UUUU-0000";
        a_wrong_prefix_is_refused: "XX-0000-0000";
        a_reference_one_character_short_is_refused: "CP-0000-000";
        a_reference_one_character_long_is_refused: "CP-0000-00000";
    }}

    #[test]
    fn from_bits_uses_the_low_forty_bits() {
        assert_eq!(Reference::from_bits(0).as_str(), "CP-0000-0000");
        assert_eq!(Reference::from_bits((1 << 40) - 1).as_str(), "CP-ZZZZ-ZZZZ");
        assert_eq!(Reference::from_bits(1 << 40), Reference::from_bits(0));
    }
}
