//! Writing [`Totals`] in the Prometheus text format (0.0.4) and in OpenMetrics 1.0.
//!
//! Naming (Prometheus conventions, base units seconds and bytes):
//! - a counter `messages.sent` → `chatload_messages_sent_total`; the families below take the
//!   part after their prefix as a label instead: `errors.<kind>` →
//!   `chatload_errors_total{kind}`, `failures.<step>` → `chatload_failures_total{name}`,
//!   `handled.<name>` → `chatload_handled_total{name}`, `ws.close.<code>` →
//!   `chatload_ws_close_total{code}`;
//! - a gauge `vusers.active` → `chatload_vusers_active`;
//! - a histogram (microseconds inside chatload) → seconds: `connect` →
//!   `chatload_connect_seconds`, `latency.<name>` → `chatload_latency_seconds{name}`.
//!
//! Every series of a family has the same labels: `scenario`, `phase`, `name`, `run_id`,
//! `shard` (empty when not set, which Prometheus treats as absent), plus the family's own.
//! It does not decide what the totals are (`series.rs`).

use std::fmt::Write as _;

use super::buckets::{Buckets, format_float, layout};
use super::series::{RunState, Totals};
use crate::server::ServerCounters;
use crate::vocab::names;

/// Which text format to write.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics only when it names it.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// A chatload metric name turned into a family: its base name, and the label the rest of the
/// name goes into (`kind` for `errors.timeout`).
struct Family {
    base: String,
    label: &'static str,
    value: String,
}

/// Prefixes whose remainder becomes a label value rather than part of the name.
const LABELLED: [(&str, &str, &str); 5] = [
    (names::ERRORS_PREFIX, "errors", "kind"),
    (names::FAILURES_PREFIX, "failures", "name"),
    (names::WS_CLOSE_PREFIX, "ws_close", "code"),
    (names::LATENCY_PREFIX, "latency", "name"),
    ("handled.", "handled", "name"),
];

fn family(metric: &str) -> Family {
    for (prefix, base, label) in LABELLED {
        if let Some(rest) = metric.strip_prefix(prefix) {
            return Family {
                base: format!("chatload_{base}"),
                label,
                value: rest.to_owned(),
            };
        }
    }
    Family {
        base: format!("chatload_{}", sanitize(metric)),
        label: "name",
        value: String::new(),
    }
}

/// A metric name from a chatload name: anything but `[a-zA-Z0-9_]` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The label set of one series, written `{a="x",b="y"}`.
struct LabelSet<'a> {
    scenario: &'a str,
    phase: &'a str,
    family: &'a Family,
    run: &'a RunState,
}

impl LabelSet<'_> {
    fn write(&self, out: &mut String, le: Option<&str>) {
        let _ = write!(
            out,
            "{{scenario=\"{}\",phase=\"{}\"",
            escape(self.scenario),
            escape(self.phase)
        );
        if self.family.label == "name" {
            let _ = write!(out, ",name=\"{}\"", escape(&self.family.value));
        } else {
            let _ = write!(
                out,
                ",name=\"\",{}=\"{}\"",
                self.family.label,
                escape(&self.family.value)
            );
        }
        let _ = write!(
            out,
            ",run_id=\"{}\",shard=\"{}\"",
            escape(&self.run.run_id),
            escape(self.run.shard.as_deref().unwrap_or(""))
        );
        if let Some(le) = le {
            let _ = write!(out, ",le=\"{le}\"");
        }
        out.push('}');
    }
}

/// Writes a `# HELP`/`# TYPE` (and `# UNIT`) header once per family.
struct Headers {
    format: Format,
    last: Option<String>,
}

impl Headers {
    fn write(&mut self, out: &mut String, family: &str, kind: &str, help: &str, unit: &str) {
        if self.last.as_deref() == Some(family) {
            return;
        }
        self.last = Some(family.to_owned());
        let named = match (self.format, kind) {
            (Format::Prometheus, "counter") => format!("{family}_total"),
            _ => family.to_owned(),
        };
        let _ = writeln!(out, "# HELP {named} {help}");
        let _ = writeln!(out, "# TYPE {named} {kind}");
        if self.format == Format::OpenMetrics && !unit.is_empty() {
            let _ = writeln!(out, "# UNIT {named} {unit}");
        }
    }
}

