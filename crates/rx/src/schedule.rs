//! Delivery schedules: flex (step) basal profiles and periodic boluses.
//!
//! A [`Schedule`] is one day profile used every day, or seven (Monday first), each of
//! up to 24 steps `(start minute, flow)`, plus up to eight periodic boluses at set
//! local times on chosen weekdays. Time here is **local wall time**, a [`LocalTime`] in
//! milliseconds since 1970-01-01 00:00 local (a Thursday); the pump derives it from its
//! clock and UTC offset, which the clinician sets.
//!
//! The module owns the exact ideal cumulative volume of a schedule at any instant
//! ([`Schedule::cumulative`]), from which daily totals, refill planning and the pump's
//! stroke scheduler are all derived, so that they can never disagree. It computes in
//! 128-bit "nL·ms/day" units and divides once, so no rounding accumulates.

use core::fmt;

use heapless::Vec;

use crate::quantity::{
    Duration, Flow, MS_PER_DAY, MS_PER_MINUTE, QuantityError, Rounding, Volume, mul_div,
};
use crate::seq::InPlace;

/// Steps a day profile may hold.
pub const MAX_STEPS: usize = 24;
/// Periodic boluses a schedule may hold.
pub const MAX_PERIODIC_BOLUSES: usize = 8;
/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 1440;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;

/// Local wall time: milliseconds since 1970-01-01 00:00 local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LocalTime(pub u64);

impl LocalTime {
    /// Day of the week, Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
    pub const fn weekday(self) -> u8 {
        ((self.0 / MS_PER_DAY).saturating_add(3) % 7) as u8
    }
    /// Milliseconds since local midnight.
    pub const fn ms_of_day(self) -> u64 {
        self.0 % MS_PER_DAY
    }
    /// `self + d`, saturating.
    pub const fn saturating_add(self, d: Duration) -> Self {
        LocalTime(self.0.saturating_add(d.ms()))
    }
}

/// A set of weekdays, bit 0 = Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Weekdays(pub u8);

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0x7f);
    /// Whether `day` (Monday = 0) is in the set.
    pub const fn contains(self, day: u8) -> bool {
        day < 7 && (self.0 >> day) & 1 == 1
    }
}

/// One step of a day profile: from `start_minute` (after local midnight) until the next
/// step, deliver `flow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Step {
    /// Minute of the day the step starts, 0–1439.
    pub start_minute: u16,
    /// Basal flow during the step.
    pub flow: Flow,
}

/// A periodic (scheduled) bolus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PeriodicBolus {
    /// Minute of the day it starts, 0–1439.
    pub start_minute: u16,
    /// Volume delivered, on top of the basal.
    pub volume: Volume,
    /// Time over which the volume is spread (more than zero, at most 24 h).
    pub duration: Duration,
    /// Days on which it is given.
    pub days: Weekdays,
}

/// Why a schedule was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleError {
    /// A day profile without steps.
    NoSteps,
    /// The first step must start at midnight (minute 0).
    FirstStepNotAtMidnight,
    /// Steps must be in strictly increasing start order.
    StepsOutOfOrder,
    /// A start minute of 1440 or more.
    MinuteOutOfDay(u16),
    /// More than [`MAX_STEPS`] steps.
    TooManySteps,
    /// More than [`MAX_PERIODIC_BOLUSES`] boluses.
    TooManyBoluses,
    /// A bolus with zero duration or longer than 24 h.
    BolusDuration,
    /// A bolus given on no day.
    BolusNoDays,
    /// Arithmetic overflow in a total.
    Overflow,
}

impl core::error::Error for ScheduleError {}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::NoSteps => f.write_str("a day profile needs at least one step"),
            ScheduleError::FirstStepNotAtMidnight => {
                f.write_str("the first step of a day must start at 00:00")
            }
            ScheduleError::StepsOutOfOrder => {
                f.write_str("steps must be listed in increasing order of start time")
            }
            ScheduleError::MinuteOutOfDay(m) => {
                write!(
                    f,
                    "start minute {m} is outside the day (allowed: 0 to 1439, i.e. 00:00 to 23:59)"
                )
            }
            ScheduleError::TooManySteps => write!(f, "a day holds at most {MAX_STEPS} steps"),
            ScheduleError::TooManyBoluses => {
                write!(
                    f,
                    "a schedule holds at most {MAX_PERIODIC_BOLUSES} periodic boluses"
                )
            }
            ScheduleError::BolusDuration => {
                f.write_str("a periodic bolus lasts more than 0 and at most 24 h")
            }
            ScheduleError::BolusNoDays => {
                f.write_str("a periodic bolus must be given on at least one day")
            }
            ScheduleError::Overflow => f.write_str("the schedule's totals are too large"),
        }
    }
}

