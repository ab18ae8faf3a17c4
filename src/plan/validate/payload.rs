//! Reading payload CSV files at validation time, so a missing file or a ragged row is a plan
//! problem, and the engine gets rows ready to use.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::super::problem::{Collector, Seg, key};
use super::super::raw::{RawOrder, RawPayload};
use super::super::resolved::{Payload, PayloadOrder};

/// Payload files larger than this are refused: rows are held in memory.
const MAX_PAYLOAD_BYTES: u64 = 256 << 20;

/// Checks the options, reads the rows and names their columns, each step stopping at the
/// first problem.
pub(super) fn read(
    out: &mut Collector<'_>,
    at: &[Seg],
    base_dir: &Path,
    raw: &RawPayload,
) -> Option<Payload> {
    let load_all_as = load_all_as(out, at, raw)?;
    let delimiter = delimiter(out, at, raw.delimiter.as_deref())?;
    let path = base_dir.join(&raw.path);
    let path_at = key(at, "path");
    check_size(out, &path_at, &path, raw)?;
    let records = records(out, &path_at, &path, raw, delimiter)?;
    let skip_empty = raw.skip_empty_lines.unwrap_or(false);
    let mut rows = records
        .into_iter()
        .enumerate()
        .filter(|(_, r)| !(skip_empty && r.iter().all(|c| c.trim().is_empty())));
    let fields = fields(out, at, raw, &mut rows)?;
    let data = cast_rows(out, &path_at, raw, fields.len(), rows)?;
    Some(Payload {
        path,
        fields,
        order: match raw.order {
            // Artillery's default.
            Some(RawOrder::Sequence) => PayloadOrder::Sequence,
            _ => PayloadOrder::Random,
        },
        load_all_as,
        rows: Arc::new(data),
    })
}

/// `loadAll: true` and `name` go together: the variable that holds every row, if any.
fn load_all_as(out: &mut Collector<'_>, at: &[Seg], raw: &RawPayload) -> Option<Option<String>> {
    let load_all = raw.load_all.unwrap_or(false);
    if load_all && raw.name.is_none() {
        out.key_error(
            &key(at, "loadAll"),
            "`loadAll` needs `name`: the variable that holds every row",
            None,
        );
        return None;
    }
    if !load_all && raw.name.is_some() {
        out.key_error(
            &key(at, "name"),
            "`name` only applies with `loadAll: true`",
            None,
        );
        return None;
    }
    // Past both checks, `name` is set exactly when `loadAll` is.
    Some(raw.name.clone())
}

/// `delimiter`: one ASCII character, or `\t` spelled out; a comma by default.
fn delimiter(out: &mut Collector<'_>, at: &[Seg], written: Option<&str>) -> Option<u8> {
    match written {
        None => Some(b','),
        Some(d) if d.len() == 1 && d.is_ascii() => {
            Some(d.as_bytes().first().copied().unwrap_or(b','))
        }
        Some("\\t") => Some(b'\t'),
        Some(d) => {
            out.error(
                &key(at, "delimiter"),
                format!("the delimiter `{d}` is not one ASCII character"),
                None,
            );
            None
        }
    }
}

/// The file exists and is small enough to hold in memory.
fn check_size(
    out: &mut Collector<'_>,
    path_at: &[Seg],
    path: &Path,
    raw: &RawPayload,
) -> Option<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_PAYLOAD_BYTES => {
            out.error(
                path_at,
                format!("`{}` is larger than 256 MiB", raw.path),
                None,
            );
            None
        }
        Ok(_) => Some(()),
        Err(err) => {
            out.error(
                path_at,
                format!("payload file `{}` cannot be read: {err}", raw.path),
                Some(format!(
                    "looked for {}; payload paths are relative to the plan file",
                    path.display()
                )),
            );
            None
        }
    }
}

/// Every CSV record of the file, header included. Rows may differ in length here: that is
/// reported against `fields` later, with the row's number.
fn records(
    out: &mut Collector<'_>,
    path_at: &[Seg],
    path: &Path,
    raw: &RawPayload,
    delimiter: u8,
) -> Option<Vec<csv::StringRecord>> {
    let mut reader = match csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_path(path)
    {
        Ok(r) => r,
        Err(err) => {
            out.error(path_at, format!("payload file `{}`: {err}", raw.path), None);
            return None;
        }
    };
    let mut records = Vec::new();
    for (i, record) in reader.records().enumerate() {
        match record {
            Ok(r) => records.push(r),
            Err(err) => {
                out.error(
                    path_at,
                    format!("`{}` row {}: {err}", raw.path, i + 1),
                    None,
                );
                return None;
            }
        }
    }
    Some(records)
}

/// The column names: `fields` (skipping the file's header with `skipHeader`), else the
/// first row. Takes the header off `rows`.
fn fields(
    out: &mut Collector<'_>,
    at: &[Seg],
    raw: &RawPayload,
    rows: &mut impl Iterator<Item = (usize, csv::StringRecord)>,
) -> Option<Vec<String>> {
    let fields: Vec<String> = match &raw.fields {
        Some(f) => {
            if raw.skip_header.unwrap_or(false) {
                rows.next();
            }
            f.clone()
        }
        None => match rows.next() {
            Some((_, header)) => header.iter().map(|c| c.trim().to_owned()).collect(),
            None => Vec::new(),
        },
    };
    if fields.is_empty() || fields.iter().any(String::is_empty) {
        out.error(
            at,
            format!(
                "`{}` has no usable header: list the columns in `fields`",
                raw.path
            ),
            None,
        );
        return None;
    }
    Some(fields)
}

/// The data rows as values (cast with `cast: true`), each as wide as the header; at least one.
fn cast_rows(
    out: &mut Collector<'_>,
    path_at: &[Seg],
    raw: &RawPayload,
    width: usize,
    rows: impl Iterator<Item = (usize, csv::StringRecord)>,
) -> Option<Vec<Vec<Value>>> {
    let cast = raw.cast.unwrap_or(false);
    let mut data = Vec::new();
    for (line, record) in rows {
        if record.len() != width {
            out.error(
                path_at,
                format!(
                    "`{}` row {} has {} cells but `fields` names {}",
                    raw.path,
                    line + 1,
                    record.len(),
                    width
                ),
                Some("fix the row, or set `skipEmptyLines: true` for blank lines".to_owned()),
            );
            return None;
        }
        data.push(record.iter().map(|c| cell(c, cast)).collect::<Vec<_>>());
    }
    if data.is_empty() {
        out.error(
            path_at,
            format!("payload file `{}` has no rows", raw.path),
            None,
        );
        return None;
    }
    Some(data)
}

fn cell(text: &str, cast: bool) -> Value {
    if cast {
        if let Ok(i) = text.trim().parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(f) = text.trim().parse::<f64>()
            && f.is_finite()
        {
            return Value::from(f);
        }
        match text.trim() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text.to_owned())
}
