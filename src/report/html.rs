//! `report.html`: one self-contained file (inline CSS, inline SVG charts, no script, no
//! network) rendered with minijinja from `templates/report.html.j2`, which is compiled into
//! the binary. This file turns a [`RunResult`] into the template's view model; the look is
//! the template's, the charts are `charts.rs`. The live dashboard renders the results so far
//! the same way, with the run-state badge of `so_far` instead of a verdict.

use std::collections::BTreeSet;
use std::path::Path;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::metrics::{PeriodSummary, Summary, decode_histogram};
use crate::vocab::names::{
    DELIVERY, ERRORS_PREFIX, FAILURES_PREFIX, HTTP_RESPONSE_TIME_PREFIX, LATENCY_PREFIX,
    MESSAGES_RECEIVED, MESSAGES_SENT, VUSERS_ACTIVE, VUSERS_CREATED,
};

use super::ReportError;
use super::charts::{clock, render_svg};
use super::console::format_duration_ms;
use super::model::RunResult;
use super::spectrum::{SpectrumSeries, render_spectrum_svg, spectrum_points};

const TEMPLATE: &str = include_str!("../../templates/report.html.j2");
const ERRORS_TEMPLATE: &str = include_str!("../../templates/errors.html.j2");

#[derive(Serialize)]
struct View {
    plan_name: String,
    plan_path: Option<String>,
    target: String,
    started_at: String,
    ended_at: String,
    duration: String,
    version: String,
    exit_code: i32,
    /// Rendered mid-run (the live dashboard): no verdict or exit code yet.
    live: bool,
    status: String,
    status_class: &'static str,
    abort_reason: Option<String>,
    warnings: Vec<String>,
    cards: Vec<Card>,
    thresholds: Vec<ThresholdRow>,
    charts: Vec<ChartView>,
    timings: Vec<TimingRow>,
    /// HTTP endpoints: method, name, requests, failures, p50, p95, p99, max.
    endpoints: Vec<Vec<String>>,
    counters: Vec<[String; 3]>,
    gauges: Vec<[String; 3]>,
    errors: Vec<[String; 3]>,
    /// The errors table per step and scenario (`templates/errors.html.j2`).
    error_messages: Vec<super::errors::ErrorRow>,
    phases: Vec<Vec<String>>,
    scenarios: Vec<Vec<String>>,
    adaptive: Option<AdaptiveView>,
    breaking_point: Option<[String; 3]>,
    plan_json: String,
    /// The plan file's text (secrets redacted) when the result carries it.
    plan_source: Option<PlanSourceView>,
    distribution: Option<String>,
    scenario_errors: Option<ScenarioErrors>,
    intervals: usize,
}

#[derive(Serialize)]
struct PlanSourceView {
    format: String,
    text: String,
}

/// Scenario × error kind counts.
#[derive(Serialize)]
struct ScenarioErrors {
    kinds: Vec<String>,
    rows: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct Card {
    label: String,
    value: String,
    unit: String,
    sub: String,
    class: &'static str,
}

#[derive(Serialize)]
struct ThresholdRow {
    passed: bool,
    strict: bool,
    expression: String,
    window: String,
    observed: String,
    detail: String,
}

#[derive(Serialize)]
struct ChartView {
    title: String,
    svg: String,
    wide: bool,
}

#[derive(Serialize)]
struct TimingRow {
    name: String,
    cells: Vec<String>,
}

#[derive(Serialize)]
struct AdaptiveView {
    max_stable: String,
    steps: Vec<Vec<String>>,
}

/// Renders the HTML report of `result`.
pub fn render_html(result: &RunResult) -> Result<String, ReportError> {
    render(build_view(result))
}

/// Renders the results so far of a run still going (`--dashboard`): the run state instead of
/// a verdict, which only the end of the run decides.
pub fn render_html_so_far(result: &RunResult) -> Result<String, ReportError> {
    let mut view = build_view(result);
    (view.status, view.status_class) = super::so_far::badge(result);
    view.live = true;
    let failed = result.thresholds.iter().filter(|t| !t.passed).count();
    for card in view.cards.iter_mut().filter(|c| c.label == "Thresholds") {
        (card.sub, card.class) = (super::so_far::thresholds_sub(failed), "");
    }
    render(view)
}

fn render(view: View) -> Result<String, ReportError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)
        .map_err(ReportError::Template)?;
    env.add_template("errors.html", ERRORS_TEMPLATE)
        .map_err(ReportError::Template)?;
    env.get_template("report.html")
        .and_then(|t| t.render(minijinja::value::Serde(&view)))
        .map_err(ReportError::Template)
}

