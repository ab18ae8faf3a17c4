//! The plan's scenarios compiled for execution: flows flattened into one instruction list per
//! scenario (loops become start/end jumps and `if`/`pick` forward jumps, so the vuser runs one
//! flat interpreter loop instead of recursing), matchers mapped to protocol matchers and metric names resolved to ids once.
//!
//! It decides nothing about timing or I/O; `vuser` and `steps` execute what is here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use super::matchers::TemplatedMatcher;
use crate::metrics::{CounterId, HistogramId, Registry, ScenarioId};
use crate::plan::{
    Allocation, DecodeField, Expect, Handler, LoopBound, MatcherTemplate, Plan, Scenario, SendSpec,
    Step, Text, Think,
};
use crate::protocol::{CaptureSource, Matcher, TypeMask};
use crate::vocab::names;

#[derive(Debug)]
pub(crate) struct Program {
    pub scenarios: Vec<ScenarioProgram>,
    /// Sum of the weights of the scenarios without a fixed `count`, for the weighted pick.
    pub total_weight: u64,
    /// Every step failures are attributed to, across scenarios ([`StepId`] indexes it).
    pub steps: Vec<StepInfo>,
    /// The `before` flow: scenario index `scenarios.len()`.
    pub before: Option<ScenarioProgram>,
    /// The `after` flow: scenario index `scenarios.len() + 1`.
    pub after: Option<ScenarioProgram>,
}

/// A step of a scenario that failures are attributed to (DESIGN §3: `failures.<step>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StepId(pub u32);

/// What a failure is counted against: the step's metric name within its scenario. Steps of
/// one scenario that share a name (two `send`s, two expects named `ping`) share a row.
#[derive(Debug)]
pub(crate) struct StepInfo {
    /// Index of the scenario in `Program::scenarios`.
    pub scenario: usize,
    pub method: Method,
    /// `connect`, `latency.<expect name>`, `send`, or the step kind (`think`, `set`, `log`).
    pub name: Arc<str>,
    /// The scenario's `failures.<name>` counter; none for `Method::Flow` steps (counted in
    /// the errors table only, so a result does not list `failures.think` on every run).
    pub failures: Option<CounterId>,
}

/// The kind of step a failure happened in: the `Method` column of `failures.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Method {
    /// Opening the connection: TCP, TLS and the WebSocket upgrade.
    Connect,
    Send,
    Expect,
    /// Any other step (a connection lost during a `think`, a template in `set`).
    Flow,
    /// An HTTP request: its method is the `Method` column.
    Http(crate::plan::HttpMethod),
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Connect => "connect",
            Method::Send => "send",
            Method::Expect => "expect",
            Method::Flow => "flow",
            Method::Http(m) => m.as_str(),
        }
    }
}

/// Registers steps while compiling: one per (scenario, name).
struct Steps<'a> {
    registry: &'a mut Registry,
    steps: Vec<StepInfo>,
    index: HashMap<(usize, Arc<str>), StepId>,
    /// Templated matchers numbered so far (their cache slots).
    templated: u32,
}

impl Steps<'_> {
    /// Numbers a templated matcher for the vusers' caches.
    fn templated(&mut self, template: &Option<MatcherTemplate>) -> Option<TemplatedMatcher> {
        let template = template.clone()?;
        self.templated += 1;
        Some(TemplatedMatcher {
            slot: self.templated,
            template,
        })
    }

    fn step(&mut self, scenario: (usize, ScenarioId), method: Method, name: &str) -> StepId {
        let key = (scenario.0, Arc::<str>::from(name));
        if let Some(id) = self.index.get(&key) {
            return *id;
        }
        let id = StepId(u32::try_from(self.steps.len()).unwrap_or(u32::MAX));
        let failures = (method != Method::Flow).then(|| {
            self.registry
                .scenario_counter(scenario.1, &names::failures(name))
        });
        self.steps.push(StepInfo {
            scenario: scenario.0,
            method,
            name: key.1.clone(),
            failures,
        });
        self.index.insert(key, id);
        id
    }
}

