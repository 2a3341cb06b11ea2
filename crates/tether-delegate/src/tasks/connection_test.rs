//! The `connectionTest` task: turn the connector and the secret values the
//! manager sent with it into a test input, run the test, return the report.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tether_domain::connector::{Auth, Credential};
use tether_domain::Connector;
use tether_kube::bearer::BearerSource;
use tether_kube::cloud_auth::aks::{AksConfig, AksCredential};
use tether_kube::cloud_auth::eks::{AwsBase, AwsKeys, EksConfig};
use tether_kube::cloud_auth::gke::{GkeConfig, GkeSource};
use tether_kube::cloud_auth::{self, delegate, CloudAuth};
use tether_kube::connection_test::{
    self, failure_report, OidcLogin, ResolvedAuth, TestInput, TestTarget,
};
use tether_kube::{ClusterAccess, Credentials};

use super::TaskContext;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

pub async fn run(payload: Value, ctx: &TaskContext, events: super::Emitter) -> Value {
    let report = match input(&payload, ctx) {
        Ok(mut input) => {
            // Each stage as it completes, for `tether connector test` and the UI.
            input.on_stage = connection_test::StageObserver::new(move |stage| {
                let line = format!(
                    "{} {} ({} ms){}",
                    stage.name.as_str(),
                    stage.status.as_str(),
                    stage.duration_ms,
                    stage
                        .detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                );
                events.emit("stage", &line, serde_json::to_value(stage).ok());
            });
            connection_test::run(input).await
        }
        Err(report) => *report,
    };
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// Boxed: a report is large, and most results carry none.
pub(crate) type Report = Box<tether_kube::connection_test::ConnectionReport>;

pub(super) fn input(payload: &Value, ctx: &TaskContext) -> Result<TestInput, Report> {
    let bad = |m: String| {
        Box::new(failure_report(
            "BAD_TASK",
            &m,
            400,
            vec!["run a delegate of the manager's version".into()],
        ))
    };
    let connector: Connector = serde_json::from_value(payload["connectorDocument"].clone())
        .map_err(|e| bad(format!("the task's connector cannot be read: {e}")))?;
    let secrets: HashMap<String, String> =
        serde_json::from_value(payload["secrets"].clone()).unwrap_or_default();
    let stage_timeout = payload["stageTimeoutMs"]
        .as_u64()
        .map(Duration::from_millis)
        .unwrap_or(connection_test::DEFAULT_STAGE_TIMEOUT);
    let target = target(&connector, &secrets, ctx)?;
    let mut input = TestInput::new(target);
    input.settings = connector.spec.connection_test.clone().unwrap_or_default();
    input.stage_timeout = stage_timeout;
    Ok(input)
}

/// The cluster and credentials of `connector`, its secret references resolved
/// from `secrets` (what the manager sent), or the delegate's own identity for
/// `InheritFromDelegate`. Also what the Kubernetes proxy uses.
pub(crate) fn target(
    connector: &Connector,
    secrets: &HashMap<String, String>,
    ctx: &TaskContext,
) -> Result<TestTarget, Report> {
    Ok(match &connector.spec.credential {
        Credential::ManualConfig(m) => {
            let get = |r: &str| -> Result<String, Report> {
                secrets.get(r).cloned().ok_or_else(|| {
                    Box::new(failure_report(
                        "SECRET_NOT_FOUND",
                        &format!("the manager sent no value for secret '{r}'"),
                        400,
                        vec!["check that the secret exists and retry".into()],
                    ))
                })
            };
            let secret = |r: &str| get(r).map(SecretString::from);
            let opt = |r: &Option<String>| r.as_deref().map(get).transpose();
            let (ca, auth) = match &m.auth {
                Auth::ServiceAccount(a) => (
                    opt(&a.ca_cert_ref)?,
                    ResolvedAuth::ServiceAccountToken(secret(&a.service_account_token_ref)?),
                ),
                Auth::UsernamePassword(a) => {
                    let username = match (&a.username, &a.username_ref) {
                        (Some(u), _) => u.clone(),
                        (None, Some(r)) => get(r)?,
                        (None, None) => String::new(),
                    };
                    (
                        opt(&a.ca_cert_ref)?,
                        ResolvedAuth::Basic {
                            username,
                            password: secret(&a.password_ref)?,
                        },
                    )
                }
                Auth::ClientKeyCert(a) => (
                    opt(&a.ca_cert_ref)?,
                    ResolvedAuth::ClientCert {
                        cert_pem: get(&a.client_cert_ref)?,
                        key_pem: secret(&a.client_key_ref)?,
                        passphrase: opt(&a.client_key_passphrase_ref)?.map(SecretString::from),
                    },
                ),
                Auth::OpenIdConnect(a) => {
                    let username = match (&a.oidc_username, &a.oidc_username_ref) {
                        (Some(u), _) => u.clone(),
                        (None, Some(r)) => get(r)?,
                        (None, None) => String::new(),
                    };
                    (
                        opt(&a.ca_cert_ref)?,
                        ResolvedAuth::Oidc {
                            issuer_url: a.oidc_issuer_url.clone(),
                            client_id: get(&a.oidc_client_id_ref)?,
                            client_secret: opt(&a.oidc_secret_ref)?.map(SecretString::from),
                            username,
                            password: secret(&a.oidc_password_ref)?,
                            scopes: a
                                .oidc_scopes
                                .as_ref()
                                .map(|s| s.to_list())
                                .unwrap_or_default(),
                        },
                    )
                }
                Auth::Eks(_) | Auth::Gke(_) | Auth::Aks(_) => {
                    let env = |k: &str| std::env::var(k).ok();
                    let resolved = cloud_auth(&m.auth, &get, &env)?;
                    let ca = match &m.auth {
                        Auth::Eks(a) => opt(&a.ca_cert_ref)?,
                        Auth::Gke(a) => opt(&a.ca_cert_ref)?,
                        Auth::Aks(a) => opt(&a.ca_cert_ref)?,
                        _ => None,
                    };
                    (ca, ResolvedAuth::Cloud(resolved))
                }
            };
            TestTarget::Manual {
                master_url: m.master_url.clone(),
                ca_pem: ca,
                auth,
            }
        }
        Credential::InheritFromDelegate => inherited(ctx)?,
    })
}

/// A cloud auth type with its secrets resolved; without a secret, the cloud
/// identity of the delegate's pod as its environment describes it.
fn cloud_auth(
    auth: &Auth,
    get: &dyn Fn(&str) -> Result<String, Report>,
    env: delegate::Env<'_>,
) -> Result<CloudAuth, Report> {
    let no_identity = |e: cloud_auth::CloudError| {
        Box::new(failure_report(
            "NO_DELEGATE_CLOUD_IDENTITY",
            &e.to_string(),
            400,
            vec!["run the connector's delegate where it has that cloud identity, or give the connector the secret".into()],
        ))
    };
    Ok(match auth {
        Auth::Eks(a) => {
            let base = match (&a.access_key_id_ref, &a.secret_access_key_ref) {
                (Some(id), Some(secret)) => AwsBase::Keys(AwsKeys {
                    access_key_id: get(id)?.trim().to_string(),
                    secret_access_key: SecretString::from(get(secret)?),
                    session_token: a
                        .session_token_ref
                        .as_deref()
                        .map(get)
                        .transpose()?
                        .map(SecretString::from),
                }),
                _ => delegate::aws(env).map_err(no_identity)?,
            };
            CloudAuth::Eks(EksConfig {
                region: a.region.clone(),
                cluster_name: a.cluster_name.clone(),
                base,
                role_arn: a.role_arn.clone(),
                external_id: a.external_id.clone(),
                sts_endpoint: a.sts_endpoint.clone(),
                eks_endpoint: a.eks_endpoint.clone(),
            })
        }
        Auth::Gke(a) => CloudAuth::Gke(GkeConfig {
            source: match &a.service_account_key_ref {
                Some(r) => GkeSource::Key(SecretString::from(get(r)?)),
                None => delegate::google(env),
            },
        }),
        Auth::Aks(a) => {
            let client_id = match (&a.client_id, &a.client_id_ref) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(r)) => Some(get(r)?.trim().to_string()),
                (None, None) => None,
            };
            let (client_id, credential) = match &a.client_secret_ref {
                Some(r) => (
                    client_id.unwrap_or_default(),
                    AksCredential::Secret(SecretString::from(get(r)?)),
                ),
                None => {
                    let (_, env_client, cred) = delegate::azure(env).map_err(no_identity)?;
                    (client_id.unwrap_or(env_client), cred)
                }
            };
            CloudAuth::Aks(AksConfig {
                tenant_id: a.tenant_id.clone(),
                client_id,
                credential,
                authority_host: a.authority_host.clone(),
            })
        }
        _ => {
            return Err(Box::new(failure_report(
                "BAD_TASK",
                "not a cloud auth type (internal error)",
                500,
                vec![],
            )))
        }
    })
}

