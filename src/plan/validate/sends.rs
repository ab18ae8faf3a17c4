//! Validation of what is sent and matched: sends (text, named or inline message), matchers
//! shared by `expect` and handlers, and handlers themselves.

use std::collections::BTreeSet;

use serde_json::Value;

use super::super::problem::{Seg, idx, key, suggest};
use super::super::raw::{RawHandler, RawSend, RawSendSpec};
use super::super::resolved::*;
use super::Ctx;
use super::binary;
use super::expects::captures;
use super::matchers::{MatcherTexts, template};
use super::messages::{MessageParts, message_body};
use crate::protocol::{Matcher, TypeMask};

/// A send: text, a named message, or an inline message.
pub(super) fn send_spec(
    ctx: &mut Ctx,
    path: &[Seg],
    send: &RawSend,
    locals: &BTreeSet<String>,
) -> Option<SendSpec> {
    match send {
        RawSend::Text(text) => ctx
            .templates
            .text(ctx.out, path, text, locals)
            .map(SendSpec::Text),
        RawSend::Map(spec) => send_map(ctx, path, spec, locals),
    }
}

fn send_map(
    ctx: &mut Ctx,
    path: &[Seg],
    spec: &RawSendSpec,
    locals: &BTreeSet<String>,
) -> Option<SendSpec> {
    let Some(name) = &spec.message else {
        if spec.with_vars.is_some() {
            ctx.out.key_error(
                &key(path, "with"),
                "`with` only applies to a named `message`",
                None,
            );
            return None;
        }
        let parts = MessageParts {
            type_id: spec.type_id,
            body: spec.body.as_deref(),
            fields: spec.fields.as_deref(),
            json: spec.json.as_ref(),
            hex: spec.hex.as_deref(),
        };
        return message_body(ctx, path, parts, locals).map(SendSpec::Inline);
    };
    let inline = [
        ("type", spec.type_id.is_some()),
        ("body", spec.body.is_some()),
        ("fields", spec.fields.is_some()),
        ("json", spec.json.is_some()),
        ("hex", spec.hex.is_some()),
    ];
    if let Some((k, _)) = inline.iter().find(|(_, on)| *on) {
        ctx.out.key_error(
            &key(path, k),
            format!("a send of `message: {name}` cannot also set `{k}`"),
            Some("pass values to the message's template with `with:`".to_owned()),
        );
        return None;
    }
    let Some(position) = ctx.message_names.iter().position(|m| m == name) else {
        let mut message = format!("undefined message `{name}`");
        if let Some(s) = suggest(name, ctx.message_names.iter().map(String::as_str)) {
            message.push_str(&format!(", did you mean `{s}`?"));
        }
        ctx.out.error(
            &key(path, "message"),
            message,
            Some("define it under `config.messages`".to_owned()),
        );
        return None;
    };
    let mut with = Vec::new();
    let mut ok = true;
    for (k, v) in spec.with_vars.iter().flatten() {
        match ctx
            .templates
            .text(ctx.out, &key(&key(path, "with"), k), &v.0, locals)
        {
            Some(t) => with.push((k.clone(), t)),
            None => ok = false,
        }
    }
    ok.then_some(SendSpec::Message {
        id: MessageId(position),
        with,
    })
}

