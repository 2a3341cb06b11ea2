//! The TLS stage: our own rustls handshake over the TCP connection of the previous
//! stage, so a failure can say *why* (unknown CA, name or IP mismatch, expiry,
//! plain HTTP on the port) and name the certificate the server presented.
//!
//! The certificate verifier wraps rustls' WebPKI verifier: it decides exactly as
//! the Kubernetes client will, and records the server's certificate on the way so
//! that the report can show its subject, issuer, SANs and validity even when the
//! verification fails.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use x509_parser::extensions::GeneralName;

use super::diagnosis::{self, Failure};
use super::pem;

/// What a certificate says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CertSummary {
    /// RFC 4514-style, e.g. `CN=kube-apiserver`.
    pub subject: String,
    pub issuer: String,
    /// `DNS:name` / `IP:addr` entries of the subjectAltName.
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
    pub is_ca: bool,
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    /// `None` when the certificate has no extended key usage (any use allowed).
    pub client_auth: Option<bool>,
}

impl CertSummary {
    pub fn from_der(der: &[u8]) -> Option<CertSummary> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
                    GeneralName::IPAddress(b) => ip_from_bytes(b).map(|ip| format!("IP:{ip}")),
                    GeneralName::URI(u) => Some(format!("URI:{u}")),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let subject = cert.subject().to_string();
        let issuer = cert.issuer().to_string();
        let summary = CertSummary {
            self_signed: subject == issuer,
            is_ca: cert.is_ca(),
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok())
                .map(str::to_string),
            organizations: cert
                .subject()
                .iter_organization()
                .filter_map(|a| a.as_str().ok())
                .map(str::to_string)
                .collect(),
            client_auth: match cert.extended_key_usage() {
                Ok(Some(eku)) => Some(eku.value.client_auth || eku.value.any),
                _ => None,
            },
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            subject: if subject.is_empty() {
                "no subject".into()
            } else {
                subject
            },
            issuer,
            sans,
        };
        Some(summary)
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// Which roots the handshake trusted, and where they came from: the
/// connector's `caCertRef`, or (InheritFromDelegate) the delegate's own CA,
/// named by the delegate's identity label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrustSource {
    System,
    CaCertRef {
        subjects: Vec<String>,
    },
    DelegateSystem {
        label: String,
    },
    DelegateCa {
        subjects: Vec<String>,
        label: String,
    },
}

impl TrustSource {
    /// "trusted via ..." in the TLS stage's detail.
    fn via(&self) -> String {
        match self {
            TrustSource::System => "the system roots".to_string(),
            TrustSource::CaCertRef { .. } => "caCertRef".to_string(),
            TrustSource::DelegateSystem { label } => {
                format!("the delegate's system roots ({label})")
            }
            TrustSource::DelegateCa { label, .. } => format!("the delegate's CA ({label})"),
        }
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    crate::client_cert::provider()
}

fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            Arc::new(store)
        })
        .clone()
}

/// The roots to trust: only the connector's CA when it has one, else the system's.
/// `delegate` is the delegate's identity label when the CA is the delegate's own
/// (InheritFromDelegate), so that the report does not blame a caCertRef.
pub(crate) fn trust(
    ca_pem: Option<&str>,
    delegate: Option<&str>,
) -> Result<(Arc<RootCertStore>, TrustSource), Failure> {
    let Some(ca_pem) = ca_pem else {
        let source = match delegate {
            Some(label) => TrustSource::DelegateSystem {
                label: label.to_string(),
            },
            None => TrustSource::System,
        };
        return Ok((system_roots(), source));
    };
    let certs = pem::diagnose_ca_pem(ca_pem).map_err(|p| diagnosis::ca_not_pem(&p))?;
    let subjects = certs
        .iter()
        .filter_map(|c| CertSummary::from_der(c))
        .map(|c| c.subject)
        .collect();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(diagnosis::ca_not_pem(&pem::PemProblem::BadCertificate {
            index: 1,
            reason: "it cannot be used as a trust anchor".to_string(),
        }));
    }
    let source = match delegate {
        Some(label) => TrustSource::DelegateCa {
            subjects,
            label: label.to_string(),
        },
        None => TrustSource::CaCertRef { subjects },
    };
    Ok((Arc::new(store), source))
}

