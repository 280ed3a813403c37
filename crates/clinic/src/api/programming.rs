//! The routes of programming the implant from the clinic: enrolling the server's
//! programmer station through the wand's window, interrogating (status beside the
//! clinic's record, every disagreement named, the event log imported and its chain
//! verified, unfinished sessions reconciled), choosing a refill or program change from
//! the clinic's own refill visit or prescription version, reviewing old against new,
//! sending with the intent recorded first, reading back and recording what the implant
//! confirmed; and enrolling and revoking patient remotes.
//!
//! Calls to the implant block (UDP with retries) and run on tokio's blocking pool.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use thecal_programmer::bearer::{Fail, Stats};
use thecal_programmer::session;
use thecal_pump::command::{BridgeChoice, Command, Role as PumpRole, SoftReason};
use thecal_rx::Volume;
use thecal_rx::dose::Admixture;
use utoipa::ToSchema;

use super::{
    ApiError, ApiJson, ApiResult, AppState, CurrentUser, ErrorBody, Id, json, load, parse,
};
use crate::auth::Role;
use crate::domain::change::rx_of;
use crate::domain::device::Device as PumpDevice;
use crate::domain::events::{Alarm, AlarmPriority, NewAlarm};
use crate::domain::pumplog::{ChainPoint, ExportEntry, LogExport, hex};
use crate::domain::records::{Implant, Prescription, RefillVisit, VisitStep, drug};
use crate::domain::{FieldError, quantity};
use crate::programming::forecast::{self, Acknowledgement, TwinState};
use crate::programming::record::{
    self, Air, ClinicView, Intent, LogCheck, Session, Snapshot, status,
};
use crate::programming::{Station, Step, fail_words};
use crate::storage::{Kind, NewRow, Op, Row};

/// The station, or 503 when this server runs none.
fn station(ext: Option<Extension<Arc<Station>>>) -> ApiResult<Arc<Station>> {
    ext.map(|Extension(s)| s).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_programmer",
            None,
            "this server runs no programmer station (thecal serve keeps its key in the data \
             directory; a server on PostgreSQL without --data has none)",
        )
    })
}

/// An implant that did not answer, or answered otherwise than asked.
fn link_error(f: &Fail) -> ApiError {
    match f {
        Fail::Usage(m) => ApiError::new(StatusCode::CONFLICT, "conflict", None, m.clone()),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "implant_unreachable",
            None,
            fail_words(other),
        ),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Fail> + Send + 'static,
) -> ApiResult<Result<T, Fail>> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        eprintln!("thecal-clinic: programmer task failed: {e}");
        ApiError::internal()
    })
}

fn air(s: &Stats) -> Air {
    Air {
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        round_trips: s.round_trips,
    }
}

fn new_row(implant_id: i64, status: &str, s: &Session) -> ApiResult<NewRow> {
    Ok(NewRow {
        parent_id: Some(implant_id),
        key: None,
        status: status.to_owned(),
        data: json(s)?,
    })
}

// ---------------------------------------------------------------- enrolment

/// Enrolment of this server's programmer with a pump.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LinkRequest {
    /// The pump's address, HOST:PORT.
    pub address: String,
    /// The proximity token the wand read from the pump (its JSON text).
    pub token: String,
}

/// The station's link with a pump.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkState {
    /// This server's programmer is enrolled with the pump.
    pub enrolled: bool,
    /// The pump's address.
    pub address: Option<String>,
    /// The programmer's key id (public; the key itself is never shown).
    pub key_id: Option<u32>,
    /// Bytes and round trips of the enrolment.
    pub air: Option<Air>,
}

