//! Battery measurement and the real-time clock (SIM-014).
//!
//! The engine keeps the *true* remaining energy (capacity minus the true draw); the
//! pump only sees it through [`BatteryGauge::reading`], with measurement noise. The
//! pump's battery account may only *lower* its estimate on a reading
//! (`thecal_pump::battery`), so unbiased noise makes its estimate drift low over many
//! readings: a conservative, earlier ERI, which the simulator should show rather than
//! hide. [`BatteryGauge::exact`] gives noiseless readings.
//!
//! The pump's clock is a crystal that runs fast or slow by [`Clock::drift_ppm`]; the
//! engine converts between true time and the pump's hardware milliseconds.

use rand::Rng;
use rand_distr::StandardNormal;
use thecal_pump::battery::BatteryReading;

/// Relative standard deviation of a fuel-gauge reading (assumption: 0.5 %).
pub const GAUGE_RELATIVE_NOISE: f64 = 0.005;
/// Standard deviation of a cell-voltage reading, mV (assumption).
pub const VOLTAGE_NOISE_MV: f64 = 5.0;
/// Mean drift of a 32.768 kHz tuning-fork crystal at body temperature, ppm: the
/// parabolic coefficient −0.034 ppm/°C² × (37 − 25 °C)² (typical datasheet values,
/// check).
pub const RTC_DRIFT_MEAN_PPM: f64 = -0.034 * 12.0 * 12.0;
/// Standard deviation of the crystal's drift across devices, ppm: a ±20 ppm
/// tolerance at 25 °C taken as 3 σ (check / assumption).
pub const RTC_DRIFT_SD_PPM: f64 = 20.0 / 3.0;

/// A battery gauge: what the hardware reports about the true remaining energy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatteryGauge {
    /// Usable capacity, µJ (the profile's `battery_uj`), for the voltage curve.
    pub capacity_uj: u64,
    /// The hardware has a fuel gauge (`remaining_uj` is reported); without one only
    /// the voltage is.
    pub fuel_gauge: bool,
    /// Relative noise of the fuel gauge ([`GAUGE_RELATIVE_NOISE`], assumption).
    pub relative_noise: f64,
    /// Voltage noise, mV ([`VOLTAGE_NOISE_MV`], assumption).
    pub voltage_noise_mv: f64,
}

impl BatteryGauge {
    /// A gauge with a fuel gauge and the default noise.
    pub fn new(capacity_uj: u64) -> Self {
        BatteryGauge {
            capacity_uj,
            fuel_gauge: true,
            relative_noise: GAUGE_RELATIVE_NOISE,
            voltage_noise_mv: VOLTAGE_NOISE_MV,
        }
    }

    /// A noiseless gauge.
    pub fn exact(capacity_uj: u64) -> Self {
        BatteryGauge {
            relative_noise: 0.0,
            voltage_noise_mv: 0.0,
            ..BatteryGauge::new(capacity_uj)
        }
    }

    /// The noiseless cell voltage at `remaining_uj`, mV: a flat plateau from 3,200 mV
    /// (full) to 3,000 mV at 10 % left, then a knee to 2,600 mV at empty (assumption:
    /// the shape of a lithium primary cell; the pump does not use it, see
    /// [`BatteryReading::voltage_mv`]).
    pub fn voltage_mv(&self, remaining_uj: u64) -> f64 {
        if self.capacity_uj == 0 {
            return 3_200.0;
        }
        let frac = (remaining_uj as f64 / self.capacity_uj as f64).clamp(0.0, 1.0);
        if frac >= 0.1 {
            3_000.0 + 200.0 * (frac - 0.1) / 0.9
        } else {
            2_600.0 + 400.0 * frac / 0.1
        }
    }

    /// One reading of a battery with `true_remaining_uj` left. Always two normal draws
    /// (fuel gauge, voltage), so the random stream does not depend on the parameters.
    pub fn reading(&self, rng: &mut impl Rng, true_remaining_uj: u64) -> BatteryReading {
        let zg: f64 = rng.sample(StandardNormal);
        let zv: f64 = rng.sample(StandardNormal);
        let remaining = (true_remaining_uj as f64 * (1.0 + self.relative_noise * zg))
            .round()
            .max(0.0) as u64;
        let voltage = (self.voltage_mv(true_remaining_uj) + self.voltage_noise_mv * zv)
            .round()
            .clamp(0.0, f64::from(u16::MAX)) as u16;
        BatteryReading {
            remaining_uj: self.fuel_gauge.then_some(remaining),
            voltage_mv: voltage,
        }
    }
}

/// The pump's real-time clock, `drift_ppm` parts per million fast (negative: slow).
///
/// `hardware = round(true × (10⁹ + ppb) / 10⁹)` with `ppb = round(drift_ppm × 1000)`, in
/// exact 128-bit integer arithmetic; [`Clock::true_ms`] is the rounded inverse, so a
/// round trip is within 1 ms. Both are monotonic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Drift, ppm (> −10⁶).
    pub drift_ppm: f64,
}

