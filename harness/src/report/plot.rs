//! A small SVG line-chart renderer: one figure of stacked panels sharing a time axis, lines with
//! gaps where a value is missing (an idle hop's NULL lag is not a zero lag), shaded fault
//! windows and labelled vertical marks. No script, no external resources, and every number is
//! printed with a fixed number of decimals so the same data gives the same bytes everywhere.

use std::fmt::Write;

use super::text::xml;

/// What a panel's values measure; decides the tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Seconds ("2.5s").
    Seconds,
    /// Bytes, ticked in the binary unit that fits the largest value ("64 MiB").
    Bytes,
}

/// One chart: a title, panels stacked top to bottom over the same x axis (seconds), and the
/// fault windows and marks drawn across every panel.
#[derive(Debug, Clone)]
pub(super) struct Figure {
    /// Prefix of the ids inside the SVG, unique per figure so several can share an HTML page.
    pub id: &'static str,
    /// Shown on top.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Top to bottom.
    pub panels: Vec<Panel>,
    /// Shaded time ranges (fault windows).
    pub windows: Vec<Window>,
    /// Vertical lines at a moment (one-shot faults, slot status changes).
    pub marks: Vec<Mark>,
}

/// One y axis and its lines.
#[derive(Debug, Clone)]
pub(super) struct Panel {
    /// Shown above the panel.
    pub title: Option<String>,
    /// What the values measure.
    pub unit: Unit,
    /// Drawn in order.
    pub lines: Vec<Line>,
}

/// A series: (x, y) points in x order; a None y is a gap.
#[derive(Debug, Clone)]
pub(super) struct Line {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub colour: &'static str,
    /// Drawn dashed (derived quantities, to tell them apart from the measured ones).
    pub dashed: bool,
    /// x in seconds, y in the panel's unit (seconds or bytes).
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded time range; `to: None` runs to the right edge (never healed).
#[derive(Debug, Clone)]
pub(super) struct Window {
    /// Start, seconds.
    pub from: f64,
    /// End, seconds.
    pub to: Option<f64>,
    /// Written at the top of the window.
    pub label: String,
}

/// A vertical line at one moment.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    /// When, seconds.
    pub at: f64,
    /// Written beside the line.
    pub label: String,
    /// CSS colour.
    pub colour: &'static str,
}

/// Axis ticks: `count + 1` evenly spaced values from `lo` to `hi`, `step` apart, each a round
/// number (1, 2 or 5 times a power of ten), printed with `decimals` decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Ticks {
    /// First tick (at or below the data).
    pub lo: f64,
    /// Last tick (at or above the data).
    pub hi: f64,
    /// Distance between ticks.
    pub step: f64,
    /// Decimals that print every tick exactly.
    pub decimals: usize,
    count: i64,
    first: i64,
}

impl Ticks {
    /// The tick values, computed from integer multiples of the step so they do not drift.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        (0..=self.count).map(move |i| (self.first + i) as f64 * self.step)
    }

    /// A tick value as text with `suffix`.
    pub fn label(&self, v: f64, suffix: &str) -> String {
        format!("{}{suffix}", fixed(v, self.decimals))
    }
}

/// Round ticks covering `lo..=hi` with about `target` intervals (Heckbert's nice numbers). An
/// empty or invalid range becomes `lo..lo + 1`.
pub(super) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let rough = (hi - lo) / target.max(1) as f64;
    let mut exp = rough.log10().floor() as i32;
    let norm = rough / 10f64.powi(exp);
    // A small tolerance: 0.3 / 10^-1 is 2.9999999999999996, and that is a 5-step, not a 10.
    let nice = if norm <= 1.0 + 1e-9 {
        1.0
    } else if norm <= 2.0 + 1e-9 {
        2.0
    } else if norm <= 5.0 + 1e-9 {
        5.0
    } else {
        exp += 1;
        1.0
    };
    let step = nice * 10f64.powi(exp);
    let first = (lo / step + 1e-9).floor() as i64;
    let count = ((hi / step - 1e-9).ceil() as i64 - first).max(1);
    Ticks {
        lo: first as f64 * step,
        hi: (first + count) as f64 * step,
        step,
        decimals: usize::try_from(-exp).unwrap_or(0),
        count,
        first,
    }
}

