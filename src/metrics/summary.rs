//! The serializable, Artillery-shaped view of recorded metrics: `counters` (integers),
//! `rates` (per second), `summaries` (latency statistics in milliseconds as floats), and the
//! threshold lookup [`PeriodSummary::stat`].
//!
//! Built from [`IntervalSnapshot`]s; knows nothing of plans or thresholds' grammar.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MetricsError;
use super::codec::encode_all;
use super::snapshot::{GaugeLevel, IntervalSnapshot};
use crate::vocab::Stat;
use crate::vocab::names::{ERRORS, ERRORS_PREFIX, MESSAGES_SENT, VUSERS_CREATED};

/// Statistics of one histogram, milliseconds (µs resolution). Artillery's summary shape;
/// `median` repeats `p50` for Artillery compatibility.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub min: f64,
    pub max: f64,
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub median: f64,
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

impl Summary {
    /// Summary of a microsecond histogram. Percentiles are HdrHistogram's (the highest value
    /// equivalent to the quantile's bucket, within 0.1%).
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                min: 0.0,
                max: 0.0,
                count: 0,
                mean: 0.0,
                p50: 0.0,
                median: 0.0,
                p75: 0.0,
                p90: 0.0,
                p95: 0.0,
                p99: 0.0,
                p999: 0.0,
            };
        }
        let q = |quantile: f64| us_to_ms(h.value_at_quantile(quantile));
        let p50 = q(0.5);
        Self {
            min: us_to_ms(h.min()),
            max: us_to_ms(h.max()),
            count: h.len(),
            mean: round3(h.mean() / 1000.0),
            p50,
            median: p50,
            p75: q(0.75),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
        }
    }
}

/// A gauge over a period: level at the end and highest level sampled.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GaugeSummary {
    pub last: i64,
    pub max: i64,
}

impl From<GaugeLevel> for GaugeSummary {
    fn from(g: GaugeLevel) -> Self {
        Self {
            last: g.last,
            max: g.max,
        }
    }
}

/// Metrics of one period (an interval, a phase or the whole run), Artillery's shape plus
/// `gauges` and the period bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodSummary {
    /// Period start, Unix epoch milliseconds.
    pub start_ms: u64,
    /// Period end, Unix epoch milliseconds.
    pub end_ms: u64,
    /// The phase active during the whole period, if any (intervals only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The index of `phase` in the run's phase list (result v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_index: Option<usize>,
    pub counters: BTreeMap<String, u64>,
    /// `counters[name]` divided by the period length in seconds, for every counter.
    pub rates: BTreeMap<String, f64>,
    /// One per histogram with samples in the period. In a result file an interval may omit
    /// those its `histograms` imply (the reader derives them).
    #[serde(default)]
    pub summaries: BTreeMap<String, Summary>,
    #[serde(default)]
    pub gauges: BTreeMap<String, GaugeSummary>,
    /// The period's HdrHistograms (µs), name → base64 of the V2-deflate serialization, so
    /// periods of several processes add up exactly. Set on intervals (live progress included)
    /// and phases; the whole run's are the result's top-level `histograms`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
}

/// One phase of the run: offsets from the run start, and its metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSummary {
    pub index: usize,
    pub name: String,
    pub start_offset_ms: u64,
    pub end_offset_ms: u64,
    pub summary: PeriodSummary,
}

/// One scenario's own metrics over the whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioSummary {
    pub name: String,
    pub weight: u32,
    pub counters: BTreeMap<String, u64>,
    pub rates: BTreeMap<String, f64>,
    pub summaries: BTreeMap<String, Summary>,
    /// The scenario's HdrHistograms over the run (result v2), as in
    /// [`PeriodSummary::histograms`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
}

/// Milliseconds since the Unix epoch (0 before it), the time unit of every result field.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (0 before it): the time of delivery stamps.
pub fn epoch_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(super) fn rates(counters: &BTreeMap<String, u64>, seconds: f64) -> BTreeMap<String, f64> {
    counters
        .iter()
        .map(|(name, &v)| {
            let rate = if seconds > 0.0 {
                v as f64 / seconds
            } else {
                0.0
            };
            (name.clone(), round3(rate))
        })
        .collect()
}

pub(super) fn summaries(
    histograms: &BTreeMap<String, Histogram<u64>>,
) -> BTreeMap<String, Summary> {
    histograms
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (name.clone(), Summary::from_histogram(h)))
        .collect()
}

impl IntervalSnapshot {
    /// The period's summary. Rates divide by the snapshot's own duration.
    pub fn summary(&self) -> PeriodSummary {
        let seconds = self.duration().as_secs_f64();
        PeriodSummary {
            start_ms: epoch_ms(self.start),
            end_ms: epoch_ms(self.end),
            phase: self.phase.as_ref().map(|p| p.name.clone()),
            phase_index: self.phase.as_ref().map(|p| p.index),
            counters: self.counters.clone(),
            rates: rates(&self.counters, seconds),
            summaries: summaries(&self.histograms),
            gauges: self
                .gauges
                .iter()
                .map(|(k, g)| (k.clone(), (*g).into()))
                .collect(),
            histograms: BTreeMap::new(),
        }
    }

