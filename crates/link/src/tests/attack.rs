//! Attacks on the link against a real pump core: enrolled and unknown devices, privilege
//! escalation, eavesdropping, injection, replay and corruption, over the in-memory air.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use thecal_pump::command::{BridgeChoice, Command, CommandKind, Mode, Role, StopReason};
use thecal_pump::core::{Action, Pump};
use thecal_pump::event::Event;
use thecal_pump::log::LogEntry;
use thecal_pump::profile::HardwareProfile;
use thecal_rx::check::{PatientBolus, Prescription};
use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::schedule::Schedule;
use thecal_rx::{Duration, Instant, Volume};

use crate::air::{Air, Dir};
use crate::endpoint::{Denied, EnrolError, Enrolment, Host, Implant, ImplantSession, Registry};
use crate::frame::{Frame, Kind, MAX_FRAME};
use crate::message::{Answer, Body, LinkCommand, Reply, Request};
use crate::radio::{Radio, RadioCosts, RadioPolicy};
use crate::session::{
    AwaitingReply, Entropy, HelloAuth, HelloHeader, LinkError, MAX_PLAINTEXT, PublicKey, Session,
    StaticKeypair,
};

mod enrolment;
mod exhaustion;
mod hardening;
mod protocol;
mod update;

const CLINICIAN_ID: u32 = 101;
const REMOTE_ID: u32 = 202;
const EMERGENCY_ID: u32 = 303;
const NOT_PERMITTED: u8 = 1;

fn q<T: core::str::FromStr>(s: &str) -> T
where
    T::Err: core::fmt::Debug,
{
    s.parse().unwrap()
}

fn keys(seed: u8) -> StaticKeypair {
    StaticKeypair::from_secret([seed; 32]).unwrap()
}

/// Fresh entropy for each handshake (a counter stands in for a TRNG).
struct Trng(u8);

impl Trng {
    fn next(&mut self) -> Entropy {
        self.0 = self.0.wrapping_add(1);
        let mut b = [self.0; 32];
        b[0] ^= 0x5a;
        Entropy::new(b)
    }
}

/// A tiny deterministic PRNG for attacker frames.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ----- the implant: link endpoint around a real pump core ----------------------------

/// The firmware around the core: drains actions, moves the motor, keeps the event log.
struct Firmware {
    pump: Pump,
    now: Instant,
    events: Vec<LogEntry>,
}

impl Firmware {
    fn new() -> Self {
        let mut fw = Firmware {
            pump: Pump::new(HardwareProfile::synchromed_class(20), Instant::ZERO),
            now: Instant::ZERO,
            events: Vec::new(),
        };
        fw.drain();
        fw
    }

    fn drain(&mut self) {
        loop {
            let stroke = match self.pump.poll_action() {
                None => break,
                Some(Action::Stroke) => true,
                Some(Action::Log(e)) => {
                    self.events.push(e);
                    false
                }
                Some(_) => false,
            };
            if stroke {
                self.pump.handle_stroke_done(self.now, true);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now.saturating_add(d);
        while let Some(t) = self.pump.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.pump.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn accepted(&self, kind: CommandKind) -> Vec<(Role, u32)> {
        self.events
            .iter()
            .filter_map(|e| match e.event {
                Event::CommandAccepted { role, code, key_id } if code == kind.code() => {
                    Some((role, key_id))
                }
                _ => None,
            })
            .collect()
    }

    fn boluses_started(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.event, Event::BolusStarted { .. }))
            .count()
    }
}

/// What the implant did with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Connected { key_id: u32 },
    Denied(Denied),
    Answered,
    Rejected(LinkError),
    NoSession,
}

struct Implanted {
    implant: Implant,
    session: Option<ImplantSession>,
    /// The firmware's updater and flash, when it takes updates; `restart` is set when an
    /// image was marked for trial.
    update: Option<(thecal_update::Updater, thecal_update::mem::MemStorage)>,
    restart: bool,
    fw: Firmware,
    trng: Trng,
    outcomes: Vec<Outcome>,
}

impl Implanted {
    /// An implant whose receiver does not back off, for the tests of authenticity (the
    /// back-off and the energy budget have their own tests, with the typical policy).
    fn new(implant_keys: StaticKeypair, registry: Registry) -> Self {
        let policy = RadioPolicy {
            backoff_first: Duration::ZERO,
            ..RadioPolicy::TYPICAL
        };
        Implanted::with_radio(
            implant_keys,
            registry,
            Radio::new(RadioCosts::TYPICAL, policy),
        )
    }

