//! The implant's history through the API, run on SQLite and on PostgreSQL: the pump log
//! imported with its hash chain verified, alarm acknowledgements, revisions, stored
//! replacement plans and scale assessments.
#![allow(missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use chrono::{TimeDelta, TimeZone, Utc};
use common::clinic::{Clinic, User};
use common::{Backend, fresh};
use serde_json::{Value, json};
use thecal_clinic::api::{AppState, Config, router};
use thecal_clinic::auth::Role;
use thecal_pump::alarm::AlarmKind;
use thecal_pump::event::Event;
use thecal_pump::log::LogChain;
use thecal_rx::{Instant, Volume};

fn patient(mrn: &str, name: &str) -> Value {
    json!({"mrn": mrn, "name": name, "date_of_birth": "1970-05-01",
           "condition": {"kind": "spasticity", "origin": "spinal"}, "weight_kg": 70})
}

fn implant(serial: &str) -> Value {
    json!({"pump_model": "SynchroMed II 8637-20", "serial": serial, "reservoir": "20 mL",
           "implanted_on": "2026-01-09", "pocket": "subfascial", "catheter_model": "8709SC",
           "catheter_length_cm": 60, "tip_level": "T10", "accuracy_margin_permille": 145,
           "low_alarm": "2 mL", "eri_projected": "2026-10-01"})
}

fn baclofen(dose: &str) -> Value {
    json!({"drug": "baclofen", "concentration": "2000 mcg/mL", "daily_dose": dose,
           "reservoir_volume": "20 mL", "reason": "start after screening"})
}

fn hex(h: &[u8; 16]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A pump log made by thecal-pump's own chain, exported the way `thecal programmer logs
/// --json` prints it (seq, at, at_ms, text, hash, event; head; anchor).
struct PumpLog {
    chain: LogChain,
    entries: Vec<Value>,
}

impl PumpLog {
    fn new() -> Self {
        PumpLog {
            chain: LogChain::new(),
            entries: vec![],
        }
    }
    fn push(&mut self, minutes: i64, event: Event) {
        let at = Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes);
        let ms = u64::try_from(minutes).unwrap() * 60_000;
        let e = self.chain.append(Instant::from_ms(ms), event).unwrap();
        self.entries.push(json!({
            "seq": e.seq, "at": at.to_rfc3339(), "at_ms": ms, "text": "(as printed)",
            "hash": hex(&e.hash), "event": serde_json::to_value(e.event).unwrap(),
        }));
    }
    fn export(&self, from: usize) -> Value {
        json!({
            "entries": self.entries[from..],
            "anchor": null,
            "verified": true,
            "verdict": "chain verified",
            "head": {"next_seq": self.chain.next_seq(), "hash": hex(&self.chain.last_hash())},
        })
    }
}

