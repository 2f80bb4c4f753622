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

pub mod changes;
mod compact;
pub mod http;
mod layer;
mod sphere;
pub mod store;
pub mod sync;

use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use h3o::{CellIndex, Resolution};
use rstar::primitives::GeomWithData;
use rstar::{ParentNode, PointDistance, RTree, RTreeNode};
use sqlx::PgPool;
use uuid::Uuid;

pub use compact::Filter;
use compact::{Compiled, Names, Record};
use layer::{Bucket, Layer};
use sphere::{Point3, unit_vector};

use crate::catalogue::Catalogue;
use crate::domain::{Report, Status};
use crate::geo::{BBox, Position};

/// What the index knows of one incident: public fields only. The query result type; the index
/// itself stores a compact record.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub id: Uuid,
    pub reference: Arc<str>,
    pub position: Position,
    pub service_code: Arc<str>,
    pub group: Arc<str>,
    pub status: Status,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub supporters: i32,
    pub duplicate_of: Option<Uuid>,
    pub h3_cell: u64,
    pub change_seq: i64,
}

impl Incident {
    pub fn from_report(r: &Report, catalogue: &Catalogue) -> Self {
        Self {
            id: r.id,
            reference: Arc::from(r.reference.as_str()),
            position: r.position(),
            service_code: Arc::from(r.service_code.as_str()),
            group: Arc::from(group_of(catalogue, &r.service_code)),
            status: r.status(),
            requested_at: r.requested_at,
            updated_at: r.updated_at,
            supporters: r.supporters,
            duplicate_of: r.duplicate_of,
            h3_cell: r.h3_cell as u64,
            change_seq: r.change_seq,
        }
    }
}

/// What a tile needs of one incident, copied from the compact record without allocating:
/// names are indices into [`SpatialIndex::names`], times microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compact {
    pub id: Uuid,
    pub position: Position,
    pub h3_cell: u64,
    pub requested_us: i64,
    pub supporters: i32,
    reference: [u8; 12],
    pub service: u16,
    pub group: u16,
    pub status: Status,
}

impl Compact {
    fn of(r: &Record) -> Self {
        Self {
            id: r.id,
            position: r.position,
            h3_cell: r.h3_cell,
            requested_us: r.requested_us,
            supporters: r.supporters,
            reference: r.reference,
            service: r.service,
            group: r.group,
            status: r.status(),
        }
    }

    /// The public reference (`CP-XXXX-XXXX`), borrowed from the record's bytes.
    pub fn reference(&self) -> &str {
        let len = self.reference.iter().position(|b| *b == 0).unwrap_or(12);
        std::str::from_utf8(&self.reference[..len]).unwrap_or("")
    }
}

/// The group a service belongs to, `Other` for codes the catalogue no longer has.
pub(crate) fn group_of<'a>(catalogue: &'a Catalogue, code: &str) -> &'a str {
    catalogue.get(code).map_or("Other", |s| s.group.as_str())
}

/// A query hit with its great-circle distance from the query centre.
#[derive(Clone, Debug)]
pub struct Hit {
    pub incident: Incident,
    pub distance_m: f64,
}

/// A query hit as the compact record, with its great-circle distance: what the nearby
/// endpoint serializes, so a hit costs no string allocation.
#[derive(Clone, Copy, Debug)]
pub struct CompactHit {
    pub incident: Compact,
    pub distance_m: f64,
}

/// Delta tree entries carry the id; the delta is small, so the map lookup is cheap.
type DeltaEntry = GeomWithData<Point3, Uuid>;

/// Most result slots reserved up front: a limit of `usize::MAX` (Open311) must not reserve it.
const MAX_PRESIZE: usize = 512;

/// The delta grows to at most this many changes, or 1/64 of the base, before it is folded.
const FOLD_AT_LEAST: usize = 4096;

/// Tree hits tested together before any is visited (see `for_each_in_bbox_where`).
const CHUNK: usize = 64;

/// An immutable snapshot: a searchable layer of every incident and one of the open ones; the
/// records in the first layer's order; their positions by id (binary search serves `get`, so
/// no hash map); and tombstones of hidden incidents.
#[derive(Default)]
struct Base {
    /// In the order of `all`'s points: a query's hits sit in a few buckets, so their records
    /// sit in a few runs of memory instead of one cache line each.
    records: Vec<Record>,
    /// Indexes into `records`, in id order.
    by_id: Vec<u32>,
    /// Every incident.
    all: Layer,
    /// The open incidents again: crews ask for open ones, and in a city's history most
    /// incidents are closed (99.8 % of the LA sample), so a walk of `all` for them would
    /// visit mostly misses, while this copy costs little. (Two disjoint layers, open and
    /// closed, would save the copy but make every any-status query walk two trees, which
    /// measured about 37 % slower at p50.)
    open: Layer,
    /// Hidden incidents and the change that hid them, so a stale copy cannot come back.
    gone: HashMap<Uuid, i64>,
}