    fn with_radio(implant_keys: StaticKeypair, registry: Registry, radio: Radio) -> Self {
        Implanted {
            implant: Implant::with_radio(implant_keys, registry, radio),
            session: None,
            update: None,
            restart: false,
            fw: Firmware::new(),
            trng: Trng(200),
            outcomes: Vec::new(),
        }
    }

    /// Handles every frame in flight to the implant, answering on the air.
    fn serve(&mut self, air: &mut Air) {
        while let Some(f) = air.receive(Dir::ToImplant) {
            let outcome = self.one(&f, air);
            self.outcomes.push(outcome);
        }
    }

    fn one(&mut self, f: &[u8], air: &mut Air) -> Outcome {
        let mut out = [0u8; MAX_FRAME];
        if Frame::new_checked(f).map(|fr| fr.kind()) == Ok(Kind::HandshakeInit) {
            let now = self.fw.now;
            let r = self
                .implant
                .accept(now, f, self.trng.next(), &mut self.fw.pump, &mut out);
            self.fw.drain();
            return match r {
                Ok(accepted) => {
                    let key_id = accepted.session.key_id();
                    self.session = Some(accepted.session);
                    air.transmit(Dir::ToDevice, &out[..accepted.reply_len]);
                    Outcome::Connected { key_id }
                }
                Err(d) => Outcome::Denied(d),
            };
        }
        let Some(session) = self.session.as_mut() else {
            return Outcome::NoSession;
        };
        let mut psk_source = Trng(0x40);
        let mut random = || psk_source.next().bytes();
        let mut host = Host {
            pump: &mut self.fw.pump,
            log: &self.fw.events,
            random: &mut random,
        };
        let r = match self.update.as_mut() {
            Some((updater, storage)) => {
                let mut port = crate::endpoint::UpdatePort {
                    updater,
                    storage,
                    restart: false,
                };
                let r = self.implant.handle_with_update(
                    session,
                    self.fw.now,
                    f,
                    &mut host,
                    Some(&mut port),
                    &mut out,
                );
                self.restart |= port.restart;
                r
            }
            None => self
                .implant
                .handle(session, self.fw.now, f, &mut host, &mut out),
        };
        self.fw.drain();
        match r {
            Ok(n) => {
                air.transmit(Dir::ToDevice, &out[..n]);
                Outcome::Answered
            }
            Err(e) => Outcome::Rejected(e),
        }
    }

    fn take_outcomes(&mut self) -> Vec<Outcome> {
        core::mem::take(&mut self.outcomes)
    }
}

// ----- devices -------------------------------------------------------------------------

struct Device {
    keys: StaticKeypair,
    key_id: u32,
    preauth: [u8; 32],
    counter: u64,
    waiting: Option<AwaitingReply>,
    session: Option<Session>,
    trng: Trng,
    next_id: u32,
}

impl Device {
    fn new(seed: u8, key_id: u32) -> Self {
        Device {
            keys: keys(seed),
            key_id,
            preauth: [seed ^ 0xa5; 32],
            counter: 0,
            waiting: None,
            session: None,
            trng: Trng(seed.wrapping_mul(3)),
            next_id: 1,
        }
    }

    fn public(&self) -> PublicKey {
        *self.keys.public()
    }

    fn enrolment(&self, role: Role) -> Enrolment {
        Enrolment::new(self.public(), role, self.key_id, self.preauth)
    }

    fn hello(&mut self, air: &mut Air, implant: &PublicKey) {
        self.counter += 1;
        let auth = HelloAuth {
            header: HelloHeader {
                key_id: self.key_id,
                counter: self.counter,
            },
            preauth: self.preauth,
            psk: None,
        };
        self.hello_with(air, implant, &auth);
    }

    /// An enrolment hello with a window's pre-shared key.
    fn enrolment_hello(&mut self, air: &mut Air, implant: &PublicKey, psk: [u8; 32]) {
        self.counter += 1;
        let auth = HelloAuth {
            header: HelloHeader {
                key_id: 0,
                counter: self.counter,
            },
            preauth: psk,
            psk: Some(psk),
        };
        self.hello_with(air, implant, &auth);
    }

