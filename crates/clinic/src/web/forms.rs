//! The console's forms for the records it did not create before: a new patient, an
//! implant, a complication, an alarm and its acknowledgement, and the pharmacist's lot
//! release of a compounded admixture for a refill visit.
//!
//! Each form posts to the console, which checks the session's CSRF token and the role
//! (by the API's authorization table), reads the typed text into the API's JSON (dates and
//! whole numbers are read here so that a mistyped one is refused at its field) and calls
//! the API's own handler: every rule is the domain's, checked there. A refusal shows the
//! message next to its field, lists it at the top of the page and keeps what was typed.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::pages::{Banner, Ctx, Field, UserView};
use super::{
    FieldErr, Page, Session, Web, check_csrf, may, message, refill_fields, render, see_other, val,
    when, words,
};
use crate::auth::Role;
use crate::domain::events::Alarm;
use crate::domain::records::{Implant, Patient, RefillVisit, VisitStep};
use crate::storage::Kind;

/// A console route of these forms and the API route whose rule authorizes it: the route ×
/// role test walks this list.
#[derive(Debug, Clone, Copy)]
pub struct FormRoute {
    /// Method.
    pub method: &'static str,
    /// Console path (`{id}` for the record).
    pub path: &'static str,
    /// The API route that decides who may use it: (method, path).
    pub api: (&'static str, &'static str),
}

const NEW_PATIENT: (&str, &str) = ("POST", "/api/v1/patients");
const NEW_IMPLANT: (&str, &str) = ("POST", "/api/v1/patients/{id}/implants");
const NEW_COMPLICATION: (&str, &str) = ("POST", "/api/v1/patients/{id}/complications");
const READ_ALARMS: (&str, &str) = ("GET", "/api/v1/implants/{id}/alarms");
const NEW_ALARM: (&str, &str) = ("POST", "/api/v1/implants/{id}/alarms");
const ACKNOWLEDGE: (&str, &str) = ("POST", "/api/v1/alarms/{id}/acknowledge");
const RELEASE: (&str, &str) = ("POST", "/api/v1/visits/{id}/release");

/// Every route of these forms.
pub const ROUTES: &[FormRoute] = &[
    FormRoute {
        method: "GET",
        path: "/patients/new",
        api: NEW_PATIENT,
    },
    FormRoute {
        method: "POST",
        path: "/patients/new",
        api: NEW_PATIENT,
    },
    FormRoute {
        method: "GET",
        path: "/patients/{id}/implant",
        api: NEW_IMPLANT,
    },
    FormRoute {
        method: "POST",
        path: "/patients/{id}/implant",
        api: NEW_IMPLANT,
    },
    FormRoute {
        method: "GET",
        path: "/patients/{id}/complication",
        api: NEW_COMPLICATION,
    },
    FormRoute {
        method: "POST",
        path: "/patients/{id}/complication",
        api: NEW_COMPLICATION,
    },
    FormRoute {
        method: "GET",
        path: "/implants/{id}/alarms",
        api: READ_ALARMS,
    },
    FormRoute {
        method: "GET",
        path: "/implants/{id}/alarms/new",
        api: NEW_ALARM,
    },
    FormRoute {
        method: "POST",
        path: "/implants/{id}/alarms/new",
        api: NEW_ALARM,
    },
    FormRoute {
        method: "GET",
        path: "/alarms/{id}/acknowledge",
        api: ACKNOWLEDGE,
    },
    FormRoute {
        method: "POST",
        path: "/alarms/{id}/acknowledge",
        api: ACKNOWLEDGE,
    },
    FormRoute {
        method: "GET",
        path: "/visits/{id}/release",
        api: RELEASE,
    },
    FormRoute {
        method: "POST",
        path: "/visits/{id}/release",
        api: RELEASE,
    },
];

