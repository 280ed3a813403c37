-- thecal-clinic schema 1 (sqlite): accounts, sessions, the audit log and the clinic's records.
-- Records share one shape: the typed record is JSON in data; indexed columns beside it.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX login_failures_user_at ON login_failures (username, at);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id INTEGER,
    before_data TEXT,
    after_data TEXT
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);

-- The audit log is append-only.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER,
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX patients_parent_status ON patients (parent_id, status, id);
CREATE INDEX patients_status ON patients (status);

CREATE TABLE implants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES patients(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX implants_parent_status ON implants (parent_id, status, id);
CREATE INDEX implants_status ON implants (status);

CREATE TABLE prescriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES implants(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX prescriptions_parent_status ON prescriptions (parent_id, status, id);
CREATE INDEX prescriptions_status ON prescriptions (status);

CREATE TABLE visits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES implants(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX visits_parent_status ON visits (parent_id, status, id);
CREATE INDEX visits_status ON visits (status);

CREATE TABLE trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES patients(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX trials_parent_status ON trials (parent_id, status, id);
CREATE INDEX trials_status ON trials (status);

CREATE TABLE complications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES patients(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX complications_parent_status ON complications (parent_id, status, id);
CREATE INDEX complications_status ON complications (status);

CREATE TABLE mri_episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES implants(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX mri_episodes_parent_status ON mri_episodes (parent_id, status, id);
CREATE INDEX mri_episodes_status ON mri_episodes (status);

CREATE TABLE alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES implants(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX alarms_parent_status ON alarms (parent_id, status, id);
CREATE INDEX alarms_status ON alarms (status);

CREATE TABLE replacement_plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES implants(id),
    ukey TEXT UNIQUE,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    rev INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (parent_id, seq)
);
CREATE INDEX replacement_plans_parent_status ON replacement_plans (parent_id, status, id);
CREATE INDEX replacement_plans_status ON replacement_plans (status);

