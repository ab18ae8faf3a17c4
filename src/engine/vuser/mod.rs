//! One virtual user: the single worker loop every load model and framing shares. It walks the
//! scenario's flat instruction list (`program`), keeps the vuser's variables, connection and
//! intended clock, and reads frames whenever it waits (expects and thinks), so stamps are
//! timed on arrival and server pushes are answered at once.
//!
//! Walking the flow is `flow`'s and the step kinds themselves are in `steps`; starting and
//! retiring vusers is the runner's job.

mod accept;
mod branch;
pub(crate) mod context;
pub mod data;
pub(crate) mod delivery;
pub mod errors;
mod event;
mod flow;
pub(crate) mod http;
mod http_parts;
pub(crate) mod matchers;
pub(crate) mod message;
pub(crate) mod program;
mod receive;
mod simple_template;
pub mod stamp;
mod state;
mod steps;
mod tally;
pub mod template;
mod write;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::engine::error::{ErrorKind, Failure};
use crate::engine::load::control::Inbox;
use crate::engine::seed::SeededRng;
use crate::plan::LoopBound;
use crate::protocol::{Frame, Matcher};
use crate::transport::TransportError;
use accept::Accepted;
use context::RunContext;
use event::{Deadline, Event, next_event};
use matchers::MatcherCache;
use program::{ExpectOp, Op, ScenarioIds, ScenarioProgram};
use receive::Dispatched;
use template::{LoopVar, Scope, Vars};

pub(crate) use state::{Clock, GaugeGuard, Link};

/// Frames kept for a later expect when nothing was waiting for them (oldest dropped first).
const PENDING_FRAMES: usize = 64;

/// How the runner starts a vuser.
#[derive(Debug)]
pub(crate) struct VuserSpec {
    pub id: u64,
    pub scenario: usize,
    /// When the schedule wanted it to start (for `schedule.lag`).
    pub scheduled: Instant,
    /// Closed model: repeat the flow until retired.
    pub closed_model: bool,
    /// Cancelled to retire the vuser gracefully: it stops at its next think, backoff or loop
    /// iteration. Only closed-model vusers are ever retired.
    pub retire: CancellationToken,
    /// Bumped by the runner after it cancels any vuser's `retire`, shared by all vusers.
    /// The per-iteration check reads it (one cache line for every vuser) and asks `retire`
    /// only when it moved: `CancellationToken::is_cancelled` takes a mutex, and twice per loop
    /// iteration was ~110 instructions per round trip; a flag of each vuser's own was one
    /// more cache line fetched per round trip with many connections.
    pub retirements: Arc<AtomicU64>,
    /// Set when the run ends: ends `loop`s without a bound, for every vuser.
    pub run_ended: Arc<AtomicBool>,
    /// Texts to send at once (`RunControl::broadcast`).
    pub inbox: Option<Inbox>,
    /// The vuser's stream of the run seed (`seed::vuser_rng`), after the scenario pick.
    pub rng: SeededRng,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Failed,
}

/// Whether the flow goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Next,
    Retired,
}

/// What a wait ended with.
#[derive(Debug)]
pub(crate) enum Waited {
    Deadline,
    Retired,
    Matched { at: Instant, accepted: Accepted },
}

struct LoopFrame {
    iteration: u64,
    started: Instant,
    outer: Option<LoopVar>,
}

/// `repr(C)`: the fields a round trip touches come first, in the order given, so that they
/// share a few cache lines; with a thousand connections every vuser's lines are fetched
/// again on each of its round trips (docs/performance.md, eighth pass). The rest follows.
#[repr(C)]
pub(crate) struct Vuser {
    // Touched on every round trip.
    /// Body bytes of a sent message whose counts wait for its expect: a `send` with an
    /// `expect` counts both under the expect's one metrics lock (the send's own would be a
    /// second lock per round trip). Counted at once if the expect fails, and by the guard
    /// itself if the vuser is dropped mid-wait.
    pub uncounted_sent: state::OwedSent,
    pub clock: Clock,
    /// Expects completed (round trips) and when the first and the last one completed, for
    /// the benchmark's fairness tally (`tally`).
    pub expects_span: Option<(Instant, Instant)>,
    pub expects_done: u64,
    /// Body size of the frame the last wait matched, counted when the expect records.
    pub matched_bytes: u64,
    /// The deadline of the current wait, one timer reused for the vuser's life: pushing a
    /// registered deadline later is an atomic store, where a fresh timer per expect costs a
    /// timer-wheel insert and removal per message.
    timer: Deadline,
    retire_watch: state::RetireWatch,
    run_ended: Arc<AtomicBool>,
    pub ids: ScenarioIds,
    inbox: Option<Inbox>,
    /// Frames received since the last send that no expect or handler took.
    pub pending: VecDeque<(Frame, Instant)>,
    loops: Vec<LoopFrame>,
    pub closed_model: bool,
    pub conn: Option<Link>,
    pub scope: Scope,
    // Touched by some steps only, or once per vuser.
    /// Matchers built from this vuser's renderings of templated matchers.
    pub matchers: MatcherCache,
    /// Where a templated text send is rendered, reused from one send to the next.
    pub render_buffer: Vec<u8>,
    /// The stamps counted so far, so a reflected or replayed one is not counted twice.
    deliveries: delivery::Deliveries,
    pub retire: CancellationToken,
    /// HTTP connections and cookies, from the first HTTP step on.
    pub http: Option<Box<http::VuserHttp>>,
    pub id: u64,
    /// Its scenario's index in the program.
    scenario: usize,
    pub reconnects_left: u32,
}

