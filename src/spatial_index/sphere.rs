//! Positions as unit vectors (ECEF on the unit sphere). The R-tree holds these, because the
//! straight-line (chord) distance between two unit vectors is `2·sin(θ/2)`, strictly increasing
//! in the great-circle angle θ: nearest-first by chord is nearest-first by haversine, and the
//! antimeridian and the poles need no special case.

use std::f64::consts::PI;

use crate::geo::{BBox, EARTH_RADIUS_M, Position};

/// A point on the unit sphere: x towards (0°, 0°), y towards (90° E, 0°), z towards the north pole.
pub type Point3 = [f64; 3];

/// Slack added to every chord bound, on the unit sphere (about 6 µm on the ground). Unit-vector
/// components carry a rounding error near 1e-16, so this is ample, and it is far below the
/// centimetre within which citypin treats distances as ties.
const CHORD_SLACK: f64 = 1e-12;

pub fn unit_vector(p: Position) -> Point3 {
    let (lat, lon) = (p.lat().to_radians(), p.lon().to_radians());
    let c = lat.cos();
    [c * lon.cos(), c * lon.sin(), lat.sin()]
}

/// The squared chord between two unit vectors.
pub fn chord2(a: &Point3, b: &Point3) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// The squared chord bound that contains every point within `radius_m` (great-circle) of a
/// centre, with slack for rounding; the exact test is the haversine afterwards.
pub fn max_chord2(radius_m: f64) -> f64 {
    let theta = (radius_m / EARTH_RADIUS_M).clamp(0.0, PI);
    let c = 2.0 * (theta / 2.0).sin() + CHORD_SLACK;
    c * c
}

/// The squared chord a little past `chord2`, so near-ties around a cut-off are all collected
/// before they are ordered by the exact haversine distance.
pub fn past(chord2: f64) -> f64 {
    let c = chord2.max(0.0).sqrt() + CHORD_SLACK;
    c * c
}

/// The great-circle distance, in metres, of a squared chord: haversine's `a` is `chord² / 4`,
/// so this is the haversine distance, taken from the chord the tree has already computed
/// (one square root and one arcsine instead of four trigonometric calls).
pub fn arc_m(chord2: f64) -> f64 {
    2.0 * EARTH_RADIUS_M * (chord2.max(0.0).sqrt() / 2.0).min(1.0).asin()
}

/// A 3-D box that contains the part of the sphere inside a plain (non-crossing) lon/lat box.
pub fn envelope(part: &BBox) -> rstar::AABB<Point3> {
    let (la0, la1) = (part.min_lat().to_radians(), part.max_lat().to_radians());
    let (lo0, lo1) = (part.min_lon().to_radians(), part.max_lon().to_radians());
    // cos(lat) over [la0, la1]: largest at the latitude nearest the equator.
    let cos_lo = la0.cos().min(la1.cos());
    let cos_hi = if la0 <= 0.0 && la1 >= 0.0 {
        1.0
    } else {
        la0.cos().max(la1.cos())
    };
    let (cmin, cmax) = range_over(lo0, lo1, f64::cos, &[0.0], &[-PI, PI]);
    let (smin, smax) = range_over(lo0, lo1, f64::sin, &[PI / 2.0], &[-PI / 2.0]);
    let x = product_range((cos_lo, cos_hi), (cmin, cmax));
    let y = product_range((cos_lo, cos_hi), (smin, smax));
    let pad = 1e-9;
    rstar::AABB::from_corners(
        [x.0 - pad, y.0 - pad, la0.sin() - pad],
        [x.1 + pad, y.1 + pad, la1.sin() + pad],
    )
}

/// Range of `f` over `[a, b]` given where its maxima and minima lie.
fn range_over(a: f64, b: f64, f: fn(f64) -> f64, maxima: &[f64], minima: &[f64]) -> (f64, f64) {
    let (fa, fb) = (f(a), f(b));
    let mut lo = fa.min(fb);
    let mut hi = fa.max(fb);
    if maxima.iter().any(|m| (a..=b).contains(m)) {
        hi = 1.0;
    }
    if minima.iter().any(|m| (a..=b).contains(m)) {
        lo = -1.0;
    }
    (lo, hi)
}

/// Range of `r·t` for `r` in `rr` (non-negative) and `t` in `tt`.
fn product_range(rr: (f64, f64), tt: (f64, f64)) -> (f64, f64) {
    let c = [rr.0 * tt.0, rr.0 * tt.1, rr.1 * tt.0, rr.1 * tt.1];
    (
        c.iter().copied().fold(f64::INFINITY, f64::min),
        c.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstar::{AABB, Envelope};

    fn p(lon: f64, lat: f64) -> Position {
        Position::new(lon, lat).unwrap()
    }

    fn chord2(a: Position, b: Position) -> f64 {
        let (u, v) = (unit_vector(a), unit_vector(b));
        (0..3).map(|i| (u[i] - v[i]).powi(2)).sum()
    }

    #[test]
    fn the_arc_of_a_chord_is_the_haversine_distance() {
        let pairs = [
            (p(-118.25, 34.05), p(-118.25, 34.05)),
            (p(-118.25, 34.05), p(-118.250_000_1, 34.05)),
            (p(-118.25, 34.05), p(-118.245, 34.052)),
            (p(179.9999, 0.0), p(-179.9999, 0.0)),
            (p(10.0, 89.9999), p(-170.0, 89.9999)),
            (p(0.0, 90.0), p(123.0, 90.0)),
            (p(-118.25, 34.05), p(2.35, 48.85)),
            (p(0.0, 0.0), p(179.0, 0.5)),
        ];
        for (a, b) in pairs {
            let (arc, haversine) = (arc_m(chord2(a, b)), a.distance_m(b));
            assert!(
                (arc - haversine).abs() < 1e-6 + haversine * 1e-12,
                "{a} {b}: arc {arc} m, haversine {haversine} m"
            );
        }
    }

    #[test]
    fn chord_order_is_great_circle_order_where_degree_order_is_not() {
        // At 60° N a degree of longitude is half a degree of latitude on the ground.
        let c = p(0.0, 60.0);
        let east = p(1.5, 60.0); // ~83 km
        let north = p(0.0, 61.0); // ~111 km
        assert!(c.distance_m(east) < c.distance_m(north));
        assert!(chord2(c, east) < chord2(c, north));
    }

    #[test]
    fn radius_bound_contains_points_on_the_circle() {
        let c = p(-118.25, 34.05);
        let q = p(-118.25, 34.0545);
        let d = c.distance_m(q);
        assert!(chord2(c, q) <= max_chord2(d));
        assert!(chord2(c, q) > max_chord2(d * 0.999));
    }

    #[test]
    fn envelope_contains_every_point_of_its_box() {
        let boxes = [
            BBox::parse("-118.7,33.7,-118.1,34.4").unwrap(),
            BBox::parse("170,-10,180,10").unwrap(),
            BBox::parse("-180,80,180,90").unwrap(),
            BBox::parse("-100,-90,-80,-85").unwrap(),
        ];
        for b in boxes {
            let env: AABB<Point3> = envelope(&b);
            for i in 0..=20 {
                for j in 0..=20 {
                    let lon = b.min_lon() + (b.max_lon() - b.min_lon()) * f64::from(i) / 20.0;
                    let lat = b.min_lat() + (b.max_lat() - b.min_lat()) * f64::from(j) / 20.0;
                    assert!(
                        env.contains_point(&unit_vector(p(lon, lat))),
                        "{b:?} ({lon}, {lat})"
                    );
                }
            }
        }
    }
}
