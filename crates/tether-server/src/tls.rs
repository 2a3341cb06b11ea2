//! HTTPS for the manager: a certificate chain and key in PEM. kubectl (like
//! every client-go program) sends a bearer token only over TLS, so the
//! Kubernetes proxy needs it; the REST API and the delegates use it too.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The server's TLS settings, and the PEM of the last certificate of its chain
/// (the CA a kubeconfig must trust when the chain is private).
#[derive(Clone)]
pub struct TlsConfig {
    pub server: Arc<rustls::ServerConfig>,
    pub ca_pem: String,
    /// Trusts the web roots and `ca_pem`: for requests to other managers.
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(<certificate and key>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCert(String),
    #[error("{path} holds no PEM private key: {reason}")]
    NoKey { path: String, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

impl TlsConfig {
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        let Some(top) = chain.last().cloned() else {
            return Err(TlsError::NoCert(cert.display().to_string()));
        };
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        // HTTP/1.1 only: upgrades (exec, attach, port-forward) need it.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, top.as_ref());
        let mut ca_pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            ca_pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            ca_pem.push('\n');
        }
        ca_pem.push_str("-----END CERTIFICATE-----\n");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(top)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfig {
            server: Arc::new(server),
            ca_pem,
            client: Arc::new(client),
        })
    }
}
