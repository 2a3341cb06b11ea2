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

fn rows(items: &[Value]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|s| {
            vec![
                s["identifier"].as_str().unwrap_or_default().to_string(),
                s["name"].as_str().unwrap_or_default().to_string(),
                s["type"].as_str().unwrap_or_default().to_string(),
                time(s["lastModifiedAt"].as_i64()),
            ]
        })
        .collect()
}

const HEADERS: &[&str] = &["IDENTIFIER", "NAME", "TYPE", "UPDATED"];

pub async fn run(cmd: SecretCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        SecretCommand::Create {
            name,
            identifier,
            description,
            value_file,
            scope,
        } => {
            let value = read_value(value_file.as_ref())?;
            let body = strip_nulls(json!({
                "name": name, "identifier": identifier, "description": description, "value": value,
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
