//! Cutting the collector's intervals (on a timer and at phase boundaries) into one ordered
//! stream, aggregating them, and telling the caller about each one (live progress, the
//! "generator cannot keep up" warning).
//!
//! What the numbers mean is `metrics`' business; how they are shown is the CLI's.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{Aggregator, Collector, MetricsError, PeriodSummary, RunMetrics, names};

/// An interval whose `schedule.lag` p99 is above this means the generator itself is late.
pub const LAG_WARNING: Duration = Duration::from_millis(50);

/// One finished interval, as the progress callback sees it.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Since the run started.
    pub elapsed: Duration,
    /// Planned length of all phases.
    pub total: Duration,
    /// The phase the interval belonged to (`None` during the graceful stop).
    pub phase: Option<String>,
    /// The interval's metrics.
    pub interval: PeriodSummary,
    /// The whole run so far.
    pub aggregate: Option<PeriodSummary>,
    /// `schedule.lag` p99 of the interval exceeded [`LAG_WARNING`]: the load generator cannot
    /// keep up, and its numbers understate the server.
    pub generator_overloaded: bool,
}

/// Called once per interval, from the engine's timer task; keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

pub(crate) struct Intervals {
    collector: Collector,
    aggregator: Mutex<Aggregator>,
    on_progress: Option<ProgressFn>,
    start: Instant,
    total: Duration,
    overloaded: Mutex<u32>,
}

impl Intervals {
    pub fn new(
        collector: Collector,
        on_progress: Option<ProgressFn>,
        start: Instant,
        total: Duration,
    ) -> Self {
        Intervals {
            collector,
            aggregator: Mutex::new(Aggregator::new()),
            on_progress,
            start,
            total,
            overloaded: Mutex::new(0),
        }
    }

    /// Ends the current interval.
    pub fn tick(&self) {
        self.cut(|c| c.snapshot());
    }

    /// Ends the current interval and attributes what follows to phase `index`.
    pub fn begin_phase(&self, index: usize, name: &str) {
        self.cut(|c| c.begin_phase(index, name));
    }

    /// Ends the current interval; what follows (the graceful stop) is in no phase.
    pub fn end_phases(&self) {
        self.cut(|c| c.end_phase());
    }

    /// How many intervals showed the generator overloaded.
    pub fn overloaded_intervals(&self) -> u32 {
        *self
            .overloaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn finish(self) -> Result<RunMetrics, MetricsError> {
        self.aggregator
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .finish()
    }

    fn cut(&self, take: impl FnOnce(&Collector) -> crate::metrics::IntervalSnapshot) {
        // Cutting and pushing under one lock keeps the stream ordered whoever cuts.
        let progress = {
            let mut aggregator = self
                .aggregator
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let snapshot = take(&self.collector);
            let phase = snapshot.phase.as_ref().map(|p| p.name.clone());
            let Some(interval) = aggregator.push(snapshot).cloned() else {
                return;
            };
            let lag_p99_ms = interval
                .summaries
                .get(names::SCHEDULE_LAG)
                .map(|s| s.p99)
                .unwrap_or(0.0);
            let generator_overloaded = lag_p99_ms > LAG_WARNING.as_secs_f64() * 1000.0;
            if generator_overloaded {
                *self
                    .overloaded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) += 1;
            }
            let aggregate = self.on_progress.as_ref().and(aggregator.aggregate());
            Progress {
                elapsed: self.start.elapsed(),
                total: self.total,
                phase,
                interval,
                aggregate,
                generator_overloaded,
            }
        };
        if let Some(callback) = &self.on_progress {
            callback(&progress);
        }
    }
}
