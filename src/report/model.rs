//! The result model: what `result.json` holds (DESIGN §5), with serde and a JSON Schema.
//! Artillery's `aggregate`/`intermediate` shape comes straight from the metrics summaries.
//!
//! Construction helpers only; writing is `io.rs`, the console table `console.rs`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::{PeriodSummary, PhaseSummary, RunMetrics, ScenarioSummary};

/// `monitor[]` embeds the monitor's own samples: one definition, in camelCase JSON.
pub use crate::monitor::MonitorSample;

use super::time::{epoch_ms, format_rfc3339_ms};

/// The format tag every result file starts with; bumped on incompatible changes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ResultFormat {
    /// Before scale-out: no per-interval histograms, no run id or shard; still read by
    /// `report` and `compare`, not by `merge`.
    #[serde(rename = "chatload.result/v1")]
    V1,
    /// Intervals on a wall-clock grid with their histograms, per-phase and per-scenario
    /// histograms, run id, shard and plan hash: pieces of one run merge exactly.
    #[default]
    #[serde(rename = "chatload.result/v2")]
    V2,
}

/// One run's results, as written to `result.json`. Serialized in its stored form
/// (`stored.rs`): an interval's summaries that its histograms imply are left out and derived
/// again on reading.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    title = "chatload run result",
    description = "chatload result.json (format chatload.result/v2; v1 files lack the v2 fields)"
)]
pub struct RunResult {
    pub format: ResultFormat,
    pub run: RunInfo,
    /// Whole-run totals (Artillery's `aggregate`).
    pub aggregate: PeriodSummary,
    /// One entry per interval, in order (Artillery's `intermediate`). In the file an
    /// interval's `summaries` omit every metric it has a histogram of (derived on reading),
    /// and its `histograms` are in the sidecar when `intervalHistograms` is set.
    #[serde(deserialize_with = "intervals_with_summaries")]
    pub intermediate: Vec<PeriodSummary>,
    pub phases: Vec<PhaseSummary>,
    pub scenarios: Vec<ScenarioSummary>,
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// The distinct error messages with their counts, per step and scenario, most frequent
    /// first. Bounded: at most 50 messages, the rest folded into `(other messages)` entries
    /// per step and kind, so the counts add up to every error of the run. Empty in results
    /// of versions before it existed.
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
    /// HTTP endpoints: name (`http.response_time.<name>`) → method (`GET`; `GET/POST` when
    /// steps of several methods share the name). Empty for plans without HTTP steps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, String>,
    /// Server/host samples when `monitor` was configured; empty otherwise.
    #[serde(default)]
    pub monitor: Vec<MonitorSample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaking_point: Option<BreakingPoint>,
    /// The plan's local commands (`config.hooks`) that ran, in order; absent when none did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookResult>,
    /// Run-wide HdrHistograms (µs): name → base64 of the V2-deflate serialization.
    pub histograms: BTreeMap<String, String>,
    /// The plan as run (secrets redacted by the caller).
    pub plan: serde_json::Value,
    /// The plan file's text as written, secrets redacted by the caller; absent in results
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_source: Option<PlanSource>,
    /// Set in files whose per-interval histograms are in a binary sidecar file next to them
    /// (what `write_result` writes); `read_result` loads them into `intermediate` and clears
    /// it. Absent when the histograms are inline (or there are none, as in v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_histograms: Option<HistogramSidecar>,
}

impl Serialize for RunResult {
    /// Self-contained: the interval histograms inline (base64); `write_result` moves them to
    /// the sidecar.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::stored::Stored {
            result: self,
            sidecar: None,
        }
        .serialize(s)
    }
}

fn intervals_with_summaries<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<PeriodSummary>, D::Error> {
    let mut intervals = Vec::<PeriodSummary>::deserialize(d)?;
    super::stored::derive_summaries(&mut intervals).map_err(serde::de::Error::custom)?;
    Ok(intervals)
}

