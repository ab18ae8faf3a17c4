//! [`RunControl`]: steering a run while it goes — what `run --interactive` and the adaptive
//! and breaking-point drivers use. Set the closed-model concurrency (`scale`), make every
//! connected vuser send a frame (`broadcast`), read the latest interval (`stats`), take the
//! results so far (`partial`), feed server CPU/memory readings in, and `stop`.
//!
//! Nothing here is on the per-message path: a vuser registers its inbox once when it starts
//! (one lock) and afterwards only polls its own channel. Reading commands, printing and
//! writing files is the CLI's business.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::intervals::{Intervals, Progress};
use crate::metrics::RunMetrics;

/// No `scale` override is set.
const NO_TARGET: u64 = u64::MAX;

/// What kind of load the runner is generating right now (what `scale` may change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LoadMode {
    /// Not started, or in the graceful stop.
    Idle = 0,
    /// A closed-model phase: `scale` sets its concurrency.
    Closed = 1,
    /// An open-model phase or a pause: concurrency follows arrivals.
    Open = 2,
    /// The adaptive controller sets the concurrency.
    Adaptive = 3,
}

impl LoadMode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => LoadMode::Closed,
            2 => LoadMode::Open,
            3 => LoadMode::Adaptive,
            _ => LoadMode::Idle,
        }
    }
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error(
        "the run is not generating closed-model load right now ({0}); `scale` applies to \
             closed-model phases (`vusers: N`)"
    )]
    NotClosedModel(&'static str),
    #[error("the adaptive controller sets the concurrency of this run; `scale` is not available")]
    Adaptive,
    #[error("the run has not started or has already finished")]
    NotRunning,
    #[error(
        "{asked} vusers is more than this generator process holds at once ({max}, its \
         open-descriptor limit); split the load over several processes (`run --shard I/N`)"
    )]
    TooMany { asked: u64, max: u64 },
    #[error("cannot summarize the results so far: {0}")]
    Metrics(String),
}

/// One server reading fed to the run (from `monitor`), for adaptive CPU/memory limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerLoad {
    pub at: SystemTime,
    /// Percent of one core.
    pub cpu_percent: f64,
    /// Percent of host memory.
    pub memory_percent: f64,
}

/// What [`RunControl::partial`] returns: the metrics so far and when the run started.
#[derive(Debug, Clone)]
pub struct PartialRun {
    pub started_at: SystemTime,
    pub metrics: RunMetrics,
}

/// A handle on a run; clone it freely, pass one in `RunOptions::control`.
#[derive(Clone, Default)]
pub struct RunControl {
    inner: Arc<Inner>,
}

struct Inner {
    target: AtomicU64,
    /// Most vusers the run holds at once (`capacity`); `scale` refuses more.
    live_limit: AtomicU64,
    mode: AtomicU8,
    stop: CancellationToken,
    inboxes: Mutex<HashMap<u64, mpsc::UnboundedSender<Arc<str>>>>,
    latest: Mutex<Option<Progress>>,
    server: Mutex<Vec<ServerLoad>>,
    intervals: Mutex<Option<(SystemTime, Weak<Intervals>)>>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            target: AtomicU64::new(NO_TARGET),
            live_limit: AtomicU64::new(u64::MAX),
            mode: AtomicU8::new(LoadMode::Idle as u8),
            stop: CancellationToken::new(),
            inboxes: Mutex::new(HashMap::new()),
            latest: Mutex::new(None),
            server: Mutex::new(Vec::new()),
            intervals: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("mode", &self.mode())
            .field("scale", &self.scale_override())
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RunControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds `vusers` connected in the current closed-model phase, instead of the plan's
    /// target, until that phase ends (the next phase follows the plan again).
    pub fn scale(&self, vusers: u64) -> Result<(), ControlError> {
        match self.mode() {
            LoadMode::Closed if vusers > self.inner.live_limit.load(Ordering::Relaxed) => {
                Err(ControlError::TooMany {
                    asked: vusers,
                    max: self.inner.live_limit.load(Ordering::Relaxed),
                })
            }
            LoadMode::Closed => {
                self.inner
                    .target
                    .store(vusers.min(NO_TARGET - 1), Ordering::Relaxed);
                Ok(())
            }
            LoadMode::Adaptive => Err(ControlError::Adaptive),
            LoadMode::Open => Err(ControlError::NotClosedModel("open-model phase or pause")),
            LoadMode::Idle => Err(ControlError::NotRunning),
        }
    }

    /// The `scale` override in force, if any.
    pub fn scale_override(&self) -> Option<u64> {
        let v = self.inner.target.load(Ordering::Relaxed);
        (v != NO_TARGET).then_some(v)
    }

    /// Makes every connected vuser send `text` as one frame, at once (between two of its own
    /// messages). Returns how many vusers it was handed to.
    pub fn broadcast(&self, text: &str) -> usize {
        let text: Arc<str> = Arc::from(text);
        lock(&self.inner.inboxes)
            .values()
            .filter(|tx| tx.send(Arc::clone(&text)).is_ok())
            .count()
    }

