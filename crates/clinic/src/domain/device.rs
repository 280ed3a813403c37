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
