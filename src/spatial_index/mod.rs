//! The live in-memory index of incidents: unit vectors in buckets under an R-tree (rstar) of
//! the buckets' boxes (`layer.rs`), walked best-first for radius, k-nearest and box queries, and
//! each incident's H3 cell with roll-ups for hotspots. A cache
//! of `PostGIS`: bulk-loaded at start-up, updated after every commit, and kept coherent with
//! other processes by [`sync`] (LISTEN/NOTIFY plus reconciliation by change sequence).
//!
//! Concurrency: an immutable, bulk-loaded *base* behind an `ArcSwap` plus a small *delta* of
//! changes since it was built, behind a `RwLock` held only for one small-tree insert. Readers
//! merge both; [`SpatialIndex::fold`] rebuilds the base off the async threads and swaps it in.
//! ARCHITECTURE.md gives the measurements behind this choice.

mod base;
pub mod changes;
mod compact;
mod delta;
mod h3;
pub mod http;
mod incident;
mod layer;
mod query;
mod scan;
mod snapshot;
mod sphere;
pub mod store;
pub mod sync;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sqlx::PgPool;
use uuid::Uuid;

pub use compact::Filter;
pub(crate) use incident::group_of;
pub use incident::{Compact, Incident};
pub use query::{CompactHit, Hit};
pub use snapshot::Snapshot;
#[cfg(test)]
pub(crate) use testing::test_incident;

use base::Base;
use compact::{Names, Record};
use delta::{Change, Delta};

use crate::catalogue::Catalogue;

/// The index. Cheap to share (`Arc`).
pub struct SpatialIndex {
    base: arc_swap::ArcSwap<Base>,
    delta: RwLock<Delta>,
    names: Names,
    loaded: AtomicBool,
    len: AtomicUsize,
    /// The highest change number applied.
    last_seq: AtomicI64,
    /// One fold at a time.
    folding: Mutex<()>,
    /// Reconciliation reads changes after `.0`, then moves `.0` to `.1` and `.1` to the newest
    /// change seen: each change number is read in two rounds, so a transaction that commits up
    /// to one round after drawing its number is still caught.
    marks: Mutex<(i64, i64)>,
    /// Announces each write to caches built on the index (tiles).
    changes: changes::ChangeFeed,
}

impl Default for SpatialIndex {
    fn default() -> Self {
        Self {
            base: arc_swap::ArcSwap::from_pointee(Base::default()),
            delta: RwLock::default(),
            names: Names::default(),
            loaded: AtomicBool::new(false),
            len: AtomicUsize::new(0),
            last_seq: AtomicI64::new(0),
            folding: Mutex::new(()),
            marks: Mutex::new((0, 0)),
            changes: changes::ChangeFeed::default(),
        }
    }
}

impl SpatialIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// A loaded index holding `incidents`, without a database (benches, tests).
    pub fn from_incidents(incidents: Vec<Incident>) -> Self {
        let index = Self::new();
        index.replace_all(incidents);
        index
    }

    /// Replaces the whole content (bulk load: the R-tree is built in one pass, which gives a
    /// better tree than inserting one by one).
    #[expect(
        clippy::needless_pass_by_value,
        reason = "a stable signature that dedup, tiles and benches call; taking the Vec lets it be dropped early"
    )]
    pub fn replace_all(&self, incidents: Vec<Incident>) {
        let records = incidents
            .iter()
            .map(|i| Record::from_incident(i, &self.names))
            .collect();
        self.replace_records(records);
    }

    fn replace_records(&self, records: Vec<Record>) {
        // Not while a fold runs: it would swap in a base built from the content replaced here.
        let _one = self.folding.lock().unwrap_or_else(PoisonError::into_inner);
        let max_seq = records.iter().map(|r| r.change_seq).max().unwrap_or(0);
        let base = Base::build(records, HashMap::new());
        let mut delta = self.write_delta();
        self.len.store(base.records.len(), Ordering::Release);
        self.base.store(Arc::new(base));
        *delta = Delta::default();
        drop(delta);
        self.last_seq.fetch_max(max_seq, Ordering::AcqRel);
        *self.marks.lock().unwrap_or_else(PoisonError::into_inner) = (max_seq, max_seq);
        self.loaded.store(true, Ordering::Release);
        self.changes.send(changes::Change::Reloaded);
    }

    /// Subscribes to every later write (see [`changes::Change`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<changes::Change> {
        self.changes.subscribe()
    }

    /// Loads every visible incident from `PostGIS` and replaces the content with them.
    pub async fn load(&self, pool: &PgPool, catalogue: &Catalogue) -> Result<usize, sqlx::Error> {
        let mut records: Vec<Record> = Vec::new();
        store::for_each_visible(pool, |r| {
            records.extend(r.to_record(catalogue, &self.names));
        })
        .await?;
        records.shrink_to_fit();
        let n = records.len();
        // Sorting and bulk-loading a million entries takes a second of CPU: keep it off the
        // async threads where the runtime allows (a current-thread runtime, as in tests, cannot).
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| self.replace_records(records));
        } else {
            self.replace_records(records);
        }
        Ok(n)
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Changes waiting to be folded into the base.
    pub fn delta_len(&self) -> usize {
        self.read_delta().changes.len()
    }

    /// Heap bytes held by the index: records, tree nodes, tombstones and the delta. Counted
    /// from the structures (vector capacities), so allocator overhead is not included.
    pub fn heap_bytes(&self) -> usize {
        let base = self.base.load();
        let delta = self.read_delta();
        let map_entry = std::mem::size_of::<(Uuid, Change)>() + 1;
        base.records.capacity() * std::mem::size_of::<Record>()
            + base.by_id.capacity() * std::mem::size_of::<u32>()
            + base.all.heap_bytes()
            + base.open.heap_bytes()
            + base.gone.capacity() * (std::mem::size_of::<(Uuid, i64)>() + 1)
            + delta.changes.capacity() * map_entry
            + layer::node_bytes(delta.tree.root())
    }

    /// The interned service codes and group names that [`Compact`] indexes into. Names are
    /// only ever appended, so a table taken after a visit resolves every index it saw.
    pub fn names(&self) -> Arc<Vec<Arc<str>>> {
        self.names.table().clone()
    }

    fn read_delta(&self) -> RwLockReadGuard<'_, Delta> {
        self.delta.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_delta(&self) -> RwLockWriteGuard<'_, Delta> {
        self.delta.write().unwrap_or_else(PoisonError::into_inner)
    }
}
