//! Helpers shared by the test modules: the reference server on port 0, plans loaded from YAML,
//! bounded in-process runs, the aggregate's counters, and runs of the real binary.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use chatload::engine::{self, RunOptions, RunOutcome};
use chatload::metrics::PeriodSummary;
use chatload::plan::{
    self, Defaults, Ensure, Expect, Format, Load, Plan, Reconnect, ReportConfig, Scenario, Step,
    Target, Templates,
};
use chatload::protocol::CodecConfig;
use chatload::protocol::Matcher;
use chatload::server::{self, ServerConfig, ServerHandle};

/// Starts the reference server with `config` on port 0.
pub(crate) async fn serve(config: ServerConfig) -> ServerHandle {
    server::spawn(config).await.expect("server starts")
}

/// An expectation of a reply matching the regex `pattern`, timed as the metric `metric`.
pub(crate) fn expect_match(pattern: &str, metric: &str) -> Expect {
    Expect {
        matcher: Matcher::regex(regex::Regex::new(pattern).expect("the pattern is a regex")),
        template: None,
        types: None,
        decode: Vec::new(),
        timeout: None,
        captures: Vec::new(),
        metric: metric.into(),
        strict: false,
    }
}

/// Starts the reference server with its demo HTTP API (`chatload serve --http`) on port 0.
pub(crate) async fn demo() -> ServerHandle {
    serve(ServerConfig {
        http: true,
        ..ServerConfig::default()
    })
    .await
}

/// Loads the YAML plan `text` as if read from `path`; panics listing its problems if it does not.
pub(crate) fn yaml_plan(text: &str, path: &Path) -> Plan {
    plan::load_str(text, path, Format::Yaml)
        .unwrap_or_else(|problems| panic!("the plan should load: {problems}"))
}

/// Loads the YAML plan `text` as the file `plan.yml` in `dir`, where its relative paths resolve.
pub(crate) fn load_in(text: &str, dir: &Path) -> Plan {
    yaml_plan(text, &dir.join("plan.yml"))
}

/// Runs `plan` against `target` with the default options, bounded like [`run_at`].
pub(crate) async fn run_plan(plan: Plan, target: &str) -> RunOutcome {
    run_at(plan, target, RunOptions::default()).await
}

/// Runs `plan` against `target` with `options`; a run that does not end in 60 s fails the test.
pub(crate) async fn run_at(plan: Plan, target: &str, options: RunOptions) -> RunOutcome {
    run_within(Duration::from_secs(60), plan, target, options).await
}

/// Runs `plan` against `target` with `options`; a run that does not end in `limit` fails the test.
pub(crate) async fn run_within(
    limit: Duration,
    plan: Plan,
    target: &str,
    options: RunOptions,
) -> RunOutcome {
    tokio::time::timeout(limit, engine::run(Arc::new(plan), target, options))
        .await
        .expect("run ends in time")
        .expect("run starts")
}

/// Runs `plan` against `server` with `options`, bounded in time like [`run_at`].
pub(crate) async fn run_with(plan: Plan, server: &ServerHandle, options: RunOptions) -> RunOutcome {
    run_at(plan, &server.addr().to_string(), options).await
}

/// Starts a reference server with `config` and runs `plan` against the address its clients use.
pub(crate) async fn run_on_server(
    plan: Plan,
    config: ServerConfig,
    options: RunOptions,
) -> RunOutcome {
    let server = serve(config.clone()).await;
    run_at(plan, &config.client_address(server.addr()), options).await
}

/// What holds a run's aggregate: the aggregate itself or the whole outcome.
pub(crate) trait Aggregate {
    /// The aggregate over the whole run.
    fn aggregate(&self) -> &PeriodSummary;
}

impl Aggregate for PeriodSummary {
    fn aggregate(&self) -> &PeriodSummary {
        self
    }
}

impl Aggregate for RunOutcome {
    fn aggregate(&self) -> &PeriodSummary {
        &self.metrics.aggregate
    }
}

/// The value of the counter `name`, 0 when it was never counted.
pub(crate) fn counter(of: &impl Aggregate, name: &str) -> u64 {
    of.aggregate().counters.get(name).copied().unwrap_or(0)
}

/// How many samples the histogram `name` holds, 0 when it has none.
pub(crate) fn count(of: &impl Aggregate, histogram: &str) -> u64 {
    of.aggregate()
        .summaries
        .get(histogram)
        .map_or(0, |s| s.count)
}

/// Every error counted (the `errors.*` counters).
pub(crate) fn errors(of: &impl Aggregate) -> u64 {
    of.aggregate().errors_total()
}

/// Fails the test, showing the error samples, when the run counted any error.
#[track_caller]
pub(crate) fn assert_no_errors(out: &RunOutcome) {
    assert_eq!(errors(out), 0, "{:?}", out.error_samples);
}

/// Writes `text` as the plan file `name` in `dir`; returns its path.
pub(crate) fn write_plan(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("plan written");
    path
}

/// Runs the real binary with `args` and waits for its exit and output.
pub(crate) fn chatload<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_chatload"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Starts the real binary with `args`, stdout discarded, and a thread that reads its stderr
/// to the end (so the binary never blocks on a full pipe), sending on the channel whatever
/// `pick` makes of a line. Tests wait on the channel for a line instead of a fixed time: a
/// loaded machine may take any part of a second to start a run.
pub(crate) fn spawn_watching_stderr<I, S>(
    args: I,
    mut pick: impl FnMut(&str) -> Option<String> + Send + 'static,
) -> (Child, Receiver<String>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatload"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (picked, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(found) = pick(&line) {
                let _ = picked.send(found);
            }
        }
    });
    (child, receiver)
}

/// The `result.json` in the output folder `out`, parsed.
pub(crate) fn result_json(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json exists");
    serde_json::from_str(&text).expect("result.json is JSON")
}

/// A plan built in code rather than YAML: `load` runs one scenario `flow` (templates from
/// `env`) against an address nothing listens on, with a 5 s timeout, no reconnects, a 5 s
/// graceful stop and a 1 s interval. Tests change the fields they care about.
pub(crate) fn hand_plan(load: Load, flow: Vec<Step>, env: minijinja::Environment<'static>) -> Plan {
    Plan {
        source: PathBuf::from("test.yml"),
        name: "test".into(),
        target: Target::Address("127.0.0.1:1".into()),
        protocol: CodecConfig::lines(),
        tls: None,
        websocket: Default::default(),
        http: Default::default(),
        messages: Vec::new(),
        load,
        payloads: Vec::new(),
        variables: Vec::new(),
        defaults: Defaults {
            timeout: Duration::from_secs(5),
            think_jitter: 0.0,
            reconnect: Reconnect {
                attempts: 0,
                backoff: Duration::from_millis(100),
            },
            graceful_stop: Duration::from_secs(5),
        },
        source_addresses: Vec::new(),
        handlers: Vec::new(),
        ensure: Ensure::default(),
        monitor: None,
        report: ReportConfig {
            dir: PathBuf::from("reports"),
            json: false,
            csv: false,
            html: false,
            interval: Duration::from_secs(1),
        },
        metrics: Default::default(),
        scenarios: vec![Scenario {
            name: "main".into(),
            weight: 1,
            target: None,
            flow,
            handlers: Vec::new(),
            allocation: Default::default(),
        }],
        setup: Default::default(),
        templates: Templates { env },
        as_written: serde_json::Value::Null,
        source_text: None,
    }
}
