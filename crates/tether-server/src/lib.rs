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

use std::future::Future;

use tokio::net::TcpListener;

pub use api::{router, AppState};

/// Serves the API on `listener` until `shutdown` completes, then stops taking
/// connections and lets requests in flight finish.
/// The broker's loops run until then too; on the way out every delegate is
/// told to reconnect (to another manager, or to this one after a restart).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    state.broker.spawn_loops(stop_rx.clone());
    connectivity::spawn_retest_loop(state.clone(), stop_rx.clone());
    let broker = state.broker.clone();
    let mut http_stop = stop_rx;
    tokio::spawn(async move {
        shutdown.await;
        // Delegates first: their WebSockets would otherwise hold the graceful
        // HTTP shutdown open.
        broker.shutdown().await;
        let _ = stop_tx.send(true);
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await
}
