//! The tether manager's HTTP side: the REST API under `/api/v1`, authentication
//! with scoped API tokens, and serving until a shutdown signal.
//!
//! The store does the rules that concern data (validation, references,
//! encryption); this crate does the rules that concern callers (who may do what,
//! where) and the wire format (JSON/YAML, one error shape, body limits).
#![forbid(unsafe_code)]

pub mod api;
pub mod connectivity;
pub mod delegates;
pub mod metrics;
pub mod task_events;

use std::future::Future;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use api::{router, AppState};

/// Serves the API on `listener` until `shutdown` completes, then stops taking
/// connections and lets requests in flight finish, for at most
/// `shutdown_timeout`: requests waiting for a task answer at once with its id
/// (`MANAGER_RESTARTING`), and whatever is still running after the timeout is
/// dropped (the client retries; tasks are durable).
/// The broker's loops run until then too; on the way out every delegate is
/// told to reconnect (to another manager, or to this one after a restart).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    state.broker.spawn_loops(stop_rx.clone());
    connectivity::spawn_retest_loop(state.clone(), stop_rx.clone());
    let broker = state.broker.clone();
    let mut http_stop = stop_rx.clone();
    let mut bound = stop_rx;
    let stopping = tokio::spawn(async move {
        shutdown.await;
        // Stop accepting first, then close the delegates' WebSockets (which
        // would otherwise hold the graceful HTTP shutdown open). In that order
        // delegates that dial back at once are refused by the kernel: with ten
        // thousand of them, answering each here slowed the shutdown for seconds.
        let _ = stop_tx.send(true);
        broker.shutdown().await;
    });
    // Small frames (a task for a delegate, an API answer) go out at once:
    // with Nagle's algorithm a frame written in two parts waited for the
    // peer's delayed ACK, about 40 ms per task handed to a delegate.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    let graceful = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let served = tokio::select! {
        served = graceful => served,
        _ = async {
            let _ = bound.wait_for(|s| *s).await;
            tokio::time::sleep(shutdown_timeout).await;
        } => {
            tracing::warn!(timeout = ?shutdown_timeout, "requests still in flight after the shutdown timeout; stopping anyway (clients retry, tasks are durable)");
            Ok(())
        }
    };
    match served {
        // The delegates are told and marked disconnected before the store closes.
        Ok(()) => {
            let _ = stopping.await;
        }
        Err(_) => stopping.abort(),
    }
    served
}
