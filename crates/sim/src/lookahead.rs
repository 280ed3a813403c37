//! The look ahead (SIM-050 to SIM-055): before a refill, a concentration change, a
//! priming bolus or a program change is sent, run the **real** core forward from the
//! implant's interrogated state with the change applied, and say what reaches the
//! catheter tip day by day, the reservoir, the next refill, the alarms, and every period
//! in which the tip dose leaves the band around the prescribed dose for longer than the
//! clinic allows (a warning the clinician must acknowledge).
//!
//! **Takes** only what a programmer reads over the link ([`Interrogation`]: the status,
//! the program in force and the fluid path reading, [`thecal_pump::reading`]), the pump
//! model, and the change as the very commands the programmer would send. **Never**
//! reads the simulator's or the implant's internals: the core it runs is a twin started
//! from the reading ([`Pump::twin`]).
//!
//! **Event-driven**: it asks the core when it next needs to run and jumps there; each
//! stroke moves one nominal stroke volume of the reservoir's contents through a fluid
//! path started from the reading, and what leaves the tip is counted. No patient, no
//! physics: the nominal pump (no calibration error, stalls or occlusion).

use thecal_link::message::{Answer, Reply};
use thecal_pump::alarm::AlarmKind;
use thecal_pump::command::{Command, CommandKind, Response, Role, Status};
use thecal_pump::core::{Action, Pump, TwinError};
use thecal_pump::event::Event;
use thecal_pump::fluid::FluidPath;
use thecal_pump::profile::HardwareProfile;
use thecal_pump::reading::{PathReading, ReadingError};
use thecal_rx::check::Prescription;
use thecal_rx::dose::mass_in;
use thecal_rx::drug::DrugId;
use thecal_rx::quantity::{MS_PER_DAY, Rounding};
use thecal_rx::{Duration, Instant, Mass, Volume};

/// What a programmer read of the implant: the three answers a look ahead starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrogation {
    /// The status ([`Command::Interrogate`]).
    pub status: Status,
    /// The program in force (`LinkCommand::ReadProgram`).
    pub program: Prescription,
    /// The fluid path and the twin's settings (`LinkCommand::ReadFluidPath`).
    pub path: PathReading,
}

impl Interrogation {
    /// The three reads from the answers a programmer received, in any order.
    ///
    /// # Errors
    /// [`LookaheadError::Answer`] when a read is missing, repeated, or was refused
    /// (its text says why).
    pub fn from_answers(answers: &[Answer]) -> Result<Self, LookaheadError> {
        let (mut status, mut program, mut path) = (None, None, None);
        for a in answers {
            match &a.reply {
                Reply::Status(s) if status.is_none() => status = Some(s.clone()),
                Reply::Program(p) if program.is_none() => program = Some(p.clone()),
                Reply::FluidPath(r) if path.is_none() => path = Some(r.clone()),
                Reply::Refused { text, .. } => {
                    return Err(LookaheadError::Answer(format!(
                        "answer {} was a refusal: {text}",
                        a.command_id
                    )));
                }
                other => {
                    return Err(LookaheadError::Answer(format!(
                        "answer {} is not a status, program or fluid path read, or repeats \
                         one: {other:?}",
                        a.command_id
                    )));
                }
            }
        }
        let missing = |what: &str| {
            LookaheadError::Answer(format!(
                "no {what} among the answers; the look ahead needs the status \
                 (Interrogate), the program (ReadProgram) and the fluid path (ReadFluidPath)"
            ))
        };
        Ok(Interrogation {
            status: status.ok_or_else(|| missing("status"))?,
            program: program.ok_or_else(|| missing("program"))?,
            path: path.ok_or_else(|| missing("fluid path"))?,
        })
    }

    /// The same three reads taken from a core in this process (a virtual implant, a
    /// test): what the implant's telemetry would answer.
    ///
    /// # Errors
    /// [`LookaheadError::Reading`] when the path cannot be read.
    pub fn from_pump(pump: &Pump) -> Result<Self, LookaheadError> {
        Ok(Interrogation {
            status: pump.status(),
            program: pump.program().clone(),
            path: pump.path_reading().map_err(LookaheadError::Reading)?,
        })
    }
}

