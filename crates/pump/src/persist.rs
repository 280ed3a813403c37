//! The checkpoint record: the core's whole persistent state, encoded and checked
//! (PUMP-023, PUMP-045).
//!
//! The core's persistent state (program, counters, limiter bins, lockout, log chain
//! heads) is written as one *record*, a checkpoint, into the journal's ring of NOR flash
//! pages ([`crate::journal`]); the small per-stroke records between checkpoints are the
//! journal's. Power may be cut after any byte, so at power-on the last record may be
//! torn: a record is accepted only if its magic, length and CRC all check and its body
//! decodes exactly.
//!
//! **Owns:** the record layout, the encoding and the checking of a record.
//!
//! **Must never:** accept a torn or altered record.
//!
//! # Record layout
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic and format version, [`RECORD_MAGIC`], little-endian |
//! | 4 | 8 | sequence number, little-endian `u64` |
//! | 12 | 4 | body length in bytes, little-endian `u32` |
//! | 16 | 4 | CRC-32/ISCSI (Castagnoli) over bytes 0..16 and the body, little-endian |
//! | 20 | length | body: the postcard encoding of the value |
//!
//! Bytes after the body are ignored (the journal's next record, or erased flash).
//!
//! A representative record (a 12-step flex program, reservoir and delivery counters,
//! 12 five-minute and 24 one-hour limiter bins, the patient-bolus lockout and both log
//! chain heads; see the test `representative_record_size_is_documented_pump_023`)
//! encodes to a 237-byte body, **257 bytes** with the header; the core's real state
//! encodes to about 600 bytes. Postcard writes integers as varints, so the size varies
//! with the values (a `u64` takes 1 to 10 bytes): a checkpoint may use up to a whole
//! journal page.
//!
//! # Panic freedom
//!
//! [`decode_record`] and [`check_record`] accept any bytes, of any length, and never
//! panic: every field is read through checked splits and every size through checked
//! arithmetic.

use core::fmt;

use crc::{CRC_32_ISCSI, Crc};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Magic number and format version at the start of every record: the bytes `"TPR2"`
/// (thecal pump record, format 2: a checkpoint of the journal). A format change must change the last byte so that
/// an old image is rejected rather than misread.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"TPR2");

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
            PersistError::SequenceExhausted => {
                f.write_str("the record sequence number is exhausted")
            }
        }
    }
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

/// Checks the header and CRC of the record at the start of `bytes` without decoding
/// its body: returns its sequence number and its length (header and body).
///
/// # Errors
/// [`PersistError::SlotTooShort`], [`PersistError::BadMagic`],
/// [`PersistError::BadLength`] or [`PersistError::CrcMismatch`].
pub fn check_record(bytes: &[u8]) -> Result<(u64, usize), PersistError> {
    let (seq, body) = checked_body(bytes)?;
    Ok((seq, body.len().saturating_add(HEADER_LEN)))
}

/// The sequence number and body of a record whose header and CRC check.
fn checked_body(slot: &[u8]) -> Result<(u64, &[u8]), PersistError> {
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
    Ok((seq, body))
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
    let (seq, body) = checked_body(slot)?;
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok((seq, value)),
        // Left-over bytes mean the body was written for a different type.
        Ok(_) | Err(_) => Err(PersistError::Undecodable),
    }
}

/// [`decode_record`] into an existing value: the body is decoded in place
/// (`Deserialize::deserialize_in_place`), field by field into `place`, so that the value
/// is never built as a temporary and moved (on a microcontroller its stack frame would
/// be the size of the value, several times over). Returns the sequence number.
///
/// The checks and their order are those of [`decode_record`]. On an error `place` may
/// hold a mix of its old value and the record's: the caller must not use it then.
///
/// # Errors
/// As [`decode_record`].
pub fn decode_record_into<T: for<'de> Deserialize<'de>>(
    slot: &[u8],
    place: &mut T,
) -> Result<u64, PersistError> {
    let (seq, body) = checked_body(slot)?;
    let mut de = postcard::Deserializer::from_bytes(body);
    match T::deserialize_in_place(&mut de, place).map(|()| de.finalize()) {
        Ok(Ok([])) => Ok(seq),
        // Left-over bytes mean the body was written for a different type.
        Ok(_) | Err(_) => Err(PersistError::Undecodable),
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

    fn write_full(slot: &mut [u8], bytes: &[u8]) {
        slot[..bytes.len()].copy_from_slice(bytes);
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
        assert_eq!(&bytes[0..4], b"TPR2");
        assert_eq!(&bytes[4..12], &0x0102_0304_0506_0708u64.to_le_bytes());
        let body_len = (bytes.len() - HEADER_LEN) as u32;
        assert_eq!(&bytes[12..16], &body_len.to_le_bytes());
        let crc = CASTAGNOLI.checksum(&[&bytes[..16], &bytes[20..]].concat());
        assert_eq!(&bytes[16..20], &crc.to_le_bytes());
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
        // A record of the A/B format 1 is not read as a checkpoint.
        bad_magic[3] = b'1';
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

    #[test]
    fn sequences_decoded_in_place_are_the_values_decoded_aside_pump_050() {
        use thecal_rx::check::Prescription;
        use thecal_rx::dose::Admixture;
        use thecal_rx::schedule::{DayProfile, Schedule, Step};
        use thecal_rx::seq::InPlace;
        // A week of profiles of different lengths: decoded in place over a prescription
        // of another shape, and over one longer than it, it is the record's value.
        let day = |n: u16| {
            let steps: Vec<Step> = (0..n)
                .map(|i| Step {
                    start_minute: i * 50,
                    flow: thecal_rx::Flow::from_raw(100_000 + u64::from(i)),
                })
                .collect();
            DayProfile::new(&steps).unwrap()
        };
        let week = Prescription {
            contents: Admixture::single(DrugId::Baclofen, "2000 mcg/mL".parse().unwrap()),
            schedule: Schedule::weekly([day(1), day(2), day(3), day(24), day(5), day(6), day(7)]),
            patient_bolus: None,
            reservoir_volume: Volume::from_raw(20_000_000),
        };
        let bytes = encoded(4, &week);
        let mut place = Prescription::placeholder();
        assert_eq!(decode_record_into(&bytes, &mut place), Ok(4));
        assert_eq!(place, week);
        let mut shorter = week.clone();
        shorter.schedule = Schedule::continuous(thecal_rx::Flow::from_raw(7));
        let mut place = week.clone();
        decode_record_into(&encoded(5, &shorter), &mut place).unwrap();
        assert_eq!(place, shorter);
        assert_eq!(decode_record::<Prescription>(&bytes).unwrap(), (4, week));
        // The encoding is the sequence's own; more elements than it holds are refused.
        let five: heapless::Vec<u32, 8> = (1..=5).collect();
        let bytes = encoded(6, &five);
        assert_eq!(bytes, encoded(6, &InPlace(five.clone())));
        let mut room: InPlace<heapless::Vec<u32, 8>> = InPlace(heapless::Vec::new());
        decode_record_into(&bytes, &mut room).unwrap();
        assert_eq!(room.0, five);
        let mut small: InPlace<heapless::Vec<u32, 4>> = InPlace(heapless::Vec::new());
        assert_eq!(
            decode_record_into(&bytes, &mut small),
            Err(PersistError::Undecodable)
        );
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
        fn arbitrary_slot_bytes_never_panic_pump_023(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = check_record(&a);
            let _ = decode_record::<State>(&b);
            let _ = decode_record::<Small>(&a);
        }
    }
}
