//! Trial evaluation (CLINIC.md §2.1): for pain, improvement = (baseline − post) / baseline
//! on the trial's scale, positive at ≥ 50 % (refused when the baseline is 0); for
//! spasticity the response is clinician-judged. The rule used is stored with the result.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use super::records::drug;
use super::scales::{Answers, Assessment};

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
    /// The scale's name.
    pub const fn name(self) -> &'static str {
        match self {
            Scale::Nrs => "NRS",
            Scale::Odi => "ODI",
            Scale::AshworthMeanTenths => "mean Modified Ashworth × 10",
        }
    }

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
    /// The stored scale assessment (raw answers) the baseline comes from; `baseline`
    /// must then equal its computed total on `scale`.
    #[serde(default)]
    pub baseline_assessment: Option<i64>,
    /// The stored scale assessment the post-trial score comes from, taken after the
    /// baseline one; `post` must then equal its computed total.
    #[serde(default)]
    pub post_assessment: Option<i64>,
}

/// A stored assessment's computed total on `scale`: NRS the rating, ODI the percent
/// (rounded half up), Ashworth the mean grade × 10 (1+ as 1.5).
///
/// # Errors
/// `field` when the assessment is of another scale.
pub fn score_on(scale: Scale, a: &Assessment, field: &str) -> Result<u16, FieldError> {
    let tenths = a.score.total_tenths;
    let value = match (scale, &a.details.answers) {
        (Scale::Nrs, Answers::NrsPain { .. }) | (Scale::Odi, Answers::Odi { .. }) => {
            (tenths + 5) / 10
        }
        (Scale::AshworthMeanTenths, Answers::ModifiedAshworth { .. }) => tenths,
        _ => {
            return Err(FieldError::new(
                field,
                format!(
                    "assessment {} is not on the trial's scale ({}): give an assessment of \
                     that scale",
                    a.id,
                    scale.name()
                ),
            ));
        }
    };
    u16::try_from(value)
        .map_err(|_| FieldError::new(field, "the assessment's total is out of range"))
}

/// Checks the trial's scores against the stored assessments it names (CLINIC.md §3: the
/// scores come from raw answers): each referenced assessment is the patient's, on the
/// trial's scale, and its computed total equals the score typed; the post-trial one is
/// taken after the baseline one.
///
/// # Errors
/// The field that disagrees, with the assessment's total.
pub fn check_assessments(
    t: &NewTrial,
    patient_id: i64,
    baseline: Option<&Assessment>,
    post: Option<&Assessment>,
) -> Result<(), FieldError> {
    for (field, typed, a) in [
        ("baseline_assessment", t.baseline, baseline),
        ("post_assessment", t.post, post),
    ] {
        let Some(a) = a else { continue };
        if a.patient_id != patient_id {
            return Err(FieldError::new(
                field,
                format!("assessment {} is another patient's", a.id),
            ));
        }
        let total = score_on(t.scale, a, field)?;
        if total != typed {
            let score = if field == "baseline_assessment" {
                "baseline"
            } else {
                "post"
            };
            return Err(FieldError::new(
                score,
                format!(
                    "is {typed}, but assessment {} totals {total} on {}: give {total}",
                    a.id,
                    t.scale.name()
                ),
            ));
        }
    }
    if let (Some(b), Some(p)) = (baseline, post) {
        if p.details.taken_at <= b.details.taken_at {
            return Err(FieldError::new(
                "post_assessment",
                format!(
                    "assessment {} was taken before the baseline assessment {}: the post-trial \
                     score comes after the baseline",
                    p.id, b.id
                ),
            ));
        }
    }
    Ok(())
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
            baseline_assessment: None,
            post_assessment: None,
        }
    }

    fn assessed(id: i64, patient_id: i64, day: u32, answers: Answers) -> Assessment {
        use chrono::TimeZone;
        let details = super::super::scales::NewAssessment {
            taken_at: Utc.with_ymd_and_hms(2026, 3, day, 9, 0, 0).unwrap(),
            context: "trial".into(),
            scale_version: "1".into(),
            recall_period: "now".into(),
            answers,
        };
        let score = super::super::scales::score(&details.answers).unwrap();
        Assessment {
            id,
            patient_id,
            details,
            score,
            recorded_by: "rn".into(),
        }
    }

    #[test]
    fn trial_scores_come_from_the_stored_assessments_clinic_068() {
        let base = assessed(11, 5, 1, Answers::NrsPain { score: 8 });
        let after = assessed(12, 5, 2, Answers::NrsPain { score: 4 });
        let mut trial = t(Scale::Nrs, 8, 4);
        trial.baseline_assessment = Some(11);
        trial.post_assessment = Some(12);
        assert_eq!(
            check_assessments(&trial, 5, Some(&base), Some(&after)),
            Ok(())
        );
        // A typed baseline that disagrees with the raw answers is refused with the total.
        let typo = t(Scale::Nrs, 7, 4);
        let e = check_assessments(&typo, 5, Some(&base), Some(&after)).unwrap_err();
        assert_eq!(e.field, "baseline");
        assert_eq!(e.message, "is 7, but assessment 11 totals 8 on NRS: give 8");
        // Another patient's assessment, another scale, and a post-trial score taken first.
        let e = check_assessments(&trial, 6, Some(&base), None).unwrap_err();
        assert_eq!(e.field, "baseline_assessment");
        let odi = assessed(
            13,
            5,
            1,
            Answers::Odi {
                sections: vec![Some(3); 10],
            },
        );
        let e = check_assessments(&trial, 5, Some(&odi), None).unwrap_err();
        assert!(
            e.message.contains("not on the trial's scale (NRS)"),
            "{}",
            e.message
        );
        // The scores match their assessments, but the post-trial one was taken first.
        let swapped = t(Scale::Nrs, 4, 8);
        let e = check_assessments(&swapped, 5, Some(&after), Some(&base)).unwrap_err();
        assert_eq!(e.field, "post_assessment");
        // Ashworth: grades 1+ and 2 are 15 and 20 tenths, mean 17.5 rounded half up to 18;
        // ODI: 30 of 50 points is 60 %.
        let mas = assessed(
            14,
            5,
            1,
            Answers::ModifiedAshworth {
                items: vec![
                    super::super::scales::AshworthItem {
                        muscle: "hip adductors".into(),
                        side: super::super::scales::Side::Left,
                        grade: "1+".into(),
                    },
                    super::super::scales::AshworthItem {
                        muscle: "hip adductors".into(),
                        side: super::super::scales::Side::Right,
                        grade: "2".into(),
                    },
                ],
            },
        );
        assert_eq!(score_on(Scale::AshworthMeanTenths, &mas, "x"), Ok(18));
        assert_eq!(score_on(Scale::Odi, &odi, "x"), Ok(60));
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
