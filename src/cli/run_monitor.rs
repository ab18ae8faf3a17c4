//! `config.monitor` during `chatload run`: sample the server process while the run goes, hand
//! each reading to the engine (adaptive CPU/memory limits) and put the samples in the result.
//!
//! Sampling itself is `monitor`'s; this is only the wiring between it, the engine and the
//! report model.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{RunControl, ServerLoad};
use crate::monitor::{self, MonitorConfig, MonitorError, MonitorRun};
use crate::plan::{self, Plan};
use crate::report;

/// Sampling in the background until [`Sampling::finish`].
pub(super) struct Sampling {
    stop: CancellationToken,
    task: JoinHandle<Result<MonitorRun, MonitorError>>,
}

/// Starts sampling when the plan has `monitor`.
pub(super) fn start(plan: &Plan, control: &RunControl) -> Option<Sampling> {
    let config = plan.monitor.as_ref()?;
    let selector = match &config.process {
        plan::ProcessSelector::Pid(pid) => monitor::ProcessSelector::Pid(*pid),
        plan::ProcessSelector::Name(name) => monitor::ProcessSelector::Name(name.clone()),
    };
    let config = MonitorConfig {
        selector,
        port: config.port,
        interval: config.interval,
        duration: None,
    };
    let stop = CancellationToken::new();
    let control = control.clone();
    let task = tokio::spawn(monitor::run_monitor(config, stop.clone(), move |sample| {
        control.server_load(ServerLoad {
            at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(sample.unix_time_ms),
            cpu_percent: sample.process_cpu_percent,
            memory_percent: sample.process_memory_percent(),
        });
    }));
    Some(Sampling { stop, task })
}

impl Sampling {
    /// Stops sampling; the samples, or why there are none (a warning for the result).
    pub async fn finish(self) -> Result<Vec<report::MonitorSample>, String> {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(run)) => Ok(run.samples.iter().map(to_report).collect()),
            Ok(Err(err)) => Err(format!("monitor: {err}")),
            Err(err) => Err(format!("monitor: the sampling task failed: {err}")),
        }
    }
}

fn to_report(s: &monitor::MonitorSample) -> report::MonitorSample {
    report::MonitorSample {
        unix_time_ms: s.unix_time_ms,
        elapsed_ms: s.elapsed_ms,
        process_count: s.process_count,
        process_cpu_percent: s.process_cpu_percent,
        process_rss_bytes: s.process_rss_bytes,
        process_threads: s.process_threads,
        host_cpu_percent: s.host_cpu_percent,
        host_memory_used_bytes: s.host_memory_used_bytes,
        host_memory_total_bytes: s.host_memory_total_bytes,
        net_received_bytes: s.net_received_bytes,
        net_transmitted_bytes: s.net_transmitted_bytes,
        tcp_established: s.tcp_established,
    }
}
