//! Integrity and access, run on SQLite and on PostgreSQL: one open refill visit per implant
//! as a database guarantee (racing opens), the security headers on every response, a
//! fresh sign-in to sign a prescription, and break-glass access with a reason, a time
//! limit and an audit trail.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use chrono::{TimeDelta, TimeZone, Utc};
use common::clinic::{Clinic, PASSWORD, User};
use common::{Backend, fresh};
use serde_json::{Value, json};
use thecal_clinic::api::{AppState, Config, HSTS, SECURITY_HEADERS, router};
use thecal_clinic::auth::{ROUTES, Role};
use thecal_clinic::storage::{Actor, Kind, NewRow, StoreError};

impl Clinic {
    /// A patient with a pump and a baclofen prescription: (patient id, implant id).
    async fn patient_with_pump(&self, n: u32) -> (i64, i64) {
        let p = self.login(Role::Physician).await;
        let (s, v) = self
            .call(
                Some(&p),
                "POST",
                "/api/v1/patients",
                Some(
                    json!({"mrn": format!("M{n}"), "name": format!("Patient {n}"),
                    "date_of_birth": "1970-05-01", "allergies": "penicillin",
                    "condition": {"kind": "spasticity", "origin": "spinal"}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let pid = v["id"].as_i64().unwrap();
        let (s, v) = self
            .call(
                Some(&p),
                "POST",
                &format!("/api/v1/patients/{pid}/implants"),
                Some(
                    json!({"pump_model": "SynchroMed II 8637-20", "serial": format!("S{n}"),
                    "reservoir": "20 mL", "implanted_on": "2026-01-09", "pocket": "subfascial",
                    "catheter_model": "8709SC", "catheter_length_cm": 60, "tip_level": "T10",
                    "accuracy_margin_permille": 145, "low_alarm": "2 mL"}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let iid = v["id"].as_i64().unwrap();
        let (s, v) = self
            .call(
                Some(&p),
                "POST",
                &format!("/api/v1/implants/{iid}/prescriptions"),
                Some(baclofen("200 mcg/day")),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (pid, iid)
    }
}

fn baclofen(dose: &str) -> Value {
    json!({"drug": "baclofen", "concentration": "2000 mcg/mL", "daily_dose": dose,
           "reservoir_volume": "20 mL", "reason": "dose change",
           "confirm_soft_findings": "titration agreed with the patient"})
}

async fn racing_opens_of_one_implant_leave_exactly_one_open_visit_clinic_050(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let c = Arc::new(c);
    for round in 0..3 {
        let (_, iid) = c.patient_with_pump(round).await;
        c.advance(TimeDelta::days(30));
        let n = Arc::new(c.login(Role::Nurse).await);
        let path = format!("/api/v1/implants/{iid}/visits");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (c, n, path) = (c.clone(), n.clone(), path.clone());
            tasks.push(tokio::spawn(async move {
                c.call(Some(&n), "POST", &path, None).await
            }));
        }
        let mut created = 0;
        for t in tasks {
            let (s, v) = t.await.unwrap();
            match s {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(v["error"]["code"], "conflict", "{v}");
                    let m = v["error"]["message"].as_str().unwrap();
                    assert!(
                        m.contains("still open") && m.contains("before opening another"),
                        "{m}"
                    );
                }
                other => panic!("racing open answered {other}: {v}"),
            }
        }
        assert_eq!(created, 1, "round {round}: exactly one open succeeds");
        let open =
            c.db.store
                .list(Kind::Visit, Some(iid), 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.status == "open")
                .count();
        assert_eq!(open, 1, "round {round}: one open visit stored");
    }
}

async fn the_database_refuses_a_second_open_visit_of_an_implant_clinic_050(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (_, iid) = c.patient_with_pump(1).await;
    let (_, other) = c.patient_with_pump(2).await;
    let store = &c.db.store;
    let actor = Actor {
        user_id: 1,
        username: "physician".into(),
    };
    let open = |parent: i64| NewRow {
        parent_id: Some(parent),
        key: None,
        status: "open".into(),
        data: r#"{"id":0}"#.into(),
    };
    // Straight to storage, past the API's courtesy check: the index decides.
    let first = store
        .insert(&actor, Kind::Visit, open(iid), 1)
        .await
        .unwrap();
    let second = store.insert(&actor, Kind::Visit, open(iid), 2).await;
    assert!(
        matches!(second, Err(StoreError::Duplicate { .. })),
        "a second open visit of implant {iid} was stored: {second:?}"
    );
    // Another implant may have its own open visit.
    store
        .insert(&actor, Kind::Visit, open(other), 3)
        .await
        .unwrap();
    // Once the first is closed, a new one may open.
    store
        .update(
            &actor,
            Kind::Visit,
            first.id,
            first.rev,
            "closed",
            &first.data,
            4,
        )
        .await
        .unwrap();
    store
        .insert(&actor, Kind::Visit, open(iid), 5)
        .await
        .unwrap();
}

fn assert_security_headers(h: &HeaderMap, what: &str, tls: bool) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            h.get(*name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{what}: header {name}"
        );
    }
    // The two that stop framing, spelled out (clickjacking).
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(
        h.get(header::STRICT_TRANSPORT_SECURITY)
            .and_then(|v| v.to_str().ok()),
        tls.then_some(HSTS),
        "{what}: HSTS only over TLS"
    );
}

async fn every_response_carries_the_security_headers_clinic_051(b: Backend) {
    for tls in [false, true] {
        let config = Config {
            secure_cookies: tls,
            ..Config::default()
        };
        let Some(c) = Clinic::with(b, config).await else {
            return;
        };
        let (_, iid) = c.patient_with_pump(1).await;
        let users = [None, Some(c.login(Role::Physician).await)];
        let mut seen = 0;
        for rule in ROUTES {
            // Signing out would end the session the walk uses.
            if rule.method == "DELETE" {
                continue;
            }
            let path = rule.path.replace("{id}", &iid.to_string());
            for u in &users {
                let body = (rule.method == "POST").then(|| json!({}));
                let (s, h, _) = c.call_full(u.as_ref(), rule.method, &path, body).await;
                assert_security_headers(&h, &format!("{} {path} → {s}", rule.method), tls);
                seen += 1;
            }
        }
        assert!(seen >= 2 * (ROUTES.len() - 1), "{seen}");
        // Unknown route, wrong method, bad JSON, failed sign-in, the HTML report's route.
        for (m, p, body) in [
            ("GET", "/api/v1/nowhere", None),
            ("GET", "/", None),
            ("PUT", "/api/v1/patients", None),
            ("POST", "/api/v1/session", Some("{not json".to_owned())),
            (
                "POST",
                "/api/v1/session",
                Some(json!({"username": "nurse", "password": "wrong password!"}).to_string()),
            ),
        ] {
            let (s, h, _) = c.raw(m, p, &[], body).await;
            assert_security_headers(&h, &format!("{m} {p} → {s}"), tls);
        }
    }
}

async fn signing_a_prescription_needs_a_fresh_sign_in_clinic_052(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (_, iid) = c.patient_with_pump(1).await;
    let p = c.login(Role::Physician).await;
    let path = format!("/api/v1/implants/{iid}/prescriptions");
    // Within the window (5 minutes by default): signed.
    c.advance(TimeDelta::minutes(4));
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(baclofen("210 mcg/day")))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Six minutes after the password: refused, asking for it again.
    c.advance(TimeDelta::minutes(2));
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(baclofen("220 mcg/day")))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "reauthenticate");
    assert_eq!(
        v["error"]["message"],
        "signing a prescription needs a sign-in within the last 5 minutes (the password was \
         last given 6 minutes ago): give your password again with POST \
         /api/v1/session/reauth, then repeat the request"
    );
    let (_, versions) = c.call(Some(&p), "GET", &path, None).await;
    assert_eq!(versions.as_array().unwrap().len(), 2, "nothing stored");
    // The session still reads.
    let (s, _) = c.call(Some(&p), "GET", &path, None).await;
    assert_eq!(s, StatusCode::OK);
    // A wrong password does not refresh it, and counts as a failed sign-in.
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            "/api/v1/session/reauth",
            Some(json!({"password": "not my password"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong password"))
    );
    let (s, _) = c
        .call(Some(&p), "POST", &path, Some(baclofen("220 mcg/day")))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let failures =
        c.db.store
            .login_failures_since("physician", 0)
            .await
            .unwrap();
    assert_eq!(failures, 1);
    // The password again: signed.
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            "/api/v1/session/reauth",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(baclofen("220 mcg/day")))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Re-authentication is audited.
    let a = c.login(Role::Auditor).await;
    let (_, log) = c.call(Some(&a), "GET", "/api/v1/audit", None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "reauthenticate" && e["actor"] == "physician"),
        "{log}"
    );
    // A clinic's own window.
    let Some(c) = Clinic::with(
        b,
        Config {
            fresh_sign_in_minutes: 15,
            ..Config::default()
        },
    )
    .await
    else {
        return;
    };
    let (_, iid) = c.patient_with_pump(1).await;
    let p = c.login(Role::Physician).await;
    c.advance(TimeDelta::minutes(14));
    let path = format!("/api/v1/implants/{iid}/prescriptions");
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(baclofen("210 mcg/day")))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    c.advance(TimeDelta::minutes(2));
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(baclofen("220 mcg/day")))
        .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("reauthenticate"))
    );
}

