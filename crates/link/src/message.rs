//! Typed application messages, encoded with `postcard`.
//!
//! A programmer sends a [`Request`] (a pump [`Command`] with an id it chose); the pump
//! answers with an [`Answer`] carrying the same id and a [`Reply`]. Both travel as the
//! plaintext of Noise transport messages, never in a handshake message.
//!
//! Encoding writes into a caller buffer and needs no allocator; decoding is strict: the
//! whole input must be one message ([`MessageError::Trailing`] otherwise), and a refusal
//! text longer than [`REFUSAL_TEXT_MAX`] bytes does not decode.

use core::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};
use thecal_pump::command::{Command, Response, Role, Status};
use thecal_pump::log::{Hash, LogChain, LogEntry};
use thecal_pump::reading::PathReading;
use thecal_rx::check::Prescription;
use thecal_rx::{Instant, Volume};

/// The longest refusal text carried in a [`Reply::Refused`], in bytes (longer texts are
/// cut at a character boundary when converted from a [`Response`]).
pub const REFUSAL_TEXT_MAX: usize = 160;

/// The most log entries one [`Reply::Log`] carries (each about 80 bytes encoded).
pub const LOG_ENTRIES_PER_REPLY: usize = 8;

/// A command with the sender's id for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the sender; the answer carries it back.
    pub command_id: u32,
    /// The command.
    pub body: Body,
}

impl Request {
    /// A request carrying a pump command.
    pub const fn pump(command_id: u32, command: Command) -> Self {
        Request {
            command_id,
            body: Body::Pump(command),
        }
    }

    /// A request carrying a telemetry command.
    pub const fn link(command_id: u32, command: LinkCommand) -> Self {
        Request {
            command_id,
            body: Body::Link(command),
        }
    }
}

/// What a request asks for: a command for the pump core, or one the telemetry handles
/// itself (enrolment, revocation, log download). Both are checked against the sender's
/// role and logged with its key id.
// One request exists at a time, decoded on the stack; boxing would put every command
// through the allocator.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A pump command, checked by the core's capability table.
    Pump(Command),
    /// A telemetry command (clinician only).
    Link(LinkCommand),
    /// A firmware-update step (clinician only; link version 3, LINK-029; its keys' rotation
    /// and revocation, link version 4, LINK-034).
    Update(UpdateRequest),
}

/// The largest firmware chunk one request carries: the updater's largest, which fits
/// one frame (tested).
pub const UPDATE_CHUNK_MAX: usize = thecal_update::updater::CHUNK_MAX;

/// A firmware-update step, sent by a clinician programmer inside its session
/// (docs/firmware-update.md). Each is answered with a [`Reply::Update`].
// As for `Body`: one request at a time, on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateRequest {
    /// What the implant runs and has received ([`UpdateReply::Status`]): a programmer
    /// resumes a transfer from `transfer.have`.
    Status,
    /// Open a transfer of `total` bytes into the inactive slot.
    Begin {
        /// The image's length.
        total: u32,
        /// The programmer's label of the image (its SHA-256), reported back by `Status`.
        image_id: [u8; 32],
    },
    /// The bytes at `offset` (the next offset the implant wants).
    Chunk {
        /// Where they go.
        offset: u32,
        /// 1 to [`UPDATE_CHUNK_MAX`] bytes.
        data: heapless::Vec<u8, UPDATE_CHUNK_MAX>,
    },
    /// Verify the received image ([`UpdateReply::Verified`]).
    Verify,
    /// Mark the verified image for a trial at the next start, and restart into it.
    MarkForTrial,
    /// Drop the transfer and any trial marked for the next start.
    Cancel,
    /// The firmware-signing keys the implant trusts, revoked ones included
    /// ([`UpdateReply::Keys`]). Added in link version 4 (LINK-034).
    Keys,
    /// Install a rotated key: `new`, signed by a trusted key over the rotation context
    /// (`thecal_update::keys::ROTATE_CONTEXT`), which is then revoked. Added in link
    /// version 4 (LINK-034).
    RotateKey {
        /// The new Ed25519 public key.
        new: [u8; 32],
        /// The old key's signature of the rotation statement.
        signature: KeySignature,
    },
    /// Revoke `key`, signed by a trusted key (`thecal_update::keys::REVOKE_CONTEXT`); the
    /// last trusted key is refused. Added in link version 4 (LINK-035).
    RevokeKey {
        /// The key to revoke.
        key: [u8; 32],
        /// A trusted key's signature of the revocation statement.
        signature: KeySignature,
    },
}