/// The forms' routes.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/patients/new", get(patient_form).post(patient_submit))
        .route(
            "/patients/{id}/implant",
            get(implant_form).post(implant_submit),
        )
        .route(
            "/patients/{id}/complication",
            get(complication_form).post(complication_submit),
        )
        .route("/implants/{id}/alarms", get(alarms))
        .route(
            "/implants/{id}/alarms/new",
            get(alarm_form).post(alarm_submit),
        )
        .route(
            "/alarms/{id}/acknowledge",
            get(acknowledge_form).post(acknowledge_submit),
        )
        .route(
            "/visits/{id}/release",
            get(release_form).post(release_submit),
        )
}

impl UserView {
    fn role_may(&self, rule: (&str, &str)) -> bool {
        Role::parse(&self.role).is_some_and(|r| may(r, rule.0, rule.1))
    }
    /// May record complications (and so is offered the patient's record actions).
    pub fn may_record_patient_events(&self) -> bool {
        self.role_may(NEW_COMPLICATION)
    }
    /// May record an implant.
    pub fn may_implant(&self) -> bool {
        self.role_may(NEW_IMPLANT)
    }
    /// May release a compounded admixture's lot.
    pub fn may_release(&self) -> bool {
        self.role_may(RELEASE)
    }
}

// ---------------------------------------------------------------- pages

/// A form page.
#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    /// Layout.
    pub ctx: Ctx,
    /// Heading and title.
    pub heading: String,
    /// What the form is about: (label, value).
    pub intro: Vec<(String, String)>,
    /// The intro table's accessible name.
    pub intro_label: String,
    /// Where the form posts.
    pub action: String,
    /// The fieldset's legend.
    pub legend: &'static str,
    /// Fields.
    pub fields: Vec<Field>,
    /// The submit button.
    pub button: &'static str,
    /// An error not tied to one field.
    pub general_error: Option<String>,
    /// The field errors: (name, label, error).
    pub summary: Vec<(String, String, String)>,
    /// Back link.
    pub back: String,
    /// Its text.
    pub back_label: &'static str,
}

/// What a form is, apart from its fields.
struct Spec {
    heading: String,
    intro: Vec<(String, String)>,
    intro_label: &'static str,
    action: String,
    legend: &'static str,
    button: &'static str,
    back: String,
    back_label: &'static str,
}

fn form_page(
    ctx: Ctx,
    spec: Spec,
    mut fields: Vec<Field>,
    typed: Option<(&HashMap<String, String>, FieldErr)>,
) -> Response {
    let mut general_error = None;
    let mut status = StatusCode::OK;
    if let Some((form, err)) = typed {
        general_error = refill_fields(&mut fields, form, Some(err));
        status = StatusCode::UNPROCESSABLE_ENTITY;
    }
    let summary = Field::summary(&fields);
    render(
        status,
        &FormPage {
            ctx,
            heading: spec.heading,
            intro: spec.intro,
            intro_label: spec.intro_label.to_owned(),
            action: spec.action,
            legend: spec.legend,
            fields,
            button: spec.button,
            general_error,
            summary,
            back: spec.back,
            back_label: spec.back_label,
        },
    )
}

fn opts(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ---------------------------------------------------------------- reading typed text

fn field_err(field: &str, msg: impl Into<String>) -> FieldErr {
    (Some(field.to_owned()), msg.into())
}

/// A required date.
fn date(form: &HashMap<String, String>, k: &str) -> Result<NaiveDate, FieldErr> {
    let t = val(form, k);
    if t.trim().is_empty() {
        return Err(field_err(k, "required: a date written YYYY-MM-DD"));
    }
    opt_date(form, k)?.ok_or_else(|| field_err(k, "required"))
}

/// An optional date.
fn opt_date(form: &HashMap<String, String>, k: &str) -> Result<Option<NaiveDate>, FieldErr> {
    let t = val(form, k);
    if t.trim().is_empty() {
        return Ok(None);
    }
    t.trim()
        .parse::<NaiveDate>()
        .map(Some)
        .map_err(|_| field_err(k, "must be a date written YYYY-MM-DD, e.g. 2026-12-31"))
}

/// A whole number in a range (`None` when empty and optional).
fn whole(
    form: &HashMap<String, String>,
    k: &str,
    range: std::ops::RangeInclusive<u16>,
    what: &str,
    required: bool,
) -> Result<Option<u16>, FieldErr> {
    let t = val(form, k);
    let t = t.trim();
    let bad = || {
        field_err(
            k,
            format!(
                "must be a whole number of {what} from {} to {} (no decimals, no unit)",
                range.start(),
                range.end()
            ),
        )
    };
    if t.is_empty() {
        return if required {
            Err(field_err(
                k,
                format!(
                    "required: a whole number of {what} from {} to {}",
                    range.start(),
                    range.end()
                ),
            ))
        } else {
            Ok(None)
        };
    }
    let n: u16 = t.parse().map_err(|_| bad())?;
    if range.contains(&n) {
        Ok(Some(n))
    } else {
        Err(bad())
    }
}

/// One of a select's values.
fn choice<'a>(
    form: &HashMap<String, String>,
    k: &str,
    allowed: &[&'a str],
) -> Result<&'a str, FieldErr> {
    let v = val(form, k);
    allowed.iter().find(|a| **a == v).copied().ok_or_else(|| {
        field_err(
            k,
            format!("choose one of the listed options ({})", allowed.join(", ")),
        )
    })
}

