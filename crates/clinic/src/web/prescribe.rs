//! The prescription editor: one drug or an admixture (up to thecal-rx's drugs, each with
//! its concentration), a constant rate or a flex schedule with periodic boluses, patient
//! boluses; checked against the implant's own pump.
//!
//! - One check: the review shown (while typing and on "Check") is the API's
//!   [`prescription_review`](crate::api::prescription_review), and the confirm posts to the
//!   API, which runs the same review again before it stores.
//! - Findings while typing are progressive enhancement: `/static/findings.js` (served by
//!   the binary, `script-src 'self'`) posts the form to `…/prescription/check` and puts the
//!   server-rendered review into the page's `aria-live` region. With scripts off, "Check"
//!   shows the same review.
//! - The confirm carries a digest of the values whose review is on the screen; values that
//!   differ from it are not sent to the API but reviewed again, so a prescription is never
//!   confirmed without its own old-against-new table on the screen.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use thecal_rx::dose::MAX_DRUGS;

use super::pages::{Ctx, Field};
use super::{
    FieldErr, Page, Session, Web, check_csrf, drug_options, refill_fields, render, see_other, val,
    when,
};
use crate::api::{Review, prescription_review};
use crate::domain::change::{self, Checked};
use crate::domain::records::{NewPrescription, Prescription};
use crate::domain::regimen::{AdmixturePart, FlexBolus, FlexSchedule, FlexStep, PatientBolusOrder};

/// The script that shows the findings while the prescriber types.
pub const FINDINGS_JS: &str = include_str!("../../static/findings.js");

/// The API route whose rule authorizes the editor and its check.
pub const PRESCRIBE: (&str, &str) = ("POST", "/api/v1/implants/{id}/prescriptions");

/// The editor's routes: (method, console path); all authorized by [`PRESCRIBE`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/implants/{id}/prescription"),
    ("POST", "/implants/{id}/prescription"),
    ("POST", "/implants/{id}/prescription/check"),
];

/// Further drugs an admixture may hold besides the first.
const FURTHER: usize = MAX_DRUGS - 1;

pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route(
            "/implants/{id}/prescription",
            get(prescription_form).post(prescription_submit),
        )
        .route("/implants/{id}/prescription/check", post(check))
        .route("/static/findings.js", get(script))
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        FINDINGS_JS,
    )
        .into_response()
}

// ---------------------------------------------------------------- the form

const MIX_DRUG: [&str; FURTHER] = ["mix1_drug", "mix2_drug", "mix3_drug"];
const MIX_CONC: [&str; FURTHER] = [
    "mix1_concentration",
    "mix2_concentration",
    "mix3_concentration",
];
const MIX_DRUG_LABEL: [&str; FURTHER] = ["Second drug", "Third drug", "Fourth drug"];
const MIX_CONC_LABEL: [&str; FURTHER] = [
    "Second drug's concentration",
    "Third drug's concentration",
    "Fourth drug's concentration",
];

