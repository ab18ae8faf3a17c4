//! Integration tests: the adaptive search and the breaking point against a reference server
//! that saturates (`capacity_per_sec`), and `run --interactive` driven through stdin of the
//! real binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chatload::engine::{RunControl, RunOptions};
use chatload::plan::{Load, Plan, presets};
use chatload::server::{ServerConfig, ServerHandle};

use crate::common::{run_with as run, serve, yaml_plan};

/// Vusers doing PING/PONG paced at 10 per second: against 300 commands/s the knee is 30.
const PING_FLOW: &str = r#"
scenarios:
  - name: ping
    flow:
      - connect
      - loop:
          - send: "PING {{ random_int(1, 1000000) }}"
            expect: {match: "^PONG ", name: ping}
          - think: 100ms
"#;

fn plan(config: &str) -> Plan {
    let text = format!("config:\n  target: 127.0.0.1:1\n{config}{PING_FLOW}");
    yaml_plan(&text, Path::new("test.yml"))
}

/// The reference server answering at most 300 commands a second, on port 0.
async fn saturating_server() -> ServerHandle {
    serve(ServerConfig {
        capacity_per_sec: Some(300.0),
        ..ServerConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_finds_the_knee_of_a_saturating_server() {
    let server = saturating_server().await;
    let plan = plan(
        "  adaptive:
    startVusers: 5
    maxVusers: 100
    window: 2s
    limits: {p95: 200ms}
",
    );
    let options = RunOptions {
        interval: Some(Duration::from_millis(250)),
        ..RunOptions::default()
    };
    let outcome = run(plan, &server, options).await;
    let adaptive = outcome.adaptive.expect("an adaptive outcome");
    let levels: Vec<(u64, bool)> = adaptive
        .trajectory
        .iter()
        .map(|w| (w.vusers, w.healthy))
        .collect();
    // Where exactly the knee shows depends on how fast this machine serves the load, so this
    // checks the search's bookkeeping; its precision against a known knee is the unit test
    // `bisects_to_within_five_percent_of_the_knee` in src/engine/load/adaptive.rs.
    assert!(adaptive.completed, "{levels:?}");
    assert_eq!(levels.first().map(|l| l.0), Some(5), "{levels:?}");
    // 100 vusers ask for over 300 commands/s: the search broke somewhere below the maximum.
    let breach = levels
        .iter()
        .filter(|l| !l.1)
        .map(|l| l.0)
        .min()
        .expect("a window breached the p95 limit");
    let highest_healthy = levels.iter().filter(|l| l.1).map(|l| l.0).max();
    assert_eq!(adaptive.max_stable_vusers, highest_healthy, "{levels:?}");
    if let Some(found) = adaptive.max_stable_vusers {
        assert!(found < 100, "{levels:?}");
        assert!(
            levels.iter().any(|&(v, h)| !h && v > found),
            "a breach above the level found: {levels:?}"
        );
    }
    assert!(breach <= 100, "{levels:?}");
    // Each window is a phase named after its level.
    assert_eq!(outcome.metrics.phases.len(), adaptive.trajectory.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_steps_stop_at_the_breaking_point() {
    let server = saturating_server().await;
    let mut plan = plan(
        "  phases: [{vusers: 1, duration: 1s}]
  ensure:
    thresholds:
      - latency.ping.p95: 200
",
    );
    let params = presets::PresetParams {
        from: Some(10),
        to: Some(80),
        by: Some(10),
        every: Some(Duration::from_secs(2)),
        duration: None,
    };
    plan.load = Load::Phases(presets::expand("stress", &params).expect("preset expands"));
    let options = RunOptions {
        interval: Some(Duration::from_millis(250)),
        breaking_point: true,
        ..RunOptions::default()
    };
    let outcome = run(plan, &server, options).await;
    let breaking = outcome.breaking_point.expect("a breaking-point outcome");
    // Which step breaks depends on this machine's speed; that it stops at the first failing
    // step and names the breached threshold does not.
    let stable = breaking.max_stable_vusers.unwrap_or(0);
    assert!(stable < 80, "{breaking:?}");
    assert_eq!(breaking.failed_at, Some(stable + 10), "{breaking:?}");
    assert!(breaking.reason.contains("latency.ping.p95"), "{breaking:?}");
    // Stopped at the breaking point: no step after the failing one ran.
    assert!(outcome.stopped);
    assert!(
        outcome.metrics.phases.len() <= (stable / 10 + 1) as usize,
        "{} phases for {breaking:?}",
        outcome.metrics.phases.len()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_broadcast_steer_a_running_closed_model_phase() {
    let server = serve(ServerConfig::default()).await;
    // Longer than the test needs: it ends by `stop`, once each step has been seen to happen.
    let plan = plan("  phases: [{vusers: 2, duration: 60s}]\n");
    let control = RunControl::new();
    let steer = control.clone();
    let steering = tokio::spawn(async move {
        // Waits (on the run's own interval reports) until `n` vusers are active and connected.
        let connected = |n: i64| {
            let steer = steer.clone();
            async move {
                for _ in 0..300 {
                    let level = |name: &str| {
                        steer
                            .latest()
                            .and_then(|p| p.interval.gauges.get(name).map(|g| g.last))
                    };
                    if level("vusers.active") == Some(n) && level("connections.open") == Some(n) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("{n} vusers never got connected");
            }
        };
        connected(2).await;
        steer.scale(6).expect("closed-model phase");
        connected(6).await;
        // Replies to the broadcast PINGs are server pushes nobody waits for: they are counted
        // as received and dropped.
        let reached = steer.broadcast("PING broadcast");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let latest = steer.latest().expect("intervals have finished");
        let partial = steer.partial().expect("partial results");
        steer.stop();
        (reached, latest, partial)
    });
    let options = RunOptions {
        interval: Some(Duration::from_millis(200)),
        control: Some(control),
        broadcasts: true,
        ..RunOptions::default()
    };
    let outcome = run(plan, &server, options).await;
    let (reached, latest, partial) = steering.await.expect("steering task");
    assert_eq!(reached, 6, "every connected vuser gets the broadcast");
    let active = latest
        .interval
        .gauges
        .get("vusers.active")
        .map_or(0, |g| g.last);
    assert_eq!(active, 6);
    assert!(
        partial
            .metrics
            .aggregate
            .counters
            .get("messages.sent")
            .copied()
            > Some(0)
    );
    assert!(outcome.stopped && !outcome.interrupted);
    assert!(
        outcome.duration < Duration::from_secs(45),
        "stop ended the 60 s phase early: {:?}",
        outcome.duration
    );
    server.shutdown().await;
}

#[test]
fn interactive_commands_on_stdin_steer_the_real_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = dir.path().join("console.yml");
    std::fs::write(
        &plan,
        format!(
            "config:\n  target: embedded\n  phases: [{{vusers: 2, duration: 60s}}]\n  report: {{interval: 250ms}}\n{PING_FLOW}"
        ),
    )
    .expect("plan written");
    let out = dir.path().join("out");
    let export = dir.path().join("partial.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatload"))
        .args(["run", "--interactive", "--format", "json", "--out"])
        .arg(&out)
        .arg(&plan)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let pause = || std::thread::sleep(Duration::from_millis(1200));
    pause();
    for command in [
        "help".to_owned(),
        "stats".to_owned(),
        "scale 5".to_owned(),
        "broadcast PING all".to_owned(),
        format!("export {}", export.display()),
    ] {
        writeln!(stdin, "{command}").expect("command written");
        pause();
    }
    writeln!(stdin, "stop").expect("stop written");
    let started = std::time::Instant::now();
    let output = child.wait_with_output().expect("binary ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "stop ends the 60 s run early"
    );
    for reply in [
        "commands: scale N",
        "stats at",
        "latency.ping",
        "scale: holding 5 vusers",
        // How many of the 5 are connected 1.2 s after `scale` depends on the machine's load.
        "broadcast: handed to ",
        "export: wrote",
        "stop: retiring vusers",
    ] {
        assert!(stdout.contains(reply), "`{reply}` missing from:\n{stdout}");
    }
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).expect("result"))
            .expect("valid JSON");
    assert_eq!(result["run"]["exitCode"], 0);
    let warnings = result["run"]["warnings"].to_string();
    assert!(warnings.contains("stopped early"), "{warnings}");
    assert!(result["aggregate"]["gauges"]["vusers.active"]["max"].as_i64() >= Some(5));
    let partial: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export).expect("export")).expect("JSON");
    assert_eq!(partial["format"], "chatload.result/v2");
    // Interval histograms go to a sidecar beside the export: the reply names it too.
    if let Some(file) = partial["intervalHistograms"]["file"].as_str() {
        assert!(export.with_file_name(file).is_file(), "{file} not written");
        assert!(
            stdout.contains(file) && stdout.contains("keep them together"),
            "the export reply does not name {file}:\n{stdout}"
        );
    }
}
