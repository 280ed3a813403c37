//! The pump's therapy core: one deterministic state machine, sans-IO.
//!
//! # Call order
//!
//! The core never reads a clock, a sensor or a radio, and never sleeps. The firmware
//! (or the simulator, or a test) drives it like this:
//!
//! 1. At power-on: [`Pump::restore`] with the bytes of the journal's memory (or
//!    [`Pump::new`] for a factory-fresh pump). The core runs its self-test.
//! 2. Feed every input as it happens, each with the monotonic time `now`:
//!    [`Pump::handle_timeout`] when the time returned by [`Pump::poll_timeout`] is
//!    reached, [`Pump::handle_stroke_done`] when the motor reports a stroke,
//!    [`Pump::handle_battery`], [`Pump::handle_magnet`], [`Pump::handle_radio`], and
//!    [`Pump::handle_command`] for each authenticated command.
//! 3. After every input, drain [`Pump::poll_action`] until it returns `None`, carrying
//!    out each action **in order**: a `Store` is always queued before the `Stroke`
//!    it accounts for, so a power cut can lose a stroke but never repeat one. A command
//!    response should be sent only after the actions queued with it are done.
//! 4. Sleep until [`Pump::poll_timeout`] (or the next input). The core asks to be woken
//!    only when a stroke is due, an alarm tone is due, or a timer of its own expires —
//!    never on a fixed tick.
//!
//! `now` must not go backwards within one power cycle; across a restart a monotonic
//! counter that restarted lower is absorbed by an offset, so delivery history, lockouts
//! and the limiter's windows never move backwards.
//!
//! # Delivery
//!
//! The program's ideal cumulative volume (basal schedule by local time plus any bolus
//! overlay) accrues into a *credit*; a stroke is due when the credit reaches the
//! stroke's threshold, and the core computes exactly when that will be. With no
//! faults and no limits, delivered volume therefore stays within one stroke of the
//! ideal at every instant. Volume that cannot be delivered (stall, limiter veto, empty
//! reservoir) is counted as *missed* and never made up later as a bolus.
//!
//! While the old fluid of a concentration change is still in the dead volume, the
//! threshold is scaled by the ratio of the drug mass a stroke pushes out at the tip to
//! the mass it takes from the reservoir (automatic bridging): the drug mass rate at
//! the tip stays what the program prescribes.

use heapless::{Deque, Vec};
use serde::{Deserialize, Serialize};
use thecal_rx::check::{self, Context, Finding, Patient, Prescription, Previous, Severity};
use thecal_rx::dose::{Admixture, mass_in};
use thecal_rx::drug::{DrugId, Library};
use thecal_rx::quantity::{MS_PER_DAY, Rounding, mul_div};
use thecal_rx::refill;
use thecal_rx::schedule::LocalTime;
use thecal_rx::{Duration, Flow, Instant, Mass, Volume};

use crate::alarm::{AlarmKind, Alarms, Sound};
use crate::battery::{Battery, BatteryReading, BatteryState};
use crate::catheter::CatheterRecord;
use crate::command::{
    ActiveAlarm, BridgeChoice, Command, CommandKind, FaultCode, Mode, REMINDER_INTERVAL_DEFAULT,
    REMINDER_INTERVAL_MAX, REMINDER_INTERVAL_MIN, Refusal, Response, Role, SoftReason, Status,
    StopReason, allowed,
};
use crate::event::{Event, LinkEvent};
use crate::fluid::FluidPath;
use crate::journal::{self, DELTA_LEN, Delta, Located, PAGE_SIZE, Plan, StoreOp, Writer};
use crate::limiter::{Limiter, LimiterError, Limits, Window};
use crate::log::{LogChain, LogEntry};
use crate::persist;

mod twin;
use crate::profile::{HardwareProfile, Mechanism};
pub use twin::TwinError;

/// Largest encoded checkpoint, bytes: one journal page.
pub const RECORD_CAPACITY: usize = PAGE_SIZE;
/// Most patient boluses per 24 h the pump tracks.
pub const MAX_PATIENT_BOLUSES_PER_DAY: usize = 48;
/// Safety margin of the prescription-derived limiter limits over the planned maximum:
/// 10 % (stroke quantisation, the limiter's one-bin over-count) plus two strokes.
pub const LIMIT_MARGIN_PERCENT: u64 = 10;
/// Bridging never speeds the pump up beyond this factor of the scheduled flow.
pub const MAX_BRIDGE_FACTOR: u64 = 8;
/// Retry back-off after a stalled stroke: first retry, doubling up to the cap.
pub const STALL_RETRY_FIRST: Duration = Duration::from_minutes(1);
/// Longest retry back-off after a stalled stroke.
pub const STALL_RETRY_MAX: Duration = Duration::from_minutes(60);
const ACTION_CAPACITY: usize = 40;
/// Queue entries kept for the safe state's own log entries and tone after an action
/// was lost: ordinary entries may fill the queue only up to the rest.
const RESERVED_ACTIONS: usize = 8;
/// Emergency reductions may leave no less than this share of the clinician's
/// program, in parts per million (one half).
pub const EMERGENCY_FLOOR_PPM: u32 = 500_000;
const PPM: u32 = 1_000_000;

/// What the firmware must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Move one stroke (pulse); report the result with [`Pump::handle_stroke_done`].
    Stroke,
    /// Sound an alarm tone.
    Alarm(Sound),
    /// Erase a page of the journal's memory or program a record into it (a power cut
    /// may tear it); see [`crate::journal`].
    Store(StoreOp<'a>),
    /// Append to the event log.
    Log(LogEntry),
    /// Append to the fault log.
    FaultLog(LogEntry),
}

/// A queued action. A persist and a stroke are not queued: they are state
/// (`persist_needed`, `stroke_entry`, `stroke_order`), so a full queue can never lose
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Alarm(Sound),
    Log(LogEntry),
    FaultLog(LogEntry),
}

/// Kinds of bolus overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BolusKind {
    /// Given by a clinician.
    Clinician,
    /// Fills an empty catheter with drug.
    Priming,
    /// Pushes old fluid out after a concentration change.
    Bridge,
    /// Requested by the patient.
    Patient,
}

impl BolusKind {
    /// Every kind.
    pub const ALL: [BolusKind; 4] = [
        BolusKind::Clinician,
        BolusKind::Priming,
        BolusKind::Bridge,
        BolusKind::Patient,
    ];

    /// A stable code for the log.
    pub const fn code(self) -> u8 {
        match self {
            BolusKind::Clinician => 1,
            BolusKind::Priming => 2,
            BolusKind::Bridge => 3,
            BolusKind::Patient => 4,
        }
    }

    /// The kind in words, as a clinician reads it in the log.
    pub const fn name(self) -> &'static str {
        match self {
            BolusKind::Clinician => "clinician",
            BolusKind::Priming => "priming",
            BolusKind::Bridge => "bridge",
            BolusKind::Patient => "patient",
        }
    }
}

impl TryFrom<u8> for BolusKind {
    type Error = crate::command::UnknownCode;
    fn try_from(code: u8) -> Result<Self, Self::Error> {
        BolusKind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .ok_or(crate::command::UnknownCode { code })
    }
}

/// A bolus overlay: `volume` spread evenly over `[start, start + duration)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bolus {
    /// Kind.
    pub kind: BolusKind,
    /// Volume.
    pub volume: Volume,
    /// Start.
    pub start: Instant,
    /// Duration.
    pub duration: Duration,
}

impl Bolus {
    fn end(&self) -> Instant {
        self.start.saturating_add(self.duration)
    }
    /// Exact volume of the overlay within `[a, b)`, in nL·ms/day.
    fn exact_between(&self, a: Instant, b: Instant) -> u128 {
        let lo = a.max(self.start).ms();
        let hi = b.min(self.end()).ms();
        let overlap = hi.saturating_sub(lo);
        u128::from(self.volume.raw())
            .saturating_mul(u128::from(MS_PER_DAY))
            .saturating_mul(u128::from(overlap))
            .checked_div(u128::from(self.duration.ms()))
            .unwrap_or(0)
    }
}

/// The wall clock as set by the clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WallClock {
    /// Monotonic time at which it was set.
    pub set_at: Instant,
    /// UTC ms since 1970 at that time.
    pub utc_ms: u64,
    /// Local offset, minutes.
    pub offset_minutes: i16,
}

impl WallClock {
    /// Local time at monotonic `t`.
    pub fn local(&self, t: Instant) -> LocalTime {
        let utc = self
            .utc_ms
            .saturating_add(t.saturating_since(self.set_at).ms());
        let offset = i64::from(self.offset_minutes).saturating_mul(60_000);
        LocalTime(utc.saturating_add_signed(offset))
    }
    /// UTC ms at monotonic `t`.
    pub fn utc(&self, t: Instant) -> u64 {
        self.utc_ms
            .saturating_add(t.saturating_since(self.set_at).ms())
    }
}

/// Alarm thresholds set by the clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmSettings {
    /// Low-reservoir alarm volume (DOMAIN.md §5: e.g. 2–3 mL).
    pub low_reservoir: Volume,
    /// Low-reservoir alarm when fewer days of therapy remain (0: off).
    pub low_reservoir_days: u16,
    /// Stopped-pump reminder delay.
    pub stopped_reminder: Duration,
}

