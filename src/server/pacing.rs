//! The knobs that make the server imperfect on purpose: one capacity limiter shared by all
//! commands, periodic whole-server stalls, and per-message delay with jitter.
//!
//! Uses `tokio::time` throughout, so tests can pause time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::server::{ServerConfig, Stall};

pub struct Pacing {
    start: Instant,
    delay: Duration,
    jitter: Duration,
    stall: Option<Stall>,
    /// Nanoseconds between two commands at capacity (0: unlimited).
    interval_nanos: u64,
    /// The theoretical time (nanoseconds after `start`) at which the next command may run:
    /// a virtual-scheduling token bucket without burst, so saturation is exactly the rate.
    next_slot_nanos: AtomicU64,
}

impl Pacing {
    pub fn new(config: &ServerConfig) -> Self {
        let interval_nanos = config
            .capacity_per_sec
            .map_or(0, |rate| (1e9 / rate).round().max(1.0) as u64);
        Pacing {
            start: Instant::now(),
            delay: config.delay,
            jitter: config.jitter,
            stall: config.stall,
            interval_nanos,
            next_slot_nanos: AtomicU64::new(0),
        }
    }

    /// Waits until the server may process one more command: outside a stall, and within
    /// capacity. Commands over capacity wait here, so their replies queue up behind them.
    pub async fn before_command(&self) {
        self.wait_out_stall().await;
        if self.interval_nanos == 0 {
            return;
        }
        let now = self.nanos_since_start(Instant::now());
        let mut current = self.next_slot_nanos.load(Ordering::Relaxed);
        let slot = loop {
            let slot = current.max(now);
            match self.next_slot_nanos.compare_exchange_weak(
                current,
                slot + self.interval_nanos,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break slot,
                Err(actual) => current = actual,
            }
        };
        if slot > now {
            tokio::time::sleep_until(self.start + Duration::from_nanos(slot)).await;
        }
        self.wait_out_stall().await;
    }

    /// When a message produced now should leave: `None` when there is no delay to apply.
    pub fn due(&self) -> Option<Instant> {
        if self.delay.is_zero() && self.jitter.is_zero() {
            return None;
        }
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::random_range(0..=self.jitter.as_nanos() as u64))
        };
        Some(Instant::now() + self.delay + jitter)
    }

    /// Sleeps until the current stall (if any) is over.
    pub async fn wait_out_stall(&self) {
        if let Some(end) = self.stall_end(Instant::now()) {
            tokio::time::sleep_until(end).await;
        }
    }

    /// Stalls occupy `[k·every, k·every + duration)` after start, for k ≥ 1.
    fn stall_end(&self, now: Instant) -> Option<Instant> {
        let stall = self.stall?;
        let elapsed = now.duration_since(self.start);
        let every = stall.every.as_nanos();
        let period = elapsed.as_nanos() / every;
        let into = elapsed.as_nanos() % every;
        if period >= 1 && into < stall.duration.as_nanos() {
            let end_nanos = period * every + stall.duration.as_nanos();
            Some(self.start + Duration::from_nanos(end_nanos as u64))
        } else {
            None
        }
    }

    fn nanos_since_start(&self, now: Instant) -> u64 {
        now.duration_since(self.start).as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn capacity_spaces_commands_exactly() {
        let pacing = Pacing::new(&ServerConfig {
            capacity_per_sec: Some(100.0),
            ..ServerConfig::default()
        });
        let start = Instant::now();
        for _ in 0..101 {
            pacing.before_command().await;
        }
        // 101 commands at 100/s: the first at once, the last 1 s later.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn stalls_freeze_periodically() {
        let pacing = Pacing::new(&ServerConfig {
            stall: Some(Stall {
                duration: Duration::from_millis(300),
                every: Duration::from_secs(1),
            }),
            ..ServerConfig::default()
        });
        let start = Instant::now();
        pacing.before_command().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        pacing.before_command().await;
        assert_eq!(start.elapsed(), Duration::from_millis(1300));
        tokio::time::sleep(Duration::from_millis(500)).await;
        pacing.before_command().await;
        assert_eq!(start.elapsed(), Duration::from_millis(1800));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_and_jitter_bound_the_due_time() {
        let pacing = Pacing::new(&ServerConfig {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            ..ServerConfig::default()
        });
        let now = Instant::now();
        for _ in 0..100 {
            let due = pacing.due().expect("delayed");
            assert!(due >= now + Duration::from_millis(50));
            assert!(due <= now + Duration::from_millis(60));
        }
        assert!(Pacing::new(&ServerConfig::default()).due().is_none());
    }
}
