//! FHIR: the export bundle, its round trip through fhir-sdk, the UCUM units and dose
//! arithmetic (hand-worked), independent validation with the Python `fhir.resources` R4B
//! models, the endpoints' authorization and audit, and the import of a referral's
//! `Patient`. The suites run on SQLite and on PostgreSQL.
#![allow(missing_docs)]

mod common;

use axum::http::{StatusCode, header};
use chrono::{TimeDelta, Utc};
use common::Backend;
use common::clinic::{Clinic, User};
use serde_json::{Value, json};
use thecal_clinic::auth::{ROUTES, Role};
use thecal_clinic::fhir::api::{SEARCHABLE, export_patient, load};
use thecal_clinic::fhir::summary::Summary;
use thecal_clinic::storage::Actor;

/// A patient with everything the export maps: a pump with a UDI, a flex prescription with
/// a periodic bolus and patient boluses, a second (constant) version, a closed refill, a
/// complication, an assessment and a catheter revision; and a second patient with a trial.
/// Returns (patient, implant, trial patient).
async fn rich(c: &Clinic) -> (i64, i64, i64) {
    let p = c.login(Role::Physician).await;
    let n = c.login(Role::Nurse).await;
    let ok = |s: StatusCode, v: &Value| assert!(s.is_success(), "{s} {v}");
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "F-001", "name": "Fay Fhir",
            "date_of_birth": "1975-03-04", "condition": {"kind": "spasticity", "origin": "spinal"},
            "weight_kg": 70})),
        )
        .await;
    ok(s, &v);
    let pid = v["id"].as_i64().unwrap();
    let (s, v) = c
        .call(Some(&p), "POST", &format!("/api/v1/patients/{pid}/implants"), Some(json!({
            "pump_model": "SynchroMed II 8637-20", "serial": "NGP-F1", "udi": "(01)00643169001763(21)NGP-F1",
            "reservoir": "20 mL", "implanted_on": "2026-01-09", "pocket": "subfascial",
            "catheter_model": "8709SC", "catheter_length_cm": 60, "tip_level": "T10",
            "accuracy_margin_permille": 145, "low_alarm": "2 mL"})))
        .await;
    ok(s, &v);
    let iid = v["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid}/prescriptions"),
            Some(json!({
            "drug": "baclofen", "concentration": "2000 mcg/mL", "reservoir_volume": "20 mL",
            "reason": "night spasms", "confirm_soft_findings": "screening response lasted over 8 h",
            "flex": {"steps": [{"start": "00:00", "daily_dose": "300 mcg/day"},
                               {"start": "08:00", "daily_dose": "600 mcg/day"}],
                     "boluses": [{"start": "20:00", "dose": "50 mcg", "duration": "30 min",
                                  "days": ["mon", "thu"]}]},
            "patient_bolus": {"dose": "25 mcg", "duration": "10 min", "lockout": "2 h",
                              "max_per_day": 4}})),
        )
        .await;
    ok(s, &v);
    c.advance(TimeDelta::days(2));
    let p = c.login(Role::Physician).await;
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid}/prescriptions"),
            Some(json!({
            "drug": "baclofen", "concentration": "2000 mcg/mL", "daily_dose": "400 mcg/day",
            "reservoir_volume": "20 mL", "reason": "simpler day",
            "confirm_soft_findings": "agreed with the patient"})),
        )
        .await;
    ok(s, &v);
    c.advance(TimeDelta::days(30));
    let n2 = c.login(Role::Nurse).await;
    let (s, v) = c
        .call(
            Some(&n2),
            "POST",
            &format!("/api/v1/implants/{iid}/visits"),
            None,
        )
        .await;
    ok(s, &v);
    let vid = v["id"].as_i64().unwrap();
    let expected = thecal_rx::Volume::from_nl(v["expected_residual_nl"].as_u64().unwrap());
    for (step, body) in [
        ("aspirate", json!({"aspirated": expected.to_string()})),
        (
            "fill",
            json!({"volume_added": "18 mL", "concentration": "2000 mcg/mL",
                        "lot": "LOT-F1", "expiry": "2027-06-30"}),
        ),
        ("close", json!({})),
    ] {
        let (s, v) = c
            .call(
                Some(&n2),
                "POST",
                &format!("/api/v1/visits/{vid}/{step}"),
                Some(body),
            )
            .await;
        ok(s, &v);
    }
    let (s, v) = c
        .call(
            Some(&n2),
            "POST",
            &format!("/api/v1/patients/{pid}/complications"),
            Some(json!({
            "kind": "csf_leak", "onset": "2026-01-20", "description": "headache on standing",
            "resolved_on": "2026-02-01"})),
        )
        .await;
    ok(s, &v);
    let (s, v) = c
        .call(
            Some(&n2),
            "POST",
            &format!("/api/v1/patients/{pid}/assessments"),
            Some(json!({
            "taken_at": "2026-02-01T09:00:00Z", "context": "follow-up", "scale_version": "MAS 1987",
            "recall_period": "now", "answers": {"scale": "modified_ashworth", "items": [
                {"muscle": "hip adductors", "side": "left", "grade": "1+"},
                {"muscle": "hip adductors", "side": "right", "grade": "2"}]}})),
        )
        .await;
    ok(s, &v);
    let p = c.login(Role::Physician).await;
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/implants/{iid}/revisions"),
            Some(json!({
            "on": "2026-02-05", "reason": "catheter kink",
            "change": {"kind": "catheter_revision", "catheter_model": "8780",
                       "catheter_length_cm": 52, "tip_level": "T8"}})),
        )
        .await;
    ok(s, &v);
    // A second patient, trialled.
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            "/api/v1/patients",
            Some(json!({"mrn": "F-002", "name": "Gus Fhir",
            "date_of_birth": "1960-07-08", "condition": {"kind": "pain", "type": "cancer"}})),
        )
        .await;
    ok(s, &v);
    let tp = v["id"].as_i64().unwrap();
    for st in ["screening", "trial"] {
        let (s, v) = c
            .call(
                Some(&p),
                "POST",
                &format!("/api/v1/patients/{tp}/state"),
                Some(json!({"state": st})),
            )
            .await;
        ok(s, &v);
    }
    let (s, v) = c
        .call(
            Some(&p),
            "POST",
            &format!("/api/v1/patients/{tp}/trials"),
            Some(json!({
            "drug": "morphine", "route": "lumbar_puncture", "doses": ["150 mcg"], "scale": "nrs",
            "baseline": 8, "post": 3, "observed_hours": 24, "observations": "walked 400 m"})),
        )
        .await;
    ok(s, &v);
    let _ = n;
    (pid, iid, tp)
}

