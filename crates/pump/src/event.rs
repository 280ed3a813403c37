//! The events the pump writes to its hash-chained log.

use serde::{Deserialize, Serialize};
use thecal_rx::drug::DrugId;
use thecal_rx::{Mass, Volume};

use crate::alarm::AlarmKind;
use crate::command::Role;

/// One logged event. Every variant is small and fixed-size so that a log entry has a
/// bounded encoded length ([`MAX_EVENT_LEN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The core started, restoring the record with this sequence number (0: none).
    PowerOn {
        /// Sequence number of the restored record.
        restored_seq: u64,
    },
    /// An alarm was raised.
    AlarmRaised(AlarmKind),
    /// An alarm's cause went away.
    AlarmCleared(AlarmKind),
    /// An alarm was acknowledged.
    AlarmAcknowledged(AlarmKind),
    /// A command was accepted.
    CommandAccepted {
        /// Sender's role.
        role: Role,
        /// Which command (see `core`'s command codes).
        code: u8,
        /// Sender's key identifier (0: local).
        key_id: u32,
    },
    /// A command was refused.
    CommandRefused {
        /// Sender's role.
        role: Role,
        /// Which command.
        code: u8,
        /// Why (see `core`'s refusal codes).
        reason: u8,
        /// Sender's key identifier (0: local).
        key_id: u32,
    },
    /// The limiter vetoed delivery.
    LimiterVeto {
        /// Drug whose limit would be exceeded.
        drug: DrugId,
        /// Window: 1 (hour) or 24 (hours).
        window_hours: u8,
        /// Delivered in the window plus the vetoed amount.
        would_be: Mass,
        /// The limit.
        limit: Mass,
    },
    /// A stroke stalled.
    MotorStall {
        /// Volume not delivered so far.
        missed: Volume,
    },
    /// Strokes succeed again after a stall.
    MotorRecovered {
        /// Volume missed during the stall.
        missed: Volume,
    },
    /// A refill.
    Refill {
        /// Volume added.
        added: Volume,
        /// Residual aspirated.
        aspirated: Volume,
        /// Residual expected.
        expected: Volume,
        /// The reconciliation flagged the difference.
        flagged: bool,
    },
    /// A bolus started.
    BolusStarted {
        /// Kind (see `core`'s bolus kinds).
        kind: u8,
        /// Volume to deliver.
        volume: Volume,
    },
    /// A bolus ended.
    BolusEnded {
        /// Kind.
        kind: u8,
        /// Volume delivered.
        delivered: Volume,
    },
    /// The program changed (new version number).
    ProgramChanged {
        /// Program version.
        version: u32,
    },
    /// Delivery stopped.
    Stopped {
        /// Why (see `core`'s stop reasons).
        reason: u8,
    },
    /// Delivery resumed.
    Resumed,
    /// The wall clock was set.
    ClockSet {
        /// Old UTC time, ms since 1970 (0: unset).
        old_utc_ms: u64,
        /// New UTC time, ms since 1970.
        new_utc_ms: u64,
    },
    /// A self-test or invariant check failed; the core entered its safe state.
    Fault {
        /// Which check (see `core`'s fault codes).
        code: u8,
    },
}

/// The longest postcard encoding of an [`Event`], in bytes.
pub const MAX_EVENT_LEN: usize = 40;

impl Event {
    /// Whether this event is a fault (kept in the fault log as well as the event log).
    pub const fn is_fault(&self) -> bool {
        matches!(
            self,
            Event::Fault { .. } | Event::MotorStall { .. } | Event::LimiterVeto { .. }
        ) || matches!(
            self,
            Event::AlarmRaised(
                AlarmKind::MemoryFault | AlarmKind::EndOfService | AlarmKind::EmptyReservoir
            )
        )
    }
}
