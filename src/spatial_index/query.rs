//! The queries: by id, by distance (within a radius or the k nearest, as incidents or compact
//! records) and by box, and the hits they return.

use uuid::Uuid;

use super::compact::{Compiled, Record};
use super::delta::Change;
use super::{Compact, Filter, Incident, SpatialIndex};
use crate::geo::{BBox, Position};

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

impl SpatialIndex {
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

    /// The `(requested_at in µs, id)` of every incident within `radius_m` of `center` that
    /// passes `filter` and `keep` (given the request and update times in µs), in no useful
    /// order: lists ordered by time (Open311's) take only what they sort on, and no incident
    /// is built for a hit the page will not show.
    pub fn times_within(
        &self,
        center: Position,
        radius_m: f64,
        filter: &Filter,
        keep: impl Fn(i64, i64) -> bool,
    ) -> Vec<(i64, Uuid)> {
        // No best-first walk: the caller orders by time, so the hits are visited box by box
        // (the circle's bounding boxes, two across the antimeridian) and kept by distance.
        let compiled = Compiled::new(filter, &self.names);
        let mut out = Vec::new();
        for b in crate::geo::circle_bboxes(center, radius_m) {
            self.for_each_in_bbox_where(&b, &compiled, |r| {
                if center.distance_m(r.position) <= radius_m && keep(r.requested_us, r.updated_us) {
                    out.push((r.requested_us, r.id));
                }
            });
        }
        out
    }

    /// [`Self::times_within`] for a box.
    pub fn times_in_bbox(
        &self,
        bbox: &BBox,
        filter: &Filter,
        keep: impl Fn(i64, i64) -> bool,
    ) -> Vec<(i64, Uuid)> {
        let compiled = Compiled::new(filter, &self.names);
        let mut out = Vec::new();
        self.for_each_in_bbox_where(bbox, &compiled, |r| {
            if keep(r.requested_us, r.updated_us) {
                out.push((r.requested_us, r.id));
            }
        });
        out
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Status;
    use crate::spatial_index::testing::{incident, lcg};

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
}
