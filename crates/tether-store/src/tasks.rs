//! Tasks handed to delegates: stored durably so none is lost to a manager
//! restart, assigned under a lease the delegate renews with its heartbeats, and
//! offered again (a bounded number of times) when the lease lapses or the
//! delegate disconnects. A result is stored once: only the live attempt of the
//! delegate holding the task can complete it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tether_domain::Scope;

use crate::db::now_ms;
use crate::error::{Result, StoreError};
use crate::tokens::new_id;
use crate::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for an eligible delegate.
    Queued,
    /// Held by a delegate under a lease.
    Assigned,
    Succeeded,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Assigned => "assigned",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Assigned, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed)
    }
}

/// One delegate's go at a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAttempt {
    pub attempt: u32,
    pub delegate_id: String,
    pub assigned_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// How it ended: `succeeded`, `failed`, or why it was taken back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: String,
    pub scope: Scope,
    /// Never secret values: those are resolved at hand-over.
    pub payload: Value,
    pub selectors: Vec<String>,
    /// How long one attempt may run on a delegate.
    pub timeout_ms: u64,
    pub max_attempts: u32,
    /// How long the task may wait and run in all before it fails.
    pub deadline_ms: u64,
    /// The connector it runs through, if any (listed by [`Store::connector_tasks`]).
    pub connector: Option<String>,
    /// For a task that must not run twice: what to queue instead when its
    /// delegate is lost (see [`FollowUp`]).
    pub on_lost: Option<FollowUp>,
}

/// The task queued in place of a lost one (its delegate went away while it
/// ran) that must not run again, e.g. a build: the lost task fails at once
/// with `error` and this one is queued in the same transaction. It gets the
/// lost task's id as `payload.lostTask`, the lost task's scope, and no
/// deadline: it waits until an eligible delegate runs it (a clean-up must not
/// be given up because no delegate was connected for a while).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub kind: String,
    pub payload: Value,
    pub selectors: Vec<String>,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    /// The lost task's error; `{reason}` is replaced by why it was taken
    /// back, `{followUp}` by the follow-up's id.
    pub error: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    pub kind: String,
    pub scope: Scope,
    pub payload: Value,
    pub selectors: Vec<String>,
    pub timeout_ms: u64,
    pub state: TaskState,
    pub attempt: u32,
    pub max_attempts: u32,
    pub delegate_id: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub history: Vec<TaskAttempt>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deadline_at: i64,
    /// The connector it runs through, if any.
    pub connector: Option<String>,
}

/// What happened to a reported result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Stored: this report finished the task.
    Stored,
    /// The task was already finished by this very attempt (a repeated report).
    Duplicate,
    /// The attempt is no longer the live one (the task moved on); ignored.
    Stale,
}

/// The deadline of a task that waits until a delegate runs it (a follow-up).
const NO_DEADLINE: i64 = i64::MAX;

const COLUMNS: &str = "id, kind, scope_key, payload, selectors, timeout_ms, state, attempt, max_attempts, delegate_id, lease_expires_at, output, error, history, created_at, updated_at, deadline_at, connector";

fn task_from_row(r: &AnyRow) -> Result<TaskRecord> {
    let id: String = r.try_get("id")?;
    let corrupt = |what: &str| StoreError::Corrupt {
        message: format!("task {id} has an unreadable {what} in the database"),
    };
    let scope_key: String = r.try_get("scope_key")?;
    let state: String = r.try_get("state")?;
    let payload: String = r.try_get("payload")?;
    let selectors: String = r.try_get("selectors")?;
    let history: String = r.try_get("history")?;
    let output: Option<String> = r.try_get("output")?;
    Ok(TaskRecord {
        scope: Scope::from_key(&scope_key).ok_or_else(|| corrupt("scope"))?,
        state: TaskState::parse(&state).ok_or_else(|| corrupt("state"))?,
        payload: serde_json::from_str(&payload).map_err(|_| corrupt("payload"))?,
        selectors: serde_json::from_str(&selectors).map_err(|_| corrupt("selectors"))?,
        history: serde_json::from_str(&history).map_err(|_| corrupt("history"))?,
        output: output
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(|_| corrupt("output"))?,
        kind: r.try_get("kind")?,
        timeout_ms: r.try_get::<i64, _>("timeout_ms")?.max(0) as u64,
        attempt: r.try_get::<i64, _>("attempt")?.max(0) as u32,
        max_attempts: r.try_get::<i64, _>("max_attempts")?.max(0) as u32,
        delegate_id: r.try_get("delegate_id")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        deadline_at: r.try_get("deadline_at")?,
        connector: r.try_get("connector")?,
        id,
    })
}

