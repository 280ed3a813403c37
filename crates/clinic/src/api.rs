//! The HTTP API under `/api/v1`: JSON in and out, one error shape, authorization by the
//! table in [`crate::auth`] before any handler runs, and the OpenAPI 3.1 description
//! generated from these handlers at `/api/v1/openapi.json`.
//!
//! Handlers call the domain's rules and the storage trait; they never build SQL.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thecal_rx::{Concentration, Duration, Flow, Volume};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{self, Role};
use crate::domain::calendar::{self, Calendar, DueInput};
use crate::domain::device::Device;
use crate::domain::events::{
    Alarm, Complication, MriClose, MriEpisode, NewAlarm, NewComplication, NewMri, close_mri,
};
use crate::domain::records::{
    Confirmation, Explant, Fill, Implant, JourneyState, NewImplant, NewPatient, NewPrescription,
    Patient, Prescription, RefillVisit, VisitStep,
};
use crate::domain::replacement::Plan;
use crate::domain::trial::{self, Decision, NewTrial, Trial};
use crate::domain::{FieldError, change, text, visit};
use crate::storage::{
    Actor, AuditRow, Kind, NewRow, Row, SET_ASIDE, SessionRow, Storage, StoreError,
};

pub(crate) mod accounts;
mod history;
mod paging;
mod programming;
pub use paging::{ReplacementQuery, TOTAL_COUNT};

/// The service's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Mark the session cookie `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Refill visits the clinic can do per day (the daily list's size).
    pub capacity_per_day: usize,
    /// The clinic's maximum refill interval in days.
    pub clinic_max_days: u64,
    /// Signing a prescription needs the password given within this many minutes (sign-in
    /// or `POST /api/v1/session/reauth`).
    pub fresh_sign_in_minutes: u64,
    /// How long a break-glass grant lasts, in minutes.
    pub break_glass_minutes: u64,
    /// The refill calendar's due dates, kept while the database's calendar generation is
    /// unchanged (shared by every clone of the state).
    pub calendar_cache: CalendarCache,
}

/// The due dates of every active implant as last computed, with the database's calendar
/// generation and the clinic maximum they were computed at. Derived data only: a request
/// finding another generation in the database computes them again, so several instances
/// on one database never serve each other's stale dates.
#[derive(Clone, Default)]
pub struct CalendarCache {
    slot: Arc<std::sync::Mutex<Option<Arc<CachedDues>>>>,
    /// Held while computing, so concurrent misses compute once.
    computing: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for CalendarCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CalendarCache")
    }
}

/// Due dates computed at one calendar generation.
struct CachedDues {
    generation: i64,
    clinic_max_days: u64,
    /// Earliest due first (ties by implant).
    dues: Vec<calendar::Due>,
    problems: Vec<FieldError>,
    /// Every active implant's projected ERI, by implant id (the replacement plan's input).
    eris: Vec<(i64, NaiveDate)>,
}

impl CalendarCache {
    fn get(&self, generation: i64, clinic_max_days: u64) -> Option<Arc<CachedDues>> {
        let slot = self.slot.lock().ok()?;
        slot.as_ref()
            .filter(|c| c.generation == generation && c.clinic_max_days == clinic_max_days)
            .cloned()
    }
    fn put(&self, c: Arc<CachedDues>) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(c);
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            secure_cookies: false,
            capacity_per_day: 8,
            clinic_max_days: calendar::DEFAULT_CLINIC_MAX_DAYS,
            fresh_sign_in_minutes: 5,
            break_glass_minutes: 60,
            calendar_cache: CalendarCache::default(),
        }
    }
}

/// A clock: the service reads time only through this, so tests can set it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Storage>,
    /// Settings.
    pub config: Config,
    /// Clock.
    pub now: Clock,
}

impl AppState {
    /// State with the system clock.
    pub fn new(store: Arc<dyn Storage>, config: Config) -> Self {
        AppState {
            store,
            config,
            now: Arc::new(Utc::now),
        }
    }
    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.now)()
    }
    pub(crate) fn ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The one error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// invalid, unauthenticated, forbidden, csrf, not_found, conflict, throttled, internal.
    pub code: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// What was wrong and what is allowed.
    pub message: String,
}

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    message: String,
    allow: Option<String>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            field: field.map(str::to_owned),
            message: message.into(),
            allow: None,
        }
    }
    fn with_allow(mut self, allow: String) -> Self {
        self.allow = Some(allow);
        self
    }
    /// Status, code, field, message and the `Allow` header's value (for the FHIR
    /// endpoints, which answer errors as an OperationOutcome).
    pub(crate) fn into_parts(
        self,
    ) -> (
        StatusCode,
        &'static str,
        Option<String>,
        String,
        Option<String>,
    ) {
        (self.status, self.code, self.field, self.message, self.allow)
    }
    /// Status, field and message (for the console's pages).
    pub fn parts(&self) -> (StatusCode, Option<&str>, &str) {
        (self.status, self.field.as_deref(), &self.message)
    }
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", Some(field), message)
    }
    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            format!("no such {what}"),
        )
    }
    fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", None, message)
    }
    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            None,
            "internal error; the cause is in the server log",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let status = if matches!(
            e.field.as_str(),
            "step" | "investigation" | "state" | "post_scan_interrogation"
        ) {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        let code = if status == StatusCode::CONFLICT {
            "conflict"
        } else {
            "invalid"
        };
        ApiError::new(status, code, Some(&e.field), e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { field } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                Some(field),
                format!("{field} already exists; it must be unique"),
            ),
            StoreError::Stale => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                None,
                "the record changed meanwhile; reload and retry",
            ),
            StoreError::NotFound => ApiError::not_found("record"),
            other => {
                eprintln!("thecal-clinic: storage error: {other}");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                field: self.field,
                message: self.message,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(v) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            r.headers_mut().insert(header::ALLOW, v);
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("900"));
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejection is an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(ApiError::invalid("body", rej.body_text())),
        }
    }
}

/// A numeric id in the path.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<i64>::from_request_parts(parts, state).await {
            Ok(Path(id)) if id > 0 => Ok(Id(id)),
            _ => Err(ApiError::invalid("id", "must be a positive whole number")),
        }
    }
}

/// Query parameters whose rejection is an [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(ApiError::invalid("query", rej.body_text())),
        }
    }
}

/// The signed-in user, put in the request by the authorization layer.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Who.
    pub actor: Actor,
    /// Role.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's token hash.
    pub token_hash: String,
    /// When the password was last given in this session, ms.
    pub authenticated_at: i64,
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == auth::COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The route template a concrete path belongs to (`{id}` matches one segment).
fn template_of(path: &str) -> Option<&'static str> {
    auth::ROUTES.iter().map(|r| r.path).find(|t| {
        let (a, b): (Vec<&str>, Vec<&str>) = (t.split('/').collect(), path.split('/').collect());
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| *x == "{id}" || x == y)
    })
}

/// What the authorization layer decided for a request.
pub(crate) enum Admission {
    /// A public route: no session needed.
    Public,
    /// A signed-in user whose role the table allows.
    User(CurrentUser),
}

