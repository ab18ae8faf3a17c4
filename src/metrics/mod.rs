//! Recording (cheap, no lock contention on the hot path), interval snapshots, aggregation,
//! the threshold value lookup, histogram serialization and the merge of several processes'
//! stored metrics (`merge`).
//!
//! It knows metric names and numbers only: nothing about plans, sockets or protocols, and
//! nothing of the threshold grammar (it answers `stat(metric, Stat)`; parsing and comparing
//! belong to the caller).
//!
//! How the pieces fit:
//! 1. [`Registry`] interns the names known at run start into `Copy` ids.
//! 2. [`Collector::new`] takes it; [`Collector::recorder`] hands out [`Recorder`]s, which the
//!    vusers use on the hot path (per-thread shards, no contended lock).
//! 3. Every interval the engine calls [`Collector::snapshot`] (and [`Collector::begin_phase`]
//!    / [`Collector::end_phase`] at phase boundaries) and feeds the [`IntervalSnapshot`]s to an
//!    [`Aggregator`], whose [`Aggregator::finish`] gives the [`RunMetrics`] for the result.
//!    Windowed thresholds feed the same snapshots to a [`Window`] and check
//!    [`PeriodSummary::stat`] on each summary it yields.
//!
//! Clocks: `snapshot()` uses the wall clock; tests and engines with a virtual clock use the
//! `*_at` variants so rates divide by the intended interval length.

mod aggregate;
mod codec;
mod collector;
mod merge;
mod recorder;
mod registry;
mod snapshot;
mod store;
mod summary;
mod window;

#[cfg(test)]
mod tests;

pub use aggregate::{Aggregator, RunMetrics};
pub use codec::{decode_all, decode_histogram, encode_all, encode_histogram};
pub use collector::Collector;
pub use hdrhistogram::Histogram;
pub use merge::{merge_intervals, merge_scenarios};
pub use recorder::{HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG, Recorder, new_histogram};
pub use registry::{CounterId, GaugeId, HistogramId, Registry, ScenarioId};
pub use snapshot::{GaugeLevel, IntervalSnapshot, PhaseTag, ScenarioSnapshot};
pub use store::{IntervalStore, SPILL_WINDOW};
pub use summary::{
    GaugeSummary, PeriodSummary, PhaseSummary, ScenarioSummary, Summary, epoch_ms, epoch_us,
};
pub use window::Window;

/// Errors of the metrics module (only histogram (de)serialization can fail).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("could not serialize a latency histogram: {0}")]
    HistogramEncode(String),
    #[error(
        "could not read a serialized latency histogram ({0}); the result file is damaged or was \
         not written by chatload"
    )]
    HistogramDecode(String),
    #[error("could not read back the intervals kept in a temporary file: {0}")]
    Spill(String),
}
