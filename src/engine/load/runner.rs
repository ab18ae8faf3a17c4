//! The runner: walks the phases on the run's clock, starts vusers when the schedule says
//! (open model: one per arrival; closed model: as many as the target), retires them when the
//! target drops, and ends the run as DESIGN §5 says (retire, graceful stop, then cancel and
//! count what is left).
//!
//! The shapes themselves come from `schedule`; what a vuser does is `vuser`'s business.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::RngExt;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::allocation::Allocator;
use super::control::{LoadMode, RunControl};
use super::intervals::Intervals;
use super::schedule::{ArrivalTimes, Timeline, phase_duration, target_vusers};
use super::shard::ArrivalFilter;
use crate::engine::seed;
use crate::engine::vuser::context::RunContext;
use crate::engine::vuser::{self, VuserSpec, after};
use crate::plan::{Phase, PhaseShape};

/// How often a closed-model phase re-reads its target concurrency.
const CLOSED_TICK: Duration = Duration::from_millis(20);

/// An open-model arrival that is due starts however busy the generator is, unless it is more
/// than this late (or more than one gap between arrivals, for slow rates): then it is dropped
/// and counted as generator overload — also past the end of its phase, so that a short phase
/// a loaded machine reaches a few milliseconds late still starts its vusers. A saturated
/// generator neither queues arrivals nor starts any more than this after its phase's end.
const LATE_TOLERANCE: Duration = Duration::from_secs(1);

/// How late an arrival may start, `interval` after the previous one.
fn late_tolerance(interval: Duration) -> Duration {
    LATE_TOLERANCE.max(interval)
}

/// On a stop signal (Ctrl-C, SIGTERM, SIGHUP) or an abortOnFail breach the graceful stop is
/// cut to at most this.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// A closed-model vuser the runner may retire.
struct Slot {
    retire: CancellationToken,
    done: Arc<AtomicBool>,
}

pub(crate) struct Runner {
    ctx: Arc<RunContext>,
    tracker: TaskTracker,
    /// Cancelled at the end of the run: retires every vuser.
    run_end: CancellationToken,
    /// Set just before `run_end` is cancelled (the vusers' cheap per-iteration check).
    run_ended: Arc<AtomicBool>,
    /// Bumped after vusers are retired: what every vuser reads on each loop iteration before
    /// it asks its own `retire` token (`Vuser::retiring`).
    retirements: Arc<AtomicU64>,
    /// The vusers' tasks, aborted after the graceful stop (finished ones pruned now and
    /// then). Aborting replaces a `select!` on a stop token that every wake of every vuser
    /// polled (~115 instructions per round trip).
    running: Vec<AbortHandle>,
    /// `running`'s length after its last pruning: it is pruned when it has doubled.
    pruned_len: usize,
    shutdown: CancellationToken,
    /// How many vusers this process started (or skipped at an arrival): the local number
    /// `Shard::vuser_id` turns into the run-wide id.
    next_local: u64,
    /// The run-wide open-model arrival sequence, of which this shard takes its part.
    arrivals: ArrivalFilter,
    pool: Vec<Slot>,
    /// Closed-model vusers that have ended, counted as they end: the pool is only scanned
    /// for ended slots when this moved since the last scan (`pool_ended_seen`).
    pool_ended: Arc<AtomicU64>,
    pool_ended_seen: u64,
    open_active: Arc<AtomicU64>,
    cancelled: Arc<AtomicU64>,
    control: RunControl,
    /// Most vusers held at once (`capacity`): arrivals beyond it are dropped and counted.
    live_limit: u64,
    /// Closed-model vusers of this phase's target already counted as dropped.
    shortfall: u64,
    /// Whether vusers get a broadcast inbox: only when someone holds the control handle, since
    /// every wait of every vuser polls it.
    broadcasts: bool,
    /// Assigns scenarios: fixed counts first, then by weight.
    allocator: Allocator,
    /// Where the phases start: the run's start, or the end of the `before` flow.
    origin: Instant,
}

