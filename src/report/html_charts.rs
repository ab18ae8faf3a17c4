//! Which charts the HTML report draws, from the result's intervals, monitor samples and
//! adaptive trajectory. Drawing is `charts.rs`; layout is the template's.

use std::collections::BTreeSet;

use crate::metrics::PeriodSummary;
use crate::vocab::names::{
    CONNECT, CONNECTIONS_OPEN, DELIVERY, ERRORS_PREFIX, HTTP_CODES_PREFIX, HTTP_RESPONSE_TIME,
    LATENCY_PREFIX, MESSAGES_RECEIVED, MESSAGES_SENT, SCHEDULE_LAG, VUSERS_ACTIVE,
};

use super::charts::{Chart, Reduce, Series};
use super::model::RunResult;

/// The charts, each with whether it should span the full width.
pub(super) fn build(result: &RunResult) -> Vec<(Chart, bool)> {
    let start_ms = result.run.started_at_ms;
    let span = result.run.duration_ms.max(1) as f64 / 1000.0;
    let x = |p: &PeriodSummary| p.end_ms.saturating_sub(start_ms) as f64 / 1000.0;
    let markers: Vec<(f64, String)> = result
        .phases
        .iter()
        .map(|p| (p.start_offset_ms as f64 / 1000.0, p.name.clone()))
        .collect();
    let chart = |title: String, unit: &str, series: Vec<Series>| Chart {
        title,
        unit: unit.to_owned(),
        series,
        markers: markers.clone(),
        span_seconds: span,
    };
    let intervals = &result.intermediate;
    let points = |f: &dyn Fn(&PeriodSummary) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        intervals.iter().map(|p| (x(p), f(p))).collect()
    };
    let percentiles = |metric: &str| -> Vec<Series> {
        [("p50", 0usize), ("p95", 1), ("p99", 2)]
            .into_iter()
            .map(|(label, which)| Series {
                name: label.to_owned(),
                // An interval without samples has no value: the line breaks there (a
                // server stall must show as a gap, not as a climb between its neighbours).
                points: points(&|p| {
                    p.summaries
                        .get(metric)
                        .filter(|s| s.count > 0)
                        .map(|s| match which {
                            0 => s.p50,
                            1 => s.p95,
                            _ => s.p99,
                        })
                }),
                reduce: Reduce::Max,
            })
            .collect()
    };

    let mut out = Vec::new();
    let timing: BTreeSet<&str> = intervals
        .iter()
        .flat_map(|p| p.summaries.keys().map(String::as_str))
        .collect();
    for name in timing.iter().filter(|n| n.starts_with(LATENCY_PREFIX)) {
        out.push((
            chart(format!("Latency · {name}"), "ms", percentiles(name)),
            false,
        ));
    }
    if timing.contains(HTTP_RESPONSE_TIME) {
        out.push((
            chart(
                "HTTP response time (all endpoints)".into(),
                "ms",
                percentiles(HTTP_RESPONSE_TIME),
            ),
            false,
        ));
        // Responses per second by status: a 5xx burst shows when it happened.
        let codes: BTreeSet<&str> = result
            .aggregate
            .counters
            .iter()
            .filter(|(n, v)| n.starts_with(HTTP_CODES_PREFIX) && **v > 0)
            .map(|(n, _)| n.as_str())
            .collect();
        let series = codes
            .iter()
            .map(|c| rate_series(c.trim_start_matches(HTTP_CODES_PREFIX), intervals, c, &x))
            .collect();
        out.push((
            chart("HTTP responses per second, by status".into(), "/s", series),
            false,
        ));
    }
    out.push((
        chart(
            "Messages per second".into(),
            "/s",
            vec![
                rate_series("sent", intervals, MESSAGES_SENT, &x),
                rate_series("received", intervals, MESSAGES_RECEIVED, &x),
            ],
        ),
        false,
    ));
    out.push((
        chart(
            "Active vusers and open connections".into(),
            "",
            [VUSERS_ACTIVE, CONNECTIONS_OPEN]
                .into_iter()
                .map(|g| Series {
                    name: g.to_owned(),
                    points: points(&|p| p.gauges.get(g).map(|l| l.last as f64)),
                    reduce: Reduce::Mean,
                })
                .collect(),
        ),
        false,
    ));
    let error_kinds: BTreeSet<&str> = result
        .aggregate
        .counters
        .iter()
        .filter(|(n, v)| n.starts_with(ERRORS_PREFIX) && **v > 0)
        .map(|(n, _)| n.as_str())
        .collect();
    let error_series: Vec<Series> = error_kinds
        .iter()
        .map(|k| {
            let mut s = rate_series(k.trim_start_matches(ERRORS_PREFIX), intervals, k, &x);
            s.reduce = Reduce::Max;
            s
        })
        .collect();
    let errors_title = if error_series.is_empty() {
        "Errors per second (none)"
    } else {
        "Errors per second, by kind"
    };
    let mut errors_chart = chart(errors_title.into(), "/s", error_series);
    if errors_chart.series.is_empty() {
        // An all-zero line says "no errors" more clearly than a missing chart.
        errors_chart.series.push(Series {
            name: "errors".into(),
            points: points(&|p| Some(p.errors_total() as f64)),
            reduce: Reduce::Max,
        });
    }
    out.push((errors_chart, false));
    for (name, title) in [
        (DELIVERY, "Delivery latency (sender → receiver)"),
        (CONNECT, "Connect time"),
        (SCHEDULE_LAG, "Schedule lag (generator health)"),
    ] {
        if timing.contains(name) {
            out.push((chart(title.into(), "ms", percentiles(name)), false));
        }
    }
    out.extend(monitor_charts(result, &chart));
    if let Some(adaptive) = &result.adaptive {
        let pts = adaptive
            .trajectory
            .iter()
            .map(|s| (s.offset_ms as f64 / 1000.0, Some(s.vusers as f64)))
            .collect();
        let breaches = adaptive
            .trajectory
            .iter()
            .map(|s| {
                (
                    s.offset_ms as f64 / 1000.0,
                    (!s.healthy).then_some(s.vusers as f64),
                )
            })
            .collect();
        out.push((
            chart(
                "Adaptive trajectory (vusers per window)".into(),
                "",
                vec![
                    Series {
                        name: "vusers".into(),
                        points: pts,
                        reduce: Reduce::Max,
                    },
                    Series {
                        name: "breach".into(),
                        points: breaches,
                        reduce: Reduce::Max,
                    },
                ],
            ),
            true,
        ));
    }
    out
}

