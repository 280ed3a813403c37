//! The pump's fluid path against an independent, exact model of the catheter
//! (PUMP-042): the simulator's true catheter, which keeps every stretch of fluid apart,
//! never merges different fluids and works masses out exactly in femtograms. Random
//! sequences of strokes, fills of other fluids (bridging), priming pushes, path refills
//! and catheter changes are played on both; while the fluid path has merged nothing, both
//! must hold the same stretches in the same order and agree on every drug delivered and
//! held to within the fluid path's documented rounding.

#![allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

#[allow(dead_code)]
#[path = "../../sim/src/truth.rs"]
mod truth;

use proptest::prelude::*;
use thecal_pump::fluid::{Contents, FluidPath, MAX_SEGMENTS};
use thecal_rx::dose::{Admixture, Component};
use thecal_rx::drug::DrugId;
use thecal_rx::{Concentration, Volume};
use truth::{FG_PER_NG, TrueCatheter};

fn one(drug: DrugId, conc: &str) -> Admixture {
    Admixture::single(drug, conc.parse().unwrap())
}

fn mix(parts: &[(DrugId, &str)]) -> Admixture {
    let parts: Vec<Component> = parts
        .iter()
        .map(|(drug, c)| Component {
            drug: *drug,
            concentration: c.parse().unwrap(),
        })
        .collect();
    Admixture::new(&parts).unwrap()
}

fn saline() -> Admixture {
    Admixture::single(DrugId::Saline, Concentration::ZERO)
}

/// Fluids of a clinic: saline, two baclofen strengths (bridging), admixtures (one
/// written in two orders: the same fluid), a low-concentration ziconotide.
fn palette() -> Vec<Admixture> {
    vec![
        saline(),
        one(DrugId::Baclofen, "500 mcg/mL"),
        one(DrugId::Baclofen, "2000 mcg/mL"),
        mix(&[
            (DrugId::Morphine, "10 mg/mL"),
            (DrugId::Bupivacaine, "15 mg/mL"),
        ]),
        mix(&[
            (DrugId::Bupivacaine, "15 mg/mL"),
            (DrugId::Morphine, "10 mg/mL"),
        ]),
        mix(&[
            (DrugId::Hydromorphone, "10 mg/mL"),
            (DrugId::Clonidine, "1 mg/mL"),
            (DrugId::Fentanyl, "50 mcg/mL"),
            (DrugId::Sufentanil, "50 mcg/mL"),
        ]),
        one(DrugId::Ziconotide, "25 mcg/mL"),
        one(DrugId::Baclofen, "0.5 mcg/mL"),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// A run of `n` strokes of `volume` of fluid `fluid`.
    Strokes { n: u32, volume: u64, fluid: usize },
    /// Pushes one volume of a fluid (a bolus, or fluid pushed beyond the dead volume).
    Push { volume: u64, fluid: usize },
    /// Pushes exactly until fluid `fluid` reaches the tip (priming).
    Prime { fluid: usize },
    /// The path aspirated and re-filled with a fluid.
    Refill { fluid: usize },
    /// A catheter change: the pump path kept, a new drug-free catheter.
    Catheter { pump_path: u64, catheter: u64 },
}

fn op(fluids: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u32..40, prop_oneof![Just(250u64), Just(500), 1u64..1_000], 0..fluids)
            .prop_map(|(n, volume, fluid)| Op::Strokes { n, volume, fluid }),
        2 => (prop_oneof![0u64..=2_000, 0u64..=2_000_000], 0..fluids)
            .prop_map(|(volume, fluid)| Op::Push { volume, fluid }),
        2 => (0..fluids).prop_map(|fluid| Op::Prime { fluid }),
        1 => (0..fluids).prop_map(|fluid| Op::Refill { fluid }),
        1 => (0u64..=300_000, 0u64..=500_000)
            .prop_map(|(pump_path, catheter)| Op::Catheter { pump_path, catheter }),
    ]
}

fn dead_volume() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..=1_000, 50_000u64..=600_000]
}

