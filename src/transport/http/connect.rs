//! Opening one HTTP connection, each stage timed: name resolution, the TCP connect (from the
//! vuser's share of `sourceAddresses`), TLS with ALPN, then hyper's HTTP/1.1 or HTTP/2
//! handshake. The connection's driver runs on a task of its own and ends when the sender is
//! dropped.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use super::super::ConnectError;
use super::{ConnTimings, HttpClient, Origin};
use crate::vocab::ErrorKind;

type Body = Full<Bytes>;

/// The sending half of one connection.
pub(super) enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

pub(super) enum SendError {
    /// The connection was gone before the request was written: it can go on another one.
    Unsent(Box<Request<Body>>),
    Failed(hyper::Error),
}

impl Sender {
    /// Open and free for a request.
    pub(super) fn usable(&self) -> bool {
        match self {
            Sender::H1(s) => !s.is_closed() && s.is_ready(),
            Sender::H2(s) => !s.is_closed() && s.is_ready(),
        }
    }

    pub(super) fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    pub(super) async fn send(
        &mut self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let sent = match self {
            Sender::H1(s) => {
                if s.ready().await.is_err() {
                    return Err(SendError::Unsent(Box::new(request)));
                }
                s.try_send_request(request).await
            }
            Sender::H2(s) => {
                if s.ready().await.is_err() {
                    return Err(SendError::Unsent(Box::new(request)));
                }
                s.try_send_request(request).await
            }
        };
        sent.map_err(|mut e| match e.take_message() {
            Some(request) => SendError::Unsent(Box::new(request)),
            None => SendError::Failed(e.into_error()),
        })
    }
}

/// Opens a connection to `origin` for vuser `vu` within `limit`.
pub(super) async fn open(
    client: &HttpClient,
    origin: &Origin,
    vu: u64,
    limit: Duration,
    source_addresses: &[IpAddr],
) -> Result<(Sender, ConnTimings), ConnectError> {
    let started = Instant::now();
    let addr = resolve(origin).await?;
    let dns = started.elapsed();
    let source = match source_addresses.len() {
        0 => None,
        n => source_addresses.get((vu % n as u64) as usize).copied(),
    };
    let at = Instant::now();
    let tcp = super::super::connect::tcp(addr, source, limit).await?;
    let mut timings = ConnTimings {
        dns,
        tcp: at.elapsed(),
        tls: None,
    };
    let handshake_failed = |e: hyper::Error| {
        ConnectError::new(
            ErrorKind::Protocol,
            format!("the HTTP handshake with {} failed: {e}", origin.authority()),
        )
    };
    if !origin.https {
        let sender = if client.inner.h2c {
            h2(tcp).await.map_err(handshake_failed)?
        } else {
            h1(tcp).await.map_err(handshake_failed)?
        };
        return Ok((sender, timings));
    }
    let tls = client.tls_for(&origin.host)?;
    let at = Instant::now();
    let stream = tls.handshake(tcp, limit).await?;
    timings.tls = Some(at.elapsed());
    let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let sender = if negotiated_h2 {
        h2(stream).await.map_err(handshake_failed)?
    } else {
        h1(stream).await.map_err(handshake_failed)?
    };
    Ok((sender, timings))
}

async fn h1<S>(stream: S) -> Result<Sender, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // One flat write buffer, not a vectored write: requests are small, and hyper's vectored
    // flush sets up 64 `IoSlice`s and takes `writev` for what is one buffer per request.
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        // Ends when the session drops the sender or the server closes; errors surface on
        // the request that was in flight.
        let _ = conn.await;
    });
    Ok(Sender::H1(sender))
}

async fn h2<S>(stream: S) -> Result<Sender, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Sender::H2(sender))
}

/// The origin's first address; an IP literal resolves without a lookup.
async fn resolve(origin: &Origin) -> Result<SocketAddr, ConnectError> {
    if let Ok(ip) = origin.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, origin.port));
    }
    let authority = format!("{}:{}", origin.host, origin.port);
    super::super::connect::resolve(&authority)
        .await
        .map_err(|reason| {
            ConnectError::new(
                ErrorKind::Io,
                format!("cannot resolve `{}`: {reason}", origin.host),
            )
        })
}
