//! Dose ↔ flow arithmetic and admixtures.
//!
//! `daily dose [ng/day] = concentration [ng/mL] × flow [nL/day] / 10⁶ [nL/mL]`, computed
//! exactly in 128 bits and rounded to nearest (ties up); the inverse likewise. A
//! round trip dose → flow → dose is therefore exact to within one nL/day of flow, that
//! is within `concentration / 10⁶` ng/day plus one ng/day.

use core::fmt;

use heapless::Vec;

use crate::drug::DrugId;
use crate::quantity::{
    Concentration, Flow, Mass, MassRate, NL_PER_ML, QuantityError, Rounding, Volume, mul_div,
};

/// Daily dose delivered by `flow` of fluid at `conc`.
///
/// # Errors
/// Overflow.
pub fn daily_dose(conc: Concentration, flow: Flow) -> Result<MassRate, QuantityError> {
    mul_div(conc.raw(), flow.raw(), NL_PER_ML, Rounding::Nearest).map(MassRate::from_raw)
}

/// Flow that delivers `dose` at `conc`.
///
/// # Errors
/// [`QuantityError::DivideByZero`] at zero concentration; overflow.
pub fn flow_for_dose(conc: Concentration, dose: MassRate) -> Result<Flow, QuantityError> {
    mul_div(dose.raw(), NL_PER_ML, conc.raw(), Rounding::Nearest).map(Flow::from_raw)
}

/// Drug mass in `volume` of fluid at `conc` (a bolus dose), rounded as asked.
///
/// # Errors
/// Overflow.
pub fn mass_in(
    conc: Concentration,
    volume: Volume,
    rounding: Rounding,
) -> Result<Mass, QuantityError> {
    mul_div(conc.raw(), volume.raw(), NL_PER_ML, rounding).map(Mass::from_raw)
}

/// Volume of fluid at `conc` that holds `mass`, rounded as asked.
///
/// # Errors
/// [`QuantityError::DivideByZero`] at zero concentration; overflow.
pub fn volume_for_mass(
    conc: Concentration,
    mass: Mass,
    rounding: Rounding,
) -> Result<Volume, QuantityError> {
    mul_div(mass.raw(), NL_PER_ML, conc.raw(), rounding).map(Volume::from_raw)
}

/// The most drugs one reservoir may hold.
pub const MAX_DRUGS: usize = 4;

/// One drug of a reservoir's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Component {
    /// The drug.
    pub drug: DrugId,
    /// Its concentration in the mixture.
    pub concentration: Concentration,
}

/// Why an admixture could not be formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmixtureError {
    /// More than [`MAX_DRUGS`] drugs.
    TooManyDrugs,
    /// The same drug twice.
    Duplicate(DrugId),
    /// No drug at all.
    Empty,
}

impl core::error::Error for AdmixtureError {}

impl fmt::Display for AdmixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdmixtureError::TooManyDrugs => {
                write!(f, "a reservoir holds at most {MAX_DRUGS} drugs")
            }
            AdmixtureError::Duplicate(d) => write!(f, "{d} is listed twice; list each drug once"),
            AdmixtureError::Empty => f.write_str("the reservoir contents name no drug"),
        }
    }
}

/// The contents of a reservoir: up to four drugs, each with its concentration. Saline
/// may stand alone (a rinse or a catheter fill) and is otherwise implied as diluent.
#[derive(Debug, Clone, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Admixture {
    components: Vec<Component, MAX_DRUGS>,
}

/// Equal when the components are equal, in order (as a derived comparison). Inline:
/// the pump compares the fluid of every stroke with its path's, nearly always one
/// drug against one.
impl PartialEq for Admixture {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        match (self.components.as_slice(), other.components.as_slice()) {
            ([a], [b]) => a == b,
            // The slice comparison spelled out: `a == b` here measured 4 instructions a
            // stroke slower in the seven-year run.
            (a, b) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y),
        }
    }
}

impl Admixture {
    /// A single drug.
    pub fn single(drug: DrugId, concentration: Concentration) -> Self {
        let mut components = Vec::new();
        // Cannot fail: capacity is MAX_DRUGS ≥ 1.
        let _ = components.push(Component {
            drug,
            concentration,
        });
        Admixture { components }
    }

    /// From components, refusing duplicates, emptiness and more than [`MAX_DRUGS`].
    ///
    /// # Errors
    /// See [`AdmixtureError`].
    pub fn new(parts: &[Component]) -> Result<Self, AdmixtureError> {
        if parts.is_empty() {
            return Err(AdmixtureError::Empty);
        }
        let mut components: Vec<Component, MAX_DRUGS> = Vec::new();
        for p in parts {
            if components.iter().any(|c| c.drug == p.drug) {
                return Err(AdmixtureError::Duplicate(p.drug));
            }
            components
                .push(*p)
                .map_err(|_| AdmixtureError::TooManyDrugs)?;
        }
        Ok(Admixture { components })
    }

    /// The components.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The concentration of `drug`, zero if absent.
    pub fn concentration_of(&self, drug: DrugId) -> Concentration {
        self.components
            .iter()
            .find(|c| c.drug == drug)
            .map_or(Concentration::ZERO, |c| c.concentration)
    }