/// Enrols this server's programmer with the implant through the wand's window: the
/// token the wand read (the implant's key and the window's one-time key) and the
/// implant's address.
#[utoipa::path(post, path = "/api/v1/implants/{id}/link", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = LinkRequest, tag = "programming",
    responses((status = 200, body = LinkState), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn link(
    State(st): State<AppState>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
    ApiJson(r): ApiJson<LinkRequest>,
) -> ApiResult<Json<LinkState>> {
    let station = station(ext)?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    if r.address.trim().is_empty() || r.address.len() > 200 {
        return Err(ApiError::invalid(
            "address",
            "must be the pump's HOST:PORT, e.g. 127.0.0.1:7011",
        ));
    }
    if r.token.trim().is_empty() || r.token.len() > 4000 {
        return Err(ApiError::invalid(
            "token",
            "must be the proximity token the wand read (JSON, up to 4000 characters)",
        ));
    }
    let serial = imp.details.serial.clone();
    let address = r.address.trim().to_owned();
    let s2 = station.clone();
    let stats = blocking(move || s2.enrol(&serial, &address, &r.token))
        .await?
        .map_err(|f| match f {
            Fail::Usage(m) => ApiError::invalid("token", m),
            other => link_error(&other),
        })?;
    Ok(Json(LinkState {
        enrolled: true,
        address: station.address(&imp.details.serial),
        key_id: station.key_id(),
        air: Some(air(&stats)),
    }))
}

// ---------------------------------------------------------------- interrogation

async fn sessions(st: &AppState, implant_id: i64) -> ApiResult<Vec<(Row, Session)>> {
    let rows = st
        .store
        .list(Kind::ProgrammingSession, Some(implant_id), 100_000)
        .await?;
    rows.into_iter()
        .map(|r| {
            let s: Session = parse(&r)?;
            Ok((r, s))
        })
        .collect()
}

/// What the clinic's record says of the implant, for the comparison.
async fn clinic_view(
    st: &AppState,
    imp: &Implant,
    earlier: &[(Row, Session)],
) -> ApiResult<ClinicView> {
    let rx: Option<Prescription> = match st.store.latest(Kind::Prescription, imp.id, None).await? {
        Some(r) => Some(parse(&r)?),
        None => None,
    };
    let last_closed: Option<RefillVisit> =
        match st.store.latest(Kind::Visit, imp.id, Some("closed")).await? {
            Some(r) => Some(parse(&r)?),
            None => None,
        };
    let open_visit: Option<RefillVisit> =
        match st.store.latest(Kind::Visit, imp.id, Some("open")).await? {
            Some(r) => Some(parse(&r)?),
            None => None,
        };
    let alarms = st.store.list(Kind::Alarm, Some(imp.id), 100_000).await?;
    let mut open_alarms = Vec::new();
    for r in &alarms {
        let a: Alarm = parse(r)?;
        if a.acknowledgement.is_none() {
            open_alarms.push(a.details.kind);
        }
    }
    let last_fill = last_closed.as_ref().and_then(|v| {
        let f = v.fill.as_ref()?;
        let rx = rx.as_ref()?;
        let c: thecal_rx::Concentration = f.concentration.parse().ok()?;
        Some((rx.drug.clone(), c.raw()))
    });
    Ok(ClinicView {
        prescription: rx.as_ref().and_then(|p| rx_of(p).map(|r| (p.version, r))),
        catheter_length_cm: Some(imp.details.catheter_length_cm),
        eri_projected: imp.details.eri_projected,
        open_alarms,
        beyond_use: last_closed
            .as_ref()
            .and_then(|v| v.fill.as_ref())
            .and_then(|f| f.beyond_use),
        last_fill,
        expected_residual: open_visit.map(|v| (v.expected_residual_nl, imp.capacity_nl)),
        confirmed_version: earlier
            .iter()
            .rev()
            .find_map(|(_, s)| s.confirmed.as_ref().map(|c| c.program_version)),
        today: Some(st.now().date_naive()),
    })
}

/// Interrogates the implant: its status and program beside the clinic's record with
/// every disagreement named; the event log imported with its chain verified against the
/// implant's head (a break raises an alarm); unfinished sessions reconciled with what
/// the implant holds (rolled forward when its program version and settings show the
/// change applied, marked not applied otherwise).
#[utoipa::path(post, path = "/api/v1/implants/{id}/interrogate", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "programming",
    responses((status = 201, body = Session), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn interrogate(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
) -> ApiResult<(StatusCode, Json<Session>)> {
    let station = station(ext)?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let held = st.store.events(implant_id, 0, i64::MAX).await?;
    let from = held
        .last()
        .and_then(|e| u32::try_from(e.seq.saturating_add(1)).ok())
        .unwrap_or(0);
    let serial = imp.details.serial.clone();
    let s2 = station.clone();
    let ((status_read, program, path, log), stats) = blocking(move || {
        s2.with(&serial, |c| {
            let s = session::status(c)?;
            let p = session::program(c)?;
            let path = session::fluid_path(c)?;
            let log = session::read_log(c, from)?;
            Ok((s, p, path, log))
        })
    })
    .await?
    .map_err(|f| link_error(&f))?;
    let now = st.now();
    let snap = Snapshot::of(&status_read, &program, now.timestamp_millis());
    let earlier = sessions(&st, implant_id).await?;
    let final_before: Vec<(Row, Session)> = earlier
        .iter()
        .filter(|(r, _)| {
            matches!(
                r.status.as_str(),
                status::CONFIRMED | status::ROLLED_FORWARD | status::NOT_APPLIED
            )
        })
        .cloned()
        .collect();
    let view = clinic_view(&st, &imp, &final_before).await?;
    let mut disagreements = record::disagreements(&view, &snap);
    // Unfinished sessions: reconciled to what the implant holds now.
    let mut ops = Vec::new();
    let mut reconciled = Vec::new();
    for (row, mut s) in earlier {
        let (new_status, words) = match (row.status.as_str(), &s.intent) {
            (status::PENDING, Some(intent)) => {
                if intent.applied(s.before.program_version, &snap) {
                    (
                        status::ROLLED_FORWARD,
                        format!(
                            "session {}: {} — found applied at this interrogation (program \
                             version {}, settings as sent); recorded as the implant holds it",
                            s.id,
                            intent.words(),
                            snap.program_version
                        ),
                    )
                } else {
                    (
                        status::NOT_APPLIED,
                        format!(
                            "session {}: {} — NOT applied: the implant holds program version \
                             {} ({}), not the change sent",
                            s.id,
                            intent.words(),
                            snap.program_version,
                            snap.contents
                        ),
                    )
                }
            }
            (status::INTERROGATED | status::REVIEWED, _) => (
                status::CLOSED,
                format!(
                    "session {}: closed by a later interrogation; nothing was sent",
                    s.id
                ),
            ),
            _ => continue,
        };
        if new_status != status::CLOSED {
            s.confirmed = Some(snap.clone());
            reconciled.push(words.clone());
        }
        s.outcome = Some(words);
        ops.push(Op::Update {
            kind: Kind::ProgrammingSession,
            id: row.id,
            rev: row.rev,
            status: new_status.to_owned(),
            data: json(&s)?,
        });
    }
    // The event log, verified against the implant's head before anything is stored.
    let export = LogExport {
        entries: log
            .entries
            .iter()
            .map(|e| ExportEntry {
                seq: e.seq,
                at_ms: e.at.ms(),
                at: None,
                text: None,
                event: e.event,
                hash: hex(&e.hash),
            })
            .collect(),
        head: ChainPoint {
            seq: log.head.next_seq(),
            hash: hex(&log.head.last_hash()),
        },
        anchor: log.anchor.map(|(seq, h)| ChainPoint { seq, hash: hex(&h) }),
    };
    let log_check = if export.entries.is_empty() {
        LogCheck {
            verified: true,
            added: 0,
            message: "no new entries".into(),
        }
    } else {
        match super::history::import_entries(&st, &u.actor, implant_id, &export).await {
            Ok(r) => LogCheck {
                verified: true,
                added: r.added,
                message: format!(
                    "chain verified to the implant's head (entries {} to {}, {} new)",
                    r.first_seq, r.last_seq, r.added
                ),
            },
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                let message = format!("EVENT LOG CHAIN BROKEN: {}", e.message);
                let alarm = Alarm {
                    id: 0,
                    implant_id,
                    details: NewAlarm {
                        kind: "event log chain broken".into(),
                        priority: AlarmPriority::High,
                        raised_at: now,
                        action: format!(
                            "{message}. The implant's log does not verify against its own \
                             head: a forged, removed or reordered entry. Nothing was imported; \
                             investigate the device."
                        ),
                    },
                    recorded_by: u.actor.username.clone(),
                    acknowledgement: None,
                };
                ops.push(Op::Insert(
                    Kind::Alarm,
                    NewRow {
                        parent_id: Some(implant_id),
                        key: None,
                        status: "active".into(),
                        data: json(&alarm)?,
                    },
                ));
                disagreements.push(format!("event log: {message}"));
                LogCheck {
                    verified: false,
                    added: 0,
                    message,
                }
            }
            Err(e) => return Err(e),
        }
    };
    let session = Session {
        id: 0,
        implant_id,
        opened_by: u.actor.username.clone(),
        opened_at: now,
        before: snap,
        disagreements,
        reconciled,
        log: log_check,
        intent: None,
        review: vec![],
        sent_by: None,
        sent_at: None,
        confirmed: None,
        outcome: None,
        air: vec![("interrogation".into(), air(&stats))],
        twin: Some(TwinState {
            status: status_read,
            path,
        }),
        lookahead: None,
        acknowledged: None,
    };
    ops.push(Op::Insert(
        Kind::ProgrammingSession,
        new_row(implant_id, status::INTERROGATED, &session)?,
    ));
    let rows = st.store.apply(&u.actor, ops, st.ms()).await?;
    let row = rows.last().ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(parse(row)?)))
}

