//! Monte Carlo over patients and devices (SIM-032).
//!
//! [`run_population`] runs one simulation per patient in parallel (rayon, all cores),
//! generic over the function that runs one patient so that it does not depend on the
//! engine. Each patient's seed is derived from the population seed and its index
//! ([`patient_seed`]), so outcomes never depend on thread scheduling.
//! [`summarize`] reduces the outcomes to statistics and [`write()`] writes
//! `population.json`, `population.csv`, two histograms and an `index.html`.
//! [`shard`] splits a run across machines and merges the parts back (SIM-073, SIM-074).

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::plot::{FONT, Mark, header};
use crate::report::{esc, html_head};

pub mod shard;

/// What one simulated patient came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientOutcome {
    /// Patient index, 0-based.
    pub index: usize,
    /// Dose delivered at the catheter tip versus prescribed, % (positive: too much).
    pub dose_error_pct: f64,
    /// Low-reservoir alarms raised before the refill that followed them (or whatever
    /// the caller counts).
    pub alarms_before_refill: u32,
    /// Day of the elective replacement indicator: the day it came, or, if it did not
    /// within the run, the day the pump's own battery projection puts it at.
    pub eri_day: Option<f64>,
    /// Day of end of service, if reached.
    pub eos_day: Option<f64>,
    /// Limiter vetoes.
    pub vetoes: u64,
    /// Whether every expectation held.
    pub passed: bool,
}

/// The seed of patient `index` in a population seeded with `seed` (SplitMix64 of both):
/// the same whatever thread runs it, and different for every index.
pub fn patient_seed(seed: u64, index: usize) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    splitmix(seed ^ splitmix(index as u64))
}

/// Runs `n` patients in parallel on the current rayon pool (all cores by default):
/// `run_one(index, patient_seed(seed, index))` for each, with a progress bar on stderr
/// when `progress` is true. The outcomes are sorted by index.
pub fn run_population<F>(n: usize, seed: u64, progress: bool, run_one: F) -> Vec<PatientOutcome>
where
    F: Fn(usize, u64) -> PatientOutcome + Sync,
{
    run_patients(0..n, seed, progress, run_one)
}

