//! # thecal-programmer: the clinician programmer's side of the telemetry
//!
//! One implementation of what `thecal programmer` (the command line) and the clinic's
//! console (`thecal serve`) both do with an implant, and of the virtual implant they
//! talk to on loopback:
//!
//! - [`keyfile`]: device key files (0600, refused when others may read them), the
//!   handshake counter saved before each hello, and a station's pairings with many pumps.
//! - [`bearer`]: the loopback UDP bearer (one datagram, one frame), the hello with its
//!   retries, requests over an established session, and the bytes and round trips on air.
//! - [`session`]: what a programmer reads and writes: status, program, devices, the event
//!   log with its chain head, enrolment by the wand's proximity token, remote enrolment
//!   and revocation.
//! - [`implant`]: the virtual implant, the real pump core and link endpoint on a UDP
//!   socket with a state directory as its non-volatile memory; in its own process
//!   (`thecal implant`) or on a thread ([`implant::spawn`]).
//! - [`describe`]: log events and refusal codes in words.
//! - [`firmware`]: the firmware update: the virtual implant's flash and the programmer's
//!   side of the transfer.
//!
//! Nothing here prints to the terminal except the implant's status lines (see
//! [`implant::Voice`]); the callers decide what to show.

pub mod bearer;
pub mod describe;
pub mod firmware;
pub mod implant;
pub mod keyfile;
pub mod session;
