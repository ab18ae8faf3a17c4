//! `Aggregator`: turns the stream of interval snapshots into the run's history
//! (`intermediate`), per-phase and whole-run totals, per-scenario summaries and the encoded
//! run-wide histograms. Only the running totals keep live histograms; each interval is kept
//! as its summary with its histograms serialized (a few hundred bytes each, compressed), so a
//! result can be merged with other processes' interval by interval (`merge`). A run's
//! aggregator keeps only recent intervals in memory ([`IntervalStore::spilling`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::MetricsError;
use super::codec::encode_histogram;
use super::snapshot::{IntervalSnapshot, PhaseTag};
use super::store::IntervalStore;
use super::summary::{PeriodSummary, PhaseSummary, ScenarioSummary, epoch_ms};

/// Below this an interval that recorded nothing is noise (e.g. the cut made by the first
/// `begin_phase` right at the start) and is left out of `intermediate`.
const MIN_EMPTY_INTERVAL: Duration = Duration::from_millis(1);

/// Everything the result file needs from the metrics of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics {
    pub aggregate: PeriodSummary,
    pub intermediate: Vec<PeriodSummary>,
    pub phases: Vec<PhaseSummary>,
    pub scenarios: Vec<ScenarioSummary>,
    /// Run-wide histograms, name → [`super::encode_histogram`] text.
    pub histograms: BTreeMap<String, String>,
}

/// Feed it every snapshot the collector cuts, in order; read live values from it
/// (e.g. for the status line); `finish` at the end.
#[derive(Debug, Default)]
pub struct Aggregator {
    total: Option<IntervalSnapshot>,
    phase: Option<(PhaseTag, IntervalSnapshot)>,
    phases: Vec<PhaseSummary>,
    intermediate: IntervalStore,
    /// The first histogram that could not be serialized, reported by `finish`.
    failed: Option<String>,
}

impl Aggregator {
    /// Keeps every interval in memory (merging results, tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `window` intervals in memory, older ones in a temporary file, so a run's
    /// memory does not grow with its duration.
    pub fn spilling(window: usize) -> Self {
        Self {
            intermediate: IntervalStore::spilling(window),
            ..Self::default()
        }
    }

    /// Adds one interval. Returns its summary, or `None` when it was an empty sliver.
    pub fn push(&mut self, snapshot: IntervalSnapshot) -> Option<&PeriodSummary> {
        let keep = !(snapshot.is_empty() && snapshot.duration() < MIN_EMPTY_INTERVAL);
        match &mut self.total {
            Some(total) => total.merge(&snapshot),
            None => {
                let mut total = snapshot.clone();
                total.phase = None;
                self.total = Some(total);
            }
        }
        let same_phase = matches!((&self.phase, &snapshot.phase), (Some((cur, _)), Some(tag)) if cur.index == tag.index);
        if !same_phase {
            self.close_phase();
        }
        if let Some(tag) = &snapshot.phase {
            match &mut self.phase {
                Some((_, acc)) => acc.merge(&snapshot),
                None => self.phase = Some((tag.clone(), snapshot.clone())),
            }
        }
        if !keep {
            return None;
        }
        let summary = snapshot.stored_summary().unwrap_or_else(|err| {
            self.failed.get_or_insert_with(|| err.to_string());
            snapshot.summary()
        });
        self.intermediate.push(summary);
        self.intermediate.last()
    }

    /// The interval history (how much of it is in memory, why spilling stopped).
    pub fn intervals(&self) -> &IntervalStore {
        &self.intermediate
    }

    /// Whole-run totals so far (histograms included), `None` before the first snapshot.
    pub fn total(&self) -> Option<&IntervalSnapshot> {
        self.total.as_ref()
    }

    /// Whole-run summary so far.
    pub fn aggregate(&self) -> Option<PeriodSummary> {
        self.total.as_ref().map(|t| t.summary())
    }

    /// The metrics so far, as [`Self::finish`] would give them if the run ended now (the
    /// current phase closed at the last cut). Reads the spilled intervals back.
    pub fn so_far(&self) -> Result<RunMetrics, MetricsError> {
        let mut phases = self.phases.clone();
        let mut failed = self.failed.clone();
        if let Some((tag, acc)) = &self.phase {
            phases.push(self.phase_summary(tag.clone(), acc, &mut failed));
        }
        if let Some(reason) = failed {
            return Err(MetricsError::HistogramEncode(reason));
        }
        Self::metrics(self.total.as_ref(), self.intermediate.to_vec()?, phases)
    }

    /// Closes the last phase and encodes the run-wide histograms.
    pub fn finish(mut self) -> Result<RunMetrics, MetricsError> {
        self.close_phase();
        if let Some(reason) = self.failed.take() {
            return Err(MetricsError::HistogramEncode(reason));
        }
        Self::metrics(
            self.total.as_ref(),
            self.intermediate.into_vec()?,
            self.phases,
        )
    }

    fn metrics(
        total: Option<&IntervalSnapshot>,
        intermediate: Vec<PeriodSummary>,
        phases: Vec<PhaseSummary>,
    ) -> Result<RunMetrics, MetricsError> {
        let empty;
        let total = match total {
            Some(t) => t,
            None => {
                let now = std::time::SystemTime::now();
                empty = IntervalSnapshot::empty(now, now);
                &empty
            }
        };
        let histograms = total
            .histograms
            .iter()
            .map(|(name, h)| Ok((name.clone(), encode_histogram(h)?)))
            .collect::<Result<BTreeMap<_, _>, MetricsError>>()?;
        Ok(RunMetrics {
            aggregate: total.summary(),
            intermediate,
            phases,
            scenarios: total.stored_scenario_summaries()?,
            histograms,
        })
    }

    fn close_phase(&mut self) {
        let Some((tag, acc)) = self.phase.take() else {
            return;
        };
        let mut failed = self.failed.take();
        let summary = self.phase_summary(tag, &acc, &mut failed);
        self.failed = failed;
        self.phases.push(summary);
    }

    fn phase_summary(
        &self,
        tag: PhaseTag,
        acc: &IntervalSnapshot,
        failed: &mut Option<String>,
    ) -> PhaseSummary {
        let run_start_ms = self.total.as_ref().map(|t| epoch_ms(t.start)).unwrap_or(0);
        let summary = acc.stored_summary().unwrap_or_else(|err| {
            failed.get_or_insert_with(|| err.to_string());
            acc.summary()
        });
        PhaseSummary {
            index: tag.index,
            name: tag.name,
            start_offset_ms: summary.start_ms.saturating_sub(run_start_ms),
            end_offset_ms: summary.end_ms.saturating_sub(run_start_ms),
            summary,
        }
    }
}
