//! Which texts of a matcher are templates: `match`/`on` (values inserted regex-escaped),
//! `contains`, `equals` and the string values of `json`. Each is compiled into the plan's
//! template environment and checked for unknown names like any template; the matcher itself
//! (built by `sends::matcher`, a regex checked with placeholders) stays the load-time stand-in.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::problem::{Seg, key};
use super::super::regex_template::is_template;
use super::super::resolved::{MatcherTemplate, TemplateId, Text};
use super::Ctx;

/// A matcher's texts as written. `regex` comes with the path it is reported at (`match`,
/// `on`, or the expect itself for `expect: "regex"`).
pub(super) struct MatcherTexts<'a> {
    pub regex: Option<(&'a str, Vec<Seg>)>,
    pub contains: Option<&'a str>,
    pub equals: Option<&'a str>,
    pub json: Option<&'a BTreeMap<String, Value>>,
}

/// The template of the matcher at `path`, if its text is one; the outer `None` when a template
/// did not compile (reported).
pub(super) fn template(
    ctx: &mut Ctx,
    path: &[Seg],
    texts: MatcherTexts,
    locals: &BTreeSet<String>,
) -> Option<Option<MatcherTemplate>> {
    let id = |text: Option<Text>| match text? {
        Text::Template(id) => Some(Some(id)),
        Text::Literal(_) => Some(None),
    };
    if let Some((source, at)) = texts.regex.filter(|(s, _)| is_template(s)) {
        let text = ctx.templates.regex_text(ctx.out, &at, source, locals);
        return Some(id(text)?.map(MatcherTemplate::Regex));
    }
    for (name, source, wrap) in [
        (
            "contains",
            texts.contains,
            MatcherTemplate::Contains as fn(TemplateId) -> _,
        ),
        ("equals", texts.equals, MatcherTemplate::Equals),
    ] {
        if let Some(source) = source.filter(|s| is_template(s)) {
            let text = ctx
                .templates
                .text(ctx.out, &key(path, name), source, locals);
            return Some(id(text)?.map(wrap));
        }
    }
    let mut pairs = Vec::new();
    let mut ok = true;
    for (index, (pointer, value)) in texts.json.into_iter().flatten().enumerate() {
        let Value::String(source) = value else {
            continue;
        };
        if !is_template(source) {
            continue;
        }
        let at = key(&key(path, "json"), pointer);
        match id(ctx.templates.text(ctx.out, &at, source, locals)) {
            Some(Some(template)) => pairs.push((index, template)),
            Some(None) => {}
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some((!pairs.is_empty()).then_some(MatcherTemplate::Json(pairs)))
}