const PPB: i128 = 1_000_000_000;

impl Clock {
    /// A perfect clock.
    pub const PERFECT: Clock = Clock { drift_ppm: 0.0 };

    /// A clock drifting `drift_ppm` ppm.
    pub const fn new(drift_ppm: f64) -> Self {
        Clock { drift_ppm }
    }

    /// A device's clock drawn from N([`RTC_DRIFT_MEAN_PPM`], [`RTC_DRIFT_SD_PPM`]): one
    /// normal draw.
    pub fn sample(rng: &mut impl Rng) -> Self {
        let z: f64 = rng.sample(StandardNormal);
        Clock::new(RTC_DRIFT_MEAN_PPM + RTC_DRIFT_SD_PPM * z)
    }

    /// The rate as an integer `10⁹ + ppb`, at least 1.
    fn rate(&self) -> i128 {
        let ppb = (self.drift_ppm * 1000.0)
            .round()
            .clamp(-(PPB as f64) + 1.0, 1e15) as i128;
        PPB + ppb
    }

    /// What the pump's clock reads when `true_ms` ms have truly passed since both
    /// read zero (saturating at `u64::MAX`).
    pub fn hardware_ms(&self, true_ms: u64) -> u64 {
        let v = (i128::from(true_ms) * self.rate() + PPB / 2) / PPB;
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// The true time when the pump's clock reads `hardware_ms` (saturating).
    pub fn true_ms(&self, hardware_ms: u64) -> u64 {
        let rate = self.rate();
        let v = (i128::from(hardware_ms) * PPB + rate / 2) / rate;
        u64::try_from(v).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::{close, rng};

    #[test]
    fn gauge_reads_the_truth_with_small_noise_sim_014() {
        let cap = 35_000_000_000;
        let exact = BatteryGauge::exact(cap);
        let r = exact.reading(&mut rng(1), 17_500_000_000);
        assert_eq!(r.remaining_uj, Some(17_500_000_000));
        // Half full: 3000 + 200 × 0.4 / 0.9 = 3088.9 → 3089 mV.
        assert_eq!(r.voltage_mv, 3089);
        close(exact.voltage_mv(cap), 3_200.0, 1e-9);
        close(exact.voltage_mv(cap / 20), 2_800.0, 1e-9);
        close(exact.voltage_mv(0), 2_600.0, 1e-9);
        // Noisy: mean unbiased, spread 0.5 %.
        let g = BatteryGauge::new(cap);
        let mut rg = rng(2);
        let n = 10_000;
        let xs: Vec<f64> = (0..n)
            .map(|_| g.reading(&mut rg, 10_000_000_000).remaining_uj.unwrap_or(0) as f64 / 1e10)
            .collect();
        let mean = xs.iter().sum::<f64>() / f64::from(n);
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n)).sqrt();
        close(mean, 1.0, 0.0003);
        close(sd, 0.005, 0.0003);
        // No fuel gauge: voltage only.
        let v = BatteryGauge {
            fuel_gauge: false,
            ..g
        };
        assert_eq!(v.reading(&mut rg, 1).remaining_uj, None);
        // Never negative.
        let wild = BatteryGauge {
            relative_noise: 100.0,
            ..g
        };
        for _ in 0..100 {
            assert!(wild.reading(&mut rg, 5).remaining_uj.is_some());
        }
    }

    #[test]
    fn clock_drift_and_its_inverse_sim_014() {
        // 20 ppm fast over a day: 86,400,000 × 1.00002 = 86,401,728 ms.
        let c = Clock::new(20.0);
        assert_eq!(c.hardware_ms(86_400_000), 86_401_728);
        assert_eq!(c.true_ms(86_401_728), 86_400_000);
        // 50 ppm slow over seven years (2,556.75 days = 2.209032e11 ms): 11,045,160 ms
        // (3.07 h) behind.
        let slow = Clock::new(-50.0);
        let seven_years = 7 * 36_525 * 86_400_000 / 100;
        assert_eq!(seven_years - slow.hardware_ms(seven_years), 11_045_160);
        assert_eq!(Clock::PERFECT.hardware_ms(123_456_789), 123_456_789);
        // Round trip within 1 ms, and monotonic, for several drifts and many times.
        let mut r = rng(9);
        for ppm in [-4.9, 0.333, 100.0, -250_000.0, 37.123] {
            let c = Clock::new(ppm);
            let mut prev = 0;
            for i in 0..2_000u64 {
                let t = i * 1_234_567_891 + (i % 7);
                let hw = c.hardware_ms(t);
                assert!(c.true_ms(hw).abs_diff(t) <= 1, "{ppm} {t}");
                assert!(hw >= prev);
                prev = hw;
            }
        }
        // The population mean at 37 °C: −4.9 ppm.
        let n = 5_000;
        let mean = (0..n).map(|_| Clock::sample(&mut r).drift_ppm).sum::<f64>() / f64::from(n);
        close(mean, -4.896, 0.3);
    }
}