/// The fields, in groups: (legend, fields).
fn rx_groups() -> Vec<(&'static str, Vec<Field>)> {
    let mut mix = Vec::new();
    for i in 0..FURTHER {
        mix.push(
            Field::new(
                MIX_DRUG[i],
                MIX_DRUG_LABEL[i],
                "select",
                "Optional: a further drug of the admixture, different from the others.",
            )
            .options(drug_options()),
        );
        mix.push(Field::new(
            MIX_CONC[i],
            MIX_CONC_LABEL[i],
            "text",
            "With its unit, e.g. 100 mcg/mL; above zero, within the drug's limits. Its dose follows from the first drug's flow.",
        ));
    }
    vec![
        (
            "First drug",
            vec![
                Field::new(
                    "drug",
                    "Drug",
                    "select",
                    "One drug of the library; its dose sets the flow.",
                )
                .options(drug_options()),
                Field::new(
                    "concentration",
                    "Concentration",
                    "text",
                    "With its unit, e.g. 2000 mcg/mL or 25 mg/mL; above zero, within the drug's limits.",
                ),
                Field::new(
                    "daily_dose",
                    "Daily dose",
                    "text",
                    "With its unit, e.g. 400 mcg/day; within the drug's limits. Leave empty with a flex schedule.",
                ),
                Field::new(
                    "reservoir_volume",
                    "Reservoir volume after the fill",
                    "text",
                    "A volume with its unit, e.g. 20 mL; at most the reservoir's capacity.",
                ),
                Field::new(
                    "opioid_naive",
                    "The patient is opioid-naive",
                    "checkbox",
                    "Tick when the patient has not been taking opioids.",
                ),
            ],
        ),
        ("Admixture (optional): up to three further drugs", mix),
        (
            "Flex schedule (optional, programmable pumps)",
            vec![
                Field::new(
                    "flex_steps",
                    "Steps of the day",
                    "textarea",
                    "One step a line: the start HH:MM and the first drug's daily dose from then on, the first at 00:00, e.g. “00:00 300 mcg/day” then “08:00 600 mcg/day”. Empty: a constant rate.",
                ),
                Field::new(
                    "flex_boluses",
                    "Periodic boluses",
                    "textarea",
                    "One a line: the start HH:MM, the first drug's dose, “over”, the duration, e.g. “20:00 50 mcg over 30 min”; given every day. Needs steps.",
                ),
            ],
        ),
        (
            "Patient bolus (optional)",
            vec![
                Field::new(
                    "bolus_dose",
                    "Dose per bolus",
                    "text",
                    "The first drug's dose with its unit, e.g. 25 mcg. Empty: no patient bolus.",
                ),
                Field::new(
                    "bolus_duration",
                    "Delivered over",
                    "text",
                    "A duration with its unit, e.g. 10 min.",
                ),
                Field::new(
                    "bolus_lockout",
                    "Lockout",
                    "text",
                    "Shortest time between two boluses' starts, with its unit, e.g. 2 h.",
                ),
                Field::new(
                    "bolus_max_per_day",
                    "Most boluses in 24 h",
                    "text",
                    "A whole number from 1 to 24.",
                ),
            ],
        ),
        (
            "Reason and confirmation",
            vec![
                Field::new(
                    "reason",
                    "Reason for the change",
                    "textarea",
                    "1–2000 characters.",
                ),
                Field::new(
                    "confirm_soft_findings",
                    "Reason for accepting the soft findings",
                    "textarea",
                    "Required when the check lists soft findings, 1–2000 characters; recorded with your name.",
                ),
            ],
        ),
    ]
}

fn trimmed(form: &HashMap<String, String>, k: &str) -> String {
    val(form, k).trim().to_owned()
}