    fn hello_with(&mut self, air: &mut Air, implant: &PublicKey, auth: &HelloAuth) {
        let mut out = [0u8; MAX_FRAME];
        let init = crate::Initiator::new(&self.keys, implant, auth, self.trng.next()).unwrap();
        let (waiting, n) = init.write_hello(&mut out).unwrap();
        self.waiting = Some(waiting);
        self.session = None;
        air.transmit(Dir::ToImplant, &out[..n]);
    }

    /// Reads the implant's reply, if one came.
    fn finish(&mut self, air: &mut Air) -> Option<Result<(), LinkError>> {
        let reply = air.receive(Dir::ToDevice)?;
        let waiting = self.waiting.take()?;
        Some(waiting.read_reply(&reply).map(|s| self.session = Some(s)))
    }

    /// Encrypts a request onto the air; returns its id.
    fn send(&mut self, air: &mut Air, command: Command) -> u32 {
        self.send_body(air, Body::Pump(command))
    }

    fn send_body(&mut self, air: &mut Air, body: Body) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut plain = [0u8; MAX_PLAINTEXT];
        let bytes = Request {
            command_id: id,
            body,
        }
        .encode(&mut plain)
        .unwrap();
        let mut out = [0u8; MAX_FRAME];
        let n = self
            .session
            .as_mut()
            .unwrap()
            .write_message(bytes, &mut out)
            .unwrap();
        air.transmit(Dir::ToImplant, &out[..n]);
        id
    }

    fn answer(&mut self, air: &mut Air) -> Option<Answer> {
        let f = air.receive(Dir::ToDevice)?;
        let mut plain = [0u8; MAX_FRAME];
        let n = self
            .session
            .as_mut()
            .unwrap()
            .read_message(&f, &mut plain)
            .unwrap();
        Some(Answer::decode(&plain[..n]).unwrap())
    }
}

struct World {
    air: Air,
    implant: Implanted,
    clinician: Device,
    remote: Device,
    emergency: Device,
    /// Whose session the implant holds, and when it last carried a frame.
    current: Option<(Who, Instant)>,
}

impl World {
    fn new() -> Self {
        let clinician = Device::new(11, CLINICIAN_ID);
        let remote = Device::new(22, REMOTE_ID);
        let emergency = Device::new(33, EMERGENCY_ID);
        let mut registry = Registry::new();
        for (d, role) in [
            (&clinician, Role::Clinician),
            (&remote, Role::PatientRemote),
            (&emergency, Role::Emergency),
        ] {
            registry.enroll(d.enrolment(role)).unwrap();
        }
        World {
            current: None,
            air: Air::new(),
            implant: Implanted::new(keys(99), registry),
            clinician,
            remote,
            emergency,
        }
    }

    fn implant_key(&self) -> PublicKey {
        *self.implant.implant.public()
    }

    fn connect(&mut self, who: Who) {
        let key = self.implant_key();
        let (air, implant, dev) = self.split(who);
        dev.hello(air, &key);
        implant.serve(air);
        assert!(matches!(
            implant.take_outcomes().as_slice(),
            [Outcome::Connected { .. }]
        ));
        dev.finish(air).unwrap().unwrap();
        self.current = Some((who, self.implant.fw.now));
    }

    fn ask(&mut self, who: Who, command: Command) -> Reply {
        self.ask_body(who, Body::Pump(command))
    }

    fn ask_link(&mut self, who: Who, command: LinkCommand) -> Reply {
        self.ask_body(who, Body::Link(command))
    }

    fn ask_body(&mut self, who: Who, body: Body) -> Reply {
        // A device whose session went idle past the implant's limit says hello again, as
        // a real programmer or remote does.
        if let Some((w, last)) = self.current {
            let idle = self.implant.fw.now.saturating_since(last);
            if w == who && idle > crate::endpoint::SESSION_IDLE_LIMIT {
                self.connect(who);
            }
        }
        if let Some((w, _)) = self.current {
            if w == who {
                self.current = Some((who, self.implant.fw.now));
            }
        }
        let (air, implant, dev) = self.split(who);
        let id = dev.send_body(air, body);
        implant.serve(air);
        assert_eq!(implant.take_outcomes(), vec![Outcome::Answered]);
        let a = dev.answer(air).unwrap();
        assert_eq!(a.command_id, id);
        a.reply
    }