/// Renders and writes the HTML report to `path`, atomically.
pub fn write_html(result: &RunResult, path: &Path) -> Result<(), ReportError> {
    let html = render_html(result)?;
    super::write_atomically(path, html.as_bytes())
}

fn build_view(result: &RunResult) -> View {
    let run = &result.run;
    let failed = result.thresholds.iter().filter(|t| !t.passed).count();
    let verdict = result.verdict();
    let (status, status_class) = (verdict.label(), verdict.class());
    View {
        plan_name: run.plan_name.clone(),
        plan_path: run.plan_path.clone(),
        target: run.target.clone(),
        started_at: run.started_at.replace('T', " ").replace('Z', " UTC"),
        ended_at: run.ended_at.replace('T', " ").replace('Z', " UTC"),
        duration: format_duration_ms(run.duration_ms),
        version: run.chatload_version.clone(),
        exit_code: run.exit_code,
        live: false,
        status,
        status_class,
        abort_reason: run.abort_reason.clone(),
        warnings: run.warnings.clone(),
        cards: cards(result, failed),
        thresholds: thresholds(result),
        charts: charts(result),
        timings: timings(&result.aggregate),
        endpoints: endpoints(result),
        counters: counters(&result.aggregate),
        gauges: result
            .aggregate
            .gauges
            .iter()
            .map(|(n, g)| [n.clone(), g.max.to_string(), g.last.to_string()])
            .collect(),
        errors: errors(&result.aggregate),
        error_messages: super::errors::html_rows(result),
        phases: phases(result),
        scenarios: scenarios(result),
        adaptive: result.adaptive.as_ref().map(|a| AdaptiveView {
            max_stable: a
                .max_stable_vusers
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into()),
            steps: a
                .trajectory
                .iter()
                .map(|s| {
                    vec![
                        clock(s.offset_ms as f64 / 1000.0),
                        s.vusers.to_string(),
                        if s.healthy { "healthy" } else { "breach" }.into(),
                        opt(s.p95_ms, " ms"),
                        opt(s.error_rate_percent, " %"),
                        opt(s.server_cpu_percent, " %"),
                        s.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        }),
        breaking_point: result.breaking_point.as_ref().map(|b| {
            [
                b.max_stable_vusers
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "none".into()),
                b.failed_at
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "—".into()),
                b.reason.clone(),
            ]
        }),
        plan_json: serde_json::to_string_pretty(&result.plan).unwrap_or_default(),
        plan_source: result.plan_source.as_ref().map(|p| PlanSourceView {
            format: p.format.label().to_owned(),
            text: p.text.clone(),
        }),
        distribution: distribution(result),
        scenario_errors: scenario_errors(result),
        intervals: result.intermediate.len(),
    }
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{}{unit}", fmt(v))).unwrap_or_default()
}

fn counter(p: &PeriodSummary, name: &str) -> u64 {
    p.counters.get(name).copied().unwrap_or(0)
}

/// The expect latency with the most samples: the one the headline card shows.
fn main_latency(agg: &PeriodSummary) -> Option<(&str, &Summary)> {
    agg.summaries
        .iter()
        .filter(|(n, _)| n.starts_with(LATENCY_PREFIX))
        // Most samples; on a tie the first name, so the choice is stable.
        .max_by(|a, b| a.1.count.cmp(&b.1.count).then_with(|| b.0.cmp(a.0)))
        .map(|(n, s)| (n.as_str(), s))
}

