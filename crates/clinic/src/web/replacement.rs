//! The replacement plan (CLINIC.md §2.6, §5): every implant with a projected elective
//! replacement indicator (ERI), most urgent first, from the API's list
//! (`GET /api/v1/replacements`: the pump stops ERI + 90 days; a case opens six months
//! before), with the stored plans; and one implant's page, with the patient band, where a
//! physician plans the surgery date (before the stop) and moves the plan on
//! (planned → scheduled → done) through the API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use chrono::NaiveDate;
use serde::Deserialize;

use super::pages::{Ctx, Field};
use super::{
    Page, PlanJson, Session, Web, check_csrf, may, message, refill_fields, render, see_other, val,
};
use crate::domain::replacement;

/// A stored plan as the API lists it.
#[derive(Debug, Clone, Deserialize)]
struct StoredPlan {
    id: i64,
    implant_id: i64,
    planned_on: NaiveDate,
    status: String,
    notes: String,
    planned_by: String,
}

/// An implant on the plan.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// Implant.
    pub implant_id: i64,
    /// "Name (record)".
    pub label: String,
    /// Pump serial.
    pub serial: String,
    /// Projected ERI.
    pub eri: String,
    /// Projected stop: replace before.
    pub replace_before: String,
    /// When the case opens.
    pub open_case_on: String,
    /// Days to the stop, in words with the unit.
    pub days_to_stop: String,
    /// Urgency in words.
    pub urgency: String,
    /// CSS class of the urgency.
    pub class: &'static str,
    /// The stored plan in words, if any.
    pub plan: String,
}

/// The replacement plan.
#[derive(Template)]
#[template(path = "replacements.html")]
pub struct ReplacementsPage {
    /// Layout.
    pub ctx: Ctx,
    /// Today.
    pub today: String,
    /// By urgency: this page of the list.
    pub rows: Vec<PlanRow>,
    /// This page (from 1), the number of pages, the list's length.
    pub page: usize,
    /// Pages in all.
    pub pages: usize,
    /// Implants in the list.
    pub total: usize,
}

/// Implants on one page of the replacement plan.
pub const PLAN_PAGE: usize = 50;

/// The replacement plan's page number.
#[derive(Debug, Deserialize)]
pub(super) struct PlanPageQuery {
    page: Option<String>,
}

/// One implant's replacement.
#[derive(Template)]
#[template(path = "replacement.html")]
pub struct ReplacementPage {
    /// Layout.
    pub ctx: Ctx,
    /// Implant.
    pub id: i64,
    /// Patient.
    pub patient_id: i64,
    /// Pump serial.
    pub serial: String,
    /// The projection: (what, value).
    pub rows: Vec<(String, String)>,
    /// Stored plans: (planned on, status, by, notes).
    pub plans: Vec<(String, String, String, String)>,
    /// The form to plan (physicians, while no plan is open).
    pub plan_fields: Option<Vec<Field>>,
    /// The form to move the open plan on: (plan id, fields).
    pub status_fields: Option<(i64, Vec<Field>)>,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors: (name, label, error).
    pub summary: Vec<(String, String, String)>,
}

fn urgency_words(u: &str) -> (&'static str, &'static str) {
    match u {
        "past_stop" => (
            "past the projected stop: the pump may have stopped",
            "sev-hard",
        ),
        "eri_reached" => ("ERI reached: replace before the stop", "sev-hard"),
        "open_case" => ("stop within six months: open the case", "sev-soft"),
        _ => ("planned: nothing to do yet", "sev-none"),
    }
}

fn plan_words(p: &StoredPlan) -> String {
    format!("{} on {} (by {})", p.status, p.planned_on, p.planned_by)
}

async fn stored_plans(w: &Web, s: &Session) -> Result<Vec<StoredPlan>, axum::response::Response> {
    w.get_json(s, "/api/v1/replacement-plans").await
}

