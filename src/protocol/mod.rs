//! Framing codecs with a hard frame cap, the XOR transform, message encoding and matchers.
//!
//! Pure: works on byte buffers only, opens no sockets and knows nothing about plans (the
//! plan's validation builds these types; the plan imports this module, never the reverse).
//! What it owns:
//! - [`FrameCodec`]: a tokio-util `Decoder`/`Encoder` for `lines`, `delimiter` and
//!   `lengthPrefixed` framing, configured by [`CodecConfig`], that rejects an oversized frame
//!   before buffering or allocating for it;
//! - [`encode_fields`], [`decode_hex`], [`encode_json`]: turning already-rendered text into
//!   message bytes;
//! - [`Matcher`]: deciding whether a received [`Frame`] is the one a flow waits for, and
//!   extracting captures from it; [`TypeMask`]: which packet types it accepts;
//! - [`decode_fields`]: reading typed binary fields back out of a body.

mod codec;
mod config;
mod decode;
mod encode;
mod error;
mod matcher;
mod type_mask;
pub mod varint;

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod codec_varint_tests;

use bytes::Bytes;

pub use codec::FrameCodec;
pub use config::{CodecConfig, Endian, Framing, HeaderField, LengthCounts, LineEnding, Transform};
pub use decode::{DecodeError, Decoded, decode_fields};
pub use encode::{
    FieldKind, StrEncoding, StrWidth, decode_hex, encode_field, encode_fields, encode_json,
};
pub use error::{EncodeError, ProtocolError};
pub use matcher::{CaptureSource, Matcher};
pub use type_mask::TypeMask;

/// One decoded (or to-be-encoded) message: the packet type id when the framing carries one,
/// and the body with any transform already undone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub type_id: Option<u32>,
    pub body: Bytes,
}

impl Frame {
    /// A frame without a type id (text framings).
    pub fn text(body: impl Into<Bytes>) -> Self {
        Frame {
            type_id: None,
            body: body.into(),
        }
    }

    /// A frame with a packet type id (length-prefixed framings with a type field).
    pub fn typed(type_id: u32, body: impl Into<Bytes>) -> Self {
        Frame {
            type_id: Some(type_id),
            body: body.into(),
        }
    }

    /// The body as text, when it is valid UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}
