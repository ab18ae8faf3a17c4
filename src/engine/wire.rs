//! Pure mappings from the validated plan's wire types (`plan::Protocol`, `plan::Matcher`,
//! `plan::FieldKind`...) onto the protocol module's own types.
//!
//! `protocol` must not import `plan`, so the two keep mirror types and this file is the one
//! place they meet. No I/O, no rendering of templates.

use crate::plan;
use crate::protocol::{
    CaptureSource, CodecConfig, Endian, FieldKind, Framing, HeaderField, LengthCounts, LineEnding,
    Matcher, StrEncoding, StrWidth, Transform,
};

/// The codec configuration of a plan's `config.protocol`.
pub fn codec_config(protocol: &plan::Protocol) -> CodecConfig {
    CodecConfig {
        framing: framing(&protocol.framing),
        line_ending: match protocol.line_ending {
            plan::LineEnding::Lf => LineEnding::Lf,
            plan::LineEnding::CrLf => LineEnding::CrLf,
        },
        transform: protocol
            .transform
            .as_ref()
            .map(|transform| match transform {
                plan::Transform::Xor { key } => Transform::Xor { key: key.clone() },
            }),
        max_frame_bytes: protocol.max_frame_bytes,
    }
}

fn framing(framing: &plan::Framing) -> Framing {
    match framing {
        plan::Framing::Lines => Framing::Lines,
        plan::Framing::Delimiter(delimiter) => Framing::Delimiter(delimiter.clone()),
        plan::Framing::LengthPrefixed(prefixed) => Framing::LengthPrefixed {
            header: prefixed
                .header
                .iter()
                .map(|field| match field {
                    plan::HeaderField::Length { bytes } => HeaderField::Length { bytes: *bytes },
                    plan::HeaderField::Type { bytes } => HeaderField::Type { bytes: *bytes },
                    plan::HeaderField::Fixed { value } => HeaderField::Fixed {
                        value: value.clone(),
                    },
                })
                .collect(),
            endian: endian(prefixed.endian),
            length_counts: match prefixed.length_counts {
                plan::LengthCounts::Body => LengthCounts::Body,
                plan::LengthCounts::Frame => LengthCounts::Frame,
            },
        },
    }
}

pub fn endian(endian: plan::Endian) -> Endian {
    match endian {
        plan::Endian::Little => Endian::Little,
        plan::Endian::Big => Endian::Big,
    }
}

/// Byte order for a message's typed binary fields: the header's when the framing is
/// length-prefixed, little endian otherwise (the common case for binary payloads).
pub fn field_endian(protocol: &plan::Protocol) -> Endian {
    match &protocol.framing {
        plan::Framing::LengthPrefixed(prefixed) => endian(prefixed.endian),
        _ => Endian::Little,
    }
}

pub fn field_kind(kind: plan::FieldKind) -> FieldKind {
    match kind {
        plan::FieldKind::U8 => FieldKind::U8,
        plan::FieldKind::U16 => FieldKind::U16,
        plan::FieldKind::U32 => FieldKind::U32,
        plan::FieldKind::U64 => FieldKind::U64,
        plan::FieldKind::I8 => FieldKind::I8,
        plan::FieldKind::I16 => FieldKind::I16,
        plan::FieldKind::I32 => FieldKind::I32,
        plan::FieldKind::I64 => FieldKind::I64,
        plan::FieldKind::F32 => FieldKind::F32,
        plan::FieldKind::F64 => FieldKind::F64,
        plan::FieldKind::Str { width, encoding } => FieldKind::Str {
            width: match width {
                plan::StrWidth::Fixed(bytes) => StrWidth::Fixed(bytes),
                plan::StrWidth::Prefixed(bytes) => StrWidth::Prefixed(bytes),
            },
            encoding: match encoding {
                plan::StrEncoding::Utf8 => StrEncoding::Utf8,
                plan::StrEncoding::Utf16Le => StrEncoding::Utf16Le,
            },
        },
    }
}

/// A plan matcher as a protocol matcher (the compiled regex is shared, not recompiled).
pub fn matcher(matcher: &plan::Matcher) -> Matcher {
    match matcher {
        plan::Matcher::Regex(regex) => Matcher::regex(regex.clone()),
        plan::Matcher::Contains(text) => Matcher::Contains(text.clone()),
        plan::Matcher::Equals(text) => Matcher::Equals(text.clone()),
        plan::Matcher::Json(pairs) => Matcher::Json(pairs.clone()),
        plan::Matcher::Type(type_id) => Matcher::Type(*type_id),
    }
}

