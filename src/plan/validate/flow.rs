//! Validation of scenarios, flow steps, sends, expects and handlers.

use std::collections::BTreeSet;

use serde_json::Value;

use super::super::duration::parse_duration;
use super::super::problem::{Seg, idx, key, suggest};
use super::super::raw::{
    RawDuration, RawExpect, RawExpectArg, RawFlowItem, RawHandler, RawScenario, RawSend,
    RawSendSpec, RawStep, RawThink, STEP_KEYS,
};
use super::super::resolved::*;
use super::Ctx;
use super::config::{MessageParts, message_body};

/// Every name a flow binds (captures, `set`, `with` keys), over all scenarios.
pub(super) fn all_locals(scenarios: &[RawScenario]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in scenarios {
        collect_locals(&s.flow, &mut out, true);
    }
    out
}

fn collect_locals(flow: &[RawFlowItem], out: &mut BTreeSet<String>, with_keys: bool) {
    let expect_captures = |e: &RawExpectArg, out: &mut BTreeSet<String>| {
        if let RawExpectArg::Map(m) = e {
            out.extend(m.capture.iter().flat_map(|c| c.keys().cloned()));
        }
    };
    for item in flow {
        let RawFlowItem::Step(step) = item else {
            continue;
        };
        if let Some(e) = &step.expect {
            expect_captures(e, out);
        }
        if let Some(RawSend::Map(spec)) = &step.send {
            if let Some(e) = &spec.expect {
                expect_captures(e, out);
            }
            if with_keys {
                out.extend(spec.with_vars.iter().flat_map(|w| w.keys().cloned()));
            }
        }
        if let Some(set) = &step.set {
            out.extend(set.keys().cloned());
        }
        if let Some(inner) = &step.loop_steps {
            collect_locals(inner, out, with_keys);
        }
    }
}

pub(super) fn scenarios(ctx: &mut Ctx, raw: &[RawScenario]) -> Vec<Scenario> {
    let at = vec![Seg::Key("scenarios".to_owned())];
    if raw.is_empty() {
        ctx.out.error(
            &at,
            "`scenarios` is empty",
            Some("add at least one scenario with a `flow`".to_owned()),
        );
    }
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, s) in raw.iter().enumerate() {
        let sp = idx(&at, i);
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("scenario{}", i + 1));
        if !names.insert(name.clone()) {
            ctx.out.error(
                &key(&sp, "name"),
                format!("two scenarios are named `{name}`"),
                None,
            );
        }
        let weight = s.weight.unwrap_or(1);
        if weight == 0 {
            ctx.out.error(
                &key(&sp, "weight"),
                "`weight` must be a positive whole number, found 0",
                Some("remove the scenario instead of giving it weight 0".to_owned()),
            );
        }
        let mut locals = BTreeSet::new();
        collect_locals(&s.flow, &mut locals, false);
        let default_metric: String = name
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        let mut scope = Scope {
            locals,
            default_metric,
        };
        if s.flow.is_empty() {
            ctx.out.error(
                &key(&sp, "flow"),
                "`flow` is empty",
                Some("add steps, e.g. `- connect` and `- send: \"PING 1\"`".to_owned()),
            );
        }
        let flow = steps(ctx, &key(&sp, "flow"), &s.flow, &mut scope);
        let handlers = handlers(ctx, &key(&sp, "handlers"), &s.handlers, &scope.locals);
        out.push(Scenario {
            name,
            weight,
            flow,
            handlers,
        });
    }
    out
}

struct Scope {
    locals: BTreeSet<String>,
    default_metric: String,
}

fn steps(ctx: &mut Ctx, path: &[Seg], flow: &[RawFlowItem], scope: &mut Scope) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, item) in flow.iter().enumerate() {
        let ip = idx(path, i);
        match item {
            RawFlowItem::Bare(word) if word == "connect" => {
                out.push(Step::Connect { timeout: None })
            }
            RawFlowItem::Bare(_) => out.push(Step::Disconnect),
            RawFlowItem::Step(step) => out.extend(step_of(ctx, &ip, step, scope)),
        }
    }
    out
}