async fn fetch(conn: &mut AnyConnection, id: &str) -> Result<Option<TaskRecord>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(task_from_row).transpose()
}

fn end_attempt(history: &mut [TaskAttempt], attempt: u32, now: i64, outcome: &str) {
    if let Some(a) = history.iter_mut().rev().find(|a| a.attempt == attempt) {
        a.ended_at.get_or_insert(now);
        a.outcome.get_or_insert_with(|| outcome.to_string());
    }
}

/// Inserts a queued task; returns its id.
async fn insert_task(
    conn: &mut AnyConnection,
    t: &NewTask,
    now: i64,
    deadline_at: i64,
) -> Result<String> {
    let id = new_id();
    let on_lost = t
        .on_lost
        .as_ref()
        .map(|f| serde_json::to_string(f).unwrap_or_default());
    sqlx::query("INSERT INTO tasks (id, kind, scope_key, payload, selectors, timeout_ms, state, attempt, max_attempts, history, created_at, updated_at, deadline_at, connector, on_lost) VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, '[]', $8, $8, $9, $10, $11)")
        .bind(&id)
        .bind(&t.kind)
        .bind(t.scope.key())
        .bind(t.payload.to_string())
        .bind(serde_json::to_string(&t.selectors).unwrap_or_else(|_| "[]".into()))
        .bind(t.timeout_ms as i64)
        .bind(i64::from(t.max_attempts.max(1)))
        .bind(now)
        .bind(deadline_at)
        .bind(t.connector.clone())
        .bind(on_lost)
        .execute(conn)
        .await?;
    Ok(id)
}

