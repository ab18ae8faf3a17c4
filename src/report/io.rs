//! Reading and writing `result.json` (atomically: a temp file with a random name created
//! exclusively in the same directory, then a rename, so a reader never sees half a file and
//! no planted link is followed) with its histogram sidecar, and the result's JSON Schema.
//!
//! Reading streams the file into the typed model (never the whole text plus a JSON tree at
//! once), so `report` on a large result needs about what the result itself takes.

use std::fs;
use std::io::{BufReader, Write as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReportError;
use super::model::RunResult;
use super::stored::{Stored, attach_sidecar, derive_summaries, encode_sidecar, sidecar_name};

/// The JSON Schema of `result.json` (committed as `schemas/result.schema.json`).
pub fn result_json_schema() -> serde_json::Value {
    schemars::schema_for!(RunResult).to_value()
}

/// Writes `result` as compact JSON to `path`, atomically, with the per-interval histograms
/// in the sidecar next to it (`result.json` → `result.histograms.bin`, written first). The
/// directory must exist. Returns the sidecar's path when one was written (a result without
/// interval histograms, like v1, has none).
pub fn write_result(path: &Path, result: &RunResult) -> Result<Option<PathBuf>, ReportError> {
    let sidecar = encode_sidecar(&result.intermediate, sidecar_name(path))?;
    let reference = match sidecar {
        Some((bytes, reference)) => {
            let sidecar_path = path.with_file_name(&reference.file);
            write_atomically(&sidecar_path, &bytes)?;
            Some((sidecar_path, reference))
        }
        None => None,
    };
    let stored = Stored {
        result,
        sidecar: reference.as_ref().map(|(_, r)| r),
    };
    let json = serde_json::to_vec(&stored).map_err(|source| ReportError::Serialize {
        path: path.to_owned(),
        source,
    })?;
    write_atomically(path, &json)?;
    Ok(reference.map(|(p, _)| p))
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename.
///
/// The temporary file gets a random name and is created with `O_CREAT | O_EXCL` (so a link
/// planted in the folder under a guessable name is never followed or truncated), and `path`
/// itself must not be a symbolic link: chatload replaces its own files, never what a link
/// points to. (The rename replaces a link rather than following it, so a link planted between
/// the check and the rename does not redirect the write either.)
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ReportError::Io {
            action: "write",
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        })?;
    refuse_symlink(path)?;
    let io_err = |action: &'static str, p: &Path| {
        let p = p.to_owned();
        move |source| ReportError::Io {
            action,
            path: p,
            source,
        }
    };
    // Removed on drop, so a failed write leaves nothing behind.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        // As `File::create` would (0666 less the umask), not tempfile's private 0600: a
        // report is meant to be read, by CI artifact stores and web servers too.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&dir)
        .map_err(io_err("create a temporary file in", &dir))?;
    tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err("flush", path))?;
    tmp.persist(path)
        .map_err(|err| io_err("rename into place", path)(err.error))?;
    Ok(())
}

/// Fails when `path` is a symbolic link: files chatload creates are never written through a
/// link (someone else's link in a shared folder would redirect the write to any file the
/// user can write).
pub fn refuse_symlink(path: &Path) -> Result<(), ReportError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(ReportError::Io {
            action: "replace",
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a symbolic link and chatload does not write through links; remove it \
                 or choose another folder",
            ),
        }),
        _ => Ok(()),
    }
}

/// Reads a `result.json` (v1 or v2, compact or pretty, histograms inline or in a sidecar),
/// streaming it into the model. A file of another format gets a clear message rather than a
/// field-by-field complaint.
pub fn read_result(path: &Path) -> Result<RunResult, ReportError> {
    let open = || {
        fs::File::open(path)
            .map(BufReader::new)
            .map_err(|source| ReportError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            })
    };
    match serde_json::from_reader::<_, RunResult>(open()?) {
        Ok(result) => complete(result, path),
        // A second streaming pass that keeps only the tag: is it another format?
        Err(source) => Err(format_error(
            serde_json::from_reader::<_, FormatTag>(open()?).ok(),
            source,
            path,
        )),
    }
}

/// [`read_result`] on text already read; `path` names it in errors and locates the sidecar.
pub fn parse_result(text: &str, path: &Path) -> Result<RunResult, ReportError> {
    match serde_json::from_str::<RunResult>(text) {
        Ok(result) => complete(result, path),
        Err(source) => Err(format_error(
            serde_json::from_str::<FormatTag>(text).ok(),
            source,
            path,
        )),
    }
}

/// Just the `format` of a result file (every other field skipped without being kept).
#[derive(Deserialize)]
struct FormatTag {
    format: Option<serde_json::Value>,
}

/// The error for a file that did not parse: another format when its tag says so (v1 differs
/// from v2 only by fields v2 added, all optional, so one model reads both), else the parse
/// error itself.
fn format_error(tag: Option<FormatTag>, source: serde_json::Error, path: &Path) -> ReportError {
    let known = |f: &str| f == super::FORMAT_V1 || f == super::FORMAT_V2;
    match tag.map(|t| t.format) {
        Some(Some(serde_json::Value::String(f))) if known(&f) => ReportError::Parse {
            path: path.to_owned(),
            source,
        },
        Some(Some(serde_json::Value::String(found))) => ReportError::UnsupportedFormat {
            path: path.to_owned(),
            found,
        },
        Some(_) => ReportError::UnsupportedFormat {
            path: path.to_owned(),
            found: String::new(),
        },
        None => ReportError::Parse {
            path: path.to_owned(),
            source,
        },
    }
}

/// Loads the sidecar's histograms and derives the interval summaries the file left out.
fn complete(mut result: RunResult, path: &Path) -> Result<RunResult, ReportError> {
    if let Some(reference) = result.interval_histograms.take() {
        attach_sidecar(path, &reference, &mut result.intermediate)?;
        derive_summaries(&mut result.intermediate)?;
    }
    Ok(result)
}