// ---------------------------------------------------------------- reading

/// The implant's programming: the station's link, what the implant was last confirmed
/// to run, and its sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Programming {
    /// The station's link with the pump.
    pub link: LinkState,
    /// What the implant was last confirmed to hold (read back, or found at an
    /// interrogation); never a change that was only sent.
    pub runs: Option<Snapshot>,
    /// Sessions, newest first (at most 50).
    pub sessions: Vec<SessionListed>,
}

/// A session with its status.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionListed {
    /// interrogated, reviewed, pending, confirmed, rolled_forward, not_applied, closed.
    pub status: String,
    /// The session.
    pub session: Session,
}

/// The implant's programming sessions and what it was last confirmed to run.
#[utoipa::path(get, path = "/api/v1/implants/{id}/programming", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "programming", responses((status = 200, body = Programming), (status = 404, body = ErrorBody)))]
pub(super) async fn programming(
    State(st): State<AppState>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
) -> ApiResult<Json<Programming>> {
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let all = sessions(&st, implant_id).await?;
    // The latest state the implant itself reported: a pending session's change is not
    // in it (only what the implant held when that session interrogated it).
    let runs = all.last().map(|(r, s)| {
        if r.status == status::PENDING {
            s.before.clone()
        } else {
            s.confirmed.clone().unwrap_or_else(|| s.before.clone())
        }
    });
    let station = ext.map(|Extension(s)| s);
    let address = station
        .as_ref()
        .and_then(|s| s.address(&imp.details.serial));
    Ok(Json(Programming {
        link: LinkState {
            enrolled: address.is_some(),
            address,
            key_id: station.as_ref().and_then(|s| s.key_id()),
            air: None,
        },
        runs,
        sessions: all
            .into_iter()
            .rev()
            .take(50)
            .map(|(r, session)| SessionListed {
                status: r.status,
                session,
            })
            .collect(),
    }))
}