impl Default for AlarmSettings {
    fn default() -> Self {
        AlarmSettings {
            low_reservoir: refill::DEFAULT_LOW_RESERVOIR,
            low_reservoir_days: refill::DEFAULT_LOW_RESERVOIR_DAYS,
            stopped_reminder: Duration::from_minutes(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stall {
    since: Instant,
    /// The missed-volume counter when the stall began.
    missed_before: u128,
    attempts: u32,
    retry_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum PatientOutcome {
    Accepted { volume: Volume, ends_at: Instant },
    Refused,
}

/// A clinician bolus raises the prescription-derived limiter limits by its own drug mass
/// for 24 h (never above the library's hard limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Allowance {
    volume: Volume,
    until: Instant,
}

/// The limits in force before a program change, kept until the outgoing program's
/// fluid has left the catheter and for 24 h after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Transition {
    /// When the transition ends; meaningless while `clearing`.
    until: Instant,
    /// The old fluid is still in the dead volume: the 24 h start when it has left.
    clearing: bool,
    limits: Vec<(DrugId, Limits), 4>,
}

impl Transition {
    fn get(&self, drug: DrugId) -> Option<Limits> {
        self.limits
            .iter()
            .find(|(d, _)| *d == drug)
            .map(|(_, l)| *l)
    }
}

/// Everything the core persists: the A/B record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    program: Prescription,
    program_version: u32,
    program_since: Instant,
    mode: Mode,
    clock: Option<WallClock>,
    reservoir: Volume,
    held_total: Volume,
    delivered: Volume,
    missed_exact: u128,
    ideal_exact: u128,
    credit_exact: u128,
    accounted_to: Instant,
    fluid: FluidPath,
    limiter: Limiter,
    alarms: Alarms,
    battery: Battery,
    bolus: Option<Bolus>,
    patient_starts: Deque<Instant, MAX_PATIENT_BOLUSES_PER_DAY>,
    patient_requests: Deque<(u32, PatientOutcome), 8>,
    bridging: bool,
    allowance: Option<Allowance>,
    stall: Option<Stall>,
    /// While the limiter vetoes delivery: when the vetoed stroke will fit again.
    veto_retry: Option<Instant>,
    /// For 24 h after a program change, the limits of the program before it, so that
    /// deliveries made under the old program do not block the new one (a dose decrease
    /// must never stop baclofen for a day).
    transition: Option<Transition>,
    settings: AlarmSettings,
    /// The program in force is a clinician's prescription (a titration baseline), not
    /// the placeholder installed by the first fill of a drug-free pump.
    baseline: bool,
    events: LogChain,
    faults: LogChain,
    last_seen: Instant,
    mono_offset: u64,
    strokes: u64,
    /// The bolus overlay's ideal volume accrued while running, nL·ms/day.
    bolus_accrued: u128,
    /// What the bolus lost meanwhile (missed volume, credit dropped at a restart),
    /// nL·ms/day: its delivered volume is the accrued less this.
    bolus_short: u128,
    /// What emergency reductions have left of the clinician's program, ppm.
    emergency_keep_ppm: u32,
    /// How often an acknowledged no-delivery alarm sounds again (clinician setting).
    reminder_interval: Duration,
    /// When the acknowledged no-delivery alarm next sounds again, while delivery is
    /// withheld.
    reminder_at: Option<Instant>,
    /// Since when a valve pump has been in MRI mode.
    mri_since: Option<Instant>,
    /// Set in a checkpoint written while a stroke was in flight: the stroke is counted
    /// but its push through the fluid path is not (it is applied when the checkpoint is
    /// restored, as the stroke records after it are).
    push_pending: bool,
    /// When the fill in the reservoir passes its beyond-use date.
    beyond_use: Option<Instant>,
    /// The implanted catheter; `None` until a clinician records it (the fluid path then
    /// assumes the profile's nominal catheter, and priming is refused).
    catheter: Option<CatheterRecord>,
}

impl State {
    /// The state of a factory-fresh pump: filled with saline, stopped, no drug, clock
    /// not set.
    fn fresh(profile: &HardwareProfile, now: Instant) -> Self {
        let mut s = State::unfilled(profile, now);
        s.reset_fresh(profile, now);
        s
    }

    /// A state whose program and fluid path are empty placeholders: not a state to run,
    /// only a place that [`State::reset_fresh`] makes fresh, built without a whole
    /// prescription or fluid path as a temporary on the stack.
    fn unfilled(profile: &HardwareProfile, now: Instant) -> Self {
        State {
            program: Prescription::placeholder(),
            program_version: 0,
            program_since: now,
            mode: Mode::Stopped {
                reason: StopReason::Procedure,
                since: now,
            },
            clock: None,
            reservoir: Volume::ZERO,
            held_total: Volume::ZERO,
            delivered: Volume::ZERO,
            missed_exact: 0,
            ideal_exact: 0,
            credit_exact: 0,
            accounted_to: now,
            fluid: FluidPath::unfilled(),
            limiter: Limiter::new(),
            alarms: Alarms::new(),
            battery: Battery::new(profile, now),
            bolus: None,
            patient_starts: Deque::new(),
            patient_requests: Deque::new(),
            bridging: false,
            allowance: None,
            stall: None,
            veto_retry: None,
            transition: None,
            settings: AlarmSettings::default(),
            baseline: false,
            events: LogChain::new(),
            faults: LogChain::new(),
            last_seen: now,
            mono_offset: 0,
            strokes: 0,
            bolus_accrued: 0,
            bolus_short: 0,
            emergency_keep_ppm: PPM,
            reminder_interval: REMINDER_INTERVAL_DEFAULT,
            reminder_at: None,
            mri_since: None,
            push_pending: false,
            beyond_use: None,
            catheter: None,
        }
    }

    /// Makes this state factory-fresh in place, as [`State::fresh`] builds it: field
    /// by field, so that no whole state is ever a temporary on the stack.
    #[inline(never)]
    fn reset_fresh(&mut self, profile: &HardwareProfile, now: Instant) {
        // Destructured without `..`: a field added to `State` must be reset here too.
        let State {
            program,
            program_version,
            program_since,
            mode,
            clock,
            reservoir,
            held_total,
            delivered,
            missed_exact,
            ideal_exact,
            credit_exact,
            accounted_to,
            fluid,
            limiter,
            alarms,
            battery,
            bolus,
            patient_starts,
            patient_requests,
            bridging,
            allowance,
            stall,
            veto_retry,
            transition,
            settings,
            baseline,
            events,
            faults,
            last_seen,
            mono_offset,
            strokes,
            bolus_accrued,
            bolus_short,
            emergency_keep_ppm,
            reminder_interval,
            reminder_at,
            mri_since,
            push_pending,
            beyond_use,
            catheter,
        } = self;
        let Prescription {
            contents,
            schedule,
            patient_bolus,
            reservoir_volume,
        } = program;
        *contents = Admixture::single(DrugId::Saline, thecal_rx::Concentration::ZERO);
        schedule.set_continuous(profile.min_flow);
        *patient_bolus = None;
        *reservoir_volume = Volume::ZERO;
        *mode = Mode::Stopped {
            reason: StopReason::Procedure,
            since: now,
        };
        *program_version = 0;
        *program_since = now;
        *clock = None;
        *reservoir = Volume::ZERO;
        *held_total = Volume::ZERO;
        *delivered = Volume::ZERO;
        *missed_exact = 0;
        *ideal_exact = 0;
        *credit_exact = 0;
        *accounted_to = now;
        fluid.reset_saline(profile.dead_volume());
        *limiter = Limiter::new();
        *alarms = Alarms::new();
        *battery = Battery::new(profile, now);
        *bolus = None;
        *patient_starts = Deque::new();
        *patient_requests = Deque::new();
        *bridging = false;
        *allowance = None;
        *stall = None;
        *veto_retry = None;
        *transition = None;
        *settings = AlarmSettings::default();
        *baseline = false;
        *events = LogChain::new();
        *faults = LogChain::new();
        *last_seen = now;
        *mono_offset = 0;
        *strokes = 0;
        *bolus_accrued = 0;
        *bolus_short = 0;
        *emergency_keep_ppm = PPM;
        *reminder_interval = REMINDER_INTERVAL_DEFAULT;
        *reminder_at = None;
        *mri_since = None;
        *push_pending = false;
        *beyond_use = None;
        *catheter = None;
    }
}

/// The pump's therapy core. See the [module docs](self) for the call order.
#[derive(Debug)]
pub struct Pump {
    profile: HardwareProfile,
    library: Library,
    s: State,
    pending: Deque<Pending, ACTION_CAPACITY>,
    /// The state changed since the last record handed out, by more than a stroke: the
    /// next action writes a checkpoint.
    persist_needed: bool,
    /// A stroke was counted since the last record: (its time, its drug mass in ng). The
    /// next action writes its stroke record, unless a checkpoint is due anyway.
    stroke_entry: Option<(Instant, u32)>,
    journal: Writer,
    buf: [u8; RECORD_CAPACITY],
    delta: [u8; DELTA_LEN],
    /// A stroke was issued and is handed out after the persist and the queue.
    stroke_order: bool,
    /// An action was lost to a full queue since the last input was finished.
    action_lost: bool,
    /// The reserved part of the queue is open (while entering the safe state).
    reserve_open: bool,
    stroke_in_flight: bool,
    next_stroke: Option<Instant>,
    dropped_actions: u32,
    persistence: bool,
    /// When the battery projection is next evaluated, and its next transition.
    battery_next_eval: Instant,
    battery_due: Option<Instant>,
    /// When the last stroke was issued (the motor's shortest interval applies from it).
    last_stroke_at: Option<Instant>,
    /// The next alarm tone, cached; `alarms_dirty` when an alarm changed since.
    alarm_due: Option<Instant>,
    alarms_dirty: bool,
    /// The low-reservoir threshold as of the last stroke: it depends only on the program
    /// and the alarm settings, which change only by a command (which clears it).
    low_threshold: Option<Volume>,
    /// The instant of the timeout that left a stroke in flight, until any other input
    /// arrives: since that wake-up's checks only [`Pump::finish`] ran (issuing the
    /// stroke), so a completion report at that same instant finds the battery, the
    /// accrual and the timers already brought up to it.
    stroke_issued_at: Option<Instant>,
    /// The steady state's horizon (H-170): before it, on the core's clock, the program
    /// is one constant flow with nothing overlaid, held, vetoed or stalled, and no
    /// timer but the next stroke's falls due, so a stroke's timeout and its report take
    /// the quiet path ([`Pump::quiet_timeout`], [`Pump::quiet_schedule`]).
    /// [`Instant::ZERO`]: not steady. Cleared by every general wake-up and worked out
    /// again at the end of every general [`Pump::finish`] ([`Pump::settle_quiet`]).
    quiet_until: Instant,
    /// [`Pump::poll_timeout`]'s answer, the next stroke aside, while steady.
    quiet_timer: Option<Instant>,
    /// The program's constant flow (nL/day), while steady.
    quiet_flow: u64,
    /// Whether the quiet paths may be taken (the default). Off, every input takes the
    /// general path: the test of H-170 runs one pump each way.
    quiet_paths: bool,
}

/// What [`Pump::check_program`] keeps of a check's findings: what a [`Findings`] list
/// would say of them (the worst severity, the soft ones counted) and the first few for
/// the refusal, without the whole list.
///
/// [`Findings`]: thecal_rx::check::Findings
#[derive(Default)]
struct Summary {
    /// The first findings, for the refusal.
    listed: Vec<Finding, 8>,
    /// Findings reported.
    count: usize,
    /// Soft findings among the first [`check::MAX_FINDINGS`] (those a list holds).
    soft: usize,
    hard: bool,
}

impl Summary {
    /// As [`thecal_rx::check::Findings::worst`]: more findings than a list holds are a
    /// hard rejection.
    fn worst(&self) -> Option<Severity> {
        if self.hard || self.count > check::MAX_FINDINGS {
            Some(Severity::Hard)
        } else if self.soft > 0 {
            Some(Severity::Soft)
        } else {
            None
        }
    }
}

impl check::FindingSink for Summary {
    fn report(&mut self, finding: Finding) {
        let _ = self.listed.push(finding);
        if self.count < check::MAX_FINDINGS {
            match finding.severity {
                Severity::Hard => self.hard = true,
                Severity::Soft => self.soft = self.soft.saturating_add(1),
            }
        }
        self.count = self.count.saturating_add(1);
    }
}

const E_PER_NL: u128 = MS_PER_DAY as u128;

fn e(v: Volume) -> u128 {
    u128::from(v.raw()).saturating_mul(E_PER_NL)
}

fn nl(exact: u128) -> Volume {
    Volume::from_raw(u64::try_from(exact.checked_div(E_PER_NL).unwrap_or(0)).unwrap_or(u64::MAX))
}

impl Pump {
    /// A factory-fresh pump: filled with saline, stopped, no drug, clock not set.
    pub fn new(profile: HardwareProfile, now: Instant) -> Self {
        Pump::fresh(profile, now, journal::DEFAULT_PAGES)
    }

    /// A factory-fresh pump whose journal ring has `pages` pages.
    fn fresh(profile: HardwareProfile, now: Instant, pages: usize) -> Self {
        let mut pump = Pump::from_state(profile, State::fresh(&profile, now), Writer::new(pages));
        pump.power_on_fresh(now);
        pump
    }

    /// What a factory-fresh pump does at power-on, on the state [`State::fresh`] gave.
    fn power_on_fresh(&mut self, now: Instant) {
        self.log(now, Event::PowerOn { restored_seq: 0 });
        self.mark_dirty();
        self.self_test(now);
        self.schedule_next(now);
    }

    /// Makes this pump factory-fresh in place (as [`Pump::fresh`] builds one), with a
    /// journal ring of `pages` pages. Never inlined: its temporaries stay out of the
    /// caller's frame.
    #[inline(never)]
    fn reset_fresh(&mut self, profile: HardwareProfile, now: Instant, pages: usize) {
        self.reset_runtime(profile, Writer::new(pages));
        self.s.reset_fresh(&profile, now);
        self.power_on_fresh(now);
    }

    fn from_state(profile: HardwareProfile, s: State, journal: Writer) -> Self {
        Pump {
            profile,
            library: Library::new(),
            s,
            pending: Deque::new(),
            persist_needed: false,
            stroke_entry: None,
            journal,
            buf: [0; RECORD_CAPACITY],
            delta: [0; DELTA_LEN],
            stroke_order: false,
            action_lost: false,
            reserve_open: false,
            stroke_in_flight: false,
            next_stroke: None,
            dropped_actions: 0,
            persistence: true,
            battery_next_eval: Instant::ZERO,
            battery_due: None,
            last_stroke_at: None,
            alarm_due: None,
            alarms_dirty: true,
            low_threshold: None,
            stroke_issued_at: None,
            quiet_until: Instant::ZERO,
            quiet_timer: None,
            quiet_flow: 0,
            quiet_paths: true,
        }
    }

    /// Sets every field but the state `s` as [`Pump::from_state`] does, in place.
    fn reset_runtime(&mut self, profile: HardwareProfile, journal: Writer) {
        // Destructured without `..`: a field added to `Pump` must be reset here too.
        let Pump {
            profile: p,
            library,
            s: _,
            pending,
            persist_needed,
            stroke_entry,
            journal: j,
            buf,
            delta,
            stroke_order,
            action_lost,
            reserve_open,
            stroke_in_flight,
            next_stroke,
            dropped_actions,
            persistence,
            battery_next_eval,
            battery_due,
            last_stroke_at,
            alarm_due,
            alarms_dirty,
            low_threshold,
            stroke_issued_at,
            quiet_until,
            quiet_timer,
            quiet_flow,
            // A setting of the caller's, like the journal's size: kept.
            quiet_paths: _,
        } = self;
        *p = profile;
        *library = Library::new();
        pending.clear();
        *persist_needed = false;
        *stroke_entry = None;
        *j = journal;
        buf.fill(0);
        delta.fill(0);
        *stroke_order = false;
        *action_lost = false;
        *reserve_open = false;
        *stroke_in_flight = false;
        *next_stroke = None;
        *dropped_actions = 0;
        *persistence = true;
        *battery_next_eval = Instant::ZERO;
        *battery_due = None;
        *last_stroke_at = None;
        *alarm_due = None;
        *alarms_dirty = true;
        *low_threshold = None;
        *stroke_issued_at = None;
        *quiet_until = Instant::ZERO;
        *quiet_timer = None;
        *quiet_flow = 0;
    }

    /// A pump that is only a place to restore into: the profile's factory-fresh state,
    /// not yet powered on (nothing logged, no self-test, no timer). Call
    /// [`Pump::restore_into`] (or use [`Pump::restore`]) before anything else. A
    /// firmware places it in a static once and restores into it at every power-on.
    /// Never inlined: the caller's destination is then written directly, not a copy of a
    /// whole `Pump` in the caller's frame.
    #[inline(never)]
    pub fn unpowered(profile: HardwareProfile) -> Self {
        Pump::from_state(
            profile,
            State::fresh(&profile, Instant::ZERO),
            Writer::new(journal::MIN_PAGES),
        )
    }

    /// Places a pump that is only a place to restore into ([`Pump::unpowered`]) in
    /// `slot`, built straight into it: a firmware's static, without a whole `Pump` as a
    /// temporary on the stack. Restore into it with [`Pump::restore_into`].
    #[inline(never)]
    pub fn place(slot: &mut core::mem::MaybeUninit<Pump>, profile: HardwareProfile) -> &mut Pump {
        // Written with empty placeholders, then made fresh in place: no prescription or
        // fluid path is built aside and copied in.
        let pump = slot.write(Pump::from_state(
            profile,
            State::unfilled(&profile, Instant::ZERO),
            Writer::new(journal::MIN_PAGES),
        ));
        pump.s.reset_fresh(&profile, Instant::ZERO);
        pump
    }

    /// Restores at power-on from the bytes of the journal's memory (a whole number of
    /// [`journal::PAGE_SIZE`] pages, at least [`journal::MIN_PAGES`]): the newest
    /// checkpoint, then the stroke records after it, replayed. A blank memory (all 0x00
    /// or 0xFF) gives a factory-fresh pump; an unreadable non-blank memory, or a stroke
    /// record that does not replay to what it says, gives a pump in the fault state with
    /// a memory alarm.
    pub fn restore(profile: HardwareProfile, memory: &[u8], now: Instant) -> Self {
        let mut pump = Pump::unpowered(profile);
        pump.restore_into(profile, memory, now);
        pump
    }

    /// [`Pump::restore`] in place: this pump, whatever it held, becomes the pump the
    /// journal's memory restores (every field is set anew; nothing of the old one is
    /// kept). The state is decoded straight into this pump, so that no whole `Pump` or
    /// state is ever a temporary on the stack: the firmware restores its static `Pump`
    /// this way at every power-on.
    #[inline(never)]
    pub fn restore_into(&mut self, profile: HardwareProfile, memory: &[u8], now: Instant) {
        let pages = memory.len().checked_div(PAGE_SIZE).unwrap_or(0);
        if pages < journal::MIN_PAGES {
            self.reset_fresh(profile, now, journal::MIN_PAGES);
            self.enter_fault(now, FaultCode::Memory);
            return;
        }
        let located = journal::locate(memory);
        let Located::Found {
            seq,
            page,
            record,
            torn,
            ..
        } = located
        else {
            self.reset_fresh(profile, now, pages);
            if !blank(memory) {
                self.enter_fault(now, FaultCode::Memory);
            }
            return;
        };
        if persist::decode_record_into::<State>(record, &mut self.s).is_err() {
            // The CRC checks but the body is not this format's state.
            self.reset_fresh(profile, now, pages);
            self.enter_fault(now, FaultCode::Memory);
            return;
        }
        self.reset_runtime(profile, Writer::new(pages));
        let pump = self;
        let mut last = seq;
        let mut replayed = true;
        if pump.s.push_pending {
            pump.s.push_pending = false;
            replayed = pump.replay_push();
        }
        if replayed {
            for d in located.deltas() {
                if !pump.replay(&d) {
                    replayed = false;
                    break;
                }
                last = d.seq;
            }
        }
        // The next record opens the page after the head (never next to a torn one).
        pump.journal = Writer::after(pages, page, last);
        // A monotonic counter that restarted lower must never move history back.
        let hw = now.ms().saturating_add(pump.s.mono_offset);
        if hw < pump.s.last_seen.ms() {
            pump.s.mono_offset = pump
                .s
                .mono_offset
                .saturating_add(pump.s.last_seen.ms().saturating_sub(hw));
        }
        let now = pump.t(now);
        // Time spent powered off is not owed: no catch-up after a restart. A bolus under
        // way counts the dropped credit as not delivered.
        pump.s.accounted_to = now;
        if pump.s.bolus.is_some() {
            pump.s.bolus_short = pump.s.bolus_short.saturating_add(pump.s.credit_exact);
        }
        pump.s.credit_exact = 0;
        pump.log(now, Event::PowerOn { restored_seq: last });
        if torn {
            pump.log(
                now,
                Event::Fault {
                    code: FaultCode::Memory,
                },
            );
        }
        pump.mark_dirty();
        if replayed {
            pump.self_test(now);
        } else {
            pump.enter_fault(now, FaultCode::Memory);
        }
        pump.schedule_next(now);
    }

    /// Applies the push of the stroke a checkpoint counted while it was in flight.
    fn replay_push(&mut self) -> bool {
        let stroke = self.profile.stroke_volume;
        let contents = &self.s.program.contents;
        self.s.fluid.prepare_in_place(stroke, contents).is_ok()
            && self.s.fluid.commit_in_place(stroke, contents).is_ok()
    }

    /// Replays a stroke record on the restored state, as [`Pump::issue_stroke`] and a
    /// completed stroke did it: the fluid path's push, the limiter's count at the
    /// stroke's time, the reservoir, the counters and the battery. `false`, with the
    /// state as the record found it, when the record does not follow (stroke counter,
    /// time) or does not replay to its drug mass.
    fn replay(&mut self, d: &Delta) -> bool {
        let stroke = self.profile.stroke_volume;
        let strokes = self.s.strokes.saturating_add(1);
        // The record holds the counter's low 32 bits.
        if d.strokes != strokes & u64::from(u32::MAX) || d.time_ms < self.s.last_seen.ms() {
            return false;
        }
        let t = Instant::from_ms(d.time_ms);
        // The program's accrual up to the stroke, as the wake that issued it did (a
        // bolus's delivered volume is its accrual less what it lost). Nothing blocked
        // delivery meanwhile: that would have written a checkpoint.
        let from = self.s.accounted_to;
        if t > from && self.running() {
            let overlay = self.s.bolus.map_or(0, |b| b.exact_between(from, t));
            let add = self.basal_exact(from, t).saturating_add(overlay);
            self.s.bolus_accrued = self.s.bolus_accrued.saturating_add(overlay);
            self.s.ideal_exact = self.s.ideal_exact.saturating_add(add);
            self.s.credit_exact = self.s.credit_exact.saturating_add(add);
        }
        self.s.accounted_to = self.s.accounted_to.max(t);
        // A stall's retry spends no credit; any other stroke spends its threshold.
        if self.s.stall.is_none() {
            let threshold = self.threshold();
            self.s.credit_exact = self.s.credit_exact.saturating_sub(threshold);
        }
        let Ok(delivery) = self
            .s
            .fluid
            .prepare_in_place(stroke, &self.s.program.contents)
        else {
            return false;
        };
        if mass_ng(delivery.masses()) != d.mass_ng {
            self.s.fluid.discard();
            return false;
        }
        // The limiter counts what was delivered (its limits may have moved since).
        let _ = self.s.limiter.record(t, delivery.masses());
        if self
            .s
            .fluid
            .commit_in_place(stroke, &self.s.program.contents)
            .is_err()
        {
            return false;
        }
        self.s.reservoir = self.s.reservoir.saturating_sub(stroke);
        self.s.delivered = self.s.delivered.saturating_add(stroke);
        self.s.strokes = strokes;
        self.s.battery.advance(t);
        self.s.battery.add_strokes(1);
        self.s.last_seen = self.s.last_seen.max(t);
        true
    }

    /// The monotonic time adjusted by the restart offset.
    fn t(&mut self, now: Instant) -> Instant {
        let t = Instant::from_ms(now.ms().saturating_add(self.s.mono_offset)).max(self.s.last_seen);
        self.s.last_seen = t;
        t
    }

    // ----- inputs -------------------------------------------------------------------

    /// The time from [`Pump::poll_timeout`] was reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.t(now);
        if now < self.quiet_until
            && !self.alarms_dirty
            && self.next_stroke.is_some_and(|at| at <= now)
        {
            return self.quiet_timeout(now);
        }
        self.wake(now);
        self.finish(now);
        if self.stroke_in_flight {
            self.stroke_issued_at = Some(now);
        }
    }

    /// The motor finished a stroke: `ok` false means it stalled (e.g. in an MRI field,
    /// or a valve that stayed shut).
    ///
    /// The controller stays awake through a stroke (its energy is in the stroke's), so
    /// this report is not counted as a separate wake-up.
    pub fn handle_stroke_done(&mut self, now: Instant, ok: bool) {
        let now = self.t(now);
        if self.stroke_issued_at.take() == Some(now) {
            if ok && self.stroke_in_flight && now < self.quiet_until && !self.alarms_dirty {
                return self.quiet_stroke_done(now);
            }
            // Reported at the instant of the timeout that issued it, with no input in
            // between: the battery, the accrual, the bolus, the timers and the fluid
            // path are as that wake-up left them; only the stroke's own accounting
            // (its energy, and the volume counted as delivered) changed since.
            self.battery_check(now);
            self.stroke_invariant(now);
        } else {
            self.wake_without_energy(now);
        }
        if self.stroke_in_flight {
            self.stroke_in_flight = false;
            if ok {
                self.stroke_succeeded(now);
            } else {
                self.stroke_stalled(now);
            }
        }
        self.finish(now);
    }

    /// A battery measurement.
    pub fn handle_battery(&mut self, now: Instant, reading: BatteryReading) {
        let now = self.t(now);
        self.wake(now);
        self.s.battery.handle_reading(now, reading);
        self.battery_next_eval = Instant::ZERO;
        self.battery_check(now);
        self.finish(now);
    }

    /// The radio was on for `ms` milliseconds (counted against the battery).
    pub fn handle_radio(&mut self, now: Instant, ms: u64) {
        let now = self.t(now);
        self.wake(now);
        self.s
            .battery
            .add_radio_ms(u32::try_from(ms).unwrap_or(u32::MAX));
        self.finish(now);
    }

    /// Logs what the telemetry did on its own (its commands, enrolments, revocations,
    /// denied handshakes) in the hash-chained event log, with the sender's role and key
    /// id, like the core's own commands. Returns `false`, logging nothing, for a command
    /// code outside the telemetry's range (it would read as one of the core's commands).
    pub fn log_link(&mut self, now: Instant, event: LinkEvent) -> bool {
        let Some(event) = event.event() else {
            return false;
        };
        let now = self.t(now);
        self.wake(now);
        self.log(now, event);
        self.finish(now);
        true
    }

    /// The telemetry paused its radio (`true`: energy budget spent or flooded, until a
    /// programmer wand wakes it) or resumed it: raises or clears
    /// [`AlarmKind::TelemetryPaused`] so the patient learns why the remote fails.
    pub fn set_telemetry_paused(&mut self, now: Instant, paused: bool) {
        let now = self.t(now);
        self.wake(now);
        if paused {
            self.raise(now, AlarmKind::TelemetryPaused);
        } else {
            self.clear(now, AlarmKind::TelemetryPaused);
        }
        self.finish(now);
    }

    /// The telemetry's stored registry of enrolled devices failed its integrity check
    /// (`true`) or was written anew by a clinician at the bedside (`false`): raises or
    /// clears [`AlarmKind::RegistryFault`]. Therapy is not touched.
    pub fn set_registry_fault(&mut self, now: Instant, fault: bool) {
        let now = self.t(now);
        self.wake(now);
        if fault {
            self.raise(now, AlarmKind::RegistryFault);
        } else {
            self.clear(now, AlarmKind::RegistryFault);
        }
        self.finish(now);
    }

    /// The firmware's other records (its event log, its registry) show a pump in
    /// service, but both persistence slots are missing or blank: the state was lost,
    /// not new. Enters the memory fault (no delivery, the high-priority memory alarm)
    /// instead of running as a factory-fresh pump with saline and no alarm.
    pub fn handle_state_lost(&mut self, now: Instant) {
        let now = self.t(now);
        self.wake(now);
        self.enter_fault(now, FaultCode::Memory);
        self.finish(now);
    }

    /// A magnet or MRI field was detected (`true`) or went away.
    pub fn handle_magnet(&mut self, now: Instant, on: bool) {
        let now = self.t(now);
        self.wake(now);
        if on {
            self.raise(now, AlarmKind::MagnetMri);
        } else {
            self.clear(now, AlarmKind::MagnetMri);
        }
        self.finish(now);
    }

    /// An authenticated command from `role` (`key_id` names the sender's key for the
    /// log; 0 for a local test).
    pub fn handle_command(
        &mut self,
        now: Instant,
        role: Role,
        key_id: u32,
        cmd: &Command,
    ) -> Response {
        let now = self.t(now);
        self.battery_next_eval = Instant::ZERO;
        self.wake(now);
        let kind = cmd.kind();
        self.low_threshold = None;
        let response = if allowed(role, kind) {
            self.execute(now, role, cmd)
        } else {
            Response::Refused(Refusal::NotPermitted { role, kind })
        };
        self.low_threshold = None;
        match &response {
            Response::Refused(r) => {
                let code = r.code();
                self.log(
                    now,
                    Event::CommandRefused {
                        role,
                        code: kind.code(),
                        reason: code,
                        key_id,
                    },
                )
            }
            // Reads are logged too: who looked at the patient's pump is part of the record.
            _ => self.log(
                now,
                Event::CommandAccepted {
                    role,
                    code: kind.code(),
                    key_id,
                },
            ),
        }
        self.finish(now);
        self.response_to_hardware(response)
    }

    // ----- outputs ------------------------------------------------------------------

    /// The next action to carry out, in order; `None` when there is nothing to do.
    ///
    /// A record of a changed state comes first (so the stroke it accounts for is
    /// counted before it moves), then the log entries and tones in the order they
    /// arose, then the stroke.
    #[inline]
    pub fn poll_action(&mut self) -> Option<Action<'_>> {
        // The common polls, after a stroke's timeout and after its report: only the
        // stroke order, or nothing, is waiting.
        if !self.persist_needed && self.stroke_entry.is_none() && self.pending.is_empty() {
            if self.stroke_order {
                self.stroke_order = false;
                return Some(Action::Stroke);
            }
            return None;
        }
        self.poll_queued()
    }

