//! [`Sampler`]: one synchronous reading of the selected process(es) and the host per call.
//!
//! Process and host figures come from sysinfo; thread counts and TCP connections from
//! [`procfs`](super::procfs). CPU % is computed here from accumulated CPU time and wall time
//! between two readings, so it does not depend on sysinfo's own refresh bookkeeping. Timing of
//! the readings (the interval) belongs to [`run_monitor`](super::run_monitor), not to this file.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sysinfo::{
    MemoryRefreshKind, Networks, Pid, Process, ProcessRefreshKind, ProcessStatus,
    ProcessesToUpdate, System, UpdateKind,
};

use super::sample::{cpu_percent_of_one_core, round_centi};
use super::{MonitorError, MonitorSample, ProcessSelector, procfs};

/// Linux keeps only this many bytes of a process name (`comm`).
const LINUX_COMM_BYTES: usize = 15;

/// Samples one process (by pid) or every process with a given name, plus the host.
///
/// Selection by name sums all matching processes (a server with worker processes is one
/// server) and re-resolves the name at every reading, so workers that come and go are
/// followed. The sampler's own process is never matched.
pub struct Sampler {
    selector: ProcessSelector,
    port: Option<u16>,
    system: System,
    networks: Networks,
    own_pid: u32,
    /// Accumulated CPU time of each tracked pid at the previous reading.
    cpu_time_ms: HashMap<u32, u64>,
    last_reading: Instant,
    started: Instant,
}

/// What is read per process before summing.
struct ProcessReading {
    pid: u32,
    cpu_time_ms: u64,
    rss_bytes: u64,
}

impl Sampler {
    /// Finds the process(es) and takes the baseline reading that the first sample's CPU % and
    /// network deltas are measured against.
    ///
    /// Fails with [`MonitorError::ProcessNotFound`] when nothing matches, and with
    /// [`MonitorError::ProcUnreadable`] when a port is given but the TCP tables cannot be read.
    pub fn new(selector: ProcessSelector, port: Option<u16>) -> Result<Self, MonitorError> {
        let system = System::new().map_err(|err| MonitorError::System(err.to_string()))?;
        let networks = Networks::new().map_err(|err| MonitorError::System(err.to_string()))?;
        let now = Instant::now();
        let mut sampler = Sampler {
            selector,
            port,
            system,
            networks,
            own_pid: std::process::id(),
            cpu_time_ms: HashMap::new(),
            last_reading: now,
            started: now,
        };
        let readings = sampler.read_processes();
        let Some(first) = readings.first() else {
            return Err(MonitorError::ProcessNotFound {
                selector: sampler.selector.clone(),
            });
        };
        if let Some(port) = port {
            let owners: Vec<u32> = readings.iter().map(|r| r.pid).collect();
            procfs::established_on_port(first.pid, &owners, port)?;
        }
        sampler.cpu_time_ms = readings
            .iter()
            .map(|reading| (reading.pid, reading.cpu_time_ms))
            .collect();
        sampler.last_reading = Instant::now();
        sampler.started = sampler.last_reading;
        sampler.system.refresh_cpu_usage();
        sampler.networks.refresh(true);
        Ok(sampler)
    }

    /// The pids matched at the last reading, ascending.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.cpu_time_ms.keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    /// Takes one reading. Returns [`MonitorError::ProcessExited`] once nothing matches any more
    /// (callers stop there and keep what they have).
    pub fn sample(&mut self) -> Result<MonitorSample, MonitorError> {
        let readings = self.read_processes();
        let now = Instant::now();
        let Some(first) = readings.first() else {
            let pid = self.pids().first().copied().unwrap_or_default();
            return Err(MonitorError::ProcessExited { pid });
        };
        let first_pid = first.pid;

        let mut cpu_time_used_ms = 0_u64;
        let mut rss_bytes = 0_u64;
        for reading in &readings {
            // A process seen for the first time has no baseline: it counts from the next
            // reading on, rather than with its whole lifetime's CPU time.
            if let Some(previous) = self.cpu_time_ms.get(&reading.pid) {
                cpu_time_used_ms =
                    cpu_time_used_ms.saturating_add(reading.cpu_time_ms.saturating_sub(*previous));
            }
            rss_bytes = rss_bytes.saturating_add(reading.rss_bytes);
        }
        let wall_time_ms = millis(now.duration_since(self.last_reading));
        self.cpu_time_ms = readings
            .iter()
            .map(|reading| (reading.pid, reading.cpu_time_ms))
            .collect();
        self.last_reading = now;

        let process_threads = self.threads(&readings)?;
        let tcp_established = match self.port {
            Some(port) => {
                let owners: Vec<u32> = readings.iter().map(|r| r.pid).collect();
                Some(procfs::established_on_port(first_pid, &owners, port)?)
            }
            None => None,
        };

        self.system.refresh_cpu_usage();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        self.networks.refresh(true);
        let mut net = [0_u64; 4];
        for data in self.networks.values() {
            for (total, value) in net.iter_mut().zip([
                data.received(),
                data.transmitted(),
                data.total_received(),
                data.total_transmitted(),
            ]) {
                *total = total.saturating_add(value);
            }
        }
        let [received, transmitted, received_total, transmitted_total] = net;

        Ok(MonitorSample {
            unix_time_ms: unix_time_ms(),
            elapsed_ms: millis(now.duration_since(self.started)),
            process_count: u32::try_from(readings.len()).unwrap_or(u32::MAX),
            process_cpu_percent: cpu_percent_of_one_core(cpu_time_used_ms, wall_time_ms),
            process_rss_bytes: rss_bytes,
            process_threads,
            host_cpu_percent: round_centi(f64::from(self.system.global_cpu_usage())),
            host_memory_used_bytes: self.system.used_memory(),
            host_memory_total_bytes: self.system.total_memory(),
            net_received_bytes: received,
            net_transmitted_bytes: transmitted,
            net_received_total_bytes: received_total,
            net_transmitted_total_bytes: transmitted_total,
            tcp_established,
        })
    }

