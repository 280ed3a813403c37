//! The implant's update storage: two image slots and two copies of the boot record
//! (FWU-006).
//!
//! **Owns:** the [`Storage`] trait the firmware implements over its flash, and the
//! boot record's byte layout with its check value.
//!
//! **Must never:** return a torn or stale boot record as valid, or write the copy that
//! holds the newest valid record.
//!
//! A write may be cut by a power loss after any byte; the updater's safety rests on
//! three facts: it never writes the slot it runs from, an image in the other slot is
//! only ever booted after a boot record names it, and a boot record is written to the
//! copy that does not hold the newest valid one, so a torn write leaves the previous
//! record in force.
//!
//! # Boot record layout ([`RECORD_LEN`] bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic and format, `"TUB1"` |
//! | 4 | 4 | sequence number, little-endian |
//! | 8 | 1 | the confirmed slot (0 = A, 1 = B) |
//! | 9 | 1 | the trial slot (0xff: none) |
//! | 10 | 1 | the trial's state (0 pending, 1 trying; 0 without a trial) |
//! | 11 | 4 | the security counter |
//! | 15 | 1 | number of trusted keys |
//! | 16 | 8 × 33 | keys: public key (32), revoked (0 or 1); unused entries zero |
//! | 280 | 8 | the first 8 bytes of the SHA-256 of bytes 0..280 |

use core::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KEYS_MAX, TrustList, TrustedKey};

/// One of the two image slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
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

    const fn byte(self) -> u8 {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    const fn from_byte(b: u8) -> Option<Slot> {
        match b {
            0 => Some(Slot::A),
            1 => Some(Slot::B),
            _ => None,
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

/// A region of the update storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// An image slot.
    Slot(Slot),
    /// A copy of the boot record (0 or 1).
    Record(u8),
    /// A copy of the transfer record (0 or 1): what has been received, so a transfer
    /// resumes after a restart (FWU-014).
    Transfer(u8),
}

/// The storage could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageError;

/// The flash behind the updater. Writes replace bytes (a flash driver erases pages as
/// needed); each write may be torn by a power cut.
pub trait Storage {
    /// The size of each image slot, bytes.
    fn slot_size(&self) -> u32;
    /// Reads `buf.len()` bytes of `region` from `offset`.
    fn read(&self, region: Region, offset: u32, buf: &mut [u8]) -> Result<(), StorageError>;
    /// Writes `data` into `region` at `offset`.
    fn write(&mut self, region: Region, offset: u32, data: &[u8]) -> Result<(), StorageError>;
}

/// The length of a boot record.
pub const RECORD_LEN: usize = 288;
const RECORD_MAGIC: &[u8; 4] = b"TUB1";
const CHECKED_LEN: usize = RECORD_LEN - 8;
const NO_SLOT: u8 = 0xff;

/// Whether the trial image has been started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialState {
    /// Marked: the next start boots it.
    Pending,
    /// Started once: unless it confirms, the next start reverts.
    Trying,
}

/// A trial boot in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The slot of the image on trial.
    pub slot: Slot,
    /// Its state.
    pub state: TrialState,
}

/// What the bootloader and the updater keep across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRecord {
    /// Increases with every write.
    pub seq: u32,
    /// The slot of the confirmed image.
    pub confirmed: Slot,
    /// An image on trial, if any.
    pub trial: Option<Trial>,
    /// The security counter: no image below it is accepted.
    pub security_counter: u32,
    /// The trusted keys.
    pub keys: TrustList,
}

impl BootRecord {
    /// Its bytes.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        let mut w = Cursor { b: &mut b, at: 0 };
        w.put(RECORD_MAGIC);
        w.put(&self.seq.to_le_bytes());
        w.put(&[self.confirmed.byte()]);
        match self.trial {
            Some(t) => w.put(&[
                t.slot.byte(),
                match t.state {
                    TrialState::Pending => 0,
                    TrialState::Trying => 1,
                },
            ]),
            None => w.put(&[NO_SLOT, 0]),
        }
        w.put(&self.security_counter.to_le_bytes());
        let n = self.keys.iter().count();
        w.put(&[u8::try_from(n).unwrap_or(0)]);
        for k in self.keys.iter() {
            w.put(&k.key);
            w.put(&[u8::from(k.revoked)]);
        }
        let check: [u8; 32] = Sha256::digest(b.get(..CHECKED_LEN).unwrap_or_default()).into();
        if let (Some(dst), Some(src)) = (b.get_mut(CHECKED_LEN..), check.get(..8)) {
            dst.copy_from_slice(src);
        }
        b
    }

    /// The record in `b`, if its magic, check value and every field are valid.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != RECORD_LEN || b.get(..4)? != RECORD_MAGIC {
            return None;
        }
        let check: [u8; 32] = Sha256::digest(b.get(..CHECKED_LEN)?).into();
        if b.get(CHECKED_LEN..)? != check.get(..8)? {
            return None;
        }
        let seq = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        let confirmed = Slot::from_byte(*b.get(8)?)?;
        let trial = match (*b.get(9)?, *b.get(10)?) {
            (NO_SLOT, 0) => None,
            (s, st) => Some(Trial {
                slot: Slot::from_byte(s)?,
                state: match st {
                    0 => TrialState::Pending,
                    1 => TrialState::Trying,
                    _ => return None,
                },
            }),
        };
        if trial.is_some_and(|t| t.slot == confirmed) {
            return None;
        }
        let security_counter = u32::from_le_bytes(b.get(11..15)?.try_into().ok()?);
        let n = usize::from(*b.get(15)?);
        if n == 0 || n > KEYS_MAX {
            return None;
        }
        let mut keys: heapless::Vec<TrustedKey, KEYS_MAX> = heapless::Vec::new();
        for i in 0..n {
            let at = 16usize.checked_add(i.checked_mul(33)?)?;
            let key: [u8; 32] = b.get(at..at.checked_add(32)?)?.try_into().ok()?;
            let revoked = match *b.get(at.checked_add(32)?)? {
                0 => false,
                1 => true,
                _ => return None,
            };
            keys.push(TrustedKey { key, revoked }).ok()?;
        }
        Some(BootRecord {
            seq,
            confirmed,
            trial,
            security_counter,
            keys: TrustList::from_entries(keys),
        })
    }
}

