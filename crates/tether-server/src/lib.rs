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
pub mod proxy;
pub mod task_events;
pub mod tls;

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
    serve_with(listener, state, None, shutdown, shutdown_timeout).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    tls: Option<tls::TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    state.broker.spawn_loops(stop_rx.clone());
    connectivity::spawn_retest_loop(state.clone(), stop_rx.clone());
    proxy::spawn_loops(state.clone(), stop_rx.clone());
    proxy::advertise(&state).await;
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
    if let Some(tls) = tls {
        let served = tokio::select! {
            served = serve_tls(listener, router(state), tls, http_stop) => served,
            _ = async {
                let _ = bound.wait_for(|s| *s).await;
                tokio::time::sleep(shutdown_timeout).await;
            } => {
                tracing::warn!(timeout = ?shutdown_timeout, "requests still in flight after the shutdown timeout; stopping anyway (clients retry, tasks are durable)");
                Ok(())
            }
        };
        let _ = stopping.await;
        return served;
    }
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

/// The accept loop for HTTPS: TLS, then HTTP/1.1 with upgrades; on shutdown
/// it stops accepting and waits for the connections in flight.
async fn serve_tls(
    listener: TcpListener,
    app: axum::Router,
    tls: tls::TlsConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        while conns.try_join_next().is_some() {}
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        conns.spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
                return;
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    Ok(())
}
