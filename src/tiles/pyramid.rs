//! The low-zoom pyramid: standing aggregates for the default filter, so a cold tile at zoom
//! 0–[`MAX_ZOOM`] reads at most 256 cluster cells and the occupied H3 cells of one resolution
//! instead of every incident under it (a z10 tile over Los Angeles holds 450 000).
//!
//! Per zoom, the cluster grid of [`super::cluster`] (counts, fixed-point position sums, group
//! counts, XOR of ids); per hotspot resolution, incidents per H3 cell. Built off the request
//! path from one snapshot of the index and kept current from its change feed: each change
//! subtracts the incident's old version and adds the new one. Until it is built (and again
//! after a reload or a feed overrun), tiles fall back to the scan, which gives the same
//! clusters; other filters always scan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use h3o::{CellIndex, Resolution};
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::cluster::{Cluster, Clusters, GRID_BITS};
use super::hotspots::{self, HotspotCounts};
use super::model::TileFilter;
use crate::geo::{BBox, Position, TileCoord, TileId};
use crate::spatial_index::changes::Change;
use crate::spatial_index::{Compact, SpatialIndex};

/// The deepest zoom the pyramid serves. Deeper tiles hold few enough incidents to scan, and
/// their hotspots use the stored resolution, where a standing count per cell saves nothing.
pub const MAX_ZOOM: u8 = 12;

/// Occupied H3 cells of one resolution: count and centre (for the "inside the area" test).
type HexCounts = HashMap<CellIndex, (u64, Option<Position>)>;

/// The aggregates themselves.
struct Levels {
    /// Index `z`: the clusters of zoom `z`.
    grids: Vec<Clusters>,
    /// Index: the H3 resolution as a number (only those some zoom ≤ `MAX_ZOOM` uses).
    hex: Vec<Option<HexCounts>>,
}

impl Levels {
    fn new() -> Self {
        let mut hex: Vec<Option<HexCounts>> = vec![None; 16];
        for z in 0..=MAX_ZOOM {
            hex[usize::from(u8::from(hotspots::resolution_for_zoom(z)))] = Some(HashMap::new());
        }
        Self {
            grids: (0..=MAX_ZOOM).map(|_| Clusters::default()).collect(),
            hex,
        }
    }

    fn add(&mut self, i: &Compact) {
        let c = TileCoord::of(i.position);
        for (z, grid) in (0u8..).zip(&mut self.grids) {
            grid.add(i, c, z);
        }
        let Ok(cell) = CellIndex::try_from(i.h3_cell) else {
            return;
        };
        for (res, counts) in self.resolutions() {
            if let Some(parent) = cell.parent(res) {
                counts
                    .entry(parent)
                    .or_insert_with(|| (0, centre(parent)))
                    .0 += 1;
            }
        }
    }

    fn remove(&mut self, i: &Compact) {
        let c = TileCoord::of(i.position);
        for (z, grid) in (0u8..).zip(&mut self.grids) {
            grid.remove(i, c, z);
        }
        let Ok(cell) = CellIndex::try_from(i.h3_cell) else {
            return;
        };
        for (res, counts) in self.resolutions() {
            if let Some(parent) = cell.parent(res) {
                if let Some(n) = counts.get_mut(&parent) {
                    n.0 = n.0.saturating_sub(1);
                    if n.0 == 0 {
                        counts.remove(&parent);
                    }
                }
            }
        }
    }

    fn resolutions(&mut self) -> impl Iterator<Item = (Resolution, &mut HexCounts)> {
        self.hex.iter_mut().enumerate().filter_map(|(r, c)| {
            let res = Resolution::try_from(u8::try_from(r).ok()?).ok()?;
            Some((res, c.as_mut()?))
        })
    }