    fn split(&mut self, who: Who) -> (&mut Air, &mut Implanted, &mut Device) {
        let dev = match who {
            Who::Clinician => &mut self.clinician,
            Who::Remote => &mut self.remote,
            Who::Emergency => &mut self.emergency,
        };
        (&mut self.air, &mut self.implant, dev)
    }

    fn fw(&mut self) -> &mut Firmware {
        &mut self.implant.fw
    }

    /// The clinician fills the pump with baclofen 2000 mcg/mL, 20 mL, and programs
    /// 0.5 mL/day with a patient bolus, over the link.
    fn set_up(&mut self) {
        self.connect(Who::Clinician);
        let contents = Admixture::single(DrugId::Baclofen, q("2000 mcg/mL"));
        let refill = self.ask(
            Who::Clinician,
            Command::Refill {
                aspirated: Volume::ZERO,
                added: q("20 mL"),
                contents: contents.clone(),
                keep_dose: false,
                bridge: BridgeChoice::None,
                confirm: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
                beyond_use_utc_ms: None,
            },
        );
        assert_eq!(refill, Reply::Accepted);
        let program = self.ask(Who::Clinician, program(contents, "0.5 mL/day"));
        assert_eq!(program, Reply::Accepted);
        assert_eq!(self.ask(Who::Clinician, Command::Resume), Reply::Accepted);
        self.fw().run_for(Duration::from_hours(1));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Clinician,
    Remote,
    Emergency,
}

fn patient_bolus() -> PatientBolus {
    PatientBolus {
        volume: q("25 uL"),
        duration: q("10 min"),
        lockout: q("3 h"),
        max_per_day: 4,
    }
}

fn program(contents: Admixture, flow: &str) -> Command {
    Command::Program {
        prescription: Prescription {
            contents,
            schedule: Schedule::continuous(q(flow)),
            patient_bolus: Some(patient_bolus()),
            reservoir_volume: q("20 mL"),
        },
        confirm_soft: thecal_pump::command::SoftReason::new("confirmed in the test").ok(),
    }
}

/// The therapy fields of a status (not the battery and refill projections, which move
/// with every wake-up).
fn therapy(s: &thecal_pump::command::Status) -> impl PartialEq + core::fmt::Debug + use<> {
    (
        s.mode,
        s.program_version,
        s.reservoir,
        s.delivered,
        s.missed,
        s.alarms.clone(),
        s.bolus_active,
        s.bridging,
    )
}

fn baclofen() -> Admixture {
    Admixture::single(DrugId::Baclofen, q("2000 mcg/mL"))
}

// ----- LINK-002: roles and enrolment ---------------------------------------------------

#[test]
fn enrolled_clinician_interrogates_and_remote_boluses_link_002() {
    let mut w = World::new();
    w.set_up();
    let Reply::Status(s) = w.ask(Who::Clinician, Command::Interrogate) else {
        panic!("no status")
    };
    assert_eq!(s.mode, Mode::Running);
    assert!(s.delivered > Volume::ZERO);
    assert!(!s.bolus_active);

    w.connect(Who::Remote);
    let r = w.ask(Who::Remote, Command::PatientBolus { request_id: 1 });
    let Reply::BolusAccepted { volume, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(volume, q("25 uL"));
    assert!(w.fw().pump.status().bolus_active);
    // The remote may read the status too.
    assert!(matches!(
        w.ask(Who::Remote, Command::Interrogate),
        Reply::Status(_)
    ));
}

#[test]
fn remote_privilege_escalation_is_refused_and_logged_link_002() {
    let mut w = World::new();
    w.set_up();
    let before = w.fw().pump.status();
    w.connect(Who::Remote);
    let attempts = [
        program(baclofen(), "1 mL/day"),
        Command::Stop {
            reason: StopReason::Other,
        },
        Command::SetClock {
            utc_ms: 1_799_020_800_000,
            offset_minutes: 0,
        },
    ];
    for cmd in attempts {
        let kind = cmd.kind();
        let r = w.ask(Who::Remote, cmd);
        let Reply::Refused { code, text } = r else {
            panic!("{kind:?}: {r:?}")
        };
        assert_eq!(code, NOT_PERMITTED, "{kind:?}");
        assert!(text.contains("patient remote"), "{text}");
        let refused: Vec<_> = w
            .fw()
            .events
            .iter()
            .filter_map(|e| match e.event {
                Event::CommandRefused {
                    role,
                    code,
                    reason,
                    key_id,
                } if code == kind.code() => Some((role, reason, key_id)),
                _ => None,
            })
            .collect();
        assert_eq!(
            refused,
            vec![(Role::PatientRemote, NOT_PERMITTED, REMOTE_ID)],
            "{kind:?}"
        );
    }
    let after = w.fw().pump.status();
    assert_eq!(after.mode, Mode::Running);
    assert_eq!(after.program_version, before.program_version);
    assert!(!after.clock_set);
    assert!(w.fw().pump.clock().is_none());
}

#[test]
fn emergency_responder_may_reduce_but_not_program_link_002() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Emergency);
    let r = w.ask(Who::Emergency, program(baclofen(), "1 mL/day"));
    assert!(
        matches!(
            r,
            Reply::Refused {
                code: NOT_PERMITTED,
                ..
            }
        ),
        "{r:?}"
    );
    let r = w.ask(Who::Emergency, Command::ReduceDose { percent: 20 });
    assert_eq!(r, Reply::Accepted);
    assert_eq!(
        w.fw().accepted(CommandKind::ReduceDose),
        vec![(Role::Emergency, EMERGENCY_ID)]
    );
}

