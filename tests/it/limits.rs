//! Integration tests: what the real `chatload run` binary does at the generator's own limits —
//! a descriptor limit too small for the plan, and connections spread over `sourceAddresses`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use chatload::server::{self, ServerConfig};
use tokio::net::TcpListener;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `chatload run --no-report -q PLAN` through `sh` so `prefix` (e.g. `ulimit -n 64;`)
/// applies to it; bounded in time.
async fn run_plan(plan: &Path, prefix: &str) -> Outcome {
    let script = format!("{prefix} exec \"$0\" run --no-report -q \"$1\"");
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_chatload"))
        .arg(plan)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends in bounded time instead of hanging")
        .expect("chatload runs");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write_plan(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("plan.yml");
    std::fs::write(&path, text).expect("write plan");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_reported_not_hung() {
    let server = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        &format!(
            "config:\n  target: \"{}\"\n  phases:\n    - {{duration: 2s, vusers: 200}}\n  \
             defaults: {{timeout: 2s, gracefulStop: 1s}}\nscenarios:\n  - flow:\n      - connect\n      \
             - loop:\n          - send: \"PING x\"\n            expect: {{match: \"^PONG\"}}\n          \
             - think: 200ms\n",
            server.addr()
        ),
    );
    // `ulimit -n` without -S/-H lowers the hard limit too, so chatload cannot raise it back.
    let out = run_plan(&plan, "ulimit -n 64 &&").await;
    // The run goes to its end and reports; no threshold is set and errors were counted, so
    // it exits 1 ("completed with N errors").
    assert_eq!(
        out.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "the open-descriptor limit (RLIMIT_NOFILE) is 64, but the plan may hold up to 200"
        ),
        "no up-front warning:\n{}",
        out.stderr
    );
    // The summary's top error messages.
    assert!(
        out.stdout.contains("cannot create a socket")
            && out
                .stdout
                .contains("open-descriptor limit (RLIMIT_NOFILE = 64)")
            && out.stdout.contains("ulimit -n"),
        "no clear first error:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("errors.io"),
        "not counted:\n{}",
        out.stdout
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_take_turns() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        &format!(
            "config:\n  target: \"{addr}\"\n  sourceAddresses: [127.0.0.2, 127.0.0.3, 127.0.0.4]\n  \
             phases:\n    - {{duration: 1s, vusers: 9}}\n  defaults: {{gracefulStop: 1s}}\n\
             scenarios:\n  - flow:\n      - connect\n      - think: 5s\n"
        ),
    );
    let accept = tokio::spawn(async move {
        let mut peers = Vec::new();
        let mut held = Vec::new();
        while peers.len() < 9 {
            let Ok((stream, peer)) = listener.accept().await else {
                break;
            };
            peers.push(peer.ip());
            held.push(stream);
        }
        peers
    });
    let out = run_plan(&plan, "").await;
    let peers = tokio::time::timeout(Duration::from_secs(5), accept)
        .await
        .expect("nine connections arrive")
        .expect("accept task");
    let mut per_address: HashMap<IpAddr, usize> = HashMap::new();
    for ip in peers {
        *per_address.entry(ip).or_default() += 1;
    }
    let expected: HashMap<IpAddr, usize> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|ip| (ip.parse().expect("ip"), 3))
        .collect();
    assert_eq!(per_address, expected, "stderr:\n{}", out.stderr);
}