    /// Sum of thread counts, `None` if any is unknown. Under selection by name, a worker that
    /// exits between the process list and its status file is skipped rather than ending the
    /// whole monitor.
    fn threads(&self, readings: &[ProcessReading]) -> Result<Option<u64>, MonitorError> {
        let mut sum = Some(0_u64);
        for reading in readings {
            let threads = match procfs::threads_of(reading.pid) {
                Ok(threads) => threads,
                Err(MonitorError::ProcessExited { .. })
                    if matches!(self.selector, ProcessSelector::Name(_)) =>
                {
                    continue;
                }
                Err(err) => return Err(err),
            };
            sum = sum.zip(threads).map(|(sum, n)| sum.saturating_add(n));
        }
        Ok(sum)
    }

    /// Refreshes and reads the matching live processes, ascending by pid.
    fn read_processes(&mut self) -> Vec<ProcessReading> {
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cpu()
            .with_memory();
        let mut readings: Vec<ProcessReading> = match &self.selector {
            ProcessSelector::Pid(pid) => {
                let pid = Pid::from_u32(*pid);
                self.system.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    true,
                    kind,
                );
                self.system
                    .process(pid)
                    .filter(|process| is_alive(process))
                    .map(reading)
                    .into_iter()
                    .collect()
            }
            ProcessSelector::Name(name) => {
                self.system.refresh_processes_specifics(
                    ProcessesToUpdate::All,
                    true,
                    kind.with_exe(UpdateKind::OnlyIfNotSet),
                );
                let own_pid = self.own_pid;
                self.system
                    .processes()
                    .values()
                    .filter(|process| process.pid().as_u32() != own_pid)
                    .filter(|process| process.thread_kind().is_none() && is_alive(process))
                    .filter(|process| name_matches(name, process.name(), process.exe()))
                    .map(reading)
                    .collect()
            }
        };
        readings.sort_unstable_by_key(|reading| reading.pid);
        readings
    }
}

fn reading(process: &Process) -> ProcessReading {
    ProcessReading {
        pid: process.pid().as_u32(),
        cpu_time_ms: process.accumulated_cpu_time(),
        rss_bytes: process.memory(),
    }
}

/// A zombie has exited; only its parent has not collected it yet.
fn is_alive(process: &Process) -> bool {
    !matches!(
        process.status(),
        ProcessStatus::Zombie | ProcessStatus::Dead
    )
}

/// Whether a process is the one asked for by name: its name, or its executable's file name,
/// equals `wanted`. Linux cuts names to 15 bytes, so a longer `wanted` also matches a 15-byte
/// name that is its prefix.
fn name_matches(wanted: &str, name: &OsStr, exe: Option<&Path>) -> bool {
    if name == wanted || exe.and_then(Path::file_name) == Some(OsStr::new(wanted)) {
        return true;
    }
    let name = name.as_encoded_bytes();
    wanted.len() > LINUX_COMM_BYTES
        && name.len() == LINUX_COMM_BYTES
        && wanted.as_bytes().starts_with(name)
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn unix_time_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matching() {
        let exe = Path::new("/usr/local/bin/chat-server");
        assert!(name_matches("chat-server", OsStr::new("chat-server"), None));
        assert!(name_matches("chat-server", OsStr::new("main"), Some(exe)));
        assert!(!name_matches("chat", OsStr::new("chat-server"), Some(exe)));
        assert!(!name_matches("chat-server", OsStr::new("other"), None));
        // Linux truncation of `comm` to 15 bytes.
        assert!(name_matches(
            "my-long-chat-server",
            OsStr::new("my-long-chat-se"),
            None
        ));
        assert!(!name_matches(
            "my-long-chat-server",
            OsStr::new("my-long"),
            None
        ));
    }

    #[test]
    fn unknown_pid_is_not_found() {
        // Above Linux's largest possible pid (2^22).
        let err = Sampler::new(ProcessSelector::Pid(2_000_000_000), None).err();
        assert!(
            matches!(err, Some(MonitorError::ProcessNotFound { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn samples_this_process() -> Result<(), MonitorError> {
        let mut sampler = Sampler::new(ProcessSelector::Pid(std::process::id()), None)?;
        let sample = sampler.sample()?;
        assert_eq!(sample.process_count, 1);
        assert!(sample.process_rss_bytes > 0);
        assert!(sample.host_memory_total_bytes >= sample.host_memory_used_bytes);
        assert!(sample.host_memory_total_bytes > 0);
        assert_eq!(sample.tcp_established, None);
        if cfg!(target_os = "linux") {
            assert!(sample.process_threads >= Some(1));
        }
        assert_eq!(sampler.pids(), vec![std::process::id()]);
        Ok(())
    }
}