    /// [`Pump::poll_action`] when a record or a queued action is waiting.
    fn poll_queued(&mut self) -> Option<Action<'_>> {
        if self.persist_needed || self.stroke_entry.is_some() {
            return self.store_action();
        }
        if let Some(next) = self.pending.pop_front() {
            return Some(match next {
                Pending::Alarm(s) => Action::Alarm(s),
                Pending::Log(e) => Action::Log(e),
                Pending::FaultLog(e) => Action::FaultLog(e),
            });
        }
        if self.stroke_order {
            self.stroke_order = false;
            return Some(Action::Stroke);
        }
        None
    }

    /// [`Pump::poll_action`] of a record to write: a stroke record when only a stroke
    /// was counted and it fits the head page, else a checkpoint (erasing its page
    /// first when it opens one).
    fn store_action(&mut self) -> Option<Action<'_>> {
        if let (false, Some((at, mass_ng))) = (self.persist_needed, self.stroke_entry) {
            let plan = self.journal.plan(DELTA_LEN);
            match plan {
                Plan::Append(offset) => {
                    let d = Delta {
                        time_ms: at.ms(),
                        seq: self.journal.next_seq(),
                        strokes: self.s.strokes,
                        mass_ng,
                    };
                    if self.journal.commit(plan, DELTA_LEN).is_err() {
                        return self.store_failed();
                    }
                    self.stroke_entry = None;
                    self.delta = d.encode();
                    return Some(Action::Store(StoreOp::Program {
                        offset,
                        bytes: &self.delta,
                    }));
                }
                Plan::Erase(page) => return Some(Action::Store(StoreOp::Erase { page })),
                // A new page opens with a checkpoint.
                Plan::OpenPage(_) => {}
            }
        }
        self.checkpoint_action()
    }

    /// The checkpoint to write: the whole state. Kept apart, and out of line, so that
    /// the frequent actions (a stroke record, a log entry) take a short path.
    #[cold]
    #[inline(never)]
    fn checkpoint_action(&mut self) -> Option<Action<'_>> {
        self.s.push_pending = self.stroke_in_flight;
        let len = match persist::encode_record(self.journal.next_seq(), &self.s, &mut self.buf) {
            Ok(len) => len,
            Err(_) => return self.store_failed(),
        };
        let plan = self.journal.plan(len);
        let offset = match plan {
            Plan::Erase(page) => return Some(Action::Store(StoreOp::Erase { page })),
            Plan::OpenPage(offset) | Plan::Append(offset) => offset,
        };
        if self.journal.commit(plan, len).is_err() {
            return self.store_failed();
        }
        self.persist_needed = false;
        self.stroke_entry = None;
        Some(Action::Store(StoreOp::Program {
            offset,
            bytes: self.buf.get(..len).unwrap_or(&[]),
        }))
    }

    /// A state that cannot be saved (unencodable, or the sequence numbers exhausted):
    /// keep running on the last good record and say so through the memory alarm.
    #[cold]
    #[inline(never)]
    fn store_failed(&mut self) -> Option<Action<'_>> {
        self.persist_needed = false;
        self.stroke_entry = None;
        let _ = self
            .s
            .alarms
            .raise(AlarmKind::MemoryFault, self.s.last_seen);
        self.alarms_dirty = true;
        self.poll_action()
    }

    /// When the core next needs [`Pump::handle_timeout`]; `None`: only on an input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.s.last_seen < self.quiet_until && !self.alarms_dirty {
            // Steady: of the timers below only the alarms', the battery's, the
            // reminder's and the beyond-use date's can be set, as they were when the
            // steady state was worked out, and the next stroke's.
            let best = if self.stroke_in_flight {
                self.quiet_timer
            } else {
                earliest(self.quiet_timer, self.next_stroke)
            };
            return best.map(|t| self.to_hardware(t.max(self.s.last_seen)));
        }
        let mut best = if self.alarms_dirty {
            self.s.alarms.next_due()
        } else {
            self.alarm_due
        };
        best = earliest(best, self.battery_due);
        best = earliest(best, self.s.veto_retry);
        best = earliest(
            best,
            self.s
                .transition
                .as_ref()
                .filter(|t| !t.clearing)
                .map(|t| t.until),
        );
        best = earliest(best, self.s.allowance.map(|a| a.until));
        if !self.stroke_in_flight {
            best = earliest(best, self.next_stroke);
        }
        // A stall retry waits until a stroke could go (not vetoed, not empty): a retry
        // time in the past that cannot be served would be asked for again and again.
        // Nor while a stroke is in flight: its report comes first.
        if let Some(stall) = self.s.stall {
            if !self.stroke_in_flight && self.deliverable() {
                best = earliest(best, Some(stall.retry_at));
            }
        }
        if let Some(since) = self.withheld_since() {
            if !self.s.alarms.is_active(AlarmKind::StoppedReminder) {
                best = earliest(
                    best,
                    Some(since.saturating_add(self.s.settings.stopped_reminder)),
                );
            }
        }
        best = earliest(best, self.s.reminder_at);
        if !self.s.alarms.is_active(AlarmKind::BeyondUseDate) {
            best = earliest(best, self.s.beyond_use);
        }
        best.map(|t| self.to_hardware(t.max(self.s.last_seen)))
    }

    /// Converts the core's timeline (which absorbs a hardware counter that restarted
    /// lower) back to the hardware's.
    fn to_hardware(&self, t: Instant) -> Instant {
        Instant::from_ms(t.ms().saturating_sub(self.s.mono_offset))
    }

    /// Every instant in a response, converted to hardware time.
    fn response_to_hardware(&self, r: Response) -> Response {
        let hw = |t: Instant| self.to_hardware(t);
        match r {
            Response::BolusAccepted { volume, ends_at } => Response::BolusAccepted {
                volume,
                ends_at: hw(ends_at),
            },
            Response::Refused(Refusal::Lockout { until }) => {
                Response::Refused(Refusal::Lockout { until: hw(until) })
            }
            Response::Refused(Refusal::DailyCount { max, until }) => {
                Response::Refused(Refusal::DailyCount {
                    max,
                    until: hw(until),
                })
            }
            // `status()` already speaks hardware time.
            other => other,
        }
    }

    fn status_to_hardware(&self, mut s: Status) -> Status {
        s.next_refill = s.next_refill.map(|t| self.to_hardware(t));
        s.now = self.to_hardware(s.now);
        if let Mode::Stopped { reason, since } = s.mode {
            s.mode = Mode::Stopped {
                reason,
                since: self.to_hardware(since),
            };
        }
        s
    }

    /// The head of the event log's chain: downloaded entries must lead to it.
    pub fn log_head(&self) -> LogChain {
        self.s.events
    }

    /// The pump's status.
    pub fn status(&self) -> Status {
        let mut alarms = Vec::new();
        for (kind, priority, acknowledged) in self.s.alarms.active() {
            let _ = alarms.push(ActiveAlarm {
                kind,
                priority,
                acknowledged,
            });
        }
        self.status_to_hardware(Status {
            mode: self.s.mode,
            program_version: self.s.program_version,
            reservoir: self.s.reservoir,
            delivered: self.s.delivered,
            missed: nl(self.s.missed_exact),
            alarms,
            battery_life: self.s.battery.projected_life(self.s.last_seen),
            next_refill: self.next_refill(),
            now: self.s.last_seen,
            utc_ms: self.s.clock.map(|c| c.utc(self.s.last_seen)),
            clock_set: self.s.clock.is_some(),
            bolus_active: self.s.bolus.is_some(),
            bridging: self.s.bridging,
            catheter: self.s.catheter,
            alarm_settings: self.s.settings,
            reminder_interval: self.s.reminder_interval,
            pump_path: self.profile.pump_path_volume,
            dead_volume: self.dead_volume(),
            ahead_of_drug: self.s.fluid.volume_until(&self.s.program.contents),
        })
    }

    /// The dead volume: the pump's internal path plus the recorded catheter (the
    /// profile's nominal catheter until one is recorded).
    pub fn dead_volume(&self) -> Volume {
        let catheter = self
            .s
            .catheter
            .map_or(self.profile.catheter_volume, |c| c.volume());
        self.profile.pump_path_volume.saturating_add(catheter)
    }

    /// The recorded catheter.
    pub fn catheter(&self) -> Option<CatheterRecord> {
        self.s.catheter
    }

    /// Records the implanted catheter (at implant or after a revision): the pump must be
    /// stopped; the old catheter's fluid left with it and the new one holds no drug.
    fn set_catheter(&mut self, now: Instant, record: CatheterRecord) -> Response {
        if let Err(e) = record.validate() {
            return Response::Refused(Refusal::Invalid(e.message()));
        }
        if !matches!(self.s.mode, Mode::Stopped { .. }) {
            return Response::Refused(Refusal::Invalid(
                "stop the pump before recording a catheter (implant or revision): the \
                 fluid path changes",
            ));
        }
        let revision = self.s.catheter.is_some();
        self.s
            .fluid
            .replace_catheter(self.profile.pump_path_volume, record.volume());
        self.s.catheter = Some(record);
        // The old fluid that bridging was pushing out is gone with the old catheter; the
        // new catheter needs priming.
        self.s.bridging = false;
        self.log(
            now,
            Event::CatheterSet {
                revision,
                model: record.model,
                length_mm: record.length_mm,
                volume: record.volume(),
            },
        );
        self.mark_dirty();
        Response::Accepted
    }

    /// The therapy mode (cheaper than a full [`Pump::status`]).
    pub fn mode(&self) -> Mode {
        self.s.mode
    }

    /// The hardware profile.
    pub fn profile(&self) -> &HardwareProfile {
        &self.profile
    }
    /// The program in force.
    pub fn program(&self) -> &Prescription {
        &self.s.program
    }
    /// The fluid path.
    pub fn fluid(&self) -> &FluidPath {
        &self.s.fluid
    }
    /// The limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.s.limiter
    }
    /// The alarms.
    pub fn alarms(&self) -> &Alarms {
        &self.s.alarms
    }
    /// The battery.
    pub fn battery(&self) -> &Battery {
        &self.s.battery
    }
    /// The wall clock, if set.
    pub fn clock(&self) -> Option<WallClock> {
        self.s.clock
    }
    /// The ideal volume of the program so far (what perfect delivery would have given).
    pub fn ideal_delivered(&self) -> Volume {
        nl(self.s.ideal_exact)
    }
    /// Volume commanded in strokes that completed (or are in flight).
    pub fn delivered(&self) -> Volume {
        self.s.delivered
    }
    /// Everything ever put in the reservoir.
    pub fn held_total(&self) -> Volume {
        self.s.held_total
    }
    /// Strokes commanded since manufacture.
    pub fn strokes(&self) -> u64 {
        self.s.strokes
    }
    /// Turns persistence on or off (on by default). Off, the core emits no `Store`
    /// actions: for a simulator running years where no power is ever cut. Firmware never
    /// turns it off.
    pub fn set_persistence(&mut self, on: bool) {
        self.persistence = on;
        if on {
            self.mark_dirty();
        }
    }

    /// Whether a stroke's timeout and its report may take the quiet path of the steady
    /// state (on by default). Off, every input takes the general path: what the pump
    /// does is the same either way, only slower (H-170).
    pub fn set_quiet_paths(&mut self, on: bool) {
        self.quiet_paths = on;
        if !on {
            self.quiet_until = Instant::ZERO;
        }
    }

    /// Actions lost because the queue was full (0 when the caller drains it). A lost
    /// action puts the pump in its safe state ([`FaultCode::ActionLost`]).
    pub fn dropped_actions(&self) -> u32 {
        self.dropped_actions
    }

    // ----- internals: waking and accounting -----------------------------------------

    /// Common work of every input: energy, accrual, bolus end, timers, invariants.
    fn wake(&mut self, now: Instant) {
        self.stroke_issued_at = None;
        self.quiet_until = Instant::ZERO;
        self.s.battery.advance(now);
        self.s.battery.add_wakes(1);
        self.wake_common(now);
    }

    /// A wake-up that costs no energy of its own (a stroke's completion report).
    fn wake_without_energy(&mut self, now: Instant) {
        self.quiet_until = Instant::ZERO;
        self.s.battery.advance(now);
        self.wake_common(now);
    }

    /// Accrual, bolus end, timers and invariants; the battery is advanced to `now`.
    fn wake_common(&mut self, now: Instant) {
        self.accrue(now);
        self.wake_checks(now);
    }

    /// Bolus end, timers and invariants; the accrual is at `now`.
    fn wake_checks(&mut self, now: Instant) {
        if self.s.bolus.is_some_and(|b| now >= b.end()) {
            self.end_bolus(now);
        }
        if let Some(a) = self.s.allowance {
            if now >= a.until {
                self.s.allowance = None;
                self.refresh_limits(now);
            }
        }
        if self.s.bridging
            && self
                .s
                .fluid
                .volume_until(&self.s.program.contents)
                .is_zero()
        {
            self.s.bridging = false;
            self.s.credit_exact = self.s.credit_exact.min(e(self.profile.stroke_volume));
        }
        if let Some(since) = self.withheld_since() {
            if now >= since.saturating_add(self.s.settings.stopped_reminder) {
                self.raise(now, AlarmKind::StoppedReminder);
            }
        }
        if self.s.reminder_at.is_some_and(|at| now >= at) {
            self.remind(now);
        }
        if self.s.beyond_use.is_some_and(|at| now >= at) {
            self.raise(now, AlarmKind::BeyondUseDate);
        }
        if self.s.veto_retry.is_some_and(|r| now >= r) {
            // The window moved on: let the next stroke try again.
            self.s.veto_retry = None;
        }
        if self
            .s
            .transition
            .as_ref()
            .is_some_and(|t| !t.clearing && now >= t.until)
        {
            self.s.transition = None;
            self.refresh_limits(now);
        }
        self.battery_check(now);
        self.invariants(now);
    }

    /// After every input: strokes, stall retries, alarm tones, the next wake time.
    fn finish(&mut self, now: Instant) {
        if let Some(stall) = self.s.stall {
            if now >= stall.retry_at && !self.stroke_in_flight && self.deliverable() {
                self.issue_stroke(now, true);
            }
        }
        let mut ready = self.ready_to_schedule();
        let mut issued = false;
        if ready {
            let threshold = self.threshold();
            if self.s.credit_exact >= threshold && self.min_interval_passed(now) {
                self.issue_stroke(now, false);
                issued = true;
            }
        }
        self.sound_alarms(now);
        if self.action_lost {
            self.actions_lost(now);
        }
        if issued {
            // The stroke (or its veto, or a fault) changed what `ready` depends on.
            ready = self.ready_to_schedule();
        }
        self.schedule_next_ready(now, ready);
        self.keep_min_interval();
        self.settle_quiet();
    }

    /// No stroke sooner than the motor's shortest interval after the last.
    #[inline(always)]
    fn keep_min_interval(&mut self) {
        if let (Some(next), Some(last)) = (self.next_stroke, self.last_stroke_at) {
            let earliest = last.saturating_add(self.profile.min_stroke_interval);
            self.next_stroke = Some(next.max(earliest));
        }
    }

    /// Works out the steady state's horizon ([`Pump::quiet_until`]) and timers after a
    /// general input: steady while running one constant flow with no bolus, allowance,
    /// bridge, veto, stall, lost action or limiter alarm, no alarm changed but not yet
    /// sounded, and no transition whose old fluid is still in the path (one whose
    /// fluid has left only keeps the old limits until it ends, as after every refill).
    /// The horizon is the first instant at which a check of the general wake-up could
    /// do something: a tone due, the battery's next evaluation, a reminder, the
    /// beyond-use date, the end of a transition. Those the quiet paths cannot move
    /// (they change only in the general path, which works this out again).
    fn settle_quiet(&mut self) {
        self.quiet_until = Instant::ZERO;
        let steady = self.quiet_paths
            && self.running()
            && !self.alarms_dirty
            && !self.action_lost
            && self.s.bolus.is_none()
            && self.s.allowance.is_none()
            && self.s.transition.as_ref().is_none_or(|t| !t.clearing)
            && self.s.veto_retry.is_none()
            && self.s.stall.is_none()
            && !self.s.bridging
            && self.s.program.contents.active().next().is_some()
            && !self.s.alarms.is_active(AlarmKind::LimiterVeto);
        let flow = self.s.program.schedule.constant_flow();
        let (true, Some(flow)) = (steady, flow) else {
            return;
        };
        // Also the flow `basal_exact` counts without a clock: a constant flow's mean
        // day is the flow, exactly.
        self.quiet_flow = flow.raw();
        let beyond_use = if self.s.alarms.is_active(AlarmKind::BeyondUseDate) {
            None
        } else {
            self.s.beyond_use
        };
        // A transition whose old fluid has left is a timer: its end changes the limits.
        let transition_ends = self.s.transition.as_ref().map(|t| t.until);
        let timer = earliest(
            earliest(
                earliest(self.alarm_due, self.battery_due),
                earliest(self.s.reminder_at, beyond_use),
            ),
            transition_ends,
        );
        self.quiet_timer = timer;
        self.quiet_until = earliest(timer, Some(self.battery_next_eval)).unwrap_or(Instant::MAX);
    }

    /// [`Pump::handle_timeout`] at a stroke's time in the steady state (H-170): the
    /// general wake-up less its timers (none is due before the horizon), then the
    /// stroke. Anything but a stroke issued without a new alarm or a lost action
    /// goes on as the general [`Pump::finish`].
    fn quiet_timeout(&mut self, now: Instant) {
        self.stroke_issued_at = None;
        self.s.battery.advance(now);
        self.s.battery.add_wakes(1);
        self.quiet_accrue(now);
        self.invariants(now);
        let stroke = self.profile.stroke_volume;
        // `finish`'s test, with nothing bridged: the threshold is one stroke.
        if self.running()
            && self.s.reservoir >= stroke
            && self.s.credit_exact >= e(stroke)
            && self.min_interval_passed(now)
        {
            self.issue_stroke(now, false);
            if self.stroke_in_flight && !self.alarms_dirty && !self.action_lost {
                // As `finish` goes on after a stroke issued: no tone due, and nothing
                // to schedule while the stroke is in flight.
                self.next_stroke = None;
                self.stroke_issued_at = Some(now);
                return;
            }
        }
        self.finish(now);
        if self.stroke_in_flight {
            self.stroke_issued_at = Some(now);
        }
    }

    /// [`Pump::accrue`] in the steady state: running the constant flow with nothing
    /// overlaid, deliverable while the reservoir holds a stroke (else the general
    /// accrual, which counts what is missed).
    #[inline(always)]
    fn quiet_accrue(&mut self, now: Instant) {
        let from = self.s.accounted_to;
        if now <= from || self.s.reservoir < self.profile.stroke_volume {
            return self.accrue(now);
        }
        // `basal_exact`'s constant flow: the flow times the local time elapsed.
        let elapsed = match self.s.clock {
            Some(c) => c.local(now).0.saturating_sub(c.local(from).0),
            None => now.saturating_since(from).ms(),
        };
        let add = u128::from(self.quiet_flow).saturating_mul(u128::from(elapsed));
        self.s.ideal_exact = self.s.ideal_exact.saturating_add(add);
        self.s.credit_exact = self.s.credit_exact.saturating_add(add);
        self.s.accounted_to = now;
    }

    /// [`Pump::handle_stroke_done`] of a stroke that moved, reported at the instant of
    /// the timeout that issued it, in the steady state (H-170): the battery is not due
    /// for evaluation before the horizon, and no transition, stall or limiter alarm
    /// waits to be cleared by the stroke.
    fn quiet_stroke_done(&mut self, now: Instant) {
        self.stroke_invariant(now);
        self.stroke_in_flight = false;
        // `stroke_succeeded` with nothing else to clear.
        self.commit_stroke(now);
        if !self.quiet_schedule(now) {
            self.finish(now);
        }
    }

    /// [`Pump::finish`] after a stroke's report in the steady state (H-170): no stroke
    /// due now, no tone due, the next stroke at the constant flow. `false`, having
    /// changed nothing, when the general `finish` is needed.
    fn quiet_schedule(&mut self, now: Instant) -> bool {
        if self.alarms_dirty
            || self.action_lost
            || self.stroke_in_flight
            || !self.running()
            || self.s.stall.is_some()
            || self.s.veto_retry.is_some()
            || self.s.reservoir < self.profile.stroke_volume
            || self.s.credit_exact >= e(self.profile.stroke_volume)
        {
            return false;
        }
        // `schedule_next_ready` of the constant flow, with nothing overlaid.
        self.next_stroke = constant_flow_due(
            now,
            self.s.credit_exact,
            e(self.profile.stroke_volume),
            self.quiet_flow,
        );
        self.keep_min_interval();
        true
    }

    /// Hands out the tones due. The alarm slots are scanned only when one changed or
    /// a tone is due.
    fn sound_alarms(&mut self, now: Instant) {
        if self.alarms_dirty || self.alarm_due.is_some_and(|d| d <= now) {
            while let Some(sound) = self.s.alarms.poll_sound(now) {
                self.push(Pending::Alarm(sound));
            }
            self.alarm_due = self.s.alarms.next_due();
            self.alarms_dirty = false;
        }
    }

    /// An action was lost to a full queue: the log or the tones the firmware carries
    /// out are no longer complete, so the pump enters its safe state (or, already
    /// there, logs the loss), using the queue's reserve.
    #[cold]
    #[inline(never)]
    fn actions_lost(&mut self, now: Instant) {
        self.reserve_open = true;
        if matches!(self.s.mode, Mode::Fault { .. }) {
            self.log(
                now,
                Event::Fault {
                    code: FaultCode::ActionLost,
                },
            );
        } else {
            self.enter_fault(now, FaultCode::ActionLost);
        }
        self.sound_alarms(now);
        self.reserve_open = false;
        self.action_lost = false;
    }

    fn running(&self) -> bool {
        matches!(self.s.mode, Mode::Running)
    }

    /// Since when the pump has been stopped or, a valve pump, in MRI mode: the states
    /// that raise the stopped reminder after the set delay.
    fn withheld_since(&self) -> Option<Instant> {
        match self.s.mode {
            Mode::Stopped { since, .. } => Some(since),
            Mode::MriSuspended => self.s.mri_since,
            _ => None,
        }
    }

    /// The alarms that say delivery the program expects is not happening, in the
    /// present state: stopped or in MRI mode (the stopped reminder, and the MRI alarm),
    /// in the safe state, at end of service, or empty.
    fn no_delivery_alarms(&self) -> [Option<AlarmKind>; 2] {
        match self.s.mode {
            Mode::Stopped { .. } => [Some(AlarmKind::StoppedReminder), None],
            Mode::MriSuspended => [Some(AlarmKind::StoppedReminder), Some(AlarmKind::MagnetMri)],
            Mode::Fault { .. } => [Some(AlarmKind::MemoryFault), None],
            Mode::EndOfService => [Some(AlarmKind::EndOfService), None],
            Mode::Running => [
                (self.s.reservoir < self.profile.stroke_volume)
                    .then_some(AlarmKind::EmptyReservoir),
                None,
            ],
        }
    }

    /// Whether `kind` speaks for delivery withheld now.
    fn is_no_delivery_alarm(&self, kind: AlarmKind) -> bool {
        self.no_delivery_alarms().contains(&Some(kind))
    }

    /// The reminder interval is up: every acknowledged no-delivery alarm whose cause
    /// persists sounds again (an acknowledgement silences a tone, never the fact that
    /// no drug flows).
    fn remind(&mut self, now: Instant) {
        self.s.reminder_at = None;
        for kind in self.no_delivery_alarms().into_iter().flatten() {
            if self.s.alarms.is_acknowledged(kind) && self.s.alarms.resound(kind, now) {
                self.alarms_dirty = true;
                self.log(now, Event::AlarmRaised(kind));
            }
        }
        self.mark_dirty();
    }

    /// Whether a stroke may be issued now (apart from the credit).
    fn deliverable(&self) -> bool {
        self.running()
            && self.s.veto_retry.is_none()
            && self.s.reservoir >= self.profile.stroke_volume
            && self.s.program.contents.active().next().is_some()
    }

    /// Whether the motor's shortest time between strokes has passed since the last.
    fn min_interval_passed(&self, now: Instant) -> bool {
        self.last_stroke_at
            .is_none_or(|last| now >= last.saturating_add(self.profile.min_stroke_interval))
    }

    /// Flow of the basal program at `t` (no overlays).
    fn basal_flow(&self, t: Instant) -> Flow {
        match self.s.clock {
            Some(c) => self.s.program.schedule.flow_at(c.local(t)),
            None => Flow::from_raw(self.s.program.schedule.mean_daily().raw()),
        }
    }

    /// Exact ideal volume of the basal program within `[a, b)`, nL·ms/day.
    fn basal_exact(&self, a: Instant, b: Instant) -> u128 {
        match self.s.clock {
            Some(c) => {
                let sched = &self.s.program.schedule;
                let (la, lb) = (c.local(a), c.local(b));
                if let Some(f) = sched.constant_flow() {
                    // `cumulative_exact` of a constant flow is `flow × t`, which cannot
                    // saturate in 128 bits, and local time is monotone: the same
                    // difference in one multiplication.
                    return u128::from(f.raw())
                        .saturating_mul(u128::from(lb.0.saturating_sub(la.0)));
                }
                sched
                    .cumulative_exact(lb)
                    .saturating_sub(sched.cumulative_exact(la))
            }
            None => u128::from(self.s.program.schedule.mean_daily().raw())
                .saturating_mul(u128::from(b.saturating_since(a).ms())),
        }
    }

    fn ideal_exact_between(&self, a: Instant, b: Instant) -> u128 {
        let overlay = self.s.bolus.map_or(0, |bo| bo.exact_between(a, b));
        self.basal_exact(a, b).saturating_add(overlay)
    }

    /// Accrues the program's ideal volume up to `now` into the credit.
    fn accrue(&mut self, now: Instant) {
        let from = self.s.accounted_to;
        if now <= from {
            return;
        }
        if self.running() {
            let overlay = self.s.bolus.map_or(0, |b| b.exact_between(from, now));
            let add = self.basal_exact(from, now).saturating_add(overlay);
            self.s.bolus_accrued = self.s.bolus_accrued.saturating_add(overlay);
            self.s.ideal_exact = self.s.ideal_exact.saturating_add(add);
            self.s.credit_exact = self.s.credit_exact.saturating_add(add);
            // What cannot be delivered now is missed, never owed as a later bolus.
            let blocked = self.s.stall.is_some() || !self.deliverable();
            if blocked {
                let cap = self.threshold();
                if self.s.credit_exact > cap {
                    let missed = self.s.credit_exact.saturating_sub(cap);
                    self.s.missed_exact = self.s.missed_exact.saturating_add(missed);
                    if overlay != 0 {
                        // The bolus's share of what was missed, by its share of the
                        // flow meanwhile (rounded up: its log never overstates).
                        let share = missed
                            .saturating_mul(overlay)
                            .div_ceil(add.max(1))
                            .min(missed);
                        self.s.bolus_short = self.s.bolus_short.saturating_add(share);
                    }
                    self.s.credit_exact = cap;
                    if self.s.reservoir < self.profile.stroke_volume {
                        self.raise(now, AlarmKind::EmptyReservoir);
                    }
                }
            }
        }
        self.s.accounted_to = now;
    }

    /// The credit (nL·ms/day) at which the next stroke is due.
    #[inline]
    fn threshold(&self) -> u128 {
        if !self.s.bridging {
            return e(self.profile.stroke_volume);
        }
        self.bridged_threshold()
    }

    /// [`Pump::threshold`] while bridging: scaled by the mass a stroke pushes out at the
    /// tip over the mass it takes from the reservoir.
    #[inline(never)]
    fn bridged_threshold(&self) -> u128 {
        let stroke = self.profile.stroke_volume;
        let Some(primary) = self.s.program.contents.active().next().copied() else {
            return e(stroke);
        };
        let at_reservoir =
            mass_in(primary.concentration, stroke, Rounding::Nearest).unwrap_or(Mass::ZERO);
        let at_tip = self
            .s
            .fluid
            .peek(stroke, &self.s.program.contents)
            .map_or(at_reservoir, |d| d.mass_of(primary.drug));
        if at_reservoir.is_zero() {
            return e(stroke);
        }
        let scaled = u128::from(stroke.raw())
            .saturating_mul(E_PER_NL)
            .saturating_mul(u128::from(at_tip.raw()))
            .checked_div(u128::from(at_reservoir.raw()))
            .unwrap_or(0);
        let floor = e(stroke)
            .checked_div(u128::from(MAX_BRIDGE_FACTOR))
            .unwrap_or(0);
        scaled.max(floor)
    }

    /// Computes when the credit will reach the threshold.
    fn schedule_next(&mut self, now: Instant) {
        let ready = self.ready_to_schedule();
        self.schedule_next_ready(now, ready);
    }

    /// Whether a next stroke is to be scheduled: none in flight, no stall, deliverable.
    fn ready_to_schedule(&self) -> bool {
        !self.stroke_in_flight && self.s.stall.is_none() && self.deliverable()
    }

    /// [`Pump::schedule_next`] with [`Pump::ready_to_schedule`] worked out.
    #[inline]
    fn schedule_next_ready(&mut self, now: Instant, ready: bool) {
        self.next_stroke = None;
        if !ready {
            return;
        }
        let threshold = self.threshold();
        let credit = self.s.credit_exact;
        // A constant program with no overlay: the credit grows by `flow` per ms, so the
        // stroke is due after ⌈(threshold − credit) / flow⌉ ms, exactly.
        if let (None, Some(flow)) = (self.s.bolus, self.s.program.schedule.constant_flow()) {
            self.next_stroke = constant_flow_due(now, credit, threshold, flow.raw());
            return;
        }
        self.schedule_through_changes(now, credit, threshold);
    }

    /// [`Pump::schedule_next_ready`] of a program that is not one constant flow, or
    /// during a bolus: walks the rate changes ahead until the credit reaches
    /// `threshold`. Out of line, so that the constant-flow case stays short.
    #[inline(never)]
    fn schedule_through_changes(&mut self, now: Instant, credit: u128, threshold: u128) {
        let mut credit = credit;
        let mut t = now;
        for _ in 0..64 {
            if credit >= threshold {
                self.next_stroke = Some(t.max(now));
                return;
            }
            let flow = self.flow_at(t);
            let change = self.next_change(t);
            let need = threshold.saturating_sub(credit);
            if !flow.is_zero() {
                let dt = need.div_ceil(u128::from(flow.raw()));
                let at =
                    Instant::from_ms(t.ms().saturating_add(u64::try_from(dt).unwrap_or(u64::MAX)));
                if change.is_none_or(|c| at <= c) {
                    // Rates are rounded; confirm against the exact integral.
                    let mut at = at;
                    let mut guard = 0u32;
                    while credit.saturating_add(self.ideal_exact_between(t, at)) < threshold
                        && guard < 1000
                    {
                        at = at.saturating_add(Duration::from_ms(1));
                        guard = guard.saturating_add(1);
                    }
                    self.next_stroke = Some(at.max(now));
                    return;
                }
            }
            let Some(c) = change else {
                return; // zero flow for ever: nothing to schedule
            };
            credit = credit.saturating_add(self.ideal_exact_between(t, c));
            t = c;
        }
        // Many changes ahead: wake at the last one reached and compute again.
        self.next_stroke = Some(t);
    }

    /// Total ideal flow (basal plus overlay) at `t`.
    fn flow_at(&self, t: Instant) -> Flow {
        let mut f = self.basal_flow(t);
        if let Some(b) = self.s.bolus {
            if t >= b.start && t < b.end() {
                let rate = mul_div(b.volume.raw(), MS_PER_DAY, b.duration.ms(), Rounding::Down)
                    .unwrap_or(0);
                f = f.saturating_add(Flow::from_raw(rate));
            }
        }
        f
    }

    /// The next instant after `t` at which the flow may change.
    fn next_change(&self, t: Instant) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut consider = |c: Instant| {
            if c > t {
                best = Some(best.map_or(c, |b: Instant| b.min(c)));
            }
        };
        if let Some(c) = self.s.clock {
            if self.schedule_varies() {
                let local = c.local(t);
                let next = self.s.program.schedule.next_change_after(local);
                consider(t.saturating_add(Duration::from_ms(next.0.saturating_sub(local.0))));
            }
        }
        if let Some(b) = self.s.bolus {
            consider(b.start);
            consider(b.end());
        }
        best
    }

    fn schedule_varies(&self) -> bool {
        let sched = &self.s.program.schedule;
        let (lo, hi) = sched.basal_range();
        lo != hi || !sched.boluses().is_empty()
    }

    // ----- strokes -------------------------------------------------------------------

    /// Issues one stroke: limiter, pre-accounting, persist, then the stroke itself.
    #[inline(always)]
    fn issue_stroke(&mut self, now: Instant, retry: bool) {
        let stroke = self.profile.stroke_volume;
        if self.s.reservoir < stroke {
            self.raise(now, AlarmKind::EmptyReservoir);
            return;
        }
        let delivery = match self
            .s
            .fluid
            .prepare_in_place(stroke, &self.s.program.contents)
        {
            Ok(d) => d,
            Err(_) => return self.enter_fault(now, FaultCode::FluidPath),
        };
        let mass = mass_ng(delivery.masses());
        // Counted before the stroke happens (write-ahead): a power cut after the record
        // and before the stroke loses one stroke; it can never repeat one.
        if let Err(veto) = self.s.limiter.check_and_record(now, delivery.masses()) {
            self.s.fluid.discard();
            let retry = self
                .s
                .limiter
                .retry_at(now, &veto)
                .or_else(|| self.s.limiter.next_release(now))
                .unwrap_or(now.saturating_add(Duration::from_hours(1)))
                .max(now.saturating_add(Duration::from_ms(1)));
            let first = self.s.veto_retry.is_none();
            self.s.veto_retry = Some(retry);
            self.mark_dirty();
            if first {
                self.log(
                    now,
                    Event::LimiterVeto {
                        drug: veto.drug,
                        window_hours: veto.window.hours(),
                        would_be: veto.would_be,
                        limit: veto.limit,
                    },
                );
                self.raise(now, AlarmKind::LimiterVeto);
            }
            return;
        }
        if !retry {
            let threshold = self.threshold();
            self.s.credit_exact = self.s.credit_exact.saturating_sub(threshold);
        }
        self.s.reservoir = self.s.reservoir.saturating_sub(stroke);
        self.s.delivered = self.s.delivered.saturating_add(stroke);
        self.s.strokes = self.s.strokes.saturating_add(1);
        self.s.battery.add_strokes(1);
        self.stroke_in_flight = true;
        self.last_stroke_at = Some(now);
        if self.persistence {
            // A small stroke record, unless a checkpoint is due anyway.
            self.stroke_entry = Some((now, mass));
        }
        self.stroke_order = true;
        let low = match self.low_threshold {
            Some(v) => v,
            None => {
                let v = self.low_threshold();
                self.low_threshold = Some(v);
                v
            }
        };
        self.reservoir_alarms(now, low);
    }

    /// Moves the stroke's fluid along the path as prepared when it was issued; a path
    /// that cannot take it puts the pump in its safe state. Whether it moved.
    #[inline(always)]
    fn commit_stroke(&mut self, now: Instant) -> bool {
        let stroke = self.profile.stroke_volume;
        let moved = self
            .s
            .fluid
            .commit_in_place(stroke, &self.s.program.contents)
            .is_ok();
        if !moved {
            self.enter_fault(now, FaultCode::FluidPath);
        }
        moved
    }

    fn stroke_succeeded(&mut self, now: Instant) {
        if !self.commit_stroke(now) {
            return;
        }
        if self.s.transition.as_ref().is_some_and(|t| t.clearing) {
            self.transition_clearing(now);
        }
        if let Some(stall) = self.s.stall.take() {
            // Delivery resumed by itself; report what was missed during the stall.
            let missed = nl(self.s.missed_exact.saturating_sub(stall.missed_before));
            self.log(now, Event::MotorRecovered { missed });
            self.clear(now, AlarmKind::MotorStall);
            self.s.credit_exact = 0;
        }
        if self.s.alarms.is_active(AlarmKind::LimiterVeto) && self.s.veto_retry.is_none() {
            self.clear(now, AlarmKind::LimiterVeto);
        }
        // No record here: the stroke was counted before it moved, and the fluid path's
        // step rides with the next record (a cut in between only delays tip accounting
        // by one stroke; the limiter already counted it).
    }

    fn stroke_stalled(&mut self, now: Instant) {
        let stroke = self.profile.stroke_volume;
        // The fluid did not move: give the volume back. The limiter keeps its count
        // (conservative).
        self.s.fluid.discard();
        self.s.reservoir = self.s.reservoir.saturating_add(stroke);
        self.s.delivered = self.s.delivered.saturating_sub(stroke);
        let attempts = self.s.stall.map_or(0, |s| s.attempts).saturating_add(1);
        let since = self.s.stall.map_or(now, |s| s.since);
        let missed_before = self
            .s
            .stall
            .map_or(self.s.missed_exact, |s| s.missed_before);
        let backoff = STALL_RETRY_FIRST
            .ms()
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(6))
            .min(STALL_RETRY_MAX.ms());
        if self.s.stall.is_none() {
            self.log(
                now,
                Event::MotorStall {
                    missed: nl(self.s.missed_exact),
                },
            );
            self.raise(now, AlarmKind::MotorStall);
        }
        self.s.stall = Some(Stall {
            since,
            missed_before,
            attempts,
            retry_at: now.saturating_add(Duration::from_ms(backoff)),
        });
        self.mark_dirty();
    }

    /// Reservoir alarms after the volume changed.
    fn after_volume_change(&mut self, now: Instant) {
        let threshold = self.low_threshold();
        self.reservoir_alarms(now, threshold);
    }

    /// [`Pump::after_volume_change`] with the low-reservoir threshold worked out.
    #[inline(always)]
    fn reservoir_alarms(&mut self, now: Instant, threshold: Volume) {
        if self.s.reservoir <= threshold && self.s.program.contents.active().next().is_some() {
            self.raise(now, AlarmKind::LowReservoir);
        }
        if self.s.reservoir < self.profile.stroke_volume && self.running() {
            self.raise(now, AlarmKind::EmptyReservoir);
        }
    }

    /// The low-reservoir threshold: the set volume or the volume of the set number of
    /// days at the program's mean daily volume plus every allowed patient bolus,
    /// whichever is larger.
    fn low_threshold(&self) -> Volume {
        refill::low_reservoir(
            self.s.settings.low_reservoir,
            self.s.settings.low_reservoir_days,
            self.daily_use(),
        )
    }

    fn daily_use(&self) -> Volume {
        let pb = self
            .s
            .program
            .patient_bolus
            .map(|p| (p.volume, p.max_per_day));
        let allowance = refill::bolus_allowance(pb).unwrap_or(Flow::ZERO);
        self.s
            .program
            .schedule
            .mean_daily()
            .saturating_add(Volume::from_raw(allowance.raw()))
    }

    /// When the refill is due: the reservoir reaches the low-reservoir threshold with
    /// every allowed patient bolus used and the profile's labelled worst-case
    /// over-delivery — the same function `thecal calc refill` uses — or the fill's
    /// beyond-use date, whichever is earlier.
    fn next_refill(&self) -> Option<Instant> {
        if !self.running() {
            return None;
        }
        let due = refill::refill_due(
            self.s.reservoir,
            self.low_threshold(),
            self.daily_use(),
            self.profile.over_delivery_permille,
        )
        .ok()??;
        let by_volume = self.s.last_seen.saturating_add(due);
        // The drug's stability can come first (ziconotide: 40 days diluted).
        Some(self.s.beyond_use.map_or(by_volume, |b| b.min(by_volume)))
    }

    /// Starts the bolus overlay `b` (its delivery is counted from here).
    fn begin_bolus(&mut self, b: Bolus) {
        self.s.bolus = Some(b);
        self.s.bolus_accrued = 0;
        self.s.bolus_short = 0;
    }

    /// Ends the bolus under way, if any, at `now` (completed, cancelled, or cut short
    /// by a stop, MRI mode, end of service or a fault) and logs what it delivered: its
    /// overlay accrued while running less what was missed meanwhile (vetoes, stalls,
    /// an empty reservoir) and the credit a restart dropped, to the nearest nL (within
    /// one stroke of the truth, never the planned volume for an undelivered one).
    fn end_bolus(&mut self, now: Instant) {
        let Some(b) = self.s.bolus.take() else {
            return;
        };
        let net = self.s.bolus_accrued.saturating_sub(self.s.bolus_short);
        let delivered = nl(net.saturating_add(E_PER_NL / 2)).min(b.volume);
        self.s.bolus_accrued = 0;
        self.s.bolus_short = 0;
        self.log(
            now,
            Event::BolusEnded {
                kind: b.kind,
                delivered,
            },
        );
        self.mark_dirty();
    }

    // ----- health -------------------------------------------------------------------

    fn battery_check(&mut self, now: Instant) {
        // The projection changes slowly: evaluate it at most hourly, or when its next
        // transition is due, or after a reading or a command (which reset the timer).
        if now < self.battery_next_eval {
            return;
        }
        let transition = self.s.battery.update(now);
        self.battery_due = self.s.battery.next_check(now);
        self.battery_next_eval = self
            .battery_due
            .unwrap_or(Instant::MAX)
            .min(now.saturating_add(Duration::from_hours(1)));
        match transition {
            Some(BatteryState::ElectiveReplacement) => {
                self.raise(now, AlarmKind::ElectiveReplacement)
            }
            Some(BatteryState::EndOfService) => {
                self.raise(now, AlarmKind::EndOfService);
                self.s.mode = Mode::EndOfService;
                self.end_bolus(now);
                self.mark_dirty();
            }
            _ => {}
        }
    }

    /// The self-test at start.
    fn self_test(&mut self, now: Instant) {
        if let Some(code) = self.program_fault() {
            return self.enter_fault(now, code);
        }
        if let Some(c) = self.s.clock {
            if !clock_sane(c.utc(now)) {
                return self.enter_fault(now, FaultCode::Clock);
            }
        }
        self.invariants(now);
        if self.s.clock.is_none()
            && self.schedule_varies()
            && self.s.program.contents.active().next().is_some()
        {
            self.raise(now, AlarmKind::ClockNotSet);
        }
    }

    /// Checks of the program against the library and the limiter.
    fn program_fault(&self) -> Option<FaultCode> {
        self.s.program.contents.active().next()?;
        let ctx = Context {
            library: &self.library,
            device: self.profile.device_limits(),
            previous: None,
            opioid_naive: false,
        };
        // Only whether a hard finding is a program limit is kept (among the findings a
        // list holds, as `check::check` lists them): not the whole list, 2 KB of stack.
        let mut seen = 0usize;
        let mut beyond_limits = false;
        check::check_each(
            &self.s.program,
            &ctx,
            &Patient::default(),
            &mut |f: Finding| {
                if seen < check::MAX_FINDINGS
                    && f.severity == Severity::Hard
                    && is_program_limit(&f)
                {
                    beyond_limits = true;
                }
                seen = seen.saturating_add(1);
            },
        );
        if beyond_limits {
            return Some(FaultCode::Program);
        }
        for c in self.s.program.contents.active() {
            if self.s.limiter.limits(c.drug).is_none() {
                return Some(FaultCode::Limiter);
            }
        }
        None
    }

    /// The cheap invariants checked on every wake.
    fn invariants(&mut self, now: Instant) {
        if matches!(self.s.mode, Mode::Fault { .. }) {
            return;
        }
        if self.s.fluid.held_volume() != self.dead_volume() {
            return self.enter_fault(now, FaultCode::FluidPath);
        }
        if self.s.reservoir > self.profile.reservoir_capacity {
            return self.enter_fault(now, FaultCode::Reservoir);
        }
        if self.s.delivered > self.s.held_total {
            self.enter_fault(now, FaultCode::Reservoir);
        }
    }

    /// [`Pump::invariants`] after a stroke was issued at a wake-up that checked them at
    /// the same instant: the fluid path is unchanged and the reservoir only fell, so
    /// only the delivered volume can have broken one.
    fn stroke_invariant(&mut self, now: Instant) {
        if matches!(self.s.mode, Mode::Fault { .. }) {
            return;
        }
        if self.s.delivered > self.s.held_total {
            self.enter_fault(now, FaultCode::Reservoir);
        }
    }

    /// A valve pump shuts its valve for an MRI scan: no delivery until a clinician
    /// resets it, with the MRI alarm now and the stopped reminder after its delay.
    fn enter_mri(&mut self, now: Instant) {
        self.s.mode = Mode::MriSuspended;
        self.s.mri_since = Some(now);
        self.end_bolus(now);
        self.raise(now, AlarmKind::MagnetMri);
    }

    /// The safe state: no delivery, a high-priority alarm, status and logs still
    /// readable, a new program or refill by a clinician may clear it.
    fn enter_fault(&mut self, now: Instant, code: FaultCode) {
        if matches!(self.s.mode, Mode::Fault { .. }) {
            return;
        }
        self.s.mode = Mode::Fault { code };
        self.end_bolus(now);
        self.next_stroke = None;
        self.log(now, Event::Fault { code });
        self.raise(now, AlarmKind::MemoryFault);
        self.mark_dirty();
    }

    fn raise(&mut self, now: Instant, kind: AlarmKind) {
        if self.s.alarms.raise(kind, now) {
            self.alarms_dirty = true;
            self.log(now, Event::AlarmRaised(kind));
            self.mark_dirty();
        }
    }

    fn clear(&mut self, now: Instant, kind: AlarmKind) {
        if self.s.alarms.clear(kind, now) {
            // No reminder outlives the state it reminds of.
            if !self
                .no_delivery_alarms()
                .into_iter()
                .flatten()
                .any(|k| self.s.alarms.is_active(k))
            {
                self.s.reminder_at = None;
            }
            self.alarms_dirty = true;
            self.log(now, Event::AlarmCleared(kind));
            self.mark_dirty();
        }
    }

    // ----- limits ---------------------------------------------------------------------

    /// Sets the limiter's limits for every drug of the program: the lower of the
    /// library's hard daily limit and the program's own planned maximum over what the
    /// limiter counts (heaviest day and its counted edge, every allowed patient bolus,
    /// any clinician-bolus allowance) with the margin; the hourly limit from the heaviest
    /// hour likewise.
    ///
    /// # Errors
    /// The limiter's, for a drug it has no room for: [`Pump::change_program`] makes
    /// room, or refuses the change, before it installs a program.
    fn update_limits(&mut self) -> Result<(), LimiterError> {
        let program = &self.s.program;
        let stroke = self.profile.stroke_volume;
        let pb = program.patient_bolus;
        let allowance = self.s.allowance.map_or(Volume::ZERO, |a| a.volume);
        let (_, max_flow) = program.schedule.basal_range();
        let longest_bolus = program
            .schedule
            .boluses()
            .iter()
            .map(|b| b.duration)
            .chain(pb.map(|p| p.duration))
            .max()
            .unwrap_or(Duration::ZERO);
        let periodic = program
            .schedule
            .boluses()
            .iter()
            .map(|b| b.volume)
            .max()
            .unwrap_or(Volume::ZERO);
        // What the limiter can count against a delivery the program allows: its window,
        // plus the oldest bin it counts whole (1 min or 15 min), plus the basal delivered
        // during a bolus, which the predictive rule adds. Budgeting less would veto
        // boluses the program allows (H-34).
        let slack = |w: Window| w.bin_width().saturating_add(longest_bolus);
        let basal_over = |d: Duration| max_flow.volume_over(d, Rounding::Up).unwrap_or(Volume::MAX);
        // Patient boluses whose delivery can meet a span: starts at least a lockout
        // apart, each lasting its duration.
        let boluses_in = |span: Duration, cap: u64| {
            pb.map_or(Volume::ZERO, |p| {
                let n = span
                    .ms()
                    .checked_div(p.lockout.ms().max(1))
                    .unwrap_or(0)
                    .saturating_add(1)
                    .min(cap);
                p.volume.checked_mul(n).unwrap_or(Volume::MAX)
            })
        };
        let per_day = pb.map_or(0, |p| u64::from(p.max_per_day));
        let hour_span = Window::Hour.length().saturating_add(slack(Window::Hour));
        let day_span = Window::Day.length().saturating_add(slack(Window::Day));
        // The heaviest day, its edge (the extra basal, and a periodic bolus of the day
        // before that falls in the counted bin), every allowed patient bolus (one more
        // can fall in that bin than the daily count), any clinician-bolus allowance.
        let day_volume = program
            .schedule
            .max_day_total()
            .saturating_add(basal_over(slack(Window::Day)))
            .saturating_add(periodic)
            .saturating_add(boluses_in(day_span, per_day.saturating_add(1)))
            .saturating_add(allowance);
        let hour_basal = basal_over(hour_span);
        let ptm_hour = boluses_in(hour_span, per_day);
        let hour_volume = hour_basal
            .saturating_add(periodic)
            .saturating_add(ptm_hour)
            .saturating_add(allowance);
        let with_margin = |v: Volume| {
            v.scale(
                100u64.saturating_add(LIMIT_MARGIN_PERCENT),
                100,
                Rounding::Up,
            )
            .unwrap_or(Volume::MAX)
            .saturating_add(stroke.checked_mul(2).unwrap_or(Volume::MAX))
        };
        let comps: Vec<_, 4> = program.contents.active().copied().collect();
        for c in comps {
            let day = mass_in(c.concentration, with_margin(day_volume), Rounding::Up)
                .unwrap_or(Mass::MAX);
            let hour = mass_in(c.concentration, with_margin(hour_volume), Rounding::Up)
                .unwrap_or(Mass::MAX);
            let hard = self
                .library
                .get(c.drug)
                .max_daily_dose
                .map_or(Mass::MAX, |m| Mass::from_raw(m.value.raw()));
            let mut limits = Limits {
                per_hour: Some(hour),
                per_day: day,
            };
            if let Some(old) = self.s.transition.as_ref().and_then(|t| t.get(c.drug)) {
                limits.per_day = limits.per_day.max(old.per_day);
                limits.per_hour = limits.per_hour.max(old.per_hour);
            }
            // Never above the library's hard limit, whatever the program or transition.
            limits.per_day = limits.per_day.min(hard);
            limits.per_hour = limits.per_hour.map(|h| h.min(hard));
            self.s.limiter.set_limits(c.drug, limits)?;
        }
        Ok(())
    }

    /// [`Pump::update_limits`] for the program in force, whose drugs the limiter
    /// already counts; should it fail all the same, the pump enters its safe state
    /// (a drug without limits would be vetoed stroke by stroke).
    fn refresh_limits(&mut self, now: Instant) {
        if self.update_limits().is_err() {
            self.enter_fault(now, FaultCode::Limiter);
        }
    }

    /// The drugs the limiter must keep counting whatever their windows hold: those of
    /// the program in force, of `incoming`, and every drug still in the fluid path
    /// (its old fluid reaches the patient after the change).
    fn kept_drugs(&self, incoming: &Admixture) -> Vec<DrugId, 16> {
        let mut keep: Vec<DrugId, 16> = Vec::new();
        for d in DrugId::ALL {
            let held = self.s.program.contents.active().any(|c| c.drug == d)
                || incoming.active().any(|c| c.drug == d)
                || !self.s.fluid.mass_in_path(d).is_zero();
            if held && d != DrugId::Saline {
                let _ = keep.push(d);
            }
        }
        keep
    }

    /// Whether the limiter can count every drug of `incoming` (forgetting idle drugs
    /// that nothing holds any more); changes nothing.
    fn limiter_room(&self, now: Instant, incoming: &Admixture) -> Result<(), Refusal> {
        let keep = self.kept_drugs(incoming);
        let drugs: Vec<DrugId, 4> = incoming.active().map(|c| c.drug).take(4).collect();
        self.s
            .limiter
            .room_for(now, &drugs, |d| keep.contains(&d))
            .map_err(|e| match e {
                LimiterError::TooManyDrugs(drug) | LimiterError::Uncounted(drug) => {
                    Refusal::LimiterFull { drug }
                }
                LimiterError::Saline => Refusal::Invalid("saline takes no dose limits"),
            })
    }

    // ----- commands -------------------------------------------------------------------

    // Cold, with large locals: never inlined, so that its frame is not merged into
    // every caller's (a microcontroller's stack holds a few kilobytes).
    #[inline(never)]
    fn execute(&mut self, now: Instant, role: Role, cmd: &Command) -> Response {
        use Response::{Accepted, Refused};
        let faulted = matches!(self.s.mode, Mode::Fault { .. });
        match cmd {
            Command::Interrogate => Response::Status(self.status()),
            Command::Program {
                prescription,
                confirm_soft,
            } => self.apply_program(now, prescription, confirm_soft.as_ref()),
            Command::Refill {
                aspirated,
                added,
                contents,
                keep_dose,
                bridge,
                confirm,
                beyond_use_utc_ms,
            } => self.refill(
                now,
                *aspirated,
                *added,
                contents,
                *keep_dose,
                *bridge,
                confirm.as_ref(),
                *beyond_use_utc_ms,
            ),
            Command::ClinicianBolus { volume, duration } => {
                self.start_bolus(now, BolusKind::Clinician, *volume, *duration)
            }
            Command::PrimingBolus { duration } => {
                if self.s.catheter.is_none() {
                    return Refused(Refusal::NoCatheter);
                }
                let to_fill = self.s.fluid.volume_until(&self.s.program.contents);
                if to_fill.is_zero() {
                    return Refused(Refusal::Invalid(
                        "the catheter already holds the drug; no priming is needed",
                    ));
                }
                // Priming fills a drug-free catheter; fluid ahead that carries a drug (an
                // old fill) would reach the CSF at bolus speed.
                if self
                    .s
                    .fluid
                    .drug_ahead_of(&self.s.program.contents)
                    .is_some()
                {
                    return Refused(Refusal::Invalid(
                        "the catheter holds drug from an earlier fill; a priming bolus would \
                         push it into the CSF at bolus speed: let the basal (or bridging) \
                         move it",
                    ));
                }
                // The basal keeps running during the priming: the bolus is what the
                // basal leaves to fill, so the drug reaches the tip as the priming ends
                // (never early at bolus speed). The volume is computed, never typed in.
                let volume = to_fill.saturating_sub(self.basal_during(now, *duration));
                if volume.is_zero() {
                    return Refused(Refusal::Invalid(
                        "the basal alone fills the catheter within this duration; shorten it",
                    ));
                }
                self.start_bolus(now, BolusKind::Priming, volume, *duration)
            }
            Command::PatientBolus { request_id } => self.patient_bolus(now, *request_id),
            Command::SetCatheter(record) => self.set_catheter(now, *record),
            Command::CancelBolus => match self.s.bolus {
                Some(b) if role == Role::Clinician || b.kind == BolusKind::Patient => {
                    self.end_bolus(now);
                    Accepted
                }
                _ => Refused(Refusal::NoBolus),
            },
            Command::Stop { reason } => {
                if faulted {
                    return Refused(Refusal::NotRunning(self.s.mode));
                }
                self.s.mode = Mode::Stopped {
                    reason: *reason,
                    since: now,
                };
                self.end_bolus(now);
                self.log(now, Event::Stopped { reason: *reason });
                self.mark_dirty();
                Accepted
            }
            Command::Resume => match self.s.mode {
                Mode::Stopped { .. } => {
                    if let Some(code) = self.program_fault() {
                        self.enter_fault(now, code);
                        return Refused(Refusal::NotRunning(self.s.mode));
                    }
                    self.s.mode = Mode::Running;
                    self.s.credit_exact = 0;
                    self.clear(now, AlarmKind::StoppedReminder);
                    self.log(now, Event::Resumed);
                    self.mark_dirty();
                    Accepted
                }
                _ => Refused(Refusal::NotStopped),
            },
            Command::SetClock {
                utc_ms,
                offset_minutes,
            } => {
                if !clock_sane(*utc_ms) {
                    return Refused(Refusal::Invalid(
                        "the UTC time must lie between 2020 and 2100",
                    ));
                }
                if !(-720..=840).contains(offset_minutes) {
                    return Refused(Refusal::Invalid(
                        "the UTC offset must lie between -12:00 and +14:00",
                    ));
                }
                let old = self.s.clock.map_or(0, |c| c.utc(now));
                self.s.clock = Some(WallClock {
                    set_at: now,
                    utc_ms: *utc_ms,
                    offset_minutes: *offset_minutes,
                });
                self.log(
                    now,
                    Event::ClockSet {
                        old_utc_ms: old,
                        new_utc_ms: *utc_ms,
                    },
                );
                self.clear(now, AlarmKind::ClockNotSet);
                self.mark_dirty();
                Accepted
            }
            Command::Acknowledge(kind) => match self.s.alarms.acknowledge(*kind, now) {
                Ok(()) => {
                    if self.is_no_delivery_alarm(*kind) && self.s.reminder_at.is_none() {
                        self.s.reminder_at = Some(now.saturating_add(self.s.reminder_interval));
                    }
                    self.alarms_dirty = true;
                    self.log(now, Event::AlarmAcknowledged(*kind));
                    self.mark_dirty();
                    Accepted
                }
                Err(_) => Refused(Refusal::AlarmNotActive(*kind)),
            },
            Command::MriMode(on) => {
                if self.profile.mechanism != Mechanism::Valve {
                    return Refused(Refusal::Invalid(
                        "MRI mode is for valve pumps; a peristaltic pump stalls in the field and resumes by itself",
                    ));
                }
                match (on, self.s.mode) {
                    (true, Mode::Running) => {
                        let limit = self.profile.mri_reservoir_limit;
                        if self.s.reservoir > limit {
                            return Refused(Refusal::MriReservoirNotEmpty {
                                reservoir: self.s.reservoir,
                                limit,
                            });
                        }
                        self.enter_mri(now);
                    }
                    (false, Mode::MriSuspended) => {
                        self.s.mode = Mode::Running;
                        self.s.credit_exact = 0;
                        self.s.mri_since = None;
                        self.clear(now, AlarmKind::MagnetMri);
                        self.clear(now, AlarmKind::StoppedReminder);
                    }
                    _ => {
                        return Refused(Refusal::Invalid(
                            "MRI mode is entered from running and left from MRI mode",
                        ));
                    }
                }
                self.mark_dirty();
                Accepted
            }
            Command::MriEmergency => {
                if self.profile.mechanism != Mechanism::Valve {
                    return Refused(Refusal::Invalid(
                        "MRI mode is for valve pumps; a peristaltic pump stalls in the field and resumes by itself",
                    ));
                }
                if self.s.mode != Mode::Running {
                    return Refused(Refusal::Invalid("MRI mode is entered from running"));
                }
                // The clinician confirmed that the scan cannot wait for the pump to be
                // emptied; the acceptance is logged with the sender's key.
                self.enter_mri(now);
                self.mark_dirty();
                Accepted
            }
            Command::SetReminderInterval { interval } => {
                if !(REMINDER_INTERVAL_MIN..=REMINDER_INTERVAL_MAX).contains(interval) {
                    return Refused(Refusal::Invalid(
                        "the no-delivery reminder interval is 15 min to 4 h",
                    ));
                }
                self.s.reminder_interval = *interval;
                // A reminder already pending keeps to the new interval.
                if let Some(at) = self.s.reminder_at {
                    self.s.reminder_at = Some(at.min(now.saturating_add(*interval)));
                }
                self.mark_dirty();
                Accepted
            }
            Command::ReduceDose { percent } => match self.reduce_dose(now, role, *percent) {
                Ok(()) => Accepted,
                Err(r) => Refused(r),
            },
            Command::AlarmSettings {
                low_reservoir,
                low_reservoir_days,
                stopped_reminder,
            } => {
                if *low_reservoir >= self.profile.reservoir_capacity {
                    return Refused(Refusal::Invalid(
                        "the low-reservoir volume must be below the capacity",
                    ));
                }
                if stopped_reminder.is_zero() || *stopped_reminder > Duration::from_hours(24) {
                    return Refused(Refusal::Invalid(
                        "the stopped-pump reminder is 1 ms to 24 h",
                    ));
                }
                if *low_reservoir_days > 90 {
                    return Refused(Refusal::Invalid("the low-reservoir days are 0 to 90"));
                }
                self.s.settings = AlarmSettings {
                    low_reservoir: *low_reservoir,
                    low_reservoir_days: *low_reservoir_days,
                    stopped_reminder: *stopped_reminder,
                };
                self.after_volume_change(now);
                self.mark_dirty();
                Accepted
            }
        }
    }

    /// Reduces every basal flow (and periodic bolus) by `percent`, through
    /// [`Pump::change_program`]. Never below the pump's lowest flow (stopping is a
    /// clinician's decision, with its warning); an emergency device may take off at
    /// most half of the clinician's program, however many reductions it sends, and each
    /// of its reductions raises [`AlarmKind::DoseReduced`] until a clinician changes
    /// the program.
    // Cold, with large locals: never inlined, so that its frame is not merged into
    // every caller's (a microcontroller's stack holds a few kilobytes).
    #[inline(never)]
    fn reduce_dose(&mut self, now: Instant, role: Role, percent: u8) -> Result<(), Refusal> {
        if !(1..=50).contains(&percent) {
            return Err(Refusal::Invalid("a dose reduction is 1 to 50 percent"));
        }
        if matches!(self.s.mode, Mode::Fault { .. }) {
            // The program in force is suspect; only a clinician's program (which may
            // clear the fault) changes it.
            return Err(Refusal::NotRunning(self.s.mode));
        }
        let keep = 100u32.saturating_sub(u32::from(percent));
        // The candidate: the program in force, copied in place (not cloned aside and
        // moved: a prescription is 3 KB), its schedule then scaled in place.
        let mut rx = Prescription::placeholder();
        rx.clone_from(&self.s.program);
        rx.schedule
            .scale(u64::from(keep), 100)
            .map_err(|_| Refusal::Invalid("the reduced schedule cannot be computed"))?;
        let (lo, _) = rx.schedule.basal_range();
        if lo < self.profile.min_flow {
            return Err(Refusal::BelowMinimumRate {
                flow: lo,
                min: self.profile.min_flow,
            });
        }
        let emergency = role != Role::Clinician;
        let left = if emergency {
            let before = self.s.emergency_keep_ppm;
            let after = u32::try_from(
                u64::from(before)
                    .saturating_mul(u64::from(keep))
                    .checked_div(100)
                    .unwrap_or(0),
            )
            .unwrap_or(0);
            if after < EMERGENCY_FLOOR_PPM {
                // The largest p with before × (100 − p) / 100 ≥ the floor.
                let need = u64::from(EMERGENCY_FLOOR_PPM)
                    .saturating_mul(100)
                    .div_ceil(u64::from(before.max(1)));
                let max_percent = u8::try_from(100u64.saturating_sub(need).min(50)).unwrap_or(0);
                return Err(Refusal::ReductionBound { max_percent });
            }
            after
        } else {
            PPM
        };
        self.change_program(now, &rx, rx.reservoir_volume, role)?;
        self.s.emergency_keep_ppm = left;
        self.log(
            now,
            Event::DoseReduced {
                role,
                percent,
                left_percent: u8::try_from(left.checked_div(PPM / 100).unwrap_or(0)).unwrap_or(100),
            },
        );
        if emergency {
            self.raise(now, AlarmKind::DoseReduced);
        }
        Ok(())
    }

    /// Runs the prescription check against the program in force; returns how many soft
    /// findings the confirmation covered.
    fn check_program(&self, now: Instant, rx: &Prescription, confirm: bool) -> Result<u8, Refusal> {
        let previous = self.s.baseline.then_some(Previous {
            prescription: &self.s.program,
            elapsed: now.saturating_since(self.s.program_since),
        });
        let ctx = Context {
            library: &self.library,
            device: self.profile.device_limits(),
            previous,
            opioid_naive: false,
        };
        // What the pump keeps of the findings (not the whole list: 2 KB of stack).
        let mut findings = Summary::default();
        check::check_each(rx, &ctx, &Patient::default(), &mut findings);
        match findings.worst() {
            Some(Severity::Hard) => Err(Refusal::Prescription {
                hard: true,
                findings: findings.listed,
            }),
            Some(Severity::Soft) if !confirm => Err(Refusal::Prescription {
                hard: false,
                findings: findings.listed,
            }),
            _ => {
                if rx
                    .patient_bolus
                    .is_some_and(|p| usize::from(p.max_per_day) > MAX_PATIENT_BOLUSES_PER_DAY)
                {
                    return Err(Refusal::Invalid(
                        "the pump supports at most 48 patient boluses per 24 h",
                    ));
                }
                Ok(u8::try_from(findings.soft).unwrap_or(u8::MAX))
            }
        }
    }

    // Cold, with large locals: never inlined, so that its frame is not merged into
    // every caller's (a microcontroller's stack holds a few kilobytes).
    #[inline(never)]
    fn apply_program(
        &mut self,
        now: Instant,
        rx: &Prescription,
        confirm: Option<&SoftReason>,
    ) -> Response {
        if rx.contents != self.s.program.contents {
            return Response::Refused(Refusal::ContentsMismatch);
        }
        let soft = match self.check_program(now, rx, confirm.is_some()) {
            Ok(n) => n,
            Err(r) => return Response::Refused(r),
        };
        // Installed as sent, with the volume the reservoir holds.
        if let Err(r) = self.change_program(now, rx, self.s.reservoir, Role::Clinician) {
            return Response::Refused(r);
        }
        self.s.baseline = true;
        self.log_confirmation(now, CommandKind::Program, soft, confirm);
        Response::Accepted
    }

    /// Logs a clinician's confirmation of soft findings with its reason, once the change
    /// it confirmed was made (nothing when no reason was given).
    fn log_confirmation(
        &mut self,
        now: Instant,
        kind: CommandKind,
        findings: u8,
        reason: Option<&SoftReason>,
    ) {
        if let Some(reason) = reason {
            for event in Event::soft_confirmation(kind.code(), findings, reason) {
                self.log(now, event);
            }
        }
    }

    /// The one way to change the program (its schedule, bolus settings or contents):
    /// a clinician's program, a refill, a dose reduction. Makes room in the limiter for
    /// the new drugs (or refuses, changing nothing), then installs `rx`, with the
    /// reservoir volume `reservoir_volume`, copied into the state: a new version,
    /// the outgoing limits kept until the old fluid has left the catheter and for 24 h
    /// after, the change logged. A change by a clinician resets what emergency
    /// reductions may take off and clears their alarm.
    ///
    /// # Errors
    /// [`Refusal::LimiterFull`] when the limiter cannot count a new drug.
    // Cold, with large locals: never inlined, so that its frame is not merged into
    // every caller's (a microcontroller's stack holds a few kilobytes).
    #[inline(never)]
    fn change_program(
        &mut self,
        now: Instant,
        rx: &Prescription,
        reservoir_volume: Volume,
        by: Role,
    ) -> Result<(), Refusal> {
        self.limiter_room(now, &rx.contents)?;
        let keep = self.kept_drugs(&rx.contents);
        self.s.limiter.forget_idle(now, |d| keep.contains(&d));
        self.install(now, rx, reservoir_volume);
        if by == Role::Clinician {
            self.s.emergency_keep_ppm = PPM;
            self.clear(now, AlarmKind::DoseReduced);
        }
        Ok(())
    }

    /// The outgoing fluid of a program change has left the catheter (or there was
    /// none): its limits are kept for 24 h from now.
    fn transition_clearing(&mut self, now: Instant) {
        if !self
            .s
            .fluid
            .volume_until(&self.s.program.contents)
            .is_zero()
        {
            return;
        }
        if let Some(t) = self.s.transition.as_mut() {
            t.clearing = false;
            t.until = now.saturating_add(Duration::from_days(1));
            self.mark_dirty();
        }
    }

    /// Replaces the program in one step; the mode is untouched (a running pump never
    /// stops in between; a faulted one may recover). Only [`Pump::change_program`]
    /// calls it. The prescription is copied in place (`clone_from`): no second 3 KB
    /// prescription on the stack.
    fn install(&mut self, now: Instant, rx: &Prescription, reservoir_volume: Volume) {
        // Keep the outgoing limits (merged with any transition under way).
        let mut old = self
            .s
            .transition
            .take()
            .filter(|t| t.clearing || now < t.until)
            .map(|t| t.limits)
            .unwrap_or_default();
        for c in self.s.program.contents.active() {
            if let Some(l) = self.s.limiter.limits(c.drug) {
                match old.iter_mut().find(|(d, _)| *d == c.drug) {
                    Some((_, o)) => {
                        o.per_day = o.per_day.max(l.per_day);
                        o.per_hour = o.per_hour.max(l.per_hour);
                    }
                    None => {
                        let _ = old.push((c.drug, l));
                    }
                }
            }
        }
        self.s.transition = (!old.is_empty()).then(|| Transition {
            until: now.saturating_add(Duration::from_days(1)),
            clearing: true,
            limits: old,
        });
        self.s.program.clone_from(rx);
        self.s.program.reservoir_volume = reservoir_volume;
        self.s.program_since = now;
        self.s.program_version = self.s.program_version.saturating_add(1);
        self.transition_clearing(now);
        if self.update_limits().is_err() {
            // `change_program` made room first; a failure here is a defect.
            self.enter_fault(now, FaultCode::Limiter);
        }
        if let Mode::Fault { .. } = self.s.mode {
            if self.program_fault().is_none() {
                self.s.mode = Mode::Stopped {
                    reason: StopReason::Other,
                    since: now,
                };
                self.clear(now, AlarmKind::MemoryFault);
            }
        }
        if self.s.clock.is_none() && self.schedule_varies() {
            self.raise(now, AlarmKind::ClockNotSet);
        }
        self.log(
            now,
            Event::ProgramChanged {
                version: self.s.program_version,
            },
        );
        self.mark_dirty();
    }

    #[allow(clippy::too_many_arguments)]
    // Cold, with large locals: never inlined, so that its frame is not merged into
    // every caller's (a microcontroller's stack holds a few kilobytes).
    #[inline(never)]
    fn refill(
        &mut self,
        now: Instant,
        aspirated: Volume,
        added: Volume,
        contents: &Admixture,
        keep_dose: bool,
        bridge: BridgeChoice,
        confirm: Option<&SoftReason>,
        pharmacy_bud: Option<u64>,
    ) -> Response {
        use Response::Refused;
        if self.s.mode == Mode::EndOfService || self.s.battery.state() == BatteryState::EndOfService
        {
            return Refused(Refusal::EndOfService);
        }
        let capacity = self.profile.reservoir_capacity;
        let first_fill = self.s.program.contents.active().next().is_none();
        let beyond_use = match self.beyond_use(now, contents, first_fill, pharmacy_bud) {
            Ok(t) => t,
            Err(r) => return Refused(r),
        };
        if added > capacity {
            return Refused(Refusal::AboveCapacity {
                volume: added,
                capacity,
            });
        }
        let expected = self.s.reservoir;
        let rec = match refill::reconcile(capacity, expected, aspirated, None) {
            Ok(r) => r,
            Err(_) => {
                return Refused(Refusal::AboveCapacity {
                    volume: aspirated,
                    capacity,
                });
            }
        };
        if rec.flagged && confirm.is_none() {
            return Refused(Refusal::Reconciliation(rec));
        }
        // The candidate: the program in force, copied in place (not cloned aside and
        // moved: a prescription is 3 KB), then changed for the new fill.
        let mut rx = Prescription::placeholder();
        rx.clone_from(&self.s.program);
        let old_primary = rx.contents.active().next().copied();
        let new_primary = contents.active().next().copied();
        if keep_dose {
            if let (Some(o), Some(n)) = (old_primary, new_primary) {
                if o.drug == n.drug
                    && o.concentration != n.concentration
                    && !n.concentration.is_zero()
                {
                    // Scaled in place: `rx` is a candidate, dropped on an error.
                    if rx
                        .schedule
                        .scale(o.concentration.raw(), n.concentration.raw())
                        .is_err()
                    {
                        return Refused(Refusal::Invalid(
                            "the flows for the new concentration cannot be computed",
                        ));
                    }
                    if let Some(pb) = rx.patient_bolus.as_mut() {
                        pb.volume = pb
                            .volume
                            .scale(
                                o.concentration.raw(),
                                n.concentration.raw(),
                                Rounding::Nearest,
                            )
                            .unwrap_or(pb.volume);
                    }
                }
            }
        }
        rx.contents = contents.clone();
        rx.reservoir_volume = added;
        let mut soft = u8::from(rec.flagged);
        if contents.active().next().is_some() {
            match self.check_program(now, &rx, confirm.is_some()) {
                Ok(n) => soft = soft.saturating_add(n),
                Err(r) => return Refused(r),
            }
        }
        // Before anything changes: the limiter must be able to count the new drugs.
        if let Err(r) = self.limiter_room(now, contents) {
            return Refused(r);
        }
        self.log(
            now,
            Event::Refill {
                added,
                aspirated,
                expected,
                flagged: rec.flagged,
            },
        );
        self.s.reservoir = added;
        self.s.held_total = self.s.held_total.saturating_add(added);
        // A first fill of a drug-free pump installs a placeholder, not a baseline; a
        // refill of the same drugs keeps the prescription (and its baseline).
        let keep_baseline = self.s.baseline && old_primary.is_some();
        if let Err(r) = self.change_program(now, &rx, added, Role::Clinician) {
            // Room was checked above; nothing of the program changed.
            return Refused(r);
        }
        self.s.baseline = keep_baseline;
        self.log_confirmation(now, CommandKind::Refill, soft, confirm);
        self.clear(now, AlarmKind::EmptyReservoir);
        self.clear(now, AlarmKind::LowReservoir);
        self.s.beyond_use = beyond_use;
        self.clear(now, AlarmKind::BeyondUseDate);
        let old_fluid = self.s.fluid.volume_until(contents);
        self.s.bridging = false;
        if !old_fluid.is_zero() && old_primary.is_some() {
            match bridge {
                BridgeChoice::Automatic => self.s.bridging = true,
                BridgeChoice::Bolus(duration) => {
                    if !duration.is_zero() {
                        self.end_bolus(now);
                        self.begin_bolus(Bolus {
                            kind: BolusKind::Bridge,
                            volume: old_fluid,
                            start: now,
                            duration,
                        });
                        // The bolus and the basal delivered meanwhile (predictive rule).
                        // Counted by the limiter for a day after its last part.
                        self.s.allowance = Some(Allowance {
                            volume: old_fluid.saturating_add(self.basal_during(now, duration)),
                            until: now
                                .saturating_add(duration)
                                .saturating_add(Duration::from_days(1)),
                        });
                        self.refresh_limits(now);
                    }
                }
                BridgeChoice::None => {}
            }
        }
        self.after_volume_change(now);
        Response::Accepted
    }

    /// The beyond-use instant of a fill of `contents` made at `now`: the earliest of
    /// each drug's stability in the reservoir (the first fill of a new pump, diluted or
    /// a commercial strength, from the drug library) and the pharmacy's date.
    fn beyond_use(
        &self,
        now: Instant,
        contents: &Admixture,
        first_fill: bool,
        pharmacy_utc_ms: Option<u64>,
    ) -> Result<Option<Instant>, Refusal> {
        let mut bud: Option<Instant> = None;
        for c in contents.active() {
            let info = self.library.get(c.drug);
            if let Some(st) = info.stability {
                let diluted = !info.strengths.contains(&c.concentration);
                let at = now.saturating_add(st.limit(diluted, first_fill));
                bud = Some(bud.map_or(at, |b| b.min(at)));
            }
        }
        if let Some(utc) = pharmacy_utc_ms {
            let Some(clock) = self.s.clock else {
                return Err(Refusal::Invalid(
                    "set the pump's clock before giving a pharmacy beyond-use date",
                ));
            };
            let now_utc = clock.utc(now);
            if utc <= now_utc {
                return Err(Refusal::Invalid(
                    "the pharmacy's beyond-use date has passed; do not fill this drug",
                ));
            }
            let at = now.saturating_add(Duration::from_ms(utc.saturating_sub(now_utc)));
            bud = Some(bud.map_or(at, |b| b.min(at)));
        }
        Ok(bud)
    }

    fn start_bolus(
        &mut self,
        now: Instant,
        kind: BolusKind,
        volume: Volume,
        duration: Duration,
    ) -> Response {
        use Response::Refused;
        if !self.running() {
            return Refused(Refusal::NotRunning(self.s.mode));
        }
        if self.s.bolus.is_some() {
            return Refused(Refusal::BolusInProgress);
        }
        if volume.is_zero() || duration.is_zero() {
            return Refused(Refusal::Invalid(
                "a bolus needs a volume and a duration above zero",
            ));
        }
        let rate =
            mul_div(volume.raw(), MS_PER_DAY, duration.ms(), Rounding::Up).unwrap_or(u64::MAX);
        let (_, basal_max) = self.s.program.schedule.basal_range();
        if Flow::from_raw(rate).saturating_add(basal_max) > self.profile.max_flow {
            return Refused(Refusal::Invalid(
                "the bolus is faster than the pump's highest flow; lengthen it",
            ));
        }
        let basal = self.basal_during(now, duration);
        if self.s.reservoir < volume.saturating_add(basal) {
            return Refused(Refusal::ReservoirLow);
        }
        // Predictive rule: delivered in the window + this bolus + the basal meanwhile.
        let allowance = if kind == BolusKind::Priming {
            None
        } else {
            // The bolus and the basal delivered meanwhile (predictive rule).
            // The limiter counts the bolus's last part for a day after it is delivered:
            // the allowance lasts as long.
            Some(Allowance {
                volume: volume.saturating_add(basal),
                until: now
                    .saturating_add(duration)
                    .saturating_add(Duration::from_days(1)),
            })
        };
        let saved = self.s.allowance;
        if kind != BolusKind::Patient && allowance.is_some() {
            self.s.allowance = allowance.map(|a| Allowance {
                volume: a
                    .volume
                    .saturating_add(saved.map_or(Volume::ZERO, |s| s.volume)),
                ..a
            });
            self.refresh_limits(now);
        }
        if let Err(r) = self.predict(now, volume.saturating_add(basal)) {
            self.s.allowance = saved;
            self.refresh_limits(now);
            return Refused(r);
        }
        let bolus = Bolus {
            kind,
            volume,
            start: now,
            duration,
        };
        self.begin_bolus(bolus);
        self.log(now, Event::BolusStarted { kind, volume });
        self.mark_dirty();
        Response::BolusAccepted {
            volume,
            ends_at: bolus.end(),
        }
    }

    fn basal_during(&self, now: Instant, duration: Duration) -> Volume {
        nl(self.basal_exact(now, now.saturating_add(duration)))
    }

    /// The limiter's predictive check for pushing `volume` more.
    fn predict(&self, now: Instant, volume: Volume) -> Result<(), Refusal> {
        let d = self
            .s
            .fluid
            .peek(volume, &self.s.program.contents)
            .map_err(|_| Refusal::Invalid("the fluid path cannot predict this volume"))?;
        self.s
            .limiter
            .check(now, d.masses())
            .map_err(Refusal::Limiter)
    }

    fn patient_bolus(&mut self, now: Instant, request_id: u32) -> Response {
        if let Some((_, outcome)) = self
            .s
            .patient_requests
            .iter()
            .find(|(id, _)| *id == request_id)
        {
            // A retry: answer as before, never deliver twice.
            return match *outcome {
                PatientOutcome::Accepted { volume, ends_at } => {
                    Response::BolusAccepted { volume, ends_at }
                }
                PatientOutcome::Refused => Response::Refused(Refusal::Invalid(
                    "this request was refused before; send a new request",
                )),
            };
        }
        let response = self.patient_bolus_new(now);
        let outcome = match &response {
            Response::BolusAccepted { volume, ends_at } => PatientOutcome::Accepted {
                volume: *volume,
                ends_at: *ends_at,
            },
            _ => PatientOutcome::Refused,
        };
        if self.s.patient_requests.is_full() {
            let _ = self.s.patient_requests.pop_front();
        }
        let _ = self.s.patient_requests.push_back((request_id, outcome));
        self.mark_dirty();
        response
    }

    fn patient_bolus_new(&mut self, now: Instant) -> Response {
        use Response::Refused;
        let Some(pb) = self.s.program.patient_bolus else {
            return Refused(Refusal::NoPatientBolus);
        };
        if !self.running() {
            return Refused(Refusal::NotRunning(self.s.mode));
        }
        let day = Duration::from_days(1);
        while self
            .s
            .patient_starts
            .front()
            .is_some_and(|t| now.saturating_since(*t) >= day)
        {
            let _ = self.s.patient_starts.pop_front();
        }
        if let Some(last) = self.s.patient_starts.back() {
            let until = last.saturating_add(pb.lockout);
            if now < until {
                return Refused(Refusal::Lockout { until });
            }
        }
        if self.s.patient_starts.len() >= usize::from(pb.max_per_day) {
            let until = self
                .s
                .patient_starts
                .front()
                .map_or(now, |t| t.saturating_add(day));
            return Refused(Refusal::DailyCount {
                max: pb.max_per_day,
                until,
            });
        }
        let response = self.start_bolus(now, BolusKind::Patient, pb.volume, pb.duration);
        if matches!(response, Response::BolusAccepted { .. }) {
            if self.s.patient_starts.is_full() {
                let _ = self.s.patient_starts.pop_front();
            }
            let _ = self.s.patient_starts.push_back(now);
        }
        response
    }

    // ----- plumbing -------------------------------------------------------------------

    /// Queues a log entry or a tone. Ordinary entries leave [`RESERVED_ACTIONS`]
    /// free for the safe state's own; one that does not fit is lost, and the input's
    /// end ([`Pump::finish`]) puts the pump in its safe state.
    fn push(&mut self, p: Pending) {
        let room = if self.reserve_open {
            ACTION_CAPACITY
        } else {
            ACTION_CAPACITY.saturating_sub(RESERVED_ACTIONS)
        };
        if self.pending.len() >= room || self.pending.push_back(p).is_err() {
            self.dropped_actions = self.dropped_actions.saturating_add(1);
            self.action_lost = true;
        }
    }

    /// The state changed: a record is handed out next (a flag, never a queue entry, so
    /// nothing can turn saving off).
    fn mark_dirty(&mut self) {
        if self.persistence {
            self.persist_needed = true;
        }
    }

    /// Appends to the hash-chained logs. The chain heads are persisted state: an entry
    /// that reaches the log must be followed by a record holding its head, or a restart
    /// would reuse its sequence number.
    fn log(&mut self, now: Instant, event: Event) {
        self.mark_dirty();
        if let Ok(entry) = self.s.events.append(now, event) {
            self.push(Pending::Log(entry));
        }
        if event.is_fault() {
            if let Ok(entry) = self.s.faults.append(now, event) {
                self.push(Pending::FaultLog(entry));
            }
        }
    }
}

