//! Framed I/O over a byte stream (plain TCP or TLS): frames are read through the codec by a
//! small read loop of our own; writes are encoded into a reused buffer and written whole, one
//! write per message and no allocation per message. On plain TCP the write is tried at once
//! (`try_write`); TLS and what the socket did not take are tried once more by polling the
//! stream's own buffer (`poll_send_rest`), and only what still does not fit waits. The codec
//! itself, and what a frame means, are `protocol`'s.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use super::{Incoming, TransportError};
use crate::protocol::{FrameCodec, ProtocolError};

/// Initial read buffer per connection: chat frames are small, and 19 000 idle connections
/// must not hold 8 KiB each. A burst widens it (`widen_for_backlog`), a bigger frame grows it.
const READ_BUFFER_BYTES: usize = 256;

/// Room made for the next read when a burst is being read (`widen_for_backlog`).
const BURST_READ_BYTES: usize = 8 * 1024;

/// A decode failure as the transport reports it (an I/O error stays one).
fn protocol_failure(err: ProtocolError) -> TransportError {
    match err {
        ProtocolError::Io(io) => TransportError::from(io),
        err => TransportError::Protocol(err),
    }
}

/// Where the reading side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Open,
    /// The peer ended its side: the bytes left are decoded to the end.
    Eof,
    /// The end (or a read or decode error) was reported.
    Done,
}

/// A byte stream, framed: one stream both ways, not split into halves. A vuser reads and
/// writes in turn, always through `&mut self`, so halves would buy nothing, and tokio's cost
/// a heap allocation each (an `Arc` behind `into_split`, an `Arc` and a lock behind
/// `io::split`): one more cache line to touch per message, and bytes per idle vuser.
pub struct FramedStream<S> {
    io: S,
    /// Frames both ways: one codec per connection.
    codec: FrameCodec,
    /// Bytes read and not yet taken as frames.
    read_buffer: BytesMut,
    read_state: ReadState,
    /// Where a message is encoded.
    buffer: BytesMut,
    /// Longest a write may wait for the peer to take the bytes (`Conn::set_write_limit`).
    pub(super) write_limit: Option<std::time::Duration>,
}

