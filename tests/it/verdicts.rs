//! Issue 16: honest verdicts and failures attributed to their step. A run without `ensure`
//! that counted errors fails; a target that refuses everything stops the run early; every
//! failure is counted against its step in stats.csv, failures.csv and result.json.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatload::engine::{self, RunOptions};
use chatload::plan::{self, Format};

/// A loopback port that refuses connections (held, so no other test can listen on it).
fn closed_port() -> (tokio::net::TcpSocket, String) {
    let (socket, addr) = crate::refusing_port();
    (socket, addr.to_string())
}

fn counter(summary: &chatload::metrics::PeriodSummary, name: &str) -> u64 {
    summary.counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_a_closed_port_stops_early_saying_nothing_could_connect() {
    let (_held, target) = closed_port();
    let yaml = r#"
config:
  target: "127.0.0.1:1"
  phases:
    - {duration: 60s, arrivalRate: 5}
scenarios:
  - name: chat
    flow:
      - connect
      - send: "PING 1"
"#;
    let plan = plan::load_str(yaml, Path::new("refused.yml"), Format::Yaml).expect("plan is valid");
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(15),
        engine::run(Arc::new(plan), &target, RunOptions::default()),
    )
    .await
    .expect("the run stops early instead of sitting out its 60 s")
    .expect("run starts");
    assert!(started.elapsed() < Duration::from_secs(15));
    let unreachable = outcome.unreachable.as_ref().expect("the outcome says why");
    let text = unreachable.to_string();
    assert!(
        text.starts_with("nothing could connect to tcp://"),
        "{text}"
    );
    assert!(text.contains("connect_refused"), "{text}");
    assert!(!outcome.interrupted);
    let agg = &outcome.metrics.aggregate;
    let refused = counter(agg, "errors.connect_refused");
    assert!(refused > 0);
    assert_eq!(counter(agg, "failures.connect"), refused);
    assert!(!agg.summaries.contains_key("connect"), "nothing connected");
    let table: u64 = outcome
        .errors
        .iter()
        .filter(|e| e.step == "connect" && e.method == "connect" && e.scenario == "chat")
        .map(|e| e.count)
        .sum();
    assert_eq!(table, refused, "{:?}", outcome.errors);
}

/// A chat server that answers every 3rd `PING` (counted over all connections) with something
/// that does not match `^PONG`. Returns its address and the number of PINGs answered wrong.
fn hostile_server() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let pings = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let wrong_out = Arc::clone(&wrong);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (pings, wrong) = (Arc::clone(&pings), Arc::clone(&wrong));
            std::thread::spawn(move || serve_hostile(stream, &pings, &wrong));
        }
    });
    (addr, wrong_out)
}

fn serve_hostile(stream: TcpStream, pings: &AtomicU64, wrong: &AtomicU64) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let Some(token) = line.strip_prefix("PING ") else {
            continue;
        };
        let n = pings.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = if n.is_multiple_of(3) {
            wrong.fetch_add(1, Ordering::SeqCst);
            format!("NOPE {token}\n")
        } else {
            format!("PONG {token}\n")
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn run_binary(plan: &Path, out: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chatload"))
        .args(["run", "--quiet", "--format", "json,csv,html", "--out"])
        .arg(out)
        .arg(plan)
        .output()
        .expect("binary runs")
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).expect("csv exists");
    reader
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_owned).collect())
        .collect()
}

fn write_plan(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("plan written");
    path
}

