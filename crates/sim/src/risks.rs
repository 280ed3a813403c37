//! The patient's risks over a run (SIM-070, SIM-071, SIM-072): the peak and first flag
//! of each risk for `summary.json`, and the verdicts of the withdrawal expectations
//! beyond baclofen (`opioid-withdrawal-flagged`, `clonidine-withdrawal-flagged` and
//! their `no-` forms). The models are in [`crate::models::patient`].

use serde::Serialize;

use crate::models::patient::FLAG_AT;
use crate::result::{RunResult, Sample};
use crate::scenario::Expectation;

/// One risk over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RiskPeak {
    /// The highest value sampled, 0 to 1.
    pub peak: f64,
    /// When it was first reached, days (`null` if the risk stayed 0).
    pub peak_day: Option<f64>,
    /// When the risk was first flagged (at least 0.5), days (`null` if never).
    pub first_flagged_day: Option<f64>,
}

/// The risks section of `summary.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RiskSummary {
    /// Baclofen withdrawal.
    pub baclofen_withdrawal: RiskPeak,
    /// Overdose (respiratory depression).
    pub overdose: RiskPeak,
    /// Opioid withdrawal (SIM-070).
    pub opioid_withdrawal: RiskPeak,
    /// Clonidine withdrawal, rebound hypertension (SIM-070).
    pub clonidine_withdrawal: RiskPeak,
}

/// The peak and first flag of `risk` over `samples`.
pub fn peak(samples: &[Sample], risk: impl Fn(&Sample) -> f64) -> RiskPeak {
    let mut p = RiskPeak::default();
    for s in samples {
        let v = risk(s);
        if v > p.peak {
            p.peak = v;
            p.peak_day = Some(s.t_h / 24.0);
        }
        if v >= FLAG_AT && p.first_flagged_day.is_none() {
            p.first_flagged_day = Some(s.t_h / 24.0);
        }
    }
    p
}

/// The risks of a run.
pub fn summary(samples: &[Sample]) -> RiskSummary {
    RiskSummary {
        baclofen_withdrawal: peak(samples, |s| s.withdrawal_risk),
        overdose: peak(samples, |s| s.overdose_risk),
        opioid_withdrawal: peak(samples, |s| s.opioid_withdrawal_risk),
        clonidine_withdrawal: peak(samples, |s| s.clonidine_withdrawal_risk),
    }
}

/// The verdict on one of this module's expectations: whether it held, what was found.
pub fn verdict(x: &Expectation, r: &RunResult) -> (bool, String) {
    let (name, want, p) = match x {
        Expectation::OpioidWithdrawalFlagged | Expectation::NoOpioidWithdrawal => (
            "opioid withdrawal",
            matches!(x, Expectation::OpioidWithdrawalFlagged),
            peak(&r.samples, |s| s.opioid_withdrawal_risk),
        ),
        Expectation::ClonidineWithdrawalFlagged | Expectation::NoClonidineWithdrawal => (
            "clonidine withdrawal",
            matches!(x, Expectation::ClonidineWithdrawalFlagged),
            peak(&r.samples, |s| s.clonidine_withdrawal_risk),
        ),
        _ => return (false, "not judged here".into()),
    };
    let detail = match p.first_flagged_day {
        Some(d) => format!(
            "peak {name} risk {:.2}, first flagged at day {d:.2}",
            p.peak
        ),
        None => format!("peak {name} risk {:.2}", p.peak),
    };
    (p.first_flagged_day.is_some() == want, detail)
}
