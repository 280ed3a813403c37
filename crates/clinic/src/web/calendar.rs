//! The refill calendar page: overdue, due this week, due later within the list, and the
//! daily lists sized to the clinic's capacity, all from the API's calendar
//! (`GET /api/v1/calendar`, thecal-rx's due dates). The number of days listed is the one
//! thing the page asks, checked on the server with a message next to its field.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{Days, NaiveDate};
use serde::Deserialize;

use super::pages::{Ctx, DueRow, Field};
use super::{DueJson, Page, ProblemJson, Web, due_rows, render};

/// Days listed when the page is opened.
const DEFAULT_DAYS: u64 = 14;

#[derive(Deserialize)]
pub(super) struct CalendarQuery {
    days: Option<String>,
}

#[derive(Deserialize)]
struct BookedJson {
    patient_id: i64,
    label: String,
    due_on: NaiveDate,
    limited_by: String,
    late: bool,
}

#[derive(Deserialize)]
struct DayJson {
    date: NaiveDate,
    visits: Vec<BookedJson>,
}

#[derive(Deserialize)]
struct FullCalendarJson {
    overdue: Vec<DueJson>,
    this_week: Vec<DueJson>,
    days: Vec<DayJson>,
    problems: Vec<ProblemJson>,
}

/// A booked visit on a day's list.
#[derive(Debug, Clone)]
pub struct BookedRow {
    /// The due refill.
    pub due: DueRow,
    /// Booked after its due date: capacity ran out.
    pub late: bool,
}

/// One day of the daily list.
#[derive(Debug, Clone)]
pub struct DayView {
    /// The date, with its weekday.
    pub date: String,
    /// Visits booked.
    pub visits: Vec<BookedRow>,
    /// Visits booked out of the capacity, in words ("3 of 8 visits").
    pub load: String,
}

/// The refill calendar.
#[derive(Template)]
#[template(path = "calendar.html")]
pub struct CalendarPage {
    /// Layout.
    pub ctx: Ctx,
    /// Today.
    pub today: String,
    /// Visits a day.
    pub capacity: usize,
    /// Days listed.
    pub days: u64,
    /// The days field.
    pub fields: Vec<Field>,
    /// The field errors: (name, label, error).
    pub summary: Vec<(String, String, String)>,
    /// Overdue.
    pub overdue: Vec<DueRow>,
    /// Due from today to six days on.
    pub this_week: Vec<DueRow>,
    /// Due after this week, within the days listed.
    pub later: Vec<DueRow>,
    /// The daily lists.
    pub daily: Vec<DayView>,
    /// Implants without a due date, with why.
    pub problems: Vec<String>,
}

fn days_field() -> Field {
    Field::new(
        "days",
        "Days in the daily list",
        "text",
        "A whole number of days from 1 to 31, counted from today.",
    )
}

/// Reads the days asked for: `Ok` with the number, or the field's error.
pub(super) fn parse_days(typed: &str) -> Result<u64, String> {
    let t = typed.trim();
    if t.is_empty() {
        return Ok(DEFAULT_DAYS);
    }
    match t.parse::<u64>() {
        Ok(d) if (1..=31).contains(&d) => Ok(d),
        _ => Err(format!(
            "must be a whole number of days from 1 to 31 (you typed “{t}”); the list shows {DEFAULT_DAYS} days meanwhile"
        )),
    }
}

pub(super) async fn calendar_page(
    State(w): State<Web>,
    headers: HeaderMap,
    Query(q): Query<CalendarQuery>,
) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/calendar", "read the refill calendar")?;
    let typed = q.days.unwrap_or_default();
    let mut field = days_field();
    // The field shows the days listed, so the list never looks unasked-for.
    field.value = if typed.trim().is_empty() {
        DEFAULT_DAYS.to_string()
    } else {
        typed.clone()
    };
    let days = match parse_days(&typed) {
        Ok(d) => d,
        Err(e) => {
            field.error = Some(e);
            DEFAULT_DAYS
        }
    };
    let cal: FullCalendarJson = w
        .get_json(&s, &format!("/api/v1/calendar?days={days}"))
        .await?;
    let today = (w.st.now)().date_naive();
    let week_end = today.checked_add_days(Days::new(7)).unwrap_or(today);
    let capacity = w.st.config.capacity_per_day;
    let mut later = Vec::new();
    let mut daily = Vec::new();
    for d in cal.days {
        let mut visits = Vec::new();
        for b in d.visits {
            let row = DueRow {
                patient_id: b.patient_id,
                label: b.label,
                due_on: b.due_on.to_string(),
                limited_by: b.limited_by,
            };
            if b.due_on >= week_end {
                later.push(row.clone());
            }
            visits.push(BookedRow {
                due: row,
                late: b.late,
            });
        }
        daily.push(DayView {
            date: d.date.format("%a %Y-%m-%d").to_string(),
            load: format!(
                "{} of {capacity} visit{}",
                visits.len(),
                if capacity == 1 { "" } else { "s" }
            ),
            visits,
        });
    }
    let fields = vec![field];
    let summary = Field::summary(&fields);
    let status = if summary.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(render(
        status,
        &CalendarPage {
            ctx: s.ctx(),
            today: today.to_string(),
            capacity,
            days,
            fields,
            summary,
            overdue: due_rows(cal.overdue),
            this_week: due_rows(cal.this_week),
            later,
            daily,
            problems: cal
                .problems
                .into_iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_days_of_the_list_are_1_to_31_clinic_110() {
        assert_eq!(parse_days(""), Ok(14));
        assert_eq!(parse_days(" 7 "), Ok(7));
        assert_eq!(parse_days("31"), Ok(31));
        for bad in ["0", "32", "7.5", "-1", "a week"] {
            let e = parse_days(bad).unwrap_err();
            assert!(e.contains("1 to 31"), "{bad}: {e}");
        }
    }
}
