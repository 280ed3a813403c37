//! The FHIR endpoints under `/fhir/r4` (read-only, plus the import of a referral's
//! `Patient`) and the loading of a patient's record from storage for the export.
//!
//! Authorization is the console's: the same session cookie, CSRF token and table
//! ([`crate::auth::ROUTES`]), checked by the same function before any handler runs. Every
//! access is audited: each read writes one audit row (`fhir_read`, the patient, the
//! request and the resources returned), an import its `create` row, and a request the
//! table refuses to a signed-in user a `fhir_denied` row. Errors are `OperationOutcome`s
//! whose `expression` names the element or parameter at fault.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use fhir_sdk::r4b::codes::{IssueSeverity, IssueType};
use fhir_sdk::r4b::resources::{Bundle, OperationOutcome, OperationOutcomeIssue, Resource};

use super::export::{self, Record};
use super::{FHIR_JSON, FhirError, import};
use crate::api::{Admission, AppState, CurrentUser, admit};
use crate::auth::Role;
use crate::storage::{Actor, AuditRow, Kind, Row, Storage};

/// The resource types searchable by patient and read by id (besides Patient), in the
/// order the table lists them.
pub const SEARCHABLE: [&str; 8] = [
    "Condition",
    "Device",
    "DeviceUseStatement",
    "Procedure",
    "MedicationRequest",
    "MedicationAdministration",
    "Observation",
    "AuditEvent",
];

/// At most this many records of one kind are read per patient.
const LIMIT: i64 = 100_000;

/// A FHIR error: an HTTP status and one `OperationOutcome` issue.
#[derive(Debug)]
pub struct FhirFailure {
    status: StatusCode,
    code: IssueType,
    expression: Option<String>,
    message: String,
    allow: Option<String>,
}

impl FhirFailure {
    fn new(status: StatusCode, code: IssueType, expression: Option<&str>, message: &str) -> Self {
        FhirFailure {
            status,
            code,
            expression: expression.map(str::to_owned),
            message: message.to_owned(),
            allow: None,
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        eprintln!("thecal-clinic: FHIR: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            None,
            "internal error; the cause is in the server log",
        )
    }
    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            None,
            &format!("no such {what}"),
        )
    }
}

impl From<crate::api::ApiError> for FhirFailure {
    fn from(e: crate::api::ApiError) -> Self {
        let (status, code, field, message, allow) = e.into_parts();
        let code = match (status, code) {
            (StatusCode::UNAUTHORIZED, _) => IssueType::Login,
            (StatusCode::FORBIDDEN, _) => IssueType::Forbidden,
            (StatusCode::NOT_FOUND, _) => IssueType::NotFound,
            (StatusCode::METHOD_NOT_ALLOWED, _) => IssueType::NotSupported,
            (StatusCode::CONFLICT, _) => IssueType::Duplicate,
            (s, _) if s.is_server_error() => IssueType::Exception,
            _ => IssueType::Invalid,
        };
        FhirFailure {
            status,
            code,
            expression: field,
            message,
            allow,
        }
    }
}

