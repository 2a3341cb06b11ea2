//! Simulated delegates: each is one WebSocket speaking the real protocol
//! (`tether_domain::delegate_protocol`), with the real agent's reconnect rule
//! (`tether_delegate::backoff::Backoff`, reset after a session that lived longer
//! than the cap, as `tether_delegate::agent` does). Thousands share one process:
//! a task and a small-buffer socket each.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_delegate::backoff::Backoff;
use tether_domain::delegate_protocol::{
    DelegateMessage, ManagerMessage, Registration, TaskOutcome, PROTOCOL_VERSION,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The agent's own handshake limit (tether_delegate::session).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every simulated delegate adds to.
#[derive(Default)]
pub struct Stats {
    /// Registered sessions open right now.
    pub connected: AtomicUsize,
    pub registrations: AtomicU64,
    /// Attempts that did not end registered: TCP refused or reset, handshake
    /// or registration failed or timed out.
    pub failed_attempts: AtomicU64,
    /// `closing` with `reconnect: false`: a real agent exits on this.
    pub refused: AtomicU64,
    /// Registered sessions that ended.
    pub lost: AtomicU64,
    /// Bumped by the bench to start counting who has come back.
    pub epoch: AtomicU64,
    pub epoch_started: Mutex<Option<Instant>>,
    /// When each delegate first registered in the current epoch.
    pub epoch_registrations: Mutex<Vec<Instant>>,
    /// Task id -> when its `task` message arrived.
    pub tasks: Mutex<HashMap<String, Instant>>,
    pub task_arrived: Notify,
    /// First error messages seen, for the report.
    pub errors: Mutex<HashMap<String, u64>>,
}

impl Stats {
    /// Starts a new epoch now; `epoch_registrations` counts from here.
    pub fn new_epoch(&self) {
        *self.epoch_started.lock().unwrap() = Some(Instant::now());
        self.epoch_registrations.lock().unwrap().clear();
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn back_in_epoch(&self) -> usize {
        self.epoch_registrations.lock().unwrap().len()
    }

    fn error(&self, kind: &str) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 32 || e.contains_key(kind) {
            *e.entry(kind.to_string()).or_default() += 1;
        }
    }
}

#[derive(Clone)]
pub struct SimConfig {
    pub manager: SocketAddr,
    /// Source addresses to spread connections over (127.0.0.x), so ephemeral
    /// ports never run out.
    pub sources: Vec<Ipv4Addr>,
    pub capacity: u32,
    /// Answer `task`s at once with a succeeded result.
    pub answer_tasks: bool,
    pub backoff: Backoff,
}

pub struct Fleet {
    pub stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet {
            stats: Arc::new(Stats::default()),
            stop: watch::channel(false).0,
            handles: Vec::new(),
        }
    }

    /// Starts one more simulated delegate.
    pub fn spawn(&mut self, cfg: &SimConfig, name: String, token: String) {
        let index = self.handles.len();
        let source = cfg.sources[index % cfg.sources.len()];
        let d = Sim {
            cfg: cfg.clone(),
            name,
            token,
            source,
            stats: self.stats.clone(),
            stop: self.stop.subscribe(),
        };
        self.handles.push(tokio::spawn(d.run()));
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Closes every connection and waits for the tasks to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

struct Sim {
    cfg: SimConfig,
    name: String,
    token: String,
    source: Ipv4Addr,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
}

enum End {
    Stopped,
    /// Refused for good: the real agent exits.
    Fatal,
    Retry,
}

impl Sim {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut epoch_seen = 0;
        loop {
            let started = Instant::now();
            match self.session(&mut epoch_seen).await {
                End::Stopped | End::Fatal => return,
                End::Retry => {}
            }
            // The agent's rule: a session that lived a while starts the backoff over.
            if started.elapsed() > self.cfg.backoff.cap {
                attempt = 0;
            }
            let delay = self.cfg.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => return,
            }
        }
    }

    async fn connect(&self) -> Result<WebSocketStream<TcpStream>, &'static str> {
        let socket = TcpSocket::new_v4().map_err(|_| "socket")?;
        socket
            .bind(SocketAddr::new(IpAddr::V4(self.source), 0))
            .map_err(|_| "bind (no free source port)")?;
        let stream =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, socket.connect(self.cfg.manager)).await {
                Err(_) => return Err("tcp connect timed out"),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err("tcp connection refused")
                }
                Ok(Err(_)) => return Err("tcp connect failed"),
                Ok(Ok(s)) => s,
            };
        let _ = stream.set_nodelay(true);
        let mut request = format!("ws://{}/api/v1/delegates/connect", self.cfg.manager)
            .into_client_request()
            .map_err(|_| "request")?;
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::header::AUTHORIZATION,
            format!("Bearer {}", self.token)
                .parse()
                .map_err(|_| "token header")?,
        );
        // Small buffers, as the agent uses.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(16 << 20));
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)),
        )
        .await
        {
            Err(_) => Err("websocket handshake timed out"),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => {
                if r.status().is_server_error() {
                    Err("handshake answered 5xx")
                } else {
                    Err("handshake answered 4xx")
                }
            }
            Ok(Err(_)) => Err("websocket handshake failed"),
            Ok(Ok((ws, _))) => Ok(ws),
        }
    }

    async fn session(&mut self, epoch_seen: &mut u64) -> End {
        let mut ws = match self.connect().await {
            Ok(ws) => ws,
            Err(e) => {
                self.stats.error(e);
                return End::Retry;
            }
        };
        let register = DelegateMessage::Register(Registration {
            protocol: PROTOCOL_VERSION,
            name: self.name.clone(),
            tags: vec!["sim".into()],
            version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: "bench".into(),
            in_cluster: false,
            capacity: self.cfg.capacity,
        });
        if send(&mut ws, &register).await.is_err() {
            self.stats.error("sending register failed");
            return End::Retry;
        }
        let heartbeat = match tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ManagerMessage>(&t) {
                Ok(ManagerMessage::Registered {
                    heartbeat_interval_ms,
                    ..
                }) => Duration::from_millis(heartbeat_interval_ms.max(100)),
                Ok(ManagerMessage::Closing {
                    reconnect: false, ..
                }) => {
                    self.stats
                        .error("registration refused (the agent would exit)");
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    return End::Fatal;
                }
                _ => {
                    self.stats.error("unexpected answer to register");
                    return End::Retry;
                }
            },
            Err(_) => {
                self.stats.error("no answer to register within 10 s");
                return End::Retry;
            }
            _ => {
                self.stats.error("connection ended before registered");
                return End::Retry;
            }
        };
        self.stats.registrations.fetch_add(1, Ordering::Relaxed);
        self.stats.connected.fetch_add(1, Ordering::SeqCst);
        let epoch = self.stats.epoch.load(Ordering::SeqCst);
        if epoch > *epoch_seen {
            *epoch_seen = epoch;
            self.stats
                .epoch_registrations
                .lock()
                .unwrap()
                .push(Instant::now());
        }
        let end = self.registered(&mut ws, heartbeat).await;
        self.stats.connected.fetch_sub(1, Ordering::SeqCst);
        if !matches!(end, End::Stopped) {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
        end
    }

    async fn registered(&mut self, ws: &mut WebSocketStream<TcpStream>, every: Duration) -> End {
        // Like the agent: the first beat right away, then one per interval.
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<ManagerMessage>(&t) {
                        Ok(ManagerMessage::Task(a)) => {
                            self.stats.tasks.lock().unwrap().insert(a.task_id.clone(), Instant::now());
                            self.stats.task_arrived.notify_waiters();
                            if self.cfg.answer_tasks {
                                let result = DelegateMessage::TaskResult {
                                    task_id: a.task_id,
                                    attempt: a.attempt,
                                    outcome: TaskOutcome::Succeeded { output: a.payload },
                                };
                                if send(ws, &result).await.is_err() {
                                    return End::Retry;
                                }
                            }
                        }
                        Ok(ManagerMessage::Closing { reconnect: false, .. }) => {
                            self.stats.refused.fetch_add(1, Ordering::Relaxed);
                            return End::Fatal;
                        }
                        Ok(ManagerMessage::Closing { .. }) => return End::Retry,
                        Ok(_) => {}
                        Err(_) => {}
                    },
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Retry,
                    Some(Ok(_)) => {}
                },
                _ = ticker.tick() => {
                    if send(ws, &DelegateMessage::Heartbeat { running: Vec::new() }).await.is_err() {
                        return End::Retry;
                    }
                }
                _ = self.stop.changed() => {
                    let _ = ws.close(None).await;
                    return End::Stopped;
                }
            }
        }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, m: &DelegateMessage) -> Result<(), ()> {
    let text = serde_json::to_string(m).map_err(|_| ())?;
    ws.send(Message::text(text)).await.map_err(|_| ())
}

/// Waits (bounded) until the `task` message for `task_id` has arrived; when.
pub async fn task_arrival(stats: &Stats, task_id: &str, limit: Duration) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = stats.task_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(t) = stats.tasks.lock().unwrap().remove(task_id) {
            return Some(t);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return None;
        }
    }
}