    /// The clusters of `tile`, in cell order (as [`Clusters::into_sorted`] gives them).
    fn clusters(&self, tile: TileId) -> Vec<Cluster> {
        let Some(grid) = self.grids.get(usize::from(tile.z())) else {
            return Vec::new();
        };
        let side = 1u32 << GRID_BITS;
        let mut out = Vec::new();
        for x in tile.x() * side..(tile.x() + 1) * side {
            for y in tile.y() * side..(tile.y() + 1) * side {
                if let Some(c) = grid.get((x, y)) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// Hotspot counts of the cells whose centre lies in the tile's query area.
    fn hotspots(&self, tile: TileId) -> HotspotCounts {
        let res = hotspots::resolution_for_zoom(tile.z());
        let area: BBox = hotspots::query_area(tile);
        let counts = self
            .hex
            .get(usize::from(u8::from(res)))
            .and_then(Option::as_ref)
            .map(|cells| {
                cells
                    .iter()
                    .filter(|(_, (_, p))| p.is_some_and(|p| area.contains(p)))
                    .map(|(c, (n, _))| (*c, *n))
                    .collect()
            })
            .unwrap_or_default();
        HotspotCounts::from_counts(res, counts)
    }
}

fn centre(cell: CellIndex) -> Option<Position> {
    let ll = h3o::LatLng::from(cell);
    Position::new(ll.lng(), ll.lat()).ok()
}

struct State {
    levels: Option<Levels>,
    changes: Option<broadcast::Receiver<Change>>,
    building: bool,
}

/// See the module docs. Shared by every request.
pub struct Pyramid {
    index: Arc<SpatialIndex>,
    state: Mutex<State>,
}

impl Pyramid {
    pub fn new(index: Arc<SpatialIndex>) -> Self {
        Self {
            index,
            state: Mutex::new(State {
                levels: None,
                changes: None,
                building: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds the pyramid from the index now (a second or so per million incidents: call it
    /// from a blocking thread).
    pub fn rebuild(&self) {
        let Some(filter) = TileFilter::default().index_filter() else {
            return;
        };
        let (mut rx, snapshot) = self.index.snapshot_matching(&filter);
        let mut levels = Levels::new();
        // The aggregation takes seconds at millions of incidents. The changes made meanwhile
        // are taken off the feed as it goes, so a burst of writes cannot overrun the feed and
        // force yet another rebuild (at 5M under 1,000 writes/s, that loop held reads up for
        // hundreds of milliseconds).
        let mut pending = Vec::new();
        let mut kept_up = true;
        let mut added = 0u32;
        snapshot.for_each(|i| {
            levels.add(i);
            added = added.wrapping_add(1);
            if added % (1 << 16) == 0 {
                kept_up &= drain(&mut rx, &mut pending);
            }
        });
        drop(snapshot);
        kept_up &= drain(&mut rx, &mut pending);
        let mut state = self.lock();
        state.building = false;
        if kept_up && pending.into_iter().all(|c| apply(&mut levels, c)) {
            state.levels = Some(levels);
            state.changes = Some(rx);
        }
    }

    /// Starts building the pyramid in the background if it is missing (after a load).
    pub fn warm(self: &Arc<Self>) {
        let mut state = self.lock();
        apply_changes(&mut state);
        if state.levels.is_none() {
            self.rebuild_in_background(&mut state);
        }
    }

    /// Whether the pyramid can serve tiles now (built and not overrun).
    pub fn is_ready(&self) -> bool {
        let mut state = self.lock();
        apply_changes(&mut state);
        state.levels.is_some()
    }

    /// Starts a rebuild on a blocking thread when the pyramid is missing, the index is
    /// loaded and none is running (needs a Tokio runtime; without one, nothing happens).
    fn rebuild_in_background(self: &Arc<Self>, state: &mut State) {
        if state.building || !self.index.is_loaded() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.building = true;
        let this = self.clone();
        rt.spawn_blocking(move || {
            let started = std::time::Instant::now();
            this.rebuild();
            tracing::info!(
                duration_ms = started.elapsed().as_millis() as u64,
                "tile pyramid built"
            );
        });
    }

    /// The tile's clusters and hotspots from the pyramid, current with every change the
    /// index has announced; `None` (and a rebuild started) when the pyramid cannot serve it:
    /// not the default filter, too deep, or not built yet.
    pub(crate) fn tile(
        self: &Arc<Self>,
        tile: TileId,
        filter: &TileFilter,
    ) -> Option<(Vec<Cluster>, HotspotCounts)> {
        if tile.z() > MAX_ZOOM || !filter.is_default() {
            return None;
        }
        let mut state = self.lock();
        apply_changes(&mut state);
        let Some(levels) = &state.levels else {
            self.rebuild_in_background(&mut state);
            return None;
        };
        let mut clusters = levels.clusters(tile);
        let hot = levels.hotspots(tile);
        drop(state);
        for c in &mut clusters {
            if c.count == 1 {
                c.single = self.index.compact(uuid::Uuid::from_u128(c.id_xor));
            }
        }
        Some((clusters, hot))
    }
}

/// Keeps the pyramid current between tile requests: applies the feed twice a second (so a
/// burst of writes with no low-zoom request does not overrun the feed and force a rebuild)
/// and rebuilds it after a reload. Stops when the pyramid is dropped.
pub fn spawn_keeper(pyramid: &Arc<Pyramid>) {
    let weak = Arc::downgrade(pyramid);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(p) = weak.upgrade() else {
                return;
            };
            p.warm();
        }
    });
}

/// Applies every announced change; a reload or an overrun drops the pyramid (to be rebuilt).
fn apply_changes(state: &mut State) {
    let (Some(rx), Some(levels)) = (state.changes.as_mut(), state.levels.as_mut()) else {
        return;
    };
    let mut pending = Vec::new();
    if !(drain(rx, &mut pending) && pending.into_iter().all(|c| apply(levels, c))) {
        state.levels = None;
        state.changes = None;
    }
}

/// Moves every change waiting in `rx` to `pending`; false if the feed overran (changes lost).
fn drain(rx: &mut broadcast::Receiver<Change>, pending: &mut Vec<Change>) -> bool {
    loop {
        match rx.try_recv() {
            Ok(c) => pending.push(c),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return true,
            Err(TryRecvError::Lagged(_)) => return false,
        }
    }
}

/// Applies one change: the incident's old version out, the new one in. False for a reload,
/// which the pyramid cannot follow change by change.
fn apply(levels: &mut Levels, change: Change) -> bool {
    let Change::Incident { was, now, .. } = change else {
        return false;
    };
    let shown = TileFilter::default();
    if let Some(i) = was.filter(|i| shown.shows_status(i.status)) {
        levels.remove(&i);
    }
    if let Some(i) = now.filter(|i| shown.shows_status(i.status)) {
        levels.add(&i);
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::Status;
    use crate::geo::REPORT_H3_RESOLUTION;
    use crate::spatial_index::Incident;

    fn incident(n: u32, lon: f64, lat: f64) -> Incident {
        let kind = if n % 3 == 0 {
            ("pothole", "Roads")
        } else {
            ("graffiti", "Graffiti")
        };
        let status = if n % 7 == 0 {
            Status::Duplicate
        } else {
            Status::New
        };
        crate::spatial_index::test_incident(n, Position::new(lon, lat).unwrap(), kind, status)
    }

    /// What two equal clusters share: count, cell, centre (bit patterns), group counts.
    type Summary = (u64, (u32, u32), u128, Vec<(u16, u64)>);

    /// The scan's clusters of a tile, as `build_tile` computes them.
    fn scanned(index: &SpatialIndex, tile: TileId) -> Vec<Summary> {
        let mut c = Clusters::default();
        let f = TileFilter::default().index_filter().unwrap();
        index.visit_matching(&tile.bbox(), &f, |i| {
            let p = TileCoord::of(i.position);
            if TileId::from_coord(p, tile.z()) == tile {
                c.add(i, p, tile.z());
            }
        });
        c.into_sorted().iter().map(summary).collect()
    }

    fn summary(c: &Cluster) -> Summary {
        let mut g = c.groups.clone();
        g.sort_unstable();
        let centre = c.centre();
        let single = c.single.map_or(0, |s| s.id.as_u128());
        assert!(
            c.count != 1 || single == c.id_xor,
            "a lone member is itself"
        );
        (
            c.count,
            c.cell,
            u128::from(centre.x.to_bits()) << 64 | u128::from(centre.y.to_bits()),
            g,
        )
    }

    #[test]
    fn the_pyramid_gives_the_scans_clusters_after_moves_hides_and_status_changes() {
        let mut s = 11u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut all: Vec<Incident> = (0..3000)
            .map(|n| incident(n, -118.5 + rnd() * 0.6, 33.8 + rnd() * 0.5))
            .collect();
        let index = Arc::new(SpatialIndex::from_incidents(all.clone()));
        let pyramid = Arc::new(Pyramid::new(index.clone()));
        pyramid.rebuild();
        for (n, i) in all.iter_mut().enumerate().take(600) {
            i.change_seq = 2;
            match n % 4 {
                0 => index.remove_at(i.id, 2),
                1 => {
                    i.position = Position::new(-118.5 + rnd() * 0.6, 33.8 + rnd() * 0.5).unwrap();
                    i.h3_cell = u64::from(i.position.h3_cell(REPORT_H3_RESOLUTION));
                    index.upsert(i.clone());
                }
                2 => {
                    i.status = if i.status == Status::Duplicate {
                        Status::Fixed
                    } else {
                        Status::Duplicate
                    };
                    index.upsert(i.clone());
                }
                _ => {
                    i.group = Arc::from("Water");
                    index.upsert(i.clone());
                }
            }
        }
        let filter = TileFilter::default();
        let centre = Position::new(-118.2, 34.05).unwrap();
        for z in 0..=MAX_ZOOM {
            let t = TileId::containing(centre, z);
            let (clusters, hot) = pyramid.tile(t, &filter).expect("built");
            let got: Vec<_> = clusters.iter().map(summary).collect();
            assert_eq!(got, scanned(&index, t), "z{z}");
            let mut layer = super::super::mvt::LayerBuilder::new("hotspots");
            hot.write(t, &mut layer);
            assert!(!layer.is_empty(), "z{z}");
        }
        assert!(
            pyramid
                .tile(TileId::containing(centre, MAX_ZOOM + 1), &filter)
                .is_none()
        );
        index.replace_all(all);
        assert!(!pyramid.is_ready(), "a reload drops the pyramid");
    }
}