#[derive(Debug)]
pub(crate) struct ScenarioProgram {
    pub name: String,
    pub weight: u32,
    pub allocation: Allocation,
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
    /// The scenario's `connect` step (explicit or the implicit connect of a first send).
    pub connect_step: StepId,
}

impl ScenarioIds {
    fn register(registry: &mut Registry, id: ScenarioId, connect_step: StepId) -> Self {
        let mut counter = |name| registry.scenario_counter(id, name);
        ScenarioIds {
            created: counter(names::VUSERS_CREATED),
            completed: counter(names::VUSERS_COMPLETED),
            failed: counter(names::VUSERS_FAILED),
            messages_sent: counter(names::MESSAGES_SENT),
            messages_received: counter(names::MESSAGES_RECEIVED),
            bytes_sent: counter(names::BYTES_SENT),
            bytes_received: counter(names::BYTES_RECEIVED),
            connect_step,
        }
    }
}

/// A literal text send's frame as the run's connections write it: encoded by the first send
/// and written as it is by every send after, of every vuser (`Conn::encode_text`; `None`
/// where the transport encodes each message itself, or the codec refused the text).
#[derive(Debug, Default)]
pub(crate) struct LiteralFrame(pub OnceLock<Option<Bytes>>);

#[derive(Debug)]
pub(crate) enum Op {
    Connect {
        timeout: Option<Duration>,
    },
    Send {
        message: SendSpec,
        expect: Option<ExpectOp>,
        step: StepId,
        /// A literal text message's frame, encoded once for the run.
        literal: LiteralFrame,
    },
    Expect(ExpectOp),
    Think(Think, StepId),
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
        step: StepId,
    },
    Log(Text, StepId),
    Disconnect,
    /// `if`: go on when `condition` holds, else jump to `skip_to` (past the guarded steps).
    Unless {
        condition: Text,
        skip_to: usize,
        step: StepId,
    },
    /// `pick`: jump to the start of a branch drawn by weight: (weight, start) pairs. Each
    /// branch ends with a `Jump` past the last one.
    Pick(Vec<(u32, usize)>),
    Jump(usize),
    Http(Box<super::http::HttpOp>),
    /// `record`: the rendered number of milliseconds into a custom histogram.
    Record {
        value: Text,
        histogram: HistogramId,
        step: StepId,
    },
}

/// What a frame must be for an expect or a handler to take it, and what taking it binds:
/// the part both ops share (`accept` applies it).
#[derive(Debug)]
pub(crate) struct FrameTest {
    pub matcher: Matcher,
    /// Set when the matcher is a template: rendered for this vuser each time it is applied.
    pub template: Option<TemplatedMatcher>,
    /// A packet type the frame must have besides matching `matcher`.
    pub types: Option<TypeMask>,
    /// Fields read from the taken body into the vuser's variables.
    pub decode: Vec<DecodeField>,
    /// What is captured from a taken frame, in order.
    pub sources: Vec<CaptureSource>,
}

#[derive(Debug)]
pub(crate) struct ExpectOp {
    pub test: FrameTest,
    /// The variable each of the test's `sources` is captured into, same order.
    pub variables: Vec<String>,
    pub timeout: Option<Duration>,
    pub latency: HistogramId,
    pub strict: bool,
    /// `latency.<name>`: timeouts, strict mismatches and captures count against it.
    pub step: StepId,
}

#[derive(Debug)]
pub(crate) struct HandlerOp {
    /// Its `sources`: the regex groups' sources, then the `capture` sources.
    pub test: FrameTest,
    /// The named groups of a regex matcher, bound as variables for the reply.
    pub groups: Vec<String>,
    /// The variable each `capture` source (after the groups in the test's `sources`) is
    /// stored in.
    pub captures: Vec<String>,
    pub reply: Option<SendSpec>,
    pub counter: CounterId,
}