/// What the verifier saw.
#[derive(Debug, Default)]
struct Seen {
    end_entity: Option<Vec<u8>>,
    error: Option<rustls::Error>,
}

/// WebPKI verification, recording the certificate and the verdict.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            // No roots at all (a system without CA bundle): nothing is trusted.
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.end_entity = Some(end_entity.to_vec());
            seen.error = result.as_ref().err().cloned();
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A stream that keeps the first bytes the server sent, to recognise a server
/// that answers in plain HTTP (or anything else that is not TLS).
pub(crate) struct Recording<S> {
    inner: S,
    first: Vec<u8>,
}

/// The TLS connection of the TLS stage, which the later stages' API calls reuse.
pub(crate) type ApiStream = tokio_rustls::client::TlsStream<Recording<TcpStream>>;

const KEEP: usize = 16;

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.first.len() < KEEP {
            let take = (KEEP - self.first.len()).min(buf.filled().len() - before);
            let new = buf.filled()[before..before + take].to_vec();
            self.first.extend_from_slice(&new);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A successful handshake.
#[derive(Debug, Clone)]
pub(crate) struct TlsOutcome {
    pub cert: CertSummary,
    pub detail: String,
    /// Warnings for the report (e.g. the certificate expires soon).
    pub warnings: Vec<String>,
}

/// The server name to verify: an IP address for IP URLs (their certificate needs
/// an IP SAN), a DNS name otherwise.
pub(crate) fn server_name(host: &url::Host<String>) -> Result<ServerName<'static>, String> {
    match host {
        url::Host::Ipv4(ip) => Ok(ServerName::IpAddress(IpAddr::V4(*ip).into())),
        url::Host::Ipv6(ip) => Ok(ServerName::IpAddress(IpAddr::V6(*ip).into())),
        url::Host::Domain(d) => ServerName::try_from(d.clone()).map_err(|e| e.to_string()),
    }
}

fn printable(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("'{s}'")
}

