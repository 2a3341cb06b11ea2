//! The command tree. `server` runs the manager; the others are API clients that
//! read `TETHER_URL`/`TETHER_TOKEN` or the file `tether login` writes.

mod build;
mod client;
mod cluster;
mod connection_test;
mod connectors;
mod delegates;
mod deploy;
mod events;
mod kube;
mod orgs;
mod output;
mod rbac;
mod report;
mod secrets;
mod server;
mod tokens;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about = "Connect your platform to Kubernetes clusters, safely, and know the truth about each connection."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the manager: REST API, connectors, secrets and scopes.
    Server(server::ServerArgs),
    /// Save the manager URL and an API token for the other commands.
    Login(tokens::LoginArgs),
    /// Kubernetes cluster connectors.
    #[command(subcommand)]
    Connector(connectors::ConnectorCommand),
    /// Encrypted secrets that connectors reference.
    #[command(subcommand)]
    Secret(secrets::SecretCommand),
    /// Orgs.
    #[command(subcommand)]
    Org(orgs::OrgCommand),
    /// Projects inside orgs.
    #[command(subcommand)]
    Project(orgs::ProjectCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Delegates: run, install, list, tokens.
    #[command(subcommand)]
    Delegate(delegates::DelegateCommand),
    /// Tasks run by delegates.
    #[command(subcommand)]
    Task(delegates::TaskCommand),
    /// Onboard clusters with your kubeconfig: service account, RBAC, token, connector.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Deploy manifests through a connector: pre-flight, apply, steady state, releases.
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Run a CI step as a pod through a connector: live log, exit code, clean-up.
    #[command(subcommand)]
    Build(build::BuildCommand),
    /// Least-privilege RBAC manifests for a service account.
    #[command(subcommand)]
    Rbac(rbac::RbacCommand),
    /// The audit log of Kubernetes requests made through tether.
    #[command(subcommand)]
    Audit(kube::AuditCommand),
}

impl Cli {
    /// `tether delegate run` lives on one thread: it idles most of the time,
    /// and a delegate's memory footprint is part of what we promise.
    pub fn single_threaded(&self) -> bool {
        matches!(&self.command, Command::Delegate(d) if d.is_run())
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Server(args) => return server::run(args).await,
        Command::Login(args) => tokens::login(args).await?,
        Command::Connector(cmd) => return connectors::run(cmd).await,
        Command::Secret(cmd) => secrets::run(cmd).await?,
        Command::Org(cmd) => orgs::run_org(cmd).await?,
        Command::Project(cmd) => orgs::run_project(cmd).await?,
        Command::Token(cmd) => tokens::run(cmd).await?,
        Command::Delegate(cmd) => return delegates::run(cmd).await,
        Command::Task(cmd) => delegates::task(cmd).await?,
        Command::Cluster(cmd) => cluster::run(cmd).await?,
        Command::Rbac(cmd) => rbac::run(cmd)?,
        Command::Deploy(cmd) => return deploy::run(cmd).await,
        Command::Build(cmd) => return build::run(cmd).await,
        Command::Audit(cmd) => kube::audit(cmd).await?,
    }
    Ok(ExitCode::SUCCESS)
}
