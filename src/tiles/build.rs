//! Building one tile from the live index: one pass over the tile and its hotspot margin,
//! then the `hotspots`, `clusters` and `incidents` layers encoded as MVT.

use std::cell::RefCell;

use chrono::NaiveDate;

use super::cluster::{self, Clusters};
use super::hotspots::{self, HotspotCounts};
use super::model::TileFilter;
use super::mvt::{self, EXTENT, LayerBuilder, Prop};
use crate::geo::{TileCoord, TileId};
use crate::spatial_index::{Incident, SpatialIndex};

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

/// Everything one pass over the index gathers for a tile.
struct Gathered {
    clusters: Clusters,
    points: Vec<Incident>,
    hotspots: HotspotCounts,
}

/// Builds the tile's MVT bytes (empty layers are left out, so an empty tile is zero bytes).
/// `today` fixes `age_days`, so a cached tile is stale the next day.
pub fn build_tile(
    index: &SpatialIndex,
    tile: TileId,
    filter: &TileFilter,
    today: NaiveDate,
) -> Vec<u8> {
    let z = tile.z();
    let want_points = z >= POINT_MIN_ZOOM;
    let acc = RefCell::new(Gathered {
        clusters: Clusters::default(),
        points: Vec::new(),
        hotspots: HotspotCounts::new(z),
    });
    // `in_bbox` is the index's public query; returning false from its predicate visits every
    // incident without cloning it, which keeps a 250 000-incident z10 tile cheap.
    index.in_bbox(&hotspots::query_area(tile), |i| {
        if filter.keep(i) {
            let mut acc = acc.borrow_mut();
            acc.hotspots.add(i.h3_cell);
            let c = TileCoord::of(i.position);
            if TileId::from_coord(c, z) == tile {
                acc.clusters.add(i, c, z);
                if want_points && acc.points.len() <= MAX_POINTS {
                    acc.points.push(i.clone());
                }
            }
        }
        false
    });
    let acc = acc.into_inner();
    let mut hot = LayerBuilder::new(HOTSPOTS);
    acc.hotspots.write(tile, &mut hot);
    let mut clusters = LayerBuilder::new(CLUSTERS);
    let mut points = LayerBuilder::new(INCIDENTS);
    if want_points && acc.points.len() <= MAX_POINTS {
        let mut sorted = acc.points;
        sorted.sort_unstable_by_key(|i| i.id);
        for i in &sorted {
            write_incident(&mut points, tile, i, today);
        }
    } else {
        for c in acc.clusters.into_sorted() {
            if let Some(i) = &c.single {
                write_incident(&mut points, tile, i, today);
                continue;
            }
            let abbreviated = cluster::abbreviate(c.count);
            let keys: Vec<String> = c
                .groups
                .iter()
                .map(|(g, _)| cluster::group_key(g))
                .collect();
            let mut props: Vec<(&str, Prop<'_>)> = vec![
                ("point_count", Prop::UInt(c.count)),
                ("point_count_abbreviated", Prop::Str(&abbreviated)),
            ];
            props.extend(
                keys.iter()
                    .zip(&c.groups)
                    .map(|(k, (_, n))| (k.as_str(), Prop::UInt(*n))),
            );
            clusters.point(
                Some(c.id(z)),
                tile.coord_to_tile_xy(c.centre(), EXTENT),
                &props,
            );
        }
    }
    mvt::encode(vec![hot, clusters, points])
}

/// The lon/lat box `[west, south, east, north]` of the incidents the filter shows, if any.
pub fn data_bounds(index: &SpatialIndex, filter: &TileFilter) -> Option<[f64; 4]> {
    let b = std::cell::Cell::new(None::<[f64; 4]>);
    let world = crate::geo::BBox {
        min_lon: -180.0,
        min_lat: -90.0,
        max_lon: 180.0,
        max_lat: 90.0,
    };
    index.in_bbox(&world, |i| {
        if filter.keep(i) {
            let (lon, lat) = (i.position.lon(), i.position.lat());
            b.set(Some(
                b.get().map_or([lon, lat, lon, lat], |[w, s, e, n]| {
                    [w.min(lon), s.min(lat), e.max(lon), n.max(lat)]
                }),
            ));
        }
        false
    });
    b.get()
}

fn write_incident(layer: &mut LayerBuilder, tile: TileId, i: &Incident, today: NaiveDate) {
    let id = i.id.to_string();
    let age_days = (today - i.requested_at.date_naive()).num_days().max(0) as u64;
    layer.point(
        None,
        tile.to_tile_xy(i.position, EXTENT),
        &[
            ("id", Prop::Str(&id)),
            ("reference", Prop::Str(&i.reference)),
            ("service_code", Prop::Str(&i.service_code)),
            ("group", Prop::Str(&i.group)),
            ("status", Prop::Str(i.status.as_str())),
            ("age_days", Prop::UInt(age_days)),
            (
                "supporters",
                Prop::UInt(u64::try_from(i.supporters).unwrap_or(0)),
            ),
        ],
    );
}
