//! Energy accounting and the battery indicators ERI and EOS (requirement PUMP-021).
//!
//! **Owns:** the pump's estimate of the energy it has used — strokes, controller wakes,
//! radio time and the quiescent draw, each counted in exact integer microjoules — the
//! correction of that estimate by hardware readings, the projection of remaining life
//! from a rolling window of daily totals, and the state [`BatteryState`] with its
//! transitions Ok → ElectiveReplacement (ERI) → EndOfService (EOS).
//!
//! **Must never:** raise the remaining-energy estimate (a hardware reading can only
//! lower it: overstating the battery delays the replacement); lose energy to rounding
//! (remainders are carried, so seven years of quiescent draw equal the exact product);
//! go back to an earlier state (EOS is final until the pump is replaced, i.e. a new
//! `Battery`); read a clock or a sensor — time and readings come in as arguments.
//!
//! # Model
//! - *used* = Σ strokes × `stroke_uj` + wakes × `wake_uj` + radio ms × `radio_uj_per_ms`
//!   + elapsed ms × `quiescent_uj_per_hour` / 3 600 000 (remainder carried)
//!   + corrections from hardware readings.
//! - *daily draw* = mean of the last [`WINDOW_DAYS`] full days (rounded up), or
//!   [`Battery::assumed_daily_uj`] before the first full day. Corrections are not draw:
//!   one large correction counted as one day's draw would make the projection collapse
//!   for a week and latch a false ERI.
//! - *EOS reserve* ([`Battery::reserve_uj`]): energy to keep the controller alive and
//!   sound the end-of-service alarm for [`EOS_RESERVE_DAYS`] days after delivery stops.
//! - *projected life* = (remaining − reserve) / daily draw: the delivery time left
//!   before EOS. ERI when it is at most `eri_threshold` (90 days by default: DOMAIN.md
//!   §2, after ERI the pump stops after 90 days), and only once a full day has been
//!   measured: the first-day assumption is not evidence (a smaller battery would get
//!   ERI on day 0, latched for good). EOS when remaining ≤ reserve.
//!
//! # Call order
//! Call [`Battery::advance`] (or [`Battery::update`], which advances) with `now`
//! *before* adding the strokes, wakes and radio time of `now`, so that they fall in the
//! right day of the window; call [`Battery::update`] after, and sleep no later than
//! [`Battery::next_check`].

use core::fmt;

use serde::{Deserialize, Serialize};
use thecal_rx::quantity::{MS_PER_DAY, MS_PER_HOUR, Rounding, mul_div};
use thecal_rx::{Duration, Instant};

use crate::alarm::{AlarmKind, HIGH_RULE, MEDIUM_RULE};
use crate::profile::HardwareProfile;

/// Full days averaged for the daily draw: a week, so a weekly clinic or remote habit
/// (radio) is averaged over its own period.
pub const WINDOW_DAYS: usize = 7;

/// A fuel-gauge reading corrects the estimate only when it lies below it by more than
/// this share of capacity, in permille: 2 %, four standard deviations of a 0.5 % gauge
/// (assumption), so that noise never moves the estimate while a real loss does.
pub const READING_TOLERANCE_PERMILLE: u64 = 20;

/// Default ERI threshold: 90 days of projected delivery left (DOMAIN.md §2).
pub const DEFAULT_ERI_THRESHOLD: Duration = Duration::from_days(90);

/// Days the EOS reserve must last after delivery stops: two weeks of the EOS alarm,
/// enough for a patient on holiday to reach the implanting centre. Design choice, check.
pub const EOS_RESERVE_DAYS: u64 = 14;

/// Energy of one alarm tone (piezo sounder, about 1 s), µJ. Engineering estimate, check.
pub const ALARM_TONE_UJ: u64 = 5_000;

/// Tones per day of a high-priority alarm sounding unacknowledged ([`HIGH_RULE`]): the
/// EOS alarm's worst case, 144.
pub const EOS_TONES_PER_DAY: u64 = match MS_PER_DAY.checked_div(HIGH_RULE.every.ms()) {
    Some(n) => n,
    None => 0,
};

/// Tones per day of the elective-replacement alarm (medium priority) sounding
/// unacknowledged: 24. Its wake-ups are draw that starts only at ERI, so the ERI
/// decision counts them ahead of time, or EOS would come a little under 90 days later.
pub const ERI_TONES_PER_DAY: u64 = match MS_PER_DAY.checked_div(MEDIUM_RULE.every.ms()) {
    Some(n) => n,
    None => 0,
};

/// Workload assumed before the first full day has been measured: the design basis
/// of the profiles' battery (0.5 mL/day, one wake per stroke) …
pub const ASSUMED_FLOW_NL_PER_DAY: u64 = 500_000;

