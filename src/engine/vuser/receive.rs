//! What happens to one received frame: it is counted, its delivery stamp timed, offered to
//! the expect being waited for, then to the server-push handlers, and otherwise kept for a
//! later expect. Synchronous on purpose: nothing here waits, and a handler's reply is handed
//! back for `Vuser::wait` to write, so the wait's future stays small. Reading frames and the
//! waiting itself are `Vuser::wait`'s.

use tokio::time::Instant;

use super::accept::Accepted;
use super::context::RunContext;
use super::program::{ExpectOp, ScenarioProgram};
use super::{PENDING_FRAMES, Vuser, delivery, preview, steps, transport_failure};
use crate::engine::error::{ErrorKind, Failure};
use crate::metrics::CounterId;
use crate::protocol::{Frame, Matcher};
use crate::transport::{Incoming, TransportError};
use crate::vocab::names;

/// What became of one received frame in [`Vuser::on_frame`].
pub(super) enum Dispatched {
    /// The awaited expect took it.
    Matched(Accepted),
    /// Counted, and taken by a handler or kept for a later expect.
    Done,
    /// A handler took it and this reply (binary or not) is to be written.
    Reply(Frame, bool),
}

impl Vuser {
    /// One item the connection gave [`Vuser::wait`]: a frame goes through
    /// [`Vuser::on_frame`], a WebSocket ping is counted, and a close, the end of the stream
    /// or a read error ends the connection with its failure.
    pub(super) fn on_incoming(
        &mut self,
        ctx: &RunContext,
        scenario: &ScenarioProgram,
        item: Result<Incoming, TransportError>,
        at: Instant,
        expect: Option<(&ExpectOp, &Matcher)>,
    ) -> Result<Dispatched, Failure> {
        // What the connection had received before it ended tells a silent close apart
        // (wrong protocol, TLS spoken to a plain port) in the failure's detail.
        let (received_any, tls_reply) = match self.conn.as_mut() {
            Some(conn) => {
                if let Ok(Incoming::Frame(frame)) = &item {
                    if !conn.received_any {
                        conn.tls_reply = crate::transport::looks_like_tls_record(&frame.body);
                    }
                    conn.received_any = true;
                }
                (conn.received_any, conn.tls_reply)
            }
            None => (false, false),
        };
        let silent = !received_any || tls_reply;
        match item {
            Ok(Incoming::Frame(frame)) => self.on_frame(ctx, scenario, frame, at, expect),
            Ok(Incoming::Ping) => {
                if let Some(id) = ctx.ids.ws_pings {
                    ctx.recorder.incr(id);
                }
                Ok(Dispatched::Done)
            }
            Ok(Incoming::Close { code, reason }) => {
                // Rare, so the counter is looked up by name here rather than registered
                // for every possible code.
                let code_counter = ctx.recorder.counter(&names::ws_close(code.unwrap_or(1005)));
                ctx.recorder.incr(code_counter);
                self.conn = None;
                let code = code.map_or_else(|| "no code".to_owned(), |c| c.to_string());
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                Err(Failure::new(
                    ErrorKind::Closed,
                    format!(
                        "{} closed the WebSocket (close code {code}{reason})",
                        ctx.connector.endpoint()
                    ),
                ))
            }
            Ok(Incoming::End) => {
                self.conn = None;
                let mut detail = format!("{} closed the connection", ctx.connector.endpoint());
                if let Some(hint) = silent
                    .then(|| ctx.connector.hint_for_silent_close())
                    .flatten()
                {
                    detail = format!("{detail}; {hint}");
                }
                Err(Failure::new(ErrorKind::Closed, detail))
            }
            Err(err) => {
                self.conn = None;
                Err(transport_failure(ctx, err, silent))
            }
        }
    }

    /// Everything a received frame goes through: counting, delivery stamps, the expect being
    /// waited for, then handlers; what nobody took is kept for a later expect. Synchronous:
    /// a handler's reply is handed back for the caller to write.
    pub(super) fn on_frame(
        &mut self,
        ctx: &RunContext,
        scenario: &ScenarioProgram,
        frame: Frame,
        at: Instant,
        expect: Option<(&ExpectOp, &Matcher)>,
    ) -> Result<Dispatched, Failure> {
        let recorder = &ctx.recorder;
        let body_bytes = frame.body.len() as u64;
        if ctx.renderer.uses_stamp() {
            delivery::count(&mut self.deliveries, ctx, &frame.body, at);
        }
        if let Some((op, matcher)) = expect {
            if let Some(accepted) = op.test.accept(matcher, &frame, ctx.endian) {
                if accepted.is_err() {
                    recorder.add_many(&self.received_counts(body_bytes));
                }
                // Counted by the expect, under the same lock as its latency.
                self.matched_bytes = body_bytes;
                return accepted.map(Dispatched::Matched);
            }
            if op.strict {
                recorder.add_many(&self.received_counts(body_bytes));
                return Err(Failure::new(
                    ErrorKind::Protocol,
                    format!("strict expect got an unexpected frame: {}", preview(&frame)),
                ));
            }
        }
        recorder.add_many(&self.received_counts(body_bytes));
        match steps::handle(self, ctx, scenario, &frame)? {
            steps::Handled::Taken => return Ok(Dispatched::Done),
            steps::Handled::Reply(reply, binary) => return Ok(Dispatched::Reply(reply, binary)),
            steps::Handled::Not => {}
        }
        if self.pending.len() >= PENDING_FRAMES {
            self.pending.pop_front();
        }
        self.pending.push_back((frame, at));
        Ok(Dispatched::Done)
    }

    /// The counters one received frame of `body_bytes` adds to.
    pub(crate) fn received_counts(&self, body_bytes: u64) -> [(CounterId, u64); 2] {
        [
            (self.ids.messages_received, 1),
            (self.ids.bytes_received, body_bytes),
        ]
    }
}