/// Both models, and what the fluid path has delivered so far.
struct Pair {
    fluid: FluidPath,
    truth: TrueCatheter,
    /// Nanograms the fluid path has delivered, per drug of [`DrugId::ALL`].
    delivered_ng: [u128; 9],
    /// A catheter change cut through a merged segment: the fluid path then removed a
    /// share of averaged fluid, so the delivered masses differ for good.
    blurred: bool,
    /// Pushes and runs so far (each may hold back or round at most 1 pg per segment).
    steps: u128,
}

impl Pair {
    fn new(dead: u64, fill: &Admixture) -> Self {
        let dead = Volume::from_nl(dead);
        Pair {
            fluid: FluidPath::new(dead, fill).unwrap(),
            truth: TrueCatheter::new(dead, fill),
            delivered_ng: [0; 9],
            blurred: false,
            steps: 0,
        }
    }

    fn merged(&self) -> bool {
        self.fluid
            .segments()
            .any(|s| matches!(s.contents(), Contents::Mixed))
    }

    fn push(&mut self, volume: u64, fluid: &Admixture) {
        let v = Volume::from_nl(volume);
        let out = self.fluid.push(v, fluid).unwrap();
        self.truth.push(v, fluid);
        for (i, d) in DrugId::ALL.iter().enumerate() {
            self.delivered_ng[i] += u128::from(out.mass_of(*d).raw());
        }
        self.steps += 1;
    }

    fn apply(&mut self, op: &Op, fluids: &[Admixture]) {
        match op {
            Op::Strokes { n, volume, fluid } => {
                for _ in 0..*n {
                    self.push(*volume, &fluids[*fluid]);
                }
            }
            Op::Push { volume, fluid } => self.push(*volume, &fluids[*fluid]),
            Op::Prime { fluid } => {
                let f = &fluids[*fluid];
                let ahead = self.fluid.volume_until(f);
                if !self.merged() {
                    assert_eq!(ahead, self.truth.volume_until(f), "priming volume of {f:?}");
                }
                self.push(ahead.nl(), f);
            }
            Op::Refill { fluid } => {
                self.fluid.refill_path(&fluids[*fluid]).unwrap();
                self.truth.refill(&fluids[*fluid]);
                self.steps += 1;
            }
            Op::Catheter {
                pump_path,
                catheter,
            } => {
                let (p, c) = (Volume::from_nl(*pump_path), Volume::from_nl(*catheter));
                let cuts = self.fluid.held_volume() > p;
                let full = self.fluid.segments().count() == MAX_SEGMENTS;
                if cuts && (self.merged() || full) {
                    self.blurred = true;
                }
                let a = self.fluid.replace_catheter(p, c);
                let b = self.truth.replace_catheter(p, c);
                assert_eq!(a, b, "volume removed with the old catheter");
                self.steps += 1;
            }
        }
    }

    /// The checks after every operation.
    fn check(&self, fluids: &[Admixture]) {
        assert_eq!(self.fluid.held_volume(), self.truth.dead_volume());
        if self.merged() || self.blurred {
            return;
        }
        // The same stretches of the same fluids, tip first (adjacent stretches of one
        // fluid counted as one).
        let mut ours: Vec<(u64, Admixture)> = Vec::new();
        for s in self.fluid.segments() {
            let Contents::Fluid(f) = s.contents() else {
                unreachable!("checked: nothing merged")
            };
            join(&mut ours, s.volume().nl(), f);
        }
        let mut theirs: Vec<(u64, Admixture)> = Vec::new();
        for (v, f) in self.truth.stretches() {
            join(&mut theirs, v.nl(), f);
        }
        assert_eq!(ours.len(), theirs.len(), "{ours:?}\n{theirs:?}");
        for ((va, fa), (vb, fb)) in ours.iter().zip(&theirs) {
            assert!(
                va == vb && same(fa, fb),
                "stretches differ:\nfluid path {ours:?}\ntruth {theirs:?}"
            );
        }
        for f in fluids {
            assert_eq!(self.fluid.volume_until(f), self.truth.volume_until(f));
        }
        // The fluid path rounds a run's mass in to the picogram (≤ 0.5 pg a run), takes
        // whole picograms rounded down (≤ 1 pg held back per segment a push) and carries
        // less than 1 ng at the tip: it may lag the truth by that much, never more, and
        // lead it by the run rounding only.
        let pg = 1_000u128;
        let lag = FG_PER_NG + pg * self.steps * (MAX_SEGMENTS as u128 + 1);
        let lead = pg * self.steps;
        for (i, d) in DrugId::ALL.iter().enumerate() {
            let ours = self.delivered_ng[i] * FG_PER_NG;
            let exact = self.truth.delivered_fg(*d);
            assert!(
                ours <= exact + lead && exact <= ours + lag,
                "{d}: the fluid path delivered {ours} fg, the truth {exact} fg"
            );
            let held = u128::from(self.fluid.mass_in_path(*d).raw()) * FG_PER_NG;
            let exact = self.truth.in_path_fg(*d);
            assert!(
                held.abs_diff(exact) <= lag,
                "{d}: the fluid path holds {held} fg, the truth {exact} fg"
            );
        }
    }
}

