//! Azure AKS with Entra ID: a token for the AKS server application
//! (`6dae42f8-4368-4678-94ff-3960e28e3630/.default`) from the OAuth2
//! client-credentials grant at `<authority>/<tenant>/oauth2/v2.0/token`, with a
//! client secret or, for AKS workload identity, the federated token file as a
//! client assertion.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::cache::{self, Cache};
use super::gke::oauth_answer;
use super::http;
use super::{CloudError, CloudToken, Options};
pub use tether_domain::cloud_auth::{
    AKS_DEFAULT_AUTHORITY as DEFAULT_AUTHORITY, AKS_SERVER_APP_ID,
};
/// Use a cached token only while it has this much life left.
pub const REFRESH_MARGIN: i64 = 5 * 60;
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Clone)]
pub enum AksCredential {
    Secret(SecretString),
    /// AKS workload identity: `AZURE_FEDERATED_TOKEN_FILE`.
    FederatedTokenFile(PathBuf),
}

impl std::fmt::Debug for AksCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AksCredential::Secret(_) => f.write_str("Secret(<redacted>)"),
            AksCredential::FederatedTokenFile(p) => write!(f, "FederatedTokenFile({p:?})"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AksConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: AksCredential,
    /// Default [`DEFAULT_AUTHORITY`].
    pub authority_host: Option<String>,
}

impl AksConfig {
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host
                .as_deref()
                .unwrap_or(DEFAULT_AUTHORITY)
                .trim_end_matches('/'),
            self.tenant_id
        )
    }
}

static TOKENS: Cache<CloudToken> = Cache::new();

pub async fn token(cfg: &AksConfig, opts: &Options) -> Result<CloudToken, CloudError> {
    let now = opts.unix_now();
    let cred: Vec<u8> = match &cfg.credential {
        AksCredential::Secret(s) => [b"secret".as_slice(), s.expose_secret().as_bytes()].concat(),
        AksCredential::FederatedTokenFile(p) => {
            [b"file".as_slice(), p.to_string_lossy().as_bytes()].concat()
        }
    };
    let key = cache::key(&[
        b"aks",
        cfg.tenant_id.as_bytes(),
        cfg.client_id.as_bytes(),
        &cred,
        cfg.token_url().as_bytes(),
    ]);
    if opts.use_cache {
        if let Some(mut t) = TOKENS.get(&key, now, REFRESH_MARGIN) {
            t.cached = true;
            return Ok(t);
        }
    }
    let url = cfg.token_url();
    http::check_url("Entra ID", &url)?;
    let scope = format!("{AKS_SERVER_APP_ID}/.default");
    let (secret_or_assertion, how) = match &cfg.credential {
        AksCredential::Secret(s) => (s.expose_secret().to_string(), "client secret".to_string()),
        AksCredential::FederatedTokenFile(p) => (
            std::fs::read_to_string(p)
                .map_err(|e| {
                    CloudError::NoDelegateIdentity(format!(
                        "the delegate's AZURE_FEDERATED_TOKEN_FILE {} cannot be read: {e}",
                        p.display()
                    ))
                })?
                .trim()
                .to_string(),
            format!("the delegate's workload identity ({})", p.display()),
        ),
    };
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "client_credentials"),
        ("client_id", &cfg.client_id),
        ("scope", &scope),
    ];
    match &cfg.credential {
        AksCredential::Secret(_) => form.push(("client_secret", &secret_or_assertion)),
        AksCredential::FederatedTokenFile(_) => {
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
            form.push(("client_assertion", &secret_or_assertion));
        }
    }
    let client = http::client(opts.timeout).map_err(|e| CloudError::Unreachable {
        service: "Entra ID",
        url: url.clone(),
        error: e,
    })?;
    let req = client
        .post(&url)
        .header("accept", "application/json")
        .form(&form);
    let a = http::send("Entra ID", &url, req).await?;
    let (token, expires_in) = oauth_answer("Entra ID", "the client-credentials grant", &url, &a)?;
    let t = CloudToken {
        token,
        expires_at: now + expires_in,
        identity: format!("application {} in tenant {}", cfg.client_id, cfg.tenant_id),
        source: format!("{how} for the AKS server application at {url}"),
        cached: false,
    };
    TOKENS.put(key, t.expires_at, t.clone(), now);
    Ok(t)
}

/// The `AADSTS` number of an Entra ID error description
/// (`AADSTS7000215: Invalid client secret provided...`).
pub fn aadsts_code(description: &str) -> Option<u32> {
    let rest = description.split("AADSTS").nth(1)?;
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_codes() {
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret provided."),
            Some(7_000_215)
        );
        assert_eq!(aadsts_code("nothing"), None);
    }

    #[test]
    fn token_url_uses_the_authority_and_tenant() {
        let c = AksConfig {
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "x".into(),
            credential: AksCredential::Secret(SecretString::from("s")),
            authority_host: None,
        };
        assert_eq!(
            c.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(!format!("{c:?}").contains("\"s\""));
    }
}
