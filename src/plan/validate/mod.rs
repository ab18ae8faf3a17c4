//! Validation: `RawPlan` → [`Plan`], collecting every problem with its path.
//!
//! Each part of the plan is checked on its own and problems are recorded rather than returned,
//! so independent mistakes are all reported in one run. A `Plan` is built only when nothing was
//! wrong. References are checked against the names as written in the file (even when the
//! referenced node itself was broken), so one mistake does not echo as many.

mod allocation;
mod binary;
mod branch;
mod config;
mod engines;
mod ensure;
mod environment;
mod expects;
mod flow;
mod http;
mod load;
mod matchers;
mod messages;
mod payload;
mod protocol;
mod record;
mod redact;
mod sends;
mod setup;
mod templates;
mod transport;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::duration::{parse_duration, seconds};
use super::problem::{Collector, Seg, key};
use super::raw::{RawDuration, RawPlan};
use super::resolved::{Load, Plan};
use super::threshold::KnownMetrics;

pub(crate) use templates::TemplateBuilder;

pub(crate) use redact::Secrets;

/// What validation of one part needs from the rest of the plan.
pub(crate) struct Ctx<'c, 'a> {
    pub out: &'c mut Collector<'a>,
    pub templates: TemplateBuilder,
    /// Message names as written (including broken ones).
    pub message_names: BTreeSet<String>,
    pub variable_names: BTreeSet<String>,
    /// Every `with` key, capture and `set` variable of the plan (message templates see them all).
    pub all_locals: BTreeSet<String>,
    /// What the plan-wide handlers capture and decode into every vuser's variables.
    pub handler_locals: BTreeSet<String>,
    pub metrics: KnownMetrics,
    /// Width of the framing's packet `type` field: `Some(None)` when it has none, `None` when
    /// the framing itself is broken (so type checks are skipped).
    pub type_bytes: Option<Option<u8>>,
    /// Whether `sourceAddresses` was written as a list (for paths).
    pub source_addresses_is_list: bool,
    pub raw_variables: &'c std::collections::BTreeMap<String, Value>,
    /// `config.target` as it applies: rendered from the environment when it is a template
    /// (as written when it cannot be rendered). A scenario without its own target uses it.
    pub plan_target: String,
    /// `config.embedded.http` (alone): `target: embedded` serves the HTTP demo API.
    pub embedded_http: bool,
}

impl Ctx<'_, '_> {
    /// The values of plan variable `name` (one value is a list of one).
    pub fn variable_values(&self, name: &str) -> Option<Vec<Value>> {
        self.raw_variables.get(name).map(|v| match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        })
    }

    pub fn duration(&mut self, path: &[Seg], raw: &RawDuration) -> Option<Duration> {
        let parsed = match raw {
            RawDuration::Seconds(s) => seconds(*s, &s.to_string()),
            RawDuration::Text(t) => parse_duration(t),
        };
        parsed
            .map_err(|e| self.out.error(path, e.to_string(), None))
            .ok()
    }

    /// A duration that must be longer than zero (timeouts, loop durations).
    pub fn positive_duration(&mut self, path: &[Seg], raw: &RawDuration) -> Option<Duration> {
        let d = self.duration(path, raw)?;
        if d.is_zero() {
            self.out.error(path, "must be longer than 0", None);
            return None;
        }
        Some(d)
    }

    pub fn opt_duration(
        &mut self,
        path: &[Seg],
        name: &str,
        raw: Option<&RawDuration>,
        default: Duration,
    ) -> Duration {
        raw.and_then(|r| self.duration(&key(path, name), r))
            .unwrap_or(default)
    }

    /// Checks that packet type `id` (at `path`) fits the framing's `type` field.
    pub fn check_type_id(&mut self, path: &[Seg], id: u32) -> bool {
        match self.type_bytes {
            None => true,
            Some(None) => {
                self.out.error(
                    path,
                    "a packet `type` needs a `lengthPrefixed` header with a `type` field",
                    Some(
                        "add `{type: 2}` to `config.protocol.framing.lengthPrefixed.header`"
                            .to_owned(),
                    ),
                );
                false
            }
            Some(Some(bytes)) => {
                let max = if bytes >= 4 {
                    u64::from(u32::MAX)
                } else {
                    (1u64 << (8 * u32::from(bytes))) - 1
                };
                if u64::from(id) > max {
                    self.out.error(
                        path,
                        format!(
                            "type {id} does not fit the {bytes}-byte `type` field (at most {max})"
                        ),
                        None,
                    );
                    return false;
                }
                true
            }
        }
    }

    /// Checks that exactly one of `keys` is present; returns it.
    pub fn exactly_one(
        &mut self,
        path: &[Seg],
        what: &str,
        keys: &[(&'static str, bool)],
    ) -> Option<&'static str> {
        let present: Vec<&'static str> = keys.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect();
        let names: Vec<String> = keys.iter().map(|(k, _)| format!("`{k}`")).collect();
        match present.as_slice() {
            [one] => Some(one),
            [] => {
                self.out.error(
                    path,
                    format!("{what} needs one of {}", names.join(", ")),
                    None,
                );
                None
            }
            [_, second, ..] => {
                self.out.key_error(
                    &key(path, second),
                    format!(
                        "{what} takes exactly one of {}, found `{}`",
                        names.join(", "),
                        present.join("` and `")
                    ),
                    Some("split it in two, or remove one".to_owned()),
                );
                None
            }
        }
    }
}