/// Counts a vuser whose task was aborted at the hard stop, from its drop: one that never got
/// to run was dropped (the runtime was saturated), one that ran was cancelled.
/// Either way, its drop frees the vuser's fixed-count slot and runs the runner's `on_end`.
struct Unfinished<F: FnOnce()> {
    recorder: crate::metrics::Recorder,
    /// `vusers.cancelled`, `vusers.dropped`.
    ids: (crate::metrics::CounterId, crate::metrics::CounterId),
    cancelled: Arc<AtomicU64>,
    /// Whether a drop now is a vuser cut short (not one that finished or never was due).
    armed: bool,
    started: bool,
    slot: Option<Arc<AtomicU64>>,
    on_end: Option<F>,
}

impl<F: FnOnce()> Drop for Unfinished<F> {
    fn drop(&mut self) {
        if self.armed {
            if self.started {
                self.recorder.incr(self.ids.0);
                self.cancelled.fetch_add(1, Ordering::Relaxed);
            } else {
                self.recorder.incr(self.ids.1);
            }
        }
        if let Some(slot) = &self.slot {
            slot.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(on_end) = self.on_end.take() {
            on_end();
        }
    }
}

/// How the run ended.
pub(crate) struct Ended {
    pub vusers_cancelled: u64,
}

impl Runner {
    pub fn new(ctx: Arc<RunContext>, shutdown: CancellationToken, live_limit: u64) -> Self {
        Runner {
            arrivals: ArrivalFilter::new(ctx.shard),
            allocator: Allocator::new(&ctx.program, ctx.shard),
            origin: ctx.start,
            ctx,
            tracker: TaskTracker::new(),
            run_end: CancellationToken::new(),
            run_ended: Arc::default(),
            retirements: Arc::default(),
            running: Vec::new(),
            pruned_len: 0,
            shutdown,
            next_local: 0,
            pool: Vec::new(),
            pool_ended: Arc::default(),
            pool_ended_seen: 0,
            open_active: Arc::new(AtomicU64::new(0)),
            cancelled: Arc::new(AtomicU64::new(0)),
            control: RunControl::default(),
            live_limit,
            shortfall: 0,
            broadcasts: false,
        }
    }

    /// Steered by `control` (`scale`, `broadcast`) instead of a private handle; vusers take
    /// broadcasts only when `broadcasts` is set.
    pub fn with_control(mut self, control: RunControl, broadcasts: bool) -> Self {
        self.control = control;
        self.control.set_live_limit(self.live_limit);
        self.broadcasts = broadcasts;
        self
    }

    /// Phases start at `origin` instead of the run's start (after the `before` flow).
    pub fn starting_at(mut self, origin: Instant) -> Self {
        self.origin = origin;
        self
    }

    /// Runs every phase, then the graceful stop.
    pub async fn run(mut self, phases: &[Phase], intervals: &Intervals) -> Ended {
        let timeline = Timeline::new(phases);
        let start = self.origin;
        let mut interrupted = false;
        for (index, phase) in phases.iter().enumerate() {
            let schedule_seed = seed::schedule_seed(self.ctx.seed, index);
            let offset = timeline.start_of(index).unwrap_or_default();
            let phase_start = after(start, offset);
            let phase_end = after(phase_start, phase_duration(&phase.shape));
            intervals.begin_phase(index, &phase.name);
            self.shortfall = 0;
            self.control.set_mode(match phase.shape {
                PhaseShape::Concurrency { .. } => LoadMode::Closed,
                _ => LoadMode::Open,
            });
            if !matches!(phase.shape, PhaseShape::Concurrency { .. }) {
                self.retire_pool(0);
            }
            let completed = match &phase.shape {
                PhaseShape::Arrivals { max_vusers, .. } => {
                    self.open_phase(
                        &phase.shape,
                        schedule_seed,
                        *max_vusers,
                        phase_start,
                        phase_end,
                    )
                    .await
                }
                PhaseShape::ArrivalCount { .. } => {
                    self.open_phase(&phase.shape, schedule_seed, None, phase_start, phase_end)
                        .await
                }
                PhaseShape::Pause(_) => self.wait_until(phase_end).await,
                PhaseShape::Concurrency { .. } => {
                    self.closed_phase(&phase.shape, phase_start, phase_end)
                        .await
                }
            };
            if !completed {
                interrupted = true;
                break;
            }
        }
        intervals.end_phases();
        self.control.set_mode(LoadMode::Idle);
        self.stop(interrupted).await
    }

