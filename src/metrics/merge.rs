//! Adding up the stored metrics of several processes that ran side by side (the shards of one
//! run): intervals are matched on the wall-clock grid and added, scenario totals are added.
//!
//! Counters and histograms add exactly. Gauges are levels, and the sum of per-shard maxima is
//! not the maximum of the sum: a merged interval's `last` is the sum of the pieces' `last`
//! (the fleet's level at the common grid instant, exact), its `max` the sum of the pieces'
//! `max` (an upper bound of the fleet's peak within the interval, reached when the pieces
//! peak together, as the shares of one load shape do).
//!
//! It does not check that the pieces belong together (run id, shards): that is `report`'s
//! `merge`, which knows the result model.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::MetricsError;
use super::codec::decode_all;
use super::collector::add_into;
use super::snapshot::{GaugeLevel, IntervalSnapshot, PhaseTag, ScenarioSnapshot};
use super::summary::{PeriodSummary, ScenarioSummary};

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl IntervalSnapshot {
    /// The snapshot a stored interval (or phase) was made from: counters, gauges and the
    /// histograms it carries. Per-scenario parts are not stored per interval and stay empty.
    pub fn from_stored(period: &PeriodSummary) -> Result<Self, MetricsError> {
        let phase = match (&period.phase, period.phase_index) {
            (Some(name), Some(index)) => Some(PhaseTag {
                index,
                name: name.clone(),
            }),
            _ => None,
        };
        Ok(IntervalSnapshot {
            start: at_ms(period.start_ms),
            end: at_ms(period.end_ms),
            phase,
            counters: period.counters.clone(),
            gauges: period
                .gauges
                .iter()
                .map(|(name, g)| {
                    (
                        name.clone(),
                        GaugeLevel {
                            last: g.last,
                            max: g.max,
                        },
                    )
                })
                .collect(),
            histograms: decode_all(&period.histograms)?,
            scenarios: Vec::new(),
        })
    }

    /// Takes in `later`, the same process's next interval that fell in the same grid slot
    /// (a cut that a saturated runtime made late, then one that caught up): counters and
    /// histograms add, but a gauge is one process's level, so its `last` is the later
    /// interval's and its `max` the larger of the two — adding them would count the same
    /// vusers twice.
    pub fn follow(&mut self, later: &IntervalSnapshot) {
        self.add_counts(later);
        for (name, level) in &later.gauges {
            let g = self.gauges.entry(name.clone()).or_default();
            g.last = level.last;
            g.max = g.max.max(level.max);
        }
    }

    /// What [`follow`](Self::follow) and [`add`](Self::add) share: the period becomes the
    /// union, counters and histograms add.
    fn add_counts(&mut self, other: &IntervalSnapshot) {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        if self.phase != other.phase {
            self.phase = None;
        }
        for (name, value) in &other.counters {
            let c = self.counters.entry(name.clone()).or_insert(0);
            *c = c.saturating_add(*value);
        }
        for (name, hist) in &other.histograms {
            add_into(&mut self.histograms, name, hist);
        }
    }

    /// Adds `other`, recorded by another process over (about) the same period: the period
    /// becomes the union, counters and histograms add, gauges add (see the module doc).
    pub fn add(&mut self, other: &IntervalSnapshot) {
        self.add_counts(other);
        for (name, level) in &other.gauges {
            let g = self.gauges.entry(name.clone()).or_default();
            g.last = g.last.saturating_add(level.last);
            g.max = g.max.saturating_add(level.max);
        }
    }
}

/// The grid slot of a stored interval: the multiple of `interval_ms` its midpoint falls in.
/// Pieces cut their intervals on one wall-clock grid, and a phase boundary (a few ms apart
/// between shards) moves a cut by less than half an interval, so the midpoint lands each
/// piece's interval in the same slot.
fn slot(period: &PeriodSummary, interval_ms: u64) -> u64 {
    let mid = period.start_ms.saturating_add(period.end_ms) / 2;
    mid / interval_ms.max(1)
}

