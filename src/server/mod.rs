//! The reference chat server (`chatload serve`, `target: embedded`): DESIGN §7.
//!
//! Owns the chat semantics (login, rooms, broadcast, whispers), the text and binary wire
//! flavours, the transports they run over (plain TCP, TLS and mutual TLS, WebSocket and
//! WebSocket over TLS), and the knobs that make it behave like a real, imperfect server
//! (delay, jitter, capacity, stalls, client limit). The HTTP flavour (`http`, a small JSON
//! demo API over HTTP/1.1 and HTTP/2) shares the knobs and TLS but not the chat semantics.
//! Framing is delegated to
//! [`crate::protocol::FrameCodec`], certificate files and generation to [`crate::certs`].
//! It does not parse command lines (`cli::serve`), read files, or know about plans.
//!
//! Shape, chosen for 20 000 concurrent clients: one reader task and one writer task per
//! connection joined by a bounded queue; a broadcast is encoded once and the same `Bytes` is
//! queued to every member; locks are held only to enqueue, never while writing to a socket;
//! a member whose byte budget or queue is full is disconnected, its socket closed (a slow
//! consumer must not stall the room nor pin memory).
//!
//! Layers: `connection` runs the TLS handshake (in the connection's task, 10 s timeout) and
//! the WebSocket upgrade (`websocket`), then one generic session loop (`session`) and writer
//! (`writer`) over whatever stream results, monomorphised per transport so plain TCP pays
//! nothing for the others. Over WebSocket one message is one command and one reply.

mod commands;
mod connection;
mod http;
mod pacing;
mod registry;
mod session;
mod stats;
mod tls;
mod websocket;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{CodecConfig, FrameCodec, ProtocolError, Transform};

pub use commands::{ReplyType, RequestType};
pub use http::{HOLD_TTL, ITEM_COUNT, MAX_BODY_BYTES};
pub use registry::BufferSnapshot;
pub use stats::{ServerCounters, ServerStats};
pub use tls::{HANDSHAKE_TIMEOUT, SELF_SIGNED_NAMES, ServerTls, self_signed_tls};
pub use websocket::{BAD_REQUEST_BODY, REFUSED_BODY};

/// The server's wire flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerFraming {
    /// One command per line (`\n`, a trailing `\r` is ignored).
    #[default]
    Text,
    /// `[u16 LE total length][u16 LE type][body]` (see docs/server.md for the type table).
    Binary,
}

/// Freeze the whole server for `duration` once every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub duration: Duration,
    pub every: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub framing: ServerFraming,
    /// XOR key for packet bodies (binary flavour only).
    pub xor_key: Option<Vec<u8>>,
    /// Added before every message the server sends.
    pub delay: Duration,
    /// Uniform random extra delay in `[0, jitter]` per message.
    pub jitter: Duration,
    /// Commands processed per second over the whole server; above it commands wait.
    pub capacity_per_sec: Option<f64>,
    pub stall: Option<Stall>,
    /// Clients beyond this many get `ERR server full` and are disconnected.
    pub max_clients: Option<usize>,
    /// Largest command accepted; a larger one ends the connection with an `ERR`.
    pub max_frame_bytes: usize,
    /// Messages queued per client before it counts as a slow consumer and is disconnected.
    pub queue_depth: usize,
    /// Bytes the server holds per client (queued replies and room messages, plus the batch
    /// being written) before the client counts as a slow consumer and is disconnected. At
    /// least two of the largest replies are always allowed.
    pub max_buffered_bytes: usize,
    /// Serve over TLS (mutual TLS when `client_ca` is set); `None`: plain TCP.
    pub tls: Option<ServerTls>,
    /// Speak WebSocket (over TLS when `tls` is set): one message = one command.
    pub websocket: bool,
    /// Testing knob: a WebSocket server refuses every upgrade with this HTTP status (4xx or
    /// 5xx) and the body [`REFUSED_BODY`], so clients can test their upgrade errors.
    pub ws_refuse: Option<u16>,
    /// Serve the HTTP demo API (HTTP/1.1 and HTTP/2; over TLS when `tls` is set) instead of
    /// chat: see docs/server.md. `delay`, `jitter`, `capacity_per_sec`, `stall` and
    /// `max_clients` apply per request.
    pub http: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            framing: ServerFraming::Text,
            xor_key: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            capacity_per_sec: None,
            stall: None,
            max_clients: None,
            max_frame_bytes: 64 * 1024,
            queue_depth: 4096,
            max_buffered_bytes: 1024 * 1024,
            tls: None,
            websocket: false,
            ws_refuse: None,
            http: false,
        }
    }
}

