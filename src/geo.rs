//! Positions and bounding boxes in WGS 84 (lon/lat, SRID 4326), great-circle distances, and
//! the one place where citypin converts to geo, geojson and h3o types.
//!
//! Longitude comes first everywhere; h3o's `LatLng::new(lat, lng)` is called only here.

use std::fmt;

/// Mean Earth radius used by the haversine formula (IUGG), in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The H3 resolution stored with every report: cells of about 0.1 km² (edge ~ 174 m at res 9).
pub const REPORT_H3_RESOLUTION: h3o::Resolution = h3o::Resolution::Nine;

/// A validated WGS 84 position: finite, longitude in [-180, 180], latitude in [-90, 90].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    lon: f64,
    lat: f64,
}

/// Why a pair of numbers is not a position; carries the value at fault.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum PositionError {
    #[error("longitude {0} is not a finite number in [-180, 180]")]
    Longitude(f64),
    #[error("latitude {0} is not a finite number in [-90, 90]")]
    Latitude(f64),
}

impl PositionError {
    /// The name of the field at fault, as citypin's APIs spell it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Longitude(_) => "lon",
            Self::Latitude(_) => "lat",
        }
    }
}

impl Position {
    pub fn new(lon: f64, lat: f64) -> Result<Self, PositionError> {
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(PositionError::Longitude(lon));
        }
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(PositionError::Latitude(lat));
        }
        Ok(Self { lon, lat })
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Great-circle distance in metres (haversine on the mean sphere).
    pub fn distance_m(self, other: Self) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The H3 cell holding this position at `res`.
    pub fn h3_cell(self, res: h3o::Resolution) -> h3o::CellIndex {
        // Validated at construction, so LatLng cannot reject it.
        h3o::LatLng::new(self.lat, self.lon).map_or_else(
            |_| unreachable!("a Position is always a valid LatLng"),
            |ll| ll.to_cell(res),
        )
    }

    /// Coordinates rounded to 7 decimals (about 1 cm), as RFC 7946 advises.
    pub fn to_geojson(self) -> geojson::Geometry {
        geojson::Geometry::new(geojson::Value::Point(vec![
            round7(self.lon),
            round7(self.lat),
        ]))
    }

    pub fn to_geo(self) -> geo::Point<f64> {
        geo::Point::new(self.lon, self.lat)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.lon, self.lat)
    }
}

pub fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// Twice the signed area of a closed lon/lat ring (shoelace): positive when counter-clockwise.
pub fn ring_signed_area2(ring: &[[f64; 2]]) -> f64 {
    ring.windows(2)
        .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
        .sum()
}

/// An H3 cell's boundary as a closed GeoJSON ring: lon/lat, counter-clockwise (the RFC 7946
/// right-hand rule for exterior rings), coordinates rounded to 7 decimals.
pub fn h3_cell_ring(cell: h3o::CellIndex) -> Vec<[f64; 2]> {
    let mut ring: Vec<[f64; 2]> = cell
        .boundary()
        .iter()
        .map(|ll| [round7(ll.lng()), round7(ll.lat())])
        .collect();
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    if ring_signed_area2(&ring) < 0.0 {
        ring.reverse();
    }
    ring
}

/// H3 cell of a position at the stored resolution, as `PostgreSQL`'s signed bigint.
pub fn h3_cell_i64(p: Position) -> i64 {
    u64::from(p.h3_cell(REPORT_H3_RESOLUTION)) as i64
}

/// Parses a position from two optional numbers, naming the missing or bad one as the
/// request spells it (`lon`/`lat`, Open311's `long`/`lat`).
pub fn position_from_fields(
    lon: Option<f64>,
    lat: Option<f64>,
    lon_name: &str,
    lat_name: &str,
    errors: &mut Vec<crate::error::FieldError>,
) -> Option<Position> {
    use crate::error::FieldError;
    match (lon, lat) {
        (Some(lon), Some(lat)) => Position::new(lon, lat)
            .map_err(|e| {
                let field = if e.field() == "lon" {
                    lon_name
                } else {
                    lat_name
                };
                errors.push(FieldError::new(field, e.to_string()));
            })
            .ok(),
        (lon, lat) => {
            if lat.is_none() {
                errors.push(FieldError::new(lat_name, "is required"));
            }
            if lon.is_none() {
                errors.push(FieldError::new(lon_name, "is required"));
            }
            None
        }
    }
}