impl Base {
    fn build(mut records: Vec<Record>, gone: HashMap<Uuid, i64>) -> Self {
        let mut all = Layer::build(points(&records, |_| true));
        permute(&mut records, |k| all.points[k].index as usize);
        for (index, p) in (0u32..).zip(&mut all.points) {
            p.index = index;
        }
        let open = Layer::build(points(&records, |r| r.status().is_open()));
        let mut by_id: Vec<u32> = (0..u32::try_from(records.len()).unwrap_or(u32::MAX)).collect();
        by_id.sort_unstable_by_key(|&i| records[i as usize].id);
        Self {
            records,
            by_id,
            all,
            open,
            gone,
        }
    }

    fn find(&self, id: Uuid) -> Option<&Record> {
        self.by_id
            .binary_search_by_key(&id, |&i| self.records[i as usize].id)
            .ok()
            .map(|k| &self.records[self.by_id[k] as usize])
    }

    /// The layer a walk needs: the open one when only open statuses can match.
    fn layer(&self, open_only: bool) -> &Layer {
        if open_only { &self.open } else { &self.all }
    }
}

/// Layer points for the records that pass `keep`, pointing at them by index.
fn points(records: &[Record], keep: impl Fn(&Record) -> bool) -> Vec<layer::Point> {
    (0u32..)
        .zip(records)
        .filter(|(_, r)| keep(r))
        .map(|(index, r)| layer::Point {
            v: unit_vector(r.position),
            index,
            service: r.service,
            status: r.status,
        })
        .collect()
}

/// Puts `records[order(k)]` at `k`, in place (a second copy of a million records would double
/// the index's peak memory while it is built): each cycle of the permutation is followed once.
fn permute(records: &mut [Record], order: impl Fn(usize) -> usize) {
    let mut done = vec![false; records.len()];
    for start in 0..records.len() {
        if done[start] {
            continue;
        }
        let first = records[start];
        let mut at = start;
        loop {
            done[at] = true;
            let from = order(at);
            if from == start {
                records[at] = first;
                break;
            }
            records[at] = records[from];
            at = from;
        }
    }
}

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

/// Visits every visible record: the base's, except those `changes` mask, then the live ones
/// of `changes`.
fn visit(base: &Base, changes: &HashMap<Uuid, Change>, mut f: impl FnMut(&Record)) {
    let masked = !changes.is_empty();
    for r in &base.records {
        if !(masked && changes.contains_key(&r.id)) {
            f(r);
        }
    }
    for c in changes.values() {
        if let Change::Live(r) = c {
            f(r);
        }
    }
}

/// A node waiting in a nearest-first walk, by the squared chord from the centre to its box.
struct Queued<'a> {
    d2: f64,
    node: NodeRef<'a>,
}

#[derive(Clone, Copy)]
enum NodeRef<'a> {
    Base(&'a ParentNode<Bucket>),
    Bucket(&'a [layer::Point]),
    Delta(&'a ParentNode<DeltaEntry>),
}

impl PartialEq for Queued<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.d2.total_cmp(&other.d2).is_eq()
    }
}

impl Eq for Queued<'_> {}

impl PartialOrd for Queued<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued<'_> {
    /// Reversed: `BinaryHeap` pops its greatest, and the walk wants the nearest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.d2.total_cmp(&self.d2)
    }
}

fn queue_if_within<'a>(
    queue: &mut BinaryHeap<Queued<'a>>,
    kept: &Kept<'_>,
    d2: f64,
    node: NodeRef<'a>,
) {
    if d2 <= kept.bound {
        queue.push(Queued { d2, node });
    }
}

/// A squared chord, ordered totally (for the heap of the nearest kept).
#[derive(Clone, Copy, PartialEq)]
struct Chord2(f64);

impl Eq for Chord2 {}

impl PartialOrd for Chord2 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Chord2 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The records a walk has kept, and the bound they set on the rest of it.
struct Kept<'a> {
    limit: usize,
    /// Every record kept within the bound of its time, in walk order (nearly nearest first).
    found: Vec<(f64, &'a Record)>,
    /// The squared chords of the `limit` nearest kept so far, farthest on top.
    nearest: BinaryHeap<Chord2>,
    /// No record past this squared chord can be among the answers (with its near-ties).
    bound: f64,
}

impl<'a> Kept<'a> {
    fn new(limit: usize, bound: f64) -> Self {
        Self {
            limit,
            found: Vec::with_capacity(limit.min(MAX_PRESIZE)),
            nearest: BinaryHeap::with_capacity(limit.min(MAX_PRESIZE) + 1),
            bound,
        }
    }

