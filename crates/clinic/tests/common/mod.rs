//! Test databases: a fresh SQLite file or a fresh PostgreSQL database per test, removed
//! when the test ends. PostgreSQL is the server at `THECAL_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); with no server the PostgreSQL half prints
//! a SKIPPED notice, and `THECAL_REQUIRE_POSTGRES=1` turns its absence into a failure.
#![allow(dead_code, missing_docs)]

pub mod clinic;

use std::path::PathBuf;
use std::sync::Arc;

use thecal_clinic::storage::{self, Storage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub store: Arc<dyn Storage>,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Pg { admin: String, name: String },
}

pub fn admin_url() -> String {
    std::env::var("THECAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh database of the backend, or `None` (after a SKIPPED notice) when PostgreSQL
/// is absent and not required.
pub async fn fresh(b: Backend) -> Option<TestDb> {
    match b {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("thecal-clinic-test-{}", random_hex(8)));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let url = format!("sqlite://{}", dir.join("clinic.db").display());
            let store = storage::open(&url).await.expect("open sqlite");
            Some(TestDb {
                store,
                url,
                cleanup: Cleanup::Dir(dir),
            })
        }
        Backend::Postgres => {
            let admin = admin_url();
            let pool = match sqlx::PgPool::connect(&admin).await {
                Ok(p) => p,
                Err(e) => {
                    let msg = format!(
                        "SKIPPED: PostgreSQL half of the clinic suite: no server at {admin} ({e}); \
                         set THECAL_REQUIRE_POSTGRES=1 to make this a failure"
                    );
                    if std::env::var("THECAL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                        panic!("{msg}");
                    }
                    eprintln!("{msg}");
                    println!("{msg}");
                    return None;
                }
            };
            let name = format!("thecal_t_{}", random_hex(8));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create database");
            pool.close().await;
            let url = match admin.rfind('/') {
                Some(i) => format!("{}/{name}", &admin[..i]),
                None => panic!("THECAL_TEST_POSTGRES needs a database path"),
            };
            let store = storage::open(&url).await.expect("open postgres");
            Some(TestDb {
                store,
                url,
                cleanup: Cleanup::Pg { admin, name },
            })
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::Pg { admin, name } => {
                let (admin, name) = (admin.clone(), name.clone());
                // Async drop: a short-lived runtime on its own thread.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&pool)
                            .await;
                            pool.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// Defines each listed `async fn name(b: Backend)` twice: `sqlite::name` and
/// `postgres::name`, so the same suite runs on both databases.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Postgres).await
                }
            )*
        }
    };
}
