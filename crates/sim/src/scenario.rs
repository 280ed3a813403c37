//! Scenarios: a TOML file that says who the patient is, what device and drug, what
//! happens when, and what must come out. The same file is a test. The format is
//! documented field by field in `docs/scenarios.md`.
//!
//! This module turns the text into a typed [`Scenario`] (every quantity in clinical
//! units, parsed by thecal-rx; every error names its field) and judges a finished run
//! against the scenario's expectations ([`judge`]).

use serde::Deserialize;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::Prescription;
use thecal_rx::{Concentration, Duration, Flow, MassRate, Volume};

use crate::prescription_file::{FileError, ProgramSpec, RxSpec, quantity};
use crate::result::{RunResult, Verdict};

fn err(field: impl Into<String>, message: impl std::fmt::Display) -> FileError {
    FileError {
        field: field.into(),
        message: message.to_string(),
    }
}

/// The device under simulation.
#[derive(Debug, Clone)]
pub enum Device {
    /// A programmable pump run by the real core.
    Programmable(HardwareProfile),
    /// A gas-driven constant-rate pump (no electronics) of this nominal flow.
    ConstantRate(Flow),
}

/// The patient's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Severe spasticity (baclofen).
    Spasticity,
    /// Chronic pain.
    Pain,
}

/// How the patient uses the bolus button.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pressing {
    /// Never.
    Never,
    /// When symptom control falls below `threshold`, about `per_hour` presses an hour.
    WhenPoor {
        /// Effect below which the patient presses.
        threshold: f64,
        /// Presses per hour while below.
        per_hour: f64,
    },
    /// Every minute, all the time (a test of lockout and daily maximum).
    EveryMinute,
}

/// A refill error a clinician can make.
#[derive(Debug, Clone, PartialEq)]
pub enum RefillError {
    /// The drug went into the tissue pocket instead of the reservoir.
    PocketFill,
    /// The drug was injected through the catheter access port, straight to the CSF.
    AccessPort,
    /// This concentration was entered instead of the true one (corrected if refused).
    WrongConcentration(Concentration),
    /// This volume was entered instead of the true one (corrected if refused).
    WrongVolume(Volume),
}

/// What happens at a point of the timeline.
#[derive(Debug, Clone)]
pub enum Event {
    /// Aspirate, refill, and tell the pump.
    Refill {
        /// Volume injected.
        volume: Volume,
        /// New concentration of the primary drug (default: unchanged).
        concentration: Option<Concentration>,
        /// Keep the daily dose when the concentration changes.
        keep_dose: bool,
        /// Bridge choice: `automatic`, `none`, or a bolus over this duration.
        bridge: thecal_pump::command::BridgeChoice,
        /// A human error.
        error: Option<RefillError>,
        /// Skip this refill (a missed appointment).
        missed: bool,
    },
    /// Replace the program (same drugs).
    Program(Box<Prescription>),
    /// Change the continuous dose of the primary drug.
    Titrate(MassRate),
    /// A clinician bolus.
    ClinicianBolus {
        /// Volume.
        volume: Volume,
        /// Duration.
        duration: Duration,
    },
    /// A priming bolus.
    Priming(Duration),
    /// One press of the patient's bolus button.
    PatientPress,
    /// An MRI scan of this length (valve pumps are put in MRI mode first).
    Mri(Duration),
    /// Catheter occlusion (fraction of flow that cannot pass).
    Occlusion(f64),
    /// A granuloma that grows to `grow_to` occlusion over `over`.
    Granuloma {
        /// Final occlusion.
        grow_to: f64,
        /// Growth time.
        over: Duration,
    },
    /// A leak: this fraction goes to tissue.
    Leak(f64),
    /// Body temperature for a while.
    Fever {
        /// °C.
        temperature_c: f64,
        /// How long.
        duration: Duration,
    },
    /// A flight in an 8,000 ft cabin, or an unpressurised one at this altitude.
    Flight {
        /// Cabin altitude, m.
        altitude_m: f64,
        /// How long.
        duration: Duration,
    },
    /// A dive (or hyperbaric therapy) at this depth.
    Dive {
        /// Depth, m of sea water.
        depth_m: f64,
        /// How long.
        duration: Duration,
    },
    /// Power cut at the `write`-th persistence write from now (1 = the next), tearing it.
    PowerCut {
        /// Which write.
        write: u32,
    },
    /// The clinician stops the pump.
    Stop,
    /// The clinician resumes.
    Resume,
    /// The pump is replaced (battery at end of service): a new pump, refilled and
    /// programmed as before.
    ReplacePump,
    /// A catheter revision: the clinician stops the pump, the surgeon replaces the
    /// catheter (the old one's fluid leaves with it; the new one fills with CSF), the
    /// new catheter is recorded and the pump resumed. Priming is a separate event.
    CatheterRevision(thecal_pump::catheter::CatheterRecord),
    /// An attack on the telemetry, or the programmer wand ([`crate::radio`]).
    Radio(crate::radio::Attack),
    /// The clinician sets the pump's wall clock this far off the true time (zero: right;
    /// negative: back), with the core's `SetClock` (SIM-068).
    SetClock {
        /// Pump clock minus true time, ms.
        shift_ms: i64,
    },
    /// The patient's UTC offset changes: daylight saving, travel (SIM-068).
    TimeZone {
        /// The new offset, minutes (−720 to +840).
        offset_minutes: i16,
        /// The programmer tells the pump (`SetClock` with the true UTC and the offset).
        tell_pump: bool,
    },
}