/// Runs one vuser to its end and counts how it ended; gives back how it ended and its
/// variables at the end (for the `before` flow).
///
/// Not an `async fn`: the spec is turned into the vuser here, before the future exists, so
/// the future holds the vuser once instead of also keeping the spec and its arguments
/// (an `async fn` stores its parameters for its whole life; memory per idle vuser). It
/// starts the vuser when called: call it when the vuser is due and await it at once.
pub(crate) fn run(
    ctx: Arc<RunContext>,
    spec: VuserSpec,
) -> impl Future<Output = (Outcome, Arc<Vars>)> {
    let started = ctx.program.scenario(spec.scenario).map(|scenario| {
        let recorder = &ctx.recorder;
        recorder.incr(scenario.ids.created);
        let active = GaugeGuard::new(recorder, ctx.ids.active);
        recorder.record(
            ctx.ids.schedule_lag,
            Instant::now().saturating_duration_since(spec.scheduled),
        );
        (active, Vuser::new(&ctx, scenario, spec))
    });
    // The vuser is used in place, never moved out of the captured value: each move in an
    // async block is another copy of its 900 bytes in the future.
    let mut started = started;
    async move {
        let Some((_active, vu)) = &mut started else {
            return (Outcome::Failed, Arc::default());
        };
        let Some(scenario) = ctx.program.scenario(vu.scenario) else {
            return (Outcome::Failed, Arc::default());
        };
        let outcome = vu.run_to_end(&ctx, scenario).await;
        (outcome, std::mem::take(&mut vu.scope.vars))
    }
}

