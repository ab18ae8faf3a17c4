//! Driving an adaptive run: hold the controller's level as a closed-model pool, cut one
//! window per level (each window is a phase named `adaptive N`), measure it, ask the
//! controller (`adaptive`) for the next level, until the search is over.
//!
//! Measuring a window:
//! - **Settling.** The first fifth of every window is not judged: new vusers connect and log
//!   in, and the server drains what the previous level left queued. Only intervals that start
//!   after the settling point count (so the judged part is a little shorter than 80 %).
//! - **Backing off at once.** After every interval the judged part so far is checked; once it
//!   spans a quarter of the window, a breach ends the window there, unhealthy.
//! - **Fresh vusers after a breach.** A vuser held up by an overloaded server keeps sending at
//!   once and measuring from its intended times until it catches up (DESIGN §3), which would
//!   charge the previous level's overload to the next one; so after an unhealthy window every
//!   vuser is retired and the next level starts with new ones.
//! - p95 is the highest p95 of the `latency.*` metrics over the judged part (merged
//!   histograms, not averaged percentiles); server CPU is the mean and memory the maximum of
//!   the `monitor` readings fed through [`super::RunControl::server_load`] in that part.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::adaptive::{Controller, Next, WindowStats, judge};
use super::control::{LoadMode, ServerLoad};
use super::intervals::Intervals;
use super::runner::{Ended, Runner};
use crate::engine::vuser::after;
use crate::metrics::{IntervalSnapshot, PeriodSummary};
use crate::plan::Adaptive;
use crate::vocab::names;

/// How often the pool is topped up (vusers whose flow failed are replaced).
const POOL_TICK: Duration = Duration::from_millis(20);

/// Ticks are not exactly on time: an interval ending this close to the window end ends it.
const TICK_SLACK: Duration = Duration::from_millis(20);

/// One window of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveWindow {
    pub vusers: u64,
    /// From the run start to the window's start (settling included) and end.
    pub start_offset: Duration,
    pub end_offset: Duration,
    pub stats: WindowStats,
    pub healthy: bool,
    /// The limits broken, for an unhealthy window.
    pub reason: Option<String>,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveOutcome {
    /// The highest level that held (`None` if none did).
    pub max_stable_vusers: Option<u64>,
    pub trajectory: Vec<AdaptiveWindow>,
    /// False when the run was stopped before the search ended.
    pub completed: bool,
}

/// Runs the adaptive search, then the graceful stop.
pub(crate) async fn run(
    mut runner: Runner,
    config: &Adaptive,
    intervals: &Intervals,
    mut snapshots: UnboundedReceiver<IntervalSnapshot>,
) -> (Ended, AdaptiveOutcome) {
    let run_start = SystemTime::now()
        .checked_sub(runner.ctx().start.elapsed())
        .unwrap_or_else(SystemTime::now);
    let mut controller = Controller::new(config.start_vusers, config.max_vusers);
    let mut trajectory = Vec::new();
    let mut recycle = false;
    let mut completed = false;
    runner.control().set_mode(LoadMode::Adaptive);
    for index in 0.. {
        let level = controller.level();
        intervals.begin_phase(index, &format!("adaptive {level}"));
        if recycle {
            runner.retire_pool(0);
        }
        let started = SystemTime::now();
        runner.keep_pool(level, Instant::now());
        let Some(window) =
            hold_window(&mut runner, config, index, level, started, &mut snapshots).await
        else {
            break;
        };
        let healthy = window.healthy;
        trajectory.push(AdaptiveWindow {
            start_offset: offset(run_start, started),
            end_offset: offset(run_start, SystemTime::now()),
            ..window
        });
        recycle = !healthy;
        if let Next::Done { .. } = controller.record(healthy) {
            completed = true;
            break;
        }
    }
    intervals.end_phases();
    runner.control().set_mode(LoadMode::Idle);
    let interrupted = !completed;
    let outcome = AdaptiveOutcome {
        max_stable_vusers: controller.max_stable(),
        trajectory,
        completed,
    };
    (runner.stop(interrupted).await, outcome)
}

/// Holds `level` for one window and judges it; `None` when the run was stopped.
async fn hold_window(
    runner: &mut Runner,
    config: &Adaptive,
    index: usize,
    level: u64,
    started: SystemTime,
    snapshots: &mut UnboundedReceiver<IntervalSnapshot>,
) -> Option<AdaptiveWindow> {
    let judged_from = started + config.window / 5;
    let window_end = started + config.window;
    let early_after = config.window / 4;
    let mut judged: Option<IntervalSnapshot> = None;
    let mut settling: Option<IntervalSnapshot> = None;
    let mut loads: Vec<ServerLoad> = Vec::new();
    runner.control().take_server_loads();
    loop {
        let tick = after(Instant::now(), POOL_TICK);
        let snapshot = tokio::select! {
            biased;
            snapshot = snapshots.recv() => snapshot?,
            alive = runner.wait_until(tick) => {
                if !alive {
                    return None;
                }
                runner.keep_pool(level, Instant::now());
                continue;
            }
        };
        if snapshot.phase.as_ref().map(|p| p.index) != Some(index) {
            continue;
        }
        loads.extend(
            runner
                .control()
                .take_server_loads()
                .into_iter()
                .filter(|l| l.at >= judged_from),
        );
        let done = snapshot.end + TICK_SLACK >= window_end;
        let part = if snapshot.start + TICK_SLACK >= judged_from {
            &mut judged
        } else {
            &mut settling
        };
        match part {
            Some(acc) => acc.merge(&snapshot),
            None => *part = Some(snapshot),
        }
        // A window shorter than two intervals has no judged part: judge what there is.
        let Some(measured) = judged.as_ref().or(settling.as_ref()) else {
            continue;
        };
        let stats = window_stats(&measured.summary(), &loads);
        let verdict = judge(&config.limits, &stats);
        let long_enough = judged.is_some() && measured.duration() >= early_after;
        if done || (verdict.is_err() && long_enough) {
            return Some(AdaptiveWindow {
                vusers: level,
                start_offset: Duration::ZERO,
                end_offset: Duration::ZERO,
                stats,
                healthy: verdict.is_ok(),
                reason: verdict.err(),
            });
        }
    }
}

/// The numbers a window is judged on.
pub(crate) fn window_stats(summary: &PeriodSummary, loads: &[ServerLoad]) -> WindowStats {
    let latencies = || {
        summary
            .summaries
            .iter()
            .filter(|(name, _)| name.starts_with(names::LATENCY_PREFIX))
            .map(|(_, s)| s)
    };
    let p95_ms = latencies().map(|s| s.p95).reduce(f64::max);
    let matched: u64 = latencies().map(|s| s.count).sum();
    let errors = summary.errors_total();
    let success_rate_percent =
        (matched + errors > 0).then(|| 100.0 * matched as f64 / (matched + errors) as f64);
    let server_cpu_percent = (!loads.is_empty())
        .then(|| loads.iter().map(|l| l.cpu_percent).sum::<f64>() / loads.len() as f64);
    let server_memory_percent = loads.iter().map(|l| l.memory_percent).reduce(f64::max);
    WindowStats {
        p95_ms,
        error_rate_percent: summary.error_rate_percent(),
        success_rate_percent,
        server_cpu_percent,
        server_memory_percent,
    }
}

fn offset(run_start: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(run_start).unwrap_or_default()
}
