//! Transport tests: framed I/O over an in-memory duplex, and plain TCP's immediate writes
//! over loopback (the one transport that writes into the socket itself).

use super::*;
use crate::protocol::CodecConfig;

fn duplex_pair() -> (Conn, Conn) {
    let codec = FrameCodec::new(CodecConfig::lines()).expect("codec");
    let (a, b) = tokio::io::duplex(1024);
    (
        Conn::Duplex(FramedStream::new(a, codec.clone())),
        Conn::Duplex(FramedStream::new(b, codec)),
    )
}

#[tokio::test(start_paused = true)]
async fn a_frame_sent_on_one_end_is_received_whole_on_the_other() {
    let (mut left, mut right) = duplex_pair();
    left.send(None, b"PING 1", false).await.expect("send");
    left.send(None, b"PING 2", false).await.expect("send");
    for expected in ["PING 1", "PING 2"] {
        match right.recv().await.expect("recv") {
            Incoming::Frame(frame) => assert_eq!(frame, Frame::text(expected)),
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    left.close().await;
    assert!(matches!(right.recv().await.expect("eof"), Incoming::End));
}

#[tokio::test(start_paused = true)]
async fn recv_is_cancel_safe_under_select() {
    let (mut left, mut right) = duplex_pair();
    // A recv cancelled by a timer loses nothing: the frame sent later is read whole.
    let timer = tokio::time::sleep(Duration::from_millis(10));
    tokio::select! {
        _ = right.recv() => panic!("nothing was sent yet"),
        _ = timer => {}
    }
    left.send(None, b"late", false).await.expect("send");
    match right.recv().await.expect("recv") {
        Incoming::Frame(frame) => assert_eq!(frame.body_str(), Some("late")),
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_bigger_than_the_peers_room_arrives_whole_once_the_peer_reads() {
    // The duplex holds 1 024 bytes: the first try writes part, the rest waits for the reader.
    let (mut left, mut right) = duplex_pair();
    let body = "x".repeat(4000);
    let (sent, received) = tokio::join!(left.send(None, body.as_bytes(), false), right.recv());
    sent.expect("send");
    match received.expect("recv") {
        Incoming::Frame(frame) => assert_eq!(frame.body_str(), Some(body.as_str())),
        other => panic!("expected a frame, got {other:?}"),
    }
    // The buffer the partial write left behind is not sent again with the next message.
    let (sent, received) = tokio::join!(left.send(None, b"next", false), right.recv());
    sent.expect("send");
    match received.expect("recv") {
        Incoming::Frame(frame) => assert_eq!(frame.body_str(), Some("next")),
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_the_peer_never_takes_fails_at_the_write_limit() {
    let (mut left, _right) = duplex_pair();
    left.set_write_limit(Some(Duration::from_secs(2)));
    let began = tokio::time::Instant::now();
    let err = left
        .send(None, "x".repeat(4000).as_bytes(), false)
        .await
        .expect_err("nobody reads");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(began.elapsed(), Duration::from_secs(2));
}

#[test]
fn errors_keep_their_kind() {
    let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
    assert_eq!(TransportError::Io(eof).kind(), ErrorKind::Closed);
    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "rst");
    assert_eq!(
        TransportError::Protocol(ProtocolError::Io(reset)).kind(),
        ErrorKind::Reset
    );
    assert_eq!(
        TransportError::Protocol(ProtocolError::TerminatorInBody).kind(),
        ErrorKind::Protocol
    );
}

#[test]
fn tls_records_are_recognised() {
    assert!(looks_like_tls_record(&[
        0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32
    ]));
    assert!(looks_like_tls_record(&[0x16, 0x03, 0x01, 0x00]));
    assert!(!looks_like_tls_record(b"PONG x"));
    assert!(!looks_like_tls_record(&[0x15, 0x03]));
}

/// A TCP connection whose socket takes little at once (4 KiB send buffer), and its peer.
async fn plain_pair() -> (Conn, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(4096).expect("send buffer");
    let ours = socket
        .connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (theirs, _) = listener.accept().await.expect("accept");
    let codec = FrameCodec::new(CodecConfig::lines()).expect("codec");
    (Conn::Plain(FramedStream::new(ours, codec)), theirs)
}

#[tokio::test]
async fn an_encoded_frame_the_socket_takes_in_part_is_finished_before_the_next_one() {
    use tokio::io::AsyncReadExt;

    let (mut conn, mut peer) = plain_pair().await;
    // Far more than the peer's receive buffer holds while it is not reading: the socket
    // takes part of it at once and the rest only as the peer reads.
    let body = vec![b'a'; 600_000];
    let encoded = conn
        .encode_text(&body)
        .expect("plain TCP encodes a text frame");
    assert_eq!(&encoded[..], [&body[..], b"\n"].concat());
    // The peer reads only once the send waits (one thread: the reader runs when it yields).
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.map(|_| all)
    });
    // The immediate write takes only part of the frame and keeps the rest...
    let Conn::Plain(stream) = &mut conn else {
        panic!("plain_pair gives a plain TCP connection");
    };
    let whole = stream.send_encoded_now(&encoded).expect("write");
    assert!(
        !whole,
        "the socket took 600 kB at once: the test proves nothing"
    );
    // ...which the rest of the send writes, before anything sent after it.
    conn.send_rest().await.expect("send");
    conn.send_text(b"after", None).await.expect("send");
    conn.close().await;
    let received = reader.await.expect("reader").expect("read");
    assert_eq!(received.len(), body.len() + "\nafter\n".len());
    assert_eq!(received, [&body[..], b"\nafter\n"].concat());
}

#[tokio::test(start_paused = true)]
async fn a_socket_stream_hands_out_encoded_frames_a_test_duplex_does_not() {
    let (left, _right) = duplex_pair();
    assert_eq!(left.encode_text(b"PING 1"), None);
    let (plain, _peer) = plain_pair().await;
    assert_eq!(
        plain.encode_text(b"PING 1").as_deref(),
        Some(&b"PING 1\n"[..])
    );
    // A text the codec refuses is not encoded (its send reports the error).
    assert_eq!(plain.encode_text(b"two\nlines"), None);
}

/// `Connector::connect`'s signature, for one lifetime.
type ConnectFn<'a, F> = fn(&'a Connector, u64, Duration, &'a [(String, String)]) -> F;

/// The size of what `Connector::connect` returns, without calling it.
fn connect_future_bytes<'a, F: Future + 'a>(_: ConnectFn<'a, F>) -> usize {
    std::mem::size_of::<F>()
}

/// Every vuser that is connecting holds this future (boxed) until it is connected: in a
/// connect storm, thousands of them wait on SYN retries at once, and what they held stays
/// behind as heap fragmentation (memory per connected idle vuser, docs/performance.md). The
/// TLS handshake and the WebSocket upgrade are boxed inside it, so a plain TCP connect does
/// not pay for them; inline, this future was ~10 KiB.
#[test]
fn a_pending_connect_holds_little() {
    let bytes = connect_future_bytes(Connector::connect);
    assert!(bytes <= 1_024, "the connect future is {bytes} bytes");
}

/// A WebSocket connection upgraded by `WsClient` against tungstenite's server side, which the
/// test reads from (or not) as it likes.
async fn ws_pair() -> (
    Conn,
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        tokio_tungstenite::accept_async(socket)
            .await
            .expect("accept upgrade")
    });
    let client = ws::WsClient {
        url: format!("ws://{addr}/"),
        subprotocols: Vec::new(),
        max_message_bytes: CodecConfig::DEFAULT_MAX_FRAME_BYTES,
        ping_interval: None,
    };
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let codec = FrameCodec::new(CodecConfig::lines()).expect("codec");
    let conn = client
        .upgrade(tcp, &[], codec, Duration::from_secs(10))
        .await
        .expect("upgrade");
    (Conn::Ws(Box::new(conn)), server.await.expect("server"))
}

#[tokio::test]
async fn websocket_messages_of_many_reads_arrive_whole_and_in_order() {
    use futures_util::StreamExt;
    let (mut conn, mut peer) = ws_pair().await;
    let big = "y".repeat(900 * 1024);
    let reader = tokio::spawn(async move {
        let mut bodies = Vec::new();
        while bodies.len() < 3 {
            match peer.next().await {
                Some(Ok(message)) if message.is_text() => {
                    bodies.push(message.into_text().expect("text").to_string())
                }
                Some(Ok(_)) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
        bodies
    });
    for body in [big.as_str(), "after", big.as_str()] {
        conn.send(None, body.as_bytes(), false).await.expect("send");
    }
    let bodies = reader.await.expect("reader");
    assert_eq!(bodies.len(), 3);
    assert!(bodies[0] == big && bodies[1] == "after" && bodies[2] == big);
}

#[tokio::test]
async fn a_websocket_write_the_peer_never_takes_fails_at_the_write_limit() {
    let (mut conn, _peer) = ws_pair().await;
    conn.set_write_limit(Some(Duration::from_millis(200)));
    let body = "z".repeat(512 * 1024);
    // Loopback buffers take a few MiB at most; 256 MiB unread cannot all be taken.
    let mut failure = None;
    for _ in 0..512 {
        if let Err(err) = conn.send(None, body.as_bytes(), false).await {
            failure = Some(err);
            break;
        }
    }
    let err = failure.expect("a peer that never reads made a write wait past its limit");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}
