//! Time-series charts as inline SVG, rendered in Rust so the HTML report needs no script and
//! no network: axes with round ticks, one line per series (broken where an interval has no
//! samples), a legend, phase markers.
//! Long series are downsampled to at most [`MAX_POINTS`] per line, keeping spikes (per-bucket
//! maximum) where a spike is the point of the chart.
//!
//! It does not know metric names or the result model: `html.rs` builds the [`Chart`]s. The canvas
//! ([`Frame`]: margins, scales, y grid, lines) and the legend also draw the distribution chart
//! (`spectrum.rs`).

use std::fmt::Write as _;

/// Most points drawn per series; a 1-hour run at 1 s intervals has 3 600.
pub const MAX_POINTS: usize = 600;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;

// Margins around the plot area (room for tick labels and the legend), the same for every chart
// so the time charts and the distribution chart line up on the page.
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

/// One run of points drawn as one connected line.
pub type Segment = Vec<(f64, f64)>;

/// Splits `points` into segments at every point without a value (an interval with no samples:
/// the line must break there, not join its neighbours), reducing long series to about `max`
/// points by grouping consecutive points into equal buckets. A bucket that holds an empty point
/// keeps the values on each side of it as separate points, so a gap survives downsampling.
pub fn segments(points: &[(f64, Option<f64>)], max: usize, reduce: Reduce) -> Vec<Segment> {
    let present = points
        .iter()
        .filter(|(_, y)| y.is_some_and(f64::is_finite))
        .count();
    // Each gap can split one bucket in two: leave room for that, so a line stays within
    // `max` points (unless it is mostly gaps).
    let gaps = points
        .windows(2)
        .filter(|w| w[0].1.is_some() && w[1].1.is_none())
        .count();
    let bucket = if present <= max || max == 0 {
        1
    } else {
        points
            .len()
            .div_ceil(max.saturating_sub(gaps).max(max / 2).max(1))
    };
    let fold = |run: &[(f64, f64)]| -> Option<(f64, f64)> {
        let (x_last, _) = *run.last()?;
        let y = match reduce {
            Reduce::Max => run.iter().map(|p| p.1).fold(f64::MIN, f64::max),
            Reduce::Mean => run.iter().map(|p| p.1).sum::<f64>() / run.len() as f64,
        };
        Some((x_last, y))
    };
    let mut out = Vec::new();
    let mut current: Segment = Vec::new();
    for chunk in points.chunks(bucket.max(1)) {
        let mut run: Vec<(f64, f64)> = Vec::new();
        for &(x, y) in chunk {
            match y.filter(|v| v.is_finite()) {
                Some(v) => run.push((x, v)),
                None => {
                    current.extend(fold(&run));
                    run.clear();
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        current.extend(fold(&run));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// [`segments`] joined: every point drawn, gaps ignored.
#[cfg(test)]
fn downsample(points: &[(f64, Option<f64>)], max: usize, reduce: Reduce) -> Vec<(f64, f64)> {
    segments(points, max, reduce).concat()
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

/// The colour of the `index`th series; past the end of [`PALETTE`] the colours repeat.
fn series_color(index: usize) -> &'static str {
    PALETTE
        .get(index % PALETTE.len())
        .copied()
        .unwrap_or("#2563eb")
}

/// A chart's canvas: its size, the data range of each axis and where a value lands in pixels.
/// The y axis starts at 0 and ends on the first round tick at or above the largest value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
    /// Distance between horizontal grid lines, in data units.
    y_step: f64,
}

impl Frame {
    /// A `width` × `height` canvas for x in `[0, x_max]` and y in `[0, y_max_data]`.
    pub(super) fn new(width: f64, height: f64, x_max: f64, y_max_data: f64) -> Frame {
        let y_step = nice_step(y_max_data, 4.0);
        let y_max = if y_max_data <= 0.0 {
            1.0
        } else {
            (y_max_data / y_step).ceil() * y_step
        };
        Frame {
            width,
            height,
            x_max,
            y_max,
            y_step,
        }
    }

    fn plot_width(&self) -> f64 {
        self.width - LEFT - RIGHT
    }

    fn plot_height(&self) -> f64 {
        self.height - TOP - BOTTOM
    }

    /// The pixel row of the top of the plot area.
    pub(super) fn plot_top(&self) -> f64 {
        TOP
    }

    /// The pixel row of the x axis.
    pub(super) fn plot_bottom(&self) -> f64 {
        TOP + self.plot_height()
    }

    /// The pixel column of `x`, clamped to the plot area.
    pub(super) fn px(&self, x: f64) -> f64 {
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * self.plot_width()
    }

    /// The pixel row of `y`, clamped to the plot area.
    pub(super) fn py(&self, y: f64) -> f64 {
        TOP + self.plot_height() - (y / self.y_max).clamp(0.0, 1.0) * self.plot_height()
    }

    /// The opening `<svg>` tag: scales with its container, `title` read out by screen readers.
    pub(super) fn open_svg(&self, title: &str) -> String {
        let mut svg = String::with_capacity(16 * 1024);
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">"#,
            self.width,
            self.height,
            escape(title)
        );
        svg
    }

    /// Horizontal grid lines at every y tick, each labelled with its value and `unit`.
    pub(super) fn y_grid(&self, svg: &mut String, unit: &str) {
        let mut y = 0.0;
        while y <= self.y_max + self.y_step * 0.01 {
            let py = self.py(y);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}"/><text class="ylab" x="{:.1}" y="{:.1}">{}{}</text>"#,
                self.width - RIGHT,
                LEFT - 6.0,
                py + 3.5,
                short_number(y),
                escape(unit)
            );
            y += self.y_step;
        }
    }

    /// An x axis label centred under pixel column `px`; `at_right_edge` right-aligns it, as a
    /// centred label there would be cut by the edge of the chart.
    pub(super) fn x_label(&self, svg: &mut String, px: f64, label: &str, at_right_edge: bool) {
        let _ = write!(
            svg,
            r#"<text class="xlab" x="{px:.1}" y="{:.1}"{}>{}</text>"#,
            self.height - 8.0,
            if at_right_edge {
                r#" style="text-anchor:end""#
            } else {
                ""
            },
            label
        );
    }

    /// Series number `index` as one `<path>` with a subpath per segment of `(x, y)` data
    /// points (so a gap between segments stays a gap), its name as the tooltip.
    pub(super) fn line<S>(
        &self,
        svg: &mut String,
        class: &str,
        index: usize,
        name: &str,
        segments: impl IntoIterator<Item = S>,
    ) where
        S: IntoIterator<Item = (f64, f64)>,
    {
        let _ = write!(
            svg,
            r#"<path class="{class}" fill="none" stroke="{}" d=""#,
            series_color(index)
        );
        for segment in segments {
            for (k, (x, y)) in segment.into_iter().enumerate() {
                let cmd = if k == 0 { 'M' } else { 'L' };
                let _ = write!(svg, "{cmd}{:.1},{:.1} ", self.px(x), self.py(y));
            }
        }
        let _ = write!(svg, r#""><title>{}</title></path>"#, escape(name));
    }
}

/// The legend, top left above the plot: a colour swatch and the name of each series, in
/// series order (the order that picks their colours).
pub(super) fn legend<'a>(svg: &mut String, names: impl IntoIterator<Item = &'a str>) {
    let mut lx = LEFT;
    for (i, name) in names.into_iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="10" width="12" height="4" rx="1" fill="{}"/><text class="legend" x="{:.1}" y="16">{}</text>"#,
            series_color(i),
            lx + 16.0,
            escape(name)
        );
        // Text width estimated from the character count: the SVG is drawn without a font.
        lx += 16.0 + 6.6 * name.chars().count() as f64 + 18.0;
    }
}