/// The whole exposition.
pub fn render(totals: &Totals, format: Format) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut headers = Headers { format, last: None };
    write_run(&mut out, &mut headers, &totals.run);

    // Sorted by family so each family's lines stay together, as both formats require.
    let mut counters: Vec<(Family, &str, &str, u64)> = Vec::new();
    for ((metric, scenario), per_phase) in &totals.counters {
        for phase in &totals.phases {
            let value = per_phase.get(phase).copied().unwrap_or(0);
            // The graceful stop's series appears only once it counted something.
            if phase.is_empty() && !per_phase.contains_key(phase) {
                continue;
            }
            counters.push((family(metric), scenario, phase, value));
        }
    }
    counters.sort_by(|a, b| a.0.base.cmp(&b.0.base));
    for (family, scenario, phase, value) in &counters {
        let help = format!(
            "chatload counter {}",
            family.base.trim_start_matches("chatload_")
        );
        headers.write(&mut out, &family.base, "counter", &help, "");
        let _ = write!(out, "{}_total", family.base);
        LabelSet {
            scenario,
            phase,
            family,
            run: &totals.run,
        }
        .write(&mut out, None);
        let _ = writeln!(out, " {value}");
    }

    let mut gauges: Vec<(Family, &str, i64)> = totals
        .gauges
        .iter()
        .map(|((metric, scenario), &level)| (family(metric), scenario.as_str(), level))
        .collect();
    gauges.sort_by(|a, b| a.0.base.cmp(&b.0.base));
    for (family, scenario, level) in &gauges {
        let help = format!(
            "chatload gauge {}",
            family.base.trim_start_matches("chatload_")
        );
        headers.write(&mut out, &family.base, "gauge", &help, "");
        out.push_str(&family.base);
        LabelSet {
            scenario,
            phase: &totals.current_phase,
            family,
            run: &totals.run,
        }
        .write(&mut out, None);
        let _ = writeln!(out, " {level}");
    }

    let mut histograms: Vec<(Family, &str, &str, &Buckets)> = totals
        .histograms
        .iter()
        .map(|(key, buckets)| {
            let mut family = family(&key.metric);
            family.base.push_str("_seconds");
            (family, key.scenario.as_str(), key.phase.as_str(), buckets)
        })
        .collect();
    histograms.sort_by(|a, b| a.0.base.cmp(&b.0.base));
    for (family, scenario, phase, buckets) in &histograms {
        let help = format!(
            "chatload latency histogram {}, seconds",
            family
                .base
                .trim_start_matches("chatload_")
                .trim_end_matches("_seconds")
        );
        // No `# UNIT` on histograms: the name already ends in `_seconds`, and some parsers
        // refuse the line on a histogram.
        headers.write(&mut out, &family.base, "histogram", &help, "");
        let labels = LabelSet {
            scenario,
            phase,
            family,
            run: &totals.run,
        };
        write_histogram(&mut out, &family.base, &labels, buckets);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn write_histogram(out: &mut String, base: &str, labels: &LabelSet<'_>, buckets: &Buckets) {
    let bounds = &layout().labels;
    let mut cumulative = 0u64;
    for (i, &count) in buckets.counts.iter().enumerate() {
        cumulative = cumulative.saturating_add(count);
        let le = bounds.get(i).map(String::as_str).unwrap_or("+Inf");
        let _ = write!(out, "{base}_bucket");
        labels.write(out, Some(le));
        let _ = writeln!(out, " {cumulative}");
    }
    let _ = write!(out, "{base}_sum");
    labels.write(out, None);
    let _ = writeln!(out, " {}", format_float(buckets.sum_us / 1e6));
    let _ = write!(out, "{base}_count");
    labels.write(out, None);
    let _ = writeln!(out, " {cumulative}");
}

/// The run's own gauges: its clock and whether the generator keeps up.
fn write_run(out: &mut String, headers: &mut Headers, run: &RunState) {
    let labels = format!(
        "{{run_id=\"{}\",shard=\"{}\"}}",
        escape(&run.run_id),
        escape(run.shard.as_deref().unwrap_or(""))
    );
    let gauges = [
        (
            "chatload_elapsed_seconds",
            "time since the run started, seconds",
            "seconds",
            format_float(run.elapsed.as_secs_f64()),
        ),
        (
            "chatload_planned_seconds",
            "planned length of all phases, seconds",
            "seconds",
            format_float(run.planned.as_secs_f64()),
        ),
        (
            "chatload_generator_overloaded",
            "1 when the last interval's schedule lag p99 was over the warning level",
            "",
            u8::from(run.generator_overloaded).to_string(),
        ),
    ];
    for (name, help, unit, value) in gauges {
        headers.write(out, name, "gauge", help, unit);
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The reference server's counters (`serve --metrics-listen`), in the same conventions.
pub fn render_server(counters: &ServerCounters, format: Format) -> String {
    let mut out = String::with_capacity(2048);
    let mut headers = Headers { format, last: None };
    let totals = [
        (
            "chatload_server_connections",
            "connections accepted",
            counters.connections,
        ),
        (
            "chatload_server_commands",
            "commands received",
            counters.commands,
        ),
        (
            "chatload_server_command_errors",
            "commands refused with ERR (unparsable)",
            counters.command_errors,
        ),
        (
            "chatload_server_messages_sent",
            "messages written to clients (replies, room messages, whispers)",
            counters.messages_sent,
        ),
        (
            "chatload_server_sent_bytes",
            "bytes of the messages written to clients",
            counters.bytes_sent,
        ),
    ];
    for (family, help, value) in totals {
        headers.write(&mut out, family, "counter", help, "");
        let _ = writeln!(out, "{family}_total {value}");
    }
    headers.write(
        &mut out,
        "chatload_server_clients",
        "gauge",
        "clients connected",
        "",
    );
    let _ = writeln!(out, "chatload_server_clients {}", counters.clients);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}
