//! # thecal-rx: the dosing arithmetic and drug library of thecal
//!
//! Everything in intrathecal therapy that is arithmetic rather than hardware lives
//! here, so that the clinician programmer and the implant compute the same numbers
//! with the same code:
//!
//! - [`quantity`]: integer newtypes in one canonical unit per quantity (nL, ng, ng/mL,
//!   nL/day, ng/day, ms), with checked arithmetic and clinical-unit parsing/printing;
//! - [`drug`]: the drug library, each limit with its source, and clinic tightening;
//! - [`dose`]: dose ↔ flow conversions and admixtures;
//! - [`schedule`]: flex (step) schedules and periodic boluses, daily totals and the
//!   ideal cumulative volume at any instant;
//! - [`check`]: the one prescription check used by programmer and implant alike;
//! - [`refill`]: refill planning and reconciliation;
//! - [`seq`]: a fixed-capacity sequence decoded in place (a restore on a small stack);
//! - [`convert`]: opioid conversion and rotation by an equianalgesic table;
//! - [`constant_rate`]: gas-driven constant-rate pumps (concentration for a target
//!   dose, flow under temperature and pressure);
//! - `file` (feature `file`, needs `std`): the prescription file format (TOML) read by
//!   `thecal calc check`, the programmer and the simulator's scenarios.
//!
//! This crate never allocates, never panics, never reads a clock and never uses
//! floating point for a dose: time comes in as arguments, every quantity is an
//! integer and every operation that could overflow is checked and returns an error.
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::float_arithmetic
)]

#[cfg(feature = "file")]
extern crate std;

pub mod check;
pub mod constant_rate;
pub mod convert;
pub mod dose;
pub mod drug;
#[cfg(feature = "file")]
pub mod file;
pub mod quantity;
pub mod refill;
pub mod schedule;
pub mod seq;

pub use quantity::{
    Concentration, Duration, Flow, Instant, Mass, MassRate, ParseError, QuantityError, Volume,
};
