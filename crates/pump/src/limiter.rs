//! The independent dose limiter (PUMP-015): the third, last line of defence for dose.
//!
//! **Owns** the count of drug mass actually delivered, per drug (at most
//! [`MAX_DRUGS`]), in rolling 1-hour and 24-hour windows, and the per-drug [`Limits`].
//! Before every stroke or bolus the core asks [`Limiter::check`]; after it, the core
//! tells [`Limiter::record`] what reached the patient. The check is *predictive*:
//! delivered in the window + proposed > limit → [`Veto`].
//!
//! **Must never** be switched off, reset or cleared by a command, and never let a clock
//! change release a delivery early. There is deliberately no `reset`, `clear` or
//! `disable` method; changing limits keeps the counts; and the limiter keeps a
//! high-water mark of time, so that a monotonic clock that jumps back (a restart with a
//! lost clock) can only make deliveries count *longer*, never shorter.
//!
//! # How it counts
//! Each window is a ring of compact bins: the 1 h window uses 1-minute bins, the 24 h
//! window 15-minute bins, `W/B + 1` bins each (61 and 97). Bin `i` covers
//! `[i·B, (i+1)·B)`. The count for window `W` at time `t` is the sum of every bin that
//! intersects `(t − W, t]`: it never understates what was delivered in that window,
//! and overstates by at most the deliveries of its oldest bin (deliveries in
//! `[⌊(t−W)/B⌋·B, t − W]`). A veto therefore lasts at most one bin (1 min or 15 min)
//! longer than an exact count would.
//!
//! Bins hold nanograms as `u32` (up to 4.29 g per bin). A bin that reaches `u32::MAX`
//! is *saturated* and makes the whole window count [`Mass::MAX`]: saturation can only
//! overstate, so the count stays conservative for any input.
//!
//! # Size
//! `size_of::<Limiter>()` is 2 704 bytes on a 64-bit host: 672 bytes per drug (two bin
//! rings of 61 + 97 `u32` with a `u8` length each, the limits and the drug id) and the
//! high-water mark. The whole state derives `serde` and is persisted across restarts;
//! its postcard encoding is far smaller (≈ 280 bytes for one drug with full rings).

use core::cmp::max;
use core::fmt;

use heapless::Vec;
use serde::{Deserialize, Serialize};
use thecal_rx::drug::DrugId;
use thecal_rx::quantity::{MS_PER_HOUR, MS_PER_MINUTE};
use thecal_rx::seq::InPlace;
use thecal_rx::{Duration, Instant, Mass};

use crate::event::Event;

/// The most drugs the limiter tracks: a reservoir holds at most this many.
pub const MAX_DRUGS: usize = thecal_rx::dose::MAX_DRUGS;

/// Bins of the 1 h window: 60 one-minute bins, plus one for the partly covered oldest.
const HOUR_BINS: usize = 61;
/// Bins of the 24 h window: 96 fifteen-minute bins, plus one for the partly covered oldest.
const DAY_BINS: usize = 97;
/// [`HOUR_BINS`] as a `u64`, for ring arithmetic on absolute bin numbers.
const HOUR_RING: u64 = 61;
/// [`DAY_BINS`] as a `u64`.
const DAY_RING: u64 = 97;
// The ring sizes above must agree with the capacities.
const _: () = assert!(HOUR_RING as usize == HOUR_BINS && DAY_RING as usize == DAY_BINS);
/// Width of a 24 h-window bin.
const DAY_BIN_MS: u64 = 900_000;
/// Milliseconds in 24 hours.
const DAY_MS: u64 = 86_400_000;

/// A rolling window of the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Window {
    /// The last hour.
    Hour,
    /// The last 24 hours.
    Day,
}

impl Window {
    /// Both windows, shortest first.
    pub const ALL: [Window; 2] = [Window::Hour, Window::Day];

    /// The window's length.
    pub const fn length(self) -> Duration {
        Duration::from_ms(self.length_ms())
    }

    /// The width of one bin of this window (1 min or 15 min).
    pub const fn bin_width(self) -> Duration {
        Duration::from_ms(self.bin_ms())
    }

    /// The window's length in whole hours (1 or 24), as logged in
    /// [`Event::LimiterVeto`].
    pub const fn hours(self) -> u8 {
        match self {
            Window::Hour => 1,
            Window::Day => 24,
        }
    }

    const fn length_ms(self) -> u64 {
        match self {
            Window::Hour => MS_PER_HOUR,
            Window::Day => DAY_MS,
        }
    }

    const fn bin_ms(self) -> u64 {
        match self {
            Window::Hour => MS_PER_MINUTE,
            Window::Day => DAY_BIN_MS,
        }
    }

    /// The absolute index of the bin holding time `t_ms`.
    const fn bin_of(self, t_ms: u64) -> u64 {
        match self {
            Window::Hour => t_ms / MS_PER_MINUTE,
            Window::Day => t_ms / DAY_BIN_MS,
        }
    }

    /// Ring slot of absolute bin `k`.
    fn slot(self, k: u64) -> usize {
        let slot = match self {
            Window::Hour => k % HOUR_RING,
            Window::Day => k % DAY_RING,
        };
        // A remainder below 97 always fits a usize.
        usize::try_from(slot).unwrap_or(0)
    }

    const fn bin_count(self) -> u64 {
        match self {
            Window::Hour => HOUR_RING,
            Window::Day => DAY_RING,
        }
    }

    /// The window's length in bins.
    const fn length_bins(self) -> u64 {
        match self {
            Window::Hour => MS_PER_HOUR / MS_PER_MINUTE,
            Window::Day => DAY_MS / DAY_BIN_MS,
        }
    }

    /// The oldest bin that intersects `(t − W, t]`.
    const fn oldest_bin(self, t_ms: u64) -> u64 {
        self.bin_of(t_ms.saturating_sub(self.length_ms()))
    }
}

/// The absolute bins of one instant in each window.
#[derive(Debug, Clone, Copy)]
struct Bins {
    hour: u64,
    day: u64,
}

impl Bins {
    const fn of(t: Instant) -> Self {
        Bins {
            hour: Window::Hour.bin_of(t.ms()),
            day: Window::Day.bin_of(t.ms()),
        }
    }

    const fn get(self, w: Window) -> u64 {
        match w {
            Window::Hour => self.hour,
            Window::Day => self.day,
        }
    }
}

// A window is a whole number of bins: its oldest bin at `t` is `t`'s bin less that
// number (saturating at zero, as `t − W` does).
const _: () = assert!(MS_PER_HOUR % MS_PER_MINUTE == 0 && DAY_MS % DAY_BIN_MS == 0);

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} h", self.hours())
    }
}

/// The dose limits of one drug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most drug mass in any rolling hour; `None`: no hourly limit.
    pub per_hour: Option<Mass>,
    /// Most drug mass in any rolling 24 hours.
    pub per_day: Mass,
}

impl Limits {
    /// The limit of `window`, if any.
    pub const fn of(&self, window: Window) -> Option<Mass> {
        match window {
            Window::Hour => self.per_hour,
            Window::Day => Some(self.per_day),
        }
    }
}

