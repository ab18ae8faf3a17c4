//! Slow consumers: a client that never reads is disconnected once the server holds its
//! buffer limit for it — counted in bytes, by the server's own accounting — and the kick
//! closes its socket even while the writer is stuck in a write the client never lets finish.
//! The other clients keep working.

use std::time::Duration;

use chatload::server::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::{Client, STEP, start};

const LIMIT_BYTES: usize = 256 * 1024;

/// Generous bounds: they end a broken test, they do not time a working one.
const GIVE_UP: Duration = Duration::from_secs(60);
const MAX_SENT_BYTES: usize = 512 * 1024 * 1024;

fn config() -> ServerConfig {
    ServerConfig {
        max_buffered_bytes: LIMIT_BYTES,
        ..ServerConfig::default()
    }
}

/// Writes `line` over and over on a client that never reads, until the server disconnects
/// it (a write fails). Panics if the server stops reading without disconnecting (a write
/// blocks) or never disconnects it.
async fn write_until_disconnected(socket: &mut TcpStream, line: &[u8]) -> usize {
    let started = Instant::now();
    let mut sent = 0;
    loop {
        match timeout(STEP, socket.write_all(line)).await {
            Ok(Ok(())) => sent += line.len(),
            Ok(Err(_disconnected)) => return sent,
            Err(_) => panic!("the server stopped reading but kept the client ({sent} bytes sent)"),
        }
        assert!(
            sent < MAX_SENT_BYTES && started.elapsed() < GIVE_UP,
            "the server never disconnected the client ({sent} bytes sent)"
        );
    }
}

async fn assert_released(server: &chatload::server::ServerHandle) {
    let started = Instant::now();
    while server.buffers().bytes != 0 {
        assert!(started.elapsed() < GIVE_UP, "{:?}", server.buffers());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_replies_is_disconnected_at_its_byte_limit() {
    let server = start(config()).await;
    let mut other = Client::text(&server).await;
    other.send("PING 1").await;
    assert_eq!(other.recv().await, "PONG 1");

    let mut silent = TcpStream::connect(server.addr()).await.expect("connects");
    let echo = format!("ECHO {}\n", "x".repeat(8000));
    write_until_disconnected(&mut silent, echo.as_bytes()).await;

    let buffers = server.buffers();
    assert_eq!(buffers.slow_consumers, 1, "{buffers:?}");
    // Bounded by the limit (the other client's replies are a few bytes), not by the queue's
    // 4096 messages (32 MiB of these replies).
    assert!(buffers.peak_bytes <= LIMIT_BYTES + 64, "{buffers:?}");
    assert!(buffers.peak_bytes > LIMIT_BYTES / 2, "{buffers:?}");
    assert_released(&server).await;
    other.send("PING 2").await;
    assert_eq!(other.recv().await, "PONG 2");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_member_that_never_reads_is_disconnected_and_its_socket_closed() {
    let server = start(config()).await;
    let mut talker = Client::text(&server).await;
    talker.login_join("talker", "lobby").await;
    let mut silent = TcpStream::connect(server.addr()).await.expect("connects");
    silent
        .write_all(b"LOGIN silent\nJOIN lobby\n")
        .await
        .expect("sends");
    let started = Instant::now();
    // Flood the room until the silent member is dropped (however late its JOIN is
    // processed); the talker reads its own copies.
    let text = "y".repeat(8000);
    let mut said = 0usize;
    while server.buffers().slow_consumers == 0 {
        talker.send(&format!("SAY {text}")).await;
        let echo = talker.recv().await;
        assert!(echo.starts_with("MSG lobby talker "), "{echo:.40}");
        said += 1;
        assert!(
            said < MAX_SENT_BYTES / 8000 && started.elapsed() < GIVE_UP,
            "never dropped"
        );
    }
    assert!(server.buffers().peak_bytes <= LIMIT_BYTES + 64 * 1024);
    // Closed although it never read: its writes soon fail (the server reset the connection).
    let mut closed = false;
    while started.elapsed() < GIVE_UP {
        if silent.write_all(b"PING 1\n").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the dropped client's socket stayed open");
    assert_released(&server).await;
    talker.send("SAY still here").await;
    assert_eq!(talker.recv().await, "MSG lobby talker still here");
    server.shutdown().await;
}
