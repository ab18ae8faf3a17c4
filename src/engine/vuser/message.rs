//! Turning a send step into a frame: render the templates, then encode the body the way the
//! message says (text, hex, typed fields, JSON).
//!
//! The byte layouts themselves belong to `protocol`; this only feeds it rendered text.

use bytes::{Bytes, BytesMut};
use minijinja::value::Value;

use super::template::{Renderer, Scope, TemplateError};
use crate::plan::{Content, MessageBody, Plan, SendSpec};
use crate::protocol::{EncodeError, Endian, Frame, encode_fields, encode_json};

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
            let mut rendered = Vec::with_capacity(fields.len());
            for field in fields {
                rendered.push((field.kind, renderer.render(&field.value, scope)?));
            }
            let parts: Vec<_> = rendered.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut out = BytesMut::new();
            encode_fields(&parts, endian, &mut out).map_err(fail)?;
            out.freeze()
        }
        Content::Json {
            document,
            templates,
        } => {
            let mut document = document.clone();
            for (pointer, text) in templates {
                let value = renderer.render(text, scope)?;
                if let Some(slot) = document.pointer_mut(pointer) {
                    *slot = serde_json::Value::String(value);
                }
            }
            let mut out = BytesMut::new();
            encode_json(&document, &mut out).map_err(fail)?;
            out.freeze()
        }
    };
    Ok(match body.type_id {
        Some(type_id) => Frame::typed(type_id, bytes),
        None => Frame::text(bytes),
    })
}
