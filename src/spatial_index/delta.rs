//! The delta: changes since the base was built, in a small R-tree whose ids mask the base's
//! copies; the writes that fill it, and the fold that empties it into a new base.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use rstar::RTree;
use rstar::primitives::GeomWithData;
use uuid::Uuid;

use super::base::Base;
use super::compact::Record;
use super::sphere::{Point3, unit_vector};
use super::{Compact, Incident, SpatialIndex, changes};
use crate::catalogue::Catalogue;
use crate::domain::Report;

/// Delta tree entries carry the id; the delta is small, so the map lookup is cheap.
pub(super) type DeltaEntry = GeomWithData<Point3, Uuid>;

/// The delta grows to at most this many changes, or 1/64 of the base, before it is folded.
const FOLD_AT_LEAST: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub(super) enum Change {
    Live(Record),
    /// Hidden (or removed) at this change number.
    Gone(i64),
}

impl Change {
    pub(super) fn seq(&self) -> i64 {
        match self {
            Self::Live(r) => r.change_seq,
            Self::Gone(s) => *s,
        }
    }
}

/// The delta's tree, built by insertion. Never `RTree::bulk_load` for a tree that is then
/// mutated: rstar 0.12.2's R* insertion panics ("This is a bug in rstar") on a bulk-loaded tree
/// after enough inserts and removals. The dedup bench hit it when writes raced a fold (the
/// changes made during a fold seed the new delta); `the_delta_tree_survives_churn` reproduces
/// it with `bulk_load`. The base trees are bulk-loaded and never mutated, which is safe.
fn delta_tree(entries: impl IntoIterator<Item = DeltaEntry>) -> RTree<DeltaEntry> {
    let mut tree = RTree::new();
    for e in entries {
        tree.insert(e);
    }
    tree
}

/// Changes since the base was built. Every id here masks the base's copy.
#[derive(Default)]
pub(super) struct Delta {
    pub(super) changes: HashMap<Uuid, Change>,
    pub(super) tree: RTree<DeltaEntry>,
}

impl Delta {
    pub(super) fn live(&self, id: Uuid) -> Option<&Record> {
        match self.changes.get(&id) {
            Some(Change::Live(r)) => Some(r),
            _ => None,
        }
    }
}

