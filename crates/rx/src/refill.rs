//! Refill planning and reconciliation.
//!
//! **Planning** (DOMAIN.md §5): from the volume after a refill, the schedule and the
//! patient-bolus allowance — assuming *every* allowed patient bolus is used, spread
//! evenly over the day — find the instant the low-reservoir alarm will sound and the
//! instant the reservoir is empty. The refill-by instant is the earliest of the low
//! alarm, the drug's stability limit and the clinic's maximum interval, and the plan
//! says which one limits.
//!
//! The volume limit plans for the pump's **labelled worst case**: a SynchroMed-class
//! pump is labelled ±14.5 % (DOMAIN.md §2), so a pump counting 0.25 mL/day may really
//! deliver 0.28625 mL/day and run empty on day 140 of a 40 mL fill, not day 160. The
//! low-reservoir threshold ([`low_reservoir`]) and the refill-due time ([`refill_due`])
//! are the *same functions* the pump core uses for its alarm and its reported next
//! refill, so the calculator and the implant never disagree.
//!
//! **Reconciliation**: at refill the residual volume is aspirated and compared with the
//! pump's expected residual. The threshold scales with what was delivered since the last
//! refill: the larger of a measurement floor ([`MEASUREMENT_FLOOR`], 0.5 mL) and a
//! fraction of the delivered volume ([`DELIVERED_FRACTION_PERCENT`], 5 %). When the
//! delivered volume is not known the older rule applies: 5 % of capacity (1 mL for a
//! 20 mL pump, 2 mL for 40 mL, DOMAIN.md §5). An empty aspiration when the pump expects
//! drug always flags. A flagged difference names its likely causes.

use core::fmt;

use crate::quantity::{Duration, Flow, MS_PER_DAY, QuantityError, Rounding, Volume, mul_div};
use crate::schedule::{LocalTime, Schedule};

/// The default, and longest, refill interval: 180 days. A clinic may lower it, never
/// raise it. Source: the seeds' refills "every 1 to 6 months" (DOMAIN.md §1).
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_days(180);

/// The default low-reservoir alarm volume, 2 mL (DOMAIN.md §5: "e.g. 2–3 mL").
pub const DEFAULT_LOW_RESERVOIR: Volume = Volume::from_ml(2);

/// The default low-reservoir alarm in days of therapy left: 7 (check: a week to book
/// a refill visit; no public source found).
pub const DEFAULT_LOW_RESERVOIR_DAYS: u16 = 7;

/// The pump's low-reservoir threshold: the set volume or the volume of `days` of
/// therapy at `daily_use`, whichever is larger — so the alarm sounds at whichever of
/// the two comes *first*. One rule for the pump core's alarm and for `calc refill`.
pub fn low_reservoir(set: Volume, days: u16, daily_use: Volume) -> Volume {
    let by_days = daily_use
        .checked_mul(u64::from(days))
        .unwrap_or(Volume::MAX);
    set.max(by_days)
}

/// The daily volume that leaves the reservoir at the pump's labelled worst case:
/// `daily_use × (1000 + over_permille) / 1000`, rounded up.
///
/// # Errors
/// Overflow.
pub fn worst_case_daily(daily_use: Volume, over_permille: u16) -> Result<Volume, QuantityError> {
    daily_use.scale(
        1000u64.saturating_add(u64::from(over_permille)),
        1000,
        Rounding::Up,
    )
}

/// How long until the reservoir reaches `threshold` when `daily_use` is delivered
/// (patient-bolus allowance included) and the pump over-delivers by its labelled
/// worst case `over_permille` (145 = +14.5 %). Rounded down to the millisecond, so the
/// refill is never planned after the worst-case instant. `Ok(None)` when nothing is
/// delivered.
///
/// Used by the pump core for the next-refill instant it reports and by [`plan`].
///
/// # Errors
/// Overflow.
pub fn refill_due(
    reservoir: Volume,
    threshold: Volume,
    daily_use: Volume,
    over_permille: u16,
) -> Result<Option<Duration>, QuantityError> {
    if daily_use.is_zero() {
        return Ok(None);
    }
    let worst = worst_case_daily(daily_use, over_permille)?;
    let usable = reservoir.saturating_sub(threshold);
    mul_div(usable.raw(), MS_PER_DAY, worst.raw(), Rounding::Down)
        .map(|ms| Some(Duration::from_ms(ms)))
}