/// `v` with `decimals` decimals, never "-0".
pub(super) fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// A coordinate: one decimal is finer than a pixel.
fn c(v: f64) -> String {
    fixed(v, 1)
}

/// The runs of consecutive present values, in order: each run is drawn as one polyline, and
/// the missing values between runs stay gaps.
pub(super) fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for &(x, y) in points {
        match y.filter(|y| y.is_finite()) {
            Some(y) if x.is_finite() => run.push((x, y)),
            _ => {
                if !run.is_empty() {
                    out.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

const BINARY: [(f64, &str); 5] = [
    (1.0, "B"),
    (1024.0, "KiB"),
    (1_048_576.0, "MiB"),
    (1_073_741_824.0, "GiB"),
    (1_099_511_627_776.0, "TiB"),
];

/// The binary unit whose ticks read best for values up to `max` bytes.
pub(super) fn byte_unit(max: f64) -> (f64, &'static str) {
    BINARY
        .iter()
        .rev()
        .find(|(size, _)| max >= *size)
        .copied()
        .unwrap_or(BINARY[0])
}

const WIDTH: f64 = 760.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const PLOT_HEIGHT: f64 = 170.0;
const WINDOW_FILL: &str = "#d62728";
const LABEL_ROWS: usize = 6;

impl Figure {
    /// The x range: every point, window and mark, and the workload's start.
    fn x_domain(&self) -> (f64, f64) {
        let mut lo = 0.0f64;
        let mut hi = 0.0f64;
        let mut see = |x: f64| {
            if x.is_finite() {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        };
        for l in self.panels.iter().flat_map(|p| &p.lines) {
            for (x, _) in &l.points {
                see(*x);
            }
        }
        for w in &self.windows {
            see(w.from);
            if let Some(t) = w.to {
                see(t);
            }
        }
        for m in &self.marks {
            see(m.at);
        }
        (lo, hi)
    }

    /// The figure as a standalone SVG document.
    pub fn render(&self) -> String {
        let (x0, x1) = self.x_domain();
        let xt = nice_ticks(x0, x1, 8);
        let right = WIDTH - RIGHT;
        let sx = |x: f64| LEFT + (x - xt.lo) / (xt.hi - xt.lo) * (right - LEFT);
        let mut legend = String::new();
        let legend_bottom = self.legend(&mut legend);
        let mut body = String::new();
        let mut top = legend_bottom + 14.0;
        for (i, p) in self.panels.iter().enumerate() {
            top = self.panel(&mut body, p, i == 0, top, &xt, &sx);
        }
        let height = top + 26.0;
        let _ = writeln!(
            body,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            c((LEFT + right) / 2.0),
            c(top + 12.0),
            xml(&self.x_label)
        );
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-labelledby=\"{id}-title\">",
            w = c(WIDTH),
            h = c(height),
            id = self.id
        );
        let _ = writeln!(
            out,
            "<title id=\"{}-title\">{}</title>",
            self.id,
            xml(&self.title)
        );
        let _ = writeln!(
            out,
            "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
            c(WIDTH),
            c(height)
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>",
            c(LEFT),
            xml(&self.title)
        );
        out.push_str(&legend);
        out.push_str(&body);
        out.push_str("</svg>\n");
        out
    }

    /// One entry per distinct line name, then the fault window swatch if there are windows;
    /// entries wrap onto more rows rather than run off the figure. Returns the baseline of the
    /// last row.
    fn legend(&self, out: &mut String) -> f64 {
        let right = WIDTH - RIGHT;
        let mut x = LEFT;
        let mut y = 40.0;
        let place = |x: &mut f64, y: &mut f64, label: &str| {
            let w = 23.0 + text_width(label);
            if *x > LEFT && *x + w > right {
                *x = LEFT;
                *y += 16.0;
            }
            let at = *x;
            *x += w + 16.0;
            at
        };
        let mut seen: Vec<&str> = Vec::new();
        for l in self.panels.iter().flat_map(|p| &p.lines) {
            if seen.contains(&l.name.as_str()) {
                continue;
            }
            seen.push(&l.name);
            let at = place(&mut x, &mut y, &l.name);
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>",
                c(at),
                c(y - 4.0),
                c(at + 18.0),
                c(y - 4.0),
                l.colour,
                dash(l.dashed)
            );
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\">{}</text>",
                c(at + 23.0),
                c(y),
                xml(&l.name)
            );
        }
        if !self.windows.is_empty() {
            let at = place(&mut x, &mut y, "fault window");
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"{WINDOW_FILL}\" fill-opacity=\"0.15\"/>",
                c(at),
                c(y - 9.0)
            );
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\">fault window</text>",
                c(at + 23.0),
                c(y)
            );
        }
        y
    }

    /// Draw one panel from `top`; returns where the next one starts.
    fn panel(
        &self,
        out: &mut String,
        p: &Panel,
        first: bool,
        top: f64,
        xt: &Ticks,
        sx: &dyn Fn(f64) -> f64,
    ) -> f64 {
        let right = WIDTH - RIGHT;
        let mut pt = top;
        if let Some(t) = &p.title {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" font-weight=\"bold\" fill=\"#333\">{}</text>",
                c(LEFT),
                c(top + 10.0),
                xml(t)
            );
            pt += 16.0;
        }
        let pb = pt + PLOT_HEIGHT;
        let (lo, hi, scale, suffix) = y_range(p);
        let yt = nice_ticks(lo / scale, hi / scale, 5);
        let sy = |v: f64| pb - (v / scale - yt.lo) / (yt.hi - yt.lo) * (pb - pt);
        let _ = writeln!(out, "<g>");
        // Grid and ticks.
        for v in yt.values() {
            let y = sy(v * scale);
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#e5e5e5\"/>",
                c(LEFT),
                c(right),
                y = c(y)
            );
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
                c(LEFT - 6.0),
                c(y + 4.0),
                xml(&yt.label(v, suffix))
            );
        }
        for v in xt.values() {
            let x = sx(v);
            let _ = writeln!(
                out,
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#e5e5e5\"/>",
                c(pt),
                c(pb),
                x = c(x)
            );
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
                c(x),
                c(pb + 14.0),
                xt.label(v, "s")
            );
        }
        // Fault windows and marks, under the lines.
        for w in &self.windows {
            let from = sx(w.from);
            let to = w.to.map_or(right, sx);
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{WINDOW_FILL}\" fill-opacity=\"0.12\"/>",
                c(from),
                c(pt),
                c((to - from).max(1.0)),
                c(PLOT_HEIGHT)
            );
        }
        for m in &self.marks {
            let x = c(sx(m.at));
            let _ = writeln!(
                out,
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>",
                c(pt),
                c(pb),
                m.colour
            );
        }
        let mut drawn = false;
        for l in &p.lines {
            for seg in segments(&l.points) {
                drawn = true;
                if let [(x, y)] = seg[..] {
                    let _ = writeln!(
                        out,
                        "<circle cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{}\"/>",
                        c(sx(x)),
                        c(sy(y)),
                        l.colour
                    );
                    continue;
                }
                let pts: Vec<String> = seg
                    .iter()
                    .map(|&(x, y)| format!("{},{}", c(sx(x)), c(sy(y))))
                    .collect();
                let _ = writeln!(
                    out,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{} points=\"{}\"/>",
                    l.colour,
                    dash(l.dashed),
                    pts.join(" ")
                );
            }
        }
        if !drawn {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no samples</text>",
                c((LEFT + right) / 2.0),
                c((pt + pb) / 2.0)
            );
        }
        // Labels last, over everything, in the first panel only.
        if first {
            let labels = self
                .windows
                .iter()
                .map(|w| (sx(w.from), w.label.as_str(), "#8b1a1a"))
                .chain(
                    self.marks
                        .iter()
                        .map(|m| (sx(m.at), m.label.as_str(), m.colour)),
                );
            for l in place_labels(labels.collect(), LEFT, right) {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"10\" fill=\"{}\" \
                     stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
                    c(l.x),
                    c(pt + 12.0 + 12.0 * l.row as f64),
                    l.anchor,
                    l.colour,
                    xml(l.text)
                );
            }
        }
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
            c(LEFT),
            c(pt),
            c(right - LEFT),
            c(PLOT_HEIGHT)
        );
        out.push_str("</g>\n");
        pb + 30.0
    }
}

