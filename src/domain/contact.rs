//! Contact details a citizen chose to give, with their consent, and the wire block they
//! arrive in (the native API's `contact`, Open311's flat fields, a "me too").

use serde::{Deserialize, Serialize};

use super::{Email, Phone, optional_text};
use crate::error::FieldError;

/// Contact details, every one already valid; at least one of them is present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub notify: bool,
}

/// The consent text recorded with every stored contact.
pub const CONSENT_TEXT: &str =
    "I agree that the city stores my contact details to tell me about this report.";

/// Longest name kept, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The contact block as it arrives on the wire.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub consent: bool,
    #[serde(default)]
    pub notify: bool,
}

impl ContactBody {
    /// The contact, or `None` when no detail was given or one is at fault (then `errors`
    /// names it). `prefix` names the block in error messages (`contact.` or nothing for
    /// Open311's flat fields).
    pub fn parse(self, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Contact> {
        let present = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let name = optional_text(self.name, &format!("{prefix}name"), MAX_NAME_CHARS, errors);
        let email = present(self.email).and_then(|e| {
            Email::parse(&e)
                .map_err(|m| errors.push(FieldError::new(format!("{prefix}email"), m.to_string())))
                .ok()
        });
        let phone = present(self.phone).and_then(|p| {
            Phone::parse(&p)
                .map_err(|m| errors.push(FieldError::new(format!("{prefix}phone"), m.to_string())))
                .ok()
        });
        if name.is_none() && email.is_none() && phone.is_none() {
            return None;
        }
        if !self.consent {
            errors.push(FieldError::new(
                format!("{prefix}consent"),
                "must be true to store contact details; leave contact out to report anonymously",
            ));
            return None;
        }
        Some(Contact {
            name,
            email,
            phone,
            notify: self.notify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: ContactBody) -> (Option<Contact>, Vec<String>) {
        let mut errors = Vec::new();
        let c = body.parse("contact.", &mut errors);
        (c, errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn details_with_consent_are_kept_and_normalised() {
        let (c, errors) = parse(ContactBody {
            name: Some(" Ada ".into()),
            email: Some("Ada@Example.org".into()),
            phone: Some("+1 555 0100".into()),
            consent: true,
            notify: true,
        });
        assert!(errors.is_empty());
        let c = c.unwrap();
        assert_eq!(c.name.as_deref(), Some("Ada"));
        assert_eq!(c.email.unwrap().as_str(), "ada@example.org");
        assert_eq!(c.phone.unwrap().as_written(), "+1 555 0100");
    }

    #[test]
    fn details_without_consent_name_the_consent_field() {
        let (c, errors) = parse(ContactBody {
            email: Some("a@example.org".into()),
            ..ContactBody::default()
        });
        assert_eq!((c, errors), (None, vec!["contact.consent".to_owned()]));
    }

    #[test]
    fn a_bad_email_names_the_email_field() {
        let (_, errors) = parse(ContactBody {
            email: Some("nobody".into()),
            consent: true,
            ..ContactBody::default()
        });
        assert_eq!(errors, vec!["contact.email"]);
    }

    #[test]
    fn a_bad_phone_names_the_phone_field() {
        let (_, errors) = parse(ContactBody {
            phone: Some("call me".into()),
            consent: true,
            ..ContactBody::default()
        });
        assert_eq!(errors, vec!["contact.phone"]);
    }

    #[test]
    fn a_two_hundred_one_character_name_is_refused() {
        let (_, errors) = parse(ContactBody {
            name: Some("n".repeat(201)),
            consent: true,
            ..ContactBody::default()
        });
        assert_eq!(errors, vec!["contact.name"]);
    }

    #[test]
    fn an_empty_block_is_no_contact_and_no_error() {
        let (c, errors) = parse(ContactBody {
            name: Some("  ".into()),
            ..ContactBody::default()
        });
        assert_eq!((c, errors.len()), (None, 0));
    }
}
