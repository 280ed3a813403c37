//! Durability of the PostgreSQL store's commits (CLINIC-070): a read-audit transaction
//! commits without waiting for the WAL flush and still writes its audit row; every change
//! commits synchronously, even on a database whose default is `synchronous_commit = off`.
//!
//! The oracle is PostgreSQL's own setting as seen inside each transaction: a trigger on the
//! audit log, added by the test, copies `current_setting('synchronous_commit')` beside
//! every audit row as it is written, so each row tells how its transaction commits.
#![allow(missing_docs)]

mod common;

use common::{Backend, fresh};
use thecal_clinic::storage::{self, Actor, Kind, NewRow, Op};

const WATCH_COMMITS: &str = "
CREATE TABLE commit_modes (audit_id BIGINT NOT NULL, action TEXT NOT NULL, entity TEXT NOT NULL,
                           mode TEXT NOT NULL);
CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_modes VALUES (NEW.id, NEW.action, NEW.entity,
                                     current_setting('synchronous_commit'));
    RETURN NULL;
END $$;
CREATE TRIGGER note_commit_mode AFTER INSERT ON audit_log
FOR EACH ROW EXECUTE FUNCTION note_commit_mode();
";

fn row(parent: Option<i64>, key: Option<&str>, data: &str) -> NewRow {
    NewRow {
        parent_id: parent,
        key: key.map(str::to_owned),
        status: "active".into(),
        data: data.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_audit_commits_asynchronously_and_every_change_synchronously_clinic_070() {
    let Some(db) = fresh(Backend::Postgres).await else {
        return;
    };
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    let raw = sqlx::PgPool::connect(&db.url).await.expect("connect");
    // The database's default is the unsafe one: the store must not inherit it for changes.
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET synchronous_commit = off"
    ))
    .execute(&raw)
    .await
    .unwrap();
    sqlx::raw_sql(WATCH_COMMITS).execute(&raw).await.unwrap();
    raw.close().await;
    let fresh_conn = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let default: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&fresh_conn)
        .await
        .unwrap();
    assert_eq!(default, "off", "the database default did not take effect");

    // A store opened now: its connections start with the database's `off`.
    let store = storage::open(&db.url).await.expect("open");
    let id = store
        .create_user(None, "dr.house", "$argon2id$x", "physician", 1)
        .await
        .unwrap();
    let a = Actor {
        user_id: id,
        username: "dr.house".into(),
    };
    let p = store
        .insert(&a, Kind::Patient, row(None, Some("MRN1"), r#"{"id":0}"#), 2)
        .await
        .unwrap();
    let imp = store
        .insert(
            &a,
            Kind::Implant,
            row(Some(p.id), Some("SN1"), r#"{"id":0}"#),
            3,
        )
        .await
        .unwrap();
    let p = store
        .update(
            &a,
            Kind::Patient,
            p.id,
            p.rev,
            "active",
            r#"{"id":1,"x":1}"#,
            4,
        )
        .await
        .unwrap();
    store
        .apply(
            &a,
            vec![
                Op::Insert(Kind::Trial, row(Some(p.id), None, r#"{"id":0}"#)),
                Op::Update {
                    kind: Kind::Implant,
                    id: imp.id,
                    rev: imp.rev,
                    status: "active".into(),
                    data: r#"{"id":1,"y":2}"#.into(),
                },
            ],
            5,
        )
        .await
        .unwrap();
    // Reads, each audited: twice the record, once one row; a missing patient audits nothing.
    for at in [6, 7] {
        let r = store.patient_record(&a, p.id, 100, at).await.unwrap();
        assert_eq!(r.expect("the record").implants.len(), 1);
    }
    assert!(
        store
            .read_logged(&a, Kind::Implant, imp.id, 8)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .patient_record(&a, 999, 100, 9)
            .await
            .unwrap()
            .is_none()
    );
    // A change after the reads: the connections' own setting is still the synchronous one.
    store
        .update(
            &a,
            Kind::Patient,
            p.id,
            p.rev,
            "active",
            r#"{"id":1,"x":2}"#,
            10,
        )
        .await
        .unwrap();

    let modes: Vec<(String, String, String)> =
        sqlx::query_as("SELECT c.action, c.entity, c.mode FROM commit_modes c ORDER BY c.audit_id")
            .fetch_all(&fresh_conn)
            .await
            .unwrap();
    let expected: Vec<(String, String, String)> = [
        ("create", "user", "on"),
        ("create", "patient", "on"),
        ("create", "implant", "on"),
        ("update", "patient", "on"),
        ("create", "trial", "on"),
        ("update", "implant", "on"),
        ("read", "patient", "off"),
        ("read", "patient", "off"),
        ("read", "implant", "off"),
        ("update", "patient", "on"),
    ]
    .iter()
    .map(|(a, e, m)| ((*a).to_owned(), (*e).to_owned(), (*m).to_owned()))
    .collect();
    assert_eq!(modes, expected);
    // The read-audit rows are in the audit log itself, naming who read what.
    let reads: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT actor, entity_id, at FROM audit_log WHERE action = 'read' ORDER BY id",
    )
    .fetch_all(&fresh_conn)
    .await
    .unwrap();
    assert_eq!(
        reads,
        vec![
            ("dr.house".to_owned(), p.id, 6),
            ("dr.house".to_owned(), p.id, 7),
            ("dr.house".to_owned(), imp.id, 8)
        ]
    );
    fresh_conn.close().await;
}