/// Adds the stored intervals of every piece, slot by slot and phase by phase, in order: the
/// intervals before the phases, each phase in turn, then those after the phases.
pub fn merge_intervals(
    pieces: &[&[PeriodSummary]],
    interval_ms: u64,
) -> Result<Vec<IntervalSnapshot>, MetricsError> {
    // Key: (stage, slot), the stage being 0 before the piece's first phase, phase index + 1
    // during a phase and `usize::MAX` after its last: a slot cut by a phase boundary holds
    // two intervals, one per phase, in every piece. Ordered by stage first, the merged
    // intervals of one phase stay together: sorted by start, an interval a later-starting
    // shard cut before its first phase fell between two intervals of another shard's first
    // phase, and that phase came out split in two.
    let mut merged: BTreeMap<(usize, u64), IntervalSnapshot> = BTreeMap::new();
    for piece in pieces {
        // One piece's intervals per slot first: a piece may hold two in one slot when its
        // interval timer fired late, and those follow each other rather than add as shards.
        let mut own: BTreeMap<(usize, u64), IntervalSnapshot> = BTreeMap::new();
        let mut periods: Vec<&PeriodSummary> = piece.iter().collect();
        periods.sort_by_key(|p| (p.start_ms, p.end_ms));
        let mut phases_begun = false;
        for period in periods {
            let snapshot = IntervalSnapshot::from_stored(period)?;
            let stage = match period.phase_index {
                Some(index) => {
                    phases_begun = true;
                    index + 1
                }
                None if phases_begun => usize::MAX,
                None => 0,
            };
            let key = (stage, slot(period, interval_ms));
            match own.get_mut(&key) {
                Some(acc) => acc.follow(&snapshot),
                None => {
                    own.insert(key, snapshot);
                }
            }
        }
        for (key, snapshot) in own {
            match merged.get_mut(&key) {
                Some(acc) => acc.add(&snapshot),
                None => {
                    merged.insert(key, snapshot);
                }
            }
        }
    }
    Ok(merged.into_values().collect())
}

