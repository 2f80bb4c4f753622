//! The tile cache: byte-bounded, keyed by tile and canonical filter, and invalidated by the
//! index's change feed — a write drops, at every zoom, exactly the cached tiles whose build
//! read its position (the tile holding it and any whose hotspot margin reaches it; the
//! clusters above it are those tiles at lower zooms).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::NaiveDate;
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::hotspots;
use crate::geo::{MAX_TILE_ZOOM, Position, TileCoord, TileId};
use crate::spatial_index::changes::Change;

/// The default budget: tile bytes (plain + gzip) held at most.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

/// One built tile in both encodings, with its validator.
#[derive(Debug)]
pub struct CachedTile {
    pub raw: Bytes,
    pub gzip: Bytes,
    /// A weak entity tag (the same for both encodings), quoted, e.g. `W/"9f2c…"`.
    pub etag: String,
    /// The UTC day `age_days` was computed for.
    pub day: NaiveDate,
    last_used: AtomicU64,
}

impl CachedTile {
    pub fn new(raw: Vec<u8>, day: NaiveDate) -> Self {
        use flate2::{Compression, write::GzEncoder};
        use std::hash::{Hash as _, Hasher as _};
        use std::io::Write as _;
        // A validator, not a signature: a fast 64-bit hash of the bytes and their length.
        let mut h = std::hash::DefaultHasher::new();
        raw.hash(&mut h);
        let etag = format!("W/\"{:016x}-{:x}\"", h.finish(), raw.len());
        let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::fast());
        // Writing into a Vec cannot fail.
        let gzip = gz
            .write_all(&raw)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        Self {
            raw: Bytes::from(raw),
            gzip: Bytes::from(gzip),
            etag,
            day,
            last_used: AtomicU64::new(0),
        }
    }

    fn size(&self) -> usize {
        self.raw.len() + self.gzip.len() + 128
    }
}

struct Inner {
    tiles: BTreeMap<TileId, HashMap<String, Arc<CachedTile>>>,
    bytes: usize,
    changes: broadcast::Receiver<Change>,
    /// Bumped by every invalidation: a build that saw an older epoch is not stored.
    epoch: u64,
}

/// See the module docs. Shared by every request.
pub struct TileCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
    clock: AtomicU64,
}

