//! The event loop: the real pump core against the models.
//!
//! The engine keeps a virtual clock and a queue of timed events (the scenario's
//! timeline, timeline samples, patient button presses, battery readings, environment
//! changes, constant-rate flow steps). At each turn it asks the core for
//! `poll_timeout()`, jumps to whichever comes first, lets the patient's
//! pharmacokinetics run analytically up to that instant, and delivers the input. So a
//! year costs what its strokes and events cost, never a fixed time step.
//!
//! The physics the core cannot see lives here: the **true** reservoir (which a pocket
//! fill leaves empty while the pump believes it full), the true stroke volumes (bias,
//! variation, stalls, lost strokes), the true catheter contents ([`crate::truth`]: exact,
//! independent of the pump's `FluidPath`, fed with true volumes and the true drug, which
//! after a wrong-concentration refill differs from what the pump was told) and its routing (occlusion, granuloma, leak), and the patient.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thecal_pump::alarm::AlarmKind;
use thecal_pump::battery::BatteryState;
use thecal_pump::command::{BridgeChoice, Command, Refusal, Response, Role, StopReason};
use thecal_pump::core::{Action, BolusKind, Pump};
use thecal_pump::event::Event as LogEvent;
use thecal_pump::journal::{DEFAULT_PAGES, NorFlash, PAGE_SIZE, StoreOp};
use thecal_pump::profile::{HardwareProfile, Mechanism};
use thecal_rx::check::Prescription;
use thecal_rx::dose::{Admixture, Component, flow_for_dose};
use thecal_rx::drug::DrugId;
use thecal_rx::quantity::{MS_PER_DAY, MS_PER_HOUR};
use thecal_rx::schedule::Schedule;
use thecal_rx::{Concentration, Duration, Instant, Volume};

use crate::models::catheter::{Catheter, Granuloma};
use crate::models::environment::Environment;
use crate::models::faults::{FaultInjector, FaultPlan, StrokeOutcome};
use crate::models::mechanism::{GasPump, Peristaltic, ValvePulse};
use crate::models::patient::{Condition, Patient, Risks};
use crate::result::{AlarmMark, Note, PumpLog, RunResult, Sample, Totals};
use crate::scenario::{self, Device, Event, Pressing, RefillError, Scenario};
use crate::truth::{FG_PER_NG, TrueCatheter, drug_slot};

mod body;
mod therapy;

/// 2027-01-04 00:00 UTC, a Monday: the wall-clock start of every run.
pub const START_UTC_MS: u64 = 1_799_020_800_000;
/// Step of a constant-rate pump's flow integration.
const GAS_STEP: Duration = Duration::from_minutes(15);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Scenario(usize),
    Sample,
    Press,
    BatteryReading,
    GasStep,
    /// A fever ends: body temperature back to normal.
    FeverEnd,
    /// A flight or dive ends: ambient pressure back to sea level.
    PressureEnd,
    MriEnd,
    /// The next frame of a telemetry attack stream ([`crate::radio`]).
    Radio(usize),
}

/// The true mechanism of a programmable pump.
enum Mech {
    Peristaltic(Peristaltic),
    Valve(ValvePulse),
}

struct Programmable {
    profile: HardwareProfile,
    pump: Pump,
    mech: Mech,
    /// The journal's NOR flash, allocated at its first write (a simulation without
    /// persistence never needs it).
    mem: Option<Box<NorFlash<DEFAULT_PAGES>>>,
    /// Tear the n-th persist write from now (1 = next), then restart.
    cut_in: Option<u32>,
    last_program_version: u32,
}

enum Dev {
    Programmable(Box<Programmable>),
    Constant { gas: GasPump },
}

/// A running simulation.
pub struct Engine<'a> {
    sc: &'a Scenario,
    rng: ChaCha8Rng,
    /// True time since the start, ms.
    now: u64,
    end: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    dev: Dev,
    /// True reservoir volume, nL, and what it truly holds.
    reservoir_nl: f64,
    contents: Admixture,
    /// The true catheter contents.
    catheter_fluid: TrueCatheter,
    catheter: Catheter,
    env: Environment,
    faults: FaultInjector,
    patient: Patient,
    /// One patient model per other active drug of the admixture (SIM-070).
    companions: Vec<Patient>,
    primary: DrugId,
    /// True volume moved since the last flush, nL: pushed through the catheter, and
    /// given to the patient as a constant infusion over the interval, at the next flush
    /// (a flush comes at every sample, every scenario event, and whenever the core
    /// logs a change of delivery: bolus start or end, program change, refill).
    pending_nl: f64,
    last_flush: u64,
    // accumulators since the last sample
    tip_ng: f64,
    flow_nl: f64,
    prescribed_ng: f64,
    /// The clinician's intended dose since the last sample, ng ([`therapy`]).
    intended_ng: f64,
    /// The wall clock as the patient lives it and as the pump was told it
    /// ([`therapy::Clocks`]).
    clocks: therapy::Clocks,
    last_sample: u64,
    press_id: u32,
    /// Hardware time at true time zero.
    hw_offset: u64,
    /// Why the pump refused the scenario's initial prescription, if it did.
    setup_refused: Option<String>,
    result: RunResult,
    /// Every event-log entry the core emitted, set-up included ([`Engine::run_logged`]).
    log: PumpLog,
    /// The telemetry, when the scenario has a radio ([`crate::radio`]).
    radio: Option<Box<crate::radio::Telemetry>>,
    /// The prescribed rate of a running programmable pump with a constant program, ng/ms,
    /// as last worked out; `None` after anything that may have changed the program (a
    /// command, a telemetry turn, a restart or a new pump).
    basal_rate: Option<f64>,
    /// The implanted catheter (the scenario's, then each revision's); `None`: the
    /// profile's nominal one.
    sc_catheter: Option<thecal_pump::catheter::CatheterRecord>,
}

fn ms_h(ms: u64) -> f64 {
    ms as f64 / MS_PER_HOUR as f64
}

