//! What a run keeps about its errors besides the `errors.<kind>` and `failures.<step>`
//! counters: the distinct messages with their counts, per step and kind (`ErrorTable`), and
//! whether the target accepted any connection at all (`ConnectWatch`, which stops a run that
//! cannot connect instead of letting it sit out its phases).
//!
//! Errors are not the hot path, but an error storm must not serialize every vuser on one
//! lock: the table is sharded per worker thread (a thread only ever locks its own shard, so
//! the lock is uncontended until the run reads the table at the end), and the number of
//! distinct messages is bounded by one atomic budget; past it, messages count as "other".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::program::{Program, StepId};
use crate::engine::error::{ErrorKind, Failure};

/// Distinct messages stored over the whole run (all shards); later ones count as "other".
const DISTINCT_MESSAGES: usize = 200;
/// Entries the run reports, by count; the rest are folded into "other" per step and kind.
pub const REPORTED_MESSAGES: usize = 50;
/// The message of the entries that stand for messages not kept.
pub const OTHER_MESSAGES: &str = "(other messages)";
const SHARDS: usize = 8;

/// One distinct error message of a run and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    /// `connect`, `send`, `expect` or `flow` (Locust's `Method` column of `failures.csv`).
    pub method: String,
    /// The step it is counted against: `connect`, `latency.<name>`, `send`, `think`...
    /// Empty when it happened outside any step.
    pub step: String,
    pub scenario: String,
    pub kind: ErrorKind,
    /// The message as the error gave it (addresses and numbers kept), or
    /// [`OTHER_MESSAGES`].
    pub message: String,
    pub count: u64,
}

type Messages = HashMap<(Option<StepId>, ErrorKind), HashMap<String, u64>>;

pub(crate) struct ErrorTable {
    shards: [Mutex<Messages>; SHARDS],
    /// Distinct messages stored so far, over every shard.
    stored: AtomicUsize,
    /// Set once `stored` reached the budget, so no shard allocates a new message again.
    full: AtomicBool,
}

/// The shard of the calling thread: each worker thread gets its own, round robin.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl ErrorTable {
    pub fn new() -> Self {
        ErrorTable {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            stored: AtomicUsize::new(0),
            full: AtomicBool::new(false),
        }
    }

    pub fn count(&self, failure: &Failure) {
        let Some(shard) = self.shards.get(shard_index()) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let messages = shard.entry((failure.step, failure.kind)).or_default();
        if let Some(n) = messages.get_mut(failure.detail.as_str()) {
            *n += 1;
            return;
        }
        let keep = !self.full.load(Ordering::Relaxed)
            && self.stored.fetch_add(1, Ordering::Relaxed) < DISTINCT_MESSAGES;
        let key = if keep {
            failure.detail.clone()
        } else {
            self.full.store(true, Ordering::Relaxed);
            OTHER_MESSAGES.to_owned()
        };
        *messages.entry(key).or_default() += 1;
    }

    /// Every message with its count, most frequent first: at most [`REPORTED_MESSAGES`]
    /// entries, then one "other" entry per step and kind for the rest, so the counts still
    /// add up to every error counted.
    pub fn report(&self, program: &Program) -> Vec<ErrorCount> {
        let mut merged: HashMap<(Option<StepId>, ErrorKind, String), u64> = HashMap::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for ((step, kind), messages) in shard.iter() {
                for (message, n) in messages {
                    *merged.entry((*step, *kind, message.clone())).or_default() += n;
                }
            }
        }
        let mut entries: Vec<_> = merged.into_iter().collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut rest: HashMap<(Option<StepId>, ErrorKind), u64> = HashMap::new();
        if entries.len() > REPORTED_MESSAGES {
            for ((step, kind, _), n) in entries.split_off(REPORTED_MESSAGES) {
                *rest.entry((step, kind)).or_default() += n;
            }
        }
        let mut out: Vec<ErrorCount> = entries
            .into_iter()
            .map(|((step, kind, message), n)| entry(program, step, kind, message, n))
            .collect();
        let mut rest: Vec<_> = rest.into_iter().collect();
        rest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for ((step, kind), n) in rest {
            match out.iter_mut().find(|e| {
                e.message == OTHER_MESSAGES
                    && e.kind == kind
                    && Some(e.step.as_str()) == step_name(program, step)
                    && e.scenario == scenario_name(program, step)
            }) {
                Some(other) => other.count += n,
                None => out.push(entry(program, step, kind, OTHER_MESSAGES.to_owned(), n)),
            }
        }
        out
    }
}

fn step_name(program: &Program, step: Option<StepId>) -> Option<&str> {
    Some(step.and_then(|s| program.step(s)).map_or("", |s| &*s.name))
}

