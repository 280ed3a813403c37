//! Fuzz target: arbitrary sequences of inputs to the therapy core.
//!
//! The fuzzer chooses a hardware profile, whether to start from a running baclofen
//! therapy, and a sequence of operations: time passing (through the core's own
//! timeouts, or a spurious wake), every command with arbitrary payloads from every
//! role, motor results (ok / stalled, answered at once or later), battery readings,
//! magnet on/off, radio use, and power cuts restored from the journal, optionally
//! with the last write torn and the monotonic counter restarted lower.
//!
//! After every input and every action the harness checks:
//! - no panic (libFuzzer reports any);
//! - `delivered() <= held_total()`;
//! - the fluid path holds exactly the dead volume unless the mode is `Fault`;
//! - `poll_timeout()` is never earlier than the last `now` passed in;
//! - the core never asks for the same instant again and again (no livelock);
//! - a running pump's basal never goes below the profile's lowest flow (no reduction
//!   takes a drug below what the pump can deliver);
//! - after a storm of commands sent without draining the queue, the pump either lost
//!   nothing or is in its safe state (`ActionLost`): never a silent loss.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use thecal_pump::alarm::AlarmKind;
use thecal_pump::battery::BatteryReading;
use thecal_pump::catheter::CatheterRecord;
use thecal_pump::command::{BridgeChoice, Command, Mode, Response, Role, SoftReason, StopReason};
use thecal_pump::core::{Action, Pump};
use thecal_pump::journal::{DEFAULT_PAGES, NorFlash, PAGE_SIZE, StoreOp};
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::{Admixture, Component};
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::{DayProfile, PeriodicBolus, Schedule, Step, Weekdays};
use thecal_rx::{Concentration, Duration, Flow, Instant, Volume};

/// Most wakes one `Advance` runs through before jumping to its end.
const MAX_WAKES_PER_ADVANCE: u32 = 600;
/// Most motor answers given without a new input (then the stroke stays in flight).
const MAX_AUTO_STROKES: u32 = 5_000;
const DAY_MS: u64 = 86_400_000;

