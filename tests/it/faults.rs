//! The fault suite: the engine in-process against hostile in-test servers. Each case ends on
//! time (a hard 45 s bound that only a hang can reach; the runs themselves last about 2 s),
//! counts its failures under the right error kind, writes a result that reads back, and keeps
//! memory bounded
//! — asserted through the frame cap (the oversized frame is refused as a protocol error, not
//! buffered) and through the counters, never through RSS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatload::engine::{self, RunOptions, RunOutcome};
use chatload::plan::{self, Format};
use chatload::report::{RunInfo, RunResult, read_result, write_result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One vuser per 100 ms for 1 s; each connects, sends `PING` and waits (500 ms) for `PONG`.
fn plan_text(addr: SocketAddr, protocol: &str) -> String {
    format!(
        r#"
config:
  target: "{addr}"
  phases:
    - {{duration: 1s, arrivalRate: 10}}
  defaults: {{timeout: 500ms, gracefulStop: 2s}}
{protocol}
scenarios:
  - flow:
      - connect
      - send: "PING 1"
        expect: {{match: "^PONG", name: ping}}
"#
    )
}

const LINES_64K: &str = "  protocol: {maxFrameBytes: 65536}";
const LENGTH_U32: &str = "  protocol:\n    framing: {lengthPrefixed: {header: [{length: 4}], endian: \
                          big}}\n    maxFrameBytes: 65536";

/// Longest a fault case may take: the runs themselves last about 2 s; only a hang (or a
/// very loaded machine) comes near this.
const ON_TIME: Duration = Duration::from_secs(45);

async fn run(addr: SocketAddr, protocol: &str) -> RunOutcome {
    run_text(&plan_text(addr, protocol), addr).await
}

/// Runs the plan `text` against `addr`; asserts that it ends on time and that its result can
/// be written and read back with the same counters.
async fn run_text(text: &str, addr: SocketAddr) -> RunOutcome {
    let plan = plan::load_str(text, Path::new("fault.yml"), Format::Yaml)
        .unwrap_or_else(|p| panic!("{p:?}"));
    let as_written = plan.as_written.clone();
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        ON_TIME,
        engine::run(Arc::new(plan), &addr.to_string(), RunOptions::default()),
    )
    .await
    .expect("the run ends on time")
    .expect("the run starts");
    assert!(started.elapsed() < ON_TIME, "took {:?}", started.elapsed());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("result.json");
    let info = RunInfo::new(
        "fault",
        &outcome.target,
        outcome.started_at,
        outcome.started_at + outcome.duration,
    );
    let result = RunResult::new(info, outcome.metrics.clone(), as_written);
    write_result(&path, &result).expect("the result is written");
    let read = read_result(&path).expect("the result reads back");
    assert_eq!(read.aggregate.counters, outcome.metrics.aggregate.counters);
    outcome
}

fn count(outcome: &RunOutcome, name: &str) -> u64 {
    outcome
        .metrics
        .aggregate
        .counters
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Every vuser was created and failed with `kind`, and none of them got a reply.
fn assert_all_failed(outcome: &RunOutcome, kind: &str) {
    assert_all_failed_receiving(outcome, kind);
    assert_eq!(count(outcome, "messages.received"), 0);
}

/// Every vuser was created and failed with `kind`; frames may have arrived.
fn assert_all_failed_receiving(outcome: &RunOutcome, kind: &str) {
    let created = count(outcome, "vusers.created");
    assert!(created >= 5, "{:?}", outcome.metrics.aggregate.counters);
    let errors = count(outcome, &format!("errors.{kind}"));
    assert!(
        errors >= created,
        "errors.{kind}: {errors} of {created}: {:?}",
        outcome.metrics.aggregate.counters
    );
}

/// Runs `serve` on every accepted connection.
async fn hostile<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    addr
}