    /// Arrivals of one open-model phase; false when interrupted.
    async fn open_phase(
        &mut self,
        shape: &PhaseShape,
        schedule_seed: u64,
        max_vusers: Option<u64>,
        phase_start: Instant,
        phase_end: Instant,
    ) -> bool {
        let mut arrivals = ArrivalTimes::new(shape, schedule_seed)
            .into_iter()
            .flatten();
        // A shard holds its share of `maxVusers`, so the shards' limits add up to the plan's.
        let max_vusers = max_vusers.map(|max| self.ctx.shard.share(max));
        let mut previous: Option<Duration> = None;
        while let Some(offset) = arrivals.next() {
            // The run-wide gap since the previous arrival: part of how late this one may start.
            let interval = previous.map_or(Duration::ZERO, |p| offset.saturating_sub(p));
            previous = Some(offset);
            if self.arrivals.take_next().is_none() {
                continue; // another shard's arrival
            }
            let at = after(phase_start, offset);
            let now = Instant::now();
            if at > now {
                if !self.wait_until(at).await {
                    return false;
                }
            } else {
                // Behind schedule (a burst, or a saturated generator): no timer per arrival,
                // but Ctrl-C and the other tasks still get in.
                if self.shutdown.is_cancelled() {
                    return false;
                }
                let tolerance = late_tolerance(interval);
                if now >= after(phase_end, tolerance) {
                    // Past the phase's end by more than an arrival may be late: every arrival
                    // left is too late, and is dropped at once, not run after the phase.
                    let rest = 1 + self.take_own(&mut arrivals);
                    self.drop_arrivals(rest);
                    break;
                }
                if now.duration_since(at) > tolerance {
                    // Too late to stand for its scheduled time. No yield here: dropping is
                    // cheap, so the loop catches up with the clock in one go, where a yield
                    // per arrival on a saturated runtime would fall further behind.
                    self.drop_arrivals(1);
                    continue;
                }
                tokio::task::consume_budget().await;
            }
            self.start_arrival(at, max_vusers);
        }
        self.wait_until(phase_end).await
    }

    /// Starts the open-model arrival scheduled at `at`, or counts it as skipped (`maxVusers`
    /// reached) or dropped (the process holds all the vusers it can).
    fn start_arrival(&mut self, at: Instant, max_vusers: Option<u64>) {
        if max_vusers.is_some_and(|max| self.open_active.load(Ordering::Relaxed) >= max) {
            self.ctx.recorder.incr(self.ctx.ids.skipped);
            // The skipped arrival keeps its id unused, so later ids stay arrival indexes.
            self.next_local += 1;
            return;
        }
        if self.live() >= self.live_limit {
            self.drop_arrivals(1);
            return;
        }
        self.open_active.fetch_add(1, Ordering::Relaxed);
        let active = Arc::clone(&self.open_active);
        // Open-model vusers are never retired, only their endless loops end with the run.
        let started = self.spawn(at, false, CancellationToken::new(), move || {
            active.fetch_sub(1, Ordering::Relaxed);
        });
        if !started {
            self.open_active.fetch_sub(1, Ordering::Relaxed);
            self.ctx.recorder.incr(self.ctx.ids.skipped);
        }
    }

    /// Counts `count` of this shard's arrivals as dropped (generator overload); their ids
    /// stay unused, so later ids remain arrival indexes.
    fn drop_arrivals(&mut self, count: u64) {
        self.ctx.recorder.add(self.ctx.ids.dropped, count);
        self.next_local += count;
    }

