//! A search radius in metres, as nearby and area queries take it.

/// A radius in metres: finite, greater than zero and at most [`RadiusMeters::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct RadiusMeters(f64);

/// A number that is not an accepted radius; carries the value.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("must be a number of metres in (0, {max}]", max = RadiusMeters::MAX)]
pub struct InvalidRadius(pub f64);

impl RadiusMeters {
    /// Largest radius a query may ask for: 50 km, a large city's extent.
    pub const MAX: f64 = 50_000.0;

    pub fn new(m: f64) -> Result<Self, InvalidRadius> {
        if m.is_finite() && m > 0.0 && m <= Self::MAX {
            Ok(Self(m))
        } else {
            Err(InvalidRadius(m))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cases::cases;

    #[test]
    fn fifty_kilometres_are_accepted() {
        assert!(RadiusMeters::new(50_000.0).is_ok_and(|r| r.get() >= 50_000.0));
    }

    #[test]
    fn just_past_fifty_kilometres_is_refused_with_the_value() {
        assert_eq!(
            RadiusMeters::new(50_000.001),
            Err(InvalidRadius(50_000.001))
        );
    }

    fn is_refused(radius: f64) {
        assert!(RadiusMeters::new(radius).is_err(), "{radius}");
    }

    cases! { is_refused {
        a_zero_radius_is_refused: 0.0;
        a_negative_radius_is_refused: -1.0;
        a_nan_radius_is_refused: f64::NAN;
        an_infinite_radius_is_refused: f64::INFINITY;
    }}

    #[test]
    fn a_millimetre_is_accepted() {
        assert!(RadiusMeters::new(0.001).is_ok());
    }
}
