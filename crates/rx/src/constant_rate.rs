//! Constant-rate (gas-driven) pumps.
//!
//! A constant-rate pump has no electronics: a two-phase propellant, kept at body
//! temperature, presses a bellows, and a capillary restrictor sets the flow. The dose
//! can be changed only through the **concentration** at refill
//! ([`concentration_for`]). The flow changes with the environment (DOMAIN.md §1):
//!
//! ```text
//! Q = Q_nominal × ΔP / ΔP_ref,   ΔP = P_vapour(T) − P_ambient
//! P_vapour(T) = P_ambient,ref + ΔP_ref + k × (T − T_ref)
//! ```
//!
//! The restrictor is laminar (flow proportional to the driving pressure), the
//! propellant's vapour pressure is linear in temperature near 37 °C, and the catheter
//! tip sits at ambient pressure (the body equalises with its surroundings). So a fever
//! raises the flow, lower ambient pressure (altitude, an unpressurised flight) raises
//! it, and higher pressure (diving, hyperbaric therapy) lowers it — to zero if the
//! ambient pressure reaches the vapour pressure.
//!
//! The parameters are data ([`GasPumpModel`]); the defaults
//! ([`GasPumpModel::TYPICAL`]) are chosen to give about +10 % flow per °C and about
//! +24 % at an 8,000 ft cabin altitude, orders reported for such pumps and marked
//! *check*. All arithmetic is integer: temperatures in m°C, pressures in Pa.

use crate::quantity::{Concentration, Flow, MassRate, NL_PER_ML, QuantityError, Rounding, mul_div};

/// Standard sea-level atmospheric pressure, Pa.
pub const SEA_LEVEL_PA: u32 = 101_325;

/// A gas-driven pump's flow model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasPumpModel {
    /// Flow at the reference temperature and pressure.
    pub nominal_flow: Flow,
    /// Reference body temperature, m°C.
    pub ref_temp_mc: i32,
    /// Reference ambient pressure, Pa.
    pub ref_ambient_pa: u32,
    /// Driving pressure (vapour minus ambient) at the reference, Pa.
    pub drive_ref_pa: u32,
    /// Change of vapour pressure per °C, Pa.
    pub vapour_slope_pa_per_c: u32,
    /// Where the parameters come from.
    pub source: &'static str,
}

impl GasPumpModel {
    /// A typical constant-rate pump at 1 mL/day: ΔP_ref = 110 kPa, k = 11 kPa/°C.
    pub const TYPICAL: GasPumpModel = GasPumpModel {
        nominal_flow: Flow::from_raw(1_000_000),
        ref_temp_mc: 37_000,
        ref_ambient_pa: SEA_LEVEL_PA,
        drive_ref_pa: 110_000,
        vapour_slope_pa_per_c: 11_000,
        source: "chosen for ~10 %/°C and ~24 % at 2,438 m cabin altitude, check",
    };

    /// The same model with another nominal flow.
    pub const fn with_nominal(self, nominal_flow: Flow) -> Self {
        GasPumpModel {
            nominal_flow,
            ..self
        }
    }

    /// The driving pressure at body temperature `temp_mc` (m°C) and ambient `ambient_pa`,
    /// in Pa, never below zero.
    pub fn driving_pressure(&self, temp_mc: i32, ambient_pa: u32) -> i64 {
        let dt = i64::from(temp_mc).saturating_sub(i64::from(self.ref_temp_mc));
        let vapour = i64::from(self.ref_ambient_pa)
            .saturating_add(i64::from(self.drive_ref_pa))
            .saturating_add(
                dt.saturating_mul(i64::from(self.vapour_slope_pa_per_c))
                    .checked_div(1000)
                    .unwrap_or(0),
            );
        vapour.saturating_sub(i64::from(ambient_pa)).max(0)
    }

    /// The flow at body temperature `temp_mc` (m°C) and ambient pressure `ambient_pa`.
    ///
    /// # Errors
    /// Overflow, or a zero reference driving pressure.
    pub fn flow_at(&self, temp_mc: i32, ambient_pa: u32) -> Result<Flow, QuantityError> {
        let dp = u64::try_from(self.driving_pressure(temp_mc, ambient_pa)).unwrap_or(0);
        mul_div(
            self.nominal_flow.raw(),
            dp,
            u64::from(self.drive_ref_pa),
            Rounding::Nearest,
        )
        .map(Flow::from_raw)
    }
}

