//! The clinic's records as they arrive (`New…`, checked by `validate`) and as they are
//! stored. Quantities arrive in clinical units ("20 mL", "2000 mcg/mL") and are kept as
//! thecal-rx's canonical integers; the stored record also keeps the printed form.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thecal_rx::{Volume, drug::DrugId};
use utoipa::ToSchema;

use super::{FieldError, quantity, text};

/// Where a patient is in the clinic's journey (CLINIC.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JourneyState {
    /// Referred, not yet accepted.
    Referred,
    /// Being screened.
    Screening,
    /// In a trial.
    Trial,
    /// Trial positive.
    Positive,
    /// Trial negative.
    Negative,
    /// Implant planned.
    ImplantPlanned,
    /// Implanted, being titrated.
    Titration,
    /// Implanted, maintenance refills.
    Maintenance,
    /// Pump being explanted.
    Explant,
    /// Care closed.
    Closed,
    /// Deceased (closes any state).
    Deceased,
}

impl JourneyState {
    /// The states reachable from this one (CLINIC.md §1); `Deceased` is reachable from any
    /// open state.
    pub fn next(self) -> &'static [JourneyState] {
        use JourneyState::*;
        match self {
            Referred => &[Screening, Closed, Deceased],
            Screening => &[Trial, Closed, Deceased],
            Trial => &[Positive, Negative, Trial, Deceased],
            Positive => &[ImplantPlanned, Closed, Deceased],
            Negative => &[Trial, Closed, Deceased],
            ImplantPlanned => &[Titration, Closed, Deceased],
            Titration => &[Maintenance, Explant, Deceased],
            Maintenance => &[Titration, Explant, Deceased],
            Explant => &[Closed, Deceased],
            Closed | Deceased => &[],
        }
    }

    /// Checks a transition.
    ///
    /// # Errors
    /// Names the allowed next states.
    pub fn transition(self, to: JourneyState) -> Result<JourneyState, FieldError> {
        if self.next().contains(&to) {
            Ok(to)
        } else {
            let allowed: Vec<String> = self
                .next()
                .iter()
                .map(|s| format!("{s:?}").to_lowercase())
                .collect();
            Err(FieldError::new(
                "state",
                format!(
                    "cannot move from {self:?} to {to:?}; allowed: {}",
                    if allowed.is_empty() {
                        "none (the record is closed)".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )
                .to_lowercase(),
            ))
        }
    }
}

/// Where spasticity comes from (it sets the titration rule, CLINIC.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpasticityOrigin {
    /// Spinal (spinal cord injury, multiple sclerosis).
    Spinal,
    /// Cerebral (cerebral palsy, brain injury).
    Cerebral,
}

/// The kind of pain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PainType {
    /// Cancer-related pain.
    Cancer,
    /// Chronic non-cancer pain (psychology review and opioid reduction first).
    NonCancer,
}

/// What the pump treats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// Severe spasticity.
    Spasticity {
        /// Its origin.
        origin: SpasticityOrigin,
    },
    /// Chronic pain.
    Pain {
        /// Its type.
        #[serde(rename = "type")]
        pain_type: PainType,
    },
}

/// A patient as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewPatient {
    /// The clinic's record number (unique), 1–64 characters.
    pub mrn: String,
    /// Full name, 1–200 characters.
    pub name: String,
    /// Date of birth (YYYY-MM-DD), not in the future.
    pub date_of_birth: NaiveDate,
    /// What the pump treats.
    pub condition: Condition,
    /// Weight in whole kilograms, 1–400.
    #[serde(default)]
    pub weight_kg: Option<u16>,
    /// Allergies, free text up to 2000 characters.
    #[serde(default)]
    pub allergies: String,
    /// Contacts, free text up to 2000 characters.
    #[serde(default)]
    pub contacts: String,
}

impl NewPatient {
    /// Checks every field.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn validate(self, today: NaiveDate) -> Result<NewPatient, FieldError> {
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
        if self.date_of_birth > today || self.date_of_birth < earliest {
            return Err(FieldError::new(
                "date_of_birth",
                format!("must be between 1900-01-01 and today ({today})"),
            ));
        }
        if let Some(w) = self.weight_kg
            && !(1..=400).contains(&w)
        {
            return Err(FieldError::new(
                "weight_kg",
                "must be a whole number of kilograms from 1 to 400",
            ));
        }
        Ok(NewPatient {
            mrn: text("mrn", &self.mrn, 1, 64)?,
            name: text("name", &self.name, 1, 200)?,
            allergies: text("allergies", &self.allergies, 0, 2000)?,
            contacts: text("contacts", &self.contacts, 0, 2000)?,
            ..self
        })
    }
}

