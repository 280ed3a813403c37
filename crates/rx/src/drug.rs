//! The drug library: every drug thecal knows, each limit with its source.
//!
//! The library is data. Hard limits (maximum concentration, maximum daily dose) reject a
//! prescription; soft limits (usual starting range, recommended maximum, cautious
//! titration) ask the clinician to confirm. A clinic may **tighten** any limit with
//! [`Library::tighten`], never loosen a hard one: the tightened value must be at or
//! below the library's own.
//!
//! Values marked `, check` at the end of their source were recalled from the literature rather
//! than read in a primary document (DOMAIN.md §4); they are kept as data with that
//! mark so that a reviewer can find and confirm them.
//!
//! Limits are looked up by [`DrugId`], a typed enum, never by an index.

use core::fmt;

use crate::quantity::{Concentration, Duration, MassRate};

/// The drugs thecal knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DrugId {
    /// Morphine (Infumorph).
    Morphine,
    /// Hydromorphone.
    Hydromorphone,
    /// Fentanyl.
    Fentanyl,
    /// Sufentanil.
    Sufentanil,
    /// Bupivacaine.
    Bupivacaine,
    /// Clonidine.
    Clonidine,
    /// Ziconotide (Prialt).
    Ziconotide,
    /// Baclofen (Lioresal Intrathecal, Gablofen).
    Baclofen,
    /// Preservative-free 0.9 % sodium chloride, a diluent and rinse.
    Saline,
}

impl DrugId {
    /// Every drug, in library order.
    pub const ALL: [DrugId; 9] = [
        DrugId::Morphine,
        DrugId::Hydromorphone,
        DrugId::Fentanyl,
        DrugId::Sufentanil,
        DrugId::Bupivacaine,
        DrugId::Clonidine,
        DrugId::Ziconotide,
        DrugId::Baclofen,
        DrugId::Saline,
    ];

    /// The lower-case generic name.
    pub const fn name(self) -> &'static str {
        match self {
            DrugId::Morphine => "morphine",
            DrugId::Hydromorphone => "hydromorphone",
            DrugId::Fentanyl => "fentanyl",
            DrugId::Sufentanil => "sufentanil",
            DrugId::Bupivacaine => "bupivacaine",
            DrugId::Clonidine => "clonidine",
            DrugId::Ziconotide => "ziconotide",
            DrugId::Baclofen => "baclofen",
            DrugId::Saline => "saline",
        }
    }

    /// Looks a drug up by generic name (case-insensitive).
    pub fn from_name(name: &str) -> Option<DrugId> {
        let name = name.trim();
        DrugId::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// The drug's pharmacological class.
    pub const fn class(self) -> DrugClass {
        match self {
            DrugId::Morphine | DrugId::Hydromorphone | DrugId::Fentanyl | DrugId::Sufentanil => {
                DrugClass::Opioid
            }
            DrugId::Bupivacaine => DrugClass::LocalAnaesthetic,
            DrugId::Clonidine => DrugClass::Alpha2Agonist,
            DrugId::Ziconotide => DrugClass::CalciumChannelBlocker,
            DrugId::Baclofen => DrugClass::GabaBAgonist,
            DrugId::Saline => DrugClass::Diluent,
        }
    }

    /// The library entry (unmodified by any clinic).
    pub const fn info(self) -> &'static DrugInfo {
        match self {
            DrugId::Morphine => &MORPHINE,
            DrugId::Hydromorphone => &HYDROMORPHONE,
            DrugId::Fentanyl => &FENTANYL,
            DrugId::Sufentanil => &SUFENTANIL,
            DrugId::Bupivacaine => &BUPIVACAINE,
            DrugId::Clonidine => &CLONIDINE,
            DrugId::Ziconotide => &ZICONOTIDE,
            DrugId::Baclofen => &BACLOFEN,
            DrugId::Saline => &SALINE,
        }
    }

    /// Whether stopping this drug abruptly is itself dangerous (baclofen withdrawal,
    /// DOMAIN.md §4), so that a stop needs an explicit warning.
    pub const fn withdrawal_dangerous(self) -> bool {
        matches!(self, DrugId::Baclofen | DrugId::Clonidine) || self.class().is_opioid()
    }

    /// What stopping this drug does, for the warning a clinician confirms before a stop
    /// and the reminder of a pump left without delivery, with its source; `None` for a
    /// drug whose stop needs no warning (bupivacaine, saline).
    pub const fn stop_warning(self) -> Option<Sourced<&'static str>> {
        Some(match self {
            DrugId::Baclofen => src(
                "abrupt discontinuation of intrathecal baclofen can cause high fever, altered \
                 mental status, rebound spasticity and muscle rigidity, progressing to \
                 rhabdomyolysis, multi-organ failure and death; restart delivery or bridge \
                 with oral or intrathecal baclofen at once",
                "Lioresal Intrathecal label, boxed warning, check",
            ),
            DrugId::Clonidine => src(
                "abrupt withdrawal of epidural or intrathecal clonidine can cause rebound \
                 hypertension, agitation and tachycardia; withdrawal can be life-threatening; \
                 taper, or bridge with oral clonidine",
                "Duraclon label, warnings, check",
            ),
            DrugId::Morphine | DrugId::Hydromorphone | DrugId::Fentanyl | DrugId::Sufentanil => {
                src(
                    "stopping an intrathecal opioid causes opioid withdrawal (pain, anxiety, \
                     sweating, diarrhoea, tachycardia) within hours; bridge with systemic \
                     opioids",
                    "Infumorph label; PACC 2017, check",
                )
            }
            DrugId::Ziconotide => src(
                "ziconotide may be stopped abruptly without withdrawal effects; the pain it \
                 controlled returns",
                "Prialt label, dosage and administration, check",
            ),
            DrugId::Bupivacaine | DrugId::Saline => return None,
        })
    }
}

