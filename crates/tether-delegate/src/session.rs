//! One WebSocket connection to the manager, from handshake to close.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::AUTHORIZATION;
use secrecy::ExposeSecret;
use tether_domain::delegate_protocol::{
    DelegateMessage, ManagerMessage, Registration, TaskAssignment, TaskOutcome, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::agent::Shared;
use crate::tasks::{self, TaskContext};
use crate::DelegateError;

pub(crate) enum SessionEnd {
    /// Shut down cleanly with nothing left to report.
    Drained,
    /// The connection ended; reconnect.
    Lost(String),
}

pub(crate) enum SessionError {
    /// Could not connect or register; retry after a backoff.
    Connect(String),
    /// Retrying will not help (bad token, refused registration).
    Fatal(DelegateError),
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Small buffers: a delegate has one connection and small messages, and the
/// manager has thousands of them (REFERENCE.md section 4).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
}

pub(crate) async fn run(
    shared: &Arc<Shared>,
    results_rx: &mut mpsc::UnboundedReceiver<(String, DelegateMessage)>,
    stop_rx: &mut watch::Receiver<bool>,
    deadline: &mut Option<tokio::time::Instant>,
) -> Result<SessionEnd, SessionError> {
    let cfg = &shared.config;
    let url = cfg.connect_url().map_err(SessionError::Fatal)?;
    let ws = dial(cfg, &url, &[]).await?;
    let (mut sink, mut stream) = ws.split();

    let registration = DelegateMessage::Register(Registration {
        protocol: PROTOCOL_VERSION,
        name: cfg.name.clone(),
        tags: cfg.tags.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: hostname(),
        in_cluster: crate::config::in_cluster(),
        capacity: cfg.capacity,
    });
    send(&mut sink, &registration)
        .await
        .map_err(SessionError::Connect)?;
    let (delegate_id, heartbeat) =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ManagerMessage>(&t) {
                Ok(ManagerMessage::Registered {
                    delegate_id,
                    heartbeat_interval_ms,
                }) => {
                    tracing::info!(%delegate_id, name = %cfg.name, "registered with the manager");
                    (
                        delegate_id,
                        Duration::from_millis(heartbeat_interval_ms.max(100)),
                    )
                }
                Ok(ManagerMessage::Closing {
                    reason,
                    reconnect: false,
                }) => return Err(SessionError::Fatal(DelegateError::Refused(reason))),
                other => {
                    return Err(SessionError::Connect(format!(
                        "unexpected answer to register: {other:?}"
                    )))
                }
            },
            other => {
                return Err(SessionError::Connect(format!(
                    "no registration answer: {other:?}"
                )))
            }
        };
    shared.ready.store(true, Ordering::SeqCst);
    if shared.draining.load(Ordering::SeqCst) {
        send(&mut sink, &DelegateMessage::Draining)
            .await
            .map_err(SessionError::Connect)?;
    }
    // Results the last connection did not see acknowledged.
    let pending: Vec<DelegateMessage> = shared
        .unacked
        .lock()
        .unwrap()
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    // Events first, so each task's events arrive before its result.
    for m in shared.outbox.resend_all().into_iter().chain(pending) {
        send(&mut sink, &m).await.map_err(SessionError::Connect)?;
    }

    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctx = TaskContext {
        delegate_name: cfg.name.clone(),
        kubeconfig: cfg.kubeconfig.clone(),
        attempt: 0,
        cancel: Default::default(),
    };
    // The tunnel for proxied Kubernetes requests lives as long as this session.
    let _tunnel = crate::proxy::spawn(cfg.clone(), delegate_id, ctx.clone());
    loop {
        if shared.draining.load(Ordering::SeqCst) && shared.idle() {
            let _ = sink.send(Message::Close(None)).await;
            return Ok(SessionEnd::Drained);
        }
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(*d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = stream.next() => match frame {
                None => return Ok(SessionEnd::Lost("the manager closed the connection".into())),
                Some(Err(e)) => return Ok(SessionEnd::Lost(e.to_string())),
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ManagerMessage>(&t) {
                    Ok(ManagerMessage::Task(a)) => start_task(shared, a, &ctx),
                    Ok(ManagerMessage::ResultAck { task_id }) => {
                        shared.unacked.lock().unwrap().retain(|(id, _)| *id != task_id);
                        shared.outbox.finish(&task_id);
                    }
                    Ok(ManagerMessage::TaskEventsAck { task_id, attempt, seq }) => {
                        shared.outbox.ack(&task_id, attempt, seq);
                    }
                    Ok(ManagerMessage::CancelTask { task_id }) => {
                        if let Some(c) = shared.cancels.lock().unwrap().get(&task_id) {
                            tracing::info!(task = %task_id, "task cancelled by the manager");
                            c.cancel();
                        }
                    }
                    Ok(ManagerMessage::Closing { reason, reconnect }) => {
                        if reconnect {
                            return Ok(SessionEnd::Lost(reason));
                        }
                        return Err(SessionError::Fatal(DelegateError::Closed(reason)));
                    }
                    Ok(ManagerMessage::Registered { .. }) => {}
                    Err(e) => tracing::warn!(error = %e, "ignoring a message this delegate does not understand"),
                },
                Some(Ok(Message::Close(_))) => return Ok(SessionEnd::Lost("the manager closed the connection".into())),
                Some(Ok(_)) => {}
            },
            _ = ticker.tick() => {
                let running = shared.running.lock().unwrap().keys().cloned().collect();
                if let Err(e) = send(&mut sink, &DelegateMessage::Heartbeat { running }).await {
                    return Ok(SessionEnd::Lost(e));
                }
            }
            _ = shared.outbox.wake.notified() => {
                for m in shared.outbox.take_unsent() {
                    if let Err(e) = send(&mut sink, &m).await {
                        return Ok(SessionEnd::Lost(e));
                    }
                }
            }
            Some((task_id, result)) = results_rx.recv() => {
                // The task's last events go before its result.
                for m in shared.outbox.take_unsent() {
                    if let Err(e) = send(&mut sink, &m).await {
                        return Ok(SessionEnd::Lost(e));
                    }
                }
                shared.unacked.lock().unwrap().push((task_id, result.clone()));
                if let Err(e) = send(&mut sink, &result).await {
                    return Ok(SessionEnd::Lost(e));
                }
            }
            _ = stop_rx.changed(), if !shared.draining.load(Ordering::SeqCst) => {
                tracing::info!("shutdown requested: taking no new tasks, finishing running ones");
                shared.draining.store(true, Ordering::SeqCst);
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + shared.config.grace_period);
                if let Err(e) = send(&mut sink, &DelegateMessage::Draining).await {
                    return Ok(SessionEnd::Lost(e));
                }
            }
            _ = grace => {
                tracing::warn!("grace period over; closing with tasks unfinished");
                let _ = sink.send(Message::Close(None)).await;
                return Ok(SessionEnd::Drained);
            }
        }
    }
}