fn step_of(ctx: &mut Ctx, path: &[Seg], s: &RawStep, scope: &mut Scope) -> Vec<Step> {
    let present: [(&str, bool); 8] = [
        ("connect", s.connect.is_some()),
        ("send", s.send.is_some()),
        ("expect", s.expect.is_some() && s.send.is_none()),
        ("think", s.think.is_some()),
        ("loop", s.loop_steps.is_some()),
        ("set", s.set.is_some()),
        ("log", s.log.is_some()),
        ("disconnect", s.disconnect.is_some()),
    ];
    let keys: Vec<&str> = present
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    let loop_siblings: Vec<&str> = [
        ("count", s.count.is_some()),
        ("over", s.over.is_some()),
        ("duration", s.duration.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(k, _)| *k)
    .collect();
    let step = match keys.as_slice() {
        [one] => *one,
        [] => {
            let message = match loop_siblings.first() {
                Some(k) => format!("`{k}` goes with `loop`, which is missing here"),
                None => format!("a flow item needs a step: one of {}", STEP_KEYS.join(", ")),
            };
            ctx.out.error(path, message, None);
            return Vec::new();
        }
        [first, second, ..] => {
            ctx.out.key_error(
                &key(path, second),
                format!("a flow item has exactly one step, found `{first}` and `{second}`"),
                Some(format!(
                    "make them two list items: `- {first}: ...` and `- {second}: ...`"
                )),
            );
            return Vec::new();
        }
    };
    if step != "loop" {
        for k in &loop_siblings {
            ctx.out
                .key_error(&key(path, k), format!("`{k}` only applies to `loop`"), None);
        }
    }
    let at = key(path, step);
    match step {
        "connect" => {
            let timeout = s
                .connect
                .as_ref()
                .and_then(|c| c.0.timeout.as_ref())
                .and_then(|t| ctx.duration(&key(&at, "timeout"), t));
            vec![Step::Connect { timeout }]
        }
        "send" => send_step(ctx, path, s, scope).into_iter().collect(),
        "expect" => s
            .expect
            .as_ref()
            .and_then(|e| expect(ctx, &at, e, scope))
            .map(Step::Expect)
            .into_iter()
            .collect(),
        "think" => s
            .think
            .as_ref()
            .and_then(|t| think(ctx, &at, t))
            .map(Step::Think)
            .into_iter()
            .collect(),
        "loop" => loop_step(ctx, path, s, scope).into_iter().collect(),
        "set" => {
            let mut out = Vec::new();
            for (name, value) in s.set.iter().flatten() {
                if let Some(t) =
                    ctx.templates
                        .text(ctx.out, &key(&at, name), &value.0, &scope.locals)
                {
                    out.push(Step::Set {
                        variable: name.clone(),
                        value: t,
                    });
                }
            }
            out
        }
        "log" => ctx
            .templates
            .text(
                ctx.out,
                &at,
                s.log.as_deref().unwrap_or_default(),
                &scope.locals,
            )
            .map(Step::Log)
            .into_iter()
            .collect(),
        _ => vec![Step::Disconnect],
    }
}

fn send_step(ctx: &mut Ctx, path: &[Seg], s: &RawStep, scope: &mut Scope) -> Option<Step> {
    let at = key(path, "send");
    let send = s.send.as_ref()?;
    let inner_expect = match send {
        RawSend::Map(spec) => spec.expect.as_ref(),
        RawSend::Text(_) => None,
    };
    let expect_arg = match (inner_expect, s.expect.as_ref()) {
        (Some(_), Some(_)) => {
            ctx.out.key_error(
                &key(path, "expect"),
                "this send already has an `expect` inside `send`",
                None,
            );
            return None;
        }
        (Some(e), None) => Some((key(&at, "expect"), e)),
        (None, Some(e)) => Some((key(path, "expect"), e)),
        (None, None) => None,
    };
    let message = send_spec(ctx, &at, send, &scope.locals);
    let expect = match expect_arg {
        Some((ep, e)) => Some(expect(ctx, &ep, e, scope)?),
        None => None,
    };
    Some(Step::Send {
        message: message?,
        expect,
    })
}

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

fn expect(ctx: &mut Ctx, path: &[Seg], arg: &RawExpectArg, scope: &mut Scope) -> Option<Expect> {
    let owned;
    let e: &RawExpect = match arg {
        RawExpectArg::Regex(r) => {
            owned = RawExpect {
                regex: Some(r.clone()),
                contains: None,
                equals: None,
                json: None,
                type_id: None,
                timeout: None,
                capture: None,
                name: None,
                strict: None,
            };
            &owned
        }
        RawExpectArg::Map(m) => m,
    };
    let metric = e
        .name
        .clone()
        .unwrap_or_else(|| scope.default_metric.clone());
    if !ctx.metrics.latency_names.contains(&metric) {
        ctx.metrics.latency_names.push(metric.clone());
    }
    let matcher_path = match arg {
        RawExpectArg::Regex(_) => path.to_vec(),
        RawExpectArg::Map(_) => key(path, "match"),
    };
    let matcher = matcher(
        ctx,
        path,
        &matcher_path,
        "an expect",
        ("match", e.regex.as_deref()),
        e.contains.as_deref(),
        e.equals.as_deref(),
        e.json.as_ref(),
        e.type_id,
    )?;
    let timeout = e
        .timeout
        .as_ref()
        .and_then(|t| ctx.duration(&key(path, "timeout"), t));
    let mut captures = Vec::new();
    let mut ok = true;
    for (var, from) in e.capture.iter().flatten() {
        let cp = key(&key(path, "capture"), var);
        let source = match &matcher {
            Matcher::Regex(re) => {
                if re.capture_names().flatten().any(|n| n == from) {
                    Some(CaptureSource::Group(from.clone()))
                } else {
                    let groups: Vec<&str> = re.capture_names().flatten().collect();
                    let mut message = format!("the regex has no group named `{from}`");
                    if let Some(s) = suggest(from, groups.iter().copied()) {
                        message.push_str(&format!(", did you mean `{s}`?"));
                    }
                    ctx.out.error(
                        &cp,
                        message,
                        Some("name a group in the regex: `(?P<name>...)`".to_owned()),
                    );
                    None
                }
            }
            Matcher::Json(_) => match json_pointer(from) {
                Some(p) => Some(CaptureSource::JsonPointer(p)),
                None => {
                    ctx.out.error(
                        &cp,
                        format!("`{from}` is not a JSON pointer (`/a/b`) or path (`$.a.b`)"),
                        None,
                    );
                    None
                }
            },
            _ => {
                ctx.out.error(
                    &cp,
                    "captures need a `match` regex with named groups, or a `json` match",
                    None,
                );
                None
            }
        };
        match source {
            Some(source) => captures.push(Capture {
                variable: var.clone(),
                source,
            }),
            None => ok = false,
        }
    }
    if metric.is_empty()
        || metric
            .chars()
            .any(|c| c.is_whitespace() || "()<>=!%/".contains(c))
    {
        ctx.out.error(
            &key(path, "name"),
            format!("`{metric}` cannot be a metric name"),
            Some("use letters, digits, `_`, `-` and `.`".to_owned()),
        );
        ok = false;
    }
    ok.then_some(Expect {
        matcher,
        timeout,
        captures,
        metric,
        strict: e.strict.unwrap_or(false),
    })
}

/// Builds a matcher from exactly one of its spellings.
#[allow(clippy::too_many_arguments)]
fn matcher(
    ctx: &mut Ctx,
    path: &[Seg],
    regex_path: &[Seg],
    what: &str,
    regex: (&'static str, Option<&str>),
    contains: Option<&str>,
    equals: Option<&str>,
    json: Option<&std::collections::BTreeMap<String, Value>>,
    type_id: Option<u32>,
) -> Option<Matcher> {
    let which = ctx.exactly_one(
        path,
        what,
        &[
            (regex.0, regex.1.is_some()),
            ("contains", contains.is_some()),
            ("equals", equals.is_some()),
            ("json", json.is_some()),
            ("type", type_id.is_some()),
        ],
    )?;
    Some(match which {
        "contains" => Matcher::Contains(contains?.to_owned()),
        "equals" => Matcher::Equals(equals?.to_owned()),
        "type" => Matcher::Type(type_id?),
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
            match regex::Regex::new(source) {
                Ok(re) => Matcher::Regex(re),
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
fn json_pointer(text: &str) -> Option<String> {
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

fn think(ctx: &mut Ctx, path: &[Seg], t: &RawThink) -> Option<Think> {
    match &t.0 {
        RawDuration::Text(text) if text.contains("..") => {
            let (a, b) = text.split_once("..")?;
            let parsed = parse_duration(a).and_then(|min| parse_duration(b).map(|max| (min, max)));
            match parsed {
                Ok((min, max)) if min <= max => Some(Think { min, max }),
                Ok(_) => {
                    ctx.out.error(
                        path,
                        format!("`{text}`: the range's start is after its end"),
                        None,
                    );
                    None
                }
                Err(e) => {
                    ctx.out.error(
                        path,
                        format!("think range `{text}`: {e}"),
                        Some("e.g. `think: 3s..8s`".to_owned()),
                    );
                    None
                }
            }
        }
        other => ctx.duration(path, other).map(|d| Think { min: d, max: d }),
    }
}

fn loop_step(ctx: &mut Ctx, path: &[Seg], s: &RawStep, scope: &mut Scope) -> Option<Step> {
    let at = key(path, "loop");
    let inner = s.loop_steps.as_deref().unwrap_or_default();
    if inner.is_empty() {
        ctx.out.error(&at, "the loop has no steps", None);
    }
    let body = steps(ctx, &at, inner, scope);
    let bounds = [
        ("count", s.count.is_some()),
        ("over", s.over.is_some()),
        ("duration", s.duration.is_some()),
    ];
    let set: Vec<&str> = bounds
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    if let [first, second, ..] = set.as_slice() {
        ctx.out.key_error(
            &key(path, second),
            format!("a loop is bounded by one of `count`, `over`, `duration`, found `{first}` and `{second}`"),
            None,
        );
        return None;
    }
    let bound = match set.first().copied() {
        None => LoopBound::Forever,
        Some("count") => match s.count {
            Some(0) | None => {
                ctx.out
                    .error(&key(path, "count"), "`count` must be above 0", None);
                return None;
            }
            Some(n) => LoopBound::Count(n),
        },
        Some("duration") => {
            LoopBound::Duration(ctx.duration(&key(path, "duration"), s.duration.as_ref()?)?)
        }
        Some(_) => match s.over.as_ref()? {
            Value::Array(values) => LoopBound::Over(values.clone()),
            Value::String(var) => match ctx.variable_values(var) {
                Some(values) => LoopBound::Over(values),
                None => {
                    let mut message = format!("`over` names no variable `{var}`");
                    if let Some(s) = suggest(var, ctx.variable_names.iter().map(String::as_str)) {
                        message.push_str(&format!(", did you mean `{s}`?"));
                    }
                    ctx.out.error(
                        &key(path, "over"),
                        message,
                        Some("give a list, or the name of a list in `config.variables`".to_owned()),
                    );
                    return None;
                }
            },
            other => {
                ctx.out.error(
                    &key(path, "over"),
                    format!(
                        "`over` is a list or a variable name, found {}",
                        super::super::structure::kind_of(other)
                    ),
                    None,
                );
                return None;
            }
        },
    };
    Some(Step::Loop { steps: body, bound })
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
        let Some(m) = matcher(
            ctx,
            &hp,
            &key(&hp, "on"),
            "a handler",
            ("on", h.on.as_deref()),
            h.contains.as_deref(),
            h.equals.as_deref(),
            h.json.as_ref(),
            h.type_id,
        ) else {
            continue;
        };
        let mut scope = locals.clone();
        if let Matcher::Regex(re) = &m {
            scope.extend(re.capture_names().flatten().map(str::to_owned));
        }
        let reply = match &h.reply {
            Some(r) => match send_spec(ctx, &key(&hp, "reply"), r, &scope) {
                Some(s) => Some(s),
                None => continue,
            },
            None => None,
        };
        out.push(Handler {
            matcher: m,
            reply,
            name: h.name.clone(),
        });
    }
    out
}
