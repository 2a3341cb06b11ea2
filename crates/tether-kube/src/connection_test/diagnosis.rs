//! What went wrong, in words: machine-readable reasons and the hint text that says
//! what is wrong and how to fix it. The stage modules detect; this module words.
//!
//! Error codes: the HTTP status when the API server (or OIDC issuer) answered;
//! otherwise 400 for a problem in the connector's own configuration (URL, CA,
//! certificate, key), 502 for a server that could not be reached, spoke the wrong
//! protocol or presented a certificate we cannot trust, 504 for a timeout.

use std::time::Duration;

use super::pem::PemProblem;
use super::tls::{CertSummary, TrustSource};
use super::StageName;

/// Why a stage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidUrl,
    PlainHttp,
    DnsResolutionFailed,
    ConnectionRefused,
    ConnectionFailed,
    Timeout,
    InvalidCaCertificate,
    NotTls,
    UnknownCa,
    CertificateNameMismatch,
    CertificateExpired,
    CertificateNotYetValid,
    TlsHandshakeFailed,
    NotKubernetes,
    InvalidClientCertificate,
    InvalidClientKey,
    ClientKeyMismatch,
    InvalidToken,
    Unauthorized,
    CredentialsIgnored,
    MissingPermissions,
    AuthorizationCheckFailed,
    OidcIssuerUnreachable,
    OidcDiscoveryFailed,
    OidcGrantRejected,
    OidcClientRejected,
    OidcGrantNotAllowed,
    OidcNoIdToken,
    ApiServerError,
    ApiRequestFailed,
    Internal,
    // Cloud auth types (EKS, GKE, AKS).
    CloudEndpointUnreachable,
    CloudEndpointError,
    InvalidCloudCredential,
    NoDelegateCloudIdentity,
    CloudCredentialsRejected,
    CloudCredentialsExpired,
    AssumeRoleDenied,
    ClockSkew,
    EksClusterNotFound,
    EksWrongRegion,
    CloudTokenRejected,
    AksLocalAccountsDisabled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUrl => "INVALID_URL",
            Reason::PlainHttp => "PLAIN_HTTP",
            Reason::DnsResolutionFailed => "DNS_RESOLUTION_FAILED",
            Reason::ConnectionRefused => "CONNECTION_REFUSED",
            Reason::ConnectionFailed => "CONNECTION_FAILED",
            Reason::Timeout => "TIMEOUT",
            Reason::InvalidCaCertificate => "INVALID_CA_CERTIFICATE",
            Reason::NotTls => "NOT_TLS",
            Reason::UnknownCa => "UNKNOWN_CA",
            Reason::CertificateNameMismatch => "CERTIFICATE_NAME_MISMATCH",
            Reason::CertificateExpired => "CERTIFICATE_EXPIRED",
            Reason::CertificateNotYetValid => "CERTIFICATE_NOT_YET_VALID",
            Reason::TlsHandshakeFailed => "TLS_HANDSHAKE_FAILED",
            Reason::NotKubernetes => "NOT_KUBERNETES",
            Reason::InvalidClientCertificate => "INVALID_CLIENT_CERTIFICATE",
            Reason::InvalidClientKey => "INVALID_CLIENT_KEY",
            Reason::ClientKeyMismatch => "CLIENT_KEY_MISMATCH",
            Reason::InvalidToken => "INVALID_TOKEN",
            Reason::Unauthorized => "UNAUTHORIZED",
            Reason::CredentialsIgnored => "CREDENTIALS_IGNORED",
            Reason::MissingPermissions => "MISSING_PERMISSIONS",
            Reason::AuthorizationCheckFailed => "AUTHORIZATION_CHECK_FAILED",
            Reason::OidcIssuerUnreachable => "OIDC_ISSUER_UNREACHABLE",
            Reason::OidcDiscoveryFailed => "OIDC_DISCOVERY_FAILED",
            Reason::OidcGrantRejected => "OIDC_GRANT_REJECTED",
            Reason::OidcClientRejected => "OIDC_CLIENT_REJECTED",
            Reason::OidcGrantNotAllowed => "OIDC_GRANT_NOT_ALLOWED",
            Reason::OidcNoIdToken => "OIDC_NO_ID_TOKEN",
            Reason::ApiServerError => "API_SERVER_ERROR",
            Reason::ApiRequestFailed => "API_REQUEST_FAILED",
            Reason::Internal => "INTERNAL_ERROR",
            Reason::CloudEndpointUnreachable => "CLOUD_ENDPOINT_UNREACHABLE",
            Reason::CloudEndpointError => "CLOUD_ENDPOINT_ERROR",
            Reason::InvalidCloudCredential => "INVALID_CLOUD_CREDENTIAL",
            Reason::NoDelegateCloudIdentity => "NO_DELEGATE_CLOUD_IDENTITY",
            Reason::CloudCredentialsRejected => "CLOUD_CREDENTIALS_REJECTED",
            Reason::CloudCredentialsExpired => "CLOUD_CREDENTIALS_EXPIRED",
            Reason::AssumeRoleDenied => "ASSUME_ROLE_DENIED",
            Reason::ClockSkew => "CLOCK_SKEW",
            Reason::EksClusterNotFound => "EKS_CLUSTER_NOT_FOUND",
            Reason::EksWrongRegion => "EKS_WRONG_REGION",
            Reason::CloudTokenRejected => "CLOUD_TOKEN_REJECTED",
            Reason::AksLocalAccountsDisabled => "AKS_LOCAL_ACCOUNTS_DISABLED",
        }
    }

    /// The code when no HTTP status applies (see the module documentation).
    pub fn default_code(self) -> i32 {
        match self {
            Reason::InvalidUrl
            | Reason::PlainHttp
            | Reason::InvalidCaCertificate
            | Reason::InvalidClientCertificate
            | Reason::InvalidClientKey
            | Reason::ClientKeyMismatch
            | Reason::InvalidToken
            | Reason::InvalidCloudCredential
            | Reason::NoDelegateCloudIdentity
            | Reason::EksWrongRegion => 400,
            Reason::Unauthorized
            | Reason::CredentialsIgnored
            | Reason::CloudCredentialsRejected
            | Reason::CloudCredentialsExpired
            | Reason::ClockSkew
            | Reason::CloudTokenRejected
            | Reason::AksLocalAccountsDisabled => 401,
            Reason::AssumeRoleDenied => 403,
            Reason::EksClusterNotFound => 404,
            Reason::MissingPermissions => 403,
            Reason::Timeout => 504,
            Reason::Internal => 500,
            _ => 502,
        }
    }
}

/// A failed stage: reason, message and fixes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub reason: Reason,
    pub message: String,
    pub code: i32,
    pub hints: Vec<String>,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            code: reason.default_code(),
            hints: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    pub fn hints(mut self, hints: impl IntoIterator<Item = String>) -> Self {
        self.hints.extend(hints);
        self
    }

    pub fn code(mut self, code: u16) -> Self {
        self.code = i32::from(code);
        self
    }
}

/// RFC 3339 for a Unix time in seconds.
pub(crate) fn fmt_time(unix_secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix_secs}"))
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

const PORT_HINT: &str =
    "Kubernetes API servers usually listen on 443 (managed clusters) or 6443 (kubeadm, k3s, kind)";

// ---------------------------------------------------------------- url, dns, tcp