impl fmt::Display for DrugId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Pharmacological class, for class-wide rules (e.g. opioid patient boluses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrugClass {
    /// Opioid agonists.
    Opioid,
    /// Local anaesthetics.
    LocalAnaesthetic,
    /// Alpha-2 adrenergic agonists.
    Alpha2Agonist,
    /// N-type calcium channel blockers.
    CalciumChannelBlocker,
    /// GABA-B agonists.
    GabaBAgonist,
    /// A diluent without drug.
    Diluent,
}

impl DrugClass {
    /// Whether this is an opioid.
    pub const fn is_opioid(self) -> bool {
        matches!(self, DrugClass::Opioid)
    }
}

/// A value with the document it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where the value comes from, e.g. `PACC 2017`; `(check)` marks a recalled value.
    pub source: &'static str,
}

const fn src<T>(value: T, source: &'static str) -> Sourced<T> {
    Sourced { value, source }
}

/// How large one dose increase may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Increase {
    /// At most this much more per day.
    Absolute(MassRate),
    /// At most this percentage of the previous daily dose.
    Percent(u8),
}

impl fmt::Display for Increase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Increase::Absolute(r) => write!(f, "{r}"),
            Increase::Percent(p) => write!(f, "{p} %"),
        }
    }
}

/// A titration rule: the largest increase per change and the shortest interval
/// between changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TitrationRule {
    /// Largest allowed increase per change.
    pub max_increase: Increase,
    /// Shortest time between two increases.
    pub min_interval: Duration,
    /// Where the rule comes from.
    pub source: &'static str,
}

/// Drug stability in the reservoir, which bounds the time between refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stability {
    /// First refill of a new pump (e.g. ziconotide adsorbs to a new reservoir).
    pub first_refill: Option<Duration>,
    /// Later refills, when the drug is diluted.
    pub diluted: Duration,
    /// Later refills, undiluted.
    pub undiluted: Duration,
    /// Where the figures come from.
    pub source: &'static str,
}

impl Stability {
    /// The longest allowed time until the next refill.
    pub const fn limit(&self, diluted: bool, first_refill_of_new_pump: bool) -> Duration {
        match (first_refill_of_new_pump, self.first_refill) {
            (true, Some(d)) => d,
            _ if diluted => self.diluted,
            _ => self.undiluted,
        }
    }
}