/// An Ed25519 signature in a key statement, as two halves (serde's arrays stop at 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySignature(pub [u8; 32], pub [u8; 32]);

impl KeySignature {
    /// The signature's 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        for (dst, src) in b.iter_mut().zip(self.0.iter().chain(self.1.iter())) {
            *dst = *src;
        }
        b
    }

    /// The signature of these 64 bytes.
    pub fn from_bytes(b: &[u8; 64]) -> Self {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        for (i, v) in b.iter().enumerate() {
            if let Some(d) = r.get_mut(i).or_else(|| s.get_mut(i.wrapping_sub(32))) {
                *d = *v;
            }
        }
        KeySignature(r, s)
    }
}

impl UpdateRequest {
    /// The code logged for this step (after the telemetry's commands).
    pub const fn code(&self) -> u8 {
        match self {
            UpdateRequest::Status => 111,
            UpdateRequest::Begin { .. } => 112,
            UpdateRequest::Chunk { .. } => 113,
            UpdateRequest::Verify => 114,
            UpdateRequest::MarkForTrial => 115,
            UpdateRequest::Cancel => 116,
            UpdateRequest::Keys => 117,
            UpdateRequest::RotateKey { .. } => 118,
            UpdateRequest::RevokeKey { .. } => 119,
        }
    }
}

/// The implant's answer to an [`UpdateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateReply {
    /// The implant's update status.
    Status(thecal_update::UpdateStatus),
    /// A chunk was written: the next offset wanted.
    Have {
        /// Bytes received so far.
        next: u32,
    },
    /// The received image verified.
    Verified(thecal_update::ImageInfo),
    /// Done (begin, mark, cancel, a key rotated or revoked).
    Accepted,
    /// The trusted firmware-signing keys, revoked ones included (link version 4).
    Keys(thecal_update::TrustList),
    /// Refused, with the updater's typed reason (its code is logged).
    Refused(thecal_update::Refusal),
    /// This implant's firmware takes no updates over the link.
    Unsupported,
}

/// The telemetry's own commands. All are clinician-only, but an emergency device may
/// read the program ([`LinkCommand::allowed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkCommand {
    /// Open an enrolment window for one new device with `role`: the implant answers
    /// with a one-time pre-shared key to hand to the device ([`Reply::EnrolmentOpen`]).
    OpenEnrolment {
        /// The role the new device will have.
        role: Role,
        /// How long the window stays open, seconds (10 to 600).
        seconds: u16,
    },
    /// Read the fingerprint of the device that answered the open window.
    PendingEnrolment,
    /// Commit the pending device: `fingerprint` is what the device shows; enrolment
    /// happens only if it equals the implant's.
    ConfirmEnrolment {
        /// The six-digit fingerprint the device shows.
        fingerprint: u32,
    },
    /// Close the enrolment window and drop any pending device.
    CancelEnrolment,
    /// Revoke the device with this key id (it stays listed as revoked).
    Revoke {
        /// The device's key id.
        key_id: u32,
    },
    /// List the enrolled devices.
    Devices,
    /// Read event-log entries from sequence number `from_seq` on.
    ReadLog {
        /// The first sequence number wanted.
        from_seq: u32,
    },
    /// Read the prescription the pump is running.
    ReadProgram,
    /// Remove a revoked device from the registry, freeing its place (its last handshake
    /// counter is kept).
    Remove {
        /// The revoked device's key id.
        key_id: u32,
    },
    /// Read the fluid path (what lies in the pump path and the catheter, tip first) and
    /// the settings a digital twin needs beyond the status and the program
    /// ([`Reply::FluidPath`], LINK-027). Added in link version 2.
    ReadFluidPath,
}

