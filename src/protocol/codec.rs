//! [`FrameCodec`]: the tokio-util `Decoder`/`Encoder` for every framing.
//!
//! The cap is enforced before buffering: a length-prefixed frame is refused as soon as its
//! header is read, a text frame as soon as more than the cap is buffered without a terminator.
//! Nothing is ever reserved for a frame over the cap.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::protocol::Frame;
use crate::protocol::config::{
    CodecConfig, Endian, Framing, HeaderField, LengthCounts, LineEnding,
};
use crate::protocol::error::ProtocolError;
use crate::protocol::varint::{self, VarintError};

/// Frames bytes according to a [`CodecConfig`]. Cheap to clone: one per connection.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    config: CodecConfig,
    /// Header bytes of a length-prefixed framing besides a varint length (0 otherwise).
    header_bytes: usize,
    /// Whether the length field is a varint, so the header's width depends on the length.
    varint_length: bool,
    /// Where the terminator search resumes, so a slowly arriving line is not rescanned.
    scan_from: usize,
}

impl FrameCodec {
    /// Builds a codec; fails when the configuration is inconsistent (see
    /// [`CodecConfig::validate`]).
    pub fn new(config: CodecConfig) -> Result<Self, ProtocolError> {
        config.validate()?;
        let header_bytes = match &config.framing {
            Framing::LengthPrefixed { header, .. } => header.iter().map(HeaderField::width).sum(),
            _ => 0,
        };
        let varint_length = match &config.framing {
            Framing::LengthPrefixed { header, .. } => header.contains(&HeaderField::VarintLength),
            _ => false,
        };
        Ok(FrameCodec {
            config,
            header_bytes,
            varint_length,
            scan_from: 0,
        })
    }

    pub fn config(&self) -> &CodecConfig {
        &self.config
    }

    /// Encodes one frame from borrowed parts: the fast path when the body is not a `Bytes`.
    pub fn encode_parts(
        &self,
        type_id: Option<u32>,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        match &self.config.framing {
            Framing::Lines => {
                let ending: &[u8] = match self.config.line_ending {
                    LineEnding::Lf => b"\n",
                    LineEnding::CrLf => b"\r\n",
                };
                self.encode_terminated(body, b"\n", ending, dst)
            }
            Framing::Delimiter(delimiter) => {
                self.encode_terminated(body, delimiter, delimiter, dst)
            }
            Framing::LengthPrefixed {
                header,
                endian,
                length_counts,
            } => {
                // The frame without a varint length: over the cap already, nothing to size.
                self.check_cap((self.header_bytes + body.len()) as u64)?;
                let (length, varint_bytes) = self.length_field(*length_counts, body.len())?;
                let frame_bytes = self.header_bytes + varint_bytes + body.len();
                self.check_cap(frame_bytes as u64)?;
                dst.reserve(frame_bytes);
                for field in header {
                    match field {
                        HeaderField::Length { bytes } => {
                            let fits = *bytes >= 8 || (length as u64) < (1u64 << (8 * bytes));
                            if !fits {
                                return Err(ProtocolError::LengthOverflow {
                                    body_bytes: body.len(),
                                    width: *bytes,
                                });
                            }
                            put_uint(dst, length as u64, *bytes, *endian);
                        }
                        HeaderField::VarintLength => varint::put(dst, length as u64)?,
                        HeaderField::Type { bytes } => {
                            let type_id = type_id.unwrap_or(0);
                            if *bytes < 4 && u64::from(type_id) >= 1u64 << (8 * bytes) {
                                return Err(ProtocolError::TypeOverflow {
                                    type_id,
                                    width: *bytes,
                                });
                            }
                            put_uint(dst, u64::from(type_id), *bytes, *endian);
                        }
                        HeaderField::Fixed { value } => dst.put_slice(value),
                    }
                }
                let body_start = dst.len();
                dst.put_slice(body);
                if let Some(transform) = &self.config.transform {
                    transform.apply(&mut dst[body_start..]);
                }
                Ok(())
            }
        }
    }

    /// Encodes one frame as one whole message of a message transport (WebSocket): the
    /// message boundary is the frame boundary, so text framings write the body alone (no
    /// terminator, which may then appear in the body) and length-prefixed framings write one
    /// packet, header included. The transform and the frame cap apply as on a stream.
    pub fn encode_message(
        &self,
        type_id: Option<u32>,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        if matches!(self.config.framing, Framing::LengthPrefixed { .. }) {
            return self.encode_parts(type_id, body, dst);
        }
        self.check_cap(body.len() as u64)?;
        let body_start = dst.len();
        dst.extend_from_slice(body);
        if let Some(transform) = &self.config.transform {
            transform.apply(&mut dst[body_start..]);
        }
        Ok(())
    }

