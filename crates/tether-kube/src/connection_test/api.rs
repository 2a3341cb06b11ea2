//! The `authentication` stage: is it a Kubernetes API server (`GET /version`),
//! which version, are the credentials accepted, and who does the cluster say we
//! are.
//!
//! Order of calls:
//! 1. the credentials are prepared locally (client certificate and key checked,
//!    encrypted keys decrypted, OIDC ID token fetched);
//! 2. `GET /version` anonymously: the version, and whether this is Kubernetes at
//!    all, even when the credentials will be refused;
//! 3. `GET /version` with the credentials: a 401 here is a credential problem;
//! 4. the identity: `SelfSubjectReview` (Kubernetes 1.27+, allowed to everyone)
//!    or, where that does not exist, the user name the API server puts in its 403
//!    answer to a request only administrators may make (a non-existent
//!    non-resource path, so nothing is read or changed). Administrators get a 404
//!    there; then the identity comes from the credentials themselves.

use std::time::Duration;

use http_body_util::BodyExt as _;
use kube::Client;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::conn::Connection;
use super::diagnosis::{self, AuthKind, CertFields, Failure, UnauthorizedContext};
use super::net::Endpoint;
use super::oidc::{self, error_chain, OidcRequest};
use super::tls::CertSummary;
use super::{identity, pem, Identity, IdentitySource, ResolvedAuth, StageName};
use crate::client::{ClusterAccess, Credentials};
use crate::client_cert::{self, ClientCertError};

/// The credentials of the target, before preparation.
pub(crate) enum AuthSource<'a> {
    Resolved(&'a ResolvedAuth),
    /// A cloud token the `token` stage made.
    Cloud(&'a super::cloud::CloudPrepared),
    Delegate {
        credentials: &'a Credentials,
        label: &'a str,
    },
}

/// What the stage learnt, kept for the report even when the stage fails.
#[derive(Debug, Default)]
pub(crate) struct Knowledge {
    pub server_version: Option<String>,
    pub identity: Option<Identity>,
    pub warnings: Vec<String>,
}

pub(crate) struct AuthInput<'a> {
    pub endpoint: &'a Endpoint,
    pub ca_pem: Option<&'a str>,
    pub source: AuthSource<'a>,
    pub server_cert_issuer: Option<String>,
    pub server_cert_sans: Vec<String>,
    pub timeout: Duration,
    pub now: i64,
    /// The TLS stage's connection, which every call here uses.
    pub connection: Connection,
}

struct Prepared {
    credentials: Credentials,
    kind: AuthKind,
    identity: Option<Identity>,
    detail: String,
}

fn prepare_client_cert(
    fields: &CertFields,
    cert_pem: &str,
    key_pem: &SecretString,
    passphrase: Option<&SecretString>,
    now: i64,
) -> Result<Prepared, Failure> {
    let certs =
        pem::certificates(cert_pem).map_err(|p| diagnosis::client_cert_problem(fields, &p))?;
    let key = pem::client_key(
        key_pem.expose_secret(),
        passphrase.map(|p| p.expose_secret()),
    )
    .map_err(|p| diagnosis::client_key_problem(fields, &p))?;
    // The pair is checked by public key, so every X.509 version kubectl
    // accepts (v1 included) is accepted here (see `client_cert`).
    let summary = match client_cert::certified_key(certs.clone(), key.der.clone_key()) {
        Ok(_) => CertSummary::from_der(&certs[0]).unwrap_or_default(),
        Err(ClientCertError::Certificate { reason }) => {
            return Err(diagnosis::client_cert_unreadable(fields, &reason))
        }
        Err(ClientCertError::Mismatch { .. }) => {
            let summary = CertSummary::from_der(&certs[0]).unwrap_or_default();
            return Err(diagnosis::key_mismatch(fields, &summary));
        }
        Err(ClientCertError::Key { reason }) => {
            return Err(diagnosis::client_key_problem(
                fields,
                &pem::PemProblem::UnsupportedKey {
                    reason: format!("{}: {reason}", key.description),
                },
            ))
        }
    };
    if now > summary.not_after || now < summary.not_before {
        return Err(diagnosis::client_cert_expired(fields, &summary, now));
    }
    if summary.client_auth == Some(false) {
        return Err(diagnosis::client_cert_not_for_clients(fields, &summary));
    }
    let detail = format!(
        "client certificate {} ({})",
        summary.subject, key.description
    );
    Ok(Prepared {
        credentials: Credentials::ClientCert {
            cert_pem: cert_pem.to_string(),
            key_pem: key.pem,
        },
        kind: AuthKind::ClientCert {
            subject: summary.subject.clone(),
            issuer: summary.issuer.clone(),
            not_after: summary.not_after,
        },
        identity: Some(identity::from_certificate(&summary)),
        detail,
    })
}

