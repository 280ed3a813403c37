//! The storage suite, run on SQLite and on PostgreSQL (CLINIC-014..CLINIC-018).
#![allow(missing_docs)]

mod common;

use common::{Backend, fresh};
use thecal_clinic::storage::{Actor, Kind, NewRow, SessionRow, StoreError};

fn row(parent: Option<i64>, key: Option<&str>, data: &str) -> NewRow {
    NewRow {
        parent_id: parent,
        key: key.map(str::to_owned),
        status: "active".into(),
        data: data.into(),
    }
}

async fn user(db: &common::TestDb) -> Actor {
    let id = db
        .store
        .create_user(None, "dr.house", "$argon2id$x", "physician", 1)
        .await
        .unwrap();
    Actor {
        user_id: id,
        username: "dr.house".into(),
    }
}

async fn insert_stamps_id_and_audits_in_the_same_transaction_clinic_014(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let r = db
        .store
        .insert(
            &a,
            Kind::Patient,
            row(None, Some("MRN1"), r#"{"id":0,"name":"Ann"}"#),
            1000,
        )
        .await
        .unwrap();
    assert_eq!(r.data, format!(r#"{{"id":{},"name":"Ann"}}"#, r.id));
    let got = db.store.get(Kind::Patient, r.id).await.unwrap().unwrap();
    assert_eq!(got, r);
    let log = db.store.audit(10).await.unwrap();
    assert_eq!(log[0].action, "create");
    assert_eq!(log[0].entity, "patient");
    assert_eq!(log[0].entity_id, Some(r.id));
    assert_eq!(log[0].actor, "dr.house");
    assert_eq!(log[0].after.as_deref(), Some(r.data.as_str()));
}

async fn duplicate_key_names_the_field_clinic_014(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    db.store
        .insert(&a, Kind::Patient, row(None, Some("MRN1"), "{}"), 1)
        .await
        .unwrap();
    let e = db
        .store
        .insert(&a, Kind::Patient, row(None, Some("MRN1"), "{}"), 2)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate { field: "mrn" }), "{e}");
    // Nothing half-written: one patient, one create in the log (plus the user).
    assert_eq!(
        db.store.list(Kind::Patient, None, 10).await.unwrap().len(),
        1
    );
    let creates = db
        .store
        .audit(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entity == "patient")
        .count();
    assert_eq!(creates, 1);
}

async fn sequence_numbers_versions_per_parent_clinic_015(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let p = db
        .store
        .insert(&a, Kind::Patient, row(None, Some("M"), "{}"), 1)
        .await
        .unwrap();
    let i1 = db
        .store
        .insert(&a, Kind::Implant, row(Some(p.id), Some("S1"), "{}"), 1)
        .await
        .unwrap();
    let i2 = db
        .store
        .insert(&a, Kind::Implant, row(Some(p.id), Some("S2"), "{}"), 1)
        .await
        .unwrap();
    let mut seqs = vec![];
    for (imp, n) in [(i1.id, 3), (i2.id, 1)] {
        for _ in 0..n {
            let r = db
                .store
                .insert(
                    &a,
                    Kind::Prescription,
                    row(Some(imp), None, r#"{"id":0,"version":0}"#),
                    2,
                )
                .await
                .unwrap();
            assert_eq!(r.data, format!(r#"{{"id":{},"version":{}}}"#, r.id, r.seq));
            seqs.push(r.seq);
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 1]);
    let latest = db
        .store
        .latest(Kind::Prescription, i1.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.seq, 3);
}

async fn concurrent_inserts_under_one_parent_never_collide_clinic_015(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let p = db
        .store
        .insert(&a, Kind::Patient, row(None, Some("M"), "{}"), 1)
        .await
        .unwrap();
    let i = db
        .store
        .insert(&a, Kind::Implant, row(Some(p.id), Some("S"), "{}"), 1)
        .await
        .unwrap();
    let mut tasks = vec![];
    for _ in 0..12 {
        let s = db.store.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            s.insert(&a, Kind::Visit, row(Some(i.id), None, "{}"), 3)
                .await
                .map(|r| r.seq)
        }));
    }
    let mut seqs = vec![];
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=12).collect::<Vec<i64>>());
}

