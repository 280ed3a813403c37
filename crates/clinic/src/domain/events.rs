//! Complications and MRI episodes (CLINIC.md §2.5, §2.7). An MRI episode cannot close
//! without its post-scan interrogation: a SynchroMed motor may stall in the scanner and
//! recover only hours later, and a pump left in telemetry mode resumes only on
//! interrogation.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, text};

/// A kind of complication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComplicationKind {
    /// Superficial or deep infection.
    Infection,
    /// CSF leak.
    CsfLeak,
    /// Catheter-tip granuloma.
    Granuloma,
    /// Withdrawal (baclofen: a medical emergency).
    Withdrawal,
    /// Overdose.
    Overdose,
    /// Pump or catheter malfunction.
    DeviceMalfunction,
}

/// A complication as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewComplication {
    /// Kind.
    pub kind: ComplicationKind,
    /// Onset date, not after today.
    pub onset: NaiveDate,
    /// What happened and what was done, 1–4000 characters.
    pub description: String,
    /// Resolution date, not before the onset.
    #[serde(default)]
    pub resolved_on: Option<NaiveDate>,
}

impl NewComplication {
    /// Checks the dates and text.
    ///
    /// # Errors
    /// The field that is wrong.
    pub fn validate(self, today: NaiveDate) -> Result<Self, FieldError> {
        if self.onset > today {
            return Err(FieldError::new(
                "onset",
                format!("must not be after today ({today})"),
            ));
        }
        if let Some(r) = self.resolved_on
            && (r < self.onset || r > today)
        {
            return Err(FieldError::new(
                "resolved_on",
                "must be between the onset and today",
            ));
        }
        Ok(NewComplication {
            description: text("description", &self.description, 1, 4000)?,
            ..self
        })
    }
}

/// A stored complication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Complication {
    /// Record id.
    pub id: i64,
    /// Patient.
    pub patient_id: i64,
    /// As recorded.
    #[serde(flatten)]
    pub details: NewComplication,
    /// Recorded by.
    pub recorded_by: String,
}

/// An alarm's priority on the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmPriority {
    /// Low (e.g. low reservoir).
    Low,
    /// High (e.g. empty reservoir, motor stall, critical battery).
    High,
}

/// An alarm the pump raised, as recorded at interrogation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewAlarm {
    /// The alarm as the pump names it, 1–100 characters.
    pub kind: String,
    /// Priority.
    pub priority: AlarmPriority,
    /// When the pump raised it; not in the future.
    pub raised_at: DateTime<Utc>,
    /// Action taken, up to 2000 characters.
    #[serde(default)]
    pub action: String,
}

impl NewAlarm {
    /// Checks the alarm.
    ///
    /// # Errors
    /// The field that is wrong.
    pub fn validate(self, now: DateTime<Utc>) -> Result<Self, FieldError> {
        if self.raised_at > now {
            return Err(FieldError::new(
                "raised_at",
                format!("must not be after now ({now})"),
            ));
        }
        Ok(NewAlarm {
            kind: text("kind", &self.kind, 1, 100)?,
            action: text("action", &self.action, 0, 2000)?,
            ..self
        })
    }
}

/// A stored alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alarm {
    /// Record id.
    pub id: i64,
    /// Implant.
    pub implant_id: i64,
    /// As recorded.
    #[serde(flatten)]
    pub details: NewAlarm,
    /// Recorded by.
    pub recorded_by: String,
    /// The acknowledgement, once given ([`crate::domain::history::acknowledge`]).
    #[serde(default)]
    pub acknowledgement: Option<crate::domain::history::Acknowledgement>,
}

/// An MRI episode as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewMri {
    /// Scan date.
    pub scan_on: NaiveDate,
    /// Field strength in tenths of a tesla (15 = 1.5 T), 2–70.
    pub field_tenths_tesla: u16,
    /// The labelling version whose conditions apply, 1–200 characters.
    pub labeling: String,
    /// Can the patient go without drug for the scan and the recovery? If not, the other
    /// route planned, 1–2000 characters.
    pub therapy_plan: String,
    /// The checklist's statements the clinician confirmed, as worded on the checklist of
    /// the pump's kind (at most 12, each 1–300 characters; none when the plan came from
    /// elsewhere).
    #[serde(default)]
    pub confirmed: Vec<String>,
}

/// The result of the post-scan check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MriClose {
    /// The pump was interrogated after the scan.
    pub post_scan_interrogation: bool,
    /// Findings (motor recovered, alarms, reservoir), 1–4000 characters.
    pub findings: String,
}

