//! `IntervalSnapshot`: everything recorded between two cuts, with live histograms, so
//! snapshots can be merged exactly (into windows, phases, the whole run) before being turned
//! into the millisecond summaries of `summary.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::collector::add_into;

/// The phase a snapshot belongs to (index in the plan's expanded phase list, and its name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseTag {
    pub index: usize,
    pub name: String,
}

/// A gauge's level: `last` at the end of the period, `max` the highest level seen at any
/// snapshot within it (levels are sampled at cuts, not on every change).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct GaugeLevel {
    pub last: i64,
    pub max: i64,
}

/// What one scenario's own metrics recorded (see `Registry::scenario_counter`).
#[derive(Clone, Debug)]
pub struct ScenarioSnapshot {
    pub name: String,
    pub weight: u32,
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, GaugeLevel>,
    pub histograms: BTreeMap<String, Histogram<u64>>,
}

/// Everything recorded in `[start, end)`. Top-level maps are run-wide (each name summed over
/// every scenario that registered it); `scenarios` holds the per-scenario parts.
/// Every registered counter and gauge is present (zeros included); a histogram only once it
/// has a sample.
#[derive(Clone, Debug)]
pub struct IntervalSnapshot {
    pub start: SystemTime,
    pub end: SystemTime,
    pub phase: Option<PhaseTag>,
    pub counters: BTreeMap<String, u64>,
    pub gauges: BTreeMap<String, GaugeLevel>,
    /// Values in microseconds.
    pub histograms: BTreeMap<String, Histogram<u64>>,
    pub scenarios: Vec<ScenarioSnapshot>,
}

impl IntervalSnapshot {
    pub fn empty(start: SystemTime, end: SystemTime) -> Self {
        Self {
            start,
            end,
            phase: None,
            counters: BTreeMap::new(),
            gauges: BTreeMap::new(),
            histograms: BTreeMap::new(),
            scenarios: Vec::new(),
        }
    }

    /// `end - start`, zero if the clock went backwards.
    pub fn duration(&self) -> Duration {
        self.end
            .duration_since(self.start)
            .unwrap_or(Duration::ZERO)
    }

    /// True when nothing was counted or recorded (gauges aside).
    pub fn is_empty(&self) -> bool {
        self.counters.values().all(|&v| v == 0) && self.histograms.values().all(|h| h.is_empty())
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Folds `other` into `self`: the period becomes the union, counters and histograms add
    /// up, gauges take the later `last` and the higher `max`. The phase is kept only if both
    /// had the same one.
    pub fn merge(&mut self, other: &IntervalSnapshot) {
        let other_is_later = other.end >= self.end;
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        if self.phase != other.phase {
            self.phase = None;
        }
        merge_parts(
            (&mut self.counters, &mut self.gauges, &mut self.histograms),
            (&other.counters, &other.gauges, &other.histograms),
            other_is_later,
        );
        for theirs in &other.scenarios {
            match self.scenarios.iter_mut().find(|s| s.name == theirs.name) {
                Some(ours) => merge_parts(
                    (&mut ours.counters, &mut ours.gauges, &mut ours.histograms),
                    (&theirs.counters, &theirs.gauges, &theirs.histograms),
                    other_is_later,
                ),
                None => self.scenarios.push(theirs.clone()),
            }
        }
    }
}

type PartsMut<'a> = (
    &'a mut BTreeMap<String, u64>,
    &'a mut BTreeMap<String, GaugeLevel>,
    &'a mut BTreeMap<String, Histogram<u64>>,
);
type Parts<'a> = (
    &'a BTreeMap<String, u64>,
    &'a BTreeMap<String, GaugeLevel>,
    &'a BTreeMap<String, Histogram<u64>>,
);

fn merge_parts(ours: PartsMut<'_>, theirs: Parts<'_>, theirs_is_later: bool) {
    let (counters, gauges, histograms) = ours;
    for (name, value) in theirs.0 {
        let c = counters.entry(name.clone()).or_insert(0);
        *c = c.saturating_add(*value);
    }
    for (name, level) in theirs.1 {
        match gauges.get_mut(name) {
            Some(g) => {
                if theirs_is_later {
                    g.last = level.last;
                }
                g.max = g.max.max(level.max);
            }
            None => {
                gauges.insert(name.clone(), *level);
            }
        }
    }
    for (name, hist) in theirs.2 {
        add_into(histograms, name, hist);
    }
}
