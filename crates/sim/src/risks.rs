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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_h: f64, opioid: f64, clonidine: f64) -> Sample {
        Sample {
            t_h,
            reservoir_ml: 0.0,
            reservoir_expected_ml: 0.0,
            prescribed_mcg_per_day: 0.0,
            intended_mcg_per_day: 0.0,
            tip_mcg_per_day: 0.0,
            flow_ml_per_day: 0.0,
            csf_ng_per_ml: 0.0,
            systemic_ng_per_ml: 0.0,
            effect: 0.0,
            withdrawal_risk: 0.0,
            overdose_risk: 0.0,
            battery_pct: f64::NAN,
            opioid_withdrawal_risk: opioid,
            clonidine_withdrawal_risk: clonidine,
            opioid_tolerance: f64::NAN,
        }
    }

    #[test]
    fn peaks_and_verdicts_worked_by_hand_sim_072() {
        // Opioid: 0.2 at 12 h, 0.5 at 24 h (first flag, day 1), 0.9 at 36 h (peak,
        // day 1.5). Clonidine: 0.49 at most, never flagged.
        let samples = vec![s(12.0, 0.2, 0.1), s(24.0, 0.5, 0.49), s(36.0, 0.9, 0.3)];
        let sum = summary(&samples);
        assert_eq!(sum.opioid_withdrawal.peak, 0.9);
        assert_eq!(sum.opioid_withdrawal.peak_day, Some(1.5));
        assert_eq!(sum.opioid_withdrawal.first_flagged_day, Some(1.0));
        assert_eq!(sum.clonidine_withdrawal.peak, 0.49);
        assert_eq!(sum.clonidine_withdrawal.first_flagged_day, None);
        assert_eq!(sum.overdose.peak_day, None);
        let r = RunResult {
            scenario: "t".into(),
            description: String::new(),
            duration_h: 36.0,
            samples,
            alarms: Vec::new(),
            notes: Vec::new(),
            totals: crate::result::Totals::default(),
            verdicts: Vec::new(),
            radio: None,
        };
        let (held, detail) = verdict(&Expectation::OpioidWithdrawalFlagged, &r);
        assert!(held);
        assert_eq!(
            detail,
            "peak opioid withdrawal risk 0.90, first flagged at day 1.00"
        );
        assert!(!verdict(&Expectation::NoOpioidWithdrawal, &r).0);
        assert!(verdict(&Expectation::NoClonidineWithdrawal, &r).0);
        let (held, detail) = verdict(&Expectation::ClonidineWithdrawalFlagged, &r);
        assert!(!held);
        assert_eq!(detail, "peak clonidine withdrawal risk 0.49");
    }
}
