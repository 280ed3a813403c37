//! The implant radio's energy: what each frame costs, a daily budget, and the back-off
//! that keeps a flood of bad hellos from draining the battery.
//!
//! An implant cannot stop anyone from transmitting; it can only decide how much of its
//! own energy it spends listening and computing. Three rules bound that:
//!
//! 1. **Cheap checks first.** A hello's cleartext header (claimed key id, counter) and its
//!    pre-authentication tag (one keyed BLAKE2s) are checked before any public-key
//!    operation ([`crate::endpoint`]). A stranger's frame costs the energy to receive it
//!    and one hash, never four X25519 operations.
//! 2. **Back-off.** Every denied hello doubles the time the receiver sleeps before it
//!    listens again, from [`RadioPolicy::backoff_first`] up to
//!    [`RadioPolicy::backoff_max`]; a handshake that completes resets it. Frames sent
//!    while the receiver sleeps are never received and cost nothing. A flood therefore
//!    costs at most one frame per `backoff_max` once the back-off has grown.
//! 3. **Daily budget.** Every received and sent frame and every handshake is charged
//!    ([`RadioCosts`]), accepted or rejected. When a day's charges reach
//!    [`RadioPolicy::daily_budget_uj`], the receiver sleeps until a programmer wand wakes
//!    it ([`Radio::proximity_wake`]), and the pump raises its `TelemetryPaused` alarm so
//!    the patient knows why the remote fails. Therapy never depends on the radio.
//! 4. **The wand overrides both.** While the programmer wand is held over the pump (for
//!    [`PROXIMITY_HOLD`] after it woke the radio, or until its enrolment window closes)
//!    the receiver listens whatever the back-off or the budget say, and denied frames do
//!    not back it off: a flood cannot keep the clinician at the bedside out. The energy
//!    is still charged and counted.
//!
//! Energies are in microjoules; times are the pump's monotonic time. Figures and their
//! sources are in `docs/threat-model.md`.

use thecal_rx::{Duration, Instant};

/// How long the receiver ignores back-off and budget after the programmer wand woke it.
pub const PROXIMITY_HOLD: Duration = Duration::from_minutes(5);

/// What the radio and the crypto cost, µJ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadioCosts {
    /// Waking the receiver for a frame and its preamble.
    pub frame_uj: u64,
    /// Each byte received or sent.
    pub byte_uj: u64,
    /// The pre-authentication tag check (one keyed BLAKE2s of a hello).
    pub preauth_uj: u64,
    /// The responder's side of a handshake: four X25519 operations and the hashing.
    pub handshake_uj: u64,
    /// Decrypting or encrypting one transport frame.
    pub transport_uj: u64,
}

impl RadioCosts {
    /// A MICS-band transceiver at about 30 mW and 250 kbit/s (32 µs, about 1 µJ, per
    /// byte; 2 ms to wake and lock: 60 µJ) and a Cortex-M4 at 64 MHz drawing about 10 mW
    /// (X25519 in portable code about 1.5 M cycles: four take about 94 ms, 940 µJ).
    pub const TYPICAL: RadioCosts = RadioCosts {
        frame_uj: 60,
        byte_uj: 1,
        preauth_uj: 1,
        handshake_uj: 1_000,
        transport_uj: 5,
    };

    /// The cost of receiving or sending a frame of `len` bytes.
    pub fn frame(&self, len: usize) -> u64 {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        self.frame_uj
            .saturating_add(self.byte_uj.saturating_mul(len))
    }
}

/// The budget and back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadioPolicy {
    /// What the radio may spend in a day, µJ.
    pub daily_budget_uj: u64,
    /// The receiver's sleep after the first denied hello.
    pub backoff_first: Duration,
    /// The longest sleep after denied hellos.
    pub backoff_max: Duration,
}

impl RadioPolicy {
    /// 18 J a day (ten minutes of radio at 30 mW, 0.5 % of a 7-year battery's daily
    /// share of about 3.6 kJ); back-off from 1 s doubling to 10 min.
    pub const TYPICAL: RadioPolicy = RadioPolicy {
        daily_budget_uj: 18_000_000,
        backoff_first: Duration::from_secs(1),
        backoff_max: Duration::from_minutes(10),
    };
}

/// Why the receiver is not listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deaf {
    /// Backing off after denied hellos, until this time.
    BackingOff {
        /// When it listens again.
        until: Instant,
    },
    /// The day's energy is spent: asleep until a programmer wand wakes it.
    Asleep,
}

/// Counters for the programmer and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RadioStats {
    /// Energy charged since the start of the current day, µJ.
    pub spent_today_uj: u64,
    /// Energy charged in all, µJ.
    pub spent_total_uj: u64,
    /// Energy charged for frames that were rejected (bad hellos, frames that did not
    /// authenticate), µJ.
    pub rejected_uj: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Frames rejected.
    pub frames_rejected: u64,
    /// Handshakes completed.
    pub handshakes: u64,
}