impl<'a> Engine<'a> {
    /// Sets up the run: the pump, the patient, the clinic's first refill and program.
    pub fn new(sc: &'a Scenario) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
        let primary = sc
            .prescription
            .contents
            .active()
            .next()
            .map_or(DrugId::Saline, |c| c.drug);
        let saline = Admixture::single(DrugId::Saline, Concentration::ZERO);
        let (dev, dead) = match &sc.device {
            Device::Programmable(profile) => {
                let mut profile = *profile;
                if let Some(b) = sc.battery_uj {
                    profile.battery_uj = b;
                }
                let mut pump = Pump::new(profile, Instant::ZERO);
                pump.set_persistence(sc.persistence);
                let stroke = profile.stroke_volume.raw() as f64;
                let mech = match profile.mechanism {
                    Mechanism::Valve => Mech::Valve(ValvePulse::new(stroke)),
                    _ => {
                        let mut p = Peristaltic::sample_device_with(&mut rng, stroke);
                        if let Some(bias) = sc.calibration_bias {
                            p.calibration_bias = bias;
                        }
                        p.stroke_cv = sc.stroke_cv;
                        Mech::Peristaltic(p)
                    }
                };
                let prog = Programmable {
                    profile,
                    pump,
                    mech,
                    mem: None,
                    cut_in: None,
                    last_program_version: 0,
                };
                let catheter = sc.catheter.unwrap_or_else(|| profile.nominal_catheter());
                let dead = profile.pump_path_volume.saturating_add(catheter.volume());
                (Dev::Programmable(Box::new(prog)), dead)
            }
            Device::ConstantRate(nominal) => {
                let model = thecal_rx::constant_rate::GasPumpModel::TYPICAL.with_nominal(*nominal);
                (
                    Dev::Constant {
                        gas: GasPump::new(model),
                    },
                    Volume::from_nl(150_000),
                )
            }
        };
        let initial = if sc.primed {
            sc.prescription.contents.clone()
        } else {
            saline
        };
        let catheter_fluid = TrueCatheter::new(dead, &initial);
        let mut condition = match sc.condition {
            scenario::Condition::Pain => Condition::pain(),
            scenario::Condition::Spasticity => Condition::spasticity(),
        };
        condition.high_risk = sc.high_risk;
        let patient = Patient::new(primary, condition);
        let companions = body::companions(&sc.prescription.contents, primary, condition);
        let mut engine = Engine {
            sc,
            rng,
            now: 0,
            end: sc.duration.ms(),
            queue: BinaryHeap::new(),
            seq: 0,
            dev,
            reservoir_nl: 0.0,
            contents: sc.prescription.contents.clone(),
            catheter_fluid,
            catheter: Catheter::default(),
            env: Environment::default(),
            faults: FaultInjector::new(FaultPlan::NONE),
            patient,
            companions,
            primary,
            pending_nl: 0.0,
            last_flush: 0,
            tip_ng: 0.0,
            flow_nl: 0.0,
            prescribed_ng: 0.0,
            intended_ng: 0.0,
            clocks: therapy::Clocks::default(),
            last_sample: 0,
            press_id: 0,
            hw_offset: 0,
            setup_refused: None,
            result: RunResult {
                scenario: sc.name.clone(),
                description: sc.description.clone(),
                duration_h: ms_h(sc.duration.ms()),
                samples: Vec::new(),
                alarms: Vec::new(),
                notes: Vec::new(),
                totals: Totals {
                    drug: primary.name().to_string(),
                    ..Totals::default()
                },
                verdicts: Vec::new(),
                radio: None,
            },
            log: PumpLog::default(),
            radio: crate::radio::Telemetry::new(sc),
            basal_rate: None,
            sc_catheter: sc.catheter,
        };
        engine.setup();
        engine.set_tolerance();
        engine
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn note(&mut self, text: impl Into<String>) {
        self.result.notes.push(Note {
            t_h: ms_h(self.now),
            text: text.into(),
        });
    }

    /// The clinic's first visit: fill, program, start (and prime), set the clock; and the
    /// recurring events.
    fn setup(&mut self) {
        for (i, (at, _)) in self.sc.events.iter().enumerate() {
            self.push(at.ms(), Ev::Scenario(i));
        }
        self.push(self.sc.sample_every.ms(), Ev::Sample);
        self.reservoir_nl = self.sc.fill.raw() as f64;
        match &self.dev {
            Dev::Constant { .. } => self.push(GAS_STEP.ms(), Ev::GasStep),
            Dev::Programmable(_) => {
                self.push(MS_PER_DAY, Ev::BatteryReading);
                let fill = self.sc.fill;
                let contents = self.sc.prescription.contents.clone();
                let refill = |aspirated| Command::Refill {
                    aspirated,
                    added: fill,
                    contents: contents.clone(),
                    keep_dose: false,
                    bridge: BridgeChoice::None,
                    confirm: thecal_pump::command::SoftReason::new("simulated clinic visit").ok(),
                    beyond_use_utc_ms: None,
                };
                // The implant: the catheter is recorded before anything is filled.
                let catheter = self.catheter();
                self.clinician(Command::SetCatheter(catheter));
                self.clinician(refill(Volume::ZERO));
                let mut rx = self.sc.prescription.clone();
                rx.reservoir_volume = fill;
                let r = self.clinician(Command::Program {
                    prescription: rx,
                    confirm_soft: thecal_pump::command::SoftReason::new("simulated clinic visit")
                        .ok(),
                });
                if let Response::Refused(reason) = r {
                    self.setup_refused = Some(reason.to_string());
                }
                self.clinician(Command::Resume);
                if self.sc.primed {
                    self.prime_before_start();
                    // Top the reservoir up to the fill, as the clinician would.
                    let expected = match &self.dev {
                        Dev::Programmable(p) => p.pump.status().reservoir,
                        Dev::Constant { .. } => Volume::ZERO,
                    };
                    self.clinician(refill(expected));
                }
                if self.sc.clock_set {
                    self.clinician(Command::SetClock {
                        utc_ms: START_UTC_MS,
                        offset_minutes: 0,
                    });
                }
                if let Dev::Programmable(p) = &mut self.dev {
                    p.last_program_version = p.pump.status().program_version;
                }
                // The implant's fill (and its top-up after priming) is the set-up, not a
                // refill the scenario made: `totals.refills` counts the scenario's own.
                self.result.totals.refills = 0;
                let hw = self.hw();
                if let (Some(radio), Dev::Programmable(p)) =
                    (self.radio.as_deref_mut(), &mut self.dev)
                {
                    radio.started(hw, &mut p.pump);
                }
                self.drain();
            }
        }
        self.schedule_press();
    }

    /// A catheter primed at implant: the pump's own priming bolus runs before the
    /// scenario's time starts (its hardware clock runs ahead by that long), moving
    /// nothing real — the true catheter already holds the drug. So the pump's fluid model
    /// and the truth agree from the first instant.
    fn prime_before_start(&mut self) {
        self.basal_rate = None;
        let Dev::Programmable(p) = &mut self.dev else {
            return;
        };
        let start = Instant::from_ms(self.hw_offset);
        let r = p.pump.handle_command(
            start,
            Role::Clinician,
            0,
            &Command::PrimingBolus {
                duration: Duration::from_hours(1),
            },
        );
        if !matches!(r, Response::BolusAccepted { .. }) {
            return;
        }
        let mut t = start;
        for _ in 0..1_000_000 {
            let mut stroke = false;
            while let Some(a) = p.pump.poll_action() {
                stroke |= a == Action::Stroke;
                // The priming's entries are the implant's log too (true time zero: the
                // priming comes before the scenario's time starts).
                if let Action::Log(e) = a {
                    self.log.entries.push((0, e));
                }
            }
            if stroke {
                p.pump.handle_stroke_done(t, true);
                continue;
            }
            if p.pump
                .fluid()
                .volume_until(&p.pump.program().contents)
                .is_zero()
                && !p.pump.status().bolus_active
            {
                break;
            }
            let Some(next) = p.pump.poll_timeout() else {
                break;
            };
            t = next.max(t);
            p.pump.handle_timeout(t);
        }
        while let Some(a) = p.pump.poll_action() {
            if let Action::Log(e) = a {
                self.log.entries.push((0, e));
            }
        }
        self.hw_offset = t.ms();
    }

    // ----- the pump interface ---------------------------------------------------------

    /// The pump's hardware time at the current true time (clock drift, and the head
    /// start of a priming before the run).
    fn hw(&self) -> Instant {
        let drift = self.sc.drift_ppm;
        if drift == 0.0 {
            // The same as below without the rounding (exact below 2^53 ms).
            return Instant::from_ms(self.now + self.hw_offset);
        }
        let t = ((self.now as f64) * (1.0 + drift * 1e-6)).round() as u64;
        Instant::from_ms(t + self.hw_offset)
    }

    fn true_ms(&self, hw: Instant) -> u64 {
        let drift = self.sc.drift_ppm;
        if drift == 0.0 {
            return hw.ms().saturating_sub(self.hw_offset);
        }
        ((hw.ms().saturating_sub(self.hw_offset) as f64) / (1.0 + drift * 1e-6)).ceil() as u64
    }

    /// Sends a command as `role`, carries out the actions, and records refusals.
    fn command(&mut self, role: Role, cmd: Command) -> Response {
        self.basal_rate = None;
        let hw = self.hw();
        let Dev::Programmable(p) = &mut self.dev else {
            return Response::Refused(thecal_pump::command::Refusal::Invalid("no electronics"));
        };
        self.result.totals.pump_wakes += 1;
        let r = p.pump.handle_command(hw, role, 1, &cmd);
        if let Response::Refused(reason) = &r {
            self.result.totals.commands_refused += 1;
            let text = format!("refused {}: {reason}", cmd.kind().name());
            self.note(text);
        }
        self.drain();
        r
    }

    /// A catheter revision: stop, the surgeon's new catheter (drug-free, the old
    /// catheter's fluid gone with it) in the body and in the pump's record, resume.
    fn revise_catheter(&mut self, record: thecal_pump::catheter::CatheterRecord) {
        let Dev::Programmable(p) = &self.dev else {
            return;
        };
        let pump_path = p.profile.pump_path_volume;
        self.clinician(Command::Stop {
            reason: StopReason::Procedure,
        });
        self.catheter_fluid
            .replace_catheter(pump_path, record.volume());
        self.sc_catheter = Some(record);
        let r = self.clinician(Command::SetCatheter(record));
        self.note(format!("catheter revised: {record}"));
        if let Response::Refused(why) = r {
            self.note(format!("catheter record refused: {why}"));
        }
        self.clinician(Command::Resume);
    }

    /// The implanted catheter: the scenario's, or the profile's nominal one.
    fn catheter(&self) -> thecal_pump::catheter::CatheterRecord {
        match (&self.dev, self.sc_catheter) {
            (_, Some(c)) => c,
            (Dev::Programmable(p), None) => p.profile.nominal_catheter(),
            (Dev::Constant { .. }, None) => {
                thecal_pump::profile::HardwareProfile::synchromed_class(20).nominal_catheter()
            }
        }
    }

    fn clinician(&mut self, cmd: Command) -> Response {
        self.command(Role::Clinician, cmd)
    }

    /// Carries out every pending action.
    fn drain(&mut self) {
        loop {
            let mut stroke = false;
            let mut restart = false;
            let mut log: Option<LogEvent> = None;
            let mut tone: Option<(AlarmKind, String)> = None;
            {
                let Dev::Programmable(p) = &mut self.dev else {
                    return;
                };
                match p.pump.poll_action() {
                    None => break,
                    Some(Action::Stroke) => stroke = true,
                    Some(Action::Store(op)) => {
                        restart = store(&mut p.mem, &mut p.cut_in, op);
                    }
                    Some(Action::Log(e)) => {
                        self.log.entries.push((self.now, e));
                        log = Some(e.event);
                    }
                    Some(Action::FaultLog(_)) => {}
                    Some(Action::Alarm(s)) => tone = Some((s.kind, format!("{:?}", s.priority))),
                }
            }
            if let Some((kind, priority)) = tone {
                self.result.alarms.push(AlarmMark {
                    t_h: ms_h(self.now),
                    kind: format!("{kind:?}"),
                    priority,
                    what: "tone".into(),
                });
            }
            if let Some(e) = log {
                self.on_log(e);
            }
            // The stroke's report may queue more actions: go on polling.
            if stroke {
                self.stroke();
                continue;
            }
            // A restart drains what follows it: nothing is left to poll.
            if restart {
                self.power_cycle();
                break;
            }
        }
    }

    fn on_log(&mut self, e: LogEvent) {
        if matches!(
            e,
            LogEvent::BolusStarted { .. }
                | LogEvent::BolusEnded { .. }
                | LogEvent::ProgramChanged { .. }
                | LogEvent::Refill { .. }
                | LogEvent::Stopped { .. }
                | LogEvent::Resumed
                | LogEvent::MotorStall { .. }
                | LogEvent::MotorRecovered { .. }
                | LogEvent::LimiterVeto { .. }
        ) {
            self.flush();
        }
        let t_h = ms_h(self.now);
        match e {
            LogEvent::AlarmRaised(kind) | LogEvent::AlarmCleared(kind) => {
                let what = if matches!(e, LogEvent::AlarmRaised(_)) {
                    "raised"
                } else {
                    "cleared"
                };
                self.result.alarms.push(AlarmMark {
                    t_h,
                    kind: format!("{kind:?}"),
                    priority: format!("{:?}", kind.priority()),
                    what: what.into(),
                });
                if let LogEvent::AlarmRaised(AlarmKind::LowReservoir) = e {
                    self.result.totals.low_reservoir_alarms += 1;
                }
                if let (LogEvent::AlarmRaised(k), Dev::Programmable(_)) = (e, &self.dev) {
                    if k == AlarmKind::ElectiveReplacement && self.result.totals.eri_day.is_none() {
                        self.result.totals.eri_day = Some(t_h / 24.0);
                    }
                    if k == AlarmKind::EndOfService && self.result.totals.eos_day.is_none() {
                        self.result.totals.eos_day = Some(t_h / 24.0);
                    }
                }
            }
            LogEvent::LimiterVeto {
                drug,
                window_hours,
                would_be,
                limit,
            } => {
                self.result.totals.limiter_vetoes += 1;
                self.note(format!("limiter veto: {drug} {window_hours} h window would reach {would_be}, limit {limit}"));
            }
            LogEvent::Refill {
                flagged,
                aspirated,
                expected,
                ..
            } => {
                self.result.totals.refills += 1;
                if flagged {
                    self.note(format!(
                        "refill reconciliation flagged: aspirated {aspirated}, expected {expected}"
                    ));
                }
            }
            LogEvent::MotorStall { .. } => self.note("motor stall"),
            LogEvent::MotorRecovered { missed } => {
                self.note(format!("motor recovered; missed {missed}"))
            }
            LogEvent::Fault { code } => self.note(format!("pump fault: {}", code.name())),
            LogEvent::BolusStarted {
                kind: BolusKind::Patient,
                ..
            } => {
                self.result.totals.boluses_given += 1;
                self.result.totals.patient_bolus_h.push(t_h);
            }
            LogEvent::HandshakeDenied { .. } | LogEvent::FirmwareUpdate(_) => {
                if let Some(r) = self.radio.as_deref_mut() {
                    r.logged(t_h, &e);
                }
            }
            _ => {}
        }
    }

    /// One stroke: the fault plan, the true mechanism, the catheter, the patient.
    fn stroke(&mut self) {
        let hw = self.hw();
        let t_h = ms_h(self.now);
        let mri = self.env.mri;
        let outcome = self.faults.stroke(&mut self.rng, mri);
        let Dev::Programmable(p) = &mut self.dev else {
            return;
        };
        let capacity = p.profile.reservoir_capacity;
        let moved_nl = match (&outcome, &mut p.mech) {
            (StrokeOutcome::Stalled, _) => None,
            (_, Mech::Valve(_)) if mri => None,
            (StrokeOutcome::Lost, _) => Some(0.0),
            (StrokeOutcome::Moved, Mech::Peristaltic(m)) => {
                Some(m.stroke_nl(&mut self.rng, t_h / 8766.0))
            }
            (StrokeOutcome::Moved, Mech::Valve(v)) => {
                let fill = self.reservoir_nl / capacity.raw().max(1) as f64;
                Some(v.pulse_nl(&mut self.rng, fill))
            }
        };
        match moved_nl {
            None => p.pump.handle_stroke_done(hw, false),
            Some(v) => {
                p.pump.handle_stroke_done(hw, true);
                self.result.totals.strokes += 1;
                self.move_fluid_at(v, t_h);
            }
        }
        // The caller ([`Engine::drain`]) carries out what the report queued.
    }

    /// Moves `nl` of true fluid out of the reservoir (what the catheter lets through);
    /// its transport and effect are integrated at the next [`Engine::flush`].
    fn move_fluid(&mut self, nl: f64) {
        self.move_fluid_at(nl, ms_h(self.now));
    }

    /// [`Engine::move_fluid`] with the current time in hours, `t_h`, worked out.
    fn move_fluid_at(&mut self, nl: f64, t_h: f64) {
        // A sound catheter blocks nothing: `routing().blocked` is exactly 0 and
        // `nl * (1.0 - 0.0)` is `nl`, so the routing need not be worked out at every
        // stroke (the same bits either way, SIM-077).
        let wanted = if self.catheter.blocks_nothing() {
            nl
        } else {
            nl * (1.0 - self.catheter.routing(t_h).blocked)
        };
        let moved = wanted.min(self.reservoir_nl).max(0.0);
        self.reservoir_nl -= moved;
        self.flow_nl += moved;
        self.pending_nl += moved;
    }

    /// Pushes the volume moved since the last flush through the true catheter and gives
    /// the patient what reaches the CSF (and the tissue) as a constant infusion over the
    /// interval, advancing the pharmacokinetics to now.
    fn flush(&mut self) {
        let dt_h = ms_h(self.now.saturating_sub(self.last_flush));
        let volume = Volume::from_nl(self.pending_nl.round() as u64);
        self.pending_nl -= volume.raw() as f64;
        let (mut to_csf, mut to_tissue) = (0.0, 0.0);
        let mut others = [(0.0, 0.0); thecal_rx::dose::MAX_DRUGS];
        if !volume.is_zero() {
            let out = self.catheter_fluid.push(volume, &self.contents);
            if let Some(fg) = out.get(drug_slot(self.primary)) {
                let routing = self.catheter.routing(ms_h(self.now));
                let ng = *fg as f64 / FG_PER_NG as f64;
                let pass = (1.0 - routing.blocked).max(1e-12);
                to_csf = ng * routing.to_csf / pass;
                to_tissue = ng * routing.to_tissue / pass;
                body::split(&out, &self.companions, &routing, &mut others);
            }
        }
        self.patient.receive(to_csf, to_tissue, dt_h);
        for (c, (csf, tissue)) in self.companions.iter_mut().zip(others) {
            c.receive(csf, tissue, dt_h);
        }
        self.tip_ng += to_csf;
        self.result.totals.delivered_tip_mcg += to_csf / 1000.0;
        self.result.totals.to_tissue_mcg += to_tissue / 1000.0;
        self.last_flush = self.now;
    }

    /// Power cut and restart from the journal.
    fn power_cycle(&mut self) {
        self.restart("power cut");
    }

    /// A restart of the implant (`why`: a power cut, or the restart into a trial
    /// firmware image): the core is restored from the journal, then the firmware starts
    /// (a trial image runs its self-test and confirms itself or reverts, SIM-063).
    fn restart(&mut self, why: &str) {
        self.basal_rate = None;
        let hw = self.hw();
        if let Dev::Programmable(p) = &mut self.dev {
            p.cut_in = None;
            let persistence = self.sc.persistence;
            p.pump = match &p.mem {
                Some(mem) => Pump::restore(p.profile, mem.bytes(), hw),
                None => Pump::restore(p.profile, &vec![0xff; DEFAULT_PAGES * PAGE_SIZE], hw),
            };
            p.pump.set_persistence(persistence);
            let v = p.pump.status().program_version;
            self.note(format!(
                "{why}: restarted from the journal at program version {v}"
            ));
        }
        self.drain();
        if let (Some(radio), Dev::Programmable(p)) = (self.radio.as_deref_mut(), &mut self.dev) {
            // The trial image's self-test: the restored core runs, not in its safe state.
            let passed = !matches!(
                p.pump.status().mode,
                thecal_pump::command::Mode::Fault { .. }
            );
            if let Some(note) = radio.restarted(hw, &mut p.pump, passed) {
                self.note(note);
            }
            self.drain();
        }
    }

    // ----- scenario events --------------------------------------------------------------

    fn scenario_event(&mut self, i: usize) {
        self.flush();
        let Some((_, ev)) = self.sc.events.get(i) else {
            return;
        };
        match ev.clone() {
            Event::Refill {
                volume,
                concentration,
                keep_dose,
                bridge,
                error,
                missed,
            } => {
                if missed {
                    self.note("refill appointment missed");
                    return;
                }
                self.refill(volume, concentration, keep_dose, bridge, error);
            }
            Event::Program(rx) => {
                let mut rx = *rx;
                if let Dev::Programmable(p) = &self.dev {
                    rx.contents = p.pump.program().contents.clone();
                }
                self.clinician(Command::Program {
                    prescription: rx,
                    confirm_soft: thecal_pump::command::SoftReason::new("simulated clinic visit")
                        .ok(),
                });
            }
            Event::Titrate(dose) => {
                let Dev::Programmable(p) = &self.dev else {
                    return;
                };
                let mut rx = p.pump.program().clone();
                let conc = rx.contents.concentration_of(self.primary);
                match flow_for_dose(conc, dose) {
                    Ok(flow) => {
                        rx.schedule = Schedule::continuous(flow);
                        self.note(format!("titrate to {dose} ({flow})"));
                        self.clinician(Command::Program {
                            prescription: rx,
                            confirm_soft: thecal_pump::command::SoftReason::new(
                                "simulated clinic visit",
                            )
                            .ok(),
                        });
                    }
                    Err(e) => self.note(format!("titrate to {dose}: {e}")),
                }
            }
            Event::ClinicianBolus { volume, duration } => {
                self.clinician(Command::ClinicianBolus { volume, duration });
            }
            Event::Priming(duration) => {
                self.clinician(Command::PrimingBolus { duration });
            }
            Event::PatientPress => self.press(),
            Event::Mri(duration) => {
                let valve = matches!(&self.dev, Dev::Programmable(p) if p.profile.mechanism == Mechanism::Valve);
                if valve {
                    // A valve pump enters MRI mode only when emptied; a scan of a full
                    // pump is an emergency the clinician confirms explicitly.
                    if let Response::Refused(Refusal::MriReservoirNotEmpty { .. }) =
                        self.clinician(Command::MriMode(true))
                    {
                        self.clinician(Command::MriEmergency);
                    }
                }
                self.env.mri = true;
                self.magnet(true);
                self.note(format!("MRI scan for {duration}"));
                self.push(self.now + duration.ms(), Ev::MriEnd);
            }
            Event::Occlusion(f) => {
                self.catheter.occlusion = f;
                self.note(format!("catheter occlusion {:.0} %", f * 100.0));
            }
            Event::Granuloma { grow_to, over } => {
                self.catheter.granuloma = Some(Granuloma {
                    start_h: ms_h(self.now),
                    grow_to,
                    over_h: ms_h(over.ms()),
                });
                self.note(format!(
                    "tip granuloma growing to {:.0} % occlusion over {over}",
                    grow_to * 100.0
                ));
            }
            Event::Leak(f) => {
                self.catheter.leak = f;
                self.note(format!("catheter leak: {:.0} % to tissue", f * 100.0));
            }
            Event::Fever {
                temperature_c,
                duration,
            } => {
                self.env.body_temp_c = temperature_c;
                self.note(format!("fever {temperature_c} °C for {duration}"));
                self.push(self.now + duration.ms(), Ev::FeverEnd);
            }
            Event::Flight {
                altitude_m,
                duration,
            } => {
                self.env.ambient_pa =
                    thecal_rx::constant_rate::ambient_at_altitude(altitude_m as u32) as f64;
                self.note(format!("flight, cabin at {altitude_m} m, for {duration}"));
                self.push(self.now + duration.ms(), Ev::PressureEnd);
            }
            Event::Dive { depth_m, duration } => {
                self.env.ambient_pa =
                    thecal_rx::constant_rate::ambient_at_depth(depth_m as u32) as f64;
                self.note(format!("dive to {depth_m} m for {duration}"));
                self.push(self.now + duration.ms(), Ev::PressureEnd);
            }
            Event::PowerCut { write } => {
                if let Dev::Programmable(p) = &mut self.dev {
                    if self.sc.persistence {
                        p.cut_in = Some(write);
                    } else {
                        self.note("power cut ignored: the scenario runs without persistence");
                    }
                }
            }
            Event::Stop => {
                self.clinician(Command::Stop {
                    reason: StopReason::Procedure,
                });
            }
            Event::Resume => {
                self.clinician(Command::Resume);
            }
            Event::ReplacePump => self.replace_pump(),
            Event::CatheterRevision(record) => self.revise_catheter(record),
            Event::Radio(a) => self.radio_turn(crate::radio::Turn::Attack(a)),
            Event::SetClock { shift_ms } => self.set_clock(shift_ms),
            Event::TimeZone {
                offset_minutes,
                tell_pump,
            } => self.time_zone(offset_minutes, tell_pump),
        }
    }

    /// One turn of the telemetry against the pump ([`crate::radio`]).
    fn radio_turn(&mut self, turn: crate::radio::Turn) {
        self.basal_rate = None;
        let hw = self.hw();
        let (Some(radio), Dev::Programmable(p)) = (self.radio.as_deref_mut(), &mut self.dev) else {
            return;
        };
        let out = radio.turn(turn, self.now, hw, &mut p.pump);
        self.result.totals.pump_wakes += out.wakes;
        self.result.totals.commands_refused += out.refused;
        for (at, i) in out.schedule {
            self.push(at, Ev::Radio(i));
        }
        for text in out.notes {
            self.note(text);
        }
        self.drain();
        if out.restart {
            self.restart("firmware restart into the trial image");
        }
    }

    fn magnet(&mut self, on: bool) {
        let hw = self.hw();
        if let Dev::Programmable(p) = &mut self.dev {
            p.pump.handle_magnet(hw, on);
        }
        self.drain();
    }

    fn refill(
        &mut self,
        volume: Volume,
        concentration: Option<Concentration>,
        keep_dose: bool,
        bridge: BridgeChoice,
        error: Option<RefillError>,
    ) {
        let mut contents = self.contents.clone();
        if let Some(c) = concentration {
            contents = with_primary(&contents, self.primary, c);
        }
        // Aspirate the true residual (the clinician reads the syringe to 0.1 mL).
        let aspirated =
            Volume::from_nl(((self.reservoir_nl / 100_000.0).round() * 100_000.0) as u64);
        let true_ng = |c: &Admixture, v: Volume| {
            c.concentration_of(self.primary).raw() as f64 * v.raw() as f64 / 1e6
        };
        match &error {
            Some(RefillError::PocketFill) => {
                // The drug meant for months is absorbed systemically at once.
                self.reservoir_nl = 0.0;
                let ng = true_ng(&contents, volume);
                self.patient.dose_systemic(ng);
                body::refill_error(&mut self.companions, &contents, volume, false);
                self.result.totals.to_tissue_mcg += ng / 1000.0;
                self.note(format!(
                    "pocket fill: {volume} injected into the tissue pocket"
                ));
            }
            Some(RefillError::AccessPort) => {
                self.reservoir_nl = 0.0;
                let ng = true_ng(&contents, volume);
                self.patient.dose_csf(ng);
                body::refill_error(&mut self.companions, &contents, volume, true);
                self.result.totals.delivered_tip_mcg += ng / 1000.0;
                self.note(format!(
                    "refill through the catheter access port: {volume} straight to the CSF"
                ));
            }
            _ => {
                self.reservoir_nl = volume.raw() as f64;
                self.contents = contents.clone();
            }
        }
        // What the clinician enters.
        let (entered_volume, entered_contents) = match &error {
            Some(RefillError::WrongConcentration(c)) => {
                (volume, with_primary(&contents, self.primary, *c))
            }
            Some(RefillError::WrongVolume(v)) => (*v, contents.clone()),
            _ => (volume, contents.clone()),
        };
        let cmd = |added: Volume, contents: Admixture| Command::Refill {
            aspirated,
            added,
            contents,
            keep_dose,
            bridge,
            confirm: thecal_pump::command::SoftReason::new("simulated clinic visit").ok(),
            beyond_use_utc_ms: None,
        };
        let r = self.clinician(cmd(entered_volume, entered_contents.clone()));
        let refused = matches!(r, Response::Refused(_));
        if refused && (entered_contents != contents || entered_volume != volume) {
            // The programmer showed the refusal: the clinician corrects the entry.
            self.note("the clinician corrects the refill entry after the refusal");
            self.clinician(cmd(volume, contents));
        } else if !refused {
            if let Some(RefillError::WrongConcentration(c)) = error {
                self.note(format!(
                    "refill entered as {c}: accepted, the pump now believes the wrong concentration"
                ));
            }
        }
        self.read_back(cmd(volume, self.contents.clone()));
    }

    /// The programmer reads the pump back after an update; a refill lost to a power cut
    /// is sent again (the physical refill was done once).
    fn read_back(&mut self, again: Command) {
        let Dev::Programmable(p) = &self.dev else {
            return;
        };
        let v = p.pump.status().program_version;
        if v == p.last_program_version {
            self.note("read-back: the refill did not take (power cut); sending it again");
            self.clinician(again);
        }
        if let Dev::Programmable(p) = &mut self.dev {
            p.last_program_version = p.pump.status().program_version;
        }
    }

    fn replace_pump(&mut self) {
        self.basal_rate = None;
        let hw = self.hw();
        let Dev::Programmable(p) = &mut self.dev else {
            return;
        };
        let program = p.pump.program().clone();
        let mut profile = p.profile;
        if let Some(b) = self.sc.battery_uj {
            profile.battery_uj = b;
        }
        p.pump = Pump::new(profile, hw);
        p.pump.set_persistence(self.sc.persistence);
        p.mem = None;
        p.last_program_version = 0;
        self.note("pump replaced; refilled and reprogrammed; catheter primed");
        // The catheter stays: the new pump is told which one it is.
        let catheter = self.catheter();
        self.clinician(Command::SetCatheter(catheter));
        let dead = profile.pump_path_volume.saturating_add(catheter.volume());
        self.catheter_fluid = TrueCatheter::new(dead, &self.contents);
        let volume = profile.reservoir_capacity.min(self.sc.fill);
        self.reservoir_nl = volume.raw() as f64;
        // The new pump's clock is set right, in the patient's time zone.
        self.clocks.shift_ms = 0;
        self.clinician(Command::SetClock {
            utc_ms: START_UTC_MS + self.now,
            offset_minutes: self.clocks.offset_minutes,
        });
        self.clinician(Command::Refill {
            aspirated: Volume::ZERO,
            added: volume,
            contents: self.contents.clone(),
            keep_dose: false,
            bridge: BridgeChoice::None,
            confirm: thecal_pump::command::SoftReason::new("simulated clinic visit").ok(),
            beyond_use_utc_ms: None,
        });
        let mut rx = program;
        rx.contents = self.contents.clone();
        self.clinician(Command::Program {
            prescription: rx,
            confirm_soft: thecal_pump::command::SoftReason::new("simulated clinic visit").ok(),
        });
        self.clinician(Command::Resume);
    }

    // ----- the patient ------------------------------------------------------------------

    fn schedule_press(&mut self) {
        let at = match self.sc.pressing {
            Pressing::Never => return,
            Pressing::EveryMinute => self.now + 60_000,
            Pressing::WhenPoor { per_hour, .. } => {
                let u: f64 = self.rng.random::<f64>().max(1e-12);
                let gap_h = -u.ln() / per_hour.max(1e-6);
                self.now + (gap_h * MS_PER_HOUR as f64) as u64 + 1
            }
        };
        self.push(at, Ev::Press);
    }

    fn press(&mut self) {
        self.press_id = self.press_id.wrapping_add(1);
        self.result.totals.bolus_presses += 1;
        let id = self.press_id;
        if self.radio.is_some() {
            return self.radio_turn(crate::radio::Turn::Press(id));
        }
        let _ = self.command(
            Role::PatientRemote,
            Command::PatientBolus { request_id: id },
        );
    }

    fn hour_of_day(&self) -> f64 {
        ((self.now % MS_PER_DAY) as f64) / MS_PER_HOUR as f64
    }

    // ----- sampling ---------------------------------------------------------------------

    fn sample(&mut self) {
        self.flush();
        let dt = (self.now - self.last_sample).max(1) as f64;
        let per_day = MS_PER_DAY as f64 / dt;
        let (expected, battery) = match &self.dev {
            Dev::Programmable(p) => {
                let b = p.pump.battery();
                let pct = if b.capacity_uj() == 0 {
                    f64::NAN
                } else {
                    b.remaining_uj() as f64 / b.capacity_uj() as f64 * 100.0
                };
                (p.pump.status().reservoir.raw() as f64 / 1e6, pct)
            }
            Dev::Constant { .. } => (f64::NAN, f64::NAN),
        };
        let risks = Risks::of(core::iter::once(&self.patient).chain(&self.companions));
        let s = Sample {
            t_h: ms_h(self.now),
            reservoir_ml: self.reservoir_nl / 1e6,
            reservoir_expected_ml: expected,
            prescribed_mcg_per_day: self.prescribed_ng / 1000.0 * per_day,
            intended_mcg_per_day: self.intended_ng / 1000.0 * per_day,
            tip_mcg_per_day: self.tip_ng / 1000.0 * per_day,
            flow_ml_per_day: self.flow_nl / 1e6 * per_day,
            csf_ng_per_ml: self.patient.csf_ng_per_ml(),
            systemic_ng_per_ml: self.patient.systemic_ng_per_ml(),
            effect: self.patient.effect(self.hour_of_day()),
            withdrawal_risk: risks.withdrawal,
            overdose_risk: risks.overdose,
            battery_pct: battery,
            opioid_withdrawal_risk: risks.opioid_withdrawal,
            clonidine_withdrawal_risk: risks.clonidine_withdrawal,
            opioid_tolerance: risks.opioid_tolerance,
        };
        self.result.samples.push(s);
        self.tip_ng = 0.0;
        self.flow_nl = 0.0;
        self.prescribed_ng = 0.0;
        self.intended_ng = 0.0;
        self.last_sample = self.now;
    }

    /// Lets time pass to `t` for the patient and the prescription accumulator.
    fn advance_to(&mut self, t: u64) {
        if t <= self.now {
            return;
        }
        let dt = t - self.now;
        let (running, intended) = self.dose_rates_ng_per_ms();
        let prescribed = running * dt as f64;
        self.prescribed_ng += prescribed;
        self.result.totals.prescribed_mcg += prescribed / 1000.0;
        let intended = intended * dt as f64;
        self.intended_ng += intended;
        self.result.totals.intended_mcg += intended / 1000.0;
        self.now = t;
    }

    fn gas_step(&mut self) {
        let Dev::Constant { gas } = &self.dev else {
            return;
        };
        let flow = gas.flow_ml_per_day(&self.env);
        let nl = flow * 1e6 * GAS_STEP.ms() as f64 / MS_PER_DAY as f64;
        self.move_fluid(nl);
        self.push(self.now + GAS_STEP.ms(), Ev::GasStep);
    }

    fn battery_reading(&mut self) {
        let hw = self.hw();
        if let Dev::Programmable(p) = &mut self.dev {
            let reading = crate::models::battery::BatteryGauge::new(p.pump.battery().capacity_uj())
                .reading(&mut self.rng, p.pump.battery().remaining_uj());
            p.pump.handle_battery(hw, reading);
            self.result.totals.pump_wakes += 1;
        }
        self.drain();
        self.push(self.now + MS_PER_DAY, Ev::BatteryReading);
    }

    /// Runs to the end and judges the expectations.
    pub fn run(self) -> RunResult {
        self.run_all().0
    }

    /// [`Engine::run`], also handing back the programmable pump's core as it stands at
    /// the end (`None` for a constant-rate pump): what an interrogation would read then.
    pub fn run_keeping_pump(self) -> (RunResult, Option<Pump>) {
        let (r, _, pump) = self.run_all();
        (r, pump)
    }

    /// Runs to the end and judges the expectations; also returns the pump's whole event
    /// log (set-up included) with its chain head (empty for a constant-rate pump).
    pub fn run_logged(self) -> (RunResult, PumpLog) {
        let (r, log, _) = self.run_all();
        (r, log)
    }

    /// Runs to the end: the result, the pump's whole log and the pump's core at the end.
    fn run_all(mut self) -> (RunResult, PumpLog, Option<Pump>) {
        loop {
            let pump_at = match &self.dev {
                Dev::Programmable(p) => p
                    .pump
                    .poll_timeout()
                    .map(|hw| self.true_ms(hw).max(self.now)),
                Dev::Constant { .. } => None,
            };
            let ev_at = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next = match (pump_at, ev_at) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(u64::MAX),
            };
            if next > self.end {
                break;
            }
            self.advance_to(next);
            self.result.totals.engine_events += 1;
            if pump_at == Some(next)
                && ev_at.is_none_or(|e| e >= next)
                && pump_at <= ev_at.or(Some(u64::MAX))
            {
                let hw = self.hw();
                if let Dev::Programmable(p) = &mut self.dev {
                    p.pump.handle_timeout(hw);
                    self.result.totals.pump_wakes += 1;
                }
                self.drain();
                continue;
            }
            let Some(Reverse((_, _, ev))) = self.queue.pop() else {
                break;
            };
            match ev {
                Ev::Scenario(i) => self.scenario_event(i),
                Ev::Sample => {
                    self.sample();
                    self.push(self.now + self.sc.sample_every.ms(), Ev::Sample);
                }
                Ev::Press => {
                    self.flush();
                    let effect = self.patient.effect(self.hour_of_day());
                    let press = match self.sc.pressing {
                        Pressing::WhenPoor { threshold, .. } => effect < threshold,
                        _ => true,
                    };
                    if press {
                        self.press();
                    }
                    self.schedule_press();
                }
                Ev::BatteryReading => self.battery_reading(),
                Ev::Radio(i) => self.radio_turn(crate::radio::Turn::Stream(i)),
                Ev::GasStep => self.gas_step(),
                Ev::FeverEnd => self.env.body_temp_c = Environment::default().body_temp_c,
                Ev::PressureEnd => self.env.ambient_pa = Environment::default().ambient_pa,
                Ev::MriEnd => {
                    self.env.mri = false;
                    self.magnet(false);
                    let valve = matches!(&self.dev, Dev::Programmable(p) if p.profile.mechanism == Mechanism::Valve);
                    if valve {
                        self.clinician(Command::MriMode(false));
                    }
                }
            }
        }
        self.advance_to(self.end);
        if self.now > self.last_sample {
            self.sample();
        }
        if let Dev::Programmable(p) = &self.dev {
            let s = p.pump.status();
            self.result.totals.missed_ml = s.missed.raw() as f64 / 1e6;
            let end_day = ms_h(self.now) / 24.0;
            self.result.totals.projected_eri_day = self.result.totals.eri_day.or_else(|| {
                let life = p.pump.status().battery_life?;
                let eri = p.pump.battery().eri_threshold();
                Some(end_day + (life.ms().saturating_sub(eri.ms())) as f64 / MS_PER_DAY as f64)
            });
            self.result.totals.battery_state = match p.pump.battery().state() {
                BatteryState::Ok => "ok",
                BatteryState::ElectiveReplacement => "eri",
                BatteryState::EndOfService => "eos",
            }
            .into();
        } else {
            self.result.totals.battery_state = "none".into();
        }
        self.result.radio = self.radio.take().map(|r| r.finish(self.now));
        let mut verdicts = scenario::judge(self.sc, &self.result);
        if let Some(reason) = self.setup_refused.take() {
            // A scenario whose own prescription the pump refuses proves nothing.
            verdicts.insert(
                0,
                crate::result::Verdict {
                    expectation: "the pump accepts the scenario's prescription".into(),
                    passed: false,
                    detail: reason,
                },
            );
        }
        self.result.verdicts = verdicts;
        if let Dev::Programmable(p) = &self.dev {
            self.log.head = p.pump.log_head();
        }
        let pump = match self.dev {
            Dev::Programmable(p) => Some(p.pump),
            Dev::Constant { .. } => None,
        };
        (self.result, self.log, pump)
    }
}

