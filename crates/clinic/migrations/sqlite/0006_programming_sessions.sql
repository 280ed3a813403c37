-- thecal-clinic schema 6 (sqlite): programming sessions with an implant.
-- One row per session: what the implant held when interrogated, the change intended
-- (written before anything is sent: status 'pending'), and what the implant confirmed on
-- read-back or at the next interrogation ('confirmed', 'rolled_forward', 'not_applied').

CREATE TABLE programming_sessions (
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
CREATE INDEX programming_sessions_parent_status ON programming_sessions (parent_id, status, id);
CREATE INDEX programming_sessions_status ON programming_sessions (status);
