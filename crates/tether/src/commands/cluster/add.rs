//! `tether cluster add`: in the spirit of `argocd cluster add`, use the operator's
//! kubeconfig once to create a service account with one profile's permissions and
//! a token for it, store the token and the cluster's CA as tether secrets, create
//! the connector, and run the connection test through the manager.
//!
//! Idempotent: every step creates what is missing and updates what exists, so a
//! failed run is retried by running it again, and a second run changes nothing
//! but the token when it comes from the TokenRequest API.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use secrecy::ExposeSecret;
use tether_domain::connector::{ConnectorType, ServiceAccountAuth};
use tether_domain::{
    Auth, ConnectionTestSettings, Connector, Credential, K8sClusterSpec, ManualConfig,
    PermissionProfile, PermissionRule,
};
use tether_kube::onboarding::account::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use tether_kube::onboarding::token::MIN_TOKEN_TTL;
use tether_kube::onboarding::{
    self, rbac_manifest, service_account_token, ApplyOutcome, ManifestRequest, OnboardingProfile,
    ServiceAccountRef, TokenSource,
};

use super::super::client::ApiClient;
use super::super::report;
use super::kubeconfig::{self, OperatorCluster};
use super::manager::Manager;
use super::progress::Progress;
use super::{
    connector_identifier, parse_duration, secret_identifier, service_account_name, AddArgs,
    KubeconfigArgs, TAG_CLUSTER_ADD, TAG_CREATED_NAMESPACE, TAG_PROFILE, TAG_SERVICE_ACCOUNT,
    TAG_TOKEN_EXPIRES, TAG_TOKEN_SECRET, TAG_TOKEN_TTL,
};

/// Value of [`super::SECRET_TAG_CREATED_BY`] on the secrets `add` stores.
pub const CREATED_BY: &str = "cluster-add";

const STEPS: usize = 8;

/// Everything `add` will do, decided (and checked) before anything is touched.
struct Plan {
    name: String,
    id: String,
    account: ServiceAccountRef,
    profile: OnboardingProfile,
    request: ManifestRequest,
    targets: Vec<String>,
    ttl: Option<std::time::Duration>,
    token_id: String,
    ca_id: String,
    delegate_selectors: Vec<String>,
}

pub async fn run(args: AddArgs) -> Result<()> {
    // Local checks first: wrong arguments change nothing anywhere.
    let id = connector_identifier(&args.name, args.identifier.as_deref())?;
    let profile: OnboardingProfile = args.profile.into();
    let mut targets = args.target_namespaces.clone();
    targets.sort();
    targets.dedup();
    let request = ManifestRequest::new(service_account_name(&id), profile)
        .in_namespace(args.namespace.clone())
        .with_target_namespaces(targets.clone());
    rbac_manifest(&request)?;
    let ttl = args.token_ttl.as_deref().map(parse_duration).transpose()?;
    if let Some(ttl) = ttl.filter(|t| *t < MIN_TOKEN_TTL) {
        bail!(
            "--token-ttl {}s is too short: the TokenRequest API issues tokens valid for at least 10 minutes; ask for 10m or more",
            ttl.as_secs()
        );
    }
    let plan = Plan {
        name: args.name.clone(),
        account: request.account()?,
        token_id: secret_identifier(&id, "token")?,
        ca_id: secret_identifier(&id, "ca")?,
        id,
        profile,
        request,
        targets,
        ttl,
        delegate_selectors: args
            .delegate_selectors
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    let manager = Manager::new(ApiClient::from_env()?, args.scope.scope()?);

    let mut progress = Progress::new(STEPS);
    match steps(&plan, &args.kube, &manager, &mut progress).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let next = if progress.changed_anything() {
                format!(
                    "Running the same `tether cluster add` again is safe: it updates what exists \
                     and creates what is missing. To undo what was done, run `tether cluster \
                     remove {}{}{}`.",
                    plan.id,
                    manager.scope_flags(),
                    kube_flags(&args.kube)
                )
            } else {
                "Fix the cause above and run the same command again.".to_string()
            };
            Err(progress.failure(e, &next))
        }
    }
}

/// `--kubeconfig P --context C` as given, for suggested commands.
pub fn kube_flags(kube: &KubeconfigArgs) -> String {
    let mut out = String::new();
    if let Some(p) = &kube.kubeconfig {
        out.push_str(&format!(" --kubeconfig {}", p.display()));
    }
    if let Some(c) = &kube.context {
        out.push_str(&format!(" --context {c}"));
    }
    out
}

