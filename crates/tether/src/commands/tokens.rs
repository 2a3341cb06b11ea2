//! `tether token` and `tether login`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{config_path, scope_path, ApiClient, Body, ClientConfig, ScopeArgs};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a scope and role; its value is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
        /// May use the Kubernetes API of the scope's connectors (`/k8s/...`).
        #[arg(long)]
        kube_access: bool,
        /// The token stops working after this long (e.g. 8h); default never.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List the API tokens of a scope (never their values).
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The manager, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// File holding the token (absent: read from stdin).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

pub async fn run(cmd: TokenCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        TokenCommand::Create {
            name,
            role,
            kube_access,
            ttl,
            scope,
        } => {
            let path = format!("{}/tokens", scope_path(&scope.scope()?));
            let mut body = json!({"name": name, "role": role, "kubeAccess": kube_access});
            if let Some(t) = ttl {
                body["ttlSeconds"] = json!(t.as_secs().max(1));
            }
            let created: Value = client
                .json(Method::POST, &path, Some(Body::Json(body)), &[])
                .await?;
            eprintln!(
                "created token {} ({}); its value is shown once:",
                created["token"]["id"].as_str().unwrap_or_default(),
                created["token"]["role"].as_str().unwrap_or_default()
            );
            println!("{}", created["value"].as_str().unwrap_or_default());
            Ok(())
        }
        TokenCommand::List { scope, output } => {
            let path = format!("{}/tokens", scope_path(&scope.scope()?));
            let items: Vec<Value> = client.json(Method::GET, &path, None, &[]).await?;
            print(
                output,
                &items,
                &["ID", "NAME", "ROLE", "CREATED", "REVOKED"],
                || {
                    items
                        .iter()
                        .map(|t| {
                            vec![
                                t["id"].as_str().unwrap_or_default().into(),
                                t["name"].as_str().unwrap_or_default().into(),
                                t["role"].as_str().unwrap_or_default().into(),
                                time(t["createdAt"].as_i64()),
                                time(t["revokedAt"].as_i64()),
                            ]
                        })
                        .collect()
                },
            )
        }
        TokenCommand::Revoke { id } => {
            client
                .send(Method::DELETE, &format!("/api/v1/tokens/{id}"), None, &[])
                .await?;
            println!("revoked token {id}");
            Ok(())
        }
    }
}

/// Checks the token against the manager, then saves URL and token (mode 0600).
pub async fn login(args: LoginArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
            t
        }
    };
    let token = token.trim().to_string();
    let client = ApiClient::new(&args.url, &token)?;
    let me: Value = client
        .json(Method::GET, "/api/v1/whoami", None, &[])
        .await?;
    let path = config_path();
    let text = serde_yaml::to_string(&ClientConfig {
        url: args.url.clone(),
        token,
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
    }
    println!(
        "logged in to {} as token '{}' ({}); saved to {}",
        args.url,
        me["name"].as_str().unwrap_or_default(),
        me["role"].as_str().unwrap_or_default(),
        path.display()
    );
    Ok(())
}
