-- thecal-clinic schema 2 (sqlite): one open refill visit per implant as a database
-- guarantee; the time of a session's last password check (fresh sign-in); break-glass
-- grants; the refill calendar's generation counter.

-- At most one open visit per implant, whoever inserts it and however requests race.
CREATE UNIQUE INDEX visits_one_open_per_implant ON visits (parent_id) WHERE status = 'open';

-- When the session's user last gave the password (sign-in or re-authentication).
ALTER TABLE sessions ADD COLUMN authenticated_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET authenticated_at = created_at;

-- Break-glass access: a user outside the normal access to a patient's record, with a
-- stated reason, until expires_at. Rows are never changed or deleted.
CREATE TABLE break_glass (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    reason TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX break_glass_user_patient ON break_glass (user_id, patient_id, expires_at);
CREATE TRIGGER break_glass_no_update BEFORE UPDATE ON break_glass
BEGIN SELECT RAISE(ABORT, 'break-glass grants are append-only'); END;
CREATE TRIGGER break_glass_no_delete BEFORE DELETE ON break_glass
BEGIN SELECT RAISE(ABORT, 'break-glass grants are append-only'); END;