/// Writes `op` to the journal's flash (allocated at its first write), torn half-way
/// when it is the write `cut_in` counts down to; whether it was (the pump then
/// restarts). Out of line: the flash is made here, 128 KiB that the stroke path, which
/// calls [`Engine::drain`] every stroke, must not reserve on its stack.
#[inline(never)]
fn store(
    mem: &mut Option<Box<NorFlash<DEFAULT_PAGES>>>,
    cut_in: &mut Option<u32>,
    op: StoreOp<'_>,
) -> bool {
    let len = match op {
        StoreOp::Erase { .. } => PAGE_SIZE,
        StoreOp::Program { bytes, .. } => bytes.len(),
    };
    let (n, torn) = match *cut_in {
        Some(1) => (len / 2, true),
        _ => (len, false),
    };
    if let Some(c) = cut_in.as_mut() {
        *c -= 1;
    }
    let mem = mem.get_or_insert_with(|| Box::new(NorFlash::new()));
    let done = mem.apply_torn(op, n);
    debug_assert!(done.is_ok(), "a write NOR flash cannot do: {done:?}");
    torn
}

/// `contents` with the primary drug at concentration `c`.
fn with_primary(contents: &Admixture, primary: DrugId, c: Concentration) -> Admixture {
    let parts: Vec<Component> = contents
        .components()
        .iter()
        .map(|x| {
            if x.drug == primary {
                Component {
                    drug: x.drug,
                    concentration: c,
                }
            } else {
                *x
            }
        })
        .collect();
    Admixture::new(&parts).unwrap_or_else(|_| Admixture::single(primary, c))
}