impl LinkCommand {
    /// The code logged for this command (in the pump's range for telemetry commands).
    pub const fn code(&self) -> u8 {
        match self {
            LinkCommand::OpenEnrolment { .. } => 100,
            LinkCommand::PendingEnrolment => 101,
            LinkCommand::ConfirmEnrolment { .. } => 102,
            LinkCommand::CancelEnrolment => 103,
            LinkCommand::Revoke { .. } => 104,
            LinkCommand::Devices => 105,
            LinkCommand::ReadLog { .. } => 106,
            LinkCommand::ReadProgram => 107,
            LinkCommand::Remove { .. } => 108,
            LinkCommand::ReadFluidPath => 109,
        }
    }

    /// Whether `role` may send this command: the telemetry's commands are the
    /// clinician's alone, except that an emergency device may read the program it is
    /// about to reduce (to show it and to verify the reduction).
    pub const fn allowed(&self, role: Role) -> bool {
        matches!(role, Role::Clinician)
            || matches!((self, role), (LinkCommand::ReadProgram, Role::Emergency))
    }
}

/// One enrolled device, as listed by [`LinkCommand::Devices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Key id.
    pub key_id: u32,
    /// Role.
    pub role: Role,
    /// Revoked.
    pub revoked: bool,
    /// The device's static public key.
    pub key: [u8; 32],
}

/// The pump's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The [`Request::command_id`] answered.
    pub command_id: u32,
    /// The outcome.
    pub reply: Reply,
}

/// The outcome of a command, as sent over the link (a serializable form of the pump's
/// [`Response`]).
// As for `Body`: one reply at a time, on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done.
    Accepted,
    /// A bolus was accepted and will end at about `ends_at`.
    BolusAccepted {
        /// Volume of the bolus.
        volume: Volume,
        /// Expected end.
        ends_at: Instant,
    },
    /// Refused: the pump's stable refusal code and its explanation.
    Refused {
        /// [`thecal_pump::command::Refusal::code`].
        code: u8,
        /// The refusal's text (what would be accepted), cut to [`REFUSAL_TEXT_MAX`] bytes.
        text: heapless::String<REFUSAL_TEXT_MAX>,
    },
    /// The pump's status.
    Status(Status),
    /// The request could not be decoded; nothing was done.
    Malformed,
    /// An enrolment window is open: hand `psk` and the implant's key to the new device
    /// (out of band); it must say hello before `expires_at`.
    EnrolmentOpen {
        /// The window's one-time pre-shared key.
        psk: [u8; 32],
        /// The implant's static public key.
        implant_key: [u8; 32],
        /// When the window closes (pump time).
        expires_at: Instant,
    },
    /// A device answered the window: compare this fingerprint with the one it shows.
    EnrolmentPending {
        /// Six decimal digits.
        fingerprint: u32,
        /// The device's static public key.
        key: [u8; 32],
        /// The key id it will have.
        key_id: u32,
        /// The role it will have.
        role: Role,
    },
    /// The device was enrolled.
    Enrolled {
        /// Its key id.
        key_id: u32,
        /// Its role.
        role: Role,
    },
    /// The enrolled devices.
    Devices(heapless::Vec<DeviceInfo, { crate::endpoint::REGISTRY_CAPACITY }>),
    /// Event-log entries, oldest first, and the chain head they lead to.
    Log {
        /// Entries from the requested sequence number (or the oldest still held).
        entries: heapless::Vec<LogEntry, LOG_ENTRIES_PER_REPLY>,
        /// The `(seq, hash)` before the oldest held entry, when older ones were evicted.
        anchor: Option<(u32, Hash)>,
        /// The core's chain head now: downloaded entries must lead to it.
        head: LogChain,
    },
    /// The prescription the pump is running.
    Program(Prescription),
    /// The answer to a firmware-update step.
    Update(UpdateReply),
    /// The fluid path and the twin's settings, read at one instant (LINK-027): at most
    /// [`thecal_pump::reading::MAX_SEGMENTS`] segments of at most four drugs each, so
    /// that the largest answer fits one frame ([`FLUID_PATH_ANSWER_MAX`]).
    FluidPath(PathReading),
}

