//! The run's error messages as the reports show them: the console's top messages, the HTML
//! report's errors table per step and scenario (`templates/errors.html.j2`), and Locust's
//! `failures.csv` (`Method,Name,Error,Occurrences`).
//!
//! The messages come from `RunResult::errors` (counted by the engine, bounded there).

use std::fmt::Write as _;

use serde::Serialize;

use super::ReportError;
use super::model::{ErrorEntry, RunResult};
use crate::vocab::names::HTTP_RESPONSE_TIME_PREFIX;

/// How many messages the console summary lists.
const CONSOLE_MESSAGES: usize = 10;

/// Locust's `failures.csv` header, exactly.
pub const FAILURES_HEADER: [&str; 4] = ["Method", "Name", "Error", "Occurrences"];

/// The top error messages for the console summary; empty when the run had none.
pub fn console_lines(result: &RunResult) -> String {
    let mut out = String::new();
    if result.errors.is_empty() {
        return out;
    }
    let _ = writeln!(out, "top error messages");
    let width = result
        .errors
        .iter()
        .take(CONSOLE_MESSAGES)
        .map(|e| e.count.to_string().len())
        .max()
        .unwrap_or(1);
    for e in result.errors.iter().take(CONSOLE_MESSAGES) {
        let _ = writeln!(
            out,
            "  {:>width$} × {} [{}]: {}: {}",
            e.count,
            step_label(e),
            e.scenario,
            e.kind,
            e.message
        );
    }
    let more = result.errors.len().saturating_sub(CONSOLE_MESSAGES);
    if more > 0 {
        let _ = writeln!(out, "  … {more} more in result.json and failures.csv");
    }
    out
}

fn step_label(e: &ErrorEntry) -> &str {
    if e.step.is_empty() {
        "(no step)"
    } else {
        &e.step
    }
}

/// One row of the HTML errors table.
#[derive(Serialize)]
pub(crate) struct ErrorRow {
    step: String,
    method: String,
    scenario: String,
    kind: String,
    message: String,
    count: u64,
}

/// The HTML errors table: one row per message, grouped by step and scenario (steps in the
/// order of their first, most frequent message).
pub(crate) fn html_rows(result: &RunResult) -> Vec<ErrorRow> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    for e in &result.errors {
        let key = (e.step.as_str(), e.scenario.as_str());
        if !order.contains(&key) {
            order.push(key);
        }
    }
    order
        .iter()
        .flat_map(|(step, scenario)| {
            result
                .errors
                .iter()
                .filter(move |e| e.step == *step && e.scenario == *scenario)
        })
        .map(|e| ErrorRow {
            step: step_label(e).to_owned(),
            method: e.method.clone(),
            scenario: e.scenario.clone(),
            kind: e.kind.clone(),
            message: e.message.clone(),
            count: e.count,
        })
        .collect()
}

/// The `failures.csv` bytes: a row per step and message, summed over scenarios (Locust has
/// no scenarios), most frequent first. The error is `kind: message`.
pub fn failures_csv(result: &RunResult) -> Result<Vec<u8>, ReportError> {
    let mut rows: Vec<(String, String, String, u64)> = Vec::new();
    for e in &result.errors {
        let error = format!("{}: {}", e.kind, e.message);
        // An HTTP endpoint is named as in stats.csv: by its own name.
        let name = e
            .step
            .strip_prefix(HTTP_RESPONSE_TIME_PREFIX)
            .unwrap_or(&e.step);
        match rows
            .iter_mut()
            .find(|r| r.0 == e.method && r.1 == name && r.2 == error)
        {
            Some(row) => row.3 += e.count,
            None => rows.push((e.method.clone(), name.to_owned(), error, e.count)),
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.3));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(FAILURES_HEADER).map_err(ReportError::Csv)?;
    for (method, name, error, n) in rows {
        w.write_record([method, name, error, n.to_string()])
            .map_err(ReportError::Csv)?;
    }
    w.into_inner()
        .map_err(|e| ReportError::Csv(csv::Error::from(e.into_error())))
}
