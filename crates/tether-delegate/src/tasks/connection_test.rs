//! The `connectionTest` task: turn the connector and the secret values the
//! manager sent with it into a test input, run the test, return the report.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use tether_domain::connector::{Auth, Credential};
use tether_domain::Connector;
use tether_kube::connection_test::{self, failure_report, ResolvedAuth, TestInput, TestTarget};
use tether_kube::{ClusterAccess, Credentials};

use super::TaskContext;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

pub async fn run(payload: Value, ctx: &TaskContext) -> Value {
    let report = match input(&payload, ctx) {
        Ok(input) => connection_test::run(input).await,
        Err(report) => *report,
    };
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// Boxed: a report is large, and most results carry none.
pub(crate) type Report = Box<tether_kube::connection_test::ConnectionReport>;

fn input(payload: &Value, ctx: &TaskContext) -> Result<TestInput, Report> {
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
                            scopes: a.oidc_scopes.clone(),
                        },
                    )
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
    let imported =
        tether_kube::onboarding::import_kubeconfig_file(path, None, true).map_err(|e| {
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