#[test]
fn unknown_key_is_denied_at_the_handshake_link_002() {
    let mut w = World::new();
    w.set_up();
    let events = w.fw().events.len();
    let mut stranger = Device::new(77, 7777);
    let key = w.implant_key();
    stranger.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Denied(Denied::UnknownKey { key_id: 7777 })]
    );
    // Nothing was sent back: no session for the stranger.
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    assert!(stranger.finish(&mut w.air).is_none());
    assert!(
        Denied::UnknownKey { key_id: 7777 }
            .to_string()
            .contains("no device is enrolled as key 7777 with this pump")
    );
    // The denial is logged, with the claimed key id; nothing else happened.
    assert_eq!(w.fw().events.len(), events + 1);
    assert!(matches!(
        w.fw().events.last().unwrap().event,
        Event::HandshakeDenied {
            key_id: 7777,
            reason: 2,
            count: 1
        }
    ));
    // The receiver backs off for a second; then the clinician's session (still the
    // implant's current one) is undisturbed.
    w.fw().run_for(Duration::from_secs(1));
    assert!(matches!(
        w.ask(Who::Clinician, Command::Interrogate),
        Reply::Status(_)
    ));
}

#[test]
fn revoked_remote_is_denied_link_002() {
    let mut w = World::new();
    w.set_up();
    assert!(w.implant.implant.registry_mut().revoke(REMOTE_ID));
    assert!(!w.implant.implant.registry_mut().revoke(9999));
    let key = w.implant_key();
    w.remote.hello(&mut w.air, &key);
    w.implant.serve(&mut w.air);
    let denied = Denied::Revoked { key_id: REMOTE_ID };
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Denied(denied)]);
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    assert!(denied.to_string().contains("key 202 has been revoked"));
    // A revoked key cannot be enrolled again, under any id.
    let again = Enrolment::new(w.remote.public(), Role::PatientRemote, 500, [1; 32]);
    assert_eq!(
        w.implant.implant.registry_mut().enroll(again),
        Err(EnrolError::DuplicateKey { key_id: REMOTE_ID })
    );
}

#[test]
fn registry_is_bounded_and_checked_link_002() {
    let mut r = Registry::new();
    let e = |seed: u8, key_id: u32| {
        Enrolment::new(
            *keys(seed).public(),
            Role::PatientRemote,
            key_id,
            [seed; 32],
        )
    };
    assert_eq!(r.enroll(e(1, 0)), Err(EnrolError::ReservedKeyId));
    for i in 1..=8u8 {
        r.enroll(e(i, u32::from(i))).unwrap();
    }
    assert_eq!(r.enroll(e(50, 50)), Err(EnrolError::Full));
    let mut r = Registry::new();
    r.enroll(e(1, 1)).unwrap();
    assert_eq!(
        r.enroll(e(2, 1)),
        Err(EnrolError::DuplicateKeyId { key_id: 1 })
    );
    assert_eq!(r.lookup(keys(1).public()).map(|x| x.key_id), Some(1));
    assert!(r.lookup(keys(2).public()).is_none());
}

// ----- LINK-007: every command over the link is logged with the sender's key id ----------

