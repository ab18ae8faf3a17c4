//! Secret redaction for the plan copies a result keeps (`Plan::as_written` and the file's
//! text): what counts as secret and how it is hidden. It does not decide where those copies
//! go (`report`).
//!
//! Secret are: the values of keys whose names look secret ([`is_secret_name`]: `*password*`,
//! `*secret*`, `*token*`, `*_key`, `authorization`, ... any case), the values of variables
//! listed in `config.secrets` (also under an environment's `variables`, so `-e` values are
//! covered), every other occurrence of those values anywhere in the plan (a literal password
//! pasted into a `send`), and, inside any string, secrets recognised by their shape: the
//! value after a secret-looking name or word (`PASS hunter2`, `access_token=abc`,
//! `"token": "abc"`, `Authorization: Bearer abc`), the word after `LOGIN user` or
//! `AUTH user`, and the password of a URL (`ws://alice:hunter2@host`).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::plan::Format;

const MASK: &str = "***";

/// Parts of a key name that make its value secret (compared without case, `_` or `-`).
const SECRET_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "authorization",
    "cookie",
];

/// Whole key names that are secret (same comparison).
const SECRET_NAMES: &[&str] = &["pass", "pwd", "auth"];

/// Shorter values are not searched for elsewhere in the plan: a secret `1` would mask every
/// digit. They are still masked under their own key.
const MIN_SEARCHED_LEN: usize = 4;

/// Whether a key's value is secret by its name alone.
pub fn is_secret_name(name: &str) -> bool {
    let squashed: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let lower = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|part| squashed.contains(part))
        || SECRET_NAMES.contains(&squashed.as_str())
        || lower.ends_with("_key")
        || lower.ends_with("-key")
        // camelCase: `adminKey`, `privateKey`
        || (name.ends_with("Key") && name.len() > 3)
}

/// A value in free text: up to a space, a quote, a separator or a template's brace; it does
/// not start with `=` or `:` (`password = x` is a name, its separator, then the value).
const VALUE: &str = r#"[^\s"'\\&,;{}\[\]=:][^\s"'\\&,;{}\[\]]*"#;

/// How a secret shows in free text (a `send`, any string): `value` is masked, the rest kept;
/// `name`, when captured, must look secret ([`is_secret_name`]).
static INLINE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // `name=value`, `name: value`, `"name": "value"` (also with the quotes escaped, as in
        // a YAML string), for any name that looks secret: `access_token=x`, `X-Api-Key: x`,
        // `Authorization: Bearer x` (an auth scheme stays).
        format!(
            r#"(?P<word>\b(?P<name>[A-Za-z][A-Za-z0-9_\-]*)(?:\\?["'])?[ \t]*[=:][ \t]*(?:\\?["'])?(?:(?i:bearer|basic|digest|token|negotiate)[ \t]+)?)(?P<value>{VALUE})"#
        ),
        // A secret-looking word then a space: `PASS x`, `Bearer x`, `token x`.
        format!(
            r#"(?P<word>(?i:\b(?:password|passwd|pass|pwd|secret|token|api[_-]?key|bearer)\b)[ \t]+(?:\\?["'])?)(?P<value>{VALUE})"#
        ),
        // `LOGIN user secret`, `AUTH user secret`, `AUTH PLAIN secret`: the word after the
        // user name. Capitals only, as commands are written: prose ("the login plan for
        // ...") is left alone.
        format!(
            r#"(?P<word>\b(?:LOGIN|AUTH|AUTHENTICATE)\b[ \t]+[^\s{{}}"'\\]+[ \t]+)(?P<value>{VALUE})"#
        ),
        // The password of a URL: `ws://alice:secret@host`.
        r#"(?P<word>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@"'{}]+:)(?P<value>[^\s@/"'{}]+)@"#
            .to_owned(),
    ]
    .iter()
    .filter_map(|pattern| Regex::new(pattern).ok())
    .collect()
});

/// `key: value` (YAML, block or flow) or `key = value` (TOML) on one line.
fn key_value(format: Format) -> Option<Regex> {
    let separator = match format {
        Format::Yaml => r":[ \t]+",
        Format::Toml => r"[ \t]*=[ \t]*",
    };
    // A value: a quoted string, a flow list, or a plain scalar up to `,` `}` `]` or a comment.
    Regex::new(&format!(
        r#"(?P<key>(?:^|[\s{{,.\-])["']?(?P<name>[A-Za-z0-9_\-]+)["']?{separator})(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|\[[^\]]*\]|[^\s,{{}}\[\]#][^,{{}}\]#]*)"#
    ))
    .ok()
}

/// What the plan holds that must not be shown.
#[derive(Debug, Default)]
pub struct Secrets {
    /// Variables listed in `config.secrets`.
    names: BTreeSet<String>,
    /// Values to mask wherever they appear, longest first.
    values: Vec<String>,
}

