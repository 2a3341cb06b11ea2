//! Service accounts on the test control plane: create one, read the token of the
//! Secret the token controller makes for it, bind it to a ClusterRole.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};

/// Creates service account `name` in `ns` and returns the token of the Secret
/// the token controller creates for it (Kubernetes 1.20 still does that
/// automatically). Waits for that Secret with a watch, at most a minute.
pub async fn service_account_token(admin: &Client, ns: &str, name: &str) -> Result<String> {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create(&PostParams::default(), &sa)
        .await
        .with_context(|| format!("creating service account {ns}/{name}"))?;
    let has_secret = |sa: Option<&ServiceAccount>| {
        sa.and_then(|sa| sa.secrets.as_ref())
            .is_some_and(|s| !s.is_empty())
    };
    let sa = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(sas.clone(), name, has_secret),
    )
    .await
    .with_context(|| {
        format!("no token Secret for {ns}/{name} after 60 s; is kube-controller-manager running?")
    })??
    .context("service account exists")?;
    let secret_name = sa.secrets.unwrap_or_default()[0]
        .name
        .clone()
        .context("secret name")?;
    let secret = Api::<Secret>::namespaced(admin.clone(), ns)
        .get(&secret_name)
        .await?;
    let token = secret.data.context("secret data")?["token"].0.clone();
    Ok(String::from_utf8(token)?)
}

/// Binds service account `ns/sa` to ClusterRole `role` (e.g. `cluster-admin`)
/// with a ClusterRoleBinding named after the three.
pub async fn bind_cluster_role(admin: &Client, ns: &str, sa: &str, role: &str) -> Result<()> {
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{ns}-{sa}-{role}")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .with_context(|| format!("binding {ns}/{sa} to ClusterRole {role}"))?;
    Ok(())
}