/// A label placed at the top of a plot: where, which way it runs, and on which row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PlacedLabel<'a> {
    /// Anchor x.
    pub x: f64,
    /// "start" (runs right of x) or "end" (runs left of it, near the right edge).
    pub anchor: &'static str,
    /// Row from the top, 0-based.
    pub row: usize,
    /// Colour.
    pub colour: &'static str,
    /// Text.
    pub text: &'a str,
}

/// Put each label (x of its line, text, colour) beside its line, on the first row from the top
/// where it does not overlap a label already placed; labels that would run off the right
/// edge run leftwards instead. After [`LABEL_ROWS`] rows the least crowded row is reused.
pub(super) fn place_labels<'a>(
    mut labels: Vec<(f64, &'a str, &'static str)>,
    left: f64,
    right: f64,
) -> Vec<PlacedLabel<'a>> {
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rows: Vec<f64> = Vec::new();
    let mut out = Vec::new();
    for (x, text, colour) in labels {
        let w = text_width(text) * 10.0 / 11.0;
        let (x, anchor, from) = if x + 3.0 + w > right {
            (x - 3.0, "end", (x - 3.0 - w).max(left))
        } else {
            (x + 3.0, "start", x + 3.0)
        };
        let row = match rows.iter().position(|end| *end + 6.0 <= from) {
            Some(r) => r,
            None if rows.len() < LABEL_ROWS => {
                rows.push(f64::NEG_INFINITY);
                rows.len() - 1
            }
            None => rows
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i),
        };
        rows[row] = rows[row].max(from + w);
        out.push(PlacedLabel {
            x,
            anchor,
            row,
            colour,
            text,
        });
    }
    out
}

