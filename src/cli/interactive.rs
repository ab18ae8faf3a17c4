//! `run --interactive`: a console on stdin while the run goes. One command per line:
//! `scale N`, `stats`, `export FILE`, `broadcast TEXT`, `stop`, `help`. Replies are printed on
//! their own lines through the run's display, so the live status line (stderr) is cleared
//! first and redrawn after.
//!
//! stdin is read on a plain thread (a blocking read must not hold the async runtime up at
//! exit); the end of stdin ends the console, not the run. What the commands do is
//! `engine::RunControl`'s.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::{Progress, RunControl};
use crate::metrics::PeriodSummary;
use crate::report::{self, RunInfo, RunResult};
use crate::vocab::names;

/// Prints one reply line (without disturbing the status line).
pub(super) type SayFn = Arc<dyn Fn(&str) + Send + Sync>;

/// What an `export` needs besides the metrics so far.
#[derive(Clone)]
pub(super) struct ExportInfo {
    pub plan_name: String,
    pub plan_path: String,
    pub target: String,
    pub seed: u64,
    pub plan_json: serde_json::Value,
}

const HELP: &str = "commands: scale N (closed-model vusers for this phase) · stats · \
                    export FILE (results so far as result.json) · broadcast TEXT (every \
                    connected vuser sends TEXT) · stop (end the run, keep the results) · help";

/// Starts reading commands; the task ends with stdin or when aborted.
pub(super) fn start(control: RunControl, info: ExportInfo, say: SayFn) -> JoinHandle<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    say("interactive: type `help` for commands");
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            for reply in execute(&control, &info, line) {
                say(&reply);
            }
        }
    })
}

/// Runs one command line and returns the lines to print.
pub(super) fn execute(control: &RunControl, info: &ExportInfo, line: &str) -> Vec<String> {
    let (command, rest) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(c, r)| (c, r.trim()));
    match command {
        "help" | "?" => vec![HELP.to_owned()],
        "stats" => match control.latest() {
            Some(p) => stats_lines(&p),
            None => vec!["stats: no interval has finished yet".to_owned()],
        },
        "scale" => match rest.parse::<u64>() {
            Ok(n) => match control.scale(n) {
                Ok(()) => vec![format!("scale: holding {n} vusers until this phase ends")],
                Err(err) => vec![format!("scale: {err}")],
            },
            Err(_) => vec![format!(
                "scale: expected a number of vusers, e.g. `scale 50`, not {rest:?}"
            )],
        },
        "broadcast" if rest.is_empty() => {
            vec!["broadcast: give the text to send, e.g. `broadcast SAY hello`".to_owned()]
        }
        "broadcast" => {
            let n = control.broadcast(rest);
            vec![format!("broadcast: handed to {n} vusers")]
        }
        "export" if rest.is_empty() => {
            vec!["export: give a file name, e.g. `export partial.json`".to_owned()]
        }
        "export" => match export(control, info, Path::new(rest)) {
            // The interval histograms live beside the JSON; name both so they travel together.
            Ok(Some(sidecar)) => vec![format!(
                "export: wrote {rest} and {} (keep them together)",
                sidecar.display()
            )],
            Ok(None) => vec![format!("export: wrote {rest}")],
            Err(err) => vec![format!("export: {err:#}")],
        },
        "stop" | "quit" => {
            control.stop();
            vec!["stop: retiring vusers, then writing the results".to_owned()]
        }
        other => vec![format!("unknown command `{other}`; {HELP}")],
    }
}

/// Writes the results so far as a result.json (marked as a partial export); the path of its
/// histogram sidecar when one was written.
fn export(
    control: &RunControl,
    info: &ExportInfo,
    path: &Path,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let partial = control.partial()?;
    let mut run = RunInfo::new(
        &info.plan_name,
        &info.target,
        partial.started_at,
        std::time::SystemTime::now(),
    );
    run.plan_path = Some(info.plan_path.clone());
    run.seed = Some(info.seed);
    run.warnings
        .push("partial export from the interactive console: the run was still going".to_owned());
    let result = RunResult::new(run, partial.metrics, info.plan_json.clone());
    Ok(report::write_result(path, &result)?)
}

fn stats_lines(p: &Progress) -> Vec<String> {
    let i = &p.interval;
    let active = i.gauges.get(names::VUSERS_ACTIVE).map_or(0, |g| g.last);
    let rate = |name: &str| i.rates.get(name).copied().unwrap_or(0.0);
    let mut lines = vec![format!(
        "stats at {:.1} s · {} · {active} vusers · {:.0} msg/s out, {:.0} in · errors {:.2} %",
        p.elapsed.as_secs_f64(),
        p.phase.as_deref().unwrap_or("stopping"),
        rate(names::MESSAGES_SENT),
        rate(names::MESSAGES_RECEIVED),
        i.error_rate_percent(),
    )];
    lines.extend(latency_lines("  last interval", i));
    if let Some(total) = &p.aggregate {
        lines.extend(latency_lines("  whole run", total));
    }
    lines
}

fn latency_lines(label: &str, summary: &PeriodSummary) -> Vec<String> {
    summary
        .summaries
        .iter()
        .filter(|(name, _)| name.starts_with(names::LATENCY_PREFIX))
        .map(|(name, s)| {
            format!(
                "{label} {name}: n {} · p50 {:.1} · p95 {:.1} · p99 {:.1} · max {:.1} ms",
                s.count, s.p50, s.p95, s.p99, s.max
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ExportInfo {
        ExportInfo {
            plan_name: "t".into(),
            plan_path: "t.yml".into(),
            target: "127.0.0.1:1".into(),
            seed: 1,
            plan_json: serde_json::Value::Null,
        }
    }

    #[test]
    fn commands_answer_on_their_own_lines_and_bad_input_says_how_to_fix_it() {
        let control = RunControl::new();
        let said = |line: &str| execute(&control, &info(), line).join("\n");
        assert!(said("help").contains("broadcast TEXT"));
        assert!(said("scale x").contains("expected a number"));
        assert!(
            said("scale 5").contains("not started"),
            "{}",
            said("scale 5")
        );
        assert!(said("stats").contains("no interval"));
        assert!(said("export").contains("file name"));
        assert!(said("export x.json").contains("not started"));
        assert!(said("broadcast hi").contains("0 vusers"));
        assert!(said("frobnicate").contains("unknown command `frobnicate`"));
        assert!(said("stop").contains("retiring"));
        assert!(control.is_stopped());
    }
}