/// The most bytes an [`Answer`] carrying a [`Reply::FluidPath`] takes encoded: every
/// segment of the path full (four drugs each) and every number at its largest. Below
/// [`crate::session::MAX_PLAINTEXT`], so the reading is one frame (tested).
pub const FLUID_PATH_ANSWER_MAX: usize = 985;
const _: () = assert!(FLUID_PATH_ANSWER_MAX <= crate::session::MAX_PLAINTEXT);

impl From<&Response> for Reply {
    fn from(r: &Response) -> Self {
        match r {
            Response::Accepted => Reply::Accepted,
            Response::BolusAccepted { volume, ends_at } => Reply::BolusAccepted {
                volume: *volume,
                ends_at: *ends_at,
            },
            Response::Status(s) => Reply::Status(s.clone()),
            Response::Refused(refusal) => {
                let mut text = Truncating(heapless::String::new());
                // The writer never fails; a formatting error would only shorten the text.
                let _ = write!(text, "{refusal}");
                Reply::Refused {
                    code: refusal.code(),
                    text: text.0,
                }
            }
        }
    }
}

/// A `fmt::Write` into a bounded string that drops what does not fit, at a character
/// boundary.
pub(crate) struct Truncating<const N: usize>(pub(crate) heapless::String<N>);

impl<const N: usize> fmt::Write for Truncating<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// The output buffer is too small for the encoding.
    BufferTooSmall,
    /// The bytes are not a message of the expected type.
    Malformed,
    /// Bytes follow the message.
    Trailing,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageError::BufferTooSmall => "message buffer too small",
            MessageError::Malformed => "malformed message",
            MessageError::Trailing => "bytes after the message",
        })
    }
}

impl core::error::Error for MessageError {}

fn encode<'b, T: Serialize>(value: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8], MessageError> {
    postcard::to_slice(value, buf).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => MessageError::BufferTooSmall,
        _ => MessageError::Malformed,
    })
}

fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, MessageError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|_| MessageError::Malformed)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(MessageError::Trailing)
    }
}

impl Request {
    /// Encodes into `buf`; returns the used prefix.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], MessageError> {
        encode(self, buf)
    }

    /// Decodes one request occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        decode(bytes)
    }
}