/// A programming session.
#[utoipa::path(get, path = "/api/v1/programming/{id}", params(("id" = i64, Path, minimum = 1, description = "session id")),
    tag = "programming", responses((status = 200, body = SessionListed), (status = 404, body = ErrorBody)))]
pub(super) async fn get_session(
    State(st): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<SessionListed>> {
    let (row, session): (Row, Session) = load(&st, Kind::ProgrammingSession, id).await?;
    Ok(Json(SessionListed {
        status: row.status,
        session,
    }))
}

// ---------------------------------------------------------------- change, review, send

/// The change of a session: a prescription version of this implant (a program change,
/// physicians only) or a refill visit of it whose fill is recorded.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRequest {
    /// A program change: the prescription version's record id.
    #[serde(default)]
    pub prescription_id: Option<i64>,
    /// A refill: the refill visit's record id (aspiration and fill recorded).
    #[serde(default)]
    pub visit_id: Option<i64>,
    /// A refill: keep each drug's daily dose when the concentration changes (default:
    /// yes).
    #[serde(default)]
    pub keep_dose: Option<bool>,
    /// A refill: bridging of the old fluid in the catheter, "auto" (the pump keeps the
    /// dose at the tip) or "none" (default "auto").
    #[serde(default)]
    pub bridge: Option<String>,
    /// The clinician's reason confirming the pump's soft findings or a flagged
    /// reconciliation (default: the visit's investigation, or the prescription's
    /// confirmation of its soft findings).
    #[serde(default)]
    pub confirm: Option<String>,
}

async fn latest_session_id(st: &AppState, implant_id: i64) -> ApiResult<Option<i64>> {
    Ok(st
        .store
        .latest(Kind::ProgrammingSession, implant_id, None)
        .await?
        .map(|r| r.id))
}

fn refill_contents(rx: &Prescription, conc: &str) -> Result<Admixture, FieldError> {
    let c: thecal_rx::Concentration = quantity("fill.concentration", conc)?;
    let therapy = rx_of(rx).ok_or_else(|| {
        FieldError::new("visit_id", "the visit's prescription names no known drug")
    })?;
    if therapy.contents.components().len() > 1 {
        // An admixture is filled as prescribed (its first drug's concentration checked).
        if therapy.contents.components()[0].concentration != c {
            return Err(FieldError::new(
                "visit_id",
                "the fill's concentration differs from the admixture's first drug",
            ));
        }
        return Ok(therapy.contents);
    }
    Ok(Admixture::single(drug("visit_id", &rx.drug)?, c))
}