impl Program {
    /// Compiles every scenario, registering its metrics in `registry`.
    pub fn compile(plan: &Plan, registry: &mut Registry) -> Self {
        let mut steps = Steps {
            registry,
            steps: Vec::new(),
            index: HashMap::new(),
            templated: 0,
        };
        let scenarios: Vec<ScenarioProgram> = plan
            .scenarios
            .iter()
            .enumerate()
            .map(|(index, scenario)| compile_scenario(plan, index, scenario, &mut steps))
            .collect();
        let count = scenarios.len();
        let setup = &plan.setup;
        let before = setup
            .before
            .as_ref()
            .map(|s| compile_scenario(plan, count, s, &mut steps));
        let after = setup
            .after
            .as_ref()
            .map(|s| compile_scenario(plan, count + 1, s, &mut steps));
        let total_weight = scenarios
            .iter()
            .filter(|s| s.allocation.count.is_none())
            .map(|s| u64::from(s.weight))
            .sum();
        Program {
            scenarios,
            total_weight,
            steps: steps.steps,
            before,
            after,
        }
    }

    /// The scenario at `index`: a plan scenario, or the `before`/`after` flow just past them.
    pub fn scenario(&self, index: usize) -> Option<&ScenarioProgram> {
        match index.checked_sub(self.scenarios.len()) {
            None => self.scenarios.get(index),
            Some(0) => self.before.as_ref(),
            Some(1) => self.after.as_ref(),
            Some(_) => None,
        }
    }

    /// The scenario index of the `before` flow, if the plan has one.
    pub fn before_index(&self) -> Option<usize> {
        self.before.as_ref().map(|_| self.scenarios.len())
    }

    /// The scenario index of the `after` flow, if the plan has one.
    pub fn after_index(&self) -> Option<usize> {
        self.after.as_ref().map(|_| self.scenarios.len() + 1)
    }

    /// The step `id` names, if any.
    pub fn step(&self, id: StepId) -> Option<&StepInfo> {
        self.steps.get(id.0 as usize)
    }

    /// The scenario without a fixed `count` whose cumulative weight covers `ticket` (in
    /// `0..total_weight`).
    pub fn pick(&self, ticket: u64) -> usize {
        let mut left = ticket;
        let weighted = self.scenarios.iter().enumerate();
        for (index, scenario) in weighted.filter(|(_, s)| s.allocation.count.is_none()) {
            let weight = u64::from(scenario.weight);
            if left < weight {
                return index;
            }
            left -= weight;
        }
        self.scenarios.len().saturating_sub(1)
    }
}

/// One scenario (or setup flow) at scenario index `index`, its metrics registered.
fn compile_scenario(
    plan: &Plan,
    index: usize,
    scenario: &Scenario,
    steps: &mut Steps,
) -> ScenarioProgram {
    let id = steps.registry.scenario(&scenario.name, scenario.weight);
    let connect_step = steps.step((index, id), Method::Connect, names::CONNECT);
    let mut ops = Vec::new();
    flatten(&scenario.flow, (index, id), steps, &mut ops);
    let handlers = scenario
        .handlers
        .iter()
        .chain(&plan.handlers)
        .map(|h| handler(h, steps))
        .collect();
    ScenarioProgram {
        name: scenario.name.clone(),
        weight: scenario.weight,
        allocation: scenario.allocation,
        ops,
        handlers,
        ids: ScenarioIds::register(steps.registry, id, connect_step),
    }
}