    /// The active drugs (all but saline).
    pub fn active(&self) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(|c| c.drug != DrugId::Saline)
    }

    /// Each drug's daily dose at `flow`: every drug's dose follows the flow.
    ///
    /// # Errors
    /// Overflow.
    pub fn daily_doses(
        &self,
        flow: Flow,
    ) -> Result<Vec<(DrugId, MassRate), MAX_DRUGS>, QuantityError> {
        let mut out = Vec::new();
        for c in &self.components {
            let dose = daily_dose(c.concentration, flow)?;
            // Cannot fail: same capacity as `components`.
            let _ = out.push((c.drug, dose));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing
    )]
    use super::*;
    use proptest::prelude::*;

    fn conc(s: &str) -> Concentration {
        s.parse().unwrap()
    }
    fn flow(s: &str) -> Flow {
        s.parse().unwrap()
    }

    #[test]
    fn ziconotide_lowest_undiluted_dose_is_1_2_mcg_per_day_rx_003() {
        // DOMAIN.md §4: 0.048 mL/day × 25 mcg/mL = 1.2 mcg/day.
        let d = daily_dose(conc("25 mcg/mL"), flow("0.048 mL/day")).unwrap();
        assert_eq!(d.ng_per_day(), 1_200);
    }

    #[test]
    fn baclofen_500_mcg_per_day_at_2000_mcg_per_ml_is_0_25_ml_per_day_rx_003() {
        let f = flow_for_dose(conc("2000 mcg/mL"), "500 mcg/day".parse().unwrap()).unwrap();
        assert_eq!(f, flow("0.25 mL/day"));
        assert_eq!(
            flow_for_dose(Concentration::ZERO, MassRate::from_mcg_per_day(1)),
            Err(QuantityError::DivideByZero)
        );
    }

    #[test]
    fn bolus_mass_and_volume_rx_003() {
        // 20 uL of morphine 10 mg/mL = 0.2 mg.
        let m = mass_in(
            conc("10 mg/mL"),
            "20 uL".parse().unwrap(),
            Rounding::Nearest,
        )
        .unwrap();
        assert_eq!(m, "0.2 mg".parse().unwrap());
        let v = volume_for_mass(conc("10 mg/mL"), m, Rounding::Nearest).unwrap();
        assert_eq!(v, "20 uL".parse().unwrap());
    }

    #[test]
    fn admixture_doses_follow_the_flow_rx_004() {
        let mix = Admixture::new(&[
            Component {
                drug: DrugId::Morphine,
                concentration: conc("10 mg/mL"),
            },
            Component {
                drug: DrugId::Bupivacaine,
                concentration: conc("15 mg/mL"),
            },
        ])
        .unwrap();
        let doses = mix.daily_doses(flow("0.5 mL/day")).unwrap();
        assert_eq!(doses[0], (DrugId::Morphine, "5 mg/day".parse().unwrap()));
        assert_eq!(
            doses[1],
            (DrugId::Bupivacaine, "7.5 mg/day".parse().unwrap())
        );
        let five = [Component {
            drug: DrugId::Morphine,
            concentration: Concentration::ZERO,
        }; 1];
        assert_eq!(
            Admixture::new(&[five[0], five[0]]),
            Err(AdmixtureError::Duplicate(DrugId::Morphine))
        );
        let many: [Component; 5] = core::array::from_fn(|i| Component {
            drug: DrugId::ALL[i],
            concentration: Concentration::ZERO,
        });
        assert_eq!(Admixture::new(&many), Err(AdmixtureError::TooManyDrugs));
        assert_eq!(Admixture::new(&[]), Err(AdmixtureError::Empty));
    }

    proptest! {
        #[test]
        fn dose_rate_round_trip_within_one_rounding_unit_rx_003(
            conc_ng in 1u64..=100_000_000,
            dose_ng in 0u64..=100_000_000,
        ) {
            let c = Concentration::from_raw(conc_ng);
            let dose = MassRate::from_raw(dose_ng);
            let f = flow_for_dose(c, dose).unwrap();
            let back = daily_dose(c, f).unwrap();
            // One nL/day of flow carries conc/10⁶ ng/day; half of it from each rounding.
            let tolerance = conc_ng.div_ceil(1_000_000) + 1;
            prop_assert!(back.raw().abs_diff(dose_ng) <= tolerance,
                "{dose_ng} -> {} -> {}", f.raw(), back.raw());
        }

        /// Two admixtures are equal exactly when their lists of drugs and
        /// concentrations are, in order (the oracle: the lists as plain vectors).
        #[test]
        fn admixtures_are_equal_when_their_components_are_rx_004(
            a in proptest::collection::vec((0usize..3, 0u64..3), 1..=3),
            b in proptest::collection::vec((0usize..3, 0u64..3), 1..=3),
        ) {
            extern crate std;
            const DRUGS: [DrugId; 3] = [DrugId::Morphine, DrugId::Clonidine, DrugId::Baclofen];
            let build = |parts: &[(usize, u64)]| {
                let mut seen = std::vec::Vec::new();
                let mut out = std::vec::Vec::new();
                for &(d, c) in parts {
                    if !seen.contains(&d) {
                        seen.push(d);
                        out.push((d, c));
                    }
                }
                out
            };
            let (a, b) = (build(&a), build(&b));
            let mix = |parts: &[(usize, u64)]| {
                let comps: std::vec::Vec<Component> = parts
                    .iter()
                    .map(|&(d, c)| Component { drug: DRUGS[d], concentration: Concentration::from_raw(c) })
                    .collect();
                Admixture::new(&comps).unwrap()
            };
            prop_assert_eq!(mix(&a) == mix(&b), a == b);
            prop_assert!(mix(&a) == mix(&a));
        }
    }
}
