//! The running totals behind `/metrics`: every interval snapshot the engine publishes is
//! folded into cumulative counters, current gauge levels and bucketed histograms, keyed by
//! chatload metric name, scenario and phase.
//!
//! Memory is bounded by the plan (names × scenarios × phases), never by the load: histograms
//! are kept as fixed bucket arrays (`buckets.rs`), not samples. How the totals are written out
//! is `text.rs`'s business.

use std::collections::BTreeMap;
use std::time::Duration;

use super::buckets::Buckets;
use crate::metrics::IntervalSnapshot;

/// Where a series belongs: the run-wide remainder has an empty scenario; the graceful stop
/// after the last phase has an empty phase.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub metric: String,
    pub scenario: String,
    pub phase: String,
}

/// What a run looks like from outside: labels common to every series and the run's clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunState {
    pub run_id: String,
    /// The shard index of a scaled-out run (`--shard I/N`); `None` for a single process.
    pub shard: Option<String>,
    pub elapsed: Duration,
    pub planned: Duration,
    /// The last interval's `schedule.lag` p99 was over the warning level.
    pub generator_overloaded: bool,
}

/// Cumulative totals since the run started.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub run: RunState,
    /// Every phase seen or announced, in order. Counters exist (at zero) in each from the
    /// start, so `rate()` sees a phase's first interval instead of losing it to a series that
    /// appears with a non-zero value.
    pub phases: Vec<String>,
    /// (metric, scenario) → phase → count.
    pub counters: BTreeMap<(String, String), BTreeMap<String, u64>>,
    /// (metric, scenario) → level at the last interval.
    pub gauges: BTreeMap<(String, String), i64>,
    /// The phase of the last interval (gauges are labelled with it).
    pub current_phase: String,
    pub histograms: BTreeMap<Key, Buckets>,
}

impl Totals {
    /// Totals for a run whose phases are known up front (their names, in plan order).
    pub fn new(run_id: &str, shard: Option<String>, phases: Vec<String>) -> Self {
        let mut totals = Totals {
            run: RunState {
                run_id: run_id.to_owned(),
                shard,
                ..RunState::default()
            },
            ..Totals::default()
        };
        for phase in phases {
            totals.note_phase(&phase);
        }
        totals
    }

    fn note_phase(&mut self, phase: &str) {
        if !self.phases.iter().any(|p| p == phase) {
            self.phases.push(phase.to_owned());
        }
    }

    /// Adds one interval.
    pub fn fold(&mut self, snapshot: &IntervalSnapshot) {
        let phase = snapshot
            .phase
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.note_phase(&phase);
        self.current_phase.clone_from(&phase);

        let mut scenario_counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut scenario_levels: BTreeMap<&str, i64> = BTreeMap::new();
        let mut scenario_buckets: BTreeMap<&str, Buckets> = BTreeMap::new();
        for scenario in &snapshot.scenarios {
            for (name, &value) in &scenario.counters {
                self.add_count(name, &scenario.name, &phase, value);
                let sum = scenario_counts.entry(name).or_insert(0);
                *sum = sum.saturating_add(value);
            }
            for (name, level) in &scenario.gauges {
                self.gauges
                    .insert((name.clone(), scenario.name.clone()), level.last);
                *scenario_levels.entry(name).or_insert(0) += level.last;
            }
            for (name, histogram) in &scenario.histograms {
                let mut buckets = Buckets::default();
                buckets.add(histogram);
                scenario_buckets
                    .entry(name)
                    .or_default()
                    .add_buckets(&buckets);
                self.add_buckets(name, &scenario.name, &phase, &buckets);
            }
        }
        // Run-wide values are the sum over scenarios plus what was recorded for the run only;
        // only that remainder gets a series of its own, so sums over `scenario` add up.
        for (name, &value) in &snapshot.counters {
            let in_scenarios = scenario_counts.get(name.as_str()).copied();
            let rest = value.saturating_sub(in_scenarios.unwrap_or(0));
            if rest > 0 || in_scenarios.is_none() {
                self.add_count(name, "", &phase, rest);
            }
        }
        for (name, level) in &snapshot.gauges {
            let in_scenarios = scenario_levels.get(name.as_str()).copied();
            let rest = level.last - in_scenarios.unwrap_or(0);
            let key = (name.clone(), String::new());
            if rest != 0 || in_scenarios.is_none() || self.gauges.contains_key(&key) {
                self.gauges.insert(key, rest);
            }
        }
        for (name, histogram) in &snapshot.histograms {
            let mut rest = Buckets::default();
            rest.add(histogram);
            if let Some(parts) = scenario_buckets.get(name.as_str()) {
                rest.subtract(parts);
            }
            if !rest.is_empty() {
                self.add_buckets(name, "", &phase, &rest);
            }
        }
    }

    fn add_count(&mut self, metric: &str, scenario: &str, phase: &str, value: u64) {
        let per_phase = self
            .counters
            .entry((metric.to_owned(), scenario.to_owned()))
            .or_default();
        let count = per_phase.entry(phase.to_owned()).or_insert(0);
        *count = count.saturating_add(value);
    }

    fn add_buckets(&mut self, metric: &str, scenario: &str, phase: &str, buckets: &Buckets) {
        self.histograms
            .entry(Key {
                metric: metric.to_owned(),
                scenario: scenario.to_owned(),
                phase: phase.to_owned(),
            })
            .or_default()
            .add_buckets(buckets);
    }

    /// A counter summed over scenarios and phases (tests and the CI cross-check).
    pub fn counter_total(&self, metric: &str) -> u64 {
        self.counters
            .iter()
            .filter(|((m, _), _)| m == metric)
            .flat_map(|(_, phases)| phases.values())
            .fold(0u64, |a, &c| a.saturating_add(c))
    }
}