/// Where a result's per-interval histograms are when they are not inline: a binary file in
/// the same folder (layout in docs/results.md), checked by size and checksum on reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistogramSidecar {
    /// The file's name (no folder): `<result file stem>.histograms.bin`.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// How many intervals it holds histograms for (the length of `intermediate`).
    pub intervals: u64,
    /// FNV-1a 64-bit hash of the file, 16 hex digits.
    pub fnv1a64: String,
}

/// One `config.hooks` command and how it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookResult {
    /// `before` or `after`.
    pub stage: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Absent when it could not start, timed out or was killed by a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    /// Why it could not start or finish, if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end of its standard output and error (at most 16 KiB each).
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: f64,
}

/// The plan file as written (its text, with the values of secret-looking keys replaced).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSource {
    pub format: PlanFormat,
    pub text: String,
}

/// The syntax of a plan file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanFormat {
    Yaml,
    Toml,
}

impl PlanFormat {
    /// `YAML` / `TOML`.
    pub fn label(self) -> &'static str {
        match self {
            PlanFormat::Yaml => "YAML",
            PlanFormat::Toml => "TOML",
        }
    }
}

/// Run metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub plan_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_path: Option<String>,
    /// `host:port` the load went to (the resolved address for `embedded`).
    pub target: String,
    /// The seed of the run's randomness (`run --seed`): the same seed and plan replay the same
    /// arrivals, scenario picks, data picks, think times and template functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The id tying the shards of one run together (`run --run-id`); absent in v1 results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Which part of the run this result covers (`run --shard I/N`; 0/1 for a whole run). A
    /// merged result has no shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// Hash of the plan as run (after command-line overrides): the pieces of one run agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// `run --start-at`: the instant every shard was told to start at (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// How late (positive) or early this process's phases actually started versus `startAt`
    /// (after its setup), in milliseconds; in a merged result the largest skew of any piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew_ms: Option<i64>,
    /// The interval length in milliseconds: intervals are cut at multiples of it since the
    /// Unix epoch (v2), so pieces of one run line up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// The shards a merged result was made of (`chatload merge`), in index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_shards: Vec<u32>,
    /// A merge with `--allow-partial` that lacked some shards: the numbers cover only the
    /// shards in `mergedShards`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// RFC 3339 UTC, millisecond precision.
    pub started_at: String,
    pub ended_at: String,
    /// Unix epoch milliseconds.
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub duration_ms: u64,
    pub chatload_version: String,
    /// The process exit code this run maps to (0 ok, 1 threshold failed, 2 error, 130 Ctrl-C).
    pub exit_code: i32,
    /// Stopped early by `abortOnFail` (or another abort).
    pub aborted: bool,
    /// Stopped by Ctrl-C; the results are partial.
    pub interrupted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Things the reader must know, e.g. that the generator could not keep up.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl RunInfo {
    /// Metadata for a run of `plan_name` against `target` between `started` and `ended`,
    /// exit code 0 and no flags: adjust the public fields as the run dictates.
    pub fn new(plan_name: &str, target: &str, started: SystemTime, ended: SystemTime) -> Self {
        let started_at_ms = epoch_ms(started);
        let ended_at_ms = epoch_ms(ended).max(started_at_ms);
        Self {
            plan_name: plan_name.to_owned(),
            plan_path: None,
            target: target.to_owned(),
            seed: None,
            run_id: None,
            shard: None,
            plan_hash: None,
            start_at: None,
            start_skew_ms: None,
            interval_ms: None,
            merged_shards: Vec::new(),
            partial: false,
            started_at: format_rfc3339_ms(started_at_ms),
            ended_at: format_rfc3339_ms(ended_at_ms),
            started_at_ms,
            ended_at_ms,
            duration_ms: ended_at_ms - started_at_ms,
            chatload_version: env!("CARGO_PKG_VERSION").to_owned(),
            exit_code: 0,
            aborted: false,
            interrupted: false,
            abort_reason: None,
            warnings: Vec::new(),
        }
    }
}

/// Shard `index` of `count` (0-based).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    pub index: u32,
    pub count: u32,
}

