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

-- The refill calendar's generation: raised by every change the calendar depends on
-- (patients, implants, prescriptions, and visits that are or were closed), in the
-- changing transaction, so a service instance may keep the computed due dates while the
-- generation it computed them at is still the database's.
CREATE TABLE calendar_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO calendar_generation (id, n) VALUES (1, 0);
CREATE TRIGGER calendar_patients_insert AFTER INSERT ON patients
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_patients_update AFTER UPDATE ON patients
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_patients_delete AFTER DELETE ON patients
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_implants_insert AFTER INSERT ON implants
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_implants_update AFTER UPDATE ON implants
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_implants_delete AFTER DELETE ON implants
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_prescriptions_insert AFTER INSERT ON prescriptions
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_prescriptions_update AFTER UPDATE ON prescriptions
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_prescriptions_delete AFTER DELETE ON prescriptions
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_visits_insert AFTER INSERT ON visits WHEN NEW.status = 'closed'
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_visits_update AFTER UPDATE ON visits
WHEN OLD.status = 'closed' OR NEW.status = 'closed'
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER calendar_visits_delete AFTER DELETE ON visits WHEN OLD.status = 'closed'
BEGIN UPDATE calendar_generation SET n = n + 1 WHERE id = 1; END;
