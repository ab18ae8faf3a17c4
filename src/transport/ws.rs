//! WebSocket (tokio-tungstenite over our own TCP or TLS stream): the HTTP/1.1 upgrade with
//! the plan's subprotocols and headers, and one message = one frame in both directions,
//! through the plan's codec (`FrameCodec::encode_message` / `decode_message`), so a
//! length-prefixed packet or an XOR'd body travels inside a message as it would on a stream.
//!
//! Server pings are answered by tungstenite while reading; they and close frames are reported
//! to the caller as [`Incoming`] events so the engine can count them.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::{ConnectError, Incoming, TransportError};
use crate::protocol::{CodecConfig, FrameCodec};
use crate::vocab::ErrorKind;

/// The client's WebSocket settings: messages and frames capped at `max_message_bytes`, reads
/// of `CodecConfig::WEBSOCKET_READ_CHUNK_BYTES` (the reference server reads the same).
fn websocket_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(CodecConfig::WEBSOCKET_READ_CHUNK_BYTES)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// What every WebSocket connection of a run shares.
#[derive(Debug, Clone)]
pub(super) struct WsClient {
    /// `ws://host:port/path` or `wss://…`: the request target and `Host` header.
    pub url: String,
    pub subprotocols: Vec<String>,
    pub max_message_bytes: usize,
    pub ping_interval: Option<Duration>,
}

impl WsClient {
    /// Sends the upgrade request over `stream` and waits for `101`, within `limit`.
    pub(super) async fn upgrade<S>(
        &self,
        stream: S,
        headers: &[(String, String)],
        codec: FrameCodec,
        limit: Duration,
    ) -> Result<WsConn<S>, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let request = self.request(headers)?;
        let config = websocket_config(self.max_message_bytes);
        let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
        let (ws, _response) = match tokio::time::timeout(limit, handshake).await {
            Err(_) => {
                return Err(ConnectError::new(
                    ErrorKind::WsUpgrade,
                    format!(
                        "the WebSocket upgrade of {} took longer than {limit:?}",
                        self.url
                    ),
                ));
            }
            Ok(Err(err)) => return Err(upgrade_failure(&self.url, err)),
            Ok(Ok(done)) => done,
        };
        let ping = self.ping_interval.map(|every| {
            let mut timer = interval_at(Instant::now() + every, every);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer
        });
        Ok(WsConn {
            ws,
            codec,
            buffer: BytesMut::new(),
            ping,
            ping_due: false,
            queued: None,
            write_limit: None,
        })
    }

    fn request(&self, headers: &[(String, String)]) -> Result<Request, ConnectError> {
        let bad = |detail: String| ConnectError::new(ErrorKind::WsUpgrade, detail);
        let mut request = self.url.as_str().into_client_request().map_err(|e| {
            bad(format!(
                "cannot build the upgrade request for {}: {e}",
                self.url
            ))
        })?;
        let fields = request.headers_mut();
        if !self.subprotocols.is_empty() {
            let offered = self.subprotocols.join(", ");
            let value = HeaderValue::from_str(&offered)
                .map_err(|_| bad(format!("subprotocols {offered:?} are not a header value")))?;
            fields.insert("sec-websocket-protocol", value);
        }
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("`{name}` is not a header name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                bad(format!(
                    "websocket header `{name}` rendered to {value:?}, which is not a header value"
                ))
            })?;
            fields.insert(name, value);
        }
        Ok(request)
    }
}