/// What must come out of the run.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// The limiter never vetoes.
    NoLimiterVeto,
    /// The limiter vetoes at least once.
    LimiterVeto,
    /// The alarm is raised within the window.
    Alarm {
        /// Alarm name (e.g. `LowReservoir`).
        alarm: String,
        /// Not before.
        after: Duration,
        /// Before.
        before: Duration,
    },
    /// The alarm is never raised.
    NoAlarm(String),
    /// The tip dose never stays below `fraction` of the prescribed for longer than
    /// `longer_than` (within the window).
    TipDoseNotBelow {
        /// Fraction of the prescribed dose.
        fraction: f64,
        /// Longest allowed stretch below.
        longer_than: Duration,
        /// Window start.
        after: Duration,
    },
    /// The tip dose does stay below `fraction` for longer than `longer_than` (to show a
    /// hazard without a control).
    TipDoseBelow {
        /// Fraction.
        fraction: f64,
        /// Stretch.
        longer_than: Duration,
    },
    /// The tip dose stays above `fraction` of the prescribed for longer than
    /// `longer_than` (a constant-rate pump in a fever or a flight).
    TipDoseAbove {
        /// Fraction.
        fraction: f64,
        /// Stretch.
        longer_than: Duration,
    },
    /// At the end, the pump's reservoir estimate is within this many mL of the truth.
    ReservoirTracks(f64),
    /// Total delivered at the tip is within `percent` of prescribed.
    DeliveredWithin(f64),
    /// The baclofen withdrawal risk is flagged at some time.
    WithdrawalFlagged,
    /// It never is.
    NoWithdrawal,
    /// The opioid overdose risk is flagged at some time.
    OverdoseFlagged,
    /// It never is.
    NoOverdose,
    /// The opioid withdrawal risk is flagged at some time (SIM-072).
    OpioidWithdrawalFlagged,
    /// It never is.
    NoOpioidWithdrawal,
    /// The clonidine withdrawal (rebound hypertension) risk is flagged at some time
    /// (SIM-072).
    ClonidineWithdrawalFlagged,
    /// It never is.
    NoClonidineWithdrawal,
    /// At least one command of this kind is refused.
    CommandRefused(String),
    /// At most this many patient boluses are given.
    BolusesAtMost(u64),
    /// A refill reconciliation is flagged.
    ReconciliationFlagged,
    /// The pump reaches end of service.
    EndOfService,
    /// The elective-replacement indicator is raised, then end of service is reached at
    /// least this long after it (the labelled replacement interval).
    EriBeforeEos(Duration),
    /// The implant radio's costliest day stays below `percent` of its daily budget.
    RadioEnergyBelow(f64),
    /// The daily budget puts the radio to sleep at least once.
    RadioAsleep,
    /// The radio never goes to sleep.
    RadioNeverAsleep,
    /// The radio listens at the end of the run (woken by the wand if it slept).
    RadioAwakeAtEnd,
    /// At least this many boluses were accepted over the link.
    LinkBolusesAtLeast(u64),
    /// At most this many boluses were accepted over the link.
    LinkBolusesAtMost(u64),
    /// What reached the tip, less the patient boluses given (at the prescription's bolus
    /// volume), is within `percent` of the prescribed basal: therapy unaffected.
    BasalWithin(f64),
    /// The opposite of the inner expectation (`not = true`; SIM-069).
    Not(Box<Expectation>),
    /// The alarm was raised with this priority (`high`, `medium`, `low`; SIM-069).
    AlarmPriority {
        /// Alarm name.
        alarm: String,
        /// Priority, lower case.
        priority: String,
    },
    /// The first `then` raised after the first `alarm` comes at least `at_least` and at
    /// most `at_most` after it (SIM-069).
    AlarmGap {
        /// The first alarm.
        alarm: String,
        /// The alarm that follows it.
        then: String,
        /// Shortest allowed gap.
        at_least: Option<Duration>,
        /// Longest allowed gap.
        at_most: Option<Duration>,
    },
    /// At most this many patient boluses start in any rolling 24 hours (SIM-069).
    BolusesIn24hAtMost(u64),
    /// After `after`, every sample's tip dose is within ±`percent` % of the intended
    /// dose (samples with no intended dose aside; SIM-069).
    TipDoseWithin {
        /// Band, percent.
        percent: f64,
        /// Window start.
        after: Duration,
    },
    /// At the end the implant runs this firmware version and/or security counter (the
    /// updater's own status; SIM-063).
    FirmwareRunning {
        /// The version.
        version: Option<thecal_update::Version>,
        /// The security counter.
        security_counter: Option<u32>,
    },
    /// The pump's event log holds an update step the updater refused with this code
    /// (SIM-063).
    UpdateRefused(u8),
    /// The pump's event log holds a denied handshake or frame with this reason code
    /// (SIM-063).
    HandshakeDenied(u8),
    /// The radio energy the attackers' frames cost stays below this, µJ (SIM-064).
    AttackEnergyBelow(u64),
    /// Therapy is never interrupted (tip dose below `fraction` of the intended dose)
    /// for longer than `longer_than` (SIM-067).
    InterruptionAtMost {
        /// Longest allowed interruption.
        longer_than: Duration,
        /// Below this fraction of the intended dose therapy counts as interrupted.
        fraction: f64,
    },
}

