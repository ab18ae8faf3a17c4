//! Artillery's plan language where it differs from chatload's in spelling only, and where it
//! needs what chatload deliberately does not have.
//!
//! - Template built-ins written Artillery's way (`{{ $processEnvironment.NAME }}`,
//!   `{{ $randomNumber(1, 9) }}`, `{{ $uuid }}`, `{{ $loopCount }}`...) are rewritten to
//!   chatload's context names and functions before a template compiles, so they draw from the
//!   same seeded generator and read the same scope. minijinja has no `$` in names, hence a
//!   rewrite rather than more globals. Only the inside of `{{ }}` and `{% %}` is touched, never
//!   text or string literals.
//! - Keys that run JavaScript (`function`, `beforeRequest`, `afterResponse`, `processor`, the
//!   scenario hooks) have no equivalent: [`javascript_key`] names the declarative replacement
//!   for `check` to say instead of a bare "unknown key".
//!
//! It does not compile or render templates (`validate::templates`) or report problems.

/// One Artillery built-in and what it becomes.
struct Builtin {
    name: &'static str,
    chatload: &'static str,
}

/// `$name` → chatload. `$randomString` and `$uuid` get call parentheses handled in
/// [`rewrite`] (Artillery writes `$uuid` bare and allows `$randomString()` without a length).
const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "processEnvironment",
        chatload: "env",
    },
    Builtin {
        name: "env",
        chatload: "env",
    },
    Builtin {
        name: "randomNumber",
        chatload: "random_int",
    },
    Builtin {
        name: "randomString",
        chatload: "random_string",
    },
    Builtin {
        name: "uuid",
        chatload: "uuid",
    },
    Builtin {
        name: "loopCount",
        chatload: "loop.index",
    },
    Builtin {
        name: "loopElement",
        chatload: "loop.value",
    },
];

/// Length of `$randomString()` without an argument.
const DEFAULT_RANDOM_STRING_LEN: usize = 10;

/// What Artillery built-ins chatload understands, for help texts.
pub(crate) const BUILTIN_HELP: &str = "Artillery built-ins understood: $processEnvironment.NAME, \
     $env.NAME, $randomNumber(a, b), $randomString(n), $uuid, $loopCount (1-based), $loopElement";

/// A `$name` inside a template that is not a known built-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownBuiltin {
    /// The name without `$`.
    pub name: String,
    /// Characters before the `$` in the source.
    pub offset_chars: usize,
}

/// A template source with the built-ins rewritten, and where each rewrite happened so that
/// positions in it map back to the source as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub text: String,
    /// (byte offset in `text`, bytes there, byte offset in the source, bytes there).
    edits: Vec<(usize, usize, usize, usize)>,
}

impl Rewritten {
    /// The byte offset in the source of byte `at` of the rewritten text (a position inside a
    /// rewrite maps to the start of what was written there).
    pub fn source_offset(&self, at: usize) -> usize {
        let mut shift: isize = 0;
        for &(new_at, new_len, old_at, old_len) in &self.edits {
            if at < new_at {
                break;
            }
            if at < new_at + new_len {
                return old_at;
            }
            shift = (old_at + old_len) as isize - (new_at + new_len) as isize;
        }
        (at as isize + shift).max(0) as usize
    }
}

