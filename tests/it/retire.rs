//! Integration tests: closed-model vusers retired while their flow never waits on anything
//! retiring could interrupt (a busy send/expect loop, no think): the per-iteration check is
//! what stops them, not the end of the run.

use std::path::Path;

use chatload::engine::RunOptions;
use chatload::plan::Plan;
use chatload::server::ServerConfig;

use crate::common::{run_with, serve, yaml_plan};

fn plan(phases: &str) -> Plan {
    let text = format!(
        "config:\n  target: 127.0.0.1:1\n  phases: {phases}\n  defaults: {{gracefulStop: 30s}}\n\
         scenarios:\n  - flow:\n      - connect\n      - loop:\n          - send: \"PING x\"\n\
         \x20           expect: {{match: \"^PONG\", name: ping}}\n"
    );
    yaml_plan(&text, Path::new("retire.yml"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_phase_retires_busy_vusers_at_its_start() {
    let server = serve(ServerConfig::default()).await;
    let plan = plan("[{vusers: 4, duration: 1s}, {vusers: 1, duration: 1s}]");
    let out = run_with(plan, &server, RunOptions::default()).await;
    let agg = &out.metrics.aggregate;
    let count = |name: &str| agg.counters.get(name).copied().unwrap_or(0);
    assert_eq!(count("vusers.created"), 4);
    assert_eq!(count("vusers.completed"), 4, "{:?}", out.error_samples);
    assert_eq!(out.vusers_cancelled, 0);
    // Three of the four stopped when the second phase began, mid-loop, and did not come back;
    // a vuser that missed its retirement would run on to the end of the run.
    let second = out.metrics.phases.get(1).map(|p| &p.summary);
    let active = second.and_then(|s| s.gauges.get("vusers.active"));
    assert_eq!(active.map(|g| g.last), Some(1), "{active:?}");
    assert!(second.is_some_and(|s| s.summaries.get("latency.ping").is_some_and(|l| l.count > 0)));
    server.shutdown().await;
}