/// Dials a WebSocket of the manager (`url`) with the delegate token and the
/// `extra` headers: the control connection, or the tunnel.
pub(crate) async fn dial(
    cfg: &crate::config::DelegateConfig,
    url: &str,
    extra: &[(&'static str, String)],
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    SessionError,
> {
    let mut request = url
        .into_client_request()
        .map_err(|e| SessionError::Fatal(DelegateError::Config(format!("{url}: {e}"))))?;
    let bearer = format!("Bearer {}", cfg.token.expose_secret())
        .parse()
        .map_err(|_| {
            SessionError::Fatal(DelegateError::Config(
                "the token has characters a header cannot carry".into(),
            ))
        })?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    for (name, value) in extra {
        let value = value.parse().map_err(|_| {
            SessionError::Fatal(DelegateError::Config(format!(
                "'{value}' cannot be sent as header {name}"
            )))
        })?;
        request.headers_mut().insert(*name, value);
    }
    let connector = if url.starts_with("wss://") {
        Some(Connector::Rustls(
            crate::tls::client_config(cfg.ca_pem.as_deref()).map_err(SessionError::Fatal)?,
        ))
    } else {
        Some(Connector::Plain)
    };
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config()),
        true,
        connector,
    );
    let (ws, _) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Err(_) => {
            return Err(SessionError::Connect(format!(
                "no answer from {url} within {HANDSHAKE_TIMEOUT:?}"
            )))
        }
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp)))
            if matches!(resp.status().as_u16(), 401 | 403) =>
        {
            return Err(SessionError::Fatal(DelegateError::Unauthorized(
                resp.status().as_u16(),
            )))
        }
        Ok(Err(e)) => return Err(SessionError::Connect(format!("{url}: {e}"))),
        Ok(Ok(ok)) => ok,
    };
    Ok(ws)
}