/// Reads the form into the API's prescription (text stays text: the domain reads the
/// quantities and names the field that cannot be read).
fn new_rx(form: &HashMap<String, String>) -> Result<NewPrescription, FieldErr> {
    let err = |k: &str, m: &str| (Some(k.to_owned()), m.to_owned());
    let mut admixture = Vec::new();
    for i in 0..FURTHER {
        let (d, c) = (trimmed(form, MIX_DRUG[i]), trimmed(form, MIX_CONC[i]));
        match (d.is_empty(), c.is_empty()) {
            (true, true) => {}
            (true, false) => {
                return Err(err(
                    MIX_DRUG[i],
                    "choose the drug of this concentration, or clear the concentration",
                ));
            }
            _ => admixture.push(AdmixturePart {
                drug: d,
                concentration: c,
            }),
        }
    }
    let steps_text = val(form, "flex_steps");
    let boluses_text = val(form, "flex_boluses");
    let flex = if steps_text.trim().is_empty() {
        if !boluses_text.trim().is_empty() {
            return Err(err(
                "flex_boluses",
                "periodic boluses need the steps of the day: write at least “00:00” and the daily dose",
            ));
        }
        None
    } else {
        let mut steps = Vec::new();
        for line in steps_text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (start, dose) = line.split_once(char::is_whitespace).ok_or_else(|| {
                err(
                    "flex_steps",
                    "each line: the start HH:MM, then the daily dose, e.g. 08:00 600 mcg/day",
                )
            })?;
            steps.push(FlexStep {
                start: start.to_owned(),
                daily_dose: dose.trim().to_owned(),
            });
        }
        let mut boluses = Vec::new();
        for line in boluses_text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let bad = || {
                err(
                    "flex_boluses",
                    "each line: the start HH:MM, the dose, “over”, the duration, e.g. 20:00 50 mcg over 30 min",
                )
            };
            let (start, rest) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
            let (dose, duration) = rest.split_once(" over ").ok_or_else(bad)?;
            boluses.push(FlexBolus {
                start: start.to_owned(),
                dose: dose.trim().to_owned(),
                duration: duration.trim().to_owned(),
                days: vec![],
            });
        }
        Some(FlexSchedule { steps, boluses })
    };
    let bolus_fields = [
        "bolus_dose",
        "bolus_duration",
        "bolus_lockout",
        "bolus_max_per_day",
    ];
    let patient_bolus = if bolus_fields.iter().all(|k| trimmed(form, k).is_empty()) {
        None
    } else {
        let max = trimmed(form, "bolus_max_per_day");
        let max_per_day = max
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=24).contains(n))
            .ok_or_else(|| {
                err(
                    "bolus_max_per_day",
                    "must be a whole number of boluses from 1 to 24",
                )
            })?;
        Some(PatientBolusOrder {
            dose: trimmed(form, "bolus_dose"),
            duration: trimmed(form, "bolus_duration"),
            lockout: trimmed(form, "bolus_lockout"),
            max_per_day,
        })
    };
    let confirm = val(form, "confirm_soft_findings");
    Ok(NewPrescription {
        drug: val(form, "drug"),
        concentration: val(form, "concentration"),
        daily_dose: val(form, "daily_dose"),
        reservoir_volume: val(form, "reservoir_volume"),
        opioid_naive: val(form, "opioid_naive") == "on",
        reason: val(form, "reason"),
        confirm_soft_findings: if confirm.trim().is_empty() {
            None
        } else {
            Some(confirm)
        },
        admixture,
        flex,
        patient_bolus,
    })
}

/// The form field of a domain or API field.
fn form_field(field: Option<&str>) -> Option<String> {
    let f = field?;
    if let Some(rest) = f.strip_prefix("admixture[") {
        let i: usize = rest.split(']').next()?.parse().ok()?;
        let conc = rest.ends_with(".concentration");
        return Some((if conc { MIX_CONC } else { MIX_DRUG }).get(i)?.to_string());
    }
    Some(
        match f {
            "admixture" => "mix1_drug",
            "prescription" => return None,
            _ if f.starts_with("flex.boluses") => "flex_boluses",
            _ if f.starts_with("flex") => "flex_steps",
            "patient_bolus.dose" => "bolus_dose",
            "patient_bolus.duration" => "bolus_duration",
            "patient_bolus.lockout" => "bolus_lockout",
            "patient_bolus.max_per_day" => "bolus_max_per_day",
            other => other,
        }
        .to_owned(),
    )
}

