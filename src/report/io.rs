//! Reading and writing `result.json` (atomically: temp file in the same directory, then
//! rename, so a reader never sees half a file) and the result's JSON Schema.

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
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let io_err = |action: &'static str, p: &Path| {
        let p = p.to_owned();
        move |source| ReportError::Io {
            action,
            path: p,
            source,
        }
    };
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("flush", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))
    })();
    if result.is_err() {
        // Best effort: don't leave the temp file behind; the original error is what matters.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a `result.json`, checking its format tag first so an unknown version gets a clear
/// message rather than a field-by-field complaint.
pub fn read_result(path: &Path) -> Result<RunResult, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: path.to_owned(),
            source,
        })?;
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != super::FORMAT_V1 {
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
