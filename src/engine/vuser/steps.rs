//! One function per flow step kind (connect, send, expect, think, set, log, record,
//! disconnect) plus the handler dispatch. Walking the program and dispatching to these is
//! `flow`'s; writing frames is `write`'s. They are free functions over a `&mut Vuser`: the
//! vuser's own methods (its life, loop bookkeeping, waits and frame dispatch) live in one
//! `impl Vuser`, in `vuser/mod.rs`.

use std::time::Duration;

use minijinja::value::Value;
use rand::RngExt;
use tokio::time::{Instant, sleep_until};

use super::accept::Accepted;
use super::context::RunContext;
use super::message;
use super::program::{ExpectOp, Op, ScenarioProgram};
use super::write::{sent_counts, write_literal, write_uncounted};
use super::{Clock, Control, GaugeGuard, Link, Vuser, Waited, after, preview};
use crate::engine::error::{ErrorKind, Failure};
use crate::engine::seed::SeededRng;
use crate::metrics::HistogramId;
use crate::plan::{SendSpec, Text, Think};
use crate::protocol::{Frame, Matcher};

/// The largest render buffer a vuser keeps between sends (bigger ones are freed).
const RENDER_BUFFER_KEPT_BYTES: usize = 1024;

/// Opens a connection (closing any previous one), retrying per `defaults.reconnect`.
pub(super) async fn connect(
    vu: &mut Vuser,
    ctx: &RunContext,
    connect_timeout: Option<Duration>,
) -> Result<Control, Failure> {
    disconnect(vu).await;
    let limit = connect_timeout.unwrap_or(ctx.plan.defaults.timeout);
    loop {
        ctx.connect_watch.attempt();
        // The link moves into the vuser before anything else is awaited: a `Result<Link, _>`
        // alive across the backoff below would be kept in every vuser's future (memory per
        // idle vuser).
        let failure = match open(vu, ctx, limit).await {
            Ok(link) => {
                ctx.connect_watch.connected();
                vu.conn = Some(link);
                vu.clock = Clock::at(Instant::now());
                vu.pending.clear();
                return Ok(Control::Next);
            }
            Err(failure) => failure.at(vu.ids.connect_step),
        };
        if vu.reconnects_left == 0 || vu.retiring() {
            return Err(failure);
        }
        ctx.count_error(&failure);
        drop(failure);
        vu.reconnects_left -= 1;
        let until = after(Instant::now(), ctx.plan.defaults.reconnect.backoff);
        tokio::select! {
            _ = vu.retire.cancelled() => return Ok(Control::Retired),
            _ = sleep_until(until) => {}
        }
    }
}

/// Renders and writes one message; connects first if the flow has not. `deferred`: leave
/// the message's counts to the expect that follows (`Vuser::uncounted_sent`).
///
/// Not an `async fn` (a block that uses its captured arguments in place): see `Vuser::wait`.
#[allow(clippy::manual_async_fn)]
pub(super) fn send(
    vu: &mut Vuser,
    ctx: &RunContext,
    op: &Op,
    deferred: bool,
) -> impl Future<Output = Result<Control, Failure>> {
    async move {
        let Op::Send {
            message: spec,
            literal,
            ..
        } = op
        else {
            return Ok(Control::Next);
        };
        // Boxed: a send connects only the first time (or after a reconnect), and the connect's
        // future would otherwise be sized into every vuser's future.
        if vu.conn.is_none() && Box::pin(connect(vu, ctx, None)).await? == Control::Retired {
            return Ok(Control::Retired);
        }
        let scheduled = vu.clock.next_send;
        let bytes = if let SendSpec::Text(Text::Literal(text)) = spec {
            // Nothing to render, and encoded once for the run where the transport allows.
            write_literal(vu, ctx, text.as_bytes(), literal).await?
        } else if let SendSpec::Text(text) = spec {
            // Rendered into the vuser's reused buffer: no `String` per message.
            let mut body = std::mem::take(&mut vu.render_buffer);
            body.clear();
            let written = match ctx.renderer.render_into(text, &vu.scope, &mut body) {
                Ok(()) => write_uncounted(vu, ctx, None, &body, false).await,
                Err(e) => Err(Failure::new(ErrorKind::Template, e.to_string())),
            };
            // An idle vuser should not hold on to its largest message.
            if body.capacity() <= RENDER_BUFFER_KEPT_BYTES {
                vu.render_buffer = body;
            }
            written?
        } else {
            let frame = message::build(&ctx.plan, &ctx.renderer, ctx.endian, spec, &mut vu.scope)
                .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))?;
            let binary = message::is_binary(&ctx.plan, spec);
            write_uncounted(vu, ctx, frame.type_id, &frame.body, binary).await?
        };
        if deferred {
            vu.uncounted_sent.owe(bytes);
        } else {
            ctx.recorder.add_many(&sent_counts(vu, Some(bytes)));
        }
        // Checked first: clearing even an empty deque costs a few dozen instructions per send.
        if !vu.pending.is_empty() {
            vu.pending.clear();
        }
        vu.clock.measure_from = scheduled;
        Ok(Control::Next)
    }
}

