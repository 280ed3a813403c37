//! Crash-safe A/B records (PUMP-023).
//!
//! The core's persistent state (program, counters, limiter bins, lockout, log chain
//! heads) is written as one *record* into one of two slots, A and B, alternately. The
//! hardware writes a slot byte by byte and power may be cut after any byte, so at
//! power-on one slot may hold a torn mix of an old and a new record.
//!
//! **Owns:** the slot layout, the encoding and checking of a record, which slot a
//! sequence number goes to, and the choice of the record to restore.
//!
//! **Must never:** return a torn or stale record, or overwrite the newest valid
//! record. A record is accepted only if its magic, length and CRC all check and its
//! body decodes exactly; of two valid records the one with the higher sequence number
//! wins; sequence number `n` always goes to [`slot_for`]`(n)`, so writing `n` can only
//! destroy record `n - 2`, never `n - 1`.
//!
//! # Slot layout
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic and format version, [`RECORD_MAGIC`], little-endian |
//! | 4 | 8 | sequence number, little-endian `u64` |
//! | 12 | 4 | body length in bytes, little-endian `u32` |
//! | 16 | 4 | CRC-32/ISCSI (Castagnoli) over bytes 0..16 and the body, little-endian |
//! | 20 | length | body: the postcard encoding of the value |
//!
//! Bytes of the slot after the body are ignored: they may still hold the tail of an
//! older, longer record.
//!
//! A representative record (a 12-step flex program, reservoir and delivery counters,
//! 12 five-minute and 24 one-hour limiter bins, the patient-bolus lockout and both log
//! chain heads; see the test `representative_record_size_is_documented_pump_023`)
//! encodes to a 237-byte body, **257 bytes** with the header. Postcard writes integers
//! as varints, so the size varies with the values (a `u64` takes 1 to 10 bytes): size
//! the slots for the worst case of the real state type, not for this figure; 512-byte
//! slots hold this record with room for growth.
//!
//! # Panic freedom
//!
//! [`decode_record`] and [`restore`] accept any bytes, of any length, and never panic:
//! every field is read through checked splits and every size through checked
//! arithmetic.

use core::fmt;

use crc::{CRC_32_ISCSI, Crc};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Magic number and format version at the start of every record: the bytes `"TPR1"`
/// (thecal pump record, format 1). A format change must change the last byte so that
/// an old image is rejected rather than misread.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"TPR1");

/// Length of the fixed header in bytes: magic (4), sequence number (8), body length
/// (4), CRC (4).
pub const HEADER_LEN: usize = 20;

/// The CRC-32/ISCSI (Castagnoli) algorithm; its Hamming distance is better than the
/// IEEE polynomial's at the record sizes used here.
const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// Why a record could not be written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistError {
    /// The output buffer cannot hold the header and the encoded body.
    BufferTooSmall,
    /// The value could not be encoded (a serializer error other than a full buffer).
    Unencodable,
    /// The body is longer than a `u32` length field can state.
    BodyTooLong,
    /// The slot is shorter than the fixed header.
    SlotTooShort {
        /// Bytes available.
        len: usize,
    },
    /// The magic number or format version does not match [`RECORD_MAGIC`].
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// The stated body length runs past the end of the slot.
    BadLength {
        /// The stated body length.
        stated: u32,
        /// Bytes available after the header.
        room: usize,
    },
    /// The CRC does not match the header fields and body.
    CrcMismatch {
        /// The CRC stored in the header.
        stored: u32,
        /// The CRC computed over the slot's contents.
        computed: u32,
    },
    /// The CRC matches but the body is not exactly one encoded value of the
    /// expected type.
    Undecodable,
    /// A valid record sits in the wrong slot for its sequence number (see
    /// [`slot_for`]): a misdirected write or swapped regions.
    WrongSlot {
        /// The record's sequence number.
        seq: u64,
        /// The slot it was found in.
        found_in: Slot,
    },
    /// The sequence number would wrap: no further record can be written.
    SequenceExhausted,
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::BufferTooSmall => {
                f.write_str("the buffer is too small for the record header and body")
            }
            PersistError::Unencodable => f.write_str("the value could not be encoded"),
            PersistError::BodyTooLong => {
                f.write_str("the encoded body is longer than a record can state")
            }
            PersistError::SlotTooShort { len } => write!(
                f,
                "the slot holds {len} bytes, fewer than the {HEADER_LEN}-byte record header"
            ),
            PersistError::BadMagic { found } => write!(
                f,
                "bad record magic/format {found:#010x} (expected {RECORD_MAGIC:#010x})"
            ),
            PersistError::BadLength { stated, room } => write!(
                f,
                "record body length {stated} runs past the slot ({room} bytes after the header)"
            ),
            PersistError::CrcMismatch { stored, computed } => write!(
                f,
                "record CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            PersistError::Undecodable => {
                f.write_str("the record body is not a valid encoding of the expected state")
            }
            PersistError::WrongSlot { seq, found_in } => write!(
                f,
                "record {seq} found in slot {found_in}, but belongs in slot {}",
                slot_for(*seq)
            ),
            PersistError::SequenceExhausted => {
                f.write_str("the record sequence number is exhausted")
            }
        }
    }
}