/// The centre of an H3 cell as a position.
pub fn h3_cell_center(cell: h3o::CellIndex) -> Position {
    let ll = h3o::LatLng::from(cell);
    Position {
        lon: ll.lng(),
        lat: ll.lat(),
    }
}

/// A lon/lat bounding box: corners are valid positions and `min_lat <= max_lat`.
/// `min_lon > max_lon` is allowed and means it crosses the antimeridian.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    min_lon: f64,
    min_lat: f64,
    max_lon: f64,
    max_lat: f64,
}

/// Why a text or four numbers are not a bounding box; carries the text at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BBoxError {
    #[error("{0:?} is not four comma-separated numbers")]
    NotNumbers(String),
    #[error("{0:?} must have exactly four numbers: minLon,minLat,maxLon,maxLat")]
    Count(String),
    #[error("{0}")]
    Corner(#[from] PositionError),
    #[error("{0:?}: minLat is greater than maxLat")]
    LatitudesSwapped(String),
}

impl BBox {
    /// A box from its corners, checked like [`BBox::parse`].
    pub fn new(min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64) -> Result<Self, BBoxError> {
        Position::new(min_lon, min_lat)?;
        Position::new(max_lon, max_lat)?;
        if min_lat > max_lat {
            return Err(BBoxError::LatitudesSwapped(format!(
                "{min_lon},{min_lat},{max_lon},{max_lat}"
            )));
        }
        Ok(Self {
            min_lon,
            min_lat,
            max_lon,
            max_lat,
        })
    }

    /// Parses `minLon,minLat,maxLon,maxLat` (the OGC and Open311-extension order).
    pub fn parse(s: &str) -> Result<Self, BBoxError> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| BBoxError::NotNumbers(s.to_owned()))?;
        let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
            return Err(BBoxError::Count(s.to_owned()));
        };
        Self::new(min_lon, min_lat, max_lon, max_lat).map_err(|e| match e {
            BBoxError::LatitudesSwapped(_) => BBoxError::LatitudesSwapped(s.to_owned()),
            other => other,
        })
    }

    pub fn min_lon(&self) -> f64 {
        self.min_lon
    }

    pub fn min_lat(&self) -> f64 {
        self.min_lat
    }

    pub fn max_lon(&self) -> f64 {
        self.max_lon
    }

    pub fn max_lat(&self) -> f64 {
        self.max_lat
    }

    /// The box grown by `dlon`/`dlat` degrees on every side, clamped to the globe (a box
    /// that does not cross the antimeridian is not made to).
    #[must_use]
    pub fn expanded(&self, dlon: f64, dlat: f64) -> BBox {
        BBox {
            min_lon: (self.min_lon - dlon).max(-180.0),
            min_lat: (self.min_lat - dlat).max(-90.0),
            max_lon: (self.max_lon + dlon).min(180.0),
            max_lat: (self.max_lat + dlat).min(90.0),
        }
    }

    pub fn crosses_antimeridian(&self) -> bool {
        self.min_lon > self.max_lon
    }

    pub fn contains(&self, p: Position) -> bool {
        let lat_ok = p.lat >= self.min_lat && p.lat <= self.max_lat;
        let lon_ok = if self.crosses_antimeridian() {
            p.lon >= self.min_lon || p.lon <= self.max_lon
        } else {
            p.lon >= self.min_lon && p.lon <= self.max_lon
        };
        lat_ok && lon_ok
    }

    /// The box split at the antimeridian into one or two plain boxes.
    pub fn parts(&self) -> Vec<BBox> {
        if self.crosses_antimeridian() {
            vec![
                BBox {
                    max_lon: 180.0,
                    ..*self
                },
                BBox {
                    min_lon: -180.0,
                    ..*self
                },
            ]
        } else {
            vec![*self]
        }
    }
}