impl From<QuantityError> for ScheduleError {
    fn from(_: QuantityError) -> Self {
        ScheduleError::Overflow
    }
}

/// A day's basal profile of up to 24 steps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DayProfile {
    steps: Vec<Step, MAX_STEPS>,
}

impl DayProfile {
    /// One flow all day.
    pub fn constant(flow: Flow) -> Self {
        let mut steps = Vec::new();
        let _ = steps.push(Step {
            start_minute: 0,
            flow,
        });
        DayProfile { steps }
    }

    /// From steps: the first at minute 0, strictly increasing, each before 1440.
    ///
    /// # Errors
    /// See [`ScheduleError`].
    pub fn new(steps: &[Step]) -> Result<Self, ScheduleError> {
        let first = steps.first().ok_or(ScheduleError::NoSteps)?;
        if first.start_minute != 0 {
            return Err(ScheduleError::FirstStepNotAtMidnight);
        }
        let mut out: Vec<Step, MAX_STEPS> = Vec::new();
        for s in steps {
            if s.start_minute >= MINUTES_PER_DAY {
                return Err(ScheduleError::MinuteOutOfDay(s.start_minute));
            }
            if out.last().is_some_and(|p| p.start_minute >= s.start_minute) {
                return Err(ScheduleError::StepsOutOfOrder);
            }
            out.push(*s).map_err(|_| ScheduleError::TooManySteps)?;
        }
        Ok(DayProfile { steps: out })
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Each step with its span `[start_ms, end_ms)` within the day.
    fn spans(&self) -> impl Iterator<Item = (u64, u64, Flow)> + '_ {
        self.steps.iter().enumerate().map(|(i, s)| {
            let end = self
                .steps
                .get(i.saturating_add(1))
                .map_or(MINUTES_PER_DAY, |n| n.start_minute);
            (minute_ms(s.start_minute), minute_ms(end), s.flow)
        })
    }

    /// Exact basal volume from midnight to `ms` into the day, in nL·ms/day.
    fn exact_until(&self, ms: u64) -> u128 {
        self.spans()
            .map(|(a, b, flow)| {
                let len = b.min(ms).saturating_sub(a);
                u128::from(flow.raw()).saturating_mul(u128::from(len))
            })
            .fold(0u128, u128::saturating_add)
    }

    /// Basal flow at `ms` into the day.
    fn flow_at(&self, ms: u64) -> Flow {
        self.spans()
            .find(|(a, b, _)| *a <= ms && ms < *b)
            .map_or(Flow::ZERO, |(_, _, f)| f)
    }

    /// The basal volume of the whole day.
    pub fn total(&self) -> Volume {
        exact_to_volume(self.exact_until(MS_PER_DAY))
    }

    /// The lowest and highest step flows.
    pub fn flow_range(&self) -> (Flow, Flow) {
        let min = self
            .steps
            .iter()
            .map(|s| s.flow)
            .min()
            .unwrap_or(Flow::ZERO);
        let max = self
            .steps
            .iter()
            .map(|s| s.flow)
            .max()
            .unwrap_or(Flow::ZERO);
        (min, max)
    }
}

const fn minute_ms(minute: u16) -> u64 {
    (minute as u64).saturating_mul(MS_PER_MINUTE)
}

fn exact_to_volume(exact: u128) -> Volume {
    let nl = exact.checked_div(u128::from(MS_PER_DAY)).unwrap_or(0);
    Volume::from_raw(u64::try_from(nl).unwrap_or(u64::MAX))
}

