//! The telemetry in the twin: the real link (`thecal-link`) between a simulated patient
//! remote and the implant, over the in-memory air, with attackers on it (SIM-041).
//!
//! When a scenario asks for telemetry (`telemetry = true` or a `[radio]` table), the
//! implant gets a link endpoint ([`Implant`]) around the engine's pump core, and a patient
//! remote is enrolled in its registry at the start (its own key, key id and
//! pre-authentication key). The patient's bolus presses then travel **over the link**: a
//! hello when the remote holds no live session (sessions close after
//! [`SESSION_IDLE_LIMIT`] idle), then an encrypted request and its answer. A press that
//! gets no answer (jammed, or the receiver backing off or asleep) gives no bolus.
//!
//! Attacks are scenario events ([`Attack`]):
//!
//! | attack | what goes on the air |
//! |---|---|
//! | `handshake-flood` | one frame per `every` for `duration`, in turn: random bytes, a hello forged for the remote's key id (own key, guessed pre-authentication key, huge counter), and the remote's last recorded hello as it was |
//! | `replay` | every frame the remote ever sent to the implant, recorded off the air, one per `every` |
//! | `jamming` | nothing arrives for `duration`: every frame in flight, either way, is destroyed |
//! | `bolus-flood` | the stolen (enrolled) remote asks for a bolus once per `every` for `duration` |
//! | `wand` | the clinician's programmer wand over the pump: [`Implant::proximity_wake`] |
//! | `firmware-update` | the clinician's programmer installs a signed update over the link ([`firmware`]): hello, begin, every chunk, verify, mark for trial; the implant restarts into it |
//! | `update-replay` | a recorded update: every frame of its session replayed as recorded, one per `every`; or (`via = "programmer"`) its image sent through a stolen clinician programmer's own session |
//! | `chunk-flood` | the recorded chunk frames of an update, replayed in turn, one per `every` for `duration` |
//!
//! Attack frames are events of the event-driven engine, one per frame, never a fixed
//! step. A frame that would arrive while the receiver does not listen
//! ([`thecal_link::Radio::listening`]) is never built: the stream jumps to its first
//! frame after the back-off, and parks while the radio sleeps (a wand re-arms it).
//!
//! The module runs the link exactly as the firmware would: [`Implant::accept`] for a
//! hello (and for any frame while no session is open, which it refuses cheaply),
//! [`Implant::handle`] for a frame of the open session; the engine drains the pump's
//! actions after every turn.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use thecal_link::air::{Air, Dir};
use thecal_link::endpoint::{Host, SESSION_IDLE_LIMIT};
use thecal_link::frame::{Frame, Kind, MAX_FRAME};
use thecal_link::message::UPDATE_CHUNK_MAX;
use thecal_link::session::MAX_PLAINTEXT;
use thecal_link::{
    AwaitingReply, Body, Enrolment, Entropy, HelloAuth, HelloHeader, Implant, ImplantSession,
    Initiator, Radio, RadioCosts, RadioPolicy, Registry, Reply, Request, Session, StaticKeypair,
    UpdateReply, UpdateRequest, key_id_for,
};
use thecal_pump::command::{Command, Role};
use thecal_pump::core::Pump;
use thecal_pump::log::LogEntry;
use thecal_rx::quantity::{MS_PER_DAY, MS_PER_HOUR};
use thecal_rx::{Duration, Instant};

use crate::prescription_file::{FileError, quantity};
use crate::result::{FirmwareRefusal, FirmwareTotals, RadioTotals};

mod firmware;

pub use firmware::FirmwareConfig;
pub(crate) use firmware::{FirmwareSpec, version as firmware_version};

fn err(field: impl Into<String>, message: impl std::fmt::Display) -> FileError {
    FileError {
        field: field.into(),
        message: message.to_string(),
    }
}

fn h(ms: u64) -> f64 {
    ms as f64 / MS_PER_HOUR as f64
}

// ----- the scenario's side -------------------------------------------------------------

/// The implant radio of a scenario with telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RadioConfig {
    /// The daily energy budget, µJ.
    pub daily_budget_uj: u64,
    /// The receiver's sleep after the first denied frame.
    pub backoff_first: Duration,
    /// The longest sleep after denied frames.
    pub backoff_max: Duration,
}

impl Default for RadioConfig {
    fn default() -> Self {
        let p = RadioPolicy::TYPICAL;
        RadioConfig {
            daily_budget_uj: p.daily_budget_uj,
            backoff_first: p.backoff_first,
            backoff_max: p.backoff_max,
        }
    }
}

/// The `[radio]` table of a scenario.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RadioSpec {
    daily_budget: Option<String>,
    backoff_first: Option<String>,
    backoff_max: Option<String>,
}

impl RadioSpec {
    pub(crate) fn build(&self) -> Result<RadioConfig, FileError> {
        let mut c = RadioConfig::default();
        if let Some(text) = &self.daily_budget {
            c.daily_budget_uj = joules("radio.daily_budget", text)?;
        }
        if let Some(text) = &self.backoff_first {
            c.backoff_first = quantity("radio.backoff_first", text)?;
        }
        if let Some(text) = &self.backoff_max {
            c.backoff_max = quantity("radio.backoff_max", text)?;
        }
        if c.backoff_max < c.backoff_first {
            return Err(err(
                "radio.backoff_max",
                "must not be shorter than radio.backoff_first",
            ));
        }
        Ok(c)
    }
}

/// An energy such as `"18 J"` or `"500 mJ"`, in µJ.
pub(crate) fn joules(field: &str, text: &str) -> Result<u64, FileError> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("mJ") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix("uJ").or_else(|| t.strip_suffix("µJ")) {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('J') {
        (n, 1e6)
    } else {
        (t, f64::NAN)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if scale.is_finite() && v.is_finite() && v > 0.0 => Ok((v * scale).round() as u64),
        _ => Err(err(
            field,
            format!("'{text}' is not a positive energy; write e.g. \"18 J\" or \"500 mJ\""),
        )),
    }
}

