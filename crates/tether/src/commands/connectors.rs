//! `tether connector`: apply connector files (the `connector:` YAML or JSON our
//! users already have), read, list, export and delete them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;
use tether_domain::{ConnectorDocument, Scope};

use super::client::{scope_path, ApiClient, Body, ScopeArgs};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Create or update a connector from a file (`-` for stdin).
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Show a connector with its connectivity status.
    Get {
        identifier: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List connectors of a scope.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Name or identifier contains this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
        /// ManualConfig or InheritFromDelegate.
        #[arg(long)]
        credential_type: Option<String>,
        /// ServiceAccount, UsernamePassword, ClientKeyCert or OpenIdConnect.
        #[arg(long)]
        auth_type: Option<String>,
        /// SUCCESS, FAILURE, PARTIAL, UNKNOWN or PENDING.
        #[arg(long)]
        status: Option<String>,
        /// name, created or updated.
        #[arg(long)]
        sort: Option<String>,
        #[arg(long, default_value_t = 0)]
        page: u32,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print a connector as the `connector:` YAML `apply` takes.
    Export {
        identifier: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a connector.
    Delete {
        identifier: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Turn a kubeconfig context with a static credential into secrets and a connector.
    ImportKubeconfig(super::cluster::ImportKubeconfigArgs),
    /// Run the connection test now and print the report. Exit code 0 for
    /// SUCCESS, 2 for PARTIAL (permissions missing), 1 for FAILURE.
    Test(super::connection_test::TestCommand),
    /// The connector's last connection test results, newest first.
    History(super::connection_test::HistoryCommand),
    /// Print a kubeconfig for the connector's cluster through tether, with a
    /// short-lived token limited to this connector (`kubectl --kubeconfig`).
    Kubeconfig(super::kube::KubeconfigArgs),
}

const HEADERS: &[&str] = &[
    "IDENTIFIER",
    "NAME",
    "CREDENTIAL",
    "AUTH",
    "STATUS",
    "LAST TESTED",
    "LAST CONNECTED",
];

fn row(r: &Value) -> Vec<String> {
    let c = &r["connector"];
    let cred = &c["spec"]["credential"];
    let s = &r["status"];
    vec![
        c["identifier"].as_str().unwrap_or_default().into(),
        c["name"].as_str().unwrap_or_default().into(),
        cred["type"].as_str().unwrap_or_default().into(),
        cred["spec"]["auth"]["type"].as_str().unwrap_or("-").into(),
        s["status"].as_str().unwrap_or("UNKNOWN").into(),
        time(s["testedAt"].as_i64()),
        time(s["lastConnectedAt"].as_i64()),
    ]
}

pub async fn run(cmd: ConnectorCommand) -> Result<ExitCode> {
    match cmd {
        ConnectorCommand::Test(t) => super::connection_test::test(t).await,
        ConnectorCommand::History(h) => super::connection_test::history(h)
            .await
            .map(|()| ExitCode::SUCCESS),
        ConnectorCommand::Kubeconfig(k) => {
            super::kube::kubeconfig(k).await.map(|()| ExitCode::SUCCESS)
        }
        other => run_other(other).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn run_other(cmd: ConnectorCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        ConnectorCommand::Apply { file } => apply(&client, &file).await,
        ConnectorCommand::Get {
            identifier,
            scope,
            output,
        } => {
            let path = format!("{}/connectors/{identifier}", scope_path(&scope.scope()?));
            let r: Value = client.json(Method::GET, &path, None, &[]).await?;
            print(output, &r, HEADERS, || vec![row(&r)])
        }
        ConnectorCommand::List {
            scope,
            search,
            credential_type,
            auth_type,
            status,
            sort,
            page,
            limit,
            output,
        } => {
            let path = format!("{}/connectors", scope_path(&scope.scope()?));
            let mut q = vec![("page", page.to_string())];
            for (k, v) in [
                ("search", search),
                ("credentialType", credential_type),
                ("authType", auth_type),
                ("status", status),
                ("sort", sort),
                ("limit", limit.map(|l| l.to_string())),
            ] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let page: Value = client.json(Method::GET, &path, None, &q).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            print(output, &page, HEADERS, || items.iter().map(row).collect())
        }
        ConnectorCommand::Export { identifier, scope } => {
            let path = format!("{}/connectors/{identifier}", scope_path(&scope.scope()?));
            let r: Value = client.json(Method::GET, &path, None, &[]).await?;
            let doc = serde_json::json!({ "connector": r["connector"] });
            print!("{}", serde_yaml::to_string(&doc)?);
            Ok(())
        }
        ConnectorCommand::Delete { identifier, scope } => {
            let path = format!("{}/connectors/{identifier}", scope_path(&scope.scope()?));
            client.send(Method::DELETE, &path, None, &[]).await?;
            println!("deleted connector {identifier}");
            Ok(())
        }
        ConnectorCommand::ImportKubeconfig(args) => super::cluster::import_kubeconfig(args).await,
        ConnectorCommand::Test(_)
        | ConnectorCommand::History(_)
        | ConnectorCommand::Kubeconfig(_) => {
            unreachable!("handled by run")
        }
    }
}

/// Reads the file, checks it locally (so a typo is reported before anything is
/// sent), then PUTs it by identifier, or POSTs it when the identifier is to be
/// derived from the name. The file goes over the wire as written.
async fn apply(client: &ApiClient, file: &PathBuf) -> Result<()> {
    let bytes = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let text =
        std::str::from_utf8(&bytes).map_err(|_| anyhow!("{} is not UTF-8 text", file.display()))?;
    let is_json = text.trim_start().starts_with('{');
    let doc: ConnectorDocument = if is_json {
        serde_json::from_str(text)
            .with_context(|| format!("{} is not a connector document", file.display()))?
    } else {
        serde_yaml::from_str(text)
            .with_context(|| format!("{} is not a connector document", file.display()))?
    };
    let c = &doc.connector;
    let scope = Scope::from_parts(c.org_identifier.as_deref(), c.project_identifier.as_deref())
        .map_err(|e| anyhow!(e))?;
    let content_type = if is_json {
        "application/json"
    } else {
        "application/yaml"
    };
    let body = Some(Body::Raw {
        bytes,
        content_type,
    });
    let base = format!("{}/connectors", scope_path(&scope));
    let (status, resp) = match &c.identifier {
        Some(id) => {
            client
                .send(Method::PUT, &format!("{base}/{id}"), body, &[])
                .await?
        }
        None => client.send(Method::POST, &base, body, &[]).await?,
    };
    let r: Value = serde_json::from_slice(&resp)?;
    let verb = if status == reqwest::StatusCode::CREATED {
        "created"
    } else {
        "configured"
    };
    println!(
        "connector/{} {verb}",
        r["connector"]["identifier"].as_str().unwrap_or_default()
    );
    Ok(())
}
