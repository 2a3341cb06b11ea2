//! Kubernetes tokens from cloud credentials, made here instead of by an `exec`
//! plugin (`aws eks get-token`, `gke-gcloud-auth-plugin`, `kubelogin`): nothing is
//! run, nothing needs a cloud CLI on the delegate.
//!
//! - [`eks`]: the aws-iam-authenticator token, a SigV4-presigned STS
//!   `GetCallerIdentity` (signed with `aws-sigv4`), from access keys, an assumed
//!   role, or the delegate's web identity;
//! - [`gke`]: an OAuth2 access token from a service-account key (JWT-bearer
//!   grant) or from the metadata server;
//! - [`aks`]: an Entra ID token for the AKS server application from client
//!   credentials or a federated (workload identity) token.
//!
//! [`token`] caches each token until shortly before it expires
//! ([`cache`]), keyed by a hash of everything that made it. Errors say which
//! cloud answered what ([`CloudError`]); they never quote a secret.

pub mod aks;
pub mod cache;
pub mod delegate;
pub mod eks;
pub mod gke;
mod http;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;

/// Which cloud a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Aws,
    Google,
    Azure,
}

impl Cloud {
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS",
            Cloud::Google => "Google Cloud",
            Cloud::Azure => "Microsoft Entra ID",
        }
    }
}

/// The credentials of a cloud auth type, secrets resolved.
#[derive(Clone, Debug)]
pub enum CloudAuth {
    Eks(eks::EksConfig),
    Gke(gke::GkeConfig),
    Aks(aks::AksConfig),
}

impl CloudAuth {
    pub fn cloud(&self) -> Cloud {
        match self {
            CloudAuth::Eks(_) => Cloud::Aws,
            CloudAuth::Gke(_) => Cloud::Google,
            CloudAuth::Aks(_) => Cloud::Azure,
        }
    }
}

/// A bearer token for the API server, and what it stands for.
#[derive(Clone)]
pub struct CloudToken {
    pub token: SecretString,
    /// Unix seconds after which the token is no longer accepted.
    pub expires_at: i64,
    /// The cloud identity the token was made with, as the cloud names it (an
    /// IAM ARN, a service-account e-mail, an application id); never a secret.
    pub identity: String,
    /// How it was obtained, e.g. `access key AKIA…WXYZ, assumed role …`.
    pub source: String,
    /// True when it came from the cache.
    pub cached: bool,
}

impl std::fmt::Debug for CloudToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("identity", &self.identity)
            .field("source", &self.source)
            .finish()
    }
}

/// How to talk to the clouds' endpoints.
#[derive(Debug, Clone)]
pub struct Options {
    /// Per request.
    pub timeout: Duration,
    /// The clock to sign and judge expiry with (tests move it).
    pub now: SystemTime,
    /// Use a cached token if it is still good.
    pub use_cache: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            now: SystemTime::now(),
            use_cache: true,
        }
    }
}

impl Options {
    pub fn unix_now(&self) -> i64 {
        unix(self.now)
    }
}

pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What went wrong getting a token. Messages name the endpoint and the cloud's
/// own error code; they never quote a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    /// The endpoint could not be reached (DNS, connect, TLS, timeout).
    #[error("{service} at {url} cannot be reached: {error}")]
    Unreachable {
        service: &'static str,
        url: String,
        error: String,
    },
    /// The cloud answered with an error.
    #[error("{service} refused {action} ({status} {code}: {message})")]
    Rejected {
        service: &'static str,
        action: &'static str,
        status: u16,
        /// The cloud's error code: `SignatureDoesNotMatch`, `invalid_grant`,
        /// `AADSTS7000215`, ...
        code: String,
        message: String,
        /// The server's clock (its `Date` header), Unix seconds, when it sent one.
        server_time: Option<i64>,
        /// Our clock when the answer came, Unix seconds.
        local_time: i64,
    },
    /// The answer was not what that endpoint sends.
    #[error("{service} at {url} answered something unexpected: {problem}")]
    BadAnswer {
        service: &'static str,
        url: String,
        problem: String,
    },
    /// A credential is malformed (e.g. a key file that is not a key).
    #[error("{field} is not usable: {problem}")]
    BadCredential {
        field: &'static str,
        problem: String,
    },
    /// The delegate has no cloud identity of this kind.
    #[error("{0}")]
    NoDelegateIdentity(String),
}

impl CloudError {
    /// The clock difference (server minus local, seconds) when the server said
    /// what time it is.
    pub fn clock_offset(&self) -> Option<i64> {
        match self {
            CloudError::Rejected {
                server_time: Some(s),
                local_time,
                ..
            } => Some(s - local_time),
            _ => None,
        }
    }
}

/// A token for `auth`, from the cache when it is still good for at least the
/// provider's margin, otherwise freshly made (and cached).
pub async fn token(auth: &CloudAuth, opts: &Options) -> Result<CloudToken, CloudError> {
    match auth {
        CloudAuth::Eks(c) => eks::token(c, opts).await.map(|t| t.token),
        CloudAuth::Gke(c) => gke::token(c, opts).await,
        CloudAuth::Aks(c) => aks::token(c, opts).await,
    }
}

/// `AKIA…WXYZ`: enough of a non-secret id to recognise it.
pub(crate) fn shorten(id: &str) -> String {
    let n = id.chars().count();
    if n <= 8 {
        return id.to_string();
    }
    let head: String = id.chars().take(4).collect();
    let tail: String = id.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}
