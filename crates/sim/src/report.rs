//! Reports on one run (SIM-030): `summary.json`, `timeline.csv`, four SVG plots
//! (`reservoir.svg`, `dose.svg`, `patient.svg`, `alarms.svg`) and an `index.html` that
//! shows them together, plus a compact [`terminal_summary`] for the CLI.
//!
//! Everything here is written from a [`RunResult`] alone. Missing values (NaN: a
//! constant-rate pump has no reservoir estimate and no battery) are left out of plots,
//! written as empty CSV fields and as `null` in JSON; an empty timeline gives empty
//! (but valid, labelled) plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::plot::{
    C_EXPECTED, C_OTHER, C_PRESCRIBED, C_TIP, C_TRUE, Line, LineChart, SIZE, draw_line,
    line_chart_file, mesh, segments, y_range,
};
use crate::plot::{FONT, Mark, header};
use crate::result::{AlarmMark, RadioTotals, RunResult, Verdict};

/// Runs longer than this (hours) are plotted in days, shorter ones in hours.
const DAYS_ABOVE_H: f64 = 72.0;
/// At most this many alarm events listed in `index.html`.
const MAX_HTML_ALARMS: usize = 500;

/// The content of `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Simulated duration, hours.
    pub duration_h: f64,
    /// Simulated duration, days.
    pub duration_days: f64,
    /// Whether every expectation held.
    pub passed: bool,
    /// Expectations that held.
    pub expectations_passed: usize,
    /// Expectations checked.
    pub expectations_total: usize,
    /// The verdict on each expectation.
    pub verdicts: Vec<Verdict>,
    /// One entry per alarm kind seen, in order of first appearance.
    pub alarms: Vec<AlarmSummary>,
    /// Totals of the run.
    pub totals: TotalsSummary,
    /// The peak and first flag of each patient risk (SIM-072).
    pub risks: crate::risks::RiskSummary,
    /// The telemetry, in a scenario with a radio (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radio: Option<RadioTotals>,
}

/// What one alarm kind did during a run.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmSummary {
    /// Alarm kind.
    pub kind: String,
    /// Highest priority it was raised with.
    pub priority: String,
    /// How many times it was raised.
    pub raised: u64,
    /// How many tones it sounded.
    pub tones: u64,
    /// When it was first raised (or first seen at all), hours.
    pub first_t_h: f64,
    /// The same, days.
    pub first_day: f64,
}

/// Dose totals for one drug.
#[derive(Debug, Clone, Serialize)]
pub struct DrugTotals {
    /// Drug.
    pub drug: String,
    /// Prescribed over the run as the pump ran it, mcg.
    pub prescribed_mcg: f64,
    /// The clinician intended over the run, mcg (SIM-067).
    pub intended_mcg: f64,
    /// Delivered at the tip as a percentage of intended (`null` if nothing was
    /// intended).
    pub delivered_pct_of_intended: Option<f64>,
    /// Reached the CSF at the catheter tip, mcg.
    pub delivered_tip_mcg: f64,
    /// Delivered at the tip as a percentage of prescribed (`null` if nothing was
    /// prescribed).
    pub delivered_pct_of_prescribed: Option<f64>,
    /// Went to tissue instead (leak, pocket fill), mcg.
    pub to_tissue_mcg: f64,
}

/// Battery at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct BatterySummary {
    /// `ok`, `eri`, `eos` or `none`.
    pub state: String,
    /// Remaining at the end, percent (`null` without a battery).
    pub end_pct: Option<f64>,
    /// Day of the elective replacement indicator, if reached.
    pub eri_day: Option<f64>,
    /// Day of end of service, if reached.
    pub eos_day: Option<f64>,
}

/// The totals section of `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TotalsSummary {
    /// Per drug (the run result carries the primary drug only).
    pub drugs: Vec<DrugTotals>,
    /// Limiter vetoes logged.
    pub limiter_vetoes: u64,
    /// Refills done.
    pub refills: u64,
    /// Strokes moved.
    pub strokes: u64,
    /// Calls into the pump core (wake-ups).
    pub pump_wakes: u64,
    /// Commands refused by the pump.
    pub commands_refused: u64,
    /// Patient bolus presses.
    pub bolus_presses: u64,
    /// Patient boluses given.
    pub boluses_given: u64,
    /// Volume the pump reports as missed, mL.
    pub missed_ml: f64,
    /// Events the engine processed.
    pub engine_events: u64,
    /// Battery.
    pub battery: BatterySummary,
}

/// Builds the summary written to `summary.json`.
pub fn summary(result: &RunResult) -> Summary {
    let t = &result.totals;
    let end_pct = result
        .samples
        .iter()
        .rev()
        .map(|s| s.battery_pct)
        .find(|v| v.is_finite());
    let pct = if t.prescribed_mcg > 0.0 {
        finite(100.0 * t.delivered_tip_mcg / t.prescribed_mcg)
    } else {
        None
    };
    Summary {
        scenario: result.scenario.clone(),
        description: result.description.clone(),
        duration_h: result.duration_h,
        duration_days: result.duration_h / 24.0,
        passed: result.passed(),
        expectations_passed: result.verdicts.iter().filter(|v| v.passed).count(),
        expectations_total: result.verdicts.len(),
        verdicts: result.verdicts.clone(),
        alarms: alarm_summary(&result.alarms),
        totals: TotalsSummary {
            drugs: vec![DrugTotals {
                drug: t.drug.clone(),
                prescribed_mcg: t.prescribed_mcg,
                intended_mcg: t.intended_mcg,
                delivered_pct_of_intended: (t.intended_mcg > 0.0)
                    .then(|| finite(100.0 * t.delivered_tip_mcg / t.intended_mcg))
                    .flatten(),
                delivered_tip_mcg: t.delivered_tip_mcg,
                delivered_pct_of_prescribed: pct,
                to_tissue_mcg: t.to_tissue_mcg,
            }],
            limiter_vetoes: t.limiter_vetoes,
            refills: t.refills,
            strokes: t.strokes,
            pump_wakes: t.pump_wakes,
            commands_refused: t.commands_refused,
            bolus_presses: t.bolus_presses,
            boluses_given: t.boluses_given,
            missed_ml: t.missed_ml,
            engine_events: t.engine_events,
            battery: BatterySummary {
                state: t.battery_state.clone(),
                end_pct,
                eri_day: t.eri_day,
                eos_day: t.eos_day,
            },
        },
        risks: crate::risks::summary(&result.samples),
        radio: result.radio.clone(),
    }
}

