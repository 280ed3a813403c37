//! The PostgreSQL store, for a clinic network: several stateless service instances may
//! share one database. Migrations run under a transaction-scoped advisory lock, so
//! instances starting together apply each migration once; inserts under one parent take
//! an advisory lock on that parent so their sequence numbers never collide.
//!
//! Durability: every connection commits synchronously (`synchronous_commit` is raised to
//! `on` at connect if the server, database or role set it `off`; stronger settings such as
//! `remote_apply` are kept), so every change and its audit row survive a crash once
//! acknowledged. The one exception is a read-audit transaction — one statement that reads
//! a record and writes nothing but that read's own audit row ([`read_audited`],
//! [`patient_record`]): it commits with `synchronous_commit = off` for that transaction
//! only (`set_config(…, true)`, the function form of `SET LOCAL`), so a read does not wait
//! for a WAL flush. A crash may lose the read-audit rows of the last fraction of a second
//! (up to three times `wal_writer_delay`), never corrupt them, and never any change: the
//! WAL is written in order, so a later synchronous commit flushes every earlier one.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::{Kind, StoreError, StoreResult}; // also used by common.rs

type Db = sqlx::Postgres;
type Tx = sqlx::Transaction<'static, Db>;
const BACKEND: &str = "postgres";

/// The migrations, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "open_visit_fresh_sign_in_break_glass",
        include_str!("../../migrations/postgres/0002_open_visit_fresh_sign_in_break_glass.sql"),
    ),
    (
        3,
        "history",
        include_str!("../../migrations/postgres/0003_history.sql"),
    ),
    (
        6,
        "programming_sessions",
        include_str!("../../migrations/postgres/0006_programming_sessions.sql"),
    ),
    (
        7,
        "children_in_id_order",
        include_str!("../../migrations/postgres/0007_children_in_id_order.sql"),
    ),
];

/// Run on every new connection: changes commit synchronously whatever the server's,
/// database's or role's default (`off` becomes `on`; `local`, `remote_write`, `on` and
/// `remote_apply` are kept).
const SYNCHRONOUS_SESSION: &str = "SELECT CASE WHEN current_setting('synchronous_commit') = 'off' \
     THEN set_config('synchronous_commit', 'on', false) END";

/// Selected beside the record in a read-audit statement: this transaction only commits
/// without waiting for the WAL flush (see the module docs).
const ASYNC_COMMIT: &str = "set_config('synchronous_commit', 'off', true) AS async_commit";

/// Advisory-lock key of the migrations ("thecal" in ASCII).
const MIGRATION_LOCK: i64 = 0x7468_6563_616c;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

type Store = PgStore;

impl PgStore {
    /// Connects and applies the migrations.
    ///
    /// # Errors
    /// No connection, or a migration fails.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::query(SYNCHRONOUS_SESSION).execute(conn).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.pool.begin().await?)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
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
                                "postgres 2: setting aside second open refill visits: {e}"
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
                sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
                    StoreError::Migration(format!("postgres {version} {name}: {e}"))
                })?;
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

/// Serialises inserts under one parent record.
async fn lock_parent(tx: &mut Tx, kind: Kind, parent: i64) -> StoreResult<()> {
    let slot = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    let key = parent
        .wrapping_mul(16)
        .wrapping_add(i64::try_from(slot).unwrap_or(0));
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keeps other writers out of a table during a bulk load with explicit ids.
async fn lock_table(tx: &mut Tx, table: &str) -> StoreResult<()> {
    sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves the identity sequence past the ids a bulk load gave explicitly.
async fn after_bulk(tx: &mut Tx, table: &str) -> StoreResult<()> {
    sqlx::query(&format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
         (SELECT COALESCE(MAX(id), 1) FROM {table}))"
    ))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A record read with its audit row in one statement (a data-modifying common table
/// expression always runs to completion): one round trip and one commit, which does not
/// wait for the WAL flush (a read-audit transaction: see the module docs).
async fn read_audited(
    store: &PgStore,
    actor: &super::Actor,
    kind: Kind,
    id: i64,
    now_ms: i64,
) -> StoreResult<Option<super::Row>> {
    let r = sqlx::query(&format!(
        "WITH r AS (SELECT {ROW_COLS}, {ASYNC_COMMIT} FROM {t} WHERE id = $1), \
         a AS (INSERT INTO audit_log (at, actor_id, actor, action, entity, entity_id) \
               SELECT $2, $3, $4, 'read', $5, id FROM r) \
         SELECT {ROW_COLS} FROM r",
        t = kind.table()
    ))
    .bind(id)
    .bind(now_ms)
    .bind(actor.user_id)
    .bind(&actor.username)
    .bind(kind.entity())
    .fetch_optional(&store.pool)
    .await?;
    r.as_ref().map(row_of).transpose()
}

/// A patient's record in one statement: the patient read and its read audited (a
/// data-modifying common table expression), and its implants, trials and complications;
/// the commit does not wait for the WAL flush (a read-audit transaction: see the module
/// docs).
async fn patient_record(
    store: &PgStore,
    actor: &super::Actor,
    patient_id: i64,
    limit: i64,
    now_ms: i64,
) -> StoreResult<Option<super::PatientRows>> {
    let rows = sqlx::query(&format!(
        "WITH r AS (SELECT {ROW_COLS}, {ASYNC_COMMIT} FROM patients WHERE id = $1), \
         a AS (INSERT INTO audit_log (at, actor_id, actor, action, entity, entity_id) \
               SELECT $2, $3, $4, 'read', 'patient', id FROM r) \
         SELECT 0 AS part, {ROW_COLS} FROM r \
         UNION ALL (SELECT 1, {ROW_COLS} FROM implants WHERE parent_id = $1 ORDER BY id LIMIT $5) \
         UNION ALL (SELECT 2, {ROW_COLS} FROM trials WHERE parent_id = $1 ORDER BY id LIMIT $5) \
         UNION ALL (SELECT 3, {ROW_COLS} FROM complications WHERE parent_id = $1 \
                    ORDER BY id LIMIT $5)"
    ))
    .bind(patient_id)
    .bind(now_ms)
    .bind(actor.user_id)
    .bind(&actor.username)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    let mut patient = None;
    let (mut implants, mut trials, mut complications) = (Vec::new(), Vec::new(), Vec::new());
    for r in &rows {
        let part: i32 = sqlx::Row::try_get(r, "part")?;
        let row = row_of(r)?;
        match part {
            0 => patient = Some(row),
            1 => implants.push(row),
            2 => trials.push(row),
            _ => complications.push(row),
        }
    }
    Ok(patient.map(|patient| super::PatientRows {
        patient,
        implants,
        trials,
        complications,
    }))
}

include!("common.rs");