#[test]
fn commands_over_the_link_are_logged_with_the_senders_key_id_link_007() {
    let mut w = World::new();
    w.set_up();
    for kind in [
        CommandKind::Refill,
        CommandKind::Program,
        CommandKind::Resume,
    ] {
        assert_eq!(
            w.fw().accepted(kind),
            vec![(Role::Clinician, CLINICIAN_ID)],
            "{kind:?}"
        );
    }
    w.connect(Who::Remote);
    w.ask(Who::Remote, Command::PatientBolus { request_id: 5 });
    assert_eq!(
        w.fw().accepted(CommandKind::PatientBolus),
        vec![(Role::PatientRemote, REMOTE_ID)]
    );
    // A refusal for a reason other than the role is logged with the key id too.
    let r = w.ask(Who::Remote, Command::PatientBolus { request_id: 6 });
    assert!(matches!(r, Reply::Refused { .. }), "{r:?}");
    assert!(w.fw().events.iter().any(|e| matches!(
        e.event,
        Event::CommandRefused { role: Role::PatientRemote, key_id: REMOTE_ID, code, .. }
            if code == CommandKind::PatientBolus.code()
    )));
}

// ----- confidentiality ----------------------------------------------------------------

#[test]
fn passive_eavesdropper_sees_no_command_bytes_link_001() {
    let mut w = World::new();
    w.set_up();
    let cmd = program(baclofen(), "0.6 mL/day");
    let id = w.clinician.next_id;
    let mut buf = [0u8; MAX_PLAINTEXT];
    let plain = Request::pump(id, cmd.clone())
        .encode(&mut buf)
        .unwrap()
        .to_vec();
    assert!(plain.len() >= 16, "{}", plain.len());
    assert_eq!(w.ask(Who::Clinician, cmd), Reply::Accepted);

    let transcript = w.air.transcript();
    let mut all: Vec<u8> = Vec::new();
    for (_, f) in transcript {
        all.extend_from_slice(f);
    }
    for window in plain.windows(8) {
        assert!(
            !all.windows(8).any(|x| x == window),
            "an 8-byte window of the request is on the air"
        );
    }
    // The whole encoding isn't either (implied, said for the record).
    assert!(!all.windows(plain.len()).any(|x| x == plain.as_slice()));
    // Nor does any static key travel in clear.
    for k in [w.clinician.public(), w.implant_key()] {
        assert!(!all.windows(32).any(|x| x == k.0));
    }
}

// ----- LINK-004: injection, replay, corruption ---------------------------------------------

#[test]
fn unauthenticated_injection_is_refused_and_changes_nothing_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    let status = w.fw().pump.status();
    let events = w.fw().events.len();
    let nonce = w
        .implant
        .session
        .as_ref()
        .unwrap()
        .session()
        .receiving_nonce();
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for i in 0..300usize {
        let len = (rng.next() % 120) as usize;
        let frame = match i % 3 {
            // Raw noise.
            0 => rng.bytes(len),
            // A well-formed transport frame with a random body (a forged ciphertext).
            1 => {
                let body = rng.bytes(len + 16);
                let mut f = vec![1, Kind::Transport.code()];
                f.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
                f.extend_from_slice(&body);
                f
            }
            // A reply-kind frame: never accepted by the implant.
            _ => {
                let body = rng.bytes(48);
                let mut f = vec![1, Kind::HandshakeReply.code(), 0, 48];
                f.extend_from_slice(&body);
                f
            }
        };
        w.air.inject(Dir::ToImplant, &frame);
    }
    w.implant.serve(&mut w.air);
    let outcomes = w.implant.take_outcomes();
    assert_eq!(outcomes.len(), 300);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Rejected(_) | Outcome::Denied(_))),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&Outcome::Rejected(LinkError::Decrypt)));
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    // Therapy is untouched (logging the denials costs only a little battery).
    assert_eq!(therapy(&w.fw().pump.status()), therapy(&status));
    // The flood left a trace at growing intervals (1st, 2nd, 4th, ... 256th denial), and
    // nothing else.
    let logged: Vec<u32> = w.fw().events[events..]
        .iter()
        .map(|e| match e.event {
            Event::HandshakeDenied { count, .. } => count,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(logged, vec![1, 2, 4, 8, 16, 32, 64, 128, 256]);
    assert_eq!(
        w.implant
            .session
            .as_ref()
            .unwrap()
            .session()
            .receiving_nonce(),
        nonce
    );
    // The genuine remote still works.
    assert!(matches!(
        w.ask(Who::Remote, Command::PatientBolus { request_id: 3 }),
        Reply::BolusAccepted { .. }
    ));
}

#[test]
fn authentic_garbage_is_answered_malformed_and_changes_nothing_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    let status = w.fw().pump.status();
    let events = w.fw().events.len();
    let mut out = [0u8; MAX_FRAME];
    let n = w
        .remote
        .session
        .as_mut()
        .unwrap()
        .write_message(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x63], &mut out)
        .unwrap();
    w.air.transmit(Dir::ToImplant, &out[..n]);
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    let a = w.remote.answer(&mut w.air).unwrap();
    assert_eq!(a.reply, Reply::Malformed);
    // Therapy untouched (the radio's energy is billed to the battery).
    assert_eq!(therapy(&w.fw().pump.status()), therapy(&status));
    assert_eq!(w.fw().events.len(), events);
}