/// A refusal by the limiter: delivering the proposal would exceed a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Veto {
    /// The drug whose limit would be exceeded.
    pub drug: DrugId,
    /// The window whose limit would be exceeded.
    pub window: Window,
    /// Delivered in the window plus the proposed amount (saturating).
    pub would_be: Mass,
    /// The limit (zero when no limits are set for the drug).
    pub limit: Mass,
    /// Whether limits were set for the drug. A drug without limits may not be
    /// delivered at all (fail-safe); its veto reports the 24 h window and a zero limit.
    pub limits_set: bool,
}

impl fmt::Display for Veto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.limits_set {
            write!(
                f,
                "{}: {} delivery would reach {}, above the limit {}",
                self.drug, self.window, self.would_be, self.limit
            )
        } else {
            write!(
                f,
                "{}: no dose limits are set for this drug, so none may be delivered \
                 ({} delivery would reach {}); set its limits first",
                self.drug, self.window, self.would_be
            )
        }
    }
}

impl From<Veto> for Event {
    fn from(v: Veto) -> Event {
        Event::LimiterVeto {
            drug: v.drug,
            window_hours: v.window.hours(),
            would_be: v.would_be,
            limit: v.limit,
        }
    }
}

/// Why the limiter refused a change or could not count a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimiterError {
    /// Limits for a new drug when [`MAX_DRUGS`] drugs are already tracked.
    TooManyDrugs(DrugId),
    /// A delivery of a drug that could not be counted: [`MAX_DRUGS`] other drugs are
    /// already tracked. The caller must treat this as a fault.
    Uncounted(DrugId),
    /// Limits for saline, which carries no dose.
    Saline,
}

impl fmt::Display for LimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimiterError::TooManyDrugs(d) => write!(
                f,
                "cannot set limits for {d}: the limiter already tracks {MAX_DRUGS} drugs, \
                 the most it can; limits of a tracked drug may be changed"
            ),
            LimiterError::Uncounted(d) => write!(
                f,
                "a delivery of {d} could not be counted: the limiter already tracks \
                 {MAX_DRUGS} other drugs, the most it can"
            ),
            LimiterError::Saline => f.write_str(
                "saline carries no dose and takes no limits; limits apply to active drugs only",
            ),
        }
    }
}

/// One drug's limits and bin rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Counter {
    drug: DrugId,
    /// `None` for a drug that was delivered before its limits were set: it is
    /// counted, and every further delivery is vetoed until limits are set.
    limits: Option<Limits>,
    /// Rings of nanograms. They grow to full length at the first write: a missing slot
    /// reads as zero, so `new` can be `const` and every deserialized length is valid.
    hour: Vec<u32, HOUR_BINS, u8>,
    day: Vec<u32, DAY_BINS, u8>,
    /// Running totals of each ring (hour, day), so that a check costs the bins that
    /// left the window since the last record, not the whole window. Derived state: not
    /// persisted, rebuilt at the first record after a restore (until then the sums are
    /// taken bin by bin).
    #[serde(skip)]
    totals: Totals,
}

/// Running ring totals; `valid` is false until built.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    valid: bool,
    sum: [u64; 2],
    saturated: [u16; 2],
}

/// Derived from the rings: two counters with the same rings are equal whatever their
/// cache holds.
impl PartialEq for Totals {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Totals {}

const fn wi(w: Window) -> usize {
    match w {
        Window::Hour => 0,
        Window::Day => 1,
    }
}

impl Counter {
    const fn new(drug: DrugId, limits: Option<Limits>) -> Self {
        Counter {
            drug,
            limits,
            hour: Vec::new(),
            day: Vec::new(),
            totals: Totals {
                valid: true,
                sum: [0; 2],
                saturated: [0; 2],
            },
        }
    }

    /// Builds the running totals from the rings (after a restore).
    fn rebuild_totals(&mut self) {
        let mut t = Totals {
            valid: true,
            ..Totals::default()
        };
        for w in Window::ALL {
            let i = wi(w);
            for &bin in self.bins(w) {
                if bin == u32::MAX {
                    if let Some(n) = t.saturated.get_mut(i) {
                        *n = n.saturating_add(1);
                    }
                } else if let Some(s) = t.sum.get_mut(i) {
                    *s = s.saturating_add(u64::from(bin));
                }
            }
        }
        self.totals = t;
    }

    /// Adds `ng` to the bin of `w` at ring slot `slot`, keeping the totals.
    fn add(&mut self, w: Window, slot: usize, ng: u32) {
        let i = wi(w);
        let Some(bin) = self.bins_mut(w).get_mut(slot) else {
            return;
        };
        let old = *bin;
        *bin = old.saturating_add(ng);
        let new = *bin;
        if old == u32::MAX {
            return;
        }
        if new == u32::MAX {
            if let Some(n) = self.totals.saturated.get_mut(i) {
                *n = n.saturating_add(1);
            }
            if let Some(s) = self.totals.sum.get_mut(i) {
                *s = s.saturating_sub(u64::from(old));
            }
        } else if let Some(s) = self.totals.sum.get_mut(i) {
            *s = s.saturating_add(u64::from(new.saturating_sub(old)));
        }
    }

    /// Clears the bin of `w` at ring slot `slot`, keeping the totals.
    fn clear(&mut self, w: Window, slot: usize) {
        let i = wi(w);
        let Some(bin) = self.bins_mut(w).get_mut(slot) else {
            return;
        };
        let old = *bin;
        *bin = 0;
        if old == u32::MAX {
            if let Some(n) = self.totals.saturated.get_mut(i) {
                *n = n.saturating_sub(1);
            }
        } else if let Some(s) = self.totals.sum.get_mut(i) {
            *s = s.saturating_sub(u64::from(old));
        }
    }

    /// The sum of absolute bins `lo..=hi` of `w`, where `hi` is the high-water bin:
    /// the running total less the bins that left the window, when the totals are valid.
    fn window_sum(&self, w: Window, lo: u64, hi: u64) -> Mass {
        let i = wi(w);
        let first_in_ring = hi.saturating_add(1).saturating_sub(w.bin_count());
        let saturated = self.totals.saturated.get(i).copied().unwrap_or(0);
        if !self.totals.valid || saturated != 0 || lo < first_in_ring {
            return self.sum(w, lo, hi);
        }
        if lo > hi {
            return Mass::ZERO;
        }
        let mut total = self.totals.sum.get(i).copied().unwrap_or(0);
        let mut k = first_in_ring;
        while k < lo {
            total = total.saturating_sub(u64::from(self.bin(w, k)));
            k = k.saturating_add(1);
        }
        Mass::from_raw(total)
    }

    fn bins(&self, w: Window) -> &[u32] {
        match w {
            Window::Hour => &self.hour,
            Window::Day => &self.day,
        }
    }

    /// The bins of `w`, grown to full length so that every slot can be written.
    fn bins_mut(&mut self, w: Window) -> &mut [u32] {
        // `resize` cannot fail: the length asked for is the capacity.
        match w {
            Window::Hour => {
                if self.hour.len() != HOUR_BINS {
                    let _ = self.hour.resize(HOUR_BINS, 0);
                }
                &mut self.hour
            }
            Window::Day => {
                if self.day.len() != DAY_BINS {
                    let _ = self.day.resize(DAY_BINS, 0);
                }
                &mut self.day
            }
        }
    }

    fn bin(&self, w: Window, k: u64) -> u32 {
        self.bins(w).get(w.slot(k)).copied().unwrap_or(0)
    }