/// The delegate's own identity: its pod's service account, or the kubeconfig it
/// was started with (the operator's own file; commands in it are never run).
fn inherited(ctx: &TaskContext) -> Result<TestTarget, Report> {
    if let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) {
        let dir = Path::new(SA_DIR);
        let read = |f: &str| std::fs::read_to_string(dir.join(f));
        if let (Ok(token), Ok(ca)) = (read("token"), read("ca.crt")) {
            let ns = read("namespace").unwrap_or_default();
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let access = ClusterAccess::new(
                format!("https://{host}:{port}"),
                Credentials::Token(SecretString::from(token.trim().to_string())),
            )
            .with_ca(ca);
            return Ok(TestTarget::Inherited {
                access,
                identity_label: format!(
                    "in-cluster service account of delegate '{}' (namespace {})",
                    ctx.delegate_name,
                    ns.trim()
                ),
            });
        }
    }
    let Some(path) = &ctx.kubeconfig else {
        return Err(Box::new(failure_report(
            "NO_DELEGATE_CREDENTIALS",
            &format!("delegate '{}' runs outside a cluster and was started without --kubeconfig, so it has no credentials to inherit", ctx.delegate_name),
            400,
            vec!["run the delegate in the cluster (tether delegate manifest), or start it with --kubeconfig, or give the connector ManualConfig credentials".into()],
        )));
    };
    let imported = tether_kube::onboarding::import_kubeconfig_file(
        path,
        None,
        tether_kube::onboarding::FileAccess::ALL,
    )
    .map_err(|e| {
        Box::new(failure_report(
            "BAD_DELEGATE_KUBECONFIG",
            &format!("the delegate's kubeconfig {}: {e}", path.display()),
            400,
            vec![],
        ))
    })?;
    let label = format!(
        "kubeconfig {} (context {}) of delegate '{}'",
        path.display(),
        imported.context,
        ctx.delegate_name
    );
    Ok(TestTarget::Inherited {
        access: imported.access(),
        identity_label: label,
    })
}

