//! The `before` and `after` flows: one vuser each, run once — `before` ahead of the first
//! phase (what it captures or `set`s becomes a variable of every vuser), `after` once the last
//! vuser has ended, however the run ended. Their metrics are those of scenarios named `before`
//! and `after`.
//!
//! Scheduling the load is the runner's; local commands (`config.hooks`) are `hooks`.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::EngineError;
use super::seed;
use super::vuser::context::RunContext;
use super::vuser::template::Vars;
use super::vuser::{self, Outcome, VuserSpec};

/// The vuser ids of the setup flows: outside the runner's numbering, which starts at 0.
const BEFORE_ID: u64 = u64::MAX - 1;
const AFTER_ID: u64 = u64::MAX;

/// Runs the `before` flow, if any, and shares what it bound with every vuser.
pub(crate) async fn before(ctx: &Arc<RunContext>) -> Result<(), EngineError> {
    let Some(index) = ctx.program.before_index() else {
        return Ok(());
    };
    let (outcome, bound) = run(ctx, index, BEFORE_ID).await;
    if outcome == Outcome::Failed {
        return Err(EngineError::Setup {
            flow: "before",
            detail: ctx.error_samples().join("; "),
        });
    }
    let _ = ctx.shared.set(bound);
    Ok(())
}

/// Runs the `after` flow, if any; a failure is counted like any vuser's.
pub(crate) async fn after(ctx: &Arc<RunContext>) {
    if let Some(index) = ctx.program.after_index() {
        run(ctx, index, AFTER_ID).await;
    }
}

/// One vuser of scenario `index`, never retired (the run's end does not cut it short; its
/// steps' timeouts bound it), and the variables its flow bound.
async fn run(ctx: &Arc<RunContext>, index: usize, id: u64) -> (Outcome, Vars) {
    let rng = seed::vuser_rng(ctx.seed, id);
    // The same generator draws the same variables the vuser starts with.
    let initial = ctx.data.vars_for_vuser(&mut rng.clone());
    let spec = VuserSpec {
        id,
        scenario: index,
        scheduled: Instant::now(),
        closed_model: false,
        retire: CancellationToken::new(),
        retirements: Arc::default(),
        run_ended: Arc::default(),
        inbox: None,
        rng,
    };
    let (outcome, vars) = vuser::run(Arc::clone(ctx), spec).await;
    let bound = vars
        .iter()
        .filter(|(name, value)| initial.get(*name) != Some(*value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    (outcome, bound)
}