/// A stored patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Patient {
    /// Record id.
    pub id: i64,
    /// Journey state.
    pub state: JourneyState,
    /// The details as entered.
    #[serde(flatten)]
    pub details: NewPatient,
}

/// Pump pocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pocket {
    /// Under the fascia (fewer infections in children).
    Subfascial,
    /// Under the skin.
    Subcutaneous,
}

/// An implant as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewImplant {
    /// Pump maker and model, 1–100 characters.
    pub pump_model: String,
    /// Pump serial number (unique), 1–64 characters.
    pub serial: String,
    /// UDI, up to 200 characters.
    #[serde(default)]
    pub udi: String,
    /// Reservoir capacity, e.g. "20 mL" or "40 mL".
    pub reservoir: String,
    /// Implant date.
    pub implanted_on: NaiveDate,
    /// Pocket.
    pub pocket: Pocket,
    /// Catheter model, 1–100 characters.
    pub catheter_model: String,
    /// Catheter length after trimming, in whole centimetres 1–150.
    pub catheter_length_cm: u16,
    /// Catheter tip level, e.g. "T10", 1–20 characters.
    pub tip_level: String,
    /// The pump's labelled worst-case delivery accuracy margin in per mille (145 = 14.5 %),
    /// 0–300; the refill calendar assumes this much faster delivery.
    pub accuracy_margin_permille: u16,
    /// Low-reservoir alarm threshold, e.g. "2 mL"; below the capacity.
    pub low_alarm: String,
    /// Projected elective replacement indicator date, from the battery projection.
    #[serde(default)]
    pub eri_projected: Option<NaiveDate>,
}

/// A stored implant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Implant {
    /// Record id.
    pub id: i64,
    /// The patient.
    pub patient_id: i64,
    /// Details as entered.
    #[serde(flatten)]
    pub details: NewImplant,
    /// Capacity in nL (thecal-rx canonical).
    pub capacity_nl: u64,
    /// Low-reservoir threshold in nL.
    pub low_alarm_nl: u64,
    /// Revisions (catheter or pocket), oldest first.
    #[serde(default)]
    pub revisions: Vec<Revision>,
    /// Explant, when the pump was removed.
    #[serde(default)]
    pub explant: Option<Explant>,
}

/// A surgical revision of an implant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Revision {
    /// Date.
    pub on: NaiveDate,
    /// What was done, 1–2000 characters.
    pub what: String,
}

/// Removal of a pump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Explant {
    /// Date.
    pub on: NaiveDate,
    /// Why, 1–2000 characters.
    pub reason: String,
}

impl NewImplant {
    /// Checks every field and returns the capacity and alarm threshold.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn validate(self, today: NaiveDate) -> Result<(NewImplant, Volume, Volume), FieldError> {
        let capacity: Volume = quantity("reservoir", &self.reservoir)?;
        if capacity.is_zero() || capacity > Volume::from_ml(100) {
            return Err(FieldError::new(
                "reservoir",
                "must be above 0 mL and at most 100 mL",
            ));
        }
        let low: Volume = quantity("low_alarm", &self.low_alarm)?;
        if low >= capacity {
            return Err(FieldError::new(
                "low_alarm",
                format!("must be below the reservoir capacity {capacity}"),
            ));
        }
        if self.implanted_on > today {
            return Err(FieldError::new(
                "implanted_on",
                format!("must not be after today ({today})"),
            ));
        }
        if !(1..=150).contains(&self.catheter_length_cm) {
            return Err(FieldError::new(
                "catheter_length_cm",
                "must be a whole number of centimetres from 1 to 150",
            ));
        }
        if self.accuracy_margin_permille > 300 {
            return Err(FieldError::new(
                "accuracy_margin_permille",
                "must be 0 to 300 (per mille; 145 means 14.5 %)",
            ));
        }
        let checked = NewImplant {
            pump_model: text("pump_model", &self.pump_model, 1, 100)?,
            serial: text("serial", &self.serial, 1, 64)?,
            udi: text("udi", &self.udi, 0, 200)?,
            catheter_model: text("catheter_model", &self.catheter_model, 1, 100)?,
            tip_level: text("tip_level", &self.tip_level, 1, 20)?,
            reservoir: capacity.to_string(),
            low_alarm: low.to_string(),
            ..self
        };
        Ok((checked, capacity, low))
    }
}

