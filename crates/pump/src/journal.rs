//! The journal: how the core's state lives in NOR flash (PUMP-045..PUMP-049).
//!
//! The memory is a **NOR flash with page erase** (an SPI NOR of the ultra-low-power kind
//! used in implants, or an MCU's internal flash): reads are free, a program can only
//! turn erased bits (1) into 0, a byte is programmed once between erases, and only a
//! whole page (4 KiB) can be erased, each erase wearing the page (rated
//! [`ERASE_CYCLES`] erases per page). [`NorFlash`] models exactly these rules and every
//! test writes through it, so a write the hardware could not do fails the test.
//!
//! **Owns:** the layout of the ring of pages, the small per-stroke record, the choice of
//! where each record goes (erasing a page first), and finding the newest checkpoint and
//! the stroke records after it at power-on.
//!
//! **Must never:** program a byte that is not erased, erase the page that holds the
//! newest checkpoint, or return a torn record.
//!
//! # Records
//!
//! The ring holds two kinds of record, each with a sequence number, one after another in
//! each page, aligned to [`ALIGN`] bytes:
//!
//! - a **checkpoint**: the whole persistent state in the format of [`crate::persist`]
//!   (magic `TPR2`, sequence number, length, CRC, postcard body; about 600 bytes). It is
//!   written when anything but a stroke changed (a command, an alarm, a log entry, a
//!   stall, a veto), and as the first record of every page;
//! - a **stroke record** ([`Delta`], [`DELTA_LEN`] = 24 bytes): written before each
//!   stroke moves (write-ahead) when nothing else changed. It holds the tag, the time
//!   (48 bits of milliseconds), the sequence number (low 32 bits), the stroke counter
//!   (low 32 bits), the drug mass of the stroke in ng (the limiter's bin update) and a
//!   CRC-32C. At power-on the core replays it on the checkpoint: the fluid path's push,
//!   the limiter's bins at that time, the reservoir, the delivered volume and the stroke
//!   counter, each checked against the record.
//!
//! | offset | size | stroke record field |
//! |---|---|---|
//! | 0 | 1 | tag [`DELTA_TAG`] |
//! | 1 | 1 | format, [`DELTA_FORMAT`] |
//! | 2 | 6 | core time of the stroke, ms, little-endian |
//! | 8 | 4 | sequence number, low 32 bits |
//! | 12 | 4 | stroke counter after this stroke, low 32 bits |
//! | 16 | 4 | drug mass of the stroke (all drugs), ng |
//! | 20 | 4 | CRC-32/ISCSI over bytes 0..20 |
//!
//! # The ring
//!
//! Records are appended to the head page; when the next record does not fit, the next
//! page of the ring is erased and a checkpoint opens it. So the newest checkpoint and the
//! stroke records that follow it are always in one page, the head, and the page erased
//! next (the oldest) never holds them: a power cut during an erase or a program can only
//! lose the record being written. After a restart the writer opens a fresh page, so it
//! never programs next to a torn record. Compaction is the checkpoint that opens each
//! page: everything before it is no longer needed.
//!
//! # Panic freedom
//!
//! [`locate`] and [`Delta::decode`] accept any bytes and never panic.

use core::fmt;

use crc::{CRC_32_ISCSI, Crc};

use crate::persist;

/// Bytes per erasable page.
pub const PAGE_SIZE: usize = 4096;
/// Pages in the ring of a pump built with [`crate::core::Pump::new`]: 32 pages, 128 KiB
/// (a quarter of a 4 Mbit SPI NOR).
pub const DEFAULT_PAGES: usize = 32;
/// The fewest pages a ring can have: the head and the page erased next.
pub const MIN_PAGES: usize = 2;
/// Every record starts on a multiple of this (the program granularity of most NOR).
pub const ALIGN: usize = 8;
/// Length of a stroke record.
pub const DELTA_LEN: usize = 24;
/// First byte of a stroke record (a checkpoint starts with `T`, erased flash with 0xFF).
pub const DELTA_TAG: u8 = 0xD5;
/// Format of the stroke record.
pub const DELTA_FORMAT: u8 = 1;
/// Rated erase cycles per page of the NOR the journal is designed for (100,000: the
/// usual rating of SPI NOR such as Macronix MX25R or Winbond W25Q families).
pub const ERASE_CYCLES: u32 = 100_000;

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// One write to the memory, handed out by the core in
/// [`crate::core::Action::Store`]; carry it out with [`NorFlash::apply`] or the
/// hardware's own driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp<'a> {
    /// Erase this page (all bytes to 0xFF).
    Erase {
        /// Page number, from 0.
        page: u16,
    },
    /// Program these bytes at this offset from the start of the memory; every byte
    /// written is erased before.
    Program {
        /// Byte offset from the start of the memory.
        offset: u32,
        /// The bytes.
        bytes: &'a [u8],
    },
}