/// Chooses the session's change and reviews it: old (what the implant holds) against
/// new, in words. Nothing is sent.
#[utoipa::path(post, path = "/api/v1/programming/{id}/change", params(("id" = i64, Path, minimum = 1, description = "session id")),
    request_body = ChangeRequest, tag = "programming",
    responses((status = 200, body = SessionListed), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn change(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
    ApiJson(r): ApiJson<ChangeRequest>,
) -> ApiResult<Json<SessionListed>> {
    let (row, mut s): (Row, Session) = load(&st, Kind::ProgrammingSession, id).await?;
    if !matches!(row.status.as_str(), status::INTERROGATED | status::REVIEWED) {
        return Err(ApiError::from(FieldError::new(
            "state",
            format!(
                "this session is {}: a change is chosen after an interrogation, before sending",
                row.status
            ),
        )));
    }
    if latest_session_id(&st, s.implant_id).await? != Some(id) {
        return Err(ApiError::from(FieldError::new(
            "state",
            "a later interrogation of this implant exists: work from it",
        )));
    }
    let confirm = r
        .confirm
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if let Some(c) = &confirm {
        SoftReason::new(c).map_err(|e| ApiError::invalid("confirm", e.to_string()))?;
    }
    let intent = match (r.prescription_id, r.visit_id) {
        (Some(pid), None) => {
            if u.role != Role::Physician {
                return Err(ApiError::forbidden(
                    "only a physician may send a program change",
                ));
            }
            let (_, p): (Row, Prescription) = load(&st, Kind::Prescription, pid).await?;
            if p.implant_id != s.implant_id {
                return Err(ApiError::invalid(
                    "prescription_id",
                    "must be a prescription version of this session's implant",
                ));
            }
            let program = rx_of(&p).ok_or_else(|| {
                ApiError::invalid("prescription_id", "the prescription names no known drug")
            })?;
            if program.contents != s.before.program.contents {
                return Err(ApiError::invalid(
                    "prescription_id",
                    format!(
                        "prescription version {} is for {}, but the implant's reservoir holds \
                         {}: a new drug or concentration goes in with a refill",
                        p.version,
                        thecal_programmer::describe::contents_text(&program.contents),
                        s.before.contents
                    ),
                ));
            }
            let confirm_soft = confirm.or_else(|| {
                p.confirmation
                    .as_ref()
                    .map(|c| c.reason.clone())
                    .filter(|r| SoftReason::new(r).is_ok())
            });
            Intent::Program {
                prescription_id: pid,
                version: p.version,
                program,
                confirm_soft,
            }
        }
        (None, Some(vid)) => {
            let (_, v): (Row, RefillVisit) = load(&st, Kind::Visit, vid).await?;
            if v.implant_id != s.implant_id {
                return Err(ApiError::invalid(
                    "visit_id",
                    "must be a refill visit of this session's implant",
                ));
            }
            let (Some(aspirated), Some(fill)) = (v.aspirated_nl, v.fill.as_ref()) else {
                return Err(ApiError::invalid(
                    "visit_id",
                    "the visit must have its aspiration and fill recorded first",
                ));
            };
            if v.step < VisitStep::Filled {
                return Err(ApiError::invalid(
                    "visit_id",
                    "the visit must have its fill recorded first",
                ));
            }
            let (_, rx): (Row, Prescription) =
                load(&st, Kind::Prescription, v.prescription_id).await?;
            let contents = refill_contents(&rx, &fill.concentration)?;
            let added: Volume = quantity("fill.volume_added", &fill.volume_added)?;
            let bridge = match r.bridge.as_deref().map(str::trim) {
                None | Some("") | Some("auto") => "auto",
                Some("none") => "none",
                Some(_) => {
                    return Err(ApiError::invalid(
                        "bridge",
                        "must be auto (the pump keeps the dose at the tip) or none",
                    ));
                }
            };
            let confirm = confirm.or_else(|| {
                v.investigation
                    .clone()
                    .filter(|r| SoftReason::new(r).is_ok())
            });
            Intent::Refill {
                visit_id: vid,
                aspirated_nl: aspirated,
                added_nl: added.raw(),
                contents,
                keep_dose: r.keep_dose.unwrap_or(true),
                bridge: bridge.to_owned(),
                beyond_use: fill.beyond_use,
                confirm,
            }
        }
        _ => {
            return Err(ApiError::invalid(
                "prescription_id",
                "give either prescription_id (a program change) or visit_id (a refill)",
            ));
        }
    };
    s.review = record::review(&s.before, &intent);
    // The look ahead of the very command the change sends, from the interrogated state.
    let cmd = command_of(&intent)?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, s.implant_id).await?;
    let device = PumpDevice::of_implant(
        &imp.details.pump_model,
        Volume::from_raw(imp.capacity_nl),
        None,
    );
    let (twin, program, host_ms) = (
        s.twin.clone(),
        s.before.program.clone(),
        s.opened_at.timestamp_millis(),
    );
    let view = tokio::task::spawn_blocking(move || {
        forecast::run(&device, twin.as_ref(), &program, &cmd, host_ms)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    s.lookahead = Some(view);
    s.acknowledged = None;
    s.intent = Some(intent);
    let row = st
        .store
        .update(
            &u.actor,
            Kind::ProgrammingSession,
            id,
            row.rev,
            status::REVIEWED,
            &json(&s)?,
            st.ms(),
        )
        .await?;
    Ok(Json(SessionListed {
        session: parse(&row)?,
        status: row.status,
    }))
}

/// The command that carries an intent.
fn command_of(i: &Intent) -> Result<Command, ApiError> {
    let reason = |r: &Option<String>| -> Result<Option<SoftReason>, ApiError> {
        r.as_deref()
            .map(|t| SoftReason::new(t).map_err(|e| ApiError::invalid("confirm", e.to_string())))
            .transpose()
    };
    Ok(match i {
        Intent::Program {
            program,
            confirm_soft,
            ..
        } => Command::Program {
            prescription: program.clone(),
            confirm_soft: reason(confirm_soft)?,
        },
        Intent::Refill {
            aspirated_nl,
            added_nl,
            contents,
            keep_dose,
            bridge,
            beyond_use,
            confirm,
            ..
        } => Command::Refill {
            aspirated: Volume::from_raw(*aspirated_nl),
            added: Volume::from_raw(*added_nl),
            contents: contents.clone(),
            keep_dose: *keep_dose,
            bridge: if bridge == "none" {
                BridgeChoice::None
            } else {
                BridgeChoice::Automatic
            },
            confirm: reason(confirm)?,
            beyond_use_utc_ms: beyond_use
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|t| u64::try_from(t.and_utc().timestamp_millis()).ok()),
        },
    })
}

/// A program change is the physician's to send (and to acknowledge); a refill any
/// clinician's who may record it. `what` is the act refused, in words.
fn may_send(u: &CurrentUser, intent: &Intent, what: &str) -> ApiResult<()> {
    if matches!(intent, Intent::Program { .. }) && u.role != Role::Physician {
        return Err(ApiError::forbidden(&format!(
            "only a physician may {what} a program change"
        )));
    }
    Ok(())
}

/// Acknowledges the look ahead's warnings (dose excursions at the catheter tip, alarms
/// the change would raise, or no forecast at all) by the signed-in clinician's name; the
/// change can then be sent. Choosing the change again clears the acknowledgement.
#[utoipa::path(post, path = "/api/v1/programming/{id}/acknowledge", params(("id" = i64, Path, minimum = 1, description = "session id")),
    tag = "programming",
    responses((status = 200, body = SessionListed), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn acknowledge(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    Id(id): Id,
) -> ApiResult<Json<SessionListed>> {
    let (row, mut s): (Row, Session) = load(&st, Kind::ProgrammingSession, id).await?;
    let (status::REVIEWED, Some(intent)) = (row.status.as_str(), &s.intent) else {
        return Err(ApiError::from(FieldError::new(
            "state",
            format!(
                "this session is {}: a look ahead is acknowledged after the change is chosen, \
                 before it is sent",
                row.status
            ),
        )));
    };
    may_send(&u, intent, "acknowledge the look ahead of")?;
    let read = match &s.lookahead {
        Some(l) if l.needs_acknowledgement => l.to_acknowledge(),
        _ => {
            return Err(ApiError::from(FieldError::new(
                "state",
                "the look ahead of this change has no warning to acknowledge",
            )));
        }
    };
    s.acknowledged = Some(Acknowledgement {
        by: u.actor.username.clone(),
        at: st.now(),
        read,
    });
    let row = st
        .store
        .update(
            &u.actor,
            Kind::ProgrammingSession,
            id,
            row.rev,
            status::REVIEWED,
            &json(&s)?,
            st.ms(),
        )
        .await?;
    Ok(Json(SessionListed {
        session: parse(&row)?,
        status: row.status,
    }))
}

/// How a send ended, when the implant answered.
enum Sent {
    /// Read back.
    ReadBack(Box<Snapshot>),
    /// The implant refused the command: nothing changed.
    Refused(String),
}

/// Sends the reviewed change: the intent is recorded first (pending), then sent, read
/// back, and what the implant confirmed is recorded. A link that drops leaves the
/// session pending; the next interrogation reconciles it with what the implant holds.
#[utoipa::path(post, path = "/api/v1/programming/{id}/send", params(("id" = i64, Path, minimum = 1, description = "session id")),
    tag = "programming",
    responses((status = 200, body = SessionListed), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn send(
    State(st): State<AppState>,
    Extension(u): Extension<CurrentUser>,
    ext: Option<Extension<Arc<Station>>>,
    Id(id): Id,
) -> ApiResult<Json<SessionListed>> {
    let station = station(ext)?;
    let (row, mut s): (Row, Session) = load(&st, Kind::ProgrammingSession, id).await?;
    let intent = match (row.status.as_str(), &s.intent) {
        (status::REVIEWED, Some(i)) => i.clone(),
        _ => {
            return Err(ApiError::from(FieldError::new(
                "state",
                format!(
                    "this session is {}: only a reviewed change (old against new) is sent",
                    row.status
                ),
            )));
        }
    };
    may_send(&u, &intent, "send")?;
    if latest_session_id(&st, s.implant_id).await? != Some(id) {
        return Err(ApiError::from(FieldError::new(
            "state",
            "a later interrogation of this implant exists: work from it",
        )));
    }
    match &s.lookahead {
        None => {
            return Err(ApiError::from(FieldError::new(
                "state",
                "this change has no look ahead: choose the change again so the digital twin \
                 forecasts it before it is sent",
            )));
        }
        Some(l) if l.needs_acknowledgement && s.acknowledged.is_none() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "acknowledgement_required",
                Some("acknowledged"),
                format!(
                    "the look ahead warns: {}. A clinician acknowledges these by name \
                     (POST /api/v1/programming/{id}/acknowledge) before the change is sent",
                    l.to_acknowledge().join("; ")
                ),
            ));
        }
        Some(_) => {}
    }
    let cmd = command_of(&intent)?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, s.implant_id).await?;
    // The intent, before anything goes on the air.
    s.sent_by = Some(u.actor.username.clone());
    s.sent_at = Some(st.now());
    let row = st
        .store
        .update(
            &u.actor,
            Kind::ProgrammingSession,
            id,
            row.rev,
            status::PENDING,
            &json(&s)?,
            st.ms(),
        )
        .await?;
    let serial = imp.details.serial.clone();
    let s2 = station.clone();
    let host_ms = st.ms();
    let result = blocking(move || {
        s2.with(&serial, |c| {
            s2.fault(Step::BeforeSend).map_err(Fail::Runtime)?;
            match session::ok(c, thecal_link::Body::Pump(cmd)) {
                Ok(_) => {}
                Err(Fail::Refused(r)) => {
                    return Ok(Sent::Refused(fail_words(&Fail::Refused(r))));
                }
                Err(e) => return Err(e),
            }
            s2.fault(Step::AfterSend).map_err(Fail::Runtime)?;
            let status_read = session::status(c)?;
            let program = session::program(c)?;
            s2.fault(Step::AfterReadBack).map_err(Fail::Runtime)?;
            Ok(Sent::ReadBack(Box::new(Snapshot::of(
                &status_read,
                &program,
                host_ms,
            ))))
        })
    })
    .await?;
    let (sent, stats) = match result {
        Ok(x) => x,
        Err(f) => {
            // Pending stays: what the implant did is known only at the next
            // interrogation.
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "implant_unreachable",
                None,
                format!(
                    "{}. The change may or may not have been applied: the session stays \
                     pending, and the next interrogation shows what the implant holds and \
                     reconciles the record with it",
                    fail_words(&f)
                ),
            ));
        }
    };
    s.air.push(("send and read back".into(), air(&stats)));
    let new_status = match sent {
        Sent::ReadBack(snap) => {
            let applied = intent.applied(s.before.program_version, &snap);
            s.outcome = Some(if applied {
                format!(
                    "read back: the implant runs {} (program version {})",
                    intent.words(),
                    snap.program_version
                )
            } else {
                format!(
                    "READ-BACK MISMATCH: the implant holds program version {} ({}), not the \
                     change sent",
                    snap.program_version, snap.contents
                )
            });
            s.confirmed = Some(*snap);
            if applied {
                status::CONFIRMED
            } else {
                status::NOT_APPLIED
            }
        }
        Sent::Refused(words) => {
            s.outcome = Some(format!("not applied: {words}"));
            status::NOT_APPLIED
        }
    };
    let row = st
        .store
        .update(
            &u.actor,
            Kind::ProgrammingSession,
            id,
            row.rev,
            new_status,
            &json(&s)?,
            st.ms(),
        )
        .await?;
    Ok(Json(SessionListed {
        session: parse(&row)?,
        status: row.status,
    }))
}