    /// Decodes one whole message of a message transport into one frame: the inverse of
    /// [`FrameCodec::encode_message`]. A length-prefixed message must hold exactly one
    /// packet.
    pub fn decode_message(&mut self, message: Bytes) -> Result<Frame, ProtocolError> {
        if matches!(self.config.framing, Framing::LengthPrefixed { .. }) {
            let mut buffer = BytesMut::from(message);
            return match self.decode_length_prefixed(&mut buffer)? {
                Some(frame) if buffer.is_empty() => Ok(frame),
                Some(_) => Err(ProtocolError::TrailingBytes {
                    trailing_bytes: buffer.len(),
                }),
                None => Err(ProtocolError::TruncatedFrame {
                    buffered_bytes: buffer.len(),
                }),
            };
        }
        self.check_cap(message.len() as u64)?;
        let body = match &self.config.transform {
            None => message,
            Some(transform) => {
                let mut body = BytesMut::from(message);
                transform.apply(&mut body);
                body.freeze()
            }
        };
        Ok(Frame {
            type_id: None,
            body,
        })
    }

    fn encode_terminated(
        &self,
        body: &[u8],
        forbidden: &[u8],
        ending: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        self.check_cap(body.len() as u64)?;
        dst.reserve(body.len() + ending.len());
        let body_start = dst.len();
        dst.put_slice(body);
        if let Some(transform) = &self.config.transform {
            transform.apply(&mut dst[body_start..]);
        }
        if find(&dst[body_start..], forbidden).is_some() {
            dst.truncate(body_start);
            return Err(ProtocolError::TerminatorInBody);
        }
        dst.put_slice(ending);
        Ok(())
    }

    /// The value of the length field for a body of `body_bytes`, and the bytes a varint
    /// length takes (0 for a fixed-width one). With `lengthCounts: frame` a varint counts
    /// itself: the smallest width that holds the total including that width.
    fn length_field(
        &self,
        length_counts: LengthCounts,
        body_bytes: usize,
    ) -> Result<(usize, usize), ProtocolError> {
        let without_varint = self.header_bytes + body_bytes;
        if !self.varint_length {
            return Ok(match length_counts {
                LengthCounts::Body => (body_bytes, 0),
                LengthCounts::Frame => (without_varint, 0),
            });
        }
        let sized = match length_counts {
            LengthCounts::Body => {
                varint::encoded_len(body_bytes as u64).map(|width| (body_bytes, width))
            }
            // encoded_len(n + w) grows with w and stays within 1..=4, so one w is a fixed point.
            LengthCounts::Frame => (1..=varint::MAX_BYTES).find_map(|width| {
                let total = without_varint + width;
                (varint::encoded_len(total as u64) == Some(width)).then_some((total, width))
            }),
        };
        sized.ok_or(ProtocolError::Varint(VarintError::TooLarge {
            value: without_varint as u64,
        }))
    }

    fn check_cap(&self, frame_bytes: u64) -> Result<(), ProtocolError> {
        if frame_bytes > self.config.max_frame_bytes as u64 {
            return Err(ProtocolError::FrameTooLarge {
                frame_bytes,
                max_frame_bytes: self.config.max_frame_bytes,
            });
        }
        Ok(())
    }

    fn decode_terminated(
        &mut self,
        src: &mut BytesMut,
        terminator_is_lf: bool,
    ) -> Result<Option<Frame>, ProtocolError> {
        let start = self.scan_from.min(src.len());
        let (found, delimiter_len) = {
            let delimiter: &[u8] = match &self.config.framing {
                Framing::Delimiter(delimiter) => delimiter,
                _ => b"\n",
            };
            (find(&src[start..], delimiter), delimiter.len())
        };
        let Some(offset) = found else {
            // The tail may hold the first bytes of a multi-byte delimiter: rescan those.
            self.scan_from = src.len().saturating_sub(delimiter_len.saturating_sub(1));
            // Allow for a `\r` before the `\n`, which is not part of the frame.
            // and for the first bytes of a delimiter that has not fully arrived.
            let slack = delimiter_len - 1 + usize::from(terminator_is_lf);
            if src.len() > self.config.max_frame_bytes + slack {
                return Err(ProtocolError::UnterminatedFrame {
                    max_frame_bytes: self.config.max_frame_bytes,
                });
            }
            return Ok(None);
        };
        let end = start + offset;
        self.scan_from = 0;
        let mut body = src.split_to(end);
        src.advance(delimiter_len);
        if terminator_is_lf && body.last() == Some(&b'\r') {
            body.truncate(body.len() - 1);
        }
        self.check_cap(body.len() as u64)?;
        if let Some(transform) = &self.config.transform {
            transform.apply(&mut body);
        }
        Ok(Some(Frame {
            type_id: None,
            body: body.freeze(),
        }))
    }