/// The authorization check shared by the API and the FHIR endpoints: finds the route's
/// rule, resolves the session, checks CSRF on every method that changes something, and
/// the role — before the handler reads the body. A refusal of a signed-in user's role
/// comes back with that user, so a caller may audit it.
pub(crate) async fn admit(
    st: &AppState,
    matched: Option<&MatchedPath>,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Admission, (ApiError, Option<CurrentUser>)> {
    let path = match matched {
        Some(m) => m.as_str().to_owned(),
        None => template_of(uri.path()).unwrap_or_default().to_owned(),
    };
    let Some(rule) = auth::rule(method.as_str(), &path) else {
        let allowed: Vec<&str> = auth::ROUTES
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method)
            .collect();
        if !allowed.is_empty() {
            return Err((
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    None,
                    format!(
                        "{} is not allowed here; allowed: {}",
                        method,
                        allowed.join(", ")
                    ),
                )
                .with_allow(allowed.join(", ")),
                None,
            ));
        }
        eprintln!(
            "thecal-clinic: {} {path} is not in the authorization table",
            method
        );
        return Err((
            ApiError::forbidden("this route is not in the authorization table"),
            None,
        ));
    };
    if rule.access == auth::Access::Public {
        return Ok(Admission::Public);
    }
    let session = match cookie_token(headers) {
        Some(t) => {
            let hash = auth::token_hash(&t);
            match st.store.session(&hash, st.ms()).await {
                Ok(s) => s.map(|s| (s, hash)),
                Err(e) => return Err((ApiError::from(e), None)),
            }
        }
        None => None,
    };
    let Some((s, token_hash)) = session else {
        return Err((
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                None,
                "sign in first (POST /api/v1/session)",
            ),
            None,
        ));
    };
    let Some(role) = Role::parse(&s.user.role).filter(|_| s.user.active) else {
        return Err((ApiError::forbidden("this account is disabled"), None));
    };
    if *method != Method::GET && *method != Method::HEAD {
        let sent = headers
            .get(auth::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth::constant_time_eq(sent, &s.csrf) {
            return Err((
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    Some(auth::CSRF_HEADER),
                    "missing or wrong X-CSRF-Token header: send the csrf_token from sign-in",
                ),
                None,
            ));
        }
    }
    let user = CurrentUser {
        actor: Actor {
            user_id: s.user.id,
            username: s.user.username,
        },
        role,
        csrf: s.csrf,
        token_hash,
        authenticated_at: s.authenticated_at,
    };
    if !auth::allowed(rule, Some(role)) {
        return Err((
            ApiError::forbidden(&format!(
                "a {} may not {} {}",
                role.as_str(),
                rule.method,
                rule.path
            )),
            Some(user),
        ));
    }
    Ok(Admission::User(user))
}

/// The authorization layer of the API ([`admit`]).
async fn authorize(
    State(st): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let (method, uri, headers) = (
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
    );
    match admit(&st, matched.as_ref(), &method, &uri, &headers).await {
        Ok(Admission::Public) => next.run(req).await,
        Ok(Admission::User(u)) => {
            req.extensions_mut().insert(u);
            next.run(req).await
        }
        Err((e, _)) => e.into_response(),
    }
}

fn json<T: Serialize>(v: &T) -> ApiResult<String> {
    serde_json::to_string(v).map_err(|e| {
        eprintln!("thecal-clinic: serialise: {e}");
        ApiError::internal()
    })
}

fn parse<T: DeserializeOwned>(row: &Row) -> ApiResult<T> {
    serde_json::from_str(&row.data).map_err(|e| {
        eprintln!("thecal-clinic: stored record {} unreadable: {e}", row.id);
        ApiError::internal()
    })
}

async fn load<T: DeserializeOwned>(st: &AppState, kind: Kind, id: i64) -> ApiResult<(Row, T)> {
    let row = st
        .store
        .get(kind, id)
        .await?
        .ok_or_else(|| ApiError::not_found(kind.entity()))?;
    let v = parse(&row)?;
    Ok((row, v))
}

// ---------------------------------------------------------------- session and users

/// Sign-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// User name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Send this in `X-CSRF-Token` on every request that changes something.
    pub csrf_token: String,
}

/// Signs in: a new session (any session the request carried is ended).
#[utoipa::path(post, path = "/api/v1/session", request_body = Login, tag = "session",
    responses((status = 200, body = Me), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(l): ApiJson<Login>,
) -> ApiResult<Response> {
    let now = st.ms();
    let name = text("username", &l.username, 1, 64)?;
    let failures = st
        .store
        .login_failures_since(&name, now - auth::FAILURE_WINDOW_MS)
        .await?;
    if failures >= auth::MAX_FAILURES {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            Some("username"),
            format!(
                "too many failed sign-ins for this user name: at most {} in 15 minutes; try again later",
                auth::MAX_FAILURES
            ),
        ));
    }
    let user = st.store.user_by_name(&name).await?;
    let ok = auth::verify_password(&l.password, user.as_ref().map(|u| u.password_hash.as_str()));
    let user = match user {
        Some(u) if ok && u.active => u,
        _ => {
            st.store.login_failed(&name, now).await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                None,
                "wrong user name or password",
            ));
        }
    };
    if let Some(old) = cookie_token(&headers) {
        st.store.delete_session(&auth::token_hash(&old)).await?;
    }
    let token = auth::token().map_err(|_| ApiError::internal())?;
    let csrf = auth::token().map_err(|_| ApiError::internal())?;
    st.store
        .create_session(
            &SessionRow {
                token_hash: auth::token_hash(&token),
                user_id: user.id,
                csrf: csrf.clone(),
                created_at: now,
                expires_at: now + auth::SESSION_TTL_MS,
            },
            &user.username,
        )
        .await?;
    let secure = if st.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        auth::COOKIE,
        auth::SESSION_TTL_MS / 1000
    );
    let role = Role::parse(&user.role).ok_or_else(ApiError::internal)?;
    let mut r = Json(Me {
        username: user.username,
        role,
        csrf_token: csrf,
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?,
    );
    Ok(r)
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn whoami(Extension(u): Extension<CurrentUser>) -> Json<Me> {
    Json(Me {
        username: u.actor.username,
        role: u.role,
        csrf_token: u.csrf,
    })
}

/// Signs out.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn logout(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
) -> ApiResult<Response> {
    st.store.delete_session(&u.token_hash).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("thecal_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(r)
}

/// Re-authentication: the signed-in user's password again.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Reauth {
    /// Password.
    pub password: String,
}

/// Gives the password again in this session: signing a prescription needs it within the
/// last minutes (the clinic's fresh sign-in window). Failures count towards the sign-in
/// throttle.
#[utoipa::path(post, path = "/api/v1/session/reauth", request_body = Reauth, tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn reauth(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    ApiJson(r): ApiJson<Reauth>,
) -> ApiResult<Json<Me>> {
    let now = st.ms();
    let name = u.actor.username.clone();
    let failures = st
        .store
        .login_failures_since(&name, now - auth::FAILURE_WINDOW_MS)
        .await?;
    if failures >= auth::MAX_FAILURES {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            Some("password"),
            format!(
                "too many failed sign-ins for this user name: at most {} in 15 minutes; try again later",
                auth::MAX_FAILURES
            ),
        ));
    }
    let user = st.store.user_by_name(&name).await?;
    if !auth::verify_password(&r.password, user.as_ref().map(|u| u.password_hash.as_str())) {
        st.store.login_failed(&name, now).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            Some("password"),
            "wrong password",
        ));
    }
    st.store
        .reauthenticate(&u.actor, &u.token_hash, now)
        .await?;
    Ok(Json(Me {
        username: u.actor.username,
        role: u.role,
        csrf_token: u.csrf,
    }))
}

/// Refuses a session whose password is older than the fresh sign-in window.
fn require_fresh_sign_in(st: &AppState, u: &CurrentUser, what: &str) -> ApiResult<()> {
    let window_ms = i64::try_from(st.config.fresh_sign_in_minutes)
        .unwrap_or(i64::MAX / 60_000)
        .saturating_mul(60_000);
    let age_ms = st.ms().saturating_sub(u.authenticated_at);
    if age_ms <= window_ms {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "reauthenticate",
        Some("password"),
        format!(
            "{what} needs a sign-in within the last {} minutes (the password was last given {} \
             minutes ago): give your password again with POST /api/v1/session/reauth, then \
             repeat the request",
            st.config.fresh_sign_in_minutes,
            age_ms / 60_000
        ),
    ))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// User name, 1–64 characters.
    pub username: String,
    /// Password, 12–200 characters.
    pub password: String,
    /// Role.
    pub role: Role,
}

/// A created account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserCreated {
    /// Id.
    pub id: i64,
    /// User name.
    pub username: String,
    /// Role.
    pub role: Role,
}

/// Creates an account (administrators).
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser, tag = "users",
    responses((status = 201, body = UserCreated), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    ApiJson(n): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserCreated>)> {
    let name = text("username", &n.username, 1, 64)?;
    auth::password_policy(&n.password)?;
    let hash = auth::hash_password(&n.password).map_err(|_| ApiError::internal())?;
    let id = st
        .store
        .create_user(Some(&u.actor), &name, &hash, n.role.as_str(), st.ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            id,
            username: name,
            role: n.role,
        }),
    ))
}

// ---------------------------------------------------------------- patients

