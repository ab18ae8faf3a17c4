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

pub(super) fn read(
    out: &mut Collector<'_>,
    at: &[Seg],
    base_dir: &Path,
    raw: &RawPayload,
) -> Option<Payload> {
    let path = base_dir.join(&raw.path);
    let path_at = key(at, "path");
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
    let delimiter = match raw.delimiter.as_deref() {
        None => b',',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes().first().copied().unwrap_or(b','),
        Some("\\t") => b'\t',
        Some(d) => {
            out.error(
                &key(at, "delimiter"),
                format!("the delimiter `{d}` is not one ASCII character"),
                None,
            );
            return None;
        }
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > MAX_PAYLOAD_BYTES => {
            out.error(
                &path_at,
                format!("`{}` is larger than 256 MiB", path.display()),
                None,
            );
            return None;
        }
        Ok(_) => {}
        Err(err) => {
            out.error(
                &path_at,
                format!("payload file `{}` cannot be read: {err}", path.display()),
                Some("payload paths are relative to the plan file".to_owned()),
            );
            return None;
        }
    }
    let mut reader = match csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_path(&path)
    {
        Ok(r) => r,
        Err(err) => {
            out.error(
                &path_at,
                format!("payload file `{}`: {err}", path.display()),
                None,
            );
            return None;
        }
    };
    let mut records = Vec::new();
    for (i, record) in reader.records().enumerate() {
        match record {
            Ok(r) => records.push(r),
            Err(err) => {
                out.error(
                    &path_at,
                    format!("`{}` row {}: {err}", path.display(), i + 1),
                    None,
                );
                return None;
            }
        }
    }
    let skip_empty = raw.skip_empty_lines.unwrap_or(false);
    let mut rows = records
        .into_iter()
        .enumerate()
        .filter(|(_, r)| !(skip_empty && r.iter().all(|c| c.trim().is_empty())));
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
                path.display()
            ),
            None,
        );
        return None;
    }
    let cast = raw.cast.unwrap_or(false);
    let mut data = Vec::new();
    for (line, record) in rows {
        if record.len() != fields.len() {
            out.error(
                &path_at,
                format!(
                    "`{}` row {} has {} cells but `fields` names {}",
                    path.display(),
                    line + 1,
                    record.len(),
                    fields.len()
                ),
                Some("fix the row, or set `skipEmptyLines: true` for blank lines".to_owned()),
            );
            return None;
        }
        data.push(record.iter().map(|c| cell(c, cast)).collect::<Vec<_>>());
    }
    if data.is_empty() {
        out.error(
            &path_at,
            format!("payload file `{}` has no rows", path.display()),
            None,
        );
        return None;
    }
    Some(Payload {
        path,
        fields,
        order: match raw.order {
            // Artillery's default.
            Some(RawOrder::Sequence) => PayloadOrder::Sequence,
            _ => PayloadOrder::Random,
        },
        load_all_as: if load_all { raw.name.clone() } else { None },
        rows: Arc::new(data),
    })
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
