//! Pump mechanisms (SIM-010): the volume that truly moves when the core commands a
//! stroke (or, for a gas pump, what flows with no command at all).
//!
//! The pump core counts nominal strokes; the truth differs by a per-device calibration
//! bias, per-stroke variation and slow drift. The engine moves the *true* volume
//! through its own [`thecal_pump::fluid::FluidPath`] (the true catheter contents) and
//! the reservoir, while the core keeps counting nominal strokes, so that refill
//! reconciliation (DOMAIN.md §5) sees the difference as it would in a clinic.
//!
//! | model | device class | what varies |
//! |---|---|---|
//! | [`Peristaltic`] | SynchroMed II | per-device bias, per-stroke noise, drift; stalls in MRI |
//! | [`ValvePulse`] | Prometra II | pulse volume with reservoir fill; valve shuts in MRI until reset |
//! | [`GasPump`] | Codman 3000, IsoMed | flow with temperature and ambient pressure; no electronics |

use rand::Rng;
use rand_distr::StandardNormal;
use thecal_rx::constant_rate::GasPumpModel;

use super::environment::Environment;

/// Nominal SynchroMed-class stroke, nL (the pump crate's
/// `HardwareProfile::synchromed_class`; an engineering estimate, check).
pub const SYNCHROMED_STROKE_NL: f64 = 250.0;

/// Nominal Prometra-class pulse, nL (the pump crate's `HardwareProfile::prometra_class`;
/// an engineering estimate, check).
pub const PROMETRA_PULSE_NL: f64 = 2_000.0;

/// Mean calibration bias of a peristaltic pump: +1 %, the clinical mean volume error
/// per refill (DOMAIN.md §2, SynchroMed II "clinic +1 % mean").
pub const PERISTALTIC_BIAS_MEAN: f64 = 0.01;

/// Standard deviation of the calibration bias across devices: the labelled ±14.5 %
/// envelope taken as 3 σ (assumption; DOMAIN.md §2 gives the envelope, not the spread).
pub const PERISTALTIC_BIAS_SD: f64 = 0.145 / 3.0;

/// Coefficient of variation of one peristaltic stroke (assumption). It averages out:
/// a refill interval holds ~10⁵ strokes, so its contribution to the refill-to-refill
/// error is about 5 % / √10⁵ ≈ 0.02 %, negligible beside the bias.
pub const PERISTALTIC_STROKE_CV: f64 = 0.05;

/// Coefficient of variation of one valve pulse (assumption).
pub const VALVE_PULSE_CV: f64 = 0.02;

/// Relative change of the valve pulse volume between an empty and a full reservoir
/// (assumption: ±3 % about half full, within the 97.1–97.9 % accuracy reported for
/// Prometra II, DOMAIN.md §2).
pub const VALVE_PRESSURE_COEFF: f64 = 0.06;

/// Most a flow-activated valve lets through as it shuts in an MRI field, nL
/// (DOMAIN.md §2: "≤ 10 µL delivered").
pub const VALVE_MRI_SHUT_MAX_NL: f64 = 10_000.0;

/// One standard normal draw.
fn std_normal(rng: &mut impl Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// A peristaltic (roller) pump, SynchroMed class.
///
/// One stroke moves `nominal_nl × (1 + calibration_bias + drift_per_year × years) ×
/// (1 + stroke_cv × z)`, `z` standard normal, never below zero. The first factor is the
/// device's mean stroke; the second is per-stroke noise, which averages out over a
/// refill interval (see [`PERISTALTIC_STROKE_CV`]), so the refill-to-refill volume
/// error is essentially the bias plus the drift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peristaltic {
    /// Nominal stroke volume the core counts, nL ([`SYNCHROMED_STROKE_NL`]).
    pub nominal_nl: f64,
    /// This device's relative volume error at implant (+0.01 = 1 % over). Drawn by
    /// [`Peristaltic::sample_device`] from N([`PERISTALTIC_BIAS_MEAN`],
    /// [`PERISTALTIC_BIAS_SD`]).
    pub calibration_bias: f64,
    /// Per-stroke coefficient of variation ([`PERISTALTIC_STROKE_CV`], assumption).
    pub stroke_cv: f64,
    /// Change of the relative error per year since implant (tubing wear; no source:
    /// 0 by default, set by scenarios, assumption).
    pub drift_per_year: f64,
}

