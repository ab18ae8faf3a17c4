//! The entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz`): each takes arbitrary
//! bytes and drives one parser of untrusted input — plan loading and validation (YAML, TOML),
//! every framing codec, matchers, delivery stamps, `result.json` loading — the way chatload
//! does. They return nothing: the property is that no input panics, hangs or allocates without
//! bound. The integration tests feed every committed corpus file through the same functions,
//! so a crash found once stays fixed on stable.
//!
//! It owns no logic of its own beyond choosing a configuration from the input's first byte.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::engine::vuser::delivery::Deliveries;
use crate::engine::vuser::stamp;
use crate::plan::{self, Format};
use crate::protocol::{
    CaptureSource, CodecConfig, Endian, Frame, FrameCodec, Framing, HeaderField, LengthCounts,
    LineEnding, Matcher, Transform, TypeMask,
};

/// A small frame cap, so inputs reach the "frame too large" paths.
const MAX_FRAME_BYTES: usize = 4096;

/// Loads and validates a YAML plan.
pub fn plan_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = plan::load_str(&text, Path::new("fuzz.yml"), Format::Yaml);
}

/// Loads and validates a TOML plan.
pub fn plan_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = plan::load_str(&text, Path::new("fuzz.toml"), Format::Toml);
}

/// The codec configurations the first input byte picks from: every framing and header field.
fn codec_config(selector: u8) -> CodecConfig {
    let length_prefixed =
        |header: Vec<HeaderField>, endian, length_counts| Framing::LengthPrefixed {
            header,
            endian,
            length_counts,
        };
    let framing = match selector % 8 {
        0 => Framing::Lines,
        1 => Framing::Delimiter(b"\0".to_vec()),
        2 => Framing::Delimiter(b"\r\n\r\n".to_vec()),
        3 => length_prefixed(
            vec![
                HeaderField::Length { bytes: 2 },
                HeaderField::Type { bytes: 2 },
            ],
            Endian::Little,
            LengthCounts::Frame,
        ),
        4 => length_prefixed(
            vec![
                HeaderField::Type { bytes: 1 },
                HeaderField::Length { bytes: 4 },
            ],
            Endian::Big,
            LengthCounts::Body,
        ),
        5 => length_prefixed(
            vec![
                HeaderField::Fixed {
                    value: b"CL".to_vec(),
                },
                HeaderField::Length { bytes: 3 },
            ],
            Endian::Little,
            LengthCounts::Frame,
        ),
        6 => length_prefixed(
            vec![HeaderField::VarintLength, HeaderField::Type { bytes: 2 }],
            Endian::Big,
            LengthCounts::Body,
        ),
        _ => length_prefixed(
            vec![HeaderField::VarintLength],
            Endian::Little,
            LengthCounts::Frame,
        ),
    };
    CodecConfig {
        framing,
        line_ending: if selector & 0x10 == 0 {
            LineEnding::Lf
        } else {
            LineEnding::CrLf
        },
        transform: (selector & 0x20 != 0).then(|| Transform::Xor {
            key: b"k3y".to_vec(),
        }),
        max_frame_bytes: MAX_FRAME_BYTES,
    }
}

/// Decodes a byte stream (fed in chunks whose size the second byte picks) with the codec the
/// first byte picks, as a connection would, then the same bytes as one whole message; each
/// decoded frame is encoded again.
pub fn codec(data: &[u8]) {
    let [selector, chunk, rest @ ..] = data else {
        return;
    };
    let Ok(mut codec) = FrameCodec::new(codec_config(*selector)) else {
        return;
    };
    let chunk = usize::from(*chunk).max(1);
    let mut buffer = BytesMut::new();
    'feed: for piece in rest.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => reencode(&codec, &frame),
                Ok(None) => break,
                // A protocol error ends the connection.
                Err(_) => break 'feed,
            }
        }
    }
    while let Ok(Some(frame)) = codec.decode_eof(&mut buffer) {
        reencode(&codec, &frame);
    }
    if let Ok(frame) = codec.decode_message(Bytes::copy_from_slice(rest)) {
        reencode(&codec, &frame);
    }
}

fn reencode(codec: &FrameCodec, frame: &Frame) {
    let mut out = BytesMut::new();
    let _ = codec.encode_parts(frame.type_id, &frame.body, &mut out);
}

/// Splits the input at its first newline into a pattern and a frame body, then matches the
/// body with every matcher kind built from the pattern, capturing a group and a JSON value.
pub fn matcher(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (pattern, body) = data.split_at(split);
    let pattern = String::from_utf8_lossy(pattern);
    let body = Bytes::copy_from_slice(body.get(1..).unwrap_or_default());
    let frame = Frame {
        type_id: body.first().map(|b| u32::from(*b)),
        body,
    };
    let mut matchers = vec![
        Matcher::Contains(pattern.to_string()),
        Matcher::Equals(pattern.to_string()),
        Matcher::Type(TypeMask::exact(pattern.len() as u32)),
    ];
    if let Some(mask) = TypeMask::masked(pattern.len() as u32 & 0xF0, 0xF0) {
        matchers.push(Matcher::Type(mask));
    }
    if let Ok(regex) = regex::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
    {
        matchers.push(Matcher::regex(regex));
    }
    if let Ok(serde_json::Value::Object(pairs)) = serde_json::from_str(&pattern) {
        matchers.push(Matcher::Json(pairs.into_iter().collect()));
    }
    let sources = [
        CaptureSource::Group("x".to_owned()),
        CaptureSource::Group("1".to_owned()),
        CaptureSource::JsonPointer("/a/0".to_owned()),
    ];
    for matcher in &matchers {
        let _ = matcher.matches(&frame);
        let _ = matcher.match_captures(&frame, &sources);
        let _ = matcher.to_string();
    }
}

/// Scans the input for delivery stamps and judges each as a receiving vuser would.
pub fn stamps(data: &[u8]) {
    let mut deliveries = Deliveries::default();
    let now_us = 1_800_000_000_000_000;
    for (run, found) in stamp::scan_any(data) {
        let _ = deliveries.judge(run == b"abc123", found, now_us);
    }
    let _ = stamp::scan(data, "abc123").count();
}

/// Loads a `result.json`.
pub fn result_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::report::parse_result(&text, Path::new("result.json"));
}

/// One entry point: arbitrary bytes in, nothing out.
pub type Entry = fn(&[u8]);

/// Every entry point by the name of its fuzz target (and corpus folder).
pub const TARGETS: &[(&str, Entry)] = &[
    ("plan_yaml", plan_yaml),
    ("plan_toml", plan_toml),
    ("codec", codec),
    ("matcher", matcher),
    ("stamps", stamps),
    ("result_json", result_json),
];
