//! Validation of `expect` steps (and the expect beside a send): the matcher in either
//! spelling, captures and where they read from, the latency metric's name. Sends and handlers
//! live in `sends`, the flow's structure in `flow`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::super::problem::{Seg, key, suggest};
use super::super::raw::{RawExpect, RawExpectArg};
use super::super::resolved::*;
use super::Ctx;
use super::binary;
use super::flow::{Scope, timeout};
use super::matchers::{self, MatcherTexts};
use super::sends::{json_pointer, matcher};
use crate::protocol::{CaptureSource, Matcher, TypeMask};

/// An expect, in either spelling: a bare regex, or a map with one matcher, captures, a
/// timeout and a metric name. Every problem among captures and the name is reported.
pub(super) fn expect(
    ctx: &mut Ctx,
    path: &[Seg],
    arg: &RawExpectArg,
    scope: &mut Scope,
) -> Option<Expect> {
    let e = expect_map(arg);
    let metric = e
        .name
        .clone()
        .unwrap_or_else(|| scope.default_metric.clone());
    if !ctx.metrics.latency_names.contains(&metric) {
        ctx.metrics.latency_names.push(metric.clone());
    }
    let has_body =
        e.regex.is_some() || e.contains.is_some() || e.equals.is_some() || e.json.is_some();
    let types = binary::split_type(ctx, path, e.type_id.as_ref(), has_body)?;
    let decode = binary::decode(ctx, &key(path, "decode"), e.decode.as_deref());
    let matcher = expect_matcher(ctx, path, arg, &e, types.alone)?;
    let texts = MatcherTexts {
        regex: e.regex.as_deref().map(|s| (s, regex_path(path, arg))),
        contains: e.contains.as_deref(),
        equals: e.equals.as_deref(),
        json: e.json.as_ref(),
    };
    let template = matchers::template(ctx, path, texts, &scope.locals)?;
    let timeout = timeout(ctx, path, e.timeout.as_ref());
    let captures = captures(ctx, path, e.capture.as_ref(), &matcher, "match");
    let metric = metric_name(ctx, path, metric);
    Some(Expect {
        matcher,
        template,
        types: types.beside,
        decode: decode?,
        timeout,
        captures: captures?,
        metric: metric?,
        strict: e.strict.unwrap_or(false),
    })
}

/// `expect: "regex"` is short for `expect: {match: "regex"}`.
fn expect_map(arg: &RawExpectArg) -> Cow<'_, RawExpect> {
    match arg {
        RawExpectArg::Regex(r) => Cow::Owned(RawExpect {
            regex: Some(r.clone()),
            contains: None,
            equals: None,
            json: None,
            type_id: None,
            timeout: None,
            capture: None,
            decode: None,
            name: None,
            strict: None,
        }),
        RawExpectArg::Map(m) => Cow::Borrowed(m),
    }
}

/// The expect's one matcher. A bad bare regex is reported at the expect itself, a bad
/// `match` at `match`.
fn expect_matcher(
    ctx: &mut Ctx,
    path: &[Seg],
    arg: &RawExpectArg,
    e: &RawExpect,
    type_alone: Option<TypeMask>,
) -> Option<Matcher> {
    let matcher_path = regex_path(path, arg);
    matcher(
        ctx,
        path,
        &matcher_path,
        "an expect",
        ("match", e.regex.as_deref()),
        e.contains.as_deref(),
        e.equals.as_deref(),
        e.json.as_ref(),
        type_alone,
    )
}

/// Where the regex of an expect is reported: the expect itself for `expect: "regex"`.
fn regex_path(path: &[Seg], arg: &RawExpectArg) -> Vec<Seg> {
    match arg {
        RawExpectArg::Regex(_) => path.to_vec(),
        RawExpectArg::Map(_) => key(path, "match"),
    }
}

/// `capture: {variable: source}` of an expect or handler; every bad source is reported.
/// `regex_key` is the key the regex is written under (`match` on an expect, `on` on a
/// handler), so the message names the key the user wrote.
pub(super) fn captures(
    ctx: &mut Ctx,
    path: &[Seg],
    capture: Option<&BTreeMap<String, String>>,
    matcher: &Matcher,
    regex_key: &str,
) -> Option<Vec<Capture>> {
    let mut captures = Vec::new();
    let mut ok = true;
    for (var, from) in capture.into_iter().flatten() {
        let cp = key(&key(path, "capture"), var);
        match capture_source(ctx, &cp, from, matcher, regex_key) {
            Some(source) => captures.push(Capture {
                variable: var.clone(),
                source,
            }),
            None => ok = false,
        }
    }
    ok.then_some(captures)
}

/// Where a capture reads from, which depends on the matcher: a named group of the regex, or
/// a JSON pointer into a `json` match. Other matchers capture nothing.
fn capture_source(
    ctx: &mut Ctx,
    cp: &[Seg],
    from: &str,
    matcher: &Matcher,
    regex_key: &str,
) -> Option<CaptureSource> {
    match matcher {
        Matcher::Regex(re) | Matcher::Prefix { regex: re, .. } => {
            if re.capture_names().flatten().any(|n| n == from) {
                return Some(CaptureSource::Group(from.to_owned()));
            }
            let groups: Vec<&str> = re.capture_names().flatten().collect();
            let mut message = format!("the regex has no group named `{from}`");
            if let Some(s) = suggest(from, groups.iter().copied()) {
                message.push_str(&format!(", did you mean `{s}`?"));
            }
            ctx.out.error(
                cp,
                message,
                Some("name a group in the regex: `(?P<name>...)`".to_owned()),
            );
            None
        }
        Matcher::Json(_) => match json_pointer(from) {
            Some(p) => Some(CaptureSource::JsonPointer(p)),
            None => {
                ctx.out.error(
                    cp,
                    format!("`{from}` is not a JSON pointer (`/a/b`) or path (`$.a.b`)"),
                    None,
                );
                None
            }
        },
        _ => {
            ctx.out.error(
                cp,
                format!(
                    "captures need a regex with named groups in `{regex_key}`, or a `json` match"
                ),
                None,
            );
            None
        }
    }
}

/// The latency metric's name: thresholds spell it `latency.<name>`, so it cannot hold spaces
/// or the characters their expressions are made of.
fn metric_name(ctx: &mut Ctx, path: &[Seg], metric: String) -> Option<String> {
    if metric.is_empty()
        || metric
            .chars()
            .any(|c| c.is_whitespace() || "()<>=!%/".contains(c))
    {
        ctx.out.error(
            &key(path, "name"),
            format!("`{metric}` cannot be a metric name"),
            Some(
                "set `name:` on the expect (the default is the scenario name) using letters, \
                 digits, `_`, `-` and `.`"
                    .to_owned(),
            ),
        );
        return None;
    }
    Some(metric)
}