/// Creates a patient.
#[utoipa::path(post, path = "/api/v1/patients", request_body = NewPatient, tag = "patients",
    responses((status = 201, body = Patient), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn create_patient(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    ApiJson(n): ApiJson<NewPatient>,
) -> ApiResult<(StatusCode, Json<Patient>)> {
    let details = n.validate(st.now().date_naive())?;
    let row = insert_referred(&st, &u.actor, details).await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// Records a validated patient as referred, with its audit: the registration here and
/// the FHIR import of a referral. A medical record number that exists already is a
/// conflict (409) on `mrn`.
pub(crate) async fn insert_referred(
    st: &AppState,
    actor: &Actor,
    details: NewPatient,
) -> ApiResult<Row> {
    let p = Patient {
        id: 0,
        state: JourneyState::Referred,
        details,
    };
    Ok(st
        .store
        .insert(
            actor,
            Kind::Patient,
            NewRow {
                parent_id: None,
                key: Some(p.details.mrn.clone()),
                status: "referred".into(),
                data: json(&p)?,
            },
            st.ms(),
        )
        .await?)
}

/// Paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// At most this many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000, nullable = false)]
    pub limit: Option<i64>,
}

impl ListQuery {
    /// The limit asked for, checked.
    fn checked(&self) -> ApiResult<i64> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be 1 to 1000"));
        }
        Ok(limit)
    }
}

/// Lists patients.
#[utoipa::path(get, path = "/api/v1/patients", params(ListQuery), tag = "patients",
    responses((status = 200, body = [Patient]), (status = 400, body = ErrorBody)))]
async fn list_patients(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Patient>>> {
    let rows = st.store.list(Kind::Patient, None, q.checked()?).await?;
    Ok(Json(rows.iter().map(parse).collect::<ApiResult<_>>()?))
}

/// A patient's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientRecord {
    /// The patient.
    pub patient: Patient,
    /// Implants, oldest first.
    pub implants: Vec<Implant>,
    /// Trials.
    pub trials: Vec<Trial>,
    /// Complications.
    pub complications: Vec<Complication>,
}

/// A patient's record (the read is audited).
#[utoipa::path(get, path = "/api/v1/patients/{id}", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    tag = "patients", responses((status = 200, body = PatientRecord), (status = 404, body = ErrorBody)))]
async fn get_patient(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
) -> ApiResult<Json<PatientRecord>> {
    let r = st
        .store
        .patient_record(&u.actor, id, 1000, st.ms())
        .await?
        .ok_or_else(|| ApiError::not_found("patient"))?;
    Ok(Json(PatientRecord {
        patient: parse(&r.patient)?,
        implants: r.implants.iter().map(parse).collect::<ApiResult<_>>()?,
        trials: r.trials.iter().map(parse).collect::<ApiResult<_>>()?,
        complications: r
            .complications
            .iter()
            .map(parse)
            .collect::<ApiResult<_>>()?,
    }))
}

/// Break-glass access: why the record is needed.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BreakGlassRequest {
    /// The stated reason, 10–2000 characters (e.g. "overdose suspected in the emergency
    /// department").
    pub reason: String,
}

/// One pump in the break-glass view.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyPump {
    /// Implant.
    pub implant_id: i64,
    /// Pump model.
    pub pump_model: String,
    /// Serial number.
    pub serial: String,
    /// Drug of the prescription in force.
    pub drug: Option<String>,
    /// Its concentration.
    pub concentration: Option<String>,
    /// Its daily dose.
    pub daily_dose: Option<String>,
    /// Its flow.
    pub flow: Option<String>,
    /// The physician who signed the prescription in force.
    pub managing_physician: Option<String>,
    /// The maker's emergency line, where known for the model.
    pub manufacturer_line: Option<String>,
}

/// What an emergency clinician sees under break-glass (CLINIC.md §6: drug, concentration,
/// dose, pump model, managing physician, the maker's line), and until when.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyView {
    /// Patient.
    pub patient_id: i64,
    /// Name.
    pub name: String,
    /// Record number.
    pub mrn: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// Allergies.
    pub allergies: String,
    /// Pumps in place (not explanted).
    pub pumps: Vec<EmergencyPump>,
    /// The reason stated for this access.
    pub reason: String,
    /// When this access ends.
    pub expires_at: DateTime<Utc>,
}

fn manufacturer_line(model: &str) -> Option<String> {
    model
        .to_ascii_lowercase()
        .starts_with("synchromed")
        .then(|| "Medtronic 24 h line 800-707-0933 (US)".to_owned())
}

async fn emergency_view(
    st: &AppState,
    u: &CurrentUser,
    id: i64,
    reason: String,
    expires_ms: i64,
) -> ApiResult<EmergencyView> {
    let row = st
        .store
        .read_logged(&u.actor, Kind::Patient, id, st.ms())
        .await?
        .ok_or_else(|| ApiError::not_found("patient"))?;
    let p: Patient = parse(&row)?;
    let mut pumps = Vec::new();
    for r in st.store.list(Kind::Implant, Some(id), 100).await? {
        let imp: Implant = parse(&r)?;
        if imp.explant.is_some() {
            continue;
        }
        let rx: Option<Prescription> =
            match st.store.latest(Kind::Prescription, imp.id, None).await? {
                Some(r) => Some(parse(&r)?),
                None => None,
            };
        pumps.push(EmergencyPump {
            implant_id: imp.id,
            manufacturer_line: manufacturer_line(&imp.details.pump_model),
            pump_model: imp.details.pump_model,
            serial: imp.details.serial,
            drug: rx.as_ref().map(|r| r.drug.clone()),
            concentration: rx.as_ref().map(|r| r.concentration.clone()),
            daily_dose: rx.as_ref().map(|r| r.daily_dose.clone()),
            flow: rx.as_ref().map(|r| r.flow.clone()),
            managing_physician: rx.map(|r| r.prescriber),
        });
    }
    Ok(EmergencyView {
        patient_id: p.id,
        name: p.details.name,
        mrn: p.details.mrn,
        date_of_birth: p.details.date_of_birth,
        allergies: p.details.allergies,
        pumps,
        reason,
        expires_at: DateTime::from_timestamp_millis(expires_ms).unwrap_or_default(),
    })
}

/// Break-glass access to a patient's emergency view (emergency clinicians): the stated
/// reason is stored and audited, and access lasts the clinic's break-glass time.
#[utoipa::path(post, path = "/api/v1/patients/{id}/break-glass", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    request_body = BreakGlassRequest, tag = "patients",
    responses((status = 201, body = EmergencyView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn break_glass(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(b): ApiJson<BreakGlassRequest>,
) -> ApiResult<(StatusCode, Json<EmergencyView>)> {
    let reason = text("reason", &b.reason, 10, 2000)?;
    if st.store.get(Kind::Patient, id).await?.is_none() {
        return Err(ApiError::not_found("patient"));
    }
    let now = st.ms();
    let minutes = i64::try_from(st.config.break_glass_minutes).unwrap_or(60);
    let expires = now.saturating_add(minutes.saturating_mul(60_000));
    st.store
        .grant_break_glass(&u.actor, id, &reason, now, expires)
        .await?;
    let view = emergency_view(&st, &u, id, reason, expires).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The emergency view again while the break-glass grant lasts (each read audited).
#[utoipa::path(get, path = "/api/v1/patients/{id}/break-glass", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    tag = "patients", responses((status = 200, body = EmergencyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn break_glass_view(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
) -> ApiResult<Json<EmergencyView>> {
    let again = format!("state your reason with POST /api/v1/patients/{id}/break-glass");
    match st.store.break_glass(u.actor.user_id, id).await? {
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "break_glass",
            None,
            format!("no break-glass access to this patient: {again}"),
        )),
        Some((_, expires)) if expires <= st.ms() => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "break_glass",
            None,
            format!(
                "your break-glass access to this patient ended at {}: {again}",
                DateTime::from_timestamp_millis(expires)
                    .unwrap_or_default()
                    .format("%Y-%m-%d %H:%M UTC")
            ),
        )),
        Some((reason, expires)) => Ok(Json(emergency_view(&st, &u, id, reason, expires).await?)),
    }
}

/// A journey transition.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StateChange {
    /// The new state.
    pub state: JourneyState,
}

