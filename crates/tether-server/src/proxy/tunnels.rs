//! The delegates' tunnels on this manager: `GET /api/v1/delegates/tunnel`, a
//! WebSocket a registered delegate dials next to its control connection, and
//! the registry of open tunnels by delegate id.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tether_tunnel::{Side, Tunnel, WsFrame, WsIo};

use crate::api::error::ApiError;
use crate::api::AppState;

/// Which delegate's tunnel this is (the id from its `registered` answer).
pub const DELEGATE_HEADER: &str = "x-tether-delegate-id";

/// Tunnel messages are at most `tether_tunnel::ws::MAX_MESSAGE`; room for more.
const MAX_MESSAGE: usize = 4 * tether_tunnel::ws::MAX_MESSAGE;

/// What one read of a tunnel takes from its socket. The buffer stays with the
/// tunnel while it is open, idle or not, so it is paid once per connected
/// delegate (a manager holds thousands): 64 KiB, not a whole message.
const READ_BUFFER: usize = 64 * 1024;

struct Entry {
    generation: u64,
    token_id: String,
    tunnel: Tunnel,
    driver: tokio::task::AbortHandle,
}

#[derive(Default)]
pub struct Tunnels {
    map: Mutex<HashMap<String, Entry>>,
    next: std::sync::atomic::AtomicU64,
}

impl Tunnels {
    fn insert(
        &self,
        delegate_id: &str,
        token_id: &str,
        tunnel: Tunnel,
        driver: tokio::task::AbortHandle,
    ) -> u64 {
        let generation = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let old = self.map.lock().unwrap().insert(
            delegate_id.to_string(),
            Entry {
                generation,
                token_id: token_id.to_string(),
                tunnel,
                driver,
            },
        );
        if let Some(old) = old {
            old.driver.abort();
        }
        generation
    }

    fn remove(&self, delegate_id: &str, generation: u64) {
        let mut map = self.map.lock().unwrap();
        if map
            .get(delegate_id)
            .is_some_and(|e| e.generation == generation)
        {
            map.remove(delegate_id);
        }
    }

    /// The open tunnel of this delegate, made with this token.
    pub fn get(&self, delegate_id: &str, token_id: &str) -> Option<Tunnel> {
        let map = self.map.lock().unwrap();
        map.get(delegate_id)
            .filter(|e| e.token_id == token_id && !e.tunnel.is_closed())
            .map(|e| e.tunnel.clone())
    }

    /// Closes the tunnels of delegates no longer connected here (their control
    /// connection ended: heartbeats stopped, token revoked, replaced), which
    /// ends their streams with an error.
    pub fn retain_live(&self, live: &[(String, String)]) {
        let mut map = self.map.lock().unwrap();
        map.retain(|id, e| {
            let keep = !e.tunnel.is_closed()
                && live
                    .iter()
                    .any(|(lid, token)| lid == id && *token == e.token_id);
            if !keep {
                tracing::info!(delegate = %id, "closing the tunnel of a delegate no longer connected");
                e.driver.abort();
            }
            keep
        });
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `GET /api/v1/delegates/tunnel`.
#[utoipa::path(
    get,
    path = "/api/v1/delegates/tunnel",
    tag = "delegates",
    operation_id = "delegateTunnel",
    summary = "A delegate's tunnel for proxied Kubernetes requests",
    description = "A WebSocket a delegate dials once it is registered on `/api/v1/delegates/connect`, with the same \
**delegate token** and `X-Tether-Delegate-Id: <the delegateId of its registered answer>`. Binary frames carry a yamux \
session: the manager opens one stream per proxied Kubernetes request (`/k8s/...`); each stream starts with a \
length-prefixed JSON header (the connector, its secret values, the identity to impersonate) followed by HTTP/1.1. \
The tunnel closes when the delegate's control connection ends.",
    security(("delegateToken" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the connection is now the delegate's tunnel."),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, description = "No delegate token, or an unknown or revoked one (`UNAUTHENTICATED`).", content_type = "application/json", body = crate::api::error::ErrorBody),
        (status = 409, description = "No registered control connection of that delegate with this token on this manager (`NOT_REGISTERED`): register on `/api/v1/delegates/connect` first, through the same manager.", content_type = "application/json", body = crate::api::error::ErrorBody),
        (status = 500, response = crate::api::openapi::Internal),
    ),
)]
pub async fn tunnel(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return ApiError::unauthorized(
            "a delegate opens its tunnel with 'Authorization: Bearer <delegate token>'",
        )
        .into_response();
    };
    let record = match state.store.authenticate_delegate(token).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ApiError::unauthorized("the delegate token is unknown or revoked")
                .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let delegate_id = headers
        .get(DELEGATE_HEADER)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let registered = state
        .broker
        .live_delegates()
        .iter()
        .any(|d| d.id == delegate_id && d.token_id == record.id);
    if !registered {
        return ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "NOT_REGISTERED",
            format!("no registered connection of delegate '{delegate_id}' with this token on this manager; the tunnel follows the registration on /api/v1/delegates/connect"),
        )
        .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::bad_request(format!(
                "this is the delegates' tunnel WebSocket ({})",
                rejection.body_text()
            ))
            .into_response()
        }
    };
    let proxy = state.proxy.clone();
    let token_id = record.id.clone();
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
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
            let (tunnel, _incoming, driver) = Tunnel::start(io, Side::Manager);
            let generation =
                proxy
                    .tunnels
                    .insert(&delegate_id, &token_id, tunnel, driver.abort_handle());
            tracing::info!(delegate = %delegate_id, "delegate tunnel open");
            let _ = driver.await;
            proxy.tunnels.remove(&delegate_id, generation);
            tracing::info!(delegate = %delegate_id, "delegate tunnel closed");
        })
}
