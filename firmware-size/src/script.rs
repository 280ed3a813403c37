//! The scripted stream of commands and hardware events that the firmware image runs on
//! QEMU's Cortex-M4 and the host test `crates/pump/tests/firmware_stream.rs` runs on
//! x86-64: the same source, `no_std`, no allocation. Both print the same report lines
//! (delivered volume, event-log head hash, persisted state digest), which must agree
//! exactly.
//!
//! Five simulated days of baclofen on a SynchroMed-class pump: set-up (clock, fill,
//! flex program with patient bolus, resume), patient boluses, a magnet, battery
//! readings, a refill on day 2, a clinician bolus, a power cut on day 3 that tears the
//! write under way, a restart from the journal, and therapy to the end of day 5.
//!
//! Time: the board's millisecond clock, which the firmware advances to the core's
//! `poll_timeout()` while it sleeps (`Board::sleep_until`); the core never reads it.
#![allow(dead_code)]

use core::fmt::Write;

use thecal_pump::battery::BatteryReading;
use thecal_pump::command::{BridgeChoice, Command, Response, Role, SoftReason};
use thecal_pump::core::{Action, Pump};
use thecal_pump::journal::{NorFlash, PAGE_SIZE, StoreOp};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::{DayProfile, Schedule, Step};
use thecal_rx::{Instant, Volume};

/// Pages of the journal's ring in the image (16 KiB of NOR flash).
pub const PAGES: usize = 4;
/// The journal's memory.
pub type Flash = NorFlash<PAGES>;

/// What the run counted, besides the core's own figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Strokes the motor moved.
    pub moved: u64,
    /// Program operations and the bytes they wrote.
    pub programs: u64,
    /// Bytes programmed.
    pub bytes: u64,
    /// Page erases.
    pub erases: u64,
    /// Writes the flash refused (must be 0).
    pub refused: u64,
    /// Log entries, alarm tones.
    pub logs: u64,
    /// Alarm tones.
    pub tones: u64,
    /// Commands refused (must be 0).
    pub commands_refused: u64,
}

/// The board: the clock, the motor and the journal's flash.
pub struct Board<'m> {
    /// Milliseconds since power-on of this run (the hardware counter).
    pub now_ms: u64,
    /// The journal's NOR flash.
    pub flash: &'m mut Flash,
    /// The next write is torn half-way (a power cut).
    pub tear_next: bool,
    /// The power was cut during a write.
    pub cut: bool,
    /// Counters.
    pub counts: Counts,
}

impl Board<'_> {
    fn now(&self) -> Instant {
        Instant::from_ms(self.now_ms)
    }

    /// Sleeps until `t` (the timer's compare): the clock reads `t` on waking.
    fn sleep_until(&mut self, t: Instant) {
        self.now_ms = self.now_ms.max(t.ms());
    }

    /// Carries out every queued action in order; a stroke completes at once.
    pub fn drain(&mut self, pump: &mut Pump) {
        loop {
            let mut stroke = false;
            match pump.poll_action() {
                None => break,
                Some(Action::Stroke) => stroke = true,
                Some(Action::Store(op)) => {
                    if self.cut {
                        // The power is gone: nothing more is written.
                        continue;
                    }
                    let len = match op {
                        StoreOp::Erase { .. } => PAGE_SIZE,
                        StoreOp::Program { bytes, .. } => bytes.len(),
                    };
                    let done = if self.tear_next {
                        self.tear_next = false;
                        self.cut = true;
                        len / 2
                    } else {
                        len
                    };
                    match op {
                        StoreOp::Erase { .. } => self.counts.erases += 1,
                        StoreOp::Program { bytes, .. } => {
                            self.counts.programs += 1;
                            self.counts.bytes += bytes.len().min(done) as u64;
                        }
                    }
                    if self.flash.apply_torn(op, done).is_err() {
                        self.counts.refused += 1;
                    }
                }
                Some(Action::Log(_) | Action::FaultLog(_)) => self.counts.logs += 1,
                Some(Action::Alarm(_)) => self.counts.tones += 1,
            }
            if stroke && !self.cut {
                self.counts.moved += 1;
                pump.handle_stroke_done(self.now(), true);
            }
        }
    }

    /// Sleeps and wakes at every `poll_timeout()` up to `until` (ms).
    pub fn run_until(&mut self, pump: &mut Pump, until: u64) {
        while let Some(t) = pump.poll_timeout() {
            if t.ms() > until || self.cut {
                break;
            }
            self.sleep_until(t);
            pump.handle_timeout(self.now());
            self.drain(pump);
        }
        self.now_ms = self.now_ms.max(until);
    }

    /// Builds a command and sends it ([`Board::command`]); nothing if it cannot be
    /// built. Never inlined, so that only one command is on the stack at a time.
    #[inline(never)]
    fn send(&mut self, pump: &mut Pump, role: Role, make: impl FnOnce() -> Option<Command>) {
        // Borrowed where it was built, never moved (a move would be a second copy).
        if let Some(c) = make().as_ref() {
            self.command(pump, role, c);
        }
    }

    fn command(&mut self, pump: &mut Pump, role: Role, cmd: &Command) -> Response {
        let r = pump.handle_command(self.now(), role, 7, cmd);
        self.drain(pump);
        if matches!(r, Response::Refused(_)) {
            self.counts.commands_refused += 1;
        }
        r
    }
}

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn q<T: core::str::FromStr>(s: &str) -> Option<T> {
    s.parse().ok()
}

