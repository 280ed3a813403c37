//! The true catheter (SIM-062): what is physically in the pump's internal path and the
//! catheter, kept apart from the pump's own [`FluidPath`] so that a defect in the fluid
//! path cannot hide in the judge.
//!
//! The model is deliberately plain: the path is a queue of stretches of fluid, tip
//! first, each a whole number of nanolitres of one fluid exactly as it left the
//! reservoir. Drug masses are never stored, only worked out when fluid leaves: a
//! stretch of `n` nL of a fluid at `c` ng/mL carries exactly `c · n` femtograms
//! (ng/mL × nL = 10⁻⁶ ng), an integer, so nothing is rounded, nothing is carried and
//! nothing is averaged. Stretches of different fluids are never merged, however many
//! there are; adjacent stretches of the very same fluid are joined, which changes
//! nothing. A push of `v` leaves the tip oldest first and joins at the pump end.
//!
//! It shares no code with [`FluidPath`] (only the quantity types of `thecal-rx`): the
//! digital twin pushes true volumes through it for the dose that reaches the patient,
//! and the pump's test rig uses it as the oracle of every stroke's tip dose.
//!
//! [`FluidPath`]: https://docs.rs/thecal-pump (thecal_pump::fluid::FluidPath)

use std::collections::VecDeque;

use thecal_rx::dose::Admixture;
use thecal_rx::drug::DrugId;
use thecal_rx::{Mass, Volume};

/// Femtograms per nanogram.
pub const FG_PER_NG: u128 = 1_000_000;

/// The number of drugs in the library (saline included, which always carries zero).
const DRUGS: usize = DrugId::ALL.len();

/// Per-drug amounts in femtograms, indexed as [`DrugId::ALL`].
pub type Femtograms = [u128; DRUGS];

fn slot(drug: DrugId) -> usize {
    DrugId::ALL.iter().position(|d| *d == drug).unwrap_or(0)
}

/// Whether two fluids are the same drugs at the same concentrations, in any order.
fn same_fluid(a: &Admixture, b: &Admixture) -> bool {
    a.components().len() == b.components().len()
        && a.components().iter().all(|c| b.components().contains(c))
}

/// A stretch of one fluid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stretch {
    nl: u64,
    fluid: Admixture,
}

impl Stretch {
    /// Adds the drug in `nl` of this stretch's fluid to `into`, exactly.
    fn carry(&self, nl: u64, into: &mut Femtograms) {
        for c in self.fluid.active() {
            if let Some(m) = into.get_mut(slot(c.drug)) {
                *m = m.saturating_add(u128::from(c.concentration.raw()) * u128::from(nl));
            }
        }
    }
}

/// The true contents of the pump path and catheter. See the [module
/// documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrueCatheter {
    /// Tip first.
    stretches: VecDeque<Stretch>,
    dead_nl: u64,
    /// Everything that has left the tip since the start.
    delivered: Femtograms,
    /// Everything that left the body without reaching the CSF (a removed catheter's
    /// contents, a path aspirated and re-filled).
    removed: Femtograms,
}

impl TrueCatheter {
    /// A path of `dead` full of `fluid`.
    pub fn new(dead: Volume, fluid: &Admixture) -> Self {
        let mut t = TrueCatheter {
            stretches: VecDeque::new(),
            dead_nl: dead.raw(),
            delivered: [0; DRUGS],
            removed: [0; DRUGS],
        };
        t.join(dead.raw(), fluid);
        t
    }

    /// Joins `nl` of `fluid` at the pump end.
    fn join(&mut self, nl: u64, fluid: &Admixture) {
        if nl == 0 {
            return;
        }
        if let Some(back) = self.stretches.back_mut() {
            if same_fluid(&back.fluid, fluid) {
                back.nl = back.nl.saturating_add(nl);
                return;
            }
        }
        self.stretches.push_back(Stretch {
            nl,
            fluid: fluid.clone(),
        });
    }

    /// Takes `nl` from the tip, oldest first, adding its drug to `into`; returns what
    /// could not be taken (more than the path holds).
    fn take(&mut self, mut nl: u64, into: &mut Femtograms) -> u64 {
        while nl > 0 {
            let Some(front) = self.stretches.front_mut() else {
                break;
            };
            if front.nl <= nl {
                front.carry(front.nl, into);
                nl -= front.nl;
                self.stretches.pop_front();
            } else {
                front.carry(nl, into);
                front.nl -= nl;
                nl = 0;
            }
        }
        nl
    }

    /// Pushes `volume` of `fluid` in at the pump end; the same volume leaves at the tip,
    /// oldest fluid first (beyond the dead volume, the new fluid itself). Returns the
    /// drug that left the tip, per drug, in femtograms.
    pub fn push(&mut self, volume: Volume, fluid: &Admixture) -> Femtograms {
        let mut out = [0; DRUGS];
        let v = volume.raw();
        let beyond = self.take(v, &mut out);
        if beyond > 0 {
            // More than the path holds: the excess of the new fluid leaves at once.
            Stretch {
                nl: beyond,
                fluid: fluid.clone(),
            }
            .carry(beyond, &mut out);
        }
        self.join(v - beyond, fluid);
        for (d, o) in self.delivered.iter_mut().zip(out) {
            *d = d.saturating_add(o);
        }
        out
    }

