//! The operator's kubeconfig, used on the operator's machine to reach a cluster.
//!
//! Unlike a connector (which only ever carries data, see `tether_kube::client`),
//! this kubeconfig may run an `exec` plugin or an `auth-provider` (EKS, GKE, AKS
//! logins) and read files: it is the operator's own, on their own machine, used
//! once at their request — exactly what `kubectl` would do with it. Nothing of it
//! is sent to the manager except the server URL and the CA; the credentials
//! tether stores are those of the service account it creates.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use super::KubeconfigArgs;

/// A cluster reached with the operator's kubeconfig.
pub struct OperatorCluster {
    pub client: Client,
    /// The API server URL as the kubeconfig writes it.
    pub server: String,
    /// The CA the kubeconfig trusts, PEM; `None` means the system roots.
    pub ca_pem: Option<String>,
    pub context: String,
    /// Which file(s) it came from, for messages.
    pub source: String,
}

/// Reads the kubeconfig and builds a client for its context. Does not contact the
/// cluster (see [`OperatorCluster::version`]).
pub async fn connect(args: &KubeconfigArgs) -> Result<OperatorCluster> {
    let (kubeconfig, source) = match &args.kubeconfig {
        Some(path) => (
            Kubeconfig::read_from(path).map_err(|e| read_error(e, &path.display().to_string()))?,
            path.display().to_string(),
        ),
        None => {
            let source = std::env::var("KUBECONFIG")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "~/.kube/config".to_string());
            (
                Kubeconfig::read().map_err(|e| read_error(e, &source))?,
                source,
            )
        }
    };
    let contexts: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let context = match args
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
    {
        Some(c) if !c.is_empty() => c,
        _ => bail!(
            "the kubeconfig {source} has no current-context: name one with --context ({})",
            list(&contexts)
        ),
    };
    let Some(ctx) = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
    else {
        bail!(
            "context '{context}' is not in the kubeconfig {source} ({})",
            list(&contexts)
        );
    };
    let server = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            anyhow!(
                "context '{context}' of {source} names cluster '{}', which has no server URL in the kubeconfig",
                ctx.cluster
            )
        })?;

    let options = KubeConfigOptions {
        context: Some(context.clone()),
        cluster: None,
        user: None,
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| read_error(e, &source))
        .with_context(|| format!("cannot use context '{context}'"))?;
    if config.accept_invalid_certs {
        bail!(
            "context '{context}' of {source} skips TLS verification (insecure-skip-tls-verify), so \
             the cluster's CA is unknown, and tether always verifies the API server: put the CA \
             into the kubeconfig (certificate-authority-data) and run the command again"
        );
    }
    let ca_pem = config.root_cert.as_ref().map(|ders| {
        ders.iter()
            .map(|der| pem_certificate(der))
            .collect::<String>()
    });
    // The kube default has no read timeout; a CLI should not hang forever on a
    // silent API server. Long enough for the 60 s wait for a token Secret.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(120));
    config.reset_reader_on_write = true;
    // Not `Client::try_from`: rustls would refuse an X.509 v1 client
    // certificate that kubectl accepts (see tether_kube::client_cert).
    let client = tether_kube::client_cert::client_from_config(config).map_err(|e| {
        anyhow!(
            "cannot build a client for context '{context}' of {source}: user of the context: {e}"
        )
    })?;
    Ok(OperatorCluster {
        client,
        server,
        ca_pem,
        context,
        source,
    })
}

impl OperatorCluster {
    /// Contacts the API server: its version, or why it cannot be reached.
    pub async fn version(&self) -> Result<String> {
        let info = self.client.apiserver_version().await.map_err(|e| {
            anyhow!(
                "cannot reach the API server {} with context '{}' of {}: {e} (does `kubectl --context {} version` work?)",
                self.server,
                self.context,
                self.source,
                self.context
            )
        })?;
        Ok(info.git_version)
    }

    /// Refuses to act on a cluster other than the connector's, unless told to.
    pub fn check_server(&self, connector_url: &str, ignore: bool) -> Result<()> {
        let norm = |u: &str| u.trim().trim_end_matches('/').to_ascii_lowercase();
        if ignore || norm(connector_url) == norm(&self.server) {
            return Ok(());
        }
        bail!(
            "the connector's cluster is {connector_url}, but context '{}' of {} points to {}: pass \
             --context (or --kubeconfig) for the connector's cluster, or --ignore-server-mismatch \
             if both URLs reach the same cluster",
            self.context,
            self.source,
            self.server
        )
    }
}

fn list(contexts: &[String]) -> String {
    if contexts.is_empty() {
        "it defines no contexts".into()
    } else {
        format!("available: {}", contexts.join(", "))
    }
}

/// A kubeconfig error, without quoting the file (a parser error may show a line
/// holding a credential).
fn read_error(e: KubeconfigError, source: &str) -> anyhow::Error {
    match e {
        KubeconfigError::Parse(_) => anyhow!(
            "the kubeconfig {source} is not valid kubeconfig YAML (the parser's message is withheld \
             because it may quote credentials): check it with `kubectl config view --kubeconfig {source}`"
        ),
        KubeconfigError::FindPath => anyhow!(
            "no kubeconfig found: pass --kubeconfig PATH or set KUBECONFIG"
        ),
        other => anyhow!("cannot read the kubeconfig {source}: {other}"),
    }
}

fn pem_certificate(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
