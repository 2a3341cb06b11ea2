//! Tokens kept until shortly before they expire, so that repeated tests (and
//! later, any long-lived use) do not ask the cloud each time.
//!
//! The key is a SHA-256 over everything that made the token (the secrets
//! included), so a changed credential never gets an old token, and the map
//! holds no secret in the clear. Entries are dropped when looked up expired,
//! and the map is bounded.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

const MAX_ENTRIES: usize = 1024;

/// A cache key: the parts are hashed in order, each length-prefixed.
pub(crate) fn key(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Key -> (expiry in Unix seconds, value).
type Entries<T> = HashMap<[u8; 32], (i64, T)>;

/// A cache of `T` values that each carry their own expiry (Unix seconds).
pub(crate) struct Cache<T> {
    map: OnceLock<Mutex<Entries<T>>>,
}

impl<T: Clone> Cache<T> {
    pub const fn new() -> Self {
        Cache {
            map: OnceLock::new(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        self.map
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The value if it stays valid for at least `margin` more seconds.
    pub fn get(&self, key: &[u8; 32], now: i64, margin: i64) -> Option<T> {
        let mut map = self.map();
        match map.get(key) {
            Some((exp, v)) if *exp - margin > now => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: [u8; 32], expires_at: i64, value: T, now: i64) {
        let mut map = self.map();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (exp, _)| *exp > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (expires_at, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_before_expiry() {
        let c: Cache<u32> = Cache::new();
        let k = key(&[b"a", b"b"]);
        assert_ne!(k, key(&[b"ab"]), "parts are length-prefixed");
        c.put(k, 1000, 7, 0);
        assert_eq!(c.get(&k, 900, 60), Some(7));
        assert_eq!(
            c.get(&k, 941, 60),
            None,
            "within the margin: make a new one"
        );
        assert_eq!(c.get(&k, 900, 60), None, "and the old one is gone");
    }
}