pub(crate) fn invalid_url(url: &str, why: &str) -> Failure {
    Failure::new(Reason::InvalidUrl, format!("masterUrl '{url}' is not a valid API server URL: {why}"))
        .hint(format!(
            "Set masterUrl to the API server's HTTPS address, e.g. https://my-cluster.example.com:6443 ({PORT_HINT}); `kubectl config view --minify -o jsonpath='{{.clusters[0].cluster.server}}'` prints the one your kubeconfig uses."
        ))
}

pub(crate) fn http_scheme(url: &str, https_url: &str) -> Failure {
    Failure::new(
        Reason::PlainHttp,
        format!("masterUrl '{url}' uses http://, but Kubernetes API servers only serve HTTPS"),
    )
    .hint(format!(
        "Use {https_url} (https://). Plain HTTP would send the credentials unencrypted, and API servers since 1.20 have no insecure port. If this address is a `kubectl proxy`, point the connector at the API server itself."
    ))
}

pub(crate) fn dns_failed(host: &str, error: &str) -> Failure {
    let mut f = Failure::new(
        Reason::DnsResolutionFailed,
        format!("the host name '{host}' does not resolve: {error}"),
    )
    .hint(format!(
        "Check the host in masterUrl for typos: '{host}' has no DNS address as seen from the delegate."
    ))
    .hint(
        "If the cluster has a private endpoint (private AKS/EKS/GKE clusters, internal load balancers), its name only resolves inside its network: run the delegate there, or give its DNS access to that private zone."
            .to_string(),
    );
    if is_aks_host(host) {
        f = f.hint(
            "For a private AKS cluster the name lives in a privatelink.<region>.azmk8s.io private DNS zone: link that zone to the delegate's virtual network.".to_string(),
        );
    }
    f
}

pub(crate) fn connection_refused(endpoint: &str) -> Failure {
    Failure::new(
        Reason::ConnectionRefused,
        format!("connection to {endpoint} was refused: nothing listens on that port"),
    )
    .hint(format!(
        "Check the port in masterUrl ({PORT_HINT}) and that the API server is running at {endpoint}."
    ))
}

pub(crate) fn connection_failed(endpoint: &str, error: &str) -> Failure {
    Failure::new(
        Reason::ConnectionFailed,
        format!("cannot connect to {endpoint}: {error}"),
    )
    .hint(format!(
        "Is the delegate allowed to reach the Kubernetes API at {endpoint}? Check routes, firewalls and network policies between the delegate and the cluster."
    ))
}

pub(crate) fn timeout(stage: StageName, endpoint: &str, limit: Duration) -> Failure {
    let limit_s = secs(limit);
    let (message, hint) = match stage {
        StageName::Dns => (
            format!("looking up the address of {endpoint} did not finish within {limit_s}"),
            "The delegate's DNS resolver did not answer in time: check its resolver configuration (/etc/resolv.conf, CoreDNS) and that it may reach its DNS servers.".to_string(),
        ),
        StageName::Tcp => (
            format!("connecting to {endpoint} got no answer within {limit_s}"),
            format!(
                "Is the delegate allowed to reach the Kubernetes API at {endpoint}? Packets seem to be dropped: check firewalls, security groups and the API server's allowed source ranges (AKS authorized IP ranges, EKS public access CIDRs, GKE master authorized networks), and that the address is right."
            ),
        ),
        StageName::Tls => (
            format!("{endpoint} accepted the TCP connection but did not answer the TLS handshake within {limit_s}"),
            format!(
                "Something listens at {endpoint} but does not speak TLS there, or a proxy or firewall holds the connection open: check that masterUrl points at the API server's HTTPS port ({PORT_HINT})."
            ),
        ),
        StageName::Token => (
            format!("making the cloud token did not finish within {limit_s}"),
            "The cloud's token endpoints (STS, the EKS API, Google's token endpoint, Entra ID) answer too slowly or packets to them are dropped: check the delegate's egress to them, or raise the connection test's stage timeout.".to_string(),
        ),
        StageName::Authentication => (
            format!("the API server at {endpoint} did not answer within {limit_s}"),
            "The API server (or the OIDC issuer) is too slow or overloaded: check its health, or raise the connection test's stage timeout.".to_string(),
        ),
        StageName::Authorization => (
            format!("the permission checks against {endpoint} did not finish within {limit_s}"),
            "The API server answers SelfSubjectAccessReviews too slowly: check its load, or raise the connection test's stage timeout.".to_string(),
        ),
        StageName::Url => (
            format!("checking the URL did not finish within {limit_s}"),
            "This should not happen; please report it.".to_string(),
        ),
    };
    Failure::new(Reason::Timeout, message).hint(hint)
}

// ---------------------------------------------------------------- tls

/// The fix for a certificate field that is not what it should be. `field` is the
/// connector field (`caCertRef`, `clientCertRef`, `clientKeyRef`).
pub(crate) fn pem_fix(field: &str, problem: &PemProblem) -> String {
    // Connector fields (`clientKeyRef`) or kubeconfig ones (`client-key-data of ...`).
    let lower = field.to_ascii_lowercase();
    let is_key = lower.contains("key");
    let what = if is_key {
        "the PEM private key"
    } else if lower.contains("client") {
        "the PEM client certificate"
    } else {
        "the PEM CA certificate (-----BEGIN CERTIFICATE-----)"
    };
    match problem {
        PemProblem::Empty => format!("The secret behind {field} is empty: store {what} in it."),
        PemProblem::Base64WrappedPem { .. } => format!(
            "The secret behind {field} holds base64 of a PEM file (as in a kubeconfig's *-data fields): decode it once and store the result, e.g. `echo <value> | base64 -d > file.pem`."
        ),
        PemProblem::Base64Der => format!(
            "The secret behind {field} holds base64 of a binary DER file: convert it to PEM, e.g. `base64 -d < value.txt | openssl x509 -inform DER -out ca.crt` (for a key: `openssl pkey -inform DER`), and store the PEM."
        ),
        PemProblem::Der => format!(
            "The secret behind {field} holds binary DER: convert it to PEM with `openssl x509 -inform DER -in file.der -out file.pem` (for a key: `openssl pkey -inform DER -in key.der -out key.pem`) and store the PEM."
        ),
        PemProblem::PrivateKey { .. } if !is_key => format!(
            "{field} must reference {what}, not a private key: did you swap it with clientKeyRef? (The cluster CA is in a kubeconfig's certificate-authority-data, or /var/run/secrets/kubernetes.io/serviceaccount/ca.crt inside a pod.)"
        ),
        PemProblem::CertificateInsteadOfKey => format!(
            "{field} must reference the private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY), not a certificate: did you swap clientCertRef and clientKeyRef?"
        ),
        PemProblem::PassphraseRequired => format!(
            "The key behind {field} is encrypted: set clientKeyPassphraseRef to a secret holding its passphrase, or store it decrypted (`openssl pkey -in key.pem -out key-plain.pem`)."
        ),
        PemProblem::WrongPassphrase => format!(
            "The passphrase (clientKeyPassphraseRef) does not decrypt the key behind {field}: check the passphrase secret, or store the key decrypted."
        ),
        PemProblem::LegacyEncryptedKey => format!(
            "The key behind {field} uses the legacy OpenSSL encryption (Proc-Type: 4,ENCRYPTED), which is not supported: convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 -in key.pem -out key-pkcs8.pem` (keep clientKeyPassphraseRef) or store it decrypted with `openssl pkey -in key.pem -out key-plain.pem`."
        ),
        PemProblem::UnsupportedKey { .. } => format!(
            "Use an RSA (2048 bits or more) or EC P-256/P-384 key in PKCS#1, PKCS#8 or SEC1 PEM for {field}."
        ),
        _ => format!("Store {what} in the secret behind {field}."),
    }
}

