//! `tether cluster`: onboarding a cluster with the operator's own kubeconfig,
//! used once, on the operator's machine.
//!
//! - `add`: a service account with one profile's permissions, its token and the
//!   cluster's CA stored as tether secrets, a connector, and the connection test;
//! - `remove`: everything `add` created, in the cluster and in tether;
//! - `rotate-token`: a new token, stored, tested, then the old one deleted;
//! - `token`: print a usable token of an existing service account.
//!
//! What `add` created is written down in the connector's tags ([`TAG_CLUSTER_ADD`],
//! [`TAG_SERVICE_ACCOUNT`], ...) and in the tags of the secrets it stored
//! ([`SECRET_TAG_CONNECTOR`]), so `remove` and `rotate-token` find it again and
//! never touch what they did not create.
//!
//! `connector import-kubeconfig` lives here too (see [`import`]): it shares the
//! secret and connector handling.

mod add;
mod import;
mod kubeconfig;
mod manager;
mod progress;
mod remove;
mod rotate;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use tether_domain::{derive_identifier, validate_identifier, validate_name};

use super::client::ScopeArgs;
use super::rbac::{ProfileArg, DEFAULT_NAMESPACE};

pub use import::{import_kubeconfig, ImportKubeconfigArgs};

/// On a connector `cluster add` created: `"true"`.
pub const TAG_CLUSTER_ADD: &str = "tether.dev/cluster-add";
/// The service account the connector authenticates as: `namespace/name`.
pub const TAG_SERVICE_ACCOUNT: &str = "tether.dev/service-account";
/// The profile granted to it.
pub const TAG_PROFILE: &str = "tether.dev/profile";
/// The token Secret (in the account's namespace) the stored token comes from.
pub const TAG_TOKEN_SECRET: &str = "tether.dev/token-secret";
/// The lifetime asked of the TokenRequest API (`3600s`), when the token expires.
pub const TAG_TOKEN_TTL: &str = "tether.dev/token-ttl";
/// When the stored token expires (RFC 3339), for TokenRequest tokens.
pub const TAG_TOKEN_EXPIRES: &str = "tether.dev/token-expires-at";
/// `"true"` when `add` created the account's namespace (which `remove` keeps).
pub const TAG_CREATED_NAMESPACE: &str = "tether.dev/created-namespace";
/// On a connector `connector import-kubeconfig` created: the context imported.
pub const TAG_IMPORTED: &str = "tether.dev/imported-from-context";
/// On a secret `add` or `import-kubeconfig` stored: the connector it belongs to.
pub const SECRET_TAG_CONNECTOR: &str = "tether.dev/connector";
/// On such a secret: `cluster-add` or `import-kubeconfig`.
pub const SECRET_TAG_CREATED_BY: &str = "tether.dev/created-by";

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Onboard a cluster: service account, RBAC and token from your kubeconfig,
    /// stored in tether as secrets and a connector, then tested.
    Add(AddArgs),
    /// Delete what `cluster add` created, in the cluster and in tether.
    Remove(RemoveArgs),
    /// Give a connector made by `cluster add` a new token and retire the old one.
    RotateToken(RotateArgs),
    /// Print a usable token of an existing service account (stdout, nothing else).
    Token(TokenArgs),
}

/// Which kubeconfig and context reach the cluster: the operator's own.
#[derive(Debug, Clone, Args, Default)]
pub struct KubeconfigArgs {
    /// Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig (default: its current-context).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    /// Display name of the connector.
    #[arg(long)]
    pub name: String,
    /// Connector identifier (default: derived from the name). The service account
    /// is `tether-<identifier>`, the secrets `<identifier>_token` and `<identifier>_ca`.
    #[arg(long)]
    pub identifier: Option<String>,
    /// What the service account may do.
    #[arg(long, value_enum, default_value = "deployments")]
    pub profile: ProfileArg,
    /// Namespace of the service account and its token Secret; created when missing.
    /// kube-system by default: it exists in every cluster, and usually only cluster
    /// administrators may read its Secrets.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Where the account may act (repeatable). Without it, deployments and builds
    /// are granted cluster-wide; namespace-admin needs at least one.
    #[arg(long = "target-namespace", value_name = "NS")]
    pub target_namespaces: Vec<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Delegates that may use the connector (comma-separated tags; default: any).
    #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
    pub delegate_selectors: Vec<String>,
    /// Store a token that expires after this long (e.g. 24h, at least 10m), from
    /// the TokenRequest API, instead of the long-lived token of a token Secret.
    /// Run `tether cluster rotate-token` before it expires.
    #[arg(long, value_name = "DURATION")]
    pub token_ttl: Option<String>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The connector's name or identifier.
    pub name: String,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Delete in the cluster even though the kubeconfig's server URL differs from
    /// the connector's (the same cluster reached by another address).
    #[arg(long)]
    pub ignore_server_mismatch: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The connector's name or identifier.
    pub name: String,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Use the kubeconfig even though its server URL differs from the connector's.
    #[arg(long)]
    pub ignore_server_mismatch: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The service account.
    #[arg(long)]
    pub service_account: String,
    /// Its namespace.
    #[arg(short = 'n', long)]
    pub namespace: String,
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    /// Ask the TokenRequest API for a token valid this long (e.g. 1h, at least
    /// 10m) instead of reading the account's token Secret.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
}