async fn everything(c: &Clinic, u: &User, pid: i64, query: &str) -> (StatusCode, Value) {
    c.call(
        Some(u),
        "GET",
        &format!("/fhir/r4/Patient/{pid}/$everything{query}"),
        None,
    )
    .await
}

fn resources<'a>(b: &'a Value, kind: &str) -> Vec<&'a Value> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn by_id<'a>(b: &'a Value, kind: &str, id: &str) -> &'a Value {
    resources(b, kind)
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no {kind}/{id} in {b}"))
}

async fn export_holds_every_resource_of_the_record_clinic_180(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, iid, tp) = rich(&c).await;
    let n = c.login(Role::Nurse).await;
    let (s, h, bundle) = c
        .call_full(
            Some(&n),
            "GET",
            &format!("/fhir/r4/Patient/{pid}/$everything"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    assert_eq!(
        h.get(header::CONTENT_TYPE).unwrap(),
        "application/fhir+json"
    );
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    let count = |k: &str| resources(&bundle, k).len();
    assert_eq!(count("Patient"), 1);
    assert_eq!(count("Device"), 2, "pump and catheter");
    assert_eq!(count("DeviceUseStatement"), 2);
    assert_eq!(
        count("MedicationRequest"),
        2,
        "one per prescription version"
    );
    assert_eq!(count("MedicationAdministration"), 1, "the refill");
    assert_eq!(count("Condition"), 2, "indication and complication");
    assert_eq!(count("Procedure"), 2, "implant and revision");
    // Weight, the reconciliation and the assessment.
    assert_eq!(count("Observation"), 3);
    assert_eq!(count("AuditEvent"), 0, "only on request");
    assert_eq!(bundle["total"], bundle["entry"].as_array().unwrap().len());
    let pump = by_id(&bundle, "Device", &format!("pump-{iid}"));
    assert_eq!(pump["serialNumber"], "NGP-F1");
    assert_eq!(
        pump["udiCarrier"][0]["carrierHRF"],
        "(01)00643169001763(21)NGP-F1"
    );
    assert_eq!(pump["deviceName"][0]["name"], "SynchroMed II 8637-20");
    let usage = by_id(&bundle, "DeviceUseStatement", &format!("use-pump-{iid}"));
    assert_eq!(usage["timingPeriod"]["start"], "2026-01-09");
    let refill = &resources(&bundle, "MedicationAdministration")[0];
    assert_eq!(refill["contained"][0]["batch"]["lotNumber"], "LOT-F1");
    assert_eq!(
        refill["contained"][0]["batch"]["expirationDate"],
        "2027-06-30"
    );
    assert_eq!(refill["status"], "completed");
    let ind = by_id(&bundle, "Condition", &format!("indication-{pid}"));
    assert_eq!(ind["code"]["coding"][0]["system"], "http://snomed.info/sct");
    assert_eq!(ind["code"]["coding"][0]["code"], "221360009");
    // The trialled patient: the trial as a Procedure and its scores as Observations
    // (NRS, LOINC 72514-3).
    let (s, tb) = everything(&c, &n, tp, "").await;
    assert_eq!(s, StatusCode::OK, "{tb}");
    assert_eq!(resources(&tb, "Procedure").len(), 1);
    let scores = resources(&tb, "Observation");
    assert_eq!(scores.len(), 2);
    assert!(
        scores
            .iter()
            .all(|o| o["code"]["coding"][0]["code"] == "72514-3")
    );
    // Only the latest version of the active pump is active; the first is stopped and the
    // second names it as prior.
    let rx = resources(&bundle, "MedicationRequest");
    assert_eq!(rx[0]["status"], "stopped");
    assert_eq!(rx[1]["status"], "active");
    assert_eq!(
        rx[1]["priorPrescription"]["reference"],
        format!("MedicationRequest/{}", rx[0]["id"].as_str().unwrap())
    );
}

async fn export_parses_back_to_the_same_record_clinic_181(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, _, tp) = rich(&c).await;
    let actor = Actor {
        user_id: 1,
        username: "auditor".into(),
    };
    for (patient, audit) in [(pid, false), (tp, false), (pid, true)] {
        let bundle = export_patient(&c.db.store, &actor, patient, audit, "test", Utc::now())
            .await
            .unwrap()
            .unwrap();
        let text = serde_json::to_string(&bundle).unwrap();
        // Parse with the crate: the same bundle, and the same JSON again.
        let parsed: fhir_sdk::r4b::resources::Bundle = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, bundle);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
        // The clinical values read from FHIR equal the record's. The record is read
        // after the export, so its audit trail includes the export's own row.
        let from_fhir = Summary::of_bundle(&parsed).unwrap();
        let mut record = load(&c.db.store, patient, audit).await.unwrap().unwrap();
        if let Some(a) = record.audit.as_mut() {
            a.retain(|row| from_fhir.audit.contains_key(&row.id));
        }
        let from_record = Summary::of_record(&record).unwrap();
        assert_eq!(from_fhir, from_record);
        if patient == pid {
            assert_eq!(from_fhir.prescriptions.len(), 2);
            assert_eq!(from_fhir.refills.len(), 1);
            assert_eq!(from_fhir.readings.len(), 1);
            assert_eq!(from_fhir.complications.len(), 1);
            assert_eq!(from_fhir.assessments.len(), 1);
            assert_eq!(from_fhir.catheters.values().next().unwrap().1, 52);
        }
        if audit {
            assert!(!from_fhir.audit.is_empty());
        }
    }
}