pub(crate) fn ca_not_pem(problem: &PemProblem) -> Failure {
    Failure::new(
        Reason::InvalidCaCertificate,
        format!("caCertRef is not a PEM certificate: {problem}"),
    )
    .hint(pem_fix("caCertRef", problem))
}

pub(crate) fn plain_http_on_tls_port(endpoint: &str, https_url: &str) -> Failure {
    Failure::new(
        Reason::PlainHttp,
        format!("{endpoint} answered in plain HTTP, not TLS: this port does not serve HTTPS"),
    )
    .hint(format!(
        "masterUrl ({https_url}) points at a plain-HTTP port. Use the API server's HTTPS port ({PORT_HINT}); a `kubectl proxy` or plain-HTTP ingress is not the API server."
    ))
}

pub(crate) fn not_tls(endpoint: &str, first_bytes: &str) -> Failure {
    Failure::new(
        Reason::NotTls,
        format!("{endpoint} does not speak TLS (it answered {first_bytes})"),
    )
    .hint(format!(
        "Check that masterUrl points at the API server's HTTPS port ({PORT_HINT}), not at another service."
    ))
}

fn describe_trust(trust: &TrustSource) -> String {
    match trust {
        TrustSource::System => "the system's trusted roots (no caCertRef is set)".to_string(),
        TrustSource::CaCertRef { subjects } => {
            format!("the CA in caCertRef ({})", subjects_phrase(subjects))
        }
        TrustSource::DelegateSystem { label } => format!(
            "the delegate's system roots ({label}; its kubeconfig names no certificate authority)"
        ),
        TrustSource::DelegateCa { subjects, label } => {
            format!("the delegate's CA ({label}: {})", subjects_phrase(subjects))
        }
    }
}

fn subjects_phrase(subjects: &[String]) -> String {
    if subjects.is_empty() {
        "no certificate".to_string()
    } else {
        subjects.join("; ")
    }
}

pub(crate) fn unknown_ca(endpoint: &str, cert: &CertSummary, trust: &TrustSource) -> Failure {
    let issuer = &cert.issuer;
    let mut f = Failure::new(
        Reason::UnknownCa,
        format!(
            "the API server's certificate at {endpoint} ({}) is signed by '{issuer}', which is not trusted by {}",
            cert.subject,
            describe_trust(trust)
        ),
    );
    f = match trust {
        TrustSource::System => f.hint(format!(
            "Set caCertRef to a secret holding the PEM certificate of the cluster CA '{issuer}'. It is the base64-decoded certificate-authority-data of your kubeconfig (`kubectl config view --raw --minify -o jsonpath='{{.clusters[0].cluster.certificate-authority-data}}' | base64 -d`), or ca.crt of any service-account token Secret."
        )),
        TrustSource::CaCertRef { .. } => f.hint(format!(
            "caCertRef holds a different CA than the one that signed the API server's certificate: replace it with the PEM certificate of '{issuer}' (the base64-decoded certificate-authority-data of a working kubeconfig for this cluster)."
        )),
        TrustSource::DelegateSystem { .. } | TrustSource::DelegateCa { .. } => f.hint(format!(
            "The connector inherits the delegate's credentials, so the delegate's own CA is trusted: give the delegate a kubeconfig whose certificate-authority-data is the PEM certificate of '{issuer}' (in a cluster: its service account's ca.crt), or check that it runs next to the cluster its kubeconfig names."
        )),
    };
    if cert.self_signed && matches!(trust, TrustSource::System | TrustSource::CaCertRef { .. }) {
        f = f.hint(format!(
            "The API server's certificate is self-signed: caCertRef may hold that certificate itself ({})",
            cert.subject
        ));
    }
    f
}

pub(crate) fn name_mismatch(endpoint: &str, host: &str, cert: &CertSummary) -> Failure {
    let sans = if cert.sans.is_empty() {
        "no subjectAltName at all (only the subject, which TLS clients ignore)".to_string()
    } else {
        cert.sans.join(", ")
    };
    let kind = if host.parse::<std::net::IpAddr>().is_ok() {
        format!("IP:{host}")
    } else {
        format!("DNS:{host}")
    };
    Failure::new(
        Reason::CertificateNameMismatch,
        format!(
            "the API server's certificate at {endpoint} is not valid for '{host}': it covers {sans}"
        ),
    )
    .hint(format!(
        "Use a masterUrl whose host is one of the certificate's names ({sans}), or reissue the API server certificate with {kind} in its subjectAltName (kubeadm: apiServer.certSANs; managed clusters: use the endpoint the provider shows)."
    ))
}

pub(crate) fn cert_expired(endpoint: &str, cert: &CertSummary, now: i64) -> Failure {
    Failure::new(
        Reason::CertificateExpired,
        format!(
            "the API server's certificate at {endpoint} ({}) expired on {} (now {})",
            cert.subject,
            fmt_time(cert.not_after),
            fmt_time(now)
        ),
    )
    .hint(
        "Renew the API server certificate (kubeadm: `kubeadm certs renew apiserver` on each control-plane node, then restart the API server); if it is not expired, the delegate's clock is wrong."
            .to_string(),
    )
}

pub(crate) fn cert_not_yet_valid(endpoint: &str, cert: &CertSummary, now: i64) -> Failure {
    Failure::new(
        Reason::CertificateNotYetValid,
        format!(
            "the API server's certificate at {endpoint} is only valid from {} (now {})",
            fmt_time(cert.not_before),
            fmt_time(now)
        ),
    )
    .hint(
        "The delegate's clock (or the API server's) is wrong: synchronise them with NTP."
            .to_string(),
    )
}

pub(crate) fn tls_failed(endpoint: &str, error: &str) -> Failure {
    Failure::new(
        Reason::TlsHandshakeFailed,
        format!("the TLS handshake with {endpoint} failed: {error}"),
    )
    .hint("Is caCertRef the CA of this cluster, and does masterUrl point at the API server itself (not a TLS-intercepting proxy)?".to_string())
}

// ---------------------------------------------------------------- authentication

pub(crate) fn not_kubernetes(
    endpoint: &str,
    status: u16,
    content_type: &str,
    body: &str,
) -> Failure {
    Failure::new(
        Reason::NotKubernetes,
        format!(
            "{endpoint} is not a Kubernetes API server: GET /version answered {status} ({content_type}) with '{body}', not the JSON version document (gitVersion)"
        ),
    )
    .hint(format!(
        "Point masterUrl at the Kubernetes API server (the `server:` of a kubeconfig, {PORT_HINT}), not at an ingress, dashboard, load balancer or other HTTPS service."
    ))
}

/// Where a client certificate and its key came from, as the user knows them:
/// a connector's `clientCertRef`/`clientKeyRef`, or a kubeconfig's
/// `client-certificate-data`/`client-key-data`.
#[derive(Debug, Clone)]
pub(crate) struct CertFields {
    pub cert: String,
    pub key: String,
}

