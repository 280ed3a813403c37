//! A test rig that plays the firmware around the core: it keeps the two persistence
//! slots, moves the motor, keeps the logs, and drives time by the core's own
//! `poll_timeout`, exactly as the documented call order says. What leaves the catheter
//! tip is judged by the simulator's true catheter ([`truth`]), not by the pump's own
//! fluid path (PUMP-042).

#![allow(dead_code, clippy::unwrap_used, clippy::arithmetic_side_effects)]

/// The simulator's true catheter: plain source shared as a test-only module, so the pump
/// keeps its dependencies.
#[path = "../../../sim/src/truth.rs"]
pub mod truth;

use thecal_pump::alarm::Sound;
use thecal_pump::command::{BridgeChoice, Command, Response, Role};
use thecal_pump::core::{Action, Pump};
use thecal_pump::journal::{DEFAULT_PAGES, NorFlash, StoreOp};
use thecal_pump::limiter::Limits;
use thecal_pump::log::LogEntry;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Instant, Mass, Volume};

/// 2027-01-04 00:00 UTC, a Monday.
pub const MONDAY_UTC_MS: u64 = 1_799_020_800_000;

pub fn q<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// One operation on the journal's memory, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Erase(u16),
    Program(u32, Vec<u8>),
}

impl Op {
    pub fn store_op(&self) -> StoreOp<'_> {
        match self {
            Op::Erase(page) => StoreOp::Erase { page: *page },
            Op::Program(offset, bytes) => StoreOp::Program {
                offset: *offset,
                bytes,
            },
        }
    }

    /// Bytes the operation changes: a program's length, an erase's page.
    pub fn len(&self) -> usize {
        match self {
            Op::Erase(_) => thecal_pump::journal::PAGE_SIZE,
            Op::Program(_, bytes) => bytes.len(),
        }
    }
}

/// One persistence write as the hardware saw it.
#[derive(Clone, PartialEq, Eq)]
pub struct Write {
    pub op: Op,
    /// Strokes the motor had moved when this write was made.
    pub moved: u64,
}

/// The journal's memory: a NOR flash with its rules enforced.
pub type Flash = NorFlash<DEFAULT_PAGES>;

pub struct Rig {
    pub profile: HardwareProfile,
    pub pump: Pump,
    pub now: Instant,
    pub mem: Box<Flash>,
    pub writes: Vec<Write>,
    pub record_writes: bool,
    pub events: Vec<LogEntry>,
    pub faults: Vec<LogEntry>,
    pub sounds: Vec<(Instant, Sound)>,
    /// Strokes the motor really moved.
    pub strokes_moved: u64,
    /// Every completed stroke: (time, drug masses that left the catheter tip), by the
    /// true catheter.
    pub tip: Vec<(Instant, Vec<(DrugId, Mass)>)>,
    /// The true contents of the pump path and catheter (the oracle of `tip`).
    pub truth: truth::TrueCatheter,
    /// The limiter's limits for the program's first drug at each completed stroke.
    pub limits: Vec<Option<Limits>>,
    /// The limiter's limits of every drug it counts, at each completed stroke.
    pub all_limits: Vec<Vec<(DrugId, Limits)>>,
    /// The motor stalls while this is set.
    pub stall: bool,
    /// Calls into the core (each is a wake-up).
    pub wakes: u64,
}

impl Rig {
    pub fn new(profile: HardwareProfile) -> Self {
        let pump = Pump::new(profile, Instant::ZERO);
        // A new pump's path and catheter hold saline.
        let truth = truth::TrueCatheter::new(
            pump.dead_volume(),
            &Admixture::single(DrugId::Saline, thecal_rx::Concentration::ZERO),
        );
        let mut rig = Rig {
            profile,
            pump,
            now: Instant::ZERO,
            mem: Box::new(Flash::new()),
            writes: Vec::new(),
            record_writes: false,
            events: Vec::new(),
            faults: Vec::new(),
            sounds: Vec::new(),
            strokes_moved: 0,
            tip: Vec::new(),
            truth,
            limits: Vec::new(),
            all_limits: Vec::new(),
            stall: false,
            wakes: 1,
        };
        rig.drain();
        rig
    }

