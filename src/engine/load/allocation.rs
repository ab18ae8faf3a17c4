//! Which scenario a new vuser runs: scenarios with a fixed `count` first (Locust's
//! `fixed_count`), each until it has its vusers, then the weighted pick among the others.
//! In the open model a fixed count is over the run; in the closed model it is at a time (a
//! slot frees when its vuser ends, and its replacement takes it).
//!
//! In a split run (`run --shard I/N`) each shard holds `Shard::share` of every count, so the
//! shards' counts sum to the plan's; in the open model the shard's first share of arrivals
//! are, run-wide, the first `count` arrivals — the same vusers as in a single run.
//!
//! When the vuser starts (`startAfter`) is the runner's business; this only assigns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shard::Shard;
use crate::engine::vuser::program::Program;

/// The fixed-count scenarios of a run and how many vusers each has.
pub(crate) struct Allocator {
    fixed: Vec<Fixed>,
}

struct Fixed {
    scenario: usize,
    count: u64,
    taken: Arc<AtomicU64>,
}

/// A scenario assigned to a vuser; `slot`: the fixed-count slot it holds, to give back when
/// a closed-model vuser ends.
pub(crate) struct Assigned {
    pub scenario: usize,
    pub slot: Option<Arc<AtomicU64>>,
}

impl Allocator {
    /// The counts of `shard`'s part of the run.
    pub fn new(program: &Program, shard: Shard) -> Self {
        let fixed = program
            .scenarios
            .iter()
            .enumerate()
            .filter_map(|(scenario, s)| {
                Some(Fixed {
                    scenario,
                    count: shard.share(s.allocation.count?),
                    taken: Arc::new(AtomicU64::new(0)),
                })
            })
            .collect();
        Allocator { fixed }
    }

    /// The scenario of the next vuser: a fixed-count scenario that still has room, else the
    /// weighted pick for `ticket` (in `0..program.total_weight`). `None` when every scenario
    /// has a fixed count and all are full: the vuser is not started.
    pub fn assign(&self, program: &Program, ticket: u64) -> Option<Assigned> {
        for fixed in &self.fixed {
            let took = fixed
                .taken
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < fixed.count).then_some(n + 1)
                })
                .is_ok();
            if took {
                return Some(Assigned {
                    scenario: fixed.scenario,
                    slot: Some(Arc::clone(&fixed.taken)),
                });
            }
        }
        (program.total_weight > 0).then(|| Assigned {
            scenario: program.pick(ticket),
            slot: None,
        })
    }
}
