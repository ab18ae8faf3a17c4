//! The load engine: the pure schedule (phases → arrival times and target concurrency), the
//! runner that starts and retires virtual users, one virtual user, one function per step kind.
//!
//! It does not parse plans (`plan`), frame bytes (`protocol`) or aggregate numbers (`metrics`),
//! and it starts no server: `target: embedded` is resolved by the CLI, which hands the engine
//! an address.
//!
//! Entry point: [`run`].

mod error;
pub mod hooks;
pub mod load;
pub mod probe;
pub mod seed;
mod setup;
pub mod thresholds;
pub mod vuser;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use error::{EngineError, ErrorKind, Failure};
pub use load::{
    AdaptiveOutcome, AdaptiveWindow, BreakingOutcome, ControlError, INTERRUPT_GRACE, LAG_WARNING,
    LoadMode, PartialRun, Progress, ProgressFn, RunControl, ServerLoad, Shard, ShardError,
};
pub use vuser::errors::ErrorCount;

use crate::metrics::{Collector, Registry, RunMetrics};
use crate::plan::{Endpoint, Scheme};
use crate::plan::{Load, Plan};
use crate::protocol::FrameCodec;
use crate::transport::Connector;
use load::{breaking, intervals, runner, schedule};
use vuser::{context, program, stamp, template};

/// How often (in task polls) a runtime worker takes from the global run queue before its own
/// local queue: every second poll instead of tokio's adaptive ~31-61.
const GLOBAL_QUEUE_INTERVAL: u32 = 2;

/// The runtime a run's vusers need. Fair turns (docs/performance.md, "Issue 17"): a worker's
/// local run queue holds 256 tasks; with more connections ready at once the rest overflow to
/// the global queue, which a worker otherwise reads only every ~31-61 polls, so those vusers
/// waited several times longer than the ones cycling through the local queue (p99 several
/// times the minimal client's at 1 000 connections). Reading it every second poll serves
/// both alike; with fewer runnable vusers than 256 it is one atomic load.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .build()
}

/// How to run a plan.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Snapshot interval; `None` = the plan's `report.interval`.
    pub interval: Option<Duration>,
    /// Cancel it to stop the run early (Ctrl-C): scheduling stops, vusers are retired, a short
    /// graceful stop runs and the results so far are returned with `interrupted` set.
    pub shutdown: CancellationToken,
    /// Called after every interval (live progress, warnings).
    pub on_progress: Option<ProgressFn>,
    /// Receives the lines of `log` steps (`[vu N] text`); `None` prints them to stderr.
    pub on_log: Option<LogFn>,
    /// Steers the run while it goes (`scale`, `broadcast`, `stats`, `stop`); `RunControl::stop`
    /// ends it like an abort, not as interrupted.
    pub control: Option<RunControl>,
    /// Judge the plan's `ensure` on every phase on its own and stop at the first phase that
    /// breaks it (the `stress` preset): the outcome's `breaking_point`.
    pub breaking_point: bool,
    /// Vusers accept `RunControl::broadcast` (the interactive console). Off by default: every
    /// wait of every vuser would poll the inbox.
    pub broadcasts: bool,
    /// The seed of every random choice (arrivals, scenario picks, data, think times, template
    /// functions): the same seed replays them for the same plan. `None`: a random one, reported
    /// in `RunOutcome::seed`.
    pub seed: Option<u64>,
    /// The part of the run this process drives (`run --shard I/N`); `Shard::WHOLE` by default.
    /// Every shard must be given the same plan, seed and run id.
    pub shard: Shard,
    /// The run id tying the shards of one run together (and the stamp token, so deliveries
    /// cross shards); `None`: a fresh random one (an unsplit run).
    pub run_id: Option<String>,
    /// Most vusers held at once; arrivals beyond it are dropped and counted
    /// (`vusers.dropped`). `None`: the process's descriptor limit (`load::capacity`).
    pub max_live_vusers: Option<u64>,
    /// Do not run the plan's `config.hooks` (`run --no-hooks`).
    pub skip_hooks: bool,
    /// Hold the phases until this wall-clock instant (`run --start-at`). The hooks, the
    /// `before` flow and the rest of the setup run first, so shards told the same instant
    /// start their phases together whatever their setup took; later than it, they start at
    /// once (`RunOutcome::phases_started_at` says when).
    pub phases_start_at: Option<SystemTime>,
}