/// A drug's library entry.
///
/// **Hard** limits are label maxima or physical impossibilities only: a prescription
/// beyond one is refused. Guideline (PACC) maxima are **soft**: beyond one needs a
/// confirmed reason. A clinic may only tighten ([`Library::tighten`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrugInfo {
    /// Which drug.
    pub id: DrugId,
    /// Hard: highest concentration in the reservoir (label).
    pub max_concentration: Option<Sourced<Concentration>>,
    /// Hard: highest daily dose (label).
    pub max_daily_dose: Option<Sourced<MassRate>>,
    /// Soft: a concentration above this needs confirmation (guideline).
    pub recommended_max_concentration: Option<Sourced<Concentration>>,
    /// Soft: a daily dose above this needs confirmation.
    pub recommended_max_daily_dose: Option<Sourced<MassRate>>,
    /// Soft: the largest cut per step, percent of the previous daily dose, for drugs
    /// whose abrupt reduction risks withdrawal (baclofen, clonidine).
    pub max_decrease: Option<Sourced<u8>>,
    /// Soft: the usual starting daily dose range (low, high).
    pub usual_start: Option<Sourced<(MassRate, MassRate)>>,
    /// Hard titration rule (a label limit).
    pub titration_hard: Option<TitrationRule>,
    /// Soft titration rule (a guideline).
    pub titration_soft: Option<TitrationRule>,
    /// Stability between refills.
    pub stability: Option<Stability>,
    /// Approved for use in an implanted intrathecal pump (others are off-label).
    pub approved_for_pump: bool,
    /// Commercial strengths.
    pub strengths: &'static [Concentration],
}

const PACC: &str = "PACC 2017, check";

/// Morphine, bupivacaine and clonidine, alone or mixed: stable 90 days at 37 °C in a
/// SynchroMed reservoir (J Pain Symptom Manage 2004;28:603, CLINIC.md §5).
const STABLE_90_DAYS: Stability = Stability {
    first_refill: None,
    diluted: Duration::from_days(90),
    undiluted: Duration::from_days(90),
    source: "J Pain Symptom Manage 2004;28:603: morphine-bupivacaine-clonidine stable 90 days \
             at 37 °C in SynchroMed",
};
const GUIDE_STEP: &str = "usual practice: 10-30 % per change, once per 24 h, check";

const fn mcg_day(n: u32) -> MassRate {
    MassRate::from_mcg_per_day(n)
}
const fn mg_day(n: u32) -> MassRate {
    MassRate::from_mg_per_day(n)
}
const fn ng_day(n: u64) -> MassRate {
    MassRate::from_raw(n)
}
const fn mcg_ml(n: u32) -> Concentration {
    Concentration::from_mcg_per_ml(n)
}
const fn mg_ml(n: u32) -> Concentration {
    Concentration::from_mg_per_ml(n)
}

const PERCENT_30_DAILY: TitrationRule = TitrationRule {
    max_increase: Increase::Percent(30),
    min_interval: Duration::from_hours(24),
    source: GUIDE_STEP,
};

const fn with_stability(info: DrugInfo, stability: Stability) -> DrugInfo {
    DrugInfo {
        stability: Some(stability),
        ..info
    }
}

/// An opioid: the PACC maxima are guideline values, so soft; the only hard limit is a
/// labelled strength (morphine, Infumorph 25 mg/mL).
const fn opioid(
    id: DrugId,
    label_conc: Option<Sourced<Concentration>>,
    max_conc: Concentration,
    max_daily: MassRate,
    start: (MassRate, MassRate),
    approved: bool,
    strengths: &'static [Concentration],
) -> DrugInfo {
    DrugInfo {
        id,
        max_concentration: label_conc,
        max_daily_dose: None,
        recommended_max_concentration: Some(src(max_conc, PACC)),
        recommended_max_daily_dose: Some(src(max_daily, PACC)),
        max_decrease: None,
        usual_start: Some(src(start, PACC)),
        titration_hard: None,
        titration_soft: Some(PERCENT_30_DAILY),
        stability: None,
        approved_for_pump: approved,
        strengths,
    }
}

