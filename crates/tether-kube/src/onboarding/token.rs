//! Getting a usable token for an existing service account: its long-lived token
//! Secret when it has one, otherwise (or when a lifetime is asked for) a
//! short-lived token from the TokenRequest API. Replaces the seed's
//! `kubectl get sa ... | base64 -d` pipeline, and works before and after
//! Kubernetes 1.24 stopped creating token Secrets.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use secrecy::SecretString;

use super::account::{InvalidName, ServiceAccountRef, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use super::api_error::explain;
use super::manifests::{SERVICE_ACCOUNT_NAME_ANNOTATION, SERVICE_ACCOUNT_TOKEN_TYPE};

/// How long [`service_account_token`] waits for the token controller to fill a
/// token Secret.
pub const DEFAULT_TOKEN_WAIT: Duration = Duration::from_secs(60);
/// The shortest lifetime the TokenRequest API issues.
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(600);

const SERVICE_ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// A token and where it came from.
#[derive(Clone)]
pub struct TokenOutcome {
    pub token: SecretString,
    pub source: TokenSource,
}

impl fmt::Debug for TokenOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenOutcome")
            .field("token", &format_args!("<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A long-lived token from this `kubernetes.io/service-account-token` Secret
    /// (in the account's namespace); it stays valid until the Secret is deleted.
    Secret { name: String },
    /// A token from the TokenRequest API; it stops working at `expires_at`.
    TokenRequest { expires_at: Option<Timestamp> },
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(
        "a token lifetime of {}s is too short: the TokenRequest API issues tokens valid for at \
         least 10 minutes; ask for 10m or more",
        .0.as_secs()
    )]
    TtlTooShort(Duration),
    #[error(
        "service account '{name}' does not exist in namespace '{namespace}': check the namespace, \
         or create the account with `tether rbac manifest --service-account {name} --namespace \
         {namespace} --profile deployments | kubectl apply -f -` (or `tether cluster add`)"
    )]
    ServiceAccountNotFound { namespace: String, name: String },
    #[error("cannot {step}: {detail}")]
    Api {
        step: String,
        detail: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "the token Secret {namespace}/{secret} still holds no token after {}s: Kubernetes' token \
         controller (kube-controller-manager with --service-account-private-key-file) fills it in; \
         check that it runs, or ask for a token with a lifetime, which uses the TokenRequest API instead",
        .waited.as_secs()
    )]
    TokenNotFilled {
        namespace: String,
        secret: String,
        waited: Duration,
    },
    #[error(
        "the token Secret {namespace}/{secret} was deleted while waiting for its token (the token \
         controller deletes token Secrets whose service account is gone or was re-created): apply \
         the account's manifest again and retry"
    )]
    SecretDeleted { namespace: String, secret: String },
    #[error("cannot watch the token Secret {namespace}/{secret} for its token: {source}")]
    Watch {
        namespace: String,
        secret: String,
        #[source]
        source: Box<kube::runtime::wait::Error>,
    },
    #[error(
        "the TokenRequest API (serviceaccounts/token) refused to issue a token for {account}: \
         {detail}. {hint}"
    )]
    TokenRequest {
        account: String,
        detail: String,
        hint: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("the token for {account} is empty or not text; it cannot be used as a bearer token")]
    BadToken { account: String },
}

/// A token for `namespace/service_account`: with `ttl`, a TokenRequest token that
/// expires after it; otherwise the account's token Secret (one of its pre-1.24
/// `.secrets[]`, or any `kubernetes.io/service-account-token` Secret annotated with
/// its name, tether's own first), waiting up to [`DEFAULT_TOKEN_WAIT`] for the
/// token controller to fill it; and a TokenRequest token with the server's default
/// lifetime when the account has no token Secret.
pub async fn service_account_token(
    client: &Client,
    namespace: &str,
    service_account: &str,
    ttl: Option<Duration>,
) -> Result<TokenOutcome, TokenError> {
    service_account_token_with_wait(client, namespace, service_account, ttl, DEFAULT_TOKEN_WAIT)
        .await
}

