// The query code shared by the SQLite and PostgreSQL stores, included by each with its own
// `Db`, `Tx`, `Store`, `Store::begin`, `lock_parent`, `lock_table` and `after_bulk`. Table names come from `Kind::table()`
// (fixed strings); every value is a bound parameter.

use async_trait::async_trait;
use sqlx::Row as _;

use super::{
    Actor, AuditRow, BulkRow, CalendarRow, EventRow, NewRow, Op, PatientRows, Row, SessionRow,
    SessionUser, Storage, UserRow, stamp,
};

type DbRow = <Db as sqlx::Database>::Row;

const ROW_COLS: &str = "id, parent_id, ukey, seq, status, rev, data, created_at";

fn row_of(r: &DbRow) -> StoreResult<Row> {
    Ok(Row {
        id: r.try_get("id")?,
        parent_id: r.try_get("parent_id")?,
        key: r.try_get("ukey")?,
        seq: r.try_get("seq")?,
        status: r.try_get("status")?,
        rev: r.try_get("rev")?,
        data: r.try_get("data")?,
        created_at: r.try_get("created_at")?,
    })
}

fn user_of(r: &DbRow) -> StoreResult<UserRow> {
    Ok(UserRow {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
        active: r.try_get("active")?,
    })
}

const AUDIT_COLS: &str = "id, at, actor, action, entity, entity_id, before_data, after_data";

fn audit_row_of(r: &DbRow) -> StoreResult<AuditRow> {
    Ok(AuditRow {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        entity: r.try_get("entity")?,
        entity_id: r.try_get("entity_id")?,
        before: r.try_get("before_data")?,
        after: r.try_get("after_data")?,
    })
}

fn unique(e: sqlx::Error, field: &'static str) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Duplicate { field };
    }
    StoreError::Db(e)
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut Tx,
    at: i64,
    actor: Option<&Actor>,
    action: &str,
    entity: &str,
    entity_id: Option<i64>,
    before: Option<&str>,
    after: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor, action, entity, entity_id, before_data, \
         after_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(actor.map(|a| a.user_id))
    .bind(actor.map_or("system", |a| a.username.as_str()))
    .bind(action)
    .bind(entity)
    .bind(entity_id)
    .bind(before)
    .bind(after)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Before migration 2 makes "one open refill visit per implant" a unique index: every
/// open visit of an implant that has a later open visit is set aside ([`super::SET_ASIDE`],
/// the reason in its record, revision raised) with its audit row, in the migration's
/// transaction, so the index can be made and no visit is lost. Returns how many.
async fn set_aside_duplicate_open_visits(tx: &mut Tx, now_ms: i64) -> StoreResult<usize> {
    let rows = sqlx::query(&format!(
        "SELECT {ROW_COLS}, (SELECT MAX(w.id) FROM visits w WHERE w.parent_id = v.parent_id \
         AND w.status = 'open') AS kept FROM visits v WHERE v.status = 'open' AND EXISTS \
         (SELECT 1 FROM visits w WHERE w.parent_id = v.parent_id AND w.status = 'open' \
         AND w.id > v.id) ORDER BY v.id"
    ))
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        let before = row_of(r)?;
        let kept: i64 = r.try_get("kept")?;
        let reason = format!(
            "set aside when one open refill visit per implant became a rule (schema \
             migration 2): implant {} also had visit {kept} open, opened later, which stays \
             its open visit; review this visit and close it",
            before.parent_id.unwrap_or_default()
        );
        let mut data: serde_json::Value = serde_json::from_str(&before.data)
            .map_err(|e| StoreError::Migration(format!("visit {}: record: {e}", before.id)))?;
        if let serde_json::Value::Object(m) = &mut data {
            m.insert("set_aside".into(), reason.into());
        } else {
            return Err(StoreError::Migration(format!(
                "visit {}: the record is not a JSON object",
                before.id
            )));
        }
        let data = data.to_string();
        sqlx::query(
            "UPDATE visits SET status = $1, data = $2, rev = rev + 1, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(super::SET_ASIDE)
        .bind(&data)
        .bind(now_ms)
        .bind(before.id)
        .execute(&mut **tx)
        .await?;
        audit(tx, now_ms, None, "update", "visit", Some(before.id), Some(&before.data), Some(&data))
            .await?;
    }
    Ok(rows.len())
}

