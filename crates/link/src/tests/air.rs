//! An in-memory air between devices (programmers, remotes) and the implant, with an
//! attacker who records every transmission and can replay, inject, drop, reorder and
//! corrupt frames in flight.

use std::collections::VecDeque;
use std::vec::Vec;

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From a programmer or remote to the implant.
    ToImplant,
    /// From the implant to a programmer or remote.
    ToDevice,
}

/// Frames in flight, in order, and the attacker's recording of every genuine transmission.
#[derive(Debug, Default)]
pub struct Air {
    in_flight: VecDeque<(Dir, Vec<u8>)>,
    transcript: Vec<(Dir, Vec<u8>)>,
}

impl Air {
    pub fn new() -> Self {
        Air::default()
    }

    // ----- the genuine parties ------------------------------------------------------

    /// A genuine transmission: on the air (and in the attacker's recording).
    pub fn transmit(&mut self, dir: Dir, frame: &[u8]) {
        self.transcript.push((dir, frame.to_vec()));
        self.in_flight.push_back((dir, frame.to_vec()));
    }

    /// The next frame in flight towards `dir`'s receiver.
    pub fn receive(&mut self, dir: Dir) -> Option<Vec<u8>> {
        let i = self.in_flight.iter().position(|(d, _)| *d == dir)?;
        self.in_flight.remove(i).map(|(_, f)| f)
    }

    /// Frames in flight towards `dir`'s receiver.
    pub fn pending(&self, dir: Dir) -> usize {
        self.in_flight.iter().filter(|(d, _)| *d == dir).count()
    }

    // ----- the attacker -------------------------------------------------------------

    /// Everything transmitted so far, in order.
    pub fn transcript(&self) -> &[(Dir, Vec<u8>)] {
        &self.transcript
    }

    /// The recorded frames that went `dir`.
    pub fn recorded(&self, dir: Dir) -> Vec<Vec<u8>> {
        self.transcript
            .iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Puts attacker-made bytes on the air (not part of the recording).
    pub fn inject(&mut self, dir: Dir, frame: &[u8]) {
        self.in_flight.push_back((dir, frame.to_vec()));
    }

    /// Replays recorded transmission `index` (of the whole transcript).
    pub fn replay(&mut self, index: usize) {
        let (dir, frame) = self.transcript[index].clone();
        self.inject(dir, &frame);
    }

    /// Removes the next frame towards `dir`'s receiver (it never arrives); returns it.
    pub fn drop_next(&mut self, dir: Dir) -> Option<Vec<u8>> {
        self.receive(dir)
    }

    /// Reverses the order of the frames in flight towards `dir`'s receiver.
    pub fn reorder(&mut self, dir: Dir) {
        let mut mine: Vec<Vec<u8>> = Vec::new();
        let mut rest = VecDeque::new();
        for (d, f) in self.in_flight.drain(..) {
            if d == dir {
                mine.push(f);
            } else {
                rest.push_back((d, f));
            }
        }
        mine.reverse();
        self.in_flight = rest;
        self.in_flight.extend(mine.into_iter().map(|f| (dir, f)));
    }

    /// Flips bit `bit` of byte `byte` of the next frame in flight towards `dir`'s
    /// receiver; returns whether there was such a byte.
    pub fn flip_bit(&mut self, dir: Dir, byte: usize, bit: u8) -> bool {
        let Some((_, f)) = self.in_flight.iter_mut().find(|(d, _)| *d == dir) else {
            return false;
        };
        match f.get_mut(byte) {
            Some(b) => {
                *b ^= 1 << (bit % 8);
                true
            }
            None => false,
        }
    }
}

#[test]
fn the_air_carries_records_and_tampers() {
    let mut air = Air::new();
    air.transmit(Dir::ToImplant, &[1, 2]);
    air.transmit(Dir::ToDevice, &[9]);
    air.transmit(Dir::ToImplant, &[3, 4]);
    air.reorder(Dir::ToImplant);
    assert!(air.flip_bit(Dir::ToImplant, 0, 0));
    assert!(!air.flip_bit(Dir::ToImplant, 5, 0));
    assert_eq!(air.receive(Dir::ToImplant), Some(std::vec![2, 4]));
    assert_eq!(air.drop_next(Dir::ToImplant), Some(std::vec![1, 2]));
    assert_eq!(air.receive(Dir::ToImplant), None);
    air.replay(0);
    assert_eq!(air.pending(Dir::ToImplant), 1);
    assert_eq!(air.recorded(Dir::ToDevice), std::vec![std::vec![9u8]]);
    assert_eq!(air.transcript().len(), 3);
}