/// A series with its palette index and its downsampled segments.
type Line<'a> = (usize, &'a Series, Vec<Segment>);

/// The chart as an `<svg>` element (scales with its container; no script, no external refs).
pub fn render_svg(chart: &Chart) -> String {
    let lines: Vec<Line<'_>> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s, segments(&s.points, MAX_POINTS, s.reduce)))
        .collect();
    let y_max_data = lines
        .iter()
        .flat_map(|(_, _, segs)| segs.iter().flatten().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let span = chart.span_seconds.max(1.0);
    let frame = Frame::new(WIDTH, HEIGHT, span, y_max_data);
    let plot_bottom = frame.plot_bottom();

    let mut svg = frame.open_svg(&chart.title);
    frame.y_grid(&mut svg, &chart.unit);
    // X ticks.
    let tstep = time_step(span);
    let mut t = 0.0;
    while t <= span + 0.001 {
        let px = frame.px(t);
        let _ = write!(
            svg,
            r#"<line class="tick" x1="{px:.1}" y1="{plot_bottom:.1}" x2="{px:.1}" y2="{:.1}"/>"#,
            plot_bottom + 4.0,
        );
        frame.x_label(&mut svg, px, &clock(t), px > WIDTH - RIGHT - 16.0);
        t += tstep;
    }
    // Phase markers, labelled when there is room.
    let mut last_label_x = f64::MIN;
    for (x, label) in &chart.markers {
        let px = frame.px(*x);
        let _ = write!(
            svg,
            r#"<line class="marker" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{plot_bottom:.1}"><title>{}</title></line>"#,
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
    // Series: one path per series, one subpath per segment (a gap is a missing interval).
    for (i, series, segs) in &lines {
        if segs.is_empty() {
            continue;
        }
        frame.line(
            &mut svg,
            "line",
            *i,
            &series.name,
            segs.iter().map(|seg| seg.iter().copied()),
        );
        // A segment of one point has no length: mark it with a dot.
        for seg in segs.iter().filter(|s| s.len() == 1) {
            if let Some((x, y)) = seg.first() {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                    frame.px(*x),
                    frame.py(*y),
                    series_color(*i)
                );
            }
        }
    }
    legend(
        &mut svg,
        lines.iter().map(|(_, series, _)| series.name.as_str()),
    );
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
    fn an_empty_interval_breaks_the_line() {
        let pts = [
            (1.0, Some(5.0)),
            (2.0, Some(6.0)),
            (3.0, None),
            (4.0, None),
            (5.0, Some(900.0)),
            (6.0, Some(7.0)),
        ];
        let segs = segments(&pts, MAX_POINTS, Reduce::Max);
        assert_eq!(
            segs,
            vec![vec![(1.0, 5.0), (2.0, 6.0)], vec![(5.0, 900.0), (6.0, 7.0)]]
        );
        let chart = Chart {
            title: "stall".into(),
            unit: "ms".into(),
            series: vec![Series {
                name: "p95".into(),
                points: pts.to_vec(),
                reduce: Reduce::Max,
            }],
            markers: Vec::new(),
            span_seconds: 6.0,
        };
        let svg = render_svg(&chart);
        let d = regex::Regex::new(r#"<path class="line"[^>]* d="([^"]+)""#)
            .expect("regex")
            .captures(&svg)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
            .expect("a line");
        assert_eq!(d.matches('M').count(), 2, "two separate segments: {d}");
        assert_eq!(d.matches('L').count(), 2, "{d}");
    }

    #[test]
    fn a_gap_survives_downsampling() {
        // An hour at 1 s with a 6 s stall: buckets of 6 points, the stall straddling two.
        let pts: Vec<(f64, Option<f64>)> = (0..3600)
            .map(|i| (i as f64, (!(1000..1006).contains(&i)).then_some(1.0)))
            .collect();
        let segs = segments(&pts, MAX_POINTS, Reduce::Max);
        assert_eq!(segs.len(), 2, "one gap");
        let first_end = segs[0].last().map_or(f64::NAN, |p| p.0);
        let second_start = segs[1].first().map_or(f64::NAN, |p| p.0);
        assert!((990.0..1000.0).contains(&first_end), "{first_end}");
        assert!((1006.0..1012.0).contains(&second_start), "{second_start}");
        assert!(segs.iter().map(Vec::len).sum::<usize>() <= MAX_POINTS);
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
        assert!(svg.contains("<path"));
        assert!(svg.contains("p95 &amp; co"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(!svg.contains("http"));
    }
}
