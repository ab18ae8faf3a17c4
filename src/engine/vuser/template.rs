//! Rendering the plan's compiled templates for one vuser: the render context (payload fields,
//! variables, captures, `vu`, `loop`, `env`) and the run-aware `stamp()` function.
//!
//! Compiling templates and the pure functions (`random_int`, `words`, ...) belong to `plan`;
//! this file only adds what needs the run's identity and clock, and lends the vuser's seeded
//! generator to the random functions for each render (`plan::with_rng`).
//!
//! Every render is bounded: minijinja's fuel caps the work (instructions and the data it
//! creates) and a bounded writer caps the output, so a hostile or mistaken template fails as
//! `errors.template` after a few milliseconds instead of holding a runtime thread — the one
//! Ctrl-C and result writing need — or growing without end.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use fnv::FnvHashMap;
use minijinja::value::{Object, Value};
use minijinja::{Environment, State};
use tokio::time::Instant;

use super::simple_template::{self, Part};
use super::stamp;
use crate::engine::seed::SeededRng;
use crate::plan::{REGEX_TEMPLATE_SUFFIX, Templates, Text, with_rng};

/// Variables of one vuser: payload fields, plan variables, captures and `set`s.
pub type Vars = BTreeMap<String, Value>;

/// The work one render may do (minijinja fuel: about one unit per instruction and per 64
/// bytes of data created). A message template spends tens to a few thousands; this leaves
/// room for generated payloads while ending a runaway loop within milliseconds.
pub const TEMPLATE_FUEL: u64 = 250_000;

/// The most bytes one render may output.
pub const MAX_TEMPLATE_OUTPUT_BYTES: usize = 4 << 20;

/// A template failed to render.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{id}` failed to render: {source}")]
    Render {
        id: String,
        #[source]
        source: minijinja::Error,
    },
    #[error(
        "template `{id}` did more work than a template may ({TEMPLATE_FUEL} units of minijinja \
         fuel): a loop in it runs too long; templates build one message, keep loops short"
    )]
    OutOfFuel { id: String },
    #[error(
        "template `{id}` output more than {MAX_TEMPLATE_OUTPUT_BYTES} bytes: a message cannot be \
         that large; shorten the loop or the repeated text"
    )]
    TooLarge { id: String },
}

/// Appends the output of one render to a buffer, refusing to grow it by more than
/// [`MAX_TEMPLATE_OUTPUT_BYTES`].
struct BoundedOutput<'a> {
    buf: &'a mut Vec<u8>,
    /// The buffer's length before the render.
    start: usize,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let written = self.buf.len().saturating_sub(self.start);
        if written.saturating_add(data.len()) > MAX_TEMPLATE_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The plan's template environment plus `stamp()`. One per run, shared by every vuser.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    /// Whether any template of the plan mentions `stamp` (decided once, from the sources):
    /// when none does, no frame of this run can carry one of its stamps, and received frames
    /// are not scanned for them.
    uses_stamp: bool,
    /// The templates that are only text and name insertions, by id: rendered without
    /// minijinja's machine (`simple_template`).
    simple: FnvHashMap<String, Vec<Part>>,
}

impl Renderer {
    /// `run_id` (the stamp token) identifies the run in stamps; a stamp's time is the wall
    /// clock at `start` (`wall_start_us`, µs since the Unix epoch) plus the run's clock since
    /// `start`, so paused-time tests stay exact and shards on one host share one clock.
    pub fn new(
        templates: &Templates,
        run_id: Arc<str>,
        start: Instant,
        wall_start_us: u64,
    ) -> Self {
        let mut env = templates.env.clone();
        // A text search, not a parse: a false positive (`stamp` in a literal) only costs the
        // scan, a false negative is impossible.
        let uses_stamp = env
            .templates()
            .any(|(_, template)| template.source().contains("stamp"));
        // Regex templates escape what they insert: minijinja's to render.
        let simple = env
            .templates()
            .filter(|(name, _)| !name.ends_with(REGEX_TEMPLATE_SUFFIX))
            .filter_map(|(name, template)| {
                simple_template::parse(template.source()).map(|parts| (name.to_owned(), parts))
            })
            .collect();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("stamp", move |state: &State| -> String {
            let vu = state
                .lookup("vu")
                .and_then(|vu| vu.get_attr("id").ok())
                .and_then(|id| id.as_i64())
                .and_then(|id| u64::try_from(id).ok())
                .unwrap_or(0);
            let elapsed_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            let sent_us = wall_start_us.saturating_add(elapsed_us);
            stamp::format(&run_id, vu, sent_us)
        });
        Renderer {
            env,
            uses_stamp,
            simple,
        }
    }