/// A stream that may take bytes at once, without a future: a TCP socket's `try_write`.
/// Others (TLS, whose records rustls builds) always go through their `AsyncWrite`.
pub trait WriteNow {
    /// Bytes taken now; `WouldBlock` when none can be.
    fn write_now(&self, bytes: &[u8]) -> std::io::Result<usize> {
        let _ = bytes;
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl WriteNow for TcpStream {
    fn write_now(&self, bytes: &[u8]) -> std::io::Result<usize> {
        self.try_write(bytes)
    }
}

impl<S> WriteNow for tokio_rustls::client::TlsStream<S> {}

#[cfg(test)]
impl WriteNow for tokio::io::DuplexStream {}

impl<S> FramedStream<S>
where
    S: AsyncRead + AsyncWrite + WriteNow + Unpin,
{
    pub fn new(io: S, codec: FrameCodec) -> Self {
        FramedStream {
            io,
            codec,
            read_buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
            read_state: ReadState::Open,
            buffer: BytesMut::new(),
            write_limit: None,
        }
    }

    /// Encodes the frame and hands the socket what it takes now, without a future (a TCP
    /// socket nearly always has room for a chat message). `false`: bytes are left for
    /// `poll_send_rest` (always, for a writer that cannot write at once).
    pub(super) fn send_now(
        &mut self,
        type_id: Option<u32>,
        body: &[u8],
    ) -> Result<bool, TransportError> {
        self.buffer.clear();
        self.codec
            .encode_parts(type_id, body, &mut self.buffer)
            .map_err(TransportError::Protocol)?;
        let written = match self.io.write_now(&self.buffer) {
            Ok(written) => written,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(err) => return Err(TransportError::from(err)),
        };
        if written >= self.buffer.len() {
            // Cleared, not advanced: the buffer keeps its room from its start.
            self.buffer.clear();
            return Ok(true);
        }
        self.buffer.advance(written);
        Ok(false)
    }

    /// As `send_now`, for a frame this stream's codec already encoded (`encode`): written
    /// from the caller's bytes; only what the socket did not take is copied, for
    /// `poll_send_rest` (all of it for TLS, whose records rustls builds in `poll_write`).
    pub(super) fn send_encoded_now(&mut self, frame: &[u8]) -> Result<bool, TransportError> {
        let written = match self.io.write_now(frame) {
            Ok(written) => written,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(err) => return Err(TransportError::from(err)),
        };
        let rest = frame.get(written..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(true);
        }
        self.buffer.clear();
        self.buffer.extend_from_slice(rest);
        Ok(false)
    }

    /// The frame of `body` (no type) as this stream writes it; `None` when the codec refuses
    /// the body (the error comes from the send itself).
    pub(super) fn encode(&self, body: &[u8]) -> Option<Bytes> {
        let mut frame = BytesMut::new();
        self.codec.encode_parts(None, body, &mut frame).ok()?;
        Some(frame.freeze())
    }

    /// Writes what `send_now` left as far as the peer takes it now, then flushes (TLS:
    /// records rustls could not hand the socket yet). A poll over the stream's own buffer,
    /// so a caller can try it once with no future of its own: the first try nearly always
    /// finishes, and for TLS, whose writes never finish in `send_now`, that is every message.
    pub(super) fn poll_send_rest(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>> {
        while !self.buffer.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buffer))?;
            if written == 0 {
                return Poll::Ready(Err(TransportError::from(std::io::Error::from(
                    std::io::ErrorKind::WriteZero,
                ))));
            }
            self.buffer.advance(written);
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// The next frame, or the end. The read loop is ours rather than `FramedRead`'s: it
    /// skips decoding an empty buffer, and its few states cost less per message.
    pub(super) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, TransportError>> {
        loop {
            match self.read_state {
                ReadState::Open => {}
                ReadState::Eof => {
                    // What is left is decoded to the end (a last line without its newline is
                    // still a frame), then the end is reported once.
                    let decoded = self.codec.decode_eof(&mut self.read_buffer);
                    if !matches!(decoded, Ok(Some(_))) {
                        self.read_state = ReadState::Done;
                    }
                    return Poll::Ready(match decoded {
                        Ok(Some(frame)) => Ok(Incoming::Frame(frame)),
                        Ok(None) => Ok(Incoming::End),
                        Err(err) => Err(protocol_failure(err)),
                    });
                }
                ReadState::Done => return Poll::Ready(Ok(Incoming::End)),
            }
            if self.read_buffer.is_empty() {
                self.reclaim_read_buffer();
            } else {
                match self.codec.decode(&mut self.read_buffer) {
                    Ok(Some(frame)) => {
                        self.widen_for_backlog();
                        return Poll::Ready(Ok(Incoming::Frame(frame)));
                    }
                    Ok(None) => {}
                    Err(err) => {
                        self.read_state = ReadState::Done;
                        return Poll::Ready(Err(protocol_failure(err)));
                    }
                }
            }
            self.read_buffer.reserve(1);
            match ready!(poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut self.read_buffer
            )) {
                Ok(0) => self.read_state = ReadState::Eof,
                Ok(_) => {}
                Err(err) => {
                    self.read_state = ReadState::Done;
                    return Poll::Ready(Err(TransportError::from(err)));
                }
            }
        }
    }

    /// Each frame taken splits its bytes off the front of the read buffer, so the room left
    /// for reads shrinks frame by frame until a reply no longer fits and takes two reads.
    /// Once every byte is consumed (and the frames are gone) and less than half the room is
    /// left, the same allocation is reused from its start: no allocation, and one read per
    /// reply of up to half the buffer.
    fn reclaim_read_buffer(&mut self) {
        let buffer = &mut self.read_buffer;
        if buffer.is_empty() && buffer.capacity() < READ_BUFFER_BYTES / 2 {
            buffer.reserve(READ_BUFFER_BYTES);
        }
    }

    /// Bytes left in the buffer after a frame mean more arrived than one frame: a burst (a
    /// broadcast fan-out), likely with more waiting in the socket. The small first buffer
    /// would then take it a few frames per read; give the next read room for many. Frames
    /// that are read one at a time (replies, idle connections) never get here with bytes
    /// left, so their buffer stays small.
    fn widen_for_backlog(&mut self) {
        let buffer = &mut self.read_buffer;
        if !buffer.is_empty() && buffer.capacity() - buffer.len() < READ_BUFFER_BYTES {
            buffer.reserve(BURST_READ_BYTES);
        }
    }

    /// Half-closes the stream so the server sees a clean end (TLS sends close_notify).
    pub(super) async fn close(mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::protocol::{CodecConfig, Frame};

    fn reader() -> (
        FramedStream<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
    ) {
        let codec = FrameCodec::new(CodecConfig::lines()).expect("codec");
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        (FramedStream::new(ours, codec), theirs)
    }

    async fn next_line(
        stream: &mut FramedStream<impl AsyncRead + AsyncWrite + WriteNow + Unpin>,
    ) -> Frame {
        match std::future::poll_fn(|cx| stream.poll_recv(cx)).await {
            Ok(Incoming::Frame(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_burst_widens_the_read_buffer_and_loses_nothing() {
        let (mut stream, mut peer) = reader();
        let burst: String = (0..200)
            .map(|i| format!("message number {i:04}\n"))
            .collect();
        peer.write_all(burst.as_bytes()).await.expect("write");
        assert_eq!(
            next_line(&mut stream).await,
            Frame::text("message number 0000")
        );
        assert!(stream.read_buffer.capacity() >= BURST_READ_BYTES);
        for i in 1..200 {
            let expected = format!("message number {i:04}");
            assert_eq!(next_line(&mut stream).await, Frame::text(expected));
        }
    }

    async fn next(
        stream: &mut FramedStream<impl AsyncRead + AsyncWrite + WriteNow + Unpin>,
    ) -> Result<Incoming, TransportError> {
        std::future::poll_fn(|cx| stream.poll_recv(cx)).await
    }

    #[tokio::test]
    async fn the_peers_end_delivers_a_last_unterminated_line_then_ends_for_good() {
        let (mut stream, mut peer) = reader();
        peer.write_all(b"first\nlast").await.expect("write");
        drop(peer);
        assert_eq!(next_line(&mut stream).await, Frame::text("first"));
        assert_eq!(next_line(&mut stream).await, Frame::text("last"));
        assert!(matches!(next(&mut stream).await, Ok(Incoming::End)));
        assert!(matches!(next(&mut stream).await, Ok(Incoming::End)));
    }

    #[tokio::test]
    async fn a_frame_over_the_cap_is_an_error_then_the_end() {
        let config = CodecConfig {
            max_frame_bytes: 8,
            ..CodecConfig::lines()
        };
        let (ours, mut peer) = tokio::io::duplex(1024);
        let mut stream = FramedStream::new(ours, FrameCodec::new(config).expect("codec"));
        peer.write_all(b"ok\nmuch too long for the cap\n")
            .await
            .expect("write");
        assert_eq!(next_line(&mut stream).await, Frame::text("ok"));
        assert!(matches!(
            next(&mut stream).await,
            Err(TransportError::Protocol(_))
        ));
        assert!(matches!(next(&mut stream).await, Ok(Incoming::End)));
    }

    /// A stream that counts the reads that returned bytes.
    struct CountingReads {
        inner: tokio::io::DuplexStream,
        reads: usize,
    }

    impl AsyncRead for CountingReads {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.reads += 1;
            }
            polled
        }
    }

    impl WriteNow for CountingReads {}

    impl AsyncWrite for CountingReads {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn each_reply_read_one_at_a_time_takes_one_read() {
        let codec = FrameCodec::new(CodecConfig::lines()).expect("codec");
        let (ours, mut peer) = tokio::io::duplex(64 * 1024);
        let counted = CountingReads {
            inner: ours,
            reads: 0,
        };
        let mut stream = FramedStream::new(counted, codec);
        // 200 replies of 9 bytes: seven times the first buffer, so without reusing it from
        // its start, replies would straddle its end and take two reads each time.
        for i in 0..200 {
            peer.write_all(format!("PONG {i:03}\n").as_bytes())
                .await
                .expect("write");
            assert_eq!(
                next_line(&mut stream).await,
                Frame::text(format!("PONG {i:03}"))
            );
        }
        assert_eq!(stream.io.reads, 200);
        assert!(stream.read_buffer.capacity() <= READ_BUFFER_BYTES);
    }

    #[tokio::test]
    async fn replies_read_one_at_a_time_keep_the_buffer_small() {
        let (mut stream, mut peer) = reader();
        for i in 0..50 {
            peer.write_all(format!("PONG {i}\n").as_bytes())
                .await
                .expect("write");
            assert_eq!(
                next_line(&mut stream).await,
                Frame::text(format!("PONG {i}"))
            );
            assert!(stream.read_buffer.capacity() <= READ_BUFFER_BYTES);
        }
    }
}