/// A date and time as typed in a `datetime-local` control (the clinic's time is UTC).
fn date_time(form: &HashMap<String, String>, k: &str) -> Result<DateTime<Utc>, FieldErr> {
    let t = val(form, k);
    let t = t.trim();
    let bad = || {
        field_err(
            k,
            "must be a date and time written YYYY-MM-DDTHH:MM (UTC), e.g. 2026-12-01T14:30",
        )
    };
    if t.is_empty() {
        return Err(field_err(
            k,
            "required: a date and time written YYYY-MM-DDTHH:MM (UTC)",
        ));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .map(|d| d.and_utc())
        .map_err(|_| bad())
}

impl Web {
    /// Posts to the API; `Ok(body)` on success, else the error at its field.
    async fn post_api(
        &self,
        s: &Session,
        path: &str,
        body: Value,
    ) -> Result<Result<Value, FieldErr>, Response> {
        let a = self.call(Method::POST, path, Some(s), Some(body)).await?;
        if a.status.is_success() {
            return Ok(Ok(a.json()?));
        }
        Ok(Err(a.error()))
    }

    async fn patient_of(&self, s: &Session, id: i64) -> Result<(Patient, Banner), Response> {
        let p: Patient = self.load(Kind::Patient, id).await?.ok_or_else(|| {
            message(
                s.ctx(),
                StatusCode::NOT_FOUND,
                "Not found",
                "no such patient",
                "/patients",
            )
        })?;
        let b = self.banner(&p).await?;
        Ok((p, b))
    }
}

fn need(s: &Session, w: &Web, rule: (&str, &str), what: &str) -> Result<(), Response> {
    w.require(s, rule.0, rule.1, what)
}

// ---------------------------------------------------------------- new patient

const CONDITIONS: [&str; 4] = [
    "spasticity_spinal",
    "spasticity_cerebral",
    "pain_cancer",
    "pain_non_cancer",
];

fn patient_fields() -> Vec<Field> {
    vec![
        Field::new("name", "Full name", "text", "1–200 characters, as on the patient's identity document."),
        Field::new("mrn", "Record number", "text", "The clinic's record number, 1–64 characters; unique in the clinic."),
        Field::new("date_of_birth", "Date of birth", "date", "YYYY-MM-DD, from 1900-01-01 to today."),
        Field::new("condition", "Condition", "select", "What the pump treats: spasticity with its origin (sets baclofen's titration step), or pain with its type.")
            .options(opts(&[
                ("spasticity_spinal", "spasticity, spinal origin (spinal cord injury, multiple sclerosis)"),
                ("spasticity_cerebral", "spasticity, cerebral origin (cerebral palsy, brain injury)"),
                ("pain_cancer", "pain, cancer-related"),
                ("pain_non_cancer", "pain, chronic non-cancer"),
            ])),
        Field::new("weight_kg", "Weight (kg)", "text", "Optional: a whole number of kilograms from 1 to 400, e.g. 72."),
        Field::new("allergies", "Allergies", "textarea", "Optional, up to 2000 characters; write “none known” when there are none."),
        Field::new("contacts", "Contacts", "textarea", "Optional, up to 2000 characters: next of kin, general practitioner, telephone numbers."),
    ]
}

fn patient_spec() -> Spec {
    Spec {
        heading: "Register a new patient".into(),
        intro: vec![],
        intro_label: "",
        action: "/patients/new".into(),
        legend: "The patient",
        button: "Register the patient",
        back: "/patients".into(),
        back_label: "Back to the patient search",
    }
}

async fn patient_form(State(w): State<Web>, headers: HeaderMap) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, NEW_PATIENT, "register a patient")?;
    Ok(form_page(s.ctx(), patient_spec(), patient_fields(), None))
}

