//! The patient's surroundings (SIM-011): body temperature, ambient pressure, MRI.
//!
//! Only a constant-rate (gas-driven) pump feels temperature and pressure
//! ([`super::mechanism::GasPump`]); a programmable pump feels the MRI field (a
//! peristaltic motor stalls, a flow-activated valve shuts, DOMAIN.md §2).
//!
//! Pressures use the same integer approximations as the rx crate's constant-rate model
//! ([`thecal_rx::constant_rate::ambient_at_altitude`] and
//! [`thecal_rx::constant_rate::ambient_at_depth`]), so that the simulator and the
//! pump's own arithmetic agree on what "an 8,000 ft cabin" means.

use thecal_rx::constant_rate::{SEA_LEVEL_PA, ambient_at_altitude, ambient_at_depth};

/// A pressurised airliner cabin: 8,000 ft (2,438 m), the certification maximum
/// (FAR 25.841; DOMAIN.md §1 names unpressurised flight and altitude).
pub const CABIN_ALTITUDE_M: f64 = 2_438.0;

/// Normal core body temperature, °C.
pub const NORMAL_BODY_TEMP_C: f64 = 37.0;

/// The environment at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Environment {
    /// Core body temperature, °C (37 normal; a gas pump is warmed by the body).
    pub body_temp_c: f64,
    /// Ambient pressure, Pa (101,325 at sea level). The catheter tip sits at ambient
    /// pressure: the body equalises with its surroundings.
    pub ambient_pa: f64,
    /// The patient is inside an MRI scanner's field.
    pub mri: bool,
}

impl Default for Environment {
    /// 37 °C at sea level, no MRI.
    fn default() -> Self {
        Environment {
            body_temp_c: NORMAL_BODY_TEMP_C,
            ambient_pa: f64::from(SEA_LEVEL_PA),
            mri: false,
        }
    }
}

impl Environment {
    /// A fever of `temp_c` at sea level.
    pub fn fever(temp_c: f64) -> Self {
        Environment::default().with_body_temp(temp_c)
    }

    /// At `altitude_m` metres above sea level (−12 Pa per metre, the rx approximation,
    /// exact to 3 % up to 3,000 m).
    pub fn altitude(altitude_m: f64) -> Self {
        Environment::default().at_altitude(altitude_m)
    }

    /// In a pressurised airliner cabin at 8,000 ft ([`CABIN_ALTITUDE_M`]).
    pub fn cabin() -> Self {
        Environment::altitude(CABIN_ALTITUDE_M)
    }

    /// Diving at `depth_m` metres of sea water (+10,053 Pa per metre).
    pub fn diving(depth_m: f64) -> Self {
        Environment::default().at_depth(depth_m)
    }

    /// Inside an MRI scanner, otherwise normal.
    pub fn mri_scan() -> Self {
        Environment {
            mri: true,
            ..Environment::default()
        }
    }

    /// The same with another body temperature.
    pub fn with_body_temp(self, temp_c: f64) -> Self {
        Environment {
            body_temp_c: temp_c,
            ..self
        }
    }

    /// The same at `altitude_m` metres (negative values are treated as sea level).
    pub fn at_altitude(self, altitude_m: f64) -> Self {
        let m = altitude_m.max(0.0).round().min(f64::from(u32::MAX)) as u32;
        Environment {
            ambient_pa: f64::from(ambient_at_altitude(m)),
            ..self
        }
    }

    /// The same at `depth_m` metres of sea water (negative values: the surface).
    pub fn at_depth(self, depth_m: f64) -> Self {
        let m = depth_m.max(0.0).round().min(f64::from(u32::MAX)) as u32;
        Environment {
            ambient_pa: f64::from(ambient_at_depth(m)),
            ..self
        }
    }

    /// The same inside (`true`) or outside an MRI field.
    pub fn with_mri(self, mri: bool) -> Self {
        Environment { mri, ..self }
    }

    /// Body temperature in m°C, rounded, as the rx integer model takes it.
    pub fn temp_mc(&self) -> i32 {
        (self.body_temp_c * 1000.0)
            .round()
            .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
    }

    /// Ambient pressure in whole Pa, rounded and clamped to `u32`, as the rx integer
    /// model takes it.
    pub fn ambient_pa_u32(&self) -> u32 {
        self.ambient_pa.round().clamp(0.0, f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::close;

    #[test]
    fn default_is_37_c_at_sea_level_sim_011() {
        let e = Environment::default();
        close(e.body_temp_c, 37.0, 0.0);
        close(e.ambient_pa, 101_325.0, 0.0);
        assert!(!e.mri);
        assert_eq!(e.temp_mc(), 37_000);
        assert_eq!(e.ambient_pa_u32(), 101_325);
    }

    #[test]
    fn fever_altitude_diving_and_mri_sim_011() {
        assert_eq!(Environment::fever(39.5).temp_mc(), 39_500);
        // 8,000 ft = 2,438 m: 101,325 − 12 × 2,438 = 72,069 Pa.
        close(Environment::cabin().ambient_pa, 72_069.0, 0.0);
        // 10 m of sea water: 101,325 + 100,530 = 201,855 Pa.
        close(Environment::diving(10.0).ambient_pa, 201_855.0, 0.0);
        // Below sea level / above the surface clamp to the reference.
        close(Environment::altitude(-5.0).ambient_pa, 101_325.0, 0.0);
        close(Environment::diving(-1.0).ambient_pa, 101_325.0, 0.0);
        let m = Environment::mri_scan();
        assert!(m.mri);
        close(m.body_temp_c, 37.0, 0.0);
        // Builders compose: a feverish diver.
        let e = Environment::fever(38.0).at_depth(5.0).with_mri(false);
        assert_eq!((e.temp_mc(), e.ambient_pa_u32()), (38_000, 151_590));
    }
}