/// An admixture's beyond-use limit in the reservoir: the shortest of its drugs'
/// stabilities ([`crate::drug::Stability::limit`]) and the compounding pharmacy's
/// beyond-use date, if one was entered (as the time from the refill). `None` when
/// nothing limits it. The refill plan takes it as its stability limit.
pub fn beyond_use(
    drugs: &[crate::drug::DrugId],
    diluted: bool,
    first_refill: bool,
    pharmacy: Option<Duration>,
) -> Option<Duration> {
    drugs
        .iter()
        .filter_map(|d| d.info().stability.map(|s| s.limit(diluted, first_refill)))
        .chain(pharmacy)
        .min()
}

/// What limits the refill date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    /// The low-reservoir alarm.
    Volume,
    /// The drug's stability in the reservoir.
    Stability,
    /// The clinic's maximum interval.
    Clinic,
}

impl LimitedBy {
    /// `volume`, `stability` or `clinic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitedBy::Volume => "volume",
            LimitedBy::Stability => "stability",
            LimitedBy::Clinic => "clinic",
        }
    }
}

/// The inputs of a refill plan.
#[derive(Debug, Clone, Copy)]
pub struct RefillInput<'a> {
    /// Reservoir capacity.
    pub capacity: Volume,
    /// Volume in the reservoir after the refill.
    pub volume: Volume,
    /// Delivery schedule.
    pub schedule: &'a Schedule,
    /// Local time of the refill.
    pub start: LocalTime,
    /// Patient bolus: volume of one bolus and most per 24 h.
    pub patient_bolus: Option<(Volume, u8)>,
    /// Low-reservoir alarm volume (the pump's setting).
    pub low_alarm: Volume,
    /// Low-reservoir alarm in days of therapy left (the pump's setting; 0: off).
    pub low_alarm_days: u16,
    /// The pump's labelled worst-case over-delivery, per mille (145 = +14.5 %).
    pub over_delivery_permille: u16,
    /// Stability limit of the drug in the reservoir (the admixture's beyond-use date).
    pub stability: Option<Duration>,
    /// The clinic's maximum refill interval; `None` is [`DEFAULT_MAX_INTERVAL`], and a
    /// clinic may only lower it.
    pub clinic_max: Option<Duration>,
}

/// A refill plan; times are measured from the refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefillPlan {
    /// The low-reservoir threshold the pump applies ([`low_reservoir`]).
    pub low_threshold: Volume,
    /// Until the pump's low-reservoir alarm, at the programmed (nominal) delivery
    /// (`None`: never, no delivery).
    pub to_low_alarm: Option<Duration>,
    /// Until the reservoir is empty at nominal delivery (`None`: never).
    pub to_empty: Option<Duration>,
    /// Until the reservoir reaches the low threshold at the labelled worst case.
    pub worst_to_low: Option<Duration>,
    /// Until the reservoir is empty at the labelled worst case.
    pub worst_to_empty: Option<Duration>,
    /// The worst-case over-delivery assumed, per mille.
    pub over_delivery_permille: u16,
    /// Until the refill is due.
    pub refill_by: Duration,
    /// What sets the refill date.
    pub limited_by: LimitedBy,
    /// The patient-bolus allowance assumed, as a flow.
    pub bolus_allowance: Flow,
}

/// Why a plan or reconciliation could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefillError {
    /// A volume above the reservoir capacity.
    AboveCapacity {
        /// What was named (e.g. "volume after refill").
        what: &'static str,
        /// The volume.
        volume: Volume,
        /// The capacity.
        capacity: Volume,
    },
    /// The low-alarm threshold is not below the capacity.
    AlarmAboveCapacity {
        /// Threshold.
        low_alarm: Volume,
        /// Capacity.
        capacity: Volume,
    },
    /// A clinic maximum interval above [`DEFAULT_MAX_INTERVAL`]: a clinic may only lower it.
    ClinicMaxAboveDefault(Duration),
    /// Arithmetic overflow.
    Quantity(QuantityError),
}

