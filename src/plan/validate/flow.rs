//! Validation of scenarios, flow steps, sends, expects and handlers.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::super::duration::parse_duration;
use super::super::problem::{Seg, idx, key, suggest};
use super::super::raw::{
    RawDuration, RawExpectArg, RawFlowItem, RawScenario, RawSend, RawStep, RawThink, STEP_KEYS,
};
use super::super::resolved::*;
use super::Ctx;
use super::expects::expect;
use super::sends::{handlers, send_spec};
use super::{binary, branch, record};

/// Every name a flow binds (captures, `set`, `with` keys), over all scenarios.
pub(super) fn all_locals(scenarios: &[RawScenario]) -> BTreeSet<String> {
    // A named message may be sent from inside a loop.
    let mut out = BTreeSet::from(["loop".to_owned()]);
    for s in scenarios {
        collect_locals(&s.flow, &mut out, true);
        binary::handler_locals(&s.handlers, &mut out);
    }
    out
}

fn collect_locals(flow: &[RawFlowItem], out: &mut BTreeSet<String>, with_keys: bool) {
    let expect_captures = |e: &RawExpectArg, out: &mut BTreeSet<String>| {
        if let RawExpectArg::Map(m) = e {
            out.extend(binary::bound_names(m.decode.as_deref(), m.capture.as_ref()));
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
        super::http::captured(step, out);
        if let Some(inner) = &step.loop_steps {
            collect_locals(inner, out, with_keys);
        }
        for branch in step.pick.iter().flatten() {
            collect_locals(&branch.flow, out, with_keys);
        }
    }
}

/// The scenarios; `shared` are the names the `before` flow binds (every vuser sees them).
pub(super) fn scenarios(
    ctx: &mut Ctx,
    raw: &[RawScenario],
    shared: &BTreeSet<String>,
) -> Vec<Scenario> {
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
        let allocation = super::allocation::allocation(ctx, &sp, s);
        let weight = s.weight.unwrap_or(1);
        if weight == 0 {
            ctx.out.error(
                &key(&sp, "weight"),
                "`weight` must be a positive whole number, found 0",
                Some("remove the scenario instead of giving it weight 0".to_owned()),
            );
        }
        let mut locals = ctx.handler_locals.clone();
        locals.extend(shared.iter().cloned());
        collect_locals(&s.flow, &mut locals, false);
        binary::handler_locals(&s.handlers, &mut locals);
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
        // A handler may take a frame while the flow is inside a loop.
        let mut handler_locals = scope.locals.clone();
        handler_locals.insert("loop".to_owned());
        let handlers = handlers(ctx, &key(&sp, "handlers"), &s.handlers, &handler_locals);
        let target = super::engines::scenario_target(ctx, &sp, s);
        out.push(Scenario {
            name,
            weight,
            target,
            flow,
            handlers,
            allocation,
        });
    }
    out
}

/// The `before` or `after` flow at `path`, run by one vuser as the scenario `name`; `shared`
/// are the names the `before` flow binds.
pub(super) fn setup_flow(
    ctx: &mut Ctx,
    path: &[Seg],
    name: &str,
    flow: &[RawFlowItem],
    shared: &BTreeSet<String>,
) -> Scenario {
    // Plan-wide handlers (and their captures) apply to the setup flows too.
    let mut locals = ctx.handler_locals.clone();
    locals.extend(shared.iter().cloned());
    collect_locals(flow, &mut locals, false);
    let mut scope = Scope {
        locals,
        default_metric: name.to_owned(),
    };
    if flow.is_empty() {
        ctx.out.error(
            &key(path, "flow"),
            "`flow` is empty",
            Some(format!("add steps, or remove `{name}`")),
        );
    }
    let steps = steps(ctx, &key(path, "flow"), flow, &mut scope);
    Scenario {
        name: name.to_owned(),
        weight: 1,
        target: None,
        flow: steps,
        handlers: Vec::new(),
        allocation: Allocation::default(),
    }
}

/// The names a flow binds (captures, `set`s).
pub(super) fn flow_locals(flow: &[RawFlowItem]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_locals(flow, &mut out, false);
    out
}

pub(super) struct Scope {
    pub locals: BTreeSet<String>,
    pub default_metric: String,
}

pub(super) fn steps(
    ctx: &mut Ctx,
    path: &[Seg],
    flow: &[RawFlowItem],
    scope: &mut Scope,
) -> Vec<Step> {
    let mut out = Vec::new();
    for (i, item) in flow.iter().enumerate() {
        let ip = idx(path, i);
        match item {
            RawFlowItem::Bare(word) if word == "connect" => {
                out.push(Step::Connect { timeout: None })
            }
            RawFlowItem::Bare(_) => out.push(Step::Disconnect),
            RawFlowItem::Step(step) => {
                let inner = step_of(ctx, &ip, step, scope);
                out.extend(branch::guard(ctx, &ip, step, scope, inner));
            }
        }
    }
    out
}

