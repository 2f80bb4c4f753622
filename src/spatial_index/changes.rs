//! A change feed for caches built on the index (the tile cache): every upsert, removal and
//! reload is announced with the positions it touched, after the index holds the new state.

use tokio::sync::broadcast;

use super::Compact;
use crate::geo::Position;

/// What one write did to the index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// An incident appeared at `new`, left `old`, or changed (both; equal if it did not move).
    /// `was` and `now` are the visible versions before and after, for standing aggregates
    /// (the tiles' low-zoom pyramid) that subtract the old and add the new.
    Incident {
        old: Option<Position>,
        new: Option<Position>,
        was: Option<Compact>,
        now: Option<Compact>,
    },
    /// The whole content was replaced: every cached view is stale.
    Reloaded,
}

/// The sending side, held by the index. Sending never blocks; a subscriber that falls more
/// than [`ChangeFeed::CAPACITY`] changes behind sees `Lagged` and must drop everything.
pub struct ChangeFeed(broadcast::Sender<Change>);

impl ChangeFeed {
    pub const CAPACITY: usize = 4096;

    pub fn send(&self, change: Change) {
        // No subscriber is fine: nothing to invalidate.
        let _ = self.0.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self(broadcast::channel(Self::CAPACITY).0)
    }
}
