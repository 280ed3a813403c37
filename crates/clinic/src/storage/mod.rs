//! Storage: one trait, one implementation per database (SQLite, PostgreSQL), each with its
//! own migrations, applied at start.
//!
//! Records are rows of one shape per table — id, parent, unique key, sequence, status,
//! revision and the record's JSON — so the typed record lives in [`crate::domain`] and the
//! database only indexes what is searched. Every change writes its audit row (who, when,
//! what, before and after) in the same transaction; reading a patient's record is
//! audited the same way. The audit table refuses UPDATE and DELETE by trigger.
//!
//! The two implementations share their query text (PostgreSQL-style `$n` placeholders,
//! which SQLite accepts too) and differ in connection, transaction start (`BEGIN
//! IMMEDIATE` on SQLite, so a writer never fails on a lock upgrade) and migrations.
//! `sqlx::Any` is not used: it mistranslates placeholders and timestamps.

use std::sync::Arc;

use async_trait::async_trait;

mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The status of a refill visit set aside at schema migration 2: an older second open
/// visit of an implant, kept (never deleted) with the reason in its record, audited, and
/// no longer the implant's open visit, so the one-open-visit index can be made.
pub const SET_ASIDE: &str = "set_aside";

/// A kind of record, and its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Patients (key: record number).
    Patient,
    /// Implants (key: pump serial), parent: patient.
    Implant,
    /// Prescription versions, parent: implant; `seq` is the version.
    Prescription,
    /// Refill visits, parent: implant.
    Visit,
    /// Trials, parent: patient.
    Trial,
    /// Complications, parent: patient.
    Complication,
    /// MRI episodes, parent: implant.
    MriEpisode,
    /// Alarms, parent: implant.
    Alarm,
    /// Replacement plans, parent: implant.
    ReplacementPlan,
    /// Revisions (catheter revision, pump replacement, explant), parent: implant.
    Revision,
    /// Scale assessments with their raw answers, parent: patient.
    Assessment,
    /// Programming sessions with the implant, parent: implant.
    ProgrammingSession,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 12] = [
        Kind::Patient,
        Kind::Implant,
        Kind::Prescription,
        Kind::Visit,
        Kind::Trial,
        Kind::Complication,
        Kind::MriEpisode,
        Kind::Alarm,
        Kind::ReplacementPlan,
        Kind::Revision,
        Kind::Assessment,
        Kind::ProgrammingSession,
    ];

    /// The table (a fixed name: never built from input).
    pub const fn table(self) -> &'static str {
        match self {
            Kind::Patient => "patients",
            Kind::Implant => "implants",
            Kind::Prescription => "prescriptions",
            Kind::Visit => "visits",
            Kind::Trial => "trials",
            Kind::Complication => "complications",
            Kind::MriEpisode => "mri_episodes",
            Kind::Alarm => "alarms",
            Kind::ReplacementPlan => "replacement_plans",
            Kind::Revision => "revisions",
            Kind::Assessment => "assessments",
            Kind::ProgrammingSession => "programming_sessions",
        }
    }

    /// The request field the unique key comes from.
    pub const fn key_field(self) -> &'static str {
        match self {
            Kind::Patient => "mrn",
            Kind::Implant => "serial",
            _ => "key",
        }
    }

    /// The entity name in the audit log.
    pub const fn entity(self) -> &'static str {
        match self {
            Kind::Patient => "patient",
            Kind::Implant => "implant",
            Kind::Prescription => "prescription",
            Kind::Visit => "visit",
            Kind::Trial => "trial",
            Kind::Complication => "complication",
            Kind::MriEpisode => "mri_episode",
            Kind::Alarm => "alarm",
            Kind::ReplacementPlan => "replacement_plan",
            Kind::Revision => "revision",
            Kind::Assessment => "assessment",
            Kind::ProgrammingSession => "programming_session",
        }
    }
}

/// Who does something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// User id.
    pub user_id: i64,
    /// User name.
    pub username: String,
}

