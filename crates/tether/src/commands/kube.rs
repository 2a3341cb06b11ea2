//! `tether connector kubeconfig` (a kubeconfig for a connector's cluster
//! through tether) and `tether audit list` (who did what through it).

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{scope_path, ApiClient, ScopeArgs};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    identifier: String,
    #[command(flatten)]
    scope: ScopeArgs,
    /// Life of the kubeconfig's token (at most 7 days).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
}

pub async fn kubeconfig(args: KubeconfigArgs) -> Result<()> {
    let client = ApiClient::from_env()?;
    let path = format!(
        "{}/connectors/{}/kubeconfig",
        scope_path(&args.scope.scope()?),
        args.identifier
    );
    let created: Value = client
        .json(
            Method::POST,
            &path,
            None,
            &[("ttlSeconds", args.ttl.as_secs().max(1).to_string())],
        )
        .await?;
    let name = format!("tether-{}", args.identifier);
    let server = format!(
        "{}{}",
        client.base_url(),
        created["serverPath"].as_str().unwrap_or_default()
    );
    let mut cluster = json!({ "server": server });
    if let Some(ca) = created["certificateAuthority"].as_str() {
        use base64::Engine as _;
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": created["value"]}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    });
    eprintln!(
        "kubeconfig for connector {} through {}; its token expires {}",
        args.identifier,
        client.base_url(),
        time(created["token"]["expiresAt"].as_i64())
    );
    print!("{}", serde_yaml::to_string(&config)?);
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Proxied Kubernetes requests of a scope's connectors, newest first.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        connector: Option<String>,
        /// A token name.
        #[arg(long)]
        caller: Option<String>,
        /// Only entries newer than this (e.g. 1h, 2days).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only entries with this HTTP status.
        #[arg(long)]
        status: Option<u16>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

pub async fn audit(cmd: AuditCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    let AuditCommand::List {
        scope,
        connector,
        caller,
        since,
        status,
        limit,
        output,
    } = cmd;
    let mut query = vec![("limit", limit.to_string())];
    if let Some(c) = connector {
        query.push(("connector", c));
    }
    if let Some(c) = caller {
        query.push(("caller", c));
    }
    if let Some(s) = since {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        query.push(("since", (now - s.as_millis() as i64).to_string()));
    }
    if let Some(s) = status {
        query.push(("status", s.to_string()));
    }
    let path = format!("{}/audit", scope_path(&scope.scope()?));
    let list: Value = client.json(Method::GET, &path, None, &query).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    print(
        output,
        &items,
        &[
            "STARTED",
            "CALLER",
            "CONNECTOR",
            "VERB",
            "NAMESPACE",
            "RESOURCE",
            "NAME",
            "TARGET",
            "STATUS",
            "MS",
            "IN",
            "OUT",
            "DELEGATE",
            "ERROR",
        ],
        || {
            items
                .iter()
                .map(|e| {
                    vec![
                        time(e["startedAt"].as_i64()),
                        s(&e["caller"]),
                        s(&e["connector"]),
                        s(&e["verb"]),
                        s(&e["namespace"]),
                        s(&e["resource"]),
                        s(&e["name"]),
                        target(e),
                        e["status"].to_string(),
                        e["durationMs"].to_string(),
                        e["bytesIn"].to_string(),
                        e["bytesOut"].to_string(),
                        s(&e["delegateId"]),
                        s(&e["error"]),
                    ]
                })
                .collect()
        },
    )
}

/// What a session reached: `container app, program sh`, `ports 8080`; `-`
/// for a plain request.
fn target(e: &Value) -> String {
    let parts: Vec<String> = [
        ("container", &e["container"]),
        ("program", &e["program"]),
        ("ports", &e["ports"]),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k} {v}")))
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}
