//! Test messages for `chatload probe --plan`: one of the plan's messages, rendered and encoded
//! exactly as a vuser would send it, so a probe exercises the plan's real wire format.
//!
//! It opens no connection and prints nothing; the CLI owns the conversation with the server.

use std::sync::Arc;
use tokio::time::Instant;

use minijinja::value::Value;

use super::seed;
use super::vuser::message::{self, MessageError};
use super::vuser::template::{LoopVar, Renderer, Scope, env_value};
use super::vuser::{data::DataSource, stamp};
use crate::plan::{MessageId, Plan, SendSpec, Step};
use crate::protocol::{Endian, Frame, FrameCodec, Matcher, ProtocolError};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the plan has no message named `{name}`; its messages are: {available}")]
    UnknownMessage { name: String, available: String },
    #[error(
        "the plan has nothing to send: define a message under `config.messages` or a `send` step"
    )]
    NothingToSend,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Builds the probe's test frames from a plan.
pub struct ProbeMessages {
    plan: Arc<Plan>,
    renderer: Renderer,
    endian: Endian,
    spec: SendSpec,
    scope: Scope,
    /// What is sent, for the user: `message chat` or `scenarios[0] send`.
    pub label: String,
    /// The send step's own `expect`, when it is fixed text: what a reply must match.
    pub expect: Option<Matcher>,
}

impl ProbeMessages {
    /// The named message, else the plan's first message, else its first `send` step.
    pub fn new(plan: Arc<Plan>, message: Option<&str>) -> Result<Self, ProbeError> {
        let (spec, label, expect) = choose(&plan, message)?;
        let renderer = Renderer::new(
            &plan.templates,
            Arc::from(stamp::new_run_id()),
            Instant::now(),
            crate::metrics::epoch_us(std::time::SystemTime::now()),
        );
        // A probe is no replayable run: a fresh seed, vuser 0's stream.
        let mut rng = seed::vuser_rng(seed::random_seed(), 0);
        let vars = DataSource::new(
            &plan.payloads,
            &plan.variables,
            crate::engine::load::Shard::WHOLE,
        )
        .vars_for_vuser(&mut rng);
        let scenario = plan.scenarios.first().map_or("probe", |s| s.name.as_str());
        let scope = Scope::new(vars, 0, scenario, env_value(), rng);
        Ok(ProbeMessages {
            endian: plan.protocol.field_endian(),
            plan,
            renderer,
            spec,
            scope,
            label,
            expect,
        })
    }

    /// The plan's codec (framing, transform, frame cap).
    pub fn codec(&self) -> Result<FrameCodec, ProtocolError> {
        FrameCodec::new(self.plan.protocol.clone())
    }

    /// Test message number `n` (1-based), visible to templates as `loop.index`.
    pub fn frame(&mut self, n: u32) -> Result<Frame, MessageError> {
        self.scope.loop_ = Some(LoopVar {
            iteration: u64::from(n.saturating_sub(1)),
            value: Value::UNDEFINED,
        });
        message::build(
            &self.plan,
            &self.renderer,
            self.endian,
            &self.spec,
            &mut self.scope,
        )
    }
}

type Chosen = (SendSpec, String, Option<Matcher>);

fn choose(plan: &Plan, name: Option<&str>) -> Result<Chosen, ProbeError> {
    let named = |index: usize| SendSpec::Message {
        id: MessageId(index),
        with: Vec::new(),
    };
    if let Some(name) = name {
        let index = plan
            .messages
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| ProbeError::UnknownMessage {
                name: name.to_owned(),
                available: if plan.messages.is_empty() {
                    "none".to_owned()
                } else {
                    plan.messages
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?;
        return Ok((named(index), format!("message {name}"), None));
    }
    if let Some(first) = plan.messages.first() {
        return Ok((named(0), format!("message {}", first.name), None));
    }
    plan.scenarios
        .iter()
        .find_map(|scenario| {
            first_send(&scenario.flow).map(|(spec, expect)| {
                // A templated matcher depends on the vuser's variables: not checked here.
                let matcher = expect
                    .filter(|e| e.template.is_none())
                    .map(|e| e.matcher.clone());
                let label = format!("first send of {}", scenario.name);
                (spec.clone(), label, matcher)
            })
        })
        .ok_or(ProbeError::NothingToSend)
}

fn first_send(steps: &[Step]) -> Option<(&SendSpec, Option<&crate::plan::Expect>)> {
    steps.iter().find_map(|step| match step {
        Step::Send { message, expect } => Some((message, expect.as_ref())),
        Step::Loop { steps, .. } | Step::If { steps, .. } => first_send(steps),
        Step::Pick(branches) => branches.iter().find_map(|b| first_send(&b.steps)),
        _ => None,
    })
}