// ---------------------------------------------------------------- remotes

/// An enrolment window for a patient's (or emergency) remote.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RemoteWindow {
    /// patient or emergency.
    pub role: String,
    /// How long the window stays open, 10 to 600 seconds (default 120).
    #[serde(default)]
    pub window_seconds: Option<u16>,
}

/// The invite to hand to the remote (it holds the window's one-time key: give it to the
/// remote only).
#[derive(Debug, Serialize, ToSchema)]
pub struct Invite {
    /// The invite, as `thecal remote enroll --invite` reads it.
    #[schema(value_type = Object)]
    pub invite: serde_json::Value,
    /// The role the remote will have.
    pub role: String,
    /// When the window closes.
    pub expires: String,
    /// Bytes and round trips.
    pub air: Air,
}

/// Opens an enrolment window for a remote and returns its invite; the remote then says
/// hello and shows six digits, which the clinician confirms.
#[utoipa::path(post, path = "/api/v1/implants/{id}/remotes", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = RemoteWindow, tag = "programming",
    responses((status = 201, body = Invite), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn open_remote(
    State(st): State<AppState>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
    ApiJson(r): ApiJson<RemoteWindow>,
) -> ApiResult<(StatusCode, Json<Invite>)> {
    let station = station(ext)?;
    let role = match r.role.trim() {
        "patient" => PumpRole::PatientRemote,
        "emergency" => PumpRole::Emergency,
        _ => return Err(ApiError::invalid("role", "must be patient or emergency")),
    };
    let seconds = r.window_seconds.unwrap_or(120);
    if !thecal_link::endpoint::ENROLMENT_WINDOW_SECONDS.contains(&seconds) {
        return Err(ApiError::invalid(
            "window_seconds",
            "must be 10 to 600 seconds",
        ));
    }
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let serial = imp.details.serial.clone();
    let s2 = station.clone();
    let (w, stats) =
        blocking(move || s2.with(&serial, |c| session::open_enrolment(c, role, seconds)))
            .await?
            .map_err(|f| link_error(&f))?;
    let expires = (st.now() + chrono::TimeDelta::seconds(i64::from(seconds)))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let address = station.address(&imp.details.serial).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(Invite {
            invite: session::invite_json(&w, role, &expires, &address),
            role: role.to_string(),
            expires,
            air: air(&stats),
        }),
    ))
}

