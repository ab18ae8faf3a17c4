//! Cutting the collector's intervals (on a timer and at phase boundaries) into one ordered
//! stream, aggregating them, checking thresholds on them (`abortOnFail` stops the run at the
//! first breach), and telling the caller about each one (live progress, the "generator
//! cannot keep up" warning).
//!
//! What the numbers mean is `metrics`' business, what a threshold means `thresholds`'; how
//! they are shown is the CLI's.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::thresholds::{Breach, ThresholdEvaluator, ThresholdOutcome};
use crate::metrics::{
    Aggregator, Collector, IntervalSnapshot, MetricsError, PeriodSummary, RunMetrics, SPILL_WINDOW,
};
use crate::vocab::names;

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
    /// Set on the interval that breached a condition with `abortOnFail`: the run stops.
    pub breach: Option<Breach>,
    /// The interval as recorded (histograms and per-scenario parts), for live outputs that
    /// keep their own totals (the metrics endpoint). Shared, not copied, between callbacks.
    pub snapshot: Arc<IntervalSnapshot>,
    /// The run's id (the one in delivery stamps and the result file).
    pub run_id: Arc<str>,
    /// How many intervals of the run's history were held in memory after this one was cut
    /// (at most [`SPILL_WINDOW`]; older ones are in a temporary file).
    pub intervals_in_memory: usize,
}

/// Called once per interval, from the engine's timer task; keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What the intervals add up to at the end of the run.
pub(crate) struct Finished {
    pub metrics: RunMetrics,
    pub thresholds: Vec<ThresholdOutcome>,
    pub breach: Option<Breach>,
    pub overloaded_intervals: u32,
}

struct State {
    aggregator: Aggregator,
    evaluator: ThresholdEvaluator,
    breach: Option<Breach>,
    overloaded: u32,
}

pub(crate) struct Intervals {
    collector: Collector,
    state: Mutex<State>,
    on_progress: Option<ProgressFn>,
    /// Cancelled on an `abortOnFail` breach.
    abort: CancellationToken,
    start: Instant,
    total: Duration,
    /// Gets a copy of every snapshot (the adaptive and breaking-point drivers judge them).
    observer: OnceLock<mpsc::UnboundedSender<IntervalSnapshot>>,
    run_id: Arc<str>,
}

impl Intervals {
    pub fn new(
        collector: Collector,
        evaluator: ThresholdEvaluator,
        on_progress: Option<ProgressFn>,
        abort: CancellationToken,
        start: Instant,
        total: Duration,
        run_id: Arc<str>,
    ) -> Self {
        Intervals {
            collector,
            state: Mutex::new(State {
                // A run's history goes to a temporary file as it grows: memory stays flat
                // however long the run (the live outputs read only the latest interval).
                aggregator: Aggregator::spilling(SPILL_WINDOW),
                evaluator,
                breach: None,
                overloaded: 0,
            }),
            on_progress,
            abort,
            start,
            total,
            observer: OnceLock::new(),
            run_id,
        }
    }

