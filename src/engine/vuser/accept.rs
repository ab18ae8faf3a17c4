//! Whether a received frame is the one an expect or a handler takes, and what it binds: the
//! packet type beside a body matcher, the matcher's captures, and the `decode:` fields read
//! from the body (typed: numbers stay numbers in templates and conditions).
//!
//! Storing the bound values is the caller's job (`steps`); matching itself is `protocol`'s.

use std::sync::Arc;

use minijinja::value::Value;

use super::matchers::MatcherCache;
use super::preview;
use super::program::FrameTest;
use super::template::{Renderer, Scope};
use crate::engine::error::{ErrorKind, Failure};
use crate::plan::DecodeField;
use crate::protocol::{CaptureSource, Decoded, Endian, Frame, Matcher, TypeMask, decode_fields};

/// What a taken frame binds.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    /// One value per capture source of the op, in order.
    pub captures: Vec<Option<String>>,
    /// One value per `decode` field of the op, in order.
    pub decoded: Vec<Value>,
}

impl Accepted {
    /// Stores the decoded fields in the vuser's variables.
    pub fn store_decoded(&mut self, fields: &[DecodeField], scope: &mut Scope) {
        if self.decoded.is_empty() {
            return;
        }
        for (field, value) in fields.iter().zip(self.decoded.drain(..)) {
            scope.set(&field.variable, value);
        }
    }
}

impl FrameTest {
    /// `None` when the frame is not one this test takes; an error when it is but its body
    /// does not hold the `decode` fields. `matcher`: the test's own, or its template rendered
    /// for this vuser.
    pub fn accept(
        &self,
        matcher: &Matcher,
        frame: &Frame,
        endian: Endian,
    ) -> Option<Result<Accepted, Failure>> {
        accept(
            self.types,
            matcher,
            &self.sources,
            &self.decode,
            frame,
            endian,
        )
    }

    /// The matcher this vuser applies now: the test's own, or its template rendered for the
    /// vuser's variables (kept in `rendered`, which the caller holds while it uses it).
    pub fn matcher<'a>(
        &'a self,
        cache: &mut MatcherCache,
        renderer: &Renderer,
        scope: &Scope,
        rendered: &'a mut Option<Arc<Matcher>>,
    ) -> Result<&'a Matcher, Failure> {
        match &self.template {
            Some(templated) => {
                let matcher = cache.resolve(renderer, scope, templated, &self.matcher)?;
                Ok(rendered.insert(matcher))
            }
            None => Ok(&self.matcher),
        }
    }
}

fn accept(
    types: Option<TypeMask>,
    matcher: &Matcher,
    sources: &[CaptureSource],
    decode: &[DecodeField],
    frame: &Frame,
    endian: Endian,
) -> Option<Result<Accepted, Failure>> {
    if types.is_some_and(|t| !t.matches(frame.type_id)) {
        return None;
    }
    let captures = matcher.match_captures(frame, sources)?;
    if decode.is_empty() {
        return Some(Ok(Accepted {
            captures,
            decoded: Vec::new(),
        }));
    }
    let decoded = decode_fields(&frame.body, decode.iter().map(|f| f.kind), endian)
        .map(|values| values.into_iter().map(value).collect())
        .map_err(|e| {
            Failure::new(
                ErrorKind::Capture,
                format!(
                    "decode: {e} ({} bytes: {})",
                    frame.body.len(),
                    preview(frame)
                ),
            )
        });
    Some(decoded.map(|decoded| Accepted { captures, decoded }))
}

fn value(decoded: Decoded) -> Value {
    match decoded {
        Decoded::Unsigned(n) => Value::from(n),
        Decoded::Signed(n) => Value::from(n),
        Decoded::Float(n) => Value::from(n),
        Decoded::Text(text) => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_beside_a_matcher_must_hold_too() {
        let matcher = Matcher::Contains("hi".into());
        let who = TypeMask::exact(2);
        let decode = [DecodeField {
            variable: "n".into(),
            kind: crate::protocol::FieldKind::U8,
        }];
        let take = |frame: &Frame| {
            accept(Some(who), &matcher, &[], &decode, frame, Endian::Big)
                .map(|r| r.map(|a| a.decoded))
        };
        assert!(
            take(&Frame::typed(3, &b"\x07hi"[..])).is_none(),
            "wrong type"
        );
        assert!(
            take(&Frame::typed(2, &b"\x07ho"[..])).is_none(),
            "wrong body"
        );
        let decoded = take(&Frame::typed(2, &b"\x07hi"[..]))
            .expect("taken")
            .expect("decodes");
        assert_eq!(decoded, [Value::from(7u64)]);
        let err = accept(
            Some(who),
            &matcher,
            &[],
            &decode,
            &Frame::typed(2, &b""[..]),
            Endian::Big,
        );
        assert!(err.is_none(), "an empty body does not contain `hi`");
        let short = accept(
            None,
            &Matcher::Type(who),
            &[],
            &decode,
            &Frame::typed(2, &b""[..]),
            Endian::Big,
        )
        .expect("taken")
        .expect_err("no byte to decode");
        assert_eq!(short.kind, ErrorKind::Capture);
        assert!(short.detail.contains("field 0 (u8)"), "{}", short.detail);
    }
}