impl CertFields {
    pub fn connector() -> CertFields {
        CertFields {
            cert: "clientCertRef".into(),
            key: "clientKeyRef".into(),
        }
    }

    pub fn kubeconfig(label: &str) -> CertFields {
        CertFields {
            cert: format!("client-certificate-data of {label}"),
            key: format!("client-key-data of {label}"),
        }
    }
}

pub(crate) fn client_cert_problem(f: &CertFields, problem: &PemProblem) -> Failure {
    Failure::new(
        Reason::InvalidClientCertificate,
        format!("{} is not a PEM certificate: {problem}", f.cert),
    )
    .hint(pem_fix(&f.cert, problem))
}

/// The PEM block is there but is not a readable X.509 certificate.
pub(crate) fn client_cert_unreadable(f: &CertFields, reason: &str) -> Failure {
    Failure::new(
        Reason::InvalidClientCertificate,
        format!("the client certificate ({}) cannot be read as X.509: {reason}", f.cert),
    )
    .hint(format!(
        "Check it with `openssl x509 -noout -text -in cert.pem`; {} must hold the certificate the cluster's client CA signed, in PEM.",
        f.cert
    ))
}

pub(crate) fn client_key_problem(f: &CertFields, problem: &PemProblem) -> Failure {
    Failure::new(
        Reason::InvalidClientKey,
        format!("{} is not a usable private key: {problem}", f.key),
    )
    .hint(pem_fix(&f.key, problem))
}

/// A token that cannot go into an `Authorization` header; its value is never
/// quoted.
pub(crate) fn token_not_header_safe(field: &str, at: usize, len: usize) -> Failure {
    Failure::new(
        Reason::InvalidToken,
        format!(
            "{field} holds a token with a line break or another control character at character {at} of {len}, which an HTTP Authorization header cannot carry"
        ),
    )
    .hint(format!(
        "Store the token alone, on one line, in the secret {field} names: a service-account token is one line (`kubectl create token SA -n NAMESPACE`, or `kubectl get secret NAME -o jsonpath='{{.data.token}}' | base64 -d`); a file pasted with several lines, or two tokens, does not work."
    ))
}

pub(crate) fn key_mismatch(f: &CertFields, cert: &CertSummary) -> Failure {
    Failure::new(
        Reason::ClientKeyMismatch,
        format!(
            "the private key ({}) does not belong to the client certificate ({}, {})",
            f.key, f.cert, cert.subject
        ),
    )
    .hint(format!("{} and {} must be a pair: compare `openssl x509 -noout -pubkey -in cert.pem` with `openssl pkey -pubout -in key.pem`.", f.cert, f.key))
}

pub(crate) fn client_cert_expired(f: &CertFields, cert: &CertSummary, now: i64) -> Failure {
    let (what, when) = if cert.not_after < now {
        ("expired on", cert.not_after)
    } else {
        ("is only valid from", cert.not_before)
    };
    Failure::new(
        Reason::InvalidClientCertificate,
        format!("the client certificate ({}, {}) {what} {}", f.cert, cert.subject, fmt_time(when)),
    )
    .hint(format!("Issue a new client certificate (e.g. a CertificateSigningRequest approved in the cluster, or `kubeadm kubeconfig user`) and update {} and {}.", f.cert, f.key))
}

pub(crate) fn client_cert_not_for_clients(f: &CertFields, cert: &CertSummary) -> Failure {
    Failure::new(
        Reason::InvalidClientCertificate,
        format!(
            "the client certificate ({}, {}) is not valid for client authentication: its extended key usage lacks clientAuth",
            f.cert, cert.subject
        ),
    )
    .hint("Issue the certificate with extendedKeyUsage=clientAuth (a server certificate cannot log in).".to_string())
}

/// What a connector authenticates with, and what its credentials say about
/// themselves (read locally, never verified), for the hints after a 401.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthKind {
    ServiceAccountToken {
        /// The JWT `sub` claim, e.g. `system:serviceaccount:ns:sa`.
        subject: Option<String>,
        /// The JWT `iss` claim.
        issuer: Option<String>,
        /// The JWT `exp` claim, Unix seconds.
        expires_at: Option<i64>,
        is_jwt: bool,
        /// The value is base64 of a JWT (copied from a Secret's `data`).
        base64_wrapped: bool,
    },
    /// Basic authentication. The user name is not kept: it may come from a
    /// secret (`usernameRef`), and hints must not quote one.
    Basic,
    ClientCert {
        subject: String,
        issuer: String,
        not_after: i64,
    },
    /// OpenID Connect; the client id is not kept (it comes from a secret).
    Oidc {
        issuer_url: String,
    },
    Delegate {
        label: String,
    },
    /// A token made by tether from cloud credentials (EKS, GKE, AKS).
    Cloud {
        /// `EKS`, `GKE` or `AKS`.
        provider: &'static str,
        /// The cloud identity (IAM ARN, service-account e-mail, application).
        identity: String,
        /// Unix seconds.
        expires_at: i64,
        cluster_name: Option<String>,
        region: Option<String>,
    },
}

impl AuthKind {
    fn is_static(&self) -> bool {
        matches!(
            self,
            AuthKind::ServiceAccountToken { .. } | AuthKind::Basic | AuthKind::ClientCert { .. }
        )
    }
}

/// Everything the hints after a 401 may use.
#[derive(Debug, Clone, PartialEq)]
pub struct UnauthorizedContext {
    /// The API server's host name or IP.
    pub host: String,
    pub auth: AuthKind,
    /// `gitVersion`, when `/version` answered anonymously.
    pub server_version: Option<String>,
    /// Issuer of the API server's own certificate (from the TLS stage).
    pub server_cert_issuer: Option<String>,
    /// The subjectAltNames of the API server's certificate (`DNS:…`, `IP:…`):
    /// an AKS API server says so there even behind a private IP.
    pub server_cert_sans: Vec<String>,
    /// Unix seconds.
    pub now: i64,
}

/// `*.azmk8s.io`: an Azure Kubernetes Service API server.
pub(crate) fn is_aks_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "azmk8s.io" || h.ends_with(".azmk8s.io")
}