impl StoreOp<'_> {
    /// Bytes this operation programs (0 for an erase).
    pub fn programmed(&self) -> usize {
        match self {
            StoreOp::Erase { .. } => 0,
            StoreOp::Program { bytes, .. } => bytes.len(),
        }
    }
}

/// A write the memory refused: the writer broke the rules of NOR flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// The page or the bytes lie outside the memory.
    OutOfRange,
    /// A byte to be programmed was not erased (NOR programs each byte once between
    /// erases).
    NotErased {
        /// Its offset.
        offset: u32,
    },
    /// A program does not start on an [`ALIGN`] boundary.
    Misaligned {
        /// The offset.
        offset: u32,
    },
    /// A program crosses a page boundary.
    CrossesPage {
        /// The offset.
        offset: u32,
    },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::OutOfRange => f.write_str("the write lies outside the memory"),
            FlashError::NotErased { offset } => {
                write!(f, "byte {offset} is programmed again without an erase")
            }
            FlashError::Misaligned { offset } => {
                write!(f, "a program at {offset} is not {ALIGN}-byte aligned")
            }
            FlashError::CrossesPage { offset } => {
                write!(f, "a program at {offset} crosses a page boundary")
            }
        }
    }
}

/// A NOR flash of `PAGES` pages of [`PAGE_SIZE`] bytes, with its rules enforced and its
/// wear counted: the memory of the tests, the simulator and the firmware image.
#[derive(Clone)]
pub struct NorFlash<const PAGES: usize> {
    pages: [[u8; PAGE_SIZE]; PAGES],
    erases: [u32; PAGES],
    programmed_bytes: u64,
    programs: u64,
}

impl<const PAGES: usize> fmt::Debug for NorFlash<PAGES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NorFlash")
            .field("pages", &PAGES)
            .field("erases", &self.erases)
            .field("programmed_bytes", &self.programmed_bytes)
            .finish_non_exhaustive()
    }
}

impl<const PAGES: usize> Default for NorFlash<PAGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const PAGES: usize> NorFlash<PAGES> {
    /// A memory as delivered: every page erased, no wear.
    pub const fn new() -> Self {
        Self {
            pages: [[0xFF; PAGE_SIZE]; PAGES],
            erases: [0; PAGES],
            programmed_bytes: 0,
            programs: 0,
        }
    }

    /// The whole memory, page 0 first: what the core reads at power-on.
    pub fn bytes(&self) -> &[u8] {
        self.pages.as_flattened()
    }