fn scenario_name(program: &Program, step: Option<StepId>) -> String {
    step.and_then(|s| program.step(s))
        .and_then(|s| program.scenario(s.scenario))
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

fn entry(
    program: &Program,
    step: Option<StepId>,
    kind: ErrorKind,
    message: String,
    count: u64,
) -> ErrorCount {
    let info = step.and_then(|s| program.step(s));
    ErrorCount {
        method: info.map_or("flow", |s| s.method.as_str()).to_owned(),
        step: info.map(|s| s.name.to_string()).unwrap_or_default(),
        scenario: scenario_name(program, step),
        kind,
        message,
        count,
    }
}

/// Connection attempts that fail before any succeeded this many times stop the run.
pub const UNREACHABLE_ATTEMPTS: u64 = 50;
/// ... as do failures that went on for this long after the first attempt.
pub const UNREACHABLE_WINDOW: Duration = Duration::from_secs(5);

/// Watches the first connection attempts of a run: when the target refused (or timed out,
/// or failed the TLS/WebSocket setup of) every attempt for [`UNREACHABLE_WINDOW`] after the
/// first, or for the first [`UNREACHABLE_ATTEMPTS`], and not one succeeded, it cancels
/// `stop` and keeps the first error to tell the user.
pub(crate) struct ConnectWatch {
    stop: CancellationToken,
    connected: AtomicBool,
    failures: AtomicU64,
    first_attempt: OnceLock<Instant>,
    /// Cancelled at the first attempt, to start the window's timer.
    attempted: CancellationToken,
    window_over: AtomicBool,
    first_error: OnceLock<String>,
    tripped: OnceLock<()>,
}

impl ConnectWatch {
    pub fn new(stop: CancellationToken) -> Self {
        ConnectWatch {
            stop,
            connected: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            first_attempt: OnceLock::new(),
            attempted: CancellationToken::new(),
            window_over: AtomicBool::new(false),
            first_error: OnceLock::new(),
            tripped: OnceLock::new(),
        }
    }

    /// A vuser starts opening a connection.
    pub fn attempt(&self) {
        if self.first_attempt.get().is_none() && self.first_attempt.set(Instant::now()).is_ok() {
            self.attempted.cancel();
        }
    }

    /// A connection opened: the target is reachable, the watch is over.
    pub fn connected(&self) {
        if !self.connected.load(Ordering::Relaxed) {
            self.connected.store(true, Ordering::Relaxed);
        }
    }

    /// A connection attempt failed with `failure`.
    pub fn failed(&self, failure: &Failure) {
        if self.connected.load(Ordering::Relaxed) || failure.kind == ErrorKind::Template {
            return;
        }
        let _ = self.first_error.set(failure.to_string());
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= UNREACHABLE_ATTEMPTS || self.window_over.load(Ordering::Relaxed) {
            self.trip();
        }
    }

    /// Runs alongside the run: closes the time window [`UNREACHABLE_WINDOW`] after the
    /// first attempt. Ends when the run does (the caller aborts it).
    pub async fn watch_window(&self) {
        self.attempted.cancelled().await;
        let Some(first) = self.first_attempt.get() else {
            return;
        };
        tokio::time::sleep_until(*first + UNREACHABLE_WINDOW).await;
        self.window_over.store(true, Ordering::Relaxed);
        // An attempt still in flight (a connect timeout longer than the window) trips it
        // when it fails; one that succeeds ends the watch.
        if self.failures.load(Ordering::Relaxed) > 0 {
            self.trip();
        }
    }

    fn trip(&self) {
        if self.connected.load(Ordering::Relaxed) {
            return;
        }
        if self.tripped.set(()).is_ok() {
            self.stop.cancel();
        }
    }

    /// The first error, when the watch stopped the run.
    pub fn unreachable(&self) -> Option<String> {
        self.tripped.get()?;
        self.first_error.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_bounded_and_its_counts_add_up() {
        let table = ErrorTable::new();
        let program = Program {
            scenarios: Vec::new(),
            total_weight: 0,
            steps: Vec::new(),
            before: None,
            after: None,
        };
        let mut total = 0;
        for i in 0..1000u64 {
            // Message i happens i % 7 + 1 times.
            for _ in 0..(i % 7 + 1) {
                table.count(&Failure::new(ErrorKind::Timeout, format!("message {i}")));
                total += 1;
            }
        }
        table.count(&Failure::new(ErrorKind::Closed, "message 0"));
        total += 1;
        let report = table.report(&program);
        assert!(report.len() <= REPORTED_MESSAGES + 2, "{}", report.len());
        assert_eq!(report.iter().map(|e| e.count).sum::<u64>(), total);
        let kept = report.iter().filter(|e| e.message != OTHER_MESSAGES);
        // The stored messages are 0..200 (the budget); the most frequent of them are kept,
        // next to the "other" entry of the later timeouts.
        assert!(
            kept.clone().all(|e| e.count >= 6),
            "the most frequent are kept"
        );
        assert_eq!(kept.count(), REPORTED_MESSAGES - 1);
        let other: Vec<_> = report
            .iter()
            .filter(|e| e.message == OTHER_MESSAGES)
            .collect();
        assert_eq!(other.len(), 2, "one per kind: {other:?}");
    }
}
