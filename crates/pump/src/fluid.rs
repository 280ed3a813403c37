//! The fluid path (PUMP-013): what is in the pump's internal path and the catheter, and
//! so what reaches the patient (DESIGN.md principle 5: delivered dose is what reaches
//! the CSF).
//!
//! **Owns** the "dead volume" as a FIFO of [`Segment`]s, tip first, each with its volume,
//! its contents and the drug **mass** it holds per drug. Fluid already in the path
//! reaches the patient before any new fluid: a push of volume `v` adds `v` of the
//! incoming fluid at the pump end and takes `v` from the tip. This is what makes a
//! concentration change reach the patient one dead volume late (bridging) and a
//! saline-filled catheter deliver no drug until it is primed.
//!
//! **Must never** lose or create drug mass. Segments hold masses, not concentrations,
//! and every transfer is in whole nanograms:
//!
//! - *in*: a run of consecutive pushes of the same contents adds, per drug,
//!   `mass_in(c, run volume)` rounded to nearest **once for the whole run**: each push
//!   adds `mass_in(c, run + v) − mass_in(c, run)`. Rounding each push alone would let
//!   small strokes drift (1 nL strokes at 500 mcg/mL, 0.5 ng each, would count 1 ng
//!   each: double the truth). A run's first push adds exactly `mass_in(c, v)`.
//! - *out*: taking `v` of a segment of volume `V` and mass `M` takes `⌊M·v/V⌋`; the
//!   remainder stays in the segment and leaves with its last nanolitre.
//!
//! So mass in = mass out + mass in the path, exactly, per drug, forever; and the path
//! volume always equals the dead volume.
//!
//! **Capacity.** At most [`MAX_SEGMENTS`] segments. A push of the contents of the newest
//! segment extends it. When a new segment finds the path full, the two adjacent
//! segments with the smallest combined volume are merged: volumes and masses add (mass
//! is conserved), so their concentrations average by volume and the merged segment's
//! contents become [`Contents::Mixed`]. This blurs a concentration step by at most the
//! smaller pair's volume; it needs more than 16 changes of contents within one dead
//! volume, which a prescription does not make.
//!
//! # Size
//! `size_of::<FluidPath>()` is 3 176 bytes on a 64-bit host: 16 segments of 152 bytes
//! (an [`Admixture`] of up to four drugs, eight masses, a volume), the contents of the
//! current run, the dead volume, a prepared push and the common stroke's lane (neither
//! persisted). The whole state derives `serde`.
//!
//! # The common stroke
//! Nearly every stroke pushes the fluid already filling a path of one segment. While
//! the path has that shape, a lane (see `Lane`) keeps what such a stroke needs: the
//! drug's slot and the run's mass so far. A stroke then works out only the run's new
//! mass and its share of the segment, with the same arithmetic and the same errors as
//! any push; any other change of the path turns the lane off until a push leaves that
//! shape again. A property test holds the lane to plain pushes.

use core::fmt;

use heapless::{Deque, Vec};
use serde::{Deserialize, Serialize};
use thecal_rx::dose::{Admixture, Component};
use thecal_rx::drug::DrugId;
use thecal_rx::quantity::{NL_PER_ML, Rounding, mul_div, mul_div_inline};
use thecal_rx::seq::InPlace;
use thecal_rx::{Concentration, Mass, Volume};

use crate::reading::{PathSegment, ReadingError, SegmentFluid};

/// The most segments the path holds.
pub const MAX_SEGMENTS: usize = 16;

/// The number of active (non-saline) drugs in the library: the most a merged segment
/// or a [`TipDelivery`] can name.
pub const ACTIVE_DRUGS: usize = 8;

/// The active drugs, in library order: index `i` of a mass array is `ACTIVE[i]`.
const ACTIVE: [DrugId; ACTIVE_DRUGS] = [
    DrugId::Morphine,
    DrugId::Hydromorphone,
    DrugId::Fentanyl,
    DrugId::Sufentanil,
    DrugId::Bupivacaine,
    DrugId::Clonidine,
    DrugId::Ziconotide,
    DrugId::Baclofen,
];

/// Where `drug`'s mass is kept; `None` for saline, which carries no dose.
const fn active_index(drug: DrugId) -> Option<usize> {
    match drug {
        DrugId::Morphine => Some(0),
        DrugId::Hydromorphone => Some(1),
        DrugId::Fentanyl => Some(2),
        DrugId::Sufentanil => Some(3),
        DrugId::Bupivacaine => Some(4),
        DrugId::Clonidine => Some(5),
        DrugId::Ziconotide => Some(6),
        DrugId::Baclofen => Some(7),
        DrugId::Saline => None,
    }
}

/// Drug mass per active drug, indexed as [`ACTIVE`].
/// Per-drug masses inside the path, in **picograms**: a 250 nL stroke of ziconotide
/// 25 mcg/mL carries 6.25 ng, and whole-nanogram takes would hold back up to a few
/// percent of the path's drug. Masses leave the tip in whole nanograms with the
/// sub-nanogram remainder carried to the next push, so the tip total is exact over time.
type Masses = [Mass; ACTIVE_DRUGS];

/// Picograms per nanogram.
const PG_PER_NG: u64 = 1_000;

fn pg_to_ng(pg: Mass) -> Mass {
    pg.scale(1, PG_PER_NG, Rounding::Nearest)
        .unwrap_or(Mass::ZERO)
}

const NO_MASS: Masses = [Mass::ZERO; ACTIVE_DRUGS];

/// A set of mass slots (bit `i`: slot `i`, that is `ACTIVE[i]`). The mass loops visit
/// only the slots of such a set: a slot outside it holds zero everywhere it is used,
/// and zero in, zero out, so the result is that of visiting all eight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slots(u8);

impl Slots {
    const ALL: Slots = Slots(u8::MAX);

    /// The slots of `fluid`'s active drugs.
    fn of(fluid: &Admixture) -> Slots {
        let mut bits = 0u8;
        for c in fluid.active() {
            if let Some(i) = active_index(c.drug) {
                bits |= 1u8.checked_shl(u32::try_from(i).unwrap_or(0)).unwrap_or(0);
            }
        }
        Slots(bits)
    }

    /// The slots of `masses` that hold a mass.
    fn held(masses: &Masses) -> Slots {
        let mut bits = 0u8;
        for (i, m) in masses.iter().enumerate() {
            if !m.is_zero() {
                bits |= 1u8.checked_shl(u32::try_from(i).unwrap_or(0)).unwrap_or(0);
            }
        }
        Slots(bits)
    }

    const fn with(self, other: Slots) -> Slots {
        Slots(self.0 | other.0)
    }
}

/// The slots in increasing order (library order).
impl Iterator for Slots {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros();
        self.0 &= self.0.wrapping_sub(1);
        usize::try_from(i).ok()
    }
}

/// The slots that may hold a mass in a path's segments or carry: a superset kept as
/// the path changes (derived, not persisted: a restored path starts from all slots).
#[derive(Debug, Clone, Copy)]
struct Present(Slots);

impl Default for Present {
    fn default() -> Self {
        Present(Slots::ALL)
    }
}

/// Derived from the masses: two paths with the same segments are equal whatever this
/// holds.
impl PartialEq for Present {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Present {}

/// What a push could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluidError {
    /// A drug mass (entering, in the path or leaving) would not fit the 64-bit count.
    MassOverflow(DrugId),
    /// The volume of a run of pushes of one fluid would not fit the 64-bit count.
    VolumeOverflow,
}

impl fmt::Display for FluidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FluidError::MassOverflow(d) => write!(
                f,
                "{d}: this volume would carry more drug than can be counted (at most {}); \
                 push a smaller volume",
                Mass::MAX
            ),
            FluidError::VolumeOverflow => write!(
                f,
                "this volume is too large to count (at most {} of one fluid in a row); \
                 push a smaller volume",
                Volume::MAX
            ),
        }
    }
}

/// What a segment is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Contents {
    /// One fluid, exactly as it left the reservoir.
    Fluid(Admixture),
    /// Two or more fluids merged when the path ran out of segments; only the masses
    /// say what it holds.
    Mixed,
}

impl Contents {
    /// Whether this is exactly the fluid `fluid` (the same drugs at the same
    /// concentrations, in any order).
    pub fn is(&self, fluid: &Admixture) -> bool {
        match self {
            Contents::Fluid(own) => same_contents(own, fluid),
            Contents::Mixed => false,
        }
    }
}

/// A stretch of fluid in the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    volume: Volume,
    contents: Contents,
    masses: Masses,
}

impl Segment {
    /// The segment's volume (never zero).
    pub const fn volume(&self) -> Volume {
        self.volume
    }

    /// What the segment is made of.
    pub const fn contents(&self) -> &Contents {
        &self.contents
    }

    /// The mass of `drug` it holds (zero for saline).
    pub fn mass(&self, drug: DrugId) -> Mass {
        pg_to_ng(self.mass_pg(drug))
    }

    fn mass_pg(&self, drug: DrugId) -> Mass {
        active_index(drug)
            .and_then(|i| self.masses.get(i).copied())
            .unwrap_or(Mass::ZERO)
    }

    /// The concentration of `drug`: the prescribed one for a single fluid; for a mixed
    /// segment its mass over its volume, rounded to nearest.
    pub fn concentration(&self, drug: DrugId) -> Concentration {
        match &self.contents {
            Contents::Fluid(a) => a.concentration_of(drug),
            // ng/mL = pg / 1000 × 10⁶ nL/mL / nL = pg × 1000 / nL.
            Contents::Mixed => mul_div(
                self.mass_pg(drug).ng(),
                NL_PER_ML / PG_PER_NG,
                self.volume.nl(),
                Rounding::Nearest,
            )
            .map_or(Concentration::ZERO, Concentration::from_raw),
        }
    }

