//! The implant side of the link, sans-IO: who may connect, and commands into the pump.
//!
//! # Flow
//!
//! ```text
//! hello frame ──Implant::accept──▶ ImplantSession ──handle(frame, pump)──▶ answer frame
//!               (enrolled, not revoked?)            (decrypt, decode, pump.handle_command,
//!                                                    encode, encrypt)
//! ```
//!
//! * [`Registry`]: the enrolled devices, each a static public key with a [`Role`] and a key
//!   id for the log. It is filled by the caller (enrolment over the air is not part of this
//!   module).
//! * [`Implant::accept`] reads handshake message 1 and looks the initiator's static key up
//!   **before** writing the reply: an unknown or revoked device gets [`Denied`] and no
//!   session, and nothing is sent.
//! * [`ImplantSession::handle`] decrypts one transport frame, decodes a [`Request`] and
//!   hands its command to [`Pump::handle_command`] with the enrolled role and key id: the
//!   pump's capability table (`thecal_pump::command::allowed`) decides what the role may
//!   do, and the pump logs every accepted or refused command with the key id. A frame that
//!   does not authenticate never reaches the pump. The caller drains the pump's actions
//!   afterwards, as after any other input.

use core::fmt;

use thecal_pump::command::Role;
use thecal_pump::core::Pump;
use thecal_rx::Instant;

use crate::frame::MAX_FRAME;
use crate::message::{Answer, MessageError, Reply, Request};
use crate::session::{
    Entropy, LinkError, MAX_PLAINTEXT, PublicKey, Responder, Session, StaticKeypair,
};

/// How many devices the registry holds.
pub const REGISTRY_CAPACITY: usize = 8;

/// One enrolled device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrolment {
    /// The device's static X25519 public key.
    pub key: PublicKey,
    /// What the device may do.
    pub role: Role,
    /// The id the pump's log records for the device's commands (never 0: 0 is local).
    pub key_id: u32,
    /// Revoked devices stay listed (so a revoked key is reported as such) but are denied.
    pub revoked: bool,
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
    /// Key id 0 is reserved for local commands.
    ReservedKeyId,
}

impl fmt::Display for EnrolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnrolError::Full => write!(
                f,
                "the registry is full ({REGISTRY_CAPACITY} devices); revoke and remove one first"
            ),
            EnrolError::DuplicateKey { key_id } => {
                write!(f, "this key is already enrolled as key {key_id}")
            }
            EnrolError::DuplicateKeyId { key_id } => {
                write!(f, "key id {key_id} is already used by another key")
            }
            EnrolError::ReservedKeyId => f.write_str("key id 0 is reserved for local commands"),
        }
    }
}

impl core::error::Error for EnrolError {}

/// The devices enrolled with this implant (at most [`REGISTRY_CAPACITY`]).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: heapless::Vec<Enrolment, REGISTRY_CAPACITY>,
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry {
            entries: heapless::Vec::new(),
        }
    }

    /// Adds a device. A key or key id already present (revoked or not) is refused, so a
    /// revoked key cannot be re-enrolled under a new id by mistake.
    pub fn enroll(&mut self, enrolment: Enrolment) -> Result<(), EnrolError> {
        if enrolment.key_id == 0 {
            return Err(EnrolError::ReservedKeyId);
        }
        if let Some(e) = self.entries.iter().find(|e| e.key == enrolment.key) {
            return Err(EnrolError::DuplicateKey { key_id: e.key_id });
        }
        if self.entries.iter().any(|e| e.key_id == enrolment.key_id) {
            return Err(EnrolError::DuplicateKeyId {
                key_id: enrolment.key_id,
            });
        }
        self.entries.push(enrolment).map_err(|_| EnrolError::Full)
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

    /// Every enrolment.
    pub fn iter(&self) -> impl Iterator<Item = &Enrolment> {
        self.entries.iter()
    }
}

