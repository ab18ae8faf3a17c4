//! `chatload compare`: per-metric differences between two results and the regression verdict
//! (a CI gate against the last good run).
//!
//! Compared: p50/p95/p99 of every expect latency, `delivery` and `connect` (higher is
//! worse), the error rate (higher is worse) and messages sent/received per second (lower is
//! worse), all over the whole run. `schedule.lag` is left out: it measures the generator, not
//! the server. A timing regressed only when it got worse by more than the percentage *and*
//! by at least the absolute noise floor (`--min-delta`, 1 ms by default): 0.39 → 0.47 ms is
//! +20 % but no user will ever see it. It does not read files or decide exit codes (the CLI
//! does).

use std::fmt::Write as _;

use crate::metrics::PeriodSummary;
use crate::vocab::names::{CONNECT, DELIVERY, LATENCY_PREFIX, MESSAGES_RECEIVED, MESSAGES_SENT};

use super::csv::fmt;
use super::model::RunResult;

/// An error rate rising from 0 counts as a regression only above this many percentage
/// points: a relative change from zero is infinite, and one error in 100 000 is noise.
pub const ERROR_RATE_FLOOR_PERCENT: f64 = 0.01;

/// The default noise floor for timings, in milliseconds.
pub const DEFAULT_MIN_DELTA_MS: f64 = 1.0;

/// What counts as a regression.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Largest accepted change for the worse, relative to base.
    pub max_regression_percent: f64,
    /// Timings (ms) that moved by less than this are never a regression.
    pub min_delta_ms: f64,
}

impl Limits {
    /// `max_regression_percent` with the default noise floor.
    pub fn percent(max_regression_percent: f64) -> Limits {
        Limits {
            max_regression_percent,
            min_delta_ms: DEFAULT_MIN_DELTA_MS,
        }
    }
}

/// One compared value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDelta {
    /// `latency.chat p95`, `errors.rate`, `messages.sent rate`.
    pub metric: String,
    pub unit: &'static str,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// `(new - base) / base × 100`; `None` when a side is missing or base is 0.
    pub change_percent: Option<f64>,
    /// True for latencies and errors, false for throughput.
    pub higher_is_worse: bool,
    pub regression: bool,
}

/// All compared values and the limit they were judged against.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub rows: Vec<MetricDelta>,
    pub max_regression_percent: f64,
    pub min_delta_ms: f64,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.regression).count()
    }

    /// The table `chatload compare` prints.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.metric.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {:<width$}  {:>12}  {:>12}  {:>9}",
            "metric", "base", "new", "change"
        );
        for r in &self.rows {
            let value = |v: Option<f64>| match v {
                Some(v) => format!("{}{}", fmt(v), r.unit),
                None => "—".to_owned(),
            };
            let change = match (r.change_percent, r.base, r.new) {
                (Some(c), _, _) => format!("{c:+.1}%"),
                // A relative change from zero has no percentage.
                (None, Some(_), Some(_)) => "from 0".to_owned(),
                _ => "missing".to_owned(),
            };
            let mark = if r.regression { '✗' } else { ' ' };
            let _ = writeln!(
                out,
                "{mark} {:<width$}  {:>12}  {:>12}  {:>9}",
                r.metric,
                value(r.base),
                value(r.new),
                change
            );
        }
        let n = self.regressions();
        let limit = format!(
            "{}% (timings: and at least {} ms)",
            fmt(self.max_regression_percent),
            fmt(self.min_delta_ms)
        );
        if n == 0 {
            let _ = writeln!(out, "\n✓ no regression beyond {limit}");
        } else {
            let _ = writeln!(out, "\n✗ {n} regression(s) beyond {limit}");
        }
        out
    }
}

/// Parses `10%` or `10` as a percentage (finite, not negative).
pub fn parse_percent(text: &str) -> Option<f64> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// Compares `new` against `base`; a metric regressed when it got worse by more than
/// `limits.max_regression_percent` (relative to base) and, for timings, by at least
/// `limits.min_delta_ms`.
pub fn compare(base: &RunResult, new: &RunResult, limits: Limits) -> Comparison {
    let max_regression_percent = limits.max_regression_percent;
    let (b, n) = (&base.aggregate, &new.aggregate);
    let mut rows = Vec::new();
    let mut timing: Vec<&str> = b
        .summaries
        .keys()
        .chain(n.summaries.keys())
        .map(String::as_str)
        .filter(|m| m.starts_with(LATENCY_PREFIX) || *m == DELIVERY || *m == CONNECT)
        .collect();
    timing.sort_unstable();
    timing.dedup();
    for metric in timing {
        for (label, pick) in [
            (
                "p50",
                (|s: &crate::metrics::Summary| s.p50) as fn(&_) -> f64,
            ),
            ("p95", |s| s.p95),
            ("p99", |s| s.p99),
        ] {
            let get = |p: &PeriodSummary| p.summaries.get(metric).map(pick);
            let mut row = delta(
                format!("{metric} {label}"),
                "ms",
                get(b),
                get(n),
                true,
                max_regression_percent,
            );
            if let (Some(b), Some(n)) = (row.base, row.new) {
                row.regression &= (n - b).abs() >= limits.min_delta_ms;
            }
            rows.push(row);
        }
    }
    let mut errors = delta(
        "errors.rate".into(),
        "%",
        Some(b.error_rate_percent()),
        Some(n.error_rate_percent()),
        true,
        max_regression_percent,
    );
    if let (Some(0.0), Some(v)) = (errors.base, errors.new) {
        errors.regression = v > ERROR_RATE_FLOOR_PERCENT;
    }
    rows.push(errors);
    for counter in [MESSAGES_SENT, MESSAGES_RECEIVED] {
        let get = |p: &PeriodSummary| Some(p.rates.get(counter).copied().unwrap_or(0.0));
        rows.push(delta(
            format!("{counter} rate"),
            "/s",
            get(b),
            get(n),
            false,
            max_regression_percent,
        ));
    }
    Comparison {
        rows,
        max_regression_percent,
        min_delta_ms: limits.min_delta_ms,
    }
}

