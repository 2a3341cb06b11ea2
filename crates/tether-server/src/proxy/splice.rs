//! An upgraded session (exec, attach, cp, port-forward; SPDY/3.1 or
//! WebSocket): bytes copied both ways between the client's connection and the
//! cluster's until either side closes or the token is revoked. Bytes are
//! counted as they pass, so the audit entry has them however the session ends,
//! and a client that simply goes away (kubectl closes its connection without a
//! TLS close_notify) ends the session normally; only a failure on the
//! cluster's side is recorded as an error.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::audit::{AuditGuard, Counters};
use super::spdy_ports::PortSniffer;
use super::streams::OwnedStreamGuard;

/// The client's side of a session: counts bytes each way, notes whether an
/// I/O error came from this side, and (a port-forward that names no ports
/// in its request) looks for the ports in its SPDY headers.
struct ClientSide<T> {
    inner: T,
    counters: Arc<Counters>,
    failed: Arc<AtomicBool>,
    ports: Option<PortSniffer>,
}

impl<T> ClientSide<T> {
    fn note<R>(&self, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(_)) = &r {
            self.failed.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientSide<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if let Some(p) = &mut self.ports {
            p.feed(&buf.filled()[before..]);
        }
        self.counters
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        self.note(r)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClientSide<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.counters
                .bytes_out
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        self.note(r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(r)
    }
}

/// Runs the session to its end; the audit entry is written when it returns.
pub async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    open: OwnedStreamGuard,
    mut audit: AuditGuard,
) {
    let (c, u) = tokio::join!(client, upstream);
    let (c, mut u) = match (c, u) {
        (Ok(c), Ok(u)) => (TokioIo::new(c), TokioIo::new(u)),
        (Err(e), _) | (_, Err(e)) => {
            audit.fail(format!("the upgrade failed: {e}"));
            return;
        }
    };
    let failed = Arc::new(AtomicBool::new(false));
    let mut c = ClientSide {
        inner: c,
        counters: audit.counters.clone(),
        failed: failed.clone(),
        ports: audit.wants_ports().then(PortSniffer::default),
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(
            &mut c,
            &mut u,
            tether_tunnel::SESSION_COPY_BUFFER,
            tether_tunnel::SESSION_COPY_BUFFER,
        ) => {
            if let Err(e) = r {
                if !failed.load(Ordering::Relaxed) {
                    audit.fail(format!("the session to the cluster failed: {e}"));
                }
            }
        }
        _ = open.cancel.cancelled() => audit.fail("ended: the caller's token was revoked or expired"),
    }
    if let Some(ports) = c.ports.as_ref().and_then(PortSniffer::ports) {
        audit.set_ports(ports);
    }
}
