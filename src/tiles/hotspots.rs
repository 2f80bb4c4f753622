//! Hotspots: H3 cells (resolution chosen from the zoom) with their incident count and a
//! Getis-Ord Gi* z-score over the cell and its ring of neighbours (`grid_disk(1)`).
//!
//! The statistic's mean and deviation come from the cells around the tile (the tile plus a
//! margin of a few cells, including the empty neighbours of occupied cells), not the whole
//! city: "hot compared with its surroundings", and cheap enough to build per tile. The same
//! margin tells the cache which tiles a write touches.

use std::collections::{HashMap, HashSet};

use h3o::{CellIndex, Resolution};

use super::mvt::{EXTENT, LayerBuilder, Prop};
use crate::geo::{BBox, Position, TileId};

/// The H3 resolution shown at zoom `z`: a hexagon a few dozen pixels across (about a tenth
/// of a tile), down to the resolution every report carries (9).
pub fn resolution_for_zoom(z: u8) -> Resolution {
    // Each zoom halves the tile; each resolution divides the edge by about 2.65.
    let r = ((f64::from(z) - 10.0) * (2f64.ln() / 2.65f64.ln()) + 7.0).round();
    Resolution::try_from(r.clamp(0.0, 9.0) as u8).unwrap_or(Resolution::Nine)
}

/// How far around a tile hotspots look, in degrees (lon, lat) at latitude `lat`: far enough
/// for every hexagon that overlaps the tile and for each of their neighbours' neighbours.
pub fn margin_deg(z: u8, lat: f64) -> (f64, f64) {
    let margin_m = 4.5 * resolution_for_zoom(z).edge_length_m();
    let dlat = margin_m / 111_320.0;
    let cos = lat.to_radians().cos().max(0.01);
    (dlat / cos, dlat)
}

/// The area a tile's build reads from the index: the tile plus the hotspot margin.
pub fn query_area(tile: TileId) -> BBox {
    let b = tile.bbox();
    let lat = b.min_lat().abs().max(b.max_lat().abs());
    let (dlon, dlat) = margin_deg(tile.z(), lat);
    b.expanded(dlon, dlat)
}

/// Incident counts per H3 cell at the zoom's resolution.
pub struct HotspotCounts {
    res: Resolution,
    counts: HashMap<CellIndex, u64>,
}

impl HotspotCounts {
    pub fn new(z: u8) -> Self {
        Self {
            res: resolution_for_zoom(z),
            counts: HashMap::new(),
        }
    }

    /// Counts kept elsewhere (the pyramid), at resolution `res`.
    pub fn from_counts(res: Resolution, counts: HashMap<CellIndex, u64>) -> Self {
        Self { res, counts }
    }

    /// Counts an incident by its stored resolution-9 cell.
    pub fn add(&mut self, h3_cell: u64) {
        if let Some(parent) = CellIndex::try_from(h3_cell)
            .ok()
            .and_then(|c| c.parent(self.res))
        {
            *self.counts.entry(parent).or_default() += 1;
        }
    }

    /// Writes the occupied hexagons that overlap `tile`, with `h3`, `count` and `score`.
    pub fn write(&self, tile: TileId, layer: &mut LayerBuilder) {
        let e = i64::from(EXTENT);
        let mut drawn: Vec<(CellIndex, Vec<(i64, i64)>)> = Vec::new();
        for &cell in self.counts.keys() {
            let ring: Vec<(i64, i64)> = cell
                .boundary()
                .iter()
                .filter_map(|ll| Position::new(ll.lng(), ll.lat()).ok())
                .map(|p| tile.to_tile_xy(p, EXTENT))
                .collect();
            let (min_x, max_x) = ring
                .iter()
                .fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (min_y, max_y) = ring
                .iter()
                .fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
            // A hexagon wrapping round the antimeridian would span the whole tile: leave it out.
            if max_x < 0 || min_x > e || max_y < 0 || min_y > e || max_x - min_x > 8 * e {
                continue;
            }
            drawn.push((cell, ring));
        }
        drawn.sort_unstable_by_key(|(c, _)| u64::from(*c));
        let scores = self.gi_star(drawn.iter().map(|(c, _)| *c));
        for ((cell, ring), score) in drawn.iter().zip(scores) {
            let h3 = cell.to_string();
            let count = self.counts.get(cell).copied().unwrap_or(0);
            layer.polygon(
                Some(u64::from(*cell)),
                ring,
                &[
                    ("h3", Prop::Str(&h3)),
                    ("count", Prop::UInt(count)),
                    ("score", Prop::Double((score * 100.0).round() / 100.0)),
                ],
            );
        }
    }

    /// Gi* with binary weights over `grid_disk(1)` (the cell itself included), the study area
    /// being the occupied cells read plus the empty neighbours of the cells scored.
    fn gi_star(&self, cells: impl Iterator<Item = CellIndex>) -> Vec<f64> {
        let disks: Vec<Vec<CellIndex>> = cells.map(|c| c.grid_disk::<Vec<_>>(1)).collect();
        let mut universe: HashSet<CellIndex> = self.counts.keys().copied().collect();
        universe.extend(disks.iter().flatten().copied());
        let n = universe.len() as f64;
        let x = |c: &CellIndex| self.counts.get(c).copied().unwrap_or(0) as f64;
        let sum: f64 = self.counts.values().map(|&v| v as f64).sum();
        let sum_sq: f64 = self.counts.values().map(|&v| (v as f64).powi(2)).sum();
        let mean = sum / n;
        let s = (sum_sq / n - mean * mean).max(0.0).sqrt();
        disks
            .iter()
            .map(|disk| {
                let w = disk.len() as f64;
                let local: f64 = disk.iter().map(x).sum();
                let denom = s * ((n * w - w * w) / (n - 1.0)).max(0.0).sqrt();
                if n < 2.0 || denom <= f64::EPSILON {
                    0.0
                } else {
                    (local - mean * w) / denom
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_grows_with_zoom_up_to_the_stored_one() {
        let r: Vec<u8> = (0..=22).map(|z| u8::from(resolution_for_zoom(z))).collect();
        assert!(r.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
        assert_eq!(r[10], 7);
        assert_eq!(r[16], 9);
        assert_eq!(r[22], 9);
    }

    #[test]
    fn a_dense_cell_scores_higher_than_its_quiet_neighbours() {
        let centre = Position::new(-118.25, 34.05).unwrap();
        let z = 12;
        let mut counts = HotspotCounts::new(z);
        let hot = centre.h3_cell(resolution_for_zoom(z));
        let nine = |c: CellIndex| u64::from(c.children(Resolution::Nine).next().unwrap());
        for _ in 0..50 {
            counts.add(nine(hot));
        }
        for ring in hot.grid_disk::<Vec<_>>(6).into_iter().filter(|c| *c != hot) {
            counts.add(nine(ring));
        }
        let far = hot
            .grid_disk::<Vec<_>>(6)
            .into_iter()
            .find(|c| hot.grid_distance(*c).ok() == Some(6))
            .unwrap();
        let scores = counts.gi_star([hot, far].into_iter());
        assert!(scores[0] > 3.0, "{scores:?}");
        assert!(scores[1] < scores[0]);
        let tile = TileId::containing(centre, z);
        let mut layer = LayerBuilder::new("hotspots");
        counts.write(tile, &mut layer);
        assert!(!layer.is_empty());
    }
}
