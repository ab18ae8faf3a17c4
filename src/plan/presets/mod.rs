//! Built-in load presets: the classic progressive shapes, expanded into closed-model phases.
//!
//! Pure: `expand` turns a name and parameters into phases; it knows nothing about plans or the
//! command line. Each stepping preset holds every level for `every`; ramps last `duration`.

use std::time::Duration;

use super::resolved::{Curve, Load, Phase, PhaseShape, Plan};

/// Parameters a preset accepts; `None` takes the preset's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PresetParams {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub by: Option<u64>,
    pub every: Option<Duration>,
    pub duration: Option<Duration>,
}

/// A preset's name, what it does, and its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresetInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub from: u64,
    pub to: u64,
    pub by: u64,
    pub every: Duration,
    pub duration: Duration,
}

const fn info(
    name: &'static str,
    description: &'static str,
    from: u64,
    to: u64,
    by: u64,
    every_secs: u64,
    duration_secs: u64,
) -> PresetInfo {
    PresetInfo {
        name,
        description,
        from,
        to,
        by,
        every: Duration::from_secs(every_secs),
        duration: Duration::from_secs(duration_secs),
    }
}

/// Every built-in preset.
pub const PRESETS: &[PresetInfo] = &[
    info(
        "warmup",
        "ramp linearly from 1 to 10 vusers over `duration` (60s)",
        1,
        10,
        1,
        30,
        60,
    ),
    info(
        "step",
        "5, 10, ... 50 vusers: `by` 5 more every `every` (30s)",
        5,
        50,
        5,
        30,
        60,
    ),
    info(
        "exponential",
        "1, 2, 4, ... 64 vusers, doubling every `every` (30s)",
        1,
        64,
        2,
        30,
        60,
    ),
    info(
        "spike",
        "10 vusers, a spike to 100 for `duration` (30s), back to 10; holds of `every` (30s)",
        10,
        100,
        1,
        30,
        30,
    ),
    info(
        "rampUpDown",
        "ramp 5 → 40 vusers over `duration` (60s), then back down to 5",
        5,
        40,
        1,
        30,
        60,
    ),
    info(
        "sustained",
        "hold `from` (20) vusers for `duration` (5m)",
        20,
        20,
        1,
        30,
        300,
    ),
    info(
        "stress",
        "10, 20, ... 200 vusers every `every` (30s); with abortOnFail it stops at the first breach",
        10,
        200,
        10,
        30,
        60,
    ),
];

/// Generating more phases than this is surely a mistake in the parameters.
const MAX_PHASES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("unknown preset `{name}`{hint}; run `chatload presets` for the list")]
    Unknown { name: String, hint: String },
    #[error("preset `{name}`: `from` ({from}) must not be above `to` ({to})")]
    FromAboveTo { name: String, from: u64, to: u64 },
    #[error("preset `{name}`: `{param}` must be at least {min}")]
    TooSmall {
        name: String,
        param: &'static str,
        min: u64,
    },
    #[error("preset `{name}`: `every` and `duration` must be longer than 0")]
    ZeroTime { name: String },
    #[error("preset `{name}` would make more than {MAX_PHASES} phases; raise `by` or lower `to`")]
    TooManyPhases { name: String },
    #[error(
        "preset `{name}` has no overall duration to set: it lasts one `every` per step; \
         presets with a duration are {}", TIMED_PRESETS.join(", ")
    )]
    NoDuration { name: String },
}

/// Presets whose length is a duration (not a number of steps): `run --preset NAME --duration D`
/// scales their phases to last D in all.
pub const TIMED_PRESETS: &[&str] = &["warmup", "spike", "rampUpDown", "sustained"];