/// Adds the scenarios of every piece (matched by name) over the merged run `[start, end)`.
pub fn merge_scenarios(
    pieces: &[&[ScenarioSummary]],
    start: SystemTime,
    end: SystemTime,
) -> Result<Vec<ScenarioSummary>, MetricsError> {
    let mut total = IntervalSnapshot::empty(start, end);
    for piece in pieces {
        for scenario in *piece {
            let histograms = decode_all(&scenario.histograms)?;
            let part = match total.scenarios.iter_mut().find(|s| s.name == scenario.name) {
                Some(part) => part,
                None => {
                    total.scenarios.push(ScenarioSnapshot {
                        name: scenario.name.clone(),
                        weight: scenario.weight,
                        counters: BTreeMap::new(),
                        gauges: BTreeMap::new(),
                        histograms: BTreeMap::new(),
                    });
                    let last = total.scenarios.len() - 1;
                    &mut total.scenarios[last]
                }
            };
            for (name, value) in &scenario.counters {
                let c = part.counters.entry(name.clone()).or_insert(0);
                *c = c.saturating_add(*value);
            }
            for (name, hist) in &histograms {
                add_into(&mut part.histograms, name, hist);
            }
        }
    }
    total.stored_scenario_summaries()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Registry, new_histogram};

    fn stored(
        start_ms: u64,
        end_ms: u64,
        phase: Option<usize>,
        samples: &[u64],
        active: i64,
    ) -> PeriodSummary {
        let mut snapshot = IntervalSnapshot::empty(at_ms(start_ms), at_ms(end_ms));
        snapshot.phase = phase.map(|index| PhaseTag {
            index,
            name: format!("p{index}"),
        });
        let mut h = new_histogram();
        for s in samples {
            let _ = h.record(*s);
        }
        snapshot.histograms.insert("latency.chat".into(), h);
        snapshot
            .counters
            .insert("messages.sent".into(), samples.len() as u64);
        snapshot.gauges.insert(
            "vusers.active".into(),
            GaugeLevel {
                last: active,
                max: active + 1,
            },
        );
        snapshot.stored_summary().unwrap()
    }

    #[test]
    fn intervals_on_one_grid_add_up_phase_by_phase() {
        let _ = Registry::new();
        // Shard 0 crossed the phase boundary at 10_300 ms, shard 1 at 10_304 ms.
        let a = vec![
            stored(9_000, 10_000, Some(0), &[1_000, 2_000], 3),
            stored(10_000, 10_300, Some(0), &[3_000], 3),
            stored(10_300, 11_000, Some(1), &[4_000], 4),
        ];
        let b = vec![
            stored(9_001, 10_000, Some(0), &[5_000], 2),
            stored(10_000, 10_304, Some(0), &[6_000], 2),
            stored(10_304, 11_000, Some(1), &[7_000, 8_000], 5),
        ];
        let merged = merge_intervals(&[&a, &b], 1_000).unwrap();
        let shape: Vec<(u64, Option<usize>, u64)> = merged
            .iter()
            .map(|s| {
                (
                    s.counter("messages.sent"),
                    s.phase.as_ref().map(|p| p.index),
                    s.histograms["latency.chat"].len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![(3, Some(0), 3), (2, Some(0), 2), (3, Some(1), 3)]
        );
        let last = &merged[2];
        assert_eq!(
            last.gauges["vusers.active"],
            GaugeLevel { last: 9, max: 11 }
        );
        let h = &last.histograms["latency.chat"];
        assert!(h.equivalent(h.max(), 8_000), "max {}", h.max());
        assert_eq!(super::super::epoch_ms(last.start), 10_300);
    }

    #[test]
    fn two_intervals_of_one_piece_in_one_slot_follow_each_other_not_add_as_shards() {
        let _ = Registry::new();
        // Shard 0's timer fired late (cut at 10_834), then caught up (cut at 11_316): both
        // intervals' midpoints fall in slot 10 or 11; the late pair must not double its gauge.
        let a = vec![
            stored(10_000, 10_834, Some(0), &[1_000], 17_000),
            stored(10_834, 11_316, Some(0), &[2_000], 17_000),
            stored(11_316, 12_000, Some(0), &[3_000], 17_000),
        ];
        let b = vec![
            stored(10_000, 11_000, Some(0), &[4_000], 17_000),
            stored(11_000, 12_000, Some(0), &[5_000], 17_000),
        ];
        let merged = merge_intervals(&[&a, &b], 1_000).unwrap();
        let sent: u64 = merged.iter().map(|s| s.counter("messages.sent")).sum();
        assert_eq!(sent, 5, "every sample is kept");
        for s in &merged {
            let level = s.gauges["vusers.active"];
            // Two shards at 17 000 each: the fleet never held more than 34 000 (+1 each for
            // the helper's max), whatever the cuts.
            assert!(level.max <= 34_002, "{level:?}");
            assert_eq!(level.last, 34_000, "{level:?}");
        }
    }

    #[test]
    fn a_shard_s_interval_from_before_its_phases_does_not_split_another_s_phase() {
        let _ = Registry::new();
        // Shard 1 started 100 ms after shard 0 and kept the 5 ms before its first phase (no
        // phase): sorted by start alone, it fell between shard 0's two intervals of phase 0,
        // and the run's phases came out as 0, 0, 1 with phase 0's samples split over two.
        let a = vec![
            stored(10_200, 11_000, Some(0), &[1_000], 1),
            stored(11_000, 11_200, Some(0), &[2_000], 1),
            stored(11_200, 12_000, Some(1), &[3_000], 1),
            stored(12_200, 12_400, None, &[], 0),
        ];
        let b = vec![
            stored(10_300, 10_305, None, &[], 0),
            stored(10_305, 11_000, Some(0), &[4_000], 1),
            stored(11_000, 11_305, Some(0), &[5_000], 1),
            stored(11_305, 12_000, Some(1), &[6_000], 1),
            stored(12_000, 12_305, Some(1), &[7_000], 1),
        ];
        let merged = merge_intervals(&[&a, &b], 1_000).unwrap();
        let phases: Vec<Option<usize>> = merged
            .iter()
            .map(|s| s.phase.as_ref().map(|p| p.index))
            .collect();
        assert_eq!(phases, vec![None, Some(0), Some(0), Some(1), Some(1), None]);
        let mut aggregator = crate::metrics::Aggregator::new();
        for interval in &merged {
            aggregator.push(interval.clone());
        }
        let metrics = aggregator.finish().unwrap();
        let sent: Vec<(usize, u64)> = metrics
            .phases
            .iter()
            .map(|p| {
                (
                    p.index,
                    p.summary
                        .counters
                        .get("messages.sent")
                        .copied()
                        .unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(sent, vec![(0, 4), (1, 3)]);
    }

    #[test]
    fn a_damaged_histogram_is_an_error_not_a_zero() {
        let mut bad = stored(0, 1_000, None, &[1], 0);
        bad.histograms
            .insert("latency.chat".into(), "not base64!".into());
        assert!(merge_intervals(&[&[bad]], 1_000).is_err());
    }
}
