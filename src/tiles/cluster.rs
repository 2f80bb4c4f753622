//! Server-side point clustering on a global quadtree grid: at zoom `z` a cluster is every
//! incident in one cell of the zoom-`z + 4` tile grid (16 × 16 cells per tile, about 32 px on
//! a 512 px tile, close to supercluster's default radius), drawn at its members' mean position.
//!
//! Why a grid and not supercluster's greedy radius merge: a greedy merge depends on the order
//! and neighbourhood of points, so two tiles built independently can cut one cluster in two or
//! draw it twice. A cell never straddles a tile edge, the clusters of zoom `z` are exactly the
//! unions of the clusters of `z + 1` (a hierarchy), and a cluster's counts are the counts of
//! the incidents in it — so the clusters of a tile add up to the incidents in the tile.

use std::collections::HashMap;

use crate::geo::TileCoord;
use crate::spatial_index::Compact;

/// Cells per tile side, as a power of two.
pub const GRID_BITS: u8 = 4;

/// Fixed-point units across Web Mercator's unit square (2^48: far finer than a tile pixel at
/// any zoom, and a million sums fit in a `u128` many times over).
const FIXED: f64 = (1u64 << 48) as f64;

fn fixed(v: f64) -> u128 {
    u128::from((v.clamp(0.0, 1.0) * FIXED) as u64)
}

/// One occupied grid cell.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub count: u64,
    /// Sums of the members' positions in fixed point (`FIXED` units across the unit square):
    /// exact, so adding and removing members in any order gives the same centre.
    sum_x: u128,
    sum_y: u128,
    /// The XOR of the members' ids: the remaining member's id once only one is left.
    pub id_xor: u128,
    /// Counts by service group (the index's name number), in first-seen order (there are
    /// about ten groups).
    pub groups: Vec<(u16, u64)>,
    /// The member, while there is only one: a lone incident is drawn as itself.
    pub single: Option<Compact>,
    /// The cell's column and row in the zoom `z + GRID_BITS` grid.
    pub cell: (u32, u32),
}

impl Cluster {
    /// The members' mean position in Web Mercator's unit square.
    pub fn centre(&self) -> TileCoord {
        let n = u128::from(self.count.max(1));
        TileCoord {
            x: (self.sum_x / n) as f64 / FIXED,
            y: (self.sum_y / n) as f64 / FIXED,
        }
    }

    /// A stable feature id: the cell's grid zoom, column and row packed into 64 bits.
    pub fn id(&self, z: u8) -> u64 {
        (u64::from(z + GRID_BITS) << 56) | (u64::from(self.cell.0) << 28) | u64::from(self.cell.1)
    }
}

/// The clusters of one tile, filled one incident at a time.
#[derive(Default)]
pub struct Clusters {
    cells: HashMap<(u32, u32), Cluster>,
}

impl Clusters {
    /// Adds an incident already projected to `c`, clustering for zoom `z`.
    pub fn add(&mut self, incident: &Compact, c: TileCoord, z: u8) {
        let cell = cell_of(c, z);
        let cl = self.cells.entry(cell).or_insert_with(|| Cluster {
            cell,
            ..Cluster::default()
        });
        cl.count += 1;
        cl.sum_x += fixed(c.x);
        cl.sum_y += fixed(c.y);
        cl.id_xor ^= incident.id.as_u128();
        cl.single = if cl.count == 1 { Some(*incident) } else { None };
        if let Some(g) = cl.groups.iter_mut().find(|(g, _)| *g == incident.group) {
            g.1 += 1;
        } else {
            cl.groups.push((incident.group, 1));
        }
    }

    /// Takes away an incident added before with the same `c` and `z`. The lone member left
    /// behind is not known here (`single` stays `None`): its id is `id_xor`.
    pub fn remove(&mut self, incident: &Compact, c: TileCoord, z: u8) {
        let cell = cell_of(c, z);
        let Some(cl) = self.cells.get_mut(&cell) else {
            return;
        };
        cl.count = cl.count.saturating_sub(1);
        if cl.count == 0 {
            self.cells.remove(&cell);
            return;
        }
        cl.sum_x = cl.sum_x.saturating_sub(fixed(c.x));
        cl.sum_y = cl.sum_y.saturating_sub(fixed(c.y));
        cl.id_xor ^= incident.id.as_u128();
        cl.single = None;
        if let Some(at) = cl.groups.iter().position(|(g, _)| *g == incident.group) {
            cl.groups[at].1 -= 1;
            if cl.groups[at].1 == 0 {
                cl.groups.remove(at);
            }
        }
    }

    /// The cluster in one grid cell, if occupied.
    pub fn get(&self, cell: (u32, u32)) -> Option<&Cluster> {
        self.cells.get(&cell)
    }

