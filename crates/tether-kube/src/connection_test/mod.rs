//! The connection test: does this connector really reach its cluster, and what may
//! it do there?
//!
//! [`run`] walks the stages a Kubernetes client goes through, in order, each bounded
//! by [`TestInput::stage_timeout`]:
//!
//! 1. `url`: the master URL is an `https://` URL with a host;
//! 2. `dns`: the host resolves (IP-address URLs skip the lookup);
//! 3. `tcp`: something accepts a connection on the port;
//! 4. `tls`: our own rustls handshake, so that a failure can say *why* (unknown CA,
//!    name or IP mismatch, expiry, plain HTTP on the port) and name the certificate;
//!    (cloud auth types only) `token`: the EKS, GKE or AKS token, made as the
//!    cloud's exec plugin would, with whose identity and until when; for EKS
//!    also replayed to STS and the cluster name looked up in the region;
//! 5. `authentication`: `GET /version` (is it Kubernetes, which version) and the
//!    credentials accepted, plus who the cluster says we are;
//! 6. `authorization`: every permission of the connector's profile, in every target
//!    namespace, through `SelfSubjectAccessReview`.
//!
//! The first failed stage stops the test; the ones after it are `skipped`. Every
//! failure carries a machine-readable reason, a message and hints that say what is
//! wrong and how to fix it. [`run`] never fails and never panics: whatever happens
//! becomes a [`ConnectionReport`]. No secret (token, password, key, client secret)
//! ever appears in a report.

mod api;
mod authz;
mod cloud;
mod conn;
mod diagnosis;
mod identity;
mod net;
mod oidc;
mod pem;
mod stages;
mod tls;

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tether_domain::connector::{ConnectivityError, ConnectivityState};
use tether_domain::ConnectionTestSettings;

use crate::client::ClusterAccess;

pub use diagnosis::{unauthorized_hints, AuthKind, Reason, UnauthorizedContext};
pub(crate) use oidc::error_chain;
pub use pem::{diagnose_ca_pem, PemProblem};

/// The per-stage time limit when the caller does not choose one.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What to test. Secrets are already resolved: the engine does no store I/O.
#[derive(Debug, Clone)]
pub struct TestInput {
    pub target: TestTarget,
    /// Which permissions to check, and in which namespaces.
    pub settings: ConnectionTestSettings,
    /// Upper bound for each stage (default [`DEFAULT_STAGE_TIMEOUT`]).
    pub stage_timeout: Duration,
    /// Told of each stage as it completes (live progress); the report has them all.
    pub on_stage: StageObserver,
}

/// Called with each stage's report as soon as the stage is over.
#[derive(Clone, Default)]
pub struct StageObserver(Option<StageCallback>);

type StageCallback = std::sync::Arc<dyn Fn(&StageReport) + Send + Sync>;

impl StageObserver {
    pub fn new(f: impl Fn(&StageReport) + Send + Sync + 'static) -> Self {
        StageObserver(Some(std::sync::Arc::new(f)))
    }

    pub(crate) fn notify(&self, stage: &StageReport) {
        if let Some(f) = &self.0 {
            f(stage);
        }
    }
}

impl std::fmt::Debug for StageObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StageObserver(set)"
        } else {
            "StageObserver(none)"
        })
    }
}

impl TestInput {
    /// A test with the default settings (the `deployments` profile in `default`)
    /// and the default stage timeout.
    pub fn new(target: TestTarget) -> Self {
        TestInput {
            target,
            settings: ConnectionTestSettings::default(),
            stage_timeout: DEFAULT_STAGE_TIMEOUT,
            on_stage: StageObserver::default(),
        }
    }
}

/// The cluster and the credentials to test.
#[derive(Debug, Clone)]
pub enum TestTarget {
    /// A `ManualConfig` connector.
    Manual {
        master_url: String,
        /// The connector's `caCertRef`, resolved. When set, only this CA is
        /// trusted; otherwise the system roots are.
        ca_pem: Option<String>,
        auth: ResolvedAuth,
    },
    /// `InheritFromDelegate`: the delegate's own in-cluster service account or
    /// kubeconfig, already turned into a [`ClusterAccess`] by the delegate.
    Inherited {
        access: ClusterAccess,
        /// Says which identity the delegate used, e.g. `in-cluster service account
        /// tether/delegate` or `kubeconfig context prod`; shown in the report.
        identity_label: String,
    },
}

