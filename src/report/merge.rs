//! `merge`: the results of the shards of one run (`run --shard I/N`) into one result that is
//! as exact as a single run's: counters add, histograms add interval by interval on the
//! wall-clock grid, per phase and per scenario (`metrics::merge_intervals`).
//!
//! It refuses pieces that do not make one run — different run id, plan hash or shard count, a
//! repeated or missing shard, a v1 file — listing everything that is wrong at once; with
//! `allow_partial` missing shards are accepted and the result is marked `partial`.
//!
//! Judging `ensure` on the merged numbers is the caller's (it needs the plan): the merged
//! intervals are handed back for windowed conditions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use crate::metrics::{
    Aggregator, IntervalSnapshot, MetricsError, merge_intervals, merge_scenarios,
};

use super::model::{ErrorEntry, ResultFormat, RunInfo, RunResult};

/// One result file to merge and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct Piece {
    pub path: PathBuf,
    pub result: RunResult,
}

/// What `merge` produced.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged result; thresholds empty and exit code 0 until the caller judges them.
    pub result: RunResult,
    /// The merged intervals, in order (windowed conditions are judged on them).
    pub intervals: Vec<IntervalSnapshot>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give the result.json of every shard")]
    Empty,
    #[error("these results are not the shards of one run:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Mismatch(Vec<String>),
    #[error("cannot merge the histograms: {0}")]
    Metrics(#[from] MetricsError),
}

/// Merges `pieces` (any order). See the module doc for what is refused.
pub fn merge(pieces: &[Piece], allow_partial: bool) -> Result<Merged, MergeError> {
    let first = pieces.first().ok_or(MergeError::Empty)?;
    let shards = check(pieces, allow_partial)?;
    let interval_ms = first.result.run.interval_ms.unwrap_or(1_000);

    let intermediate: Vec<&[crate::metrics::PeriodSummary]> = pieces
        .iter()
        .map(|p| p.result.intermediate.as_slice())
        .collect();
    let intervals = merge_intervals(&intermediate, interval_ms)?;
    let mut aggregator = Aggregator::new();
    for interval in &intervals {
        aggregator.push(interval.clone());
    }
    let mut metrics = aggregator.finish()?;
    // The whole run's histograms: the sum of the pieces' own run-wide ones (equal to the sum
    // of the intervals, which every sample belongs to).
    let mut histograms = BTreeMap::new();
    for piece in pieces {
        for (name, text) in &piece.result.histograms {
            let h = crate::metrics::decode_histogram(text)?;
            match histograms.get_mut(name) {
                None => {
                    histograms.insert(name.clone(), h);
                }
                Some(total) => {
                    let total: &mut crate::metrics::Histogram<u64> = total;
                    let _ = total.add(&h);
                }
            }
        }
    }
    metrics.histograms = crate::metrics::encode_all(&histograms)?;

    let started_ms = pieces.iter().map(|p| p.result.run.started_at_ms).min();
    let ended_ms = pieces.iter().map(|p| p.result.run.ended_at_ms).max();
    let (started_ms, ended_ms) = (started_ms.unwrap_or(0), ended_ms.unwrap_or(0));
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    let scenarios: Vec<&[crate::metrics::ScenarioSummary]> = pieces
        .iter()
        .map(|p| p.result.scenarios.as_slice())
        .collect();
    metrics.scenarios = merge_scenarios(&scenarios, at(started_ms), at(ended_ms))?;

    let run = merged_info(&first.result.run, pieces, &shards, (started_ms, ended_ms));
    let mut result = RunResult::new(run, metrics, first.result.plan.clone());
    result.plan_source = first.result.plan_source.clone();
    result.errors = merged_errors(pieces);
    result.monitor = pieces
        .iter()
        .flat_map(|p| p.result.monitor.iter().cloned())
        .collect();
    result.monitor.sort_by_key(|s| s.unix_time_ms);
    Ok(Merged { result, intervals })
}

