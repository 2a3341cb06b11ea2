//! `tether delegate`: run one, install one, list them, manage their tokens;
//! `tether task get`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use tether_kube::onboarding::delegate_manifest::{self as manifest, Permissions};

use super::client::{scope_path, ApiClient, Body, ScopeArgs};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum DelegateCommand {
    /// Run a delegate: dial out to the manager and run the tasks it hands over.
    Run(RunArgs),
    /// Print the Kubernetes YAML that installs a delegate (and the docker line).
    Manifest(ManifestArgs),
    /// List the delegates of a scope.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show one delegate, by name or id.
    Get {
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delegate tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a delegate token for a scope; its value is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List the delegate tokens of a scope.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Revoke a delegate token: its delegates are disconnected at once.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The manager's URL, e.g. https://tether.example.com.
    #[arg(long, env = "TETHER_MANAGER_URL")]
    manager: String,
    /// The delegate token (prefer the environment variable or --token-file:
    /// command lines are visible to other users of the machine).
    #[arg(
        long,
        env = "TETHER_DELEGATE_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// File holding the delegate token.
    #[arg(long, env = "TETHER_DELEGATE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Unique name of this delegate in its scope (default: the hostname).
    #[arg(long, env = "TETHER_DELEGATE_NAME")]
    name: Option<String>,
    /// Tags that connectors select delegates by.
    #[arg(long, env = "TETHER_DELEGATE_TAGS", value_delimiter = ',')]
    tags: Vec<String>,
    /// Kubeconfig for InheritFromDelegate connectors when not running in a cluster.
    #[arg(long, env = "TETHER_DELEGATE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// A private CA (PEM) to trust for an https manager URL.
    #[arg(long, env = "TETHER_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Tasks run at once.
    #[arg(long, env = "TETHER_DELEGATE_CAPACITY", default_value_t = 4)]
    capacity: u32,
    /// Serve /healthz and /readyz here (e.g. 0.0.0.0:8081).
    #[arg(long, env = "TETHER_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
    /// How long running tasks may take to finish after SIGTERM.
    #[arg(long, env = "TETHER_GRACE_PERIOD", default_value = "30s", value_parser = humantime::parse_duration)]
    grace_period: Duration,
    /// First reconnect delay ceiling; it doubles up to --max-backoff.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration, hide = true)]
    min_backoff: Duration,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    max_backoff: Duration,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "tether-delegate")]
    namespace: String,
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// What the delegate may do in its cluster.
    #[arg(long, default_value = "namespace-admin", value_parser = |s: &str| s.parse::<Permissions>())]
    permissions: Permissions,
    /// The manager URL the delegate dials (default: TETHER_URL).
    #[arg(long)]
    manager: Option<String>,
    /// Use this delegate token instead of creating one through the API.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The delegate's image; the default is what `scripts/image` builds.
    #[arg(long, default_value = tether_kube::onboarding::delegate_manifest::DEFAULT_IMAGE)]
    image: String,
    #[arg(long, default_value_t = 4)]
    capacity: u32,
    #[command(flatten)]
    scope: ScopeArgs,
}

impl DelegateCommand {
    pub fn is_run(&self) -> bool {
        matches!(self, DelegateCommand::Run(_))
    }
}

pub async fn run(cmd: DelegateCommand) -> Result<ExitCode> {
    match cmd {
        DelegateCommand::Run(args) => return run_delegate(args).await,
        DelegateCommand::Manifest(args) => manifest_cmd(args).await?,
        DelegateCommand::List { scope, output } => {
            let client = ApiClient::from_env()?;
            let path = format!("{}/delegates", scope_path(&scope.scope()?));
            let items: Vec<Value> = client.json(Method::GET, &path, None, &[]).await?;
            print(output, &items, HEADERS, || items.iter().map(row).collect())?;
        }
        DelegateCommand::Get {
            name,
            scope,
            output,
        } => {
            let client = ApiClient::from_env()?;
            let path = format!("{}/delegates/{name}", scope_path(&scope.scope()?));
            let d: Value = client.json(Method::GET, &path, None, &[]).await?;
            print(output, &d, HEADERS, || vec![row(&d)])?;
        }
        DelegateCommand::Token(t) => token(t).await?,
    }
    Ok(ExitCode::SUCCESS)
}

const HEADERS: &[&str] = &[
    "NAME",
    "STATUS",
    "TAGS",
    "VERSION",
    "RUNNING",
    "LAST HEARTBEAT",
    "HOST",
];

fn row(d: &Value) -> Vec<String> {
    let status = match (d["connected"].as_bool(), d["draining"].as_bool()) {
        (Some(true), Some(true)) => "draining",
        (Some(true), _) => "connected",
        _ => "disconnected",
    };
    let tags: Vec<&str> = d["tags"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    vec![
        d["name"].as_str().unwrap_or_default().into(),
        status.into(),
        tags.join(","),
        d["version"].as_str().unwrap_or_default().into(),
        format!("{}/{}", d["runningTasks"], d["capacity"]),
        time(d["lastHeartbeat"].as_i64()),
        d["hostname"].as_str().unwrap_or_default().into(),
    ]
}

async fn token(cmd: TokenCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        TokenCommand::Create { name, scope } => {
            let v = create_token(&client, &name, &scope).await?;
            println!("{v}");
        }
        TokenCommand::List { scope, output } => {
            let path = format!("{}/delegate-tokens", scope_path(&scope.scope()?));
            let items: Vec<Value> = client.json(Method::GET, &path, None, &[]).await?;
            print(
                output,
                &items,
                &["ID", "NAME", "CREATED", "REVOKED"],
                || {
                    items
                        .iter()
                        .map(|t| {
                            vec![
                                t["id"].as_str().unwrap_or_default().into(),
                                t["name"].as_str().unwrap_or_default().into(),
                                time(t["createdAt"].as_i64()),
                                time(t["revokedAt"].as_i64()),
                            ]
                        })
                        .collect()
                },
            )?;
        }
        TokenCommand::Revoke { id } => {
            client
                .send(
                    Method::DELETE,
                    &format!("/api/v1/delegate-tokens/{id}"),
                    None,
                    &[],
                )
                .await?;
            println!("revoked delegate token {id}; its delegates are disconnected");
        }
    }
    Ok(())
}