/// One `ensure` entry and how it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdResult {
    /// As written (Artillery forms are rendered as the equivalent expression).
    pub expression: String,
    /// Set for windowed conditions: the window length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// The value of each `METRIC.STAT` term: over the whole run, or for a windowed condition
    /// in the worst window.
    pub observed: Vec<ObservedValue>,
    pub passed: bool,
    /// A failing strict condition fails the run (Artillery's `strict`, default true).
    pub strict: bool,
    /// Windowed conditions: how many windows were evaluated and how many failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_evaluated: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_failed: Option<u64>,
    /// Offset from the run start of the first failing window (or of the abort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_offset_ms: Option<u64>,
}

/// One distinct error message of a run and how often it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEntry {
    /// The step it is counted against (its `failures.<step>` counter and stats.csv row):
    /// `connect` (TCP, TLS and WebSocket setup), `latency.<expect name>`, `send`, or another
    /// step kind (`think`, `set`, `log`). Empty when it happened outside any step.
    pub step: String,
    /// `connect`, `send`, `expect` or `flow` (the `Method` column of failures.csv).
    pub method: String,
    pub scenario: String,
    /// The error kind, as in the `errors.<kind>` counter.
    pub kind: String,
    /// The message as the error gave it, or `(other messages)` for those not kept.
    pub message: String,
    pub count: u64,
}

/// What a run's outcome says, for the badge, the console and the exit code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every strict threshold held.
    Passed,
    /// A strict threshold failed (or a stress run found its breaking point).
    Failed,
    /// No `ensure`, and errors were counted (or vusers failed): exit code 1.
    CompletedWithErrors(u64),
    /// No `ensure` and no error: nothing to judge, exit code 0.
    NoCriteria,
    /// Stopped early: an `abortOnFail` breach, or nothing could connect.
    Aborted,
    /// Ctrl-C: the results are partial.
    Interrupted,
    /// Exit code 2 was recorded.
    Error,
}

impl Verdict {
    /// The badge text.
    pub fn label(self) -> String {
        match self {
            Verdict::Passed => "Passed".to_owned(),
            Verdict::Failed => "Failed".to_owned(),
            Verdict::CompletedWithErrors(1) => "Completed with 1 error".to_owned(),
            Verdict::CompletedWithErrors(n) => format!("Completed with {n} errors"),
            Verdict::NoCriteria => "No criteria".to_owned(),
            Verdict::Aborted => "Aborted".to_owned(),
            Verdict::Interrupted => "Interrupted".to_owned(),
            Verdict::Error => "Error".to_owned(),
        }
    }

    /// `good`, `bad` or `warn` (the badge's colour).
    pub fn class(self) -> &'static str {
        match self {
            Verdict::Passed => "good",
            Verdict::NoCriteria | Verdict::Interrupted => "warn",
            _ => "bad",
        }
    }

    /// The process exit code (README: 0 ok, 1 failed, 2 error, 130 interrupted; the CLI turns
    /// 130 into 143/129 when SIGTERM/SIGHUP did the interrupting).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Passed | Verdict::NoCriteria => 0,
            Verdict::Failed | Verdict::CompletedWithErrors(_) | Verdict::Aborted => 1,
            Verdict::Error => 2,
            Verdict::Interrupted => 130,
        }
    }
}

/// One term of a threshold expression and its observed value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedValue {
    /// `METRIC.STAT`, e.g. `latency.chat.p95`.
    pub metric: String,
    /// `null` when the metric had no data.
    pub value: Option<f64>,
    /// `ms`, `%`, `/s` or empty for plain counts.
    pub unit: String,
}

/// The adaptive controller's outcome: the highest stable load and how it was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdaptiveResult {
    /// The highest concurrency that stayed healthy, `null` if none did.
    pub max_stable_vusers: Option<u64>,
    pub trajectory: Vec<AdaptiveStep>,
}

