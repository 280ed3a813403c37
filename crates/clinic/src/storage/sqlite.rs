//! The SQLite store: one file in the data directory, WAL journal, `synchronous = FULL` (an
//! acknowledged write survives a crash of the process or the machine), foreign keys on,
//! and every write transaction started with `BEGIN IMMEDIATE` after taking the store's
//! writer lock: this process's writers queue there, in order, instead of in SQLite's busy
//! handler, whose sleeps (up to 100 ms each) made the tail latency under load.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Kind, StoreError, StoreResult}; // also used by common.rs

type Db = sqlx::Sqlite;

/// A write transaction holding the store's writer lock until it ends.
pub(super) struct Tx {
    tx: sqlx::Transaction<'static, Db>,
    _writer: tokio::sync::OwnedMutexGuard<()>,
}

impl std::ops::Deref for Tx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Tx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}
const BACKEND: &str = "sqlite";

/// The migrations, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "open_visit_fresh_sign_in_break_glass",
        include_str!("../../migrations/sqlite/0002_open_visit_fresh_sign_in_break_glass.sql"),
    ),
    (
        3,
        "history",
        include_str!("../../migrations/sqlite/0003_history.sql"),
    ),
    (
        6,
        "programming_sessions",
        include_str!("../../migrations/sqlite/0006_programming_sessions.sql"),
    ),
    (
        7,
        "children_in_id_order",
        include_str!("../../migrations/sqlite/0007_children_in_id_order.sql"),
    ),
];

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

type Store = SqliteStore;

impl SqliteStore {
    /// Opens (creating if absent) the database file and applies the migrations.
    ///
    /// # Errors
    /// The file cannot be opened, or a migration fails.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let store = SqliteStore {
            pool,
            writer: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn begin(&self) -> StoreResult<Tx> {
        let writer = self.writer.clone().lock_owned().await;
        Ok(Tx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _writer: writer,
        })
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
             name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        for (version, name, sql) in MIGRATIONS {
            let done: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_one(&mut *tx)
                    .await?;
            if done == 0 {
                if *version == 2 {
                    let n = set_aside_duplicate_open_visits(&mut tx, now_ms)
                        .await
                        .map_err(|e| {
                            StoreError::Migration(format!(
                                "sqlite 2: setting aside second open refill visits: {e}"
                            ))
                        })?;
                    if n > 0 {
                        eprintln!(
                            "thecal-clinic: migration 2 set aside {n} refill visit(s) that were \
                             a second open visit of their implant (status {}, audited)",
                            super::SET_ASIDE
                        );
                    }
                }
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::Migration(format!("sqlite {version} {name}: {e}")))?;
                sqlx::query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(version)
                .bind(name)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// `BEGIN IMMEDIATE` already serialises writers on SQLite.
async fn lock_parent(_tx: &mut Tx, _kind: Kind, _parent: i64) -> StoreResult<()> {
    Ok(())
}

/// `BEGIN IMMEDIATE` already keeps other writers out of a bulk load.
async fn lock_table(_tx: &mut Tx, _table: &str) -> StoreResult<()> {
    Ok(())
}

/// SQLite's AUTOINCREMENT counter follows explicit ids by itself.
async fn after_bulk(_tx: &mut Tx, _table: &str) -> StoreResult<()> {
    Ok(())
}

/// A record read with its audit row, in one write transaction.
async fn read_audited(
    store: &SqliteStore,
    actor: &super::Actor,
    kind: Kind,
    id: i64,
    now_ms: i64,
) -> StoreResult<Option<super::Row>> {
    let mut tx = store.begin().await?;
    let r = sqlx::query(&format!(
        "SELECT {ROW_COLS} FROM {} WHERE id = $1",
        kind.table()
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = r.as_ref().map(row_of).transpose()?;
    if row.is_some() {
        audit(
            &mut tx,
            now_ms,
            Some(actor),
            "read",
            kind.entity(),
            Some(id),
            None,
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// A patient's record: the audited read, then the lists.
async fn patient_record(
    store: &SqliteStore,
    actor: &super::Actor,
    patient_id: i64,
    limit: i64,
    now_ms: i64,
) -> StoreResult<Option<super::PatientRows>> {
    let Some(patient) = read_audited(store, actor, Kind::Patient, patient_id, now_ms).await? else {
        return Ok(None);
    };
    Ok(Some(super::PatientRows {
        patient,
        implants: store.list(Kind::Implant, Some(patient_id), limit).await?,
        trials: store.list(Kind::Trial, Some(patient_id), limit).await?,
        complications: store
            .list(Kind::Complication, Some(patient_id), limit)
            .await?,
    }))
}

include!("common.rs");