/// Why a handshake was not accepted. No reply was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The hello is not a valid handshake message 1 for this implant.
    Handshake(LinkError),
    /// The initiator's static key is not enrolled.
    UnknownKey,
    /// The initiator's key was enrolled as `key_id` and has been revoked.
    Revoked {
        /// The revoked key's id.
        key_id: u32,
    },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Handshake(e) => write!(f, "connection denied: {e}"),
            Denied::UnknownKey => {
                f.write_str("connection denied: the device's key is not enrolled with this pump")
            }
            Denied::Revoked { key_id } => {
                write!(f, "connection denied: key {key_id} has been revoked")
            }
        }
    }
}

impl core::error::Error for Denied {}

/// The implant's link identity: its static key pair and the enrolled devices.
#[derive(Debug)]
pub struct Implant {
    keys: StaticKeypair,
    registry: Registry,
}

impl Implant {
    /// An implant with its static key pair and a registry.
    pub const fn new(keys: StaticKeypair, registry: Registry) -> Self {
        Implant { keys, registry }
    }

    /// The implant's static public key (what programmers are given at enrolment).
    pub const fn public(&self) -> &PublicKey {
        self.keys.public()
    }

    /// The enrolled devices.
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The enrolled devices, to enrol or revoke.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Reads handshake message 1 and, if its sender is enrolled and not revoked, writes
    /// the reply into `reply_out` (needs `HEADER_LEN + HANDSHAKE_REPLY_LEN` bytes) and
    /// returns the session and the reply's length. Otherwise nothing is written.
    ///
    /// A hello can be replayed (IK message 1 has no freshness): the session it yields is
    /// useless to anyone without the initiator's static and ephemeral private keys.
    pub fn accept(
        &self,
        hello_frame: &[u8],
        entropy: Entropy,
        reply_out: &mut [u8],
    ) -> Result<(ImplantSession, usize), Denied> {
        let hello = Responder::new(&self.keys, entropy)
            .and_then(|r| r.read_hello(hello_frame))
            .map_err(Denied::Handshake)?;
        let enrolment = *self
            .registry
            .lookup(hello.initiator_static())
            .ok_or(Denied::UnknownKey)?;
        if enrolment.revoked {
            return Err(Denied::Revoked {
                key_id: enrolment.key_id,
            });
        }
        let (session, n) = hello.write_reply(reply_out).map_err(Denied::Handshake)?;
        Ok((
            ImplantSession {
                session,
                role: enrolment.role,
                key_id: enrolment.key_id,
            },
            n,
        ))
    }
}

/// An established session with one enrolled device.
#[derive(Debug)]
pub struct ImplantSession {
    session: Session,
    role: Role,
    key_id: u32,
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

    /// The underlying Noise session.
    pub const fn session(&self) -> &Session {
        &self.session
    }

    /// Handles one transport frame from the device: decrypts it, decodes a [`Request`],
    /// runs its command on `pump` as the enrolled role and key id, and writes the encrypted
    /// [`Answer`] (same `command_id`) into `out`; returns the answer frame's length.
    ///
    /// * `out` must hold [`MAX_FRAME`] bytes, checked first, so a command is never run
    ///   whose answer could not be written ([`LinkError::BufferTooSmall`]).
    /// * A frame that does not authenticate (forged, corrupted, replayed, reordered) is an
    ///   error and never reaches the pump; the session is unchanged.
    /// * An authentic frame that is not a request is answered with [`Reply::Malformed`]
    ///   (`command_id` 0) and does not reach the pump.
    pub fn handle(
        &mut self,
        frame: &[u8],
        pump: &mut Pump,
        now: Instant,
        out: &mut [u8],
    ) -> Result<usize, LinkError> {
        if out.len() < MAX_FRAME {
            return Err(LinkError::BufferTooSmall { needed: MAX_FRAME });
        }
        let mut plain = [0u8; MAX_PLAINTEXT];
        let n = self.session.read_message(frame, &mut plain)?;
        let answer = match plain.get(..n).map(Request::decode) {
            Some(Ok(request)) => {
                let response = pump.handle_command(now, self.role, self.key_id, &request.command);
                Answer {
                    command_id: request.command_id,
                    reply: Reply::from(&response),
                }
            }
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
        self.session.write_message(encoded, out)
    }
}
