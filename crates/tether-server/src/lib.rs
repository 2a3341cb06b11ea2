//! The tether manager's HTTP side: the REST API under `/api/v1`, authentication
//! with scoped API tokens, and serving until a shutdown signal.
//!
//! The store does the rules that concern data (validation, references,
//! encryption); this crate does the rules that concern callers (who may do what,
//! where) and the wire format (JSON/YAML, one error shape, body limits).
#![forbid(unsafe_code)]

pub mod api;

use std::future::Future;

use tokio::net::TcpListener;

pub use api::{router, AppState};

/// Serves the API on `listener` until `shutdown` completes, then stops taking
/// connections and lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