/// [`run_population`] of the patients with the indices in `indices` only (one shard of
/// a population, [`shard::Shard::range`]): each with the seed it has in the whole
/// population, so the outcomes are the whole run's for those indices.
pub fn run_patients<F>(
    indices: std::ops::Range<usize>,
    seed: u64,
    progress: bool,
    run_one: F,
) -> Vec<PatientOutcome>
where
    F: Fn(usize, u64) -> PatientOutcome + Sync,
{
    let bar = if progress {
        let bar = ProgressBar::new(indices.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} patients (eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix("population");
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut out: Vec<PatientOutcome> = indices
        .into_par_iter()
        .map(|i| {
            let o = run_one(i, patient_seed(seed, i));
            bar.inc(1);
            o
        })
        .collect();
    bar.finish_and_clear();
    out.sort_by_key(|o| o.index);
    out
}

/// Descriptive statistics of one quantity. Non-finite values are left out; with no
/// values everything but `n` is NaN (`null` in JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Number of (finite) values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1; 0 for a single value).
    pub sd: f64,
    /// 5th percentile (linear interpolation between order statistics).
    pub p5: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Stats {
    /// Statistics of the finite values in `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stats {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Stats {
                n,
                mean: f64::NAN,
                sd: f64::NAN,
                p5: f64::NAN,
                p50: f64::NAN,
                p95: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stats {
            n,
            mean,
            sd,
            p5: percentile(&v, 5.0),
            p50: percentile(&v, 50.0),
            p95: percentile(&v, 95.0),
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Percentile `p` (0–100) of sorted, non-empty values, interpolating linearly between
/// order statistics (position `p/100 × (n − 1)`).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let pos = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The population at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationSummary {
    /// Patients.
    pub n: usize,
    /// Patients whose every expectation held.
    pub passed: usize,
    /// Share of patients that passed, 0–1.
    pub pass_share: f64,
    /// Dose error at the tip, %.
    pub dose_error: Stats,
    /// Absolute dose error at the tip, %.
    pub abs_dose_error: Stats,
    /// Low-reservoir alarms before a refill, per patient.
    pub alarms_before_refill: Stats,
    /// Day of ERI, over the patients that reached it.
    pub eri_day: Stats,
    /// Share of patients that reached ERI, 0–1.
    pub eri_share: f64,
    /// Day of end of service, over the patients that reached it.
    pub eos_day: Stats,
    /// Share of patients that reached end of service, 0–1.
    pub eos_share: f64,
    /// Limiter vetoes over all patients.
    pub vetoes_total: u64,
    /// Patients with at least one limiter veto.
    pub patients_with_vetoes: usize,
}

/// Summarizes outcomes.
pub fn summarize(outcomes: &[PatientOutcome]) -> PopulationSummary {
    let n = outcomes.len();
    let share = |k: usize| {
        if n == 0 {
            f64::NAN
        } else {
            k as f64 / n as f64
        }
    };
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let eri: Vec<f64> = outcomes.iter().filter_map(|o| o.eri_day).collect();
    let eos: Vec<f64> = outcomes.iter().filter_map(|o| o.eos_day).collect();
    PopulationSummary {
        n,
        passed,
        pass_share: share(passed),
        dose_error: Stats::of(outcomes.iter().map(|o| o.dose_error_pct)),
        abs_dose_error: Stats::of(outcomes.iter().map(|o| o.dose_error_pct.abs())),
        alarms_before_refill: Stats::of(outcomes.iter().map(|o| f64::from(o.alarms_before_refill))),
        eri_share: share(eri.len()),
        eri_day: Stats::of(eri),
        eos_share: share(eos.len()),
        eos_day: Stats::of(eos),
        vetoes_total: outcomes.iter().map(|o| o.vetoes).sum(),
        patients_with_vetoes: outcomes.iter().filter(|o| o.vetoes > 0).count(),
    }
}

/// At most this many failing patients listed in `index.html`.
const MAX_HTML_FAILURES: usize = 200;

/// Writes `population.json` (summary and outcomes), `population.csv` (one row per
/// patient), the histograms `dose_error.svg` and `eri_day.svg`, and `index.html` into
/// `dir` (created if needed); returns the paths written.
pub fn write(
    outcomes: &[PatientOutcome],
    summary: &PopulationSummary,
    dir: &Path,
) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();

    #[derive(Serialize)]
    struct File<'a> {
        summary: &'a PopulationSummary,
        outcomes: &'a [PatientOutcome],
    }
    let p = dir.join("population.json");
    let json =
        serde_json::to_string_pretty(&File { summary, outcomes }).map_err(io::Error::other)?;
    fs::write(&p, json + "\n")?;
    written.push(p);

    let p = dir.join("population.csv");
    fs::write(&p, csv(outcomes))?;
    written.push(p);

    let dose: Vec<f64> = outcomes.iter().map(|o| o.dose_error_pct).collect();
    let eri: Vec<f64> = outcomes.iter().filter_map(|o| o.eri_day).collect();
    let plots = [
        (
            "dose_error.svg",
            format!(
                "Dose error at the catheter tip ({} patients)",
                outcomes.len()
            ),
            "dose error, delivered vs prescribed (%)",
            dose,
            &summary.dose_error,
        ),
        (
            "eri_day.svg",
            format!(
                "Elective replacement indicator, reached or projected ({} of {} patients)",
                eri.len(),
                outcomes.len()
            ),
            "day of ERI, reached or projected by the pump (days)",
            eri,
            &summary.eri_day,
        ),
    ];
    for (name, title, x_desc, values, stats) in plots {
        let p = dir.join(name);
        histogram(&values, stats, &title, x_desc, &p)
            .map_err(|e| io::Error::other(format!("{}: {e}", p.display())))?;
        written.push(p);
    }

    let p = dir.join("index.html");
    fs::write(&p, index_html(outcomes, summary))?;
    written.push(p);
    Ok(written)
}

/// One row per patient; an absent day is an empty field.
fn csv(outcomes: &[PatientOutcome]) -> String {
    let mut s =
        String::from("index,dose_error_pct,alarms_before_refill,eri_day,eos_day,vetoes,passed\n");
    let num = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map(|x| x.to_string())
            .unwrap_or_default()
    };
    for o in outcomes {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            o.index,
            num(Some(o.dose_error_pct)),
            o.alarms_before_refill,
            num(o.eri_day),
            num(o.eos_day),
            o.vetoes,
            o.passed
        );
    }
    s
}

/// Histogram bins of finite values: `(lower edge, width, counts)`. Between 5 and 40
/// bins (about √n); all-equal values get one bin of width 1 around them.
fn bins(values: &[f64]) -> (f64, f64, Vec<u32>) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0, Vec::new());
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        return (lo - 0.5, 1.0, vec![v.len() as u32]);
    }
    let k = ((v.len() as f64).sqrt().ceil() as usize).clamp(5, 40);
    let width = (hi - lo) / k as f64;
    let mut counts = vec![0u32; k];
    for x in v {
        let i = (((x - lo) / width) as usize).min(k - 1);
        counts[i] += 1;
    }
    (lo, width, counts)
}