    fn decode_length_prefixed(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Frame>, ProtocolError> {
        let Framing::LengthPrefixed {
            header,
            endian,
            length_counts,
        } = &self.config.framing
        else {
            return Ok(None);
        };
        // Fields are read in order; any field not fully arrived means wait for more bytes.
        let mut length = 0u64;
        let mut type_id = None;
        let mut at = 0usize;
        for field in header {
            if let HeaderField::VarintLength = field {
                match varint::read(src.get(at..).unwrap_or_default())? {
                    Some((value, width)) => {
                        length = value;
                        at += width;
                    }
                    None => return Ok(None),
                }
                continue;
            }
            let width = field.width();
            let Some(raw) = src.get(at..at + width) else {
                return Ok(None);
            };
            match field {
                HeaderField::Length { .. } => length = get_uint(raw, *endian),
                // A 4-byte type is the widest, so the conversion cannot truncate.
                HeaderField::Type { .. } => {
                    type_id = Some(u32::try_from(get_uint(raw, *endian)).unwrap_or(u32::MAX))
                }
                HeaderField::Fixed { .. } | HeaderField::VarintLength => {}
            }
            at += width;
        }
        let header_bytes = at;
        let frame_bytes = match length_counts {
            LengthCounts::Body => length.saturating_add(header_bytes as u64),
            LengthCounts::Frame => {
                if length < header_bytes as u64 {
                    return Err(ProtocolError::LengthBelowHeader {
                        length,
                        header_bytes,
                    });
                }
                length
            }
        };
        self.check_cap(frame_bytes)?;
        // Within the cap, so it fits a usize.
        let frame_bytes = frame_bytes as usize;
        if src.len() < frame_bytes {
            src.reserve(frame_bytes - src.len());
            return Ok(None);
        }
        src.advance(header_bytes);
        let mut body = src.split_to(frame_bytes - header_bytes);
        if let Some(transform) = &self.config.transform {
            transform.apply(&mut body);
        }
        Ok(Some(Frame {
            type_id,
            body: body.freeze(),
        }))
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.config.framing {
            Framing::Lines => self.decode_terminated(src, true),
            Framing::Delimiter(_) => self.decode_terminated(src, false),
            Framing::LengthPrefixed { .. } => self.decode_length_prefixed(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            // A last line without its newline is still a line (what `nc` and many servers send).
            None if matches!(self.config.framing, Framing::Lines) => {
                let mut body = src.split();
                self.scan_from = 0;
                if body.last() == Some(&b'\r') {
                    body.truncate(body.len() - 1);
                }
                if let Some(transform) = &self.config.transform {
                    transform.apply(&mut body);
                }
                Ok(Some(Frame {
                    type_id: None,
                    body: body.freeze(),
                }))
            }
            None => Err(ProtocolError::TruncatedFrame {
                buffered_bytes: src.len(),
            }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode_parts(frame.type_id, &frame.body, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode_parts(frame.type_id, &frame.body, dst)
    }
}

/// A body without a type id (text framings, or type 0).
impl Encoder<&[u8]> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.encode_parts(None, body, dst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    /// Below this, a plain scan beats memchr's set-up (chat messages are often this short).
    const SHORT_BYTES: usize = 16;
    match needle {
        [] => None,
        [byte] if haystack.len() < SHORT_BYTES => haystack.iter().position(|b| b == byte),
        // memchr's searches run a word (or SIMD register) at a time, not a byte.
        [byte] => memchr::memchr(*byte, haystack),
        _ => memchr::memmem::find(haystack, needle),
    }
}

fn put_uint(dst: &mut BytesMut, value: u64, width: u8, endian: Endian) {
    let width = usize::from(width);
    match endian {
        Endian::Little => dst.put_uint_le(value, width),
        Endian::Big => dst.put_uint(value, width),
    }
}

fn get_uint(raw: &[u8], endian: Endian) -> u64 {
    let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
    match endian {
        Endian::Little => raw.iter().rev().fold(0, fold),
        Endian::Big => raw.iter().fold(0, fold),
    }
}
