//! The fault suite: the engine in-process against hostile in-test servers. Each case ends on
//! time (a hard 60 s bound that only a hang can reach; the runs themselves last about 2 s),
//! counts its failures under the right error kind, returns a result, and keeps memory bounded
//! — asserted through the frame cap (the oversized frame is refused as a protocol error, not
//! buffered) and through the counters, never through RSS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatload::engine::{self, RunOptions, RunOutcome};
use chatload::plan::{self, Format};
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

async fn run(addr: SocketAddr, protocol: &str) -> RunOutcome {
    let text = plan_text(addr, protocol);
    let plan = plan::load_str(&text, Path::new("fault.yml"), Format::Yaml)
        .unwrap_or_else(|p| panic!("{p:?}"));
    tokio::time::timeout(
        Duration::from_secs(60),
        engine::run(Arc::new(plan), &addr.to_string(), RunOptions::default()),
    )
    .await
    .expect("the run ends on time")
    .expect("the run starts")
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
