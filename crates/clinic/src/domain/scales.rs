//! The trial and follow-up scales of CLINIC.md §3, stored as raw item answers with the
//! scale version and recall period; the total is computed here, never entered. Every answer
//! is checked: one out of range is refused naming the item and the allowed range.
//!
//! Totals are integers: means and percentages in tenths, rounded half up.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, text};

/// Body side of an Ashworth item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Left.
    Left,
    /// Right.
    Right,
}

/// One muscle group graded on the Modified Ashworth scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AshworthItem {
    /// Muscle group, e.g. "hip adductors", 1–100 characters.
    pub muscle: String,
    /// Side.
    pub side: Side,
    /// Grade: one of "0", "1", "1+", "2", "3", "4" (never 1.5).
    pub grade: String,
}

/// The raw answers of one scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "scale", rename_all = "snake_case")]
pub enum Answers {
    /// Modified Ashworth [MAS]: a grade per muscle and side, 1–40 items.
    ModifiedAshworth {
        /// The items graded.
        items: Vec<AshworthItem>,
    },
    /// Penn Spasm Frequency [PSFS]: frequency 0–4; severity 1–3 only when frequency > 0.
    PennSpasm {
        /// 0 none, 1 induced by stimulation, 2 < 1/h, 3 > 1/h, 4 > 10/h.
        frequency: i64,
        /// 1 mild, 2 moderate, 3 severe; required when frequency > 0, absent when 0.
        #[serde(default)]
        severity: Option<i64>,
    },
    /// NRS pain [NRS]: integer 0 (no pain) – 10 (worst imaginable).
    NrsPain {
        /// The rating.
        score: i64,
    },
    /// Oswestry disability index [ODI]: 10 sections, each 0–5 or unanswered (null).
    Odi {
        /// The ten sections in order; null for an unanswered section.
        sections: Vec<Option<i64>>,
    },
    /// Brief Pain Inventory short form [BPI]: severity items 0–10 (24 h), relief 0–100 %
    /// in steps of 10, interference 0–10 × 7.
    BpiSf {
        /// Worst pain.
        worst: i64,
        /// Least pain.
        least: i64,
        /// Average pain.
        average: i64,
        /// Pain now.
        now: i64,
        /// Relief from treatment, percent, a multiple of 10.
        relief_percent: i64,
        /// Interference with activity, mood, walking, work, relations, sleep, enjoyment.
        interference: Vec<i64>,
    },
}

/// The computed result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Score {
    /// The total in tenths (Ashworth: mean grade × 10 with 1+ counted as 1.5; Penn: the
    /// frequency × 10; NRS: the rating × 10; ODI: percent × 10; BPI: mean severity × 10).
    pub total_tenths: i64,
    /// The total in words, with its unit.
    pub summary: String,
    /// Second score where the scale has one (Penn severity × 10, BPI mean interference
    /// × 10).
    pub secondary_tenths: Option<i64>,
    /// Band where the scale defines one (ODI: minimal, moderate, severe, crippled,
    /// bed-bound or exaggerating).
    pub band: Option<String>,
    /// Items answered.
    pub answered: usize,
}

/// An assessment as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewAssessment {
    /// When the answers were taken; not in the future.
    pub taken_at: DateTime<Utc>,
    /// Why: e.g. "trial baseline", "follow-up", 1–100 characters.
    pub context: String,
    /// Version of the scale's form, 1–100 characters.
    pub scale_version: String,
    /// Recall period, e.g. "24 h", "now", "past week", 1–50 characters.
    pub recall_period: String,
    /// The raw answers.
    pub answers: Answers,
}

/// A stored assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assessment {
    /// Record id.
    pub id: i64,
    /// Patient.
    pub patient_id: i64,
    /// As entered.
    #[serde(flatten)]
    pub details: NewAssessment,
    /// Computed from the answers.
    pub score: Score,
    /// Recorded by.
    pub recorded_by: String,
}

