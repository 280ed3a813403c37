//! The hash-chained event and fault logs (PUMP-024).
//!
//! Every logged [`Event`] becomes a [`LogEntry`] with a sequence number, the monotonic
//! time and a hash that covers the previous entry's hash, so that changing, removing,
//! reordering or inserting an entry breaks the chain at that entry.
//!
//! **Owns:** the entry format and its hash, the chain head the core keeps
//! ([`LogChain`], persisted with the core's record), the fixed-size ring the hardware
//! or simulator keeps ([`LogRing`]), and verification.
//!
//! **Must never:** let an altered entry verify, or reuse a sequence number: the
//! sequence number never wraps (appending fails instead).
//!
//! # Hash
//!
//! `hash = BLAKE2s-128(`[`DOMAIN_TAG`]` || prev_hash || seq (u32 LE) || at (u64 ms LE)
//! || postcard(event))`, where `prev_hash` of the first entry (sequence number 0) is
//! [`GENESIS_HASH`] (16 zero bytes). Every field before the event has a fixed width, so
//! no two inputs share an encoding. The hash is unkeyed: it proves that the log is
//! internally consistent; a log rewritten from some entry on, with recomputed hashes,
//! is caught by comparing its end with the chain head that the core persisted in its
//! CRC-checked record ([`LogRing::verify_to_head`]).
//!
//! # Capacity
//!
//! Budget of typical events per day: up to 8 patient boluses × 3 entries (command,
//! start, end) = 24; about 10 other commands accepted or refused; 3 alarms × 3 entries
//! (raised, cleared, acknowledged) = 9; stops, resumes, clock and program changes ≈ 5;
//! ≈ 48, rounded up to **60 per day**. Thirty days need 1800 entries:
//! [`EVENT_CAPACITY`] is 2048 (34 days at 60 a day). [`FAULT_CAPACITY`] is 1024 (≥ 1000
//! faults), in a separate ring with its own chain so that a burst of ordinary events
//! never pushes faults out.
//!
//! Sizes: a [`LogEntry`] is 64 bytes in memory (the [`Event`] takes 32) and at most
//! [`MAX_ENTRY_LEN`] = 71 bytes postcard-encoded (seq ≤ 5, time ≤ 10, event ≤
//! [`MAX_EVENT_LEN`] = 40, hash 16). An [`EventLog`] occupies 131,120 bytes in memory
//! (2048 × 64 plus 48 of bookkeeping on a 64-bit host) and 145,408 bytes of storage
//! at 71 bytes an entry; a [`FaultLog`] 65,584 bytes in memory and 72,704 bytes of
//! storage. A clinician's reason for confirming soft findings (up to
//! [`SOFT_REASON_MAX`](crate::command::SOFT_REASON_MAX) = 64 bytes) is logged in up to
//! three entries of at most 26 bytes of text each
//! ([`Event::SoftFindingConfirmed`]), so no entry grows; such confirmations come at
//! clinic visits, well inside the daily budget.

use core::fmt;

use blake2::Blake2s;
use blake2::Digest;
use blake2::digest::consts::U16;
use heapless::Deque;
use serde::{Deserialize, Serialize};
use thecal_rx::Instant;

use crate::event::{Event, MAX_EVENT_LEN};

/// A BLAKE2s-128 entry hash.
pub type Hash = [u8; 16];

/// The `prev_hash` of the first entry of a chain.
pub const GENESIS_HASH: Hash = [0; 16];

/// Domain-separation tag at the start of every hashed input, so that an entry hash
/// can never be confused with a BLAKE2s hash computed for another purpose.
pub const DOMAIN_TAG: &[u8; 24] = b"thecal-pump/log-entry/v1";

/// The longest postcard encoding of a [`LogEntry`], in bytes.
pub const MAX_ENTRY_LEN: usize = 71;

/// Capacity of the event log: 30 days at a budget of 60 events a day, rounded up.
pub const EVENT_CAPACITY: usize = 2048;

/// Capacity of the fault log: at least 1000 faults.
pub const FAULT_CAPACITY: usize = 1024;

// The budget, checked at compile time: 30 days × 60 events a day, and 1000 faults.
const _: () = assert!(EVENT_CAPACITY >= 1800);
const _: () = assert!(FAULT_CAPACITY >= 1000);

/// The event log kept by the hardware or simulator.
pub type EventLog = LogRing<EVENT_CAPACITY>;

/// The fault log kept by the hardware or simulator.
pub type FaultLog = LogRing<FAULT_CAPACITY>;

/// Why an entry could not be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogError {
    /// The sequence number would wrap past `u32::MAX`.
    SequenceExhausted,
    /// The event's encoding does not fit [`MAX_EVENT_LEN`] bytes.
    EventTooLong,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::SequenceExhausted => f.write_str("the log sequence number is exhausted"),
            LogError::EventTooLong => {
                write!(f, "the event encodes to more than {MAX_EVENT_LEN} bytes")
            }
        }
    }
}

