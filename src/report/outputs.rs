//! The run folder: which report files a run writes, checking they can be written before any
//! load is sent ([`prepare_outputs`]), and writing them all at the end ([`write_reports`]).
//!
//! It does not decide where the folder is (the CLI does, from `--out` / `config.report.dir`).

use std::fs;
use std::path::{Path, PathBuf};

use super::ReportError;
use super::model::RunResult;

/// Which report files to write.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Formats {
    /// `result.json`.
    pub json: bool,
    /// `stats.csv`, `history.csv` and `failures.csv`.
    pub csv: bool,
    /// `report.html`.
    pub html: bool,
}

impl Formats {
    pub const ALL: Formats = Formats {
        json: true,
        csv: true,
        html: true,
    };

    /// The files these formats produce in `dir`, in writing order.
    pub fn paths(&self, dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if self.json {
            let result = dir.join("result.json");
            out.push(dir.join(super::stored::sidecar_name(&result)));
            out.push(result);
        }
        if self.csv {
            out.push(dir.join("stats.csv"));
            out.push(dir.join("history.csv"));
            out.push(dir.join("failures.csv"));
        }
        if self.html {
            out.push(dir.join("report.html"));
        }
        out
    }
}

/// How many suffixed names (`-2`, `-3`, ...) [`claim_run_dir`] tries before giving up.
const RUN_DIR_ATTEMPTS: u32 = 1000;

/// Creates a new, empty run folder `parent/base` — or `base-2`, `base-3`, ... when that name
/// is taken. Creating a directory is atomic, so two runs started in the same second (same
/// plan, same timestamp) never share a folder, and an earlier run's folder is never reused.
pub fn claim_run_dir(parent: &Path, base: &str) -> Result<PathBuf, ReportError> {
    fs::create_dir_all(parent).map_err(|source| ReportError::Io {
        action: "create the report directory",
        path: parent.to_owned(),
        source,
    })?;
    let mut last = std::io::Error::other("no attempt made");
    for attempt in 1..=RUN_DIR_ATTEMPTS {
        let name = match attempt {
            1 => base.to_owned(),
            n => format!("{base}-{n}"),
        };
        let dir = parent.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = err,
            Err(source) => {
                return Err(ReportError::Io {
                    action: "create the run folder",
                    path: dir,
                    source,
                });
            }
        }
    }
    Err(ReportError::Io {
        action: "create the run folder",
        path: parent.join(base),
        source: last,
    })
}

/// Fails when `dir` exists and holds anything: an explicit `--out DIR` never silently mixes
/// or replaces an earlier run's files (the CLI offers `--overwrite` for that).
pub fn ensure_empty_dir(dir: &Path) -> Result<(), ReportError> {
    let mut entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Missing: created later. Anything else (a file there): reported by `prepare_outputs`.
        Err(_) => return Ok(()),
    };
    if entries.next().is_some() {
        return Err(ReportError::NotEmpty {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

/// Creates `dir` and checks every output of `formats` can be written there, so a bad path
/// fails before the run instead of after it. Returns the paths that will be written.
///
/// Files are written through a temporary sibling and a rename, so what must hold is: the
/// directory accepts a new file, and no output path is taken by a directory, a read-only
/// file (which a user would be surprised to see replaced) or a symbolic link (never written
/// through).
pub fn prepare_outputs(dir: &Path, formats: Formats) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        action: "create the report directory",
        path: dir.to_owned(),
        source,
    })?;
    // An anonymous file with a random name, created exclusively: no planted link is followed.
    tempfile::tempfile_in(dir).map_err(|source| ReportError::Io {
        action: "write into",
        path: dir.to_owned(),
        source,
    })?;
    let paths = formats.paths(dir);
    for path in &paths {
        super::refuse_symlink(path)?;
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let problem = if meta.is_dir() {
            Some("it is a directory")
        } else if meta.permissions().readonly() {
            Some("it is read-only")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ReportError::Io {
                action: "replace",
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, problem),
            });
        }
    }
    Ok(paths)
}

/// Writes every report of `formats` for `result` into `dir` (which must exist: see
/// [`prepare_outputs`]). Returns the files written.
pub fn write_reports(
    result: &RunResult,
    dir: &Path,
    formats: Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    if formats.json {
        let path = dir.join("result.json");
        written.extend(super::write_result(&path, result)?);
        written.push(path);
    }
    if formats.csv {
        written.extend(super::write_csv(result, dir)?);
    }
    if formats.html {
        let path = dir.join("report.html");
        super::write_html(result, &path)?;
        written.push(path);
    }
    Ok(written)
}