fn range(field: &str, v: i64, lo: i64, hi: i64) -> Result<i64, FieldError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(FieldError::new(
            field,
            format!("must be a whole number from {lo} to {hi} (got {v})"),
        ))
    }
}

/// `num / den` rounded half up, for non-negative values.
fn div_round(num: i64, den: i64) -> i64 {
    if den == 0 {
        0
    } else {
        (2 * num + den) / (2 * den)
    }
}

/// An Ashworth grade in tenths: "1+" is 15.
fn ashworth_tenths(field: &str, g: &str) -> Result<i64, FieldError> {
    match g.trim() {
        "0" => Ok(0),
        "1" => Ok(10),
        "1+" => Ok(15),
        "2" => Ok(20),
        "3" => Ok(30),
        "4" => Ok(40),
        other => Err(FieldError::new(
            field,
            format!("must be one of 0, 1, 1+, 2, 3, 4 (got \"{other}\"; never 1.5)"),
        )),
    }
}

fn odi_band(percent: i64) -> &'static str {
    match percent {
        ..=20 => "minimal",
        21..=40 => "moderate",
        41..=60 => "severe",
        61..=80 => "crippled",
        _ => "bed-bound or exaggerating",
    }
}

/// Checks every answer and computes the score.
///
/// # Errors
/// The first item out of range (`answers.…`), naming the allowed range.
pub fn score(a: &Answers) -> Result<Score, FieldError> {
    match a {
        Answers::ModifiedAshworth { items } => {
            if items.is_empty() || items.len() > 40 {
                return Err(FieldError::new(
                    "answers.items",
                    "must grade 1 to 40 muscle groups",
                ));
            }
            let mut sum = 0i64;
            for (i, it) in items.iter().enumerate() {
                text(&format!("answers.items[{i}].muscle"), &it.muscle, 1, 100)?;
                sum += ashworth_tenths(&format!("answers.items[{i}].grade"), &it.grade)?;
            }
            let n = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let mean = div_round(sum, n);
            Ok(Score {
                total_tenths: mean,
                summary: format!(
                    "mean Modified Ashworth {}.{} over {} muscle groups",
                    mean / 10,
                    mean % 10,
                    items.len()
                ),
                secondary_tenths: None,
                band: None,
                answered: items.len(),
            })
        }
        Answers::PennSpasm {
            frequency,
            severity,
        } => {
            let f = range("answers.frequency", *frequency, 0, 4)?;
            let s = match (f, severity) {
                (0, None) => None,
                (0, Some(_)) => {
                    return Err(FieldError::new(
                        "answers.severity",
                        "must be absent when the frequency is 0 (no spasms)",
                    ));
                }
                (_, None) => {
                    return Err(FieldError::new(
                        "answers.severity",
                        "is required when the frequency is above 0: 1 mild, 2 moderate, 3 severe",
                    ));
                }
                (_, Some(s)) => Some(range("answers.severity", *s, 1, 3)?),
            };
            Ok(Score {
                total_tenths: f * 10,
                summary: match s {
                    Some(s) => format!("Penn spasm frequency {f}, severity {s}"),
                    None => "Penn spasm frequency 0 (no spasms)".to_owned(),
                },
                secondary_tenths: s.map(|s| s * 10),
                band: None,
                answered: 1 + usize::from(s.is_some()),
            })
        }
        Answers::NrsPain { score } => {
            let s = range("answers.score", *score, 0, 10)?;
            Ok(Score {
                total_tenths: s * 10,
                summary: format!("NRS pain {s}/10"),
                secondary_tenths: None,
                band: None,
                answered: 1,
            })
        }
        Answers::Odi { sections } => {
            if sections.len() != 10 {
                return Err(FieldError::new(
                    "answers.sections",
                    format!(
                        "must list the 10 sections in order (null for one not answered); got {}",
                        sections.len()
                    ),
                ));
            }
            let mut sum = 0i64;
            let mut answered = 0i64;
            for (i, s) in sections.iter().enumerate() {
                if let Some(v) = s {
                    sum += range(&format!("answers.sections[{i}]"), *v, 0, 5)?;
                    answered += 1;
                }
            }
            if answered == 0 {
                return Err(FieldError::new(
                    "answers.sections",
                    "at least one section must be answered",
                ));
            }
            // sum ÷ (5 × answered) × 100, in tenths of a percent.
            let tenths = div_round(sum * 1000, 5 * answered);
            let percent = div_round(tenths, 10);
            Ok(Score {
                total_tenths: tenths,
                summary: format!(
                    "ODI {}.{} % ({sum} of {} over {answered} sections)",
                    tenths / 10,
                    tenths % 10,
                    5 * answered
                ),
                secondary_tenths: None,
                band: Some(odi_band(percent).to_owned()),
                answered: usize::try_from(answered).unwrap_or(0),
            })
        }
        Answers::BpiSf {
            worst,
            least,
            average,
            now,
            relief_percent,
            interference,
        } => {
            let mut sev = 0i64;
            for (f, v) in [
                ("answers.worst", worst),
                ("answers.least", least),
                ("answers.average", average),
                ("answers.now", now),
            ] {
                sev += range(f, *v, 0, 10)?;
            }
            let r = range("answers.relief_percent", *relief_percent, 0, 100)?;
            if r % 10 != 0 {
                return Err(FieldError::new(
                    "answers.relief_percent",
                    format!("must be 0 to 100 in steps of 10 (got {r})"),
                ));
            }
            if interference.len() != 7 {
                return Err(FieldError::new(
                    "answers.interference",
                    format!(
                        "must hold 7 items (activity, mood, walking, work, relations, sleep, \
                         enjoyment); got {}",
                        interference.len()
                    ),
                ));
            }
            let mut inter = 0i64;
            for (i, v) in interference.iter().enumerate() {
                inter += range(&format!("answers.interference[{i}]"), *v, 0, 10)?;
            }
            let severity = div_round(sev * 10, 4);
            let interference = div_round(inter * 10, 7);
            Ok(Score {
                total_tenths: severity,
                summary: format!(
                    "BPI severity {}.{}, interference {}.{}, relief {r} %",
                    severity / 10,
                    severity % 10,
                    interference / 10,
                    interference % 10
                ),
                secondary_tenths: Some(interference),
                band: None,
                answered: 12,
            })
        }
    }
}