impl SpatialIndex {
    /// Inserts or replaces one incident; an older change never overwrites a newer one.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "a stable signature other capabilities call with an owned incident"
    )]
    pub fn upsert(&self, incident: Incident) {
        let record = Record::from_incident(&incident, &self.names);
        self.apply(incident.id, Change::Live(record));
    }

    /// Applies a report just committed to `PostGIS` (by this process): visible reports are
    /// upserted, hidden ones removed. The one call every writer makes after its commit.
    pub fn apply_committed(&self, report: &Report, catalogue: &Catalogue) {
        if report.hidden {
            self.remove(report.id);
        } else {
            self.upsert(Incident::from_report(report, catalogue));
        }
    }

    /// [`Self::apply_committed`] for each report one transaction wrote (a duplicate and its
    /// parent, say).
    pub fn apply_all_committed<'a>(
        &self,
        reports: impl IntoIterator<Item = &'a Report>,
        catalogue: &Catalogue,
    ) {
        for report in reports {
            self.apply_committed(report, catalogue);
        }
    }

    /// Removes an incident (hidden by moderation, say).
    pub fn remove(&self, id: Uuid) {
        if let Some(seq) = self.seq_of(id) {
            self.apply(id, Change::Gone(seq));
        }
    }

    /// Removes an incident hidden by change `seq`, unless the index already has a newer change.
    pub fn remove_at(&self, id: Uuid, seq: i64) {
        self.apply(id, Change::Gone(seq));
    }

    /// The change number the index holds for `id`, visible or hidden.
    pub fn seq_of(&self, id: Uuid) -> Option<i64> {
        let delta = self.read_delta();
        let base = self.base.load();
        current_seq(&delta, &base, id).map(|(seq, _)| seq)
    }

    pub(super) fn apply(&self, id: Uuid, change: Change) -> bool {
        let mut delta = self.write_delta();
        let base = self.base.load();
        let current = current_seq(&delta, &base, id);
        if current.is_some_and(|(seq, _)| seq > change.seq()) {
            return false;
        }
        let was_visible = current.is_some_and(|(_, visible)| visible);
        let was = if was_visible {
            delta.live(id).or_else(|| base.find(id)).map(Compact::of)
        } else {
            None
        };
        if let Some(Change::Live(old)) = delta.changes.get(&id).copied() {
            delta
                .tree
                .remove(&DeltaEntry::new(unit_vector(old.position), id));
        }
        let now_visible = matches!(change, Change::Live(_));
        if let Change::Live(r) = &change {
            delta
                .tree
                .insert(DeltaEntry::new(unit_vector(r.position), id));
        }
        let now = match &change {
            Change::Live(r) => Some(Compact::of(r)),
            Change::Gone(_) => None,
        };
        delta.changes.insert(id, change);
        // Sent under the write lock: a reader that sees the change then reads the new state,
        // and a snapshot taken under the read lock (`snapshot_matching`) sees each change
        // either in its records or in its receiver, never both.
        self.changes.send(changes::Change::Incident {
            old: was.map(|c| c.position),
            new: now.map(|c| c.position),
            was,
            now,
        });
        match (was_visible, now_visible) {
            (false, true) => {
                self.len.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.len.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        drop(delta);
        self.last_seq.fetch_max(change.seq(), Ordering::AcqRel);
        true
    }

    /// Whether the delta is big enough to be worth folding.
    pub fn needs_fold(&self) -> bool {
        let base = self.base.load().records.len();
        self.delta_len() >= FOLD_AT_LEAST.max(base / 64)
    }

    /// Rebuilds the base with the delta folded in, then swaps it in. CPU-heavy (about a second
    /// per million incidents): call it from a blocking thread. Writers keep writing to the
    /// delta meanwhile; only changes that are still the newest are dropped from it.
    pub fn fold(&self) {
        let _one = self.folding.lock().unwrap_or_else(PoisonError::into_inner);
        let taken: Vec<(Uuid, Change)> = self
            .read_delta()
            .changes
            .iter()
            .map(|(id, c)| (*id, *c))
            .collect();
        if taken.is_empty() {
            return;
        }
        let old = self.base.load_full();
        let changed: HashMap<Uuid, Change> = taken.iter().copied().collect();
        let mut records: Vec<Record> = old
            .records
            .iter()
            .filter(|r| !changed.contains_key(&r.id))
            .copied()
            .collect();
        let mut gone = old.gone.clone();
        for (id, c) in &taken {
            match c {
                Change::Live(r) => {
                    gone.remove(id);
                    records.push(*r);
                }
                Change::Gone(seq) => {
                    gone.insert(*id, *seq);
                }
            }
        }
        let base = Base::build(records, gone);
        let mut delta = self.write_delta();
        self.base.store(Arc::new(base));
        for (id, c) in taken {
            if delta
                .changes
                .get(&id)
                .is_some_and(|now| now.seq() == c.seq())
            {
                delta.changes.remove(&id);
            }
        }
        delta.tree = delta_tree(delta.changes.iter().filter_map(|(id, c)| match c {
            Change::Live(r) => Some(DeltaEntry::new(unit_vector(r.position), *id)),
            Change::Gone(_) => None,
        }));
    }
}

/// The change number held for `id` and whether that version is visible.
fn current_seq(delta: &Delta, base: &Base, id: Uuid) -> Option<(i64, bool)> {
    match delta.changes.get(&id) {
        Some(c) => Some((c.seq(), matches!(c, Change::Live(_)))),
        None => base
            .find(id)
            .map(|r| (r.change_seq, true))
            .or_else(|| base.gone.get(&id).map(|s| (*s, false))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;
    use crate::geo::Position;
    use crate::spatial_index::testing::incident;

    #[test]
    fn the_delta_tree_survives_churn() {
        // Points on a short line with many exact ties (LA's data stacks reports on the same
        // spots); a delta seeded with entries, as after a fold that writes raced, then inserts,
        // removals and more such folds. With `RTree::bulk_load` in `delta_tree`, both of these
        // seeded runs (found by a search over 200 seeds) panic inside rstar.
        for seed in [12u64, 55] {
            let mut state = seed;
            let mut next = move || {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 11) as f64 / (1u64 << 53) as f64
            };
            let point = |next: &mut dyn FnMut() -> f64| {
                let k = (next() * 50.0).floor();
                let jitter = if next() < 0.5 { 0.0 } else { next() * 1e-4 };
                let p = Position::new(-118.5 + k * 0.001 + jitter, 34.0 + k * 0.0007).unwrap();
                unit_vector(p)
            };
            let mut id = 0u128;
            let mut fresh = |next: &mut dyn FnMut() -> f64| {
                id += 1;
                DeltaEntry::new(point(next), Uuid::from_u128(id))
            };
            let mut live: Vec<DeltaEntry> = (0..(next() * 2_000.0) as usize)
                .map(|_| fresh(&mut next))
                .collect();
            let mut tree = delta_tree(live.iter().copied());
            for step in 0..20_000 {
                if next() < 0.5 && !live.is_empty() {
                    let gone = live.swap_remove((next() * live.len() as f64) as usize);
                    assert!(tree.remove(&gone).is_some());
                } else {
                    let e = fresh(&mut next);
                    tree.insert(e);
                    live.push(e);
                }
                if step % 5_000 == 4_999 {
                    tree = delta_tree(live.iter().copied());
                }
            }
            assert_eq!(tree.size(), live.len());
        }
    }

    #[test]
    fn an_older_change_never_overwrites_a_newer_one() {
        let idx = SpatialIndex::new();
        let mut a = incident(0.0, 0.0, 5);
        idx.upsert(a.clone());
        a.status = Status::Fixed;
        a.change_seq = 4;
        idx.upsert(a.clone());
        assert_eq!(idx.get(a.id).unwrap().status, Status::New);
        a.change_seq = 6;
        a.position = Position::new(1.0, 1.0).unwrap();
        idx.upsert(a.clone());
        assert_eq!(idx.get(a.id).unwrap().status, Status::Fixed);
        assert!(
            idx.nearby(Position::new(0.0, 0.0).unwrap(), 10.0, 5, |_| true)
                .is_empty()
        );
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn a_hidden_incident_does_not_come_back_from_a_stale_copy_after_a_fold() {
        let a = incident(2.0, 48.0, 5);
        let idx = SpatialIndex::from_incidents(vec![a.clone()]);
        idx.remove_at(a.id, 6);
        idx.fold();
        idx.upsert(a.clone());
        assert!(idx.get(a.id).is_none());
        assert_eq!(idx.len(), 0);
    }
}