/// `(major, minor)` of a `v1.20.2`-style version.
fn minor_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim_start_matches('v');
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor: String = it
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The hints for a 401 from the API server, most specific first.
pub fn unauthorized_hints(ctx: &UnauthorizedContext) -> Vec<String> {
    let mut hints = Vec::new();
    if is_aks(ctx) && ctx.auth.is_static() {
        hints.push(format!(
            "{} is an AKS cluster. AKS rejects static credentials (service-account tokens, client certificates, basic auth) with 401 when local accounts are disabled (disableLocalAccounts=true, common with Microsoft Entra ID integration). Switch the connector to the AKS auth type (Entra ID client credentials: tenantId, clientId, clientSecretRef), or re-enable local accounts so that disableLocalAccounts=false (`az aks update --resource-group <rg> --name <cluster> --enable-local-accounts`).",
            ctx.host
        ));
    }
    match &ctx.auth {
        AuthKind::ServiceAccountToken {
            subject,
            issuer,
            expires_at,
            is_jwt,
            base64_wrapped,
        } => {
            if *base64_wrapped {
                hints.push("The token is base64-encoded (as in a Secret's `data.token` field): store the decoded value, e.g. `kubectl get secret <name> -n <ns> -o jsonpath='{.data.token}' | base64 -d`.".to_string());
            } else if !is_jwt {
                hints.push("The value behind serviceAccountTokenRef is not a service-account token (a JWT of three dot-separated parts): store the token itself, e.g. from `kubectl create token <sa> -n <ns>` or a kubernetes.io/service-account-token Secret.".to_string());
            }
            match expires_at {
                Some(exp) if *exp <= ctx.now => hints.push(format!(
                    "The token expired at {} (its exp claim): issue a new one (`kubectl create token <sa> --duration=8760h`) or use a long-lived kubernetes.io/service-account-token Secret.",
                    fmt_time(*exp)
                )),
                _ => {}
            }
            if let Some(sub) = subject {
                hints.push(format!(
                    "The API server rejected the token of {sub}: the service account or its token Secret may have been deleted or recreated (that invalidates the token), or the token belongs to another cluster{}. Create a fresh token and update serviceAccountTokenRef.",
                    issuer
                        .as_deref()
                        .map(|i| format!(" (issuer {i})"))
                        .unwrap_or_default()
                ));
            }
            hints.push("The API server answered 401 Unauthorized: check that serviceAccountTokenRef holds a current token of this cluster.".to_string());
        }
        AuthKind::Basic => {
            let removed = match ctx.server_version.as_deref().and_then(minor_version) {
                Some((1, m)) if m >= 19 => format!(
                    "This API server runs {}; Kubernetes removed basic authentication (--basic-auth-file) in 1.19, so it rejects every username and password.",
                    ctx.server_version.as_deref().unwrap_or_default()
                ),
                _ => "Kubernetes removed basic authentication (--basic-auth-file) in 1.19, and managed clusters never offered it, so most API servers reject every username and password.".to_string(),
            };
            hints.push(format!(
                "The API server does not accept the username and password. {removed} Switch the connector to ServiceAccount (a token) or ClientKeyCert credentials."
            ));
        }
        AuthKind::ClientCert {
            subject,
            issuer,
            not_after,
        } => {
            let mut h = format!(
                "The API server did not accept the client certificate ({subject}, issued by '{issuer}'): it must be signed by a CA the API server trusts for clients (its --client-ca-file) and be within its validity period (until {}).",
                fmt_time(*not_after)
            );
            if let Some(server_issuer) = &ctx.server_cert_issuer {
                if server_issuer != issuer {
                    h.push_str(&format!(
                        " The API server's own certificate is issued by '{server_issuer}'; client certificates are usually signed by that cluster CA too."
                    ));
                }
            }
            hints.push(h);
        }
        AuthKind::Oidc { issuer_url } => hints.push(format!(
            "The issuer granted an ID token, but the API server did not accept it: the API server must be configured for this issuer (--oidc-issuer-url={issuer_url}, exactly) and client (--oidc-client-id set to the client id of oidcClientIdRef, the token's audience), or, on managed clusters, have this identity provider attached."
        )),
        AuthKind::Delegate { label } => hints.push(format!(
            "The delegate's own credentials ({label}) were rejected: its service account or token may have been deleted, or its kubeconfig's credentials have expired."
        )),
        AuthKind::Cloud {
            provider,
            identity,
            expires_at,
            cluster_name,
            region,
        } => hints.extend(cloud_token_hints(
            provider,
            identity,
            *expires_at,
            cluster_name.as_deref(),
            region.as_deref(),
            ctx.now,
        )),
    }
    hints
}

/// An AKS API server, by its host name or its certificate's names.
fn is_aks(ctx: &UnauthorizedContext) -> bool {
    is_aks_host(&ctx.host)
        || ctx.server_cert_sans.iter().any(|s| {
            s.strip_prefix("DNS:")
                .is_some_and(|d| is_aks_host(d.trim_start_matches("*.")))
        })
}

fn credentials_phrase(auth: &AuthKind) -> &'static str {
    match auth {
        AuthKind::ServiceAccountToken { .. } => "the service-account token",
        AuthKind::Basic => "the username and password",
        AuthKind::ClientCert { .. } => "the client certificate",
        AuthKind::Oidc { .. } => "the OIDC ID token",
        AuthKind::Delegate { .. } => "the delegate's credentials",
        AuthKind::Cloud { provider, .. } => match *provider {
            "EKS" => "the EKS token",
            "GKE" => "the GKE access token",
            _ => "the Entra ID token",
        },
    }
}

pub(crate) fn unauthorized(endpoint: &str, message: &str, ctx: &UnauthorizedContext) -> Failure {
    let reason = match &ctx.auth {
        AuthKind::Cloud { .. } => Reason::CloudTokenRejected,
        a if a.is_static() && is_aks(ctx) => Reason::AksLocalAccountsDisabled,
        _ => Reason::Unauthorized,
    };
    let message = match (&ctx.auth, reason) {
        (AuthKind::Cloud { identity, .. }, _) => format!(
            "the API server at {endpoint} rejected {} of {identity} (401 {message})",
            credentials_phrase(&ctx.auth)
        ),
        (_, Reason::AksLocalAccountsDisabled) => format!(
            "the AKS API server at {endpoint} rejected {} (401 {message}): AKS with local accounts disabled accepts only Entra ID tokens",
            credentials_phrase(&ctx.auth)
        ),
        _ => format!(
            "the API server at {endpoint} rejected {} (401 {message})",
            credentials_phrase(&ctx.auth)
        ),
    };
    Failure::new(reason, message)
        .code(401)
        .hints(unauthorized_hints(ctx))
}

/// The API server served us as `system:anonymous`: no authenticator of it
/// recognised the credentials, so it ignored them instead of answering 401.
pub(crate) fn credentials_ignored(endpoint: &str, ctx: &UnauthorizedContext) -> Failure {
    let what = credentials_phrase(&ctx.auth);
    Failure::new(
        Reason::CredentialsIgnored,
        format!(
            "the API server at {endpoint} did not recognise {what} and served the requests as the anonymous user (system:anonymous)"
        ),
    )
    .hint(format!(
        "The API server has no authenticator for this kind of credential, so it ignored {what}; anonymous requests may read /version but nothing a connector needs."
    ))
    .hints(unauthorized_hints(ctx))
}

pub(crate) fn api_error(endpoint: &str, what: &str, status: u16, message: &str) -> Failure {
    let reason = if status >= 500 {
        Reason::ApiServerError
    } else {
        Reason::ApiRequestFailed
    };
    Failure::new(
        reason,
        format!("{what} at {endpoint} answered {status}: {message}"),
    )
    .code(status)
    .hint(if status >= 500 {
        "The API server reports an internal problem: check its health (`kubectl get --raw /readyz?verbose`) and try again.".to_string()
    } else {
        "The API server refused the request: check that masterUrl points at the API server itself, not at a proxy in front of it.".to_string()
    })
}

pub(crate) fn request_failed(endpoint: &str, what: &str, error: &str) -> Failure {
    Failure::new(
        Reason::ApiRequestFailed,
        format!("{what} at {endpoint} failed: {error}"),
    )
    .hint("The connection to the API server broke off: check for proxies or load balancers between the delegate and the cluster, and try again.".to_string())
}