fn delta(
    metric: String,
    unit: &'static str,
    base: Option<f64>,
    new: Option<f64>,
    higher_is_worse: bool,
    limit_percent: f64,
) -> MetricDelta {
    let change_percent = match (base, new) {
        // Unchanged, zero included: `0% → 0%` is no change, not a "new" value.
        (Some(b), Some(n)) if b == n => Some(0.0),
        (Some(b), Some(n)) if b > 0.0 => Some((n - b) / b * 100.0),
        _ => None,
    };
    let regression = match change_percent {
        Some(c) if higher_is_worse => c > limit_percent,
        Some(c) => -c > limit_percent,
        None => false,
    };
    MetricDelta {
        metric,
        unit,
        base,
        new,
        change_percent,
        higher_is_worse,
        regression,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::empty_result;

    #[test]
    fn percent_parsing() {
        assert_eq!(parse_percent("10%"), Some(10.0));
        assert_eq!(parse_percent(" 2.5 "), Some(2.5));
        assert_eq!(parse_percent("-1%"), None);
        assert_eq!(parse_percent("ten"), None);
    }

    #[test]
    fn direction_decides_what_a_regression_is() {
        let slower = delta("l".into(), "ms", Some(100.0), Some(115.0), true, 10.0);
        assert!(slower.regression);
        let faster = delta("l".into(), "ms", Some(100.0), Some(50.0), true, 10.0);
        assert!(!faster.regression);
        let less_throughput = delta("t".into(), "/s", Some(100.0), Some(85.0), false, 10.0);
        assert!(less_throughput.regression);
        let within = delta("t".into(), "/s", Some(100.0), Some(95.0), false, 10.0);
        assert!(!within.regression);
        let missing = delta("l".into(), "ms", Some(1.0), None, true, 10.0);
        assert!(!missing.regression);
    }

    fn result_with(latency_ms: f64, errors: u64) -> RunResult {
        use crate::metrics::Summary;
        let mut result = empty_result();
        let summary = Summary {
            count: 100,
            min: latency_ms,
            max: latency_ms,
            mean: latency_ms,
            p50: latency_ms,
            median: latency_ms,
            p75: latency_ms,
            p90: latency_ms,
            p95: latency_ms,
            p99: latency_ms,
            p999: latency_ms,
        };
        result
            .aggregate
            .summaries
            .insert("latency.chat".into(), summary);
        result
            .aggregate
            .counters
            .insert("errors.timeout".into(), errors);
        result
    }

    #[test]
    fn sub_millisecond_moves_are_noise_under_the_floor() {
        let (base, new) = (result_with(0.39, 0), result_with(0.47, 0));
        let limits = Limits::percent(10.0);
        let comparison = compare(&base, &new, limits);
        let p95 = comparison
            .rows
            .iter()
            .find(|r| r.metric == "latency.chat p95")
            .expect("row");
        assert!(p95.change_percent.is_some_and(|c| c > 20.0));
        assert!(!p95.regression, "0.39 → 0.47 ms is under the 1 ms floor");
        assert_eq!(comparison.regressions(), 0);
        // Without a floor it is a regression; above the floor too.
        let strict = Limits {
            max_regression_percent: 10.0,
            min_delta_ms: 0.0,
        };
        assert!(compare(&base, &new, strict).regressions() > 0);
        let slower = result_with(2.0, 0);
        assert!(compare(&base, &slower, limits).regressions() > 0);
    }

    #[test]
    fn an_unchanged_zero_error_rate_is_no_change_not_new() {
        let (base, new) = (result_with(1.0, 0), result_with(1.0, 0));
        let comparison = compare(&base, &new, Limits::percent(10.0));
        let errors = comparison
            .rows
            .iter()
            .find(|r| r.metric == "errors.rate")
            .expect("row");
        assert_eq!(errors.change_percent, Some(0.0));
        let table = comparison.table();
        let line = table
            .lines()
            .find(|l| l.contains("errors.rate"))
            .expect("errors line");
        assert!(line.trim_end().ends_with("+0.0%"), "{line}");
        assert!(!table.contains("new\n"), "{table}");
    }
}
