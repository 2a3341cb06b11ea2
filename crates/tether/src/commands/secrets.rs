//! `tether secret`: values come from stdin or a file, never from the command
//! line, where they would land in shell history and `ps` output.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{scope_path, ApiClient, Body, ScopeArgs};
use super::orgs::strip_nulls;
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a text secret; the value is read from --value-file or stdin.
    Create {
        /// Display name (the identifier is derived from it unless given).
        #[arg(long)]
        name: String,
        #[arg(long)]
        identifier: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// File holding the value (`-` or absent: stdin). A trailing newline is dropped.
        #[arg(long)]
        value_file: Option<PathBuf>,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Change a secret: name, description, value, use grants, allowed hosts.
    /// What is not given stays as it is.
    Update {
        identifier: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A new value from this file (`-`: stdin). Without it the value stays.
        #[arg(long)]
        value_file: Option<PathBuf>,
        #[command(flatten)]
        access: AccessArgs,
        /// Remove every use grant: only connectors of the secret's own scope use it.
        #[arg(long, conflicts_with = "usable_from")]
        no_usable_from: bool,
        /// Remove the host binding: the value may go to any host.
        #[arg(long, conflicts_with = "allowed_hosts")]
        no_allowed_hosts: bool,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List secrets (never their values).
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long)]
        search: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a secret's metadata.
    Get {
        identifier: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a secret no connector references.
    Delete {
        identifier: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

/// Who may use a secret, and where its value may go.
#[derive(Debug, Clone, clap::Args)]
pub struct AccessArgs {
    /// A scope whose connectors may use the secret besides its own: `account`,
    /// `org/<org>` (the org and its projects) or `project/<org>/<project>`.
    /// Repeat for several; on update the list replaces the current one.
    /// Delegates of these scopes receive the value when they run a test.
    #[arg(long = "usable-from", value_name = "SCOPE")]
    usable_from: Vec<String>,
    /// A host the value may be sent to (`10.0.0.1:6443`, `api.example.com`,
    /// `*.example.com`): connectors using the secret must dial only these.
    /// Repeat for several; on update the list replaces the current one.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
}

fn read_value(file: Option<&PathBuf>) -> Result<String> {
    let mut value = String::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            value = std::fs::read_to_string(p)
                .with_context(|| format!("reading the secret value from {}", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the secret value from stdin")?;
        }
    }
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!("the secret value is empty: pipe it on stdin or give --value-file");
    }
    Ok(value)
}

/// `a, b`, or `-` for an empty list.
fn list_cell(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

fn rows(items: &[Value]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|s| {
            vec![
                s["identifier"].as_str().unwrap_or_default().to_string(),
                s["name"].as_str().unwrap_or_default().to_string(),
                s["type"].as_str().unwrap_or_default().to_string(),
                list_cell(&s["usableFrom"]),
                list_cell(&s["allowedHosts"]),
                time(s["lastModifiedAt"].as_i64()),
            ]
        })
        .collect()
}

const HEADERS: &[&str] = &[
    "IDENTIFIER",
    "NAME",
    "TYPE",
    "USABLE FROM",
    "ALLOWED HOSTS",
    "UPDATED",
];

pub async fn run(cmd: SecretCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        SecretCommand::Create {
            name,
            identifier,
            description,
            value_file,
            access,
            scope,
        } => {
            let value = read_value(value_file.as_ref())?;
            let body = strip_nulls(json!({
                "name": name, "identifier": identifier, "description": description, "value": value,
                "usableFrom": access.usable_from, "allowedHosts": access.allowed_hosts,
            }));
            let path = format!("{}/secrets", scope_path(&scope.scope()?));
            let created: Value = client
                .json(Method::POST, &path, Some(Body::Json(body)), &[])
                .await?;
            println!(
                "created secret {}",
                created["identifier"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        SecretCommand::Update {
            identifier,
            name,
            description,
            value_file,
            access,
            no_usable_from,
            no_allowed_hosts,
            scope,
        } => {
            let path = format!("{}/secrets/{identifier}", scope_path(&scope.scope()?));
            let current: Value = client.json(Method::GET, &path, None, &[]).await?;
            let mut body = json!({
                "name": name.as_deref().or(current["name"].as_str()),
                "description": description.as_deref().or(current["description"].as_str()),
                "tags": current["tags"],
            });
            if value_file.is_some() {
                body["value"] = json!(read_value(value_file.as_ref())?);
            }
            if no_usable_from || !access.usable_from.is_empty() {
                body["usableFrom"] = json!(access.usable_from);
            }
            if no_allowed_hosts || !access.allowed_hosts.is_empty() {
                body["allowedHosts"] = json!(access.allowed_hosts);
            }
            let updated: Value = client
                .json(Method::PUT, &path, Some(Body::Json(strip_nulls(body))), &[])
                .await?;
            println!(
                "updated secret {identifier}: usable from {} besides its own scope; allowed hosts: {}",
                match list_cell(&updated["usableFrom"]).as_str() {
                    "-" => "no other scope".to_string(),
                    l => l.to_string(),
                },
                match list_cell(&updated["allowedHosts"]).as_str() {
                    "-" => "any".to_string(),
                    l => l.to_string(),
                }
            );
            Ok(())
        }
        SecretCommand::List {
            scope,
            search,
            output,
        } => {
            let path = format!("{}/secrets", scope_path(&scope.scope()?));
            let mut query = vec![("limit", "1000".to_string())];
            if let Some(s) = search {
                query.push(("search", s));
            }
            let page: Value = client.json(Method::GET, &path, None, &query).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            print(output, &page, HEADERS, || rows(&items))
        }
        SecretCommand::Get {
            identifier,
            scope,
            output,
        } => {
            let path = format!("{}/secrets/{identifier}", scope_path(&scope.scope()?));
            let s: Value = client.json(Method::GET, &path, None, &[]).await?;
            print(output, &s, HEADERS, || rows(std::slice::from_ref(&s)))
        }
        SecretCommand::Delete { identifier, scope } => {
            let path = format!("{}/secrets/{identifier}", scope_path(&scope.scope()?));
            client.send(Method::DELETE, &path, None, &[]).await?;
            println!("deleted secret {identifier}");
            Ok(())
        }
    }
}