pub(super) async fn replacements_page(
    State(w): State<Web>,
    headers: HeaderMap,
    Query(q): Query<PlanPageQuery>,
) -> Page {
    let s = w.session(&headers).await?;
    w.require(
        &s,
        "GET",
        "/api/v1/replacements",
        "read the replacement plan",
    )?;
    let page = match q.page.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            return Err(message(
                s.ctx(),
                StatusCode::BAD_REQUEST,
                "Not available",
                "page: a whole number from 1",
                "/replacements",
            ));
        }
    };
    let offset = (page - 1).saturating_mul(PLAN_PAGE);
    let (total, plans): (usize, Vec<PlanJson>) = w
        .get_page(
            &s,
            &format!("/api/v1/replacements?offset={offset}&limit={PLAN_PAGE}"),
        )
        .await?;
    let pages = total.div_ceil(PLAN_PAGE).max(1);
    if page > pages {
        return Err(message(
            s.ctx(),
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("page: the replacement plan has {pages} page(s)"),
            "/replacements",
        ));
    }
    let stored = stored_plans(&w, &s).await?;
    let ids: Vec<i64> = plans.iter().map(|p| p.implant_id).collect();
    let named = w.implants_and_patients(&ids).await?;
    let mut rows = Vec::new();
    for p in plans {
        let Some((imp, patient)) = named.get(&p.implant_id) else {
            continue;
        };
        let (urgency, class) = urgency_words(&p.urgency);
        let open = replacement::plan(imp.id, p.eri, (w.st.now)().date_naive()).open_case_on;
        rows.push(PlanRow {
            implant_id: imp.id,
            label: format!("{} ({})", patient.details.name, patient.details.mrn),
            serial: imp.details.serial.clone(),
            eri: p.eri.to_string(),
            replace_before: p.replace_before.to_string(),
            open_case_on: open.to_string(),
            days_to_stop: if p.days_to_stop < 0 {
                format!("{} days ago", -p.days_to_stop)
            } else {
                format!("{} days", p.days_to_stop)
            },
            urgency: urgency.to_owned(),
            class,
            plan: stored
                .iter()
                .filter(|x| x.implant_id == imp.id)
                .max_by_key(|x| x.id)
                .map_or_else(|| "none".to_owned(), plan_words),
        });
    }
    Ok(render(
        StatusCode::OK,
        &ReplacementsPage {
            ctx: s.ctx(),
            today: (w.st.now)().date_naive().to_string(),
            rows,
            page,
            pages,
            total,
        },
    ))
}

fn plan_fields() -> Vec<Field> {
    vec![
        Field::new(
            "planned_on",
            "Planned surgery date",
            "date",
            "A date (YYYY-MM-DD) from today and before the projected stop shown above.",
        ),
        Field::new(
            "notes",
            "Notes",
            "textarea",
            "Bridging, catheter to revise, …; up to 2000 characters.",
        ),
    ]
}

fn status_fields() -> Vec<Field> {
    vec![
        Field::new(
            "status",
            "New status",
            "select",
            "Scheduled: surgery booked; done: the pump was replaced.",
        )
        .options(vec![
            ("scheduled".into(), "scheduled (surgery booked)".into()),
            ("done".into(), "done (replaced)".into()),
        ]),
        Field::new(
            "new_planned_on",
            "New surgery date (optional)",
            "date",
            "Leave empty to keep the date; else YYYY-MM-DD, same limits as the plan.",
        ),
    ]
}

async fn replacement_view(w: &Web, s: &Session, id: i64, typed: Option<super::Typed<'_>>) -> Page {
    w.require(
        s,
        "GET",
        "/api/v1/replacements",
        "read the replacement plan",
    )?;
    let (imp, p) = w.implant_and_patient(s, id).await?;
    let today = (w.st.now)().date_naive();
    let mut rows = vec![(
        "Pump".to_owned(),
        format!("{} serial {}", imp.details.pump_model, imp.details.serial),
    )];
    let projection = imp
        .details
        .eri_projected
        .map(|eri| replacement::plan(id, eri, today));
    match &projection {
        Some(pl) => {
            let (urgency, _) = urgency_words(match pl.urgency {
                replacement::Urgency::PastStop => "past_stop",
                replacement::Urgency::EriReached => "eri_reached",
                replacement::Urgency::OpenCase => "open_case",
                replacement::Urgency::Planned => "planned",
            });
            rows.push(("Projected ERI".to_owned(), pl.eri.to_string()));
            rows.push((
                "Projected stop (ERI + 90 days): replace before".to_owned(),
                pl.replace_before.to_string(),
            ));
            rows.push((
                "Replacement case opens".to_owned(),
                pl.open_case_on.to_string(),
            ));
            rows.push((
                "Days to the stop".to_owned(),
                format!("{} days", pl.days_to_stop),
            ));
            rows.push(("Urgency today".to_owned(), urgency.to_owned()));
        }
        None => rows.push((
            "Projected ERI".to_owned(),
            "not recorded: no replacement can be planned until the battery's projection is"
                .to_owned(),
        )),
    }
    let stored: Vec<StoredPlan> = stored_plans(w, s)
        .await?
        .into_iter()
        .filter(|x| x.implant_id == id)
        .collect();
    let open = stored
        .iter()
        .filter(|x| x.status != "done")
        .max_by_key(|x| x.id);
    let may_plan = may(s.role, "POST", "/api/v1/implants/{id}/replacement-plans")
        && imp.explant.is_none()
        && projection.is_some();
    let mut plan_f = (may_plan && open.is_none()).then(plan_fields);
    let mut status_f = open
        .filter(|_| may(s.role, "POST", "/api/v1/replacement-plans/{id}/status"))
        .map(|o| (o.id, status_fields()));
    let mut general_error = None;
    if let Some((action, form, err)) = typed {
        let target = match action {
            "plan" => plan_f.as_mut(),
            _ => status_f.as_mut().map(|(_, f)| f),
        };
        general_error = match target {
            Some(f) => refill_fields(f, form, Some(err)),
            None => Some(err.1),
        };
    }
    let summary = Field::summary(
        plan_f
            .iter()
            .flatten()
            .chain(status_f.iter().flat_map(|(_, f)| f.iter())),
    );
    let status = if general_error.is_some() || !summary.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let banner = w.banner(&p).await?;
    Ok(render(
        status,
        &ReplacementPage {
            ctx: s.ctx_for(banner),
            id,
            patient_id: p.id,
            serial: imp.details.serial.clone(),
            rows,
            plans: stored
                .iter()
                .map(|x| {
                    (
                        x.planned_on.to_string(),
                        x.status.clone(),
                        x.planned_by.clone(),
                        x.notes.clone(),
                    )
                })
                .collect(),
            plan_fields: plan_f,
            status_fields: status_f,
            general_error,
            summary,
        },
    ))
}