    /// The whole memory, writable without the rules: fault injection (a damaged
    /// memory) in tests and in the simulator. The core never gets this.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.pages.as_flattened_mut()
    }

    /// Erases counted per page.
    pub fn erases(&self) -> &[u32; PAGES] {
        &self.erases
    }

    /// Bytes programmed since manufacture.
    pub fn programmed_bytes(&self) -> u64 {
        self.programmed_bytes
    }

    /// Program operations since manufacture.
    pub fn programs(&self) -> u64 {
        self.programs
    }

    /// Carries out one operation of the core.
    ///
    /// # Errors
    /// The rule it breaks; nothing is changed then.
    pub fn apply(&mut self, op: StoreOp<'_>) -> Result<(), FlashError> {
        self.apply_torn(op, usize::MAX)
    }

    /// Carries out an operation that a power cut stops after `done` bytes: a program
    /// writes only its first `done` bytes; an erase sets only the first `done` bytes of
    /// the page to 0xFF and leaves the rest as it was (and still wears the page).
    ///
    /// # Errors
    /// As [`NorFlash::apply`].
    pub fn apply_torn(&mut self, op: StoreOp<'_>, done: usize) -> Result<(), FlashError> {
        match op {
            StoreOp::Erase { page } => {
                let i = usize::from(page);
                let (Some(p), Some(n)) = (self.pages.get_mut(i), self.erases.get_mut(i)) else {
                    return Err(FlashError::OutOfRange);
                };
                for b in p.iter_mut().take(done) {
                    *b = 0xFF;
                }
                *n = n.saturating_add(1);
                Ok(())
            }
            StoreOp::Program { offset, bytes } => {
                let start = usize::try_from(offset).map_err(|_| FlashError::OutOfRange)?;
                if start.checked_rem(ALIGN) != Some(0) {
                    return Err(FlashError::Misaligned { offset });
                }
                let end = start
                    .checked_add(bytes.len())
                    .ok_or(FlashError::OutOfRange)?;
                let page_of = |x: usize| x.checked_div(PAGE_SIZE);
                if !bytes.is_empty() && page_of(start) != page_of(end.saturating_sub(1)) {
                    return Err(FlashError::CrossesPage { offset });
                }
                let mem = self.pages.as_flattened_mut();
                let target = mem.get_mut(start..end).ok_or(FlashError::OutOfRange)?;
                // Checked as a whole first (the common case, cheaply), then for where.
                if target.iter().fold(0xFF, |all, &b| all & b) != 0xFF {
                    let i = target.iter().position(|&b| b != 0xFF).unwrap_or(0);
                    let at = u32::try_from(start.saturating_add(i)).unwrap_or(u32::MAX);
                    return Err(FlashError::NotErased { offset: at });
                }
                let n = done.min(bytes.len());
                let (Some(dst), Some(src)) = (target.get_mut(..n), bytes.get(..n)) else {
                    return Err(FlashError::OutOfRange);
                };
                for (d, s) in dst.iter_mut().zip(src) {
                    // NOR can only clear bits.
                    *d &= *s;
                }
                self.programs = self.programs.saturating_add(1);
                self.programmed_bytes = self
                    .programmed_bytes
                    .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                Ok(())
            }
        }
    }
}

/// A stroke record: see the [module docs](self) for its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    /// Core time of the stroke, ms (48 bits are stored).
    pub time_ms: u64,
    /// Sequence number (32 bits are stored).
    pub seq: u64,
    /// The stroke counter after this stroke (32 bits are stored).
    pub strokes: u64,
    /// The drug mass of the stroke, all drugs, ng (saturates).
    pub mass_ng: u32,
}

impl Delta {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; DELTA_LEN] {
        let [t0, t1, t2, t3, t4, t5, _, _] = self.time_ms.to_le_bytes();
        let [s0, s1, s2, s3] = (self.seq as u32).to_le_bytes();
        let [k0, k1, k2, k3] = (self.strokes as u32).to_le_bytes();
        let [m0, m1, m2, m3] = self.mass_ng.to_le_bytes();
        let head = [
            DELTA_TAG,
            DELTA_FORMAT,
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            s0,
            s1,
            s2,
            s3,
            k0,
            k1,
            k2,
            k3,
            m0,
            m1,
            m2,
            m3,
        ];
        let [c0, c1, c2, c3] = CASTAGNOLI.checksum(&head).to_le_bytes();
        let [
            h0,
            h1,
            h2,
            h3,
            h4,
            h5,
            h6,
            h7,
            h8,
            h9,
            h10,
            h11,
            h12,
            h13,
            h14,
            h15,
            h16,
            h17,
            h18,
            h19,
        ] = head;
        [
            h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18,
            h19, c0, c1, c2, c3,
        ]
    }

    /// Reads a stroke record from the start of `bytes`: `None` unless the tag, the
    /// format and the CRC all check. The sequence number and stroke counter come back
    /// as their stored low 32 bits.
    pub fn decode(bytes: &[u8]) -> Option<Delta> {
        let r: &[u8; DELTA_LEN] = bytes.first_chunk()?;
        let (head, crc) = r.split_first_chunk::<20>()?;
        let crc = u32::from_le_bytes(*crc.first_chunk::<4>()?);
        if CASTAGNOLI.checksum(head) != crc {
            return None;
        }
        let [
            tag,
            format,
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            s0,
            s1,
            s2,
            s3,
            k0,
            k1,
            k2,
            k3,
            m0,
            m1,
            m2,
            m3,
        ] = *head;
        if tag != DELTA_TAG || format != DELTA_FORMAT {
            return None;
        }
        Some(Delta {
            time_ms: u64::from_le_bytes([t0, t1, t2, t3, t4, t5, 0, 0]),
            seq: u64::from(u32::from_le_bytes([s0, s1, s2, s3])),
            strokes: u64::from(u32::from_le_bytes([k0, k1, k2, k3])),
            mass_ng: u32::from_le_bytes([m0, m1, m2, m3]),
        })
    }
}

