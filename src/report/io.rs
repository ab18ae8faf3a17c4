//! Reading and writing `result.json` (atomically: a temp file with a random name created
//! exclusively in the same directory, then a rename, so a reader never sees half a file and
//! no planted link is followed) and the result's JSON Schema.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::ReportError;
use super::model::RunResult;

/// The JSON Schema of `result.json` (committed as `schemas/result.schema.json`).
pub fn result_json_schema() -> serde_json::Value {
    schemars::schema_for!(RunResult).to_value()
}

/// Writes `result` as pretty JSON to `path`, atomically. The directory must exist.
pub fn write_result(path: &Path, result: &RunResult) -> Result<(), ReportError> {
    let json = serde_json::to_vec_pretty(result).map_err(|source| ReportError::Serialize {
        path: path.to_owned(),
        source,
    })?;
    write_atomically(path, &json)
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

/// Reads a `result.json`, checking its format tag first so an unknown version gets a clear
/// message rather than a field-by-field complaint.
pub fn read_result(path: &Path) -> Result<RunResult, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    parse_result(&text, path)
}

/// [`read_result`] on text already read; `path` names it in errors.
pub fn parse_result(text: &str, path: &Path) -> Result<RunResult, ReportError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| ReportError::Parse {
            path: path.to_owned(),
            source,
        })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    // v1 differs from v2 only by fields v2 added (all optional), so one model reads both.
    if format != super::FORMAT_V1 && format != super::FORMAT_V2 {
        return Err(ReportError::UnsupportedFormat {
            path: path.to_owned(),
            found: format.to_owned(),
        });
    }
    serde_json::from_value(value).map_err(|source| ReportError::Parse {
        path: path.to_owned(),
        source,
    })
}
