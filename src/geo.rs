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

/// The centre of an H3 cell as a position.
pub fn h3_cell_center(cell: h3o::CellIndex) -> Position {
    let ll = h3o::LatLng::from(cell);
    Position {
        lon: ll.lng(),
        lat: ll.lat(),
    }
}

/// A lon/lat bounding box. `min_lon > max_lon` is allowed and means it crosses the antimeridian.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    /// Parses `minLon,minLat,maxLon,maxLat` (the OGC and Open311-extension order).
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{s:?} is not four comma-separated numbers"))?;
        let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
            return Err(format!(
                "{s:?} must have exactly four numbers: minLon,minLat,maxLon,maxLat"
            ));
        };
        Position::new(min_lon, min_lat).map_err(|e| e.to_string())?;
        Position::new(max_lon, max_lat).map_err(|e| e.to_string())?;
        if min_lat > max_lat {
            return Err(format!("{s:?}: minLat is greater than maxLat"));
        }
        Ok(Self {
            min_lon,
            min_lat,
            max_lon,
            max_lat,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_rejects_non_finite_and_out_of_range_values() {
        assert!(matches!(
            Position::new(f64::NAN, 0.0),
            Err(PositionError::Longitude(_))
        ));
        assert!(matches!(
            Position::new(0.0, f64::INFINITY),
            Err(PositionError::Latitude(_))
        ));
        assert!(matches!(
            Position::new(180.5, 0.0),
            Err(PositionError::Longitude(_))
        ));
        assert!(matches!(
            Position::new(0.0, -90.1),
            Err(PositionError::Latitude(_))
        ));
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
    fn bbox_parses_and_handles_the_antimeridian() {
        let b = BBox::parse("170,-10,-170,10").unwrap();
        assert!(b.crosses_antimeridian());
        assert!(b.contains(Position::new(175.0, 0.0).unwrap()));
        assert!(b.contains(Position::new(-175.0, 0.0).unwrap()));
        assert!(!b.contains(Position::new(0.0, 0.0).unwrap()));
        assert_eq!(b.parts().len(), 2);
        assert!(BBox::parse("1,2,3").is_err());
        assert!(BBox::parse("0,10,1,5").is_err());
        assert!(BBox::parse("0,0,1,x").is_err());
    }
}
