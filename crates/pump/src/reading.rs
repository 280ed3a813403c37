//! What a programmer reads of the therapy beyond the status (PUMP-039): the contents of
//! the fluid path, and the few settings a digital twin needs to run the core forward
//! from the implant's own state (the wall clock's local offset, the fill's beyond-use
//! instant, the bolus under way).
//!
//! **Owns** the reading's vocabulary ([`PathReading`], [`PathSegment`],
//! [`SegmentFluid`]) and its errors. It is bounded by construction: at most
//! [`MAX_SEGMENTS`] segments of at most [`MAX_DRUGS`] drugs each, so that its encoding
//! fits one telemetry frame (tested in thecal-link). **Must never** allocate, panic, or
//! report a path whose segments do not add up to the dead volume.
//!
//! A segment read from a [`crate::fluid::FluidPath`] is either one fill exactly as it
//! left the reservoir ([`SegmentFluid::Fluid`], which names its admixture: the pump
//! compares it with the reservoir's to know what lies ahead of the drug) or stretches
//! merged when the path ran out of segments ([`SegmentFluid::Mixed`], each drug at its
//! mean concentration, rounded to the nearest ng/mL: under 0.5 ng/mL of the truth).

use core::fmt;

use heapless::Vec;
use serde::{Deserialize, Serialize};
use thecal_rx::dose::{Admixture, MAX_DRUGS};
use thecal_rx::drug::DrugId;
use thecal_rx::{Concentration, Instant, Volume};

use crate::core::Bolus;
pub use crate::fluid::MAX_SEGMENTS;

/// What one stretch of the fluid path holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentFluid {
    /// One fill as it left the reservoir (saline or CSF when it has no active drug).
    Fluid(Admixture),
    /// Fluids merged when the path ran out of segments: each drug at its mean
    /// concentration over the segment (no entry: none of that drug).
    Mixed(Vec<(DrugId, Concentration), MAX_DRUGS>),
}

/// One stretch of the fluid path, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSegment {
    /// Its volume (never zero).
    pub volume: Volume,
    /// What it holds.
    pub fluid: SegmentFluid,
}

impl PathSegment {
    /// The concentration of `drug` in the segment (zero for saline, CSF or a drug it
    /// does not hold).
    pub fn concentration(&self, drug: DrugId) -> Concentration {
        match &self.fluid {
            SegmentFluid::Fluid(a) => a.concentration_of(drug),
            SegmentFluid::Mixed(drugs) => drugs
                .iter()
                .find(|(d, _)| *d == drug)
                .map_or(Concentration::ZERO, |(_, c)| *c),
        }
    }

    /// The segment holds no active drug (saline or CSF).
    pub fn is_drug_free(&self) -> bool {
        match &self.fluid {
            SegmentFluid::Fluid(a) => a.active().all(|c| c.concentration.is_zero()),
            SegmentFluid::Mixed(drugs) => drugs.iter().all(|(_, c)| c.is_zero()),
        }
    }
}

/// The fluid path and the settings a twin needs, read together at one instant
/// ([`crate::core::Pump::path_reading`]). Times are the pump's hardware time, as in
/// [`crate::command::Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathReading {
    /// The pump's time of the reading.
    pub now: Instant,
    /// The program version then (equal to the status's when nothing changed between
    /// the two reads).
    pub program_version: u32,
    /// The expected reservoir volume then (read with the path: the two change together
    /// at every stroke).
    pub reservoir: Volume,
    /// The dead volume: the segments add up to it.
    pub dead_volume: Volume,
    /// The segments, catheter tip first, pump end last.
    pub segments: Vec<PathSegment, MAX_SEGMENTS>,
    /// The wall clock's local offset from UTC, minutes; `None`: the clock is not set.
    pub offset_minutes: Option<i16>,
    /// When the fill in the reservoir passes its beyond-use date, if it has one.
    pub beyond_use: Option<Instant>,
    /// The bolus under way (its start in hardware time), if any.
    pub bolus: Option<Bolus>,
}

impl PathReading {
    /// The volume ahead of the first stretch of exactly `contents` (the whole dead
    /// volume when none of it is in the path): what must be pushed before that fill
    /// reaches the tip.
    pub fn volume_until(&self, contents: &Admixture) -> Volume {
        let mut ahead = Volume::ZERO;
        for s in &self.segments {
            if let SegmentFluid::Fluid(a) = &s.fluid {
                if crate::fluid::same_contents(a, contents) {
                    return ahead;
                }
            }
            ahead = ahead.saturating_add(s.volume);
        }
        self.dead_volume
    }
}

/// Why a path cannot be read, or a path reading cannot be turned back into a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingError {
    /// A merged segment holds more drugs than a reading carries.
    TooManyDrugs {
        /// The segment's index, tip first.
        segment: usize,
    },
    /// A segment of zero volume.
    EmptySegment {
        /// The segment's index, tip first.
        segment: usize,
    },
    /// More segments than a path holds.
    TooManySegments {
        /// How many.
        count: usize,
    },
    /// The segments do not add up to the dead volume.
    VolumeMismatch {
        /// Their sum.
        segments: Volume,
        /// The dead volume.
        dead_volume: Volume,
    },
    /// A segment would hold more drug than the path can count.
    MassOverflow {
        /// The segment's index, tip first.
        segment: usize,
    },
}

impl fmt::Display for ReadingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadingError::TooManyDrugs { segment } => write!(
                f,
                "fluid path segment {segment} holds more than {MAX_DRUGS} drugs; a reading \
                 carries at most {MAX_DRUGS} per segment"
            ),
            ReadingError::EmptySegment { segment } => write!(
                f,
                "fluid path segment {segment} has no volume; every segment holds some fluid"
            ),
            ReadingError::TooManySegments { count } => write!(
                f,
                "the fluid path has {count} segments; at most {MAX_SEGMENTS} are allowed"
            ),
            ReadingError::VolumeMismatch {
                segments,
                dead_volume,
            } => write!(
                f,
                "the fluid path segments add up to {segments}, not the dead volume \
                 {dead_volume}; they must add up to it exactly"
            ),
            ReadingError::MassOverflow { segment } => write!(
                f,
                "fluid path segment {segment} would hold more drug than can be counted"
            ),
        }
    }
}

impl core::error::Error for ReadingError {}
