//! The adaptive controller's decisions (DESIGN §4), pure and synchronous: which concurrency
//! level to hold next, given whether the last window was healthy, and whether a window's
//! numbers are healthy under the plan's `adaptive.limits`.
//!
//! The search: hold `startVusers`; while windows are healthy, double the level (capped at
//! `maxVusers`); on the first unhealthy window back off at once to the midpoint between the
//! last healthy and the first unhealthy level, then bisect between the highest healthy and
//! the lowest unhealthy level until the gap is within [`GAP_PERCENT`] % of the healthy one.
//! The answer is the highest healthy level (`None` when not even one vuser was healthy).
//!
//! Holding vusers, cutting windows and measuring them is `adaptive_run`'s job.

use crate::plan::AdaptiveLimits;

/// Bisection stops when `unhealthy - healthy` is at most this percentage of `healthy`.
pub const GAP_PERCENT: u64 = 5;

/// A search never takes more windows than this, whatever the noise.
pub const MAX_WINDOWS: usize = 64;

/// What one window measured (its settling part left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowStats {
    /// The highest p95 over the `latency.*` metrics, in ms; `None` without samples.
    pub p95_ms: Option<f64>,
    /// `errors.rate`: errors per attempted operation, in percent.
    pub error_rate_percent: f64,
    /// Matched expects per expect outcome (matched + timed out / failed), in percent; `None`
    /// when nothing was expected.
    pub success_rate_percent: Option<f64>,
    /// Mean server CPU over the window's monitor samples (percent of one core).
    pub server_cpu_percent: Option<f64>,
    /// Highest server memory over the window's samples (percent of host memory).
    pub server_memory_percent: Option<f64>,
}

/// Checks `stats` against `limits`: `Err(reason)` names every limit that was broken.
///
/// A limit whose measurement is missing does not break: no latency samples is not a slow
/// server (errors and the success rate catch a dead one), and CPU/memory come only with a
/// monitor.
pub fn judge(limits: &AdaptiveLimits, stats: &WindowStats) -> Result<(), String> {
    let mut broken = Vec::new();
    if let (Some(limit), Some(p95)) = (limits.p95, stats.p95_ms) {
        let limit_ms = limit.as_secs_f64() * 1000.0;
        if p95 >= limit_ms {
            broken.push(format!("p95 {p95:.1} ms ≥ {limit_ms:.0} ms"));
        }
    }
    if let Some(limit) = limits.error_rate_percent
        && stats.error_rate_percent > limit
    {
        broken.push(format!(
            "error rate {:.2} % > {limit} %",
            stats.error_rate_percent
        ));
    }
    if let (Some(limit), Some(rate)) = (limits.success_rate_percent, stats.success_rate_percent)
        && rate < limit
    {
        broken.push(format!("success rate {rate:.2} % < {limit} %"));
    }
    if let (Some(limit), Some(cpu)) = (limits.cpu_percent, stats.server_cpu_percent)
        && cpu > limit
    {
        broken.push(format!("server CPU {cpu:.0} % > {limit} %"));
    }
    if let (Some(limit), Some(mem)) = (limits.memory_percent, stats.server_memory_percent)
        && mem > limit
    {
        broken.push(format!("server memory {mem:.1} % > {limit} %"));
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join(", "))
    }
}

/// What to do after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Hold this many vusers for the next window.
    Hold(u64),
    /// The search is over.
    Done { max_stable: Option<u64> },
}

/// The search state: the highest healthy and lowest unhealthy levels seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    max_vusers: u64,
    level: u64,
    healthy: Option<u64>,
    unhealthy: Option<u64>,
    windows: usize,
}

impl Controller {
    /// A search from `start_vusers` up to at most `max_vusers` (both at least 1).
    pub fn new(start_vusers: u64, max_vusers: u64) -> Self {
        let max_vusers = max_vusers.max(1);
        Controller {
            max_vusers,
            level: start_vusers.clamp(1, max_vusers),
            healthy: None,
            unhealthy: None,
            windows: 0,
        }
    }

    /// The level to hold now.
    pub fn level(&self) -> u64 {
        self.level
    }

    /// The highest level that held so far.
    pub fn max_stable(&self) -> Option<u64> {
        self.healthy
    }

    /// Records the verdict on the window just held at [`Self::level`] and picks the next.
    pub fn record(&mut self, healthy: bool) -> Next {
        self.windows += 1;
        let level = self.level;
        if healthy {
            self.healthy = Some(self.healthy.map_or(level, |h| h.max(level)));
        } else {
            self.unhealthy = Some(self.unhealthy.map_or(level, |u| u.min(level)));
        }
        if self.windows >= MAX_WINDOWS {
            return self.done();
        }
        let next = match self.unhealthy {
            // Still climbing: every window so far was healthy.
            None if level >= self.max_vusers => return self.done(),
            None => level.saturating_mul(2).clamp(level + 1, self.max_vusers),
            Some(bad) => {
                let good = self.healthy.unwrap_or(0);
                let gap = bad.saturating_sub(good);
                // Percent of the healthy level, but never narrower than one vuser.
                if gap <= 1 || gap.saturating_mul(100) <= good.saturating_mul(GAP_PERCENT) {
                    return self.done();
                }
                good + gap / 2
            }
        };
        self.level = next;
        Next::Hold(next)
    }

