//! How a codec frames bytes: the protocol's own configuration types. The plan's validation
//! builds them from what the plan says (`plan::validate::protocol`, from the raw serde
//! forms), so this module never imports the plan; it owns no parsing of plans.

use crate::protocol::error::ProtocolError;

/// Everything a [`crate::protocol::FrameCodec`] needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecConfig {
    pub framing: Framing,
    /// What ends an outgoing line (`Framing::Lines` only; incoming lines accept both).
    pub line_ending: LineEnding,
    pub transform: Option<Transform>,
    /// The largest frame accepted or sent: the body for text framings, header plus body for
    /// length-prefixed ones. A larger frame is an error, never an allocation.
    pub max_frame_bytes: usize,
}

impl CodecConfig {
    /// Default cap on one frame: 1 MiB.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

    /// Bytes a WebSocket end (`chatload run` and `chatload serve`) reads from its socket at
    /// a time, and the read buffer it keeps per connection. tungstenite's default, 128 KiB,
    /// is allocated eagerly and zero-filled before every read (the one that finds nothing
    /// waiting included): twice per round trip, that was most of a ping-pong's user time,
    /// and 128 KiB of resident memory per connection. A chat message fits in one read; a
    /// bigger one takes several.
    pub const WEBSOCKET_READ_CHUNK_BYTES: usize = 4096;

    /// `lines` framing, LF endings, no transform, the default cap.
    pub fn lines() -> Self {
        CodecConfig {
            framing: Framing::Lines,
            line_ending: LineEnding::Lf,
            transform: None,
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// The common game-server packet `[u16 total length][u16 type][body]`, little endian.
    pub fn u16_length_type_le() -> Self {
        CodecConfig {
            framing: Framing::LengthPrefixed {
                header: vec![
                    HeaderField::Length { bytes: 2 },
                    HeaderField::Type { bytes: 2 },
                ],
                endian: Endian::Little,
                length_counts: LengthCounts::Frame,
            },
            line_ending: LineEnding::Lf,
            transform: None,
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// Byte order for a message's typed binary fields: the header's when the framing is
    /// length-prefixed, little endian otherwise (the common case for binary payloads).
    pub fn field_endian(&self) -> Endian {
        match &self.framing {
            Framing::LengthPrefixed { endian, .. } => *endian,
            _ => Endian::Little,
        }
    }

    /// Checks the invariants the codec relies on; the error says which one broke.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.max_frame_bytes == 0 {
            return Err(ProtocolError::Config(
                "maxFrameBytes must be at least 1".to_string(),
            ));
        }
        if let Some(Transform::Xor { key }) = &self.transform
            && key.is_empty()
        {
            return Err(ProtocolError::Config(
                "the xor transform needs a non-empty key".to_string(),
            ));
        }
        match &self.framing {
            Framing::Lines => Ok(()),
            Framing::Delimiter(delimiter) if delimiter.is_empty() => Err(ProtocolError::Config(
                "the delimiter must be at least one byte".to_string(),
            )),
            Framing::Delimiter(_) => Ok(()),
            Framing::LengthPrefixed { header, .. } => validate_header(header),
        }
    }
}

fn validate_header(header: &[HeaderField]) -> Result<(), ProtocolError> {
    let mut lengths = 0;
    let mut types = 0;
    for field in header {
        match field {
            HeaderField::VarintLength => lengths += 1,
            HeaderField::Length { bytes } => {
                lengths += 1;
                if !matches!(bytes, 1 | 2 | 4 | 8) {
                    return Err(ProtocolError::Config(format!(
                        "a length field is 1, 2, 4 or 8 bytes, not {bytes}"
                    )));
                }
            }
            HeaderField::Type { bytes } => {
                types += 1;
                if !matches!(bytes, 1 | 2 | 4) {
                    return Err(ProtocolError::Config(format!(
                        "a type field is 1, 2 or 4 bytes, not {bytes}"
                    )));
                }
            }
            HeaderField::Fixed { value } if value.is_empty() => {
                return Err(ProtocolError::Config(
                    "a fixed header field needs at least one byte".to_string(),
                ));
            }
            HeaderField::Fixed { .. } => {}
        }
    }
    if lengths != 1 {
        return Err(ProtocolError::Config(format!(
            "a lengthPrefixed header needs exactly one length field, found {lengths}"
        )));
    }
    if types > 1 {
        return Err(ProtocolError::Config(format!(
            "a lengthPrefixed header has at most one type field, found {types}"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub enum Framing {
    /// Frames end at `\n`; a trailing `\r` is stripped on read.
    Lines,
    /// Frames end at this byte sequence (at least one byte).
    Delimiter(Vec<u8>),
    /// A binary header of ordered fields, then the body.
    LengthPrefixed {
        header: Vec<HeaderField>,
        endian: Endian,
        length_counts: LengthCounts,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    Lf,
    CrLf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderField {
    /// The length field: 1, 2, 4 or 8 bytes.
    Length { bytes: u8 },
    /// The length field as a varint (MQTT's remaining length): 1 to 4 bytes, see
    /// [`crate::protocol::varint`].
    VarintLength,
    /// The packet type id: 1, 2 or 4 bytes.
    Type { bytes: u8 },
    /// Filler written as given and skipped on read.
    Fixed { value: Vec<u8> },
}

impl HeaderField {
    /// The field's width in bytes; 0 for a varint, whose width depends on its value.
    pub(crate) fn width(&self) -> usize {
        match self {
            HeaderField::Length { bytes } | HeaderField::Type { bytes } => usize::from(*bytes),
            HeaderField::VarintLength => 0,
            HeaderField::Fixed { value } => value.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// What the length field counts: the body only, or the whole frame including the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthCounts {
    Body,
    Frame,
}

/// A reversible obfuscation of the body, applied on send and undone on receive.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// XOR with the key repeated from the first body byte of every frame.
    Xor { key: Vec<u8> },
}

impl Transform {
    /// Applies the transform in place; XOR is its own inverse so this also undoes it.
    pub fn apply(&self, body: &mut [u8]) {
        match self {
            Transform::Xor { key } => {
                if key.is_empty() {
                    return;
                }
                for (byte, k) in body.iter_mut().zip(key.iter().cycle()) {
                    *byte ^= k;
                }
            }
        }
    }
}
