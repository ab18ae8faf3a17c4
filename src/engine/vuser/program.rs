//! The plan's scenarios compiled for execution: flows flattened into one instruction list per
//! scenario (loops become start/end jumps, so the vuser runs one flat interpreter loop instead
//! of recursing), matchers mapped to protocol matchers and metric names resolved to ids once.
//!
//! It decides nothing about timing or I/O; `vuser` and `steps` execute what is here.

use std::time::Duration;

use crate::metrics::{CounterId, HistogramId, Registry, ScenarioId};
use crate::plan::{Expect, Handler, LoopBound, Plan, SendSpec, Step, Text, Think};
use crate::protocol::{CaptureSource, Matcher};
use crate::vocab::names;

#[derive(Debug)]
pub(crate) struct Program {
    pub scenarios: Vec<ScenarioProgram>,
    /// Sum of the scenario weights, for the weighted pick.
    pub total_weight: u64,
}

#[derive(Debug)]
pub(crate) struct ScenarioProgram {
    pub name: String,
    pub weight: u32,
    pub ops: Vec<Op>,
    /// The scenario's handlers first, then the plan-wide ones.
    pub handlers: Vec<HandlerOp>,
    pub ids: ScenarioIds,
}

/// The per-scenario counters a vuser records (run-wide totals are their sums).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScenarioIds {
    pub created: CounterId,
    pub completed: CounterId,
    pub failed: CounterId,
    pub messages_sent: CounterId,
    pub messages_received: CounterId,
    pub bytes_sent: CounterId,
    pub bytes_received: CounterId,
}

impl ScenarioIds {
    fn register(registry: &mut Registry, id: ScenarioId) -> Self {
        let mut counter = |name| registry.scenario_counter(id, name);
        ScenarioIds {
            created: counter(names::VUSERS_CREATED),
            completed: counter(names::VUSERS_COMPLETED),
            failed: counter(names::VUSERS_FAILED),
            messages_sent: counter(names::MESSAGES_SENT),
            messages_received: counter(names::MESSAGES_RECEIVED),
            bytes_sent: counter(names::BYTES_SENT),
            bytes_received: counter(names::BYTES_RECEIVED),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Op {
    Connect {
        timeout: Option<Duration>,
    },
    Send {
        message: SendSpec,
        expect: Option<ExpectOp>,
    },
    Expect(ExpectOp),
    Think(Think),
    /// Enters a loop; `end` is the index of the matching `LoopEnd`.
    LoopStart {
        bound: LoopBound,
        end: usize,
    },
    /// Closes a loop; `start` is the index of the matching `LoopStart`.
    LoopEnd {
        start: usize,
    },
    Set {
        variable: String,
        value: Text,
    },
    Log(Text),
    Disconnect,
}

#[derive(Debug)]
pub(crate) struct ExpectOp {
    pub matcher: Matcher,
    pub sources: Vec<CaptureSource>,
    /// The variable each of `sources` is captured into, same order.
    pub variables: Vec<String>,
    pub timeout: Option<Duration>,
    pub latency: HistogramId,
    pub strict: bool,
}

#[derive(Debug)]
pub(crate) struct HandlerOp {
    pub matcher: Matcher,
    /// The named groups of a regex matcher, bound as variables for the reply.
    pub groups: Vec<String>,
    pub sources: Vec<CaptureSource>,
    pub reply: Option<SendSpec>,
    pub counter: CounterId,
}

impl Program {
    /// Compiles every scenario, registering its metrics in `registry`.
    pub fn compile(plan: &Plan, registry: &mut Registry) -> Self {
        let scenarios: Vec<ScenarioProgram> = plan
            .scenarios
            .iter()
            .map(|scenario| {
                let id = registry.scenario(&scenario.name, scenario.weight);
                let mut ops = Vec::new();
                flatten(&scenario.flow, id, registry, &mut ops);
                let handlers = scenario
                    .handlers
                    .iter()
                    .chain(&plan.handlers)
                    .map(|h| handler(h, registry))
                    .collect();
                ScenarioProgram {
                    name: scenario.name.clone(),
                    weight: scenario.weight,
                    ops,
                    handlers,
                    ids: ScenarioIds::register(registry, id),
                }
            })
            .collect();
        let total_weight = scenarios.iter().map(|s| u64::from(s.weight)).sum();
        Program {
            scenarios,
            total_weight,
        }
    }

    /// The scenario whose cumulative weight covers `ticket` (in `0..total_weight`).
    pub fn pick(&self, ticket: u64) -> usize {
        let mut left = ticket;
        for (index, scenario) in self.scenarios.iter().enumerate() {
            let weight = u64::from(scenario.weight);
            if left < weight {
                return index;
            }
            left -= weight;
        }
        self.scenarios.len().saturating_sub(1)
    }
}

fn flatten(steps: &[Step], scenario: ScenarioId, registry: &mut Registry, ops: &mut Vec<Op>) {
    for step in steps {
        match step {
            Step::Connect { timeout } => ops.push(Op::Connect { timeout: *timeout }),
            Step::Send { message, expect } => ops.push(Op::Send {
                message: message.clone(),
                expect: expect.as_ref().map(|e| expect_op(e, scenario, registry)),
            }),
            Step::Expect(e) => ops.push(Op::Expect(expect_op(e, scenario, registry))),
            Step::Think(think) => ops.push(Op::Think(*think)),
            Step::Loop { steps, bound } => {
                let start = ops.len();
                ops.push(Op::LoopStart {
                    bound: bound.clone(),
                    end: 0,
                });
                flatten(steps, scenario, registry, ops);
                let end = ops.len();
                ops.push(Op::LoopEnd { start });
                if let Some(Op::LoopStart { end: slot, .. }) = ops.get_mut(start) {
                    *slot = end;
                }
            }
            Step::Set { variable, value } => ops.push(Op::Set {
                variable: variable.clone(),
                value: value.clone(),
            }),
            Step::Log(text) => ops.push(Op::Log(text.clone())),
            Step::Disconnect => ops.push(Op::Disconnect),
        }
    }
}

fn expect_op(expect: &Expect, scenario: ScenarioId, registry: &mut Registry) -> ExpectOp {
    ExpectOp {
        matcher: expect.matcher.clone(),
        sources: expect.captures.iter().map(|c| c.source.clone()).collect(),
        variables: expect.captures.iter().map(|c| c.variable.clone()).collect(),
        timeout: expect.timeout,
        latency: registry.scenario_histogram(scenario, &names::latency(&expect.metric)),
        strict: expect.strict,
    }
}

fn handler(handler: &Handler, registry: &mut Registry) -> HandlerOp {
    let matcher = handler.matcher.clone();
    let groups: Vec<String> = match matcher.as_regex() {
        Some(regex) => regex.capture_names().flatten().map(str::to_owned).collect(),
        None => Vec::new(),
    };
    let counter = match &handler.name {
        Some(name) => registry.counter(&format!("handled.{name}")),
        None => registry.counter("handled"),
    };
    HandlerOp {
        sources: groups
            .iter()
            .map(|g| CaptureSource::Group(g.clone()))
            .collect(),
        groups,
        matcher,
        reply: handler.reply.clone(),
        counter,
    }
}
