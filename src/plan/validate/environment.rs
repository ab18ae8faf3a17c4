//! A target templated from the process environment, as Artillery allows:
//! `target: "{{ $processEnvironment.BACKEND_URL }}"` (or chatload's `{{ env.BACKEND_URL }}`).
//! Rendered once, at load, so `check` and `run` see the URL itself and an unset variable is a
//! problem with a position rather than an empty target. Owns nothing else: the rendered text is
//! checked as any written target is.

use minijinja::{Environment, UndefinedBehavior, context};

use super::super::artillery::{self, BUILTIN_HELP};
use super::super::functions::{FUNCTION_NAMES, register_functions};
use super::super::problem::Seg;
use super::super::regex_template::is_template;
use super::Ctx;

/// The target as it applies: `written` itself, or rendered from the environment when it is a
/// template. `None` (with a problem at `at`) when it cannot be rendered.
pub(crate) fn render_target(ctx: &mut Ctx, at: &[Seg], written: &str) -> Option<String> {
    if !is_template(written) {
        return Some(written.to_owned());
    }
    let source = match artillery::rewrite(written) {
        Ok(rewritten) => rewritten.map_or_else(|| written.to_owned(), |r| r.text),
        Err(unknown) => {
            ctx.out.error(
                at,
                format!(
                    "unknown Artillery built-in `${}` in the target",
                    unknown.name
                ),
                Some(BUILTIN_HELP.to_owned()),
            );
            return None;
        }
    };
    let mut env = Environment::new();
    register_functions(&mut env);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let template = match env.template_from_str(&source) {
        Ok(template) => template,
        Err(err) => {
            let detail = err.detail().map_or_else(|| err.to_string(), str::to_owned);
            ctx.out.error(
                at,
                format!("the target template does not compile: {detail}"),
                Some("e.g. target: \"{{ $processEnvironment.BACKEND_URL }}\"".to_owned()),
            );
            return None;
        }
    };
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    for name in names {
        match name.strip_prefix("env.") {
            Some(variable) if std::env::var_os(variable).is_some() => {}
            // `env["NAME"]`: strict rendering reports a missing one below.
            None if name == "env" || FUNCTION_NAMES.contains(&name.as_str()) => {}
            Some(variable) => {
                ctx.out.error(
                    at,
                    format!("environment variable `{variable}` is not set (the target is `{written}`)"),
                    Some(format!(
                        "set it before the run, e.g. `{variable}=http://127.0.0.1:8080 chatload run ...`, \
                         or give `--target`"
                    )),
                );
                return None;
            }
            None => {
                ctx.out.error(
                    at,
                    format!("the target can only use the environment, not `{name}`"),
                    Some(
                        "write `{{ $processEnvironment.NAME }}` or `{{ env.NAME }}`; plan \
                         variables and payload fields are per vuser, the target is not"
                            .to_owned(),
                    ),
                );
                return None;
            }
        }
    }
    let vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    match template.render(context! { env => vars }) {
        Ok(rendered) if !rendered.trim().is_empty() => Some(rendered.trim().to_owned()),
        Ok(_) => {
            ctx.out.error(
                at,
                format!("the target `{written}` renders empty"),
                Some("give the environment variable a URL, e.g. http://127.0.0.1:8080".to_owned()),
            );
            None
        }
        Err(err) => {
            let detail = err.detail().map_or_else(|| err.to_string(), str::to_owned);
            ctx.out
                .error(at, format!("cannot render the target: {detail}"), None);
            None
        }
    }
}