    fn offer(&mut self, d2: f64, r: &'a Record) {
        self.found.push((d2, r));
        if self.nearest.len() < self.limit {
            self.nearest.push(Chord2(d2));
            if self.nearest.len() < self.limit {
                return;
            }
        } else if let Some(mut farthest) = self.nearest.peek_mut() {
            // Past the limit, most offers are near-ties or farther: no heap work for them.
            if d2 >= farthest.0 {
                return;
            }
            *farthest = Chord2(d2);
        }
        if let Some(Chord2(farthest)) = self.nearest.peek() {
            self.bound = self.bound.min(sphere::past(*farthest));
        }
    }

    /// The answer: records within the final bound, by great-circle distance and id, cut to
    /// the limit (and to the radius, now measured exactly).
    fn into_nearest(self, radius_m: Option<f64>) -> Vec<(f64, &'a Record)> {
        let bound = self.bound;
        let mut hits: Vec<(f64, &Record)> = self
            .found
            .into_iter()
            .filter(|(d2, _)| *d2 <= bound)
            .map(|(d2, r)| (sphere::arc_m(d2), r))
            .filter(|(d, _)| radius_m.is_none_or(|radius| *d <= radius))
            .collect();
        // Ids only break exact ties: comparing them always would read every record.
        hits.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        hits.truncate(self.limit);
        hits
    }
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Live(Record),
    /// Hidden (or removed) at this change number.
    Gone(i64),
}

impl Change {
    fn seq(&self) -> i64 {
        match self {
            Self::Live(r) => r.change_seq,
            Self::Gone(s) => *s,
        }
    }
}

