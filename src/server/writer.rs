//! A connection's writer task: drains the connection's bounded queue into an [`Output`],
//! honouring each message's due time (delay/jitter) and the server's stalls, and batching
//! what is already queued into one write.
//!
//! The loop is generic over the output so a plain TCP connection is monomorphised into
//! exactly the byte-batching writer it always had (no boxing, no dynamic dispatch), while a
//! WebSocket connection (`websocket::WsOutput`) turns each queued message into one frame.

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::server::Shared;
use crate::server::registry::Outgoing;

/// Bytes gathered from the queue before one socket write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Where a connection's messages go. `push` only buffers; `flush` does the I/O.
pub trait Output: Send + 'static {
    /// Adds one encoded message to the pending batch.
    fn push(&mut self, message: Bytes);
    /// Bytes pending in the batch.
    fn pending(&self) -> usize;
    /// Writes the pending batch; an error means the peer is gone.
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Ends the connection: `clean` after a last message (`BYE`, an `ERR` that closes),
    /// otherwise because the server stopped or kicked the client. Gives the output back, so
    /// a transport that was split can be reunited and closed properly.
    fn finish(self, clean: bool) -> impl Future<Output = Self> + Send;
}

/// A byte stream (TCP, TLS): messages are concatenated into one buffer per write.
pub struct ByteOutput<W> {
    write: W,
    batch: BytesMut,
}

impl<W> ByteOutput<W> {
    pub fn new(write: W) -> Self {
        ByteOutput {
            write,
            batch: BytesMut::new(),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> Output for ByteOutput<W> {
    fn push(&mut self, message: Bytes) {
        self.batch.extend_from_slice(&message);
    }

    fn pending(&self) -> usize {
        self.batch.len()
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let result = self.write.write_all(&self.batch).await;
        self.batch.clear();
        result
    }

    async fn finish(mut self, _clean: bool) -> Self {
        // For TLS this also sends close_notify, so the peer sees a clean end of stream.
        let _ = self.write.shutdown().await;
        self
    }
}

/// Runs until the connection ends; returns the finished output.
pub async fn write_loop<O: Output>(
    mut out: O,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
    kick: CancellationToken,
) -> O {
    let mut clean = false;
    'connection: loop {
        let first = tokio::select! {
            biased;
            _ = kick.cancelled() => break,
            message = rx.recv() => message,
        };
        let Some(mut message) = first else { break };
        let mut close = false;
        let (mut messages, mut bytes) = (0u64, 0u64);
        loop {
            if let Some(due) = message.due
                && due > tokio::time::Instant::now()
            {
                if out.flush().await.is_err() {
                    break 'connection;
                }
                tokio::select! {
                    _ = kick.cancelled() => break 'connection,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            messages += 1;
            bytes += message.bytes.len() as u64;
            out.push(message.bytes);
            if message.close {
                close = true;
                break;
            }
            if out.pending() >= WRITE_BATCH_BYTES {
                break;
            }
            match rx.try_recv() {
                Ok(next) => message = next,
                Err(_) => break,
            }
        }
        // A stalled server writes nothing either.
        tokio::select! {
            _ = kick.cancelled() => break,
            _ = shared.pacing.wait_out_stall() => {}
        }
        if out.flush().await.is_err() {
            break;
        }
        shared.stats.written(messages, bytes);
        if close {
            clean = true;
            break;
        }
    }
    // Wake the reader (it may be blocked on a client that never sends again).
    kick.cancel();
    out.finish(clean).await
}
