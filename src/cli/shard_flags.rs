//! The scale-out flags of `run` (`--shard I/N`, `--shards N` with `JOB_COMPLETION_INDEX`,
//! `--run-id`, `--start-at`), resolved into what the engine and the result need: the shard,
//! the seed and run id every shard must agree on, the plan hash `merge` checks, the instant
//! to start at.
//!
//! Splitting itself is `engine::load::shard`'s; this only decides the values.

use std::hash::Hasher as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};

use super::ShardArgs;
use crate::engine::Shard;
use crate::plan::{self, Plan};

/// The variable a Kubernetes Indexed Job sets in each pod.
pub(super) const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// What the scale-out flags resolve to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sharding {
    pub shard: Shard,
    /// `None`: a random seed (an unsplit run without `--seed`).
    pub seed: Option<u64>,
    /// `None`: a random run id (an unsplit run without `--run-id`).
    pub run_id: Option<String>,
    pub plan_hash: String,
    pub start_at: Option<SystemTime>,
}

/// Resolves the flags for `plan`; `job_index` is `JOB_COMPLETION_INDEX` if set, `now` the
/// clock `+30s` counts from.
pub(super) fn resolve(
    flags: &ShardArgs,
    seed: Option<u64>,
    plan: &Plan,
    job_index: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<Sharding> {
    let shard = shard(flags, job_index)?;
    if let Some(id) = &flags.run_id {
        check_run_id(id)?;
    }
    let plan_hash = plan_hash(plan);
    // Every shard must draw the same schedule: without --seed, a split run takes one
    // derived from the plan (and the run id when given), the same in every shard.
    let seed = seed.or_else(|| {
        shard.is_split().then(|| {
            let mut h = fnv::FnvHasher::default();
            h.write(plan_hash.as_bytes());
            h.write(flags.run_id.as_deref().unwrap_or("").as_bytes());
            h.finish() >> 11 // below 2^53, like `seed::random_seed`
        })
    });
    let run_id = flags.run_id.clone().or_else(|| {
        let seed = seed.filter(|_| shard.is_split())?;
        let mut h = fnv::FnvHasher::default();
        h.write(plan_hash.as_bytes());
        h.write(&seed.to_le_bytes());
        Some(format!("{:012x}", h.finish() >> 16))
    });
    let start_at = flags
        .start_at
        .as_deref()
        .map(|text| parse_start_at(text, now))
        .transpose()?;
    Ok(Sharding {
        shard,
        seed,
        run_id,
        plan_hash,
        start_at,
    })
}

fn shard(flags: &ShardArgs, job_index: Option<&str>) -> anyhow::Result<Shard> {
    if let Some(text) = &flags.shard {
        return text
            .parse::<Shard>()
            .map_err(|e| anyhow!("--shard {text}: {e}"));
    }
    let Some(count) = flags.shards else {
        return Ok(Shard::WHOLE);
    };
    let Some(index) = job_index else {
        bail!(
            "--shards {count} takes the shard index from {JOB_COMPLETION_INDEX} (set by a \
             Kubernetes Indexed Job), which is not set; outside Kubernetes give --shard I/{count}"
        );
    };
    let index: u64 = index.trim().parse().map_err(|_| {
        anyhow!("{JOB_COMPLETION_INDEX}={index:?} is not a shard index (a number 0..{count})")
    })?;
    Shard::new(index, count)
        .map_err(|e| anyhow!("--shards {count} with {JOB_COMPLETION_INDEX}={index}: {e}"))
}

/// Run ids end up in file names, labels and stamps' hashes: keep them plain.
fn check_run_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        bail!(
            "--run-id {id:?}: use 1 to 64 letters, digits, '-', '_' or '.', e.g. \
             --run-id checkout-$(date +%Y%m%d%H%M)"
        );
    }
    Ok(())
}

/// A stable hash of the plan as it runs (the plan as written plus the load after command-line
/// overrides): shards of one run must agree on it, and `merge` refuses pieces that do not.
pub(super) fn plan_hash(plan: &Plan) -> String {
    let mut h = fnv::FnvHasher::default();
    h.write(plan.as_written.to_string().as_bytes());
    h.write(format!("{:?}", plan.load).as_bytes());
    format!("{:016x}", h.finish())
}