/// One of the two record slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Slot A: even sequence numbers.
    A,
    /// Slot B: odd sequence numbers.
    B,
}

impl Slot {
    /// The other slot.
    pub const fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "A",
            Slot::B => "B",
        })
    }
}

/// The slot that record `seq` is written to: even → A, odd → B.
///
/// Consecutive sequence numbers alternate, so writing record `n` overwrites record
/// `n - 2` and leaves the newest committed record, `n - 1`, intact.
pub const fn slot_for(seq: u64) -> Slot {
    if seq & 1 == 0 { Slot::A } else { Slot::B }
}

/// The four header fields that the CRC covers, in slot order.
fn covered_fields(seq: u64, len: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    let fields = RECORD_MAGIC
        .to_le_bytes()
        .into_iter()
        .chain(seq.to_le_bytes())
        .chain(len.to_le_bytes());
    for (dst, src) in out.iter_mut().zip(fields) {
        *dst = src;
    }
    out
}

fn checksum(covered: &[u8; 16], body: &[u8]) -> u32 {
    let mut digest = CASTAGNOLI.digest();
    digest.update(covered);
    digest.update(body);
    digest.finalize()
}

/// Writes record `seq` holding `value` to the start of `buf` and returns its length
/// (header plus body). Bytes of `buf` after the record are left untouched.
///
/// # Errors
/// [`PersistError::BufferTooSmall`] if `buf` cannot hold the record,
/// [`PersistError::Unencodable`] if the value cannot be encoded,
/// [`PersistError::BodyTooLong`] if the body exceeds `u32::MAX` bytes.
pub fn encode_record<T: Serialize>(
    seq: u64,
    value: &T,
    buf: &mut [u8],
) -> Result<usize, PersistError> {
    let (header, rest) = buf
        .split_first_chunk_mut::<HEADER_LEN>()
        .ok_or(PersistError::BufferTooSmall)?;
    let body = postcard::to_slice(value, rest).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => PersistError::BufferTooSmall,
        _ => PersistError::Unencodable,
    })?;
    let body_len = body.len();
    let stated = u32::try_from(body_len).map_err(|_| PersistError::BodyTooLong)?;
    let covered = covered_fields(seq, stated);
    let crc = checksum(&covered, body);
    for (dst, src) in header
        .iter_mut()
        .zip(covered.into_iter().chain(crc.to_le_bytes()))
    {
        *dst = src;
    }
    HEADER_LEN
        .checked_add(body_len)
        .ok_or(PersistError::BodyTooLong)
}

/// Splits a fixed-size array off the front of `bytes`.
fn take<const K: usize>(bytes: &[u8]) -> Option<([u8; K], &[u8])> {
    bytes
        .split_first_chunk::<K>()
        .map(|(head, tail)| (*head, tail))
}