impl Vuser {
    /// A vuser of `scenario` as `spec` describes it, with its variables drawn.
    fn new(ctx: &RunContext, scenario: &ScenarioProgram, spec: VuserSpec) -> Vuser {
        let mut rng = spec.rng;
        let mut vars = ctx.data.vars_for_vuser(&mut rng);
        if let Some(shared) = ctx.shared.get() {
            vars.extend(shared.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let recorder = &ctx.recorder;
        Vuser {
            id: spec.id,
            scenario: spec.scenario,
            ids: scenario.ids,
            closed_model: spec.closed_model,
            retire: spec.retire,
            retire_watch: state::RetireWatch::new(spec.retirements),
            run_ended: spec.run_ended,
            scope: Scope::new(vars, spec.id, &scenario.name, ctx.env.clone(), rng),
            conn: None,
            clock: Clock::at(Instant::now()),
            pending: VecDeque::new(),
            reconnects_left: ctx.plan.defaults.reconnect.attempts,
            // Room for one level (the usual outer `loop`) rather than the four a first push
            // would reserve: a few hundred bytes per idle vuser.
            loops: Vec::with_capacity(1),
            inbox: spec.inbox,
            timer: Deadline::at(Instant::now()),
            matched_bytes: 0,
            matchers: MatcherCache::default(),
            http: None,
            deliveries: delivery::Deliveries::default(),
            expects_done: 0,
            expects_span: None,
            uncounted_sent: state::OwedSent::new(
                recorder,
                scenario.ids.messages_sent,
                scenario.ids.bytes_sent,
            ),
            render_buffer: Vec::new(),
        }
    }

    /// The vuser's life: its flow, again and again for a closed-model vuser, with reconnects
    /// and backoffs; then its counters.
    ///
    /// Not an `async fn` (a block that uses its captured arguments in place): see `Vuser::wait`.
    #[allow(clippy::manual_async_fn)]
    fn run_to_end(
        &mut self,
        ctx: &RunContext,
        scenario: &ScenarioProgram,
    ) -> impl Future<Output = Outcome> {
        async move {
            let vu = self;
            let recorder = &ctx.recorder;
            let outcome = loop {
                match flow::walk(vu, ctx, scenario).await {
                    Ok(Control::Retired) => break Outcome::Completed,
                    Ok(Control::Next) => {
                        if vu.closed_model && !vu.retiring() {
                            // A flow that never waits must not starve the other tasks of its
                            // thread: spend coop budget, yielding when it runs out. Not a
                            // `yield_now` per pass: a one-request flow would be polled twice
                            // per request, and its deferred wake-up costs the scheduler an
                            // extra look at the I/O driver.
                            tokio::task::consume_budget().await;
                            continue;
                        }
                        break Outcome::Completed;
                    }
                    Err(failure) => {
                        ctx.count_error(&failure);
                        if failure.kind.is_connection_lost()
                            && vu.reconnects_left > 0
                            && !vu.retiring()
                        {
                            vu.reconnects_left -= 1;
                            vu.conn = None;
                            if vu.backoff(ctx).await == Control::Retired {
                                break Outcome::Completed;
                            }
                            continue;
                        }
                        if vu.closed_model {
                            // Its replacement would fail the same way at once: hold the slot for a
                            // backoff so a dead server gives a bounded error rate, not a busy loop.
                            vu.conn = None;
                            vu.backoff(ctx).await;
                        }
                        break Outcome::Failed;
                    }
                }
            };
            steps::disconnect(vu).await;
            recorder.incr(match outcome {
                Outcome::Completed => scenario.ids.completed,
                Outcome::Failed => scenario.ids.failed,
            });
            let span = vu
                .expects_span
                .map(|(first, last)| last.saturating_duration_since(first))
                .unwrap_or_default();
            // The first expect starts the span: count the ones after it.
            tally::write(vu.expects_done.saturating_sub(1), span);
            outcome
        }
    }
    /// Whether the runner retired this vuser: what `retire.is_cancelled()` says, without its
    /// mutex. A closed-model vuser's `retire` is a child of the run's end, so the run ending
    /// retires it too.
    pub(crate) fn retiring(&mut self) -> bool {
        self.retire_watch.retired(&self.retire)
            || (self.closed_model && self.run_ended.load(Ordering::Relaxed))
    }

    fn enter_loop(
        &mut self,
        ctx: &RunContext,
        bound: &LoopBound,
        pc: usize,
        end: usize,
    ) -> Result<usize, Failure> {
        let frame = LoopFrame {
            iteration: 0,
            started: Instant::now(),
            outer: self.scope.loop_.take(),
        };
        // A `while` condition sees the loop it guards (`loop.index` of the coming turn).
        self.scope.loop_ = Some(branch::loop_var(bound, 0));
        if branch::loop_continues(&ctx.renderer, &self.scope, bound, &frame)? {
            self.loops.push(frame);
            Ok(pc + 1)
        } else {
            self.scope.loop_ = frame.outer;
            Ok(end + 1)
        }
    }

    /// Where to go after the loop body; `None` when the vuser was retired.
    fn loop_end(
        &mut self,
        ctx: &RunContext,
        ops: &[Op],
        start: usize,
        pc: usize,
    ) -> Result<Option<usize>, Failure> {
        let Some(Op::LoopStart { bound, .. }) = ops.get(start) else {
            return Ok(Some(pc + 1));
        };
        // A `while` loop has its own end, like `count`: only a bare loop stops with the run.
        let retired = self.retiring()
            || (self.run_ended.load(Ordering::Relaxed) && matches!(bound, LoopBound::Forever));
        if retired {
            return Ok(None);
        }
        let Some(frame) = self.loops.last_mut() else {
            return Ok(None);
        };
        frame.iteration += 1;
        if let Some(var) = &mut self.scope.loop_ {
            var.iteration = frame.iteration;
        }
        if branch::loop_continues(&ctx.renderer, &self.scope, bound, frame)? {
            match &mut self.scope.loop_ {
                // Same loop, next turn: no new value unless it is an `over` loop.
                Some(var) if !matches!(bound, LoopBound::Over(_)) => {
                    var.iteration = frame.iteration
                }
                slot => *slot = Some(branch::loop_var(bound, frame.iteration)),
            }
            Ok(Some(start + 1))
        } else {
            if let Some(frame) = self.loops.pop() {
                self.scope.loop_ = frame.outer;
            }
            Ok(Some(pc + 1))
        }
    }

    /// Waits until `until` or, with `expect`, until a matching frame (returned) — reading and
    /// dispatching every frame that arrives meanwhile. `interruptible` lets retiring end it.
    /// An expect comes with the matcher it waits on (its template rendered, if it is one).
    ///
    /// Not an `async fn`: the async block uses its arguments where they are captured, where
    /// an `async fn` keeps a second copy of each for its body (bytes in every vuser's task).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn wait<'a>(
        &'a mut self,
        ctx: &'a RunContext,
        scenario: &'a ScenarioProgram,
        until: Instant,
        expect: Option<(&'a ExpectOp, &'a Matcher)>,
        interruptible: bool,
    ) -> impl Future<Output = Result<Waited, Failure>> + 'a {
        async move {
            // The timer may stay armed for an earlier deadline than this wait's (the last
            // expect's): when it fires, the wait re-arms it for `until` and goes on. Moving a
            // deadline later on every round trip cost a clock conversion and a timer update each
            // time; this way it happens once per timeout period.
            if self.timer.is_elapsed() || until < self.timer.deadline() {
                self.timer.reset(until);
            }
            loop {
                let Some(conn) = self.conn.as_mut() else {
                    if expect.is_some() {
                        return Err(Failure::new(
                            ErrorKind::Closed,
                            "expect without an open connection (add a `connect` step first)",
                        ));
                    }
                    tokio::select! {
                        biased;
                        _ = self.retire.cancelled(), if interruptible => return Ok(Waited::Retired),
                        _ = self.timer.fired() => {
                            if self.rearm(until) {
                                continue;
                            }
                            return Ok(Waited::Deadline);
                        }
                    }
                };
                let item = {
                    // Only a wait that retiring may end watches for it: expects do not, and
                    // setting up that watch on every round trip cost more than the rest of it.
                    let mut retired = pin!(interruptible.then(|| self.retire.cancelled()));
                    let (inbox, timer) = (&mut self.inbox, &mut self.timer);
                    poll_fn(|cx| next_event(cx, retired.as_mut().as_pin_mut(), conn, inbox, timer))
                        .await
                };
                // Whatever is to be written is taken out of the handling first: only the write is
                // alive while it waits, not the frame, the dispatch result and their temporaries
                // (they would otherwise be kept in every vuser's future).
                let (reply, binary) = match item {
                    Event::Incoming(item) => {
                        let at = Instant::now();
                        match self.on_incoming(ctx, scenario, item, at, expect)? {
                            Dispatched::Matched(accepted) => {
                                return Ok(Waited::Matched { at, accepted });
                            }
                            Dispatched::Done => continue,
                            Dispatched::Reply(reply, binary) => (reply, binary),
                        }
                    }
                    Event::Retired => return Ok(Waited::Retired),
                    Event::Deadline if self.rearm(until) => continue,
                    Event::Deadline => return Ok(Waited::Deadline),
                    Event::Broadcast(text) => (
                        Frame::text(bytes::Bytes::copy_from_slice(text.as_bytes())),
                        false,
                    ),
                };
                // Boxed: a console broadcast or a handler's reply is rare next to the frames a
                // wait reads, and the write future would otherwise sit in every vuser's task.
                Box::pin(write::write(self, ctx, reply, binary)).await?;
            }
        }
    }

