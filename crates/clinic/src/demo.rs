//! `thecal serve --demo`: a fresh clinic with synthetic patients, made by driving the real
//! API (every rule and check applies) along a timeline with the clock set back: a
//! spasticity patient whose refill is overdue, a cancer-pain patient titrated over three
//! prescription versions whose pump nears ERI, a patient after a positive trial, a refill
//! visit left open with a flagged reconciliation, and a refill due this week.
//!
//! The pumps' histories come from the digital twin: each implanted patient's pump is run
//! by thecal-sim (the real pump core against models of the mechanism, battery, catheter
//! and patient) from its implant date to today, and the clinic records what the twin
//! lived: the residual aspirated at each refill is the twin's true reservoir read to
//! 0.1 mL (so the reconciliation is thecal-rx's verdict on a real discrepancy), dose
//! changes are the titrations the twin's core was sent, alarms are the ones it raised,
//! and the projected ERI is the twin's battery projection. Dan's catheter is half
//! occluded in the twin, so his reconciliation is flagged.

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

/// A pump's life in the digital twin: `days` from the implant to today.
struct Twin {
    run: thecal_sim::result::RunResult,
    /// The twin pump's whole event log, set-up included, with its chain head.
    log: thecal_sim::result::PumpLog,
}

/// The twin's scenario (thecal-sim's TOML format).
struct TwinSpec<'a> {
    name: &'a str,
    days: i64,
    device: &'a str,
    battery: Option<&'a str>,
    condition: &'a str,
    drug: &'a str,
    concentration: &'a str,
    rate: &'a str,
    fill: &'a str,
    /// `[[event]]` tables.
    events: &'a str,
}

impl Twin {
    fn run(spec: &TwinSpec<'_>) -> Result<Twin, String> {
        let battery = spec
            .battery
            .map(|b| format!("battery = \"{b}\"\n"))
            .unwrap_or_default();
        let toml = format!(
            "name = \"{name}\"\ndescription = \"demo clinic: {name}\"\nduration = \"{days} d\"\n\
             fill = \"{fill}\"\nsample_every = \"1 h\"\n\n[device]\nmodel = \"{device}\"\n{battery}\n\
             [patient]\ncondition = \"{condition}\"\n\n[prescription]\n\
             drug = [{{ name = \"{drug}\", concentration = \"{conc}\" }}]\n\
             basal = {{ rate = \"{rate}\" }}\n\n{events}",
            name = spec.name,
            days = spec.days,
            fill = spec.fill,
            device = spec.device,
            condition = spec.condition,
            drug = spec.drug,
            conc = spec.concentration,
            rate = spec.rate,
            events = spec.events,
        );
        let sc = thecal_sim::scenario::parse(&toml)
            .map_err(|e| format!("demo: twin {}: {e}", spec.name))?;
        let (run, log) = thecal_sim::engine::Engine::new(&sc).run_logged();
        Ok(Twin { run, log })
    }

    /// The twin's true reservoir just before `day`, read to 0.1 mL as from a syringe.
    fn residual_before(&self, day: i64) -> Result<String, String> {
        let t_h = day as f64 * 24.0;
        let s = self
            .run
            .samples
            .iter()
            .rfind(|s| s.t_h < t_h)
            .ok_or_else(|| format!("demo: the twin has no sample before day {day}"))?;
        let tenths = (s.reservoir_ml.max(0.0) * 10.0).round() as u64;
        Ok(format!("{}.{} mL", tenths / 10, tenths % 10))
    }

    /// The dose changes the twin's core was sent: (day, dose).
    fn titrations(&self) -> Vec<(f64, String)> {
        self.run
            .notes
            .iter()
            .filter_map(|n| {
                let rest = n.text.strip_prefix("titrate to ")?;
                let (dose, _) = rest.split_once(" (")?;
                Some((n.t_h / 24.0, dose.to_owned()))
            })
            .collect()
    }

    /// The alarms the twin's core raised (from its log: not the repeated tones, not the
    /// clearings):
    /// (hours after implant, kind, priority).
    fn alarms(&self) -> Vec<(f64, String, &'static str)> {
        self.run
            .alarms
            .iter()
            .filter(|a| a.what == "raised")
            .map(|a| {
                let p = if a.priority == "High" { "high" } else { "low" };
                (a.t_h, a.kind.clone(), p)
            })
            .collect()
    }

