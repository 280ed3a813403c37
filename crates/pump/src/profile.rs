//! Hardware profiles as data: one core serves a SynchroMed-class peristaltic pump, a
//! Prometra-class valve pump and an external trial pump.
//!
//! Figures come from DOMAIN.md §2 where it has them; the rest (stroke volume, energy)
//! are engineering estimates marked `check` in [`HardwareProfile::source`].

use serde::{Deserialize, Serialize};
use thecal_rx::check::DeviceLimits;
use thecal_rx::{Duration, Flow, Volume};

/// How the pump moves fluid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mechanism {
    /// A motor-driven peristaltic roller (SynchroMed class): stalls in an MRI field.
    Peristaltic,
    /// A pressurised reservoir gated by valves (Prometra class): a flow-activated valve
    /// shuts in an MRI field and stays shut until a clinician resets it.
    Valve,
    /// An external syringe or cassette pump for trials.
    External,
}

/// The physical and electrical constants of one pump model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareProfile {
    /// Model name.
    pub name: &'static str,
    /// How fluid is moved.
    pub mechanism: Mechanism,
    /// Nominal volume of one stroke (pulse).
    pub stroke_volume: Volume,
    /// Reservoir capacity.
    pub reservoir_capacity: Volume,
    /// Volume of the pump's internal path from reservoir to catheter port.
    pub pump_path_volume: Volume,
    /// Volume of a typical implanted catheter: the pump assumes it until the implanted
    /// catheter is recorded ([`crate::catheter`]); priming is refused until then.
    pub catheter_volume: Volume,
    /// Lowest programmable flow.
    pub min_flow: Flow,
    /// Highest flow (basal plus bolus).
    pub max_flow: Flow,
    /// Usable battery energy, µJ (zero: externally powered and replaceable).
    pub battery_uj: u64,
    /// Energy of one stroke, µJ.
    pub stroke_uj: u32,
    /// Energy of one wake-up of the controller, µJ.
    pub wake_uj: u32,
    /// Energy of one millisecond of radio, µJ.
    pub radio_uj_per_ms: u32,
    /// Quiescent draw, µJ per hour.
    pub quiescent_uj_per_hour: u32,
    /// Shortest time between strokes.
    pub min_stroke_interval: Duration,
    /// The most the reservoir may hold when a valve pump enters MRI mode without an
    /// emergency confirmation (the valves may open in the field).
    pub mri_reservoir_limit: Volume,
    /// Labelled worst-case over-delivery, per mille of the programmed volume (145 =
    /// +14.5 %): refill planning assumes it ([`thecal_rx::refill::refill_due`]).
    pub over_delivery_permille: u16,
    /// Where the figures come from.
    pub source: &'static str,
}

impl HardwareProfile {
    /// The device limits the prescription check needs.
    pub const fn device_limits(&self) -> DeviceLimits {
        DeviceLimits {
            capacity: self.reservoir_capacity,
            min_flow: self.min_flow,
            max_flow: self.max_flow,
        }
    }

    /// A custom 2 uL-per-cm catheter as long as holds [`HardwareProfile::catheter_volume`]
    /// (35 cm for 70 uL): the catheter of simulations and examples that do not name one.
    pub fn nominal_catheter(&self) -> crate::catheter::CatheterRecord {
        const PER_CM: Volume = Volume::from_nl(2_000);
        // 200 nL per mm.
        let mm = self.catheter_volume.nl().checked_div(200).unwrap_or(0);
        crate::catheter::CatheterRecord {
            model: crate::catheter::CUSTOM_MODEL,
            volume_per_cm: PER_CM,
            length_mm: u16::try_from(mm).unwrap_or(u16::MAX),
            pump_segment: Volume::ZERO,
        }
    }

    /// Pump path plus the profile's nominal catheter: the volume fluid crosses before it
    /// reaches the CSF until a catheter is recorded ([`crate::core::Pump::dead_volume`]).
    pub const fn dead_volume(&self) -> Volume {
        self.pump_path_volume.saturating_add(self.catheter_volume)
    }

