//! Writing a frame on the vuser's connection and counting it: the writes every sending step
//! shares (a rendered message, a literal encoded once per run, a handler's reply). What a
//! lost connection means for the vuser (it is dropped, the failure says whether the server
//! ever answered) is decided here too. Rendering the message and waiting for replies are
//! not: those are `steps`' and `Vuser::wait`'s.

use super::context::RunContext;
use super::program::LiteralFrame;
use super::{Link, Vuser, transport_failure};
use crate::engine::error::{ErrorKind, Failure};
use crate::metrics::CounterId;
use crate::protocol::Frame;
use crate::transport::TransportError;

/// Writes a frame and counts it; `binary`: typed or hex data (a binary WebSocket message).
pub(super) async fn write(
    vu: &mut Vuser,
    ctx: &RunContext,
    frame: Frame,
    binary: bool,
) -> Result<(), Failure> {
    write_body(vu, ctx, frame.type_id, &frame.body, binary).await
}

/// Writes a frame given as its parts and counts it.
async fn write_body(
    vu: &mut Vuser,
    ctx: &RunContext,
    type_id: Option<u32>,
    body: &[u8],
    binary: bool,
) -> Result<(), Failure> {
    let bytes = write_uncounted(vu, ctx, type_id, body, binary).await?;
    ctx.recorder.add_many(&sent_counts(vu, Some(bytes)));
    Ok(())
}

/// The counters a sent message of `bytes` adds to (`None`: nothing was sent, adds zero).
pub(super) fn sent_counts(vu: &Vuser, bytes: Option<u64>) -> [(CounterId, u64); 2] {
    [
        (vu.ids.messages_sent, u64::from(bytes.is_some())),
        (vu.ids.bytes_sent, bytes.unwrap_or(0)),
    ]
}

/// Writes a frame given as its parts; its body size, for the caller to count.
pub(super) async fn write_uncounted(
    vu: &mut Vuser,
    ctx: &RunContext,
    type_id: Option<u32>,
    body: &[u8],
    binary: bool,
) -> Result<u64, Failure> {
    let link = open_link(vu)?;
    let sent = link.conn.send(type_id, body, binary).await;
    sent_or_lost(vu, ctx, sent, body)
}

/// Writes a literal text message: its frame from `literal`, encoded by the run's first send.
pub(super) async fn write_literal(
    vu: &mut Vuser,
    ctx: &RunContext,
    body: &[u8],
    literal: &LiteralFrame,
) -> Result<u64, Failure> {
    let link = open_link(vu)?;
    let encoded = literal.0.get_or_init(|| link.conn.encode_text(body));
    let sent = link.conn.send_text(body, encoded.as_deref()).await;
    sent_or_lost(vu, ctx, sent, body)
}

fn open_link(vu: &mut Vuser) -> Result<&mut Link, Failure> {
    vu.conn
        .as_mut()
        .ok_or_else(|| Failure::new(ErrorKind::Closed, "send without an open connection"))
}

/// The body size of a sent message, or the failure of a connection the write lost.
fn sent_or_lost(
    vu: &mut Vuser,
    ctx: &RunContext,
    sent: Result<(), TransportError>,
    body: &[u8],
) -> Result<u64, Failure> {
    match sent {
        Ok(()) => Ok(body.len() as u64),
        Err(err) => {
            let silent = vu.conn.as_ref().is_some_and(|link| !link.received_any);
            vu.conn = None;
            Err(transport_failure(ctx, err, silent))
        }
    }
}
