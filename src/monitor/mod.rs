//! Sampling of a server process and the host: process CPU %, RSS and threads; host CPU %,
//! memory and network bytes; established TCP connections on a local port.
//!
//! [`run_monitor`] samples on a `tokio::time` interval until a duration, a stop token or the
//! process's exit, handing each sample to a callback (the CLI prints it, `chatload run` stores
//! it, the adaptive controller keeps the latest CPU/memory %). [`Sampler`] is the synchronous
//! single reading underneath. This module imports nothing else from the crate; it does not
//! print, write files, or decide what a sample means for a run.

mod procfs;
mod sample;
mod sampler;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use sample::MonitorSample;
pub use sampler::Sampler;

/// Which process to monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessSelector {
    /// Exactly this process.
    Pid(u32),
    /// Every live process with this name (or executable file name), numbers summed.
    Name(String),
}

impl fmt::Display for ProcessSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessSelector::Pid(pid) => write!(f, "pid {pid}"),
            ProcessSelector::Name(name) => write!(f, "process named `{name}`"),
        }
    }
}

impl ProcessSelector {
    fn not_running(&self) -> String {
        match self {
            ProcessSelector::Pid(pid) => format!("no process with pid {pid} is running"),
            ProcessSelector::Name(name) => format!("no process named `{name}` is running"),
        }
    }

    /// A command that lists the candidates, for error messages.
    fn lookup_hint(&self) -> String {
        match self {
            ProcessSelector::Pid(pid) => {
                format!("check it with `ps -p {pid}` or list with `ps -e`")
            }
            ProcessSelector::Name(name) => format!(
                "names match exactly (Linux keeps 15 characters); list candidates with \
                 `ps -eo pid,comm,args | grep {name}`"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{}; {}", selector.not_running(), selector.lookup_hint())]
    ProcessNotFound { selector: ProcessSelector },
    /// Returned by [`Sampler::sample`]; [`run_monitor`] turns it into
    /// [`StopReason::ProcessExited`] and keeps the samples.
    #[error("the monitored process (pid {pid}) exited")]
    ProcessExited { pid: u32 },
    #[error(
        "cannot read {}: {source}; counting connections needs Linux /proc (omit the port to \
         monitor without it)",
        path.display()
    )]
    ProcUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the sampling interval must be longer than zero")]
    ZeroInterval,
    #[error("system information is not available on this platform: {0}")]
    System(String),
    #[error("the sampling task failed: {0}")]
    Task(String),
}

/// What to monitor and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    pub selector: ProcessSelector,
    /// Count established connections on this local port.
    pub port: Option<u16>,
    pub interval: Duration,
    /// Stop after this long; `None` runs until the stop token or the process's exit.
    pub duration: Option<Duration>,
}

/// Why [`run_monitor`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    DurationElapsed,
    /// The stop token was cancelled (Ctrl-C, end of a run).
    Stopped,
    ProcessExited,
}

/// Everything one monitoring session produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRun {
    pub samples: Vec<MonitorSample>,
    pub stop_reason: StopReason,
    /// The pids matched when monitoring started.
    pub pids: Vec<u32>,
}

/// Samples every `config.interval` (the first sample one interval after the baseline reading)
/// and calls `on_sample` with each, until the last sample due within `config.duration` was
/// taken (a duration shorter than the interval still gets one sample), `stop` is cancelled, or
/// the process exits.
///
/// Readings run on tokio's blocking pool, since scanning `/proc` can take milliseconds that
/// must not stall the load generator's tasks. Samples are kept in memory (a day at 1 s is
/// ~86 400 samples, some 15 MB). Fails only before the first sample (process not found,
/// unreadable `/proc`, zero interval) or on an unexpected read error; the exit of the
/// process is a normal stop.
pub async fn run_monitor<F>(
    config: MonitorConfig,
    stop: CancellationToken,
    mut on_sample: F,
) -> Result<MonitorRun, MonitorError>
where
    F: FnMut(&MonitorSample) + Send,
{
    if config.interval.is_zero() {
        return Err(MonitorError::ZeroInterval);
    }
    let selector = config.selector.clone();
    let port = config.port;
    let mut sampler = blocking(move || Sampler::new(selector, port)).await??;
    let pids = sampler.pids();
    let start = Instant::now();
    let deadline = config.duration.map(|duration| start + duration);
    let mut ticker = tokio::time::interval_at(start + config.interval, config.interval);
    // A reading that overran its slot should not be followed by a burst of catch-up readings.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::new();

    let stop_reason = loop {
        let due = tokio::select! {
            biased;
            () = stop.cancelled() => break StopReason::Stopped,
            due = ticker.tick() => due,
        };
        let (returned, result) = blocking(move || {
            let result = sampler.sample();
            (sampler, result)
        })
        .await?;
        sampler = returned;
        match result {
            Ok(sample) => {
                on_sample(&sample);
                samples.push(sample);
            }
            Err(MonitorError::ProcessExited { .. }) => break StopReason::ProcessExited,
            Err(err) => return Err(err),
        }
        // The next sample would be due after the deadline: this was the last one.
        if deadline.is_some_and(|deadline| due + config.interval > deadline) {
            break StopReason::DurationElapsed;
        }
    };
    Ok(MonitorRun {
        samples,
        stop_reason,
        pids,
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, MonitorError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| MonitorError::Task(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interval_ms: u64, duration_ms: Option<u64>) -> MonitorConfig {
        MonitorConfig {
            selector: ProcessSelector::Pid(std::process::id()),
            port: None,
            interval: Duration::from_millis(interval_ms),
            duration: duration_ms.map(Duration::from_millis),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn takes_one_sample_per_interval_until_the_duration() -> Result<(), MonitorError> {
        let mut seen = 0;
        let run = run_monitor(config(200, Some(1000)), CancellationToken::new(), |_| {
            seen += 1
        })
        .await?;
        assert_eq!(run.stop_reason, StopReason::DurationElapsed);
        assert_eq!(run.samples.len(), 5);
        assert_eq!(seen, 5);
        assert_eq!(run.pids, vec![std::process::id()]);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn duration_shorter_than_interval_takes_one_sample() -> Result<(), MonitorError> {
        let run = run_monitor(config(1000, Some(10)), CancellationToken::new(), |_| {}).await?;
        assert_eq!(run.samples.len(), 1);
        assert_eq!(run.stop_reason, StopReason::DurationElapsed);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_cancelled() -> Result<(), MonitorError> {
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        let mut count = 0;
        let run = run_monitor(config(100, None), stop, |_| {
            count += 1;
            if count == 3 {
                trigger.cancel();
            }
        })
        .await?;
        assert_eq!(run.stop_reason, StopReason::Stopped);
        assert_eq!(run.samples.len(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn rejects_a_zero_interval() {
        let result = run_monitor(config(0, None), CancellationToken::new(), |_| {}).await;
        assert!(matches!(result, Err(MonitorError::ZeroInterval)));
    }

    #[tokio::test]
    async fn unknown_name_is_not_found_with_a_hint() {
        let mut config = config(100, Some(100));
        config.selector = ProcessSelector::Name("no-such-chatload-process".into());
        let err = run_monitor(config, CancellationToken::new(), |_| {})
            .await
            .err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(matches!(err, Some(MonitorError::ProcessNotFound { .. })));
        assert!(message.contains("no-such-chatload-process") && message.contains("ps "));
    }
}
