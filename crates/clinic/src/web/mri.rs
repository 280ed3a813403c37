//! The MRI checklist (CLINIC.md §2.5): before a scan, the plan (date, field strength,
//! the labelling version whose conditions apply, the therapy while the pump cannot
//! deliver) and the checks of the pump's kind, all required; after the scan, the
//! post-scan interrogation, without which the episode does not close (the API refuses it
//! and the page shows why, next to the box).
//!
//! The checks differ by pump: a peristaltic (SynchroMed-class) pump's motor stops in the
//! field and may take 2–24 h to recover; a valve (Prometra-class) pump is emptied and set
//! to 0.0 mg/day before the scan. Every value goes to the API (`POST
//! /api/v1/implants/{id}/mri`, `POST /api/v1/mri/{id}/close`), which checks it again.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use chrono::NaiveDate;

use super::pages::{Ctx, Field};
use super::{
    Page, Session, Web, check_csrf, may, message, refill_fields, render, see_other, val, when,
};
use crate::domain::events::MriEpisode;
use crate::domain::records::Implant;
use crate::storage::Kind;

/// A refused form: what was typed and the error.
type Refused<'a> = (&'a HashMap<String, String>, super::FieldErr);

/// The MRI page of an implant: the checklist and the implant's episodes.
#[derive(Template)]
#[template(path = "mri.html")]
pub struct MriPage {
    /// Layout.
    pub ctx: Ctx,
    /// Implant.
    pub id: i64,
    /// Patient.
    pub patient_id: i64,
    /// Pump model and serial.
    pub pump: String,
    /// The pump's kind in words.
    pub kind: &'static str,
    /// Episodes: (id, scan date, field strength, state).
    pub episodes: Vec<(i64, String, String, String)>,
    /// The checklist's fields (none when the role may not record).
    pub fields: Vec<Field>,
    /// The role may record.
    pub may_record: bool,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors: (name, label, error).
    pub summary: Vec<(String, String, String)>,
}

/// One MRI episode.
#[derive(Template)]
#[template(path = "mri_episode.html")]
pub struct MriEpisodePage {
    /// Layout.
    pub ctx: Ctx,
    /// Episode.
    pub id: i64,
    /// Implant.
    pub implant_id: i64,
    /// The plan and the post-scan check: (what, value).
    pub rows: Vec<(String, String)>,
    /// The post-scan form (open episodes, roles that record).
    pub fields: Option<Vec<Field>>,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors: (name, label, error).
    pub summary: Vec<(String, String, String)>,
}

/// A valve (Prometra-class) pump, by its model's name; others are peristaltic.
fn valve_pump(imp: &Implant) -> bool {
    imp.details.pump_model.to_lowercase().contains("prometra")
}

/// The checklist of a pump's kind: the plan's fields, then the checks (each required).
pub(super) fn checklist(valve: bool) -> Vec<Field> {
    let mut f = vec![
        Field::new("scan_on", "Scan date", "date", "A date, YYYY-MM-DD."),
        Field::new(
            "field_strength",
            "Field strength",
            "text",
            "With its unit, from 0.2 T to 7 T in tenths, e.g. 1.5 T; within the labelling's conditions.",
        ),
        Field::new(
            "labeling",
            "Labelling version whose conditions apply",
            "text",
            "1–200 characters, e.g. SynchroMed II MRI guidelines 2019.",
        ),
        Field::new(
            "therapy_plan",
            "Therapy while the pump cannot deliver",
            "textarea",
            "Can the patient go without the drug for the scan and the recovery? If not, the other route planned; 1–2000 characters.",
        ),
    ];
    if valve {
        f.extend([
            Field::new("chk_emptied", "The reservoir will be emptied and 0.0 mg/day programmed before the scan", "checkbox", "Required (valve pump labelling); an emergency scan without emptying is decided by a physician at the pump, not here."),
            Field::new("chk_conditions", "The scanner is 1.5 T with a spatial gradient of at most 20 T/m", "checkbox", "Required: the valve pump's labelled conditions."),
            Field::new("chk_wound", "The implant wound is healed", "checkbox", "Required."),
            Field::new("chk_after", "Refill, programming and read-back are booked after the scan", "checkbox", "Required: the flow-activated valve must be reset."),
        ]);
    } else {
        f.extend([
            Field::new("chk_motor", "The motor stops in the scanner and may take 2–24 h to recover; the pump is not pre-set to stopped", "checkbox", "Required: the team and the patient know it, and the therapy plan above covers it."),
            Field::new("chk_conditions", "The scan is within the labelling version's conditions (field strength, gradient, time)", "checkbox", "Required."),
            Field::new("chk_after", "An interrogation after the scan is booked", "checkbox", "Required: an alarming pump may wait in telemetry mode until it is interrogated."),
        ]);
    }
    f
}