/// Counts alarms per kind, in order of first appearance.
fn alarm_summary(alarms: &[AlarmMark]) -> Vec<AlarmSummary> {
    let mut out: Vec<AlarmSummary> = Vec::new();
    for a in alarms {
        let i = match out.iter().position(|s| s.kind == a.kind) {
            Some(i) => i,
            None => {
                out.push(AlarmSummary {
                    kind: a.kind.clone(),
                    priority: a.priority.clone(),
                    raised: 0,
                    tones: 0,
                    first_t_h: a.t_h,
                    first_day: a.t_h / 24.0,
                });
                out.len() - 1
            }
        };
        let s = &mut out[i];
        if priority_rank(&a.priority) > priority_rank(&s.priority) {
            s.priority = a.priority.clone();
        }
        match a.what.as_str() {
            "raised" => {
                if s.raised == 0 || a.t_h < s.first_t_h {
                    s.first_t_h = a.t_h;
                    s.first_day = a.t_h / 24.0;
                }
                s.raised += 1;
            }
            "tone" => s.tones += 1,
            _ => {}
        }
    }
    out
}

/// 3 high, 2 medium, 1 low, 0 anything else.
fn priority_rank(p: &str) -> u8 {
    match p.to_ascii_lowercase().as_str() {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Writes the full report into `dir` (created if needed) and returns the paths written:
/// `summary.json`, `timeline.csv`, `reservoir.svg`, `dose.svg`, `patient.svg`,
/// `alarms.svg` and `index.html`.
pub fn write(result: &RunResult, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let summary = summary(result);

    let p = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&summary).map_err(io::Error::other)?;
    fs::write(&p, json + "\n")?;
    written.push(p);

    let p = dir.join("timeline.csv");
    fs::write(&p, timeline_csv(result))?;
    written.push(p);

    let mut plots: Vec<(&str, PlotFn)> = vec![
        ("reservoir.svg", plot_reservoir),
        ("dose.svg", plot_dose),
        ("patient.svg", plot_patient),
        ("alarms.svg", plot_alarms),
    ];
    if result.radio.is_some() {
        plots.push(("radio.svg", plot_radio));
    }
    for (name, f) in plots {
        let p = dir.join(name);
        f(result, &p).map_err(|e| io::Error::other(format!("{}: {e}", p.display())))?;
        written.push(p);
    }

    let p = dir.join("index.html");
    fs::write(&p, index_html(result, &summary))?;
    written.push(p);
    Ok(written)
}

use crate::plot::PlotResult;
type PlotFn = fn(&RunResult, &Path) -> PlotResult;

/// The CSV header: one column per [`crate::result::Sample`] field, units in the name.
pub const TIMELINE_HEADER: &str = "time_h,reservoir_true_mL,reservoir_expected_mL,\
prescribed_mcg_per_day,tip_mcg_per_day,flow_mL_per_day,csf_ng_per_mL,systemic_ng_per_mL,\
effect_0_to_1,withdrawal_risk_0_to_1,overdose_risk_0_to_1,battery_pct,intended_mcg_per_day,\
opioid_withdrawal_risk_0_to_1,clonidine_withdrawal_risk_0_to_1,opioid_tolerance_x";

/// The column added to the timeline in a scenario with a radio: the implant radio's
/// cumulative energy.
pub const TIMELINE_RADIO_COLUMN: &str = "radio_energy_J";

/// The radio's cumulative energy (J) at `t_h`, from its step series.
fn radio_energy_at(series: &[(f64, f64)], t_h: f64) -> f64 {
    let i = series.partition_point(|p| p.0 <= t_h);
    i.checked_sub(1)
        .and_then(|i| series.get(i))
        .map_or(0.0, |p| p.1)
}

/// One row per sample; NaN and infinite values are written as empty fields.
fn timeline_csv(result: &RunResult) -> String {
    let mut s = String::with_capacity(64 + result.samples.len() * 120);
    s.push_str(TIMELINE_HEADER);
    if result.radio.is_some() {
        s.push(',');
        s.push_str(TIMELINE_RADIO_COLUMN);
    }
    s.push('\n');
    for x in &result.samples {
        let fields = [
            x.t_h,
            x.reservoir_ml,
            x.reservoir_expected_ml,
            x.prescribed_mcg_per_day,
            x.tip_mcg_per_day,
            x.flow_ml_per_day,
            x.csf_ng_per_ml,
            x.systemic_ng_per_ml,
            x.effect,
            x.withdrawal_risk,
            x.overdose_risk,
            x.battery_pct,
            x.intended_mcg_per_day,
            x.opioid_withdrawal_risk,
            x.clonidine_withdrawal_risk,
            x.opioid_tolerance,
        ];
        for (i, v) in fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            if v.is_finite() {
                let _ = write!(s, "{v}");
            }
        }
        if let Some(radio) = &result.radio {
            let _ = write!(s, ",{}", radio_energy_at(&radio.energy_series, x.t_h));
        }
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------- plots

/// How time is shown on x axes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeAxis {
    /// Hours per unit.
    per_h: f64,
    /// Axis description.
    desc: &'static str,
}

impl TimeAxis {
    fn for_run(result: &RunResult) -> TimeAxis {
        if run_end_h(result) > DAYS_ABOVE_H {
            TimeAxis {
                per_h: 24.0,
                desc: "time (days)",
            }
        } else {
            TimeAxis {
                per_h: 1.0,
                desc: "time (h)",
            }
        }
    }
    fn x(&self, t_h: f64) -> f64 {
        t_h / self.per_h
    }
}

/// The end of the run, hours: the stated duration, or the last sample or alarm.
fn run_end_h(result: &RunResult) -> f64 {
    let mut end = if result.duration_h.is_finite() {
        result.duration_h
    } else {
        0.0
    };
    for t in result
        .samples
        .iter()
        .map(|s| s.t_h)
        .chain(result.alarms.iter().map(|a| a.t_h))
    {
        if t.is_finite() && t > end {
            end = t;
        }
    }
    end
}

fn x_range(result: &RunResult, ax: TimeAxis) -> std::ops::Range<f64> {
    let end = ax.x(run_end_h(result));
    0.0..if end > 0.0 { end } else { 1.0 }
}

const C_CSF: RGBColor = RGBColor(31, 119, 180);
const C_EFFECT: RGBColor = RGBColor(44, 160, 44);
const C_WITHDRAWAL: RGBColor = RGBColor(148, 103, 189);
const C_OVERDOSE: RGBColor = RGBColor(214, 39, 40);
const C_HIGH: RGBColor = RGBColor(214, 39, 40);
const C_MEDIUM: RGBColor = RGBColor(230, 149, 0);
const C_LOW: RGBColor = RGBColor(23, 162, 184);
const C_SPAN: RGBColor = RGBColor(205, 205, 205);

fn title(result: &RunResult, what: &str) -> String {
    if result.scenario.is_empty() {
        what.to_string()
    } else {
        format!("{what} — {}", result.scenario)
    }
}

/// One timeline quantity drawn as a line: legend label, colour, and the value.
type Series<'a> = (&'a str, RGBColor, fn(&crate::result::Sample) -> f64);

