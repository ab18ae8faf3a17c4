//! Where `chatload run` writes its reports: the run folder (chosen and checked before any
//! load is sent) and the writing at the end, with a fallback folder when the chosen one has
//! become unwritable (full disk, folder removed), so a run's results are not lost silently.
//!
//! What the files hold is `report`'s business.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::RunArgs;
use crate::plan::Plan;
use crate::report::{self, Formats, RunResult};

/// Picks and prepares the run folder: `--out DIR` (new or empty unless `--overwrite`), else a
/// fresh `<report.dir>/<plan>-<UTC stamp>` of this run's own. `None` when nothing is written.
pub fn prepare(
    args: &RunArgs,
    plan: &Plan,
    formats: Formats,
    started_ms: u64,
) -> anyhow::Result<Option<PathBuf>> {
    if !(formats.json || formats.csv || formats.html) {
        return Ok(None);
    }
    let dir = match &args.out {
        Some(dir) => {
            if !args.overwrite {
                report::ensure_empty_dir(dir)?;
            }
            dir.clone()
        }
        None => {
            let stamp = report::format_compact_utc(started_ms);
            report::claim_run_dir(&plan.report.dir, &format!("{}-{stamp}", plan.name))
                .context("choose another output directory with --out DIR")?
        }
    };
    report::prepare_outputs(&dir, formats)
        .context("choose another output directory with --out DIR")?;
    Ok(Some(dir))
}

/// How writing the reports went.
pub enum Written {
    /// Into the run folder, as asked.
    Asked(Vec<PathBuf>),
    /// The run folder failed (`error`); the reports went to `fallback` instead.
    Fallback {
        error: String,
        fallback: PathBuf,
        paths: Vec<PathBuf>,
    },
    /// Neither the run folder nor the fallback could be written: only the summary is left.
    Lost { error: String, fallback: String },
}

/// Writes the reports into `dir`; when that fails, into a new folder under `fallback_parent`
/// (the temp directory). `result.run.exit_code` should already say 2 for the fallback case
/// (the caller knows it only afterwards): it is set here before the fallback write.
pub fn write(
    result: &mut RunResult,
    dir: &Path,
    formats: Formats,
    fallback_parent: &Path,
    failed_exit: i32,
) -> Written {
    let error = match report::write_reports(result, dir, formats) {
        Ok(paths) => return Written::Asked(paths),
        Err(err) => format!("cannot write the reports into {}: {err}", dir.display()),
    };
    result.run.exit_code = failed_exit;
    let prefix = format!("chatload-{}-", result.run.plan_name.replace('/', "_"));
    let fallback = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(fallback_parent)
        .map(tempfile::TempDir::keep)
        .map_err(|err| {
            format!(
                "cannot create a folder in {}: {err}",
                fallback_parent.display()
            )
        })
        .and_then(|folder| {
            report::write_reports(result, &folder, formats)
                .map(|paths| (folder, paths))
                .map_err(|err| err.to_string())
        });
    match fallback {
        Ok((fallback, paths)) => Written::Fallback {
            error,
            fallback,
            paths,
        },
        Err(fallback) => Written::Lost { error, fallback },
    }
}
