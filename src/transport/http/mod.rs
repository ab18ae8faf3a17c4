//! HTTP on our own connections: hyper's client connection API (`client::conn::http1` and
//! `http2`) over the TCP connect (and rustls) of this module's parent, so chatload decides
//! when connections open and times every stage (DNS, TCP, TLS, first byte, last byte).
//!
//! One [`HttpClient`] per run (TLS configured once); one [`HttpSession`] per vuser: its
//! keep-alive connections, one per origin, reused across requests (HTTP/1.1 keep-alive,
//! HTTP/2 through ALPN on `https://` or with prior knowledge on `http://`). A request is a
//! method call on the session, no boxed future or trait object per request.
//!
//! It records no metrics and knows nothing of plans' steps: redirects, cookies, captures
//! and expectations are the engine's; this module reports what happened on the wire.

mod body;
mod connect;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use self::body::{KeptBody, gunzip};
use super::tls::TlsClient;
use super::{ConnectError, SetupError};
use crate::plan::TlsSettings;
use crate::vocab::ErrorKind;

/// Bodies are kept up to this size for captures and expectations; the rest is counted and
/// dropped, so a huge download cannot exhaust memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Where requests go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// `host[:port]` as the `Host` header and `:authority` carry it (default ports left out).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.https, self.port) {
            (false, 80) | (true, 443) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// What every vuser's session shares.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    tls_settings: TlsSettings,
    /// Built at the first `https://` connection, so a plain-HTTP run needs no trust store.
    tls: OnceLock<Result<TlsClient, String>>,
    /// HTTP/2 with prior knowledge on plain connections.
    h2c: bool,
    source_addresses: Vec<std::net::IpAddr>,
    /// `config.http.pool`: connections shared by every vuser.
    pool: Option<SharedPool>,
    /// `config.http.maxSockets`: connections one session keeps open at once.
    max_sockets: usize,
}

impl HttpClient {
    /// `pool`: connections per origin shared by every vuser (`None`: each session keeps
    /// its own, at most `max_sockets` open at once over all origins).
    pub fn new(
        tls: Option<&TlsSettings>,
        h2c: bool,
        source_addresses: Vec<std::net::IpAddr>,
        pool: Option<u32>,
        max_sockets: u32,
    ) -> HttpClient {
        HttpClient {
            inner: Arc::new(ClientInner {
                tls_settings: tls.cloned().unwrap_or_default(),
                tls: OnceLock::new(),
                h2c,
                source_addresses,
                pool: pool.map(|n| SharedPool {
                    per_origin: usize::try_from(n).unwrap_or(usize::MAX).max(1),
                    origins: Mutex::new(Vec::new()),
                }),
                max_sockets: usize::try_from(max_sockets).unwrap_or(usize::MAX).max(1),
            }),
        }
    }

    /// Certificates are not verified (`insecureSkipVerify`).
    pub fn insecure(&self) -> bool {
        self.inner.tls_settings.insecure_skip_verify
    }

    fn tls_for(&self, host: &str) -> Result<TlsClient, ConnectError> {
        let settings = &self.inner.tls_settings;
        let base = self.inner.tls.get_or_init(|| {
            // Offer HTTP/2 first unless the plan chose its own ALPN list.
            TlsClient::new(settings, host, &["h2", "http/1.1"]).map_err(|e| e.to_string())
        });
        let fail = |e: String| ConnectError::new(ErrorKind::TlsHandshake, e);
        match base {
            Ok(client) => client
                .for_host(settings, host)
                .map_err(|e: SetupError| fail(e.to_string())),
            Err(e) => Err(fail(e.clone())),
        }
    }
}

/// How long each stage of a new connection took (none when a kept-alive one was reused).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnTimings {
    pub dns: Duration,
    pub tcp: Duration,
    pub tls: Option<Duration>,
}

/// One request as the session sends it; origin and path are borrowed, so sending costs no
/// copy of them.
#[derive(Debug)]
pub struct Outgoing<'r> {
    pub method: Method,
    pub origin: &'r Origin,
    /// Path and query (`/items?x=1`).
    pub path: &'r str,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A response, read to its end.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body (decoded when it came gzip-encoded and `gzip` was asked), at most
    /// [`MAX_BODY_BYTES`].
    pub body: Bytes,
    /// Body bytes as they came over the wire.
    pub downloaded_bytes: u64,
    /// When the response head arrived (time to first byte).
    pub first_byte: Instant,
    /// When the body was read to its end.
    pub done: Instant,
    /// Set when this request opened a new connection.
    pub opened: Option<ConnTimings>,
    /// `HTTP/2` or `HTTP/1.1`.
    pub version: http::Version,
}

/// A failed request: the error kind and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct HttpError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl From<ConnectError> for HttpError {
    fn from(e: ConnectError) -> Self {
        HttpError {
            kind: e.kind,
            detail: e.detail,
        }
    }
}

impl HttpError {
    fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        HttpError {
            kind,
            detail: detail.into(),
        }
    }
}