    /// Every incident added so far.
    pub fn total(&self) -> u64 {
        self.cells.values().map(|c| c.count).sum()
    }

    /// The clusters in a fixed order (by cell), so equal data gives byte-equal tiles.
    pub fn into_sorted(self) -> Vec<Cluster> {
        let mut v: Vec<Cluster> = self.cells.into_values().collect();
        v.sort_unstable_by_key(|c| c.cell);
        v
    }
}

/// The zoom-`z + GRID_BITS` grid cell holding `c`.
pub fn cell_of(c: TileCoord, z: u8) -> (u32, u32) {
    let n = (1u64 << (z + GRID_BITS)) as f64;
    let max = n - 1.0;
    (
        (c.x * n).floor().clamp(0.0, max) as u32,
        (c.y * n).floor().clamp(0.0, max) as u32,
    )
}

/// The property key of a group's count: `count_` and the group in lower case, with anything
/// but letters and digits turned into `_` ("Street lights" → `count_street_lights`).
pub fn group_key(group: &str) -> String {
    let slug: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("count_{slug}")
}

/// supercluster's `point_count_abbreviated`: 999, "1.2k", "12k", and "1.2M" past a million.
pub fn abbreviate(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", (n / 100_000) as f64 / 10.0)
    } else if n >= 10_000 {
        format!("{}k", (n + 500) / 1000)
    } else if n >= 1000 {
        format!("{:.1}k", ((n + 50) / 100) as f64 / 10.0)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::geo::{Position, TileId};
    use crate::spatial_index::{Filter, Incident, SpatialIndex};

    /// The incidents as the index hands them to a tile build.
    fn compact(all: Vec<Incident>) -> Vec<Compact> {
        let index = SpatialIndex::from_incidents(all);
        let mut out = Vec::new();
        index.visit_all_matching(&Filter::default(), |c| out.push(*c));
        out
    }

    fn incident(lon: f64, lat: f64, group: &str) -> Incident {
        Incident {
            id: uuid::Uuid::now_v7(),
            reference: Arc::from("CP-0000-0000"),
            position: Position::new(lon, lat).unwrap(),
            service_code: Arc::from("pothole"),
            group: Arc::from(group),
            status: crate::domain::Status::New,
            requested_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            supporters: 0,
            duplicate_of: None,
            h3_cell: 0,
            change_seq: 1,
        }
    }

    #[test]
    fn abbreviations_match_supercluster() {
        assert_eq!(abbreviate(999), "999");
        assert_eq!(abbreviate(1234), "1.2k");
        assert_eq!(abbreviate(1250), "1.3k");
        assert_eq!(abbreviate(12_345), "12k");
        assert_eq!(abbreviate(1_234_567), "1.2M");
        assert_eq!(group_key("Street lights"), "count_street_lights");
    }

    #[test]
    fn clusters_nest_across_zooms_and_never_straddle_a_tile_edge() {
        // Points on both sides of the z10 tile edge through LA, a few metres apart.
        let t = TileId::containing(Position::new(-118.25, 34.05).unwrap(), 10);
        let edge = t.bbox().max_lon();
        let pts = compact(
            (0..40)
                .map(|i| {
                    let side = if i % 2 == 0 { -1.0 } else { 1.0 };
                    incident(
                        edge + side * 1e-5 * f64::from(i + 1),
                        34.05,
                        if i % 3 == 0 { "Roads" } else { "Water" },
                    )
                })
                .collect(),
        );
        for z in [8u8, 9, 10, 11] {
            let mut by_tile: HashMap<TileId, Clusters> = HashMap::new();
            for p in &pts {
                let c = TileCoord::of(p.position);
                by_tile
                    .entry(TileId::from_coord(c, z))
                    .or_default()
                    .add(p, c, z);
            }
            for (tile, cl) in by_tile {
                for cluster in cl.into_sorted() {
                    assert_eq!(
                        TileId::from_coord(cluster.centre(), z),
                        tile,
                        "a cluster is drawn in the tile that holds its members"
                    );
                    let g: u64 = cluster.groups.iter().map(|g| g.1).sum();
                    assert_eq!(g, cluster.count);
                }
            }
        }
        // One zoom's clusters are unions of the next zoom's.
        let cells = |z: u8| {
            let mut c = Clusters::default();
            for p in &pts {
                c.add(p, TileCoord::of(p.position), z);
            }
            c.into_sorted()
        };
        let (coarse, fine) = (cells(9), cells(10));
        for f in &fine {
            assert!(
                coarse
                    .iter()
                    .any(|c| c.cell == (f.cell.0 / 2, f.cell.1 / 2))
            );
        }
        assert_eq!(coarse.iter().map(|c| c.count).sum::<u64>(), 40);
    }
}