    /// Two adjacent segments as one: volumes and masses add.
    fn merged(self, newer: Segment) -> Segment {
        let contents = match (&self.contents, &newer.contents) {
            (Contents::Fluid(a), Contents::Fluid(b)) if same_contents(a, b) => self.contents,
            _ => Contents::Mixed,
        };
        Segment {
            // Cannot saturate: the sums are bounded by the path totals, which fit.
            volume: self.volume.saturating_add(newer.volume),
            contents,
            masses: add_saturating(&self.masses, &newer.masses),
        }
    }
}

/// What left the catheter tip during one push.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TipDelivery {
    volume: Volume,
    masses: Vec<(DrugId, Mass), ACTIVE_DRUGS>,
}

impl TipDelivery {
    /// Nothing delivered.
    const NONE: TipDelivery = TipDelivery {
        volume: Volume::ZERO,
        masses: Vec::new(),
    };

    /// Sets this to the whole nanograms out of `pg` plus the carried remainder `carry`,
    /// and `next` to the new carry.
    /// Only the slots of `slots` are visited: every other slot of `pg` and `carry` holds
    /// zero.
    fn fill(
        &mut self,
        volume: Volume,
        pg: &Masses,
        carry: &Masses,
        next: &mut Masses,
        slots: Slots,
    ) {
        self.volume = volume;
        self.masses.clear();
        *next = NO_MASS;
        for i in slots {
            let (Some(drug), Some(mass), Some(c), Some(n)) =
                (ACTIVE.get(i), pg.get(i), carry.get(i), next.get_mut(i))
            else {
                continue;
            };
            let total = mass.saturating_add(*c).raw();
            if total == 0 {
                continue;
            }
            let ng = total.checked_div(PG_PER_NG).unwrap_or(0);
            *n = Mass::from_raw(total.checked_rem(PG_PER_NG).unwrap_or(0));
            if ng != 0 {
                // Cannot fail: at most ACTIVE_DRUGS entries.
                let _ = self.masses.push((*drug, Mass::from_raw(ng)));
            }
        }
    }

    /// The volume that left the tip (the volume pushed).
    pub const fn volume(&self) -> Volume {
        self.volume
    }

    /// Each drug that left the tip with its mass, in library order; drugs with zero mass
    /// and saline are left out. This is what the limiter checks and records.
    pub fn masses(&self) -> &[(DrugId, Mass)] {
        &self.masses
    }

    /// The mass of `drug` that left the tip.
    pub fn mass_of(&self, drug: DrugId) -> Mass {
        self.masses
            .iter()
            .find(|(d, _)| *d == drug)
            .map_or(Mass::ZERO, |(_, m)| *m)
    }

    /// Whether no drug left the tip (saline, or nothing pushed).
    pub fn is_drug_free(&self) -> bool {
        self.masses.is_empty()
    }
}

/// What a zero push delivers.
static NO_DELIVERY: TipDelivery = TipDelivery::NONE;

/// The current run of pushes of one fluid, for rounding the run's mass once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Run {
    contents: Admixture,
    pushed: Volume,
}

/// A push worked out without changing anything. Worked out in place (see
/// [`plan_into`]): it is large, and a stroke plans one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    delivered: TipDelivery,
    /// The sub-nanogram remainders after this push.
    carry: Masses,
    /// Segments that leave whole, from the tip.
    whole: usize,
    /// Volume and masses taken from the segment after them.
    partial: Option<(Volume, Masses)>,
    /// The part of the new fluid that stays in the path, at the pump end.
    kept: Option<(Volume, Masses)>,
    /// The volume of the run of the pushed fluid after this push.
    pushed: Volume,
    /// Planned by [`plan_single`]: the push takes from the tip segment and adds to the
    /// newest one (which holds its fluid) in one slot only; `partial` and `kept` are
    /// then not used.
    single: Option<Single>,
}

/// What a push planned by [`plan_single`] takes and adds, in slot `slot`: the
/// volume pushed leaves the tip segment with `taken` and joins the newest with `added`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Single {
    slot: usize,
    volume: Volume,
    taken: Mass,
    added: Mass,
}

impl Plan {
    const EMPTY: Plan = Plan {
        delivered: TipDelivery::NONE,
        carry: NO_MASS,
        whole: 0,
        partial: None,
        kept: None,
        pushed: Volume::ZERO,
        single: None,
    };
}

/// The pump's internal fluid path plus the catheter. See the [module
/// documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FluidPath {
    dead_volume: Volume,
    /// Tip at the front, pump end at the back.
    /// Decoded in place, segment by segment, at a restore (see [`InPlace`]).
    segments: InPlace<Deque<Segment, MAX_SEGMENTS>>,
    run: Option<Run>,
    /// Sub-nanogram remainders (pg) not yet counted at the tip.
    carry: Masses,
    /// The slots that may hold a mass in the segments or the carry.
    #[serde(skip)]
    present: Present,
    /// A push worked out by [`FluidPath::prepare`], applied by [`FluidPath::commit`]
    /// unless the path changed in between. Not persisted: a restart plans anew.
    #[serde(skip)]
    prepared: Prepared,
    /// The common stroke's lane (see [`Lane`]).
    #[serde(skip)]
    lane: Lane,
}

/// A prepared push and what it was for; kept in place between strokes, and only
/// meaningful while `valid`.
#[derive(Debug, Clone)]
struct Prepared {
    valid: bool,
    volume: Volume,
    incoming: Admixture,
    plan: Plan,
    /// Planned on the lane (see [`Lane`]): the run's mass once it is applied.
    run_mass: Option<Mass>,
}

impl Default for Prepared {
    fn default() -> Self {
        Prepared {
            valid: false,
            volume: Volume::ZERO,
            incoming: Admixture::single(DrugId::Saline, Concentration::ZERO),
            plan: Plan::EMPTY,
            run_mass: None,
        }
    }
}

/// Two prepared pushes are equal when neither is valid, or both are for the same push.
impl PartialEq for Prepared {
    fn eq(&self, other: &Self) -> bool {
        match (self.valid, other.valid) {
            (false, false) => true,
            (true, true) => {
                self.volume == other.volume
                    && self.incoming == other.incoming
                    && self.plan == other.plan
            }
            _ => false,
        }
    }
}
impl Eq for Prepared {}

/// The common stroke's lane (not persisted): while `on`, the path is one segment of
/// one fluid, a single active drug in slot `slot`, that fluid's run is the current
/// one, its mass so far is `upto` (`mass_upto` of the run's volume), and no other slot
/// holds a mass in the segment or the carry. A stroke of that fluid then needs no
/// check of the path's shape and works out only the run's new mass; it is prepared
/// like any push (a plan of [`plan_single_drug`]'s kind in [`Prepared`]) and applied
/// to the one segment directly. Every change of the path other than a lane stroke turns
/// it off; [`FluidPath::arm_lane`] turns it on again after a push, when the path is of
/// that shape.
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    on: bool,
    slot: usize,
    upto: Mass,
}

/// Derived from the path: two paths with the same segments are equal whatever this
/// holds.
impl PartialEq for Lane {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Lane {}

impl FluidPath {
    /// A path of `dead_volume` full of `initial` (e.g. saline for a new catheter, or
    /// the drug for a primed one). A zero dead volume holds nothing: every push leaves
    /// at once.
    ///
    /// # Errors
    /// [`FluidError::MassOverflow`] when the dead volume would hold more drug than can
    /// be counted.
    pub fn new(dead_volume: Volume, initial: &Admixture) -> Result<Self, FluidError> {
        let mut path = FluidPath {
            dead_volume,
            segments: InPlace(Deque::new()),
            run: None,
            carry: NO_MASS,
            present: Present(Slots(0)),
            prepared: Prepared::default(),
            lane: Lane::default(),
        };
        path.refill_path(initial)?;
        Ok(path)
    }

    /// A path full of saline (no drug), as in a new catheter. Cannot fail: saline
    /// carries no mass that could overflow.
    pub fn saline(dead_volume: Volume) -> Self {
        let saline = Admixture::single(DrugId::Saline, Concentration::ZERO);
        let mut path = FluidPath {
            dead_volume,
            segments: InPlace(Deque::new()),
            run: None,
            carry: NO_MASS,
            present: Present(Slots(0)),
            prepared: Prepared::default(),
            lane: Lane::default(),
        };
        let _ = path.refill_path(&saline);
        path
    }

    /// No fluid and no dead volume: not a path to deliver through, only a place to make
    /// one in ([`FluidPath::reset_saline`]) without a whole path (2 KB) as a temporary
    /// on the stack.
    pub(crate) fn unfilled() -> Self {
        FluidPath {
            dead_volume: Volume::ZERO,
            segments: InPlace(Deque::new()),
            run: None,
            carry: NO_MASS,
            present: Present(Slots(0)),
            prepared: Prepared::default(),
            lane: Lane::default(),
        }
    }

    /// Makes this path, whatever it held, the path [`FluidPath::saline`] gives, in
    /// place: field by field, so that no whole path is a temporary on the stack.
    pub(crate) fn reset_saline(&mut self, dead_volume: Volume) {
        // Destructured without `..`: a field added to the path must be reset here too.
        let FluidPath {
            dead_volume: dv,
            segments,
            run,
            carry,
            present,
            prepared,
            lane,
        } = self;
        *dv = dead_volume;
        segments.clear();
        *run = None;
        *carry = NO_MASS;
        *present = Present(Slots(0));
        *prepared = Prepared::default();
        *lane = Lane::default();
        let _ = self.refill_path(&Admixture::single(DrugId::Saline, Concentration::ZERO));
    }