    /// The pump's event log as `thecal programmer logs --json` prints it, every entry from
    /// the implant's set-up on, timed from `start` (the implant).
    fn log_export(&self, start: DateTime<Utc>) -> Value {
        let entries: Vec<Value> = self
            .log
            .entries
            .iter()
            .map(|(t_ms, e)| {
                let at = start + TimeDelta::milliseconds(i64::try_from(*t_ms).unwrap_or(0));
                json!({"seq": e.seq, "at_ms": e.at.ms(), "at": at.to_rfc3339(),
                       "event": e.event, "hash": crate::domain::pumplog::hex(&e.hash)})
            })
            .collect();
        json!({"entries": entries, "head": {"seq": self.log.head.next_seq(),
               "hash": crate::domain::pumplog::hex(&self.log.head.last_hash())}})
    }

    /// The projected ERI, days after the implant.
    fn eri_day(&self) -> Option<i64> {
        self.run.totals.projected_eri_day.map(|d| d.floor() as i64)
    }
}

/// The battery of Ben's twin pump: small, so that its projected ERI falls within months.
const BEN_BATTERY: &str = "3500 J";

/// Records each titration the twin's core was sent as a prescription version, at its
/// time (the clinic's checks apply).
#[allow(clippy::too_many_arguments)]
async fn prescribe_titrations(
    d: &mut Driver,
    twin: &Twin,
    start: DateTime<Utc>,
    implant: i64,
    drug: &str,
    conc: &str,
    volume: &str,
) -> Result<(), String> {
    for (day, dose) in twin.titrations() {
        d.at(start + TimeDelta::seconds((day * 86_400.0) as i64));
        d.login("dr.demo").await?;
        d.call(
            "POST",
            &format!("/api/v1/implants/{implant}/prescriptions"),
            Some(rx(drug, conc, &dose, volume, "titration")),
        )
        .await?;
    }
    Ok(())
}

/// Imports the twin pump's whole event log into the implant's record, as a programmer
/// would upload it (the clinic verifies the hash chain to the pump's head).
async fn import_log(
    d: &Driver,
    implant: i64,
    twin: &Twin,
    start: DateTime<Utc>,
) -> Result<(), String> {
    let r = d
        .call(
            "POST",
            &format!("/api/v1/implants/{implant}/log"),
            Some(twin.log_export(start)),
        )
        .await?;
    if r["added"].as_u64() != Some(twin.log.entries.len() as u64) {
        return Err(format!(
            "demo: implant {implant}: the twin's {} log entries were not all imported: {r}",
            twin.log.entries.len()
        ));
    }
    Ok(())
}