    /// [`Self::summary`] with the histograms serialized (what a result file keeps).
    pub fn stored_summary(&self) -> Result<PeriodSummary, MetricsError> {
        let mut summary = self.summary();
        summary.histograms = encode_all(&self.histograms)?;
        Ok(summary)
    }

    /// Each scenario's own summary over this snapshot's period.
    pub fn scenario_summaries(&self) -> Vec<ScenarioSummary> {
        let seconds = self.duration().as_secs_f64();
        self.scenarios
            .iter()
            .map(|s| ScenarioSummary {
                name: s.name.clone(),
                weight: s.weight,
                counters: s.counters.clone(),
                rates: rates(&s.counters, seconds),
                summaries: summaries(&s.histograms),
                histograms: BTreeMap::new(),
            })
            .collect()
    }

    /// [`Self::scenario_summaries`] with the histograms serialized.
    pub fn stored_scenario_summaries(&self) -> Result<Vec<ScenarioSummary>, MetricsError> {
        let mut out = self.scenario_summaries();
        for (summary, part) in out.iter_mut().zip(&self.scenarios) {
            summary.histograms = encode_all(&part.histograms)?;
        }
        Ok(out)
    }
}

impl PeriodSummary {
    pub fn duration_seconds(&self) -> f64 {
        self.end_ms.saturating_sub(self.start_ms) as f64 / 1000.0
    }

    /// Total of every `errors.<kind>` counter.
    pub fn errors_total(&self) -> u64 {
        self.counters
            .iter()
            .filter(|(name, _)| name.starts_with(ERRORS_PREFIX))
            .fold(0u64, |acc, (_, &v)| acc.saturating_add(v))
    }

    /// Error rate in percent: `100 × errors / (messages.sent + vusers.created)`, capped at
    /// 100 — every connection attempt of a vuser and every sent message is one operation that
    /// can fail. 0 when nothing was attempted.
    pub fn error_rate_percent(&self) -> f64 {
        let errors = self.errors_total() as f64;
        let ops = self.counters.get(MESSAGES_SENT).copied().unwrap_or(0) as f64
            + self.counters.get(VUSERS_CREATED).copied().unwrap_or(0) as f64;
        if ops <= 0.0 {
            return if errors > 0.0 { 100.0 } else { 0.0 };
        }
        round3((100.0 * errors / ops).min(100.0))
    }

    /// The value a threshold compares: latencies in ms, rates per second, `errors.rate` in
    /// percent. `None` when the metric does not exist in this period or the stat does not
    /// apply to its kind.
    ///
    /// - histogram (`summaries`): every stat; `rate` = samples per second.
    /// - counter: `count` (the value) and `rate` (per second).
    /// - gauge: `max` only (the highest level sampled at a cut).
    /// - a histogram with no sample in this period is absent, so every stat is `None`.
    /// - `errors` (derived): `count` = sum of `errors.*`, `rate` = [`Self::error_rate_percent`].
    pub fn stat(&self, metric: &str, stat: Stat) -> Option<f64> {
        if metric == ERRORS {
            return match stat {
                Stat::Count => Some(self.errors_total() as f64),
                Stat::Rate => Some(self.error_rate_percent()),
                _ => None,
            };
        }
        if let Some(s) = self.summaries.get(metric) {
            return Some(match stat {
                Stat::Min => s.min,
                Stat::Max => s.max,
                Stat::Mean => s.mean,
                Stat::P50 => s.p50,
                Stat::P75 => s.p75,
                Stat::P90 => s.p90,
                Stat::P95 => s.p95,
                Stat::P99 => s.p99,
                Stat::P999 => s.p999,
                Stat::Count => s.count as f64,
                Stat::Rate => {
                    let secs = self.duration_seconds();
                    if secs > 0.0 {
                        round3(s.count as f64 / secs)
                    } else {
                        0.0
                    }
                }
            });
        }
        if let Some(&c) = self.counters.get(metric) {
            return match stat {
                Stat::Count => Some(c as f64),
                Stat::Rate => Some(self.rates.get(metric).copied().unwrap_or(0.0)),
                _ => None,
            };
        }
        if let Some(g) = self.gauges.get(metric) {
            return match stat {
                Stat::Max => Some(g.max as f64),
                _ => None,
            };
        }
        // Status counters are registered at the first response with that status: one never
        // seen counted zero.
        if metric.starts_with(crate::vocab::names::HTTP_CODES_PREFIX) {
            return matches!(stat, Stat::Count | Stat::Rate).then_some(0.0);
        }
        None
    }
}