async fn break_glass_needs_a_reason_is_time_limited_and_audited_clinic_053(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, iid) = c.patient_with_pump(1).await;
    let (other, _) = c.patient_with_pump(2).await;
    let e = c.login(Role::Emergency).await;
    // Outside the emergency clinician's normal access: no record, no list.
    for path in [
        format!("/api/v1/patients/{pid}"),
        "/api/v1/patients".to_owned(),
        format!("/api/v1/implants/{iid}/prescriptions"),
    ] {
        let (s, v) = c.call(Some(&e), "GET", &path, None).await;
        assert_eq!(
            (s, &v["error"]["code"]),
            (StatusCode::FORBIDDEN, &json!("forbidden")),
            "{path}"
        );
    }
    let glass = format!("/api/v1/patients/{pid}/break-glass");
    // No grant yet.
    let (s, v) = c.call(Some(&e), "GET", &glass, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "break_glass");
    assert_eq!(
        v["error"]["message"],
        format!("no break-glass access to this patient: state your reason with POST {glass}")
    );
    // A reason is required, and must say something.
    for body in [
        json!({}),
        json!({"reason": "   "}),
        json!({"reason": "urgent"}),
    ] {
        let (s, v) = c.call(Some(&e), "POST", &glass, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (s, v) = c
        .call(Some(&e), "POST", &glass, Some(json!({"reason": "urgent"})))
        .await;
    assert_eq!(
        (
            s,
            v["error"]["field"].as_str(),
            v["error"]["message"].as_str()
        ),
        (
            StatusCode::BAD_REQUEST,
            Some("reason"),
            Some("must be 10 to 2000 characters (got 6)")
        )
    );
    let reason = "suspected baclofen overdose in the emergency department";
    let (s, v) = c
        .call(Some(&e), "POST", &glass, Some(json!({ "reason": reason })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["patient_id"], pid);
    assert_eq!(v["allergies"], "penicillin");
    assert_eq!(v["reason"], reason);
    assert_eq!(
        v["expires_at"], "2026-01-10T11:00:00Z",
        "60 minutes by default"
    );
    let pump = &v["pumps"][0];
    assert_eq!(pump["drug"], "baclofen");
    assert_eq!(pump["concentration"], "2 mg/mL");
    assert_eq!(pump["daily_dose"], "200 mcg/day");
    assert_eq!(pump["pump_model"], "SynchroMed II 8637-20");
    assert_eq!(pump["managing_physician"], "physician");
    assert_eq!(
        pump["manufacturer_line"],
        "Medtronic 24 h line 800-707-0933 (US)"
    );
    // While the grant lasts: the view again, for this patient only.
    c.advance(TimeDelta::minutes(59));
    let (s, v) = c.call(Some(&e), "GET", &glass, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reason"], reason);
    let (s, _) = c
        .call(
            Some(&e),
            "GET",
            &format!("/api/v1/patients/{other}/break-glass"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = c
        .call(Some(&e), "GET", &format!("/api/v1/patients/{pid}"), None)
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the grant is the emergency view, not the record"
    );
    // After it: refused, naming when it ended.
    c.advance(TimeDelta::minutes(1));
    let (s, v) = c.call(Some(&e), "GET", &glass, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        v["error"]["message"],
        format!(
            "your break-glass access to this patient ended at 2026-01-10 11:00 UTC: state your \
             reason with POST {glass}"
        )
    );
    // Only emergency clinicians break the glass (the others have their normal access).
    for role in [
        Role::Physician,
        Role::Nurse,
        Role::Administrator,
        Role::Auditor,
    ] {
        let u = c.login(role).await;
        let (s, _) = c
            .call(Some(&u), "POST", &glass, Some(json!({ "reason": reason })))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?}");
    }
    // Audited: the grant with its reason and time limit, and each view as a read.
    let a = c.login(Role::Auditor).await;
    let (_, log) = c
        .call(Some(&a), "GET", "/api/v1/audit?limit=1000", None)
        .await;
    let log = log.as_array().unwrap();
    let grants: Vec<&Value> = log
        .iter()
        .filter(|r| r["action"] == "break_glass")
        .collect();
    assert_eq!(grants.len(), 1, "{log:?}");
    assert_eq!(grants[0]["actor"], "emergency");
    assert_eq!(grants[0]["entity"], "patient");
    assert_eq!(grants[0]["entity_id"], pid);
    let after: Value = serde_json::from_str(grants[0]["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["reason"], reason);
    assert_eq!(
        after["expires_at"],
        Utc.with_ymd_and_hms(2026, 1, 10, 11, 0, 0)
            .unwrap()
            .timestamp_millis()
    );
    let reads = log
        .iter()
        .filter(|r| r["action"] == "read" && r["actor"] == "emergency" && r["entity_id"] == pid)
        .count();
    assert_eq!(
        reads, 2,
        "the view at the grant and once more while it lasted"
    );
}

/// The due date of an implant in the calendar, wherever it is listed.
async fn due_of(c: &Clinic, u: &User, implant: i64) -> Option<String> {
    let (s, v) = c
        .call(
            Some(u),
            "GET",
            "/api/v1/calendar?date=2027-01-01&days=1",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut found = None;
    for list in ["overdue", "this_week"] {
        for d in v[list].as_array().unwrap() {
            if d["implant_id"] == implant {
                found = d["due_on"].as_str().map(str::to_owned);
            }
        }
    }
    for day in v["days"].as_array().unwrap() {
        for d in day["visits"].as_array().unwrap() {
            if d["implant_id"] == implant {
                found = d["due_on"].as_str().map(str::to_owned);
            }
        }
    }
    found
}

async fn the_calendar_follows_every_change_from_any_instance_clinic_054(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    // A second instance on the same database, with its own cache.
    let other = {
        let c2 = c.clock.clone();
        Clinic {
            app: router(AppState {
                store: c.db.store.clone(),
                config: Config::default(),
                now: Arc::new(move || *c2.lock().unwrap()),
            }),
            db: fresh(Backend::Sqlite).await.unwrap(),
            clock: c.clock.clone(),
        }
    };
    // Listed as overdue on a first day a year on, whatever its due date.
    let (_, iid) = c.patient_with_pump(1).await;
    let u = c.login(Role::Physician).await;
    let before = due_of(&c, &u, iid).await;
    assert!(before.is_some(), "listed");
    // A new prescription through the other instance moves the due date here.
    let p2 = other.login(Role::Physician).await;
    let (s, v) = other
        .call(
            Some(&p2),
            "POST",
            &format!("/api/v1/implants/{iid}/prescriptions"),
            Some(baclofen("100 mcg/day")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let after_rx = due_of(&c, &u, iid).await;
    assert_ne!(after_rx, before, "a new prescription moves the due date");
    // A refill closed through the other instance moves it again.
    c.advance(TimeDelta::days(20));
    let n2 = other.login(Role::Nurse).await;
    let (_, v) = other
        .call(
            Some(&n2),
            "POST",
            &format!("/api/v1/implants/{iid}/visits"),
            None,
        )
        .await;
    let vid = v["id"].as_i64().unwrap();
    let expected = v["expected_residual_nl"].as_u64().unwrap();
    for (step, body) in [
        ("aspirate", json!({"aspirated": format!("{expected} nL")})),
        (
            "fill",
            json!({"volume_added": "20 mL", "concentration": "2000 mcg/mL",
                   "lot": "L1", "expiry": "2027-06-01"}),
        ),
        ("close", json!({})),
    ] {
        let (s, v) = other
            .call(
                Some(&n2),
                "POST",
                &format!("/api/v1/visits/{vid}/{step}"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{step}: {v}");
    }
    let u = c.login(Role::Physician).await;
    let after_visit = due_of(&c, &u, iid).await;
    assert_ne!(after_visit, after_rx, "a closed refill moves the due date");
    // An explant takes the pump off the calendar.
    let (s, v) = other
        .call(
            Some(&other.login(Role::Physician).await),
            "POST",
            &format!("/api/v1/implants/{iid}/explant"),
            Some(json!({"on": "2026-01-30", "reason": "infection"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        due_of(&c, &u, iid).await,
        None,
        "an explanted pump is not listed"
    );
}

async fn a_patients_record_lists_its_children_and_its_read_is_audited_clinic_016(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, iid) = c.patient_with_pump(1).await;
    let (other, _) = c.patient_with_pump(2).await;
    let n = c.login(Role::Nurse).await;
    let (s, v) = c
        .call(Some(&n), "GET", &format!("/api/v1/patients/{pid}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["patient"]["id"], pid);
    assert_eq!(v["implants"].as_array().unwrap().len(), 1);
    assert_eq!(v["implants"][0]["id"], iid);
    assert_eq!(v["trials"], json!([]));
    assert_eq!(v["complications"], json!([]));
    // No such patient: 404, and nothing audited for it.
    let (s, _) = c
        .call(Some(&n), "GET", "/api/v1/patients/999999", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let a = c.login(Role::Auditor).await;
    let (_, log) = c
        .call(Some(&a), "GET", "/api/v1/audit?limit=1000", None)
        .await;
    let reads: Vec<(Value, Value)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "read")
        .map(|r| (r["actor"].clone(), r["entity_id"].clone()))
        .collect();
    assert_eq!(
        reads,
        vec![(json!("nurse"), json!(pid))],
        "other patient {other}"
    );
}

on_both_databases!(
    a_patients_record_lists_its_children_and_its_read_is_audited_clinic_016,
    the_calendar_follows_every_change_from_any_instance_clinic_054,
    racing_opens_of_one_implant_leave_exactly_one_open_visit_clinic_050,
    the_database_refuses_a_second_open_visit_of_an_implant_clinic_050,
    every_response_carries_the_security_headers_clinic_051,
    signing_a_prescription_needs_a_fresh_sign_in_clinic_052,
    break_glass_needs_a_reason_is_time_limited_and_audited_clinic_053,
);