impl Answer {
    /// Encodes into `buf`; returns the used prefix.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], MessageError> {
        encode(self, buf)
    }

    /// Decodes one answer occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        decode(bytes)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::session::MAX_PLAINTEXT;
    use alloc::vec::Vec;
    use proptest::prelude::*;
    use thecal_pump::alarm::{AlarmKind, Priority};
    use thecal_pump::command::{
        ActiveAlarm, BridgeChoice, CommandKind, Mode, Refusal, SOFT_REASON_MAX, SoftReason,
        StopReason,
    };
    use thecal_rx::Duration;
    use thecal_rx::check::Prescription;
    use thecal_rx::dose::Admixture;
    use thecal_rx::drug::DrugId;
    use thecal_rx::schedule::Schedule;

    fn q<T: core::str::FromStr>(s: &str) -> T
    where
        T::Err: core::fmt::Debug,
    {
        s.parse().unwrap()
    }

    fn commands() -> Vec<Command> {
        let contents = Admixture::single(DrugId::Baclofen, q("2000 mcg/mL"));
        alloc::vec![
            Command::Interrogate,
            Command::Program {
                prescription: Prescription {
                    contents: contents.clone(),
                    schedule: Schedule::continuous(q("0.6 mL/day")),
                    patient_bolus: None,
                    reservoir_volume: q("20 mL"),
                },
                // The longest reason: 21 three-byte characters (63 bytes).
                confirm_soft: SoftReason::new(&"€".repeat(21)).ok(),
            },
            Command::Refill {
                aspirated: Volume::ZERO,
                added: q("20 mL"),
                contents,
                keep_dose: true,
                bridge: BridgeChoice::Bolus(Duration::from_minutes(30)),
                confirm: SoftReason::new(&"x".repeat(SOFT_REASON_MAX)).ok(),
                beyond_use_utc_ms: None,
            },
            Command::ClinicianBolus {
                volume: Volume::from_ul(50),
                duration: Duration::from_minutes(10),
            },
            Command::PrimingBolus {
                duration: Duration::from_minutes(5),
            },
            Command::PatientBolus { request_id: 77 },
            Command::CancelBolus,
            Command::Stop {
                reason: StopReason::AdverseEffect,
            },
            Command::Resume,
            Command::SetClock {
                utc_ms: 1_700_000_000_000,
                offset_minutes: -300,
            },
            Command::Acknowledge(AlarmKind::LowReservoir),
            Command::MriMode(true),
            Command::ReduceDose { percent: 20 },
            Command::AlarmSettings {
                low_reservoir: Volume::from_ml(2),
                low_reservoir_days: 7,
                stopped_reminder: Duration::from_minutes(60),
            },
            Command::SetReminderInterval {
                interval: Duration::from_hours(4),
            },
            Command::MriEmergency,
            Command::SetCatheter(thecal_pump::catheter::CatheterRecord {
                model: u16::MAX,
                volume_per_cm: Volume::from_nl(u64::MAX),
                length_mm: u16::MAX,
                pump_segment: Volume::from_nl(u64::MAX),
            }),
        ]
    }

    fn status() -> Status {
        let mut alarms = heapless::Vec::new();
        for kind in [AlarmKind::LowReservoir, AlarmKind::EmptyReservoir] {
            alarms
                .push(ActiveAlarm {
                    kind,
                    priority: Priority::High,
                    acknowledged: false,
                })
                .unwrap();
        }
        Status {
            mode: Mode::Stopped {
                reason: StopReason::Procedure,
                since: Instant::from_ms(123_456),
            },
            program_version: 4,
            reservoir: Volume::from_ul(12_345),
            delivered: Volume::from_ml(3),
            missed: Volume::ZERO,
            alarms,
            battery_life: Some(Duration::from_secs(86_400 * 365)),
            next_refill: Some(Instant::from_ms(9_999_999)),
            now: Instant::from_ms(1_234_567),
            utc_ms: Some(1_790_000_000_000),
            clock_set: true,
            bolus_active: false,
            bridging: true,
            catheter: Some(thecal_pump::catheter::CatheterRecord {
                model: 0,
                volume_per_cm: Volume::from_nl(10_000),
                length_mm: 1_500,
                pump_segment: Volume::from_nl(100_000),
            }),
            alarm_settings: thecal_pump::core::AlarmSettings {
                low_reservoir: Volume::MAX,
                low_reservoir_days: u16::MAX,
                stopped_reminder: Duration::from_hours(24),
            },
            reminder_interval: Duration::from_hours(4),
            pump_path: Volume::MAX,
            dead_volume: Volume::MAX,
            ahead_of_drug: Volume::MAX,
        }
    }

    #[test]
    fn every_command_round_trips_and_fits_one_frame() {
        let mut buf = [0u8; MAX_PLAINTEXT];
        for (i, command) in commands().into_iter().enumerate() {
            let req = Request::pump(u32::try_from(i).unwrap() * 1_000_003, command);
            let bytes = req.encode(&mut buf).unwrap();
            assert_eq!(Request::decode(bytes).unwrap(), req);
        }
        // The kinds above cover every command.
        let mut kinds: Vec<_> = commands().iter().map(|c| c.kind().code()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), CommandKind::ALL.len());
    }

    #[test]
    fn a_soft_findings_reason_travels_bounded_link_026() {
        let reason = "x".repeat(SOFT_REASON_MAX);
        let req = Request::pump(
            9,
            Command::Program {
                prescription: Prescription {
                    contents: Admixture::single(DrugId::Baclofen, q("2000 mcg/mL")),
                    schedule: Schedule::continuous(q("0.6 mL/day")),
                    patient_bolus: None,
                    reservoir_volume: q("20 mL"),
                },
                confirm_soft: SoftReason::new(&reason).ok(),
            },
        );
        let mut buf = [0u8; MAX_PLAINTEXT];
        let bytes = req.encode(&mut buf).unwrap().to_vec();
        assert_eq!(Request::decode(&bytes).unwrap(), req);
        // The reason on the wire: postcard's length (64) and the bytes.
        let at = bytes
            .windows(SOFT_REASON_MAX)
            .position(|w| w == reason.as_bytes())
            .unwrap();
        assert_eq!(bytes[at - 1], 64);
        // One byte longer (65) does not decode: the pump never sees it.
        let mut longer = bytes[..at - 1].to_vec();
        longer.push(65);
        longer.extend_from_slice(reason.as_bytes());
        longer.push(b'x');
        longer.extend_from_slice(&bytes[at + SOFT_REASON_MAX..]);
        assert_eq!(Request::decode(&longer), Err(MessageError::Malformed));
        // Nor does an empty or blank reason: a confirmation always carries one.
        for blank in [&b""[..], b"   "] {
            let mut b = bytes[..at - 1].to_vec();
            b.push(u8::try_from(blank.len()).unwrap());
            b.extend_from_slice(blank);
            b.extend_from_slice(&bytes[at + SOFT_REASON_MAX..]);
            assert_eq!(Request::decode(&b), Err(MessageError::Malformed));
        }
    }

    #[test]
    fn every_reply_round_trips() {
        let refusal = Refusal::NotPermitted {
            role: Role::PatientRemote,
            kind: CommandKind::Stop,
        };
        let replies = [
            Reply::from(&Response::Accepted),
            Reply::from(&Response::BolusAccepted {
                volume: Volume::from_ul(100),
                ends_at: Instant::from_ms(60_000),
            }),
            Reply::from(&Response::Refused(refusal.clone())),
            Reply::from(&Response::Status(status())),
            Reply::Malformed,
        ];
        let mut buf = [0u8; MAX_PLAINTEXT];
        for (i, reply) in replies.into_iter().enumerate() {
            let a = Answer {
                command_id: u32::try_from(i).unwrap(),
                reply,
            };
            let bytes = a.encode(&mut buf).unwrap();
            assert_eq!(Answer::decode(bytes).unwrap(), a);
        }
        match Reply::from(&Response::Refused(refusal.clone())) {
            Reply::Refused { code, text } => {
                assert_eq!(code, refusal.code());
                assert_eq!(text.as_str(), alloc::format!("{refusal}"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn telemetry_commands_and_replies_round_trip_and_fit_one_frame_link_007() {
        use thecal_pump::event::Event;
        let mut buf = [0u8; MAX_PLAINTEXT];
        let commands = [
            LinkCommand::OpenEnrolment {
                role: Role::PatientRemote,
                seconds: u16::MAX,
            },
            LinkCommand::PendingEnrolment,
            LinkCommand::ConfirmEnrolment {
                fingerprint: u32::MAX,
            },
            LinkCommand::CancelEnrolment,
            LinkCommand::Revoke { key_id: u32::MAX },
            LinkCommand::Devices,
            LinkCommand::ReadLog { from_seq: u32::MAX },
            LinkCommand::ReadProgram,
            LinkCommand::ReadFluidPath,
        ];
        let mut codes: Vec<u8> = commands.iter().map(LinkCommand::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), commands.len());
        for (i, c) in commands.into_iter().enumerate() {
            assert!(thecal_pump::event::LINK_COMMAND_CODES.contains(&c.code()));
            assert!(c.allowed(Role::Clinician));
            assert!(!c.allowed(Role::PatientRemote));
            assert_eq!(
                c.allowed(Role::Emergency),
                c == LinkCommand::ReadProgram,
                "an emergency device reads the program it reduces, nothing else: {c:?}"
            );
            let req = Request::link(u32::try_from(i).unwrap(), c);
            let bytes = req.encode(&mut buf).unwrap();
            assert_eq!(Request::decode(bytes).unwrap(), req);
        }
        // The largest replies: a full log page of the longest events, every device.
        let mut entries = heapless::Vec::new();
        for seq in 0..LOG_ENTRIES_PER_REPLY {
            let _ = entries.push(LogEntry {
                seq: u32::MAX - 10 + u32::try_from(seq).unwrap(),
                at: Instant::from_ms(u64::MAX),
                event: Event::Refill {
                    added: Volume::MAX,
                    aspirated: Volume::MAX,
                    expected: Volume::MAX,
                    flagged: true,
                },
                hash: [0xff; 16],
            });
        }
        let mut devices = heapless::Vec::new();
        while devices
            .push(DeviceInfo {
                key_id: u32::MAX,
                role: Role::PatientRemote,
                revoked: true,
                key: [0xff; 32],
            })
            .is_ok()
        {}
        let replies = [
            Reply::Log {
                entries,
                anchor: Some((u32::MAX, [0xff; 16])),
                head: LogChain::new(),
            },
            Reply::Devices(devices),
            Reply::EnrolmentOpen {
                psk: [0xff; 32],
                implant_key: [0xff; 32],
                expires_at: Instant::from_ms(u64::MAX),
            },
            Reply::EnrolmentPending {
                fingerprint: 999_999,
                key: [0xff; 32],
                key_id: u32::MAX,
                role: Role::Emergency,
            },
            Reply::Enrolled {
                key_id: u32::MAX,
                role: Role::Emergency,
            },
        ];
        for reply in replies {
            let a = Answer {
                command_id: u32::MAX,
                reply,
            };
            let bytes = a.encode(&mut buf).unwrap();
            assert_eq!(Answer::decode(bytes).unwrap(), a);
        }
    }

    /// The largest fluid path reading: every segment a merged one of four drugs, every
    /// number at its largest.
    fn largest_path_reading() -> PathReading {
        use thecal_pump::core::{Bolus, BolusKind};
        use thecal_pump::reading::{MAX_SEGMENTS, PathSegment, SegmentFluid};
        let mut segments = heapless::Vec::new();
        for _ in 0..MAX_SEGMENTS {
            let mut drugs = heapless::Vec::new();
            for d in [
                DrugId::Morphine,
                DrugId::Bupivacaine,
                DrugId::Clonidine,
                DrugId::Baclofen,
            ] {
                drugs
                    .push((d, thecal_rx::Concentration::from_raw(u64::MAX)))
                    .unwrap();
            }
            segments
                .push(PathSegment {
                    volume: Volume::MAX,
                    fluid: SegmentFluid::Mixed(drugs),
                })
                .unwrap();
        }
        PathReading {
            now: Instant::from_ms(u64::MAX),
            program_version: u32::MAX,
            reservoir: Volume::MAX,
            dead_volume: Volume::MAX,
            segments,
            offset_minutes: Some(i16::MIN),
            beyond_use: Some(Instant::from_ms(u64::MAX)),
            bolus: Some(Bolus {
                kind: BolusKind::Priming,
                volume: Volume::MAX,
                start: Instant::from_ms(u64::MAX),
                duration: Duration::from_ms(u64::MAX),
            }),
        }
    }

    #[test]
    fn the_largest_fluid_path_reading_fits_one_frame_link_027() {
        let mut buf = [0u8; MAX_PLAINTEXT];
        let a = Answer {
            command_id: u32::MAX,
            reply: Reply::FluidPath(largest_path_reading()),
        };
        let bytes = a.encode(&mut buf).unwrap();
        assert_eq!(bytes.len(), FLUID_PATH_ANSWER_MAX);
        assert_eq!(Answer::decode(bytes).unwrap(), a);
        // A single fill of four drugs encodes no larger than a merged segment.
        let mut r = largest_path_reading();
        let four = Admixture::new(&[
            thecal_rx::dose::Component {
                drug: DrugId::Morphine,
                concentration: thecal_rx::Concentration::from_raw(u64::MAX),
            },
            thecal_rx::dose::Component {
                drug: DrugId::Bupivacaine,
                concentration: thecal_rx::Concentration::from_raw(u64::MAX),
            },
            thecal_rx::dose::Component {
                drug: DrugId::Clonidine,
                concentration: thecal_rx::Concentration::from_raw(u64::MAX),
            },
            thecal_rx::dose::Component {
                drug: DrugId::Baclofen,
                concentration: thecal_rx::Concentration::from_raw(u64::MAX),
            },
        ])
        .unwrap();
        for s in &mut r.segments {
            s.fluid = thecal_pump::reading::SegmentFluid::Fluid(four.clone());
        }
        let a = Answer {
            command_id: u32::MAX,
            reply: Reply::FluidPath(r),
        };
        let bytes = a.encode(&mut buf).unwrap();
        assert!(bytes.len() <= FLUID_PATH_ANSWER_MAX);
        assert_eq!(Answer::decode(bytes).unwrap(), a);
    }

    #[test]
    fn a_fluid_path_answer_with_a_fifth_drug_or_a_seventeenth_segment_does_not_decode_link_027() {
        let mut buf = [0u8; 2 * MAX_PLAINTEXT];
        let a = Answer {
            command_id: 1,
            reply: Reply::FluidPath(largest_path_reading()),
        };
        let good = a.encode(&mut buf).unwrap().to_vec();
        // Command id (1 byte), reply tag (1), now (10), program version (5), reservoir
        // (10), dead volume (10): then the segment count. One more segment is refused by
        // the bounded vector.
        let count_at = 1 + 1 + 10 + 5 + 10 + 10;
        assert_eq!(good[count_at], 16);
        let mut longer = good.clone();
        longer[count_at] = 17;
        assert_eq!(Answer::decode(&longer), Err(MessageError::Malformed));
        // A merged segment of five drugs: the first segment's drug count 4 → 5 (after
        // the count, the segment's volume (10 bytes) and its variant tag).
        let four_at = count_at + 1 + 10 + 1;
        assert_eq!(good[four_at], 4);
        let mut five = good.clone();
        five[four_at] = 5;
        assert_eq!(Answer::decode(&five), Err(MessageError::Malformed));
    }

    #[test]
    fn long_refusal_text_is_cut_at_a_char_boundary() {
        let r = Refusal::Invalid(
            "ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü \
             ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü ü",
        );
        let Reply::Refused { text, .. } = Reply::from(&Response::Refused(r)) else {
            panic!("not refused")
        };
        assert!(text.len() <= REFUSAL_TEXT_MAX);
        assert!(text.len() >= REFUSAL_TEXT_MAX - 3);
        assert!(text.starts_with("ü ü"));
    }

    #[test]
    fn strict_decoding() {
        let mut buf = [0u8; 64];
        let req = Request::pump(5, Command::Resume);
        let n = req.encode(&mut buf).unwrap().len();
        assert_eq!(Request::decode(&buf[..n + 1]), Err(MessageError::Trailing));
        assert_eq!(Request::decode(&buf[..n - 1]), Err(MessageError::Malformed));
        assert_eq!(Request::decode(&[]), Err(MessageError::Malformed));
        assert_eq!(
            req.encode(&mut [0u8; 1]).map(|b| b.len()),
            Err(MessageError::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_error(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::decode(&bytes);
            let _ = Answer::decode(&bytes);
        }

        #[test]
        fn scalar_commands_round_trip(
            id in any::<u32>(),
            utc_ms in any::<u64>(),
            offset in any::<i16>(),
            request_id in any::<u32>(),
            percent in any::<u8>(),
        ) {
            let mut buf = [0u8; 64];
            for command in [
                Command::SetClock { utc_ms, offset_minutes: offset },
                Command::PatientBolus { request_id },
                Command::ReduceDose { percent },
            ] {
                let req = Request::pump(id, command);
                let bytes = req.encode(&mut buf).unwrap();
                prop_assert_eq!(Request::decode(bytes).unwrap(), req);
            }
        }
    }
}
