//! The tunnel: many independent byte streams between the manager and one
//! delegate, over the one connection the delegate dialled.
//!
//! - `ws`: a WebSocket (any message type, mapped to [`ws::WsFrame`]) as one
//!   ordered byte stream, the socket yamux runs on.
//! - `mux`: a yamux session over it. The manager opens a stream per proxied
//!   request; the delegate accepts them. yamux gives every stream its own
//!   receive window (256 KiB, auto-tuned to the bandwidth-delay product, capped
//!   per connection): a sender that fills it waits for the reader, so memory per
//!   stream is bounded and one slow reader never stalls the other streams.
//! - `frame`: a length-prefixed header at the start of a stream, saying what the
//!   stream is for.
//!
//! The crate knows nothing about Kubernetes or tether's protocol; heartbeats
//! stay on the delegate's control WebSocket, so a busy tunnel never delays them.
#![forbid(unsafe_code)]

pub mod frame;
pub mod mux;
pub mod ws;

pub use mux::{Side, Tunnel, TunnelError, TunnelStream};
pub use ws::{WsFrame, WsIo};
