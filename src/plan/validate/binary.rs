//! Validation of what binary protocols add to expects and handlers: `type` as an id or a
//! `{value, mask}`, `type` beside a body matcher, and `decode:` fields.
//!
//! The body matchers themselves (`match`, `contains`, ...) are `sends::matcher`'s job.

use std::collections::{BTreeMap, BTreeSet};

use super::super::problem::{Seg, idx, key};
use super::super::raw::{RawFieldDef, RawHandler, RawTypeMatch};
use super::super::resolved::DecodeField;
use super::Ctx;
use super::messages::field_kind;
use crate::plan::is_identifier;
use crate::protocol::TypeMask;

/// Where a written `type` goes: alone it is the matcher itself (`alone`); beside a body
/// matcher it is an extra condition on the frame (`beside`).
#[derive(Debug, Default)]
pub(super) struct TypeSplit {
    pub alone: Option<TypeMask>,
    pub beside: Option<TypeMask>,
}

/// Validates `type` (at `path.type`) and says where it goes; `None` when it is invalid.
pub(super) fn split_type(
    ctx: &mut Ctx,
    path: &[Seg],
    raw: Option<&RawTypeMatch>,
    has_body_matcher: bool,
) -> Option<TypeSplit> {
    let Some(raw) = raw else {
        return Some(TypeSplit::default());
    };
    let mask = type_mask(ctx, &key(path, "type"), raw)?;
    Some(if has_body_matcher {
        TypeSplit {
            alone: None,
            beside: Some(mask),
        }
    } else {
        TypeSplit {
            alone: Some(mask),
            beside: None,
        }
    })
}

/// `type: 3` or `type: {value: 48, mask: 240}`: the value must fit the framing's type field
/// and have no bits outside the mask (no type could match).
fn type_mask(ctx: &mut Ctx, at: &[Seg], raw: &RawTypeMatch) -> Option<TypeMask> {
    match raw {
        RawTypeMatch::Id(id) => ctx.check_type_id(at, *id).then(|| TypeMask::exact(*id)),
        RawTypeMatch::Masked(m) => {
            if !ctx.check_type_id(&key(at, "value"), m.value) {
                return None;
            }
            if m.mask == 0 {
                ctx.out.error(
                    &key(at, "mask"),
                    "`mask: 0` compares no bits, so every packet type would match",
                    Some("leave `type` out to accept every type".to_owned()),
                );
                return None;
            }
            let mask = TypeMask::masked(m.value, m.mask);
            if mask.is_none() {
                ctx.out.error(
                    &key(at, "value"),
                    format!(
                        "value {:#x} has bits outside mask {:#x}, so no packet type can match",
                        m.value, m.mask
                    ),
                    Some(format!(
                        "did you mean value {:#x} (value & mask)?",
                        m.value & m.mask
                    )),
                );
            }
            mask
        }
    }
}

/// `decode: [{u16: pid}, {str: topic, lengthPrefix: 2}, ...]` at `at`: typed fields whose
/// values name the variables they are read into. Every problem is reported.
pub(super) fn decode(
    ctx: &mut Ctx,
    at: &[Seg],
    raw: Option<&[RawFieldDef]>,
) -> Option<Vec<DecodeField>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    if raw.is_empty() {
        ctx.out.error(
            at,
            "`decode` is empty",
            Some("list the fields to read, e.g. `decode: [{u16: pid}]`".to_owned()),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut ok = true;
    for (i, f) in raw.iter().enumerate() {
        let fp = idx(at, i);
        let Some((which, kind, name)) = field_kind(ctx, &fp, f, i + 1 == raw.len()) else {
            ok = false;
            continue;
        };
        let name = name.0.trim();
        if !is_identifier(name) {
            ctx.out.error(
                &key(&fp, which),
                format!("`{name}` is not a variable name to decode into"),
                Some(format!(
                    "in `decode` the value names a variable, e.g. `{{{which}: pid}}`"
                )),
            );
            ok = false;
            continue;
        }
        if !seen.insert(name.to_owned()) {
            ctx.out
                .error(&key(&fp, which), format!("`{name}` is decoded twice"), None);
            ok = false;
            continue;
        }
        out.push(DecodeField {
            variable: name.to_owned(),
            kind,
        });
    }
    ok.then_some(out)
}

/// The names a `decode` list and a `capture` map bind, valid or not (for template scopes).
pub(super) fn bound_names<'a>(
    decode: Option<&'a [RawFieldDef]>,
    capture: Option<&'a BTreeMap<String, String>>,
) -> impl Iterator<Item = String> + 'a {
    let decoded = decode.into_iter().flatten().filter_map(|f| {
        [
            &f.u8, &f.u16, &f.u32, &f.u64, &f.i8, &f.i16, &f.i32, &f.i64, &f.f32, &f.f64, &f.str,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|v| v.0.trim().to_owned())
    });
    decoded.chain(capture.into_iter().flat_map(|c| c.keys().cloned()))
}

/// What handlers bind in the vuser's variables (captures and decoded fields): later flow
/// steps can read them.
pub(super) fn handler_locals(handlers: &[RawHandler], out: &mut BTreeSet<String>) {
    for h in handlers {
        out.extend(bound_names(h.decode.as_deref(), h.capture.as_ref()));
    }
}
