//! One delegate's WebSocket on the manager side: authenticate the upgrade,
//! register, then relay heartbeats and results in and tasks out until either
//! side closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tether_domain::delegate_protocol::{
    DelegateMessage, ManagerMessage, Registration, TaskOutcome, PROTOCOL_VERSION,
};
use tether_store::{Completion, DelegateTokenRecord, Heartbeat, StoreError};
use tokio::sync::mpsc;

use super::{payload, random_id, Broker, Live, Outbound};
use crate::api::error::ApiError;
use crate::api::AppState;

/// Messages are small; a small read buffer keeps ten thousand idle delegates
/// cheap (REFERENCE.md section 4: the 128 KiB default costs ~1.3 GB for 10k).
const READ_BUFFER: usize = 4 * 1024;
const MAX_MESSAGE: usize = 1 << 20;
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/v1/delegates/connect`: the WebSocket delegates dial.
#[utoipa::path(
    get,
    path = "/api/v1/delegates/connect",
    tag = "delegates",
    operation_id = "connectDelegate",
    summary = "The delegates' WebSocket",
    description = "The WebSocket a delegate (`tether delegate run`) dials and keeps open. The upgrade request \
authenticates with a **delegate token** (`Authorization: Bearer tdt_…`, from `POST …/delegate-tokens`), not an API token, \
and must be a WebSocket upgrade (`Connection: Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Key`).\n\n\
After the 101, each text frame is one JSON object tagged by `type` (delegate protocol 1), with camelCase fields, up to 1 MiB.\n\n\
Delegate to manager:\n\
- `register` `{protocol, name, tags[], version, hostname, inCluster, capacity}`: must be the first message, within 10 s. \
The delegate is registered in the scope of its token under `name` (a newer connection with the same name and token replaces the older one; \
the name belongs to the token that first registered it, and another live token of the scope is refused with `closing`). \
`name` follows the name rules, `hostname` has at most 253 characters, `version` 64, `tags` at most 64 of 128 characters each. \
A `protocol` other than 1 is refused with `closing`.\n\
- `heartbeat` `{running[]}`: every `heartbeatIntervalMs`, with the ids of the tasks it is running; renews their leases. \
A delegate silent for the heartbeat timeout (45 s by default) is disconnected, and its tasks go to another delegate; \
one whose connection closes has the reconnect grace (5 s by default) to connect again and keep them.\n\
- `draining`: it is shutting down; it gets no new tasks, running ones still report.\n\
- `taskResult` `{taskId, attempt, outcome}`, where `outcome` is `{status: \"succeeded\", output}` or `{status: \"failed\", message}`; \
a result not acknowledged is sent again on the next connection.\n\n\
Manager to delegate:\n\
- `registered` `{delegateId, heartbeatIntervalMs}`: the answer to `register`.\n\
- `task` `{taskId, attempt, kind, payload, timeoutMs}`: run it within `timeoutMs`; the payload carries the secret values the task needs, resolved for this delegate only.\n\
- `resultAck` `{taskId}`: the result is stored; the delegate may forget it.\n\
- `closing` `{reason, reconnect}`: the manager closes the connection and says why (e.g. token revoked, replaced by a \
newer connection, manager shutting down, registration refused); `reconnect` says whether to dial again.",
    security(("delegateToken" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the connection is now the delegate's WebSocket."),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, description = "No delegate token, a malformed `Authorization` header, or an unknown or revoked delegate token (`UNAUTHENTICATED`).", content_type = "application/json", body = crate::api::error::ErrorBody),
        (status = 500, response = crate::api::openapi::Internal),
        (status = 503, description = "The manager is shutting down (`SHUTTING_DOWN`): dial again after a backoff, to this manager once it is back or to another one.", content_type = "application/json", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    if state.broker.stopping() {
        // Refused before any database work: a restart with thousands of
        // delegates must not be slowed by those that dial back too early.
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "SHUTTING_DOWN",
            "the manager is shutting down; the delegate reconnects after a backoff",
        )
        .into_response();
    }
    let Some(token) = token else {
        return ApiError::unauthorized(
            "a delegate connects with 'Authorization: Bearer <delegate token>'",
        )
        .into_response();
    };
    let record = match state.store.authenticate_delegate(token).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ApiError::unauthorized("the delegate token is unknown or revoked; create one with `tether delegate token create`").into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Checked after the token, so a plain request learns first what is missing
    // there, and in our error shape rather than axum's plain text.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::bad_request(format!(
                "this is the delegates' WebSocket ({}); connect with `tether delegate run --manager URL`",
                rejection.body_text()
            ))
            .into_response()
        }
    };
    let broker = state.broker.clone();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(broker, record, socket))
}