/// A test incident numbered `n` (id `n + 1`, reference `CP-nnnnnnnn`), new and just reported,
/// for the tests of the capabilities built on the index.
#[cfg(test)]
pub(crate) fn test_incident(
    n: u32,
    position: Position,
    (service_code, group): (&str, &str),
    status: Status,
) -> Incident {
    let now = chrono::Utc::now();
    Incident {
        id: Uuid::from_u128(u128::from(n) + 1),
        reference: Arc::from(format!("CP-{n:08}").as_str()),
        position,
        service_code: Arc::from(service_code),
        group: Arc::from(group),
        status,
        requested_at: now,
        updated_at: now,
        supporters: 0,
        duplicate_of: None,
        h3_cell: u64::from(position.h3_cell(crate::geo::REPORT_H3_RESOLUTION)),
        change_seq: 1,
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
struct Delta {
    changes: HashMap<Uuid, Change>,
    tree: RTree<DeltaEntry>,
}

impl Delta {
    fn live(&self, id: Uuid) -> Option<&Record> {
        match self.changes.get(&id) {
            Some(Change::Live(r)) => Some(r),
            _ => None,
        }
    }
}

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
            records.push(r.to_record(catalogue, &self.names));
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

    fn apply(&self, id: Uuid, change: Change) -> bool {
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

    pub fn get(&self, id: Uuid) -> Option<Incident> {
        let delta = self.read_delta();
        let base = self.base.load();
        let record = match delta.changes.get(&id) {
            Some(Change::Live(r)) => Some(r),
            Some(Change::Gone(_)) => None,
            None => base.find(id),
        };
        record.map(|r| r.incident(&self.names.table()))
    }

    /// Incidents within `radius_m` of `center` that pass `keep`, nearest first (ties by id),
    /// at most `limit`.
    pub fn nearby(
        &self,
        center: Position,
        radius_m: f64,
        limit: usize,
        keep: impl Fn(&Incident) -> bool,
    ) -> Vec<Hit> {
        let names = self.names.table();
        let any = Compiled::new(&Filter::default(), &self.names);
        self.hits(center, radius_m, limit, &any, |r| keep(&r.incident(&names)))
    }

    /// Like [`Self::nearby`] with a [`Filter`] evaluated on the compact records: the fast path.
    pub fn nearby_matching(
        &self,
        center: Position,
        radius_m: f64,
        limit: usize,
        filter: &Filter,
    ) -> Vec<Hit> {
        let compiled = Compiled::new(filter, &self.names);
        self.hits(center, radius_m, limit, &compiled, |_| true)
    }

    fn hits(
        &self,
        center: Position,
        radius_m: f64,
        limit: usize,
        compiled: &Compiled,
        keep: impl FnMut(&Record) -> bool,
    ) -> Vec<Hit> {
        let names = self.names.table();
        self.collect(
            center,
            Some(radius_m),
            limit,
            compiled,
            keep,
            |r, distance_m| Hit {
                incident: r.incident(&names),
                distance_m,
            },
        )
    }

    /// Like [`Self::nearby_matching`], returning compact records (names as indices into
    /// [`Self::names`]): the serving path of the nearby endpoint.
    pub fn nearby_compact(
        &self,
        center: Position,
        radius_m: f64,
        limit: usize,
        filter: &Filter,
    ) -> Vec<CompactHit> {
        self.compact_hits(center, Some(radius_m), limit, filter)
    }

    /// The `k` incidents nearest `center` that pass `filter`, at any distance, nearest first
    /// (ties by id), as compact records.
    pub fn nearest(&self, center: Position, k: usize, filter: &Filter) -> Vec<CompactHit> {
        self.compact_hits(center, None, k, filter)
    }

    fn compact_hits(
        &self,
        center: Position,
        radius_m: Option<f64>,
        limit: usize,
        filter: &Filter,
    ) -> Vec<CompactHit> {
        let compiled = Compiled::new(filter, &self.names);
        self.collect(
            center,
            radius_m,
            limit,
            &compiled,
            |_| true,
            |r, distance_m| CompactHit {
                incident: Compact::of(r),
                distance_m,
            },
        )
    }

    /// [`Self::scan`]'s answer, each hit made by `make`.
    fn collect<T>(
        &self,
        center: Position,
        radius_m: Option<f64>,
        limit: usize,
        compiled: &Compiled,
        keep: impl FnMut(&Record) -> bool,
        make: impl Fn(&Record, f64) -> T,
    ) -> Vec<T> {
        let mut hits = Vec::with_capacity(limit.min(MAX_PRESIZE));
        self.scan(center, radius_m, limit, compiled, keep, |r, d| {
            hits.push(make(r, d));
        });
        hits
    }

    /// The `limit` records nearest `center` (within `radius_m`, when given) that pass
    /// `compiled` and `keep`, handed to `out` nearest first (ties by id) with their
    /// great-circle distance.
    ///
    /// A best-first walk of the base trees (the open one alone for open-only queries) and the
    /// delta together: one queue of nodes by the squared chord to their boxes, popped until
    /// the nearest box lies past the bound. The bound starts at the radius and, once `limit`
    /// records are kept, shrinks to a little past the farthest of the nearest `limit`, so the
    /// near-ties at the cut are all collected before the exact order decides. Entries the
    /// bound excludes are never queued, and filtered entries are passed on their slot,
    /// without reading their records.
    fn scan(
        &self,
        center: Position,
        radius_m: Option<f64>,
        limit: usize,
        compiled: &Compiled,
        mut keep: impl FnMut(&Record) -> bool,
        mut out: impl FnMut(&Record, f64),
    ) {
        if limit == 0 {
            return;
        }
        let q = unit_vector(center);
        let delta = self.read_delta();
        let base = self.base.load();
        let masked = !delta.changes.is_empty();
        let mut kept = Kept::new(limit, radius_m.map_or(f64::INFINITY, sphere::max_chord2));
        let layer = base.layer(compiled.open_only());
        let mut queue = BinaryHeap::new();
        queue.push(Queued {
            d2: 0.0,
            node: NodeRef::Base(layer.tree.root()),
        });
        queue.push(Queued {
            d2: 0.0,
            node: NodeRef::Delta(delta.tree.root()),
        });
        while let Some(Queued { d2, node }) = queue.pop() {
            if d2 > kept.bound {
                break;
            }
            match node {
                NodeRef::Base(n) => {
                    for child in n.children() {
                        let (d2, next) = match child {
                            RTreeNode::Parent(p) => (p.envelope().distance_2(&q), NodeRef::Base(p)),
                            RTreeNode::Leaf(b) => {
                                (b.distance_2(&q), NodeRef::Bucket(layer.bucket(b)))
                            }
                        };
                        queue_if_within(&mut queue, &kept, d2, next);
                    }
                }
                NodeRef::Bucket(points) => {
                    for p in points {
                        let d2 = sphere::chord2(&p.v, &q);
                        if d2 > kept.bound || !compiled.admits(p.status, p.service) {
                            continue;
                        }
                        let r = &base.records[p.index as usize];
                        if !(masked && delta.changes.contains_key(&r.id)) && keep(r) {
                            kept.offer(d2, r);
                        }
                    }
                }
                NodeRef::Delta(n) => {
                    for child in n.children() {
                        let e = match child {
                            RTreeNode::Parent(p) => {
                                let d2 = p.envelope().distance_2(&q);
                                queue_if_within(&mut queue, &kept, d2, NodeRef::Delta(p));
                                continue;
                            }
                            RTreeNode::Leaf(e) => e,
                        };
                        let d2 = e.geom().distance_2(&q);
                        if d2 > kept.bound {
                            continue;
                        }
                        if let Some(r) = delta.live(e.data) {
                            if compiled.matches(r) && keep(r) {
                                kept.offer(d2, r);
                            }
                        }
                    }
                }
            }
        }
        for (distance_m, r) in kept.into_nearest(radius_m) {
            out(r, distance_m);
        }
    }

    /// Visits every visible record inside `bbox` (both parts of one crossing the antimeridian).
    fn for_each_in_bbox(&self, bbox: &BBox, f: impl FnMut(&Record)) {
        let any = Compiled::new(&Filter::default(), &self.names);
        self.for_each_in_bbox_where(bbox, &any, f);
    }

    /// Visits every visible record inside `bbox` that passes `compiled`: tested on the tree
    /// entries' slots, so records filtered out are never read, and the closed tree is not
    /// walked at all for an open-only filter.
    fn for_each_in_bbox_where(&self, bbox: &BBox, compiled: &Compiled, mut f: impl FnMut(&Record)) {
        let delta = self.read_delta();
        let base = self.base.load();
        let masked = !delta.changes.is_empty();
        // A box's hits are taken a chunk at a time: first every hit's position is tested in a
        // loop of independent loads, so the cache misses overlap instead of queueing behind
        // the visitor's work; then the hits inside are visited, their records now in cache.
        let mut visit_chunk = |part: &BBox, hits: &[u32]| {
            let mut inside = [false; CHUNK];
            for (inside, &i) in inside.iter_mut().zip(hits) {
                *inside = part.contains(base.records[i as usize].position);
            }
            for (&inside, &i) in inside.iter().zip(hits) {
                let r = &base.records[i as usize];
                if inside && !(masked && delta.changes.contains_key(&r.id)) {
                    f(r);
                }
            }
        };
        for part in bbox.parts() {
            let env = sphere::envelope(&part);
            let mut hits = [0u32; CHUNK];
            let mut n = 0;
            base.layer(compiled.open_only()).for_each_in(&env, |p| {
                if !compiled.admits(p.status, p.service) {
                    return;
                }
                hits[n] = p.index;
                n += 1;
                if n == CHUNK {
                    visit_chunk(&part, &hits);
                    n = 0;
                }
            });
            visit_chunk(&part, &hits[..n]);
        }
        for part in bbox.parts() {
            let env = sphere::envelope(&part);
            for e in delta.tree.locate_in_envelope(&env) {
                if let Some(r) = delta.live(e.data) {
                    if part.contains(r.position) && compiled.matches(r) {
                        f(r);
                    }
                }
            }
        }
    }

    /// Visits every visible record.
    fn for_each(&self, f: impl FnMut(&Record)) {
        let delta = self.read_delta();
        visit(&self.base.load(), &delta.changes, f);
    }

    /// Incidents inside a box that pass `keep`, in no particular order.
    pub fn in_bbox(&self, bbox: &BBox, keep: impl Fn(&Incident) -> bool) -> Vec<Incident> {
        let names = self.names.table();
        let mut out = Vec::new();
        self.for_each_in_bbox(bbox, |r| {
            let i = r.incident(&names);
            if keep(&i) {
                out.push(i);
            }
        });
        out
    }

    /// Like [`Self::in_bbox`] with a [`Filter`] evaluated on the compact records.
    pub fn in_bbox_matching(&self, bbox: &BBox, filter: &Filter) -> Vec<Incident> {
        let compiled = Compiled::new(filter, &self.names);
        let names = self.names.table();
        let mut out = Vec::new();
        self.for_each_in_bbox_where(bbox, &compiled, |r| out.push(r.incident(&names)));
        out
    }

    /// Visits every visible incident inside `bbox` that passes `filter`, as a [`Compact`]
    /// copied from the stored record: no strings are built, so a tile can walk hundreds of
    /// thousands of them. Delta entries mask the base's copies, as in every other query.
    /// Names (`service`, `group`) are indices into [`Self::names`].
    pub fn visit_matching(&self, bbox: &BBox, filter: &Filter, mut f: impl FnMut(&Compact)) {
        let compiled = Compiled::new(filter, &self.names);
        self.for_each_in_bbox_where(bbox, &compiled, |r| f(&Compact::of(r)));
    }

    /// Visits every visible incident passing `filter`, like [`Self::visit_matching`].
    pub fn visit_all_matching(&self, filter: &Filter, mut f: impl FnMut(&Compact)) {
        let compiled = Compiled::new(filter, &self.names);
        self.for_each(|r| {
            if compiled.matches(r) {
                f(&Compact::of(r));
            }
        });
    }

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

    /// One visible incident as a [`Compact`].
    pub fn compact(&self, id: Uuid) -> Option<Compact> {
        let delta = self.read_delta();
        let base = self.base.load();
        match delta.changes.get(&id) {
            Some(Change::Live(r)) => Some(Compact::of(r)),
            Some(Change::Gone(_)) => None,
            None => base.find(id).map(Compact::of),
        }
    }

    /// The interned service codes and group names that [`Compact`] indexes into. Names are
    /// only ever appended, so a table taken after a visit resolves every index it saw.
    pub fn names(&self) -> Arc<Vec<Arc<str>>> {
        self.names.table().clone()
    }

    /// Incidents per H3 cell at `res` (coarser than or equal to the stored resolution 9; a
    /// finer one counts the stored cells) for those passing `filter`, optionally inside `bbox`.
    /// Computed from the records on demand: a pass over a million takes tens of milliseconds,
    /// and any filter works, which counts kept per filter could not offer.
    pub fn h3_counts(
        &self,
        res: Resolution,
        bbox: Option<&BBox>,
        filter: &Filter,
    ) -> HashMap<CellIndex, u32> {
        let compiled = Compiled::new(filter, &self.names);
        let mut counts: HashMap<CellIndex, u32> = HashMap::new();
        let mut count = |r: &Record| {
            if !compiled.matches(r) {
                return;
            }
            let Ok(cell) = CellIndex::try_from(r.h3_cell) else {
                return;
            };
            let cell = cell.parent(res).unwrap_or(cell);
            *counts.entry(cell).or_default() += 1;
        };
        match bbox {
            Some(b) => self.for_each_in_bbox(b, &mut count),
            None => self.for_each(&mut count),
        }
        counts
    }

    fn read_delta(&self) -> RwLockReadGuard<'_, Delta> {
        self.delta.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_delta(&self) -> RwLockWriteGuard<'_, Delta> {
        self.delta.write().unwrap_or_else(PoisonError::into_inner)
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

    fn incident(lon: f64, lat: f64, seq: i64) -> Incident {
        let position = Position::new(lon, lat).unwrap();
        Incident {
            id: Uuid::now_v7(),
            reference: Arc::from("CP-0000-0000"),
            position,
            service_code: Arc::from("pothole"),
            group: Arc::from("Roads"),
            status: Status::New,
            requested_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            updated_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            supporters: 0,
            duplicate_of: None,
            h3_cell: position.h3_cell(crate::geo::REPORT_H3_RESOLUTION).into(),
            change_seq: seq,
        }
    }

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
    fn nearby_is_sorted_by_distance_and_bounded_by_radius() {
        let idx = SpatialIndex::new();
        let near = incident(-118.2500, 34.0500, 1);
        let mid = incident(-118.2510, 34.0500, 2); // ~92 m east
        let far = incident(-118.2600, 34.0500, 3); // ~920 m
        idx.replace_all(vec![far.clone(), near.clone(), mid.clone()]);
        let c = Position::new(-118.2500, 34.0500).unwrap();
        let hits = idx.nearby(c, 500.0, 10, |_| true);
        let ids: Vec<Uuid> = hits.iter().map(|h| h.incident.id).collect();
        assert_eq!(ids, vec![near.id, mid.id]);
        assert!(
            (hits[1].distance_m - 92.2).abs() < 1.0,
            "{}",
            hits[1].distance_m
        );
    }

    #[test]
    fn nearby_finds_points_across_the_antimeridian() {
        let idx = SpatialIndex::new();
        let east = incident(179.9995, 10.0, 1);
        idx.replace_all(vec![east.clone()]);
        let c = Position::new(-179.9995, 10.0).unwrap();
        let hits = idx.nearby(c, 500.0, 10, |_| true);
        assert_eq!(hits.len(), 1);
        assert!(hits[0].distance_m < 120.0);
    }

    #[test]
    fn nearby_near_a_pole_searches_every_longitude() {
        let idx = SpatialIndex::new();
        let other_side = incident(10.0, 89.9995, 1);
        idx.replace_all(vec![other_side.clone()]);
        let c = Position::new(-170.0, 89.9995).unwrap();
        assert_eq!(idx.nearby(c, 500.0, 10, |_| true).len(), 1);
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

    /// A small deterministic generator, so these tests need no extra crate.
    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn brute_force(all: &[Incident], c: Position, radius: f64, limit: usize) -> Vec<Uuid> {
        brute_force_where(all, c, radius, limit, |_| true)
    }

    fn brute_force_where(
        all: &[Incident],
        c: Position,
        radius: f64,
        limit: usize,
        keep: impl Fn(&Incident) -> bool,
    ) -> Vec<Uuid> {
        let mut v: Vec<(f64, Uuid)> = all
            .iter()
            .filter(|i| keep(i))
            .map(|i| (c.distance_m(i.position), i.id))
            .filter(|(d, _)| *d <= radius)
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v.into_iter().take(limit).map(|(_, id)| id).collect()
    }

    #[test]
    fn base_and_delta_together_answer_like_a_brute_force_scan() {
        let mut s = 7;
        // Every status, so both base trees hold incidents, and two services.
        let mut all: Vec<Incident> = (0..2000)
            .map(|i| {
                let mut inc = incident(-118.3 + lcg(&mut s) * 0.1, 34.0 + lcg(&mut s) * 0.1, i);
                inc.status = Status::ALL[i as usize % Status::ALL.len()];
                if i % 5 == 0 {
                    inc.service_code = Arc::from("graffiti");
                }
                inc
            })
            .collect();
        let idx = SpatialIndex::from_incidents(all[..1500].to_vec());
        for i in &all[1500..] {
            idx.upsert(i.clone());
        }
        // Move some base incidents, hide others: the delta masks the base's copies.
        for (n, i) in all.iter_mut().take(300).enumerate() {
            i.change_seq += 10_000;
            if n % 3 == 0 {
                idx.remove_at(i.id, i.change_seq);
            } else {
                i.position = Position::new(-118.3 + lcg(&mut s) * 0.1, 34.05).unwrap();
                idx.upsert(i.clone());
            }
        }
        let visible: Vec<Incident> = all
            .iter()
            .enumerate()
            .filter(|(n, _)| !(*n < 300 && n % 3 == 0))
            .map(|(_, i)| i.clone())
            .collect();
        assert_eq!(idx.len(), visible.len());
        let check = |idx: &SpatialIndex| {
            let mut s = 99;
            for _ in 0..50 {
                let c =
                    Position::new(-118.3 + lcg(&mut s) * 0.1, 34.0 + lcg(&mut s) * 0.1).unwrap();
                let r = 200.0 + lcg(&mut s) * 2000.0;
                let got: Vec<Uuid> = idx
                    .nearby(c, r, 40, |_| true)
                    .iter()
                    .map(|h| h.incident.id)
                    .collect();
                assert_eq!(got, brute_force(&visible, c, r, 40));
                let k: Vec<Uuid> = idx
                    .nearest(c, 20, &Filter::default())
                    .iter()
                    .map(|h| h.incident.id)
                    .collect();
                assert_eq!(k, brute_force(&visible, c, f64::INFINITY, 20));
                let open_graffiti = Filter {
                    statuses: Filter::open().statuses,
                    service_codes: vec!["graffiti".into()],
                };
                for filter in [Filter::open(), open_graffiti] {
                    let got: Vec<Uuid> = idx
                        .nearby_matching(c, r, 15, &filter)
                        .iter()
                        .map(|h| h.incident.id)
                        .collect();
                    let want = brute_force_where(&visible, c, r, 15, |i| {
                        filter.statuses.contains(&i.status)
                            && (filter.service_codes.is_empty()
                                || filter.service_codes.iter().any(|s| **s == *i.service_code))
                    });
                    assert_eq!(got, want, "{filter:?}");
                }
            }
        };
        check(&idx);
        idx.fold();
        assert_eq!(idx.delta_len(), 0);
        assert_eq!(idx.len(), visible.len());
        check(&idx);
    }

    #[test]
    fn open_only_queries_see_incidents_opened_and_closed_since_the_base_was_built() {
        let mut s = 11;
        let mut all: Vec<Incident> = (0..1500)
            .map(|i| {
                let mut inc = incident(-118.3 + lcg(&mut s) * 0.05, 34.0 + lcg(&mut s) * 0.05, i);
                if i % 4 != 0 {
                    inc.status = Status::Fixed;
                }
                inc
            })
            .collect();
        let idx = SpatialIndex::from_incidents(all.clone());
        // Close some open ones and reopen some closed ones after the base was built.
        for (n, i) in all.iter_mut().enumerate().take(400) {
            i.change_seq += 10_000;
            i.status = if i.status.is_open() {
                Status::Fixed
            } else if n % 2 == 1 {
                Status::InProgress
            } else {
                continue;
            };
            idx.upsert(i.clone());
        }
        let open: Vec<Incident> = all.iter().filter(|i| i.status.is_open()).cloned().collect();
        let check = |idx: &SpatialIndex| {
            let mut s = 5;
            for _ in 0..40 {
                let c =
                    Position::new(-118.3 + lcg(&mut s) * 0.05, 34.0 + lcg(&mut s) * 0.05).unwrap();
                let r = 100.0 + lcg(&mut s) * 3000.0;
                let got: Vec<Uuid> = idx
                    .nearby_matching(c, r, 30, &Filter::open())
                    .iter()
                    .map(|h| h.incident.id)
                    .collect();
                assert_eq!(got, brute_force(&open, c, r, 30));
                let k: Vec<Uuid> = idx
                    .nearest(c, 10, &Filter::open())
                    .iter()
                    .map(|h| h.incident.id)
                    .collect();
                assert_eq!(k, brute_force(&open, c, f64::INFINITY, 10));
            }
        };
        check(&idx);
        idx.fold();
        check(&idx);
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

    #[test]
    fn in_bbox_handles_the_antimeridian_and_filters() {
        let west = incident(-179.5, 0.0, 1);
        let east = incident(179.5, 0.0, 2);
        let mut fixed = incident(179.6, 0.1, 3);
        fixed.status = Status::Fixed;
        let elsewhere = incident(0.0, 0.0, 4);
        let idx = SpatialIndex::from_incidents(vec![west.clone(), east.clone(), elsewhere]);
        idx.upsert(fixed.clone());
        let b = BBox::parse("179,-1,-179,1").unwrap();
        let mut ids: Vec<Uuid> = idx.in_bbox(&b, |_| true).iter().map(|i| i.id).collect();
        ids.sort();
        let mut want = vec![west.id, east.id, fixed.id];
        want.sort();
        assert_eq!(ids, want);
        assert_eq!(idx.in_bbox_matching(&b, &Filter::open()).len(), 2);
    }

    #[test]
    fn every_layer_point_is_in_one_bucket_and_points_at_its_record() {
        let mut state = 99;
        let all: Vec<Incident> = (0..3000)
            .map(|n| {
                let mut i = incident(
                    -118.5 + lcg(&mut state) * 0.5,
                    33.8 + lcg(&mut state) * 0.5,
                    n,
                );
                i.status = Status::ALL[n as usize % Status::ALL.len()];
                i.service_code = Arc::from(["pothole", "graffiti", "dumping"][n as usize % 3]);
                i
            })
            .collect();
        let idx = SpatialIndex::from_incidents(all.clone());
        let base = idx.base.load();
        let open = all.iter().filter(|i| i.status.is_open()).count();
        assert!(open > 0 && open < all.len());
        for (layer, len) in [(&base.all, all.len()), (&base.open, open)] {
            assert_eq!(layer.points.len(), len);
            // The buckets cover the points once, in order, each inside its box.
            let mut buckets: Vec<&Bucket> = layer.tree.iter().collect();
            buckets.sort_by_key(|b| b.data.0);
            let mut next = 0;
            for b in buckets {
                assert_eq!(b.data.0, next);
                next = b.data.1;
                for p in layer.bucket(b) {
                    assert!(rstar::Envelope::contains_point(
                        &rstar::RTreeObject::envelope(b.geom()),
                        &p.v
                    ));
                }
            }
            assert_eq!(next as usize, len);
            for p in &layer.points {
                let r = &base.records[p.index as usize];
                assert!(sphere::chord2(&p.v, &unit_vector(r.position)) < 1e-30);
                assert_eq!((p.status, p.service), (r.status, r.service));
            }
        }
        assert!(
            base.open
                .points
                .iter()
                .all(|p| compact::status_from_u8(p.status).is_open())
        );
        assert!((0u32..).zip(&base.all.points).all(|(k, p)| p.index == k));
        // The leaf order is a permutation: every incident still found by id, unchanged.
        for i in &all {
            assert_eq!(idx.get(i.id).as_ref(), Some(i));
        }
    }

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

    #[test]
    fn visiting_compact_records_sees_the_delta_instead_of_the_base_copies() {
        let moved = incident(-118.25, 34.05, 1);
        let hidden = incident(-118.251, 34.051, 2);
        let stays = incident(-118.252, 34.052, 3);
        let idx = SpatialIndex::from_incidents(vec![moved.clone(), hidden.clone(), stays.clone()]);
        let mut away = moved.clone();
        away.position = Position::new(-117.0, 33.0).unwrap();
        away.change_seq = 10;
        idx.upsert(away);
        idx.remove_at(hidden.id, 10);
        let mut fixed = incident(-118.2505, 34.0505, 11);
        fixed.status = Status::Fixed;
        idx.upsert(fixed.clone());
        let b = BBox::parse("-118.3,34,-118.2,34.1").unwrap();
        let mut seen = Vec::new();
        idx.visit_matching(&b, &Filter::default(), |c| seen.push(*c));
        seen.sort_by_key(|c| c.id);
        let mut want = vec![stays.id, fixed.id];
        want.sort();
        assert_eq!(seen.iter().map(|c| c.id).collect::<Vec<_>>(), want);
        let s = seen.iter().find(|c| c.id == stays.id).unwrap();
        assert_eq!(s.reference(), &*stays.reference);
        assert_eq!(&*idx.names()[usize::from(s.group)], &*stays.group);
        let mut open = 0;
        idx.visit_matching(&b, &Filter::open(), |_| open += 1);
        assert_eq!(open, 1);
    }

    #[test]
    fn h3_counts_roll_up_to_coarser_cells() {
        let a = incident(-118.25, 34.05, 1);
        let b = incident(-118.2501, 34.0501, 2);
        let far = incident(-117.0, 33.0, 3);
        let idx = SpatialIndex::from_incidents(vec![a.clone(), b, far]);
        let counts = idx.h3_counts(Resolution::Five, None, &Filter::default());
        let parent = CellIndex::try_from(a.h3_cell)
            .unwrap()
            .parent(Resolution::Five)
            .unwrap();
        assert_eq!(counts.get(&parent), Some(&2));
        assert_eq!(counts.values().sum::<u32>(), 3);
        let bbox = BBox::parse("-118.3,34,-118.2,34.1").unwrap();
        let inside = idx.h3_counts(Resolution::Five, Some(&bbox), &Filter::default());
        assert_eq!(inside.values().sum::<u32>(), 2);
    }
}
