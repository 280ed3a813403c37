//! The implant side of the link, sans-IO: who may connect, enrolment, the radio's energy,
//! and commands into the pump.
//!
//! # A hello, cheapest checks first
//!
//! ```text
//! frame ─▶ listening? ─▶ header ─▶ key id enrolled, ─▶ counter  ─▶ pre-auth ─▶ Noise msg 1 ─▶ static key ─▶ reply
//!          (back-off,    (peek,    not revoked?        increases?   tag        (2 × X25519)   is the one     (2 × X25519)
//!           budget)       free)                                     (BLAKE2s)                 enrolled?
//! ```
//!
//! Everything before the Noise message costs the energy of receiving the frame and one
//! keyed hash; only a device holding an enrolled device's pre-authentication key and a
//! fresh counter makes the implant spend public-key operations. A denied hello gets no
//! reply, backs the receiver off ([`crate::radio`]) and is logged in the pump's event log
//! at growing intervals ([`Denied::code`]).
//!
//! The handshake counter is the anti-replay rule for hellos: IK's message 1 can be
//! replayed, so each enrolled device sends a counter that must exceed the last one the
//! implant accepted from it. The new counter is stored when the hello authenticates, and
//! the registry is then *dirty*: the firmware persists it ([`Implant::take_dirty`],
//! [`Implant::encode_registry`]) **before** transmitting the reply, so a power cut cannot
//! make a recorded hello acceptable again.
//!
//! # Enrolment
//!
//! There is no pairing mode. A device is enrolled only through a window with a one-time
//! pre-shared key (Noise `IKpsk1`, [`crate::session::ENROLMENT_PROTOCOL_NAME`]):
//!
//! * **A programmer at the bedside**: the programmer wand's proximity channel (inductive,
//!   centimetres) opens the window ([`Implant::open_proximity_window`]) and carries the
//!   key; the first programmer to complete the handshake with it is enrolled as a
//!   clinician. Only someone holding the wand over the pump can do this.
//! * **A patient remote**, only inside an authenticated clinician session:
//!   [`LinkCommand::OpenEnrolment`] answers with the key, which the programmer hands to
//!   the remote; the remote's handshake leaves a *pending* device; both the remote and the
//!   implant derive a six-digit fingerprint from their handshake hash; the clinician
//!   compares the remote's with the implant's ([`LinkCommand::PendingEnrolment`]) and
//!   sends [`LinkCommand::ConfirmEnrolment`] with the remote's. Only equal fingerprints
//!   commit. A man in the middle has a different handshake with each side, so the
//!   fingerprints differ and nothing is committed.
//!
//! A clinician session cannot open a window for the clinician role: a programmer is
//! enrolled only with the wand. A device that answered a window and waits for the
//! clinician is answered at its next hello (its session runs nothing), not denied, so a
//! remote used too early backs the receiver off for nobody. The registry holds
//! [`REGISTRY_CAPACITY`] devices; a clinician removes revoked ones
//! ([`LinkCommand::Remove`]) to free places, and their last counters are kept
//! ([`Retired`]).
//!
//! Windows are single-use and close at their expiry. An enrolled device's
//! pre-authentication key is derived by both sides from the enrolment's handshake hash
//! ([`Session::enrolled_preauth_key`]) and its key id from its public key
//! ([`key_id_for`]); neither travels.
//!
//! # Commands
//!
//! [`Implant::handle`] decrypts one transport frame, decodes a [`Request`] and runs it as
//! the session's enrolled role and key id: a pump [`Command`](thecal_pump::command::Command) goes to
//! [`Pump::handle_command`] (whose capability table decides, and which logs it); a
//! [`LinkCommand`] is checked here (clinician only) and logged through
//! [`Pump::log_link`]. A frame that does not authenticate never reaches the pump.

use core::fmt;

use serde::{Deserialize, Serialize};
use thecal_pump::command::Role;
use thecal_pump::core::Pump;
use thecal_pump::event::{FirmwareRecord, FirmwareVersion, LinkEvent};
use thecal_pump::log::{Hash, LogEntry, LogRing};
use thecal_rx::{Duration, Instant};

use crate::frame::{Frame, MAX_FRAME};
use crate::message::{
    Answer, Body, DeviceInfo, LOG_ENTRIES_PER_REPLY, LinkCommand, MessageError, Reply, Request,
    UpdateReply, UpdateRequest,
};
use crate::radio::{Charged, Deaf, Radio, RadioCosts, RadioPolicy};
use thecal_update::{Slot, Storage, UpdateEvent, Updater};

pub use crate::radio::PROXIMITY_HOLD;
use crate::session::{
    Entropy, HelloHeader, KEY_LEN, LinkError, MAX_PLAINTEXT, PublicKey, Responder, Session,
    StaticKeypair, verify_preauth,
};

/// How many devices the registry holds.
pub const REGISTRY_CAPACITY: usize = 8;

/// The shortest and longest enrolment window a clinician may open, seconds.
pub const ENROLMENT_WINDOW_SECONDS: core::ops::RangeInclusive<u16> = 10..=600;

/// A session with no authentic frame for this long is closed: a frame held back by an
/// attacker (a delayed bolus request) cannot be delivered later than this.
pub const SESSION_IDLE_LIMIT: Duration = Duration::from_minutes(2);

/// The largest encoded registry, bytes ([`Implant::encode_registry`]).
pub const REGISTRY_ENCODED_MAX: usize = 1024;

/// The first bytes of a stored registry ([`Implant::encode_registry`]).
pub const REGISTRY_MAGIC: [u8; 4] = *b"TCRG";

/// The stored registry's format version.
pub const REGISTRY_VERSION: u8 = 1;

/// The length of the stored registry's check value (BLAKE2s-128).
pub const REGISTRY_CHECK_LEN: usize = 16;

fn registry_check(body: &[u8]) -> [u8; REGISTRY_CHECK_LEN] {
    use blake2::digest::Digest as _;
    let d = blake2::Blake2s256::new()
        .chain_update(b"thecal-link/1 registry")
        .chain_update(body)
        .finalize();
    let mut out = [0u8; REGISTRY_CHECK_LEN];
    for (o, b) in out.iter_mut().zip(d.iter()) {
        *o = *b;
    }
    out
}

/// Why a stored registry could not be loaded. The firmware keeps delivering from its
/// own slots, refuses every radio device but the wand, and raises an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryError {
    /// It does not start with [`REGISTRY_MAGIC`].
    Magic,
    /// It is of an unknown format version.
    Version(u8),
    /// It is shorter than its header says.
    Truncated,
    /// Its check value does not match: it was corrupted or altered.
    Check,
    /// The checked payload is not a registry.
    Malformed,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Magic => f.write_str("not a thecal registry (wrong magic)"),
            RegistryError::Version(v) => write!(
                f,
                "registry format version {v} is not supported (this build reads version \
                 {REGISTRY_VERSION})"
            ),
            RegistryError::Truncated => f.write_str("the registry is truncated"),
            RegistryError::Check => {
                f.write_str("the registry's check value does not match: it is corrupted")
            }
            RegistryError::Malformed => f.write_str("the registry's contents are malformed"),
        }
    }
}

