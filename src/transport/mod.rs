//! Everything between a flow step and the socket: resolving the target URL, the TCP connect
//! (with `sourceAddresses`), TLS (rustls), the WebSocket upgrade (tokio-tungstenite), and
//! framed I/O. The engine sees one [`Connector`] per run and one [`Conn`] per connection,
//! with `send` / `recv` whatever the transport.
//!
//! [`Conn`] is an enum over the kinds (plain stream, TLS stream, WebSocket, WebSocket over
//! TLS), not a boxed trait object: the per-message path is a match, no virtual call and no
//! boxed future. It records no metrics: it reports timings and events (pings, close codes)
//! and the engine counts them. Framing itself is `protocol`'s. HTTP requests go through
//! [`http`]: hyper's connections over the same TCP connect and TLS.

mod connect;
pub mod http;
mod stream;
mod tls;
mod ws;

use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

pub use connect::exhaustion_hint;
pub(crate) use connect::nofile_limit;
pub use stream::FramedStream;
pub use ws::WsConn;

use crate::certs::CertError;
use crate::plan::{Endpoint, Scheme, TlsSettings, WebSocketSettings};
use crate::protocol::{Frame, FrameCodec, ProtocolError};
use crate::vocab::ErrorKind;

/// One open connection. The TLS and WebSocket states are large, so they are boxed: a vuser
/// on plain TCP pays only for what it uses. The plain variant stays inline on purpose: it is
/// the common, fastest case, and boxing it would add a pointer chase per message.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    Plain(FramedStream<TcpStream>),
    Tls(Box<FramedStream<TlsStream<TcpStream>>>),
    Ws(Box<WsConn<TcpStream>>),
    Wss(Box<WsConn<TlsStream<TcpStream>>>),
    /// An in-memory connection for tests (paused-clock flows without sockets).
    #[cfg(test)]
    Duplex(FramedStream<tokio::io::DuplexStream>),
}

/// What a read produced.
#[derive(Debug)]
pub enum Incoming {
    Frame(Frame),
    /// The server pinged (WebSocket); the pong has been sent.
    Ping,
    /// The server closed the WebSocket with this code.
    Close {
        code: Option<u16>,
        reason: String,
    },
    /// The stream ended.
    End,
}

/// A failure on an open connection.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Protocol(ProtocolError),
    #[error("{0}")]
    Io(std::io::Error),
    /// A WebSocket protocol violation or an oversized message.
    #[error("{0}")]
    Message(String),
    /// TLS failed after the handshake seemed done: with TLS 1.3 a server that refuses the
    /// client's certificate says so on the first read.
    #[error("{detail}")]
    Tls { kind: ErrorKind, detail: String },
}

impl From<std::io::Error> for TransportError {
    fn from(io: std::io::Error) -> Self {
        match tls::classify_alert(&io) {
            Some(failure) => TransportError::Tls {
                kind: failure.kind,
                detail: failure.detail,
            },
            None => TransportError::Io(io),
        }
    }
}

impl TransportError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransportError::Protocol(ProtocolError::Io(io)) | TransportError::Io(io) => {
                ErrorKind::of_io(io)
            }
            TransportError::Protocol(_) | TransportError::Message(_) => ErrorKind::Protocol,
            TransportError::Tls { kind, .. } => *kind,
        }
    }
}

impl Conn {
    /// Sends one frame. `binary` says the body is binary data (typed fields, hex): on
    /// WebSocket it goes as a binary message; streams ignore it.
    pub async fn send(
        &mut self,
        type_id: Option<u32>,
        body: &[u8],
        binary: bool,
    ) -> Result<(), TransportError> {
        // Streams encode into their write buffer first; plain TCP hands the socket the frame
        // there too, with no future, and is done when it takes it whole. WebSocket queues the
        // message for tungstenite.
        let done = match self {
            Conn::Plain(stream) => stream.send_now(type_id, body)?,
            Conn::Tls(stream) => stream.send_now(type_id, body)?,
            #[cfg(test)]
            Conn::Duplex(stream) => stream.send_now(type_id, body)?,
            Conn::Ws(ws) => ws.queue(type_id, body, binary).map(|()| false)?,
            Conn::Wss(ws) => ws.queue(type_id, body, binary).map(|()| false)?,
        };
        if done {
            return Ok(());
        }
        self.send_rest().await
    }