/// A scenario, typed and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// RNG seed.
    pub seed: u64,
    /// Simulated duration.
    pub duration: Duration,
    /// Sampling interval of the timeline.
    pub sample_every: Duration,
    /// Device.
    pub device: Device,
    /// Battery capacity override, µJ.
    pub battery_uj: Option<u64>,
    /// Pump calibration bias (fraction, e.g. 0.01) instead of a sampled one.
    pub calibration_bias: Option<f64>,
    /// Per-stroke coefficient of variation.
    pub stroke_cv: f64,
    /// Clock drift, ppm.
    pub drift_ppm: f64,
    /// Persist records (needed for power cuts; off makes long runs faster).
    pub persistence: bool,
    /// The catheter is primed at the start (otherwise it holds saline).
    pub primed: bool,
    /// The implanted catheter (`None`: the profile's nominal catheter,
    /// [`thecal_pump::profile::HardwareProfile::nominal_catheter`]).
    pub catheter: Option<thecal_pump::catheter::CatheterRecord>,
    /// The clinician sets the pump's clock at the start.
    pub clock_set: bool,
    /// Condition.
    pub condition: Condition,
    /// Spinal injury at T6 or above (higher withdrawal risk).
    pub high_risk: bool,
    /// Bolus behaviour.
    pub pressing: Pressing,
    /// Initial prescription (drugs, schedule, patient bolus).
    pub prescription: Prescription,
    /// Initial fill.
    pub fill: Volume,
    /// Timeline, sorted by time.
    pub events: Vec<(Duration, Event)>,
    /// Expectations.
    pub expectations: Vec<(String, Expectation)>,
    /// The implant's radio, when the patient's remote talks to it over the link
    /// (`telemetry = true` or a `[radio]` table); `None`: presses reach the core directly.
    pub radio: Option<crate::radio::RadioConfig>,
    /// The implant's firmware and its updater (`[firmware]`, SIM-063); `None`: the
    /// implant takes no update.
    pub firmware: Option<crate::radio::FirmwareConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSpec {
    /// The hardware model, named as everywhere in thecal (`kind` is the older name).
    #[serde(alias = "kind")]
    model: String,
    nominal_flow: Option<String>,
    battery: Option<String>,
    calibration_bias: Option<f64>,
    stroke_cv: Option<f64>,
    drift_ppm: Option<f64>,
    persistence: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PatientSpec {
    condition: Option<String>,
    high_risk: Option<bool>,
    pressing: Option<String>,
    press_threshold: Option<f64>,
    presses_per_hour: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CatheterSpec {
    primed: Option<bool>,
    /// A catalogue model, by code or name ([`thecal_pump::catheter::CATALOGUE`]).
    model: Option<String>,
    /// Implanted length after trimming: "45 cm" or "450 mm".
    length: Option<String>,
}

/// The `[catheter]` table's model and length as a record.
fn catheter_record(
    spec: &CatheterSpec,
) -> Result<Option<thecal_pump::catheter::CatheterRecord>, FileError> {
    match (&spec.model, &spec.length) {
        (None, None) => Ok(None),
        (Some(m), Some(l)) => catheter_of(m, l, "catheter").map(Some),
        _ => Err(err(
            "catheter",
            "give both `model` and `length` (e.g. model = \"1\", length = \"45 cm\")",
        )),
    }
}

/// A catalogue catheter `model` (code or name) trimmed to `length` ("45 cm", "450 mm").
fn catheter_of(
    model: &str,
    length: &str,
    field: &str,
) -> Result<thecal_pump::catheter::CatheterRecord, FileError> {
    use thecal_pump::catheter::{CATALOGUE, CatheterRecord, model_named};
    let Some(m) = model_named(model) else {
        let known: Vec<String> = CATALOGUE
            .iter()
            .map(|m| format!("{} ({})", m.code, m.name))
            .collect();
        return Err(err(
            format!("{field}.model"),
            format!("unknown model '{model}'; known: {}", known.join(", ")),
        ));
    };
    let mm = thecal_pump::catheter::parse_length_mm(length).map_err(|why| {
        err(
            format!("{field}.length"),
            format!(
                "'{length}': {}; give the length with its unit (e.g. \"45 cm\" or \"450 mm\")",
                why.message()
            ),
        )
    })?;
    let record = CatheterRecord::of_model(m, mm);
    record
        .validate()
        .map_err(|e| err(format!("{field}.length"), e.message()))?;
    Ok(record)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    at: String,
    kind: String,
    /// A catheter revision's catalogue model (default 1).
    model: Option<String>,
    /// A catheter revision's length after trimming.
    length: Option<String>,
    repeat_every: Option<String>,
    repeat: Option<u32>,
    volume: Option<String>,
    concentration: Option<String>,
    keep_dose: Option<bool>,
    bridge: Option<String>,
    error: Option<String>,
    entered: Option<String>,
    missed: Option<bool>,
    dose: Option<String>,
    duration: Option<String>,
    fraction: Option<f64>,
    grow_to: Option<f64>,
    over: Option<String>,
    temperature_c: Option<f64>,
    altitude_m: Option<f64>,
    depth_m: Option<f64>,
    write: Option<u32>,
    program: Option<ProgramSpec>,
    every: Option<String>,
    /// `set-clock`: the pump's clock minus the true time, "-1 d", "+90 min".
    shift: Option<String>,
    /// `time-zone`: the new UTC offset, "+01:00".
    offset: Option<String>,
    /// `time-zone`: the programmer tells the pump (default true).
    tell_pump: Option<bool>,
    /// `firmware-update`: the new image's version.
    version: Option<String>,
    /// `firmware-update`: the new image's security counter.
    security_counter: Option<u32>,
    /// `update-replay`: `air` (the recorded frames) or `programmer` (a stolen one).
    via: Option<String>,
    /// `update-replay`, `chunk-flood`: which recorded update (from 1).
    update: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    kind: String,
    alarm: Option<String>,
    after: Option<String>,
    before: Option<String>,
    fraction: Option<f64>,
    longer_than: Option<String>,
    percent: Option<f64>,
    command: Option<String>,
    count: Option<u64>,
    within_ml: Option<f64>,
    /// Negates the expectation.
    not: Option<bool>,
    /// `alarm-priority`: high, medium or low.
    priority: Option<String>,
    /// `alarm-gap`: the alarm that follows `alarm`.
    then: Option<String>,
    /// `alarm-gap`: the longest allowed gap.
    shorter_than: Option<String>,
    /// `firmware-running`: the version the implant runs at the end.
    version: Option<String>,
    /// `firmware-running`: its security counter at the end.
    security_counter: Option<u32>,
    /// `update-refused`, `handshake-denied`: the logged code.
    code: Option<u8>,
    /// `attack-energy-below`: an energy, "50 mJ".
    energy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    name: String,
    description: String,
    seed: Option<u64>,
    duration: String,
    sample_every: Option<String>,
    fill: String,
    clock_set: Option<bool>,
    telemetry: Option<bool>,
    radio: Option<crate::radio::RadioSpec>,
    firmware: Option<crate::radio::FirmwareSpec>,
    device: DeviceSpec,
    #[serde(default)]
    patient: PatientSpec,
    #[serde(default)]
    catheter: CatheterSpec,
    prescription: RxSpec,
    #[serde(default)]
    event: Vec<EventSpec>,
    #[serde(default)]
    expect: Vec<ExpectSpec>,
}

/// The longest run a scenario may ask for: 10,958 days (30 years, several pump
/// lifetimes; SIM-060).
pub const MAX_DURATION: Duration = Duration::from_ms(10_958 * 86_400_000);
/// The most events a scenario may hold once `repeat` is expanded (SIM-060).
pub const MAX_EVENTS: u64 = 100_000;
/// The most timeline samples a run may take (about 10 MB of samples; SIM-060).
pub const MAX_SAMPLES: u64 = 100_000;

/// The device kinds a scenario may name.
pub const DEVICES: &str =
    "synchromed-20, synchromed-40, prometra-20, prometra-40, external, constant-rate";

fn need<'a, T>(field: &str, v: &'a Option<T>) -> Result<&'a T, FileError> {
    v.as_ref()
        .ok_or_else(|| err(field, "is required for this kind"))
}

fn dur(field: &str, v: &Option<String>) -> Result<Duration, FileError> {
    quantity(field, need(field, v)?)
}

fn fraction(field: &str, v: Option<f64>) -> Result<f64, FileError> {
    match v {
        Some(f) if (0.0..=1.0).contains(&f) => Ok(f),
        Some(f) => Err(err(
            field,
            format!("{f} is not a fraction; give a number from 0 to 1"),
        )),
        None => Err(err(
            field,
            "is required for this kind (a fraction from 0 to 1)",
        )),
    }
}

const EVENT_KINDS: &str = "refill, program, titrate, clinician-bolus, priming, patient-press, mri, \
    occlusion, granuloma, leak, fever, flight, dive, power-cut, stop, resume, replace-pump, catheter-revision, \
    set-clock, time-zone, handshake-flood, replay, jamming, bolus-flood, wand, firmware-update, \
    update-replay, chunk-flood";

