//! Programming the implant from the clinic, against virtual implants (the real pump core
//! and link on loopback threads): interrogation beside the record, review, send, read
//! back, the record of what the implant confirmed; an unfinished session at every step
//! reconciled at the next interrogation; the event log imported with its chain verified
//! (a forged entry raises an alarm); patient-remote enrolment and revocation. On SQLite
//! and PostgreSQL.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::http::StatusCode;
use common::clinic::{Clinic, User};
use common::{Backend, random_hex};
use serde_json::{Value, json};
use thecal_clinic::auth::Role;
use thecal_clinic::programming::{Station, Step, put_in_service};
use thecal_programmer::implant::{self, Running, Voice};

/// A clinic with a programmer station and one patient whose pump runs as a virtual
/// implant, enrolled with the station through the wand's window and put in service with
/// the clinic's prescription.
struct Bench {
    c: Clinic,
    station: Arc<Station>,
    implant: Arc<Mutex<Option<Running>>>,
    state: PathBuf,
    addr: String,
    iid: i64,
    nurse: User,
    doctor: User,
}

fn baclofen(dose: &str) -> Value {
    json!({"drug": "baclofen", "concentration": "2000 mcg/mL", "daily_dose": dose,
           "reservoir_volume": "20 mL", "reason": "dose change",
           "confirm_soft_findings": "titration agreed with the patient"})
}

