//! Integration tests: plans that `check` accepts but that try to hang or exhaust the
//! generator — runaway templates, absurd load levels, huge expanded documents, endless payload
//! files, forged stamps. Each run must end, keep its results and bound its memory.

use std::path::Path;
use std::sync::Arc;

use chatload::engine::{RunOptions, RunOutcome};
use chatload::plan::{self, Format, Plan};
use chatload::server::{ServerConfig, ServerHandle};
use tokio_util::sync::CancellationToken;

use crate::common::{counter, load_in, run_with};

/// The YAML plan `text`, as if read from `hostile.yml`.
fn yaml_plan(text: &str) -> Plan {
    crate::common::yaml_plan(text, Path::new("hostile.yml"))
}

/// The reference server with its defaults, on port 0.
async fn serve() -> ServerHandle {
    crate::common::serve(ServerConfig::default()).await
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

/// Loads a plan whose payload is `payload_path`, returning the problems' text.
fn payload_problems(dir: &Path, payload_path: &str) -> String {
    let text = format!(
        "config:\n  target: embedded\n  phases: [{{duration: 1s, vusers: 1}}]\n  \
         payload: {{path: \"{payload_path}\", fields: [name]}}\nscenarios:\n  - flow: [connect]\n"
    );
    match plan::load_str(&text, &dir.join("plan.yml"), Format::Yaml) {
        Ok(_) => String::new(),
        Err(problems) => format!("{problems:?}"),
    }
}

#[test]
fn payload_devices_and_pipes_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // /dev/zero reports size 0 and never ends: it used to be read until memory ran out.
    let problems = payload_problems(dir.path(), "/dev/zero");
    assert!(problems.contains("is not a regular file"), "{problems}");
    // Opening a FIFO for reading blocks until a writer comes: it must not even be opened.
    let fifo = dir.path().join("rows.fifo");
    let c_path = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let problems = payload_problems(dir.path(), "rows.fifo");
    assert!(problems.contains("is not a regular file"), "{problems}");
    let problems = payload_problems(dir.path(), ".");
    assert!(problems.contains("is not a regular file"), "{problems}");
}

#[test]
fn payload_rows_are_streamed_and_stored_compactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::new();
    for i in 0..200_000 {
        csv.push_str(&format!("u{}\n", i % 10));
    }
    std::fs::write(dir.path().join("users.csv"), csv).expect("write");
    let text = "config:\n  target: embedded\n  phases: [{duration: 1s, vusers: 1}]\n  \
                payload: {path: users.csv, fields: [name], cast: true}\n\
                scenarios:\n  - flow: [connect]\n";
    let plan = load_in(text, dir.path());
    let rows = &plan.payloads[0].rows;
    assert_eq!(rows.len(), 200_000);
    assert_eq!(rows.row(13), Some(vec![serde_json::Value::from("u3")]));
    // 200 000 cells of 2 bytes: the text plus a 4-byte offset each (a heap value per cell
    // took over 60 bytes).
    assert!(rows.heap_bytes() < 200_000 * 12, "{}", rows.heap_bytes());
}

/// A server that reflects every line `copies` times, then sends a copy stamped by another run
/// and one whose send time lies far in the future; `END` is answered once, after all that.
async fn reflecting_server(copies: usize) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = String::new();
            if line == "END" {
                out.push_str("END\n");
            } else {
                for _ in 0..copies {
                    out.push_str(&line);
                    out.push('\n');
                }
                // `~c<run>.<sender>.<time>~`: swap the run id, then the time.
                if let Some(stamp) = line.strip_prefix("~c") {
                    let foreign = format!("~czzzzzz{}\n", stamp.get(6..).unwrap_or_default());
                    out.push_str(&foreign);
                    let run = stamp.get(..6).unwrap_or_default();
                    out.push_str(&format!("~c{run}.0.zzzzzzzzzz~\n"));
                }
            }
            if write.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflected_forged_and_foreign_stamps_count_apart_from_deliveries() {
    let (addr, server) = reflecting_server(1000).await;
    let plan = yaml_plan(
        "config:\n  target: embedded\n  phases: [{duration: 1s, arrivalCount: 1}]\n\
         scenarios:\n  - flow:\n      - connect\n      - loop:\n          \
         - send: \"{{ stamp() }}\"\n          - think: 5ms\n        count: 18\n      \
         - send: END\n        expect: {match: \"^END\", timeout: 30s}\n      - disconnect\n",
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        chatload::engine::run(Arc::new(plan), &addr.to_string(), RunOptions::default()),
    )
    .await
    .expect("the run ends")
    .expect("the run starts");
    let deliveries = out
        .metrics
        .aggregate
        .summaries
        .get("delivery")
        .map(|s| s.count);
    // 18 sends reflected 1000 times each used to give 18 000 samples.
    assert_eq!(deliveries, Some(18), "{:?}", out.error_samples);
    assert_eq!(counter(&out, "delivery.invalid"), 18 * (999 + 2));
    server.abort();
}