impl core::error::Error for RegistryError {}

/// One enrolled device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The device's static X25519 public key.
    pub key: PublicKey,
    /// What the device may do.
    pub role: Role,
    /// The id its hellos claim and the pump's log records (never 0: 0 is local and
    /// enrolment).
    pub key_id: u32,
    /// Revoked devices stay listed (so a revoked key is reported as such) but are denied.
    pub revoked: bool,
    /// The key of the device's pre-authentication tags.
    pub preauth: [u8; KEY_LEN],
    /// The last handshake counter accepted from the device.
    pub counter: u64,
}

impl Enrolment {
    /// A device enrolled outside the link (a factory or test fixture) whose
    /// pre-authentication key is `preauth`; its counter starts at 0.
    pub const fn new(key: PublicKey, role: Role, key_id: u32, preauth: [u8; KEY_LEN]) -> Self {
        Enrolment {
            key,
            role,
            key_id,
            revoked: false,
            preauth,
            counter: 0,
        }
    }
}

/// The key id of a device enrolled over the link: derived from its public key (so the
/// device knows it without being told), never 0.
pub fn key_id_for(key: &PublicKey) -> u32 {
    use blake2::digest::Digest as _;
    let d = blake2::Blake2s256::new()
        .chain_update(b"thecal-link/1 key id")
        .chain_update(key.0)
        .finalize();
    let [a, b, c, e, ..] = <[u8; 32]>::from(d);
    u32::from_le_bytes([a, b, c, e]).max(1)
}

/// Why an enrolment was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolError {
    /// The registry already holds [`REGISTRY_CAPACITY`] devices.
    Full,
    /// The key is already enrolled (under `key_id`).
    DuplicateKey {
        /// The existing enrolment's key id.
        key_id: u32,
    },
    /// The key id is already used by another key.
    DuplicateKeyId {
        /// The key id.
        key_id: u32,
    },
    /// Key id 0 is reserved for local commands and enrolment hellos.
    ReservedKeyId,
}

impl fmt::Display for EnrolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnrolError::Full => write!(
                f,
                "the registry is full ({REGISTRY_CAPACITY} devices); revoke a device that \
                 is no longer used and remove it, then enrol again"
            ),
            EnrolError::DuplicateKey { key_id } => {
                write!(f, "this key is already enrolled as key {key_id}")
            }
            EnrolError::DuplicateKeyId { key_id } => write!(
                f,
                "key id {key_id} is already used by another key; generate a new key"
            ),
            EnrolError::ReservedKeyId => {
                f.write_str("key id 0 is reserved for local commands and enrolment")
            }
        }
    }
}

impl core::error::Error for EnrolError {}

/// How many removed devices' last handshake counters the registry remembers.
pub const RETIRED_CAPACITY: usize = 16;

/// A removed device: its key id and the last handshake counter accepted from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// The removed device's key id.
    pub key_id: u32,
    /// The last handshake counter accepted from it.
    pub counter: u64,
}

/// Why a device could not be removed from the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveError {
    /// No device has this key id.
    Unknown,
    /// The device is not revoked: revoke it first.
    NotRevoked,
}

/// The devices enrolled with this implant (at most [`REGISTRY_CAPACITY`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    entries: heapless::Vec<Enrolment, REGISTRY_CAPACITY>,
    /// Removed devices' last counters (newest last; the oldest is forgotten when full):
    /// should a removed key be enrolled again, its counter starts above them, so none
    /// of its recorded hellos can ever be accepted.
    retired: heapless::Vec<Retired, RETIRED_CAPACITY>,
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry {
            entries: heapless::Vec::new(),
            retired: heapless::Vec::new(),
        }
    }

    /// Whether the registry holds [`REGISTRY_CAPACITY`] devices (revoked ones count
    /// until removed).
    pub fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// Removes the revoked device with `key_id`, freeing its place; its last counter is
    /// remembered ([`Retired`]).
    pub fn remove(&mut self, key_id: u32) -> Result<(), RemoveError> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.key_id == key_id)
            .ok_or(RemoveError::Unknown)?;
        let e = self.entries.remove(pos);
        if !e.revoked {
            // Put it back where it was: only revoked devices may be removed.
            let _ = self.entries.insert(pos, e);
            return Err(RemoveError::NotRevoked);
        }
        if self.retired.is_full() {
            self.retired.remove(0);
        }
        let _ = self.retired.push(Retired {
            key_id,
            counter: e.counter,
        });
        Ok(())
    }

    /// The last counter of a removed device with `key_id`, if remembered.
    pub fn retired_counter(&self, key_id: u32) -> Option<u64> {
        self.retired
            .iter()
            .filter(|r| r.key_id == key_id)
            .map(|r| r.counter)
            .max()
    }

    /// Adds a device. A key or key id already present (revoked or not) is refused, so a
    /// revoked key cannot be re-enrolled under a new id by mistake. A removed key's
    /// counter starts above the last one accepted from it.
    pub fn enroll(&mut self, mut enrolment: Enrolment) -> Result<(), EnrolError> {
        self.check(&enrolment.key, enrolment.key_id)?;
        if let Some(c) = self.retired_counter(enrolment.key_id) {
            enrolment.counter = enrolment.counter.max(c);
        }
        self.entries.push(enrolment).map_err(|_| EnrolError::Full)
    }

    fn check(&self, key: &PublicKey, key_id: u32) -> Result<(), EnrolError> {
        if key_id == 0 {
            return Err(EnrolError::ReservedKeyId);
        }
        if let Some(e) = self.entries.iter().find(|e| e.key == *key) {
            return Err(EnrolError::DuplicateKey { key_id: e.key_id });
        }
        if self.entries.iter().any(|e| e.key_id == key_id) {
            return Err(EnrolError::DuplicateKeyId { key_id });
        }
        if self.entries.is_full() {
            return Err(EnrolError::Full);
        }
        Ok(())
    }

    /// Revokes the device with `key_id`; returns whether it was enrolled. Sessions already
    /// open with it are the caller's to close ([`ImplantSession::key_id`]).
    pub fn revoke(&mut self, key_id: u32) -> bool {
        match self.entries.iter_mut().find(|e| e.key_id == key_id) {
            Some(e) => {
                e.revoked = true;
                true
            }
            None => false,
        }
    }

    /// The enrolment of `key`, revoked or not.
    pub fn lookup(&self, key: &PublicKey) -> Option<&Enrolment> {
        self.entries.iter().find(|e| e.key == *key)
    }

    /// The enrolment with `key_id`, revoked or not.
    pub fn by_id(&self, key_id: u32) -> Option<&Enrolment> {
        self.entries.iter().find(|e| e.key_id == key_id)
    }

    fn by_id_mut(&mut self, key_id: u32) -> Option<&mut Enrolment> {
        self.entries.iter_mut().find(|e| e.key_id == key_id)
    }

    /// Every enrolment.
    pub fn iter(&self) -> impl Iterator<Item = &Enrolment> {
        self.entries.iter()
    }
}