/// A stored MRI episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MriEpisode {
    /// Record id.
    pub id: i64,
    /// Implant.
    pub implant_id: i64,
    /// As planned.
    #[serde(flatten)]
    pub plan: NewMri,
    /// The post-scan check, once done.
    pub closed: Option<MriClose>,
    /// Closed by, at.
    pub closed_by: Option<String>,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl NewMri {
    /// Checks the plan.
    ///
    /// # Errors
    /// The field that is wrong.
    pub fn validate(self) -> Result<Self, FieldError> {
        if !(2..=70).contains(&self.field_tenths_tesla) {
            return Err(FieldError::new(
                "field_tenths_tesla",
                "must be 2 to 70 (tenths of a tesla; 15 = 1.5 T)",
            ));
        }
        if self.confirmed.len() > 12 {
            return Err(FieldError::new(
                "confirmed",
                "at most 12 confirmed checks (the checklist's statements)",
            ));
        }
        let confirmed = self
            .confirmed
            .iter()
            .map(|c| text("confirmed", c, 1, 300))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NewMri {
            labeling: text("labeling", &self.labeling, 1, 200)?,
            therapy_plan: text("therapy_plan", &self.therapy_plan, 1, 2000)?,
            confirmed,
            ..self
        })
    }
}

/// Closes an episode: only with the post-scan interrogation done.
///
/// # Errors
/// Closed already, or no post-scan interrogation.
pub fn close_mri(
    e: &mut MriEpisode,
    c: MriClose,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), FieldError> {
    if e.closed.is_some() {
        return Err(FieldError::new("step", "the episode is closed"));
    }
    if !c.post_scan_interrogation {
        return Err(FieldError::new(
            "post_scan_interrogation",
            "an MRI episode cannot close without the post-scan interrogation: the motor may \
             have stalled, or the pump may wait in telemetry mode until interrogated",
        ));
    }
    e.closed = Some(MriClose {
        findings: text("findings", &c.findings, 1, 4000)?,
        ..c
    });
    e.closed_by = Some(by.to_owned());
    e.closed_at = Some(at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn episode() -> MriEpisode {
        MriEpisode {
            id: 1,
            implant_id: 1,
            plan: NewMri {
                scan_on: "2026-12-03".parse().unwrap(),
                field_tenths_tesla: 15,
                labeling: "SynchroMed II 2008".into(),
                therapy_plan: "baclofen: oral bridge 10 mg tid".into(),
                confirmed: vec!["An interrogation after the scan is booked".into()],
            }
            .validate()
            .unwrap(),
            closed: None,
            closed_by: None,
            closed_at: None,
        }
    }

    #[test]
    fn mri_episode_cannot_close_without_post_scan_interrogation_clinic_030() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 18, 0, 0).unwrap();
        let mut e = episode();
        let no = MriClose {
            post_scan_interrogation: false,
            findings: "looked fine".into(),
        };
        assert_eq!(
            close_mri(&mut e, no, "rn", at).unwrap_err().field,
            "post_scan_interrogation"
        );
        let yes = MriClose {
            post_scan_interrogation: true,
            findings: "motor running, no alarms".into(),
        };
        close_mri(&mut e, yes.clone(), "rn", at).unwrap();
        assert_eq!(close_mri(&mut e, yes, "rn", at).unwrap_err().field, "step");
        let bad = NewMri {
            field_tenths_tesla: 1,
            ..episode().plan
        };
        assert_eq!(bad.validate().unwrap_err().field, "field_tenths_tesla");
        // The confirmed checks are kept as worded; an empty one or too many are refused.
        assert_eq!(episode().plan.confirmed.len(), 1);
        for confirmed in [vec![String::new()], vec!["x".to_owned(); 13]] {
            let bad = NewMri {
                confirmed,
                ..episode().plan
            };
            assert_eq!(bad.validate().unwrap_err().field, "confirmed");
        }
    }

    #[test]
    fn complication_dates_are_checked_clinic_031() {
        let today: NaiveDate = "2026-12-03".parse().unwrap();
        let c = NewComplication {
            kind: ComplicationKind::Withdrawal,
            onset: "2026-12-01".parse().unwrap(),
            description: "itch, rising tone after empty reservoir alarm".into(),
            resolved_on: Some("2026-11-30".parse().unwrap()),
        };
        assert_eq!(c.clone().validate(today).unwrap_err().field, "resolved_on");
        let ok = NewComplication {
            resolved_on: Some("2026-12-02".parse().unwrap()),
            ..c.clone()
        };
        assert!(ok.validate(today).is_ok());
        let future = NewComplication {
            onset: "2026-12-04".parse().unwrap(),
            resolved_on: None,
            ..c
        };
        assert_eq!(future.validate(today).unwrap_err().field, "onset");
    }
}