    /// The sum of absolute bins `lo..=hi` of `w`; [`Mass::MAX`] if one is saturated.
    fn sum(&self, w: Window, lo: u64, hi: u64) -> Mass {
        let mut total: u64 = 0;
        let mut k = lo;
        while k <= hi {
            let bin = self.bin(w, k);
            if bin == u32::MAX {
                return Mass::MAX;
            }
            total = total.saturating_add(u64::from(bin));
            match k.checked_add(1) {
                Some(next) => k = next,
                None => break,
            }
        }
        Mass::from_raw(total)
    }
}

/// A ring of `N` bins' length as a `u64` (`N` is 61 or 97).
const fn ring_len<const N: usize>() -> u64 {
    N as u64
}

/// The slot of absolute bin `k` in a ring of `N` bins.
#[inline(always)]
fn slot_of<const N: usize>(k: u64) -> usize {
    // A remainder below `N` always fits a usize.
    k.checked_rem(ring_len::<N>())
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or(0)
}

/// One ring's part of [`Limiter::stroke_one_counter`]: the check of a stroke of `ng`
/// nanograms at bin `to`, the high-water mark being at bin `from`, and what recording
/// it writes.
struct RingStroke {
    from: u64,
    to: u64,
    /// The value of `to`'s slot once the stroke is recorded (below `u32::MAX`).
    bin: u32,
    /// The ring's total once the stroke is recorded.
    total: u64,
}

impl RingStroke {
    /// `None` when the stroke would exceed `limit`, or does not fit the stroke path:
    /// the ring is not full length, the stroke enters a whole ring of bins or more,
    /// or its bin would saturate. The bins entered since `from` take over the slots
    /// of the bins that leave the window, so the window's count at `to` is `total`
    /// less those slots.
    #[inline(always)]
    fn check<const N: usize>(
        ring: &[u32],
        total: u64,
        (from, to): (u64, u64),
        ng: u32,
        limit: Option<Mass>,
    ) -> Option<RingStroke> {
        if ring.len() != N {
            return None;
        }
        let entered = to.checked_sub(from)?;
        let (leaving, kept) = if entered == 0 {
            (0, *ring.get(slot_of::<N>(to))?)
        } else {
            if entered >= ring_len::<N>() {
                return None;
            }
            let mut leaving: u64 = 0;
            let mut k = from;
            while k < to {
                k = k.saturating_add(1);
                leaving = leaving.saturating_add(u64::from(*ring.get(slot_of::<N>(k))?));
            }
            (leaving, 0)
        };
        let count = total.saturating_sub(leaving);
        if let Some(limit) = limit {
            if Mass::from_raw(count).saturating_add(Mass::from_raw(u64::from(ng))) > limit {
                return None;
            }
        }
        let bin = kept.checked_add(ng).filter(|&b| b != u32::MAX)?;
        Some(RingStroke {
            from,
            to,
            bin,
            total: count.saturating_add(u64::from(ng)),
        })
    }

    /// Clears the slots entered, writes the stroke's bin, and returns the new total.
    #[inline(always)]
    fn commit<const N: usize>(self, ring: &mut [u32]) -> u64 {
        let mut k = self.from;
        while k < self.to {
            k = k.saturating_add(1);
            if let Some(bin) = ring.get_mut(slot_of::<N>(k)) {
                *bin = 0;
            }
        }
        if let Some(bin) = ring.get_mut(slot_of::<N>(self.to)) {
            *bin = self.bin;
        }
        self.total
    }
}

/// The independent dose limiter. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limiter {
    /// The latest time seen by [`Limiter::record`]; the limiter's own clock never goes
    /// back from it. The rings hold, for each window, the bins up to `bin_of(high_water)`.
    high_water: Instant,
    /// Decoded in place, drug by drug, at a restore (see [`InPlace`]).
    counters: InPlace<Vec<Counter, MAX_DRUGS, u8>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new()
    }
}

impl Limiter {
    /// A limiter with no drugs: it vetoes every drug until its limits are set.
    pub const fn new() -> Self {
        Limiter {
            high_water: Instant::ZERO,
            counters: InPlace(Vec::new()),
        }
    }

    /// Sets the limits of `drug`, adding the drug if it is not tracked yet. Changing
    /// limits never clears the counts: a lowered limit applies to what was already
    /// delivered.
    ///
    /// # Errors
    /// [`LimiterError::TooManyDrugs`] for a new drug when [`MAX_DRUGS`] are tracked;
    /// [`LimiterError::Saline`] for saline.
    pub fn set_limits(&mut self, drug: DrugId, limits: Limits) -> Result<(), LimiterError> {
        if drug == DrugId::Saline {
            return Err(LimiterError::Saline);
        }
        if let Some(c) = self.counters.iter_mut().find(|c| c.drug == drug) {
            c.limits = Some(limits);
            return Ok(());
        }
        self.counters
            .push(Counter::new(drug, Some(limits)))
            .map_err(|_| LimiterError::TooManyDrugs(drug))
    }

    /// Whether nothing of `drug` is counted in either window at `now` (a drug the
    /// limiter does not track is idle).
    pub fn is_idle(&self, now: Instant, drug: DrugId) -> bool {
        Window::ALL
            .iter()
            .all(|w| self.delivered(now, drug, *w).is_zero())
    }

    /// Stops tracking every drug that is idle at `now` ([`Limiter::is_idle`]) and for
    /// which `keep` is false, so that a pump whose drugs change over years never runs
    /// out of counters. Nothing counted is lost: an idle drug's windows are empty, and
    /// a drug that comes back starts from empty windows, as it would have.
    pub fn forget_idle(&mut self, now: Instant, keep: impl Fn(DrugId) -> bool) {
        let idle: Vec<DrugId, MAX_DRUGS> = self
            .counters
            .iter()
            .map(|c| c.drug)
            .filter(|d| !keep(*d) && self.is_idle(now, *d))
            .collect();
        self.counters.retain(|c| !idle.contains(&c.drug));
    }

    /// Whether limits can be set for every drug of `drugs` once the idle drugs not
    /// kept are forgotten ([`Limiter::forget_idle`] with the same `keep`). Changes
    /// nothing.
    ///
    /// # Errors
    /// [`LimiterError::TooManyDrugs`] naming the first drug that would not fit.
    pub fn room_for(
        &self,
        now: Instant,
        drugs: &[DrugId],
        keep: impl Fn(DrugId) -> bool,
    ) -> Result<(), LimiterError> {
        let mut used = self
            .counters
            .iter()
            .filter(|c| keep(c.drug) || !self.is_idle(now, c.drug))
            .count();
        for (i, &d) in drugs.iter().enumerate() {
            let seen = drugs.iter().take(i).any(|x| *x == d);
            let kept = self
                .counters
                .iter()
                .any(|c| c.drug == d && (keep(d) || !self.is_idle(now, d)));
            if d == DrugId::Saline || seen || kept {
                continue;
            }
            used = used.saturating_add(1);
            if used > MAX_DRUGS {
                return Err(LimiterError::TooManyDrugs(d));
            }
        }
        Ok(())
    }

    /// The limits of `drug`, if set.
    pub fn limits(&self, drug: DrugId) -> Option<Limits> {
        self.counter(drug).and_then(|c| c.limits)
    }