/// `field` names where the token came from, for the diagnosis.
fn prepare_token(token: &str, field: &str) -> Result<Prepared, Failure> {
    let trimmed = token.trim();
    if let Some(at) = crate::client::header_unsafe_at(trimmed) {
        return Err(diagnosis::token_not_header_safe(
            field,
            at,
            trimmed.chars().count(),
        ));
    }
    let kind = identity::token_facts(trimmed);
    let identity = identity::from_token(&kind);
    let detail = if trimmed.len() != token.len() {
        "bearer token (surrounding whitespace removed)".to_string()
    } else {
        "bearer token".to_string()
    };
    Ok(Prepared {
        credentials: Credentials::Token(SecretString::from(trimmed.to_string())),
        kind,
        identity,
        detail,
    })
}

async fn prepare(input: &AuthInput<'_>, knowledge: &mut Knowledge) -> Result<Prepared, Failure> {
    match &input.source {
        AuthSource::Resolved(ResolvedAuth::ServiceAccountToken(t)) => {
            prepare_token(t.expose_secret(), "serviceAccountTokenRef")
        }
        AuthSource::Resolved(ResolvedAuth::Basic { username, password }) => Ok(Prepared {
            credentials: Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            kind: AuthKind::Basic,
            identity: Some(Identity {
                user: username.clone(),
                groups: Vec::new(),
                source: IdentitySource::BasicAuthUsername,
                confirmed_by_server: false,
                label: None,
            }),
            detail: "basic authentication (username and password)".to_string(),
        }),
        AuthSource::Resolved(ResolvedAuth::ClientCert {
            cert_pem,
            key_pem,
            passphrase,
        }) => prepare_client_cert(
            &CertFields::connector(),
            cert_pem,
            key_pem,
            passphrase.as_ref(),
            input.now,
        ),
        AuthSource::Resolved(ResolvedAuth::Oidc {
            issuer_url,
            client_id,
            client_secret,
            username,
            password,
            scopes,
        }) => {
            let token = oidc::fetch_id_token(OidcRequest {
                issuer_url,
                client_id,
                client_secret: client_secret.as_ref(),
                username,
                password,
                scopes,
                ca_pem: input.ca_pem,
                timeout: input.timeout,
            })
            .await?;
            knowledge.warnings.extend(token.warnings);
            Ok(Prepared {
                identity: identity::from_id_token(token.id_token.expose_secret()),
                credentials: Credentials::Token(token.id_token),
                kind: AuthKind::Oidc {
                    issuer_url: issuer_url.clone(),
                },
                detail: token.detail,
            })
        }
        AuthSource::Cloud(c) => {
            knowledge.warnings.extend(c.warnings.iter().cloned());
            Ok(Prepared {
                credentials: Credentials::Token(c.token.clone()),
                kind: c.kind.clone(),
                identity: Some(c.identity.clone()),
                detail: c.detail.clone(),
            })
        }
        AuthSource::Resolved(ResolvedAuth::Cloud(_)) => Err(Failure::new(
            diagnosis::Reason::Internal,
            "a cloud token was not made before authentication (internal error)",
        )),
        AuthSource::Delegate { credentials, label } => {
            let mut p = match credentials {
                Credentials::Token(t) => {
                    prepare_token(t.expose_secret(), &format!("the delegate's {label}"))?
                }
                Credentials::ClientCert { cert_pem, key_pem } => prepare_client_cert(
                    &CertFields::kubeconfig(label),
                    cert_pem,
                    key_pem,
                    None,
                    input.now,
                )?,
                other => Prepared {
                    credentials: (*other).clone(),
                    kind: AuthKind::Delegate {
                        label: label.to_string(),
                    },
                    identity: None,
                    detail: String::new(),
                },
            };
            p.kind = AuthKind::Delegate {
                label: label.to_string(),
            };
            let mut id = p.identity.take().unwrap_or(Identity {
                user: label.to_string(),
                groups: Vec::new(),
                source: IdentitySource::DelegateLabel,
                confirmed_by_server: false,
                label: None,
            });
            id.label = Some(label.to_string());
            p.identity = Some(id);
            p.detail = format!("the delegate's {label}");
            Ok(p)
        }
    }
}

/// A raw answer from the API server.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `message` of a `Status` body, or the status text.
    fn message(&self) -> String {
        self.json()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                http::StatusCode::from_u16(self.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .to_string()
            })
    }

    fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let clean = clean.trim();
        if clean.chars().count() > 60 {
            format!("{}…", clean.chars().take(60).collect::<String>())
        } else {
            clean.to_string()
        }
    }
}

