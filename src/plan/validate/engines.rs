//! A scenario's `target` and `engine`: its own target rendered from the environment when it
//! is a template (as `config.target` is), and its steps checked against the engine its
//! target (or the plan's) implies, `target: embedded` included (the embedded server serves
//! the chat protocol or, with `embedded: {http: true}`, the HTTP demo API).
//!
//! What the steps themselves must be is `flow`'s and `http`'s.

use super::super::endpoint::Endpoint;
use super::super::problem::{Seg, key};
use super::super::raw::{RawEngine, RawFlowItem, RawScenario};
use super::Ctx;
use super::http::method_keys;

/// Whether a flow (nested loops included) has HTTP steps, and whether it has socket steps.
fn step_kinds(flow: &[RawFlowItem], http: &mut bool, socket: &mut bool) {
    for item in flow {
        match item {
            RawFlowItem::Bare(_) => *socket = true,
            RawFlowItem::Step(s) => {
                if method_keys(s).iter().any(|(_, on)| *on) {
                    *http = true;
                }
                if s.connect.is_some()
                    || s.send.is_some()
                    || s.expect.is_some()
                    || s.disconnect.is_some()
                {
                    *socket = true;
                }
                if let Some(inner) = &s.loop_steps {
                    step_kinds(inner, http, socket);
                }
                for branch in s.pick.iter().flatten() {
                    step_kinds(&branch.flow, http, socket);
                }
            }
        }
    }
}

/// A scenario's `target` and `engine`: checks that its steps fit the engine its target
/// (or the plan's) implies. Returns the scenario's own target, if written and valid; a
/// templated one (`"{{ $processEnvironment.API_URL }}"`) is rendered here, like
/// `config.target`, so the run uses the URL itself.
pub(super) fn scenario_target(ctx: &mut Ctx, sp: &[Seg], s: &RawScenario) -> Option<String> {
    let at = key(sp, "target");
    let target = match s.target.as_deref().map(str::trim) {
        Some(written) => {
            let rendered = super::environment::render_target(ctx, &at, written)?;
            match Endpoint::parse(&rendered) {
                Ok(_) => Some(rendered),
                Err(err) => {
                    let message = if rendered == written {
                        format!("not a target: {err}")
                    } else {
                        format!("the target `{written}` renders to `{rendered}`, not a URL: {err}")
                    };
                    ctx.out.error(
                        &at,
                        message,
                        Some(
                            "e.g. `http://127.0.0.1:8080` or `ws://127.0.0.1:8080/chat`".to_owned(),
                        ),
                    );
                    return None;
                }
            }
        }
        None => None,
    };
    let plan_target = ctx.plan_target.clone();
    let effective = target.as_deref().unwrap_or(&plan_target).trim();
    // `embedded` is known only at run time (the server's flavour says which engine), and a
    // plan target that could not be rendered was reported already: no engine to check.
    let scheme = match effective {
        "embedded" => None,
        t if t.contains("{{") => None,
        t => Endpoint::parse(t).ok().map(|e| e.scheme),
    };
    let (mut http, mut socket) = (false, false);
    step_kinds(&s.flow, &mut http, &mut socket);
    let engine = s.engine.or(match scheme {
        Some(s) if s.is_http() => Some(RawEngine::Http),
        Some(s) if s.is_websocket() => Some(RawEngine::Ws),
        Some(_) => Some(RawEngine::Tcp),
        None => None,
    });
    if effective == "embedded" {
        embedded_fits(ctx, sp, s.engine, http, socket);
    }
    match engine {
        Some(RawEngine::Http) if socket => ctx.out.error(
            &key(sp, "flow"),
            format!(
                "this scenario runs on the HTTP engine (target `{effective}`), which has no \
                 `connect`/`send`/`expect`/`disconnect` steps"
            ),
            Some(
                "use `get`/`post`/... steps, or give the scenario a socket `target` such as \
                 `ws://host:port/chat`"
                    .to_owned(),
            ),
        ),
        Some(RawEngine::Tcp | RawEngine::Ws) if http => ctx.out.error(
            &key(sp, "flow"),
            format!(
                "HTTP steps need an http:// or https:// target; this scenario's is `{effective}`"
            ),
            Some("set the scenario's `target: http://host:port` (or `engine: http`)".to_owned()),
        ),
        _ => {}
    }
    if let (Some(engine), Some(scheme)) = (s.engine, scheme) {
        let fits = match engine {
            RawEngine::Http => scheme.is_http(),
            RawEngine::Ws => scheme.is_websocket(),
            RawEngine::Tcp => !scheme.is_http() && !scheme.is_websocket(),
        };
        if !fits {
            ctx.out.error(
                &key(sp, "engine"),
                format!("`engine` does not fit the target `{effective}`"),
                Some(
                    "drop `engine` (it follows the target's scheme) or change the target"
                        .to_owned(),
                ),
            );
        }
    }
    target
}

/// `target: embedded` serves one flavour: the chat server (socket steps) or, with
/// `embedded: {http: true}`, the HTTP demo API (HTTP steps). A scenario whose steps need the
/// other one would fail every request at run time.
fn embedded_fits(ctx: &mut Ctx, sp: &[Seg], engine: Option<RawEngine>, http: bool, socket: bool) {
    let wants_http = engine.map_or(http, |e| e == RawEngine::Http);
    if wants_http && !ctx.embedded_http {
        ctx.out.error(
            &key(sp, "flow"),
            "HTTP steps against `target: embedded` need the embedded HTTP demo API; without \
             it the embedded server speaks the chat protocol",
            Some(
                "add `embedded: {http: true}` under `config` (or give the scenario its own \
                 `target: http://host:port`)"
                    .to_owned(),
            ),
        );
    } else if !wants_http && socket && ctx.embedded_http {
        ctx.out.error(
            &key(sp, "flow"),
            "socket steps against `target: embedded` with `embedded: {http: true}`: the \
             embedded server serves the HTTP demo API, which has no chat socket",
            Some(
                "use `get`/`post`/... steps, drop `http: true` under `config.embedded`, or \
                 give the scenario its own socket `target`"
                    .to_owned(),
            ),
        );
    }
}