pub async fn run(cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Add(args) => add::run(args).await,
        ClusterCommand::Remove(args) => remove::run(args).await,
        ClusterCommand::RotateToken(args) => rotate::run(args).await,
        ClusterCommand::Token(args) => token(args).await,
    }
}

/// `cluster token`: the token goes to stdout (that is the command's job), where
/// it came from to stderr.
async fn token(args: TokenArgs) -> Result<()> {
    use tether_kube::onboarding::{service_account_token, TokenSource};
    let ttl = args.ttl.as_deref().map(parse_duration).transpose()?;
    let cluster = kubeconfig::connect(&args.kube).await?;
    let outcome =
        service_account_token(&cluster.client, &args.namespace, &args.service_account, ttl).await?;
    match &outcome.source {
        TokenSource::Secret { name } => eprintln!(
            "token of service account {}/{} from Secret {}/{name} (valid until the Secret is deleted)",
            args.namespace, args.service_account, args.namespace
        ),
        TokenSource::TokenRequest { expires_at } => eprintln!(
            "token of service account {}/{} from the TokenRequest API, expires {}",
            args.namespace,
            args.service_account,
            expires_at
                .map(|t| format!("at {t}"))
                .unwrap_or_else(|| "when the API server decides".into())
        ),
    }
    println!("{}", secrecy::ExposeSecret::expose_secret(&outcome.token));
    Ok(())
}

/// The connector identifier: `--identifier`, else derived from the name the way
/// the manager derives it (without the `_2` suffix for a taken one: running a
/// command again must find the same connector).
fn connector_identifier(name: &str, identifier: Option<&str>) -> Result<String> {
    validate_name(name).map_err(|e| anyhow!("--name: {e}"))?;
    match identifier {
        Some(id) => {
            validate_identifier(id).map_err(|e| anyhow!("--identifier: {e}"))?;
            Ok(id.to_string())
        }
        None => Ok(derive_identifier(name, "cluster", |_| false)),
    }
}

/// The identifier of one of a connector's secrets: `<connector>_<what>`.
fn secret_identifier(connector: &str, what: &str) -> Result<String> {
    let id = format!("{connector}_{what}");
    validate_identifier(&id).map_err(|e| {
        anyhow!("the secret identifier '{id}' derived from the connector identifier is not valid ({e}): choose a shorter --identifier")
    })?;
    Ok(id)
}

/// `tether-<identifier>` as a Kubernetes name: lowercase, `_`/`$` as `-`, at most
/// 63 characters (tether labels objects with it).
fn service_account_name(identifier: &str) -> String {
    let mut name = String::from("tether-");
    for c in identifier.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// `30m`, `1h`, `1h30m`, `2d`, `90s`.
fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        anyhow!("'{text}' is not a duration: write a number with a unit, e.g. 30m, 24h or 1h30m (units: s, m, h, d)")
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `namespace/name` from [`TAG_SERVICE_ACCOUNT`].
fn parse_account_tag(value: &str) -> Result<(String, String)> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => bail!(
            "the connector's tag {TAG_SERVICE_ACCOUNT} is '{value}', not 'namespace/name': was it edited by hand? Restore it, or run `tether cluster add` again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "10", "h", "1x", "0m", "1h30"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains("e.g. 30m"), "{bad}: {err}");
        }
    }

    #[test]
    fn service_account_names_are_kubernetes_names() {
        assert_eq!(service_account_name("prod_cluster"), "tether-prod-cluster");
        assert_eq!(service_account_name("_Edge$1"), "tether-edge-1");
        let long = service_account_name(&"a".repeat(100));
        assert_eq!(long.len(), 63);
        assert_eq!(
            service_account_name(&format!("{}_b", "a".repeat(55))).len(),
            62
        );
    }

    #[test]
    fn identifiers_follow_the_manager() {
        assert_eq!(
            connector_identifier("Prod cluster", None).unwrap(),
            "Prod_cluster"
        );
        assert_eq!(connector_identifier("x", Some("my_id")).unwrap(), "my_id");
        assert!(connector_identifier("x", Some("1bad")).is_err());
        assert!(connector_identifier("bad!", None).is_err());
        assert_eq!(secret_identifier("prod", "ca").unwrap(), "prod_ca");
        assert!(secret_identifier(&"a".repeat(125), "token").is_err());
    }
}
