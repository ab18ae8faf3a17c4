//! Time-series charts as inline SVG, rendered in Rust so the HTML report needs no script and
//! no network: axes with round ticks, one polyline per series, a legend, phase markers.
//! Long series are downsampled to at most [`MAX_POINTS`] per line, keeping spikes (per-bucket
//! maximum) where a spike is the point of the chart.
//!
//! It does not know metric names or the result model: `html.rs` builds the [`Chart`]s.

use std::fmt::Write as _;

/// Most points drawn per series; a 1-hour run at 1 s intervals has 3 600.
pub const MAX_POINTS: usize = 600;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 26.0;

/// Colours of successive series (colour-blind-friendly order, readable on white and print).
pub const PALETTE: [&str; 8] = [
    "#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
];

/// How a bucket of points becomes one when downsampling.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// Keep the highest value (latencies, errors: a spike must stay visible).
    Max,
    /// Average (throughput, levels).
    Mean,
}

/// One line: `(seconds since run start, value)`; `None` = no data (the line skips it).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, Option<f64>)>,
    pub reduce: Reduce,
}

#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    /// Appended to y tick labels (`ms`, `/s`, `%`, ...).
    pub unit: String,
    pub series: Vec<Series>,
    /// Vertical markers: `(seconds since run start, label)` (phase starts).
    pub markers: Vec<(f64, String)>,
    /// Run length in seconds (the x axis spans `[0, span]`).
    pub span_seconds: f64,
}

impl Chart {
    /// True when no series has a single value to draw.
    pub fn is_empty(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.points.iter().all(|(_, y)| y.is_none()))
    }
}

/// Reduces `points` to at most `max` by grouping consecutive points into equal buckets.
pub fn downsample(points: &[(f64, Option<f64>)], max: usize, reduce: Reduce) -> Vec<(f64, f64)> {
    let present: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|&(x, y)| y.filter(|v| v.is_finite()).map(|v| (x, v)))
        .collect();
    if present.len() <= max || max == 0 {
        return present;
    }
    let bucket = present.len().div_ceil(max);
    present
        .chunks(bucket)
        .filter_map(|chunk| {
            let (x_last, _) = *chunk.last()?;
            let y = match reduce {
                Reduce::Max => chunk.iter().map(|p| p.1).fold(f64::MIN, f64::max),
                Reduce::Mean => chunk.iter().map(|p| p.1).sum::<f64>() / chunk.len() as f64,
            };
            Some((x_last, y))
        })
        .collect()
}

/// A "nice" step (1, 2, 2.5 or 5 × 10^n) giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 2.5 {
        2.5
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Round time steps for the x axis, in seconds.
fn time_step(span: f64) -> f64 {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 8.0)
        .unwrap_or(span / 8.0)
}

/// `0:30`, `12:05`, `1:02:00`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Short number for tick labels: `0`, `2.5`, `1.2k`, `3M`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{scaled:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{suffix}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A series with its palette index and its downsampled points.
type Line<'a> = (usize, &'a Series, Vec<(f64, f64)>);