/// Waits for the first frame since the last send that matches, records its latency from
/// the send's *scheduled* time and stores the captures.
///
/// Not an `async fn` (a block that uses its captured arguments in place): see `Vuser::wait`.
#[allow(clippy::manual_async_fn)]
pub(super) fn expect(
    vu: &mut Vuser,
    ctx: &RunContext,
    scenario: &ScenarioProgram,
    op: &ExpectOp,
) -> impl Future<Output = Result<Control, Failure>> {
    async move {
        let mut rendered = None;
        let matcher = op
            .test
            .matcher(&mut vu.matchers, &ctx.renderer, &vu.scope, &mut rendered)?;
        // A frame kept from earlier is taken in the condition: its temporary ends there (edition
        // 2024), so it is not kept in the future while the `else` branch waits.
        let (at, mut accepted, counts) =
            if let Some((at, accepted)) = take_pending_match(vu, ctx, op, matcher) {
                // Counted when it arrived.
                (at, accepted?, [(vu.ids.messages_received, 0); 2])
            } else {
                let limit = op.timeout.unwrap_or(ctx.plan.defaults.timeout);
                let until = after(Instant::now(), limit);
                match vu
                    .wait(ctx, scenario, until, Some((op, matcher)), false)
                    .await?
                {
                    Waited::Matched { at, accepted } => {
                        (at, accepted, vu.received_counts(vu.matched_bytes))
                    }
                    Waited::Deadline | Waited::Retired => {
                        return Err(Failure::new(
                            ErrorKind::Timeout,
                            format!("no frame matched within {limit:?} ({matcher})"),
                        ));
                    }
                }
            };
        // The reply's latency and counts, and the counts of the send it answers, under one lock.
        let [received, received_bytes] = counts;
        let uncounted = vu.uncounted_sent.take();
        let [sent, sent_bytes] = sent_counts(vu, uncounted);
        ctx.recorder.record_and_add(
            op.latency,
            at.saturating_duration_since(vu.clock.measure_from),
            &[received, received_bytes, sent, sent_bytes],
        );
        vu.clock.next_send = vu.clock.next_send.max(at);
        vu.expects_done += 1;
        vu.expects_span = Some((vu.expects_span.map_or(at, |(first, _)| first), at));
        accepted.store_decoded(&op.test.decode, &mut vu.scope);
        store_captures(vu, &op.variables, accepted.captures)?;
        Ok(Control::Next)
    }
}

/// The first frame kept for a later expect that `op` accepts, taken out of the kept ones,
/// with the time it arrived.
fn take_pending_match(
    vu: &mut Vuser,
    ctx: &RunContext,
    op: &ExpectOp,
    matcher: &Matcher,
) -> Option<(Instant, Result<Accepted, Failure>)> {
    if vu.pending.is_empty() {
        return None;
    }
    let (index, at, accepted) = vu.pending.iter().enumerate().find_map(|(i, (frame, at))| {
        op.test
            .accept(matcher, frame, ctx.endian)
            .map(|accepted| (i, *at, accepted))
    })?;
    vu.pending.remove(index);
    Some((at, accepted))
}

/// Stores each captured value in its variable; a capture that found nothing is an error.
fn store_captures(
    vu: &mut Vuser,
    variables: &[String],
    captures: impl IntoIterator<Item = Option<String>>,
) -> Result<(), Failure> {
    for (variable, value) in variables.iter().zip(captures) {
        match value {
            Some(value) => vu.scope.set(variable, Value::from(value)),
            None => {
                return Err(Failure::new(
                    ErrorKind::Capture,
                    format!("capture `{variable}` found nothing in the matched frame"),
                ));
            }
        }
    }
    Ok(())
}

