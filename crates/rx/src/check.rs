//! The prescription check: one pure function, used by the clinician programmer before
//! it sends a prescription and by the implant before it accepts one.
//!
//! [`check`] returns **every** finding, not the first: a clinician fixing a
//! prescription should see all that is wrong at once. Each [`Finding`] has a
//! [`Severity`] — [`Severity::Hard`] rejects the prescription, [`Severity::Soft`] needs
//! an explicit clinician confirmation — and prints as a sentence a clinician can act
//! on, naming the value, the limit and the limit's source.
//!
//! Daily doses are judged on the **heaviest day** of the schedule (basal plus periodic
//! boluses), rounded up, and, for the patient bolus, by the predictive rule of
//! DOMAIN.md §7: the heaviest day plus every allowed patient bolus must stay within the
//! hard daily limit.

use core::fmt;

use heapless::Vec;

use crate::dose::{Admixture, mass_in};
use crate::drug::{BACLOFEN_CEREBRAL, BACLOFEN_SPINAL, DrugId, Increase, Library, TitrationRule};
use crate::quantity::{
    Concentration, Duration, Flow, MS_PER_DAY, Mass, MassRate, Rounding, Volume, mul_div,
};
use crate::schedule::Schedule;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Needs an explicit clinician confirmation.
    Soft,
    /// Rejects the prescription.
    Hard,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Soft => "soft",
            Severity::Hard => "hard",
        })
    }
}

/// The pump's physical limits relevant to a prescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeviceLimits {
    /// Reservoir capacity.
    pub capacity: Volume,
    /// Lowest programmable flow.
    pub min_flow: Flow,
    /// Highest flow (basal plus any bolus).
    pub max_flow: Flow,
}

impl DeviceLimits {
    /// A SynchroMed-class peristaltic pump of the given capacity: 0.048–24 mL/day
    /// (DOMAIN.md §2; the upper figure is marked "check" there).
    pub const fn synchromed_class(capacity: Volume) -> Self {
        DeviceLimits {
            capacity,
            min_flow: Flow::from_raw(48_000),
            max_flow: Flow::from_raw(24_000_000),
        }
    }
}

/// Patient-activated bolus settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PatientBolus {
    /// Volume of one bolus.
    pub volume: Volume,
    /// Time over which one bolus is delivered.
    pub duration: Duration,
    /// Shortest time between the starts of two boluses.
    pub lockout: Duration,
    /// Most boluses in any rolling 24 h.
    pub max_per_day: u8,
}

/// A prescription: what the reservoir holds and how it is delivered.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Prescription {
    /// Drugs and concentrations in the reservoir.
    pub contents: Admixture,
    /// Basal schedule and periodic boluses.
    pub schedule: Schedule,
    /// Patient bolus, if allowed.
    pub patient_bolus: Option<PatientBolus>,
    /// Volume in the reservoir after the fill.
    pub reservoir_volume: Volume,
}

impl Clone for Prescription {
    fn clone(&self) -> Self {
        Prescription {
            contents: self.contents.clone(),
            schedule: self.schedule.clone(),
            patient_bolus: self.patient_bolus,
            reservoir_volume: self.reservoir_volume,
        }
    }

    /// Copies `source` into this prescription in place (its schedule profile by
    /// profile): a pump installs a new program this way, without a whole prescription
    /// (3 KB) as a temporary on its stack.
    fn clone_from(&mut self, source: &Self) {
        self.contents.clone_from(&source.contents);
        self.schedule.clone_from(&source.schedule);
        self.patient_bolus = source.patient_bolus;
        self.reservoir_volume = source.reservoir_volume;
    }
}

impl Prescription {
    /// Saline with nothing scheduled: not a program to deliver, only a place to copy
    /// one into with [`Clone::clone_from`]. A pump makes its candidate programs this way,
    /// in place, rather than as a clone built aside and moved (a prescription is 3 KB,
    /// and a microcontroller's stack holds a few).
    pub fn placeholder() -> Self {
        Prescription {
            contents: Admixture::single(DrugId::Saline, Concentration::ZERO),
            schedule: Schedule::empty(),
            patient_bolus: None,
            reservoir_volume: Volume::ZERO,
        }
    }

    /// The heaviest day's dose of `drug` (basal plus periodic boluses), rounded up.
    pub fn max_daily_dose(&self, drug: DrugId) -> Option<MassRate> {
        let conc = self.contents.concentration_of(drug);
        let mass = mass_in(conc, self.schedule.max_day_total(), Rounding::Up).ok()?;
        Some(MassRate::from_raw(mass.raw()))
    }

    /// The dose of `drug` in one patient bolus, rounded up (zero without one).
    pub fn patient_bolus_dose(&self, drug: DrugId) -> Option<Mass> {
        let Some(pb) = self.patient_bolus else {
            return Some(Mass::ZERO);
        };
        mass_in(
            self.contents.concentration_of(drug),
            pb.volume,
            Rounding::Up,
        )
        .ok()
    }
}

/// The prescription in force before this one, for titration checks.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// The earlier prescription.
    pub prescription: &'a Prescription,
    /// How long ago its last dose change took effect.
    pub elapsed: Duration,
}

/// What a prescription is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The effective drug library (with clinic tightenings).
    pub library: &'a Library,
    /// The pump's limits.
    pub device: DeviceLimits,
    /// The prescription in force, if any.
    pub previous: Option<Previous<'a>>,
    /// The patient has not been taking opioids (patient-bolus opioids are riskier).
    pub opioid_naive: bool,
}

/// Where a patient's spasticity comes from: it sets the baclofen titration rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpasticityOrigin {
    /// Spinal cord injury, multiple sclerosis: +10-30 % per 24 h (label).
    Spinal,
    /// Cerebral palsy, brain injury: +5-15 % per 24 h (label).
    Cerebral,
    /// Not recorded: the stricter cerebral rule applies.
    #[default]
    Unknown,
}

impl SpasticityOrigin {
    /// `spinal`, `cerebral` or `unknown`.
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.trim();
        [
            ("spinal", Self::Spinal),
            ("cerebral", Self::Cerebral),
            ("unknown", Self::Unknown),
        ]
        .into_iter()
        .find(|(k, _)| n.eq_ignore_ascii_case(k))
        .map(|(_, v)| v)
    }
}

/// What the check knows about the patient beyond [`Context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Patient {
    /// Origin of the spasticity (baclofen).
    pub spasticity_origin: SpasticityOrigin,
    /// The opioid the patient takes before intrathecal therapy starts: drug, route and
    /// daily dose (judged by [`crate::convert`]).
    pub prior_opioid: Option<(DrugId, crate::convert::Route, MassRate)>,
}

