//! How much load one generator process can take: the levels a run refuses outright because no
//! single process could hold them (a typo such as `vusers: 1000000000`), and the number of
//! vusers it holds at once — arrivals beyond it are dropped and counted (`vusers.dropped`,
//! generator overload), never queued, so memory does not grow with the *requested* load.
//!
//! The live limit follows the open-descriptor limit (each connected vuser holds a socket); it
//! does not check ports or descriptors one by one — `check` warns about those up front and
//! the engine maps running out onto error kinds.

use crate::plan::{Load, PhaseShape};

/// More vusers than this in one process is refused before the run starts: even at the largest
/// descriptor limits Linux allows, and a few KiB per vuser, it cannot be held.
pub const MAX_VUSERS: u64 = 10_000_000;

/// More arrivals per second than this is refused before the run starts: starting a vuser
/// costs microseconds of one core, so a process cannot come near it.
pub const MAX_ARRIVAL_RATE_PER_SEC: f64 = 1_000_000.0;

/// The live limit never goes below this, so flows that hold no connection still run under a
/// tiny descriptor limit (the ones that connect then fail as `errors.io`, with the fix).
const MIN_LIVE_VUSERS: u64 = 1024;

/// A load level the run refuses to try.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error(
        "phase `{phase}` asks for {vusers} vusers; one generator process holds at most \
         {MAX_VUSERS}: lower it, or split the load over several processes (`run --shard I/N`)"
    )]
    Vusers { phase: String, vusers: u64 },
    #[error(
        "phase `{phase}` asks for {rate_per_sec:.0} arrivals per second; one generator process \
         walks at most {MAX_ARRIVAL_RATE_PER_SEC:.0} arrivals of the schedule per second (every \
         shard walks all of them): lower the rate"
    )]
    ArrivalRate { phase: String, rate_per_sec: f64 },
}

/// Refuses a load no single process could generate; `shards` processes share the vusers of
/// closed-model levels (`run --shard I/N`).
pub fn refuse_absurd(load: &Load, shards: u64) -> Result<(), CapacityError> {
    let shards = shards.max(1);
    let phases = match load {
        Load::Phases(phases) => phases,
        Load::Adaptive(adaptive) => {
            return check_vusers("adaptive", adaptive.max_vusers.max(adaptive.start_vusers));
        }
    };
    for phase in phases {
        let name = &phase.name;
        match &phase.shape {
            PhaseShape::Concurrency {
                vusers, ramp_to, ..
            } => check_vusers(name, (*vusers).max(ramp_to.unwrap_or(0)).div_ceil(shards))?,
            PhaseShape::Arrivals {
                rate_per_sec,
                ramp_to_per_sec,
                ..
            } => check_rate(name, rate_per_sec.max(ramp_to_per_sec.unwrap_or(0.0)))?,
            PhaseShape::ArrivalCount { duration, count } => {
                // A count over no time at all arrives at once: judge it as one second's worth.
                let seconds = duration.as_secs_f64().max(1.0);
                check_rate(name, *count as f64 / seconds)?
            }
            PhaseShape::Pause(_) => {}
        }
    }
    Ok(())
}

fn check_vusers(phase: &str, vusers: u64) -> Result<(), CapacityError> {
    if vusers > MAX_VUSERS {
        return Err(CapacityError::Vusers {
            phase: phase.to_owned(),
            vusers,
        });
    }
    Ok(())
}

fn check_rate(phase: &str, rate_per_sec: f64) -> Result<(), CapacityError> {
    // NaN is refused too.
    if rate_per_sec.is_nan() || rate_per_sec > MAX_ARRIVAL_RATE_PER_SEC {
        return Err(CapacityError::ArrivalRate {
            phase: phase.to_owned(),
            rate_per_sec,
        });
    }
    Ok(())
}

/// How many vusers this process holds at once: its open-descriptor limit (`run` raises the
/// soft limit to the hard one first), at least [`MIN_LIVE_VUSERS`], at most [`MAX_VUSERS`].
pub fn live_limit() -> u64 {
    crate::transport::nofile_limit()
        .unwrap_or(MIN_LIVE_VUSERS)
        .clamp(MIN_LIVE_VUSERS, MAX_VUSERS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::{Arrivals, Curve, Phase};

    fn phases(shapes: Vec<PhaseShape>) -> Load {
        Load::Phases(
            shapes
                .into_iter()
                .map(|shape| Phase {
                    name: "p".into(),
                    shape,
                })
                .collect(),
        )
    }

    fn closed(vusers: u64, ramp_to: Option<u64>) -> PhaseShape {
        PhaseShape::Concurrency {
            duration: Duration::from_secs(5),
            vusers,
            ramp_to,
            curve: Curve::Exponential,
            steps: None,
        }
    }

    fn rate(per_sec: f64) -> PhaseShape {
        PhaseShape::Arrivals {
            duration: Duration::from_secs(5),
            rate_per_sec: per_sec,
            ramp_to_per_sec: None,
            max_vusers: None,
            distribution: Arrivals::Uniform,
        }
    }

    #[test]
    fn absurd_levels_are_refused_with_the_phase_and_the_fix() {
        let err = refuse_absurd(&phases(vec![closed(1_000_000_000, None)]), 1);
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("1000000000 vusers"), "{message}");
        assert!(message.contains("--shard"), "{message}");
        assert!(refuse_absurd(&phases(vec![closed(1, Some(1_000_000_000))]), 1).is_err());
        let count = PhaseShape::ArrivalCount {
            duration: Duration::from_secs(5),
            count: 1_000_000_000_000,
        };
        assert!(matches!(
            refuse_absurd(&phases(vec![count]), 1),
            Err(CapacityError::ArrivalRate { .. })
        ));
        assert!(refuse_absurd(&phases(vec![rate(f64::INFINITY)]), 1).is_err());
    }

    #[test]
    fn heavy_but_possible_levels_run() {
        let load = phases(vec![
            closed(MAX_VUSERS, None),
            rate(MAX_ARRIVAL_RATE_PER_SEC),
            PhaseShape::Pause(Duration::from_secs(1)),
        ]);
        assert_eq!(refuse_absurd(&load, 1), Ok(()));
        // Shards share closed-model vusers.
        let big = phases(vec![closed(MAX_VUSERS * 4, None)]);
        assert!(refuse_absurd(&big, 1).is_err());
        assert_eq!(refuse_absurd(&big, 4), Ok(()));
        assert!(live_limit() >= MIN_LIVE_VUSERS);
    }
}