/// Moves a patient along the journey.
#[utoipa::path(post, path = "/api/v1/patients/{id}/state", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    request_body = StateChange, tag = "patients",
    responses((status = 200, body = Patient), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn change_state(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(c): ApiJson<StateChange>,
) -> ApiResult<Json<Patient>> {
    let (row, mut p): (Row, Patient) = load(&st, Kind::Patient, id).await?;
    p.state = p.state.transition(c.state)?;
    let status = format!("{:?}", p.state).to_lowercase();
    st.store
        .update(
            &u.actor,
            Kind::Patient,
            id,
            row.rev,
            &status,
            &json(&p)?,
            st.ms(),
        )
        .await?;
    Ok(Json(p))
}

// ---------------------------------------------------------------- implants

/// Records an implant.
#[utoipa::path(post, path = "/api/v1/patients/{id}/implants", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    request_body = NewImplant, tag = "implants",
    responses((status = 201, body = Implant), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_implant(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(patient_id): Id,
    ApiJson(n): ApiJson<NewImplant>,
) -> ApiResult<(StatusCode, Json<Implant>)> {
    let _: (Row, Patient) = load(&st, Kind::Patient, patient_id).await?;
    let (details, capacity, low) = n.validate(st.now().date_naive())?;
    let imp = Implant {
        id: 0,
        patient_id,
        capacity_nl: capacity.raw(),
        low_alarm_nl: low.raw(),
        details,
        revisions: vec![],
        explant: None,
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::Implant,
            NewRow {
                parent_id: Some(patient_id),
                key: Some(imp.details.serial.clone()),
                status: "active".into(),
                data: json(&imp)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// Records an explant: the pump leaves the refill calendar.
#[utoipa::path(post, path = "/api/v1/implants/{id}/explant", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = Explant, tag = "implants",
    responses((status = 200, body = Implant), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn explant(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(e): ApiJson<Explant>,
) -> ApiResult<Json<Implant>> {
    let (row, mut imp): (Row, Implant) = load(&st, Kind::Implant, id).await?;
    if imp.explant.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            Some("explant"),
            "already explanted",
        ));
    }
    if e.on < imp.details.implanted_on || e.on > st.now().date_naive() {
        return Err(ApiError::invalid(
            "on",
            "must be between the implant date and today",
        ));
    }
    imp.explant = Some(Explant {
        on: e.on,
        reason: text("reason", &e.reason, 1, 2000)?,
    });
    st.store
        .update(
            &u.actor,
            Kind::Implant,
            id,
            row.rev,
            "explanted",
            &json(&imp)?,
            st.ms(),
        )
        .await?;
    Ok(Json(imp))
}

// ---------------------------------------------------------------- prescriptions

/// The prescription versions of an implant, oldest first (the titration history).
#[utoipa::path(get, path = "/api/v1/implants/{id}/prescriptions", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "prescriptions", responses((status = 200, body = [Prescription]), (status = 404, body = ErrorBody)))]
async fn list_prescriptions(
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Vec<Prescription>>> {
    let _: (Row, Implant) = load(&st, Kind::Implant, id).await?;
    let rows = st.store.list(Kind::Prescription, Some(id), 1000).await?;
    Ok(Json(rows.iter().map(parse).collect::<ApiResult<_>>()?))
}

/// A new version checked against the implant's own pump, the version in force and the
/// patient: what [`create_prescription`] stores with, and what the console shows while
/// the prescriber types (one implementation).
pub struct Review {
    /// The implant.
    pub implant: Implant,
    /// Its patient.
    pub patient: Patient,
    /// The version in force.
    pub previous: Option<Prescription>,
    /// thecal-rx's check, or the field that could not be read.
    pub checked: Result<change::Checked, FieldError>,
}

/// Reviews a new version for an implant (no change is made).
///
/// # Errors
/// The implant or its patient is missing, or the pump was explanted.
pub async fn prescription_review(
    st: &AppState,
    implant_id: i64,
    n: &NewPrescription,
) -> ApiResult<Review> {
    let (_, imp): (Row, Implant) = load(st, Kind::Implant, implant_id).await?;
    if imp.explant.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            None,
            "the pump was explanted",
        ));
    }
    let now = st.now();
    let previous: Option<Prescription> = match st
        .store
        .latest(Kind::Prescription, implant_id, None)
        .await?
    {
        Some(r) => Some(parse(&r)?),
        None => None,
    };
    let elapsed = previous.as_ref().map(|p| {
        Duration::from_ms(u64::try_from((now - p.created_at).num_milliseconds()).unwrap_or(0))
    });
    let (_, patient): (Row, Patient) = load(st, Kind::Patient, imp.patient_id).await?;
    let device = Device::of_implant(
        &imp.details.pump_model,
        Volume::from_raw(imp.capacity_nl),
        previous.as_ref(),
    );
    let checked = change::check_new_on(
        n,
        &device,
        previous.as_ref().zip(elapsed),
        Some(&patient.details.condition),
    );
    Ok(Review {
        implant: imp,
        patient,
        previous,
        checked,
    })
}

/// A new prescription version, checked by thecal-rx: hard findings refuse it, soft
/// findings need `confirm_soft_findings`.
#[utoipa::path(post, path = "/api/v1/implants/{id}/prescriptions", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = NewPrescription, tag = "prescriptions",
    responses((status = 201, body = Prescription), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_prescription(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(implant_id): Id,
    ApiJson(n): ApiJson<NewPrescription>,
) -> ApiResult<(StatusCode, Json<Prescription>)> {
    require_fresh_sign_in(&st, &u, "signing a prescription")?;
    let review = prescription_review(&st, implant_id, &n).await?;
    let checked = review.checked?;
    let now = st.now();
    let reason = change::accept(&checked, n.confirm_soft_findings.as_deref())?;
    let rx = Prescription {
        id: 0,
        implant_id,
        version: 0,
        drug: checked.drug.name().to_owned(),
        concentration: checked.concentration.to_string(),
        concentration_ng_ml: checked.concentration.raw(),
        daily_dose: checked.daily_dose.to_string(),
        daily_dose_ng: checked.daily_dose.raw(),
        flow: checked.flow.to_string(),
        flow_nl_day: checked.flow.raw(),
        reservoir_volume_nl: checked.reservoir_volume.raw(),
        opioid_naive: n.opioid_naive,
        reason: text("reason", &n.reason, 1, 2000)?,
        prescriber: u.actor.username.clone(),
        created_at: now,
        findings: checked.findings,
        confirmation: reason.map(|reason| Confirmation {
            clinician: u.actor.username.clone(),
            reason,
            at: now,
        }),
        change: checked.change,
        admixture: checked.regimen.components,
        flex: n.flex.clone(),
        patient_bolus: checked.regimen.bolus_record,
        therapy: Some(checked.therapy),
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::Prescription,
            NewRow {
                parent_id: Some(implant_id),
                key: None,
                status: "active".into(),
                data: json(&rx)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

// ---------------------------------------------------------------- refill visits

/// The last fill of an implant: (when, volume after), from the last closed visit or the
/// first prescription's initial fill.
fn last_fill(rx: &Prescription, last: Option<&RefillVisit>) -> (DateTime<Utc>, Volume) {
    match last.and_then(|v| v.closed_at.zip(v.volume_after_nl)) {
        Some((at, nl)) => (at, Volume::from_raw(nl)),
        None => (rx.created_at, Volume::from_raw(rx.reservoir_volume_nl)),
    }
}

/// The prescription versions of an implant as (start, thecal-rx schedule), oldest first,
/// with the first version (whose initial fill starts the reservoir's history).
async fn versions(
    st: &AppState,
    implant_id: i64,
) -> ApiResult<(
    Option<Prescription>,
    Vec<(DateTime<Utc>, thecal_rx::schedule::Schedule)>,
)> {
    let all: Vec<Prescription> = st
        .store
        .list(Kind::Prescription, Some(implant_id), 100_000)
        .await?
        .iter()
        .map(parse)
        .collect::<ApiResult<_>>()?;
    Ok(versions_of(all))
}

/// The first version and every version's schedule from when it was made, of one
/// implant's prescriptions (oldest first).
#[allow(clippy::type_complexity)]
fn versions_of(
    all: Vec<Prescription>,
) -> (
    Option<Prescription>,
    Vec<(DateTime<Utc>, thecal_rx::schedule::Schedule)>,
) {
    let schedules = all
        .iter()
        .filter_map(|p| change::rx_of(p).map(|r| (p.created_at, r.schedule)))
        .collect();
    (all.into_iter().next(), schedules)
}

/// Where the current version's delivery starts: (when, residual then). From the last
/// fill (a closed visit, else the first prescription's initial fill), every version in
/// force since has delivered its part: a dose change is not a refill.
async fn fill_point(
    st: &AppState,
    implant_id: i64,
    rx: &Prescription,
    last: Option<&RefillVisit>,
) -> ApiResult<(DateTime<Utc>, Volume)> {
    let (first, schedules) = versions(st, implant_id).await?;
    Ok(fill_point_of(first.as_ref(), &schedules, rx, last))
}

/// [`fill_point`] from the implant's versions.
fn fill_point_of(
    first: Option<&Prescription>,
    schedules: &[(DateTime<Utc>, thecal_rx::schedule::Schedule)],
    rx: &Prescription,
    last: Option<&RefillVisit>,
) -> (DateTime<Utc>, Volume) {
    let (at, volume) = last_fill(first.unwrap_or(rx), last);
    let from = at.max(rx.created_at);
    (from, visit::residual_across(volume, at, schedules, from))
}

async fn last_closed(st: &AppState, implant_id: i64) -> ApiResult<Option<RefillVisit>> {
    match st
        .store
        .latest(Kind::Visit, implant_id, Some("closed"))
        .await?
    {
        Some(r) => Ok(Some(parse(&r)?)),
        None => Ok(None),
    }
}

async fn current_rx(st: &AppState, implant_id: i64) -> ApiResult<Prescription> {
    match st
        .store
        .latest(Kind::Prescription, implant_id, None)
        .await?
    {
        Some(r) => parse(&r),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            None,
            "this implant has no prescription: a refill needs a current prescription",
        )),
    }
}

/// Opens a refill visit: the expected residual is computed from the last fill.
#[utoipa::path(post, path = "/api/v1/implants/{id}/visits", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "visits", responses((status = 201, body = RefillVisit), (status = 404, body = ErrorBody),
                              (status = 409, body = ErrorBody)))]
