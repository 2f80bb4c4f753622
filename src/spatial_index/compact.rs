//! The compact record the index keeps per incident (104 bytes), the interned names it points
//! to, and filters evaluated on records without building an [`Incident`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Incident;
use crate::domain::Status;
use crate::geo::Position;

/// One incident as the index stores it: names interned as `u16`, the reference as its 12
/// bytes, times as microseconds since the epoch, no parent as the nil UUID.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Record {
    pub id: Uuid,
    pub duplicate_of: Uuid,
    pub position: Position,
    pub h3_cell: u64,
    pub change_seq: i64,
    pub requested_us: i64,
    pub updated_us: i64,
    pub supporters: i32,
    pub reference: [u8; 12],
    pub service: u16,
    pub group: u16,
    pub status: u8,
}

/// References are `CP-XXXX-XXXX`, exactly 12 ASCII bytes; anything else is padded or cut.
pub(crate) fn reference_bytes(s: &str) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b;
    }
    out
}

pub(super) fn status_from_u8(v: u8) -> Status {
    Status::ALL
        .get(usize::from(v))
        .copied()
        .unwrap_or(Status::New)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl Record {
    pub fn status(&self) -> Status {
        status_from_u8(self.status)
    }

    pub fn from_incident(i: &Incident, names: &Names) -> Self {
        Self {
            id: i.id,
            duplicate_of: i.duplicate_of.unwrap_or(Uuid::nil()),
            position: i.position,
            h3_cell: i.h3_cell,
            change_seq: i.change_seq,
            requested_us: micros(i.requested_at),
            updated_us: micros(i.updated_at),
            supporters: i.supporters,
            reference: reference_bytes(&i.reference),
            service: names.intern(&i.service_code),
            group: names.intern(&i.group),
            status: i.status as u8,
        }
    }

    pub fn incident(&self, names: &[Arc<str>]) -> Incident {
        let name = |i: u16| {
            names
                .get(usize::from(i))
                .cloned()
                .unwrap_or_else(|| Arc::from(""))
        };
        let len = self.reference.iter().position(|b| *b == 0).unwrap_or(12);
        Incident {
            id: self.id,
            reference: Arc::from(String::from_utf8_lossy(&self.reference[..len]).as_ref()),
            position: self.position,
            service_code: name(self.service),
            group: name(self.group),
            status: self.status(),
            requested_at: from_micros(self.requested_us),
            updated_at: from_micros(self.updated_us),
            supporters: self.supporters,
            duplicate_of: (!self.duplicate_of.is_nil()).then_some(self.duplicate_of),
            h3_cell: self.h3_cell,
            change_seq: self.change_seq,
        }
    }
}

/// Service codes and group names, each stored once and referred to by a `u16`. Readers take
/// the current table without a lock; adding a name (rare: a new catalogue entry) copies it.
#[derive(Default)]
pub(crate) struct Names {
    table: ArcSwap<Vec<Arc<str>>>,
    lookup: Mutex<HashMap<Arc<str>, u16>>,
}

impl Names {
    pub fn intern(&self, s: &str) -> u16 {
        let mut lookup = self.lookup.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = lookup.get(s) {
            return *i;
        }
        let mut table = (**self.table.load()).clone();
        // 65,535 distinct names is far past any catalogue; past it, names share the last slot.
        let Ok(i) = u16::try_from(table.len()) else {
            return u16::MAX;
        };
        let name: Arc<str> = Arc::from(s);
        table.push(name.clone());
        lookup.insert(name, i);
        self.table.store(Arc::new(table));
        i
    }

    /// Looks a name up without the writers' lock: the table is a catalogue's worth of names.
    pub fn find(&self, s: &str) -> Option<u16> {
        self.table
            .load()
            .iter()
            .position(|n| &**n == s)
            .and_then(|i| u16::try_from(i).ok())
    }

    pub fn table(&self) -> arc_swap::Guard<Arc<Vec<Arc<str>>>> {
        self.table.load()
    }
}

/// Which incidents a query wants, evaluated on compact records. Empty lists mean "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub statuses: Vec<Status>,
    pub service_codes: Vec<String>,
}

impl Filter {
    /// Open incidents (new, acknowledged, scheduled, in progress) of any service.
    pub fn open() -> Self {
        Self {
            statuses: Status::ALL.into_iter().filter(|s| s.is_open()).collect(),
            service_codes: Vec::new(),
        }
    }
}

/// A [`Filter`] resolved against the interned names.
pub(crate) struct Compiled {
    statuses: u16,
    /// `None`: any service. Codes the index has never seen match nothing.
    services: Option<Vec<u16>>,
}

impl Compiled {
    pub fn new(f: &Filter, names: &Names) -> Self {
        let statuses = if f.statuses.is_empty() {
            u16::MAX
        } else {
            f.statuses.iter().fold(0, |m, s| m | (1 << (*s as u8)))
        };
        let services = (!f.service_codes.is_empty()).then(|| {
            f.service_codes
                .iter()
                .filter_map(|c| names.find(c))
                .collect()
        });
        Self { statuses, services }
    }

    /// Whether only open statuses can match, so the open-only tree holds every candidate.
    pub fn open_only(&self) -> bool {
        let open = Status::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .fold(0u16, |m, s| m | (1 << (s as u8)));
        self.statuses & !open == 0
    }

    pub fn matches(&self, r: &Record) -> bool {
        self.admits(r.status, r.service)
    }

    /// [`Self::matches`] on the two fields a base tree entry carries.
    pub fn admits(&self, status: u8, service: u16) -> bool {
        self.statuses & (1 << status) != 0
            && self.services.as_ref().is_none_or(|s| s.contains(&service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_compact() {
        assert!(std::mem::size_of::<Record>() <= 104);
    }

    #[test]
    fn record_round_trips_an_incident() {
        let names = Names::default();
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        let inc = Incident {
            id: Uuid::now_v7(),
            reference: Arc::from("CP-AB12-CD34"),
            position: Position::new(-118.25, 34.05).unwrap(),
            service_code: Arc::from("pothole"),
            group: Arc::from("Roads"),
            status: Status::InProgress,
            requested_at: now,
            updated_at: now,
            supporters: 3,
            duplicate_of: Some(Uuid::now_v7()),
            h3_cell: 0x0892_8308_280f_ffff,
            change_seq: 42,
        };
        let rec = Record::from_incident(&inc, &names);
        assert_eq!(rec.incident(&names.table()), inc);
    }

    #[test]
    fn filter_matches_status_and_known_service_codes_only() {
        let names = Names::default();
        let pothole = names.intern("pothole");
        let mut r = Record {
            id: Uuid::nil(),
            duplicate_of: Uuid::nil(),
            position: Position::new(0.0, 0.0).unwrap(),
            h3_cell: 0,
            change_seq: 0,
            requested_us: 0,
            updated_us: 0,
            supporters: 0,
            reference: [0; 12],
            service: pothole,
            group: 0,
            status: Status::New as u8,
        };
        let f = Filter {
            statuses: vec![Status::New],
            service_codes: vec!["pothole".into()],
        };
        assert!(Compiled::new(&f, &names).matches(&r));
        r.status = Status::Fixed as u8;
        assert!(!Compiled::new(&f, &names).matches(&r));
        let unknown = Filter {
            statuses: vec![],
            service_codes: vec!["graffiti".into()],
        };
        assert!(!Compiled::new(&unknown, &names).matches(&r));
        assert!(Compiled::new(&Filter::default(), &names).matches(&r));
    }
}