/// Why a hello was not accepted. No reply was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The receiver was not listening: the frame was never received (costs nothing).
    Deaf(Deaf),
    /// The hello is not a valid handshake message 1 for this implant.
    Handshake(LinkError),
    /// No device is enrolled under the claimed key id.
    UnknownKey {
        /// The claimed key id.
        key_id: u32,
    },
    /// The device was enrolled as `key_id` and has been revoked.
    Revoked {
        /// The revoked key's id.
        key_id: u32,
    },
    /// The handshake counter did not increase: a replayed hello.
    Replayed {
        /// The claimed key id.
        key_id: u32,
    },
    /// The pre-authentication tag is wrong.
    PreAuth {
        /// The claimed key id.
        key_id: u32,
    },
    /// The hello authenticated with a static key other than the one enrolled under the
    /// claimed key id.
    KeyMismatch {
        /// The claimed key id.
        key_id: u32,
    },
    /// An enrolment hello with no open window (none opened, expired, or already used).
    NoWindow,
    /// An enrolment hello from a key that cannot be enrolled.
    Enrolment(EnrolError),
}

/// The code logged (as a denial) when frames in a session are refused (malformed, not
/// authentic, or after the session expired).
pub const TRANSPORT_REJECTED: u8 = 9;

impl Denied {
    /// The code logged for this denial.
    pub const fn code(&self) -> u8 {
        match self {
            Denied::Deaf(_) => 0,
            Denied::Handshake(_) => 1,
            Denied::UnknownKey { .. } => 2,
            Denied::Revoked { .. } => 3,
            Denied::Replayed { .. } => 4,
            Denied::PreAuth { .. } => 5,
            Denied::KeyMismatch { .. } => 6,
            Denied::NoWindow => 7,
            Denied::Enrolment(_) => 8,
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Deaf(Deaf::Asleep) => f.write_str(
                "not received: the radio is asleep (daily energy budget spent); \
                 wake it with the programmer wand",
            ),
            Denied::Deaf(Deaf::BackingOff { until }) => write!(
                f,
                "not received: the radio is backing off after denied connections \
                 until t={} ms",
                until.ms()
            ),
            Denied::Handshake(e) => write!(f, "connection denied: {e}"),
            Denied::UnknownKey { key_id } => write!(
                f,
                "connection denied: no device is enrolled as key {key_id} with this pump"
            ),
            Denied::Revoked { key_id } => {
                write!(f, "connection denied: key {key_id} has been revoked")
            }
            Denied::Replayed { key_id } => write!(
                f,
                "connection denied: key {key_id}'s handshake counter did not increase \
                 (a replayed hello)"
            ),
            Denied::PreAuth { key_id } => write!(
                f,
                "connection denied: the hello for key {key_id} failed its \
                 pre-authentication check"
            ),
            Denied::KeyMismatch { key_id } => write!(
                f,
                "connection denied: the hello for key {key_id} came from a different key"
            ),
            Denied::NoWindow => {
                f.write_str("enrolment denied: no enrolment window is open on this pump")
            }
            Denied::Enrolment(e) => write!(f, "enrolment denied: {e}"),
        }
    }
}

impl core::error::Error for Denied {}

/// Read access to the firmware's event log, for [`LinkCommand::ReadLog`].
pub trait LogSource {
    /// Up to `out`'s capacity of entries with `seq >= from_seq`, oldest first.
    fn read_from(&self, from_seq: u32, out: &mut heapless::Vec<LogEntry, LOG_ENTRIES_PER_REPLY>);
    /// The `(seq, hash)` of the newest entry no longer held, if any were evicted.
    fn anchor(&self) -> Option<(u32, Hash)>;
}

fn fill<'a>(
    entries: impl Iterator<Item = &'a LogEntry>,
    from_seq: u32,
    out: &mut heapless::Vec<LogEntry, LOG_ENTRIES_PER_REPLY>,
) {
    for e in entries.filter(|e| e.seq >= from_seq) {
        if out.push(*e).is_err() {
            break;
        }
    }
}

impl<const N: usize> LogSource for LogRing<N> {
    fn read_from(&self, from_seq: u32, out: &mut heapless::Vec<LogEntry, LOG_ENTRIES_PER_REPLY>) {
        fill(self.iter(), from_seq, out);
    }
    fn anchor(&self) -> Option<(u32, Hash)> {
        LogRing::anchor(self)
    }
}

impl LogSource for [LogEntry] {
    fn read_from(&self, from_seq: u32, out: &mut heapless::Vec<LogEntry, LOG_ENTRIES_PER_REPLY>) {
        let start = self.partition_point(|e| e.seq < from_seq);
        fill(self.get(start..).unwrap_or_default().iter(), from_seq, out);
    }
    fn anchor(&self) -> Option<(u32, Hash)> {
        None
    }
}

impl LogSource for alloc::vec::Vec<LogEntry> {
    fn read_from(&self, from_seq: u32, out: &mut heapless::Vec<LogEntry, LOG_ENTRIES_PER_REPLY>) {
        self.as_slice().read_from(from_seq, out);
    }
    fn anchor(&self) -> Option<(u32, Hash)> {
        None
    }
}

/// What the proximity channel carries to the programmer when the wand opens a window.
#[derive(Clone, PartialEq, Eq)]
pub struct ProximityToken {
    /// The implant's static public key.
    pub implant_key: PublicKey,
    /// The window's one-time pre-shared key.
    pub psk: [u8; KEY_LEN],
    /// When the window closes (pump time).
    pub expires_at: Instant,
}

impl fmt::Debug for ProximityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProximityToken")
            .field("implant_key", &self.implant_key)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A device that answered a window and waits for the clinician's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    key: PublicKey,
    key_id: u32,
    fingerprint: u32,
    preauth: [u8; KEY_LEN],
    counter: u64,
}

/// An enrolment window.
#[derive(Clone, PartialEq, Eq)]
struct Window {
    psk: [u8; KEY_LEN],
    role: Role,
    expires_at: Instant,
    /// Remote windows wait for a fingerprint confirmation; the proximity window commits
    /// at the handshake (the wand over the pump is the confirmation).
    confirm: bool,
    /// Whether a hello has used the window.
    used: bool,
    pending: Option<Pending>,
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// Random bytes for the implant (its TRNG): enrolment keys.
pub type Random<'a> = &'a mut dyn FnMut() -> [u8; KEY_LEN];

/// The firmware around the link: the pump core, its event log, its random source.
pub struct Host<'a> {
    /// The pump core.
    pub pump: &'a mut Pump,
    /// The event log the firmware stores.
    pub log: &'a dyn LogSource,
    /// Fresh random bytes.
    pub random: Random<'a>,
}

/// A hello accepted: the session and the reply to transmit.
#[derive(Debug)]
pub struct Accepted {
    /// The session with the device.
    pub session: ImplantSession,
    /// The reply's length in the caller's buffer.
    pub reply_len: usize,
}

/// The implant's link: its static key pair, the enrolled devices, the radio's energy and
/// any enrolment window.
#[derive(Debug)]
pub struct Implant {
    keys: StaticKeypair,
    registry: Registry,
    radio: Radio,
    window: Option<Window>,
    dirty: bool,
    unreported_uj: u64,
    time_scale: u64,
}

