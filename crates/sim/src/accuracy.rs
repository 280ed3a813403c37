//! Flow accuracy by the IEC 60601-2-24 trumpet-curve method (SIM-031).
//!
//! Delivered volume is sampled every 0.5 min for 120 min. From the start of the second
//! hour, for observation windows of 2, 5, 11, 19 and 31 min, the flow over every window
//! of that length (sliding by one sampling interval) is compared with the set rate; the
//! largest and smallest percentage deviations make the trumpet curve (window length on
//! the x axis, not elapsed time). The overall mean error `A` is the deviation of the
//! mean flow over the whole second hour.
//!
//! IEC 60601-2-24 excludes implants (ISO 14708-4 is the implant standard), but its
//! method is the accepted way to show flow accuracy.

use std::io;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::plot::{FONT, Mark, header};

/// The observation windows of IEC 60601-2-24, minutes.
pub const WINDOWS_MIN: [f64; 5] = [2.0, 5.0, 11.0, 19.0, 31.0];
/// The standard's sampling interval, minutes.
pub const SAMPLE_INTERVAL_MIN: f64 = 0.5;
/// Start of the analysis period (the second hour), minutes.
const ANALYSIS_START_MIN: f64 = 60.0;
/// End of the analysis period, minutes.
const ANALYSIS_END_MIN: f64 = 120.0;

/// One point of the trumpet curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrumpetPoint {
    /// Observation window length, minutes.
    pub window_min: f64,
    /// Largest deviation from the set rate over all windows of this length, %.
    pub max_pct: f64,
    /// Smallest (most negative) deviation from the set rate over all windows of this
    /// length, %.
    pub min_pct: f64,
}

/// A trumpet curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trumpet {
    /// One point per observation window that fits in the data, shortest first.
    pub windows: Vec<TrumpetPoint>,
    /// Overall mean flow error over the second hour (`A`), % (NaN if the data does not
    /// reach into the second hour or the set rate is not positive).
    pub mean_error_pct: f64,
}

/// Computes the trumpet curve.
///
/// `delivered_ml[i]` is the cumulative volume delivered at `i × interval_min` minutes
/// (so `delivered_ml[0]`, normally 0, is at the start); 241 samples cover 120 min at
/// 0.5 min. The analysis runs from 60 min to 120 min (or the last sample, if earlier).
/// Window lengths are rounded to whole sampling intervals; windows longer than the
/// analysis period are left out. A non-positive or non-finite set rate or interval
/// gives an empty curve with a NaN mean error.
pub fn trumpet(delivered_ml: &[f64], interval_min: f64, set_rate_ml_per_h: f64) -> Trumpet {
    let empty = Trumpet {
        windows: Vec::new(),
        mean_error_pct: f64::NAN,
    };
    if !(interval_min.is_finite()
        && interval_min > 0.0
        && set_rate_ml_per_h.is_finite()
        && set_rate_ml_per_h > 0.0)
        || delivered_ml.is_empty()
    {
        return empty;
    }
    let start = (ANALYSIS_START_MIN / interval_min).round() as usize;
    let end = ((ANALYSIS_END_MIN / interval_min).round() as usize).min(delivered_ml.len() - 1);
    if end <= start {
        return empty;
    }
    // Percentage deviation of the mean flow between samples a and b from the set rate.
    let deviation = |a: usize, b: usize| {
        let flow_ml_per_h =
            (delivered_ml[b] - delivered_ml[a]) / ((b - a) as f64 * interval_min) * 60.0;
        100.0 * (flow_ml_per_h - set_rate_ml_per_h) / set_rate_ml_per_h
    };
    let windows = WINDOWS_MIN
        .iter()
        .filter_map(|&window_min| {
            let k = ((window_min / interval_min).round() as usize).max(1);
            if start + k > end {
                return None;
            }
            let (mut max_pct, mut min_pct) = (f64::NEG_INFINITY, f64::INFINITY);
            for j in start..=end - k {
                let d = deviation(j, j + k);
                max_pct = max_pct.max(d);
                min_pct = min_pct.min(d);
            }
            Some(TrumpetPoint {
                window_min,
                max_pct,
                min_pct,
            })
        })
        .collect();
    Trumpet {
        windows,
        mean_error_pct: deviation(start, end),
    }
}

