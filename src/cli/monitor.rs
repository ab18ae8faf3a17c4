//! `chatload monitor`: samples a process and the host, prints a line per sample, and writes
//! the samples to a JSON or CSV file.
//!
//! Sampling itself is `crate::monitor`; this file owns argument checking (before any sampling
//! starts, so a bad output path fails at once), the live line, Ctrl-C, and the atomic write.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::{Exit, MonitorArgs, parse_duration};
use crate::monitor::{MonitorConfig, MonitorSample, ProcessSelector, StopReason, run_monitor};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = MIB * 1024.0;

pub fn execute(args: MonitorArgs) -> anyhow::Result<Exit> {
    let selector = match (args.pid, args.process) {
        (Some(pid), _) => ProcessSelector::Pid(pid),
        (None, Some(name)) => ProcessSelector::Name(name),
        (None, None) => bail!("give the process to monitor with --pid N or --process NAME"),
    };
    let interval = parse_duration(&args.interval).context("invalid --interval")?;
    if interval.is_zero() {
        bail!("invalid --interval: it must be longer than zero, e.g. `1s` or `200ms`");
    }
    let duration = args
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .context("invalid --duration")?;
    let mut output = args
        .output
        .as_deref()
        .map(OutputFile::prepare)
        .transpose()?;

    let config = MonitorConfig {
        selector,
        port: args.port,
        interval,
        duration,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let run = runtime.block_on(async {
        let stop = CancellationToken::new();
        let on_ctrl_c = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        eprintln!("{}", banner(&config));
        run_monitor(config, stop, |sample| println!("{}", live_line(sample))).await
    })?;

    if run.stop_reason == StopReason::ProcessExited {
        eprintln!(
            "the monitored process exited; stopped after {} samples",
            run.samples.len()
        );
    }
    if let Some(output) = output.take() {
        let path = output.commit(&run.samples)?;
        eprintln!("wrote {} samples to {}", run.samples.len(), path.display());
    }
    Ok(Exit::Success)
}

fn banner(config: &MonitorConfig) -> String {
    let port = config
        .port
        .map(|port| format!(", connections on port {port}"))
        .unwrap_or_default();
    let until = match config.duration {
        Some(duration) => format!("for {duration:?}"),
        None => "until Ctrl-C".to_owned(),
    };
    format!(
        "monitoring {}{port} every {:?} {until}",
        config.selector, config.interval
    )
}

/// One human line per sample; the files carry the exact values.
fn live_line(sample: &MonitorSample) -> String {
    let threads = sample
        .process_threads
        .map_or_else(|| "-".to_owned(), |n| n.to_string());
    let conns = sample
        .tcp_established
        .map(|n| format!("  conns {n}"))
        .unwrap_or_default();
    format!(
        "{} +{:>6.1}s  cpu {:>6.1}%  rss {:>8.1} MiB  threads {threads:>3}  host cpu {:>5.1}% \
         mem {:>5.1}% ({:.1}/{:.1} GiB)  net rx {} tx {}{conns}",
        utc_clock(sample.unix_time_ms),
        sample.elapsed_ms as f64 / 1000.0,
        sample.process_cpu_percent,
        sample.process_rss_bytes as f64 / MIB,
        sample.host_cpu_percent,
        sample.host_memory_percent(),
        sample.host_memory_used_bytes as f64 / GIB,
        sample.host_memory_total_bytes as f64 / GIB,
        human_bytes(sample.net_received_bytes),
        human_bytes(sample.net_transmitted_bytes),
    )
}

/// `HH:MM:SSZ` of a Unix time in ms; the date is in the files, not needed on a live line.
fn utc_clock(unix_time_ms: u64) -> String {
    let seconds_of_day = (unix_time_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

fn human_bytes(bytes: u64) -> String {
    let bytes = bytes as f64;
    if bytes < 1024.0 {
        format!("{bytes} B")
    } else if bytes < MIB {
        format!("{:.1} KiB", bytes / 1024.0)
    } else if bytes < GIB {
        format!("{:.1} MiB", bytes / MIB)
    } else {
        format!("{:.1} GiB", bytes / GIB)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Json,
    Csv,
}

/// The `--output` file: checked and opened as a temporary sibling before sampling, renamed
/// over the real name when complete, so a reader never sees a half-written file and a bad path
/// costs no sampling time. The temporary file has a random name and is created exclusively
/// (no planted link is followed); dropped uncommitted, it is removed.
#[derive(Debug)]
struct OutputFile {
    path: PathBuf,
    temp: Option<tempfile::NamedTempFile>,
    format: OutputFormat,
}

impl OutputFile {
    fn prepare(path: &Path) -> anyhow::Result<Self> {
        let format = match path.extension().and_then(|ext| ext.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => OutputFormat::Json,
            Some(ext) if ext.eq_ignore_ascii_case("csv") => OutputFormat::Csv,
            _ => bail!(
                "--output {}: the file name must end in .json or .csv (that picks the format)",
                path.display()
            ),
        };
        if path.is_dir() {
            bail!(
                "--output {} is a directory; give a file name",
                path.display()
            );
        }
        let file_name = path
            .file_name()
            .with_context(|| format!("--output {} has no file name", path.display()))?;
        crate::report::refuse_symlink(path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(file_name);
        prefix.push(".");
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            // 0666 less the umask, as `File::create` would; not tempfile's private 0600.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "--output {}: cannot create a file in that directory (does it exist, is it \
                     writable?)",
                    path.display()
                )
            })?;
        Ok(OutputFile {
            path: path.to_owned(),
            temp: Some(temp),
            format,
        })
    }

    /// Writes the samples and moves the file into place; returns the final path.
    fn commit(mut self, samples: &[MonitorSample]) -> anyhow::Result<PathBuf> {
        let bytes = match self.format {
            OutputFormat::Json => {
                let mut bytes = serde_json::to_vec_pretty(samples)?;
                bytes.push(b'\n');
                bytes
            }
            OutputFormat::Csv => to_csv(samples)?,
        };
        let mut temp = self.temp.take().context("output file already written")?;
        temp.write_all(&bytes)
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("cannot write {}", temp.path().display()))?;
        crate::report::refuse_symlink(&self.path)?;
        temp.persist(&self.path)
            .with_context(|| format!("cannot move the output into {}", self.path.display()))?;
        Ok(std::mem::take(&mut self.path))
    }
}