fn confirm() -> Option<SoftReason> {
    SoftReason::new("confirmed by the script").ok()
}

/// The profile of the pump in the stream.
pub fn profile() -> HardwareProfile {
    HardwareProfile::synchromed_class(40)
}

fn refill(aspirated: Volume) -> Option<Command> {
    Some(Command::Refill {
        aspirated,
        added: q("20 mL")?,
        contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")?),
        keep_dose: false,
        bridge: BridgeChoice::None,
        confirm: confirm(),
        beyond_use_utc_ms: None,
    })
}

fn program() -> Option<Command> {
    let step = |h: u16, f: &str| {
        q(f).map(|flow| Step {
            start_minute: h * 60,
            flow,
        })
    };
    let day = DayProfile::new(&[
        step(0, "0.4 mL/day")?,
        step(6, "0.8 mL/day")?,
        step(9, "0.5 mL/day")?,
    ])
    .ok()?;
    Some(Command::Program {
        prescription: Prescription {
            contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")?),
            schedule: Schedule::daily(day),
            patient_bolus: Some(PatientBolus {
                volume: q("20 uL")?,
                duration: q("10 min")?,
                lockout: q("3 h")?,
                max_per_day: 4,
            }),
            reservoir_volume: q("20 mL")?,
        },
        confirm_soft: confirm(),
    })
}

/// Whether the set-up's fill and program can be built. Never inlined: the two commands
/// it builds (kilobytes each) stay out of the frame of [`run`], under every other call.
#[inline(never)]
fn set_up_builds() -> bool {
    refill(Volume::ZERO).is_some() && program().is_some()
}

/// Runs the whole stream on `pump` (restored from `board.flash` by the caller) up to
/// the power cut. Returns `false` if a command of the set-up could not be built.
pub fn before_cut(board: &mut Board<'_>, pump: &mut Pump) -> bool {
    board.drain(pump);
    // Each command is built where it is sent, one at a time: a `Command` is kilobytes,
    // and the image's stack holds a few.
    if !set_up_builds() {
        return false;
    }
    let set_clock = || {
        Some(Command::SetClock {
            utc_ms: 1_799_020_800_000,
            offset_minutes: 60,
        })
    };
    board.send(pump, Role::Clinician, set_clock);
    board.send(pump, Role::Clinician, || refill(Volume::ZERO));
    board.send(pump, Role::Clinician, program);
    board.send(pump, Role::Clinician, || Some(Command::Resume));
    // Day 1: a patient bolus in the morning and one in the evening, a magnet at noon.
    board.run_until(pump, 8 * HOUR);
    board.send(pump, Role::PatientRemote, || {
        Some(Command::PatientBolus { request_id: 1 })
    });
    board.run_until(pump, 12 * HOUR);
    pump.handle_magnet(board.now(), true);
    board.drain(pump);
    board.run_until(pump, 12 * HOUR + 20 * 60_000);
    pump.handle_magnet(board.now(), false);
    board.drain(pump);
    board.run_until(pump, 20 * HOUR);
    board.send(pump, Role::PatientRemote, || {
        Some(Command::PatientBolus { request_id: 2 })
    });
    // A battery reading each day.
    board.run_until(pump, DAY);
    battery(board, pump, 3_050);
    // Day 2: a refill at 10:00 and a clinician bolus after it.
    board.run_until(pump, DAY + 10 * HOUR);
    let residual = reservoir(pump);
    board.send(pump, Role::Clinician, || refill(residual));
    board.send(pump, Role::Clinician, || {
        Some(Command::ClinicianBolus {
            volume: q("50 uL")?,
            duration: q("30 min")?,
        })
    });
    board.run_until(pump, 2 * DAY);
    battery(board, pump, 3_040);
    // Day 3, 14:00: the power fails half-way through the next write.
    board.run_until(pump, 2 * DAY + 14 * HOUR);
    board.tear_next = true;
    board.run_until(pump, 3 * DAY);
    true
}

