//! The hot path: `Recorder` writes samples into a shard owned by the current OS thread.
//!
//! Each (thread, collector) pair gets one shard, created on the thread's first sample and
//! registered with the collector. The shard's mutex is only ever contended by the collector's
//! interval swap, so a sample costs a thread-local lookup, an uncontended lock and an array
//! update: no channel message, no allocation (histograms are allocated once per shard and
//! metric, then reset in place). Reading shards back is `collector.rs`'s job.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;

use super::collector::Shared;
use super::registry::{CounterId, GaugeId, HistogramId, Kind, ScenarioId};

/// Histogram ceiling: one hour in microseconds. Larger samples are recorded as the ceiling
/// and counted in `metrics.clamped`, so a bogus value cannot blow the histogram up.
pub const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// Significant digits of every histogram (DESIGN §3).
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// A new empty histogram with the crate-wide precision, auto-resizing up to what is recorded.
pub fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    let mut h =
        Histogram::new(HISTOGRAM_SIGFIG).expect("3 significant digits is a valid precision");
    h.auto(true);
    h
}

#[derive(Default)]
pub(crate) struct ShardData {
    pub(crate) counters: Vec<u64>,
    pub(crate) histograms: Vec<Option<Histogram<u64>>>,
    /// Cumulative since the shard was created: gauges are levels, never reset.
    pub(crate) gauge_deltas: Vec<i64>,
    pub(crate) clamped: u64,
}

impl ShardData {
    fn record_us(&mut self, id: HistogramId, value_us: u64) {
        let index = id.0 as usize;
        if self.histograms.len() <= index {
            self.histograms.resize_with(index + 1, || None);
        }
        let value = if value_us > HISTOGRAM_MAX_US {
            self.clamped += 1;
            HISTOGRAM_MAX_US
        } else {
            value_us
        };
        let recorded = self
            .histograms
            .get_mut(index)
            .map(|slot| slot.get_or_insert_with(new_histogram).record(value).is_ok());
        // `record` (not `saturating_record`, which clamps instead of growing) can only
        // fail if the histogram could not grow; count the loss rather than hide it.
        if recorded != Some(true) {
            self.clamped += 1;
        }
    }

    fn add(&mut self, id: CounterId, n: u64) {
        let index = id.0 as usize;
        if self.counters.len() <= index {
            self.counters.resize(index + 1, 0);
        }
        if let Some(c) = self.counters.get_mut(index) {
            *c = c.saturating_add(n);
        }
    }
}

pub(crate) struct Shard {
    pub(crate) data: Mutex<ShardData>,
    /// Set when the collector is gone, so threads drop their reference to this shard.
    pub(crate) orphaned: AtomicBool,
}

impl Shard {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ShardData> {
        // A panic while holding the lock leaves plain numbers behind, still usable.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct LocalShard {
    collector_id: u64,
    shard: Arc<Shard>,
}

thread_local! {
    static LOCAL_SHARDS: RefCell<Vec<LocalShard>> = const { RefCell::new(Vec::new()) };
}

/// The handle every vuser task records through. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Recorder {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("collector_id", &self.shared.id)
            .finish()
    }
}

impl Recorder {
    /// Records one latency-style sample in microseconds.
    pub fn record_us(&self, id: HistogramId, value_us: u64) {
        self.with_shard(|data| data.record_us(id, value_us));
    }

    /// Records a `Duration` sample and adds to counters under one shard lock (a reply's
    /// latency together with its message and byte counts).
    pub fn record_and_add(
        &self,
        id: HistogramId,
        value: std::time::Duration,
        counts: &[(CounterId, u64)],
    ) {
        let value_us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.with_shard(|data| {
            data.record_us(id, value_us);
            for &(counter, n) in counts {
                data.add(counter, n);
            }
        });
    }

    /// Records several `Duration` samples and adds to counters under one shard lock (an HTTP
    /// response: its endpoint's and the run's response time, its counts).
    pub fn record_many_and_add(
        &self,
        samples: &[(HistogramId, std::time::Duration)],
        counts: &[(CounterId, u64)],
    ) {
        self.with_shard(|data| {
            for &(id, value) in samples {
                data.record_us(id, u64::try_from(value.as_micros()).unwrap_or(u64::MAX));
            }
            for &(counter, n) in counts {
                data.add(counter, n);
            }
        });
    }