fn cards(result: &RunResult, failed: usize) -> Vec<Card> {
    let agg = &result.aggregate;
    let secs = agg.duration_seconds().max(0.001);
    let mut out = Vec::new();
    let sent = counter(agg, MESSAGES_SENT);
    out.push(Card {
        label: "Messages sent".into(),
        value: group(sent),
        unit: String::new(),
        sub: format!("{} /s average", fmt(sent as f64 / secs)),
        class: "",
    });
    let received = counter(agg, MESSAGES_RECEIVED);
    out.push(Card {
        label: "Messages received".into(),
        value: group(received),
        unit: String::new(),
        sub: format!("{} /s average", fmt(received as f64 / secs)),
        class: "",
    });
    if let Some((name, s)) = main_latency(agg) {
        out.push(Card {
            label: format!("{name} p95"),
            value: fmt(s.p95),
            unit: "ms".into(),
            sub: format!("p50 {} · p99 {} ms", fmt(s.p50), fmt(s.p99)),
            class: "",
        });
    }
    if let Some(s) = agg.summaries.get(DELIVERY) {
        out.push(Card {
            label: "Delivery p95".into(),
            value: fmt(s.p95),
            unit: "ms".into(),
            sub: format!("{} deliveries · p99 {} ms", group(s.count), fmt(s.p99)),
            class: "",
        });
    }
    let rate = agg.error_rate_percent();
    out.push(Card {
        label: "Error rate".into(),
        value: fmt(rate),
        unit: "%".into(),
        sub: format!("{} errors", group(agg.errors_total())),
        class: if rate > 0.0 { "bad" } else { "good" },
    });
    let peak = agg.gauges.get(VUSERS_ACTIVE).map(|g| g.max).unwrap_or(0);
    out.push(Card {
        label: "Peak vusers".into(),
        value: peak.to_string(),
        unit: String::new(),
        sub: format!("{} created", group(counter(agg, VUSERS_CREATED))),
        class: "",
    });
    if !result.thresholds.is_empty() {
        let total = result.thresholds.len();
        out.push(Card {
            label: "Thresholds".into(),
            value: format!("{}/{total}", total - failed),
            unit: String::new(),
            sub: if failed == 0 {
                "all held".into()
            } else {
                format!("{failed} failed")
            },
            class: if failed == 0 { "good" } else { "bad" },
        });
    }
    out
}

/// `1234567` → `1 234 567` (thin spaces read well in every locale).
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

