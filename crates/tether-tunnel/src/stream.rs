//! One stream of the tunnel as a tokio `AsyncRead + AsyncWrite`.
//!
//! yamux streams speak the `futures` traits, which read into initialised
//! memory. `tokio_util::compat` bridges them by zeroing all of the caller's
//! unfilled buffer on every read, and hyper offers up to 400 KiB of it each
//! time: zeroing then cost more than the copy (a tenth of the manager's CPU on a
//! large list), and hyper polls a streaming answer's connection for reading
//! after every chunk it writes, so each watch event paid for it too. Here a
//! read zeroes only as much as recent reads brought (between [`MIN_READ`]
//! bytes and one frame): little for a watch, a frame for a download.
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

/// The least a read asks yamux for.
const MIN_READ: usize = 256;
/// The most: one frame.
const MAX_READ: usize = crate::mux::FRAME;

pub struct TunnelStream {
    inner: yamux::Stream,
    /// What the next read asks for: doubled after a read that filled it,
    /// halved after one that brought less than half.
    read_size: usize,
}

impl TunnelStream {
    pub(crate) fn new(inner: yamux::Stream) -> Self {
        TunnelStream {
            inner,
            read_size: MIN_READ,
        }
    }

    /// Writes frames from `buf` until it is written or yamux has no room;
    /// what was written, or Pending (or the error) if nothing was.
    fn write_frames(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut written = 0;
        while written < buf.len() {
            match futures::AsyncWrite::poll_write(Pin::new(&mut self.inner), cx, &buf[written..]) {
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

/// The size of the read after one of `asked` bytes brought `got`.
fn next_read_size(asked: usize, got: usize) -> usize {
    if got == asked {
        (asked * 2).min(MAX_READ)
    } else if got < asked / 2 {
        (asked / 2).max(MIN_READ)
    } else {
        asked
    }
}

impl tokio::io::AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(this.read_size);
        let dst = buf.initialize_unfilled_to(want);
        let n = ready!(futures::AsyncRead::poll_read(
            Pin::new(&mut this.inner),
            cx,
            dst
        ))?;
        buf.advance(n);
        if want == this.read_size {
            this.read_size = next_read_size(want, n);
        }
        Poll::Ready(Ok(()))
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
        futures::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().inner), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().inner), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_to_a_frame_for_bulk_and_shrink_back_for_small_messages() {
        let mut size = MIN_READ;
        // A download: every read comes back full.
        for _ in 0..20 {
            size = next_read_size(size, size);
        }
        assert_eq!(size, MAX_READ);
        // Watch events of 700 bytes from then on.
        for _ in 0..20 {
            size = next_read_size(size, 700.min(size));
        }
        assert!((700..2 * 700).contains(&size), "settled at {size}");
        // Nothing but end of stream.
        for _ in 0..20 {
            size = next_read_size(size, 0);
        }
        assert_eq!(size, MIN_READ);
    }
}
