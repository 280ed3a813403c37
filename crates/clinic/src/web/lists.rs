//! Today's list (CLINIC-171): the most urgent [`TODAY_LIMIT`] of each list with the
//! list's total and a link to the whole list, and the implants and patients the page
//! names read in a bounded number of queries ([`Web::implants_and_patients`]), never one
//! read per row.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::pages::{EriRow, FlaggedRow, TodayPage};
use super::{CalendarJson, Page, PlanJson, Session, Web, due_rows, message, render, when};
use crate::domain::records::{Implant, Patient, RefillVisit};
use crate::storage::Kind;

/// Rows of each list on today's page.
pub const TODAY_LIMIT: usize = 20;

fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("thecal-clinic: storage error: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

impl Web {
    /// A paged API list and its `X-Total-Count`.
    pub(super) async fn get_page<T: DeserializeOwned>(
        &self,
        s: &Session,
        path: &str,
    ) -> Result<(usize, Vec<T>), Response> {
        let a = self
            .call(axum::http::Method::GET, path, Some(s), None)
            .await?;
        if !a.status.is_success() {
            let (_, msg) = a.error();
            return Err(message(s.ctx(), a.status, "Not available", &msg, "/today"));
        }
        let items: Vec<T> = a.json()?;
        Ok((a.total.unwrap_or(items.len()), items))
    }

    /// The implants with these ids and their patients, by implant id, in two queries
    /// (of up to [`crate::storage::GET_MANY_CHUNK`] ids each); ids not found are left out.
    pub(super) async fn implants_and_patients(
        &self,
        implant_ids: &[i64],
    ) -> Result<HashMap<i64, (Implant, Patient)>, Response> {
        let implants: Vec<Implant> = self
            .st
            .store
            .get_many(Kind::Implant, implant_ids)
            .await
            .map_err(internal)?
            .iter()
            .map(|r| serde_json::from_str(&r.data).map_err(internal))
            .collect::<Result<_, _>>()?;
        let patient_ids: Vec<i64> = implants.iter().map(|i| i.patient_id).collect();
        let patients: HashMap<i64, Patient> = self
            .st
            .store
            .get_many(Kind::Patient, &patient_ids)
            .await
            .map_err(internal)?
            .iter()
            .map(|r| serde_json::from_str::<Patient>(&r.data).map_err(internal))
            .map(|p| p.map(|p| (p.id, p)))
            .collect::<Result<_, _>>()?;
        Ok(implants
            .into_iter()
            .filter_map(|i| {
                let p = patients.get(&i.patient_id).cloned()?;
                Some((i.id, (i, p)))
            })
            .collect())
    }
}

fn label(p: &Patient) -> String {
    format!("{} ({})", p.details.name, p.details.mrn)
}

/// Today's list: overdue and due this week from the calendar, flagged reconciliations
/// awaiting investigation (oldest first), implants needing replacement (most urgent
/// first); each at most [`TODAY_LIMIT`] rows with its total.
pub(super) async fn today_page(w: &Web, s: &Session) -> Page {
    let cal: CalendarJson = w.get_json(s, "/api/v1/calendar").await?;
    let (eri_total, plans): (usize, Vec<PlanJson>) = w
        .get_page(
            s,
            &format!("/api/v1/replacements?urgent=true&limit={TODAY_LIMIT}"),
        )
        .await?;
    let open =
        w.st.store
            .with_status(Kind::Visit, "open")
            .await
            .map_err(internal)?;
    let mut waiting: Vec<(i64, RefillVisit)> = open
        .iter()
        .filter_map(|row| Some((row.id, serde_json::from_str::<RefillVisit>(&row.data).ok()?)))
        .filter(|(_, v)| v.flagged && v.investigation.is_none())
        .collect();
    waiting.sort_by_key(|(id, v)| (v.opened_at, *id));
    let flagged_total = waiting.len();
    waiting.truncate(TODAY_LIMIT);
    let mut ids: Vec<i64> = plans.iter().map(|p| p.implant_id).collect();
    ids.extend(waiting.iter().map(|(_, v)| v.implant_id));
    let named = w.implants_and_patients(&ids).await?;
    let eri = plans
        .into_iter()
        .filter_map(|p| {
            let (_, patient) = named.get(&p.implant_id)?;
            Some(EriRow {
                patient_id: patient.id,
                label: label(patient),
                eri: p.eri.to_string(),
                replace_before: p.replace_before.to_string(),
                days_to_stop: p.days_to_stop,
                urgency: p.urgency.replace('_', " "),
            })
        })
        .collect();
    let flagged = waiting
        .into_iter()
        .filter_map(|(visit_id, v)| {
            let (_, patient) = named.get(&v.implant_id)?;
            Some(FlaggedRow {
                visit_id,
                label: label(patient),
                opened: when(&v.opened_at),
                text: v.reconciliation.unwrap_or_default(),
            })
        })
        .collect();
    let totals = [
        cal.overdue.len(),
        cal.this_week.len(),
        flagged_total,
        eri_total,
    ];
    let more = [
        totals[0] > TODAY_LIMIT,
        totals[1] > TODAY_LIMIT,
        totals[2] > TODAY_LIMIT,
        totals[3] > TODAY_LIMIT,
    ];
    let mut overdue = cal.overdue;
    overdue.truncate(TODAY_LIMIT);
    let mut this_week = cal.this_week;
    this_week.truncate(TODAY_LIMIT);
    Ok(render(
        StatusCode::OK,
        &TodayPage {
            ctx: s.ctx(),
            today: (w.st.now)().date_naive().to_string(),
            overdue: due_rows(overdue),
            this_week: due_rows(this_week),
            flagged,
            eri,
            problems: cal
                .problems
                .into_iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect(),
            totals,
            more,
        },
    ))
}