/// … plus one minute of radio a day. Generous on purpose: the first day is the implant
/// day, with long programming sessions, and overstating the draw only moves ERI earlier.
pub const ASSUMED_RADIO_MS_PER_DAY: u64 = 60_000;

/// The battery indicator. Ordered: a battery only moves forward
/// (Ok → ElectiveReplacement → EndOfService).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BatteryState {
    /// More than the ERI threshold of delivery left.
    Ok,
    /// Elective replacement indicator: projected delivery left is under the threshold.
    ElectiveReplacement,
    /// End of service: only the reserve is left; delivery must stop. Final.
    EndOfService,
}

impl BatteryState {
    /// The alarm this state raises, if any.
    pub const fn alarm(self) -> Option<AlarmKind> {
        match self {
            BatteryState::Ok => None,
            BatteryState::ElectiveReplacement => Some(AlarmKind::ElectiveReplacement),
            BatteryState::EndOfService => Some(AlarmKind::EndOfService),
        }
    }
}

impl fmt::Display for BatteryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BatteryState::Ok => "battery ok",
            BatteryState::ElectiveReplacement => "elective replacement indicator (ERI)",
            BatteryState::EndOfService => "end of service (EOS)",
        })
    }
}

/// A measurement from the battery hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatteryReading {
    /// Remaining energy from a fuel gauge, µJ, if the hardware has one.
    pub remaining_uj: Option<u64>,
    /// Cell voltage, mV. Recorded for telemetry only: the profile carries no discharge
    /// curve, and a lithium cell's curve is too flat to estimate energy from.
    pub voltage_mv: u16,
}

/// The energy account of one implant's battery. Fixed size; persisted with the pump
/// state. A replacement pump starts a new `Battery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battery {
    capacity_uj: u64,
    used_uj: u64,
    /// Part of `used_uj` that came from hardware readings rather than counted draw.
    corrected_uj: u64,
    reserve_uj: u64,
    assumed_daily_uj: u64,
    stroke_uj: u32,
    wake_uj: u32,
    radio_uj_per_ms: u32,
    quiescent_uj_per_hour: u32,
    eri_threshold: Duration,
    /// Quiescent draw is accounted up to here.
    last_update: Instant,
    /// Quiescent energy not yet counted, in µJ·ms/h (always < [`MS_PER_HOUR`]).
    quiescent_carry: u64,
    /// Start of the day being accumulated.
    day_start: Instant,
    /// Draw so far in the day being accumulated.
    day_uj: u64,
    /// Totals of the last full days (a ring; only the first `days_recorded` are valid).
    daily_uj: [u64; WINDOW_DAYS],
    days_recorded: u8,
    next_day_slot: u8,
    state: BatteryState,
    last_voltage_mv: u16,
}

/// `WINDOW_DAYS` as the ring's `u8` cursor type (checked at compile time to fit).
const WINDOW_DAYS_U8: u8 = {
    assert!(WINDOW_DAYS > 0 && WINDOW_DAYS <= u8::MAX as usize);
    WINDOW_DAYS as u8
};

impl Battery {
    /// A fresh battery for `profile`, first used at `now`, with the default ERI
    /// threshold. A profile with `battery_uj == 0` is externally powered: the battery
    /// is then unmetered and stays [`BatteryState::Ok`].
    pub fn new(profile: &HardwareProfile, now: Instant) -> Self {
        let quiescent_day = u64::from(profile.quiescent_uj_per_hour).saturating_mul(24);
        let tone_uj = ALARM_TONE_UJ.saturating_add(u64::from(profile.wake_uj));
        let reserve_uj = EOS_RESERVE_DAYS.saturating_mul(
            quiescent_day.saturating_add(EOS_TONES_PER_DAY.saturating_mul(tone_uj)),
        );
        let strokes_per_day = ASSUMED_FLOW_NL_PER_DAY
            .checked_div(profile.stroke_volume.nl())
            .unwrap_or(0);
        let per_stroke = u64::from(profile.stroke_uj).saturating_add(u64::from(profile.wake_uj));
        let assumed_daily_uj = quiescent_day
            .saturating_add(strokes_per_day.saturating_mul(per_stroke))
            .saturating_add(
                ASSUMED_RADIO_MS_PER_DAY.saturating_mul(u64::from(profile.radio_uj_per_ms)),
            );
        Battery {
            capacity_uj: profile.battery_uj,
            used_uj: 0,
            corrected_uj: 0,
            reserve_uj,
            assumed_daily_uj,
            stroke_uj: profile.stroke_uj,
            wake_uj: profile.wake_uj,
            radio_uj_per_ms: profile.radio_uj_per_ms,
            quiescent_uj_per_hour: profile.quiescent_uj_per_hour,
            eri_threshold: DEFAULT_ERI_THRESHOLD,
            last_update: now,
            quiescent_carry: 0,
            day_start: now,
            day_uj: 0,
            daily_uj: [0; WINDOW_DAYS],
            days_recorded: 0,
            next_day_slot: 0,
            state: BatteryState::Ok,
            last_voltage_mv: 0,
        }
    }