/// A connector's `auth`, with every secret reference resolved to its value.
#[derive(Clone)]
pub enum ResolvedAuth {
    ServiceAccountToken(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
    ClientCert {
        cert_pem: String,
        /// PKCS#1, PKCS#8 (possibly encrypted) or SEC1 PEM.
        key_pem: SecretString,
        passphrase: Option<SecretString>,
    },
    Oidc {
        issuer_url: String,
        client_id: String,
        client_secret: Option<SecretString>,
        username: String,
        password: SecretString,
        /// Extra scopes; `openid` is always requested.
        scopes: Vec<String>,
    },
    /// EKS, GKE or AKS: tether makes the token (the `token` stage).
    Cloud(crate::cloud_auth::CloudAuth),
}

impl std::fmt::Debug for ResolvedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret parts.
        match self {
            ResolvedAuth::ServiceAccountToken(_) => f.write_str("ServiceAccountToken(<redacted>)"),
            ResolvedAuth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            ResolvedAuth::ClientCert { passphrase, .. } => write!(
                f,
                "ClientCert(<redacted key>{})",
                if passphrase.is_some() {
                    ", <redacted passphrase>"
                } else {
                    ""
                }
            ),
            ResolvedAuth::Oidc {
                issuer_url,
                username,
                scopes,
                ..
            } => write!(f, "Oidc({issuer_url}, {username}, {scopes:?}, <redacted>)"),
            // The cloud configs redact their own secrets.
            ResolvedAuth::Cloud(c) => write!(f, "Cloud({c:?})"),
        }
    }
}

/// The outcome of one connection test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionReport {
    /// `SUCCESS` (every stage passed), `PARTIAL` (connected and authenticated, but
    /// some required permissions are missing) or `FAILURE` (a stage failed).
    pub status: ConnectivityState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_summary: Option<String>,
    #[serde(default)]
    pub errors: Vec<ConnectivityError>,
    /// What is wrong and how to fix it, most specific first. May also hold
    /// warnings on success (e.g. a certificate that expires soon).
    #[serde(default)]
    pub hints: Vec<String>,
    pub stages: Vec<StageReport>,
    /// The API server's `gitVersion`, e.g. `v1.20.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Who the cluster says we are (or, where it does not say, what the
    /// credentials claim; `identity.source` tells which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default)]
    pub permissions: Vec<PermissionCheck>,
    #[serde(default)]
    pub missing: Vec<MissingPermission>,
    /// Milliseconds since the Unix epoch.
    pub tested_at: i64,
    pub duration_ms: u64,
}