/// When a constant `flow` (nL/day) with nothing overlaid brings the credit from `credit`
/// to `threshold` (both nL·ms/day): now if it is there, else after
/// ⌈(threshold − credit) / flow⌉ ms, exactly; `None` for no flow.
#[inline(always)]
fn constant_flow_due(now: Instant, credit: u128, threshold: u128, flow: u64) -> Option<Instant> {
    if credit >= threshold {
        return Some(now);
    }
    if flow == 0 {
        return None;
    }
    let need = threshold.saturating_sub(credit);
    // In 64 bits when the shortfall fits (always, between strokes): the same quotient
    // without a 128-bit division.
    let dt = match u64::try_from(need) {
        Ok(need) => need.div_ceil(flow),
        Err(_) => u64::try_from(need.div_ceil(u128::from(flow))).unwrap_or(u64::MAX),
    };
    Some(now.saturating_add(Duration::from_ms(dt)))
}

/// The earlier of two optional instants; `None` only when both are.
const fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.ms() < a.ms() { b } else { a }),
        (Some(t), None) | (None, Some(t)) => Some(t),
        (None, None) => None,
    }
}

/// Whether `utc_ms` lies between 2020-01-01 and 2100-01-01.
fn clock_sane(utc_ms: u64) -> bool {
    (1_577_836_800_000..4_102_444_800_000).contains(&utc_ms)
}