/// `n` rounded up to [`ALIGN`].
pub const fn aligned(n: usize) -> usize {
    n.saturating_add(ALIGN - 1) & !(ALIGN - 1)
}

/// One record found in a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    Checkpoint { seq: u64 },
    Delta(Delta),
}

/// The record at the start of `bytes` and its aligned length, if one is whole there.
fn record_at(bytes: &[u8]) -> Option<(Rec, usize)> {
    match bytes.first() {
        Some(&DELTA_TAG) => Delta::decode(bytes).map(|d| (Rec::Delta(d), aligned(DELTA_LEN))),
        Some(_) => persist::check_record(bytes)
            .ok()
            .map(|(seq, len)| (Rec::Checkpoint { seq }, aligned(len))),
        None => None,
    }
}

/// Walks the whole records of one page from its start; returns where they end.
fn walk(page: &[u8], mut f: impl FnMut(usize, Rec)) -> usize {
    let mut off = 0usize;
    while let Some(rest) = page.get(off..) {
        let Some((rec, len)) = record_at(rest) else {
            break;
        };
        f(off, rec);
        off = off.saturating_add(len);
    }
    off.min(page.len())
}

/// What [`locate`] found at power-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located<'m> {
    /// The newest checkpoint.
    Found {
        /// Its sequence number.
        seq: u64,
        /// Its page.
        page: usize,
        /// The memory from the checkpoint's start to the end of its page: decode the
        /// checkpoint from it with [`crate::persist::decode_record`].
        record: &'m [u8],
        /// The stroke records after it, in order (see [`Located::deltas`]).
        after: &'m [u8],
        /// The head page holds bytes after its last whole record that are not erased:
        /// a write was torn by a power cut, or the memory is damaged.
        torn: bool,
    },
    /// No checkpoint anywhere.
    Empty,
}

/// Finds the newest whole checkpoint in a ring of pages of [`PAGE_SIZE`] bytes (a
/// trailing partial page is ignored).
pub fn locate(memory: &[u8]) -> Located<'_> {
    let mut best: Option<(u64, usize, usize)> = None;
    for (p, page) in memory.chunks_exact(PAGE_SIZE).enumerate() {
        walk(page, |off, rec| {
            if let Rec::Checkpoint { seq } = rec {
                if best.is_none_or(|(s, _, _)| seq > s) {
                    best = Some((seq, p, off));
                }
            }
        });
    }
    let Some((seq, p, off)) = best else {
        return Located::Empty;
    };
    let page = memory.chunks_exact(PAGE_SIZE).nth(p).unwrap_or(&[]);
    let end = walk(page, |_, _| {});
    let torn = page
        .get(end..)
        .is_some_and(|t| t.iter().any(|&b| b != 0xFF));
    let record = page.get(off..).unwrap_or(&[]);
    let after = record_at(record)
        .and_then(|(_, len)| record.get(len..))
        .unwrap_or(&[]);
    Located::Found {
        seq,
        page: p,
        record,
        after,
        torn,
    }
}

impl Located<'_> {
    /// The stroke records that follow the checkpoint, each with the sequence number
    /// after the one before (checkpoint `seq` + 1, + 2, …), up to the first that is
    /// missing, torn or out of sequence. Their `seq` is the full number.
    pub fn deltas(&self) -> impl Iterator<Item = Delta> + '_ {
        let (mut expect, mut rest) = match self {
            Located::Found { seq, after, .. } => (seq.checked_add(1), *after),
            Located::Empty => (None, &[][..]),
        };
        core::iter::from_fn(move || {
            let want = expect?;
            let Some((Rec::Delta(d), len)) = record_at(rest) else {
                expect = None;
                return None;
            };
            if d.seq != u64::from(want as u32) {
                expect = None;
                return None;
            }
            rest = rest.get(len..).unwrap_or(&[]);
            expect = want.checked_add(1);
            Some(Delta { seq: want, ..d })
        })
    }
}