async fn steps(
    plan: &Plan,
    kube: &KubeconfigArgs,
    manager: &Manager,
    p: &mut Progress,
) -> Result<()> {
    let Plan { id, account, .. } = plan;
    let ns = account.namespace();

    p.start(format!("checking connector {id} in {}", manager.scope()));
    manager.check_scope().await?;
    let existing = manager.connector(id).await?;
    let mut created_namespace = false;
    match &existing {
        None => p.finish("new"),
        Some(c) => {
            check_ours(c, plan, manager)?;
            created_namespace =
                c.tags.get(TAG_CREATED_NAMESPACE).map(String::as_str) == Some("true");
            p.finish("exists (made by `tether cluster add`), updating it");
        }
    }

    p.start("connecting to the cluster with your kubeconfig");
    let cluster = kubeconfig::connect(kube).await?;
    if let Some(url) = existing.as_ref().and_then(master_url) {
        let norm = |u: &str| u.trim().trim_end_matches('/').to_ascii_lowercase();
        if norm(url) != norm(&cluster.server) {
            bail!(
                "connector '{id}' was added for the cluster at {url}, but context '{}' of {} \
                 points to {}: choose another --name (or --identifier) for this cluster, or run \
                 `tether cluster remove {id}{}` (with a kubeconfig for {url}) first",
                cluster.context,
                cluster.source,
                cluster.server,
                manager.scope_flags()
            );
        }
    }
    let version = cluster.version().await?;
    p.finish(format!(
        "context {}, {} (Kubernetes {version})",
        cluster.context, cluster.server
    ));

    p.start(format!("namespace {ns}"));
    match ensure_namespace(&cluster.client, ns).await? {
        NamespaceOutcome::Exists => p.finish("exists"),
        NamespaceOutcome::Created => {
            created_namespace = true;
            p.record(format!("created namespace {ns}"));
            p.finish("created");
        }
        NamespaceOutcome::Unreadable => {
            p.finish("cannot be read with these credentials; assuming it exists")
        }
    }

    p.start(format!(
        "service account {account} with profile {} {}",
        plan.profile,
        where_granted(&plan.targets)
    ));
    let applied = onboarding::apply(&cluster.client, &plan.request).await?;
    let count = |o: ApplyOutcome| applied.applied.iter().filter(|(_, x)| *x == o).count();
    for (object, outcome) in &applied.applied {
        match outcome {
            ApplyOutcome::Created => p.record(format!("created {object}")),
            ApplyOutcome::Updated => p.record(format!("updated {object}")),
            ApplyOutcome::Unchanged => {}
        }
    }
    for object in &applied.pruned {
        p.record(format!("deleted {object} (no longer in the manifest)"));
    }
    if plan.ttl.is_some() {
        // An expiring token was asked for: no long-lived token Secret of tether's
        // should remain (the manifest always has one, for `kubectl apply` users).
        if delete_token_secret(&cluster.client, account).await? {
            p.record(format!(
                "deleted Secret {ns}/{} (an expiring token was asked for)",
                account.token_secret_name()
            ));
        }
    }
    let mut summary = format!(
        "{} created, {} updated, {} unchanged",
        count(ApplyOutcome::Created),
        count(ApplyOutcome::Updated),
        count(ApplyOutcome::Unchanged)
    );
    if !applied.pruned.is_empty() {
        summary.push_str(&format!(
            ", {} deleted (no longer in the manifest)",
            applied.pruned.len()
        ));
    }
    p.finish(summary);

    p.start(match plan.ttl {
        Some(ttl) => format!(
            "requesting a token valid for {}s from the TokenRequest API",
            ttl.as_secs()
        ),
        None => format!(
            "waiting for the token of Secret {ns}/{}",
            account.token_secret_name()
        ),
    });
    let token = service_account_token(&cluster.client, ns, account.name(), plan.ttl).await?;
    let (token_secret, expires_at) = match &token.source {
        TokenSource::Secret { name } => {
            p.finish(format!("done (Secret {ns}/{name})"));
            (Some(name.clone()), None)
        }
        TokenSource::TokenRequest { expires_at } => {
            let at = expires_at.map(|t| t.to_string());
            p.finish(format!(
                "done (expires at {})",
                at.as_deref().unwrap_or("a time the API server chose")
            ));
            (None, at)
        }
    };

    p.start(match cluster.ca_pem {
        Some(_) => format!(
            "storing secrets {} and {} in tether",
            plan.token_id, plan.ca_id
        ),
        None => format!("storing secret {} in tether", plan.token_id),
    });
    let description =
        format!("Token of service account {account} for connector {id} (tether cluster add)");
    let t = manager
        .upsert_secret(
            &plan.token_id,
            id,
            CREATED_BY,
            &description,
            token.token.expose_secret(),
        )
        .await?;
    p.record(format!("{} secret {}", t.as_str(), plan.token_id));
    let ca = match &cluster.ca_pem {
        Some(pem) => {
            let description = format!("CA of the API server {} for connector {id}", cluster.server);
            let c = manager
                .upsert_secret(&plan.ca_id, id, CREATED_BY, &description, pem)
                .await?;
            p.record(format!("{} secret {}", c.as_str(), plan.ca_id));
            format!("CA {}", c.as_str())
        }
        None => "no CA (the kubeconfig trusts the system's CAs)".to_string(),
    };
    p.finish(format!("token {}, {ca}", t.as_str()));

    p.start(format!("connector {id}"));
    let connector = connector_document(
        plan,
        manager,
        &cluster,
        existing.as_ref(),
        TokenTags {
            secret: token_secret,
            expires_at,
            created_namespace,
        },
    );
    let up = manager.put_connector(&connector).await?;
    p.record(format!("{} connector {id}", up.as_str()));
    if cluster.ca_pem.is_none() {
        // A CA stored by an earlier run is no longer referenced.
        manager.delete_secret_of(&plan.ca_id, id).await?;
    }
    p.finish(up.as_str());

    p.start("connection test through the manager");
    test_and_report(manager, id, p).await?;

    println!();
    println!(
        "cluster '{}' added: connector {id} in {}, service account {account} with profile {} {}",
        plan.name,
        manager.scope(),
        plan.profile,
        where_granted(&plan.targets)
    );
    if let Some(ttl) = plan.ttl {
        println!(
            "the stored token expires after {}s: run `tether cluster rotate-token {id}{}` before then",
            ttl.as_secs(),
            manager.scope_flags()
        );
    }
    Ok(())
}

