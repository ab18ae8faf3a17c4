//! Driving load: the pure schedule (phases → arrival times and target concurrency), the
//! runner that starts and retires vusers (phases, adaptive search, breaking point), the split
//! of a run into shards, the
//! interval ticks and the live control of a run.
//!
//! It does not know what a vuser does once started (`vuser`) nor how thresholds are judged
//! (`thresholds`): it feeds snapshots to the evaluator and reacts to its verdicts.

pub mod adaptive;
mod adaptive_run;
mod allocation;
pub(crate) mod breaking;
pub mod capacity;
pub mod control;
pub(crate) mod intervals;
pub(crate) mod runner;
pub mod schedule;
pub mod shard;

pub(crate) use adaptive_run::run as run_adaptive;
pub use adaptive_run::{AdaptiveOutcome, AdaptiveWindow};
pub use breaking::BreakingOutcome;
pub use capacity::CapacityError;
pub use control::{ControlError, LoadMode, PartialRun, RunControl, ServerLoad};
pub use intervals::{LAG_WARNING, Progress, ProgressFn};
pub use runner::INTERRUPT_GRACE;
pub use shard::{Shard, ShardError};