    /// The frame of the text `body` as this connection writes it, for [`Conn::send_text`]:
    /// `Some` for the streams (plain TCP and TLS), which write a given frame as it is.
    pub fn encode_text(&self, body: &[u8]) -> Option<Bytes> {
        match self {
            Conn::Plain(stream) => stream.encode(body),
            Conn::Tls(stream) => stream.encode(body),
            _ => None,
        }
    }

    /// Sends the text `body`. `encoded`: its frame from [`Conn::encode_text`] on a connection
    /// of the same run (the same codec), written as it is instead of encoding `body` again
    /// (a literal message is encoded once per run, not once per send).
    pub async fn send_text(
        &mut self,
        body: &[u8],
        encoded: Option<&[u8]>,
    ) -> Result<(), TransportError> {
        let done = match (&mut *self, encoded) {
            (Conn::Plain(stream), Some(frame)) => stream.send_encoded_now(frame)?,
            (Conn::Tls(stream), Some(frame)) => stream.send_encoded_now(frame)?,
            _ => return self.send(None, body, false).await,
        };
        if done {
            return Ok(());
        }
        self.send_rest().await
    }

    /// Writes what `send_now` or `queue` left. The first try is a poll of the connection's
    /// own buffer with no future of its own: TLS (whose records rustls builds) and WebSocket
    /// get here with every message, and boxing their write cost an allocation per message.
    /// Only a write the peer has no room for goes on in [`Conn::wait_send_boxed`].
    async fn send_rest(&mut self) -> Result<(), TransportError> {
        match std::future::poll_fn(|cx| Poll::Ready(self.poll_send_rest(cx))).await {
            Poll::Ready(sent) => sent,
            Poll::Pending => self.wait_send_boxed().await,
        }
    }

    fn poll_send_rest(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        match self {
            Conn::Plain(stream) => stream.poll_send_rest(cx),
            Conn::Tls(stream) => stream.poll_send_rest(cx),
            Conn::Ws(ws) => ws.poll_send_rest(cx),
            Conn::Wss(ws) => ws.poll_send_rest(cx),
            #[cfg(test)]
            Conn::Duplex(stream) => stream.poll_send_rest(cx),
        }
    }

    /// [`Conn::wait_send`] on the heap. Boxed because a send's future sits inside every
    /// vuser's future for its whole life, sized for its largest path (a write the peer is
    /// slow to take, with its timer), while almost no send gets here: one allocation on the
    /// slow path instead of hundreds of bytes per idle vuser.
    async fn wait_send_boxed(&mut self) -> Result<(), TransportError> {
        Box::pin(self.wait_send()).await
    }