    /// The same battery with another ERI threshold (projected delivery time left).
    pub const fn with_eri_threshold(mut self, eri_threshold: Duration) -> Self {
        self.eri_threshold = eri_threshold;
        self
    }

    /// Whether energy is accounted (false for an externally powered profile).
    pub const fn is_metered(&self) -> bool {
        self.capacity_uj != 0
    }

    /// Usable capacity, µJ.
    pub const fn capacity_uj(&self) -> u64 {
        self.capacity_uj
    }

    /// Energy used up to the last update, µJ, including hardware corrections.
    pub const fn used_uj(&self) -> u64 {
        self.used_uj
    }

    /// The part of [`used_uj`](Self::used_uj) added by hardware readings, µJ.
    pub const fn corrected_uj(&self) -> u64 {
        self.corrected_uj
    }

    /// Remaining energy at the last update, µJ.
    pub const fn remaining_uj(&self) -> u64 {
        self.capacity_uj.saturating_sub(self.used_uj)
    }

    /// The EOS reserve, µJ: [`EOS_RESERVE_DAYS`] × (quiescent day + [`EOS_TONES_PER_DAY`]
    /// tones of [`ALARM_TONE_UJ`] plus one wake each).
    pub const fn reserve_uj(&self) -> u64 {
        self.reserve_uj
    }

    /// The daily draw assumed before the first full day: quiescent day plus
    /// [`ASSUMED_FLOW_NL_PER_DAY`] in strokes with one wake each, plus
    /// [`ASSUMED_RADIO_MS_PER_DAY`] of radio.
    pub const fn assumed_daily_uj(&self) -> u64 {
        self.assumed_daily_uj
    }

    /// The ERI threshold.
    pub const fn eri_threshold(&self) -> Duration {
        self.eri_threshold
    }

    /// The current indicator.
    pub const fn state(&self) -> BatteryState {
        self.state
    }

    /// The last voltage reported by the hardware, mV (0: none yet).
    pub const fn last_voltage_mv(&self) -> u16 {
        self.last_voltage_mv
    }

    /// Full days measured so far, up to [`WINDOW_DAYS`].
    pub const fn days_measured(&self) -> u8 {
        self.days_recorded
    }

    /// The average daily draw used for projection, µJ/day: the mean of the last
    /// [`WINDOW_DAYS`] full days, rounded up (overstating the draw errs towards an early
    /// ERI), or [`assumed_daily_uj`](Self::assumed_daily_uj) before the first full day.
    pub fn daily_draw_uj(&self) -> u64 {
        let days = u64::from(self.days_recorded);
        if days == 0 {
            return self.assumed_daily_uj;
        }
        let sum = self
            .daily_uj
            .iter()
            .take(usize::from(self.days_recorded))
            .fold(0u64, |acc, &d| acc.saturating_add(d));
        mul_div(sum, 1, days, Rounding::Up).unwrap_or(u64::MAX)
    }

    /// Count `n` motor strokes (or valve pulses).
    pub fn add_strokes(&mut self, n: u32) {
        self.charge(u64::from(n).saturating_mul(u64::from(self.stroke_uj)));
    }

    /// Count `n` controller wake-ups.
    pub fn add_wakes(&mut self, n: u32) {
        self.charge(u64::from(n).saturating_mul(u64::from(self.wake_uj)));
    }

    /// Count `ms` milliseconds of radio.
    pub fn add_radio_ms(&mut self, ms: u32) {
        self.charge(u64::from(ms).saturating_mul(u64::from(self.radio_uj_per_ms)));
    }

    fn charge(&mut self, uj: u64) {
        self.used_uj = self.used_uj.saturating_add(uj);
        self.day_uj = self.day_uj.saturating_add(uj);
    }

    /// Quiescent energy from the last update to `until`: whole µJ and the new carry.
    /// Exact: `(elapsed × rate + carry) / ms-per-hour`, the remainder carried.
    fn quiescent_until(&self, until: Instant) -> (u64, u64) {
        let elapsed = u128::from(until.saturating_since(self.last_update).ms());
        let numerator = elapsed
            .saturating_mul(u128::from(self.quiescent_uj_per_hour))
            .saturating_add(u128::from(self.quiescent_carry));
        // In 64 bits when it fits (between wake-ups it always does): the same quotient
        // and remainder without a 128-bit division.
        if let Ok(n) = u64::try_from(numerator) {
            return (
                n.checked_div(MS_PER_HOUR).unwrap_or(0),
                n.checked_rem(MS_PER_HOUR).unwrap_or(0),
            );
        }
        let per_hour = u128::from(MS_PER_HOUR);
        let uj = numerator.checked_div(per_hour).unwrap_or(0);
        let carry = numerator.checked_rem(per_hour).unwrap_or(0);
        (
            u64::try_from(uj).unwrap_or(u64::MAX),
            u64::try_from(carry).unwrap_or(0),
        )
    }