    /// Carries out every pending action, in order.
    pub fn drain(&mut self) {
        loop {
            let mut stroke = false;
            match self.pump.poll_action() {
                None => break,
                Some(Action::Stroke) => stroke = true,
                Some(Action::Store(op)) => {
                    // Every write keeps the rules of NOR flash (PUMP-045).
                    self.mem.apply(op).unwrap();
                    if self.record_writes {
                        let op = match op {
                            StoreOp::Erase { page } => Op::Erase(page),
                            StoreOp::Program { offset, bytes } => {
                                Op::Program(offset, bytes.to_vec())
                            }
                        };
                        self.writes.push(Write {
                            op,
                            moved: self.strokes_moved,
                        });
                    }
                }
                Some(Action::Log(e)) => self.events.push(e),
                Some(Action::FaultLog(e)) => self.faults.push(e),
                Some(Action::Alarm(s)) => self.sounds.push((self.now, s)),
            }
            if stroke {
                let ok = !self.stall;
                if ok {
                    let contents = self.pump.program().contents.clone();
                    let d = self.truth.push_ng(self.profile.stroke_volume, &contents);
                    self.tip.push((self.now, d));
                    let first = contents.active().next().map(|c| c.drug);
                    self.limits
                        .push(first.and_then(|dr| self.pump.limiter().limits(dr)));
                    let limiter = self.pump.limiter();
                    self.all_limits.push(
                        limiter
                            .drugs()
                            .filter_map(|dr| limiter.limits(dr).map(|l| (dr, l)))
                            .collect(),
                    );
                    self.strokes_moved += 1;
                }
                self.wakes += 1;
                self.pump.handle_stroke_done(self.now, ok);
            }
        }
    }

    /// Runs the core until `until`, waking only when it asks to.
    pub fn run_until(&mut self, until: Instant) {
        let mut same = 0u32;
        while let Some(t) = self.pump.poll_timeout() {
            if t > until {
                break;
            }
            // A core that keeps asking for the same instant without progress is livelocked.
            same = if t == self.now { same + 1 } else { 0 };
            assert!(
                same < 64,
                "livelock: poll_timeout keeps returning {t:?}; status {:?}",
                self.pump.status()
            );
            assert!(
                t >= self.now,
                "poll_timeout went backwards: {t:?} < {:?}",
                self.now
            );
            self.now = t;
            self.wakes += 1;
            self.pump.handle_timeout(t);
            self.drain();
        }
        self.now = until;
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now.saturating_add(d);
        self.run_until(until);
    }

    pub fn cmd_as(&mut self, role: Role, cmd: Command) -> Response {
        self.wakes += 1;
        let r = self.pump.handle_command(self.now, role, 7, &cmd);
        if let (Command::SetCatheter(record), Response::Accepted) = (&cmd, &r) {
            // The surgeon's new catheter, in the body as in the pump's record.
            self.truth
                .replace_catheter(self.profile.pump_path_volume, record.volume());
        }
        self.drain();
        r
    }

    pub fn cmd(&mut self, cmd: Command) -> Response {
        self.cmd_as(Role::Clinician, cmd)
    }

    pub fn ok(&mut self, cmd: Command) {
        let r = self.cmd(cmd.clone());
        assert!(
            matches!(r, Response::Accepted | Response::BolusAccepted { .. }),
            "{cmd:?} refused: {}",
            match &r {
                Response::Refused(x) => x.to_string(),
                _ => format!("{r:?}"),
            }
        );
    }

    /// Power cut now and restart from the slots.
    pub fn restart(&mut self) {
        self.pump = Pump::restore(self.profile, self.mem.bytes(), self.now);
        self.wakes += 1;
        self.drain();
    }

    /// Tip mass of `drug` delivered in `[a, b)`.
    pub fn tip_mass(&self, drug: DrugId, a: Instant, b: Instant) -> u64 {
        self.tip
            .iter()
            .filter(|(t, _)| *t >= a && *t < b)
            .flat_map(|(_, m)| m.iter())
            .filter(|(d, _)| *d == drug)
            .map(|(_, m)| m.raw())
            .sum()
    }

    pub fn set_clock(&mut self) {
        self.ok(Command::SetClock {
            utc_ms: MONDAY_UTC_MS,
            offset_minutes: 0,
        });
    }

    /// Fills the reservoir with `drug` at `conc` and starts `schedule`.
    pub fn start(
        &mut self,
        drug: DrugId,
        conc: &str,
        fill: &str,
        schedule: Schedule,
        pb: Option<PatientBolus>,
    ) {
        let contents = Admixture::single(drug, q(conc));
        self.ok(Command::Refill {
            aspirated: Volume::ZERO,
            added: q(fill),
            contents: contents.clone(),
            keep_dose: false,
            bridge: BridgeChoice::None,
            confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
            beyond_use_utc_ms: None,
        });
        self.ok(Command::Program {
            prescription: Prescription {
                contents,
                schedule,
                patient_bolus: pb,
                reservoir_volume: q(fill),
            },
            confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
        });
        self.ok(Command::Resume);
    }
}
