//! Walking a scenario's flat program (`program`) once: its jumps (loops, branches, picks)
//! and each step, dispatched to its function in `steps`. The dispatch is here, inside the
//! walk's own future, rather than in a function of its own: a step's future then sits
//! directly in the walk's, one level of state (and one cache line) less per message. What
//! each step does is `steps`'; loop bookkeeping and the vuser's life are `impl Vuser`'s.

use super::context::RunContext;
use super::program::{Op, ScenarioProgram};
use super::steps::{self, connect, disconnect, log, record, send, set, think};
use super::write::sent_counts;
use super::{Control, Vuser, branch};
use crate::engine::error::Failure;

/// One pass over the scenario's flow; `Control::Retired` when the vuser was retired on the way.
///
/// Not an `async fn` (a block that uses its captured arguments in place): see `Vuser::wait`.
#[allow(clippy::manual_async_fn)]
pub(super) fn walk(
    vu: &mut Vuser,
    ctx: &RunContext,
    scenario: &ScenarioProgram,
) -> impl Future<Output = Result<Control, Failure>> {
    async move {
        vu.loops.clear();
        vu.scope.loop_ = None;
        let ops = &scenario.ops;
        let mut pc = 0;
        while let Some(op) = ops.get(pc) {
            let control = match op {
                Op::LoopStart { bound, end } => {
                    pc = vu.enter_loop(ctx, bound, pc, *end)?;
                    continue;
                }
                Op::Unless {
                    condition,
                    skip_to,
                    step,
                } => {
                    pc = if branch::holds(&ctx.renderer, &vu.scope, condition)
                        .map_err(|f| f.at(*step))?
                    {
                        pc + 1
                    } else {
                        *skip_to
                    };
                    continue;
                }
                Op::Pick(branches) => {
                    pc = branch::pick(vu.scope.rng.get_mut(), branches).unwrap_or(pc + 1);
                    continue;
                }
                Op::Jump(to) => {
                    pc = *to;
                    continue;
                }
                Op::LoopEnd { start } => {
                    // A loop body that never awaits (only `set`/`log`) must still let the
                    // runner, the ticker and Ctrl-C run: spend coop budget, yielding when it
                    // runs out (free on the common path).
                    tokio::task::consume_budget().await;
                    match vu.loop_end(ctx, ops, *start, pc)? {
                        Some(next) => {
                            pc = next;
                            continue;
                        }
                        None => return Ok(Control::Retired),
                    }
                }
                Op::Connect { timeout } => connect(vu, ctx, *timeout).await?,
                Op::Send { expect, step, .. } => {
                    let deferred = expect.is_some();
                    if send(vu, ctx, op, deferred).await.map_err(|f| f.at(*step))?
                        == Control::Retired
                    {
                        return Ok(Control::Retired);
                    }
                    match expect {
                        Some(op) => {
                            let expected = steps::expect(vu, ctx, scenario, op).await;
                            // The expect counts the send with its reply; one that failed did not.
                            if let Some(bytes) = vu.uncounted_sent.take() {
                                ctx.recorder.add_many(&sent_counts(vu, Some(bytes)));
                            }
                            expected.map_err(|f| f.at(op.step))?
                        }
                        None => Control::Next,
                    }
                }
                Op::Expect(op) => steps::expect(vu, ctx, scenario, op)
                    .await
                    .map_err(|f| f.at(op.step))?,
                Op::Think(pause, step) => think(vu, ctx, scenario, pause)
                    .await
                    .map_err(|f| f.at(*step))?,
                Op::Set {
                    variable,
                    value,
                    step,
                } => set(vu, ctx, variable, value).map_err(|f| f.at(*step))?,
                Op::Log(text, step) => log(vu, ctx, text).map_err(|f| f.at(*step))?,
                Op::Record {
                    value,
                    histogram,
                    step,
                } => record(vu, ctx, value, *histogram).map_err(|f| f.at(*step))?,
                Op::Disconnect => {
                    disconnect(vu).await;
                    Control::Next
                }
                // Boxed: an HTTP request's future (the exchange, hyper's request and body
                // states) would otherwise sit in every vuser's task, HTTP or not, for its whole
                // life. One allocation per request; opening a connection is boxed apart, so it
                // stays small.
                Op::Http(op) => Box::pin(super::http::request(vu, ctx, op))
                    .await
                    .map_err(|f| f.at(op.step))?,
            };
            if control == Control::Retired {
                return Ok(Control::Retired);
            }
            pc += 1;
        }
        Ok(Control::Next)
    }
}