fn problems_of(text: &str) -> String {
    match plan::load_str(text, Path::new("plan.yml"), Format::Yaml) {
        Ok(_) => String::new(),
        Err(problems) => format!("{problems:?}"),
    }
}

#[test]
fn max_frame_bytes_has_an_upper_bound() {
    let plan = |bytes: u64| {
        format!(
            "config:\n  target: \"127.0.0.1:9\"\n  protocol: {{maxFrameBytes: {bytes}}}\n  \
             phases: [{{duration: 1s, vusers: 1}}]\nscenarios:\n  - flow: [connect]\n"
        )
    };
    let problems = problems_of(&plan(8 << 30));
    assert!(
        problems.contains("`maxFrameBytes: 8589934592` is above the limit of 64 MiB"),
        "{problems}"
    );
    assert_eq!(problems_of(&plan(64 << 20)), "");
}

#[test]
fn an_invalid_embedded_section_fails_check_whatever_the_target() {
    let problems = problems_of(
        "config:\n  target: \"127.0.0.1:9\"\n  embedded: {xor: \"\", stall: 5s, every: 1s}\n  \
         phases: [{duration: 1s, vusers: 1}]\nscenarios:\n  - flow: [connect]\n",
    );
    assert!(problems.contains("the XOR key is empty"), "{problems}");
    assert!(problems.contains("never ends"), "{problems}");
}

/// Runs `plan` against a port nothing listens on (its flows never connect), holding at most
/// `live` vusers at once.
async fn run_offline(plan: Plan, live: u64) -> Result<RunOutcome, chatload::engine::EngineError> {
    let options = RunOptions {
        max_live_vusers: Some(live),
        ..RunOptions::default()
    };
    chatload::engine::run(Arc::new(plan), "127.0.0.1:9", options).await
}

#[tokio::test(start_paused = true)]
async fn arrivals_beyond_what_the_generator_holds_are_dropped_not_queued() {
    // A million arrivals a second, each holding on for an hour: every one used to get a task
    // (8.5 GB for 5 s); now at most `live` exist and the rest are counted as dropped.
    let plan = yaml_plan(
        "config:\n  target: embedded\n  phases: [{duration: 50ms, arrivalRate: 1000000}]\n  \
         defaults: {gracefulStop: 1s}\nscenarios:\n  - flow: [{think: 1h}]\n",
    );
    let out = run_offline(plan, 100).await.expect("the run starts");
    let created = counter(&out, "vusers.created");
    let dropped = counter(&out, "vusers.dropped");
    assert_eq!(created, 100);
    assert!(
        (49_899..=49_900).contains(&dropped),
        "{dropped} dropped of 50 000 arrivals"
    );
    // Only the vusers that started are cancelled at the end of the graceful stop.
    assert_eq!(counter(&out, "vusers.cancelled"), 100);
    assert_eq!(out.vusers_cancelled, 100);
}

#[tokio::test(start_paused = true)]
async fn a_closed_target_beyond_the_limit_counts_its_shortfall_once() {
    let plan = yaml_plan(
        "config:\n  target: embedded\n  phases: [{duration: 2s, vusers: 300}]\n  \
         defaults: {gracefulStop: 1s}\nscenarios:\n  - flow: [{think: 1h}]\n",
    );
    let out = run_offline(plan, 100).await.expect("the run starts");
    assert_eq!(counter(&out, "vusers.created"), 100);
    // Re-read every 20 ms for 2 s, the missing 200 are still counted once.
    assert_eq!(counter(&out, "vusers.dropped"), 200);
}

#[tokio::test(start_paused = true)]
async fn absurd_load_levels_are_refused_before_the_run_starts() {
    for phase in [
        "{duration: 5s, vusers: 1000000000}",
        "{duration: 5s, vusers: 1, rampTo: 1000000000, curve: exponential}",
        "{duration: 5s, arrivalCount: 1000000000000}",
        "{duration: 5s, arrivalRate: 5000000}",
    ] {
        let plan = yaml_plan(&format!(
            "config:\n  target: embedded\n  phases: [{phase}]\nscenarios:\n  - flow: [{{think: 1s}}]\n"
        ));
        let err = run_offline(plan, 100).await.err().map(|e| e.to_string());
        let message = err.unwrap_or_else(|| panic!("{phase} was not refused"));
        assert!(message.contains("one generator process"), "{message}");
    }
}

#[test]
fn check_warns_about_levels_one_process_cannot_hold_but_still_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("big.yml");
    std::fs::write(
        &plan,
        "config:\n  target: \"127.0.0.1:9\"\n  phases: [{duration: 5s, vusers: 5000}]\n\
         scenarios:\n  - flow: [connect]\n",
    )
    .expect("write");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 1024 && exec \"$0\" check \"$1\"")
        .arg(env!("CARGO_BIN_EXE_chatload"))
        .arg(&plan)
        .output()
        .expect("chatload runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("big.yml: warning: the open-descriptor limit (RLIMIT_NOFILE) is 1024")
            && stdout.contains("up to 5000 connections"),
        "{stdout}"
    );
}
