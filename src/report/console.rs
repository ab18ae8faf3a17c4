//! The final console summary of a run: latency table, counters, gauges, errors by kind,
//! phases, scenarios, thresholds and warnings. Plain text, no colours (the caller decides
//! about the terminal).

use std::fmt::Write as _;

use crate::metrics::PeriodSummary;
use crate::vocab::Stat;
use crate::vocab::names::ERRORS_PREFIX;

use super::model::RunResult;

/// A readable final table for the terminal.
pub fn summary_table(result: &RunResult) -> String {
    let mut out = String::new();
    let run = &result.run;
    let path = run
        .plan_path
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let _ = writeln!(out, "chatload · {}{path} → {}", run.plan_name, run.target);
    let mut status = format!(
        "started {} · duration {} · exit {}",
        run.started_at,
        format_duration_ms(run.duration_ms),
        run.exit_code
    );
    // Shown with --quiet too: the seed is what it takes to replay the run.
    if let Some(seed) = run.seed {
        let _ = write!(status, " · seed {seed}");
    }
    if run.interrupted {
        status.push_str(" · interrupted (partial results)");
    }
    if run.aborted {
        status.push_str(" · aborted");
        if let Some(reason) = &run.abort_reason {
            let _ = write!(status, ": {reason}");
        }
    }
    let _ = writeln!(out, "{status}");
    let _ = writeln!(out, "verdict: {}", result.verdict().label());

    let agg = &result.aggregate;
    out.push('\n');
    out.push_str(&latency_table(agg));
    out.push('\n');
    out.push_str(&counter_table(agg));
    if !agg.gauges.is_empty() {
        out.push('\n');
        let rows = agg
            .gauges
            .iter()
            .map(|(name, g)| vec![name.clone(), g.max.to_string(), g.last.to_string()])
            .collect();
        out.push_str(&table(&["gauges", "max sampled", "at end"], rows));
    }
    out.push('\n');
    out.push_str(&error_lines(agg));
    out.push_str(&super::errors::console_lines(result));

    if !result.phases.is_empty() {
        out.push('\n');
        let rows = result
            .phases
            .iter()
            .map(|p| {
                let s = &p.summary;
                vec![
                    p.name.clone(),
                    format_duration_ms(p.start_offset_ms),
                    format_duration_ms(p.end_offset_ms.saturating_sub(p.start_offset_ms)),
                    // Created: started in this phase; max active: the most alive at once
                    // (a closed-model hold creates few but keeps many).
                    count(s, "vusers.created"),
                    s.gauges
                        .get("vusers.active")
                        .map_or_else(|| "—".to_owned(), |g| g.max.to_string()),
                    count(s, "messages.sent"),
                    s.errors_total().to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "phases",
                "start",
                "length",
                "created",
                "max active",
                "sent",
                "errors",
            ],
            rows,
        ));
    }
    if !result.scenarios.is_empty() {
        out.push('\n');
        let rows = result
            .scenarios
            .iter()
            .map(|s| {
                let get = |k: &str| s.counters.get(k).copied().unwrap_or(0).to_string();
                vec![
                    s.name.clone(),
                    s.weight.to_string(),
                    get("vusers.created"),
                    get("vusers.completed"),
                    get("vusers.failed"),
                    get("messages.sent"),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "scenarios",
                "weight",
                "created",
                "completed",
                "failed",
                "sent",
            ],
            rows,
        ));
    }
    if !result.thresholds.is_empty() {
        out.push_str("\nthresholds\n");
        for t in &result.thresholds {
            let mark = if t.passed { '✓' } else { '✗' };
            let observed = t
                .observed
                .iter()
                .map(|o| match o.value {
                    Some(v) => format!("{} = {}{}", o.metric, fmt_num(v), unit_suffix(&o.unit)),
                    None => format!("{} = no data", o.metric),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut line = format!("  {mark} {}   {observed}", t.expression);
            if let (Some(w), Some(failed), Some(total)) =
                (t.window_ms, t.windows_failed, t.windows_evaluated)
            {
                let _ = write!(
                    line,
                    " (every {}: {failed}/{total} windows failed)",
                    format_duration_ms(w)
                );
            }
            if !t.strict {
                line.push_str(" (not strict)");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if !run.warnings.is_empty() {
        out.push_str("\nwarnings\n");
        for w in &run.warnings {
            let _ = writeln!(out, "  ! {w}");
        }
    }
    out
}

fn latency_table(agg: &PeriodSummary) -> String {
    let stat = |name: &str, stat: Stat| fmt_num(agg.stat(name, stat).unwrap_or(0.0));
    let rows: Vec<Vec<String>> = agg
        .summaries
        .iter()
        .map(|(name, s)| {
            vec![
                name.clone(),
                s.count.to_string(),
                fmt_num(s.min),
                fmt_num(s.p50),
                fmt_num(s.p95),
                fmt_num(s.p99),
                fmt_num(s.max),
                stat(name, Stat::Rate),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "latency: no samples recorded\n".to_owned();
    }
    table(
        &[
            "latency (ms)",
            "count",
            "min",
            "p50",
            "p95",
            "p99",
            "max",
            "rate/s",
        ],
        rows,
    )
}

fn counter_table(agg: &PeriodSummary) -> String {
    let rows: Vec<Vec<String>> = agg
        .counters
        .iter()
        .filter(|(name, _)| !name.starts_with(ERRORS_PREFIX))
        .map(|(name, v)| {
            let rate = agg.rates.get(name).copied().unwrap_or(0.0);
            vec![name.clone(), v.to_string(), fmt_num(rate)]
        })
        .collect();
    if rows.is_empty() {
        return "counters: none\n".to_owned();
    }
    table(&["counters", "total", "rate/s"], rows)
}

fn error_lines(agg: &PeriodSummary) -> String {
    let total = agg.errors_total();
    if total == 0 {
        return "errors: none\n".to_owned();
    }
    let rows = agg
        .counters
        .iter()
        .filter_map(|(name, &v)| {
            let kind = name.strip_prefix(ERRORS_PREFIX)?;
            (v > 0).then(|| vec![format!("  {kind}"), v.to_string()])
        })
        .collect();
    let header = format!(
        "errors: {total} ({}% of operations)",
        fmt_num(agg.error_rate_percent())
    );
    table(&[header.as_str(), ""], rows)
}

fn count(s: &PeriodSummary, name: &str) -> String {
    s.counters.get(name).copied().unwrap_or(0).to_string()
}

fn unit_suffix(unit: &str) -> String {
    match unit {
        "" => String::new(),
        "%" => "%".to_owned(),
        other => format!(" {other}"),
    }
}

/// Three significant decimals at most, no trailing noise: 12.345, 0.5, 1200.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// `850ms`, `12.5s`, `3m 05s`, `1h 02m 03s`.
pub(crate) fn format_duration_ms(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    if secs < 60 {
        return format!("{}s", fmt_num(ms as f64 / 1000.0));
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// Aligns columns: the first left-aligned, the others right-aligned.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            if i == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str).take(columns));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phases_table_says_created_and_max_active() {
        let period = |created: u64, active: i64| -> PeriodSummary {
            serde_json::from_value(serde_json::json!({
                "startMs": 0, "endMs": 1000, "summaries": {}, "rates": {},
                "counters": {"vusers.created": created, "messages.sent": 7},
                "gauges": {"vusers.active": {"last": active, "max": active}},
            }))
            .expect("a period")
        };
        let phase = |index: usize, name: &str, created, active| crate::metrics::PhaseSummary {
            index,
            name: name.into(),
            start_offset_ms: 0,
            end_offset_ms: 1000,
            summary: period(created, active),
        };
        let metrics = crate::metrics::RunMetrics {
            aggregate: period(4, 4),
            intermediate: Vec::new(),
            phases: vec![phase(0, "spawn", 4, 4), phase(1, "hold", 0, 4)],
            scenarios: Vec::new(),
            histograms: Default::default(),
        };
        let info = super::super::RunInfo::new(
            "t",
            "127.0.0.1:1",
            std::time::UNIX_EPOCH,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(2),
        );
        let text = summary_table(&RunResult::new(info, metrics, serde_json::Value::Null));
        let header = text
            .lines()
            .find(|l| l.starts_with("phases"))
            .expect("phases table");
        assert!(
            header.contains("created") && header.contains("max active"),
            "{header}"
        );
        let hold = text
            .lines()
            .find(|l| l.starts_with("hold"))
            .expect("hold row");
        let cells: Vec<&str> = hold.split_whitespace().collect();
        // name, start, length, created, max active, sent, errors
        assert_eq!(cells[3..], ["0", "4", "7", "0"], "{hold}");
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(fmt_num(12.3456), "12.346");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(1200.0), "1200");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(format_duration_ms(850), "850ms");
        assert_eq!(format_duration_ms(12_500), "12.5s");
        assert_eq!(format_duration_ms(185_000), "3m 05s");
        assert_eq!(format_duration_ms(3_723_000), "1h 02m 03s");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["name", "n"],
            vec![
                vec!["a".into(), "1".into()],
                vec!["long name".into(), "100".into()],
            ],
        );
        assert_eq!(t, "name         n\na            1\nlong name  100\n");
    }
}
