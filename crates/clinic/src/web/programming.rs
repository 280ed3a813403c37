//! The console's pages for programming a pump: the link with the pump (enrolment through
//! the wand's window), interrogation beside the clinic's record with every disagreement
//! named, the change chosen from the clinic's own prescription versions or refill
//! visits, old against new on the same screen as the send button with the digital twin's
//! look ahead of the change (its warnings acknowledged by name before sending), and what
//! the pump confirmed; patient-remote enrolment and revocation. Every step is the API's
//! ([`crate::api`]'s programming routes), called in-process with the user's session and
//! this server's programmer station.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::pages::{LookaheadPage, LookaheadRow, ProgrammingPage, SessionPage, SessionRow};
use super::{Answer, Page, Session, Web, check_csrf, message, render, see_other, when};
use crate::domain::records::{Prescription, RefillVisit};
use crate::programming::Station;
use crate::programming::forecast::{Acknowledgement, LookaheadView};
use crate::programming::record::{Session as ProgSession, Snapshot, status};
use crate::storage::Kind;

type StationExt = Option<Extension<Arc<Station>>>;

/// The routes of these pages.
pub(super) fn routes() -> Router<Web> {
    Router::new()
        .route("/implants/{id}/programming", get(pump_page))
        .route("/implants/{id}/programming/link", post(link))
        .route("/implants/{id}/programming/interrogate", post(interrogate))
        .route("/implants/{id}/programming/remote-open", post(remote_open))
        .route(
            "/implants/{id}/programming/remote-confirm",
            post(remote_confirm),
        )
        .route(
            "/implants/{id}/programming/remote-revoke",
            post(remote_revoke),
        )
        .route("/programming/{id}", get(session_page))
        .route("/programming/{id}/change", post(change))
        .route("/programming/{id}/send", post(send))
}

/// An API call with the user's session and the programmer station.
async fn call(
    w: &Web,
    station: &StationExt,
    method: Method,
    path: &str,
    s: &Session,
    body: Option<serde_json::Value>,
) -> Result<Answer, axum::response::Response> {
    let st = station.as_ref().map(|st| st.0.clone());
    w.call_with_station(method, path, Some(s), body, st).await
}

async fn get_json<T: DeserializeOwned>(
    w: &Web,
    station: &StationExt,
    s: &Session,
    path: &str,
) -> Result<T, axum::response::Response> {
    let a = call(w, station, Method::GET, path, s, None).await?;
    if a.status.is_success() {
        return a.json();
    }
    let (_, msg) = a.error();
    Err(message(s.ctx(), a.status, "Not available", &msg, "/today"))
}