/// Reads a field strength with its unit into tenths of a tesla ("1.5 T" → 15).
pub(super) fn tenths_of_tesla(typed: &str) -> Result<u16, String> {
    let t = typed.trim();
    let number = t
        .strip_suffix("tesla")
        .or_else(|| t.strip_suffix('T'))
        .map(str::trim);
    let allowed =
        "must be a field strength with its unit, from 0.2 T to 7 T in tenths, e.g. 1.5 T or 3 T";
    let Some(n) = number else {
        return Err(format!("{allowed} (the unit T is missing)"));
    };
    let (whole, frac) = n.split_once('.').unwrap_or((n, "0"));
    let (Ok(w), Ok(f)) = (whole.parse::<u16>(), frac.parse::<u16>()) else {
        return Err(allowed.to_owned());
    };
    if frac.len() != 1 || w > 7 {
        return Err(allowed.to_owned());
    }
    let tenths = w * 10 + f;
    if !(2..=70).contains(&tenths) {
        return Err(allowed.to_owned());
    }
    Ok(tenths)
}

async fn implant_mri(w: &Web, s: &Session, id: i64, typed: Option<Refused<'_>>) -> Page {
    w.require(s, "GET", "/api/v1/mri/{id}", "read MRI episodes")?;
    let (imp, p) = w.implant_and_patient(s, id).await?;
    let may_record = may(s.role, "POST", "/api/v1/implants/{id}/mri") && imp.explant.is_none();
    let valve = valve_pump(&imp);
    let mut fields = if may_record { checklist(valve) } else { vec![] };
    let mut general_error = None;
    if let Some((form, err)) = typed {
        general_error = refill_fields(&mut fields, form, Some(err));
    }
    let episodes: Vec<MriEpisode> = w.rows(Kind::MriEpisode, id).await?;
    let summary = Field::summary(&fields);
    let status = if general_error.is_some() || !summary.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let banner = w.banner(&p).await?;
    Ok(render(
        status,
        &MriPage {
            ctx: s.ctx_for(banner),
            id,
            patient_id: p.id,
            pump: format!("{} serial {}", imp.details.pump_model, imp.details.serial),
            kind: if valve {
                "valve pump (Prometra-class): empty it and program 0.0 mg/day before the scan"
            } else {
                "peristaltic pump (SynchroMed-class): the motor stops in the scanner"
            },
            episodes: episodes
                .iter()
                .map(|e| {
                    (
                        e.id,
                        e.plan.scan_on.to_string(),
                        format!(
                            "{}.{} T",
                            e.plan.field_tenths_tesla / 10,
                            e.plan.field_tenths_tesla % 10
                        ),
                        if e.closed.is_some() {
                            "closed after the post-scan interrogation".to_owned()
                        } else {
                            "open: post-scan interrogation to record".to_owned()
                        },
                    )
                })
                .collect(),
            fields,
            may_record,
            general_error,
            summary,
        },
    ))
}

