//! Browser sessions: an API token is exchanged once, at login, for a random
//! session id kept in an `HttpOnly; SameSite=Strict` cookie.
//!
//! The server maps the session to the *id* of the API token, never to its value:
//! neither the cookie nor this process's memory holds the token after login.
//! Every request re-reads the token record, so revoking the token ends its
//! sessions at once. Sessions live in this process's memory: with several
//! managers behind one address, route a browser to the same manager (sticky
//! sessions) or it signs in again.
//!
//! Each session carries a CSRF token (synchronizer pattern). Pages embed it; the
//! JavaScript sends it in `X-CSRF-Token` on every mutation, forms in a hidden
//! `csrf` field. A request authenticated by the cookie that changes anything
//! without the matching token is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, Method};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tether_session";
/// Name of the cookie that protects the login form itself (double submit).
pub const LOGIN_CSRF_COOKIE: &str = "tether_login_csrf";
/// Header the JavaScript sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session unused this long expires.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session expires this long after login, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most; past it the least recently used is dropped.
pub const MAX_SESSIONS: usize = 10_000;
/// Sessions one API token may hold; past it that token's least recently used
/// is dropped, so signing in again and again with one token cannot push out
/// anyone else's sessions.
pub const MAX_SESSIONS_PER_TOKEN: usize = 16;

struct Entry {
    token_id: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// What a valid session says about its browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The id (not the value) of the API token the browser signed in with.
    pub token_id: String,
    /// The CSRF token of this session.
    pub csrf: String,
}

/// The sessions of this manager. Cheap to clone (shared).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<[u8; 32], Entry>>>,
    idle: Duration,
    absolute: Duration,
    max: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_timeouts(IDLE_TIMEOUT, ABSOLUTE_TIMEOUT)
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The map is keyed by the hash of the cookie value, so the value itself is not
/// kept either.
fn key(cookie_value: &str) -> [u8; 32] {
    Sha256::digest(cookie_value.as_bytes()).into()
}

/// Constant-time string comparison for secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

impl Sessions {
    pub fn with_timeouts(idle: Duration, absolute: Duration) -> Self {
        Sessions {
            inner: Arc::default(),
            idle,
            absolute,
            max: MAX_SESSIONS,
        }
    }

    /// The same with room for at most `max` sessions.
    pub fn with_capacity(mut self, max: usize) -> Self {
        self.max = max.max(1);
        self
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.duration_since(e.last_seen) >= self.idle
            || now.duration_since(e.created) >= self.absolute
    }

    /// Starts a session for the token with id `token_id`; returns the cookie
    /// value (shown to nobody but the browser) and the session's CSRF token.
    pub fn create(&self, token_id: &str) -> (String, String) {
        let value = random_token();
        let csrf = random_token();
        let now = Instant::now();
        let mut map = self.inner.lock().expect("sessions lock");
        map.retain(|_, e| !self.expired(e, now));
        let of_token = map.values().filter(|e| e.token_id == token_id).count();
        // Who makes room: this token's own oldest session when it holds its
        // share, anyone's oldest when the whole map is full.
        let make_room = if of_token >= MAX_SESSIONS_PER_TOKEN {
            Some(Some(token_id))
        } else if map.len() >= self.max {
            Some(None)
        } else {
            None
        };
        if let Some(only) = make_room {
            if let Some(oldest) = map
                .iter()
                .filter(|(_, e)| only.is_none_or(|t| e.token_id == t))
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            key(&value),
            Entry {
                token_id: token_id.to_string(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (value, csrf)
    }

    /// The live session with this cookie value, refreshing its idle timer.
    pub fn get(&self, cookie_value: &str) -> Option<SessionInfo> {
        let k = key(cookie_value);
        let now = Instant::now();
        let mut map = self.inner.lock().expect("sessions lock");
        let expired = self.expired(map.get(&k)?, now);
        if expired {
            map.remove(&k);
            return None;
        }
        let e = map.get_mut(&k)?;
        e.last_seen = now;
        Some(SessionInfo {
            token_id: e.token_id.clone(),
            csrf: e.csrf.clone(),
        })
    }

    /// The session of a request, from its cookie.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<SessionInfo> {
        self.get(cookie(headers, SESSION_COOKIE)?)
    }

    /// Ends the session with this cookie value (logout).
    pub fn remove(&self, cookie_value: &str) {
        self.inner
            .lock()
            .expect("sessions lock")
            .remove(&key(cookie_value));
    }

    /// Ends every session of a token (its record says it was revoked).
    pub fn remove_token(&self, token_id: &str) {
        self.inner
            .lock()
            .expect("sessions lock")
            .retain(|_, e| e.token_id != token_id);
    }

    /// Sessions currently held (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How the REST API should treat a request that carries no `Authorization`
    /// header: [`ApiSession::None`] when it has no (live) session cookie either.
    pub fn authenticate_api(&self, method: &Method, headers: &HeaderMap) -> ApiSession {
        let Some(session) = self.from_headers(headers) else {
            return ApiSession::None;
        };
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_secret(sent, &session.csrf) {
                return ApiSession::CsrfRejected;
            }
        }
        ApiSession::Authenticated {
            token_id: session.token_id,
        }
    }
}

/// The outcome of [`Sessions::authenticate_api`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSession {
    /// No session: the request is anonymous.
    None,
    /// A live session of the API token with this id (CSRF checked when needed).
    Authenticated { token_id: String },
    /// A session cookie on a mutation without the session's CSRF token.
    CsrfRejected,
}