/// The y range of a panel (0 always included: lags and sizes start at nothing), the factor
/// values are divided by for the ticks, and the tick suffix.
fn y_range(p: &Panel) -> (f64, f64, f64, &'static str) {
    let values = p
        .lines
        .iter()
        .flat_map(|l| &l.points)
        .filter_map(|(_, y)| *y)
        .filter(|y| y.is_finite());
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    match p.unit {
        Unit::Seconds => (lo, hi, 1.0, "s"),
        Unit::Bytes => {
            let (size, name) = byte_unit(hi.max(-lo));
            // Whole bytes: ticks of a fifth of a byte mean nothing.
            let hi = if size == 1.0 { hi.max(5.0) } else { hi };
            let suffix = match name {
                "B" => " B",
                "KiB" => " KiB",
                "MiB" => " MiB",
                "GiB" => " GiB",
                _ => " TiB",
            };
            (lo, hi, size, suffix)
        }
    }
}

fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"6 3\""
    } else {
        ""
    }
}

/// Rough width of `s` at the 11px font: enough to lay out the legend and keep labels inside.
fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * 6.2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(lo: f64, hi: f64, n: usize) -> Vec<String> {
        let t = nice_ticks(lo, hi, n);
        t.values().map(|v| t.label(v, "")).collect()
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(ticks(0.0, 7.3, 5), ["0", "2", "4", "6", "8"]);
        assert_eq!(ticks(0.0, 43.2, 6), ["0", "10", "20", "30", "40", "50"]);
        assert_eq!(ticks(0.0, 0.52, 5), ["0.0", "0.2", "0.4", "0.6"]);
        assert_eq!(ticks(0.0, 0.3, 3), ["0.0", "0.1", "0.2", "0.3"]);
        assert_eq!(
            ticks(-2.5, 30.0, 8),
            ["-5", "0", "5", "10", "15", "20", "25", "30"]
        );
        assert_eq!(ticks(0.0, 120.0, 5), ["0", "50", "100", "150"]);
        assert_eq!(
            ticks(0.0, 0.004, 4),
            ["0.000", "0.001", "0.002", "0.003", "0.004"]
        );
        let t = nice_ticks(0.0, 7.3, 5);
        assert_eq!((t.lo, t.hi, t.step, t.decimals), (0.0, 8.0, 2.0, 0));
    }

    #[test]
    fn degenerate_ranges_still_have_ticks() {
        assert_eq!(
            ticks(0.0, 0.0, 5),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(ticks(3.0, 3.0, 2), ["3.0", "3.5", "4.0"]);
        assert_eq!(ticks(f64::NAN, 1.0, 1), ["0", "1"]);
    }

    #[test]
    fn fixed_never_prints_negative_zero() {
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(-0.0, 0), "0");
        assert_eq!(fixed(-0.06, 1), "-0.1");
        assert_eq!(fixed(2.0, 1), "2.0");
    }

    #[test]
    fn byte_units_follow_the_largest_value() {
        assert_eq!(byte_unit(0.0), (1.0, "B"));
        assert_eq!(byte_unit(1023.0), (1.0, "B"));
        assert_eq!(byte_unit(1024.0), (1024.0, "KiB"));
        assert_eq!(byte_unit(200.0 * 1_048_576.0).1, "MiB");
    }

    #[test]
    fn missing_values_are_gaps_not_zeros() {
        let pts = [
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(f64::NAN)),
            (4.0, Some(0.0)),
            (5.0, None),
            (6.0, Some(3.0)),
            (7.0, Some(4.0)),
        ];
        assert_eq!(
            segments(&pts),
            vec![
                vec![(0.0, 1.0), (1.0, 2.0)],
                vec![(4.0, 0.0)],
                vec![(6.0, 3.0), (7.0, 4.0)],
            ]
        );
        assert!(segments(&[(0.0, None)]).is_empty());
    }

    fn figure(points: Vec<(f64, Option<f64>)>) -> Figure {
        Figure {
            id: "t",
            title: "lag <a & b>".into(),
            x_label: "seconds".into(),
            panels: vec![Panel {
                title: None,
                unit: Unit::Seconds,
                lines: vec![Line {
                    name: "a → b".into(),
                    colour: "#1f77b4",
                    dashed: false,
                    points,
                }],
            }],
            windows: vec![Window {
                from: 1.0,
                to: None,
                label: "partition \"a-b\"".into(),
            }],
            marks: vec![],
        }
    }

    #[test]
    fn gaps_split_the_polyline_and_lone_points_are_dots() {
        let svg = figure(vec![
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(1.0)),
            (4.0, None),
        ])
        .render();
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        // Text is escaped; nothing of the labels leaks as markup.
        assert!(svg.contains("lag &lt;a &amp; b&gt;"));
        assert!(svg.contains("partition &quot;a-b&quot;"));
        // The unhealed window runs to the right edge of the plot.
        assert!(svg.contains("fill-opacity=\"0.12\""));
    }

    #[test]
    fn a_panel_without_values_says_so() {
        let svg = figure(vec![(0.0, None), (1.0, None)]).render();
        assert!(svg.contains(">no samples<"));
        assert!(!svg.contains("<polyline"));
    }

    #[test]
    fn labels_take_the_first_free_row() {
        let placed = place_labels(
            vec![
                (400.0, "slot lost at t=41.0s", "#000"),
                (100.0, "consumer stopped", "#000"),
                (390.0, "checkpoint on a", "#000"),
                (300.0, "slot extended at t=30.0s", "#000"),
                (740.0, "late", "#000"),
            ],
            72.0,
            736.0,
        );
        let rows: Vec<(&str, usize, &str)> =
            placed.iter().map(|l| (l.text, l.row, l.anchor)).collect();
        assert_eq!(
            rows,
            [
                ("consumer stopped", 0, "start"),
                ("slot extended at t=30.0s", 0, "start"),
                ("checkpoint on a", 1, "start"),
                ("slot lost at t=41.0s", 2, "start"),
                // Near the right edge a label runs leftwards, clear of the others.
                ("late", 0, "end"),
            ]
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let f = figure(vec![(0.0, Some(0.1)), (0.5, Some(0.3)), (1.0, Some(0.7))]);
        assert_eq!(f.render(), f.clone().render());
        assert!(!f.render().contains("-0.0"));
    }
}