/// The radio's energy state.
#[derive(Debug, Clone)]
pub struct Radio {
    costs: RadioCosts,
    policy: RadioPolicy,
    day_start: Option<Instant>,
    asleep: bool,
    backoff_until: Option<Instant>,
    denials: u32,
    last_denial_log: Option<Instant>,
    proximity_until: Option<Instant>,
    stats: RadioStats,
}

/// What a charge did to the radio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    /// Within the budget.
    Ok,
    /// This charge spent the day's budget: the radio went to sleep now.
    WentAsleep,
}

impl Radio {
    /// A radio that listens.
    pub const fn new(costs: RadioCosts, policy: RadioPolicy) -> Self {
        Radio {
            costs,
            policy,
            day_start: None,
            asleep: false,
            backoff_until: None,
            denials: 0,
            last_denial_log: None,
            proximity_until: None,
            stats: RadioStats {
                spent_today_uj: 0,
                spent_total_uj: 0,
                rejected_uj: 0,
                frames_received: 0,
                frames_rejected: 0,
                handshakes: 0,
            },
        }
    }

    /// The costs.
    pub const fn costs(&self) -> &RadioCosts {
        &self.costs
    }

    /// The policy.
    pub const fn policy(&self) -> &RadioPolicy {
        &self.policy
    }

    /// The counters.
    pub const fn stats(&self) -> &RadioStats {
        &self.stats
    }

    /// Whether the receiver listens at `now`; `Err` says why not. A frame that arrives
    /// while it does not listen is never received (and costs nothing).
    pub fn listening(&self, now: Instant) -> Result<(), Deaf> {
        if self.wand_held(now) {
            return Ok(());
        }
        if self.asleep {
            return Err(Deaf::Asleep);
        }
        match self.backoff_until {
            Some(until) if now < until => Err(Deaf::BackingOff { until }),
            _ => Ok(()),
        }
    }

    /// When the receiver next listens (`None`: now, or asleep until a wand wakes it).
    pub fn listens_again(&self) -> Option<Instant> {
        if self.asleep {
            None
        } else {
            self.backoff_until
        }
    }

    /// Whether the programmer wand holds the receiver open at `now` (back-off and budget
    /// do not apply).
    pub fn wand_held(&self, now: Instant) -> bool {
        self.proximity_until.is_some_and(|until| now < until)
    }

    /// Whether the radio is asleep until a proximity wake.
    pub const fn asleep(&self) -> bool {
        self.asleep
    }

    fn roll_day(&mut self, now: Instant) {
        let start = *self.day_start.get_or_insert(now);
        if now.saturating_since(start) >= Duration::from_hours(24) {
            self.day_start = Some(now);
            self.stats.spent_today_uj = 0;
        }
    }

    /// Charges `uj` at `now` (`rejected`: for a frame that was refused).
    pub fn charge(&mut self, now: Instant, uj: u64, rejected: bool) -> Charged {
        self.roll_day(now);
        self.stats.spent_today_uj = self.stats.spent_today_uj.saturating_add(uj);
        self.stats.spent_total_uj = self.stats.spent_total_uj.saturating_add(uj);
        if rejected {
            self.stats.rejected_uj = self.stats.rejected_uj.saturating_add(uj);
        }
        if !self.asleep && self.stats.spent_today_uj >= self.policy.daily_budget_uj {
            self.asleep = true;
            Charged::WentAsleep
        } else {
            Charged::Ok
        }
    }

    /// Counts a received frame of `len` bytes and charges its reception.
    pub fn receive(&mut self, now: Instant, len: usize) -> Charged {
        self.stats.frames_received = self.stats.frames_received.saturating_add(1);
        let uj = self.costs.frame(len);
        self.charge(now, uj, false)
    }

    /// A received frame was rejected: moves its reception energy to the rejected count.
    pub fn rejected(&mut self, len: usize) {
        self.stats.frames_rejected = self.stats.frames_rejected.saturating_add(1);
        self.stats.rejected_uj = self.stats.rejected_uj.saturating_add(self.costs.frame(len));
    }

    /// A hello was denied at `now`: the receiver backs off (doubling). Returns the number
    /// of denials in a row and whether this one should be logged: the 1st, 2nd, 4th,
    /// 8th… of a streak, and at most hourly after that, so a flood leaves a trace without
    /// washing the log out.
    pub fn denied(&mut self, now: Instant) -> (u32, bool) {
        self.denials = self.denials.saturating_add(1);
        if self.wand_held(now) {
            // The wand holds the receiver open: an attacker's frames cost their
            // reception but never shut the clinician out.
            let log = self.denials.is_power_of_two();
            if log {
                self.last_denial_log = Some(now);
            }
            return (self.denials, log);
        }
        let shift = self.denials.saturating_sub(1).min(30);
        let first = self.policy.backoff_first.ms();
        let wait = first
            .checked_shl(shift)
            .filter(|w| *w >> shift == first)
            .unwrap_or(u64::MAX)
            .min(self.policy.backoff_max.ms());
        self.backoff_until = Some(now.saturating_add(Duration::from_ms(wait)));
        let log = self.denials.is_power_of_two()
            || self
                .last_denial_log
                .is_none_or(|t| now.saturating_since(t) >= Duration::from_hours(1));
        if log {
            self.last_denial_log = Some(now);
        }
        (self.denials, log)
    }