/// The connector's cluster and static credentials as one [`ClusterAccess`], for
/// what talks to the cluster beyond the test with one client (a deploy): the
/// credentials whose token expires (OpenIdConnect, EKS, GKE, AKS) are refused
/// with `what` ("deploying") named in the message; the proxy takes those
/// through [`cluster_access_with_bearer`].
pub(crate) fn cluster_access(target: TestTarget, what: &str) -> Result<ClusterAccess, String> {
    match cluster_access_with_bearer(target)? {
        (access, None) => Ok(access),
        (_, Some(BearerSource::Oidc(_))) => Err(format!(
            "{what} cannot use an OpenIdConnect connector yet: use a service-account token (`tether cluster add`) or a client certificate"
        )),
        (_, Some(BearerSource::Cloud(_))) => Err(format!(
            "{what} cannot use an EKS, GKE or AKS connector yet: use a service-account token (`tether cluster add`)"
        )),
    }
}

/// The connector's cluster as one [`ClusterAccess`], and for credentials whose
/// token expires (OpenIdConnect, EKS, GKE, AKS) where a fresh bearer token
/// comes from: the access then carries no credentials of its own and the
/// caller asks the [`BearerSource`] before each request. An encrypted client
/// key is decrypted here with its passphrase.
pub(crate) fn cluster_access_with_bearer(
    target: TestTarget,
) -> Result<(ClusterAccess, Option<BearerSource>), String> {
    let (master_url, ca_pem, auth) = match target {
        TestTarget::Inherited { access, .. } => return Ok((access, None)),
        TestTarget::Manual {
            master_url,
            ca_pem,
            auth,
        } => (master_url, ca_pem, auth),
    };
    let (credentials, bearer) = match auth {
        ResolvedAuth::ServiceAccountToken(t) => (
            Credentials::Token(t.expose_secret().trim().to_string().into()),
            None,
        ),
        ResolvedAuth::Basic { username, password } => {
            (Credentials::Basic { username, password }, None)
        }
        ResolvedAuth::ClientCert {
            cert_pem,
            key_pem,
            passphrase,
        } => {
            let key_pem = match passphrase {
                None => key_pem,
                Some(p) => connection_test::unencrypted_client_key(
                    key_pem.expose_secret(),
                    Some(p.expose_secret()),
                )
                .map_err(|e| {
                    format!("the client key (clientKeyRef with clientKeyPassphraseRef) cannot be used: {e}")
                })?,
            };
            (Credentials::ClientCert { cert_pem, key_pem }, None)
        }
        ResolvedAuth::Oidc {
            issuer_url,
            client_id,
            client_secret,
            username,
            password,
            scopes,
        } => (
            Credentials::Anonymous,
            Some(BearerSource::Oidc(OidcLogin {
                issuer_url,
                client_id,
                client_secret,
                username,
                password,
                scopes,
                ca_pem: ca_pem.clone(),
            })),
        ),
        ResolvedAuth::Cloud(c) => (Credentials::Anonymous, Some(BearerSource::Cloud(c))),
    };
    let mut a = ClusterAccess::new(master_url, credentials);
    if let Some(ca) = ca_pem {
        a = a.with_ca(ca);
    }
    Ok((a, bearer))
}