fn flatten(flow: &[Step], scenario: (usize, ScenarioId), steps: &mut Steps, ops: &mut Vec<Op>) {
    for step in flow {
        match step {
            Step::Connect { timeout } => ops.push(Op::Connect { timeout: *timeout }),
            Step::Send { message, expect } => ops.push(Op::Send {
                message: message.clone(),
                expect: expect.as_ref().map(|e| expect_op(e, scenario, steps)),
                step: steps.step(scenario, Method::Send, "send"),
                literal: LiteralFrame::default(),
            }),
            Step::Expect(e) => ops.push(Op::Expect(expect_op(e, scenario, steps))),
            Step::Think(think) => ops.push(Op::Think(
                *think,
                steps.step(scenario, Method::Flow, "think"),
            )),
            Step::Loop { steps: body, bound } => {
                let start = ops.len();
                ops.push(Op::LoopStart {
                    bound: bound.clone(),
                    end: 0,
                });
                flatten(body, scenario, steps, ops);
                let end = ops.len();
                ops.push(Op::LoopEnd { start });
                if let Some(Op::LoopStart { end: slot, .. }) = ops.get_mut(start) {
                    *slot = end;
                }
            }
            Step::Set { variable, value } => ops.push(Op::Set {
                variable: variable.clone(),
                value: value.clone(),
                step: steps.step(scenario, Method::Flow, "set"),
            }),
            Step::Log(text) => ops.push(Op::Log(
                text.clone(),
                steps.step(scenario, Method::Flow, "log"),
            )),
            Step::Disconnect => ops.push(Op::Disconnect),
            Step::If {
                condition,
                steps: body,
            } => {
                let at = ops.len();
                ops.push(Op::Unless {
                    condition: condition.clone(),
                    skip_to: 0,
                    step: steps.step(scenario, Method::Flow, "if"),
                });
                flatten(body, scenario, steps, ops);
                let end = ops.len();
                if let Some(Op::Unless { skip_to, .. }) = ops.get_mut(at) {
                    *skip_to = end;
                }
            }
            Step::Record { metric, value } => ops.push(Op::Record {
                value: value.clone(),
                histogram: steps.registry.scenario_histogram(scenario.1, metric),
                step: steps.step(scenario, Method::Flow, "record"),
            }),
            Step::Pick(branches) => {
                let at = ops.len();
                ops.push(Op::Pick(Vec::new()));
                let mut starts = Vec::with_capacity(branches.len());
                let mut exits = Vec::with_capacity(branches.len());
                for branch in branches {
                    starts.push((branch.weight, ops.len()));
                    flatten(&branch.steps, scenario, steps, ops);
                    exits.push(ops.len());
                    ops.push(Op::Jump(0));
                }
                let end = ops.len();
                for exit in exits {
                    if let Some(Op::Jump(to)) = ops.get_mut(exit) {
                        *to = end;
                    }
                }
                if let Some(Op::Pick(slot)) = ops.get_mut(at) {
                    *slot = starts;
                }
            }
            Step::Http(request) => {
                let name = names::http_response_time(&request.name);
                ops.push(Op::Http(Box::new(super::http::HttpOp {
                    latency: steps.registry.scenario_histogram(scenario.1, &name),
                    step: steps.step(scenario, Method::Http(request.method), &name),
                    scenario: scenario.0,
                    request: (**request).clone(),
                    fixed_target: std::sync::OnceLock::new(),
                })));
            }
        }
    }
}

fn expect_op(expect: &Expect, scenario: (usize, ScenarioId), steps: &mut Steps) -> ExpectOp {
    let name = names::latency(&expect.metric);
    ExpectOp {
        test: FrameTest {
            matcher: expect.matcher.clone(),
            template: steps.templated(&expect.template),
            types: expect.types,
            decode: expect.decode.clone(),
            sources: expect.captures.iter().map(|c| c.source.clone()).collect(),
        },
        variables: expect.captures.iter().map(|c| c.variable.clone()).collect(),
        timeout: expect.timeout,
        latency: steps.registry.scenario_histogram(scenario.1, &name),
        strict: expect.strict,
        step: steps.step(scenario, Method::Expect, &name),
    }
}

fn handler(handler: &Handler, steps: &mut Steps) -> HandlerOp {
    let template = steps.templated(&handler.template);
    let registry = &mut *steps.registry;
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
        test: FrameTest {
            sources: groups
                .iter()
                .map(|g| CaptureSource::Group(g.clone()))
                .chain(handler.captures.iter().map(|c| c.source.clone()))
                .collect(),
            types: handler.types,
            decode: handler.decode.clone(),
            matcher,
            template,
        },
        captures: handler
            .captures
            .iter()
            .map(|c| c.variable.clone())
            .collect(),
        groups,
        reply: handler.reply.clone(),
        counter,
    }
}
