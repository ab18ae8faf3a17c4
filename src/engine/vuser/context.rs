//! What every vuser of a run shares: the compiled program, renderer, data source, codec
//! template, target address, the metric ids, and what the run keeps about its errors (the
//! messages per step, whether anything could connect).
//!
//! Built once per run by the runner; read-only afterwards except the error bookkeeping.

use std::sync::{Arc, OnceLock};

use minijinja::value::Value;
use tokio::time::Instant;

use super::data::DataSource;
use super::errors::{ConnectWatch, ErrorCount, ErrorTable};
use super::program::{Method, Program};
use super::template::{Renderer, Vars};
use crate::engine::error::{ErrorKind, Failure};
use crate::metrics::{CounterId, GaugeId, HistogramId, Recorder, Registry};
use crate::plan::Plan;
use crate::protocol::Endian;
use crate::transport::Connector;
use crate::vocab::names;
use tokio_util::sync::CancellationToken;

/// How many distinct error messages `error_samples` gives.
const ERROR_SAMPLES: usize = 10;

/// Ids of the run-wide metrics the hot path records.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    pub connect: HistogramId,
    pub tls: HistogramId,
    pub handshake: HistogramId,
    /// `ws.pings`, registered for WebSocket targets only (a TCP run shows no such row).
    pub ws_pings: Option<CounterId>,
    pub delivery: HistogramId,
    pub schedule_lag: HistogramId,
    pub skipped: CounterId,
    pub dropped: CounterId,
    pub cancelled: CounterId,
    pub active: GaugeId,
    pub connections: GaugeId,
    pub errors: Vec<CounterId>,
}

impl Ids {
    pub fn register(registry: &mut Registry, websocket: bool) -> Self {
        Ids {
            connect: registry.histogram(names::CONNECT),
            tls: registry.histogram(names::TLS),
            handshake: registry.histogram(names::HANDSHAKE),
            ws_pings: websocket.then(|| registry.counter(names::WS_PINGS)),
            delivery: registry.histogram(names::DELIVERY),
            schedule_lag: registry.histogram(names::SCHEDULE_LAG),
            skipped: registry.counter(names::VUSERS_SKIPPED),
            dropped: registry.counter(names::VUSERS_DROPPED),
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
    /// The run's clock origin.
    pub start: Instant,
    /// The wall clock at `start`, Unix epoch microseconds: stamps carry wall-clock send times
    /// so a delivery between vusers of two shards (two processes) is measured too.
    pub wall_start_us: u64,
    /// Which part of the run this process drives.
    pub shard: crate::engine::load::Shard,
    /// `env` in templates.
    pub env: Value,
    /// Where `log` steps write (`None`: stderr).
    pub on_log: Option<crate::engine::LogFn>,
    errors: ErrorTable,
    /// Stops the run when nothing can connect.
    pub connect_watch: ConnectWatch,
    /// The HTTP client and targets, for plans with HTTP steps.
    pub http: Option<super::http::HttpRun>,
    /// What the `before` flow bound: every vuser starts with it.
    pub shared: OnceLock<Vars>,
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
        (start, wall_start_us): (Instant, u64),
        shard: crate::engine::load::Shard,
        on_log: Option<crate::engine::LogFn>,
        stop: CancellationToken,
    ) -> Self {
        RunContext {
            data: DataSource::new(&plan.payloads, &plan.variables, shard),
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
            wall_start_us,
            shard,
            env: super::template::env_value(),
            on_log,
            errors: ErrorTable::new(),
            connect_watch: ConnectWatch::new(stop),
            http: None,
            shared: OnceLock::new(),
        }
    }

    /// Counts an error: `errors.<kind>`, its step's `failures.<step>`, its message in the
    /// errors table, and a failed connection attempt for the connect watch.
    pub fn count_error(&self, failure: &Failure) {
        if let Some(id) = self.ids.errors.get(failure.kind.index()) {
            self.recorder.incr(*id);
        }
        let step = failure.step.and_then(|s| self.program.step(s));
        if let Some(id) = step.and_then(|s| s.failures) {
            self.recorder.incr(id);
        }
        if step.is_some_and(|s| s.method == Method::Connect) {
            self.connect_watch.failed(failure);
        }
        self.errors.count(failure);
    }

    /// The distinct error messages of the run with their counts, most frequent first.
    pub fn error_table(&self) -> Vec<ErrorCount> {
        self.errors.report(&self.program)
    }

    /// The most frequent error messages of the run (`kind: message`).
    pub fn error_samples(&self) -> Vec<String> {
        self.error_table()
            .into_iter()
            .take(ERROR_SAMPLES)
            .map(|e| format!("{}: {}", e.kind, e.message))
            .collect()
    }
}