    /// The tracked drugs, in the order they were added.
    pub fn drugs(&self) -> impl Iterator<Item = DrugId> + '_ {
        self.counters.iter().map(|c| c.drug)
    }

    /// The limiter's clock: the latest `now` passed to [`Limiter::record`].
    pub const fn high_water(&self) -> Instant {
        self.high_water
    }

    /// Whether delivering `proposed` at `now` keeps every drug within its limits.
    ///
    /// Entries for the same drug are added up; saline and zero masses are ignored (they
    /// add no dose). A drug without limits is vetoed (fail-safe). The first limit that
    /// would be exceeded is reported, the hour before the day.
    ///
    /// # Errors
    /// The [`Veto`] that forbids the proposal.
    pub fn check(&self, now: Instant, proposed: &[(DrugId, Mass)]) -> Result<(), Veto> {
        let t = self.effective(now);
        // One entry (a single-drug stroke): nothing to add up.
        if let [(drug, amount)] = proposed {
            if *drug == DrugId::Saline || amount.is_zero() {
                return Ok(());
            }
            return self.check_drug(t, *drug, *amount);
        }
        for (i, &(drug, _)) in proposed.iter().enumerate() {
            // Each drug once, with the total of all its entries.
            if drug == DrugId::Saline || proposed.iter().take(i).any(|(d, _)| *d == drug) {
                continue;
            }
            let amount = proposed
                .iter()
                .filter(|(d, _)| *d == drug)
                .fold(Mass::ZERO, |sum, (_, m)| sum.saturating_add(*m));
            if amount.is_zero() {
                continue;
            }
            self.check_drug(t, drug, amount)?;
        }
        Ok(())
    }

    /// [`Limiter::check`] of `amount` of one active drug at `t` (on the limiter's clock).
    fn check_drug(&self, t: Instant, drug: DrugId, amount: Mass) -> Result<(), Veto> {
        match self.counter(drug) {
            Some(c) => self.check_counter(c, t, drug, amount),
            None => Err(Veto {
                drug,
                window: Window::Day,
                would_be: self.delivered(t, drug, Window::Day).saturating_add(amount),
                limit: Mass::ZERO,
                limits_set: false,
            }),
        }
    }

    /// [`Limiter::check_drug`] with the drug's counter `c` found.
    fn check_counter(
        &self,
        c: &Counter,
        t: Instant,
        drug: DrugId,
        amount: Mass,
    ) -> Result<(), Veto> {
        let Some(limits) = c.limits else {
            return Err(Veto {
                drug,
                window: Window::Day,
                would_be: self.count(c, t, Window::Day).saturating_add(amount),
                limit: Mass::ZERO,
                limits_set: false,
            });
        };
        for window in Window::ALL {
            let Some(limit) = limits.of(window) else {
                continue;
            };
            let would_be = self.count(c, t, window).saturating_add(amount);
            if would_be > limit {
                return Err(Veto {
                    drug,
                    window,
                    would_be,
                    limit,
                    limits_set: true,
                });
            }
        }
        Ok(())
    }

    /// Counts what was actually delivered at `now`. Every delivery is counted, vetoed or
    /// not (the limiter counts reality); saline and zero masses are skipped. A drug
    /// delivered before its limits were set is added without limits, so that it is
    /// counted and further deliveries are vetoed.
    ///
    /// # Errors
    /// [`LimiterError::Uncounted`] for a drug that could not be added because
    /// [`MAX_DRUGS`] others are tracked; the other entries are still counted.
    pub fn record(
        &mut self,
        now: Instant,
        delivered: &[(DrugId, Mass)],
    ) -> Result<(), LimiterError> {
        let t = self.effective(now);
        self.advance(t);
        let hour_slot = Window::Hour.slot(Window::Hour.bin_of(t.ms()));
        let day_slot = Window::Day.slot(Window::Day.bin_of(t.ms()));
        let mut result = Ok(());
        for &(drug, mass) in delivered {
            if drug == DrugId::Saline || mass.is_zero() {
                continue;
            }
            let c = match self.counters.iter().position(|c| c.drug == drug) {
                Some(i) => self.counters.get_mut(i),
                None => {
                    if self.counters.push(Counter::new(drug, None)).is_err() {
                        result = result.and(Err(LimiterError::Uncounted(drug)));
                        continue;
                    }
                    self.counters.last_mut()
                }
            };
            // A mass beyond u32 saturates the bin, which then reads as unbounded.
            let ng = u32::try_from(mass.ng()).unwrap_or(u32::MAX);
            if let Some(c) = c {
                c.add(Window::Hour, hour_slot, ng);
                c.add(Window::Day, day_slot, ng);
            }
        }
        result
    }

    /// [`Limiter::check`] then, if it passes, [`Limiter::record`] of the same
    /// delivery: the write-ahead count of a stroke. A single-drug delivery finds its
    /// counter and its bins once. The result is exactly that of the two calls (a
    /// vetoed delivery changes nothing).
    ///
    /// # Errors
    /// The [`Veto`] that forbids the delivery; nothing is recorded then.
    pub fn check_and_record(
        &mut self,
        now: Instant,
        delivered: &[(DrugId, Mass)],
    ) -> Result<(), Veto> {
        let single = match delivered {
            [(drug, mass)] if *drug != DrugId::Saline && !mass.is_zero() => Some((*drug, *mass)),
            _ => None,
        };
        let Some((drug, mass)) = single else {
            self.check(now, delivered)?;
            let _ = self.record(now, delivered);
            return Ok(());
        };
        let t = self.effective(now);
        if self.stroke_one_counter(t, drug, mass) {
            return Ok(());
        }
        let Some(i) = self.counters.iter().position(|c| c.drug == drug) else {
            // No counter: vetoed (no limits), as `check` reports it.
            return self.check(now, delivered);
        };
        // Each window's bin of `t` and of the high-water mark, worked out once.
        let new = Bins::of(t);
        let old = Bins::of(self.high_water);
        if let Some(c) = self.counters.get(i) {
            let Some(limits) = c.limits else {
                return self.check(now, delivered);
            };
            for w in Window::ALL {
                let Some(limit) = limits.of(w) else {
                    continue;
                };
                // As `count`: a window is a whole number of bins, so its oldest bin
                // is `t`'s less that number.
                let lo = new.get(w).saturating_sub(w.length_bins());
                let would_be = c.window_sum(w, lo, old.get(w)).saturating_add(mass);
                if would_be > limit {
                    // The veto, as `check` reports it; nothing is recorded.
                    return self.check(now, delivered);
                }
            }
        }
        self.advance_bins(t, old, new);
        // A mass beyond u32 saturates the bin, which then reads as unbounded.
        let ng = u32::try_from(mass.ng()).unwrap_or(u32::MAX);
        if let Some(c) = self.counters.get_mut(i) {
            c.add(Window::Hour, Window::Hour.slot(new.hour), ng);
            c.add(Window::Day, Window::Day.slot(new.day), ng);
        }
        Ok(())
    }

    /// The common stroke of [`Limiter::check_and_record`], worked in one pass: the only
    /// counter is `drug`'s, with limits, full rings, valid totals and no saturated
    /// bin, and `t` (on the limiter's clock) enters fewer bins than a ring holds. The
    /// bins that `t` pushes out of a window are the ring slots it enters, so each
    /// window's count at `t` is its running total less those slots; the check, the
    /// clearing of those slots and the record then touch each of them once. Returns
    /// `true` when the stroke passed and is recorded; `false`, with nothing changed,
    /// when the stroke is vetoed or does not fit this path (the general path then
    /// decides, with the same result).
    fn stroke_one_counter(&mut self, t: Instant, drug: DrugId, mass: Mass) -> bool {
        let (from, to) = (self.high_water.ms(), t.ms());
        let [c] = self.counters.as_mut_slice() else {
            return false;
        };
        let Some(limits) = c.limits else {
            return false;
        };
        let Ok(ng) = u32::try_from(mass.ng()) else {
            return false;
        };
        if c.drug != drug || !c.totals.valid || c.totals.saturated != [0, 0] {
            return false;
        }
        let [hour_total, day_total] = c.totals.sum;
        let Some(hour) = RingStroke::check::<HOUR_BINS>(
            &c.hour,
            hour_total,
            (from / MS_PER_MINUTE, to / MS_PER_MINUTE),
            ng,
            limits.per_hour,
        ) else {
            return false;
        };
        let Some(day) = RingStroke::check::<DAY_BINS>(
            &c.day,
            day_total,
            (from / DAY_BIN_MS, to / DAY_BIN_MS),
            ng,
            Some(limits.per_day),
        ) else {
            return false;
        };
        c.totals.sum = [
            hour.commit::<HOUR_BINS>(&mut c.hour),
            day.commit::<DAY_BINS>(&mut c.day),
        ];
        self.high_water = t;
        true
    }

    /// What the limiter counts as delivered of `drug` in `window` at `now`: at least
    /// the true amount, at most the true amount plus the window's oldest bin.
    pub fn delivered(&self, now: Instant, drug: DrugId, window: Window) -> Mass {
        let t = self.effective(now);
        match self.counter(drug) {
            Some(c) => self.count(c, t, window),
            None => Mass::ZERO,
        }
    }

    /// What `c` counts in `window` at `t` (already on the limiter's clock).
    fn count(&self, c: &Counter, t: Instant, window: Window) -> Mass {
        c.window_sum(
            window,
            window.oldest_bin(t.ms()),
            window.bin_of(self.high_water.ms()),
        )
    }

    /// The next instant after `now` at which a non-empty bin leaves a window, so that a
    /// count falls and a vetoed caller may try again; `None` when nothing is counted.
    /// The instant is on the limiter's clock: after a clock that jumped back it lies
    /// further ahead of the caller's `now`.
    pub fn next_release(&self, now: Instant) -> Option<Instant> {
        let t = self.effective(now);
        let head_ms = self.high_water.ms();
        let mut earliest: Option<u64> = None;
        for w in Window::ALL {
            let hi = w.bin_of(head_ms);
            let mut k = w.oldest_bin(t.ms());
            while k <= hi {
                if self.counters.iter().any(|c| c.bin(w, k) != 0) {
                    // Bin k is counted while (k+1)·B > t − W, so it leaves at (k+1)·B + W.
                    let leaves = k
                        .saturating_add(1)
                        .saturating_mul(w.bin_ms())
                        .saturating_add(w.length_ms());
                    earliest = Some(earliest.map_or(leaves, |e| e.min(leaves)));
                    break;
                }
                match k.checked_add(1) {
                    Some(next) => k = next,
                    None => break,
                }
            }
        }
        earliest.map(Instant::from_ms)
    }

    /// The earliest instant at which enough of `veto`'s window will have expired for the
    /// vetoed amount to fit under that window's limit; `None` if it never will (the
    /// amount alone is above the limit, or the drug has no limits). The other window
    /// may still veto then: check again before delivering.
    pub fn retry_at(&self, now: Instant, veto: &Veto) -> Option<Instant> {
        if !veto.limits_set {
            return None;
        }
        let c = self.counter(veto.drug)?;
        let w = veto.window;
        let t = self.effective(now);
        let hi = w.bin_of(self.high_water.ms());
        let mut excess = veto.would_be.saturating_sub(veto.limit);
        let mut k = w.oldest_bin(t.ms());
        while k <= hi {
            let bin = c.bin(w, k);
            // A saturated bin stands for an unbounded mass: its expiry frees anything.
            let released = if bin == u32::MAX {
                Mass::MAX
            } else {
                Mass::from_raw(u64::from(bin))
            };
            excess = excess.saturating_sub(released);
            if excess.is_zero() {
                return Some(Instant::from_ms(
                    k.saturating_add(1)
                        .saturating_mul(w.bin_ms())
                        .saturating_add(w.length_ms()),
                ));
            }
            k = k.checked_add(1)?;
        }
        None
    }

    fn counter(&self, drug: DrugId) -> Option<&Counter> {
        self.counters.iter().find(|c| c.drug == drug)
    }

    /// `now`, or the high-water mark if the clock is behind it.
    fn effective(&self, now: Instant) -> Instant {
        max(now, self.high_water)
    }

    /// Moves the high-water mark to `t` (never back), clearing the ring slots of the
    /// bins it enters so that each slot holds only its own bin.
    fn advance(&mut self, t: Instant) {
        self.advance_bins(t, Bins::of(self.high_water), Bins::of(t));
    }

    /// [`Limiter::advance`] with the bins of the high-water mark (`old`) and of `t`
    /// (`new`) worked out.
    fn advance_bins(&mut self, t: Instant, old: Bins, new: Bins) {
        for c in &mut self.counters {
            if !c.totals.valid {
                c.rebuild_totals();
            }
        }
        if t <= self.high_water {
            return;
        }
        for w in Window::ALL {
            let (old, new) = (old.get(w), new.get(w));
            if new <= old {
                // Still in the same bin: no slot to clear.
                continue;
            }
            let entered = new.saturating_sub(old);
            for c in &mut self.counters {
                if entered >= w.bin_count() {
                    c.bins_mut(w).fill(0);
                    if let Some(s) = c.totals.sum.get_mut(wi(w)) {
                        *s = 0;
                    }
                    if let Some(n) = c.totals.saturated.get_mut(wi(w)) {
                        *n = 0;
                    }
                } else {
                    let mut k = old;
                    while k < new {
                        k = k.saturating_add(1);
                        c.clear(w, w.slot(k));
                    }
                }
            }
        }
        self.high_water = t;
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
    use std::vec::Vec as StdVec;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;

    fn at(ms: u64) -> Instant {
        Instant::from_ms(ms)
    }
    fn mg(s: &str) -> Mass {
        s.parse().unwrap()
    }
    fn day_only(per_day: &str) -> Limits {
        Limits {
            per_hour: None,
            per_day: mg(per_day),
        }
    }

    /// Four drugs tracked; morphine and clonidine were last delivered at 0, fentanyl
    /// and baclofen at 20 h. At 24 h 15 min (the 24 h window's oldest bin, 0–15 min,
    /// has left), morphine and clonidine are idle, the others are not. Room for two new
    /// drugs exists only once an idle one that nothing keeps is forgotten; forgetting
    /// changes no other drug's count.
    #[test]
    fn idle_drugs_are_forgotten_and_room_is_known_before_a_change_pump_027() {
        let mut l = Limiter::new();
        let drugs = [
            DrugId::Morphine,
            DrugId::Clonidine,
            DrugId::Fentanyl,
            DrugId::Baclofen,
        ];
        for d in drugs {
            l.set_limits(d, day_only("10 mg")).unwrap();
        }
        l.record(
            at(0),
            &[
                (DrugId::Morphine, mg("1 mg")),
                (DrugId::Clonidine, mg("1 mg")),
            ],
        )
        .unwrap();
        l.record(
            at(20 * HOUR),
            &[
                (DrugId::Fentanyl, mg("1 mg")),
                (DrugId::Baclofen, mg("1 mg")),
            ],
        )
        .unwrap();
        assert!(!l.is_idle(at(24 * HOUR), DrugId::Morphine));
        let now = at(24 * HOUR + 15 * MIN);
        assert!(l.is_idle(now, DrugId::Morphine));
        assert!(l.is_idle(now, DrugId::Clonidine));
        assert!(!l.is_idle(now, DrugId::Fentanyl));
        assert!(
            l.is_idle(now, DrugId::Sufentanil),
            "an untracked drug is idle"
        );
        let new = [DrugId::Hydromorphone, DrugId::Sufentanil];
        // Keeping every tracked drug: no room; the first that does not fit is named.
        assert_eq!(
            l.room_for(now, &new, |_| true),
            Err(LimiterError::TooManyDrugs(DrugId::Hydromorphone))
        );
        // Clonidine kept (still in the catheter), morphine not: room for one only.
        let keep = |d: DrugId| d == DrugId::Clonidine;
        assert_eq!(
            l.room_for(now, &new, keep),
            Err(LimiterError::TooManyDrugs(DrugId::Sufentanil))
        );
        assert_eq!(l.room_for(now, &new[..1], keep), Ok(()));
        // A drug already tracked needs no room, nor does a repeat.
        assert_eq!(
            l.room_for(
                now,
                &[DrugId::Fentanyl, DrugId::Baclofen, DrugId::Fentanyl],
                |_| true
            ),
            Ok(())
        );
        let before = l.delivered(now, DrugId::Fentanyl, Window::Day);
        l.forget_idle(now, keep);
        let left: StdVec<DrugId> = l.drugs().collect();
        assert_eq!(
            left,
            [DrugId::Clonidine, DrugId::Fentanyl, DrugId::Baclofen]
        );
        assert_eq!(l.delivered(now, DrugId::Fentanyl, Window::Day), before);
        l.set_limits(DrugId::Hydromorphone, day_only("5 mg"))
            .unwrap();
        assert_eq!(
            l.set_limits(DrugId::Sufentanil, day_only("1 mg")),
            Err(LimiterError::TooManyDrugs(DrugId::Sufentanil))
        );
    }

    #[test]
    fn veto_exactly_when_day_sum_plus_next_would_pass_the_limit_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Baclofen, day_only("1 mg")).unwrap();
        let dose = [(DrugId::Baclofen, mg("0.1 mg"))];
        // Ten doses at 0, 15, …, 135 min reach exactly 1 mg: allowed (not above).
        for i in 0..10 {
            let now = at(i * 15 * MIN);
            assert_eq!(l.check(now, &dose), Ok(()), "dose {i}");
            l.record(now, &dose).unwrap();
        }
        assert_eq!(
            l.delivered(at(135 * MIN), DrugId::Baclofen, Window::Day),
            mg("1 mg")
        );
        // The eleventh would make 1.1 mg.
        let veto = l.check(at(150 * MIN), &dose).unwrap_err();
        assert_eq!(
            veto,
            Veto {
                drug: DrugId::Baclofen,
                window: Window::Day,
                would_be: mg("1.1 mg"),
                limit: mg("1 mg"),
                limits_set: true,
            }
        );
        assert_eq!(
            veto.to_string(),
            "baclofen: 24 h delivery would reach 1.1 mg, above the limit 1 mg"
        );
        // The first dose (bin [0, 15 min)) leaves the 24 h window at 24 h 15 min; the
        // next count to fall at all is the hour's, when the 90-min dose leaves it.
        let release = at(24 * HOUR + 15 * MIN);
        assert_eq!(l.retry_at(at(150 * MIN), &veto), Some(release));
        assert_eq!(l.next_release(at(150 * MIN)), Some(at(151 * MIN)));
        // A dose above the limit on its own never fits.
        let huge = l
            .check(at(150 * MIN), &[(DrugId::Baclofen, mg("2 mg"))])
            .unwrap_err();
        assert_eq!(l.retry_at(at(150 * MIN), &huge), None);
        assert!(l.check(at(release.ms() - 1), &dose).is_err());
        assert_eq!(l.check(release, &dose), Ok(()));
        assert_eq!(
            l.delivered(release, DrugId::Baclofen, Window::Day),
            mg("0.9 mg")
        );
    }

    #[test]
    fn veto_text_names_drug_window_and_limit_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Baclofen, day_only("1 mg")).unwrap();
        l.record(at(0), &[(DrugId::Baclofen, mg("0.85 mg"))])
            .unwrap();
        let veto = l
            .check(at(MIN), &[(DrugId::Baclofen, mg("0.17 mg"))])
            .unwrap_err();
        assert_eq!(
            veto.to_string(),
            "baclofen: 24 h delivery would reach 1.02 mg, above the limit 1 mg"
        );
        assert_eq!(
            Event::from(veto),
            Event::LimiterVeto {
                drug: DrugId::Baclofen,
                window_hours: 24,
                would_be: mg("1.02 mg"),
                limit: mg("1 mg"),
            }
        );
    }

    #[test]
    fn veto_when_hour_window_would_be_exceeded_pump_015() {
        let mut l = Limiter::new();
        let limits = Limits {
            per_hour: Some(mg("0.5 mg")),
            per_day: mg("10 mg"),
        };
        l.set_limits(DrugId::Morphine, limits).unwrap();
        let bolus = [(DrugId::Morphine, mg("0.3 mg"))];
        l.record(at(10 * MIN), &bolus).unwrap();
        let veto = l.check(at(40 * MIN), &bolus).unwrap_err();
        assert_eq!(veto.window, Window::Hour);
        assert_eq!(veto.would_be, mg("0.6 mg"));
        assert_eq!(
            veto.to_string(),
            "morphine: 1 h delivery would reach 600 mcg, above the limit 500 mcg"
        );
        // The bolus at 10:00 sits in bin [10 min, 11 min): counted until 71 min, one
        // minute longer than an exact count (conservative by at most one bin).
        assert_eq!(l.next_release(at(40 * MIN)), Some(at(71 * MIN)));
        assert_eq!(l.retry_at(at(40 * MIN), &veto), Some(at(71 * MIN)));
        assert!(l.check(at(71 * MIN - 1), &bolus).is_err());
        assert_eq!(l.check(at(71 * MIN), &bolus), Ok(()));
        // Smaller boluses fit the hour: 0.3 + 0.2 = 0.5 is at, not above, the limit.
        assert_eq!(
            l.check(at(40 * MIN), &[(DrugId::Morphine, mg("0.2 mg"))]),
            Ok(())
        );
    }

    #[test]
    fn clock_going_back_never_releases_early_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Baclofen, day_only("1 mg")).unwrap();
        l.record(at(10 * HOUR), &[(DrugId::Baclofen, mg("1 mg"))])
            .unwrap();
        let more = [(DrugId::Baclofen, mg("0.01 mg"))];
        // The clock restarts from 1 h (e.g. a lost monotonic clock after a reset).
        assert!(l.check(at(HOUR), &more).is_err());
        // 24 h 15 min later on the restarted clock is still before the real release.
        assert!(l.check(at(HOUR + 24 * HOUR + 15 * MIN), &more).is_err());
        assert_eq!(
            l.delivered(at(0), DrugId::Baclofen, Window::Day),
            mg("1 mg")
        );
        // Deliveries while behind are counted at the high-water mark.
        l.record(at(2 * HOUR), &more).unwrap();
        assert_eq!(l.high_water(), at(10 * HOUR));
        assert_eq!(
            l.delivered(at(2 * HOUR), DrugId::Baclofen, Window::Day),
            mg("1.01 mg")
        );
        // The release is on the limiter's clock: bin [10 h, 10 h 15 min) + 24 h.
        let release = at(34 * HOUR + 15 * MIN);
        let veto = l.check(at(HOUR), &more).unwrap_err();
        assert_eq!(l.retry_at(at(HOUR), &veto), Some(release));
        assert_eq!(l.next_release(at(HOUR)), Some(at(11 * HOUR + MIN)));
        assert!(l.check(at(release.ms() - 1), &more).is_err());
        assert_eq!(l.check(release, &more), Ok(()));
    }

    #[test]
    fn changing_limits_keeps_the_counts_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Morphine, day_only("1 mg")).unwrap();
        l.record(at(0), &[(DrugId::Morphine, mg("0.8 mg"))])
            .unwrap();
        l.set_limits(DrugId::Morphine, day_only("2 mg")).unwrap();
        assert_eq!(
            l.delivered(at(MIN), DrugId::Morphine, Window::Day),
            mg("0.8 mg")
        );
        assert!(
            l.check(at(MIN), &[(DrugId::Morphine, mg("1.3 mg"))])
                .is_err()
        );
        assert_eq!(
            l.check(at(MIN), &[(DrugId::Morphine, mg("1.2 mg"))]),
            Ok(())
        );
        // Lowered below what was delivered: every further dose is vetoed.
        l.set_limits(DrugId::Morphine, day_only("0.5 mg")).unwrap();
        assert!(
            l.check(at(MIN), &[(DrugId::Morphine, Mass::from_raw(1))])
                .is_err()
        );
        assert_eq!(l.limits(DrugId::Morphine), Some(day_only("0.5 mg")));
    }

    #[test]
    fn drug_without_limits_is_vetoed_pump_015() {
        let mut l = Limiter::new();
        let veto = l
            .check(at(0), &[(DrugId::Ziconotide, mg("0.001 mg"))])
            .unwrap_err();
        assert!(!veto.limits_set);
        assert_eq!(veto.limit, Mass::ZERO);
        assert!(
            veto.to_string()
                .starts_with("ziconotide: no dose limits are set"),
            "{veto}"
        );
        // Saline and zero masses carry no dose and are never vetoed.
        assert_eq!(
            l.check(
                at(0),
                &[(DrugId::Saline, mg("1 mg")), (DrugId::Morphine, Mass::ZERO)]
            ),
            Ok(())
        );
        assert_eq!(
            l.set_limits(DrugId::Saline, day_only("1 mg")),
            Err(LimiterError::Saline)
        );
        // A delivery of a drug without limits is still counted, and kept once limits
        // are set.
        l.record(at(0), &[(DrugId::Ziconotide, Mass::from_mcg(2))])
            .unwrap();
        assert_eq!(l.limits(DrugId::Ziconotide), None);
        l.set_limits(DrugId::Ziconotide, day_only("0.0025 mg"))
            .unwrap();
        assert_eq!(
            l.delivered(at(0), DrugId::Ziconotide, Window::Day),
            Mass::from_mcg(2)
        );
        assert!(
            l.check(at(0), &[(DrugId::Ziconotide, Mass::from_mcg(1))])
                .is_err()
        );
    }

    #[test]
    fn a_fifth_drug_is_refused_pump_015() {
        let mut l = Limiter::new();
        for d in [
            DrugId::Morphine,
            DrugId::Bupivacaine,
            DrugId::Clonidine,
            DrugId::Fentanyl,
        ] {
            l.set_limits(d, day_only("1 mg")).unwrap();
        }
        let err = l
            .set_limits(DrugId::Baclofen, day_only("1 mg"))
            .unwrap_err();
        assert_eq!(err, LimiterError::TooManyDrugs(DrugId::Baclofen));
        assert!(err.to_string().contains("already tracks 4 drugs"), "{err}");
        // A delivery of a fifth drug cannot be counted: typed error, others counted.
        let err = l
            .record(
                at(0),
                &[
                    (DrugId::Baclofen, Mass::from_mcg(1)),
                    (DrugId::Morphine, Mass::from_mcg(1)),
                ],
            )
            .unwrap_err();
        assert_eq!(err, LimiterError::Uncounted(DrugId::Baclofen));
        assert_eq!(
            l.delivered(at(0), DrugId::Morphine, Window::Hour),
            Mass::from_mcg(1)
        );
        // Changing a tracked drug's limits still works.
        l.set_limits(DrugId::Morphine, day_only("2 mg")).unwrap();
    }

    #[test]
    fn entries_of_one_drug_are_added_up_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Morphine, day_only("1 mg")).unwrap();
        let split = [
            (DrugId::Morphine, mg("0.6 mg")),
            (DrugId::Morphine, mg("0.6 mg")),
        ];
        let veto = l.check(at(0), &split).unwrap_err();
        assert_eq!(veto.would_be, mg("1.2 mg"));
    }

    #[test]
    fn a_saturated_bin_counts_as_unbounded_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Morphine, day_only("1 mg")).unwrap();
        // 5 g cannot be held in a u32 bin: the count becomes Mass::MAX, never less.
        l.record(at(0), &[(DrugId::Morphine, mg("5000 mg"))])
            .unwrap();
        assert_eq!(l.delivered(at(0), DrugId::Morphine, Window::Day), Mass::MAX);
        assert!(
            l.check(at(0), &[(DrugId::Morphine, Mass::from_raw(1))])
                .is_err()
        );
        // …until it leaves the window.
        let veto = l
            .check(at(0), &[(DrugId::Morphine, Mass::from_raw(1))])
            .unwrap_err();
        let release = at(24 * HOUR + 15 * MIN);
        assert_eq!(l.retry_at(at(0), &veto), Some(release));
        assert_eq!(
            l.delivered(release, DrugId::Morphine, Window::Day),
            Mass::ZERO
        );
    }

    #[test]
    fn nothing_counted_means_no_release_pump_015() {
        let mut l = Limiter::new();
        assert_eq!(l.next_release(at(0)), None);
        l.set_limits(DrugId::Morphine, day_only("1 mg")).unwrap();
        l.record(at(5 * MIN), &[(DrugId::Morphine, mg("0.1 mg"))])
            .unwrap();
        // Leaves the hour at 66 min, the day at 24 h 15 min.
        assert_eq!(l.next_release(at(5 * MIN)), Some(at(66 * MIN)));
        assert_eq!(l.next_release(at(66 * MIN)), Some(at(24 * HOUR + 15 * MIN)));
        assert_eq!(l.next_release(at(24 * HOUR + 15 * MIN)), None);
    }

    #[test]
    fn a_long_gap_empties_every_bin_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(DrugId::Morphine, day_only("1 mg")).unwrap();
        l.record(at(0), &[(DrugId::Morphine, mg("0.9 mg"))])
            .unwrap();
        // Exactly one ring length later the slot is reused: it must read the new bin.
        let later = at(97 * 15 * MIN);
        l.record(later, &[(DrugId::Morphine, mg("0.1 mg"))])
            .unwrap();
        assert_eq!(
            l.delivered(later, DrugId::Morphine, Window::Day),
            mg("0.1 mg")
        );
        assert_eq!(
            l.delivered(later, DrugId::Morphine, Window::Hour),
            mg("0.1 mg")
        );
    }

    #[test]
    fn the_state_survives_a_serde_round_trip_pump_015() {
        let mut l = Limiter::new();
        l.set_limits(
            DrugId::Morphine,
            Limits {
                per_hour: Some(mg("0.5 mg")),
                per_day: mg("5 mg"),
            },
        )
        .unwrap();
        for i in 0..200u64 {
            l.record(at(i * 7 * MIN), &[(DrugId::Morphine, Mass::from_mcg(3))])
                .unwrap();
        }
        let mut buf = [0u8; 4096];
        let bytes = postcard::to_slice(&l, &mut buf).unwrap();
        let back: Limiter = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, l);
        std::println!(
            "size_of::<Limiter>() = {} bytes; postcard encoding {} bytes (1 drug)",
            core::mem::size_of::<Limiter>(),
            bytes.len()
        );
    }

    /// Brute force: mass recorded with time in `[from, to]`.
    fn sum_between(records: &[(u64, u64)], from: u64, to: u64) -> u64 {
        records
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, m)| m)
            .sum()
    }

    fn advance() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0u64..=2 * MIN,
            3 => 0u64..=HOUR,
            1 => 0u64..=2 * 24 * HOUR,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn no_rolling_window_ever_exceeds_a_limit_and_counts_are_conservative_pump_015(
            per_hour in proptest::option::of(50_000u64..=1_000_000),
            per_day in 200_000u64..=5_000_000,
            steps in proptest::collection::vec(
                (advance(), 0u64..=200_000, 0u64..=50_000), 1..250),
        ) {
            let drugs = [DrugId::Baclofen, DrugId::Clonidine];
            let limits = Limits {
                per_hour: per_hour.map(Mass::from_raw),
                per_day: Mass::from_raw(per_day),
            };
            let mut l = Limiter::new();
            for d in drugs {
                l.set_limits(d, limits).unwrap();
            }
            let mut records: [StdVec<(u64, u64)>; 2] = [StdVec::new(), StdVec::new()];
            let mut t = 0u64;
            for (adv, m0, m1) in steps {
                t += adv;
                let now = at(t);
                let proposal = [
                    (drugs[0], Mass::from_raw(m0)),
                    (drugs[1], Mass::from_raw(m1)),
                ];
                match l.check(now, &proposal) {
                    Ok(()) => {
                        l.record(now, &proposal).unwrap();
                        records[0].push((t, m0));
                        records[1].push((t, m1));
                    }
                    Err(veto) => {
                        // The vetoed amount fits that window exactly from `retry_at` on.
                        let amount = veto.would_be.ng() - l.delivered(now, veto.drug, veto.window).ng();
                        let fits = |at: Instant| {
                            l.delivered(at, veto.drug, veto.window).ng() + amount <= veto.limit.ng()
                        };
                        match l.retry_at(now, &veto) {
                            Some(r) => {
                                prop_assert!(r > now && fits(r) && !fits(Instant::from_ms(r.ms() - 1)));
                            }
                            None => prop_assert!(amount > veto.limit.ng()),
                        }
                    }
                }
                for (i, d) in drugs.into_iter().enumerate() {
                    for w in Window::ALL {
                        let len = w.length().ms();
                        let bin = w.bin_width().ms();
                        let start = t.saturating_sub(len);
                        // True delivery in (t − W, t].
                        let truth = if t >= len {
                            sum_between(&records[i], start + 1, t)
                        } else {
                            sum_between(&records[i], 0, t)
                        };
                        let oldest = start / bin * bin;
                        let oldest_bin = sum_between(&records[i], oldest, oldest + bin - 1);
                        let count = l.delivered(now, d, w).ng();
                        prop_assert!(count >= truth, "{w} count {count} < truth {truth}");
                        prop_assert!(count <= truth + oldest_bin,
                            "{w} count {count} > truth {truth} + oldest bin {oldest_bin}");
                        // Exactly the bins intersecting the window.
                        prop_assert_eq!(count, sum_between(&records[i], oldest, t));
                        // Safety: every window ending at a delivery is within the limit,
                        // hence every rolling window is.
                        if let Some(limit) = limits.of(w) {
                            prop_assert!(truth <= limit.ng(),
                                "{} {w}: delivered {truth} > limit {}", d, limit.ng());
                        }
                    }
                }
                // The counts stay put until the release instant, and fall at it.
                if let Some(release) = l.next_release(now) {
                    prop_assert!(release > now);
                    let before = at(release.ms() - 1);
                    let mut fell = false;
                    for d in drugs {
                        for w in Window::ALL {
                            prop_assert_eq!(l.delivered(before, d, w), l.delivered(now, d, w));
                            fell |= l.delivered(release, d, w) < l.delivered(now, d, w);
                        }
                    }
                    prop_assert!(fell, "nothing left a window at {release}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// `check_and_record` of single-drug strokes (its one-pass stroke path and the
        /// general one) gives exactly `check` then `record`: the same verdicts, the same
        /// state and the same counts, with clock steps back, gaps longer than a ring,
        /// strokes on a bin's first and last millisecond, and bins driven to saturation.
        #[test]
        fn check_and_record_of_a_stroke_is_check_then_record(
            per_hour in proptest::option::of(50_000u64..=u64::from(u32::MAX) * 4),
            per_day in 200_000u64..=u64::from(u32::MAX) * 8,
            steps in proptest::collection::vec(
                (advance(), any::<bool>(), prop_oneof![
                    8 => 0u64..=60_000,
                    1 => 0u64..=u64::from(u32::MAX) + 10,
                ], prop_oneof![4 => Just(0u8), 1 => 1u8..=4]),
                1..300),
        ) {
            let drug = DrugId::Baclofen;
            let limits = Limits {
                per_hour: per_hour.map(Mass::from_raw),
                per_day: Mass::from_raw(per_day),
            };
            let mut fused = Limiter::new();
            fused.set_limits(drug, limits).unwrap();
            let mut split = fused.clone();
            let mut t = 0u64;
            for (adv, back, m, edge) in steps {
                // Now and then the clock steps back instead of forward.
                t = if back && adv < 2 * MIN { t.saturating_sub(adv) } else { t + adv };
                // Now and then onto the first or the last millisecond of a bin.
                let first = |width: u64| t.div_ceil(width) * width;
                t = match edge {
                    1 => first(MIN),
                    2 => first(MIN) + MIN - 1,
                    3 => first(15 * MIN),
                    4 => first(15 * MIN) + 15 * MIN - 1,
                    _ => t,
                };
                let now = at(t);
                let stroke = [(drug, Mass::from_raw(m))];
                let a = fused.check_and_record(now, &stroke);
                let b = split.check(now, &stroke);
                if b.is_ok() {
                    split.record(now, &stroke).unwrap();
                }
                prop_assert_eq!(a, b);
                prop_assert_eq!(&fused, &split);
                for w in Window::ALL {
                    prop_assert_eq!(fused.delivered(now, drug, w), split.delivered(now, drug, w));
                }
            }
        }
    }
}