impl From<crate::storage::StoreError> for FhirFailure {
    fn from(e: crate::storage::StoreError) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

impl From<FhirError> for FhirFailure {
    fn from(e: FhirError) -> Self {
        Self::internal(e)
    }
}

/// An `OperationOutcome` of error issues.
pub fn outcome(
    issues: &[(IssueType, Option<String>, String)],
) -> Result<OperationOutcome, FhirError> {
    let mut out = vec![];
    for (code, expression, message) in issues {
        let mut b = OperationOutcomeIssue::builder()
            .severity(IssueSeverity::Error)
            .code(*code)
            .diagnostics(message.clone());
        if let Some(x) = expression {
            b = b.expression(vec![Some(x.clone())]);
        }
        out.push(Some(b.build()?));
    }
    Ok(OperationOutcome::builder().issue(out).build()?)
}

fn fhir_json(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

impl IntoResponse for FhirFailure {
    fn into_response(self) -> Response {
        let issues = [(self.code, self.expression, self.message)];
        let body = outcome(&issues)
            .ok()
            .and_then(|o| serde_json::to_string(&o).ok())
            .unwrap_or_default();
        let mut r = fhir_json(self.status, body);
        if let Some(v) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            r.headers_mut().insert(header::ALLOW, v);
        }
        r
    }
}

type FhirResult<T> = Result<T, FhirFailure>;

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> FhirResult<Response> {
    let body = serde_json::to_string(v).map_err(FhirFailure::internal)?;
    Ok(fhir_json(status, body))
}

fn parse<T: serde::de::DeserializeOwned>(row: &Row) -> Result<T, FhirError> {
    serde_json::from_str(&row.data)
        .map_err(|e| FhirError(format!("stored record {} unreadable: {e}", row.id)))
}

fn parse_all<T: serde::de::DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>, FhirError> {
    rows.iter().map(parse).collect()
}

fn store_err(e: crate::storage::StoreError) -> FhirError {
    FhirError(e.to_string())
}

/// Reads a patient's record from storage (no audit: the caller audits the access);
/// `None` for no such patient. With `with_audit`, the audit trail of every record read.
///
/// # Errors
/// Storage failure or an unreadable stored record.
pub async fn load(
    store: &Arc<dyn Storage>,
    patient_id: i64,
    with_audit: bool,
) -> Result<Option<Record>, FhirError> {
    let Some(prow) = store
        .get(Kind::Patient, patient_id)
        .await
        .map_err(store_err)?
    else {
        return Ok(None);
    };
    let implant_rows = store
        .list(Kind::Implant, Some(patient_id), LIMIT)
        .await
        .map_err(store_err)?;
    let implant_ids: Vec<i64> = implant_rows.iter().map(|r| r.id).collect();
    let under = |kind| {
        let ids = implant_ids.clone();
        async move { store.list_under(kind, &ids).await.map_err(store_err) }
    };
    let rx_rows = under(Kind::Prescription).await?;
    let visit_rows = under(Kind::Visit).await?;
    let revision_rows = under(Kind::Revision).await?;
    let of_patient = |kind| async move {
        store
            .list(kind, Some(patient_id), LIMIT)
            .await
            .map_err(store_err)
    };
    let trial_rows = of_patient(Kind::Trial).await?;
    let complication_rows = of_patient(Kind::Complication).await?;
    let assessment_rows = of_patient(Kind::Assessment).await?;
    let mut implants = vec![];
    for r in &implant_rows {
        implants.push((parse(r)?, r.status.clone()));
    }
    let mut prescriptions: Vec<crate::domain::records::Prescription> = parse_all(&rx_rows)?;
    prescriptions.sort_by_key(|p| p.id);
    let mut visits: Vec<crate::domain::records::RefillVisit> = parse_all(&visit_rows)?;
    visits.sort_by_key(|v| v.id);
    let mut revisions: Vec<crate::domain::history::RevisionRecord> = parse_all(&revision_rows)?;
    revisions.sort_by_key(|v| v.id);
    let audit = if with_audit {
        let mut keys: Vec<(&str, i64)> = vec![(Kind::Patient.entity(), patient_id)];
        for (kind, rows) in [
            (Kind::Implant, &implant_rows),
            (Kind::Prescription, &rx_rows),
            (Kind::Visit, &visit_rows),
            (Kind::Revision, &revision_rows),
            (Kind::Trial, &trial_rows),
            (Kind::Complication, &complication_rows),
            (Kind::Assessment, &assessment_rows),
        ] {
            keys.extend(rows.iter().map(|r| (kind.entity(), r.id)));
        }
        Some(store.audit_of(&keys, LIMIT).await.map_err(store_err)?)
    } else {
        None
    };
    Ok(Some(Record {
        patient: parse(&prow)?,
        implants,
        prescriptions,
        visits,
        trials: parse_all(&trial_rows)?,
        complications: parse_all(&complication_rows)?,
        assessments: parse_all(&assessment_rows)?,
        revisions,
        audit,
    }))
}

/// Audits one FHIR access: the patient, what was asked and the resources returned.
async fn audit_access(
    store: &Arc<dyn Storage>,
    actor: &Actor,
    patient_id: Option<i64>,
    request: &str,
    returned: &[String],
    now_ms: i64,
) -> Result<(), FhirError> {
    let detail = serde_json::json!({"request": request, "returned": returned}).to_string();
    store
        .record_access(actor, "fhir_read", "patient", patient_id, &detail, now_ms)
        .await
        .map_err(store_err)
}

fn label(r: &Resource) -> String {
    let v = serde_json::to_value(r).unwrap_or_default();
    format!(
        "{}/{}",
        v["resourceType"].as_str().unwrap_or("?"),
        v["id"].as_str().unwrap_or("?")
    )
}

/// The export of one patient's record as a `searchset` Bundle, the access audited under
/// `actor` as `request`; `None` for no such patient. `with_audit` adds the record's audit
/// trail as AuditEvents (the caller checks the role: auditors only).
///
/// # Errors
/// Storage failure or an unreadable stored record.
pub async fn export_patient(
    store: &Arc<dyn Storage>,
    actor: &Actor,
    patient_id: i64,
    with_audit: bool,
    request: &str,
    now: DateTime<Utc>,
) -> Result<Option<Bundle>, FhirError> {
    let Some(record) = load(store, patient_id, with_audit).await? else {
        return Ok(None);
    };
    let resources = export::resources(&record)?;
    let labels: Vec<String> = resources.iter().map(label).collect();
    audit_access(
        store,
        actor,
        Some(patient_id),
        request,
        &labels,
        now.timestamp_millis(),
    )
    .await?;
    Ok(Some(export::bundle(resources, now)?))
}

fn patient_id(s: &str, expression: &str) -> FhirResult<i64> {
    let id = s.strip_prefix("Patient/").unwrap_or(s);
    match id.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            Some(expression),
            &format!("\"{s}\" is not a patient id: give a positive whole number or Patient/<id>"),
        )),
    }
}

