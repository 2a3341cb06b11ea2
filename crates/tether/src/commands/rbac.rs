//! `tether rbac manifest`: the YAML that gives a service account exactly one
//! profile's permissions, for `kubectl apply -f -` (or a GitOps repository).
//! Works offline: it talks neither to a cluster nor to the manager.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use tether_kube::onboarding::{rbac_manifest, to_yaml, ManifestRequest, OnboardingProfile};

/// Where onboarding puts the service account and its token Secret unless told
/// otherwise: `kube-system` exists in every cluster (so nothing has to be created,
/// and nothing is left behind by `cluster remove`), and on a typical cluster only
/// cluster administrators may read its Secrets, which is where the token lives.
pub const DEFAULT_NAMESPACE: &str = "kube-system";

#[derive(Debug, Subcommand)]
pub enum RbacCommand {
    /// Print a ServiceAccount, its token Secret and the RBAC objects of one profile.
    Manifest(ManifestArgs),
}

/// The permission profiles, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Deploying workloads: configmaps, secrets, events, pods, deployments.
    Deployments,
    /// Running CI build pods: pods, secrets, services, PVCs; reading events.
    Builds,
    /// The built-in `admin` ClusterRole in each --target-namespace.
    NamespaceAdmin,
    /// The built-in `cluster-admin` ClusterRole, cluster-wide.
    ClusterAdmin,
}

impl From<ProfileArg> for OnboardingProfile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Deployments => OnboardingProfile::Deployments,
            ProfileArg::Builds => OnboardingProfile::Builds,
            ProfileArg::NamespaceAdmin => OnboardingProfile::NamespaceAdmin,
            ProfileArg::ClusterAdmin => OnboardingProfile::ClusterAdmin,
        }
    }
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Name of the service account to create.
    #[arg(long)]
    pub service_account: String,
    /// Namespace of the service account and its token Secret.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// What the account may do.
    #[arg(long, value_enum)]
    pub profile: ProfileArg,
    /// Where the account may do it (repeatable). Without it, deployments and
    /// builds are granted cluster-wide; namespace-admin needs at least one.
    #[arg(long = "target-namespace", value_name = "NS")]
    pub target_namespaces: Vec<String>,
}

pub fn run(cmd: RbacCommand) -> Result<()> {
    match cmd {
        RbacCommand::Manifest(args) => {
            let request = ManifestRequest::new(args.service_account, args.profile.into())
                .in_namespace(args.namespace)
                .with_target_namespaces(args.target_namespaces);
            let objects = rbac_manifest(&request)?;
            print!("{}", to_yaml(&objects)?);
            Ok(())
        }
    }
}