/// Where `log` steps write; called from vuser tasks, so keep it quick.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("interval", &self.interval)
            .field("on_progress", &self.on_progress.is_some())
            .field("on_log", &self.on_log.is_some())
            .field("control", &self.control)
            .field("breaking_point", &self.breaking_point)
            .field("broadcasts", &self.broadcasts)
            .field("seed", &self.seed)
            .field("shard", &self.shard)
            .field("run_id", &self.run_id)
            .field("max_live_vusers", &self.max_live_vusers)
            .field("phases_start_at", &self.phases_start_at)
            .finish_non_exhaustive()
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run id (`RunOptions::run_id` or a fresh one); stamps carry a token derived from it.
    pub run_id: String,
    /// The part of the run this process drove.
    pub shard: Shard,
    /// The seed the run's randomness came from (`RunOptions::seed` or the one picked).
    pub seed: u64,
    /// The target URL with its scheme (`tcp://…`, `tls://…`, `ws://…`, `wss://…`).
    pub target: String,
    /// TLS certificates were not verified (`config.tls.insecureSkipVerify`).
    pub insecure_tls: bool,
    pub started_at: SystemTime,
    /// When the phases' clock started: after the `before` flow, and not before
    /// `RunOptions::phases_start_at`.
    pub phases_started_at: SystemTime,
    pub duration: Duration,
    /// Planned length of all phases.
    pub planned: Duration,
    /// The interval length: intervals are cut on the wall-clock grid of this step.
    pub interval: Duration,
    pub metrics: RunMetrics,
    /// Stopped early through `RunOptions::shutdown`.
    pub interrupted: bool,
    /// Stopped early because a condition with `abortOnFail` broke: the first breach.
    pub aborted: Option<thresholds::Breach>,
    /// Every `ensure` entry and how it went (empty when the plan has none).
    pub thresholds: Vec<thresholds::ThresholdOutcome>,
    /// Vusers still running when the graceful stop ran out or a stop cut it short (also the
    /// counter `vusers.cancelled`).
    pub vusers_cancelled: u64,
    /// Intervals whose `schedule.lag` p99 exceeded [`LAG_WARNING`].
    pub overloaded_intervals: u32,
    /// The most frequent error messages (`kind: message`), to show the user what went wrong.
    pub error_samples: Vec<String>,
    /// Every distinct error message with its step, scenario and count, most frequent first
    /// (bounded: see [`vuser::errors`]).
    pub errors: Vec<ErrorCount>,
    /// Stopped early because no connection to the target succeeded (DESIGN: "nothing could
    /// connect"): every attempt of the first seconds or the first attempts failed.
    pub unreachable: Option<Unreachable>,
    /// Ended early by `RunControl::stop` (or a breaking point).
    pub stopped: bool,
    /// The adaptive search, for a plan with `adaptive`.
    pub adaptive: Option<AdaptiveOutcome>,
    /// Where the steps broke, with `RunOptions::breaking_point`.
    pub breaking_point: Option<BreakingOutcome>,
    /// The `config.hooks` commands that ran, in order (none with `skip_hooks`).
    pub hooks: Vec<hooks::HookOutcome>,
}

/// Why a run stopped early when nothing could connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// The target URL.
    pub target: String,
    /// The first connection error (`kind: detail`).
    pub first_error: String,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nothing could connect to {}: {}",
            self.target, self.first_error
        )
    }
}

