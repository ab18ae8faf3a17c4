//! What ends one poll of a vuser's wait: retiring (when the wait watches for it), the
//! connection (a frame, an event or an error), a console broadcast, or the deadline. The wait
//! itself, and what it does with each, is `Vuser::wait`'s.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFuture;

use super::Link;
use crate::engine::load::control::Inbox;
use crate::transport::{Incoming, TransportError};

/// What ended one poll of a wait.
pub(super) enum Event {
    Retired,
    Incoming(Result<Incoming, TransportError>),
    Broadcast(Arc<str>),
    Deadline,
}

/// One poll of a wait, in priority order: retiring (when watched), the connection, a
/// broadcast, the deadline. A hand-written poll rather than `select!`, which built and
/// dropped a future per branch on every round trip. A closed inbox is simply never ready.
pub(super) fn next_event(
    cx: &mut Context<'_>,
    retired: Option<Pin<&mut WaitForCancellationFuture<'_>>>,
    conn: &mut Link,
    inbox: &mut Option<Inbox>,
    timer: &mut Pin<Box<Sleep>>,
) -> Poll<Event> {
    if let Some(retired) = retired
        && retired.poll(cx).is_ready()
    {
        return Poll::Ready(Event::Retired);
    }
    if let Poll::Ready(item) = conn.conn.poll_recv(cx) {
        return Poll::Ready(Event::Incoming(item));
    }
    if let Some(inbox) = inbox
        && let Poll::Ready(Some(text)) = inbox.rx.poll_recv(cx)
    {
        return Poll::Ready(Event::Broadcast(text));
    }
    if timer.as_mut().poll(cx).is_ready() {
        return Poll::Ready(Event::Deadline);
    }
    Poll::Pending
}