fn event(
    i: usize,
    e: &EventSpec,
    contents: &thecal_rx::dose::Admixture,
) -> Result<Event, FileError> {
    let f = |name: &str| format!("event[{i}].{name}");
    use thecal_pump::command::BridgeChoice;
    Ok(match e.kind.as_str() {
        "refill" => {
            let error = match e.error.as_deref() {
                None => None,
                Some("pocket-fill") => Some(RefillError::PocketFill),
                Some("access-port") => Some(RefillError::AccessPort),
                Some("wrong-concentration") => Some(RefillError::WrongConcentration(quantity(
                    &f("entered"),
                    need(&f("entered"), &e.entered)?,
                )?)),
                Some("wrong-volume") => Some(RefillError::WrongVolume(quantity(
                    &f("entered"),
                    need(&f("entered"), &e.entered)?,
                )?)),
                Some(other) => {
                    return Err(err(
                        f("error"),
                        format!(
                            "unknown refill error '{other}'; known: pocket-fill, access-port, wrong-concentration, wrong-volume"
                        ),
                    ));
                }
            };
            let bridge = match e.bridge.as_deref() {
                None | Some("automatic") => BridgeChoice::Automatic,
                Some("none") => BridgeChoice::None,
                Some("bolus") => BridgeChoice::Bolus(dur(&f("duration"), &e.duration)?),
                Some(other) => {
                    return Err(err(
                        f("bridge"),
                        format!("unknown bridge '{other}'; known: automatic, none, bolus"),
                    ));
                }
            };
            Event::Refill {
                volume: quantity(&f("volume"), need(&f("volume"), &e.volume)?)?,
                concentration: e
                    .concentration
                    .as_deref()
                    .map(|c| quantity(&f("concentration"), c))
                    .transpose()?,
                keep_dose: e.keep_dose.unwrap_or(true),
                bridge,
                error,
                missed: e.missed.unwrap_or(false),
            }
        }
        "program" => {
            let spec = need(&f("program"), &e.program)?;
            Event::Program(Box::new(spec.build(
                &f("program."),
                contents,
                Volume::ZERO,
            )?))
        }
        "titrate" => Event::Titrate(quantity(&f("dose"), need(&f("dose"), &e.dose)?)?),
        "clinician-bolus" => Event::ClinicianBolus {
            volume: quantity(&f("volume"), need(&f("volume"), &e.volume)?)?,
            duration: dur(&f("duration"), &e.duration)?,
        },
        "priming" => Event::Priming(dur(&f("duration"), &e.duration)?),
        "patient-press" => Event::PatientPress,
        "mri" => Event::Mri(dur(&f("duration"), &e.duration)?),
        "occlusion" => Event::Occlusion(fraction(&f("fraction"), e.fraction)?),
        "granuloma" => Event::Granuloma {
            grow_to: fraction(&f("grow_to"), e.grow_to)?,
            over: dur(&f("over"), &e.over)?,
        },
        "leak" => Event::Leak(fraction(&f("fraction"), e.fraction)?),
        "fever" => Event::Fever {
            temperature_c: *need(&f("temperature_c"), &e.temperature_c)?,
            duration: dur(&f("duration"), &e.duration)?,
        },
        "flight" => Event::Flight {
            altitude_m: e.altitude_m.unwrap_or(2438.0),
            duration: dur(&f("duration"), &e.duration)?,
        },
        "dive" => Event::Dive {
            depth_m: *need(&f("depth_m"), &e.depth_m)?,
            duration: dur(&f("duration"), &e.duration)?,
        },
        "power-cut" => Event::PowerCut {
            write: e.write.unwrap_or(1).max(1),
        },
        "stop" => Event::Stop,
        "resume" => Event::Resume,
        "replace-pump" => Event::ReplacePump,
        "set-clock" => Event::SetClock {
            shift_ms: match &e.shift {
                None => 0,
                Some(s) => crate::clock::shift_ms(&f("shift"), s)?,
            },
        },
        "time-zone" => Event::TimeZone {
            offset_minutes: crate::clock::offset_minutes(
                &f("offset"),
                need(&f("offset"), &e.offset)?,
            )?,
            tell_pump: e.tell_pump.unwrap_or(true),
        },
        "catheter-revision" => Event::CatheterRevision(catheter_of(
            e.model.as_deref().unwrap_or("1"),
            need(&f("length"), &e.length)?,
            &format!("event[{i}]"),
        )?),
        other => {
            let fields = crate::radio::AttackFields {
                every: e.every.as_deref(),
                duration: e.duration.as_deref(),
                version: e.version.as_deref(),
                security_counter: e.security_counter,
                via: e.via.as_deref(),
                update: e.update,
            };
            if let Some(a) = crate::radio::attack(other, fields, &f)? {
                return Ok(Event::Radio(a));
            }
            return Err(err(
                f("kind"),
                format!("unknown event '{other}'; known: {EVENT_KINDS}"),
            ));
        }
    })
}

const EXPECT_KINDS: &str = "no-limiter-veto, limiter-veto, alarm, no-alarm, tip-dose-not-below, \
    tip-dose-below, tip-dose-above, reservoir-tracks, delivered-within, withdrawal-flagged, no-withdrawal, overdose-flagged, \
    no-overdose, opioid-withdrawal-flagged, no-opioid-withdrawal, clonidine-withdrawal-flagged, \
    no-clonidine-withdrawal, command-refused, boluses-at-most, reconciliation-flagged, end-of-service, eri-before-eos, \
    basal-within, radio-energy-below, radio-asleep, radio-never-asleep, radio-awake-at-end, link-boluses-at-least, \
    link-boluses-at-most, alarm-priority, alarm-gap, boluses-in-24h-at-most, tip-dose-within, interruption-at-most, \
    firmware-running, update-refused, handshake-denied, attack-energy-below";

fn expectation(i: usize, x: &ExpectSpec) -> Result<Expectation, FileError> {
    let inner = expectation_kind(i, x)?;
    Ok(if x.not == Some(true) {
        Expectation::Not(Box::new(inner))
    } else {
        inner
    })
}