/// Runs `plan` against `target` (a URL: `host:port`, `tls://…`, `ws://…`, `wss://…`) until its phases and graceful stop are over, or
/// `options.shutdown` is cancelled.
pub async fn run(
    plan: Arc<Plan>,
    target: &str,
    options: RunOptions,
) -> Result<RunOutcome, EngineError> {
    load::capacity::refuse_absurd(&plan.load, u64::from(options.shard.count()))?;
    if options.skip_hooks {
        return run_load(plan, target, options).await;
    }
    let dir = plan
        .source
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let hooks = &plan.setup.hooks;
    // Every shard runs the hooks on its own host; the variables let one do once-per-run work.
    let env = hooks::HookEnv {
        shard_index: options.shard.index(),
        shard_count: options.shard.count(),
        run_id: options.run_id.clone(),
    };
    let mut outcomes = hooks::run_hooks(&hooks.before, &dir, hooks::HookStage::Before, &env).await;
    let failed = outcomes.iter().find(|h| !h.succeeded()).map(|h| {
        let reason = match (&h.error, h.exit_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("exit code {code}"),
            (None, None) => "killed by a signal".to_owned(),
        };
        (h.command.join(" "), reason)
    });
    let result = match failed {
        Some(_) => None,
        None => Some(run_load(Arc::clone(&plan), target, options).await),
    };
    // Like `finally`: whatever happened to the run (Ctrl-C, an abort, an error), and after a
    // failed `before` hook too, so a half-done setup is undone.
    outcomes.extend(hooks::run_hooks(&hooks.after, &dir, hooks::HookStage::After, &env).await);
    match (result, failed) {
        (Some(result), _) => result.map(|mut out| {
            out.hooks = outcomes;
            out
        }),
        (None, Some((command, reason))) => Err(EngineError::HookFailed {
            command,
            reason,
            outcomes,
        }),
        (None, None) => Err(EngineError::Internal),
    }
}