/// A plot of timeline quantities against time (the reservoir and the dose plots).
/// The legend lists `legend_order`; the lines are drawn in `series` order (the last
/// on top).
fn plot_series(
    result: &RunResult,
    path: &Path,
    heading: &str,
    y_desc: &str,
    y_label_area: u32,
    series: &[Series<'_>],
    legend_order: &[usize],
) -> PlotResult {
    let ax = TimeAxis::for_run(result);
    let s = &result.samples;
    let title = title(result, heading);
    line_chart_file(
        path,
        SIZE,
        &LineChart {
            title: &title,
            x_desc: ax.desc,
            y_desc,
            x_range: x_range(result, ax),
            y_label_area,
            lines: series
                .iter()
                .map(|(label, colour, f)| Line {
                    label,
                    colour: *colour,
                    points: s.iter().map(|x| (ax.x(x.t_h), f(x))).collect(),
                })
                .collect(),
            legend_order: legend_order.to_vec(),
            empty_note: "no samples",
        },
    )
}

fn plot_reservoir(result: &RunResult, path: &Path) -> PlotResult {
    let has_expected = result
        .samples
        .iter()
        .any(|x| x.reservoir_expected_ml.is_finite());
    let expected = if has_expected {
        "pump's estimate"
    } else {
        "pump's estimate (none: constant-rate pump)"
    };
    plot_series(
        result,
        path,
        "Reservoir volume",
        "reservoir (mL)",
        65,
        &[
            ("true volume", C_TRUE, |x| x.reservoir_ml),
            (expected, C_EXPECTED, |x| x.reservoir_expected_ml),
        ],
        &[0, 1],
    )
}

fn plot_dose(result: &RunResult, path: &Path) -> PlotResult {
    let drug = if result.totals.drug.is_empty() {
        String::new()
    } else {
        format!(" of {}", result.totals.drug)
    };
    plot_series(
        result,
        path,
        &format!("Daily dose{drug}"),
        "dose (mcg/day)",
        75,
        &[
            ("delivered at the catheter tip", C_TIP, |x| {
                x.tip_mcg_per_day
            }),
            ("as the pump runs it", C_PRESCRIBED, |x| {
                x.prescribed_mcg_per_day
            }),
            ("intended by the clinician", C_OTHER, |x| {
                x.intended_mcg_per_day
            }),
        ],
        &[2, 1, 0],
    )
}

fn plot_patient(result: &RunResult, path: &Path) -> PlotResult {
    let ax = TimeAxis::for_run(result);
    let root = SVGBackend::new(path, (SIZE.0, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let s = &result.samples;
    let (top, bottom) = root.split_vertically(420);

    let area = header(
        &top,
        &title(result, "Patient: CSF concentration and effect"),
        &[
            ("CSF concentration (left axis)", C_CSF, Mark::Line),
            ("effect (right axis)", C_EFFECT, Mark::Line),
        ],
    )?;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(
            x_range(result, ax),
            y_range(s.iter().map(|x| x.csf_ng_per_ml)),
        )?
        .set_secondary_coord(x_range(result, ax), 0.0..1.05);
    mesh!(chart, ax.desc, "CSF concentration (ng/mL)");
    chart
        .configure_secondary_axes()
        .y_desc("effect (0 = none, 1 = full)")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .draw()?;
    draw_line!(
        chart,
        s.iter().map(|x| (ax.x(x.t_h), x.csf_ng_per_ml)),
        C_CSF
    );
    let style = C_EFFECT.stroke_width(2);
    chart.draw_secondary_series(
        segments(s.iter().map(|x| (ax.x(x.t_h), x.effect)))
            .into_iter()
            .map(move |seg| PathElement::new(seg, style)),
    )?;

    let area = header(
        &bottom,
        "Patient: risk",
        &[
            ("withdrawal risk", C_WITHDRAWAL, Mark::Line),
            ("overdose risk", C_OVERDOSE, Mark::Line),
        ],
    )?;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(x_range(result, ax), 0.0..1.05)?;
    mesh!(chart, ax.desc, "risk (0 to 1)");
    draw_line!(
        chart,
        s.iter().map(|x| (ax.x(x.t_h), x.withdrawal_risk)),
        C_WITHDRAWAL
    );
    draw_line!(
        chart,
        s.iter().map(|x| (ax.x(x.t_h), x.overdose_risk)),
        C_OVERDOSE
    );
    crate::plot::empty_note(&root, s.is_empty(), "no samples")?;
    root.present()?;
    Ok(())
}

const C_RADIO: RGBColor = RGBColor(31, 119, 180);
const C_BUDGET: RGBColor = RGBColor(214, 39, 40);

/// The implant radio's cumulative energy against time, with one day's budget for scale
/// and the days the radio slept.
fn plot_radio(result: &RunResult, path: &Path) -> PlotResult {
    let ax = TimeAxis::for_run(result);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let empty = Vec::new();
    let (series, budget_j, slept) = match &result.radio {
        Some(r) => (
            &r.energy_series,
            r.daily_budget_uj as f64 / 1e6,
            r.first_sleep_h,
        ),
        None => (&empty, f64::NAN, None),
    };
    let total = series.last().map_or(0.0, |p| p.1);
    // One day's budget is shown when the run spends a good part of it; a flood that
    // costs a fraction of a percent would otherwise be a flat line at zero.
    let show_budget = budget_j.is_finite() && total > 0.2 * budget_j;
    let mut legend = vec![("radio energy spent (cumulative)", C_RADIO, Mark::Line)];
    if show_budget {
        legend.push(("one day's budget", C_BUDGET, Mark::Line));
    }
    if slept.is_some() {
        legend.push(("radio asleep (budget spent)", C_SPAN, Mark::Box));
    }
    let area = header(&root, &title(result, "Implant radio energy"), &legend)?;
    let (unit, scale) = if total >= 1.0 || show_budget {
        ("J", 1.0)
    } else {
        ("mJ", 1e3)
    };
    let mut ys: Vec<f64> = series.iter().map(|p| p.1 * scale).collect();
    if show_budget {
        ys.push(budget_j * scale);
    }
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(x_range(result, ax), y_range(ys))?;
    mesh!(chart, ax.desc, format!("energy ({unit})"));
    // Sleeps: from each sleep to the next wake, shaded.
    if slept.is_some() {
        let y = chart.y_range();
        let wake = result
            .notes
            .iter()
            .filter(|n| n.text.starts_with("programmer wand"))
            .map(|n| n.t_h)
            .collect::<Vec<_>>();
        let sleeps = result
            .alarms
            .iter()
            .filter(|a| a.kind == "TelemetryPaused" && a.what == "raised")
            .map(|a| a.t_h);
        let end = run_end_h(result);
        for from in sleeps {
            let to = wake.iter().copied().find(|w| *w >= from).unwrap_or(end);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(ax.x(from), y.start), (ax.x(to), y.end)],
                C_SPAN.mix(0.6).filled(),
            )))?;
        }
    }
    if show_budget {
        let x = x_range(result, ax);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x.start, budget_j * scale), (x.end, budget_j * scale)],
            C_BUDGET.stroke_width(2),
        )))?;
    }
    // A step line: the energy stays flat between the radio's turns.
    let mut steps = Vec::with_capacity(series.len() * 2);
    let mut prev: Option<f64> = None;
    for (t, e) in series {
        if let Some(p) = prev {
            steps.push((ax.x(*t), p * scale));
        }
        steps.push((ax.x(*t), e * scale));
        prev = Some(*e);
    }
    draw_line!(chart, steps, C_RADIO);
    crate::plot::empty_note(&root, series.is_empty(), "no samples")?;
    root.present()?;
    Ok(())
}

