//! Fault injection (SIM-015), in the style of smoltcp's `FaultInjector`: a wrapper the
//! engine consults at each stroke and each battery reading, deciding from the seeded
//! generator whether something goes wrong.
//!
//! | outcome | what the motor reports to the core | fluid moved |
//! |---|---|---|
//! | [`StrokeOutcome::Moved`] | ok | the mechanism's true stroke |
//! | [`StrokeOutcome::Lost`] | ok | nothing (a slipping roller, an air lock) |
//! | [`StrokeOutcome::Stalled`] | stall | nothing |
//!
//! In an MRI field a motor always stalls ([`super::mechanism::Peristaltic::stall_in_field`]);
//! the engine passes `mri = true` only for a motor-driven pump (a valve pump's MRI
//! behaviour is [`super::mechanism::ValvePulse::enter_field`]).
//!
//! Random draws: none when the relevant probabilities are zero (so [`FaultPlan::NONE`]
//! leaves the random stream exactly as without an injector); otherwise one uniform per
//! stroke and one per reading, plus one to choose the kind of glitch.

use rand::Rng;
use thecal_pump::battery::BatteryReading;

/// Fault probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultPlan {
    /// Probability that a stroke outside an MRI field stalls.
    pub stall_probability: f64,
    /// Probability that a stroke is lost: reported ok, nothing moved.
    pub loss_probability: f64,
    /// Probability that a battery reading is a glitch.
    pub glitch_probability: f64,
}

impl FaultPlan {
    /// No faults.
    pub const NONE: FaultPlan = FaultPlan {
        stall_probability: 0.0,
        loss_probability: 0.0,
        glitch_probability: 0.0,
    };
}

/// What happened to one commanded stroke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrokeOutcome {
    /// The stroke moved fluid and the motor reported ok.
    Moved,
    /// The motor reported ok but nothing moved.
    Lost,
    /// The motor stalled and reported it.
    Stalled,
}

impl StrokeOutcome {
    /// Whether fluid moved.
    pub const fn moved_fluid(self) -> bool {
        matches!(self, StrokeOutcome::Moved)
    }

    /// Whether the motor reports success to the core.
    pub const fn reports_ok(self) -> bool {
        !matches!(self, StrokeOutcome::Stalled)
    }
}

/// A battery-sensor glitch: what the reading turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glitch {
    /// Reads empty: 0 µJ, 0 mV (a shorted sense line).
    Zero,
    /// Reads half the value (a bad sample).
    Half,
    /// Reads full scale: `u64::MAX` µJ, `u16::MAX` mV (an open sense line). The pump
    /// must never raise its estimate from it.
    Max,
}

impl Glitch {
    /// The glitched version of `reading`.
    pub fn apply(self, reading: BatteryReading) -> BatteryReading {
        match self {
            Glitch::Zero => BatteryReading {
                remaining_uj: reading.remaining_uj.map(|_| 0),
                voltage_mv: 0,
            },
            Glitch::Half => BatteryReading {
                remaining_uj: reading.remaining_uj.map(|r| r / 2),
                voltage_mv: reading.voltage_mv / 2,
            },
            Glitch::Max => BatteryReading {
                remaining_uj: reading.remaining_uj.map(|_| u64::MAX),
                voltage_mv: u16::MAX,
            },
        }
    }
}

/// The injector: a plan and counts of what it did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultInjector {
    /// The probabilities.
    pub plan: FaultPlan,
    /// Strokes stalled (including in MRI).
    pub stalls: u64,
    /// Strokes lost.
    pub losses: u64,
    /// Battery readings glitched.
    pub glitches: u64,
}

impl FaultInjector {
    /// An injector following `plan`.
    pub fn new(plan: FaultPlan) -> Self {
        FaultInjector {
            plan,
            ..FaultInjector::default()
        }
    }

    /// Decides the fate of one commanded stroke. `mri`: a motor in an MRI field always
    /// stalls (no draw). Otherwise, with `u` uniform in [0, 1): stall if
    /// `u < stall_probability`, lost if `u < stall_probability + loss_probability`,
    /// else moved.
    pub fn stroke(&mut self, rng: &mut impl Rng, mri: bool) -> StrokeOutcome {
        let outcome = if mri {
            StrokeOutcome::Stalled
        } else {
            let stall = self.plan.stall_probability.max(0.0);
            let loss = self.plan.loss_probability.max(0.0);
            if stall + loss <= 0.0 {
                StrokeOutcome::Moved
            } else {
                let u: f64 = rng.random();
                if u < stall {
                    StrokeOutcome::Stalled
                } else if u < stall + loss {
                    StrokeOutcome::Lost
                } else {
                    StrokeOutcome::Moved
                }
            }
        };
        match outcome {
            StrokeOutcome::Stalled => self.stalls += 1,
            StrokeOutcome::Lost => self.losses += 1,
            StrokeOutcome::Moved => {}
        }
        outcome
    }

