//! The pure schedule: phases → arrival offsets (open model) and target concurrency (closed
//! model), as functions of time since the start of a phase.
//!
//! Nothing here sleeps, spawns or reads a clock: the runner asks "when is the next arrival?"
//! and "how many vusers now?" and acts on the answers. That keeps every shape testable without
//! timing. Arrival times come from integrating the rate: the n-th arrival (n = 0, 1, ...)
//! happens when `∫ rate(t) dt` reaches n, so a linear ramp is smooth at any resolution and a
//! fractional rate (0.5/s) simply yields one arrival every 2 s.

use std::time::Duration;

use rand::{RngExt, SeedableRng};

use crate::engine::seed::SeededRng;
use crate::plan::{Arrivals, Curve, Phase, PhaseShape};

/// Where each phase starts, relative to the start of the run.
#[derive(Debug, Clone)]
pub struct Timeline {
    starts: Vec<Duration>,
    total: Duration,
}

impl Timeline {
    pub fn new(phases: &[Phase]) -> Self {
        let mut starts = Vec::with_capacity(phases.len());
        let mut total = Duration::ZERO;
        for phase in phases {
            starts.push(total);
            total += phase_duration(&phase.shape);
        }
        Timeline { starts, total }
    }

    /// The sum of every phase's duration.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// Offset of phase `index` from the start of the run.
    pub fn start_of(&self, index: usize) -> Option<Duration> {
        self.starts.get(index).copied()
    }

    /// The phase running at `elapsed` (the last one that started), `None` once all ended.
    pub fn phase_at(&self, elapsed: Duration) -> Option<usize> {
        if elapsed >= self.total {
            return None;
        }
        self.starts.iter().rposition(|start| *start <= elapsed)
    }
}

/// How long a phase lasts.
pub fn phase_duration(shape: &PhaseShape) -> Duration {
    shape.duration()
}

/// Arrival offsets inside one open-model phase, in increasing order, all `< duration`.
#[derive(Debug)]
pub struct ArrivalTimes {
    duration_s: f64,
    /// rate(t) = start + slope * t, per second.
    rate_start: f64,
    slope: f64,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The n-th arrival is at cumulative rate n.
    Uniform { next: u64 },
    /// Time rescaling: unit-rate exponential gaps in "cumulative rate" space, mapped back
    /// through the inverse of the integrated rate. Exact for a time-varying rate.
    Poisson {
        cumulative: f64,
        rng: Box<SeededRng>,
    },
    /// `arrivalCount`: `count` arrivals evenly spread.
    Count { next: u64, count: u64 },
}

impl ArrivalTimes {
    /// The arrivals of `shape`, or `None` for a phase that has no arrivals (closed model,
    /// pause). `seed` (the phase's stream, `seed::schedule_seed`) drives the Poisson draws and
    /// nothing else does, so a schedule is replayed exactly from it whatever the vusers do.
    pub fn new(shape: &PhaseShape, seed: u64) -> Option<Self> {
        match shape {
            PhaseShape::Arrivals {
                duration,
                rate_per_sec,
                ramp_to_per_sec,
                distribution,
                ..
            } => {
                let duration_s = duration.as_secs_f64();
                let rate_start = rate_per_sec.max(0.0);
                let rate_end = ramp_to_per_sec.unwrap_or(rate_start).max(0.0);
                let slope = if duration_s > 0.0 {
                    (rate_end - rate_start) / duration_s
                } else {
                    0.0
                };
                let kind = match distribution {
                    Arrivals::Uniform => Kind::Uniform { next: 0 },
                    Arrivals::Poisson => Kind::Poisson {
                        cumulative: 0.0,
                        rng: Box::new(SeededRng::seed_from_u64(seed)),
                    },
                };
                Some(ArrivalTimes {
                    duration_s,
                    rate_start,
                    slope,
                    kind,
                })
            }
            PhaseShape::ArrivalCount { duration, count } => Some(ArrivalTimes {
                duration_s: duration.as_secs_f64(),
                rate_start: 0.0,
                slope: 0.0,
                kind: Kind::Count {
                    next: 0,
                    count: *count,
                },
            }),
            PhaseShape::Pause(_) | PhaseShape::Concurrency { .. } => None,
        }
    }

    /// The time at which the integrated rate reaches `target`, if inside the phase.
    fn invert(&self, target: f64) -> Option<f64> {
        // ∫0..t rate = rate_start·t + slope·t²/2 = target; the form 2c / (b + √(b² + 2·slope·c))
        // stays accurate when the slope is tiny and avoids dividing by it.
        let b = self.rate_start;
        let disc = b * b + 2.0 * self.slope * target;
        if disc < 0.0 {
            return None; // a ramp down that never accumulates this many arrivals
        }
        let denom = b + disc.sqrt();
        let t = if target == 0.0 {
            0.0
        } else if denom > 0.0 {
            2.0 * target / denom
        } else {
            return None;
        };
        // Zero rate at t = 0 with a positive slope still gives t = 0 for the first arrival;
        // a zero rate throughout gives no arrivals at all.
        if b == 0.0 && self.slope <= 0.0 {
            return None;
        }
        (t < self.duration_s).then_some(t)
    }
}