fn expectation_kind(i: usize, x: &ExpectSpec) -> Result<Expectation, FileError> {
    let f = |name: &str| format!("expect[{i}].{name}");
    let opt_dur =
        |name: &str, v: &Option<String>, default: Duration| -> Result<Duration, FileError> {
            v.as_deref().map_or(Ok(default), |s| quantity(&f(name), s))
        };
    Ok(match x.kind.as_str() {
        "no-limiter-veto" => Expectation::NoLimiterVeto,
        "limiter-veto" => Expectation::LimiterVeto,
        "alarm" => Expectation::Alarm {
            alarm: alarm_name(&f("alarm"), need(&f("alarm"), &x.alarm)?)?,
            after: opt_dur("after", &x.after, Duration::ZERO)?,
            before: opt_dur("before", &x.before, Duration::MAX)?,
        },
        "no-alarm" => Expectation::NoAlarm(alarm_name(&f("alarm"), need(&f("alarm"), &x.alarm)?)?),
        "tip-dose-not-below" => Expectation::TipDoseNotBelow {
            fraction: fraction(&f("fraction"), x.fraction)?,
            longer_than: dur(&f("longer_than"), &x.longer_than)?,
            after: opt_dur("after", &x.after, Duration::ZERO)?,
        },
        "tip-dose-below" => Expectation::TipDoseBelow {
            fraction: fraction(&f("fraction"), x.fraction)?,
            longer_than: dur(&f("longer_than"), &x.longer_than)?,
        },
        "delivered-within" => Expectation::DeliveredWithin(*need(&f("percent"), &x.percent)?),
        "tip-dose-above" => Expectation::TipDoseAbove {
            fraction: *need(&f("fraction"), &x.fraction)?,
            longer_than: dur(&f("longer_than"), &x.longer_than)?,
        },
        "reservoir-tracks" => Expectation::ReservoirTracks(*need(&f("within_ml"), &x.within_ml)?),
        "withdrawal-flagged" => Expectation::WithdrawalFlagged,
        "no-withdrawal" => Expectation::NoWithdrawal,
        "overdose-flagged" => Expectation::OverdoseFlagged,
        "no-overdose" => Expectation::NoOverdose,
        "opioid-withdrawal-flagged" => Expectation::OpioidWithdrawalFlagged,
        "no-opioid-withdrawal" => Expectation::NoOpioidWithdrawal,
        "clonidine-withdrawal-flagged" => Expectation::ClonidineWithdrawalFlagged,
        "no-clonidine-withdrawal" => Expectation::NoClonidineWithdrawal,
        "command-refused" => Expectation::CommandRefused(command_name(
            &f("command"),
            need(&f("command"), &x.command)?,
        )?),
        "boluses-at-most" => Expectation::BolusesAtMost(*need(&f("count"), &x.count)?),
        "reconciliation-flagged" => Expectation::ReconciliationFlagged,
        "end-of-service" => Expectation::EndOfService,
        "eri-before-eos" => Expectation::EriBeforeEos(dur(&f("longer_than"), &x.longer_than)?),
        "radio-energy-below" => Expectation::RadioEnergyBelow(*need(&f("percent"), &x.percent)?),
        "radio-asleep" => Expectation::RadioAsleep,
        "basal-within" => Expectation::BasalWithin(*need(&f("percent"), &x.percent)?),
        "radio-never-asleep" => Expectation::RadioNeverAsleep,
        "radio-awake-at-end" => Expectation::RadioAwakeAtEnd,
        "link-boluses-at-least" => Expectation::LinkBolusesAtLeast(*need(&f("count"), &x.count)?),
        "link-boluses-at-most" => Expectation::LinkBolusesAtMost(*need(&f("count"), &x.count)?),
        "alarm-priority" => Expectation::AlarmPriority {
            alarm: alarm_name(&f("alarm"), need(&f("alarm"), &x.alarm)?)?,
            priority: match need(&f("priority"), &x.priority)?.as_str() {
                p @ ("high" | "medium" | "low") => p.to_string(),
                other => {
                    return Err(err(
                        f("priority"),
                        format!("unknown priority '{other}'; known: high, medium, low"),
                    ));
                }
            },
        },
        "alarm-gap" => {
            let at_least = x
                .longer_than
                .as_deref()
                .map(|s| quantity(&f("longer_than"), s))
                .transpose()?;
            let at_most = x
                .shorter_than
                .as_deref()
                .map(|s| quantity(&f("shorter_than"), s))
                .transpose()?;
            if at_least.is_none() && at_most.is_none() {
                return Err(err(
                    f("longer_than"),
                    "is required for this kind, or `shorter_than`, or both (durations)",
                ));
            }
            Expectation::AlarmGap {
                alarm: alarm_name(&f("alarm"), need(&f("alarm"), &x.alarm)?)?,
                then: alarm_name(&f("then"), need(&f("then"), &x.then)?)?,
                at_least,
                at_most,
            }
        }
        "boluses-in-24h-at-most" => Expectation::BolusesIn24hAtMost(*need(&f("count"), &x.count)?),
        "tip-dose-within" => Expectation::TipDoseWithin {
            percent: match *need(&f("percent"), &x.percent)? {
                p if p.is_finite() && p >= 0.0 => p,
                p => {
                    return Err(err(
                        f("percent"),
                        format!("{p} is out of range; allowed: 0 or above (a band of ± percent)"),
                    ));
                }
            },
            after: opt_dur("after", &x.after, Duration::ZERO)?,
        },
        "firmware-running" => {
            let version = x
                .version
                .as_deref()
                .map(|v| crate::radio::firmware_version(&f("version"), v))
                .transpose()?;
            if version.is_none() && x.security_counter.is_none() {
                return Err(err(
                    f("version"),
                    "is required for this kind, or `security_counter`, or both",
                ));
            }
            Expectation::FirmwareRunning {
                version,
                security_counter: x.security_counter,
            }
        }
        "update-refused" => Expectation::UpdateRefused(*need(&f("code"), &x.code)?),
        "handshake-denied" => Expectation::HandshakeDenied(*need(&f("code"), &x.code)?),
        "attack-energy-below" => Expectation::AttackEnergyBelow(crate::radio::joules(
            &f("energy"),
            need(&f("energy"), &x.energy)?,
        )?),
        "interruption-at-most" => Expectation::InterruptionAtMost {
            longer_than: dur(&f("longer_than"), &x.longer_than)?,
            fraction: match x.fraction {
                None => 0.1,
                v => fraction(&f("fraction"), v)?,
            },
        },
        other => {
            return Err(err(
                f("kind"),
                format!("unknown expectation '{other}'; known: {EXPECT_KINDS}"),
            ));
        }
    })
}

/// An alarm kind's name, checked: a misspelt name would make `no-alarm` pass for ever.
fn alarm_name(field: &str, name: &str) -> Result<String, FileError> {
    use thecal_pump::alarm::AlarmKind;
    AlarmKind::ALL
        .iter()
        .map(|k| format!("{k:?}"))
        .find(|k| k == name)
        .ok_or_else(|| {
            let known: Vec<String> = AlarmKind::ALL.iter().map(|k| format!("{k:?}")).collect();
            err(
                field,
                format!("unknown alarm '{name}'; known: {}", known.join(", ")),
            )
        })
}

/// A command's name, checked.
fn command_name(field: &str, name: &str) -> Result<String, FileError> {
    use thecal_pump::command::CommandKind;
    CommandKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .find(|k| k == name)
        .ok_or_else(|| {
            let known: Vec<&str> = CommandKind::ALL.iter().map(|k| k.name()).collect();
            err(
                field,
                format!("unknown command '{name}'; known: {}", known.join(", ")),
            )
        })
}