async fn open_visit(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(implant_id): Id,
) -> ApiResult<(StatusCode, Json<RefillVisit>)> {
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    if imp.explant.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            None,
            "the pump was explanted",
        ));
    }
    if let Some(open) = st
        .store
        .latest(Kind::Visit, implant_id, Some("open"))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            None,
            format!(
                "refill visit {} of this implant is still open: finish it before opening another",
                open.id
            ),
        ));
    }
    let rx = current_rx(&st, implant_id).await?;
    let last = last_closed(&st, implant_id).await?;
    let (at, volume) = fill_point(&st, implant_id, &rx, last.as_ref()).await?;
    let now = st.now();
    let schedule = change::rx_of(&rx).map(|r| r.schedule).unwrap_or_else(|| {
        thecal_rx::schedule::Schedule::continuous(Flow::from_raw(rx.flow_nl_day))
    });
    let expected = visit::residual_across(volume, at, &[(at, schedule)], now);
    let v = visit::open(implant_id, rx.id, expected, &u.actor.username, now);
    // The check above is a courtesy; the guarantee is the database's unique index on the
    // open visit of an implant, which refuses the second of two racing opens.
    let row = match st
        .store
        .insert(
            &u.actor,
            Kind::Visit,
            NewRow {
                parent_id: Some(implant_id),
                key: None,
                status: "open".into(),
                data: json(&v)?,
            },
            st.ms(),
        )
        .await
    {
        Ok(row) => row,
        Err(StoreError::Duplicate { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                None,
                "another refill visit of this implant was opened at the same moment and is \
                 still open: finish it before opening another",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// A refill visit.
#[utoipa::path(get, path = "/api/v1/visits/{id}", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    tag = "visits", responses((status = 200, body = RefillVisit), (status = 404, body = ErrorBody)))]
async fn get_visit(State(st): State<AppState>, Id(id): Id) -> ApiResult<Json<RefillVisit>> {
    let (_, v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    Ok(Json(v))
}

/// Aspirated residual.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Aspirate {
    /// Volume aspirated, e.g. "9.6 mL".
    pub aspirated: String,
}

/// Investigation outcome.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Investigation {
    /// What was found, 1–4000 characters.
    pub outcome: String,
}

async fn save_visit(st: &AppState, u: &CurrentUser, row: &Row, v: &RefillVisit) -> ApiResult<()> {
    // A visit set aside at migration 2 stays set aside (not the implant's open visit)
    // until it closes.
    let status = if v.step == VisitStep::Closed {
        "closed"
    } else if row.status == SET_ASIDE {
        SET_ASIDE
    } else {
        "open"
    };
    st.store
        .update(
            &u.actor,
            Kind::Visit,
            row.id,
            row.rev,
            status,
            &json(v)?,
            st.ms(),
        )
        .await?;
    Ok(())
}

/// Records the aspirated residual; thecal-rx reconciles it with the expected one.
#[utoipa::path(post, path = "/api/v1/visits/{id}/aspirate", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    request_body = Aspirate, tag = "visits",
    responses((status = 200, body = RefillVisit), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn aspirate(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(a): ApiJson<Aspirate>,
) -> ApiResult<Json<RefillVisit>> {
    let (row, mut v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, v.implant_id).await?;
    visit::aspirate(
        &mut v,
        Volume::from_raw(imp.capacity_nl),
        &a.aspirated,
        &u.actor.username,
        st.now(),
    )?;
    save_visit(&st, &u, &row, &v).await?;
    Ok(Json(v))
}

/// Records the investigation of a flagged reconciliation.
#[utoipa::path(post, path = "/api/v1/visits/{id}/investigation", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    request_body = Investigation, tag = "visits",
    responses((status = 200, body = RefillVisit), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn investigation(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(i): ApiJson<Investigation>,
) -> ApiResult<Json<RefillVisit>> {
    let (row, mut v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    visit::investigate(&mut v, &i.outcome)?;
    save_visit(&st, &u, &row, &v).await?;
    Ok(Json(v))
}

/// A pharmacist's release.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReleaseInput {
    /// The compounded admixture's lot, 1–64 characters.
    pub lot: String,
    /// Verification note, up to 2000 characters.
    #[serde(default)]
    pub note: String,
}

/// A pharmacist releases a compounded admixture's lot for this visit (pharmacists).
#[utoipa::path(post, path = "/api/v1/visits/{id}/release", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    request_body = ReleaseInput, tag = "visits",
    responses((status = 200, body = RefillVisit), (status = 409, body = ErrorBody)))]
async fn release(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(r): ApiJson<ReleaseInput>,
) -> ApiResult<Json<RefillVisit>> {
    let (row, mut v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    visit::release(&mut v, &r.lot, &r.note, &u.actor.username, st.now())?;
    save_visit(&st, &u, &row, &v).await?;
    Ok(Json(v))
}

/// Records the fill after checking the syringe against the prescription.
#[utoipa::path(post, path = "/api/v1/visits/{id}/fill", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    request_body = Fill, tag = "visits",
    responses((status = 200, body = RefillVisit), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn fill(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(f): ApiJson<Fill>,
) -> ApiResult<Json<RefillVisit>> {
    let (row, mut v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, v.implant_id).await?;
    let (_, rx): (Row, Prescription) = load(&st, Kind::Prescription, v.prescription_id).await?;
    visit::fill(
        &mut v,
        f,
        &rx,
        Volume::from_raw(imp.capacity_nl),
        &u.actor.username,
        st.now(),
    )?;
    save_visit(&st, &u, &row, &v).await?;
    Ok(Json(v))
}

fn due_input(
    st: &AppState,
    imp: &Implant,
    patient: &Patient,
    rx: &Prescription,
    filled_at: DateTime<Utc>,
    volume_after: Volume,
    first_refill: bool,
) -> ApiResult<DueInput> {
    let drug = thecal_rx::drug::DrugId::from_name(&rx.drug).ok_or_else(ApiError::internal)?;
    Ok(DueInput {
        implant_id: imp.id,
        patient_id: patient.id,
        label: format!("{} ({})", patient.details.name, patient.details.mrn),
        capacity: Volume::from_raw(imp.capacity_nl),
        low_alarm: Volume::from_raw(imp.low_alarm_nl),
        accuracy_permille: imp.details.accuracy_margin_permille,
        filled_at,
        volume_after,
        flow: Flow::from_raw(rx.flow_nl_day),
        drug,
        concentration: Concentration::from_raw(rx.concentration_ng_ml),
        first_refill,
        clinic_max: Duration::from_days(st.config.clinic_max_days),
        schedule: rx
            .therapy
            .as_ref()
            .map(|t| t.schedule.clone())
            .filter(|s| s.constant_flow().is_none()),
        patient_bolus: rx
            .therapy
            .as_ref()
            .and_then(|t| t.patient_bolus)
            .map(|b| (b.volume, b.max_per_day)),
    })
}

/// Closes the visit with the next refill date (refused while a flagged reconciliation
/// has no investigation outcome).
#[utoipa::path(post, path = "/api/v1/visits/{id}/close", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    tag = "visits", responses((status = 200, body = RefillVisit), (status = 404, body = ErrorBody),
                              (status = 409, body = ErrorBody)))]
async fn close_visit(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
) -> ApiResult<Json<RefillVisit>> {
    let (row, mut v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, v.implant_id).await?;
    let (_, patient): (Row, Patient) = load(&st, Kind::Patient, imp.patient_id).await?;
    let (_, rx): (Row, Prescription) = load(&st, Kind::Prescription, v.prescription_id).await?;
    let now = st.now();
    let volume = Volume::from_raw(v.volume_after_nl.unwrap_or(0));
    let due = calendar::due(&due_input(&st, &imp, &patient, &rx, now, volume, false)?)?;
    visit::close(&mut v, &due, &u.actor.username, now)?;
    save_visit(&st, &u, &row, &v).await?;
    Ok(Json(v))
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The printable refill report (HTML with a print stylesheet).
#[utoipa::path(get, path = "/api/v1/visits/{id}/report", params(("id" = i64, Path, minimum = 1, description = "visit id")),
    tag = "visits", responses((status = 200, content_type = "text/html", body = String),
                              (status = 404, body = ErrorBody)))]