/// Refusal codes of the telemetry's own commands (in [`Reply::Refused`]).
pub mod refusal {
    /// The role may not send the command (the same code as the pump's).
    pub const NOT_PERMITTED: u8 = 1;
    /// The window length is out of range.
    pub const BAD_WINDOW: u8 = 100;
    /// No enrolment window is open, or no device has answered it.
    pub const NO_PENDING: u8 = 101;
    /// The fingerprint does not match: nothing was enrolled.
    pub const FINGERPRINT_MISMATCH: u8 = 102;
    /// No device has that key id.
    pub const UNKNOWN_KEY_ID: u8 = 103;
    /// The device cannot be enrolled (registry full, duplicate).
    pub const CANNOT_ENROL: u8 = 104;
    /// The session belongs to a device whose enrolment is not confirmed yet.
    pub const NOT_CONFIRMED: u8 = 105;
    /// A clinician may not revoke the key of the session it speaks through.
    pub const OWN_KEY: u8 = 106;
    /// A clinician programmer may not be enrolled over the air (only with the wand).
    pub const CLINICIAN_OVER_AIR: u8 = 107;
    /// The registry is full: remove a revoked device first.
    pub const REGISTRY_FULL: u8 = 108;
    /// Only a revoked device can be removed from the registry.
    pub const NOT_REVOKED: u8 = 109;
    /// The fluid path cannot be read into a bounded reading (a merged segment holds
    /// more drugs than a reading carries).
    pub const PATH_UNREADABLE: u8 = 110;
    /// This implant's firmware takes no update over the link.
    pub const NO_UPDATE: u8 = 111;
}

/// The firmware's updater and its flash, for [`Body::Update`] requests
/// ([`Implant::handle_with_update`], LINK-029).
pub struct UpdatePort<'a> {
    /// The implant's updater.
    pub updater: &'a mut Updater,
    /// The update storage (two slots and the boot record).
    pub storage: &'a mut dyn Storage,
    /// Set when the verified image was marked for trial: after transmitting the answer,
    /// the firmware persists its therapy state and restarts into the trial image.
    pub restart: bool,
}

impl fmt::Debug for UpdatePort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdatePort")
            .field("status", &self.updater.status())
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

/// An updater's event as the pump logs it ([`Event::FirmwareUpdate`]), with the
/// updater's stable codes (FWU-012).
///
/// [`Event::FirmwareUpdate`]: thecal_pump::event::Event::FirmwareUpdate
pub fn firmware_record(e: &UpdateEvent) -> FirmwareRecord {
    let version = |v: thecal_update::Version| FirmwareVersion {
        major: v.major,
        minor: v.minor,
        revision: v.revision,
        build: v.build,
    };
    let slot = |s: Slot| match s {
        Slot::A => 0,
        Slot::B => 1,
    };
    let mut r = FirmwareRecord {
        code: e.code(),
        step: 0,
        reason: 0,
        slot: FirmwareRecord::NO_SLOT,
        version: FirmwareVersion::default(),
        value: 0,
    };
    match *e {
        UpdateEvent::Booted {
            slot: s,
            version: v,
            trial,
        } => {
            r.slot = slot(s);
            r.version = version(v);
            r.step = u8::from(trial);
        }
        UpdateEvent::TransferStarted { slot: s, total } => {
            r.slot = slot(s);
            r.value = total;
        }
        UpdateEvent::TransferComplete { total } => r.value = total,
        UpdateEvent::Verified {
            version: v,
            security_counter,
        }
        | UpdateEvent::Confirmed {
            version: v,
            security_counter,
        } => {
            r.version = version(v);
            r.value = security_counter;
        }
        UpdateEvent::TrialMarked { slot: s } => r.slot = slot(s),
        UpdateEvent::Reverted { to, cause } => {
            r.slot = slot(to);
            r.reason = cause.code();
        }
        UpdateEvent::Cancelled => {}
        UpdateEvent::KeysChanged { active } => r.value = u32::from(active),
        UpdateEvent::Refused { op, refusal } => {
            r.step = op.code();
            r.reason = refusal.code();
        }
    }
    r
}

/// Logs every event the updater holds in the pump's hash-chained log (FWU-012); returns
/// how many. The firmware calls it after each step it drives itself (the start, the
/// trial's confirmation); [`Implant::handle_with_update`] calls it after each step over
/// the link.
pub fn log_update_events(updater: &mut Updater, pump: &mut Pump, now: Instant) -> usize {
    let mut n = 0usize;
    while let Some(e) = updater.poll_event() {
        pump.log_link(now, LinkEvent::FirmwareUpdate(firmware_record(&e)));
        n = n.saturating_add(1);
    }
    n
}

/// One update step on the firmware's updater.
fn update_step(port: &mut UpdatePort<'_>, request: &UpdateRequest) -> UpdateReply {
    let r = match request {
        UpdateRequest::Status => Ok(UpdateReply::Status(port.updater.status())),
        UpdateRequest::Begin { total, image_id } => port
            .updater
            .begin(port.storage, *total, *image_id)
            .map(|()| UpdateReply::Accepted),
        UpdateRequest::Chunk { offset, data } => port
            .updater
            .receive(port.storage, *offset, data)
            .map(|next| UpdateReply::Have { next }),
        UpdateRequest::Verify => port
            .updater
            .verify(&*port.storage)
            .map(UpdateReply::Verified),
        UpdateRequest::MarkForTrial => port.updater.mark_for_trial(port.storage).map(|()| {
            port.restart = true;
            UpdateReply::Accepted
        }),
        UpdateRequest::Cancel => port
            .updater
            .cancel(port.storage)
            .map(|()| UpdateReply::Accepted),
        UpdateRequest::Keys => Ok(UpdateReply::Keys(port.updater.keys().clone())),
        UpdateRequest::RotateKey { new, signature } => port
            .updater
            .rotate_key(port.storage, new, &signature.to_bytes())
            .map(|()| UpdateReply::Accepted),
        UpdateRequest::RevokeKey { key, signature } => port
            .updater
            .revoke_key(port.storage, key, &signature.to_bytes())
            .map(|()| UpdateReply::Accepted),
    };
    r.unwrap_or_else(UpdateReply::Refused)
}

impl Implant {
    /// An implant with its static key pair, a registry, and the typical radio costs and
    /// policy.
    pub const fn new(keys: StaticKeypair, registry: Registry) -> Self {
        Implant::with_radio(
            keys,
            registry,
            Radio::new(RadioCosts::TYPICAL, RadioPolicy::TYPICAL),
        )
    }

    /// An implant with a given radio model.
    pub const fn with_radio(keys: StaticKeypair, registry: Registry, radio: Radio) -> Self {
        Implant {
            keys,
            registry,
            radio,
            window: None,
            dirty: false,
            unreported_uj: 0,
            time_scale: 1,
        }
    }

    /// For a simulator whose clock runs `scale` times faster than the wall clock: the
    /// enrolment windows a clinician opens and the session idle limit are stretched by
    /// `scale`, so they last as long for the people using them (a window of 120 s stays
    /// open 120 s of wall time). 1 (the default) on a real implant.
    pub fn set_time_scale(&mut self, scale: u32) {
        self.time_scale = u64::from(scale.max(1));
    }