/// Draws the trumpet curve into an SVG at `path`: window length (min) on x, maximum and
/// minimum % deviation on y, the mean error `A` as a horizontal line.
pub fn plot(t: &Trumpet, title: &str, path: &Path) -> io::Result<()> {
    draw(t, title, path).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

const C_MAX: RGBColor = RGBColor(214, 39, 40);
const C_MIN: RGBColor = RGBColor(31, 119, 180);
const C_MEAN: RGBColor = RGBColor(44, 160, 44);

fn draw(t: &Trumpet, title: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mean_label = if t.mean_error_pct.is_finite() {
        format!("mean error A = {:+.2} %", t.mean_error_pct)
    } else {
        "mean error A: n/a".to_string()
    };
    let area = header(
        &root,
        title,
        &[
            ("maximum deviation", C_MAX, Mark::Line),
            ("minimum deviation", C_MIN, Mark::Line),
            (&mean_label, C_MEAN, Mark::Line),
        ],
    )?;
    let extent = t
        .windows
        .iter()
        .flat_map(|p| [p.max_pct, p.min_pct])
        .chain([t.mean_error_pct])
        .filter(|v| v.is_finite())
        .fold(1.0f64, |a, v| a.max(v.abs()));
    let y = extent * 1.15;
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..35.0, -y..y)?;
    chart
        .configure_mesh()
        .x_desc("observation window (min)")
        .y_desc("deviation from set rate (%)")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (35.0, 0.0)],
        BLACK.stroke_width(1),
    )))?;
    if t.mean_error_pct.is_finite() {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, t.mean_error_pct), (35.0, t.mean_error_pct)],
            C_MEAN.stroke_width(2),
        )))?;
    }
    for (c, pick) in [
        (
            C_MAX,
            (|p: &TrumpetPoint| p.max_pct) as fn(&TrumpetPoint) -> f64,
        ),
        (C_MIN, |p: &TrumpetPoint| p.min_pct),
    ] {
        let pts: Vec<(f64, f64)> = t
            .windows
            .iter()
            .map(|p| (p.window_min, pick(p)))
            .filter(|p| p.1.is_finite())
            .collect();
        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
        // Values beside the marks: above the maximum, below the minimum.
        let dy = if c == C_MAX { -22 } else { 8 };
        chart.draw_series(pts.iter().map(|&(x, v)| {
            EmptyElement::at((x, v))
                + Text::new(
                    format!("{v:+.1} %"),
                    (6, dy),
                    (FONT, 13).into_font().color(&c),
                )
        }))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 241 cumulative samples, 0.5 min apart, from a volume function of the sample index.
    fn samples(v: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..=240).map(v).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn perfect_pump_is_flat_at_zero_sim_031() {
        // 1 mL/h = 1/120 mL per half minute.
        let t = trumpet(&samples(|i| i as f64 / 120.0), 0.5, 1.0);
        assert_eq!(t.windows.len(), 5);
        for (p, w) in t.windows.iter().zip(WINDOWS_MIN) {
            assert_eq!(p.window_min, w);
            assert!(close(p.max_pct, 0.0) && close(p.min_pct, 0.0), "{p:?}");
        }
        assert!(close(t.mean_error_pct, 0.0));
    }

    #[test]
    fn ten_percent_fast_pump_sim_031() {
        let t = trumpet(&samples(|i| 1.1 * i as f64 / 120.0), 0.5, 1.0);
        for p in &t.windows {
            assert!(close(p.max_pct, 10.0) && close(p.min_pct, 10.0), "{p:?}");
        }
        assert!(close(t.mean_error_pct, 10.0));
        // And 20 % slow at another rate.
        let t = trumpet(&samples(|i| 0.8 * 0.25 * i as f64 / 120.0), 0.5, 0.25);
        assert!(
            t.windows
                .iter()
                .all(|p| close(p.max_pct, -20.0) && close(p.min_pct, -20.0))
        );
        assert!(close(t.mean_error_pct, -20.0));
    }

    #[test]
    fn pulsed_delivery_spreads_short_windows_sim_031() {
        // Set rate 1 mL/h, delivered as 0.05 mL pulses every 3 min, each at 0.25 min past
        // a multiple of 3 (between two samples). Sample i (at i/2 min) has seen the pulses
        // at half-minute indices 1, 7, 13, …: ⌈i / 6⌉ of them.
        let v = samples(|i| 0.05 * i.div_ceil(6) as f64);
        let t = trumpet(&v, 0.5, 1.0);
        // A window of P min holds n or n + 1 pulses; flow = pulses × 0.05 mL × 60 / P.
        // 2 min: 0 or 1 pulse  → 0 or 1.5 mL/h       → −100 % / +50 %
        // 5 min: 1 or 2        → 0.6 or 1.2 mL/h     → −40 % / +20 %
        // 11 min: 3 or 4       → 9/11 or 12/11 mL/h  → −18.18 % / +9.09 %
        // 19 min: 6 or 7       → 18/19 or 21/19      → −5.26 % / +10.53 %
        // 31 min: 10 or 11     → 30/31 or 33/31      → −3.23 % / +6.45 %
        let expected = [
            (2.0, 50.0, -100.0),
            (5.0, 20.0, -40.0),
            (11.0, 100.0 / 11.0, -200.0 / 11.0),
            (19.0, 200.0 / 19.0, -100.0 / 19.0),
            (31.0, 200.0 / 31.0, -100.0 / 31.0),
        ];
        assert_eq!(t.windows.len(), expected.len());
        for (p, (w, max, min)) in t.windows.iter().zip(expected) {
            assert_eq!(p.window_min, w);
            assert!(close(p.max_pct, max), "{p:?} max {max}");
            assert!(close(p.min_pct, min), "{p:?} min {min}");
        }
        // 20 pulses (at 60.25 … 117.25 min) in the second hour: exactly 1 mL.
        assert!(close(t.mean_error_pct, 0.0));
        // The trumpet narrows with the window.
        for w in t.windows.windows(2) {
            assert!(w[1].max_pct - w[1].min_pct < w[0].max_pct - w[0].min_pct);
        }
    }

    #[test]
    fn only_the_second_hour_counts_sim_031() {
        // Nothing in the first hour, then exactly the set rate.
        let v = samples(|i| {
            if i <= 120 {
                0.0
            } else {
                (i - 120) as f64 / 120.0
            }
        });
        let t = trumpet(&v, 0.5, 1.0);
        assert!(
            t.windows
                .iter()
                .all(|p| close(p.max_pct, 0.0) && close(p.min_pct, 0.0))
        );
        assert!(close(t.mean_error_pct, 0.0));
        // Stops for the last 10 min: 50 min of 60 delivered; short windows see −100 %.
        let v = samples(|i| i.min(220) as f64 / 120.0);
        let t = trumpet(&v, 0.5, 1.0);
        assert!(close(t.mean_error_pct, -100.0 / 6.0));
        assert!(close(t.windows[0].min_pct, -100.0) && close(t.windows[0].max_pct, 0.0));
        assert!(close(t.windows[4].min_pct, -1000.0 / 31.0));
    }

    #[test]
    fn short_or_bad_input_does_not_panic_sim_031() {
        assert!(trumpet(&[], 0.5, 1.0).windows.is_empty());
        assert!(
            trumpet(&samples(|i| i as f64), 0.0, 1.0)
                .mean_error_pct
                .is_nan()
        );
        assert!(trumpet(&samples(|i| i as f64), 0.5, 0.0).windows.is_empty());
        assert!(
            trumpet(&samples(|i| i as f64), f64::NAN, 1.0)
                .windows
                .is_empty()
        );
        // 80 min of data: only windows up to 19 min fit in 60..80 min.
        let v: Vec<f64> = (0..=160).map(|i| i as f64 / 120.0).collect();
        let t = trumpet(&v, 0.5, 1.0);
        let w: Vec<f64> = t.windows.iter().map(|p| p.window_min).collect();
        assert_eq!(w, [2.0, 5.0, 11.0, 19.0]);
        assert!(close(t.mean_error_pct, 0.0));
        // Under an hour: nothing to analyse.
        let t = trumpet(&v[..100], 0.5, 1.0);
        assert!(t.windows.is_empty() && t.mean_error_pct.is_nan());
    }

    #[test]
    fn plot_writes_labelled_svg_sim_031() {
        let dir = std::env::temp_dir().join(format!("thecal-trumpet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = trumpet(&samples(|i| 0.05 * i.div_ceil(6) as f64), 0.5, 1.0);
        let p = dir.join("trumpet.svg");
        plot(&t, "Trumpet curve — pulsed pump, 1 mL/h", &p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.contains("observation window (min)"));
        assert!(svg.contains("deviation from set rate (%)"));
        assert!(svg.contains("mean error A = +0.00 %"));
        // An empty curve still plots.
        plot(&trumpet(&[], 0.5, 1.0), "empty", &dir.join("empty.svg")).unwrap();
        if let Ok(out) = std::env::var("THECAL_REPORT_PNG") {
            let png = Path::new(&out).join("trumpet.png");
            std::fs::create_dir_all(&out).unwrap();
            let _ = std::process::Command::new("rsvg-convert")
                .arg("-o")
                .arg(&png)
                .arg(&p)
                .status();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