/// A vuser's idle keep-alive connections, unless the run shares a pool: at most one per
/// origin (a vuser sends one request at a time, so it never needs two), and at most
/// `maxSockets` over all origins, the least recently used first in line to be closed.
#[derive(Default)]
pub struct HttpSession {
    /// Least recently used first.
    conns: Vec<Idle>,
}

struct Idle {
    origin: Origin,
    conn: Conn,
}

/// An open connection and its origin's `Host` header, made once per connection rather than
/// once per request.
struct Conn {
    sender: connect::Sender,
    host: HeaderValue,
}

/// A connection taken for one request; with a shared pool it holds one of the origin's
/// connection slots until dropped.
struct Lease {
    conn: Conn,
    /// The origin it was kept under in the session, to put it back without a copy.
    origin: Option<Origin>,
    opened: Option<ConnTimings>,
    _slot: Option<OwnedSemaphorePermit>,
}

enum Taken {
    Idle(Lease),
    /// Nothing idle: open a connection (under this pool slot, with a pool).
    Empty(Option<OwnedSemaphorePermit>),
}

/// A new connection to `origin`, holding `slot`.
async fn open(
    client: &HttpClient,
    origin: &Origin,
    vu: u64,
    limit: Duration,
    slot: Option<OwnedSemaphorePermit>,
) -> Result<Lease, HttpError> {
    let host = HeaderValue::from_str(&origin.authority()).map_err(|e| {
        HttpError::new(
            ErrorKind::Template,
            format!("bad Host `{}`: {e}", origin.host),
        )
    })?;
    let (sender, timings) =
        connect::open(client, origin, vu, limit, &client.inner.source_addresses).await?;
    Ok(Lease {
        conn: Conn { sender, host },
        origin: None,
        opened: Some(timings),
        _slot: slot,
    })
}

/// `config.http.pool`: connections per origin shared by every vuser. A request takes one of
/// the origin's slots (waiting for one when all are in use), an idle connection if there is
/// one, and gives both back when its response is read. The lock is held for a push or pop.
struct SharedPool {
    per_origin: usize,
    origins: Mutex<Vec<OriginPool>>,
}

struct OriginPool {
    origin: Origin,
    slots: Arc<Semaphore>,
    idle: Vec<Conn>,
}

impl SharedPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OriginPool>> {
        self.origins.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn slot(&self, origin: &Origin) -> Option<OwnedSemaphorePermit> {
        let slots = {
            let mut origins = self.lock();
            match origins.iter().find(|p| p.origin == *origin) {
                Some(p) => Arc::clone(&p.slots),
                None => {
                    let slots = Arc::new(Semaphore::new(self.per_origin));
                    origins.push(OriginPool {
                        origin: origin.clone(),
                        slots: Arc::clone(&slots),
                        idle: Vec::new(),
                    });
                    slots
                }
            }
        };
        slots.acquire_owned().await.ok()
    }

    fn take_idle(&self, origin: &Origin) -> Option<Conn> {
        let mut origins = self.lock();
        let pool = origins.iter_mut().find(|p| p.origin == *origin)?;
        while let Some(conn) = pool.idle.pop() {
            if conn.sender.usable() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, origin: &Origin, conn: Conn) {
        let mut origins = self.lock();
        if let Some(pool) = origins.iter_mut().find(|p| p.origin == *origin)
            && pool.idle.len() < self.per_origin
        {
            pool.idle.push(conn);
        }
    }
}

impl HttpSession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Idle connections held by this session.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// An idle, usable connection to `origin` from the shared pool or this session; or,
    /// when there is none, the pool slot a new connection will hold.
    async fn checkout(&mut self, client: &HttpClient, origin: &Origin) -> Taken {
        if let Some(pool) = &client.inner.pool {
            let slot = pool.slot(origin).await;
            return match pool.take_idle(origin) {
                Some(conn) => Taken::Idle(Lease {
                    conn,
                    origin: None,
                    opened: None,
                    _slot: slot,
                }),
                None => Taken::Empty(slot),
            };
        }
        let Some(at) = self.conns.iter().position(|i| i.origin == *origin) else {
            self.make_room(client);
            return Taken::Empty(None);
        };
        // `remove`, not `swap_remove`: the order is the least recently used first.
        let idle = self.conns.remove(at);
        if idle.conn.sender.usable() {
            Taken::Idle(Lease {
                conn: idle.conn,
                origin: Some(idle.origin),
                opened: None,
                _slot: None,
            })
        } else {
            Taken::Empty(None)
        }
    }

    /// Closes the least recently used idle connections until one more fits under
    /// `maxSockets` (the one the request in flight holds counts too).
    fn make_room(&mut self, client: &HttpClient) {
        let keep = client.inner.max_sockets.saturating_sub(1);
        if self.conns.len() > keep {
            // Dropping a sender ends its connection's driver, which closes the socket.
            self.conns.drain(..self.conns.len() - keep);
        }
    }

    /// Keeps a connection whose response was read to the end for the next request.
    fn checkin(&mut self, client: &HttpClient, origin: &Origin, lease: Lease) {
        match &client.inner.pool {
            Some(pool) => pool.put_idle(origin, lease.conn),
            None => {
                // A flow whose URLs name ever new hosts must not pile up connections.
                self.make_room(client);
                self.conns.push(Idle {
                    origin: lease.origin.unwrap_or_else(|| origin.clone()),
                    conn: lease.conn,
                });
            }
        }
    }

