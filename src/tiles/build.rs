//! Building one tile from the live index: one pass over the tile and its hotspot margin,
//! then the `hotspots`, `clusters` and `incidents` layers encoded as MVT.

use std::sync::Arc;

use chrono::NaiveDate;

use super::cluster::{self, Clusters};
use super::hotspots::{self, HotspotCounts};
use super::model::TileFilter;
use super::mvt::{self, EXTENT, LayerBuilder, Prop};
use super::pyramid::Pyramid;
use crate::geo::{TileCoord, TileId};
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
    let mut points: Vec<Compact> = Vec::new();
    let mut hotspots = HotspotCounts::new(z);
    // One pass over the compact records of the tile and its hotspot margin: nothing is
    // allocated per incident, which keeps a 450 000-incident z10 tile a scan, not a copy.
    if let Some(index_filter) = filter.index_filter() {
        index.visit_matching(&hotspots::query_area(tile), &index_filter, |i| {
            if !filter.keep_time(i.requested_us) {
                return;
            }
            hotspots.add(i.h3_cell);
            let c = TileCoord::of(i.position);
            if TileId::from_coord(c, z) == tile {
                clusters.add(i, c, z);
                if want_points && points.len() <= MAX_POINTS {
                    points.push(*i);
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
        points.sort_unstable_by_key(|i| i.id);
        for i in &points {
            write_incident(&mut point_layer, tile, i, &names, today);
        }
    } else {
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
    for c in sorted {
        if let Some(i) = &c.single {
            write_incident(points, tile, i, names, today);
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

fn write_incident(
    layer: &mut LayerBuilder,
    tile: TileId,
    i: &Compact,
    names: &[Arc<str>],
    today: NaiveDate,
) {
    let mut id_buf = uuid::Uuid::encode_buffer();
    let id = i.id.hyphenated().encode_lower(&mut id_buf);
    let requested = chrono::DateTime::from_timestamp_micros(i.requested_us).unwrap_or_default();
    let age_days = (today - requested.date_naive()).num_days().max(0) as u64;
    let name = |n: u16| names.get(usize::from(n)).map_or("", |s| &**s);
    layer.point(
        None,
        tile.to_tile_xy(i.position, EXTENT),
        &[
            // Ids and references are unique per feature: not worth interning.
            ("id", Prop::Unique(id)),
            ("reference", Prop::Unique(i.reference())),
            ("service_code", Prop::Str(name(i.service))),
            ("group", Prop::Str(name(i.group))),
            ("status", Prop::Str(i.status.as_str())),
            ("age_days", Prop::UInt(age_days)),
            (
                "supporters",
                Prop::UInt(u64::try_from(i.supporters).unwrap_or(0)),
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::{Position, REPORT_H3_RESOLUTION};
    use crate::reports::model::Status;
    use crate::spatial_index::Incident;
    use crate::tiles::mvt::Tile;
    use prost::Message as _;

    fn incident(p: Position, n: u32) -> Incident {
        Incident {
            id: uuid::Uuid::from_u128(u128::from(n) + 1),
            reference: Arc::from(format!("CP-{n:08}").as_str()),
            position: p,
            service_code: Arc::from(if n % 2 == 0 {
                "pothole"
            } else {
                "graffiti-removal"
            }),
            group: Arc::from(if n % 2 == 0 { "Roads" } else { "Graffiti" }),
            status: if n % 10 == 0 {
                Status::Duplicate
            } else {
                Status::New
            },
            requested_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            supporters: 0,
            duplicate_of: None,
            h3_cell: u64::from(p.h3_cell(REPORT_H3_RESOLUTION)),
            change_seq: 1,
        }
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
