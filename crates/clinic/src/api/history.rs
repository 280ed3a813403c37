//! The routes of an implant's history: the imported pump log and the timeline, alarm
//! acknowledgements, revisions, stored replacement plans, and the scale assessments.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    ApiError, ApiJson, ApiResult, AppState, CurrentUser, ErrorBody, Id, json, load, parse,
};
use crate::domain::events::Alarm;
use crate::domain::history::{
    self, AcknowledgeAlarm, ListedPlan, NewReplacementPlan, NewRevision, PlanStatus,
    PlanStatusChange, ReplacementPlanRecord, RevisionRecord,
};
use crate::domain::pumplog::{self, LogExport, Stored};
use crate::domain::records::{Implant, Patient, Prescription};
use crate::domain::scales::{Assessment, NewAssessment};
use crate::storage::{EventRow, Kind, NewRow, Op, Row};

// ---------------------------------------------------------------- pump log

/// The outcome of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// Entries in the upload (all verified).
    pub received: usize,
    /// Entries added.
    pub added: usize,
    /// Entries the clinic held already (the same entries: skipped).
    pub already_held: usize,
    /// First and last sequence numbers of the upload.
    pub first_seq: u32,
    /// Last sequence number.
    pub last_seq: u32,
}

/// Imports an implant's event log as downloaded by `thecal programmer logs --json`: the
/// hash chain is verified first; a forged, removed or reordered entry refuses the whole
/// upload naming its position (`entries[i]`); entries already held are skipped.
#[utoipa::path(post, path = "/api/v1/implants/{id}/log", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = LogExport, tag = "implants",
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody)))]
pub(super) async fn import_log(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(implant_id): Id,
    ApiJson(x): ApiJson<LogExport>,
) -> ApiResult<Json<ImportResult>> {
    let _: (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    import_entries(&st, &u.actor, implant_id, &x)
        .await
        .map(Json)
}

/// Verifies a downloaded log against what the clinic holds and stores the new entries
/// (the upload route's work, also run at each programming session's interrogation).
pub(super) async fn import_entries(
    st: &AppState,
    actor: &crate::storage::Actor,
    implant_id: i64,
    x: &LogExport,
) -> ApiResult<ImportResult> {
    let (first, last) = match (x.entries.first(), x.entries.last()) {
        (Some(f), Some(l)) => (f.seq, l.seq),
        _ => {
            return Err(ApiError::invalid(
                "entries",
                format!("must hold 1 to {} log entries", pumplog::MAX_ENTRIES),
            ));
        }
    };
    let held = st
        .store
        .events(
            implant_id,
            i64::from(first).saturating_sub(1),
            i64::from(last.max(first)),
        )
        .await?;
    let mut stored = Stored::default();
    for e in &held {
        let h = pumplog::parse_hash("stored", &e.hash).map_err(|_| ApiError::internal())?;
        let seq = u32::try_from(e.seq).map_err(|_| ApiError::internal())?;
        if i64::from(first) == e.seq.saturating_add(1) {
            stored.before = Some((seq, h));
        } else {
            stored.overlap.push((seq, h));
        }
    }
    let verified = pumplog::verify(x, &stored)?;
    let rows: Vec<EventRow> = verified
        .iter()
        .map(|v| {
            Ok(EventRow {
                seq: i64::from(v.seq),
                at_ms: i64::try_from(v.at_ms)
                    .map_err(|_| ApiError::invalid("entries", "at_ms must be below 2^63"))?,
                at_utc: v.at.clone(),
                category: v.category.clone(),
                description: v.description.clone(),
                event: json(&v.event)?,
                hash: v.hash.clone(),
            })
        })
        .collect::<ApiResult<_>>()?;
    let added = st
        .store
        .import_events(actor, implant_id, &rows, st.ms())
        .await?;
    Ok(ImportResult {
        received: rows.len(),
        added,
        already_held: rows.len().saturating_sub(added),
        first_seq: first,
        last_seq: last,
    })
}

/// One item of an implant's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineItem {
    /// When (unknown for a pump-log entry whose pump clock was not set).
    pub at: Option<DateTime<Utc>>,
    /// pump_log (imported, hash-verified) or clinic (recorded here).
    pub source: String,
    /// alarm, program, refill, bolus, delivery, fault, telemetry, other, prescription,
    /// acknowledgement or revision.
    pub category: String,
    /// In words.
    pub text: String,
    /// The pump-log sequence number.
    pub seq: Option<i64>,
    /// The clinic record's id.
    pub record_id: Option<i64>,
}