impl From<QuantityError> for RefillError {
    fn from(e: QuantityError) -> Self {
        RefillError::Quantity(e)
    }
}

impl core::error::Error for RefillError {}

impl fmt::Display for RefillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefillError::AboveCapacity {
                what,
                volume,
                capacity,
            } => write!(
                f,
                "{what} {volume} exceeds the reservoir capacity {capacity}"
            ),
            RefillError::AlarmAboveCapacity {
                low_alarm,
                capacity,
            } => write!(
                f,
                "low-reservoir alarm {low_alarm} must be below the capacity {capacity}"
            ),
            RefillError::ClinicMaxAboveDefault(d) => write!(
                f,
                "a clinic maximum refill interval of {} days is above the default {} days; a \
                 clinic may only lower it",
                d.whole_days(),
                DEFAULT_MAX_INTERVAL.whole_days()
            ),
            RefillError::Quantity(e) => write!(f, "{e}"),
        }
    }
}

/// The patient-bolus allowance as a continuous flow: volume × count per day.
///
/// # Errors
/// Overflow.
pub fn bolus_allowance(patient_bolus: Option<(Volume, u8)>) -> Result<Flow, QuantityError> {
    match patient_bolus {
        Some((v, n)) => v.checked_mul(u64::from(n)).map(|v| Flow::from_raw(v.raw())),
        None => Ok(Flow::ZERO),
    }
}

/// Plans the next refill.
///
/// # Errors
/// See [`RefillError`].
pub fn plan(input: &RefillInput<'_>) -> Result<RefillPlan, RefillError> {
    if input.volume > input.capacity {
        return Err(RefillError::AboveCapacity {
            what: "volume after refill",
            volume: input.volume,
            capacity: input.capacity,
        });
    }
    if input.low_alarm >= input.capacity {
        return Err(RefillError::AlarmAboveCapacity {
            low_alarm: input.low_alarm,
            capacity: input.capacity,
        });
    }
    let clinic_max = match input.clinic_max {
        Some(d) if d > DEFAULT_MAX_INTERVAL => return Err(RefillError::ClinicMaxAboveDefault(d)),
        Some(d) => d,
        None => DEFAULT_MAX_INTERVAL,
    };
    let extra = bolus_allowance(input.patient_bolus)?;
    // The pump's own daily use: the schedule's mean day plus every allowed bolus.
    let daily_use = input
        .schedule
        .mean_daily()
        .checked_add(Volume::from_raw(extra.raw()))?;
    let low_threshold = low_reservoir(input.low_alarm, input.low_alarm_days, daily_use);
    let usable = input.volume.saturating_sub(low_threshold);
    let to_low = input.schedule.time_to_consume(input.start, usable, extra);
    let to_empty = input
        .schedule
        .time_to_consume(input.start, input.volume, extra);
    let over = input.over_delivery_permille;
    let worst_to_low = refill_due(input.volume, low_threshold, daily_use, over)?;
    let worst_to_empty = refill_due(input.volume, Volume::ZERO, daily_use, over)?;
    let candidates = [
        (worst_to_low, LimitedBy::Volume),
        (input.stability, LimitedBy::Stability),
        (Some(clinic_max), LimitedBy::Clinic),
    ];
    // The earliest limit; on a tie the order above (volume first) decides.
    let (refill_by, limited_by) = candidates
        .into_iter()
        .filter_map(|(d, why)| d.map(|d| (d, why)))
        .min_by_key(|(d, _)| *d)
        .unwrap_or((clinic_max, LimitedBy::Clinic));
    Ok(RefillPlan {
        low_threshold,
        to_low_alarm: to_low,
        to_empty,
        worst_to_low,
        worst_to_empty,
        over_delivery_permille: over,
        refill_by,
        limited_by,
        bolus_allowance: extra,
    })
}

/// The residual volume expected at `at`, from `volume` at `start`, after the schedule
/// and `boluses_given` (patient boluses actually delivered); never below zero.
pub fn expected_residual(
    volume: Volume,
    schedule: &Schedule,
    start: LocalTime,
    at: LocalTime,
    boluses_given: Volume,
) -> Volume {
    volume
        .saturating_sub(schedule.volume_between(start, at))
        .saturating_sub(boluses_given)
}

