//! The latency distribution chart: HdrHistogram's percentile spectrum (latency against
//! percentile, the percentile on a log scale of `1 / (1 - p)` so 90 %, 99 %, 99.9 % … are
//! evenly spaced), drawn from the run's aggregate histograms as inline SVG.
//!
//! The points come from [`spectrum_points`]; the frame, lines and legend are the time charts'
//! (`charts.rs`), so both kinds of chart look alike.

use std::fmt::Write as _;

use crate::metrics::Histogram;

use super::charts::{Frame, legend};

// Drawn across the page (the time charts are two per row), so twice their width: text keeps
// the same size and the legend has room for many metrics.
const WIDTH: f64 = 1280.0;
const HEIGHT: f64 = 300.0;

/// Quantile steps per halving of the distance to 100 % (HdrHistogram's
/// `ticks_per_half_distance`): about 8 points per decade of the x axis.
const TICKS_PER_HALF_DISTANCE: u32 = 4;

/// One metric's spectrum: `(percentile 0–100, latency ms)`, both non-decreasing, the last
/// point `(100, max)`.
#[derive(Clone, Debug)]
pub struct SpectrumSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The percentile spectrum of a microsecond histogram, in milliseconds. Empty for an empty
/// histogram.
pub fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let max = ms(h.max());
    let mut out: Vec<(f64, f64)> = Vec::new();
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        let q = v.quantile_iterated_to();
        if !(0.0..1.0).contains(&q) {
            continue;
        }
        let point = (
            q * 100.0,
            ms(h.highest_equivalent(v.value_iterated_to())).min(max),
        );
        match out.last() {
            Some(&(p, y)) if point.0 <= p || point.1 < y => {}
            _ => out.push(point),
        }
    }
    out.push((100.0, max));
    out
}

/// `log10(1 / (1 - p))` for a percentile `p` in 0–100: 0 at 0 %, 1 at 90 %, 2 at 99 %.
fn x_of(percentile: f64) -> f64 {
    let rest = 1.0 - percentile / 100.0;
    if rest <= 0.0 {
        f64::INFINITY
    } else {
        -rest.log10()
    }
}

/// `90`, `99`, `99.9`, `99.99` … for decade `n` (0 → `0`).
fn percentile_label(decade: u32) -> String {
    match decade {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        2 => "99%".to_owned(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)),
    }
}

/// Where the 100 % point is drawn: at `1 / (1 - p) = samples` (the finest percentile the
/// data resolves), and never left of the last finite point.
fn end_x(points: &[(f64, f64)], samples: u64) -> f64 {
    let last_finite = points
        .iter()
        .map(|p| x_of(p.0))
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max);
    (samples.max(1) as f64).log10().max(last_finite)
}

/// The spectrum chart of `series` as an `<svg>` element; `samples[i]` is the sample count of
/// `series[i]` (placing its 100 % point).
pub fn render_spectrum_svg(title: &str, series: &[SpectrumSeries], samples: &[u64]) -> String {
    let ends: Vec<f64> = series
        .iter()
        .zip(samples.iter().copied().chain(std::iter::repeat(1)))
        .map(|(s, n)| end_x(&s.points, n))
        .collect();
    let decades = ends.iter().copied().fold(2.0f64, f64::max).ceil() as u32;
    let x_max = f64::from(decades);
    let y_max_data = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let frame = Frame::new(WIDTH, HEIGHT, x_max, y_max_data);

    let mut svg = frame.open_svg(title);
    frame.y_grid(&mut svg, "ms");
    // A vertical grid line per decade: the percentiles 90 %, 99 %, 99.9 % … are the ones read.
    for decade in 0..=decades {
        let px = frame.px(f64::from(decade));
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{:.1}"/>"#,
            frame.plot_top(),
            frame.plot_bottom(),
        );
        frame.x_label(&mut svg, px, &percentile_label(decade), decade == decades);
    }
    for (i, (s, end)) in series.iter().zip(&ends).enumerate() {
        if s.points.is_empty() {
            continue;
        }
        // The 100 % point lies at infinity on this axis: draw it at `end` instead.
        let points = s.points.iter().map(|&(p, v)| (x_of(p).min(*end), v));
        frame.line(&mut svg, "line spectrum", i, &s.name, [points]);
    }
    legend(&mut svg, series.iter().map(|s| s.name.as_str()));
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_histogram;

    #[test]
    fn spectrum_is_monotonic_and_ends_at_the_max() {
        let mut h = new_histogram();
        for us in 1..=20_000u64 {
            h.record(us * 3).expect("records");
        }
        h.record(2_500_000).expect("records"); // one 2.5 s outlier
        let points = spectrum_points(&h);
        assert!(points.len() > 20, "{} points", points.len());
        assert_eq!(points.first().map(|p| p.0), Some(0.0));
        for pair in points.windows(2) {
            assert!(pair[1].0 > pair[0].0, "percentiles increase: {pair:?}");
            assert!(pair[1].1 >= pair[0].1, "latencies never decrease: {pair:?}");
        }
        let last = points.last().copied().expect("points");
        assert_eq!(last, (100.0, h.max() as f64 / 1000.0));
        assert!((last.1 - 2500.0).abs() <= 2500.0 * 0.001, "{last:?}");
        // The median is where the data puts it (30 ms), within HdrHistogram's precision.
        let median = points
            .iter()
            .find(|p| p.0 >= 50.0)
            .map(|p| p.1)
            .expect("a median");
        assert!((median - 30.0).abs() < 0.5, "{median}");
        assert!(spectrum_points(&new_histogram()).is_empty());
    }

    #[test]
    fn the_x_axis_is_log_of_one_over_one_minus_p() {
        assert_eq!(x_of(0.0), 0.0);
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-9);
        assert!(x_of(100.0).is_infinite());
        let labels: Vec<String> = (0..5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn svg_draws_one_line_per_metric() {
        let mut h = new_histogram();
        for us in 1..=1_000u64 {
            h.record(us).expect("records");
        }
        let series = vec![SpectrumSeries {
            name: "latency.<chat>".into(),
            points: spectrum_points(&h),
        }];
        let svg = render_spectrum_svg("distribution", &series, &[h.len()]);
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.contains("latency.&lt;chat&gt;"));
        assert!(svg.contains(">99.9%<"));
        assert!(!svg.contains("inf") && !svg.contains("NaN"), "{svg}");
    }
}