/// Expands preset `name` and, when `total` is given, scales its phases in proportion so that
/// together they last exactly `total` (`run --preset spike --duration 2m`). Only the
/// [`TIMED_PRESETS`] accept a total.
pub fn expand_lasting(
    name: &str,
    params: &PresetParams,
    total: Option<Duration>,
) -> Result<Vec<Phase>, PresetError> {
    let mut phases = expand(name, params)?;
    let Some(total) = total else {
        return Ok(phases);
    };
    if !TIMED_PRESETS.contains(&name) {
        return Err(PresetError::NoDuration {
            name: name.to_owned(),
        });
    }
    if total.is_zero() {
        return Err(PresetError::ZeroTime {
            name: name.to_owned(),
        });
    }
    let lengths: Vec<u128> = phases
        .iter()
        .map(|p| phase_duration(p).as_nanos())
        .collect();
    let sum: u128 = lengths.iter().sum::<u128>().max(1);
    let total_ns = total.as_nanos();
    let mut given = 0u128;
    let last = phases.len().saturating_sub(1);
    for (i, (phase, length)) in phases.iter_mut().zip(lengths).enumerate() {
        // The last phase takes the rounding remainder, so the sum is exact.
        let ns = if i == last {
            total_ns - given
        } else {
            length * total_ns / sum
        };
        given += ns;
        set_phase_duration(phase, nanos(ns));
    }
    Ok(phases)
}

fn nanos(ns: u128) -> Duration {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

fn phase_duration(phase: &Phase) -> Duration {
    phase.shape.duration()
}

fn set_phase_duration(phase: &mut Phase, to: Duration) {
    match &mut phase.shape {
        PhaseShape::Arrivals { duration, .. }
        | PhaseShape::ArrivalCount { duration, .. }
        | PhaseShape::Concurrency { duration, .. }
        | PhaseShape::Pause(duration) => *duration = to,
    }
}

/// A load shape given on the command line instead of the plan's phases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `--vusers N [--spawn-rate R] --duration D` (Locust's `-u N -r R -t D`): start R vusers
    /// per second (all at once without a rate) up to N, then keep N connected until D, counted
    /// from the start, is over.
    Closed {
        vusers: u64,
        spawn_rate: Option<f64>,
        duration: Duration,
    },
    /// `--arrival-rate R --duration D`: R new vusers per second, each running its flow once.
    Open { rate: f64, duration: Duration },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    #[error("--vusers must be at least 1")]
    NoVusers,
    #[error("--{flag} must be a number above 0, found {value}")]
    BadRate { flag: &'static str, value: f64 },
    #[error("--duration must be longer than 0")]
    ZeroDuration,
    #[error(
        "starting {vusers} vusers at {rate}/s takes {ramp:.1?}, longer than --duration {duration:?}; \
         raise --spawn-rate or --duration"
    )]
    RampTooLong {
        vusers: u64,
        rate: f64,
        ramp: Duration,
        duration: Duration,
    },
}

/// The phases of a command-line load shape. Pure: the CLI checks which flags go together.
pub fn shape_phases(shape: &Shape) -> Result<Vec<Phase>, ShapeError> {
    match *shape {
        Shape::Closed {
            vusers,
            spawn_rate,
            duration,
        } => {
            if vusers == 0 {
                return Err(ShapeError::NoVusers);
            }
            if duration.is_zero() {
                return Err(ShapeError::ZeroDuration);
            }
            let Some(rate) = spawn_rate else {
                return Ok(vec![hold(format!("{vusers} vusers"), vusers, duration)]);
            };
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ShapeError::BadRate {
                    flag: "spawn-rate",
                    value: rate,
                });
            }
            let ramp_time =
                Duration::try_from_secs_f64(vusers as f64 / rate).unwrap_or(Duration::MAX);
            if ramp_time > duration {
                return Err(ShapeError::RampTooLong {
                    vusers,
                    rate,
                    ramp: ramp_time,
                    duration,
                });
            }
            let mut phases = vec![ramp(
                format!("spawn 0→{vusers} at {rate}/s"),
                0,
                vusers,
                ramp_time,
            )];
            let rest = duration - ramp_time;
            if !rest.is_zero() {
                phases.push(hold(format!("{vusers} vusers"), vusers, rest));
            }
            Ok(phases)
        }
        Shape::Open { rate, duration } => {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ShapeError::BadRate {
                    flag: "arrival-rate",
                    value: rate,
                });
            }
            if duration.is_zero() {
                return Err(ShapeError::ZeroDuration);
            }
            Ok(vec![Phase {
                name: format!("{rate} arrivals/s"),
                shape: PhaseShape::Arrivals {
                    duration,
                    rate_per_sec: rate,
                    ramp_to_per_sec: None,
                    max_vusers: None,
                    distribution: super::resolved::Arrivals::Uniform,
                },
            }])
        }
    }
}