async fn send(
    ws: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    m: &ManagerMessage,
) -> bool {
    let Ok(text) = serde_json::to_string(m) else {
        return false;
    };
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn session(broker: Arc<Broker>, token: DelegateTokenRecord, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let registration = match tokio::time::timeout(REGISTER_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<DelegateMessage>(&t) {
            Ok(DelegateMessage::Register(r)) => r,
            _ => return refuse(&mut sink, "the first message must be 'register'").await,
        },
        _ => return,
    };
    if registration.protocol != PROTOCOL_VERSION {
        let reason = format!(
            "this manager speaks delegate protocol {PROTOCOL_VERSION}, the delegate {}; run a delegate of the manager's version",
            registration.protocol
        );
        return refuse(&mut sink, &reason).await;
    }
    let connection_id = random_id();
    let record = match broker
        .store
        .register_delegate_within(
            &token,
            &registration,
            &broker.manager_id,
            &connection_id,
            broker.config.max_delegates_per_token,
        )
        .await
    {
        Ok(r) => r,
        Err(e @ (StoreError::Validation(_) | StoreError::Conflict { .. })) => {
            return refuse(&mut sink, &e.to_string()).await
        }
        Err(e) => {
            // Database trouble passes: the delegate must not give up for good.
            tracing::warn!(error = %e, "cannot register a delegate; it will retry");
            let _ = send(
                &mut sink,
                &ManagerMessage::Closing {
                    reason: "the manager cannot register delegates right now; retrying".into(),
                    reconnect: true,
                },
            )
            .await;
            let _ = sink.close().await;
            return;
        }
    };
    let delegate_id = record.id.clone();
    // Tasks it held before reconnecting (to another manager, or to this one
    // before a restart) count against its capacity from the start, before its
    // first heartbeat says what it runs.
    let held = broker
        .store
        .tasks_held_by(&delegate_id)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, delegate = %delegate_id, "cannot read the tasks it holds; its first heartbeat will say");
            Vec::new()
        });
    let (tx, mut rx) = mpsc::channel::<Outbound>(64);
    let mut live = live(
        &token,
        &registration,
        &record.scope,
        connection_id.clone(),
        tx,
    );
    let now = Instant::now();
    live.outstanding = held.into_iter().map(|id| (id, now)).collect();
    let replaced = broker
        .live
        .lock()
        .unwrap()
        .insert(delegate_id.clone(), live);
    if let Some(old) = replaced {
        // Same delegate name, newer connection: a restart, or two processes
        // sharing a name. Tell the old one why it is dropped.
        let _ = old.tx.try_send(Outbound {
            message: ManagerMessage::Closing {
                reason: format!(
                    "replaced by a newer connection of delegate '{}'; give each delegate process its own --name",
                    registration.name
                ),
                reconnect: false,
            },
            close: true,
        });
    }
    tracing::info!(delegate = %delegate_id, name = %registration.name, scope = %record.scope, tags = ?registration.tags, "delegate connected");
    let registered = ManagerMessage::Registered {
        delegate_id: delegate_id.clone(),
        heartbeat_interval_ms: broker.config.heartbeat_interval.as_millis() as u64,
    };
    if send(&mut sink, &registered).await {
        broker.wake_dispatch.notify_one();
        run(
            &broker,
            &delegate_id,
            &connection_id,
            &mut sink,
            &mut stream,
            &mut rx,
        )
        .await;
    }
    let _ = sink.close().await;

    // Forget it here, unless a newer connection already took its place. Its
    // tasks stay assigned for the reconnect grace: a delegate that reconnects
    // in time keeps them and nothing runs twice; one that does not has them
    // handed on (`Broker::connection_lost`).
    {
        let mut live = broker.live.lock().unwrap();
        if live
            .get(&delegate_id)
            .is_some_and(|d| d.connection_id == connection_id)
        {
            live.remove(&delegate_id);
        }
    }
    // On shutdown, `Broker::shutdown` marks every delegate of this manager
    // disconnected in one statement; ten thousand single writes here would
    // hold the restart up for seconds.
    if broker.stopping() {
        tracing::info!(delegate = %delegate_id, "delegate disconnected");
        return;
    }
    match broker
        .store
        .delegate_disconnected(&delegate_id, &connection_id)
        .await
    {
        Ok(true) => broker.connection_lost(&delegate_id).await,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, delegate = %delegate_id, "cannot record the disconnection")
        }
    }
    tracing::info!(delegate = %delegate_id, "delegate disconnected");
}

fn live(
    token: &DelegateTokenRecord,
    reg: &Registration,
    scope: &tether_domain::Scope,
    connection_id: String,
    tx: mpsc::Sender<Outbound>,
) -> Live {
    Live {
        connection_id,
        token_id: token.id.clone(),
        scope: scope.clone(),
        tags: reg.tags.clone(),
        capacity: reg.capacity.max(1),
        draining: false,
        outstanding: HashMap::new(),
        tx,
        last_frame: Instant::now(),
    }
}