/// The chart as an `<svg>` element (scales with its container; no script, no external refs).
pub fn render_svg(chart: &Chart) -> String {
    let lines: Vec<Line<'_>> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s, downsample(&s.points, MAX_POINTS, s.reduce)))
        .collect();
    let y_max_data = lines
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let step = nice_step(y_max_data, 4.0);
    let y_max = if y_max_data <= 0.0 {
        1.0
    } else {
        (y_max_data / step).ceil() * step
    };
    let span = chart.span_seconds.max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x / span).clamp(0.0, 1.0) * plot_w;
    let sy = |y: f64| TOP + plot_h - (y / y_max).clamp(0.0, 1.0) * plot_h;

    let mut svg = String::with_capacity(16 * 1024);
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(&chart.title)
    );
    // Horizontal grid and y labels.
    let mut y = 0.0;
    while y <= y_max + step * 0.01 {
        let py = sy(y);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}"/><text class="ylab" x="{:.1}" y="{:.1}">{}{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 3.5,
            short_number(y),
            escape(&chart.unit)
        );
        y += step;
    }
    // X ticks.
    let tstep = time_step(span);
    let mut t = 0.0;
    while t <= span + 0.001 {
        let px = sx(t);
        let _ = write!(
            svg,
            r#"<line class="tick" x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}"/><text class="xlab" x="{px:.1}" y="{:.1}"{}>{}</text>"#,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            HEIGHT - 8.0,
            // The last label would be cut by the edge: right-align it instead.
            if px > WIDTH - RIGHT - 16.0 {
                r#" style="text-anchor:end""#
            } else {
                ""
            },
            clock(t)
        );
        t += tstep;
    }
    // Phase markers, labelled when there is room.
    let mut last_label_x = f64::MIN;
    for (x, label) in &chart.markers {
        let px = sx(*x);
        let _ = write!(
            svg,
            r#"<line class="marker" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}"><title>{}</title></line>"#,
            TOP + plot_h,
            escape(label)
        );
        if px - last_label_x > 70.0 && px < WIDTH - RIGHT - 20.0 {
            let shown: String = label.chars().take(14).collect();
            let _ = write!(
                svg,
                r#"<text class="mlab" x="{:.1}" y="{:.1}">{}</text>"#,
                px + 3.0,
                TOP + 10.0,
                escape(&shown)
            );
            last_label_x = px;
        }
    }
    // Series.
    for (i, series, pts) in &lines {
        let color = PALETTE.get(i % PALETTE.len()).copied().unwrap_or("#2563eb");
        if pts.is_empty() {
            continue;
        }
        svg.push_str(r#"<polyline class="line" fill="none" stroke=""#);
        svg.push_str(color);
        svg.push_str(r#"" points=""#);
        for (x, y) in pts {
            let _ = write!(svg, "{:.1},{:.1} ", sx(*x), sy(*y));
        }
        svg.push_str(r#""><title>"#);
        svg.push_str(&escape(&series.name));
        svg.push_str("</title></polyline>");
        if pts.len() == 1
            && let Some((x, y)) = pts.first()
        {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#,
                sx(*x),
                sy(*y)
            );
        }
    }
    // Legend, top left, above the plot.
    let mut lx = LEFT;
    for (i, series, _) in &lines {
        let color = PALETTE.get(i % PALETTE.len()).copied().unwrap_or("#2563eb");
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="10" width="12" height="4" rx="1" fill="{color}"/><text class="legend" x="{:.1}" y="16">{}</text>"#,
            lx + 16.0,
            escape(&series.name)
        );
        lx += 16.0 + 6.6 * series.name.chars().count() as f64 + 18.0;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_spikes_and_bounds_points() {
        let mut pts: Vec<(f64, Option<f64>)> = (0..3600).map(|i| (i as f64, Some(1.0))).collect();
        if let Some(p) = pts.get_mut(1234) {
            p.1 = Some(500.0);
        }
        let max = downsample(&pts, MAX_POINTS, Reduce::Max);
        assert!(max.len() <= MAX_POINTS);
        assert!(max.iter().any(|p| p.1 == 500.0));
        let mean = downsample(&pts, MAX_POINTS, Reduce::Mean);
        assert!(mean.iter().all(|p| p.1 < 500.0));
        let gaps = downsample(&[(0.0, None), (1.0, Some(2.0))], 10, Reduce::Max);
        assert_eq!(gaps, vec![(1.0, 2.0)]);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(87.0, 4.0), 25.0);
        assert_eq!(nice_step(0.9, 4.0), 0.25);
        assert_eq!(time_step(3600.0), 600.0);
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(65.0), "1:05");
        assert_eq!(short_number(12_500.0), "12.5k");
    }

    #[test]
    fn svg_has_a_line_per_series_and_escapes_names() {
        let chart = Chart {
            title: "a <b>".into(),
            unit: "ms".into(),
            series: vec![Series {
                name: "p95 & co".into(),
                points: vec![(0.0, Some(1.0)), (1.0, Some(3.0))],
                reduce: Reduce::Max,
            }],
            markers: vec![(0.5, "ramp".into())],
            span_seconds: 1.0,
        };
        let svg = render_svg(&chart);
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("p95 &amp; co"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(!svg.contains("http"));
    }
}