fn describe(x: &ExpectSpec) -> String {
    let mut s = x.kind.clone();
    for (k, v) in [
        ("alarm", x.alarm.clone()),
        ("after", x.after.clone()),
        ("before", x.before.clone()),
        ("fraction", x.fraction.map(|f| f.to_string())),
        ("longer_than", x.longer_than.clone()),
        ("percent", x.percent.map(|f| f.to_string())),
        ("command", x.command.clone()),
        ("count", x.count.map(|f| f.to_string())),
        ("within_ml", x.within_ml.map(|f| f.to_string())),
        ("priority", x.priority.clone()),
        ("then", x.then.clone()),
        ("shorter_than", x.shorter_than.clone()),
        ("version", x.version.clone()),
        (
            "security_counter",
            x.security_counter.map(|c| c.to_string()),
        ),
        ("code", x.code.map(|c| c.to_string())),
        ("energy", x.energy.clone()),
        ("not", x.not.map(|f| f.to_string())),
    ] {
        if let Some(v) = v {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    s
}

/// Reads a scenario.
///
/// # Errors
/// A [`FileError`] naming the field and what is allowed.
pub fn parse(text: &str) -> Result<Scenario, FileError> {
    let spec: ScenarioSpec = toml::from_str(text).map_err(|e| {
        err(
            "",
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )
    })?;
    let device = match spec.device.model.as_str() {
        "constant-rate" => Device::ConstantRate(quantity(
            "device.nominal_flow",
            need("device.nominal_flow", &spec.device.nominal_flow)?,
        )?),
        other => match thecal_pump::profile::HardwareProfile::by_model(other) {
            Some(p) => Device::Programmable(p),
            None => {
                return Err(err(
                    "device.model",
                    format!("unknown device '{other}'; known: {DEVICES}"),
                ));
            }
        },
    };
    let capacity = match &device {
        Device::Programmable(p) => p.reservoir_capacity,
        Device::ConstantRate(_) => Volume::from_ml(30),
    };
    let prescription = spec.prescription.build("prescription.", capacity)?;
    let battery_uj = match &spec.device.battery {
        None => None,
        Some(text) => {
            let joules: f64 = text
                .trim()
                .trim_end_matches('J')
                .trim()
                .parse()
                .map_err(|_| {
                    err(
                        "device.battery",
                        format!("'{text}' is not an energy; write e.g. \"2000 J\""),
                    )
                })?;
            if !(joules.is_finite() && joules > 0.0) {
                return Err(err(
                    "device.battery",
                    format!("'{text}' must be a positive energy, e.g. \"2000 J\""),
                ));
            }
            Some((joules * 1e6) as u64)
        }
    };
    let condition = match spec.patient.condition.as_deref() {
        None | Some("spasticity") => Condition::Spasticity,
        Some("pain") => Condition::Pain,
        Some(other) => {
            return Err(err(
                "patient.condition",
                format!("unknown '{other}'; known: spasticity, pain"),
            ));
        }
    };
    let pressing = match spec.patient.pressing.as_deref() {
        None | Some("never") => Pressing::Never,
        Some("when-poor") => {
            let threshold = spec.patient.press_threshold.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&threshold) {
                return Err(err(
                    "patient.press_threshold",
                    format!("{threshold} is out of range; allowed: 0 to 1 (symptom control)"),
                ));
            }
            let per_hour = spec.patient.presses_per_hour.unwrap_or(1.0);
            if !(per_hour > 0.0 && per_hour <= 60.0) {
                return Err(err(
                    "patient.presses_per_hour",
                    format!(
                        "{per_hour} is out of range; allowed: above 0 and at most 60 \
                         (use pressing = \"every-minute\" for a press a minute)"
                    ),
                ));
            }
            Pressing::WhenPoor {
                threshold,
                per_hour,
            }
        }
        Some("every-minute") => Pressing::EveryMinute,
        Some(other) => {
            return Err(err(
                "patient.pressing",
                format!("unknown '{other}'; known: never, when-poor, every-minute"),
            ));
        }
    };
    // Bound the expansion before any memory is taken for it (SIM-060).
    let mut expanded: u64 = 0;
    for (i, e) in spec.event.iter().enumerate() {
        expanded = expanded.saturating_add(u64::from(e.repeat.unwrap_or(0)).saturating_add(1));
        if expanded > MAX_EVENTS {
            return Err(err(
                format!("event[{i}].repeat"),
                format!(
                    "the events expand to more than {MAX_EVENTS} (each repeat adds one); \
                     allowed: at most {MAX_EVENTS} events after expansion"
                ),
            ));
        }
    }
    let mut events = Vec::new();
    for (i, e) in spec.event.iter().enumerate() {
        let at: Duration = quantity(&format!("event[{i}].at"), &e.at)?;
        let ev = event(i, e, &prescription.contents)?;
        let repeat = e.repeat.unwrap_or(0);
        let every = match (&e.repeat_every, repeat) {
            (Some(s), _) => Some(quantity::<Duration>(
                &format!("event[{i}].repeat_every"),
                s,
            )?),
            (None, 0) => None,
            (None, _) => {
                return Err(err(
                    format!("event[{i}].repeat_every"),
                    "is required with repeat",
                ));
            }
        };
        for k in 0..=repeat {
            let offset = every.map_or(0, |d| d.ms().saturating_mul(u64::from(k)));
            events.push((
                Duration::from_ms(at.ms().saturating_add(offset)),
                ev.clone(),
            ));
        }
    }
    events.sort_by_key(|(t, _)| *t);
    let mut expectations = Vec::new();
    for (i, x) in spec.expect.iter().enumerate() {
        expectations.push((describe(x), expectation(i, x)?));
    }
    let radio = match (&spec.radio, spec.telemetry) {
        (_, Some(false)) if spec.radio.is_some() => {
            return Err(err("telemetry", "is false but a [radio] table is present"));
        }
        (Some(r), _) => Some(r.build()?),
        (None, Some(true)) => Some(crate::radio::RadioConfig::default()),
        (None, _) => None,
    };
    if radio.is_some() && matches!(device, Device::ConstantRate(_)) {
        return Err(err(
            "telemetry",
            "a constant-rate pump has no electronics and no radio",
        ));
    }
    let firmware = match &spec.firmware {
        Some(f) => {
            if radio.is_none() {
                return Err(err(
                    "firmware",
                    "the firmware takes updates over the link: add `telemetry = true` or a \
                     [radio] table",
                ));
            }
            Some(f.build(&spec.device.model)?)
        }
        None => None,
    };
    for (i, e) in spec.event.iter().enumerate() {
        let kind = e.kind.as_str();
        if !crate::radio::FIRMWARE_KINDS.split(", ").any(|k| k == kind) {
            continue;
        }
        if radio.is_some() && firmware.is_none() {
            return Err(err(
                format!("event[{i}].kind"),
                format!("'{kind}' needs the implant's firmware: add a [firmware] table"),
            ));
        }
        if kind == "firmware-update" && spec.device.persistence != Some(true) {
            return Err(err(
                format!("event[{i}].kind"),
                "'firmware-update' restarts the implant into the new image, which restores \
                 therapy from the pump's journal: set `persistence = true` in [device]",
            ));
        }
    }
    if radio.is_none() {
        if let Some(i) = spec
            .event
            .iter()
            .position(|e| crate::radio::ATTACK_KINDS.split(", ").any(|k| k == e.kind))
        {
            return Err(err(
                format!("event[{i}].kind"),
                format!(
                    "'{}' needs the telemetry: add `telemetry = true` or a [radio] table",
                    spec.event[i].kind
                ),
            ));
        }
    }
    let fill: Volume = quantity("fill", &spec.fill)?;
    if fill > capacity {
        return Err(err(
            "fill",
            format!("{fill} exceeds the device's capacity {capacity}"),
        ));
    }
    let duration: Duration = quantity("duration", &spec.duration)?;
    if duration.is_zero() {
        return Err(err("duration", "must be above zero"));
    }
    if duration > MAX_DURATION {
        return Err(err(
            "duration",
            format!("{duration} is too long; allowed: above zero and at most {MAX_DURATION}"),
        ));
    }
    let sample_every: Duration = match &spec.sample_every {
        Some(s) => quantity("sample_every", s)?,
        None if duration > Duration::from_days(400) => Duration::from_days(1),
        None => Duration::from_hours(1),
    };
    if sample_every.is_zero() {
        return Err(err("sample_every", "must be above zero"));
    }
    let samples = duration.ms() / sample_every.ms();
    if samples > MAX_SAMPLES {
        return Err(err(
            "sample_every",
            format!(
                "{sample_every} over {duration} takes {samples} samples; allowed: at most \
                 {MAX_SAMPLES} (sample less often, e.g. every {})",
                Duration::from_ms(duration.ms().div_ceil(MAX_SAMPLES))
            ),
        ));
    }

    Ok(Scenario {
        name: spec.name,
        description: spec.description,
        seed: spec.seed.unwrap_or(1),
        duration,
        sample_every,
        device,
        battery_uj,
        calibration_bias: spec.device.calibration_bias,
        stroke_cv: spec.device.stroke_cv.unwrap_or(0.03),
        drift_ppm: spec.device.drift_ppm.unwrap_or(0.0),
        persistence: spec.device.persistence.unwrap_or(false),
        primed: spec.catheter.primed.unwrap_or(true),
        catheter: catheter_record(&spec.catheter)?,
        clock_set: spec.clock_set.unwrap_or(true),
        condition,
        high_risk: spec.patient.high_risk.unwrap_or(false),
        pressing,
        prescription,
        fill,
        events,
        expectations,
        radio,
        firmware,
    })
}

/// Judges a run against the scenario's expectations.
pub fn judge(sc: &Scenario, r: &RunResult) -> Vec<Verdict> {
    sc.expectations
        .iter()
        .map(|(text, x)| {
            let (passed, detail) = judge_one(sc, x, r);
            Verdict {
                expectation: text.clone(),
                passed,
                detail,
            }
        })
        .collect()
}

/// One expectation's verdict: whether it held, and what was found.
fn judge_one(sc: &Scenario, x: &Expectation, r: &RunResult) -> (bool, String) {
    match x {
        Expectation::BasalWithin(pct) => basal_verdict(sc, *pct, r),
        Expectation::Not(inner) => {
            let (passed, detail) = judge_one(sc, inner, r);
            (!passed, detail)
        }
        Expectation::AlarmPriority { .. }
        | Expectation::AlarmGap { .. }
        | Expectation::BolusesIn24hAtMost(_)
        | Expectation::TipDoseWithin { .. }
        | Expectation::InterruptionAtMost { .. } => crate::expect::verdict(x, r),
        Expectation::OpioidWithdrawalFlagged
        | Expectation::NoOpioidWithdrawal
        | Expectation::ClonidineWithdrawalFlagged
        | Expectation::NoClonidineWithdrawal => crate::risks::verdict(x, r),
        _ => verdict(x, r),
    }
}

fn hours(d: Duration) -> f64 {
    d.ms() as f64 / 3_600_000.0
}

/// The longest stretch (hours) in which the tip dose stays below `fraction` of the
/// intended dose, counting only samples after `after_h` with an intended dose (SIM-067).
pub(crate) fn longest_below(r: &RunResult, fraction: f64, after_h: f64) -> (f64, f64) {
    let mut longest = 0.0f64;
    let mut at = 0.0;
    let mut start: Option<f64> = None;
    let mut prev_t: f64 = 0.0;
    for s in r.samples.iter().filter(|s| s.t_h > after_h) {
        let below =
            s.intended_mcg_per_day > 0.0 && s.tip_mcg_per_day < fraction * s.intended_mcg_per_day;
        match (below, start) {
            (true, None) => start = Some(prev_t.max(after_h)),
            (false, Some(s0)) => {
                if prev_t - s0 > longest {
                    longest = prev_t - s0;
                    at = s0;
                }
                start = None;
            }
            _ => {}
        }
        prev_t = s.t_h;
    }
    if let Some(s0) = start {
        if prev_t - s0 > longest {
            longest = prev_t - s0;
            at = s0;
        }
    }
    (longest, at)
}

fn verdict(x: &Expectation, r: &RunResult) -> (bool, String) {
    let t = &r.totals;
    let raised = |name: &str| {
        let name = name.to_string();
        r.alarms
            .iter()
            .filter(move |a| a.kind == name && a.what == "raised")
    };
    match x {
        Expectation::NoLimiterVeto => (
            t.limiter_vetoes == 0,
            format!("{} limiter vetoes", t.limiter_vetoes),
        ),
        Expectation::LimiterVeto => (
            t.limiter_vetoes > 0,
            format!("{} limiter vetoes", t.limiter_vetoes),
        ),
        Expectation::Alarm {
            alarm,
            after,
            before,
        } => {
            let first = raised(alarm)
                .map(|a| a.t_h)
                .find(|h| *h >= hours(*after) && *h < hours(*before));
            match first {
                Some(h) => (true, format!("{alarm} raised at day {:.1}", h / 24.0)),
                None => {
                    let any = raised(alarm)
                        .next()
                        .map(|a| format!(" (raised at day {:.1})", a.t_h / 24.0));
                    (
                        false,
                        format!(
                            "{alarm} not raised in the window{}",
                            any.unwrap_or_default()
                        ),
                    )
                }
            }
        }
        Expectation::NoAlarm(alarm) => match raised(alarm).next() {
            None => (true, format!("{alarm} never raised")),
            Some(a) => (false, format!("{alarm} raised at day {:.1}", a.t_h / 24.0)),
        },
        Expectation::TipDoseNotBelow {
            fraction,
            longer_than,
            after,
        } => {
            let (longest, at) = longest_below(r, *fraction, hours(*after));
            (
                longest <= hours(*longer_than),
                format!(
                    "longest stretch below {:.0} %: {longest:.1} h (from day {:.1})",
                    fraction * 100.0,
                    at / 24.0
                ),
            )
        }
        Expectation::TipDoseBelow {
            fraction,
            longer_than,
        } => {
            let (longest, at) = longest_below(r, *fraction, 0.0);
            (
                longest > hours(*longer_than),
                format!(
                    "longest stretch below {:.0} %: {longest:.1} h (from day {:.1})",
                    fraction * 100.0,
                    at / 24.0
                ),
            )
        }
        Expectation::TipDoseAbove {
            fraction,
            longer_than,
        } => {
            let mut longest = 0.0f64;
            let mut start: Option<f64> = None;
            let mut prev = 0.0;
            for s in &r.samples {
                let above = s.intended_mcg_per_day > 0.0
                    && s.tip_mcg_per_day > fraction * s.intended_mcg_per_day;
                match (above, start) {
                    (true, None) => start = Some(prev),
                    (false, Some(s0)) => {
                        longest = longest.max(prev - s0);
                        start = None;
                    }
                    _ => {}
                }
                prev = s.t_h;
            }
            if let Some(s0) = start {
                longest = longest.max(prev - s0);
            }
            (
                longest > hours(*longer_than),
                format!(
                    "longest stretch above {:.0} %: {longest:.1} h",
                    fraction * 100.0
                ),
            )
        }
        Expectation::ReservoirTracks(ml) => match r.samples.last() {
            Some(s) if s.reservoir_expected_ml.is_finite() => {
                let d = s.reservoir_expected_ml - s.reservoir_ml;
                (
                    d.abs() <= *ml,
                    format!(
                        "the pump expects {:.2} mL, the reservoir holds {:.2} mL",
                        s.reservoir_expected_ml, s.reservoir_ml
                    ),
                )
            }
            _ => (false, "no reservoir estimate".into()),
        },
        Expectation::DeliveredWithin(pct) => {
            let err = if t.intended_mcg > 0.0 {
                (t.delivered_tip_mcg - t.intended_mcg) / t.intended_mcg * 100.0
            } else {
                0.0
            };
            (
                err.abs() <= *pct,
                format!(
                    "delivered {:.1} mcg of {:.1} intended ({err:+.2} %)",
                    t.delivered_tip_mcg, t.intended_mcg
                ),
            )
        }
        Expectation::WithdrawalFlagged | Expectation::NoWithdrawal => {
            let peak = r
                .samples
                .iter()
                .map(|s| s.withdrawal_risk)
                .fold(0.0, f64::max);
            let flagged = peak >= 0.5;
            let want = matches!(x, Expectation::WithdrawalFlagged);
            (flagged == want, format!("peak withdrawal risk {peak:.2}"))
        }
        Expectation::OverdoseFlagged | Expectation::NoOverdose => {
            let peak = r
                .samples
                .iter()
                .map(|s| s.overdose_risk)
                .fold(0.0, f64::max);
            let flagged = peak >= 0.5;
            let want = matches!(x, Expectation::OverdoseFlagged);
            (flagged == want, format!("peak overdose risk {peak:.2}"))
        }
        Expectation::CommandRefused(cmd) => {
            let n = r
                .notes
                .iter()
                .filter(|n| n.text.starts_with(&format!("refused {cmd}")))
                .count();
            (n > 0, format!("{n} '{cmd}' commands refused"))
        }
        Expectation::BolusesAtMost(max) => (
            t.boluses_given <= *max,
            format!(
                "{} boluses given of {} presses",
                t.boluses_given, t.bolus_presses
            ),
        ),
        Expectation::ReconciliationFlagged => {
            let n = r
                .notes
                .iter()
                .filter(|n| n.text.contains("reconciliation flagged"))
                .count();
            (n > 0, format!("{n} flagged reconciliations"))
        }
        Expectation::EndOfService => (
            t.eos_day.is_some(),
            t.eos_day.map_or("end of service not reached".into(), |d| {
                format!("end of service on day {d:.1}")
            }),
        ),
        Expectation::EriBeforeEos(gap) => match (t.eri_day, t.eos_day) {
            (Some(eri), Some(eos)) => (
                eos - eri >= hours(*gap) / 24.0,
                format!(
                    "ERI on day {eri:.2}, end of service on day {eos:.2}: {:.2} days apart",
                    eos - eri
                ),
            ),
            (None, _) => (false, "ERI never raised".into()),
            (Some(eri), None) => (
                false,
                format!("ERI on day {eri:.1}, end of service not reached"),
            ),
        },
        Expectation::RadioEnergyBelow(_)
        | Expectation::RadioAsleep
        | Expectation::RadioNeverAsleep
        | Expectation::RadioAwakeAtEnd
        | Expectation::LinkBolusesAtLeast(_)
        | Expectation::LinkBolusesAtMost(_)
        | Expectation::FirmwareRunning { .. }
        | Expectation::UpdateRefused(_)
        | Expectation::HandshakeDenied(_)
        | Expectation::AttackEnergyBelow(_) => radio_verdict(x, r),
        _ => (false, "judged elsewhere".into()),
    }
}

fn basal_verdict(sc: &Scenario, pct: f64, r: &RunResult) -> (bool, String) {
    let t = &r.totals;
    let primary = sc.prescription.contents.active().next();
    let bolus_mcg = match (&sc.prescription.patient_bolus, primary) {
        (Some(b), Some(c)) => b.volume.raw() as f64 * c.concentration.raw() as f64 / 1e9,
        _ => 0.0,
    };
    let basal = t.delivered_tip_mcg - bolus_mcg * t.boluses_given as f64;
    let err = if t.intended_mcg > 0.0 {
        (basal - t.intended_mcg) / t.intended_mcg * 100.0
    } else {
        0.0
    };
    (
        err.abs() <= pct,
        format!(
            "basal delivered {basal:.1} mcg of {:.1} intended ({err:+.2} %; {} boluses of \
             {bolus_mcg:.1} mcg set aside)",
            t.intended_mcg, t.boluses_given
        ),
    )
}

fn radio_verdict(x: &Expectation, r: &RunResult) -> (bool, String) {
    let Some(radio) = &r.radio else {
        return (false, "the scenario has no telemetry".into());
    };
    let sleep = || match radio.first_sleep_h {
        Some(h) => format!(
            "the radio slept {} time(s), first at day {:.2}; asleep at the end: {}",
            radio.slept,
            h / 24.0,
            if radio.asleep_at_end { "yes" } else { "no" }
        ),
        None => "the radio never slept".into(),
    };
    let boluses = || {
        format!(
            "{} boluses over the link ({} presses, {} unanswered)",
            radio.link_boluses, radio.link_presses, radio.link_failures
        )
    };
    match x {
        Expectation::RadioEnergyBelow(pct) => (
            radio.peak_day_pct_of_budget < *pct,
            format!(
                "costliest day {:.1} mJ, {:.3} % of the {:.0} mJ daily budget",
                radio.peak_day_uj as f64 / 1e3,
                radio.peak_day_pct_of_budget,
                radio.daily_budget_uj as f64 / 1e3
            ),
        ),
        Expectation::RadioAsleep => (radio.slept > 0, sleep()),
        Expectation::RadioNeverAsleep => (radio.slept == 0, sleep()),
        Expectation::RadioAwakeAtEnd => (!radio.asleep_at_end, sleep()),
        Expectation::LinkBolusesAtLeast(n) => (radio.link_boluses >= *n, boluses()),
        Expectation::LinkBolusesAtMost(n) => (radio.link_boluses <= *n, boluses()),
        Expectation::FirmwareRunning {
            version,
            security_counter,
        } => match &radio.firmware {
            Some(fw) => (
                version.is_none_or(|v| v.to_string() == fw.running)
                    && security_counter.is_none_or(|c| c == fw.security_counter),
                format!(
                    "the implant runs {} from slot {}, security counter {} ({} update(s) \
                     confirmed)",
                    fw.running, fw.slot, fw.security_counter, fw.confirmed
                ),
            ),
            None => (false, "the scenario has no [firmware]".into()),
        },
        Expectation::UpdateRefused(code) => {
            let refused = radio.firmware.as_ref().map_or(&[][..], |f| &f.refused[..]);
            let listed: Vec<String> = refused
                .iter()
                .map(|r| format!("{} ({}) at day {:.2}", r.code, r.words, r.t_h / 24.0))
                .collect();
            (
                refused.iter().any(|r| r.code == *code),
                if listed.is_empty() {
                    "the pump's log holds no refused update step".into()
                } else {
                    format!("refused update steps logged: {}", listed.join(", "))
                },
            )
        }
        Expectation::HandshakeDenied(code) => (
            radio.denial_reasons.contains_key(code),
            format!(
                "denials logged by reason: {}",
                if radio.denial_reasons.is_empty() {
                    "none".to_string()
                } else {
                    radio
                        .denial_reasons
                        .iter()
                        .map(|(k, n)| format!("{k}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ),
        Expectation::AttackEnergyBelow(uj) => (
            radio.attack_uj < *uj,
            format!(
                "the attackers' frames cost {:.3} mJ of radio (bound {:.3} mJ; {} frames \
                 heard of {} sent)",
                radio.attack_uj as f64 / 1e3,
                *uj as f64 / 1e3,
                radio.attack_frames_heard,
                radio.attack_frames_sent
            ),
        ),
        _ => (false, String::new()),
    }
}