impl ConnectionReport {
    /// The report of one stage, if the test got that far.
    pub fn stage(&self, name: StageName) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The stage that failed, if any.
    pub fn failed_stage(&self) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.status == StageStatus::Failed)
    }

    /// The machine-readable reason of the first error, if any.
    pub fn reason(&self) -> Option<&str> {
        self.errors.first().map(|e| e.reason.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageName {
    Url,
    Dns,
    Tcp,
    Tls,
    /// Only for the cloud auth types (EKS, GKE, AKS), between `tls` and
    /// `authentication`.
    Token,
    Authentication,
    Authorization,
}

impl StageName {
    pub const ALL: [StageName; 6] = [
        StageName::Url,
        StageName::Dns,
        StageName::Tcp,
        StageName::Tls,
        StageName::Authentication,
        StageName::Authorization,
    ];

    /// The stages of a cloud auth type's test, in order.
    pub const CLOUD: [StageName; 7] = [
        StageName::Url,
        StageName::Dns,
        StageName::Tcp,
        StageName::Tls,
        StageName::Token,
        StageName::Authentication,
        StageName::Authorization,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Token => "token",
            StageName::Url => "url",
            StageName::Dns => "dns",
            StageName::Tcp => "tcp",
            StageName::Tls => "tls",
            StageName::Authentication => "authentication",
            StageName::Authorization => "authorization",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageStatus {
    Passed,
    Failed,
    Skipped,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Passed => "passed",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub name: StageName,
    pub status: StageStatus,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Who the test ran as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The Kubernetes user name, e.g. `system:serviceaccount:ns:sa`.
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    pub source: IdentitySource,
    /// True when the API server itself said so; false when read from the
    /// credentials without verification.
    pub confirmed_by_server: bool,
    /// For `InheritFromDelegate`: which of the delegate's identities was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Where [`Identity::user`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IdentitySource {
    /// The API server's `SelfSubjectReview` (Kubernetes 1.27+).
    SelfSubjectReview,
    /// The user name in the API server's 403 answer to a request we may not make.
    ForbiddenResponse,
    /// The `sub` claim of the service-account token (JWT), not verified.
    TokenClaims,
    /// The client certificate's subject: CN is the user, O the groups.
    ClientCertificate,
    /// The OIDC ID token's claims (`iss#sub`, the API server's default mapping).
    OidcIdToken,
    /// The user name given for basic authentication.
    BasicAuthUsername,
    /// Only the delegate's label is known.
    DelegateLabel,
    /// The cloud identity a cloud token was made for (an IAM ARN, a
    /// service-account e-mail, an application id), as the cloud named it.
    CloudIdentity,
}

/// One checked permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionCheck {
    pub verb: String,
    /// `""` is the core group.
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub allowed: bool,
    /// The authorizer's reason, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A permission the account lacks, with the fix and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingPermission {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: String,
    /// The RBAC rule (YAML list item) to add to a Role in `namespace`.
    pub rule: String,
    /// `kubectl auth can-i VERB RESOURCE[.group] -n NS --as=IDENTITY`
    pub verify_command: String,
}

/// Runs the connection test. Never fails, never panics: every problem becomes a
/// `FAILURE` report that says which stage failed, why, and how to fix it.
pub async fn run(input: TestInput) -> ConnectionReport {
    stages::run(input).await
}

/// A client key as unencrypted PEM for a Kubernetes client: an encrypted
/// PKCS#8 key is decrypted with `passphrase`. The problem never quotes the key.
pub fn unencrypted_client_key(
    key_pem: &str,
    passphrase: Option<&str>,
) -> Result<SecretString, PemProblem> {
    pem::client_key(key_pem, passphrase).map(|k| k.pem)
}

/// An OpenID Connect login: the resource-owner password grant the connection
/// test uses (`oidc.rs`), for whatever needs the ID token beyond the test.
#[derive(Clone)]
pub struct OidcLogin {
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub username: String,
    pub password: SecretString,
    pub scopes: Vec<String>,
    /// Trusted for the issuer beside the system roots (the connector's
    /// `caCertRef`).
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OidcLogin({}, <redacted>)", self.issuer_url)
    }
}

/// An ID token for `login` and its `exp` claim (Unix seconds) when it has
/// one. The error says what the issuer answered; it quotes no secret.
pub async fn oidc_id_token(
    login: &OidcLogin,
    timeout: Duration,
) -> Result<(SecretString, Option<i64>), String> {
    use secrecy::ExposeSecret as _;
    let t = oidc::fetch_id_token(oidc::OidcRequest {
        issuer_url: &login.issuer_url,
        client_id: &login.client_id,
        client_secret: login.client_secret.as_ref(),
        username: &login.username,
        password: &login.password,
        scopes: &login.scopes,
        ca_pem: login.ca_pem.as_deref(),
        timeout,
    })
    .await
    .map_err(|f| f.message)?;
    let exp = identity::jwt_claims(t.id_token.expose_secret())
        .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64));
    Ok((t.id_token, exp))
}

/// A FAILURE report for a test that could not run at all (e.g. the delegate
/// could not resolve a secret); keeps one report shape for every outcome.
pub fn failure_report(
    reason: &str,
    message: &str,
    code: i32,
    hints: Vec<String>,
) -> ConnectionReport {
    ConnectionReport {
        status: ConnectivityState::Failure,
        error_summary: Some(message.to_string()),
        errors: vec![ConnectivityError {
            reason: reason.to_string(),
            message: message.to_string(),
            code,
        }],
        hints,
        stages: StageName::ALL
            .iter()
            .map(|&name| StageReport {
                name,
                status: StageStatus::Skipped,
                duration_ms: 0,
                detail: None,
            })
            .collect(),
        server_version: None,
        identity: None,
        permissions: Vec::new(),
        missing: Vec::new(),
        tested_at: stages::now_ms(),
        duration_ms: 0,
    }
}