/// One thing wrong with a prescription, typed, with the values involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issue {
    /// Concentration above the drug's hard maximum.
    ConcentrationAboveMax {
        /// Drug.
        drug: DrugId,
        /// Prescribed value.
        value: Concentration,
        /// Limit.
        limit: Concentration,
        /// Limit's source.
        source: &'static str,
    },
    /// A drug (other than saline) at zero concentration.
    ZeroConcentration {
        /// Drug.
        drug: DrugId,
    },
    /// Heaviest-day dose above the hard maximum daily dose.
    DailyDoseAboveMax {
        /// Drug.
        drug: DrugId,
        /// Heaviest-day dose.
        value: MassRate,
        /// Limit.
        limit: MassRate,
        /// Limit's source.
        source: &'static str,
    },
    /// Heaviest day plus every allowed patient bolus above the hard maximum (the
    /// predictive rule).
    DailyDoseWithBolusesAboveMax {
        /// Drug.
        drug: DrugId,
        /// Heaviest day plus all patient boluses.
        value: MassRate,
        /// Limit.
        limit: MassRate,
        /// Limit's source.
        source: &'static str,
    },
    /// Above the recommended (soft) maximum daily dose.
    DailyDoseAboveRecommended {
        /// Drug.
        drug: DrugId,
        /// Heaviest day plus all patient boluses.
        value: MassRate,
        /// Recommended maximum.
        limit: MassRate,
        /// Its source.
        source: &'static str,
    },
    /// A first prescription of a drug above its usual starting range.
    StartAboveUsual {
        /// Drug.
        drug: DrugId,
        /// Prescribed daily dose.
        value: MassRate,
        /// Top of the usual starting range.
        usual_max: MassRate,
        /// Its source.
        source: &'static str,
    },
    /// A step increase above the titration rule.
    IncreaseTooLarge {
        /// Drug.
        drug: DrugId,
        /// Daily dose before.
        from: MassRate,
        /// Daily dose after.
        to: MassRate,
        /// Allowed increase.
        max: Increase,
        /// Rule's source.
        source: &'static str,
    },
    /// An increase sooner than the titration rule allows.
    IncreaseTooSoon {
        /// Drug.
        drug: DrugId,
        /// Time since the last change.
        elapsed: Duration,
        /// Shortest allowed interval.
        min_interval: Duration,
        /// Rule's source.
        source: &'static str,
    },
    /// A flow below the pump's lowest programmable flow.
    FlowBelowPumpMin {
        /// The flow.
        flow: Flow,
        /// Pump minimum.
        min: Flow,
    },
    /// A flow (basal plus bolus) above the pump's highest flow.
    FlowAbovePumpMax {
        /// The flow.
        flow: Flow,
        /// Pump maximum.
        max: Flow,
    },
    /// Reservoir volume above capacity.
    ReservoirAboveCapacity {
        /// Volume.
        volume: Volume,
        /// Capacity.
        capacity: Volume,
    },
    /// A patient bolus of zero volume, duration or count.
    PatientBolusEmpty,
    /// Lockout shorter than the bolus duration: boluses could overlap.
    LockoutShorterThanBolus {
        /// Lockout.
        lockout: Duration,
        /// Bolus duration.
        duration: Duration,
    },
    /// More boluses per 24 h than the lockout lets happen.
    BolusCountExceedsLockout {
        /// Configured maximum.
        max_per_day: u8,
        /// Most the lockout allows.
        possible: u64,
    },
    /// An opioid patient bolus for an opioid-naive patient.
    OpioidBolusForNaivePatient {
        /// The opioid.
        drug: DrugId,
    },
    /// A drug not approved for implanted pumps.
    OffLabelDrug {
        /// Drug.
        drug: DrugId,
    },
    /// More than one active drug in the reservoir.
    OffLabelMixture {
        /// How many active drugs.
        count: usize,
    },
    /// A computation overflowed: values far outside any clinical range.
    OutOfRange,
    /// Concentration above a guideline (soft) maximum.
    ConcentrationAboveRecommended {
        /// Drug.
        drug: DrugId,
        /// Prescribed value.
        value: Concentration,
        /// Recommended maximum.
        limit: Concentration,
        /// Its source.
        source: &'static str,
    },
    /// A cut larger than the drug's step, with a withdrawal risk.
    DecreaseTooLarge {
        /// Drug.
        drug: DrugId,
        /// Daily dose before (with every allowed patient bolus).
        from: MassRate,
        /// Daily dose after.
        to: MassRate,
        /// Largest cut per step, percent.
        max_percent: u8,
        /// Its source.
        source: &'static str,
    },
    /// A drug whose withdrawal is dangerous stopped entirely.
    Stopped {
        /// Drug.
        drug: DrugId,
        /// Daily dose before.
        from: MassRate,
    },
    /// An opioid switch or an intrathecal start above the equianalgesic dose less the
    /// customary reduction for incomplete cross-tolerance.
    AboveConversion {
        /// The new opioid.
        drug: DrugId,
        /// Its daily dose (with every allowed patient bolus).
        value: MassRate,
        /// What it was converted from, e.g. oral morphine.
        from: (DrugId, crate::convert::Route),
        /// The equianalgesic dose.
        equivalent: MassRate,
        /// The equivalent less the smallest customary reduction.
        start_high: MassRate,
        /// The ratios' sources.
        source: &'static str,
    },
}

/// The withdrawal a cut or stop of `drug` risks, in words.
fn withdrawal_words(drug: DrugId) -> &'static str {
    match drug {
        DrugId::Baclofen => {
            "baclofen withdrawal (fever, altered mental state, rebound spasticity, \
             rhabdomyolysis, organ failure, death within 24-72 h; Lioresal boxed warning)"
        }
        DrugId::Clonidine => "clonidine withdrawal (rebound hypertension, agitation; check)",
        _ => "withdrawal",
    }
}

