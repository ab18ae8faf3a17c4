//! What one sample holds, and the pure arithmetic behind its derived numbers.
//!
//! The one definition of a sample: `chatload monitor --output` writes it, and the report
//! embeds it in `result.json` (`monitor[]`), both in camelCase JSON; the CSV header spells
//! the same fields in snake_case. Field names carry their units.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One reading of the monitored process(es) and the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorSample {
    /// Wall-clock time of the sample, milliseconds since the Unix epoch (UTC).
    pub unix_time_ms: u64,
    /// Milliseconds since monitoring started (the baseline reading).
    pub elapsed_ms: u64,
    /// How many processes the numbers below are summed over (1 with `--pid`).
    pub process_count: u32,
    /// CPU used during the last interval, in percent of one core (like `top`): a process
    /// keeping two cores busy reads 200.
    pub process_cpu_percent: f64,
    /// Resident set size.
    pub process_rss_bytes: u64,
    /// Threads of the process(es); `null` where the platform does not tell (non-Linux).
    pub process_threads: Option<u64>,
    /// Host CPU busy during the last interval, averaged over all cores (0–100).
    pub host_cpu_percent: f64,
    pub host_memory_used_bytes: u64,
    pub host_memory_total_bytes: u64,
    /// Bytes received by all host interfaces (loopback included) during the last interval.
    pub net_received_bytes: u64,
    /// Bytes sent by all host interfaces (loopback included) during the last interval.
    pub net_transmitted_bytes: u64,
    /// Bytes received by all host interfaces since boot (their counters, summed); 0 when
    /// read from a `result.json` written before its samples carried the counters.
    #[serde(default)]
    pub net_received_total_bytes: u64,
    /// Bytes sent by all host interfaces since boot; 0 as above.
    #[serde(default)]
    pub net_transmitted_total_bytes: u64,
    /// ESTABLISHED TCP connections whose local port is the monitored port; `null` when no port
    /// was given.
    pub tcp_established: Option<u64>,
}

impl MonitorSample {
    /// RSS as a percentage of host memory: the "server memory %" an adaptive limit compares.
    pub fn process_memory_percent(&self) -> f64 {
        percent(self.process_rss_bytes, self.host_memory_total_bytes)
    }

    /// Host memory in use, in percent of the total.
    pub fn host_memory_percent(&self) -> f64 {
        percent(self.host_memory_used_bytes, self.host_memory_total_bytes)
    }
}

/// `part / whole` in percent, 0 when `whole` is 0 (no meaningful total yet).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    round_centi(part as f64 * 100.0 / whole as f64)
}

/// CPU usage in percent of one core from the CPU time consumed over a stretch of wall time.
/// Zero wall time (two readings in the same millisecond) gives 0 rather than infinity.
pub(crate) fn cpu_percent_of_one_core(cpu_time_ms: u64, wall_time_ms: u64) -> f64 {
    if wall_time_ms == 0 {
        return 0.0;
    }
    round_centi(cpu_time_ms as f64 * 100.0 / wall_time_ms as f64)
}

/// Rounds to two decimals: sampling is far coarser than that, and files stay readable.
pub(crate) fn round_centi(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_camel_case_and_reads_samples_without_the_boot_counters() {
        let sample = MonitorSample {
            unix_time_ms: 1_700_000_000_000,
            process_rss_bytes: 4096,
            net_received_total_bytes: 7,
            tcp_established: Some(3),
            ..MonitorSample::default()
        };
        let json = serde_json::to_value(&sample).unwrap();
        assert_eq!(json["unixTimeMs"], 1_700_000_000_000u64);
        assert_eq!(json["netReceivedTotalBytes"], 7);
        assert_eq!(json["tcpEstablished"], 3);
        assert!(json.get("unix_time_ms").is_none());
        // What result.json's `monitor[]` held before the samples carried the boot counters.
        let mut older = json.as_object().unwrap().clone();
        older.remove("netReceivedTotalBytes");
        older.remove("netTransmittedTotalBytes");
        let read: MonitorSample = serde_json::from_value(older.into()).unwrap();
        assert_eq!(read.net_received_total_bytes, 0);
        assert_eq!(read.process_rss_bytes, 4096);
        assert_eq!(read.tcp_established, Some(3));
    }

    #[test]
    fn cpu_percent_is_relative_to_one_core() {
        assert_eq!(cpu_percent_of_one_core(500, 1000), 50.0);
        // Two busy cores over a second.
        assert_eq!(cpu_percent_of_one_core(2000, 1000), 200.0);
        assert_eq!(cpu_percent_of_one_core(0, 1000), 0.0);
        assert_eq!(cpu_percent_of_one_core(10, 0), 0.0);
        assert_eq!(cpu_percent_of_one_core(1, 3), 33.33);
    }

    #[test]
    fn memory_percentages() {
        let sample = MonitorSample {
            unix_time_ms: 0,
            elapsed_ms: 0,
            process_count: 1,
            process_cpu_percent: 0.0,
            process_rss_bytes: 256,
            process_threads: Some(1),
            host_cpu_percent: 0.0,
            host_memory_used_bytes: 768,
            host_memory_total_bytes: 1024,
            net_received_bytes: 0,
            net_transmitted_bytes: 0,
            net_received_total_bytes: 0,
            net_transmitted_total_bytes: 0,
            tcp_established: None,
        };
        assert_eq!(sample.process_memory_percent(), 25.0);
        assert_eq!(sample.host_memory_percent(), 75.0);
        let unknown_total = MonitorSample {
            host_memory_total_bytes: 0,
            ..sample
        };
        assert_eq!(unknown_total.host_memory_percent(), 0.0);
    }
}
