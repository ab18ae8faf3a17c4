//! Validation of message content: named messages and inline sends (text, typed binary
//! fields, JSON with templated leaves, raw hex).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::problem::{Seg, idx, key};
use super::super::raw::{RawEncoding, RawFieldDef, RawMessage, RawScalar};
use super::super::resolved::*;
use super::Ctx;
use crate::protocol::{FieldKind, StrEncoding, StrWidth};

pub(super) fn messages(
    ctx: &mut Ctx,
    path: &[Seg],
    raw: &BTreeMap<String, RawMessage>,
) -> Option<Vec<Message>> {
    let mut out = Vec::new();
    let mut ok = true;
    let locals = ctx.all_locals.clone();
    for (name, m) in raw {
        let mp = key(&key(path, "messages"), name);
        let body = message_body(
            ctx,
            &mp,
            MessageParts {
                type_id: m.type_id,
                body: m.body.as_deref(),
                fields: m.fields.as_deref(),
                json: m.json.as_ref(),
                hex: m.hex.as_deref(),
            },
            &locals,
        );
        match body {
            Some(body) => out.push(Message {
                name: name.clone(),
                body,
            }),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The content keys shared by named messages and inline sends.
pub(super) struct MessageParts<'r> {
    pub type_id: Option<u32>,
    pub body: Option<&'r str>,
    pub fields: Option<&'r [RawFieldDef]>,
    pub json: Option<&'r Value>,
    pub hex: Option<&'r str>,
}

pub(super) fn message_body(
    ctx: &mut Ctx,
    path: &[Seg],
    parts: MessageParts<'_>,
    locals: &BTreeSet<String>,
) -> Option<MessageBody> {
    if let Some(id) = parts.type_id {
        ctx.check_type_id(&key(path, "type"), id);
    }
    let which = ctx.exactly_one(
        path,
        "a message",
        &[
            ("body", parts.body.is_some()),
            ("fields", parts.fields.is_some()),
            ("json", parts.json.is_some()),
            ("hex", parts.hex.is_some()),
        ],
    )?;
    let content = match which {
        "body" => Content::Text(ctx.templates.text(
            ctx.out,
            &key(path, "body"),
            parts.body.unwrap_or_default(),
            locals,
        )?),
        "hex" => match parse_hex(parts.hex.unwrap_or_default()) {
            Ok(bytes) => Content::Hex(bytes),
            Err(e) => {
                ctx.out.error(&key(path, "hex"), e, None);
                return None;
            }
        },
        "fields" => {
            let mut fields = Vec::new();
            let mut ok = true;
            let written = parts.fields.unwrap_or_default();
            for (i, f) in written.iter().enumerate() {
                let last = i + 1 == written.len();
                match field(ctx, &idx(&key(path, "fields"), i), f, last, locals) {
                    Some(f) => fields.push(f),
                    None => ok = false,
                }
            }
            if fields.is_empty() && ok {
                ctx.out
                    .error(&key(path, "fields"), "`fields` is empty", None);
                return None;
            }
            if !ok {
                return None;
            }
            Content::Fields(fields)
        }
        _ => {
            let document = parts.json.cloned().unwrap_or(Value::Null);
            let mut templates = Vec::new();
            let mut ok = true;
            json_templates(
                ctx,
                &key(path, "json"),
                &document,
                "",
                locals,
                &mut templates,
                &mut ok,
            );
            if !ok {
                return None;
            }
            Content::Json {
                document,
                templates,
            }
        }
    };
    Some(MessageBody {
        type_id: parts.type_id,
        content,
    })
}

fn json_templates(
    ctx: &mut Ctx,
    path: &[Seg],
    value: &Value,
    pointer: &str,
    locals: &BTreeSet<String>,
    out: &mut Vec<(String, Text)>,
    ok: &mut bool,
) {
    match value {
        Value::String(s) => match ctx.templates.text(ctx.out, path, s, locals) {
            Some(t @ Text::Template(_)) => out.push((pointer.to_owned(), t)),
            Some(Text::Literal(_)) => {}
            None => *ok = false,
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let ptr = format!("{pointer}/{i}");
                json_templates(ctx, &idx(path, i), item, &ptr, locals, out, ok);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let ptr = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                json_templates(ctx, &key(path, k), item, &ptr, locals, out, ok);
            }
        }
        _ => {}
    }
}

fn field(
    ctx: &mut Ctx,
    path: &[Seg],
    f: &RawFieldDef,
    last: bool,
    locals: &BTreeSet<String>,
) -> Option<Field> {
    let (which, kind, raw) = field_kind(ctx, path, f, last)?;
    let value_path = key(path, which);
    let value = ctx.templates.text(ctx.out, &value_path, &raw.0, locals)?;
    if let Text::Literal(text) = &value
        && !numeric_fits(kind, text.trim())
    {
        ctx.out.error(
            &value_path,
            format!("`{text}` does not fit a `{which}` field"),
            None,
        );
        return None;
    }
    Some(Field { kind, value })
}

/// A typed field's type key, kind and value as written; shared by message `fields` and
/// `decode`. `last`: whether it is the last field, the only place `lengthPrefix: 0` (the
/// rest of the frame) fits.
pub(super) fn field_kind<'f>(
    ctx: &mut Ctx,
    path: &[Seg],
    f: &'f RawFieldDef,
    last: bool,
) -> Option<(&'static str, FieldKind, &'f RawScalar)> {
    let kinds: [(&'static str, bool); 11] = [
        ("u8", f.u8.is_some()),
        ("u16", f.u16.is_some()),
        ("u32", f.u32.is_some()),
        ("u64", f.u64.is_some()),
        ("i8", f.i8.is_some()),
        ("i16", f.i16.is_some()),
        ("i32", f.i32.is_some()),
        ("i64", f.i64.is_some()),
        ("f32", f.f32.is_some()),
        ("f64", f.f64.is_some()),
        ("str", f.str.is_some()),
    ];
    let which = ctx.exactly_one(path, "a field", &kinds)?;
    let raw = [
        &f.u8, &f.u16, &f.u32, &f.u64, &f.i8, &f.i16, &f.i32, &f.i64, &f.f32, &f.f64, &f.str,
    ]
    .into_iter()
    .flatten()
    .next()?;
    let kind = match which {
        "u8" => FieldKind::U8,
        "u16" => FieldKind::U16,
        "u32" => FieldKind::U32,
        "u64" => FieldKind::U64,
        "i8" => FieldKind::I8,
        "i16" => FieldKind::I16,
        "i32" => FieldKind::I32,
        "i64" => FieldKind::I64,
        "f32" => FieldKind::F32,
        "f64" => FieldKind::F64,
        _ => {
            let width = match (f.bytes, f.length_prefix) {
                (Some(_), Some(_)) => {
                    ctx.out.key_error(
                        &key(path, "lengthPrefix"),
                        "a string field has either `bytes` (fixed width) or `lengthPrefix`, not both",
                        None,
                    );
                    return None;
                }
                (Some(0), None) => {
                    ctx.out
                        .error(&key(path, "bytes"), "`bytes` must be above 0", None);
                    return None;
                }
                (Some(n), None) => StrWidth::Fixed(n),
                (None, Some(n)) if [1, 2, 4].contains(&n) => StrWidth::Prefixed(n),
                (None, Some(0)) if last => StrWidth::Rest,
                (None, Some(0)) => {
                    ctx.out.error(
                        &key(path, "lengthPrefix"),
                        "`lengthPrefix: 0` (the rest of the frame) only fits the last field",
                        Some("move this field last, or give it a 1, 2 or 4-byte prefix".to_owned()),
                    );
                    return None;
                }
                (None, Some(_)) => {
                    ctx.out.error(
                        &key(path, "lengthPrefix"),
                        "`lengthPrefix` is 1, 2 or 4 bytes, or 0 for the rest of the frame",
                        None,
                    );
                    return None;
                }
                (None, None) => StrWidth::Prefixed(2),
            };
            let encoding = match f.encoding {
                Some(RawEncoding::Utf16le) => StrEncoding::Utf16Le,
                _ => StrEncoding::Utf8,
            };
            FieldKind::Str { width, encoding }
        }
    };
    if which != "str" && (f.bytes.is_some() || f.length_prefix.is_some() || f.encoding.is_some()) {
        ctx.out.error(
            path,
            "`bytes`, `lengthPrefix` and `encoding` only apply to `str` fields",
            None,
        );
        return None;
    }
    Some((which, kind, raw))
}

fn numeric_fits(kind: FieldKind, text: &str) -> bool {
    match kind {
        FieldKind::U8 => text.parse::<u8>().is_ok(),
        FieldKind::U16 => text.parse::<u16>().is_ok(),
        FieldKind::U32 => text.parse::<u32>().is_ok(),
        FieldKind::U64 => text.parse::<u64>().is_ok(),
        FieldKind::I8 => text.parse::<i8>().is_ok(),
        FieldKind::I16 => text.parse::<i16>().is_ok(),
        FieldKind::I32 => text.parse::<i32>().is_ok(),
        FieldKind::I64 => text.parse::<i64>().is_ok(),
        FieldKind::F32 | FieldKind::F64 => text.parse::<f64>().is_ok(),
        FieldKind::Str { .. } => true,
    }
}

/// Parses hex bytes, ignoring spaces: `"01 ff"`.
pub(super) fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("`{text}` has an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).map_err(|_| format!("`{s}` in `{text}` is not hex"))
        })
        .collect()
}
