//! The bucket layout of every latency histogram on `/metrics`, and the folding of a
//! microsecond HdrHistogram into it.
//!
//! Layout: upper bounds `0.0001 × 10^(k/40)` seconds for `k = 0..=240` (40 log-spaced buckets
//! per decade from 0.1 ms to 100 s, rounded to 4 significant digits), then `+Inf`. Every
//! decade boundary (1 ms, 10 ms, 100 ms, 1 s, 10 s) is an exact bound, so SLO queries such as
//! `le="0.1"` work. Neighbouring bounds differ by 5.9 % (up to 6.4 % below 1 ms, where bounds
//! are whole microseconds), so `histogram_quantile` (which interpolates linearly inside a
//! bucket) lands within that of the true quantile in the worst case and typically within
//! 1–3 %; the HdrHistograms themselves are exact to 0.1 %. 241 finite buckets per series.
//!
//! It does not decide which histograms exist or what they are called (`series.rs`).

use std::sync::OnceLock;

use hdrhistogram::Histogram;

/// Buckets per decade.
pub const PER_DECADE: u32 = 40;
/// Decades covered above the first bound (0.1 ms → 100 s).
pub const DECADES: u32 = 6;
/// The lowest upper bound, in seconds.
pub const FIRST_BOUND_SECONDS: f64 = 0.0001;

/// The finite upper bounds, ascending, in seconds and in microseconds, with their `le`
/// label text (computed once, identical in every scrape).
pub struct Layout {
    pub bounds_us: Vec<u64>,
    pub labels: Vec<String>,
}

/// The shared layout.
pub fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let count = PER_DECADE * DECADES + 1;
        let mut bounds_us = Vec::with_capacity(count as usize);
        let mut labels = Vec::with_capacity(count as usize);
        for k in 0..count {
            let seconds = round_significant(
                FIRST_BOUND_SECONDS * 10f64.powf(f64::from(k) / f64::from(PER_DECADE)),
                4,
            );
            // Bounds are whole microseconds (the histograms' resolution).
            bounds_us.push((seconds * 1e6).round() as u64);
            labels.push(format_float(seconds));
        }
        Layout { bounds_us, labels }
    })
}

fn round_significant(x: f64, digits: i32) -> f64 {
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - magnitude);
    (x * scale).round() / scale
}

/// A float as Prometheus writes it: the shortest text that reads back as the same value.
pub fn format_float(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if x.is_nan() {
        return "NaN".to_owned();
    }
    format!("{x}")
}

/// One histogram series folded into the layout: per-bucket (not yet cumulative) counts, the
/// last slot being `+Inf`, and the sum of the samples in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    pub counts: Vec<u64>,
    pub sum_us: f64,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            counts: vec![0; layout().bounds_us.len() + 1],
            sum_us: 0.0,
        }
    }
}

impl Buckets {
    /// Adds every sample of `h` (microseconds).
    pub fn add(&mut self, h: &Histogram<u64>) {
        let bounds = &layout().bounds_us;
        for value in h.iter_recorded() {
            let count = value.count_at_value();
            // The middle of the HdrHistogram's equivalence range (within 0.1 % of the sample).
            let us = h.median_equivalent(value.value_iterated_to());
            let slot = bounds.partition_point(|&bound| bound < us);
            if let Some(c) = self.counts.get_mut(slot) {
                *c = c.saturating_add(count);
            }
            self.sum_us += us as f64 * count as f64;
        }
    }

    /// Adds another series' counts.
    pub fn add_buckets(&mut self, other: &Buckets) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum_us += other.sum_us;
    }

    /// Takes `other`'s counts away (floored at zero): what a total has beyond its parts.
    pub fn subtract(&mut self, other: &Buckets) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_sub(*theirs);
        }
        self.sum_us = (self.sum_us - other.sum_us).max(0.0);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The quantile as Prometheus' `histogram_quantile` estimates it from these buckets
    /// (linear interpolation inside the bucket; the first bucket starts at zero), in seconds.
    pub fn estimate_quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let bounds = &layout().bounds_us;
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let upto = below + c;
            if (upto as f64) >= rank && c > 0 {
                let Some(&upper) = bounds.get(i) else {
                    // `+Inf`: Prometheus answers with the highest finite bound.
                    return bounds.last().map(|&b| b as f64 / 1e6);
                };
                let lower = if i == 0 { 0 } else { bounds[i - 1] };
                let within = (rank - below as f64) / c as f64;
                return Some((lower as f64 + (upper - lower) as f64 * within) / 1e6);
            }
            below = upto;
        }
        bounds.last().map(|&b| b as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn the_layout_spans_a_tenth_of_a_millisecond_to_a_hundred_seconds() {
        let l = layout();
        assert_eq!(l.bounds_us.len(), 241);
        assert_eq!(l.bounds_us.first(), Some(&100));
        assert_eq!(l.bounds_us.last(), Some(&100_000_000));
        for decade in ["0.0001", "0.001", "0.01", "0.1", "1", "10", "100"] {
            assert!(l.labels.iter().any(|s| s == decade), "{decade} missing");
        }
        assert!(l.bounds_us.windows(2).all(|w| w[0] < w[1]));
        let worst = l
            .bounds_us
            .windows(2)
            .map(|w| w[1] as f64 / w[0] as f64)
            .fold(0.0, f64::max);
        assert!(worst < 1.065, "{worst}");
    }

    /// The promise of the module doc: p99 estimated from the buckets lands within a few
    /// percent of HdrHistogram's own p99, from 0.1 ms to 60 s.
    #[test]
    fn p99_from_the_buckets_is_within_six_percent_of_the_histogram() {
        let mut rng_state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            (rng_state >> 11) as f64 / (1u64 << 53) as f64
        };
        for centre_us in [
            150.0, 900.0, 4_000.0, 35_000.0, 270_000.0, 2.2e6, 9.0e6, 45.0e6,
        ] {
            let mut h = new_histogram();
            for _ in 0..20_000 {
                // Log-normal-ish spread around the centre.
                let factor = (next() * 2.0 - 1.0) * 0.6 + (next() - 0.5) * 0.4;
                let us = (centre_us * factor.exp()).max(100.0) as u64;
                h.record(us.min(60_000_000)).expect("in range");
            }
            let mut buckets = Buckets::default();
            buckets.add(&h);
            assert_eq!(buckets.count(), h.len());
            let exact = h.value_at_quantile(0.99) as f64 / 1e6;
            let estimate = buckets.estimate_quantile(0.99).expect("samples");
            let error = (estimate - exact).abs() / exact;
            assert!(
                error < 0.06,
                "centre {centre_us} µs: exact {exact}, estimate {estimate}"
            );
        }
    }

    #[test]
    fn subtracting_the_parts_leaves_the_rest_and_never_goes_negative() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        a.record(1_000).expect("in range");
        a.record(50_000).expect("in range");
        b.record(1_000).expect("in range");
        let (mut total, mut part) = (Buckets::default(), Buckets::default());
        total.add(&a);
        part.add(&b);
        total.subtract(&part);
        assert_eq!(total.count(), 1);
        part.subtract(&total);
        part.subtract(&total);
        assert_eq!(part.count(), 1);
    }
}