    /// The volume the segments hold (equal to the dead volume while intact).
    pub fn held_volume(&self) -> Volume {
        // Over the deque's two slices: cheaper than its iterator (checked on every wake).
        let (a, b) = self.segments.as_slices();
        if let ([only], []) = (a, b) {
            // The common path of one segment (the lane's).
            return only.volume;
        }
        a.iter()
            .chain(b)
            .fold(Volume::ZERO, |acc, s| acc.saturating_add(s.volume))
    }

    /// Replaces everything in the path with `contents` (a catheter revision, an
    /// aspiration and re-fill). The old fluid is gone, not delivered: read
    /// [`FluidPath::mass_in_path`] first to account for it.
    ///
    /// # Errors
    /// [`FluidError::MassOverflow`]; the path is then unchanged.
    pub fn refill_path(&mut self, contents: &Admixture) -> Result<(), FluidError> {
        let masses = added_mass(contents, Volume::ZERO, self.dead_volume)?;
        self.segments.clear();
        self.prepared.valid = false;
        self.lane = Lane::default();
        self.present = Present(Slots::of(contents).with(Slots::held(&self.carry)));
        if !self.dead_volume.is_zero() {
            // Cannot fail: the deque was just cleared.
            let _ = self.segments.push_back(Segment {
                volume: self.dead_volume,
                contents: Contents::Fluid(contents.clone()),
                masses,
            });
        }
        self.run = None;
        Ok(())
    }

    /// Replaces the catheter (recorded at implant, or revised): the fluid beyond the
    /// first `pump_path` from the pump end left with the old catheter (it was not
    /// delivered), and a new catheter of `catheter` full of saline or CSF (no drug) now
    /// lies between the pump path and the tip. The dead volume becomes the pump path's
    /// fluid plus `catheter`. Masses of a segment cut at the join are kept in proportion
    /// to the volume kept. Returns the volume that left with the old catheter.
    pub fn replace_catheter(&mut self, pump_path: Volume, catheter: Volume) -> Volume {
        let mut cut = self.dead_volume.saturating_sub(pump_path);
        let removed = cut;
        while !cut.is_zero() {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            if front.volume <= cut {
                cut = cut.saturating_sub(front.volume);
                self.segments.pop_front();
            } else {
                let keep = front.volume.saturating_sub(cut);
                let (num, den) = (keep.nl(), front.volume.nl());
                for m in &mut front.masses {
                    *m = m.scale(num, den, Rounding::Down).unwrap_or(Mass::ZERO);
                }
                front.volume = keep;
                cut = Volume::ZERO;
            }
        }
        if !catheter.is_zero() {
            if self.segments.is_full() {
                self.merge_all();
            }
            // Cannot fail: the deque has room (merged to one segment when it was full).
            let _ = self.segments.push_front(Segment {
                volume: catheter,
                contents: Contents::Fluid(Admixture::single(DrugId::Saline, Concentration::ZERO)),
                masses: NO_MASS,
            });
        }
        self.dead_volume = self.held_volume();
        self.run = None;
        self.prepared.valid = false;
        self.lane = Lane::default();
        removed
    }

    /// Merges every segment into one [`Contents::Mixed`] segment (the masses add up).
    fn merge_all(&mut self) {
        let mut volume = Volume::ZERO;
        let mut masses = NO_MASS;
        while let Some(s) = self.segments.pop_front() {
            volume = volume.saturating_add(s.volume);
            for (sum, m) in masses.iter_mut().zip(s.masses.iter()) {
                *sum = sum.saturating_add(*m);
            }
        }
        if !volume.is_zero() {
            // Cannot fail: the deque was just emptied.
            let _ = self.segments.push_back(Segment {
                volume,
                contents: Contents::Mixed,
                masses,
            });
        }
    }

    /// Pushes `volume` of `incoming` fluid in at the pump end; the same volume leaves at
    /// the tip, oldest fluid first.
    ///
    /// # Errors
    /// [`FluidError`] when a mass or volume would not fit its count; the path is then
    /// unchanged.
    pub fn push(
        &mut self,
        volume: Volume,
        incoming: &Admixture,
    ) -> Result<TipDelivery, FluidError> {
        self.prepared.valid = false;
        let Some(plan) = self.plan(volume, incoming)? else {
            return Ok(TipDelivery::default());
        };
        self.apply(&plan, incoming);
        self.arm_lane();
        Ok(plan.delivered)
    }

    /// Works out a push of `volume` of `incoming` (what it would deliver, as
    /// [`FluidPath::peek`]) and keeps it for [`FluidPath::commit`]: the firmware plans a
    /// stroke once when it issues it and applies it when the motor reports success.
    ///
    /// # Errors
    /// As [`FluidPath::push`].
    pub fn prepare(
        &mut self,
        volume: Volume,
        incoming: &Admixture,
    ) -> Result<TipDelivery, FluidError> {
        self.prepare_in_place(volume, incoming).cloned()
    }

    /// As [`FluidPath::prepare`], returning the delivery by reference: the plan is
    /// worked out where it is kept, without copying it.
    ///
    /// # Errors
    /// As [`FluidPath::push`].
    #[inline(always)]
    pub fn prepare_in_place(
        &mut self,
        volume: Volume,
        incoming: &Admixture,
    ) -> Result<&TipDelivery, FluidError> {
        if self.present.0 == Slots::ALL {
            self.present = Present(self.held_slots());
        }
        if let Some(done) = self.prepare_lane(volume, incoming) {
            return done.map(|()| &self.prepared.plan.delivered);
        }
        let p = &mut self.prepared;
        p.valid = false;
        p.run_mass = None;
        if !plan_into(
            &self.segments,
            self.run.as_ref(),
            &self.carry,
            self.present.0,
            volume,
            incoming,
            &mut p.plan,
        )? {
            return Ok(&NO_DELIVERY);
        }
        p.volume = volume;
        // Mostly the same fluid as the last stroke's: a comparison is cheaper than a copy.
        if p.incoming != *incoming {
            p.incoming.clone_from(incoming);
        }
        p.valid = true;
        Ok(&p.plan.delivered)
    }

    /// Applies the push prepared for exactly this volume and fluid (the same result as
    /// [`FluidPath::push`], without working it out again); pushes anew if nothing
    /// matching was prepared.
    ///
    /// # Errors
    /// As [`FluidPath::push`].
    pub fn commit(
        &mut self,
        volume: Volume,
        incoming: &Admixture,
    ) -> Result<TipDelivery, FluidError> {
        if self.take_prepared(volume, incoming) {
            Ok(self.prepared.plan.delivered.clone())
        } else {
            self.push(volume, incoming)
        }
    }

    /// As [`FluidPath::commit`], without returning the delivery (the caller already has
    /// it from [`FluidPath::prepare_in_place`]).
    ///
    /// # Errors
    /// As [`FluidPath::push`].
    #[inline(always)]
    pub fn commit_in_place(
        &mut self,
        volume: Volume,
        incoming: &Admixture,
    ) -> Result<(), FluidError> {
        if self.take_prepared(volume, incoming) {
            Ok(())
        } else {
            self.push(volume, incoming).map(|_| ())
        }
    }