    /// Records a `Duration` sample (saturating at the histogram ceiling).
    pub fn record(&self, id: HistogramId, value: std::time::Duration) {
        self.record_us(id, u64::try_from(value.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn add(&self, id: CounterId, n: u64) {
        self.with_shard(|data| data.add(id, n));
    }

    /// Adds to several counters under one shard lock: what a message costs to count (messages
    /// and bytes) is one lookup, not one per counter.
    pub fn add_many(&self, counts: &[(CounterId, u64)]) {
        self.with_shard(|data| {
            for &(id, n) in counts {
                data.add(id, n);
            }
        });
    }

    pub fn incr(&self, id: CounterId) {
        self.add(id, 1);
    }

    pub fn gauge_add(&self, id: GaugeId, delta: i64) {
        self.with_shard(|data| {
            let index = id.0 as usize;
            if data.gauge_deltas.len() <= index {
                data.gauge_deltas.resize(index + 1, 0);
            }
            if let Some(g) = data.gauge_deltas.get_mut(index) {
                *g = g.saturating_add(delta);
            }
        });
    }

    /// Sets a gauge to an absolute level. Slow path (locks every shard): meant for a controller
    /// setting e.g. a target, not for per-message use. Concurrent `gauge_add`s on the same
    /// gauge race with it, as they would with any "set".
    pub fn gauge_set(&self, id: GaugeId, level: i64) {
        self.shared.gauge_set(id, level);
    }

    /// Registers (or finds) a run-wide counter during the run. Slow path: takes a write lock
    /// on the name table; cache the id.
    pub fn counter(&self, name: &str) -> CounterId {
        CounterId(self.shared.intern(Kind::Counter, None, name))
    }

    pub fn histogram(&self, name: &str) -> HistogramId {
        HistogramId(self.shared.intern(Kind::Histogram, None, name))
    }

    pub fn gauge(&self, name: &str) -> GaugeId {
        GaugeId(self.shared.intern(Kind::Gauge, None, name))
    }

    pub fn scenario_counter(&self, scenario: ScenarioId, name: &str) -> CounterId {
        CounterId(self.shared.intern(Kind::Counter, Some(scenario), name))
    }

    pub fn scenario_histogram(&self, scenario: ScenarioId, name: &str) -> HistogramId {
        HistogramId(self.shared.intern(Kind::Histogram, Some(scenario), name))
    }

    /// Finds an already registered run-wide metric without registering it.
    pub fn find_counter(&self, name: &str) -> Option<CounterId> {
        self.shared.lookup(Kind::Counter, None, name).map(CounterId)
    }

    pub fn find_histogram(&self, name: &str) -> Option<HistogramId> {
        self.shared
            .lookup(Kind::Histogram, None, name)
            .map(HistogramId)
    }

    fn with_shard(&self, f: impl FnOnce(&mut ShardData)) {
        let id = self.shared.id;
        let mut f = Some(f);
        let _ = LOCAL_SHARDS.try_with(|cell| {
            let Ok(mut local) = cell.try_borrow_mut() else {
                return;
            };
            // Nearly always the first entry: one collector per run.
            if let Some(l) = local.iter().find(|l| l.collector_id == id) {
                if let Some(f) = f.take() {
                    f(&mut l.shard.lock());
                }
                return;
            }
            // First sample of this thread for this collector: forget shards of collectors
            // that are gone, then register a fresh one.
            local.retain(|l| !l.shard.orphaned.load(Ordering::Relaxed));
            let shard = self.shared.new_shard();
            if let Some(f) = f.take() {
                f(&mut shard.lock());
            }
            local.push(LocalShard {
                collector_id: id,
                shard,
            });
        });
        // Only reached while the thread is being torn down (thread-locals gone) or if recording
        // re-entered itself: use a dedicated shard rather than lose the sample.
        if let Some(f) = f.take() {
            f(&mut self.shared.new_shard().lock());
        }
    }
}
