//! `stats.csv` (Locust's columns, a row per timing metric or failing step plus
//! `Aggregated`), `history.csv` (a row per interval) and `failures.csv` (`errors.rs`).
//! Columns are documented in docs/reports.md.
//!
//! Percentiles come from the run-wide HdrHistograms serialized in the result (decoded here),
//! because the summaries carry only some quantiles. It does not choose file names beyond
//! the two fixed ones, nor create directories (`outputs.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::metrics::{Histogram, PeriodSummary, decode_histogram, new_histogram};
use crate::vocab::names::{
    BYTES_RECEIVED, BYTES_SENT, CONNECTIONS_OPEN, ERRORS_PREFIX, FAILURES_PREFIX,
    HTTP_RESPONSE_TIME, HTTP_RESPONSE_TIME_PREFIX, LATENCY_PREFIX, MESSAGES_RECEIVED,
    MESSAGES_SENT, VUSERS_ACTIVE, VUSERS_CREATED,
};

use super::ReportError;
use super::model::RunResult;

/// Locust's `stats.csv` header, exactly.
pub const STATS_HEADER: [&str; 21] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
];

const QUANTILES: [f64; 11] = [
    0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0,
];

/// Decodes every run-wide histogram of the result (µs).
pub fn decode_histograms(
    result: &RunResult,
) -> Result<BTreeMap<String, Histogram<u64>>, ReportError> {
    result
        .histograms
        .iter()
        .map(|(name, text)| {
            decode_histogram(text)
                .map(|h| (name.clone(), h))
                .map_err(|source| ReportError::Histogram {
                    metric: name.clone(),
                    source,
                })
        })
        .collect()
}

/// The `stats.csv` bytes.
pub fn stats_csv(result: &RunResult) -> Result<Vec<u8>, ReportError> {
    let histograms = decode_histograms(result)?;
    let agg = &result.aggregate;
    let seconds = agg.duration_seconds();
    let mut w = csv::Writer::from_writer(Vec::new());
    write_row(&mut w, STATS_HEADER.iter().map(|s| (*s).to_owned()))?;

    // A row per timing metric, and per step that failed without ever timing anything (an
    // expect that always timed out, a connect always refused).
    let failing = agg.counters.iter().filter_map(|(name, &n)| {
        let step = name.strip_prefix(FAILURES_PREFIX)?;
        (n > 0).then_some(step)
    });
    let rows: BTreeSet<&str> = histograms
        .keys()
        .map(String::as_str)
        .chain(failing)
        .collect();
    let empty = new_histogram();
    let mut merged = new_histogram();
    for name in rows {
        // All requests together are the Aggregated row (with any `latency.*`).
        if name == HTTP_RESPONSE_TIME {
            continue;
        }
        let h = histograms.get(name).unwrap_or(&empty);
        let failures = failures_of(agg, name);
        let row = match name.strip_prefix(HTTP_RESPONSE_TIME_PREFIX) {
            // Locust's HTTP rows: the method and the endpoint's name.
            Some(endpoint) => stats_row(
                &method_of(result, name, endpoint),
                endpoint,
                h,
                failures,
                seconds,
            ),
            None => stats_row(type_of(name), name, h, failures, seconds),
        };
        write_row(&mut w, row)?;
        if name.starts_with(LATENCY_PREFIX) || name.starts_with(HTTP_RESPONSE_TIME_PREFIX) {
            merged.add(h).ok();
        }
    }
    // Locust's Aggregated row covers the request/response timings: every `latency.*` and
    // every HTTP endpoint.
    let errors = agg.errors_total();
    write_row(
        &mut w,
        stats_row("", "Aggregated", &merged, errors, seconds),
    )?;
    finish(w)
}

/// The method of an HTTP endpoint: from the result's endpoint list, else from its errors
/// (results of plans built in code have no list), else `HTTP`.
fn method_of(result: &RunResult, metric: &str, endpoint: &str) -> String {
    if let Some(m) = result.endpoints.get(endpoint) {
        return m.clone();
    }
    result
        .errors
        .iter()
        .find(|e| e.step == metric)
        .map_or_else(|| "HTTP".to_owned(), |e| e.method.clone())
}

/// Row kind: `latency` for expect latencies, else the metric's own name.
fn type_of(name: &str) -> &str {
    if name.starts_with(LATENCY_PREFIX) {
        "latency"
    } else {
        name
    }
}