#[test]
fn small_output_buffer_is_refused_before_the_pump_is_touched_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    let id = w
        .remote
        .send(&mut w.air, Command::PatientBolus { request_id: 1 });
    assert_eq!(id, 1);
    let f = w.air.receive(Dir::ToImplant).unwrap();
    let s = w.implant.session.as_mut().unwrap();
    let mut small = [0u8; 64];
    let mut random = || [0u8; 32];
    let mut host = Host {
        pump: &mut w.implant.fw.pump,
        log: &w.implant.fw.events,
        random: &mut random,
    };
    let r = w
        .implant
        .implant
        .handle(s, w.implant.fw.now, &f, &mut host, &mut small);
    assert_eq!(r, Err(LinkError::BufferTooSmall { needed: MAX_FRAME }));
    assert!(!w.implant.fw.pump.status().bolus_active);
    // The frame is still good: nothing advanced.
    w.air.inject(Dir::ToImplant, &f);
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    assert!(w.implant.fw.pump.status().bolus_active);
}

#[test]
fn replayed_bolus_frame_within_a_session_is_refused_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    let r = w.ask(Who::Remote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(r, Reply::BolusAccepted { .. }), "{r:?}");
    let bolus_frame = w.air.recorded(Dir::ToImplant).last().unwrap().clone();
    let boluses = w.fw().boluses_started();
    assert_eq!(boluses, 1);
    // Past the lockout, so only the link can stop a second bolus; the remote keeps its
    // session alive meanwhile (a status read every minute).
    for _ in 0..4 * 60 {
        w.fw().run_for(Duration::from_minutes(1));
        assert!(matches!(
            w.ask(Who::Remote, Command::Interrogate),
            Reply::Status(_)
        ));
    }
    assert!(!w.fw().pump.status().bolus_active);
    for _ in 0..3 {
        w.air.inject(Dir::ToImplant, &bolus_frame);
    }
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Rejected(LinkError::Decrypt); 3]
    );
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    assert_eq!(w.fw().boluses_started(), 1);
    assert!(!w.fw().pump.status().bolus_active);
    assert_eq!(w.fw().accepted(CommandKind::PatientBolus).len(), 1);
}

#[test]
fn a_bit_flip_anywhere_in_a_frame_is_refused_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    w.remote
        .send(&mut w.air, Command::PatientBolus { request_id: 1 });
    // The attacker takes the genuine frame off the air and sends corrupted copies.
    let genuine = w.air.drop_next(Dir::ToImplant).unwrap();
    for byte in 0..genuine.len() {
        for bit in [0u8, 7] {
            w.air.inject(Dir::ToImplant, &genuine);
            assert!(w.air.flip_bit(Dir::ToImplant, byte, bit + byte as u8));
            w.implant.serve(&mut w.air);
            let o = w.implant.take_outcomes();
            // (A flipped kind byte can make it look like a hello: denied as one.)
            assert!(
                matches!(o.as_slice(), [Outcome::Rejected(_) | Outcome::Denied(_)]),
                "byte {byte}: {o:?}"
            );
        }
    }
    assert_eq!(w.fw().boluses_started(), 0);
    assert_eq!(w.air.pending(Dir::ToDevice), 0);
    // The genuine frame still works afterwards: nothing advanced.
    w.air.inject(Dir::ToImplant, &genuine);
    w.implant.serve(&mut w.air);
    assert_eq!(w.implant.take_outcomes(), vec![Outcome::Answered]);
    let a = w.remote.answer(&mut w.air).unwrap();
    assert!(matches!(a.reply, Reply::BolusAccepted { .. }), "{a:?}");
    assert_eq!(w.fw().boluses_started(), 1);
}