async fn insert_tx(tx: &mut Tx, actor: &Actor, kind: Kind, row: NewRow, now_ms: i64) -> StoreResult<Row> {
    let t = kind.table();
    let seq: i64 = match row.parent_id {
        Some(p) => {
            lock_parent(tx, kind, p).await?;
            sqlx::query_scalar(&format!(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM {t} WHERE parent_id = $1"
            ))
            .bind(p)
            .fetch_one(&mut **tx)
            .await?
        }
        None => 1,
    };
    let id: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO {t} (parent_id, ukey, seq, status, rev, data, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7) RETURNING id"
    ))
    .bind(row.parent_id)
    .bind(&row.key)
    .bind(seq)
    .bind(&row.status)
    .bind(&row.data)
    .bind(now_ms)
    .bind(now_ms)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| unique(e, kind.key_field()))?;
    let data = stamp(&row.data, id, seq);
    sqlx::query(&format!("UPDATE {t} SET data = $1 WHERE id = $2"))
        .bind(&data)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    audit(tx, now_ms, Some(actor), "create", kind.entity(), Some(id), None, Some(&data))
        .await?;
    Ok(Row {
        id,
        parent_id: row.parent_id,
        key: row.key,
        seq,
        status: row.status,
        rev: 1,
        data,
        created_at: now_ms,
    })
}

#[allow(clippy::too_many_arguments)]
async fn update_tx(
    tx: &mut Tx,
    actor: &Actor,
    kind: Kind,
    id: i64,
    rev: i64,
    status: &str,
    data: &str,
    now_ms: i64,
) -> StoreResult<Row> {
    let t = kind.table();
    let before = sqlx::query(&format!("SELECT {ROW_COLS} FROM {t} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let before = match before.as_ref().map(row_of).transpose()? {
        Some(b) => b,
        None => return Err(StoreError::NotFound),
    };
    if before.rev != rev {
        return Err(StoreError::Stale);
    }
    let done = sqlx::query(&format!(
        "UPDATE {t} SET status = $1, data = $2, rev = rev + 1, updated_at = $3 \
         WHERE id = $4 AND rev = $5"
    ))
    .bind(status)
    .bind(data)
    .bind(now_ms)
    .bind(id)
    .bind(rev)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Stale);
    }
    audit(
        tx,
        now_ms,
        Some(actor),
        "update",
        kind.entity(),
        Some(id),
        Some(&before.data),
        Some(data),
    )
    .await?;
    Ok(Row {
        status: status.to_owned(),
        data: data.to_owned(),
        rev: rev + 1,
        ..before
    })
}

