//! # thecal-clinic: the pump clinic's records, workflows and HTTP API
//!
//! - [`domain`]: records and rules, no I/O and no clock (time is a parameter); every dose,
//!   flow, check, refill plan and reconciliation comes from thecal-rx.

pub mod domain;
pub mod storage;