/// The run itself, between the hooks: the `before` flow, the phases, the `after` flow.
async fn run_load(
    plan: Arc<Plan>,
    target: &str,
    options: RunOptions,
) -> Result<RunOutcome, EngineError> {
    let (phases, adaptive) = match &plan.load {
        Load::Phases(phases) => (phases.clone(), None),
        Load::Adaptive(config) => (Vec::new(), Some(config.clone())),
    };
    if options.shard.is_split() {
        if adaptive.is_some() {
            return Err(EngineError::SingleController(
                "an adaptive run (`adaptive`)",
            ));
        }
        if options.breaking_point {
            return Err(EngineError::SingleController(
                "a breaking-point run (the `stress` preset)",
            ));
        }
    }
    let control = options.control.clone().unwrap_or_default();
    let run_endpoint = Endpoint::parse(target).map_err(|e| EngineError::Target {
        target: target.to_owned(),
        reason: e.to_string(),
    })?;
    // An HTTP run's socket scenarios (if any) connect to their own target.
    let mut endpoint = match run_endpoint.scheme.is_http() {
        true => plan
            .scenarios
            .iter()
            .filter_map(|s| Endpoint::parse(s.target.as_deref()?).ok())
            .find(|e| !e.scheme.is_http())
            .unwrap_or(run_endpoint),
        false => run_endpoint,
    };
    // `config.tls` under a bare `host:port` puts TLS under it; `tcp://` stays plain.
    if plan.tls.is_some() && endpoint.scheme == Scheme::Tcp && !target.contains("://") {
        endpoint.scheme = Scheme::Tls;
    }
    let mut registry = Registry::new().with_standard_metrics();
    let ids = context::Ids::register(&mut registry, endpoint.scheme.is_websocket());
    let http = vuser::http::plan_uses_http(&plan)
        .then(|| vuser::http::HttpRun::new(&plan, target, &mut registry));
    let program = program::Program::compile(&plan, &mut registry);
    if program.scenarios.is_empty() {
        return Err(EngineError::NoScenarios);
    }
    let codec = FrameCodec::new(plan.protocol.clone())?;
    let endian = plan.protocol.field_endian();
    let connector = Connector::new(
        endpoint,
        plan.tls.as_ref(),
        &plan.websocket,
        codec,
        plan.source_addresses.clone(),
    )
    .await?;
    let target = connector.endpoint().to_string();
    let insecure_tls = connector.insecure() || http.as_ref().is_some_and(|h| h.client.insecure());
    let collector = Collector::new(registry);
    let recorder = collector.recorder();
    let started_at = SystemTime::now();
    let start = Instant::now();
    let wall_start_us = crate::metrics::epoch_us(started_at);
    let run_id = options.run_id.clone().unwrap_or_else(stamp::new_run_id);
    let stamp_token: Arc<str> = Arc::from(stamp::token(&run_id));
    let seed = options.seed.unwrap_or_else(seed::random_seed);
    let renderer = template::Renderer::new(
        &plan.templates,
        Arc::clone(&stamp_token),
        start,
        wall_start_us,
    );
    let timeline = schedule::Timeline::new(&phases);
    let planned = timeline.total();
    // Where the runner cuts intervals itself; the periodic ticker keeps clear of them.
    let boundaries: Vec<Duration> = (1..phases.len())
        .filter_map(|i| timeline.start_of(i))
        .chain(std::iter::once(planned))
        .collect();
    let interval = options
        .interval
        .unwrap_or(plan.report.interval)
        .max(Duration::from_millis(10));

    // The runner stops on Ctrl-C (the parent token), on an abortOnFail breach or when nothing
    // can connect (this one).
    let stop = options.shutdown.child_token();
    let mut ctx = context::RunContext::new(
        Arc::clone(&plan),
        program,
        renderer,
        connector,
        endian,
        recorder,
        ids,
        stamp_token,
        seed,
        (start, wall_start_us),
        options.shard,
        options.on_log.clone(),
        stop.clone(),
    );
    ctx.http = http;
    let ctx = Arc::new(ctx);
    setup::before(&ctx).await?;
    if let Some(at) = options.phases_start_at {
        // Ctrl-C while waiting ends the run before its phases start.
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {}
        }
    }
    // The phases, intervals and their clock start once the `before` flow is done.
    let origin = Instant::now();
    let origin_wall = started_at + origin.saturating_duration_since(start);
    let connect_watch = tokio::spawn({
        let ctx = Arc::clone(&ctx);
        async move { ctx.connect_watch.watch_window().await }
    });
    let on_progress = {
        let control = control.clone();
        let user = options.on_progress.clone();
        let publish: ProgressFn = Arc::new(move |p: &Progress| {
            control.publish(p);
            if let Some(user) = &user {
                user(p);
            }
        });
        Some(publish)
    };
    let intervals = Arc::new(intervals::Intervals::new(
        collector,
        thresholds::ThresholdEvaluator::new(&plan.ensure, started_at),
        on_progress,
        stop.clone(),
        origin,
        planned,
        Arc::from(run_id.as_str()),
    ));
    let ticker_stop = CancellationToken::new();
    let ticker = tokio::spawn(tick(
        Arc::clone(&intervals),
        (origin, origin_wall),
        interval,
        boundaries,
        ticker_stop.clone(),
    ));

    control.attach(started_at, &intervals);
    let forward_stop = tokio::spawn({
        let (from, to) = (control.stop_token().clone(), stop.clone());
        async move {
            tokio::select! {
                _ = from.cancelled() => to.cancel(),
                _ = to.cancelled() => {}
            }
        }
    });
    let breaking = (options.breaking_point && adaptive.is_none())
        .then(|| intervals.observe())
        .flatten()
        .map(|rx| {
            tokio::spawn(breaking::watch(
                phases.clone(),
                plan.ensure.clone(),
                rx,
                stop.clone(),
            ))
        });
    let live_limit = options
        .max_live_vusers
        .unwrap_or_else(load::capacity::live_limit);
    let runner = runner::Runner::new(Arc::clone(&ctx), stop.clone(), live_limit)
        .with_control(control.clone(), options.broadcasts)
        .starting_at(origin);
    let (ended, adaptive) = match adaptive.as_ref().map(|c| (c, intervals.observe())) {
        Some((config, Some(rx))) => {
            let (ended, outcome) = load::run_adaptive(runner, config, &intervals, rx).await;
            (ended, Some(outcome))
        }
        Some((_, None)) => return Err(EngineError::Internal),
        None => (runner.run(&phases, &intervals).await, None),
    };
    // The one place every run ends, however (last vuser, Ctrl-C, abort, stop).
    setup::after(&ctx).await;
    control.detach();
    forward_stop.abort();
    connect_watch.abort();

    ticker_stop.cancel();
    let _ = ticker.await;
    intervals.tick();
    let error_samples = ctx.error_samples();
    let errors = ctx.error_table();
    let unreachable = ctx
        .connect_watch
        .unreachable()
        .map(|first_error| Unreachable {
            target: target.clone(),
            first_error,
        });
    let intervals = sole_owner(intervals).await?;
    let finished = intervals.finish()?;
    // The snapshot stream closed with `finish`: the watcher judges the last step and returns.
    let breaking_point = match breaking {
        Some(task) => Some(task.await.map_err(|_| EngineError::Internal)?),
        None => None,
    };
    Ok(RunOutcome {
        run_id,
        shard: options.shard,
        seed,
        target,
        insecure_tls,
        started_at,
        phases_started_at: origin_wall,
        duration: start.elapsed(),
        planned,
        interval,
        metrics: finished.metrics,
        interrupted: options.shutdown.is_cancelled(),
        aborted: finished.breach,
        thresholds: finished.thresholds,
        vusers_cancelled: ended.vusers_cancelled,
        overloaded_intervals: finished.overloaded_intervals,
        error_samples,
        errors,
        unreachable,
        stopped: control.is_stopped()
            || breaking_point
                .as_ref()
                .is_some_and(|b| b.failed_at.is_some()),
        adaptive,
        breaking_point,
        hooks: Vec::new(),
    })
}

