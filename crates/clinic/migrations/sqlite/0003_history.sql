-- thecal-clinic schema 3 (sqlite): the implant's imported pump log, revisions and scale
-- assessments.

-- Entries of the pump's hash-chained event log, as imported from `thecal programmer logs
-- --json`; one row per (implant, sequence number), so a re-import adds nothing twice.
CREATE TABLE implant_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    implant_id INTEGER NOT NULL REFERENCES implants(id),
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    at_utc TEXT,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    event TEXT NOT NULL,
    hash TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    imported_by TEXT NOT NULL,
    UNIQUE (implant_id, seq)
);

CREATE TABLE revisions (
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
CREATE INDEX revisions_parent_status ON revisions (parent_id, status, id);
CREATE INDEX revisions_status ON revisions (status);

CREATE TABLE assessments (
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
CREATE INDEX assessments_parent_status ON assessments (parent_id, status, id);
CREATE INDEX assessments_status ON assessments (status);