/// Runs the connection test (the current step), prints its report, and fails
/// unless it says SUCCESS. A manager without the endpoint is not an error.
pub async fn test_and_report(manager: &Manager, id: &str, p: &mut Progress) -> Result<()> {
    match manager.test_connector(id).await? {
        None => {
            p.finish("connection test not available on this manager");
            Ok(())
        }
        Some(r) => {
            let status = report::status(&r).to_string();
            p.finish(&status);
            print!("{}", report::render(&r, &format!("connector {id}")));
            if status != "SUCCESS" {
                bail!(
                    "the connection test reported {status} (see the report above); the connector is stored with this result"
                );
            }
            Ok(())
        }
    }
}

/// The connector's API server URL, if it has one of its own.
pub fn master_url(c: &Connector) -> Option<&str> {
    match &c.spec.credential {
        Credential::ManualConfig(m) => Some(m.master_url.as_str()),
        Credential::InheritFromDelegate => None,
    }
}

/// An existing connector may be updated only when `add` made it for the same
/// service account.
fn check_ours(c: &Connector, plan: &Plan, manager: &Manager) -> Result<()> {
    let id = &plan.id;
    if c.tags.get(TAG_CLUSTER_ADD).map(String::as_str) != Some("true") {
        bail!(
            "connector '{id}' already exists in {} and was not created by `tether cluster add`, so it \
             is left alone: choose another --name or --identifier",
            manager.scope()
        );
    }
    let wanted = plan.account.to_string();
    match c.tags.get(TAG_SERVICE_ACCOUNT) {
        Some(had) if *had != wanted => bail!(
            "connector '{id}' was added with service account {had}, and this run would use {wanted} \
             (another --namespace?): keep the namespace, or run `tether cluster remove {id}{}` \
             first to start over",
            manager.scope_flags()
        ),
        _ => Ok(()),
    }
}

struct TokenTags {
    secret: Option<String>,
    expires_at: Option<String>,
    created_namespace: bool,
}