    /// A handshake completed: the back-off is over.
    pub fn handshake_done(&mut self) {
        self.authenticated();
        self.stats.handshakes = self.stats.handshakes.saturating_add(1);
    }

    /// A frame authenticated: the streak of denials is over.
    pub fn authenticated(&mut self) {
        self.denials = 0;
        self.backoff_until = None;
    }

    /// A programmer wand woke the radio: it listens again, with a fresh day's budget, and
    /// keeps listening for [`PROXIMITY_HOLD`] whatever denied frames arrive.
    pub fn proximity_wake(&mut self, now: Instant) {
        self.proximity_hold(now, now.saturating_add(PROXIMITY_HOLD));
    }

    /// As [`Radio::proximity_wake`], holding the receiver open until `until`.
    pub fn proximity_hold(&mut self, now: Instant, until: Instant) {
        self.proximity_until = Some(until.max(self.proximity_until.unwrap_or(until)));
        self.asleep = false;
        self.denials = 0;
        self.backoff_until = None;
        self.day_start = Some(now);
        self.stats.spent_today_uj = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_ms(ms)
    }

    #[test]
    fn backoff_doubles_to_its_maximum_and_resets_link_005() {
        let mut r = Radio::new(RadioCosts::TYPICAL, RadioPolicy::TYPICAL);
        assert_eq!(r.listening(t(0)), Ok(()));
        let mut now = 0;
        let mut waits = std::vec::Vec::new();
        for _ in 0..14 {
            r.denied(t(now));
            let until = r.listens_again().unwrap();
            waits.push(until.ms() - now);
            assert!(r.listening(t(now)).is_err());
            assert_eq!(r.listening(until), Ok(()));
            now = until.ms();
        }
        assert_eq!(&waits[..4], &[1_000, 2_000, 4_000, 8_000]);
        assert_eq!(*waits.last().unwrap(), 600_000);
        r.handshake_done();
        assert_eq!(r.listening(t(now)), Ok(()));
        r.denied(t(now));
        assert_eq!(r.listens_again(), Some(t(now + 1_000)));
    }

    #[test]
    fn denials_are_logged_at_growing_intervals_link_005() {
        let mut r = Radio::new(RadioCosts::TYPICAL, RadioPolicy::TYPICAL);
        let logged: std::vec::Vec<u32> = (0..100u64)
            .filter_map(|i| {
                let (n, log) = r.denied(t(i * 1000));
                log.then_some(n)
            })
            .collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64]);
        // An hour later the streak is logged again.
        assert_eq!(r.denied(t(3_700_000)), (101, true));
    }

    #[test]
    fn the_daily_budget_puts_the_radio_to_sleep_until_a_wand_wakes_it_link_005() {
        let policy = RadioPolicy {
            daily_budget_uj: 1_000,
            ..RadioPolicy::TYPICAL
        };
        let mut r = Radio::new(RadioCosts::TYPICAL, policy);
        assert_eq!(r.charge(t(0), 600, false), Charged::Ok);
        assert_eq!(r.charge(t(1), 400, true), Charged::WentAsleep);
        assert_eq!(r.listening(t(2)), Err(Deaf::Asleep));
        // A new day does not wake it: only the wand does.
        r.charge(t(25 * 3_600_000), 0, false);
        assert_eq!(r.listening(t(25 * 3_600_000)), Err(Deaf::Asleep));
        r.proximity_wake(t(26 * 3_600_000));
        assert_eq!(r.listening(t(26 * 3_600_000)), Ok(()));
        assert_eq!(r.stats().spent_today_uj, 0);
        assert_eq!(r.stats().spent_total_uj, 1_000);
        assert_eq!(r.stats().rejected_uj, 400);
    }

    #[test]
    fn the_day_rolls_after_24_hours_link_005() {
        let mut r = Radio::new(RadioCosts::TYPICAL, RadioPolicy::TYPICAL);
        r.charge(t(0), 5_000, false);
        r.charge(t(86_399_999), 5_000, false);
        assert_eq!(r.stats().spent_today_uj, 10_000);
        r.charge(t(86_400_000), 1, false);
        assert_eq!(r.stats().spent_today_uj, 1);
    }
}
