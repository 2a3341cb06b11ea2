//! Bearer tokens that expire, for clients that outlive one token: the API
//! proxy asks [`BearerSource::token`] before every request it passes on, so
//! a client kept for many requests never sends a stale token.
//!
//! Cloud tokens come from [`crate::cloud_auth::token`] (its cache hands out a
//! token only while it has the provider's margin left); OpenID Connect ID
//! tokens from the connection test's password grant, kept here until
//! [`OIDC_REFRESH_MARGIN`] before their `exp`. Errors quote no secret.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::cloud_auth::cache::{self, Cache};
use crate::cloud_auth::{self, CloudAuth};
use crate::connection_test::{oidc_id_token, OidcLogin};

/// An ID token is used only while it has this much life left.
pub const OIDC_REFRESH_MARGIN: i64 = 60;
/// How long an ID token without an `exp` claim is kept.
const OIDC_NO_EXP_LIFETIME: i64 = 5 * 60;
const TIMEOUT: Duration = Duration::from_secs(10);

static ID_TOKENS: Cache<SecretString> = Cache::new();

/// Where a fresh bearer token comes from.
#[derive(Clone, Debug)]
pub enum BearerSource {
    Cloud(CloudAuth),
    Oidc(OidcLogin),
}

impl BearerSource {
    /// What it is, for messages: `EKS`, `GKE`, `AKS`, `OpenIdConnect`.
    pub fn kind(&self) -> &'static str {
        match self {
            BearerSource::Cloud(CloudAuth::Eks(_)) => "EKS",
            BearerSource::Cloud(CloudAuth::Gke(_)) => "GKE",
            BearerSource::Cloud(CloudAuth::Aks(_)) => "AKS",
            BearerSource::Oidc(_) => "OpenIdConnect",
        }
    }

    /// A token good for at least the refresh margin: cached, or made now.
    pub async fn token(&self) -> Result<SecretString, String> {
        match self {
            BearerSource::Cloud(c) => cloud_auth::token(c, &cloud_auth::Options::default())
                .await
                .map(|t| t.token)
                .map_err(|e| e.to_string()),
            BearerSource::Oidc(login) => oidc(login).await,
        }
    }
}

fn oidc_key(l: &OidcLogin) -> [u8; 32] {
    let scopes = l.scopes.join(" ");
    cache::key(&[
        b"oidc",
        l.issuer_url.as_bytes(),
        l.client_id.as_bytes(),
        l.client_secret
            .as_ref()
            .map(|s| s.expose_secret().as_bytes())
            .unwrap_or_default(),
        l.username.as_bytes(),
        l.password.expose_secret().as_bytes(),
        scopes.as_bytes(),
        l.ca_pem.as_deref().unwrap_or_default().as_bytes(),
    ])
}

async fn oidc(login: &OidcLogin) -> Result<SecretString, String> {
    let key = oidc_key(login);
    let now = cloud_auth::Options::default().unix_now();
    if let Some(t) = ID_TOKENS.get(&key, now, OIDC_REFRESH_MARGIN) {
        return Ok(t);
    }
    let (token, exp) = oidc_id_token(login, TIMEOUT).await?;
    let exp = exp.unwrap_or(now + OIDC_NO_EXP_LIFETIME);
    ID_TOKENS.put(key, exp, token.clone(), now);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(password: &str) -> OidcLogin {
        OidcLogin {
            issuer_url: "https://idp.example".into(),
            client_id: "kubernetes".into(),
            client_secret: None,
            username: "bob".into(),
            password: SecretString::from(password.to_string()),
            scopes: vec![],
            ca_pem: None,
        }
    }

    #[test]
    fn a_changed_password_gets_another_token() {
        assert_eq!(oidc_key(&login("a")), oidc_key(&login("a")));
        assert_ne!(oidc_key(&login("a")), oidc_key(&login("b")));
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = format!("{:?}", BearerSource::Oidc(login("hunter2-password")));
        assert!(!s.contains("hunter2"), "{s}");
    }
}
