//! Process limits a load run depends on: raising the open-descriptor limit (`RLIMIT_NOFILE`)
//! to its hard ceiling at the start of `run` and `serve`, and warning before the load starts
//! when even that is below what the plan's phases need.
//!
//! `check` uses the same figures to warn, per plan, about levels one process cannot hold:
//! descriptors, ephemeral ports per source address, and levels `run` refuses outright. A split
//! run judges one shard's share (`run --shard I/N` its own, `check --shards N` the largest,
//! shard 0's), since each process holds only that.
//!
//! Mapping descriptor and port exhaustion *during* a run onto error kinds is the engine's job
//! (`engine::error`); this file only deals with the limit itself.

use crate::engine::Shard;
use crate::engine::load::capacity;
use crate::plan::{Load, PhaseShape, Plan, Target};

/// Descriptors a process needs besides its connections (std streams, epoll, the runtime's
/// pipes, report files, a monitor reading /proc...).
const SPARE_DESCRIPTORS: u64 = 64;

/// The open-descriptor limit after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (many distributions start processes at
/// 1 024, far below what thousands of connections need). Returns the limit now in force, or
/// `None` when it cannot be read. Never lowers it.
pub fn raise_nofile() -> Option<NofileLimit> {
    let mut limit = getrlimit_nofile()?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the hard one needs
        // no privilege. On failure the old limit stays in force, which is reported below.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(NofileLimit {
        soft: as_count(limit.rlim_cur),
        hard: as_count(limit.rlim_max),
    })
}

fn getrlimit_nofile() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// The open-descriptor limit a `run` will have: `run` raises the soft limit to the hard one.
pub fn nofile_for_run() -> Option<NofileLimit> {
    let limit = getrlimit_nofile()?;
    let hard = as_count(limit.rlim_max);
    Some(NofileLimit { soft: hard, hard })
}

/// Local ports the kernel hands out per source address and destination
/// (`net.ipv4.ip_local_port_range`), `None` when it cannot be read.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(low)), Some(Ok(high))) = (bounds.next(), bounds.next()) else {
        return None;
    };
    Some(high.saturating_sub(low) + 1)
}

/// What `check` says about the plan's load on this machine, for the process that runs
/// `shard`: levels `run` refuses, too few descriptors, too few ephemeral ports. Empty when
/// one process can hold it.
pub fn capacity_warnings(
    plan: &Plan,
    shard: Shard,
    nofile: Option<NofileLimit>,
    ports_per_source: Option<u64>,
) -> Vec<String> {
    if let Err(err) = capacity::refuse_absurd(&plan.load, u64::from(shard.count())) {
        return vec![format!("`run` will refuse this plan: {err}")];
    }
    share_warnings(plan, shard, nofile, ports_per_source)
}

/// The descriptor and port warnings for what `shard` holds of the plan's load.
pub fn share_warnings(
    plan: &Plan,
    shard: Shard,
    nofile: Option<NofileLimit>,
    ports_per_source: Option<u64>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let peak = peak_connections(plan, shard);
    let whose = if shard.is_split() {
        format!("shard {shard} (its share of the plan)")
    } else {
        "the plan".to_owned()
    };
    if let Some(warning) = nofile.and_then(|limit| nofile_warning(limit, peak, &whose)) {
        warnings.push(warning);
    }
    // The embedded server's ends use the server's port, not ephemeral ones.
    let outgoing = match plan.target {
        Target::Embedded(_) => peak / 2,
        Target::Address(_) => peak,
    };
    let sources = plan.source_addresses.len().max(1) as u64;
    if let Some(ports) = ports_per_source
        && outgoing > ports.saturating_mul(sources)
    {
        warnings.push(format!(
            "{whose} may hold up to {outgoing} connections at once to one target, but each \
             source address has {ports} ephemeral ports (net.ipv4.ip_local_port_range) and \
             the plan uses {sources}: connections beyond that fail with errors.io; add \
             `sourceAddresses` (e.g. 127.0.0.0/24 on loopback), widen the port range, or \
             split the load over more processes (`run --shard I/N`)"
        ));
    }
    warnings
}

