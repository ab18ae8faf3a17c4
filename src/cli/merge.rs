//! `chatload merge RESULT... --out DIR`: the shards' results into one (`report::merge`),
//! `ensure` judged on the merged numbers (`engine::thresholds::judge`), every report format
//! written, and the exit code a single run with these numbers would have had.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use super::{Exit, MergeArgs, ReportFormat};
use crate::engine::thresholds;
use crate::plan::{self, Ensure};
use crate::report::{self, Piece, RunResult};

pub fn execute(args: MergeArgs) -> anyhow::Result<Exit> {
    let mut pieces = Vec::with_capacity(args.results.len());
    for path in &args.results {
        let result = report::read_result(path)?;
        pieces.push(Piece {
            path: path.clone(),
            result,
        });
    }
    let merged = report::merge(&pieces, args.allow_partial)?;
    let ensure = match &args.plan {
        Some(path) => load_ensure(path, None)?,
        None => recorded_ensure(&merged.result)?,
    };
    let mut result = merged.result;
    let start = UNIX_EPOCH + Duration::from_millis(result.run.started_at_ms);
    let outcomes = thresholds::judge(&ensure, start, &merged.intervals, &result.aggregate);
    result.thresholds = super::report::threshold_results(outcomes);
    let exit = match result.verdict().exit_code() {
        0 => Exit::Success,
        130 => Exit::Interrupted,
        _ => Exit::ThresholdFailed,
    };
    result.run.exit_code = exit as i32;

    let formats = if args.format.is_empty() {
        report::Formats {
            json: true,
            csv: true,
            html: true,
        }
    } else {
        report::Formats {
            json: args.format.contains(&ReportFormat::Json),
            csv: args.format.contains(&ReportFormat::Csv),
            html: args.format.contains(&ReportFormat::Html),
        }
    };
    // Never mixed with or written over another run's files.
    report::ensure_empty_dir(&args.out)?;
    report::prepare_outputs(&args.out, formats)
        .context("choose another output directory with --out DIR")?;
    let mut stdout = std::io::stdout().lock();
    let shards = &result.run.merged_shards;
    writeln!(
        stdout,
        "merged {} shard(s) of run {}{}",
        shards.len(),
        result.run.run_id.as_deref().unwrap_or("(no id)"),
        if result.run.partial { " (partial)" } else { "" }
    )?;
    for warning in &result.run.warnings {
        eprintln!("warning: {warning}");
    }
    writeln!(stdout, "{}", report::summary_table(&result))?;
    let written = report::write_reports(&result, &args.out, formats)
        .with_context(|| format!("cannot write the reports into {}", args.out.display()))?;
    if !args.quiet {
        for path in &written {
            writeln!(stdout, "wrote {}", path.display())?;
        }
    }
    Ok(exit)
}

/// The `ensure` of the plan the shards recorded: its text as written, read as if it stood at
/// its recorded path (so relative payload paths resolve as they did for the shards).
fn recorded_ensure(result: &RunResult) -> anyhow::Result<Ensure> {
    let Some(source) = &result.plan_source else {
        return Ok(Ensure::default());
    };
    let path = Path::new(result.run.plan_path.as_deref().unwrap_or("plan.yml"));
    let format = match source.format {
        report::PlanFormat::Yaml => plan::Format::Yaml,
        report::PlanFormat::Toml => plan::Format::Toml,
    };
    load_ensure(path, Some((&source.text, format)))
}

fn load_ensure(path: &Path, text: Option<(&str, plan::Format)>) -> anyhow::Result<Ensure> {
    let loaded = match text {
        Some((text, format)) => plan::load_str(text, path, format),
        None => plan::load(path),
    };
    match loaded {
        Ok(plan) => Ok(plan.ensure),
        Err(problems) => {
            super::check::report_problems(&problems);
            bail!(
                "cannot read the `ensure` of {} to judge the merged result; give the plan with \
                 --plan PLAN",
                path.display()
            )
        }
    }
}
