//! Live task events, for every task kind: the manager a delegate reports to
//! stores them with the task (`tether_store::task_events`), and any manager
//! streams them to clients as they are stored.
//!
//! - [`TaskEventHub`]: in-process wake-ups, "task X has new events or
//!   finished". Filled by the delegate connections of this manager and, through
//!   the store's LISTEN/NOTIFY (`events:<id>`, `done:<id>`), by other managers'.
//! - [`events`]: `GET /api/v1/tasks/{id}/events`, Server-Sent Events. Each
//!   event's id is `attempt.seq`; a client that reconnects with
//!   `Last-Event-ID` gets only what came after (after a manager restart too:
//!   everything is in the database). The stream ends with an `end` event
//!   carrying the task's final state.
//!
//! A reader never trusts a wake-up alone: it re-reads the table after each one
//! and at least every [`RESCAN`], so a lost notification only delays it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::json;
use tether_store::{EventCursor, StoreError, TaskRecord};
use tokio::sync::{broadcast, mpsc};

use crate::api::auth::Caller;
use crate::api::AppState;

/// Longest a reader waits without a wake-up before looking again.
pub const RESCAN: Duration = Duration::from_secs(2);
const PAGE: u32 = 500;

/// Wake-ups for readers of task events on this manager.
pub struct TaskEventHub {
    tx: broadcast::Sender<String>,
}

impl Default for TaskEventHub {
    fn default() -> Self {
        TaskEventHub {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl TaskEventHub {
    /// Task `task_id` has new events, or finished.
    pub fn notify(&self, task_id: &str) {
        let _ = self.tx.send(task_id.to_string());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }
}

/// Sends the task's events after `cursor` to `out` as they are stored, until
/// the task is finished and every event of it is sent; returns the finished
/// task. `Err(None)` when the receiver went away.
pub(crate) async fn follow(
    state: &AppState,
    task_id: &str,
    mut cursor: Option<EventCursor>,
    out: &mpsc::Sender<Event>,
) -> Result<TaskRecord, Option<StoreError>> {
    let mut wake = state.broker.events.subscribe();
    loop {
        // The state first: a delegate sends a task's events before its result,
        // so once the task is seen finished, what follows is all there is.
        let task = state.store.get_task(task_id).await.map_err(Some)?;
        loop {
            let page = state
                .store
                .task_events_after(task_id, cursor, PAGE)
                .await
                .map_err(Some)?;
            let n = page.len();
            for e in page {
                cursor = Some(e.cursor());
                let ev = Event::default()
                    .id(e.id.clone())
                    .event("task")
                    .json_data(&e)
                    .unwrap_or_default();
                out.send(ev).await.map_err(|_| None)?;
            }
            if n < PAGE as usize {
                break;
            }
        }
        if task.state.is_final() {
            return Ok(task);
        }
        let deadline = tokio::time::sleep(RESCAN);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                got = wake.recv() => match got {
                    Ok(id) if id == task_id => break,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Err(None),
                },
                _ = &mut deadline => break,
                _ = out.closed() => return Err(None),
            }
        }
    }
}

/// The `end` event: how the task finished.
pub(crate) fn end_event(task: &TaskRecord) -> Event {
    Event::default()
        .event("end")
        .json_data(json!({
            "taskId": task.id,
            "state": task.state,
            "error": task.error,
        }))
        .unwrap_or_default()
}

/// An SSE response fed by `rx`.
pub(crate) fn sse(rx: mpsc::Receiver<Event>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}/events",
    tag = "tasks",
    operation_id = "streamTaskEvents",
    summary = "Follow a task's events",
    description = "Server-Sent Events (`text/event-stream`): every event the delegate reported while the task ran (`event: task`, data: `{id, attempt, seq, atMs, kind, message, data?}`), as they are stored, then `event: end` with `{taskId, state, error?}` once the task is finished. Each event's `id` is `attempt.seq`; reconnect with `Last-Event-ID` to continue after it (the events are kept with the task, so this works across a manager restart and from another manager). Any API token whose scope covers the task's may follow it.",
    params(
        ("id" = String, Path, description = "The task's id."),
        ("Last-Event-ID" = Option<String>, Header, description = "Continue after this event (`attempt.seq`)."),
    ),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream", body = String),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 500, response = crate::api::openapi::Internal),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, crate::api::error::ApiError> {
    caller.reach(
        state.store.get_task(&id).await,
        |t| &t.scope,
        &format!("task '{id}'"),
    )?;
    let cursor = last_event_id(&headers);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        match follow(&state, &id, cursor, &tx).await {
            Ok(task) => {
                let _ = tx.send(end_event(&task)).await;
            }
            Err(Some(e)) => {
                tracing::warn!(error = %e, task = %id, "cannot read task events");
                let _ = tx
                    .send(
                        Event::default()
                            .event("error")
                            .data("the manager cannot read the task's events right now; reconnect with Last-Event-ID"),
                    )
                    .await;
            }
            Err(None) => {}
        }
    });
    Ok(sse(rx).into_response())
}

pub(crate) fn last_event_id(headers: &HeaderMap) -> Option<EventCursor> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(EventCursor::parse)
}

/// True when the request asks for an event stream (`Accept: text/event-stream`).
pub(crate) fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}
