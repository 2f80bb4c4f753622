//! The walks the queries are built on: best-first by distance over the base and the delta
//! together (`scan`), by box, and over every visible record.

use std::collections::{BinaryHeap, HashMap};

use rstar::{ParentNode, PointDistance, RTreeNode};
use uuid::Uuid;

use super::base::Base;
use super::compact::{Compiled, Record};
use super::delta::{Change, DeltaEntry};
use super::layer::{self, Bucket};
use super::sphere::{self, unit_vector};
use super::{Filter, SpatialIndex};
use crate::geo::{BBox, Position};

/// Most result slots reserved up front: a limit of `usize::MAX` (Open311) must not reserve it.
const MAX_PRESIZE: usize = 512;

/// Tree hits tested together before any is visited (see `for_each_in_bbox_where`).
const CHUNK: usize = 64;

/// Visits every visible record: the base's, except those `changes` mask, then the live ones
/// of `changes`.
pub(super) fn visit(base: &Base, changes: &HashMap<Uuid, Change>, mut f: impl FnMut(&Record)) {
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

impl SpatialIndex {
    /// [`Self::scan`]'s answer, each hit made by `make`.
    pub(super) fn collect<T>(
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
    pub(super) fn for_each_in_bbox(&self, bbox: &BBox, f: impl FnMut(&Record)) {
        let any = Compiled::new(&Filter::default(), &self.names);
        self.for_each_in_bbox_where(bbox, &any, f);
    }

    /// Visits every visible record inside `bbox` that passes `compiled`: tested on the tree
    /// entries' slots, so records filtered out are never read, and the closed tree is not
    /// walked at all for an open-only filter.
    pub(super) fn for_each_in_bbox_where(
        &self,
        bbox: &BBox,
        compiled: &Compiled,
        mut f: impl FnMut(&Record),
    ) {
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
    pub(super) fn for_each(&self, f: impl FnMut(&Record)) {
        let delta = self.read_delta();
        visit(&self.base.load(), &delta.changes, f);
    }
}