/// How far to look and what counts as a dose excursion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Days to look ahead (1 to 90; default 14).
    pub days: u32,
    /// A tip dose below this fraction of the prescribed is low (default 0.8).
    pub low: f64,
    /// A tip dose above this fraction of the prescribed is high (default 1.2).
    pub high: f64,
    /// A low or high period longer than this is a warning to acknowledge (default 2 h).
    pub longer_than: Duration,
    /// The interval over which tip and prescribed doses are compared (default 1 h),
    /// widened when fewer than [`MIN_STROKES_PER_BIN`] strokes would fall in it.
    pub resolution: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            days: 14,
            low: 0.8,
            high: 1.2,
            longer_than: Duration::from_hours(2),
            resolution: Duration::from_hours(1),
        }
    }
}

/// The fewest strokes a comparison interval holds at the program's mean flow: with
/// fewer, the dose in one interval swings by more than 5 % from stroke quantisation
/// alone.
pub const MIN_STROKES_PER_BIN: u64 = 20;

/// Why a look ahead could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookaheadError {
    /// An option is out of range; the text names it and what is allowed.
    Option(String),
    /// The answers are not the three reads the look ahead needs.
    Answer(String),
    /// The fluid path reading is not a path.
    Reading(ReadingError),
    /// The twin could not be brought to the read state.
    Twin(Box<TwinError>),
    /// The twin refused a command of the change: the implant would refuse it too.
    Refused {
        /// The command's position in the change, from 0.
        index: usize,
        /// Its kind.
        kind: CommandKind,
        /// The core's reason.
        reason: String,
    },
}

impl std::fmt::Display for LookaheadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookaheadError::Option(s) | LookaheadError::Answer(s) => f.write_str(s),
            LookaheadError::Reading(e) => write!(f, "fluid path reading: {e}"),
            LookaheadError::Twin(e) => write!(f, "{e}"),
            LookaheadError::Refused {
                index,
                kind,
                reason,
            } => write!(
                f,
                "change[{index}] ({}) would be refused by the implant: {reason}",
                kind.name()
            ),
        }
    }
}

impl std::error::Error for LookaheadError {}

/// One drug's dose over one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrugDose {
    /// The drug.
    pub drug: DrugId,
    /// What left the catheter tip.
    pub tip: Mass,
    /// What the program prescribes (its basal schedule at its concentration).
    pub prescribed: Mass,
}

/// One day of the look ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// Day number, from 0.
    pub day: u32,
    /// Its start (pump time).
    pub start: Instant,
    /// Each drug that was prescribed or reached the tip, in library order.
    pub doses: Vec<DrugDose>,
    /// The reservoir at the day's end (the pump's estimate, which is the truth here).
    pub reservoir_end: Volume,
}

/// The reservoir at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservoirPoint {
    /// When (pump time).
    pub at: Instant,
    /// Volume.
    pub volume: Volume,
}

/// An alarm the twin raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmForecast {
    /// When (pump time); the start for an alarm already active when interrogated.
    pub at: Instant,
    /// Which.
    pub kind: AlarmKind,
    /// It was active at the interrogation already.
    pub already_active: bool,
}

/// Low or high.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Below [`Options::low`] of the prescribed.
    Low,
    /// Above [`Options::high`] of the prescribed.
    High,
}

/// A period in which the tip dose stayed outside the band for longer than
/// [`Options::longer_than`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Excursion {
    /// The drug.
    pub drug: DrugId,
    /// Low or high.
    pub direction: Direction,
    /// From (pump time, the start of the first interval out of the band).
    pub from: Instant,
    /// To (the end of the last interval out of the band).
    pub to: Instant,
    /// The tip dose over the whole period as a fraction of the prescribed.
    pub fraction: f64,
}

impl Excursion {
    /// How long it lasts.
    pub fn duration(&self) -> Duration {
        self.to.saturating_since(self.from)
    }
}

/// What the look ahead predicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The interrogation's instant (pump time), where day 0 starts.
    pub start: Instant,
    /// The implant's answer to each command of the change, in order.
    pub responses: Vec<Response>,
    /// Day by day.
    pub days: Vec<Day>,
    /// The reservoir at the start and at the end of every comparison interval.
    pub reservoir: Vec<ReservoirPoint>,
    /// The comparison interval used.
    pub resolution: Duration,
    /// The pump's next refill date after the change (its own rule: the low-reservoir
    /// alarm at the labelled worst case, or the fill's beyond-use date).
    pub next_refill: Option<Instant>,
    /// Alarms active at the start, then those the twin raised, in order of time.
    pub alarms: Vec<AlarmForecast>,
    /// Dose excursions longer than [`Options::longer_than`].
    pub excursions: Vec<Excursion>,
}