fn battery(board: &mut Board<'_>, pump: &mut Pump, mv: u16) {
    pump.handle_battery(
        board.now(),
        BatteryReading {
            remaining_uj: None,
            voltage_mv: mv,
        },
    );
    board.drain(pump);
}

/// After the restart (the caller restored `pump` from the flash, with the clock
/// restarted from 0 after 10 minutes off): to the end of day 5.
pub fn after_restart(board: &mut Board<'_>, pump: &mut Pump) {
    board.drain(pump);
    // The hardware counter restarted at 0: the rest of day 3 and days 4 and 5.
    let left = 3 * DAY;
    board.run_until(pump, 6 * HOUR);
    board.send(pump, Role::PatientRemote, || {
        Some(Command::PatientBolus { request_id: 3 })
    });
    board.run_until(pump, DAY);
    battery(board, pump, 3_030);
    board.run_until(pump, left);
}

/// CRC-32C, its table computed at compile time (in flash, not on the stack).
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// CRC-32C over the journal's whole memory: the persisted state digest.
pub fn digest(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// The volume in the reservoir. Never inlined: the whole status it is read from (a
/// kilobyte) stays out of its caller's frame.
#[inline(never)]
fn reservoir(pump: &Pump) -> Volume {
    pump.status().reservoir
}

/// Runs the whole stream on an erased (or all-zero) `flash` with `pump` as the place
/// the core lives in, and writes the report. `restore` builds the core at power-on
/// (the firmware builds it in place in a static).
pub fn run(
    flash: &mut Flash,
    out: &mut impl Write,
    mut restore: impl FnMut(&[u8], Instant) -> &'static mut Pump,
) -> core::fmt::Result {
    let mut board = Board {
        now_ms: 0,
        flash,
        tear_next: false,
        cut: false,
        counts: Counts::default(),
    };
    let pump = restore(board.flash.bytes(), Instant::ZERO);
    if !before_cut(&mut board, pump) {
        return writeln!(out, "the set-up could not be built");
    }
    // Ten minutes without power; the hardware counter starts again at 0.
    board.cut = false;
    board.now_ms = 0;
    let pump = restore(board.flash.bytes(), Instant::ZERO);
    after_restart(&mut board, pump);
    report(out, pump, &board)
}

/// The report lines both runs print and the host test compares.
pub fn report(out: &mut impl Write, pump: &Pump, board: &Board<'_>) -> core::fmt::Result {
    let head = pump.log_head();
    writeln!(out, "delivered_nl {}", pump.delivered().raw())?;
    writeln!(out, "strokes {}", pump.strokes())?;
    write!(out, "event_log_head {} ", head.next_seq())?;
    for b in head.last_hash() {
        write!(out, "{b:02x}")?;
    }
    writeln!(out)?;
    writeln!(out, "state_digest {:08x}", digest(board.flash.bytes()))?;
    writeln!(out, "reservoir_nl {}", reservoir(pump).raw())?;
    writeln!(
        out,
        "writes {} bytes {} erases {} refused {}",
        board.counts.programs, board.counts.bytes, board.counts.erases, board.counts.refused
    )?;
    writeln!(
        out,
        "commands_refused {} mode {:?}",
        board.counts.commands_refused,
        pump.mode()
    )
}