fn path_id(req_path: &str) -> FhirResult<i64> {
    let seg = req_path
        .trim_start_matches("/fhir/r4/Patient/")
        .split('/')
        .next()
        .unwrap_or_default();
    patient_id(seg, "id")
}

/// `$everything` and search parameters.
#[derive(Debug, Default)]
struct Params {
    patient: Option<String>,
    /// `$everything` only: `true` adds the audit trail (auditors).
    audit: Option<String>,
    format: Option<String>,
}

fn params(uri: &axum::http::Uri) -> FhirResult<Params> {
    let q = uri.query().unwrap_or_default();
    serde_urlencoded_like(q)
}

/// Parses the query string, refusing unknown parameters (FHIR's strict handling) with the
/// parameter named.
fn serde_urlencoded_like(q: &str) -> FhirResult<Params> {
    let mut p = Params::default();
    for pair in q.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        let slot = match k {
            "patient" | "subject" => &mut p.patient,
            "_audit" => &mut p.audit,
            "_format" => &mut p.format,
            other => {
                return Err(FhirFailure::new(
                    StatusCode::BAD_REQUEST,
                    IssueType::NotSupported,
                    Some(other),
                    &format!(
                        "unknown search parameter \"{other}\"; supported: patient (or subject), _format, and _audit on $everything"
                    ),
                ));
            }
        };
        if slot.is_some() {
            return Err(FhirFailure::new(
                StatusCode::BAD_REQUEST,
                IssueType::Invalid,
                Some(k),
                &format!("\"{k}\" is given twice; give it once"),
            ));
        }
        *slot = Some(v);
    }
    if let Some(f) = &p.format
        && !matches!(
            f.as_str(),
            "json" | "application/fhir+json" | "application/json"
        )
    {
        return Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            Some("_format"),
            "only JSON is served: json, application/fhir+json or application/json",
        ));
    }
    Ok(p)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn audit_flag(p: &Params, u: &CurrentUser) -> FhirResult<bool> {
    match p.audit.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") if u.role == Role::Auditor => Ok(true),
        Some("true") => Err(FhirFailure::new(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            Some("_audit"),
            &format!(
                "a {} may not read the audit trail; auditors only",
                u.role.as_str()
            ),
        )),
        Some(other) => Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            Some("_audit"),
            &format!("\"{other}\" is not allowed; give true or false"),
        )),
    }
}

/// `GET /fhir/r4/Patient/{id}`.
async fn read_patient(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    req: Request,
) -> FhirResult<Response> {
    let pid = path_id(req.uri().path())?;
    params(req.uri())?;
    let row = st
        .store
        .get(Kind::Patient, pid)
        .await?
        .ok_or_else(|| FhirFailure::not_found("Patient"))?;
    let p = export::patient(&parse(&row)?)?;
    audit_access(
        &st.store,
        &u.actor,
        Some(pid),
        &format!("GET /fhir/r4/Patient/{pid}"),
        &[format!("Patient/{pid}")],
        st.ms(),
    )
    .await?;
    json(StatusCode::OK, &p)
}