const MORPHINE: DrugInfo = with_stability(
    opioid(
        DrugId::Morphine,
        Some(src(
            mg_ml(25),
            "Infumorph label: 25 mg/mL, the strongest labelled strength",
        )),
        mg_ml(20),
        mg_day(15),
        (ng_day(100_000), ng_day(500_000)),
        true,
        &[mg_ml(10), mg_ml(25)],
    ),
    STABLE_90_DAYS,
);
const HYDROMORPHONE: DrugInfo = opioid(
    DrugId::Hydromorphone,
    None,
    mg_ml(15),
    mg_day(10),
    (ng_day(10_000), ng_day(150_000)),
    false,
    &[mg_ml(10)],
);
const FENTANYL: DrugInfo = opioid(
    DrugId::Fentanyl,
    None,
    mg_ml(10),
    mcg_day(1000),
    (mcg_day(25), mcg_day(75)),
    false,
    &[mcg_ml(50)],
);
const SUFENTANIL: DrugInfo = opioid(
    DrugId::Sufentanil,
    None,
    mg_ml(5),
    mcg_day(500),
    (mcg_day(10), mcg_day(20)),
    false,
    &[mcg_ml(50)],
);
const BUPIVACAINE: DrugInfo = DrugInfo {
    id: DrugId::Bupivacaine,
    max_concentration: None,
    max_daily_dose: None,
    recommended_max_concentration: Some(src(mg_ml(30), PACC)),
    recommended_max_daily_dose: Some(src(
        mg_day(15),
        "PACC 2017: 15-20 mg/day, lower bound, check",
    )),
    max_decrease: None,
    usual_start: Some(src((ng_day(10_000), mg_day(4)), PACC)),
    titration_hard: None,
    titration_soft: Some(PERCENT_30_DAILY),
    stability: Some(STABLE_90_DAYS),
    approved_for_pump: false,
    strengths: &[
        Concentration::from_raw(2_500_000),
        mg_ml(5),
        Concentration::from_raw(7_500_000),
    ],
};
const CLONIDINE: DrugInfo = DrugInfo {
    id: DrugId::Clonidine,
    max_concentration: None,
    max_daily_dose: None,
    recommended_max_concentration: Some(src(mcg_ml(1000), PACC)),
    recommended_max_daily_dose: Some(src(mcg_day(600), PACC)),
    max_decrease: Some(src(
        20,
        "check: abrupt clonidine withdrawal causes rebound hypertension; no public step \
         found, the baclofen step is used",
    )),
    usual_start: Some(src((mcg_day(20), mcg_day(100)), PACC)),
    titration_hard: None,
    titration_soft: Some(PERCENT_30_DAILY),
    stability: Some(STABLE_90_DAYS),
    approved_for_pump: false,
    strengths: &[mcg_ml(100), mcg_ml(500)],
};
const ZICONOTIDE: DrugInfo = DrugInfo {
    id: DrugId::Ziconotide,
    max_concentration: Some(src(mcg_ml(100), "Prialt label")),
    max_daily_dose: Some(src(ng_day(19_200), "Prialt label")),
    recommended_max_concentration: None,
    recommended_max_daily_dose: None,
    max_decrease: None,
    usual_start: Some(src((ng_day(500), ng_day(1_200)), "PACC 2017")),
    titration_hard: Some(TitrationRule {
        max_increase: Increase::Absolute(ng_day(2_400)),
        // "no more than 2-3 times per week": the more permissive three times a week.
        min_interval: Duration::from_hours(56),
        source: "Prialt label",
    }),
    titration_soft: Some(TitrationRule {
        max_increase: Increase::Absolute(ng_day(500)),
        min_interval: Duration::from_days(7),
        source: "PACC 2017",
    }),
    stability: Some(Stability {
        first_refill: Some(Duration::from_days(14)),
        diluted: Duration::from_days(40),
        undiluted: Duration::from_days(84),
        source: "Prialt label",
    }),
    approved_for_pump: true,
    strengths: &[mcg_ml(25), mcg_ml(100)],
};
const BACLOFEN: DrugInfo = DrugInfo {
    id: DrugId::Baclofen,
    max_concentration: Some(src(
        mcg_ml(2000),
        "Lioresal Intrathecal label: strongest ampoule",
    )),
    max_daily_dose: Some(src(
        mcg_day(2000),
        "Lioresal Intrathecal label: 12-2003 mcg/day studied, check",
    )),
    recommended_max_concentration: None,
    recommended_max_daily_dose: Some(src(
        mcg_day(1000),
        "Lioresal Intrathecal label: limited experience above 1000 mcg/day, check",
    )),
    max_decrease: Some(src(
        20,
        "Lioresal Intrathecal label via MSC: cuts of 10-20 % per step (CLINIC.md §2.3)",
    )),
    usual_start: Some(src(
        (mcg_day(100), mcg_day(200)),
        "label: twice the effective screening dose of 50-100 mcg",
    )),
    titration_hard: None,
    // The spinal rule; `check` applies the cerebral one unless the origin is spinal.
    titration_soft: Some(BACLOFEN_SPINAL),
    stability: None,
    approved_for_pump: true,
    strengths: &[mcg_ml(50), mcg_ml(500), mcg_ml(2000)],
};
const SALINE: DrugInfo = DrugInfo {
    id: DrugId::Saline,
    max_concentration: None,
    max_daily_dose: None,
    recommended_max_concentration: None,
    recommended_max_daily_dose: None,
    max_decrease: None,
    usual_start: None,
    titration_hard: None,
    titration_soft: None,
    stability: None,
    approved_for_pump: true,
    strengths: &[],
};