/// Advances the pacing clock and sleeps until it, answering frames meanwhile. Behind
/// schedule (a slow reply held the vuser up), it does not sleep at all.
///
/// Not an `async fn` (a block that uses its captured arguments in place): see `Vuser::wait`.
#[allow(clippy::manual_async_fn)]
pub(super) fn think(
    vu: &mut Vuser,
    ctx: &RunContext,
    scenario: &ScenarioProgram,
    think: &Think,
) -> impl Future<Output = Result<Control, Failure>> {
    async move {
        let pause = think_duration(
            think,
            ctx.plan.defaults.think_jitter,
            vu.scope.rng.get_mut(),
        );
        vu.clock.intended = after(vu.clock.intended, pause);
        vu.clock.next_send = vu.clock.intended;
        let until = vu.clock.intended;
        if until <= Instant::now() {
            return Ok(Control::Next);
        }
        match vu.wait(ctx, scenario, until, None, true).await? {
            Waited::Retired => Ok(Control::Retired),
            _ => {
                // Waking late means the generator's own scheduling is behind (timer
                // granularity, a busy executor). That lateness is the generator's, reported as
                // `schedule.lag`, not the server's: the send is measured from when the vuser
                // actually woke. Only a vuser held up by the server (the early return above)
                // measures from its past schedule.
                let now = Instant::now();
                ctx.recorder
                    .record(ctx.ids.schedule_lag, now.saturating_duration_since(until));
                vu.clock.next_send = now.max(until);
                Ok(Control::Next)
            }
        }
    }
}

pub(super) fn set(
    vu: &mut Vuser,
    ctx: &RunContext,
    variable: &str,
    value: &Text,
) -> Result<Control, Failure> {
    let value = ctx
        .renderer
        .render(value, &vu.scope)
        .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))?;
    vu.scope.set(variable, Value::from(value));
    Ok(Control::Next)
}

/// Records the rendered number of milliseconds (a server-reported time) into `histogram`.
pub(super) fn record(
    vu: &mut Vuser,
    ctx: &RunContext,
    value: &Text,
    histogram: HistogramId,
) -> Result<Control, Failure> {
    let text = ctx
        .renderer
        .render(value, &vu.scope)
        .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))?;
    let ms = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Template,
                format!("`record` needs a number of milliseconds (0 or more), got {text:?}"),
            )
        })?;
    let sample = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX);
    ctx.recorder.record(histogram, sample);
    Ok(Control::Next)
}

pub(super) fn log(vu: &mut Vuser, ctx: &RunContext, text: &Text) -> Result<Control, Failure> {
    let line = ctx
        .renderer
        .render(text, &vu.scope)
        .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))?;
    let line = format!("[vu {}] {line}", vu.id);
    match &ctx.on_log {
        Some(log) => log(&line),
        None => eprintln!("{line}"),
    }
    Ok(Control::Next)
}

/// Opens one connection through the run's connector (TCP, then TLS, then the WebSocket
/// upgrade with this vuser's rendered headers) and records each stage's time.
async fn open(vu: &mut Vuser, ctx: &RunContext, limit: Duration) -> Result<Link, Failure> {
    let mut headers = Vec::with_capacity(ctx.plan.websocket.headers.len());
    for (name, value) in &ctx.plan.websocket.headers {
        let value = ctx.renderer.render(value, &vu.scope).map_err(|e| {
            Failure::new(
                ErrorKind::Template,
                format!("websocket header `{name}`: {e}"),
            )
        })?;
        headers.push((name.clone(), value));
    }
    // Boxed: connecting happens once per connection, and its future (the TCP connect and
    // its timeout, a few hundred bytes; TLS and WebSocket setup box their own parts) would
    // otherwise be inlined into every vuser's task for its whole life.
    let (conn, timings) = Box::pin(ctx.connector.connect(vu.id, limit, &headers))
        .await
        .map_err(|e| Failure::new(e.kind, e.detail))?;
    let recorder = &ctx.recorder;
    recorder.record(ctx.ids.connect, timings.tcp);
    if let Some(tls) = timings.tls {
        recorder.record(ctx.ids.tls, tls);
    }
    if let Some(upgrade) = timings.upgrade {
        recorder.record(ctx.ids.handshake, upgrade);
    }
    Ok(Link::new(
        conn,
        GaugeGuard::new(recorder, ctx.ids.connections),
    ))
}

