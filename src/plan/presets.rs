//! Built-in load presets: the classic progressive shapes, expanded into closed-model phases.
//!
//! Pure: `expand` turns a name and parameters into phases; it knows nothing about plans or the
//! command line. Each stepping preset holds every level for `every`; ramps last `duration`.

use std::time::Duration;

use super::resolved::{Curve, Phase, PhaseShape};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(phases: &[Phase]) -> Vec<(u64, Option<u64>, u64)> {
        phases
            .iter()
            .map(|p| match p.shape {
                PhaseShape::Concurrency {
                    vusers,
                    ramp_to,
                    duration,
                    ..
                } => (vusers, ramp_to, duration.as_secs()),
                _ => panic!("presets expand to closed-model phases"),
            })
            .collect()
    }

    fn defaults(name: &str) -> Vec<(u64, Option<u64>, u64)> {
        levels(&expand(name, &PresetParams::default()).unwrap())
    }

    #[test]
    fn warmup_ramps_1_to_10() {
        assert_eq!(defaults("warmup"), vec![(1, Some(10), 60)]);
    }

    #[test]
    fn step_goes_5_to_50_by_5() {
        let expected: Vec<_> = (1..=10).map(|i| (i * 5, None, 30)).collect();
        assert_eq!(defaults("step"), expected);
    }

    #[test]
    fn exponential_doubles_1_to_64() {
        let expected: Vec<_> = [1, 2, 4, 8, 16, 32, 64]
            .iter()
            .map(|&l| (l, None, 30))
            .collect();
        assert_eq!(defaults("exponential"), expected);
    }

    #[test]
    fn spike_goes_10_100_10() {
        assert_eq!(
            defaults("spike"),
            vec![(10, None, 30), (100, None, 30), (10, None, 30)]
        );
    }

    #[test]
    fn ramp_up_down_5_40_5() {
        assert_eq!(
            defaults("rampUpDown"),
            vec![(5, Some(40), 60), (40, Some(5), 60)]
        );
    }

    #[test]
    fn sustained_holds_20() {
        assert_eq!(defaults("sustained"), vec![(20, None, 300)]);
    }

    #[test]
    fn stress_steps_10_to_200() {
        let expected: Vec<_> = (1..=20).map(|i| (i * 10, None, 30)).collect();
        assert_eq!(defaults("stress"), expected);
    }

    #[test]
    fn parameters_override_and_unaligned_steps_end_at_to() {
        let params = PresetParams {
            from: Some(2),
            to: Some(9),
            by: Some(3),
            every: Some(Duration::from_secs(5)),
            duration: None,
        };
        let got = levels(&expand("step", &params).unwrap());
        assert_eq!(
            got,
            vec![(2, None, 5), (5, None, 5), (8, None, 5), (9, None, 5)]
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(
            matches!(expand("stepp", &PresetParams::default()), Err(PresetError::Unknown { hint, .. }) if hint.contains("step"))
        );
        let p = PresetParams {
            by: Some(0),
            ..Default::default()
        };
        assert!(expand("step", &p).is_err());
        let p = PresetParams {
            from: Some(60),
            ..Default::default()
        };
        assert!(matches!(
            expand("step", &p),
            Err(PresetError::FromAboveTo { .. })
        ));
        let p = PresetParams {
            by: Some(1),
            to: Some(1_000_000),
            ..Default::default()
        };
        assert!(matches!(
            expand("step", &p),
            Err(PresetError::TooManyPhases { .. })
        ));
        let p = PresetParams {
            every: Some(Duration::ZERO),
            ..Default::default()
        };
        assert!(expand("stress", &p).is_err());
    }
}
