//! The clinician's intended dose against what the pump runs (SIM-067), and the wall
//! clock as the patient lives it against the clock the pump was told (SIM-068).
//!
//! The **intended** dose is the program the clinician last gave the pump, at the
//! concentration the pump believes, at the patient's true local time. It stays on when
//! the pump stops itself (end of service, a fault, a valve held shut for MRI) and when
//! the reservoir runs dry: the clinician meant the therapy to go on. It is zero only
//! while a clinician has stopped the pump (a decision to stop therapy). The
//! **prescribed** dose is what the pump currently runs: the same program, on the pump's
//! own clock, and zero whenever the pump is not running.

use thecal_pump::command::{Command, Mode, Response};
use thecal_rx::quantity::{MS_PER_DAY, MS_PER_MINUTE};
use thecal_rx::schedule::LocalTime;

use super::{Dev, Engine, START_UTC_MS};
use crate::models::environment::Environment;

/// The patient's wall clock and the pump's error against it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Clocks {
    /// The patient's local offset from UTC, minutes (travel, daylight saving).
    pub offset_minutes: i16,
    /// How far the pump's clock was last set from the true UTC, ms (a wrong entry).
    pub shift_ms: i64,
}

impl Clocks {
    /// The patient's true local time `now` ms after the start.
    fn local(&self, now: u64) -> LocalTime {
        let offset = i64::from(self.offset_minutes) * MS_PER_MINUTE as i64;
        LocalTime((START_UTC_MS + now).saturating_add_signed(offset))
    }
}

impl Engine<'_> {
    /// The dose rates of the primary drug now, ng/ms: (what the pump runs, what the
    /// clinician intends).
    #[inline(always)]
    pub(super) fn dose_rates_ng_per_ms(&mut self) -> (f64, f64) {
        // The common case, at every event: a constant program whose rate is known.
        if let (Dev::Programmable(p), Some(rate)) = (&self.dev, self.basal_rate) {
            match p.pump.mode() {
                Mode::Running => return (rate, rate),
                Mode::Stopped { .. } => return (0.0, 0.0),
                _ => return (0.0, rate),
            }
        }
        self.dose_rates_worked_out()
    }

    /// [`Engine::dose_rates_ng_per_ms`] when the rate is not known already.
    #[inline(never)]
    fn dose_rates_worked_out(&mut self) -> (f64, f64) {
        match &self.dev {
            Dev::Programmable(p) => {
                let mode = p.pump.mode();
                if matches!(mode, Mode::Stopped { .. }) {
                    return (0.0, 0.0);
                }
                let running = matches!(mode, Mode::Running);
                let program = p.pump.program();
                let per_ng_ms = program.contents.concentration_of(self.primary).raw() as f64
                    / 1e6
                    / MS_PER_DAY as f64;
                if let Some(f) = program.schedule.constant_flow() {
                    let rate = f.raw() as f64 * per_ng_ms;
                    // Only a command changes the program (which clears this).
                    self.basal_rate = Some(rate);
                    return (if running { rate } else { 0.0 }, rate);
                }
                let intended =
                    program.schedule.flow_at(self.clocks.local(self.now)).raw() as f64 * per_ng_ms;
                if !running {
                    return (0.0, intended);
                }
                // The pump runs the flex schedule on its own clock (its mean without one).
                let hw = self.hw();
                let flow = match p.pump.clock() {
                    Some(c) => program.schedule.flow_at(c.local(hw)).raw(),
                    None => program.schedule.mean_daily().raw(),
                };
                (flow as f64 * per_ng_ms, intended)
            }
            Dev::Constant { gas } => {
                let nominal = gas.flow_ml_per_day(&Environment::default()) * 1e6;
                let rate = nominal * self.contents.concentration_of(self.primary).raw() as f64
                    / 1e6
                    / MS_PER_DAY as f64;
                // An empty gas pump runs nothing; the clinician meant it to be refilled.
                (if self.reservoir_nl <= 0.0 { 0.0 } else { rate }, rate)
            }
        }
    }

    /// The clinician sets the pump's wall clock to the true time plus `shift_ms` (zero:
    /// set right; negative: set back), in the patient's current time zone, with the
    /// pump core's `SetClock` command as the programmer sends it. A refusal is noted.
    pub(super) fn set_clock(&mut self, shift_ms: i64) {
        self.flush();
        let utc_ms = (START_UTC_MS + self.now).saturating_add_signed(shift_ms);
        let offset_minutes = self.clocks.offset_minutes;
        let r = self.clinician(Command::SetClock {
            utc_ms,
            offset_minutes,
        });
        if !matches!(r, Response::Refused(_)) {
            self.clocks.shift_ms = shift_ms;
            self.note(format!(
                "pump clock set {} (UTC{})",
                shift_text(shift_ms),
                offset_text(offset_minutes)
            ));
        }
    }

    /// The patient's local time zone changes (daylight saving, travel). With
    /// `tell_pump` the programmer sends `SetClock` with its own (true) UTC and the new
    /// offset; without, the pump goes on in the old time zone.
    pub(super) fn time_zone(&mut self, offset_minutes: i16, tell_pump: bool) {
        self.flush();
        self.basal_rate = None;
        self.clocks.offset_minutes = offset_minutes;
        self.note(format!(
            "the patient's time zone is now UTC{}{}",
            offset_text(offset_minutes),
            if tell_pump {
                ""
            } else {
                "; the pump is not told"
            }
        ));
        if tell_pump {
            let r = self.clinician(Command::SetClock {
                utc_ms: START_UTC_MS + self.now,
                offset_minutes,
            });
            if !matches!(r, Response::Refused(_)) {
                self.clocks.shift_ms = 0;
            }
        }
    }
}

/// "+01:00", "-05:30".
pub(crate) fn offset_text(minutes: i16) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// "right", "back 1 d", "forward 90 min".
fn shift_text(ms: i64) -> String {
    let d = thecal_rx::Duration::from_ms(ms.unsigned_abs());
    match ms {
        0 => "right".into(),
        x if x < 0 => format!("back {d}"),
        _ => format!("forward {d}"),
    }
}