/// Baclofen titration after implant, spasticity of spinal origin: +10-30 % at most once
/// per 24 h (Lioresal Intrathecal label via MSC; CLINIC.md §2.3).
pub const BACLOFEN_SPINAL: TitrationRule = TitrationRule {
    max_increase: Increase::Percent(30),
    min_interval: Duration::from_hours(24),
    source: "Lioresal Intrathecal label, spinal origin: 10-30 % once per 24 h",
};

/// Baclofen titration after implant, spasticity of cerebral origin (and of unknown
/// origin, the stricter rule): +5-15 % at most once per 24 h (label via MSC).
pub const BACLOFEN_CEREBRAL: TitrationRule = TitrationRule {
    max_increase: Increase::Percent(15),
    min_interval: Duration::from_hours(24),
    source: "Lioresal Intrathecal label, cerebral origin: 5-15 % once per 24 h",
};

/// A limit a clinic may tighten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tightening {
    /// A lower maximum concentration.
    MaxConcentration(Concentration),
    /// A lower maximum daily dose.
    MaxDailyDose(MassRate),
}

/// Why a clinic limit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TightenError {
    /// The value is above the library's hard limit: a clinic may not loosen it.
    WouldLoosen {
        /// The drug.
        drug: DrugId,
        /// The library's hard limit, as text-ready quantity.
        limit: Tightening,
    },
    /// The drug has no such limit (saline).
    NoSuchLimit(DrugId),
}

impl core::error::Error for TightenError {}

impl fmt::Display for TightenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TightenError::WouldLoosen { drug, limit } => match limit {
                Tightening::MaxConcentration(c) => write!(
                    f,
                    "{drug}: a clinic limit may only tighten the hard maximum concentration of {c}"
                ),
                Tightening::MaxDailyDose(r) => write!(
                    f,
                    "{drug}: a clinic limit may only tighten the hard maximum daily dose of {r}"
                ),
            },
            TightenError::NoSuchLimit(drug) => write!(f, "{drug} has no dose limits to tighten"),
        }
    }
}

const CLINIC: &str = "clinic limit";

/// The effective library: the built-in entries with any clinic tightenings applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    entries: [DrugInfo; 9],
}

impl Default for Library {
    fn default() -> Self {
        Self::new()
    }
}

impl Library {
    /// The built-in library.
    pub const fn new() -> Self {
        Library {
            entries: [
                MORPHINE,
                HYDROMORPHONE,
                FENTANYL,
                SUFENTANIL,
                BUPIVACAINE,
                CLONIDINE,
                ZICONOTIDE,
                BACLOFEN,
                SALINE,
            ],
        }
    }

    /// The effective entry for `drug`.
    pub fn get(&self, drug: DrugId) -> &DrugInfo {
        self.entries
            .iter()
            .find(|e| e.id == drug)
            .unwrap_or(drug.info())
    }