async fn setup(c: &Clinic, p: &User, serial: &str, eri: &str) -> (i64, i64) {
    let (s, v) = c
        .call(
            Some(p),
            "POST",
            "/api/v1/patients",
            Some(patient(&format!("M-{serial}"), "Ann")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let pid = v["id"].as_i64().unwrap();
    let mut imp = implant(serial);
    imp["eri_projected"] = json!(eri);
    let (s, v) = c
        .call(
            Some(p),
            "POST",
            &format!("/api/v1/patients/{pid}/implants"),
            Some(imp),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (pid, v["id"].as_i64().unwrap())
}

async fn pump_log_is_verified_imported_once_and_shown_in_the_timeline_clinic_060(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let n = c.login(Role::Nurse).await;
    let (_, iid) = setup(&c, &p, "S1", "2026-10-01").await;
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid}/prescriptions"),
            Some(baclofen("100 mcg/day")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mut log = PumpLog::new();
    log.push(0, Event::PowerOn { restored_seq: 0 });
    log.push(5, Event::ProgramChanged { version: 1 });
    log.push(60, Event::AlarmRaised(AlarmKind::LowReservoir));
    log.push(
        90,
        Event::Refill {
            added: Volume::from_ml(18),
            aspirated: Volume::from_ml(2),
            expected: Volume::from_ml(2),
            flagged: false,
        },
    );
    log.push(91, Event::AlarmCleared(AlarmKind::LowReservoir));
    log.push(95, Event::ProgramChanged { version: 2 });
    let path = format!("/api/v1/implants/{iid}/log");

    // A forged entry: position 3's refill claims 20 mL; refused at that index, nothing stored.
    let mut forged = log.export(0);
    forged["entries"][3]["event"]["Refill"]["added"] = json!(20_000_000);
    let (s, v) = c.call(Some(&n), "POST", &path, Some(forged)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "entries[3]", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was altered"),
        "{v}"
    );
    // Reordered: entries 1 and 2 swapped, refused at position 1.
    let mut swapped = log.export(0);
    let e = swapped["entries"].as_array_mut().unwrap();
    e.swap(1, 2);
    let (s, v) = c.call(Some(&n), "POST", &path, Some(swapped)).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("entries[1]")),
        "{v}"
    );
    let (_, tl) = c
        .call(
            Some(&p),
            "GET",
            &format!("/api/v1/implants/{iid}/timeline"),
            None,
        )
        .await;
    assert!(
        tl.as_array()
            .unwrap()
            .iter()
            .all(|i| i["source"] != "pump_log"),
        "{tl}"
    );

    // The intact log: six entries added; again: none added.
    let (s, v) = c.call(Some(&n), "POST", &path, Some(log.export(0))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["received"].as_i64(), v["added"].as_i64()),
        (Some(6), Some(6))
    );
    let (s, v) = c.call(Some(&n), "POST", &path, Some(log.export(0))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["added"].as_i64(), v["already_held"].as_i64()),
        (Some(0), Some(6))
    );

    // Later entries, downloaded from entry 4 on: anchored on what the clinic holds.
    log.push(200, Event::AlarmRaised(AlarmKind::MotorStall));
    log.push(201, Event::AlarmAcknowledged(AlarmKind::MotorStall));
    let (s, v) = c.call(Some(&n), "POST", &path, Some(log.export(4))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["added"].as_i64(), v["already_held"].as_i64()),
        (Some(2), Some(2))
    );
    // An upload of entry 7 alone whose hash was recomputed over a changed predecessor
    // does not follow the stored entry 6.
    let mut other = PumpLog::new();
    for k in 0..8 {
        other.push(k, Event::ProgramChanged { version: 9 });
    }
    let (s, v) = c.call(Some(&n), "POST", &path, Some(other.export(7))).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("entries[0]")),
        "{v}"
    );

    let (_, tl) = c
        .call(
            Some(&p),
            "GET",
            &format!("/api/v1/implants/{iid}/timeline"),
            None,
        )
        .await;
    let items = tl.as_array().unwrap();
    let pump: Vec<&str> = items
        .iter()
        .filter(|i| i["source"] == "pump_log")
        .map(|i| i["text"].as_str().unwrap())
        .collect();
    assert_eq!(pump.len(), 8, "{tl}");
    assert!(pump.contains(&"alarm raised: low reservoir"), "{pump:?}");
    assert!(pump.contains(&"program changed to version 2"), "{pump:?}");
    assert!(pump.contains(&"alarm raised: motor stall"), "{pump:?}");
    assert!(
        items.iter().any(|i| i["category"] == "prescription"),
        "{tl}"
    );
    // In time order: the alarm at 09:00 before the refill at 09:30.
    let pos = |t: &str| pump.iter().position(|x| *x == t).unwrap();
    assert!(pos("alarm raised: low reservoir") < pos("alarm cleared: low reservoir"));

    // The import is audited: one row per successful upload.
    let a = c.login(Role::Auditor).await;
    let (_, audit) = c
        .call(Some(&a), "GET", "/api/v1/audit?limit=1000", None)
        .await;
    let imports = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "import" && r["entity_id"] == json!(iid))
        .count();
    assert_eq!(imports, 3, "{audit}");
}

