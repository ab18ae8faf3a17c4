//! Validation of `config.protocol` into the protocol module's own [`CodecConfig`]: one function
//! per framing, then the transform and the frame cap. Message bodies are `messages`' job.

use super::super::problem::{Seg, idx, key, suggest};
use super::super::raw::{
    RawEndian, RawFraming, RawHeaderField, RawLengthCounts, RawLengthPrefixed, RawLengthWidth,
    RawLineEnding, RawProtocol, RawTransform,
};
use super::Ctx;
use super::messages::parse_hex;
use crate::protocol::{
    CodecConfig, Endian, Framing, HeaderField, LengthCounts, LineEnding, Transform,
};

/// The largest `maxFrameBytes` a plan may set (64 MiB).
const MAX_FRAME_BYTES_LIMIT: u64 = 64 << 20;

pub(super) fn protocol(
    ctx: &mut Ctx,
    path: &[Seg],
    raw: Option<&RawProtocol>,
) -> Option<CodecConfig> {
    let p = key(path, "protocol");
    let Some(raw) = raw else {
        ctx.type_bytes = Some(None);
        return Some(CodecConfig::lines());
    };
    let at = key(&p, "framing");
    let framing = match &raw.framing {
        None | Some(RawFraming::Lines) => Some(Framing::Lines),
        Some(RawFraming::Delimiter(d)) => delimiter(ctx, &key(&at, "delimiter"), d),
        Some(RawFraming::LengthPrefixed(lp)) => {
            length_prefixed(ctx, &key(&at, "lengthPrefixed"), lp)
        }
    };
    let transform = match &raw.transform {
        None => Some(None),
        Some(t) => transform(ctx, &key(&p, "transform"), t).map(Some),
    };
    let max_frame_bytes = match raw.max_frame_bytes {
        None => CodecConfig::DEFAULT_MAX_FRAME_BYTES,
        Some(0) => {
            ctx.out.error(
                &key(&p, "maxFrameBytes"),
                "`maxFrameBytes` must be above 0",
                None,
            );
            CodecConfig::DEFAULT_MAX_FRAME_BYTES
        }
        Some(n) if n > MAX_FRAME_BYTES_LIMIT => {
            ctx.out.error(
                &key(&p, "maxFrameBytes"),
                format!(
                    "`maxFrameBytes: {n}` is above the limit of {} MiB: a frame up to this size \
                     is buffered per connection, so every vuser could hold that much",
                    MAX_FRAME_BYTES_LIMIT >> 20
                ),
                Some("chat frames are small; the default is 1 MiB".to_owned()),
            );
            CodecConfig::DEFAULT_MAX_FRAME_BYTES
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    ctx.type_bytes = match &framing {
        Some(Framing::LengthPrefixed { header, .. }) => Some(header.iter().find_map(|f| match f {
            HeaderField::Type { bytes } => Some(*bytes),
            _ => None,
        })),
        Some(_) => Some(None),
        None => None,
    };
    Some(CodecConfig {
        framing: framing?,
        line_ending: match raw.line_ending {
            Some(RawLineEnding::Crlf) => LineEnding::CrLf,
            _ => LineEnding::Lf,
        },
        transform: transform?,
        max_frame_bytes,
    })
}

/// `framing: {delimiter: "..."}`: any non-empty byte string, escapes allowed.
fn delimiter(ctx: &mut Ctx, at: &[Seg], written: &str) -> Option<Framing> {
    match unescape(written) {
        Ok(bytes) if !bytes.is_empty() => Some(Framing::Delimiter(bytes)),
        Ok(_) => {
            ctx.out.error(at, "the delimiter is empty", None);
            None
        }
        Err(e) => {
            ctx.out.error(at, e, None);
            None
        }
    }
}

/// `framing: {lengthPrefixed: {header, endian, lengthCounts}}`: exactly one length field, at
/// most one type field.
fn length_prefixed(ctx: &mut Ctx, at: &[Seg], lp: &RawLengthPrefixed) -> Option<Framing> {
    let header_at = key(at, "header");
    let mut header = Vec::new();
    let mut ok = true;
    for (i, field) in lp.header.iter().enumerate() {
        match header_field(ctx, &idx(&header_at, i), field) {
            Some(field) => header.push(field),
            None => ok = false,
        }
    }
    let lengths = lp.header.iter().filter(|f| f.length.is_some()).count();
    let types = lp.header.iter().filter(|f| f.type_bytes.is_some()).count();
    if lengths != 1 {
        ok = false;
        ctx.out.error(
            &header_at,
            format!("the header needs exactly one `length` field, found {lengths}"),
            Some("e.g. `header: [{length: 2}, {type: 2}]`".to_owned()),
        );
    }
    if types > 1 {
        ok = false;
        ctx.out.error(
            &header_at,
            format!("the header may have at most one `type` field, found {types}"),
            None,
        );
    }
    ok.then_some(Framing::LengthPrefixed {
        header,
        endian: match lp.endian {
            Some(RawEndian::Big) => Endian::Big,
            _ => Endian::Little,
        },
        length_counts: match lp.length_counts {
            Some(RawLengthCounts::Frame) => LengthCounts::Frame,
            _ => LengthCounts::Body,
        },
    })
}

/// One header field: `{length: N}`, `{type: N}` or `{fixed: HEX}`.
fn header_field(ctx: &mut Ctx, at: &[Seg], field: &RawHeaderField) -> Option<HeaderField> {
    let which = ctx.exactly_one(
        at,
        "a header field",
        &[
            ("length", field.length.is_some()),
            ("type", field.type_bytes.is_some()),
            ("fixed", field.fixed.is_some()),
        ],
    )?;
    match (which, &field.length, field.type_bytes, &field.fixed) {
        ("length", Some(RawLengthWidth::Bytes(b)), _, _) if [1, 2, 4, 8].contains(b) => {
            Some(HeaderField::Length { bytes: *b as u8 })
        }
        ("length", Some(RawLengthWidth::Word(w)), _, _) if w == "varint" => {
            Some(HeaderField::VarintLength)
        }
        ("length", Some(RawLengthWidth::Word(w)), _, _) => {
            let mut message = format!("`{w}` is not a length field");
            if let Some(s) = suggest(w, ["varint"]) {
                message.push_str(&format!(", did you mean `{s}`?"));
            }
            ctx.out.error(
                &key(at, "length"),
                message,
                Some("a length is 1, 2, 4 or 8 bytes, or `varint`".to_owned()),
            );
            None
        }
        ("type", _, Some(b), _) if [1, 2, 4].contains(&b) => Some(HeaderField::Type { bytes: b }),
        ("fixed", _, _, Some(hex)) => match parse_hex(hex) {
            Ok(value) if !value.is_empty() => Some(HeaderField::Fixed { value }),
            Ok(_) => {
                ctx.out.error(&key(at, "fixed"), "`fixed` is empty", None);
                None
            }
            Err(e) => {
                ctx.out.error(&key(at, "fixed"), e, None);
                None
            }
        },
        (k, ..) => {
            let sizes = if k == "length" {
                "1, 2, 4 or 8 bytes long, or `varint`"
            } else {
                "1, 2 or 4 bytes long"
            };
            ctx.out
                .error(&key(at, k), format!("a `{k}` field is {sizes}"), None);
            None
        }
    }
}

/// `transform: {xor: {key}}`.
fn transform(ctx: &mut Ctx, at: &[Seg], raw: &RawTransform) -> Option<Transform> {
    ctx.exactly_one(at, "a transform", &[("xor", raw.xor.is_some())])?;
    let xor = raw.xor.as_ref()?;
    if xor.key.is_empty() {
        ctx.out
            .error(&key(&key(at, "xor"), "key"), "the XOR key is empty", None);
        return None;
    }
    Some(Transform::Xor {
        key: xor.key.as_bytes().to_vec(),
    })
}

/// Unescapes `\0 \n \r \t \\ \xNN` in a delimiter.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('0') => out.push(0),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .map_err(|_| format!("`\\x{hex}` is not a hex byte escape"))?;
                out.push(byte);
            }
            other => {
                return Err(format!(
                    "unknown escape `\\{}`; use \\0 \\n \\r \\t \\\\ or \\xNN",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}