/// A complete delivery schedule: basal profile(s) and periodic boluses.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Schedule {
    /// One profile (every day) or seven (Monday first).
    /// Decoded in place, day by day (a week of profiles is nearly 3 KB).
    profiles: InPlace<Vec<DayProfile, 7>>,
    boluses: Vec<PeriodicBolus, MAX_PERIODIC_BOLUSES>,
}

impl Clone for Schedule {
    fn clone(&self) -> Self {
        Schedule {
            profiles: self.profiles.clone(),
            boluses: self.boluses.clone(),
        }
    }

    /// Copies `source` into this schedule in place, profile by profile, without a
    /// whole schedule as a temporary (nearly 3 KB on a microcontroller's stack).
    fn clone_from(&mut self, source: &Self) {
        self.profiles.clear();
        self.boluses.clear();
        // Both have the same capacities: nothing can be left out.
        let _ = self.profiles.extend_from_slice(&source.profiles);
        let _ = self.boluses.extend_from_slice(&source.boluses);
    }
}

impl Schedule {
    /// No profile at all: not a schedule to deliver, only a place to copy one into.
    pub(crate) const fn empty() -> Self {
        Schedule {
            profiles: InPlace(Vec::new()),
            boluses: Vec::new(),
        }
    }

    /// Simple continuous delivery.
    pub fn continuous(flow: Flow) -> Self {
        Self::daily(DayProfile::constant(flow))
    }

    /// [`Schedule::continuous`] in place: this schedule, whatever it held, becomes one
    /// flow all day, without a second schedule (nearly 3 KB) as a temporary.
    pub fn set_continuous(&mut self, flow: Flow) {
        self.profiles.clear();
        self.boluses.clear();
        // Cannot fail: just emptied.
        let _ = self.profiles.push(DayProfile::constant(flow));
    }

    /// The same profile every day.
    pub fn daily(profile: DayProfile) -> Self {
        let mut profiles = Vec::new();
        let _ = profiles.push(profile);
        Schedule {
            profiles: InPlace(profiles),
            boluses: Vec::new(),
        }
    }

    /// One profile per weekday, Monday first.
    pub fn weekly(days: [DayProfile; 7]) -> Self {
        Schedule {
            profiles: InPlace(Vec::from_array(days)),
            boluses: Vec::new(),
        }
    }

    /// Adds a periodic bolus.
    ///
    /// # Errors
    /// A bad start minute, zero or over-24-h duration, no days, or too many boluses.
    pub fn add_bolus(&mut self, bolus: PeriodicBolus) -> Result<(), ScheduleError> {
        if bolus.start_minute >= MINUTES_PER_DAY {
            return Err(ScheduleError::MinuteOutOfDay(bolus.start_minute));
        }
        if bolus.duration.is_zero() || bolus.duration > Duration::from_days(1) {
            return Err(ScheduleError::BolusDuration);
        }
        if bolus.days.0 & 0x7f == 0 {
            return Err(ScheduleError::BolusNoDays);
        }
        self.boluses
            .push(bolus)
            .map_err(|_| ScheduleError::TooManyBoluses)
    }

    /// The same schedule with every flow and periodic-bolus volume scaled by
    /// `num / den` (rounded to nearest): used to keep the dose when the concentration
    /// changes (new flow = old flow × old concentration / new concentration).
    ///
    /// # Errors
    /// [`ScheduleError::Overflow`] on overflow or a zero denominator.
    pub fn scaled(&self, num: u64, den: u64) -> Result<Schedule, ScheduleError> {
        let mut out = self.clone();
        out.scale(num, den)?;
        Ok(out)
    }

    /// [`Schedule::scaled`] in place: no second schedule (nearly 3 KB) is built, which
    /// matters on a microcontroller's stack.
    ///
    /// # Errors
    /// As [`Schedule::scaled`]; the schedule is then left partly scaled and must not be
    /// used (scale a copy that can be dropped on an error).
    pub fn scale(&mut self, num: u64, den: u64) -> Result<(), ScheduleError> {
        for p in &mut self.profiles {
            for s in &mut p.steps {
                s.flow = s.flow.scale(num, den, Rounding::Nearest)?;
            }
        }
        for b in &mut self.boluses {
            b.volume = b.volume.scale(num, den, Rounding::Nearest)?;
        }
        Ok(())
    }