impl Forecast {
    /// A warning the clinician must acknowledge before the change is sent: a dose
    /// excursion, or an alarm the change would raise.
    pub fn needs_acknowledgement(&self) -> bool {
        !self.excursions.is_empty() || self.alarms.iter().any(|a| !a.already_active)
    }

    /// The tip dose of `drug` on each day.
    pub fn tip_per_day(&self, drug: DrugId) -> Vec<Mass> {
        self.days
            .iter()
            .map(|d| {
                d.doses
                    .iter()
                    .find(|x| x.drug == drug)
                    .map_or(Mass::ZERO, |x| x.tip)
            })
            .collect()
    }
}

/// Runs the look ahead: a twin of `profile` started from `state`, `change` sent at the
/// interrogation's instant as a clinician would send it, then `options.days` days.
///
/// # Errors
/// An option out of range, a reading that is not a path, a twin that cannot be brought
/// to the read state, or a command of the change the implant would refuse.
pub fn look_ahead(
    profile: HardwareProfile,
    state: &Interrogation,
    change: &[Command],
    options: &Options,
) -> Result<Forecast, LookaheadError> {
    check_options(options)?;
    let pump = Pump::twin(profile, &state.status, &state.program, &state.path)
        .map_err(|e| LookaheadError::Twin(Box::new(e)))?;
    let truth = FluidPath::from_segments(state.path.dead_volume, &state.path.segments)
        .map_err(LookaheadError::Reading)?;
    let active: Vec<AlarmKind> = state.status.alarms.iter().map(|a| a.kind).collect();
    run_forward(pump, truth, &active, change, options)
}

fn check_options(o: &Options) -> Result<(), LookaheadError> {
    let bad = |s: &str| Err(LookaheadError::Option(s.to_string()));
    if !(1..=90).contains(&o.days) {
        return bad("days must be 1 to 90");
    }
    if !(o.low.is_finite() && o.low > 0.0 && o.low < 1.0) {
        return bad("low must be a fraction above 0 and below 1 (e.g. 0.8)");
    }
    if !(o.high.is_finite() && o.high > 1.0 && o.high < 10.0) {
        return bad("high must be a fraction above 1 and below 10 (e.g. 1.2)");
    }
    if o.longer_than.is_zero() || o.longer_than > Duration::from_days(7) {
        return bad("longer_than must be above zero and at most 7 days");
    }
    if o.resolution < Duration::from_minutes(1) || o.resolution > Duration::from_days(1) {
        return bad("resolution must be 1 minute to 1 day");
    }
    Ok(())
}

/// The drugs counted, in library order.
const DRUGS: [DrugId; 9] = DrugId::ALL;

fn slot(drug: DrugId) -> usize {
    DRUGS.iter().position(|d| *d == drug).unwrap_or(0)
}

/// Runs `pump` forward with `truth` as its fluid path; the core of [`look_ahead`].
fn run_forward(
    mut pump: Pump,
    mut truth: FluidPath,
    active: &[AlarmKind],
    change: &[Command],
    o: &Options,
) -> Result<Forecast, LookaheadError> {
    let start = pump.last_input();
    let mut alarms: Vec<AlarmForecast> = active
        .iter()
        .map(|&kind| AlarmForecast {
            at: start,
            kind,
            already_active: true,
        })
        .collect();
    let mut current = active.to_vec();
    let mut responses = Vec::with_capacity(change.len());
    let mut strokes_pending = 0u32;
    for (index, cmd) in change.iter().enumerate() {
        let r = pump.handle_command(start, Role::Clinician, 0, cmd);
        if let Response::Refused(reason) = &r {
            return Err(LookaheadError::Refused {
                index,
                kind: cmd.kind(),
                reason: reason.to_string(),
            });
        }
        responses.push(r);
        strokes_pending += drain(&mut pump, start, &mut alarms, &mut current);
    }
    let stroke_volume = pump.profile().stroke_volume;
    let end = start.saturating_add(Duration::from_days(u64::from(o.days)));
    let resolution = resolution(&pump, o.resolution);
    let mut bins = Bins::new(start, resolution, end);
    let mut t = start;
    let mut reservoir = vec![ReservoirPoint {
        at: start,
        volume: pump.status().reservoir,
    }];
    let next_refill = pump.status().next_refill;
    loop {
        while strokes_pending > 0 {
            strokes_pending -= 1;
            stroke(&mut pump, &mut truth, t, stroke_volume, &mut bins)?;
            strokes_pending += drain(&mut pump, t, &mut alarms, &mut current);
        }
        let next = match pump.poll_timeout() {
            Some(n) if n <= end => n.max(t),
            _ => end,
        };
        bins.close_until(next, &pump, &mut reservoir);
        if next >= end {
            break;
        }
        t = next;
        pump.handle_timeout(t);
        strokes_pending += drain(&mut pump, t, &mut alarms, &mut current);
    }
    bins.close_until(end, &pump, &mut reservoir);
    let excursions = bins.excursions(o);
    let days = bins.days(start, o.days, &reservoir);
    Ok(Forecast {
        start,
        responses,
        days,
        reservoir,
        resolution,
        next_refill,
        alarms,
        excursions,
    })
}

