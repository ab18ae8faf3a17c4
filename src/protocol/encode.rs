//! Message encoding: already-rendered text values into body bytes (typed binary fields, hex,
//! JSON). Templates are rendered by the engine; this module only converts and checks.

use bytes::{BufMut, BytesMut};

use crate::protocol::config::Endian;
use crate::protocol::error::EncodeError;

/// The type of one binary field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Str {
        width: StrWidth,
        encoding: StrEncoding,
    },
}

impl FieldKind {
    pub fn name(&self) -> &'static str {
        match self {
            FieldKind::U8 => "u8",
            FieldKind::U16 => "u16",
            FieldKind::U32 => "u32",
            FieldKind::U64 => "u64",
            FieldKind::I8 => "i8",
            FieldKind::I16 => "i16",
            FieldKind::I32 => "i32",
            FieldKind::I64 => "i64",
            FieldKind::F32 => "f32",
            FieldKind::F64 => "f64",
            FieldKind::Str { .. } => "str",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrWidth {
    /// Exactly this many bytes: zero padded, or cut at a character boundary.
    Fixed(usize),
    /// Preceded by its byte length in a field of this many bytes (1, 2 or 4).
    Prefixed(u8),
    /// No length at all: the rest of the frame (`lengthPrefix: 0`), so only the last field.
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrEncoding {
    Utf8,
    Utf16Le,
}

/// Encodes fields in order; `index` in errors is the field's 0-based position.
pub fn encode_fields(
    fields: &[(FieldKind, &str)],
    endian: Endian,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    for (index, (kind, text)) in fields.iter().enumerate() {
        encode_field(index, *kind, text, endian, out)?;
    }
    Ok(())
}

/// Encodes one field from its rendered text (numbers: decimal, or `0x` hex for integers).
pub fn encode_field(
    index: usize,
    kind: FieldKind,
    text: &str,
    endian: Endian,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let number = text.trim();
    let bad = |reason: String| EncodeError::BadNumber {
        index,
        kind: kind.name(),
        value: text.to_string(),
        reason,
    };
    match kind {
        FieldKind::U8 | FieldKind::U16 | FieldKind::U32 | FieldKind::U64 => {
            let value = parse_unsigned(number).map_err(bad)?;
            let width = int_width(kind);
            if width < 8 && value >= 1u64 << (8 * width) {
                return Err(bad(format!(
                    "out of range (max {})",
                    (1u64 << (8 * width)) - 1
                )));
            }
            put_int(out, value, width, endian);
        }
        FieldKind::I8 | FieldKind::I16 | FieldKind::I32 | FieldKind::I64 => {
            let value = parse_signed(number).map_err(bad)?;
            let width = int_width(kind);
            let bits = 8 * width as u32;
            let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
            if !(min..=max).contains(&i128::from(value)) {
                return Err(bad(format!("out of range ({min}..={max})")));
            }
            // Two's complement truncated to the width is the field's encoding.
            put_int(out, value as u64, width, endian);
        }
        FieldKind::F32 => {
            let value: f32 = number.parse().map_err(|e| bad(format!("{e}")))?;
            match endian {
                Endian::Little => out.put_f32_le(value),
                Endian::Big => out.put_f32(value),
            }
        }
        FieldKind::F64 => {
            let value: f64 = number.parse().map_err(|e| bad(format!("{e}")))?;
            match endian {
                Endian::Little => out.put_f64_le(value),
                Endian::Big => out.put_f64(value),
            }
        }
        FieldKind::Str { width, encoding } => {
            encode_str(index, text, width, encoding, endian, out)?
        }
    }
    Ok(())
}

fn int_width(kind: FieldKind) -> usize {
    match kind {
        FieldKind::U8 | FieldKind::I8 => 1,
        FieldKind::U16 | FieldKind::I16 => 2,
        FieldKind::U32 | FieldKind::I32 | FieldKind::F32 => 4,
        _ => 8,
    }
}

fn parse_unsigned(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| e.to_string())
}

fn parse_signed(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

fn put_int(out: &mut BytesMut, value: u64, width: usize, endian: Endian) {
    match endian {
        Endian::Little => out.put_uint_le(value, width),
        Endian::Big => out.put_uint(value, width),
    }
}

fn encode_str(
    index: usize,
    text: &str,
    width: StrWidth,
    encoding: StrEncoding,
    endian: Endian,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let byte_len = match encoding {
        StrEncoding::Utf8 => text.len(),
        StrEncoding::Utf16Le => 2 * text.encode_utf16().count(),
    };
    match width {
        StrWidth::Rest => put_str(text, encoding, out),
        StrWidth::Fixed(field_bytes) => {
            let start = out.len();
            match encoding {
                StrEncoding::Utf8 => {
                    let mut cut = text.len().min(field_bytes);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    out.put_slice(text.as_bytes().get(..cut).unwrap_or_default());
                }
                StrEncoding::Utf16Le => {
                    for unit in text.encode_utf16().take(field_bytes / 2) {
                        out.put_u16_le(unit);
                    }
                }
            }
            let written = out.len() - start;
            out.put_bytes(0, field_bytes - written);
        }
        StrWidth::Prefixed(prefix) => {
            if !matches!(prefix, 1 | 2 | 4) {
                return Err(EncodeError::BadPrefixWidth {
                    index,
                    width: prefix,
                });
            }
            if prefix < 4 && byte_len >= 1usize << (8 * prefix) || u32::try_from(byte_len).is_err()
            {
                return Err(EncodeError::StringTooLong {
                    index,
                    string_bytes: byte_len,
                    width: prefix,
                });
            }
            put_int(out, byte_len as u64, usize::from(prefix), endian);
            put_str(text, encoding, out);
        }
    }
    Ok(())
}

fn put_str(text: &str, encoding: StrEncoding, out: &mut BytesMut) {
    match encoding {
        StrEncoding::Utf8 => out.put_slice(text.as_bytes()),
        StrEncoding::Utf16Le => {
            for unit in text.encode_utf16() {
                out.put_u16_le(unit);
            }
        }
    }
}

/// Hex text to bytes; ASCII whitespace between digits and a leading `0x` are ignored.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, EncodeError> {
    let bad = |reason: &str| EncodeError::BadHex {
        value: text.to_string(),
        reason: reason.to_string(),
    };
    let digits = text.trim();
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .unwrap_or(digits);
    let mut nibbles = digits.bytes().filter(|b| !b.is_ascii_whitespace());
    let mut bytes = Vec::with_capacity(digits.len() / 2);
    while let Some(high) = nibbles.next() {
        let low = nibbles
            .next()
            .ok_or_else(|| bad("odd number of hex digits"))?;
        let nibble = |b: u8| {
            (b as char)
                .to_digit(16)
                .ok_or_else(|| bad("only 0-9, a-f and A-F are hex digits"))
        };
        bytes.push((nibble(high)? * 16 + nibble(low)?) as u8);
    }
    Ok(bytes)
}

/// A JSON value as compact UTF-8 bytes.
pub fn encode_json(value: &serde_json::Value, out: &mut BytesMut) -> Result<(), EncodeError> {
    serde_json::to_writer(out.writer(), value).map_err(|e| EncodeError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(fields: &[(FieldKind, &str)], endian: Endian) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_fields(fields, endian, &mut out).expect("encodes");
        out.to_vec()
    }

    #[test]
    fn integers_match_hand_computed_bytes() {
        use FieldKind::*;
        let fields = [
            (U8, "255"),
            (U16, "0x1234"),
            (U32, "1"),
            (I8, "-1"),
            (I16, "-2"),
        ];
        assert_eq!(
            encode(&fields, Endian::Little),
            [0xff, 0x34, 0x12, 1, 0, 0, 0, 0xff, 0xfe, 0xff]
        );
        assert_eq!(
            encode(&fields, Endian::Big),
            [0xff, 0x12, 0x34, 0, 0, 0, 1, 0xff, 0xff, 0xfe]
        );
        assert_eq!(
            encode(
                &[(U64, "18446744073709551615"), (I64, "-9223372036854775808")],
                Endian::Big
            ),
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        assert_eq!(encode(&[(I32, " 7 ")], Endian::Little), [7, 0, 0, 0]);
    }

    #[test]
    fn floats_match_ieee754() {
        assert_eq!(
            encode(&[(FieldKind::F32, "1.5")], Endian::Big),
            [0x3f, 0xc0, 0, 0]
        );
        assert_eq!(
            encode(&[(FieldKind::F64, "-2")], Endian::Little),
            [0, 0, 0, 0, 0, 0, 0, 0xc0]
        );
    }

    #[test]
    fn strings_pad_cut_and_prefix() {
        let fixed = |bytes, encoding| FieldKind::Str {
            width: StrWidth::Fixed(bytes),
            encoding,
        };
        let prefixed = |bytes, encoding| FieldKind::Str {
            width: StrWidth::Prefixed(bytes),
            encoding,
        };
        assert_eq!(
            encode(&[(fixed(5, StrEncoding::Utf8), "ab")], Endian::Little),
            b"ab\0\0\0"
        );
        assert_eq!(
            encode(&[(fixed(2, StrEncoding::Utf8), "abc")], Endian::Little),
            b"ab"
        );
        // "é" is two bytes: cutting inside it would leave invalid UTF-8, so it is dropped.
        assert_eq!(
            encode(&[(fixed(2, StrEncoding::Utf8), "aé")], Endian::Little),
            b"a\0"
        );
        assert_eq!(
            encode(&[(fixed(6, StrEncoding::Utf16Le), "hi")], Endian::Little),
            [b'h', 0, b'i', 0, 0, 0]
        );
        assert_eq!(
            encode(&[(prefixed(2, StrEncoding::Utf8), "hey")], Endian::Big),
            [0, 3, b'h', b'e', b'y']
        );
        assert_eq!(
            encode(&[(prefixed(1, StrEncoding::Utf16Le), "ok")], Endian::Little),
            [4, b'o', 0, b'k', 0]
        );
        // The rest of the frame: no length at all (MQTT's PUBLISH payload).
        let rest = FieldKind::Str {
            width: StrWidth::Rest,
            encoding: StrEncoding::Utf8,
        };
        assert_eq!(
            encode(
                &[(prefixed(2, StrEncoding::Utf8), "t/1"), (rest, "hi there")],
                Endian::Big
            ),
            b"\0\x03t/1hi there"
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let mut out = BytesMut::new();
        let err = encode_fields(
            &[(FieldKind::U8, "1"), (FieldKind::U8, "256")],
            Endian::Little,
            &mut out,
        )
        .expect_err("256 is not a u8");
        assert!(err.to_string().contains("field 1 (u8)"), "{err}");
        assert!(err.to_string().contains("max 255"), "{err}");
        let err =
            encode_field(0, FieldKind::I8, "-129", Endian::Little, &mut out).expect_err("range");
        assert!(err.to_string().contains("-128..=127"), "{err}");
        assert!(encode_field(0, FieldKind::U16, "abc", Endian::Little, &mut out).is_err());
        assert!(encode_field(0, FieldKind::F32, "x", Endian::Little, &mut out).is_err());
        let long = "x".repeat(256);
        let kind = FieldKind::Str {
            width: StrWidth::Prefixed(1),
            encoding: StrEncoding::Utf8,
        };
        assert!(matches!(
            encode_field(0, kind, &long, Endian::Little, &mut out),
            Err(EncodeError::StringTooLong {
                string_bytes: 256,
                ..
            })
        ));
    }

    #[test]
    fn hex_and_json() {
        assert_eq!(decode_hex("0x01 ab FF").expect("hex"), [0x01, 0xab, 0xff]);
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        let mut out = BytesMut::new();
        encode_json(&serde_json::json!({"a": [1, "b"]}), &mut out).expect("json");
        assert_eq!(&out[..], br#"{"a":[1,"b"]}"#);
    }
}