/// A prescription as the physician enters it: one drug, continuous delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewPrescription {
    /// Generic drug name, e.g. "baclofen".
    pub drug: String,
    /// Concentration in the reservoir, e.g. "2000 mcg/mL".
    pub concentration: String,
    /// Daily dose of `drug` at a constant rate, e.g. "400 mcg/day"; left empty with a flex
    /// schedule.
    #[serde(default)]
    pub daily_dose: String,
    /// Volume in the reservoir after the fill, e.g. "20 mL".
    pub reservoir_volume: String,
    /// Further drugs of an admixture (`drug` is the first), up to thecal-rx's limit.
    #[serde(default)]
    pub admixture: Vec<super::regimen::AdmixturePart>,
    /// A flex schedule (steps of the day, periodic boluses) instead of a constant rate.
    #[serde(default)]
    pub flex: Option<super::regimen::FlexSchedule>,
    /// Patient-bolus settings.
    #[serde(default)]
    pub patient_bolus: Option<super::regimen::PatientBolusOrder>,
    /// The patient has not been taking opioids.
    #[serde(default)]
    pub opioid_naive: bool,
    /// Why, 1–2000 characters.
    pub reason: String,
    /// The physician's reason for accepting the soft findings (required when there are
    /// any), 1–2000 characters; the confirming physician is the one signed in.
    #[serde(default)]
    pub confirm_soft_findings: Option<String>,
}

/// Parses a drug name.
///
/// # Errors
/// Lists the drugs of the library.
pub fn drug(field: &str, name: &str) -> Result<DrugId, FieldError> {
    DrugId::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = DrugId::ALL.iter().map(|d| d.name()).collect();
        FieldError::new(
            field,
            format!("unknown drug; allowed: {}", names.join(", ")),
        )
    })
}

/// A check finding as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FindingRecord {
    /// "hard" or "soft".
    pub severity: String,
    /// thecal-rx's wording.
    pub message: String,
}

/// Who accepted the soft findings and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Confirmation {
    /// The confirming physician's user name.
    pub clinician: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored prescription version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Prescription {
    /// Record id.
    pub id: i64,
    /// The implant.
    pub implant_id: i64,
    /// Version, 1 for the first prescription of this implant.
    pub version: i64,
    /// Drug.
    pub drug: String,
    /// Concentration, printed.
    pub concentration: String,
    /// Concentration in ng/mL.
    pub concentration_ng_ml: u64,
    /// Daily dose, printed.
    pub daily_dose: String,
    /// Daily dose in ng/day.
    pub daily_dose_ng: u64,
    /// The flow thecal-rx derived, printed.
    pub flow: String,
    /// Flow in nL/day.
    pub flow_nl_day: u64,
    /// Reservoir volume after the fill, in nL.
    pub reservoir_volume_nl: u64,
    /// Opioid-naive patient.
    pub opioid_naive: bool,
    /// Reason.
    pub reason: String,
    /// Prescriber's user name.
    pub prescriber: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Findings of thecal-rx's check.
    pub findings: Vec<FindingRecord>,
    /// Confirmation of the soft findings.
    pub confirmation: Option<Confirmation>,
    /// The change against the previous version, in words.
    pub change: Vec<String>,
    /// Further drugs of the admixture.
    #[serde(default)]
    pub admixture: Vec<super::regimen::ComponentRecord>,
    /// The flex schedule as entered (none: constant rate).
    #[serde(default)]
    pub flex: Option<super::regimen::FlexSchedule>,
    /// Patient-bolus settings.
    #[serde(default)]
    pub patient_bolus: Option<super::regimen::PatientBolusRecord>,
    /// The prescription as thecal-rx checked it (contents, schedule, patient bolus,
    /// reservoir volume): the next version is checked against it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub therapy: Option<thecal_rx::check::Prescription>,
}

/// A refill-visit step (CLINIC.md §2.4), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitStep {
    /// Patient and pump identified; the pump interrogated.
    Opened,
    /// Residual aspirated and reconciled.
    Aspirated,
    /// Reservoir filled.
    Filled,
    /// Closed with the next refill date set.
    Closed,
}

/// What was put into the reservoir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fill {
    /// Added volume, e.g. "18 mL".
    pub volume_added: String,
    /// Concentration of the syringe, e.g. "2000 mcg/mL".
    pub concentration: String,
    /// Drug lot, 1–64 characters.
    pub lot: String,
    /// Expiry date, not before the visit.
    pub expiry: NaiveDate,
    /// Beyond-use date of a compounded admixture, not before the visit.
    #[serde(default)]
    pub beyond_use: Option<NaiveDate>,
    /// Bridging choice when the concentration changed: "none", "bridge bolus", …
    #[serde(default)]
    pub bridging: String,
}