/// `RLIM_INFINITY` and anything beyond u64 read as "no limit".
#[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux but not on every target
fn as_count(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        u64::try_from(value).unwrap_or(u64::MAX)
    }
}

/// The most connections the process running `shard` of the plan may hold open at once: exact
/// for closed-model phases and `adaptive`; for open-model phases `maxVusers` when set,
/// otherwise every arrival of the phase (an upper bound: it assumes no vuser finishes before
/// the phase ends). A shard holds its share of each (`Shard::share`).
pub fn peak_connections(plan: &Plan, shard: Shard) -> u64 {
    let per_process = match &plan.load {
        Load::Adaptive(adaptive) => adaptive.max_vusers,
        Load::Phases(phases) => phases
            .iter()
            .map(|phase| match &phase.shape {
                PhaseShape::Concurrency {
                    vusers, ramp_to, ..
                } => (*vusers).max(ramp_to.unwrap_or(0)),
                PhaseShape::Arrivals {
                    duration,
                    rate_per_sec,
                    ramp_to_per_sec,
                    max_vusers,
                    ..
                } => max_vusers.unwrap_or_else(|| {
                    let peak_rate = rate_per_sec.max(ramp_to_per_sec.unwrap_or(0.0));
                    // Saturating float-to-int cast: absurd rates read as "very many".
                    (peak_rate * duration.as_secs_f64()).ceil() as u64
                }),
                PhaseShape::ArrivalCount { count, .. } => *count,
                PhaseShape::Pause(_) => 0,
            })
            .max()
            .unwrap_or(0),
    };
    let per_process = shard.share(per_process);
    // The embedded server lives in the same process: it holds the other end of each one.
    match plan.target {
        Target::Embedded(_) => per_process.saturating_mul(2),
        Target::Address(_) => per_process,
    }
}

