//! The delegate's side of the Kubernetes proxy: a tunnel to the manager (a
//! second WebSocket, beside the control connection), and for each stream the
//! manager opens, the request passed on to the API server with the connector's
//! credentials.
//!
//! - `upstream`: a connector (and the secrets the manager sent with the
//!   stream) as an HTTP client for its API server, cached per credential set.
//! - `serve`: one stream: its header, then HTTP/1.1, upgrades spliced.

mod h2_pool;
mod serve;
mod upstream;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_tunnel::{Side, Tunnel, WsFrame, WsIo};
use tokio_tungstenite::tungstenite::Message;

use crate::config::DelegateConfig;
use crate::session;
use crate::tasks::TaskContext;

/// The manager checks the tunnel belongs to this registered delegate.
const DELEGATE_HEADER: &str = "x-tether-delegate-id";

/// Aborts the tunnel when the session that started it ends.
pub(crate) struct TunnelTask(tokio::task::JoinHandle<()>);

impl Drop for TunnelTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps a tunnel open for the registered session `delegate_id`, dialling
/// again after a short pause when it drops.
pub(crate) fn spawn(cfg: DelegateConfig, delegate_id: String, ctx: TaskContext) -> TunnelTask {
    let upstreams = Arc::new(upstream::Upstreams::default());
    TunnelTask(tokio::spawn(async move {
        let mut attempt = 0u32;
        loop {
            match run_once(&cfg, &delegate_id, &ctx, &upstreams).await {
                Ok(()) => attempt = 0,
                Err(e) => tracing::warn!(error = %e, "the tunnel to the manager failed"),
            }
            let delay = cfg.backoff.delay(attempt).min(Duration::from_secs(5));
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(delay).await;
        }
    }))
}

async fn run_once(
    cfg: &DelegateConfig,
    delegate_id: &str,
    ctx: &TaskContext,
    upstreams: &Arc<upstream::Upstreams>,
) -> Result<(), String> {
    let url = cfg
        .connect_url()
        .map_err(|e| e.to_string())?
        .replace("/api/v1/delegates/connect", "/api/v1/delegates/tunnel");
    let ws = match session::dial(cfg, &url, &[(DELEGATE_HEADER, delegate_id.to_string())]).await {
        Ok(ws) => ws,
        Err(session::SessionError::Connect(m)) => return Err(m),
        Err(session::SessionError::Fatal(e)) => return Err(e.to_string()),
    };
    tracing::info!(%delegate_id, "tunnel to the manager open");
    let (sink, stream) = ws.split();
    let stream = stream.map(|m| match m {
        Ok(Message::Binary(b)) => Ok(WsFrame::Data(b)),
        Ok(Message::Close(_)) => Ok(WsFrame::Close),
        Ok(_) => Ok(WsFrame::Other),
        Err(e) => Err(io::Error::other(e)),
    });
    let sink = sink
        .sink_map_err(io::Error::other)
        .with(|b: bytes::Bytes| futures_util::future::ready(Ok(Message::Binary(b))));
    let io = WsIo::new(stream, Box::pin(sink));
    let (_tunnel, mut incoming, driver) = Tunnel::start(io, Side::Delegate);
    let ctx = Arc::new(ctx.clone());
    let accept = async {
        while let Some(s) = incoming.recv().await {
            tokio::spawn(serve::stream(s, upstreams.clone(), ctx.clone()));
        }
    };
    tokio::select! {
        r = driver => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        _ = accept => Ok(()),
    }
}
