//! The protocol module's typed errors.

/// Why a frame could not be decoded or encoded, or why a codec could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid protocol configuration: {0}")]
    Config(String),
    #[error(
        "frame of {frame_bytes} bytes is over the {max_frame_bytes}-byte cap \
         (raise protocol.maxFrameBytes if such frames are expected)"
    )]
    FrameTooLarge {
        frame_bytes: u64,
        max_frame_bytes: usize,
    },
    #[error(
        "no frame terminator within the first {max_frame_bytes} bytes \
         (wrong framing, or raise protocol.maxFrameBytes)"
    )]
    UnterminatedFrame { max_frame_bytes: usize },
    #[error(
        "length field says {length} but the header alone is {header_bytes} bytes \
         (lengthCounts: frame); is lengthCounts or the header layout wrong?"
    )]
    LengthBelowHeader { length: u64, header_bytes: usize },
    #[error("body of {body_bytes} bytes does not fit a {width}-byte length field")]
    LengthOverflow { body_bytes: usize, width: u8 },
    #[error("type id {type_id} does not fit the {width}-byte type field")]
    TypeOverflow { type_id: u32, width: u8 },
    #[error("the body contains the frame terminator, so the peer would split it")]
    TerminatorInBody,
    #[error("connection closed in the middle of a frame ({buffered_bytes} bytes buffered)")]
    TruncatedFrame { buffered_bytes: usize },
    #[error(
        "a message held one packet and {trailing_bytes} bytes more; one message carries one packet"
    )]
    TrailingBytes { trailing_bytes: usize },
    #[error("varint length field: {0}")]
    Varint(#[from] crate::protocol::varint::VarintError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why rendered text could not be encoded into message bytes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EncodeError {
    #[error("field {index} ({kind}): {value:?} is not a valid {kind}: {reason}")]
    BadNumber {
        index: usize,
        kind: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "field {index}: string of {string_bytes} bytes does not fit its {width}-byte length prefix"
    )]
    StringTooLong {
        index: usize,
        string_bytes: usize,
        width: u8,
    },
    #[error("field {index}: a string length prefix is 1, 2 or 4 bytes, not {width}")]
    BadPrefixWidth { index: usize, width: u8 },
    #[error("hex {value:?}: {reason}")]
    BadHex { value: String, reason: String },
    #[error("JSON encoding failed: {0}")]
    Json(String),
}
