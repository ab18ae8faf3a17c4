//! `chatload report` (re-render HTML/CSV from a saved result) and `chatload compare` (a CI
//! gate against the last good run), plus the mapping of the engine's threshold outcomes onto
//! the result model, which `run` uses.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::engine::thresholds::ThresholdOutcome;
use crate::report::{self, ObservedValue, ThresholdResult};

use super::{CompareArgs, Exit, ReportArgs};

pub fn execute_report(args: ReportArgs) -> anyhow::Result<Exit> {
    let result = report::read_result(&args.result)?;
    let dir = parent_dir(&args.result);
    let (html, csv) = match (args.html, args.csv) {
        (None, None) => (Some(dir.join("report.html")), Some(dir.clone())),
        other => other,
    };
    let mut written = Vec::new();
    if let Some(path) = html {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        report::write_html(&result, &path)?;
        written.push(path);
    }
    if let Some(dir) = csv {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the CSV directory {}", dir.display()))?;
        written.extend(report::write_csv(&result, &dir)?);
    }
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

pub fn execute_compare(args: CompareArgs) -> anyhow::Result<Exit> {
    let Some(limit) = report::parse_percent(&args.max_regression) else {
        anyhow::bail!(
            "--max-regression {:?} is not a percentage; write it like `10%`",
            args.max_regression
        );
    };
    let base = report::read_result(&args.base).context("cannot read the base result")?;
    let new = report::read_result(&args.new).context("cannot read the new result")?;
    let min_delta = super::parse_duration(&args.min_delta).map_err(|err| {
        anyhow::anyhow!(
            "--min-delta {:?}: {err}; write it like `1ms`",
            args.min_delta
        )
    })?;
    let limits = report::CompareLimits {
        max_regression_percent: limit,
        min_delta_ms: min_delta.as_secs_f64() * 1000.0,
    };
    let comparison = report::compare(&base, &new, limits);
    println!(
        "base {} ({})\nnew  {} ({})\n",
        args.base.display(),
        base.run.started_at,
        args.new.display(),
        new.run.started_at
    );
    print!("{}", comparison.table());
    Ok(if comparison.regressions() > 0 {
        Exit::ThresholdFailed
    } else {
        Exit::Success
    })
}

/// The engine's threshold outcomes as recorded in `result.json`.
pub(crate) fn threshold_results(outcomes: Vec<ThresholdOutcome>) -> Vec<ThresholdResult> {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    outcomes
        .into_iter()
        .map(|o| ThresholdResult {
            expression: o.expression,
            window_ms: o.window.map(ms),
            observed: o
                .observed
                .into_iter()
                .map(|v| ObservedValue {
                    metric: v.metric,
                    value: v.value,
                    unit: v.unit.to_owned(),
                })
                .collect(),
            passed: o.passed,
            strict: o.strict,
            windows_evaluated: o.windows_evaluated,
            windows_failed: o.windows_failed,
            first_failure_offset_ms: o.first_failure_offset.map(ms),
        })
        .collect()
}