/// A digest of the clinical values (everything but the reasons): the review on the screen
/// is of these values.
fn digest(n: &NewPrescription) -> String {
    let clinical = NewPrescription {
        reason: String::new(),
        confirm_soft_findings: None,
        ..n.clone()
    };
    let bytes = serde_json::to_vec(&clinical).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- the review

/// The review region's content, alone (the answer to a check while typing).
#[derive(Template)]
#[template(path = "findings_fragment.html")]
pub struct RegionFragment {
    /// The review.
    pub review: ReviewRegion,
}

/// The review region: the verdict, old against new, the findings.
#[derive(Debug, Clone)]
pub struct ReviewRegion {
    /// none (nothing typed yet), invalid, hard, soft or clear.
    pub verdict: &'static str,
    /// The digest of the values reviewed (empty when none was).
    pub digest: String,
    /// Fields that cannot be read yet: (name, label, message).
    pub unreadable: Vec<(String, String, String)>,
    /// The pump the check used, in words.
    pub device: String,
    /// (setting, in force, new, changed).
    pub rows: Vec<(String, String, String, bool)>,
    /// The change in words.
    pub change: Vec<String>,
    /// (severity, message).
    pub findings: Vec<(String, String)>,
    /// Why the values are reviewed again (a confirm of values not on the screen).
    pub notice: Option<String>,
}

impl ReviewRegion {
    fn empty() -> Self {
        ReviewRegion {
            verdict: "none",
            digest: String::new(),
            unreadable: vec![],
            device: String::new(),
            rows: vec![],
            change: vec![],
            findings: vec![],
            notice: None,
        }
    }
    /// A confirm button belongs with this review.
    pub fn confirmable(&self) -> bool {
        matches!(self.verdict, "soft" | "clear")
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn contents_old(p: &Prescription) -> String {
    let mut s = format!("{} {}", p.drug, p.concentration);
    for c in &p.admixture {
        s.push_str(&format!(" + {} {}", c.drug, c.concentration));
    }
    s
}

fn doses_of(rx: &thecal_rx::check::Prescription) -> String {
    rx.contents
        .active()
        .map(|c| {
            rx.max_daily_dose(c.drug).map_or_else(
                || format!("{}: —", c.drug.name()),
                |d| format!("{} {d}", c.drug.name()),
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn schedule_words(flex: Option<&FlexSchedule>, flow: &str) -> String {
    match flex {
        None => format!("constant rate, {flow}"),
        Some(f) => {
            let mut parts: Vec<String> = f
                .steps
                .iter()
                .map(|s| format!("from {} {}", s.start, s.daily_dose))
                .collect();
            parts.extend(
                f.boluses
                    .iter()
                    .map(|b| format!("bolus {} {} over {}", b.start, b.dose, b.duration)),
            );
            format!("flex: {}", parts.join("; "))
        }
    }
}

fn bolus_words_new(c: &Checked) -> String {
    c.regimen.bolus_record.as_ref().map_or("none".into(), |b| {
        format!(
            "{} ({}) over {}, lockout {}, at most {} a day",
            b.dose, b.volume, b.duration, b.lockout, b.max_per_day
        )
    })
}

fn bolus_words_old(p: &Prescription) -> String {
    p.patient_bolus.as_ref().map_or("none".into(), |b| {
        format!(
            "{} ({}) over {}, lockout {}, at most {} a day",
            b.dose, b.volume, b.duration, b.lockout, b.max_per_day
        )
    })
}

/// The review of checked values against the version in force.
fn review_of(n: &NewPrescription, previous: Option<&Prescription>, c: &Checked) -> ReviewRegion {
    let old = |f: &dyn Fn(&Prescription) -> String| previous.map_or("—".to_owned(), f);
    let mut new_contents = format!("{} {}", c.drug.name(), c.concentration);
    for p in &c.regimen.components {
        new_contents.push_str(&format!(" + {} {}", p.drug, p.concentration));
    }
    let old_doses = |p: &Prescription| {
        change::rx_of(p).map_or_else(|| p.daily_dose.clone(), |rx| doses_of(&rx))
    };
    let rows: Vec<(String, String, String)> = vec![
        (
            "Drugs and concentrations".into(),
            old(&contents_old),
            new_contents,
        ),
        (
            "Daily dose (heaviest day)".into(),
            old(&old_doses),
            doses_of(&c.therapy),
        ),
        (
            "Schedule".into(),
            old(&|p| schedule_words(p.flex.as_ref(), &p.flow)),
            schedule_words(n.flex.as_ref(), &c.flow.to_string()),
        ),
        (
            "Flow (derived, mean a day)".into(),
            old(&|p| p.flow.clone()),
            c.flow.to_string(),
        ),
        (
            "Patient bolus".into(),
            old(&bolus_words_old),
            bolus_words_new(c),
        ),
        (
            "Reservoir volume".into(),
            old(&|p| thecal_rx::Volume::from_raw(p.reservoir_volume_nl).to_string()),
            c.reservoir_volume.to_string(),
        ),
        (
            "Opioid-naive".into(),
            old(&|p| yes_no(p.opioid_naive)),
            yes_no(n.opioid_naive),
        ),
    ];
    let hard = c.findings.iter().any(|f| f.severity == "hard");
    let soft = c.findings.iter().any(|f| f.severity == "soft");
    ReviewRegion {
        verdict: if hard {
            "hard"
        } else if soft {
            "soft"
        } else {
            "clear"
        },
        digest: digest(n),
        unreadable: vec![],
        device: c.device.clone(),
        rows: rows
            .into_iter()
            .map(|(k, o, nw)| {
                let changed = previous.is_some() && o != nw;
                (k, o, nw, changed)
            })
            .collect(),
        change: c.change.clone(),
        findings: c
            .findings
            .iter()
            .map(|f| (f.severity.clone(), f.message.clone()))
            .collect(),
        notice: None,
    }
}

fn label_of(name: &str) -> String {
    rx_groups()
        .into_iter()
        .flat_map(|(_, f)| f)
        .find(|f| f.name == name)
        .map_or_else(|| "Prescription".to_owned(), |f| f.label.to_owned())
}

/// Reviews the typed form: the region, and the field error when a value cannot be read.
async fn review_form(
    w: &Web,
    s: &Session,
    id: i64,
    form: &HashMap<String, String>,
) -> Result<(ReviewRegion, Option<FieldErr>, Option<Review>), Response> {
    let n = match new_rx(form) {
        Ok(n) => n,
        Err(e) => {
            let mut r = ReviewRegion::empty();
            r.verdict = "invalid";
            let name = e.0.clone().unwrap_or_default();
            r.unreadable = vec![(name.clone(), label_of(&name), e.1.clone())];
            return Ok((r, Some(e), None));
        }
    };
    let review = match prescription_review(&w.st, id, &n).await {
        Ok(r) => r,
        Err(e) => {
            let (status, _, msg) = e.parts();
            return Err(super::message(
                s.ctx(),
                status,
                "The prescription cannot be reviewed",
                msg,
                "/patients",
            ));
        }
    };
    match &review.checked {
        Ok(c) => Ok((
            review_of(&n, review.previous.as_ref(), c),
            None,
            Some(review),
        )),
        Err(e) => {
            let mut r = ReviewRegion::empty();
            r.verdict = "invalid";
            let name = form_field(Some(&e.field));
            let err = (name.clone(), e.message.clone());
            let name = name.unwrap_or_default();
            r.unreadable = vec![(name.clone(), label_of(&name), e.message.clone())];
            Ok((r, Some(err), Some(review)))
        }
    }
}

// ---------------------------------------------------------------- the page

/// The prescription editor.
#[derive(Template)]
#[template(path = "prescription.html")]
pub struct PrescriptionPage {
    /// Layout.
    pub ctx: Ctx,
    /// Implant id.
    pub id: i64,
    /// Patient id.
    pub patient_id: i64,
    /// Pump serial.
    pub serial: String,
    /// The pump model.
    pub model: String,
    /// The version in force, in words.
    pub in_force: String,
    /// The review region.
    pub review: ReviewRegion,
    /// Field groups: (legend, fields).
    pub groups: Vec<(&'static str, Vec<Field>)>,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors, listed at the top with links to their fields.
    pub summary: Vec<(String, String, String)>,
}

async fn page(
    w: &Web,
    s: &Session,
    id: i64,
    form: Option<&HashMap<String, String>>,
    err: Option<FieldErr>,
    notice: Option<String>,
) -> Page {
    w.require(s, PRESCRIBE.0, PRESCRIBE.1, "change a prescription")?;
    let (imp, p) = w.implant_and_patient(s, id).await?;
    let previous: Option<Prescription> = match w
        .st
        .store
        .latest(crate::storage::Kind::Prescription, id, None)
        .await
    {
        Ok(Some(r)) => serde_json::from_str(&r.data).ok(),
        Ok(None) => None,
        Err(e) => {
            eprintln!("thecal-clinic: storage error: {e}");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response());
        }
    };
    let mut groups = rx_groups();
    let mut general_error = None;
    let mut review = ReviewRegion::empty();
    if let Some(form) = form {
        let (r, read_err, _) = review_form(w, s, id, form).await?;
        review = r;
        review.notice = notice;
        // The error of the confirm (from the API) wins over the review's reading error.
        let shown = err.or(read_err);
        let mut placed = false;
        for (_, fields) in &mut groups {
            let here = shown.as_ref().filter(|(f, _)| {
                f.as_ref()
                    .is_some_and(|f| fields.iter().any(|x| x.name == f))
            });
            let g = refill_fields(fields, form, here.cloned());
            placed |= here.is_some() && g.is_none();
        }
        if !placed {
            general_error = shown.map(|(_, m)| m);
        }
    }
    let summary = Field::summary(groups.iter().flat_map(|(_, f)| f.iter()));
    let status = if general_error.is_some() || !summary.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let banner = w.banner(&p).await?;
    Ok(render(
        status,
        &PrescriptionPage {
            ctx: s.ctx_for(banner),
            id,
            patient_id: p.id,
            serial: imp.details.serial.clone(),
            model: imp.details.pump_model.clone(),
            in_force: in_force_words(previous.as_ref()),
            review,
            groups,
            general_error,
            summary,
        },
    ))
}

fn in_force_words(p: Option<&Prescription>) -> String {
    let Some(p) = p else {
        return super::rx_words(None);
    };
    let mut s = super::rx_words(Some(p));
    if let Some(f) = &p.flex {
        s.push_str(&format!(" Schedule: {}.", schedule_words(Some(f), &p.flow)));
    }
    if p.patient_bolus.is_some() {
        s.push_str(&format!(" Patient bolus: {}.", bolus_words_old(p)));
    }
    s.push_str(&format!(" Signed {}.", when(&p.created_at)));
    s
}

async fn prescription_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    page(&w, &s, id, None, None, None).await
}

async fn prescription_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, PRESCRIBE.0, PRESCRIBE.1, "change a prescription")?;
    if val(&form, "action") != "confirm" {
        return page(&w, &s, id, Some(&form), None, None).await;
    }
    let n = match new_rx(&form) {
        Ok(n) => n,
        Err(e) => return page(&w, &s, id, Some(&form), Some(e), None).await,
    };
    if val(&form, "reviewed") != digest(&n) {
        return page(
            &w,
            &s,
            id,
            Some(&form),
            None,
            Some("Not yet confirmed: the values differ from the review that was on the screen. Here is the review of the values sent; read it, then confirm.".into()),
        )
        .await;
    }
    let body = serde_json::to_value(&n)
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())?;
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/implants/{id}/prescriptions"),
            Some(&s),
            Some(body),
        )
        .await?;
    if a.status.is_success() {
        let (_, p) = w.implant_and_patient(&s, id).await?;
        return Ok(see_other(&format!("/patients/{}", p.id)));
    }
    let (field, msg) = a.error();
    page(
        &w,
        &s,
        id,
        Some(&form),
        Some((form_field(field.as_deref()), msg)),
        None,
    )
    .await
}

/// The review as the prescriber types: the region's HTML (no change is made).
async fn check(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, PRESCRIBE.0, PRESCRIBE.1, "change a prescription")?;
    let (review, _, _) = review_form(&w, &s, id, &form).await?;
    Ok(render(StatusCode::OK, &RegionFragment { review }))
}