/// A finding: an issue and how serious it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Hard or soft.
    pub severity: Severity,
    /// What is wrong.
    pub issue: Issue,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.issue, f)
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Issue::ConcentrationAboveMax {
                drug,
                value,
                limit,
                source,
            } => write!(
                f,
                "{drug} {value} exceeds the hard limit {limit} ({source})"
            ),
            Issue::ZeroConcentration { drug } => write!(
                f,
                "{drug} is listed at zero concentration; give its concentration or remove it"
            ),
            Issue::DailyDoseAboveMax {
                drug,
                value,
                limit,
                source,
            } => {
                write!(
                    f,
                    "{drug} {value} exceeds the hard limit {limit} ({source})"
                )
            }
            Issue::DailyDoseWithBolusesAboveMax {
                drug,
                value,
                limit,
                source,
            } => write!(
                f,
                "{drug} {value} with every allowed patient bolus exceeds the hard limit {limit} \
                 ({source}); lower the bolus dose or count"
            ),
            Issue::DailyDoseAboveRecommended {
                drug,
                value,
                limit,
                source,
            } => write!(
                f,
                "{drug} {value} is above the recommended maximum {limit} ({source}); confirm to proceed"
            ),
            Issue::StartAboveUsual {
                drug,
                value,
                usual_max,
                source,
            } => write!(
                f,
                "{drug} {value} as a first dose is above the usual starting dose of at most \
                 {usual_max} ({source}); confirm to proceed"
            ),
            Issue::IncreaseTooLarge {
                drug,
                from,
                to,
                max,
                source,
            } => write!(
                f,
                "{drug} increase from {from} to {to} is larger than the allowed step of {max} ({source})"
            ),
            Issue::IncreaseTooSoon {
                drug,
                elapsed,
                min_interval,
                source,
            } => write!(
                f,
                "{drug} increase {elapsed} after the last change; increases need at least \
                 {min_interval} between them ({source})"
            ),
            Issue::FlowBelowPumpMin { flow, min } => write!(
                f,
                "flow {flow} is below the pump's lowest programmable flow {min}"
            ),
            Issue::FlowAbovePumpMax { flow, max } => {
                write!(f, "flow {flow} is above the pump's highest flow {max}")
            }
            Issue::ReservoirAboveCapacity { volume, capacity } => write!(
                f,
                "reservoir volume {volume} exceeds the pump's capacity {capacity}"
            ),
            Issue::PatientBolusEmpty => f.write_str(
                "the patient bolus needs a volume, a duration and a count per 24 h above zero",
            ),
            Issue::LockoutShorterThanBolus { lockout, duration } => write!(
                f,
                "patient bolus lockout {lockout} is shorter than the bolus duration {duration}; \
                 boluses could overlap"
            ),
            Issue::BolusCountExceedsLockout {
                max_per_day,
                possible,
            } => write!(
                f,
                "{max_per_day} patient boluses per 24 h cannot happen with this lockout (at most \
                 {possible}); align the count and the lockout"
            ),
            Issue::OpioidBolusForNaivePatient { drug } => write!(
                f,
                "patient bolus of {drug} for an opioid-naive patient is contraindicated \
                 (risk of respiratory depression; Medtronic contraindications)"
            ),
            Issue::OffLabelDrug { drug } => write!(
                f,
                "{drug} is not approved for implanted pumps (off-label); confirm to proceed"
            ),
            Issue::OffLabelMixture { count } => write!(
                f,
                "a mixture of {count} drugs is off-label and roughly doubles pump failure; \
                 confirm to proceed"
            ),
            Issue::OutOfRange => {
                f.write_str("values are far outside any clinical range and cannot be computed")
            }
            Issue::ConcentrationAboveRecommended {
                drug,
                value,
                limit,
                source,
            } => write!(
                f,
                "{drug} {value} is above the recommended maximum concentration {limit} \
                 ({source}); confirm to proceed"
            ),
            Issue::DecreaseTooLarge {
                drug,
                from,
                to,
                max_percent,
                source,
            } => write!(
                f,
                "{drug} cut from {from} to {to} is larger than the step of {max_percent} % \
                 ({source}) and risks {}; confirm to proceed",
                withdrawal_words(drug)
            ),
            Issue::AboveConversion {
                drug,
                value,
                from,
                equivalent,
                start_high,
                source,
            } => write!(
                f,
                "{drug} {value} is above the {} {} equianalgesic dose of {equivalent} less the \
                 customary 25 % for incomplete cross-tolerance ({start_high}; {source}); \
                 confirm to proceed",
                from.1, from.0
            ),
            Issue::Stopped { drug, from } => write!(
                f,
                "{drug} stopped entirely (was {from}): risks {}; confirm to proceed",
                withdrawal_words(drug)
            ),
        }
    }
}

/// The most findings one check reports; past that, [`Findings::truncated`] is set.
pub const MAX_FINDINGS: usize = 40;

/// Every finding of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    items: Vec<Finding, MAX_FINDINGS>,
    /// More findings than [`MAX_FINDINGS`] existed; treat as a hard rejection.
    pub truncated: bool,
}

impl Findings {
    /// The findings, in check order.
    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.items.iter()
    }
    /// How many findings.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// No findings at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && !self.truncated
    }
    /// The most serious severity, or `None` when clean.
    pub fn worst(&self) -> Option<Severity> {
        if self.truncated {
            return Some(Severity::Hard);
        }
        self.items.iter().map(|f| f.severity).max()
    }
    /// Whether the prescription may be applied: no hard findings, and soft ones only
    /// if the clinician confirmed them.
    pub fn acceptable(&self, soft_confirmed: bool) -> bool {
        match self.worst() {
            None => true,
            Some(Severity::Soft) => soft_confirmed,
            Some(Severity::Hard) => false,
        }
    }
}

fn rate(mass: u64) -> MassRate {
    MassRate::from_raw(mass)
}

/// Checks `rx` against the library, the device and the previous prescription, and
/// returns every finding.
pub fn check(rx: &Prescription, ctx: &Context<'_>) -> Findings {
    check_with(rx, ctx, &Patient::default())
}

/// [`check`] with what is known of the patient (e.g. the origin of spasticity).
pub fn check_with(rx: &Prescription, ctx: &Context<'_>, patient: &Patient) -> Findings {
    let mut out = Findings::default();
    check_each(rx, ctx, patient, &mut out);
    out
}

/// Where a check reports its findings, one at a time and in check order. [`Findings`]
/// keeps every one (up to [`MAX_FINDINGS`]); a caller that needs less (the implant: the
/// worst severity, a count, the first few) keeps less, and spares its stack the whole
/// list (2 KB).
pub trait FindingSink {
    /// The next finding.
    fn report(&mut self, finding: Finding);
}

impl FindingSink for Findings {
    fn report(&mut self, finding: Finding) {
        if self.items.push(finding).is_err() {
            self.truncated = true;
        }
    }
}

impl<F: FnMut(Finding)> FindingSink for F {
    fn report(&mut self, finding: Finding) {
        self(finding);
    }
}