/// A record row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Id.
    pub id: i64,
    /// Parent record.
    pub parent_id: Option<i64>,
    /// Unique key.
    pub key: Option<String>,
    /// Sequence under the parent (1, 2, …): the prescription version.
    pub seq: i64,
    /// Status ("active", "closed", …).
    pub status: String,
    /// Revision, for optimistic updates.
    pub rev: i64,
    /// The record as JSON.
    pub data: String,
    /// Created, ms since the epoch.
    pub created_at: i64,
}

/// A record to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    /// Parent.
    pub parent_id: Option<i64>,
    /// Unique key.
    pub key: Option<String>,
    /// Status.
    pub status: String,
    /// JSON, with `"id": 0` to be replaced by the new id (and `"version": 0` by `seq`).
    pub data: String,
}

/// A record of a bulk load, with its sequence under the parent given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRow {
    /// The record.
    pub row: NewRow,
    /// Sequence under the parent (the prescription version), unique per parent.
    pub seq: i64,
}

/// A patient's record as rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRows {
    /// The patient.
    pub patient: Row,
    /// Implants.
    pub implants: Vec<Row>,
    /// Trials.
    pub trials: Vec<Row>,
    /// Complications.
    pub complications: Vec<Row>,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role name.
    pub role: String,
    /// May sign in.
    pub active: bool,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie token, hex (the token itself is never stored).
    pub token_hash: String,
    /// User.
    pub user_id: i64,
    /// The session's CSRF token.
    pub csrf: String,
    /// Created, ms.
    pub created_at: i64,
    /// Expires, ms.
    pub expires_at: i64,
}

/// The user behind a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// User.
    pub user: UserRow,
    /// CSRF token.
    pub csrf: String,
    /// When the user last gave the password in this session (sign-in or
    /// re-authentication), ms.
    pub authenticated_at: i64,
}

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Id (increasing).
    pub id: i64,
    /// When, ms since the epoch.
    pub at: i64,
    /// User name ("anonymous" for failed sign-ins).
    pub actor: String,
    /// create, update, read, login, logout, login_failed.
    pub action: String,
    /// Entity.
    pub entity: String,
    /// Entity id.
    pub entity_id: Option<i64>,
    /// Before (JSON).
    pub before: Option<String>,
    /// After (JSON).
    pub after: Option<String>,
}

/// The rows the refill calendar needs for one active implant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarRow {
    /// Implant JSON.
    pub implant: String,
    /// Patient JSON.
    pub patient: String,
    /// Latest prescription JSON.
    pub prescription: Option<String>,
    /// Latest closed visit JSON.
    pub last_visit: Option<String>,
}

/// One change of several applied together ([`Storage::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert a record (as [`Storage::insert`]).
    Insert(Kind, NewRow),
    /// Replace a record's status and JSON if its revision is still `rev` (as
    /// [`Storage::update`]).
    Update {
        /// Kind.
        kind: Kind,
        /// Id.
        id: i64,
        /// Expected revision.
        rev: i64,
        /// New status.
        status: String,
        /// New JSON.
        data: String,
    },
}

/// One entry of an implant's imported pump log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The entry's sequence number in the pump's chain.
    pub seq: i64,
    /// The pump's monotonic time, ms.
    pub at_ms: i64,
    /// The wall-clock time the programmer gave the entry (RFC 3339), when known.
    pub at_utc: Option<String>,
    /// alarm, program, refill, bolus, delivery, fault, telemetry or other.
    pub category: String,
    /// The entry in words.
    pub description: String,
    /// The typed event, JSON.
    pub event: String,
    /// The entry's hash, hex.
    pub hash: String,
}

