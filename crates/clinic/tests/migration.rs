//! Schema migration 2 on a database that already holds two open refill visits of one
//! implant (CLINIC-071), on SQLite and on PostgreSQL: the service starts, the later open
//! visit stays the implant's open visit, the earlier one is set aside (kept, marked with
//! the reason, audited) and the one-open-visit index is made; a database that applied
//! migration 2 before starts again unchanged.
#![allow(missing_docs)]

mod common;

use chrono::{TimeZone, Utc};
use common::{Backend, admin_url, random_hex};
use thecal_clinic::domain::records::RefillVisit;
use thecal_clinic::domain::visit;
use thecal_clinic::storage::{self, Actor, Kind, NewRow, SET_ASIDE, StoreError};
use thecal_rx::Volume;

const SQLITE_0001: &str = include_str!("../migrations/sqlite/0001_init.sql");
const POSTGRES_0001: &str = include_str!("../migrations/postgres/0001_init.sql");

/// The rows of a clinic at schema 1: a patient, an implant, and two open visits of it
/// (ids 1 and 2), as the racing opens that migration 2 was made against left them.
fn seed_sql(visit1: &str, visit2: &str) -> String {
    let q = |s: &str| s.replace('\'', "''");
    format!(
        "INSERT INTO patients (id, parent_id, ukey, seq, status, rev, data, created_at, updated_at) \
         VALUES (1, NULL, 'MRN1', 1, 'active', 1, '{{\"id\":1}}', 1, 1);
         INSERT INTO implants (id, parent_id, ukey, seq, status, rev, data, created_at, updated_at) \
         VALUES (1, 1, 'SN1', 1, 'active', 1, '{{\"id\":1}}', 1, 1);
         INSERT INTO visits (id, parent_id, ukey, seq, status, rev, data, created_at, updated_at) \
         VALUES (1, 1, NULL, 1, 'open', 1, '{}', 10, 10);
         INSERT INTO visits (id, parent_id, ukey, seq, status, rev, data, created_at, updated_at) \
         VALUES (2, 1, NULL, 2, 'open', 1, '{}', 20, 20);",
        q(visit1),
        q(visit2)
    )
}

fn visit_json(id: i64, minute: u32) -> String {
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, minute, 0).unwrap();
    let mut v = visit::open(1, 1, Volume::from_nl(4_000_000), "rn.smith", at);
    v.id = id;
    serde_json::to_string(&v).unwrap()
}

/// Removes a test database when dropped, also when an assertion failed.
struct Remove(Option<Box<dyn FnOnce()>>);

impl Drop for Remove {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A database at schema 1 with the two open visits; returns its URL and what removes it.
async fn at_schema_1(b: Backend) -> Option<(String, Remove)> {
    let sql = format!(
        "{}\nCREATE TABLE schema_migrations (version {int} PRIMARY KEY, name TEXT NOT NULL, \
         applied_at {int} NOT NULL);\nINSERT INTO schema_migrations VALUES (1, 'init', 1);\n{}",
        if b == Backend::Sqlite {
            SQLITE_0001
        } else {
            POSTGRES_0001
        },
        seed_sql(&visit_json(1, 0), &visit_json(2, 30)),
        int = if b == Backend::Sqlite {
            "INTEGER"
        } else {
            "BIGINT"
        },
    );
    match b {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("thecal-migration-{}", random_hex(8)));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("clinic.db");
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
            pool.close().await;
            Some((
                format!("sqlite://{}", path.display()),
                Remove(Some(Box::new(move || {
                    let _ = std::fs::remove_dir_all(&dir);
                }))),
            ))
        }
        Backend::Postgres => {
            // `fresh` checks for the server (and THECAL_REQUIRE_POSTGRES); its own database
            // is dropped with it.
            common::fresh(Backend::Postgres).await?;
            let admin = admin_url();
            let pool = sqlx::PgPool::connect(&admin).await.unwrap();
            let name = format!("thecal_m_{}", random_hex(8));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .unwrap();
            let url = format!("{}/{name}", &admin[..admin.rfind('/').unwrap()]);
            let db = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::raw_sql(&sql).execute(&db).await.unwrap();
            db.close().await;
            pool.close().await;
            Some((
                url,
                Remove(Some(Box::new(move || {
                    let _ = std::thread::spawn(move || {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap()
                            .block_on(async {
                                if let Ok(p) = sqlx::PgPool::connect(&admin).await {
                                    let _ = sqlx::query(&format!(
                                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                    ))
                                    .execute(&p)
                                    .await;
                                }
                            });
                    })
                    .join();
                }))),
            ))
        }
    }
}

async fn second_open_visit_is_set_aside_at_migration_2_and_the_service_starts_clinic_071(
    b: Backend,
) {
    let Some((url, _remove)) = at_schema_1(b).await else {
        return;
    };
    let store = match storage::open(&url).await {
        Ok(s) => s,
        Err(e) => panic!("the service did not start on a database with two open visits: {e}"),
    };
    let v1 = store
        .get(Kind::Visit, 1)
        .await
        .unwrap()
        .expect("visit 1 kept");
    let v2 = store
        .get(Kind::Visit, 2)
        .await
        .unwrap()
        .expect("visit 2 kept");
    // The later visit is the implant's open visit, untouched.
    assert_eq!(
        (v2.status.as_str(), v2.rev, v2.data.as_str()),
        ("open", 1, visit_json(2, 30).as_str())
    );
    // The earlier one is set aside: kept whole, with the reason naming the other visit.
    assert_eq!((v1.status.as_str(), v1.rev), (SET_ASIDE, 2));
    let r1: RefillVisit = serde_json::from_str(&v1.data).unwrap();
    let mut expected: RefillVisit = serde_json::from_str(&visit_json(1, 0)).unwrap();
    let reason = r1.set_aside.clone().expect("the reason is in the record");
    assert!(reason.contains("visit 2"), "{reason}");
    expected.set_aside = Some(reason);
    assert_eq!(r1, expected);
    let latest_open = store.latest(Kind::Visit, 1, Some("open")).await.unwrap();
    assert_eq!(latest_open.map(|r| r.id), Some(2));
    // Audited: the visit before and after.
    let audit: Vec<_> = store
        .audit(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.entity == "visit")
        .collect();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].entity_id,
            audit[0].actor.as_str()
        ),
        ("update", Some(1), "system")
    );
    assert_eq!(audit[0].before.as_deref(), Some(visit_json(1, 0).as_str()));
    assert_eq!(audit[0].after.as_deref(), Some(v1.data.as_str()));
    // Migration 2 is whole: the database refuses another open visit of the implant.
    let a = Actor {
        user_id: 0,
        username: "rn.smith".into(),
    };
    let dup = store
        .insert(
            &a,
            Kind::Visit,
            NewRow {
                parent_id: Some(1),
                key: None,
                status: "open".into(),
                data: "{}".into(),
            },
            30,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate { .. })), "{dup:?}");
    drop(store);
    // A database that applied migration 2 starts again, unchanged.
    let again = storage::open(&url).await.expect("restart");
    assert_eq!(again.get(Kind::Visit, 1).await.unwrap(), Some(v1));
    assert_eq!(again.get(Kind::Visit, 2).await.unwrap(), Some(v2));
    drop(again);
}

on_both_databases!(second_open_visit_is_set_aside_at_migration_2_and_the_service_starts_clinic_071,);