async fn stale_update_is_refused_and_updates_audit_before_and_after_clinic_016(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let r = db
        .store
        .insert(&a, Kind::Patient, row(None, Some("M"), r#"{"v":1}"#), 1)
        .await
        .unwrap();
    let u = db
        .store
        .update(&a, Kind::Patient, r.id, r.rev, "active", r#"{"v":2}"#, 5)
        .await
        .unwrap();
    assert_eq!(u.rev, 2);
    let e = db
        .store
        .update(&a, Kind::Patient, r.id, r.rev, "active", r#"{"v":3}"#, 6)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Stale), "{e}");
    let e = db
        .store
        .update(&a, Kind::Patient, 999, 1, "x", "{}", 6)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e}");
    let log = db.store.audit(1).await.unwrap();
    assert_eq!(log[0].action, "update");
    assert_eq!(log[0].before.as_deref(), Some(r#"{"v":1}"#));
    assert_eq!(log[0].after.as_deref(), Some(r#"{"v":2}"#));
    assert_eq!(
        db.store
            .get(Kind::Patient, r.id)
            .await
            .unwrap()
            .unwrap()
            .data,
        r#"{"v":2}"#
    );
}

async fn reading_a_patient_is_audited_clinic_016(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let r = db
        .store
        .insert(&a, Kind::Patient, row(None, Some("M"), "{}"), 1)
        .await
        .unwrap();
    db.store
        .read_logged(&a, Kind::Patient, r.id, 9)
        .await
        .unwrap()
        .unwrap();
    let log = db.store.audit(1).await.unwrap();
    assert_eq!(
        (log[0].action.as_str(), log[0].entity_id, log[0].at),
        ("read", Some(r.id), 9)
    );
    assert!(
        db.store
            .read_logged(&a, Kind::Patient, 404, 9)
            .await
            .unwrap()
            .is_none()
    );
}

async fn audit_log_refuses_update_and_delete_clinic_017(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    user(&db).await;
    let (upd, del) = (
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
    );
    let errs: Vec<String> = if b == Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        vec![
            sqlx::query(upd)
                .execute(&pool)
                .await
                .unwrap_err()
                .to_string(),
            sqlx::query(del)
                .execute(&pool)
                .await
                .unwrap_err()
                .to_string(),
        ]
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        vec![
            sqlx::query(upd)
                .execute(&pool)
                .await
                .unwrap_err()
                .to_string(),
            sqlx::query(del)
                .execute(&pool)
                .await
                .unwrap_err()
                .to_string(),
        ]
    };
    for e in errs {
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(db.store.audit(10).await.unwrap()[0].actor, "system");
}

async fn sessions_expire_and_end_clinic_018(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let s = SessionRow {
        token_hash: "h1".into(),
        user_id: a.user_id,
        csrf: "c1".into(),
        created_at: 100,
        expires_at: 200,
    };
    db.store.create_session(&s, "dr.house").await.unwrap();
    let live = db.store.session("h1", 150).await.unwrap().unwrap();
    assert_eq!(
        (
            live.user.username.as_str(),
            live.csrf.as_str(),
            live.user.role.as_str()
        ),
        ("dr.house", "c1", "physician")
    );
    assert!(
        db.store.session("h1", 200).await.unwrap().is_none(),
        "expired"
    );
    assert!(db.store.session("h2", 150).await.unwrap().is_none());
    db.store.delete_session("h1").await.unwrap();
    assert!(db.store.session("h1", 150).await.unwrap().is_none());
    db.store.login_failed("eve", 10).await.unwrap();
    db.store.login_failed("eve", 20).await.unwrap();
    db.store.login_failed("bob", 20).await.unwrap();
    assert_eq!(db.store.login_failures_since("eve", 15).await.unwrap(), 1);
    assert_eq!(db.store.login_failures_since("eve", 0).await.unwrap(), 2);
}

async fn hostile_text_is_stored_verbatim_never_executed_clinic_019(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let evil = "x'); DROP TABLE patients; --";
    let data = serde_json::json!({ "name": evil }).to_string();
    let r = db
        .store
        .insert(&a, Kind::Patient, row(None, Some(evil), &data), 1)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .get(Kind::Patient, r.id)
            .await
            .unwrap()
            .unwrap()
            .key
            .as_deref(),
        Some(evil)
    );
    assert!(
        db.store
            .user_by_name("' OR '1'='1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.store.list(Kind::Patient, None, 10).await.unwrap().len(),
        1
    );
}

async fn calendar_rows_join_latest_prescription_and_closed_visit_clinic_020(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    let p = db
        .store
        .insert(&a, Kind::Patient, row(None, Some("M"), r#"{"p":1}"#), 1)
        .await
        .unwrap();
    let i = db
        .store
        .insert(
            &a,
            Kind::Implant,
            row(Some(p.id), Some("S"), r#"{"i":1}"#),
            1,
        )
        .await
        .unwrap();
    let mut explanted = row(Some(p.id), Some("S0"), r#"{"i":0}"#);
    explanted.status = "explanted".into();
    db.store
        .insert(&a, Kind::Implant, explanted, 1)
        .await
        .unwrap();
    for v in [r#"{"rx":1}"#, r#"{"rx":2}"#] {
        db.store
            .insert(&a, Kind::Prescription, row(Some(i.id), None, v), 1)
            .await
            .unwrap();
    }
    let mut closed = row(Some(i.id), None, r#"{"visit":"closed"}"#);
    closed.status = "closed".into();
    db.store.insert(&a, Kind::Visit, closed, 1).await.unwrap();
    db.store
        .insert(
            &a,
            Kind::Visit,
            row(Some(i.id), None, r#"{"visit":"open"}"#),
            1,
        )
        .await
        .unwrap();
    let rows = db.store.calendar_rows().await.unwrap();
    assert_eq!(rows.len(), 1, "explanted pumps are not on the calendar");
    assert_eq!(rows[0].patient, r#"{"p":1}"#);
    assert_eq!(rows[0].prescription.as_deref(), Some(r#"{"rx":2}"#));
    assert_eq!(rows[0].last_visit.as_deref(), Some(r#"{"visit":"closed"}"#));
}

async fn migrations_apply_once_on_reopen_clinic_021(b: Backend) {
    let Some(db) = fresh(b).await else { return };
    let a = user(&db).await;
    db.store
        .insert(&a, Kind::Patient, row(None, Some("M"), "{}"), 1)
        .await
        .unwrap();
    let again = thecal_clinic::storage::open(&db.url).await.unwrap();
    assert_eq!(again.list(Kind::Patient, None, 10).await.unwrap().len(), 1);
    assert_eq!(
        again.backend(),
        if b == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
}

on_both_databases!(
    insert_stamps_id_and_audits_in_the_same_transaction_clinic_014,
    duplicate_key_names_the_field_clinic_014,
    sequence_numbers_versions_per_parent_clinic_015,
    concurrent_inserts_under_one_parent_never_collide_clinic_015,
    stale_update_is_refused_and_updates_audit_before_and_after_clinic_016,
    reading_a_patient_is_audited_clinic_016,
    audit_log_refuses_update_and_delete_clinic_017,
    sessions_expire_and_end_clinic_018,
    hostile_text_is_stored_verbatim_never_executed_clinic_019,
    calendar_rows_join_latest_prescription_and_closed_visit_clinic_020,
    migrations_apply_once_on_reopen_clinic_021,
);
