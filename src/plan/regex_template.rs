//! How templates insert values: booleans, lists and maps as JSON text (`true`, not minijinja's
//! `True`) in every template; inside matchers the `regex_escape` and `raw` filters, the
//! auto-escape that inserts every `{{ ... }}` of a `match`/`on` regex escaped (so
//! `^MSG {{ room }}` matches the room's name literally, dots and all), and the placeholder
//! text a templated matcher is checked with at load time, before any value exists.
//!
//! It does not render or compile anything at run time: the engine renders a matcher's template
//! when the step runs and caches what it compiled (`engine::vuser::matchers`).

use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, Output, State, escape_formatter};

/// Appended to the name of every template that is a regex, which is how the environment
/// knows to escape the values inserted into it.
pub const REGEX_TEMPLATE_SUFFIX: &str = " (regex)";

/// The auto-escape mode of regex templates.
const REGEX_ESCAPE: &str = "regex";

/// What stands for a `{{ ... }}` when a templated regex is checked at load: any literal does,
/// since values are inserted escaped.
const PLACEHOLDER: &str = "x";

/// Whether `source` has template syntax (a literal otherwise).
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// Installs the filters and the regex auto-escape on `env`.
pub fn install(env: &mut Environment<'_>) {
    env.add_filter("regex_escape", |text: String| regex::escape(&text));
    // `| raw` inserts a value as regex syntax; elsewhere it changes nothing.
    env.add_filter("raw", |value: Value| -> Value {
        Value::from_safe_string(text_of(&value))
    });
    env.set_auto_escape_callback(|name| {
        if name.ends_with(REGEX_TEMPLATE_SUFFIX) {
            AutoEscape::Custom(REGEX_ESCAPE.into())
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(format_value);
}

/// `{{ value }}` in a regex template: escaped unless marked safe (`| raw`, `| safe`).
fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match state.auto_escape() {
        AutoEscape::Custom(mode) if mode == REGEX_ESCAPE => if value.is_safe() {
            out.write_str(&value.to_string())
        } else if value.is_undefined() {
            Ok(())
        } else {
            out.write_str(&regex::escape(&text_of(value)))
        }
        .map_err(Error::from),
        _ if json_kind(value) => out.write_str(&text_of(value)).map_err(Error::from),
        _ => escape_formatter(out, state, value),
    }
}

/// Booleans, lists and maps, which minijinja would write Python's way.
fn json_kind(value: &Value) -> bool {
    !value.is_safe()
        && matches!(
            value.kind(),
            ValueKind::Bool | ValueKind::Seq | ValueKind::Map
        )
}

/// A value as a template inserts it: booleans, lists and maps as JSON text (`true`,
/// `[1, 2]`, `{"a": true}`) rather than as minijinja spells them (`True`, `{"a": True}`), so
/// a captured value can be sent back in a JSON body and compared with what a server sent;
/// anything else as minijinja writes it.
pub fn text_of(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bool => (if value.is_true() { "true" } else { "false" }).to_owned(),
        ValueKind::Seq | ValueKind::Map => {
            // A value serde cannot write (an object without a map form): minijinja's text.
            serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
        }
        _ => value.to_string(),
    }
}

/// `source` with every `{{ ... }}` replaced by a placeholder literal and every `{% ... %}` and
/// `{# ... #}` removed: the regex a templated `match` is checked with.
pub fn placeholder(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let (before, tail) = rest.split_at(start);
        out.push_str(before);
        let close = match tail.get(..2) {
            Some("{{") => Some(("}}", PLACEHOLDER)),
            Some("{%") => Some(("%}", "")),
            Some("{#") => Some(("#}", "")),
            _ => None,
        };
        match close.and_then(|(end, with)| tail.get(2..)?.find(end).map(|at| (at + 4, with))) {
            Some((consumed, with)) => {
                out.push_str(with);
                rest = tail.get(consumed..).unwrap_or_default();
            }
            None => {
                out.push('{');
                rest = tail.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(name: &str, source: &str, ctx: Value) -> String {
        let mut env = Environment::new();
        install(&mut env);
        env.add_template_owned(name.to_owned(), source.to_owned())
            .expect("compiles");
        env.get_template(name)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn values_in_a_regex_are_escaped_unless_raw() {
        let ctx = minijinja::context! { room => "a.b(c)", alt => "x|y" };
        let name = format!("m{REGEX_TEMPLATE_SUFFIX}");
        assert_eq!(
            render(&name, "^MSG {{ room }} ({{ alt | raw }})$", ctx.clone()),
            r"^MSG a\.b\(c\) (x|y)$"
        );
        // Other templates insert values as they are.
        assert_eq!(render("send", "MSG {{ room }}", ctx.clone()), "MSG a.b(c)");
        assert_eq!(
            render("send", "{{ room | regex_escape }}", ctx),
            r"a\.b\(c\)"
        );
    }

    #[test]
    fn booleans_lists_and_maps_render_as_json_text() {
        let doc = serde_json::json!({"ok": true, "tags": ["a", "b\"c"], "n": 2, "off": false});
        let ctx =
            minijinja::context! { doc => Value::from(minijinja::value::Serde(&doc)), flag => true };
        assert_eq!(
            render(
                "send",
                "{{ flag }} {{ doc.off }} {{ doc.tags }} {{ doc.n }}",
                ctx.clone()
            ),
            r#"true false ["a","b\"c"] 2"#
        );
        let body = render("send", "{{ doc }}", ctx.clone());
        let back: serde_json::Value = serde_json::from_str(&body).expect("JSON text");
        assert_eq!(back, doc);
        assert_eq!(
            render("send", "{{ 1 == 1 }}|{{ flag | raw }}", ctx.clone()),
            "true|true"
        );
        let name = format!("m{REGEX_TEMPLATE_SUFFIX}");
        assert_eq!(
            render(&name, "^{{ flag }} {{ [1, 2] }}$", ctx),
            r"^true \[1,2\]$"
        );
    }

    #[test]
    fn placeholder_replaces_expressions_and_drops_blocks() {
        assert_eq!(
            placeholder("^MSG {{ room }} (?P<t>.+)$"),
            "^MSG x (?P<t>.+)$"
        );
        assert_eq!(placeholder("a{% if x %}b{% endif %}{# c #}"), "ab");
        assert_eq!(placeholder(r"^\d{2,3} {{x}}"), r"^\d{2,3} x");
        assert_eq!(placeholder("open {{ never closed"), "open {{ never closed");
    }
}