/// A header row, then a row per sample; a missing value (`None`) is an empty cell.
fn to_csv(samples: &[MonitorSample]) -> anyhow::Result<Vec<u8>> {
    // The header is written here, not by serde: a sample's serde names are the camelCase of
    // the JSON outputs, CSV columns keep the snake_case of the docs' field table.
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    for sample in samples {
        writer.serialize(sample)?;
    }
    writer.into_inner().context("cannot finish the CSV output")
}

/// `MonitorSample`'s fields in their order, in snake_case (checked by a test).
const CSV_COLUMNS: [&str; 14] = [
    "unix_time_ms",
    "elapsed_ms",
    "process_count",
    "process_cpu_percent",
    "process_rss_bytes",
    "process_threads",
    "host_cpu_percent",
    "host_memory_used_bytes",
    "host_memory_total_bytes",
    "net_received_bytes",
    "net_transmitted_bytes",
    "net_received_total_bytes",
    "net_transmitted_total_bytes",
    "tcp_established",
];

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn sample() -> MonitorSample {
        MonitorSample {
            unix_time_ms: 1_700_000_000_123,
            elapsed_ms: 1_000,
            process_count: 1,
            process_cpu_percent: 12.5,
            process_rss_bytes: 3 * 1024 * 1024,
            process_threads: None,
            host_cpu_percent: 40.0,
            host_memory_used_bytes: 1024,
            host_memory_total_bytes: 4096,
            net_received_bytes: 2048,
            net_transmitted_bytes: 10,
            net_received_total_bytes: 1,
            net_transmitted_total_bytes: 2,
            tcp_established: Some(50),
        }
    }

    #[test]
    fn live_line_shows_the_essentials() {
        let line = live_line(&sample());
        for part in [
            "22:13:20Z",
            "+   1.0s",
            "12.5%",
            "3.0 MiB",
            "threads   -",
            "25.0%",
        ] {
            assert!(line.contains(part), "{part:?} missing in {line:?}");
        }
        assert!(
            line.contains("rx 2.0 KiB tx 10 B") && line.ends_with("conns 50"),
            "{line}"
        );
    }

    #[test]
    fn csv_has_a_header_and_empty_cells_for_missing_values() -> anyhow::Result<()> {
        let text = String::from_utf8(to_csv(&[sample()])?)?;
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(CSV_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some("1700000000123,1000,1,12.5,3145728,,40.0,1024,4096,2048,10,1,2,50")
        );
        let empty = String::from_utf8(to_csv(&[])?)?;
        assert_eq!(empty.trim_end(), CSV_COLUMNS.join(","));
        Ok(())
    }

    #[test]
    fn csv_columns_are_the_sample_fields_in_order() -> anyhow::Result<()> {
        // serde writes a struct's fields in their declared order; a field added, moved or
        // renamed without its column shows here.
        let json = serde_json::to_string(&sample())?;
        let keys: Vec<String> = json
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(|pair| {
                pair.split(':')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_owned()
            })
            .collect();
        let snake: Vec<String> = keys
            .iter()
            .map(|key| {
                key.chars()
                    .flat_map(|c| {
                        let lower = c.to_ascii_lowercase();
                        if c.is_ascii_uppercase() {
                            vec!['_', lower]
                        } else {
                            vec![c]
                        }
                    })
                    .collect()
            })
            .collect();
        assert_eq!(snake, CSV_COLUMNS);
        Ok(())
    }

    #[test]
    fn output_is_checked_before_sampling_and_written_atomically() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(OutputFile::prepare(&dir.path().join("m.txt")).is_err());
        assert!(OutputFile::prepare(&dir.path().join("missing/m.json")).is_err());
        assert!(OutputFile::prepare(dir.path()).is_err());

        let path = dir.path().join("m.json");
        let output = OutputFile::prepare(&path)?;
        assert!(!path.exists(), "nothing at the final name until complete");
        output.commit(&[sample()])?;
        let written: Vec<MonitorSample> = serde_json::from_slice(&fs::read(&path)?)?;
        assert_eq!(written, vec![sample()]);

        drop(OutputFile::prepare(&dir.path().join("abandoned.csv"))?);
        let leftovers: Vec<_> = fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
        assert_eq!(leftovers.len(), 1, "only m.json remains: {leftovers:?}");
        Ok(())
    }
}