/// The highest latitude Web Mercator shows: the square world of slippy-map tiles.
pub const MERCATOR_MAX_LAT: f64 = 85.051_128_779_806_59;

/// The deepest zoom citypin serves tiles for.
pub const MAX_TILE_ZOOM: u8 = 22;

/// A slippy-map tile in Web Mercator (EPSG:3857), XYZ scheme (y grows southwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    z: u8,
    x: u32,
    y: u32,
}

/// Why three numbers are not a tile; carries the value at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileIdError {
    #[error("zoom {0} is above the deepest zoom served ({MAX_TILE_ZOOM})")]
    Zoom(u32),
    #[error("column {x} is outside 0..{n} at this zoom")]
    Column { x: u32, n: u64 },
    #[error("row {y} is outside 0..{n} at this zoom")]
    Row { y: u32, n: u64 },
}

impl TileIdError {
    pub fn field(&self) -> &'static str {
        match self {
            Self::Zoom(_) => "z",
            Self::Column { .. } => "x",
            Self::Row { .. } => "y",
        }
    }
}

impl TileId {
    pub fn new(z: u32, x: u32, y: u32) -> Result<Self, TileIdError> {
        if z > u32::from(MAX_TILE_ZOOM) {
            return Err(TileIdError::Zoom(z));
        }
        let n = 1u64 << z;
        if u64::from(x) >= n {
            return Err(TileIdError::Column { x, n });
        }
        if u64::from(y) >= n {
            return Err(TileIdError::Row { y, n });
        }
        Ok(Self { z: z as u8, x, y })
    }

    pub fn z(self) -> u8 {
        self.z
    }

    pub fn x(self) -> u32 {
        self.x
    }

    pub fn y(self) -> u32 {
        self.y
    }

    /// The tile at zoom `z` whose half-open square `[x, x+1) × [y, y+1)` holds `p`, so every
    /// position belongs to exactly one tile per zoom.
    pub fn containing(p: Position, z: u8) -> Self {
        Self::from_coord(TileCoord::of(p), z)
    }

    /// As [`TileId::containing`], for a position already projected.
    pub fn from_coord(c: TileCoord, z: u8) -> Self {
        let z = z.min(MAX_TILE_ZOOM);
        let (fx, fy) = c.at_zoom(z);
        let max = ((1u64 << z) - 1) as f64;
        Self {
            z,
            x: fx.floor().clamp(0.0, max) as u32,
            y: fy.floor().clamp(0.0, max) as u32,
        }
    }

    /// The tile's bounds in lon/lat (north edge is `max_lat`).
    pub fn bbox(self) -> BBox {
        let n = (1u64 << self.z) as f64;
        let lon = |x: f64| x / n * 360.0 - 180.0;
        let lat = |y: f64| {
            (std::f64::consts::PI * (1.0 - 2.0 * y / n))
                .sinh()
                .atan()
                .to_degrees()
        };
        BBox {
            min_lon: lon(f64::from(self.x)),
            min_lat: lat(f64::from(self.y) + 1.0),
            max_lon: lon(f64::from(self.x) + 1.0),
            max_lat: lat(f64::from(self.y)),
        }
    }

    /// Whether `p` falls in this tile's half-open square (see [`TileId::containing`]).
    pub fn holds(self, p: Position) -> bool {
        Self::containing(p, self.z) == self
    }

    /// Where `p` lands in this tile's own grid of `extent` units (y down); may fall outside
    /// `0..=extent` for positions beyond the tile.
    pub fn to_tile_xy(self, p: Position, extent: u32) -> (i64, i64) {
        self.coord_to_tile_xy(TileCoord::of(p), extent)
    }

