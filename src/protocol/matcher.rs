//! [`Matcher`]: does a received frame match what a flow step waits for, and what does it
//! capture. Matching on text needs a UTF-8 body; a non-UTF-8 body only matches `Type` and
//! byte-wise `Equals`/`Contains`.

use regex::Regex;
use serde_json::Value;

use crate::protocol::{Frame, TypeMask};

#[derive(Clone)]
pub enum Matcher {
    /// The body (as UTF-8 text) matches this regex; named groups can be captured.
    Regex(Regex),
    /// A regex that is `^` followed by plain text (`^PONG`): the same matches as `Regex`, found
    /// by comparing bytes instead of running the regex engine. Built by [`Matcher::regex`];
    /// the regex is kept for display.
    Prefix { regex: Regex, prefix: String },
    /// The body contains these bytes.
    Contains(String),
    /// The body is exactly these bytes.
    Equals(String),
    /// The body is JSON and every (JSON pointer, value) pair is equal in it.
    Json(Vec<(String, Value)>),
    /// The frame's packet type id: one id, or ids under a mask.
    Type(TypeMask),
}

/// Where a captured value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// A named group of the matcher's regex (only a `Matcher::Regex` has groups).
    Group(String),
    /// A JSON pointer into the body parsed as JSON; strings are captured without quotes,
    /// other values as compact JSON.
    JsonPointer(String),
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Shown as written: which variant matches it is an implementation detail.
            Matcher::Regex(regex) | Matcher::Prefix { regex, .. } => {
                f.debug_tuple("Regex").field(regex).finish()
            }
            Matcher::Contains(text) => f.debug_tuple("Contains").field(text).finish(),
            Matcher::Equals(text) => f.debug_tuple("Equals").field(text).finish(),
            Matcher::Json(pairs) => f.debug_tuple("Json").field(pairs).finish(),
            Matcher::Type(type_id) => f.debug_tuple("Type").field(type_id).finish(),
        }
    }
}

/// The matcher as the plan wrote it, for messages: `matching /^MSG /`, `contains "x"`,
/// `equals "x"`, `json {"/ok": true}`, `type 3`.
impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Regex(regex) | Matcher::Prefix { regex, .. } => {
                write!(f, "matching /{}/", regex.as_str())
            }
            Matcher::Contains(text) => write!(f, "contains {text:?}"),
            Matcher::Equals(text) => write!(f, "equals {text:?}"),
            Matcher::Json(pairs) => {
                f.write_str("json {")?;
                for (i, (pointer, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{pointer:?}: {value}")?;
                }
                f.write_str("}")
            }
            Matcher::Type(types) => write!(f, "{types}"),
        }
    }
}

/// Two matchers are equal when they match the same frames as written: a regex compares by its
/// pattern, whichever variant [`Matcher::regex`] chose for it.
impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Matcher::Regex(a) | Matcher::Prefix { regex: a, .. },
                Matcher::Regex(b) | Matcher::Prefix { regex: b, .. },
            ) => a.as_str() == b.as_str(),
            (Matcher::Contains(a), Matcher::Contains(b))
            | (Matcher::Equals(a), Matcher::Equals(b)) => a == b,
            (Matcher::Json(a), Matcher::Json(b)) => a == b,
            (Matcher::Type(a), Matcher::Type(b)) => a == b,
            _ => false,
        }
    }
}

impl Matcher {
    /// The regex as written, for a `Regex` or `Prefix` matcher (capture groups come from it).
    pub fn as_regex(&self) -> Option<&Regex> {
        match self {
            Matcher::Regex(regex) | Matcher::Prefix { regex, .. } => Some(regex),
            _ => None,
        }
    }

    /// A matcher for `regex`: `Prefix` when the pattern is `^` followed by text without regex
    /// syntax (the common `^PONG`, `^OK `), `Regex` otherwise.
    pub fn regex(regex: Regex) -> Self {
        const SYNTAX: &str = "\\.+*?()|[]{}^$#";
        match regex.as_str().strip_prefix('^') {
            Some(rest) if !rest.is_empty() && !rest.contains(|c| SYNTAX.contains(c)) => {
                let prefix = rest.to_owned();
                Matcher::Prefix { regex, prefix }
            }
            _ => Matcher::Regex(regex),
        }
    }

