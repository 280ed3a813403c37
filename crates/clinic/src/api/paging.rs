//! Paged lists (CLINIC-170): a list the clinic can hold thousands of (the replacement plan
//! of a clinic whose pumps all near their ERI) is sent a page at a time, with the whole
//! list's length in `X-Total-Count`.

use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiError, ApiResult};
use crate::domain::replacement::{self, Plan, Urgency};

/// The header carrying how many items the whole list has.
pub const TOTAL_COUNT: &str = "x-total-count";

/// Default page length.
pub const DEFAULT_LIMIT: i64 = 100;
/// Longest page.
pub const MAX_LIMIT: i64 = 1000;

/// A page of the replacement plan.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ReplacementQuery {
    /// Items skipped from the start of the list (default 0).
    #[param(minimum = 0, nullable = false)]
    pub offset: Option<i64>,
    /// At most this many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000, nullable = false)]
    pub limit: Option<i64>,
    /// Only the implants needing action: ERI reached, past the stop, or the case open
    /// (default false: every implant with a projected ERI).
    #[param(nullable = false)]
    pub urgent: Option<bool>,
}

impl ReplacementQuery {
    /// (offset, limit), checked.
    pub(super) fn checked(&self) -> ApiResult<(usize, usize)> {
        let offset = self.offset.unwrap_or(0);
        let offset = usize::try_from(offset)
            .map_err(|_| ApiError::invalid("offset", "must be 0 or more"))?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be 1 to 1000"));
        }
        Ok((offset, usize::try_from(limit).unwrap_or(1)))
    }
}

/// The plans of `eris` (implant, projected ERI) by urgency, then by the nearest stop, then
/// by implant; `urgent` keeps those needing action. Returns the whole list's length and
/// the page `[offset, offset + limit)`.
pub fn replacement_page(
    eris: &[(i64, NaiveDate)],
    today: NaiveDate,
    urgent: bool,
    offset: usize,
    limit: usize,
) -> (usize, Vec<Plan>) {
    let plans: Vec<Plan> = eris
        .iter()
        .map(|&(id, eri)| replacement::plan(id, eri, today))
        .filter(|p| !urgent || p.urgency != Urgency::Planned)
        .collect();
    let total = plans.len();
    let plans = replacement::by_urgency(plans);
    let page = plans.into_iter().skip(offset).take(limit).collect();
    (total, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Hand-worked: today 2026-12-03. Stop = ERI + 90 d; case opens 183 d before the stop.
    /// 1: ERI 2028-01-01 → planned. 2: ERI 2026-12-01 → ERI reached (stop 2027-03-01).
    /// 3: ERI 2027-02-01 → stop 2027-05-02, case open since 2026-10-31 → open case.
    /// 4: ERI 2026-08-01 → stop 2026-10-30, past. 5: ERI 2027-01-15 → open case, stop
    /// 2027-04-15 (before 3's).
    fn eris() -> Vec<(i64, NaiveDate)> {
        vec![
            (1, d("2028-01-01")),
            (2, d("2026-12-01")),
            (3, d("2027-02-01")),
            (4, d("2026-08-01")),
            (5, d("2027-01-15")),
        ]
    }

    #[test]
    fn pages_follow_urgency_and_reach_every_plan_clinic_170() {
        let today = d("2026-12-03");
        let mut seen = Vec::new();
        for offset in [0, 2, 4] {
            let (total, page) = replacement_page(&eris(), today, false, offset, 2);
            assert_eq!(total, 5);
            assert!(page.len() <= 2);
            seen.extend(page.iter().map(|p| p.implant_id));
        }
        assert_eq!(seen, vec![4, 2, 5, 3, 1]);
        let (total, page) = replacement_page(&eris(), today, false, 5, 2);
        assert_eq!((total, page.len()), (5, 0));
    }

    #[test]
    fn urgent_leaves_out_the_planned_clinic_170() {
        let (total, page) = replacement_page(&eris(), d("2026-12-03"), true, 0, 3);
        assert_eq!(total, 4);
        let ids: Vec<i64> = page.iter().map(|p| p.implant_id).collect();
        assert_eq!(ids, vec![4, 2, 5]);
    }

    #[test]
    fn bad_paging_names_the_field_clinic_170() {
        let q = ReplacementQuery {
            offset: Some(-1),
            ..ReplacementQuery::default()
        };
        assert!(q.checked().is_err());
        for limit in [0, 1001] {
            let q = ReplacementQuery {
                limit: Some(limit),
                ..ReplacementQuery::default()
            };
            assert!(q.checked().is_err());
        }
        assert_eq!(ReplacementQuery::default().checked().unwrap(), (0, 100));
    }
}