/// A refused or broken upgrade: `ws_upgrade` with the status and the first line of the body.
fn upgrade_failure(url: &str, err: WsError) -> ConnectError {
    match err {
        WsError::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .and_then(|text| text.lines().next().map(|l| l.trim().to_owned()))
                .filter(|line| !line.is_empty())
                .map(|line| format!(": {}", truncate(&line, 200)))
                .unwrap_or_default();
            ConnectError::new(
                ErrorKind::WsUpgrade,
                format!(
                    "{url} refused the WebSocket upgrade with HTTP {}{body}; check the path, \
                     config.websocket.subprotocols and headers",
                    status
                ),
            )
        }
        WsError::Io(io) => ConnectError::new(
            ErrorKind::of_io(&io),
            format!("the WebSocket upgrade of {url} failed: {io}"),
        ),
        other => ConnectError::new(
            ErrorKind::WsUpgrade,
            format!(
                "the WebSocket upgrade of {url} failed: {other}; is this a WebSocket endpoint?"
            ),
        ),
    }
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// An upgraded connection.
pub struct WsConn<S> {
    ws: WebSocketStream<S>,
    codec: FrameCodec,
    /// Reused for encoding; its bytes are handed to tungstenite per message.
    buffer: BytesMut,
    ping: Option<Interval>,
    /// The ping interval elapsed and the ping is not queued yet.
    ping_due: bool,
    /// A message `queue`d that tungstenite has not taken yet (its sink had no room).
    queued: Option<Message>,
    /// Longest a write may wait for the peer to take the bytes (`Conn::set_write_limit`).
    pub(super) write_limit: Option<Duration>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsConn<S> {
    /// Queues one frame as one message: a text message for a text body, a binary message for
    /// a binary one (`binary`, or a body that is not UTF-8 after the transform). It goes out
    /// with `poll_send_rest`.
    pub(super) fn queue(
        &mut self,
        type_id: Option<u32>,
        body: &[u8],
        binary: bool,
    ) -> Result<(), TransportError> {
        self.buffer.clear();
        self.codec
            .encode_message(type_id, body, &mut self.buffer)
            .map_err(TransportError::Protocol)?;
        let payload = self.buffer.split().freeze();
        self.queued = Some(if binary {
            Message::Binary(payload)
        } else {
            // Cloning `Bytes` is a reference count, not a copy.
            match Utf8Bytes::try_from(payload.clone()) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(payload),
            }
        });
        Ok(())
    }

    /// Hands tungstenite the queued message once it has room, then flushes. A poll over the
    /// connection's own state, so the first try needs no future (a boxed one per message
    /// cost an allocation each); `Pending` keeps whatever is left for the next poll.
    pub(super) fn poll_send_rest(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>> {
        if self.queued.is_some() {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
            if let Some(message) = self.queued.take() {
                Pin::new(&mut self.ws)
                    .start_send(message)
                    .map_err(ws_error)?;
            }
        }
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    /// The next frame or event. Cancel-safe: a message is either returned or still queued.
    /// With `pingInterval`, a due ping is queued and flushed here as well.
    pub(super) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, TransportError>> {
        if let Some(timer) = &mut self.ping
            && timer.poll_tick(cx).is_ready()
        {
            self.ping_due = true;
        }
        if self.ping_due {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    Pin::new(&mut self.ws)
                        .start_send(Message::Ping(Bytes::new()))
                        .map_err(ws_error)?;
                    self.ping_due = false;
                    // Not finished now: the next read or write flushes it.
                    let _ = Pin::new(&mut self.ws).poll_flush(cx);
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(ws_error(err))),
                Poll::Pending => {}
            }
        }
        loop {
            let message = match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => return Poll::Ready(Ok(Incoming::End)),
                Some(Err(err)) => return Poll::Ready(Err(ws_error(err))),
                Some(Ok(message)) => message,
            };
            let payload = match message {
                Message::Text(text) => Bytes::from(text),
                Message::Binary(bytes) => bytes,
                Message::Ping(_) => return Poll::Ready(Ok(Incoming::Ping)),
                Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(frame) => {
                    let (code, reason) = frame.map_or((None, String::new()), |f| {
                        (Some(u16::from(f.code)), f.reason.to_string())
                    });
                    return Poll::Ready(Ok(Incoming::Close { code, reason }));
                }
            };
            return Poll::Ready(
                self.codec
                    .decode_message(payload)
                    .map(Incoming::Frame)
                    .map_err(TransportError::Protocol),
            );
        }
    }

    /// A clean close: close frame 1000, then wait briefly for the server's.
    pub(super) async fn close(mut self) {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::from_static(""),
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            self.ws.close(Some(frame)).await?;
            while self.ws.next().await.is_some() {}
            Ok::<_, WsError>(())
        })
        .await;
    }
}

fn ws_error(err: WsError) -> TransportError {
    match err {
        WsError::Io(io) => TransportError::Io(io),
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Io(
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the WebSocket is closed"),
        ),
        WsError::Capacity(cap) => TransportError::Message(format!(
            "{cap}; raise config.websocket.maxMessageBytes if such messages are expected"
        )),
        other => TransportError::Message(other.to_string()),
    }
}