/// The six digits the remote shows.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Fingerprint {
    /// Six digits, e.g. "123 456".
    pub fingerprint: String,
}

/// A device enrolled or revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceResult {
    /// Its key id.
    pub key_id: u32,
    /// Its role.
    pub role: String,
    /// What was done, in words.
    pub text: String,
}

/// Confirms the remote waiting in the window: the pump enrols it only if the six digits
/// typed (what the remote shows) equal its own fingerprint.
#[utoipa::path(post, path = "/api/v1/implants/{id}/remotes/confirm", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = Fingerprint, tag = "programming",
    responses((status = 200, body = DeviceResult), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn confirm_remote(
    State(st): State<AppState>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
    ApiJson(r): ApiJson<Fingerprint>,
) -> ApiResult<Json<DeviceResult>> {
    let station = station(ext)?;
    let typed = session::parse_fingerprint(&r.fingerprint).ok_or_else(|| {
        ApiError::invalid(
            "fingerprint",
            "must be the six digits the remote shows, e.g. 123456 or 123 456",
        )
    })?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let serial = imp.details.serial.clone();
    let s2 = station.clone();
    let ((pending, done), _) = blocking(move || {
        s2.with(&serial, |c| {
            let pending = session::pending_enrolment(c)?;
            let done = match session::confirm_enrolment(c, typed) {
                Ok(d) => Ok(d),
                Err(Fail::Refused(r)) => Err(fail_words(&Fail::Refused(r))),
                Err(e) => return Err(e),
            };
            Ok((pending, done))
        })
    })
    .await?
    .map_err(|f| match f {
        Fail::Refused(_) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            Some("fingerprint"),
            format!(
                "{}: no remote is waiting (open a window first)",
                fail_words(&f)
            ),
        ),
        other => link_error(&other),
    })?;
    match done {
        Ok((key_id, role)) => Ok(Json(DeviceResult {
            key_id,
            role: role.to_string(),
            text: format!("enrolled: {role} key {key_id}"),
        })),
        Err(words) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            Some("fingerprint"),
            format!(
                "not enrolled: the digits typed differ from the pump's fingerprint for the \
                 device waiting (key {}); the device that answered may not be the one in \
                 your hand ({words})",
                pending.key_id
            ),
        )),
    }
}

