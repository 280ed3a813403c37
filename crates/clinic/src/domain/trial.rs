//! Trial evaluation (CLINIC.md §2.1): for pain, improvement = (baseline − post) / baseline
//! on the trial's scale, positive at ≥ 50 % (refused when the baseline is 0); for
//! spasticity the response is clinician-judged. The rule used is stored with the result.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use super::records::drug;

/// The scale the trial is scored on (CLINIC.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Numeric rating scale of pain, integer 0–10.
    Nrs,
    /// Oswestry disability index, percent 0–100.
    Odi,
    /// Modified Ashworth, the mean grade × 10 over the muscles assessed (0–40); judged by the
    /// clinician.
    AshworthMeanTenths,
}

impl Scale {
    const fn max(self) -> u16 {
        match self {
            Scale::Nrs => 10,
            Scale::Odi => 100,
            Scale::AshworthMeanTenths => 40,
        }
    }
}

/// Trial route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Single-shot lumbar puncture.
    LumbarPuncture,
    /// Catheter (inpatient).
    Catheter,
    /// External-pump trial.
    ExternalPump,
}

/// A trial as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewTrial {
    /// Drug.
    pub drug: String,
    /// Route.
    pub route: Route,
    /// Doses given, e.g. ["50 mcg", "75 mcg"], 1–3 entries.
    pub doses: Vec<String>,
    /// Scale.
    pub scale: Scale,
    /// Baseline score on the scale.
    pub baseline: u16,
    /// Score after the trial.
    pub post: u16,
    /// Observation period in hours, 1–168.
    pub observed_hours: u16,
    /// Observations, up to 4000 characters.
    #[serde(default)]
    pub observations: String,
}

/// The evaluation of a trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Evaluation {
    /// The rule used.
    pub rule: String,
    /// Improvement in tenths of a percent (pain scales only).
    pub improvement_tenths: Option<i64>,
    /// The rule is met (pain scales), or `None` for a clinician-judged trial.
    pub meets_rule: Option<bool>,
    /// The recommendation in words.
    pub recommendation: String,
}

/// The physician's recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    /// Implant recommended.
    pub implant: bool,
    /// Physician.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Note.
    pub note: String,
}

/// A stored trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trial {
    /// Record id.
    pub id: i64,
    /// Patient.
    pub patient_id: i64,
    /// As recorded.
    #[serde(flatten)]
    pub details: NewTrial,
    /// Evaluation.
    pub evaluation: Evaluation,
    /// Decision, once made.
    pub decision: Option<Decision>,
}

/// Checks a trial and evaluates it.
///
/// # Errors
/// The field that is wrong.
pub fn evaluate(t: &NewTrial) -> Result<Evaluation, FieldError> {
    drug("drug", &t.drug)?;
    if t.doses.is_empty() || t.doses.len() > 3 {
        return Err(FieldError::new("doses", "give 1 to 3 doses"));
    }
    for (i, d) in t.doses.iter().enumerate() {
        super::quantity::<thecal_rx::Mass>(&format!("doses.{i}"), d)?;
    }
    if !(1..=168).contains(&t.observed_hours) {
        return Err(FieldError::new("observed_hours", "must be 1 to 168 hours"));
    }
    super::text("observations", &t.observations, 0, 4000)?;
    let max = t.scale.max();
    for (field, v) in [("baseline", t.baseline), ("post", t.post)] {
        if v > max {
            return Err(FieldError::new(
                field,
                format!("must be 0 to {max} on this scale"),
            ));
        }
    }
    if t.scale == Scale::AshworthMeanTenths {
        return Ok(Evaluation {
            rule: "clinician-judged response (spasticity)".into(),
            improvement_tenths: None,
            meets_rule: None,
            recommendation: "the physician judges the response and records the decision".into(),
        });
    }
    if t.baseline == 0 {
        return Err(FieldError::new(
            "baseline",
            "must be above 0: the 50 % rule needs a baseline to improve on",
        ));
    }
    let (b, p) = (i64::from(t.baseline), i64::from(t.post));
    let tenths = (b - p) * 1000 / b;
    // ≥ 50 % ⇔ 2 (b − p) ≥ b, in integers.
    let meets = 2 * (b - p) >= b;
    let pct = format!("{}.{} %", tenths / 10, (tenths % 10).abs());
    Ok(Evaluation {
        rule: "improvement ≥ 50 % = (baseline − post) / baseline".into(),
        improvement_tenths: Some(tenths),
        meets_rule: Some(meets),
        recommendation: if meets {
            format!("positive: {pct} improvement meets the 50 % rule; implant may be offered")
        } else {
            format!("negative: {pct} improvement is below the 50 % rule; do not implant")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(scale: Scale, baseline: u16, post: u16) -> NewTrial {
        NewTrial {
            drug: "morphine".into(),
            route: Route::LumbarPuncture,
            doses: vec!["100 mcg".into()],
            scale,
            baseline,
            post,
            observed_hours: 24,
            observations: String::new(),
        }
    }

    #[test]
    fn fifty_percent_rule_hand_worked_clinic_010() {
        // NRS 8 → 4: (8 − 4)/8 = 50.0 % → positive.
        let e = evaluate(&t(Scale::Nrs, 8, 4)).unwrap();
        assert_eq!(e.improvement_tenths, Some(500));
        assert_eq!(e.meets_rule, Some(true));
        // NRS 7 → 4: 3/7 = 42.8 % → negative.
        let e = evaluate(&t(Scale::Nrs, 7, 4)).unwrap();
        assert_eq!(e.improvement_tenths, Some(428));
        assert_eq!(e.meets_rule, Some(false));
        assert!(
            e.recommendation.starts_with("negative: 42.8 %"),
            "{}",
            e.recommendation
        );
        // ODI 60 → 20: 66.6 %.
        assert_eq!(
            evaluate(&t(Scale::Odi, 60, 20)).unwrap().improvement_tenths,
            Some(666)
        );
        // Worse after: 4 → 6 = −50 %.
        assert_eq!(
            evaluate(&t(Scale::Nrs, 4, 6)).unwrap().improvement_tenths,
            Some(-500)
        );
    }

    #[test]
    fn zero_baseline_and_out_of_scale_are_refused_clinic_010() {
        assert_eq!(
            evaluate(&t(Scale::Nrs, 0, 0)).unwrap_err().field,
            "baseline"
        );
        let e = evaluate(&t(Scale::Nrs, 11, 0)).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("baseline", "must be 0 to 10 on this scale")
        );
        let mut bad = t(Scale::Nrs, 8, 4);
        bad.doses = vec!["1 mL".into()];
        assert_eq!(evaluate(&bad).unwrap_err().field, "doses.0");
    }

    #[test]
    fn spasticity_trial_is_clinician_judged() {
        let e = evaluate(&t(Scale::AshworthMeanTenths, 30, 20)).unwrap();
        assert_eq!(e.meets_rule, None);
    }
}
