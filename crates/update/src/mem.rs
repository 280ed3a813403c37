//! An update storage in memory whose writes can be torn by a power cut, for tests, the
//! simulator and the virtual implant (feature `std`).

use std::vec;
use std::vec::Vec;

use crate::storage::{RECORD_LEN, Region, Slot, Storage, StorageError, TRANSFER_LEN};

/// What is left of the write a power cut interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// None of it.
    Nothing,
    /// Its first half; the rest keeps the old bytes.
    Half,
    /// All but its last byte.
    AllButLast,
    /// Its first half; the rest is erased (0xff), as a flash page erased before
    /// programming.
    HalfThenErased,
}

/// Two slots and two boot-record copies in memory, with an optional power cut.
#[derive(Debug, Clone)]
pub struct MemStorage {
    slots: [Vec<u8>; 2],
    records: [Vec<u8>; 2],
    transfers: [Vec<u8>; 2],
    writes: usize,
    cut: Option<(usize, Tear)>,
    dead: bool,
    written: Vec<Region>,
}

impl MemStorage {
    /// Erased storage with slots of `slot_size` bytes.
    pub fn new(slot_size: usize) -> Self {
        MemStorage {
            slots: [vec![0xff; slot_size], vec![0xff; slot_size]],
            records: [vec![0xff; RECORD_LEN], vec![0xff; RECORD_LEN]],
            transfers: [vec![0xff; TRANSFER_LEN], vec![0xff; TRANSFER_LEN]],
            writes: 0,
            cut: None,
            dead: false,
            written: Vec::new(),
        }
    }

    /// Cuts the power during write number `n` (from 0, counted from now), leaving
    /// `tear` of it; every later write fails.
    pub fn cut_at(&mut self, n: usize, tear: Tear) {
        self.cut = Some((self.writes.saturating_add(n), tear));
    }

    /// Whether the power has been cut.
    pub const fn is_cut(&self) -> bool {
        self.dead
    }

    /// Power back on (the contents stay as they are).
    pub fn restore_power(&mut self) {
        self.dead = false;
        self.cut = None;
    }

    /// Writes so far.
    pub const fn writes(&self) -> usize {
        self.writes
    }

    /// The regions written, in order.
    pub fn written(&self) -> &[Region] {
        &self.written
    }

    /// A slot's bytes.
    pub fn slot(&self, slot: Slot) -> &[u8] {
        match slot {
            Slot::A => &self.slots[0],
            Slot::B => &self.slots[1],
        }
    }

    /// A slot's bytes, to place a factory image or to damage one.
    pub fn slot_mut(&mut self, slot: Slot) -> &mut [u8] {
        match slot {
            Slot::A => &mut self.slots[0],
            Slot::B => &mut self.slots[1],
        }
    }

    fn region(&mut self, region: Region) -> Result<&mut Vec<u8>, StorageError> {
        match region {
            Region::Slot(Slot::A) => Ok(&mut self.slots[0]),
            Region::Slot(Slot::B) => Ok(&mut self.slots[1]),
            Region::Record(0) => Ok(&mut self.records[0]),
            Region::Record(1) => Ok(&mut self.records[1]),
            Region::Transfer(0) => Ok(&mut self.transfers[0]),
            Region::Transfer(1) => Ok(&mut self.transfers[1]),
            Region::Record(_) | Region::Transfer(_) => Err(StorageError),
        }
    }
}

impl Storage for MemStorage {
    fn slot_size(&self) -> u32 {
        u32::try_from(self.slots[0].len()).unwrap_or(u32::MAX)
    }

    fn read(&self, region: Region, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let bytes = match region {
            Region::Slot(Slot::A) => &self.slots[0],
            Region::Slot(Slot::B) => &self.slots[1],
            Region::Record(0) => &self.records[0],
            Region::Record(1) => &self.records[1],
            Region::Transfer(0) => &self.transfers[0],
            Region::Transfer(1) => &self.transfers[1],
            Region::Record(_) | Region::Transfer(_) => return Err(StorageError),
        };
        let start = offset as usize;
        let end = start.checked_add(buf.len()).ok_or(StorageError)?;
        buf.copy_from_slice(bytes.get(start..end).ok_or(StorageError)?);
        Ok(())
    }

    fn write(&mut self, region: Region, offset: u32, data: &[u8]) -> Result<(), StorageError> {
        if self.dead {
            return Err(StorageError);
        }
        let n = self.writes;
        self.writes = self.writes.saturating_add(1);
        let cut = self.cut.filter(|(at, _)| *at == n).map(|(_, t)| t);
        let start = offset as usize;
        let end = start.checked_add(data.len()).ok_or(StorageError)?;
        let bytes = self.region(region)?;
        let dst = bytes.get_mut(start..end).ok_or(StorageError)?;
        let half = data.len().checked_div(2).unwrap_or(0);
        let kept = match cut {
            None => data.len(),
            Some(Tear::Nothing) => 0,
            Some(Tear::Half | Tear::HalfThenErased) => half,
            Some(Tear::AllButLast) => data.len().saturating_sub(1),
        };
        for (i, (d, s)) in dst.iter_mut().zip(data).enumerate() {
            if i < kept {
                *d = *s;
            } else if cut == Some(Tear::HalfThenErased) {
                *d = 0xff;
            }
        }
        self.written.push(region);
        if cut.is_some() {
            self.dead = true;
            return Err(StorageError);
        }
        Ok(())
    }
}