fn rate_series(
    label: &str,
    intervals: &[PeriodSummary],
    counter: &str,
    x: &dyn Fn(&PeriodSummary) -> f64,
) -> Series {
    Series {
        name: label.to_owned(),
        points: intervals
            .iter()
            .map(|p| (x(p), Some(p.rates.get(counter).copied().unwrap_or(0.0))))
            .collect(),
        reduce: Reduce::Mean,
    }
}

fn monitor_charts(
    result: &RunResult,
    chart: &dyn Fn(String, &str, Vec<Series>) -> Chart,
) -> Vec<(Chart, bool)> {
    if result.monitor.is_empty() {
        return Vec::new();
    }
    let start_ms = result.run.started_at_ms;
    let x = |t: u64| t.saturating_sub(start_ms) as f64 / 1000.0;
    let cpu = vec![
        Series {
            name: "server process".into(),
            points: result
                .monitor
                .iter()
                .map(|m| (x(m.unix_time_ms), Some(m.process_cpu_percent)))
                .collect(),
            reduce: Reduce::Mean,
        },
        Series {
            name: "host".into(),
            points: result
                .monitor
                .iter()
                .map(|m| (x(m.unix_time_ms), Some(m.host_cpu_percent)))
                .collect(),
            reduce: Reduce::Mean,
        },
    ];
    let mem = vec![Series {
        name: "server RSS".into(),
        points: result
            .monitor
            .iter()
            .map(|m| {
                (
                    x(m.unix_time_ms),
                    Some(m.process_rss_bytes as f64 / 1_048_576.0),
                )
            })
            .collect(),
        reduce: Reduce::Max,
    }];
    vec![
        (chart("Server CPU".into(), "%", cpu), false),
        (chart("Server memory".into(), " MiB", mem), false),
    ]
}