#[derive(Debug, Arbitrary)]
struct Input {
    profile: u8,
    /// Start from a programmed, running baclofen pump (else factory-fresh).
    setup: bool,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Motor {
    /// Every stroke completes at once.
    AutoOk,
    /// Every stroke stalls at once.
    AutoStall,
    /// Strokes stay in flight until a `StrokeDone` op.
    Manual,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Let up to `ms % 4 days` pass, waking at every `poll_timeout()` on the way.
    Advance { ms: u32 },
    /// One wake at exactly `poll_timeout()` (if any).
    ToTimeout,
    /// A wake that the core did not ask for, `ms` later.
    SpuriousWake { ms: u16 },
    /// A command.
    Command {
        role: FRole,
        key_id: u8,
        cmd: FCommand,
    },
    /// The motor reports the stroke in flight (or a stray report).
    StrokeDone { ok: bool },
    /// How the motor answers from now on.
    SetMotor(Motor),
    /// A battery reading.
    Battery {
        remaining_uj: Option<u64>,
        voltage_mv: u16,
    },
    /// Magnet or MRI field.
    Magnet(bool),
    /// Radio use.
    Radio { ms: u16 },
    /// `count` commands in a row without draining the queue in between (a firmware
    /// that falls behind), then one drain.
    Storm {
        role: FRole,
        count: u8,
        cmd: FCommand,
    },
    /// Power cut and restore from the journal.
    PowerCycle {
        /// Keep only this many bytes of the last write (the rest stays old).
        tear: Option<u16>,
        /// The monotonic counter restarts at this many seconds (else it goes on).
        counter_restart_s: Option<u16>,
        /// Time powered off, seconds.
        off_s: u16,
    },
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum FRole {
    Clinician,
    PatientRemote,
    Emergency,
}

#[derive(Debug, Arbitrary)]
enum FCommand {
    Interrogate,
    Program {
        /// Use the reservoir's contents (else `contents`).
        same_contents: bool,
        contents: FAdmixture,
        schedule: FSchedule,
        patient_bolus: Option<FPatientBolus>,
        reservoir_ul: u16,
        /// The clinician's reason (any text: too long or blank confirms nothing).
        confirm_soft: Option<String>,
    },
    Refill {
        aspirated_ul: u16,
        added_ul: u16,
        /// Keep the reservoir's drugs (at new concentrations from `contents`).
        same_drugs: bool,
        contents: FAdmixture,
        keep_dose: bool,
        bridge: FBridge,
        confirm: Option<String>,
    },
    ClinicianBolus {
        volume_ul: u16,
        duration_min: u16,
    },
    PrimingBolus {
        duration_min: u16,
    },
    PatientBolus {
        request_id: u8,
    },
    CancelBolus,
    Stop {
        reason: u8,
    },
    Resume,
    SetClock {
        /// Minutes after 2019-12-01 (so some are before 2020).
        minutes: u32,
        offset_minutes: i16,
    },
    Acknowledge(u8),
    MriMode(bool),
    ReduceDose {
        percent: u8,
    },
    AlarmSettings {
        low_reservoir_ul: u16,
        low_reservoir_days: u8,
        stopped_reminder_min: u16,
    },
    SetReminderInterval {
        minutes: u16,
    },
    MriEmergency,
    SetCatheter {
        model: u8,
        volume_per_cm_nl: u16,
        length_mm: u16,
        pump_segment_ul: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct FAdmixture {
    parts: Vec<(u8, FConc)>,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum FConc {
    McgPerMl(u16),
    MgPerMl(u8),
    NgPerMl(u32),
}

#[derive(Debug, Arbitrary)]
enum FSchedule {
    Continuous { ul_per_day: u16 },
    Daily(FDay),
    Weekly(Box<[FDay; 7]>),
    WithBoluses { base: FDay, boluses: Vec<FPeriodic> },
}

/// Steps as (minutes after the previous step, µL/day); the first starts at midnight.
#[derive(Debug, Arbitrary)]
struct FDay {
    first_ul_per_day: u16,
    steps: Vec<(u16, u16)>,
}

#[derive(Debug, Arbitrary)]
struct FPeriodic {
    start_minute: u16,
    volume_ul: u16,
    duration_min: u16,
    days: u8,
}

#[derive(Debug, Arbitrary)]
struct FPatientBolus {
    volume_ul: u8,
    duration_min: u8,
    lockout_min: u16,
    max_per_day: u8,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum FBridge {
    Automatic,
    Bolus { minutes: u16 },
    None,
}

fn drug(i: u8) -> DrugId {
    DrugId::ALL[usize::from(i) % DrugId::ALL.len()]
}

fn conc(c: FConc) -> Concentration {
    match c {
        FConc::McgPerMl(x) => Concentration::from_mcg_per_ml(u32::from(x)),
        FConc::MgPerMl(x) => Concentration::from_mg_per_ml(u32::from(x)),
        FConc::NgPerMl(x) => Concentration::from_raw(u64::from(x)),
    }
}

fn admixture(a: &FAdmixture) -> Admixture {
    let parts: Vec<Component> = a
        .parts
        .iter()
        .take(5)
        .map(|(d, c)| Component {
            drug: drug(*d),
            concentration: conc(*c),
        })
        .collect();
    Admixture::new(&parts).unwrap_or_else(|_| {
        Admixture::single(DrugId::Baclofen, Concentration::from_mcg_per_ml(2000))
    })
}

/// Same drugs as `base`, concentrations from `a` (cycled).
fn same_drugs(base: &Admixture, a: &FAdmixture) -> Admixture {
    let parts: Vec<Component> = base
        .components()
        .iter()
        .enumerate()
        .map(|(i, c)| Component {
            drug: c.drug,
            concentration: if a.parts.is_empty() {
                c.concentration
            } else {
                conc(a.parts[i % a.parts.len()].1)
            },
        })
        .collect();
    Admixture::new(&parts).unwrap_or_else(|_| base.clone())
}

fn flow_ul(ul: u16) -> Flow {
    Flow::from_ul_per_day(u32::from(ul))
}

fn day(d: &FDay) -> DayProfile {
    let mut steps = vec![Step {
        start_minute: 0,
        flow: flow_ul(d.first_ul_per_day),
    }];
    let mut minute: u16 = 0;
    for (delta, ul) in d.steps.iter().take(30) {
        // Mostly valid (increasing, within the day); sometimes not.
        minute = minute.saturating_add(delta % 360).saturating_add(1);
        steps.push(Step {
            start_minute: minute,
            flow: flow_ul(*ul),
        });
    }
    DayProfile::new(&steps).unwrap_or_else(|_| DayProfile::constant(flow_ul(d.first_ul_per_day)))
}

fn schedule(s: &FSchedule) -> Schedule {
    match s {
        FSchedule::Continuous { ul_per_day } => Schedule::continuous(flow_ul(*ul_per_day)),
        FSchedule::Daily(d) => Schedule::daily(day(d)),
        FSchedule::Weekly(days) => Schedule::weekly([
            day(&days[0]),
            day(&days[1]),
            day(&days[2]),
            day(&days[3]),
            day(&days[4]),
            day(&days[5]),
            day(&days[6]),
        ]),
        FSchedule::WithBoluses { base, boluses } => {
            let mut s = Schedule::daily(day(base));
            for b in boluses.iter().take(10) {
                let _ = s.add_bolus(PeriodicBolus {
                    start_minute: b.start_minute % 1500,
                    volume: Volume::from_ul(u32::from(b.volume_ul)),
                    duration: Duration::from_minutes(u64::from(b.duration_min % 1500)),
                    days: Weekdays(b.days),
                });
            }
            s
        }
    }
}

/// A fuzzed reason as the command carries it: `None` when it is blank or too long.
fn reason(text: &Option<String>) -> Option<SoftReason> {
    text.as_deref().and_then(|t| SoftReason::new(t).ok())
}

fn command(c: &FCommand, pump: &Pump) -> Command {
    match c {
        FCommand::Interrogate => Command::Interrogate,
        FCommand::Program {
            same_contents,
            contents,
            schedule: s,
            patient_bolus,
            reservoir_ul,
            confirm_soft,
        } => Command::Program {
            prescription: Prescription {
                contents: if *same_contents {
                    pump.program().contents.clone()
                } else {
                    admixture(contents)
                },
                schedule: schedule(s),
                patient_bolus: patient_bolus.as_ref().map(|p| PatientBolus {
                    volume: Volume::from_ul(u32::from(p.volume_ul)),
                    duration: Duration::from_minutes(u64::from(p.duration_min)),
                    lockout: Duration::from_minutes(u64::from(p.lockout_min)),
                    max_per_day: p.max_per_day,
                }),
                reservoir_volume: Volume::from_ul(u32::from(*reservoir_ul)),
            },
            confirm_soft: reason(confirm_soft),
        },
        FCommand::Refill {
            aspirated_ul,
            added_ul,
            same_drugs: same,
            contents,
            keep_dose,
            bridge,
            confirm,
        } => Command::Refill {
            aspirated: Volume::from_ul(u32::from(*aspirated_ul)),
            added: Volume::from_ul(u32::from(*added_ul)),
            contents: if *same {
                same_drugs(&pump.program().contents, contents)
            } else {
                admixture(contents)
            },
            keep_dose: *keep_dose,
            bridge: match bridge {
                FBridge::Automatic => BridgeChoice::Automatic,
                FBridge::Bolus { minutes } => {
                    BridgeChoice::Bolus(Duration::from_minutes(u64::from(*minutes)))
                }
                FBridge::None => BridgeChoice::None,
            },
            confirm: reason(confirm),
            beyond_use_utc_ms: None,
        },
        FCommand::ClinicianBolus {
            volume_ul,
            duration_min,
        } => Command::ClinicianBolus {
            volume: Volume::from_ul(u32::from(*volume_ul)),
            duration: Duration::from_minutes(u64::from(*duration_min)),
        },
        FCommand::PrimingBolus { duration_min } => Command::PrimingBolus {
            duration: Duration::from_minutes(u64::from(*duration_min)),
        },
        FCommand::PatientBolus { request_id } => Command::PatientBolus {
            request_id: u32::from(*request_id),
        },
        FCommand::CancelBolus => Command::CancelBolus,
        FCommand::Stop { reason } => Command::Stop {
            reason: match reason % 4 {
                0 => StopReason::Procedure,
                1 => StopReason::AdverseEffect,
                2 => StopReason::EndOfTherapy,
                _ => StopReason::Other,
            },
        },
        FCommand::Resume => Command::Resume,
        FCommand::SetClock {
            minutes,
            offset_minutes,
        } => Command::SetClock {
            utc_ms: 1_575_158_400_000 + u64::from(*minutes) * 60_000,
            offset_minutes: *offset_minutes,
        },
        FCommand::Acknowledge(k) => {
            Command::Acknowledge(AlarmKind::ALL[usize::from(*k) % AlarmKind::COUNT])
        }
        FCommand::MriMode(on) => Command::MriMode(*on),
        FCommand::ReduceDose { percent } => Command::ReduceDose { percent: *percent },
        FCommand::AlarmSettings {
            low_reservoir_ul,
            low_reservoir_days,
            stopped_reminder_min,
        } => Command::AlarmSettings {
            low_reservoir: Volume::from_ul(u32::from(*low_reservoir_ul)),
            low_reservoir_days: u16::from(*low_reservoir_days),
            stopped_reminder: Duration::from_minutes(u64::from(*stopped_reminder_min)),
        },
        FCommand::SetReminderInterval { minutes } => Command::SetReminderInterval {
            interval: Duration::from_minutes(u64::from(*minutes)),
        },
        FCommand::MriEmergency => Command::MriEmergency,
        FCommand::SetCatheter {
            model,
            volume_per_cm_nl,
            length_mm,
            pump_segment_ul,
        } => Command::SetCatheter(CatheterRecord {
            model: u16::from(*model % 4),
            volume_per_cm: Volume::from_nl(u64::from(*volume_per_cm_nl)),
            length_mm: *length_mm,
            pump_segment: Volume::from_ul(u32::from(*pump_segment_ul)),
        }),
    }
}

struct Sim {
    profile: HardwareProfile,
    pump: Pump,
    /// The journal's NOR flash; every write keeps its rules.
    mem: Box<NorFlash<DEFAULT_PAGES>>,
    /// The bytes the last write changed: their offset and what they held before.
    last_write: Option<(usize, Vec<u8>)>,
    /// Hardware monotonic time, ms: every `now` passed in.
    hw: u64,
    motor: Motor,
    in_flight: bool,
    /// Actions the core reported lost in storms (never while drained).
    lost_in_storms: u32,
}

impl Sim {
    fn now(&self) -> Instant {
        Instant::from_ms(self.hw)
    }

    fn check(&self) {
        let p = &self.pump;
        assert!(
            p.delivered() <= p.held_total(),
            "delivered {} > held_total {}",
            p.delivered(),
            p.held_total()
        );
        let mode = p.status().mode;
        if !matches!(mode, Mode::Fault { .. }) {
            assert_eq!(
                p.fluid().held_volume(),
                p.dead_volume(),
                "fluid path volume != dead volume in mode {mode:?}"
            );
        }
        if mode == Mode::Running && p.program().contents.active().next().is_some() {
            let (lo, _) = p.program().schedule.basal_range();
            assert!(
                lo >= p.profile().min_flow,
                "running at {lo}, below the pump's lowest flow {}",
                p.profile().min_flow
            );
        }
        if let Some(t) = p.poll_timeout() {
            assert!(
                t.ms() >= self.hw,
                "poll_timeout {} earlier than last now {}",
                t.ms(),
                self.hw
            );
        }
    }

    /// Carries out every queued action in order; answers strokes per the motor mode.
    fn drain(&mut self) {
        self.check();
        let mut answered = 0u32;
        loop {
            let mut stroke = false;
            match self.pump.poll_action() {
                None => break,
                Some(Action::Stroke) => stroke = true,
                Some(Action::Store(op)) => {
                    let (at, len) = match op {
                        StoreOp::Erase { page } => (usize::from(page) * PAGE_SIZE, PAGE_SIZE),
                        StoreOp::Program { offset, bytes } => (offset as usize, bytes.len()),
                    };
                    let old = self.mem.bytes().get(at..at + len).map(<[u8]>::to_vec);
                    if let Err(e) = self.mem.apply(op) {
                        panic!("a write NOR flash cannot do: {e}");
                    }
                    self.last_write = old.map(|old| (at, old));
                }
                Some(Action::Alarm(_) | Action::Log(_) | Action::FaultLog(_)) => {}
            }
            if stroke {
                self.in_flight = true;
                let ok = match self.motor {
                    Motor::AutoOk => true,
                    Motor::AutoStall => false,
                    Motor::Manual => continue,
                };
                if answered >= MAX_AUTO_STROKES {
                    continue;
                }
                answered += 1;
                self.in_flight = false;
                self.pump.handle_stroke_done(self.now(), ok);
                self.check();
            }
        }
        assert_eq!(
            self.pump.dropped_actions(),
            self.lost_in_storms,
            "actions dropped while drained"
        );
    }

    fn command(&mut self, role: Role, cmd: &Command) -> Response {
        let r = self.pump.handle_command(self.now(), role, 0, cmd);
        self.drain();
        r
    }

    fn advance(&mut self, ms: u64) {
        let target = self.hw.saturating_add(ms);
        let mut same = 0u32;
        for _ in 0..MAX_WAKES_PER_ADVANCE {
            match self.pump.poll_timeout() {
                Some(t) if t.ms() <= target => {
                    // A core that keeps asking for the same past instant is livelocked
                    // (a firmware would spin and drain the battery).
                    same = if t.ms() <= self.hw { same + 1 } else { 0 };
                    assert!(
                        same < 64,
                        "livelock: poll_timeout keeps returning {} ms",
                        t.ms()
                    );
                    self.hw = self.hw.max(t.ms());
                    self.pump.handle_timeout(self.now());
                    self.drain();
                }
                _ => {
                    self.hw = target;
                    return;
                }
            }
        }
        // Too many wakes: the firmware woke late.
        self.hw = target;
        self.pump.handle_timeout(self.now());
        self.drain();
    }

    fn power_cycle(&mut self, tear: Option<u16>, restart_s: Option<u16>, off_s: u16) {
        if let (Some(keep), Some((at, old))) = (tear, self.last_write.take()) {
            // The cut stopped the last write after `keep` bytes: the rest is as it was.
            let keep = usize::from(keep) % (old.len() + 1);
            for (dst, src) in self.mem.bytes_mut()[at..].iter_mut().zip(&old).skip(keep) {
                *dst = *src;
            }
        }
        self.last_write = None;
        self.in_flight = false;
        self.lost_in_storms = 0;
        self.hw = match restart_s {
            Some(s) => u64::from(s) * 1000,
            None => self.hw.saturating_add(u64::from(off_s) * 1000),
        };
        self.pump = Pump::restore(self.profile, self.mem.bytes(), self.now());
        self.drain();
    }

    fn setup(&mut self) {
        let contents = Admixture::single(
            DrugId::Baclofen,
            "2000 mcg/mL".parse().expect("concentration"),
        );
        let cmds = [
            Command::SetClock {
                utc_ms: 1_799_020_800_000,
                offset_minutes: 60,
            },
            Command::Refill {
                aspirated: Volume::ZERO,
                added: "20 mL".parse().expect("volume"),
                contents: contents.clone(),
                keep_dose: false,
                bridge: BridgeChoice::None,
                confirm: SoftReason::new("first fill").ok(),
                beyond_use_utc_ms: None,
            },
            Command::Program {
                prescription: Prescription {
                    contents,
                    schedule: Schedule::continuous("0.5 mL/day".parse().expect("flow")),
                    patient_bolus: Some(PatientBolus {
                        volume: "20 uL".parse().expect("volume"),
                        duration: "10 min".parse().expect("duration"),
                        lockout: "3 h".parse().expect("duration"),
                        max_per_day: 4,
                    }),
                    reservoir_volume: "20 mL".parse().expect("volume"),
                },
                confirm_soft: SoftReason::new("start of therapy").ok(),
            },
            Command::Resume,
        ];
        for c in &cmds {
            let _ = self.command(Role::Clinician, c);
        }
    }
}

fn profile(i: u8) -> HardwareProfile {
    match i % 4 {
        0 => HardwareProfile::synchromed_class(40),
        1 => HardwareProfile::synchromed_class(20),
        2 => HardwareProfile::prometra_class(20),
        _ => HardwareProfile::external_trial(),
    }
}

fuzz_target!(|input: Input| {
    let profile = profile(input.profile);
    let mut sim = Sim {
        profile,
        pump: Pump::new(profile, Instant::ZERO),
        mem: Box::new(NorFlash::new()),
        last_write: None,
        hw: 0,
        motor: Motor::AutoOk,
        in_flight: false,
        lost_in_storms: 0,
    };
    sim.drain();
    if input.setup {
        sim.setup();
    }
    for op in input.ops.iter().take(64) {
        match op {
            Op::Advance { ms } => sim.advance(u64::from(*ms) % (4 * DAY_MS)),
            Op::ToTimeout => {
                if let Some(t) = sim.pump.poll_timeout() {
                    sim.hw = sim.hw.max(t.ms());
                    sim.pump.handle_timeout(sim.now());
                    sim.drain();
                }
            }
            Op::SpuriousWake { ms } => {
                sim.hw = sim.hw.saturating_add(u64::from(*ms));
                sim.pump.handle_timeout(sim.now());
                sim.drain();
            }
            Op::Command { role, key_id, cmd } => {
                let role = match role {
                    FRole::Clinician => Role::Clinician,
                    FRole::PatientRemote => Role::PatientRemote,
                    FRole::Emergency => Role::Emergency,
                };
                let cmd = command(cmd, &sim.pump);
                let _ = sim
                    .pump
                    .handle_command(sim.now(), role, u32::from(*key_id), &cmd);
                sim.drain();
            }
            Op::Storm { role, count, cmd } => {
                let role = match role {
                    FRole::Clinician => Role::Clinician,
                    FRole::PatientRemote => Role::PatientRemote,
                    FRole::Emergency => Role::Emergency,
                };
                let cmd = command(cmd, &sim.pump);
                let before = sim.pump.dropped_actions();
                for _ in 0..*count {
                    let _ = sim.pump.handle_command(sim.now(), role, 0, &cmd);
                }
                let lost = sim.pump.dropped_actions() - before;
                if lost > 0 {
                    assert!(
                        matches!(sim.pump.status().mode, Mode::Fault { .. }),
                        "{lost} actions lost in a storm, mode {:?}",
                        sim.pump.status().mode
                    );
                }
                sim.lost_in_storms += lost;
                sim.drain();
            }
            Op::StrokeDone { ok } => {
                sim.in_flight = false;
                sim.pump.handle_stroke_done(sim.now(), *ok);
                sim.drain();
            }
            Op::SetMotor(m) => sim.motor = *m,
            Op::Battery {
                remaining_uj,
                voltage_mv,
            } => {
                sim.pump.handle_battery(
                    sim.now(),
                    BatteryReading {
                        remaining_uj: *remaining_uj,
                        voltage_mv: *voltage_mv,
                    },
                );
                sim.drain();
            }
            Op::Magnet(on) => {
                sim.pump.handle_magnet(sim.now(), *on);
                sim.drain();
            }
            Op::Radio { ms } => {
                sim.pump.handle_radio(sim.now(), u64::from(*ms));
                sim.drain();
            }
            Op::PowerCycle {
                tear,
                counter_restart_s,
                off_s,
            } => sim.power_cycle(*tear, *counter_restart_s, *off_s),
        }
    }
});
