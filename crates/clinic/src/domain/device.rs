//! The pump a prescription is checked against, from the implant record: its model names
//! the class (a SynchroMed-class or Prometra-class programmable pump, or a gas-driven
//! constant-rate pump) and the record gives its reservoir. The flow ranges are
//! thecal-pump's hardware profiles (one source); every check of a prescription against
//! them is thecal-rx's.
//!
//! A constant-rate pump has no electronics: its flow is fixed by its restrictor, so the
//! dose changes only through the concentration at a refill (thecal-rx
//! [`constant_rate`](thecal_rx::constant_rate)). Its fixed flow is the one of the version
//! in force (the first version sets it): the check's device range is that one flow, so
//! thecal-rx refuses any other flow, any flex step and any bolus.

use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{DeviceLimits, Prescription as RxPrescription};
use thecal_rx::{Flow, MassRate, Volume};

use super::records::Prescription;

/// Names (any case, anywhere in the model) of constant-rate pumps.
pub const CONSTANT_RATE_NAMES: [&str; 6] = [
    "isomed",
    "codman",
    "archimedes",
    "infusaid",
    "constant-rate",
    "constant rate",
];

/// The class of pump an implant record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpClass {
    /// A SynchroMed-class peristaltic pump.
    SynchroMed,
    /// A Prometra-class valve pump.
    Prometra,
    /// A gas-driven constant-rate pump; its fixed flow when a version is in force.
    ConstantRate(Option<Flow>),
    /// A model the check does not know: a SynchroMed-class range is assumed, and the
    /// prescriber must confirm it (a soft finding).
    Unrecognised,
}

/// The pump a prescription is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The model as recorded.
    pub model: String,
    /// Its class.
    pub class: PumpClass,
    /// The reservoir as recorded.
    pub capacity: Volume,
}

impl Device {
    /// The device of an implant of `model` with a `capacity` reservoir, with the version
    /// in force (a constant-rate pump's flow).
    pub fn of_implant(model: &str, capacity: Volume, in_force: Option<&Prescription>) -> Device {
        let m = model.to_lowercase();
        let class = if CONSTANT_RATE_NAMES.iter().any(|n| m.contains(n)) {
            PumpClass::ConstantRate(in_force.map(|p| Flow::from_raw(p.flow_nl_day)))
        } else if m.contains("synchromed") {
            PumpClass::SynchroMed
        } else if m.contains("prometra") {
            PumpClass::Prometra
        } else {
            PumpClass::Unrecognised
        };
        Device {
            model: model.to_owned(),
            class,
            capacity,
        }
    }