    fn accrue_quiescent(&mut self, until: Instant) {
        if until <= self.last_update {
            return;
        }
        let (uj, carry) = self.quiescent_until(until);
        self.charge(uj);
        self.quiescent_carry = carry;
        self.last_update = until;
    }

    /// Files the day being accumulated into the window and starts the next one.
    fn close_day(&mut self) {
        if let Some(slot) = self.daily_uj.get_mut(usize::from(self.next_day_slot)) {
            *slot = self.day_uj;
        }
        self.next_day_slot = match self.next_day_slot.checked_add(1) {
            Some(n) if n < WINDOW_DAYS_U8 => n,
            _ => 0,
        };
        if self.days_recorded < WINDOW_DAYS_U8 {
            self.days_recorded = self.days_recorded.saturating_add(1);
        }
        self.day_uj = 0;
        self.day_start = self.day_start.saturating_add(Duration::from_days(1));
    }

    /// Accounts the quiescent draw up to `now` and closes every day that ended. An
    /// earlier `now` than the last update changes nothing (monotonic time).
    ///
    /// Bounded work for any gap: days that fall out of the window before they could be
    /// averaged are added in one step. That is exact because a whole day of quiescent
    /// draw is `24 × rate` µJ with no remainder, so the carry is unchanged.
    #[inline(always)]
    pub fn advance(&mut self, now: Instant) {
        // At most one partial day, one bulk step and WINDOW_DAYS full days.
        for _ in 0..WINDOW_DAYS.saturating_add(3) {
            let day_end = self.day_start.saturating_add(Duration::from_days(1));
            if now < day_end || day_end == self.day_start {
                break;
            }
            self.accrue_quiescent(day_end);
            self.close_day();
            let full_days = now.saturating_since(self.day_start).whole_days();
            let skip = full_days.saturating_sub(WINDOW_DAYS as u64);
            if skip > 0 {
                let quiescent_day = u64::from(self.quiescent_uj_per_hour).saturating_mul(24);
                self.used_uj = self
                    .used_uj
                    .saturating_add(skip.saturating_mul(quiescent_day));
                self.day_start = self.day_start.saturating_add(Duration::from_days(skip));
                self.last_update = self.day_start;
            }
        }
        self.accrue_quiescent(now);
    }

    /// A measurement from the hardware at `now`. A fuel-gauge figure lower than the
    /// estimate by more than [`READING_TOLERANCE_PERMILLE`] of capacity moves the
    /// estimate down to it; anything else is ignored (the estimate is only ever corrected
    /// conservatively). The band matters: a gauge with unbiased noise, read daily, would
    /// otherwise ratchet the estimate down by its noise every day and bring a false
    /// elective-replacement indicator years early (an unnecessary surgery). Returns
    /// whether the estimate moved.
    pub fn handle_reading(&mut self, now: Instant, reading: BatteryReading) -> bool {
        self.advance(now);
        self.last_voltage_mv = reading.voltage_mv;
        let Some(measured) = reading.remaining_uj else {
            return false;
        };
        if !self.is_metered() {
            return false;
        }
        let estimated = self.remaining_uj();
        let tolerance = mul_div(
            self.capacity_uj,
            READING_TOLERANCE_PERMILLE,
            1000,
            Rounding::Down,
        )
        .unwrap_or(0);
        if measured.saturating_add(tolerance) >= estimated {
            return false;
        }
        let correction = estimated.saturating_sub(measured);
        self.used_uj = self.used_uj.saturating_add(correction);
        self.corrected_uj = self.corrected_uj.saturating_add(correction);
        true
    }

    /// Remaining energy at `now` (including quiescent draw not yet accounted), µJ.
    fn remaining_at(&self, now: Instant) -> u64 {
        let (pending, _) = self.quiescent_until(now);
        self.capacity_uj
            .saturating_sub(self.used_uj.saturating_add(pending))
    }

    /// Projected delivery time left before EOS at the current daily draw:
    /// (remaining − reserve) / daily draw, rounded down. Zero once at or below the
    /// reserve; `None` when unmetered or when the draw is zero (no end in sight).
    pub fn projected_life(&self, now: Instant) -> Option<Duration> {
        if !self.is_metered() {
            return None;
        }
        let above_reserve = self.remaining_at(now).saturating_sub(self.reserve_uj);
        let draw = self.daily_draw_uj();
        mul_div(above_reserve, MS_PER_DAY, draw, Rounding::Down)
            .ok()
            .map(Duration::from_ms)
    }