/// `GET /fhir/r4/Patient/{id}/$everything`.
async fn everything(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    req: Request,
) -> FhirResult<Response> {
    let pid = path_id(req.uri().path())?;
    let p = params(req.uri())?;
    if p.patient.is_some() {
        return Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            Some("patient"),
            "$everything takes the patient from the path, not a parameter",
        ));
    }
    let with_audit = audit_flag(&p, &u)?;
    let b = export_patient(
        &st.store,
        &u.actor,
        pid,
        with_audit,
        &format!("GET {}", req.uri()),
        st.now(),
    )
    .await?
    .ok_or_else(|| FhirFailure::not_found("Patient"))?;
    json(StatusCode::OK, &b)
}

/// `GET /fhir/r4/{type}?patient={id}`: the patient's resources of one type.
async fn search(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    req: Request,
) -> FhirResult<Response> {
    let kind = req.uri().path().trim_start_matches("/fhir/r4/").to_owned();
    let p = params(req.uri())?;
    if p.audit.is_some() {
        return Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            Some("_audit"),
            "_audit applies to $everything; search AuditEvent?patient= instead",
        ));
    }
    let Some(patient) = &p.patient else {
        return Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::Required,
            Some("patient"),
            &format!("search {kind} by patient: give ?patient=<id>"),
        ));
    };
    let pid = patient_id(patient, "patient")?;
    let audit = kind == "AuditEvent";
    let Some(record) = load(&st.store, pid, audit).await? else {
        // FHIR search: no match is an empty bundle, but the access is still audited.
        audit_access(
            &st.store,
            &u.actor,
            Some(pid),
            &format!("GET {}", req.uri()),
            &[],
            st.ms(),
        )
        .await?;
        return json(StatusCode::OK, &export::bundle(vec![], st.now())?);
    };
    let matching: Vec<Resource> = export::resources(&record)?
        .into_iter()
        .filter(|r| resource_type(r) == kind)
        .collect();
    let labels: Vec<String> = matching.iter().map(label).collect();
    audit_access(
        &st.store,
        &u.actor,
        Some(pid),
        &format!("GET {}", req.uri()),
        &labels,
        st.ms(),
    )
    .await?;
    json(StatusCode::OK, &export::bundle(matching, st.now())?)
}

fn resource_type(r: &Resource) -> String {
    let v = serde_json::to_value(r).unwrap_or_default();
    v["resourceType"].as_str().unwrap_or_default().to_owned()
}

/// What the export's ids of a resource type look like (`{…}` a stored record's id), for
/// the message of an unknown id.
pub fn id_forms(kind: &str) -> &'static str {
    match kind {
        "Condition" => "indication-{patient id}, complication-{id}",
        "Device" => "pump-{implant id}, catheter-{implant id}",
        "DeviceUseStatement" => "use-pump-{implant id}, use-catheter-{implant id}",
        "Procedure" => "implant-{implant id}, revision-{id}, trial-{id}",
        "MedicationRequest" => "{prescription id}",
        "MedicationAdministration" => "{refill visit id}",
        "Observation" => {
            "reconciliation-{visit id}, trial-{id}-baseline, trial-{id}-post, \
             assessment-{id}, weight-{patient id}"
        }
        "AuditEvent" => "audit-{audit row id}",
        _ => "",
    }
}

/// A positive whole number.
fn number(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && !s.starts_with('+'))
}

