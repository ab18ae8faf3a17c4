//! Transport tests that need no network: framed I/O over an in-memory duplex.

use super::*;
use crate::protocol::CodecConfig;

fn duplex_pair() -> (Conn, Conn) {
    let codec = FrameCodec::new(CodecConfig::lines()).expect("codec");
    let (a, b) = tokio::io::duplex(1024);
    (
        Conn::Duplex(FramedStream::split(a, codec.clone())),
        Conn::Duplex(FramedStream::split(b, codec)),
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
