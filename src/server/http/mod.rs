//! The HTTP flavour of the reference server (`chatload serve --http`, `embedded: {http:
//! true}`): a small JSON demo API (token login, a list of lockers to hold, confirm or
//! cancel) and the routes an HTTP client's tests need (echo, redirects, gzip, cookies,
//! status codes, slow answers), over HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or ALPN
//! over the server's TLS). docs/server.md lists the routes.
//!
//! Owns the accept loop and per-connection serving on hyper (`hyper-util`'s auto builder
//! picks the protocol from the first bytes), the request-wide knobs (capacity and stalls
//! before a request is handled, delay and jitter before its response leaves, client limit),
//! and the demo state. It does not own TLS configuration (`server::tls`) or the knobs'
//! arithmetic (`server::pacing`), and knows nothing of chat.
//!
//! Memory stays bounded whatever the load: request bodies are capped ([`MAX_BODY_BYTES`],
//! 413 beyond), tokens are self-verifying (nothing is stored per login) and the locker table
//! has a fixed size ([`ITEM_COUNT`]).

mod api;
mod echo;
mod reply;
mod routes;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::ServerConfig;
use super::pacing::Pacing;

pub use api::{HOLD_TTL, ITEM_COUNT};
pub use reply::MAX_BODY_BYTES;

/// What every connection of one server shares.
struct State {
    pacing: Pacing,
    api: api::Api,
    clients: AtomicUsize,
    max_clients: Option<usize>,
}

/// Counts a connection as open for as long as it lives.
struct ClientGuard(Arc<State>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves HTTP on `listener` until `shutdown` completes, then drops every connection
/// (in-flight requests included) and returns. `config` has been validated by the caller.
pub(super) async fn run(
    listener: TcpListener,
    config: ServerConfig,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future,
) {
    let state = Arc::new(State {
        pacing: Pacing::new(&config),
        api: api::Api::new(),
        clients: AtomicUsize::new(0),
        max_clients: config.max_clients,
    });
    super::accept_loop(listener, shutdown, |socket, stop| {
        let active = state.clients.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = ClientGuard(state.clone());
        let full = state.max_clients.is_some_and(|max| active > max);
        connection(socket, tls.clone(), stop, guard, full)
    })
    .await;
}

/// One accepted socket: the TLS handshake (in this task, bounded), then HTTP.
async fn connection(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    guard: ClientGuard,
    full: bool,
) {
    match tls {
        None => serve(socket, guard, &stop, full).await,
        Some(acceptor) => {
            if let Some(stream) = super::tls::accept(&acceptor, socket, &stop).await {
                serve(stream, guard, &stop, full).await;
            }
        }
    }
}

/// Serves requests on one connection until the client closes it or the server stops. A
/// connection over the client limit gets 503 for each request and no keep-alive.
async fn serve<I>(io: I, guard: ClientGuard, stop: &CancellationToken, full: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = guard.0.clone();
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(request, &state, full).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if full {
        builder.http1().keep_alive(false);
    }
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = stop.cancelled() => {}
        // An error here is the client's (a malformed request, a reset): nothing to report.
        _ = connection => {}
    }
    drop(guard);
}

/// One request through the knobs: capacity and stalls hold it before it is handled, delay
/// and jitter before its response leaves.
async fn respond(
    request: hyper::Request<hyper::body::Incoming>,
    state: &State,
    full: bool,
) -> reply::Response {
    if full {
        let limit = state.max_clients.unwrap_or(0);
        return reply::error(
            http::StatusCode::SERVICE_UNAVAILABLE,
            &format!("server full ({limit} clients)"),
        );
    }
    state.pacing.before_command().await;
    let response = routes::handle(request, &state.api).await;
    if let Some(due) = state.pacing.due() {
        tokio::time::sleep_until(due).await;
    }
    response
}
