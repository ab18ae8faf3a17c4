//! How big is the result.json of a long run? Builds the result of a 1-hour run with 1 s
//! intervals and 20 latency metrics, each sampled `--samples` times per interval from a
//! log-normal-ish distribution (so the histograms are as spread as real latencies), writes it
//! with chatload's own writer and prints the sizes: the whole file, the part that is
//! per-interval histograms, and gzip of it.
//!
//!   cargo run --release --example result-size -- [--seconds 3600] [--metrics 20] [--samples 1000]

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use chatload::engine::seed::vuser_rng;
use chatload::metrics::{Aggregator, Collector, Registry};
use chatload::report::{RunInfo, RunResult, write_result};
use rand::RngExt;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = arg("--seconds", 3_600);
    let metrics = arg("--metrics", 20);
    let samples = arg("--samples", 1_000);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let mut registry = Registry::new().with_standard_metrics();
    let names: Vec<String> = (0..metrics).map(|i| format!("latency.step{i}")).collect();
    let ids: Vec<_> = names.iter().map(|n| registry.histogram(n)).collect();
    let sent = registry.counter("messages.sent");
    let collector = Collector::with_start(registry, start);
    let recorder = collector.recorder();
    let mut aggregator = Aggregator::new();
    let mut rng = vuser_rng(1, 0);
    aggregator.push(collector.begin_phase_at(0, "hold", start));
    for second in 1..=seconds {
        for (m, id) in ids.iter().enumerate() {
            let median_us = 2_000.0 * (1.0 + m as f64);
            for _ in 0..samples {
                // exp of a sum of uniforms: a skewed, long-tailed latency.
                let z: f64 = (0..4).map(|_| rng.random::<f64>() - 0.5).sum::<f64>();
                recorder.record_us(*id, (median_us * (1.5 * z).exp()) as u64);
            }
        }
        recorder.add(sent, samples);
        aggregator.push(collector.snapshot_at(start + Duration::from_secs(second)));
    }
    let metrics_out = aggregator.finish()?;
    let end = start + Duration::from_secs(seconds);
    let mut info = RunInfo::new("size", "127.0.0.1:9200", start, end);
    info.interval_ms = Some(1_000);
    let result = RunResult::new(info, metrics_out, serde_json::json!({}));
    let interval_hist_bytes: usize = result
        .intermediate
        .iter()
        .flat_map(|i| i.histograms.values())
        .map(String::len)
        .sum();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("result.json");
    write_result(&path, &result)?;
    let bytes = std::fs::read(&path)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes)?;
    let gzipped = gz.finish()?.len();
    let mib = |b: usize| b as f64 / 1_048_576.0;
    println!(
        "{seconds} intervals x {metrics} metrics x {samples} samples/interval: result.json \
         {:.2} MiB ({:.2} MiB of it per-interval histograms, {:.0} bytes per histogram), \
         gzip {:.2} MiB",
        mib(bytes.len()),
        mib(interval_hist_bytes),
        interval_hist_bytes as f64 / (seconds * metrics) as f64,
        mib(gzipped)
    );
    Ok(())
}
