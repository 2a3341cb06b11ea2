//! A yamux session: the manager side opens streams, the delegate side accepts
//! them. One task drives the session (yamux makes progress only while polled);
//! [`Tunnel`] is a cheap handle to it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

pub use crate::stream::TunnelStream;

/// Which end of the tunnel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opens streams (one per proxied request).
    Manager,
    /// Accepts them.
    Delegate,
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the tunnel to the delegate is closed")]
    Closed,
    #[error("the tunnel failed: {0}")]
    Connection(#[from] yamux::ConnectionError),
}

/// Streams at once per tunnel: 1,000 watches through one delegate need room.
pub const MAX_STREAMS: usize = 8192;

/// Receive window the streams may grow into, together, beyond their initial
/// 256 KiB each. yamux doubles a stream's window when its reader took half of
/// it within two round trips, so only streams read as fast as they arrive
/// grow (a large list, a port-forward download); a stalled reader keeps
/// 256 KiB. Without this room no window ever grew, and one stream carried at
/// most 256 KiB per round trip through both ends.
pub const GROWTH_WINDOW: usize = 32 * 1024 * 1024;

fn config() -> yamux::Config {
    let mut c = yamux::Config::default();
    // The connection-wide cap on receive windows: each stream's initial
    // 256 KiB plus the shared room to grow. A cap, not an allocation.
    c.set_max_connection_receive_window(Some(
        MAX_STREAMS * yamux::DEFAULT_CREDIT as usize + GROWTH_WINDOW,
    ));
    c.set_max_num_streams(MAX_STREAMS);
    // Frames of up to 128 KiB: a bulk stream then costs an eighth of the
    // frames, channel sends and wake-ups of yamux's 16 KiB (and half of a
    // new stream's 256 KiB window, so the sender never waits for a whole one).
    c.set_split_send_size(FRAME);
    c
}

/// The largest data frame a stream sends.
pub const FRAME: usize = 128 * 1024;

type OpenRequest = oneshot::Sender<Result<yamux::Stream, TunnelError>>;

/// A handle to a running tunnel session. Dropping every handle closes it.
#[derive(Clone)]
pub struct Tunnel {
    open: mpsc::Sender<OpenRequest>,
    closed: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
}

/// Counts a stream as active while it lives (see [`Tunnel::active`]).
pub struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tunnel {
    /// Starts a session over `io` on the current tokio runtime. Returns the
    /// handle, the streams the peer opens, and the task driving the session
    /// (it ends when the connection does).
    pub fn start<T>(
        io: T,
        side: Side,
    ) -> (
        Tunnel,
        mpsc::UnboundedReceiver<TunnelStream>,
        tokio::task::JoinHandle<Result<(), TunnelError>>,
    )
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mode = match side {
            Side::Manager => yamux::Mode::Client,
            Side::Delegate => yamux::Mode::Server,
        };
        let conn = yamux::Connection::new(io, config(), mode);
        let (open_tx, open_rx) = mpsc::channel(64);
        // Unbounded in name only: every queued item is a live yamux stream,
        // and yamux caps those at MAX_STREAMS. A bounded queue dropped streams
        // when a burst (1,000 watches opened at once) outran the acceptor.
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        let task = tokio::spawn(async move {
            let r = drive(conn, open_rx, in_tx).await;
            flag.store(true, Ordering::SeqCst);
            if let Err(e) = &r {
                tracing::debug!(error = %e, "tunnel session ended");
            }
            r
        });
        (
            Tunnel {
                open: open_tx,
                closed,
                active: Arc::new(AtomicUsize::new(0)),
            },
            in_rx,
            task,
        )
    }

    /// Opens a new stream to the peer.
    pub async fn open(&self) -> Result<TunnelStream, TunnelError> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.map_err(|_| TunnelError::Closed)?;
        let stream = rx.await.map_err(|_| TunnelError::Closed)??;
        Ok(TunnelStream::new(stream))
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.open.is_closed()
    }

    /// Marks one more stream in use; the count drops with the guard.
    pub fn track(&self) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.active.clone())
    }

    /// Streams in use (as tracked by [`Tunnel::track`]): picks the least busy.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

async fn drive<T>(
    mut conn: yamux::Connection<T>,
    mut open_rx: mpsc::Receiver<OpenRequest>,
    in_tx: mpsc::UnboundedSender<TunnelStream>,
) -> Result<(), TunnelError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending: VecDeque<OpenRequest> = VecDeque::new();
    let mut handles_gone = false;
    poll_fn(|cx| {
        if !handles_gone {
            loop {
                match open_rx.poll_recv(cx) {
                    Poll::Ready(Some(req)) => pending.push_back(req),
                    Poll::Ready(None) => {
                        handles_gone = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        if handles_gone && pending.is_empty() && in_tx.is_closed() {
            // Nobody can use the session any more: close it.
            return conn.poll_close(cx).map_err(TunnelError::from);
        }
        while !pending.is_empty() {
            match conn.poll_new_outbound(cx) {
                Poll::Ready(Ok(s)) => {
                    if let Some(req) = pending.pop_front() {
                        let _ = req.send(Ok(s));
                    }
                }
                Poll::Ready(Err(e)) => {
                    for req in pending.drain(..) {
                        let _ = req.send(Err(TunnelError::Closed));
                    }
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Pending => break,
            }
        }
        // Polling for inbound streams is also what moves every frame.
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    if in_tx.send(TunnelStream::new(s)).is_err() {
                        tracing::debug!("dropped an inbound tunnel stream nobody accepts");
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}
