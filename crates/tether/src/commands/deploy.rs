//! `tether deploy apply|history|rollback`: deploys through a connector. The
//! manifests (files, or directories of `*.yaml`, `*.yml`, `*.json`) go to the
//! manager, which queues a `deploy` task for a delegate chosen by the
//! connector's selectors; the task's events are printed as they happen
//! (`-o json`: JSON lines, then the report), then the report. Exit code 0:
//! deployed and steady (or a dry run that passed); 1: failed; 2: refused by
//! pre-flight, nothing changed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{scope_path, ApiClient, Body, ScopeArgs};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Deploy manifests: pre-flight, server-side apply, steady state.
    Apply(ApplyArgs),
    /// The releases deployed through a connector.
    History(HistoryArgs),
    /// Deploy an earlier release's manifests again, as a new release.
    Rollback(RollbackArgs),
}

#[derive(Debug, Args)]
pub struct Target {
    /// The connector to deploy through.
    #[arg(long)]
    connector: String,
    #[command(flatten)]
    scope: ScopeArgs,
    /// Namespace of objects that name none, and of the release record.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    target: Target,
    /// Manifest files or directories (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Release name (default: the first object's name).
    #[arg(long)]
    release: Option<String>,
    /// Delete what the previous release of this name had and this one has not.
    #[arg(long)]
    prune: bool,
    /// Limit for applying and reaching steady state.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Run pre-flight only; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Take over fields another field manager owns.
    #[arg(long)]
    force_conflicts: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this release name.
    name: Option<String>,
    #[arg(long)]
    connector: String,
    #[command(flatten)]
    scope: ScopeArgs,
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release name.
    name: String,
    #[command(flatten)]
    target: Target,
    /// The revision to go back to (default: the one before the latest).
    #[arg(long)]
    to: Option<u32>,
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Every manifest file: files as given, directories' `*.yaml|*.yml|*.json`
/// in name order (not recursive).
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<Value>> {
    fn file(p: &Path, out: &mut Vec<Value>) -> Result<()> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        out.push(json!({ "source": p.display().to_string(), "text": text }));
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            out.push(json!({ "source": "<stdin>", "text": text }));
        } else if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("directory {} has no .yaml, .yml or .json file", p.display());
            }
            for f in files {
                file(&f, &mut out)?;
            }
        } else {
            file(p, &mut out)?;
        }
    }
    Ok(out)
}

pub async fn run(cmd: DeployCommand) -> Result<ExitCode> {
    match cmd {
        DeployCommand::Apply(a) => {
            let manifests = read_manifests(&a.files)?;
            let body = json!({
                "manifests": manifests,
                "namespace": a.target.namespace,
                "release": a.release,
                "prune": a.prune,
                "timeoutMs": a.timeout.as_millis() as u64,
                "dryRun": a.dry_run,
                "forceConflicts": a.force_conflicts,
            });
            deploy(&a.target, body, a.output).await
        }
        DeployCommand::Rollback(r) => {
            let body = json!({
                "namespace": r.target.namespace,
                "release": r.name,
                "timeoutMs": r.timeout.as_millis() as u64,
                "rollbackTo": r.to.unwrap_or(0),
            });
            deploy(&r.target, body, r.output).await
        }
        DeployCommand::History(h) => {
            let client = ApiClient::from_env()?;
            let path = format!(
                "{}/connectors/{}/releases",
                scope_path(&h.scope.scope()?),
                h.connector
            );
            let query: Vec<(&str, String)> = h.name.iter().map(|n| ("name", n.clone())).collect();
            let v: Value = client.json(Method::GET, &path, None, &query).await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            print(
                h.output,
                &v,
                &[
                    "NAME",
                    "NAMESPACE",
                    "REVISION",
                    "STATUS",
                    "FINISHED",
                    "TASK",
                    "SUMMARY",
                ],
                || {
                    items
                        .iter()
                        .map(|r| {
                            vec![
                                r["name"].as_str().unwrap_or_default().into(),
                                r["namespace"].as_str().unwrap_or_default().into(),
                                r["revision"].to_string(),
                                r["status"].as_str().unwrap_or_default().into(),
                                time(r["createdAt"].as_i64()),
                                r["taskId"].as_str().unwrap_or_default().into(),
                                r["summary"]["summary"].as_str().unwrap_or_default().into(),
                            ]
                        })
                        .collect()
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn deploy(target: &Target, body: Value, output: OutputFormat) -> Result<ExitCode> {
    let client = ApiClient::from_env()?;
    let path = format!(
        "{}/connectors/{}/deploy",
        scope_path(&target.scope.scope()?),
        target.connector
    );
    let task: Value = client
        .json(Method::POST, &path, Some(Body::Json(body)), &[])
        .await?;
    let id = task["id"]
        .as_str()
        .context("the manager answered without a task id")?
        .to_string();
    if matches!(output, OutputFormat::Table) {
        println!("deploy task {id} queued");
    }
    let end = super::events::follow_task(&client, &id, output, |_| {}).await?;
    let task: Value = client
        .json(Method::GET, &format!("/api/v1/tasks/{id}"), None, &[])
        .await?;
    if end["state"] != "succeeded" {
        bail!(
            "the deploy task {id} {}: {}",
            end["state"].as_str().unwrap_or("ended"),
            task["error"].as_str().unwrap_or("see `tether task get`")
        );
    }
    let report = &task["output"];
    match output {
        OutputFormat::Table => print!("{}", render(report)),
        OutputFormat::Json => println!("{report}"),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(report)?),
    }
    Ok(exit_code(report))
}

pub fn exit_code(report: &Value) -> ExitCode {
    match report["outcome"].as_str() {
        Some("deployed" | "dryRun") => ExitCode::SUCCESS,
        Some("refused") => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// The report for people: the outcome, each problem with where and how to fix it.
pub fn render(r: &Value) -> String {
    let mut s = format!(
        "\n{}\n",
        r["summary"].as_str().unwrap_or("the deploy ended")
    );
    for p in r["problems"].as_array().into_iter().flatten() {
        let mut at = String::new();
        if let Some(src) = p["source"].as_str() {
            at = format!("{src}#{} (line {}) ", p["document"], p["line"]);
        }
        if let Some(o) = p["object"].as_str() {
            at.push_str(&format!("[{o}] "));
        }
        s.push_str(&format!(
            "\n  {}{}: {}\n    fix: {}\n",
            at,
            p["reason"].as_str().unwrap_or_default(),
            p["message"].as_str().unwrap_or_default(),
            p["fix"].as_str().unwrap_or_default()
        ));
        if let Some(rule) = p["rule"].as_str() {
            for l in rule.lines() {
                s.push_str(&format!("      {l}\n"));
            }
        }
    }
    if let Some(rel) = r["release"].as_object() {
        s.push_str(&format!(
            "\nrelease {} revision {} in {}: {}\n",
            rel.get("name").and_then(Value::as_str).unwrap_or_default(),
            rel.get("revision").cloned().unwrap_or_default(),
            rel.get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            rel.get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    s
}
