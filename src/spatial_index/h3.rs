//! H3 roll-ups for hotspots: incidents counted per cell at any resolution up to the stored one.

use std::collections::HashMap;

use h3o::{CellIndex, Resolution};

use super::compact::{Compiled, Record};
use super::{Filter, SpatialIndex};
use crate::geo::BBox;

impl SpatialIndex {
    /// Incidents per H3 cell at `res` (coarser than or equal to the stored resolution 9; a
    /// finer one counts the stored cells) for those passing `filter`, optionally inside `bbox`.
    /// Computed from the records on demand: a pass over a million takes tens of milliseconds,
    /// and any filter works, which counts kept per filter could not offer.
    pub fn h3_counts(
        &self,
        res: Resolution,
        bbox: Option<&BBox>,
        filter: &Filter,
    ) -> HashMap<CellIndex, u32> {
        let compiled = Compiled::new(filter, &self.names);
        let mut counts: HashMap<CellIndex, u32> = HashMap::new();
        let mut count = |r: &Record| {
            if !compiled.matches(r) {
                return;
            }
            let Ok(cell) = CellIndex::try_from(r.h3_cell) else {
                return;
            };
            let cell = cell.parent(res).unwrap_or(cell);
            *counts.entry(cell).or_default() += 1;
        };
        match bbox {
            Some(b) => self.for_each_in_bbox(b, &mut count),
            None => self.for_each(&mut count),
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial_index::testing::incident;

    #[test]
    fn h3_counts_roll_up_to_coarser_cells() {
        let a = incident(-118.25, 34.05, 1);
        let b = incident(-118.2501, 34.0501, 2);
        let far = incident(-117.0, 33.0, 3);
        let idx = SpatialIndex::from_incidents(vec![a.clone(), b, far]);
        let counts = idx.h3_counts(Resolution::Five, None, &Filter::default());
        let parent = CellIndex::try_from(a.h3_cell)
            .unwrap()
            .parent(Resolution::Five)
            .unwrap();
        assert_eq!(counts.get(&parent), Some(&2));
        assert_eq!(counts.values().sum::<u32>(), 3);
        let bbox = BBox::parse("-118.3,34,-118.2,34.1").unwrap();
        let inside = idx.h3_counts(Resolution::Five, Some(&bbox), &Filter::default());
        assert_eq!(inside.values().sum::<u32>(), 2);
    }
}