impl Peristaltic {
    /// A perfectly calibrated device with the default per-stroke noise and no drift.
    pub fn new(nominal_nl: f64) -> Self {
        Peristaltic {
            nominal_nl,
            calibration_bias: 0.0,
            stroke_cv: PERISTALTIC_STROKE_CV,
            drift_per_year: 0.0,
        }
    }

    /// A SynchroMed-class device drawn from the population: nominal
    /// [`SYNCHROMED_STROKE_NL`], bias ~ N(+1 %, 4.83 %) so that 99.7 % of devices fall
    /// within about the labelled ±14.5 % (DOMAIN.md §2), no drift. One normal draw.
    pub fn sample_device(rng: &mut impl Rng) -> Self {
        Self::sample_device_with(rng, SYNCHROMED_STROKE_NL)
    }

    /// As [`Peristaltic::sample_device`] with another nominal stroke.
    pub fn sample_device_with(rng: &mut impl Rng, nominal_nl: f64) -> Self {
        Peristaltic {
            calibration_bias: PERISTALTIC_BIAS_MEAN + PERISTALTIC_BIAS_SD * std_normal(rng),
            ..Peristaltic::new(nominal_nl)
        }
    }

    /// The device's mean stroke `years_since_implant` years after implant, nL.
    pub fn mean_stroke_nl(&self, years_since_implant: f64) -> f64 {
        let factor = 1.0 + self.calibration_bias + self.drift_per_year * years_since_implant;
        self.nominal_nl * factor.max(0.0)
    }

    /// The true volume of one stroke, nL (one normal draw, even at zero CV, so the
    /// random stream does not depend on the parameters).
    pub fn stroke_nl(&self, rng: &mut impl Rng, years_since_implant: f64) -> f64 {
        let noise = 1.0 + self.stroke_cv * std_normal(rng);
        (self.mean_stroke_nl(years_since_implant) * noise).max(0.0)
    }

    /// Whether the motor stalls in this field: in an MRI field the rotor magnet is held
    /// and the motor stalls for the scan; delivery may take 2–24 h to resume and the
    /// pump must be checked afterwards (DOMAIN.md §2). The engine reports every stroke
    /// commanded in the field as a stall to the core (see
    /// [`super::faults::FaultInjector::stroke`]) and moves no fluid.
    pub const fn stall_in_field(mri: bool) -> bool {
        mri
    }
}

/// A valve-gated pressurised reservoir, Prometra class: the valves fill an accumulator
/// from the reservoir and empty it into the catheter; one pulse is one accumulator.
///
/// Pulse volume `nominal_nl × (1 + pressure_coeff × (fill − ½)) × (1 + pulse_cv × z)`
/// (assumption: the reservoir pressure, and with it the accumulator's fill, varies
/// linearly with the reservoir fill fraction, nominal at half full).
///
/// In an MRI field the flow-activated safety valve shuts, letting through at most
/// [`VALVE_MRI_SHUT_MAX_NL`], and **stays shut** until a clinician resets it
/// (DOMAIN.md §2): [`ValvePulse::enter_field`], [`ValvePulse::reset`]. While shut every
/// pulse moves nothing, and the pump does not know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValvePulse {
    /// Nominal pulse volume the core counts, nL ([`PROMETRA_PULSE_NL`], check).
    pub nominal_nl: f64,
    /// Relative pulse change from an empty to a full reservoir
    /// ([`VALVE_PRESSURE_COEFF`], assumption).
    pub pressure_coeff: f64,
    /// Per-pulse coefficient of variation ([`VALVE_PULSE_CV`], assumption).
    pub pulse_cv: f64,
    /// The safety valve is shut (after an MRI field, until reset).
    pub shut: bool,
}

impl ValvePulse {
    /// A device with the given nominal pulse and the default coefficients, valve open.
    pub fn new(nominal_nl: f64) -> Self {
        ValvePulse {
            nominal_nl,
            pressure_coeff: VALVE_PRESSURE_COEFF,
            pulse_cv: VALVE_PULSE_CV,
            shut: false,
        }
    }

    /// A Prometra-class device ([`PROMETRA_PULSE_NL`]).
    pub fn prometra() -> Self {
        ValvePulse::new(PROMETRA_PULSE_NL)
    }

