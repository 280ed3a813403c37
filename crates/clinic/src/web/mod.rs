//! The clinic's web console: server-rendered pages for physicians and nurses, served by
//! `thecal serve` beside the JSON API.
//!
//! - One implementation: every change and every clinical read goes through the API's own
//!   handlers (called in-process with the user's session cookie and CSRF token), so the
//!   authorization table, the domain's rules and thecal-rx's checks are the API's. The
//!   prescription review calls the same [`change::check_new`] the API stores with.
//! - Pages check the user's role against [`auth::ROUTES`] before they render a form, and the
//!   API checks it again when the form is sent.
//! - Forms carry the session's CSRF token in a hidden field; sign-in carries a token that
//!   is also in a short-lived cookie (double submit). Every page works without scripts; one
//!   script, served by the binary, shows the prescription check while typing. Every asset comes from
//!   the binary (`/static/console.css`, with a print stylesheet).

// A handler's early return is a ready page (a redirect, a refusal); boxing it gains nothing.
#![allow(clippy::result_large_err)]

mod admin;
mod calendar;
pub mod forms;
mod lists;
mod mri;
pub mod pages;
pub mod plots;
pub mod prescribe;
mod programming;
mod replacement;
pub mod search;

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use thecal_rx::Volume;
use thecal_rx::drug::DrugId;
use tower::ServiceExt;

use crate::api::AppState;
use crate::auth::{self, Role};
use crate::domain::events::{Alarm, Complication};
use crate::domain::records::{Condition, Implant, Patient, Prescription, RefillVisit};
use crate::domain::trial::Trial;
use crate::storage::Kind;
use pages::{
    AuditLine, AuditPage, Banner, Ctx, DueRow, Field, ImplantView, MessagePage, PatientPage,
    ReportPage, SigninPage, StepForm, TimelineEntry, TrialPage, TrialView, UserView, VisitPage,
};

/// The console's stylesheet, compiled into the binary.
pub const CSS: &str = include_str!("../../static/console.css");

/// The sign-in form's CSRF cookie.
const SIGNIN_COOKIE: &str = "thecal_signin";

#[derive(Clone)]
struct Web {
    st: AppState,
    api: Router,
}

/// The console's routes (merged with the API's by [`crate::app`]).
pub fn router(state: AppState) -> Router {
    let web = Web {
        api: crate::api::router(state.clone()),
        st: state,
    };
    Router::new()
        .route("/", get(root))
        .route("/static/console.css", get(css))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/today", get(today))
        .route("/patients/{id}", get(patient))
        .route("/patients/{id}/trial", get(trial_form).post(trial_submit))
        .route("/trials/{id}/decision", post(trial_decision))
        .route("/implants/{id}/visit", post(visit_open))
        .route("/visits/{id}", get(visit_page).post(visit_submit))
        .route("/visits/{id}/report", get(report))
        .route("/audit", get(audit))
        .merge(forms::routes())
        .merge(prescribe::routes())
        .merge(search::routes())
        .route("/calendar", get(calendar::calendar_page))
        .route("/replacements", get(replacement::replacements_page))
        .route(
            "/implants/{id}/replacement",
            get(replacement::replacement_page).post(replacement::replacement_submit),
        )
        .route(
            "/implants/{id}/mri",
            get(mri::mri_page).post(mri::mri_submit),
        )
        .route(
            "/mri/{id}",
            get(mri::episode_page).post(mri::episode_submit),
        )
        .route(
            "/admin/accounts",
            get(admin::accounts_page).post(admin::account_create),
        )
        .route("/admin/accounts/{id}", post(admin::account_change))
        .merge(programming::routes())
        .layer(middleware::from_fn(page_headers))
        .with_state(web)
}

/// Where a role starts: the accounts for an administrator, today's list for the others.
fn home(role: Option<Role>) -> &'static str {
    match role {
        Some(r) if !may(r, "GET", "/api/v1/calendar") && may(r, "GET", "/api/v1/users") => {
            "/admin/accounts"
        }
        _ => "/today",
    }
}

async fn root(State(w): State<Web>, headers: HeaderMap) -> Page {
    let s = w.session(&headers).await?;
    Ok(see_other(home(Some(s.role))))
}

async fn page_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

// ---------------------------------------------------------------- plumbing

type Page = Result<Response, Response>;

/// An error at a form field (or at none): (field, message).
type FieldErr = (Option<String>, String);