impl ServerConfig {
    /// The codec configuration of this server's wire flavour.
    pub fn codec_config(&self) -> CodecConfig {
        let base = match self.framing {
            ServerFraming::Text => CodecConfig::lines(),
            ServerFraming::Binary => CodecConfig::u16_length_type_le(),
        };
        CodecConfig {
            transform: self.xor_key.clone().map(|key| Transform::Xor { key }),
            max_frame_bytes: self.max_frame_bytes,
            ..base
        }
    }

    /// How clients address this server listening on `addr`: `HOST:PORT` for plain TCP (what
    /// a plan's `target` takes), otherwise `tls://HOST:PORT`, `ws://HOST:PORT/`,
    /// `wss://HOST:PORT/`, `http://HOST:PORT` or `https://HOST:PORT`.
    pub fn client_address(&self, addr: SocketAddr) -> String {
        if self.http {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            return format!("{scheme}://{addr}");
        }
        match (self.tls.is_some(), self.websocket) {
            (false, false) => addr.to_string(),
            (true, false) => format!("tls://{addr}"),
            (false, true) => format!("ws://{addr}/"),
            (true, true) => format!("wss://{addr}/"),
        }
    }

    /// Checks the knobs and builds the server's codec; `run` and `spawn` call it first.
    pub fn validate(&self) -> Result<FrameCodec, ServerError> {
        if self.xor_key.is_some() && self.framing == ServerFraming::Text {
            return Err(ServerError::Config(
                "--xor applies to the binary flavour only (add --framing binary)".to_string(),
            ));
        }
        if let Some(rate) = self.capacity_per_sec
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ServerError::Config(format!(
                "capacity must be a positive number of commands per second, not {rate}"
            )));
        }
        if let Some(stall) = self.stall
            && (stall.every.is_zero() || stall.duration >= stall.every)
        {
            return Err(ServerError::Config(format!(
                "a stall of {:?} every {:?} never ends: the stall must be shorter than the period",
                stall.duration, stall.every
            )));
        }
        if let Some(status) = self.ws_refuse {
            if !self.websocket {
                return Err(ServerError::Config(
                    "ws_refuse applies to the WebSocket flavour only".to_string(),
                ));
            }
            if !(400..=599).contains(&status) {
                return Err(ServerError::Config(format!(
                    "ws_refuse must be an HTTP error status (400-599), not {status}"
                )));
            }
        }
        if self.http && (self.websocket || self.framing != ServerFraming::Text) {
            return Err(ServerError::Config(
                "the HTTP flavour speaks HTTP only: drop --websocket and --framing".to_string(),
            ));
        }
        if let Some(tls) = &self.tls {
            tls::acceptor(tls, self.alpn())?;
        }
        if self.queue_depth == 0 {
            return Err(ServerError::Config(
                "queue_depth must be at least 1".to_string(),
            ));
        }
        Ok(FrameCodec::new(self.codec_config())?)
    }

    /// The ALPN protocols a TLS server of this flavour offers: the HTTP flavour `h2` then
    /// `http/1.1`, WebSocket `http/1.1` (what the upgrade speaks), chat nothing.
    fn alpn(&self) -> &'static [&'static [u8]] {
        if self.http {
            &[b"h2", b"http/1.1"]
        } else if self.websocket {
            &[b"http/1.1"]
        } else {
            &[]
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("invalid TLS configuration: {reason}")]
    Tls { reason: String },
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// Room a reply gets beyond the command cap for its keyword, room and sender names.
const REPLY_OVERHEAD_BYTES: usize = 4096;

/// Everything connections share.
pub(crate) struct Shared {
    pub config: ServerConfig,
    /// Decodes commands, with the configured cap.
    pub codec: FrameCodec,
    /// Encodes replies; a little over the cap, since `MSG room name` wraps a maximal `SAY`.
    pub out_codec: FrameCodec,
    pub registry: registry::Registry,
    pub pacing: pacing::Pacing,
    /// Counters (and the clients connected, which `max_clients` checks) for `serve --metrics-listen`; shared with whoever reads them.
    pub stats: Arc<ServerStats>,
    /// Bytes held for clients, server-wide (each connection also has its own `Budget`).
    pub buffers: Arc<registry::BufferStats>,
    /// Present when the server speaks TLS; each connection's task runs its handshake.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Shared {
    /// The per-client byte budget: the configured one, but never below two maximal replies.
    pub fn buffer_limit_bytes(&self) -> usize {
        let largest_reply = self
            .config
            .max_frame_bytes
            .saturating_add(REPLY_OVERHEAD_BYTES);
        self.config
            .max_buffered_bytes
            .max(largest_reply.saturating_mul(2))
    }
}

/// Serves connections from `listener` until `shutdown` completes, then closes every
/// connection and returns.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future,
) -> Result<(), ServerError> {
    run_with_stats(listener, config, Arc::default(), shutdown).await
}