/// The comparison interval: `wanted`, widened to hold [`MIN_STROKES_PER_BIN`] strokes
/// at the program's mean flow, in whole minutes.
fn resolution(pump: &Pump, wanted: Duration) -> Duration {
    let mean = pump.program().schedule.mean_daily().raw().max(1);
    let stroke = pump.profile().stroke_volume.raw();
    let need_ms = u128::from(stroke) * u128::from(MIN_STROKES_PER_BIN) * u128::from(MS_PER_DAY)
        / u128::from(mean);
    let need_ms = u64::try_from(need_ms).unwrap_or(MS_PER_DAY).min(MS_PER_DAY);
    let minute = 60_000;
    let need = need_ms.div_ceil(minute) * minute;
    Duration::from_ms(wanted.ms().max(need))
}

/// Carries out the actions after an input: counts the strokes to make, records each
/// alarm raised that is not already active (`current`: the kinds active now). Returns
/// the strokes issued.
fn drain(
    pump: &mut Pump,
    t: Instant,
    alarms: &mut Vec<AlarmForecast>,
    current: &mut Vec<AlarmKind>,
) -> u32 {
    let mut strokes = 0;
    while let Some(a) = pump.poll_action() {
        match a {
            Action::Stroke => strokes += 1,
            Action::Log(e) => match e.event {
                Event::AlarmRaised(kind) if !current.contains(&kind) => {
                    current.push(kind);
                    alarms.push(AlarmForecast {
                        at: t,
                        kind,
                        already_active: false,
                    });
                }
                Event::AlarmCleared(kind) => current.retain(|k| *k != kind),
                _ => {}
            },
            _ => {}
        }
    }
    strokes
}

/// One nominal stroke: the core's report, the reservoir's contents through the path.
fn stroke(
    pump: &mut Pump,
    truth: &mut FluidPath,
    t: Instant,
    stroke_volume: Volume,
    bins: &mut Bins,
) -> Result<(), LookaheadError> {
    // The contents in the reservoir are those of the program in force (a refill
    // installs them).
    let out = truth
        .push(stroke_volume, &pump.program().contents)
        .map_err(|e| LookaheadError::Answer(format!("fluid path: {e}")))?;
    for (drug, m) in out.masses() {
        bins.add_tip(t, *drug, *m);
    }
    pump.handle_stroke_done(t, true);
    Ok(())
}

/// Tip and prescribed masses per comparison interval and drug.
struct Bins {
    width: Duration,
    end: Instant,
    /// The start of the interval being filled.
    open_from: Instant,
    open_tip: [u64; 9],
    /// Closed intervals: (from, to, tip ng per drug, prescribed ng per drug).
    closed: Vec<(Instant, Instant, [u64; 9], [u64; 9])>,
}

impl Bins {
    fn new(start: Instant, width: Duration, end: Instant) -> Self {
        Bins {
            width,
            end,
            open_from: start,
            open_tip: [0; 9],
            closed: Vec::new(),
        }
    }

    fn open_to(&self) -> Instant {
        self.open_from.saturating_add(self.width).min(self.end)
    }

    fn add_tip(&mut self, t: Instant, drug: DrugId, m: Mass) {
        let _ = t;
        let i = slot(drug);
        self.open_tip[i] = self.open_tip[i].saturating_add(m.raw());
    }