pub(super) async fn replacement_page(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Page {
    let s = w.session(&headers).await?;
    replacement_view(&w, &s, id, None).await
}

fn date_of(
    form: &HashMap<String, String>,
    k: &str,
) -> Result<Option<NaiveDate>, (Option<String>, String)> {
    let t = val(form, k);
    if t.trim().is_empty() {
        return Ok(None);
    }
    t.trim().parse::<NaiveDate>().map(Some).map_err(|_| {
        (
            Some(k.to_owned()),
            format!(
                "must be a date written YYYY-MM-DD, e.g. 2027-03-01 (you typed “{}”)",
                t.trim()
            ),
        )
    })
}

pub(super) async fn replacement_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let action = val(&form, "action");
    let (api_rule, path, body) = match action.as_str() {
        "plan" => {
            w.require(
                &s,
                "POST",
                "/api/v1/implants/{id}/replacement-plans",
                "plan a replacement",
            )?;
            let planned_on = match date_of(&form, "planned_on") {
                Ok(Some(d)) => d,
                Ok(None) => {
                    let e = (
                        Some("planned_on".to_owned()),
                        "required: the planned surgery date, YYYY-MM-DD".to_owned(),
                    );
                    return replacement_view(&w, &s, id, Some(("plan", &form, e))).await;
                }
                Err(e) => return replacement_view(&w, &s, id, Some(("plan", &form, e))).await,
            };
            (
                "plan",
                format!("/api/v1/implants/{id}/replacement-plans"),
                serde_json::json!({"planned_on": planned_on, "notes": val(&form, "notes")}),
            )
        }
        "status" => {
            w.require(
                &s,
                "POST",
                "/api/v1/replacement-plans/{id}/status",
                "change a replacement plan",
            )?;
            let plan_id: i64 = val(&form, "plan").parse().unwrap_or(0);
            let status = val(&form, "status");
            if !["scheduled", "done"].contains(&status.as_str()) {
                let e = (
                    Some("status".to_owned()),
                    "choose scheduled or done".to_owned(),
                );
                return replacement_view(&w, &s, id, Some(("status", &form, e))).await;
            }
            let new_date = match date_of(&form, "new_planned_on") {
                Ok(d) => d,
                Err(e) => return replacement_view(&w, &s, id, Some(("status", &form, e))).await,
            };
            (
                "status",
                format!("/api/v1/replacement-plans/{plan_id}/status"),
                serde_json::json!({"status": status, "planned_on": new_date}),
            )
        }
        _ => {
            return Err(message(
                s.ctx(),
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "the form named no action; allowed: plan, status",
                &format!("/implants/{id}/replacement"),
            ));
        }
    };
    let a = w.call(Method::POST, &path, Some(&s), Some(body)).await?;
    if a.status.is_success() {
        return Ok(see_other(&format!("/implants/{id}/replacement")));
    }
    let (field, msg) = a.error();
    let field = match (api_rule, field.as_deref()) {
        ("status", Some("planned_on")) => Some("new_planned_on".to_owned()),
        _ => field,
    };
    replacement_view(&w, &s, id, Some((api_rule, &form, (field, msg)))).await
}