    /// Sends `req` (reusing the origin's connection, or opening one) and reads the whole
    /// response by `deadline`. `gzip`: ask for and decode a gzip body.
    pub async fn send(
        &mut self,
        client: &HttpClient,
        req: Outgoing<'_>,
        gzip: bool,
        vu: u64,
        deadline: Instant,
    ) -> Result<Exchange, HttpError> {
        let limit = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, self.exchange(client, req, gzip, vu, limit)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::new(
                ErrorKind::Timeout,
                format!("no complete response within {limit:?}"),
            )),
        }
    }

    async fn exchange(
        &mut self,
        client: &HttpClient,
        req: Outgoing<'_>,
        gzip: bool,
        vu: u64,
        limit: Duration,
    ) -> Result<Exchange, HttpError> {
        let Outgoing {
            method,
            origin,
            path,
            mut headers,
            body,
        } = req;
        if gzip && !headers.contains_key(header::ACCEPT_ENCODING) {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // The connection is taken out of the session (or the shared pool) while in use and
        // put back once the response is read: one dropped mid-request (a timeout) is closed.
        // Opening is boxed (both places): its future (connect, TLS, the HTTP/2 handshake) is
        // ~9 KiB and would otherwise make every request's future that big, to be allocated,
        // moved and freed per request although a kept-alive connection never opens.
        let (mut lease, reused) = match self.checkout(client, origin).await {
            Taken::Idle(lease) => (lease, true),
            Taken::Empty(slot) => (
                Box::pin(open(client, origin, vu, limit, slot)).await?,
                false,
            ),
        };
        let mut opened = lease.opened.take();
        let mut request = build(method, origin, path, headers, body, &lease.conn)?;
        let response = loop {
            match lease.conn.sender.send(request).await {
                Ok(r) => break r,
                // A kept-alive connection the server has just closed gives the request back
                // unsent: it goes once more on a fresh connection.
                Err(connect::SendError::Unsent(req)) if reused && opened.is_none() => {
                    let fresh = Box::pin(open(client, origin, vu, limit, None)).await?;
                    lease.conn = fresh.conn;
                    opened = fresh.opened;
                    request = *req;
                }
                Err(connect::SendError::Unsent(_)) => {
                    return Err(HttpError::new(
                        ErrorKind::Closed,
                        format!(
                            "{} closed the connection before the request",
                            origin.authority()
                        ),
                    ));
                }
                Err(connect::SendError::Failed(err)) => return Err(classify(&err, origin)),
            }
        };
        let first_byte = Instant::now();
        let (parts, mut incoming) = response.into_parts();
        let close = parts
            .headers
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let mut kept = KeptBody::default();
        let mut downloaded_bytes = 0u64;
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|err| classify(&err, origin))?;
            if let Ok(data) = frame.into_data() {
                downloaded_bytes += data.len() as u64;
                kept.push(data);
            }
        }
        let kept = kept.into_bytes();
        let done = Instant::now();
        if !close && parts.version >= http::Version::HTTP_11 {
            self.checkin(client, origin, lease);
        }
        let gzipped = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let body = if gzip && gzipped {
            gunzip(&kept).map_err(|e| {
                HttpError::new(
                    ErrorKind::Protocol,
                    format!(
                        "the gzip body from {} does not decode: {e}",
                        origin.authority()
                    ),
                )
            })?
        } else {
            kept
        };
        Ok(Exchange {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            downloaded_bytes,
            first_byte,
            done,
            opened,
            version: parts.version,
        })
    }
}

/// A hyper request for `origin` on `conn`: origin-form URI and `Host` on HTTP/1.1, the
/// absolute URI (hyper derives `:authority` from it) on HTTP/2.
fn build(
    method: Method,
    origin: &Origin,
    path: &str,
    mut headers: HeaderMap,
    body: Bytes,
    conn: &Conn,
) -> Result<Request<Full<Bytes>>, HttpError> {
    let h2 = conn.sender.is_h2();
    let uri = if h2 {
        let text = format!("{}://{}{path}", origin.scheme(), origin.authority());
        Uri::try_from(text)
    } else {
        Uri::try_from(path)
    };
    let uri = uri.map_err(|e| {
        HttpError::new(
            ErrorKind::Template,
            format!("`{path}` is not a valid request URI: {e}"),
        )
    })?;
    if !h2 && !headers.contains_key(header::HOST) {
        headers.insert(header::HOST, conn.host.clone());
    }
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The kind of a hyper error: a timeout, a reset, a close, or a protocol violation.
fn classify(err: &hyper::Error, origin: &Origin) -> HttpError {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return HttpError::new(
                ErrorKind::of_io(io),
                format!("{}: {err} ({io})", origin.authority()),
            );
        }
        source = inner.source();
    }
    let kind = if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        ErrorKind::Closed
    } else if err.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Protocol
    };
    HttpError::new(kind, format!("{}: {err}", origin.authority()))
}
