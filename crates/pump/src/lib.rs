//! # thecal-pump: the therapy core of an implanted intrathecal pump
//!
//! The firmware logic of a programmable intrathecal pump, written so that it could run
//! unchanged on the implant's microcontroller and is driven, deterministically, by the
//! simulator and the tests. It never reads a clock, a sensor or a radio: inputs arrive
//! through `handle_*` calls with an explicit monotonic `now`, outputs leave through
//! `poll_*` calls (see [`core::Pump`] for the call order).
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`profile`] | hardware profiles as data, presets | hold state |
//! | [`reading`] | what a programmer reads of the fluid path, for a digital twin | allocate, or report a path that does not add up |
//! | [`command`] | commands, roles, the capability table | act on the pump |
//! | [`event`] | the events written to the log | — |
//! | [`limiter`] | the independent dose limiter (rolling 1 h / 24 h) | be switched off or reset by a command or a clock change |
//! | [`fluid`] | the fluid path: FIFO of segments in pump path and catheter | lose or create drug mass |
//! | [`alarm`] | alarm kinds, priorities, texts, repeat schedule | silence a critical alarm whose cause persists |
//! | [`battery`] | energy accounting, ERI/EOS | — |
//! | [`persist`] | the checkpoint record: the whole state with sequence number and CRC | accept a torn or altered record |
//! | [`journal`] | the NOR flash ring: stroke records, checkpoints, page erases, finding the newest at power-on | program a byte twice, erase the newest checkpoint, return a torn record |
//! | [`log`] | the hash-chained event log | let an altered entry verify |
//! | [`core`] | the state machine that ties them together | panic, allocate, read a clock |
#![no_std]
#![forbid(unsafe_code)]
// Without an allocator nothing can be boxed: a refusal carries its findings by value.
// Responses are built once per command, so their size costs a copy, not a hot path.
#![allow(clippy::large_enum_variant, clippy::result_large_err)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::float_arithmetic
)]

pub mod alarm;
pub mod battery;
pub mod catheter;
pub mod command;
pub mod core;
pub mod event;
pub mod fluid;
pub mod journal;
pub mod limiter;
pub mod log;
pub mod persist;
pub mod profile;
pub mod reading;