fn priority_color(p: &str) -> RGBColor {
    match priority_rank(p) {
        3 => C_HIGH,
        2 => C_MEDIUM,
        1 => C_LOW,
        _ => C_OTHER,
    }
}

fn plot_alarms(result: &RunResult, path: &Path) -> PlotResult {
    let ax = TimeAxis::for_run(result);
    let kinds = alarm_summary(&result.alarms);
    let rows = kinds.len().max(1);
    let height = (170 + 50 * rows as u32).max(280);
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let area = header(
        &root,
        &title(result, "Alarms"),
        &[
            ("high", C_HIGH, Mark::Box),
            ("medium", C_MEDIUM, Mark::Box),
            ("low priority", C_LOW, Mark::Box),
            ("raised", C_OTHER, Mark::Dot),
            ("cleared", C_OTHER, Mark::Ring),
            ("tone", C_OTHER, Mark::Tick),
            ("active", C_SPAN, Mark::Line),
        ],
    )?;
    let row_of = |kind: &str| kinds.iter().position(|k| k.kind == kind).unwrap_or(0) as i32;
    let names: Vec<String> = kinds.iter().map(|k| k.kind.clone()).collect();
    let label = move |y: &i32| -> String {
        usize::try_from(*y)
            .ok()
            .and_then(|i| names.get(i).cloned())
            .unwrap_or_default()
    };
    let xr = x_range(result, ax);
    let x_end = xr.end;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(170)
        .build_cartesian_2d(xr, -1..rows as i32)?;
    chart
        .configure_mesh()
        .x_desc(ax.desc)
        .y_labels(rows + 1)
        .y_label_formatter(&label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;

    // Active spans: raised until cleared (or the end of the run).
    let mut open: BTreeMap<String, (f64, RGBColor)> = BTreeMap::new();
    let mut spans: Vec<(i32, f64, f64, RGBColor)> = Vec::new();
    for a in result.alarms.iter().filter(|a| a.t_h.is_finite()) {
        match a.what.as_str() {
            "raised" => {
                let c = priority_color(&a.priority);
                if let Some((t0, c)) = open.insert(a.kind.clone(), (a.t_h, c)) {
                    spans.push((row_of(&a.kind), t0, a.t_h, c));
                }
            }
            "cleared" => {
                if let Some((t0, c)) = open.remove(&a.kind) {
                    spans.push((row_of(&a.kind), t0, a.t_h, c));
                }
            }
            _ => {}
        }
    }
    for (kind, (t0, c)) in open {
        spans.push((row_of(&kind), t0, f64::INFINITY, c));
    }
    chart.draw_series(spans.into_iter().map(|(row, t0, t1, c)| {
        let x1 = if t1.is_finite() { ax.x(t1) } else { x_end };
        PathElement::new(
            vec![(ax.x(t0), row), (x1, row)],
            c.mix(0.35).stroke_width(8),
        )
    }))?;

    let marks = |what: &'static str| {
        result
            .alarms
            .iter()
            .filter(move |a| a.what == what && a.t_h.is_finite())
    };
    chart.draw_series(marks("tone").map(|a| {
        EmptyElement::at((ax.x(a.t_h), row_of(&a.kind)))
            + PathElement::new(
                vec![(0, -11), (0, 11)],
                priority_color(&a.priority).stroke_width(2),
            )
    }))?;
    chart.draw_series(marks("raised").map(|a| {
        Circle::new(
            (ax.x(a.t_h), row_of(&a.kind)),
            6,
            priority_color(&a.priority).filled(),
        )
    }))?;
    chart.draw_series(marks("cleared").map(|a| {
        EmptyElement::at((ax.x(a.t_h), row_of(&a.kind)))
            + Circle::new((0, 0), 6, WHITE.filled())
            + Circle::new((0, 0), 6, priority_color(&a.priority).stroke_width(2))
    }))?;
    if result.alarms.is_empty() {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "no alarms",
            (w as i32 / 2 - 40, h as i32 / 2 - 20),
            (FONT, 20).into_font().color(&C_OTHER),
        ))?;
    }
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------- text

