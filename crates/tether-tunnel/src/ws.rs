//! A WebSocket as a byte stream: binary messages carry the bytes, in order.
//!
//! Generic over the WebSocket library: the caller maps its message type to
//! [`WsFrame`] (reading) and bytes to a binary message (writing), so the
//! manager (axum) and the delegate (tokio-tungstenite) share this code.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::{AsyncRead, AsyncWrite, Sink, Stream};

/// One received WebSocket message, as the tunnel sees it.
pub enum WsFrame {
    /// A binary message: tunnel bytes.
    Data(Bytes),
    /// Ping, pong, text: not tunnel bytes; skipped.
    Other,
    /// The peer closed the WebSocket: end of the byte stream.
    Close,
}

/// Writes are gathered up to this size and sent as one binary message on flush
/// (yamux writes a frame's header and body separately). Every message is a
/// TLS write and a send on the socket: a bulk transfer makes a quarter of
/// them at 256 KiB than at 64.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// `futures` `AsyncRead + AsyncWrite` over a WebSocket's stream and sink.
pub struct WsIo<St, Si> {
    stream: St,
    sink: Si,
    read: Bytes,
    write: BytesMut,
    eof: bool,
}

impl<St, Si> WsIo<St, Si>
where
    St: Stream<Item = io::Result<WsFrame>> + Unpin,
    Si: Sink<Bytes, Error = io::Error> + Unpin,
{
    pub fn new(stream: St, sink: Si) -> Self {
        WsIo {
            stream,
            sink,
            read: Bytes::new(),
            write: BytesMut::new(),
            eof: false,
        }
    }

    /// Sends what is gathered as one message.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.sink).poll_ready(cx))?;
        let message = self.write.split().freeze();
        Pin::new(&mut self.sink).start_send(message)?;
        Poll::Ready(Ok(()))
    }
}

impl<St, Si> AsyncRead for WsIo<St, Si>
where
    St: Stream<Item = io::Result<WsFrame>> + Unpin,
    Si: Sink<Bytes, Error = io::Error> + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.read.is_empty() {
                let n = buf.len().min(this.read.len());
                buf[..n].copy_from_slice(&this.read[..n]);
                this.read.advance(n);
                return Poll::Ready(Ok(n));
            }
            if this.eof {
                return Poll::Ready(Ok(0));
            }
            match ready!(Pin::new(&mut this.stream).poll_next(cx)) {
                Some(Ok(WsFrame::Data(b))) => this.read = b,
                Some(Ok(WsFrame::Other)) => {}
                Some(Ok(WsFrame::Close)) | None => this.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<St, Si> AsyncWrite for WsIo<St, Si>
where
    St: Stream<Item = io::Result<WsFrame>> + Unpin,
    Si: Sink<Bytes, Error = io::Error> + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.len() >= MAX_MESSAGE {
            ready!(this.poll_send(cx))?;
        }
        let n = buf
            .len()
            .min(MAX_MESSAGE - this.write.len().min(MAX_MESSAGE));
        this.write.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.sink).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.sink).poll_close(cx)
    }
}