fn patient_body(form: &HashMap<String, String>) -> Result<Value, FieldErr> {
    let condition = match choice(form, "condition", &CONDITIONS)? {
        "spasticity_spinal" => json!({"kind": "spasticity", "origin": "spinal"}),
        "spasticity_cerebral" => json!({"kind": "spasticity", "origin": "cerebral"}),
        "pain_cancer" => json!({"kind": "pain", "type": "cancer"}),
        _ => json!({"kind": "pain", "type": "non_cancer"}),
    };
    Ok(json!({
        "name": val(form, "name"),
        "mrn": val(form, "mrn"),
        "date_of_birth": date(form, "date_of_birth")?,
        "condition": condition,
        "weight_kg": whole(form, "weight_kg", 1..=400, "kilograms", false)?,
        "allergies": val(form, "allergies"),
        "contacts": val(form, "contacts"),
    }))
}

async fn patient_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    need(&s, &w, NEW_PATIENT, "register a patient")?;
    let err = match patient_body(&form) {
        Ok(body) => match w.post_api(&s, NEW_PATIENT.1, body).await? {
            Ok(p) => {
                let id = p["id"].as_i64().unwrap_or_default();
                return Ok(see_other(&format!("/patients/{id}")));
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    Ok(form_page(
        s.ctx(),
        patient_spec(),
        patient_fields(),
        Some((&form, err)),
    ))
}

// ---------------------------------------------------------------- implant

fn implant_fields() -> Vec<Field> {
    vec![
        Field::new(
            "pump_model",
            "Pump maker and model",
            "text",
            "1–100 characters as on the implant card, e.g. SynchroMed II 8637-20, Prometra II, or a constant-rate pump (IsoMed, Codman 3000, Archimedes): the prescription check takes the pump's flow range from the model.",
        ),
        Field::new(
            "serial",
            "Pump serial number",
            "text",
            "1–64 characters; unique in the clinic.",
        ),
        Field::new(
            "udi",
            "UDI",
            "text",
            "Optional, up to 200 characters: the device identifier and production identifier from the label.",
        ),
        Field::new(
            "reservoir",
            "Reservoir capacity",
            "text",
            "A volume with its unit, above 0 mL and at most 100 mL, e.g. 20 mL or 40 mL.",
        ),
        Field::new(
            "low_alarm",
            "Low-reservoir alarm",
            "text",
            "A volume with its unit, below the reservoir capacity, e.g. 2 mL.",
        ),
        Field::new(
            "accuracy_margin_permille",
            "Labelled delivery accuracy (per mille)",
            "text",
            "A whole number from 0 to 300: the labelled worst case in tenths of a percent, e.g. 145 for ±14.5 % (SynchroMed II).",
        ),
        Field::new(
            "implanted_on",
            "Implant date",
            "date",
            "YYYY-MM-DD, not after today.",
        ),
        Field::new("pocket", "Pocket", "select", "Where the pump lies.").options(opts(&[
            ("subfascial", "subfascial"),
            ("subcutaneous", "subcutaneous"),
        ])),
        Field::new(
            "catheter_model",
            "Catheter model",
            "text",
            "1–100 characters, e.g. 8709SC.",
        ),
        Field::new(
            "catheter_length_cm",
            "Catheter length after trimming (cm)",
            "text",
            "The length implanted, after the catheter was trimmed: a whole number of centimetres from 1 to 150, e.g. 45.",
        ),
        Field::new(
            "tip_level",
            "Catheter tip level",
            "text",
            "The vertebral level of the tip, 1–20 characters, e.g. T10.",
        ),
        Field::new(
            "eri_projected",
            "Projected ERI date",
            "date",
            "Optional: YYYY-MM-DD, from the pump's battery projection.",
        ),
    ]
}

fn implant_spec(id: i64) -> Spec {
    Spec {
        heading: "Record an implant".into(),
        intro: vec![],
        intro_label: "",
        action: format!("/patients/{id}/implant"),
        legend: "Pump and catheter",
        button: "Record the implant",
        back: format!("/patients/{id}"),
        back_label: "Back to the patient",
    }
}

async fn implant_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, NEW_IMPLANT, "record an implant")?;
    let (_, banner) = w.patient_of(&s, id).await?;
    Ok(form_page(
        s.ctx_for(banner),
        implant_spec(id),
        implant_fields(),
        None,
    ))
}