impl NewAssessment {
    /// Checks the record and computes the score.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn validate(self, now: DateTime<Utc>) -> Result<(NewAssessment, Score), FieldError> {
        if self.taken_at > now {
            return Err(FieldError::new(
                "taken_at",
                format!("must not be after now ({now})"),
            ));
        }
        let s = score(&self.answers)?;
        Ok((
            NewAssessment {
                context: text("context", &self.context, 1, 100)?,
                scale_version: text("scale_version", &self.scale_version, 1, 100)?,
                recall_period: text("recall_period", &self.recall_period, 1, 50)?,
                ..self
            },
            s,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mas(grades: &[&str]) -> Answers {
        Answers::ModifiedAshworth {
            items: grades
                .iter()
                .map(|g| AshworthItem {
                    muscle: "hip adductors".into(),
                    side: Side::Left,
                    grade: (*g).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn ashworth_mean_counts_1_plus_as_one_and_a_half_clinic_064() {
        // (1+ + 2 + 3 + 0) = 1.5 + 2 + 3 + 0 = 6.5; / 4 = 1.625 → 1.6 (16 tenths).
        let s = score(&mas(&["1+", "2", "3", "0"])).unwrap();
        assert_eq!(s.total_tenths, 16);
        assert_eq!(s.summary, "mean Modified Ashworth 1.6 over 4 muscle groups");
        // 1 + 2 + 2 = 5 / 3 = 1.666… → 1.7.
        assert_eq!(score(&mas(&["1", "2", "2"])).unwrap().total_tenths, 17);
        let e = score(&mas(&["1", "1.5"])).unwrap_err();
        assert_eq!(e.field, "answers.items[1].grade");
        assert!(e.message.contains("0, 1, 1+, 2, 3, 4"), "{}", e.message);
        assert_eq!(score(&mas(&[])).unwrap_err().field, "answers.items");
    }

    #[test]
    fn penn_severity_only_with_spasms_clinic_064() {
        let p = |f, s| Answers::PennSpasm {
            frequency: f,
            severity: s,
        };
        let s = score(&p(3, Some(2))).unwrap();
        assert_eq!((s.total_tenths, s.secondary_tenths), (30, Some(20)));
        assert_eq!(score(&p(0, None)).unwrap().total_tenths, 0);
        assert_eq!(score(&p(0, Some(1))).unwrap_err().field, "answers.severity");
        assert_eq!(score(&p(2, None)).unwrap_err().field, "answers.severity");
        let e = score(&p(5, Some(1))).unwrap_err();
        assert_eq!(e.field, "answers.frequency");
        assert_eq!(e.message, "must be a whole number from 0 to 4 (got 5)");
        assert_eq!(
            score(&p(1, Some(4))).unwrap_err().message,
            "must be a whole number from 1 to 3 (got 4)"
        );
    }

    #[test]
    fn nrs_is_0_to_10_clinic_064() {
        assert_eq!(
            score(&Answers::NrsPain { score: 7 }).unwrap().total_tenths,
            70
        );
        let e = score(&Answers::NrsPain { score: 11 }).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (
                "answers.score",
                "must be a whole number from 0 to 10 (got 11)"
            )
        );
        assert!(score(&Answers::NrsPain { score: -1 }).is_err());
    }

    #[test]
    fn odi_divides_by_the_sections_answered_clinic_064() {
        // 9 sections answered, sum 20: 20 / 45 × 100 = 44.44 % → 44.4 %, severe.
        let mut sections = vec![Some(2); 9];
        sections[0] = Some(4);
        sections[1] = Some(0);
        // 4 + 0 + 7 × 2 = 18; make it 20.
        sections[2] = Some(4);
        sections.push(None);
        let s = score(&Answers::Odi { sections }).unwrap();
        assert_eq!(s.total_tenths, 444);
        assert_eq!(s.band.as_deref(), Some("severe"));
        assert_eq!(s.answered, 9);
        // All ten at 1: 10 / 50 = 20 % → minimal (0–20).
        let s = score(&Answers::Odi {
            sections: vec![Some(1); 10],
        })
        .unwrap();
        assert_eq!((s.total_tenths, s.band.as_deref()), (200, Some("minimal")));
        let e = score(&Answers::Odi {
            sections: vec![Some(6); 10],
        })
        .unwrap_err();
        assert_eq!(e.field, "answers.sections[0]");
        assert!(
            score(&Answers::Odi {
                sections: vec![None; 10]
            })
            .is_err()
        );
        assert_eq!(
            score(&Answers::Odi {
                sections: vec![Some(1); 9]
            })
            .unwrap_err()
            .field,
            "answers.sections"
        );
    }

    #[test]
    fn bpi_means_severity_and_interference_clinic_064() {
        let b = |relief, inter: Vec<i64>| Answers::BpiSf {
            worst: 8,
            least: 3,
            average: 5,
            now: 4,
            relief_percent: relief,
            interference: inter,
        };
        // Severity (8 + 3 + 5 + 4) / 4 = 5.0; interference 30 / 7 = 4.29 → 4.3.
        let s = score(&b(40, vec![5, 4, 6, 3, 4, 5, 3])).unwrap();
        assert_eq!((s.total_tenths, s.secondary_tenths), (50, Some(43)));
        assert_eq!(
            score(&b(45, vec![0; 7])).unwrap_err().field,
            "answers.relief_percent"
        );
        assert_eq!(
            score(&b(40, vec![0; 6])).unwrap_err().field,
            "answers.interference"
        );
        assert_eq!(
            score(&b(40, vec![0, 0, 11, 0, 0, 0, 0])).unwrap_err().field,
            "answers.interference[2]"
        );
    }
}
