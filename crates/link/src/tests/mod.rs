//! Session behaviour and Noise conformance (inside the crate: the conformance replay uses
//! the same internal set-up as the sessions, with the vectors' prologues and patterns).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod attack;
mod conformance;
mod session;