/// One log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in its chain, from 0 with no gaps.
    pub seq: u32,
    /// When the event happened (monotonic time).
    pub at: Instant,
    /// What happened.
    pub event: Event,
    /// BLAKE2s-128 over the previous entry's hash and this entry (see the module docs).
    pub hash: Hash,
}

/// Computes the hash of the entry `(seq, at, event)` that follows an entry with hash
/// `prev` (or [`GENESIS_HASH`]).
///
/// # Errors
/// [`LogError::EventTooLong`] if the event encodes to more than [`MAX_EVENT_LEN`] bytes.
pub fn entry_hash(prev: &Hash, seq: u32, at: Instant, event: &Event) -> Result<Hash, LogError> {
    let mut buf = [0u8; MAX_EVENT_LEN];
    let encoded = postcard::to_slice(event, &mut buf).map_err(|_| LogError::EventTooLong)?;
    let digest = Blake2s::<U16>::new()
        .chain_update(DOMAIN_TAG)
        .chain_update(prev)
        .chain_update(seq.to_le_bytes())
        .chain_update(at.ms().to_le_bytes())
        .chain_update(encoded)
        .finalize();
    Ok(digest.into())
}

/// The head of a chain: the small state the core keeps and persists, from which it
/// emits entries. The storage itself ([`LogRing`]) is kept outside the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChain {
    next_seq: u32,
    last_hash: Hash,
}

impl Default for LogChain {
    fn default() -> Self {
        Self::new()
    }
}

impl LogChain {
    /// An empty chain: the next entry is number 0 and follows [`GENESIS_HASH`].
    pub const fn new() -> Self {
        Self {
            next_seq: 0,
            last_hash: GENESIS_HASH,
        }
    }

    /// The sequence number of the next entry (= the number of entries appended).
    pub const fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// The hash of the last entry appended ([`GENESIS_HASH`] if none).
    pub const fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// Appends `event` at time `at` and returns the entry to store. The chain is
    /// unchanged on error.
    ///
    /// # Errors
    /// [`LogError::SequenceExhausted`] when the sequence number would wrap (the last
    /// usable number is `u32::MAX - 1`), [`LogError::EventTooLong`] if the event does
    /// not fit [`MAX_EVENT_LEN`].
    pub fn append(&mut self, at: Instant, event: Event) -> Result<LogEntry, LogError> {
        let seq = self.next_seq;
        let following = seq.checked_add(1).ok_or(LogError::SequenceExhausted)?;
        let hash = entry_hash(&self.last_hash, seq, at, &event)?;
        self.next_seq = following;
        self.last_hash = hash;
        Ok(LogEntry {
            seq,
            at,
            event,
            hash,
        })
    }
}

/// The heads of the two chains the core keeps: every event goes to the event chain,
/// and faults (see [`Event::is_fault`]) also go to the fault chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogChains {
    /// Head of the event log's chain.
    pub events: LogChain,
    /// Head of the fault log's chain.
    pub faults: LogChain,
}

/// The entries produced by [`LogChains::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry for the event log.
    pub event: LogEntry,
    /// The entry for the fault log, if the event is a fault.
    pub fault: Option<LogEntry>,
}

impl LogChains {
    /// Two empty chains.
    pub const fn new() -> Self {
        Self {
            events: LogChain::new(),
            faults: LogChain::new(),
        }
    }

    /// Appends `event` to the event chain and, if it is a fault, to the fault chain.
    /// Both chains advance or neither does.
    ///
    /// # Errors
    /// Any error of [`LogChain::append`] on either chain.
    pub fn append(&mut self, at: Instant, event: Event) -> Result<Appended, LogError> {
        let mut next = *self;
        let event_entry = next.events.append(at, event)?;
        let fault = if event.is_fault() {
            Some(next.faults.append(at, event)?)
        } else {
            None
        };
        *self = next;
        Ok(Appended {
            event: event_entry,
            fault,
        })
    }
}

/// What was wrong with the first bad entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    /// The entry's sequence number is not the one expected at its position: an entry
    /// was removed, inserted or moved, the front was cut without an anchor, or the
    /// sequence number itself was altered.
    SeqGap {
        /// The sequence number found.
        found: u32,
    },
    /// The entry's hash does not match its contents and its predecessor's hash: the
    /// entry (or its hash) was altered.
    HashMismatch,
    /// Every entry verifies, but the log does not end at the chain head the core
    /// persisted: entries were cut from the end, or the log was rewritten.
    HeadMismatch {
        /// The sequence number the core's chain head expects next.
        head_next_seq: u32,
    },
}

