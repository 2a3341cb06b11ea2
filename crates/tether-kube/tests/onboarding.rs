//! Onboarding against the real control plane: the manifests are accepted by the
//! API server, grant exactly their profile, apply idempotently, yield working
//! tokens, and are removed without a trace.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use secrecy::SecretString;
use tether_kube::onboarding::{
    self, import_kubeconfig_file, rbac_manifest, service_account_token, to_yaml, ApplyError,
    ApplyOutcome, ImportedAuth, ManifestRequest, ObjectKind, OnboardingProfile, TokenError,
    TokenSource,
};
use tether_kube::{ClusterAccess, Credentials};
use tether_testenv::KubeEnv;

const RBAC: &str = "rbac.authorization.k8s.io";

fn token_client(env: &KubeEnv, token: &SecretString) -> Client {
    ClusterAccess::new(&env.url, Credentials::Token(token.clone()))
        .with_ca(&env.ca_pem)
        .client()
        .expect("client")
}

/// SelfSubjectAccessReview: may the client's user do `verb` on `group/resource`
/// in `namespace` (cluster-wide when `None`)?
async fn can_i(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(out.status.context("review without status")?.allowed)
}

async fn assert_allowed(
    client: &Client,
    checks: &[(&str, &str, &str)],
    namespace: Option<&str>,
    expected: bool,
) -> Result<()> {
    for &(verb, group, resource) in checks {
        let allowed = can_i(client, verb, group, resource, namespace).await?;
        ensure!(
            allowed == expected,
            "{verb} {group}/{resource} in {namespace:?}: expected allowed={expected}, got {allowed}"
        );
    }
    Ok(())
}

