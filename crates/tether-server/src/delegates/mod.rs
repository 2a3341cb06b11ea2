//! The task broker: the delegates connected to this manager, and the tasks it
//! hands them.
//!
//! Durable state (tasks, delegates, leases) is in the store, so several managers
//! sharing one PostgreSQL act as one and a restart loses nothing. What is only
//! in memory is this manager's own connections. Three background loops keep
//! things moving:
//! - dispatch: offers queued tasks to eligible delegates connected here, the
//!   least busy first, never past a delegate's capacity;
//! - heartbeats: writes the beats received in the last second in one batch and
//!   renews the leases of the tasks those delegates hold;
//! - reaper: closes connections whose frames stopped, hands on the tasks of
//!   delegates whose connection closed and who did not reconnect within the
//!   reconnect grace, takes back tasks whose lease lapsed (offering them to
//!   another delegate), fails tasks past their deadline. It takes nothing back in the first heartbeat timeout after the
//!   manager starts: after a restart, delegates reconnect and renew the leases
//!   of the tasks they still run, which therefore do not run twice.
//!
//! Events (`task`, `done:<id>`, `revoked:<token>`) wake other managers through
//! the store's LISTEN/NOTIFY; a periodic re-scan covers any event lost.

mod connection;
pub mod eligibility;
pub(crate) mod payload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_domain::delegate_protocol::ManagerMessage;
use tether_domain::Scope;
use tether_store::{Heartbeat, NewTask, Store, StoreError, TaskRecord};
use tokio::sync::{mpsc, oneshot, Notify};

// `__path_connect`: its OpenAPI description, listed in `api/openapi.rs`.
pub use connection::{__path_connect, connect};
use eligibility::{Considered, Needs};

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// How often delegates send a heartbeat.
    pub heartbeat_interval: Duration,
    /// A delegate silent this long is disconnected and its tasks move on. Also
    /// the lease a task assignment holds between renewals.
    pub heartbeat_timeout: Duration,
    /// How many delegates may try one task.
    pub max_attempts: u32,
    /// When a delegate's connection closes (the process died, the network
    /// dropped), how long it has to reconnect and claim its tasks before they
    /// go to another delegate. Much shorter than the heartbeat timeout: a
    /// closed socket is news, a silent one is only suspicion.
    pub reconnect_grace: Duration,
    /// A delegate not seen this long (disconnected, holding no task) is
    /// removed, and its name is free again.
    pub delegate_expiry: Duration,
    /// How many delegates (names) one delegate token may register; a new
    /// name past that is refused with what to do.
    pub max_delegates_per_token: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            heartbeat_interval: Duration::from_secs(15),
            heartbeat_timeout: Duration::from_secs(45),
            max_attempts: 3,
            reconnect_grace: Duration::from_secs(5),
            delegate_expiry: Duration::from_secs(7 * 24 * 3600),
            max_delegates_per_token: 1000,
        }
    }
}

/// A message to a connected delegate; `close` ends the connection after it.
pub(crate) struct Outbound {
    pub message: ManagerMessage,
    pub close: bool,
}

/// A delegate connected to this manager.
pub(crate) struct Live {
    pub connection_id: String,
    pub token_id: String,
    pub scope: Scope,
    pub tags: Vec<String>,
    pub capacity: u32,
    pub draining: bool,
    /// Tasks handed to it and not finished, with when this manager learned of
    /// each (handed it over, or heard of it at registration): a heartbeat
    /// forgets those the delegate no longer runs (see `connection::heartbeat`).
    pub outstanding: HashMap<String, Instant>,
    pub tx: mpsc::Sender<Outbound>,
    pub last_frame: Instant,
}

/// A delegate connected to this manager, as the Kubernetes proxy sees it.
#[derive(Debug, Clone)]
pub struct LiveDelegate {
    pub id: String,
    pub token_id: String,
    pub scope: Scope,
    pub tags: Vec<String>,
    pub draining: bool,
}