    pub fn matches(&self, frame: &Frame) -> bool {
        match self {
            Matcher::Regex(regex) => frame.body_str().is_some_and(|text| regex.is_match(text)),
            // Like a regex, only a UTF-8 body can match.
            Matcher::Prefix { prefix, .. } => {
                // `is_ascii` first: a word at a time, and chat protocols are mostly ASCII.
                frame.body.starts_with(prefix.as_bytes())
                    && (frame.body.is_ascii() || frame.body_str().is_some())
            }
            Matcher::Contains(needle) => contains(&frame.body, needle.as_bytes()),
            Matcher::Equals(expected) => frame.body == expected.as_bytes(),
            Matcher::Json(pairs) => serde_json::from_slice::<Value>(&frame.body)
                .is_ok_and(|doc| json_pairs_hold(&doc, pairs)),
            Matcher::Type(types) => types.matches(frame.type_id),
        }
    }

    /// Tests the frame; when it matches, returns one value per requested source, in order
    /// (`None` when the group did not participate or the pointer is absent). With no sources
    /// this allocates nothing beyond what matching itself needs.
    pub fn match_captures(
        &self,
        frame: &Frame,
        sources: &[CaptureSource],
    ) -> Option<Vec<Option<String>>> {
        if sources.is_empty() {
            return self.matches(frame).then(Vec::new);
        }
        let wants_json = sources
            .iter()
            .any(|s| matches!(s, CaptureSource::JsonPointer(_)));
        let mut json: Option<Value> = None;
        let mut groups = None;
        match self {
            Matcher::Regex(regex) => {
                let text = frame.body_str()?;
                groups = Some(regex.captures(text)?);
            }
            Matcher::Json(pairs) => {
                let doc = serde_json::from_slice::<Value>(&frame.body).ok()?;
                if !json_pairs_hold(&doc, pairs) {
                    return None;
                }
                json = Some(doc);
            }
            _ => {
                if !self.matches(frame) {
                    return None;
                }
            }
        }
        if wants_json && json.is_none() {
            json = serde_json::from_slice::<Value>(&frame.body).ok();
        }
        let values = sources
            .iter()
            .map(|source| match source {
                CaptureSource::Group(name) => groups
                    .as_ref()
                    .and_then(|caps| caps.name(name))
                    .map(|m| m.as_str().to_string()),
                CaptureSource::JsonPointer(pointer) => json
                    .as_ref()
                    .and_then(|doc| doc.pointer(pointer))
                    .map(|value| match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    }),
            })
            .collect();
        Some(values)
    }
}

