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
        Bench::with_speed(b, 1).await
    }

    /// The same with the implant's time running `speed` times faster than the wall clock.
    async fn with_speed(b: Backend, speed: u32) -> Option<Bench> {
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
        let mut config = implant::Config::new(&state);
        config.speed = speed;
        let running = implant::spawn(config, "127.0.0.1:0").unwrap();
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
            put_in_service(&st, "NGP1", &program, 45, "first fill", None)
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
        // This pump's catheter was never primed: the look ahead rightly warns that the
        // drug reaches the tip only after the dead volume, which the physician accepts.
        if v["session"]["lookahead"]["needs_acknowledgement"] == true {
            let (s, v) = self
                .c
                .call(
                    Some(&self.doctor),
                    "POST",
                    &format!("/api/v1/programming/{sid}/acknowledge"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
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

    /// A refill visit opened by the nurse, `aspirate` (the aspiration's JSON) recorded,
    /// then 18 mL of baclofen at `conc` added (lot `lot`): the visit id.
    async fn filled_visit(&self, aspirate: Value, conc: &str, lot: &str) -> i64 {
        let nurse = Some(&self.nurse);
        let path = format!("/api/v1/implants/{}/visits", self.iid);
        let (s, v) = self.c.call(nurse, "POST", &path, None).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let vid = v["id"].as_i64().unwrap();
        let path = format!("/api/v1/visits/{vid}/aspirate");
        let (s, v) = self.c.call(nurse, "POST", &path, Some(aspirate)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let fill = json!({"volume_added": "18 mL", "concentration": conc, "lot": lot,
                          "expiry": "2027-01-01", "bridging": "none"});
        let path = format!("/api/v1/visits/{vid}/fill");
        let (s, v) = self.c.call(nurse, "POST", &path, Some(fill)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        vid
    }

    async fn send_as(&self, u: &User, sid: i64) -> (StatusCode, Value) {
        self.c
            .call(
                Some(u),
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

/// Where a fault strikes a program change, and what the implant holds afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The link drops before the command goes out (the implant is stopped, so nothing
    /// answers): not applied.
    DropBeforeSend,
    /// The implant restarts after it answered the command, before the read-back: applied.
    RestartAfterSend,
    /// The server dies after the read-back, before recording it: applied.
    KillServerAfterReadBack,
    /// The implant restarts after the read-back and the server dies before recording.
    RestartAndKillAfterReadBack,
}

async fn a_fault_at_every_step_is_reconciled_at_the_next_interrogation_clinic_152(b: Backend) {
    for fault in [
        Fault::DropBeforeSend,
        Fault::RestartAfterSend,
        Fault::KillServerAfterReadBack,
        Fault::RestartAndKillAfterReadBack,
    ] {
        let Some(t) = Bench::new(b).await else {
            return;
        };
        let rx = t.prescribe("260 mcg/day").await;
        let sid = t.reviewed(rx).await;
        let before = t.session(sid).await["session"]["before"].clone();
        assert_eq!(flow(&before), 100_000);
        let implant = t.implant.clone();
        let kill = move || {
            if let Some(r) = implant.lock().unwrap().take() {
                r.stop().unwrap();
            }
        };
        t.station
            .set_fault(Some(Arc::new(move |step| match (fault, step) {
                (Fault::DropBeforeSend, Step::BeforeSend)
                | (Fault::RestartAfterSend, Step::AfterSend) => {
                    kill();
                    Ok(())
                }
                (Fault::KillServerAfterReadBack, Step::AfterReadBack) => {
                    Err("the server was killed".into())
                }
                (Fault::RestartAndKillAfterReadBack, Step::AfterReadBack) => {
                    kill();
                    Err("the server was killed".into())
                }
                _ => Ok(()),
            })));
        let (s, v) = t.send(sid).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{fault:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stays pending"),
            "{v}"
        );
        t.station.set_fault(None);
        // While unfinished, the record never claims the change: it is pending, and what
        // the implant runs is still the last confirmed state.
        assert_eq!(t.session(sid).await["status"], "pending", "{fault:?}");
        let (_, p) =
            t.c.call(
                Some(&t.nurse),
                "GET",
                &format!("/api/v1/implants/{}/programming", t.iid),
                None,
            )
            .await;
        assert_eq!(flow(&p["runs"]), 100_000, "{fault:?}: {p}");
        if t.implant.lock().unwrap().is_none() {
            t.restart();
        }
        // The next interrogation shows what the implant holds and reconciles to it.
        let (s, v) = t.interrogate(&t.nurse).await;
        assert_eq!(s, StatusCode::CREATED, "{fault:?}: {v}");
        let applied = fault != Fault::DropBeforeSend;
        let held = flow(&v["before"]);
        assert_eq!(held, if applied { 130_000 } else { 100_000 }, "{fault:?}");
        let reconciled = v["reconciled"].to_string();
        let old = t.session(sid).await;
        if applied {
            assert_eq!(old["status"], "rolled_forward", "{fault:?}: {old}");
            assert!(reconciled.contains("found applied"), "{reconciled}");
        } else {
            assert_eq!(old["status"], "not_applied", "{fault:?}: {old}");
            assert!(reconciled.contains("NOT applied"), "{reconciled}");
        }
        // The record holds exactly what the implant confirmed.
        assert_eq!(flow(&old["session"]["confirmed"]), held, "{fault:?}");
        let (_, p) =
            t.c.call(
                Some(&t.nurse),
                "GET",
                &format!("/api/v1/implants/{}/programming", t.iid),
                None,
            )
            .await;
        assert_eq!(flow(&p["runs"]), held, "{fault:?}: {p}");
        t.kill();
    }
}

async fn a_refill_is_sent_from_the_visit_and_read_back_clinic_153(b: Backend) {
    let Some(t) = Bench::new(b).await else {
        return;
    };
    let vid = t
        .filled_visit(json!({"aspirated": "19.9 mL"}), "2000 mcg/mL", "L1")
        .await;
    let (_, v) = t.interrogate(&t.nurse).await;
    let sid = v["id"].as_i64().unwrap();
    let version = v["before"]["program_version"].as_u64().unwrap();
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/change"),
            Some(json!({"visit_id": vid, "bridge": "sometimes"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "bridge");
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/change"),
            Some(json!({"visit_id": vid})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The catheter of this pump was never primed: the drug reaches the tip only after
    // the dead volume, a warning the nurse acknowledges before the refill is sent.
    let warnings = v["session"]["lookahead"]["warnings"].to_string();
    assert!(warnings.contains("TOO LOW"), "{warnings}");
    let (s, v2) = t.send_as(&t.nurse, sid).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v2}");
    let (s, v2) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    let review = v["session"]["review"].to_string();
    assert!(review.contains("add 18 mL of baclofen 2 mg/mL"), "{review}");
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/send"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "confirmed", "{v}");
    let c = &v["session"]["confirmed"];
    assert_eq!(c["program_version"].as_u64().unwrap(), version + 1);
    // The pump holds what was added, less what it delivered since (a few seconds).
    let held = c["reservoir_nl"].as_u64().unwrap();
    assert!(held <= 18_000_000 && held > 17_990_000, "{held}");
    println!("air refill {}: {}", b_name(b), v["session"]["air"]);
    t.kill();
}

async fn a_forged_log_entry_raises_an_alarm_and_imports_nothing_clinic_154(b: Backend) {
    let Some(t) = Bench::new(b).await else {
        return;
    };
    let (_, v) = t.interrogate(&t.nurse).await;
    assert_eq!(v["log"]["verified"], true, "{v}");
    // New entries on the implant (a program change), then one of them forged in its
    // state directory while it is off.
    let rx = t.prescribe("260 mcg/day").await;
    let sid = t.reviewed(rx).await;
    let (s, _) = t.send(sid).await;
    assert_eq!(s, StatusCode::OK);
    t.kill();
    let log = t.state.join("events.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let forged = lines
        .iter()
        .rposition(|e| e["event"].get("ProgramChanged").is_some())
        .unwrap();
    lines[forged]["event"] = json!({"ProgramChanged": {"version": 99}});
    let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, out).unwrap();
    t.restart();
    let held_before = t.c.db.store.events(t.iid, 0, i64::MAX).await.unwrap().len();
    let (s, v) = t.interrogate(&t.nurse).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["log"]["verified"], false, "{v}");
    let message = v["log"]["message"].as_str().unwrap();
    assert!(message.starts_with("EVENT LOG CHAIN BROKEN"), "{message}");
    assert!(v["disagreements"].to_string().contains("event log"), "{v}");
    // Nothing imported; an alarm in the record.
    assert_eq!(
        t.c.db.store.events(t.iid, 0, i64::MAX).await.unwrap().len(),
        held_before
    );
    let (s, alarms) =
        t.c.call(
            Some(&t.nurse),
            "GET",
            &format!("/api/v1/implants/{}/alarms", t.iid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{alarms}");
    assert!(
        alarms.to_string().contains("event log chain broken"),
        "{alarms}"
    );
    t.kill();
}

async fn a_patient_remote_is_enrolled_by_its_fingerprint_and_revoked_clinic_155(b: Backend) {
    use thecal_programmer::bearer::{Bearer, Client};
    use thecal_programmer::keyfile::{DeviceKind, Key};
    use thecal_programmer::session;
    let Some(t) = Bench::new(b).await else {
        return;
    };
    let path = format!("/api/v1/implants/{}/remotes", t.iid);
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &path,
            Some(json!({"role": "visitor"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "role");
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &path,
            Some(json!({"role": "patient", "window_seconds": 60})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The remote: its own key, the invite, the hello; it shows six digits.
    let dir = t.state.parent().unwrap().join("remote");
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("remote.key");
    Key::generate(&key_path, DeviceKind::Remote).unwrap();
    let hello = |invite: String| {
        let addr = t.addr.clone();
        let key_path = key_path.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut key = Key::load(&key_path, DeviceKind::Remote).unwrap();
                let inv = session::parse_invitation(&invite, "invite", 0).unwrap();
                let bearer = Bearer::new(&addr, Duration::from_millis(500)).unwrap();
                let (client, pairing): (Client, _) =
                    session::enrol(bearer, &mut key, &inv, &addr).unwrap();
                (client.session.fingerprint(), pairing.key_id)
            })
            .await
            .unwrap()
        }
    };
    let (fingerprint, _) = hello(v["invite"].to_string()).await;
    // Wrong digits: not enrolled (the pump drops the device that answered).
    let wrong = format!("{:06}", (fingerprint + 1) % 1_000_000);
    let confirm = format!("{path}/confirm");
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &confirm,
            Some(json!({"fingerprint": wrong})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["field"], "fingerprint");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("differ"),
        "{v}"
    );
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &confirm,
            Some(json!({"fingerprint": "12 34"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // A new window, the remote's hello again.
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &path,
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (fingerprint, key_id) = hello(v["invite"].to_string()).await;
    // The digits the remote shows: enrolled.
    let typed = format!("{:03} {:03}", fingerprint / 1000, fingerprint % 1000);
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &confirm,
            Some(json!({"fingerprint": typed})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["key_id"].as_u64().unwrap(), u64::from(key_id));
    let (s, list) =
        t.c.call(
            Some(&t.nurse),
            "GET",
            &format!("/api/v1/implants/{}/devices", t.iid),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let remote = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key_id"].as_u64() == Some(u64::from(key_id)))
        .unwrap();
    assert_eq!(remote["role"], "patient remote", "{list}");
    assert_eq!(remote["revoked"], false);
    // Revocation, read back.
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("{path}/revoke"),
            Some(json!({"key_id": key_id})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) =
        t.c.call(
            Some(&t.nurse),
            "GET",
            &format!("/api/v1/implants/{}/devices", t.iid),
            None,
        )
        .await;
    let remote = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key_id"].as_u64() == Some(u64::from(key_id)))
        .unwrap();
    assert_eq!(remote["revoked"], true, "{list}");
    // The server cannot revoke its own programmer.
    let own = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["this_server"] == true)
        .unwrap();
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("{path}/revoke"),
            Some(json!({"key_id": own["key_id"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    t.kill();
}

async fn without_a_station_or_enrolment_the_routes_say_so_clinic_156(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let n = c.login(Role::Nurse).await;
    let (s, v) = c
        .call(Some(&n), "POST", "/api/v1/implants/1/interrogate", None)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_programmer");
    let Some(t) = Bench::new(b).await else {
        return;
    };
    // A second pump the station was never enrolled with.
    let (s, v) =
        t.c.call(
            Some(&t.doctor),
            "POST",
            "/api/v1/patients/1/implants",
            Some(
                json!({"pump_model": "SynchroMed II 8637-20", "serial": "NGP2",
                "reservoir": "20 mL", "implanted_on": "2026-01-09", "pocket": "subfascial",
                "catheter_model": "8709SC", "catheter_length_cm": 45, "tip_level": "T10",
                "accuracy_margin_permille": 145, "low_alarm": "2 mL"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let other = v["id"].as_i64().unwrap();
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/implants/{other}/interrogate"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not enrolled with the pump NGP2"),
        "{v}"
    );
    // A bad token names its field.
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/implants/{other}/link"),
            Some(json!({"address": "127.0.0.1:9", "token": "{}"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "token");
    t.kill();
}

/// A primed implant (the priming bolus run to its end at the implant's accelerated time)
/// with a refill visit filled at `conc` under a prescription of `conc` at 200 mcg/day:
/// the session id reviewed with `bridge`, and the visit id.
async fn primed_refill(t: &Bench, conc: &str) -> i64 {
    let st = t.station.clone();
    tokio::task::spawn_blocking(move || {
        st.with("NGP1", |c| {
            thecal_programmer::session::ok(
                c,
                thecal_link::Body::Pump(thecal_pump::command::Command::PrimingBolus {
                    duration: thecal_rx::Duration::from_minutes(30),
                }),
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    // The catheter holds drug to the tip once the priming ends.
    let mut primed = false;
    for _ in 0..600 {
        let st = t.station.clone();
        let s = tokio::task::spawn_blocking(move || {
            st.with("NGP1", thecal_programmer::session::status)
        })
        .await
        .unwrap()
        .unwrap()
        .0;
        if s.ahead_of_drug.is_zero() && !s.bolus_active {
            primed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(primed, "the priming bolus did not end");
    let (s, v) =
        t.c.call(
            Some(&t.doctor),
            "POST",
            &format!("/api/v1/implants/{}/prescriptions", t.iid),
            Some(
                json!({"drug": "baclofen", "concentration": conc, "daily_dose": "200 mcg/day",
                   "reservoir_volume": "20 mL", "reason": "concentration change",
                   "confirm_soft_findings": "concentration change agreed"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    t.filled_visit(
        json!({"aspirated": "19 mL", "investigation": "accelerated test clock"}),
        conc,
        "L2",
    )
    .await
}

async fn a_concentration_change_without_bridging_is_forecast_and_sent_only_once_acknowledged_clinic_117(
    b: Backend,
) {
    // Time at the implant runs 600 times faster, so the priming bolus ends in seconds.
    let Some(t) = Bench::with_speed(b, 600).await else {
        return;
    };
    let vid = primed_refill(&t, "1000 mcg/mL").await;
    let (s, v) = t.interrogate(&t.nurse).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sid = v["id"].as_i64().unwrap();
    let dead_nl = v["twin"]["path"]["dead_volume"].as_u64().unwrap() as f64;
    let choose = |bridge: &'static str| {
        let c = &t.c;
        let nurse = &t.nurse;
        async move {
            let (s, v) = c
                .call(
                    Some(nurse),
                    "POST",
                    &format!("/api/v1/programming/{sid}/change"),
                    Some(json!({"visit_id": vid, "bridge": bridge})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["session"].clone()
        }
    };
    // With automatic bridging the pump keeps 200 mcg/day at the tip: nothing to
    // acknowledge, and there is nothing to acknowledge.
    let sess = choose("auto").await;
    let l = &sess["lookahead"];
    assert_eq!(l["needs_acknowledgement"], false, "{l}");
    assert_eq!(l["days"], 14);
    for d in l["daily"].as_array().unwrap() {
        let p = d["doses"][0]["percent"].as_u64().unwrap();
        assert!((98..=102).contains(&p), "{d}");
    }
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Bridging off. By hand: 2000 mcg/mL in the catheter, 1000 mcg/mL in the reservoir,
    // the dose kept at 200 mcg/day, so the pump runs 0.2 mL/day instead of 0.1: the old
    // fluid would reach the tip at 0.2 mL/day × 2000 mcg/mL = 400 mcg/day, 200 % of the
    // prescribed, until the dead volume has passed (dead volume ÷ 0.2 mL/day, over a
    // day here). The pump's independent limiter holds what leaves the tip in any 24 h
    // to the program's day volume with its 20 % margin at the concentration: 0.2 mL ×
    // 1.2 × 1000 mcg/mL = 240 mcg (the old program's, 0.1 mL × 1.2 × 2000 mcg/mL, is
    // the same). So: day 0 above the prescribed but at most 240 mcg, a dose-limit alarm,
    // and, since nothing is lost, every microgram in the path and the reservoir reaches
    // the tip: over 14 days the dead volume at 2000 mcg/mL plus the rest of what left the
    // reservoir (18 mL less what is left) at 1000 mcg/mL.
    let sess = choose("none").await;
    let l = &sess["lookahead"];
    assert_eq!(l["needs_acknowledgement"], true, "{l}");
    let warnings = l["warnings"].to_string();
    assert!(warnings.contains("TOO HIGH"), "{warnings}");
    assert!(
        dead_nl / 1e6 / 0.2 * 24.0 > 24.0,
        "dead volume {dead_nl} nL"
    );
    let mcg = |d: &Value| d["doses"][0]["tip_ng"].as_u64().unwrap() as f64 / 1000.0;
    let days = l["daily"].as_array().unwrap();
    for d in &days[..2] {
        assert!(mcg(d) > 210.0 && mcg(d) <= 241.0, "{d}");
    }
    let alarms = l["alarms"].to_string();
    assert!(alarms.contains("dose limit"), "{alarms}");
    let left_ml = days[13]["reservoir_nl"].as_u64().unwrap() as f64 / 1e6;
    let dead_ml = dead_nl / 1e6;
    let conserved = dead_ml * 2000.0 + (18.0 - left_ml - dead_ml) * 1000.0;
    let total: f64 = days.iter().map(mcg).sum();
    assert!(
        (total - conserved).abs() <= 0.001 * conserved,
        "{total} mcg at the tip over 14 days; by conservation {conserved} mcg"
    );
    let last = &l["daily"][13]["doses"][0];
    assert!(
        (98..=102).contains(&last["percent"].as_u64().unwrap()),
        "{last}"
    );
    // Not sent unacknowledged: 409, and the pump keeps its program.
    let (s, v) = t.send_as(&t.nurse, sid).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "acknowledgement_required", "{v}");
    assert_eq!(t.session(sid).await["status"], "reviewed");
    // Acknowledged, then chosen again: the acknowledgement is of the forecast read, so it
    // is cleared.
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["session"]["acknowledged"]["read"]
            .to_string()
            .contains("TOO HIGH")
    );
    let sess = choose("none").await;
    assert!(sess["acknowledged"].is_null(), "{sess}");
    let (s, _) = t.send_as(&t.nurse, sid).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) =
        t.c.call(
            Some(&t.nurse),
            "POST",
            &format!("/api/v1/programming/{sid}/acknowledge"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let by = v["session"]["acknowledged"]["by"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!by.is_empty());
    let (s, v) = t.send_as(&t.nurse, sid).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "confirmed", "{v}");
    assert_eq!(v["session"]["acknowledged"]["by"], by.as_str());
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
    a_fault_at_every_step_is_reconciled_at_the_next_interrogation_clinic_152,
    a_refill_is_sent_from_the_visit_and_read_back_clinic_153,
    a_forged_log_entry_raises_an_alarm_and_imports_nothing_clinic_154,
    a_patient_remote_is_enrolled_by_its_fingerprint_and_revoked_clinic_155,
    without_a_station_or_enrolment_the_routes_say_so_clinic_156,
    a_concentration_change_without_bridging_is_forecast_and_sent_only_once_acknowledged_clinic_117,
);
