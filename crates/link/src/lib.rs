//! # thecal-link: secure telemetry between the pump and its programmers
//!
//! The telemetry link, sans-IO and `no_std` (with an allocator,
//! which the Noise library needs): it never touches a radio, a socket or a clock. Bytes
//! arrive through `read_*` calls and leave through `write_*` calls into caller buffers.
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`frame`] | the length-framed wire format, a checked decoder | panic on any input |
//! | [`message`] | typed requests and answers in `postcard` | accept trailing or oversized data |
//! | [`session`] | the Noise `IK` handshake and transport | carry a payload in a handshake message, reuse or wrap a nonce, advance a nonce on a failed decrypt |
//! | [`endpoint`] | the implant side: enrolled devices and their counters, enrolment windows, accepting hellos, commands into the pump | reply to an unknown, revoked or replayed hello, spend public-key work before the pre-authentication tag passed, let an unauthenticated frame reach the pump |
//! | [`radio`] | the radio's energy: costs, back-off, the daily budget | keep the receiver on for a flood |
//! | [`air`] | an in-memory air with an attacker, for tests and the simulator | lose a frame nobody dropped |
//!
//! The threats and their controls are in `docs/threat-model.md`. The one suite is
//! [`session::PROTOCOL_NAME`] (`Noise_IK_25519_ChaChaPoly_BLAKE2s`; enrolment uses its
//! `IKpsk1` variant),
//! implemented by `snow`'s pure-Rust resolver (ChaCha20-Poly1305 and BLAKE2s from
//! RustCrypto, X25519 from curve25519-dalek).
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod air;
pub mod endpoint;
pub mod frame;
pub mod message;
pub mod radio;
pub mod session;

pub use endpoint::{
    Accepted, Denied, EnrolError, Enrolment, Host, Implant, ImplantSession, LogSource,
    ProximityToken, Registry, RegistryError, RemoveError, UpdatePort, firmware_record, key_id_for,
    log_update_events,
};
pub use frame::{Frame, FrameError, Kind};
pub use message::{
    Answer, Body, DeviceInfo, LinkCommand, MessageError, Reply, Request, UpdateReply, UpdateRequest,
};
pub use radio::{Radio, RadioCosts, RadioPolicy, RadioStats};
pub use session::{
    AwaitingReply, Entropy, HelloAuth, HelloHeader, HelloReceived, Initiator, LinkError, PublicKey,
    Responder, Session, StaticKeypair,
};

#[cfg(test)]
mod tests;