/// One window of the adaptive controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdaptiveStep {
    /// Window start, from the run start (its settling part included).
    pub offset_ms: u64,
    /// Window end, from the run start (earlier than planned when it was cut short by a
    /// breach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset_ms: Option<u64>,
    pub vusers: u64,
    pub healthy: bool,
    /// Why the window was unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub p95_ms: Option<f64>,
    #[serde(default)]
    pub error_rate_percent: Option<f64>,
    /// Matched expects per expect outcome, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_percent: Option<f64>,
    #[serde(default)]
    pub server_cpu_percent: Option<f64>,
    #[serde(default)]
    pub server_mem_percent: Option<f64>,
}

/// Where a `stress` run broke.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakingPoint {
    /// The last step that held, `null` if the first one already failed.
    pub max_stable_vusers: Option<u64>,
    /// Concurrency of the first failing step, `null` if none failed.
    pub failed_at: Option<u64>,
    pub reason: String,
}

impl RunResult {
    /// A result from the run metadata, the finished metrics and the plan as run. Thresholds,
    /// monitor samples, adaptive and breaking-point data start empty.
    pub fn new(run: RunInfo, metrics: RunMetrics, plan: serde_json::Value) -> Self {
        Self {
            format: ResultFormat::V2,
            run,
            aggregate: metrics.aggregate,
            intermediate: metrics.intermediate,
            phases: metrics.phases,
            scenarios: metrics.scenarios,
            thresholds: Vec::new(),
            errors: Vec::new(),
            endpoints: BTreeMap::new(),
            monitor: Vec::new(),
            adaptive: None,
            breaking_point: None,
            hooks: Vec::new(),
            histograms: metrics.histograms,
            plan,
            plan_source: None,
            interval_histograms: None,
        }
    }

    /// True when every strict threshold passed (or there were none).
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed || !t.strict)
    }

    /// Errors counted over the run (every `errors.<kind>`), or the failed vusers if more.
    pub fn errors_counted(&self) -> u64 {
        let failed = self
            .aggregate
            .counters
            .get(crate::vocab::names::VUSERS_FAILED)
            .copied()
            .unwrap_or(0);
        self.aggregate.errors_total().max(failed)
    }

    /// What the run says: with `ensure`, the thresholds decide; without, any error (or
    /// failed vuser) makes it "completed with N errors", exit code 1 — allow some with
    /// `ensure.maxErrorRate`.
    pub fn verdict(&self) -> Verdict {
        let run = &self.run;
        let broke = self
            .breaking_point
            .as_ref()
            .is_some_and(|b| b.failed_at.is_some());
        if run.interrupted {
            Verdict::Interrupted
        } else if run.exit_code == 2 {
            Verdict::Error
        } else if run.aborted {
            Verdict::Aborted
        } else if broke || !self.thresholds_passed() {
            Verdict::Failed
        } else if !self.thresholds.is_empty() {
            Verdict::Passed
        } else if self.adaptive.is_some() {
            // The adaptive search drives the server into errors on purpose to find where
            // they start; its outcome is the level found, not a pass or a fail.
            Verdict::NoCriteria
        } else {
            match self.errors_counted() {
                0 => Verdict::NoCriteria,
                n => Verdict::CompletedWithErrors(n),
            }
        }
    }
}

/// A 10-second run with no samples, thresholds or plan: the starting point unit tests fill in
/// with what they check.
#[cfg(test)]
pub(super) fn empty_result() -> RunResult {
    let start = std::time::UNIX_EPOCH;
    RunResult::new(
        RunInfo::new(
            "t",
            "127.0.0.1:1",
            start,
            start + std::time::Duration::from_secs(10),
        ),
        RunMetrics {
            aggregate: serde_json::from_value(serde_json::json!({
                "startMs": 0, "endMs": 10_000, "counters": {}, "rates": {}, "summaries": {},
            }))
            .expect("an empty period"),
            intermediate: Vec::new(),
            phases: Vec::new(),
            scenarios: Vec::new(),
            histograms: Default::default(),
        },
        serde_json::Value::Null,
    )
}
