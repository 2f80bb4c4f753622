//! Where a read is answered: the live index (the serving path) or `PostGIS` (verification and
//! the benchmarks' baseline). One parse for every endpoint that takes `source=`.

/// Where a query is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// The live in-memory index: the serving path.
    #[default]
    Index,
    /// The same query in `PostGIS`: for verifying the index and as the benchmark baseline.
    /// Staff only (analyst or admin), since a public slow path invites abuse.
    Postgis,
}

/// A `source` value other than `index` or `postgis`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be index or postgis")]
pub struct InvalidSource(pub String);

impl Source {
    /// `None` (absent) is the index.
    pub fn parse(s: Option<&str>) -> Result<Self, InvalidSource> {
        match s.map(str::trim) {
            None | Some("" | "index") => Ok(Self::Index),
            Some("postgis") => Ok(Self::Postgis),
            Some(other) => Err(InvalidSource(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_index_is_the_index() {
        assert_eq!(Source::parse(None), Ok(Source::Index));
        assert_eq!(Source::parse(Some("index")), Ok(Source::Index));
    }

    #[test]
    fn postgis_is_postgis() {
        assert_eq!(Source::parse(Some("postgis")), Ok(Source::Postgis));
    }

    #[test]
    fn anything_else_is_refused_with_the_value() {
        assert_eq!(
            Source::parse(Some("PostGIS")),
            Err(InvalidSource("PostGIS".into()))
        );
    }
}
