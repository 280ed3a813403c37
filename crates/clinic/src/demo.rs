//! `thecal serve --demo`: a fresh clinic with synthetic patients, made by driving the real
//! API (every rule and check applies) along a timeline with the clock set back: a
//! spasticity patient whose refill is overdue, a cancer-pain patient titrated over three
//! prescription versions whose pump nears ERI, a patient after a positive trial, a refill
//! visit left open with a flagged reconciliation, and a refill due this week.
//!
//! The histories are scripted here, not yet produced by the digital twin (thecal-sim).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{AppState, Config, router};
use crate::auth::{self, Role};
use crate::storage::Storage;

/// The demo accounts' password.
pub const DEMO_PASSWORD: &str = "thecal-demo-password";

struct Driver {
    app: axum::Router,
    clock: Arc<Mutex<DateTime<Utc>>>,
    session: Option<(String, String)>,
}

impl Driver {
    fn at(&self, t: DateTime<Utc>) {
        if let Ok(mut c) = self.clock.lock() {
            *c = t;
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some((token, csrf)) = &self.session {
            req = req
                .header(header::COOKIE, format!("{}={token}", auth::COOKIE))
                .header(auth::CSRF_HEADER, csrf.as_str());
        }
        let req = req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let cookie = resp
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .and_then(|c| c.split_once('='))
            .map(|(_, v)| v.to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("demo: {method} {path}: {status} {v}"));
        }
        if let (Some(token), Some(csrf)) = (cookie, v.get("csrf_token").and_then(Value::as_str)) {
            return Ok(json!({"token": token, "csrf": csrf}));
        }
        Ok(v)
    }

    async fn login(&mut self, user: &str) -> Result<(), String> {
        self.session = None;
        let s = self
            .call(
                "POST",
                "/api/v1/session",
                Some(json!({"username": user, "password": DEMO_PASSWORD})),
            )
            .await?;
        self.session = Some((
            s["token"].as_str().unwrap_or_default().to_owned(),
            s["csrf"].as_str().unwrap_or_default().to_owned(),
        ));
        Ok(())
    }
}

fn id(v: &Value) -> Result<i64, String> {
    v["id"]
        .as_i64()
        .ok_or_else(|| format!("demo: no id in {v}"))
}

fn implant(serial: &str, reservoir: &str, implanted_on: &str, eri: Option<&str>) -> Value {
    json!({"pump_model": "SynchroMed II 8637", "serial": serial, "reservoir": reservoir,
           "implanted_on": implanted_on, "pocket": "subfascial", "catheter_model": "8709SC",
           "catheter_length_cm": 58, "tip_level": "T10", "accuracy_margin_permille": 145,
           "low_alarm": "2 mL", "eri_projected": eri})
}

fn rx(drug: &str, conc: &str, dose: &str, volume: &str, why: &str) -> Value {
    json!({"drug": drug, "concentration": conc, "daily_dose": dose, "reservoir_volume": volume,
           "reason": why, "confirm_soft_findings": "demo: agreed at the multidisciplinary meeting"})
}