    /// As [`TrueCatheter::push`], in whole nanograms: each drug's share of the
    /// cumulative delivered mass rounded down, so the whole nanograms of all pushes add
    /// up to the cumulative mass rounded down. Drugs with nothing are left out; library
    /// order.
    pub fn push_ng(&mut self, volume: Volume, fluid: &Admixture) -> Vec<(DrugId, Mass)> {
        let before = self.delivered;
        self.push(volume, fluid);
        DrugId::ALL
            .iter()
            .zip(before.iter().zip(self.delivered.iter()))
            .filter_map(|(d, (b, a))| {
                let ng = a / FG_PER_NG - b / FG_PER_NG;
                (ng > 0).then(|| (*d, Mass::from_raw(u64::try_from(ng).unwrap_or(u64::MAX))))
            })
            .collect()
    }

    /// Replaces everything in the path with `fluid` (aspirated and re-filled); the old
    /// contents are removed, not delivered.
    pub fn refill(&mut self, fluid: &Admixture) {
        let mut gone = [0; DRUGS];
        let dead = self.dead_nl;
        self.take(dead, &mut gone);
        self.add_removed(&gone);
        self.join(dead, fluid);
    }

    /// A new catheter: of the path, only the `pump_path` nearest the pump stays; the rest
    /// leaves with the old catheter (removed, not delivered), and `catheter` of drug-free
    /// fluid now lies between the pump path and the tip. Returns the volume removed.
    pub fn replace_catheter(&mut self, pump_path: Volume, catheter: Volume) -> Volume {
        let cut = self.dead_nl.saturating_sub(pump_path.raw());
        let mut gone = [0; DRUGS];
        self.take(cut, &mut gone);
        self.add_removed(&gone);
        if catheter.raw() > 0 {
            self.stretches.push_front(Stretch {
                nl: catheter.raw(),
                fluid: Admixture::single(DrugId::Saline, thecal_rx::Concentration::ZERO),
            });
        }
        self.dead_nl = self.stretches.iter().map(|s| s.nl).sum();
        Volume::from_raw(cut)
    }

    fn add_removed(&mut self, gone: &Femtograms) {
        for (r, g) in self.removed.iter_mut().zip(gone) {
            *r = r.saturating_add(*g);
        }
    }

    /// The volume the path holds.
    pub fn dead_volume(&self) -> Volume {
        Volume::from_raw(self.dead_nl)
    }

    /// Everything of `drug` that has left the tip, in femtograms.
    pub fn delivered_fg(&self, drug: DrugId) -> u128 {
        self.delivered.get(slot(drug)).copied().unwrap_or(0)
    }

    /// Everything of `drug` removed from the body without reaching the tip, in
    /// femtograms.
    pub fn removed_fg(&self, drug: DrugId) -> u128 {
        self.removed.get(slot(drug)).copied().unwrap_or(0)
    }

    /// The mass of `drug` in the path now, in femtograms.
    pub fn in_path_fg(&self, drug: DrugId) -> u128 {
        let mut all = [0; DRUGS];
        for s in &self.stretches {
            s.carry(s.nl, &mut all);
        }
        all.get(slot(drug)).copied().unwrap_or(0)
    }

    /// How much must be pushed before fluid with exactly `fluid` reaches the tip: zero
    /// if it is at the tip, the whole path if none is in it.
    pub fn volume_until(&self, fluid: &Admixture) -> Volume {
        let mut ahead = 0u64;
        for s in &self.stretches {
            if same_fluid(&s.fluid, fluid) {
                return Volume::from_raw(ahead);
            }
            ahead += s.nl;
        }
        Volume::from_raw(self.dead_nl)
    }

    /// The stretches, tip first: each volume and fluid.
    pub fn stretches(&self) -> impl Iterator<Item = (Volume, &Admixture)> {
        self.stretches
            .iter()
            .map(|s| (Volume::from_raw(s.nl), &s.fluid))
    }
}

/// The index of `drug` in a [`Femtograms`] array.
pub fn drug_slot(drug: DrugId) -> usize {
    slot(drug)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thecal_rx::Concentration;

    fn fluid(text: &str) -> Admixture {
        Admixture::single(DrugId::Baclofen, text.parse::<Concentration>().unwrap())
    }

    /// Worked by hand: a 100 µL path of 500 mcg/mL baclofen, then 2000 mcg/mL pushed in.
    /// 1 µL of 500 mcg/mL is 500 ng = 5 × 10⁸ fg. Pushing 150 µL delivers the 100 µL of old
    /// fluid (50,000 ng) and 50 µL of the new (100,000 ng): 150,000 ng in all, exactly; the
    /// path then holds 100 µL of the new fluid only (200,000 ng), never a blend.
    #[test]
    fn old_fluid_leaves_first_and_masses_are_exact_sim_062() {
        let old = fluid("500 mcg/mL");
        let new = fluid("2000 mcg/mL");
        let mut t = TrueCatheter::new("100 uL".parse().unwrap(), &old);
        let out = t.push("150 uL".parse().unwrap(), &new);
        let slot = drug_slot(DrugId::Baclofen);
        assert_eq!(out[slot], 150_000 * FG_PER_NG);
        assert_eq!(t.delivered_fg(DrugId::Baclofen), 150_000 * FG_PER_NG);
        assert_eq!(t.in_path_fg(DrugId::Baclofen), 200_000 * FG_PER_NG);
        let stretches: Vec<_> = t.stretches().collect();
        assert_eq!(stretches.len(), 1);
        assert_eq!(stretches[0].0, "100 uL".parse::<Volume>().unwrap());
        // A 1 nL push of 2000 mcg/mL carries 2 ng exactly, not a rounded share.
        let before = t.delivered_fg(DrugId::Baclofen);
        t.push(Volume::from_raw(1), &new);
        assert_eq!(t.delivered_fg(DrugId::Baclofen) - before, 2 * FG_PER_NG);
    }
}