/// A device to revoke.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// Its key id.
    pub key_id: u32,
}

/// Revokes a device (the pump never answers it again) and reads the registry back.
#[utoipa::path(post, path = "/api/v1/implants/{id}/remotes/revoke", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    request_body = RevokeRequest, tag = "programming",
    responses((status = 200, body = DeviceResult), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub(super) async fn revoke_remote(
    State(st): State<AppState>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
    ApiJson(r): ApiJson<RevokeRequest>,
) -> ApiResult<Json<DeviceResult>> {
    let station = station(ext)?;
    if station.key_id() == Some(r.key_id) {
        return Err(ApiError::invalid(
            "key_id",
            "is this server's own programmer: it cannot revoke itself",
        ));
    }
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let serial = imp.details.serial.clone();
    let s2 = station.clone();
    let key_id = r.key_id;
    let (after, _) = blocking(move || s2.with(&serial, |c| session::revoke(c, key_id)))
        .await?
        .map_err(|f| match f {
            Fail::Refused(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                Some("key_id"),
                fail_words(&f),
            ),
            other => link_error(&other),
        })?;
    let role = after
        .iter()
        .find(|d| d.key_id == key_id)
        .map(|d| d.role.to_string())
        .unwrap_or_default();
    Ok(Json(DeviceResult {
        key_id,
        role,
        text: format!("key {key_id} revoked: the pump will not answer it again (read back)"),
    }))
}

/// A device in the pump's registry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    /// Key id.
    pub key_id: u32,
    /// Role.
    pub role: String,
    /// Revoked.
    pub revoked: bool,
    /// This server's programmer.
    pub this_server: bool,
}

/// The devices enrolled with the implant, as its registry lists them.
#[utoipa::path(get, path = "/api/v1/implants/{id}/devices", params(("id" = i64, Path, minimum = 1, description = "implant id")),
    tag = "programming",
    responses((status = 200, body = Vec<Device>), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn devices(
    State(st): State<AppState>,
    ext: Option<Extension<Arc<Station>>>,
    Id(implant_id): Id,
) -> ApiResult<Json<Vec<Device>>> {
    let station = station(ext)?;
    let (_, imp): (Row, Implant) = load(&st, Kind::Implant, implant_id).await?;
    let serial = imp.details.serial.clone();
    let s2 = station.clone();
    let (list, _) = blocking(move || s2.with(&serial, session::devices))
        .await?
        .map_err(|f| link_error(&f))?;
    let own = station.key_id();
    Ok(Json(
        list.iter()
            .map(|d| Device {
                key_id: d.key_id,
                role: d.role.to_string(),
                revoked: d.revoked,
                this_server: Some(d.key_id) == own,
            })
            .collect(),
    ))
}