/// Reads and checks the record at the start of `slot`, returning its sequence number
/// and value. Bytes after the stated body are ignored.
///
/// Checks run in this order, and the first failure is returned: the header fits,
/// the magic matches, the stated length fits the slot, the CRC matches, the body
/// decodes to exactly one `T` with no bytes left over.
///
/// # Errors
/// [`PersistError::SlotTooShort`], [`PersistError::BadMagic`],
/// [`PersistError::BadLength`], [`PersistError::CrcMismatch`] or
/// [`PersistError::Undecodable`], as above.
pub fn decode_record<T: DeserializeOwned>(slot: &[u8]) -> Result<(u64, T), PersistError> {
    let short = PersistError::SlotTooShort { len: slot.len() };
    let (magic, rest) = take::<4>(slot).ok_or(short)?;
    let (seq, rest) = take::<8>(rest).ok_or(short)?;
    let (len, rest) = take::<4>(rest).ok_or(short)?;
    let (crc, rest) = take::<4>(rest).ok_or(short)?;
    let magic = u32::from_le_bytes(magic);
    if magic != RECORD_MAGIC {
        return Err(PersistError::BadMagic { found: magic });
    }
    let seq = u64::from_le_bytes(seq);
    let stated = u32::from_le_bytes(len);
    let bad_length = PersistError::BadLength {
        stated,
        room: rest.len(),
    };
    let body_len = usize::try_from(stated).map_err(|_| bad_length)?;
    let (body, _old_tail) = rest.split_at_checked(body_len).ok_or(bad_length)?;
    let stored = u32::from_le_bytes(crc);
    let computed = checksum(&covered_fields(seq, stated), body);
    if stored != computed {
        return Err(PersistError::CrcMismatch { stored, computed });
    }
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok((seq, value)),
        // Left-over bytes mean the body was written for a different type.
        Ok(_) | Err(_) => Err(PersistError::Undecodable),
    }
}

/// What one slot held at power-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// A valid record with this sequence number.
    Valid {
        /// Its sequence number.
        seq: u64,
    },
    /// Erased: every byte `0xFF` (flash) or every byte `0x00` (new FRAM). Normal
    /// before the first writes; not a fault.
    Blank,
    /// Neither valid nor blank: a torn write or a memory fault.
    Invalid(PersistError),
}

impl SlotState {
    /// Whether the slot held something that was neither a valid record nor blank.
    pub const fn is_invalid(&self) -> bool {
        matches!(self, SlotState::Invalid(_))
    }
}

/// The outcome of [`restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored<T> {
    /// The newest valid record.
    Found {
        /// Its sequence number.
        seq: u64,
        /// Its value.
        value: T,
        /// The slot it came from.
        slot: Slot,
        /// What the other slot held.
        other: SlotState,
    },
    /// Neither slot holds a valid record.
    Empty {
        /// What slot A held.
        a: SlotState,
        /// What slot B held.
        b: SlotState,
    },
}

impl<T> Restored<T> {
    /// The restored sequence number, 0 when nothing was restored (the convention of
    /// [`crate::event::Event::PowerOn`]).
    pub const fn seq(&self) -> u64 {
        match self {
            Restored::Found { seq, .. } => *seq,
            Restored::Empty { .. } => 0,
        }
    }

    /// Whether a slot held neither a valid record nor erased memory, so the core
    /// should log a memory fault. A power cut during the last write also shows up
    /// here: the torn slot is invalid even though the previous record was restored.
    pub const fn memory_fault(&self) -> bool {
        match self {
            Restored::Found { other, .. } => other.is_invalid(),
            Restored::Empty { a, b } => a.is_invalid() || b.is_invalid(),
        }
    }

    /// The restored value, if any.
    pub fn into_value(self) -> Option<T> {
        match self {
            Restored::Found { value, .. } => Some(value),
            Restored::Empty { .. } => None,
        }
    }
}

fn is_blank(slot: &[u8]) -> bool {
    !slot.is_empty() && (slot.iter().all(|&b| b == 0xFF) || slot.iter().all(|&b| b == 0x00))
}

/// Decodes one slot and checks that the record belongs there.
fn read_slot<T: DeserializeOwned>(bytes: &[u8], slot: Slot) -> Result<(u64, T), SlotState> {
    match decode_record::<T>(bytes) {
        Ok((seq, value)) if slot_for(seq) == slot => Ok((seq, value)),
        Ok((seq, _)) => Err(SlotState::Invalid(PersistError::WrongSlot {
            seq,
            found_in: slot,
        })),
        Err(_) if is_blank(bytes) => Err(SlotState::Blank),
        Err(e) => Err(SlotState::Invalid(e)),
    }
}

