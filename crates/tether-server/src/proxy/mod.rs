//! The Kubernetes API of a connector, through a delegate: `/k8s/...`.
//!
//! - `forward`: the endpoint: caller, grant, delegate, stream.
//! - `tunnels`: the delegates' tunnels (`/api/v1/delegates/tunnel`).
//! - `streams`: open streams by token, ended when the token is revoked.
//! - `body`: streamed, counted, cancellable bodies.
//! - `splice`: upgraded sessions (exec, attach, port-forward), counted.
//! - `spdy_ports`: the ports of a SPDY port-forward, from its stream headers.
//! - `audit`: what each request's audit entry says.
//! - `status`: failures as Kubernetes `Status` objects.

pub mod audit;
mod body;
pub mod forward;
mod spdy_ports;
mod splice;
pub mod status;
pub mod streams;
pub mod tunnels;

use std::sync::Arc;
use std::time::Duration;

pub use forward::handle;
pub use tunnels::{__path_tunnel, tunnel};

use crate::api::AppState;

/// How the proxy is run.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `http://host:port` where other managers reach this one's `/k8s/...`;
    /// `None`: this manager never receives requests from other managers.
    pub advertise_url: Option<String>,
    /// Audit entries older than this are deleted (hourly).
    pub audit_retention: Duration,
    /// This manager's TLS: the CA a kubeconfig trusts, and the client
    /// settings for passing requests to other managers over https.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            advertise_url: None,
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            tls: None,
        }
    }
}

pub struct Proxy {
    pub tunnels: tunnels::Tunnels,
    pub streams: streams::OpenStreams,
    pub settings: ProxySettings,
}

impl Proxy {
    pub fn new(settings: ProxySettings) -> Arc<Proxy> {
        Arc::new(Proxy {
            tunnels: tunnels::Tunnels::default(),
            streams: streams::OpenStreams::default(),
            settings,
        })
    }
}

/// Tells other managers where this one takes proxied requests.
pub async fn advertise(state: &AppState) {
    if let Some(url) = &state.proxy.settings.advertise_url {
        if let Err(e) = state
            .store
            .advertise_proxy_manager(&state.broker.manager_id, url)
            .await
        {
            tracing::warn!(error = %e, "cannot advertise this manager to the others");
        }
    }
}

/// The proxy's background work: close tunnels of delegates gone from this
/// manager, end streams of revoked or expired tokens (also those revoked
/// through another manager), advertise this manager, prune the audit log.
pub fn spawn_loops(state: AppState, shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut s = shutdown.clone();
    let st = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = s.changed() => {
                    st.proxy.streams.revoke_all();
                    return;
                }
            }
            let live: Vec<(String, String)> = st
                .broker
                .live_delegates()
                .into_iter()
                .map(|d| (d.id, d.token_id))
                .collect();
            st.proxy.tunnels.retain_live(&live);
            let tokens = st.proxy.streams.tokens();
            if tokens.is_empty() {
                continue;
            }
            match st
                .store
                .invalid_tokens(&tokens, crate::delegates::now_ms())
                .await
            {
                Ok(invalid) => {
                    for t in invalid {
                        tracing::info!(token = %t, "ending the proxied streams of a revoked or expired token");
                        st.proxy.streams.revoke(&t);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-check the tokens of open proxied streams")
                }
            }
        }
    });
    let mut s = shutdown;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = s.changed() => return,
            }
            advertise(&state).await;
            if n == 0 {
                let before = crate::delegates::now_ms()
                    - state.proxy.settings.audit_retention.as_millis() as i64;
                match state.store.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(k) => tracing::info!(deleted = k, "pruned old audit entries"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
                }
            }
            n = (n + 1) % 60;
        }
    });
}
