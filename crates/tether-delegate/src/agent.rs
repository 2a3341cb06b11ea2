//! The delegate's life: connect, run a session until it ends, wait a jittered
//! backoff, connect again; on shutdown, drain.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tether_domain::delegate_protocol::DelegateMessage;
use tokio::sync::{mpsc, watch};

use crate::config::DelegateConfig;
use crate::session::{self, SessionEnd, SessionError};
use crate::DelegateError;

/// State that outlives a single connection.
pub(crate) struct Shared {
    pub config: DelegateConfig,
    /// Registered with a manager right now (the readiness probe).
    pub ready: Arc<AtomicBool>,
    /// Shutdown requested: take no new tasks.
    pub draining: AtomicBool,
    /// Running tasks: id -> attempt.
    pub running: Mutex<HashMap<String, u32>>,
    /// Results sent but not yet acknowledged, re-sent after a reconnect so a
    /// result is never lost to a dropped connection.
    pub unacked: Mutex<Vec<(String, DelegateMessage)>>,
    pub results_tx: mpsc::UnboundedSender<(String, DelegateMessage)>,
    /// Live events of running tasks, until the manager has them.
    pub outbox: Arc<crate::tasks::events::Outbox>,
    /// The cancel switch of each running task.
    pub cancels: Mutex<HashMap<String, tokio_util::sync::CancellationToken>>,
}

impl Shared {
    pub fn idle(&self) -> bool {
        self.running.lock().unwrap().is_empty() && self.unacked.lock().unwrap().is_empty()
    }
}

/// Runs the delegate until `shutdown` completes and running tasks are done (or
/// the grace period is over). Returns an error only for what retrying cannot fix.
pub async fn run(
    config: DelegateConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DelegateError> {
    config.connect_url()?;
    let (results_tx, mut results_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        ready: Arc::new(AtomicBool::new(false)),
        draining: AtomicBool::new(false),
        running: Mutex::new(HashMap::new()),
        unacked: Mutex::new(Vec::new()),
        results_tx,
        outbox: Arc::default(),
        cancels: Mutex::default(),
        config,
    });
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    if let Some(addr) = shared.config.health_listen {
        let ready = shared.ready.clone();
        let mut rx = stop_rx.clone();
        let listener = tokio::spawn(crate::health::serve(addr, ready, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        // Fail fast when the port is taken rather than run without probes.
        tokio::task::yield_now().await;
        if listener.is_finished() {
            if let Ok(Err(e)) = listener.await {
                return Err(e);
            }
        }
    }

    let mut attempt: u32 = 0;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        if *stop_rx.borrow() {
            shared.draining.store(true, Ordering::SeqCst);
            deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + shared.config.grace_period);
            if shared.idle() {
                break;
            }
        }
        let started = Instant::now();
        match session::run(&shared, &mut results_rx, &mut stop_rx, &mut deadline).await {
            Ok(SessionEnd::Drained) => break,
            Ok(SessionEnd::Lost(reason)) => {
                tracing::warn!(%reason, "connection to the manager lost");
            }
            Err(SessionError::Fatal(e)) => {
                shared.ready.store(false, Ordering::SeqCst);
                return Err(e);
            }
            Err(SessionError::Connect(reason)) => {
                tracing::warn!(%reason, attempt, "cannot connect to the manager");
            }
        }
        shared.ready.store(false, Ordering::SeqCst);
        // A session that lived a while was healthy: start the backoff over.
        if started.elapsed() > shared.config.backoff.cap {
            attempt = 0;
        }
        if let Some(d) = deadline {
            if tokio::time::Instant::now() >= d {
                tracing::warn!("grace period over; exiting with tasks unfinished (the manager will hand them to another delegate)");
                break;
            }
        }
        let delay = shared.config.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "reconnecting after a jittered backoff"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => {}
        }
    }
    tracing::info!("delegate stopped");
    Ok(())
}
