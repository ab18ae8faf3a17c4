//! The one JSON line both ping-pong yardsticks print (examples/pingpong_minimal.rs and
//! bench/pingpong_uring.rs), which bench/suite.py reads: one definition, so the two cannot
//! drift apart. Included by path (`#[path]`), as the examples share no crate.

use hdrhistogram::Histogram;

/// What one run of a yardstick did: its latencies (µs) over all connections, and the round
/// trips of the connection that made the fewest and the most (`fewest` = 0 when one made none).
pub struct PingpongResult<'a> {
    pub connections: usize,
    pub latencies: &'a Histogram<u64>,
    pub seconds: f64,
    pub errors: u64,
    pub fewest: u64,
    pub most: u64,
}

impl PingpongResult<'_> {
    /// The JSON line; `spread` (most ÷ fewest) is -1 when a connection made no round trip.
    pub fn line(&self) -> String {
        let spread = if self.fewest == 0 {
            -1.0
        } else {
            self.most as f64 / self.fewest as f64
        };
        format!(
            "{{\"connections\":{},\"round_trips\":{},\"seconds\":{:.3},\"rt_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{},\"min_rt\":{},\"max_rt\":{},\"spread\":{:.3}}}",
            self.connections,
            self.latencies.len(),
            self.seconds,
            self.latencies.len() as f64 / self.seconds,
            self.latencies.value_at_quantile(0.5) as f64 / 1000.0,
            self.latencies.value_at_quantile(0.99) as f64 / 1000.0,
            self.errors,
            self.fewest,
            self.most,
            spread
        )
    }
}