    /// The mean daily volume over a week.
    pub fn mean_daily(&self) -> Volume {
        // A constant flow's week is `flow × 7 days`: its mean day is the flow, exactly.
        if let Some(f) = self.constant_flow() {
            return Volume::from_raw(f.raw());
        }
        exact_to_volume(self.week_exact().checked_div(7).unwrap_or(0))
    }

    /// The periodic boluses.
    pub fn boluses(&self) -> &[PeriodicBolus] {
        &self.boluses
    }

    /// The day profiles: one (every day) or seven (Monday first).
    pub fn profiles(&self) -> &[DayProfile] {
        &self.profiles
    }

    /// The profile used on `weekday` (Monday = 0).
    pub fn profile(&self, weekday: u8) -> Option<&DayProfile> {
        if self.profiles.len() == 1 {
            self.profiles.first()
        } else {
            self.profiles.get(usize::from(weekday))
        }
    }

    /// Exact volume of one occurrence of `b` delivered `elapsed` after it started.
    fn bolus_exact(b: &PeriodicBolus, elapsed: u64) -> u128 {
        let part = elapsed.min(b.duration.ms());
        let num = u128::from(b.volume.raw())
            .saturating_mul(u128::from(MS_PER_DAY))
            .saturating_mul(u128::from(part));
        num.checked_div(u128::from(b.duration.ms())).unwrap_or(0)
    }

    /// The flow of a schedule that never varies (one step, every day, no boluses).
    pub fn constant_flow(&self) -> Option<Flow> {
        match (self.profiles.as_slice(), self.boluses.is_empty()) {
            ([p], true) => match p.steps() {
                [only] => Some(only.flow),
                _ => None,
            },
            _ => None,
        }
    }

    /// Exact volume of everything that starts within one week, in nL·ms/day.
    fn week_exact(&self) -> u128 {
        if let Some(f) = self.constant_flow() {
            return u128::from(f.raw()).saturating_mul(u128::from(MS_PER_WEEK));
        }
        let mut sum = 0u128;
        for day in 0..7u8 {
            sum = sum.saturating_add(self.day_exact(day));
        }
        sum
    }

    /// Exact volume of basal and boluses that start on `weekday`, in nL·ms/day.
    fn day_exact(&self, weekday: u8) -> u128 {
        let basal = self
            .profile(weekday)
            .map_or(0, |p| p.exact_until(MS_PER_DAY));
        self.boluses
            .iter()
            .filter(|b| b.days.contains(weekday))
            .map(|b| Self::bolus_exact(b, b.duration.ms()))
            .fold(basal, u128::saturating_add)
    }

    /// Exact cumulative volume from the origin (1970-01-01 00:00 local) to `t`, in
    /// nL·ms/day. Monotone non-decreasing in `t`.
    pub fn cumulative_exact(&self, t: LocalTime) -> u128 {
        // A constant flow integrates in one multiplication (the common case, and the
        // pump's hot path).
        if let Some(f) = self.constant_flow() {
            return u128::from(f.raw()).saturating_mul(u128::from(t.0));
        }
        let weeks = t.0 / MS_PER_WEEK;
        let in_week = t.0 % MS_PER_WEEK;
        // Weeks here start on Thursday (the origin's weekday); `weekday_at` maps back.
        let weekday_at = |day_index: u64| (day_index.saturating_add(3) % 7) as u8;
        let mut sum = u128::from(weeks).saturating_mul(self.week_exact());
        let full_days = in_week / MS_PER_DAY;
        let into_day = in_week % MS_PER_DAY;
        for d in 0..full_days {
            sum = sum.saturating_add(self.day_exact(weekday_at(d)));
        }
        if let Some(p) = self.profile(weekday_at(full_days)) {
            sum = sum.saturating_add(p.exact_until(into_day));
        }
        // Boluses are counted whole on the day they start; correct the ones under way.
        for b in &self.boluses {
            let start = minute_ms(b.start_minute);
            // Today's occurrence, if it has started.
            if b.days.contains(weekday_at(full_days)) && into_day >= start {
                sum = sum.saturating_add(Self::bolus_exact(b, into_day.saturating_sub(start)));
            }
            // Yesterday's occurrence still running: counted whole above, remove the rest.
            let has_yesterday = full_days > 0 || weeks > 0;
            let yesterday = weekday_at(full_days.saturating_add(6));
            if has_yesterday && b.days.contains(yesterday) {
                let elapsed = into_day.saturating_add(MS_PER_DAY).saturating_sub(start);
                let whole = Self::bolus_exact(b, b.duration.ms());
                let done = Self::bolus_exact(b, elapsed);
                sum = sum.saturating_sub(whole.saturating_sub(done));
            }
        }
        sum
    }