fn snapshot_rows(s: &Snapshot) -> Vec<(String, String)> {
    let alarms = if s.alarms.is_empty() {
        "none".to_owned()
    } else {
        s.alarms
            .iter()
            .map(|a| {
                format!(
                    "{} ({} priority, {})",
                    a.kind,
                    a.priority,
                    if a.acknowledged {
                        "acknowledged"
                    } else {
                        "sounding"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    vec![
        ("Program version".into(), s.program_version.to_string()),
        ("Therapy".into(), s.mode.clone()),
        ("Reservoir".into(), s.reservoir.clone()),
        ("Drug".into(), s.contents.clone()),
        ("Program".into(), s.program_text.trim_end().to_owned()),
        ("Alarms".into(), alarms),
        (
            "Battery".into(),
            s.battery_days.map_or("not known".into(), |d| {
                format!("{d} days left at the present draw")
            }),
        ),
        (
            "Catheter".into(),
            s.catheter.clone().unwrap_or_else(|| "none recorded".into()),
        ),
        (
            "Next refill (pump)".into(),
            s.next_refill.map_or("not known".into(), |t| when(&t)),
        ),
        (
            "Pump clock".into(),
            if s.clock_set { "set" } else { "not set" }.into(),
        ),
    ]
}

#[derive(Deserialize)]
struct ProgrammingJson {
    link: LinkJson,
    runs: Option<Snapshot>,
    sessions: Vec<ListedJson>,
}

#[derive(Deserialize)]
struct LinkJson {
    enrolled: bool,
    address: Option<String>,
    key_id: Option<u32>,
}

#[derive(Deserialize)]
struct ListedJson {
    status: String,
    session: ProgSession,
}

/// Extra content of the pump page after a form.
#[derive(Default)]
struct Extra {
    error: Option<String>,
    invite: Option<(String, String)>,
    remote_message: Option<String>,
}

async fn render_pump(
    w: &Web,
    station: &StationExt,
    s: &Session,
    implant_id: i64,
    extra: Extra,
) -> Page {
    w.require(
        s,
        "GET",
        "/api/v1/implants/{id}/programming",
        "read a pump's programming",
    )?;
    let (imp, p) = w.implant_and_patient(s, implant_id).await?;
    let banner = w.banner(&p).await?;
    let prog: ProgrammingJson = get_json(
        w,
        station,
        s,
        &format!("/api/v1/implants/{implant_id}/programming"),
    )
    .await?;
    let page = ProgrammingPage {
        ctx: s.ctx_for(banner),
        implant_id,
        serial: imp.details.serial.clone(),
        enrolled: prog.link.enrolled,
        address: prog.link.address.unwrap_or_default(),
        key_id: prog.link.key_id.map(|k| k.to_string()).unwrap_or_default(),
        runs: prog.runs.as_ref().map(snapshot_rows),
        sessions: prog
            .sessions
            .iter()
            .map(|l| SessionRow {
                id: l.session.id,
                opened: when(&l.session.opened_at),
                by: l.session.opened_by.clone(),
                status: l.status.replace('_', " "),
                outcome: l.session.outcome.clone().unwrap_or_default(),
            })
            .collect(),
        error: extra.error,
        invite_expires: extra
            .invite
            .as_ref()
            .map(|i| i.1.clone())
            .unwrap_or_default(),
        invite: extra.invite.map(|i| i.0),
        remote_message: extra.remote_message,
    };
    Ok(render(StatusCode::OK, &page))
}

async fn pump_page(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Page {
    let s = w.session(&headers).await?;
    render_pump(&w, &station, &s, id, Extra::default()).await
}

async fn link(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let body = serde_json::json!({
        "address": form.get("address").cloned().unwrap_or_default(),
        "token": form.get("token").cloned().unwrap_or_default(),
    });
    let a = call(
        &w,
        &station,
        Method::POST,
        &format!("/api/v1/implants/{id}/link"),
        &s,
        Some(body),
    )
    .await?;
    if a.status.is_success() {
        return Ok(see_other(&format!("/implants/{id}/programming")));
    }
    let (field, msg) = a.error();
    let error = Some(match field {
        Some(f) => format!("{f}: {msg}"),
        None => msg,
    });
    render_pump(
        &w,
        &station,
        &s,
        id,
        Extra {
            error,
            ..Extra::default()
        },
    )
    .await
}

async fn interrogate(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    w.require(
        &s,
        "POST",
        "/api/v1/implants/{id}/interrogate",
        "interrogate a pump",
    )?;
    let a = call(
        &w,
        &station,
        Method::POST,
        &format!("/api/v1/implants/{id}/interrogate"),
        &s,
        None,
    )
    .await?;
    if a.status.is_success() {
        let v: ProgSession = a.json()?;
        return Ok(see_other(&format!("/programming/{}", v.id)));
    }
    let (_, msg) = a.error();
    render_pump(
        &w,
        &station,
        &s,
        id,
        Extra {
            error: Some(format!("The pump could not be interrogated: {msg}")),
            ..Extra::default()
        },
    )
    .await
}

async fn render_session(
    w: &Web,
    station: &StationExt,
    s: &Session,
    id: i64,
    error: Option<String>,
) -> Page {
    let l: ListedJson = get_json(w, station, s, &format!("/api/v1/programming/{id}")).await?;
    let ps = &l.session;
    let (imp, p) = w.implant_and_patient(s, ps.implant_id).await?;
    let banner = w.banner(&p).await?;
    let choose = matches!(l.status.as_str(), status::INTERROGATED | status::REVIEWED);
    let physician = s.role == crate::auth::Role::Physician;
    let mut prescriptions = Vec::new();
    let mut visits = Vec::new();
    if choose {
        if physician {
            let rxs: Vec<Prescription> = w.rows(Kind::Prescription, ps.implant_id).await?;
            for rx in rxs.iter().rev() {
                let Some(therapy) = crate::domain::change::rx_of(rx) else {
                    continue;
                };
                if therapy.contents == ps.before.program.contents
                    && !thecal_programmer::session::program_matches(&therapy, &ps.before.program)
                {
                    prescriptions.push((
                        rx.id,
                        format!(
                            "version {}: {} {}, {} ({})",
                            rx.version, rx.drug, rx.concentration, rx.daily_dose, rx.flow
                        ),
                    ));
                }
            }
        }
        let all: Vec<RefillVisit> = w.rows(Kind::Visit, ps.implant_id).await?;
        for v in all.iter().rev().filter(|v| v.fill.is_some()).take(3) {
            if let Some(f) = &v.fill {
                visits.push((
                    v.id,
                    format!(
                        "visit {} opened {}: add {} of {} (lot {})",
                        v.id,
                        when(&v.opened_at),
                        f.volume_added,
                        f.concentration,
                        f.lot
                    ),
                ));
            }
        }
    }
    let sendable = l.status == status::REVIEWED
        && (physician
            || !matches!(
                ps.intent,
                Some(crate::programming::record::Intent::Program { .. })
            ));
    let page = SessionPage {
        ctx: s.ctx_for(banner),
        id,
        implant_id: ps.implant_id,
        serial: imp.details.serial.clone(),
        status: l.status.replace('_', " "),
        outcome: ps.outcome.clone(),
        error,
        log_ok: ps.log.verified,
        log_message: ps.log.message.clone(),
        reconciled: ps.reconciled.clone(),
        disagreements: ps.disagreements.clone(),
        before: snapshot_rows(&ps.before),
        choose,
        prescriptions,
        visits,
        review: ps.review.clone(),
        sendable,
        confirmed: ps.confirmed.as_ref().map(snapshot_rows),
        lookahead: ps
            .lookahead
            .as_ref()
            .map(|l| lookahead_page(l, ps.acknowledged.as_ref())),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The look ahead in the page's words: a day per row, a drug per column.
fn lookahead_page(l: &LookaheadView, ack: Option<&Acknowledgement>) -> LookaheadPage {
    let mut drugs: Vec<String> = Vec::new();
    for d in &l.daily {
        for x in &d.doses {
            if !drugs.contains(&x.drug) {
                drugs.push(x.drug.clone());
            }
        }
    }
    let rows = l
        .daily
        .iter()
        .map(|d| LookaheadRow {
            day: d.day,
            date: d
                .starts
                .map_or_else(String::new, |t| t.format("%a %d %b").to_string()),
            cells: drugs
                .iter()
                .map(|drug| match d.doses.iter().find(|x| &x.drug == drug) {
                    Some(x) => {
                        let pct = x.percent.map_or(String::new(), |p| format!(" ({p} %)"));
                        let out = x.percent.is_some_and(|p| !(80..=120).contains(&p));
                        (format!("{} of {}{pct}", x.tip, x.prescribed), out)
                    }
                    None => ("none".to_owned(), false),
                })
                .collect(),
            reservoir: d.reservoir.clone(),
        })
        .collect();
    LookaheadPage {
        drugs,
        rows,
        next_refill: l.next_refill.map_or_else(
            || "not within reach of the forecast".to_owned(),
            |t| t.format("%Y-%m-%d").to_string(),
        ),
        warnings: l.warnings.clone(),
        alarms: l.alarms.clone(),
        needs_ack: l.needs_acknowledgement,
        acknowledged: ack.map(|a| {
            format!(
                "Acknowledged by {} at {}",
                a.by,
                a.at.format("%Y-%m-%d %H:%M UTC")
            )
        }),
        about: match &l.twin_model {
            Some(m) if l.unavailable.is_none() => format!(
                "The digital twin ({m}) ran the real pump core forward {} days from what the \
                 pump answered at interrogation, in {:.1} ms.",
                l.days,
                l.took_us as f64 / 1000.0
            ),
            _ => "No forecast could be made.".to_owned(),
        },
    }
}

async fn session_page(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Page {
    let s = w.session(&headers).await?;
    w.require(
        &s,
        "GET",
        "/api/v1/programming/{id}",
        "read a programming session",
    )?;
    render_session(&w, &station, &s, id, None).await
}

async fn change(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let num = |k: &str| form.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let body = serde_json::json!({
        "prescription_id": num("prescription_id"),
        "visit_id": num("visit_id"),
        "bridge": form.get("bridge"),
        "confirm": form.get("confirm"),
    });
    let a = call(
        &w,
        &station,
        Method::POST,
        &format!("/api/v1/programming/{id}/change"),
        &s,
        Some(body),
    )
    .await?;
    if a.status.is_success() {
        return Ok(see_other(&format!("/programming/{id}")));
    }
    let (_, msg) = a.error();
    render_session(&w, &station, &s, id, Some(msg)).await
}

async fn send(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    if form.get("acknowledge").map(String::as_str) == Some("yes") {
        let a = call(
            &w,
            &station,
            Method::POST,
            &format!("/api/v1/programming/{id}/acknowledge"),
            &s,
            None,
        )
        .await?;
        if !a.status.is_success() {
            let (_, msg) = a.error();
            return render_session(&w, &station, &s, id, Some(msg)).await;
        }
    }
    let a = call(
        &w,
        &station,
        Method::POST,
        &format!("/api/v1/programming/{id}/send"),
        &s,
        None,
    )
    .await?;
    if a.status.is_success() {
        return Ok(see_other(&format!("/programming/{id}")));
    }
    let (_, msg) = a.error();
    render_session(&w, &station, &s, id, Some(msg)).await
}

#[derive(Deserialize)]
struct InviteJson {
    invite: serde_json::Value,
    expires: String,
}

async fn remote_open(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let a = call(
        &w,
        &station,
        Method::POST,
        &format!("/api/v1/implants/{id}/remotes"),
        &s,
        Some(serde_json::json!({"role": form.get("role").cloned().unwrap_or_default()})),
    )
    .await?;
    let extra = if a.status.is_success() {
        let i: InviteJson = a.json()?;
        Extra {
            invite: Some((
                serde_json::to_string_pretty(&i.invite).unwrap_or_default(),
                i.expires,
            )),
            ..Extra::default()
        }
    } else {
        Extra {
            error: Some(a.error().1),
            ..Extra::default()
        }
    };
    render_pump(&w, &station, &s, id, extra).await
}

#[derive(Deserialize)]
struct DeviceJson {
    text: String,
}

async fn remote_action(
    w: &Web,
    station: &StationExt,
    s: &Session,
    id: i64,
    path: &str,
    body: serde_json::Value,
) -> Page {
    let a = call(w, station, Method::POST, path, s, Some(body)).await?;
    let extra = if a.status.is_success() {
        let d: DeviceJson = a.json()?;
        Extra {
            remote_message: Some(d.text),
            ..Extra::default()
        }
    } else {
        Extra {
            error: Some(a.error().1),
            ..Extra::default()
        }
    };
    render_pump(w, station, s, id, extra).await
}

async fn remote_confirm(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let body =
        serde_json::json!({"fingerprint": form.get("fingerprint").cloned().unwrap_or_default()});
    remote_action(
        &w,
        &station,
        &s,
        id,
        &format!("/api/v1/implants/{id}/remotes/confirm"),
        body,
    )
    .await
}

async fn remote_revoke(
    State(w): State<Web>,
    station: StationExt,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Page {
    let s = w.session(&headers).await?;
    check_csrf(&s, &form)?;
    let Some(key_id) = form
        .get("key_id")
        .and_then(|k| k.trim().parse::<u32>().ok())
    else {
        return render_pump(
            &w,
            &station,
            &s,
            id,
            Extra {
                error: Some("key_id: must be the device's key id, a whole number".into()),
                ..Extra::default()
            },
        )
        .await;
    };
    remote_action(
        &w,
        &station,
        &s,
        id,
        &format!("/api/v1/implants/{id}/remotes/revoke"),
        serde_json::json!({"key_id": key_id}),
    )
    .await
}
