-- thecal-clinic schema 7 (postgres): each record table's children listed in id order from one
-- index range. The (parent_id, status, id) indexes serve a status filter but not ORDER BY id:
-- on PostgreSQL, a generic plan for "WHERE parent_id = $1 ORDER BY id LIMIT $2" then walked
-- the primary key and filtered a million visits (about 1 s a query at 10,000 patients).

CREATE INDEX patients_parent_id ON patients (parent_id, id);
CREATE INDEX implants_parent_id ON implants (parent_id, id);
CREATE INDEX prescriptions_parent_id ON prescriptions (parent_id, id);
CREATE INDEX visits_parent_id ON visits (parent_id, id);
CREATE INDEX trials_parent_id ON trials (parent_id, id);
CREATE INDEX complications_parent_id ON complications (parent_id, id);
CREATE INDEX mri_episodes_parent_id ON mri_episodes (parent_id, id);
CREATE INDEX alarms_parent_id ON alarms (parent_id, id);
CREATE INDEX replacement_plans_parent_id ON replacement_plans (parent_id, id);
CREATE INDEX revisions_parent_id ON revisions (parent_id, id);
CREATE INDEX assessments_parent_id ON assessments (parent_id, id);
CREATE INDEX programming_sessions_parent_id ON programming_sessions (parent_id, id);
