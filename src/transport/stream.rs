//! Framed I/O over a byte stream (plain TCP or TLS): frames are read through the codec;
//! writes are encoded into a reused buffer and written whole, one write per message and no
//! allocation per message.

use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

use super::{Incoming, TransportError};
use crate::protocol::{FrameCodec, ProtocolError};

/// Initial read buffer per connection: chat frames are small, and 19 000 idle connections
/// must not hold 8 KiB each. A full buffer doubles before the next read, so a big frame or
/// a burst grows it to what the traffic needs.
const READ_BUFFER_BYTES: usize = 256;

/// A byte stream split into a framed reader and a writer.
pub struct FramedStream<R, W> {
    reader: FramedRead<R, FrameCodec>,
    writer: W,
    /// Where a message is encoded (by the reader's codec: one codec per connection).
    buffer: BytesMut,
    /// Longest a write may wait for the peer to take the bytes (`Conn::set_write_limit`).
    pub(super) write_limit: Option<std::time::Duration>,
}

impl FramedStream<OwnedReadHalf, OwnedWriteHalf> {
    /// A TCP stream, split without a lock.
    pub fn plain(stream: TcpStream, codec: FrameCodec) -> Self {
        let (read, write) = stream.into_split();
        Self::new(read, write, codec)
    }
}

impl<S: AsyncRead + AsyncWrite> FramedStream<tokio::io::ReadHalf<S>, tokio::io::WriteHalf<S>> {
    /// Any other stream (TLS): split with tokio's halves, whose lock is never contended
    /// because a vuser reads and writes in turn.
    pub fn split(stream: S, codec: FrameCodec) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self::new(read, write, codec)
    }
}

impl<R, W> FramedStream<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    fn new(read: R, writer: W, codec: FrameCodec) -> Self {
        FramedStream {
            reader: FramedRead::with_capacity(read, codec, READ_BUFFER_BYTES),
            writer,
            buffer: BytesMut::new(),
            write_limit: None,
        }
    }

    pub(super) async fn send(
        &mut self,
        type_id: Option<u32>,
        body: &[u8],
    ) -> Result<(), TransportError> {
        self.buffer.clear();
        self.reader
            .decoder()
            .encode_parts(type_id, body, &mut self.buffer)
            .map_err(TransportError::Protocol)?;
        self.writer
            .write_all(&self.buffer)
            .await
            .map_err(TransportError::from)?;
        Ok(())
    }

    pub(super) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, TransportError>> {
        Poll::Ready(match ready!(self.reader.poll_next_unpin(cx)) {
            None => Ok(Incoming::End),
            Some(Ok(frame)) => Ok(Incoming::Frame(frame)),
            Some(Err(ProtocolError::Io(io))) => Err(TransportError::from(io)),
            Some(Err(err)) => Err(TransportError::Protocol(err)),
        })
    }

    /// Half-closes the stream so the server sees a clean end (TLS sends close_notify).
    pub(super) async fn close(mut self) {
        let _ = self.writer.shutdown().await;
    }
}