fn at_of(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn midnight(d: NaiveDate) -> Option<DateTime<Utc>> {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

/// The implant's timeline: the imported pump log (alarms, program changes, refills,
/// boluses, stops) with the clinic's alarms, acknowledgements, prescription versions and
/// revisions, in time order (pump entries without a clock last, by sequence).
#[utoipa::path(get, path = "/api/v1/implants/{id}/timeline", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "implants", responses((status = 200, body = [TimelineItem])))]
pub(super) async fn timeline(
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Vec<TimelineItem>>> {
    let _: (Row, Implant) = load(&st, Kind::Implant, id).await?;
    let mut items = vec![];
    for e in st.store.events(id, 0, i64::from(u32::MAX)).await? {
        items.push(TimelineItem {
            at: at_of(e.at_utc.as_deref()),
            source: "pump_log".into(),
            category: e.category,
            text: e.description,
            seq: Some(e.seq),
            record_id: None,
        });
    }
    for r in st.store.list(Kind::Alarm, Some(id), 10_000).await? {
        let a: Alarm = parse(&r)?;
        items.push(TimelineItem {
            at: Some(a.details.raised_at),
            source: "clinic".into(),
            category: "alarm".into(),
            text: format!("alarm recorded: {}", a.details.kind),
            seq: None,
            record_id: Some(a.id),
        });
        if let Some(k) = a.acknowledgement {
            items.push(TimelineItem {
                at: Some(k.at),
                source: "clinic".into(),
                category: "acknowledgement".into(),
                text: format!("{} acknowledged by {}: {}", a.details.kind, k.by, k.action),
                seq: None,
                record_id: Some(a.id),
            });
        }
    }
    for r in st.store.list(Kind::Prescription, Some(id), 10_000).await? {
        let p: Prescription = parse(&r)?;
        items.push(TimelineItem {
            at: Some(p.created_at),
            source: "clinic".into(),
            category: "prescription".into(),
            text: format!(
                "prescription version {}: {} {} at {}",
                p.version, p.drug, p.daily_dose, p.concentration
            ),
            seq: None,
            record_id: Some(p.id),
        });
    }
    for r in st.store.list(Kind::Revision, Some(id), 10_000).await? {
        let v: RevisionRecord = parse(&r)?;
        items.push(TimelineItem {
            at: midnight(v.revision.on),
            source: "clinic".into(),
            category: "revision".into(),
            text: format!("revision: {}", v.revision.reason),
            seq: None,
            record_id: Some(v.id),
        });
    }
    items.sort_by_key(|i| (i.at.is_none(), i.at, i.seq, i.record_id));
    Ok(Json(items))
}

// ---------------------------------------------------------------- alarms

/// Acknowledges an alarm: who (the signed-in user), when, and what was done.
#[utoipa::path(post, path = "/api/v1/alarms/{id}/acknowledge", params(("id" = i64, Path, minimum = 1, description = "alarm id")),
    request_body = AcknowledgeAlarm, tag = "implants",
    responses((status = 200, body = Alarm), (status = 409, body = ErrorBody)))]
pub(super) async fn acknowledge_alarm(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(a): ApiJson<AcknowledgeAlarm>,
) -> ApiResult<Json<Alarm>> {
    let (row, mut alarm): (Row, Alarm) = load(&st, Kind::Alarm, id).await?;
    history::acknowledge(&mut alarm, a, &u.actor.username, st.now())?;
    st.store
        .update(
            &u.actor,
            Kind::Alarm,
            id,
            row.rev,
            "acknowledged",
            &json(&alarm)?,
            st.ms(),
        )
        .await?;
    Ok(Json(alarm))
}

// ---------------------------------------------------------------- revisions

/// A recorded revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionResult {
    /// The revision.
    pub revision: RevisionRecord,
    /// The implant after it.
    pub implant: Implant,
    /// The new pump's implant record, after a pump replacement.
    pub new_implant: Option<Implant>,
}