/// Formats a time for people: `12.5 h` for short runs, `day 12.3` for long ones.
fn fmt_time(t_h: f64, long_run: bool) -> String {
    if !t_h.is_finite() {
        "—".to_string()
    } else if long_run {
        format!("day {:.2}", t_h / 24.0)
    } else {
        format!("{t_h:.2} h")
    }
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.1}{unit}"),
        _ => "—".to_string(),
    }
}

fn fmt_duration(h: f64) -> String {
    if !h.is_finite() {
        "—".to_string()
    } else if h > DAYS_ABOVE_H {
        format!("{:.1} days", h / 24.0)
    } else {
        format!("{h:.1} h")
    }
}

/// A compact, human summary of a run for the terminal: the verdicts (✔/✘), the totals
/// and the alarms.
pub fn terminal_summary(result: &RunResult) -> String {
    let sm = summary(result);
    let long = run_end_h(result) > DAYS_ABOVE_H;
    let mut s = String::new();
    let _ = writeln!(s, "scenario  {}", sm.scenario);
    if !sm.description.is_empty() {
        let _ = writeln!(s, "          {}", sm.description);
    }
    let _ = writeln!(
        s,
        "duration  {}   result: {} ({}/{} expectations held)",
        fmt_duration(sm.duration_h),
        if sm.passed { "PASS" } else { "FAIL" },
        sm.expectations_passed,
        sm.expectations_total
    );
    for v in &sm.verdicts {
        let mark = if v.passed { "✔ PASS" } else { "✘ FAIL" };
        let _ = write!(s, "  {mark}  {}", v.expectation);
        if !v.detail.is_empty() {
            let _ = write!(s, " — {}", v.detail);
        }
        s.push('\n');
    }
    let t = &sm.totals;
    for d in &t.drugs {
        let _ = writeln!(
            s,
            "dose      {}: prescribed {:.1} mcg, delivered at tip {:.1} mcg ({}), to tissue {:.1} mcg; \
             intended {:.1} mcg ({} delivered)",
            if d.drug.is_empty() { "drug" } else { &d.drug },
            d.prescribed_mcg,
            d.delivered_tip_mcg,
            fmt_opt(d.delivered_pct_of_prescribed, " %"),
            d.to_tissue_mcg,
            d.intended_mcg,
            fmt_opt(d.delivered_pct_of_intended, " %"),
        );
    }
    let _ = writeln!(
        s,
        "pump      {} strokes, {} wakes, {} limiter vetoes, {} refills, {} commands refused, \
         boluses {}/{} given, missed {:.3} mL",
        t.strokes,
        t.pump_wakes,
        t.limiter_vetoes,
        t.refills,
        t.commands_refused,
        t.boluses_given,
        t.bolus_presses,
        t.missed_ml
    );
    let _ = writeln!(
        s,
        "battery   {} at end ({}), ERI {}, EOS {}",
        t.battery.state,
        fmt_opt(t.battery.end_pct, " %"),
        t.battery
            .eri_day
            .map_or("not reached".to_string(), |d| format!("day {d:.1}")),
        t.battery
            .eos_day
            .map_or("not reached".to_string(), |d| format!("day {d:.1}")),
    );
    if let Some(r) = &sm.radio {
        let _ = writeln!(s, "radio     {}", radio_line(r));
    }
    if sm.alarms.is_empty() {
        let _ = writeln!(s, "alarms    none");
    } else {
        let _ = writeln!(s, "alarms");
        for a in &sm.alarms {
            let _ = writeln!(
                s,
                "  {:<22} {:<7} raised {:>3}×, first at {}, {} tones",
                a.kind,
                a.priority.to_ascii_lowercase(),
                a.raised,
                fmt_time(a.first_t_h, long),
                a.tones
            );
        }
    }
    s
}

/// The telemetry in one line.
fn radio_line(r: &RadioTotals) -> String {
    format!(
        "{:.1} mJ spent (costliest day {:.3} % of the budget), {} frames heard of {} sent \
         ({} rejected, {} jammed), {} handshakes, {} denials logged, {}; link boluses {} \
         of {} presses ({} unanswered)",
        r.energy_uj as f64 / 1e3,
        r.peak_day_pct_of_budget,
        r.frames_received,
        r.frames_sent + r.attack_frames_sent.saturating_sub(r.attack_frames_heard),
        r.frames_rejected,
        r.frames_jammed,
        r.handshakes,
        r.denials_logged,
        match r.first_sleep_h {
            Some(h) => format!(
                "asleep from day {:.2}{}",
                h / 24.0,
                if r.asleep_at_end {
                    " to the end"
                } else {
                    ", woken by the wand"
                }
            ),
            None => "never asleep".into(),
        },
        r.link_boluses,
        r.link_presses,
        r.link_failures
    )
}

