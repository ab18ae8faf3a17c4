//! Integration tests: `chatload probe`, the real binary against in-process servers.

use std::net::SocketAddr;
use std::time::Duration;

use chatload::server::{self, ServerConfig, ServerFraming};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

struct Outcome {
    code: Option<i32>,
    stdout: String,
}

async fn probe(args: &[&str]) -> Outcome {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatload"))
        .arg("probe")
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("probe finishes in time")
        .expect("probe runs");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_five_replies_with_round_trip_times() {
    let server = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let out = probe(&[&server.addr().to_string()]).await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    for n in 1..=5 {
        let line = out
            .stdout
            .lines()
            .find(|line| line.contains(&format!("\"PONG probe-{n}\"")))
            .unwrap_or_else(|| panic!("no reply {n} in:\n{}", out.stdout));
        assert!(
            line.trim_end().ends_with(" ms"),
            "no round-trip time: {line}"
        );
    }
    assert!(out.stdout.contains("5/5 replies"), "{}", out.stdout);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_of_a_closed_port_says_connection_refused() {
    let (_held, addr) = crate::refusing_port();
    let out = probe(&[&addr.to_string()]).await;
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(out.stdout.contains("connection refused"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_with_the_wrong_framing_times_out_and_fails() {
    let server = server::spawn(ServerConfig {
        framing: ServerFraming::Binary,
        ..ServerConfig::default()
    })
    .await
    .expect("server");
    let out = probe(&[
        &server.addr().to_string(),
        "--timeout",
        "300ms",
        "--count",
        "2",
    ])
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(out.stdout.contains("timeout"), "{}", out.stdout);
    server.shutdown().await;
}

/// A fake server that answers every connection with `reply`, then closes it or holds it open.
async fn fake_server(reply: &'static [u8], close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(reply).await;
            if close {
                drop(socket);
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(socket);
                });
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_explains_undecodable_replies() {
    let addr = fake_server(b"\x00\x01\x02binary-ish", false).await;
    let out = probe(&[&addr.to_string(), "--timeout", "300ms"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(
        out.stdout.contains("nothing that decodes as lines frames"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("00 01 02"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_a_peer_that_closes() {
    let addr = fake_server(b"", true).await;
    let out = probe(&[&addr.to_string(), "--timeout", "2s"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(
        out.stdout.contains("closed by peer") || out.stdout.contains("reset by peer"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_with_a_plan_uses_its_framing_transform_and_message() {
    let server = server::spawn(ServerConfig {
        framing: ServerFraming::Binary,
        xor_key: Some(b"k3y".to_vec()),
        ..ServerConfig::default()
    })
    .await
    .expect("server");
    let addr = server.addr().to_string();
    let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/plans/binary-xor.yml");
    let out = probe(&[&addr, "--plan", plan, "--message", "login", "--count", "3"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stdout.contains("message login"), "{}", out.stdout);
    assert!(
        out.stdout.contains("framing: lengthPrefixed"),
        "{}",
        out.stdout
    );
    // type 101 = OK: the server understood the XOR-obfuscated binary LOGIN.
    assert_eq!(
        out.stdout.matches("type 101 \"bin0\"").count(),
        3,
        "{}",
        out.stdout
    );

    let unknown = probe(&[&addr, "--plan", plan, "--message", "nope"]).await;
    assert_eq!(unknown.code, Some(2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_with_a_text_plan_sends_its_first_send_step() {
    let server = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/plans/basic.yml");
    let out = probe(&[&server.addr().to_string(), "--plan", plan, "--count", "2"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("\"OK user0\"").count(),
        2,
        "{}",
        out.stdout
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_speaks_websocket_and_times_the_upgrade() {
    let config = ServerConfig {
        websocket: true,
        ..ServerConfig::default()
    };
    let server = server::spawn(config.clone()).await.expect("server");
    let url = config.client_address(server.addr());
    let out = probe(&[&url]).await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stdout.contains("WebSocket upgrade"), "{}", out.stdout);
    assert!(out.stdout.contains("\"PONG probe-3\""), "{}", out.stdout);
    assert!(out.stdout.contains("5/5 replies"), "{}", out.stdout);
    server.shutdown().await;
}

/// Answers every line with a line of random bytes (seeded: the same garbage every time).
async fn garbage_server() -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut state = 0x2545_f491_4f6c_dd1d_u64;
                while let Ok(Some(_)) = lines.next_line().await {
                    let mut noise: Vec<u8> = (0..24)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            // Anything but the line end, so each reply is one line.
                            (state as u8).max(0x0b)
                        })
                        .collect();
                    noise.push(b'\n');
                    if write.write_all(&noise).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_does_not_count_garbage_as_replies() {
    let addr = garbage_server().await;
    let out = probe(&[&addr.to_string(), "--timeout", "5s"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(!out.stdout.contains("5/5 replies"), "{}", out.stdout);
    assert!(
        out.stdout.contains("reply 1 is not an answer to the probe"),
        "{}",
        out.stdout
    );

    // The same with a plan: a line that does not match the send step's expect is no reply.
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("plan.yml");
    std::fs::write(
        &plan,
        "config:\n  target: embedded\n  phases: [{duration: 1s, vusers: 1}]\nscenarios:\n  \
         - flow:\n      - connect\n      - send: \"LOGIN ann\"\n        expect: {match: \"^OK\"}\n",
    )
    .expect("plan written");
    let plan = plan.to_str().expect("utf-8");
    let out = probe(&[&addr.to_string(), "--plan", plan, "--timeout", "5s"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert!(out.stdout.contains("not an answer"), "{}", out.stdout);
    let server = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let out = probe(&[&server.addr().to_string(), "--plan", plan, "--count", "2"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stdout.contains("2/2 replies"), "{}", out.stdout);
    server.shutdown().await;
}
