//! The live in-memory index of incidents: an R-tree (rstar) over lon/lat for radius, box and
//! nearest queries, plus each incident's H3 cell. A cache of PostGIS: bulk-loaded at start-up
//! and updated right after every commit.

pub mod changes;
pub mod http;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use rstar::RTree;
use rstar::primitives::GeomWithData;
use sqlx::PgPool;
use uuid::Uuid;

use crate::geo::{BBox, EARTH_RADIUS_M, Position};
use crate::reports::catalogue::Catalogue;
use crate::reports::model::{Report, Status};

/// What the index knows of one incident: public fields only.
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
        let group: Arc<str> = catalogue
            .get(&r.service_code)
            .map_or_else(|| Arc::from("Other"), |s| Arc::from(s.group.as_str()));
        Self {
            id: r.id,
            reference: Arc::from(r.reference.as_str()),
            position: r.position(),
            service_code: Arc::from(r.service_code.as_str()),
            group,
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

type Entry = GeomWithData<[f64; 2], Uuid>;

#[derive(Default)]
struct Inner {
    tree: RTree<Entry>,
    by_id: HashMap<Uuid, Incident>,
}

/// The index. Cheap to share (`Arc`); readers take a read lock for the length of one query.
#[derive(Default)]
pub struct SpatialIndex {
    inner: RwLock<Inner>,
    loaded: AtomicBool,
    /// The highest change number applied, for reconciliation.
    last_seq: AtomicI64,
    /// Announces each write to caches built on the index (tiles).
    changes: changes::ChangeFeed,
}

/// A query hit with its great-circle distance from the query centre.
#[derive(Clone, Debug)]
pub struct Hit {
    pub incident: Incident,
    pub distance_m: f64,
}

impl SpatialIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole content (bulk load: the R-tree is built in one pass, which gives a
    /// better tree than inserting one by one).
    pub fn replace_all(&self, incidents: Vec<Incident>) {
        let max_seq = incidents.iter().map(|i| i.change_seq).max().unwrap_or(0);
        let entries: Vec<Entry> = incidents
            .iter()
            .map(|i| Entry::new([i.position.lon(), i.position.lat()], i.id))
            .collect();
        let by_id = incidents.into_iter().map(|i| (i.id, i)).collect();
        let tree = RTree::bulk_load(entries);
        *self.write() = Inner { tree, by_id };
        self.last_seq.fetch_max(max_seq, Ordering::AcqRel);
        self.loaded.store(true, Ordering::Release);
        self.changes.send(changes::Change::Reloaded);
    }

    /// Loads every incident from `PostGIS`.
    pub async fn load(&self, pool: &PgPool, catalogue: &Catalogue) -> Result<usize, sqlx::Error> {
        let sql = format!(
            "SELECT {} FROM reports r WHERE NOT r.hidden",
            crate::reports::store::REPORT_COLUMNS
        );
        let mut rows = sqlx::query_as::<_, Report>(&sql).fetch(pool);
        let mut incidents = Vec::new();
        while let Some(r) = rows.try_next().await? {
            incidents.push(Incident::from_report(&r, catalogue));
        }
        let n = incidents.len();
        self.replace_all(incidents);
        Ok(n)
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Inserts or replaces one incident; an older change never overwrites a newer one.
    pub fn upsert(&self, incident: Incident) {
        let mut inner = self.write();
        let mut old_position = None;
        if let Some(old) = inner.by_id.get(&incident.id) {
            if old.change_seq > incident.change_seq {
                return;
            }
            old_position = Some(old.position);
            let old_entry = Entry::new([old.position.lon(), old.position.lat()], old.id);
            inner.tree.remove(&old_entry);
        }
        inner.tree.insert(Entry::new(
            [incident.position.lon(), incident.position.lat()],
            incident.id,
        ));
        self.last_seq
            .fetch_max(incident.change_seq, Ordering::AcqRel);
        let new_position = Some(incident.position);
        inner.by_id.insert(incident.id, incident);
        // Sent under the write lock: a reader that sees the change then reads the new state.
        self.changes.send(changes::Change::Incident {
            old: old_position,
            new: new_position,
        });
    }

    /// Subscribes to every later write (see [`changes::Change`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<changes::Change> {
        self.changes.subscribe()
    }

    pub fn remove(&self, id: Uuid) {
        let mut inner = self.write();
        if let Some(old) = inner.by_id.remove(&id) {
            inner.tree.remove(&Entry::new(
                [old.position.lon(), old.position.lat()],
                old.id,
            ));
            self.changes.send(changes::Change::Incident {
                old: Some(old.position),
                new: None,
            });
        }
    }

    pub fn get(&self, id: Uuid) -> Option<Incident> {
        self.read().by_id.get(&id).cloned()
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
        let inner = self.read();
        let mut hits: Vec<Hit> = Vec::new();
        for envelope in search_boxes(center, radius_m) {
            for e in inner.tree.locate_in_envelope(&envelope) {
                let Some(inc) = inner.by_id.get(&e.data) else {
                    continue;
                };
                if !keep(inc) {
                    continue;
                }
                let d = center.distance_m(inc.position);
                if d <= radius_m {
                    hits.push(Hit {
                        incident: inc.clone(),
                        distance_m: d,
                    });
                }
            }
        }
        hits.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.incident.id.cmp(&b.incident.id))
        });
        hits.dedup_by(|a, b| a.incident.id == b.incident.id);
        hits.truncate(limit);
        hits
    }

    /// Incidents inside a box that pass `keep`, in no particular order.
    pub fn in_bbox(&self, bbox: &BBox, keep: impl Fn(&Incident) -> bool) -> Vec<Incident> {
        let inner = self.read();
        let mut out = Vec::new();
        for part in bbox.parts() {
            let env = rstar::AABB::from_corners(
                [part.min_lon, part.min_lat],
                [part.max_lon, part.max_lat],
            );
            out.extend(
                inner
                    .tree
                    .locate_in_envelope(&env)
                    .filter_map(|e| inner.by_id.get(&e.data))
                    .filter(|i| keep(i))
                    .cloned(),
            );
        }
        out
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lon/lat boxes that together contain every point within `radius_m` of `center`: one box,
/// or two when the circle crosses the antimeridian, or a full band of longitudes near a pole.
pub fn search_boxes(center: Position, radius_m: f64) -> Vec<rstar::AABB<[f64; 2]>> {
    // Pad by a part in a million so rounding never drops a point on the circle.
    let dlat = (radius_m / EARTH_RADIUS_M).to_degrees() * 1.000_001 + 1e-9;
    let min_lat = (center.lat() - dlat).max(-90.0);
    let max_lat = (center.lat() + dlat).min(90.0);
    let max_abs_lat = min_lat.abs().max(max_lat.abs());
    let cos = max_abs_lat.to_radians().cos();
    if max_lat >= 90.0 || min_lat <= -90.0 || cos <= 1e-12 {
        return vec![rstar::AABB::from_corners(
            [-180.0, min_lat],
            [180.0, max_lat],
        )];
    }
    let dlon = (dlat / cos).min(360.0);
    if dlon >= 180.0 {
        return vec![rstar::AABB::from_corners(
            [-180.0, min_lat],
            [180.0, max_lat],
        )];
    }
    let (lo, hi) = (center.lon() - dlon, center.lon() + dlon);
    let mut boxes = vec![rstar::AABB::from_corners(
        [lo.max(-180.0), min_lat],
        [hi.min(180.0), max_lat],
    )];
    if lo < -180.0 {
        boxes.push(rstar::AABB::from_corners(
            [lo + 360.0, min_lat],
            [180.0, max_lat],
        ));
    }
    if hi > 180.0 {
        boxes.push(rstar::AABB::from_corners(
            [-180.0, min_lat],
            [hi - 360.0, max_lat],
        ));
    }
    boxes
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
            requested_at: Utc::now(),
            updated_at: Utc::now(),
            supporters: 0,
            duplicate_of: None,
            h3_cell: 0,
            change_seq: seq,
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
}