/// The first bad entry found by [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tamper {
    /// Position of the bad entry in the iteration, oldest first (for
    /// [`TamperKind::HeadMismatch`]: the number of entries, i.e. just past the end).
    pub index: usize,
    /// The sequence number an intact log has at that position (`u32::MAX` after an
    /// anchor at `u32::MAX`, which no chain produces).
    pub seq: u32,
    /// What was wrong.
    pub kind: TamperKind,
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TamperKind::SeqGap { found } => write!(
                f,
                "log entry {} is missing or out of place (found entry {found} at position {})",
                self.seq, self.index
            ),
            TamperKind::HashMismatch => write!(
                f,
                "log entry {} (position {}) was altered: its hash does not match",
                self.seq, self.index
            ),
            TamperKind::HeadMismatch { head_next_seq } => write!(
                f,
                "the log ends before entry {} but the pump's chain head expects entry \
                 {head_next_seq} next with a different hash",
                self.seq
            ),
        }
    }
}

/// Where verification stands after some entries: the sequence number expected next
/// (`None` after `u32::MAX`) and the hash that entry must follow.
struct Cursor {
    count: usize,
    expected: Option<u32>,
    prev: Hash,
}

fn walk<'a>(
    entries: impl IntoIterator<Item = &'a LogEntry>,
    anchor: Option<(u32, Hash)>,
) -> Result<Cursor, Tamper> {
    let (mut expected, mut prev) = match anchor {
        None => (Some(0), GENESIS_HASH),
        Some((seq, hash)) => (seq.checked_add(1), hash),
    };
    let mut count = 0usize;
    for (index, entry) in entries.into_iter().enumerate() {
        let seq = match expected {
            Some(want) if want == entry.seq => want,
            other => {
                return Err(Tamper {
                    index,
                    seq: other.unwrap_or(u32::MAX),
                    kind: TamperKind::SeqGap { found: entry.seq },
                });
            }
        };
        // An event that cannot be encoded cannot have been appended: treat as altered.
        if entry_hash(&prev, seq, entry.at, &entry.event).ok() != Some(entry.hash) {
            return Err(Tamper {
                index,
                seq,
                kind: TamperKind::HashMismatch,
            });
        }
        prev = entry.hash;
        expected = seq.checked_add(1);
        count = count.saturating_add(1);
    }
    Ok(Cursor {
        count,
        expected,
        prev,
    })
}

/// Checks sequence continuity and every hash of `entries` (oldest first) and returns
/// how many entries verified.
///
/// `anchor` is the `(seq, hash)` of the entry just before the first one, or `None` if
/// the entries start at the beginning of the chain (sequence number 0 after
/// [`GENESIS_HASH`]).
///
/// # Errors
/// The first bad entry, as a [`Tamper`].
pub fn verify<'a>(
    entries: impl IntoIterator<Item = &'a LogEntry>,
    anchor: Option<(u32, Hash)>,
) -> Result<usize, Tamper> {
    walk(entries, anchor).map(|c| c.count)
}

/// Like [`verify`], and also checks that the entries end exactly at `head`, the chain
/// head the core persisted: this catches entries cut from the end and a log rewritten
/// with recomputed hashes.
///
/// # Errors
/// The first bad entry, or [`TamperKind::HeadMismatch`] if the log does not end at
/// `head`.
pub fn verify_to_head<'a>(
    entries: impl IntoIterator<Item = &'a LogEntry>,
    anchor: Option<(u32, Hash)>,
    head: &LogChain,
) -> Result<usize, Tamper> {
    let cursor = walk(entries, anchor)?;
    if cursor.expected == Some(head.next_seq) && cursor.prev == head.last_hash {
        Ok(cursor.count)
    } else {
        Err(Tamper {
            index: cursor.count,
            seq: cursor.expected.unwrap_or(u32::MAX),
            kind: TamperKind::HeadMismatch {
                head_next_seq: head.next_seq,
            },
        })
    }
}

