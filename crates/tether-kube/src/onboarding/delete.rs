//! Finding and deleting everything onboarding created for one service account, by
//! its labels.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::account::ServiceAccountRef;
use super::apply::ApplyError;
use super::manifests::ManifestError;
use super::object_ref::{ObjectKind, ObjectRef};

/// What [`delete`] removed, bindings first and the service account last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    pub deleted: Vec<ObjectRef>,
}

/// Deletes every object labelled for the service account `namespace/service_account`
/// (bindings, roles, secrets, the account), whatever profile created them. Deleting
/// what is already gone is not an error, so this can be re-run after a failure.
pub async fn delete(
    client: &Client,
    namespace: &str,
    service_account: &str,
) -> Result<DeleteReport, ApplyError> {
    let account =
        ServiceAccountRef::new(namespace, service_account).map_err(ManifestError::from)?;
    let mut report = DeleteReport::default();
    let mut found = list_labelled(client, &account, &[]).await?;
    found.sort();
    for object in found {
        let deleted = delete_object(client, &object)
            .await
            .map_err(|e| ApplyError::api(format!("delete {object}"), e, &report.deleted))?;
        if deleted {
            report.deleted.push(object);
        }
    }
    Ok(report)
}

/// Every object in the cluster labelled for `account`.
pub(crate) async fn list_labelled(
    client: &Client,
    account: &ServiceAccountRef,
    done: &[ObjectRef],
) -> Result<Vec<ObjectRef>, ApplyError> {
    let selector = account.selector();
    let mut out = Vec::new();
    for kind in [
        ObjectKind::ClusterRoleBinding,
        ObjectKind::RoleBinding,
        ObjectKind::ClusterRole,
        ObjectKind::Role,
        ObjectKind::Secret,
        ObjectKind::ServiceAccount,
    ] {
        let c = client.clone();
        let found = match kind {
            ObjectKind::ClusterRoleBinding => list::<ClusterRoleBinding>(c, kind, &selector).await,
            ObjectKind::RoleBinding => list::<RoleBinding>(c, kind, &selector).await,
            ObjectKind::ClusterRole => list::<ClusterRole>(c, kind, &selector).await,
            ObjectKind::Role => list::<Role>(c, kind, &selector).await,
            ObjectKind::Secret => list::<Secret>(c, kind, &selector).await,
            ObjectKind::ServiceAccount => list::<ServiceAccount>(c, kind, &selector).await,
        };
        let found = found.map_err(|e| {
            ApplyError::api(
                format!("list the {kind}s labelled for service account {account}"),
                e,
                done,
            )
        })?;
        out.extend(found);
    }
    Ok(out)
}

async fn list<K>(
    client: Client,
    kind: ObjectKind,
    selector: &str,
) -> Result<Vec<ObjectRef>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::all(client);
    let list = api.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .iter()
        .map(|o| {
            let meta = o.meta();
            ObjectRef::new(
                kind,
                meta.namespace.as_deref(),
                meta.name.as_deref().unwrap_or_default(),
            )
        })
        .collect())
}

/// Deletes one object; `Ok(false)` when it was already gone.
pub(crate) async fn delete_object(
    client: &Client,
    object: &ObjectRef,
) -> Result<bool, kube::Error> {
    let c = client.clone();
    let ns = object.namespace.as_deref().unwrap_or_default();
    let name = &object.name;
    match object.kind {
        ObjectKind::ClusterRoleBinding => {
            delete_with(Api::<ClusterRoleBinding>::all(c), name).await
        }
        ObjectKind::RoleBinding => delete_with(Api::<RoleBinding>::namespaced(c, ns), name).await,
        ObjectKind::ClusterRole => delete_with(Api::<ClusterRole>::all(c), name).await,
        ObjectKind::Role => delete_with(Api::<Role>::namespaced(c, ns), name).await,
        ObjectKind::Secret => delete_with(Api::<Secret>::namespaced(c, ns), name).await,
        ObjectKind::ServiceAccount => {
            delete_with(Api::<ServiceAccount>::namespaced(c, ns), name).await
        }
    }
}

async fn delete_with<K>(api: Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