/// A refused form: its step, what was typed, the error.
type Typed<'a> = (&'a str, &'a HashMap<String, String>, FieldErr);

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(s) => (status, Html(s)).into_response(),
        Err(e) => {
            eprintln!("thecal-clinic: console template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn message(ctx: Ctx, status: StatusCode, heading: &str, text: &str, back: &str) -> Response {
    render(
        status,
        &MessagePage {
            ctx,
            heading: heading.to_owned(),
            class: if status.is_success() {
                "notice"
            } else {
                "alert"
            },
            message: text.to_owned(),
            back: back.to_owned(),
            back_label: if back == "/signin" {
                "Sign in".to_owned()
            } else {
                "Back".to_owned()
            },
        },
    )
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// An API error as the API sends it.
#[derive(Debug, Deserialize)]
struct ApiErr {
    error: ApiErrDetail,
}

#[derive(Debug, Deserialize)]
struct ApiErrDetail {
    #[serde(default)]
    field: Option<String>,
    message: String,
}

/// An API answer.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    set_cookie: Option<HeaderValue>,
    /// A paged list's `X-Total-Count`.
    total: Option<usize>,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T, Response> {
        serde_json::from_slice(&self.body).map_err(|e| {
            eprintln!("thecal-clinic: console could not read an API answer: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        })
    }
    fn error(&self) -> (Option<String>, String) {
        match serde_json::from_slice::<ApiErr>(&self.body) {
            Ok(e) => (e.error.field, e.error.message),
            Err(_) => (None, format!("the request failed ({})", self.status)),
        }
    }
}

/// The signed-in user.
struct Session {
    token: String,
    username: String,
    role: Role,
    csrf: String,
}

#[derive(Deserialize)]
struct MeBody {
    username: String,
    role: Role,
    csrf_token: String,
}

impl Session {
    fn ctx(&self) -> Ctx {
        Ctx {
            user: Some(UserView {
                name: self.username.clone(),
                role: self.role.as_str().to_owned(),
                auditor: may(self.role, "GET", "/api/v1/audit"),
                clinical: may(self.role, "GET", "/api/v1/calendar"),
                admin: may(self.role, "GET", "/api/v1/users"),
            }),
            csrf: self.csrf.clone(),
            banner: None,
        }
    }
    fn ctx_for(&self, banner: Banner) -> Ctx {
        Ctx {
            banner: Some(banner),
            ..self.ctx()
        }
    }
}

/// Whether the role may call the API route (the authorization table).
fn may(role: Role, method: &str, api_path: &str) -> bool {
    auth::rule(method, api_path).is_some_and(|r| auth::allowed(r, Some(role)))
}

fn allowed_roles(method: &str, api_path: &str) -> String {
    Role::ALL
        .into_iter()
        .filter(|r| may(*r, method, api_path))
        .map(Role::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Web {
    async fn call(
        &self,
        method: Method,
        path: &str,
        s: Option<&Session>,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, Response> {
        self.call_with_station(method, path, s, body, None).await
    }

    /// [`Web::call`], handing the API the server's programmer station where there is one
    /// (the programming routes need it).
    async fn call_with_station(
        &self,
        method: Method,
        path: &str,
        s: Option<&Session>,
        body: Option<serde_json::Value>,
        station: Option<std::sync::Arc<crate::programming::Station>>,
    ) -> Result<Answer, Response> {
        let mut b = axum::http::Request::builder().method(method).uri(path);
        if let Some(s) = s {
            b = b
                .header(header::COOKIE, format!("{}={}", auth::COOKIE, s.token))
                .header(auth::CSRF_HEADER, &s.csrf);
        }
        let mut req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())?;
        if let Some(st) = station {
            req.extensions_mut().insert(st);
        }
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let set_cookie = resp.headers().get(header::SET_COOKIE).cloned();
        let total = resp
            .headers()
            .get(crate::api::TOTAL_COUNT)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())?;
        Ok(Answer {
            status,
            body: body.to_vec(),
            set_cookie,
            total,
        })
    }

    /// The session of the request, or a redirect to sign-in (saying when a session
    /// expired or ended).
    async fn session(&self, headers: &HeaderMap) -> Result<Session, Response> {
        let Some(token) = cookie(headers, auth::COOKIE) else {
            return Err(see_other("/signin"));
        };
        let probe = Session {
            token,
            username: String::new(),
            role: Role::Auditor,
            csrf: String::new(),
        };
        let a = self
            .call(Method::GET, "/api/v1/session", Some(&probe), None)
            .await?;
        if !a.status.is_success() {
            let mut r = see_other("/signin?expired=1");
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "thecal_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                ),
            );
            return Err(r);
        }
        let me: MeBody = a.json()?;
        Ok(Session {
            token: probe.token,
            username: me.username,
            role: me.role,
            csrf: me.csrf_token,
        })
    }

    /// A read through the API: its answer, or a page saying why not.
    async fn get_json<T: DeserializeOwned>(&self, s: &Session, path: &str) -> Result<T, Response> {
        let a = self.call(Method::GET, path, Some(s), None).await?;
        if a.status.is_success() {
            return a.json();
        }
        let (_, msg) = a.error();
        Err(message(s.ctx(), a.status, "Not available", &msg, "/today"))
    }

    async fn load<T: DeserializeOwned>(&self, kind: Kind, id: i64) -> Result<Option<T>, Response> {
        match self.st.store.get(kind, id).await {
            Ok(Some(row)) => serde_json::from_str(&row.data).map(Some).map_err(|e| {
                eprintln!("thecal-clinic: stored record {id} unreadable: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }),
            Ok(None) => Ok(None),
            Err(e) => {
                eprintln!("thecal-clinic: storage error: {e}");
                Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
            }
        }
    }

    async fn rows<T: DeserializeOwned>(&self, kind: Kind, parent: i64) -> Result<Vec<T>, Response> {
        match self.st.store.list(kind, Some(parent), 1000).await {
            Ok(rows) => Ok(rows
                .iter()
                .filter_map(|r| serde_json::from_str(&r.data).ok())
                .collect()),
            Err(e) => {
                eprintln!("thecal-clinic: storage error: {e}");
                Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
            }
        }
    }

    /// The patient band of a patient.
    async fn banner(&self, p: &Patient) -> Result<Banner, Response> {
        let implants: Vec<Implant> = self.rows(Kind::Implant, p.id).await?;
        let serials: Vec<String> = implants
            .iter()
            .filter(|i| i.explant.is_none())
            .map(|i| i.details.serial.clone())
            .collect();
        Ok(Banner {
            name: p.details.name.clone(),
            dob: p.details.date_of_birth.to_string(),
            mrn: p.details.mrn.clone(),
            serials: if serials.is_empty() {
                "none implanted".to_owned()
            } else {
                serials.join(", ")
            },
        })
    }

    /// The implant and its patient.
    async fn implant_and_patient(
        &self,
        s: &Session,
        implant_id: i64,
    ) -> Result<(Implant, Patient), Response> {
        let not_found = || {
            message(
                s.ctx(),
                StatusCode::NOT_FOUND,
                "Not found",
                "no such implant",
                "/patients",
            )
        };
        let imp: Implant = self
            .load(Kind::Implant, implant_id)
            .await?
            .ok_or_else(not_found)?;
        let p: Patient = self
            .load(Kind::Patient, imp.patient_id)
            .await?
            .ok_or_else(not_found)?;
        Ok((imp, p))
    }

    /// Refuses a page to a role the authorization table does not allow the API call.
    fn require(
        &self,
        s: &Session,
        method: &str,
        api_path: &str,
        what: &str,
    ) -> Result<(), Response> {
        if may(s.role, method, api_path) {
            return Ok(());
        }
        Err(message(
            s.ctx(),
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "{} {} may not {what}; allowed: {}.",
                if matches!(
                    s.role,
                    Role::Administrator | Role::Auditor | Role::Emergency
                ) {
                    "An"
                } else {
                    "A"
                },
                s.role.as_str(),
                allowed_roles(method, api_path)
            ),
            "/today",
        ))
    }
}

fn check_csrf(s: &Session, form: &HashMap<String, String>) -> Result<(), Response> {
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if auth::constant_time_eq(sent, &s.csrf) {
        Ok(())
    } else {
        Err(message(
            s.ctx(),
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form's security token does not match your session (it was opened in another session). Go back, reload the page and send it again.",
            "/today",
        ))
    }
}

fn val(form: &HashMap<String, String>, k: &str) -> String {
    form.get(k).cloned().unwrap_or_default()
}

/// Puts what was typed back into the fields, and an error next to its field; returns the
/// error when no field has that name.
fn refill_fields(
    fields: &mut [Field],
    form: &HashMap<String, String>,
    err: Option<(Option<String>, String)>,
) -> Option<String> {
    for f in fields.iter_mut() {
        f.value = val(form, f.name);
    }
    let (field, msg) = err?;
    match field.and_then(|name| fields.iter_mut().find(|f| f.name == name)) {
        Some(f) => {
            f.error = Some(msg);
            None
        }
        None => Some(msg),
    }
}

fn words<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

fn condition_words(c: &Condition) -> String {
    match c {
        Condition::Spasticity { origin } => format!("spasticity, {} origin", words(origin)),
        Condition::Pain { pain_type } => format!("pain, {}", words(pain_type)),
    }
}

fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn vol(nl: Option<u64>) -> String {
    nl.map_or("—".to_owned(), |n| Volume::from_raw(n).to_string())
}

fn rx_words(rx: Option<&Prescription>) -> String {
    match rx {
        None => "No prescription recorded.".to_owned(),
        Some(rx) => format!(
            "{} {}{} at {} a day, delivered at {}; reservoir filled to {} (version {}, by {} on {}).",
            rx.drug,
            rx.concentration,
            rx.admixture
                .iter()
                .map(|c| format!(" with {} {}", c.drug, c.concentration))
                .collect::<String>(),
            rx.daily_dose.trim_end_matches("/day"),
            rx.flow,
            Volume::from_raw(rx.reservoir_volume_nl),
            rx.version,
            rx.prescriber,
            when(&rx.created_at)
        ),
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(Deserialize)]
struct SigninQuery {
    expired: Option<String>,
}

fn signin_fields() -> Vec<Field> {
    vec![
        Field::new(
            "username",
            "User name",
            "text",
            "Your clinic user name, 1–64 characters.",
        ),
        Field::new("password", "Password", "password", "12 to 200 characters."),
    ]
}

fn signin_page(notice: Option<String>, error: Option<String>, fields: Vec<Field>) -> Response {
    let token = match auth::token() {
        Ok(t) => t,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut r = render(
        status,
        &SigninPage {
            ctx: Ctx::default(),
            notice,
            error,
            form_csrf: token.clone(),
            fields,
        },
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SIGNIN_COOKIE}={token}; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=3600"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn signin_form(Query(q): Query<SigninQuery>) -> Response {
    let notice = q
        .expired
        .map(|_| "Your session has expired or was ended. Sign in again to continue.".to_owned());
    signin_page(notice, None, signin_fields())
}

async fn signin(
    State(w): State<Web>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut fields = signin_fields();
    if let Some(f) = fields.first_mut() {
        f.value = val(&form, "username");
    }
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::constant_time_eq(&val(&form, "csrf"), &expected) {
        return signin_page(
            None,
            Some("The sign-in form expired (its security token did not match). Sign in again on this page.".into()),
            fields,
        );
    }
    let body =
        serde_json::json!({"username": val(&form, "username"), "password": val(&form, "password")});
    let old = cookie(&headers, auth::COOKIE).map(|token| Session {
        token,
        username: String::new(),
        role: Role::Auditor,
        csrf: String::new(),
    });
    let a = match w
        .call(Method::POST, "/api/v1/session", old.as_ref(), Some(body))
        .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !a.status.is_success() {
        let (field, msg) = a.error();
        if field.as_deref() == Some("username") && a.status == StatusCode::BAD_REQUEST {
            if let Some(f) = fields.first_mut() {
                f.error = Some(msg);
            }
            return signin_page(None, Some("Check the user name.".into()), fields);
        }
        return signin_page(None, Some(msg), fields);
    }
    // The administrator's page is the accounts; everyone else starts on today's list.
    let role = serde_json::from_slice::<serde_json::Value>(&a.body)
        .ok()
        .and_then(|v| v["role"].as_str().and_then(Role::parse));
    let mut r = see_other(home(role));
    if let Some(c) = a.set_cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SIGNIN_COOKIE}=; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn signout(
    State(w): State<Web>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let a = w
        .call(Method::DELETE, "/api/v1/session", Some(&s), None)
        .await?;
    let mut r = see_other("/signin");
    if let Some(c) = a.set_cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

// ---------------------------------------------------------------- today

#[derive(Deserialize)]
struct DueJson {
    patient_id: i64,
    label: String,
    due_on: NaiveDate,
    limited_by: String,
}

#[derive(Deserialize)]
struct ProblemJson {
    field: String,
    message: String,
}

#[derive(Deserialize)]
struct CalendarJson {
    overdue: Vec<DueJson>,
    this_week: Vec<DueJson>,
    problems: Vec<ProblemJson>,
}

#[derive(Deserialize)]
struct PlanJson {
    implant_id: i64,
    eri: NaiveDate,
    replace_before: NaiveDate,
    urgency: String,
    days_to_stop: i64,
}

fn due_rows(v: Vec<DueJson>) -> Vec<DueRow> {
    v.into_iter()
        .map(|d| DueRow {
            patient_id: d.patient_id,
            label: d.label,
            due_on: d.due_on.to_string(),
            limited_by: d.limited_by,
        })
        .collect()
}

async fn today(State(w): State<Web>, headers: HeaderMap) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/calendar", "read the refill calendar")?;
    lists::today_page(&w, &s).await
}

// ---------------------------------------------------------------- patients

#[derive(Deserialize)]
struct RecordJson {
    patient: Patient,
    implants: Vec<Implant>,
    trials: Vec<Trial>,
    complications: Vec<Complication>,
}

async fn patient(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/patients/{id}", "read patients' records")?;
    let rec: RecordJson = w.get_json(&s, &format!("/api/v1/patients/{id}")).await?;
    let p = &rec.patient;
    let d = &p.details;
    let identifiers = vec![
        ("Name".to_owned(), d.name.clone()),
        ("Record number".to_owned(), d.mrn.clone()),
        ("Date of birth".to_owned(), d.date_of_birth.to_string()),
        ("Condition".to_owned(), condition_words(&d.condition)),
        (
            "Weight".to_owned(),
            d.weight_kg
                .map_or("not recorded".to_owned(), |w| format!("{w} kg")),
        ),
        ("Allergies".to_owned(), d.allergies.clone()),
        ("Contacts".to_owned(), d.contacts.clone()),
        ("Journey".to_owned(), words(&p.state)),
    ];
    let mut timeline = Vec::new();
    let mut implants = Vec::new();
    for imp in &rec.implants {
        let rxs: Vec<Prescription> = w
            .get_json(&s, &format!("/api/v1/implants/{}/prescriptions", imp.id))
            .await?;
        let alarms: Vec<Alarm> = w
            .get_json(&s, &format!("/api/v1/implants/{}/alarms", imp.id))
            .await?;
        let visits: Vec<RefillVisit> = w.rows(Kind::Visit, imp.id).await?;
        for rx in &rxs {
            let mut text = format!(
                "version {} by {}: {} {}, {} ({}); {}",
                rx.version,
                rx.prescriber,
                rx.drug,
                rx.concentration,
                rx.daily_dose,
                rx.flow,
                rx.reason
            );
            if let Some(c) = &rx.confirmation {
                text.push_str(&format!(
                    "; soft findings confirmed by {}: {}",
                    c.clinician, c.reason
                ));
            }
            timeline.push(TimelineEntry {
                sort: rx.created_at.to_rfc3339(),
                when: when(&rx.created_at),
                kind: "Prescription",
                text,
                link: None,
            });
        }
        for a in &alarms {
            timeline.push(TimelineEntry {
                sort: a.details.raised_at.to_rfc3339(),
                when: when(&a.details.raised_at),
                kind: "Alarm",
                text: format!(
                    "{} ({} priority) on pump {}: {}",
                    a.details.kind,
                    words(&a.details.priority),
                    imp.details.serial,
                    a.details.action
                ),
                link: None,
            });
        }
        let mut open_visit = None;
        for v in &visits {
            let text = match (v.closed_at, v.next_refill_due) {
                (Some(_), Some(due)) => format!(
                    "refill closed: aspirated {} (expected {}), reservoir now {}; next refill due {due}{}",
                    vol(v.aspirated_nl),
                    vol(Some(v.expected_residual_nl)),
                    vol(v.volume_after_nl),
                    if v.flagged {
                        "; reconciliation flagged and investigated"
                    } else {
                        ""
                    }
                ),
                _ => {
                    open_visit = Some(v.id);
                    format!("refill visit open (step: {})", words(&v.step))
                }
            };
            timeline.push(TimelineEntry {
                sort: v.opened_at.to_rfc3339(),
                when: when(&v.opened_at),
                kind: "Refill",
                text,
                link: Some(format!("/visits/{}", v.id)),
            });
        }
        if imp.explant.is_some() {
            continue;
        }
        let id_d = &imp.details;
        let rows = vec![
            (
                "Pump".to_owned(),
                format!("{} serial {}", id_d.pump_model, id_d.serial),
            ),
            (
                "UDI".to_owned(),
                if id_d.udi.is_empty() {
                    "not recorded".to_owned()
                } else {
                    id_d.udi.clone()
                },
            ),
            (
                "Reservoir".to_owned(),
                Volume::from_raw(imp.capacity_nl).to_string(),
            ),
            (
                "Low-reservoir alarm".to_owned(),
                Volume::from_raw(imp.low_alarm_nl).to_string(),
            ),
            (
                "Accuracy margin".to_owned(),
                format!(
                    "± {}.{} %",
                    id_d.accuracy_margin_permille / 10,
                    id_d.accuracy_margin_permille % 10
                ),
            ),
            ("Implanted on".to_owned(), id_d.implanted_on.to_string()),
            ("Pocket".to_owned(), words(&id_d.pocket)),
            (
                "Catheter".to_owned(),
                format!(
                    "{}, {} cm, tip at {}",
                    id_d.catheter_model, id_d.catheter_length_cm, id_d.tip_level
                ),
            ),
            (
                "Projected ERI".to_owned(),
                id_d.eri_projected
                    .map_or("not recorded".to_owned(), |d| d.to_string()),
            ),
        ];
        let plots = plots::implant_plots(imp.id, id_d.implanted_on, &rxs, &visits, (w.st.now)());
        implants.push(ImplantView {
            plots,
            may_mri: may(s.role, "GET", "/api/v1/mri/{id}"),
            id: imp.id,
            serial: id_d.serial.clone(),
            rx_words: rx_words(rxs.last()),
            rows,
            open_visit,
            may_visit: may(s.role, "POST", "/api/v1/implants/{id}/visits"),
            may_prescribe: may(s.role, "POST", "/api/v1/implants/{id}/prescriptions"),
        });
    }
    for c in &rec.complications {
        timeline.push(TimelineEntry {
            sort: format!("{}T00:00:00+00:00", c.details.onset),
            when: c.details.onset.to_string(),
            kind: "Complication",
            text: format!("{}: {}", words(&c.details.kind), c.details.description),
            link: None,
        });
    }
    let trials = rec
        .trials
        .iter()
        .map(|t| TrialView {
            id: t.id,
            summary: format!(
                "{} trial by {}: {} ({} doses), observed {} h; {} {} → {}",
                t.details.drug,
                words(&t.details.route),
                t.details.doses.join(", "),
                t.details.doses.len(),
                t.details.observed_hours,
                words(&t.details.scale),
                t.details.baseline,
                t.details.post
            ),
            evaluation: format!("{} ({})", t.evaluation.recommendation, t.evaluation.rule),
            decision: t.decision.as_ref().map(|d| {
                format!(
                    "{} by {} on {}{}",
                    if d.implant {
                        "implant recommended"
                    } else {
                        "no implant"
                    },
                    d.by,
                    when(&d.at),
                    if d.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.note)
                    }
                )
            }),
        })
        .collect();
    timeline.sort_by(|a, b| b.sort.cmp(&a.sort));
    let banner = w.banner(p).await?;
    Ok(render(
        StatusCode::OK,
        &PatientPage {
            ctx: s.ctx_for(banner),
            id,
            name: d.name.clone(),
            identifiers,
            implants,
            trials,
            may_trial: may(s.role, "POST", "/api/v1/patients/{id}/trials"),
            timeline,
        },
    ))
}

// ---------------------------------------------------------------- refill visit

async fn visit_open(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(
        &s,
        "POST",
        "/api/v1/implants/{id}/visits",
        "record a refill visit",
    )?;
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/implants/{id}/visits"),
            Some(&s),
            None,
        )
        .await?;
    if !a.status.is_success() {
        let (_, msg) = a.error();
        return Err(message(
            s.ctx(),
            a.status,
            "The visit could not be opened",
            &msg,
            "/today",
        ));
    }
    let v: RefillVisit = a.json()?;
    Ok(see_other(&format!("/visits/{}", v.id)))
}

fn drug_options() -> Vec<(String, String)> {
    DrugId::ALL
        .iter()
        .map(|d| (d.name().to_owned(), d.name().to_owned()))
        .collect()
}

fn visit_forms(v: &RefillVisit, capacity: Volume) -> Vec<StepForm> {
    use crate::domain::records::VisitStep;
    let mut forms = Vec::new();
    if v.step == VisitStep::Opened {
        forms.push(StepForm {
            action: "aspirate",
            legend: "Aspirate the reservoir to empty",
            button: "Record the residual",
            fields: vec![Field::new(
                "aspirated",
                "Volume aspirated",
                "text",
                &format!(
                    "A volume with its unit, e.g. 9.6 mL; from 0 mL to the reservoir's {capacity}."
                ),
            )],
        });
    }
    if v.flagged && v.investigation.is_none() && v.step != VisitStep::Closed {
        forms.push(StepForm {
            action: "investigation",
            legend: "Investigation of the flagged reconciliation",
            button: "Record the outcome",
            fields: vec![Field::new(
                "outcome",
                "Investigation outcome",
                "textarea",
                "What was checked and found (pump log, catheter, pocket), 1–4000 characters.",
            )],
        });
    }
    if v.step == VisitStep::Aspirated {
        forms.push(StepForm {
            action: "fill",
            legend: "Fill the reservoir",
            button: "Record the fill",
            fields: vec![
                Field::new("volume_added", "Volume added", "text", &format!("A volume with its unit, e.g. 18 mL; the reservoir holds {capacity}.")),
                Field::new("concentration", "Syringe concentration", "text", "With its unit, e.g. 2000 mcg/mL; must match the prescription."),
                Field::new("lot", "Drug lot", "text", "1–64 characters, as printed on the syringe."),
                Field::new("expiry", "Expiry date", "date", "A date (YYYY-MM-DD), not before today."),
                Field::new("beyond_use", "Beyond-use date (compounded admixture)", "date", "A date (YYYY-MM-DD), not before today; leave empty unless compounded."),
                Field::new("bridging", "Bridging", "text", "When the concentration changed: none, bridge bolus, …; may be empty otherwise."),
            ],
        });
    }
    if v.step == VisitStep::Filled {
        forms.push(StepForm {
            action: "close",
            legend: "Close the visit",
            button: "Close and set the next refill date",
            fields: vec![],
        });
    }
    forms
}

async fn visit_view(w: &Web, s: &Session, id: i64, form: Option<Typed<'_>>) -> Page {
    let a = w
        .call(Method::GET, &format!("/api/v1/visits/{id}"), Some(s), None)
        .await?;
    if !a.status.is_success() {
        let (_, msg) = a.error();
        return Err(message(s.ctx(), a.status, "Not available", &msg, "/today"));
    }
    let v: RefillVisit = a.json()?;
    let (imp, p) = w.implant_and_patient(s, v.implant_id).await?;
    let rx: Option<Prescription> = w.load(Kind::Prescription, v.prescription_id).await?;
    let capacity = Volume::from_raw(imp.capacity_nl);
    let mut forms = visit_forms(&v, capacity);
    let mut general_error = None;
    if let Some((action, typed, err)) = form {
        match forms.iter_mut().find(|f| f.action == action) {
            Some(f) => general_error = refill_fields(&mut f.fields, typed, Some(err)),
            None => general_error = Some(err.1),
        }
    }
    let mut rows = vec![
        (
            "Pump".to_owned(),
            format!("{} serial {}", imp.details.pump_model, imp.details.serial),
        ),
        ("Prescription".to_owned(), rx_words(rx.as_ref())),
        (
            "Opened".to_owned(),
            format!(
                "{} by {}",
                when(&v.opened_at),
                v.signatures.first().map_or("", |s| s.by.as_str())
            ),
        ),
        (
            "Expected residual".to_owned(),
            vol(Some(v.expected_residual_nl)),
        ),
        ("Aspirated".to_owned(), vol(v.aspirated_nl)),
        (
            "Reconciliation".to_owned(),
            v.reconciliation.clone().unwrap_or_else(|| "—".into()),
        ),
        (
            "Investigation".to_owned(),
            v.investigation.clone().unwrap_or_else(|| "—".into()),
        ),
    ];
    if let Some(r) = &v.pharmacist_release {
        rows.push((
            "Pharmacist's release".to_owned(),
            format!("lot {} by {} at {}", r.lot, r.by, when(&r.at)),
        ));
    }
    if let Some(f) = &v.fill {
        rows.push((
            "Added".to_owned(),
            format!(
                "{} of {}, lot {}, expiry {}",
                f.volume_added, f.concentration, f.lot, f.expiry
            ),
        ));
        rows.push((
            "Reservoir after the fill".to_owned(),
            vol(v.volume_after_nl),
        ));
    }
    if let Some(due) = v.next_refill_due {
        rows.push((
            "Next refill due".to_owned(),
            format!(
                "{due} (limited by {})",
                v.limited_by.clone().unwrap_or_default()
            ),
        ));
    }
    let may_record = may(s.role, "POST", "/api/v1/visits/{id}/aspirate");
    let banner = w.banner(&p).await?;
    let status = if general_error.is_some()
        || forms
            .iter()
            .any(|f| f.fields.iter().any(|x| x.error.is_some()))
    {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let summary = Field::summary(forms.iter().flat_map(|f| f.fields.iter()));
    Ok(render(
        status,
        &VisitPage {
            ctx: s.ctx_for(banner),
            id,
            patient_id: p.id,
            step: words(&v.step),
            rows,
            flagged: v.flagged && v.investigation.is_none(),
            reconciliation: v.reconciliation.clone().unwrap_or_default(),
            forms: if may_record { forms } else { vec![] },
            closed: v.closed_at.is_some(),
            general_error,
            summary,
        },
    ))
}

async fn visit_page(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/visits/{id}", "read refill visits")?;
    visit_view(&w, &s, id, None).await
}

async fn visit_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let action = val(&form, "action");
    let date = |k: &str| -> Result<Option<NaiveDate>, (Option<String>, String)> {
        let t = val(&form, k);
        if t.trim().is_empty() {
            return Ok(None);
        }
        t.trim().parse::<NaiveDate>().map(Some).map_err(|_| {
            (
                Some(k.to_owned()),
                "must be a date written YYYY-MM-DD, e.g. 2026-12-31".to_owned(),
            )
        })
    };
    let (path, body) = match action.as_str() {
        "aspirate" => (
            "aspirate",
            serde_json::json!({"aspirated": val(&form, "aspirated")}),
        ),
        "investigation" => (
            "investigation",
            serde_json::json!({"outcome": val(&form, "outcome")}),
        ),
        "close" => ("close", serde_json::json!({})),
        "fill" => {
            let expiry = match date("expiry") {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return visit_view(
                        &w,
                        &s,
                        id,
                        Some((
                            "fill",
                            &form,
                            (
                                Some("expiry".into()),
                                "required: the syringe's expiry date, YYYY-MM-DD".into(),
                            ),
                        )),
                    )
                    .await;
                }
                Err(e) => return visit_view(&w, &s, id, Some(("fill", &form, e))).await,
            };
            let beyond_use = match date("beyond_use") {
                Ok(d) => d,
                Err(e) => return visit_view(&w, &s, id, Some(("fill", &form, e))).await,
            };
            (
                "fill",
                serde_json::json!({
                    "volume_added": val(&form, "volume_added"),
                    "concentration": val(&form, "concentration"),
                    "lot": val(&form, "lot"),
                    "expiry": expiry,
                    "beyond_use": beyond_use,
                    "bridging": val(&form, "bridging"),
                }),
            )
        }
        _ => {
            return Err(message(
                s.ctx(),
                StatusCode::BAD_REQUEST,
                "Unknown step",
                "the form named no step; allowed: aspirate, investigation, fill, close",
                &format!("/visits/{id}"),
            ));
        }
    };
    let api_path = format!("/api/v1/visits/{{id}}/{path}");
    w.require(&s, "POST", &api_path, "record this refill step")?;
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/visits/{id}/{path}"),
            Some(&s),
            Some(body),
        )
        .await?;
    if a.status.is_success() {
        return Ok(see_other(&format!("/visits/{id}")));
    }
    let (field, msg) = a.error();
    let field = match field.as_deref() {
        // The close is refused while the investigation is missing: show it at its field.
        Some("investigation") => Some("outcome".to_owned()),
        _ => field,
    };
    let shown = if field.as_deref() == Some("outcome") && action == "close" {
        "investigation"
    } else {
        action.as_str()
    };
    visit_view(&w, &s, id, Some((shown, &form, (field, msg)))).await
}

async fn report(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    w.require(
        &s,
        "GET",
        "/api/v1/visits/{id}/report",
        "read refill reports",
    )?;
    // The API's report read is audited as a read of the patient's record.
    let a = w
        .call(
            Method::GET,
            &format!("/api/v1/visits/{id}/report"),
            Some(&s),
            None,
        )
        .await?;
    if !a.status.is_success() {
        let (_, msg) = a.error();
        return Err(message(s.ctx(), a.status, "Not available", &msg, "/today"));
    }
    let v: RefillVisit = w.load(Kind::Visit, id).await?.ok_or_else(|| {
        message(
            s.ctx(),
            StatusCode::NOT_FOUND,
            "Not found",
            "no such visit",
            "/today",
        )
    })?;
    let (imp, p) = w.implant_and_patient(&s, v.implant_id).await?;
    let rx: Option<Prescription> = w.load(Kind::Prescription, v.prescription_id).await?;
    let mut rows = vec![
        (
            "Patient".to_owned(),
            format!("{} — record {}", p.details.name, p.details.mrn),
        ),
        (
            "Date of birth".to_owned(),
            p.details.date_of_birth.to_string(),
        ),
        (
            "Pump".to_owned(),
            format!("{} serial {}", imp.details.pump_model, imp.details.serial),
        ),
        (
            "Visit".to_owned(),
            format!(
                "opened {}, closed {}",
                when(&v.opened_at),
                v.closed_at.as_ref().map_or("—".to_owned(), when)
            ),
        ),
        ("Prescription".to_owned(), rx_words(rx.as_ref())),
        (
            "Expected residual".to_owned(),
            vol(Some(v.expected_residual_nl)),
        ),
        ("Aspirated".to_owned(), vol(v.aspirated_nl)),
        (
            "Reconciliation".to_owned(),
            v.reconciliation.clone().unwrap_or_default(),
        ),
        (
            "Investigation".to_owned(),
            v.investigation.clone().unwrap_or_else(|| "—".into()),
        ),
    ];
    if let Some(f) = &v.fill {
        rows.push((
            "Added".to_owned(),
            format!("{} of {}", f.volume_added, f.concentration),
        ));
        rows.push((
            "Lot / expiry".to_owned(),
            format!("{} / {}", f.lot, f.expiry),
        ));
        rows.push((
            "Beyond-use date".to_owned(),
            f.beyond_use.map_or("—".to_owned(), |d| d.to_string()),
        ));
        rows.push((
            "Bridging".to_owned(),
            if f.bridging.is_empty() {
                "—".to_owned()
            } else {
                f.bridging.clone()
            },
        ));
        rows.push((
            "Reservoir after the fill".to_owned(),
            vol(v.volume_after_nl),
        ));
    }
    rows.push((
        "Next refill due".to_owned(),
        v.next_refill_due.map_or("—".to_owned(), |d| {
            format!(
                "{d} (limited by {})",
                v.limited_by.clone().unwrap_or_default()
            )
        }),
    ));
    rows.push((
        "Low-reservoir alarm".to_owned(),
        Volume::from_raw(imp.low_alarm_nl).to_string(),
    ));
    if let Some(rx) = &rx {
        for c in &rx.change {
            rows.push(("Change (old → new)".to_owned(), c.clone()));
        }
    }
    for sig in &v.signatures {
        rows.push((
            "Signed".to_owned(),
            format!("{} by {} at {}", words(&sig.step), sig.by, when(&sig.at)),
        ));
    }
    let banner = w.banner(&p).await?;
    Ok(render(
        StatusCode::OK,
        &ReportPage {
            ctx: s.ctx_for(banner),
            id,
            rows,
        },
    ))
}

// ---------------------------------------------------------------- trials

fn trial_fields() -> Vec<Field> {
    let opts = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    vec![
        Field::new("drug", "Drug", "select", "One drug of the library.").options(drug_options()),
        Field::new("route", "Route", "select", "How the trial dose was given.").options(opts(&[
            ("lumbar_puncture", "lumbar puncture (single shot)"),
            ("catheter", "catheter (inpatient)"),
            ("external_pump", "external pump"),
        ])),
        Field::new(
            "doses",
            "Doses given",
            "text",
            "1 to 3 doses with units, separated by commas, e.g. 50 mcg, 75 mcg.",
        ),
        Field::new("scale", "Scale", "select", "The scale both scores are on.").options(opts(&[
            ("nrs", "NRS pain, 0–10"),
            ("odi", "Oswestry disability index, 0–100 %"),
            ("ashworth_mean_tenths", "Modified Ashworth mean × 10, 0–40"),
        ])),
        Field::new(
            "baseline",
            "Baseline score",
            "text",
            "A whole number within the scale's range (NRS 0–10, ODI 0–100, Ashworth × 10 0–40).",
        ),
        Field::new(
            "post",
            "Score after the trial",
            "text",
            "A whole number within the scale's range.",
        ),
        Field::new(
            "observed_hours",
            "Observation period",
            "text",
            "Whole hours, 1–168.",
        ),
        Field::new(
            "observations",
            "Observations",
            "textarea",
            "Up to 4000 characters.",
        ),
    ]
}

async fn trial_form(State(w): State<Web>, headers: HeaderMap, Path(id): Path<i64>) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "POST", "/api/v1/patients/{id}/trials", "record a trial")?;
    let p: Patient = w.load(Kind::Patient, id).await?.ok_or_else(|| {
        message(
            s.ctx(),
            StatusCode::NOT_FOUND,
            "Not found",
            "no such patient",
            "/patients",
        )
    })?;
    let banner = w.banner(&p).await?;
    Ok(render(
        StatusCode::OK,
        &TrialPage {
            ctx: s.ctx_for(banner),
            id,
            fields: trial_fields(),
            general_error: None,
            summary: vec![],
        },
    ))
}

async fn trial_submit(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(&s, "POST", "/api/v1/patients/{id}/trials", "record a trial")?;
    let p: Patient = w.load(Kind::Patient, id).await?.ok_or_else(|| {
        message(
            s.ctx(),
            StatusCode::NOT_FOUND,
            "Not found",
            "no such patient",
            "/patients",
        )
    })?;
    let number = |k: &str| -> Result<u16, (Option<String>, String)> {
        val(&form, k).trim().parse::<u16>().map_err(|_| {
            (
                Some(k.to_owned()),
                "must be a whole number (no decimals, no unit)".to_owned(),
            )
        })
    };
    let choice = |k: &str| -> Result<String, (Option<String>, String)> {
        let v = val(&form, k);
        if v.is_empty() {
            Err((
                Some(k.to_owned()),
                "choose one of the listed options".to_owned(),
            ))
        } else {
            Ok(v)
        }
    };
    let body = (|| -> Result<serde_json::Value, (Option<String>, String)> {
        Ok(serde_json::json!({
            "drug": choice("drug")?,
            "route": choice("route")?,
            "doses": val(&form, "doses").split(',').map(str::trim).filter(|d| !d.is_empty()).collect::<Vec<_>>(),
            "scale": choice("scale")?,
            "baseline": number("baseline")?,
            "post": number("post")?,
            "observed_hours": number("observed_hours")?,
            "observations": val(&form, "observations"),
        }))
    })();
    let err = match body {
        Ok(body) => {
            let a = w
                .call(
                    Method::POST,
                    &format!("/api/v1/patients/{id}/trials"),
                    Some(&s),
                    Some(body),
                )
                .await?;
            if a.status.is_success() {
                return Ok(see_other(&format!("/patients/{id}#trials")));
            }
            a.error()
        }
        Err(e) => e,
    };
    let mut fields = trial_fields();
    let general_error = refill_fields(&mut fields, &form, Some(err));
    let summary = Field::summary(&fields);
    let banner = w.banner(&p).await?;
    Ok(render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &TrialPage {
            ctx: s.ctx_for(banner),
            id,
            fields,
            general_error,
            summary,
        },
    ))
}

