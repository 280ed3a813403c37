//! The refill calendar: each active implant's due date and the clinic's lists.
//!
//! The due date is thecal-rx's refill plan (`refill::plan`): the earliest of the
//! low-reservoir alarm, the drug's stability and the clinic's maximum interval. The pump's
//! labelled worst-case accuracy margin is applied by planning with the schedule scaled up
//! by that margin (thecal-rx `Schedule::scaled`): a pump delivering faster empties sooner,
//! so the alarm instant taken is the earliest the label allows.
//!
//! The lists: overdue (due before today), due this week (today to six days on), and a
//! daily list over the coming days where each day takes at most the clinic's capacity,
//! earliest due first (so a day's overflow moves to the next day and is marked late).

use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use thecal_rx::drug::DrugId;
use thecal_rx::refill::{RefillInput, plan};
use thecal_rx::schedule::{LocalTime, Schedule};
use thecal_rx::{Concentration, Duration, Flow, Volume};
use utoipa::ToSchema;

use super::FieldError;

/// The clinic's maximum refill interval by default (CLINIC.md §5: one to six months).
pub const DEFAULT_CLINIC_MAX_DAYS: u64 = 180;

/// What one implant's due date is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueInput {
    /// Implant.
    pub implant_id: i64,
    /// Patient.
    pub patient_id: i64,
    /// Patient's display label.
    pub label: String,
    /// Reservoir capacity.
    pub capacity: Volume,
    /// Low-reservoir alarm threshold.
    pub low_alarm: Volume,
    /// Labelled worst-case accuracy margin, per mille.
    pub accuracy_permille: u16,
    /// When the reservoir was last filled.
    pub filled_at: DateTime<Utc>,
    /// Volume after that fill.
    pub volume_after: Volume,
    /// Prescribed flow.
    pub flow: Flow,
    /// Drug.
    pub drug: DrugId,
    /// Concentration in the reservoir.
    pub concentration: Concentration,
    /// The first refill of a new pump (ziconotide's shorter limit).
    pub first_refill: bool,
    /// The clinic's maximum interval.
    pub clinic_max: Duration,
    /// The prescribed schedule when it is not a constant `flow` (a flex schedule).
    pub schedule: Option<Schedule>,
    /// Patient-bolus volume and most per day: thecal-rx plans as if every one were used.
    pub patient_bolus: Option<(Volume, u8)>,
}

/// One implant's due refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Due {
    /// Implant.
    pub implant_id: i64,
    /// Patient.
    pub patient_id: i64,
    /// Patient's label.
    pub label: String,
    /// Due instant.
    pub due_at: DateTime<Utc>,
    /// Due date (UTC).
    pub due_on: NaiveDate,
    /// What limits it: "volume", "stability" or "clinic".
    pub limited_by: String,
}

/// Whether a concentration is a dilution (not one of the drug's commercial strengths),
/// which selects the shorter stability limit.
pub fn diluted(drug: DrugId, conc: Concentration) -> bool {
    !drug.info().strengths.contains(&conc)
}

/// Computes one implant's due refill.
///
/// # Errors
/// A plan thecal-rx refuses (volume above capacity, no limit, overflow).
pub fn due(input: &DueInput) -> Result<Due, FieldError> {
    // The worst-case margin is applied by thecal-rx (`over_delivery_permille`).
    let nominal = input
        .schedule
        .clone()
        .unwrap_or_else(|| Schedule::continuous(input.flow));
    let stability = input
        .drug
        .info()
        .stability
        .map(|s| s.limit(diluted(input.drug, input.concentration), input.first_refill));
    let start_ms = u64::try_from(input.filled_at.timestamp_millis()).unwrap_or(0);
    let p = plan(&RefillInput {
        capacity: input.capacity,
        volume: input.volume_after,
        schedule: &nominal,
        start: LocalTime(start_ms),
        patient_bolus: input.patient_bolus,
        low_alarm: input.low_alarm,
        low_alarm_days: 0,
        over_delivery_permille: input.accuracy_permille,
        stability,
        clinic_max: Some(input.clinic_max),
    })
    .map_err(|e| FieldError::new("refill", e.to_string()))?;
    let ms = i64::try_from(p.refill_by.ms()).unwrap_or(i64::MAX);
    let due_at = input
        .filled_at
        .checked_add_signed(TimeDelta::milliseconds(ms))
        .ok_or_else(|| FieldError::new("refill", "due date out of range"))?;
    Ok(Due {
        implant_id: input.implant_id,
        patient_id: input.patient_id,
        label: input.label.clone(),
        due_at,
        due_on: due_at.date_naive(),
        limited_by: p.limited_by.as_str().to_owned(),
    })
}