    /// Ideal volume delivered in `[a, b)`, rounded down to whole nL.
    pub fn volume_between(&self, a: LocalTime, b: LocalTime) -> Volume {
        let d = self
            .cumulative_exact(b)
            .saturating_sub(self.cumulative_exact(a));
        exact_to_volume(d)
    }

    /// The total flow (basal plus any periodic bolus under way) at `t`.
    pub fn flow_at(&self, t: LocalTime) -> Flow {
        let day = t.weekday();
        let ms = t.ms_of_day();
        let mut flow = self.profile(day).map_or(Flow::ZERO, |p| p.flow_at(ms));
        for b in &self.boluses {
            let start = minute_ms(b.start_minute);
            let today =
                b.days.contains(day) && ms >= start && ms.saturating_sub(start) < b.duration.ms();
            let yesterday = b.days.contains((day.saturating_add(6)) % 7)
                && ms.saturating_add(MS_PER_DAY).saturating_sub(start) < b.duration.ms();
            if today || yesterday {
                let rate = mul_div(
                    b.volume.raw(),
                    MS_PER_DAY,
                    b.duration.ms(),
                    Rounding::Nearest,
                )
                .unwrap_or(u64::MAX);
                flow = flow.saturating_add(Flow::from_raw(rate));
            }
        }
        flow
    }

    /// The first instant after `t` at which [`Schedule::flow_at`] may change (a step
    /// boundary, a bolus start or end), within the next day.
    pub fn next_change_after(&self, t: LocalTime) -> LocalTime {
        let midnight = t.0.saturating_sub(t.ms_of_day());
        let mut best = midnight.saturating_add(MS_PER_DAY);
        let mut consider = |candidate: u64| {
            if candidate > t.0 && candidate < best {
                best = candidate;
            }
        };
        for day_offset in [0u64, MS_PER_DAY] {
            let base = midnight.saturating_add(day_offset);
            let weekday = LocalTime(base).weekday();
            if let Some(p) = self.profile(weekday) {
                for s in p.steps() {
                    consider(base.saturating_add(minute_ms(s.start_minute)));
                }
            }
            let yesterday = weekday.saturating_add(6) % 7;
            for b in &self.boluses {
                let start = base.saturating_add(minute_ms(b.start_minute));
                let end = start.saturating_add(b.duration.ms());
                if b.days.contains(weekday) {
                    consider(start);
                    consider(end);
                }
                if b.days.contains(yesterday) {
                    consider(end.saturating_sub(MS_PER_DAY));
                }
            }
        }
        LocalTime(best)
    }

    /// Total volume of the day `weekday` (basal plus boluses that start that day).
    pub fn day_total(&self, weekday: u8) -> Volume {
        exact_to_volume(self.day_exact(weekday))
    }

    /// The largest day total of the week.
    pub fn max_day_total(&self) -> Volume {
        (0..7u8)
            .map(|d| self.day_total(d))
            .max()
            .unwrap_or(Volume::ZERO)
    }

    /// Total volume of a week.
    pub fn week_total(&self) -> Volume {
        exact_to_volume(self.week_exact())
    }

    /// The lowest and highest basal step flows of any day.
    pub fn basal_range(&self) -> (Flow, Flow) {
        let mut lo = Flow::MAX;
        let mut hi = Flow::ZERO;
        for p in &self.profiles {
            let (a, b) = p.flow_range();
            lo = lo.min(a);
            hi = hi.max(b);
        }
        (lo.min(hi), hi)
    }