/// Cuts an interval at every multiple of `every` since the Unix epoch (the wall-clock grid,
/// so the intervals of several processes line up and `merge` adds them), except close to a
/// phase boundary or the start: the runner cuts at phase boundaries itself, and a tick a few
/// milliseconds away would leave a sliver interval with next to no samples.
async fn tick(
    intervals: Arc<intervals::Intervals>,
    (start, started_at): (Instant, SystemTime),
    every: Duration,
    boundaries: Vec<Duration>,
    stop: CancellationToken,
) {
    let every_us = u64::try_from(every.as_micros()).unwrap_or(u64::MAX).max(1);
    let to_grid_us = every_us - crate::metrics::epoch_us(started_at) % every_us;
    let mut timer = tokio::time::interval_at(start + Duration::from_micros(to_grid_us), every);
    // A late tick keeps the grid rather than shifting every later cut.
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let margin = every / 4;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = timer.tick() => {
                let elapsed = start.elapsed();
                if elapsed >= margin && !near_any(elapsed, &boundaries, margin) {
                    intervals.tick();
                }
            }
        }
    }
}

fn near_any(elapsed: Duration, boundaries: &[Duration], margin: Duration) -> bool {
    boundaries.iter().any(|b| b.abs_diff(elapsed) < margin)
}

#[cfg(test)]
mod tests;

/// Takes the intervals back once nobody else holds them. `control.detach()` has removed the
/// only other way in, but a reader that upgraded its weak handle just before (the dashboard or
/// `stats` computing the results so far, on another thread) may still be finishing; it holds
/// the handle only for that synchronous computation, so wait for it briefly.
async fn sole_owner(
    mut intervals: Arc<intervals::Intervals>,
) -> Result<intervals::Intervals, EngineError> {
    for _ in 0..10_000 {
        match Arc::try_unwrap(intervals) {
            Ok(owned) => return Ok(owned),
            Err(shared) => intervals = shared,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(EngineError::Internal)
}