/// The stored record an exported id names (never the audit trail: see [`read`]).
fn record_of(kind: &str, id: &str) -> Option<(Kind, i64)> {
    let after = |prefix: &str| id.strip_prefix(prefix).and_then(number);
    match kind {
        "Condition" => after("indication-")
            .map(|n| (Kind::Patient, n))
            .or_else(|| after("complication-").map(|n| (Kind::Complication, n))),
        "Device" => after("pump-")
            .or_else(|| after("catheter-"))
            .map(|n| (Kind::Implant, n)),
        "DeviceUseStatement" => after("use-pump-")
            .or_else(|| after("use-catheter-"))
            .map(|n| (Kind::Implant, n)),
        "Procedure" => after("implant-")
            .map(|n| (Kind::Implant, n))
            .or_else(|| after("revision-").map(|n| (Kind::Revision, n)))
            .or_else(|| after("trial-").map(|n| (Kind::Trial, n))),
        "MedicationRequest" => number(id).map(|n| (Kind::Prescription, n)),
        "MedicationAdministration" => number(id).map(|n| (Kind::Visit, n)),
        "Observation" => after("reconciliation-")
            .map(|n| (Kind::Visit, n))
            .or_else(|| {
                let t = id.strip_prefix("trial-")?;
                let n = t
                    .strip_suffix("-baseline")
                    .or_else(|| t.strip_suffix("-post"))?;
                number(n).map(|n| (Kind::Trial, n))
            })
            .or_else(|| after("assessment-").map(|n| (Kind::Assessment, n)))
            .or_else(|| after("weight-").map(|n| (Kind::Patient, n))),
        _ => None,
    }
}

/// The patient a stored record belongs to: a patient is its own; implants, trials,
/// complications and assessments hang under the patient, prescriptions, visits and
/// revisions under an implant.
async fn patient_of(store: &Arc<dyn Storage>, kind: Kind, id: i64) -> FhirResult<Option<i64>> {
    if kind == Kind::Patient {
        return Ok(store.get(Kind::Patient, id).await?.map(|r| r.id));
    }
    let Some(row) = store.get(kind, id).await? else {
        return Ok(None);
    };
    let Some(parent) = row.parent_id else {
        return Ok(None);
    };
    match kind {
        Kind::Implant | Kind::Trial | Kind::Complication | Kind::Assessment => Ok(Some(parent)),
        _ => Ok(store
            .get(Kind::Implant, parent)
            .await?
            .and_then(|i| i.parent_id)),
    }
}

/// The patient whose record an audit row is about (`None` for a row about no record of a
/// patient: a sign-in, a refused request).
async fn audit_owner(store: &Arc<dyn Storage>, audit_id: i64) -> FhirResult<Option<i64>> {
    let Some(a) = store.audit_entry(audit_id).await? else {
        return Ok(None);
    };
    let kind = Kind::ALL.into_iter().find(|k| k.entity() == a.entity);
    match (kind, a.entity_id) {
        (Some(k), Some(e)) => patient_of(store, k, e).await,
        _ => Ok(None),
    }
}

/// `GET /fhir/r4/{type}/{id}` for the types other than Patient: the id is resolved to its
/// patient, that patient's export is built (the same code as `$everything`) and the one
/// resource of that type and id returned, audited as a read of the patient.
async fn read(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    req: Request,
) -> FhirResult<Response> {
    let rest = req.uri().path().trim_start_matches("/fhir/r4/");
    let (kind, raw) = rest.split_once('/').unwrap_or((rest, ""));
    // Not decoded: the export's ids are letters, digits and `-` only.
    let id = raw.to_owned();
    let p = params(req.uri())?;
    for (given, name) in [(&p.patient, "patient"), (&p.audit, "_audit")] {
        if given.is_some() {
            return Err(FhirFailure::new(
                StatusCode::BAD_REQUEST,
                IssueType::NotSupported,
                Some(name),
                &format!("a read by id takes no {name}; only _format"),
            ));
        }
    }
    let unknown = || {
        FhirFailure::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            Some("id"),
            &format!(
                "no {kind} with id \"{id}\"; ids of {kind} are {}",
                id_forms(kind)
            ),
        )
    };
    let audit = kind == "AuditEvent";
    let owner = if audit {
        match id.strip_prefix("audit-").and_then(number) {
            Some(n) => audit_owner(&st.store, n).await?,
            None => None,
        }
    } else {
        match record_of(kind, &id) {
            Some((k, n)) => patient_of(&st.store, k, n).await?,
            None => None,
        }
    };
    let pid = owner.ok_or_else(unknown)?;
    let record = load(&st.store, pid, audit).await?.ok_or_else(unknown)?;
    let found = export::resources(&record)?
        .into_iter()
        .find(|r| label(r) == format!("{kind}/{id}"))
        .ok_or_else(unknown)?;
    audit_access(
        &st.store,
        &u.actor,
        Some(pid),
        &format!("GET {}", req.uri()),
        &[label(&found)],
        st.ms(),
    )
    .await?;
    json(StatusCode::OK, &found)
}