/// The smallest reconciliation threshold: 0.5 mL. Rationale (check): a residual is read
/// off a syringe to about 0.1 mL, and some fluid stays in the reservoir and needle after
/// aspiration; below 0.5 mL a difference is not a finding.
pub const MEASUREMENT_FLOOR: Volume = Volume::from_nl(500_000);

/// The reconciliation threshold as a share of the volume delivered since the last
/// refill: 5 %. Rationale: the typical pump error is small (clinic +1 % mean, bench
/// −2.4 % per refill, DOMAIN.md §2); 5 % of a full 40 mL reservoir (2 mL) is ASRA's
/// "> 2 mL → evaluate" (CLINIC.md §2.4). The labelled worst case (14.5 %) is a bound, not
/// the expected error, so it would hide real leaks.
pub const DELIVERED_FRACTION_PERCENT: u64 = 5;

/// The reconciliation threshold for `delivered` since the last refill: the larger of
/// [`MEASUREMENT_FLOOR`] and [`DELIVERED_FRACTION_PERCENT`] of it.
pub fn delivered_threshold(delivered: Volume) -> Volume {
    delivered
        .scale(DELIVERED_FRACTION_PERCENT, 100, Rounding::Nearest)
        .unwrap_or(Volume::MAX)
        .max(MEASUREMENT_FLOOR)
}

/// The reconciliation threshold when the delivered volume is unknown: 5 % of capacity
/// (1 mL for 20 mL, 2 mL for 40 mL).
pub fn default_threshold(capacity: Volume) -> Volume {
    capacity
        .scale(5, 100, Rounding::Nearest)
        .unwrap_or(capacity)
}

/// The sign of a reconciliation discrepancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Less came back than expected: more left the reservoir than the pump counted.
    LessThanExpected,
    /// More came back than expected: less left the reservoir than the pump counted.
    MoreThanExpected,
}

impl Direction {
    /// The likely causes, most common first.
    pub const fn causes(self) -> &'static str {
        match self {
            Direction::LessThanExpected => {
                "possible over-delivery, a leak in the pump or catheter, drug diversion, or an \
                 earlier pocket fill (drug that never reached the reservoir)"
            }
            Direction::MoreThanExpected => {
                "possible under-delivery (catheter occlusion or kink, tip granuloma, motor \
                 stall), an incomplete earlier aspiration, or a wrong volume or reservoir size \
                 entered at the last refill"
            }
        }
    }
}

/// The result of comparing aspirated with expected residual volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciliation {
    /// Capacity of the pump.
    pub capacity: Volume,
    /// Expected residual.
    pub expected: Volume,
    /// Aspirated residual.
    pub aspirated: Volume,
    /// `aspirated − expected`, in nL.
    pub discrepancy_nl: i64,
    /// The threshold applied.
    pub threshold: Volume,
    /// Whether the discrepancy exceeds the threshold.
    pub flagged: bool,
}

impl Reconciliation {
    /// The direction of the discrepancy, `None` when exactly as expected.
    pub fn direction(&self) -> Option<Direction> {
        match self.discrepancy_nl {
            d if d < 0 => Some(Direction::LessThanExpected),
            d if d > 0 => Some(Direction::MoreThanExpected),
            _ => None,
        }
    }
}

impl fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let diff = Volume::from_raw(self.discrepancy_nl.unsigned_abs());
        let (aspirated, expected, threshold) = (self.aspirated, self.expected, self.threshold);
        match (self.direction(), self.flagged) {
            (None, _) => write!(f, "aspirated {aspirated} matches the expected {expected}"),
            (Some(_), false) => write!(
                f,
                "aspirated {aspirated} is within {threshold} of the expected {expected} \
                 (difference {diff})"
            ),
            (Some(dir), true) => {
                let word = match dir {
                    Direction::LessThanExpected => "less",
                    Direction::MoreThanExpected => "more",
                };
                write!(
                    f,
                    "aspirated {aspirated} is {diff} {word} than the expected {expected}, beyond \
                     the {threshold} allowed for a {} pump: {}; investigate before refilling",
                    self.capacity,
                    dir.causes()
                )
            }
        }
    }
}