    /// Consumes the rest of a phase's arrivals; how many of them are this shard's.
    fn take_own(&mut self, arrivals: &mut impl Iterator<Item = Duration>) -> u64 {
        let mut own = 0;
        for _ in arrivals {
            if self.arrivals.take_next().is_some() {
                own += 1;
            }
        }
        own
    }

    /// Keeps the pool at the phase's target concurrency; false when interrupted.
    async fn closed_phase(
        &mut self,
        shape: &PhaseShape,
        phase_start: Instant,
        phase_end: Instant,
    ) -> bool {
        loop {
            let now = Instant::now();
            if now >= phase_end {
                return true;
            }
            let target = self
                .control
                .scale_override()
                .or_else(|| target_vusers(shape, now - phase_start))
                .map(|level| self.ctx.shard.share(level))
                .unwrap_or(0);
            self.keep_pool(target, now);
            if !self
                .wait_until(after(now, CLOSED_TICK).min(phase_end))
                .await
            {
                return false;
            }
        }
    }

    /// Starts or retires closed-model vusers so that `target` run (replacing ended ones).
    /// Vusers past the live limit are not started: the first time the target asks for them
    /// in a phase they are counted as dropped.
    pub(crate) fn keep_pool(&mut self, target: u64, now: Instant) {
        // Scanning reads one flag per vuser, each in an allocation of its own: every 20 ms
        // over 19 000 idle vusers it was the generator's costliest function of its own (~5 %
        // of its CPU, in cache misses). So only when a vuser ended since the last scan (its
        // flag is set before the count moves).
        let ended = self.pool_ended.load(Ordering::Acquire);
        if ended != self.pool_ended_seen {
            self.pool_ended_seen = ended;
            self.pool.retain(|slot| !slot.done.load(Ordering::Relaxed));
        }
        let wanted = target.saturating_sub(self.pool.len() as u64);
        let room = self.live_limit.saturating_sub(self.live());
        let shortfall = wanted.saturating_sub(room);
        if shortfall > self.shortfall {
            let more = shortfall - self.shortfall;
            self.ctx.recorder.add(self.ctx.ids.dropped, more);
            self.shortfall = shortfall;
        }
        for _ in 0..wanted.min(room) {
            let retire = self.run_end.child_token();
            let done = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&done);
            let ended = Arc::clone(&self.pool_ended);
            let started = self.spawn(now, true, retire.clone(), move || {
                flag.store(true, Ordering::Relaxed);
                ended.fetch_add(1, Ordering::Release);
            });
            if !started {
                // Every scenario has a fixed count and all are running.
                break;
            }
            self.pool.push(Slot { retire, done });
        }
        self.retire_pool(target);
    }

    pub(crate) fn ctx(&self) -> &RunContext {
        &self.ctx
    }

    pub(crate) fn control(&self) -> &RunControl {
        &self.control
    }

    /// Retires the newest closed-model vusers down to `target`.
    pub(crate) fn retire_pool(&mut self, target: u64) {
        let mut retired = false;
        while self.pool.len() as u64 > target {
            if let Some(slot) = self.pool.pop() {
                slot.retire.cancel();
                retired = true;
            }
        }
        if retired {
            // After the cancels: a vuser that sees the new count finds its token cancelled.
            self.retirements.fetch_add(1, Ordering::Release);
        }
    }

    /// Vusers alive now, of either model.
    fn live(&self) -> u64 {
        self.tracker.len() as u64
    }