    fn done(&self) -> Next {
        Next::Done {
            max_stable: self.healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs a search against a server whose true knee is `knee` (levels ≤ knee are healthy).
    fn search(start: u64, max: u64, knee: u64) -> (Vec<u64>, Option<u64>) {
        let mut c = Controller::new(start, max);
        let mut levels = vec![c.level()];
        loop {
            match c.record(c.level() <= knee) {
                Next::Hold(level) => levels.push(level),
                Next::Done { max_stable } => return (levels, max_stable),
            }
        }
    }

    #[test]
    fn raises_by_doubling_while_healthy() {
        let mut c = Controller::new(10, 1000);
        assert_eq!(c.record(true), Next::Hold(20));
        assert_eq!(c.record(true), Next::Hold(40));
        assert_eq!(c.record(true), Next::Hold(80));
    }

    #[test]
    fn backs_off_at_once_to_the_midpoint_on_a_breach() {
        let mut c = Controller::new(10, 1000);
        c.record(true); // 10 held → 20
        c.record(true); // 20 held → 40
        assert_eq!(c.record(false), Next::Hold(30));
        assert_eq!(c.record(false), Next::Hold(25));
        assert_eq!(c.record(true), Next::Hold(27));
    }

    #[test]
    fn bisects_to_within_five_percent_of_the_knee() {
        for knee in [7, 30, 99, 200, 333, 777] {
            let (levels, found) = search(10, 10_000, knee);
            let found = found.unwrap_or(0);
            assert!(
                found <= knee,
                "knee {knee}: {found} is above it ({levels:?})"
            );
            assert!(
                (knee - found) * 100 <= knee * GAP_PERCENT,
                "knee {knee}: {found} is more than 5 % below ({levels:?})"
            );
            assert!(levels.len() < 20, "knee {knee}: {} windows", levels.len());
        }
    }

    #[test]
    fn the_200_knee_takes_ten_windows() {
        let (levels, found) = search(10, 1000, 200);
        assert_eq!(found, Some(200));
        assert_eq!(levels, vec![10, 20, 40, 80, 160, 320, 240, 200, 220, 210]);
    }

    #[test]
    fn stops_at_max_vusers_when_everything_holds() {
        let (levels, found) = search(10, 50, u64::MAX);
        assert_eq!(levels, vec![10, 20, 40, 50]);
        assert_eq!(found, Some(50));
    }

    #[test]
    fn a_start_that_already_breaks_searches_below_it_and_may_find_nothing() {
        let (levels, found) = search(40, 100, 12);
        assert_eq!(found, Some(12));
        assert_eq!(levels.first(), Some(&40));
        assert_eq!(levels.get(1), Some(&20));
        let (_, none) = search(4, 100, 0);
        assert_eq!(none, None);
    }

    #[test]
    fn never_holds_forever_on_a_flapping_server() {
        let mut c = Controller::new(10, 1_000_000);
        let mut windows = 1;
        let mut healthy = true;
        while let Next::Hold(_) = c.record(healthy) {
            windows += 1;
            healthy = !healthy;
            assert!(windows <= MAX_WINDOWS);
        }
    }

    fn limits() -> AdaptiveLimits {
        AdaptiveLimits {
            cpu_percent: Some(80.0),
            memory_percent: Some(50.0),
            p95: Some(Duration::from_millis(200)),
            success_rate_percent: Some(99.0),
            error_rate_percent: Some(1.0),
        }
    }

    #[test]
    fn a_window_within_every_limit_is_healthy() {
        let stats = WindowStats {
            p95_ms: Some(120.0),
            error_rate_percent: 0.5,
            success_rate_percent: Some(99.5),
            server_cpu_percent: Some(60.0),
            server_memory_percent: Some(10.0),
        };
        assert_eq!(judge(&limits(), &stats), Ok(()));
    }

    #[test]
    fn each_broken_limit_is_named() {
        let stats = WindowStats {
            p95_ms: Some(250.0),
            error_rate_percent: 3.0,
            success_rate_percent: Some(90.0),
            server_cpu_percent: Some(95.0),
            server_memory_percent: Some(70.0),
        };
        let reason = judge(&limits(), &stats).err().unwrap_or_default();
        for part in [
            "p95 250.0 ms",
            "error rate",
            "success rate",
            "CPU",
            "memory",
        ] {
            assert!(reason.contains(part), "{part} missing from {reason}");
        }
    }

    #[test]
    fn missing_measurements_do_not_break_limits() {
        assert_eq!(judge(&limits(), &WindowStats::default()), Ok(()));
        let only_p95 = AdaptiveLimits {
            p95: Some(Duration::from_millis(200)),
            ..Default::default()
        };
        let slow = WindowStats {
            p95_ms: Some(200.0),
            ..Default::default()
        };
        assert!(
            judge(&only_p95, &slow).is_err(),
            "p95 must stay below the limit"
        );
    }
}