/// [`check_with`], each finding reported to `sink` in check order (the order
/// [`Findings::iter`] gives).
pub fn check_each(
    rx: &Prescription,
    ctx: &Context<'_>,
    patient: &Patient,
    sink: &mut dyn FindingSink,
) {
    let out = &mut Out(sink);
    check_device(rx, ctx, out);
    check_patient_bolus(rx, ctx, out);
    let active = rx.contents.active().count();
    if active > 1 {
        out.push(Severity::Soft, Issue::OffLabelMixture { count: active });
    }
    for c in rx.contents.active() {
        check_drug(rx, ctx, patient, c.drug, c.concentration, out);
    }
    check_stopped(rx, ctx, out);
    check_conversion(rx, ctx, patient, out);
}

/// The sink the checks below write to.
struct Out<'a>(&'a mut dyn FindingSink);

impl Out<'_> {
    fn push(&mut self, severity: Severity, issue: Issue) {
        self.0.report(Finding { severity, issue });
    }
}

/// A new intrathecal opioid judged against the equianalgesic dose of what the patient
/// had: another intrathecal opioid in the previous prescription (rotation), or, for a
/// first prescription, the prior oral, intravenous or epidural opioid.
fn check_conversion(rx: &Prescription, ctx: &Context<'_>, patient: &Patient, out: &mut Out<'_>) {
    use crate::convert::{Route, convert};
    for c in rx.contents.active().filter(|c| c.drug.class().is_opioid()) {
        let source = match ctx.previous {
            Some(prev) => {
                let old = prev.prescription;
                if old.contents.active().any(|o| o.drug == c.drug) {
                    continue; // not a switch: titration rules apply
                }
                old.contents
                    .active()
                    .find(|o| o.drug.class().is_opioid())
                    .and_then(|o| {
                        all_receivable(old, o.drug).map(|d| ((o.drug, Route::Intrathecal), d))
                    })
            }
            None => patient.prior_opioid.map(|(d, r, dose)| ((d, r), dose)),
        };
        let Some((from, dose)) = source else {
            continue;
        };
        let (Ok(conv), Some(value)) = (
            convert(from, dose, (c.drug, Route::Intrathecal)),
            all_receivable(rx, c.drug),
        ) else {
            continue;
        };
        if value > conv.start_high {
            out.push(
                Severity::Soft,
                Issue::AboveConversion {
                    drug: c.drug,
                    value,
                    from,
                    equivalent: conv.equivalent,
                    start_high: conv.start_high,
                    source: conv.from_source,
                },
            );
        }
    }
}

/// A drug with a withdrawal risk in the previous prescription and absent from this one.
fn check_stopped(rx: &Prescription, ctx: &Context<'_>, out: &mut Out<'_>) {
    let Some(prev) = ctx.previous else {
        return;
    };
    for c in prev.prescription.contents.active() {
        let gone = !rx.contents.active().any(|n| n.drug == c.drug);
        if gone && ctx.library.get(c.drug).max_decrease.is_some() {
            let from = all_receivable(prev.prescription, c.drug).unwrap_or(MassRate::ZERO);
            out.push(Severity::Soft, Issue::Stopped { drug: c.drug, from });
        }
    }
}

/// The heaviest day plus every allowed patient bolus: all the patient can receive.
fn all_receivable(rx: &Prescription, drug: DrugId) -> Option<MassRate> {
    let day = rx.max_daily_dose(drug)?;
    let bolus = rx.patient_bolus_dose(drug)?;
    let count = rx.patient_bolus.map_or(0, |p| u64::from(p.max_per_day));
    Some(rate(
        day.raw().saturating_add(bolus.raw().saturating_mul(count)),
    ))
}

fn check_device(rx: &Prescription, ctx: &Context<'_>, out: &mut Out<'_>) {
    let dev = ctx.device;
    if rx.reservoir_volume > dev.capacity {
        out.push(
            Severity::Hard,
            Issue::ReservoirAboveCapacity {
                volume: rx.reservoir_volume,
                capacity: dev.capacity,
            },
        );
    }
    let (lo, hi) = rx.schedule.basal_range();
    if lo < dev.min_flow {
        out.push(
            Severity::Hard,
            Issue::FlowBelowPumpMin {
                flow: lo,
                min: dev.min_flow,
            },
        );
    }
    if hi > dev.max_flow {
        out.push(
            Severity::Hard,
            Issue::FlowAbovePumpMax {
                flow: hi,
                max: dev.max_flow,
            },
        );
    }
    let bolus_rates = rx
        .schedule
        .boluses()
        .iter()
        .map(|b| (b.volume, b.duration))
        .chain(rx.patient_bolus.map(|p| (p.volume, p.duration)));
    for (volume, duration) in bolus_rates {
        let Ok(r) = mul_div(volume.raw(), MS_PER_DAY, duration.ms(), Rounding::Up) else {
            continue; // zero duration: reported by the schedule or patient-bolus checks
        };
        let total = hi.saturating_add(Flow::from_raw(r));
        if total > dev.max_flow {
            out.push(
                Severity::Hard,
                Issue::FlowAbovePumpMax {
                    flow: total,
                    max: dev.max_flow,
                },
            );
        }
    }
}

fn check_patient_bolus(rx: &Prescription, ctx: &Context<'_>, out: &mut Out<'_>) {
    let Some(pb) = rx.patient_bolus else {
        return;
    };
    if pb.volume.is_zero() || pb.duration.is_zero() || pb.max_per_day == 0 {
        out.push(Severity::Hard, Issue::PatientBolusEmpty);
        return;
    }
    if pb.lockout < pb.duration {
        out.push(
            Severity::Hard,
            Issue::LockoutShorterThanBolus {
                lockout: pb.lockout,
                duration: pb.duration,
            },
        );
    }
    // In a rolling 24 h window, starts at least `lockout` apart: at most ⌊24h/lockout⌋ + 1
    // when the lockout divides the window and the first start is at its very beginning.
    let possible = MS_PER_DAY
        .checked_div(pb.lockout.ms())
        .map_or(u64::MAX, |n| n.saturating_add(1));
    if u64::from(pb.max_per_day) > possible {
        out.push(
            Severity::Soft,
            Issue::BolusCountExceedsLockout {
                max_per_day: pb.max_per_day,
                possible,
            },
        );
    }
    if ctx.opioid_naive {
        for c in rx.contents.active() {
            if c.drug.class().is_opioid() {
                // Contraindicated (CLINIC.md §2.3, [MDT-CI]): a hard finding.
                out.push(
                    Severity::Hard,
                    Issue::OpioidBolusForNaivePatient { drug: c.drug },
                );
            }
        }
    }
}

