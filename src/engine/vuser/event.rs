//! What ends one poll of a vuser's wait: retiring (when the wait watches for it), the
//! connection (a frame, an event or an error), a console broadcast, or the deadline (the
//! vuser's one timer, [`Deadline`]). The wait itself, and what it does with each, is
//! `Vuser::wait`'s.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep, sleep_until};
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
    timer: &mut Deadline,
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
    if timer.poll_fired(cx) {
        return Poll::Ready(Event::Deadline);
    }
    Poll::Pending
}

/// A vuser's deadline timer, one for its life (moving a registered deadline is cheaper than
/// a timer per wait). Polling tokio's `Sleep` takes coop budget and registers the waker every
/// time, ~100 instructions per round trip; this polls it once after each reset and then
/// only reads whether it fired. That is enough because the waker a poll leaves with the
/// timer stays there until the timer fires, and a vuser is always polled by its own task
/// (the runner spawns one per vuser), so that waker is the one to wake.
pub(crate) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    /// Polled since the last reset (and not fired then): the timer holds our waker.
    watched: bool,
}

impl Deadline {
    pub fn at(deadline: Instant) -> Self {
        Deadline {
            sleep: Box::pin(sleep_until(deadline)),
            watched: false,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    pub fn is_elapsed(&self) -> bool {
        self.sleep.is_elapsed()
    }

    pub fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.watched = false;
    }

    /// Completes when the deadline passes (for `select!`).
    pub fn fired(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.poll_fired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Whether the deadline has passed; otherwise the task is woken when it does.
    pub fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.watched {
            return self.sleep.is_elapsed();
        }
        let fired = self.sleep.as_mut().poll(cx).is_ready();
        self.watched = !fired;
        fired
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use super::*;

    /// Waits until `deadline` fires, failing (not hanging) if nothing ever wakes the task.
    async fn fired(deadline: &mut Deadline) {
        tokio::time::timeout(Duration::from_secs(60), deadline.fired())
            .await
            .expect("the timer woke the task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_polled_once_wakes_its_task_and_again_after_each_reset() {
        let start = Instant::now();
        let mut deadline = Deadline::at(start + Duration::from_secs(1));
        // Later polls only read the timer: the first one left the waker with it.
        poll_fn(|cx| {
            for _ in 0..3 {
                assert!(!deadline.poll_fired(cx));
            }
            Poll::Ready(())
        })
        .await;
        fired(&mut deadline).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(1));
        // A fired timer has given its waker away: the reset one registers anew.
        deadline.reset(start + Duration::from_secs(3));
        fired(&mut deadline).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(3));
        // Moved earlier while watched, it still wakes the task at the new time.
        deadline.reset(start + Duration::from_secs(10));
        poll_fn(|cx| Poll::Ready(deadline.poll_fired(cx))).await;
        deadline.reset(start + Duration::from_secs(5));
        fired(&mut deadline).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(5));
    }
}