/// The follow-up of a lost task, if it has one (an unreadable one counts as
/// none: the task is then offered again, as before this column existed).
async fn follow_up_of(conn: &mut AnyConnection, id: &str) -> Result<Option<FollowUp>> {
    let raw: Option<String> = sqlx::query("SELECT on_lost FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .and_then(|r| r.try_get("on_lost").ok())
        .flatten();
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

impl Store {
    pub async fn create_task(&self, t: NewTask) -> Result<TaskRecord> {
        let now = now_ms();
        let deadline_at = now.saturating_add(t.deadline_ms.min(i64::MAX as u64) as i64);
        let mut tx = self.db().begin_write().await?;
        let id = insert_task(tx.conn(), &t, now, deadline_at).await?;
        let rec = fetch(tx.conn(), &id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("task '{id}'")))?;
        tx.commit().await?;
        Ok(rec)
    }

    pub async fn get_task(&self, id: &str) -> Result<TaskRecord> {
        let mut conn = self.db().pool.acquire().await?;
        fetch(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("task '{id}'")))
    }

    /// Ids of the tasks assigned to a delegate and not finished: what a
    /// reconnecting delegate still holds, to count against its capacity.
    pub async fn tasks_held_by(&self, delegate_id: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT id FROM tasks WHERE delegate_id = $1 AND state = 'assigned'")
                .bind(delegate_id)
                .fetch_all(&self.db().pool)
                .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(Into::into))
            .collect()
    }

    /// Queued tasks, oldest first; follow-ups of lost tasks (no deadline)
    /// after the others, so that follow-ups no delegate can take (their
    /// connector's delegates are gone) never hide newer tasks from dispatch.
    pub async fn queued_tasks(&self, limit: u32) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE state = 'queued' ORDER BY CASE WHEN deadline_at = $2 THEN 1 ELSE 0 END, created_at, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .bind(NO_DEADLINE)
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// The newest `limit` tasks of `kind` run through connector `connector`
    /// of `scope` (a connector's builds), newest first.
    pub async fn connector_tasks(
        &self,
        scope: &Scope,
        connector: &str,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE scope_key = $1 AND connector = $2 AND kind = $3 ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(scope.key())
        .bind(connector)
        .bind(kind)
        .bind(i64::from(limit))
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Hands a queued task to a delegate, if it is still queued (another manager
    /// may have claimed it first). The attempt number goes up by one.
    pub async fn claim_task(
        &self,
        id: &str,
        delegate_id: &str,
        lease_ms: u64,
    ) -> Result<Option<TaskRecord>> {
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let Some(mut t) = fetch(tx.conn(), id).await? else {
            return Ok(None);
        };
        if t.state != TaskState::Queued {
            return Ok(None);
        }
        let attempt = t.attempt + 1;
        t.history.push(TaskAttempt {
            attempt,
            delegate_id: delegate_id.to_string(),
            assigned_at: now,
            ended_at: None,
            outcome: None,
        });
        let res = sqlx::query("UPDATE tasks SET state = 'assigned', attempt = $1, delegate_id = $2, lease_expires_at = $3, history = $4, updated_at = $5 WHERE id = $6 AND state = 'queued' AND attempt = $7")
            .bind(i64::from(attempt))
            .bind(delegate_id)
            .bind(now + lease_ms as i64)
            .bind(serde_json::to_string(&t.history).unwrap_or_else(|_| "[]".into()))
            .bind(now)
            .bind(id)
            .bind(i64::from(t.attempt))
            .execute(tx.conn())
            .await?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        let rec = fetch(tx.conn(), id).await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// Stores a delegate's result once. Only the live attempt, reported by the
    /// delegate holding it, finishes the task.
    pub async fn complete_task(
        &self,
        id: &str,
        attempt: u32,
        delegate_id: &str,
        outcome: std::result::Result<Value, String>,
    ) -> Result<Completion> {
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        let Some(mut t) = fetch(tx.conn(), id).await? else {
            return Ok(Completion::Stale);
        };
        if t.attempt != attempt || t.delegate_id.as_deref() != Some(delegate_id) {
            return Ok(Completion::Stale);
        }
        if t.state.is_final() {
            return Ok(Completion::Duplicate);
        }
        if t.state != TaskState::Assigned {
            return Ok(Completion::Stale);
        }
        let (state, output, error) = match outcome {
            Ok(v) => (TaskState::Succeeded, Some(v.to_string()), None),
            Err(e) => (TaskState::Failed, None, Some(e)),
        };
        end_attempt(&mut t.history, attempt, now, state.as_str());
        sqlx::query("UPDATE tasks SET state = $1, output = $2, error = $3, lease_expires_at = NULL, history = $4, updated_at = $5 WHERE id = $6 AND state = 'assigned' AND attempt = $7")
            .bind(state.as_str())
            .bind(output)
            .bind(error)
            .bind(serde_json::to_string(&t.history).unwrap_or_else(|_| "[]".into()))
            .bind(now)
            .bind(id)
            .bind(i64::from(attempt))
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(Completion::Stored)
    }

    /// Fails a task that no delegate holds yet (cancelled before it ran).
    /// False when it was not queued (it runs, or it ended).
    pub async fn cancel_queued_task(&self, id: &str, reason: &str) -> Result<bool> {
        let mut tx = self.db().begin_write().await?;
        let done = sqlx::query("UPDATE tasks SET state = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND state = 'queued'")
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Takes back the tasks a delegate holds (it disconnected): each goes back to
    /// the queue, or fails when it has had all its attempts. Returns their ids.
    pub async fn release_delegate_tasks(
        &self,
        delegate_id: &str,
        reason: &str,
    ) -> Result<Vec<TaskRecord>> {
        self.release_where(
            "delegate_id = $1 AND state = 'assigned'",
            Some(delegate_id),
            None,
            reason,
        )
        .await
    }

    /// A delegate's connection closed: its tasks' leases end at `until` (unless
    /// they end sooner), so they move on soon even if this manager goes away
    /// before it hands them on. Nothing changes when the delegate is connected
    /// again already (it renews its own leases). Returns how many changed.
    pub async fn shorten_leases_of_disconnected(
        &self,
        delegate_id: &str,
        until: i64,
    ) -> Result<u64> {
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query("UPDATE tasks SET lease_expires_at = $1 WHERE delegate_id = $2 AND state = 'assigned' AND (lease_expires_at IS NULL OR lease_expires_at > $1) AND NOT EXISTS (SELECT 1 FROM delegates WHERE id = $2 AND connection_id IS NOT NULL)")
            .bind(until)
            .bind(delegate_id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    /// Takes back the tasks of a delegate that is still disconnected (it did
    /// not come back within its reconnect grace). A delegate connected again,
    /// to any manager, keeps them.
    pub async fn release_tasks_if_disconnected(
        &self,
        delegate_id: &str,
        reason: &str,
    ) -> Result<Vec<TaskRecord>> {
        self.release_where(
            "delegate_id = $1 AND state = 'assigned' AND NOT EXISTS (SELECT 1 FROM delegates WHERE id = $1 AND connection_id IS NOT NULL)",
            Some(delegate_id),
            None,
            reason,
        )
        .await
    }

    /// Takes back every task whose lease lapsed (its delegate stopped renewing).
    pub async fn release_expired_leases(&self, now: i64) -> Result<Vec<TaskRecord>> {
        self.release_where(
            "state = 'assigned' AND lease_expires_at < $1",
            None,
            Some(now),
            "its delegate stopped renewing the lease (no heartbeat)",
        )
        .await
    }

    async fn release_where(
        &self,
        clause: &str,
        text_arg: Option<&str>,
        int_arg: Option<i64>,
        reason: &str,
    ) -> Result<Vec<TaskRecord>> {
        let now = now_ms();
        // The reaper asks twice a second and the answer is nearly always
        // "nothing": look without the write lock first, so an idle manager does
        // not queue behind (or hold up) real writers.
        let probe = format!("SELECT 1 AS one FROM tasks WHERE {clause} LIMIT 1");
        let mut q = sqlx::query(&probe);
        if let Some(t) = text_arg {
            q = q.bind(t);
        }
        if let Some(i) = int_arg {
            q = q.bind(i);
        }
        if q.fetch_optional(&self.db().pool).await?.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.db().begin_write().await?;
        let sql = format!("SELECT {COLUMNS} FROM tasks WHERE {clause}");
        let mut q = sqlx::query(&sql);
        if let Some(t) = text_arg {
            q = q.bind(t);
        }
        if let Some(i) = int_arg {
            q = q.bind(i);
        }
        let rows = q.fetch_all(tx.conn()).await?;
        let mut released = Vec::new();
        for row in &rows {
            let mut t = task_from_row(row)?;
            end_attempt(
                &mut t.history,
                t.attempt,
                now,
                &format!("taken back: {reason}"),
            );
            let follow_up = follow_up_of(tx.conn(), &t.id).await?;
            let (state, error) = if let Some(f) = follow_up {
                let mut payload = f.payload;
                if let Some(p) = payload.as_object_mut() {
                    p.insert("lostTask".into(), Value::String(t.id.clone()));
                }
                let next = NewTask {
                    kind: f.kind,
                    scope: t.scope.clone(),
                    payload,
                    selectors: f.selectors,
                    timeout_ms: f.timeout_ms,
                    max_attempts: f.max_attempts,
                    deadline_ms: 0,
                    connector: t.connector.clone(),
                    on_lost: None,
                };
                let next_id = insert_task(tx.conn(), &next, now, NO_DEADLINE).await?;
                (
                    TaskState::Failed,
                    Some(
                        f.error
                            .replace("{reason}", reason)
                            .replace("{followUp}", &next_id),
                    ),
                )
            } else if t.attempt >= t.max_attempts {
                (
                    TaskState::Failed,
                    Some(format!(
                        "no delegate finished the task in {} attempts; the last was taken back because {reason}",
                        t.attempt
                    )),
                )
            } else {
                (TaskState::Queued, None)
            };
            sqlx::query("UPDATE tasks SET state = $1, error = $2, delegate_id = CASE WHEN $1 = 'queued' THEN NULL ELSE delegate_id END, lease_expires_at = NULL, history = $3, updated_at = $4 WHERE id = $5 AND attempt = $6 AND state = 'assigned'")
                .bind(state.as_str())
                .bind(error.clone())
                .bind(serde_json::to_string(&t.history).unwrap_or_else(|_| "[]".into()))
                .bind(now)
                .bind(&t.id)
                .bind(i64::from(t.attempt))
                .execute(tx.conn())
                .await?;
            t.state = state;
            t.error = error;
            released.push(t);
        }
        tx.commit().await?;
        Ok(released)
    }

    /// Fails queued tasks past their deadline (no delegate took them in time).
    pub async fn expire_task_deadlines(&self, now: i64) -> Result<u64> {
        // As in `release_where`: a read first, the write lock only when needed.
        let due = sqlx::query(
            "SELECT 1 AS one FROM tasks WHERE state = 'queued' AND deadline_at < $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.db().pool)
        .await?;
        if due.is_none() {
            return Ok(0);
        }
        let mut tx = self.db().begin_write().await?;
        let res = sqlx::query("UPDATE tasks SET state = 'failed', error = 'no eligible delegate took the task before its deadline', updated_at = $1 WHERE state = 'queued' AND deadline_at < $1")
            .bind(now)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }
}