const MAX_BODY: usize = 1 << 20;

async fn call(
    client: &Client,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Answer, String> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, "application/json");
    let bytes = match body {
        Some(v) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            serde_json::to_vec(&v).map_err(|e| e.to_string())?
        }
        None => Vec::new(),
    };
    let req = req
        .body(kube::client::Body::from(bytes))
        .map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_string();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

fn transport_failure(ep: &Endpoint, what: &str, error: &str, timeout: Duration) -> Failure {
    let lower = error.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("timeout") || lower.contains("deadline") {
        diagnosis::timeout(StageName::Authentication, &ep.display, timeout)
    } else {
        diagnosis::request_failed(&ep.display, what, error)
    }
}

/// `gitVersion` of a `/version` answer, or why this is not Kubernetes.
fn version_of(ep: &Endpoint, a: &Answer) -> Result<String, Failure> {
    a.json()
        .and_then(|v| {
            v.get("gitVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| {
            diagnosis::not_kubernetes(&ep.display, a.status, &a.content_type, &a.snippet())
        })
}

fn access_for(input: &AuthInput<'_>, credentials: Credentials) -> ClusterAccess {
    let mut access = ClusterAccess::new(input.endpoint.url.clone(), credentials);
    access.ca_pem = input.ca_pem.map(str::to_string);
    access.connect_timeout = input.timeout;
    access.read_timeout = input.timeout;
    access
}

fn build_failed(input: &AuthInput<'_>, error: &dyn std::error::Error) -> Failure {
    diagnosis::request_failed(
        &input.endpoint.display,
        "building the Kubernetes client",
        &error_chain(error),
    )
}

/// A client with `credentials` on the TLS stage's connection.
fn client_for(input: &AuthInput<'_>, credentials: Credentials) -> Result<Client, Failure> {
    let config = access_for(input, credentials)
        .config()
        .map_err(|e| build_failed(input, &e))?;
    input
        .connection
        .client(&config)
        .map_err(|e| build_failed(input, &e))
}

/// A client on a connection of its own: only for an anonymous call when the
/// shared connection presents a client certificate.
fn own_client_for(input: &AuthInput<'_>, credentials: Credentials) -> Result<Client, Failure> {
    access_for(input, credentials)
        .client()
        .map_err(|e| build_failed(input, &e))
}

/// The client certificate to present in the TLS handshake, when the
/// credentials are one that can be used: a certificate that cannot is
/// diagnosed by the authentication stage before any call is made.
pub(crate) fn tls_identity(
    source: &AuthSource<'_>,
) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
    let (cert_pem, key_pem, passphrase) = match source {
        AuthSource::Resolved(ResolvedAuth::ClientCert {
            cert_pem,
            key_pem,
            passphrase,
        }) => (cert_pem.as_str(), key_pem, passphrase.as_ref()),
        AuthSource::Delegate {
            credentials: Credentials::ClientCert { cert_pem, key_pem },
            ..
        } => (cert_pem.as_str(), key_pem, None),
        _ => return None,
    };
    let certs = pem::certificates(cert_pem).ok()?;
    let key = pem::client_key(
        key_pem.expose_secret(),
        passphrase.map(|p| p.expose_secret()),
    )
    .ok()?;
    client_cert::certified_key(certs, key.der.clone_key()).ok()
}

pub(crate) struct AuthOutcome {
    pub client: Client,
    pub detail: String,
}