async fn report(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
) -> ApiResult<Html<String>> {
    let (_, v): (Row, RefillVisit) = load(&st, Kind::Visit, id).await?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, v.implant_id).await?;
    let prow = st
        .store
        .read_logged(&u.actor, Kind::Patient, imp.patient_id, st.ms())
        .await?
        .ok_or_else(|| ApiError::not_found("patient"))?;
    let patient: Patient = parse(&prow)?;
    let (_, rx): (Row, Prescription) = load(&st, Kind::Prescription, v.prescription_id).await?;
    let vol = |nl: Option<u64>| nl.map_or("—".to_owned(), |n| Volume::from_raw(n).to_string());
    let mut rows = vec![
        (
            "Patient",
            format!("{} — record {}", patient.details.name, patient.details.mrn),
        ),
        ("Date of birth", patient.details.date_of_birth.to_string()),
        (
            "Pump",
            format!("{} serial {}", imp.details.pump_model, imp.details.serial),
        ),
        (
            "Prescription",
            format!(
                "v{}: {} {}, {} ({})",
                rx.version, rx.drug, rx.concentration, rx.daily_dose, rx.flow
            ),
        ),
        ("Expected residual", vol(Some(v.expected_residual_nl))),
        ("Aspirated", vol(v.aspirated_nl)),
        (
            "Reconciliation",
            v.reconciliation.clone().unwrap_or_default(),
        ),
        ("Investigation", v.investigation.clone().unwrap_or_default()),
    ];
    if let Some(f) = &v.fill {
        rows.push((
            "Added",
            format!("{} of {}", f.volume_added, f.concentration),
        ));
        rows.push(("Lot / expiry", format!("{} / {}", f.lot, f.expiry)));
        rows.push((
            "Beyond-use date",
            f.beyond_use.map(|d| d.to_string()).unwrap_or_default(),
        ));
        rows.push(("Bridging", f.bridging.clone()));
    }
    rows.push((
        "Next refill due",
        v.next_refill_due.map(|d| d.to_string()).unwrap_or_default(),
    ));
    rows.push(("Limited by", v.limited_by.clone().unwrap_or_default()));
    for c in &rx.change {
        rows.push(("Change (old → new)", c.clone()));
    }
    for s in &v.signatures {
        rows.push((
            "Signed",
            format!("{:?} by {} at {}", s.step, s.by, s.at.to_rfc3339()),
        ));
    }
    let body: String = rows
        .iter()
        .map(|(k, val)| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(val)))
        .collect();
    Ok(Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Refill report {id}</title>\
         <style>body{{font:11pt sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
         th,td{{border:1px solid #999;padding:4px;text-align:left;vertical-align:top}}th{{width:30%}}\
         @media print{{body{{margin:0}}}}</style></head><body>\n<h1>Refill report</h1>\n<table>\n{body}</table>\n\
         <p>Signatures: ______________________ (nurse) ______________________ (witness)</p>\n</body></html>\n"
    )))
}

// ---------------------------------------------------------------- trials

/// Records a trial; it is evaluated at once.
#[utoipa::path(post, path = "/api/v1/patients/{id}/trials", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    request_body = NewTrial, tag = "trials",
    responses((status = 201, body = Trial), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_trial(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(patient_id): Id,
    ApiJson(n): ApiJson<NewTrial>,
) -> ApiResult<(StatusCode, Json<Trial>)> {
    let _: (Row, Patient) = load(&st, Kind::Patient, patient_id).await?;
    let evaluation = trial::evaluate(&n)?;
    // Scores from stored assessments (raw answers) must be their computed totals.
    let mut assessed = Vec::new();
    for (field, id) in [
        ("baseline_assessment", n.baseline_assessment),
        ("post_assessment", n.post_assessment),
    ] {
        assessed.push(match id {
            Some(id) => {
                let row = st.store.get(Kind::Assessment, id).await?.ok_or_else(|| {
                    FieldError::new(
                        field,
                        format!(
                            "no scale assessment {id}: record it first \
                             (POST /api/v1/patients/{patient_id}/assessments)"
                        ),
                    )
                })?;
                Some(parse::<crate::domain::scales::Assessment>(&row)?)
            }
            None => None,
        });
    }
    trial::check_assessments(&n, patient_id, assessed[0].as_ref(), assessed[1].as_ref())?;
    let t = Trial {
        id: 0,
        patient_id,
        details: n,
        evaluation,
        decision: None,
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::Trial,
            NewRow {
                parent_id: Some(patient_id),
                key: None,
                status: "evaluated".into(),
                data: json(&t)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// A trial decision.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DecisionInput {
    /// Implant recommended.
    pub implant: bool,
    /// Note, up to 2000 characters.
    #[serde(default)]
    pub note: String,
}

/// Records the physician's decision on a trial.
#[utoipa::path(post, path = "/api/v1/trials/{id}/decision", params(("id" = i64, Path, minimum = 1, description = "trial id")),
    request_body = DecisionInput, tag = "trials",
    responses((status = 200, body = Trial), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn decide_trial(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(d): ApiJson<DecisionInput>,
) -> ApiResult<Json<Trial>> {
    let (row, mut t): (Row, Trial) = load(&st, Kind::Trial, id).await?;
    if t.decision.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            Some("decision"),
            "already decided",
        ));
    }
    t.decision = Some(Decision {
        implant: d.implant,
        by: u.actor.username.clone(),
        at: st.now(),
        note: text("note", &d.note, 0, 2000)?,
    });
    st.store
        .update(
            &u.actor,
            Kind::Trial,
            id,
            row.rev,
            "decided",
            &json(&t)?,
            st.ms(),
        )
        .await?;
    Ok(Json(t))
}

// ---------------------------------------------------------------- complications, MRI

/// Records a complication.
#[utoipa::path(post, path = "/api/v1/patients/{id}/complications", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    request_body = NewComplication, tag = "patients",
    responses((status = 201, body = Complication)))]
