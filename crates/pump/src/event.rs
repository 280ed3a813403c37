//! The events the pump writes to its hash-chained log.

use serde::{Deserialize, Serialize};
use thecal_rx::drug::DrugId;
use thecal_rx::{Mass, Volume};

use crate::alarm::AlarmKind;
use crate::command::{FaultCode, Role, StopReason};
use crate::core::BolusKind;

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
        /// Kind.
        kind: BolusKind,
        /// Volume to deliver.
        volume: Volume,
    },
    /// A bolus ended.
    BolusEnded {
        /// Kind.
        kind: BolusKind,
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
        /// Why.
        reason: StopReason,
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
        /// Which check.
        code: FaultCode,
    },
    /// The telemetry enrolled a device.
    DeviceEnrolled {
        /// The device's role.
        role: Role,
        /// Its key identifier.
        key_id: u32,
    },
    /// The telemetry revoked a device.
    DeviceRevoked {
        /// Its key identifier.
        key_id: u32,
    },
    /// The telemetry denied handshakes: `count` in a row so far (a flood is logged at
    /// growing intervals, not frame by frame, so it cannot wash the log out).
    HandshakeDenied {
        /// The key identifier the hello claimed (0: enrolment or none).
        key_id: u32,
        /// Why (see the telemetry's denial codes).
        reason: u8,
        /// Denials in a row, this one included.
        count: u32,
    },
    /// The dose was reduced (`Command::ReduceDose`).
    DoseReduced {
        /// Sender's role.
        role: Role,
        /// This reduction, percent.
        percent: u8,
        /// What emergency reductions have left of the clinician's program, percent
        /// (100 after a clinician's own reduction).
        left_percent: u8,
    },
    /// A catheter was recorded (`revision`: it replaced a recorded one).
    CatheterSet {
        /// It replaced a recorded catheter.
        revision: bool,
        /// Catalogue code (0: custom).
        model: u16,
        /// Length after trimming, mm.
        length_mm: u16,
        /// The catheter's internal volume.
        volume: Volume,
    },
}

/// What the telemetry asks the core to log (see [`crate::core::Pump::log_link`]): its
/// own commands, enrolments, revocations and denied handshakes. The core's own events
/// cannot be forged through this type ([`LinkEvent::event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// A telemetry command (enrolment, revocation, log download) was accepted.
    CommandAccepted {
        /// Sender's role.
        role: Role,
        /// Which command (the telemetry's codes, from [`LINK_COMMAND_CODES`]).
        code: u8,
        /// Sender's key identifier.
        key_id: u32,
    },
    /// A telemetry command was refused.
    CommandRefused {
        /// Sender's role.
        role: Role,
        /// Which command (the telemetry's codes).
        code: u8,
        /// Why (the telemetry's refusal codes).
        reason: u8,
        /// Sender's key identifier.
        key_id: u32,
    },
    /// A device was enrolled.
    DeviceEnrolled {
        /// Its role.
        role: Role,
        /// Its key identifier.
        key_id: u32,
    },
    /// A device was revoked.
    DeviceRevoked {
        /// Its key identifier.
        key_id: u32,
    },
    /// Handshakes were denied.
    HandshakeDenied {
        /// The key identifier the hello claimed (0: enrolment or none).
        key_id: u32,
        /// Why.
        reason: u8,
        /// Denials in a row.
        count: u32,
    },
}

/// The command codes the telemetry uses for its own commands; the core's commands use
/// codes below this range.
pub const LINK_COMMAND_CODES: core::ops::RangeInclusive<u8> = 100..=127;

impl LinkEvent {
    /// The event to log; `None` for a command code outside [`LINK_COMMAND_CODES`], so the
    /// telemetry cannot write an entry that reads as one of the core's own commands.
    pub fn event(self) -> Option<Event> {
        let ours = |code: u8| LINK_COMMAND_CODES.contains(&code);
        Some(match self {
            LinkEvent::CommandAccepted { role, code, key_id } if ours(code) => {
                Event::CommandAccepted { role, code, key_id }
            }
            LinkEvent::CommandRefused {
                role,
                code,
                reason,
                key_id,
            } if ours(code) => Event::CommandRefused {
                role,
                code,
                reason,
                key_id,
            },
            LinkEvent::CommandAccepted { .. } | LinkEvent::CommandRefused { .. } => return None,
            LinkEvent::DeviceEnrolled { role, key_id } => Event::DeviceEnrolled { role, key_id },
            LinkEvent::DeviceRevoked { key_id } => Event::DeviceRevoked { key_id },
            LinkEvent::HandshakeDenied {
                key_id,
                reason,
                count,
            } => Event::HandshakeDenied {
                key_id,
                reason,
                count,
            },
        })
    }
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