    /// Waits until the peer takes what a send left, within the write limit.
    async fn wait_send(&mut self) -> Result<(), TransportError> {
        let limit = self.write_limit();
        let write = std::future::poll_fn(|cx| self.poll_send_rest(cx));
        let Some(limit) = limit else {
            return write.await;
        };
        // A peer that never reads fills its receive window and ours, and the write then
        // waits for ever: it fails as a timeout instead, and the connection is given up.
        tokio::time::timeout(limit, write)
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the server took in nothing for {limit:?}: it does not read"),
                )))
            })
    }

    /// Writes that wait longer than `limit` for the peer to take their bytes fail as
    /// timeouts (`None`: no limit). The connector sets the connection's step timeout.
    pub fn set_write_limit(&mut self, limit: Option<Duration>) {
        match self {
            Conn::Plain(stream) => stream.write_limit = limit,
            Conn::Tls(stream) => stream.write_limit = limit,
            Conn::Ws(ws) => ws.write_limit = limit,
            Conn::Wss(ws) => ws.write_limit = limit,
            #[cfg(test)]
            Conn::Duplex(stream) => stream.write_limit = limit,
        }
    }

    fn write_limit(&self) -> Option<Duration> {
        match self {
            Conn::Plain(stream) => stream.write_limit,
            Conn::Tls(stream) => stream.write_limit,
            Conn::Ws(ws) => ws.write_limit,
            Conn::Wss(ws) => ws.write_limit,
            #[cfg(test)]
            Conn::Duplex(stream) => stream.write_limit,
        }
    }

    /// The next frame or event; cancel-safe (use it in `select!`). A small poll-based
    /// future: it is created on every wait of every vuser, so it holds nothing but `self`.
    pub fn recv(&mut self) -> impl Future<Output = Result<Incoming, TransportError>> + '_ {
        std::future::poll_fn(move |cx| self.poll_recv(cx))
    }

    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, TransportError>> {
        match self {
            Conn::Plain(stream) => stream.poll_recv(cx),
            Conn::Tls(stream) => stream.poll_recv(cx),
            Conn::Ws(ws) => ws.poll_recv(cx),
            Conn::Wss(ws) => ws.poll_recv(cx),
            #[cfg(test)]
            Conn::Duplex(stream) => stream.poll_recv(cx),
        }
    }

    /// Ends the connection cleanly: a half-close on streams (with TLS close_notify), a
    /// close frame on WebSocket.
    pub async fn close(self) {
        match self {
            Conn::Plain(stream) => stream.close().await,
            Conn::Tls(stream) => stream.close().await,
            Conn::Ws(ws) => ws.close().await,
            Conn::Wss(ws) => ws.close().await,
            #[cfg(test)]
            Conn::Duplex(stream) => stream.close().await,
        }
    }
}

/// Whether `bytes` start like a TLS record (handshake or alert, TLS 1.0-1.3): what a
/// TLS-only port sends back to a client that spoke plain text to it.
pub fn looks_like_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, 0x01..=0x04, ..])
}

/// Why the transport could not be set up for the run (before any connection).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot resolve target `{target}`: {reason}")]
    Resolve { target: String, reason: String },
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("TLS settings: {0}")]
    Cert(#[from] CertError),
}

/// Why one connection attempt failed: the error kind and what happened, with a fix when
/// there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl ConnectError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        ConnectError {
            kind,
            detail: detail.into(),
        }
    }
}

/// How long each stage of opening a connection took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// The TCP connect.
    pub tcp: Duration,
    /// The TLS handshake, for TLS transports.
    pub tls: Option<Duration>,
    /// Upgrade request sent → `101`, for WebSocket.
    pub upgrade: Option<Duration>,
}

/// Opens connections to one target for a whole run: resolved once, TLS configured once.
#[derive(Clone)]
pub struct Connector {
    endpoint: Endpoint,
    addr: SocketAddr,
    codec: FrameCodec,
    tls: Option<tls::TlsClient>,
    ws: Option<ws::WsClient>,
    source_addresses: Vec<IpAddr>,
    insecure: bool,
}

