//! One plotting implementation for every chart thecal draws: the simulator's reports
//! (`reservoir.svg`, `dose.svg`, … of [`crate::report`], the trumpet curve, the population
//! report) and the clinic console's plots of a patient's daily dose and reservoir. The
//! same fonts, sizes, colours, legend strip, grid and line thinning everywhere.
//!
//! [`line_chart`] draws quantities against a numeric x axis with both axes labelled in
//! units; [`line_chart_svg`] returns it as an SVG string (to embed in a page) and
//! [`line_chart_file`] writes it to a file. Values that are not finite are gaps, never
//! drawn. Nothing here reads a clock or knows a clinical rule.

use std::error::Error;
use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
pub use plotters::style::RGBColor;

/// At most this many points per line in a plot (min/max decimation beyond).
pub const MAX_PLOT_POINTS: usize = 4000;
/// The font family of every chart.
pub const FONT: &str = "sans-serif";
/// The size of a chart, pixels.
pub const SIZE: (u32, u32) = (1000, 480);

/// The palette: a quantity as measured (blue).
pub const C_TRUE: RGBColor = RGBColor(31, 119, 180);
/// An estimate or expectation (orange).
pub const C_EXPECTED: RGBColor = RGBColor(255, 127, 14);
/// What was prescribed (grey).
pub const C_PRESCRIBED: RGBColor = RGBColor(90, 90, 90);
/// What reached the catheter tip (green).
pub const C_TIP: RGBColor = RGBColor(44, 160, 44);
/// Muted text and marks (grey).
pub const C_OTHER: RGBColor = RGBColor(120, 120, 120);

/// A drawing, or why it failed.
pub type PlotResult = Result<(), Box<dyn Error>>;

/// Draws the axes, labels and grid of a chart.
macro_rules! mesh {
    ($chart:expr, $x:expr, $y:expr) => {
        $chart
            .configure_mesh()
            .x_desc($x)
            .y_desc($y)
            .axis_desc_style(($crate::plot::FONT, 16))
            .label_style(($crate::plot::FONT, 14))
            .light_line_style(BLACK.mix(0.05))
            .draw()?
    };
}
pub(crate) use mesh;

/// Draws a line that may contain NaN (split into pieces at the gaps).
macro_rules! draw_line {
    ($chart:expr, $points:expr, $color:expr) => {{
        let style = $color.stroke_width(2);
        $chart.draw_series(
            $crate::plot::segments($points)
                .into_iter()
                .map(move |seg| PathElement::new(seg, style)),
        )?;
    }};
}

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    /// A line.
    Line,
    /// A filled box.
    Box,
    /// A filled dot.
    Dot,
    /// A ring.
    Ring,
    /// A vertical tick.
    Tick,
}

/// A drawing area of the SVG backend.
pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws a title and, under it, a one-line legend; returns the area left for the chart.
/// Legends outside the plot area never hide data.
pub fn header<'a>(
    area: &Area<'a>,
    title: &str,
    entries: &[(&str, RGBColor, Mark)],
) -> Result<Area<'a>, Box<dyn std::error::Error>> {
    let body = area.titled(title, (FONT, 22))?;
    if entries.is_empty() {
        return Ok(body);
    }
    let (strip, rest) = body.split_vertically(30);
    let font: TextStyle = (FONT, 15).into();
    let mut x = 80i32;
    let y = 12i32;
    for (label, c, mark) in entries {
        match mark {
            Mark::Line => strip.draw(&PathElement::new(
                vec![(x, y), (x + 26, y)],
                c.stroke_width(3),
            ))?,
            Mark::Box => strip.draw(&Rectangle::new(
                [(x + 5, y - 7), (x + 21, y + 7)],
                c.filled(),
            ))?,
            Mark::Dot => strip.draw(&Circle::new((x + 13, y), 6, c.filled()))?,
            Mark::Ring => strip.draw(&Circle::new((x + 13, y), 6, c.stroke_width(2)))?,
            Mark::Tick => strip.draw(&PathElement::new(
                vec![(x + 13, y - 10), (x + 13, y + 10)],
                c.stroke_width(2),
            ))?,
        }
        let (w, _) = strip.estimate_text_size(label, &font)?;
        strip.draw(&Text::new(label.to_string(), (x + 32, y - 5), font.clone()))?;
        x += 32 + w as i32 + 28;
    }
    Ok(rest)
}
pub(crate) use draw_line;