    /// The last finished interval (with the run's totals so far).
    pub fn latest(&self) -> Option<Progress> {
        lock(&self.inner.latest).clone()
    }

    /// The results so far, as they would be if the run ended now (intervals cut so far).
    pub fn partial(&self) -> Result<PartialRun, ControlError> {
        let (started_at, weak) = lock(&self.inner.intervals)
            .clone()
            .ok_or(ControlError::NotRunning)?;
        let intervals = weak.upgrade().ok_or(ControlError::NotRunning)?;
        let metrics = intervals
            .partial()
            .map_err(|e| ControlError::Metrics(e.to_string()))?;
        Ok(PartialRun {
            started_at,
            metrics,
        })
    }

    /// Ends the run early: scheduling stops, vusers are retired, the graceful stop runs and
    /// the results are returned (not counted as interrupted).
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Feeds one server reading (the CLI forwards `monitor` samples here).
    pub fn server_load(&self, load: ServerLoad) {
        lock(&self.inner.server).push(load);
    }

    /// What the runner is generating now.
    pub fn mode(&self) -> LoadMode {
        LoadMode::from_u8(self.inner.mode.load(Ordering::Relaxed))
    }

    // ---- engine side ----

    pub(crate) fn stop_token(&self) -> &CancellationToken {
        &self.inner.stop
    }

    pub(crate) fn set_live_limit(&self, vusers: u64) {
        self.inner.live_limit.store(vusers, Ordering::Relaxed);
    }

    pub(crate) fn set_mode(&self, mode: LoadMode) {
        self.inner.mode.store(mode as u8, Ordering::Relaxed);
        // An override belongs to the phase it was given in.
        self.inner.target.store(NO_TARGET, Ordering::Relaxed);
    }

    pub(crate) fn attach(&self, started_at: SystemTime, intervals: &Arc<Intervals>) {
        *lock(&self.inner.intervals) = Some((started_at, Arc::downgrade(intervals)));
    }

    /// What a reader of the results so far holds while it computes them (tests hold it on
    /// purpose, across the end of the run).
    #[cfg(test)]
    pub(crate) fn intervals_handle(&self) -> Option<Arc<Intervals>> {
        lock(&self.inner.intervals)
            .as_ref()
            .and_then(|(_, weak)| weak.upgrade())
    }

    pub(crate) fn detach(&self) {
        *lock(&self.inner.intervals) = None;
        self.set_mode(LoadMode::Idle);
    }

    pub(crate) fn publish(&self, progress: &Progress) {
        *lock(&self.inner.latest) = Some(progress.clone());
    }

    /// Readings taken since the last call.
    pub(crate) fn take_server_loads(&self) -> Vec<ServerLoad> {
        std::mem::take(&mut *lock(&self.inner.server))
    }

    /// A vuser's inbox for broadcasts; it unregisters when dropped.
    pub(crate) fn inbox(&self, vuser: u64) -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.inboxes).insert(vuser, tx);
        Inbox {
            rx,
            vuser,
            control: Arc::downgrade(&self.inner),
        }
    }
}

/// Broadcast texts for one vuser: its own channel, so waiting on it takes no shared lock.
#[derive(Debug)]
pub(crate) struct Inbox {
    pub rx: mpsc::UnboundedReceiver<Arc<str>>,
    vuser: u64,
    control: Weak<Inner>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunControl")
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(inner) = self.control.upgrade() {
            lock(&inner.inboxes).remove(&self.vuser);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_refused_outside_closed_model_phases() {
        let control = RunControl::new();
        assert_eq!(control.scale(5), Err(ControlError::NotRunning));
        control.set_mode(LoadMode::Adaptive);
        assert_eq!(control.scale(5), Err(ControlError::Adaptive));
        control.set_mode(LoadMode::Closed);
        assert_eq!(control.scale(5), Ok(()));
        assert_eq!(control.scale_override(), Some(5));
        control.set_mode(LoadMode::Closed);
        assert_eq!(
            control.scale_override(),
            None,
            "a new phase clears the override"
        );
        control.set_live_limit(20_000);
        assert!(matches!(
            control.scale(100_000_000_000),
            Err(ControlError::TooMany { max: 20_000, .. })
        ));
        assert_eq!(control.scale_override(), None);
    }

    #[test]
    fn broadcast_reaches_every_registered_inbox_once() {
        let control = RunControl::new();
        let mut a = control.inbox(1);
        let mut b = control.inbox(2);
        let dropped = control.inbox(3);
        drop(dropped);
        assert_eq!(control.broadcast("SAY hi"), 2);
        assert_eq!(a.rx.try_recv().ok().as_deref(), Some("SAY hi"));
        assert_eq!(b.rx.try_recv().ok().as_deref(), Some("SAY hi"));
        assert!(a.rx.try_recv().is_err());
    }
}
