//! Judging the delivery stamps one vuser receives: each (sender, send time) counts once, and
//! stamps that cannot be true deliveries — from another run, sent "in the future", or seen
//! before (a server that reflects or replays frames) — are counted apart as invalid instead of
//! becoming latency samples.
//!
//! A sender's stamps carry increasing send times, so per sender a high-water mark plus a small
//! window of the latest accepted times tells a first arrival (also a slightly reordered one)
//! from a repeat in constant memory. The table of senders is bounded too.
//! Finding stamps in a frame is `stamp`'s job; [`count`] records the verdicts (the vuser calls
//! it only when the plan can send stamps at all).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::context::RunContext;
use super::stamp::{self, Found};
use crate::vocab::names;

/// Latest accepted send times kept per sender: a stamp older than all of them (once the
/// window is full) cannot be told from a replay and is not counted.
const WINDOW: usize = 4;

/// How far a send time may lie ahead of the receiver's clock and still count (as zero): shards
/// on other machines send with their own clocks. Further ahead is forged or broken.
const FUTURE_TOLERANCE_US: u64 = 1_000_000;

/// Most senders one vuser tracks; past it the sender heard from longest ago is forgotten.
const MAX_SENDERS: usize = 1024;

/// What a found stamp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A first arrival: record its latency.
    Delivery,
    /// From another run, sent after it was received, or already counted.
    Invalid,
}

#[derive(Debug, Default)]
struct Seen {
    /// The latest accepted send times, newest first; `len` of them are set.
    recent: [u64; WINDOW],
    len: usize,
}

impl Seen {
    fn high(&self) -> u64 {
        self.recent.first().copied().unwrap_or(0)
    }

    /// Accepts `sent_us` if it was not seen and is not older than the window can judge.
    fn accept(&mut self, sent_us: u64) -> bool {
        let kept = self.recent.get(..self.len).unwrap_or_default();
        if kept.contains(&sent_us) {
            return false;
        }
        let full = self.len == WINDOW;
        if full && kept.last().is_some_and(|oldest| sent_us < *oldest) {
            return false;
        }
        // Insert in order (newest first), dropping the oldest when full.
        let at = kept.iter().position(|v| *v < sent_us).unwrap_or(self.len);
        self.len = (self.len + 1).min(WINDOW);
        if let Some(window) = self.recent.get_mut(at..self.len) {
            window.rotate_right(1);
            if let Some(slot) = window.first_mut() {
                *slot = sent_us;
            }
        }
        true
    }
}

/// The stamps one vuser has counted, per sender.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    senders: HashMap<u64, Seen>,
}

impl Deliveries {
    /// Judges `found` (of this run when `ours`), received at `now_us` (the stamps' clock).
    pub fn judge(&mut self, ours: bool, found: Found, now_us: u64) -> Verdict {
        if !ours || found.sent_us > now_us.saturating_add(FUTURE_TOLERANCE_US) {
            return Verdict::Invalid;
        }
        if self.senders.len() >= MAX_SENDERS && !self.senders.contains_key(&found.sender) {
            let stalest = self
                .senders
                .iter()
                .min_by_key(|(_, seen)| seen.high())
                .map(|(sender, _)| *sender);
            if let Some(sender) = stalest {
                self.senders.remove(&sender);
            }
        }
        let seen = self.senders.entry(found.sender).or_default();
        if seen.accept(found.sent_us) {
            Verdict::Delivery
        } else {
            Verdict::Invalid
        }
    }
}

/// Records a delivery for every first-seen stamp of this run in `body` (received at `at`),
/// and counts the invalid ones (another run's, replayed, from the future).
pub(crate) fn count(deliveries: &mut Deliveries, ctx: &RunContext, body: &[u8], at: Instant) {
    let recorder = &ctx.recorder;
    // Wall-clock µs on the run's clock, like the sender's (which may be another shard).
    let since_start = at.saturating_duration_since(ctx.start).as_micros();
    let now_us = ctx
        .wall_start_us
        .saturating_add(u64::try_from(since_start).unwrap_or(u64::MAX));
    let mut invalid = 0;
    for (run, found) in stamp::scan_any(body) {
        let ours = run == ctx.run_id.as_bytes();
        match deliveries.judge(ours, found, now_us) {
            // A send time slightly ahead of ours (two machines' clocks apart, within the
            // judge's tolerance) counts as zero.
            Verdict::Delivery => recorder.record(
                ctx.ids.delivery,
                Duration::from_micros(now_us.saturating_sub(found.sent_us)),
            ),
            Verdict::Invalid => invalid += 1,
        }
    }
    if invalid > 0 {
        // Rare: looked up by name here rather than registered for every run.
        let counter = recorder.counter(names::DELIVERY_INVALID);
        recorder.add(counter, invalid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sender: u64, sent_us: u64) -> Found {
        Found { sender, sent_us }
    }

    #[test]
    fn each_stamp_counts_once_however_often_it_is_reflected() {
        let mut d = Deliveries::default();
        let mut delivered = 0;
        for send in 0..18u64 {
            // A server reflecting each frame a thousand times.
            for _ in 0..1000 {
                if d.judge(true, stamp(7, 100 + send), 10_000) == Verdict::Delivery {
                    delivered += 1;
                }
            }
        }
        assert_eq!(delivered, 18);
    }

    #[test]
    fn foreign_and_future_stamps_are_invalid() {
        let mut d = Deliveries::default();
        let now = 5_000_000;
        assert_eq!(d.judge(false, stamp(1, 5), now), Verdict::Invalid);
        let ahead = now + FUTURE_TOLERANCE_US;
        assert_eq!(d.judge(true, stamp(1, ahead + 1), now), Verdict::Invalid);
        // Within the clock-skew tolerance it counts.
        assert_eq!(d.judge(true, stamp(1, ahead), now), Verdict::Delivery);
    }

    #[test]
    fn a_slightly_reordered_arrival_still_counts_but_an_old_replay_does_not() {
        let mut d = Deliveries::default();
        for sent in [10, 30, 20, 40, 50, 60] {
            assert_eq!(
                d.judge(true, stamp(1, sent), 100),
                Verdict::Delivery,
                "{sent}"
            );
        }
        // The window holds 60 50 40 30: 20 and 10 are too old to tell, 35 is new.
        assert_eq!(d.judge(true, stamp(1, 20), 100), Verdict::Invalid);
        assert_eq!(d.judge(true, stamp(1, 35), 100), Verdict::Delivery);
        assert_eq!(d.judge(true, stamp(1, 35), 100), Verdict::Invalid);
        // Senders are judged apart.
        assert_eq!(d.judge(true, stamp(2, 20), 100), Verdict::Delivery);
    }

    #[test]
    fn the_sender_table_is_bounded() {
        let mut d = Deliveries::default();
        for sender in 0..(MAX_SENDERS as u64 * 3) {
            assert_eq!(
                d.judge(true, stamp(sender, sender + 1), u64::MAX),
                Verdict::Delivery
            );
        }
        assert_eq!(d.senders.len(), MAX_SENDERS);
    }
}
