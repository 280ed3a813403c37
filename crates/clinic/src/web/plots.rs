//! The patient page's plots: the prescribed daily dose and the reservoir over an implant's
//! life, drawn on the server as inline SVG by the simulator's plotting code
//! ([`thecal_sim::plot`], one implementation and one style), each with a table that says
//! the same in words and numbers for readers who do not see the drawing.
//!
//! Only recorded values are drawn: prescription versions, and each refill visit's expected
//! residual, aspirated volume and volume after the fill. The one value computed here is the
//! expected reservoir today, from the last fill at the prescribed flow (floats, for the
//! drawing only; nothing clinical is decided from it).

use chrono::{DateTime, NaiveDate, Utc};
use thecal_rx::Volume;
use thecal_sim::plot::{self, C_EXPECTED, C_OTHER, C_TIP, C_TRUE, Line, LineChart};

use crate::domain::records::{Prescription, RefillVisit};

/// A plot with its text alternative.
#[derive(Debug, Clone)]
pub struct PlotView {
    /// Element id (unique on the page).
    pub id: String,
    /// Heading.
    pub title: String,
    /// The SVG element, as drawn by `thecal_sim::plot` (text escaped by its SVG backend),
    /// with its role and accessible name.
    pub svg: String,
    /// One sentence: what the plot shows.
    pub summary: String,
    /// The table's column headings (with units).
    pub head: Vec<&'static str>,
    /// The table's rows.
    pub rows: Vec<Vec<String>>,
}

const NL_PER_ML: f64 = 1_000_000.0;
const MS_PER_DAY: f64 = 86_400_000.0;

fn days_since(t0: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    (t - t0).num_milliseconds() as f64 / MS_PER_DAY
}

fn ml(nl: u64) -> f64 {
    nl as f64 / NL_PER_ML
}

fn day(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The two plots of one implant: prescribed daily dose and reservoir volume against days
/// since the implant date. `rxs` oldest first.
pub fn implant_plots(
    implant_id: i64,
    implanted_on: NaiveDate,
    rxs: &[Prescription],
    visits: &[RefillVisit],
    now: DateTime<Utc>,
) -> Vec<PlotView> {
    let t0 = implanted_on.and_time(chrono::NaiveTime::MIN).and_utc();
    let end = days_since(t0, now).max(1.0);
    let x_desc = format!("time since the implant on {implanted_on} (days)");
    let mut out = Vec::new();
    if let Some(p) = dose_plot(implant_id, t0, end, &x_desc, rxs, now) {
        out.push(p);
    }
    if let Some(p) = reservoir_plot(implant_id, t0, end, &x_desc, rxs, visits, now) {
        out.push(p);
    }
    for p in &mut out {
        p.svg = inline(p);
    }
    out
}

fn svg(chart: &LineChart<'_>) -> Option<String> {
    match plot::line_chart_svg(plot::SIZE, chart) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("thecal-clinic: plot: {e}");
            None
        }
    }
}

fn dose_plot(
    implant_id: i64,
    t0: DateTime<Utc>,
    end: f64,
    x_desc: &str,
    rxs: &[Prescription],
    now: DateTime<Utc>,
) -> Option<PlotView> {
    if rxs.is_empty() {
        return None;
    }
    // mg/day when any dose reaches 1 mg/day, else mcg/day: one unit for the axis.
    let mg = rxs.iter().any(|r| r.daily_dose_ng >= 1_000_000);
    let (per_ng, unit) = if mg {
        (1e-6, "mg/day")
    } else {
        (1e-3, "mcg/day")
    };
    // One line per drug, a step per version; a gap where another drug was prescribed.
    let mut drugs: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut rows = Vec::new();
    for (i, rx) in rxs.iter().enumerate() {
        let from = days_since(t0, rx.created_at);
        let until = rxs
            .get(i + 1)
            .map_or_else(|| days_since(t0, now), |n| days_since(t0, n.created_at));
        let dose = rx.daily_dose_ng as f64 * per_ng;
        let line = match drugs.iter_mut().position(|(d, _)| *d == rx.drug) {
            Some(k) => &mut drugs[k].1,
            None => {
                drugs.push((rx.drug.clone(), Vec::new()));
                &mut drugs.last_mut()?.1
            }
        };
        if line.last().is_some_and(|p| p.0 < from) {
            line.push((f64::NAN, f64::NAN));
        }
        line.push((from, dose));
        line.push((until, dose));
        rows.push(vec![
            day(&rx.created_at),
            format!("version {}", rx.version),
            rx.drug.clone(),
            rx.concentration.clone(),
            rx.daily_dose.clone(),
            rx.flow.clone(),
        ]);
    }
    let colours = [C_TRUE, C_EXPECTED, C_TIP, C_OTHER];
    let title = "Prescribed daily dose";
    let y_desc = format!("daily dose ({unit})");
    let lines: Vec<Line<'_>> = drugs
        .iter()
        .enumerate()
        .map(|(i, (d, pts))| Line {
            label: d,
            colour: colours[i % colours.len()],
            points: pts.clone(),
        })
        .collect();
    let chart = LineChart {
        title,
        x_desc,
        y_desc: &y_desc,
        x_range: 0.0..end,
        y_label_area: 75,
        legend_order: (0..lines.len()).collect(),
        lines,
        empty_note: "no prescription",
    };
    let last = rxs.last()?;
    Some(PlotView {
        id: format!("dose-{implant_id}"),
        title: title.to_owned(),
        svg: svg(&chart)?,
        summary: format!(
            "{} prescription versions from {}; now {} {} at {}.",
            rxs.len(),
            day(&rxs.first()?.created_at),
            last.drug,
            last.concentration,
            last.daily_dose
        ),
        head: vec![
            "From",
            "Version",
            "Drug",
            "Concentration",
            "Daily dose",
            "Flow",
        ],
        rows,
    })
}