    /// The mean pulse at reservoir fill fraction `fill_fraction` (clamped to 0..1), nL.
    pub fn mean_pulse_nl(&self, fill_fraction: f64) -> f64 {
        let fill = fill_fraction.clamp(0.0, 1.0);
        (self.nominal_nl * (1.0 + self.pressure_coeff * (fill - 0.5))).max(0.0)
    }

    /// The true volume of one pulse, nL: zero while the valve is shut (no draw then),
    /// otherwise one normal draw.
    pub fn pulse_nl(&mut self, rng: &mut impl Rng, fill_fraction: f64) -> f64 {
        if self.shut {
            return 0.0;
        }
        let noise = 1.0 + self.pulse_cv * std_normal(rng);
        (self.mean_pulse_nl(fill_fraction) * noise).max(0.0)
    }

    /// The patient enters an MRI field: the valve shuts. Returns the volume let through
    /// while it shuts, uniform in 0..=[`VALVE_MRI_SHUT_MAX_NL`] nL (one draw), or 0
    /// (no draw) if it was already shut. The engine delivers that volume once.
    pub fn enter_field(&mut self, rng: &mut impl Rng) -> f64 {
        if self.shut {
            return 0.0;
        }
        self.shut = true;
        rng.random_range(0.0..=VALVE_MRI_SHUT_MAX_NL)
    }

    /// A clinician resets the valve (after the scan, with the programmer).
    pub fn reset(&mut self) {
        self.shut = false;
    }

    /// Whether the valve is shut.
    pub const fn is_shut(&self) -> bool {
        self.shut
    }
}

/// A constant-rate gas-driven pump: no electronics, no strokes; the flow follows the
/// body temperature and the ambient pressure through the rx crate's integer model
/// ([`GasPumpModel::flow_at`], reused, not duplicated). An MRI field has no effect
/// (none reported at 1.5 T for IsoMed, DOMAIN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasPump {
    /// The flow model (nominal flow, reference temperature and pressure, slopes).
    pub model: GasPumpModel,
}

impl GasPump {
    /// A pump with the given model.
    pub const fn new(model: GasPumpModel) -> Self {
        GasPump { model }
    }

    /// [`GasPumpModel::TYPICAL`]: 1 mL/day at 37 °C, sea level.
    pub const fn typical() -> Self {
        GasPump::new(GasPumpModel::TYPICAL)
    }

    /// The flow in `env`, mL/day (the rx model's integer nL/day ÷ 10⁶). Zero when the
    /// ambient pressure reaches the propellant's vapour pressure, and zero on the rx
    /// model's arithmetic overflow, which no physical input reaches.
    pub fn flow_ml_per_day(&self, env: &Environment) -> f64 {
        self.model
            .flow_at(env.temp_mc(), env.ambient_pa_u32())
            .map(|f| f.nl_per_day() as f64 / 1e6)
            .unwrap_or(0.0)
    }

