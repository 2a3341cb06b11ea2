//! One stream of the tunnel as a tokio `AsyncRead + AsyncWrite`.
//!
//! yamux streams speak the `futures` traits, which read into initialised
//! memory. `tokio_util::compat` bridges them by zeroing all of the caller's
//! unfilled buffer on every read, and hyper offers up to 400 KiB of it each
//! time: zeroing then cost more than the copy (a tenth of the manager's CPU on a
//! large list). Here a read zeroes at most [`READ_CHUNK`] bytes, a little
//! the most yamux hands over at once.
//!
//! A yamux write takes one frame at a time. hyper gathers what it writes
//! (a chunk's size line, the chunk, its CRLF) into one buffer and, after
//! each partial write, moved the rest of that buffer forward: writes here go
//! on frame after frame until yamux says wait. Vectored writes are not
//! offered on purpose: each slice would become a frame of its own, three per
//! watch event instead of one.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::ReadBuf;

/// The most a read asks yamux for: one frame.
const READ_CHUNK: usize = crate::mux::FRAME;

pub struct TunnelStream(yamux::Stream);

impl TunnelStream {
    pub(crate) fn new(s: yamux::Stream) -> Self {
        TunnelStream(s)
    }
}

impl tokio::io::AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining().min(READ_CHUNK);
        let dst = buf.initialize_unfilled_to(want);
        let n = ready!(futures::AsyncRead::poll_read(
            Pin::new(&mut self.get_mut().0),
            cx,
            dst
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl TunnelStream {
    /// Writes frames from `buf` until it is written or yamux has no room;
    /// what was written, or Pending (or the error) if nothing was.
    fn write_frames(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut written = 0;
        while written < buf.len() {
            match futures::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, &buf[written..]) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => written += n,
                // The error comes again on the next write.
                Poll::Ready(Err(_)) if written > 0 => break,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if written > 0 => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(written))
    }
}

impl tokio::io::AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_frames(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().0), cx)
    }
}