/// Validates a structurally sound `raw` plan. `original` is the value tree as written.
pub(crate) fn validate(
    raw: &RawPlan,
    original: &Value,
    source: &Path,
    out: &mut Collector<'_>,
) -> Option<Plan> {
    let base_dir = source.parent().unwrap_or(Path::new("."));
    let config_path = vec![Seg::Key("config".to_owned())];
    let message_names = names_in(original, &["config", "messages"]);
    let variable_names: BTreeSet<String> = raw.config.variables.keys().cloned().collect();

    let is_list = |pointer: &str| original.pointer(pointer).is_some_and(Value::is_array);
    let payloads = config::payloads(out, base_dir, &raw.config, is_list("/config/payload"));
    let mut plan_names: BTreeSet<String> = variable_names.clone();
    for p in &payloads {
        match &p.load_all_as {
            Some(name) => {
                plan_names.insert(name.clone());
            }
            None => plan_names.extend(p.fields.iter().cloned()),
        }
    }
    let mut handler_locals = BTreeSet::new();
    binary::handler_locals(&raw.config.handlers, &mut handler_locals);
    let mut all_locals = flow::all_locals(&raw.scenarios);
    all_locals.extend(handler_locals.iter().cloned());
    let shared_locals = setup::shared_locals(raw);
    all_locals.extend(shared_locals.iter().cloned());
    let mut ctx = Ctx {
        out,
        templates: TemplateBuilder::new(plan_names),
        message_names,
        variable_names,
        all_locals,
        handler_locals,
        metrics: KnownMetrics::default(),
        type_bytes: None,
        source_addresses_is_list: is_list("/config/sourceAddresses"),
        raw_variables: &raw.config.variables,
        plan_target: raw.config.target.trim().to_owned(),
        // A mixed flavour (`http` with `websocket` or `framing`) is reported by `config`.
        embedded_http: raw
            .config
            .embedded
            .as_ref()
            .is_some_and(|e| e.http && !e.websocket && e.framing.is_none() && e.xor.is_none()),
    };

    let target = config::target(&mut ctx, &config_path, &raw.config);
    let protocol = protocol::protocol(&mut ctx, &config_path, raw.config.protocol.as_ref());
    let tls = transport::tls(&mut ctx, &config_path, raw.config.tls.as_ref(), base_dir);
    let websocket = transport::websocket(&mut ctx, &config_path, raw.config.websocket.as_ref());
    let http = http::settings(&mut ctx, &config_path, &raw.config);
    let messages = messages::messages(&mut ctx, &config_path, &raw.config.messages);
    let variables = config::variables(&raw.config);
    for (i, name) in raw.config.secrets.iter().enumerate() {
        if !ctx.variable_names.contains(name) {
            let candidates = ctx.variable_names.iter().map(String::as_str);
            let help = match super::problem::suggest(name, candidates) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "list names from config.variables".to_owned(),
            };
            ctx.out.error(
                &super::problem::idx(&key(&config_path, "secrets"), i),
                format!("`{name}` in config.secrets is not a variable"),
                Some(help),
            );
        }
    }
    let load = load::load(&mut ctx, &config_path, &raw.config);
    let defaults = config::defaults(&mut ctx, &config_path, raw.config.defaults.as_ref());
    let source_addresses = config::source_addresses(&mut ctx, &config_path, &raw.config);
    let plan_handler_locals = ctx.handler_locals.clone();
    let handlers = sends::handlers(
        &mut ctx,
        &key(&config_path, "handlers"),
        &raw.config.handlers,
        &plan_handler_locals,
    );
    let monitor = config::monitor(&mut ctx, &config_path, raw.config.monitor.as_ref());
    let report = config::report(&mut ctx, &config_path, raw.config.report.as_ref());
    let metrics = config::metrics(&mut ctx, &config_path, raw.config.metrics.as_ref());
    let scenarios = flow::scenarios(&mut ctx, &raw.scenarios, &shared_locals);
    let setup = setup::setup(&mut ctx, raw, &shared_locals);
    if let Some(load) = &load {
        allocation::start_after_within_load(&mut ctx, &scenarios, load);
    }
    // Named as written, so a broken handler does not also break thresholds naming it.
    let raw_handlers = raw.config.handlers.iter();
    let scenario_handlers = raw.scenarios.iter().flat_map(|s| s.handlers.iter());
    for h in raw_handlers.chain(scenario_handlers) {
        match &h.name {
            Some(name) => ctx.metrics.handler_names.push(name.clone()),
            None => ctx.metrics.unnamed_handlers = true,
        }
    }
    let ensure = ensure::ensure(&mut ctx, &config_path, raw.config.ensure.as_ref());
    if let (Some(Load::Adaptive(a)), None) = (&load, &monitor)
        && (a.limits.cpu_percent.is_some() || a.limits.memory_percent.is_some())
    {
        ctx.out.error(
            &key(&config_path, "adaptive"),
            "adaptive `cpu`/`memory` limits need `config.monitor` to sample the server",
            Some("add `monitor: {process: NAME}` or drop the cpu/memory limits".to_owned()),
        );
    }
    let templates = ctx.templates.finish();
    if !out.problems.is_empty() {
        return None;
    }
    Some(Plan {
        source: source.to_path_buf(),
        name: source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plan")
            .to_owned(),
        target: target?,
        protocol: protocol?,
        tls: tls?,
        websocket: websocket?,
        http,
        messages: messages?,
        load: load?,
        payloads,
        variables,
        defaults,
        source_addresses: source_addresses?,
        handlers,
        ensure: ensure?,
        monitor,
        report,
        metrics,
        scenarios,
        setup,
        templates,
        as_written: Secrets::of(original).redact_tree(original),
        source_text: None,
    })
}

/// The keys of the map at `path` in the tree as written.
fn names_in(value: &Value, path: &[&str]) -> BTreeSet<String> {
    let mut node = value;
    for k in path {
        match node.get(k) {
            Some(n) => node = n,
            None => return BTreeSet::new(),
        }
    }
    node.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