fn implant_body(form: &HashMap<String, String>) -> Result<Value, FieldErr> {
    Ok(json!({
        "pump_model": val(form, "pump_model"),
        "serial": val(form, "serial"),
        "udi": val(form, "udi"),
        "reservoir": val(form, "reservoir"),
        "low_alarm": val(form, "low_alarm"),
        "accuracy_margin_permille": whole(form, "accuracy_margin_permille", 0..=300, "per mille", true)?,
        "implanted_on": date(form, "implanted_on")?,
        "pocket": choice(form, "pocket", &["subfascial", "subcutaneous"])?,
        "catheter_model": val(form, "catheter_model"),
        "catheter_length_cm": whole(form, "catheter_length_cm", 1..=150, "centimetres", true)?,
        "tip_level": val(form, "tip_level"),
        "eri_projected": opt_date(form, "eri_projected")?,
    }))
}

async fn implant_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    need(&s, &w, NEW_IMPLANT, "record an implant")?;
    let (_, banner) = w.patient_of(&s, id).await?;
    let err = match implant_body(&form) {
        Ok(body) => match w
            .post_api(&s, &format!("/api/v1/patients/{id}/implants"), body)
            .await?
        {
            Ok(_) => return Ok(see_other(&format!("/patients/{id}"))),
            Err(e) => e,
        },
        Err(e) => e,
    };
    Ok(form_page(
        s.ctx_for(banner),
        implant_spec(id),
        implant_fields(),
        Some((&form, err)),
    ))
}

// ---------------------------------------------------------------- complication

const COMPLICATIONS: [&str; 6] = [
    "infection",
    "csf_leak",
    "granuloma",
    "withdrawal",
    "overdose",
    "device_malfunction",
];

fn complication_fields() -> Vec<Field> {
    vec![
        Field::new("kind", "Complication", "select", "One of the listed kinds.").options(opts(&[
            ("infection", "infection (superficial or deep)"),
            ("csf_leak", "CSF leak"),
            ("granuloma", "catheter-tip granuloma"),
            ("withdrawal", "withdrawal"),
            ("overdose", "overdose"),
            (
                "device_malfunction",
                "device malfunction (pump or catheter)",
            ),
        ])),
        Field::new("onset", "Onset", "date", "YYYY-MM-DD, not after today."),
        Field::new(
            "description",
            "What happened and what was done",
            "textarea",
            "1–4000 characters.",
        ),
        Field::new(
            "resolved_on",
            "Resolved on",
            "date",
            "Optional: YYYY-MM-DD, between the onset and today; leave empty while it lasts.",
        ),
    ]
}

fn complication_spec(id: i64) -> Spec {
    Spec {
        heading: "Record a complication".into(),
        intro: vec![],
        intro_label: "",
        action: format!("/patients/{id}/complication"),
        legend: "Complication",
        button: "Record the complication",
        back: format!("/patients/{id}"),
        back_label: "Back to the patient",
    }
}

async fn complication_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, NEW_COMPLICATION, "record a complication")?;
    let (_, banner) = w.patient_of(&s, id).await?;
    Ok(form_page(
        s.ctx_for(banner),
        complication_spec(id),
        complication_fields(),
        None,
    ))
}

