//! What every vuser of a run shares: the compiled program, renderer, data source, codec
//! template, target address, the metric ids and a few first error messages for the user.
//!
//! Built once per run by the runner; read-only afterwards except the error sample.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::Value;
use tokio::time::Instant;

use super::data::DataSource;
use super::program::Program;
use super::template::Renderer;
use crate::engine::error::{ErrorKind, Failure};
use crate::metrics::{CounterId, GaugeId, HistogramId, Recorder, Registry};
use crate::plan::Plan;
use crate::protocol::Endian;
use crate::transport::Connector;
use crate::vocab::names;

/// How many distinct error messages a run keeps to show the user.
const ERROR_SAMPLES: usize = 10;

/// Ids of the run-wide metrics the hot path records.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    pub connect: HistogramId,
    pub tls: HistogramId,
    pub handshake: HistogramId,
    pub ws_pings: CounterId,
    pub delivery: HistogramId,
    pub schedule_lag: HistogramId,
    pub skipped: CounterId,
    pub cancelled: CounterId,
    pub active: GaugeId,
    pub connections: GaugeId,
    pub errors: Vec<CounterId>,
}

impl Ids {
    pub fn register(registry: &mut Registry) -> Self {
        Ids {
            connect: registry.histogram(names::CONNECT),
            tls: registry.histogram(names::TLS),
            handshake: registry.histogram(names::HANDSHAKE),
            ws_pings: registry.counter(names::WS_PINGS),
            delivery: registry.histogram(names::DELIVERY),
            schedule_lag: registry.histogram(names::SCHEDULE_LAG),
            skipped: registry.counter(names::VUSERS_SKIPPED),
            cancelled: registry.counter(names::VUSERS_CANCELLED),
            active: registry.gauge(names::VUSERS_ACTIVE),
            connections: registry.gauge(names::CONNECTIONS_OPEN),
            errors: ErrorKind::ALL
                .iter()
                .map(|k| registry.counter(&names::error(*k)))
                .collect(),
        }
    }
}

pub(crate) struct RunContext {
    pub plan: Arc<Plan>,
    pub program: Program,
    pub renderer: Renderer,
    pub data: DataSource,
    pub endian: Endian,
    /// Opens connections to the target (resolved, TLS configured once per run).
    pub connector: Connector,
    pub recorder: Recorder,
    pub ids: Ids,
    pub run_id: Arc<str>,
    /// The run seed every random choice derives from (`seed`).
    pub seed: u64,
    /// The run's clock origin (stamps count from it).
    pub start: Instant,
    /// `env` in templates.
    pub env: Value,
    /// Where `log` steps write (`None`: stderr).
    pub on_log: Option<crate::engine::LogFn>,
    errors_seen: Mutex<Vec<String>>,
    /// Set once `errors_seen` is full, so an error storm does not queue on its lock.
    errors_full: AtomicBool,
}

impl RunContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: Arc<Plan>,
        program: Program,
        renderer: Renderer,
        connector: Connector,
        endian: Endian,
        recorder: Recorder,
        ids: Ids,
        run_id: Arc<str>,
        seed: u64,
        start: Instant,
        on_log: Option<crate::engine::LogFn>,
    ) -> Self {
        RunContext {
            data: DataSource::new(&plan.payloads, &plan.variables),
            plan,
            program,
            renderer,
            connector,
            endian,
            recorder,
            ids,
            run_id,
            seed,
            start,
            env: super::template::env_value(),
            on_log,
            errors_seen: Mutex::new(Vec::new()),
            errors_full: AtomicBool::new(false),
        }
    }

    /// Counts an error and keeps its message if it is one of the first distinct ones.
    pub fn count_error(&self, failure: &Failure) {
        if let Some(id) = self.ids.errors.get(failure.kind.index()) {
            self.recorder.incr(*id);
        }
        if self.errors_full.load(Ordering::Relaxed) {
            return;
        }
        let mut seen = self
            .errors_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.len() < ERROR_SAMPLES {
            let message = failure.to_string();
            if !seen.contains(&message) {
                seen.push(message);
            }
        } else {
            self.errors_full.store(true, Ordering::Relaxed);
        }
    }

    /// The first distinct error messages of the run.
    pub fn error_samples(&self) -> Vec<String> {
        self.errors_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