/// One flow item: which step it is, then that step's own validation.
fn step_of(ctx: &mut Ctx, path: &[Seg], s: &RawStep, scope: &mut Scope) -> Vec<Step> {
    let Some(step) = step_key(ctx, path, s) else {
        return Vec::new();
    };
    if step != "loop" {
        for k in loop_bounds(s) {
            ctx.out
                .key_error(&key(path, k), format!("`{k}` only applies to `loop`"), None);
        }
    }
    let at = key(path, step);
    match step {
        "connect" => {
            let raw = s.connect.as_ref().and_then(|c| c.0.timeout.as_ref());
            vec![Step::Connect {
                timeout: timeout(ctx, &at, raw),
            }]
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
        "pick" => branch::pick(ctx, path, s, scope).into_iter().collect(),
        "record" => record::record(ctx, &at, s, scope).into_iter().collect(),
        "set" => set_steps(ctx, &at, s, scope),
        "log" => log_step(ctx, &at, s, scope).into_iter().collect(),
        "disconnect" => vec![Step::Disconnect],
        method => super::http::step(ctx, path, s, method, &scope.locals)
            .into_iter()
            .collect(),
    }
}

/// The one step key a flow item has. None is reported at the item (naming `loop` when only
/// its bounds are there), two or more at the second one.
fn step_key(ctx: &mut Ctx, path: &[Seg], s: &RawStep) -> Option<&'static str> {
    let flow_steps: [(&'static str, bool); 10] = [
        ("connect", s.connect.is_some()),
        ("send", s.send.is_some()),
        // An `expect` beside `send` belongs to the send.
        ("expect", s.expect.is_some() && s.send.is_none()),
        ("think", s.think.is_some()),
        ("loop", s.loop_steps.is_some()),
        ("pick", s.pick.is_some()),
        ("set", s.set.is_some()),
        ("record", s.record.is_some()),
        ("log", s.log.is_some()),
        ("disconnect", s.disconnect.is_some()),
    ];
    let http_steps = super::http::method_keys(s);
    let keys: Vec<&'static str> = flow_steps
        .iter()
        .chain(&http_steps)
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    match keys.as_slice() {
        [one] => Some(*one),
        [] => {
            let message = match loop_bounds(s).first() {
                Some(k) => format!("`{k}` goes with `loop`, which is missing here"),
                None => format!("a flow item needs a step: one of {}", STEP_KEYS.join(", ")),
            };
            ctx.out.error(path, message, None);
            None
        }
        [first, second, ..] => {
            ctx.out.key_error(
                &key(path, second),
                format!("a flow item has exactly one step, found `{first}` and `{second}`"),
                Some(format!(
                    "make them two list items: `- {first}: ...` and `- {second}: ...`"
                )),
            );
            None
        }
    }
}

/// The loop bounds a flow item sets, in the order they are checked.
fn loop_bounds(s: &RawStep) -> Vec<&'static str> {
    [
        ("count", s.count.is_some()),
        ("over", s.over.is_some()),
        ("duration", s.duration.is_some()),
        ("while", s.while_.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(k, _)| *k)
    .collect()
}

/// A `timeout` under `at`, if one is written: above 0.
pub(super) fn timeout(ctx: &mut Ctx, at: &[Seg], raw: Option<&RawDuration>) -> Option<Duration> {
    raw.and_then(|t| ctx.positive_duration(&key(at, "timeout"), t))
}

/// `set: {name: template}`: one step per variable, in the map's order; a bad template drops
/// only its own variable.
fn set_steps(ctx: &mut Ctx, at: &[Seg], s: &RawStep, scope: &Scope) -> Vec<Step> {
    let mut out = Vec::new();
    for (name, value) in s.set.iter().flatten() {
        if let Some(t) = ctx
            .templates
            .text(ctx.out, &key(at, name), &value.0, &scope.locals)
        {
            out.push(Step::Set {
                variable: name.clone(),
                value: t,
            });
        }
    }
    out
}

/// `log: template`.
fn log_step(ctx: &mut Ctx, at: &[Seg], s: &RawStep, scope: &Scope) -> Option<Step> {
    ctx.templates
        .text(
            ctx.out,
            at,
            s.log.as_deref().unwrap_or_default(),
            &scope.locals,
        )
        .map(Step::Log)
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
    // `loop` exists inside the loop (and in its `while`), not after it.
    let outermost = scope.locals.insert("loop".to_owned());
    let body = steps(ctx, &at, inner, scope);
    let bound = loop_bound(ctx, path, s, scope);
    if outermost {
        scope.locals.remove("loop");
    }
    Some(Step::Loop {
        steps: body,
        bound: bound?,
    })
}

/// The bound of a `loop`: at most one of `count`, `over`, `duration`, `while`.
fn loop_bound(ctx: &mut Ctx, path: &[Seg], s: &RawStep, scope: &Scope) -> Option<LoopBound> {
    let set = loop_bounds(s);
    if let [first, second, ..] = set.as_slice() {
        ctx.out.key_error(
            &key(path, second),
            format!("a loop is bounded by one of `count`, `over`, `duration`, `while`, found `{first}` and `{second}`"),
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
        Some("while") => branch::while_bound(ctx, path, s, scope)?,
        Some("duration") => LoopBound::Duration(
            ctx.positive_duration(&key(path, "duration"), s.duration.as_ref()?)?,
        ),
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
    Some(bound)
}