    /// The shortest time from `start` until the schedule plus a constant `extra` flow
    /// (e.g. the patient-bolus allowance) has consumed `volume`, to the millisecond
    /// (rounded up); `None` if it never does within 200 years.
    pub fn time_to_consume(
        &self,
        start: LocalTime,
        volume: Volume,
        extra: Flow,
    ) -> Option<Duration> {
        let target = u128::from(volume.raw()).saturating_mul(u128::from(MS_PER_DAY));
        let base = self.cumulative_exact(start);
        let consumed = |ms: u64| {
            let sched = self.cumulative_exact(start.saturating_add(Duration::from_ms(ms)));
            sched
                .saturating_sub(base)
                .saturating_add(u128::from(extra.raw()).saturating_mul(u128::from(ms)))
        };
        if target == 0 {
            return Some(Duration::ZERO);
        }
        let limit = Duration::from_days(200 * 366).ms();
        let mut hi = MS_PER_DAY;
        while consumed(hi) < target {
            if hi >= limit {
                return None;
            }
            hi = hi.saturating_mul(2).min(limit);
        }
        let mut lo = 0u64; // consumed(lo) < target
        while hi.saturating_sub(lo) > 1 {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            if consumed(mid) >= target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(Duration::from_ms(hi))
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

    fn flow(s: &str) -> Flow {
        s.parse().unwrap()
    }
    fn step(h: u16, m: u16, f: &str) -> Step {
        Step {
            start_minute: h * 60 + m,
            flow: flow(f),
        }
    }
    /// 2027-01-04 00:00 local, a Monday.
    const MONDAY: LocalTime = LocalTime(1_799_020_800_000);

    #[test]
    fn monday_reference_is_a_monday() {
        assert_eq!(MONDAY.weekday(), 0);
        assert_eq!(LocalTime(0).weekday(), 3);
    }

    #[test]
    fn flex_schedule_daily_total_rx_005() {
        // Baclofen flex: 0.3 mL/day 00:00-06:00, 0.6 mL/day 06:00-09:00 (before waking),
        // 0.4 mL/day 09:00-22:00, 0.3 mL/day 22:00-24:00.
        // 0.3×6/24 + 0.6×3/24 + 0.4×13/24 + 0.3×2/24 = (1.8 + 1.8 + 5.2 + 0.6)/24 = 0.391666 mL.
        let p = DayProfile::new(&[
            step(0, 0, "0.3 mL/day"),
            step(6, 0, "0.6 mL/day"),
            step(9, 0, "0.4 mL/day"),
            step(22, 0, "0.3 mL/day"),
        ])
        .unwrap();
        assert_eq!(p.total(), Volume::from_raw(391_666));
        let mut s = Schedule::daily(p);
        // Plus a 50 uL bolus at 07:00 over 30 min on weekdays only.
        s.add_bolus(PeriodicBolus {
            start_minute: 7 * 60,
            volume: "50 uL".parse().unwrap(),
            duration: Duration::from_minutes(30),
            days: Weekdays(0b0001_1111),
        })
        .unwrap();
        assert_eq!(s.day_total(0), Volume::from_raw(441_666));
        assert_eq!(s.day_total(6), Volume::from_raw(391_666));
        assert_eq!(s.week_total(), Volume::from_raw(391_666 * 7 + 250_000 + 4));
        let day = Duration::from_days(1);
        assert_eq!(
            s.volume_between(MONDAY, MONDAY.saturating_add(day)),
            Volume::from_raw(441_666)
        );
        // Halfway through the bolus: basal to 07:15 plus 25 uL.
        let t = MONDAY.saturating_add(Duration::from_minutes(7 * 60 + 15));
        let basal = 300_000 * 6 / 24 + 600_000 / 24 + 600_000 / 96; // 6 h, 1 h, 15 min
        assert_eq!(s.volume_between(MONDAY, t).raw(), basal + 25_000);
        assert_eq!(
            s.flow_at(t),
            flow("0.6 mL/day").saturating_add(flow("2.4 mL/day"))
        );
    }

    #[test]
    fn weekly_profiles_and_bolus_over_midnight_rx_005() {
        let mut days: [DayProfile; 7] =
            core::array::from_fn(|_| DayProfile::constant(flow("0.5 mL/day")));
        days[5] = DayProfile::constant(flow("0.25 mL/day")); // Saturday
        let mut s = Schedule::weekly(days);
        // Sunday 23:00 for 2 h: 1 h falls on Monday of the next week.
        s.add_bolus(PeriodicBolus {
            start_minute: 23 * 60,
            volume: "100 uL".parse().unwrap(),
            duration: Duration::from_hours(2),
            days: Weekdays(1 << 6),
        })
        .unwrap();
        let sunday = MONDAY.saturating_add(Duration::from_days(6));
        let monday = sunday.saturating_add(Duration::from_days(1));
        assert_eq!(s.volume_between(sunday, monday).raw(), 500_000 + 50_000);
        let one_am = monday.saturating_add(Duration::from_hours(1));
        assert_eq!(
            s.volume_between(monday, one_am).raw(),
            500_000 / 24 + 50_000
        );
        assert_eq!(s.day_total(5).raw(), 250_000);
        assert_eq!(s.max_day_total().raw(), 600_000);
        assert_eq!(
            s.next_change_after(sunday),
            sunday.saturating_add(Duration::from_hours(23))
        );
        assert_eq!(
            s.next_change_after(monday),
            monday.saturating_add(Duration::from_hours(1))
        );
    }

    #[test]
    fn bad_profiles_are_refused_with_reasons_rx_005() {
        assert_eq!(DayProfile::new(&[]), Err(ScheduleError::NoSteps));
        assert_eq!(
            DayProfile::new(&[step(1, 0, "1 mL/day")]),
            Err(ScheduleError::FirstStepNotAtMidnight)
        );
        assert_eq!(
            DayProfile::new(&[
                step(0, 0, "1 mL/day"),
                step(5, 0, "1 mL/day"),
                step(4, 0, "1 mL/day")
            ]),
            Err(ScheduleError::StepsOutOfOrder)
        );
        assert_eq!(
            DayProfile::new(&[
                step(0, 0, "1 mL/day"),
                Step {
                    start_minute: 1440,
                    flow: Flow::ZERO
                }
            ]),
            Err(ScheduleError::MinuteOutOfDay(1440))
        );
        let many: [Step; 25] = core::array::from_fn(|i| Step {
            start_minute: i as u16,
            flow: Flow::ZERO,
        });
        assert_eq!(DayProfile::new(&many), Err(ScheduleError::TooManySteps));
        let mut s = Schedule::continuous(Flow::ZERO);
        let b = PeriodicBolus {
            start_minute: 0,
            volume: Volume::ZERO,
            duration: Duration::ZERO,
            days: Weekdays::ALL,
        };
        assert_eq!(s.add_bolus(b), Err(ScheduleError::BolusDuration));
    }

    #[test]
    fn scaling_keeps_the_dose_for_a_new_concentration_rx_005() {
        // Baclofen 500 → 2000 mcg/mL: 1 mL/day becomes 0.25 mL/day.
        let s = Schedule::continuous(flow("1 mL/day"))
            .scaled(500, 2000)
            .unwrap();
        assert_eq!(s.flow_at(MONDAY), flow("0.25 mL/day"));
        assert_eq!(s.mean_daily(), "0.25 mL".parse().unwrap());
        assert_eq!(
            Schedule::continuous(flow("1 mL/day")).scaled(1, 0),
            Err(ScheduleError::Overflow)
        );
    }

    /// A week of different profiles and a periodic bolus, flows in nL/day from `f`.
    fn week(f: impl Fn(u64) -> u64) -> Schedule {
        let day = |d: u64| {
            DayProfile::new(&[
                Step {
                    start_minute: 0,
                    flow: Flow::from_raw(f(400_000 + d * 1_000)),
                },
                Step {
                    start_minute: 360,
                    flow: Flow::from_raw(f(800_000 + d * 3)),
                },
            ])
            .unwrap()
        };
        let mut s = Schedule::weekly([day(0), day(1), day(2), day(3), day(4), day(5), day(6)]);
        s.add_bolus(PeriodicBolus {
            start_minute: 600,
            volume: Volume::from_raw(f(50_000)),
            duration: Duration::from_minutes(30),
            days: Weekdays::ALL,
        })
        .unwrap();
        s
    }

    #[test]
    fn a_schedule_scaled_copied_or_reset_in_place_is_the_one_built_aside_rx_005() {
        // Scaled in place by 3/4: each flow and bolus volume by hand, rounded to nearest.
        let mut s = week(|v| v);
        s.scale(3, 4).unwrap();
        assert_eq!(s, week(|v| (v * 3 + 2) / 4));
        assert_eq!(s.profiles()[6].steps()[1].flow, Flow::from_raw(600_014));
        assert_eq!(week(|v| v).scale(1, 0), Err(ScheduleError::Overflow));
        // Copied into a schedule of another shape: the source, exactly.
        let mut into = Schedule::continuous(flow("2 mL/day"));
        into.clone_from(&week(|v| v));
        assert_eq!(into, week(|v| v));
        let mut back = week(|v| v);
        back.clone_from(&Schedule::continuous(flow("2 mL/day")));
        assert_eq!(back, Schedule::continuous(flow("2 mL/day")));
        // Made continuous in place: the bolus and the other days gone.
        let mut c = week(|v| v);
        c.set_continuous(flow("0.1 mL/day"));
        assert_eq!(c, Schedule::continuous(flow("0.1 mL/day")));
    }

    #[test]
    fn time_to_consume_inverts_cumulative_rx_005() {
        let s = Schedule::continuous(flow("0.5 mL/day"));
        let t = s
            .time_to_consume(MONDAY, "15 mL".parse().unwrap(), Flow::ZERO)
            .unwrap();
        assert_eq!(t, Duration::from_days(30));
        assert_eq!(
            s.time_to_consume(MONDAY, Volume::from_ml(1), Flow::ZERO),
            Some(Duration::from_days(2))
        );
        let never = Schedule::continuous(Flow::ZERO);
        assert_eq!(
            never.time_to_consume(MONDAY, Volume::from_ml(1), Flow::ZERO),
            None
        );
    }

    proptest! {
        #[test]
        fn cumulative_is_monotone_and_additive_rx_005(
            flows in proptest::collection::vec(0u64..30_000_000, 1..6),
            bolus_ul in 0u32..500,
            bolus_min in 1u64..1440,
            start_min in 0u16..1440,
            a in 0u64..(30 * MS_PER_DAY),
            len in 0u64..(10 * MS_PER_DAY),
        ) {
            let steps: std::vec::Vec<Step> = flows.iter().enumerate()
                .map(|(i, f)| Step { start_minute: (i as u16) * 200, flow: Flow::from_raw(*f) })
                .collect();
            let mut s = Schedule::daily(DayProfile::new(&steps).unwrap());
            s.add_bolus(PeriodicBolus {
                start_minute: start_min,
                volume: Volume::from_ul(bolus_ul),
                duration: Duration::from_minutes(bolus_min),
                days: Weekdays(0b101_0101),
            }).unwrap();
            let t0 = MONDAY.saturating_add(Duration::from_ms(a));
            let t1 = t0.saturating_add(Duration::from_ms(len));
            let t2 = t1.saturating_add(Duration::from_ms(len / 2));
            prop_assert!(s.cumulative_exact(t0) <= s.cumulative_exact(t1));
            prop_assert!(s.cumulative_exact(t1) <= s.cumulative_exact(t2));
            // Over a whole week the cumulative grows by exactly the week total.
            let week = t0.saturating_add(Duration::from_days(7));
            prop_assert_eq!(
                s.cumulative_exact(week) - s.cumulative_exact(t0),
                s.week_exact()
            );
            // Refill time is monotone: more volume never empties sooner.
            let v = Volume::from_ul(1 + (len % 5000) as u32);
            let more = v.saturating_add(Volume::from_ul(100));
            let extra = Flow::from_raw(1000);
            if let (Some(x), Some(y)) = (s.time_to_consume(t0, v, extra), s.time_to_consume(t0, more, extra)) {
                prop_assert!(x <= y);
            }
        }
    }
}
