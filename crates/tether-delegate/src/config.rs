//! The delegate's settings, from flags or the environment (for containers).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::backoff::Backoff;
use crate::DelegateError;

#[derive(Debug, Clone)]
pub struct DelegateConfig {
    /// `http(s)://host:port` of the manager.
    pub manager_url: String,
    pub token: SecretString,
    pub name: String,
    pub tags: Vec<String>,
    pub capacity: u32,
    /// Extra CA (PEM) to trust for an https manager URL.
    pub ca_pem: Option<String>,
    /// Kubeconfig for `InheritFromDelegate` connectors when not in a cluster.
    pub kubeconfig: Option<PathBuf>,
    pub health_listen: Option<SocketAddr>,
    /// How long running tasks may take to finish after SIGTERM.
    pub grace_period: Duration,
    pub backoff: Backoff,
}

impl DelegateConfig {
    /// `ws(s)://host:port/api/v1/delegates/connect` from the manager URL.
    pub fn connect_url(&self) -> Result<String, DelegateError> {
        let url = self.manager_url.trim_end_matches('/');
        let rest = if let Some(r) = url.strip_prefix("https://") {
            format!("wss://{r}")
        } else if let Some(r) = url.strip_prefix("http://") {
            format!("ws://{r}")
        } else {
            return Err(DelegateError::Config(format!(
                "--manager '{url}' must start with http:// or https://"
            )));
        };
        Ok(format!("{rest}/api/v1/delegates/connect"))
    }
}

/// True when running in a pod: Kubernetes injects these.
pub fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
}