// ---------------------------------------------------------------- oidc

pub(crate) fn oidc_unreachable(issuer: &str, url: &str, error: &str) -> Failure {
    Failure::new(
        Reason::OidcIssuerUnreachable,
        format!("the OIDC issuer {issuer} cannot be reached ({url}): {error}"),
    )
    .hint("Check oidcIssuerUrl, and that the delegate may reach the issuer over HTTPS (its CA must be a public root or the connector's caCertRef).".to_string())
}

pub(crate) fn oidc_discovery(issuer: &str, url: &str, problem: &str) -> Failure {
    Failure::new(
        Reason::OidcDiscoveryFailed,
        format!("OIDC discovery at {url} failed: {problem}"),
    )
    .hint(format!(
        "oidcIssuerUrl must be the issuer itself ({issuer}), so that {url} serves its OpenID configuration with a token_endpoint; e.g. https://login.microsoftonline.com/<tenant>/v2.0, https://<keycloak>/realms/<realm>."
    ))
}

pub(crate) fn oidc_token_error(
    issuer: &str,
    status: u16,
    error: &str,
    description: Option<&str>,
) -> Failure {
    // The user name and client id are not quoted: either may be a secret
    // (oidcUsernameRef, oidcClientIdRef), and the fields say which to check.
    let desc = description.map(|d| format!(" ({d})")).unwrap_or_default();
    let (reason, hint) = match error {
        "invalid_grant" => (
            Reason::OidcGrantRejected,
            "The issuer rejected the password grant for the user of oidcUsername/oidcUsernameRef: check that user name and oidcPasswordRef. The user must exist at the issuer, be enabled, and need no interactive step (MFA, consent, password change) — the password grant cannot perform one.".to_string(),
        ),
        "invalid_client" => (
            Reason::OidcClientRejected,
            "The issuer does not accept the client of oidcClientIdRef: check that client id, and oidcSecretRef for a confidential client (public clients take no secret).".to_string(),
        ),
        "unauthorized_client" | "unsupported_grant_type" => (
            Reason::OidcGrantNotAllowed,
            "The client of oidcClientIdRef may not use the resource-owner password grant: enable it at the issuer (Keycloak: 'Direct access grants'; Entra ID: 'Allow public client flows'; Okta: 'Resource Owner Password' grant type).".to_string(),
        ),
        "invalid_scope" => (
            Reason::OidcGrantRejected,
            "The issuer rejected the requested scopes: check oidcScopes (openid is always requested).".to_string(),
        ),
        _ => (
            Reason::OidcGrantRejected,
            "The issuer refused the password grant: check oidcUsername, oidcPasswordRef, oidcClientIdRef and oidcSecretRef, and that the client of oidcClientIdRef may use the password grant.".to_string(),
        ),
    };
    Failure::new(
        reason,
        format!("the OIDC issuer {issuer} rejected the token request ({status} {error}{desc})"),
    )
    .code(status)
    .hint(hint)
}

pub(crate) fn oidc_no_id_token(issuer: &str) -> Failure {
    Failure::new(
        Reason::OidcNoIdToken,
        format!("the OIDC issuer {issuer} granted a token but no id_token"),
    )
    .hint("Kubernetes authenticates with the ID token: make sure the client may request the 'openid' scope, and that the issuer returns ID tokens for the password grant.".to_string())
}

// ---------------------------------------------------------------- authorization

pub(crate) fn missing_permissions(
    who: &str,
    missing: usize,
    total: usize,
    namespaces: &[String],
) -> Failure {
    Failure::new(
        Reason::MissingPermissions,
        format!(
            "{who} is authenticated but lacks {missing} of {total} required permissions in {}",
            namespaces_phrase(namespaces)
        ),
    )
    .code(403)
}

pub(crate) fn namespaces_phrase(namespaces: &[String]) -> String {
    match namespaces {
        [one] => format!("namespace {one}"),
        many => format!("namespaces {}", many.join(", ")),
    }
}

// ---------------------------------------------------------------- cloud tokens