/// Chooses the record to restore at power-on from the contents of slots A and B: the
/// valid record with the higher sequence number.
///
/// A torn write leaves its slot invalid (or, if no byte had changed yet, still
/// holding the older record), so the result is always the last completely written
/// record, never a mix.
pub fn restore<T: DeserializeOwned>(a: &[u8], b: &[u8]) -> Restored<T> {
    let state = |r: &Result<(u64, T), SlotState>| match r {
        Ok((seq, _)) => SlotState::Valid { seq: *seq },
        Err(s) => *s,
    };
    let ra = read_slot::<T>(a, Slot::A);
    let rb = read_slot::<T>(b, Slot::B);
    let (sa, sb) = (state(&ra), state(&rb));
    match (ra, rb) {
        // Parity makes equal sequence numbers impossible here.
        (Ok((seq_a, va)), Ok((seq_b, _))) if seq_a > seq_b => Restored::Found {
            seq: seq_a,
            value: va,
            slot: Slot::A,
            other: sb,
        },
        (_, Ok((seq, value))) => Restored::Found {
            seq,
            value,
            slot: Slot::B,
            other: sa,
        },
        (Ok((seq, value)), Err(_)) => Restored::Found {
            seq,
            value,
            slot: Slot::A,
            other: sb,
        },
        (Err(_), Err(_)) => Restored::Empty { a: sa, b: sb },
    }
}

/// The writer side: holds the next sequence number and encodes each new record for
/// the slot it must go to. This is what the core calls to persist its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persister {
    next_seq: u64,
}

impl Default for Persister {
    fn default() -> Self {
        Self::new()
    }
}

impl Persister {
    /// The sequence number of the first record ever written; 0 means "no record".
    pub const FIRST_SEQ: u64 = 1;

    /// A writer for a device that has never persisted a record.
    pub const fn new() -> Self {
        Self {
            next_seq: Self::FIRST_SEQ,
        }
    }

    /// A writer that continues after the record with sequence number `last` (0: none).
    ///
    /// After a torn write the restored record is the one before it, so the next
    /// record reuses the torn record's sequence number and slot, and the restored
    /// record stays intact.
    pub const fn resume(last: u64) -> Self {
        Self {
            next_seq: last.saturating_add(1),
        }
    }

    /// A writer that continues after whatever [`restore`] found.
    pub const fn after<T>(restored: &Restored<T>) -> Self {
        Self::resume(restored.seq())
    }

    /// The sequence number the next record will carry.
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Encodes `value` as the next record into `buf` and returns the slot it must be
    /// written to and its length. The sequence number advances only on success.
    ///
    /// # Errors
    /// [`PersistError::SequenceExhausted`] once `u64::MAX` is reached (never in
    /// practice), or any error of [`encode_record`].
    pub fn next<T: Serialize>(
        &mut self,
        value: &T,
        buf: &mut [u8],
    ) -> Result<(Slot, usize), PersistError> {
        let seq = self.next_seq;
        let following = seq.checked_add(1).ok_or(PersistError::SequenceExhausted)?;
        let len = encode_record(seq, value, buf)?;
        self.next_seq = following;
        Ok((slot_for(seq), len))
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

    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use thecal_rx::drug::DrugId;
    use thecal_rx::{Instant, Mass, Volume};

    use super::*;

    /// A small record: exhaustive fault injection is cheap.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Small {
        counter: u32,
        stopped: bool,
        volume: Volume,
    }