    /// The implant's static public key.
    pub const fn public(&self) -> &PublicKey {
        self.keys.public()
    }

    /// The enrolled devices.
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The enrolled devices, to enrol or revoke outside the link (a factory fixture);
    /// marks the registry dirty.
    pub fn registry_mut(&mut self) -> &mut Registry {
        self.dirty = true;
        &mut self.registry
    }

    /// The radio's energy state.
    pub const fn radio(&self) -> &Radio {
        &self.radio
    }

    /// Whether the registry changed (a counter, an enrolment, a revocation) since the
    /// last call: persist it ([`Implant::encode_registry`]) before transmitting anything.
    pub fn take_dirty(&mut self) -> bool {
        core::mem::take(&mut self.dirty)
    }

    /// Encodes the registry into `buf` for the firmware to persist: [`REGISTRY_MAGIC`],
    /// [`REGISTRY_VERSION`], the payload's length (2 bytes, little-endian), the payload
    /// (postcard) and a BLAKE2s-128 check over everything before it, so a flipped bit
    /// (which could turn a remote into a clinician) is found at load. Write it
    /// atomically (a new file renamed over the old one).
    pub fn encode_registry<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], MessageError> {
        let header = REGISTRY_MAGIC.len().saturating_add(3);
        let (head, rest) = buf
            .split_at_mut_checked(header)
            .ok_or(MessageError::BufferTooSmall)?;
        let n = postcard::to_slice(&self.registry, rest)
            .map_err(|_| MessageError::BufferTooSmall)?
            .len();
        let len = u16::try_from(n).map_err(|_| MessageError::BufferTooSmall)?;
        let [l0, l1] = len.to_le_bytes();
        let [m0, m1, m2, m3] = REGISTRY_MAGIC;
        head.copy_from_slice(&[m0, m1, m2, m3, REGISTRY_VERSION, l0, l1]);
        let body = header.saturating_add(n);
        let total = body.saturating_add(REGISTRY_CHECK_LEN);
        let tag = registry_check(buf.get(..body).ok_or(MessageError::BufferTooSmall)?);
        buf.get_mut(body..total)
            .ok_or(MessageError::BufferTooSmall)?
            .copy_from_slice(&tag);
        buf.get_mut(..total).ok_or(MessageError::BufferTooSmall)
    }

    /// Decodes a registry written by [`Implant::encode_registry`], checking its magic,
    /// version, length and check value first.
    pub fn decode_registry(bytes: &[u8]) -> Result<Registry, RegistryError> {
        let (magic, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(RegistryError::Truncated)?;
        if *magic != REGISTRY_MAGIC {
            return Err(RegistryError::Magic);
        }
        let (&[version, l0, l1], rest) = rest
            .split_first_chunk::<3>()
            .ok_or(RegistryError::Truncated)?;
        if version != REGISTRY_VERSION {
            return Err(RegistryError::Version(version));
        }
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        let payload = rest.get(..len).ok_or(RegistryError::Truncated)?;
        let tag = rest.get(len..).ok_or(RegistryError::Truncated)?;
        if tag.len() != REGISTRY_CHECK_LEN {
            return Err(RegistryError::Truncated);
        }
        let body = bytes
            .len()
            .checked_sub(REGISTRY_CHECK_LEN)
            .and_then(|b| bytes.get(..b))
            .ok_or(RegistryError::Truncated)?;
        if registry_check(body) != tag {
            return Err(RegistryError::Check);
        }
        match postcard::take_from_bytes::<Registry>(payload) {
            Ok((r, [])) => Ok(r),
            _ => Err(RegistryError::Malformed),
        }
    }

    /// The programmer wand is held over the pump: the radio wakes (clearing a
    /// budget sleep and any back-off), and a clinician-programmer enrolment window opens
    /// for `validity` with the pre-shared key `psk` (fresh from the TRNG). The token goes
    /// to the programmer over the proximity channel.
    pub fn open_proximity_window(
        &mut self,
        now: Instant,
        psk: [u8; KEY_LEN],
        validity: Duration,
        pump: &mut Pump,
    ) -> ProximityToken {
        self.proximity_wake(now, pump);
        let expires_at = now.saturating_add(validity);
        self.radio.proximity_hold(now, expires_at);
        self.window = Some(Window {
            psk,
            role: Role::Clinician,
            expires_at,
            confirm: false,
            used: false,
            pending: None,
        });
        ProximityToken {
            implant_key: *self.keys.public(),
            psk,
            expires_at,
        }
    }

    /// A request that repeats the one just answered arrived at `now` (`received` bytes):
    /// the firmware may send the cached answer (`sent` bytes) only if the receiver
    /// listens; both frames are charged like any other.
    pub fn resend(
        &mut self,
        now: Instant,
        received: usize,
        sent: usize,
        pump: &mut Pump,
    ) -> Result<(), Deaf> {
        self.receive(now, received, pump)?;
        let uj = self.radio.costs().frame(sent);
        self.charge(now, uj, false, pump);
        Ok(())
    }

    /// The programmer wand woke the radio (no enrolment).
    pub fn proximity_wake(&mut self, now: Instant, pump: &mut Pump) {
        let was_asleep = self.radio.asleep();
        self.radio.proximity_wake(now);
        if was_asleep {
            pump.set_telemetry_paused(now, false);
        }
    }

    fn charge(&mut self, now: Instant, uj: u64, rejected: bool, pump: &mut Pump) {
        if self.radio.charge(now, uj, rejected) == Charged::WentAsleep {
            pump.set_telemetry_paused(now, true);
        }
        self.bill_battery(now, uj, pump);
    }

    fn receive(&mut self, now: Instant, len: usize, pump: &mut Pump) -> Result<(), Deaf> {
        self.radio.listening(now)?;
        if self.radio.receive(now, len) == Charged::WentAsleep {
            pump.set_telemetry_paused(now, true);
        }
        self.bill_battery(now, self.radio.costs().frame(len), pump);
        Ok(())
    }

    /// Counts the energy against the pump's battery, in the profile's radio milliseconds
    /// (the remainder is carried to the next charge).
    fn bill_battery(&mut self, now: Instant, uj: u64, pump: &mut Pump) {
        let per_ms = u64::from(pump.profile().radio_uj_per_ms).max(1);
        self.unreported_uj = self.unreported_uj.saturating_add(uj);
        let ms = self.unreported_uj.checked_div(per_ms).unwrap_or(0);
        if ms > 0 {
            pump.handle_radio(now, ms);
            self.unreported_uj = self.unreported_uj.checked_rem(per_ms).unwrap_or(0);
        }
    }

    fn deny(&mut self, now: Instant, len: usize, denied: Denied, pump: &mut Pump) -> Denied {
        self.radio.rejected(len);
        let (count, log) = self.radio.denied(now);
        if log {
            let key_id = match denied {
                Denied::UnknownKey { key_id }
                | Denied::Revoked { key_id }
                | Denied::Replayed { key_id }
                | Denied::PreAuth { key_id }
                | Denied::KeyMismatch { key_id } => key_id,
                _ => 0,
            };
            pump.log_link(
                now,
                LinkEvent::HandshakeDenied {
                    key_id,
                    reason: denied.code(),
                    count,
                },
            );
        }
        denied
    }

    /// Receives a hello at `now` and, if it passes every check (module docs), writes the
    /// reply into `reply_out` (needs [`MAX_FRAME`] bytes) and returns the session.
    /// Otherwise nothing is written, the receiver backs off and the denial may be logged
    /// in the pump's event log.
    ///
    /// After an `Ok`, call [`Implant::take_dirty`] and persist the registry before
    /// transmitting the reply.
    pub fn accept(
        &mut self,
        now: Instant,
        hello: &[u8],
        entropy: Entropy,
        pump: &mut Pump,
        reply_out: &mut [u8],
    ) -> Result<Accepted, Denied> {
        self.receive(now, hello.len(), pump).map_err(Denied::Deaf)?;
        match self.check_hello(now, hello, entropy, pump, reply_out) {
            Ok(accepted) => {
                self.radio.handshake_done();
                let uj = self.radio.costs().frame(accepted.reply_len);
                self.charge(now, uj, false, pump);
                Ok(accepted)
            }
            Err(d) => Err(self.deny(now, hello.len(), d, pump)),
        }
    }

    fn check_hello(
        &mut self,
        now: Instant,
        hello: &[u8],
        entropy: Entropy,
        pump: &mut Pump,
        reply_out: &mut [u8],
    ) -> Result<Accepted, Denied> {
        if reply_out.len() < MAX_FRAME {
            return Err(Denied::Handshake(LinkError::BufferTooSmall {
                needed: MAX_FRAME,
            }));
        }
        let header = HelloHeader::peek(hello).map_err(Denied::Handshake)?;
        if header.key_id == 0 {
            return self.check_enrolment_hello(now, hello, &header, entropy, pump, reply_out);
        }
        let key_id = header.key_id;
        if self.registry.by_id(key_id).is_none() {
            if let Some(p) = self.pending().filter(|p| p.key_id == key_id) {
                return self.check_pending_hello(now, hello, &header, &p, entropy, pump, reply_out);
            }
        }
        let enrolment = *self
            .registry
            .by_id(key_id)
            .ok_or(Denied::UnknownKey { key_id })?;
        if enrolment.revoked {
            return Err(Denied::Revoked { key_id });
        }
        if header.counter <= enrolment.counter {
            return Err(Denied::Replayed { key_id });
        }
        let costs = *self.radio.costs();
        self.charge(now, costs.preauth_uj, false, pump);
        if !verify_preauth(hello, &enrolment.preauth) {
            return Err(Denied::PreAuth { key_id });
        }
        self.charge(now, costs.handshake_uj, false, pump);
        let received = Responder::new(&self.keys, &header, None, entropy)
            .and_then(|r| r.read_hello(hello))
            .map_err(Denied::Handshake)?;
        if *received.initiator_static() != enrolment.key {
            return Err(Denied::KeyMismatch { key_id });
        }
        if let Some(e) = self.registry.by_id_mut(key_id) {
            e.counter = header.counter;
            self.dirty = true;
        }
        let (session, reply_len) = received.write_reply(reply_out).map_err(Denied::Handshake)?;
        Ok(Accepted {
            session: ImplantSession {
                session,
                role: enrolment.role,
                key_id,
                confirmed: true,
                last_heard: now,
            },
            reply_len,
        })
    }

    /// A hello from the device waiting for the clinician's confirmation (it has its key
    /// id and pre-authentication key from the enrolment handshake). Its session runs no
    /// command but is answered ("not confirmed yet") instead of being denied, so a remote
    /// used too early neither backs the receiver off for everyone nor hears nothing.
    #[allow(clippy::too_many_arguments)]
    fn check_pending_hello(
        &mut self,
        now: Instant,
        hello: &[u8],
        header: &HelloHeader,
        pending: &Pending,
        entropy: Entropy,
        pump: &mut Pump,
        reply_out: &mut [u8],
    ) -> Result<Accepted, Denied> {
        let key_id = pending.key_id;
        if header.counter <= pending.counter {
            return Err(Denied::Replayed { key_id });
        }
        let costs = *self.radio.costs();
        self.charge(now, costs.preauth_uj, false, pump);
        if !verify_preauth(hello, &pending.preauth) {
            return Err(Denied::PreAuth { key_id });
        }
        self.charge(now, costs.handshake_uj, false, pump);
        let received = Responder::new(&self.keys, header, None, entropy)
            .and_then(|r| r.read_hello(hello))
            .map_err(Denied::Handshake)?;
        if *received.initiator_static() != pending.key {
            return Err(Denied::KeyMismatch { key_id });
        }
        let role = self.window.as_ref().map_or(Role::PatientRemote, |w| w.role);
        if let Some(p) = self.window.as_mut().and_then(|w| w.pending.as_mut()) {
            p.counter = header.counter;
        }
        let (session, reply_len) = received.write_reply(reply_out).map_err(Denied::Handshake)?;
        Ok(Accepted {
            session: ImplantSession {
                session,
                role,
                key_id,
                confirmed: false,
                last_heard: now,
            },
            reply_len,
        })
    }

    fn check_enrolment_hello(
        &mut self,
        now: Instant,
        hello: &[u8],
        header: &HelloHeader,
        entropy: Entropy,
        pump: &mut Pump,
        reply_out: &mut [u8],
    ) -> Result<Accepted, Denied> {
        let window = match &self.window {
            Some(w) if !w.used && now < w.expires_at => w.clone(),
            _ => return Err(Denied::NoWindow),
        };
        let costs = *self.radio.costs();
        self.charge(now, costs.preauth_uj, false, pump);
        if !verify_preauth(hello, &window.psk) {
            return Err(Denied::PreAuth { key_id: 0 });
        }
        self.charge(now, costs.handshake_uj, false, pump);
        let received = Responder::new(&self.keys, header, Some(&window.psk), entropy)
            .and_then(|r| r.read_hello(hello))
            .map_err(Denied::Handshake)?;
        let key = *received.initiator_static();
        let key_id = key_id_for(&key);
        self.registry
            .check(&key, key_id)
            .map_err(Denied::Enrolment)?;
        let (session, reply_len) = received.write_reply(reply_out).map_err(Denied::Handshake)?;
        let pending = Pending {
            key,
            key_id,
            fingerprint: session.fingerprint(),
            preauth: session.enrolled_preauth_key(),
            counter: header.counter,
        };
        if let Some(w) = self.window.as_mut() {
            w.used = true;
        }
        if window.confirm {
            if let Some(w) = self.window.as_mut() {
                w.pending = Some(pending);
            }
        } else {
            self.commit(now, window.role, &pending, pump)
                .map_err(Denied::Enrolment)?;
            self.window = None;
        }
        Ok(Accepted {
            session: ImplantSession {
                session,
                role: window.role,
                key_id,
                confirmed: !window.confirm,
                last_heard: now,
            },
            reply_len,
        })
    }

    fn commit(
        &mut self,
        now: Instant,
        role: Role,
        p: &Pending,
        pump: &mut Pump,
    ) -> Result<(), EnrolError> {
        self.registry.enroll(Enrolment {
            key: p.key,
            role,
            key_id: p.key_id,
            revoked: false,
            preauth: p.preauth,
            counter: p.counter,
        })?;
        self.dirty = true;
        pump.log_link(
            now,
            LinkEvent::DeviceEnrolled {
                role,
                key_id: p.key_id,
            },
        );
        Ok(())
    }

    /// Receives one transport frame of `session` at `now`: decrypts it, decodes a
    /// [`Request`], runs it as the session's role and key id, and writes the encrypted
    /// [`Answer`] (same `command_id`) into `out` (needs [`MAX_FRAME`] bytes, checked first,
    /// so a command is never run whose answer could not be written). Returns the answer
    /// frame's length.
    ///
    /// * A frame that does not authenticate (forged, corrupted, replayed, reordered) is an
    ///   error, never reaches the pump, and leaves the session unchanged.
    /// * An authentic frame that is not a request is answered with [`Reply::Malformed`]
    ///   (`command_id` 0).
    /// * A frame that arrives while the receiver sleeps is [`LinkError::NotListening`].
    /// * A frame more than [`SESSION_IDLE_LIMIT`] after the session's last authentic
    ///   frame is [`LinkError::SessionExpired`]: the device must say hello again.
    ///
    /// After an `Ok`, call [`Implant::take_dirty`] and persist the registry if it changed
    /// before transmitting the answer.
    pub fn handle(
        &mut self,
        session: &mut ImplantSession,
        now: Instant,
        frame: &[u8],
        host: &mut Host<'_>,
        out: &mut [u8],
    ) -> Result<usize, LinkError> {
        self.handle_with_update(session, now, frame, host, None, out)
    }

    /// [`Implant::handle`] for a firmware that takes updates: [`Body::Update`] requests of
    /// a clinician go to `update` (without it they are answered
    /// [`UpdateReply::Unsupported`]). A step that is refused is logged with the updater's
    /// code; begin, verify, mark and cancel are logged when accepted; accepted chunks and
    /// status reads are not (hundreds per update would wash the log out).
    pub fn handle_with_update(
        &mut self,
        session: &mut ImplantSession,
        now: Instant,
        frame: &[u8],
        host: &mut Host<'_>,
        update: Option<&mut UpdatePort<'_>>,
        out: &mut [u8],
    ) -> Result<usize, LinkError> {
        if out.len() < MAX_FRAME {
            return Err(LinkError::BufferTooSmall { needed: MAX_FRAME });
        }
        self.receive(now, frame.len(), host.pump)
            .map_err(|_| LinkError::NotListening)?;
        let costs = *self.radio.costs();
        let mut plain = [0u8; MAX_PLAINTEXT];
        let read = Frame::new_checked(frame)
            .map_err(LinkError::from)
            .and_then(|_| {
                let idle =
                    Duration::from_ms(SESSION_IDLE_LIMIT.ms().saturating_mul(self.time_scale));
                if now.saturating_since(session.last_heard) > idle {
                    return Err(LinkError::SessionExpired);
                }
                self.charge(now, costs.transport_uj, false, host.pump);
                session.session.read_message(frame, &mut plain)
            });
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                // Backs off like a denied hello: a stream of forged frames must not keep
                // the receiver on.
                self.radio.rejected(frame.len());
                let (count, log) = self.radio.denied(now);
                if log {
                    host.pump.log_link(
                        now,
                        LinkEvent::HandshakeDenied {
                            key_id: session.key_id,
                            reason: TRANSPORT_REJECTED,
                            count,
                        },
                    );
                }
                return Err(e);
            }
        };
        self.radio.authenticated();
        session.last_heard = now;
        let answer = match plain.get(..n).map(Request::decode) {
            Some(Ok(request)) => Answer {
                command_id: request.command_id,
                reply: self.run(session, now, &request.body, host, update),
            },
            _ => Answer {
                command_id: 0,
                reply: Reply::Malformed,
            },
        };
        plain.fill(0);
        let encoded = answer.encode(&mut plain).map_err(|e| match e {
            MessageError::BufferTooSmall => LinkError::TooLong { max: MAX_PLAINTEXT },
            _ => LinkError::Setup,
        })?;
        let len = session.session.write_message(encoded, out)?;
        let uj = costs.frame(len).saturating_add(costs.transport_uj);
        self.charge(now, uj, false, host.pump);
        Ok(len)
    }

    fn run(
        &mut self,
        session: &ImplantSession,
        now: Instant,
        body: &Body,
        host: &mut Host<'_>,
        update: Option<&mut UpdatePort<'_>>,
    ) -> Reply {
        if !session.confirmed {
            return refused(
                refusal::NOT_CONFIRMED,
                "this device's enrolment is not confirmed yet: the clinician must \
                 compare and confirm its fingerprint",
            );
        }
        match body {
            Body::Pump(command) => Reply::from(&host.pump.handle_command(
                now,
                session.role,
                session.key_id,
                command,
            )),
            Body::Update(request) => {
                let code = request.code();
                let (reply, event) = if session.role != Role::Clinician {
                    let reply = refused_fmt(
                        refusal::NOT_PERMITTED,
                        format_args!(
                            "a {} may not update the firmware; only a clinician programmer may",
                            session.role
                        ),
                    );
                    (reply, Some(refusal::NOT_PERMITTED))
                } else if let Some(port) = update {
                    let answer = update_step(port, request);
                    log_update_events(port.updater, host.pump, now);
                    let reason = match &answer {
                        UpdateReply::Refused(r) => Some(r.code()),
                        _ => None,
                    };
                    (Reply::Update(answer), reason)
                } else {
                    (
                        Reply::Update(UpdateReply::Unsupported),
                        Some(refusal::NO_UPDATE),
                    )
                };
                let quiet = matches!(
                    request,
                    UpdateRequest::Chunk { .. } | UpdateRequest::Status | UpdateRequest::Keys
                );
                let logged = match event {
                    Some(reason) => Some(LinkEvent::CommandRefused {
                        role: session.role,
                        code,
                        reason,
                        key_id: session.key_id,
                    }),
                    None if !quiet => Some(LinkEvent::CommandAccepted {
                        role: session.role,
                        code,
                        key_id: session.key_id,
                    }),
                    None => None,
                };
                if let Some(e) = logged {
                    host.pump.log_link(now, e);
                }
                reply
            }
            Body::Link(command) => {
                let reply = if command.allowed(session.role) {
                    self.link_command(session, now, command, host)
                } else {
                    refused_fmt(
                        refusal::NOT_PERMITTED,
                        format_args!(
                            "a {} may not manage enrolments or read the log; only a \
                             clinician programmer may",
                            session.role
                        ),
                    )
                };
                let event = match &reply {
                    Reply::Refused { code, .. } => LinkEvent::CommandRefused {
                        role: session.role,
                        code: command.code(),
                        reason: *code,
                        key_id: session.key_id,
                    },
                    _ => LinkEvent::CommandAccepted {
                        role: session.role,
                        code: command.code(),
                        key_id: session.key_id,
                    },
                };
                host.pump.log_link(now, event);
                reply
            }
        }
    }

    fn link_command(
        &mut self,
        session: &ImplantSession,
        now: Instant,
        command: &LinkCommand,
        host: &mut Host<'_>,
    ) -> Reply {
        match *command {
            LinkCommand::OpenEnrolment { role, seconds } => {
                if role == Role::Clinician {
                    return refused(
                        refusal::CLINICIAN_OVER_AIR,
                        "a clinician programmer is enrolled only with the wand held over \
                         the pump, never over the air; open a window for a patient or \
                         emergency remote, or use the wand",
                    );
                }
                if self.registry.is_full() {
                    return registry_full(&self.registry);
                }
                if !ENROLMENT_WINDOW_SECONDS.contains(&seconds) {
                    return refused_fmt(
                        refusal::BAD_WINDOW,
                        format_args!(
                            "an enrolment window of {seconds} s is out of range; allowed: \
                             {} to {} s",
                            ENROLMENT_WINDOW_SECONDS.start(),
                            ENROLMENT_WINDOW_SECONDS.end()
                        ),
                    );
                }
                let psk = (host.random)();
                let expires_at = now.saturating_add(Duration::from_secs(
                    u64::from(seconds).saturating_mul(self.time_scale),
                ));
                self.window = Some(Window {
                    psk,
                    role,
                    expires_at,
                    confirm: true,
                    used: false,
                    pending: None,
                });
                Reply::EnrolmentOpen {
                    psk,
                    implant_key: self.keys.public().0,
                    expires_at,
                }
            }
            LinkCommand::PendingEnrolment => match self.pending() {
                Some(p) => Reply::EnrolmentPending {
                    fingerprint: p.fingerprint,
                    key: p.key.0,
                    key_id: p.key_id,
                    role: self.window.as_ref().map_or(Role::PatientRemote, |w| w.role),
                },
                None => no_pending(),
            },
            LinkCommand::ConfirmEnrolment { fingerprint } => {
                let Some((p, role)) = self.pending().zip(self.window.as_ref().map(|w| w.role))
                else {
                    return no_pending();
                };
                // The window is spent either way: a wrong fingerprint means someone
                // else answered it, and that device must never be enrolled.
                self.window = None;
                if p.fingerprint != fingerprint {
                    return refused(
                        refusal::FINGERPRINT_MISMATCH,
                        "the fingerprints differ: the device that answered is not the \
                         one in your hand (possibly an attacker in between). Nothing was \
                         enrolled; open a new window and try again",
                    );
                }
                match self.commit(now, role, &p, host.pump) {
                    Ok(()) => Reply::Enrolled {
                        key_id: p.key_id,
                        role,
                    },
                    Err(EnrolError::Full) => registry_full(&self.registry),
                    Err(e) => refused_fmt(refusal::CANNOT_ENROL, format_args!("{e}")),
                }
            }
            LinkCommand::CancelEnrolment => {
                self.window = None;
                Reply::Accepted
            }
            LinkCommand::Revoke { key_id } => {
                if key_id == session.key_id {
                    return refused(
                        refusal::OWN_KEY,
                        "this programmer cannot revoke its own key; revoke it from \
                         another clinician programmer",
                    );
                }
                if self.registry.revoke(key_id) {
                    self.dirty = true;
                    host.pump.log_link(now, LinkEvent::DeviceRevoked { key_id });
                    Reply::Accepted
                } else {
                    refused_fmt(
                        refusal::UNKNOWN_KEY_ID,
                        format_args!("no device is enrolled as key {key_id}"),
                    )
                }
            }
            LinkCommand::Remove { key_id } => match self.registry.remove(key_id) {
                Ok(()) => {
                    self.dirty = true;
                    Reply::Accepted
                }
                Err(RemoveError::Unknown) => refused_fmt(
                    refusal::UNKNOWN_KEY_ID,
                    format_args!("no device is enrolled as key {key_id}"),
                ),
                Err(RemoveError::NotRevoked) => refused_fmt(
                    refusal::NOT_REVOKED,
                    format_args!(
                        "key {key_id} is not revoked: only a revoked device can be removed; \
                         revoke it first"
                    ),
                ),
            },
            LinkCommand::Devices => {
                let mut list = heapless::Vec::new();
                for e in self.registry.iter() {
                    let _ = list.push(DeviceInfo {
                        key_id: e.key_id,
                        role: e.role,
                        revoked: e.revoked,
                        key: e.key.0,
                    });
                }
                Reply::Devices(list)
            }
            LinkCommand::ReadLog { from_seq } => {
                let mut entries = heapless::Vec::new();
                host.log.read_from(from_seq, &mut entries);
                Reply::Log {
                    entries,
                    anchor: host.log.anchor(),
                    head: host.pump.log_head(),
                }
            }
            LinkCommand::ReadProgram => Reply::Program(host.pump.program().clone()),
            LinkCommand::ReadFluidPath => match host.pump.path_reading() {
                Ok(reading) => Reply::FluidPath(reading),
                Err(e) => refused_fmt(refusal::PATH_UNREADABLE, format_args!("{e}")),
            },
        }
    }

    /// The device that answered the window, if any (a pending device outlives the
    /// window's expiry: it answered in time).
    fn pending(&self) -> Option<Pending> {
        self.window.as_ref().and_then(|w| w.pending)
    }
}