/// The message the API returns for [`ApiSession::CsrfRejected`].
pub const CSRF_MESSAGE: &str = "this request changes data and was authenticated by the session cookie, but it lacks the session's CSRF token in the X-CSRF-Token header; reload the page and try again (scripts should send 'Authorization: Bearer <token>' instead of the cookie)";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(cookie_value: &str, csrf: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {SESSION_COOKIE}={cookie_value}; c=d")).unwrap(),
        );
        if let Some(c) = csrf {
            h.insert(CSRF_HEADER, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_when_idle_and_absolutely() {
        let s = Sessions::with_timeouts(Duration::from_secs(60), Duration::from_secs(150));
        let (v, _) = s.create("tok1");
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(s.get(&v).is_some(), "used within the idle timeout");
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(s.get(&v).is_some(), "the idle timer restarts on use");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(s.get(&v).is_none(), "idle for 60 s");

        let (v, _) = s.create("tok1");
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(50)).await;
            let _ = s.get(&v);
        }
        assert!(s.get(&v).is_none(), "past the absolute limit although used");
    }

    #[test]
    fn the_cookie_value_is_random_and_not_the_key() {
        let s = Sessions::default();
        let (a, csrf_a) = s.create("t");
        let (b, csrf_b) = s.create("t");
        assert_ne!(a, b);
        assert_ne!(csrf_a, csrf_b);
        assert!(a.len() >= 43, "256 bits");
        assert_eq!(s.get(&a).unwrap().token_id, "t");
        assert!(s.get("not-a-session").is_none());
        s.remove(&a);
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some());
        s.remove_token("t");
        assert!(s.is_empty());
    }

    #[test]
    fn mutations_need_the_csrf_token() {
        let s = Sessions::default();
        let (v, csrf) = s.create("tok");
        let ok = ApiSession::Authenticated {
            token_id: "tok".into(),
        };
        assert_eq!(s.authenticate_api(&Method::GET, &headers(&v, None)), ok);
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(
                s.authenticate_api(&m, &headers(&v, None)),
                ApiSession::CsrfRejected
            );
            assert_eq!(
                s.authenticate_api(&m, &headers(&v, Some("wrong"))),
                ApiSession::CsrfRejected
            );
            assert_eq!(s.authenticate_api(&m, &headers(&v, Some(&csrf))), ok);
        }
        assert_eq!(
            s.authenticate_api(&Method::POST, &headers("stale", Some(&csrf))),
            ApiSession::None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_logins_with_one_token_only_push_out_that_tokens_sessions() {
        let s = Sessions::default();
        let other = s.create("someone-else").0;
        let mut mine = Vec::new();
        for _ in 0..10_000 {
            tokio::time::advance(Duration::from_millis(1)).await;
            mine.push(s.create("busy").0);
        }
        assert!(s.get(&other).is_some(), "another token's session survives");
        assert_eq!(s.len(), MAX_SESSIONS_PER_TOKEN + 1);
        assert!(s.get(mine.last().unwrap()).is_some(), "the newest stays");
        assert!(s.get(&mine[0]).is_none(), "the oldest of that token went");
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_session_makes_room() {
        let s = Sessions::default().with_capacity(3);
        let tick = || tokio::time::advance(Duration::from_secs(1));
        let first = s.create("first").0;
        tick().await;
        let second = s.create("second").0;
        tick().await;
        let third = s.create("third").0;
        tick().await;
        // Using the first makes the second the least recently used.
        assert!(s.get(&first).is_some());
        s.create("fourth");
        assert_eq!(s.len(), 3);
        assert!(s.get(&second).is_none());
        assert!(s.get(&first).is_some() && s.get(&third).is_some());
    }
}