async fn alarm_acknowledgement_records_who_when_and_what_clinic_061(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let n = c.login(Role::Nurse).await;
    let (_, iid) = setup(&c, &p, "S1", "2026-10-01").await;
    let (_, v) = c
        .call(
            Some(&n),
            "POST",
            &format!("/api/v1/implants/{iid}/alarms"),
            Some(json!({"kind": "low reservoir", "priority": "low",
                        "raised_at": "2026-01-10T08:00:00Z"})),
        )
        .await;
    let aid = v["id"].as_i64().unwrap();
    let path = format!("/api/v1/alarms/{aid}/acknowledge");
    let (s, v) = c
        .call(
            Some(&n),
            "POST",
            &path,
            Some(json!({"action": "x", "at": "2026-01-10T07:00:00Z"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("at")),
        "{v}"
    );
    c.advance(TimeDelta::minutes(30));
    let (s, v) = c
        .call(
            Some(&n),
            "POST",
            &path,
            Some(json!({"action": "refilled 18 mL; alarm cleared on interrogation"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["acknowledgement"]["by"], "nurse");
    assert_eq!(v["acknowledgement"]["at"], "2026-01-10T10:30:00Z");
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(json!({"action": "again"})))
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("step")),
        "{v}"
    );
    let h = c.login(Role::Pharmacist).await;
    let (s, _) = c
        .call(Some(&h), "POST", &path, Some(json!({"action": "x"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, alarms) = c
        .call(
            Some(&p),
            "GET",
            &format!("/api/v1/implants/{iid}/alarms"),
            None,
        )
        .await;
    assert_eq!(
        alarms[0]["acknowledgement"]["action"],
        "refilled 18 mL; alarm cleared on interrogation"
    );
    // The acknowledgement is audited with the alarm before and after.
    let a = c.login(Role::Auditor).await;
    let (_, audit) = c
        .call(Some(&a), "GET", "/api/v1/audit?limit=50", None)
        .await;
    let row = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["entity"] == "alarm" && r["action"] == "update")
        .unwrap()
        .clone();
    assert!(
        row["before"]
            .as_str()
            .unwrap()
            .contains("\"acknowledgement\":null")
    );
    assert!(row["after"].as_str().unwrap().contains("refilled 18 mL"));
}

async fn revisions_change_the_implant_and_keep_its_history_clinic_062(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let (_, iid) = setup(&c, &p, "S1", "2026-10-01").await;
    let path = format!("/api/v1/implants/{iid}/revisions");
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &path,
            Some(json!({"on": "2026-01-10", "reason": "catheter kink",
                "change": {"kind": "catheter_revision", "catheter_model": "8780",
                           "catheter_length_cm": 52, "tip_level": "T8"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["implant"]["catheter_length_cm"], 52);
    assert_eq!(v["revision"]["catheter_before"]["catheter_length_cm"], 60);
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &path,
            Some(json!({"on": "2026-01-10", "reason": "r",
                "change": {"kind": "catheter_revision", "catheter_model": "8780",
                           "catheter_length_cm": 0, "tip_level": "T8"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("change.catheter_length_cm")),
        "{v}"
    );
    // Pump replacement: a new implant with the kept catheter; the old pump is closed.
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &path,
            Some(json!({"on": "2026-01-10", "reason": "ERI",
                "change": {"kind": "pump_replacement", "new_pump": {
                    "pump_model": "SynchroMed II 8637-40", "serial": "S2", "reservoir": "40 mL",
                    "accuracy_margin_permille": 145, "low_alarm": "2 mL",
                    "eri_projected": "2033-01-01"}}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let new_id = v["new_implant"]["id"].as_i64().unwrap();
    assert_eq!(v["new_implant"]["catheter_length_cm"], 52);
    assert_eq!(v["new_implant"]["serial"], "S2");
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &path,
            Some(json!({"on": "2026-01-10", "reason": "again", "change": {"kind": "explant"}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("state")),
        "{v}"
    );
    // A replacement onto a serial already on file is refused, and nothing is half-done.
    let (_, other) = setup(&c, &p, "S3", "2030-01-01").await;
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{other}/revisions"),
            Some(json!({"on": "2026-01-10", "reason": "ERI",
                "change": {"kind": "pump_replacement", "new_pump": {
                    "pump_model": "SynchroMed II", "serial": "S2", "reservoir": "20 mL",
                    "accuracy_margin_permille": 145, "low_alarm": "2 mL"}}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("serial")),
        "{v}"
    );
    let (_, revs) = c
        .call(
            Some(&p),
            "GET",
            &format!("/api/v1/implants/{other}/revisions"),
            None,
        )
        .await;
    assert_eq!(revs.as_array().unwrap().len(), 0, "{revs}");
    // The explant of the new pump.
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{new_id}/revisions"),
            Some(json!({"on": "2026-01-10", "reason": "infection", "change": {"kind": "explant"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["implant"]["explant"]["reason"], "infection");
    let (_, revs) = c.call(Some(&p), "GET", &path, None).await;
    assert_eq!(revs.as_array().unwrap().len(), 2, "{revs}");
    assert_eq!(revs[1]["change"]["kind"], "pump_replacement");
    // Only implants in place are on the calendar: the explanted new pump and the replaced
    // old one are not; the other one is.
    let (_, cal) = c.call(Some(&p), "GET", "/api/v1/calendar", None).await;
    let text = cal.to_string();
    assert!(!text.contains(&format!("implants.{iid}\"")), "{text}");
    assert!(!text.contains(&format!("implants.{new_id}\"")), "{text}");
}

async fn replacement_plans_are_stored_and_listed_by_urgency_clinic_063(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    // Today 2026-01-10. ERI 2026-10-01 → stop 2026-12-30, case opens 2026-06-30: planned.
    let (_, later) = setup(&c, &p, "S1", "2026-10-01").await;
    // ERI 2026-03-01 → stop 2026-05-30, case opened 2025-11-28: open case.
    let (_, sooner) = setup(&c, &p, "S2", "2026-03-01").await;
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{sooner}/replacement-plans"),
            Some(json!({"planned_on": "2026-05-30"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("planned_on")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2026-05-30"),
        "{v}"
    );
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{sooner}/replacement-plans"),
            Some(json!({"planned_on": "2026-05-29", "notes": "oral bridge"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["replace_before"], "2026-05-30");
    assert_eq!(v["status"], "planned");
    let sooner_plan = v["id"].as_i64().unwrap();
    let (s, _) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{sooner}/replacement-plans"),
            Some(json!({"planned_on": "2026-04-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{later}/replacement-plans"),
            Some(json!({"planned_on": "2026-12-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, list) = c
        .call(Some(&p), "GET", "/api/v1/replacement-plans", None)
        .await;
    let order: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["implant_id"].as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![sooner, later], "{list}");
    assert_eq!(list[0]["urgency"], "open_case");
    // 2026-01-10 → 2026-05-30: 21 + 28 + 31 + 30 + 30 = 140 days.
    assert_eq!(list[0]["days_to_stop"], 140);
    let status = format!("/api/v1/replacement-plans/{sooner_plan}/status");
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &status,
            Some(json!({"status": "scheduled"})),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{v}"
    );
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &status,
            Some(json!({"status": "planned"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("status")),
        "{v}"
    );
    let (s, _) = c
        .call(Some(&p), "POST", &status, Some(json!({"status": "done"})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = c
        .call(Some(&p), "GET", "/api/v1/replacement-plans", None)
        .await;
    assert_eq!(list[1]["implant_id"].as_i64(), Some(sooner), "{list}");
    assert_eq!(list[1]["status"], "done");
}

async fn assessments_keep_raw_answers_and_computed_totals_clinic_064(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let n = c.login(Role::Nurse).await;
    let (pid, _) = setup(&c, &p, "S1", "2026-10-01").await;
    let path = format!("/api/v1/patients/{pid}/assessments");
    let body = |answers: Value| {
        json!({"taken_at": "2026-01-10T09:00:00Z", "context": "trial baseline",
               "scale_version": "MAS 1987", "recall_period": "now", "answers": answers})
    };
    let (s, v) = c
        .call(
            Some(&n),
            "POST",
            &path,
            Some(body(json!({"scale": "modified_ashworth", "items": [
                {"muscle": "hip adductors", "side": "left", "grade": "1+"},
                {"muscle": "hip adductors", "side": "right", "grade": "2"},
                {"muscle": "knee extensors", "side": "left", "grade": "3"},
                {"muscle": "knee extensors", "side": "right", "grade": "0"}]}))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // (1.5 + 2 + 3 + 0) / 4 = 1.625 → 1.6.
    assert_eq!(v["score"]["total_tenths"], 16);
    assert_eq!(v["answers"]["items"][0]["grade"], "1+");
    let (s, v) = c
        .call(
            Some(&n),
            "POST",
            &path,
            Some(body(json!({"scale": "nrs_pain", "score": 11}))),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "answers.score");
    assert_eq!(
        v["error"]["message"],
        "must be a whole number from 0 to 10 (got 11)"
    );
    let (s, v) = c
        .call(
            Some(&n),
            "POST",
            &path,
            Some(body(json!({"scale": "odi",
                "sections": [4, 0, 4, 2, 2, 2, 2, 2, 2, null]}))),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["score"]["total_tenths"], 444);
    assert_eq!(v["score"]["band"], "severe");
    let (_, list) = c.call(Some(&p), "GET", &path, None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["recorded_by"], "nurse");
}

async fn admixture_flex_schedule_and_patient_bolus_are_checked_by_rx_clinic_065(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let (_, iid) = setup(&c, &p, "S1", "2026-10-01").await;
    let path = format!("/api/v1/implants/{iid}/prescriptions");
    let mix = |naive: bool| {
        json!({"drug": "morphine", "concentration": "10 mg/mL", "daily_dose": "2 mg/day",
               "reservoir_volume": "20 mL", "reason": "cancer pain", "opioid_naive": naive,
               "admixture": [{"drug": "bupivacaine", "concentration": "10 mg/mL"}],
               "patient_bolus": {"dose": "0.5 mg", "duration": "10 min", "lockout": "4 h",
                                 "max_per_day": 4},
               "confirm_soft_findings": "reviewed"})
    };
    // Opioid patient boluses in an opioid-naive patient: refused by thecal-rx.
    let (s, v) = c.call(Some(&p), "POST", &path, Some(mix(true))).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("prescription")),
        "{v}"
    );
    let (s, v) = c.call(Some(&p), "POST", &path, Some(mix(false))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["admixture"][0]["drug"], "bupivacaine");
    // 0.5 mg at 10 mg/mL = 0.05 mL a bolus.
    assert_eq!(v["patient_bolus"]["volume"], "0.05 mL");
    assert_eq!(v["therapy"]["patient_bolus"]["max_per_day"], 4);
    // Five drugs: more than thecal-rx allows in one reservoir.
    let mut five = mix(false);
    five["admixture"] = json!([
        {"drug": "bupivacaine", "concentration": "10 mg/mL"},
        {"drug": "clonidine", "concentration": "100 mcg/mL"},
        {"drug": "fentanyl", "concentration": "50 mcg/mL"},
        {"drug": "sufentanil", "concentration": "5 mcg/mL"}]);
    let (s, v) = c.call(Some(&p), "POST", &path, Some(five)).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("admixture")),
        "{v}"
    );

    // A baclofen flex day on another pump: 300 mcg/day until 08:00, 600 after, and 50 mcg
    // at 20:00: the heaviest day is 100 + 400 + 50 = 550 mcg; 0.275 mL a day at 2 mg/mL.
    let (_, iid2) = setup(&c, &p, "S2", "2026-10-01").await;
    let flex = json!({"drug": "baclofen", "concentration": "2000 mcg/mL",
        "reservoir_volume": "20 mL", "reason": "night spasms",
        "confirm_soft_findings": "screening response lasted over 8 h",
        "flex": {"steps": [{"start": "00:00", "daily_dose": "300 mcg/day"},
                           {"start": "08:00", "daily_dose": "600 mcg/day"}],
                 "boluses": [{"start": "20:00", "dose": "50 mcg", "duration": "30 min"}]}});
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid2}/prescriptions"),
            Some(flex.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["daily_dose"], "550 mcg/day");
    assert_eq!(v["flow"], "0.275 mL/day");
    assert_eq!(v["flex"]["steps"][1]["start"], "08:00");
    // The same day doubled an hour later: thecal-rx's titration rule counts the
    // periodic bolus in the heaviest day (550 → 1100 mcg) and asks for a reason.
    let mut doubled = flex.clone();
    doubled["flex"]["steps"][0]["daily_dose"] = json!("600 mcg/day");
    doubled["flex"]["steps"][1]["daily_dose"] = json!("1200 mcg/day");
    doubled["flex"]["boluses"][0]["dose"] = json!("100 mcg");
    doubled
        .as_object_mut()
        .unwrap()
        .remove("confirm_soft_findings");
    c.advance(TimeDelta::hours(1));
    // Signing needs a fresh sign-in (CLINIC-052): the physician signs in again.
    let p = c.login(Role::Physician).await;
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid2}/prescriptions"),
            Some(doubled),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("confirm_soft_findings")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("from 550 mcg/day to 1.1 mg/day"), "{v}");
    assert!(msg.contains("1 h after the last change"), "{v}");
    // Both a dose and a flex schedule: refused, naming the field.
    let mut both = flex;
    both["daily_dose"] = json!("500 mcg/day");
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid2}/prescriptions"),
            Some(both),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("daily_dose")),
        "{v}"
    );
}

async fn a_dose_change_is_not_a_refill_clinic_066(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let (_, iid) = setup(&c, &p, "S1", "2030-01-01").await;
    let path = format!("/api/v1/implants/{iid}/prescriptions");
    let mut first = baclofen("200 mcg/day");
    first["confirm_soft_findings"] = json!("screening");
    let (s, v) = c.call(Some(&p), "POST", &path, Some(first)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Ten days at 0.1 mL/day, then +10 %: 0.11 mL/day for thirty days.
    c.advance(TimeDelta::days(10));
    let p = c.login(Role::Physician).await;
    let mut up = baclofen("220 mcg/day");
    up["confirm_soft_findings"] = json!("titration");
    let (s, v) = c.call(Some(&p), "POST", &path, Some(up)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    c.advance(TimeDelta::days(30));
    let n = c.login(Role::Nurse).await;
    let (s, v) = c
        .call(
            Some(&n),
            "POST",
            &format!("/api/v1/implants/{iid}/visits"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // 20 − 10 × 0.1 − 30 × 0.11 = 20 − 1 − 3.3 = 15.7 mL (the titration did not refill).
    assert_eq!(
        v["expected_residual_nl"].as_u64(),
        Some(15_700_000),
        "expected residual after a titration: {v}"
    );
}

async fn demo_histories_come_from_the_digital_twin_clinic_067(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    let t0 = std::time::Instant::now();
    thecal_clinic::demo::seed(db.store.clone(), now)
        .await
        .unwrap();
    let seeded = t0.elapsed();
    println!("demo seeded in {seeded:?}");
    let state = AppState {
        store: db.store.clone(),
        config: Config::default(),
        now: Arc::new(move || now),
    };
    let c = Clinic {
        app: router(state),
        db,
        clock: Arc::new(Mutex::new(now)),
    };
    let (s, token, body) = c
        .login_raw("rn.demo", thecal_clinic::demo::DEMO_PASSWORD, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let n = User {
        token: token.unwrap(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    // Dan (patient 4, implant 3, the fifth visit): the twin's catheter half occluded
    // from day 30, so more drug is left than the prescription expects: 0.1 mL/day for
    // 100 days is about 10 mL expected of 20; about 30 × 0.1 + 70 × 0.05 = 6.5 mL left the
    // reservoir, so about 13.5 mL remain.
    let (_, rec) = c.call(Some(&n), "GET", "/api/v1/patients/4", None).await;
    assert_eq!(rec["implants"][0]["id"], 3, "{rec}");
    let (_, v) = c.call(Some(&n), "GET", "/api/v1/visits/5", None).await;
    assert_eq!(v["implant_id"], 3, "{v}");
    assert_eq!(v["flagged"], true, "{v}");
    let aspirated = v["aspirated_nl"].as_i64().unwrap();
    let expected = v["expected_residual_nl"].as_i64().unwrap();
    // Opened an hour before now: 20 − 0.1 × (99 + 23/24) = 10.004167 mL.
    assert_eq!(expected, 10_004_167, "{v}");
    assert!(
        (13_000_000..=14_000_000).contains(&aspirated),
        "the twin's residual: {v}"
    );
    // Ben (implant 2): three versions, the titrations the twin's core was sent.
    let (_, rxs) = c
        .call(Some(&n), "GET", "/api/v1/implants/2/prescriptions", None)
        .await;
    let doses: Vec<&str> = rxs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["daily_dose"].as_str().unwrap())
        .collect();
    assert_eq!(doses, vec!["1 mg/day", "1.2 mg/day", "1.4 mg/day"], "{rxs}");
    // His projected ERI is the twin's battery projection: in the future, within the
    // six months that open the replacement case.
    let (_, plans) = c.call(Some(&n), "GET", "/api/v1/replacements", None).await;
    assert_eq!(plans[0]["implant_id"], 2, "{plans}");
    let eri: chrono::NaiveDate = plans[0]["eri"].as_str().unwrap().parse().unwrap();
    assert!(
        eri > now.date_naive() && eri < now.date_naive() + TimeDelta::days(183),
        "{plans}"
    );
    // Ada (implant 1): refilled three times, the residuals the twin's pump left; her
    // pump has since run low, and the twin's low-reservoir alarm is on file.
    let (_, alarms) = c
        .call(Some(&n), "GET", "/api/v1/implants/1/alarms", None)
        .await;
    assert!(
        alarms
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "LowReservoir"),
        "{alarms}"
    );
    assert!(seeded < std::time::Duration::from_secs(30), "{seeded:?}");
}

async fn trial_scores_come_from_the_stored_assessments_clinic_068(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let p = c.login(Role::Physician).await;
    let (pid, _) = setup(&c, &p, "S1", "2026-10-01").await;
    let nrs = |at: &str, score: i64| {
        json!({"taken_at": at, "context": "trial", "scale_version": "NRS-11",
               "recall_period": "now", "answers": {"scale": "nrs_pain", "score": score}})
    };
    let mut ids = vec![];
    for (at, score) in [("2026-01-09T09:00:00Z", 8), ("2026-01-10T09:00:00Z", 4)] {
        let (s, v) = c
            .call(
                Some(&p),
                "POST",
                &format!("/api/v1/patients/{pid}/assessments"),
                Some(nrs(at, score)),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    let trial = |baseline: u16, post_id: i64| {
        json!({"drug": "morphine", "route": "lumbar_puncture", "doses": ["100 mcg"],
               "scale": "nrs", "baseline": baseline, "post": 4, "observed_hours": 24,
               "baseline_assessment": ids[0], "post_assessment": post_id})
    };
    let path = format!("/api/v1/patients/{pid}/trials");
    // A baseline typed as 7 against raw answers that total 8 is refused, naming the total.
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(trial(7, ids[1])))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "baseline");
    assert_eq!(
        v["error"]["message"],
        format!("is 7, but assessment {} totals 8 on NRS: give 8", ids[0])
    );
    // An assessment that does not exist is named by its field.
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(trial(8, 999_999)))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "post_assessment");
    // From the answers: (8 − 4) / 8 = 50 % meets the rule.
    let (s, v) = c
        .call(Some(&p), "POST", &path, Some(trial(8, ids[1])))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["evaluation"]["improvement_tenths"], 500);
    assert_eq!(v["evaluation"]["meets_rule"], true);
    assert_eq!(v["baseline_assessment"], ids[0]);
}

on_both_databases!(
    pump_log_is_verified_imported_once_and_shown_in_the_timeline_clinic_060,
    alarm_acknowledgement_records_who_when_and_what_clinic_061,
    revisions_change_the_implant_and_keep_its_history_clinic_062,
    replacement_plans_are_stored_and_listed_by_urgency_clinic_063,
    assessments_keep_raw_answers_and_computed_totals_clinic_064,
    admixture_flex_schedule_and_patient_bolus_are_checked_by_rx_clinic_065,
    a_dose_change_is_not_a_refill_clinic_066,
    demo_histories_come_from_the_digital_twin_clinic_067,
    trial_scores_come_from_the_stored_assessments_clinic_068,
);