fn json_pairs_hold(doc: &Value, pairs: &[(String, Value)]) -> bool {
    pairs
        .iter()
        .all(|(pointer, expected)| doc.pointer(pointer) == Some(expected))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    match (std::str::from_utf8(haystack), std::str::from_utf8(needle)) {
        // `str::contains` uses a fast substring search.
        (Ok(h), Ok(n)) => h.contains(n),
        _ => haystack.windows(needle.len()).any(|w| w == needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> Frame {
        Frame::text(body.to_string())
    }

    #[test]
    fn display_shows_the_matcher_as_written() {
        let show = |m: Matcher| m.to_string();
        assert_eq!(
            show(Matcher::regex(Regex::new("^MSG ").expect("regex"))),
            "matching /^MSG /"
        );
        assert_eq!(
            show(Matcher::regex(
                Regex::new("^OK (?P<n>\\w+)").expect("regex")
            )),
            "matching /^OK (?P<n>\\w+)/"
        );
        assert_eq!(show(Matcher::Contains("x".into())), "contains \"x\"");
        assert_eq!(
            show(Matcher::Equals("a \"b\"".into())),
            "equals \"a \\\"b\\\"\""
        );
        assert_eq!(
            show(Matcher::Json(vec![
                ("/ok".into(), Value::Bool(true)),
                ("/room".into(), Value::String("lobby".into())),
            ])),
            "json {\"/ok\": true, \"/room\": \"lobby\"}"
        );
        assert_eq!(show(Matcher::Type(TypeMask::exact(3))), "type 3");
    }

    #[test]
    fn text_matchers() {
        let regex = Matcher::Regex(Regex::new("^MSG (?P<room>\\S+) ").expect("regex"));
        assert!(regex.matches(&frame("MSG lobby bob hi")));
        assert!(!regex.matches(&frame("JOINED lobby 1")));
        assert!(!regex.matches(&Frame::text(vec![0xff, 0xfe])));
        assert!(Matcher::Contains("bob".into()).matches(&frame("MSG lobby bob hi")));
        assert!(!Matcher::Contains("eve".into()).matches(&frame("MSG lobby bob hi")));
        assert!(Matcher::Equals("OK".into()).matches(&frame("OK")));
        assert!(!Matcher::Equals("OK".into()).matches(&frame("OK bob")));
        assert!(Matcher::Contains("\u{1}".into()).matches(&Frame::text(vec![0xff, 1])));
    }

    #[test]
    fn anchored_literal_regexes_match_as_prefixes_exactly_like_the_regex() {
        let bodies: [&[u8]; 7] = [
            b"PONG x",
            b"PONG",
            b"PON",
            b"xPONG",
            b"",
            b"PONG \xff",
            b"OK ann",
        ];
        for pattern in ["^PONG", "^OK ", "^PONG x"] {
            let fast = Matcher::regex(Regex::new(pattern).expect("regex"));
            assert!(matches!(fast, Matcher::Prefix { .. }), "{pattern}");
            assert_eq!(format!("{fast:?}"), format!("Regex(Regex({pattern:?}))"));
            let slow = Matcher::Regex(Regex::new(pattern).expect("regex"));
            for body in bodies {
                let frame = Frame::text(bytes::Bytes::copy_from_slice(body));
                assert_eq!(
                    fast.matches(&frame),
                    slow.matches(&frame),
                    "{pattern} {body:?}"
                );
                let sources = [CaptureSource::Group("x".into())];
                assert_eq!(
                    fast.match_captures(&frame, &sources),
                    slow.match_captures(&frame, &sources),
                    "{pattern} {body:?}"
                );
            }
        }
        for pattern in ["PONG", "^PO.G", "^(?i)pong", "^a|b", "^", "^x$", "^\\d"] {
            let matcher = Matcher::regex(Regex::new(pattern).expect("regex"));
            assert!(matches!(matcher, Matcher::Regex(_)), "{pattern}");
        }
    }

    #[test]
    fn type_matcher() {
        let three = Matcher::Type(TypeMask::exact(3));
        assert!(three.matches(&Frame::typed(3, "x")));
        assert!(!three.matches(&Frame::typed(4, "x")));
        assert!(!three.matches(&frame("x")));
        let publish = Matcher::Type(TypeMask::masked(0x30, 0xf0).expect("valid"));
        assert!(publish.matches(&Frame::typed(0x32, "x")));
        assert!(!publish.matches(&Frame::typed(0x40, "x")));
        assert_eq!(publish.to_string(), "type 0x30/0xf0");
    }

    #[test]
    fn json_matcher_and_captures() {
        let body = frame(r#"{"op":"login","user":{"id":7,"name":"ann"}}"#);
        let matcher = Matcher::Json(vec![("/op".into(), Value::from("login"))]);
        assert!(matcher.matches(&body));
        assert!(!Matcher::Json(vec![("/op".into(), Value::from("x"))]).matches(&body));
        assert!(!matcher.matches(&frame("not json")));
        let caps = matcher
            .match_captures(
                &body,
                &[
                    CaptureSource::JsonPointer("/user/name".into()),
                    CaptureSource::JsonPointer("/user/id".into()),
                    CaptureSource::JsonPointer("/missing".into()),
                ],
            )
            .expect("matches");
        assert_eq!(caps, [Some("ann".into()), Some("7".into()), None]);
    }

    #[test]
    fn regex_captures() {
        let matcher = Matcher::Regex(Regex::new("^OK (?P<name>\\w+)(?P<rest> .*)?$").expect("re"));
        let caps = matcher
            .match_captures(
                &frame("OK ann"),
                &[
                    CaptureSource::Group("name".into()),
                    CaptureSource::Group("rest".into()),
                    CaptureSource::Group("nope".into()),
                ],
            )
            .expect("matches");
        assert_eq!(caps, [Some("ann".into()), None, None]);
        assert!(matcher.match_captures(&frame("ERR x"), &[]).is_none());
        assert_eq!(matcher.match_captures(&frame("OK a"), &[]), Some(vec![]));
    }
}
