//! Building a Kubernetes client from explicit credentials.
//!
//! Unlike a kubeconfig, a [`ClusterAccess`] can only carry data: there is no field
//! that runs a command (`exec`) or reads a local file, so a connector supplied by a
//! user can never make tether do either.

use std::time::Duration;

use base64::Engine as _;
use kube::config::AuthInfo;
use kube::{Client, Config};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};

/// How to authenticate to the API server.
#[derive(Clone)]
pub enum Credentials {
    /// A bearer token, e.g. a service-account token.
    Token(SecretString),
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: SecretString,
    },
    /// A client certificate and its private key, both PEM.
    ClientCert {
        cert_pem: String,
        key_pem: SecretString,
    },
    /// Anonymous: useful to probe reachability and TLS before authenticating.
    Anonymous,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret parts.
        match self {
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::ClientCert { .. } => f.write_str("ClientCert(<redacted key>)"),
            Credentials::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Where a cluster is and how to get in.
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    /// The API server URL (`https://host:port`).
    pub url: String,
    /// When set, only this CA is trusted; otherwise the system roots are.
    pub ca_pem: Option<String>,
    pub credentials: Credentials,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("'{url}' is not a valid API server URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the CA certificate is not a PEM certificate (expected a block starting with -----BEGIN CERTIFICATE-----)")]
    CaNotPem,
    #[error("the bearer token has a line break or another control character at character {position}, which an HTTP header cannot carry: store the token alone, on one line")]
    TokenNotHeaderSafe { position: usize },
    #[error("cannot build a Kubernetes client: {0}")]
    Build(#[from] kube::Error),
    #[error("cannot use the client certificate: {0}")]
    ClientCert(#[from] crate::client_cert::ClientBuildError),
}

/// Where `value` has a character an HTTP header value cannot carry (a
/// control character other than tab), counted from 1; `None` when it has none.
pub fn header_unsafe_at(value: &str) -> Option<usize> {
    value
        .chars()
        .position(|c| c.is_ascii_control() && c != '\t')
        .map(|i| i + 1)
}

impl ClusterAccess {
    pub fn new(url: impl Into<String>, credentials: Credentials) -> Self {
        ClusterAccess {
            url: url.into(),
            ca_pem: None,
            credentials,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
        }
    }

    pub fn with_ca(mut self, ca_pem: impl Into<String>) -> Self {
        self.ca_pem = Some(ca_pem.into());
        self
    }

    /// The kube client configuration these credentials describe.
    pub fn config(&self) -> Result<Config, ClientError> {
        let uri = self
            .url
            .parse::<http::Uri>()
            .map_err(|e| ClientError::BadUrl {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        let mut cfg = Config::new(uri);
        cfg.connect_timeout = Some(self.connect_timeout);
        cfg.read_timeout = Some(self.read_timeout);
        cfg.write_timeout = Some(self.read_timeout);
        if let Some(pem) = &self.ca_pem {
            let ders: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
                .filter_map(Result::ok)
                .map(|c| c.to_vec())
                .collect();
            if ders.is_empty() {
                return Err(ClientError::CaNotPem);
            }
            cfg.root_cert = Some(ders);
        }
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        cfg.auth_info = match &self.credentials {
            // The client would panic building the Authorization header.
            Credentials::Token(t) if header_unsafe_at(t.expose_secret()).is_some() => {
                return Err(ClientError::TokenNotHeaderSafe {
                    position: header_unsafe_at(t.expose_secret()).unwrap_or_default(),
                })
            }
            Credentials::Token(t) => AuthInfo {
                token: Some(t.clone()),
                ..Default::default()
            },
            Credentials::Basic { username, password } => AuthInfo {
                username: Some(username.clone()),
                password: Some(password.clone()),
                ..Default::default()
            },
            Credentials::ClientCert { cert_pem, key_pem } => AuthInfo {
                client_certificate_data: Some(b64(cert_pem)),
                client_key_data: Some(SecretString::from(b64(key_pem.expose_secret()))),
                ..Default::default()
            },
            Credentials::Anonymous => AuthInfo::default(),
        };
        Ok(cfg)
    }

    pub fn client(&self) -> Result<Client, ClientError> {
        Ok(crate::client_cert::client_from_config(self.config()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_a_line_break_is_refused_not_a_panic() {
        let access = ClusterAccess::new(
            "https://127.0.0.1:6443",
            Credentials::Token(SecretString::from("abc\ndef-secret".to_string())),
        );
        let Err(err) = access.client() else {
            panic!("a client with that token")
        };
        assert!(
            matches!(err, ClientError::TokenNotHeaderSafe { position: 4 }),
            "{err}"
        );
        assert!(!err.to_string().contains("def-secret"));
        assert_eq!(header_unsafe_at("a\tb"), None);
    }
}
