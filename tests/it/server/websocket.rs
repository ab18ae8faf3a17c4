//! The WebSocket flavours (ws and wss), with a real tokio-tungstenite client.

use chatload::certs::TestCa;
use chatload::server::{
    BAD_REQUEST_BODY, REFUSED_BODY, ServerConfig, ServerFraming, ServerHandle, ServerTls,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::tls::{client_config, tls_connect};
use super::{STEP, start};

fn ws_server(framing: ServerFraming) -> ServerConfig {
    ServerConfig {
        websocket: true,
        framing,
        ..ServerConfig::default()
    }
}

async fn upgrade<S>(server: &ServerHandle, stream: S) -> Result<WebSocketStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let url = format!("ws://{}/chat", server.addr());
    let upgraded = timeout(STEP, tokio_tungstenite::client_async(url, stream))
        .await
        .expect("upgrade answered in time")?;
    Ok(upgraded.0)
}

async fn ws_connect(server: &ServerHandle) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr()).await.expect("connects");
    upgrade(server, tcp).await.expect("upgrades")
}

/// The next data or close message (tungstenite answers pings by itself).
async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    loop {
        let message = timeout(STEP, ws.next())
            .await
            .expect("a message in time")
            .expect("connection still open")
            .expect("a valid message");
        if !matches!(message, Message::Ping(_)) {
            return message;
        }
    }
}

async fn recv_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    match recv(ws).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

async fn send_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    ws.send(Message::text(text)).await.expect("sends");
}

/// QUIT: `BYE`, then a close frame with code 1000, then the end of the stream.
async fn quit<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    send_text(ws, "QUIT").await;
    assert_eq!(recv_text(ws).await, "BYE");
    match recv(ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let end = timeout(STEP, ws.next()).await.expect("ends in time");
    assert!(
        matches!(end, None | Some(Err(WsError::ConnectionClosed))),
        "{end:?}"
    );
}

#[tokio::test]
async fn websocket_text_chat_one_message_per_command() {
    let server = start(ws_server(ServerFraming::Text)).await;
    let mut ann = ws_connect(&server).await;
    let mut bob = ws_connect(&server).await;
    for (ws, name, members) in [(&mut ann, "ann", 1), (&mut bob, "bob", 2)] {
        send_text(ws, &format!("LOGIN {name}")).await;
        assert_eq!(recv_text(ws).await, format!("OK {name}"));
        send_text(ws, "JOIN lobby").await;
        assert_eq!(recv_text(ws).await, format!("JOINED lobby {members}"));
    }
    send_text(&mut ann, "SAY hi bob").await;
    assert_eq!(recv_text(&mut ann).await, "MSG lobby ann hi bob");
    assert_eq!(recv_text(&mut bob).await, "MSG lobby ann hi bob");
    // A binary message holding UTF-8 is a command too; two lines in one message are not.
    bob.send(Message::binary(&b"PING 7"[..]))
        .await
        .expect("sends");
    assert_eq!(recv_text(&mut bob).await, "PONG 7");
    send_text(&mut bob, "PING 1\nPING 2").await;
    assert!(recv_text(&mut bob).await.starts_with("ERR "));
    // WebSocket pings are answered by the protocol layer.
    bob.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .expect("sends");
    assert_eq!(
        recv(&mut bob).await,
        Message::Pong(Bytes::from_static(b"are you there"))
    );
    quit(&mut bob).await;
    // The room lost bob; ann is still served.
    send_text(&mut ann, "JOIN lobby").await;
    assert_eq!(recv_text(&mut ann).await, "JOINED lobby 1");
    server.shutdown().await;
}

#[tokio::test]
async fn wss_negotiates_http11_and_chats() {
    let ca = TestCa::new("chatload test CA").expect("ca");
    let issued = ca.issue_server(&["localhost"]).expect("server cert");
    let server = start(ServerConfig {
        tls: Some(ServerTls::new(vec![issued.cert_der], issued.key_der)),
        ..ws_server(ServerFraming::Text)
    })
    .await;
    let config = client_config(&ca.cert_der(), None, &[b"http/1.1"]);
    let tls = tls_connect(&server, config, "localhost")
        .await
        .expect("tls");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut ws = upgrade(&server, tls).await.expect("upgrades");
    send_text(&mut ws, "ECHO over wss").await;
    assert_eq!(recv_text(&mut ws).await, "over wss");
    quit(&mut ws).await;
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_binary_one_packet_per_message() {
    let server = start(ws_server(ServerFraming::Binary)).await;
    let mut ws = ws_connect(&server).await;
    // [u16 LE total length][u16 LE type 5 = PING][body]
    ws.send(Message::binary(&[6u8, 0, 5, 0, b'4', b'2'][..]))
        .await
        .expect("sends");
    assert_eq!(
        recv(&mut ws).await,
        Message::binary(&[6u8, 0, 105, 0, b'4', b'2'][..])
    );
    // Two packets in one message: refused, and the connection stays.
    let two: &'static [u8] = &[5, 0, 5, 0, b'a', 5, 0, 5, 0, b'b'];
    ws.send(Message::binary(two)).await.expect("sends");
    match recv(&mut ws).await {
        Message::Binary(packet) => assert_eq!(packet[2..4], [100, 0], "{packet:?}"),
        other => panic!("expected an ERR packet, got {other:?}"),
    }
    ws.send(Message::binary(&[4u8, 0, 7, 0][..]))
        .await
        .expect("sends");
    assert_eq!(recv(&mut ws).await, Message::binary(&[4u8, 0, 107, 0][..]));
    match recv(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame, got {other:?}"),
    }
    server.shutdown().await;
}

/// Sends raw HTTP and reads the whole response (the server closes after it).
async fn raw_http(server: &ServerHandle, request: &str) -> String {
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connects");
    tcp.write_all(request.as_bytes()).await.expect("sends");
    let mut response = Vec::new();
    timeout(STEP, tcp.read_to_end(&mut response))
        .await
        .expect("answered and closed in time")
        .expect("reads");
    String::from_utf8(response).expect("text response")
}

#[tokio::test]
async fn refused_upgrade_gets_the_configured_status() {
    let server = start(ServerConfig {
        ws_refuse: Some(403),
        ..ws_server(ServerFraming::Text)
    })
    .await;
    let tcp = TcpStream::connect(server.addr()).await.expect("connects");
    match upgrade(&server, tcp).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!(
            "expected an HTTP 403, got {:?}",
            other.map(|_| "a websocket")
        ),
    }
    let upgrade_request = "GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let response = raw_http(&server, upgrade_request).await;
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with(&format!("\r\n\r\n{REFUSED_BODY}")),
        "{response}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_get_gets_a_400() {
    let server = start(ws_server(ServerFraming::Text)).await;
    let response = raw_http(&server, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(response.ends_with(BAD_REQUEST_BODY), "{response}");
    // The server is still there for real clients.
    let mut ws = ws_connect(&server).await;
    send_text(&mut ws, "PING ok").await;
    assert_eq!(recv_text(&mut ws).await, "PONG ok");
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_over_the_cap_gets_err_and_close() {
    let server = start(ServerConfig {
        max_frame_bytes: 100,
        ..ws_server(ServerFraming::Text)
    })
    .await;
    let mut ws = ws_connect(&server).await;
    send_text(&mut ws, &format!("ECHO {}", "x".repeat(200))).await;
    let reply = recv_text(&mut ws).await;
    assert!(
        reply.starts_with("ERR message over the size cap"),
        "{reply}"
    );
    assert!(matches!(recv(&mut ws).await, Message::Close(Some(_))));
    server.shutdown().await;
}