/// The `authentication` stage.
pub(crate) async fn authenticate(
    input: AuthInput<'_>,
    knowledge: &mut Knowledge,
) -> Result<AuthOutcome, Failure> {
    let ep = input.endpoint;
    let prepared = prepare(&input, knowledge).await?;
    knowledge.identity = prepared.identity.clone();
    let context = |version: Option<String>| UnauthorizedContext {
        host: ep.host_str.clone(),
        auth: prepared.kind.clone(),
        server_version: version,
        server_cert_issuer: input.server_cert_issuer.clone(),
        server_cert_sans: input.server_cert_sans.clone(),
        now: input.now,
    };
    let unauthorized = |message: &str, version: Option<String>| {
        diagnosis::unauthorized(&ep.display, message, &context(version))
    };

    // Is it Kubernetes, and which version? (Anonymous: independent of the credentials.)
    let anonymous = client_for(&input, Credentials::Anonymous)?;
    let mut a = call(&anonymous, http::Method::GET, "/version", None)
        .await
        .map_err(|e| transport_failure(ep, "GET /version", &e, input.timeout))?;
    let presents_cert = matches!(prepared.credentials, Credentials::ClientCert { .. });
    if a.status == 401 && presents_cert {
        // The connection's client certificate was refused; ask anonymously
        // elsewhere for the version the diagnosis names.
        if let Ok(b) = call(
            &own_client_for(&input, Credentials::Anonymous)?,
            http::Method::GET,
            "/version",
            None,
        )
        .await
        {
            a = b;
        }
    }
    match a.status {
        200..=299 => knowledge.server_version = Some(version_of(ep, &a)?),
        401 | 403 => {} // anonymous access is off: ask again with the credentials
        500..=599 => {
            return Err(diagnosis::api_error(
                &ep.display,
                "GET /version",
                a.status,
                &a.message(),
            ))
        }
        _ => {
            return Err(diagnosis::not_kubernetes(
                &ep.display,
                a.status,
                &a.content_type,
                &a.snippet(),
            ))
        }
    }

    // Are the credentials accepted?
    let client = client_for(&input, prepared.credentials.clone())?;
    let a = call(&client, http::Method::GET, "/version", None)
        .await
        .map_err(|e| transport_failure(ep, "GET /version", &e, input.timeout))?;
    match a.status {
        200..=299 => knowledge.server_version = Some(version_of(ep, &a)?),
        401 => return Err(unauthorized(&a.message(), knowledge.server_version.clone())),
        403 => {}
        500..=599 => {
            return Err(diagnosis::api_error(
                &ep.display,
                "GET /version",
                a.status,
                &a.message(),
            ))
        }
        _ => {
            return Err(diagnosis::not_kubernetes(
                &ep.display,
                a.status,
                &a.content_type,
                &a.snippet(),
            ))
        }
    }

    // Who are we?
    let mut confirmed: Option<Identity> = None;
    for version in ["v1", "v1beta1"] {
        let review = serde_json::json!({
            "apiVersion": format!("authentication.k8s.io/{version}"),
            "kind": "SelfSubjectReview",
        });
        let path = format!("/apis/authentication.k8s.io/{version}/selfsubjectreviews");
        let Ok(a) = call(&client, http::Method::POST, &path, Some(review)).await else {
            break;
        };
        match a.status {
            200..=299 => {
                confirmed = a
                    .json()
                    .as_ref()
                    .and_then(identity::from_self_subject_review);
                break;
            }
            401 => return Err(unauthorized(&a.message(), knowledge.server_version.clone())),
            403 => {
                confirmed = identity::from_forbidden_message(&a.message());
                break;
            }
            404 => continue,
            _ => break,
        }
    }
    if confirmed.is_none() {
        if let Ok(a) = call(
            &client,
            http::Method::GET,
            "/tether-connection-test-whoami",
            None,
        )
        .await
        {
            match a.status {
                401 => return Err(unauthorized(&a.message(), knowledge.server_version.clone())),
                403 => confirmed = identity::from_forbidden_message(&a.message()),
                _ => {}
            }
        }
    }
    if let Some(id) = &confirmed {
        let anonymous = id.user == "system:anonymous"
            || id.groups.iter().any(|g| g == "system:unauthenticated");
        if anonymous && !matches!(prepared.credentials, Credentials::Anonymous) {
            knowledge.identity = confirmed;
            return Err(diagnosis::credentials_ignored(
                &ep.display,
                &context(knowledge.server_version.clone()),
            ));
        }
    }
    if let Some(mut id) = confirmed {
        if let Some(local) = &knowledge.identity {
            if id.groups.is_empty() && local.user == id.user {
                id.groups = local.groups.clone();
            }
            id.label = local.label.clone();
        }
        knowledge.identity = Some(id);
    }

    let who = match &knowledge.identity {
        Some(id) => format!(
            "{} ({})",
            id.user,
            match id.source {
                IdentitySource::SelfSubjectReview => "confirmed by SelfSubjectReview",
                IdentitySource::ForbiddenResponse => "as named by the API server",
                IdentitySource::TokenClaims => "from the token's claims, not verified",
                IdentitySource::ClientCertificate => "from the client certificate's subject",
                IdentitySource::OidcIdToken => "from the ID token, default claim mapping",
                IdentitySource::BasicAuthUsername => "the basic-auth user name",
                IdentitySource::DelegateLabel => "the delegate's identity",
                IdentitySource::CloudIdentity => "the cloud identity of the token",
            }
        ),
        None => "an unnamed identity".to_string(),
    };
    let detail = format!(
        "Kubernetes {}; {} accepted; authenticated as {who}",
        knowledge
            .server_version
            .as_deref()
            .unwrap_or("(version not readable)"),
        prepared.detail
    );
    Ok(AuthOutcome { client, detail })
}
