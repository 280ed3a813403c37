//! What a prescription version delivers beyond one drug at a constant rate (CLINIC.md
//! §2.3): an admixture of up to thecal-rx's [`MAX_DRUGS`] drugs, a flex schedule (steps of
//! the day and periodic boluses, thecal-rx's [`Schedule`]) and patient-bolus settings
//! (dose, duration, lockout, most per day). This module only reads the entered text into
//! thecal-rx's types; every check of the result is thecal-rx's [`check`](thecal_rx::check).
//!
//! Doses are entered for the first drug (the one the prescription names); the other drugs
//! of the admixture follow from their concentrations.

use serde::{Deserialize, Serialize};
use thecal_rx::check::PatientBolus;
use thecal_rx::dose::{Admixture, Component, MAX_DRUGS, flow_for_dose, volume_for_mass};
use thecal_rx::drug::DrugId;
use thecal_rx::quantity::Rounding;
use thecal_rx::schedule::{DayProfile, PeriodicBolus, Schedule, Step, Weekdays};
use thecal_rx::{Concentration, Duration, Flow, Mass, MassRate, Volume};
use utoipa::ToSchema;

use super::records::drug;
use super::{FieldError, quantity};

/// One further drug of an admixture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdmixturePart {
    /// Generic drug name.
    pub drug: String,
    /// Its concentration in the reservoir, e.g. "2 mg/mL".
    pub concentration: String,
}

/// One step of the day of a flex schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlexStep {
    /// Start, local time "HH:MM"; the first step starts at "00:00".
    pub start: String,
    /// The rate of the first drug from this step on, as a daily dose (e.g. "300 mcg/day").
    pub daily_dose: String,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A periodic (scheduled) bolus of a flex schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlexBolus {
    /// Start, local time "HH:MM".
    pub start: String,
    /// Dose of the first drug, e.g. "50 mcg".
    pub dose: String,
    /// Time it is spread over, e.g. "30 min" (more than zero, at most 24 h).
    pub duration: String,
    /// Days it is given (empty: every day).
    #[serde(default)]
    pub days: Vec<Weekday>,
}

/// A flex schedule: steps of the day and periodic boluses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlexSchedule {
    /// Steps, the first at "00:00", in increasing order.
    pub steps: Vec<FlexStep>,
    /// Periodic boluses.
    #[serde(default)]
    pub boluses: Vec<FlexBolus>,
}

/// Patient-bolus settings as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatientBolusOrder {
    /// Dose of the first drug per bolus, e.g. "25 mcg".
    pub dose: String,
    /// Time one bolus is delivered over, e.g. "10 min".
    pub duration: String,
    /// Shortest time between two boluses' starts, e.g. "2 h".
    pub lockout: String,
    /// Most boluses in any 24 h, 1–24.
    pub max_per_day: u8,
}

/// A component as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComponentRecord {
    /// Drug.
    pub drug: String,
    /// Concentration, printed.
    pub concentration: String,
    /// Concentration in ng/mL.
    pub concentration_ng_ml: u64,
}

/// Patient-bolus settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatientBolusRecord {
    /// Dose of the first drug, printed.
    pub dose: String,
    /// Volume per bolus, printed (thecal-rx, rounded to the nearest nL).
    pub volume: String,
    /// Duration.
    pub duration: String,
    /// Lockout.
    pub lockout: String,
    /// Most per day.
    pub max_per_day: u8,
}

/// The regimen read into thecal-rx's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regimen {
    /// The reservoir's contents.
    pub contents: Admixture,
    /// The schedule.
    pub schedule: Schedule,
    /// Patient bolus.
    pub patient_bolus: Option<PatientBolus>,
    /// The admixture's further drugs, as stored.
    pub components: Vec<ComponentRecord>,
    /// Patient bolus as stored.
    pub bolus_record: Option<PatientBolusRecord>,
    /// The first drug's dose on the heaviest day (basal and periodic boluses), rounded up
    /// by thecal-rx.
    pub heaviest_daily_dose: MassRate,
    /// The mean daily flow over a week.
    pub mean_flow: Flow,
}