/// `20 min 5 s`
fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, sec) => format!("{m} min {sec} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// The hints after the API server refused a token tether made from cloud
/// credentials that the cloud itself accepted.
fn cloud_token_hints(
    provider: &str,
    identity: &str,
    expires_at: i64,
    cluster_name: Option<&str>,
    region: Option<&str>,
    now: i64,
) -> Vec<String> {
    let mut hints = Vec::new();
    if expires_at <= now {
        hints.push(format!(
            "The token expired at {} (now {}): tether makes a new one before expiry, so the delegate's clock or the token's lifetime is off; run the test again, and check the delegate's clock.",
            fmt_time(expires_at),
            fmt_time(now)
        ));
    }
    match provider {
        "EKS" => {
            let cluster = cluster_name.unwrap_or("<cluster>");
            hints.push(format!(
                "STS accepts the token of {identity}, but the cluster does not map that identity to a Kubernetes user: add an access entry (`aws eks create-access-entry --cluster-name {cluster} --principal-arn <role or user ARN>{}` plus `aws eks associate-access-policy`), or map it in the aws-auth ConfigMap of kube-system (mapRoles for a role: the role's ARN, not the assumed-role session ARN; mapUsers for a user).",
                region.map(|r| format!(" --region {r}")).unwrap_or_default()
            ));
            hints.push(format!(
                "The token is signed for the cluster name '{cluster}' (x-k8s-aws-id): if masterUrl belongs to a cluster with another name, the cluster rejects it. Set clusterName to the name `aws eks list-clusters{}` shows for the cluster at masterUrl.",
                region.map(|r| format!(" --region {r}")).unwrap_or_default()
            ));
        }
        "GKE" => hints.push(format!(
            "Google issued an access token for {identity}, but the cluster did not accept it: the API server must be a GKE cluster of the project that grants {identity} access (IAM roles/container.developer or roles/container.clusterViewer, or an RBAC binding to the user {identity}); a non-GKE cluster does not accept Google tokens."
        )),
        _ => hints.push(format!(
            "Entra ID issued a token for {identity}, but the cluster did not accept it: AKS accepts Entra ID tokens only with AKS-managed Entra ID integration (`az aks update --resource-group <rg> --name <cluster> --enable-aad`); the service principal then needs an Azure RBAC role on the cluster (e.g. Azure Kubernetes Service RBAC Writer) or a Kubernetes RBAC binding to its object id."
        )),
    }
    hints
}

pub(crate) fn eks_wrong_region(
    region: &str,
    cluster: &str,
    endpoint_region: Option<&str>,
) -> Failure {
    match endpoint_region {
        Some(host_region) => Failure::new(
            Reason::EksWrongRegion,
            format!(
                "region is '{region}', but masterUrl is an EKS endpoint in '{host_region}'"
            ),
        )
        .hint(format!(
            "Set region to {host_region}: an EKS cluster lives in one region, and the region is part of its endpoint (https://<id>.<x>.{host_region}.eks.amazonaws.com)."
        )),
        None => Failure::new(
            Reason::EksWrongRegion,
            format!(
                "there is no EKS cluster at all in region '{region}' for this identity, so cluster '{cluster}' is in another region"
            ),
        )
        .hint(format!(
            "Set region to the cluster's region: it is in the cluster's endpoint (https://<id>.<x>.<region>.eks.amazonaws.com), and `aws eks describe-cluster --name {cluster} --region <region>` finds it there."
        )),
    }
}

pub(crate) fn eks_cluster_not_found(
    region: &str,
    cluster: &str,
    others: Option<&[String]>,
) -> Failure {
    let f = Failure::new(
        Reason::EksClusterNotFound,
        format!("the EKS API knows no cluster named '{cluster}' in region '{region}'"),
    );
    match others {
        Some(o) if !o.is_empty() => f.hint(format!(
            "Set clusterName to the cluster's name; region {region} has: {}. The token is signed for that name (x-k8s-aws-id) and is rejected by any other cluster.",
            o.join(", ")
        )),
        _ => f.hint(format!(
            "Check clusterName (`aws eks list-clusters --region {region}`) and region: the token is signed for that name and is rejected by any other cluster."
        )),
    }
}

fn clockish(code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == "RequestExpired"
        || (code == "SignatureDoesNotMatch"
            && (m.contains("signature expired") || m.contains("not yet current")))
        || m.contains("iat and exp")
        || m.contains("reasonable timeframe")
        || m.contains("aadsts700024")
        || m.contains("aadsts700027")
        || m.contains("not within its valid time range")
}

/// A failed token request, in words. `provider` is EKS, GKE or AKS.
pub(crate) fn cloud_error(provider: &str, e: &crate::cloud_auth::CloudError, now: i64) -> Failure {
    use crate::cloud_auth::CloudError as E;
    match e {
        E::Unreachable { service, url, error } => Failure::new(
            Reason::CloudEndpointUnreachable,
            format!("{service} at {url} cannot be reached from the delegate: {error}"),
        )
        .hint(match provider {
            "EKS" => format!("The delegate must reach {url} over HTTPS to make and check EKS tokens: allow egress to it, or, in a private VPC, create an STS interface endpoint and set stsEndpoint (and eksEndpoint) to it."),
            "GKE" => format!("The delegate must reach Google's token endpoint {url} over HTTPS (allow egress to oauth2.googleapis.com, or Private Google Access)."),
            _ => format!("The delegate must reach Entra ID at {url} over HTTPS (allow egress to login.microsoftonline.com, or set authorityHost for a sovereign cloud)."),
        }),
        E::BadAnswer { service, url, problem } => Failure::new(
            Reason::CloudEndpointError,
            format!("{service} at {url} answered something unexpected: {problem}"),
        )
        .hint("Check that the endpoint is the cloud's own (stsEndpoint, eksEndpoint, the key's token_uri, authorityHost), not a proxy that rewrites answers.".to_string()),
        E::BadCredential { field, problem } => Failure::new(
            Reason::InvalidCloudCredential,
            format!("{field} is not usable: {problem}"),
        )
        .hint(format!("Store the right value in the secret behind {field}.")),
        E::NoDelegateIdentity(msg) => Failure::new(Reason::NoDelegateCloudIdentity, msg.clone())
            .hint(format!("Without a secret, the {provider} auth type uses the cloud identity of the delegate's pod: run the connector's delegate where it has one, or give the connector the secret.")),
        E::Rejected { service, action, status, code, message, .. } => {
            let said = if message.is_empty() {
                format!("{status} {code}")
            } else {
                format!("{status} {code}: {message}")
            };
            let offset = e.clock_offset().filter(|o| o.abs() >= 5 * 60);
            if clockish(code, message) || (offset.is_some() && (400..500).contains(status)) {
                let how = match e.clock_offset() {
                    Some(o) if o.abs() >= 60 => format!(
                        "the delegate's clock is {} {} {service}'s (the answer's Date header says {}, the delegate's clock {})",
                        span(o),
                        if o > 0 { "behind" } else { "ahead of" },
                        fmt_time(now + o),
                        fmt_time(now)
                    ),
                    _ => "the delegate's clock is off".to_string(),
                };
                let window = if provider == "EKS" {
                    "SigV4 signatures are accepted only within 5 minutes of the signing time, and EKS tokens for 15 minutes"
                } else {
                    "signed assertions carry their issue and expiry times, which the cloud checks against its clock"
                };
                return Failure::new(
                    Reason::ClockSkew,
                    format!("{service} refused {action} because of clock skew: {how} ({said})"),
                )
                .code(*status)
                .hint(format!(
                    "Synchronise the delegate's clock with NTP (chrony or systemd-timesyncd on its host; a container uses its host's clock): {window}."
                ));
            }
            let rejected = |hint: String| {
                Failure::new(Reason::CloudCredentialsRejected, format!("{service} refused {action} ({said})"))
                    .code(*status)
                    .hint(hint)
            };
            let expired = |hint: String| {
                Failure::new(Reason::CloudCredentialsExpired, format!("{service} refused {action}: the credentials have expired ({said})"))
                    .code(*status)
                    .hint(hint)
            };
            let aad = crate::cloud_auth::aks::aadsts_code(message);
            match (provider, code.as_str(), aad) {
                ("EKS", "InvalidClientTokenId", _) => rejected("STS does not know the access key: it was deleted or deactivated, belongs to another AWS partition, or is a temporary key (ASIA…) whose session token is missing — set sessionTokenRef for temporary keys. Check accessKeyIdRef.".into()),
                ("EKS", "SignatureDoesNotMatch", _) => rejected("The secret access key does not belong to the access key id: check secretAccessKeyRef (it must hold the secret access key itself, without quotes or spaces).".into()),
                ("EKS", "ExpiredToken", _) => expired("The temporary credentials (sessionTokenRef) have expired: store current ones, or better give long-term keys with roleArn, or the delegate's own identity, which tether renews itself.".into()),
                ("EKS", "AccessDenied", _) if *action == "AssumeRole" => Failure::new(
                    Reason::AssumeRoleDenied,
                    format!("{service} refused {action} ({said})"),
                )
                .code(*status)
                .hint("The role's trust policy must allow the signing identity to assume it (Principal with its ARN, action sts:AssumeRole), and, when it has an sts:ExternalId condition, externalId must match it exactly."),
                ("EKS", "InvalidIdentityToken", _) | ("EKS", "AccessDenied", _) => rejected("The delegate's web identity token was refused: the cluster's OIDC provider must be registered in IAM and the role's trust policy must allow sts:AssumeRoleWithWebIdentity for the delegate's service account (eks.amazonaws.com/role-arn annotation).".into()),
                ("GKE", "invalid_grant", _) => rejected("Google refused the service-account key: the key was deleted or disabled, or the service account was deleted or disabled. Create a new key (`gcloud iam service-accounts keys create key.json --iam-account=<email>`) and store it in serviceAccountKeyRef.".into()),
                ("AKS", _, Some(7_000_222)) => expired("The client secret has expired: create a new one (`az ad app credential reset --id <clientId> --append`) and store its value in clientSecretRef.".into()),
                ("AKS", _, Some(7_000_215)) => rejected("The client secret is wrong: store the secret's value (shown once when it is created), not its secret id, in clientSecretRef.".into()),
                ("AKS", _, Some(700_016)) => rejected("No application with this client id exists in the tenant: check clientId/clientIdRef, and that tenantId is the tenant the service principal lives in.".into()),
                ("AKS", _, Some(90_002)) => rejected("The tenant does not exist: set tenantId to the directory (tenant) id (`az account show --query tenantId -o tsv`).".into()),
                _ => rejected(format!("Check the {provider} credentials of the connector: {service} did not accept them.")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(host: &str, auth: AuthKind) -> UnauthorizedContext {
        UnauthorizedContext {
            host: host.to_string(),
            auth,
            server_version: None,
            server_cert_issuer: None,
            server_cert_sans: Vec::new(),
            now: 1_800_000_000,
        }
    }

    fn token(sub: Option<&str>, exp: Option<i64>) -> AuthKind {
        AuthKind::ServiceAccountToken {
            subject: sub.map(str::to_string),
            issuer: None,
            expires_at: exp,
            is_jwt: true,
            base64_wrapped: false,
        }
    }

    #[test]
    fn aks_static_credentials_get_the_local_accounts_hint_first() {
        let hints = unauthorized_hints(&ctx(
            "myaks-dns-1a2b3c.hcp.westeurope.azmk8s.io",
            token(Some("system:serviceaccount:ci:deployer"), None),
        ));
        assert!(hints[0].contains("disableLocalAccounts=false"), "{hints:?}");
        assert!(hints[0].contains("--enable-local-accounts"), "{hints:?}");
        assert!(hints[0].contains("AKS"), "{hints:?}");

        // A client certificate on AKS too.
        let hints = unauthorized_hints(&ctx(
            "x.privatelink.eastus.azmk8s.io.",
            AuthKind::ClientCert {
                subject: "CN=admin".into(),
                issuer: "CN=ca".into(),
                not_after: 1_900_000_000,
            },
        ));
        assert!(hints[0].contains("disableLocalAccounts"), "{hints:?}");
    }

    #[test]
    fn aks_hint_is_not_given_elsewhere_or_for_oidc() {
        let hints = unauthorized_hints(&ctx("k8s.example.com", token(None, None)));
        assert!(hints.iter().all(|h| !h.contains("disableLocalAccounts")));
        let hints = unauthorized_hints(&ctx(
            "x.hcp.eastus.azmk8s.io",
            AuthKind::Oidc {
                issuer_url: "https://login.microsoftonline.com/t/v2.0".into(),
            },
        ));
        assert!(hints.iter().all(|h| !h.contains("disableLocalAccounts")));
        // Not fooled by a look-alike host.
        assert!(!is_aks_host("evil-azmk8s.io.example.com"));
        assert!(!is_aks_host("notazmk8s.io"));
    }

    #[test]
    fn expired_token_names_the_expiry() {
        let hints = unauthorized_hints(&ctx(
            "k8s.example.com",
            token(Some("system:serviceaccount:a:b"), Some(1_700_000_000)),
        ));
        assert!(
            hints
                .iter()
                .any(|h| h.contains("expired at 2023-11-14T22:13:20Z")),
            "{hints:?}"
        );
        assert!(
            hints
                .iter()
                .any(|h| h.contains("system:serviceaccount:a:b")),
            "{hints:?}"
        );
    }

    #[test]
    fn base64_wrapped_token_says_decode_it() {
        let hints = unauthorized_hints(&ctx(
            "k8s.example.com",
            AuthKind::ServiceAccountToken {
                subject: Some("system:serviceaccount:a:b".into()),
                issuer: None,
                expires_at: None,
                is_jwt: false,
                base64_wrapped: true,
            },
        ));
        assert!(hints[0].contains("base64 -d"), "{hints:?}");
    }

    #[test]
    fn basic_auth_hint_explains_removal_with_the_server_version() {
        let mut c = ctx("10.1.2.3", AuthKind::Basic);
        c.server_version = Some("v1.20.2".into());
        let hints = unauthorized_hints(&c);
        assert!(hints[0].contains("runs v1.20.2"), "{hints:?}");
        assert!(
            hints[0].contains("removed basic authentication"),
            "{hints:?}"
        );
        assert!(hints[0].contains("ServiceAccount"), "{hints:?}");
    }

    #[test]
    fn client_cert_hint_compares_issuers() {
        let mut c = ctx(
            "127.0.0.1",
            AuthKind::ClientCert {
                subject: "CN=me".into(),
                issuer: "CN=rogue-ca".into(),
                not_after: 1_900_000_000,
            },
        );
        c.server_cert_issuer = Some("CN=cluster-ca".into());
        let hints = unauthorized_hints(&c);
        assert!(hints[0].contains("'CN=rogue-ca'"), "{hints:?}");
        assert!(hints[0].contains("'CN=cluster-ca'"), "{hints:?}");
        assert!(hints[0].contains("--client-ca-file"), "{hints:?}");
    }

    #[test]
    fn oidc_error_codes_map_to_specific_fixes() {
        let f = oidc_token_error(
            "https://idp",
            400,
            "invalid_grant",
            Some("Invalid user credentials"),
        );
        assert_eq!(f.reason, Reason::OidcGrantRejected);
        assert_eq!(f.code, 400);
        assert!(f.message.contains("Invalid user credentials"));
        assert!(f.hints[0].contains("oidcUsernameRef"));
        let f = oidc_token_error("https://idp", 401, "invalid_client", None);
        assert_eq!(f.reason, Reason::OidcClientRejected);
        assert!(f.hints[0].contains("oidcSecretRef"));
        let f = oidc_token_error("https://idp", 400, "unauthorized_client", None);
        assert_eq!(f.reason, Reason::OidcGrantNotAllowed);
        assert!(f.hints[0].contains("Direct access grants"));
    }

    #[test]
    fn timeouts_say_where_they_happened() {
        let f = timeout(StageName::Tcp, "10.0.0.1:6443", Duration::from_secs(10));
        assert_eq!(f.code, 504);
        assert!(f.message.contains("within 10 s"));
        assert!(f.hints[0].contains("Is the delegate allowed to reach"));
        let f = timeout(StageName::Tls, "127.0.0.1:1", Duration::from_millis(1500));
        assert!(f
            .message
            .contains("did not answer the TLS handshake within 1.5 s"));
    }

    #[test]
    fn pem_fixes_are_specific() {
        assert!(pem_fix(
            "caCertRef",
            &PemProblem::Base64WrappedPem {
                label: "CERTIFICATE".into()
            }
        )
        .contains("base64 -d"));
        assert!(pem_fix("caCertRef", &PemProblem::Der).contains("openssl x509 -inform DER"));
        assert!(pem_fix(
            "caCertRef",
            &PemProblem::PrivateKey {
                label: "PRIVATE KEY".into()
            }
        )
        .contains("not a private key"));
        assert!(pem_fix("clientKeyRef", &PemProblem::PassphraseRequired)
            .contains("clientKeyPassphraseRef"));
        assert!(pem_fix("clientKeyRef", &PemProblem::LegacyEncryptedKey)
            .contains("openssl pkcs8 -topk8"));
    }

    #[test]
    fn name_mismatch_lists_the_sans() {
        let cert = CertSummary {
            subject: "CN=api".into(),
            issuer: "CN=ca".into(),
            sans: vec!["DNS:api.internal".into(), "DNS:kubernetes".into()],
            ..CertSummary::default()
        };
        let f = name_mismatch("127.0.0.1:6443", "127.0.0.1", &cert);
        assert!(f.message.contains("DNS:api.internal, DNS:kubernetes"));
        assert!(f.hints[0].contains("IP:127.0.0.1"));
    }
}
