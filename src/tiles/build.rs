//! Building one tile from the live index: one pass over the tile and its hotspot margin,
//! then the `hotspots`, `clusters` and `incidents` layers encoded as MVT.

use std::sync::Arc;

use chrono::NaiveDate;

use super::cluster::{self, Clusters};
use super::hotspots::{self, HotspotCounts};
use super::model::TileFilter;
use super::mvt::{self, EXTENT, LayerBuilder, Prop};
use super::pyramid::Pyramid;
use crate::domain::Status;
use crate::geo::{Position, TileCoord, TileId};
use crate::spatial_index::{Compact, SpatialIndex};

/// From this zoom on, a tile shows every incident as a point (when there are not too many).
pub const POINT_MIN_ZOOM: u8 = 14;
/// The most points one tile carries; denser tiles are clustered instead. About 90 bytes a
/// point (ids and references are unique strings), so this keeps a tile well under 500 KB.
pub const MAX_POINTS: usize = 4000;
/// The deepest zoom advertised in TileJSON; clients overzoom beyond it.
pub const MAX_ZOOM: u8 = 16;

/// Layer names: the contract with the MapLibre style in `tiles/style.json`.
pub const INCIDENTS: &str = "incidents";
pub const CLUSTERS: &str = "clusters";
pub const HOTSPOTS: &str = "hotspots";

/// Builds the tile's MVT bytes (empty layers are left out, so an empty tile is zero bytes),
/// from the low-zoom pyramid when it can serve the tile, else by a scan of the index.
pub fn build_tile_with(
    index: &SpatialIndex,
    pyramid: &Arc<Pyramid>,
    tile: TileId,
    filter: &TileFilter,
    today: NaiveDate,
) -> Vec<u8> {
    let Some((clusters, hotspots)) = pyramid.tile(tile, filter) else {
        return build_tile(index, tile, filter, today);
    };
    let names = index.names();
    let mut hot = LayerBuilder::new(HOTSPOTS);
    hotspots.write(tile, &mut hot);
    let mut cluster_layer = LayerBuilder::new(CLUSTERS);
    let mut point_layer = LayerBuilder::new(INCIDENTS);
    write_clusters(
        &mut cluster_layer,
        &mut point_layer,
        tile,
        clusters,
        &names,
        today,
    );
    mvt::encode(vec![hot, cluster_layer, point_layer])
}

/// Builds the tile's MVT bytes by a scan of the index (any filter, any zoom). Empty layers
/// are left out, so an empty tile is zero bytes. `today` fixes `age_days`, so a cached tile
/// is stale the next day.
pub fn build_tile(
    index: &SpatialIndex,
    tile: TileId,
    filter: &TileFilter,
    today: NaiveDate,
) -> Vec<u8> {
    let z = tile.z();
    let want_points = z >= POINT_MIN_ZOOM;
    let mut clusters = Clusters::default();
    let mut points: Vec<(Compact, TileCoord)> = Vec::new();
    let mut hotspots = HotspotCounts::new(z);
    let near = NearTile::new(tile);
    // One pass over the compact records of the tile and its hotspot margin: nothing is
    // allocated per incident, which keeps a 450 000-incident z10 tile a scan, not a copy.
    // At point zooms the tile's incidents are kept (a few thousand at most in a city) and
    // clustered afterwards only if there are too many.
    if let Some(index_filter) = filter.index_filter() {
        index.visit_matching(&hotspots::query_area(tile), &index_filter, |i| {
            if !filter.keep_time(i.requested_us) {
                return;
            }
            hotspots.add(i.h3_cell);
            // Most of the margin is cheaply seen to lie outside the tile: no projection.
            if !near.may_hold(i.position) {
                return;
            }
            let c = TileCoord::of(i.position);
            if TileId::from_coord(c, z) == tile {
                if want_points {
                    points.push((*i, c));
                } else {
                    clusters.add(i, c, z);
                }
            }
        });
    }
    let names = index.names();
    let mut hot = LayerBuilder::new(HOTSPOTS);
    hotspots.write(tile, &mut hot);
    let mut cluster_layer = LayerBuilder::new(CLUSTERS);
    let mut point_layer = LayerBuilder::new(INCIDENTS);
    if want_points && points.len() <= MAX_POINTS {
        // Sorted by id through a small key array: moving the keys is cheaper than the records.
        let mut order: Vec<(uuid::Uuid, u32)> =
            (0u32..).zip(&points).map(|(n, (i, _))| (i.id, n)).collect();
        order.sort_unstable();
        let mut w = IncidentWriter::new(&mut point_layer, &names, today, points.len());
        for &(_, n) in &order {
            let (i, c) = &points[n as usize];
            w.write(tile.coord_to_tile_xy(*c, EXTENT), i);
        }
    } else {
        for (i, c) in &points {
            clusters.add(i, *c, z);
        }
        write_clusters(
            &mut cluster_layer,
            &mut point_layer,
            tile,
            clusters.into_sorted(),
            &names,
            today,
        );
    }
    mvt::encode(vec![hot, cluster_layer, point_layer])
}