/// Records a revision (catheter revision, pump replacement, explant): the revision
/// record, the implant's change and a replacement's new implant in one transaction.
#[utoipa::path(post, path = "/api/v1/implants/{id}/revisions", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = NewRevision, tag = "implants",
    responses((status = 201, body = RevisionResult), (status = 409, body = ErrorBody)))]
pub(super) async fn create_revision(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(r): ApiJson<NewRevision>,
) -> ApiResult<(StatusCode, Json<RevisionResult>)> {
    let (row, imp): (Row, Implant) = load(&st, Kind::Implant, id).await?;
    let today = st.now().date_naive();
    let out = history::revise(&imp, r, &u.actor.username, today)?;
    let mut ops = vec![
        Op::Update {
            kind: Kind::Implant,
            id,
            rev: row.rev,
            status: out.status.to_owned(),
            data: json(&out.implant)?,
        },
        Op::Insert(
            Kind::Revision,
            NewRow {
                parent_id: Some(id),
                key: None,
                status: "recorded".into(),
                data: json(&out.record)?,
            },
        ),
    ];
    if let Some(n) = out.new_implant {
        let (details, capacity, low) = n.validate(today)?;
        let new = Implant {
            id: 0,
            patient_id: imp.patient_id,
            capacity_nl: capacity.raw(),
            low_alarm_nl: low.raw(),
            details,
            revisions: vec![],
            explant: None,
        };
        ops.push(Op::Insert(
            Kind::Implant,
            NewRow {
                parent_id: Some(imp.patient_id),
                key: Some(new.details.serial.clone()),
                status: "active".into(),
                data: json(&new)?,
            },
        ));
    }
    let rows = st.store.apply(&u.actor, ops, st.ms()).await?;
    let (Some(rev_row), new_row) = (rows.get(1), rows.get(2)) else {
        return Err(ApiError::internal());
    };
    Ok((
        StatusCode::CREATED,
        Json(RevisionResult {
            revision: parse(rev_row)?,
            implant: out.implant,
            new_implant: new_row.map(parse).transpose()?,
        }),
    ))
}

/// An implant's revisions, oldest first.
#[utoipa::path(get, path = "/api/v1/implants/{id}/revisions", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "implants", responses((status = 200, body = [RevisionRecord])))]
pub(super) async fn list_revisions(
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Vec<RevisionRecord>>> {
    let _: (Row, Implant) = load(&st, Kind::Implant, id).await?;
    let rows = st.store.list(Kind::Revision, Some(id), 10_000).await?;
    Ok(Json(rows.iter().map(parse).collect::<ApiResult<_>>()?))
}

// ---------------------------------------------------------------- replacement plans

/// Stores a replacement plan from the implant's projected ERI: the planned date must be
/// before ERI + 90 days; one open plan per implant.
#[utoipa::path(post, path = "/api/v1/implants/{id}/replacement-plans", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = NewReplacementPlan, tag = "calendar",
    responses((status = 201, body = ReplacementPlanRecord), (status = 409, body = ErrorBody)))]