/// Fixed-size storage for the newest `N` entries of one chain: what the hardware or
/// simulator keeps (the core only emits entries). When full, a push evicts the oldest
/// entry and keeps its `(seq, hash)` as the anchor, so the remaining entries still
/// verify. `N` must be at least 1 (checked at compile time).
#[derive(Debug, Clone)]
pub struct LogRing<const N: usize> {
    entries: Deque<LogEntry, N>,
    anchor: Option<(u32, Hash)>,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// The number of entries the ring holds.
    pub const CAPACITY: usize = N;

    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            entries: Deque::new(),
            anchor: None,
        }
    }

    /// Stores `entry`, evicting the oldest entry if the ring is full. The ring does
    /// not check the entry; [`LogRing::verify`] does.
    pub fn push(&mut self, entry: LogEntry) {
        if self.entries.is_full() {
            if let Some(evicted) = self.entries.pop_front() {
                self.anchor = Some((evicted.seq, evicted.hash));
            }
        }
        // Cannot fail: room was just made, and heapless rejects `N == 0` at compile
        // time. Were it to fail, the entry counts as evicted so the anchor stays right.
        if let Err(refused) = self.entries.push_back(entry) {
            self.anchor = Some((refused.seq, refused.hash));
        }
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &LogEntry> + '_ {
        self.entries.iter()
    }

    /// The newest entry.
    pub fn newest(&self) -> Option<&LogEntry> {
        self.entries.back()
    }

    /// The number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the ring holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `(seq, hash)` of the last evicted entry, `None` if nothing was evicted.
    pub const fn anchor(&self) -> Option<(u32, Hash)> {
        self.anchor
    }

    /// Verifies the held entries from the anchor (see [`verify`]).
    ///
    /// # Errors
    /// The first bad entry.
    pub fn verify(&self) -> Result<usize, Tamper> {
        verify(self.entries.iter(), self.anchor)
    }

    /// Verifies the held entries and that they end at the core's chain head (see
    /// [`verify_to_head`]).
    ///
    /// # Errors
    /// The first bad entry, or [`TamperKind::HeadMismatch`].
    pub fn verify_to_head(&self, head: &LogChain) -> Result<usize, Tamper> {
        verify_to_head(self.entries.iter(), self.anchor, head)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing
    )]
    extern crate std;

    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;
    use thecal_rx::drug::DrugId;
    use thecal_rx::{Mass, Volume};

    use super::*;
    use crate::alarm::AlarmKind;
    use crate::command::{FaultCode, Role, SOFT_REASON_MAX, SoftReason, StopReason};
    use crate::core::BolusKind;
    use crate::event::{FirmwareRecord, FirmwareVersion};

    const ROLES: [Role; 3] = [Role::Clinician, Role::PatientRemote, Role::Emergency];

    /// Every variant with worst-case (largest-encoding) field values.
    fn worst_case_events() -> Vec<Event> {
        let v = Volume::MAX;
        let mut out = Vec::new();
        out.push(Event::PowerOn {
            restored_seq: u64::MAX,
        });
        for k in AlarmKind::ALL {
            out.push(Event::AlarmRaised(k));
            out.push(Event::AlarmCleared(k));
            out.push(Event::AlarmAcknowledged(k));
        }
        for role in ROLES {
            out.push(Event::CommandAccepted {
                role,
                code: u8::MAX,
                key_id: u32::MAX,
            });
            out.push(Event::CommandRefused {
                role,
                code: u8::MAX,
                reason: u8::MAX,
                key_id: u32::MAX,
            });
        }
        for role in ROLES {
            out.push(Event::DeviceEnrolled {
                role,
                key_id: u32::MAX,
            });
        }
        out.push(Event::DeviceRevoked { key_id: u32::MAX });
        out.push(Event::HandshakeDenied {
            key_id: u32::MAX,
            reason: u8::MAX,
            count: u32::MAX,
        });
        for drug in DrugId::ALL {
            out.push(Event::LimiterVeto {
                drug,
                window_hours: u8::MAX,
                would_be: Mass::MAX,
                limit: Mass::MAX,
            });
        }
        out.push(Event::MotorStall { missed: v });
        out.push(Event::MotorRecovered { missed: v });
        out.push(Event::Refill {
            added: v,
            aspirated: v,
            expected: v,
            flagged: true,
        });
        out.push(Event::BolusStarted {
            kind: BolusKind::Patient,
            volume: v,
        });
        out.push(Event::BolusEnded {
            kind: BolusKind::Patient,
            delivered: v,
        });
        out.push(Event::ProgramChanged { version: u32::MAX });
        out.push(Event::Stopped {
            reason: StopReason::Other,
        });
        out.push(Event::Resumed);
        out.push(Event::ClockSet {
            old_utc_ms: u64::MAX,
            new_utc_ms: u64::MAX,
        });
        out.push(Event::Fault {
            code: FaultCode::Arithmetic,
        });
        for role in ROLES {
            out.push(Event::DoseReduced {
                role,
                percent: u8::MAX,
                left_percent: u8::MAX,
            });
        }
        out.push(Event::CatheterSet {
            revision: true,
            model: u16::MAX,
            length_mm: u16::MAX,
            volume: v,
        });
        // The longest reason, in full parts of one-byte characters.
        let reason = SoftReason::new(&"x".repeat(SOFT_REASON_MAX)).unwrap();
        out.extend(Event::soft_confirmation(u8::MAX, u8::MAX, &reason));
        out.push(Event::FirmwareUpdate(FirmwareRecord {
            code: u8::MAX,
            step: u8::MAX,
            reason: u8::MAX,
            slot: u8::MAX,
            version: FirmwareVersion {
                major: u8::MAX,
                minor: u8::MAX,
                revision: u16::MAX,
                build: u32::MAX,
            },
            value: u32::MAX,
        }));
        out
    }

    /// Covers every variant (compile error here if one is added).
    fn variant_index(e: &Event) -> usize {
        match e {
            Event::PowerOn { .. } => 0,
            Event::AlarmRaised(_) => 1,
            Event::AlarmCleared(_) => 2,
            Event::AlarmAcknowledged(_) => 3,
            Event::CommandAccepted { .. } => 4,
            Event::CommandRefused { .. } => 5,
            Event::LimiterVeto { .. } => 6,
            Event::MotorStall { .. } => 7,
            Event::MotorRecovered { .. } => 8,
            Event::Refill { .. } => 9,
            Event::BolusStarted { .. } => 10,
            Event::BolusEnded { .. } => 11,
            Event::ProgramChanged { .. } => 12,
            Event::Stopped { .. } => 13,
            Event::Resumed => 14,
            Event::ClockSet { .. } => 15,
            Event::Fault { .. } => 16,
            Event::DeviceEnrolled { .. } => 17,
            Event::DeviceRevoked { .. } => 18,
            Event::HandshakeDenied { .. } => 19,
            Event::DoseReduced { .. } => 20,
            Event::CatheterSet { .. } => 21,
            Event::SoftFindingConfirmed { .. } => 22,
            Event::FirmwareUpdate(_) => 23,
        }
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let alarm = prop::sample::select(AlarmKind::ALL.to_vec());
        let role = prop::sample::select(ROLES.to_vec());
        let drug = prop::sample::select(DrugId::ALL.to_vec());
        let vol = any::<u64>().prop_map(Volume::from_raw);
        let mass = any::<u64>().prop_map(Mass::from_raw);
        let bolus = prop::sample::select(BolusKind::ALL.to_vec());
        prop_oneof![
            any::<u64>().prop_map(|restored_seq| Event::PowerOn { restored_seq }),
            alarm.clone().prop_map(Event::AlarmRaised),
            alarm.clone().prop_map(Event::AlarmCleared),
            alarm.prop_map(Event::AlarmAcknowledged),
            (role.clone(), any::<u8>(), any::<u32>())
                .prop_map(|(role, code, key_id)| { Event::CommandAccepted { role, code, key_id } }),
            (role, any::<u8>(), any::<u8>(), any::<u32>()).prop_map(
                |(role, code, reason, key_id)| Event::CommandRefused {
                    role,
                    code,
                    reason,
                    key_id
                }
            ),
            (drug, any::<u8>(), mass.clone(), mass).prop_map(
                |(drug, window_hours, would_be, limit)| Event::LimiterVeto {
                    drug,
                    window_hours,
                    would_be,
                    limit
                }
            ),
            vol.clone().prop_map(|missed| Event::MotorStall { missed }),
            vol.clone()
                .prop_map(|missed| Event::MotorRecovered { missed }),
            (vol.clone(), vol.clone(), vol.clone(), any::<bool>()).prop_map(
                |(added, aspirated, expected, flagged)| Event::Refill {
                    added,
                    aspirated,
                    expected,
                    flagged
                }
            ),
            (bolus.clone(), vol.clone())
                .prop_map(|(kind, volume)| Event::BolusStarted { kind, volume }),
            (bolus, vol).prop_map(|(kind, delivered)| Event::BolusEnded { kind, delivered }),
            any::<u32>().prop_map(|version| Event::ProgramChanged { version }),
            prop::sample::select(StopReason::ALL.to_vec())
                .prop_map(|reason| Event::Stopped { reason }),
            Just(Event::Resumed),
            (any::<u64>(), any::<u64>()).prop_map(|(old_utc_ms, new_utc_ms)| Event::ClockSet {
                old_utc_ms,
                new_utc_ms
            }),
            prop::sample::select(FaultCode::ALL.to_vec()).prop_map(|code| Event::Fault { code }),
            any::<u32>().prop_map(|key_id| Event::DeviceRevoked { key_id }),
            (any::<u8>(), any::<u8>(), "[a-zA-Z0-9 éü€😀]{1,40}").prop_map(
                |(command, findings, text)| {
                    let reason = SoftReason::new(&text)
                        .unwrap_or_else(|_| SoftReason::new("reason").unwrap());
                    Event::soft_confirmation(command, findings, &reason)[0]
                }
            ),
            (any::<u32>(), any::<u8>(), any::<u32>()).prop_map(|(key_id, reason, count)| {
                Event::HandshakeDenied {
                    key_id,
                    reason,
                    count,
                }
            }),
            (any::<bool>(), any::<u16>(), any::<u16>(), any::<u64>()).prop_map(
                |(revision, model, length_mm, volume)| Event::CatheterSet {
                    revision,
                    model,
                    length_mm,
                    volume: Volume::from_raw(volume),
                }
            ),
            (any::<[u8; 4]>(), any::<(u8, u8, u16, u32)>(), any::<u32>()).prop_map(
                |([code, step, reason, slot], (major, minor, revision, build), value)| {
                    Event::FirmwareUpdate(FirmwareRecord {
                        code,
                        step,
                        reason,
                        slot,
                        version: FirmwareVersion {
                            major,
                            minor,
                            revision,
                            build,
                        },
                        value,
                    })
                }
            ),
        ]
    }

    /// A chain of `n` entries with varied events and increasing times.
    fn chain_of(n: usize) -> (LogChain, Vec<LogEntry>) {
        let events = worst_case_events();
        let mut chain = LogChain::new();
        let entries = (0..n)
            .map(|i| {
                let at = Instant::from_ms(1_000 * i as u64 + 7);
                chain.append(at, events[i % events.len()]).unwrap()
            })
            .collect();
        (chain, entries)
    }

    #[test]
    fn every_event_variant_fits_max_event_len_pump_024() {
        let events = worst_case_events();
        let mut seen = [false; 24];
        let mut longest = 0;
        for e in &events {
            seen[variant_index(e)] = true;
            let mut buf = [0u8; 128];
            let len = postcard::to_slice(e, &mut buf).unwrap().len();
            assert!(len <= MAX_EVENT_LEN, "{e:?} encodes to {len} bytes");
            longest = longest.max(len);
        }
        assert!(seen.iter().all(|&s| s), "a variant lacks a worst case");
        assert_eq!(
            longest, 32,
            "Refill with three u64::MAX volumes, a full part of a soft-finding reason"
        );
    }

    #[test]
    fn entry_sizes_match_the_docs_pump_024() {
        let mut longest = 0;
        for event in worst_case_events() {
            let entry = LogEntry {
                seq: u32::MAX,
                at: Instant::MAX,
                event,
                hash: [0xFF; 16],
            };
            let mut buf = [0u8; 128];
            longest = longest.max(postcard::to_slice(&entry, &mut buf).unwrap().len());
        }
        assert!(longest <= MAX_ENTRY_LEN);
        assert_eq!(MAX_ENTRY_LEN, 5 + 10 + MAX_EVENT_LEN + 16);
        assert_eq!(core::mem::size_of::<LogEntry>(), 64);
        if core::mem::size_of::<usize>() == 8 {
            assert_eq!(core::mem::size_of::<EventLog>(), 131_120);
            assert_eq!(core::mem::size_of::<FaultLog>(), 65_584);
        }
        assert_eq!(EVENT_CAPACITY * MAX_ENTRY_LEN, 145_408);
        assert_eq!(FAULT_CAPACITY * MAX_ENTRY_LEN, 72_704);
    }

    #[test]
    fn appended_entries_verify_pump_024() {
        let (chain, entries) = chain_of(100);
        assert_eq!(verify(&entries, None), Ok(100));
        assert_eq!(verify_to_head(&entries, None, &chain), Ok(100));
        assert_eq!(chain.next_seq(), 100);
        assert_eq!(chain.last_hash(), entries[99].hash);
        assert_eq!(entries[0].seq, 0);
        assert_eq!(
            entries[0].hash,
            entry_hash(&GENESIS_HASH, 0, entries[0].at, &entries[0].event).unwrap()
        );
        assert_eq!(verify(&[], None), Ok(0));
        assert_eq!(verify_to_head(&[], None, &LogChain::new()), Ok(0));
    }

    #[test]
    fn entries_survive_a_postcard_round_trip_pump_024() {
        let (_, entries) = chain_of(40);
        let decoded: Vec<LogEntry> = entries
            .iter()
            .map(|e| {
                let mut buf = [0u8; MAX_ENTRY_LEN];
                let bytes = postcard::to_slice(e, &mut buf).unwrap();
                postcard::from_bytes(bytes).unwrap()
            })
            .collect();
        assert_eq!(decoded, entries);
        assert_eq!(verify(&decoded, None), Ok(40));
    }

    #[test]
    fn the_hash_binds_the_domain_tag_and_every_field_pump_024() {
        let e = Event::Resumed;
        let at = Instant::from_ms(5);
        let base = entry_hash(&GENESIS_HASH, 3, at, &e).unwrap();
        assert_ne!(base, entry_hash(&[1; 16], 3, at, &e).unwrap());
        assert_ne!(base, entry_hash(&GENESIS_HASH, 4, at, &e).unwrap());
        assert_ne!(
            base,
            entry_hash(&GENESIS_HASH, 3, Instant::from_ms(6), &e).unwrap()
        );
        assert_ne!(
            base,
            entry_hash(
                &GENESIS_HASH,
                3,
                at,
                &Event::Stopped {
                    reason: StopReason::Procedure
                }
            )
            .unwrap()
        );
        // The same input without the tag gives a different hash.
        let mut untagged = Blake2s::<U16>::new();
        untagged.update(GENESIS_HASH);
        untagged.update(3u32.to_le_bytes());
        untagged.update(5u64.to_le_bytes());
        untagged.update([14u8]);
        let untagged: Hash = untagged.finalize().into();
        assert_ne!(base, untagged);
    }

    #[test]
    fn deleting_an_entry_is_detected_at_its_seq_pump_024() {
        let (chain, entries) = chain_of(20);
        for gone in 0..20 {
            let mut cut = entries.clone();
            cut.remove(gone);
            if gone == 19 {
                // Cutting the newest entry leaves a valid prefix: only the head sees it.
                assert_eq!(verify(&cut, None), Ok(19));
                let t = verify_to_head(&cut, None, &chain).unwrap_err();
                assert_eq!(
                    (t.seq, t.kind),
                    (19, TamperKind::HeadMismatch { head_next_seq: 20 })
                );
            } else {
                let t = verify(&cut, None).unwrap_err();
                assert_eq!(
                    (t.index, t.seq, t.kind),
                    (
                        gone,
                        gone as u32,
                        TamperKind::SeqGap {
                            found: gone as u32 + 1
                        }
                    )
                );
            }
        }
    }

    #[test]
    fn reordering_two_entries_is_detected_at_the_first_pump_024() {
        let (_, entries) = chain_of(12);
        for i in 0..12 {
            for j in i + 1..12 {
                let mut swapped = entries.clone();
                swapped.swap(i, j);
                let t = verify(&swapped, None).unwrap_err();
                assert_eq!(t.seq, i as u32);
                assert_eq!(t.kind, TamperKind::SeqGap { found: j as u32 });
            }
        }
    }

    #[test]
    fn truncating_the_front_without_the_anchor_is_detected_pump_024() {
        let (_, entries) = chain_of(10);
        for k in 1..10 {
            let tail = &entries[k..];
            let t = verify(tail, None).unwrap_err();
            assert_eq!(
                (t.index, t.seq, t.kind),
                (0, 0, TamperKind::SeqGap { found: k as u32 })
            );
            // With the right anchor the tail verifies; with a wrong one it does not.
            let prev = &entries[k - 1];
            assert_eq!(verify(tail, Some((prev.seq, prev.hash))), Ok(10 - k));
            let mut forged = prev.hash;
            forged[0] ^= 1;
            assert_eq!(
                verify(tail, Some((prev.seq, forged))).unwrap_err().kind,
                TamperKind::HashMismatch
            );
        }
    }

    #[test]
    fn a_rewritten_log_with_recomputed_hashes_fails_against_the_head_pump_024() {
        let (chain, entries) = chain_of(10);
        let mut forged_chain = LogChain::new();
        let forged: Vec<LogEntry> = entries
            .iter()
            .map(|e| {
                let event = if e.seq == 4 { Event::Resumed } else { e.event };
                forged_chain.append(e.at, event).unwrap()
            })
            .collect();
        assert_eq!(verify(&forged, None), Ok(10));
        let t = verify_to_head(&forged, None, &chain).unwrap_err();
        assert_eq!(t.kind, TamperKind::HeadMismatch { head_next_seq: 10 });
        assert!(!std::format!("{t}").is_empty());
    }

    #[test]
    fn the_ring_wraps_and_still_verifies_with_its_anchor_pump_024() {
        const N: usize = 16;
        let mut ring = LogRing::<N>::new();
        let mut chain = LogChain::new();
        assert_eq!(ring.verify(), Ok(0));
        let (_, template) = chain_of(3 * N);
        for (i, t) in template.iter().enumerate() {
            let entry = chain.append(t.at, t.event).unwrap();
            ring.push(entry);
            assert_eq!(ring.len(), (i + 1).min(N));
            assert_eq!(ring.verify(), Ok(ring.len()));
            assert_eq!(ring.verify_to_head(&chain), Ok(ring.len()));
        }
        let seqs: Vec<u32> = ring.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (2 * N as u32..3 * N as u32).collect::<Vec<_>>());
        assert_eq!(
            ring.anchor(),
            Some((template[2 * N - 1].seq, template[2 * N - 1].hash))
        );
        assert_eq!(ring.newest().map(|e| e.seq), Some(3 * N as u32 - 1));
        // Without its anchor the wrapped ring looks truncated.
        assert!(matches!(
            verify(ring.iter(), None),
            Err(Tamper {
                kind: TamperKind::SeqGap { .. },
                ..
            })
        ));
    }

    #[test]
    fn the_fault_log_holds_a_thousand_faults_pump_024() {
        let mut chains = LogChains::new();
        let mut events = Box::new(EventLog::new());
        let mut faults = Box::new(FaultLog::new());
        for i in 0..1000u64 {
            let at = Instant::from_ms(i * 60_000);
            let event = Event::Fault {
                code: FaultCode::ALL[(i % 7) as usize],
            };
            let appended = chains.append(at, event).unwrap();
            events.push(appended.event);
            faults.push(appended.fault.unwrap());
            // An ordinary event goes to the event log only.
            let ordinary = chains.append(at, Event::Resumed).unwrap();
            assert!(ordinary.fault.is_none());
            events.push(ordinary.event);
        }
        assert_eq!(faults.len(), 1000);
        assert_eq!(faults.anchor(), None);
        assert_eq!(faults.verify_to_head(&chains.faults), Ok(1000));
        // 2000 events fit without eviction too.
        assert_eq!(events.len(), 2000);
        assert_eq!(events.verify_to_head(&chains.events), Ok(2000));
    }

    #[test]
    fn thirty_days_of_typical_events_fit_the_event_log_pump_024() {
        let mut chain = LogChain::new();
        let mut log = Box::new(EventLog::new());
        let events = worst_case_events();
        for i in 0..30 * 60 {
            let at = Instant::from_ms(i as u64 * 24 * 60_000);
            log.push(chain.append(at, events[i % events.len()]).unwrap());
        }
        assert_eq!(log.anchor(), None, "nothing of the 30 days was evicted");
        assert_eq!(log.verify_to_head(&chain), Ok(1800));
    }

    #[test]
    fn the_sequence_number_never_wraps_pump_024() {
        let mut chain = LogChain {
            next_seq: u32::MAX - 1,
            last_hash: [7; 16],
        };
        let last = chain.append(Instant::ZERO, Event::Resumed).unwrap();
        assert_eq!(last.seq, u32::MAX - 1);
        let before = chain;
        assert_eq!(
            chain.append(Instant::ZERO, Event::Resumed),
            Err(LogError::SequenceExhausted)
        );
        assert_eq!(chain, before);
        // Both chains advance together or not at all.
        let mut chains = LogChains {
            events: LogChain::new(),
            faults: before,
        };
        let copy = chains;
        assert_eq!(
            chains.append(
                Instant::ZERO,
                Event::Fault {
                    code: FaultCode::Memory
                }
            ),
            Err(LogError::SequenceExhausted)
        );
        assert_eq!(chains, copy);
        // Nothing can follow an anchor at u32::MAX.
        let t = verify(&[last], Some((u32::MAX, [0; 16]))).unwrap_err();
        assert_eq!(t.seq, u32::MAX);
        for e in [LogError::SequenceExhausted, LogError::EventTooLong] {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    /// One way to alter one field of an entry.
    #[derive(Debug, Clone)]
    enum Alteration {
        Seq(u32),
        At(u64),
        Event(Event),
        HashByte(prop::sample::Index, u8),
    }

    fn arb_alteration() -> impl Strategy<Value = Alteration> {
        prop_oneof![
            (1..=u32::MAX).prop_map(Alteration::Seq),
            (1..=u64::MAX).prop_map(Alteration::At),
            arb_event().prop_map(Alteration::Event),
            (any::<prop::sample::Index>(), 1..=u8::MAX)
                .prop_map(|(i, x)| Alteration::HashByte(i, x)),
        ]
    }

    proptest! {
        #[test]
        fn any_appended_chain_verifies_pump_024(
            events in proptest::collection::vec((any::<u32>(), arb_event()), 0..60)
        ) {
            let mut chain = LogChain::new();
            let mut at = 0u64;
            let entries: Vec<LogEntry> = events
                .into_iter()
                .map(|(dt, e)| {
                    at += u64::from(dt);
                    chain.append(Instant::from_ms(at), e).unwrap()
                })
                .collect();
            prop_assert_eq!(verify_to_head(&entries, None, &chain), Ok(entries.len()));
        }

        #[test]
        fn altering_any_field_of_any_entry_is_reported_at_that_entry_pump_024(
            which in any::<prop::sample::Index>(),
            alteration in arb_alteration(),
        ) {
            let (_, mut entries) = chain_of(30);
            let i = which.index(entries.len());
            let original = entries[i];
            let e = &mut entries[i];
            match alteration {
                Alteration::Seq(x) => e.seq ^= x,
                Alteration::At(x) => e.at = Instant::from_ms(e.at.ms() ^ x),
                Alteration::Event(ev) => e.event = ev,
                Alteration::HashByte(b, x) => e.hash[b.index(16)] ^= x,
            }
            prop_assume!(entries[i] != original);
            let t = verify(&entries, None).unwrap_err();
            prop_assert_eq!(t.index, i);
            prop_assert_eq!(t.seq, i as u32);
        }

        #[test]
        fn altering_any_byte_of_a_stored_entry_is_reported_at_that_entry_pump_024(
            which in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
            xor in 1..=u8::MAX,
        ) {
            let (_, mut entries) = chain_of(30);
            let i = which.index(entries.len());
            let mut buf = [0u8; MAX_ENTRY_LEN];
            let len = postcard::to_slice(&entries[i], &mut buf).unwrap().len();
            buf[byte.index(len)] ^= xor;
            // A stored entry that no longer decodes is lost, not forged; skip it.
            if let Ok(altered) = postcard::from_bytes::<LogEntry>(&buf[..len]) {
                prop_assume!(altered != entries[i]);
                entries[i] = altered;
                let t = verify(&entries, None).unwrap_err();
                prop_assert_eq!((t.index, t.seq), (i, i as u32));
            }
        }
    }
}
