//! Client certificates as kubectl takes them.
//!
//! rustls checks that a client certificate and its key belong together by
//! parsing the certificate with webpki, which refuses X.509 version 1
//! certificates (`openssl x509 -req` without extensions makes them; Go's
//! crypto/x509, kubectl and kube-apiserver accept them). The pair is checked
//! here by comparing public keys instead, the certificate is presented as it
//! is, and a kube [`Client`] that presents it is built with the same stack as
//! kube's own (base URI, timeouts, the auth layer) around that TLS setup.

use std::sync::Arc;

use base64::Engine as _;
use kube::client::{ClientBuilder, ConfigExt};
use kube::{Client, Config};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use secrecy::ExposeSecret;

/// Why a client certificate and key cannot be used together. Each names the
/// field at fault and never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    #[error("the client certificate cannot be read as X.509: {reason}")]
    Certificate { reason: String },
    #[error("the client key is not a usable private key: {reason}")]
    Key { reason: String },
    #[error("the client key does not belong to the client certificate ({subject})")]
    Mismatch { subject: String },
}

/// The certificate chain and key as one TLS client identity, after checking
/// that the key is the certificate's. Accepts certificates of every X.509
/// version that parses (v1 included).
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, ClientCertError> {
    let Some(leaf) = chain.first() else {
        return Err(ClientCertError::Certificate {
            reason: "there is no certificate".into(),
        });
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| ClientCertError::Certificate {
            reason: e.to_string(),
        })?;
    let signing =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| ClientCertError::Key {
                reason: e.to_string(),
            })?;
    // Without a public key to compare (a key type rustls cannot derive one
    // for), the server decides, as rustls itself does.
    if let Some(spki) = signing.public_key() {
        if spki.as_ref() != cert.tbs_certificate.subject_pki.raw {
            return Err(ClientCertError::Mismatch {
                subject: cert.subject().to_string(),
            });
        }
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// The one crypto provider of tether's TLS clients (ring).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Presents one identity to every server that asks.
#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

/// A resolver that presents `identity` (checked by [`certified_key`]) to every
/// server that asks, for TLS configurations built elsewhere.
pub(crate) fn presenting(identity: Arc<CertifiedKey>) -> Arc<dyn ResolvesClientCert> {
    Arc::new(Always(identity))
}

impl ResolvesClientCert for Always {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes)?;
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Takes the client certificate and key out of `config` (data or file, as
/// kube would read them); `None` when it has none.
fn take_identity(
    config: &mut Config,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ClientBuildError> {
    let a = &mut config.auth_info;
    let b64 = |field: &'static str, s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| ClientBuildError::Identity {
                field,
                error: ClientCertError::Certificate {
                    reason: format!("not base64: {e}"),
                },
            })
    };
    let cert = match (
        a.client_certificate_data.take(),
        a.client_certificate.take(),
    ) {
        (Some(d), _) => Some(b64("client-certificate-data", &d)?),
        (None, Some(path)) => {
            Some(
                std::fs::read(&path).map_err(|e| ClientBuildError::Identity {
                    field: "client-certificate",
                    error: ClientCertError::Certificate {
                        reason: format!("cannot read {path}: {e}"),
                    },
                })?,
            )
        }
        (None, None) => None,
    };
    let key = match (a.client_key_data.take(), a.client_key.take()) {
        (Some(d), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(d.expose_secret().trim())
                .map_err(|e| ClientBuildError::Identity {
                    field: "client-key-data",
                    error: ClientCertError::Key {
                        reason: format!("not base64: {e}"),
                    },
                })?,
        ),
        (None, Some(path)) => {
            Some(
                std::fs::read(&path).map_err(|e| ClientBuildError::Identity {
                    field: "client-key",
                    error: ClientCertError::Key {
                        reason: format!("cannot read {path}: {e}"),
                    },
                })?,
            )
        }
        (None, None) => None,
    };
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => {
            return Err(ClientBuildError::Identity {
                field: "client-key-data",
                error: ClientCertError::Key {
                    reason: "a client certificate is given without its key".into(),
                },
            })
        }
        (None, Some(_)) => {
            return Err(ClientBuildError::Identity {
                field: "client-certificate-data",
                error: ClientCertError::Certificate {
                    reason: "a client key is given without its certificate".into(),
                },
            })
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| ClientBuildError::Identity {
            field: "client-certificate-data",
            error: ClientCertError::Certificate {
                reason: format!("not a PEM certificate: {e}"),
            },
        })?;
    if chain.is_empty() {
        return Err(ClientBuildError::Identity {
            field: "client-certificate-data",
            error: ClientCertError::Certificate {
                reason: "no -----BEGIN CERTIFICATE----- block".into(),
            },
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| ClientBuildError::Identity {
        field: "client-key-data",
        error: ClientCertError::Key {
            reason: format!("not a PEM private key: {e}"),
        },
    })?;
    Ok(Some((chain, key)))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// `field` is the kubeconfig's (`client-certificate-data`, ...).
    #[error("{field}: {error}")]
    Identity {
        field: &'static str,
        error: ClientCertError,
    },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// A kube [`Client`] for `config`. With a client certificate, the TLS client
/// presents it without webpki's version check (see the module's note);
/// otherwise this is `Client::try_from`.
pub fn client_from_config(mut config: Config) -> Result<Client, ClientBuildError> {
    let Some((chain, key)) = take_identity(&mut config)? else {
        return Ok(Client::try_from(config)?);
    };
    let field = "client-certificate-data";
    let identity = certified_key(chain, key).map_err(|error| ClientBuildError::Identity {
        field: match error {
            ClientCertError::Key { .. } => "client-key-data",
            _ => field,
        },
        error,
    })?;
    with_identity(config, identity)
}

/// A kube [`Client`] for `config` (which carries no client certificate) that
/// presents `identity`.
pub fn with_identity(
    config: Config,
    identity: Arc<CertifiedKey>,
) -> Result<Client, ClientBuildError> {
    if config.proxy_url.is_some() {
        // Not built here; kube's own stack would refuse the v1 certificate.
        return Err(ClientBuildError::Kube(
            kube::Error::ProxyProtocolUnsupported {
                proxy_url: Box::new(config.proxy_url.clone().unwrap_or_default()),
            },
        ));
    }
    let mut tls = config.rustls_client_config()?;
    tls.client_auth_cert_resolver = Arc::new(Always(identity));
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
            ClientBuildError::Kube(kube::Error::RustlsTls(
                kube::client::RustlsTlsError::InvalidServerName(e),
            ))
        })?;
        builder =
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = builder.enable_http1().wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}
