//! `Collector`: owns the shards and the name table, and cuts intervals (`snapshot`,
//! `begin_phase`, `end_phase`) by draining every shard into an [`IntervalSnapshot`].
//!
//! It does not keep history: whole-run and per-phase totals are the `Aggregator`'s job.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::recorder::{Recorder, Shard, ShardData, new_histogram};
use super::registry::{Kind, Names, Registry, ScenarioId};
use super::snapshot::{IntervalSnapshot, PhaseTag, ScenarioSnapshot};
use crate::vocab::names::CLAMPED;

static NEXT_COLLECTOR_ID: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every guarded value here is plain numbers that stay consistent across a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct IntervalState {
    start: SystemTime,
    phase: Option<PhaseTag>,
}

/// State shared by the collector and every recorder.
pub(crate) struct Shared {
    pub(crate) id: u64,
    names: RwLock<Names>,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Gauge levels not held by a live shard: deltas of retired shards and `gauge_set`
    /// adjustments.
    gauge_base: Mutex<Vec<i64>>,
    interval: Mutex<IntervalState>,
}

impl Shared {
    pub(crate) fn new_shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard {
            data: Mutex::new(ShardData::default()),
            orphaned: AtomicBool::new(false),
        });
        lock(&self.shards).push(shard.clone());
        shard
    }

    pub(crate) fn intern(&self, kind: Kind, scope: Option<ScenarioId>, name: &str) -> u32 {
        if let Some(id) = self.lookup(kind, scope, name) {
            return id;
        }
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .intern(kind, scope, name)
    }

    pub(crate) fn lookup(&self, kind: Kind, scope: Option<ScenarioId>, name: &str) -> Option<u32> {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .lookup(kind, scope, name)
    }

    pub(crate) fn gauge_set(&self, id: super::GaugeId, level: i64) {
        let index = id.0 as usize;
        let shards = lock(&self.shards);
        let held: i64 = shards
            .iter()
            .map(|s| s.lock().gauge_deltas.get(index).copied().unwrap_or(0))
            .fold(0, i64::saturating_add);
        let mut base = lock(&self.gauge_base);
        if base.len() <= index {
            base.resize(index + 1, 0);
        }
        if let Some(b) = base.get_mut(index) {
            *b = level.saturating_sub(held);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for shard in lock(&self.shards).iter() {
            shard.orphaned.store(true, Ordering::Relaxed);
        }
    }
}

/// Owns the recording state of one run. Create it from a [`Registry`] right before load
/// starts (the first interval starts then), hand [`Collector::recorder`] clones to the vusers,
/// and call [`Collector::snapshot`] every interval (default 1 s) from one task.
///
/// Phases: call [`Collector::begin_phase`] when a phase starts and [`Collector::end_phase`]
/// after the last one. Each cuts the current interval at that instant (so an interval never
/// straddles two phases) and returns the cut-off snapshot, which must go to the same place as
/// the periodic ones. Every snapshot carries the phase that was active during all of it.
pub struct Collector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Collector {
    pub fn new(registry: Registry) -> Self {
        Self::with_start(registry, SystemTime::now())
    }

    /// Like `new`, with the first interval starting at `start` (for virtual clocks in tests).
    pub fn with_start(registry: Registry, start: SystemTime) -> Self {
        Self {
            shared: Arc::new(Shared {
                id: NEXT_COLLECTOR_ID.fetch_add(1, Ordering::Relaxed),
                names: RwLock::new(registry.names),
                shards: Mutex::new(Vec::new()),
                gauge_base: Mutex::new(Vec::new()),
                interval: Mutex::new(IntervalState { start, phase: None }),
            }),
        }
    }

    pub fn recorder(&self) -> Recorder {
        Recorder {
            shared: self.shared.clone(),
        }
    }

    /// Ends the current interval now and starts the next one.
    pub fn snapshot(&self) -> IntervalSnapshot {
        self.snapshot_at(SystemTime::now())
    }

    /// Ends the current interval at `end` (the caller's clock) and starts the next one there.
    pub fn snapshot_at(&self, end: SystemTime) -> IntervalSnapshot {
        let mut state = lock(&self.shared.interval);
        self.cut(&mut state, end)
    }

    /// Cuts the current interval now and attributes everything after it to phase `index`.
    pub fn begin_phase(&self, index: usize, name: &str) -> IntervalSnapshot {
        self.begin_phase_at(index, name, SystemTime::now())
    }

    pub fn begin_phase_at(&self, index: usize, name: &str, at: SystemTime) -> IntervalSnapshot {
        let mut state = lock(&self.shared.interval);
        let snapshot = self.cut(&mut state, at);
        state.phase = Some(PhaseTag {
            index,
            name: name.to_owned(),
        });
        snapshot
    }

    /// Cuts the current interval now; what follows (e.g. the graceful stop) is in no phase.
    pub fn end_phase(&self) -> IntervalSnapshot {
        self.end_phase_at(SystemTime::now())
    }