    /// [`FluidPath::prepare_in_place`] on the lane (see [`Lane`]), or `None` when the
    /// lane is off, the fluid is not its fluid, or the push is not less than the
    /// segment. The plan of [`plan_single_drug`] for a path of one segment (its tip is
    /// its newest segment), with the errors in the same order.
    #[inline]
    fn prepare_lane(
        &mut self,
        volume: Volume,
        incoming: &Admixture,
    ) -> Option<Result<(), FluidError>> {
        if !self.lane.on {
            return None;
        }
        let (Some(front), Some(run)) = (self.segments.front(), self.run.as_ref()) else {
            return None;
        };
        let [c] = incoming.components() else {
            return None;
        };
        if volume.is_zero() || volume >= front.volume || run.contents != *incoming {
            return None;
        }
        let i = self.lane.slot;
        let overflow = FluidError::MassOverflow(c.drug);
        let p = &mut self.prepared;
        p.valid = false;
        let after = match run.pushed.checked_add(volume) {
            Ok(v) => v,
            Err(_) => return Some(Err(FluidError::VolumeOverflow)),
        };
        let upto_after = match mass_upto(c, after) {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        let added = upto_after.saturating_sub(self.lane.upto);
        let held = front.masses.get(i).copied().unwrap_or(Mass::ZERO);
        // The whole path is this segment: its mass is the drug's total.
        if !added.is_zero() && held.checked_add(added).is_err() {
            return Some(Err(overflow));
        }
        // The plan `plan_single_drug` makes of this push, which `apply_plan` would
        // apply as well; no other slot holds a carry on the lane.
        let carry = self.carry.get(i).copied().unwrap_or(Mass::ZERO);
        let single = Single {
            slot: i,
            volume,
            taken: Mass::ZERO,
            added,
        };
        write_single_plan(&mut p.plan, front, carry, c.drug, single, after);
        p.volume = volume;
        if p.incoming != *incoming {
            p.incoming.clone_from(incoming);
        }
        p.run_mass = Some(upto_after);
        p.valid = true;
        Some(Ok(()))
    }

    /// Turns the lane on when the path is of its shape (see [`Lane`]), else off.
    fn arm_lane(&mut self) {
        self.lane = Lane::default();
        let (Some(front), Some(run), 1) = (
            self.segments.front(),
            self.run.as_ref(),
            self.segments.len(),
        ) else {
            return;
        };
        let [c] = run.contents.components() else {
            return;
        };
        let Some(i) = active_index(c.drug) else {
            return;
        };
        if !front.contents.is(&run.contents) {
            return;
        }
        let others = |m: &Masses| m.iter().enumerate().any(|(k, x)| k != i && !x.is_zero());
        if others(&front.masses) || others(&self.carry) {
            return;
        }
        let Ok(upto) = mass_upto(c, run.pushed) else {
            return;
        };
        let bit = 1u8.checked_shl(u32::try_from(i).unwrap_or(0)).unwrap_or(0);
        self.present = Present(Slots(bit));
        self.lane = Lane {
            on: true,
            slot: i,
            upto,
        };
    }

    /// Applies the prepared push if it is for exactly this volume and fluid; whether
    /// it was. Either way nothing stays prepared.
    fn take_prepared(&mut self, volume: Volume, incoming: &Admixture) -> bool {
        let p = &mut self.prepared;
        if !p.valid || p.volume != volume || p.incoming != *incoming {
            p.valid = false;
            return false;
        }
        p.valid = false;
        if let (Some(upto), Some(single)) = (p.run_mass.take(), &p.plan.single) {
            // Planned on the lane: the one segment, tip and newest at once, keeps its
            // volume and changes its one slot's mass by what came in less what left.
            if let (Some(front), Some(run)) = (self.segments.front_mut(), self.run.as_mut()) {
                if let Some(m) = front.masses.get_mut(single.slot) {
                    // Cannot underflow or overflow: checked by the plan.
                    *m = m.saturating_sub(single.taken).saturating_add(single.added);
                }
                run.pushed = p.plan.pushed;
                // The lane holds no carry in any other slot.
                if let (Some(c), Some(n)) = (
                    self.carry.get_mut(single.slot),
                    p.plan.carry.get(single.slot),
                ) {
                    *c = *n;
                }
                self.lane.upto = upto;
                return true;
            }
        }
        apply_plan(
            &mut self.segments,
            &mut self.run,
            &mut self.carry,
            &mut self.present,
            &p.plan,
            incoming,
        );
        self.arm_lane();
        true
    }

    /// Forgets a prepared push (the stroke was vetoed or stalled).
    pub fn discard(&mut self) {
        self.prepared.valid = false;
    }

    fn apply(&mut self, plan: &Plan, incoming: &Admixture) {
        apply_plan(
            &mut self.segments,
            &mut self.run,
            &mut self.carry,
            &mut self.present,
            plan,
            incoming,
        );
    }

    /// What [`FluidPath::push`] would deliver, without changing anything.
    ///
    /// # Errors
    /// As [`FluidPath::push`].
    pub fn peek(&self, volume: Volume, incoming: &Admixture) -> Result<TipDelivery, FluidError> {
        Ok(self
            .plan(volume, incoming)?
            .map(|p| p.delivered)
            .unwrap_or_default())
    }

    /// The contents of the segment at the tip; `None` for a zero dead volume (the
    /// fluid at the tip is then whatever is pushed).
    pub fn tip_contents(&self) -> Option<&Contents> {
        self.segments.front().map(Segment::contents)
    }

    /// The concentration of `drug` at the tip (see [`Segment::concentration`]); zero for
    /// a zero dead volume.
    pub fn tip_concentration(&self, drug: DrugId) -> Concentration {
        self.segments
            .front()
            .map_or(Concentration::ZERO, |s| s.concentration(drug))
    }

    /// How much must be pushed before fluid with exactly `contents` reaches the tip:
    /// zero if it is at the tip, the whole dead volume if none of it is in the path.
    /// Fluid merged into a [`Contents::Mixed`] segment no longer counts as present.
    pub fn volume_until(&self, contents: &Admixture) -> Volume {
        let mut ahead = Volume::ZERO;
        for seg in &self.segments {
            if seg.contents.is(contents) {
                return ahead;
            }
            // Cannot saturate: the volumes add up to the dead volume.
            ahead = ahead.saturating_add(seg.volume);
        }
        self.dead_volume
    }

    /// A drug in the fluid ahead of the first stretch of exactly `contents` (what a
    /// priming bolus would push into the CSF at bolus speed); `None` when that fluid is
    /// drug-free (saline or CSF).
    pub fn drug_ahead_of(&self, contents: &Admixture) -> Option<DrugId> {
        for seg in &self.segments {
            if seg.contents.is(contents) {
                return None;
            }
            if let Some(i) = seg.masses.iter().position(|m| !m.is_zero()) {
                return ACTIVE.get(i).copied();
            }
        }
        None
    }

    /// The mass of `drug` in the whole path (zero for saline).
    pub fn mass_in_path(&self, drug: DrugId) -> Mass {
        active_index(drug).map_or(Mass::ZERO, |i| pg_to_ng(self.total(i)))
    }

    /// The segments, tip first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// The dead volume: pump path plus catheter. The segments always add up to it.
    pub const fn dead_volume(&self) -> Volume {
        self.dead_volume
    }

    /// Works out a push; `None` for a zero volume, which changes nothing.
    fn plan(&self, volume: Volume, incoming: &Admixture) -> Result<Option<Plan>, FluidError> {
        let mut plan = Plan::EMPTY;
        let planned = plan_into(
            &self.segments,
            self.run.as_ref(),
            &self.carry,
            self.present.0,
            volume,
            incoming,
            &mut plan,
        )?;
        Ok(planned.then_some(plan))
    }

    /// The slots that hold a mass in the segments or the carry.
    fn held_slots(&self) -> Slots {
        self.segments
            .iter()
            .fold(Slots::held(&self.carry), |s, seg| {
                s.with(Slots::held(&seg.masses))
            })
    }

    /// The total mass of active drug `i` in the path.
    fn total(&self, i: usize) -> Mass {
        total(&self.segments, i)
    }
}

/// Merges the two adjacent segments with the smallest combined volume (the tip-most
/// pair on a tie).
fn merge_smallest_pair(segments: &mut Deque<Segment, MAX_SEGMENTS>) {
    let mut best: Option<(usize, Volume)> = None;
    let pairs = segments.iter().zip(segments.iter().skip(1));
    for (i, (a, b)) in pairs.enumerate() {
        let combined = a.volume.saturating_add(b.volume);
        if best.is_none_or(|(_, v)| combined < v) {
            best = Some((i, combined));
        }
    }
    let Some((at, _)) = best else {
        return;
    };
    let mut rebuilt: Deque<Segment, MAX_SEGMENTS> = Deque::new();
    let mut held: Option<Segment> = None;
    let mut i = 0usize;
    while let Some(seg) = segments.pop_front() {
        let seg = match held.take() {
            Some(older) => older.merged(seg),
            None if i == at => {
                held = Some(seg);
                i = i.saturating_add(1);
                continue;
            }
            None => seg,
        };
        // Cannot fail: no more segments than before.
        let _ = rebuilt.push_back(seg);
        i = i.saturating_add(1);
    }
    *segments = rebuilt;
}

/// The total mass of active drug `i` in `segments`.
fn total(segments: &Deque<Segment, MAX_SEGMENTS>, i: usize) -> Mass {
    let (a, b) = segments.as_slices();
    a.iter()
        .chain(b)
        .filter_map(|s| s.masses.get(i))
        .fold(Mass::ZERO, |sum, m| sum.saturating_add(*m))
}

/// Works out a push of `volume` of `incoming` into the path made of `segments`, `run`
/// and `carry`, writing it into `plan`; `false` (and `plan` untouched) for a zero
/// volume, which changes nothing. On an error `plan` holds no meaningful push.
fn plan_into(
    segments: &Deque<Segment, MAX_SEGMENTS>,
    run: Option<&Run>,
    carry: &Masses,
    present: Slots,
    volume: Volume,
    incoming: &Admixture,
    plan: &mut Plan,
) -> Result<bool, FluidError> {
    if volume.is_zero() {
        return Ok(false);
    }
    if let Some(single) = plan_single(segments, run, carry, present, volume, incoming, plan) {
        return single.map(|()| true);
    }
    let before = match run {
        Some(run) if same_contents(&run.contents, incoming) => run.pushed,
        _ => Volume::ZERO,
    };
    let after = before
        .checked_add(volume)
        .map_err(|_| FluidError::VolumeOverflow)?;
    let added = added_mass(incoming, before, after)?;
    let incoming_slots = Slots::of(incoming);
    // Every slot that can hold a mass here: in the path, the carry or the new fluid.
    let slots = present.with(incoming_slots);
    // Every drug's total in the path stays countable, so no later sum can overflow.
    for i in incoming_slots {
        let (Some(drug), Some(mass)) = (ACTIVE.get(i), added.get(i)) else {
            continue;
        };
        if mass.is_zero() {
            continue; // nothing added: that drug's total cannot grow
        }
        total(segments, i)
            .checked_add(*mass)
            .map_err(|_| FluidError::MassOverflow(*drug))?;
    }

    let mut out = NO_MASS;
    let mut remaining = volume;
    let mut whole = 0usize;
    plan.partial = None;
    for seg in segments {
        if remaining.is_zero() {
            break;
        }
        // The first take is the sum so far: nothing to add it to.
        let first = whole == 0;
        if remaining >= seg.volume {
            out = if first {
                seg.masses
            } else {
                add_checked(&out, &seg.masses, slots)?
            };
            remaining = remaining.saturating_sub(seg.volume);
            whole = whole.saturating_add(1);
        } else {
            let taken = share(&seg.masses, remaining, seg.volume, slots);
            out = if first {
                taken
            } else {
                add_checked(&out, &taken, slots)?
            };
            plan.partial = Some((remaining, taken));
            remaining = Volume::ZERO;
        }
    }
    plan.whole = whole;
    // Pushing more than the dead volume: the excess of the new fluid leaves at once.
    let kept_volume = volume.saturating_sub(remaining);
    if remaining.is_zero() {
        // All of the new fluid stays (a zero share of it would leave).
        plan.kept = (!kept_volume.is_zero()).then_some((kept_volume, added));
    } else {
        let taken_new = share(&added, remaining, volume, slots);
        out = add_checked(&out, &taken_new, slots)?;
        plan.kept =
            (!kept_volume.is_zero()).then(|| (kept_volume, sub_saturating(&added, &taken_new)));
    }
    plan.delivered
        .fill(volume, &out, carry, &mut plan.carry, slots);
    plan.pushed = after;
    plan.single = None;
    Ok(true)
}

/// [`plan_into`] for the common push, or `None` when it is not one: a single drug
/// into a path that holds no other, continuing the run of that fluid, taken in by the
/// newest segment (of that fluid) and smaller than the tip segment. The same plan as
/// the general case, without its loops over segments and slots.
fn plan_single(
    segments: &Deque<Segment, MAX_SEGMENTS>,
    run: Option<&Run>,
    carry: &Masses,
    present: Slots,
    volume: Volume,
    incoming: &Admixture,
    plan: &mut Plan,
) -> Option<Result<(), FluidError>> {
    let [c] = incoming.components() else {
        return None;
    };
    let i = active_index(c.drug)?;
    let bit = 1u8.checked_shl(u32::try_from(i).ok()?)?;
    if present.0 & !bit != 0 {
        return None;
    }
    let run = run.filter(|r| same_contents(&r.contents, incoming))?;
    let front = segments.front()?;
    if volume >= front.volume || !segments.back()?.contents.is(incoming) {
        return None;
    }
    Some(plan_single_drug(segments, run, carry, i, c, volume, plan))
}

/// The arithmetic of [`plan_single`]: drug `c` in slot `i`, with the errors of the
/// general case in the same order.
fn plan_single_drug(
    segments: &Deque<Segment, MAX_SEGMENTS>,
    run: &Run,
    carry: &Masses,
    i: usize,
    c: &Component,
    volume: Volume,
    plan: &mut Plan,
) -> Result<(), FluidError> {
    let overflow = FluidError::MassOverflow(c.drug);
    let after = run
        .pushed
        .checked_add(volume)
        .map_err(|_| FluidError::VolumeOverflow)?;
    let added = mass_upto(c, after)?.saturating_sub(mass_upto(c, run.pushed)?);
    if !added.is_zero() {
        total(segments, i)
            .checked_add(added)
            .map_err(|_| overflow)?;
    }
    let (Some(front), Some(c_carry)) = (segments.front(), carry.get(i)) else {
        return Err(overflow); // cannot happen: checked by the caller
    };
    let single = Single {
        slot: i,
        volume,
        taken: Mass::ZERO,
        added,
    };
    write_single_plan(plan, front, *c_carry, c.drug, single, after);
    Ok(())
}

/// Writes the plan of a push that moves `single.volume` of `drug` (slot `single.slot`,
/// the only slot holding a mass) out of the tip segment `front` and adds `single.added`
/// to the newest segment, `carry` being that slot's sub-nanogram remainder and `after`
/// the run's volume once pushed. The share of the tip segment's mass that leaves
/// (`single.taken`) is worked out here: [`plan_single_drug`] and the lane
/// ([`FluidPath::prepare_in_place`]) plan alike.
#[inline(always)]
fn write_single_plan(
    plan: &mut Plan,
    front: &Segment,
    carry: Mass,
    drug: DrugId,
    single: Single,
    after: Volume,
) {
    let i = single.slot;
    let held = front.masses.get(i).copied().unwrap_or(Mass::ZERO);
    let taken = if held.is_zero() {
        Mass::ZERO
    } else {
        // `Mass::scale`, in line.
        mul_div_inline(
            held.raw(),
            single.volume.nl(),
            front.volume.nl(),
            Rounding::Down,
        )
        .map_or(Mass::ZERO, Mass::from_raw)
    };
    plan.whole = 0;
    plan.partial = None;
    plan.kept = None;
    // As `TipDelivery::fill` with only slot `i` holding a mass.
    let total = taken.saturating_add(carry).raw();
    plan.carry = NO_MASS;
    if let Some(n) = plan.carry.get_mut(i) {
        *n = Mass::from_raw(total.checked_rem(PG_PER_NG).unwrap_or(0));
    }
    let d = &mut plan.delivered;
    d.volume = single.volume;
    d.masses.clear();
    let ng = total.checked_div(PG_PER_NG).unwrap_or(0);
    if ng != 0 {
        // Cannot fail: at most ACTIVE_DRUGS entries, and this is the only one.
        let _ = d.masses.push((drug, Mass::from_raw(ng)));
    }
    plan.pushed = after;
    plan.single = Some(Single { taken, ..single });
}

/// Applies `plan` (worked out by [`plan_into`] for the same path) with `incoming`.
fn apply_plan(
    segments: &mut Deque<Segment, MAX_SEGMENTS>,
    run: &mut Option<Run>,
    carry: &mut Masses,
    present: &mut Present,
    plan: &Plan,
    incoming: &Admixture,
) {
    if let Some(single) = &plan.single {
        apply_single(segments, run, carry, present, plan, single);
        return;
    }
    // The plan's masses are within these slots (the carry, the segments, the new fluid).
    let slots = present.0.with(Slots::of(incoming));
    for _ in 0..plan.whole {
        let _ = segments.pop_front();
    }
    if let Some((taken_volume, taken)) = &plan.partial {
        if let Some(front) = segments.front_mut() {
            // Cannot underflow: the plan took less than the segment holds.
            front.volume = front.volume.saturating_sub(*taken_volume);
            front.masses = sub_saturating(&front.masses, taken);
        }
    }
    if let Some((kept_volume, kept)) = &plan.kept {
        append(segments, incoming, *kept_volume, kept);
    }
    // The new fluid's slots may now hold a mass in the path or the carry.
    present.0 = slots;
    match run {
        Some(r) if r.contents == *incoming => r.pushed = plan.pushed,
        _ => {
            *run = Some(Run {
                contents: incoming.clone(),
                pushed: plan.pushed,
            })
        }
    }
    *carry = plan.carry;
}

/// [`apply_plan`] for a plan of [`plan_single`]: the same changes, made to its one
/// slot.
fn apply_single(
    segments: &mut Deque<Segment, MAX_SEGMENTS>,
    run: &mut Option<Run>,
    carry: &mut Masses,
    present: &mut Present,
    plan: &Plan,
    single: &Single,
) {
    let i = single.slot;
    if let Some(front) = segments.front_mut() {
        // Cannot underflow: the plan took less than the segment holds.
        front.volume = front.volume.saturating_sub(single.volume);
        if let Some(m) = front.masses.get_mut(i) {
            *m = m.saturating_sub(single.taken);
        }
    }
    if let Some(back) = segments.back_mut() {
        // The newest segment holds the pushed fluid (checked by the plan).
        back.volume = back.volume.saturating_add(single.volume);
        if let Some(m) = back.masses.get_mut(i) {
            *m = m.saturating_add(single.added);
        }
    }
    // The run of the same fluid goes on (checked by the plan).
    if let Some(r) = run.as_mut() {
        r.pushed = plan.pushed;
    }
    *carry = plan.carry;
    present.0 = present.0.with(Slots(
        1u8.checked_shl(u32::try_from(i).unwrap_or(0)).unwrap_or(0),
    ));
}

/// Adds new fluid at the pump end, extending the newest segment if it is the same
/// fluid, merging two segments first if the path is full.
fn append(
    segments: &mut Deque<Segment, MAX_SEGMENTS>,
    incoming: &Admixture,
    volume: Volume,
    masses: &Masses,
) {
    if let Some(back) = segments.back_mut() {
        if back.contents.is(incoming) {
            // Cannot saturate: bounded by the dead volume and the checked totals.
            back.volume = back.volume.saturating_add(volume);
            back.masses = add_saturating(&back.masses, masses);
            return;
        }
    }
    if segments.is_full() {
        merge_smallest_pair(segments);
    }
    // Cannot fail: the merge made room.
    let _ = segments.push_back(Segment {
        volume,
        contents: Contents::Fluid(incoming.clone()),
        masses: *masses,
    });
}

/// Whether two admixtures hold the same drugs at the same concentrations, in any order.
pub(crate) fn same_contents(a: &Admixture, b: &Admixture) -> bool {
    a.components().len() == b.components().len()
        && a.components().iter().all(|c| b.components().contains(c))
}

/// The mass of drug `c` in the first `v` of a run, in picograms, rounded to nearest:
/// pg = ng/mL × nL / 10⁶ × 1000 = ng/mL × nL / 1000.
#[inline]
fn mass_upto(c: &Component, v: Volume) -> Result<Mass, FluidError> {
    mul_div_inline(
        c.concentration.raw(),
        v.raw(),
        NL_PER_ML / PG_PER_NG,
        Rounding::Nearest,
    )
    .map(Mass::from_raw)
    .map_err(|_| FluidError::MassOverflow(c.drug))
}

/// The mass a run of `fluid` adds between run volumes `before` and `after`:
/// `mass_in(c, after) − mass_in(c, before)` per drug, each rounded to nearest.
fn added_mass(fluid: &Admixture, before: Volume, after: Volume) -> Result<Masses, FluidError> {
    let mut masses = NO_MASS;
    for c in fluid.active() {
        // Rounding is monotonic, so the difference is never negative.
        let added = mass_upto(c, after)?.saturating_sub(mass_upto(c, before)?);
        if let Some(slot) = active_index(c.drug).and_then(|i| masses.get_mut(i)) {
            *slot = added;
        }
    }
    Ok(masses)
}

/// `⌊m · part / whole⌋` per drug: the share of a segment's mass that leaves with `part`
/// of its volume. Rounding down keeps the remainder in the path, so nothing is lost.
fn share(masses: &Masses, part: Volume, whole: Volume, slots: Slots) -> Masses {
    let mut out = NO_MASS;
    for i in slots {
        let (Some(o), Some(m)) = (out.get_mut(i), masses.get(i)) else {
            continue;
        };
        if m.is_zero() {
            continue; // most slots hold no drug: skip the 128-bit division
        }
        // part ≤ whole: cannot overflow. A zero `whole` only comes with a zero `part`,
        // and then nothing leaves.
        *o = m
            .scale(part.nl(), whole.nl(), Rounding::Down)
            .unwrap_or(Mass::ZERO);
    }
    out
}

fn add_checked(a: &Masses, b: &Masses, slots: Slots) -> Result<Masses, FluidError> {
    let mut out = NO_MASS;
    for i in slots {
        let (Some(o), Some(x), Some(y), Some(drug)) =
            (out.get_mut(i), a.get(i), b.get(i), ACTIVE.get(i).copied())
        else {
            continue;
        };
        *o = x
            .checked_add(*y)
            .map_err(|_| FluidError::MassOverflow(drug))?;
    }
    Ok(out)
}

fn add_saturating(a: &Masses, b: &Masses) -> Masses {
    let mut out = NO_MASS;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x.saturating_add(*y);
    }
    out
}

fn sub_saturating(a: &Masses, b: &Masses) -> Masses {
    let mut out = NO_MASS;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x.saturating_sub(*y);
    }
    out
}