    /// Whether the plan can send stamps, so received frames need the stamp scan.
    pub fn uses_stamp(&self) -> bool {
        self.uses_stamp
    }

    /// Renders `text` in `scope`.
    pub fn render(&self, text: &Text, scope: &Scope) -> Result<String, TemplateError> {
        match text {
            Text::Literal(s) => Ok(s.clone()),
            Text::Template(_) => {
                let mut out = Vec::new();
                self.render_into(text, scope, &mut out)?;
                // minijinja writes whole UTF-8 strings; the fallback only guards the bound.
                Ok(String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            }
        }
    }

    /// Renders `text` in `scope`, appending to `out`: a send renders into a buffer it reuses,
    /// no `String` per message. On an error `out` may hold part of the output.
    pub fn render_into(
        &self,
        text: &Text,
        scope: &Scope,
        out: &mut Vec<u8>,
    ) -> Result<(), TemplateError> {
        match text {
            Text::Literal(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(())
            }
            Text::Template(id) => {
                let id = &id.0;
                if let Some(parts) = self.simple.get(id) {
                    let start = out.len();
                    if simple_template::render(parts, |name| scope.lookup(name), out)
                        && out.len() - start <= MAX_TEMPLATE_OUTPUT_BYTES
                    {
                        return Ok(());
                    }
                    // A value this path does not write (or too much output): minijinja
                    // renders it, or reports why it cannot.
                    out.truncate(start);
                }
                let fail = |source: minijinja::Error| match source.kind() {
                    minijinja::ErrorKind::OutOfFuel => TemplateError::OutOfFuel { id: id.clone() },
                    _ => TemplateError::Render {
                        id: id.clone(),
                        source,
                    },
                };
                let template = self.env.get_template(id).map_err(fail)?;
                let context = Value::from_object(scope.context());
                let start = out.len();
                let mut out = BoundedOutput {
                    buf: out,
                    start,
                    overflowed: false,
                };
                // Rendering does not re-enter here, so the borrow is always free.
                let mut rng = scope.rng.borrow_mut();
                let rendered =
                    with_rng(&mut rng, || template.render_captured_to(context, &mut out));
                if out.overflowed {
                    return Err(TemplateError::TooLarge { id: id.clone() });
                }
                rendered.map_err(fail)?;
                Ok(())
            }
        }
    }
}

/// What a template can see, owned by the vuser and updated as it runs.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Copy-on-write: a render shares it, a capture after the render copies only if needed.
    pub vars: Arc<Vars>,
    /// `{id, scenario}`.
    pub vu: Value,
    /// The innermost loop, `None` outside loops. Kept as a number and turned into the template
    /// value `loop` only when a template looks it up: most loops render nothing per iteration.
    pub loop_: Option<LoopVar>,
    /// Process environment, shared by every vuser.
    pub env: Value,
    /// `send: {message, with}` bindings, visible for that one send only.
    pub with: Vec<(String, Value)>,
    /// The vuser's seeded generator: template functions, think times. A cell because renders
    /// only borrow the scope; the vuser task is the only one that ever touches it.
    pub rng: RefCell<SeededRng>,
}

impl Scope {
    pub fn new(vars: Vars, vu_id: u64, scenario: &str, env: Value, rng: SeededRng) -> Self {
        Scope {
            vars: Arc::new(vars),
            vu: Value::from_object(VuInfo {
                id: vu_id,
                scenario: Value::from(scenario),
            }),
            loop_: None,
            env,
            with: Vec::new(),
            rng: RefCell::new(rng),
        }
    }

    /// Sets a variable (capture, `set`).
    pub fn set(&mut self, name: &str, value: Value) {
        Arc::make_mut(&mut self.vars).insert(name.to_owned(), value);
    }

    /// What the name `key` is in a template of this scope (before minijinja's globals).
    fn lookup(&self, key: &str) -> Option<Value> {
        lookup(
            key,
            &self.with,
            &self.vu,
            self.loop_.as_ref(),
            &self.env,
            &self.vars,
        )
    }