/// A warning when `limit` leaves too few descriptors for the `peak` connections of `whose`
/// ("the plan", "shard 1/3 …"), saying how to fix it; `None` when it fits.
pub fn nofile_warning(limit: NofileLimit, peak: u64, whose: &str) -> Option<String> {
    let needed = peak.saturating_add(SPARE_DESCRIPTORS);
    if limit.soft >= needed {
        return None;
    }
    let fix = if limit.hard < needed {
        format!(
            "the hard limit is {} too, so raise it as root (e.g. `ulimit -Hn {needed}` or \
             `LimitNOFILE=` in a systemd unit, `nofile` in /etc/security/limits.conf) or lower \
             the load / spread it over more generator processes (`run --shard I/N`)",
            limit.hard
        )
    } else {
        format!("raise it with `ulimit -n {needed}` before running")
    };
    Some(format!(
        "the open-descriptor limit (RLIMIT_NOFILE) is {}, but {whose} may hold up to {peak} \
         connections at once (about {needed} descriptors with the process's own): connections \
         beyond the limit will fail with errors.io \"too many open files\"; {fix}",
        limit.soft
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_and_reaches_the_hard_limit() {
        let Some(limit) = raise_nofile() else {
            return; // no getrlimit here: nothing to check
        };
        assert!(limit.soft <= limit.hard);
        // Raising the soft limit up to the hard one needs no privilege.
        assert_eq!(limit.soft, limit.hard);
        assert_eq!(raise_nofile(), Some(limit));
    }

    fn plan(phases: &str, target: &str) -> Plan {
        let text = format!(
            "config:\n  target: {target}\n  phases:\n{phases}scenarios:\n  - flow: [connect]\n"
        );
        match crate::plan::load_str(
            &text,
            std::path::Path::new("t.yml"),
            crate::plan::Format::Yaml,
        ) {
            Ok(plan) => plan,
            Err(problems) => panic!("{problems:?}"),
        }
    }

    #[test]
    fn peak_connections_from_phases() {
        let closed =
            "    - {duration: 5s, vusers: 100, rampTo: 3000}\n    - {duration: 5s, vusers: 200}\n";
        assert_eq!(
            peak_connections(&plan(closed, "127.0.0.1:9"), Shard::WHOLE),
            3000
        );
        // The embedded server's ends count too.
        assert_eq!(
            peak_connections(&plan(closed, "embedded"), Shard::WHOLE),
            6000
        );
        let open = "    - {duration: 10s, arrivalRate: 5, rampTo: 50}\n    - {pause: 5s}\n";
        assert_eq!(
            peak_connections(&plan(open, "127.0.0.1:9"), Shard::WHOLE),
            500
        );
        let capped = "    - {duration: 10s, arrivalRate: 50, maxVusers: 20}\n    - {duration: 2s, arrivalCount: 7}\n";
        assert_eq!(
            peak_connections(&plan(capped, "127.0.0.1:9"), Shard::WHOLE),
            20
        );
    }

    #[test]
    fn check_warns_about_descriptors_ports_and_refused_levels() {
        let limit = NofileLimit {
            soft: 1_024,
            hard: 1_024,
        };
        let heavy = plan("    - {duration: 5s, vusers: 50000}\n", "127.0.0.1:9");
        let warnings = capacity_warnings(&heavy, Shard::WHOLE, Some(limit), Some(28_232));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("RLIMIT_NOFILE"), "{warnings:?}");
        assert!(
            warnings[1].contains("28232 ephemeral ports"),
            "{warnings:?}"
        );
        let light = plan("    - {duration: 5s, vusers: 500}\n", "127.0.0.1:9");
        assert!(capacity_warnings(&light, Shard::WHOLE, Some(limit), Some(28_232)).is_empty());
        let absurd = plan("    - {duration: 5s, vusers: 1000000000}\n", "127.0.0.1:9");
        let warnings = capacity_warnings(&absurd, Shard::WHOLE, Some(limit), Some(28_232));
        assert!(
            warnings[0].starts_with("`run` will refuse this plan"),
            "{warnings:?}"
        );
    }

    /// About the Kubernetes example's size: 30 001 vusers over 3 shards. One process cannot
    /// hold them all, each shard its 10 001 can; 2 shards of 15 001 cannot.
    #[test]
    fn a_shard_is_judged_on_its_share() {
        let limit = NofileLimit {
            soft: 12_000,
            hard: 12_000,
        };
        let ports = Some(28_232);
        let closed = plan("    - {duration: 5s, vusers: 30001}\n", "127.0.0.1:9");
        let whole = capacity_warnings(&closed, Shard::WHOLE, Some(limit), ports);
        assert_eq!(whole.len(), 2, "{whole:?}");
        assert!(
            whole[0].contains("the plan may hold up to 30001"),
            "{whole:?}"
        );
        let shard = |i| Shard::new(i, 3).unwrap_or_default();
        assert!(capacity_warnings(&closed, shard(0), Some(limit), ports).is_empty());
        // Shard 0 holds the remainder: 10 001 of 30 001; open model and maxVusers alike.
        assert_eq!(peak_connections(&closed, shard(0)), 10_001);
        assert_eq!(peak_connections(&closed, shard(2)), 10_000);
        let capped = plan(
            "    - {duration: 10s, arrivalRate: 50, maxVusers: 40000}\n",
            "127.0.0.1:9",
        );
        assert_eq!(peak_connections(&capped, Shard::WHOLE), 40_000);
        assert_eq!(peak_connections(&capped, shard(1)), 13_333);
        // A split too coarse still warns, naming the shard.
        let two = Shard::new(0, 2).unwrap_or_default();
        let warnings = capacity_warnings(&closed, two, Some(limit), ports);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("shard 0/2"), "{warnings:?}");
        assert!(warnings[0].contains("15001 connections"), "{warnings:?}");
    }

    #[test]
    fn warning_says_the_limit_the_need_and_the_fix() {
        let fits = NofileLimit {
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(nofile_warning(fits, 10_000, "the plan"), None);
        let soft_only = NofileLimit {
            soft: 1_024,
            hard: 65_536,
        };
        let warning = nofile_warning(soft_only, 10_000, "the plan").unwrap_or_default();
        assert!(warning.contains("is 1024"), "{warning}");
        assert!(warning.contains("up to 10000 connections"), "{warning}");
        assert!(warning.contains("ulimit -n 10064"), "{warning}");
        let hard = nofile_warning(fits, 50_000, "the plan").unwrap_or_default();
        assert!(hard.contains("hard limit is 20000"), "{hard}");
        assert!(hard.contains("ulimit -Hn 50064"), "{hard}");
    }
}