/// Runs a scenario to the end.
pub fn run(sc: &Scenario) -> RunResult {
    Engine::new(sc).run()
}

/// A scenario built in code: a primed pump of `device` running `schedule` of `drug` at
/// `concentration`, filled with `fill`, for `duration`, sampled every `sample_every`.
#[allow(clippy::too_many_arguments)]
pub fn simple_scenario(
    name: &str,
    device: Device,
    drug: DrugId,
    concentration: Concentration,
    schedule: Schedule,
    fill: Volume,
    duration: Duration,
    sample_every: Duration,
    seed: u64,
) -> Scenario {
    Scenario {
        name: name.to_string(),
        description: String::new(),
        seed,
        duration,
        sample_every,
        device,
        battery_uj: None,
        calibration_bias: None,
        stroke_cv: crate::models::mechanism::PERISTALTIC_STROKE_CV,
        drift_ppm: 0.0,
        persistence: false,
        primed: true,
        catheter: None,
        clock_set: true,
        condition: scenario::Condition::Spasticity,
        high_risk: false,
        pressing: Pressing::Never,
        prescription: Prescription {
            contents: Admixture::single(drug, concentration),
            schedule,
            patient_bolus: None,
            reservoir_volume: fill,
        },
        fill,
        events: Vec::new(),
        expectations: Vec::new(),
        radio: None,
        firmware: None,
    }
}

