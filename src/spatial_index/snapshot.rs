//! Snapshots for standing aggregates (the tiles' pyramid): the visible incidents passing a
//! filter at one moment, taken together with a subscription to every later write.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::base::Base;
use super::compact::Compiled;
use super::delta::Change;
use super::scan::visit;
use super::{Compact, Filter, SpatialIndex, changes};

/// The visible incidents passing a filter at one moment (see
/// [`SpatialIndex::snapshot_matching`]), visited without holding any lock.
pub struct Snapshot {
    base: Arc<Base>,
    changes: HashMap<Uuid, Change>,
    compiled: Compiled,
}

impl Snapshot {
    /// Visits every incident of the snapshot.
    pub fn for_each(&self, mut f: impl FnMut(&Compact)) {
        visit(&self.base, &self.changes, |r| {
            if self.compiled.matches(r) {
                f(&Compact::of(r));
            }
        });
    }
}

impl SpatialIndex {
    /// Subscribes to the change feed and takes a snapshot of every visible incident passing
    /// `filter` in one step: every later write is in the receiver and none in the snapshot.
    /// What a standing aggregate over the index needs to start from.
    ///
    /// Writers wait only while the delta is copied: the base is immutable, so the snapshot
    /// visits it after the lock is released (at 5M incidents, visiting under the lock held
    /// every writer, and every reader queued behind one, for a few hundred milliseconds).
    pub fn snapshot_matching(
        &self,
        filter: &Filter,
    ) -> (tokio::sync::broadcast::Receiver<changes::Change>, Snapshot) {
        let compiled = Compiled::new(filter, &self.names);
        let delta = self.read_delta();
        let rx = self.changes.subscribe();
        let snapshot = Snapshot {
            base: self.base.load_full(),
            changes: delta.changes.clone(),
            compiled,
        };
        (rx, snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial_index::Incident;
    use crate::spatial_index::testing::{incident, lcg};

    #[test]
    fn a_snapshot_keeps_its_moment_and_its_receiver_gets_every_later_write() {
        let mut s = 3;
        let all: Vec<Incident> = (0..200)
            .map(|i| incident(-118.3 + lcg(&mut s) * 0.1, 34.0 + lcg(&mut s) * 0.1, i))
            .collect();
        let idx = SpatialIndex::from_incidents(all[..150].to_vec());
        for i in &all[150..180] {
            idx.upsert(i.clone());
        }
        let (mut rx, snapshot) = idx.snapshot_matching(&Filter::default());
        // After the snapshot: new incidents, a removal, and a fold that swaps the base.
        for i in &all[180..] {
            idx.upsert(i.clone());
        }
        idx.remove_at(all[0].id, all[0].change_seq + 1);
        idx.fold();
        let mut seen = Vec::new();
        snapshot.for_each(|c| seen.push(c.id));
        seen.sort_unstable();
        let mut want: Vec<Uuid> = all[..180].iter().map(|i| i.id).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
        let mut later = 0;
        while let Ok(changes::Change::Incident { .. }) = rx.try_recv() {
            later += 1;
        }
        assert_eq!(later, 21);
    }
}