/// Records the twin's alarms on an implant (at the driver's current time).
async fn record_alarms(
    d: &Driver,
    implant: i64,
    twin: &Twin,
    start: DateTime<Utc>,
) -> Result<(), String> {
    for (t_h, kind, priority) in twin.alarms() {
        let at = start + TimeDelta::seconds((t_h * 3600.0) as i64);
        d.call(
            "POST",
            &format!("/api/v1/implants/{implant}/alarms"),
            Some(json!({"kind": kind, "priority": priority, "raised_at": at,
                        "action": "from the pump's interrogation"})),
        )
        .await?;
    }
    Ok(())
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

    // Ada: spinal spasticity, baclofen, implanted 400 days ago, titrated +10 % on day 5,
    // refilled on days 60, 150 and 240; the twin's pump has since run low: overdue.
    let start = day(400);
    let twin = Twin::run(&TwinSpec {
        name: "ada",
        days: 400,
        device: "synchromed-20",
        battery: None,
        condition: "spasticity",
        drug: "baclofen",
        concentration: "2000 mcg/mL",
        rate: "0.1 mL/day",
        fill: "20 mL",
        events: "[[event]]\nat = \"5 d\"\nkind = \"titrate\"\ndose = \"220 mcg/day\"\n\n\
                 [[event]]\nat = \"60 d\"\nkind = \"refill\"\nvolume = \"19 mL\"\n\
                 repeat_every = \"90 d\"\nrepeat = 2\n",
    })?;
    d.at(start);
    d.login("dr.demo").await?;
    let ada = id(&d.call("POST", "/api/v1/patients", Some(json!({"mrn": "DEMO-001", "name": "Ada Demo",
        "date_of_birth": "1978-04-02", "condition": {"kind": "spasticity", "origin": "spinal"}, "weight_kg": 64}))).await?)?;
    let ada_eri = twin.eri_day().map(|e| date(400 - e));
    let ada_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{ada}/implants"),
            Some(implant(
                "DEMO-NGP-001",
                "20 mL",
                &date(400),
                ada_eri.as_deref(),
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
    prescribe_titrations(
        &mut d,
        &twin,
        start,
        ada_imp,
        "baclofen",
        "2000 mcg/mL",
        "20 mL",
    )
    .await?;
    for refill_day in [60, 150, 240] {
        d.at(start + TimeDelta::days(refill_day));
        d.login("rn.demo").await?;
        let residual = twin.residual_before(refill_day)?;
        refill(&mut d, ada_imp, Some(&residual), "19 mL", "2000 mcg/mL").await?;
    }
    d.at(now);
    d.login("rn.demo").await?;
    record_alarms(&d, ada_imp, &twin, start).await?;
    import_log(&d, ada_imp, &twin, start).await?;

    // Ben: cancer pain, morphine titrated over three versions (days 10 and 40 in the
    // twin), refilled on day 160; a small battery: the twin projects ERI soon.
    let start = day(200);
    let twin = Twin::run(&TwinSpec {
        name: "ben",
        days: 200,
        device: "synchromed-40",
        battery: Some(BEN_BATTERY),
        condition: "pain",
        drug: "morphine",
        concentration: "10 mg/mL",
        rate: "0.1 mL/day",
        fill: "40 mL",
        events: "[[event]]\nat = \"10 d\"\nkind = \"titrate\"\ndose = \"1.2 mg/day\"\n\n\
                 [[event]]\nat = \"40 d\"\nkind = \"titrate\"\ndose = \"1.4 mg/day\"\n\n\
                 [[event]]\nat = \"160 d\"\nkind = \"refill\"\nvolume = \"39 mL\"\n",
    })?;
    d.at(start);
    d.login("dr.demo").await?;
    let ben = id(&d.call("POST", "/api/v1/patients", Some(json!({"mrn": "DEMO-002", "name": "Ben Demo",
        "date_of_birth": "1951-11-20", "condition": {"kind": "pain", "type": "cancer"}, "weight_kg": 71,
        "allergies": "none known"}))).await?)?;
    let ben_eri = twin.eri_day().map(|e| date(200 - e));
    let ben_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{ben}/implants"),
            Some(implant(
                "DEMO-NGP-002",
                "40 mL",
                &date(200),
                ben_eri.as_deref(),
            )),
        )
        .await?)?;
    d.call(
        "POST",
        &format!("/api/v1/implants/{ben_imp}/prescriptions"),
        Some(rx("morphine", "10 mg/mL", "1 mg/day", "40 mL", "start")),
    )
    .await?;
    prescribe_titrations(
        &mut d, &twin, start, ben_imp, "morphine", "10 mg/mL", "40 mL",
    )
    .await?;
    d.at(start + TimeDelta::days(160));
    d.login("rn.demo").await?;
    let residual = twin.residual_before(160)?;
    refill(&mut d, ben_imp, Some(&residual), "39 mL", "10 mg/mL").await?;
    d.at(now);
    d.login("rn.demo").await?;
    record_alarms(&d, ben_imp, &twin, start).await?;
    import_log(&d, ben_imp, &twin, start).await?;

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

    // Dan: cerebral spasticity, implanted 100 days ago; in the twin his catheter is half
    // occluded from day 30, so today's aspirate finds far more than expected: the visit is
    // left open with the flagged reconciliation.
    let start = day(100);
    let twin = Twin::run(&TwinSpec {
        name: "dan",
        days: 100,
        device: "synchromed-20",
        battery: None,
        condition: "spasticity",
        drug: "baclofen",
        concentration: "500 mcg/mL",
        rate: "0.1 mL/day",
        fill: "20 mL",
        events: "[[event]]\nat = \"30 d\"\nkind = \"occlusion\"\nfraction = 0.5\n",
    })?;
    d.at(start);
    d.login("dr.demo").await?;
    let dan = id(&d
        .call(
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "DEMO-004", "name": "Dan Demo",
        "date_of_birth": "1990-02-28", "condition": {"kind": "spasticity", "origin": "cerebral"}})),
        )
        .await?)?;
    let dan_eri = twin.eri_day().map(|e| date(100 - e));
    let dan_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{dan}/implants"),
            Some(implant(
                "DEMO-NGP-004",
                "20 mL",
                &date(100),
                dan_eri.as_deref(),
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
    record_alarms(&d, dan_imp, &twin, start).await?;
    import_log(&d, dan_imp, &twin, start).await?;
    let v = d
        .call("POST", &format!("/api/v1/implants/{dan_imp}/visits"), None)
        .await?;
    let vid = id(&v)?;
    let residual = twin.residual_before(100)?;
    d.call(
        "POST",
        &format!("/api/v1/visits/{vid}/aspirate"),
        Some(json!({ "aspirated": residual })),
    )
    .await?;

    // Eve: spinal spasticity, implanted 200 days ago, refilled on day 105 (95 days ago):
    // due this week.
    let start = day(200);
    let twin = Twin::run(&TwinSpec {
        name: "eve",
        days: 200,
        device: "synchromed-20",
        battery: None,
        condition: "spasticity",
        drug: "baclofen",
        concentration: "2000 mcg/mL",
        rate: "0.15 mL/day",
        fill: "20 mL",
        events: "[[event]]\nat = \"105 d\"\nkind = \"refill\"\nvolume = \"19 mL\"\n",
    })?;
    d.at(start);
    d.login("dr.demo").await?;
    let eve = id(&d
        .call(
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "DEMO-005", "name": "Eve Demo",
        "date_of_birth": "1983-09-09", "condition": {"kind": "spasticity", "origin": "spinal"}})),
        )
        .await?)?;
    let eve_eri = twin.eri_day().map(|e| date(200 - e));
    let eve_imp = id(&d
        .call(
            "POST",
            &format!("/api/v1/patients/{eve}/implants"),
            Some(implant(
                "DEMO-NGP-005",
                "20 mL",
                &date(200),
                eve_eri.as_deref(),
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
    d.at(start + TimeDelta::days(105));
    d.login("rn.demo").await?;
    let residual = twin.residual_before(105)?;
    refill(&mut d, eve_imp, Some(&residual), "19 mL", "2000 mcg/mL").await?;
    d.at(now);
    d.login("rn.demo").await?;
    record_alarms(&d, eve_imp, &twin, start).await?;
    import_log(&d, eve_imp, &twin, start).await?;
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
) -> Result<(), String> {
    let v = d
        .call("POST", &format!("/api/v1/implants/{implant}/visits"), None)
        .await?;
    let vid = id(&v)?;
    let expected =
        thecal_rx::Volume::from_raw(v["expected_residual_nl"].as_u64().unwrap_or(0)).to_string();
    let after = d
        .call(
            "POST",
            &format!("/api/v1/visits/{vid}/aspirate"),
            Some(json!({"aspirated": aspirated.unwrap_or(&expected)})),
        )
        .await?;
    if after["flagged"] == json!(true) {
        return Err(format!(
            "demo: the twin's residual at visit {vid} was flagged: {after}; adjust the script"
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use thecal_sim::result::{AlarmMark, RunResult, Totals};

    #[test]
    fn only_raised_alarms_are_recorded_from_the_twin_clinic_067() {
        let mark = |t_h: f64, kind: &str, priority: &str, what: &str| AlarmMark {
            t_h,
            kind: kind.into(),
            priority: priority.into(),
            what: what.into(),
        };
        let twin = Twin {
            run: RunResult {
                scenario: "t".into(),
                description: "t".into(),
                duration_h: 48.0,
                samples: vec![],
                alarms: vec![
                    mark(10.0, "LowReservoir", "Medium", "raised"),
                    mark(10.0, "LowReservoir", "Medium", "tone"),
                    mark(20.0, "LowReservoir", "Medium", "cleared"),
                    mark(30.0, "EndOfService", "High", "raised"),
                ],
                notes: vec![],
                totals: Totals::default(),
                verdicts: vec![],
                radio: None,
            },
            log: thecal_sim::result::PumpLog::default(),
        };
        let got: Vec<(f64, String, &str)> = twin.alarms();
        assert_eq!(
            got,
            vec![
                (10.0, "LowReservoir".to_owned(), "low"),
                (30.0, "EndOfService".to_owned(), "high"),
            ]
        );
    }
}