/// Fills an empty store with the demo clinic as of `now`; returns the logins (user, role).
///
/// # Errors
/// Any step the API refuses (a defect in the demo script).
pub async fn seed(
    store: Arc<dyn Storage>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, String> {
    let hash = auth::hash_password(DEMO_PASSWORD)?;
    let mut logins = vec![];
    for (user, role) in [
        ("dr.demo", Role::Physician),
        ("rn.demo", Role::Nurse),
        ("rph.demo", Role::Pharmacist),
        ("audit.demo", Role::Auditor),
        ("admin.demo", Role::Administrator),
    ] {
        store
            .create_user(None, user, &hash, role.as_str(), now.timestamp_millis())
            .await
            .map_err(|e| e.to_string())?;
        logins.push((user.to_owned(), role.as_str().to_owned()));
    }
    let clock = Arc::new(Mutex::new(now));
    let c = clock.clone();
    let state = AppState {
        store,
        config: Config::default(),
        now: Arc::new(move || c.lock().map(|t| *t).unwrap_or_else(|_| Utc::now())),
    };
    let mut d = Driver {
        app: router(state),
        clock,
        session: None,
    };
    let day = |n: i64| now - TimeDelta::days(n);
    let date = |n: i64| day(n).date_naive().to_string();

    // Ada: spinal spasticity, baclofen; refilled every 90 days, last 160 days ago: overdue.
    d.at(day(400));
    d.login("dr.demo").await?;
    let ada = id(&d.call("POST", "/api/v1/patients", Some(json!({"mrn": "DEMO-001", "name": "Ada Demo",
        "date_of_birth": "1978-04-02", "condition": {"kind": "spasticity", "origin": "spinal"}, "weight_kg": 64}))).await?)?;
    let ada_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{ada}/implants"),
            Some(implant(
                "DEMO-NGP-001",
                "20 mL",
                &date(400),
                Some(&date(-1500)),
            )),
        )
        .await?)?;
    d.call(
        "POST",
        &format!("/api/v1/implants/{ada_imp}/prescriptions"),
        Some(rx(
            "baclofen",
            "2000 mcg/mL",
            "200 mcg/day",
            "20 mL",
            "start: twice the screening dose",
        )),
    )
    .await?;
    d.at(day(395));
    d.login("dr.demo").await?;
    d.call(
        "POST",
        &format!("/api/v1/implants/{ada_imp}/prescriptions"),
        Some(rx(
            "baclofen",
            "2000 mcg/mL",
            "220 mcg/day",
            "20 mL",
            "titration +10 %",
        )),
    )
    .await?;
    for when in [340, 250, 160] {
        d.at(day(when));
        d.login("rn.demo").await?;
        refill(&mut d, ada_imp, None, "19 mL", "2000 mcg/mL", None).await?;
    }

    // Ben: cancer pain, morphine titrated over three versions; the pump nears ERI.
    d.at(day(200));
    d.login("dr.demo").await?;
    let ben = id(&d.call("POST", "/api/v1/patients", Some(json!({"mrn": "DEMO-002", "name": "Ben Demo",
        "date_of_birth": "1951-11-20", "condition": {"kind": "pain", "type": "cancer"}, "weight_kg": 71,
        "allergies": "none known"}))).await?)?;
    let ben_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{ben}/implants"),
            Some(implant(
                "DEMO-NGP-002",
                "40 mL",
                &date(200),
                Some(&date(-40)),
            )),
        )
        .await?)?;
    for (when, dose, why) in [
        (200, "1 mg/day", "start"),
        (190, "1.2 mg/day", "pain 7/10"),
        (160, "1.4 mg/day", "pain 6/10"),
    ] {
        d.at(day(when));
        d.login("dr.demo").await?;
        d.call(
            "POST",
            &format!("/api/v1/implants/{ben_imp}/prescriptions"),
            Some(rx("morphine", "10 mg/mL", dose, "40 mL", why)),
        )
        .await?;
    }
    d.at(day(40));
    d.login("rn.demo").await?;
    refill(&mut d, ben_imp, None, "39 mL", "10 mg/mL", None).await?;

    // Cleo: screened, trialled (NRS 8 → 3), implant recommended.
    d.at(day(20));
    d.login("dr.demo").await?;
    let cleo = id(&d
        .call(
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "DEMO-003", "name": "Cleo Demo",
        "date_of_birth": "1969-07-14", "condition": {"kind": "pain", "type": "non_cancer"}})),
        )
        .await?)?;
    for s in ["screening", "trial"] {
        d.call(
            "POST",
            &format!("/api/v1/patients/{cleo}/state"),
            Some(json!({"state": s})),
        )
        .await?;
    }
    let trial = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{cleo}/trials"),
            Some(json!({"drug": "morphine",
        "route": "lumbar_puncture", "doses": ["150 mcg"], "scale": "nrs", "baseline": 8, "post": 3,
        "observed_hours": 24, "observations": "no respiratory depression; walked 400 m"})),
        )
        .await?)?;
    d.call(
        "POST",
        &format!("/api/v1/trials/{trial}/decision"),
        Some(json!({"implant": true, "note": "shared decision"})),
    )
    .await?;
    d.call(
        "POST",
        &format!("/api/v1/patients/{cleo}/state"),
        Some(json!({"state": "positive"})),
    )
    .await?;

    // Dan: a refill visit open today with a flagged reconciliation.
    d.at(day(100));
    d.login("dr.demo").await?;
    let dan = id(&d
        .call(
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "DEMO-004", "name": "Dan Demo",
        "date_of_birth": "1990-02-28", "condition": {"kind": "spasticity", "origin": "cerebral"}})),
        )
        .await?)?;
    let dan_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{dan}/implants"),
            Some(implant(
                "DEMO-NGP-004",
                "20 mL",
                &date(100),
                Some(&date(-2000)),
            )),
        )
        .await?)?;
    d.call(
        "POST",
        &format!("/api/v1/implants/{dan_imp}/prescriptions"),
        Some(rx("baclofen", "500 mcg/mL", "50 mcg/day", "20 mL", "start")),
    )
    .await?;
    d.at(now - TimeDelta::hours(1));
    d.login("rn.demo").await?;
    let v = d
        .call("POST", &format!("/api/v1/implants/{dan_imp}/visits"), None)
        .await?;
    let vid = id(&v)?;
    d.call(
        "POST",
        &format!("/api/v1/visits/{vid}/aspirate"),
        Some(json!({"aspirated": "7 mL"})),
    )
    .await?;

    // Eve: refilled 95 days ago, due this week.
    d.at(day(200));
    d.login("dr.demo").await?;
    let eve = id(&d
        .call(
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "DEMO-005", "name": "Eve Demo",
        "date_of_birth": "1983-09-09", "condition": {"kind": "spasticity", "origin": "spinal"}})),
        )
        .await?)?;
    let eve_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{eve}/implants"),
            Some(implant(
                "DEMO-NGP-005",
                "20 mL",
                &date(200),
                Some(&date(-900)),
            )),
        )
        .await?)?;
    d.call(
        "POST",
        &format!("/api/v1/implants/{eve_imp}/prescriptions"),
        Some(rx(
            "baclofen",
            "2000 mcg/mL",
            "300 mcg/day",
            "20 mL",
            "start",
        )),
    )
    .await?;
    d.at(day(95));
    d.login("rn.demo").await?;
    refill(&mut d, eve_imp, None, "19 mL", "2000 mcg/mL", None).await?;
    d.at(now);
    Ok(logins)
}

