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
    /// Print the minimal Role/ClusterRole (and bindings) that let a service
    /// account deploy exactly these manifests with `tether deploy apply`.
    For(ForArgs),
}

#[derive(Debug, Args)]
pub struct ForArgs {
    /// Manifest files or directories (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// The account that deploys, as NAMESPACE/NAME.
    #[arg(long)]
    pub service_account: String,
    /// Namespace of objects that name none, and of the release record (as for `deploy apply`).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Include `delete`, which `deploy apply --prune` needs.
    #[arg(long)]
    pub prune: bool,
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
        RbacCommand::For(args) => {
            let Some((sa_ns, sa_name)) = args.service_account.split_once('/') else {
                anyhow::bail!("--service-account takes NAMESPACE/NAME, e.g. ci/deployer");
            };
            let sources: Vec<tether_kube::deploy::ManifestSource> = serde_json::from_value(
                serde_json::Value::Array(super::deploy::read_manifests(&args.files)?),
            )?;
            let manifests =
                tether_kube::deploy::manifests::parse(&sources).map_err(|problems| {
                    let lines: Vec<String> = problems
                        .iter()
                        .map(|p| {
                            format!(
                                "{}#{} (line {}): {}",
                                p.source.as_deref().unwrap_or("?"),
                                p.document.unwrap_or(0),
                                p.line.unwrap_or(0),
                                p.message
                            )
                        })
                        .collect();
                    anyhow::anyhow!("the manifests cannot be read:\n{}", lines.join("\n"))
                })?;
            let objects = tether_kube::deploy::rbac::minimal_rbac(
                &manifests,
                &args.namespace,
                args.prune,
                sa_ns,
                sa_name,
            );
            for o in objects {
                print!("---\n{}", serde_yaml::to_string(&o)?);
            }
            Ok(())
        }
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