    /// A SynchroMed-class peristaltic pump. Battery sized for 84 months at 0.5 mL/day
    /// with a typical radio use (DOMAIN.md §2: designed for 84 months, 5–7 years in use).
    pub const fn synchromed_class(capacity_ml: u32) -> Self {
        HardwareProfile {
            name: if capacity_ml >= 40 {
                "SynchroMed-class 40 mL"
            } else {
                "SynchroMed-class 20 mL"
            },
            mechanism: Mechanism::Peristaltic,
            stroke_volume: Volume::from_nl(250),
            reservoir_capacity: Volume::from_ml(capacity_ml),
            pump_path_volume: Volume::from_nl(130_000),
            catheter_volume: Volume::from_nl(70_000),
            min_flow: Flow::from_raw(48_000),
            max_flow: Flow::from_raw(24_000_000),
            battery_uj: 35_000_000_000,
            stroke_uj: 2_500,
            wake_uj: 40,
            radio_uj_per_ms: 30,
            quiescent_uj_per_hour: 360_000,
            // 24 mL/day of 250 nL strokes is one every 0.9 s: the motor must allow it.
            min_stroke_interval: Duration::from_ms(500),
            // A peristaltic pump stalls in the field and delivers nothing.
            mri_reservoir_limit: Volume::MAX,
            over_delivery_permille: 145,
            source: "DOMAIN.md §2 for reservoir, rate range, labelled ±14.5 % accuracy and \
                     84-month design life; stroke volume, dead volumes and energies are \
                     estimates, check",
        }
    }

    /// A Prometra-class valve pump (20 or 40 mL): 2 µL pulses from a pressurised reservoir.
    pub const fn prometra_class(capacity_ml: u32) -> Self {
        HardwareProfile {
            name: if capacity_ml >= 40 {
                "Prometra-class 40 mL"
            } else {
                "Prometra-class 20 mL"
            },
            mechanism: Mechanism::Valve,
            stroke_volume: Volume::from_nl(2_000),
            reservoir_capacity: Volume::from_ml(capacity_ml),
            pump_path_volume: Volume::from_nl(30_000),
            catheter_volume: Volume::from_nl(70_000),
            min_flow: Flow::from_raw(20_000),
            max_flow: Flow::from_raw(28_800_000),
            battery_uj: 25_000_000_000,
            stroke_uj: 1_200,
            wake_uj: 40,
            radio_uj_per_ms: 30,
            quiescent_uj_per_hour: 300_000,
            min_stroke_interval: Duration::from_ms(2_000),
            // The instructions: empty the pump before an MRI (the valves may open in the
            // field); at most 10 µL may remain (DOMAIN.md §2, Prometra MRI labelling).
            mri_reservoir_limit: Volume::from_nl(10_000),
            // DOMAIN.md §2 gives only mean accuracy (97.1 %); without a labelled worst
            // case the SynchroMed ±14.5 % is assumed (check).
            over_delivery_permille: 145,
            source: "DOMAIN.md §2 for reservoir; pulse volume, rate range, energies and the \
                     worst-case accuracy (SynchroMed's 14.5 % assumed) are estimates, check",
        }
    }

    /// An external trial pump (100 mL cassette, replaceable battery).
    pub const fn external_trial() -> Self {
        HardwareProfile {
            name: "external trial pump",
            mechanism: Mechanism::External,
            stroke_volume: Volume::from_nl(1_000),
            reservoir_capacity: Volume::from_ml(100),
            pump_path_volume: Volume::from_nl(500_000),
            catheter_volume: Volume::from_nl(100_000),
            min_flow: Flow::from_raw(24_000),
            max_flow: Flow::from_raw(240_000_000),
            battery_uj: 5_000_000_000,
            stroke_uj: 500,
            wake_uj: 20,
            radio_uj_per_ms: 20,
            quiescent_uj_per_hour: 500_000,
            min_stroke_interval: Duration::from_ms(250),
            // Taken off before a scan; never in the field.
            mri_reservoir_limit: Volume::MAX,
            over_delivery_permille: 60,
            source: "estimates for a trial pump, including ±6 % accuracy, check",
        }
    }

    /// The model names [`HardwareProfile::by_model`] knows, for messages.
    pub const MODELS: &'static str =
        "synchromed-20, synchromed-40, prometra-20, prometra-40, external";

    /// The preset for a model name (`synchromed-20`, `synchromed-40`, `prometra-20`,
    /// `prometra-40`, `external`, any case); `None` for any other name.
    pub fn by_model(model: &str) -> Option<Self> {
        let is = |name: &str| model.trim().eq_ignore_ascii_case(name);
        if is("synchromed-20") {
            Some(Self::synchromed_class(20))
        } else if is("synchromed-40") {
            Some(Self::synchromed_class(40))
        } else if is("prometra-20") {
            Some(Self::prometra_class(20))
        } else if is("prometra-40") {
            Some(Self::prometra_class(40))
        } else if is("external") {
            Some(Self::external_trial())
        } else {
            None
        }
    }

    /// The device limits of a model name ([`HardwareProfile::by_model`]), as the
    /// prescription file's model resolver.
    pub fn limits_by_model(model: &str) -> Option<DeviceLimits> {
        Self::by_model(model).map(|p| p.device_limits())
    }
}