    fn context(&self) -> Context {
        Context {
            vars: Arc::clone(&self.vars),
            vu: self.vu.clone(),
            loop_: self.loop_.clone(),
            env: self.env.clone(),
            with: self.with.clone(),
        }
    }
}

/// Where the innermost loop is: `loop` in templates.
#[derive(Debug, Clone)]
pub struct LoopVar {
    /// 0-based.
    pub iteration: u64,
    /// The current element of an `over` loop, undefined otherwise.
    pub value: Value,
}

impl LoopVar {
    /// `loop` as templates see it: `index` (1-based), `index0`, and `value` for `over` loops.
    fn to_value(&self) -> Value {
        minijinja::context! {
            index => self.iteration + 1,
            index0 => self.iteration,
            value => self.value.clone(),
        }
    }
}

/// The process environment as the template value `env`.
pub fn env_value() -> Value {
    Value::from(std::env::vars().collect::<BTreeMap<String, String>>())
}

/// The template value `vu` (`{id, scenario}`): an object rather than a map, because every
/// vuser holds one for its whole life and a two-entry map costs several allocations.
#[derive(Debug)]
struct VuInfo {
    id: u64,
    scenario: Value,
}

impl Object for VuInfo {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "id" => Some(Value::from(self.id)),
            "scenario" => Some(self.scenario.clone()),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["id", "scenario"])
    }
}

#[derive(Debug)]
struct Context {
    vars: Arc<Vars>,
    vu: Value,
    loop_: Option<LoopVar>,
    env: Value,
    with: Vec<(String, Value)>,
}

impl Object for Context {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        lookup(
            key.as_str()?,
            &self.with,
            &self.vu,
            self.loop_.as_ref(),
            &self.env,
            &self.vars,
        )
    }
}