    /// The daily draw the ERI decision projects with: the measured draw plus the ERI
    /// alarm's own tones (each a wake and a tone), which begin with ERI.
    fn eri_draw_uj(&self) -> u64 {
        let tone = ALARM_TONE_UJ.saturating_add(u64::from(self.wake_uj));
        self.daily_draw_uj()
            .saturating_add(ERI_TONES_PER_DAY.saturating_mul(tone))
    }

    /// Whether the delivery time left at the ERI draw is at most the ERI threshold.
    fn eri_due(&self, now: Instant) -> bool {
        let above_reserve = self.remaining_at(now).saturating_sub(self.reserve_uj);
        mul_div(
            above_reserve,
            MS_PER_DAY,
            self.eri_draw_uj(),
            Rounding::Down,
        )
        .is_ok_and(|life| life <= self.eri_threshold.ms())
    }

    /// Advances to `now` and re-evaluates the indicator. Returns the new state when it
    /// moved forward (it never moves back); a jump from Ok straight to EOS returns EOS.
    pub fn update(&mut self, now: Instant) -> Option<BatteryState> {
        self.advance(now);
        if !self.is_metered() {
            return None;
        }
        // ERI needs evidence: a projection from the first-day assumption alone (a
        // smaller battery, a lighter program) would raise it on day 0 and latch it for
        // the pump's life. EOS needs none: the energy is gone whatever the draw.
        let target = if self.remaining_uj() <= self.reserve_uj {
            BatteryState::EndOfService
        } else if self.days_recorded > 0 && self.eri_due(now) {
            BatteryState::ElectiveReplacement
        } else {
            BatteryState::Ok
        };
        if target > self.state {
            self.state = target;
            Some(target)
        } else {
            None
        }
    }

    /// When, at the current projected draw, the next transition (ERI, then EOS) is
    /// expected: the core can sleep until then instead of ticking. `now` if a
    /// transition is already due (call [`update`](Self::update)); `None` at EOS, when
    /// unmetered, or at zero draw.
    ///
    /// Computed in energy, not in rounded days: the time to burn, at the daily draw,
    /// the µJ between the remaining energy and the first level at which
    /// [`update`](Self::update) changes state, rounded up. At a steady draw the wake
    /// lands on the transition, not on a run of early wakes a microjoule apart.
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        if !self.is_metered() || self.state == BatteryState::EndOfService {
            return None;
        }
        let draw = self.daily_draw_uj();
        if draw == 0 {
            return None;
        }
        let remaining = self.remaining_at(now);
        if remaining <= self.reserve_uj {
            return Some(now);
        }
        let above_reserve = remaining.saturating_sub(self.reserve_uj);
        let to_burn = match self.state {
            BatteryState::EndOfService => return None,
            BatteryState::Ok if self.days_recorded == 0 => {
                // No evidence yet: look again when the first day closes (or at EOS, if
                // the assumed draw would reach it sooner).
                let day_end = self.day_start.saturating_add(Duration::from_days(1));
                let wait =
                    mul_div(above_reserve, MS_PER_DAY, draw, Rounding::Up).unwrap_or(u64::MAX);
                return Some(day_end.min(now.saturating_add(Duration::from_ms(wait))));
            }
            BatteryState::Ok => {
                // ERI once life ≤ threshold, with life = ⌊above_reserve × day / draw⌋:
                // above_reserve × day < (threshold + 1 ms) × draw, i.e.
                // above_reserve < ⌈(threshold + 1 ms) × draw / day⌉ (integers).
                let eri_level = mul_div(
                    self.eri_threshold.ms().saturating_add(1),
                    self.eri_draw_uj(),
                    MS_PER_DAY,
                    Rounding::Up,
                )
                .unwrap_or(u64::MAX);
                if above_reserve < eri_level {
                    return Some(now);
                }
                above_reserve.saturating_sub(eri_level).saturating_add(1)
            }
            // EOS once remaining ≤ reserve.
            BatteryState::ElectiveReplacement => above_reserve,
        };
        let wait = mul_div(to_burn, MS_PER_DAY, draw, Rounding::Up).unwrap_or(u64::MAX);
        Some(now.saturating_add(Duration::from_ms(wait)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing
    )]
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec::Vec;

    const HOUR: u64 = MS_PER_HOUR;
    const DAY: u64 = MS_PER_DAY;

    fn t(ms: u64) -> Instant {
        Instant::from_ms(ms)
    }

    fn synchromed() -> HardwareProfile {
        HardwareProfile::synchromed_class(20)
    }

    fn reading(remaining_uj: u64) -> BatteryReading {
        BatteryReading {
            remaining_uj: Some(remaining_uj),
            voltage_mv: 2_900,
        }
    }