pub(super) async fn mri_page(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Page {
    let s = w.session(&headers).await?;
    implant_mri(&w, &s, id, None).await
}

/// Checks the checklist on the server: the first refused field and why.
pub(super) fn check_plan(
    valve: bool,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, (Option<String>, String)> {
    let err = |f: &str, m: String| (Some(f.to_owned()), m);
    let scan = val(form, "scan_on");
    let scan_on: NaiveDate = scan.trim().parse().map_err(|_| {
        err(
            "scan_on",
            if scan.trim().is_empty() {
                "required: the scan date, YYYY-MM-DD".to_owned()
            } else {
                format!(
                    "must be a date written YYYY-MM-DD, e.g. 2027-03-01 (you typed “{}”)",
                    scan.trim()
                )
            },
        )
    })?;
    let tenths =
        tenths_of_tesla(&val(form, "field_strength")).map_err(|m| err("field_strength", m))?;
    let mut confirmed = Vec::new();
    for f in checklist(valve).iter().filter(|f| f.kind == "checkbox") {
        if val(form, f.name) != "on" {
            return Err(err(
                f.name,
                "required: tick it once it is true; the scan is not planned without it".to_owned(),
            ));
        }
        confirmed.push(f.label);
    }
    Ok(serde_json::json!({
        "scan_on": scan_on,
        "field_tenths_tesla": tenths,
        "labeling": val(form, "labeling"),
        "therapy_plan": val(form, "therapy_plan"),
        "confirmed": confirmed,
    }))
}

pub(super) async fn mri_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, "POST", "/api/v1/implants/{id}/mri", "plan an MRI scan")?;
    let (imp, _) = w.implant_and_patient(&s, id).await?;
    let body = match check_plan(valve_pump(&imp), &form) {
        Ok(b) => b,
        Err(e) => return implant_mri(&w, &s, id, Some((&form, e))).await,
    };
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/implants/{id}/mri"),
            Some(&s),
            Some(body),
        )
        .await?;
    if a.status.is_success() {
        let e: MriEpisode = a.json()?;
        return Ok(see_other(&format!("/mri/{}", e.id)));
    }
    let (field, msg) = a.error();
    let field = match field.as_deref() {
        Some("field_tenths_tesla") => Some("field_strength".to_owned()),
        _ => field,
    };
    implant_mri(&w, &s, id, Some((&form, (field, msg)))).await
}

fn close_fields() -> Vec<Field> {
    vec![
        Field::new(
            "post_scan_interrogation",
            "The pump was interrogated after the scan",
            "checkbox",
            "Required to close: the motor may have stalled, or the pump may wait in telemetry mode until interrogated.",
        ),
        Field::new(
            "findings",
            "Findings of the post-scan interrogation",
            "textarea",
            "Motor recovered, alarms, reservoir; 1–4000 characters.",
        ),
    ]
}