/// Builds a matcher from exactly one of its spellings.
#[allow(clippy::too_many_arguments)]
pub(super) fn matcher(
    ctx: &mut Ctx,
    path: &[Seg],
    regex_path: &[Seg],
    what: &str,
    regex: (&'static str, Option<&str>),
    contains: Option<&str>,
    equals: Option<&str>,
    json: Option<&std::collections::BTreeMap<String, Value>>,
    type_alone: Option<TypeMask>,
) -> Option<Matcher> {
    let body = [
        (regex.0, regex.1.is_some()),
        ("contains", contains.is_some()),
        ("equals", equals.is_some()),
        ("json", json.is_some()),
    ];
    // `type` may stand beside one body matcher, so it is offered only when no body matcher
    // is there: two body matchers are then named without suggesting `type` conflicts too.
    let keys: &[(&'static str, bool)] = if body.iter().any(|(_, present)| *present) {
        &body
    } else {
        &[
            body[0],
            body[1],
            body[2],
            body[3],
            ("type", type_alone.is_some()),
        ]
    };
    let which = ctx.exactly_one(path, what, keys)?;
    Some(match which {
        "contains" => Matcher::Contains(contains?.to_owned()),
        "equals" => Matcher::Equals(equals?.to_owned()),
        // Validated by `binary::split_type`.
        "type" => Matcher::Type(type_alone?),
        "json" => {
            let mut pairs = Vec::new();
            for (k, v) in json? {
                match json_pointer(k) {
                    Some(p) => pairs.push((p, v.clone())),
                    None => {
                        ctx.out.key_error(
                            &key(&key(path, "json"), k),
                            format!("`{k}` is not a JSON pointer (`/a/b`) or path (`$.a.b`)"),
                            None,
                        );
                        return None;
                    }
                }
            }
            Matcher::Json(pairs)
        }
        _ => {
            let source = regex.1?;
            // A template is checked with placeholders: its values are inserted escaped.
            match regex::Regex::new(&super::super::regex_template::placeholder(source)) {
                Ok(re) => Matcher::regex(re),
                Err(err) => {
                    let detail = err.to_string();
                    let last = detail.lines().last().unwrap_or_default().trim();
                    let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                    ctx.out.error(
                        regex_path,
                        format!("the regex `{source}` does not compile: {last}"),
                        None,
                    );
                    return None;
                }
            }
        }
    })
}

/// `/a/b` as is; `$.a.b` and `a.b` become `/a/b`.
pub(super) fn json_pointer(text: &str) -> Option<String> {
    if text.starts_with('/') {
        return Some(text.to_owned());
    }
    let dotted = text
        .strip_prefix("$.")
        .or_else(|| text.strip_prefix('$'))
        .unwrap_or(text);
    if dotted.is_empty() || dotted.split('.').any(str::is_empty) {
        return None;
    }
    Some(
        dotted
            .split('.')
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect(),
    )
}

pub(super) fn handlers(
    ctx: &mut Ctx,
    path: &[Seg],
    raw: &[RawHandler],
    locals: &BTreeSet<String>,
) -> Vec<Handler> {
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let hp = idx(path, i);
        let has_body =
            h.on.is_some() || h.contains.is_some() || h.equals.is_some() || h.json.is_some();
        let Some(types) = binary::split_type(ctx, &hp, h.type_id.as_ref(), has_body) else {
            continue;
        };
        let decode = binary::decode(ctx, &key(&hp, "decode"), h.decode.as_deref());
        let Some(m) = matcher(
            ctx,
            &hp,
            &key(&hp, "on"),
            "a handler",
            ("on", h.on.as_deref()),
            h.contains.as_deref(),
            h.equals.as_deref(),
            h.json.as_ref(),
            types.alone,
        ) else {
            continue;
        };
        let texts = MatcherTexts {
            regex: h.on.as_deref().map(|s| (s, key(&hp, "on"))),
            contains: h.contains.as_deref(),
            equals: h.equals.as_deref(),
            json: h.json.as_ref(),
        };
        let template = template(ctx, &hp, texts, locals);
        let captures = captures(ctx, &hp, h.capture.as_ref(), &m, "on");
        let (Some(template), Some(decode), Some(captures)) = (template, decode, captures) else {
            continue;
        };
        let mut scope = locals.clone();
        if let Some(re) = m.as_regex() {
            scope.extend(re.capture_names().flatten().map(str::to_owned));
        }
        scope.extend(binary::bound_names(h.decode.as_deref(), h.capture.as_ref()));
        let reply = match &h.reply {
            Some(r) => match send_spec(ctx, &key(&hp, "reply"), r, &scope) {
                Some(s) => Some(s),
                None => continue,
            },
            None => None,
        };
        out.push(Handler {
            matcher: m,
            template,
            types: types.beside,
            decode,
            captures,
            reply,
            name: h.name.clone(),
        });
    }
    out
}