impl TileCache {
    pub fn new(max_bytes: usize, changes: broadcast::Receiver<Change>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                tiles: BTreeMap::new(),
                bytes: 0,
                changes,
                epoch: 0,
            }),
            max_bytes,
            clock: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached tile, after applying every change the index has announced — so a write
    /// acknowledged before this call is never hidden by a cached tile.
    pub fn get(&self, tile: TileId, filter: &str, today: NaiveDate) -> Option<Arc<CachedTile>> {
        let mut inner = self.lock();
        inner.apply_changes();
        let hit = inner.tiles.get(&tile)?.get(filter)?.clone();
        if hit.day != today {
            return None;
        }
        hit.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(hit)
    }

    /// The epoch to pass to [`TileCache::insert`]; read it before reading the index.
    pub fn epoch(&self) -> u64 {
        let mut inner = self.lock();
        inner.apply_changes();
        inner.epoch
    }

    /// Stores a tile built from the index as of `epoch`, unless a write came in since (the
    /// tile might then miss it), evicting the least recently used tiles beyond the budget.
    pub fn insert(&self, tile: TileId, filter: &str, built: &Arc<CachedTile>, epoch: u64) {
        let mut inner = self.lock();
        inner.apply_changes();
        if inner.epoch != epoch || built.size() > self.max_bytes / 4 {
            return;
        }
        built.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let old = inner
            .tiles
            .entry(tile)
            .or_default()
            .insert(filter.to_owned(), built.clone());
        inner.bytes += built.size();
        if let Some(old) = old {
            inner.bytes -= old.size();
        }
        if inner.bytes > self.max_bytes {
            inner.evict(self.max_bytes * 9 / 10);
        }
    }

    /// Tile bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Tiles held now (each tile/filter pair once).
    pub fn len(&self) -> usize {
        self.lock().tiles.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn apply_changes(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(Change::Incident { old, new, .. }) => {
                    for p in old.into_iter().chain(new) {
                        self.invalidate_around(p);
                    }
                    self.epoch += 1;
                }
                Ok(Change::Reloaded) | Err(TryRecvError::Lagged(_)) => {
                    self.tiles.clear();
                    self.bytes = 0;
                    self.epoch += 1;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Drops every cached tile whose build read `p`: at each zoom, the tiles within the
    /// hotspot margin of `p` (a quarter wider than the build's, so rounding never misses one).
    fn invalidate_around(&mut self, p: Position) {
        for z in 0..=MAX_TILE_ZOOM {
            // A build widens its margin by its tile's most poleward latitude; a low-zoom tile
            // spans tens of degrees, so there take the widest margin (few tiles, cheap).
            let lat = if z <= 6 { 85.0 } else { p.lat() };
            let (dlon, dlat) = hotspots::margin_deg(z, lat);
            let corner = |lon: f64, lat: f64| {
                let pos =
                    Position::new(lon.clamp(-180.0, 180.0), lat.clamp(-90.0, 90.0)).unwrap_or(p);
                TileId::from_coord(TileCoord::of(pos), z)
            };
            let nw = corner(p.lon() - dlon * 1.25, p.lat() + dlat * 1.25);
            let se = corner(p.lon() + dlon * 1.25, p.lat() - dlat * 1.25);
            let (Ok(from), Ok(to)) = (
                TileId::new(u32::from(z), nw.x(), 0),
                TileId::new(u32::from(z), se.x(), (1u32 << z) - 1),
            ) else {
                continue;
            };
            let doomed: Vec<TileId> = self
                .tiles
                .range(from..=to)
                .map(|(t, _)| *t)
                .filter(|t| (nw.y()..=se.y()).contains(&t.y()))
                .collect();
            for t in doomed {
                if let Some(gone) = self.tiles.remove(&t) {
                    self.bytes -= gone.values().map(|c| c.size()).sum::<usize>();
                }
            }
        }
    }

    fn evict(&mut self, target: usize) {
        let mut all: Vec<(u64, TileId, String)> = self
            .tiles
            .iter()
            .flat_map(|(t, m)| {
                m.iter()
                    .map(|(f, c)| (c.last_used.load(Ordering::Relaxed), *t, f.clone()))
            })
            .collect();
        all.sort_unstable_by_key(|(used, _, _)| *used);
        for (_, t, f) in all {
            if self.bytes <= target {
                break;
            }
            if let Some(m) = self.tiles.get_mut(&t) {
                if let Some(gone) = m.remove(&f) {
                    self.bytes -= gone.size();
                }
                if m.is_empty() {
                    self.tiles.remove(&t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial_index::changes::ChangeFeed;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    fn tile_at(p: Position, z: u8) -> TileId {
        TileId::containing(p, z)
    }

    #[test]
    fn a_write_drops_its_tiles_at_every_zoom_and_nothing_far_away() {
        let feed = ChangeFeed::default();
        let cache = TileCache::new(1 << 20, feed.subscribe());
        let here = Position::new(-118.25, 34.05).unwrap();
        let far = Position::new(-73.98, 40.75).unwrap();
        let built = Arc::new(CachedTile::new(vec![1, 2, 3], day()));
        for z in [0u8, 5, 10, 14, 16] {
            for p in [here, far] {
                cache.insert(tile_at(p, z), "", &built, cache.epoch());
            }
        }
        cache.insert(tile_at(here, 14), "status=fixed", &built, cache.epoch());
        // z0 is one tile for both places.
        assert_eq!(cache.len(), 10);
        feed.send(Change::Incident {
            old: None,
            new: Some(here),
            was: None,
            now: None,
        });
        for z in [5u8, 10, 14, 16] {
            assert!(cache.get(tile_at(here, z), "", day()).is_none(), "z{z}");
        }
        // Up to z6 the margin is taken wide (tiles span tens of degrees there).
        for z in [10u8, 14, 16] {
            assert!(cache.get(tile_at(far, z), "", day()).is_some(), "z{z}");
        }
        assert!(
            cache
                .get(tile_at(here, 14), "status=fixed", day())
                .is_none()
        );
        // z0 is one tile for the whole world: both were in it.
        assert!(cache.get(tile_at(far, 0), "", day()).is_none());
    }

    #[test]
    fn every_tile_whose_build_read_a_position_is_dropped_when_it_changes() {
        let built = Arc::new(CachedTile::new(vec![1], day()));
        for (lon, lat) in [
            (-118.25, 34.05),
            (2.35, 48.85),
            (18.07, 59.33),
            (-70.6, -33.4),
        ] {
            let p = Position::new(lon, lat).unwrap();
            for z in [1u8, 4, 7, 9, 12, 15, 17] {
                let feed = ChangeFeed::default();
                let cache = TileCache::new(64 << 20, feed.subscribe());
                let centre = tile_at(p, z);
                let side = 1i64 << z;
                let mut read_p = Vec::new();
                for dx in -6i64..=6 {
                    for dy in -6i64..=6 {
                        let (x, y) = (i64::from(centre.x()) + dx, i64::from(centre.y()) + dy);
                        if !(0..side).contains(&x) || !(0..side).contains(&y) {
                            continue;
                        }
                        let t = TileId::new(u32::from(z), x as u32, y as u32).unwrap();
                        cache.insert(t, "", &built, cache.epoch());
                        if hotspots::query_area(t).contains(p) {
                            read_p.push(t);
                        }
                    }
                }
                assert!(read_p.contains(&centre));
                feed.send(Change::Incident {
                    old: Some(p),
                    new: None,
                    was: None,
                    now: None,
                });
                for t in read_p {
                    assert!(cache.get(t, "", day()).is_none(), "{t} read {p}");
                }
            }
        }
    }

    #[test]
    fn a_build_that_raced_a_write_is_not_stored_and_old_days_miss() {
        let feed = ChangeFeed::default();
        let cache = TileCache::new(1 << 20, feed.subscribe());
        let here = Position::new(-118.25, 34.05).unwrap();
        let t = tile_at(here, 14);
        let epoch = cache.epoch();
        feed.send(Change::Incident {
            old: Some(here),
            new: Some(here),
            was: None,
            now: None,
        });
        cache.insert(t, "", &Arc::new(CachedTile::new(vec![1], day())), epoch);
        assert!(cache.is_empty());
        cache.insert(
            t,
            "",
            &Arc::new(CachedTile::new(vec![1], day())),
            cache.epoch(),
        );
        assert!(cache.get(t, "", day()).is_some());
        assert!(cache.get(t, "", day().succ_opt().unwrap()).is_none());
    }

    #[test]
    fn the_cache_stays_within_its_byte_budget() {
        let feed = ChangeFeed::default();
        let cache = TileCache::new(64 * 1024, feed.subscribe());
        for x in 0..200 {
            let t = TileId::new(14, x, 0).unwrap();
            let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 + x) as u8).collect();
            cache.insert(
                t,
                "",
                &Arc::new(CachedTile::new(body, day())),
                cache.epoch(),
            );
            assert!(cache.bytes() <= 64 * 1024);
        }
        // The most recent tile survives eviction.
        assert!(
            cache
                .get(TileId::new(14, 199, 0).unwrap(), "", day())
                .is_some()
        );
    }
}