    /// Closes every interval that ends at or before `t` (nothing happened in between:
    /// the core asked to be woken no earlier), with the program's prescribed masses.
    fn close_until(&mut self, t: Instant, pump: &Pump, reservoir: &mut Vec<ReservoirPoint>) {
        while self.open_from < self.end && self.open_to() <= t {
            let (from, to) = (self.open_from, self.open_to());
            let prescribed = prescribed(pump, from, to);
            self.closed
                .push((from, to, std::mem::take(&mut self.open_tip), prescribed));
            reservoir.push(ReservoirPoint {
                at: to,
                volume: pump.status().reservoir,
            });
            self.open_from = to;
        }
    }

    /// Runs of intervals out of the band, per drug, longer than allowed.
    fn excursions(&self, o: &Options) -> Vec<Excursion> {
        let mut out = Vec::new();
        for (i, &drug) in DRUGS.iter().enumerate() {
            let mut run: Option<(Direction, Instant, Instant, u64, u64)> = None;
            let mut flush = |run: &mut Option<(Direction, Instant, Instant, u64, u64)>| {
                if let Some((direction, from, to, tip, rx)) = run.take() {
                    if to.saturating_since(from) > o.longer_than {
                        out.push(Excursion {
                            drug,
                            direction,
                            from,
                            to,
                            fraction: tip as f64 / rx.max(1) as f64,
                        });
                    }
                }
            };
            for &(from, to, tip, rx) in &self.closed {
                let (tip, rx) = (tip[i], rx[i]);
                let dir = if rx == 0 {
                    None
                } else if (tip as f64) < o.low * rx as f64 {
                    Some(Direction::Low)
                } else if (tip as f64) > o.high * rx as f64 {
                    Some(Direction::High)
                } else {
                    None
                };
                match (dir, run.as_mut()) {
                    (Some(d), Some(r)) if r.0 == d => {
                        r.2 = to;
                        r.3 += tip;
                        r.4 += rx;
                    }
                    (Some(d), _) => {
                        flush(&mut run);
                        run = Some((d, from, to, tip, rx));
                    }
                    (None, _) => flush(&mut run),
                }
            }
            flush(&mut run);
        }
        out.sort_by_key(|e| e.from);
        out
    }

    /// Day totals (an interval is counted in the day it starts in).
    fn days(&self, start: Instant, n: u32, reservoir: &[ReservoirPoint]) -> Vec<Day> {
        (0..n)
            .map(|day| {
                let from = start.saturating_add(Duration::from_days(u64::from(day)));
                let to = from.saturating_add(Duration::from_days(1));
                let mut tip = [0u64; 9];
                let mut rx = [0u64; 9];
                for (_, _, t, p) in self.closed.iter().filter(|c| c.0 >= from && c.0 < to) {
                    for i in 0..9 {
                        tip[i] += t[i];
                        rx[i] += p[i];
                    }
                }
                let doses = DRUGS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| tip[*i] > 0 || rx[*i] > 0)
                    .map(|(i, &drug)| DrugDose {
                        drug,
                        tip: Mass::from_raw(tip[i]),
                        prescribed: Mass::from_raw(rx[i]),
                    })
                    .collect();
                let reservoir_end = reservoir
                    .iter()
                    .rev()
                    .find(|p| p.at <= to)
                    .map_or(Volume::ZERO, |p| p.volume);
                Day {
                    day,
                    start: from,
                    doses,
                    reservoir_end,
                }
            })
            .collect()
    }
}

/// The program's prescribed mass of each drug in `[from, to)`: its basal schedule (by
/// local time when the clock is set, else its mean daily volume) at its concentration.
fn prescribed(pump: &Pump, from: Instant, to: Instant) -> [u64; 9] {
    let program = pump.program();
    let dt = to.saturating_since(from).ms();
    let volume = match (program.schedule.constant_flow(), pump.clock()) {
        (Some(flow), _) => scale(flow.raw(), dt),
        (None, Some(clock)) => program
            .schedule
            .volume_between(clock.local(from), clock.local(to)),
        (None, None) => scale(program.schedule.mean_daily().raw(), dt),
    };
    let mut out = [0u64; 9];
    for c in program.contents.active() {
        out[slot(c.drug)] =
            mass_in(c.concentration, volume, Rounding::Nearest).map_or(u64::MAX, |m| m.raw());
    }
    out
}

/// `per_day` nL/day over `ms`.
fn scale(per_day: u64, ms: u64) -> Volume {
    let v = u128::from(per_day) * u128::from(ms) / u128::from(MS_PER_DAY);
    Volume::from_raw(u64::try_from(v).unwrap_or(u64::MAX))
}