const C_BAR: RGBColor = RGBColor(31, 119, 180);
const C_P50: RGBColor = RGBColor(214, 39, 40);
const C_P5_95: RGBColor = RGBColor(255, 127, 14);

fn histogram(
    values: &[f64],
    stats: &Stats,
    title: &str,
    x_desc: &str,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let median = if stats.p50.is_finite() {
        format!("median {:.1}", stats.p50)
    } else {
        "median n/a".to_string()
    };
    let range = if stats.p5.is_finite() {
        format!("5th–95th percentile {:.1} to {:.1}", stats.p5, stats.p95)
    } else {
        "5th–95th percentile n/a".to_string()
    };
    let area = header(
        &root,
        title,
        &[
            ("patients", C_BAR, Mark::Box),
            (&median, C_P50, Mark::Line),
            (&range, C_P5_95, Mark::Line),
        ],
    )?;
    let (lo, width, counts) = bins(values);
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let x0 = lo - width * 0.5;
    let x1 = lo + width * (counts.len().max(1) as f64 + 0.5);
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, 0u32..top + top.div_ceil(10))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("patients (count)")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
        let a = lo + width * i as f64;
        let mut r = Rectangle::new([(a, 0), (a + width, c)], C_BAR.mix(0.75).filled());
        r.set_margin(0, 0, 1, 1);
        r
    }))?;
    let vline = |x: f64, c: RGBColor| {
        PathElement::new(vec![(x, 0), (x, top + top.div_ceil(10))], c.stroke_width(2))
    };
    if stats.p50.is_finite() {
        chart.draw_series([
            vline(stats.p5, C_P5_95),
            vline(stats.p95, C_P5_95),
            vline(stats.p50, C_P50),
        ])?;
    }
    if counts.is_empty() {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "no values",
            (w as i32 / 2 - 40, h as i32 / 2 - 20),
            (FONT, 20).into_font().color(&RGBColor(120, 120, 120)),
        ))?;
    }
    root.present()?;
    Ok(())
}

fn fmt(v: f64, unit: &str) -> String {
    if v.is_finite() {
        format!("{v:.2}{unit}")
    } else {
        "—".to_string()
    }
}

fn pct(share: f64) -> String {
    fmt(100.0 * share, " %")
}