pub(super) async fn create_plan(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(n): ApiJson<NewReplacementPlan>,
) -> ApiResult<(StatusCode, Json<ReplacementPlanRecord>)> {
    let (row, imp): (Row, Implant) = load(&st, Kind::Implant, id).await?;
    if row.status != "active" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            Some("state"),
            "the implant is no longer in place",
        ));
    }
    let p = history::new_plan(&imp, n, &u.actor.username, st.now().date_naive())?;
    for r in st
        .store
        .list(Kind::ReplacementPlan, Some(id), 10_000)
        .await?
    {
        if r.status != PlanStatus::Done.as_str() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                Some("status"),
                format!(
                    "replacement plan {} of this implant is still {}; move it on instead",
                    r.id, r.status
                ),
            ));
        }
    }
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::ReplacementPlan,
            NewRow {
                parent_id: Some(id),
                key: None,
                status: p.status.as_str().into(),
                data: json(&p)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// Moves a replacement plan on (planned → scheduled → done), optionally re-dated.
#[utoipa::path(post, path = "/api/v1/replacement-plans/{id}/status", params(("id" = i64, Path, minimum = 1, description = "replacement plan id")),
    request_body = PlanStatusChange, tag = "calendar",
    responses((status = 200, body = ReplacementPlanRecord), (status = 409, body = ErrorBody)))]
pub(super) async fn plan_status(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(c): ApiJson<PlanStatusChange>,
) -> ApiResult<Json<ReplacementPlanRecord>> {
    let (row, mut p): (Row, ReplacementPlanRecord) = load(&st, Kind::ReplacementPlan, id).await?;
    history::change_status(&mut p, c, st.now().date_naive()).map_err(|e| {
        if e.field == "status" {
            ApiError::new(StatusCode::CONFLICT, "conflict", Some("status"), e.message)
        } else {
            e.into()
        }
    })?;
    st.store
        .update(
            &u.actor,
            Kind::ReplacementPlan,
            id,
            row.rev,
            p.status.as_str(),
            &json(&p)?,
            st.ms(),
        )
        .await?;
    Ok(Json(p))
}

/// The stored replacement plans, most urgent first (done plans last).
#[utoipa::path(get, path = "/api/v1/replacement-plans", tag = "calendar",
    responses((status = 200, body = [ListedPlan])))]
pub(super) async fn list_plans(State(st): State<AppState>) -> ApiResult<Json<Vec<ListedPlan>>> {
    let rows = st.store.list(Kind::ReplacementPlan, None, 100_000).await?;
    let plans = rows.iter().map(parse).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(history::list(plans, st.now().date_naive())))
}

// ---------------------------------------------------------------- scales

/// Records a scale assessment from its raw answers; the total is computed.
#[utoipa::path(post, path = "/api/v1/patients/{id}/assessments", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    request_body = NewAssessment, tag = "patients",
    responses((status = 201, body = Assessment)))]
pub(super) async fn create_assessment(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(patient_id): Id,
    ApiJson(n): ApiJson<NewAssessment>,
) -> ApiResult<(StatusCode, Json<Assessment>)> {
    let _: (Row, Patient) = load(&st, Kind::Patient, patient_id).await?;
    let (details, score) = n.validate(st.now())?;
    let a = Assessment {
        id: 0,
        patient_id,
        details,
        score,
        recorded_by: u.actor.username.clone(),
    };
    let row = st
        .store
        .insert(
            &u.actor,
            Kind::Assessment,
            NewRow {
                parent_id: Some(patient_id),
                key: None,
                status: "recorded".into(),
                data: json(&a)?,
            },
            st.ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(parse(&row)?)))
}

/// A patient's assessments, oldest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/assessments", params(("id" = i64, Path, minimum = 1, description = "patient id")),
    tag = "patients", responses((status = 200, body = [Assessment])))]
pub(super) async fn list_assessments(
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Vec<Assessment>>> {
    let _: (Row, Patient) = load(&st, Kind::Patient, id).await?;
    let rows = st.store.list(Kind::Assessment, Some(id), 10_000).await?;
    Ok(Json(rows.iter().map(parse).collect::<ApiResult<_>>()?))
}
