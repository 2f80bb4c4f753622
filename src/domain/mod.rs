//! The kernel: the types every capability shares, parsed at the edge so the rest of the code
//! only sees valid values. A file each, with its boundary tests; nothing here imports a
//! capability.

mod actor;
mod channel;
mod contact;
mod description;
mod email;
mod phone;
mod radius;
mod reference;
mod report;
mod report_key;
mod service_code;
mod source;
mod status;
mod text;
mod time_bound;

pub use actor::Actor;
pub use channel::Channel;
pub use contact::{CONSENT_TEXT, Contact, ContactBody};
pub use description::Description;
pub use email::{Email, InvalidEmail};
pub use phone::{InvalidPhone, Phone};
pub use radius::{InvalidRadius, RadiusMeters};
pub use reference::Reference;
pub use report::Report;
pub use report_key::{InvalidReportKey, ReportKey};
pub use service_code::{InvalidServiceCode, ServiceCode};
pub use source::{InvalidSource, Source};
pub use status::{Status, UnknownStatus};
pub use text::{Lines, TextError, optional_multiline_text, optional_text, plain_text};
pub use time_bound::{Bound, InvalidTime, is_plain_date, parse_time_bound};