/// Escapes text for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The `<head>` and style shared by the HTML reports.
pub(crate) fn html_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>{}</title>\n<style>\n\
body {{ font-family: sans-serif; margin: 1.5em auto; max-width: 1060px; color: #222; }}\n\
table {{ border-collapse: collapse; margin: 0.5em 0 1.2em; }}\n\
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}\n\
th {{ background: #f2f2f2; }}\n\
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}\n\
.pass {{ color: #1a7f37; font-weight: bold; }}\n\
.fail {{ color: #c62828; font-weight: bold; }}\n\
.high {{ color: #d62728; font-weight: bold; }} .medium {{ color: #b36b00; font-weight: bold; }} .low {{ color: #138496; }}\n\
img {{ max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }}\n\
.muted {{ color: #777; }}\n\
</style>\n</head>\n<body>\n",
        esc(title)
    )
}

fn index_html(result: &RunResult, sm: &Summary) -> String {
    let long = run_end_h(result) > DAYS_ABOVE_H;
    let mut h = html_head(&format!("thecal-sim: {}", sm.scenario));
    let verdict = if sm.passed {
        "<span class=\"pass\">PASS</span>"
    } else {
        "<span class=\"fail\">FAIL</span>"
    };
    let _ = writeln!(h, "<h1>{} {verdict}</h1>", esc(&sm.scenario));
    if !sm.description.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", esc(&sm.description));
    }
    let _ = writeln!(
        h,
        "<p>Simulated {}; {} of {} expectations held. Files: \
<a href=\"summary.json\">summary.json</a>, <a href=\"timeline.csv\">timeline.csv</a>.</p>",
        fmt_duration(sm.duration_h),
        sm.expectations_passed,
        sm.expectations_total
    );

    h.push_str("<h2>Expectations</h2>\n");
    if sm.verdicts.is_empty() {
        h.push_str("<p class=\"muted\">No expectations in this scenario.</p>\n");
    } else {
        h.push_str("<table>\n<tr><th>expectation</th><th>verdict</th><th>found</th></tr>\n");
        for v in &sm.verdicts {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&v.expectation),
                if v.passed { "pass" } else { "fail" },
                if v.passed { "✔ PASS" } else { "✘ FAIL" },
                esc(&v.detail)
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Totals</h2>\n<table>\n");
    let t = &sm.totals;
    let mut row = |k: &str, v: String| {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
            esc(k),
            esc(&v)
        );
    };
    for d in &t.drugs {
        let name = if d.drug.is_empty() { "drug" } else { &d.drug };
        row(
            &format!("{name}: prescribed"),
            format!("{:.1} mcg", d.prescribed_mcg),
        );
        row(
            &format!("{name}: delivered at catheter tip"),
            format!(
                "{:.1} mcg ({} of prescribed)",
                d.delivered_tip_mcg,
                fmt_opt(d.delivered_pct_of_prescribed, " %")
            ),
        );
        row(
            &format!("{name}: to tissue"),
            format!("{:.1} mcg", d.to_tissue_mcg),
        );
    }
    row("limiter vetoes", t.limiter_vetoes.to_string());
    row("refills", t.refills.to_string());
    row("strokes", t.strokes.to_string());
    row("pump wake-ups", t.pump_wakes.to_string());
    row("commands refused", t.commands_refused.to_string());
    row(
        "patient boluses given / presses",
        format!("{} / {}", t.boluses_given, t.bolus_presses),
    );
    row("missed volume", format!("{:.3} mL", t.missed_ml));
    row(
        "battery at end",
        format!("{} ({})", t.battery.state, fmt_opt(t.battery.end_pct, " %")),
    );
    row(
        "ERI",
        t.battery
            .eri_day
            .map_or("not reached".into(), |d| format!("day {d:.1}")),
    );
    row(
        "EOS",
        t.battery
            .eos_day
            .map_or("not reached".into(), |d| format!("day {d:.1}")),
    );
    row("engine events", t.engine_events.to_string());
    if let Some(r) = &sm.radio {
        row("radio", radio_line(r));
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Plots</h2>\n");
    for (f, alt) in [
        (
            "reservoir.svg",
            "reservoir volume, true and the pump's estimate",
        ),
        ("dose.svg", "prescribed and delivered daily dose"),
        ("patient.svg", "CSF concentration, effect and risks"),
        ("alarms.svg", "alarms over time"),
        ("radio.svg", "implant radio energy"),
    ] {
        if f == "radio.svg" && sm.radio.is_none() {
            continue;
        }
        let _ = writeln!(h, "<p><img src=\"{f}\" alt=\"{alt}\"></p>");
    }

    h.push_str("<h2>Alarms</h2>\n");
    if sm.alarms.is_empty() {
        h.push_str("<p class=\"muted\">No alarms.</p>\n");
    } else {
        h.push_str(
            "<table>\n<tr><th>kind</th><th>priority</th><th>raised</th><th>first</th><th>tones</th></tr>\n",
        );
        for a in &sm.alarms {
            let p = a.priority.to_ascii_lowercase();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&a.kind),
                esc(&p),
                esc(&p),
                a.raised,
                fmt_time(a.first_t_h, long),
                a.tones
            );
        }
        h.push_str("</table>\n");
        let events: Vec<&AlarmMark> = result.alarms.iter().filter(|a| a.what != "tone").collect();
        let _ = writeln!(
            h,
            "<details><summary>{} alarm events (raised / cleared; tones not listed)</summary>\n<table>\n\
<tr><th>time</th><th>kind</th><th>priority</th><th>event</th></tr>",
            events.len()
        );
        for a in events.iter().take(MAX_HTML_ALARMS) {
            let p = a.priority.to_ascii_lowercase();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                fmt_time(a.t_h, long),
                esc(&a.kind),
                esc(&p),
                esc(&p),
                esc(&a.what)
            );
        }
        h.push_str("</table>\n");
        if events.len() > MAX_HTML_ALARMS {
            let _ = writeln!(
                h,
                "<p class=\"muted\">… and {} more, not listed here.</p>",
                events.len() - MAX_HTML_ALARMS
            );
        }
        h.push_str("</details>\n");
    }

    h.push_str("<h2>Notes</h2>\n");
    if result.notes.is_empty() {
        h.push_str("<p class=\"muted\">No notes.</p>\n");
    } else {
        h.push_str("<table>\n<tr><th>time</th><th>what happened</th></tr>\n");
        for n in &result.notes {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                fmt_time(n.t_h, long),
                esc(&n.text)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::MAX_PLOT_POINTS;
    use crate::result::{Note, Sample, Totals};

    fn sample(t_h: f64, constant_rate: bool) -> Sample {
        let day = t_h / 24.0;
        Sample {
            t_h,
            reservoir_ml: 20.0 - 0.5 * day,
            reservoir_expected_ml: if constant_rate {
                f64::NAN
            } else {
                20.0 - 0.52 * day
            },
            prescribed_mcg_per_day: 200.0,
            intended_mcg_per_day: 200.0,
            tip_mcg_per_day: 200.0 * (1.0 + 0.05 * (t_h * 0.3).sin()),
            flow_ml_per_day: 0.5,
            csf_ng_per_ml: 150.0 * (1.0 - (-t_h / 10.0).exp()),
            systemic_ng_per_ml: 1.0,
            effect: 0.9 * (1.0 - (-t_h / 12.0).exp()),
            withdrawal_risk: (-t_h / 5.0).exp() * 0.6,
            overdose_risk: 0.02,
            battery_pct: if constant_rate { f64::NAN } else { 100.0 - day },
            opioid_withdrawal_risk: 0.0,
            clonidine_withdrawal_risk: 0.0,
            opioid_tolerance: f64::NAN,
        }
    }

    fn alarm(t_h: f64, kind: &str, priority: &str, what: &str) -> AlarmMark {
        AlarmMark {
            t_h,
            kind: kind.into(),
            priority: priority.into(),
            what: what.into(),
        }
    }

    fn run(days: f64, constant_rate: bool) -> RunResult {
        let end = days * 24.0;
        let n = (end as usize).max(1);
        RunResult {
            scenario: "baclofen-refill <late>".into(),
            description: "Baclofen 200 mcg/day, refill two days late & low-reservoir alarm".into(),
            duration_h: end,
            samples: (0..=n).map(|i| sample(i as f64, constant_rate)).collect(),
            alarms: vec![
                alarm(end * 0.6, "LowReservoir", "Medium", "raised"),
                alarm(end * 0.6, "LowReservoir", "Medium", "tone"),
                alarm(end * 0.65, "LowReservoir", "Medium", "tone"),
                alarm(end * 0.7, "LowReservoir", "Medium", "cleared"),
                alarm(end * 0.8, "EmptyReservoir", "High", "raised"),
                alarm(end * 0.8, "EmptyReservoir", "High", "tone"),
                alarm(end * 0.1, "StoppedReminder", "Low", "raised"),
                alarm(end * 0.2, "StoppedReminder", "Low", "cleared"),
                alarm(end * 0.9, "LowReservoir", "Medium", "raised"),
            ],
            notes: vec![Note {
                t_h: end * 0.7,
                text: "refill 20 mL <2000 mcg/mL>".into(),
            }],
            totals: Totals {
                drug: "baclofen".into(),
                prescribed_mcg: 200.0 * days,
                delivered_tip_mcg: 199.0 * days,
                strokes: 1234,
                pump_wakes: 5678,
                limiter_vetoes: 2,
                refills: 1,
                battery_state: if constant_rate { "none" } else { "ok" }.into(),
                ..Totals::default()
            },
            verdicts: vec![
                Verdict {
                    expectation: "alarm LowReservoir before day 30".into(),
                    passed: true,
                    detail: "raised at day 18.0".into(),
                },
                Verdict {
                    expectation: "no EmptyReservoir".into(),
                    passed: false,
                    detail: "raised at day 24.0".into(),
                },
            ],
            radio: None,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("thecal-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    const FILES: [&str; 7] = [
        "summary.json",
        "timeline.csv",
        "reservoir.svg",
        "dose.svg",
        "patient.svg",
        "alarms.svg",
        "index.html",
    ];

    #[test]
    fn writes_all_files_sim_030() {
        let dir = tmp("all");
        let r = run(30.0, false);
        let files = write(&r, &dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, FILES);
        for f in &files {
            assert!(fs::metadata(f).unwrap().len() > 100, "{}", f.display());
        }
        for svg in &files[2..6] {
            let text = fs::read_to_string(svg).unwrap();
            assert!(text.starts_with("<svg"), "{}", svg.display());
            assert!(text.contains("time (days)"), "{}", svg.display());
            assert!(!text.contains("NaN"), "{}", svg.display());
        }
        let reservoir = fs::read_to_string(dir.join("reservoir.svg")).unwrap();
        assert!(reservoir.contains("reservoir (mL)"));
        let dose = fs::read_to_string(dir.join("dose.svg")).unwrap();
        assert!(dose.contains("dose (mcg/day)"));
        let patient = fs::read_to_string(dir.join("patient.svg")).unwrap();
        assert!(patient.contains("CSF concentration (ng/mL)"));
        assert!(patient.contains("effect"));
        let alarms = fs::read_to_string(dir.join("alarms.svg")).unwrap();
        assert!(alarms.contains("LowReservoir") && alarms.contains("EmptyReservoir"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn summary_json_content_sim_030() {
        let dir = tmp("json");
        let r = run(30.0, false);
        write(&r, &dir).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        assert_eq!(v["scenario"], "baclofen-refill <late>");
        assert_eq!(v["passed"], false);
        assert_eq!(v["expectations_total"], 2);
        assert_eq!(v["expectations_passed"], 1);
        assert_eq!(v["verdicts"][1]["passed"], false);
        let alarms = v["alarms"].as_array().unwrap();
        // In order of first appearance in the list.
        assert_eq!(alarms[0]["kind"], "LowReservoir");
        assert_eq!(alarms[0]["raised"], 2);
        assert_eq!(alarms[0]["tones"], 2);
        assert_eq!(alarms[0]["first_t_h"], 720.0 * 0.6);
        assert_eq!(alarms[1]["kind"], "EmptyReservoir");
        assert_eq!(alarms[1]["priority"], "High");
        assert_eq!(alarms[2]["first_day"], 3.0);
        let t = &v["totals"];
        assert_eq!(t["drugs"][0]["drug"], "baclofen");
        assert_eq!(t["drugs"][0]["prescribed_mcg"], 6000.0);
        assert_eq!(t["drugs"][0]["delivered_tip_mcg"], 5970.0);
        assert!(
            (t["drugs"][0]["delivered_pct_of_prescribed"]
                .as_f64()
                .unwrap()
                - 99.5)
                .abs()
                < 1e-9
        );
        assert_eq!(t["limiter_vetoes"], 2);
        assert_eq!(t["refills"], 1);
        assert_eq!(t["strokes"], 1234);
        assert_eq!(t["pump_wakes"], 5678);
        assert_eq!(t["battery"]["state"], "ok");
        assert!((t["battery"]["end_pct"].as_f64().unwrap() - 70.0).abs() < 1e-9);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn timeline_csv_has_units_and_one_row_per_sample_sim_030() {
        let r = run(2.0, true);
        let csv = timeline_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), r.samples.len() + 1);
        assert!(lines[0].starts_with("time_h,reservoir_true_mL,reservoir_expected_mL"));
        // The columns added later come after the existing ones (SIM-072).
        assert!(lines[0].contains(
            "battery_pct,intended_mcg_per_day,opioid_withdrawal_risk_0_to_1,\
             clonidine_withdrawal_risk_0_to_1,opioid_tolerance_x"
        ));
        assert!(lines[0].contains("csf_ng_per_mL") && lines[0].ends_with("opioid_tolerance_x"));
        let cols = lines[0].split(',').count();
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), cols);
        }
        // NaN (no reservoir estimate, no battery) is an empty field.
        let row: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(row[0], "1");
        assert_eq!(row[2], "");
        assert_eq!(row[11], "");
        assert!(!csv.contains("NaN"));
    }

    #[test]
    fn constant_rate_pump_short_run_uses_hours_and_nulls_sim_030() {
        let dir = tmp("const");
        let r = run(2.0, true);
        write(&r, &dir).unwrap();
        let reservoir = fs::read_to_string(dir.join("reservoir.svg")).unwrap();
        assert!(reservoir.contains("time (h)"));
        assert!(reservoir.contains("constant-rate"));
        assert!(!reservoir.contains("NaN"));
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        assert!(v["totals"]["battery"]["end_pct"].is_null());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_run_does_not_panic_sim_030() {
        let dir = tmp("empty");
        let r = RunResult {
            scenario: String::new(),
            description: String::new(),
            duration_h: 0.0,
            samples: vec![],
            alarms: vec![],
            notes: vec![],
            totals: Totals::default(),
            verdicts: vec![],
            radio: None,
        };
        let files = write(&r, &dir).unwrap();
        assert_eq!(files.len(), 7);
        let s = terminal_summary(&r);
        assert!(s.contains("PASS") && s.contains("alarms    none"));
        // All-NaN samples and a NaN duration.
        let mut r = run(1.0, true);
        r.duration_h = f64::NAN;
        for s in &mut r.samples {
            s.reservoir_ml = f64::NAN;
            s.tip_mcg_per_day = f64::INFINITY;
            s.csf_ng_per_ml = f64::NAN;
            s.effect = f64::NAN;
        }
        r.alarms
            .push(alarm(f64::NAN, "MotorStall", "High", "raised"));
        write(&r, &dir).unwrap();
        let _ = terminal_summary(&r);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn index_html_shows_everything_escaped_sim_030() {
        let dir = tmp("html");
        let r = run(30.0, false);
        write(&r, &dir).unwrap();
        let h = fs::read_to_string(dir.join("index.html")).unwrap();
        for f in ["reservoir.svg", "dose.svg", "patient.svg", "alarms.svg"] {
            assert!(h.contains(&format!("<img src=\"{f}\"")), "{f}");
        }
        assert!(h.contains("baclofen-refill &lt;late&gt;"));
        assert!(h.contains("refill 20 mL &lt;2000 mcg/mL&gt;"));
        assert!(h.contains("✘ FAIL") && h.contains("✔ PASS"));
        assert!(h.contains("LowReservoir") && h.contains("limiter vetoes"));
        assert!(!h.contains("<script") && !h.contains("http://") && !h.contains("https://"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn terminal_summary_lists_verdicts_totals_alarms_sim_030() {
        let s = terminal_summary(&run(30.0, false));
        assert!(s.contains("FAIL (1/2 expectations held)"), "{s}");
        assert!(s.contains("✔ PASS  alarm LowReservoir before day 30"));
        assert!(s.contains("✘ FAIL  no EmptyReservoir — raised at day 24.0"));
        assert!(s.contains("prescribed 6000.0 mcg, delivered at tip 5970.0 mcg (99.5 %)"));
        assert!(s.contains("2 limiter vetoes, 1 refills"));
        assert!(s.contains("LowReservoir") && s.contains("first at day 18.00"));
        assert!(s.lines().count() < 20);
    }

    #[test]
    fn segments_split_at_nan_and_decimate_sim_030() {
        let pts = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0), (3.0, 3.0)];
        assert_eq!(
            segments(pts),
            vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]
        );
        let many: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, (i % 977) as f64)).collect();
        let seg = segments(many);
        assert_eq!(seg.len(), 1);
        assert!(seg[0].len() <= MAX_PLOT_POINTS);
        assert!(seg[0].iter().any(|p| p.1 == 976.0) && seg[0].iter().any(|p| p.1 == 0.0));
        assert!(seg[0].windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// Renders the plots to PNG when `THECAL_REPORT_PNG=dir` is set and `rsvg-convert`
    /// is available, for looking at them.
    #[test]
    fn render_png_when_asked_sim_030() {
        let Ok(out) = std::env::var("THECAL_REPORT_PNG") else {
            return;
        };
        let out = PathBuf::from(out);
        write(&run(30.0, false), &out.join("long")).unwrap();
        write(&run(2.0, true), &out.join("short")).unwrap();
        for sub in ["long", "short"] {
            for f in ["reservoir", "dose", "patient", "alarms"] {
                let svg = out.join(sub).join(format!("{f}.svg"));
                let png = out.join(sub).join(format!("{f}.png"));
                let st = std::process::Command::new("rsvg-convert")
                    .arg("-o")
                    .arg(&png)
                    .arg(&svg)
                    .status();
                if let Ok(st) = st {
                    assert!(st.success(), "{}", svg.display());
                }
            }
        }
    }
}
