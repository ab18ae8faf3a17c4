//! The flags of `run` that change the plan, checked before the plan is read so that their
//! errors name the flag (usage errors, exit 2):
//!
//! - `--target`: a bad value is reported as `--target VALUE: …`, not at the plan's line.
//! - `run --preset NAME [--from --to --by --every --duration]` and the one-liners
//!   `run --vusers N [--spawn-rate R] --duration D` / `run --arrival-rate R --duration D`: a load
//!   shape from the command line that replaces the plan's phases. Which flags go together is
//!   checked here; the phases themselves come from `plan::presets`.

use anyhow::{anyhow, bail};

use super::RunArgs;
use crate::plan::{self, presets};

/// `--target VALUE` is `embedded`, a template (checked once rendered, with the plan) or a
/// socket URL.
pub(super) fn check_target(target: &str) -> anyhow::Result<()> {
    let trimmed = target.trim();
    if trimmed == "embedded" || trimmed.contains("{{") {
        return Ok(());
    }
    if let Err(err) = plan::Endpoint::parse(trimmed) {
        bail!("--target {target}: {err}");
    }
    Ok(())
}

/// The phases the flags ask for, `None` to keep the plan's load.
pub(super) fn phases(args: &RunArgs) -> anyhow::Result<Option<Vec<plan::Phase>>> {
    let shape = &args.shape;
    let duration = shape
        .duration
        .as_deref()
        .map(|text| plan::parse_duration(text).map_err(|e| anyhow!("--duration {text:?}: {e}")))
        .transpose()?;
    if let Some(name) = &args.preset {
        if shape.vusers.is_some() || shape.arrival_rate.is_some() {
            bail!("--preset replaces the phases, and so do --vusers and --arrival-rate: give one");
        }
        let every = match &args.every {
            Some(text) => {
                Some(plan::parse_duration(text).map_err(|e| anyhow!("--every {text:?}: {e}"))?)
            }
            None => None,
        };
        let params = presets::PresetParams {
            from: args.from,
            to: args.to,
            by: args.by,
            every,
            duration: None,
        };
        return Ok(Some(presets::expand_lasting(name, &params, duration)?));
    }
    let built = match (shape.vusers, shape.arrival_rate) {
        (Some(_), Some(_)) => bail!(
            "--vusers (closed model: keep N connected) and --arrival-rate (open model: R new \
             vusers per second) exclude each other: give one"
        ),
        (None, None) => {
            if shape.spawn_rate.is_some() {
                bail!(
                    "--spawn-rate needs --vusers: e.g. --vusers 100 --spawn-rate 10 --duration 1m"
                );
            }
            if shape.duration.is_some() {
                bail!(
                    "--duration needs --vusers N, --arrival-rate R or a --preset: e.g. \
                     --vusers 10 --duration 60s"
                );
            }
            return Ok(None);
        }
        (Some(vusers), None) => {
            let Some(duration) = duration else {
                bail!("--vusers needs --duration: e.g. --vusers {vusers} --duration 60s");
            };
            presets::Shape::Closed {
                vusers,
                spawn_rate: shape.spawn_rate,
                duration,
            }
        }
        (None, Some(rate)) => {
            if shape.spawn_rate.is_some() {
                bail!("--spawn-rate goes with --vusers, not --arrival-rate");
            }
            let Some(duration) = duration else {
                bail!("--arrival-rate needs --duration: e.g. --arrival-rate {rate} --duration 60s");
            };
            presets::Shape::Open { rate, duration }
        }
    };
    Ok(Some(presets::shape_phases(&built)?))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> RunArgs {
        let mut argv = vec!["chatload", "run", "plan.yml"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(args) => args,
            _ => unreachable!(),
        }
    }

    fn error(args: &[&str]) -> String {
        phases(&parse(args)).expect_err("a usage error").to_string()
    }

    #[test]
    fn no_flags_keep_the_plan() {
        assert!(phases(&parse(&[])).unwrap().is_none());
    }

    #[test]
    fn locust_style_flags_build_the_shape() {
        let got = phases(&parse(&["-u", "4", "-r", "2", "-t", "3s"]))
            .unwrap()
            .unwrap();
        let expected = presets::shape_phases(&presets::Shape::Closed {
            vusers: 4,
            spawn_rate: Some(2.0),
            duration: std::time::Duration::from_secs(3),
        })
        .unwrap();
        assert_eq!(got, expected);
        let open = phases(&parse(&["--arrival-rate", "5", "--duration", "1m"]))
            .unwrap()
            .unwrap();
        assert!(matches!(open[0].shape, plan::PhaseShape::Arrivals { .. }));
    }

    #[test]
    fn conflicting_or_missing_flags_are_usage_errors() {
        assert!(
            error(&["--vusers", "3", "--arrival-rate", "2", "--duration", "5s"])
                .contains("exclude each other")
        );
        assert!(
            error(&["--preset", "step", "--vusers", "3", "--duration", "5s"]).contains("give one")
        );
        assert!(
            error(&["--spawn-rate", "2", "--duration", "5s"])
                .contains("--spawn-rate needs --vusers")
        );
        assert!(error(&["--vusers", "3"]).contains("--vusers needs --duration"));
        assert!(error(&["--arrival-rate", "3"]).contains("--arrival-rate needs --duration"));
        assert!(error(&["--duration", "5s"]).contains("--duration needs"));
        assert!(error(&["--vusers", "3", "--duration", "soon"]).contains("--duration \"soon\""));
        assert!(
            error(&["--vusers", "100", "--spawn-rate", "1", "--duration", "10s"])
                .contains("longer than --duration")
        );
        assert!(error(&["--preset", "step", "--duration", "1m"]).contains("no overall duration"));
    }

    #[test]
    fn a_bad_target_flag_names_the_flag() {
        let err = check_target("localhost").unwrap_err().to_string();
        assert!(err.starts_with("--target localhost: "), "{err}");
        assert!(err.contains("no port"), "{err}");
        for good in [
            "embedded",
            "127.0.0.1:9200",
            "ws://h:1/chat",
            "{{ env.URL }}",
        ] {
            check_target(good).unwrap();
        }
    }

    #[test]
    fn timed_presets_take_the_duration() {
        let got = phases(&parse(&["--preset", "sustained", "--duration", "90s"]))
            .unwrap()
            .unwrap();
        assert!(matches!(
            got[..],
            [plan::Phase { shape: plan::PhaseShape::Concurrency { duration, vusers: 20, .. }, .. }]
                if duration == std::time::Duration::from_secs(90)
        ));
    }
}
