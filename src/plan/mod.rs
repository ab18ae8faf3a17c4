//! Test plans: the serde+schemars model as written (`RawPlan`), loading YAML/TOML (the only
//! place that names serde_yaml or toml), and validation into a [`Plan`] that can only hold valid
//! states, reporting every problem with its file, line:column and path inside the plan.
//!
//! It does not execute anything: the engine maps a `Plan` onto codecs, schedules and vusers.
//!
//! Loading is a pipeline: text → (value tree, position index) in `source` → overrides
//! (`-e`, `-v`, `--target`) → `RawPlan` with every structural problem collected in
//! `structure` → `Plan` with every semantic problem collected in `validate`.

mod artillery;
mod bounds;
mod duration;
mod endpoint;
mod functions;
mod http;
mod problem;
mod regex_template;
mod resolved;
mod rows;
mod source;
mod structure;
mod threshold;
mod validate;

pub mod presets;
pub mod raw;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use duration::{DurationError, parse_duration};
pub use endpoint::{Endpoint, EndpointError, Scheme, listen_address};
pub(crate) use functions::is_identifier;
pub use functions::{FUNCTION_NAMES, register_functions, with_rng};
pub use http::*;
pub use problem::{Problem, Problems, suggest};
pub use raw::RawPlan;
pub use regex_template::REGEX_TEMPLATE_SUFFIX;
pub use resolved::*;
pub use rows::Rows;
pub use source::Format;
pub use threshold::{ExprError, KnownMetrics, parse_expression};

use problem::{Collector, PositionIndex, Seg};

/// Changes applied to a plan as it is loaded (the `run` flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// `-e NAME`: deep-merge `config.environments.NAME` over `config`.
    pub environment: Option<String>,
    /// `-v NAME=VALUE`: set `config.variables.NAME` after the environment; VALUE is read as
    /// YAML (`5` is a number, `[a, b]` a list), text that is not stays a string.
    pub variables: Vec<(String, String)>,
    /// `--target`: replace `config.target`.
    pub target: Option<String>,
}

impl LoadOptions {
    /// Parses one `-v NAME=VALUE` argument.
    pub fn parse_variable(arg: &str) -> Result<(String, String), String> {
        match arg.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_owned(), value.to_owned()))
            }
            _ => Err(format!("`{arg}` is not NAME=VALUE")),
        }
    }
}

/// Loads and validates the plan at `path` (`.toml` is TOML, anything else YAML).
pub fn load(path: &Path) -> Result<Plan, Problems> {
    load_with(path, &LoadOptions::default())
}

/// Loads and validates the plan at `path`, applying `options` first.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Plan, Problems> {
    let text = std::fs::read_to_string(path).map_err(|err| Problems {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            path: String::new(),
            message: format!("cannot read the plan: {err}"),
            help: None,
            source_line: None,
        }],
    })?;
    load_str_with(&text, path, Format::from_path(path), options)
}

/// Validates plan `text`; `path` names the file in messages and anchors relative payload paths.
pub fn load_str(text: &str, path: &Path, format: Format) -> Result<Plan, Problems> {
    load_str_with(text, path, format, &LoadOptions::default())
}

/// [`load_str`] with overrides.
pub fn load_str_with(
    text: &str,
    path: &Path,
    format: Format,
    options: &LoadOptions,
) -> Result<Plan, Problems> {
    let file: PathBuf = path.to_path_buf();
    let (mut value, index) = match source::parse(text, format) {
        Ok(parsed) => parsed,
        Err(err) => {
            let empty = PositionIndex::default();
            let mut out = Collector::new(file, text, &empty);
            out.at(err.pos, &[], err.message, None);
            return Err(Problems {
                problems: out.finish(),
            });
        }
    };
    let mut out = Collector::new(file.clone(), text, &index);
    // The values as written, before `-e`/`-v` replace some: secret either way.
    let as_parsed = value.clone();
    apply_options(&mut value, options, &mut out);
    let mut plan = None;
    if out.problems.is_empty() {
        plan = validate_value(&value, path, &mut out);
    }
    let mut problems = out.finish();
    // `check` (no environment chosen) also validates the plan under every environment, and
    // reports what each environment itself gets wrong.
    if options.environment.is_none() {
        for (name, overlay) in environments(&value) {
            let mut env_out = Collector::new(file.clone(), text, &index);
            env_out.environment = Some((name.clone(), overlay));
            let mut merged = value.clone();
            let env_options = LoadOptions {
                environment: Some(name),
                ..options.clone()
            };
            apply_options(&mut merged, &env_options, &mut env_out);
            validate_value(&merged, path, &mut env_out);
            problems.extend(env_out.finish());
        }
        problems.sort_by_key(|p| (p.line, p.column));
        problems.dedup();
    }
    match plan {
        Some(mut plan) if problems.is_empty() => {
            let secrets = validate::Secrets::of_all(&[&as_parsed, &value]);
            plan.as_written = secrets.redact_tree(&plan.as_written);
            plan.source_text = Some(SourceText {
                format,
                text: secrets.redact_text(text, format),
            });
            Ok(plan)
        }
        _ if problems.is_empty() => Err(Problems {
            problems: vec![Problem {
                file,
                line: 1,
                column: 1,
                path: String::new(),
                message: "the plan is not valid".to_owned(),
                help: None,
                source_line: None,
            }],
        }),
        _ => Err(Problems { problems }),
    }
}