/// What went wrong in storage.
#[derive(Debug)]
pub enum StoreError {
    /// A unique key already exists.
    Duplicate {
        /// The request field.
        field: &'static str,
    },
    /// The row changed since it was read (optimistic update).
    Stale,
    /// No such row.
    NotFound,
    /// The database failed (logged, never sent to the client).
    Db(sqlx::Error),
    /// Migration failed.
    Migration(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Duplicate { field } => write!(f, "{field} already exists"),
            StoreError::Stale => f.write_str("the record changed meanwhile; reload and retry"),
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Db(e) => write!(f, "database error: {e}"),
            StoreError::Migration(e) => write!(f, "migration failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

/// Ids read by one statement of [`Storage::get_many`] (under SQLite's bound-parameter
/// limit).
pub const GET_MANY_CHUNK: usize = 500;

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The clinic's storage. Every method that changes a record writes its audit row in the
/// same transaction.
#[allow(clippy::too_many_arguments)] // update: actor, kind, id, rev, status, data, time
#[async_trait]
pub trait Storage: Send + Sync {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Creates a user; audited with `actor` (none for the first administrator at start).
    async fn create_user(
        &self,
        actor: Option<&Actor>,
        username: &str,
        password_hash: &str,
        role: &str,
        now_ms: i64,
    ) -> StoreResult<i64>;
    /// A user by name.
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRow>>;
    /// Number of users.
    async fn user_count(&self) -> StoreResult<i64>;
    /// Every account, by user name (with the password hash: never sent to anyone).
    async fn users(&self) -> StoreResult<Vec<UserRow>>;
    /// Sets an account's role and whether it may sign in, audited with before and after;
    /// the sessions of an account disabled or given another role end in the same
    /// transaction. [`StoreError::NotFound`] for no such account.
    async fn update_user(
        &self,
        actor: &Actor,
        id: i64,
        role: &str,
        active: bool,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Stores a session and audits the sign-in.
    async fn create_session(&self, s: &SessionRow, username: &str) -> StoreResult<()>;
    /// The live session with this token hash.
    async fn session(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<SessionUser>>;
    /// Ends a session (sign-out, or a session replaced at sign-in).
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Records a failed sign-in (audited).
    async fn login_failed(&self, username: &str, at_ms: i64) -> StoreResult<()>;
    /// Failed sign-ins for `username` since `since_ms`.
    async fn login_failures_since(&self, username: &str, since_ms: i64) -> StoreResult<i64>;
    /// Records that the session's user gave the password again (audited).
    async fn reauthenticate(&self, actor: &Actor, token_hash: &str, at_ms: i64) -> StoreResult<()>;
    /// Grants `actor` break-glass access to a patient's record until `expires_ms`, with
    /// the stated reason (audited in the same transaction).
    async fn grant_break_glass(
        &self,
        actor: &Actor,
        patient_id: i64,
        reason: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()>;
    /// The latest break-glass grant of a user for a patient: (reason, expires, ms), live or
    /// not.
    async fn break_glass(
        &self,
        user_id: i64,
        patient_id: i64,
    ) -> StoreResult<Option<(String, i64)>>;
    /// A patient's record with the read audited: the patient, and its implants, trials and
    /// complications (oldest first, at most `limit` of each); `None` for no such patient.
    async fn patient_record(
        &self,
        actor: &Actor,
        patient_id: i64,
        limit: i64,
        now_ms: i64,
    ) -> StoreResult<Option<PatientRows>>;
    /// The refill calendar's generation: raised in the same transaction by every change
    /// the calendar depends on (patients, implants, prescriptions, closed visits).
    async fn calendar_generation(&self) -> StoreResult<i64>;
    /// Inserts many records in one transaction (a bulk load such as the benchmark's
    /// synthetic clinic): ids follow the table's highest in order, `"id": 0` and
    /// `"version": 0` are stamped as by [`Storage::insert`], and one audit row records the
    /// load (count and id range). Returns the ids in the order of `rows`.
    async fn insert_bulk(
        &self,
        actor: Option<&Actor>,
        kind: Kind,
        rows: Vec<BulkRow>,
        now_ms: i64,
    ) -> StoreResult<Vec<i64>>;
    /// Inserts a record; `data`'s `"id": 0` becomes the new id and `"version": 0` the seq.
    async fn insert(&self, actor: &Actor, kind: Kind, row: NewRow, now_ms: i64)
    -> StoreResult<Row>;
    /// A record.
    async fn get(&self, kind: Kind, id: i64) -> StoreResult<Option<Row>>;
    /// The records with these ids, by id (ids not found are left out; a repeated id is
    /// read once), in one statement per [`GET_MANY_CHUNK`] ids: a list page reads what it
    /// shows in a bounded number of queries, never one query per row.
    async fn get_many(&self, kind: Kind, ids: &[i64]) -> StoreResult<Vec<Row>>;
    /// Every record under these parents, by parent then id, in one statement per
    /// [`GET_MANY_CHUNK`] parents (the refill calendar's prescriptions of every implant).
    async fn list_under(&self, kind: Kind, parent_ids: &[i64]) -> StoreResult<Vec<Row>>;
    /// A record, with the read audited.
    async fn read_logged(
        &self,
        actor: &Actor,
        kind: Kind,
        id: i64,
        now_ms: i64,
    ) -> StoreResult<Option<Row>>;
    /// Replaces a record's status and JSON if its revision is still `rev`.
    async fn update(
        &self,
        actor: &Actor,
        kind: Kind,
        id: i64,
        rev: i64,
        status: &str,
        data: &str,
        now_ms: i64,
    ) -> StoreResult<Row>;
    /// Records under a parent (or all), oldest first, at most `limit`.
    async fn list(&self, kind: Kind, parent_id: Option<i64>, limit: i64) -> StoreResult<Vec<Row>>;
    /// The latest record under a parent, optionally with a status.
    async fn latest(
        &self,
        kind: Kind,
        parent_id: i64,
        status: Option<&str>,
    ) -> StoreResult<Option<Row>>;
    /// What the refill calendar needs, for every active implant.
    async fn calendar_rows(&self) -> StoreResult<Vec<CalendarRow>>;
    /// Records with a status (e.g. every active implant).
    async fn with_status(&self, kind: Kind, status: &str) -> StoreResult<Vec<Row>>;
    /// The audit log, newest first.
    async fn audit(&self, limit: i64) -> StoreResult<Vec<AuditRow>>;
    /// Appends one audit row for an access that changes no record (a FHIR read or export,
    /// a refused request), with `detail` (JSON) as its after-data, in its own transaction.
    async fn record_access(
        &self,
        actor: &Actor,
        action: &str,
        entity: &str,
        entity_id: Option<i64>,
        detail: &str,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// The audit rows of these records (entity name as in [`Kind::entity`], id), oldest
    /// first, at most `limit`.
    async fn audit_of(&self, records: &[(&str, i64)], limit: i64) -> StoreResult<Vec<AuditRow>>;
    /// One audit row by its id.
    async fn audit_entry(&self, id: i64) -> StoreResult<Option<AuditRow>>;
    /// Applies several inserts and updates in one transaction, each with its audit row;
    /// all or none. Returns the rows in the order of `ops`.
    async fn apply(&self, actor: &Actor, ops: Vec<Op>, now_ms: i64) -> StoreResult<Vec<Row>>;
    /// Stores verified pump-log entries of an implant in one transaction with one audit
    /// row; entries whose sequence number is already stored are skipped. Returns how many
    /// were added.
    async fn import_events(
        &self,
        actor: &Actor,
        implant_id: i64,
        events: &[EventRow],
        now_ms: i64,
    ) -> StoreResult<usize>;
    /// An implant's stored pump-log entries with `from_seq <= seq <= to_seq`, by sequence.
    async fn events(
        &self,
        implant_id: i64,
        from_seq: i64,
        to_seq: i64,
    ) -> StoreResult<Vec<EventRow>>;
}

/// Opens the storage a URL names, applying migrations: `sqlite://PATH` or
/// `postgres://…`/`postgresql://…`.
///
/// # Errors
/// A URL without a known scheme, a connection failure, or a failed migration.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Storage>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ))
    } else {
        Err(StoreError::Migration(
            "--database must start with sqlite:// or postgres://".into(),
        ))
    }
}

/// Replaces the `"id":0` and `"version":0` placeholders of a record's JSON.
pub(crate) fn stamp(data: &str, id: i64, seq: i64) -> String {
    match serde_json::from_str::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(mut m)) => {
            if m.contains_key("id") {
                m.insert("id".into(), id.into());
            }
            if m.contains_key("version") {
                m.insert("version".into(), seq.into());
            }
            serde_json::Value::Object(m).to_string()
        }
        _ => data.to_owned(),
    }
}