/// Where the next record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// First erase this page; then ask again.
    Erase(u16),
    /// Program a checkpoint at this offset: it opens a new page.
    OpenPage(u32),
    /// Program the record at this offset, after the head page's last record.
    Append(u32),
}

/// The writer's position in the ring: the head page, the bytes used in it, and the
/// next sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pages: u16,
    head: u16,
    used: u32,
    next_seq: u64,
    /// The next record must open a new page (at start-up, after a restore).
    fresh: bool,
    /// The page after the head is erased and waits for its opening checkpoint.
    erased: bool,
}

impl Writer {
    /// The sequence number of the first record ever written; 0 means "no record".
    pub const FIRST_SEQ: u64 = 1;

    /// A writer for an erased ring of `pages` pages: it opens page 0 first.
    pub fn new(pages: usize) -> Self {
        let pages = u16::try_from(pages).unwrap_or(u16::MAX).max(2);
        Writer {
            pages,
            head: pages.saturating_sub(1),
            used: 0,
            next_seq: Self::FIRST_SEQ,
            fresh: true,
            erased: false,
        }
    }

    /// A writer that continues after record `last_seq`, whose checkpoint is in `page`:
    /// it opens the page after it (never writing next to a torn record).
    pub fn after(pages: usize, page: usize, last_seq: u64) -> Self {
        let mut w = Writer::new(pages);
        w.head = u16::try_from(page).unwrap_or(0);
        w.next_seq = last_seq.saturating_add(1);
        w
    }

    /// Pages in the ring.
    pub fn pages(&self) -> usize {
        usize::from(self.pages)
    }

    /// The sequence number the next record will carry.
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn next_page(&self) -> u16 {
        let n = self.head.saturating_add(1);
        if n >= self.pages { 0 } else { n }
    }

    /// Where a record of `len` bytes goes. A stroke record that does not fit needs a
    /// new page, which a checkpoint must open.
    pub fn plan(&mut self, len: usize) -> Plan {
        let fits = usize::try_from(self.used)
            .ok()
            .and_then(|u| u.checked_add(len))
            .is_some_and(|end| end <= PAGE_SIZE);
        if !self.fresh && fits {
            let base = u32::from(self.head).saturating_mul(PAGE_SIZE as u32);
            return Plan::Append(base.saturating_add(self.used));
        }
        let next = self.next_page();
        if !self.erased {
            self.erased = true;
            return Plan::Erase(next);
        }
        Plan::OpenPage(u32::from(next).saturating_mul(PAGE_SIZE as u32))
    }

    /// A record of `len` bytes was handed out where [`Writer::plan`] said.
    ///
    /// # Errors
    /// [`persist::PersistError::SequenceExhausted`] once the sequence number would wrap.
    pub fn commit(&mut self, plan: Plan, len: usize) -> Result<u64, persist::PersistError> {
        let seq = self.next_seq;
        self.next_seq = seq
            .checked_add(1)
            .ok_or(persist::PersistError::SequenceExhausted)?;
        let len = u32::try_from(aligned(len)).unwrap_or(u32::MAX);
        match plan {
            Plan::Append(_) => self.used = self.used.saturating_add(len),
            Plan::OpenPage(_) => {
                self.head = self.next_page();
                self.used = len;
                self.fresh = false;
                self.erased = false;
            }
            Plan::Erase(_) => {}
        }
        Ok(seq)
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
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn delta(seq: u64) -> Delta {
        Delta {
            time_ms: 0x0000_1234_5678_9ABC,
            seq,
            strokes: 1000 + seq,
            mass_ng: 500,
        }
    }

    #[test]
    fn a_stroke_record_is_24_bytes_and_round_trips_pump_046() {
        let d = delta(7);
        let b = d.encode();
        assert_eq!(b.len(), DELTA_LEN);
        const { assert!(DELTA_LEN <= 32) };
        assert_eq!(Delta::decode(&b), Some(d));
        // Every single bit flip and every truncation is refused.
        for bit in 0..DELTA_LEN * 8 {
            let mut bad = b;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Delta::decode(&bad), None, "bit {bit}");
        }
        for k in 0..DELTA_LEN {
            assert_eq!(Delta::decode(&b[..k]), None);
        }
    }