/// Every Quantity-shaped object (a number `value` with a `unit`, `code` or `system`).
fn quantities<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            if m.get("value").is_some_and(Value::is_number)
                && (m.contains_key("unit") || m.contains_key("code") || m.contains_key("system"))
            {
                out.push((path.clone(), v));
            }
            for (k, x) in m {
                quantities(x, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                quantities(x, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A UCUM expression of the atoms a clinic uses: an atom (with an SI prefix where UCUM
/// allows one) or atom/atom; `{…}` annotations are UCUM's unity with a label. The atoms
/// are UCUM's (the Unified Code for Units of Measure, unitsofmeasure.org): g, L, m, d,
/// h, min, %, with prefixes u (micro), m (milli), k (kilo), c (centi).
fn is_ucum(code: &str) -> bool {
    fn atom(a: &str) -> bool {
        if a.starts_with('{') && a.ends_with('}') && a.len() > 2 {
            return true;
        }
        const BASE: [&str; 7] = ["g", "L", "m", "d", "h", "min", "%"];
        const PREFIXABLE: [&str; 3] = ["g", "L", "m"];
        BASE.contains(&a)
            || ["u", "m", "k", "c"].iter().any(|p| {
                a.strip_prefix(p)
                    .is_some_and(|rest| PREFIXABLE.contains(&rest))
            })
    }
    match code.split_once('/') {
        Some((n, d)) => atom(n) && atom(d),
        None => atom(code),
    }
}

async fn every_quantity_is_ucum_and_doses_equal_thecal_rx_clinic_183(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, _, tp) = rich(&c).await;
    let u = c.login(Role::Pharmacist).await;
    let (s, bundle) = everything(&c, &u, pid, "").await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    let (_, trial) = everything(&c, &u, tp, "").await;
    let mut qs = vec![];
    quantities(&bundle, "Bundle".into(), &mut qs);
    quantities(&trial, "Bundle".into(), &mut qs);
    assert!(qs.len() > 20, "{}", qs.len());
    for (path, q) in &qs {
        assert_eq!(q["system"], "http://unitsofmeasure.org", "{path}: {q}");
        let code = q["code"].as_str().unwrap_or_else(|| panic!("{path}: {q}"));
        assert!(is_ucum(code), "{path}: {code} is not UCUM");
        assert_eq!(q["unit"], q["code"], "{path}");
    }
    // Timing units are UCUM time units too.
    let text = bundle.to_string();
    for unit in ["durationUnit", "periodUnit"] {
        for part in text.split(&format!("\"{unit}\":\"")).skip(1) {
            let u = &part[..part.find('"').unwrap()];
            assert!(["min", "h", "d"].contains(&u), "{unit} {u}");
        }
    }
    // Hand-worked doses (baclofen 2000 mcg/mL = 2 mcg per µL):
    let rx = resources(&bundle, "MedicationRequest");
    let v1 = &rx[0]["dosageInstruction"];
    let rate = |d: &Value, i: usize| (d["doseAndRate"][i].clone(), d["timing"]["repeat"].clone());
    // step 1: 00:00–08:00 (480 min) at 300 mcg/day → 300 / 2000 = 0.15 mL/day.
    let (ordered, repeat) = rate(&v1[0], 0);
    assert_eq!(ordered["rateRatio"]["numerator"]["value"], 300.0);
    assert_eq!(ordered["rateRatio"]["numerator"]["code"], "ug");
    assert_eq!(ordered["rateRatio"]["denominator"]["code"], "d");
    assert_eq!(v1[0]["doseAndRate"][1]["rateQuantity"]["value"], 0.15);
    assert_eq!(v1[0]["doseAndRate"][1]["rateQuantity"]["code"], "mL/d");
    assert_eq!(repeat["timeOfDay"][0], "00:00:00");
    assert_eq!(repeat["duration"], 480.0);
    // step 2: 08:00–24:00 (960 min) at 600 mcg/day → 0.3 mL/day.
    assert_eq!(
        v1[1]["doseAndRate"][0]["rateRatio"]["numerator"]["value"],
        600.0
    );
    assert_eq!(v1[1]["doseAndRate"][1]["rateQuantity"]["value"], 0.3);
    assert_eq!(v1[1]["timing"]["repeat"]["timeOfDay"][0], "08:00:00");
    assert_eq!(v1[1]["timing"]["repeat"]["duration"], 960.0);
    // periodic bolus: 50 mcg at 20:00 over 30 min, Mondays and Thursdays.
    assert_eq!(v1[2]["doseAndRate"][0]["doseQuantity"]["value"], 50.0);
    assert_eq!(v1[2]["timing"]["repeat"]["duration"], 30.0);
    assert_eq!(
        v1[2]["timing"]["repeat"]["dayOfWeek"],
        json!(["mon", "thu"])
    );
    // patient bolus: 25 mcg (25 / 2000 = 0.0125 mL) over 10 min, lockout 2 h = 120 min,
    // at most 4 a day → 100 mcg a day.
    assert_eq!(v1[3]["asNeededBoolean"], true);
    assert_eq!(v1[3]["doseAndRate"][0]["doseQuantity"]["value"], 25.0);
    assert_eq!(v1[3]["timing"]["repeat"]["period"], 120.0);
    assert_eq!(v1[3]["timing"]["repeat"]["duration"], 10.0);
    assert_eq!(v1[3]["maxDosePerPeriod"]["numerator"]["value"], 100.0);
    assert!(
        v1[3]["text"].as_str().unwrap().contains("0.0125 mL"),
        "{}",
        v1[3]["text"]
    );
    // version 2: 400 mcg/day → 0.2 mL/day.
    let v2 = &rx[1]["dosageInstruction"][0];
    assert_eq!(
        v2["doseAndRate"][0]["rateRatio"]["numerator"]["value"],
        400.0
    );
    assert_eq!(v2["doseAndRate"][1]["rateQuantity"]["value"], 0.2);
    assert_eq!(v2["route"]["coding"][0]["code"], "72607000");
    // The reservoir holds 2000 mcg/mL of baclofen.
    let ing = &rx[1]["contained"][0]["ingredient"][0];
    assert_eq!(ing["strength"]["numerator"]["value"], 2000.0);
    assert_eq!(ing["strength"]["denominator"]["value"], 1.0);
    // The refill: 18 mL of 2000 mcg/mL = 36000 mcg.
    let ma = &resources(&bundle, "MedicationAdministration")[0];
    assert_eq!(ma["dosage"]["dose"]["value"], 18.0);
    assert_eq!(ma["dosage"]["dose"]["code"], "mL");
    assert_eq!(ma["note"][0]["text"], "drug mass added: 36000 ug");
    // The assessment: (1.5 + 2) / 2 = 1.75 → 1.8 (tenths, half up).
    let obs = resources(&bundle, "Observation");
    let mas = obs
        .iter()
        .find(|o| o["id"].as_str().unwrap().starts_with("assessment-"))
        .unwrap();
    assert_eq!(mas["valueQuantity"]["value"], 1.8);
    // Body weight 70 kg (LOINC 29463-7).
    let w = obs
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "29463-7")
        .unwrap();
    assert_eq!(w["valueQuantity"]["value"], 70.0);
    assert_eq!(w["valueQuantity"]["code"], "kg");
}

#[test]
fn ucum_check_refuses_what_is_not_ucum_clinic_183() {
    for good in [
        "ug", "mL", "mL/d", "ug/mL", "ug/d", "kg", "cm", "{score}", "%", "min",
    ] {
        assert!(is_ucum(good), "{good}");
    }
    for bad in [
        "mcg", "ml", "mL/day", "mg/24h", "units", "", "{}", "ug/mL/d",
    ] {
        assert!(!is_ucum(bad), "{bad}");
    }
}

/// The Python validator: `THECAL_FHIR_PYTHON`, or the venv `.ci/run` makes in
/// `target/fhir-validator`.
fn validator() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("THECAL_FHIR_PYTHON") {
        return Some(p.into());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join("target/fhir-validator/bin/python");
    let ok = p.exists()
        && std::process::Command::new(&p)
            .args(["-c", "import fhir.resources.R4B"])
            .output()
            .is_ok_and(|o| o.status.success());
    ok.then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_bundles_validate_against_an_independent_r4b_model_clinic_182() {
    let Some(python) = validator() else {
        let msg = "SKIPPED: FHIR validation: no Python with fhir.resources (R4B) in \
                   target/fhir-validator or THECAL_FHIR_PYTHON; .ci/run installs it; set \
                   THECAL_REQUIRE_FHIR_VALIDATOR=1 to make this a failure";
        if std::env::var("THECAL_REQUIRE_FHIR_VALIDATOR").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("{msg}");
        println!("{msg}");
        return;
    };
    let dir = std::env::temp_dir().join(format!("thecal-fhir-{}", common::random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = vec![];
    // Every demo patient, with the audit trail.
    let db = common::fresh(Backend::Sqlite).await.unwrap();
    thecal_clinic::demo::seed(db.store.clone(), Utc::now())
        .await
        .unwrap();
    let patients = db
        .store
        .list(thecal_clinic::storage::Kind::Patient, None, 100)
        .await
        .unwrap();
    assert_eq!(patients.len(), 5);
    let actor = Actor {
        user_id: 1,
        username: "audit.demo".into(),
    };
    for p in &patients {
        let b = export_patient(&db.store, &actor, p.id, true, "test", Utc::now())
            .await
            .unwrap()
            .unwrap();
        let f = dir.join(format!("demo-{}.json", p.id));
        std::fs::write(&f, serde_json::to_string(&b).unwrap()).unwrap();
        files.push(f);
    }
    // The test's own patients: flex steps, boluses, a refill, a revision, a trial.
    let c = Clinic::new(Backend::Sqlite).await.unwrap();
    let (pid, _, tp) = rich(&c).await;
    for p in [pid, tp] {
        let b = export_patient(&c.db.store, &actor, p, true, "test", Utc::now())
            .await
            .unwrap()
            .unwrap();
        let f = dir.join(format!("rich-{p}.json"));
        std::fs::write(&f, serde_json::to_string(&b).unwrap()).unwrap();
        files.push(f);
    }
    // The CapabilityStatement the server reads out at /fhir/r4/metadata.
    let (s, cs) = c
        .call(
            Some(&c.login(Role::Nurse).await),
            "GET",
            "/fhir/r4/metadata",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cs}");
    let f = dir.join("metadata.json");
    std::fs::write(&f, cs.to_string()).unwrap();
    files.push(f);
    // A broken CapabilityStatement must fail too.
    let mut bad = cs.clone();
    bad.as_object_mut().unwrap().remove("kind");
    let broken_cs = dir.join("broken-metadata.json");
    std::fs::write(&broken_cs, bad.to_string()).unwrap();
    // A broken bundle must fail: the validator is not a stub.
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":
            {"resourceType":"Patient","id":"1","birthDate":"1970-13-01"}}]}"#,
    )
    .unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fhir/validate.py");
    let run = |files: &[std::path::PathBuf]| {
        let o = std::process::Command::new(&python)
            .arg(&script)
            .args(files)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, out) = run(&[broken]);
    assert!(!ok && out.contains("birthDate"), "{out}");
    let (ok, out) = run(&[broken_cs]);
    assert!(!ok && out.contains("kind"), "{out}");
    let (ok, out) = run(&files);
    println!("{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("in {} files: 0 errors", files.len())),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn fhir_endpoints_follow_the_console_table_for_every_role_clinic_184(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, _, _) = rich(&c).await;
    let fhir: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.path.starts_with("/fhir/"))
        .collect();
    // Import, Patient read and $everything, metadata, and search and read by id of each
    // other type.
    assert_eq!(fhir.len(), 4 + 2 * SEARCHABLE.len());
    // A real id of each type, from the auditor's export with the audit trail.
    let a = c.login(Role::Auditor).await;
    let (_, all) = everything(&c, &a, pid, "?_audit=true").await;
    for rule in fhir {
        let path = if let Some(t) = rule
            .path
            .strip_suffix("/{id}")
            .and_then(|p| p.strip_prefix("/fhir/r4/"))
            .filter(|t| *t != "Patient")
        {
            let id = resources(&all, t)[0]["id"].as_str().unwrap().to_owned();
            format!("/fhir/r4/{t}/{id}")
        } else if rule.path.contains("{id}") {
            rule.path.replace("{id}", &pid.to_string())
        } else if rule.path == "/fhir/r4/metadata" {
            rule.path.to_owned()
        } else if rule.method == "GET" {
            format!("{}?patient={pid}", rule.path)
        } else {
            rule.path.to_owned()
        };
        for role in Role::ALL.map(Some).into_iter().chain([None]) {
            let user = match role {
                Some(r) => Some(c.login(r).await),
                None => None,
            };
            let body = (rule.method == "POST").then(|| json!({"resourceType": "Patient"}));
            let (s, v) = c.call(user.as_ref(), rule.method, &path, body).await;
            let allowed = thecal_clinic::auth::allowed(rule, role);
            let what = format!("{role:?} {} {path}: {s} {v}", rule.method);
            match (allowed, role) {
                (true, _) => {
                    assert!(
                        s == StatusCode::OK || s == StatusCode::BAD_REQUEST,
                        "{what}"
                    );
                    if rule.method == "GET" {
                        assert_eq!(s, StatusCode::OK, "{what}");
                    }
                }
                (false, None) => {
                    assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}");
                    assert_eq!(v["resourceType"], "OperationOutcome", "{what}");
                }
                (false, Some(_)) => {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{what}");
                    assert_eq!(v["resourceType"], "OperationOutcome", "{what}");
                    assert_eq!(v["issue"][0]["code"], "forbidden", "{what}");
                    assert!(!v.to_string().contains("Fay"), "{what}");
                }
            }
        }
    }
    // The roles with no access to records: every FHIR read refused.
    for role in [Role::Administrator, Role::Emergency] {
        let u = c.login(role).await;
        let (s, _) = everything(&c, &u, pid, "").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?}");
    }
    // The audit trail only for auditors, on $everything too.
    let n = c.login(Role::Nurse).await;
    let (s, v) = everything(&c, &n, pid, "?_audit=true").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["issue"][0]["expression"][0], "_audit");
    let (s, v) = everything(&c, &a, pid, "?_audit=true").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!resources(&v, "AuditEvent").is_empty());
    // Bad requests name the parameter.
    let (s, v) = c.call(Some(&n), "GET", "/fhir/r4/Observation", None).await;
    assert_eq!(
        (s, v["issue"][0]["expression"][0].as_str()),
        (StatusCode::BAD_REQUEST, Some("patient"))
    );
    let (s, v) = c
        .call(
            Some(&n),
            "GET",
            &format!("/fhir/r4/Observation?patient={pid}&code=x"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["issue"][0]["expression"][0].as_str()),
        (StatusCode::BAD_REQUEST, Some("code"))
    );
    let (s, v) = c
        .call(Some(&n), "GET", "/fhir/r4/Patient/999999", None)
        .await;
    assert_eq!(
        (s, v["issue"][0]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
}

async fn every_fhir_access_is_audited_and_refusals_too_clinic_185(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, iid, _) = rich(&c).await;
    let before = c.db.store.audit(100_000).await.unwrap().len();
    let n = c.login(Role::Nurse).await;
    let h = c.login(Role::Pharmacist).await;
    let adm = c.login(Role::Administrator).await;
    let logins = 3;
    let (s, _) = c
        .call(
            Some(&n),
            "GET",
            &format!("/fhir/r4/Device?patient={pid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c
        .call(Some(&h), "GET", &format!("/fhir/r4/Patient/{pid}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = everything(&c, &n, pid, "").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = everything(&c, &adm, pid, "").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let rows = c.db.store.audit(100_000).await.unwrap();
    assert_eq!(
        rows.len(),
        before + logins + 4,
        "three reads and one refusal"
    );
    // Newest first.
    let denied = &rows[0];
    assert_eq!(
        (denied.actor.as_str(), denied.action.as_str()),
        ("administrator", "fhir_denied")
    );
    assert!(denied.after.as_deref().unwrap().contains("$everything"));
    let reads: Vec<_> = rows[1..4].iter().collect();
    assert!(
        reads
            .iter()
            .all(|r| r.action == "fhir_read" && r.entity_id == Some(pid))
    );
    assert_eq!(reads[2].actor, "nurse");
    let detail: Value = serde_json::from_str(reads[2].after.as_deref().unwrap()).unwrap();
    assert_eq!(
        detail["returned"],
        json!([
            format!("Device/pump-{iid}"),
            format!("Device/catheter-{iid}")
        ])
    );
    assert_eq!(reads[1].actor, "pharmacist");
    // The auditor sees these accesses as AuditEvents of the patient's record.
    let a = c.login(Role::Auditor).await;
    let (s, v) = c
        .call(
            Some(&a),
            "GET",
            &format!("/fhir/r4/AuditEvent?patient={pid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let events = resources(&v, "AuditEvent");
    assert!(
        events
            .iter()
            .any(|e| e["agent"][0]["name"] == "pharmacist" && e["action"] == "R"),
        "{v}"
    );
    assert!(
        events.iter().any(|e| e["action"] == "C"),
        "the record's creation"
    );
}

/// The newest audit row.
async fn newest_audit(c: &Clinic) -> thecal_clinic::storage::AuditRow {
    c.db.store.audit(1).await.unwrap().remove(0)
}

async fn every_exported_resource_reads_back_by_id_clinic_189(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    // The demo clinic's patients and the test's own (flex steps, boluses, a refill, a
    // revision, a trial).
    thecal_clinic::demo::seed(c.db.store.clone(), Utc::now())
        .await
        .unwrap();
    rich(&c).await;
    let patients =
        c.db.store
            .list(thecal_clinic::storage::Kind::Patient, None, 100)
            .await
            .unwrap();
    assert_eq!(patients.len(), 7);
    let a = c.login(Role::Auditor).await;
    let mut kinds = std::collections::BTreeSet::new();
    let mut read = 0;
    for p in &patients {
        let (s, bundle) = everything(&c, &a, p.id, "?_audit=true").await;
        assert_eq!(s, StatusCode::OK, "{bundle}");
        for e in bundle["entry"].as_array().unwrap() {
            let r = &e["resource"];
            let (t, id) = (
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap(),
            );
            let path = format!("/fhir/r4/{t}/{id}");
            let (s, h, got) = c.call_full(Some(&a), "GET", &path, None).await;
            assert_eq!(s, StatusCode::OK, "{path}: {got}");
            assert_eq!(
                h.get(header::CONTENT_TYPE).unwrap(),
                "application/fhir+json"
            );
            assert_eq!(&got, r, "{path}");
            // Audited as a read of the patient, with the resource returned.
            let row = newest_audit(&c).await;
            assert_eq!(
                (row.action.as_str(), row.actor.as_str(), row.entity_id),
                ("fhir_read", "auditor", Some(p.id)),
                "{path}"
            );
            let detail: Value = serde_json::from_str(row.after.as_deref().unwrap()).unwrap();
            assert_eq!(detail["returned"], json!([format!("{t}/{id}")]), "{path}");
            assert_eq!(detail["request"], format!("GET {path}"));
            kinds.insert(t.to_owned());
            read += 1;
        }
    }
    // Every type the router reads by id was read back at least once.
    for t in SEARCHABLE.iter().chain(&["Patient"]) {
        assert!(kinds.contains(*t), "no {t} read back; read {kinds:?}");
    }
    assert!(read > 50, "{read}");
    // A clinical reader reads the clinical types the same way, parsed by fhir-sdk.
    let n = c.login(Role::Pharmacist).await;
    let (_, bundle) = everything(&c, &n, patients[0].id, "").await;
    for e in bundle["entry"].as_array().unwrap() {
        let r = &e["resource"];
        let path = format!(
            "/fhir/r4/{}/{}",
            r["resourceType"].as_str().unwrap(),
            r["id"].as_str().unwrap()
        );
        let (s, got) = c.call(Some(&n), "GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {got}");
        let parsed: fhir_sdk::r4b::resources::Resource =
            serde_json::from_value(got.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), got, "{path}");
    }
}

async fn read_by_id_refuses_roles_and_unknown_ids_clinic_190(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, iid, tp) = rich(&c).await;
    let a = c.login(Role::Auditor).await;
    let (_, all) = everything(&c, &a, pid, "?_audit=true").await;
    let audit_id = resources(&all, "AuditEvent")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Roles with no access to records: 403, no clinical data, a fhir_denied row.
    for (role, path) in [
        (Role::Administrator, format!("/fhir/r4/Device/pump-{iid}")),
        (Role::Emergency, format!("/fhir/r4/Device/pump-{iid}")),
        (
            Role::Administrator,
            format!("/fhir/r4/Condition/indication-{pid}"),
        ),
        (
            Role::Emergency,
            format!("/fhir/r4/Observation/weight-{pid}"),
        ),
        (Role::Emergency, format!("/fhir/r4/AuditEvent/{audit_id}")),
        // The audit trail is the auditors' alone.
        (Role::Nurse, format!("/fhir/r4/AuditEvent/{audit_id}")),
        (Role::Physician, format!("/fhir/r4/AuditEvent/{audit_id}")),
    ] {
        let u = c.login(role).await;
        let (s, v) = c.call(Some(&u), "GET", &path, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?} {path}: {v}");
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["code"], "forbidden");
        let text = v.to_string();
        for secret in ["Fay", "NGP-F1", "F-001"] {
            assert!(!text.contains(secret), "{role:?} {path}: {text}");
        }
        let row = newest_audit(&c).await;
        assert_eq!(
            (row.action.as_str(), row.actor.as_str()),
            ("fhir_denied", role.as_str()),
            "{path}"
        );
        let detail: Value = serde_json::from_str(row.after.as_deref().unwrap()).unwrap();
        assert_eq!(detail["request"], format!("GET {path}"));
        assert_eq!(detail["role"], role.as_str());
    }
    // Unknown or malformed ids: 404 naming the id and what ids of that type look like.
    let (_, tb) = everything(&c, &a, tp, "").await;
    let trial = resources(&tb, "Procedure")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        ("Device", "pump-999999".to_owned(), "pump-{implant id}"),
        ("Device", "pump-x".to_owned(), "catheter-{implant id}"),
        ("Device", format!("implant-{iid}"), "pump-{implant id}"),
        ("Device", format!("pump-+{iid}"), "pump-{implant id}"),
        ("Device", format!("pump-0{iid}"), "pump-{implant id}"),
        (
            "DeviceUseStatement",
            format!("pump-{iid}"),
            "use-pump-{implant id}",
        ),
        ("Procedure", "revision-0".to_owned(), "revision-{id}"),
        ("Observation", trial.clone(), "trial-{id}-baseline"),
        ("Observation", format!("{trial}-during"), "trial-{id}-post"),
        (
            "Observation",
            "weight-999999".to_owned(),
            "weight-{patient id}",
        ),
        (
            "Condition",
            format!("indication-{pid}x"),
            "complication-{id}",
        ),
        ("Condition", "".to_owned(), "indication-{patient id}"),
        ("MedicationRequest", "rx-1".to_owned(), "{prescription id}"),
        (
            "MedicationAdministration",
            "-1".to_owned(),
            "{refill visit id}",
        ),
        (
            "AuditEvent",
            "audit-99999999".to_owned(),
            "audit-{audit row id}",
        ),
        ("AuditEvent", "7".to_owned(), "audit-{audit row id}"),
    ];
    for (t, id, form) in cases {
        let path = format!("/fhir/r4/{t}/{id}");
        let (s, v) = c.call(Some(&a), "GET", &path, None).await;
        if id.is_empty() {
            // No id at all is not a read: the search, which needs the patient.
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
            assert_eq!(v["resourceType"], "OperationOutcome", "{path}: {v}");
            continue;
        }
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{path}: {v}");
        let issue = &v["issue"][0];
        assert_eq!(issue["code"], "not-found", "{path}: {v}");
        assert_eq!(issue["expression"][0], "id", "{path}: {v}");
        let d = issue["diagnostics"].as_str().unwrap();
        assert!(d.contains(&format!("\"{id}\"")), "{path}: {d}");
        assert!(d.contains(form), "{path}: {d}");
    }
    // A read by id takes no search parameter.
    let (s, v) = c
        .call(
            Some(&a),
            "GET",
            &format!("/fhir/r4/Device/pump-{iid}?patient={pid}"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["issue"][0]["expression"][0].as_str()),
        (StatusCode::BAD_REQUEST, Some("patient"))
    );
}

async fn capability_statement_lists_exactly_the_served_routes_clinic_191(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let (pid, _, _) = rich(&c).await;
    // Any signed-in user reads it; nobody else.
    let (s, v) = c.call(None, "GET", "/fhir/r4/metadata", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["resourceType"], "OperationOutcome");
    let mut statement = Value::Null;
    for role in Role::ALL {
        let u = c.login(role).await;
        let (s, h, v) = c
            .call_full(Some(&u), "GET", "/fhir/r4/metadata", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{role:?}: {v}");
        assert_eq!(
            h.get(header::CONTENT_TYPE).unwrap(),
            "application/fhir+json"
        );
        statement = v;
    }
    // fhir-sdk parses it, to the same JSON.
    let parsed: fhir_sdk::r4b::resources::CapabilityStatement =
        serde_json::from_value(statement.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), statement);
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.3.0");
    assert_eq!(statement["format"], json!(["json"]));
    assert_eq!(statement["kind"], "instance");
    assert_eq!(statement["status"], "active");
    let rest = statement["rest"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["mode"], "server");
    // What it lists: (type, interaction) and (type, $operation).
    let mut listed = std::collections::BTreeSet::new();
    for r in rest[0]["resource"].as_array().unwrap() {
        let t = r["type"].as_str().unwrap().to_owned();
        for i in r["interaction"].as_array().unwrap() {
            listed.insert((t.clone(), i["code"].as_str().unwrap().to_owned()));
        }
        for o in r["operation"].as_array().into_iter().flatten() {
            listed.insert((t.clone(), format!("${}", o["name"].as_str().unwrap())));
        }
        let params: Vec<&str> = r["searchParam"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let searched = listed.contains(&(t.clone(), "search-type".to_owned()));
        assert_eq!(
            params,
            if searched { vec!["patient"] } else { vec![] },
            "{t}"
        );
        if searched {
            assert_eq!(r["searchParam"][0]["type"], "reference");
        }
    }
    // What the router serves: its authorization table, one row per route.
    let mut served = std::collections::BTreeSet::new();
    for rule in ROUTES.iter().filter(|r| r.path.starts_with("/fhir/r4/")) {
        let parts: Vec<&str> = rule.path["/fhir/r4/".len()..].split('/').collect();
        let entry = match (rule.method, parts.as_slice()) {
            ("GET", ["metadata"]) => continue,
            ("GET", [t]) => (t.to_string(), "search-type".to_owned()),
            ("POST", [t]) => (t.to_string(), "create".to_owned()),
            ("GET", [t, "{id}"]) => (t.to_string(), "read".to_owned()),
            ("GET", [t, "{id}", op]) => (t.to_string(), op.to_string()),
            other => panic!("a FHIR route the statement cannot describe: {other:?}"),
        };
        served.insert(entry);
    }
    assert_eq!(listed, served);
    // The router's list of types: each is read and searched, and Patient is read,
    // created and has $everything.
    for t in SEARCHABLE {
        for i in ["read", "search-type"] {
            assert!(listed.contains(&(t.to_owned(), i.to_owned())), "{t} {i}");
        }
    }
    assert_eq!(listed.len(), 2 * SEARCHABLE.len() + 3);
    // And the server answers each of them (as an auditor, who may read every type).
    let a = c.login(Role::Auditor).await;
    let (_, all) = everything(&c, &a, pid, "?_audit=true").await;
    for (t, i) in &listed {
        let (method, path) = match i.as_str() {
            "search-type" => ("GET", format!("/fhir/r4/{t}?patient={pid}")),
            "read" => {
                let id = resources(&all, t)[0]["id"].as_str().unwrap().to_owned();
                ("GET", format!("/fhir/r4/{t}/{id}"))
            }
            "$everything" => ("GET", format!("/fhir/r4/{t}/{pid}/$everything")),
            "create" => continue,
            other => panic!("{other}"),
        };
        let (s, v) = c.call(Some(&a), method, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    let n = c.login(Role::Nurse).await;
    let (s, v) = c
        .call(Some(&n), "POST", "/fhir/r4/Patient", Some(referral()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // It takes no search parameter, and only JSON.
    let (s, v) = c
        .call(Some(&n), "GET", "/fhir/r4/metadata?_format=xml", None)
        .await;
    assert_eq!(
        (s, v["issue"][0]["expression"][0].as_str()),
        (StatusCode::BAD_REQUEST, Some("_format"))
    );
}

fn referral() -> Value {
    json!({"resourceType": "Patient",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "urn:oid:1.2.3.4", "value": "H-778"}],
        "name": [{"given": ["Ida"], "family": "Referral"}],
        "gender": "female", "birthDate": "1980-05-06",
        "extension": [{"url": "https://thecal.invalid/fhir/StructureDefinition/indication",
                       "valueCode": "spasticity-cerebral"}]})
}

async fn patient_import_names_the_wrong_element_clinic_186(b: Backend) {
    let Some(c) = Clinic::new(b).await else {
        return;
    };
    let n = c.login(Role::Nurse).await;
    let (s, h, v) = c
        .call_full(Some(&n), "POST", "/fhir/r4/Patient", Some(referral()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.get(header::LOCATION).unwrap(),
        &format!("/fhir/r4/Patient/{id}")
    );
    let (s, rec) = c
        .call(Some(&n), "GET", &format!("/api/v1/patients/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rec["patient"]["mrn"], "H-778");
    assert_eq!(rec["patient"]["name"], "Ida Referral");
    assert_eq!(rec["patient"]["state"], "referred");
    assert_eq!(
        rec["patient"]["condition"],
        json!({"kind": "spasticity", "origin": "cerebral"})
    );
    // The import is the registration's audited create.
    let rows = c.db.store.audit(5).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| r.action == "create" && r.entity == "patient" && r.actor == "nurse")
    );
    // The export's Patient imports into another clinic as the same patient.
    let (_, exported) = c
        .call(Some(&n), "GET", &format!("/fhir/r4/Patient/{id}"), None)
        .await;
    let other = Clinic::new(b).await.unwrap();
    let n2 = other.login(Role::Nurse).await;
    let (s, v) = other
        .call(
            Some(&n2),
            "POST",
            "/fhir/r4/Patient",
            Some(exported.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, rec2) = other
        .call(
            Some(&n2),
            "GET",
            &format!("/api/v1/patients/{}", v["id"].as_str().unwrap()),
            None,
        )
        .await;
    for k in ["mrn", "name", "date_of_birth", "condition"] {
        assert_eq!(rec2["patient"][k], rec["patient"][k], "{k}");
    }
    // Errors name the element and say what is allowed.
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            {
                let mut r = referral();
                r["birthDate"] = json!("1980-13-06");
                r
            },
            "Patient.birthDate",
            "",
        ),
        (
            {
                let mut r = referral();
                r.as_object_mut().unwrap().remove("birthDate");
                r
            },
            "Patient.birthDate",
            "is missing",
        ),
        (
            {
                let mut r = referral();
                r["birthDate"] = json!("1980");
                r
            },
            "Patient.birthDate",
            "full date",
        ),
        (
            {
                let mut r = referral();
                r["birthDate"] = json!("2999-01-01");
                r
            },
            "Patient.birthDate",
            "must be between",
        ),
        (
            {
                let mut r = referral();
                r["identifier"] = json!([]);
                r
            },
            "Patient.identifier",
            "medical record number",
        ),
        (
            {
                let mut r = referral();
                r["name"] = json!([]);
                r
            },
            "Patient.name",
            "no name",
        ),
        (
            {
                let mut r = referral();
                r["name"][0]["given"] = json!("Ida");
                r
            },
            "Patient.name[0].given",
            "",
        ),
        (
            {
                let mut r = referral();
                r["gender"] = json!(7);
                r
            },
            "Patient.gender",
            "",
        ),
        (
            {
                let mut r = referral();
                r["extension"][0]["valueCode"] = json!("migraine");
                r
            },
            "Patient.extension('https://thecal.invalid/fhir/StructureDefinition/indication').value",
            "allowed: spasticity-spinal",
        ),
        (
            {
                let mut r = referral();
                r["extension"] = json!([]);
                r
            },
            "Patient.extension('https://thecal.invalid/fhir/StructureDefinition/indication')",
            "missing",
        ),
        (
            json!({"resourceType": "Observation"}),
            "Patient.resourceType",
            "only a Patient",
        ),
        (
            {
                let mut r = referral();
                r["unknownElement"] = json!(1);
                r
            },
            "Patient.unknownElement",
            "not an element",
        ),
        (
            {
                let mut r = referral();
                r["name"][0]["nickname"] = json!("I");
                r
            },
            "Patient.name[0].nickname",
            "not an element",
        ),
    ];
    for (body, expression, words) in cases {
        let (s, v) = c
            .call(Some(&n), "POST", "/fhir/r4/Patient", Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert_eq!(v["resourceType"], "OperationOutcome");
        let issue = &v["issue"][0];
        assert_eq!(issue["expression"][0], expression, "{body} → {v}");
        assert!(
            issue["diagnostics"].as_str().unwrap().contains(words),
            "{body} → {v}"
        );
    }
    // Two problems at once: both named.
    let mut two = referral();
    two["identifier"] = json!([]);
    two.as_object_mut().unwrap().remove("birthDate");
    let (_, v) = c
        .call(Some(&n), "POST", "/fhir/r4/Patient", Some(two))
        .await;
    assert_eq!(v["issue"].as_array().unwrap().len(), 2, "{v}");
    // The same record number again: a conflict on the identifier.
    let (s, v) = c
        .call(Some(&n), "POST", "/fhir/r4/Patient", Some(referral()))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["issue"][0]["expression"][0], "Patient.identifier.value");
    // A pharmacist may not register patients, nor anyone without the CSRF token.
    let h = c.login(Role::Pharmacist).await;
    let (s, _) = c
        .call(Some(&h), "POST", "/fhir/r4/Patient", Some(referral()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = c
        .raw(
            "POST",
            "/fhir/r4/Patient",
            &[("cookie", &format!("thecal_session={}", n.token))],
            Some(referral().to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

on_both_databases!(
    export_holds_every_resource_of_the_record_clinic_180,
    export_parses_back_to_the_same_record_clinic_181,
    every_quantity_is_ucum_and_doses_equal_thecal_rx_clinic_183,
    fhir_endpoints_follow_the_console_table_for_every_role_clinic_184,
    every_fhir_access_is_audited_and_refusals_too_clinic_185,
    patient_import_names_the_wrong_element_clinic_186,
    every_exported_resource_reads_back_by_id_clinic_189,
    read_by_id_refuses_roles_and_unknown_ids_clinic_190,
    capability_statement_lists_exactly_the_served_routes_clinic_191,
);