/// Compares the aspirated residual with the expected one, without the delivered volume
/// (see [`reconcile_delivered`]).
///
/// # Errors
/// [`RefillError::AboveCapacity`] when either volume exceeds the capacity.
pub fn reconcile(
    capacity: Volume,
    expected: Volume,
    aspirated: Volume,
    threshold: Option<Volume>,
) -> Result<Reconciliation, RefillError> {
    reconcile_delivered(capacity, expected, aspirated, None, threshold)
}

/// Compares the aspirated residual with the expected one. The threshold is `threshold`
/// if given, else [`delivered_threshold`] of `delivered` (the volume delivered since the
/// last refill) if known, else [`default_threshold`]. An empty aspiration while the
/// pump expects more than the measurement floor always flags.
///
/// # Errors
/// [`RefillError::AboveCapacity`] when a volume exceeds the capacity.
pub fn reconcile_delivered(
    capacity: Volume,
    expected: Volume,
    aspirated: Volume,
    delivered: Option<Volume>,
    threshold: Option<Volume>,
) -> Result<Reconciliation, RefillError> {
    for (what, volume) in [
        ("expected residual", expected),
        ("aspirated volume", aspirated),
    ] {
        if volume > capacity {
            return Err(RefillError::AboveCapacity {
                what,
                volume,
                capacity,
            });
        }
    }
    let threshold = threshold.unwrap_or_else(|| match delivered {
        Some(d) => delivered_threshold(d),
        None => default_threshold(capacity),
    });
    let discrepancy_nl = aspirated.signed_diff(expected)?;
    let empty_but_expected = aspirated.is_zero() && expected > MEASUREMENT_FLOOR;
    let flagged = discrepancy_nl.unsigned_abs() > threshold.raw() || empty_but_expected;
    Ok(Reconciliation {
        capacity,
        expected,
        aspirated,
        discrepancy_nl,
        threshold,
        flagged,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn q<T: core::str::FromStr>(s: &str) -> T
    where
        T::Err: core::fmt::Debug,
    {
        s.parse().unwrap()
    }
    const MONDAY: LocalTime = LocalTime(1_799_020_800_000);

    fn input(schedule: &Schedule) -> RefillInput<'_> {
        RefillInput {
            capacity: q("40 mL"),
            volume: q("40 mL"),
            schedule,
            start: MONDAY,
            patient_bolus: None,
            low_alarm: q("2 mL"),
            low_alarm_days: 7,
            over_delivery_permille: 0,
            stability: None,
            clinic_max: None,
        }
    }

    #[test]
    fn baclofen_40_ml_refill_rx_009() {
        // 40 mL of baclofen 2000 mcg/mL at 0.25 mL/day (500 mcg/day), a pump counted
        // exact: low alarm at 2 mL after 38 / 0.25 = 152 days; empty after 160 days.
        let s = Schedule::continuous(q("0.25 mL/day"));
        let p = plan(&input(&s)).unwrap();
        assert_eq!(p.low_threshold, q("2 mL"));
        assert_eq!(p.to_low_alarm, Some(Duration::from_days(152)));
        assert_eq!(p.to_empty, Some(Duration::from_days(160)));
        assert_eq!(p.refill_by, Duration::from_days(152));
        assert_eq!(p.limited_by, LimitedBy::Volume);
        // A clinic maximum of 90 days limits instead.
        let mut i = input(&s);
        i.clinic_max = Some(Duration::from_days(90));
        assert_eq!(plan(&i).unwrap().limited_by, LimitedBy::Clinic);
    }

    #[test]
    fn refill_plans_for_the_labelled_worst_case_rx_014() {
        // The case: 40 mL at 0.25 mL/day on a pump labelled ±14.5 %
        // (DOMAIN.md §2). Worst case 0.25 × 1.145 = 0.28625 mL/day leaves the
        // reservoir: 2 mL (larger than 7 days × 0.25 = 1.75 mL) is reached after
        // 38 / 0.28625 = 132.751 days and it is empty after 40 / 0.28625 = 139.738
        // days — on day 140, not day 160.
        let s = Schedule::continuous(q("0.25 mL/day"));
        let mut i = input(&s);
        i.over_delivery_permille = 145;
        let p = plan(&i).unwrap();
        assert_eq!(
            worst_case_daily(q("0.25 mL"), 145).unwrap(),
            q("0.28625 mL")
        );
        assert_eq!(p.low_threshold, q("2 mL"));
        // 38 000 000 nL × 86 400 000 ms / 286 250 nL/day, rounded down.
        assert_eq!(p.worst_to_low, Some(Duration::from_ms(11_469_694_323)));
        assert_eq!(p.worst_to_empty, Some(Duration::from_ms(12_073_362_445)));
        assert_eq!(p.worst_to_empty.unwrap().whole_days(), 139);
        assert_eq!(p.refill_by.whole_days(), 132);
        assert_eq!(p.limited_by, LimitedBy::Volume);
        // The pump's alarm (nominal count) still sounds on day 152.
        assert_eq!(p.to_low_alarm, Some(Duration::from_days(152)));
        // The same function the pump core calls gives the same instant.
        assert_eq!(
            refill_due(q("40 mL"), q("2 mL"), q("0.25 mL"), 145).unwrap(),
            p.worst_to_low
        );
    }

    #[test]
    fn low_reservoir_is_volume_or_days_whichever_first_rx_014() {
        // 2 mL or 7 days: at 0.25 mL/day 7 days is 1.75 mL, so 2 mL sounds first
        // (the larger threshold is reached first); at 0.5 mL/day 7 days is 3.5 mL.
        assert_eq!(low_reservoir(q("2 mL"), 7, q("0.25 mL")), q("2 mL"));
        assert_eq!(low_reservoir(q("2 mL"), 7, q("0.5 mL")), q("3.5 mL"));
        assert_eq!(low_reservoir(q("2 mL"), 0, q("0.5 mL")), q("2 mL"));
        // Nothing delivered: no refill is ever due for volume.
        assert_eq!(
            refill_due(q("20 mL"), q("2 mL"), Volume::ZERO, 145),
            Ok(None)
        );
    }

    #[test]
    fn default_maximum_interval_is_180_days_and_only_lowered_rx_014() {
        // 20 mL at 0.048 mL/day would last 18 / 0.048 = 375 days: 180 days limits.
        let s = Schedule::continuous(q("0.048 mL/day"));
        let mut i = input(&s);
        i.volume = q("20 mL");
        let p = plan(&i).unwrap();
        assert_eq!(p.refill_by, Duration::from_days(180));
        assert_eq!(p.limited_by, LimitedBy::Clinic);
        i.clinic_max = Some(Duration::from_days(120));
        assert_eq!(plan(&i).unwrap().refill_by, Duration::from_days(120));
        i.clinic_max = Some(Duration::from_days(200));
        assert_eq!(
            plan(&i).unwrap_err().to_string(),
            "a clinic maximum refill interval of 200 days is above the default 180 days; a \
             clinic may only lower it"
        );
    }

    #[test]
    fn patient_bolus_allowance_brings_the_refill_forward_rx_009() {
        // 4 × 20 uL per day adds 0.08 mL/day: 0.33 mL/day in all, whose 7 days
        // (2.31 mL) exceed the 2 mL setting: (40 − 2.31) / 0.33 = 114.21 days.
        let s = Schedule::continuous(q("0.25 mL/day"));
        let mut i = input(&s);
        i.patient_bolus = Some((q("20 uL"), 4));
        let p = plan(&i).unwrap();
        assert_eq!(p.bolus_allowance, q("0.08 mL/day"));
        assert_eq!(p.low_threshold, q("2.31 mL"));
        let expect_ms = (37_690_000u128 * 86_400_000).div_ceil(330_000) as u64;
        assert_eq!(p.to_low_alarm, Some(Duration::from_ms(expect_ms)));
        assert_eq!(p.to_low_alarm.unwrap().whole_hours(), 2741);
    }

    #[test]
    fn ziconotide_stability_limits_the_refill_rx_009() {
        let s = Schedule::continuous(q("0.048 mL/day"));
        let mut i = input(&s);
        i.volume = q("20 mL");
        i.stability = Some(
            crate::drug::DrugId::Ziconotide
                .info()
                .stability
                .unwrap()
                .limit(true, false),
        );
        let p = plan(&i).unwrap();
        assert_eq!(p.refill_by, Duration::from_days(40));
        assert_eq!(p.limited_by, LimitedBy::Stability);
    }

    #[test]
    fn an_admixture_lasts_as_long_as_its_least_stable_part_rx_022() {
        use crate::drug::DrugId;
        // Morphine, bupivacaine and clonidine: 90 days each (stable 90 d at 37 °C);
        // a pharmacy beyond-use date 60 days after the refill is shorter.
        let mix = [DrugId::Morphine, DrugId::Bupivacaine, DrugId::Clonidine];
        assert_eq!(
            beyond_use(&mix, false, false, None),
            Some(Duration::from_days(90))
        );
        assert_eq!(
            beyond_use(&mix, false, false, Some(Duration::from_days(60))),
            Some(Duration::from_days(60))
        );
        // With diluted ziconotide: 40 days; the first refill of a new pump: 14 days.
        let zic = [DrugId::Ziconotide, DrugId::Morphine];
        assert_eq!(
            beyond_use(&zic, true, false, None),
            Some(Duration::from_days(40))
        );
        assert_eq!(
            beyond_use(&zic, true, true, Some(Duration::from_days(60))),
            Some(Duration::from_days(14))
        );
        assert_eq!(beyond_use(&[DrugId::Baclofen], false, false, None), None);
        // The refill plan takes it: 20 mL at 0.1 mL/day would last 180 days (clinic
        // maximum), the 60-day pharmacy date limits.
        let s = Schedule::continuous(q("0.1 mL/day"));
        let mut i = input(&s);
        i.volume = q("20 mL");
        i.stability = beyond_use(&mix, false, false, Some(Duration::from_days(60)));
        let p = plan(&i).unwrap();
        assert_eq!(p.refill_by, Duration::from_days(60));
        assert_eq!(p.limited_by, LimitedBy::Stability);
    }

    #[test]
    fn refill_plan_rejects_bad_input_rx_009() {
        let s = Schedule::continuous(Flow::ZERO);
        let mut i = input(&s);
        // Nothing delivered: the default clinic maximum still sets a date.
        assert_eq!(plan(&i).unwrap().limited_by, LimitedBy::Clinic);
        i.volume = q("41 mL");
        let e = plan(&i).unwrap_err();
        assert_eq!(
            e.to_string(),
            "volume after refill 41 mL exceeds the reservoir capacity 40 mL"
        );
    }

    #[test]
    fn expected_residual_after_a_month_rx_009() {
        let s = Schedule::continuous(q("0.5 mL/day"));
        let at = MONDAY.saturating_add(Duration::from_days(30));
        assert_eq!(
            expected_residual(q("20 mL"), &s, MONDAY, at, q("0.2 mL")),
            q("4.8 mL")
        );
        assert_eq!(
            expected_residual(q("2 mL"), &s, MONDAY, at, Volume::ZERO),
            Volume::ZERO
        );
    }

    proptest::proptest! {
        #[test]
        fn refill_time_is_monotone_in_volume_and_in_rate_rx_009(
            rate_nl in 1_000u64..5_000_000,
            faster in 1u64..1_000_000,
            volume_ul in 3_000u32..40_000,
            more_ul in 1u32..5_000,
            ptm_ul in 0u32..50,
            ptm_n in 0u8..8,
        ) {
            let slow = Schedule::continuous(Flow::from_raw(rate_nl));
            let fast = Schedule::continuous(Flow::from_raw(rate_nl + faster));
            let at = |s: &Schedule, v: u32| {
                let mut i = input(s);
                i.volume = Volume::from_ul(v.min(40_000));
                i.patient_bolus = Some((Volume::from_ul(ptm_ul), ptm_n));
                plan(&i).unwrap()
            };
            let base = at(&slow, volume_ul);
            let bigger = at(&slow, volume_ul + more_ul);
            let quicker = at(&fast, volume_ul);
            // More volume never runs low sooner; a higher rate never runs low later.
            proptest::prop_assert!(base.to_low_alarm <= bigger.to_low_alarm);
            proptest::prop_assert!(base.to_empty <= bigger.to_empty);
            proptest::prop_assert!(quicker.to_low_alarm <= base.to_low_alarm);
            proptest::prop_assert!(quicker.to_empty <= base.to_empty);
            proptest::prop_assert!(base.to_low_alarm <= base.to_empty);
        }
    }

    #[test]
    fn reconciliation_flags_by_pump_size_rx_010() {
        // 20 mL pump: 1.6 mL less than expected → flagged (threshold 1 mL).
        let r = reconcile(q("20 mL"), q("4.5 mL"), q("2.9 mL"), None).unwrap();
        assert_eq!(r.discrepancy_nl, -1_600_000);
        assert_eq!(r.threshold, q("1 mL"));
        assert!(r.flagged);
        let msg = r.to_string();
        assert!(
            msg.starts_with("aspirated 2.9 mL is 1.6 mL less than the expected 4.5 mL"),
            "{msg}"
        );
        assert!(
            msg.contains("pocket fill") && msg.contains("diversion"),
            "{msg}"
        );
        // The same 1.6 mL on a 40 mL pump is within its 2 mL threshold.
        let r = reconcile(q("40 mL"), q("4.5 mL"), q("2.9 mL"), None).unwrap();
        assert_eq!(r.threshold, q("2 mL"));
        assert!(!r.flagged);
        // 40 mL pump: 2.5 mL more than expected → flagged, under-delivery causes.
        let r = reconcile(q("40 mL"), q("3 mL"), q("5.5 mL"), None).unwrap();
        assert!(r.flagged && r.to_string().contains("occlusion"));
        // A configured threshold overrides; exactly at the threshold is not flagged.
        let r = reconcile(q("20 mL"), q("4 mL"), q("3.5 mL"), Some(q("0.5 mL"))).unwrap();
        assert!(!r.flagged);
        assert!(reconcile(q("20 mL"), q("4 mL"), q("21 mL"), None).is_err());
    }

    #[test]
    fn reconciliation_scales_with_what_was_delivered_rx_019() {
        // The ziconotide pump: 1.9 mL delivered since the refill, 0.9 mL short.
        // Threshold max(0.5 mL, 5 % × 1.9 = 0.095 mL) = 0.5 mL: flagged (the old 5 %-of-
        // capacity rule allowed 1 mL on a 20 mL pump and passed it).
        let r = reconcile_delivered(
            q("20 mL"),
            q("18.1 mL"),
            q("17.2 mL"),
            Some(q("1.9 mL")),
            None,
        )
        .unwrap();
        assert_eq!(r.threshold, q("0.5 mL"));
        assert_eq!(r.discrepancy_nl, -900_000);
        assert!(r.flagged);
        assert!(
            !reconcile(q("20 mL"), q("18.1 mL"), q("17.2 mL"), None)
                .unwrap()
                .flagged
        );
        // 38 mL delivered from a 40 mL pump: 5 % = 1.9 mL; 1.5 mL short is within it.
        let r = reconcile_delivered(q("40 mL"), q("2 mL"), q("0.5 mL"), Some(q("38 mL")), None)
            .unwrap();
        assert_eq!(r.threshold, q("1.9 mL"));
        assert!(!r.flagged);
        // The empty aspiration: 0 mL against 2 mL expected on a 40 mL pump is
        // exactly at the old 2 mL threshold, yet it always flags.
        let r = reconcile(q("40 mL"), q("2 mL"), Volume::ZERO, None).unwrap();
        assert_eq!(r.threshold, q("2 mL"));
        assert!(r.flagged);
        let r = reconcile_delivered(q("40 mL"), q("2 mL"), Volume::ZERO, Some(q("38 mL")), None)
            .unwrap();
        assert!(r.flagged);
        // Nothing expected, nothing aspirated: not a finding.
        assert!(
            !reconcile(q("20 mL"), Volume::ZERO, Volume::ZERO, None)
                .unwrap()
                .flagged
        );
    }
}