fn connector_document(
    plan: &Plan,
    manager: &Manager,
    cluster: &OperatorCluster,
    existing: Option<&Connector>,
    token: TokenTags,
) -> Connector {
    // Tags others added survive; tether's own are rewritten.
    let mut tags: BTreeMap<String, String> = existing
        .map(|c| c.tags.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("tether.dev/"))
        .collect();
    let mut tag = |k: &str, v: String| {
        tags.insert(k.to_string(), v);
    };
    tag(TAG_CLUSTER_ADD, "true".into());
    tag(TAG_SERVICE_ACCOUNT, plan.account.to_string());
    tag(TAG_PROFILE, plan.profile.to_string());
    if let Some(s) = token.secret {
        tag(TAG_TOKEN_SECRET, s);
    }
    if let Some(ttl) = plan.ttl {
        tag(TAG_TOKEN_TTL, format!("{}s", ttl.as_secs()));
    }
    if let Some(at) = token.expires_at {
        tag(TAG_TOKEN_EXPIRES, at);
    }
    if token.created_namespace {
        tag(TAG_CREATED_NAMESPACE, "true".into());
    }
    let scope = manager.scope();
    Connector {
        name: plan.name.clone(),
        identifier: Some(plan.id.clone()),
        description: existing.and_then(|c| c.description.clone()).or_else(|| {
            Some(format!(
                "Added by `tether cluster add`: service account {} with profile {}",
                plan.account, plan.profile
            ))
        }),
        org_identifier: scope.org().map(str::to_string),
        project_identifier: scope.project().map(str::to_string),
        tags,
        connector_type: ConnectorType::K8sCluster,
        spec: K8sClusterSpec {
            proxy: None,
            delegate_selectors: plan.delegate_selectors.clone(),
            credential: Credential::ManualConfig(ManualConfig {
                master_url: cluster.server.clone(),
                auth: Auth::ServiceAccount(ServiceAccountAuth {
                    service_account_token_ref: plan.token_id.clone(),
                    ca_cert_ref: cluster.ca_pem.as_ref().map(|_| plan.ca_id.clone()),
                }),
            }),
            connection_test: Some(test_settings(plan.profile, &plan.targets)),
        },
    }
}

/// What the connection test checks: what was granted, where. `cluster-admin`
/// includes everything of `deployments`; the built-in `admin` role too, except
/// writing events (Kubernetes grants it only reading them), so namespace-admin
/// is checked with the `deployments` rules where events are read-only.
fn test_settings(profile: OnboardingProfile, targets: &[String]) -> ConnectionTestSettings {
    let (profile, rules) = match profile {
        OnboardingProfile::Builds => (PermissionProfile::Builds, Vec::new()),
        OnboardingProfile::Deployments | OnboardingProfile::ClusterAdmin => {
            (PermissionProfile::Deployments, Vec::new())
        }
        OnboardingProfile::NamespaceAdmin => {
            let mut rules = Vec::new();
            for rule in PermissionProfile::Deployments.rules() {
                let (events, others): (Vec<String>, Vec<String>) = rule
                    .resources
                    .iter()
                    .cloned()
                    .partition(|r| rule.api_group.is_empty() && r == "events");
                if !others.is_empty() {
                    rules.push(PermissionRule {
                        resources: others,
                        ..rule.clone()
                    });
                }
                if !events.is_empty() {
                    rules.push(PermissionRule {
                        verbs: ["get", "list", "watch"].map(String::from).to_vec(),
                        api_group: String::new(),
                        resources: events,
                    });
                }
            }
            (PermissionProfile::Custom, rules)
        }
    };
    ConnectionTestSettings {
        profile,
        rules,
        namespaces: targets.to_vec(),
    }
}

fn where_granted(targets: &[String]) -> String {
    if targets.is_empty() {
        "cluster-wide".into()
    } else {
        format!("in namespace(s) {}", targets.join(", "))
    }
}

enum NamespaceOutcome {
    Exists,
    Created,
    Unreadable,
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<NamespaceOutcome> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(name).await {
        Ok(Some(_)) => return Ok(NamespaceOutcome::Exists),
        Ok(None) => {}
        // The operator may manage objects in it without reading namespaces.
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(NamespaceOutcome::Unreadable),
        Err(e) => bail!("cannot read namespace {name}: {}", describe(&e)),
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(NamespaceOutcome::Created),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(NamespaceOutcome::Exists),
        Err(e) => Err(anyhow!("cannot create namespace {name}: {}", describe(&e))),
    }
}

/// Deletes tether's token Secret of the account (`<sa>-token`); `false` when
/// there was none.
async fn delete_token_secret(client: &Client, account: &ServiceAccountRef) -> Result<bool> {
    let name = account.token_secret_name();
    let api: Api<Secret> = Api::namespaced(client.clone(), account.namespace());
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => bail!(
            "cannot delete the long-lived token Secret {}/{name}: {}",
            account.namespace(),
            describe(&e)
        ),
    }
}

/// A Kubernetes API error as a sentence that says what to do.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "{} (403): your kubeconfig's credentials may not do that; onboarding needs a cluster \
             administrator's credentials",
            s.message
        ),
        kube::Error::Api(s) if s.code == 401 => format!(
            "the API server did not accept your kubeconfig's credentials (401 {}): log in again",
            s.reason
        ),
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => format!("{other} (is the API server reachable?)"),
    }
}