/// Rewrites Artillery's `$` built-ins inside the tags of `source`; `Ok(None)` when there are
/// none (nearly always: the common path costs one `contains`).
pub(crate) fn rewrite(source: &str) -> Result<Option<Rewritten>, UnknownBuiltin> {
    if !source.contains('$') {
        return Ok(None);
    }
    let bytes = source.as_bytes();
    let mut text = String::with_capacity(source.len() + 16);
    let mut edits = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    // Inside `{{ }}` or `{% %}`: the byte that closes it (`}` or `%`); `#` for comments.
    let mut tag: Option<u8> = None;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let byte = bytes[i];
        let next = bytes.get(i + 1).copied();
        match tag {
            None => {
                if byte == b'{' && matches!(next, Some(b'{' | b'%' | b'#')) {
                    tag = next.map(|open| if open == b'{' { b'}' } else { open });
                    i += 2;
                    continue;
                }
            }
            Some(close) => {
                if let Some(q) = quote {
                    if byte == b'\\' {
                        i += 2;
                        continue;
                    }
                    if byte == q {
                        quote = None;
                    }
                } else if byte == close && next == Some(b'}') {
                    tag = None;
                    i += 2;
                    continue;
                } else if close != b'#' && (byte == b'"' || byte == b'\'') {
                    quote = Some(byte);
                } else if close != b'#' && byte == b'$' {
                    let name_len = bytes[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                        .count();
                    let name = &source[i + 1..i + 1 + name_len];
                    let Some(builtin) = BUILTINS.iter().find(|b| b.name == name) else {
                        return Err(UnknownBuiltin {
                            name: name.to_owned(),
                            offset_chars: source[..i].chars().count(),
                        });
                    };
                    let mut end = i + 1 + name_len;
                    let rest = &source[end..];
                    let empty_call = rest
                        .trim_start()
                        .strip_prefix('(')
                        .is_some_and(|r| r.trim_start().starts_with(')'));
                    let replacement = match builtin.name {
                        "uuid" if !rest.trim_start().starts_with('(') => "uuid()".to_owned(),
                        "randomString" if empty_call => {
                            // Consume the empty `( )`.
                            let close_at = rest.find(')').map_or(0, |p| p + 1);
                            end += close_at;
                            format!("random_string({DEFAULT_RANDOM_STRING_LEN})")
                        }
                        _ => builtin.chatload.to_owned(),
                    };
                    text.push_str(&source[copied..i]);
                    edits.push((text.len(), replacement.len(), i, end - i));
                    text.push_str(&replacement);
                    copied = end;
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
    if edits.is_empty() {
        return Ok(None);
    }
    text.push_str(&source[copied..]);
    Ok(Some(Rewritten { text, edits }))
}

/// The names of the Artillery built-ins, for did-you-mean.
pub(crate) fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}

/// For a key that runs JavaScript in Artillery: what it does, and the declarative chatload
/// way to get the same result. `None` for any other key.
pub(crate) fn javascript_key(key: &str) -> Option<(String, &'static str)> {
    let replacement = match key {
        "function" => {
            "compute values with `set: {name: \"{{ template }}\"}`, read responses with \
             `capture`, check them with `expect`, branch with `if:`, generate data with template \
             functions (random_int, random_string, uuid...)"
        }
        "beforeRequest" => {
            "build the request declaratively: templates in `url`, `headers`, `qs`, `json`, \
             `form`; values computed beforehand with `set`"
        }
        "afterResponse" => {
            "read the response with `capture` (json, header, regexp) and check it with `expect` \
             (statusCode, contentType, hasHeader, hasProperty, equals, matchesRegexp)"
        }
        "processor" => {
            "move each function's work into the plan: `set` and template functions for values, \
             `capture` and `expect` for responses, `if` and `pick` for control flow"
        }
        "beforeScenario" | "afterScenario" => {
            "put those steps at the start or the end of the scenario's `flow` (`set`, a request \
             with `capture`...)"
        }
        _ => return None,
    };
    Some((
        format!(
            "`{key}` runs JavaScript in Artillery; chatload plans are declarative and run no \
             code"
        ),
        replacement,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(source: &str) -> String {
        rewrite(source)
            .expect("known built-ins")
            .map_or_else(|| source.to_owned(), |r| r.text)
    }

    #[test]
    fn builtins_become_chatload_names_inside_tags_only() {
        assert_eq!(
            rewritten("{{ $processEnvironment.URL }}/{{ $env.X }}"),
            "{{ env.URL }}/{{ env.X }}"
        );
        assert_eq!(
            rewritten("id={{ $uuid }} {{ $uuid() }} n={{ $randomNumber(1, 9) }}"),
            "id={{ uuid() }} {{ uuid() }} n={{ random_int(1, 9) }}"
        );
        assert_eq!(
            rewritten("{{ $randomString() }} {{ $randomString(4) }}"),
            "{{ random_string(10) }} {{ random_string(4) }}"
        );
        assert_eq!(
            rewritten("{% if $loopCount > 1 %}{{ $loopElement }}{% endif %}"),
            "{% if loop.index > 1 %}{{ loop.value }}{% endif %}"
        );
        // Text, string literals and comments keep their dollars.
        let untouched = "costs $5 {{ \"$uuid\" ~ '$env' }} {# $whatever #}";
        assert_eq!(rewritten(untouched), untouched);
        assert_eq!(rewrite("plain $text").expect("no tags"), None);
    }

    #[test]
    fn unknown_builtins_are_reported_where_written() {
        let error = rewrite("héllo {{ $randomNumbr(1, 2) }}").expect_err("unknown");
        assert_eq!(error.name, "randomNumbr");
        assert_eq!(error.offset_chars, 9);
    }

    #[test]
    fn positions_map_back_to_the_source() {
        let source = "{{ $uuid }} {{ $processEnvironment.X + }}";
        let rewritten = rewrite(source).expect("known").expect("rewritten");
        assert_eq!(rewritten.text, "{{ uuid() }} {{ env.X + }}");
        let plus_new = rewritten.text.find('+').expect("plus");
        assert_eq!(
            rewritten.source_offset(plus_new),
            source.find('+').expect("plus")
        );
        assert_eq!(rewritten.source_offset(4), 3, "inside a rewrite: its start");
        assert_eq!(rewritten.source_offset(0), 0);
    }

    #[test]
    fn javascript_keys_name_their_replacement() {
        let (message, help) = javascript_key("afterResponse").expect("js key");
        assert!(message.contains("JavaScript"), "{message}");
        assert!(
            help.contains("capture") && help.contains("expect"),
            "{help}"
        );
        for key in [
            "function",
            "beforeRequest",
            "processor",
            "beforeScenario",
            "afterScenario",
        ] {
            assert!(javascript_key(key).is_some(), "{key}");
        }
        assert!(javascript_key("flow").is_none());
    }
}