/// Looks a preset up by name.
pub fn find(name: &str) -> Option<&'static PresetInfo> {
    PRESETS.iter().find(|p| p.name == name)
}

fn hold(name: String, vusers: u64, duration: Duration) -> Phase {
    Phase {
        name,
        shape: PhaseShape::Concurrency {
            duration,
            vusers,
            ramp_to: None,
            curve: Curve::Linear,
            steps: None,
        },
    }
}

fn ramp(name: String, from: u64, to: u64, duration: Duration) -> Phase {
    Phase {
        name,
        shape: PhaseShape::Concurrency {
            duration,
            vusers: from,
            ramp_to: Some(to),
            curve: Curve::Linear,
            steps: None,
        },
    }
}

/// Expands preset `name` into phases.
pub fn expand(name: &str, params: &PresetParams) -> Result<Vec<Phase>, PresetError> {
    let Some(preset) = find(name) else {
        let hint = super::problem::suggest(name, PRESETS.iter().map(|p| p.name))
            .map(|s| format!(", did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(PresetError::Unknown {
            name: name.to_owned(),
            hint,
        });
    };
    let name = preset.name.to_owned();
    let from = params.from.unwrap_or(preset.from);
    let to = params.to.unwrap_or(preset.to);
    let by = params.by.unwrap_or(preset.by);
    let every = params.every.unwrap_or(preset.every);
    let duration = params.duration.unwrap_or(preset.duration);
    if every.is_zero() || duration.is_zero() {
        return Err(PresetError::ZeroTime { name });
    }
    if from > to && preset.name != "sustained" {
        return Err(PresetError::FromAboveTo { name, from, to });
    }
    let too_small = |param, min| PresetError::TooSmall {
        name: name.clone(),
        param,
        min,
    };
    let levels = |start: u64, next: &dyn Fn(u64) -> u64| -> Result<Vec<u64>, PresetError> {
        let mut out = vec![start];
        let mut level = start;
        while level < to {
            level = next(level).min(to);
            out.push(level);
            if out.len() > MAX_PHASES {
                return Err(PresetError::TooManyPhases { name: name.clone() });
            }
        }
        Ok(out)
    };
    let phases = match preset.name {
        "warmup" => vec![ramp(format!("warmup {from}→{to}"), from, to, duration)],
        "rampUpDown" => vec![
            ramp(format!("ramp up {from}→{to}"), from, to, duration),
            ramp(format!("ramp down {to}→{from}"), to, from, duration),
        ],
        "sustained" => {
            if from == 0 {
                return Err(too_small("from", 1));
            }
            vec![hold(format!("sustained {from}"), from, duration)]
        }
        "spike" => vec![
            hold(format!("base {from}"), from, every),
            hold(format!("spike {to}"), to, duration),
            hold(format!("recover {from}"), from, every),
        ],
        "exponential" => {
            if from == 0 {
                return Err(too_small("from", 1));
            }
            if by < 2 {
                return Err(too_small("by", 2));
            }
            levels(from, &|l| l.saturating_mul(by))?
                .into_iter()
                .map(|l| hold(format!("{name} {l}"), l, every))
                .collect()
        }
        _ => {
            if by == 0 {
                return Err(too_small("by", 1));
            }
            levels(from, &|l| l.saturating_add(by))?
                .into_iter()
                .map(|l| hold(format!("{name} {l}"), l, every))
                .collect()
        }
    };
    Ok(phases)
}

/// Replaces the plan's load (phases or adaptive) with preset `name`: `run --preset`.
pub fn apply(plan: &mut Plan, name: &str, params: &PresetParams) -> Result<(), PresetError> {
    plan.load = Load::Phases(expand(name, params)?);
    Ok(())
}

#[cfg(test)]
mod tests;