    /// Starts a vuser (after its scenario's `startAfter`); false when no scenario may take it.
    fn spawn(
        &mut self,
        scheduled: Instant,
        closed_model: bool,
        retire: CancellationToken,
        on_end: impl FnOnce() + Send + 'static,
    ) -> bool {
        // The vuser's own stream: its first draw picks the scenario, the vuser keeps the rest.
        let id = self.ctx.shard.vuser_id(self.next_local);
        let mut rng = seed::vuser_rng(self.ctx.seed, id);
        let ticket = rng.random_range(0..self.ctx.program.total_weight.max(1));
        let Some(assigned) = self.allocator.assign(&self.ctx.program, ticket) else {
            return false;
        };
        // An open-model vuser keeps its fixed-count slot: the count is over the run.
        let slot = assigned.slot.filter(|_| closed_model);
        let start_after = self
            .ctx
            .program
            .scenarios
            .get(assigned.scenario)
            .map(|s| s.allocation.start_after)
            .unwrap_or_default();
        let starts = scheduled.max(after(self.origin, start_after));
        let delayed = starts.saturating_duration_since(scheduled);
        // Boxed: the task keeps what it captures for its whole life, and the spec is only
        // needed until the vuser starts (memory per idle vuser).
        let spec = Box::new(VuserSpec {
            id,
            scenario: assigned.scenario,
            rng,
            scheduled: starts,
            closed_model,
            retire: retire.clone(),
            retirements: Arc::clone(&self.retirements),
            run_ended: Arc::clone(&self.run_ended),
            inbox: self.broadcasts.then(|| self.control.inbox(id)),
        });
        self.next_local += 1;
        let ctx = Arc::clone(&self.ctx);
        let run_end = self.run_end.clone();
        // Counts the vuser if its task is aborted at the hard stop (dropped mid-run).
        let mut unfinished = Unfinished {
            recorder: ctx.recorder.clone(),
            ids: (ctx.ids.cancelled, ctx.ids.dropped),
            cancelled: Arc::clone(&self.cancelled),
            armed: delayed.is_zero(),
            started: false,
            slot,
            on_end: Some(on_end),
        };
        let task = self.tracker.spawn(async move {
            // The whole guard moves into the task (not just the flags it sets), so that
            // dropping the task is what drops it; borrowed there, not moved again (a second
            // copy of it in every vuser's task).
            let unfinished = &mut unfinished;
            // A vuser whose scenario starts later waits here, not counted as active; the
            // run ending or its retirement first means it never starts. One already due
            // starts whatever happened since it was spawned, like any other vuser.
            let due = delayed.is_zero()
                || tokio::select! {
                    biased;
                    _ = sleep_until(starts) => true,
                    _ = run_end.cancelled() => false,
                    _ = retire.cancelled() => false,
                };
            if due {
                unfinished.armed = true;
                unfinished.started = true;
                // The spec's box is freed before the vuser runs: moved out of in place,
                // a box is only freed at the end of its scope, the vuser's whole life.
                let vuser = {
                    let boxed = spec;
                    vuser::run(ctx, *boxed)
                };
                vuser.await;
            }
            // Finished: the drop below only frees the slot and reports the end.
            unfinished.armed = false;
        });
        if self.running.len() >= 2 * self.pruned_len.max(64) {
            self.running.retain(|task| !task.is_finished());
            self.pruned_len = self.running.len();
        }
        self.running.push(task.abort_handle());
        true
    }

    /// Sleeps until `at`; false when the run was interrupted first.
    pub(crate) async fn wait_until(&self, at: Instant) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => false,
            _ = sleep_until(at) => true,
        }
    }

    /// Retires everyone, waits out the graceful stop, then cancels and counts the rest.
    pub(crate) async fn stop(self, interrupted: bool) -> Ended {
        self.run_ended.store(true, Ordering::Relaxed);
        self.run_end.cancel();
        self.tracker.close();
        let mut grace = self.ctx.plan.defaults.graceful_stop;
        if interrupted {
            grace = grace.min(INTERRUPT_GRACE);
        }
        let finished = tokio::select! {
            // A Ctrl-C during the graceful stop cuts it short too.
            _ = self.shutdown.cancelled(), if !interrupted => false,
            done = timeout(grace, self.tracker.wait()) => done.is_ok(),
        };
        if !finished {
            for task in &self.running {
                task.abort();
            }
            self.tracker.wait().await;
        }
        Ended {
            vusers_cancelled: self.cancelled.load(Ordering::Relaxed),
        }
    }
}