    pub fn end_phase_at(&self, at: SystemTime) -> IntervalSnapshot {
        let mut state = lock(&self.shared.interval);
        let snapshot = self.cut(&mut state, at);
        state.phase = None;
        snapshot
    }

    fn cut(&self, state: &mut IntervalState, end: SystemTime) -> IntervalSnapshot {
        // The read lock keeps the name table stable while shards are read; a concurrent
        // registration waits the few microseconds this takes.
        let names = self
            .shared
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut counters = vec![0u64; names.counters.len()];
        let mut histograms: Vec<Option<Histogram<u64>>> = Vec::new();
        histograms.resize_with(names.histograms.len(), || None);
        let mut gauges = lock(&self.shared.gauge_base).clone();
        gauges.resize(names.gauges.len().max(gauges.len()), 0);
        let mut clamped = 0u64;

        {
            let mut shards = lock(&self.shared.shards);
            let mut base = lock(&self.shared.gauge_base);
            shards.retain(|shard| {
                // Checked before draining: a shard only the collector holds belongs to a
                // thread that has exited, so nothing can be added to it after this drain.
                let orphan = Arc::strong_count(shard) == 1;
                let mut data = shard.lock();
                drain(
                    &mut data,
                    &mut counters,
                    &mut histograms,
                    &mut gauges,
                    &mut clamped,
                );
                if orphan {
                    // Its gauge levels stay part of the run.
                    if base.len() < data.gauge_deltas.len() {
                        base.resize(data.gauge_deltas.len(), 0);
                    }
                    for (b, d) in base.iter_mut().zip(data.gauge_deltas.iter()) {
                        *b = b.saturating_add(*d);
                    }
                }
                !orphan
            });
        }

        let mut snapshot = IntervalSnapshot::empty(state.start, end);
        snapshot.phase = state.phase.clone();
        snapshot.scenarios = names
            .scenarios
            .iter()
            .map(|s| ScenarioSnapshot {
                name: s.name.to_string(),
                weight: s.weight,
                counters: BTreeMap::new(),
                gauges: BTreeMap::new(),
                histograms: BTreeMap::new(),
            })
            .collect();

        for (slot, value) in names.counters.iter().zip(counters) {
            *snapshot.counters.entry(slot.name.to_string()).or_insert(0) += value;
            if let Some(sc) = slot
                .scope
                .and_then(|s| snapshot.scenarios.get_mut(s.0 as usize))
            {
                *sc.counters.entry(slot.name.to_string()).or_insert(0) += value;
            }
        }
        if clamped > 0 {
            *snapshot.counters.entry(CLAMPED.to_owned()).or_insert(0) += clamped;
        }
        for (slot, level) in names.gauges.iter().zip(gauges) {
            let entry = snapshot.gauges.entry(slot.name.to_string()).or_default();
            entry.last = entry.last.saturating_add(level);
            entry.max = entry.last;
            if let Some(sc) = slot
                .scope
                .and_then(|s| snapshot.scenarios.get_mut(s.0 as usize))
            {
                let e = sc.gauges.entry(slot.name.to_string()).or_default();
                e.last = e.last.saturating_add(level);
                e.max = e.last;
            }
        }
        for (slot, hist) in names.histograms.iter().zip(histograms) {
            let Some(hist) = hist else { continue };
            add_into(&mut snapshot.histograms, &slot.name, &hist);
            if let Some(sc) = slot
                .scope
                .and_then(|s| snapshot.scenarios.get_mut(s.0 as usize))
            {
                add_into(&mut sc.histograms, &slot.name, &hist);
            }
        }

        state.start = end;
        snapshot
    }
}

pub(crate) fn add_into(
    map: &mut BTreeMap<String, Histogram<u64>>,
    name: &str,
    hist: &Histogram<u64>,
) {
    if let Some(existing) = map.get_mut(name) {
        // Auto-resizing histograms accept any addend; nothing can fail here.
        let _ = existing.add(hist);
    } else {
        let mut copy = new_histogram();
        let _ = copy.add(hist);
        map.insert(name.to_owned(), copy);
    }
}

fn drain(
    data: &mut ShardData,
    counters: &mut [u64],
    histograms: &mut [Option<Histogram<u64>>],
    gauges: &mut [i64],
    clamped: &mut u64,
) {
    for (total, value) in counters.iter_mut().zip(data.counters.iter_mut()) {
        *total = total.saturating_add(std::mem::take(value));
    }
    for (total, hist) in histograms.iter_mut().zip(data.histograms.iter_mut()) {
        let Some(hist) = hist.as_mut() else { continue };
        if hist.is_empty() {
            continue;
        }
        let _ = total.get_or_insert_with(new_histogram).add(&*hist);
        // Reset in place: the shard keeps its allocation for the next interval.
        hist.reset();
    }
    for (total, delta) in gauges.iter_mut().zip(data.gauge_deltas.iter()) {
        *total = total.saturating_add(*delta);
    }
    *clamped = clamped.saturating_add(std::mem::take(&mut data.clamped));
}