/// [`service_account_token`] with an explicit wait for the token controller.
pub async fn service_account_token_with_wait(
    client: &Client,
    namespace: &str,
    service_account: &str,
    ttl: Option<Duration>,
    wait: Duration,
) -> Result<TokenOutcome, TokenError> {
    let account = ServiceAccountRef::new(namespace, service_account)?;
    if let Some(ttl) = ttl {
        if ttl < MIN_TOKEN_TTL {
            return Err(TokenError::TtlTooShort(ttl));
        }
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let sa = accounts
        .get_opt(service_account)
        .await
        .map_err(|e| api_error(format!("read service account {account}"), e))?
        .ok_or_else(|| TokenError::ServiceAccountNotFound {
            namespace: namespace.to_string(),
            name: service_account.to_string(),
        })?;

    if ttl.is_none() {
        if let Some(secret) = find_token_secret(client, &account, &sa).await? {
            let token = wait_for_token(client, &account, &secret, wait).await?;
            return Ok(TokenOutcome {
                token,
                source: TokenSource::Secret { name: secret },
            });
        }
    }
    request_token(&accounts, &account, ttl).await
}

/// The name of the best token Secret of the account, if it has one.
async fn find_token_secret(
    client: &Client,
    account: &ServiceAccountRef,
    sa: &ServiceAccount,
) -> Result<Option<String>, TokenError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), account.namespace());
    let params = ListParams::default().fields(&format!("type={SERVICE_ACCOUNT_TOKEN_TYPE}"));
    let list = secrets.list(&params).await.map_err(|e| {
        api_error(
            format!(
                "list the token Secrets in namespace {}",
                account.namespace()
            ),
            e,
        )
    })?;
    let listed_on_account: Vec<&str> = sa
        .secrets
        .iter()
        .flatten()
        .filter_map(|r| r.name.as_deref())
        .collect();
    let annotation = |s: &Secret, key: &str| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };
    let mut candidates: Vec<(bool, bool, String)> = list
        .items
        .iter()
        .filter(|s| {
            annotation(s, SERVICE_ACCOUNT_NAME_ANNOTATION).as_deref() == Some(account.name())
        })
        // A Secret left over from an earlier account of the same name is no good.
        .filter(|s| match annotation(s, SERVICE_ACCOUNT_UID_ANNOTATION) {
            Some(uid) => sa.metadata.uid.as_deref() == Some(uid.as_str()),
            None => true,
        })
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter_map(|s| {
            let name = s.metadata.name.clone()?;
            let managed = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL))
                .is_some_and(|v| v == MANAGED_BY_VALUE);
            // Sort key: tether's own first, then those the account lists, then by name.
            Some((!managed, !listed_on_account.contains(&name.as_str()), name))
        })
        .collect();
    candidates.sort();
    Ok(candidates.into_iter().next().map(|(_, _, name)| name))
}

fn has_token(secret: &Secret) -> bool {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .is_some_and(|t| !t.0.is_empty())
}

/// Waits (watching, up to `wait`) until the token controller has filled the Secret.
async fn wait_for_token(
    client: &Client,
    account: &ServiceAccountRef,
    secret: &str,
    wait: Duration,
) -> Result<SecretString, TokenError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), account.namespace());
    let filled_or_gone = |s: Option<&Secret>| s.is_none_or(has_token);
    let waited = tokio::time::timeout(wait, await_condition(secrets, secret, filled_or_gone)).await;
    let found = match waited {
        Err(_elapsed) => {
            return Err(TokenError::TokenNotFilled {
                namespace: account.namespace().to_string(),
                secret: secret.to_string(),
                waited: wait,
            })
        }
        Ok(Err(source)) => {
            return Err(TokenError::Watch {
                namespace: account.namespace().to_string(),
                secret: secret.to_string(),
                source: Box::new(source),
            })
        }
        Ok(Ok(found)) => found,
    };
    let Some(found) = found else {
        return Err(TokenError::SecretDeleted {
            namespace: account.namespace().to_string(),
            secret: secret.to_string(),
        });
    };
    let bytes = found
        .data
        .and_then(|mut d| d.remove("token"))
        .map(|b| b.0)
        .unwrap_or_default();
    token_text(bytes, account)
}

async fn request_token(
    accounts: &Api<ServiceAccount>,
    account: &ServiceAccountRef,
    ttl: Option<Duration>,
) -> Result<TokenOutcome, TokenError> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: ttl.map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let response = accounts
        .create_token_request(account.name(), &PostParams::default(), &request)
        .await
        .map_err(|source| {
            let hint = match (&source, ttl) {
                (kube::Error::Api(s), Some(_)) if s.code == 404 => {
                    "This cluster does not serve the TokenRequest API (it needs \
                     --service-account-issuer and --service-account-signing-key-file): ask \
                     without a lifetime to use the account's token Secret"
                }
                (kube::Error::Api(s), None) if s.code == 404 => {
                    "The account has no token Secret either: apply the manifest from \
                     `tether rbac manifest`, which includes one"
                }
                _ => "",
            };
            TokenError::TokenRequest {
                account: account.to_string(),
                detail: explain(&source),
                hint,
                source: Box::new(source),
            }
        })?;
    let status = response.status.unwrap_or_default();
    let token = token_text(status.token.unwrap_or_default().into_bytes(), account)?;
    Ok(TokenOutcome {
        token,
        source: TokenSource::TokenRequest {
            expires_at: status.expiration_timestamp.map(|t| t.0),
        },
    })
}

fn token_text(bytes: Vec<u8>, account: &ServiceAccountRef) -> Result<SecretString, TokenError> {
    match String::from_utf8(bytes) {
        Ok(s) if !s.trim().is_empty() => Ok(SecretString::from(s.trim().to_string())),
        _ => Err(TokenError::BadToken {
            account: account.to_string(),
        }),
    }
}

fn api_error(step: String, source: kube::Error) -> TokenError {
    TokenError::Api {
        step,
        detail: explain(&source),
        source: Box::new(source),
    }
}