#[test]
fn every_third_wrong_reply_is_one_expect_failure_in_stats_and_failures_csv() {
    let (target, wrong) = hostile_server();
    let dir = tempfile::tempdir().expect("tempdir");
    // A wrong reply is an error once the expect times out; the timeout is long enough that a
    // right one never misses it on a loaded machine (the error count is asserted exactly).
    let flow = r#"
scenarios:
  - name: pinger
    flow:
      - connect
      - send: "PING {{ vu.id }}"
        expect: {match: "^PONG", name: ping, timeout: 2s}
      - disconnect
"#;
    let plan = write_plan(
        dir.path(),
        "hostile.yml",
        &format!(
            "config:\n  target: \"{target}\"\n  phases:\n    - {{duration: 2s, arrivalCount: 30}}\n{flow}"
        ),
    );
    let out = dir.path().join("out");
    let output = run_binary(&plan, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "no ensure and errors: exit 1\n{stdout}\n{stderr}"
    );
    let failed = wrong.load(Ordering::SeqCst);
    assert_eq!(failed, 10, "30 PINGs, every 3rd answered wrong");
    assert!(stdout.contains("Completed with 10 errors"), "{stdout}");
    assert!(stdout.contains("top error messages"), "{stdout}");

    let stats = csv_rows(&out.join("stats.csv"));
    let ping = stats
        .iter()
        .find(|r| r[1] == "latency.ping")
        .expect("a latency.ping row");
    assert_eq!(
        (ping[2].as_str(), ping[3].as_str()),
        ("20", "10"),
        "{ping:?}"
    );
    let connect = stats
        .iter()
        .find(|r| r[1] == "connect")
        .expect("connect row");
    assert_eq!((connect[2].as_str(), connect[3].as_str()), ("30", "0"));

    let failures = csv_rows(&out.join("failures.csv"));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0][0], "expect");
    assert_eq!(failures[0][1], "latency.ping");
    assert!(failures[0][2].starts_with("timeout: "), "{failures:?}");
    assert_eq!(failures[0][3], "10");

    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json");
    let result: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(result["run"]["exitCode"], 1);
    let errors = result["errors"].as_array().expect("an errors table");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["step"], "latency.ping");
    assert_eq!(errors[0]["scenario"], "pinger");
    assert_eq!(errors[0]["kind"], "timeout");
    assert_eq!(errors[0]["count"], 10);
    assert_eq!(result["aggregate"]["counters"]["failures.latency.ping"], 10);
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("Completed with 10 errors"));
    assert!(html.contains("Error messages"));

    // ensure.maxErrorRate is how a run allows some errors: 10 of 60 operations is 16.7 %.
    let (target, _) = hostile_server();
    let allowed = write_plan(
        dir.path(),
        "allowed.yml",
        &format!(
            "config:\n  target: \"{target}\"\n  phases:\n    - {{duration: 2s, arrivalCount: 30}}\n  ensure:\n    maxErrorRate: 50\n{flow}"
        ),
    );
    let out = dir.path().join("allowed");
    let output = run_binary(&allowed, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("verdict: Passed"), "{stdout}");
}

#[test]
fn the_binary_stops_a_run_nothing_can_connect_to_and_exits_1_with_results() {
    let (_held, target) = closed_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "refused.yml",
        &format!(
            r#"
config:
  target: "{target}"
  phases:
    - {{duration: 60s, arrivalRate: 20}}
scenarios:
  - name: chat
    flow:
      - connect
      - send: "PING 1"
"#
        ),
    );
    let out = dir.path().join("out");
    let started = Instant::now();
    let output = run_binary(&plan, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it stopped early"
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("nothing could connect to tcp://{target}")),
        "{stderr}"
    );
    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json written");
    let result: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(result["run"]["exitCode"], 1);
    assert_eq!(result["run"]["aborted"], true);
    let reason = result["run"]["abortReason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("nothing could connect to"), "{reason}");
    let refused = result["aggregate"]["counters"]["errors.connect_refused"]
        .as_u64()
        .unwrap_or(0);
    assert!(refused > 0);

    let stats = csv_rows(&out.join("stats.csv"));
    let connect = stats
        .iter()
        .find(|r| r[1] == "connect")
        .expect("a connect row although nothing connected");
    assert_eq!(connect[2], "0");
    assert_eq!(connect[3], refused.to_string());
    let failures = csv_rows(&out.join("failures.csv"));
    let counted: u64 = failures
        .iter()
        .filter(|r| r[0] == "connect" && r[1] == "connect")
        .map(|r| r[3].parse::<u64>().unwrap_or(0))
        .sum();
    assert_eq!(counted, refused, "{failures:?}");
}
