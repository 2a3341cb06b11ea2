//! The tether delegate: a small agent that runs in or near a cluster, dials out
//! to the manager over a WebSocket (so it works from private networks), and runs
//! the tasks the manager hands it.
//!
//! - `config`: what `tether delegate run` was told.
//! - `backoff`: reconnect delays (capped exponential, full jitter: a restarted
//!   manager is not hit by every delegate at the same instant).
//! - `session`: one WebSocket connection: register, heartbeat, receive tasks,
//!   report results.
//! - `agent`: the reconnect loop around sessions, and graceful shutdown.
//! - `tasks`: what each task kind does.
//! - `health`: liveness/readiness endpoint for Kubernetes probes.
//! - `proxy`: the tunnel for proxied Kubernetes requests, and passing each to
//!   the API server with the connector's credentials.
#![forbid(unsafe_code)]

pub mod agent;
pub mod backoff;
pub mod config;
pub mod health;
mod proxy;
mod session;
pub mod tasks;
mod tls;

pub use agent::run;
pub use config::DelegateConfig;

#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    #[error("the manager refused the delegate token ({0}): it is revoked, mistyped or belongs to another manager; create one with `tether delegate token create`")]
    Unauthorized(u16),
    #[error("the manager refused the registration: {0}")]
    Refused(String),
    /// The manager ended the connection and said not to come back (token
    /// revoked, replaced by another process of the same name).
    #[error("the manager disconnected this delegate for good: {0}")]
    Closed(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot serve the health endpoint on {addr}: {source}")]
    Health {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}