async fn refuse(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, reason: &str) {
    tracing::warn!(%reason, "refused a delegate");
    let _ = send(
        sink,
        &ManagerMessage::Closing {
            reason: reason.to_string(),
            reconnect: false,
        },
    )
    .await;
    let _ = sink.close().await;
}

async fn run(
    broker: &Arc<Broker>,
    delegate_id: &str,
    connection_id: &str,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    rx: &mut mpsc::Receiver<Outbound>,
) {
    loop {
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => { touch(broker, delegate_id); continue; }
                };
                touch(broker, delegate_id);
                match serde_json::from_str::<DelegateMessage>(&text) {
                    Ok(DelegateMessage::Heartbeat { running }) => heartbeat(broker, delegate_id, connection_id, running),
                    Ok(DelegateMessage::TaskResult { task_id, attempt, outcome }) => {
                        if !result(broker, delegate_id, &task_id, attempt, outcome).await {
                            continue; // not stored (database trouble): the delegate re-sends
                        }
                        if !send(sink, &ManagerMessage::ResultAck { task_id }).await {
                            return;
                        }
                    }
                    Ok(DelegateMessage::TaskEvents { task_id, attempt, mut events }) => {
                        let Some(seq) = events.iter().map(|e| e.seq).max() else { continue };
                        payload::scrub_events(&broker.store, &task_id, &mut events).await;
                        if !broker.task_events(delegate_id, &task_id, attempt, &events).await {
                            continue;
                        }
                        if !send(sink, &ManagerMessage::TaskEventsAck { task_id, attempt, seq }).await {
                            return;
                        }
                    }
                    Ok(DelegateMessage::Draining) => {
                        tracing::info!(delegate = %delegate_id, "delegate is draining; no new tasks for it");
                        if let Some(d) = broker.live.lock().unwrap().get_mut(delegate_id) {
                            d.draining = true;
                        }
                        let _ = broker.store.set_delegate_draining(delegate_id).await;
                    }
                    Ok(DelegateMessage::Register(_)) => {}
                    Err(e) => tracing::warn!(delegate = %delegate_id, error = %e, "ignoring a message the manager does not understand"),
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { return };
                if !send(sink, &out.message).await || out.close {
                    return;
                }
            }
        }
    }
}

fn touch(broker: &Broker, delegate_id: &str) {
    if let Some(d) = broker.live.lock().unwrap().get_mut(delegate_id) {
        d.last_frame = Instant::now();
    }
}

fn heartbeat(broker: &Broker, delegate_id: &str, connection_id: &str, running: Vec<String>) {
    let holds_tasks = {
        let mut live = broker.live.lock().unwrap();
        match live.get_mut(delegate_id) {
            Some(d) => {
                // The delegate knows what it runs. Forget what it does not
                // mention unless it was handed over too recently to be in its
                // list (it forgot it in a restart, or refused it while
                // draining; its lease lapses and it moves on), and learn what
                // this manager did not hand over (after a manager restart).
                let now = Instant::now();
                let recent = 2 * broker.config.heartbeat_interval;
                d.outstanding.retain(|id, since| {
                    running.contains(id) || now.duration_since(*since) < recent
                });
                for id in &running {
                    d.outstanding.entry(id.clone()).or_insert(now);
                }
                !d.outstanding.is_empty()
            }
            None => !running.is_empty(),
        }
    };
    broker.beats.lock().unwrap().insert(
        delegate_id.to_string(),
        Heartbeat {
            delegate_id: delegate_id.to_string(),
            connection_id: connection_id.to_string(),
            running,
            holds_tasks,
        },
    );
}

/// Stores a result; true when the delegate may forget it.
async fn result(
    broker: &Broker,
    delegate_id: &str,
    task_id: &str,
    attempt: u32,
    outcome: TaskOutcome,
) -> bool {
    // No secret value goes into the tasks table (or, from there, a report).
    let outcome = match payload::scrub_outcome(&broker.store, task_id, outcome).await {
        TaskOutcome::Succeeded { output } => Ok(output),
        TaskOutcome::Failed { message } => Err(message),
    };
    let stored = broker
        .store
        .complete_task(task_id, attempt, delegate_id, outcome)
        .await;
    broker.unreserve(delegate_id, task_id);
    broker.wake_dispatch.notify_one();
    match stored {
        Ok(Completion::Stored) => {
            tracing::debug!(task = %task_id, delegate = %delegate_id, attempt, "task finished");
            crate::api::deploys::task_finished(&broker.store, task_id).await;
            broker.task_finished(task_id).await;
            true
        }
        Ok(other) => {
            tracing::info!(task = %task_id, delegate = %delegate_id, attempt, outcome = ?other, "ignored a result for an attempt that is no longer live");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, task = %task_id, "cannot store a task result");
            false
        }
    }
}
