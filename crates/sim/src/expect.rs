//! Verdicts of the newer expectations (SIM-067, SIM-069): an alarm's priority, the gap
//! between two alarms, the most patient boluses in any rolling 24 hours, a band around
//! the intended tip dose, and the longest interruption of therapy. The scenario format
//! and the other verdicts are in [`crate::scenario`].

use thecal_rx::Duration;

use crate::result::RunResult;
use crate::scenario::Expectation;

fn hours(d: Duration) -> f64 {
    d.ms() as f64 / 3_600_000.0
}

/// The first time (hours) `alarm` was raised at or after `from_h`.
fn first_raised(r: &RunResult, alarm: &str, from_h: f64) -> Option<f64> {
    r.alarms
        .iter()
        .filter(|a| a.kind == alarm && a.what == "raised" && a.t_h >= from_h)
        .map(|a| a.t_h)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
}

/// The most values of `times_h` (sorted or not) in any window of `window_h` hours,
/// the window closed at its start and open at its end.
pub fn most_in_window(times_h: &[f64], window_h: f64) -> (usize, f64) {
    let mut t: Vec<f64> = times_h.iter().copied().filter(|x| x.is_finite()).collect();
    t.sort_by(f64::total_cmp);
    let (mut best, mut at, mut j) = (0, 0.0, 0);
    for i in 0..t.len() {
        while t[i] - t[j] >= window_h {
            j += 1;
        }
        if i + 1 - j > best {
            best = i + 1 - j;
            at = t[j];
        }
    }
    (best, at)
}

/// The verdict on one of this module's expectations: whether it held, what was found.
pub fn verdict(x: &Expectation, r: &RunResult) -> (bool, String) {
    match x {
        Expectation::AlarmPriority { alarm, priority } => {
            let seen: Vec<String> = r
                .alarms
                .iter()
                .filter(|a| a.kind == *alarm && a.what == "raised")
                .map(|a| a.priority.to_ascii_lowercase())
                .collect();
            match seen.first() {
                None => (false, format!("{alarm} never raised")),
                Some(_) => {
                    let held = seen.iter().all(|p| p == priority);
                    let mut kinds = seen.clone();
                    kinds.sort();
                    kinds.dedup();
                    (
                        held,
                        format!(
                            "{alarm} raised {} time(s) with priority {}",
                            seen.len(),
                            kinds.join(", ")
                        ),
                    )
                }
            }
        }
        Expectation::AlarmGap {
            alarm,
            then,
            at_least,
            at_most,
        } => {
            let Some(a) = first_raised(r, alarm, f64::NEG_INFINITY) else {
                return (false, format!("{alarm} never raised"));
            };
            let Some(b) = first_raised(r, then, a) else {
                return (
                    false,
                    format!(
                        "{alarm} raised at day {:.2}; {then} not raised after it",
                        a / 24.0
                    ),
                );
            };
            let gap = b - a;
            let held =
                at_least.is_none_or(|d| gap >= hours(d)) && at_most.is_none_or(|d| gap <= hours(d));
            (
                held,
                format!(
                    "{alarm} at day {:.2}, {then} at day {:.2}: {:.2} days apart",
                    a / 24.0,
                    b / 24.0,
                    gap / 24.0
                ),
            )
        }
        Expectation::BolusesIn24hAtMost(max) => {
            let (most, at) = most_in_window(&r.totals.patient_bolus_h, 24.0);
            (
                most as u64 <= *max,
                format!(
                    "at most {most} patient boluses in any 24 h (from day {:.2}); {} in all",
                    at / 24.0,
                    r.totals.patient_bolus_h.len()
                ),
            )
        }
        Expectation::TipDoseWithin { percent, after } => {
            let after_h = hours(*after);
            let mut worst: Option<(f64, f64)> = None;
            let mut n = 0;
            for s in r
                .samples
                .iter()
                .filter(|s| s.t_h > after_h && s.intended_mcg_per_day > 0.0)
            {
                n += 1;
                let dev =
                    (s.tip_mcg_per_day - s.intended_mcg_per_day) / s.intended_mcg_per_day * 100.0;
                if worst.is_none_or(|(w, _)| dev.abs() > w.abs()) {
                    worst = Some((dev, s.t_h));
                }
            }
            match worst {
                None => (
                    false,
                    "no sample with an intended dose in the window".into(),
                ),
                Some((dev, t)) => (
                    dev.abs() <= *percent,
                    format!(
                        "largest deviation from the intended dose {dev:+.2} % at day {:.2} ({n} samples)",
                        t / 24.0
                    ),
                ),
            }
        }
        Expectation::InterruptionAtMost {
            longer_than,
            fraction,
        } => {
            let (longest, at) = crate::scenario::longest_below(r, *fraction, 0.0);
            (
                longest <= hours(*longer_than),
                format!(
                    "longest interruption (tip below {:.0} % of the intended dose): {:.1} h ({:.1} days) from day {:.1}",
                    fraction * 100.0,
                    longest,
                    longest / 24.0,
                    at / 24.0
                ),
            )
        }
        _ => (false, "not judged here".into()),
    }
}