    /// The thecal-pump hardware profile of this pump (a model name of
    /// [`HardwareProfile::by_model`]): the class's profile with a 40 mL reservoir when the
    /// record's is above 20 mL. `None` for a constant-rate pump or a model the check does
    /// not know: the digital twin does not model them.
    pub fn profile_name(&self) -> Option<&'static str> {
        let large = self.capacity > Volume::from_ul(20_000);
        match (self.class, large) {
            (PumpClass::SynchroMed, false) => Some("synchromed-20"),
            (PumpClass::SynchroMed, true) => Some("synchromed-40"),
            (PumpClass::Prometra, false) => Some("prometra-20"),
            (PumpClass::Prometra, true) => Some("prometra-40"),
            (PumpClass::ConstantRate(_) | PumpClass::Unrecognised, _) => None,
        }
    }

    /// The limits thecal-rx checks `rx` against: the class's flow range (thecal-pump's
    /// profile) with the recorded reservoir; for a constant-rate pump, its one flow (the
    /// version in force's, else the new version's lowest basal flow, which it then sets).
    pub fn limits(&self, rx: &RxPrescription) -> DeviceLimits {
        let range = |p: HardwareProfile| DeviceLimits {
            capacity: self.capacity,
            ..p.device_limits()
        };
        match self.class {
            PumpClass::SynchroMed | PumpClass::Unrecognised => {
                range(HardwareProfile::synchromed_class(20))
            }
            PumpClass::Prometra => range(HardwareProfile::prometra_class(20)),
            PumpClass::ConstantRate(fixed) => {
                let flow = fixed.unwrap_or_else(|| rx.schedule.basal_range().0);
                DeviceLimits {
                    capacity: self.capacity,
                    min_flow: flow,
                    max_flow: flow,
                }
            }
        }
    }

    /// What the check assumed, in words, for the review (`dose` the daily dose of the
    /// first drug).
    pub fn describe(&self, rx: &RxPrescription, dose: MassRate) -> String {
        let l = self.limits(rx);
        match self.class {
            PumpClass::SynchroMed => format!(
                "{}: SynchroMed-class programmable pump, flow {} to {}, reservoir {}",
                self.model, l.min_flow, l.max_flow, self.capacity
            ),
            PumpClass::Prometra => format!(
                "{}: Prometra-class programmable pump, flow {} to {}, reservoir {}",
                self.model, l.min_flow, l.max_flow, self.capacity
            ),
            PumpClass::Unrecognised => format!(
                "{}: a model the check does not know; a SynchroMed-class flow range {} to {} \
                 was assumed, reservoir {}",
                self.model, l.min_flow, l.max_flow, self.capacity
            ),
            PumpClass::ConstantRate(fixed) => {
                let conc = thecal_rx::constant_rate::concentration_for(dose, l.min_flow)
                    .map(|c| format!("; {dose} at this flow needs {c}"))
                    .unwrap_or_default();
                format!(
                    "{}: constant-rate pump, no program change: its flow is fixed at {}{}; \
                     the dose changes only through the concentration at a refill{conc}; \
                     reservoir {}",
                    self.model,
                    l.min_flow,
                    if fixed.is_some() {
                        " (the version in force)"
                    } else {
                        " (set by this first version)"
                    },
                    self.capacity
                )
            }
        }
    }

    /// The finding the clinic adds for a model the check does not know (soft: the
    /// prescriber confirms the assumed range with a reason).
    pub fn unrecognised_finding(&self) -> Option<String> {
        (self.class == PumpClass::Unrecognised).then(|| {
            format!(
                "pump model '{}' is not one the check knows (SynchroMed, Prometra, or a \
                 constant-rate pump: {}): it was checked against a SynchroMed-class flow \
                 range; confirm the pump is programmable over that range",
                self.model,
                CONSTANT_RATE_NAMES[..4].join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::check_new_on;
    use crate::domain::records::NewPrescription;
    use chrono::{TimeZone, Utc};
    use thecal_rx::check::Severity;

    fn rx(drug: &str, conc: &str, dose: &str) -> NewPrescription {
        NewPrescription {
            drug: drug.into(),
            concentration: conc.into(),
            daily_dose: dose.into(),
            reservoir_volume: "18 mL".into(),
            opioid_naive: false,
            reason: "pain".into(),
            confirm_soft_findings: None,
            admixture: vec![],
            flex: None,
            patient_bolus: None,
        }
    }

    fn stored(c: &crate::domain::change::Checked) -> Prescription {
        Prescription {
            id: 1,
            implant_id: 1,
            version: 1,
            drug: c.drug.name().into(),
            concentration: c.concentration.to_string(),
            concentration_ng_ml: c.concentration.raw(),
            daily_dose: c.daily_dose.to_string(),
            daily_dose_ng: c.daily_dose.raw(),
            flow: c.flow.to_string(),
            flow_nl_day: c.flow.raw(),
            reservoir_volume_nl: c.reservoir_volume.raw(),
            opioid_naive: false,
            reason: "start".into(),
            prescriber: "dr".into(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap(),
            findings: vec![],
            confirmation: None,
            change: vec![],
            admixture: vec![],
            flex: None,
            patient_bolus: None,
            therapy: Some(c.therapy.clone()),
        }
    }

    #[test]
    fn the_model_names_the_class_and_the_record_the_reservoir_clinic_132() {
        let cap = Volume::from_ml(40);
        let s = Device::of_implant("SynchroMed II 8637-40", cap, None);
        assert_eq!(s.class, PumpClass::SynchroMed);
        let one = rx("morphine", "10 mg/mL", "1 mg/day");
        let checked = check_new_on(&one, &s, None, None).unwrap();
        // DOMAIN.md §2: 0.048–24 mL/day; the reservoir is the record's 40 mL.
        let l = s.limits(&checked.therapy);
        assert_eq!(
            (l.min_flow.raw(), l.max_flow.raw(), l.capacity.raw()),
            (48_000, 24_000_000, 40_000_000)
        );
        let p = Device::of_implant("Prometra II", Volume::from_ml(20), None);
        assert_eq!(p.class, PumpClass::Prometra);
        assert_eq!(p.limits(&checked.therapy).min_flow.raw(), 20_000);
        // 0.02 mL/day: below a SynchroMed's lowest flow (hard), within a Prometra's.
        let slow = rx("morphine", "10 mg/mL", "0.2 mg/day");
        let on_s = check_new_on(&slow, &s, None, None).unwrap();
        assert_eq!(on_s.worst, Some(Severity::Hard), "{:?}", on_s.findings);
        let on_p = check_new_on(&slow, &p, None, None).unwrap();
        assert!(
            !on_p
                .findings
                .iter()
                .any(|f| f.message.contains("lowest flow")),
            "{:?}",
            on_p.findings
        );
    }

    #[test]
    fn a_constant_rate_pump_takes_no_program_change_clinic_132() {
        let iso = Device::of_implant("IsoMed 8472-35", Volume::from_ml(35), None);
        assert_eq!(iso.class, PumpClass::ConstantRate(None));
        // The first version sets the flow: 3 mg/day of 3 mg/mL is 1 mL/day.
        let first = check_new_on(&rx("morphine", "3 mg/mL", "3 mg/day"), &iso, None, None).unwrap();
        assert_eq!(first.flow.raw(), 1_000_000);
        assert!(
            !first.findings.iter().any(|f| f.severity == "hard"),
            "{:?}",
            first.findings
        );
        let old = stored(&first);
        let iso = Device::of_implant("IsoMed 8472-35", Volume::from_ml(35), Some(&old));
        assert_eq!(
            iso.class,
            PumpClass::ConstantRate(Some(Flow::from_raw(1_000_000)))
        );
        let elapsed = thecal_rx::Duration::from_days(30);
        // 3.3 mg/day at 3 mg/mL would be 1.1 mL/day: the pump cannot, a hard finding.
        let faster = check_new_on(
            &rx("morphine", "3 mg/mL", "3.3 mg/day"),
            &iso,
            Some((&old, elapsed)),
            None,
        )
        .unwrap();
        assert_eq!(faster.worst, Some(Severity::Hard), "{:?}", faster.findings);
        assert!(
            faster.device.contains("fixed at 1 mL/day"),
            "{}",
            faster.device
        );
        // The same +10 % through the concentration (3.3 mg/mL at 1 mL/day) is no
        // program change.
        let stronger = check_new_on(
            &rx("morphine", "3.3 mg/mL", "3.3 mg/day"),
            &iso,
            Some((&old, elapsed)),
            None,
        )
        .unwrap();
        assert!(
            !stronger.findings.iter().any(|f| f.severity == "hard"),
            "{:?}",
            stronger.findings
        );
        assert!(
            stronger
                .device
                .contains("3.3 mg/day at this flow needs 3.3 mg/mL"),
            "{}",
            stronger.device
        );
        // A patient bolus needs a faster flow than the fixed one.
        let mut bolus = rx("morphine", "3.3 mg/mL", "3.3 mg/day");
        bolus.patient_bolus = Some(crate::domain::regimen::PatientBolusOrder {
            dose: "0.1 mg".into(),
            duration: "10 min".into(),
            lockout: "4 h".into(),
            max_per_day: 2,
        });
        let b = check_new_on(&bolus, &iso, Some((&old, elapsed)), None).unwrap();
        assert_eq!(b.worst, Some(Severity::Hard), "{:?}", b.findings);
    }

    #[test]
    fn an_unknown_model_is_checked_as_synchromed_class_with_a_soft_finding_clinic_132() {
        let d = Device::of_implant("Acme 1", Volume::from_ml(20), None);
        let c = check_new_on(
            &rx("baclofen", "2000 mcg/mL", "200 mcg/day"),
            &d,
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.worst, Some(Severity::Soft), "{:?}", c.findings);
        assert!(
            c.findings
                .iter()
                .any(|f| f.severity == "soft" && f.message.contains("pump model 'Acme 1'")),
            "{:?}",
            c.findings
        );
    }
}
