//! `tether org` and `tether project`.

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{ApiClient, Body};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org (the identifier is derived from the name unless given).
    Create {
        name: String,
        #[arg(long)]
        identifier: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the orgs this token can see.
    List {
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete an empty org.
    Delete { identifier: String },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project in an org.
    Create {
        name: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        identifier: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the projects of an org.
    List {
        #[arg(long)]
        org: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete an empty project.
    Delete {
        identifier: String,
        #[arg(long)]
        org: String,
    },
}

fn rows(items: &[Value]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|o| {
            vec![
                o["identifier"].as_str().unwrap_or_default().to_string(),
                o["name"].as_str().unwrap_or_default().to_string(),
                time(o["createdAt"].as_i64()),
            ]
        })
        .collect()
}

async fn create(
    client: &ApiClient,
    path: &str,
    name: String,
    identifier: Option<String>,
    description: Option<String>,
) -> Result<()> {
    let body = json!({"name": name, "identifier": identifier, "description": description});
    let created: Value = client
        .json(Method::POST, path, Some(Body::Json(strip_nulls(body))), &[])
        .await?;
    println!(
        "created {}",
        created["identifier"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Drops `null` members so optional fields are simply absent.
pub fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, v| !v.is_null());
    }
    v
}

pub async fn run_org(cmd: OrgCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        OrgCommand::Create {
            name,
            identifier,
            description,
        } => create(&client, "/api/v1/orgs", name, identifier, description).await,
        OrgCommand::List { output } => {
            let items: Vec<Value> = client.json(Method::GET, "/api/v1/orgs", None, &[]).await?;
            print(output, &items, &["IDENTIFIER", "NAME", "CREATED"], || {
                rows(&items)
            })
        }
        OrgCommand::Delete { identifier } => {
            client
                .send(
                    Method::DELETE,
                    &format!("/api/v1/orgs/{identifier}"),
                    None,
                    &[],
                )
                .await?;
            println!("deleted org {identifier}");
            Ok(())
        }
    }
}

pub async fn run_project(cmd: ProjectCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    match cmd {
        ProjectCommand::Create {
            name,
            org,
            identifier,
            description,
        } => {
            create(
                &client,
                &format!("/api/v1/orgs/{org}/projects"),
                name,
                identifier,
                description,
            )
            .await
        }
        ProjectCommand::List { org, output } => {
            let items: Vec<Value> = client
                .json(
                    Method::GET,
                    &format!("/api/v1/orgs/{org}/projects"),
                    None,
                    &[],
                )
                .await?;
            print(output, &items, &["IDENTIFIER", "NAME", "CREATED"], || {
                rows(&items)
            })
        }
        ProjectCommand::Delete { identifier, org } => {
            client
                .send(
                    Method::DELETE,
                    &format!("/api/v1/orgs/{org}/projects/{identifier}"),
                    None,
                    &[],
                )
                .await?;
            println!("deleted project {org}/{identifier}");
            Ok(())
        }
    }
}