/// `GET /fhir/r4/metadata`: the CapabilityStatement (any signed-in user; not audited, it
/// holds no clinical data).
async fn metadata(State(st): State<AppState>, req: Request) -> FhirResult<Response> {
    let p = params(req.uri())?;
    if let Some((_, name)) = [(&p.patient, "patient"), (&p.audit, "_audit")]
        .into_iter()
        .find(|(v, _)| v.is_some())
    {
        return Err(FhirFailure::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            Some(name),
            &format!("metadata takes no {name}; only _format"),
        ));
    }
    json(StatusCode::OK, &super::capability::statement(st.now())?)
}

/// `POST /fhir/r4/Patient`: a referral's `Patient` becomes the clinic's patient (state
/// referred), through the same storage call and audit as the console's registration.
async fn import_patient(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    body: String,
) -> FhirResult<Response> {
    let details = import::patient(&body, st.now().date_naive()).map_err(|issues| {
        let list: Vec<(IssueType, Option<String>, String)> = issues
            .into_iter()
            .map(|i| (IssueType::Invalid, Some(i.expression), i.message))
            .collect();
        match outcome(&list)
            .and_then(|o| serde_json::to_string(&o).map_err(|e| FhirError(e.to_string())))
        {
            Ok(body) => ImportRefused(body),
            Err(e) => ImportRefused(format!("{{\"error\": \"{e}\"}}")),
        }
    });
    let details = match details {
        Ok(d) => d,
        Err(ImportRefused(body)) => return Ok(fhir_json(StatusCode::BAD_REQUEST, body)),
    };
    let row = crate::api::insert_referred(&st, &u.actor, details)
        .await
        .map_err(|e| match FhirFailure::from(e) {
            // The only conflict of an insert: the record number is taken.
            f if f.status == StatusCode::CONFLICT => FhirFailure::new(
                StatusCode::CONFLICT,
                IssueType::Duplicate,
                Some("Patient.identifier.value"),
                "a patient with this medical record number exists already; it must be unique",
            ),
            f => f,
        })?;
    let created = export::patient(&parse(&row)?)?;
    let mut r = json(StatusCode::CREATED, &created)?;
    if let Ok(v) = HeaderValue::from_str(&format!("/fhir/r4/Patient/{}", row.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

struct ImportRefused(String);

/// The FHIR endpoints' authorization: the console's check ([`admit`]); a refusal is an
/// `OperationOutcome`, and a refusal of a signed-in user's role is audited.
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
        Err((e, user)) => {
            if let Some(u) = user {
                let detail = serde_json::json!({
                    "request": format!("{method} {uri}"),
                    "role": u.role.as_str(),
                })
                .to_string();
                if let Err(e) = st
                    .store
                    .record_access(&u.actor, "fhir_denied", "fhir", None, &detail, st.ms())
                    .await
                {
                    return FhirFailure::from(e).into_response();
                }
            }
            FhirFailure::from(e).into_response()
        }
    }
}

async fn no_route() -> FhirFailure {
    FhirFailure::new(
        StatusCode::NOT_FOUND,
        IssueType::NotFound,
        None,
        "no such FHIR route; see docs/fhir.md for the endpoints",
    )
}

/// The FHIR routes (merged into the service's router, under its security headers).
pub fn routes(state: AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route("/fhir/r4/Patient", axum::routing::post(import_patient))
        .route("/fhir/r4/Patient/{id}", get(read_patient))
        .route("/fhir/r4/Patient/{id}/$everything", get(everything));
    r = r.route("/fhir/r4/metadata", get(metadata));
    for t in SEARCHABLE {
        r = r
            .route(&format!("/fhir/r4/{t}"), get(search))
            .route(&format!("/fhir/r4/{t}/{{id}}"), get(read));
    }
    r.route_layer(middleware::from_fn_with_state(state, authorize))
        .route("/fhir/r4", get(no_route))
        .route("/fhir/r4/{*rest}", get(no_route).post(no_route))
}

/// The audit rows a test or an auditor reads for one patient's FHIR accesses.
pub fn is_fhir_access(a: &AuditRow) -> bool {
    a.action == "fhir_read" || a.action == "fhir_denied"
}