/// Failures counted against one step (`failures.<step>`). Results written before those
/// counters existed attribute only connect errors, to `connect`.
fn failures_of(agg: &PeriodSummary, name: &str) -> u64 {
    if let Some(&n) = agg.counters.get(&format!("{FAILURES_PREFIX}{name}")) {
        return n;
    }
    let legacy = !agg.counters.keys().any(|k| k.starts_with(FAILURES_PREFIX));
    if legacy && name == "connect" {
        ["connect_refused", "connect_timeout"]
            .iter()
            .map(|k| {
                agg.counters
                    .get(&format!("{ERRORS_PREFIX}{k}"))
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    } else {
        0
    }
}

fn stats_row(
    kind: &str,
    name: &str,
    h: &Histogram<u64>,
    failures: u64,
    seconds: f64,
) -> Vec<String> {
    let count = h.len();
    let per_second = |n: u64| {
        if seconds > 0.0 {
            fmt(n as f64 / seconds)
        } else {
            "0".to_owned()
        }
    };
    let ms = |us: u64| fmt(us as f64 / 1000.0);
    let mut row = vec![
        kind.to_owned(),
        name.to_owned(),
        count.to_string(),
        failures.to_string(),
    ];
    if count == 0 {
        row.extend(["0", "0", "0", "0"].map(str::to_owned));
    } else {
        row.push(ms(h.value_at_quantile(0.5)));
        row.push(fmt(h.mean() / 1000.0));
        row.push(ms(h.min()));
        row.push(ms(h.max()));
    }
    row.push(per_second(count));
    row.push(per_second(failures));
    for q in QUANTILES {
        row.push(if count == 0 {
            "0".to_owned()
        } else {
            ms(h.value_at_quantile(q))
        });
    }
    row
}

/// The `history.csv` bytes: one row per interval.
pub fn history_csv(result: &RunResult) -> Result<Vec<u8>, ReportError> {
    let timing: BTreeSet<&str> = result
        .intermediate
        .iter()
        .flat_map(|p| p.summaries.keys().map(String::as_str))
        .chain(result.histograms.keys().map(String::as_str))
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "Timestamp",
        "Elapsed (s)",
        "Phase",
        "Active Vusers",
        "Open Connections",
        "Vusers Created",
        "Messages Sent/s",
        "Messages Received/s",
        "Bytes Sent/s",
        "Bytes Received/s",
        "Errors",
        "Error Rate %",
    ]
    .map(str::to_owned)
    .to_vec();
    for name in &timing {
        for q in ["p50", "p95", "p99"] {
            header.push(format!("{name} {q} (ms)"));
        }
    }
    write_row(&mut w, header)?;
    let start_ms = result.run.started_at_ms;
    for p in &result.intermediate {
        let gauge = |n: &str| {
            p.gauges
                .get(n)
                .map(|g| g.last.to_string())
                .unwrap_or_default()
        };
        let rate = |n: &str| fmt(p.rates.get(n).copied().unwrap_or(0.0));
        let mut row = vec![
            (p.end_ms / 1000).to_string(),
            fmt(p.end_ms.saturating_sub(start_ms) as f64 / 1000.0),
            p.phase.clone().unwrap_or_default(),
            gauge(VUSERS_ACTIVE),
            gauge(CONNECTIONS_OPEN),
            p.counters
                .get(VUSERS_CREATED)
                .copied()
                .unwrap_or(0)
                .to_string(),
            rate(MESSAGES_SENT),
            rate(MESSAGES_RECEIVED),
            rate(BYTES_SENT),
            rate(BYTES_RECEIVED),
            p.errors_total().to_string(),
            fmt(p.error_rate_percent()),
        ];
        for name in &timing {
            match p.summaries.get(*name) {
                Some(s) => row.extend([fmt(s.p50), fmt(s.p95), fmt(s.p99)]),
                None => row.extend([String::new(), String::new(), String::new()]),
            }
        }
        write_row(&mut w, row)?;
    }
    finish(w)
}

/// Writes `stats.csv`, `history.csv` and `failures.csv` into `dir` (which must exist),
/// atomically.
pub fn write_csv(result: &RunResult, dir: &Path) -> Result<Vec<std::path::PathBuf>, ReportError> {
    let stats = dir.join("stats.csv");
    let history = dir.join("history.csv");
    let failures = dir.join("failures.csv");
    super::write_atomically(&stats, &stats_csv(result)?)?;
    super::write_atomically(&history, &history_csv(result)?)?;
    super::write_atomically(&failures, &super::failures_csv(result)?)?;
    Ok(vec![stats, history, failures])
}

/// Up to 3 decimals (µs for ms values), no trailing zeros.
pub(crate) fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_owned();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn write_row<I, S>(w: &mut csv::Writer<Vec<u8>>, row: I) -> Result<(), ReportError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    w.write_record(row).map_err(ReportError::Csv)
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ReportError> {
    w.into_inner()
        .map_err(|e| ReportError::Csv(csv::Error::from(e.into_error())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt(1.0), "1");
        assert_eq!(fmt(1.25), "1.25");
        assert_eq!(fmt(0.0004), "0");
        assert_eq!(fmt(f64::NAN), "0");
        assert_eq!(fmt(12.3456), "12.346");
    }
}
