//! One searchable layer of the base: its incidents' points in buckets of a few dozen nearby
//! ones, contiguous in one array, and an R-tree (rstar) over the buckets' boxes.
//!
//! Why buckets: an R-tree of single points keeps every point in a 72-byte node slot, so a
//! radius-500 m query over a million incidents reads ~17 KB of scattered slots, and it spent
//! 9 µs of its 11 µs there. Here a query reads a few boxes, then runs through whole buckets of
//! 32-byte points in order: half the bytes, mostly sequential, and the tree shrinks to a few
//! bytes per incident. BENCHMARKS.md has the measurements.

use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, ParentNode, RTree, RTreeNode};

use super::sphere::Point3;

/// One incident in a layer: its unit vector, its record's index in the base, and the fields
/// filters test, so a filtered walk passes over points without reading their records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Point {
    pub v: Point3,
    pub index: u32,
    pub service: u16,
    pub status: u8,
}

/// A bucket in the tree: its points' box and their range in [`Layer::points`].
pub(super) type Bucket = GeomWithData<Rectangle<Point3>, (u32, u32)>;

/// Most points a bucket holds; halving leaves buckets of 33 to 64 (fewer in a small layer).
const BUCKET: usize = 64;

/// Node sizes of the tree over the buckets: 2³ = 8 children a node. Of 6, 9 and 27, 9 walked
/// fastest (BENCHMARKS.md).
pub(super) struct Fanout;

impl rstar::RTreeParams for Fanout {
    const MIN_SIZE: usize = 3;
    const MAX_SIZE: usize = 9;
    const REINSERTION_COUNT: usize = 2;
    type DefaultInsertionStrategy = rstar::RStarInsertionStrategy;
}

#[derive(Default)]
pub(super) struct Layer {
    /// Bucket by bucket, each bucket's points together.
    pub points: Vec<Point>,
    pub tree: RTree<Bucket, Fanout>,
}

impl Layer {
    /// Groups `points` into buckets of nearby ones (reordering them in place) and indexes the
    /// buckets.
    pub fn build(mut points: Vec<Point>) -> Self {
        // A filtered collect can leave up to twice the capacity it needs.
        points.shrink_to_fit();
        let mut buckets = Vec::with_capacity(points.len() / (BUCKET / 2) + 1);
        split(&mut points, 0, &mut buckets);
        Self {
            points,
            tree: RTree::bulk_load_with_params(buckets),
        }
    }

    /// The points of a bucket.
    pub fn bucket(&self, b: &Bucket) -> &[Point] {
        &self.points[b.data.0 as usize..b.data.1 as usize]
    }

    /// Visits the points inside `env` (a cheap box test on the contiguous points).
    pub fn for_each_in(&self, env: &AABB<Point3>, mut f: impl FnMut(&Point)) {
        for b in self.tree.locate_in_envelope_intersecting(env) {
            for p in self.bucket(b) {
                if inside(env, &p.v) {
                    f(p);
                }
            }
        }
    }

    /// Heap bytes: the points and the tree's nodes.
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<Point>() + node_bytes(self.tree.root())
    }
}

/// Heap bytes of an rstar tree's nodes under `n` (their child vectors, by length: rstar does
/// not show their capacity).
pub(super) fn node_bytes<T: rstar::RTreeObject>(n: &ParentNode<T>) -> usize {
    std::mem::size_of_val(n.children())
        + n.children()
            .iter()
            .map(|c| match c {
                RTreeNode::Parent(p) => node_bytes(p),
                RTreeNode::Leaf(_) => 0,
            })
            .sum::<usize>()
}

fn inside(env: &AABB<Point3>, v: &Point3) -> bool {
    let (lo, hi) = (env.lower(), env.upper());
    (0..3).all(|k| lo[k] <= v[k] && v[k] <= hi[k])
}

/// Cuts `points` (which start at `offset` in the layer) at the median of their widest axis
/// until each part fits in a bucket, in place: like a k-d tree's build, with no tree left over
/// (a temporary R-tree of single points for the grouping would cost the allocator ~75 bytes
/// per incident that it does not give back).
fn split(points: &mut [Point], offset: usize, buckets: &mut Vec<Bucket>) {
    if points.len() <= BUCKET {
        close_bucket(points, offset, buckets);
        return;
    }
    let (lo, hi) = bounds(points);
    let axis = (0..3)
        .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
        .unwrap_or(0);
    let mid = points.len() / 2;
    points.select_nth_unstable_by(mid, |a, b| a.v[axis].total_cmp(&b.v[axis]));
    let (left, right) = points.split_at_mut(mid);
    split(left, offset, buckets);
    split(right, offset + mid, buckets);
}

fn bounds(points: &[Point]) -> (Point3, Point3) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in points {
        for k in 0..3 {
            lo[k] = lo[k].min(p.v[k]);
            hi[k] = hi[k].max(p.v[k]);
        }
    }
    (lo, hi)
}

/// Makes `points`, which start at `offset` in the layer, a bucket.
fn close_bucket(points: &[Point], offset: usize, buckets: &mut Vec<Bucket>) {
    if points.is_empty() {
        return;
    }
    let (lo, hi) = bounds(points);
    // At most 2³² points: the base's indices are u32 too.
    let range = (offset as u32, (offset + points.len()) as u32);
    buckets.push(Bucket::new(Rectangle::from_corners(lo, hi), range));
}