    #[test]
    fn the_flash_model_refuses_what_nor_cannot_do_pump_045() {
        let mut f = Box::new(NorFlash::<2>::new());
        let rec = [0u8; 16];
        f.apply(StoreOp::Program {
            offset: 8,
            bytes: &rec,
        })
        .unwrap();
        // Programming a byte twice without an erase.
        assert_eq!(
            f.apply(StoreOp::Program {
                offset: 16,
                bytes: &rec
            }),
            Err(FlashError::NotErased { offset: 16 })
        );
        // Unaligned, crossing a page, outside.
        assert_eq!(
            f.apply(StoreOp::Program {
                offset: 3,
                bytes: &[1]
            }),
            Err(FlashError::Misaligned { offset: 3 })
        );
        assert_eq!(
            f.apply(StoreOp::Program {
                offset: PAGE_SIZE as u32 - 8,
                bytes: &rec
            }),
            Err(FlashError::CrossesPage {
                offset: PAGE_SIZE as u32 - 8
            })
        );
        assert_eq!(
            f.apply(StoreOp::Program {
                offset: 2 * PAGE_SIZE as u32,
                bytes: &[0]
            }),
            Err(FlashError::OutOfRange)
        );
        assert_eq!(
            f.apply(StoreOp::Erase { page: 2 }),
            Err(FlashError::OutOfRange)
        );
        // An erase clears the page and is counted.
        f.apply(StoreOp::Erase { page: 0 }).unwrap();
        assert!(f.bytes().iter().all(|&b| b == 0xFF));
        assert_eq!(f.erases(), &[1, 0]);
        f.apply(StoreOp::Program {
            offset: 16,
            bytes: &rec,
        })
        .unwrap();
        assert_eq!(f.programmed_bytes(), 32);
        assert_eq!(f.programs(), 2);
        // A torn program writes a prefix; a torn erase erases a prefix.
        f.apply_torn(
            StoreOp::Program {
                offset: 32,
                bytes: &rec,
            },
            5,
        )
        .unwrap();
        assert_eq!(&f.bytes()[32..40], &[0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF]);
        f.apply_torn(StoreOp::Erase { page: 0 }, 20).unwrap();
        assert_eq!(&f.bytes()[16..24], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
        assert_eq!(f.erases(), &[2, 0]);
        for e in [
            FlashError::OutOfRange,
            FlashError::NotErased { offset: 1 },
            FlashError::Misaligned { offset: 1 },
            FlashError::CrossesPage { offset: 1 },
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    /// A checkpoint of `n` bytes of body, by the persist codec.
    fn checkpoint(seq: u64, n: usize) -> Vec<u8> {
        let body: heapless::Vec<u8, 1024> = (0..n).map(|i| i as u8).collect();
        let mut buf = [0u8; 2048];
        let len = persist::encode_record(seq, &body, &mut buf).unwrap();
        buf[..len].to_vec()
    }

    /// Writes records through a writer as the core does: checkpoints when asked, stroke
    /// records otherwise; returns every operation in order.
    fn drive(w: &mut Writer, f: &mut NorFlash<4>, kinds: &[bool], log: &mut Vec<(Plan, Vec<u8>)>) {
        for &is_checkpoint in kinds {
            loop {
                let len = if is_checkpoint {
                    checkpoint(0, 300).len()
                } else {
                    DELTA_LEN
                };
                let plan = w.plan(len);
                let bytes = match plan {
                    Plan::Erase(page) => {
                        f.apply(StoreOp::Erase { page }).unwrap();
                        log.push((plan, Vec::new()));
                        continue;
                    }
                    Plan::OpenPage(_) => checkpoint(w.next_seq(), 300),
                    Plan::Append(_) if is_checkpoint => checkpoint(w.next_seq(), 300),
                    Plan::Append(_) => delta(w.next_seq()).encode().to_vec(),
                };
                let (Plan::OpenPage(offset) | Plan::Append(offset)) = plan else {
                    unreachable!()
                };
                f.apply(StoreOp::Program {
                    offset,
                    bytes: &bytes,
                })
                .unwrap();
                w.commit(plan, bytes.len()).unwrap();
                log.push((plan, bytes));
                break;
            }
        }
    }

    #[test]
    fn the_ring_wears_every_page_evenly_and_keeps_the_newest_pump_047() {
        let mut f = Box::new(NorFlash::<4>::new());
        let mut w = Writer::new(4);
        let mut log = Vec::new();
        let kinds: Vec<bool> = (0..5000).map(|i| i % 400 == 0).collect();
        drive(&mut w, &mut f, &kinds, &mut log);
        // Every page wears within one erase of the others.
        let e = f.erases();
        assert!(
            e.iter().max().unwrap() - e.iter().min().unwrap() <= 1,
            "{e:?}"
        );
        assert!(*e.iter().min().unwrap() > 5);
        // The newest record is found: the last checkpoint and the strokes after it.
        let loc = locate(f.bytes());
        let Located::Found { seq, torn, .. } = loc else {
            panic!("nothing found")
        };
        assert!(!torn);
        let last = loc.deltas().last().map_or(seq, |d| d.seq);
        assert_eq!(last, w.next_seq() - 1);
        // Bytes per record: stroke records plus the checkpoint opening each page.
        let bytes: usize = log.iter().map(|(_, b)| b.len()).sum();
        assert!(
            bytes / kinds.len() <= 32,
            "{} bytes per record",
            bytes / kinds.len()
        );
    }

    #[test]
    fn blank_and_garbage_memories_hold_no_checkpoint_pump_045() {
        let f = Box::new(NorFlash::<3>::new());
        assert_eq!(locate(f.bytes()), Located::Empty);
        assert_eq!(locate(&[]), Located::Empty);
        assert_eq!(locate(&[0x5A; 3 * PAGE_SIZE]), Located::Empty);
        assert_eq!(locate(&[0x00; PAGE_SIZE + 5]), Located::Empty);
    }

    proptest! {
        /// Any bytes: no panic, and what is found is a whole record.
        #[test]
        fn locate_never_panics_on_any_bytes_pump_045(
            bytes in proptest::collection::vec(any::<u8>(), 0..(2 * PAGE_SIZE + 10)),
        ) {
            let loc = locate(&bytes);
            let _ = loc.deltas().count();
            let _ = Delta::decode(&bytes);
        }

        /// A power cut at any byte of any operation of a run leaves a ring whose newest
        /// record is the last one completed or the one being written, never a mix.
        #[test]
        fn a_cut_anywhere_finds_the_last_whole_record_pump_047(
            n in 1usize..900,
            every in 2usize..300,
            cut in any::<prop::sample::Index>(),
        ) {
            let kinds: Vec<bool> = (0..n).map(|i| i % every == 0).collect();
            let mut f = Box::new(NorFlash::<4>::new());
            let mut w = Writer::new(4);
            let mut log = Vec::new();
            drive(&mut w, &mut f, &kinds, &mut log);
            // Replay the operations on a fresh memory, the last one torn.
            let mut g = Box::new(NorFlash::<4>::new());
            let (last, rest) = log.split_last().unwrap();
            let mut committed = 0u64;
            for (plan, bytes) in rest {
                match *plan {
                    Plan::Erase(page) => g.apply(StoreOp::Erase { page }).unwrap(),
                    Plan::OpenPage(o) | Plan::Append(o) => {
                        g.apply(StoreOp::Program { offset: o, bytes }).unwrap();
                        committed += 1;
                    }
                }
            }
            let done = match last.0 {
                Plan::Erase(page) => {
                    let k = cut.index(PAGE_SIZE + 1);
                    g.apply_torn(StoreOp::Erase { page }, k).unwrap();
                    k
                }
                Plan::OpenPage(o) | Plan::Append(o) => {
                    let k = cut.index(last.1.len() + 1);
                    g.apply_torn(StoreOp::Program { offset: o, bytes: &last.1 }, k).unwrap();
                    // Whole once every byte that differs from erased flash is written.
                    let at = o as usize;
                    if g.bytes()[at..at + last.1.len()] == last.1[..] { committed += 1; }
                    k
                }
            };
            let loc = locate(g.bytes());
            let newest = match loc {
                Located::Found { seq, .. } => loc.deltas().last().map_or(seq, |d| d.seq),
                Located::Empty => 0,
            };
            prop_assert_eq!(newest, committed, "cut after {} bytes of {:?}", done, last.0);
        }
    }
}