async fn create_complication(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(patient_id): Id,
    ApiJson(n): ApiJson<NewComplication>,
) -> ApiResult<(StatusCode, Json<Complication>)> {
    let _: (Row, Patient) = load(&st, Kind::Patient, patient_id).await?;
    let c = Complication {
        id: 0,
        patient_id,
        details: n.validate(st.now().date_naive())?,
        recorded_by: u.actor.username.clone(),
    };
    let status = if c.details.resolved_on.is_some() {
        "resolved"
    } else {
        "open"
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::Complication,
            NewRow {
                parent_id: Some(patient_id),
                key: None,
                status: status.into(),
                data: json(&c)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// Records an alarm the pump raised.
#[utoipa::path(post, path = "/api/v1/implants/{id}/alarms", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = NewAlarm, tag = "implants",
    responses((status = 201, body = Alarm)))]
async fn create_alarm(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(implant_id): Id,
    ApiJson(n): ApiJson<NewAlarm>,
) -> ApiResult<(StatusCode, Json<Alarm>)> {
    let _: (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let a = Alarm {
        id: 0,
        implant_id,
        details: n.validate(st.now())?,
        recorded_by: u.actor.username.clone(),
        acknowledgement: None,
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::Alarm,
            NewRow {
                parent_id: Some(implant_id),
                key: None,
                status: "recorded".into(),
                data: json(&a)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// The alarms recorded for an implant, oldest first.
#[utoipa::path(get, path = "/api/v1/implants/{id}/alarms", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "implants", responses((status = 200, body = [Alarm])))]
async fn list_alarms(State(st): State<AppState>, Id(id): Id) -> ApiResult<Json<Vec<Alarm>>> {
    let _: (Row, Implant) = load(&st, Kind::Implant, id).await?;
    let rows = st.store.list(Kind::Alarm, Some(id), 1000).await?;
    Ok(Json(rows.iter().map(parse).collect::<ApiResult<_>>()?))
}

/// Plans an MRI episode for an implant.
#[utoipa::path(post, path = "/api/v1/implants/{id}/mri", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = NewMri, tag = "implants",
    responses((status = 201, body = MriEpisode)))]
async fn create_mri(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(implant_id): Id,
    ApiJson(n): ApiJson<NewMri>,
) -> ApiResult<(StatusCode, Json<MriEpisode>)> {
    let _: (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let e = MriEpisode {
        id: 0,
        implant_id,
        plan: n.validate()?,
        closed: None,
        closed_by: None,
        closed_at: None,
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::MriEpisode,
            NewRow {
                parent_id: Some(implant_id),
                key: None,
                status: "open".into(),
                data: json(&e)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// An MRI episode.
#[utoipa::path(get, path = "/api/v1/mri/{id}", params(("id" = i64, Path, minimum = 1, description = "MRI episode id")),
    tag = "implants", responses((status = 200, body = MriEpisode)))]
async fn get_mri(State(st): State<AppState>, Id(id): Id) -> ApiResult<Json<MriEpisode>> {
    let (_, e): (Row, MriEpisode) = load(&st, Kind::MriEpisode, id).await?;
    Ok(Json(e))
}

/// Closes an MRI episode (refused without the post-scan interrogation).
#[utoipa::path(post, path = "/api/v1/mri/{id}/close", params(("id" = i64, Path, minimum = 1, description = "MRI episode id")),
    request_body = MriClose, tag = "implants",
    responses((status = 200, body = MriEpisode), (status = 409, body = ErrorBody)))]
async fn close_mri_episode(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(c): ApiJson<MriClose>,
) -> ApiResult<Json<MriEpisode>> {
    let (row, mut e): (Row, MriEpisode) = load(&st, Kind::MriEpisode, id).await?;
    close_mri(&mut e, c, &u.actor.username, st.now())?;
    st.store
        .update(
            &u.actor,
            Kind::MriEpisode,
            id,
            row.rev,
            "closed",
            &json(&e)?,
            st.ms(),
        )
        .await?;
    Ok(Json(e))
}

// ---------------------------------------------------------------- lists

/// Calendar parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CalendarQuery {
    /// The first day (default today, UTC).
    #[param(nullable = false)]
    pub date: Option<NaiveDate>,
    /// Visits per day, 1–500 (default: the clinic's capacity).
    #[param(minimum = 1, maximum = 500, nullable = false)]
    pub capacity: Option<usize>,
    /// Days in the daily list, 1–31 (default 7).
    #[param(minimum = 1, maximum = 31, nullable = false)]
    pub days: Option<u64>,
}

/// The refill calendar response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarResponse {
    /// The lists.
    #[serde(flatten)]
    pub calendar: Calendar,
    /// Implants whose due date could not be computed, with why.
    pub problems: Vec<FieldError>,
}

/// The refill calendar: overdue, due this week, and the daily lists by capacity.
#[utoipa::path(get, path = "/api/v1/calendar", params(CalendarQuery), tag = "calendar",
    responses((status = 200, body = CalendarResponse), (status = 400, body = ErrorBody)))]
async fn get_calendar(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<CalendarQuery>,
) -> ApiResult<Json<CalendarResponse>> {
    let capacity = q.capacity.unwrap_or(st.config.capacity_per_day);
    if !(1..=500).contains(&capacity) {
        return Err(ApiError::invalid(
            "capacity",
            "must be 1 to 500 visits a day",
        ));
    }
    let days = q.days.unwrap_or(7);
    if !(1..=31).contains(&days) {
        return Err(ApiError::invalid("days", "must be 1 to 31"));
    }
    let today = q.date.unwrap_or_else(|| st.now().date_naive());
    let cached = cached_dues(&st).await?;
    calendar_from(&cached, today, capacity, days)
}

/// The due dates and projected ERIs at the database's calendar generation, from the cache
/// or computed once by concurrent misses.
async fn cached_dues(st: &AppState) -> ApiResult<Arc<CachedDues>> {
    let generation = st.store.calendar_generation().await?;
    let max_days = st.config.clinic_max_days;
    let cache = &st.config.calendar_cache;
    if let Some(c) = cache.get(generation, max_days) {
        return Ok(c);
    }
    let _computing = cache.computing.lock().await;
    if let Some(c) = cache.get(generation, max_days) {
        return Ok(c);
    }
    let (mut dues, problems, eris) = compute_dues(st).await?;
    dues.sort_by_key(|d| (d.due_at, d.implant_id));
    let c = Arc::new(CachedDues {
        generation,
        clinic_max_days: max_days,
        dues,
        problems,
        eris,
    });
    cache.put(c.clone());
    Ok(c)
}

/// The lists from the cached due dates.
fn calendar_from(
    cached: &CachedDues,
    today: NaiveDate,
    capacity: usize,
    days: u64,
) -> ApiResult<Json<CalendarResponse>> {
    // Only what is due before the end of the lists can appear in them.
    let end = today
        .checked_add_days(chrono::Days::new(days.max(7)))
        .unwrap_or(today);
    let shown = cached.dues.partition_point(|d| d.due_on < end);
    Ok(Json(CalendarResponse {
        calendar: calendar::calendar(
            cached.dues.get(..shown).unwrap_or_default().to_vec(),
            today,
            capacity,
            days,
        ),
        problems: cached.problems.clone(),
    }))
}

/// Every active implant's due refill, computed by thecal-rx, the implants whose due
/// date cannot be computed, and the active implants' projected ERIs.
#[allow(clippy::type_complexity)]
async fn compute_dues(
    st: &AppState,
) -> ApiResult<(Vec<calendar::Due>, Vec<FieldError>, Vec<(i64, NaiveDate)>)> {
    let mut dues = Vec::new();
    let mut problems = Vec::new();
    let mut eris = Vec::new();
    let rows = st.store.calendar_rows().await?;
    // Every active implant's prescriptions in a few statements, not one per implant.
    let implants: Vec<Implant> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.implant).map_err(|_| ApiError::internal()))
        .collect::<ApiResult<_>>()?;
    let ids: Vec<i64> = implants.iter().map(|i| i.id).collect();
    let mut rxs: std::collections::HashMap<i64, Vec<Prescription>> =
        std::collections::HashMap::new();
    for r in st.store.list_under(Kind::Prescription, &ids).await? {
        let p: Prescription = parse(&r)?;
        rxs.entry(p.implant_id).or_default().push(p);
    }
    for (r, imp) in rows.into_iter().zip(implants) {
        if let Some(eri) = imp.details.eri_projected {
            eris.push((imp.id, eri));
        }
        let patient: Patient =
            serde_json::from_str(&r.patient).map_err(|_| ApiError::internal())?;
        let Some(rx) = r.prescription.as_deref() else {
            problems.push(FieldError::new(
                format!("implants.{}", imp.id),
                "no prescription",
            ));
            continue;
        };
        let rx: Prescription = serde_json::from_str(rx).map_err(|_| ApiError::internal())?;
        let last: Option<RefillVisit> = match r.last_visit.as_deref() {
            Some(v) => Some(serde_json::from_str(v).map_err(|_| ApiError::internal())?),
            None => None,
        };
        let (first, schedules) = versions_of(rxs.remove(&imp.id).unwrap_or_default());
        let (at, volume) = fill_point_of(first.as_ref(), &schedules, &rx, last.as_ref());
        let input = due_input(st, &imp, &patient, &rx, at, volume, last.is_none())?;
        match calendar::due(&input) {
            Ok(d) => dues.push(d),
            Err(e) => problems.push(FieldError::new(format!("implants.{}", imp.id), e.message)),
        }
    }
    Ok((dues, problems, eris))
}