/// A y range covering the finite values (and zero), with a little head room.
pub fn y_range(values: impl IntoIterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    (if lo < 0.0 { lo - pad } else { lo })..hi + pad
}

/// Splits a line at non-finite points, then thins each piece to at most
/// [`MAX_PLOT_POINTS`] keeping the minimum and maximum of each bucket.
pub fn segments(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if x.is_finite() && y.is_finite() {
            cur.push((x, y));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter().map(decimate).collect()
}

fn decimate(seg: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if seg.len() <= MAX_PLOT_POINTS {
        return seg;
    }
    let buckets = MAX_PLOT_POINTS / 2;
    let per = seg.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(MAX_PLOT_POINTS + 2);
    for chunk in seg.chunks(per) {
        let mut lo = 0;
        let mut hi = 0;
        for (i, p) in chunk.iter().enumerate() {
            if p.1 < chunk[lo].1 {
                lo = i;
            }
            if p.1 > chunk[hi].1 {
                hi = i;
            }
        }
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(chunk[a]);
        if b != a {
            out.push(chunk[b]);
        }
    }
    out
}

/// One line of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Colour.
    pub colour: RGBColor,
    /// (x, y) points; a point that is not finite breaks the line.
    pub points: Vec<(f64, f64)>,
}

/// Quantities against a numeric x axis: a title, a legend strip above the chart and
/// axes labelled in units.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    /// Title.
    pub title: &'a str,
    /// The x axis's description with its unit, e.g. `time (days)`.
    pub x_desc: &'a str,
    /// The y axis's description with its unit, e.g. `reservoir (mL)`.
    pub y_desc: &'a str,
    /// The x range shown.
    pub x_range: Range<f64>,
    /// Width of the y labels' area, pixels.
    pub y_label_area: u32,
    /// The lines, drawn in this order (the last on top).
    pub lines: Vec<Line<'a>>,
    /// The legend lists the lines in this order (indices into `lines`).
    pub legend_order: Vec<usize>,
    /// Shown in the middle of a chart without points.
    pub empty_note: &'a str,
}

/// Draws a line chart on an area; the y range covers every value (and zero).
///
/// # Errors
/// The backend's.
pub fn line_chart(root: &Area<'_>, c: &LineChart<'_>) -> PlotResult {
    root.fill(&WHITE)?;
    let legend: Vec<(&str, RGBColor, Mark)> = c
        .legend_order
        .iter()
        .filter_map(|i| c.lines.get(*i))
        .map(|l| (l.label, l.colour, Mark::Line))
        .collect();
    let area = header(root, c.title, &legend)?;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(c.y_label_area)
        .build_cartesian_2d(
            c.x_range.clone(),
            y_range(c.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1))),
        )?;
    mesh!(chart, c.x_desc, c.y_desc);
    for l in &c.lines {
        draw_line!(chart, l.points.iter().copied(), l.colour);
    }
    empty_note(
        root,
        c.lines.iter().all(|l| l.points.is_empty()),
        c.empty_note,
    )?;
    root.present()?;
    Ok(())
}

/// Writes a line chart of `size` pixels to an SVG file.
///
/// # Errors
/// The backend's (the file could not be written).
pub fn line_chart_file(path: &Path, size: (u32, u32), c: &LineChart<'_>) -> PlotResult {
    let root = SVGBackend::new(path, size).into_drawing_area();
    line_chart(&root, c)
}

/// A line chart of `size` pixels as an SVG document.
///
/// # Errors
/// The backend's.
pub fn line_chart_svg(size: (u32, u32), c: &LineChart<'_>) -> Result<String, Box<dyn Error>> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        line_chart(&root, c)?;
    }
    Ok(out)
}

/// Writes `note` in the middle of an empty chart.
///
/// # Errors
/// The backend's.
pub fn empty_note(root: &Area<'_>, empty: bool, note: &str) -> PlotResult {
    if empty {
        let (w, h) = root.dim_in_pixel();
        root.draw(&Text::new(
            note.to_owned(),
            (w as i32 / 2 - 50, h as i32 / 2),
            (FONT, 20).into_font().color(&C_OTHER),
        ))?;
    }
    Ok(())
}
