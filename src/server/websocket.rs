//! The WebSocket flavour: the HTTP/1.1 upgrade (on any path), then ONE message = ONE
//! command. Text flavour: a text message (or a binary one holding UTF-8) is one command line
//! without its newline, and replies are text messages without it. Binary flavour: each
//! binary message holds exactly one `[u16 LE length][u16 LE type][body]` packet, and so does
//! each reply. Pings are answered by tungstenite; a close from the client ends the session.
//!
//! Owns only the mapping between messages and the server's frames ([`WsInbound`],
//! [`WsOutput`]); the chat logic is the shared `Session`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::protocol::{CodecConfig, Frame, FrameCodec};
use crate::server::connection::{Inbound, serve_with};
use crate::server::tls::HANDSHAKE_TIMEOUT;
use crate::server::writer::Output;
use crate::server::{ServerFraming, Shared};

/// The body of the response to a request that is not a WebSocket upgrade.
pub const BAD_REQUEST_BODY: &str =
    "expected a WebSocket upgrade (GET with Connection: Upgrade and Upgrade: websocket)";
/// The body of the response when the server refuses upgrades (`ServerConfig::ws_refuse`).
pub const REFUSED_BODY: &str = "upgrade refused by test server";
/// How long, after the server sent its close frame, it waits for the client's, so the
/// closing handshake completes before the socket closes (closing at once could reset the
/// connection before the client has read the last messages).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Upgrades `stream` and serves the session over it.
pub async fn serve<S>(
    mut stream: S,
    shared: &Arc<Shared>,
    kick: &CancellationToken,
    over_limit: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = ws_config(shared.config.max_frame_bytes);
    let refuse = shared.config.ws_refuse;
    // The error type is tungstenite's `Callback` contract, large or not.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, response: Response| match refuse {
        Some(status) => Err(refusal(status)),
        None => Ok(accept_subprotocol(request, response)),
    };
    // The handshake borrows the stream, so a request that is not an upgrade can still be
    // answered with a 400 on it (tungstenite itself answers nothing in that case).
    let upgrade =
        tokio_tungstenite::accept_hdr_async_with_config(&mut stream, callback, Some(config));
    let upgraded = tokio::select! {
        _ = kick.cancelled() => return,
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade) => result,
    };
    match upgraded {
        // Nothing is buffered in the borrowed WebSocket once the upgrade is done (tungstenite
        // rejects bytes after the request), so the owned stream can be wrapped afresh.
        Ok(Ok(_borrowed)) => {}
        Ok(Err(error)) => {
            if answers_bad_request(&error) {
                let _ = bad_request(&mut stream).await;
            }
            return;
        }
        Err(_elapsed) => return,
    }
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let (sink, read) = ws.split();
    let framing = shared.config.framing;
    let mut inbound = WsInbound {
        read,
        framing,
        codec: shared.codec.clone(),
    };
    let output = WsOutput {
        sink,
        framing,
        batch: Vec::new(),
        pending: 0,
    };
    let output = serve_with(&mut inbound, output, shared, kick, over_limit).await;
    // Our close frame is out (the writer sent it): wait for the client's, briefly, then end
    // the stream itself, which over TLS sends close_notify.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while inbound.next().await.is_some() {}
        let Some(output) = output else { return };
        if let Ok(ws) = inbound.read.reunite(output.sink) {
            let _ = ws.into_inner().shutdown().await;
        }
    })
    .await;
}

/// The server's WebSocket settings: frames capped at `max_frame_bytes`, reads of
/// `CodecConfig::WEBSOCKET_READ_CHUNK_BYTES` (the client reads the same).
fn ws_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(CodecConfig::WEBSOCKET_READ_CHUNK_BYTES)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// The response of a server told to refuse upgrades; `status` is validated as 4xx/5xx.
/// Chooses the client's first offered subprotocol, as a server that speaks them all would:
/// clients that offer one refuse an upgrade that names none.
fn accept_subprotocol(request: &Request, mut response: Response) -> Response {
    let first = request
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|offered| offered.to_str().ok())
        .and_then(|offered| offered.split(',').next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .and_then(|name| name.parse().ok());
    if let Some(chosen) = first {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", chosen);
    }
    response
}

fn refusal(status: u16) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(REFUSED_BODY.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, REFUSED_BODY.len().into());
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether the failed upgrade was the client's malformed or non-upgrade request (which
/// deserves a 400), as opposed to a dead connection or a refusal already answered.
fn answers_bad_request(error: &WsError) -> bool {
    !matches!(
        error,
        WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Http(_)
    )
}

async fn bad_request<S: AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{BAD_REQUEST_BODY}",
        BAD_REQUEST_BODY.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The client's messages as commands.
pub struct WsInbound<S> {
    read: SplitStream<WebSocketStream<S>>,
    framing: ServerFraming,
    codec: FrameCodec,
}