fn index_html(outcomes: &[PatientOutcome], s: &PopulationSummary) -> String {
    let mut h = html_head("thecal-sim: population");
    let _ = writeln!(h, "<h1>Population: {} patients</h1>", s.n);
    let _ = writeln!(
        h,
        "<p>{} passed ({}). Files: <a href=\"population.json\">population.json</a>, \
<a href=\"population.csv\">population.csv</a>.</p>",
        s.passed,
        pct(s.pass_share)
    );
    h.push_str(
        "<h2>Summary</h2>\n<table>\n<tr><th>quantity</th><th>n</th><th>mean</th><th>sd</th>\
<th>5th pct</th><th>median</th><th>95th pct</th><th>min</th><th>max</th></tr>\n",
    );
    for (name, st) in [
        ("dose error at the tip (%)", &s.dose_error),
        ("absolute dose error (%)", &s.abs_dose_error),
        (
            "low-reservoir alarms before refill",
            &s.alarms_before_refill,
        ),
        ("day of ERI", &s.eri_day),
        ("day of end of service", &s.eos_day),
    ] {
        let _ = write!(
            h,
            "<tr><th>{}</th><td class=\"num\">{}</td>",
            esc(name),
            st.n
        );
        for v in [st.mean, st.sd, st.p5, st.p50, st.p95, st.min, st.max] {
            let _ = write!(h, "<td class=\"num\">{}</td>", fmt(v, ""));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<table>\n");
    for (k, v) in [
        ("reached ERI", pct(s.eri_share)),
        ("reached end of service", pct(s.eos_share)),
        ("limiter vetoes, total", s.vetoes_total.to_string()),
        ("patients with a veto", s.patients_with_vetoes.to_string()),
    ] {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
            esc(k),
            esc(&v)
        );
    }
    h.push_str("</table>\n<h2>Histograms</h2>\n");
    h.push_str("<p><img src=\"dose_error.svg\" alt=\"histogram of dose error\"></p>\n");
    h.push_str("<p><img src=\"eri_day.svg\" alt=\"histogram of the day of ERI\"></p>\n");
    let failed: Vec<&PatientOutcome> = outcomes.iter().filter(|o| !o.passed).collect();
    let _ = writeln!(h, "<h2>Patients that failed ({})</h2>", failed.len());
    if failed.is_empty() {
        h.push_str("<p class=\"pass\">None.</p>\n");
    } else {
        h.push_str(
            "<table>\n<tr><th>patient</th><th>dose error</th><th>alarms before refill</th>\
<th>ERI day</th><th>EOS day</th><th>vetoes</th></tr>\n",
        );
        for o in failed.iter().take(MAX_HTML_FAILURES) {
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                o.index,
                fmt(o.dose_error_pct, " %"),
                o.alarms_before_refill,
                fmt(o.eri_day.unwrap_or(f64::NAN), ""),
                fmt(o.eos_day.unwrap_or(f64::NAN), ""),
                o.vetoes
            );
        }
        h.push_str("</table>\n");
        if failed.len() > MAX_HTML_FAILURES {
            let _ = writeln!(
                h,
                "<p class=\"muted\">… and {} more in population.csv.</p>",
                failed.len() - MAX_HTML_FAILURES
            );
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn outcome(
        index: usize,
        dose: f64,
        eri: Option<f64>,
        vetoes: u64,
        passed: bool,
    ) -> PatientOutcome {
        PatientOutcome {
            index,
            dose_error_pct: dose,
            alarms_before_refill: index as u32 % 3,
            eri_day: eri,
            eos_day: None,
            vetoes,
            passed,
        }
    }

    /// A stand-in for the engine: random from the patient's seed, with uneven work so
    /// threads finish out of order.
    fn fake_run(index: usize, seed: u64) -> PatientOutcome {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut acc = 0.0f64;
        for _ in 0..rng.random_range(0..20_000) {
            acc += rng.random::<f64>();
        }
        PatientOutcome {
            index,
            dose_error_pct: rng.random_range(-5.0..5.0) + acc * 0.0,
            alarms_before_refill: rng.random_range(0..4),
            eri_day: rng
                .random_bool(0.7)
                .then(|| rng.random_range(2000.0..2600.0)),
            eos_day: None,
            vetoes: rng.random_range(0..2),
            passed: rng.random_bool(0.9),
        }
    }

    fn in_pool(threads: usize, n: usize, seed: u64) -> Vec<PatientOutcome> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run_population(n, seed, false, fake_run))
    }

    #[test]
    fn same_seed_same_outcomes_whatever_the_threads_sim_032() {
        let one = in_pool(1, 64, 42);
        let two = in_pool(2, 64, 42);
        assert_eq!(one, two);
        assert_eq!(one.len(), 64);
        assert!(one.iter().enumerate().all(|(i, o)| o.index == i));
        // Each patient got its own seed.
        assert!(
            one.windows(2)
                .any(|w| w[0].dose_error_pct != w[1].dose_error_pct)
        );
        // Another seed, other patients.
        assert_ne!(in_pool(2, 64, 43), one);
        // Patient seeds are distinct and do not depend on n.
        let seeds: std::collections::BTreeSet<u64> =
            (0..1000).map(|i| patient_seed(7, i)).collect();
        assert_eq!(seeds.len(), 1000);
        assert_eq!(in_pool(2, 10, 42)[..], one[..10]);
    }

    #[test]
    fn a_shard_runs_its_patients_as_the_whole_run_does_sim_073() {
        let whole = in_pool(2, 23, 5);
        let mut joined = Vec::new();
        for k in 1..=4 {
            let range = shard::Shard::new(k, 4).unwrap().range(23);
            let part = run_patients(range.clone(), 5, false, fake_run);
            assert_eq!(part, whole[range]);
            joined.extend(part);
        }
        assert_eq!(joined, whole);
    }

    #[test]
    fn run_population_with_progress_and_zero_patients_sim_032() {
        assert!(run_population(0, 1, true, fake_run).is_empty());
        assert_eq!(run_population(3, 1, true, fake_run).len(), 3);
    }

    #[test]
    fn statistics_of_a_hand_made_list_sim_032() {
        // Dose errors 1..=5 %, ERI on days 100, 200 for two of five.
        let list = vec![
            outcome(0, 3.0, None, 0, true),
            outcome(1, 1.0, Some(200.0), 2, true),
            outcome(2, -5.0, None, 0, false),
            outcome(3, 2.0, Some(100.0), 1, true),
            outcome(4, 4.0, None, 0, true),
        ];
        let s = summarize(&list);
        assert_eq!(s.n, 5);
        assert_eq!(s.passed, 4);
        assert!((s.pass_share - 0.8).abs() < 1e-12);
        // mean 1, deviations 2,0,-6,1,3 → squares 4+0+36+1+9 = 50, / 4 = 12.5.
        let d = &s.dose_error;
        assert_eq!(d.n, 5);
        assert!((d.mean - 1.0).abs() < 1e-12);
        assert!((d.sd - 12.5f64.sqrt()).abs() < 1e-12);
        // Sorted −5, 1, 2, 3, 4: median 2; p5 at position 0.2 → −5 + 0.2 × 6 = −3.8;
        // p95 at position 3.8 → 3 + 0.8 × 1 = 3.8.
        assert_eq!(d.p50, 2.0);
        assert!((d.p5 + 3.8).abs() < 1e-12);
        assert!((d.p95 - 3.8).abs() < 1e-12);
        assert_eq!((d.min, d.max), (-5.0, 4.0));
        assert!((s.abs_dose_error.mean - 3.0).abs() < 1e-12);
        // ERI: two of five.
        assert_eq!(s.eri_day.n, 2);
        assert_eq!(s.eri_day.mean, 150.0);
        assert_eq!(s.eri_day.p50, 150.0);
        assert!((s.eri_day.sd - 5000.0f64.sqrt()).abs() < 1e-9);
        assert!((s.eri_share - 0.4).abs() < 1e-12);
        assert_eq!(s.eos_day.n, 0);
        assert!(s.eos_day.mean.is_nan());
        assert_eq!(s.eos_share, 0.0);
        assert_eq!(s.vetoes_total, 3);
        assert_eq!(s.patients_with_vetoes, 2);
        // alarms_before_refill = index % 3: 0,1,2,0,1 → mean 0.8.
        assert!((s.alarms_before_refill.mean - 0.8).abs() < 1e-12);
    }

    #[test]
    fn stats_edge_cases_sim_032() {
        let one = Stats::of([7.0]);
        assert_eq!(
            (one.n, one.mean, one.sd, one.p5, one.p95),
            (1, 7.0, 0.0, 7.0, 7.0)
        );
        let nan = Stats::of([f64::NAN, 1.0, f64::INFINITY, 3.0]);
        assert_eq!((nan.n, nan.mean, nan.p50), (2, 2.0, 2.0));
        let s = summarize(&[]);
        assert_eq!(s.n, 0);
        assert!(s.pass_share.is_nan() && s.dose_error.mean.is_nan());
    }

    #[test]
    fn bins_count_every_value_sim_032() {
        let v: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let (lo, w, c) = bins(&v);
        assert_eq!(c.len(), 10);
        assert_eq!(c.iter().sum::<u32>(), 100);
        assert_eq!((lo, w), (0.0, 9.9));
        assert_eq!(bins(&[3.0, 3.0]).2, vec![2]);
        assert!(bins(&[f64::NAN]).2.is_empty());
    }

    #[test]
    fn write_population_files_sim_032() {
        let dir = std::env::temp_dir().join(format!("thecal-population-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let outcomes = run_population(200, 9, false, fake_run);
        let summary = summarize(&outcomes);
        let files = write(&outcomes, &summary, &dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "population.json",
                "population.csv",
                "dose_error.svg",
                "eri_day.svg",
                "index.html"
            ]
        );
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("population.json")).unwrap())
                .unwrap();
        assert_eq!(json["summary"]["n"], 200);
        assert_eq!(json["outcomes"].as_array().unwrap().len(), 200);
        assert!(json["summary"]["eos_day"]["mean"].is_null());
        let csv = fs::read_to_string(dir.join("population.csv")).unwrap();
        assert_eq!(csv.lines().count(), 201);
        assert!(csv.starts_with("index,dose_error_pct,"));
        let svg = fs::read_to_string(dir.join("dose_error.svg")).unwrap();
        assert!(svg.contains("dose error, delivered vs prescribed (%)"));
        assert!(svg.contains("patients (count)"));
        let svg = fs::read_to_string(dir.join("eri_day.svg")).unwrap();
        assert!(svg.contains("day of ERI, reached or projected by the pump (days)"));
        let html = fs::read_to_string(dir.join("index.html")).unwrap();
        assert!(
            html.contains("<img src=\"dose_error.svg\"")
                && html.contains("<img src=\"eri_day.svg\"")
        );
        assert!(!html.contains("<script"));
        // Nobody reached ERI, nobody at all: still writes.
        write(&[], &summarize(&[]), &dir).unwrap();
        if let Ok(out) = std::env::var("THECAL_REPORT_PNG") {
            let out = Path::new(&out).join("population");
            write(&outcomes, &summary, &out).unwrap();
            for f in ["dose_error", "eri_day"] {
                let _ = std::process::Command::new("rsvg-convert")
                    .arg("-o")
                    .arg(out.join(format!("{f}.png")))
                    .arg(out.join(format!("{f}.svg")))
                    .status();
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