    /// Runs the SynchroMed-class pump at 0.5 mL/day: 2000 strokes of 250 nL a day in 8
    /// batches of 250 every 3 h, one wake per stroke, 10 s of radio once a week. Returns
    /// the battery and the times (ms) of the ERI and EOS transitions.
    fn run_half_ml_per_day(until_days: u64) -> (Battery, Option<u64>, Option<u64>, Vec<u64>) {
        let mut b = Battery::new(&synchromed(), t(0));
        let (mut eri, mut eos) = (None, None);
        let mut predicted_eri = Vec::new();
        for step in 0..until_days * 8 {
            let now = step * 3 * HOUR;
            let day = step / 8;
            b.advance(t(now));
            b.add_strokes(250);
            b.add_wakes(250);
            if step % 56 == 0 {
                b.add_radio_ms(10_000);
            }
            match b.update(t(now)) {
                Some(BatteryState::ElectiveReplacement) => eri = Some(now),
                Some(BatteryState::EndOfService) => {
                    eos = Some(now);
                    break;
                }
                _ => {}
            }
            if step % 8 == 0 && [100, 1_000, 2_000].contains(&day) {
                predicted_eri.push(b.next_check(t(now)).unwrap().ms());
            }
        }
        (b, eri, eos, predicted_eri)
    }

    #[test]
    fn synchromed_class_at_half_ml_per_day_reaches_eri_and_eos_on_the_hand_worked_day_pump_021() {
        // By hand, SynchroMed-class profile, 0.5 mL/day = 500 000 nL / 250 nL = 2000
        // strokes a day:
        //   quiescent  360 000 µJ/h × 24 h        =  8 640 000 µJ/day
        //   strokes    2000 × 2 500 µJ            =  5 000 000 µJ/day
        //   wakes      2000 × 40 µJ               =     80 000 µJ/day
        //   radio      10 000 ms × 30 µJ / 7 days =     42 857.14 µJ/day
        //   average daily draw                    = 13 762 857.14 µJ/day
        //                                           (13 762 858 rounded up)
        // EOS reserve: 14 days × (8 640 000 + 144 tones × (5 000 + 40) µJ)
        //            = 14 × 9 365 760 = 131 120 640 µJ.
        // Delivery energy: 35 000 000 000 − 131 120 640 = 34 868 879 360 µJ.
        // EOS after 34 868 879 360 / 13 762 857.14 = 2533.55 days (6.94 years, 83.3
        // months: the 84-month design life). ERI 90 days earlier: 2443.55 days.
        let b = Battery::new(&synchromed(), t(0));
        assert_eq!(b.reserve_uj(), 131_120_640);
        assert_eq!(EOS_TONES_PER_DAY, 144);
        let (b2, eri, eos, predicted) = run_half_ml_per_day(2_600);
        assert_eq!(b2.daily_draw_uj(), 13_762_858);
        let eri_days = eri.unwrap() as f64 / DAY as f64;
        let eos_days = eos.unwrap() as f64 / DAY as f64;
        assert!((eri_days - 2443.55).abs() < 1.0, "ERI at day {eri_days}");
        assert!((eos_days - 2533.55).abs() < 1.0, "EOS at day {eos_days}");
        // EOS 90 days of delivery after ERI, as on SynchroMed (DOMAIN.md §2).
        assert!((eos_days - eri_days - 90.0).abs() < 1.0);
        // next_check, asked years ahead, predicts the ERI within a day.
        assert_eq!(predicted.len(), 3);
        for p in predicted {
            let p_days = p as f64 / DAY as f64;
            assert!(
                (p_days - eri_days).abs() < 1.0,
                "predicted {p_days}, got {eri_days}"
            );
        }
        assert_eq!(b2.state(), BatteryState::EndOfService);
    }

    #[test]
    fn first_day_uses_the_documented_assumption_pump_021() {
        let b = Battery::new(&synchromed(), t(0));
        // 8 640 000 quiescent + 2000 × (2500 + 40) strokes + 60 000 ms × 30 radio.
        assert_eq!(b.assumed_daily_uj(), 8_640_000 + 5_080_000 + 1_800_000);
        assert_eq!(b.daily_draw_uj(), 15_520_000);
        assert_eq!(b.days_measured(), 0);
        let mut b = b;
        b.advance(t(DAY - 1));
        assert_eq!(b.days_measured(), 0);
        b.advance(t(DAY));
        assert_eq!(b.days_measured(), 1);
        assert_eq!(b.daily_draw_uj(), 8_640_000);
    }

    /// A battery whose daily draw is measured at exactly the quiescent 8 640 000 µJ.
    fn quiescent_only_after_one_day() -> Battery {
        let mut b = Battery::new(&synchromed(), t(0));
        b.advance(t(DAY));
        assert_eq!(b.daily_draw_uj(), 8_640_000);
        b
    }

