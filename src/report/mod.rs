//! One report model feeding the JSON result, CSV, HTML and the console summary.
//!
//! Owns `RunResult` (the `result.json` model and its JSON Schema), atomic writing/reading of
//! result files, the merge of shards' results and the final console table. It takes metrics as finished summaries from
//! `crate::metrics`; it does not record, evaluate thresholds or know plans (the plan arrives
//! as an opaque JSON value).

mod charts;
mod compare;
mod console;
mod csv;
mod errors;
mod html;
mod html_charts;
mod io;
mod merge;
mod model;
mod outputs;
mod so_far;
mod spectrum;
mod stored;
mod time;

use std::path::PathBuf;

pub use self::csv::{STATS_HEADER, history_csv, stats_csv, write_csv};
pub use compare::{Comparison, Limits as CompareLimits, MetricDelta, compare, parse_percent};
pub use console::summary_table;
pub use errors::{FAILURES_HEADER, failures_csv};
pub use html::{render_html, render_html_so_far, write_html};
pub use io::{
    parse_result, read_result, refuse_symlink, result_json_schema, write_atomically, write_result,
};
pub use merge::{MergeError, Merged, Piece, merge};
pub use model::{
    AdaptiveResult, AdaptiveStep, BreakingPoint, ErrorEntry, HistogramSidecar, HookResult,
    MonitorSample, ObservedValue, PlanFormat, PlanSource, ResultFormat, RunInfo, RunResult,
    ShardInfo, ThresholdResult, Verdict,
};
pub use outputs::{Formats, claim_run_dir, ensure_empty_dir, prepare_outputs, write_reports};
pub use time::{format_compact_utc, format_rfc3339_ms};

/// The `format` tag of result files before scale-out; still read.
pub const FORMAT_V1: &str = "chatload.result/v1";
/// The `format` tag of result files this version writes (and reads).
pub const FORMAT_V2: &str = "chatload.result/v2";

/// What to check after a failed file operation; reading a missing file needs no advice about
/// writable directories.
fn io_hint(action: &str) -> &'static str {
    if action == "read" {
        ""
    } else {
        "; check the directory exists and is writable"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot {action} {}: {source}{}", path.display(), io_hint(action))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the result for {}: {source}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is not a valid chatload result file: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `{metric}` histogram in the result cannot be read: {source}")]
    Histogram {
        metric: String,
        #[source]
        source: crate::metrics::MetricsError,
    },
    #[error(
        "cannot read the per-interval histograms of the result from {}: {reason}; keep the \
         sidecar file next to its result.json (copy both)",
        path.display()
    )]
    Sidecar { path: PathBuf, reason: String },
    #[error("cannot write CSV: {0}")]
    Csv(#[source] ::csv::Error),
    #[error("cannot render the HTML report: {0:#}")]
    Template(#[source] minijinja::Error),
    #[error(
        "{} has format {found:?}, this chatload reads {FORMAT_V2:?} and {FORMAT_V1:?}; re-run \
         the test or use the \
         chatload version that wrote it",
        path.display()
    )]
    UnsupportedFormat { path: PathBuf, found: String },
    #[error(
        "{} already holds files (an earlier run's?); choose a new or empty folder, or pass \
         --overwrite to write this run's reports over them",
        path.display()
    )]
    NotEmpty { path: PathBuf },
}