/// "HH:MM" → minute of the day.
///
/// # Errors
/// What a time looks like.
pub fn minute_of_day(field: &str, s: &str) -> Result<u16, FieldError> {
    let bad = || FieldError::new(field, "must be a local time HH:MM from 00:00 to 23:59");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn weekdays(days: &[Weekday]) -> Weekdays {
    if days.is_empty() {
        return Weekdays::ALL;
    }
    Weekdays(days.iter().fold(0u8, |acc, d| acc | (1u8 << (*d as u8))))
}

fn volume_of(field: &str, conc: Concentration, dose: Mass) -> Result<Volume, FieldError> {
    volume_for_mass(conc, dose, Rounding::Nearest)
        .map_err(|e| FieldError::new(field, format!("no volume holds this dose: {e}")))
}

fn flow_of(field: &str, conc: Concentration, dose: MassRate) -> Result<Flow, FieldError> {
    flow_for_dose(conc, dose).map_err(|e| {
        FieldError::new(
            field,
            format!("no flow delivers this dose at this concentration: {e}"),
        )
    })
}

/// Reads the regimen of a prescription whose first drug is `first` at `conc`.
/// `daily_dose` is the constant rate when there is no flex schedule.
///
/// # Errors
/// The field that cannot be read into thecal-rx's types, with what is allowed.
pub fn read(
    first: DrugId,
    conc: Concentration,
    daily_dose: &str,
    admixture: &[AdmixturePart],
    flex: Option<&FlexSchedule>,
    bolus: Option<&PatientBolusOrder>,
) -> Result<Regimen, FieldError> {
    if admixture.len() >= MAX_DRUGS {
        return Err(FieldError::new(
            "admixture",
            format!(
                "a reservoir holds at most {MAX_DRUGS} drugs: the first drug and up to {} more",
                MAX_DRUGS - 1
            ),
        ));
    }
    let mut parts = vec![Component {
        drug: first,
        concentration: conc,
    }];
    let mut components = vec![];
    for (i, a) in admixture.iter().enumerate() {
        let d = drug(&format!("admixture[{i}].drug"), &a.drug)?;
        let c: Concentration =
            quantity(&format!("admixture[{i}].concentration"), &a.concentration)?;
        if c.is_zero() {
            return Err(FieldError::new(
                format!("admixture[{i}].concentration"),
                "must be above zero",
            ));
        }
        parts.push(Component {
            drug: d,
            concentration: c,
        });
        components.push(ComponentRecord {
            drug: d.name().to_owned(),
            concentration: c.to_string(),
            concentration_ng_ml: c.raw(),
        });
    }
    let contents =
        Admixture::new(&parts).map_err(|e| FieldError::new("admixture", e.to_string()))?;
    let mut schedule = match flex {
        None => {
            let dose: MassRate = quantity("daily_dose", daily_dose)?;
            Schedule::continuous(flow_of("daily_dose", conc, dose)?)
        }
        Some(f) => {
            if !daily_dose.trim().is_empty() {
                return Err(FieldError::new(
                    "daily_dose",
                    "must be left empty with a flex schedule: its steps give the doses",
                ));
            }
            let mut steps = vec![];
            for (i, s) in f.steps.iter().enumerate() {
                let dose: MassRate =
                    quantity(&format!("flex.steps[{i}].daily_dose"), &s.daily_dose)?;
                steps.push(Step {
                    start_minute: minute_of_day(&format!("flex.steps[{i}].start"), &s.start)?,
                    flow: flow_of(&format!("flex.steps[{i}].daily_dose"), conc, dose)?,
                });
            }
            let profile = DayProfile::new(&steps)
                .map_err(|e| FieldError::new("flex.steps", e.to_string()))?;
            let mut schedule = Schedule::daily(profile);
            for (i, b) in f.boluses.iter().enumerate() {
                let field = format!("flex.boluses[{i}]");
                let dose: Mass = quantity(&format!("{field}.dose"), &b.dose)?;
                let duration: Duration = quantity(&format!("{field}.duration"), &b.duration)?;
                schedule
                    .add_bolus(PeriodicBolus {
                        start_minute: minute_of_day(&format!("{field}.start"), &b.start)?,
                        volume: volume_of(&format!("{field}.dose"), conc, dose)?,
                        duration,
                        days: weekdays(&b.days),
                    })
                    .map_err(|e| FieldError::new(field, e.to_string()))?;
            }
            schedule
        }
    };
    // Normalise: a one-step flex schedule without boluses is a constant rate.
    if let Some(f) = schedule.constant_flow() {
        schedule = Schedule::continuous(f);
    }
    let (patient_bolus, bolus_record) = match bolus {
        None => (None, None),
        Some(b) => {
            let dose: Mass = quantity("patient_bolus.dose", &b.dose)?;
            let duration: Duration = quantity("patient_bolus.duration", &b.duration)?;
            let lockout: Duration = quantity("patient_bolus.lockout", &b.lockout)?;
            if !(1..=24).contains(&b.max_per_day) {
                return Err(FieldError::new(
                    "patient_bolus.max_per_day",
                    "must be 1 to 24 boluses a day",
                ));
            }
            let volume = volume_of("patient_bolus.dose", conc, dose)?;
            (
                Some(PatientBolus {
                    volume,
                    duration,
                    lockout,
                    max_per_day: b.max_per_day,
                }),
                Some(PatientBolusRecord {
                    dose: dose.to_string(),
                    volume: volume.to_string(),
                    duration: duration.to_string(),
                    lockout: lockout.to_string(),
                    max_per_day: b.max_per_day,
                }),
            )
        }
    };
    let rx = thecal_rx::check::Prescription {
        contents: contents.clone(),
        schedule: schedule.clone(),
        patient_bolus,
        reservoir_volume: Volume::ZERO,
    };
    let heaviest_daily_dose = rx
        .max_daily_dose(first)
        .ok_or_else(|| FieldError::new("daily_dose", "the heaviest day's dose overflows"))?;
    Ok(Regimen {
        contents,
        mean_flow: Flow::from_raw(schedule.mean_daily().raw()),
        schedule,
        patient_bolus,
        components,
        bolus_record,
        heaviest_daily_dose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baclofen() -> (DrugId, Concentration) {
        (
            DrugId::from_name("baclofen").unwrap(),
            "2000 mcg/mL".parse().unwrap(),
        )
    }

    #[test]
    fn a_flex_day_with_a_periodic_bolus_reads_into_rx_clinic_065() {
        let (d, c) = baclofen();
        // 00:00–08:00 at 300 mcg/day, 08:00–24:00 at 600 mcg/day: 100 + 400 = 500 mcg,
        // plus a 50 mcg bolus at 20:00 every day = 550 mcg on the heaviest day.
        let flex = FlexSchedule {
            steps: vec![
                FlexStep {
                    start: "00:00".into(),
                    daily_dose: "300 mcg/day".into(),
                },
                FlexStep {
                    start: "08:00".into(),
                    daily_dose: "600 mcg/day".into(),
                },
            ],
            boluses: vec![FlexBolus {
                start: "20:00".into(),
                dose: "50 mcg".into(),
                duration: "30 min".into(),
                days: vec![],
            }],
        };
        let r = read(d, c, "", &[], Some(&flex), None).unwrap();
        assert_eq!(r.heaviest_daily_dose, "550 mcg/day".parse().unwrap());
        // 550 mcg ÷ 2000 mcg/mL = 0.275 mL a day, every day.
        assert_eq!(r.mean_flow.raw(), 275_000);
        assert_eq!(r.schedule.boluses()[0].volume, Volume::from_raw(25_000));
        // A dose entered beside a flex schedule is refused: the steps give the doses.
        assert_eq!(
            read(d, c, "500 mcg/day", &[], Some(&flex), None)
                .unwrap_err()
                .field,
            "daily_dose"
        );
        let late_first = FlexSchedule {
            steps: vec![FlexStep {
                start: "01:00".into(),
                daily_dose: "300 mcg/day".into(),
            }],
            boluses: vec![],
        };
        assert_eq!(
            read(d, c, "", &[], Some(&late_first), None)
                .unwrap_err()
                .field,
            "flex.steps"
        );
        let bad_time = FlexSchedule {
            steps: vec![FlexStep {
                start: "24:00".into(),
                daily_dose: "300 mcg/day".into(),
            }],
            boluses: vec![],
        };
        let e = read(d, c, "", &[], Some(&bad_time), None).unwrap_err();
        assert_eq!(e.field, "flex.steps[0].start");
        assert!(e.message.contains("00:00 to 23:59"), "{}", e.message);
    }

    #[test]
    fn admixture_is_limited_to_rx_max_drugs_and_bolus_is_read_clinic_065() {
        let m = DrugId::from_name("morphine").unwrap();
        let c: Concentration = "10 mg/mL".parse().unwrap();
        let part = |d: &str, conc: &str| AdmixturePart {
            drug: d.into(),
            concentration: conc.into(),
        };
        let r = read(
            m,
            c,
            "2 mg/day",
            &[part("bupivacaine", "10 mg/mL")],
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.contents.components().len(), 2);
        assert_eq!(r.components[0].drug, "bupivacaine");
        let e = read(m, c, "2 mg/day", &[part("morphine", "5 mg/mL")], None, None).unwrap_err();
        assert_eq!(e.field, "admixture");
        assert!(e.message.contains("listed twice"), "{}", e.message);
        let four = [
            part("bupivacaine", "10 mg/mL"),
            part("clonidine", "100 mcg/mL"),
            part("baclofen", "500 mcg/mL"),
            part("ziconotide", "25 mcg/mL"),
        ];
        let e = read(m, c, "2 mg/day", &four, None, None).unwrap_err();
        assert_eq!(e.field, "admixture");
        assert!(e.message.contains("at most 4 drugs"), "{}", e.message);
        // 0.5 mg at 10 mg/mL = 0.05 mL a bolus.
        let b = PatientBolusOrder {
            dose: "0.5 mg".into(),
            duration: "10 min".into(),
            lockout: "4 h".into(),
            max_per_day: 4,
        };
        let r = read(m, c, "2 mg/day", &[], None, Some(&b)).unwrap();
        assert_eq!(r.patient_bolus.unwrap().volume, Volume::from_raw(50_000));
        assert_eq!(r.bolus_record.unwrap().volume, "0.05 mL");
        let none = PatientBolusOrder {
            max_per_day: 0,
            ..b
        };
        assert_eq!(
            read(m, c, "2 mg/day", &[], None, Some(&none))
                .unwrap_err()
                .field,
            "patient_bolus.max_per_day"
        );
    }
}