    /// A stand-in for the core's persisted state with realistic values.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct State {
        program_version: u32,
        drug: DrugId,
        concentration_ng_per_ml: u64,
        /// (start minute of day, flow in nL/day)
        steps: heapless::Vec<(u16, u64), 24>,
        reservoir: Volume,
        delivered_total: Volume,
        delivered_since_refill: Volume,
        strokes: u64,
        limiter_5min: [Mass; 12],
        limiter_1h: [Mass; 24],
        limiter_at: Instant,
        last_patient_bolus: Option<Instant>,
        patient_boluses_today: u8,
        event_chain: (u32, [u8; 16]),
        fault_chain: (u32, [u8; 16]),
    }

    fn representative() -> State {
        let mut steps = heapless::Vec::new();
        for i in 0..12u16 {
            steps
                .push((i * 120, 480_000 + u64::from(i) * 10_000))
                .unwrap();
        }
        State {
            program_version: 17,
            drug: DrugId::Morphine,
            concentration_ng_per_ml: 25_000_000,
            steps,
            reservoir: Volume::from_raw(14_250_000),
            delivered_total: Volume::from_raw(1_234_567_890),
            delivered_since_refill: Volume::from_raw(5_750_000),
            strokes: 9_876_543,
            limiter_5min: [Mass::from_raw(104_167); 12],
            limiter_1h: [Mass::from_raw(1_250_000); 24],
            limiter_at: Instant::from_ms(31_536_000_000),
            last_patient_bolus: Some(Instant::from_ms(31_535_000_000)),
            patient_boluses_today: 3,
            event_chain: (12_345, [0xA5; 16]),
            fault_chain: (42, [0x5A; 16]),
        }
    }

    fn small(n: u32) -> Small {
        Small {
            counter: n,
            stopped: n % 2 == 0,
            volume: Volume::from_raw(1_000_000 + u64::from(n) * 12_345),
        }
    }

    fn encoded<T: Serialize>(seq: u64, value: &T) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let len = encode_record(seq, value, &mut buf).unwrap();
        buf.truncate(len);
        buf
    }

    const SLOT_LEN: usize = 512;

    fn erased_slot() -> Vec<u8> {
        vec![0xFF; SLOT_LEN]
    }

    fn write_full(slot: &mut [u8], bytes: &[u8]) {
        slot[..bytes.len()].copy_from_slice(bytes);
    }

    /// Power is cut after `k` bytes: the first `k` bytes are new, the rest keep
    /// their old contents.
    fn write_torn(slot: &mut [u8], bytes: &[u8], k: usize) {
        for (d, s) in slot.iter_mut().zip(bytes).take(k) {
            *d = *s;
        }
    }

    #[test]
    fn record_round_trips_seq_and_value_pump_023() {
        let state = representative();
        let bytes = encoded(7, &state);
        assert_eq!(decode_record::<State>(&bytes).unwrap(), (7, state.clone()));
        // Trailing old bytes in the slot are ignored.
        let mut slot = vec![0x33; 512];
        write_full(&mut slot, &bytes);
        assert_eq!(decode_record::<State>(&slot).unwrap(), (7, state));
    }

    #[test]
    fn representative_record_size_is_documented_pump_023() {
        let bytes = encoded(1_000_000, &representative());
        assert_eq!(bytes.len() - HEADER_LEN, 237, "update the module docs");
        assert_eq!(bytes.len(), 257, "update the module docs");
    }

    #[test]
    fn header_layout_matches_docs_pump_023() {
        let bytes = encoded(0x0102_0304_0506_0708, &small(1));
        assert_eq!(&bytes[0..4], b"TPR1");
        assert_eq!(&bytes[4..12], &0x0102_0304_0506_0708u64.to_le_bytes());
        let body_len = (bytes.len() - HEADER_LEN) as u32;
        assert_eq!(&bytes[12..16], &body_len.to_le_bytes());
        let crc = CASTAGNOLI.checksum(&[&bytes[..16], &bytes[20..]].concat());
        assert_eq!(&bytes[16..20], &crc.to_le_bytes());
    }

    #[test]
    fn slots_alternate_by_sequence_parity_pump_023() {
        assert_eq!(slot_for(0), Slot::A);
        assert_eq!(slot_for(1), Slot::B);
        assert_eq!(slot_for(2), Slot::A);
        assert_eq!(slot_for(u64::MAX), Slot::B);
        for n in 1..100u64 {
            assert_ne!(slot_for(n), slot_for(n - 1));
            assert_eq!(slot_for(n).other(), slot_for(n - 1));
        }
    }

    #[test]
    fn every_truncation_of_a_small_record_is_rejected_pump_023() {
        let bytes = encoded(3, &small(3));
        for k in 0..bytes.len() {
            let err = decode_record::<Small>(&bytes[..k]).unwrap_err();
            if k < HEADER_LEN {
                assert_eq!(err, PersistError::SlotTooShort { len: k });
            } else {
                assert!(matches!(err, PersistError::BadLength { .. }), "{k}: {err}");
            }
        }
    }

    #[test]
    fn every_truncation_of_a_representative_record_is_rejected_pump_023() {
        let bytes = encoded(3, &representative());
        for k in 0..bytes.len() {
            assert!(decode_record::<State>(&bytes[..k]).is_err(), "{k}");
        }
    }

    #[test]
    fn every_single_bit_flip_of_a_small_record_is_rejected_pump_023() {
        let bytes = encoded(5, &small(5));
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = decode_record::<Small>(&bad).unwrap_err();
            if bit < 32 {
                assert!(matches!(err, PersistError::BadMagic { .. }), "{bit}: {err}");
            } else {
                assert!(
                    matches!(
                        err,
                        PersistError::CrcMismatch { .. } | PersistError::BadLength { .. }
                    ),
                    "{bit}: {err}"
                );
            }
        }
    }

    #[test]
    fn every_single_bit_flip_of_a_representative_record_is_rejected_pump_023() {
        let bytes = encoded(6, &representative());
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record::<State>(&bad).is_err(), "{bit}");
        }
    }

    #[test]
    fn each_kind_of_corruption_has_its_own_error_pump_023() {
        let good = encoded(9, &small(9));
        let mut bad_magic = good.clone();
        bad_magic[3] = b'2';
        assert!(matches!(
            decode_record::<Small>(&bad_magic),
            Err(PersistError::BadMagic { .. })
        ));
        let mut bad_len = good.clone();
        bad_len[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_record::<Small>(&bad_len),
            Err(PersistError::BadLength {
                stated: u32::MAX,
                ..
            })
        ));
        let mut bad_crc = good.clone();
        bad_crc[16] ^= 0x80;
        assert!(matches!(
            decode_record::<Small>(&bad_crc),
            Err(PersistError::CrcMismatch { .. })
        ));
        // Valid CRC, body of another type: a varint too large for u8, and left-over bytes.
        let other = encoded(9, &u32::MAX);
        assert_eq!(decode_record::<u8>(&other), Err(PersistError::Undecodable));
        let pair = encoded(9, &(1u8, 2u8));
        assert_eq!(decode_record::<u8>(&pair), Err(PersistError::Undecodable));
        // Every error says what was wrong.
        for e in [
            PersistError::BufferTooSmall,
            PersistError::Unencodable,
            PersistError::BodyTooLong,
            PersistError::SlotTooShort { len: 3 },
            PersistError::BadMagic { found: 0 },
            PersistError::BadLength { stated: 9, room: 1 },
            PersistError::CrcMismatch {
                stored: 1,
                computed: 2,
            },
            PersistError::Undecodable,
            PersistError::WrongSlot {
                seq: 3,
                found_in: Slot::A,
            },
            PersistError::SequenceExhausted,
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    #[test]
    fn encoding_into_a_short_buffer_fails_cleanly_pump_023() {
        let need = encoded(1, &representative()).len();
        for len in [0, 5, HEADER_LEN, need - 1] {
            let mut buf = vec![0u8; len];
            assert_eq!(
                encode_record(1, &representative(), &mut buf),
                Err(PersistError::BufferTooSmall)
            );
        }
        let mut buf = vec![0u8; need];
        assert_eq!(encode_record(1, &representative(), &mut buf), Ok(need));
    }

    /// Slots after writing records 1 (slot B) and 2 (slot A) completely.
    fn committed_1_and_2<T: Serialize>(v1: &T, v2: &T) -> (Vec<u8>, Vec<u8>) {
        let (mut a, mut b) = (erased_slot(), erased_slot());
        let r1 = encoded(1, v1);
        let r2 = encoded(2, v2);
        assert_eq!(slot_for(1), Slot::B);
        write_full(&mut b, &r1);
        write_full(&mut a, &r2);
        (a, b)
    }

    #[test]
    fn torn_write_restores_previous_record_at_every_cut_pump_023() {
        let v1 = small(1);
        let v2 = small(2);
        let v3 = Small {
            counter: 0xDEAD_BEEF,
            stopped: true,
            volume: Volume::from_raw(u64::MAX),
        };
        let (a, b) = committed_1_and_2(&v1, &v2);
        let r3 = encoded(3, &v3);
        assert_eq!(slot_for(3), Slot::B);
        // The last byte differs, so the record is complete only at the full length.
        assert_ne!(encoded(1, &v1).last(), r3.last());
        for k in 0..=r3.len() {
            let mut torn_b = b.clone();
            write_torn(&mut torn_b, &r3, k);
            let restored = restore::<Small>(&a, &torn_b);
            if k < r3.len() {
                let Restored::Found {
                    seq, value, slot, ..
                } = restored
                else {
                    panic!("nothing restored at k = {k}");
                };
                assert_eq!((seq, &value, slot), (2, &v2, Slot::A), "k = {k}");
            } else {
                assert_eq!(
                    restored,
                    Restored::Found {
                        seq: 3,
                        value: v3.clone(),
                        slot: Slot::B,
                        other: SlotState::Valid { seq: 2 },
                    }
                );
            }
        }
    }

    #[test]
    fn torn_write_of_a_representative_record_never_mixes_pump_023() {
        let v1 = representative();
        let mut v2 = representative();
        v2.program_version = 18;
        v2.strokes += 1;
        let mut v3 = representative();
        v3.program_version = 19;
        v3.steps.truncate(3);
        v3.limiter_1h = [Mass::from_raw(7); 24];
        let (a, b) = committed_1_and_2(&v1, &v2);
        let r3 = encoded(3, &v3);
        for k in 0..=r3.len() {
            let mut torn_b = b.clone();
            write_torn(&mut torn_b, &r3, k);
            let restored = restore::<State>(&a, &torn_b);
            let want = if k < r3.len() { (2, &v2) } else { (3, &v3) };
            match &restored {
                Restored::Found { seq, value, .. } => assert_eq!((*seq, value), want, "{k}"),
                Restored::Empty { .. } => panic!("nothing restored at k = {k}"),
            }
        }
    }

    #[test]
    fn torn_first_write_leaves_nothing_to_restore_pump_023() {
        let r1 = encoded(1, &small(1));
        let a = erased_slot();
        for k in 0..r1.len() {
            let mut b = erased_slot();
            write_torn(&mut b, &r1, k);
            let restored = restore::<Small>(&a, &b);
            assert!(matches!(
                restored,
                Restored::Empty {
                    a: SlotState::Blank,
                    ..
                }
            ));
            assert_eq!(restored.seq(), 0);
        }
    }

    #[test]
    fn restore_reports_blank_invalid_and_misplaced_slots_pump_023() {
        let erased = erased_slot();
        let zeroed = vec![0u8; SLOT_LEN];
        let fresh = restore::<Small>(&erased, &zeroed);
        assert_eq!(
            fresh,
            Restored::Empty {
                a: SlotState::Blank,
                b: SlotState::Blank
            }
        );
        assert!(!fresh.memory_fault());

        // Newest valid in A, garbage in B: restored, memory fault reported.
        let mut a = erased_slot();
        write_full(&mut a, &encoded(4, &small(4)));
        let garbage = vec![0x5A; SLOT_LEN];
        let r = restore::<Small>(&a, &garbage);
        assert_eq!(r.seq(), 4);
        assert!(r.memory_fault());
        assert_eq!(r.clone().into_value(), Some(small(4)));

        // First record only, in B, with A still erased: no fault.
        let mut b = erased_slot();
        write_full(&mut b, &encoded(1, &small(1)));
        let r = restore::<Small>(&erased, &b);
        assert_eq!(r.seq(), 1);
        assert!(!r.memory_fault());

        // A valid record in the wrong slot is not trusted.
        let mut misplaced = erased_slot();
        write_full(&mut misplaced, &encoded(5, &small(5)));
        let r = restore::<Small>(&misplaced, &erased);
        assert_eq!(
            r,
            Restored::Empty {
                a: SlotState::Invalid(PersistError::WrongSlot {
                    seq: 5,
                    found_in: Slot::A
                }),
                b: SlotState::Blank,
            }
        );
        assert!(r.memory_fault());
    }

    #[test]
    fn restore_prefers_the_higher_sequence_number_in_either_slot_pump_023() {
        for (seq_a, seq_b) in [(2u64, 1u64), (2, 3), (10, 7), (10, 11)] {
            let (mut a, mut b) = (erased_slot(), erased_slot());
            write_full(&mut a, &encoded(seq_a, &small(seq_a as u32)));
            write_full(&mut b, &encoded(seq_b, &small(seq_b as u32)));
            let newest = seq_a.max(seq_b);
            let r = restore::<Small>(&a, &b);
            assert_eq!(r.seq(), newest);
            assert_eq!(r.into_value(), Some(small(newest as u32)));
        }
    }

    #[test]
    fn persister_alternates_slots_and_never_overwrites_the_newest_pump_023() {
        let (mut a, mut b) = (erased_slot(), erased_slot());
        let mut p = Persister::new();
        assert_eq!(p.next_seq(), 1);
        let mut buf = [0u8; SLOT_LEN];
        for n in 1..=10u32 {
            let newest_before = restore::<Small>(&a, &b).seq();
            let (slot, len) = p.next(&small(n), &mut buf).unwrap();
            let target = match slot {
                Slot::A => &mut a,
                Slot::B => &mut b,
            };
            // The slot being written never holds the newest record.
            let target_seq = match read_slot::<Small>(target, slot) {
                Ok((seq, _)) => seq,
                Err(_) => 0,
            };
            assert!(newest_before == 0 || target_seq < newest_before);
            write_full(target, &buf[..len]);
            assert_eq!(restore::<Small>(&a, &b).seq(), u64::from(n));
        }
        // Power-on: resume after the restored record.
        let r = restore::<Small>(&a, &b);
        assert_eq!(Persister::after(&r).next_seq(), 11);
        assert_eq!(Persister::after(&restore::<Small>(&[], &[])).next_seq(), 1);
    }

    #[test]
    fn persister_does_not_advance_on_error_and_never_wraps_pump_023() {
        let mut p = Persister::new();
        let mut tiny = [0u8; 4];
        assert_eq!(
            p.next(&small(1), &mut tiny),
            Err(PersistError::BufferTooSmall)
        );
        assert_eq!(p.next_seq(), 1);

        let mut buf = [0u8; 64];
        let mut p = Persister::resume(u64::MAX - 2);
        assert_eq!(p.next(&small(1), &mut buf).unwrap().0, Slot::A);
        assert_eq!(p.next_seq(), u64::MAX);
        assert_eq!(
            p.next(&small(1), &mut buf),
            Err(PersistError::SequenceExhausted)
        );
        assert_eq!(p.next_seq(), u64::MAX);
        assert_eq!(Persister::resume(u64::MAX).next_seq(), u64::MAX);
    }

    fn arb_small() -> impl Strategy<Value = Small> {
        (any::<u32>(), any::<bool>(), any::<u64>()).prop_map(|(counter, stopped, v)| Small {
            counter,
            stopped,
            volume: Volume::from_raw(v),
        })
    }

    fn arb_state() -> impl Strategy<Value = State> {
        (
            any::<u32>(),
            proptest::collection::vec((any::<u16>(), any::<u64>()), 0..=24),
            any::<[u64; 12]>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            any::<(u32, [u8; 16])>(),
        )
            .prop_map(|(version, steps, bins, strokes, last, chain)| {
                let mut s = representative();
                s.program_version = version;
                s.steps = steps.into_iter().collect();
                s.limiter_5min = bins.map(Mass::from_raw);
                s.strokes = strokes;
                s.last_patient_bolus = last.map(Instant::from_ms);
                s.event_chain = chain;
                s
            })
    }

    proptest! {
        #[test]
        fn any_record_round_trips_pump_023(seq in any::<u64>(), state in arb_state()) {
            let bytes = encoded(seq, &state);
            prop_assert_eq!(decode_record::<State>(&bytes).unwrap(), (seq, state));
        }

        #[test]
        fn any_bit_flip_of_any_record_is_rejected_pump_023(
            seq in any::<u64>(),
            state in arb_state(),
            bit in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encoded(seq, &state);
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_record::<State>(&bytes).is_err());
        }

        #[test]
        fn any_torn_write_restores_old_or_new_never_a_mix_pump_023(
            v1 in arb_small(),
            v2 in arb_small(),
            v3 in arb_small(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (a, b) = committed_1_and_2(&v1, &v2);
            let r3 = encoded(3, &v3);
            let k = cut.index(r3.len() + 1);
            let mut torn_b = b.clone();
            write_torn(&mut torn_b, &r3, k);
            let restored = restore::<Small>(&a, &torn_b);
            // Record 3 is visible only once the slot holds exactly its bytes (when the
            // unwritten tail happens to equal the old bytes, that is before k = len).
            let complete = torn_b[..r3.len()] == r3[..];
            let want = if complete { (3, v3) } else { (2, v2) };
            match restored {
                Restored::Found { seq, value, .. } => prop_assert_eq!((seq, value), want),
                Restored::Empty { .. } => prop_assert!(false, "nothing restored"),
            }
        }

        #[test]
        fn arbitrary_slot_bytes_never_panic_pump_023(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = restore::<State>(&a, &b);
            let _ = decode_record::<Small>(&a);
        }
    }
}
