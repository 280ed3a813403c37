//! `thecal clinic export-fhir`: a patient's record from the database as a FHIR Bundle,
//! audited under the named clinic account; roles without access refused.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use thecal_clinic::storage::{Actor, Kind, NewRow, Storage};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A clinic database with a nurse, an auditor, an administrator and one patient.
fn clinic(dir: &std::path::Path) -> (String, std::sync::Arc<dyn Storage>, tokio::runtime::Runtime) {
    std::fs::create_dir_all(dir).unwrap();
    let url = format!("sqlite://{}", dir.join("clinic.db").display());
    let rt = rt();
    let store = rt.block_on(async {
        let store = thecal_clinic::storage::open(&url).await.unwrap();
        for (u, r) in [
            ("nurse", "nurse"),
            ("auditor", "auditor"),
            ("admin", "administrator"),
        ] {
            store.create_user(None, u, "x", r, 0).await.unwrap();
        }
        let actor = Actor {
            user_id: 1,
            username: "nurse".into(),
        };
        let p = json!({"id": 0, "state": "referred", "mrn": "C-1", "name": "Cli Patient",
            "date_of_birth": "1970-01-02", "condition": {"kind": "pain", "type": "non_cancer"},
            "weight_kg": 80, "allergies": "", "contacts": ""});
        store
            .insert(
                &actor,
                Kind::Patient,
                NewRow {
                    parent_id: None,
                    key: Some("C-1".into()),
                    status: "referred".into(),
                    data: p.to_string(),
                },
                1,
            )
            .await
            .unwrap();
        store
    });
    (url, store, rt)
}

fn temp(name: &str) -> std::path::PathBuf {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    std::env::temp_dir().join(format!("thecal-cli-fhir-{name}-{hex}"))
}

#[test]
fn export_fhir_writes_the_bundle_and_audits_it_clinic_188() {
    let dir = temp("ok");
    let (url, store, rt) = clinic(&dir);
    let out = dir.join("bundle.json");
    let o = common::run(
        &[
            "clinic",
            "export-fhir",
            "--database",
            &url,
            "--patient",
            "1",
            "--user",
            "nurse",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", common::text(&o));
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    let kinds: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Patient", "Condition", "Observation"]);
    assert_eq!(b["entry"][0]["resource"]["identifier"][0]["value"], "C-1");
    // The chronic pain indication, SNOMED CT 82423001; weight 80 kg.
    assert_eq!(
        b["entry"][1]["resource"]["code"]["coding"][0]["code"],
        "82423001"
    );
    assert_eq!(b["entry"][2]["resource"]["valueQuantity"]["value"], 80.0);
    // Parsed by the model.
    let _: fhir_sdk_check::Bundle = serde_json::from_value(b.clone()).unwrap();
    let rows = rt.block_on(store.audit(10)).unwrap();
    let r = &rows[0];
    assert_eq!(
        (r.actor.as_str(), r.action.as_str(), r.entity_id),
        ("nurse", "fhir_read", Some(1))
    );
    assert!(
        r.after.as_deref().unwrap().contains("export-fhir"),
        "{:?}",
        r.after
    );
    // With the audit trail, as the auditor, to standard output.
    let o = common::run(
        &[
            "clinic",
            "export-fhir",
            "--database",
            &url,
            "--patient",
            "1",
            "--user",
            "auditor",
            "--audit",
        ],
        None,
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", common::text(&o));
    let b: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["resourceType"] == "AuditEvent")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The clinic's FHIR model (fhir-sdk, R4B), to parse the CLI's output.
mod fhir_sdk_check {
    pub use thecal_clinic::fhir::fhir_sdk::r4b::resources::Bundle;
}

#[test]
fn export_fhir_refuses_roles_without_access_clinic_188() {
    let dir = temp("refused");
    let (url, store, rt) = clinic(&dir);
    let before = rt.block_on(store.audit(1000)).unwrap().len();
    for (args, words) in [
        (
            vec!["--user", "admin"],
            "a administrator may not read records",
        ),
        (vec!["--user", "nurse", "--audit"], "auditors only"),
        (vec!["--user", "nobody"], "no active account"),
    ] {
        let mut all = vec![
            "clinic",
            "export-fhir",
            "--database",
            &url,
            "--patient",
            "1",
        ];
        all.extend(args.iter().copied());
        let o = common::run(&all, None, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(words), "{err}");
        assert!(o.stdout.is_empty(), "no record printed");
    }
    let o = common::run(
        &[
            "clinic",
            "export-fhir",
            "--database",
            &url,
            "--patient",
            "9",
            "--user",
            "nurse",
        ],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--patient 9: no such patient"));
    let o = common::run(
        &[
            "clinic",
            "export-fhir",
            "--data-dir",
            dir.join("none").to_str().unwrap(),
            "--patient",
            "1",
            "--user",
            "nurse",
        ],
        None,
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no clinic.db"));
    // Refused before reading: nothing read, nothing audited.
    assert_eq!(rt.block_on(store.audit(1000)).unwrap().len(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