#[test]
fn reordered_and_dropped_frames_are_refused_link_004() {
    let mut w = World::new();
    w.set_up();
    w.connect(Who::Remote);
    w.remote.send(&mut w.air, Command::Interrogate);
    w.remote
        .send(&mut w.air, Command::PatientBolus { request_id: 1 });
    w.air.reorder(Dir::ToImplant);
    w.implant.serve(&mut w.air);
    // The bolus (nonce 1) arrives first and is refused; the interrogation (nonce 0) works.
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Rejected(LinkError::Decrypt), Outcome::Answered]
    );
    assert_eq!(w.fw().boluses_started(), 0);
    // A dropped frame desynchronises the session: what follows is refused, never run.
    w.remote.send(&mut w.air, Command::Interrogate);
    w.air.drop_next(Dir::ToImplant);
    w.remote
        .send(&mut w.air, Command::PatientBolus { request_id: 2 });
    w.implant.serve(&mut w.air);
    assert_eq!(
        w.implant.take_outcomes(),
        vec![Outcome::Rejected(LinkError::Decrypt)]
    );
    assert_eq!(w.fw().boluses_started(), 0);
}

#[test]
fn replayed_bolus_session_a_day_later_delivers_nothing_link_004() {
    let mut w = World::new();
    w.set_up();
    // The genuine session: handshake and one bolus, all recorded.
    let start = w.air.transcript().len();
    w.connect(Who::Remote);
    let r = w.ask(Who::Remote, Command::PatientBolus { request_id: 1 });
    assert!(matches!(r, Reply::BolusAccepted { .. }), "{r:?}");
    let recorded: Vec<Vec<u8>> = w.air.transcript()[start..]
        .iter()
        .filter(|(d, _)| *d == Dir::ToImplant)
        .map(|(_, f)| f.clone())
        .collect();
    assert_eq!(recorded.len(), 2);
    assert_eq!(w.fw().boluses_started(), 1);

    w.fw().run_for(Duration::from_hours(24));
    let delivered = w.fw().pump.delivered();
    let events = w.fw().events.len();

    // A day later the attacker replays the whole session: the hello, then the bolus.
    for f in &recorded {
        w.air.inject(Dir::ToImplant, f);
    }
    w.implant.serve(&mut w.air);
    let o = w.implant.take_outcomes();
    // IK message 1 has no freshness of its own: the handshake counter gives it one. The
    // replayed hello's counter is not above the last accepted, so it is denied before
    // any Diffie-Hellman, and the bolus frame meets only the old session, closed a day
    // ago for idleness (it would not authenticate in it either).
    assert_eq!(
        o,
        vec![
            Outcome::Denied(Denied::Replayed { key_id: REMOTE_ID }),
            Outcome::Rejected(LinkError::SessionExpired)
        ]
    );
    assert_eq!(w.air.pending(Dir::ToDevice), 0, "nothing answers a replay");
    assert!(!w.fw().pump.status().bolus_active);
    assert_eq!(w.fw().boluses_started(), 1);
    assert_eq!(w.fw().accepted(CommandKind::PatientBolus).len(), 1);
    // Only the two denials were logged.
    let logged: Vec<Event> = w.fw().events[events..].iter().map(|e| e.event).collect();
    assert_eq!(
        logged,
        vec![
            Event::HandshakeDenied {
                key_id: REMOTE_ID,
                reason: Denied::Replayed { key_id: REMOTE_ID }.code(),
                count: 1
            },
            Event::HandshakeDenied {
                key_id: REMOTE_ID,
                reason: crate::endpoint::TRANSPORT_REJECTED,
                count: 2
            }
        ]
    );

    // Over the next hour only the basal is delivered (0.5 mL/day: ~20.8 uL/h, well below
    // basal plus a 25 uL bolus).
    w.fw().run_for(Duration::from_hours(1));
    let hour = w.fw().pump.delivered().raw() - delivered.raw();
    let stroke = HardwareProfile::synchromed_class(20).stroke_volume.raw();
    assert!(hour <= 20_834 + stroke, "{hour} nL in an hour");
}