    /// After the timer fired: `true` when it was armed for an earlier deadline than `until`
    /// (it is re-armed for `until`), `false` when `until` is reached. Trusts the timer's own
    /// deadline rather than reading the clock, so a fired timer is never re-armed for the
    /// same instant.
    fn rearm(&mut self, until: Instant) -> bool {
        if self.timer.deadline() >= until {
            return false;
        }
        self.timer.reset(until);
        true
    }

    /// Waits out the reconnect backoff; retiring ends it early.
    async fn backoff(&mut self, ctx: &RunContext) -> Control {
        let until = after(Instant::now(), ctx.plan.defaults.reconnect.backoff);
        tokio::select! {
            _ = self.retire.cancelled() => Control::Retired,
            _ = sleep_until(until) => Control::Next,
        }
    }
}

/// `at + d`, saturating far in the future instead of overflowing on absurd durations.
pub(crate) fn after(at: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    at.checked_add(d)
        .or_else(|| at.checked_add(YEAR))
        .unwrap_or(at)
}

/// A failure on an open connection; `silent`: nothing had arrived on it yet.
pub(crate) fn transport_failure(ctx: &RunContext, err: TransportError, silent: bool) -> Failure {
    let kind = err.kind();
    let mut detail = err.to_string();
    if silent
        && kind.is_connection_lost()
        && let Some(hint) = ctx.connector.hint_for_silent_close()
    {
        detail = format!("{detail}; {hint}");
    }
    Failure::new(kind, detail)
}

/// The start of a frame, for error messages.
pub(crate) fn preview(frame: &Frame) -> String {
    let body = frame
        .body
        .get(..frame.body.len().min(80))
        .unwrap_or_default();
    format!("{:?}", String::from_utf8_lossy(body))
}