/// An attack on the telemetry, or the clinician's wand (a scenario event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attack {
    /// Random and forged hellos, one per `every`, for `duration`.
    HandshakeFlood {
        /// The gap between frames.
        every: Duration,
        /// How long.
        duration: Duration,
    },
    /// Every frame the remote has sent to the implant so far, replayed one per `every`.
    Replay {
        /// The gap between replayed frames.
        every: Duration,
    },
    /// Every frame on the air is destroyed for `duration`.
    Jamming {
        /// How long.
        duration: Duration,
    },
    /// The stolen (enrolled) remote asks for a bolus once per `every` for `duration`.
    BolusFlood {
        /// The gap between requests.
        every: Duration,
        /// How long.
        duration: Duration,
    },
    /// The programmer wand wakes the radio.
    Wand,
    /// The clinician's programmer installs a firmware update of `version` over the link
    /// (SIM-063).
    FirmwareUpdate {
        /// The new image's version.
        version: thecal_update::Version,
        /// Its security counter (`None`: the implant's own).
        security_counter: Option<u32>,
    },
    /// Firmware update number `update` (from 1), as recorded off the air, replayed
    /// (SIM-063).
    UpdateReplay {
        /// Which recorded update.
        update: u32,
        /// The gap between replayed frames.
        every: Duration,
        /// Its image sent through a stolen clinician programmer's own session instead of
        /// its frames replayed as recorded.
        via_programmer: bool,
    },
    /// The chunk frames of recorded update number `update` replayed in turn, one per
    /// `every`, for `duration` (SIM-064).
    ChunkFlood {
        /// Which recorded update.
        update: u32,
        /// The gap between frames.
        every: Duration,
        /// How long.
        duration: Duration,
    },
}

/// The fields of an attack event (the scenario's `[[event]]` entry).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AttackFields<'a> {
    pub every: Option<&'a str>,
    pub duration: Option<&'a str>,
    pub version: Option<&'a str>,
    pub security_counter: Option<u32>,
    pub via: Option<&'a str>,
    pub update: Option<u32>,
}

/// The most frames one attack event may send (`duration` ÷ `every`; SIM-060).
pub const MAX_ATTACK_FRAMES: u64 = 2_000_000;

/// The event kinds of this module.
pub(crate) const ATTACK_KINDS: &str = "handshake-flood, replay, jamming, bolus-flood, wand, \
    firmware-update, update-replay, chunk-flood";

/// The event kinds that need a `[firmware]` table.
pub(crate) const FIRMWARE_KINDS: &str = "firmware-update, update-replay, chunk-flood";

/// Parses an attack event of kind `kind` (`None`: not an attack); `f` names a field.
pub(crate) fn attack(
    kind: &str,
    fields: AttackFields<'_>,
    f: &dyn Fn(&str) -> String,
) -> Result<Option<Attack>, FileError> {
    let (every, duration) = (fields.every, fields.duration);
    let gap = |default: &str| -> Result<Duration, FileError> {
        let d: Duration = quantity(&f("every"), every.unwrap_or(default))?;
        if d.is_zero() {
            return Err(err(f("every"), "must be above zero"));
        }
        Ok(d)
    };
    let span = || -> Result<Duration, FileError> {
        let text = duration.ok_or_else(|| err(f("duration"), "is required for this kind"))?;
        quantity(&f("duration"), text)
    };
    // An attack sends one frame per `every` for `duration`: bound the frames (SIM-060).
    let frames = |every: Duration, duration: Duration| -> Result<(), FileError> {
        let n = duration.ms() / every.ms().max(1);
        if n > MAX_ATTACK_FRAMES {
            return Err(err(
                f("every"),
                format!(
                    "{every} for {duration} sends {n} frames; allowed: at most \
                     {MAX_ATTACK_FRAMES} frames an attack"
                ),
            ));
        }
        Ok(())
    };
    Ok(Some(match kind {
        "handshake-flood" => {
            let (every, duration) = (gap("100 ms")?, span()?);
            frames(every, duration)?;
            Attack::HandshakeFlood { every, duration }
        }
        "replay" => Attack::Replay {
            every: gap("10 min")?,
        },
        "jamming" => Attack::Jamming { duration: span()? },
        "bolus-flood" => {
            let (every, duration) = (gap("1 min")?, span()?);
            frames(every, duration)?;
            Attack::BolusFlood { every, duration }
        }
        "wand" => Attack::Wand,
        "firmware-update" => Attack::FirmwareUpdate {
            version: firmware::version(
                &f("version"),
                fields
                    .version
                    .ok_or_else(|| err(f("version"), "is required for this kind"))?,
            )?,
            security_counter: fields.security_counter,
        },
        "update-replay" => Attack::UpdateReplay {
            update: recorded_update(fields.update, f)?,
            every: gap("10 min")?,
            via_programmer: match fields.via {
                None | Some("air") => false,
                Some("programmer") => true,
                Some(other) => {
                    return Err(err(
                        f("via"),
                        format!("unknown '{other}'; known: air, programmer"),
                    ));
                }
            },
        },
        "chunk-flood" => {
            let (every, duration) = (gap("100 ms")?, span()?);
            frames(every, duration)?;
            Attack::ChunkFlood {
                update: recorded_update(fields.update, f)?,
                every,
                duration,
            }
        }
        _ => return Ok(None),
    }))
}

/// Which recorded update an attack uses: 1 (the first) unless given.
fn recorded_update(update: Option<u32>, f: &dyn Fn(&str) -> String) -> Result<u32, FileError> {
    match update {
        None => Ok(1),
        Some(0) => Err(err(
            f("update"),
            "0 is out of range; updates are counted from 1 (the first firmware-update event)",
        )),
        Some(n) => Ok(n),
    }
}

// ----- the devices ---------------------------------------------------------------------

/// The patient's remote (and, stolen, the attacker's).
struct Remote {
    keys: StaticKeypair,
    key_id: u32,
    preauth: [u8; 32],
    counter: u64,
    session: Option<Session>,
    /// When the session last carried an answer (pump time).
    last: Instant,
    next_id: u32,
}

/// What the engine must do after a turn.
#[derive(Debug, Default)]
pub(crate) struct TurnOut {
    /// Streams to wake: (true time, ms; stream index).
    pub schedule: Vec<(u64, usize)>,
    /// Notes for the report.
    pub notes: Vec<String>,
    /// Commands the pump refused.
    pub refused: u64,
    /// Calls into the pump core (frames heard).
    pub wakes: u64,
    /// The implant restarts after this turn (an image was marked for trial).
    pub restart: bool,
}

/// What the engine asks the telemetry to do.
#[derive(Debug, Clone)]
pub(crate) enum Turn {
    /// The patient presses the remote's bolus button (request id).
    Press(u32),
    /// An attack (or the wand) starts.
    Attack(Attack),
    /// The next frame of stream `i` is due.
    Stream(usize),
}

#[derive(Debug, Clone)]
enum StreamKind {
    HandshakeFlood,
    BolusFlood,
    Replay(Vec<Vec<u8>>),
    /// Recorded frames replayed in turn, over and over.
    Cycle(Vec<Vec<u8>>),
}