/// A cheap first test of "is this position in the tile": the tile's lon/lat box widened by a
/// hair, so rounding in the projection can never make it reject a position the exact test
/// ([`TileId::from_coord`]) would keep.
struct NearTile(crate::geo::BBox);

impl NearTile {
    const SLACK_DEG: f64 = 1e-6;

    fn new(tile: TileId) -> Self {
        Self(tile.bbox())
    }

    fn may_hold(&self, p: Position) -> bool {
        let b = &self.0;
        p.lon() >= b.min_lon() - Self::SLACK_DEG
            && p.lon() <= b.max_lon() + Self::SLACK_DEG
            && p.lat() >= b.min_lat() - Self::SLACK_DEG
            && p.lat() <= b.max_lat() + Self::SLACK_DEG
    }
}

/// Writes clusters; a cluster of one is drawn as the incident itself.
pub(crate) fn write_clusters(
    clusters: &mut LayerBuilder,
    points: &mut LayerBuilder,
    tile: TileId,
    sorted: Vec<cluster::Cluster>,
    names: &[Arc<str>],
    today: NaiveDate,
) {
    let z = tile.z();
    // Group keys are made once per name (a catalogue's worth), not once per cluster.
    let keys: Vec<String> = names.iter().map(|n| cluster::group_key(n)).collect();
    let mut singles = IncidentWriter::new(points, names, today, 0);
    for c in sorted {
        if let Some(i) = &c.single {
            singles.write(tile.to_tile_xy(i.position, EXTENT), i);
            continue;
        }
        let abbreviated = cluster::abbreviate(c.count);
        let mut props: Vec<(&str, Prop<'_>)> = Vec::with_capacity(2 + c.groups.len());
        props.push(("point_count", Prop::UInt(c.count)));
        props.push(("point_count_abbreviated", Prop::Str(&abbreviated)));
        for (g, n) in &c.groups {
            let key = keys
                .get(usize::from(*g))
                .map_or("count_other", String::as_str);
            props.push((key, Prop::UInt(*n)));
        }
        clusters.point(
            Some(c.id(z)),
            tile.coord_to_tile_xy(c.centre(), EXTENT),
            &props,
        );
    }
}

/// The lon/lat box `[west, south, east, north]` of the incidents the filter shows, if any.
pub fn data_bounds(index: &SpatialIndex, filter: &TileFilter) -> Option<[f64; 4]> {
    let index_filter = filter.index_filter()?;
    let mut b = None::<[f64; 4]>;
    index.visit_all_matching(&index_filter, |i| {
        if filter.keep_time(i.requested_us) {
            let (lon, lat) = (i.position.lon(), i.position.lat());
            b = Some(b.map_or([lon, lat, lon, lat], |[w, s, e, n]| {
                [w.min(lon), s.min(lat), e.max(lon), n.max(lat)]
            }));
        }
    });
    b
}

/// Writes incidents into the `incidents` layer with every key and repeated value looked up
/// once per tile (names by their index, statuses by number, small ages and supporter counts
/// from a table), so a point costs its two unique strings and a few varints.
struct IncidentWriter<'a> {
    layer: &'a mut LayerBuilder,
    names: &'a [Arc<str>],
    /// Days since 1970-01-01 of the tile's `today`.
    today_days: i64,
    keys: [u32; 7],
    name_values: Vec<Option<u32>>,
    status_values: [Option<u32>; Status::ALL.len()],
    /// Value index of small numbers (ages and supporter counts share the layer's values).
    small_values: Vec<Option<u32>>,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl<'a> IncidentWriter<'a> {
    fn new(
        layer: &'a mut LayerBuilder,
        names: &'a [Arc<str>],
        today: NaiveDate,
        n_points: usize,
    ) -> Self {
        // About 100 bytes a point: two unique strings and seven tag pairs.
        layer.reserve(n_points, 100);
        let keys = [
            "id",
            "reference",
            "service_code",
            "group",
            "status",
            "age_days",
            "supporters",
        ]
        .map(|k| layer.key(k));
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        Self {
            layer,
            names,
            today_days: (today - epoch).num_days(),
            keys,
            name_values: vec![None; names.len()],
            status_values: [None; Status::ALL.len()],
            small_values: vec![None; 1024],
        }
    }

    fn name_value(&mut self, n: u16) -> u32 {
        let n = usize::from(n);
        if let Some(Some(v)) = self.name_values.get(n) {
            return *v;
        }
        let name = self.names.get(n).map_or("", |s| &**s);
        let v = self.layer.value(&Prop::Str(name));
        if let Some(slot) = self.name_values.get_mut(n) {
            *slot = Some(v);
        }
        v
    }

    fn small_value(&mut self, n: u64) -> u32 {
        let Some(slot) = usize::try_from(n)
            .ok()
            .filter(|&n| n < self.small_values.len())
        else {
            return self.layer.value(&Prop::UInt(n));
        };
        if let Some(v) = self.small_values[slot] {
            return v;
        }
        let v = self.layer.value(&Prop::UInt(n));
        self.small_values[slot] = Some(v);
        v
    }

    fn write(&mut self, xy: (i64, i64), i: &Compact) {
        let mut id_buf = uuid::Uuid::encode_buffer();
        let id = i.id.hyphenated().encode_lower(&mut id_buf);
        // Whole UTC days, as `date_naive()` counts them.
        let age_days = (self.today_days - i.requested_us.div_euclid(MICROS_PER_DAY)).max(0) as u64;
        let status = i.status as usize;
        let status_value = if let Some(Some(v)) = self.status_values.get(status) {
            *v
        } else {
            let v = self.layer.value(&Prop::Str(i.status.as_str()));
            if let Some(slot) = self.status_values.get_mut(status) {
                *slot = Some(v);
            }
            v
        };
        let k = self.keys;
        let tags = [
            k[0],
            self.layer.value(&Prop::Unique(id)),
            k[1],
            self.layer.value(&Prop::Unique(i.reference())),
            k[2],
            self.name_value(i.service),
            k[3],
            self.name_value(i.group),
            k[4],
            status_value,
            k[5],
            self.small_value(age_days),
            k[6],
            self.small_value(u64::try_from(i.supporters).unwrap_or(0)),
        ];
        self.layer.point_tagged(None, xy, &tags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;
    use crate::geo::Position;
    use crate::spatial_index::Incident;
    use crate::tiles::mvt::Tile;
    use prost::Message as _;

    fn incident(p: Position, n: u32) -> Incident {
        let kind = if n % 2 == 0 {
            ("pothole", "Roads")
        } else {
            ("graffiti-removal", "Graffiti")
        };
        let status = if n % 10 == 0 {
            Status::Duplicate
        } else {
            Status::New
        };
        crate::spatial_index::test_incident(n, p, kind, status)
    }

    fn counts(tile: &Tile) -> (u64, usize) {
        let mut clustered = 0;
        let mut points = 0;
        for l in &tile.layers {
            if l.name == CLUSTERS {
                let k = l.keys.iter().position(|k| k == "point_count").unwrap() as u32;
                for f in &l.features {
                    let v = f.tags.chunks(2).find(|p| p[0] == k).unwrap()[1];
                    clustered += l.values[v as usize].uint_value.unwrap();
                }
            } else if l.name == INCIDENTS {
                points += l.features.len();
            }
        }
        (clustered, points)
    }

    #[test]
    fn a_dense_tile_is_clustered_and_no_tile_nears_500_kb() {
        // 20 000 incidents packed into 300 m around City Hall: more than MAX_POINTS in one z16 tile.
        let index = SpatialIndex::new();
        let mut all = Vec::new();
        for n in 0..20_000u32 {
            let (a, b) = (f64::from(n % 141) / 141.0, f64::from(n / 141) / 142.0);
            let p = Position::new(-118.2437 + a * 0.003, 34.0522 + b * 0.003).unwrap();
            all.push(incident(p, n));
        }
        index.replace_all(all.clone());
        let today = chrono::Utc::now().date_naive();
        let filter = TileFilter::default();
        let mut dense_point_tiles = 0;
        for z in 0..=MAX_ZOOM {
            let centre = Position::new(-118.2437 + 0.0015, 34.0522 + 0.0015).unwrap();
            let t = TileId::containing(centre, z);
            let bytes = build_tile(&index, t, &filter, today);
            assert!(bytes.len() < 500 * 1024, "z{z}: {} bytes", bytes.len());
            let tile = Tile::decode(bytes.as_slice()).unwrap();
            let (clustered, points) = counts(&tile);
            // Every tenth is a duplicate, hidden by default.
            let shown = all
                .iter()
                .filter(|i| i.status != Status::Duplicate && t.holds(i.position))
                .count();
            assert_eq!(clustered + points as u64, shown as u64, "z{z}");
            if shown > MAX_POINTS {
                assert!(clustered > 0, "z{z}: too many for points");
                dense_point_tiles += usize::from(z >= POINT_MIN_ZOOM);
            }
        }
        assert!(
            dense_point_tiles > 0,
            "the block is dense at point zooms too"
        );
    }
}
