//! Compiling every template of the plan into one minijinja environment, and checking that each
//! names only variables and functions that can exist where it is used.

use std::collections::BTreeSet;

use minijinja::Environment;

use super::super::artillery::{self, BUILTIN_HELP};
use super::super::functions::{FUNCTION_NAMES, register_functions};
use super::super::problem::{Collector, Seg, path_string, suggest};
use super::super::regex_template::{REGEX_TEMPLATE_SUFFIX, is_template};
use super::super::resolved::{TemplateId, Templates, Text};

/// Names every template may use besides plan variables and payload fields. `loop` is not one:
/// it exists only inside a `loop` step, whose validation adds it to the local names.
const CONTEXT_NAMES: &[&str] = &["vu", "env"];

/// Tags that load another template: a plan's templates are self-contained.
const LOADING_TAGS: &[&str] = &["include", "import", "from", "extends"];

pub(crate) struct TemplateBuilder {
    env: Environment<'static>,
    /// Names valid in every template: variables, payload fields, context, functions, builtins.
    globals: BTreeSet<String>,
}

impl TemplateBuilder {
    pub fn new(plan_names: impl IntoIterator<Item = String>) -> Self {
        let mut env = Environment::new();
        register_functions(&mut env);
        super::super::regex_template::install(&mut env);
        let mut globals: BTreeSet<String> = plan_names.into_iter().collect();
        globals.extend(CONTEXT_NAMES.iter().map(|s| s.to_string()));
        globals.extend(FUNCTION_NAMES.iter().map(|s| s.to_string()));
        globals.extend(env.globals().map(|(name, _)| name.to_owned()));
        TemplateBuilder { env, globals }
    }

    /// Compiles `source` found at `path`; `local` are extra names valid only there (captures,
    /// `set` variables, `with` keys, handler groups). Text without template syntax stays literal.
    pub fn text(
        &mut self,
        out: &mut Collector<'_>,
        path: &[Seg],
        source: &str,
        local: &BTreeSet<String>,
    ) -> Option<Text> {
        self.compile(out, path, source, local, "", 0)
    }

    /// Compiles the condition `expression` (of `if` or `while`) as a template that renders
    /// `true` exactly when it holds.
    pub fn condition(
        &mut self,
        out: &mut Collector<'_>,
        path: &[Seg],
        expression: &str,
        local: &BTreeSet<String>,
    ) -> Option<Text> {
        const LEAD: &str = "{% if ";
        let source = format!("{LEAD}{expression} %}}true{{% endif %}}");
        self.compile(out, path, &source, local, "", LEAD.len())
    }

    /// Like [`Self::text`] for the text of a regex: values are inserted escaped.
    pub fn regex_text(
        &mut self,
        out: &mut Collector<'_>,
        path: &[Seg],
        source: &str,
        local: &BTreeSet<String>,
    ) -> Option<Text> {
        self.compile(out, path, source, local, REGEX_TEMPLATE_SUFFIX, 0)
    }

    fn compile(
        &mut self,
        out: &mut Collector<'_>,
        path: &[Seg],
        source: &str,
        local: &BTreeSet<String>,
        name_suffix: &str,
        lead: usize,
    ) -> Option<Text> {
        if !is_template(source) {
            return Some(Text::Literal(source.to_owned()));
        }
        let name = path_string(&out.remap.to_original(path)) + name_suffix;
        let rewritten = match artillery::rewrite(source) {
            Ok(rewritten) => rewritten,
            Err(unknown) => {
                let mut message = format!("unknown Artillery built-in `${}`", unknown.name);
                if let Some(s) = suggest(&unknown.name, artillery::builtin_names()) {
                    message.push_str(&format!(", did you mean `${s}`?"));
                }
                let offset = unknown.offset_chars.saturating_sub(lead);
                let help = Some(BUILTIN_HELP.to_owned());
                if source.contains('\n') {
                    out.error(path, message, help);
                } else {
                    out.error_inside(path, offset, message, help);
                }
                return None;
            }
        };
        let compiled = rewritten.as_ref().map_or(source, |r| r.text.as_str());
        if let Err(err) = self
            .env
            .add_template_owned(name.clone(), compiled.to_owned())
        {
            let detail = err
                .detail()
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string());
            // Positions are in the compiled text; report them in the text as written.
            let offset = err
                .range()
                .map(|r| {
                    rewritten
                        .as_ref()
                        .map_or(r.start, |rw| rw.source_offset(r.start))
                })
                .and_then(|start| source.get(..start))
                .map(|s| s.chars().count().saturating_sub(lead));
            let message = format!("template does not compile: {detail}");
            let help =
                Some("templates are minijinja: `{{ name }}`, `{{ random_int(1, 9) }}`".to_owned());
            match offset {
                Some(offset) if !source.contains('\n') => {
                    out.error_inside(path, offset, message, help)
                }
                _ => out.error(path, message, help),
            }
            return None;
        }
        let template = self.env.get_template(&name).ok()?;
        let mut ok = true;
        if let Some(tag) = loading_tag(source) {
            ok = false;
            out.error(
                path,
                format!(
                    "`{{% {tag} %}}` cannot be used: plan templates do not load other templates"
                ),
                Some(
                    "write the text in place, or define it once as a variable or a message"
                        .to_owned(),
                ),
            );
        }
        let mut unknown: Vec<String> = template.undeclared_variables(false).into_iter().collect();
        unknown.sort();
        for var in unknown {
            if self.globals.contains(&var) || local.contains(&var) {
                continue;
            }
            ok = false;
            if var == "loop" {
                out.error(
                    path,
                    "`loop` (loop.index, loop.value) exists only inside a `loop` step",
                    Some(
                        "move the step into a `loop`, or use a variable set with `set`".to_owned(),
                    ),
                );
                continue;
            }
            let known: Vec<&str> = self
                .globals
                .iter()
                .chain(local.iter())
                .map(String::as_str)
                .collect();
            let mut message = format!("unknown template name `{var}`");
            if let Some(s) = suggest(&var, known.iter().copied()) {
                message.push_str(&format!(", did you mean `{s}`?"));
            }
            out.error(
                path,
                message,
                Some(format!(
                    "define it under `config.variables`, as a payload field, a capture or a `set`; \
                     functions are {}",
                    FUNCTION_NAMES.join(", ")
                )),
            );
        }
        ok.then_some(Text::Template(TemplateId(name)))
    }

    pub fn finish(self) -> Templates {
        Templates { env: self.env }
    }
}

/// The first tag of `source` that loads another template (`{% include "x" %}`), if any.
fn loading_tag(source: &str) -> Option<&'static str> {
    source.match_indices("{%").find_map(|(at, _)| {
        let inside = source
            .get(at + 2..)?
            .trim_start_matches(['-', '+'])
            .trim_start();
        LOADING_TAGS.iter().copied().find(|tag| {
            inside
                .strip_prefix(tag)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_whitespace()))
        })
    })
}