fn thresholds(result: &RunResult) -> Vec<ThresholdRow> {
    result
        .thresholds
        .iter()
        .map(|t| {
            let observed = t
                .observed
                .iter()
                .map(|o| match o.value {
                    Some(v) => format!("{} = {}{}", o.metric, fmt(v), o.unit),
                    None => format!("{} = no data", o.metric),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut detail = Vec::new();
            if let (Some(n), Some(f)) = (t.windows_evaluated, t.windows_failed) {
                detail.push(format!("{f} of {n} windows failed"));
            }
            if let Some(at) = t.first_failure_offset_ms {
                detail.push(format!("first at {}", clock(at as f64 / 1000.0)));
            }
            if !t.strict {
                detail.push("warning only".into());
            }
            ThresholdRow {
                passed: t.passed,
                strict: t.strict,
                expression: t.expression.clone(),
                window: t
                    .window_ms
                    .map(|w| format!("every {}", format_duration_ms(w)))
                    .unwrap_or_else(|| "whole run".into()),
                observed,
                detail: detail.join(" · "),
            }
        })
        .collect()
}

fn timings(agg: &PeriodSummary) -> Vec<TimingRow> {
    agg.summaries
        .iter()
        .map(|(name, s)| TimingRow {
            name: name.clone(),
            cells: [
                group(s.count),
                fmt(s.min),
                fmt(s.mean),
                fmt(s.p50),
                fmt(s.p90),
                fmt(s.p95),
                fmt(s.p99),
                fmt(s.p999),
                fmt(s.max),
            ]
            .to_vec(),
        })
        .collect()
}

/// One row per HTTP endpoint, Locust's table: requests, failures, percentiles.
fn endpoints(result: &RunResult) -> Vec<Vec<String>> {
    let agg = &result.aggregate;
    let with_failures = agg.counters.keys().filter_map(|k| {
        k.strip_prefix(FAILURES_PREFIX)?
            .strip_prefix(HTTP_RESPONSE_TIME_PREFIX)
    });
    let names: BTreeSet<&str> = agg
        .summaries
        .keys()
        .filter_map(|k| k.strip_prefix(HTTP_RESPONSE_TIME_PREFIX))
        .chain(with_failures)
        .collect();
    names
        .into_iter()
        .map(|name| {
            let metric = format!("{HTTP_RESPONSE_TIME_PREFIX}{name}");
            let failures = counter(agg, &format!("{FAILURES_PREFIX}{metric}"));
            let s = agg.summaries.get(&metric);
            let stat = |f: fn(&Summary) -> f64| s.map(|s| fmt(f(s))).unwrap_or_default();
            vec![
                result.endpoints.get(name).cloned().unwrap_or_default(),
                name.to_owned(),
                group(s.map_or(0, |s| s.count)),
                group(failures),
                stat(|s| s.p50),
                stat(|s| s.p95),
                stat(|s| s.p99),
                stat(|s| s.max),
            ]
        })
        .collect()
}

fn counters(agg: &PeriodSummary) -> Vec<[String; 3]> {
    agg.counters
        .iter()
        .filter(|(n, _)| !n.starts_with(ERRORS_PREFIX))
        .map(|(n, &v)| {
            let rate = agg.rates.get(n).copied().unwrap_or(0.0);
            [n.clone(), group(v), fmt(rate)]
        })
        .collect()
}

fn errors(agg: &PeriodSummary) -> Vec<[String; 3]> {
    let total = agg.errors_total().max(1) as f64;
    agg.counters
        .iter()
        .filter_map(|(n, &v)| {
            let kind = n.strip_prefix(ERRORS_PREFIX)?;
            (v > 0).then(|| [kind.to_owned(), group(v), fmt(100.0 * v as f64 / total)])
        })
        .collect()
}

fn phases(result: &RunResult) -> Vec<Vec<String>> {
    result
        .phases
        .iter()
        .map(|p| {
            let s = &p.summary;
            let latency = main_latency(s)
                .map(|(_, l)| fmt(l.p95))
                .unwrap_or_else(|| "—".into());
            vec![
                p.name.clone(),
                clock(p.start_offset_ms as f64 / 1000.0),
                format_duration_ms(p.end_offset_ms.saturating_sub(p.start_offset_ms)),
                group(counter(s, VUSERS_CREATED)),
                s.gauges
                    .get(VUSERS_ACTIVE)
                    .map(|g| g.max.to_string())
                    .unwrap_or_default(),
                fmt(s.rates.get(MESSAGES_SENT).copied().unwrap_or(0.0)),
                latency,
                group(s.errors_total()),
                fmt(s.error_rate_percent()),
            ]
        })
        .collect()
}

fn scenarios(result: &RunResult) -> Vec<Vec<String>> {
    result
        .scenarios
        .iter()
        .map(|s| {
            let get = |k: &str| group(s.counters.get(k).copied().unwrap_or(0));
            let latency = s
                .summaries
                .iter()
                .filter(|(n, _)| n.starts_with(LATENCY_PREFIX))
                .map(|(n, l)| format!("{n} {}", fmt(l.p95)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                s.name.clone(),
                s.weight.to_string(),
                get(VUSERS_CREATED),
                get("vusers.completed"),
                get("vusers.failed"),
                get(MESSAGES_SENT),
                get(MESSAGES_RECEIVED),
                if latency.is_empty() {
                    "—".into()
                } else {
                    latency
                },
            ]
        })
        .collect()
}

/// The percentile spectrum of every expect latency and of delivery, from the run-wide
/// histograms; `None` when there is none to draw.
fn distribution(result: &RunResult) -> Option<String> {
    let mut series = Vec::new();
    let mut samples = Vec::new();
    for (name, encoded) in &result.histograms {
        if !(name.starts_with(LATENCY_PREFIX) || name == DELIVERY) {
            continue;
        }
        let Ok(h) = decode_histogram(encoded) else {
            continue;
        };
        let points = spectrum_points(&h);
        if points.is_empty() {
            continue;
        }
        series.push(SpectrumSeries {
            name: name.clone(),
            points,
        });
        samples.push(h.len());
    }
    (!series.is_empty())
        .then(|| render_spectrum_svg("Latency distribution by percentile", &series, &samples))
}

/// Error counts by scenario and kind (`errors.*` counters of each scenario); `None` when no
/// scenario had an error.
fn scenario_errors(result: &RunResult) -> Option<ScenarioErrors> {
    let kinds: BTreeSet<&str> = result
        .scenarios
        .iter()
        .flat_map(|s| s.counters.iter())
        .filter(|(n, v)| n.starts_with(ERRORS_PREFIX) && **v > 0)
        .map(|(n, _)| n.as_str())
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let rows = result
        .scenarios
        .iter()
        .map(|s| {
            let mut row = vec![s.name.clone()];
            row.extend(
                kinds
                    .iter()
                    .map(|k| group(s.counters.get(*k).copied().unwrap_or(0))),
            );
            let total: u64 = kinds
                .iter()
                .map(|k| s.counters.get(*k).copied().unwrap_or(0))
                .sum();
            row.push(group(total));
            row
        })
        .collect();
    Some(ScenarioErrors {
        kinds: kinds
            .iter()
            .map(|k| k.trim_start_matches(ERRORS_PREFIX).to_owned())
            .collect(),
        rows,
    })
}

fn charts(result: &RunResult) -> Vec<ChartView> {
    super::html_charts::build(result)
        .into_iter()
        .filter(|(c, _)| !c.is_empty())
        .map(|(c, wide)| ChartView {
            title: c.title.clone(),
            svg: render_svg(&c),
            wide,
        })
        .collect()
}

/// Display number: 3 significant decimals at most (`0.022`, `29.41`, `299.8`, `2654`).
fn fmt(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    super::csv::fmt(format!("{v:.decimals$}").parse().unwrap_or(v))
}