/// One complete refill visit at the driver's time; `aspirated` defaults to the expected
/// residual.
async fn refill(
    d: &mut Driver,
    implant: i64,
    aspirated: Option<&str>,
    added: &str,
    conc: &str,
    outcome: Option<&str>,
) -> Result<(), String> {
    let v = d
        .call("POST", &format!("/api/v1/implants/{implant}/visits"), None)
        .await?;
    let vid = id(&v)?;
    let expected =
        thecal_rx::Volume::from_raw(v["expected_residual_nl"].as_u64().unwrap_or(0)).to_string();
    d.call(
        "POST",
        &format!("/api/v1/visits/{vid}/aspirate"),
        Some(json!({"aspirated": aspirated.unwrap_or(&expected)})),
    )
    .await?;
    if let Some(o) = outcome {
        d.call(
            "POST",
            &format!("/api/v1/visits/{vid}/investigation"),
            Some(json!({"outcome": o})),
        )
        .await?;
    }
    let expiry = (v["opened_at"].as_str().unwrap_or("2030-01-01")[..4]
        .parse::<i32>()
        .unwrap_or(2030)
        + 1)
    .to_string();
    d.call("POST", &format!("/api/v1/visits/{vid}/fill"), Some(json!({"volume_added": added,
        "concentration": conc, "lot": format!("LOT-{vid:04}"), "expiry": format!("{expiry}-12-31")}))).await?;
    d.call("POST", &format!("/api/v1/visits/{vid}/close"), None)
        .await?;
    Ok(())
}
