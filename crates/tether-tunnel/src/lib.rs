//! The tunnel: many independent byte streams between the manager and one
//! delegate, over the one connection the delegate dialled.
//!
//! - `ws`: a WebSocket (any message type, mapped to [`ws::WsFrame`]) as one
//!   ordered byte stream, the socket yamux runs on.
//! - `mux`: a yamux session over it. The manager opens a stream per proxied
//!   request; the delegate accepts them. yamux gives every stream its own
//!   receive window (256 KiB; a stream whose reader keeps up grows it, from
//!   32 MiB shared by the connection): a sender that fills it waits for the
//!   reader, so memory per stream is bounded and one slow reader never stalls
//!   the other streams.
//! - `stream`: one stream as tokio I/O, reads bounded so they zero little.
//! - `frame`: a length-prefixed header at the start of a stream, saying what the
//!   stream is for.
//!
//! The crate knows nothing about Kubernetes or tether's protocol; heartbeats
//! stay on the delegate's control WebSocket, so a busy tunnel never delays them.
#![forbid(unsafe_code)]

pub mod frame;
pub mod mux;
mod stream;
pub mod ws;

pub use mux::{Side, Tunnel, TunnelError, TunnelStream};

/// The buffer an upgraded session (exec, port-forward) is copied through, each
/// way, at either end of the tunnel: tokio's default 8 KiB meant a yamux frame
/// and a poll per 8 KiB of a port-forward download.
pub const SESSION_COPY_BUFFER: usize = 64 * 1024;
pub use ws::{WsFrame, WsIo};