fn refused(code: u8, text: &str) -> Reply {
    refused_fmt(code, format_args!("{text}"))
}

fn refused_fmt(code: u8, args: fmt::Arguments<'_>) -> Reply {
    let mut text = crate::message::Truncating(heapless::String::new());
    let _ = fmt::Write::write_fmt(&mut text, args);
    Reply::Refused { code, text: text.0 }
}

fn registry_full(registry: &Registry) -> Reply {
    let revoked = registry.iter().filter(|e| e.revoked).count();
    if revoked > 0 {
        refused_fmt(
            refusal::REGISTRY_FULL,
            format_args!(
                "the registry is full ({REGISTRY_CAPACITY} devices, {revoked} of them \
                 revoked): remove a revoked device first, then enrol again"
            ),
        )
    } else {
        refused_fmt(
            refusal::REGISTRY_FULL,
            format_args!(
                "the registry is full ({REGISTRY_CAPACITY} devices): revoke a device that is \
                 no longer used and remove it, then enrol again"
            ),
        )
    }
}

fn no_pending() -> Reply {
    refused(
        refusal::NO_PENDING,
        "no device is waiting for enrolment: open a window, then let the device connect \
         with the key before it expires",
    )
}

/// An established session with one enrolled (or pending) device.
#[derive(Debug)]
pub struct ImplantSession {
    session: Session,
    role: Role,
    key_id: u32,
    confirmed: bool,
    last_heard: Instant,
}

impl ImplantSession {
    /// The device's enrolled role.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The device's key id.
    pub const fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Whether the device is enrolled (a remote's enrolment session is not, until the
    /// clinician confirms its fingerprint; it can run no command).
    pub const fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// The underlying Noise session.
    pub const fn session(&self) -> &Session {
        &self.session
    }
}
