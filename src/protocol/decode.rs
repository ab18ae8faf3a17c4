//! Decoding a binary body into typed values: the inverse of [`crate::protocol::encode_fields`]
//! for the same [`FieldKind`]s, used by `decode:` on expects and handlers (an MQTT delivery's
//! topic and packet id, a session id in a binary login reply).
//!
//! Fields are read in order from the start of the body; bytes after the last field are left
//! alone (a PUBLISH's payload after its topic and packet id). What the values are bound to is
//! the engine's business.

use crate::protocol::config::Endian;
use crate::protocol::encode::{FieldKind, StrEncoding, StrWidth};

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
}

/// Why a body does not hold the fields asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("field {index} ({kind}) needs {needed} more bytes, the body has {left} left")]
    Short {
        index: usize,
        kind: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("field {index} (str) is not valid {encoding}")]
    BadText {
        index: usize,
        encoding: &'static str,
    },
}

/// Reads one value per kind, in order, from the start of `body`.
pub fn decode_fields(
    body: &[u8],
    kinds: impl IntoIterator<Item = FieldKind>,
    endian: Endian,
) -> Result<Vec<Decoded>, DecodeError> {
    let mut reader = Reader { body, at: 0 };
    kinds
        .into_iter()
        .enumerate()
        .map(|(index, kind)| reader.field(index, kind, endian))
        .collect()
}

struct Reader<'b> {
    body: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, index: usize, kind: FieldKind, n: usize) -> Result<&'b [u8], DecodeError> {
        let left = self.body.len() - self.at;
        let bytes =
            self.body
                .get(self.at..self.at.saturating_add(n))
                .ok_or(DecodeError::Short {
                    index,
                    kind: kind.name(),
                    needed: n,
                    left,
                })?;
        self.at += n;
        Ok(bytes)
    }

    fn uint(
        &mut self,
        index: usize,
        kind: FieldKind,
        width: usize,
        endian: Endian,
    ) -> Result<u64, DecodeError> {
        let raw = self.take(index, kind, width)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Ok(match endian {
            Endian::Little => raw.iter().rev().fold(0, fold),
            Endian::Big => raw.iter().fold(0, fold),
        })
    }

    fn field(
        &mut self,
        index: usize,
        kind: FieldKind,
        endian: Endian,
    ) -> Result<Decoded, DecodeError> {
        // Sign-extends a `width`-byte two's complement value.
        let signed = |raw: u64, width: u32| {
            let shift = 64 - 8 * width;
            ((raw << shift) as i64) >> shift
        };
        Ok(match kind {
            FieldKind::U8 => Decoded::Unsigned(self.uint(index, kind, 1, endian)?),
            FieldKind::U16 => Decoded::Unsigned(self.uint(index, kind, 2, endian)?),
            FieldKind::U32 => Decoded::Unsigned(self.uint(index, kind, 4, endian)?),
            FieldKind::U64 => Decoded::Unsigned(self.uint(index, kind, 8, endian)?),
            FieldKind::I8 => Decoded::Signed(signed(self.uint(index, kind, 1, endian)?, 1)),
            FieldKind::I16 => Decoded::Signed(signed(self.uint(index, kind, 2, endian)?, 2)),
            FieldKind::I32 => Decoded::Signed(signed(self.uint(index, kind, 4, endian)?, 4)),
            FieldKind::I64 => Decoded::Signed(signed(self.uint(index, kind, 8, endian)?, 8)),
            FieldKind::F32 => {
                let bits = self.uint(index, kind, 4, endian)?;
                // Four bytes were read, so the value fits a u32.
                Decoded::Float(f64::from(f32::from_bits(bits as u32)))
            }
            FieldKind::F64 => Decoded::Float(f64::from_bits(self.uint(index, kind, 8, endian)?)),
            FieldKind::Str { width, encoding } => {
                let raw = match width {
                    StrWidth::Fixed(n) => trim_padding(self.take(index, kind, n)?, encoding),
                    StrWidth::Prefixed(prefix) => {
                        let n = self.uint(index, kind, usize::from(prefix), endian)?;
                        let n = usize::try_from(n).unwrap_or(usize::MAX);
                        self.take(index, kind, n)?
                    }
                    StrWidth::Rest => self.take(index, kind, self.body.len() - self.at)?,
                };
                Decoded::Text(text(index, raw, encoding)?)
            }
        })
    }
}

