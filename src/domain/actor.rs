//! Who made a change, as the history records it: a role, and the token if there was one.

use uuid::Uuid;

/// Who made a change: the role written into history (`citizen` for anonymous callers) and
/// the API token used, never a person's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor<'a> {
    pub role: &'a str,
    pub token: Option<Uuid>,
}