/// The IEC 60601-2-24 delivery series: cumulative true volume (mL) every 30 s over
/// 120 min of `device` running at `rate` (after `warm_up`, so the first stroke's phase
/// does not matter), for [`crate::accuracy::trumpet`].
pub fn accuracy_series(
    device: Device,
    rate: thecal_rx::Flow,
    seed: u64,
    bias: Option<f64>,
) -> Vec<f64> {
    let mut sc = simple_scenario(
        "accuracy",
        device,
        DrugId::Saline,
        Concentration::ZERO,
        Schedule::continuous(rate),
        Volume::from_ml(20),
        Duration::from_minutes(120),
        Duration::from_secs(30),
        seed,
    );
    sc.calibration_bias = bias;
    // Saline has no drug: give the pump something to pump under the checks.
    sc.prescription.contents =
        Admixture::single(DrugId::Baclofen, Concentration::from_mcg_per_ml(50));
    let r = run(&sc);
    let mut cumulative = vec![0.0];
    let mut total = 0.0;
    for s in &r.samples {
        total += s.flow_ml_per_day * 30.0 / 86_400.0;
        cumulative.push(total);
    }
    cumulative
}

/// One patient of the Monte Carlo population: baclofen at a dose drawn from the usual
/// maintenance range (300–800 mcg/day, DOMAIN.md §4), 2000 mcg/mL in a 40 mL pump,
/// refilled when the clinic's plan says (the low-reservoir alarm day), for `years`;
/// the device's calibration bias is drawn by the mechanism model.
pub fn population_patient(
    index: usize,
    seed: u64,
    years: f64,
) -> crate::population::PatientOutcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dose_mcg: f64 = rng.random_range(300.0..800.0);
    let flow_nl = dose_mcg / 2000.0 * 1e6;
    let flow = thecal_rx::Flow::from_raw(flow_nl.round() as u64);
    let fill = Volume::from_ml(40);
    // Refill a week before the low-reservoir alarm (2 mL, or 7 days) would sound.
    let usable_ml = 40.0 - (2.0f64).max(7.0 * flow_nl / 1e6);
    let refill_every_days = (usable_ml / (flow_nl / 1e6) - 7.0).max(7.0);
    let duration = Duration::from_ms((years * 365.25 * MS_PER_DAY as f64) as u64);
    let mut sc = simple_scenario(
        "population",
        Device::Programmable(HardwareProfile::synchromed_class(40)),
        DrugId::Baclofen,
        Concentration::from_mcg_per_ml(2000),
        Schedule::continuous(flow),
        fill,
        duration,
        Duration::from_days(1),
        seed,
    );
    let mut t = refill_every_days;
    while t < years * 365.25 {
        sc.events.push((
            Duration::from_ms((t * MS_PER_DAY as f64) as u64),
            Event::Refill {
                volume: fill,
                concentration: None,
                keep_dose: true,
                bridge: BridgeChoice::Automatic,
                error: None,
                missed: false,
            },
        ));
        t += refill_every_days;
    }
    let r = run(&sc);
    let t = &r.totals;
    let dose_error_pct = if t.prescribed_mcg > 0.0 {
        (t.delivered_tip_mcg - t.prescribed_mcg) / t.prescribed_mcg * 100.0
    } else {
        0.0
    };
    crate::population::PatientOutcome {
        index,
        dose_error_pct,
        alarms_before_refill: t.low_reservoir_alarms as u32,
        eri_day: t.projected_eri_day,
        eos_day: t.eos_day,
        vetoes: t.limiter_vetoes,
        passed: t.limiter_vetoes == 0 && dose_error_pct.abs() < 20.0,
    }
}