fn reservoir_plot(
    implant_id: i64,
    t0: DateTime<Utc>,
    end: f64,
    x_desc: &str,
    rxs: &[Prescription],
    visits: &[RefillVisit],
    now: DateTime<Utc>,
) -> Option<PlotView> {
    let first = rxs.first()?;
    let mut visits: Vec<&RefillVisit> = visits.iter().collect();
    visits.sort_by_key(|v| v.opened_at);
    let mut recorded = Vec::new();
    let mut expected = vec![(
        days_since(t0, first.created_at),
        ml(first.reservoir_volume_nl),
    )];
    let mut rows = vec![vec![
        day(&first.created_at),
        "first fill (prescription)".to_owned(),
        "—".to_owned(),
        "—".to_owned(),
        Volume::from_raw(first.reservoir_volume_nl).to_string(),
    ]];
    let mut last_fill = (first.created_at, first.reservoir_volume_nl);
    for v in &visits {
        let at = days_since(t0, v.opened_at);
        expected.push((at, ml(v.expected_residual_nl)));
        if let Some(a) = v.aspirated_nl {
            recorded.push((at, ml(a)));
        }
        let filled_at = v.closed_at.unwrap_or(v.opened_at);
        if let Some(after) = v.volume_after_nl {
            let t = days_since(t0, filled_at);
            recorded.push((t, ml(after)));
            expected.push((t, ml(after)));
            last_fill = (filled_at, after);
        }
        rows.push(vec![
            day(&v.opened_at),
            if v.closed_at.is_some() {
                "refill visit".to_owned()
            } else {
                "refill visit (open)".to_owned()
            },
            Volume::from_raw(v.expected_residual_nl).to_string(),
            v.aspirated_nl
                .map_or("—".to_owned(), |a| Volume::from_raw(a).to_string()),
            v.volume_after_nl
                .map_or("—".to_owned(), |a| Volume::from_raw(a).to_string()),
        ]);
    }
    // The expected volume today, from the last fill at the prescription in force.
    let flow = rxs.last().map_or(0, |r| r.flow_nl_day);
    let elapsed_days = days_since(last_fill.0, now).max(0.0);
    let today_ml = (ml(last_fill.1) - elapsed_days * ml(flow)).max(0.0);
    expected.push((days_since(t0, now), today_ml));
    let title = "Reservoir volume";
    let chart = LineChart {
        title,
        x_desc,
        y_desc: "reservoir (mL)",
        x_range: 0.0..end,
        y_label_area: 65,
        lines: vec![
            Line {
                label: "expected by the clinic (at the prescribed flow)",
                colour: C_EXPECTED,
                points: expected,
            },
            Line {
                label: "recorded at refill visits (aspirated, then after the fill)",
                colour: C_TRUE,
                points: recorded,
            },
        ],
        legend_order: vec![1, 0],
        empty_note: "no refill recorded",
    };
    Some(PlotView {
        id: format!("reservoir-{implant_id}"),
        title: title.to_owned(),
        svg: svg(&chart)?,
        summary: format!(
            "{} refill visits recorded; expected today about {:.1} mL (last fill {} mL on {}, {} a day).",
            visits.len(),
            today_ml,
            ml(last_fill.1),
            day(&last_fill.0),
            Volume::from_raw(flow)
        ),
        head: vec![
            "Date",
            "Event",
            "Expected residual",
            "Aspirated",
            "After the fill",
        ],
        rows,
    })
}

/// The SVG with its role and accessible name, for inline use in a page.
pub fn inline(p: &PlotView) -> String {
    let name = askama_escape(&format!("{}: {}", p.title, p.summary));
    // In HTML an inline svg element needs no namespace; the page names no other host.
    let svg = p
        .svg
        .replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    match svg.strip_prefix("<svg") {
        Some(rest) => format!(
            "<svg role=\"img\" aria-label=\"{name}\" aria-describedby=\"{}-table\" focusable=\"false\"{rest}",
            p.id
        ),
        None => String::new(),
    }
}

fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