/// Does the handshake on `stream` and inspects the server's certificate; on
/// success the TLS connection is returned too, for the API calls of the later
/// stages. `identity` is the client certificate to present when the server asks
/// (ClientKeyCert), so that the same connection can authenticate.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn probe(
    stream: TcpStream,
    host: &url::Host<String>,
    endpoint: &str,
    https_url: &str,
    ca_pem: Option<&str>,
    delegate: Option<&str>,
    identity: Option<Arc<rustls::sign::CertifiedKey>>,
    now: i64,
) -> Result<(TlsOutcome, ApiStream), Failure> {
    let (roots, trust_source) = trust(ca_pem, delegate)?;
    let provider = provider();
    let inner = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| diagnosis::tls_failed(endpoint, &e.to_string()))?,
        )
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = Arc::new(RecordingVerifier {
        inner,
        provider: provider.clone(),
        seen: seen.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| diagnosis::tls_failed(endpoint, &e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    if let Some(identity) = identity {
        config.client_auth_cert_resolver = crate::client_cert::presenting(identity);
    }
    // Only HTTP/1.1 is spoken on this connection.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = server_name(host).map_err(|e| diagnosis::invalid_url(https_url, &e))?;
    let host_str = match host {
        url::Host::Ipv6(ip) => ip.to_string(),
        other => other.to_string(),
    };

    let recording = Recording {
        inner: stream,
        first: Vec::new(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // On failure the stream comes back, with what the server sent first.
    let result = connector.connect(name, recording).into_fallible().await;
    let seen = seen
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    let cert = seen.end_entity.as_deref().and_then(CertSummary::from_der);

    match result {
        Ok(tls) => {
            let (_, conn) = tls.get_ref();
            let version = match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
                _ => "TLS",
            };
            let cert = cert.unwrap_or_default();
            let mut warnings = Vec::new();
            let days_left = (cert.not_after - now) / 86_400;
            if days_left < 30 {
                warnings.push(format!(
                    "The API server's certificate ({}) expires in {days_left} days, on {}: renew it before then.",
                    cert.subject,
                    diagnosis::fmt_time(cert.not_after)
                ));
            }
            let detail =
                format!(
                "{version}; certificate {} issued by {}, valid until {}; SANs: {}; trusted via {}",
                cert.subject,
                cert.issuer,
                diagnosis::fmt_time(cert.not_after),
                if cert.sans.is_empty() { "none".to_string() } else { cert.sans.join(", ") },
                trust_source.via()
            );
            Ok((
                TlsOutcome {
                    cert,
                    detail,
                    warnings,
                },
                tls,
            ))
        }
        Err((io_err, recording)) => Err(classify(
            io_err,
            &recording.first,
            seen.error,
            cert,
            &host_str,
            endpoint,
            https_url,
            &trust_source,
            now,
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn classify(
    io_err: std::io::Error,
    first: &[u8],
    verify_error: Option<rustls::Error>,
    cert: Option<CertSummary>,
    host: &str,
    endpoint: &str,
    https_url: &str,
    trust: &TrustSource,
    now: i64,
) -> Failure {
    let cert = cert.unwrap_or_default();
    // A certificate verdict is the most precise explanation there is.
    if let Some(rustls::Error::InvalidCertificate(ce)) = &verify_error {
        return match ce {
            CertificateError::UnknownIssuer => {
                let mut f = diagnosis::unknown_ca(endpoint, &cert, trust);
                if !covers(&cert, host) {
                    let m = diagnosis::name_mismatch(endpoint, host, &cert);
                    f = f.hint(format!("Also: {}.", m.message)).hints(m.hints);
                }
                f
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                diagnosis::name_mismatch(endpoint, host, &cert)
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                diagnosis::cert_expired(endpoint, &cert, now)
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                diagnosis::cert_not_yet_valid(endpoint, &cert, now)
            }
            other => diagnosis::tls_failed(
                endpoint,
                &format!("the certificate {} was rejected: {other:?}", cert.subject),
            ),
        };
    }
    if first.starts_with(b"HTTP/") {
        return diagnosis::plain_http_on_tls_port(endpoint, https_url);
    }
    let rustls_err = io_err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    match rustls_err {
        Some(rustls::Error::InvalidMessage(_))
            if !first.is_empty() && first[0] != 0x15 && first[0] != 0x16 =>
        {
            diagnosis::not_tls(endpoint, &printable(first))
        }
        Some(rustls::Error::AlertReceived(alert)) => diagnosis::tls_failed(
            endpoint,
            &format!("the server aborted the handshake with the alert {alert:?}"),
        ),
        Some(other) => diagnosis::tls_failed(endpoint, &other.to_string()),
        None if io_err.kind() == std::io::ErrorKind::UnexpectedEof
            || io_err.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            if first.is_empty() {
                diagnosis::tls_failed(
                    endpoint,
                    "the server closed the connection without answering the TLS handshake (a load balancer without healthy backends, or a server that expects another protocol or SNI name?)",
                )
            } else {
                diagnosis::not_tls(endpoint, &printable(first))
            }
        }
        None => diagnosis::tls_failed(endpoint, &io_err.to_string()),
    }
}

/// Does the certificate name `host` (DNS names with a leading `*.` wildcard)?
pub(crate) fn covers(cert: &CertSummary, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return cert.sans.iter().any(|s| s == &format!("IP:{ip}"));
    }
    cert.sans.iter().any(|s| {
        let Some(name) = s.strip_prefix("DNS:") else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
            None => name == host,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_subject_sans_and_usage() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "api.internal".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "me");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).unwrap();
        let s = CertSummary::from_der(cert.der()).unwrap();
        assert_eq!(s.common_name.as_deref(), Some("me"));
        assert_eq!(s.organizations, vec!["system:masters".to_string()]);
        assert_eq!(
            s.sans,
            vec!["DNS:api.internal".to_string(), "IP:127.0.0.1".to_string()]
        );
        assert_eq!(s.client_auth, Some(true));
        assert!(s.self_signed);
        assert!(covers(&s, "127.0.0.1"));
        assert!(covers(&s, "API.internal."));
        assert!(!covers(&s, "127.0.0.2"));
        let wild = CertSummary {
            sans: vec!["DNS:*.example.com".into()],
            ..Default::default()
        };
        assert!(covers(&wild, "a.example.com"));
        assert!(!covers(&wild, "a.b.example.com"));
        assert!(!covers(&wild, "example.com"));
    }
}