/// A stream of attack frames: one at `start + k × every` for `k` from 0 while before
/// `end`.
#[derive(Debug, Clone)]
struct Stream {
    kind: StreamKind,
    start: u64,
    every: u64,
    end: u64,
    next_k: u64,
    parked: bool,
}

impl Stream {
    fn at(&self, k: u64) -> u64 {
        self.start.saturating_add(k.saturating_mul(self.every))
    }
    /// The first tick at or after `t`.
    fn tick_at_or_after(&self, t: u64) -> u64 {
        t.saturating_sub(self.start).div_ceil(self.every)
    }
    fn frames_until(&self, t: u64) -> u64 {
        let last = self.end.min(t.saturating_add(1));
        if last <= self.start {
            0
        } else {
            (last - self.start).div_ceil(self.every)
        }
    }
}

/// The implant's link, the remote, the air and the attackers of one run.
pub struct Telemetry {
    implant: Implant,
    session: Option<ImplantSession>,
    /// When the implant's session last carried an authentic frame (pump time).
    session_heard: Instant,
    remote: Remote,
    attacker: StaticKeypair,
    air: Air,
    rng: ChaCha8Rng,
    streams: Vec<Stream>,
    /// Jammed until this true time, ms.
    jammed_until: u64,
    /// The remote's last genuine hello, as recorded off the air.
    recorded_hello: Option<Vec<u8>>,
    totals: RadioTotals,
    /// Energy charged by the end of the last turn, µJ.
    last_total: u64,
    asleep: bool,
    /// The clinician's programmer, enrolled when the scenario has a `[firmware]` table.
    clinician: Option<Remote>,
    /// The implant's firmware update side ([`firmware`]).
    firmware: Option<firmware::Firmware>,
}

/// Which enrolled device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Remote,
    Clinician,
}

fn keypair(rng: &mut ChaCha8Rng) -> StaticKeypair {
    loop {
        if let Ok(k) = StaticKeypair::from_secret(rng.random()) {
            return k;
        }
    }
}