    /// Passes a battery reading through, glitched with `glitch_probability` (the kind
    /// chosen uniformly).
    pub fn battery(&mut self, rng: &mut impl Rng, reading: BatteryReading) -> BatteryReading {
        if self.plan.glitch_probability <= 0.0 {
            return reading;
        }
        let u: f64 = rng.random();
        if u >= self.plan.glitch_probability {
            return reading;
        }
        self.glitches += 1;
        let kind = match rng.random_range(0..3u8) {
            0 => Glitch::Zero,
            1 => Glitch::Half,
            _ => Glitch::Max,
        };
        kind.apply(reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::{close, rng};
    use rand::RngCore;

    #[test]
    fn mri_always_stalls_and_no_plan_never_faults_sim_015() {
        let mut f = FaultInjector::new(FaultPlan::NONE);
        let mut r = rng(1);
        let before = r.clone();
        for _ in 0..1000 {
            assert_eq!(f.stroke(&mut r, false), StrokeOutcome::Moved);
        }
        assert_eq!(f.stroke(&mut r, true), StrokeOutcome::Stalled);
        let reading = BatteryReading {
            remaining_uj: Some(7),
            voltage_mv: 3000,
        };
        assert_eq!(f.battery(&mut r, reading), reading);
        // No draws were made.
        assert_eq!(r.next_u64(), before.clone().next_u64());
        assert_eq!((f.stalls, f.losses, f.glitches), (1, 0, 0));
        assert!(StrokeOutcome::Lost.reports_ok() && !StrokeOutcome::Lost.moved_fluid());
        assert!(!StrokeOutcome::Stalled.reports_ok());
        assert!(StrokeOutcome::Moved.moved_fluid());
    }

    #[test]
    fn frequencies_follow_the_plan_sim_015() {
        let mut f = FaultInjector::new(FaultPlan {
            stall_probability: 0.01,
            loss_probability: 0.05,
            glitch_probability: 0.1,
        });
        let mut r = rng(2);
        let n = 100_000;
        for _ in 0..n {
            f.stroke(&mut r, false);
        }
        close(f.stalls as f64 / f64::from(n), 0.01, 0.002);
        close(f.losses as f64 / f64::from(n), 0.05, 0.004);
        let reading = BatteryReading {
            remaining_uj: Some(1_000),
            voltage_mv: 3_100,
        };
        let mut kinds = [0u32; 3];
        for _ in 0..10_000 {
            let g = f.battery(&mut r, reading);
            match g.remaining_uj {
                Some(0) => kinds[0] += 1,
                Some(500) => kinds[1] += 1,
                Some(u64::MAX) => kinds[2] += 1,
                _ => assert_eq!(g, reading),
            }
        }
        close(f.glitches as f64 / 10_000.0, 0.1, 0.015);
        assert!(kinds.iter().all(|k| *k > 250), "{kinds:?}");
        // Same seed, same faults.
        let run = |seed| {
            let mut f = FaultInjector::new(FaultPlan {
                loss_probability: 0.3,
                ..FaultPlan::NONE
            });
            let mut r = rng(seed);
            (0..50).map(|_| f.stroke(&mut r, false)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
    }

    #[test]
    fn glitch_kinds_sim_015() {
        let r = BatteryReading {
            remaining_uj: Some(1_001),
            voltage_mv: 3_001,
        };
        assert_eq!(
            Glitch::Zero.apply(r),
            BatteryReading {
                remaining_uj: Some(0),
                voltage_mv: 0
            }
        );
        assert_eq!(
            Glitch::Half.apply(r),
            BatteryReading {
                remaining_uj: Some(500),
                voltage_mv: 1_500
            }
        );
        assert_eq!(Glitch::Max.apply(r).remaining_uj, Some(u64::MAX));
        let no_gauge = BatteryReading {
            remaining_uj: None,
            voltage_mv: 3_000,
        };
        assert_eq!(Glitch::Max.apply(no_gauge).remaining_uj, None);
    }
}
