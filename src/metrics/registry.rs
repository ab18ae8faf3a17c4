//! Metric names interned into cheap `Copy` ids, before the run (`Registry`) or, rarely, during
//! it (through `Recorder`/`Collector`, e.g. for an error kind nobody expected).
//!
//! Owns the name table only; where samples go is `recorder.rs`, how they are read back is
//! `collector.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::vocab::{ErrorKind, names};

/// A latency-style metric recorded into an HdrHistogram (values in microseconds).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct HistogramId(pub(crate) u32);

/// A monotonically increasing count, reset every interval.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterId(pub(crate) u32);

/// A level (e.g. `vusers.active`) that goes up and down and is never reset.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct GaugeId(pub(crate) u32);

/// A scenario: metrics registered under it are reported both in the run-wide totals and in
/// that scenario's own table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScenarioId(pub(crate) u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Counter,
    Histogram,
    Gauge,
}

/// One registered metric: its name and the scenario it belongs to (`None` = run-wide only).
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) scope: Option<ScenarioId>,
    pub(crate) name: Arc<str>,
}

#[derive(Clone, Debug)]
pub(crate) struct ScenarioInfo {
    pub(crate) name: Arc<str>,
    pub(crate) weight: u32,
}

/// The name table. Append-only, so an id handed out stays valid for the whole run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    pub(crate) counters: Vec<Slot>,
    pub(crate) histograms: Vec<Slot>,
    pub(crate) gauges: Vec<Slot>,
    pub(crate) scenarios: Vec<ScenarioInfo>,
    index: HashMap<(Kind, Option<u32>, Arc<str>), u32>,
    scenario_index: HashMap<Arc<str>, u32>,
}

impl Names {
    pub(crate) fn intern(&mut self, kind: Kind, scope: Option<ScenarioId>, name: &str) -> u32 {
        let key = (kind, scope.map(|s| s.0), Arc::<str>::from(name));
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let slots = match kind {
            Kind::Counter => &mut self.counters,
            Kind::Histogram => &mut self.histograms,
            Kind::Gauge => &mut self.gauges,
        };
        let id = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        slots.push(Slot {
            scope,
            name: key.2.clone(),
        });
        self.index.insert(key, id);
        id
    }

    pub(crate) fn lookup(&self, kind: Kind, scope: Option<ScenarioId>, name: &str) -> Option<u32> {
        self.index
            .get(&(kind, scope.map(|s| s.0), Arc::<str>::from(name)))
            .copied()
    }

    pub(crate) fn scenario(&mut self, name: &str, weight: u32) -> ScenarioId {
        if let Some(&id) = self.scenario_index.get(name) {
            return ScenarioId(id);
        }
        let id = u32::try_from(self.scenarios.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.scenarios.push(ScenarioInfo {
            name: name.clone(),
            weight,
        });
        self.scenario_index.insert(name, id);
        ScenarioId(id)
    }
}

/// Builder for the metric names known at run start. Registering the same name twice returns
/// the same id. Turn it into a [`crate::metrics::Collector`] with `Collector::new(registry)`.
///
/// Per-scenario metrics: register e.g. `vusers.created` with [`Registry::scenario_counter`]
/// for each scenario and record only those ids; the run-wide `vusers.created` is the sum over
/// scenarios (plus any run-wide-only registration of the same name), computed at snapshot
/// time, so the hot path records once.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub(crate) names: Names,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a scenario (weight as written in the plan, reported as-is).
    pub fn scenario(&mut self, name: &str, weight: u32) -> ScenarioId {
        self.names.scenario(name, weight)
    }

    pub fn counter(&mut self, name: &str) -> CounterId {
        CounterId(self.names.intern(Kind::Counter, None, name))
    }

    pub fn histogram(&mut self, name: &str) -> HistogramId {
        HistogramId(self.names.intern(Kind::Histogram, None, name))
    }

    pub fn gauge(&mut self, name: &str) -> GaugeId {
        GaugeId(self.names.intern(Kind::Gauge, None, name))
    }

    pub fn scenario_counter(&mut self, scenario: ScenarioId, name: &str) -> CounterId {
        CounterId(self.names.intern(Kind::Counter, Some(scenario), name))
    }

    pub fn scenario_histogram(&mut self, scenario: ScenarioId, name: &str) -> HistogramId {
        HistogramId(self.names.intern(Kind::Histogram, Some(scenario), name))
    }

    pub fn scenario_gauge(&mut self, scenario: ScenarioId, name: &str) -> GaugeId {
        GaugeId(self.names.intern(Kind::Gauge, Some(scenario), name))
    }

    /// Registers the run-wide fixed metrics of DESIGN §3 (not the per-expect latencies), and
    /// every `errors.<kind>`, so they appear (as zeros) in every result even when nothing
    /// happened.
    pub fn with_standard_metrics(mut self) -> Self {
        for name in names::STANDARD_COUNTERS {
            self.counter(name);
        }
        for name in names::STANDARD_HISTOGRAMS {
            self.histogram(name);
        }
        for name in names::STANDARD_GAUGES {
            self.gauge(name);
        }
        for kind in ErrorKind::ALL {
            self.counter(&names::error(kind));
        }
        self
    }
}