async fn episode_view(w: &Web, s: &Session, id: i64, typed: Option<Refused<'_>>) -> Page {
    let e: MriEpisode = w.get_json(s, &format!("/api/v1/mri/{id}")).await?;
    let (imp, p) = w.implant_and_patient(s, e.implant_id).await?;
    let mut rows = vec![
        (
            "Pump".to_owned(),
            format!("{} serial {}", imp.details.pump_model, imp.details.serial),
        ),
        ("Scan date".to_owned(), e.plan.scan_on.to_string()),
        (
            "Field strength".to_owned(),
            format!(
                "{}.{} T",
                e.plan.field_tenths_tesla / 10,
                e.plan.field_tenths_tesla % 10
            ),
        ),
        ("Labelling version".to_owned(), e.plan.labeling.clone()),
        (
            "Therapy while the pump cannot deliver".to_owned(),
            e.plan.therapy_plan.clone(),
        ),
        (
            "Checks confirmed at planning".to_owned(),
            if e.plan.confirmed.is_empty() {
                "none recorded (planned without the console's checklist)".to_owned()
            } else {
                e.plan
                    .confirmed
                    .iter()
                    .map(|c| format!("✓ {c}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        ),
    ];
    if let Some(c) = &e.closed {
        rows.push((
            "Post-scan interrogation".to_owned(),
            format!(
                "done; closed by {} at {}",
                e.closed_by.clone().unwrap_or_default(),
                e.closed_at.as_ref().map_or_else(String::new, when)
            ),
        ));
        rows.push(("Findings".to_owned(), c.findings.clone()));
    }
    let mut fields =
        (e.closed.is_none() && may(s.role, "POST", "/api/v1/mri/{id}/close")).then(close_fields);
    let mut general_error = None;
    if let Some((form, err)) = typed {
        general_error = match fields.as_mut() {
            Some(f) => refill_fields(f, form, Some(err)),
            None => Some(err.1),
        };
    }
    let summary = Field::summary(fields.iter().flatten());
    let status = if general_error.is_some() || !summary.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let banner = w.banner(&p).await?;
    Ok(render(
        status,
        &MriEpisodePage {
            ctx: s.ctx_for(banner),
            id,
            implant_id: e.implant_id,
            rows,
            fields,
            general_error,
            summary,
        },
    ))
}

pub(super) async fn episode_page(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/mri/{id}", "read MRI episodes")?;
    episode_view(&w, &s, id, None).await
}

pub(super) async fn episode_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, "POST", "/api/v1/mri/{id}/close", "close an MRI episode")?;
    let body = serde_json::json!({
        "post_scan_interrogation": val(&form, "post_scan_interrogation") == "on",
        "findings": val(&form, "findings"),
    });
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/mri/{id}/close"),
            Some(&s),
            Some(body),
        )
        .await?;
    if a.status.is_success() {
        return Ok(see_other(&format!("/mri/{id}")));
    }
    let err = a.error();
    if a.status == StatusCode::NOT_FOUND {
        return Err(message(s.ctx(), a.status, "Not found", &err.1, "/today"));
    }
    episode_view(&w, &s, id, Some((&form, err))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_strength_needs_its_unit_and_the_range_clinic_112() {
        assert_eq!(tenths_of_tesla("1.5 T"), Ok(15));
        assert_eq!(tenths_of_tesla("3T"), Ok(30));
        assert_eq!(tenths_of_tesla(" 0.2 tesla "), Ok(2));
        assert_eq!(tenths_of_tesla("7 T"), Ok(70));
        for bad in [
            "1.5", "15 T", "0.1 T", "7.1 T", "1.55 T", "T", "-1 T", "1,5 T",
        ] {
            let e = tenths_of_tesla(bad).unwrap_err();
            assert!(e.contains("0.2 T to 7 T"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_check_of_the_pump_kind_is_required_clinic_112() {
        let mut form: HashMap<String, String> = [
            ("scan_on", "2027-03-01"),
            ("field_strength", "1.5 T"),
            ("labeling", "SynchroMed II 2019"),
            ("therapy_plan", "oral baclofen bridge"),
            ("chk_motor", "on"),
            ("chk_conditions", "on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let e = check_plan(false, &form).unwrap_err();
        assert_eq!(e.0.as_deref(), Some("chk_after"));
        form.insert("chk_after".into(), "on".into());
        let v = check_plan(false, &form).unwrap();
        assert_eq!(v["field_tenths_tesla"], 15);
        // What was confirmed is sent to be stored, as the checklist words it.
        let confirmed = v["confirmed"].as_array().unwrap();
        assert_eq!(confirmed.len(), 3);
        assert!(
            confirmed[2]
                .as_str()
                .unwrap()
                .contains("interrogation after the scan")
        );
        // A valve pump has its own checks: the peristaltic pump's ticks do not do.
        assert_eq!(
            check_plan(true, &form).unwrap_err().0.as_deref(),
            Some("chk_emptied")
        );
    }
}
