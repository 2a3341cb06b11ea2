//! The events of running tasks (`task_events`): appended by the manager a
//! delegate reports to, read by every manager that streams them to clients.
//! An event is identified by its task, attempt and sequence number, so one
//! re-sent after a reconnect is stored once, and a client resumes after the
//! last one it saw (`attempt.seq`, the SSE event id).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use tether_domain::delegate_protocol::TaskEvent;

use crate::db::now_ms;
use crate::error::Result;
use crate::Store;

/// Where a reader is in a task's events: after `seq` of `attempt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    pub attempt: u32,
    pub seq: u64,
}

impl EventCursor {
    /// `"2.17"` (what [`EventCursor::id`] writes); `None` for anything else.
    pub fn parse(s: &str) -> Option<EventCursor> {
        let (a, s) = s.trim().split_once('.')?;
        Some(EventCursor {
            attempt: a.parse().ok()?,
            seq: s.parse().ok()?,
        })
    }

    pub fn id(&self) -> String {
        format!("{}.{}", self.attempt, self.seq)
    }
}

/// A stored event of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEventRecord {
    /// `attempt.seq`: resume after it with `Last-Event-ID`.
    pub id: String,
    pub attempt: u32,
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl TaskEventRecord {
    pub fn cursor(&self) -> EventCursor {
        EventCursor {
            attempt: self.attempt,
            seq: self.seq,
        }
    }
}

/// Longest message stored; a longer one is cut (the delegate bounds them too).
const MAX_MESSAGE: usize = 4096;

impl Store {
    /// Stores the events a delegate reported for the attempt it holds; events
    /// already stored (re-sent) and those of an attempt that is no longer the
    /// delegate's are ignored. Returns how many were new.
    pub async fn append_task_events(
        &self,
        task_id: &str,
        attempt: u32,
        delegate_id: &str,
        events: &[TaskEvent],
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut tx = self.db().begin_write().await?;
        // Only the delegate that holds (or held, for the events flushed just
        // before its result) this attempt writes its events.
        let holder = sqlx::query(
            "SELECT 1 AS one FROM tasks WHERE id = $1 AND attempt = $2 AND delegate_id = $3",
        )
        .bind(task_id)
        .bind(i64::from(attempt))
        .bind(delegate_id)
        .fetch_optional(tx.conn())
        .await?;
        if holder.is_none() {
            return Ok(0);
        }
        let mut stored = 0;
        for e in events {
            let mut message = e.message.clone();
            if message.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
            }
            let res = sqlx::query("INSERT INTO task_events (task_id, attempt, seq, at_ms, kind, message, data, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (task_id, attempt, seq) DO NOTHING")
                .bind(task_id)
                .bind(i64::from(attempt))
                .bind(e.seq as i64)
                .bind(e.at_ms)
                .bind(&e.kind)
                .bind(message)
                .bind(e.data.as_ref().map(Value::to_string))
                .bind(now)
                .execute(tx.conn())
                .await?;
            stored += res.rows_affected();
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// A task's events after `after` (all when `None`), in order, at most `limit`.
    pub async fn task_events_after(
        &self,
        task_id: &str,
        after: Option<EventCursor>,
        limit: u32,
    ) -> Result<Vec<TaskEventRecord>> {
        let c = after.unwrap_or_default();
        let rows = sqlx::query("SELECT attempt, seq, at_ms, kind, message, data FROM task_events WHERE task_id = $1 AND (attempt > $2 OR (attempt = $2 AND seq > $3)) ORDER BY attempt, seq LIMIT $4")
            .bind(task_id)
            .bind(i64::from(c.attempt))
            .bind(c.seq as i64)
            .bind(i64::from(limit))
            .fetch_all(&self.db().pool)
            .await?;
        rows.iter()
            .map(|r| {
                let attempt = r.try_get::<i64, _>("attempt")?.max(0) as u32;
                let seq = r.try_get::<i64, _>("seq")?.max(0) as u64;
                let data: Option<String> = r.try_get("data")?;
                Ok(TaskEventRecord {
                    id: EventCursor { attempt, seq }.id(),
                    attempt,
                    seq,
                    at_ms: r.try_get("at_ms")?,
                    kind: r.try_get("kind")?,
                    message: r.try_get("message")?,
                    data: data.and_then(|d| serde_json::from_str(&d).ok()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_what_they_print() {
        let c = EventCursor {
            attempt: 2,
            seq: 17,
        };
        assert_eq!(c.id(), "2.17");
        assert_eq!(EventCursor::parse("2.17"), Some(c));
        assert_eq!(EventCursor::parse("17"), None);
        assert_eq!(EventCursor::parse("a.b"), None);
        assert!(
            EventCursor {
                attempt: 1,
                seq: 99
            } < c
        );
    }
}