    /// Tightens one limit of `drug`. The new value must be at or below the built-in
    /// hard limit; it replaces any earlier clinic value (which may itself be raised
    /// again, up to the built-in limit).
    ///
    /// # Errors
    /// [`TightenError::WouldLoosen`] above the built-in limit,
    /// [`TightenError::NoSuchLimit`] for a drug without that limit.
    pub fn tighten(&mut self, drug: DrugId, limit: Tightening) -> Result<(), TightenError> {
        let builtin = drug.info();
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.id == drug)
            .ok_or(TightenError::NoSuchLimit(drug))?;
        match limit {
            _ if drug == DrugId::Saline => return Err(TightenError::NoSuchLimit(drug)),
            Tightening::MaxConcentration(c) => {
                // Without a hard limit of its own any clinic value tightens.
                if let Some(hard) = builtin.max_concentration.filter(|h| c > h.value) {
                    return Err(TightenError::WouldLoosen {
                        drug,
                        limit: Tightening::MaxConcentration(hard.value),
                    });
                }
                entry.max_concentration = Some(src(c, CLINIC));
            }
            Tightening::MaxDailyDose(r) => {
                if let Some(hard) = builtin.max_daily_dose.filter(|h| r > h.value) {
                    return Err(TightenError::WouldLoosen {
                        drug,
                        limit: Tightening::MaxDailyDose(hard.value),
                    });
                }
                entry.max_daily_dose = Some(src(r, CLINIC));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn library_holds_pacc_and_label_limits_with_sources_rx_002() {
        let lib = Library::new();
        let m = lib.get(DrugId::Morphine);
        // PACC maxima are guideline values: soft. The hard limit is the label's strength.
        assert_eq!(
            m.recommended_max_daily_dose.unwrap().value,
            MassRate::from_mg_per_day(15)
        );
        assert!(
            m.recommended_max_daily_dose
                .unwrap()
                .source
                .contains("PACC 2017")
        );
        assert_eq!(m.max_daily_dose, None);
        assert_eq!(
            m.max_concentration.unwrap().value,
            Concentration::from_mg_per_ml(25)
        );
        let z = lib.get(DrugId::Ziconotide);
        assert_eq!(z.max_daily_dose.unwrap().value.to_string(), "19.2 mcg/day");
        assert_eq!(z.max_concentration.unwrap().value.to_string(), "100 mcg/mL");
        let stab = z.stability.unwrap();
        assert_eq!(stab.limit(false, true), Duration::from_days(14));
        assert_eq!(stab.limit(true, false), Duration::from_days(40));
        assert_eq!(stab.limit(false, false), Duration::from_days(84));
        assert_eq!(
            z.titration_hard.unwrap().max_increase,
            Increase::Absolute(MassRate::from_raw(2_400))
        );
        for d in DrugId::ALL {
            let info = lib.get(d);
            assert_eq!(info.id, d);
            if d != DrugId::Saline {
                assert!(
                    (info.max_concentration.is_some()
                        || info.recommended_max_concentration.is_some())
                        && (info.max_daily_dose.is_some()
                            || info.recommended_max_daily_dose.is_some()),
                    "{d}"
                );
                assert!(!info.strengths.is_empty(), "{d}");
            }
        }
        assert!(lib.get(DrugId::Baclofen).approved_for_pump);
        assert!(!lib.get(DrugId::Hydromorphone).approved_for_pump);
        assert_eq!(DrugId::from_name("Baclofen"), Some(DrugId::Baclofen));
        assert_eq!(DrugId::from_name("aspirin"), None);
    }

    #[test]
    fn clinic_may_tighten_but_never_loosen_rx_002() {
        let mut lib = Library::new();
        lib.tighten(
            DrugId::Morphine,
            Tightening::MaxDailyDose(MassRate::from_mg_per_day(10)),
        )
        .unwrap();
        assert_eq!(
            lib.get(DrugId::Morphine).max_daily_dose.unwrap().value,
            MassRate::from_mg_per_day(10)
        );
        let err = lib
            .tighten(
                DrugId::Baclofen,
                Tightening::MaxDailyDose(MassRate::from_mcg_per_day(2100)),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("hard maximum daily dose of 2 mg/day"),
            "{err}"
        );
        // Raising a clinic value back up to the built-in limit is allowed.
        lib.tighten(
            DrugId::Baclofen,
            Tightening::MaxDailyDose(MassRate::from_mcg_per_day(2000)),
        )
        .unwrap();
        let err = lib
            .tighten(
                DrugId::Ziconotide,
                Tightening::MaxConcentration(Concentration::from_mcg_per_ml(101)),
            )
            .unwrap_err();
        assert!(matches!(err, TightenError::WouldLoosen { .. }));
        assert_eq!(
            lib.tighten(DrugId::Saline, Tightening::MaxDailyDose(MassRate::ZERO)),
            Err(TightenError::NoSuchLimit(DrugId::Saline))
        );
    }
}