fn check_drug(
    rx: &Prescription,
    ctx: &Context<'_>,
    patient: &Patient,
    drug: DrugId,
    conc: Concentration,
    out: &mut Out<'_>,
) {
    let info = ctx.library.get(drug);
    if !info.approved_for_pump {
        out.push(Severity::Soft, Issue::OffLabelDrug { drug });
    }
    if conc.is_zero() {
        out.push(Severity::Hard, Issue::ZeroConcentration { drug });
    }
    let hard_conc = info.max_concentration.filter(|m| conc > m.value);
    if let Some(max) = hard_conc {
        out.push(
            Severity::Hard,
            Issue::ConcentrationAboveMax {
                drug,
                value: conc,
                limit: max.value,
                source: max.source,
            },
        );
    }
    if let (Some(rec), None) = (info.recommended_max_concentration, hard_conc) {
        if conc > rec.value {
            out.push(
                Severity::Soft,
                Issue::ConcentrationAboveRecommended {
                    drug,
                    value: conc,
                    limit: rec.value,
                    source: rec.source,
                },
            );
        }
    }
    let (Some(day), Some(bolus)) = (rx.max_daily_dose(drug), rx.patient_bolus_dose(drug)) else {
        out.push(Severity::Hard, Issue::OutOfRange);
        return;
    };
    let count = rx.patient_bolus.map_or(0, |p| u64::from(p.max_per_day));
    let with_boluses = rate(day.raw().saturating_add(bolus.raw().saturating_mul(count)));
    if let Some(max) = info.max_daily_dose {
        let (value, limit, source) = (day, max.value, max.source);
        if day > limit {
            out.push(
                Severity::Hard,
                Issue::DailyDoseAboveMax {
                    drug,
                    value,
                    limit,
                    source,
                },
            );
        } else if with_boluses > limit {
            let value = with_boluses;
            out.push(
                Severity::Hard,
                Issue::DailyDoseWithBolusesAboveMax {
                    drug,
                    value,
                    limit,
                    source,
                },
            );
        }
    }
    if let Some(rec) = info.recommended_max_daily_dose {
        let hard_exceeded = info.max_daily_dose.is_some_and(|m| with_boluses > m.value);
        if with_boluses > rec.value && !hard_exceeded {
            out.push(
                Severity::Soft,
                Issue::DailyDoseAboveRecommended {
                    drug,
                    value: with_boluses,
                    limit: rec.value,
                    source: rec.source,
                },
            );
        }
    }
    // Titration counts everything the patient can receive: the heaviest day plus every
    // allowed patient bolus, before and after.
    let before = ctx.previous.and_then(|p| {
        let old = p.prescription;
        old.contents
            .active()
            .any(|c| c.drug == drug)
            .then(|| all_receivable(old, drug).map(|d| (d, p.elapsed)))
            .flatten()
    });
    let soft_rule = match (drug, patient.spasticity_origin) {
        (DrugId::Baclofen, SpasticityOrigin::Spinal) => Some(BACLOFEN_SPINAL),
        (DrugId::Baclofen, _) => Some(BACLOFEN_CEREBRAL),
        _ => info.titration_soft,
    };
    match before {
        None => {
            if let Some(usual) = info.usual_start {
                if day > usual.value.1 {
                    out.push(
                        Severity::Soft,
                        Issue::StartAboveUsual {
                            drug,
                            value: day,
                            usual_max: usual.value.1,
                            source: usual.source,
                        },
                    );
                }
            }
        }
        Some((from, elapsed)) if with_boluses > from => {
            let to = with_boluses;
            let hard = info
                .titration_hard
                .and_then(|r| titration(drug, from, to, elapsed, &r));
            let soft = soft_rule.and_then(|r| titration(drug, from, to, elapsed, &r));
            for issue in hard.iter().flatten().flatten() {
                out.push(Severity::Hard, *issue);
            }
            // A soft rule repeats only what the hard rule has not already refused.
            for (i, issue) in soft.iter().flatten().enumerate() {
                let refused = hard.is_some_and(|h| h.get(i).is_some_and(Option::is_some));
                if let (Some(issue), false) = (issue, refused) {
                    out.push(Severity::Soft, *issue);
                }
            }
        }
        Some((from, _)) if with_boluses < from => {
            if let Some(step) = info.max_decrease {
                let to = with_boluses;
                let cut = from.saturating_sub(to);
                // cut / from > step %  <=>  100 cut > step from
                let too_large = u128::from(cut.raw()).saturating_mul(100)
                    > u128::from(from.raw()).saturating_mul(u128::from(step.value));
                if to.is_zero() {
                    out.push(Severity::Soft, Issue::Stopped { drug, from });
                } else if too_large {
                    out.push(
                        Severity::Soft,
                        Issue::DecreaseTooLarge {
                            drug,
                            from,
                            to,
                            max_percent: step.value,
                            source: step.source,
                        },
                    );
                }
            }
        }
        Some(_) => {}
    }
}