/// A fixed-width string without the zero padding the encoder adds.
fn trim_padding(raw: &[u8], encoding: StrEncoding) -> &[u8] {
    match encoding {
        StrEncoding::Utf8 => {
            let end = raw.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            &raw[..end]
        }
        StrEncoding::Utf16Le => {
            let mut end = raw.len() - raw.len() % 2;
            while end >= 2 && raw[end - 2] == 0 && raw[end - 1] == 0 {
                end -= 2;
            }
            &raw[..end]
        }
    }
}

fn text(index: usize, raw: &[u8], encoding: StrEncoding) -> Result<String, DecodeError> {
    match encoding {
        StrEncoding::Utf8 => {
            std::str::from_utf8(raw)
                .map(str::to_owned)
                .map_err(|_| DecodeError::BadText {
                    index,
                    encoding: "UTF-8",
                })
        }
        StrEncoding::Utf16Le => {
            let bad = DecodeError::BadText {
                index,
                encoding: "UTF-16LE",
            };
            if !raw.len().is_multiple_of(2) {
                return Err(bad);
            }
            let units = raw
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| bad)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::encode::encode_fields;

    fn str_kind(width: StrWidth, encoding: StrEncoding) -> FieldKind {
        FieldKind::Str { width, encoding }
    }

    #[test]
    fn an_mqtt_publish_gives_its_topic_and_packet_id() {
        // Variable header of a QoS 1 PUBLISH: topic "chat/1", packet id 513, then payload.
        let body = b"\x00\x06chat/1\x02\x01hello";
        let decoded = decode_fields(
            body,
            [
                str_kind(StrWidth::Prefixed(2), StrEncoding::Utf8),
                FieldKind::U16,
            ],
            Endian::Big,
        )
        .expect("decodes");
        assert_eq!(
            decoded,
            [Decoded::Text("chat/1".into()), Decoded::Unsigned(513)]
        );
        // The payload as the rest of the frame.
        let all = decode_fields(
            body,
            [
                str_kind(StrWidth::Prefixed(2), StrEncoding::Utf8),
                FieldKind::U16,
                str_kind(StrWidth::Rest, StrEncoding::Utf8),
            ],
            Endian::Big,
        )
        .expect("decodes");
        assert_eq!(all[2], Decoded::Text("hello".into()));
    }

    #[test]
    fn numbers_read_back_what_was_written() {
        use FieldKind::*;
        let mut out = BytesMut::new();
        let fields = [
            (U8, "255"),
            (I8, "-1"),
            (I16, "-300"),
            (U32, "4000000000"),
            (I64, "-9223372036854775808"),
            (F32, "1.5"),
            (F64, "-2.25"),
        ];
        for endian in [Endian::Little, Endian::Big] {
            out.clear();
            encode_fields(&fields, endian, &mut out).expect("encodes");
            let decoded =
                decode_fields(&out, fields.iter().map(|(k, _)| *k), endian).expect("decodes");
            assert_eq!(
                decoded,
                [
                    Decoded::Unsigned(255),
                    Decoded::Signed(-1),
                    Decoded::Signed(-300),
                    Decoded::Unsigned(4_000_000_000),
                    Decoded::Signed(i64::MIN),
                    Decoded::Float(1.5),
                    Decoded::Float(-2.25),
                ]
            );
        }
    }

    #[test]
    fn fixed_strings_lose_their_padding() {
        let decoded = decode_fields(
            b"ann\0\0\0h\0i\0\0\0",
            [
                str_kind(StrWidth::Fixed(6), StrEncoding::Utf8),
                str_kind(StrWidth::Fixed(6), StrEncoding::Utf16Le),
            ],
            Endian::Little,
        )
        .expect("decodes");
        assert_eq!(
            decoded,
            [Decoded::Text("ann".into()), Decoded::Text("hi".into())]
        );
    }

    #[test]
    fn a_short_or_bad_body_says_which_field() {
        let err = decode_fields(
            b"\x00\x09abc",
            [str_kind(StrWidth::Prefixed(2), StrEncoding::Utf8)],
            Endian::Big,
        )
        .expect_err("9 announced, 3 there");
        assert_eq!(
            err,
            DecodeError::Short {
                index: 0,
                kind: "str",
                needed: 9,
                left: 3
            }
        );
        let err = decode_fields(b"\x01", [FieldKind::U8, FieldKind::U16], Endian::Big)
            .expect_err("no room for the u16");
        assert_eq!(
            err.to_string(),
            "field 1 (u16) needs 2 more bytes, the body has 0 left"
        );
        let err = decode_fields(
            b"\xff\xfe",
            [str_kind(StrWidth::Rest, StrEncoding::Utf8)],
            Endian::Big,
        )
        .expect_err("not UTF-8");
        assert_eq!(
            err,
            DecodeError::BadText {
                index: 0,
                encoding: "UTF-8"
            }
        );
        // An announced length near usize::MAX is a short body, not an overflow.
        let err = decode_fields(
            b"\xff\xff\xff\xffx",
            [str_kind(StrWidth::Prefixed(4), StrEncoding::Utf8)],
            Endian::Big,
        )
        .expect_err("short");
        assert!(matches!(err, DecodeError::Short { left: 1, .. }), "{err}");
    }

    proptest! {
        #[test]
        fn decoding_what_was_encoded_gives_the_values_back(
            n in any::<u64>(),
            i in any::<i32>(),
            name in "[a-zA-Z0-9 é😀]{0,40}",
            rest in "[a-z ]{0,100}",
            big in any::<bool>(),
        ) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let kinds = [
                FieldKind::U64,
                FieldKind::I32,
                str_kind(StrWidth::Prefixed(1), StrEncoding::Utf16Le),
                str_kind(StrWidth::Prefixed(2), StrEncoding::Utf8),
                str_kind(StrWidth::Rest, StrEncoding::Utf8),
            ];
            let (n_text, i_text) = (n.to_string(), i.to_string());
            let values = [n_text.as_str(), i_text.as_str(), name.as_str(), name.as_str(), rest.as_str()];
            let fields: Vec<(FieldKind, &str)> = kinds.iter().copied().zip(values).collect();
            let mut out = BytesMut::new();
            encode_fields(&fields, endian, &mut out).expect("encodes");
            prop_assert_eq!(
                decode_fields(&out, kinds, endian).expect("decodes"),
                vec![
                    Decoded::Unsigned(n),
                    Decoded::Signed(i64::from(i)),
                    Decoded::Text(name.clone()),
                    Decoded::Text(name.clone()),
                    Decoded::Text(rest.clone()),
                ]
            );
        }

        #[test]
        fn random_bodies_never_panic(body in any::<Vec<u8>>(), big in any::<bool>()) {
            let endian = if big { Endian::Big } else { Endian::Little };
            let kinds = [
                str_kind(StrWidth::Prefixed(4), StrEncoding::Utf8),
                FieldKind::I16,
                str_kind(StrWidth::Fixed(3), StrEncoding::Utf16Le),
                FieldKind::F32,
                str_kind(StrWidth::Rest, StrEncoding::Utf16Le),
            ];
            let _ = decode_fields(&body, kinds, endian);
        }
    }
}