impl Iterator for ArrivalTimes {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let t = match &mut self.kind {
            Kind::Uniform { next } => {
                let n = *next as f64;
                *next += 1;
                self.invert(n)?
            }
            Kind::Poisson { cumulative, rng } => {
                let u: f64 = rng.random();
                // 1 - u lies in (0, 1]: ln never sees zero.
                *cumulative += -(1.0 - u).ln();
                let target = *cumulative;
                self.invert(target)?
            }
            Kind::Count { next, count } => {
                if *next >= *count {
                    return None;
                }
                let t = self.duration_s * (*next as f64) / (*count as f64);
                *next += 1;
                t
            }
        };
        Some(Duration::from_secs_f64(t))
    }
}

/// Target concurrency of a closed-model phase `elapsed` after it started; `None` for other
/// shapes. Linear and exponential curves are continuous and rounded to the nearest vuser;
/// with `steps` the phase is cut into that many equal slices, slice k holding the curve's
/// value at k/(steps-1) (so the first slice is the start value and the last the end value).
pub fn target_vusers(shape: &PhaseShape, elapsed: Duration) -> Option<u64> {
    let PhaseShape::Concurrency {
        duration,
        vusers,
        ramp_to,
        curve,
        steps,
    } = shape
    else {
        return None;
    };
    let start = *vusers as f64;
    let Some(end) = ramp_to.map(|v| v as f64) else {
        return Some(*vusers);
    };
    let total_s = duration.as_secs_f64();
    let mut fraction = if total_s > 0.0 {
        (elapsed.as_secs_f64() / total_s).clamp(0.0, 1.0)
    } else {
        1.0
    };
    if let Some(steps) = steps.filter(|s| *s > 0) {
        let steps = f64::from(steps);
        let slice = (fraction * steps).floor().min(steps - 1.0);
        fraction = if steps > 1.0 {
            slice / (steps - 1.0)
        } else {
            0.0
        };
    }
    let value = match curve {
        Curve::Linear => start + (end - start) * fraction,
        Curve::Exponential if start > 0.0 && end > 0.0 => start * (end / start).powf(fraction),
        // From or to zero: shift by one so the curve is defined and still doubles-ish.
        Curve::Exponential => (start + 1.0) * ((end + 1.0) / (start + 1.0)).powf(fraction) - 1.0,
    };
    Some(value.round().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(duration_s: u64, rate: f64, ramp_to: Option<f64>, dist: Arrivals) -> PhaseShape {
        PhaseShape::Arrivals {
            duration: Duration::from_secs(duration_s),
            rate_per_sec: rate,
            ramp_to_per_sec: ramp_to,
            max_vusers: None,
            distribution: dist,
        }
    }

    fn closed(vusers: u64, ramp_to: Option<u64>, curve: Curve, steps: Option<u32>) -> PhaseShape {
        PhaseShape::Concurrency {
            duration: Duration::from_secs(10),
            vusers,
            ramp_to,
            curve,
            steps,
        }
    }

    fn times(shape: &PhaseShape) -> Vec<f64> {
        ArrivalTimes::new(shape, 7)
            .map(|it| it.map(|d| d.as_secs_f64()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn constant_rate_gives_rate_times_duration_evenly_spaced() {
        let t = times(&rate(4, 50.0, None, Arrivals::Uniform));
        assert_eq!(t.len(), 200);
        assert_eq!(t.first().copied(), Some(0.0));
        for pair in t.windows(2) {
            assert!((pair[1] - pair[0] - 0.02).abs() < 1e-9);
        }
    }

    #[test]
    fn fractional_rate_spaces_arrivals_by_the_inverse() {
        let t = times(&rate(10, 0.5, None, Arrivals::Uniform));
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn linear_ramp_follows_the_integral_not_a_staircase() {
        // 0 → 10/s over 10 s: ∫ = t²/2, so 50 arrivals, the n-th at √(2n).
        let t = times(&rate(10, 0.0, Some(10.0), Arrivals::Uniform));
        assert_eq!(t.len(), 50);
        for (n, at) in t.iter().enumerate() {
            assert!(
                (at - (2.0 * n as f64).sqrt()).abs() < 1e-9,
                "arrival {n} at {at}"
            );
        }
        // Sub-second resolution: several arrivals fall strictly inside the first second of
        // a ramp that starts at 10/s, spaced ever closer as the rate grows.
        let t = times(&rate(2, 10.0, Some(30.0), Arrivals::Uniform));
        let gaps: Vec<f64> = t.windows(2).map(|p| p[1] - p[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] < g[0]));
        assert_eq!(t.len(), 40); // (10 + 30) / 2 · 2 s
    }

    #[test]
    fn ramp_down_stops_when_the_integral_is_exhausted() {
        let t = times(&rate(10, 10.0, Some(0.0), Arrivals::Uniform));
        assert_eq!(t.len(), 50);
        assert!(t.iter().all(|at| *at < 10.0));
    }

    #[test]
    fn zero_rate_has_no_arrivals() {
        assert!(times(&rate(10, 0.0, None, Arrivals::Uniform)).is_empty());
    }

    #[test]
    fn poisson_mean_count_matches_the_rate() {
        let shape = rate(100, 20.0, None, Arrivals::Poisson);
        let mut total = 0usize;
        for seed in 0..20 {
            let t: Vec<_> = ArrivalTimes::new(&shape, seed)
                .into_iter()
                .flatten()
                .collect();
            assert!(t.windows(2).all(|p| p[0] <= p[1]));
            total += t.len();
        }
        let mean = total as f64 / 20.0;
        assert!((mean - 2000.0).abs() < 60.0, "mean {mean}");
    }

    #[test]
    fn the_same_seed_replays_the_schedule() {
        use crate::engine::seed::schedule_seed;
        let at = |shape: &PhaseShape, seed: u64| -> Vec<Duration> {
            ArrivalTimes::new(shape, schedule_seed(seed, 0))
                .into_iter()
                .flatten()
                .collect()
        };
        let poisson = rate(30, 5.0, Some(40.0), Arrivals::Poisson);
        let first = at(&poisson, 1234);
        assert!(first.len() > 100);
        assert_eq!(first, at(&poisson, 1234));
        assert_ne!(first, at(&poisson, 1235));
        // Each phase has its own stream: the same shape in the next phase draws other times.
        let next_phase: Vec<Duration> = ArrivalTimes::new(&poisson, schedule_seed(1234, 1))
            .into_iter()
            .flatten()
            .collect();
        assert_ne!(first, next_phase);
        let ramp = rate(10, 0.0, Some(10.0), Arrivals::Uniform);
        assert_eq!(at(&ramp, 1234), at(&ramp, 1234));
        assert_eq!(at(&ramp, 1234), at(&ramp, 99)); // uniform spacing draws nothing
    }

    #[test]
    fn arrival_count_spreads_evenly() {
        let shape = PhaseShape::ArrivalCount {
            duration: Duration::from_secs(10),
            count: 4,
        };
        assert_eq!(times(&shape), vec![0.0, 2.5, 5.0, 7.5]);
    }

    #[test]
    fn pause_and_closed_phases_have_no_arrivals() {
        assert!(ArrivalTimes::new(&PhaseShape::Pause(Duration::from_secs(1)), 0).is_none());
        assert!(ArrivalTimes::new(&closed(5, None, Curve::Linear, None), 0).is_none());
    }

    #[test]
    fn closed_linear_ramp() {
        let shape = closed(0, Some(100), Curve::Linear, None);
        let at = |s: f64| target_vusers(&shape, Duration::from_secs_f64(s));
        assert_eq!(at(0.0), Some(0));
        assert_eq!(at(2.5), Some(25));
        assert_eq!(at(10.0), Some(100));
        assert_eq!(at(20.0), Some(100));
        assert_eq!(
            target_vusers(&closed(7, None, Curve::Linear, None), Duration::ZERO),
            Some(7)
        );
    }

    #[test]
    fn closed_exponential_doubles() {
        let shape = closed(1, Some(64), Curve::Exponential, None);
        let at = |s: f64| target_vusers(&shape, Duration::from_secs_f64(s)).unwrap_or(0);
        let expected = [1, 2, 4, 8, 16, 32, 64];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(at(10.0 * i as f64 / 6.0), *want);
        }
        let from_zero = closed(0, Some(10), Curve::Exponential, None);
        assert_eq!(target_vusers(&from_zero, Duration::ZERO), Some(0));
        assert_eq!(target_vusers(&from_zero, Duration::from_secs(10)), Some(10));
    }

    #[test]
    fn closed_steps_hold_levels() {
        let shape = closed(5, Some(50), Curve::Linear, Some(10));
        let at = |s: f64| target_vusers(&shape, Duration::from_secs_f64(s)).unwrap_or(0);
        assert_eq!(at(0.0), 5);
        assert_eq!(at(0.99), 5);
        assert_eq!(at(1.0), 10);
        assert_eq!(at(5.5), 30);
        assert_eq!(at(9.99), 50);
    }

    #[test]
    fn timeline_locates_phases() {
        let phases = vec![
            Phase {
                name: "a".into(),
                shape: rate(2, 1.0, None, Arrivals::Uniform),
            },
            Phase {
                name: "b".into(),
                shape: PhaseShape::Pause(Duration::from_secs(1)),
            },
        ];
        let tl = Timeline::new(&phases);
        assert_eq!(tl.total(), Duration::from_secs(3));
        assert_eq!(tl.phase_at(Duration::from_millis(1999)), Some(0));
        assert_eq!(tl.phase_at(Duration::from_secs(2)), Some(1));
        assert_eq!(tl.phase_at(Duration::from_secs(3)), None);
        assert_eq!(tl.start_of(1), Some(Duration::from_secs(2)));
    }
}