/// Ambient pressure at `altitude_m` metres (international standard atmosphere, integer
/// approximation: −12 Pa per metre near the ground, exact to 3 % up to 3,000 m).
pub const fn ambient_at_altitude(altitude_m: u32) -> u32 {
    SEA_LEVEL_PA.saturating_sub(altitude_m.saturating_mul(12))
}

/// Ambient pressure at `depth_m` metres of sea water (+10,053 Pa per metre).
pub const fn ambient_at_depth(depth_m: u32) -> u32 {
    SEA_LEVEL_PA.saturating_add(depth_m.saturating_mul(10_053))
}

/// The concentration that gives `target` daily dose at the pump's nominal `flow`
/// (rounded to nearest ng/mL).
///
/// # Errors
/// [`QuantityError::DivideByZero`] at zero flow; overflow.
pub fn concentration_for(target: MassRate, flow: Flow) -> Result<Concentration, QuantityError> {
    mul_div(target.raw(), NL_PER_ML, flow.raw(), Rounding::Nearest).map(Concentration::from_raw)
}

/// The daily dose a constant-rate pump gives at `conc` under the given conditions.
///
/// # Errors
/// Overflow.
pub fn dose_at(
    model: &GasPumpModel,
    conc: Concentration,
    temp_mc: i32,
    ambient_pa: u32,
) -> Result<MassRate, QuantityError> {
    crate::dose::daily_dose(conc, model.flow_at(temp_mc, ambient_pa)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn concentration_for_a_target_dose_rx_011() {
        // 1 mL/day pump, morphine 3 mg/day → 3 mg/mL.
        let c = concentration_for(MassRate::from_mg_per_day(3), Flow::from_raw(1_000_000)).unwrap();
        assert_eq!(c, Concentration::from_mg_per_ml(3));
        // A 0.5 mL/day pump needs twice the concentration.
        let c = concentration_for(MassRate::from_mg_per_day(3), Flow::from_raw(500_000)).unwrap();
        assert_eq!(c, Concentration::from_mg_per_ml(6));
        assert_eq!(
            concentration_for(MassRate::from_mg_per_day(3), Flow::ZERO),
            Err(QuantityError::DivideByZero)
        );
    }

    #[test]
    fn fever_altitude_and_diving_change_the_flow_rx_011() {
        let m = GasPumpModel::TYPICAL;
        assert_eq!(
            m.flow_at(37_000, SEA_LEVEL_PA).unwrap(),
            Flow::from_raw(1_000_000)
        );
        // Fever of 39 °C: +22 kPa of 110 → +20 %.
        assert_eq!(
            m.flow_at(39_000, SEA_LEVEL_PA).unwrap(),
            Flow::from_raw(1_200_000)
        );
        // 8,000 ft (2,438 m) cabin: ambient 72,069 Pa → +29,256 Pa → +26.6 %.
        let cabin = ambient_at_altitude(2_438);
        assert_eq!(cabin, 72_069);
        let f = m.flow_at(37_000, cabin).unwrap();
        assert_eq!(f, Flow::from_raw(1_265_964));
        // 10 m dive: ambient +100.5 kPa → flow falls to 8.6 % of nominal.
        let f = m.flow_at(37_000, ambient_at_depth(10)).unwrap();
        assert_eq!(f, Flow::from_raw(86_091));
        // 11 m and deeper: the ambient pressure reaches the vapour pressure; no flow.
        assert_eq!(m.flow_at(37_000, ambient_at_depth(11)).unwrap(), Flow::ZERO);
        // Morphine 3 mg/mL on a 1 mL/day pump through a 39 °C fever: 3.6 mg/day.
        let d = dose_at(&m, Concentration::from_mg_per_ml(3), 39_000, SEA_LEVEL_PA).unwrap();
        assert_eq!(d, "3.6 mg/day".parse().unwrap());
    }
}