/// A booked slot on a day of the daily list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Booked {
    /// The due refill.
    #[serde(flatten)]
    pub due: Due,
    /// Booked after its due date (capacity ran out).
    pub late: bool,
}

/// One day's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Day {
    /// Date.
    pub date: NaiveDate,
    /// Visits, earliest due first.
    pub visits: Vec<Booked>,
}

/// The refill calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Calendar {
    /// Due before today, most overdue first.
    pub overdue: Vec<Due>,
    /// Due from today to six days on.
    pub this_week: Vec<Due>,
    /// The daily lists from today, each at most `capacity` visits.
    pub days: Vec<Day>,
}

/// Builds the lists from the due refills. Every implant due before the end of the horizon
/// is booked on the earliest day with room, in order of due date (ties by implant id).
pub fn calendar(
    mut dues: Vec<Due>,
    today: NaiveDate,
    capacity: usize,
    horizon_days: u64,
) -> Calendar {
    dues.sort_by_key(|d| (d.due_at, d.implant_id));
    let week_end = today.checked_add_days(Days::new(7)).unwrap_or(today);
    let horizon_end = today
        .checked_add_days(Days::new(horizon_days))
        .unwrap_or(today);
    let overdue: Vec<Due> = dues.iter().filter(|d| d.due_on < today).cloned().collect();
    let this_week: Vec<Due> = dues
        .iter()
        .filter(|d| d.due_on >= today && d.due_on < week_end)
        .cloned()
        .collect();
    let mut queue = dues
        .into_iter()
        .filter(|d| d.due_on < horizon_end)
        .peekable();
    let mut days = Vec::new();
    let mut date = today;
    while date < horizon_end {
        let mut visits = Vec::new();
        while visits.len() < capacity {
            match queue.next() {
                Some(d) => visits.push(Booked {
                    late: d.due_on < date,
                    due: d,
                }),
                None => break,
            }
        }
        days.push(Day { date, visits });
        match date.succ_opt() {
            Some(d) => date = d,
            None => break,
        }
    }
    Calendar {
        overdue,
        this_week,
        days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn input(volume_ml: u32, flow: &str, margin: u16) -> DueInput {
        DueInput {
            implant_id: 1,
            patient_id: 1,
            label: "P".into(),
            capacity: Volume::from_ml(20),
            low_alarm: Volume::from_ml(2),
            accuracy_permille: margin,
            filled_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            volume_after: Volume::from_ml(volume_ml),
            flow: flow.parse().unwrap(),
            drug: DrugId::Baclofen,
            concentration: Concentration::from_mcg_per_ml(2000),
            first_refill: false,
            clinic_max: Duration::from_days(DEFAULT_CLINIC_MAX_DAYS),
            schedule: None,
            patient_bolus: None,
        }
    }

    #[test]
    fn due_is_the_low_alarm_at_nominal_rate_without_margin_clinic_007() {
        // 20 mL, alarm at 2 mL, 0.5 mL/day: 18 mL / 0.5 = 36 days → 2026-02-06.
        let d = due(&input(20, "0.5 mL/day", 0)).unwrap();
        assert_eq!(d.due_on, NaiveDate::from_ymd_opt(2026, 2, 6).unwrap());
        assert_eq!(d.limited_by, "volume");
    }

    #[test]
    fn accuracy_margin_brings_the_due_date_forward_clinic_007() {
        // 0.4 mL/day × 1.25 = 0.5 mL/day worst case: 18 mL → 36 days, not 45.
        let d = due(&input(20, "0.4 mL/day", 250)).unwrap();
        assert_eq!(d.due_on, NaiveDate::from_ymd_opt(2026, 2, 6).unwrap());
        let nominal = due(&input(20, "0.4 mL/day", 0)).unwrap();
        assert_eq!(
            nominal.due_on,
            NaiveDate::from_ymd_opt(2026, 2, 15).unwrap()
        );
    }

    #[test]
    fn patient_boluses_and_a_flex_day_are_planned_at_their_worst_clinic_065() {
        // 0.4 mL/day basal plus 2 boluses of 0.05 mL a day, all used: 0.5 mL/day, so 18 mL
        // last 36 days (2026-02-06), not the basal's 45.
        let mut i = input(20, "0.4 mL/day", 0);
        i.patient_bolus = Some((Volume::from_raw(50_000), 2));
        assert_eq!(
            due(&i).unwrap().due_on,
            NaiveDate::from_ymd_opt(2026, 2, 6).unwrap()
        );
        // A flex day: 0.2 mL/day until noon, 0.8 mL/day after: 0.1 + 0.4 = 0.5 mL a day;
        // the constant `flow` beside it is not used.
        let mut f = input(20, "0.1 mL/day", 0);
        let steps = [
            thecal_rx::schedule::Step {
                start_minute: 0,
                flow: "0.2 mL/day".parse().unwrap(),
            },
            thecal_rx::schedule::Step {
                start_minute: 720,
                flow: "0.8 mL/day".parse().unwrap(),
            },
        ];
        f.schedule = Some(Schedule::daily(
            thecal_rx::schedule::DayProfile::new(&steps).unwrap(),
        ));
        assert_eq!(
            due(&f).unwrap().due_on,
            NaiveDate::from_ymd_opt(2026, 2, 6).unwrap()
        );
    }

    #[test]
    fn clinic_maximum_limits_a_slow_pump_clinic_007() {
        // 0.05 mL/day: 18 mL lasts 360 days; the clinic's 180 days come first → 2026-06-30.
        let d = due(&input(20, "0.05 mL/day", 0)).unwrap();
        assert_eq!(d.limited_by, "clinic");
        assert_eq!(d.due_on, NaiveDate::from_ymd_opt(2026, 6, 30).unwrap());
    }

    #[test]
    fn ziconotide_first_refill_is_limited_by_stability_clinic_007() {
        let mut i = input(20, "0.1 mL/day", 0);
        i.drug = DrugId::Ziconotide;
        i.concentration = Concentration::from_mcg_per_ml(25);
        i.first_refill = true;
        let d = due(&i).unwrap();
        assert_eq!(d.limited_by, "stability");
        assert!(
            d.due_on <= NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
            "{d:?}"
        );
    }

    fn due_on(id: i64, date: &str) -> Due {
        let on: NaiveDate = date.parse().unwrap();
        Due {
            implant_id: id,
            patient_id: id,
            label: format!("P{id}"),
            due_at: on.and_hms_opt(12, 0, 0).unwrap().and_utc(),
            due_on: on,
            limited_by: "volume".into(),
        }
    }

    #[test]
    fn lists_overdue_this_week_and_days_by_capacity_clinic_008() {
        let today: NaiveDate = "2026-12-03".parse().unwrap();
        let dues = vec![
            due_on(4, "2026-12-04"),
            due_on(2, "2026-12-03"),
            due_on(1, "2026-12-01"),
            due_on(3, "2026-12-03"),
            due_on(5, "2026-12-10"),
            due_on(6, "2027-03-01"),
        ];
        let c = calendar(dues, today, 2, 3);
        let ids = |v: &[Due]| v.iter().map(|d| d.implant_id).collect::<Vec<_>>();
        assert_eq!(ids(&c.overdue), vec![1]);
        assert_eq!(ids(&c.this_week), vec![2, 3, 4]);
        assert_eq!(c.days.len(), 3);
        let day = |i: usize| {
            c.days[i]
                .visits
                .iter()
                .map(|b| (b.due.implant_id, b.late))
                .collect::<Vec<_>>()
        };
        // Capacity 2: day 1 takes the overdue one and one due today; the other due today
        // moves to tomorrow (late), with the one due tomorrow.
        assert_eq!(day(0), vec![(1, true), (2, false)]);
        assert_eq!(day(1), vec![(3, true), (4, false)]);
        assert_eq!(day(2), vec![]);
    }
}