/// Everything that keeps `pieces` from being the shards of one run; the shard indexes present.
fn check(pieces: &[Piece], allow_partial: bool) -> Result<Vec<u32>, MergeError> {
    let mut problems = Vec::new();
    let reference = pieces.first().ok_or(MergeError::Empty)?;
    let name = |p: &Piece| p.path.display().to_string();
    let mut seen: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let count = reference.result.run.shard.map_or(1, |s| s.count);
    for piece in pieces {
        let run = &piece.result.run;
        if piece.result.format == ResultFormat::V1 {
            problems.push(format!(
                "{} is a chatload.result/v1 file, which has no per-interval histograms; re-run \
                 that shard with this chatload",
                name(piece)
            ));
            continue;
        }
        let differs = |what: &str, ours: &Option<String>, theirs: &Option<String>| {
            (ours != theirs).then(|| {
                format!(
                    "{} has {what} {}, {} has {}",
                    name(piece),
                    theirs.as_deref().unwrap_or("(none)"),
                    name(reference),
                    ours.as_deref().unwrap_or("(none)")
                )
            })
        };
        problems.extend(differs("run id", &reference.result.run.run_id, &run.run_id));
        problems.extend(differs(
            "plan hash",
            &reference.result.run.plan_hash,
            &run.plan_hash,
        ));
        let shard = run
            .shard
            .unwrap_or(super::model::ShardInfo { index: 0, count: 1 });
        if shard.count != count {
            problems.push(format!(
                "{} is shard {}/{}, {} belongs to a run of {count} shard(s)",
                name(piece),
                shard.index,
                shard.count,
                name(reference)
            ));
            continue;
        }
        seen.entry(shard.index).or_default().push(name(piece));
    }
    for (index, files) in &seen {
        if files.len() > 1 {
            problems.push(format!(
                "shard {index}/{count} is given {} times: {}",
                files.len(),
                files.join(", ")
            ));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() && !allow_partial {
        problems.push(format!(
            "shard(s) {} missing; give every shard's result, or --allow-partial to merge what \
             is there (the result is then marked partial)",
            missing.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(seen.into_keys().collect())
    } else {
        Err(MergeError::Mismatch(problems))
    }
}

fn merged_info(
    first: &RunInfo,
    pieces: &[Piece],
    shards: &[u32],
    (start, end): (u64, u64),
) -> RunInfo {
    let count = first.shard.map_or(1, |s| s.count);
    let mut info = RunInfo::new(
        &first.plan_name,
        &first.target,
        UNIX_EPOCH + Duration::from_millis(start),
        UNIX_EPOCH + Duration::from_millis(end),
    );
    info.plan_path = first.plan_path.clone();
    info.seed = first.seed;
    info.run_id = first.run_id.clone();
    info.plan_hash = first.plan_hash.clone();
    info.start_at = first.start_at.clone();
    info.interval_ms = first.interval_ms;
    info.chatload_version = first.chatload_version.clone();
    info.start_skew_ms = pieces
        .iter()
        .filter_map(|p| p.result.run.start_skew_ms)
        .max_by_key(|skew| skew.unsigned_abs());
    info.merged_shards = shards.to_vec();
    info.partial = shards.len() < count as usize;
    for piece in pieces {
        let run = &piece.result.run;
        let index = run.shard.map_or(0, |s| s.index);
        info.aborted |= run.aborted;
        info.interrupted |= run.interrupted;
        if info.abort_reason.is_none() {
            info.abort_reason = run
                .abort_reason
                .as_ref()
                .map(|r| format!("shard {index}: {r}"));
        }
        info.warnings
            .extend(run.warnings.iter().map(|w| format!("shard {index}: {w}")));
    }
    if info.partial {
        info.warnings.push(format!(
            "partial merge: only shard(s) {} of {count} were merged, so the numbers cover part \
             of the load",
            shards
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    info
}

/// The pieces' error tables added up (same step, scenario, kind and message), most frequent
/// first.
fn merged_errors(pieces: &[Piece]) -> Vec<ErrorEntry> {
    let mut counts: BTreeMap<(String, String, String, String, String), u64> = BTreeMap::new();
    for e in pieces.iter().flat_map(|p| &p.result.errors) {
        let key = (
            e.step.clone(),
            e.method.clone(),
            e.scenario.clone(),
            e.kind.clone(),
            e.message.clone(),
        );
        *counts.entry(key).or_insert(0) += e.count;
    }
    let mut out: Vec<ErrorEntry> = counts
        .into_iter()
        .map(
            |((step, method, scenario, kind, message), count)| ErrorEntry {
                step,
                method,
                scenario,
                kind,
                message,
                count,
            },
        )
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.count));
    out
}