/// A task could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{message}")]
    NoEligibleDelegate {
        message: String,
        considered: Vec<Considered>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Broker {
    pub store: Store,
    pub config: BrokerConfig,
    /// Identifies this manager process in the `delegates` table.
    pub manager_id: String,
    /// When this manager started: leases are not taken back during its first
    /// heartbeat timeout, so delegates have time to reconnect after a restart.
    started: Instant,
    live: Mutex<HashMap<String, Live>>,
    /// Heartbeats received since the last flush, by delegate id.
    beats: Mutex<HashMap<String, Heartbeat>>,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Delegates whose connection here closed, with when their reconnect
    /// grace ends (see [`Broker::connection_lost`]).
    handover: Mutex<HashMap<String, Instant>>,
    wake_dispatch: Notify,
    /// Wake-ups for clients following task events.
    pub events: crate::task_events::TaskEventHub,
    /// Set when [`Broker::shutdown`] starts: no new connections, and no
    /// per-connection disconnect writes (one statement marks them all).
    stopping: std::sync::atomic::AtomicBool,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Broker {
    pub fn new(store: Store, config: BrokerConfig) -> Arc<Broker> {
        Arc::new(Broker {
            store,
            config,
            manager_id: random_id(),
            started: Instant::now(),
            live: Mutex::new(HashMap::new()),
            beats: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            handover: Mutex::new(HashMap::new()),
            wake_dispatch: Notify::new(),
            events: Default::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn timeout_ms(&self) -> i64 {
        self.config.heartbeat_timeout.as_millis() as i64
    }

    /// Starts the background loops; they stop when `shutdown` fires.
    pub fn spawn_loops(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        self.spawn_expiry(shutdown.clone());
        let b = self.clone();
        let mut s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = b.wake_dispatch.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = s.changed() => return,
                }
                if let Err(e) = b.dispatch_once().await {
                    tracing::warn!(error = %e, "dispatching tasks failed; retrying");
                }
            }
        });
        let b = self.clone();
        let mut s = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = s.changed() => return,
                }
                b.flush_heartbeats().await;
                b.reap().await;
            }
        });
        let b = self.clone();
        let mut s = shutdown;
        tokio::spawn(async move {
            let mut listener = match b.store.listen().await {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot LISTEN for events from other managers; relying on periodic re-scans");
                    return;
                }
            };
            loop {
                tokio::select! {
                    ev = listener.recv() => match ev {
                        Ok(ev) => b.on_event(&ev),
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                    _ = s.changed() => return,
                }
            }
        });
    }

    /// Removes the delegates not seen for `delegate_expiry`, a few times per
    /// expiry period (at least every minute).
    fn spawn_expiry(self: &Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let b = self.clone();
        let every = (b.config.delegate_expiry / 4)
            .clamp(Duration::from_millis(500), Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
                let before = now_ms() - b.config.delegate_expiry.as_millis() as i64;
                match b.store.expire_delegates(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        count = n,
                        "removed delegates not seen within the delegate expiry"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot remove expired delegates"),
                }
            }
        });
    }

    fn on_event(&self, ev: &str) {
        if ev == "task" {
            self.wake_dispatch.notify_one();
        } else if let Some(id) = ev.strip_prefix("done:") {
            self.wake_waiters(id);
            self.events.notify(id);
        } else if let Some(rest) = ev.strip_prefix("cancel:") {
            if let Some((task_id, delegate_id)) = rest.split_once(':') {
                self.send_cancel(task_id, delegate_id);
            }
        } else if let Some(id) = ev.strip_prefix("events:") {
            self.events.notify(id);
        } else if let Some(token_id) = ev.strip_prefix("revoked:") {
            self.close_token(token_id);
        }
    }

    /// Creates a task if some delegate could run it; otherwise says why none can.
    pub async fn submit(
        &self,
        kind: &str,
        scope: &Scope,
        payload: Value,
        selectors: Vec<String>,
        timeout: Duration,
    ) -> Result<TaskRecord, SubmitError> {
        self.submit_task(kind, scope, payload, selectors, timeout, None)
            .await
    }

    /// [`Broker::submit`] for a task that must not run twice: when its
    /// delegate is lost it fails, and `on_lost` is queued in its place (see
    /// [`tether_store::FollowUp`]).
    pub async fn submit_task(
        &self,
        kind: &str,
        scope: &Scope,
        payload: Value,
        selectors: Vec<String>,
        timeout: Duration,
        on_lost: Option<tether_store::FollowUp>,
    ) -> Result<TaskRecord, SubmitError> {
        let now = now_ms();
        let secrets = payload::carried(&payload);
        let needs = Needs {
            scope,
            selectors: &selectors,
            secrets: &secrets,
        };
        let candidates = self.store.delegates_covering(scope).await?;
        let considered = eligibility::consider(&candidates, needs, now, self.timeout_ms());
        if considered.iter().all(|c| c.ineligible.is_some()) {
            // Explain with the delegates of the rest of the org too: they cannot
            // run it, and saying why (their scope) is what the caller needs when
            // a delegate was installed with another project's token.
            // Only delegates of this scope's own line (above or below it) are
            // named: whoever may act in a project must learn nothing about
            // another project, so those are only counted.
            let mut near = self.store.delegates_near(scope).await?;
            near.sort_by(|a, b| a.name.cmp(&b.name));
            let (visible, elsewhere): (Vec<_>, Vec<_>) = near
                .into_iter()
                .partition(|d| d.scope.covers(scope) || scope.covers(&d.scope));
            let considered = eligibility::consider(&visible, needs, now, self.timeout_ms());
            if considered.iter().all(|c| c.ineligible.is_some()) {
                let mut message = eligibility::explain(scope, &selectors, &considered);
                if !elsewhere.is_empty() {
                    message.push_str(&format!(
                        ". {} delegate(s) registered in other projects of this org cannot serve it: a delegate serves only its own scope and those below it",
                        elsewhere.len()
                    ));
                }
                return Err(SubmitError::NoEligibleDelegate {
                    message,
                    considered,
                });
            }
        }
        let attempts = self.config.max_attempts;
        let connector = payload::connector_named(kind, &payload);
        let task = self
            .store
            .create_task(NewTask {
                connector,
                on_lost,
                kind: kind.to_string(),
                scope: scope.clone(),
                payload,
                selectors,
                timeout_ms: timeout.as_millis() as u64,
                max_attempts: attempts,
                // Waiting plus every attempt, with room for reconnects.
                deadline_ms: (timeout.as_millis() as u64
                    + self.config.heartbeat_timeout.as_millis() as u64)
                    * u64::from(attempts)
                    + 60_000,
            })
            .await?;
        self.wake_dispatch.notify_one();
        self.publish("task").await;
        Ok(task)
    }

    /// Cancels a task: one still queued fails at once; one a delegate runs
    /// is cancelled there (through whichever manager holds its connection),
    /// and ends with the result the delegate reports. Returns the task.
    pub async fn cancel(&self, task_id: &str) -> Result<TaskRecord, StoreError> {
        if self
            .store
            .cancel_queued_task(task_id, "the task was cancelled before a delegate ran it")
            .await?
        {
            self.task_finished(task_id).await;
            return self.store.get_task(task_id).await;
        }
        let task = self.store.get_task(task_id).await?;
        if task.state == tether_store::TaskState::Assigned {
            if let Some(d) = &task.delegate_id {
                if !self.send_cancel(task_id, d) {
                    self.publish(&format!("cancel:{task_id}:{d}")).await;
                }
            }
        }
        Ok(task)
    }

    /// Sends `cancelTask` to the delegate if it is connected here.
    fn send_cancel(&self, task_id: &str, delegate_id: &str) -> bool {
        let tx = match self.live.lock().unwrap().get(delegate_id) {
            Some(d) => d.tx.clone(),
            None => return false,
        };
        let message = ManagerMessage::CancelTask {
            task_id: task_id.to_string(),
        };
        tx.try_send(Outbound {
            message,
            close: false,
        })
        .is_ok()
    }

    /// Waits until the task is finished or `limit` passes, or this manager
    /// starts shutting down (check [`Broker::stopping`]: the task goes on, on
    /// the delegates, and another manager or this one after its restart takes
    /// its result); returns its record.
    pub async fn wait(&self, task_id: &str, limit: Duration) -> Result<TaskRecord, StoreError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (tx, rx) = oneshot::channel();
            self.waiters
                .lock()
                .unwrap()
                .entry(task_id.to_string())
                .or_default()
                .push(tx);
            let task = self.store.get_task(task_id).await?;
            if task.state.is_final() || tokio::time::Instant::now() >= deadline || self.stopping() {
                return Ok(task);
            }
            // Woken by a local completion or another manager's event; the
            // periodic re-check covers an event lost in between.
            tokio::select! {
                _ = rx => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn wake_waiters(&self, task_id: &str) {
        if let Some(ws) = self.waiters.lock().unwrap().remove(task_id) {
            for w in ws {
                let _ = w.send(());
            }
        }
    }

    /// Stores events a delegate reported and wakes their readers here and on
    /// other managers. False when they could not be stored (not acknowledged:
    /// the delegate sends them again).
    pub(crate) async fn task_events(
        &self,
        delegate_id: &str,
        task_id: &str,
        attempt: u32,
        events: &[tether_domain::delegate_protocol::TaskEvent],
    ) -> bool {
        match self
            .store
            .append_task_events(task_id, attempt, delegate_id, events)
            .await
        {
            Ok(0) => true,
            Ok(_) => {
                self.events.notify(task_id);
                self.publish(&format!("events:{task_id}")).await;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, task = %task_id, "cannot store task events; the delegate re-sends them");
                false
            }
        }
    }

    async fn publish(&self, event: &str) {
        if let Err(e) = self.store.publish(event).await {
            tracing::warn!(error = %e, event, "cannot tell other managers");
        }
    }

    /// Offers queued tasks to the delegates connected here.
    async fn dispatch_once(&self) -> Result<(), StoreError> {
        let queued = self.store.queued_tasks(512).await?;
        for task in queued {
            let Some((delegate_id, delegate_scope, tx)) = self.reserve(&task) else {
                continue;
            };
            let lease = self.config.heartbeat_timeout.as_millis() as u64;
            match self.store.claim_task(&task.id, &delegate_id, lease).await {
                Ok(Some(claimed)) => {
                    let message =
                        match payload::for_delegate(&self.store, &claimed, &delegate_scope).await {
                            Ok(payload) => ManagerMessage::Task(
                                tether_domain::delegate_protocol::TaskAssignment {
                                    task_id: claimed.id.clone(),
                                    attempt: claimed.attempt,
                                    kind: claimed.kind.clone(),
                                    payload,
                                    timeout_ms: claimed.timeout_ms,
                                },
                            ),
                            Err(message) => {
                                // Nothing a delegate could do: finish it here.
                                self.unreserve(&delegate_id, &claimed.id);
                                self.store
                                    .complete_task(
                                        &claimed.id,
                                        claimed.attempt,
                                        &delegate_id,
                                        Err(message),
                                    )
                                    .await?;
                                self.task_finished(&claimed.id).await;
                                continue;
                            }
                        };
                    tracing::debug!(task = %claimed.id, delegate = %delegate_id, attempt = claimed.attempt, "task assigned");
                    if tx
                        .send(Outbound {
                            message,
                            close: false,
                        })
                        .await
                        .is_err()
                    {
                        // The connection just ended; its clean-up takes the task back.
                        tracing::debug!(task = %claimed.id, "delegate went away while the task was handed over");
                    }
                }
                Ok(None) => self.unreserve(&delegate_id, &task.id),
                Err(e) => {
                    self.unreserve(&delegate_id, &task.id);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Picks the least busy eligible delegate connected here and books a slot;
    /// returns its id and scope.
    fn reserve(&self, task: &TaskRecord) -> Option<(String, Scope, mpsc::Sender<Outbound>)> {
        let secrets = payload::carried(&task.payload);
        let needs = Needs {
            scope: &task.scope,
            selectors: &task.selectors,
            secrets: &secrets,
        };
        let mut live = self.live.lock().unwrap();
        let (id, d) = live
            .iter_mut()
            .filter(|(_, d)| {
                !d.draining
                    && (d.outstanding.len() as u32) < d.capacity
                    && needs.unmet(&d.scope, &d.tags).is_none()
            })
            .min_by_key(|(_, d)| d.outstanding.len())?;
        d.outstanding.insert(task.id.clone(), Instant::now());
        Some((id.clone(), d.scope.clone(), d.tx.clone()))
    }

    fn unreserve(&self, delegate_id: &str, task_id: &str) {
        if let Some(d) = self.live.lock().unwrap().get_mut(delegate_id) {
            d.outstanding.remove(task_id);
        }
    }

    async fn task_finished(&self, task_id: &str) {
        self.wake_waiters(task_id);
        self.events.notify(task_id);
        self.publish(&format!("done:{task_id}")).await;
    }

    async fn flush_heartbeats(&self) {
        let beats: Vec<Heartbeat> = self.beats.lock().unwrap().drain().map(|(_, b)| b).collect();
        if beats.is_empty() {
            return;
        }
        let now = now_ms();
        let lease_until = now + self.timeout_ms();
        // Tasks handed over within the last two intervals may not be in the
        // delegate's list yet.
        let in_flight_since = now - 2 * self.config.heartbeat_interval.as_millis() as i64;
        if let Err(e) = self
            .store
            .record_heartbeats(&beats, now, lease_until, in_flight_since)
            .await
        {
            tracing::warn!(error = %e, count = beats.len(), "cannot record heartbeats");
        }
    }

    async fn reap(&self) {
        self.recheck_revocations().await;
        // Connections whose frames stopped without a close.
        let silent: Vec<(String, mpsc::Sender<Outbound>)> = {
            let live = self.live.lock().unwrap();
            live.iter()
                .filter(|(_, d)| d.last_frame.elapsed() > self.config.heartbeat_timeout)
                .map(|(id, d)| (id.clone(), d.tx.clone()))
                .collect()
        };
        for (id, tx) in silent {
            tracing::warn!(delegate = %id, "no frame within the heartbeat timeout; disconnecting it");
            let _ = tx.try_send(Outbound {
                message: ManagerMessage::Closing {
                    reason: "no heartbeat within the timeout".into(),
                    reconnect: true,
                },
                close: true,
            });
            // Its session may be stuck writing; forget it here so no new task
            // goes to it, and let the lease machinery move its tasks.
            // Its tasks move on when their leases lapse (at most one heartbeat
            // timeout from their last renewal).
            let removed = self.live.lock().unwrap().remove(&id);
            if let Some(d) = removed {
                if let Ok(true) = self
                    .store
                    .delegate_disconnected(&id, &d.connection_id)
                    .await
                {
                    self.connection_lost(&id).await;
                }
            }
        }
        self.hand_over_abandoned().await;
        // Just (re)started: the delegates that hold tasks may still be
        // reconnecting, and taking their tasks back now would run them twice.
        if self.started.elapsed() >= self.config.heartbeat_timeout {
            self.release_lapsed().await;
        }
        if let Err(e) = self.store.expire_task_deadlines(now_ms()).await {
            tracing::warn!(error = %e, "cannot expire task deadlines");
        }
    }

    /// A delegate's connection here ended and no newer one replaced it: it
    /// has the reconnect grace to come back (to any manager) and renew its
    /// tasks' leases; then [`Broker::hand_over_abandoned`] gives them to
    /// another delegate. The shortened leases cover the case where this
    /// manager is gone by then: any manager's reaper takes them back.
    pub(crate) async fn connection_lost(&self, delegate_id: &str) {
        let grace = self.config.reconnect_grace;
        // Twice the grace: this manager hands them on first (checking the
        // delegate did not come back); the lease is the fallback.
        let until = now_ms() + 2 * grace.as_millis() as i64;
        match self
            .store
            .shorten_leases_of_disconnected(delegate_id, until)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(delegate = %delegate_id, tasks = n, grace = ?grace, "the delegate's connection closed while it held tasks; they go to another delegate unless it reconnects within the grace");
                self.handover
                    .lock()
                    .unwrap()
                    .insert(delegate_id.to_string(), Instant::now() + grace);
            }
            Err(e) => {
                tracing::warn!(error = %e, delegate = %delegate_id, "cannot shorten the leases of a disconnected delegate's tasks; they move on when their leases lapse")
            }
        }
    }

    /// Takes back the tasks of delegates whose reconnect grace is over and who
    /// are still disconnected, and offers them again.
    async fn hand_over_abandoned(&self) {
        let due: Vec<String> = {
            let mut handover = self.handover.lock().unwrap();
            let now = Instant::now();
            let due: Vec<String> = handover
                .iter()
                .filter(|(_, until)| **until <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &due {
                handover.remove(id);
            }
            due
        };
        let grace = self.config.reconnect_grace;
        let mut any = false;
        for id in due {
            let reason = format!(
                "its delegate's connection closed and it did not reconnect within {grace:?}"
            );
            match self.store.release_tasks_if_disconnected(&id, &reason).await {
                Ok(released) => {
                    for t in &released {
                        tracing::info!(task = %t.id, delegate = %id, state = t.state.as_str(), "took back a task of a delegate that did not reconnect");
                        if t.state.is_final() {
                            self.task_finished(&t.id).await;
                        }
                    }
                    any |= !released.is_empty();
                }
                Err(e) => {
                    tracing::warn!(error = %e, delegate = %id, "cannot take back a disconnected delegate's tasks; they move on when their leases lapse")
                }
            }
        }
        if any {
            self.wake_dispatch.notify_one();
            self.publish("task").await;
        }
    }

    /// Closes connections whose token was revoked, in case the revocation event
    /// missed this manager. A few distinct tokens serve many delegates, so this
    /// is one small query per tick.
    async fn recheck_revocations(&self) {
        let tokens: Vec<String> = {
            let live = self.live.lock().unwrap();
            let set: std::collections::BTreeSet<&String> =
                live.values().map(|d| &d.token_id).collect();
            set.into_iter().cloned().collect()
        };
        if tokens.is_empty() {
            return;
        }
        match self.store.revoked_delegate_tokens(&tokens).await {
            Ok(revoked) => {
                for t in revoked {
                    self.close_token(&t);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot re-check delegate token revocations"),
        }
    }

    /// Takes back the tasks whose lease lapsed and offers them again.
    async fn release_lapsed(&self) {
        match self.store.release_expired_leases(now_ms()).await {
            Ok(released) if !released.is_empty() => {
                for t in &released {
                    tracing::info!(task = %t.id, state = t.state.as_str(), "took back a task whose lease lapsed");
                    if t.state.is_final() {
                        self.task_finished(&t.id).await;
                    }
                }
                self.wake_dispatch.notify_one();
                self.publish("task").await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check task leases"),
        }
    }

    /// Closes this manager's connections made with a revoked token, at once.
    pub fn close_token(&self, token_id: &str) {
        let live = self.live.lock().unwrap();
        for d in live.values().filter(|d| d.token_id == token_id) {
            let _ = d.tx.try_send(Outbound {
                message: ManagerMessage::Closing {
                    reason: "the delegate token was revoked; create a new one with `tether delegate token create` and restart the delegate with it".into(),
                    reconnect: false,
                },
                close: true,
            });
        }
    }

    /// Revokes a delegate token and disconnects its delegates on every manager.
    pub async fn revoke_token(
        &self,
        token_id: &str,
    ) -> Result<tether_store::DelegateTokenRecord, StoreError> {
        let rec = self.store.revoke_delegate_token(token_id).await?;
        self.close_token(token_id);
        self.publish(&format!("revoked:{token_id}")).await;
        Ok(rec)
    }

    /// Tells every connected delegate the manager is going away, so they
    /// reconnect (to another manager, or to this one after its restart).
    pub async fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Requests waiting for a task answer now (it is not lost: it is
        // durable, and its delegate reports to whichever manager it reaches).
        let waiting: Vec<String> = self.waiters.lock().unwrap().keys().cloned().collect();
        for id in waiting {
            self.wake_waiters(&id);
        }
        let txs: Vec<mpsc::Sender<Outbound>> = self
            .live
            .lock()
            .unwrap()
            .values()
            .map(|d| d.tx.clone())
            .collect();
        for tx in txs {
            let _ = tx
                .send(Outbound {
                    message: ManagerMessage::Closing {
                        reason: "the manager is shutting down".into(),
                        reconnect: true,
                    },
                    close: true,
                })
                .await;
        }
        if let Err(e) = self.store.manager_stopped(&self.manager_id).await {
            tracing::warn!(error = %e, "cannot mark this manager's delegates disconnected");
        }
    }

    /// True once [`Broker::shutdown`] has started.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The delegates connected to this manager now.
    pub fn live_delegates(&self) -> Vec<LiveDelegate> {
        self.live
            .lock()
            .unwrap()
            .iter()
            .map(|(id, d)| LiveDelegate {
                id: id.clone(),
                token_id: d.token_id.clone(),
                scope: d.scope.clone(),
                tags: d.tags.clone(),
                draining: d.draining,
            })
            .collect()
    }

    /// How many delegates are connected to this manager.
    pub fn connected_here(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

pub(crate) fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
