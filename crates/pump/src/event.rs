//! The events the pump writes to its hash-chained log.

use serde::{Deserialize, Serialize};
use thecal_rx::drug::DrugId;
use thecal_rx::{Mass, Volume};

use crate::alarm::AlarmKind;
use crate::command::{FaultCode, Role, SoftReason, StopReason};
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
    /// A clinician confirmed soft findings of a program or refill, for a reason: one
    /// entry per part of the reason (see [`Event::soft_confirmation`]), logged after the
    /// change was made.
    SoftFindingConfirmed {
        /// The command whose findings were confirmed (its [`crate::command::CommandKind`]
        /// code: program or refill).
        command: u8,
        /// How many soft findings the pump found (a flagged refill reconciliation counts
        /// as one).
        findings: u8,
        /// Which part of the reason this entry carries, from 0.
        part: u8,
        /// How many parts the reason has (1 to [`REASON_PARTS_MAX`]).
        parts: u8,
        /// This part of the reason's text.
        text: ReasonPart,
    },
    /// The firmware's updater reported a step of an update (docs/firmware-update.md),
    /// with its stable codes, so that a log download shows an update's history
    /// (logged through [`LinkEvent::FirmwareUpdate`]).
    FirmwareUpdate(FirmwareRecord),
}

/// An event of the firmware's updater as the pump logs it: the updater's stable codes
/// and the numbers that go with them (docs/firmware-update.md, FWU-012). The pump does
/// not interpret it; it keeps it in its hash-chained log like any other event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareRecord {
    /// What happened: 1 booted, 2 transfer started, 3 transfer complete, 4 verified,
    /// 5 trial marked, 6 confirmed, 7 reverted, 8 cancelled, 9 keys changed, 10 refused.
    pub code: u8,
    /// For a refusal, the step refused (1 begin, 2 chunk, 3 verify, 4 mark for trial,
    /// 5 cancel, 6 confirm, 7 rotate key, 8 revoke key); for a boot, 1 if the image runs
    /// on trial; 0 otherwise.
    pub step: u8,
    /// For a refusal, the updater's refusal code; for a revert, its cause's code; 0
    /// otherwise.
    pub reason: u8,
    /// The slot concerned (0 = A, 1 = B; [`FirmwareRecord::NO_SLOT`] when none).
    pub slot: u8,
    /// The image's version (zeros when the event has none).
    pub version: FirmwareVersion,
    /// The security counter (verified, confirmed), the image's bytes (transfer started,
    /// complete) or the keys trusted now (keys changed); 0 otherwise.
    pub value: u32,
}

impl FirmwareRecord {
    /// [`FirmwareRecord::slot`] of an event that names no slot.
    pub const NO_SLOT: u8 = 0xff;
}

/// A firmware image's version, MCUboot's four numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Revision.
    pub revision: u16,
    /// Build number.
    pub build: u32,
}

/// The most bytes of a reason one log entry carries: the event stays within the 32 bytes
/// of the largest other event, so a log entry stays 64 bytes in memory.
pub const REASON_PART_LEN: usize = 26;

/// The most entries a reason of [`crate::command::SOFT_REASON_MAX`] bytes takes: parts
/// end at character boundaries, so each holds at least `REASON_PART_LEN - 3` bytes.
pub const REASON_PARTS_MAX: usize = 3;

const _: () = assert!(
    REASON_PARTS_MAX * (REASON_PART_LEN - 3) >= crate::command::SOFT_REASON_MAX,
    "a reason must fit its parts"
);

/// Up to [`REASON_PART_LEN`] bytes of a reason's UTF-8, cut at a character boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonPart {
    len: u8,
    bytes: [u8; REASON_PART_LEN],
}

impl ReasonPart {
    /// The part's text; `None` if the stored bytes are not UTF-8 or its length is out of
    /// range (a log entry that was not written by the pump).
    pub fn as_str(&self) -> Option<&str> {
        self.bytes
            .get(..usize::from(self.len))
            .and_then(|b| core::str::from_utf8(b).ok())
    }
}

impl Event {
    /// The entries that log a confirmation of `findings` soft findings of the command
    /// with code `command` for `reason`: the reason cut at character boundaries into
    /// parts of at most [`REASON_PART_LEN`] bytes, in order.
    pub fn soft_confirmation(
        command: u8,
        findings: u8,
        reason: &SoftReason,
    ) -> heapless::Vec<Event, REASON_PARTS_MAX> {
        let mut texts: heapless::Vec<ReasonPart, REASON_PARTS_MAX> = heapless::Vec::new();
        let mut current = ReasonPart {
            len: 0,
            bytes: [0; REASON_PART_LEN],
        };
        for c in reason.as_str().chars() {
            let mut utf8 = [0u8; 4];
            let encoded = c.encode_utf8(&mut utf8).as_bytes();
            let at = usize::from(current.len);
            let end = at.saturating_add(encoded.len());
            if end > REASON_PART_LEN {
                // A reason of at most SOFT_REASON_MAX bytes always fits (checked above).
                let _ = texts.push(current);
                current = ReasonPart {
                    len: 0,
                    bytes: [0; REASON_PART_LEN],
                };
            }
            let at = usize::from(current.len);
            if let Some(slot) = current.bytes.get_mut(at..at.saturating_add(encoded.len())) {
                slot.copy_from_slice(encoded);
                current.len = current
                    .len
                    .saturating_add(u8::try_from(encoded.len()).unwrap_or(u8::MAX));
            }
        }
        let _ = texts.push(current);
        let parts = u8::try_from(texts.len()).unwrap_or(u8::MAX);
        texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| Event::SoftFindingConfirmed {
                command,
                findings,
                part: u8::try_from(i).unwrap_or(u8::MAX),
                parts,
                text,
            })
            .collect()
    }
}

/// What the telemetry asks the core to log (see [`crate::core::Pump::log_link`]): its
/// own commands, enrolments, revocations and denied handshakes, and the events of the
/// firmware's updater it drives. The core's own events
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
    /// The firmware's updater, which the telemetry's side of the firmware drives,
    /// reported an event.
    FirmwareUpdate(FirmwareRecord),
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
            LinkEvent::FirmwareUpdate(r) => Event::FirmwareUpdate(r),
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