async fn complication_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    need(&s, &w, NEW_COMPLICATION, "record a complication")?;
    let (_, banner) = w.patient_of(&s, id).await?;
    let body = (|| -> Result<Value, FieldErr> {
        Ok(json!({
            "kind": choice(&form, "kind", &COMPLICATIONS)?,
            "onset": date(&form, "onset")?,
            "description": val(&form, "description"),
            "resolved_on": opt_date(&form, "resolved_on")?,
        }))
    })();
    let err = match body {
        Ok(body) => match w
            .post_api(&s, &format!("/api/v1/patients/{id}/complications"), body)
            .await?
        {
            Ok(_) => return Ok(see_other(&format!("/patients/{id}#timeline"))),
            Err(e) => e,
        },
        Err(e) => e,
    };
    Ok(form_page(
        s.ctx_for(banner),
        complication_spec(id),
        complication_fields(),
        Some((&form, err)),
    ))
}

// ---------------------------------------------------------------- alarms

/// An alarm as listed.
#[derive(Debug, Clone)]
pub struct AlarmRow {
    /// Id.
    pub id: i64,
    /// Raised at.
    pub raised: String,
    /// The pump's name for it.
    pub kind: String,
    /// Priority in words.
    pub priority: String,
    /// Action recorded with it.
    pub action: String,
    /// The acknowledgement in words.
    pub acknowledged: Option<String>,
}

/// An implant's alarms.
#[derive(Template)]
#[template(path = "alarms.html")]
pub struct AlarmsPage {
    /// Layout.
    pub ctx: Ctx,
    /// Implant.
    pub id: i64,
    /// Patient.
    pub patient_id: i64,
    /// Pump serial.
    pub serial: String,
    /// Oldest first.
    pub alarms: Vec<AlarmRow>,
    /// The user may record and acknowledge.
    pub may_record: bool,
}

async fn alarms(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, READ_ALARMS, "read alarms")?;
    let (imp, p) = w.implant_and_patient(&s, id).await?;
    let list: Vec<Alarm> = w
        .get_json(&s, &format!("/api/v1/implants/{id}/alarms"))
        .await?;
    let banner = w.banner(&p).await?;
    Ok(render(
        StatusCode::OK,
        &AlarmsPage {
            ctx: s.ctx_for(banner),
            id,
            patient_id: p.id,
            serial: imp.details.serial.clone(),
            alarms: list
                .into_iter()
                .map(|a| AlarmRow {
                    id: a.id,
                    raised: when(&a.details.raised_at),
                    kind: a.details.kind,
                    priority: words(&a.details.priority),
                    action: if a.details.action.is_empty() {
                        "—".into()
                    } else {
                        a.details.action
                    },
                    acknowledged: a
                        .acknowledgement
                        .map(|k| format!("by {} at {}: {}", k.by, when(&k.at), k.action)),
                })
                .collect(),
            may_record: may(s.role, NEW_ALARM.0, NEW_ALARM.1),
        },
    ))
}

fn alarm_fields() -> Vec<Field> {
    vec![
        Field::new(
            "kind",
            "Alarm",
            "text",
            "The alarm as the pump names it, 1–100 characters, e.g. low reservoir, motor stall, critical battery.",
        ),
        Field::new(
            "priority",
            "Priority",
            "select",
            "The pump's priority for it.",
        )
        .options(opts(&[
            ("low", "low (e.g. low reservoir)"),
            (
                "high",
                "high (e.g. empty reservoir, motor stall, critical battery)",
            ),
        ])),
        Field::new(
            "raised_at",
            "Raised at (UTC)",
            "datetime-local",
            "When the pump raised it, YYYY-MM-DDTHH:MM in UTC, not in the future.",
        ),
        Field::new(
            "action",
            "Action at interrogation",
            "textarea",
            "Optional, up to 2000 characters.",
        ),
    ]
}