    /// A stream of every snapshot cut from now on, in order (one observer per run).
    pub fn observe(&self) -> Option<mpsc::UnboundedReceiver<IntervalSnapshot>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.observer.set(tx).ok().map(|()| rx)
    }

    /// The metrics so far, as `finish` would give them if the run ended now.
    pub fn partial(&self) -> Result<RunMetrics, MetricsError> {
        self.lock().aggregator.so_far()
    }

    /// Intervals held in memory now and intervals cut in all.
    #[cfg(test)]
    pub fn held_intervals(&self) -> (usize, usize) {
        let state = self.lock();
        let store = state.aggregator.intervals();
        (store.held(), store.len())
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

    pub fn finish(self) -> Result<Finished, MetricsError> {
        let state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let metrics = state.aggregator.finish()?;
        let thresholds = state.evaluator.finish(&metrics.aggregate);
        Ok(Finished {
            metrics,
            thresholds,
            breach: state.breach,
            overloaded_intervals: state.overloaded,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cut(&self, take: impl FnOnce(&Collector) -> IntervalSnapshot) {
        // Cutting and pushing under one lock keeps the stream ordered whoever cuts.
        let progress = {
            let mut state = self.lock();
            let snapshot = take(&self.collector);
            if let Some(observer) = self.observer.get() {
                let _ = observer.send(snapshot.clone());
            }
            let breach = state.evaluator.push_interval(&snapshot);
            if let Some(breach) = &breach {
                state.breach = Some(breach.clone());
                self.abort.cancel();
            }
            let phase = snapshot.phase.as_ref().map(|p| p.name.clone());
            // Copied only when someone listens: the copy carries the interval's histograms.
            let shared = self
                .on_progress
                .as_ref()
                .map(|_| Arc::new(snapshot.clone()));
            let Some(interval) = state.aggregator.push(snapshot).cloned() else {
                return;
            };
            let intervals_in_memory = state.aggregator.intervals().held();
            let lag_p99_ms = interval
                .summaries
                .get(names::SCHEDULE_LAG)
                .map(|s| s.p99)
                .unwrap_or(0.0);
            let generator_overloaded = lag_p99_ms > LAG_WARNING.as_secs_f64() * 1000.0;
            if generator_overloaded {
                state.overloaded += 1;
            }
            let Some(snapshot) = shared else {
                return;
            };
            let aggregate = self.on_progress.as_ref().and(state.aggregator.aggregate());
            Progress {
                elapsed: self.start.elapsed(),
                total: self.total,
                phase,
                interval,
                aggregate,
                generator_overloaded,
                breach,
                snapshot,
                run_id: Arc::clone(&self.run_id),
                intervals_in_memory,
            }
        };
        if let Some(callback) = &self.on_progress {
            callback(&progress);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Registry;

    fn intervals_with(
        progress: Arc<Mutex<Vec<Progress>>>,
    ) -> (Intervals, crate::metrics::Recorder) {
        let mut registry = Registry::new();
        let _ = registry.histogram(names::SCHEDULE_LAG);
        let collector = Collector::new(registry);
        let recorder = collector.recorder();
        let sink: ProgressFn = Arc::new(move |p: &Progress| {
            if let Ok(mut all) = progress.lock() {
                all.push(p.clone());
            }
        });
        let evaluator = ThresholdEvaluator::new(
            &crate::plan::Ensure::default(),
            std::time::SystemTime::now(),
        );
        let intervals = Intervals::new(
            collector,
            evaluator,
            Some(sink),
            CancellationToken::new(),
            Instant::now(),
            Duration::ZERO,
            Arc::from("test-run"),
        );
        (intervals, recorder)
    }

    #[test]
    fn a_late_generator_is_flagged_per_interval() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (intervals, recorder) = intervals_with(Arc::clone(&seen));
        let lag = recorder.histogram(names::SCHEDULE_LAG);
        intervals.begin_phase(0, "hold");
        recorder.record(lag, Duration::from_millis(2));
        intervals.tick();
        for _ in 0..100 {
            recorder.record(lag, Duration::from_millis(120));
        }
        intervals.tick();
        let flags: Vec<(Option<String>, bool)> = seen
            .lock()
            .map(|all| {
                all.iter()
                    .map(|p| (p.phase.clone(), p.generator_overloaded))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            flags,
            vec![(Some("hold".into()), false), (Some("hold".into()), true)]
        );
        let finished = intervals.finish().map(|f| f.overloaded_intervals).ok();
        assert_eq!(finished, Some(1));
    }

    #[test]
    fn a_long_history_is_held_in_a_bounded_window_and_finished_whole() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (intervals, recorder) = intervals_with(Arc::clone(&seen));
        let lag = recorder.histogram(names::SCHEDULE_LAG);
        intervals.begin_phase(0, "hold");
        let cuts = SPILL_WINDOW * 20;
        for i in 0..cuts {
            recorder.record(lag, Duration::from_micros(100 + i as u64));
            intervals.tick();
            let (held, total) = intervals.held_intervals();
            assert!(held <= SPILL_WINDOW, "{held} intervals held after {total}");
        }
        let so_far = intervals.partial().map(|m| m.intermediate.len()).ok();
        assert_eq!(so_far, Some(cuts));
        let most_held = seen
            .lock()
            .map(|all| all.iter().map(|p| p.intervals_in_memory).max())
            .ok()
            .flatten();
        assert_eq!(most_held, Some(SPILL_WINDOW));
        let finished = intervals.finish().map(|f| f.metrics.intermediate).ok();
        let lags: Option<Vec<u64>> = finished.map(|all| {
            all.iter()
                .map(|p| p.summaries[names::SCHEDULE_LAG].count)
                .collect()
        });
        assert_eq!(lags, Some(vec![1; cuts]));
    }
}
