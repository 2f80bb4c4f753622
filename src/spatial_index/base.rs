//! The immutable base: every record in its layer's order, a layer of every incident and one of
//! the open ones, and tombstones, built in one pass (at load and by each fold).

use std::collections::HashMap;

use uuid::Uuid;

use super::compact::Record;
use super::layer::{self, Layer};
use super::sphere::unit_vector;

/// An immutable snapshot: a searchable layer of every incident and one of the open ones; the
/// records in the first layer's order; their positions by id (binary search serves `get`, so
/// no hash map); and tombstones of hidden incidents.
#[derive(Default)]
pub(super) struct Base {
    /// In the order of `all`'s points: a query's hits sit in a few buckets, so their records
    /// sit in a few runs of memory instead of one cache line each.
    pub(super) records: Vec<Record>,
    /// Indexes into `records`, in id order.
    pub(super) by_id: Vec<u32>,
    /// Every incident.
    pub(super) all: Layer,
    /// The open incidents again: crews ask for open ones, and in a city's history most
    /// incidents are closed (99.8 % of the LA sample), so a walk of `all` for them would
    /// visit mostly misses, while this copy costs little. (Two disjoint layers, open and
    /// closed, would save the copy but make every any-status query walk two trees, which
    /// measured about 37 % slower at p50.)
    pub(super) open: Layer,
    /// Hidden incidents and the change that hid them, so a stale copy cannot come back.
    pub(super) gone: HashMap<Uuid, i64>,
}

impl Base {
    pub(super) fn build(mut records: Vec<Record>, gone: HashMap<Uuid, i64>) -> Self {
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

    pub(super) fn find(&self, id: Uuid) -> Option<&Record> {
        self.by_id
            .binary_search_by_key(&id, |&i| self.records[i as usize].id)
            .ok()
            .map(|k| &self.records[self.by_id[k] as usize])
    }

    /// The layer a walk needs: the open one when only open statuses can match.
    pub(super) fn layer(&self, open_only: bool) -> &Layer {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Status;
    use crate::spatial_index::compact;
    use crate::spatial_index::layer::Bucket;
    use crate::spatial_index::sphere;
    use crate::spatial_index::testing::{incident, lcg};
    use crate::spatial_index::{Incident, SpatialIndex};

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
}
