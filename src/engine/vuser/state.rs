//! What a vuser holds while it runs, apart from its program: the open connection (`Link`),
//! the gauge guard that keeps `vusers.active` / `connections.open` honest, and the intended
//! clock that latencies are measured from. The steps and the flow loop live elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{CounterId, GaugeId, Recorder};
use crate::transport::Conn;

/// Keeps a gauge raised while alive, so a cancelled vuser or a dropped connection can never
/// leave `vusers.active` or `connections.open` too high.
#[derive(Debug)]
pub(crate) struct GaugeGuard {
    recorder: Recorder,
    id: GaugeId,
}

impl GaugeGuard {
    pub fn new(recorder: &Recorder, id: GaugeId) -> Self {
        recorder.gauge_add(id, 1);
        GaugeGuard {
            recorder: recorder.clone(),
            id,
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.recorder.gauge_add(self.id, -1);
    }
}

/// Whether a vuser's `retire` token was cancelled, asked on every loop iteration without
/// taking the token's mutex: the runner bumps one count, shared by all vusers, after it
/// cancels tokens, and the token itself is asked only when the count moved since the last
/// time it said no. A flag of each vuser's own cost one more cache line per round trip.
pub(crate) struct RetireWatch {
    retirements: Arc<AtomicU64>,
    /// The count when the token last said no; `None` before it was ever asked, so a vuser
    /// retired before it first looked (spawned and retired in one step of the runner) still
    /// finds out.
    seen: Option<u64>,
}

impl RetireWatch {
    pub fn new(retirements: Arc<AtomicU64>) -> Self {
        RetireWatch {
            retirements,
            seen: None,
        }
    }

    pub fn retired(&mut self, retire: &CancellationToken) -> bool {
        let count = self.retirements.load(Ordering::Acquire);
        if self.seen != Some(count) {
            if retire.is_cancelled() {
                return true;
            }
            self.seen = Some(count);
        }
        false
    }
}

/// The counts of a sent message that wait for its expect (`send` + `expect` count under the
/// expect's one metrics lock). Dropped while still owed — the vuser aborted at the hard stop
/// in the middle of the wait — it counts them itself, so a sent message is never lost.
#[derive(Debug)]
pub(crate) struct OwedSent {
    recorder: Recorder,
    messages_sent: CounterId,
    bytes_sent: CounterId,
    bytes: Option<u64>,
}

impl OwedSent {
    pub fn new(recorder: &Recorder, messages_sent: CounterId, bytes_sent: CounterId) -> Self {
        OwedSent {
            recorder: recorder.clone(),
            messages_sent,
            bytes_sent,
            bytes: None,
        }
    }

    /// Owe the counts of a message of `bytes` (replacing nothing: the previous one was paid).
    pub fn owe(&mut self, bytes: u64) {
        self.bytes = Some(bytes);
    }

    /// The owed message's bytes, now the caller's to count.
    pub fn take(&mut self) -> Option<u64> {
        self.bytes.take()
    }
}

impl Drop for OwedSent {
    fn drop(&mut self) {
        if let Some(bytes) = self.bytes.take() {
            self.recorder
                .add_many(&[(self.messages_sent, 1), (self.bytes_sent, bytes)]);
        }
    }
}

/// An open connection with what the vuser keeps about it: the gauge it holds raised, and
/// whether anything arrived yet (a plain connection closed before any frame hints at TLS).
pub(crate) struct Link {
    pub conn: Conn,
    pub received_any: bool,
    /// The first bytes received were a TLS record (a TLS-only port answering plain text).
    pub tls_reply: bool,
    _open: GaugeGuard,
}

impl Link {
    pub fn new(conn: Conn, open: GaugeGuard) -> Self {
        Link {
            conn,
            received_any: false,
            tls_reply: false,
            _open: open,
        }
    }

    /// Boxed: closing is once per connection, but its future (a WebSocket close handshake
    /// over TLS) is ~4 KiB and would otherwise sit in every vuser's task for its whole life.
    /// Not an `async fn`, so that the link itself moves into the box and no caller's future
    /// holds a second copy of it.
    pub fn close(self) -> std::pin::Pin<Box<impl std::future::Future<Output = ()> + Send>> {
        Box::pin(self.conn.close())
    }
}

/// The vuser's idea of when things should happen (DESIGN §3, coordinated omission).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// The pacing clock: each think advances it by the think time, whatever happened.
    pub intended: Instant,
    /// Scheduled time of the next send: the pacing clock after a think, or the moment the
    /// previous reply arrived when sends follow each other without a think.
    pub next_send: Instant,
    /// What the next expect measures from: the scheduled time of the preceding send (or the
    /// moment the connection opened).
    pub measure_from: Instant,
}

impl Clock {
    pub fn at(now: Instant) -> Self {
        Clock {
            intended: now,
            next_send: now,
            measure_from: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;

    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio_util::sync::CancellationToken;

    use super::super::{RunContext, VuserSpec, run};
    use super::RetireWatch;

    #[test]
    fn a_retire_watch_sees_its_token_once_the_count_moves_and_from_the_start() {
        let count = Arc::new(AtomicU64::new(0));
        let (mine, other) = (CancellationToken::new(), CancellationToken::new());
        let mut watch = RetireWatch::new(Arc::clone(&count));
        assert!(!watch.retired(&mine));
        // Another vuser retired: this one asks its token, finds it not cancelled, goes on.
        other.cancel();
        count.fetch_add(1, Ordering::Release);
        assert!(!watch.retired(&mine));
        // Cancelled without the count moving (not how the runner does it): not asked again.
        mine.cancel();
        assert!(!watch.retired(&mine));
        count.fetch_add(1, Ordering::Release);
        assert!(watch.retired(&mine));
        // Retired before its vuser ever looked: the first look asks the token.
        let mut late = RetireWatch::new(Arc::clone(&count));
        assert!(late.retired(&mine));
    }

    /// The size of what an async fn returns, without calling it.
    fn future_bytes<A, B, F: Future>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connected vuser holds its task's future for its whole life, sized for the
    /// largest step it could be in; rare, big steps (an HTTP request, closing a WebSocket
    /// over TLS) are boxed so that idle vusers stay small (docs/performance.md, memory per
    /// connected idle vuser). A new step that inlines a big future fails here.
    #[test]
    fn a_vuser_task_future_stays_small() {
        let bytes = future_bytes::<Arc<RunContext>, VuserSpec, _>(run);
        eprintln!("vuser::run future: {bytes} bytes");
        assert!(bytes <= 1_472, "the vuser future is {bytes} bytes");
    }
}