impl Connector {
    /// Resolves the target and builds the TLS client configuration (reading `caFile` and the
    /// client identity). `tls: None` uses the defaults (system roots) for TLS schemes.
    pub async fn new(
        endpoint: Endpoint,
        tls_settings: Option<&TlsSettings>,
        websocket: &WebSocketSettings,
        codec: FrameCodec,
        source_addresses: Vec<IpAddr>,
    ) -> Result<Connector, SetupError> {
        let addr = connect::resolve(&endpoint.authority())
            .await
            .map_err(|reason| SetupError::Resolve {
                target: endpoint.to_string(),
                reason,
            })?;
        let defaults = TlsSettings::default();
        let settings = tls_settings.unwrap_or(&defaults);
        // An http(s) target is served by `http::HttpClient`; a socket step aimed at it gets
        // a plain connection.
        let tls = if endpoint.scheme.is_tls() && !endpoint.scheme.is_http() {
            let alpn: &[&str] = if endpoint.scheme.is_websocket() {
                &["http/1.1"]
            } else {
                &[]
            };
            Some(tls::TlsClient::new(settings, &endpoint.host, alpn)?)
        } else {
            None
        };
        let ws = endpoint.scheme.is_websocket().then(|| ws::WsClient {
            url: endpoint.to_string(),
            subprotocols: websocket.subprotocols.clone(),
            max_message_bytes: websocket
                .max_message_bytes
                .unwrap_or(codec.config().max_frame_bytes),
            ping_interval: websocket.ping_interval,
        });
        Ok(Connector {
            insecure: tls.is_some() && settings.insecure_skip_verify,
            endpoint,
            addr,
            codec,
            tls,
            ws,
            source_addresses,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Certificates are not verified (`insecureSkipVerify` on a TLS target).
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// Opens one connection for vuser `vu`: TCP (from its share of the source addresses),
    /// then TLS, then the WebSocket upgrade with `headers`, each stage within `limit`.
    ///
    /// The TLS handshake and the upgrade are boxed, each for as long as it runs: inline they
    /// made this future ~10 KiB for every transport, and a connect storm (thousands of
    /// connects waiting on SYN retries) held that much per pending plain TCP connect, which
    /// then stayed behind as heap fragmentation once the vusers were connected.
    pub async fn connect(
        &self,
        vu: u64,
        limit: Duration,
        headers: &[(String, String)],
    ) -> Result<(Conn, Timings), ConnectError> {
        // Round-robin over the source addresses by vuser id: consecutive vusers take
        // consecutive addresses, so each address carries an equal share of the connections.
        let source = match self.source_addresses.len() {
            0 => None,
            n => self.source_addresses.get((vu % n as u64) as usize).copied(),
        };
        let started = Instant::now();
        let tcp = connect::tcp(self.addr, source, limit).await?;
        let mut timings = Timings {
            tcp: started.elapsed(),
            tls: None,
            upgrade: None,
        };
        let codec = self.codec.clone();
        let mut conn = match (&self.tls, &self.ws, self.endpoint.scheme) {
            (None, None, _) => Conn::Plain(FramedStream::new(tcp, codec)),
            (Some(tls), ws, _) => {
                let at = Instant::now();
                let stream = Box::pin(tls.handshake(tcp, limit)).await?;
                timings.tls = Some(at.elapsed());
                match ws {
                    None => Conn::Tls(Box::new(FramedStream::new(stream, codec))),
                    Some(ws) => {
                        let at = Instant::now();
                        let conn = Box::pin(ws.upgrade(stream, headers, codec, limit)).await?;
                        timings.upgrade = Some(at.elapsed());
                        Conn::Wss(Box::new(conn))
                    }
                }
            }
            (None, Some(ws), _) => {
                let at = Instant::now();
                let conn = Box::pin(ws.upgrade(tcp, headers, codec, limit)).await?;
                timings.upgrade = Some(at.elapsed());
                Conn::Ws(Box::new(conn))
            }
        };
        conn.set_write_limit(Some(limit));
        Ok((conn, timings))
    }

    /// A hint for a plain connection the server closed before sending anything: a TLS-only
    /// port does exactly that to a client that does not start a handshake.
    pub fn hint_for_silent_close(&self) -> Option<String> {
        (self.endpoint.scheme == Scheme::Tcp).then(|| {
            format!(
                "the server closed the connection without a reply of the plan's protocol: if \
                 {} expects TLS, use tls://{}",
                self.endpoint.authority(),
                self.endpoint.authority()
            )
        })
    }
}

#[cfg(test)]
mod tests;