impl Bench {
    async fn new(b: Backend) -> Option<Bench> {
        implant::set_voice(Voice::Silent);
        let mut c = Clinic::new(b).await?;
        let dir = std::env::temp_dir().join(format!("thecal-prog-{}", random_hex(6)));
        let station = Arc::new(
            Station::open(&dir.join("programmer"))
                .unwrap()
                .with_timeout(Duration::from_millis(300)),
        );
        c.app = c.app.clone().layer(Extension(station.clone()));
        let doctor = c.login(Role::Physician).await;
        let nurse = c.login(Role::Nurse).await;
        let (s, v) = c
            .call(
                Some(&doctor),
                "POST",
                "/api/v1/patients",
                Some(
                    json!({"mrn": "M1", "name": "Ada Pump", "date_of_birth": "1970-05-01",
                    "condition": {"kind": "spasticity", "origin": "spinal"}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let pid = v["id"].as_i64().unwrap();
        let (s, v) = c
            .call(
                Some(&doctor),
                "POST",
                &format!("/api/v1/patients/{pid}/implants"),
                Some(
                    json!({"pump_model": "SynchroMed II 8637-20", "serial": "NGP1",
                    "reservoir": "20 mL", "implanted_on": "2026-01-09", "pocket": "subfascial",
                    "catheter_model": "8709SC", "catheter_length_cm": 45, "tip_level": "T10",
                    "accuracy_margin_permille": 145, "low_alarm": "2 mL"}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let iid = v["id"].as_i64().unwrap();
        let (s, rx) = c
            .call(
                Some(&doctor),
                "POST",
                &format!("/api/v1/implants/{iid}/prescriptions"),
                Some(baclofen("200 mcg/day")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{rx}");
        // The pump: a virtual implant on a thread; the wand's window; enrolment.
        let state = dir.join("pump");
        let running = implant::spawn(implant::Config::new(&state), "127.0.0.1:0").unwrap();
        let addr = running.addr.to_string();
        let (token, _) = implant::wand(&state, Duration::from_secs(5), true).unwrap();
        let token = std::fs::read_to_string(token).unwrap();
        let (s, v) = c
            .call(
                Some(&nurse),
                "POST",
                &format!("/api/v1/implants/{iid}/link"),
                Some(json!({"address": addr, "token": token})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["enrolled"], true);
        // The key file is private and its secret never in an answer.
        let key_path = dir.join("programmer/programmer.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key_path).unwrap().permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600);
        let secret: Value =
            serde_json::from_str(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
        assert!(!v.to_string().contains(secret["secret"].as_str().unwrap()));
        let program: thecal_rx::check::Prescription =
            serde_json::from_value(rx["therapy"].clone()).unwrap();
        let st = station.clone();
        tokio::task::spawn_blocking(move || {
            put_in_service(&st, "NGP1", &program, 45, "first fill")
        })
        .await
        .unwrap()
        .unwrap();
        Some(Bench {
            c,
            station,
            implant: Arc::new(Mutex::new(Some(running))),
            state,
            addr,
            iid,
            nurse,
            doctor,
        })
    }

    async fn interrogate(&self, u: &User) -> (StatusCode, Value) {
        self.c
            .call(
                Some(u),
                "POST",
                &format!("/api/v1/implants/{}/interrogate", self.iid),
                None,
            )
            .await
    }

    /// A new prescription version (physician): its record id.
    async fn prescribe(&self, dose: &str) -> i64 {
        let (s, v) = self
            .c
            .call(
                Some(&self.doctor),
                "POST",
                &format!("/api/v1/implants/{}/prescriptions", self.iid),
                Some(baclofen(dose)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// Interrogates, chooses the program change to prescription `rx` and reviews it:
    /// the session id.
    async fn reviewed(&self, rx: i64) -> i64 {
        let (s, v) = self.interrogate(&self.doctor).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let sid = v["id"].as_i64().unwrap();
        let (s, v) = self
            .c
            .call(
                Some(&self.doctor),
                "POST",
                &format!("/api/v1/programming/{sid}/change"),
                Some(json!({"prescription_id": rx})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "reviewed");
        sid
    }

    async fn send(&self, sid: i64) -> (StatusCode, Value) {
        self.c
            .call(
                Some(&self.doctor),
                "POST",
                &format!("/api/v1/programming/{sid}/send"),
                None,
            )
            .await
    }

    async fn session(&self, sid: i64) -> Value {
        let (s, v) = self
            .c
            .call(
                Some(&self.nurse),
                "GET",
                &format!("/api/v1/programming/{sid}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Stops the virtual implant (a power cut between two steps).
    fn kill(&self) {
        if let Some(r) = self.implant.lock().unwrap().take() {
            r.stop().unwrap();
        }
    }

    /// Starts it again on its state directory, at the address the station knows.
    fn restart(&self) {
        let r = implant::spawn(implant::Config::new(&self.state), &self.addr).unwrap();
        *self.implant.lock().unwrap() = Some(r);
    }
}

/// The mean daily flow the implant runs, nL/day.
fn flow(snapshot: &Value) -> u64 {
    snapshot["flow_nl_day"].as_u64().unwrap()
}

async fn a_program_change_is_reviewed_sent_read_back_and_recorded_as_confirmed_clinic_150(
    b: Backend,
) {
    let Some(t) = Bench::new(b).await else {
        return;
    };
    // Interrogation: the implant beside the record, which agree (the pump was put in
    // service with the clinic's prescription and catheter).
    let (s, v) = t.interrogate(&t.nurse).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["disagreements"], json!([]), "{v}");
    assert_eq!(v["before"]["contents"], "baclofen 2 mg/mL");
    // 200 mcg/day at 2 mg/mL is 0.1 mL/day (100,000 nL/day), by hand.
    assert_eq!(flow(&v["before"]), 100_000);
    assert_eq!(v["log"]["verified"], true, "{v}");
    assert!(v["log"]["added"].as_u64().unwrap() > 0, "{v}");
    let version = v["before"]["program_version"].as_u64().unwrap();
    // A new prescription version: now the record and the implant disagree, named.
    let rx = t.prescribe("260 mcg/day").await;
    let (s, v) = t.interrogate(&t.nurse).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let d = v["disagreements"].to_string();
    assert!(
        d.contains(
            "program: prescription version 2 gives 0.13 mL a day; the implant runs 0.1 mL a day"
        ),
        "{d}"
    );
    // A nurse may not send a program change.
    let sid = v["id"].as_i64().unwrap();
    let (s, _) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/change"),
            Some(json!({"prescription_id": rx})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Sending needs the review first.
    let (s, v) = t.send(sid).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let sid = t.reviewed(rx).await;
    let v = t.session(sid).await;
    let review = v["session"]["review"].to_string();
    assert!(
        review.contains("OLD (running now") && review.contains("NEW (prescription version 2)"),
        "{review}"
    );
    let (s, v) = t.send(sid).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "confirmed", "{v}");
    let confirmed = &v["session"]["confirmed"];
    assert_eq!(flow(confirmed), 130_000, "{v}");
    assert_eq!(confirmed["program_version"].as_u64().unwrap(), version + 1);
    // What the implant runs, as the record says it: the read-back.
    let (s, p) =
        t.c.call(
            Some(&t.nurse),
            "GET",
            &format!("/api/v1/implants/{}/programming", t.iid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(flow(&p["runs"]), 130_000, "{p}");
    // On air, for the note: interrogation, and the send with its read back.
    println!("air {}: {}", b_name(b), v["session"]["air"]);
    // The next interrogation agrees again.
    let (_, v) = t.interrogate(&t.nurse).await;
    assert_eq!(v["disagreements"], json!([]), "{v}");
    t.kill();
}

fn b_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

on_both_databases!(
    a_program_change_is_reviewed_sent_read_back_and_recorded_as_confirmed_clinic_150,
);