    #[test]
    fn eri_fires_when_projected_life_falls_below_90_days_pump_021() {
        let mut b = quiescent_only_after_one_day();
        // Measured draw 8 640 000 µJ/day (0.1 µJ/ms); the ERI decision adds the ERI
        // alarm's 24 tones a day of 5 000 + 40 µJ: 8 760 960 µJ/day.
        let d_eri = 8_640_000 + 24 * 5_040;
        assert_eq!(d_eri, 8_760_960);
        b.handle_reading(t(DAY), reading(b.reserve_uj() + 91 * d_eri));
        // Status shows the life at the measured draw: 91 × 8 760 960 µJ at 0.1 µJ/ms.
        assert_eq!(
            b.projected_life(t(DAY)),
            Some(Duration::from_ms(91 * 87_609_600))
        );
        assert_eq!(b.update(t(DAY)), None);
        // ERI is due when one ERI-day (8 760 960 µJ) is burnt: 87 609 600 ms later.
        let check = b.next_check(t(DAY)).unwrap();
        assert_eq!(check, t(DAY + 87_609_600));
        assert_eq!(b.update(t(check.ms() - 1)), None);
        assert_eq!(b.update(check), Some(BatteryState::ElectiveReplacement));
        assert_eq!(b.update(check), None);
        // EOS is then expected 90 × 87 609 600 ms (91.26 days) later: never under 90.
        let eos = b.next_check(check).unwrap();
        assert_eq!(eos, t(check.ms() + 90 * 87_609_600));
        assert!(eos.ms() - check.ms() >= 90 * DAY);
        assert_eq!(b.update(t(eos.ms() - HOUR)), None);
        assert_eq!(b.update(eos), Some(BatteryState::EndOfService));
    }

    #[test]
    fn eri_threshold_is_configurable_pump_021() {
        let mut b = quiescent_only_after_one_day().with_eri_threshold(Duration::from_days(120));
        assert_eq!(b.eri_threshold(), Duration::from_days(120));
        b.handle_reading(t(DAY), reading(b.reserve_uj() + 100 * 8_640_000));
        assert_eq!(b.update(t(DAY)), Some(BatteryState::ElectiveReplacement));
    }

    #[test]
    fn eos_is_final_pump_021() {
        let mut b = quiescent_only_after_one_day();
        // Straight from Ok to EOS: the reported transition is EOS.
        b.handle_reading(t(DAY), reading(b.reserve_uj()));
        assert_eq!(b.update(t(DAY)), Some(BatteryState::EndOfService));
        assert_eq!(b.next_check(t(DAY)), None);
        // A reading claiming a full battery does not bring it back.
        assert!(!b.handle_reading(t(2 * DAY), reading(b.capacity_uj())));
        for day in 2..400 {
            assert_eq!(b.update(t(day * DAY)), None);
            assert_eq!(b.state(), BatteryState::EndOfService);
        }
        assert_eq!(b.projected_life(t(400 * DAY)), Some(Duration::ZERO));
        assert_eq!(
            BatteryState::EndOfService.alarm(),
            Some(AlarmKind::EndOfService)
        );
        assert_eq!(
            BatteryState::ElectiveReplacement.alarm(),
            Some(AlarmKind::ElectiveReplacement)
        );
        assert_eq!(BatteryState::Ok.alarm(), None);
        assert_eq!(
            BatteryState::EndOfService.to_string(),
            "end of service (EOS)"
        );
    }

    #[test]
    fn a_low_reading_moves_the_estimate_down_a_high_one_never_up_pump_021() {
        let mut b = Battery::new(&synchromed(), t(0));
        b.add_strokes(1_000);
        let before = b.remaining_uj();
        assert!(!b.handle_reading(t(0), reading(before + 1_000_000)));
        assert_eq!(b.remaining_uj(), before);
        assert_eq!(b.last_voltage_mv(), 2_900);
        // Within the 2 % band (700 J of 35 kJ): gauge noise, ignored.
        assert!(!b.handle_reading(t(0), reading(before - 500_000_000)));
        assert_eq!(b.remaining_uj(), before);
        // Beyond it: a real loss, taken.
        assert!(b.handle_reading(t(0), reading(before - 1_000_000_000)));
        assert_eq!(b.remaining_uj(), before - 1_000_000_000);
        assert_eq!(b.corrected_uj(), 1_000_000_000);
        // A voltage-only reading changes nothing.
        let no_gauge = BatteryReading {
            remaining_uj: None,
            voltage_mv: 2_500,
        };
        assert!(!b.handle_reading(t(0), no_gauge));
        assert_eq!(b.remaining_uj(), before - 1_000_000_000);
        // Corrections are not draw: the projection still uses measured days.
        b.advance(t(DAY));
        assert_eq!(b.daily_draw_uj(), 8_640_000 + 2_500_000);
    }

