//! An in-memory air between devices (programmers, remotes) and the implant, for tests and
//! the simulator, with an attacker who records every genuine transmission and can replay,
//! inject, drop, reorder, delay and corrupt frames in flight.
//!
//! Frames travel in order, one queue per direction; nothing is lost unless the attacker
//! (or the test) drops it. Time is the caller's: a delayed frame is held until
//! [`Air::release_due`] is called at or after its time.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use thecal_rx::Instant;

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From a programmer or remote to the implant.
    ToImplant,
    /// From the implant to a programmer or remote.
    ToDevice,
}

/// Frames in flight, in order, and the attacker's recording of every genuine transmission.
#[derive(Debug, Default, Clone)]
pub struct Air {
    in_flight: VecDeque<(Dir, Vec<u8>)>,
    delayed: Vec<(Instant, Dir, Vec<u8>)>,
    transcript: Vec<(Dir, Vec<u8>)>,
}

impl Air {
    /// An empty air.
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

    /// Replays recorded transmission `index` (of the whole transcript); returns whether
    /// there was one.
    pub fn replay(&mut self, index: usize) -> bool {
        match self.transcript.get(index).cloned() {
            Some((dir, frame)) => {
                self.inject(dir, &frame);
                true
            }
            None => false,
        }
    }

    /// Removes the next frame towards `dir`'s receiver (it never arrives); returns it.
    pub fn drop_next(&mut self, dir: Dir) -> Option<Vec<u8>> {
        self.receive(dir)
    }

    /// Holds the next frame towards `dir`'s receiver until `until`; returns whether there
    /// was one.
    pub fn delay_next(&mut self, dir: Dir, until: Instant) -> bool {
        match self.receive(dir) {
            Some(f) => {
                self.delayed.push((until, dir, f));
                true
            }
            None => false,
        }
    }

    /// Puts every delayed frame whose time has come back in flight (in the order they
    /// were delayed); returns how many.
    pub fn release_due(&mut self, now: Instant) -> usize {
        let mut released = 0usize;
        let mut kept = Vec::new();
        for (t, dir, f) in self.delayed.drain(..) {
            if t <= now {
                self.in_flight.push_back((dir, f));
                released = released.saturating_add(1);
            } else {
                kept.push((t, dir, f));
            }
        }
        self.delayed = kept;
        released
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
                *b ^= 1u8.checked_shl(u32::from(bit % 8)).unwrap_or(1);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn the_air_carries_records_and_tampers() {
        let mut air = Air::new();
        air.transmit(Dir::ToImplant, &[1, 2]);
        air.transmit(Dir::ToDevice, &[9]);
        air.transmit(Dir::ToImplant, &[3, 4]);
        air.reorder(Dir::ToImplant);
        assert!(air.flip_bit(Dir::ToImplant, 0, 0));
        assert!(!air.flip_bit(Dir::ToImplant, 5, 0));
        assert_eq!(air.receive(Dir::ToImplant), Some(vec![2, 4]));
        assert_eq!(air.drop_next(Dir::ToImplant), Some(vec![1, 2]));
        assert_eq!(air.receive(Dir::ToImplant), None);
        assert!(air.replay(0));
        assert!(!air.replay(99));
        assert_eq!(air.pending(Dir::ToImplant), 1);
        assert_eq!(air.recorded(Dir::ToDevice), vec![vec![9u8]]);
        assert_eq!(air.transcript().len(), 3);
    }

    #[test]
    fn delayed_frames_arrive_when_released() {
        let mut air = Air::new();
        air.transmit(Dir::ToImplant, &[1]);
        air.transmit(Dir::ToImplant, &[2]);
        assert!(air.delay_next(Dir::ToImplant, Instant::from_ms(1_000)));
        assert_eq!(air.release_due(Instant::from_ms(999)), 0);
        assert_eq!(air.receive(Dir::ToImplant), Some(vec![2]));
        assert_eq!(air.receive(Dir::ToImplant), None);
        assert_eq!(air.release_due(Instant::from_ms(1_000)), 1);
        assert_eq!(air.receive(Dir::ToImplant), Some(vec![1]));
        assert!(!air.delay_next(Dir::ToDevice, Instant::ZERO));
    }
}