/// Findings that make a stored program unsafe to run (limits, not confirmations).
fn is_program_limit(f: &Finding) -> bool {
    use thecal_rx::check::Issue;
    matches!(
        f.issue,
        Issue::ConcentrationAboveMax { .. }
            | Issue::DailyDoseAboveMax { .. }
            | Issue::DailyDoseWithBolusesAboveMax { .. }
            | Issue::FlowAbovePumpMax { .. }
            | Issue::ZeroConcentration { .. }
            | Issue::OutOfRange
    )
}

/// The drug mass of a stroke, all drugs, ng: the figure its stroke record carries.
fn mass_ng(masses: &[(DrugId, Mass)]) -> u32 {
    let ng = masses
        .iter()
        .fold(0u64, |acc, (_, m)| acc.saturating_add(m.ng()));
    u32::try_from(ng).unwrap_or(u32::MAX)
}

/// A memory that was never written (all 0x00 or all 0xFF).
fn blank(memory: &[u8]) -> bool {
    memory.iter().all(|b| *b == 0) || memory.iter().all(|b| *b == 0xff)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    extern crate std;
    use std::format;
    use thecal_rx::Concentration;
    use thecal_rx::schedule::Schedule;

    /// A running baclofen pump, with its actions drained.
    fn running() -> Pump {
        let mut p = Pump::new(HardwareProfile::synchromed_class(20), Instant::ZERO);
        let contents = Admixture::single(DrugId::Baclofen, Concentration::from_mcg_per_ml(2000));
        let now = Instant::ZERO;
        let refill = Command::Refill {
            aspirated: Volume::ZERO,
            added: Volume::from_ml(20),
            contents: contents.clone(),
            keep_dose: false,
            bridge: BridgeChoice::None,
            confirm: crate::command::SoftReason::new("confirmed in the test").ok(),
            beyond_use_utc_ms: None,
        };
        assert_eq!(
            p.handle_command(now, Role::Clinician, 0, &refill),
            Response::Accepted
        );
        let rx = Prescription {
            contents,
            schedule: Schedule::continuous(Flow::from_raw(500_000)),
            patient_bolus: None,
            reservoir_volume: Volume::from_ml(20),
        };
        let program = Command::Program {
            prescription: rx,
            confirm_soft: crate::command::SoftReason::new("confirmed in the test").ok(),
        };
        assert_eq!(
            p.handle_command(now, Role::Clinician, 0, &program),
            Response::Accepted
        );
        assert_eq!(
            p.handle_command(now, Role::Clinician, 0, &Command::Resume),
            Response::Accepted
        );
        while p.poll_action().is_some() {}
        p
    }

    fn fault(p: &Pump) -> Option<FaultCode> {
        match p.s.mode {
            Mode::Fault { code } => Some(code),
            _ => None,
        }
    }

    #[test]
    fn self_test_refuses_a_restored_program_beyond_the_hard_limits_pump_025() {
        let mut p = running();
        assert_eq!(p.program_fault(), None);
        // Memory that passed its CRC but holds 5 mg/mL baclofen (above 2000 mcg/mL).
        p.s.program.contents =
            Admixture::single(DrugId::Baclofen, Concentration::from_mg_per_ml(5));
        p.self_test(Instant::ZERO);
        assert_eq!(fault(&p), Some(FaultCode::Program));
        assert!(p.s.alarms.is_active(AlarmKind::MemoryFault));
        assert!(!p.deliverable());
    }

    #[test]
    fn self_test_refuses_a_drug_the_limiter_does_not_count_pump_025() {
        let mut p = running();
        p.s.limiter = Limiter::new();
        p.self_test(Instant::ZERO);
        assert_eq!(fault(&p), Some(FaultCode::Limiter));
    }

    #[test]
    fn invariant_checks_on_every_wake_enter_the_safe_state_pump_025() {
        let mut p = running();
        p.s.reservoir = Volume::from_ml(25);
        p.handle_timeout(Instant::from_ms(1000));
        assert_eq!(fault(&p), Some(FaultCode::Reservoir));
        let mut p = running();
        p.s.fluid = FluidPath::saline(Volume::from_ml(1));
        p.handle_timeout(Instant::from_ms(1000));
        assert_eq!(fault(&p), Some(FaultCode::FluidPath));
        // In the safe state nothing is scheduled but the alarm tones.
        assert!(p.next_stroke.is_none());
        assert_eq!(p.poll_timeout(), p.s.alarms.next_due());
    }

    #[test]
    fn an_insane_clock_at_start_is_a_fault_pump_025() {
        let mut p = running();
        p.s.clock = Some(WallClock {
            set_at: Instant::ZERO,
            utc_ms: 1,
            offset_minutes: 0,
        });
        p.self_test(Instant::ZERO);
        assert_eq!(fault(&p), Some(FaultCode::Clock));
    }

    #[test]
    fn a_clinician_program_clears_a_program_fault_after_the_self_test_pump_025() {
        let mut p = running();
        let good = p.s.program.clone();
        p.s.program.contents =
            Admixture::single(DrugId::Baclofen, Concentration::from_mg_per_ml(5));
        p.self_test(Instant::ZERO);
        assert_eq!(fault(&p), Some(FaultCode::Program));
        p.s.program.contents = good.contents.clone();
        let r = p.handle_command(
            Instant::from_ms(5),
            Role::Clinician,
            0,
            &Command::Program {
                prescription: good,
                confirm_soft: crate::command::SoftReason::new("confirmed in the test").ok(),
            },
        );
        assert_eq!(r, Response::Accepted);
        assert!(matches!(p.s.mode, Mode::Stopped { .. }), "{:?}", p.s.mode);
    }

    /// Runs `p` until `until`, completing every stroke, collecting the logged events.
    fn run_until(p: &mut Pump, until: Instant, events: &mut Vec<Event, 256>) {
        while let Some(t) = p.poll_timeout() {
            if t > until {
                break;
            }
            p.handle_timeout(t);
            loop {
                let stroke = match p.poll_action() {
                    None => break,
                    Some(Action::Log(e)) => {
                        let _ = events.push(e.event);
                        false
                    }
                    Some(a) => a == Action::Stroke,
                };
                if stroke {
                    p.handle_stroke_done(t, true);
                }
            }
        }
    }

    /// A clinician bolus of 100 uL over 60 min on 0.5 mL/day: after 30 min the limiter
    /// vetoes every stroke (its limits cut to 1 ng, as a limit the bolus would exceed).
    /// Half the bolus was delivered; the other half, and the basal, were missed. The log
    /// says 50 uL (within a stroke), not the 100 uL planned.
    #[test]
    fn a_vetoed_bolus_logs_the_volume_it_delivered_pump_029() {
        let mut p = running();
        let mut events = Vec::new();
        // After the saline in the catheter (200 uL at 0.5 mL/day: 9.6 h) has gone.
        let start = Instant::from_ms(12 * 3_600_000);
        run_until(&mut p, start, &mut events);
        let r = p.handle_command(
            start,
            Role::Clinician,
            0,
            &Command::ClinicianBolus {
                volume: Volume::from_ul(100),
                duration: Duration::from_minutes(60),
            },
        );
        assert!(matches!(r, Response::BolusAccepted { .. }), "{r:?}");
        let half = start.saturating_add(Duration::from_minutes(30));
        run_until(&mut p, half, &mut events);
        let tiny = Limits {
            per_hour: Some(Mass::from_raw(1)),
            per_day: Mass::from_raw(1),
        };
        p.s.limiter.set_limits(DrugId::Baclofen, tiny).unwrap();
        run_until(
            &mut p,
            start.saturating_add(Duration::from_minutes(61)),
            &mut events,
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::LimiterVeto { .. }))
        );
        let ends: Vec<u64, 4> = events
            .iter()
            .filter_map(|e| match e {
                Event::BolusEnded { delivered, .. } => Some(delivered.raw()),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 1, "{ends:?}");
        let logged = ends.first().copied().unwrap();
        assert!(
            logged.abs_diff(50_000) <= 250,
            "a bolus vetoed after 30 of 60 min logged {logged} nL delivered (50000 expected)"
        );
    }

    /// An emergency reduction goes through the program choke point, which may bring a
    /// faulted pump out of its safe state: only a clinician's program may do that, so a
    /// reduction of a faulted pump is refused and the fault stands.
    #[test]
    fn a_dose_reduction_never_clears_the_safe_state_pump_026() {
        let mut p = running();
        p.enter_fault(Instant::ZERO, FaultCode::Arithmetic);
        for role in [Role::Emergency, Role::Clinician] {
            let r = p.handle_command(
                Instant::from_ms(5),
                role,
                0,
                &Command::ReduceDose { percent: 10 },
            );
            assert!(
                matches!(r, Response::Refused(Refusal::NotRunning(_))),
                "{r:?}"
            );
            assert_eq!(fault(&p), Some(FaultCode::Arithmetic));
        }
    }

    #[test]
    fn the_pumps_summary_of_a_check_says_what_the_list_of_findings_says_pump_050() {
        let lib = Library::new();
        let ctx = Context {
            library: &lib,
            device: HardwareProfile::synchromed_class(40).device_limits(),
            previous: None,
            opioid_naive: false,
        };
        let with = |drugs: &[(DrugId, &str)], flow: &str, ml: u32| {
            let parts: std::vec::Vec<thecal_rx::dose::Component> = drugs
                .iter()
                .map(|(d, c)| thecal_rx::dose::Component {
                    drug: *d,
                    concentration: c.parse().unwrap(),
                })
                .collect();
            Prescription {
                contents: Admixture::new(&parts).unwrap(),
                schedule: Schedule::continuous(flow.parse().unwrap()),
                patient_bolus: None,
                reservoir_volume: Volume::from_ml(ml),
            }
        };
        let cases = [
            with(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.5 mL/day", 20),
            // Soft only: an off-label mixture.
            with(
                &[
                    (DrugId::Baclofen, "2000 mcg/mL"),
                    (DrugId::Clonidine, "100 mcg/mL"),
                ],
                "0.5 mL/day",
                20,
            ),
            // Hard and soft, more than the eight a refusal lists.
            with(
                &[
                    (DrugId::Morphine, "50 mg/mL"),
                    (DrugId::Bupivacaine, "0 mg/mL"),
                    (DrugId::Clonidine, "0 mcg/mL"),
                    (DrugId::Ziconotide, "0 mcg/mL"),
                ],
                "30 mL/day",
                80,
            ),
        ];
        let mut many = false;
        for rx in &cases {
            let list = check::check(rx, &ctx);
            let mut summary = Summary::default();
            check::check_each(rx, &ctx, &Patient::default(), &mut summary);
            assert_eq!(summary.worst(), list.worst(), "{list:?}");
            let soft = list.iter().filter(|f| f.severity == Severity::Soft).count();
            assert_eq!(summary.soft, soft, "{list:?}");
            let first: std::vec::Vec<Finding> = list.iter().take(8).copied().collect();
            assert_eq!(summary.listed.as_slice(), first.as_slice(), "{list:?}");
            many |= list.len() > 8;
        }
        assert!(many, "a case with more findings than a refusal lists");
    }

    #[test]
    fn the_fresh_program_and_fluid_path_made_in_place_are_the_ones_built_aside_pump_050() {
        let profile = HardwareProfile::synchromed_class(40);
        // A path full of drug, made saline in place: the saline path built by value.
        let drug = Admixture::single(DrugId::Baclofen, "2000 mcg/mL".parse().unwrap());
        let mut path = FluidPath::new(profile.dead_volume(), &drug).unwrap();
        path.reset_saline(profile.dead_volume());
        assert_eq!(path, FluidPath::saline(profile.dead_volume()));
        assert_eq!(
            format!("{path:?}"),
            format!("{:?}", FluidPath::saline(profile.dead_volume()))
        );
        // A running pump's state made fresh in place: the factory program, stopped.
        let mut p = running();
        let profile = *p.profile();
        p.s.reset_fresh(&profile, Instant::ZERO);
        assert_eq!(p.s.program.schedule, Schedule::continuous(profile.min_flow));
        assert_eq!(
            p.s.program.contents,
            Admixture::single(DrugId::Saline, thecal_rx::Concentration::ZERO)
        );
        assert_eq!(p.s.fluid, FluidPath::saline(profile.dead_volume()));
        assert!(matches!(p.s.mode, Mode::Stopped { .. }));
    }

    #[test]
    fn state_size_is_bounded_pump_001() {
        // Fixed-size state: no allocation, the whole core fits a small MCU's RAM.
        assert!(
            core::mem::size_of::<Pump>() < 32 * 1024,
            "{}",
            core::mem::size_of::<Pump>()
        );
    }
}