/// A pharmacist's release of a compounded admixture's lot for this visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    /// The lot released.
    pub lot: String,
    /// Pharmacist.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Verification note (admixture, concentration, sterility), up to 2000 characters.
    pub note: String,
}

/// A signed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Signature {
    /// Step.
    pub step: VisitStep,
    /// User name.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored refill visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefillVisit {
    /// Record id.
    pub id: i64,
    /// The implant.
    pub implant_id: i64,
    /// The prescription in force.
    pub prescription_id: i64,
    /// The step reached.
    pub step: VisitStep,
    /// Expected residual in nL (thecal-rx, from the last fill and the prescription).
    pub expected_residual_nl: u64,
    /// Aspirated residual in nL.
    pub aspirated_nl: Option<u64>,
    /// thecal-rx's reconciliation verdict in words.
    pub reconciliation: Option<String>,
    /// Reconciliation beyond the threshold.
    pub flagged: bool,
    /// Outcome of the investigation of a flagged reconciliation.
    pub investigation: Option<String>,
    /// The fill.
    pub fill: Option<Fill>,
    /// Volume in the reservoir after the fill, nL.
    pub volume_after_nl: Option<u64>,
    /// Next refill due date.
    pub next_refill_due: Option<NaiveDate>,
    /// What limits the next refill date ("volume", "stability", "clinic").
    pub limited_by: Option<String>,
    /// Signatures of each step.
    pub signatures: Vec<Signature>,
    /// The pharmacist's release of a compounded admixture.
    #[serde(default)]
    pub pharmacist_release: Option<Release>,
    /// Why this visit was set aside rather than left open: a second open visit of the
    /// same implant found when the one-open-visit rule came in (schema migration 2). A
    /// set-aside visit is not the implant's open visit; it goes on through its steps to
    /// close like any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<String>,
    /// Opened at.
    pub opened_at: DateTime<Utc>,
    /// Closed at.
    pub closed_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn implant() -> NewImplant {
        NewImplant {
            pump_model: "SynchroMed II 8637-20".into(),
            serial: "NGP123".into(),
            udi: String::new(),
            reservoir: "20 mL".into(),
            implanted_on: day("2026-01-10"),
            pocket: Pocket::Subfascial,
            catheter_model: "8709SC".into(),
            catheter_length_cm: 60,
            tip_level: "T10".into(),
            accuracy_margin_permille: 145,
            low_alarm: "2 mL".into(),
            eri_projected: None,
        }
    }

    #[test]
    fn implant_validation_parses_capacity_and_refuses_alarm_at_capacity_clinic_002() {
        let (_, cap, low) = implant().validate(day("2026-12-01")).unwrap();
        assert_eq!(cap.nl(), 20_000_000);
        assert_eq!(low.nl(), 2_000_000);
        let mut bad = implant();
        bad.low_alarm = "20 mL".into();
        let e = bad.validate(day("2026-12-01")).unwrap_err();
        assert_eq!(e.field, "low_alarm");
        assert_eq!(e.message, "must be below the reservoir capacity 20 mL");
        let mut bad = implant();
        bad.reservoir = "20 mg".into();
        assert_eq!(
            bad.validate(day("2026-12-01")).unwrap_err().field,
            "reservoir"
        );
    }

    #[test]
    fn journey_allows_only_listed_transitions_clinic_003() {
        use JourneyState::*;
        assert_eq!(Referred.transition(Screening), Ok(Screening));
        let e = Referred.transition(Maintenance).unwrap_err();
        assert_eq!(
            e.message,
            "cannot move from referred to maintenance; allowed: screening, closed, deceased"
        );
        assert!(Closed.transition(Referred).is_err());
        for s in [Referred, Screening, Trial, Positive, Titration, Maintenance] {
            assert!(s.transition(Deceased).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn patient_date_of_birth_must_not_be_in_the_future() {
        let p = NewPatient {
            mrn: "M1".into(),
            name: "A".into(),
            date_of_birth: day("2027-01-01"),
            condition: Condition::Pain {
                pain_type: PainType::Cancer,
            },
            weight_kg: None,
            allergies: String::new(),
            contacts: String::new(),
        };
        assert_eq!(
            p.validate(day("2026-12-03")).unwrap_err().field,
            "date_of_birth"
        );
    }

    #[test]
    fn unknown_drug_lists_the_library() {
        let e = drug("drug", "aspirin").unwrap_err();
        assert!(
            e.message.starts_with("unknown drug; allowed: morphine"),
            "{}",
            e.message
        );
        assert_eq!(drug("drug", " Baclofen ").unwrap(), DrugId::Baclofen);
    }
}
