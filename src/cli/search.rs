//! The load searches of `chatload run`: whether a run looks for a breaking point (the `stress`
//! preset), and how an adaptive search or a breaking point goes into the result and onto the
//! console.
//!
//! The searches themselves run in the engine (`engine::adaptive`, the breaking-point watcher).

use std::fmt::Write as _;

use crate::engine::{AdaptiveOutcome, BreakingOutcome, RunOutcome};
use crate::plan::{Load, Plan};
use crate::report::{AdaptiveResult, AdaptiveStep, BreakingPoint, RunResult};

/// A run looks for its breaking point when its phases are the `stress` preset's steps (from
/// `run --preset stress` or `phases: [{preset: stress, ...}]`).
pub(super) fn is_stress(preset: Option<&str>, plan: &Plan) -> bool {
    if let Some(name) = preset {
        return name == "stress";
    }
    match &plan.load {
        Load::Phases(phases) => {
            !phases.is_empty() && phases.iter().all(|p| p.name.starts_with("stress "))
        }
        Load::Adaptive(_) => false,
    }
}

/// Puts the search results (and an early stop) into `result`. A breaking point found counts
/// as an abort by a threshold (exit code 1); a `stop` from the console is only a warning.
pub(super) fn apply(outcome: &RunOutcome, result: &mut RunResult) {
    result.adaptive = outcome.adaptive.as_ref().map(adaptive_result);
    result.breaking_point = outcome.breaking_point.as_ref().map(breaking_result);
    if let Some(b) = &outcome.breaking_point
        && b.failed_at.is_some()
    {
        result.run.aborted = true;
        result.run.abort_reason = Some(breaking_text(b));
    } else if outcome.stopped && !outcome.interrupted {
        result.run.warnings.push(format!(
            "stopped early from the interactive console after {:.1} s",
            outcome.duration.as_secs_f64()
        ));
    }
}

pub(super) fn adaptive_result(outcome: &AdaptiveOutcome) -> AdaptiveResult {
    AdaptiveResult {
        max_stable_vusers: outcome.max_stable_vusers,
        trajectory: outcome
            .trajectory
            .iter()
            .map(|w| AdaptiveStep {
                offset_ms: millis(w.start_offset),
                end_offset_ms: Some(millis(w.end_offset)),
                vusers: w.vusers,
                healthy: w.healthy,
                reason: w.reason.clone(),
                p95_ms: w.stats.p95_ms.map(round3),
                error_rate_percent: Some(round3(w.stats.error_rate_percent)),
                success_rate_percent: w.stats.success_rate_percent.map(round3),
                server_cpu_percent: w.stats.server_cpu_percent.map(round3),
                server_mem_percent: w.stats.server_memory_percent.map(round3),
            })
            .collect(),
    }
}

pub(super) fn breaking_result(outcome: &BreakingOutcome) -> BreakingPoint {
    BreakingPoint {
        max_stable_vusers: outcome.max_stable_vusers,
        failed_at: outcome.failed_at,
        reason: outcome.reason.clone(),
    }
}

/// The adaptive trajectory as a table, then `max stable vusers: N`.
pub(super) fn adaptive_text(outcome: &AdaptiveOutcome) -> String {
    let mut out = String::from("adaptive search\n");
    let _ = writeln!(
        out,
        "  {:>11}  {:>7}  {:>10}  {:>7}  {:>7}  verdict",
        "window", "vusers", "p95", "errors", "cpu"
    );
    for w in &outcome.trajectory {
        let span = format!(
            "{:.0}-{:.0}s",
            w.start_offset.as_secs_f64(),
            w.end_offset.as_secs_f64()
        );
        let p95 = w
            .stats
            .p95_ms
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
        let cpu = w
            .stats
            .server_cpu_percent
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0} %"));
        let verdict = match &w.reason {
            None => "healthy".to_owned(),
            Some(reason) => format!("breach: {reason}"),
        };
        let _ = writeln!(
            out,
            "  {span:>11}  {:>7}  {p95:>10}  {:>5.2} %  {cpu:>7}  {verdict}",
            w.vusers, w.stats.error_rate_percent
        );
    }
    match outcome.max_stable_vusers {
        Some(n) => {
            let _ = write!(out, "max stable vusers: {n}");
        }
        None => out.push_str("max stable vusers: none (even the lowest level broke a limit)"),
    }
    if !outcome.completed {
        out.push_str(" (search stopped before it finished)");
    }
    out
}

/// `max stable vusers: N` and where it broke.
pub(super) fn breaking_text(outcome: &BreakingOutcome) -> String {
    let stable = outcome
        .max_stable_vusers
        .map_or_else(|| "none".to_owned(), |n| n.to_string());
    match outcome.failed_at {
        Some(at) => format!(
            "breaking point: max stable vusers: {stable}; broke at {at} vusers: {}",
            outcome.reason
        ),
        None => format!(
            "breaking point: max stable vusers: {stable}; {}",
            outcome.reason
        ),
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