/// Every (verb, group, resource) the profile's own rules name.
fn profile_triples(profile: OnboardingProfile) -> Vec<(String, String, String)> {
    profile
        .rules()
        .unwrap_or_default()
        .iter()
        .flat_map(|r| {
            r.triples()
                .map(|(v, g, res)| (v.to_string(), g.to_string(), res.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn assert_profile_allowed(
    client: &Client,
    profile: OnboardingProfile,
    namespace: Option<&str>,
) -> Result<()> {
    let triples = profile_triples(profile);
    ensure!(!triples.is_empty());
    let checks: Vec<(&str, &str, &str)> = triples
        .iter()
        .map(|(v, g, r)| (v.as_str(), g.as_str(), r.as_str()))
        .collect();
    assert_allowed(client, &checks, namespace, true).await
}

/// `kubectl apply --dry-run=server -f -` with `yaml` on stdin.
fn kubectl_dry_run(env: &KubeEnv, yaml: &str) -> Result<String> {
    let mut child = env
        .kubectl()
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "kubectl refused the manifest: {}\n{stdout}\n--- manifest ---\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// Every object labelled for the account, as `kubectl get -o name` lists them.
fn kubectl_labelled(env: &KubeEnv, namespace: &str, sa: &str) -> Result<Vec<String>> {
    let selector = format!(
        "app.kubernetes.io/managed-by=tether,tether.dev/service-account={sa},tether.dev/service-account-namespace={namespace}"
    );
    let out = env
        .kubectl()
        .args([
            "get",
            "clusterrolebindings,rolebindings,clusterroles,roles,secrets,serviceaccounts",
            "--all-namespaces",
            "-o",
            "name",
            "-l",
            &selector,
        ])
        .stderr(Stdio::inherit())
        .output()?;
    ensure!(out.status.success(), "kubectl get failed");
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

fn request(
    sa: &str,
    namespace: &str,
    profile: OnboardingProfile,
    targets: &[&str],
) -> ManifestRequest {
    ManifestRequest::new(sa, profile)
        .in_namespace(namespace)
        .with_target_namespaces(targets.iter().copied())
}

#[tokio::test]
async fn every_profile_passes_a_server_side_dry_run() -> Result<()> {
    let env = KubeEnv::get();
    let home = env.namespace("dry-home").await;
    let target = env.namespace("dry-target").await;
    let cases = [
        (OnboardingProfile::Deployments, vec![target.as_str()]),
        (OnboardingProfile::Deployments, vec![]),
        (
            OnboardingProfile::Builds,
            vec![target.as_str(), home.as_str()],
        ),
        (OnboardingProfile::Builds, vec![]),
        (OnboardingProfile::NamespaceAdmin, vec![target.as_str()]),
        (OnboardingProfile::ClusterAdmin, vec![]),
    ];
    for (profile, targets) in cases {
        let objects = rbac_manifest(&request("deployer", &home, profile, &targets))?;
        let yaml = to_yaml(&objects)?;
        let yaml_for_kubectl = yaml.clone();
        let out =
            tokio::task::spawn_blocking(move || kubectl_dry_run(env, &yaml_for_kubectl)).await??;
        ensure!(
            out.lines().count() == objects.len() && out.contains("(server dry run)"),
            "{profile}: kubectl said\n{out}"
        );
        ensure!(!yaml.contains("v1beta1"), "{yaml}");
    }
    // A dry run creates nothing.
    let left = kubectl_labelled(env, &home, "deployer")?;
    ensure!(left.is_empty(), "{left:?}");
    Ok(())
}

#[tokio::test]
async fn deployments_in_target_namespaces_grants_exactly_its_rules_there() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("dep-home").await;
    let target = env.namespace("dep-target").await;
    let other = env.namespace("dep-other").await;
    let profile = OnboardingProfile::Deployments;

    let report =
        onboarding::apply(&admin, &request("deployer", &home, profile, &[&target])).await?;
    ensure!(
        report
            .applied
            .iter()
            .all(|(_, o)| *o == ApplyOutcome::Created),
        "{report:?}"
    );
    let token = service_account_token(&admin, &home, "deployer", None).await?;
    ensure!(
        token.source
            == TokenSource::Secret {
                name: "deployer-token".into()
            },
        "tether's own token Secret is preferred: {token:?}"
    );
    let sa = token_client(env, &token.token);

    assert_profile_allowed(&sa, profile, Some(&target)).await?;
    // Outside the profile, in the target namespace.
    assert_allowed(
        &sa,
        &[
            ("list", "", "serviceaccounts"),
            ("create", RBAC, "rolebindings"),
            ("create", "apps", "statefulsets"),
            ("create", "", "serviceaccounts/token"),
        ],
        Some(&target),
        false,
    )
    .await?;
    // Outside the target namespace.
    assert_allowed(
        &sa,
        &[("get", "", "secrets"), ("create", "apps", "deployments")],
        Some(&other),
        false,
    )
    .await?;
    assert_allowed(&sa, &[("get", "", "secrets")], Some(&home), false).await?;
    // Cluster-wide.
    assert_allowed(
        &sa,
        &[("delete", "", "nodes"), ("create", RBAC, "clusterroles")],
        None,
        false,
    )
    .await?;
    // The API agrees with the reviews.
    Api::<Pod>::namespaced(sa.clone(), &target)
        .list(&Default::default())
        .await?;
    let err = Api::<Pod>::namespaced(sa, &other)
        .list(&Default::default())
        .await
        .unwrap_err();
    ensure!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err}"
    );

    onboarding::delete(&admin, &home, "deployer").await?;
    Ok(())
}

#[tokio::test]
async fn builds_without_targets_is_bound_cluster_wide_and_nothing_more() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("builds-home").await;
    let anywhere = env.namespace("builds-any").await;
    let profile = OnboardingProfile::Builds;

    let report = onboarding::apply(&admin, &request("builder", &home, profile, &[])).await?;
    let kinds: Vec<ObjectKind> = report.applied.iter().map(|(r, _)| r.kind).collect();
    ensure!(
        kinds.contains(&ObjectKind::ClusterRoleBinding),
        "{report:?}"
    );
    let token = service_account_token(&admin, &home, "builder", None).await?;
    let sa = token_client(env, &token.token);

    assert_profile_allowed(&sa, profile, Some(&anywhere)).await?;
    assert_profile_allowed(&sa, profile, Some(&home)).await?;
    assert_allowed(
        &sa,
        &[
            ("patch", "", "pods"),
            ("create", "", "events"),
            ("create", "apps", "deployments"),
            ("get", "", "configmaps"),
        ],
        Some(&anywhere),
        false,
    )
    .await?;
    assert_allowed(
        &sa,
        &[
            ("delete", "", "nodes"),
            ("create", RBAC, "clusterroles"),
            ("list", "", "namespaces"),
        ],
        None,
        false,
    )
    .await?;
    onboarding::delete(&admin, &home, "builder").await?;
    Ok(())
}

#[tokio::test]
async fn namespace_admin_is_admin_in_its_namespaces_only() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("nsadmin-home").await;
    let target = env.namespace("nsadmin-target").await;
    let other = env.namespace("nsadmin-other").await;

    let req = request("ops", &home, OnboardingProfile::NamespaceAdmin, &[&target]);
    onboarding::apply(&admin, &req).await?;
    let token = service_account_token(&admin, &home, "ops", None).await?;
    let sa = token_client(env, &token.token);

    let admin_sample = [
        ("create", "apps", "deployments"),
        ("delete", "", "pods"),
        ("get", "", "secrets"),
        ("update", "", "configmaps"),
        ("create", RBAC, "rolebindings"),
        ("watch", "", "events"),
    ];
    assert_allowed(&sa, &admin_sample, Some(&target), true).await?;
    assert_allowed(&sa, &admin_sample, Some(&other), false).await?;
    assert_allowed(&sa, &[("get", "", "secrets")], Some(&home), false).await?;
    // Even `admin` may not change quotas of its own namespace.
    assert_allowed(
        &sa,
        &[("update", "", "resourcequotas")],
        Some(&target),
        false,
    )
    .await?;
    assert_allowed(
        &sa,
        &[("delete", "", "nodes"), ("create", RBAC, "clusterroles")],
        None,
        false,
    )
    .await?;
    onboarding::delete(&admin, &home, "ops").await?;
    Ok(())
}

#[tokio::test]
async fn cluster_admin_may_do_anything() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("cadmin-home").await;
    let other = env.namespace("cadmin-other").await;

    let req = request("root", &home, OnboardingProfile::ClusterAdmin, &[]);
    onboarding::apply(&admin, &req).await?;
    let token = service_account_token(&admin, &home, "root", None).await?;
    let sa = token_client(env, &token.token);
    assert_allowed(
        &sa,
        &[("delete", "", "nodes"), ("create", RBAC, "clusterroles")],
        None,
        true,
    )
    .await?;
    assert_allowed(&sa, &[("get", "", "secrets")], Some(&other), true).await?;

    onboarding::delete(&admin, &home, "root").await?;
    Ok(())
}

#[tokio::test]
async fn token_request_with_a_ttl_works_and_expires() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("ttl").await;
    onboarding::apply(
        &admin,
        &request("ci", &home, OnboardingProfile::Builds, &[&home]),
    )
    .await?;

    let before = Timestamp::now();
    let ttl = Duration::from_secs(3600);
    let outcome = service_account_token(&admin, &home, "ci", Some(ttl)).await?;
    let TokenSource::TokenRequest {
        expires_at: Some(expires_at),
    } = outcome.source
    else {
        anyhow::bail!("expected a TokenRequest token with an expiry, got {outcome:?}")
    };
    let lifetime = expires_at.duration_since(before).as_secs();
    ensure!(
        (3500..=3700).contains(&lifetime),
        "expires in {lifetime}s, asked for 3600s"
    );
    ensure!(
        !format!("{outcome:?}").contains("eyJ"),
        "Debug shows no token"
    );

    let sa = token_client(env, &outcome.token);
    assert_profile_allowed(&sa, OnboardingProfile::Builds, Some(&home)).await?;
    Api::<Pod>::namespaced(sa, &home)
        .list(&Default::default())
        .await?;

    let err = service_account_token(&admin, &home, "ci", Some(Duration::from_secs(60)))
        .await
        .unwrap_err();
    ensure!(matches!(err, TokenError::TtlTooShort(_)), "{err}");
    onboarding::delete(&admin, &home, "ci").await?;
    Ok(())
}