async fn create_token(client: &ApiClient, name: &str, scope: &ScopeArgs) -> Result<String> {
    let path = format!("{}/delegate-tokens", scope_path(&scope.scope()?));
    let v: Value = client
        .json(
            Method::POST,
            &path,
            Some(Body::Json(json!({ "name": name }))),
            &[],
        )
        .await?;
    eprintln!(
        "created delegate token {} ({name}); its value is shown once",
        v["token"]["id"].as_str().unwrap_or_default()
    );
    v["value"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the manager returned no token value"))
}

async fn manifest_cmd(a: ManifestArgs) -> Result<()> {
    let manager = match a
        .manager
        .clone()
        .or_else(|| std::env::var("TETHER_URL").ok())
    {
        Some(m) => m,
        None => bail!("give --manager URL (the address delegates dial), or set TETHER_URL"),
    };
    let token = match &a.token_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim()
            .to_string(),
        None => {
            create_token(
                &ApiClient::from_env()?,
                &format!("delegate {}", a.name),
                &a.scope,
            )
            .await?
        }
    };
    let req = manifest::ManifestRequest {
        name: a.name,
        namespace: a.namespace,
        tags: a.tags,
        permissions: a.permissions,
        manager_url: manager,
        token,
        image: a.image,
        capacity: a.capacity,
    };
    print!("{}", manifest::to_yaml(&manifest::objects(&req)));
    eprintln!(
        "\n# Or run it outside Kubernetes (export TETHER_DELEGATE_TOKEN first):\n{}",
        manifest::docker_run(&req)
    );
    Ok(())
}

async fn run_delegate(a: RunArgs) -> Result<ExitCode> {
    super::server::init_logging();
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => {
            bail!("give the delegate token with TETHER_DELEGATE_TOKEN, --token-file or --token")
        }
    };
    let ca_pem = a
        .ca_file
        .as_ref()
        .map(|f| {
            std::fs::read_to_string(f).with_context(|| format!("reading --ca-file {}", f.display()))
        })
        .transpose()?;
    let name = a.name.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "delegate".into())
    });
    let config = tether_delegate::DelegateConfig {
        manager_url: a.manager,
        token: secrecy::SecretString::from(token.trim().to_string()),
        name,
        tags: a
            .tags
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        capacity: a.capacity.max(1),
        ca_pem,
        kubeconfig: a.kubeconfig,
        health_listen: a.health_listen,
        grace_period: a.grace_period,
        backoff: tether_delegate::backoff::Backoff {
            base: a.min_backoff,
            cap: a.max_backoff,
        },
    };
    tether_delegate::run(config, super::server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Show a task: state, attempts, the delegate that ran it, its output.
    Get {
        id: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print a task's events as they happen, until it is finished (all of
    /// them for a finished task). Exit code 1 when the task failed.
    Events {
        id: String,
        /// `json`: one JSON object per line.
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Cancel a task: a queued one fails at once, a running one is ended by
    /// its delegate (a build deletes its objects first).
    Cancel { id: String },
}

pub async fn task(cmd: TaskCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        TaskCommand::Events { id, output } => {
            let end = super::events::follow_task(&client, &id, output, |_| {}).await?;
            match end["state"].as_str() {
                Some("succeeded") => Ok(()),
                _ => anyhow::bail!(
                    "task {id} {}: {}",
                    end["state"].as_str().unwrap_or("ended"),
                    end["error"].as_str().unwrap_or("see `tether task get`")
                ),
            }
        }
        TaskCommand::Cancel { id } => {
            let t: Value = client
                .json(
                    Method::POST,
                    &format!("/api/v1/tasks/{id}/cancel"),
                    None,
                    &[],
                )
                .await?;
            println!(
                "task {id}: {}",
                match t["state"].as_str() {
                    Some("assigned") =>
                        "its delegate was asked to cancel it; follow it with `tether task events`",
                    Some("failed") | Some("succeeded") => "finished",
                    _ => "cancel requested",
                }
            );
            Ok(())
        }
        TaskCommand::Get { id, output } => {
            let t: Value = client
                .json(Method::GET, &format!("/api/v1/tasks/{id}"), None, &[])
                .await?;
            print(
                output,
                &t,
                &[
                    "ID", "KIND", "STATE", "ATTEMPT", "DELEGATE", "UPDATED", "ERROR",
                ],
                || {
                    vec![vec![
                        t["id"].as_str().unwrap_or_default().into(),
                        t["kind"].as_str().unwrap_or_default().into(),
                        t["state"].as_str().unwrap_or_default().into(),
                        format!("{}/{}", t["attempt"], t["maxAttempts"]),
                        t["delegateId"].as_str().unwrap_or("-").into(),
                        time(t["updatedAt"].as_i64()),
                        t["error"].as_str().unwrap_or("").into(),
                    ]]
                },
            )
        }
    }
}
