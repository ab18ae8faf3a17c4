//! Reading payload CSV files at validation time, so a missing file or a ragged row is a plan
//! problem, and the engine gets rows ready to use. The file is streamed once with its bytes
//! and rows bounded while reading (never trusting the size the file system reports), and only
//! regular files are read.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::super::problem::{Collector, Seg, key};
use super::super::raw::{RawOrder, RawPayload};
use super::super::resolved::{Payload, PayloadOrder};
use super::super::rows::Rows;

/// Most bytes read from one payload file: rows are held in memory. Counted while reading, so
/// a device or a growing file that reports no size stops here too.
const MAX_PAYLOAD_BYTES: u64 = 256 << 20;

/// Most data rows kept from one payload file.
const MAX_PAYLOAD_ROWS: usize = 20_000_000;

/// Checks the options, then streams the file once: header, row widths and the bounds, each
/// stopping at the first problem.
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
    let file = open_regular(out, &path_at, &path, raw)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(file.take(MAX_PAYLOAD_BYTES + 1));
    let skip_empty = raw.skip_empty_lines.unwrap_or(false);
    let mut records = reader.records().enumerate().filter(|(_, r)| {
        !(skip_empty
            && r.as_ref()
                .is_ok_and(|r| r.iter().all(|c| c.trim().is_empty())))
    });
    let fields = fields(out, at, &path_at, raw, &mut records)?;
    let rows = rows(out, &path_at, raw, fields.len(), &mut records)?;
    drop(records);
    if reader.position().byte() > MAX_PAYLOAD_BYTES {
        too_large(out, &path_at, raw);
        return None;
    }
    if rows.is_empty() {
        out.error(
            &path_at,
            format!("payload file `{}` has no rows", raw.path),
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
        load_all_as,
        rows: Arc::new(rows),
    })
}

fn too_large(out: &mut Collector<'_>, path_at: &[Seg], raw: &RawPayload) {
    out.error(
        path_at,
        format!(
            "`{}` is larger than {} MiB: payload rows are held in memory",
            raw.path,
            MAX_PAYLOAD_BYTES >> 20
        ),
        Some("split the file, or keep only the rows the test needs".to_owned()),
    );
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

/// Opens the payload file, refusing anything but a regular file: a device (`/dev/zero`)
/// never ends and a FIFO would block the open itself.
fn open_regular(
    out: &mut Collector<'_>,
    path_at: &[Seg],
    path: &Path,
    raw: &RawPayload,
) -> Option<std::fs::File> {
    let cannot_read = |out: &mut Collector<'_>, err: std::io::Error| {
        out.error(
            path_at,
            format!("payload file `{}` cannot be read: {err}", raw.path),
            Some(format!(
                "looked for {}; payload paths are relative to the plan file",
                path.display()
            )),
        );
    };
    let not_regular = |out: &mut Collector<'_>| {
        out.error(
            path_at,
            format!("payload `{}` is not a regular file", raw.path),
            Some("point `path` at a CSV file (devices, pipes and folders are refused)".to_owned()),
        );
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            not_regular(out);
            return None;
        }
        Ok(_) => {}
        Err(err) => {
            cannot_read(out, err);
            return None;
        }
    }
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) => {
            cannot_read(out, err);
            return None;
        }
    };
    // The path may have been swapped between the two looks: judge what was opened.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        not_regular(out);
        return None;
    }
    Some(file)
}

/// One record or the problem reading it, with its 0-based line.
type Record = (usize, csv::Result<csv::StringRecord>);

/// The record itself, or the problem reported at the payload's `path`.
fn record(
    out: &mut Collector<'_>,
    path_at: &[Seg],
    raw: &RawPayload,
    (line, record): Record,
) -> Option<(usize, csv::StringRecord)> {
    match record {
        Ok(r) => Some((line, r)),
        Err(err) => {
            out.error(
                path_at,
                format!("`{}` row {}: {err}", raw.path, line + 1),
                None,
            );
            None
        }
    }
}

/// The column names: `fields` (skipping the file's header with `skipHeader`), else the
/// first row. Takes the header off `rows`.
fn fields(
    out: &mut Collector<'_>,
    at: &[Seg],
    path_at: &[Seg],
    raw: &RawPayload,
    records: &mut impl Iterator<Item = Record>,
) -> Option<Vec<String>> {
    let fields: Vec<String> = match &raw.fields {
        Some(f) => {
            if raw.skip_header.unwrap_or(false)
                && let Some(header) = records.next()
            {
                record(out, path_at, raw, header)?;
            }
            f.clone()
        }
        None => match records.next() {
            Some(header) => {
                let (_, header) = record(out, path_at, raw, header)?;
                header.iter().map(|c| c.trim().to_owned()).collect()
            }
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

/// The data rows, each as wide as the header, stored compactly (cast on use).
fn rows(
    out: &mut Collector<'_>,
    path_at: &[Seg],
    raw: &RawPayload,
    width: usize,
    records: impl Iterator<Item = Record>,
) -> Option<Rows> {
    let mut rows = Rows::new(raw.cast.unwrap_or(false));
    for next in records {
        let (line, record) = record(out, path_at, raw, next)?;
        if record.len() != width {
            // The byte cap cuts the last row short: say that, not "ragged".
            if record
                .position()
                .is_some_and(|p| p.byte() >= MAX_PAYLOAD_BYTES)
            {
                too_large(out, path_at, raw);
                return None;
            }
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
        if rows.len() >= MAX_PAYLOAD_ROWS {
            out.error(
                path_at,
                format!(
                    "`{}` has more than {MAX_PAYLOAD_ROWS} rows: payload rows are held in memory",
                    raw.path
                ),
                Some("split the file, or keep only the rows the test needs".to_owned()),
            );
            return None;
        }
        if rows.push(record.iter()).is_err() {
            too_large(out, path_at, raw);
            return None;
        }
    }
    Some(rows)
}