#[tokio::test]
async fn token_of_an_account_tether_did_not_create_comes_from_its_listed_secret() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("legacy").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("legacy".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts.create(&PostParams::default(), &sa).await?;
    // Before 1.24 the token controller lists a token Secret on the account.
    let listed = |sa: Option<&ServiceAccount>| {
        sa.and_then(|sa| sa.secrets.as_ref())
            .is_some_and(|s| !s.is_empty())
    };
    let sa = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(accounts, "legacy", listed),
    )
    .await??
    .context("account exists")?;
    let listed_name = sa.secrets.unwrap()[0].name.clone().context("secret name")?;

    let outcome = service_account_token(&admin, &ns, "legacy", None).await?;
    ensure!(
        outcome.source == TokenSource::Secret { name: listed_name },
        "{outcome:?}"
    );
    let client = token_client(env, &outcome.token);
    let err = Api::<Pod>::namespaced(client, &ns)
        .list(&Default::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = &err else {
        anyhow::bail!("{err}")
    };
    ensure!(
        status.code == 403
            && status
                .message
                .contains(&format!("system:serviceaccount:{ns}:legacy")),
        "authenticated as the account, which has no bindings: {err}"
    );
    Ok(())
}

#[tokio::test]
async fn token_for_a_missing_account_says_where_it_looked_and_what_to_run() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("ghost").await;
    let err = service_account_token(&admin, &ns, "ghost", None)
        .await
        .unwrap_err();
    let msg = err.to_string();
    ensure!(
        matches!(err, TokenError::ServiceAccountNotFound { .. }),
        "{msg}"
    );
    ensure!(msg.contains(&format!("namespace '{ns}'")), "{msg}");
    ensure!(msg.contains("tether rbac manifest"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn apply_is_idempotent_prunes_what_it_no_longer_grants_and_delete_removes_all() -> Result<()>
{
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("idem-home").await;
    let t1 = env.namespace("idem-a").await;
    let t2 = env.namespace("idem-b").await;
    let req = request("ci", &home, OnboardingProfile::Deployments, &[&t1, &t2]);

    let first = onboarding::apply(&admin, &req).await?;
    ensure!(first.applied.len() == 5, "{first:?}");
    let token = service_account_token(&admin, &home, "ci", None).await?;
    let listed = kubectl_labelled(env, &home, "ci")?;
    ensure!(listed.len() == 5, "{listed:?}");

    let second = onboarding::apply(&admin, &req).await?;
    ensure!(second.pruned.is_empty(), "{second:?}");
    for (object, outcome) in &second.applied {
        // The token controller may still be updating the account and its Secret;
        // the RBAC objects are tether's alone and must be untouched.
        let rbac = !matches!(object.kind, ObjectKind::ServiceAccount | ObjectKind::Secret);
        ensure!(
            *outcome != ApplyOutcome::Created && (!rbac || *outcome == ApplyOutcome::Unchanged),
            "second apply changed {object}: {outcome:?}"
        );
    }
    ensure!(
        kubectl_labelled(env, &home, "ci")? == listed,
        "no duplicates"
    );

    // A narrower request takes away what it no longer grants.
    let narrower = request("ci", &home, OnboardingProfile::Builds, &[&t1]);
    let third = onboarding::apply(&admin, &narrower).await?;
    let pruned: Vec<String> = third.pruned.iter().map(ToString::to_string).collect();
    let old = format!("tether:{home}:ci:deployments");
    let mut expected = vec![
        format!("ClusterRole {old}"),
        format!("RoleBinding {t1}/{old}"),
        format!("RoleBinding {t2}/{old}"),
    ];
    expected.sort();
    let mut pruned_sorted = pruned.clone();
    pruned_sorted.sort();
    ensure!(pruned_sorted == expected, "{pruned:?}");
    let sa = token_client(env, &token.token);
    assert_allowed(&sa, &[("create", "apps", "deployments")], Some(&t1), false).await?;
    assert_profile_allowed(&sa, OnboardingProfile::Builds, Some(&t1)).await?;
    assert_allowed(&sa, &[("get", "", "pods")], Some(&t2), false).await?;

    let deleted = onboarding::delete(&admin, &home, "ci").await?;
    let kinds: Vec<ObjectKind> = deleted.deleted.iter().map(|r| r.kind).collect();
    ensure!(
        kinds
            == [
                ObjectKind::RoleBinding,
                ObjectKind::ClusterRole,
                ObjectKind::Secret,
                ObjectKind::ServiceAccount
            ],
        "bindings first, the account last: {deleted:?}"
    );
    let left = kubectl_labelled(env, &home, "ci")?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    ensure!(
        onboarding::delete(&admin, &home, "ci")
            .await?
            .deleted
            .is_empty(),
        "deleting again finds nothing"
    );
    // The account's token lost all access with it: 401 once the API server's
    // service-account cache has seen the deletion, 403 (no bindings) before that.
    let err = Api::<Pod>::namespaced(sa, &t1)
        .list(&Default::default())
        .await
        .unwrap_err();
    ensure!(
        matches!(&err, kube::Error::Api(s) if s.code == 401 || s.code == 403),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn apply_into_a_missing_namespace_changes_nothing_and_says_what_to_do() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let home = env.namespace("missing").await;
    let absent = tether_testenv::unique("absent");
    let req = request("ci", &home, OnboardingProfile::Builds, &[&home, &absent]);
    let err = onboarding::apply(&admin, &req).await.unwrap_err();
    let msg = err.to_string();
    ensure!(matches!(err, ApplyError::NamespaceMissing(_)), "{msg}");
    ensure!(
        msg.contains(&format!("namespace '{absent}' does not exist"))
            && msg.contains(&format!("kubectl create namespace {absent}")),
        "{msg}"
    );
    let left = kubectl_labelled(env, &home, "ci")?;
    ensure!(left.is_empty(), "nothing applied: {left:?}");

    // Same for the account's own namespace.
    let req = request("ci", &absent, OnboardingProfile::Builds, &[]);
    let err = onboarding::apply(&admin, &req).await.unwrap_err();
    ensure!(
        matches!(&err, ApplyError::NamespaceMissing(ns) if *ns == absent),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn the_admin_kubeconfig_imports_and_connects() -> Result<()> {
    let env = KubeEnv::get();
    let imported = import_kubeconfig_file(&env.kubeconfig, None, onboarding::FileAccess::NONE)?;
    ensure!(imported.server == env.url, "{imported:?}");
    ensure!(
        matches!(imported.auth, ImportedAuth::ClientCert { .. }),
        "{imported:?}"
    );
    let client = imported.access().client()?;
    ensure!(client.apiserver_version().await?.major == "1");
    ensure!(can_i(&client, "create", RBAC, "clusterroles", None).await?);
    Ok(())
}
