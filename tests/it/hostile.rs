//! Integration tests: plans that `check` accepts but that try to hang or exhaust the
//! generator — runaway templates, absurd load levels, huge expanded documents, endless payload
//! files, forged stamps. Each run must end, keep its results and bound its memory.

use std::path::Path;
use std::sync::Arc;

use chatload::engine::{RunOptions, RunOutcome};
use chatload::plan::{self, Format, Plan};
use chatload::server::{self, ServerConfig, ServerHandle};
use tokio_util::sync::CancellationToken;

use crate::run::run_with;

fn yaml_plan(text: &str) -> Plan {
    plan::load_str(text, Path::new("hostile.yml"), Format::Yaml)
        .unwrap_or_else(|problems| panic!("the plan should load: {problems:?}"))
}

async fn serve() -> ServerHandle {
    server::spawn(ServerConfig::default())
        .await
        .expect("server starts")
}

fn counter(out: &RunOutcome, name: &str) -> u64 {
    out.metrics
        .aggregate
        .counters
        .get(name)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_runaway_template_still_returns_the_results() {
    let server = serve().await;
    // 10^10 loop turns: without a bound the render holds a runtime thread for hours and the
    // run never returns (run_with gives up after 60 s).
    let plan = yaml_plan(
        "config:\n  target: embedded\n  phases: [{duration: 1h, vusers: 2}]\n\
         scenarios:\n  - flow:\n      - log: started\n      - set:\n          x: \"{% for i in \
         range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\"\n      \
         - think: 10ms\n",
    );
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    // Ctrl-C arrives just as a vuser starts the hostile render.
    let options = RunOptions {
        shutdown,
        on_log: Some(Arc::new(move |_line: &str| trigger.cancel())),
        ..RunOptions::default()
    };
    let out = run_with(plan, &server, options).await;
    assert!(out.interrupted);
    assert!(
        counter(&out, "errors.template") >= 1,
        "{:?}",
        out.error_samples
    );
    assert!(
        out.error_samples.iter().any(|e| e.contains("fuel")),
        "the error says why: {:?}",
        out.error_samples
    );
    server.shutdown().await;
}
