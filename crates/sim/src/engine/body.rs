//! The patient's other drugs (SIM-070, SIM-071): one [`Patient`] per active drug of the
//! admixture besides the primary one, dosed with that drug's own mass out of the tip,
//! and the opioid tolerance a patient brings to the run.

use crate::truth::{FG_PER_NG, Femtograms, drug_slot};
use thecal_rx::Volume;
use thecal_rx::dose::{Admixture, MAX_DRUGS};
use thecal_rx::drug::DrugId;
use thecal_rx::quantity::MS_PER_DAY;

use super::Engine;
use crate::models::catheter::Routing;
use crate::models::patient::{Condition, Patient};

/// A patient model for each active drug of `contents` other than `primary`.
pub(super) fn companions(
    contents: &Admixture,
    primary: DrugId,
    condition: Condition,
) -> Vec<Patient> {
    contents
        .active()
        .filter(|c| c.drug != primary)
        .map(|c| Patient::new(c.drug, condition))
        .collect()
}

/// What of each companion's drug left the tip, split as the primary's (to the CSF, to
/// the tissue), ng.
pub(super) fn split(
    out: &Femtograms,
    companions: &[Patient],
    routing: &Routing,
    into: &mut [(f64, f64); MAX_DRUGS],
) {
    let pass = (1.0 - routing.blocked).max(1e-12);
    for (c, slot) in companions.iter().zip(into.iter_mut()) {
        let fg = out.get(drug_slot(c.drug)).copied().unwrap_or(0);
        let ng = fg as f64 / FG_PER_NG as f64;
        *slot = (ng * routing.to_csf / pass, ng * routing.to_tissue / pass);
    }
}

/// A refill error that puts `volume` of `contents` into the CSF (`to_csf`, the access
/// port) or the blood (a pocket fill): each companion gets its own drug.
pub(super) fn refill_error(
    companions: &mut [Patient],
    contents: &Admixture,
    volume: Volume,
    to_csf: bool,
) {
    for c in companions {
        let ng = contents.concentration_of(c.drug).raw() as f64 * volume.raw() as f64 / 1e6;
        if to_csf {
            c.dose_csf(ng);
        } else {
            c.dose_systemic(ng);
        }
    }
}

impl Engine<'_> {
    /// An opioid-tolerant patient comes to the run established on the first intended
    /// daily dose of each opioid (SIM-071); a naive one brings no tolerance.
    pub(super) fn set_tolerance(&mut self) {
        if self.patient.condition.opioid_naive {
            return;
        }
        let daily = self.dose_rates_ng_per_ms().1 * MS_PER_DAY as f64;
        let primary_c = self.contents.concentration_of(self.primary).raw() as f64;
        if self.patient.drug.class().is_opioid() {
            self.patient.set_opioid_tolerance(daily);
        }
        for c in &mut self.companions {
            if c.drug.class().is_opioid() && primary_c > 0.0 {
                let own = self.contents.concentration_of(c.drug).raw() as f64;
                c.set_opioid_tolerance(daily * own / primary_c);
            }
        }
    }
}