    #[test]
    fn quiescent_accounting_over_seven_years_loses_nothing_to_rounding_pump_021() {
        let mut p = synchromed();
        // A rate that does not divide an hour's milliseconds, stepped irregularly.
        p.quiescent_uj_per_hour = 360_007;
        let mut b = Battery::new(&p, t(0));
        let seven_years = 7 * 365 * DAY + DAY;
        let steps = [1, 999, 3_599_999, 7_777_777, 13, 86_399_999, 1_234_567];
        let (mut now, mut i) = (0u64, 0usize);
        while now < seven_years {
            now = (now + steps[i % steps.len()]).min(seven_years);
            b.advance(t(now));
            i += 1;
        }
        let exact = u128::from(seven_years) * 360_007 / u128::from(HOUR);
        assert_eq!(u128::from(b.used_uj()), exact);
    }

    #[test]
    fn a_gap_of_years_in_one_advance_equals_hourly_steps_pump_021() {
        let mut p = synchromed();
        p.quiescent_uj_per_hour = 360_007;
        let end = 3 * 365 * DAY + 5 * HOUR + 17;
        let mut jump = Battery::new(&p, t(0));
        jump.add_strokes(5);
        jump.advance(t(end));
        let mut steps = Battery::new(&p, t(0));
        steps.add_strokes(5);
        let mut now = 0;
        while now < end {
            now = (now + HOUR).min(end);
            steps.advance(t(now));
        }
        assert_eq!(jump.used_uj(), steps.used_uj());
        assert_eq!(jump.daily_draw_uj(), steps.daily_draw_uj());
        assert_eq!(jump.days_measured(), 7);
    }

    #[test]
    fn the_end_of_time_does_not_hang_pump_021() {
        let mut b = Battery::new(&synchromed(), t(0));
        b.advance(Instant::MAX);
        assert_eq!(b.update(Instant::MAX), Some(BatteryState::EndOfService));
    }

    #[test]
    fn an_externally_powered_pump_is_unmetered_pump_021() {
        let mut p = HardwareProfile::external_trial();
        p.battery_uj = 0;
        let mut b = Battery::new(&p, t(0));
        b.add_radio_ms(1_000_000);
        assert!(!b.is_metered());
        assert_eq!(b.update(t(1_000 * DAY)), None);
        assert_eq!(b.state(), BatteryState::Ok);
        assert_eq!(b.projected_life(t(0)), None);
        assert_eq!(b.next_check(t(0)), None);
        assert!(!b.handle_reading(t(1_000 * DAY), reading(0)));
    }

    #[test]
    fn battery_state_survives_a_persist_round_trip_pump_021() {
        let (b, ..) = run_half_ml_per_day(30);
        let mut buf = [0u8; 256];
        let bytes = postcard::to_slice(&b, &mut buf).unwrap();
        let back: Battery = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, b);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        Strokes(u32),
        Wakes(u32),
        Radio(u32),
        Reading(u64),
        Update(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..40 * DAY).prop_map(Op::Advance),
            (0..100_000u32).prop_map(Op::Strokes),
            (0..100_000u32).prop_map(Op::Wakes),
            (0..10_000_000u32).prop_map(Op::Radio),
            (0..36_000_000_000u64).prop_map(Op::Reading),
            (0..400 * DAY).prop_map(Op::Update),
        ]
    }

    proptest! {
        #[test]
        fn used_never_decreases_and_state_never_goes_back_pump_021(
            ops in proptest::collection::vec(op(), 1..200)
        ) {
            let mut b = Battery::new(&synchromed(), t(0));
            let mut now = 0u64;
            for op in ops {
                let (used, state) = (b.used_uj(), b.state());
                match op {
                    Op::Advance(dt) => { now += dt; b.advance(t(now)); }
                    Op::Strokes(n) => b.add_strokes(n),
                    Op::Wakes(n) => b.add_wakes(n),
                    Op::Radio(ms) => b.add_radio_ms(ms),
                    Op::Reading(r) => { b.handle_reading(t(now), reading(r)); }
                    Op::Update(dt) => {
                        now += dt;
                        let change = b.update(t(now));
                        prop_assert!(change.is_none_or(|s| s > state));
                        prop_assert_eq!(change.unwrap_or(state), b.state());
                        if let Some(next) = b.next_check(t(now)) {
                            prop_assert!(next > t(now), "transition left pending");
                        }
                    }
                }
                prop_assert!(b.used_uj() >= used);
                prop_assert!(b.state() >= state);
                prop_assert!(b.remaining_uj() <= b.capacity_uj());
            }
        }

        #[test]
        fn quiescent_total_is_the_exact_product_for_any_steps_pump_021(
            rate in 0u32..=u32::MAX,
            steps in proptest::collection::vec(0u64..20 * DAY, 1..50)
        ) {
            let mut p = synchromed();
            p.quiescent_uj_per_hour = rate;
            let mut b = Battery::new(&p, t(0));
            let mut now = 0u64;
            for dt in steps {
                now += dt;
                b.advance(t(now));
            }
            let exact = u128::from(now) * u128::from(rate) / u128::from(HOUR);
            prop_assert_eq!(u128::from(b.used_uj()), exact);
        }
    }
}