fn alarm_spec(id: i64, serial: &str) -> Spec {
    Spec {
        heading: format!("Record an alarm — pump {serial}"),
        intro: vec![],
        intro_label: "",
        action: format!("/implants/{id}/alarms/new"),
        legend: "Alarm",
        button: "Record the alarm",
        back: format!("/implants/{id}/alarms"),
        back_label: "Back to the pump's alarms",
    }
}

async fn alarm_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, NEW_ALARM, "record an alarm")?;
    let (imp, p) = w.implant_and_patient(&s, id).await?;
    let banner = w.banner(&p).await?;
    Ok(form_page(
        s.ctx_for(banner),
        alarm_spec(id, &imp.details.serial),
        alarm_fields(),
        None,
    ))
}

async fn alarm_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    need(&s, &w, NEW_ALARM, "record an alarm")?;
    let (imp, p) = w.implant_and_patient(&s, id).await?;
    let body = (|| -> Result<Value, FieldErr> {
        Ok(json!({
            "kind": val(&form, "kind"),
            "priority": choice(&form, "priority", &["low", "high"])?,
            "raised_at": date_time(&form, "raised_at")?,
            "action": val(&form, "action"),
        }))
    })();
    let err = match body {
        Ok(body) => match w
            .post_api(&s, &format!("/api/v1/implants/{id}/alarms"), body)
            .await?
        {
            Ok(_) => return Ok(see_other(&format!("/implants/{id}/alarms"))),
            Err(e) => e,
        },
        Err(e) => e,
    };
    let banner = w.banner(&p).await?;
    Ok(form_page(
        s.ctx_for(banner),
        alarm_spec(id, &imp.details.serial),
        alarm_fields(),
        Some((&form, err)),
    ))
}

fn acknowledge_fields() -> Vec<Field> {
    vec![
        Field::new(
            "action",
            "What was done",
            "textarea",
            "1–2000 characters, e.g. refilled 20 mL; alarm cleared on interrogation.",
        ),
        Field::new(
            "at",
            "Acknowledged at (UTC)",
            "datetime-local",
            "Optional: YYYY-MM-DDTHH:MM in UTC, between the alarm and now; empty means now.",
        ),
    ]
}

async fn alarm_context(
    w: &Web,
    s: &Session,
    id: i64,
) -> Result<(Alarm, Implant, Spec, Banner), Response> {
    let a: Alarm = w.load(Kind::Alarm, id).await?.ok_or_else(|| {
        message(
            s.ctx(),
            StatusCode::NOT_FOUND,
            "Not found",
            "no such alarm",
            "/patients",
        )
    })?;
    let (imp, p) = w.implant_and_patient(s, a.implant_id).await?;
    let banner = w.banner(&p).await?;
    let spec = Spec {
        heading: format!("Acknowledge an alarm — pump {}", imp.details.serial),
        intro: vec![
            ("Alarm".into(), a.details.kind.clone()),
            ("Priority".into(), words(&a.details.priority)),
            ("Raised at".into(), when(&a.details.raised_at)),
            ("Recorded by".into(), a.recorded_by.clone()),
        ],
        intro_label: "The alarm",
        action: format!("/alarms/{id}/acknowledge"),
        legend: "Acknowledgement",
        button: "Acknowledge the alarm",
        back: format!("/implants/{}/alarms", imp.id),
        back_label: "Back to the pump's alarms",
    };
    Ok((a, imp, spec, banner))
}

async fn acknowledge_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, ACKNOWLEDGE, "acknowledge an alarm")?;
    let (a, _, spec, banner) = alarm_context(&w, &s, id).await?;
    if let Some(k) = a.acknowledgement {
        return Err(message(
            s.ctx_for(banner),
            StatusCode::CONFLICT,
            "Acknowledged already",
            &format!(
                "This alarm was acknowledged by {} at {}: {}",
                k.by,
                when(&k.at),
                k.action
            ),
            &spec.back,
        ));
    }
    Ok(form_page(
        s.ctx_for(banner),
        spec,
        acknowledge_fields(),
        None,
    ))
}