impl Secrets {
    /// Collects the secret values of `tree` (the plan as written, with `-e`/`-v` applied).
    pub fn of(tree: &Value) -> Secrets {
        Secrets::of_all(&[tree])
    }

    /// Collects the secret values of several trees: the plan as parsed and as merged with
    /// `-e`/`-v`, whose values differ.
    pub fn of_all(trees: &[&Value]) -> Secrets {
        let names = trees
            .iter()
            .filter_map(|tree| tree.pointer("/config/secrets").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let mut secrets = Secrets {
            names,
            values: Vec::new(),
        };
        let mut found = BTreeSet::new();
        for tree in trees {
            secrets.collect(tree, None, &mut found);
        }
        secrets.values = found
            .into_iter()
            .filter(|v| v.len() >= MIN_SEARCHED_LEN)
            .collect();
        secrets
            .values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets
    }

    fn is_secret(&self, parent: Option<&str>, name: &str) -> bool {
        // `config.secrets` lists names, not secrets.
        if parent == Some("config") && name == "secrets" {
            return false;
        }
        is_secret_name(name) || (parent == Some("variables") && self.names.contains(name))
    }

    fn collect(&self, node: &Value, parent: Option<&str>, found: &mut BTreeSet<String>) {
        match node {
            Value::Object(map) => {
                for (name, value) in map {
                    if self.is_secret(parent, name) && !value.is_object() {
                        scalars(value, found);
                    } else {
                        self.collect(value, Some(name), found);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.collect(item, parent, found);
                }
            }
            _ => {}
        }
    }

    /// `tree` with every secret masked.
    pub fn redact_tree(&self, tree: &Value) -> Value {
        self.redact_node(tree, None)
    }

    fn redact_node(&self, node: &Value, parent: Option<&str>) -> Value {
        match node {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(name, value)| {
                        let value = if self.is_secret(parent, name) && !value.is_object() {
                            Value::String(MASK.to_owned())
                        } else {
                            self.redact_node(value, Some(name))
                        };
                        (name.clone(), value)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.redact_node(item, parent))
                    .collect(),
            ),
            Value::String(text) => Value::String(self.redact_free_text(text)),
            other => other.clone(),
        }
    }

    /// Masks known secret values and the word after a secret-looking word.
    fn redact_free_text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        for rule in INLINE.iter() {
            out = mask_matches(rule, &out);
        }
        out
    }

    /// The plan's text with every secret masked, line by line: the value of a secret key
    /// (`key: value` in YAML, block or flow style; `key = value` in TOML), then secret values
    /// and secret-looking words anywhere. Nested maps under a secret key are kept (their own
    /// secret keys are masked). The line count never changes.
    pub fn redact_text(&self, text: &str, format: Format) -> String {
        let Some(re) = key_value(format) else {
            return text.to_owned();
        };
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let keyed = re.replace_all(line, |c: &regex::Captures<'_>| {
                let name = &c["name"];
                // `variables:` lines are not inspected, so listed names match anywhere.
                if !is_secret_name(name) && !self.names.contains(name) {
                    return c[0].to_owned();
                }
                let value = c.name("value").map_or("", |m| m.as_str());
                // Keep trailing spaces (and the line end) out of the replacement.
                let kept = &value[value.trim_end().len()..];
                format!("{}{MASK}{kept}", &c["key"])
            });
            out.push_str(&self.redact_free_text(&keyed));
        }
        out
    }
}

/// `text` with the `value` of every match of `rule` masked. A match whose `name` does not
/// look secret masks nothing and the search goes on from its value, which may hold a secret
/// of its own (`send: "X-Api-Key: abc"`).
fn mask_matches(rule: &Regex, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut at) = (0, 0);
    while let Some(c) = rule.captures_at(text, at) {
        let Some(value) = c.name("value") else {
            break;
        };
        let named_secret = c.name("name").is_none_or(|n| is_secret_name(n.as_str()));
        if named_secret && value.as_str() != MASK {
            out.push_str(text.get(copied..value.start()).unwrap_or_default());
            out.push_str(MASK);
            copied = value.end();
            at = value.end();
        } else {
            // The word before the value is never empty, so this moves forward.
            at = value.start();
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Every scalar under `node`, as text.
fn scalars(node: &Value, found: &mut BTreeSet<String>) {
    match node {
        Value::String(s) => {
            found.insert(s.clone());
        }
        Value::Number(n) => {
            found.insert(n.to_string());
        }
        Value::Array(items) => items.iter().for_each(|item| scalars(item, found)),
        Value::Object(map) => map.values().for_each(|v| scalars(v, found)),
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests;