/// Reads the client's first command, so replies come after the send.
async fn read_some(socket: &mut TcpStream) {
    let mut buffer = [0u8; 256];
    let _ = socket.read(&mut buffer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_is_a_protocol_error_at_the_frame_cap() {
    let addr = hostile(|mut socket| async move {
        read_some(&mut socket).await;
        let chunk = vec![b'x'; 16 * 1024];
        // Without end: only the client closing stops it.
        while socket.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let outcome = run(addr, LINES_64K).await;
    assert_all_failed(&outcome, "protocol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_length_header_is_refused_without_buffering() {
    let addr = hostile(|mut socket| async move {
        read_some(&mut socket).await;
        let _ = socket.write_all(&[0xff, 0xff, 0xff, 0xf0, b'x']).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let outcome = run(addr, LENGTH_U32).await;
    assert_all_failed(&outcome, "protocol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_replies_never_match_and_time_out() {
    let addr = hostile(|mut socket| async move {
        read_some(&mut socket).await;
        let _ = socket
            .write_all(b"\x13\x88garbage\xfe\xff\nNOT A PONG\n")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let outcome = run(addr, LINES_64K).await;
    assert_all_failed_receiving(&outcome, "timeout");
    // Both garbage lines of every vuser arrived and were decoded; neither counted as a reply.
    assert_eq!(
        count(&outcome, "messages.received"),
        2 * count(&outcome, "vusers.created")
    );
    assert!(
        !outcome
            .metrics
            .aggregate
            .summaries
            .contains_key("latency.ping")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_then_close_is_counted_as_closed() {
    let addr = hostile(|socket| async move { drop(socket) }).await;
    let outcome = run(addr, LINES_64K).await;
    let closed = count(&outcome, "errors.closed") + count(&outcome, "errors.reset");
    assert!(
        closed >= count(&outcome, "vusers.created") && closed > 0,
        "{:?}",
        outcome.metrics.aggregate.counters
    );
    assert_eq!(count(&outcome, "messages.received"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_run_is_counted_as_reset() {
    let addr = hostile(|mut socket| async move {
        read_some(&mut socket).await;
        // Linger 0: close sends RST instead of FIN.
        let _ = socket.set_zero_linger();
        drop(socket);
    })
    .await;
    let outcome = run(addr, LINES_64K).await;
    assert_all_failed(&outcome, "reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_reads_or_answers_times_out() {
    let addr = hostile(|socket| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(socket);
    })
    .await;
    let outcome = run(addr, LINES_64K).await;
    assert_all_failed(&outcome, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_reads_fills_its_window_and_the_blocked_send_times_out() {
    // The vusers send 60 KB frames without end to a server that never reads: the server's
    // receive window and the client's send buffer fill (a few MB on loopback) and the next
    // write blocks. It used to block until the graceful stop cancelled the vuser; now it
    // fails as a timeout after the connection's timeout (500 ms) and the run ends on time.
    let addr = hostile(|socket| async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        drop(socket);
    })
    .await;
    let frame = "x".repeat(60_000);
    let text = format!(
        "config:\n  target: \"{addr}\"\n  phases: [{{duration: 1s, arrivalRate: 10}}]\n  \
         defaults: {{timeout: 500ms, gracefulStop: 30s}}\n  protocol: {{maxFrameBytes: 65536}}\n\
         scenarios:\n  - flow:\n      - connect\n      - loop:\n          - send: \"{frame}\"\n        \
         count: 100000\n"
    );
    let started = std::time::Instant::now();
    let outcome = run_text(&text, addr).await;
    assert_all_failed(&outcome, "timeout");
    // The window filled before the write blocked: several frames went out per vuser.
    let created = count(&outcome, "vusers.created");
    assert!(
        count(&outcome, "messages.sent") > 2 * created,
        "{:?}",
        outcome.metrics.aggregate.counters
    );
    // Ended by the timeouts, not by the 30 s graceful stop cancelling blocked vusers.
    assert_eq!(count(&outcome, "vusers.cancelled"), 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_reply_times_out() {
    let addr = hostile(|mut socket| async move {
        read_some(&mut socket).await;
        for byte in b"PONG 1\n" {
            if socket.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let outcome = run(addr, LINES_64K).await;
    assert_all_failed(&outcome, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_accepts_times_out() {
    // Listening, never accepting: the kernel completes the handshakes into the backlog.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let outcome = run(addr, LINES_64K).await;
    assert_all_failed(&outcome, "timeout");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_leaves_counted_errors_and_a_result() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            read_some(&mut socket).await;
            let _ = socket.write_all(b"PONG 1\n").await;
            held.push(socket);
            if held.len() == 3 {
                // Killed: the listener and every connection go at once.
                return;
            }
        }
    });
    let outcome = run(addr, LINES_64K).await;
    let _ = server.await;
    assert_eq!(count(&outcome, "messages.received"), 3);
    let failed = count(&outcome, "errors.connect_refused")
        + count(&outcome, "errors.closed")
        + count(&outcome, "errors.reset");
    assert!(
        failed >= count(&outcome, "vusers.created") - 3,
        "{:?}",
        outcome.metrics.aggregate.counters
    );
}