#[allow(clippy::too_many_arguments)] // update: actor, kind, id, rev, status, data, time
#[async_trait]
impl Storage for Store {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create_user(
        &self,
        actor: Option<&Actor>,
        username: &str,
        password_hash: &str,
        role: &str,
        now_ms: i64,
    ) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, role, active, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .bind(true)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique(e, "username"))?;
        let after = serde_json::json!({ "username": username, "role": role }).to_string();
        audit(&mut tx, now_ms, actor, "create", "user", Some(id), None, Some(&after)).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRow>> {
        let r = sqlx::query(
            "SELECT id, username, password_hash, role, active FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(user_of).transpose()
    }

    async fn user_count(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn users(&self) -> StoreResult<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT id, username, password_hash, role, active FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_of).collect()
    }

    async fn update_user(
        &self,
        actor: &Actor,
        id: i64,
        role: &str,
        active: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let Some(old) = sqlx::query(
            "SELECT id, username, password_hash, role, active FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound);
        };
        let old = user_of(&old)?;
        sqlx::query("UPDATE users SET role = $1, active = $2 WHERE id = $3")
            .bind(role)
            .bind(active)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if !active || old.role != role {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let view = |role: &str, active: bool| {
            serde_json::json!({ "username": old.username, "role": role, "active": active })
                .to_string()
        };
        let before = view(&old.role, old.active);
        let after = view(role, active);
        audit(
            &mut tx,
            now_ms,
            Some(actor),
            "update",
            "user",
            Some(id),
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(&self, s: &SessionRow, username: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at, \
             authenticated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.token_hash)
        .bind(s.user_id)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.created_at)
        .execute(&mut *tx)
        .await?;
        let actor = Actor {
            user_id: s.user_id,
            username: username.to_owned(),
        };
        audit(&mut tx, s.created_at, Some(&actor), "login", "user", Some(s.user_id), None, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<SessionUser>> {
        let r = sqlx::query(
            "SELECT u.id, u.username, u.password_hash, u.role, u.active, s.csrf, \
             s.authenticated_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(SessionUser {
                user: user_of(&r)?,
                csrf: r.try_get("csrf")?,
                authenticated_at: r.try_get("authenticated_at")?,
            })),
        }
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn login_failed(&self, username: &str, at_ms: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO login_failures (username, at) VALUES ($1, $2)")
            .bind(username)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        let after = serde_json::json!({ "username": username }).to_string();
        audit(&mut tx, at_ms, None, "login_failed", "user", None, None, Some(&after)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn login_failures_since(&self, username: &str, since_ms: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND at >= $2",
        )
        .bind(username)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reauthenticate(&self, actor: &Actor, token_hash: &str, at_ms: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE sessions SET authenticated_at = $1 WHERE token_hash = $2")
            .bind(at_ms)
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        audit(&mut tx, at_ms, Some(actor), "reauthenticate", "user", Some(actor.user_id), None, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn grant_break_glass(
        &self,
        actor: &Actor,
        patient_id: i64,
        reason: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO break_glass (user_id, patient_id, reason, granted_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(actor.user_id)
        .bind(patient_id)
        .bind(reason)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
        let after = serde_json::json!({ "reason": reason, "expires_at": expires_ms }).to_string();
        audit(
            &mut tx,
            now_ms,
            Some(actor),
            "break_glass",
            "patient",
            Some(patient_id),
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn break_glass(
        &self,
        user_id: i64,
        patient_id: i64,
    ) -> StoreResult<Option<(String, i64)>> {
        let r = sqlx::query(
            "SELECT reason, expires_at FROM break_glass WHERE user_id = $1 AND patient_id = $2 \
             ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(patient_id)
        .fetch_optional(&self.pool)
        .await?;
        match r {
            Some(r) => Ok(Some((r.try_get("reason")?, r.try_get("expires_at")?))),
            None => Ok(None),
        }
    }

    async fn patient_record(
        &self,
        actor: &Actor,
        patient_id: i64,
        limit: i64,
        now_ms: i64,
    ) -> StoreResult<Option<PatientRows>> {
        patient_record(self, actor, patient_id, limit, now_ms).await
    }

    async fn calendar_generation(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT n FROM calendar_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn insert_bulk(
        &self,
        actor: Option<&Actor>,
        kind: Kind,
        rows: Vec<BulkRow>,
        now_ms: i64,
    ) -> StoreResult<Vec<i64>> {
        /// Rows per INSERT statement (9 parameters each: under both databases' limits).
        const CHUNK: usize = 500;
        let t = kind.table();
        let mut tx = self.begin().await?;
        lock_table(&mut tx, t).await?;
        let highest: i64 = sqlx::query_scalar(&format!("SELECT COALESCE(MAX(id), 0) FROM {t}"))
            .fetch_one(&mut *tx)
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut next = highest;
        for chunk in rows.chunks(CHUNK) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                "INSERT INTO {t} (id, parent_id, ukey, seq, status, rev, data, created_at, \
                 updated_at) "
            ));
            qb.push_values(chunk, |mut b, r| {
                next += 1;
                ids.push(next);
                b.push_bind(next)
                    .push_bind(r.row.parent_id)
                    .push_bind(r.row.key.clone())
                    .push_bind(r.seq)
                    .push_bind(r.row.status.clone())
                    .push_bind(1_i64)
                    .push_bind(stamp(&r.row.data, next, r.seq))
                    .push_bind(now_ms)
                    .push_bind(now_ms);
            });
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(|e| unique(e, kind.key_field()))?;
        }
        after_bulk(&mut tx, t).await?;
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            let after = serde_json::json!({ "bulk": ids.len(), "first_id": first, "last_id": last })
                .to_string();
            audit(&mut tx, now_ms, actor, "create", kind.entity(), None, None, Some(&after))
                .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn insert(&self, actor: &Actor, kind: Kind, row: NewRow, now_ms: i64) -> StoreResult<Row> {
        let mut tx = self.begin().await?;
        let r = insert_tx(&mut tx, actor, kind, row, now_ms).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn get(&self, kind: Kind, id: i64) -> StoreResult<Option<Row>> {
        let r = sqlx::query(&format!(
            "SELECT {ROW_COLS} FROM {} WHERE id = $1",
            kind.table()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(row_of).transpose()
    }

    async fn list_under(&self, kind: Kind, parent_ids: &[i64]) -> StoreResult<Vec<Row>> {
        let mut ids = parent_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::new();
        for chunk in ids.chunks(super::GET_MANY_CHUNK) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {ROW_COLS} FROM {} WHERE parent_id IN ({marks}) ORDER BY parent_id, id",
                kind.table()
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(row_of(&r)?);
            }
        }
        Ok(out)
    }

    async fn get_many(&self, kind: Kind, ids: &[i64]) -> StoreResult<Vec<Row>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::GET_MANY_CHUNK) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {ROW_COLS} FROM {} WHERE id IN ({marks}) ORDER BY id",
                kind.table()
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(row_of(&r)?);
            }
        }
        Ok(out)
    }

    async fn read_logged(
        &self,
        actor: &Actor,
        kind: Kind,
        id: i64,
        now_ms: i64,
    ) -> StoreResult<Option<Row>> {
        read_audited(self, actor, kind, id, now_ms).await
    }

    async fn update(
        &self,
        actor: &Actor,
        kind: Kind,
        id: i64,
        rev: i64,
        status: &str,
        data: &str,
        now_ms: i64,
    ) -> StoreResult<Row> {
        let mut tx = self.begin().await?;
        let r = update_tx(&mut tx, actor, kind, id, rev, status, data, now_ms).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn list(&self, kind: Kind, parent_id: Option<i64>, limit: i64) -> StoreResult<Vec<Row>> {
        let t = kind.table();
        let rows = match parent_id {
            Some(p) => {
                sqlx::query(&format!(
                    "SELECT {ROW_COLS} FROM {t} WHERE parent_id = $1 ORDER BY id LIMIT $2"
                ))
                .bind(p)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {ROW_COLS} FROM {t} ORDER BY id LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(row_of).collect()
    }

    async fn latest(
        &self,
        kind: Kind,
        parent_id: i64,
        status: Option<&str>,
    ) -> StoreResult<Option<Row>> {
        let t = kind.table();
        let r = match status {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {ROW_COLS} FROM {t} WHERE parent_id = $1 AND status = $2 \
                     ORDER BY id DESC LIMIT 1"
                ))
                .bind(parent_id)
                .bind(s)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {ROW_COLS} FROM {t} WHERE parent_id = $1 ORDER BY seq DESC LIMIT 1"
                ))
                .bind(parent_id)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        r.as_ref().map(row_of).transpose()
    }

    async fn calendar_rows(&self) -> StoreResult<Vec<CalendarRow>> {
        let rows = sqlx::query(
            "SELECT i.data AS implant, p.data AS patient, \
             (SELECT r.data FROM prescriptions r WHERE r.parent_id = i.id \
              ORDER BY r.seq DESC LIMIT 1) AS prescription, \
             (SELECT v.data FROM visits v WHERE v.parent_id = i.id AND v.status = 'closed' \
              ORDER BY v.id DESC LIMIT 1) AS last_visit \
             FROM implants i JOIN patients p ON p.id = i.parent_id \
             WHERE i.status = 'active' ORDER BY i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CalendarRow {
                    implant: r.try_get("implant")?,
                    patient: r.try_get("patient")?,
                    prescription: r.try_get("prescription")?,
                    last_visit: r.try_get("last_visit")?,
                })
            })
            .collect()
    }

    async fn with_status(&self, kind: Kind, status: &str) -> StoreResult<Vec<Row>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLS} FROM {} WHERE status = $1 ORDER BY id",
            kind.table()
        ))
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    async fn audit(&self, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(&sql)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row_of).collect()
    }

    async fn record_access(
        &self,
        actor: &Actor,
        action: &str,
        entity: &str,
        entity_id: Option<i64>,
        detail: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        audit(&mut tx, now_ms, Some(actor), action, entity, entity_id, None, Some(detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entry(&self, id: i64) -> StoreResult<Option<AuditRow>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE id = $1");
        let r = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(audit_row_of).transpose()
    }

    async fn audit_of(&self, records: &[(&str, i64)], limit: i64) -> StoreResult<Vec<AuditRow>> {
        let mut out = vec![];
        // Two parameters per record: well under SQLite's bound-parameter limit per chunk.
        for chunk in records.chunks(super::GET_MANY_CHUNK / 2) {
            let mut cond = vec![];
            for i in 0..chunk.len() {
                cond.push(format!("(entity = ${} AND entity_id = ${})", 2 * i + 1, 2 * i + 2));
            }
            let sql = format!(
                "SELECT {AUDIT_COLS} FROM audit_log WHERE {} ORDER BY id",
                cond.join(" OR ")
            );
            let mut q = sqlx::query(&sql);
            for (e, id) in chunk {
                q = q.bind(*e).bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(audit_row_of(&r)?);
            }
        }
        out.sort_by_key(|a| a.id);
        out.dedup_by_key(|a| a.id);
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }

    async fn apply(&self, actor: &Actor, ops: Vec<Op>, now_ms: i64) -> StoreResult<Vec<Row>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                Op::Insert(kind, row) => insert_tx(&mut tx, actor, kind, row, now_ms).await?,
                Op::Update {
                    kind,
                    id,
                    rev,
                    status,
                    data,
                } => update_tx(&mut tx, actor, kind, id, rev, &status, &data, now_ms).await?,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn import_events(
        &self,
        actor: &Actor,
        implant_id: i64,
        events: &[EventRow],
        now_ms: i64,
    ) -> StoreResult<usize> {
        let mut tx = self.begin().await?;
        lock_parent(&mut tx, Kind::Implant, implant_id).await?;
        let mut added = 0usize;
        for e in events {
            let done = sqlx::query(
                "INSERT INTO implant_events (implant_id, seq, at_ms, at_utc, category, \
                 description, event, hash, imported_at, imported_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (implant_id, seq) DO NOTHING",
            )
            .bind(implant_id)
            .bind(e.seq)
            .bind(e.at_ms)
            .bind(&e.at_utc)
            .bind(&e.category)
            .bind(&e.description)
            .bind(&e.event)
            .bind(&e.hash)
            .bind(now_ms)
            .bind(&actor.username)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                added = added.saturating_add(1);
            }
        }
        let after = serde_json::json!({
            "entries": events.len(),
            "added": added,
            "first_seq": events.first().map(|e| e.seq),
            "last_seq": events.last().map(|e| e.seq),
        })
        .to_string();
        audit(
            &mut tx,
            now_ms,
            Some(actor),
            "import",
            "implant_events",
            Some(implant_id),
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn events(
        &self,
        implant_id: i64,
        from_seq: i64,
        to_seq: i64,
    ) -> StoreResult<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, at_utc, category, description, event, hash FROM implant_events \
             WHERE implant_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
        )
        .bind(implant_id)
        .bind(from_seq)
        .bind(to_seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    at_utc: r.try_get("at_utc")?,
                    category: r.try_get("category")?,
                    description: r.try_get("description")?,
                    event: r.try_get("event")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }
}
