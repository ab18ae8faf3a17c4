//! Templates that are only text and insertions of names (`PING {{ vu.id }}`, `SAY {{ room }}
//! {{ text }}`), rendered without minijinja's machine: the names are looked up in the vuser's
//! scope and their values written straight into the send buffer. Through minijinja such a
//! render costs ~4 300 instructions (the template lookup, a context object, the VM's state,
//! formatting); this is a few hundred.
//!
//! It only ever takes the case where the result is certain to be minijinja's own: text
//! without block or comment tags, `{{ name }}` and `{{ name.attr.attr }}` insertions without
//! filters, calls or whitespace control, and values that are strings or integers. Anything
//! else — another kind of value, a name the scope lacks (minijinja reports it, or finds a
//! global), a trailing newline (minijinja drops one) — makes the caller render through
//! minijinja, which stays the one definition of what a template means.

use minijinja::value::Value;

use crate::plan::is_identifier;

/// One piece of a simple template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Text(String),
    /// `{{ name }}` or `{{ name.attr... }}`.
    Insert {
        name: String,
        attrs: Vec<String>,
    },
}

/// The parts of `source` when it is a simple template, `None` otherwise.
pub(super) fn parse(source: &str) -> Option<Vec<Part>> {
    // minijinja drops one trailing newline; block and comment tags are not simple.
    if source.ends_with('\n') || source.contains("{%") || source.contains("{#") {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let (text, after) = rest.split_at(open);
        if !text.is_empty() {
            parts.push(Part::Text(text.to_owned()));
        }
        let after = after.get(2..)?;
        let close = after.find("}}")?;
        let (inner, tail) = after.split_at(close);
        parts.push(insertion(inner)?);
        rest = tail.get(2..)?;
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Some(parts)
}

/// `name(.attr)*` between `{{` and `}}`, with spaces around it and nothing else.
fn insertion(inner: &str) -> Option<Part> {
    // Whitespace control (`{{-`, `-}}`, `+`) changes the text around: not simple.
    if inner.starts_with(['-', '+']) || inner.ends_with(['-', '+']) {
        return None;
    }
    let mut names = inner.trim().split('.');
    let name = names.next().filter(|name| is_variable(name))?;
    let attrs = names
        .map(|attr| is_identifier(attr).then(|| attr.to_owned()))
        .collect::<Option<Vec<_>>>()?;
    Some(Part::Insert {
        name: name.to_owned(),
        attrs,
    })
}

/// An identifier that names a variable, not one of minijinja's literal words.
fn is_variable(word: &str) -> bool {
    is_identifier(word) && !matches!(word, "true" | "false" | "none" | "True" | "False" | "None")
}

/// Renders `parts`, appending to `out`, with `lookup` finding a name in the vuser's scope.
/// `false` when a value is not one this path writes (the caller then truncates `out` and
/// renders through minijinja).
pub(super) fn render(
    parts: &[Part],
    lookup: impl Fn(&str) -> Option<Value>,
    out: &mut Vec<u8>,
) -> bool {
    for part in parts {
        match part {
            Part::Text(text) => out.extend_from_slice(text.as_bytes()),
            Part::Insert { name, attrs } => {
                let Some(mut value) = lookup(name) else {
                    return false;
                };
                for attr in attrs {
                    match value.get_attr(attr) {
                        Ok(inner) if !inner.is_undefined() => value = inner,
                        _ => return false,
                    }
                }
                if !write_plain(&value, out) {
                    return false;
                }
            }
        }
    }
    true
}

/// Writes a string or an integer as minijinja inserts it (both print as themselves);
/// `false` for any other value.
fn write_plain(value: &Value, out: &mut Vec<u8>) -> bool {
    if let Some(text) = value.as_str() {
        // A safe string is marked for escaping rules: minijinja's to decide.
        if value.is_safe() {
            return false;
        }
        out.extend_from_slice(text.as_bytes());
        return true;
    }
    if value.is_integer()
        && let Some(n) = value.as_i64()
    {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(name: &str, attrs: &[&str]) -> Part {
        Part::Insert {
            name: name.to_owned(),
            attrs: attrs.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn text_and_name_insertions_are_simple() {
        assert_eq!(
            parse("PING {{ vu.id }} to {{room}}!"),
            Some(vec![
                Part::Text("PING ".into()),
                insert("vu", &["id"]),
                Part::Text(" to ".into()),
                insert("room", &[]),
                Part::Text("!".into()),
            ])
        );
        assert_eq!(
            parse("plain }} text"),
            Some(vec![Part::Text("plain }} text".into())])
        );
        assert_eq!(parse("{{  a_1 . b }}"), None, "spaces inside a path");
    }

    #[test]
    fn anything_more_is_left_to_minijinja() {
        for source in [
            "{{ name | upper }}",
            "{{ stamp() }}",
            "{{ a ~ b }}",
            "{{ a[0] }}",
            "{{- name }}",
            "{{ name +}}",
            "{% if a %}x{% endif %}",
            "{# note #}x",
            "line\n",
            "{{ none }}",
            "{{ True }}",
            "{{ 1 }}",
            "{{ name",
            "{{ é }}",
        ] {
            assert_eq!(parse(source), None, "{source}");
        }
    }

    #[test]
    fn only_strings_and_integers_are_written_here() {
        let mut out = Vec::new();
        let values = |name: &str| match name {
            "s" => Some(Value::from("hé")),
            "n" => Some(Value::from(-42)),
            "f" => Some(Value::from(1.5)),
            "b" => Some(Value::from(true)),
            _ => None,
        };
        let parts = parse("{{ s }}={{ n }}").unwrap_or_default();
        assert!(render(&parts, values, &mut out));
        assert_eq!(out, "hé=-42".as_bytes());
        for source in ["{{ f }}", "{{ b }}", "{{ missing }}", "{{ s.attr }}"] {
            let parts = parse(source).unwrap_or_default();
            assert!(!render(&parts, values, &mut Vec::new()), "{source}");
        }
    }
}