/// The capture sources of an expect, in the order of `expect.captures`.
pub fn capture_sources(captures: &[plan::Capture]) -> Vec<CaptureSource> {
    captures
        .iter()
        .map(|capture| match &capture.source {
            plan::CaptureSource::Group(name) => CaptureSource::Group(name.clone()),
            plan::CaptureSource::JsonPointer(pointer) => {
                CaptureSource::JsonPointer(pointer.clone())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Frame, FrameCodec};
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    fn game_protocol() -> plan::Protocol {
        plan::Protocol {
            framing: plan::Framing::LengthPrefixed(plan::LengthPrefixed {
                header: vec![
                    plan::HeaderField::Length { bytes: 2 },
                    plan::HeaderField::Type { bytes: 2 },
                    plan::HeaderField::Fixed { value: vec![0xaa] },
                ],
                endian: plan::Endian::Big,
                length_counts: plan::LengthCounts::Frame,
            }),
            line_ending: plan::LineEnding::CrLf,
            transform: Some(plan::Transform::Xor { key: b"k".to_vec() }),
            max_frame_bytes: 4096,
        }
    }

    #[test]
    fn protocol_maps_field_by_field() {
        let config = codec_config(&game_protocol());
        assert_eq!(
            config,
            CodecConfig {
                framing: Framing::LengthPrefixed {
                    header: vec![
                        HeaderField::Length { bytes: 2 },
                        HeaderField::Type { bytes: 2 },
                        HeaderField::Fixed { value: vec![0xaa] },
                    ],
                    endian: Endian::Big,
                    length_counts: LengthCounts::Frame,
                },
                line_ending: LineEnding::CrLf,
                transform: Some(Transform::Xor { key: b"k".to_vec() }),
                max_frame_bytes: 4096,
            }
        );
        assert_eq!(field_endian(&game_protocol()), Endian::Big);
        // The mapped config builds a codec that frames as the plan says.
        let mut codec = FrameCodec::new(config).expect("valid");
        let mut wire = BytesMut::new();
        codec
            .encode(Frame::typed(3, "a"), &mut wire)
            .expect("encodes");
        assert_eq!(&wire[..], [0, 6, 0, 3, 0xaa, b'a' ^ b'k']);
        assert_eq!(
            codec.decode(&mut wire).expect("ok"),
            Some(Frame::typed(3, "a"))
        );
    }

    #[test]
    fn text_framings_map() {
        let lines = plan::Protocol {
            framing: plan::Framing::Delimiter(vec![0]),
            line_ending: plan::LineEnding::Lf,
            transform: None,
            max_frame_bytes: 10,
        };
        let config = codec_config(&lines);
        assert_eq!(config.framing, Framing::Delimiter(vec![0]));
        assert_eq!(config.transform, None);
        assert_eq!(field_endian(&lines), Endian::Little);
    }

    #[test]
    fn field_kinds_map() {
        let pairs = [
            (plan::FieldKind::U8, FieldKind::U8),
            (plan::FieldKind::U64, FieldKind::U64),
            (plan::FieldKind::I16, FieldKind::I16),
            (plan::FieldKind::F64, FieldKind::F64),
            (
                plan::FieldKind::Str {
                    width: plan::StrWidth::Prefixed(2),
                    encoding: plan::StrEncoding::Utf16Le,
                },
                FieldKind::Str {
                    width: StrWidth::Prefixed(2),
                    encoding: StrEncoding::Utf16Le,
                },
            ),
            (
                plan::FieldKind::Str {
                    width: plan::StrWidth::Fixed(32),
                    encoding: plan::StrEncoding::Utf8,
                },
                FieldKind::Str {
                    width: StrWidth::Fixed(32),
                    encoding: StrEncoding::Utf8,
                },
            ),
        ];
        for (plan_kind, protocol_kind) in pairs {
            assert_eq!(field_kind(plan_kind), protocol_kind);
        }
    }

    #[test]
    fn matchers_and_captures_map() {
        let regex = regex::Regex::new("^OK (?P<name>\\w+)").expect("regex");
        let mapped = matcher(&plan::Matcher::Regex(regex));
        let captures = capture_sources(&[plan::Capture {
            variable: "me".into(),
            source: plan::CaptureSource::Group("name".into()),
        }]);
        assert_eq!(
            mapped.match_captures(&Frame::text("OK ann"), &captures),
            Some(vec![Some("ann".to_string())])
        );
        assert!(matcher(&plan::Matcher::Type(4)).matches(&Frame::typed(4, "")));
        assert!(matcher(&plan::Matcher::Contains("x".into())).matches(&Frame::text("axb")));
        assert!(matcher(&plan::Matcher::Equals("x".into())).matches(&Frame::text("x")));
        let json = plan::Matcher::Json(vec![("/a".into(), serde_json::json!(1))]);
        assert!(matcher(&json).matches(&Frame::text(r#"{"a":1}"#)));
    }
}