impl FluidPath {
    /// The segments as a programmer reads them (PUMP-039), tip first: a single fill
    /// names its admixture, a merged segment each drug at its mean concentration.
    ///
    /// # Errors
    /// [`ReadingError::TooManyDrugs`] for a merged segment holding more drugs than a
    /// reading carries (the limiter counts at most that many in the path, so it does
    /// not happen while the pump is intact).
    pub fn read_segments(&self) -> Result<Vec<PathSegment, MAX_SEGMENTS>, ReadingError> {
        let mut out = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            let fluid = match &seg.contents {
                Contents::Fluid(a) => SegmentFluid::Fluid(a.clone()),
                Contents::Mixed => {
                    let mut drugs = Vec::new();
                    for drug in ACTIVE {
                        if seg.mass_pg(drug).is_zero() {
                            continue;
                        }
                        drugs
                            .push((drug, seg.concentration(drug)))
                            .map_err(|_| ReadingError::TooManyDrugs { segment: i })?;
                    }
                    SegmentFluid::Mixed(drugs)
                }
            };
            out.push(PathSegment {
                volume: seg.volume,
                fluid,
            })
            .map_err(|_| ReadingError::TooManySegments {
                count: self.segments.len(),
            })?;
        }
        Ok(out)
    }

    /// A path of `dead_volume` holding `segments`, tip first, as read by
    /// [`FluidPath::read_segments`] (a digital twin starts from it). A single fill's mass
    /// is what that fill carries in the segment's volume; a merged segment's is its
    /// concentration times its volume. Sub-nanogram remainders of the original are not
    /// read, so masses may differ from the implant's by under a nanogram per segment.
    ///
    /// # Errors
    /// A zero-volume segment, more than [`MAX_SEGMENTS`], segments that do not add up to
    /// `dead_volume`, or a mass that cannot be counted: each names what is wrong.
    pub fn from_segments(
        dead_volume: Volume,
        segments: &[PathSegment],
    ) -> Result<Self, ReadingError> {
        let mut path = FluidPath {
            dead_volume,
            segments: InPlace(Deque::new()),
            run: None,
            carry: NO_MASS,
            present: Present(Slots::ALL),
            prepared: Prepared::default(),
            lane: Lane::default(),
        };
        let mut sum = Volume::ZERO;
        for (i, s) in segments.iter().enumerate() {
            if s.volume.is_zero() {
                return Err(ReadingError::EmptySegment { segment: i });
            }
            sum = sum.saturating_add(s.volume);
            let overflow = |_| ReadingError::MassOverflow { segment: i };
            let (contents, masses) = match &s.fluid {
                SegmentFluid::Fluid(a) => (
                    Contents::Fluid(a.clone()),
                    added_mass(a, Volume::ZERO, s.volume).map_err(overflow)?,
                ),
                SegmentFluid::Mixed(drugs) => {
                    let mut masses = NO_MASS;
                    for (drug, c) in drugs {
                        let m = mass_upto(
                            &Component {
                                drug: *drug,
                                concentration: *c,
                            },
                            s.volume,
                        )
                        .map_err(overflow)?;
                        if let Some(slot) = active_index(*drug).and_then(|j| masses.get_mut(j)) {
                            *slot = slot.saturating_add(m);
                        }
                    }
                    (Contents::Mixed, masses)
                }
            };
            path.segments
                .push_back(Segment {
                    volume: s.volume,
                    contents,
                    masses,
                })
                .map_err(|_| ReadingError::TooManySegments {
                    count: segments.len(),
                })?;
        }
        if sum != dead_volume {
            return Err(ReadingError::VolumeMismatch {
                segments: sum,
                dead_volume,
            });
        }
        path.present = Present(path.held_slots());
        Ok(path)
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
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec::Vec as StdVec;
    use thecal_rx::dose::Component;

    fn ml(s: &str) -> Volume {
        s.parse().unwrap()
    }
    fn mass(s: &str) -> Mass {
        s.parse().unwrap()
    }
    fn one(drug: DrugId, conc: &str) -> Admixture {
        Admixture::single(drug, conc.parse().unwrap())
    }
    fn saline() -> Admixture {
        Admixture::single(DrugId::Saline, Concentration::ZERO)
    }
    fn mix(parts: &[(DrugId, &str)]) -> Admixture {
        let parts: StdVec<Component> = parts
            .iter()
            .map(|(drug, c)| Component {
                drug: *drug,
                concentration: c.parse().unwrap(),
            })
            .collect();
        Admixture::new(&parts).unwrap()
    }
    fn path_volume(p: &FluidPath) -> Volume {
        p.segments()
            .fold(Volume::ZERO, |v, s| v.checked_add(s.volume()).unwrap())
    }

    #[test]
    fn old_fluid_reaches_the_tip_before_a_new_concentration_pump_013() {
        let old = one(DrugId::Baclofen, "500 mcg/mL");
        let new = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut path = FluidPath::new(ml("0.2 mL"), &old).unwrap();
        assert_eq!(path.mass_in_path(DrugId::Baclofen), mass("100 mcg"));
        assert_eq!(path.volume_until(&new), ml("0.2 mL"));
        assert_eq!(path.volume_until(&old), Volume::ZERO);

        // Part way: 0.05 mL of old fluid leaves, 0.15 mL of it still to go.
        let mut partway = path.clone();
        let d = partway.push(ml("0.05 mL"), &new).unwrap();
        assert_eq!(d.masses(), &[(DrugId::Baclofen, mass("25 mcg"))]);
        assert_eq!(partway.volume_until(&new), ml("0.15 mL"));

        // One dead volume pushed: exactly the 100 mcg of old fluid leaves.
        let d = path.push(ml("0.2 mL"), &new).unwrap();
        assert_eq!(d.volume(), ml("0.2 mL"));
        assert_eq!(d.masses(), &[(DrugId::Baclofen, mass("100 mcg"))]);
        assert_eq!(path.volume_until(&new), Volume::ZERO);
        assert_eq!(
            path.tip_concentration(DrugId::Baclofen),
            "2000 mcg/mL".parse().unwrap()
        );
        assert_eq!(path.tip_contents(), Some(&Contents::Fluid(new.clone())));
        // Then the new concentration: 0.1 mL carries 200 mcg.
        let d = path.push(ml("0.1 mL"), &new).unwrap();
        assert_eq!(d.mass_of(DrugId::Baclofen), mass("200 mcg"));
        assert_eq!(path.segments().count(), 1);
        assert_eq!(path_volume(&path), ml("0.2 mL"));
    }

    #[test]
    fn a_saline_filled_catheter_delivers_no_drug_until_primed_pump_013() {
        let drug = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut path = FluidPath::new(ml("0.2 mL"), &saline()).unwrap();
        assert_eq!(path.mass_in_path(DrugId::Baclofen), Mass::ZERO);
        // Twenty strokes of 10 uL push the 0.2 mL of saline out: no drug at all.
        for stroke in 0..20 {
            let d = path.push(ml("0.01 mL"), &drug).unwrap();
            assert!(d.is_drug_free(), "stroke {stroke}: {d:?}");
            assert_eq!(d.volume(), ml("0.01 mL"));
        }
        assert_eq!(path.volume_until(&drug), Volume::ZERO);
        // The 21st delivers drug: 10 uL × 2000 mcg/mL = 20 mcg.
        let d = path.push(ml("0.01 mL"), &drug).unwrap();
        assert_eq!(d.masses(), &[(DrugId::Baclofen, mass("20 mcg"))]);
    }

    #[test]
    fn admixture_segments_carry_each_drug_pump_013() {
        let morphine = one(DrugId::Morphine, "10 mg/mL");
        let both = mix(&[
            (DrugId::Morphine, "10 mg/mL"),
            (DrugId::Bupivacaine, "15 mg/mL"),
        ]);
        let mut path = FluidPath::new(ml("0.1 mL"), &morphine).unwrap();
        // 0.1 mL of morphine alone (1 mg), then 0.05 mL of the admixture.
        let d = path.push(ml("0.15 mL"), &both).unwrap();
        assert_eq!(
            d.masses(),
            &[
                (DrugId::Morphine, mass("1.5 mg")),
                (DrugId::Bupivacaine, mass("0.75 mg")),
            ]
        );
        assert_eq!(path.mass_in_path(DrugId::Morphine), mass("1 mg"));
        assert_eq!(path.mass_in_path(DrugId::Bupivacaine), mass("1.5 mg"));
        // The same drugs listed in another order are the same fluid: one segment.
        let reordered = mix(&[
            (DrugId::Bupivacaine, "15 mg/mL"),
            (DrugId::Morphine, "10 mg/mL"),
        ]);
        path.push(ml("0.01 mL"), &reordered).unwrap();
        assert_eq!(path.segments().count(), 1);
        assert_eq!(path.volume_until(&reordered), Volume::ZERO);
        assert_eq!(path.mass_in_path(DrugId::Saline), Mass::ZERO);
    }

    #[test]
    fn merging_past_sixteen_segments_conserves_mass_pump_013() {
        let mut path = FluidPath::new(ml("1 mL"), &saline()).unwrap();
        let mut added = [0u64; 2];
        let mut delivered = [0u64; 2];
        let drugs = [DrugId::Baclofen, DrugId::Morphine];
        for i in 1..=40u32 {
            // Every push a different fluid, so every push would start a new segment.
            let fluid = if i % 2 == 0 {
                Admixture::single(DrugId::Baclofen, Concentration::from_mcg_per_ml(i * 100))
            } else {
                Admixture::single(
                    DrugId::Morphine,
                    Concentration::from_raw(333_333 * u64::from(i)),
                )
            };
            let v = Volume::from_nl(10_000 + u64::from(i) * 1_234);
            for c in fluid.components() {
                let j = drugs.iter().position(|d| *d == c.drug).unwrap();
                added[j] += thecal_rx::dose::mass_in(c.concentration, v, Rounding::Nearest)
                    .unwrap()
                    .ng();
            }
            let d = path.push(v, &fluid).unwrap();
            for (j, drug) in drugs.iter().enumerate() {
                delivered[j] += d.mass_of(*drug).ng();
            }
            assert!(path.segments().count() <= MAX_SEGMENTS);
            assert_eq!(path_volume(&path), ml("1 mL"));
        }
        assert_eq!(path.segments().count(), MAX_SEGMENTS);
        // Each push of a new fluid rounds its mass to the nearest ng here and to the
        // nearest pg inside the path: the balance holds to half an ng per push.
        for (j, drug) in drugs.iter().enumerate() {
            let out = delivered[j] + path.mass_in_path(*drug).ng();
            assert!(
                added[j].abs_diff(out) <= 1 + 40 / 2,
                "{drug}: {} vs {out}",
                added[j]
            );
        }
        // A merged segment reports its volume-averaged concentration.
        let merged = path
            .segments()
            .find(|s| *s.contents() == Contents::Mixed)
            .unwrap();
        let expected = mul_div(
            merged.mass(DrugId::Baclofen).ng(),
            NL_PER_ML,
            merged.volume().nl(),
            Rounding::Nearest,
        )
        .unwrap();
        assert_eq!(merged.concentration(DrugId::Baclofen).ng_per_ml(), expected);
    }

    #[test]
    fn a_catheter_replacement_keeps_the_pump_path_and_adds_a_drug_free_catheter_pump_037() {
        // Dead volume 200 uL: 130 uL of pump path and a 70 uL catheter, full of saline.
        let drug = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut path = FluidPath::saline(ml("0.2 mL"));
        // 180 uL of baclofen pushed in: tip first, 20 uL saline then 180 uL drug.
        path.push(ml("0.18 mL"), &drug).unwrap();
        assert_eq!(path.mass_in_path(DrugId::Baclofen), mass("360 mcg"));
        // The 70 uL catheter is replaced by a 119 uL one: the 20 uL of saline and 50 uL
        // of drug at the tip left with it; the pump path keeps 130 uL of drug (260 mcg).
        let removed = path.replace_catheter(ml("0.13 mL"), Volume::from_nl(119_000));
        assert_eq!(removed, ml("0.07 mL"));
        assert_eq!(path.dead_volume(), Volume::from_nl(249_000));
        assert_eq!(path.held_volume(), Volume::from_nl(249_000));
        assert_eq!(path.mass_in_path(DrugId::Baclofen), mass("260 mcg"));
        // The new catheter holds no drug: the drug reaches the tip after 119 uL.
        assert_eq!(path.volume_until(&drug), Volume::from_nl(119_000));
        assert_eq!(
            path.tip_concentration(DrugId::Baclofen),
            Concentration::ZERO
        );
        // A shorter catheter later: 130 uL pump path plus 50 uL.
        let removed = path.replace_catheter(ml("0.13 mL"), ml("0.05 mL"));
        assert_eq!(removed, Volume::from_nl(119_000));
        assert_eq!(path.dead_volume(), ml("0.18 mL"));
        assert_eq!(path.mass_in_path(DrugId::Baclofen), mass("260 mcg"));
    }

    #[test]
    fn a_catheter_replacement_on_a_full_path_merges_the_pump_path_pump_037() {
        // Fill every segment slot with alternating fluids, then replace the catheter:
        // no slot is freed by the cut, so the pump path merges and the masses add up.
        let a = one(DrugId::Baclofen, "2000 mcg/mL");
        let b = one(DrugId::Baclofen, "1000 mcg/mL");
        let mut path = FluidPath::saline(Volume::from_nl(16_000));
        for i in 0..16 {
            let f = if i % 2 == 0 { &a } else { &b };
            path.push(Volume::from_nl(1_000), f).unwrap();
        }
        assert_eq!(path.segments().count(), MAX_SEGMENTS);
        let before = path.mass_in_path(DrugId::Baclofen);
        // Cut 500 nL at the tip (half of a 2000 mcg/mL segment: 1 mcg).
        path.replace_catheter(Volume::from_nl(15_500), Volume::from_nl(4_000));
        assert_eq!(path.dead_volume(), Volume::from_nl(19_500));
        assert!(path.segments().count() <= MAX_SEGMENTS);
        assert_eq!(
            path.mass_in_path(DrugId::Baclofen).ng(),
            before.ng() - 1_000
        );
    }

    #[test]
    fn zero_dead_volume_delivers_every_push_at_once_pump_013() {
        let drug = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut path = FluidPath::new(Volume::ZERO, &saline()).unwrap();
        let d = path.push(ml("0.01 mL"), &drug).unwrap();
        assert_eq!(d.masses(), &[(DrugId::Baclofen, mass("20 mcg"))]);
        assert_eq!(path.segments().count(), 0);
        assert_eq!(path.tip_contents(), None);
        assert_eq!(path.volume_until(&drug), Volume::ZERO);
        assert_eq!(path.mass_in_path(DrugId::Baclofen), Mass::ZERO);
    }

    #[test]
    fn small_strokes_do_not_accumulate_rounding_pump_013() {
        // 500 mcg/mL is 0.5 ng per nL: ten 1-nL strokes carry 5 ng, not 10.
        let drug = one(DrugId::Baclofen, "500 mcg/mL");
        let mut path = FluidPath::new(Volume::ZERO, &saline()).unwrap();
        let got: StdVec<u64> = (0..10)
            .map(|_| {
                path.push(Volume::from_nl(1), &drug)
                    .unwrap()
                    .mass_of(DrugId::Baclofen)
                    .ng()
            })
            .collect();
        // Sub-nanogram remainders carry to the next stroke.
        assert_eq!(got, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn partial_takes_round_down_and_keep_the_remainder_pump_013() {
        // 3 nL at 333 334 ng/mL hold 1 ng (1.000002 rounded).
        let drug = Admixture::single(DrugId::Morphine, Concentration::from_raw(333_334));
        let mut path = FluidPath::new(Volume::from_nl(3), &drug).unwrap();
        assert_eq!(path.mass_in_path(DrugId::Morphine), Mass::from_raw(1));
        let out: StdVec<u64> = (0..3)
            .map(|_| {
                path.push(Volume::from_nl(1), &saline())
                    .unwrap()
                    .mass_of(DrugId::Morphine)
                    .ng()
            })
            .collect();
        // ⌊1·1/3⌋ = 0, ⌊1·1/2⌋ = 0, then the last nanolitre takes the remainder.
        assert_eq!(out, [0, 0, 1]);
        assert_eq!(path.mass_in_path(DrugId::Morphine), Mass::ZERO);
    }

    #[test]
    fn an_uncountable_push_is_refused_and_changes_nothing_pump_013() {
        let drug = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut path = FluidPath::new(ml("0.2 mL"), &saline()).unwrap();
        let before = path.clone();
        let err = path.push(Volume::MAX, &drug).unwrap_err();
        assert_eq!(err, FluidError::MassOverflow(DrugId::Baclofen));
        assert_eq!(path.peek(Volume::MAX, &drug), Err(err));
        assert_eq!(path, before);
        assert!(
            err.to_string()
                .starts_with("baclofen: this volume would carry more drug"),
            "{err}"
        );
        assert_eq!(
            FluidPath::new(Volume::MAX, &drug),
            Err(FluidError::MassOverflow(DrugId::Baclofen))
        );
        // A zero push changes nothing and delivers nothing.
        assert_eq!(path.push(Volume::ZERO, &drug), Ok(TipDelivery::default()));
        assert_eq!(path, before);
    }

    #[test]
    fn refilling_the_path_replaces_its_contents_pump_013() {
        let drug = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut path = FluidPath::new(ml("0.2 mL"), &saline()).unwrap();
        path.push(ml("0.1 mL"), &drug).unwrap();
        assert_eq!(path.segments().count(), 2);
        path.refill_path(&drug).unwrap();
        assert_eq!(path.segments().count(), 1);
        assert_eq!(path.mass_in_path(DrugId::Baclofen), mass("400 mcg"));
        assert_eq!(path.volume_until(&saline()), ml("0.2 mL"));
        assert_eq!(path.dead_volume(), ml("0.2 mL"));
    }

    #[test]
    fn the_state_survives_a_serde_round_trip_pump_013() {
        let mut path = FluidPath::new(ml("0.2 mL"), &saline()).unwrap();
        path.push(ml("0.05 mL"), &one(DrugId::Baclofen, "2000 mcg/mL"))
            .unwrap();
        path.push(
            ml("0.01 mL"),
            &mix(&[
                (DrugId::Morphine, "10 mg/mL"),
                (DrugId::Bupivacaine, "15 mg/mL"),
            ]),
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let bytes = postcard::to_slice(&path, &mut buf).unwrap();
        let back: FluidPath = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back, path);
        std::println!(
            "size_of::<FluidPath>() = {} bytes, size_of::<Segment>() = {} bytes; \
             postcard encoding {} bytes (3 segments)",
            core::mem::size_of::<FluidPath>(),
            core::mem::size_of::<Segment>(),
            bytes.len()
        );
    }

    fn palette() -> StdVec<Admixture> {
        std::vec![
            saline(),
            one(DrugId::Baclofen, "500 mcg/mL"),
            one(DrugId::Baclofen, "2000 mcg/mL"),
            mix(&[
                (DrugId::Morphine, "10 mg/mL"),
                (DrugId::Bupivacaine, "15 mg/mL"),
            ]),
            mix(&[
                (DrugId::Hydromorphone, "10 mg/mL"),
                (DrugId::Clonidine, "1 mg/mL"),
                (DrugId::Fentanyl, "50 mcg/mL"),
                (DrugId::Sufentanil, "50 mcg/mL"),
            ]),
            one(DrugId::Ziconotide, "25 mcg/mL"),
        ]
    }

    /// A palette entry, or a baclofen fluid of any concentration (to force merges).
    fn contents() -> impl Strategy<Value = Admixture> {
        prop_oneof![
            3 => (0usize..6).prop_map(|i| palette()[i].clone()),
            1 => (1u64..=50_000_000).prop_map(|c| Admixture::single(
                DrugId::Baclofen,
                Concentration::from_raw(c)
            )),
        ]
    }

    fn volume() -> impl Strategy<Value = Volume> {
        prop_oneof![
            2 => 0u64..=10,
            4 => 0u64..=20_000,
            2 => 0u64..=5_000_000,
            1 => 0u64..=1_000_000_000_000,
        ]
        .prop_map(Volume::from_nl)
    }

    #[test]
    fn a_prepared_push_commits_exactly_as_a_push_pump_013() {
        let old = one(DrugId::Baclofen, "500 mcg/mL");
        let new = one(DrugId::Baclofen, "2000 mcg/mL");
        let mut a = FluidPath::new(Volume::from_nl(200_000), &old).unwrap();
        let mut b = a.clone();
        for i in 0..2_000u64 {
            let v = Volume::from_nl(250 + i % 7);
            let peeked = a.prepare(v, &new).unwrap();
            assert_eq!(peeked, b.peek(v, &new).unwrap());
            assert_eq!(a.commit(v, &new).unwrap(), b.push(v, &new).unwrap());
        }
        assert_eq!(
            a.mass_in_path(DrugId::Baclofen),
            b.mass_in_path(DrugId::Baclofen)
        );
        // A commit for another volume or fluid, or after a change, pushes anew.
        let _ = a.prepare(Volume::from_nl(250), &new).unwrap();
        assert_eq!(
            a.commit(Volume::from_nl(300), &old).unwrap(),
            b.push(Volume::from_nl(300), &old).unwrap()
        );
        let _ = a.prepare(Volume::from_nl(250), &new).unwrap();
        a.discard();
        assert_eq!(
            a.commit(Volume::from_nl(250), &new).unwrap(),
            b.push(Volume::from_nl(250), &new).unwrap()
        );
    }

    /// What the strokes of the lane test do to a path.
    #[derive(Debug, Clone)]
    enum LaneOp {
        /// A stroke of `fluid`: prepared, then committed (`true`) or discarded.
        Stroke(Volume, usize, bool),
        /// A push without a prepare (a priming bolus, a replay).
        Push(Volume, usize),
        /// The path emptied and refilled with a fluid.
        Refill(usize),
        /// A catheter revision: the pump path kept, a new catheter.
        Catheter(u64, u64),
    }

    fn lane_op() -> impl Strategy<Value = LaneOp> {
        // Mostly strokes of one fluid, as a pump makes them: the lane's common case,
        // broken now and then by another fluid, a push, a refill or a revision.
        let fluid = prop_oneof![6 => Just(1usize), 1 => 0usize..6];
        prop_oneof![
            12 => (prop_oneof![4 => 200u64..=300, 1 => 1u64..=400_000], fluid, prop_oneof![5 => Just(true), 1 => Just(false)])
                .prop_map(|(v, f, c)| LaneOp::Stroke(Volume::from_nl(v), f, c)),
            1 => (1u64..=300_000, 0usize..6).prop_map(|(v, f)| LaneOp::Push(Volume::from_nl(v), f)),
            1 => (0usize..6).prop_map(LaneOp::Refill),
            1 => (0u64..=100_000, 0u64..=300_000).prop_map(|(a, b)| LaneOp::Catheter(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The common stroke's lane (a prepare and commit of the same fluid into a path
        /// of one segment) delivers and leaves exactly what a plain push does, over
        /// random strokes, discards, pushes, refills and catheter revisions: the push,
        /// planned without the lane, is the reference.
        #[test]
        fn strokes_on_the_lane_deliver_and_leave_what_a_push_does_pump_013(
            dead in prop_oneof![1u64..=1_000, 1_000u64..=400_000],
            ops in proptest::collection::vec(lane_op(), 1..300),
        ) {
            let fluids = palette();
            let mut laned = FluidPath::new(Volume::from_nl(dead), &fluids[1]).unwrap();
            let mut plain = laned.clone();
            for op in ops {
                match op {
                    LaneOp::Stroke(v, f, commit) => {
                        let prepared = laned.prepare(v, &fluids[f]);
                        prop_assert_eq!(&prepared, &plain.peek(v, &fluids[f]));
                        if commit && prepared.is_ok() {
                            prop_assert_eq!(laned.commit(v, &fluids[f]), plain.push(v, &fluids[f]));
                        } else {
                            laned.discard();
                        }
                    }
                    LaneOp::Push(v, f) => {
                        prop_assert_eq!(laned.push(v, &fluids[f]), plain.push(v, &fluids[f]));
                    }
                    LaneOp::Refill(f) => {
                        prop_assert_eq!(laned.refill_path(&fluids[f]), plain.refill_path(&fluids[f]));
                    }
                    LaneOp::Catheter(pump_path, catheter) => {
                        let (a, b) = (Volume::from_nl(pump_path), Volume::from_nl(catheter));
                        prop_assert_eq!(laned.replace_catheter(a, b), plain.replace_catheter(a, b));
                    }
                }
                prop_assert_eq!(&laned, &plain);
                prop_assert_eq!(laned.carry, plain.carry);
                prop_assert_eq!(&laned.run, &plain.run);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn mass_is_conserved_and_peek_matches_push_pump_013(
            dead in prop_oneof![Just(0u64), 1u64..=1_000, 1u64..=2_000_000],
            initial in contents(),
            steps in proptest::collection::vec((volume(), contents()), 1..120),
        ) {
            let dead = Volume::from_nl(dead);
            let mut path = FluidPath::new(dead, &initial).unwrap();
            // Reference accounting, in 128 bits: in (initial + pushed) and out.
            let mut mass_in_total = [0u128; ACTIVE_DRUGS];
            let mut mass_out = [0u128; ACTIVE_DRUGS];
            for c in initial.active() {
                let i = active_index(c.drug).unwrap();
                mass_in_total[i] = u128::from(mul_div(c.concentration.raw(), dead.nl(), 1000, Rounding::Nearest).unwrap());
            }
            let mut run: Option<(Admixture, u64)> = None;
            for (v, fluid) in steps {
                let peeked = path.peek(v, &fluid);
                let before = path.clone();
                let pushed = path.push(v, &fluid);
                prop_assert_eq!(&peeked, &pushed);
                let Ok(delivered) = pushed else {
                    prop_assert_eq!(&path, &before);
                    continue;
                };
                prop_assert_eq!(delivered.volume(), v);
                if !v.is_zero() {
                    // Mass in: the run of identical pushes is rounded once.
                    let start = match &run {
                        Some((a, pushed)) if *a == fluid => *pushed,
                        _ => 0,
                    };
                    let end = start + v.nl();
                    for c in fluid.active() {
                        // In picograms, as the path counts them.
                        let upto = |nl: u64| mul_div(c.concentration.raw(), nl, 1000, Rounding::Nearest).unwrap();
                        let i = active_index(c.drug).unwrap();
                        mass_in_total[i] += u128::from(upto(end) - upto(start));
                    }
                    run = Some((fluid.clone(), end));
                }
                for (drug, m) in delivered.masses() {
                    prop_assert!(!m.is_zero() && *drug != DrugId::Saline);
                    mass_out[active_index(*drug).unwrap()] += u128::from(m.ng()) * 1000;
                }
                for (i, d) in ACTIVE.iter().enumerate() {
                    // Exact in pg up to the carried remainder (< 1 ng) and the path
                    // total's rounding to ng (≤ 0.5 ng).
                    let in_path = u128::from(path.mass_in_path(*d).ng()) * 1000;
                    let balance = mass_in_total[i].abs_diff(mass_out[i] + in_path);
                    prop_assert!(balance <= 1500, "{}: {} vs {}", d, mass_in_total[i], mass_out[i] + in_path);
                }
                prop_assert_eq!(path_volume(&path), dead);
                prop_assert!(path.segments().count() <= MAX_SEGMENTS);
                prop_assert!(path.segments().all(|s| !s.volume().is_zero()));
            }
        }
    }
}