impl<S> WsInbound<S> {
    fn command(&mut self, payload: Bytes, was_text: bool) -> Inbound {
        match self.framing {
            ServerFraming::Text => {
                // A trailing newline is tolerated; one inside would be a second command.
                let line = strip_newline(payload);
                if line.contains(&b'\n') {
                    Inbound::Bad("one message holds one command: no newline inside".to_string())
                } else {
                    Inbound::Command(Frame::text(line))
                }
            }
            ServerFraming::Binary if was_text => Inbound::Bad(
                "the binary flavour takes binary messages, one packet each".to_string(),
            ),
            ServerFraming::Binary => {
                let mut buffer = BytesMut::from(&payload[..]);
                match self.codec.decode(&mut buffer) {
                    Ok(Some(frame)) if buffer.is_empty() => Inbound::Command(frame),
                    Ok(Some(_)) => Inbound::Bad(
                        "a binary message must hold exactly one packet, this one holds more"
                            .to_string(),
                    ),
                    Ok(None) => Inbound::Bad(format!(
                        "a binary message of {} bytes holds no complete packet",
                        payload.len()
                    )),
                    Err(error) => Inbound::Bad(error.to_string()),
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsInbound<S> {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        loop {
            let item = match ready!(self.read.poll_next_unpin(cx)) {
                Some(Ok(Message::Text(text))) => self.command(Bytes::from(text), true),
                Some(Ok(Message::Binary(bytes))) => self.command(bytes, false),
                // tungstenite queues the pong itself (sent with the next read or write).
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(WsError::Capacity(error))) => {
                    Inbound::Fatal(format!("message over the size cap: {error}"))
                }
                // A close from the client (tungstenite answers it), or the connection is gone.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Poll::Ready(None),
            };
            return Poll::Ready(Some(item));
        }
    }
}

fn strip_newline(mut line: Bytes) -> Bytes {
    if line.ends_with(b"\n") {
        line.truncate(line.len() - 1);
        if line.ends_with(b"\r") {
            line.truncate(line.len() - 1);
        }
    }
    line
}

/// The connection's replies as messages: one encoded reply per message, sharing its bytes.
pub struct WsOutput<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    framing: ServerFraming,
    batch: Vec<Message>,
    pending: usize,
}

impl<S> Output for WsOutput<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn push(&mut self, message: Bytes) {
        self.pending += message.len();
        let message = match self.framing {
            ServerFraming::Binary => Message::Binary(message),
            // Replies are encoded as lines; the message boundary replaces the newline.
            // Slicing shares the bytes, so a broadcast still costs no copy per member.
            ServerFraming::Text => {
                let line = strip_newline(message);
                match Utf8Bytes::try_from(line.clone()) {
                    Ok(text) => Message::Text(text),
                    // Replies are built from text, so this is not expected; still no panic.
                    Err(_) => Message::Binary(line),
                }
            }
        };
        self.batch.push(message);
    }

    fn pending(&self) -> usize {
        self.pending
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.pending = 0;
        for message in self.batch.drain(..) {
            // `feed` only buffers; the one `flush` below writes the whole batch.
            self.sink
                .feed(message)
                .await
                .map_err(std::io::Error::other)?;
        }
        self.sink.flush().await.map_err(std::io::Error::other)
    }

    async fn finish(mut self, clean: bool) -> Self {
        // 1000 after a last message (`BYE`, or an `ERR` that ends the session); 1001 when
        // the server stops or drops a slow consumer.
        let code = if clean {
            CloseCode::Normal
        } else {
            CloseCode::Away
        };
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(""),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_is_stripped_once_and_shares_the_bytes() {
        let line = Bytes::from_static(b"MSG lobby ann hi\n");
        let stripped = strip_newline(line.clone());
        assert_eq!(&stripped[..], b"MSG lobby ann hi");
        assert_eq!(stripped.as_ptr(), line.as_ptr(), "copied instead of sliced");
        assert_eq!(&strip_newline(Bytes::from_static(b"x\r\n"))[..], b"x");
        assert_eq!(&strip_newline(Bytes::from_static(b"x\n\n"))[..], b"x\n");
        assert_eq!(&strip_newline(Bytes::from_static(b"x"))[..], b"x");
    }

    #[test]
    fn refusal_carries_status_and_body() {
        let response = refusal(403);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.body().as_deref(), Some(REFUSED_BODY));
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            REFUSED_BODY.len().to_string().as_str()
        );
        assert_eq!(refusal(503).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn only_request_errors_get_a_400() {
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        assert!(answers_bad_request(&WsError::Protocol(
            ProtocolError::MissingConnectionUpgradeHeader
        )));
        assert!(!answers_bad_request(&WsError::ConnectionClosed));
        assert!(!answers_bad_request(&WsError::Io(std::io::Error::other(
            "reset"
        ))));
    }
}