/// The step and interval findings of one titration rule, `None` where it is kept.
fn titration(
    drug: DrugId,
    from: MassRate,
    to: MassRate,
    elapsed: Duration,
    rule: &TitrationRule,
) -> Option<[Option<Issue>; 2]> {
    let increase = to.saturating_sub(from);
    let too_large = match rule.max_increase {
        Increase::Absolute(max) => increase > max,
        Increase::Percent(p) => {
            u128::from(increase.raw()).saturating_mul(100)
                > u128::from(from.raw()).saturating_mul(u128::from(p))
        }
    };
    let source = rule.source;
    let step = too_large.then_some(Issue::IncreaseTooLarge {
        drug,
        from,
        to,
        max: rule.max_increase,
        source,
    });
    let min_interval = rule.min_interval;
    let soon = (elapsed < min_interval).then_some(Issue::IncreaseTooSoon {
        drug,
        elapsed,
        min_interval,
        source,
    });
    (step.is_some() || soon.is_some()).then_some([step, soon])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    extern crate std;
    use super::*;
    use crate::dose::Component;
    use std::string::{String, ToString};
    use std::vec::Vec as StdVec;

    fn q<T: core::str::FromStr>(s: &str) -> T
    where
        T::Err: core::fmt::Debug,
    {
        s.parse().unwrap()
    }

    fn rx(drugs: &[(DrugId, &str)], flow: &str) -> Prescription {
        let parts: StdVec<Component> = drugs
            .iter()
            .map(|(d, c)| Component {
                drug: *d,
                concentration: q(c),
            })
            .collect();
        Prescription {
            contents: Admixture::new(&parts).unwrap(),
            schedule: Schedule::continuous(q(flow)),
            patient_bolus: None,
            reservoir_volume: q("20 mL"),
        }
    }

    fn ctx(lib: &Library) -> Context<'_> {
        Context {
            library: lib,
            device: DeviceLimits::synchromed_class(q("20 mL")),
            previous: None,
            opioid_naive: false,
        }
    }

    fn messages(f: &Findings) -> StdVec<(Severity, String)> {
        f.iter().map(|x| (x.severity, x.to_string())).collect()
    }

    #[test]
    fn findings_reported_one_at_a_time_are_the_list_in_order_and_a_copy_in_place_is_exact_rx_006() {
        let lib = Library::new();
        let mut bad = rx(
            &[
                (DrugId::Morphine, "50 mg/mL"),
                (DrugId::Bupivacaine, "0 mg/mL"),
            ],
            "30 mL/day",
        );
        bad.reservoir_volume = q("40 mL");
        let list = check(&bad, &ctx(&lib));
        assert!(list.len() >= 4, "{:?}", messages(&list));
        let mut each = StdVec::new();
        check_each(&bad, &ctx(&lib), &Patient::default(), &mut |f: Finding| {
            each.push(f)
        });
        assert_eq!(each, list.iter().copied().collect::<StdVec<_>>());
        // A copy into a placeholder (or into another prescription) is the source.
        let mut copy = Prescription::placeholder();
        assert_ne!(copy, bad);
        copy.clone_from(&bad);
        assert_eq!(copy, bad);
        let usual = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.5 mL/day");
        copy.clone_from(&usual);
        assert_eq!(copy, usual);
        assert_eq!(usual.clone(), usual);
    }

    #[test]
    fn morphine_22_mg_per_day_is_rejected_by_the_hard_limit_rx_006() {
        let lib = Library::new();
        // 20 mg/mL × 1.1 mL/day = 22 mg/day: above the PACC 15 mg/day, a guideline, so
        // a soft finding (RX-015); a clinic limit of 15 mg/day makes it hard.
        let p = rx(&[(DrugId::Morphine, "20 mg/mL")], "1.1 mL/day");
        let f = check(&p, &ctx(&lib));
        assert_eq!(f.worst(), Some(Severity::Soft));
        let mut clinic = Library::new();
        clinic
            .tighten(
                DrugId::Morphine,
                crate::drug::Tightening::MaxDailyDose(q("15 mg/day")),
            )
            .unwrap();
        let f = check(&p, &ctx(&clinic));
        assert_eq!(f.worst(), Some(Severity::Hard));
        let m = messages(&f);
        assert!(
            m.contains(&(
                Severity::Hard,
                "morphine 22 mg/day exceeds the hard limit 15 mg/day (clinic limit)".into()
            )),
            "{m:?}"
        );
        assert!(!f.acceptable(true));
    }

    #[test]
    fn hard_means_label_guideline_maxima_are_soft_rx_015() {
        let lib = Library::new();
        // Morphine 25 mg/mL is a labelled strength (Infumorph): above the PACC 20 mg/mL
        // recommendation, a soft finding, not a hard one. 25 × 0.05 = 1.25 mg/day.
        let p = rx(&[(DrugId::Morphine, "25 mg/mL")], "0.05 mL/day");
        let f = check(&p, &ctx(&lib));
        assert_eq!(f.worst(), Some(Severity::Soft), "{:?}", messages(&f));
        assert!(
            messages(&f).contains(&(
                Severity::Soft,
                "morphine 25 mg/mL is above the recommended maximum concentration 20 mg/mL \
             (PACC 2017, check); confirm to proceed"
                    .into()
            ))
        );
        // 26 mg/mL is above the strongest labelled strength: hard.
        let p = rx(&[(DrugId::Morphine, "26 mg/mL")], "0.05 mL/day");
        let m = messages(&check(&p, &ctx(&lib)));
        assert!(
            m.contains(&(
                Severity::Hard,
                "morphine 26 mg/mL exceeds the hard limit 25 mg/mL (Infumorph label: 25 mg/mL, \
             the strongest labelled strength)"
                    .into()
            )),
            "{m:?}"
        );
        // Ziconotide's label maximum 19.2 mcg/day stays hard: 100 mcg/mL × 0.2 mL/day = 20.
        let p = rx(&[(DrugId::Ziconotide, "100 mcg/mL")], "0.2 mL/day");
        assert_eq!(check(&p, &ctx(&lib)).worst(), Some(Severity::Hard));
    }

    #[test]
    fn a_usual_baclofen_prescription_is_clean_rx_006() {
        let lib = Library::new();
        // 2000 mcg/mL × 0.1 mL/day = 200 mcg/day, the top of the usual start.
        let p = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.1 mL/day");
        let f = check(&p, &ctx(&lib));
        assert!(f.is_empty(), "{:?}", messages(&f));
        assert!(f.acceptable(false));
    }

    #[test]
    fn concentration_and_device_limits_rx_006() {
        let lib = Library::new();
        let mut p = rx(&[(DrugId::Ziconotide, "200 mcg/mL")], "0.01 mL/day");
        p.reservoir_volume = q("40 mL");
        let f = check(&p, &ctx(&lib));
        let m = messages(&f);
        assert!(
            m.iter().any(|(s, t)| *s == Severity::Hard
                && t == "ziconotide 200 mcg/mL exceeds the hard limit 100 mcg/mL (Prialt label)"),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|(_, t)| t.contains("below the pump's lowest programmable flow 0.048 mL/day"))
        );
        assert!(
            m.iter()
                .any(|(_, t)| t == "reservoir volume 40 mL exceeds the pump's capacity 20 mL")
        );
        let fast = rx(&[(DrugId::Baclofen, "50 mcg/mL")], "25 mL/day");
        assert!(
            messages(&check(&fast, &ctx(&lib)))
                .iter()
                .any(|(_, t)| t.contains("above the pump's highest flow 24 mL/day"))
        );
    }

    #[test]
    fn admixture_limits_apply_per_drug_and_flag_off_label_rx_006() {
        let lib = Library::new();
        // 0.5 mL/day: morphine 10 mg/mL → 5 mg/day; bupivacaine 40 mg/mL → 20 mg/day but
        // 40 mg/mL exceeds 30 mg/mL.
        let p = rx(
            &[
                (DrugId::Morphine, "10 mg/mL"),
                (DrugId::Bupivacaine, "40 mg/mL"),
            ],
            "0.5 mL/day",
        );
        let m = messages(&check(&p, &ctx(&lib)));
        assert!(m.contains(&(Severity::Soft, "a mixture of 2 drugs is off-label and roughly doubles pump failure; confirm to proceed".into())), "{m:?}");
        assert!(
            m.contains(&(
                Severity::Soft,
                "bupivacaine is not approved for implanted pumps (off-label); confirm to proceed"
                    .into()
            ))
        );
        assert!(
            m.contains(&(
                Severity::Soft,
                "bupivacaine 40 mg/mL is above the recommended maximum concentration 30 mg/mL \
             (PACC 2017, check); confirm to proceed"
                    .into()
            ))
        );
        assert!(m.iter().any(|(s, t)| *s == Severity::Soft
            && t.starts_with("bupivacaine 20 mg/day is above the recommended maximum 15 mg/day")));
        assert!(m.iter().any(
            |(s, t)| *s == Severity::Soft && t.starts_with("morphine 5 mg/day as a first dose")
        ));
    }

    #[test]
    fn patient_bolus_predictive_rule_and_opioid_naive_rx_007() {
        let lib = Library::new();
        // Morphine 10 mg/mL at 1.2 mL/day = 12 mg/day; 4 boluses of 0.1 mL = 4 mg → 16 mg > 15.
        let mut p = rx(&[(DrugId::Morphine, "10 mg/mL")], "1.2 mL/day");
        p.patient_bolus = Some(PatientBolus {
            volume: q("0.1 mL"),
            duration: q("10 min"),
            lockout: q("4 h"),
            max_per_day: 4,
        });
        let mut c = ctx(&lib);
        c.opioid_naive = true;
        let m = messages(&check(&p, &c));
        // The PACC 15 mg/day is a guideline: 16 mg/day with the boluses is soft.
        assert!(m.contains(&(Severity::Soft, "morphine 16 mg/day is above the recommended maximum 15 mg/day (PACC 2017, check); confirm to proceed".into())), "{m:?}");
        // A patient opioid bolus for an opioid-naive patient is contraindicated: hard.
        assert!(m.iter().any(|(s, t)| *s == Severity::Hard
            && t.starts_with(
                "patient bolus of morphine for an opioid-naive patient is contraindicated"
            )));
        // With a clinic hard limit of 15 mg/day the predictive rule is hard: 16 > 15.
        let mut clinic = Library::new();
        clinic
            .tighten(
                DrugId::Morphine,
                crate::drug::Tightening::MaxDailyDose(q("15 mg/day")),
            )
            .unwrap();
        let m = messages(&check(&p, &ctx(&clinic)));
        assert!(m.contains(&(Severity::Hard, "morphine 16 mg/day with every allowed patient bolus exceeds the hard limit 15 mg/day (clinic limit); lower the bolus dose or count".into())), "{m:?}");
        // Three boluses keep it at 15 mg/day: allowed by the hard rule.
        p.patient_bolus = Some(PatientBolus {
            max_per_day: 3,
            ..p.patient_bolus.unwrap()
        });
        let f = check(&p, &ctx(&clinic));
        assert!(
            f.iter().all(|x| x.severity == Severity::Soft),
            "{:?}",
            messages(&f)
        );
    }

    #[test]
    fn patient_bolus_settings_consistency_rx_007() {
        let lib = Library::new();
        let mut p = rx(&[(DrugId::Baclofen, "500 mcg/mL")], "0.2 mL/day");
        p.patient_bolus = Some(PatientBolus {
            volume: q("20 uL"),
            duration: q("30 min"),
            lockout: q("10 min"),
            max_per_day: 200,
        });
        let m = messages(&check(&p, &ctx(&lib)));
        assert!(m.contains(&(Severity::Hard, "patient bolus lockout 10 min is shorter than the bolus duration 30 min; boluses could overlap".into())), "{m:?}");
        assert!(m.contains(&(Severity::Soft, "200 patient boluses per 24 h cannot happen with this lockout (at most 145); align the count and the lockout".into())));
        p.patient_bolus = Some(PatientBolus {
            volume: Volume::ZERO,
            duration: q("30 min"),
            lockout: q("1 h"),
            max_per_day: 2,
        });
        assert!(
            messages(&check(&p, &ctx(&lib)))
                .iter()
                .any(|(s, _)| *s == Severity::Hard)
        );
    }

    #[test]
    fn ziconotide_titration_follows_the_label_rx_008() {
        let lib = Library::new();
        // From 2.4 to 4.8 mcg/day after 3 days: within the label (≤ 2.4, ≥ 56 h) but
        // faster than PACC (≤ 0.5 weekly) → soft only.
        let old = rx(&[(DrugId::Ziconotide, "25 mcg/mL")], "0.096 mL/day");
        assert_eq!(
            old.max_daily_dose(DrugId::Ziconotide),
            Some(q("2.4 mcg/day"))
        );
        let new = rx(&[(DrugId::Ziconotide, "25 mcg/mL")], "0.192 mL/day");
        let mut c = ctx(&lib);
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(3),
        });
        let f = check(&new, &c);
        assert_eq!(f.worst(), Some(Severity::Soft), "{:?}", messages(&f));
        let m = messages(&f);
        assert!(m.iter().any(|(_, t)| t == "ziconotide increase from 2.4 mcg/day to 4.8 mcg/day is larger than the allowed step of 0.5 mcg/day (PACC 2017)"), "{m:?}");
        // To 7.2 mcg/day (+4.8) one day later: both label rules broken → hard.
        let big = rx(&[(DrugId::Ziconotide, "25 mcg/mL")], "0.288 mL/day");
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(1),
        });
        let m = messages(&check(&big, &c));
        assert!(m.contains(&(Severity::Hard, "ziconotide increase from 2.4 mcg/day to 7.2 mcg/day is larger than the allowed step of 2.4 mcg/day (Prialt label)".into())), "{m:?}");
        assert!(m.contains(&(Severity::Hard, "ziconotide increase 1 d after the last change; increases need at least 56 h between them (Prialt label)".into())));
        // The soft rules do not repeat what the hard ones refused.
        assert_eq!(m.iter().filter(|(_, t)| t.contains("increase")).count(), 2);
        // A ziconotide decrease is not a finding (no withdrawal syndrome).
        c.previous = Some(Previous {
            prescription: &big,
            elapsed: Duration::ZERO,
        });
        assert!(check(&old, &c).is_empty());
    }

    #[test]
    fn baclofen_and_clonidine_cuts_beyond_the_step_are_soft_with_withdrawal_rx_016() {
        let lib = Library::new();
        // The issue's case: baclofen 1000 → 96 mcg/day, a 90.4 % cut, beyond the
        // label's 10-20 % per step. 2000 mcg/mL × 0.5 mL/day = 1000; × 0.048 = 96.
        let old = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.5 mL/day");
        let new = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.048 mL/day");
        let mut c = ctx(&lib);
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(30),
        });
        let m = messages(&check(&new, &c));
        assert!(
            m.iter().any(|(s, t)| *s == Severity::Soft
                && t.starts_with(
                    "baclofen cut from 1 mg/day to 96 mcg/day is larger than the step of 20 %"
                )
                && t.contains("baclofen withdrawal")),
            "{m:?}"
        );
        // A 20 % cut (1000 → 800, 0.4 mL/day) is within the step: clean.
        let ok = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.4 mL/day");
        assert!(check(&ok, &c).is_empty(), "{:?}", messages(&check(&ok, &c)));
        // 21 % (1000 → 790, 0.395 mL/day) is beyond it.
        let cut = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.395 mL/day");
        assert_eq!(check(&cut, &c).worst(), Some(Severity::Soft));
        // Stopping clonidine entirely (the reservoir now holds only bupivacaine).
        let old = rx(
            &[
                (DrugId::Clonidine, "500 mcg/mL"),
                (DrugId::Bupivacaine, "5 mg/mL"),
            ],
            "0.2 mL/day",
        );
        let new = rx(&[(DrugId::Bupivacaine, "5 mg/mL")], "0.2 mL/day");
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(30),
        });
        let m = messages(&check(&new, &c));
        assert!(m.contains(&(Severity::Soft, "clonidine stopped entirely (was 100 mcg/day): risks clonidine withdrawal (rebound hypertension, agitation; check); confirm to proceed".into())), "{m:?}");
    }

    #[test]
    fn an_intrathecal_start_or_switch_above_the_conversion_is_soft_rx_020() {
        use crate::convert::Route;
        let lib = Library::new();
        // Oral morphine 300 mg/day → IT morphine 1 mg/day, less 25 % = 0.75 mg/day.
        // 10 mg/mL at 0.1 mL/day = 1 mg/day: above it, soft.
        let p = rx(&[(DrugId::Morphine, "10 mg/mL")], "0.1 mL/day");
        let patient = Patient {
            prior_opioid: Some((DrugId::Morphine, Route::Oral, q("300 mg/day"))),
            ..Patient::default()
        };
        let m = messages(&check_with(&p, &ctx(&lib), &patient));
        assert!(m.contains(&(Severity::Soft, "morphine 1 mg/day is above the oral morphine equianalgesic dose of 1 mg/day less the customary 25 % for incomplete cross-tolerance (750 mcg/day; consensus: oral:IT 300:1 (Krames)); confirm to proceed".into())), "{m:?}");
        // 0.07 mL/day = 0.7 mg/day is within it.
        let p = rx(&[(DrugId::Morphine, "10 mg/mL")], "0.07 mL/day");
        let m = messages(&check_with(&p, &ctx(&lib), &patient));
        assert!(!m.iter().any(|(_, t)| t.contains("equianalgesic")), "{m:?}");
        // Rotation: IT morphine 6 mg/day → IT hydromorphone; 6:1 gives 1 mg/day, less
        // 25 % = 0.75 mg/day. Hydromorphone 10 mg/mL at 0.1 mL/day = 1 mg/day: soft.
        let old = rx(&[(DrugId::Morphine, "20 mg/mL")], "0.3 mL/day");
        let new = rx(&[(DrugId::Hydromorphone, "10 mg/mL")], "0.1 mL/day");
        let mut c = ctx(&lib);
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(30),
        });
        let m = messages(&check(&new, &c));
        assert!(m.iter().any(|(s, t)| *s == Severity::Soft && t.starts_with("hydromorphone 1 mg/day is above the intrathecal morphine equianalgesic dose of 1 mg/day")), "{m:?}");
    }

    #[test]
    fn titration_counts_every_allowed_patient_bolus_rx_017() {
        let lib = Library::new();
        // Ziconotide 25 mcg/mL at 0.096 mL/day = 2.4 mcg/day. Adding eight 40 uL (1 mcg)
        // patient boluses a day makes up to 2.4 + 8 × 1 = 10.4 mcg/day: an increase of
        // 8 mcg/day, beyond the label's 2.4 mcg/day step.
        let old = rx(&[(DrugId::Ziconotide, "25 mcg/mL")], "0.096 mL/day");
        let mut new = old.clone();
        new.patient_bolus = Some(PatientBolus {
            volume: q("40 uL"),
            duration: q("10 min"),
            lockout: q("3 h"),
            max_per_day: 8,
        });
        let mut c = ctx(&lib);
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(7),
        });
        let m = messages(&check(&new, &c));
        assert!(m.contains(&(Severity::Hard, "ziconotide increase from 2.4 mcg/day to 10.4 mcg/day is larger than the allowed step of 2.4 mcg/day (Prialt label)".into())), "{m:?}");
    }

    #[test]
    fn baclofen_titration_follows_the_origin_of_spasticity_rx_018() {
        let lib = Library::new();
        // 500 → 600 mcg/day (+20 %): within spinal 10-30 %, beyond cerebral 5-15 %.
        let old = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.25 mL/day");
        let new = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.3 mL/day");
        let mut c = ctx(&lib);
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(2),
        });
        let spinal = Patient {
            spasticity_origin: SpasticityOrigin::Spinal,
            ..Patient::default()
        };
        assert!(check_with(&new, &c, &spinal).is_empty());
        let cerebral = Patient {
            spasticity_origin: SpasticityOrigin::Cerebral,
            ..Patient::default()
        };
        let m = messages(&check_with(&new, &c, &cerebral));
        assert!(m.contains(&(Severity::Soft, "baclofen increase from 500 mcg/day to 600 mcg/day is larger than the allowed step of 15 % (Lioresal Intrathecal label, cerebral origin: 5-15 % once per 24 h)".into())), "{m:?}");
        // Unknown origin takes the stricter cerebral rule.
        assert_eq!(check(&new, &c), check_with(&new, &c, &cerebral));
        // +15 % (575 mcg/day, 0.2875 mL/day) is within the cerebral rule.
        let ok = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.2875 mL/day");
        assert!(check(&ok, &c).is_empty());
    }

    #[test]
    fn baclofen_percent_titration_is_soft_rx_008() {
        let lib = Library::new();
        let old = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.25 mL/day"); // 500 mcg/day
        let new = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.35 mL/day"); // 700: +40 %
        let mut c = ctx(&lib);
        c.previous = Some(Previous {
            prescription: &old,
            elapsed: Duration::from_days(2),
        });
        let spinal = Patient {
            spasticity_origin: SpasticityOrigin::Spinal,
            ..Patient::default()
        };
        let f = check_with(&new, &c, &spinal);
        assert_eq!(f.worst(), Some(Severity::Soft));
        assert!(f.iter().any(|x| {
            x.to_string()
                .contains("larger than the allowed step of 30 %")
        }));
        let ok = rx(&[(DrugId::Baclofen, "2000 mcg/mL")], "0.3 mL/day"); // +20 %
        assert!(check_with(&ok, &c, &spinal).is_empty());
    }
}
