//! A response body on its way to the engine: what is kept of it (bounded, copied only when it
//! came in more than one chunk) and gzip decoding. Reading it off the connection is the
//! parent's.

use bytes::{Bytes, BytesMut};

use super::MAX_BODY_BYTES;

/// A response body as kept for captures and expectations, at most [`MAX_BODY_BYTES`]: the
/// first chunk as it came (most bodies are one chunk: no copy, no allocation), later chunks
/// appended to a copy.
#[derive(Default)]
pub(super) struct KeptBody {
    first: Bytes,
    joined: BytesMut,
}

impl KeptBody {
    pub(super) fn push(&mut self, data: Bytes) {
        let kept = self.first.len() + self.joined.len();
        let room = MAX_BODY_BYTES.saturating_sub(kept);
        let data = data.slice(..room.min(data.len()));
        if data.is_empty() {
            return;
        }
        if kept == 0 {
            self.first = data;
            return;
        }
        if self.joined.is_empty() {
            self.joined
                .extend_from_slice(&std::mem::take(&mut self.first));
        }
        self.joined.extend_from_slice(&data);
    }

    pub(super) fn into_bytes(self) -> Bytes {
        if self.joined.is_empty() {
            self.first
        } else {
            self.joined.freeze()
        }
    }
}

/// Decodes a gzip body, at most [`MAX_BODY_BYTES`] of it.
pub(super) fn gunzip(data: &[u8]) -> std::io::Result<Bytes> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(MAX_BODY_BYTES as u64)
        .read_to_end(&mut out)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(chunks: &[Bytes]) -> Bytes {
        let mut body = KeptBody::default();
        for chunk in chunks {
            body.push(chunk.clone());
        }
        body.into_bytes()
    }

    #[test]
    fn a_body_in_one_chunk_is_kept_without_a_copy() {
        let chunk = Bytes::from_static(b"ok\n");
        let body = kept(std::slice::from_ref(&chunk));
        assert_eq!(body, chunk);
        assert_eq!(body.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn chunks_are_joined_in_order_and_empty_ones_skipped() {
        let body = kept(&[
            Bytes::new(),
            Bytes::from_static(b"he"),
            Bytes::new(),
            Bytes::from_static(b"llo"),
            Bytes::from_static(b"!"),
        ]);
        assert_eq!(&body[..], b"hello!");
        assert_eq!(kept(&[]), Bytes::new());
    }

    #[test]
    fn what_is_kept_stops_at_the_cap() {
        let big = Bytes::from(vec![7u8; MAX_BODY_BYTES - 2]);
        let body = kept(&[
            big,
            Bytes::from_static(b"abcdef"),
            Bytes::from_static(b"gh"),
        ]);
        assert_eq!(body.len(), MAX_BODY_BYTES);
        assert_eq!(&body[MAX_BODY_BYTES - 2..], b"ab");
        let one = kept(&[Bytes::from(vec![1u8; MAX_BODY_BYTES + 5])]);
        assert_eq!(one.len(), MAX_BODY_BYTES);
    }

    #[test]
    fn gunzip_decodes_and_rejects_garbage() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\":1}").unwrap();
        let zipped = enc.finish().unwrap();
        assert_eq!(&gunzip(&zipped).unwrap()[..], b"{\"a\":1}");
        assert!(gunzip(b"not gzip").is_err());
    }
}