async fn acknowledge_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    need(&s, &w, ACKNOWLEDGE, "acknowledge an alarm")?;
    let (_, imp, spec, banner) = alarm_context(&w, &s, id).await?;
    let body = (|| -> Result<Value, FieldErr> {
        let at = if val(&form, "at").trim().is_empty() {
            None
        } else {
            Some(date_time(&form, "at")?)
        };
        Ok(json!({"action": val(&form, "action"), "at": at}))
    })();
    let err = match body {
        Ok(body) => match w
            .post_api(&s, &format!("/api/v1/alarms/{id}/acknowledge"), body)
            .await?
        {
            Ok(_) => return Ok(see_other(&format!("/implants/{}/alarms", imp.id))),
            Err(e) => e,
        },
        Err(e) => e,
    };
    Ok(form_page(
        s.ctx_for(banner),
        spec,
        acknowledge_fields(),
        Some((&form, err)),
    ))
}

// ---------------------------------------------------------------- pharmacist's release

fn release_fields() -> Vec<Field> {
    vec![
        Field::new(
            "lot",
            "Admixture lot",
            "text",
            "The compounded admixture's lot, 1–64 characters, exactly as on the syringe label: the fill must name the same lot.",
        ),
        Field::new(
            "note",
            "Verification",
            "textarea",
            "Optional, up to 2000 characters: drugs and concentrations checked against the prescription, sterility, beyond-use date.",
        ),
    ]
}

async fn release_context(
    w: &Web,
    s: &Session,
    id: i64,
) -> Result<(RefillVisit, Spec, Banner), Response> {
    let v: RefillVisit = w.get_json(s, &format!("/api/v1/visits/{id}")).await?;
    let (imp, p) = w.implant_and_patient(s, v.implant_id).await?;
    let rx: Option<crate::domain::records::Prescription> =
        w.load(Kind::Prescription, v.prescription_id).await?;
    let banner = w.banner(&p).await?;
    let mut intro = vec![
        (
            "Pump".to_owned(),
            format!("{} serial {}", imp.details.pump_model, imp.details.serial),
        ),
        ("Prescription".to_owned(), super::rx_words(rx.as_ref())),
    ];
    if let Some(rx) = &rx {
        let mut contents = format!("{} {}", rx.drug, rx.concentration);
        for c in &rx.admixture {
            contents.push_str(&format!(" + {} {}", c.drug, c.concentration));
        }
        intro.push(("Admixture to release".to_owned(), contents));
    }
    intro.push(("Visit step".to_owned(), words(&v.step)));
    if let Some(r) = &v.pharmacist_release {
        intro.push((
            "Released".to_owned(),
            format!("lot {} by {} at {}", r.lot, r.by, when(&r.at)),
        ));
    }
    let spec = Spec {
        heading: "Release a compounded admixture".into(),
        intro,
        intro_label: "The visit and its prescription",
        action: format!("/visits/{id}/release"),
        legend: "Lot release",
        button: "Release the lot for this visit",
        back: format!("/visits/{id}"),
        back_label: "Back to the refill visit",
    };
    Ok((v, spec, banner))
}

async fn release_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    need(&s, &w, RELEASE, "release a compounded admixture's lot")?;
    let (v, spec, banner) = release_context(&w, &s, id).await?;
    if v.step >= VisitStep::Filled {
        return Err(message(
            s.ctx_for(banner),
            StatusCode::CONFLICT,
            "Release closed",
            "This visit's reservoir was filled already: a lot is released before the fill.",
            &spec.back,
        ));
    }
    Ok(form_page(s.ctx_for(banner), spec, release_fields(), None))
}

async fn release_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    need(&s, &w, RELEASE, "release a compounded admixture's lot")?;
    let body = json!({"lot": val(&form, "lot"), "note": val(&form, "note")});
    let err = match w
        .post_api(&s, &format!("/api/v1/visits/{id}/release"), body)
        .await?
    {
        Ok(_) => return Ok(see_other(&format!("/visits/{id}"))),
        Err(e) => e,
    };
    let (_, spec, banner) = release_context(&w, &s, id).await?;
    Ok(form_page(
        s.ctx_for(banner),
        spec,
        release_fields(),
        Some((&form, err)),
    ))
}