/// `+30s` (from now) or an RFC 3339 instant.
fn parse_start_at(text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let trimmed = text.trim();
    if let Some(offset) = trimmed.strip_prefix('+') {
        let offset = plan::parse_duration(offset).map_err(|e| anyhow!("--start-at {text}: {e}"))?;
        return Ok(now + offset);
    }
    let at = time::OffsetDateTime::parse(trimmed, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
        format!(
            "--start-at {text}: not an RFC 3339 instant (2026-12-02T10:00:00Z) nor an offset \
                 from now (+30s)"
        )
    })?;
    let nanos = at.unix_timestamp_nanos();
    let nanos = u64::try_from(nanos).map_err(|_| anyhow!("--start-at {text}: before 1970"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// Signed milliseconds from `wanted` to `actual` (positive: started late).
pub(super) fn skew_ms(wanted: SystemTime, actual: SystemTime) -> i64 {
    match actual.duration_since(wanted) {
        Ok(late) => i64::try_from(late.as_millis()).unwrap_or(i64::MAX),
        Err(early) => -i64::try_from(early.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(shard: Option<&str>, shards: Option<u64>, run_id: Option<&str>) -> ShardArgs {
        ShardArgs {
            shard: shard.map(str::to_owned),
            shards,
            run_id: run_id.map(str::to_owned),
            start_at: None,
        }
    }

    fn plan() -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yml");
        std::fs::write(
            &path,
            "config:\n  target: embedded\n  phases: [{duration: 1, arrivalRate: 2}]\n\
             scenarios:\n  - flow: [connect]\n",
        )
        .unwrap();
        plan::load(&path).unwrap()
    }

    #[test]
    fn split_runs_agree_on_seed_and_run_id_without_being_told() {
        let plan = plan();
        let now = SystemTime::now();
        let a = resolve(&flags(Some("0/3"), None, None), None, &plan, None, now).unwrap();
        let b = resolve(&flags(None, Some(3), None), None, &plan, Some("2"), now).unwrap();
        assert_eq!(a.shard, Shard::new(0, 3).unwrap());
        assert_eq!(b.shard, Shard::new(2, 3).unwrap());
        assert!(a.seed.is_some());
        assert_eq!((a.seed, &a.run_id), (b.seed, &b.run_id));
        assert_eq!(a.plan_hash, b.plan_hash);
        let seeded = resolve(&flags(Some("0/3"), None, None), Some(7), &plan, None, now).unwrap();
        assert_ne!(seeded.run_id, a.run_id);
        // A single run keeps its random seed and run id.
        let single = resolve(&flags(None, None, None), None, &plan, None, now).unwrap();
        assert_eq!((single.seed, single.run_id), (None, None));
        let named = resolve(
            &flags(None, None, Some("nightly-7")),
            None,
            &plan,
            None,
            now,
        );
        assert_eq!(named.unwrap().run_id.as_deref(), Some("nightly-7"));
    }

    #[test]
    fn bad_flags_say_what_to_write() {
        let plan = plan();
        let now = SystemTime::now();
        let err = |f: ShardArgs, job: Option<&str>| {
            resolve(&f, None, &plan, job, now).unwrap_err().to_string()
        };
        assert!(err(flags(None, Some(3), None), None).contains("JOB_COMPLETION_INDEX"));
        assert!(err(flags(None, Some(3), None), Some("3")).contains("out of range"));
        assert!(err(flags(Some("1-3"), None, None), None).contains("INDEX/COUNT"));
        assert!(err(flags(None, None, Some("a b")), None).contains("--run-id"));
    }

    #[test]
    fn start_at_takes_an_offset_or_rfc3339() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            parse_start_at("+30s", now).unwrap(),
            now + Duration::from_secs(30)
        );
        assert_eq!(
            parse_start_at("2026-12-02T10:00:00.5+01:00", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_202_000_500)
        );
        assert!(parse_start_at("tomorrow", now).is_err());
        assert_eq!(skew_ms(now, now + Duration::from_millis(12)), 12);
        assert_eq!(skew_ms(now + Duration::from_millis(5), now), -5);
    }
}
