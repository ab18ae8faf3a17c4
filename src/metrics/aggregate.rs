//! `Aggregator`: turns the stream of interval snapshots into the run's history
//! (`intermediate`), per-phase and whole-run totals, per-scenario summaries and the encoded
//! run-wide histograms. Only the running totals keep live histograms; each interval is kept
//! as its summary with its histograms serialized (a few hundred bytes each, compressed), so a
//! result can be merged with other processes' interval by interval (`merge`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::MetricsError;
use super::codec::encode_histogram;
use super::snapshot::{IntervalSnapshot, PhaseTag};
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
#[derive(Clone, Debug, Default)]
pub struct Aggregator {
    total: Option<IntervalSnapshot>,
    phase: Option<(PhaseTag, IntervalSnapshot)>,
    phases: Vec<PhaseSummary>,
    intermediate: Vec<PeriodSummary>,
    /// The first histogram that could not be serialized, reported by `finish`.
    failed: Option<String>,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
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

    /// Whole-run totals so far (histograms included), `None` before the first snapshot.
    pub fn total(&self) -> Option<&IntervalSnapshot> {
        self.total.as_ref()
    }

    /// Whole-run summary so far.
    pub fn aggregate(&self) -> Option<PeriodSummary> {
        self.total.as_ref().map(|t| t.summary())
    }

    pub fn intermediate(&self) -> &[PeriodSummary] {
        &self.intermediate
    }

    /// Closes the last phase and encodes the run-wide histograms.
    pub fn finish(mut self) -> Result<RunMetrics, MetricsError> {
        self.close_phase();
        if let Some(reason) = self.failed.take() {
            return Err(MetricsError::HistogramEncode(reason));
        }
        let total = match self.total {
            Some(t) => t,
            None => {
                let now = std::time::SystemTime::now();
                IntervalSnapshot::empty(now, now)
            }
        };
        let histograms = total
            .histograms
            .iter()
            .map(|(name, h)| Ok((name.clone(), encode_histogram(h)?)))
            .collect::<Result<BTreeMap<_, _>, MetricsError>>()?;
        Ok(RunMetrics {
            aggregate: total.summary(),
            intermediate: self.intermediate,
            phases: self.phases,
            scenarios: total.stored_scenario_summaries()?,
            histograms,
        })
    }

    fn close_phase(&mut self) {
        let Some((tag, acc)) = self.phase.take() else {
            return;
        };
        let run_start_ms = self.total.as_ref().map(|t| epoch_ms(t.start)).unwrap_or(0);
        let summary = acc.stored_summary().unwrap_or_else(|err| {
            self.failed.get_or_insert_with(|| err.to_string());
            acc.summary()
        });
        self.phases.push(PhaseSummary {
            index: tag.index,
            name: tag.name,
            start_offset_ms: summary.start_ms.saturating_sub(run_start_ms),
            end_offset_ms: summary.end_ms.saturating_sub(run_start_ms),
            summary,
        });
    }
}
