//! Turning a send step into a frame: render the templates, then encode the body the way the
//! message says (text, hex, typed fields, JSON).
//!
//! The byte layouts themselves belong to `protocol`; this only feeds it rendered text.

use bytes::{Bytes, BytesMut};
use minijinja::value::Value;

use super::template::{Renderer, Scope, TemplateError};
use crate::plan::{Content, MessageBody, Plan, SendSpec, Text};
use crate::protocol::{EncodeError, Endian, Frame, encode_field};

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("message `{message}`: {source}")]
    Encode {
        message: String,
        #[source]
        source: EncodeError,
    },
    #[error("send refers to message #{0}, which the plan does not define")]
    UnknownMessage(usize),
}

/// Renders and encodes `spec` for the vuser whose template scope is `scope`.
///
/// `with` bindings of a named message are visible to that message's templates only.
pub fn build(
    plan: &Plan,
    renderer: &Renderer,
    endian: Endian,
    spec: &SendSpec,
    scope: &mut Scope,
) -> Result<Frame, MessageError> {
    match spec {
        SendSpec::Text(text) => Ok(Frame::text(Bytes::from(renderer.render(text, scope)?))),
        SendSpec::Inline(body) => encode(renderer, endian, body, scope, "inline"),
        SendSpec::Message { id, with } => {
            let message = plan
                .messages
                .get(id.0)
                .ok_or(MessageError::UnknownMessage(id.0))?;
            let mut bound = Vec::with_capacity(with.len());
            for (name, text) in with {
                bound.push((name.clone(), Value::from(renderer.render(text, scope)?)));
            }
            let outer = std::mem::replace(&mut scope.with, bound);
            let frame = encode(renderer, endian, &message.body, scope, &message.name);
            scope.with = outer;
            frame
        }
    }
}

/// Whether `spec` sends binary data (typed fields or hex), which a WebSocket carries as a
/// binary message; text and JSON bodies go as text messages.
pub fn is_binary(plan: &Plan, spec: &SendSpec) -> bool {
    let body = match spec {
        SendSpec::Text(_) => return false,
        SendSpec::Inline(body) => body,
        SendSpec::Message { id, .. } => match plan.messages.get(id.0) {
            Some(message) => &message.body,
            None => return false,
        },
    };
    body.type_id.is_some() || matches!(body.content, Content::Hex(_) | Content::Fields(_))
}

fn encode(
    renderer: &Renderer,
    endian: Endian,
    body: &MessageBody,
    scope: &Scope,
    name: &str,
) -> Result<Frame, MessageError> {
    let fail = |source| MessageError::Encode {
        message: name.to_owned(),
        source,
    };
    let bytes = match &body.content {
        crate::plan::Content::Text(text) => Bytes::from(renderer.render(text, scope)?),
        Content::Hex(bytes) => Bytes::copy_from_slice(bytes),
        Content::Fields(fields) => {
            // Each field is encoded as soon as it is rendered (a literal is not even copied):
            // no list of rendered texts, no list of parts.
            let mut out = BytesMut::with_capacity(fields.len() * 8);
            for (index, field) in fields.iter().enumerate() {
                match &field.value {
                    Text::Literal(text) => encode_field(index, field.kind, text, endian, &mut out),
                    templated => {
                        let text = renderer.render(templated, scope)?;
                        encode_field(index, field.kind, &text, endian, &mut out)
                    }
                }
                .map_err(fail)?;
            }
            out.freeze()
        }
        Content::Json {
            document,
            templates,
        } => {
            // The plan's document is written as it is, each templated leaf replaced by its
            // rendering on the way: no copy of the document per message.
            let mut rendered = Vec::with_capacity(templates.len());
            for (pointer, text) in templates {
                rendered.push((pointer.as_str(), renderer.render(text, scope)?));
            }
            let mut out = Vec::with_capacity(64);
            let mut path = String::new();
            write_json(document, &mut path, &rendered, &mut out)
                .map_err(|e| fail(EncodeError::Json(e.to_string())))?;
            Bytes::from(out)
        }
    };
    Ok(match body.type_id {
        Some(type_id) => Frame::typed(type_id, bytes),
        None => Frame::text(bytes),
    })
}

/// Writes `value` as compact JSON (as `serde_json::to_writer` would), except that the node
/// at each JSON pointer of `rendered` (`path` is the pointer of `value`) is written as that
/// string: a templated leaf that does not exist in the document is ignored, like
/// `pointer_mut` finding nothing.
fn write_json(
    value: &serde_json::Value,
    path: &mut String,
    rendered: &[(&str, String)],
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    if let Some((_, text)) = rendered
        .iter()
        .find(|(pointer, _)| *pointer == path.as_str())
    {
        return serde_json::to_writer(&mut *out, text);
    }
    match value {
        serde_json::Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                let len = path.len();
                path.push('/');
                // JSON pointer escaping (RFC 6901): `~` is `~0`, `/` is `~1`.
                for c in key.chars() {
                    match c {
                        '~' => path.push_str("~0"),
                        '/' => path.push_str("~1"),
                        c => path.push(c),
                    }
                }
                write_json(item, path, rendered, out)?;
                path.truncate(len);
            }
            out.push(b'}');
            Ok(())
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                write_json(item, path, rendered, out)?;
                path.truncate(len);
            }
            out.push(b']');
            Ok(())
        }
        leaf => serde_json::to_writer(&mut *out, leaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the message encoder did before: a copy of the document with the leaves set.
    fn by_copy(document: &serde_json::Value, rendered: &[(&str, String)]) -> Vec<u8> {
        let mut document = document.clone();
        for (pointer, text) in rendered {
            if let Some(slot) = document.pointer_mut(pointer) {
                *slot = serde_json::Value::String(text.clone());
            }
        }
        serde_json::to_vec(&document).unwrap_or_default()
    }

    #[test]
    fn json_with_rendered_leaves_is_what_a_patched_copy_serialises_to() {
        let document = serde_json::json!({
            "type": "say",
            "a/b": {"x~y": "{{ t }}", "n": 1.5, "list": [true, null, "{{ u }}", {"k": "v"}]},
            "empty": {},
            "none": [],
            "text": "quote \" and é",
        });
        let rendered = [
            ("/a~1b/x~0y", "hello \"there\"".to_owned()),
            ("/a~1b/list/2", "é".to_owned()),
            ("/missing/leaf", "ignored".to_owned()),
        ];
        let mut out = Vec::new();
        write_json(&document, &mut String::new(), &rendered, &mut out).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&by_copy(&document, &rendered))
        );
        // Nothing templated: the document as it is.
        let mut plain = Vec::new();
        write_json(&document, &mut String::new(), &[], &mut plain).unwrap_or_default();
        assert_eq!(plain, by_copy(&document, &[]));
    }
}