async fn trial_decision(
    State(w): State<Web>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(
        &s,
        "POST",
        "/api/v1/trials/{id}/decision",
        "decide on a trial",
    )?;
    let t: Trial = w.load(Kind::Trial, id).await?.ok_or_else(|| {
        message(
            s.ctx(),
            StatusCode::NOT_FOUND,
            "Not found",
            "no such trial",
            "/patients",
        )
    })?;
    let back = format!("/patients/{}#trials", t.patient_id);
    let implant = match val(&form, "implant").as_str() {
        "yes" => true,
        "no" => false,
        _ => {
            return Err(message(
                s.ctx(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "Decision not recorded",
                "Choose either “Implant recommended” or “No implant”.",
                &back,
            ));
        }
    };
    let a = w
        .call(
            Method::POST,
            &format!("/api/v1/trials/{id}/decision"),
            Some(&s),
            Some(serde_json::json!({"implant": implant, "note": val(&form, "note")})),
        )
        .await?;
    if !a.status.is_success() {
        let (_, msg) = a.error();
        return Err(message(
            s.ctx(),
            a.status,
            "Decision not recorded",
            &msg,
            &back,
        ));
    }
    Ok(see_other(&back))
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize)]
struct AuditJson {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    entity: String,
    entity_id: Option<i64>,
}

async fn audit(State(w): State<Web>, headers: HeaderMap) -> Page {
    let s = w.session(&headers).await?;
    w.require(&s, "GET", "/api/v1/audit", "read the audit log")?;
    let rows: Vec<AuditJson> = w.get_json(&s, "/api/v1/audit?limit=200").await?;
    let rows = rows
        .into_iter()
        .map(|r| AuditLine {
            id: r.id,
            at: DateTime::<Utc>::from_timestamp_millis(r.at).map_or_else(
                || r.at.to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
            actor: r.actor,
            action: r.action,
            entity: match r.entity_id {
                Some(i) => format!("{} {i}", r.entity),
                None => r.entity,
            },
        })
        .collect();
    Ok(render(StatusCode::OK, &AuditPage { ctx: s.ctx(), rows }))
}
