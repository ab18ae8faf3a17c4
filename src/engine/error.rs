//! The engine's errors: what stops a run from starting (`EngineError`) and what ends one
//! vuser (`Failure`, counted as `errors.<kind>`, never fatal to the run).

use std::fmt;

use super::vuser::program::StepId;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the plan has no scenarios with a positive weight; add one under `scenarios`")]
    NoScenarios,
    #[error("target `{target}`: {reason}")]
    Target { target: String, reason: String },
    #[error(transparent)]
    Transport(#[from] crate::transport::SetupError),
    #[error("invalid protocol settings: {0}")]
    Protocol(#[from] crate::protocol::ProtocolError),
    #[error(transparent)]
    Capacity(#[from] crate::engine::load::CapacityError),
    #[error("could not assemble the run's metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(
        "{0} needs one controller and cannot be split into shards: run it without --shard/--shards \
         (one process), or give the shards fixed phases"
    )]
    SingleController(&'static str),
    #[error("internal error: the interval timer outlived the run; please report this")]
    Internal,
    #[error("the `{flow}` flow failed, so no load was started: {detail}")]
    Setup { flow: &'static str, detail: String },
    #[error("hook `{command}` failed, so no load was started: {reason}")]
    HookFailed {
        command: String,
        reason: String,
        /// Every before hook that ran, the failed one last.
        outcomes: Vec<super::hooks::HookOutcome>,
    },
}

pub use crate::vocab::ErrorKind;

/// What ended a vuser's flow.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub detail: String,
    /// The step it happened in (set by the step dispatch), which `failures.<step>` and the
    /// errors table count it against.
    pub(crate) step: Option<StepId>,
}

impl Failure {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
            step: None,
        }
    }

    /// Attributes the failure to `step` unless an inner step already claimed it (a send's
    /// implicit connect is the connect step's failure, not the send's).
    pub(crate) fn at(mut self, step: StepId) -> Self {
        self.step.get_or_insert(step);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}
