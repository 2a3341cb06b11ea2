//! `tether build run|list`: a CI step as a pod through a connector. The
//! build's log lines are printed to stdout as the container writes them; its
//! progress (pre-flight, pod phases, clean-up) and report go to stderr, so a
//! pipeline sees only the command's output. Exit code: the build container's;
//! 125 when it did not run (pre-flight, image pull, unschedulable, ...) or
//! did not finish (`DELEGATE_LOST`: its delegate was lost), 124
//! when it timed out, 130 when cancelled. Ctrl-C cancels the build (the
//! delegate deletes its objects, printed as they go); a second Ctrl-C leaves
//! at once.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use tether_kube::build::ServiceSpec;

use super::client::{scope_path, ApiClient, Body, ScopeArgs};
use super::output::{print, time, OutputFormat};

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Run a command in a pod through a connector; print its log; exit with its code.
    Run(RunArgs),
    /// The newest builds of a connector.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The connector to build through.
    #[arg(long)]
    connector: String,
    #[command(flatten)]
    scope: ScopeArgs,
    /// The build container's image.
    #[arg(long)]
    image: String,
    /// Namespace of the build's objects (default `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// An environment variable, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// An environment variable from a tether secret, NAME=SECRET_REF (repeatable).
    #[arg(long = "secret-env", value_name = "NAME=SECRET_REF")]
    secret_env: Vec<String>,
    /// A workspace volume of this size at /workspace (e.g. 1Gi).
    #[arg(long)]
    workspace: Option<String>,
    /// How long the build may take.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// A service container beside the build, at localhost:PORT:
    /// IMAGE:PORT or IMAGE:PORT=COMMAND ARG... (repeatable).
    #[arg(long = "service", value_name = "IMAGE:PORT")]
    services: Vec<String>,
    /// `json`: every event as a JSON line on stdout, then the report.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
    /// The command and its arguments (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    connector: String,
    #[command(flatten)]
    scope: ScopeArgs,
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

fn pairs(flag: &str, raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for r in raw {
        let Some((k, v)) = r.split_once('=') else {
            bail!("--{flag} '{r}' has no '=': write NAME=VALUE");
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub async fn run(cmd: BuildCommand) -> Result<ExitCode> {
    match cmd {
        BuildCommand::Run(a) => build(a).await,
        BuildCommand::List(l) => {
            let client = ApiClient::from_env()?;
            let path = format!(
                "{}/connectors/{}/builds",
                scope_path(&l.scope.scope()?),
                l.connector
            );
            let v: Value = client.json(Method::GET, &path, None, &[]).await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            print(
                l.output,
                &v,
                &[
                    "TASK", "STATE", "OUTCOME", "EXIT", "DURATION", "STARTED", "IMAGE",
                ],
                || {
                    items
                        .iter()
                        .map(|b| {
                            vec![
                                b["taskId"].as_str().unwrap_or_default().into(),
                                b["state"].as_str().unwrap_or_default().into(),
                                b["outcome"].as_str().unwrap_or("-").into(),
                                b["exitCode"]
                                    .as_i64()
                                    .map(|c| c.to_string())
                                    .unwrap_or_else(|| "-".into()),
                                b["durationMs"]
                                    .as_u64()
                                    .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                                    .unwrap_or_else(|| "-".into()),
                                time(b["createdAt"].as_i64()),
                                b["image"].as_str().unwrap_or_default().into(),
                            ]
                        })
                        .collect()
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_event(v: &Value, format: OutputFormat) {
    use std::io::Write;
    match format {
        OutputFormat::Table if v["kind"] == "log" => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", v["message"].as_str().unwrap_or_default());
            let _ = out.flush();
        }
        OutputFormat::Table => eprintln!("{}", super::events::line(v, format)),
        _ => println!("{v}"),
    }
}

async fn build(a: RunArgs) -> Result<ExitCode> {
    let services: Vec<Value> = a
        .services
        .iter()
        .map(|s| ServiceSpec::parse(s).map(|s| json!(s)))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let body = json!({
        "image": a.image,
        "command": a.command,
        "namespace": a.namespace,
        "env": pairs("env", &a.env)?,
        "secretEnv": pairs("secret-env", &a.secret_env)?,
        "workspace": a.workspace,
        "services": services,
        "timeoutMs": a.timeout.as_millis() as u64,
    });
    let client = ApiClient::from_env()?;
    let path = format!(
        "{}/connectors/{}/builds",
        scope_path(&a.scope.scope()?),
        a.connector
    );
    let task: Value = client
        .json(Method::POST, &path, Some(Body::Json(body)), &[])
        .await?;
    let id = task["id"]
        .as_str()
        .context("the manager answered without a task id")?
        .to_string();
    if matches!(a.output, OutputFormat::Table) {
        eprintln!("build task {id} queued");
    }
    let format = a.output;
    let follow = super::events::follow_task_events(&client, &id, |v| print_event(v, format));
    tokio::pin!(follow);
    let mut cancelling = false;
    let end = loop {
        tokio::select! {
            r = &mut follow => break r?,
            _ = tokio::signal::ctrl_c() => {
                if cancelling {
                    eprintln!("left without waiting; the delegate still cleans up build {id}");
                    return Ok(ExitCode::from(130));
                }
                cancelling = true;
                eprintln!("cancelling build {id} (Ctrl-C again to leave at once)");
                if let Err(e) = client
                    .json::<Value>(Method::POST, &format!("/api/v1/tasks/{id}/cancel"), None, &[])
                    .await
                {
                    eprintln!("cannot cancel the build: {e}");
                }
            }
        }
    };
    let task: Value = client
        .json(Method::GET, &format!("/api/v1/tasks/{id}"), None, &[])
        .await?;
    let error = task["error"].as_str().unwrap_or_default();
    if end["state"] != "succeeded" && error.starts_with("DELEGATE_LOST") {
        // It did not finish, and is not run again: like a build that did not run.
        eprintln!("\nthe build {id} did not finish: {error}");
        return Ok(ExitCode::from(125));
    }
    if end["state"] != "succeeded" {
        bail!(
            "the build task {id} {}: {}",
            end["state"].as_str().unwrap_or("ended"),
            task["error"].as_str().unwrap_or("see `tether task get`")
        );
    }
    let report = &task["output"];
    match a.output {
        OutputFormat::Table => eprint!("{}", render(report)),
        OutputFormat::Json => println!("{report}"),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(report)?),
    }
    Ok(exit_code(report))
}

/// The container's exit code, or what says why there is none.
pub fn exit_code(report: &Value) -> ExitCode {
    if let Some(code) = report["exitCode"].as_i64() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    match report["outcome"].as_str() {
        Some("timedOut") => ExitCode::from(124),
        Some("cancelled") => ExitCode::from(130),
        _ => ExitCode::from(125),
    }
}

/// The report for people: the outcome, each problem with its fix, the clean-up.
pub fn render(r: &Value) -> String {
    let mut s = format!(
        "\n{} ({}, {:.1}s)\n",
        r["summary"].as_str().unwrap_or("the build ended"),
        r["pod"].as_str().unwrap_or_default(),
        r["durationMs"].as_u64().unwrap_or(0) as f64 / 1000.0
    );
    for p in r["problems"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  {}: {}\n    fix: {}\n",
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
    let c = &r["cleanup"];
    if c["complete"] == false {
        for e in c["errors"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "\n  clean-up: {}\n",
                e.as_str().unwrap_or_default()
            ));
        }
    }
    s
}
