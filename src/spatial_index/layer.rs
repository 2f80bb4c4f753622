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

/// Node sizes of the temporary point tree whose leaves become the buckets. rstar's bulk load
/// cuts every level into 2³ = 8 slabs for a 3-D tree while a node holds more than the maximum,
/// so with 64 the buckets hold 8–64 points (about 30 for a million).
struct Grouping;

impl rstar::RTreeParams for Grouping {
    const MIN_SIZE: usize = 20;
    const MAX_SIZE: usize = 64;
    const REINSERTION_COUNT: usize = 8;
    type DefaultInsertionStrategy = rstar::RStarInsertionStrategy;
}

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
    /// Groups `points` into buckets of nearby ones (reordering them) and indexes the buckets.
    pub fn build(points: &[Point]) -> Self {
        let grouping: RTree<GeomWithData<Point3, u32>, Grouping> = RTree::bulk_load_with_params(
            (0u32..)
                .zip(points)
                .map(|(i, p)| GeomWithData::new(p.v, i))
                .collect(),
        );
        let mut ordered = Vec::with_capacity(points.len());
        let mut buckets = Vec::new();
        collect_buckets(grouping.root(), points, &mut ordered, &mut buckets);
        Self {
            points: ordered,
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
        fn nodes(n: &ParentNode<Bucket>) -> usize {
            std::mem::size_of_val(n.children())
                + n.children()
                    .iter()
                    .map(|c| match c {
                        RTreeNode::Parent(p) => nodes(p),
                        RTreeNode::Leaf(_) => 0,
                    })
                    .sum::<usize>()
        }
        self.points.capacity() * std::mem::size_of::<Point>() + nodes(self.tree.root())
    }
}

fn inside(env: &AABB<Point3>, v: &Point3) -> bool {
    let (lo, hi) = (env.lower(), env.upper());
    (0..3).all(|k| lo[k] <= v[k] && v[k] <= hi[k])
}

/// Appends the leaves of the grouping tree, in its order, as buckets: a node whose children
/// are all points is one bucket; a point beside subtrees is a bucket of its own.
fn collect_buckets(
    node: &ParentNode<GeomWithData<Point3, u32>>,
    points: &[Point],
    ordered: &mut Vec<Point>,
    buckets: &mut Vec<Bucket>,
) {
    let leaf = |c: &RTreeNode<GeomWithData<Point3, u32>>| match c {
        RTreeNode::Leaf(e) => Some(points[e.data as usize]),
        RTreeNode::Parent(_) => None,
    };
    if node.children().iter().all(|c| leaf(c).is_some()) {
        let start = ordered.len();
        ordered.extend(node.children().iter().filter_map(leaf));
        close_bucket(start, ordered, buckets);
        return;
    }
    for c in node.children() {
        match c {
            RTreeNode::Parent(p) => collect_buckets(p, points, ordered, buckets),
            RTreeNode::Leaf(e) => {
                let start = ordered.len();
                ordered.push(points[e.data as usize]);
                close_bucket(start, ordered, buckets);
            }
        }
    }
}

/// Makes the points from `start` on a bucket.
fn close_bucket(start: usize, ordered: &[Point], buckets: &mut Vec<Bucket>) {
    let Some(first) = ordered.get(start) else {
        return;
    };
    let (mut lo, mut hi) = (first.v, first.v);
    for p in &ordered[start..] {
        for k in 0..3 {
            lo[k] = lo[k].min(p.v[k]);
            hi[k] = hi[k].max(p.v[k]);
        }
    }
    // At most 2³² points: the base's indices are u32 too.
    let range = (start as u32, ordered.len() as u32);
    buckets.push(Bucket::new(Rectangle::from_corners(lo, hi), range));
}
