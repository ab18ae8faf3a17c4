//! Tumbling windows over interval snapshots, for conditions that must hold "in every window"
//! (`ensure.window`): percentiles of a window are computed from merged histograms, never
//! averaged from per-interval percentiles.

use std::time::Duration;

use super::snapshot::IntervalSnapshot;
use super::summary::PeriodSummary;

/// Merges consecutive snapshots until they span `length`, then yields the window's summary.
#[derive(Debug)]
pub struct Window {
    length: Duration,
    current: Option<IntervalSnapshot>,
}

impl Window {
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            current: None,
        }
    }

    /// Adds one interval; returns the window's summary when it has reached its length.
    /// A window ends on an interval boundary, so it can be slightly longer than `length`.
    pub fn push(&mut self, snapshot: &IntervalSnapshot) -> Option<PeriodSummary> {
        let current = match &mut self.current {
            Some(c) => {
                c.merge(snapshot);
                c
            }
            None => self.current.insert(snapshot.clone()),
        };
        if current.duration() >= self.length {
            return self.current.take().map(|w| w.summary());
        }
        None
    }

    /// The last, partial window (if anything was pushed since the last full one).
    pub fn finish(&mut self) -> Option<PeriodSummary> {
        self.current.take().map(|w| w.summary())
    }
}
