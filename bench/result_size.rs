//! How big is the result.json of a long run? Builds the result of a 1-hour run with 1 s
//! intervals and 20 latency metrics, each sampled `--samples` times per interval from a
//! log-normal-ish distribution (so the histograms are as spread as real latencies), writes it
//! with chatload's own writer and prints the sizes: `result.json`, its histogram sidecar
//! (`result.histograms.bin`, the per-interval histograms), both together, and gzip of each.
//!
//!   cargo run --release --example result-size -- [--seconds 3600] [--metrics 20] [--samples 1000]
//!       [--keep DIR]   (writes the result into DIR instead of a temporary folder, e.g. to time
//!                       `chatload report` on it)

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
    let dir = tempfile::tempdir()?;
    let args: Vec<String> = std::env::args().collect();
    let out_dir = match args.iter().position(|a| a == "--keep") {
        Some(i) => std::path::PathBuf::from(args.get(i + 1).ok_or("--keep needs a folder")?),
        None => dir.path().to_owned(),
    };
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("result.json");
    let sidecar = write_result(&path, &result)?;
    let gzip = |bytes: &[u8]| -> std::io::Result<usize> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes)?;
        Ok(gz.finish()?.len())
    };
    let json = std::fs::read(&path)?;
    let bin = match &sidecar {
        Some(p) => std::fs::read(p)?,
        None => Vec::new(),
    };
    let histograms = seconds * metrics;
    let mib = |b: usize| b as f64 / 1_048_576.0;
    println!(
        "{seconds} intervals x {metrics} metrics x {samples} samples/interval: result.json \
         {:.2} MiB ({} bytes, gzip {:.2} MiB), result.histograms.bin {:.2} MiB ({:.0} bytes per \
         interval histogram, gzip {:.2} MiB), together {:.2} MiB",
        mib(json.len()),
        json.len(),
        mib(gzip(&json)?),
        mib(bin.len()),
        bin.len() as f64 / histograms as f64,
        mib(gzip(&bin)?),
        mib(json.len() + bin.len()),
    );
    Ok(())
}
