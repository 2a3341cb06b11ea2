//! Putting a manifest into a cluster with server-side apply, idempotently.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api_error::explain;
use super::delete::{delete_object, list_labelled};
use super::manifests::{rbac_manifest, ManifestError, ManifestObject, ManifestRequest};
use super::object_ref::{ObjectKind, ObjectRef};

/// The field manager of every server-side apply tether makes.
pub const FIELD_MANAGER: &str = "tether";

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Updated,
    Unchanged,
}

/// What [`apply`] did, object by object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every object of the manifest, in the order applied.
    pub applied: Vec<(ObjectRef, ApplyOutcome)>,
    /// Objects an earlier apply created for the same account that the manifest no
    /// longer contains (another profile, a dropped target namespace), now deleted so
    /// no permission outlives the request that granted it.
    pub pruned: Vec<ObjectRef>,
}

/// Why applying or deleting stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "namespace '{0}' does not exist: create it first (kubectl create namespace {0}) or choose \
         another; nothing was changed"
    )]
    NamespaceMissing(String),
    #[error("cannot {step}: {detail}{}", done_note(.done))]
    Api {
        /// What was being done, e.g. `apply ClusterRole tether:default:ci:builds`.
        step: String,
        detail: String,
        /// What had been applied (or deleted) before the failing step.
        done: Vec<ObjectRef>,
        #[source]
        source: Box<kube::Error>,
    },
}

impl ApplyError {
    pub(crate) fn api(step: String, source: kube::Error, done: &[ObjectRef]) -> Self {
        ApplyError::Api {
            step,
            detail: explain(&source),
            done: done.to_vec(),
            source: Box::new(source),
        }
    }
}

fn done_note(done: &[ObjectRef]) -> String {
    if done.is_empty() {
        return String::new();
    }
    let list: Vec<String> = done.iter().map(ToString::to_string).collect();
    format!(
        ". Already done before this step: {}. Running the same command again is safe and continues from here",
        list.join(", ")
    )
}

/// Applies the manifest of `request` (server-side apply, field manager `tether`,
/// taking over fields others changed), then deletes objects labelled for the same
/// account that the manifest no longer contains. Running it twice changes nothing.
pub async fn apply(client: &Client, request: &ManifestRequest) -> Result<ApplyReport, ApplyError> {
    let objects = rbac_manifest(request)?;
    let account = request.account()?;
    let mut namespaces: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o.metadata().namespace.as_deref())
        .collect();
    namespaces.insert(account.namespace());
    for ns in namespaces {
        check_namespace(client, ns).await?;
    }
    let mut report = ApplyReport::default();
    let mut done = Vec::new();
    for object in &objects {
        let object_ref = object.object_ref();
        let outcome = apply_object(client, object)
            .await
            .map_err(|e| ApplyError::api(format!("apply {object_ref}"), e, &done))?;
        report.applied.push((object_ref.clone(), outcome));
        done.push(object_ref);
    }

    let wanted: BTreeSet<ObjectRef> = objects.iter().map(ManifestObject::object_ref).collect();
    let existing = list_labelled(client, &account, &done).await?;
    // Token Secrets are not pruned: `cluster rotate-token` replaces them with
    // new names, and the token a connector holds must survive a re-apply.
    // `delete` still removes every one of them.
    for stale in existing
        .into_iter()
        .filter(|r| !wanted.contains(r) && r.kind != ObjectKind::Secret)
    {
        let deleted = delete_object(client, &stale)
            .await
            .map_err(|e| ApplyError::api(format!("delete the stale {stale}"), e, &done))?;
        if deleted {
            done.push(stale.clone());
            report.pruned.push(stale);
        }
    }
    Ok(report)
}

/// Fails before anything is created when a namespace is missing. Callers that may
/// not read namespaces (an operator with only namespace rights) skip the check.
async fn check_namespace(client: &Client, namespace: &str) -> Result<(), ApplyError> {
    match Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApplyError::NamespaceMissing(namespace.to_string())),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
        Err(e) => Err(ApplyError::api(
            format!("read namespace {namespace}"),
            e,
            &[],
        )),
    }
}

/// Server-side applies one object.
pub async fn apply_object(
    client: &Client,
    object: &ManifestObject,
) -> Result<ApplyOutcome, kube::Error> {
    let c = client.clone();
    let ns = object.metadata().namespace.clone().unwrap_or_default();
    match object {
        ManifestObject::ServiceAccount(o) => {
            apply_with(Api::<ServiceAccount>::namespaced(c, &ns), o).await
        }
        ManifestObject::Secret(o) => apply_with(Api::<Secret>::namespaced(c, &ns), o).await,
        ManifestObject::ClusterRole(o) => apply_with(Api::<ClusterRole>::all(c), o).await,
        ManifestObject::RoleBinding(o) => {
            apply_with(Api::<RoleBinding>::namespaced(c, &ns), o).await
        }
        ManifestObject::ClusterRoleBinding(o) => {
            apply_with(Api::<ClusterRoleBinding>::all(c), o).await
        }
    }
}

async fn apply_with<K>(api: Api<K>, object: &K) -> Result<ApplyOutcome, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let before = api
        .get_opt(&name)
        .await?
        .and_then(|o| o.meta().resource_version.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api.patch(&name, &params, &Patch::Apply(object)).await?;
    Ok(match before {
        None => ApplyOutcome::Created,
        Some(rv) if after.meta().resource_version.as_ref() == Some(&rv) => ApplyOutcome::Unchanged,
        Some(_) => ApplyOutcome::Updated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onboarding::ObjectKind;

    #[test]
    fn a_failed_step_lists_what_was_done_before_it() {
        let done = [
            ObjectRef::new(ObjectKind::ServiceAccount, Some("ns"), "ci"),
            ObjectRef::new(ObjectKind::ClusterRole, None, "tether:ns:ci:builds"),
        ];
        let err = ApplyError::Api {
            step: "apply RoleBinding t/tether:ns:ci:builds".into(),
            detail: "it broke".into(),
            done: done.to_vec(),
            source: Box::new(kube::Error::LinesCodecMaxLineLengthExceeded),
        };
        assert_eq!(
            err.to_string(),
            "cannot apply RoleBinding t/tether:ns:ci:builds: it broke. Already done before this \
             step: ServiceAccount ns/ci, ClusterRole tether:ns:ci:builds. Running the same \
             command again is safe and continues from here"
        );
    }
}