fn start_task(shared: &Arc<Shared>, a: TaskAssignment, ctx: &TaskContext) {
    if shared.draining.load(Ordering::SeqCst) {
        // The manager re-offers it elsewhere when its lease lapses.
        tracing::info!(task = %a.task_id, "draining: not starting a new task");
        return;
    }
    {
        let mut running = shared.running.lock().unwrap();
        if running.get(&a.task_id) == Some(&a.attempt) {
            return; // already running this attempt (re-sent after a reconnect)
        }
        running.insert(a.task_id.clone(), a.attempt);
    }
    tracing::info!(task = %a.task_id, kind = %a.kind, attempt = a.attempt, "task started");
    let shared = shared.clone();
    let mut ctx = ctx.clone();
    ctx.attempt = a.attempt;
    ctx.cancel = tokio_util::sync::CancellationToken::new();
    shared
        .cancels
        .lock()
        .unwrap()
        .insert(a.task_id.clone(), ctx.cancel.clone());
    let events = shared.outbox.emitter(&a.task_id, a.attempt);
    tokio::spawn(async move {
        let limit = Duration::from_millis(a.timeout_ms.max(1));
        let cancel = ctx.cancel.clone();
        let handles_cancel = tasks::handles_cancel(&a.kind);
        let (task_id, kind) = (a.task_id.clone(), a.kind.clone());
        let run = tasks::run(&task_id, &kind, a.payload, &ctx, events);
        tokio::pin!(run);
        let outcome = tokio::select! {
            o = &mut run => o,
            _ = tokio::time::sleep(limit) => TaskOutcome::Failed {
                message: format!("the task did not finish within its timeout of {limit:?}"),
            },
            // Kinds that end themselves when cancelled (a build cleans up
            // first) get a bounded time to; others end here.
            _ = cancel.cancelled() => match handles_cancel {
                true => match tokio::time::timeout(CANCEL_GRACE, &mut run).await {
                    Ok(o) => o,
                    Err(_) => cancelled(),
                },
                false => cancelled(),
            },
        };
        shared.cancels.lock().unwrap().remove(&a.task_id);
        tracing::info!(task = %a.task_id, ok = matches!(outcome, TaskOutcome::Succeeded { .. }), "task finished");
        shared.running.lock().unwrap().remove(&a.task_id);
        let msg = DelegateMessage::TaskResult {
            task_id: a.task_id.clone(),
            attempt: a.attempt,
            outcome,
        };
        let _ = shared.results_tx.send((a.task_id, msg));
    });
}

/// How long a cancelled task that ends itself may take to (a build's clean-up).
const CANCEL_GRACE: Duration = Duration::from_secs(90);

fn cancelled() -> TaskOutcome {
    TaskOutcome::Failed {
        message: "the task was cancelled".into(),
    }
}

async fn send<S>(sink: &mut S, msg: &DelegateMessage) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    sink.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
