//! Replacement planning (CLINIC.md §2.6, §5): a SynchroMed-class pump stops 90 days after
//! its elective replacement indicator (ERI). A replacement case opens when the projected
//! stop is less than six months away or the ERI is reached; the surgery must be before
//! the stop.

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

/// Days from ERI to the pump's stop.
pub const ERI_TO_STOP_DAYS: u64 = 90;
/// A case opens this many days before the projected stop (six months).
pub const OPEN_CASE_DAYS_BEFORE_STOP: u64 = 183;

/// How urgent a replacement is, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Past the projected stop: the pump may have stopped.
    PastStop,
    /// ERI reached: surgery before the stop.
    EriReached,
    /// Stop within six months: open the case and book surgery.
    OpenCase,
    /// Later: nothing to do yet.
    Planned,
}

/// A replacement plan for one implant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Plan {
    /// Implant.
    pub implant_id: i64,
    /// Projected ERI.
    pub eri: NaiveDate,
    /// Projected stop (ERI + 90 days): replace before this date.
    pub replace_before: NaiveDate,
    /// When the replacement case opens.
    pub open_case_on: NaiveDate,
    /// Urgency today.
    pub urgency: Urgency,
    /// Days from today to the stop (negative: past).
    pub days_to_stop: i64,
}

/// Plans one implant's replacement.
pub fn plan(implant_id: i64, eri: NaiveDate, today: NaiveDate) -> Plan {
    let stop = eri
        .checked_add_days(Days::new(ERI_TO_STOP_DAYS))
        .unwrap_or(NaiveDate::MAX);
    let open = stop
        .checked_sub_days(Days::new(OPEN_CASE_DAYS_BEFORE_STOP))
        .unwrap_or(NaiveDate::MIN);
    let urgency = if today > stop {
        Urgency::PastStop
    } else if today >= eri {
        Urgency::EriReached
    } else if today >= open {
        Urgency::OpenCase
    } else {
        Urgency::Planned
    };
    Plan {
        implant_id,
        eri,
        replace_before: stop,
        open_case_on: open,
        urgency,
        days_to_stop: (stop - today).num_days(),
    }
}

/// Orders plans by urgency, then by the nearest stop.
pub fn by_urgency(mut plans: Vec<Plan>) -> Vec<Plan> {
    plans.sort_by_key(|p| (p.urgency, p.replace_before, p.implant_id));
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn eri_plus_90_days_is_the_replace_before_date_clinic_009() {
        // 2027-01-01 + 90 d = 2027-04-01; minus 183 d = 2026-09-30.
        let p = plan(1, d("2027-01-01"), d("2026-12-03"));
        assert_eq!(p.replace_before, d("2027-04-01"));
        assert_eq!(p.open_case_on, d("2026-09-30"));
        assert_eq!(p.urgency, Urgency::OpenCase);
        assert_eq!(p.days_to_stop, 119);
    }

    #[test]
    fn urgency_steps_through_planned_open_eri_and_past_clinic_009() {
        let eri = d("2027-01-01");
        assert_eq!(plan(1, eri, d("2026-09-29")).urgency, Urgency::Planned);
        assert_eq!(plan(1, eri, d("2026-09-30")).urgency, Urgency::OpenCase);
        assert_eq!(plan(1, eri, d("2027-01-01")).urgency, Urgency::EriReached);
        assert_eq!(plan(1, eri, d("2027-04-01")).urgency, Urgency::EriReached);
        assert_eq!(plan(1, eri, d("2027-04-02")).urgency, Urgency::PastStop);
    }

    #[test]
    fn list_is_ordered_by_urgency_then_stop_clinic_009() {
        let today = d("2026-12-03");
        let plans = vec![
            plan(1, d("2028-01-01"), today),
            plan(2, d("2026-12-01"), today),
            plan(3, d("2027-02-01"), today),
            plan(4, d("2026-08-01"), today),
            plan(5, d("2027-01-15"), today),
        ];
        let ids: Vec<i64> = by_urgency(plans).iter().map(|p| p.implant_id).collect();
        assert_eq!(ids, vec![4, 2, 5, 3, 1]);
    }
}