/// [`run`], counting into `stats` (what `serve --metrics-listen` exposes).
pub async fn run_with_stats(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<ServerStats>,
    shutdown: impl Future,
) -> Result<(), ServerError> {
    run_counting(listener, config, stats, Arc::default(), shutdown).await
}

/// [`run_with_stats`], keeping the server's buffered-bytes accounting in `buffers`.
async fn run_counting(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<ServerStats>,
    buffers: Arc<registry::BufferStats>,
    shutdown: impl Future,
) -> Result<(), ServerError> {
    let codec = config.validate()?;
    let tls = config
        .tls
        .as_ref()
        .map(|tls| tls::acceptor(tls, config.alpn()))
        .transpose()?;
    if config.http {
        http::run(listener, config, tls, shutdown).await;
        return Ok(());
    }
    let shared = Arc::new(Shared {
        tls,
        pacing: pacing::Pacing::new(&config),
        out_codec: FrameCodec::new(CodecConfig {
            max_frame_bytes: config.max_frame_bytes.saturating_add(REPLY_OVERHEAD_BYTES),
            ..config.codec_config()
        })?,
        codec,
        config,
        registry: registry::Registry::default(),
        stats,
        buffers,
    });
    accept_loop(listener, shutdown, |socket, stop| {
        let active = shared.stats.clients.fetch_add(1, Ordering::AcqRel) + 1;
        shared.stats.connection();
        let guard = connection::ClientGuard(shared.clone());
        let over_limit = shared.config.max_clients.is_some_and(|max| active > max);
        connection::serve(socket, shared.clone(), stop, guard, over_limit)
    })
    .await;
    Ok(())
}

/// Accepts on `listener` until `shutdown` completes, giving each socket (no Nagle delay) to
/// `serve` with a token cancelled when the server stops, and runs what it returns as the
/// connection's task; then stops every connection and waits for their tasks to end. Shared
/// by the chat and HTTP servers.
async fn accept_loop<Serve, Connection>(
    listener: TcpListener,
    shutdown: impl Future,
    mut serve: Serve,
) where
    Serve: FnMut(TcpStream, CancellationToken) -> Connection,
    Connection: Future<Output = ()> + Send + 'static,
{
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => {
                    let _ = socket.set_nodelay(true);
                    tracker.spawn(serve(socket, stop.child_token()));
                }
                // Out of file descriptors or a reset before accept: keep serving the others.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

/// A server started in-process by [`spawn`]; dropping it shuts the server down.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    buffers: Arc<registry::BufferStats>,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bytes the server holds for its clients, and how many slow consumers it dropped.
    pub fn buffers(&self) -> BufferSnapshot {
        self.buffers.snapshot()
    }

    /// Stops accepting, closes every connection and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the server in-process on a free loopback port (what `target: embedded` and the
/// tests use). Must be called inside a tokio runtime.
pub async fn spawn(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    spawn_on("127.0.0.1:0", config).await
}

/// How many connections the kernel queues for the server before it accepts them. tokio's
/// `TcpListener::bind` asks for 1 024: a ramp of a few thousand connects per second (the
/// benchmark suite's 19 000 vusers in 5 s) overflowed that, the kernel dropped the SYNs, and
/// those clients connected only after SYN retries 1, 3 or 7 s later — a connect storm that
/// showed up as seconds of connect time and ping latency. The kernel caps it at
/// `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `address` with [`LISTEN_BACKLOG`]; with `reuse_port` (SO_REUSEPORT) several
/// servers started the same way share the port and the kernel spreads new connections over
/// them, so one port can hold more connections than one process has descriptors.
pub async fn bind_listener(address: &str, reuse_port: bool) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{address} resolves to no address"),
            )
        })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // What `TcpListener::bind` does on Unix too: a restarted server can take its port back
    // while connections of the previous one linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Starts the server in-process on `address` (e.g. `127.0.0.1:9200`).
pub async fn spawn_on(address: &str, config: ServerConfig) -> Result<ServerHandle, ServerError> {
    config.validate()?;
    let bind_error = |source| ServerError::Bind {
        address: address.to_string(),
        source,
    };
    let listener = bind_listener(address, false).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let stop = CancellationToken::new();
    let buffers = Arc::<registry::BufferStats>::default();
    let task = tokio::spawn(run_counting(
        listener,
        config,
        Arc::default(),
        Arc::clone(&buffers),
        stop.clone().cancelled_owned(),
    ));
    Ok(ServerHandle {
        addr,
        buffers,
        stop,
        task: Some(task),
    })
}
