//! Shards: one plan split exactly over N processes (`run --shard I/N`), with no coordinator
//! and no network between them.
//!
//! Every shard computes the whole seeded schedule and keeps its part of it:
//! - open model: the arrivals whose run-wide index is ≡ I (mod N), so the union of the shards
//!   is the single-process schedule, arrival for arrival (ramps and Poisson included);
//! - closed model: an exact share of every level, the shares summing to the level at every
//!   instant (`share`); `maxVusers` is split the same way;
//! - vuser ids: shard I numbers its vusers I, I+N, I+2N, … so ids are unique over the run,
//!   and in an open-model run the id of a vuser is its arrival's index in the whole run.
//!
//! It does not decide *who* runs which shard (the CLI reads `--shard` or
//! `JOB_COMPLETION_INDEX`) nor how results are merged (`report`).

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (0-based); `Shard::WHOLE` (0/1) is an unsplit run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("{0:?} is not a shard: write it as INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3")]
    Syntax(String),
    #[error("shard index {index} is out of range for {count} shard(s): indexes run 0..{count}")]
    OutOfRange { index: u64, count: u64 },
    #[error("a run cannot be split into 0 shards")]
    ZeroCount,
}

impl Shard {
    /// The unsplit run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u64, count: u64) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        match (u32::try_from(index), u32::try_from(count)) {
            (Ok(i), Ok(n)) if i < n => Ok(Shard { index: i, count: n }),
            _ => Err(ShardError::OutOfRange { index, count }),
        }
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// More than one shard.
    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// Whether the arrival with run-wide index `arrival` belongs to this shard.
    pub fn takes(self, arrival: u64) -> bool {
        arrival % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's part of `level` vusers: `level / N`, plus one for the first `level % N`
    /// shards, so the parts of all shards sum to `level` exactly.
    pub fn share(self, level: u64) -> u64 {
        let n = u64::from(self.count);
        level / n + u64::from(u64::from(self.index) < level % n)
    }

    /// The run-wide id of this shard's `local`-th vuser (0-based).
    pub fn vuser_id(self, local: u64) -> u64 {
        local
            .saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, ShardError> {
        let syntax = || ShardError::Syntax(text.to_owned());
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let index: u64 = index.trim().parse().map_err(|_| syntax())?;
        let count: u64 = count.trim().parse().map_err(|_| syntax())?;
        Shard::new(index, count)
    }
}

/// Walks the run-wide arrival sequence (every open-model phase, in order) and says which
/// arrivals are this shard's, and the local number of the vuser each one starts.
#[derive(Debug, Clone)]
pub struct ArrivalFilter {
    shard: Shard,
    next_arrival: u64,
}

impl ArrivalFilter {
    pub fn new(shard: Shard) -> Self {
        ArrivalFilter {
            shard,
            next_arrival: 0,
        }
    }

    /// Consumes the next arrival of the run; `Some(its run-wide index)` when it is this
    /// shard's to start.
    pub fn take_next(&mut self) -> Option<u64> {
        let index = self.next_arrival;
        self.next_arrival += 1;
        self.shard.takes(index).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::engine::load::schedule::{ArrivalTimes, target_vusers};
    use crate::engine::seed::schedule_seed;
    use crate::plan::{Arrivals, Curve, PhaseShape};

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/3".parse(), Shard::new(2, 3));
        assert_eq!(
            " 0 / 1 ".parse::<Shard>().map(|s| s.to_string()),
            Ok("0/1".into())
        );
        assert_eq!(
            "3/3".parse::<Shard>(),
            Err(ShardError::OutOfRange { index: 3, count: 3 })
        );
        assert_eq!("0/0".parse::<Shard>(), Err(ShardError::ZeroCount));
        assert!(matches!("a/3".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert!(matches!("3".parse::<Shard>(), Err(ShardError::Syntax(_))));
    }

    #[test]
    fn ids_interleave_and_match_the_arrival_index() {
        let shard = Shard::new(2, 3).unwrap();
        let ids: Vec<u64> = (0..4).map(|k| shard.vuser_id(k)).collect();
        assert_eq!(ids, vec![2, 5, 8, 11]);
        let mut filter = ArrivalFilter::new(shard);
        let taken: Vec<u64> = (0..12).filter_map(|_| filter.take_next()).collect();
        assert_eq!(taken, ids);
    }

    /// Every arrival of `phases` (phase index, offset), run-wide, as shard `shard` sees them.
    fn arrivals(phases: &[PhaseShape], seed: u64, shard: Shard) -> Vec<(usize, u64, Duration)> {
        let mut filter = ArrivalFilter::new(shard);
        let mut out = Vec::new();
        for (i, shape) in phases.iter().enumerate() {
            for at in ArrivalTimes::new(shape, schedule_seed(seed, i))
                .into_iter()
                .flatten()
            {
                if let Some(index) = filter.take_next() {
                    out.push((i, index, at));
                }
            }
        }
        out
    }

    fn phase() -> impl Strategy<Value = PhaseShape> {
        let secs = 1u64..20;
        prop_oneof![
            (
                secs.clone(),
                0.0f64..30.0,
                proptest::option::of(0.0f64..30.0),
                any::<bool>()
            )
                .prop_map(|(d, rate, ramp, poisson)| PhaseShape::Arrivals {
                    duration: Duration::from_secs(d),
                    rate_per_sec: rate,
                    ramp_to_per_sec: ramp,
                    max_vusers: None,
                    distribution: if poisson {
                        Arrivals::Poisson
                    } else {
                        Arrivals::Uniform
                    },
                }),
            (secs.clone(), 0u64..200).prop_map(|(d, count)| PhaseShape::ArrivalCount {
                duration: Duration::from_secs(d),
                count,
            }),
            secs.clone()
                .prop_map(|d| PhaseShape::Pause(Duration::from_secs(d))),
            (
                secs,
                0u64..500,
                proptest::option::of(0u64..500),
                any::<bool>()
            )
                .prop_map(|(d, vusers, ramp_to, exp)| PhaseShape::Concurrency {
                    duration: Duration::from_secs(d),
                    vusers,
                    ramp_to,
                    curve: if exp {
                        Curve::Exponential
                    } else {
                        Curve::Linear
                    },
                    steps: None,
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_shards_make_up_the_single_schedule_exactly(
            phases in proptest::collection::vec(phase(), 1..5),
            count in 1u64..16,
            seed in any::<u64>(),
        ) {
            let whole = arrivals(&phases, seed, Shard::WHOLE);
            let mut union: Vec<(usize, u64, Duration)> = (0..count)
                .flat_map(|i| arrivals(&phases, seed, Shard::new(i, count).unwrap()))
                .collect();
            union.sort_by_key(|(_, index, _)| *index);
            prop_assert_eq!(&union, &whole);
            // Ids are the arrival indexes: each one exactly once.
            for (position, (_, index, _)) in whole.iter().enumerate() {
                prop_assert_eq!(*index, position as u64);
            }
            // Closed model: the shares add up to the level at every instant.
            for shape in &phases {
                for tenth in 0..=10u64 {
                    let at = Duration::from_millis(tenth * 2_000);
                    if let Some(level) = target_vusers(shape, at) {
                        let sum: u64 = (0..count)
                            .map(|i| Shard::new(i, count).unwrap().share(level))
                            .sum();
                        prop_assert_eq!(sum, level);
                    }
                }
            }
        }
    }
}
