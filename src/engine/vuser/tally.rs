//! A benchmark diagnostic, off unless asked for: when the environment variable
//! `CHATLOAD_VUSER_TALLY` names a file, every vuser appends one line when it ends: the number
//! of expects it completed (its round trips) and the seconds from its first to its last one.
//! `bench/suite.py` reads it for the fairness spread (max ÷ min round trips per second per
//! vuser: a rate, because vusers connect one after another and would otherwise differ by
//! their start). Nothing here is on the per-message path: a vuser counts into plain fields
//! and writes once, at its end.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The variable naming the file (appended to, created if missing).
pub const TALLY_ENV: &str = "CHATLOAD_VUSER_TALLY";

static SINK: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// The open file, if the variable is set and the file can be opened (checked once).
fn sink() -> Option<&'static Mutex<File>> {
    SINK.get_or_init(|| {
        let path = std::env::var_os(TALLY_ENV)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    })
    .as_ref()
}

/// Appends one vuser's completed expects and the seconds they spanned, when the tally is on.
pub(crate) fn write(expects: u64, span: std::time::Duration) {
    if let Some(file) = sink()
        && let Ok(mut file) = file.lock()
    {
        // A diagnostic: a failed write loses a line, never the run.
        let _ = writeln!(file, "{expects} {:.6}", span.as_secs_f64());
    }
}