/// A name in a template: a `with` binding first, then `vu`, `loop` (inside loops) and `env`,
/// then the vuser's variables.
fn lookup(
    key: &str,
    with: &[(String, Value)],
    vu: &Value,
    loop_: Option<&LoopVar>,
    env: &Value,
    vars: &Vars,
) -> Option<Value> {
    if let Some((_, v)) = with.iter().find(|(k, _)| k == key) {
        return Some(v.clone());
    }
    match key {
        "vu" => Some(vu.clone()),
        "loop" if loop_.is_some() => loop_.map(LoopVar::to_value),
        "env" => Some(env.clone()),
        _ => vars.get(key).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TemplateId;

    fn renderer(source: &str) -> Renderer {
        let mut env = Environment::new();
        crate::plan::register_functions(&mut env);
        let _ = env.add_template_owned("t".to_owned(), source.to_owned());
        Renderer::new(&Templates { env }, Arc::from("abc123"), Instant::now(), 0)
    }

    fn scope() -> Scope {
        let mut vars = Vars::new();
        vars.insert("name".into(), Value::from("ann"));
        let env = minijinja::context! { HOME_TEST => "/x" };
        Scope::new(
            vars,
            7,
            "chatter",
            env,
            crate::engine::seed::vuser_rng(1, 7),
        )
    }

    fn render(source: &str, scope: &Scope) -> String {
        renderer(source)
            .render(&Text::Template(TemplateId("t".into())), scope)
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn context_exposes_vars_vu_loop_env_and_with() {
        let mut s = scope();
        s.loop_ = Some(LoopVar {
            iteration: 1,
            value: Value::from("x"),
        });
        s.with = vec![("text".into(), Value::from("hi"))];
        let out = render(
            "{{ name }} {{ vu.id }} {{ vu.scenario }} {{ loop.index }} {{ loop.index0 }} {{ loop.value }} {{ env.HOME_TEST }} {{ text }}",
            &s,
        );
        assert_eq!(out, "ann 7 chatter 2 1 x /x hi");
        s.loop_ = None;
        assert_eq!(render("{{ loop is defined }}", &s), "False");
    }

    #[test]
    fn set_is_copy_on_write() {
        let mut s = scope();
        let before = s.clone();
        s.set("name", Value::from("bob"));
        assert_eq!(render("{{ name }}", &s), "bob");
        assert_eq!(render("{{ name }}", &before), "ann");
    }

    #[test]
    fn stamp_carries_the_vuser_id() {
        let out = render("SAY {{ stamp() }}", &scope());
        let found: Vec<_> = stamp::scan(out.as_bytes(), "abc123").collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found.first().map(|f| f.sender), Some(7));
    }

    #[test]
    fn random_functions_follow_the_scope_generator() {
        let source = "{{ random_int(1, 1000000) }} {{ uuid() }}";
        let (a, b) = (scope(), scope());
        let first = render(source, &a);
        assert_eq!(first, render(source, &b));
        assert_ne!(first, render(source, &a));
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel_instead_of_hanging() {
        // 10^10 iterations unbounded; the fuel ends it after a quarter million instructions.
        let source =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let out = renderer(source).render(&Text::Template(TemplateId("t".into())), &scope());
        assert!(
            matches!(out, Err(TemplateError::OutOfFuel { .. })),
            "{out:?}"
        );
        let message = out.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("fuel") && message.contains("`t`"),
            "{message}"
        );
    }

    #[test]
    fn output_beyond_the_cap_is_refused() {
        let out = renderer("{{ 'x' * 5000000 }}")
            .render(&Text::Template(TemplateId("t".into())), &scope());
        assert!(
            matches!(out, Err(TemplateError::TooLarge { .. })),
            "{out:?}"
        );
        // Just under the cap renders.
        let fits = format!("{{{{ 'x' * {} }}}}", MAX_TEMPLATE_OUTPUT_BYTES);
        let out = renderer(&fits).render(&Text::Template(TemplateId("t".into())), &scope());
        assert_eq!(out.map(|s| s.len()).ok(), Some(MAX_TEMPLATE_OUTPUT_BYTES));
    }

    #[test]
    fn literal_needs_no_template() {
        let r = renderer("x");
        let out = r.render(&Text::Literal("PING".into()), &scope());
        assert_eq!(out.ok().as_deref(), Some("PING"));
    }

    /// `source` rendered as a run renders it (the simple path when it applies) and through
    /// minijinja alone; and whether the simple path took it.
    fn both_ways(
        source: &str,
        scope: &Scope,
    ) -> (Result<String, String>, Result<String, String>, bool) {
        let fast = renderer(source);
        let simple = fast.simple.contains_key("t");
        let mut slow = renderer(source);
        slow.simple.clear();
        let text = Text::Template(TemplateId("t".into()));
        let render = |r: &Renderer| r.render(&text, scope).map_err(|e| e.to_string());
        (render(&fast), render(&slow), simple)
    }

    #[test]
    fn simple_templates_render_exactly_as_minijinja_does() {
        let mut s = scope();
        s.set("count", Value::from(-12));
        s.set("big", Value::from(u64::MAX));
        s.set("ratio", Value::from(0.5));
        s.set("flag", Value::from(true));
        s.set(
            "user",
            minijinja::context! { name => "zoé", tags => vec![1, 2] },
        );
        s.set("nothing", Value::from(()));
        s.loop_ = Some(LoopVar {
            iteration: 4,
            value: Value::from("v"),
        });
        s.with = vec![("text".into(), Value::from("hi"))];
        s.set("text", Value::from("shadowed"));
        let (fast, _, _) = both_ways("PING {{ vu.id }}", &s);
        assert_eq!(fast.as_deref(), Ok("PING 7"));
        // The simple path takes these...
        for source in [
            "PING {{ vu.id }}",
            "{{name}} {{ count }} {{ user.name }} {{ loop.index }} {{ loop.value }}",
            "{{ vu.scenario }} {{ env.HOME_TEST }} {{ text }}: }} {",
        ] {
            let (fast, slow, simple) = both_ways(source, &s);
            assert!(simple, "{source}");
            assert_eq!(fast, slow, "{source}");
        }
        // ...and leaves these to minijinja, with the same results, errors included.
        for source in [
            "{{ big }}",
            "{{ ratio }}",
            "{{ flag }}",
            "{{ user.tags }}",
            "{{ user }}",
            "{{ nothing }}",
            "{{ missing }}",
            "{{ user.missing }}",
            "{{ random_int }}",
            "{{ name | upper }}",
        ] {
            let (fast, slow, _) = both_ways(source, &s);
            assert_eq!(fast, slow, "{source}");
        }
    }
}
