//! One client connection: the transport layers (optional TLS handshake, optional WebSocket
//! upgrade), then a reader loop that feeds commands in order to the client's [`Session`],
//! and a writer task (`writer::write_loop`) that drains the connection's bounded queue.
//!
//! The reader loop is generic over a stream of [`Inbound`] items and the writer over an
//! [`Output`], so plain TCP, TLS and WebSocket connections share the chat logic while each
//! is monomorphised: plain TCP keeps `into_split` halves and a byte-batching writer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::protocol::Frame;
use crate::server::commands::ReplyType;
use crate::server::registry::Member;
use crate::server::session::{Flow, Session};
use crate::server::writer::{ByteOutput, Output, write_loop};
use crate::server::{Shared, tls, websocket};

/// Initial read buffer: small, because 20 000 idle clients must stay cheap.
const READ_BUFFER_BYTES: usize = 1024;

/// Counts the client as connected for as long as it lives.
pub struct ClientGuard(pub Arc<Shared>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.stats.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a transport read from the client.
#[derive(Debug)]
pub enum Inbound {
    /// One command, framed.
    Command(Frame),
    /// A message that is not a command; the client gets `ERR reason` and stays connected
    /// (a WebSocket message boundary keeps the stream in sync).
    Bad(String),
    /// The stream cannot continue (e.g. an oversized frame on a byte stream, which cannot
    /// be resynchronised): the client gets `ERR reason`, then the connection closes.
    Fatal(String),
}

/// Serves one accepted socket until it closes, the server kicks it, or the server stops.
pub async fn serve(
    socket: TcpStream,
    shared: Arc<Shared>,
    kick: CancellationToken,
    _guard: ClientGuard,
    over_limit: bool,
) {
    let websocket = shared.config.websocket;
    match &shared.tls {
        None if !websocket => {
            let (read, write) = socket.into_split();
            serve_bytes(read, write, &shared, &kick, over_limit).await;
        }
        None => websocket::serve(socket, &shared, &kick, over_limit).await,
        // The handshake runs here, in the connection's task, never in the accept loop: a
        // slow or hostile client delays only itself.
        Some(acceptor) => {
            let Some(stream) = tls::accept(acceptor, socket, &kick).await else {
                return;
            };
            if websocket {
                websocket::serve(stream, &shared, &kick, over_limit).await;
            } else {
                let (read, write) = tokio::io::split(stream);
                serve_bytes(read, write, &shared, &kick, over_limit).await;
            }
        }
    }
}

/// A byte-stream connection (TCP or TLS) framed by the server's codec.
async fn serve_bytes<R, W>(
    read: R,
    write: W,
    shared: &Arc<Shared>,
    kick: &CancellationToken,
    over_limit: bool,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut inbound =
        FramedRead::with_capacity(read, shared.codec.clone(), READ_BUFFER_BYTES).map(|decoded| {
            match decoded {
                Ok(frame) => Inbound::Command(frame),
                Err(error) => Inbound::Fatal(error.to_string()),
            }
        });
    serve_with(
        &mut inbound,
        ByteOutput::new(write),
        shared,
        kick,
        over_limit,
    )
    .await;
}

/// Runs the session over any transport: reads `inbound` until it ends, the session quits or
/// the client is kicked; returns once the writer has finished (its last message written),
/// with the finished output (`None` only if the writer task was lost).
pub async fn serve_with<St, O>(
    inbound: &mut St,
    output: O,
    shared: &Arc<Shared>,
    kick: &CancellationToken,
    over_limit: bool,
) -> Option<O>
where
    St: Stream<Item = Inbound> + Unpin,
    O: Output,
{
    let (tx, rx) = mpsc::channel(shared.config.queue_depth);
    let writer = tokio::spawn(write_loop(output, rx, shared.clone(), kick.clone()));
    let member = Member {
        id: shared.registry.next_id(),
        tx,
        kick: kick.clone(),
    };
    let mut session = Session::new(member, shared.clone());
    if over_limit {
        let limit = shared.config.max_clients.unwrap_or(0).to_string();
        let reason = format!("server full ({limit} clients)");
        session.reply_and_close(ReplyType::Err, &[&reason]).await;
    } else {
        loop {
            let next = tokio::select! {
                _ = kick.cancelled() => break,
                next = inbound.next() => next,
            };
            let Some(next) = next else { break };
            tokio::select! {
                _ = kick.cancelled() => break,
                _ = shared.pacing.before_command() => {}
            }
            match next {
                Inbound::Command(frame) => {
                    if session.handle(&frame).await == Flow::Close {
                        break;
                    }
                }
                Inbound::Bad(reason) => session.reply(ReplyType::Err, &[&reason]).await,
                Inbound::Fatal(reason) => {
                    session.reply_and_close(ReplyType::Err, &[&reason]).await;
                    break;
                }
            }
        }
    }
    session.leave_everything();
    drop(session);
    writer.await.ok()
}
