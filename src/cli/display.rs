//! The terminal display of a run: the live status line on a TTY, a compact line every 10 s,
//! loud warnings when the generator falls behind, and `log` / console lines printed above the
//! status line. The end-of-run summary table is `report::console`'s.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::engine::Progress;
use crate::metrics::PeriodSummary;
use crate::vocab::names;

const COMPACT_EVERY: Duration = Duration::from_secs(10);

/// The terminal display: a live status line on a TTY, a compact line every 10 s, loud
/// warnings when the generator falls behind.
pub(super) struct Display {
    quiet: bool,
    tty: bool,
    /// The status line on screen (cleared before other output, redrawn after it).
    line_shown: Option<String>,
    last_compact: Duration,
    last_warning: Option<Duration>,
}

impl Display {
    pub(super) fn new(quiet: bool) -> Self {
        Display {
            quiet,
            tty: std::io::stderr().is_terminal(),
            line_shown: None,
            last_compact: Duration::ZERO,
            last_warning: None,
        }
    }

    pub(super) fn show(&mut self, p: &Progress) {
        let mut err = std::io::stderr().lock();
        if let Some(breach) = &p.breach {
            // Shown even with --quiet: the run is about to stop early.
            self.clear(&mut err);
            let _ = writeln!(
                err,
                "ABORTING (abortOnFail): {} — stopping the run",
                breach.describe()
            );
        }
        if self.quiet {
            return;
        }
        if p.generator_overloaded
            && self
                .last_warning
                .is_none_or(|at| p.elapsed.saturating_sub(at) >= COMPACT_EVERY)
        {
            self.clear(&mut err);
            let lag = p
                .interval
                .summaries
                .get(names::SCHEDULE_LAG)
                .map_or(0.0, |s| s.p99);
            let _ = writeln!(
                err,
                "WARNING: the load generator cannot keep up (schedule.lag p99 {lag:.0} ms): \
                 the server is getting less load than planned"
            );
            self.last_warning = Some(p.elapsed);
        }
        let line = status_line(p);
        if p.elapsed.saturating_sub(self.last_compact) >= COMPACT_EVERY {
            self.clear(&mut err);
            let _ = writeln!(err, "{line}");
            self.last_compact = p.elapsed;
        } else if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.line_shown = Some(line);
        }
        let _ = err.flush();
    }

    fn clear(&mut self, err: &mut impl Write) {
        if self.line_shown.take().is_some() {
            let _ = write!(err, "\r\x1b[2K");
        }
    }

    /// A `log` step's line, printed even with --quiet (the plan asked for it), above the
    /// status line.
    pub(super) fn log(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let shown = self.line_shown.take();
        if shown.is_some() {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{line}");
        if let Some(status) = shown {
            let _ = write!(err, "{status}");
            self.line_shown = Some(status);
        }
        let _ = err.flush();
    }

    /// A reply of the interactive console, on stdout on its own line, above the status line.
    pub(super) fn say(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let shown = self.line_shown.take();
        if shown.is_some() {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if let Some(status) = shown {
            let _ = write!(err, "{status}");
            let _ = err.flush();
            self.line_shown = Some(status);
        }
    }

    pub(super) fn finish(&mut self) {
        let mut err = std::io::stderr().lock();
        self.clear(&mut err);
        let _ = err.flush();
    }
}

/// `[0:12/0:25] ramp · 14 vusers · 120 msg/s · p95 12.3 ms · 0 errors`.
fn status_line(p: &Progress) -> String {
    let interval = &p.interval;
    let phase = p.phase.as_deref().unwrap_or("stopping");
    let active = interval
        .gauges
        .get(names::VUSERS_ACTIVE)
        .map_or(0, |g| g.last);
    let sent = interval
        .rates
        .get(names::MESSAGES_SENT)
        .copied()
        .unwrap_or(0.0);
    let received = interval
        .rates
        .get(names::MESSAGES_RECEIVED)
        .copied()
        .unwrap_or(0.0);
    let p95 = worst_latency_p95(interval)
        .map(|ms| format!("p95 {ms:.1} ms"))
        .unwrap_or_else(|| "p95 -".to_owned());
    let errors = p.aggregate.as_ref().map_or(0, PeriodSummary::errors_total);
    // Adaptive runs have no planned length: show only how long they have been going.
    let time = if p.total.is_zero() {
        clock(p.elapsed)
    } else {
        format!("{}/{}", clock(p.elapsed), clock(p.total))
    };
    format!(
        "[{time}] {phase} · {active} vusers · {sent:.0} msg/s out, {received:.0} in · {p95} · \
         {errors} errors"
    )
}

fn worst_latency_p95(summary: &PeriodSummary) -> Option<f64> {
    summary
        .summaries
        .iter()
        .filter(|(name, _)| name.starts_with(names::LATENCY_PREFIX))
        .map(|(_, s)| s.p95)
        .reduce(f64::max)
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        assert_eq!(clock(Duration::from_secs(125)), "2:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