fn same(a: &Admixture, b: &Admixture) -> bool {
    a.components().len() == b.components().len()
        && a.components().iter().all(|c| b.components().contains(c))
}

fn join(list: &mut Vec<(u64, Admixture)>, v: u64, f: &Admixture) {
    if let Some((lv, lf)) = list.last_mut() {
        if same(lf, f) {
            *lv += v;
            return;
        }
    }
    list.push((v, f.clone()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Strokes, bridging to other fluids, priming, refills and catheter changes: the
    /// fluid path holds what the truth holds and delivers what it delivers (PUMP-042).
    #[test]
    fn the_fluid_path_agrees_with_the_exact_catheter_pump_042(
        dead in dead_volume(),
        fill in 0usize..8,
        ops in proptest::collection::vec(op(8), 1..40),
    ) {
        let fluids = palette();
        let mut pair = Pair::new(dead, &fluids[fill]);
        pair.check(&fluids);
        for o in &ops {
            pair.apply(o, &fluids);
            pair.check(&fluids);
        }
    }

    /// Many changes of fluid within one dead volume: the fluid path merges, the truth
    /// does not. Once the merged fluid has left the tip, both have delivered the same
    /// (PUMP-042, PUMP-013).
    #[test]
    fn merged_fluid_delivers_what_the_truth_delivers_once_it_has_left_pump_042(
        dead in 50_000u64..=300_000,
        strengths in proptest::collection::vec(1u64..=50_000_000, 17..40),
        stroke in 200u64..=1_000,
    ) {
        let fluids: Vec<Admixture> = strengths
            .iter()
            .map(|c| Admixture::single(DrugId::Baclofen, Concentration::from_raw(*c)))
            .collect();
        let mut pair = Pair::new(dead, &saline());
        for f in &fluids {
            pair.push(stroke, f);
        }
        prop_assert!(pair.merged());
        // Flush the whole path with the last fluid: everything merged has left.
        let last = fluids.last().unwrap();
        pair.push(dead, last);
        prop_assert!(!pair.merged());
        pair.check(std::slice::from_ref(last));
    }
}

/// A hand-worked case: 100 µL of baclofen 500 mcg/mL in the path, 2000 mcg/mL behind
/// it; 400 strokes of 250 nL deliver exactly the old 50 mcg, the next 4 strokes 500 ng
/// each × 4 = 2 mcg (PUMP-042).
#[test]
fn bridging_by_hand_pump_042() {
    let old = one(DrugId::Baclofen, "500 mcg/mL");
    let new = one(DrugId::Baclofen, "2000 mcg/mL");
    let mut pair = Pair::new(100_000, &old);
    for _ in 0..400 {
        pair.push(250, &new);
    }
    let b = DrugId::ALL
        .iter()
        .position(|d| *d == DrugId::Baclofen)
        .unwrap();
    assert_eq!(
        pair.truth.delivered_fg(DrugId::Baclofen),
        50_000 * FG_PER_NG
    );
    assert_eq!(pair.delivered_ng[b], 50_000);
    for _ in 0..4 {
        pair.push(250, &new);
    }
    assert_eq!(
        pair.truth.delivered_fg(DrugId::Baclofen),
        52_000 * FG_PER_NG
    );
    assert_eq!(pair.delivered_ng[b], 52_000);
    pair.check(&[old, new]);
}