impl Telemetry {
    /// The telemetry of a scenario: `None` unless it asks for one.
    pub fn new(sc: &crate::scenario::Scenario) -> Option<Box<Telemetry>> {
        let config = sc.radio?;
        if !matches!(sc.device, crate::scenario::Device::Programmable(_)) {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(sc.seed ^ 0x7261_6469_6f00_0001);
        let implant_keys = keypair(&mut rng);
        let remote_keys = keypair(&mut rng);
        let attacker = keypair(&mut rng);
        let key_id = key_id_for(remote_keys.public());
        let preauth: [u8; 32] = rng.random();
        let mut registry = Registry::new();
        // A fresh registry has room, and the key and id are new: this cannot fail.
        let _ = registry.enroll(Enrolment::new(
            *remote_keys.public(),
            Role::PatientRemote,
            key_id,
            preauth,
        ));
        let policy = RadioPolicy {
            daily_budget_uj: config.daily_budget_uj,
            backoff_first: config.backoff_first,
            backoff_max: config.backoff_max,
        };
        // Drawn after the remote's and the attacker's keys, so a scenario without
        // firmware draws what it always drew.
        let (clinician, firmware) = match &sc.firmware {
            Some(config) => {
                let keys = keypair(&mut rng);
                let key_id = key_id_for(keys.public());
                let preauth: [u8; 32] = rng.random();
                let _ = registry.enroll(Enrolment::new(
                    *keys.public(),
                    Role::Clinician,
                    key_id,
                    preauth,
                ));
                let maker = ed25519_dalek::SigningKey::from_bytes(&rng.random());
                (
                    Some(Remote {
                        keys,
                        key_id,
                        preauth,
                        counter: 0,
                        session: None,
                        last: Instant::ZERO,
                        next_id: 1,
                    }),
                    firmware::Firmware::new(config, maker),
                )
            }
            None => (None, None),
        };
        let radio = Radio::new(RadioCosts::TYPICAL, policy);
        Some(Box::new(Telemetry {
            implant: Implant::with_radio(implant_keys, registry, radio),
            session: None,
            session_heard: Instant::ZERO,
            remote: Remote {
                keys: remote_keys,
                key_id,
                preauth,
                counter: 0,
                session: None,
                last: Instant::ZERO,
                next_id: 1,
            },
            attacker,
            air: Air::new(),
            rng,
            streams: Vec::new(),
            jammed_until: 0,
            recorded_hello: None,
            totals: RadioTotals {
                daily_budget_uj: config.daily_budget_uj,
                energy_series: vec![(0.0, 0.0)],
                ..RadioTotals::default()
            },
            last_total: 0,
            asleep: false,
            clinician,
            firmware,
        }))
    }

    /// At the start: the firmware's boot is logged in the pump's event log.
    pub(crate) fn started(&mut self, hw: Instant, pump: &mut Pump) {
        if let Some(fw) = self.firmware.as_mut() {
            thecal_link::log_update_events(&mut fw.updater, pump, hw);
        }
    }

    /// The implant restarted (a power cut, or the restart into a trial image) and its
    /// therapy core was restored: every session is gone; the bootloader starts the
    /// firmware, and a trial image runs its self-test (`self_test_passed`). Returns a note.
    pub(crate) fn restarted(
        &mut self,
        hw: Instant,
        pump: &mut Pump,
        self_test_passed: bool,
    ) -> Option<String> {
        self.session = None;
        self.remote.session = None;
        if let Some(c) = self.clinician.as_mut() {
            c.session = None;
        }
        let fw = self.firmware.as_mut()?;
        Some(fw.restart(hw, pump, self_test_passed))
    }

    /// An entry the pump logged, at `t_h` hours: denials counted by reason, the
    /// firmware's confirmations and refusals kept (from the pump's own log).
    pub(crate) fn logged(&mut self, t_h: f64, e: &thecal_pump::event::Event) {
        use thecal_pump::event::Event as E;
        match *e {
            E::HandshakeDenied { reason, .. } => {
                self.totals.denials_logged += 1;
                *self.totals.denial_reasons.entry(reason).or_default() += 1;
            }
            E::FirmwareUpdate(r) => {
                let fw = self
                    .totals
                    .firmware
                    .get_or_insert_with(FirmwareTotals::default);
                match r.code {
                    6 => fw.confirmed += 1,
                    10 => fw.refused.push(FirmwareRefusal {
                        t_h,
                        step: r.step,
                        code: r.reason,
                        words: thecal_update::updater::code_text(r.reason)
                            .unwrap_or("unknown code")
                            .to_string(),
                    }),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Runs one turn at true time `now` (pump time `hw`).
    pub(crate) fn turn(&mut self, turn: Turn, now: u64, hw: Instant, pump: &mut Pump) -> TurnOut {
        let mut out = TurnOut::default();
        match turn {
            Turn::Press(id) => {
                self.totals.link_presses += 1;
                match self.ask(now, hw, pump, id, &mut out) {
                    Some(Reply::BolusAccepted { volume, .. }) => {
                        self.totals.link_boluses += 1;
                        out.notes
                            .push(format!("remote: bolus of {volume} accepted"));
                    }
                    Some(Reply::Refused { text, .. }) => {
                        out.refused += 1;
                        out.notes.push(format!(
                            "refused {}: {text}",
                            thecal_pump::command::CommandKind::PatientBolus.name()
                        ));
                    }
                    Some(other) => {
                        out.notes
                            .push(format!("remote: unexpected answer {other:?}"));
                    }
                    None => {
                        self.totals.link_failures += 1;
                        out.notes
                            .push("remote: no answer from the pump (press had no effect)".into());
                    }
                }
            }
            Turn::Attack(a) => self.start(a, now, hw, pump, &mut out),
            Turn::Stream(i) => self.stream(i, now, hw, pump, &mut out),
        }
        self.account(now);
        out.restart = self.firmware.as_ref().is_some_and(|f| f.restart_pending);
        out
    }

    fn start(&mut self, a: Attack, now: u64, hw: Instant, pump: &mut Pump, out: &mut TurnOut) {
        let stream = |kind, every: Duration, duration: u64| Stream {
            kind,
            start: now,
            every: every.ms().max(1),
            end: now.saturating_add(duration),
            next_k: 0,
            parked: false,
        };
        let new = match a {
            Attack::HandshakeFlood { every, duration } => {
                out.notes.push(format!(
                    "attack: handshake flood, one frame per {every} for {duration}"
                ));
                stream(StreamKind::HandshakeFlood, every, duration.ms())
            }
            Attack::BolusFlood { every, duration } => {
                out.notes.push(format!(
                    "attack: stolen remote asks for a bolus every {every} for {duration}"
                ));
                stream(StreamKind::BolusFlood, every, duration.ms())
            }
            Attack::Replay { every } => {
                let frames = self.air.recorded(Dir::ToImplant);
                out.notes.push(format!(
                    "attack: replay of {} recorded frames, one per {every}",
                    frames.len()
                ));
                let n = frames.len() as u64;
                stream(
                    StreamKind::Replay(frames),
                    every,
                    every.ms().max(1).saturating_mul(n),
                )
            }
            Attack::FirmwareUpdate {
                version,
                security_counter,
            } => {
                self.install(version, security_counter, now, hw, pump, out);
                return;
            }
            Attack::UpdateReplay {
                update,
                every,
                via_programmer,
            } => {
                let Some(rec) = self.recorded(update, out) else {
                    return;
                };
                if via_programmer {
                    self.totals.attacks += 1;
                    self.stolen_programmer(update, &rec.image, now, hw, pump, out);
                    return;
                }
                out.notes.push(format!(
                    "attack: replay of firmware update {update} as recorded off the air: \
                     {} frames, one per {every}",
                    rec.frames.len()
                ));
                let n = rec.frames.len() as u64;
                stream(
                    StreamKind::Replay(rec.frames),
                    every,
                    every.ms().max(1).saturating_mul(n),
                )
            }
            Attack::ChunkFlood {
                update,
                every,
                duration,
            } => {
                let Some(rec) = self.recorded(update, out) else {
                    return;
                };
                out.notes.push(format!(
                    "attack: the {} recorded chunk frames of firmware update {update} \
                     replayed in turn, one per {every} for {duration}",
                    rec.chunks.len()
                ));
                if rec.chunks.is_empty() {
                    return;
                }
                stream(StreamKind::Cycle(rec.chunks), every, duration.ms())
            }
            Attack::Jamming { duration } => {
                self.jammed_until = self.jammed_until.max(now.saturating_add(duration.ms()));
                out.notes.push(format!("attack: jamming for {duration}"));
                return;
            }
            Attack::Wand => {
                self.implant.proximity_wake(hw, pump);
                self.totals.wand_wakes += 1;
                out.notes
                    .push("programmer wand over the pump: the radio listens again".into());
                for (i, s) in self.streams.iter_mut().enumerate() {
                    if s.parked {
                        s.parked = false;
                        s.next_k = s.tick_at_or_after(now);
                        if s.at(s.next_k) < s.end {
                            out.schedule.push((s.at(s.next_k), i));
                        }
                    }
                }
                return;
            }
        };
        self.totals.attacks += 1;
        if new.start < new.end {
            out.schedule.push((new.start, self.streams.len()));
        }
        self.streams.push(new);
    }

    fn stream(&mut self, i: usize, now: u64, hw: Instant, pump: &mut Pump, out: &mut TurnOut) {
        let Some(s) = self.streams.get(i).cloned() else {
            return;
        };
        let k = s.next_k;
        // Frames that are never received are never built: jump past the jamming or the
        // back-off, or park while the radio sleeps.
        let resume_at = if now < self.jammed_until {
            Some(self.jammed_until)
        } else {
            match self.implant.radio().listening(hw) {
                Ok(()) => None,
                Err(thecal_link::radio::Deaf::BackingOff { until }) => {
                    Some(now.saturating_add(until.saturating_since(hw).ms()))
                }
                Err(thecal_link::radio::Deaf::Asleep) => {
                    if let Some(s) = self.streams.get_mut(i) {
                        s.parked = true;
                    }
                    if matches!(s.kind, StreamKind::BolusFlood) {
                        // It sent and got no answer: it will say hello again.
                        self.remote.session = None;
                    }
                    return;
                }
            }
        };
        let next_k = match resume_at {
            Some(t) => {
                if matches!(s.kind, StreamKind::BolusFlood) {
                    self.remote.session = None;
                }
                s.tick_at_or_after(t).max(k + 1)
            }
            None => {
                let before = self.implant.radio().stats().spent_total_uj;
                match &s.kind {
                    StreamKind::Cycle(frames) => {
                        let n = frames.len().max(1) as u64;
                        if let Some(f) = frames.get((k % n) as usize) {
                            self.totals.attack_frames_heard += 1;
                            self.air.inject(Dir::ToImplant, f);
                            self.deliver(now, hw, pump, out);
                            while self.air.receive(Dir::ToDevice).is_some() {}
                        }
                    }
                    StreamKind::HandshakeFlood => {
                        let frame = self.flood_frame(k);
                        self.totals.attack_frames_heard += 1;
                        self.air.inject(Dir::ToImplant, &frame);
                        self.deliver(now, hw, pump, out);
                        // Nobody reads the replies to the attacker.
                        while self.air.receive(Dir::ToDevice).is_some() {}
                    }
                    StreamKind::Replay(frames) => {
                        if let Some(f) = frames.get(k as usize) {
                            self.totals.attack_frames_heard += 1;
                            self.air.inject(Dir::ToImplant, f);
                            self.deliver(now, hw, pump, out);
                            while self.air.receive(Dir::ToDevice).is_some() {}
                        }
                    }
                    StreamKind::BolusFlood => {
                        self.totals.attack_frames_heard += 1;
                        let id = 0x8000_0000u32.wrapping_add(k as u32);
                        match self.ask(now, hw, pump, id, out) {
                            Some(Reply::BolusAccepted { volume, .. }) => {
                                self.totals.link_boluses += 1;
                                out.notes
                                    .push(format!("stolen remote: bolus of {volume} accepted"));
                            }
                            Some(Reply::Refused { .. }) => out.refused += 1,
                            _ => {}
                        }
                    }
                }
                let spent = self.implant.radio().stats().spent_total_uj;
                self.totals.attack_uj += spent.saturating_sub(before);
                k + 1
            }
        };
        if let Some(s) = self.streams.get_mut(i) {
            s.next_k = next_k;
            let at = s.at(next_k);
            if at < s.end {
                out.schedule.push((at.max(now + 1), i));
            }
        }
    }

    /// A flood frame: random bytes, a hello forged for the remote's key id, or the
    /// remote's recorded hello (a replay of it), in turn.
    fn flood_frame(&mut self, k: u64) -> Vec<u8> {
        match k % 3 {
            0 => {
                let n = self.rng.random_range(16..=160usize);
                (0..n).map(|_| self.rng.random::<u8>()).collect()
            }
            1 => self.forged_hello(self.remote.key_id),
            _ => match &self.recorded_hello {
                Some(f) => f.clone(),
                None => {
                    // Nothing recorded yet: a hello claiming a key id nobody holds.
                    let id = self.remote.key_id.wrapping_add(1).max(1);
                    self.forged_hello(id)
                }
            },
        }
    }

    fn forged_hello(&mut self, key_id: u32) -> Vec<u8> {
        let auth = HelloAuth {
            header: HelloHeader {
                key_id,
                counter: u64::MAX - self.rng.random_range(0..1_000_000u64),
            },
            preauth: self.rng.random(),
            psk: None,
        };
        let entropy = Entropy::new(self.rng.random());
        let mut out = [0u8; MAX_FRAME];
        match Initiator::new(&self.attacker, self.implant.public(), &auth, entropy)
            .and_then(|i| i.write_hello(&mut out))
        {
            Ok((_, n)) => out.get(..n).unwrap_or_default().to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// The remote asks for a patient bolus (`id`): a hello first unless its session is
    /// live, then the request.
    fn ask(
        &mut self,
        now: u64,
        hw: Instant,
        pump: &mut Pump,
        id: u32,
        out: &mut TurnOut,
    ) -> Option<Reply> {
        let body = Body::Pump(Command::PatientBolus { request_id: id });
        self.request(Who::Remote, now, hw, pump, body, out)
    }

    fn device(&mut self, who: Who) -> Option<&mut Remote> {
        match who {
            Who::Remote => Some(&mut self.remote),
            Who::Clinician => self.clinician.as_mut(),
        }
    }

    /// An enrolled device sends `body`: a hello first unless its session is live, then
    /// the request; its answer, if one came.
    fn request(
        &mut self,
        who: Who,
        now: u64,
        hw: Instant,
        pump: &mut Pump,
        body: Body,
        out: &mut TurnOut,
    ) -> Option<Reply> {
        let dev = self.device(who)?;
        let idle = hw.saturating_since(dev.last) > SESSION_IDLE_LIMIT;
        if dev.session.is_none() || idle {
            dev.session = None;
            let waiting = self.hello(who)?;
            // The implant keeps one session: the other device's ends with this hello.
            match who {
                Who::Remote => {
                    if let Some(c) = self.clinician.as_mut() {
                        c.session = None;
                    }
                }
                Who::Clinician => self.remote.session = None,
            }
            self.deliver(now, hw, pump, out);
            let reply = self.air.receive(Dir::ToDevice)?;
            let dev = self.device(who)?;
            match waiting.read_reply(&reply) {
                Ok(s) => {
                    dev.session = Some(s);
                    dev.last = hw;
                }
                Err(_) => return None,
            }
        }
        let dev = self.device(who)?;
        let command_id = dev.next_id;
        dev.next_id = dev.next_id.wrapping_add(1);
        let session = dev.session.as_mut()?;
        let mut plain = [0u8; MAX_PLAINTEXT];
        let mut frame = [0u8; MAX_FRAME];
        let request = Request { command_id, body };
        let sent = request
            .encode(&mut plain)
            .ok()
            .and_then(|bytes| session.write_message(bytes, &mut frame).ok());
        let Some(n) = sent else {
            dev.session = None;
            return None;
        };
        self.air
            .transmit(Dir::ToImplant, frame.get(..n).unwrap_or_default());
        self.deliver(now, hw, pump, out);
        let answer = self.air.receive(Dir::ToDevice).and_then(|f| {
            let session = self.device(who)?.session.as_mut()?;
            let n = session.read_message(&f, &mut plain).ok()?;
            thecal_link::Answer::decode(plain.get(..n)?).ok()
        });
        let dev = self.device(who)?;
        match answer {
            Some(a) if a.command_id == command_id => {
                dev.last = hw;
                Some(a.reply)
            }
            _ => {
                // No answer: the frame was lost and the session's nonces moved on.
                dev.session = None;
                None
            }
        }
    }

    fn hello(&mut self, who: Who) -> Option<AwaitingReply> {
        let implant = *self.implant.public();
        let entropy = Entropy::new(self.rng.random());
        let dev = self.device(who)?;
        dev.counter += 1;
        let auth = HelloAuth {
            header: HelloHeader {
                key_id: dev.key_id,
                counter: dev.counter,
            },
            preauth: dev.preauth,
            psk: None,
        };
        let mut out = [0u8; MAX_FRAME];
        let (waiting, n) = Initiator::new(&dev.keys, &implant, &auth, entropy)
            .and_then(|i| i.write_hello(&mut out))
            .ok()?;
        let hello = out.get(..n)?;
        if who == Who::Remote {
            self.recorded_hello = Some(hello.to_vec());
        }
        self.air.transmit(Dir::ToImplant, hello);
        Some(waiting)
    }

    // ----- the firmware update ------------------------------------------------------

    /// Recorded update number `update`, or a note that there is none.
    fn recorded(&mut self, update: u32, out: &mut TurnOut) -> Option<firmware::Recorded> {
        let rec = self
            .firmware
            .as_ref()
            .and_then(|f| f.recorded.get((update as usize).checked_sub(1)?))
            .cloned();
        if rec.is_none() {
            out.notes.push(format!(
                "attack: firmware update {update} was never recorded off the air: nothing to \
                 replay"
            ));
        }
        rec
    }

    /// One update step from the clinician's programmer (or whoever holds it).
    fn update_step(
        &mut self,
        request: UpdateRequest,
        now: u64,
        hw: Instant,
        pump: &mut Pump,
        out: &mut TurnOut,
    ) -> Result<UpdateReply, String> {
        match self.request(Who::Clinician, now, hw, pump, Body::Update(request), out) {
            Some(Reply::Update(r)) => Ok(r),
            Some(other) => Err(format!("unexpected answer {other:?}")),
            None => Err("no answer from the implant".into()),
        }
    }

    /// Sends `image` from the clinician's programmer: begin, every chunk, verify. The
    /// implant's refusal, in words, as the error.
    fn transfer(
        &mut self,
        image: &[u8],
        now: u64,
        hw: Instant,
        pump: &mut Pump,
        out: &mut TurnOut,
    ) -> Result<thecal_update::ImageInfo, String> {
        let refused = |r: UpdateReply| match r {
            UpdateReply::Refused(why) => format!("refused: {why} (code {})", why.code()),
            other => format!("unexpected answer {other:?}"),
        };
        let total = u32::try_from(image.len()).map_err(|_| "image too large".to_string())?;
        // The programmer's label of the image: its own digest.
        let image_id = thecal_update::image::parse(image)
            .map(|p| p.info.digest)
            .unwrap_or([0; 32]);
        match self.update_step(UpdateRequest::Begin { total, image_id }, now, hw, pump, out)? {
            UpdateReply::Accepted => {}
            other => return Err(refused(other)),
        }
        let mut at = 0usize;
        while at < image.len() {
            let end = (at + UPDATE_CHUNK_MAX).min(image.len());
            let data = heapless::Vec::from_slice(image.get(at..end).unwrap_or_default())
                .map_err(|_| "chunk too long".to_string())?;
            let chunk = UpdateRequest::Chunk {
                offset: at as u32,
                data,
            };
            match self.update_step(chunk, now, hw, pump, out)? {
                UpdateReply::Have { next } => at = next as usize,
                other => return Err(refused(other)),
            }
        }
        match self.update_step(UpdateRequest::Verify, now, hw, pump, out)? {
            UpdateReply::Verified(info) => Ok(info),
            other => Err(refused(other)),
        }
    }

    /// The clinician's programmer installs version `version` (SIM-063): the transfer,
    /// the verification and the mark for trial, all recorded off the air by the
    /// attacker; the implant restarts after the turn.
    fn install(
        &mut self,
        version: thecal_update::Version,
        security_counter: Option<u32>,
        now: u64,
        hw: Instant,
        pump: &mut Pump,
        out: &mut TurnOut,
    ) {
        let Some(fw) = self.firmware.as_ref() else {
            return;
        };
        let counter = security_counter.unwrap_or(fw.status().security_counter);
        let Some(image) = fw.image(version, counter) else {
            out.notes
                .push(format!("firmware: version {version} cannot be signed"));
            return;
        };
        let start = self.air.transcript().len();
        let before = self.implant.radio().stats().spent_total_uj;
        let result = self.transfer(&image, now, hw, pump, out).and_then(|_| {
            match self.update_step(UpdateRequest::MarkForTrial, now, hw, pump, out)? {
                UpdateReply::Accepted => Ok(()),
                UpdateReply::Refused(why) => Err(format!("refused: {why} (code {})", why.code())),
                other => Err(format!("unexpected answer {other:?}")),
            }
        });
        let frames: Vec<Vec<u8>> = self
            .air
            .transcript()
            .get(start..)
            .unwrap_or_default()
            .iter()
            .filter(|(d, _)| *d == Dir::ToImplant)
            .map(|(_, f)| f.clone())
            .collect();
        let chunks: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| f.len() > UPDATE_CHUNK_MAX)
            .cloned()
            .collect();
        let spent = self
            .implant
            .radio()
            .stats()
            .spent_total_uj
            .saturating_sub(before);
        let totals = self
            .totals
            .firmware
            .get_or_insert_with(FirmwareTotals::default);
        totals.updates_sent += 1;
        totals.chunk_frames += chunks.len() as u64;
        totals.update_uj += spent;
        out.notes.push(match &result {
            Ok(()) => format!(
                "clinician: firmware {version} (counter {counter}, {} bytes) sent in {} chunk \
                 frames, verified and marked for trial ({:.1} mJ of radio)",
                image.len(),
                chunks.len(),
                spent as f64 / 1e3
            ),
            Err(e) => format!("clinician: firmware {version} not installed: {e}"),
        });
        if let Some(fw) = self.firmware.as_mut() {
            fw.recorded.push(firmware::Recorded {
                image,
                frames,
                chunks,
            });
        }
    }

    /// A stolen clinician programmer sends the image of recorded update `update` in its
    /// own session (SIM-063): it can go as far as the implant lets it.
    fn stolen_programmer(
        &mut self,
        update: u32,
        image: &[u8],
        now: u64,
        hw: Instant,
        pump: &mut Pump,
        out: &mut TurnOut,
    ) {
        let before = self.implant.radio().stats().spent_total_uj;
        let verified = self.transfer(image, now, hw, pump, out);
        // It asks for the trial whatever the verification said.
        let marked = match self.update_step(UpdateRequest::MarkForTrial, now, hw, pump, out) {
            Ok(UpdateReply::Accepted) => Ok(()),
            Ok(UpdateReply::Refused(why)) => Err(format!("refused: {why} (code {})", why.code())),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e),
        };
        let spent = self.implant.radio().stats().spent_total_uj;
        self.totals.attack_uj += spent.saturating_sub(before);
        let head =
            format!("attack: a stolen programmer sent the image of firmware update {update}");
        out.notes.push(match (verified, marked) {
            (Ok(_), Ok(())) => format!("{head}: ACCEPTED and marked for trial"),
            (Ok(_), Err(m)) => format!("{head}: verified, but the mark for trial was {m}"),
            (Err(v), Err(m)) => format!("{head}: verification {v}; the mark for trial {m}"),
            (Err(v), Ok(())) => format!("{head}: verification {v}, yet MARKED for trial"),
        });
    }

    /// The air carries what is in flight: nothing if jammed, else the implant serves
    /// every frame towards it (its answers go on the air).
    fn deliver(&mut self, now: u64, hw: Instant, pump: &mut Pump, out: &mut TurnOut) {
        if now < self.jammed_until {
            while self.air.drop_next(Dir::ToImplant).is_some() {
                self.totals.frames_jammed += 1;
            }
            while self.air.drop_next(Dir::ToDevice).is_some() {
                self.totals.frames_jammed += 1;
            }
            return;
        }
        while let Some(f) = self.air.receive(Dir::ToImplant) {
            self.totals.frames_sent += 1;
            if self.implant.radio().listening(hw).is_err() {
                // Never received: costs nothing and reaches nothing.
                continue;
            }
            out.wakes += 1;
            self.serve(hw, &f, pump);
        }
    }

    fn serve(&mut self, hw: Instant, f: &[u8], pump: &mut Pump) {
        let mut out = [0u8; MAX_FRAME];
        if self.session.is_some() && hw.saturating_since(self.session_heard) > SESSION_IDLE_LIMIT {
            // The firmware closes an idle session.
            self.session = None;
        }
        let hello = Frame::new_checked(f).map(|fr| fr.kind()) == Ok(Kind::HandshakeInit);
        match (&mut self.session, hello) {
            (Some(session), false) => {
                let mut random = || [0x5au8; 32];
                let log: Vec<LogEntry> = Vec::new();
                let mut host = Host {
                    pump,
                    log: &log,
                    random: &mut random,
                };
                let r = match self.firmware.as_mut() {
                    Some(fw) => {
                        let mut port = thecal_link::UpdatePort {
                            updater: &mut fw.updater,
                            storage: &mut fw.storage,
                            restart: false,
                        };
                        let r = self.implant.handle_with_update(
                            session,
                            hw,
                            f,
                            &mut host,
                            Some(&mut port),
                            &mut out,
                        );
                        fw.restart_pending |= port.restart;
                        r
                    }
                    None => self.implant.handle(session, hw, f, &mut host, &mut out),
                };
                if let Ok(n) = r {
                    self.session_heard = hw;
                    self.air
                        .transmit(Dir::ToDevice, out.get(..n).unwrap_or_default());
                }
            }
            _ => {
                // A hello, or any frame while no session is open (refused as a bad hello).
                let entropy = Entropy::new(self.rng.random());
                if let Ok(accepted) = self.implant.accept(hw, f, entropy, pump, &mut out) {
                    // The registry's new counter would be persisted here, before the reply.
                    let _ = self.implant.take_dirty();
                    self.session = Some(accepted.session);
                    self.session_heard = hw;
                    self.air.transmit(
                        Dir::ToDevice,
                        out.get(..accepted.reply_len).unwrap_or_default(),
                    );
                }
            }
        }
    }

    /// Books the energy of the turn: per day, the running total, sleep and wake.
    fn account(&mut self, now: u64) {
        let radio = self.implant.radio();
        let total = radio.stats().spent_total_uj;
        let delta = total.saturating_sub(self.last_total);
        if delta > 0 {
            let day = (now / MS_PER_DAY) as usize;
            if self.totals.daily_uj.len() <= day {
                self.totals.daily_uj.resize(day + 1, 0);
            }
            if let Some(d) = self.totals.daily_uj.get_mut(day) {
                *d += delta;
            }
            self.last_total = total;
            let point = (h(now), total as f64 / 1e6);
            match self.totals.energy_series.last_mut() {
                Some(last) if last.0 == point.0 => *last = point,
                _ => self.totals.energy_series.push(point),
            }
        }
        let asleep = radio.asleep();
        if asleep && !self.asleep {
            self.totals.slept += 1;
            self.totals.first_sleep_h.get_or_insert(h(now));
        }
        self.asleep = asleep;
    }

    /// The totals at the end of a run that stopped at true time `end`.
    pub fn finish(mut self, end: u64) -> RadioTotals {
        let stats = *self.implant.radio().stats();
        let t = &mut self.totals;
        t.energy_uj = stats.spent_total_uj;
        t.rejected_uj = stats.rejected_uj;
        t.frames_received = stats.frames_received;
        t.frames_rejected = stats.frames_rejected;
        t.handshakes = stats.handshakes;
        t.asleep_at_end = self.implant.radio().asleep();
        t.peak_day_uj = t.daily_uj.iter().copied().max().unwrap_or(0);
        t.peak_day_pct_of_budget = if t.daily_budget_uj > 0 {
            t.peak_day_uj as f64 * 100.0 / t.daily_budget_uj as f64
        } else {
            0.0
        };
        let days = (end as f64 / MS_PER_DAY as f64).max(1e-9);
        t.mean_day_pct_of_budget = if t.daily_budget_uj > 0 {
            t.energy_uj as f64 * 100.0 / (t.daily_budget_uj as f64 * days)
        } else {
            0.0
        };
        t.attack_frames_sent = self
            .streams
            .iter()
            .map(|s| s.frames_until(end))
            .sum::<u64>();
        if let Some(last) = t.energy_series.last().copied() {
            if last.0 < h(end) {
                t.energy_series.push((h(end), last.1));
            }
        }
        if let Some(fw) = &self.firmware {
            let st = fw.status();
            let f = t.firmware.get_or_insert_with(FirmwareTotals::default);
            f.running = st.running.to_string();
            f.slot = st.slot.to_string();
            f.security_counter = st.security_counter;
        }
        self.totals
    }
}

/// The remote's public key and key id, for tests.
#[cfg(test)]
fn remote_of(t: &Telemetry) -> (thecal_link::PublicKey, u32) {
    (*t.remote.keys.public(), t.remote.key_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine;
    use crate::scenario;

    const BASE: &str = r#"
name = "t"
description = "t"
duration = "2 d"
fill = "20 mL"
telemetry = true
[device]
model = "synchromed-20"
[prescription]
drug = [{ name = "morphine", concentration = "10 mg/mL" }]
basal = { rate = "0.3 mL/day" }
patient_bolus = { volume = "20 uL", duration = "10 min", lockout = "3 h", max_per_day = 4 }
"#;

    fn with(extra: &str) -> scenario::Scenario {
        scenario::parse(&format!("{BASE}{extra}")).unwrap()
    }

    fn press_at(h: u32) -> String {
        format!("[[event]]\nat = \"{h} h\"\nkind = \"patient-press\"\n")
    }

    #[test]
    fn the_remote_is_enrolled_and_a_press_goes_over_the_link_sim_041() {
        let sc = with(&press_at(1));
        let t = Telemetry::new(&sc).unwrap();
        let (key, id) = remote_of(&t);
        let e = t.implant.registry().by_id(id).unwrap();
        assert_eq!(e.key, key);
        assert_eq!(e.role, Role::PatientRemote);
        let r = engine::run(&sc);
        let radio = r.radio.as_ref().unwrap();
        assert_eq!(radio.link_presses, 1);
        assert_eq!(radio.link_boluses, 1);
        assert_eq!(radio.handshakes, 1);
        assert_eq!(r.totals.boluses_given, 1);
        assert!(radio.energy_uj > 0);
    }

    #[test]
    fn without_telemetry_presses_go_straight_to_the_core_sim_041() {
        let plain = BASE.replace("telemetry = true\n", "");
        let sc = scenario::parse(&format!("{plain}{}", press_at(1))).unwrap();
        assert!(sc.radio.is_none());
        let r = engine::run(&sc);
        assert!(r.radio.is_none());
        assert_eq!(r.totals.boluses_given, 1);
    }

    #[test]
    fn a_session_is_reused_within_the_idle_limit_and_renewed_after_it_sim_041() {
        // Two presses a minute apart share a session; one 3 h later needs a new hello.
        let sc = with(&format!(
            "{}[[event]]\nat = \"61 min\"\nkind = \"patient-press\"\n{}",
            press_at(1),
            press_at(4)
        ));
        let r = engine::run(&sc);
        let radio = r.radio.as_ref().unwrap();
        assert_eq!(radio.link_presses, 3);
        assert_eq!(radio.handshakes, 2);
        assert_eq!(radio.link_boluses, 2, "the second press is in the lockout");
    }

    #[test]
    fn jamming_makes_presses_fail_and_costs_nothing_sim_041() {
        let sc = with(&format!(
            "[[event]]\nat = \"0 h\"\nkind = \"jamming\"\nduration = \"1 d\"\n{}",
            press_at(2)
        ));
        let r = engine::run(&sc);
        let radio = r.radio.as_ref().unwrap();
        assert_eq!(radio.link_failures, 1);
        assert_eq!(radio.link_boluses, 0);
        assert_eq!(radio.energy_uj, 0);
        assert!(radio.frames_jammed >= 1);
        assert_eq!(r.totals.boluses_given, 0);
    }

    #[test]
    fn a_replayed_session_gives_no_bolus_sim_041() {
        let sc = with(&format!(
            "{}[[event]]\nat = \"25 h\"\nkind = \"replay\"\nevery = \"10 min\"\n",
            press_at(1)
        ));
        let r = engine::run(&sc);
        let radio = r.radio.as_ref().unwrap();
        assert_eq!(radio.link_boluses, 1);
        assert_eq!(r.totals.boluses_given, 1);
        assert_eq!(radio.attack_frames_sent, 2, "the hello and the request");
        assert_eq!(radio.frames_rejected, 2);
        assert_eq!(radio.handshakes, 1);
        assert!(radio.denials_logged >= 1);
    }

    #[test]
    fn a_flood_skips_frames_the_receiver_cannot_hear_sim_041() {
        let sc = with(
            "[[event]]\nat = \"1 h\"\nkind = \"handshake-flood\"\nevery = \"100 ms\"\nduration = \"6 h\"\n",
        );
        let r = engine::run(&sc);
        let radio = r.radio.as_ref().unwrap();
        assert_eq!(radio.attack_frames_sent, 6 * 36_000);
        assert!(radio.frames_received < 100, "{}", radio.frames_received);
        assert_eq!(radio.frames_received, radio.frames_rejected);
        assert_eq!(radio.handshakes, 0);
        assert!(
            r.totals.engine_events < 10_000,
            "{}",
            r.totals.engine_events
        );
    }

    #[test]
    fn the_budget_puts_the_radio_to_sleep_and_the_wand_wakes_it_sim_041() {
        let sc = scenario::parse(&format!(
            "{}[radio]\ndaily_budget = \"50 mJ\"\n\
             [[event]]\nat = \"1 h\"\nkind = \"bolus-flood\"\nevery = \"1 s\"\nduration = \"1 d\"\n\
             [[event]]\nat = \"30 h\"\nkind = \"wand\"\n{}",
            BASE.replace("telemetry = true\n", ""),
            press_at(40)
        ))
        .unwrap();
        let r = engine::run(&sc);
        let radio = r.radio.as_ref().unwrap();
        assert_eq!(radio.slept, 1);
        assert!(radio.first_sleep_h.unwrap() < 2.0);
        assert!(!radio.asleep_at_end);
        assert_eq!(radio.wand_wakes, 1);
        assert!(
            r.alarms
                .iter()
                .any(|a| a.kind == "TelemetryPaused" && a.what == "raised")
        );
        assert!(
            r.alarms
                .iter()
                .any(|a| a.kind == "TelemetryPaused" && a.what == "cleared")
        );
        // The patient's own press after the wand reached the pump.
        assert!(radio.link_presses == 1 && radio.link_failures == 0);
    }

    #[test]
    fn attack_events_need_telemetry_and_energies_parse_sim_041() {
        let plain = BASE.replace("telemetry = true\n", "");
        let e = scenario::parse(&format!(
            "{plain}[[event]]\nat = \"1 h\"\nkind = \"wand\"\n"
        ))
        .unwrap_err();
        assert!(e.field.contains("event[0]"), "{e}");
        let e = scenario::parse(&format!(
            "{BASE}[[event]]\nat = \"1 h\"\nkind = \"jamming\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.field, "event[0].duration");
        assert_eq!(joules("x", "18 J").unwrap(), 18_000_000);
        assert_eq!(joules("x", "500 mJ").unwrap(), 500_000);
        assert_eq!(joules("x", "7 uJ").unwrap(), 7);
        assert!(joules("x", "-1 J").is_err());
        assert!(joules("x", "1 parsec").is_err());
    }
}