pub(super) async fn disconnect(vu: &mut Vuser) {
    // The link moves into its (boxed) closing here; awaited as `if let Some(link) =
    // vu.conn.take()`, the taken `Option<Link>` would stay in every vuser's future.
    let closing = vu.conn.take().map(Link::close);
    if let Some(closing) = closing {
        closing.await;
    }
}

/// Offers a frame to the handlers: whether one took it, and the reply it wants written.
pub(super) fn handle(
    vu: &mut Vuser,
    ctx: &RunContext,
    scenario: &ScenarioProgram,
    frame: &Frame,
) -> Result<Handled, Failure> {
    for handler in &scenario.handlers {
        let mut rendered = None;
        let matcher =
            handler
                .test
                .matcher(&mut vu.matchers, &ctx.renderer, &vu.scope, &mut rendered)?;
        let Some(accepted) = handler.test.accept(matcher, frame, ctx.endian) else {
            continue;
        };
        ctx.recorder.incr(handler.counter);
        let mut accepted = accepted?;
        accepted.store_decoded(&handler.test.decode, &mut vu.scope);
        let mut values = accepted.captures.into_iter();
        let groups: Vec<Option<String>> = values.by_ref().take(handler.groups.len()).collect();
        store_captures(vu, &handler.captures, values)?;
        if let Some(reply_spec) = &handler.reply {
            let bound = handler
                .groups
                .iter()
                .zip(groups)
                .filter_map(|(name, value)| Some((name.clone(), Value::from(value?))))
                .collect();
            let outer = std::mem::replace(&mut vu.scope.with, bound);
            let built = message::build(
                &ctx.plan,
                &ctx.renderer,
                ctx.endian,
                reply_spec,
                &mut vu.scope,
            );
            vu.scope.with = outer;
            let reply = built.map_err(|e| {
                Failure::new(
                    ErrorKind::Template,
                    format!("handler reply to {}: {e}", preview(frame)),
                )
            })?;
            return Ok(Handled::Reply(
                reply,
                message::is_binary(&ctx.plan, reply_spec),
            ));
        }
        return Ok(Handled::Taken);
    }
    Ok(Handled::Not)
}

/// What a server-push handler did with a frame.
pub(super) enum Handled {
    /// No handler matched it.
    Not,
    /// A handler took it (counted, captured).
    Taken,
    /// A handler took it and wants this reply written (binary or not). The caller writes it,
    /// so that handling stays synchronous and the write future is not part of every wait.
    Reply(Frame, bool),
}

/// A think time: uniform in `[min, max]`, then the plan's jitter (± fraction), drawn from the
/// vuser's generator.
pub(crate) fn think_duration(think: &Think, jitter: f64, rng: &mut SeededRng) -> Duration {
    let base = if think.max > think.min {
        let span = (think.max - think.min).as_secs_f64();
        think.min + Duration::from_secs_f64(span * rng.random::<f64>())
    } else {
        think.min
    };
    if jitter > 0.0 {
        let factor = 1.0 + jitter * (2.0 * rng.random::<f64>() - 1.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor.max(0.0)).unwrap_or(base)
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::seed::vuser_rng;

    #[test]
    fn think_stays_in_its_range() {
        let rng = &mut vuser_rng(1, 1);
        let think = Think {
            min: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        for _ in 0..1000 {
            let d = think_duration(&think, 0.0, rng);
            assert!(d >= think.min && d <= think.max, "{d:?}");
        }
        let fixed = Think {
            min: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        for _ in 0..1000 {
            let d = think_duration(&fixed, 0.1, rng);
            assert!(d >= Duration::from_millis(900) && d <= Duration::from_millis(1100));
        }
    }

    #[test]
    fn think_times_replay_from_the_seed() {
        let think = Think {
            min: Duration::from_secs(1),
            max: Duration::from_secs(3),
        };
        let draws = |seed| {
            let rng = &mut vuser_rng(seed, 4);
            (0..20)
                .map(|_| think_duration(&think, 0.2, rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(5), draws(5));
        assert_ne!(draws(5), draws(6));
    }
}