    /// The volume that flows in `dt_h` hours at a constant `env`, nL.
    pub fn volume_nl(&self, env: &Environment, dt_h: f64) -> f64 {
        self.flow_ml_per_day(env) * 1e6 * dt_h.max(0.0) / 24.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::{close, rng};
    use thecal_rx::Flow;

    #[test]
    fn peristaltic_mean_stroke_with_bias_and_drift_sim_010() {
        let p = Peristaltic {
            nominal_nl: 250.0,
            calibration_bias: 0.04,
            stroke_cv: 0.0,
            drift_per_year: -0.01,
        };
        // 250 × (1 + 0.04 − 0.01 × 3) = 250 × 1.01 = 252.5 nL.
        close(p.mean_stroke_nl(3.0), 252.5, 1e-9);
        // At zero CV every stroke is the mean.
        let mut r = rng(1);
        close(p.stroke_nl(&mut r, 3.0), 252.5, 1e-9);
        // A factor below zero moves nothing rather than pulling fluid back.
        let worn = Peristaltic {
            drift_per_year: -1.0,
            ..p
        };
        close(worn.mean_stroke_nl(2.0), 0.0, 0.0);
        close(worn.stroke_nl(&mut r, 2.0), 0.0, 0.0);
    }

    #[test]
    fn per_stroke_noise_averages_out_over_a_refill_sim_010() {
        // 0.5 mL/day for 60 days = 30 mL = 120,000 strokes of 250 nL.
        let p = Peristaltic {
            calibration_bias: 0.02,
            ..Peristaltic::new(250.0)
        };
        let mut r = rng(7);
        let n = 120_000;
        let total: f64 = (0..n).map(|_| p.stroke_nl(&mut r, 0.0)).sum();
        let err = total / (250.0 * f64::from(n)) - 1.0;
        // Expected 2 % ± 5 %/√120000 ≈ 0.014 %: within 0.1 % of the bias.
        close(err, 0.02, 0.001);
    }

    #[test]
    fn device_bias_matches_the_labelled_envelope_sim_010() {
        let mut r = rng(42);
        let n = 20_000;
        let biases: Vec<f64> = (0..n)
            .map(|_| Peristaltic::sample_device(&mut r).calibration_bias)
            .collect();
        let mean = biases.iter().sum::<f64>() / f64::from(n);
        let var = biases.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / f64::from(n);
        close(mean, 0.01, 0.002);
        close(var.sqrt(), 0.145 / 3.0, 0.002);
        // N(1 %, 4.83 %): P(|x| ≤ 14.5 %) = Φ(2.79) − Φ(−3.21) ≈ 0.9967.
        let within = biases.iter().filter(|b| b.abs() <= 0.145).count() as f64 / f64::from(n);
        assert!((0.993..=0.9995).contains(&within), "{within}");
        // The same seed gives the same device.
        assert_eq!(
            Peristaltic::sample_device(&mut rng(3)),
            Peristaltic::sample_device(&mut rng(3))
        );
    }

    #[test]
    fn motor_stalls_only_in_an_mri_field_sim_010() {
        assert!(Peristaltic::stall_in_field(true));
        assert!(!Peristaltic::stall_in_field(false));
    }

    #[test]
    fn valve_pulse_follows_fill_and_shuts_in_mri_until_reset_sim_010() {
        let mut v = ValvePulse {
            pulse_cv: 0.0,
            ..ValvePulse::prometra()
        };
        // 2000 × (1 + 0.06 × (1 − 0.5)) = 2060; half full 2000; empty 1940 nL.
        close(v.mean_pulse_nl(1.0), 2060.0, 1e-9);
        close(v.mean_pulse_nl(0.5), 2000.0, 1e-9);
        close(v.mean_pulse_nl(0.0), 1940.0, 1e-9);
        close(v.mean_pulse_nl(7.0), 2060.0, 1e-9);
        let mut r = rng(5);
        close(v.pulse_nl(&mut r, 0.25), 1970.0, 1e-9);
        // MRI: at most 10 µL through, then nothing, even after leaving the field.
        let through = v.enter_field(&mut r);
        assert!((0.0..=10_000.0).contains(&through), "{through}");
        assert!(v.is_shut());
        close(v.enter_field(&mut r), 0.0, 0.0);
        close(v.pulse_nl(&mut r, 1.0), 0.0, 0.0);
        v.reset();
        assert!(!v.is_shut());
        close(v.pulse_nl(&mut r, 0.5), 2000.0, 1e-9);
    }

    #[test]
    fn gas_pump_uses_the_rx_integer_model_sim_010() {
        let g = GasPump::typical();
        close(g.flow_ml_per_day(&Environment::default()), 1.0, 0.0);
        // rx: 39 °C → 1,200,000 nL/day; 8,000 ft cabin → 1,265,964 nL/day;
        // 10 m dive → 86,091 nL/day; 11 m → 0.
        close(g.flow_ml_per_day(&Environment::fever(39.0)), 1.2, 1e-12);
        close(g.flow_ml_per_day(&Environment::cabin()), 1.265_964, 1e-12);
        close(
            g.flow_ml_per_day(&Environment::diving(10.0)),
            0.086_091,
            1e-12,
        );
        close(g.flow_ml_per_day(&Environment::diving(11.0)), 0.0, 0.0);
        // MRI changes nothing.
        close(g.flow_ml_per_day(&Environment::mri_scan()), 1.0, 0.0);
        // 0.5 mL/day model for 6 h at 37 °C: 125,000 nL.
        let half = GasPump::new(GasPumpModel::TYPICAL.with_nominal(Flow::from_raw(500_000)));
        close(
            half.volume_nl(&Environment::default(), 6.0),
            125_000.0,
            1e-6,
        );
    }
}