/// Structure then meaning; `None` when anything is wrong.
fn validate_value(value: &Value, path: &Path, out: &mut Collector<'_>) -> Option<Plan> {
    let (raw, remap) = structure::deserialize(value, out)?;
    out.remap = remap;
    let plan = validate::validate(&raw, value, path, out)?;
    out.problems.is_empty().then_some(plan)
}

/// `config.environments` as written: (name, overlay) for each map-valued entry.
fn environments(value: &Value) -> Vec<(String, Value)> {
    value
        .pointer("/config/environments")
        .and_then(Value::as_object)
        .map(|envs| {
            envs.iter()
                .filter(|(_, v)| v.is_object())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses plan text into the plain value tree, the document the JSON Schema describes.
pub fn parse_value(text: &str, path: &Path, format: Format) -> Result<Value, Problems> {
    source::parse(text, format)
        .map(|(value, _)| value)
        .map_err(|err| {
            let empty = PositionIndex::default();
            let mut out = Collector::new(path.to_path_buf(), text, &empty);
            out.at(err.pos, &[], err.message, None);
            Problems {
                problems: out.finish(),
            }
        })
}

/// Parses plan text into the model as written, without validating meaning. For tools that
/// want to inspect or rewrite a plan.
pub fn parse_raw(text: &str, path: &Path, format: Format) -> Result<RawPlan, Problems> {
    let (value, index) = source::parse(text, format).map_err(|err| {
        let empty = PositionIndex::default();
        let mut out = Collector::new(path.to_path_buf(), text, &empty);
        out.at(err.pos, &[], err.message, None);
        Problems {
            problems: out.finish(),
        }
    })?;
    let mut out = Collector::new(path.to_path_buf(), text, &index);
    match structure::deserialize(&value, &mut out) {
        Some((raw, _)) if out.problems.is_empty() => Ok(raw),
        _ => Err(Problems {
            problems: out.finish(),
        }),
    }
}

fn apply_options(value: &mut Value, options: &LoadOptions, out: &mut Collector<'_>) {
    let Some(config) = value.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(env) = &options.environment {
        let overlay = config.get("environments").and_then(|e| e.get(env)).cloned();
        match overlay {
            Some(Value::Object(overlay)) => {
                for (k, v) in overlay {
                    match config.get_mut(&k) {
                        Some(existing) => deep_merge(existing, v),
                        None => {
                            config.insert(k, v);
                        }
                    }
                }
            }
            _ => {
                let names: Vec<String> = config
                    .get("environments")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                let mut message = format!("the plan has no environment `{env}`");
                if let Some(s) = suggest(env, names.iter().map(String::as_str)) {
                    message.push_str(&format!(", did you mean `{s}`?"));
                }
                let help = if names.is_empty() {
                    "define it under `config.environments`".to_owned()
                } else {
                    format!("environments: {}", names.join(", "))
                };
                out.error(&[Seg::Key("config".into())], message, Some(help));
            }
        }
    }
    if let Some(target) = &options.target {
        config.insert("target".to_owned(), Value::String(target.clone()));
    }
    if !options.variables.is_empty() {
        let vars = config
            .entry("variables")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(vars) = vars.as_object_mut() {
            for (k, v) in &options.variables {
                vars.insert(k.clone(), source::yaml_value(v));
            }
        }
    }
}

fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}
