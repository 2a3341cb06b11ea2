//! Open proxied streams by the API token that opened them, so revoking (or the
//! expiry of) a token ends its watches, logs and sessions within a second.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct OpenStreams {
    by_token: Mutex<HashMap<String, (CancellationToken, usize)>>,
}

/// Holds a token's cancellation while a stream (a body, a session) is open.
pub struct OwnedStreamGuard {
    streams: std::sync::Arc<super::Proxy>,
    token_id: String,
    pub cancel: CancellationToken,
}

impl OpenStreams {
    fn enter(&self, token_id: &str) -> CancellationToken {
        let mut map = self.by_token.lock().unwrap();
        let e = map
            .entry(token_id.to_string())
            .or_insert_with(|| (CancellationToken::new(), 0));
        e.1 += 1;
        e.0.clone()
    }

    fn leave(&self, token_id: &str) {
        let mut map = self.by_token.lock().unwrap();
        if let Some(e) = map.get_mut(token_id) {
            e.1 -= 1;
            if e.1 == 0 {
                map.remove(token_id);
            }
        }
    }

    /// Ends every open stream of this token.
    pub fn revoke(&self, token_id: &str) {
        if let Some((c, _)) = self.by_token.lock().unwrap().remove(token_id) {
            c.cancel();
        }
    }

    /// Ends every open stream (the manager is shutting down).
    pub fn revoke_all(&self) {
        for (_, (c, _)) in self.by_token.lock().unwrap().drain() {
            c.cancel();
        }
    }

    /// Tokens with open streams.
    pub fn tokens(&self) -> Vec<String> {
        self.by_token.lock().unwrap().keys().cloned().collect()
    }
}

impl OwnedStreamGuard {
    pub fn new(proxy: std::sync::Arc<super::Proxy>, token_id: &str) -> Self {
        OwnedStreamGuard {
            cancel: proxy.streams.enter(token_id),
            streams: proxy,
            token_id: token_id.to_string(),
        }
    }
}

impl Drop for OwnedStreamGuard {
    fn drop(&mut self) {
        self.streams.streams.leave(&self.token_id);
    }
}