/// Replacement plans of the active implants with a projected ERI, most urgent first, a
/// page at a time (`offset`, `limit`); `X-Total-Count` carries how many the whole list
/// has. With `urgent=true` only those needing action (not `planned`).
#[utoipa::path(get, path = "/api/v1/replacements", params(ReplacementQuery), tag = "calendar",
    responses((status = 200, body = [Plan],
        headers(("X-Total-Count" = i64, description = "plans in the whole list"))),
        (status = 400, body = ErrorBody)))]
async fn replacements(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ReplacementQuery>,
) -> ApiResult<impl IntoResponse> {
    let (offset, limit) = q.checked()?;
    let today = st.now().date_naive();
    let cached = cached_dues(&st).await?;
    let (total, page) = paging::replacement_page(
        &cached.eris,
        today,
        q.urgent.unwrap_or(false),
        offset,
        limit,
    );
    Ok(([(paging::TOTAL_COUNT, total.to_string())], Json(page)))
}

/// The audit log, newest first (auditors).
#[utoipa::path(get, path = "/api/v1/audit", params(ListQuery), tag = "audit",
    responses((status = 200, body = [AuditRow]), (status = 400, body = ErrorBody)))]
async fn audit_log(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<AuditRow>>> {
    Ok(Json(st.store.audit(q.checked()?).await?))
}

/// Adds the error responses every route can give: 400 (a bad id, query or body), 401 and
/// 403 (not signed in; role or CSRF token) on every route that needs a session, 404 on
/// every route with an id, 405 for a method the path does not have.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
        let error = |what: &str| -> RefOr<utoipa::openapi::Response> {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in [
                ("GET", item.get.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
            ] {
                let Some(op) = op else { continue };
                let public =
                    auth::rule(method, path).is_some_and(|r| r.access == auth::Access::Public);
                let mut add = vec![
                    ("400", "bad id, query or body"),
                    ("405", "method not allowed"),
                ];
                if !public {
                    add.push(("401", "not signed in"));
                    add.push(("403", "role not allowed, or missing CSRF token"));
                }
                if path.contains("{id}") {
                    add.push(("404", "no such record"));
                }
                for (code, what) in add {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(what));
                }
            }
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    modifiers(&CommonErrors),
    info(title = "thecal clinic API", description = "Records and workflows of an intrathecal pump clinic."),
    paths(login, whoami, logout, reauth, break_glass, break_glass_view, create_user, create_patient, list_patients, get_patient,
          change_state, create_implant, explant, list_prescriptions, create_prescription,
          open_visit, get_visit, aspirate, investigation, release, fill, close_visit, report,
          create_trial, decide_trial, create_complication, create_alarm, list_alarms, create_mri, get_mri,
          close_mri_episode, get_calendar, replacements, audit_log, openapi_json,
          history::import_log, history::timeline, history::acknowledge_alarm,
          history::create_revision, history::list_revisions, history::create_plan,
          history::plan_status, history::list_plans, history::create_assessment,
          history::list_assessments, programming::link, programming::interrogate,
          programming::programming, programming::get_session, programming::change,
          programming::acknowledge, programming::send, programming::open_remote, programming::confirm_remote,
          programming::revoke_remote, programming::devices, accounts::list_users, accounts::change_user),
    tags((name = "session"), (name = "users"), (name = "patients"), (name = "implants"),
         (name = "prescriptions"), (name = "visits"), (name = "trials"), (name = "calendar"),
         (name = "audit"), (name = "programming"))
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "session",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

/// The security headers on every response, errors and unknown routes included: no
/// framing (clickjacking), no sniffing, no referrer, no caching of clinical data, no
/// powerful browser features; HSTS when served over TLS.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
    ("cache-control", "no-store"),
];

/// Strict-Transport-Security, sent when the service is served over TLS (`secure_cookies`).
pub const HSTS: &str = "max-age=31536000";

async fn security_headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    if st.config.secure_cookies {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    r
}

/// The routes of programming the implant ([`programming`]).
fn programming_routes() -> Router<AppState> {
    use programming as p;
    Router::new()
        .route("/api/v1/implants/{id}/link", post(p::link))
        .route("/api/v1/implants/{id}/interrogate", post(p::interrogate))
        .route("/api/v1/implants/{id}/programming", get(p::programming))
        .route("/api/v1/programming/{id}", get(p::get_session))
        .route("/api/v1/programming/{id}/change", post(p::change))
        .route("/api/v1/programming/{id}/acknowledge", post(p::acknowledge))
        .route("/api/v1/programming/{id}/send", post(p::send))
        .route("/api/v1/implants/{id}/remotes", post(p::open_remote))
        .route(
            "/api/v1/implants/{id}/remotes/confirm",
            post(p::confirm_remote),
        )
        .route(
            "/api/v1/implants/{id}/remotes/revoke",
            post(p::revoke_remote),
        )
        .route("/api/v1/implants/{id}/devices", get(p::devices))
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// The service's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/session", post(login).get(whoami).delete(logout))
        .route("/api/v1/session/reauth", post(reauth))
        .route(
            "/api/v1/patients/{id}/break-glass",
            get(break_glass_view).post(break_glass),
        )
        .route("/api/v1/users", post(create_user).get(accounts::list_users))
        .route("/api/v1/users/{id}", post(accounts::change_user))
        .route("/api/v1/patients", get(list_patients).post(create_patient))
        .route("/api/v1/patients/{id}", get(get_patient))
        .route("/api/v1/patients/{id}/state", post(change_state))
        .route("/api/v1/patients/{id}/implants", post(create_implant))
        .route("/api/v1/patients/{id}/trials", post(create_trial))
        .route("/api/v1/trials/{id}/decision", post(decide_trial))
        .route("/api/v1/implants/{id}/explant", post(explant))
        .route(
            "/api/v1/implants/{id}/prescriptions",
            get(list_prescriptions).post(create_prescription),
        )
        .route("/api/v1/implants/{id}/visits", post(open_visit))
        .route("/api/v1/visits/{id}", get(get_visit))
        .route("/api/v1/visits/{id}/report", get(report))
        .route("/api/v1/visits/{id}/aspirate", post(aspirate))
        .route("/api/v1/visits/{id}/investigation", post(investigation))
        .route("/api/v1/visits/{id}/release", post(release))
        .route("/api/v1/visits/{id}/fill", post(fill))
        .route("/api/v1/visits/{id}/close", post(close_visit))
        .route(
            "/api/v1/patients/{id}/complications",
            post(create_complication),
        )
        .route(
            "/api/v1/implants/{id}/alarms",
            get(list_alarms).post(create_alarm),
        )
        .route("/api/v1/implants/{id}/mri", post(create_mri))
        .route("/api/v1/mri/{id}", get(get_mri))
        .route("/api/v1/mri/{id}/close", post(close_mri_episode))
        .route("/api/v1/calendar", get(get_calendar))
        .route("/api/v1/replacements", get(replacements))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/implants/{id}/log", post(history::import_log))
        .route("/api/v1/implants/{id}/timeline", get(history::timeline))
        .route(
            "/api/v1/alarms/{id}/acknowledge",
            post(history::acknowledge_alarm),
        )
        .route(
            "/api/v1/implants/{id}/revisions",
            get(history::list_revisions).post(history::create_revision),
        )
        .route(
            "/api/v1/implants/{id}/replacement-plans",
            post(history::create_plan),
        )
        .route(
            "/api/v1/replacement-plans/{id}/status",
            post(history::plan_status),
        )
        .route("/api/v1/replacement-plans", get(history::list_plans))
        .route(
            "/api/v1/patients/{id}/assessments",
            get(history::list_assessments).post(history::create_assessment),
        )
        .merge(programming_routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .merge(crate::fhir::api::routes(state.clone()))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}