    /// As [`TileId::to_tile_xy`], for a position already projected.
    pub fn coord_to_tile_xy(self, c: TileCoord, extent: u32) -> (i64, i64) {
        let (fx, fy) = c.at_zoom(self.z);
        let e = f64::from(extent);
        (
            ((fx - f64::from(self.x)) * e).round() as i64,
            ((fy - f64::from(self.y)) * e).round() as i64,
        )
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

/// A position in Web Mercator's unit square (x east, y south, both in [0, 1]): the one
/// conversion from lon/lat to 3857 that tile code uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TileCoord {
    pub x: f64,
    pub y: f64,
}

impl TileCoord {
    pub fn of(p: Position) -> Self {
        let lat = p
            .lat
            .clamp(-MERCATOR_MAX_LAT, MERCATOR_MAX_LAT)
            .to_radians();
        let x = (p.lon + 180.0) / 360.0;
        let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0;
        Self { x, y }
    }

    /// The fractional tile column and row at zoom `z`.
    pub fn at_zoom(self, z: u8) -> (f64, f64) {
        let n = (1u64 << z) as f64;
        (self.x * n, self.y * n)
    }
}

/// Plain lon/lat boxes that together contain every point within `radius_m` of `center`: one
/// box, two when the circle crosses the antimeridian, or a full band of longitudes near a pole.
/// For bounding-box prefilters (a `GiST` `&&` in `PostGIS`); the exact test is the distance.
pub fn circle_bboxes(center: Position, radius_m: f64) -> Vec<BBox> {
    // Pad by a part in a million so rounding never drops a point on the circle.
    let dlat = (radius_m / EARTH_RADIUS_M).to_degrees() * 1.000_001 + 1e-9;
    let min_lat = (center.lat() - dlat).max(-90.0);
    let max_lat = (center.lat() + dlat).min(90.0);
    let band = |min_lon: f64, max_lon: f64| BBox {
        min_lon,
        min_lat,
        max_lon,
        max_lat,
    };
    let cos = min_lat.abs().max(max_lat.abs()).to_radians().cos();
    if max_lat >= 90.0 || min_lat <= -90.0 || cos <= 1e-12 || dlat / cos >= 180.0 {
        return vec![band(-180.0, 180.0)];
    }
    let dlon = dlat / cos;
    let (lo, hi) = (center.lon() - dlon, center.lon() + dlon);
    let mut boxes = vec![band(lo.max(-180.0), hi.min(180.0))];
    if lo < -180.0 {
        boxes.push(band(lo + 360.0, 180.0));
    }
    if hi > 180.0 {
        boxes.push(band(-180.0, hi - 360.0));
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    #[test]
    fn tile_math_round_trips_and_matches_known_tiles() {
        // Los Angeles City Hall is in z14 tile 2810/6541 (x = 2810.64, y = 6541.94 by the formula).
        let p = Position::new(-118.2427, 34.0537).unwrap();
        let t = TileId::containing(p, 14);
        assert_eq!((t.z(), t.x(), t.y()), (14, 2810, 6541));
        let b = t.bbox();
        assert!(b.contains(p), "{b:?}");
        assert!(t.holds(p));
        let (px, py) = t.to_tile_xy(p, 4096);
        assert!((0..=4096).contains(&px) && (0..=4096).contains(&py));
        // The north-west corner of a tile maps to (0, 0) in its own grid.
        let nw = Position::new(b.min_lon, b.max_lat).unwrap();
        assert_eq!(t.to_tile_xy(nw, 4096), (0, 0));
        assert_eq!(TileId::containing(nw, 14), t);
        let w = TileId::new(0, 0, 0).unwrap().bbox();
        assert!((w.max_lat - MERCATOR_MAX_LAT).abs() < 1e-9);
    }

    #[test]
    fn a_column_past_the_zoom_is_not_a_tile() {
        assert!(TileId::new(3, 8, 0).is_err());
    }

    #[test]
    fn a_zoom_past_the_deepest_is_not_a_tile() {
        assert!(TileId::new(23, 0, 0).is_err());
    }

    fn the_longitude_is_refused(lon: f64) {
        assert!(
            matches!(Position::new(lon, 0.0), Err(PositionError::Longitude(_))),
            "{lon}"
        );
    }

    cases! { the_longitude_is_refused {
        a_nan_longitude_is_refused: f64::NAN;
        a_longitude_past_180_is_refused: 180.5;
    }}

    fn the_latitude_is_refused(lat: f64) {
        assert!(
            matches!(Position::new(0.0, lat), Err(PositionError::Latitude(_))),
            "{lat}"
        );
    }

    cases! { the_latitude_is_refused {
        an_infinite_latitude_is_refused: f64::INFINITY;
        a_latitude_past_minus_90_is_refused: -90.1;
    }}

    #[test]
    fn the_corners_of_the_range_are_positions() {
        assert!(Position::new(-180.0, 90.0).is_ok());
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Los Angeles City Hall to Santa Monica Pier: about 24.3 km.
        let a = Position::new(-118.2427, 34.0537).unwrap();
        let b = Position::new(-118.4973, 34.0084).unwrap();
        let d = a.distance_m(b);
        assert!((d - 24_000.0).abs() < 1_000.0, "{d}");
        assert!(a.distance_m(a).abs() < 1e-9);
    }

    #[test]
    fn distance_across_the_antimeridian_is_short() {
        let a = Position::new(179.9999, 0.0).unwrap();
        let b = Position::new(-179.9999, 0.0).unwrap();
        assert!(a.distance_m(b) < 25.0);
    }

    #[test]
    fn h3_cell_rings_are_closed_and_counter_clockwise() {
        let cell = Position::new(-118.2437, 34.0522)
            .unwrap()
            .h3_cell(h3o::Resolution::Seven);
        let ring = h3_cell_ring(cell);
        assert!(ring.len() >= 7, "{ring:?}");
        assert_eq!(ring.first(), ring.last());
        assert!(ring_signed_area2(&ring) > 0.0);
        let c = h3_cell_center(cell);
        assert_eq!(c.h3_cell(h3o::Resolution::Seven), cell);
    }

    #[test]
    fn circle_boxes_cover_the_circle_across_the_antimeridian_and_near_poles() {
        let c = Position::new(179.9999, 10.0).unwrap();
        let boxes = circle_bboxes(c, 500.0);
        assert_eq!(boxes.len(), 2);
        let across = Position::new(-179.9995, 10.0).unwrap();
        assert!(c.distance_m(across) < 500.0);
        assert!(boxes.iter().any(|b| b.contains(across)));
        let polar = circle_bboxes(Position::new(0.0, 89.9999).unwrap(), 500.0);
        assert_eq!(
            (polar.len(), polar[0].min_lon, polar[0].max_lon),
            (1, -180.0, 180.0)
        );
        let la = circle_bboxes(Position::new(-118.25, 34.05).unwrap(), 100.0);
        let east = Position::new(-118.2490, 34.05).unwrap(); // ~92 m
        assert!(la.len() == 1 && la[0].contains(east));
    }

    #[test]
    fn bbox_parses_and_handles_the_antimeridian() {
        let b = BBox::parse("170,-10,-170,10").unwrap();
        assert!(b.crosses_antimeridian());
        assert!(b.contains(Position::new(175.0, 0.0).unwrap()));
        assert!(b.contains(Position::new(-175.0, 0.0).unwrap()));
        assert!(!b.contains(Position::new(0.0, 0.0).unwrap()));
        assert_eq!(b.parts().len(), 2);
    }

    fn the_bbox_is_refused(text: &str) {
        assert!(BBox::parse(text).is_err(), "{text}");
    }

    cases! { the_bbox_is_refused {
        a_bbox_of_three_numbers_is_refused: "1,2,3";
        a_bbox_whose_south_is_above_its_north_is_refused: "0,10,1,5";
        a_bbox_with_a_letter_is_refused: "0,0,1,x";
    }}
}
