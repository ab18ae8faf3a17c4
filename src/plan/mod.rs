//! Test plans: the serde+schemars model as written (`RawPlan`), loading YAML/TOML (the only
//! place that names serde_yaml or toml), and validation into a [`Plan`] that can only hold valid
//! states, reporting every problem with its file, line:column and path inside the plan.
//!
//! It does not execute anything: the engine maps a `Plan` onto codecs, schedules and vusers.
//!
//! Loading is a pipeline: text → (value tree, position index) in `source` → overrides
//! (`-e`, `-v`, `--target`) → `RawPlan` with every structural problem collected in
//! `structure` → `Plan` with every semantic problem collected in `validate`.

mod duration;
mod functions;
mod problem;
mod resolved;
mod source;
mod structure;
mod threshold;
mod validate;

pub mod presets;
pub mod raw;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use duration::{DurationError, parse_duration};
pub use functions::{FUNCTION_NAMES, register_functions};
pub use problem::{Problem, Problems, suggest};
pub use raw::RawPlan;
pub use resolved::*;
pub use source::Format;
pub use threshold::{ERROR_KINDS, ExprError, KnownMetrics, parse_expression};

use problem::{Collector, Pos, PositionIndex, Seg};

/// Changes applied to a plan as it is loaded (the `run` flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// `-e NAME`: deep-merge `config.environments.NAME` over `config`.
    pub environment: Option<String>,
    /// `-v NAME=VALUE`: set `config.variables.NAME` (a string) after the environment.
    pub variables: Vec<(String, String)>,
    /// `--target`: replace `config.target`.
    pub target: Option<String>,
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
    let mut out = Collector::new(file, text, &index);
    apply_options(&mut value, options, &mut out);
    if out.problems.is_empty()
        && let Some((raw, remap)) = structure::deserialize(&value, &mut out)
    {
        out.remap = remap;
        if let Some(plan) = validate::validate(&raw, &value, path, &mut out)
            && out.problems.is_empty()
        {
            return Ok(plan);
        }
    }
    if out.problems.is_empty() {
        out.at(
            Pos { line: 1, column: 1 },
            &[],
            "the plan is not valid",
            None,
        );
    }
    Err(Problems {
        problems: out.finish(),
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
                vars.insert(k.clone(), Value::String(v.clone()));
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