struct Cursor<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, v: &[u8]) {
        let end = self.at.saturating_add(v.len());
        if let Some(dst) = self.b.get_mut(self.at..end) {
            dst.copy_from_slice(v);
        }
        self.at = end;
    }
}

/// Reads both copies: the newest valid record and the copy it is in.
pub fn load<S: Storage + ?Sized>(storage: &S) -> Option<(BootRecord, u8)> {
    let mut best: Option<(BootRecord, u8)> = None;
    for copy in [0u8, 1] {
        let mut b = [0u8; RECORD_LEN];
        if storage.read(Region::Record(copy), 0, &mut b).is_err() {
            continue;
        }
        if let Some(r) = BootRecord::decode(&b) {
            if best.as_ref().is_none_or(|(old, _)| r.seq > old.seq) {
                best = Some((r, copy));
            }
        }
    }
    best
}

/// The length of a transfer record.
pub const TRANSFER_LEN: usize = 61;
const TRANSFER_MAGIC: &[u8; 4] = b"TUT1";
const TRANSFER_CHECKED: usize = TRANSFER_LEN - 8;

/// What a transfer has received, written after each chunk (FWU-014) to the copy that
/// does not hold the newest valid record, so a torn write leaves the previous one.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic and format, `"TUT1"` |
/// | 4 | 4 | sequence number |
/// | 8 | 4 | the boot record's sequence number when the transfer began |
/// | 12 | 1 | the slot written (0 = A, 1 = B) |
/// | 13 | 4 | the image's length (0: no transfer) |
/// | 17 | 4 | the bytes received |
/// | 21 | 32 | the programmer's image id |
/// | 53 | 8 | the first 8 bytes of the SHA-256 of bytes 0..53 |
///
/// A record is in force only while the boot record it names is: marking the image for
/// trial, a trial's start or end and a key change write the boot record, so a transfer
/// from before them is never resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferRecord {
    /// Increases with every write.
    pub seq: u32,
    /// The boot record's sequence number when the transfer began.
    pub boot_seq: u32,
    /// The slot written.
    pub slot: Slot,
    /// The image's length; 0 for "no transfer".
    pub total: u32,
    /// The bytes received.
    pub have: u32,
    /// The programmer's image id.
    pub image_id: [u8; 32],
}

impl TransferRecord {
    /// Its bytes.
    pub fn encode(&self) -> [u8; TRANSFER_LEN] {
        let mut b = [0u8; TRANSFER_LEN];
        let mut w = Cursor { b: &mut b, at: 0 };
        w.put(TRANSFER_MAGIC);
        w.put(&self.seq.to_le_bytes());
        w.put(&self.boot_seq.to_le_bytes());
        w.put(&[self.slot.byte()]);
        w.put(&self.total.to_le_bytes());
        w.put(&self.have.to_le_bytes());
        w.put(&self.image_id);
        let check: [u8; 32] = Sha256::digest(b.get(..TRANSFER_CHECKED).unwrap_or_default()).into();
        if let (Some(dst), Some(src)) = (b.get_mut(TRANSFER_CHECKED..), check.get(..8)) {
            dst.copy_from_slice(src);
        }
        b
    }

    /// The record in `b`, if its magic, check value and fields are valid.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != TRANSFER_LEN || b.get(..4)? != TRANSFER_MAGIC {
            return None;
        }
        let check: [u8; 32] = Sha256::digest(b.get(..TRANSFER_CHECKED)?).into();
        if b.get(TRANSFER_CHECKED..)? != check.get(..8)? {
            return None;
        }
        let u = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(
                b.get(at..at.checked_add(4)?)?.try_into().ok()?,
            ))
        };
        let r = TransferRecord {
            seq: u(4)?,
            boot_seq: u(8)?,
            slot: Slot::from_byte(*b.get(12)?)?,
            total: u(13)?,
            have: u(17)?,
            image_id: b.get(21..53)?.try_into().ok()?,
        };
        (r.have <= r.total).then_some(r)
    }
}

/// Reads both transfer-record copies: the newest valid one and its copy.
pub fn load_transfer<S: Storage + ?Sized>(storage: &S) -> Option<(TransferRecord, u8)> {
    let mut best: Option<(TransferRecord, u8)> = None;
    for copy in [0u8, 1] {
        let mut b = [0u8; TRANSFER_LEN];
        if storage.read(Region::Transfer(copy), 0, &mut b).is_err() {
            continue;
        }
        if let Some(r) = TransferRecord::decode(&b) {
            if best.as_ref().is_none_or(|(old, _)| r.seq > old.seq) {
                best = Some((r, copy));
            }
        }
    }
    best
}
