//! Server-side apply of every object (field manager `tether`): Namespaces
//! first, then CustomResourceDefinitions (waiting until each is Established,
//! so the resources it defines can be applied), then the rest in a stable
//! order: by kind (what others depend on first, as Helm orders them), then
//! namespace, then name.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Patch;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

use super::preflight::{apply_problem, patch_params, Resolved};
use super::{ObjectResult, Problem, Progress};
use crate::transient::retrying;

/// Kinds in the order they are applied; others come after, by name.
const ORDER: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
    "APIService",
];

fn rank(kind: &str) -> usize {
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// The objects in the order they are applied.
pub fn ordered(mut objects: Vec<Resolved>) -> Vec<Resolved> {
    objects.sort_by(|a, b| {
        (
            rank(&a.manifest.kind),
            &a.manifest.kind,
            &a.namespace,
            &a.manifest.name,
        )
            .cmp(&(
                rank(&b.manifest.kind),
                &b.manifest.kind,
                &b.namespace,
                &b.manifest.name,
            ))
    });
    objects
}

/// How long a CRD may take to be Established.
const CRD_WAIT: Duration = Duration::from_secs(60);

/// Applies every object in order; stops at the first refusal (what was
/// applied before it is in the list).
pub async fn apply_all(
    client: &Client,
    objects: &[Resolved],
    force: bool,
    progress: &Progress,
) -> Result<Vec<ObjectResult>, (Vec<ObjectResult>, Problem)> {
    let pp = patch_params(force, false);
    let mut done = Vec::new();
    for o in objects {
        let api = o.api(client);
        let body = o.body();
        let patch = Patch::Apply(&body);
        let applied = retrying(|| api.patch(&o.manifest.name, &pp, &patch)).await;
        let obj = match applied {
            Ok(obj) => obj,
            Err(e) => return Err((done, apply_problem(o, &e, false))),
        };
        let generation = obj
            .metadata
            .generation
            .map(|g| format!(" (generation {g})"))
            .unwrap_or_default();
        progress.emit_data(
            "applied",
            format!("applied {}{generation}", o.label()),
            serde_json::json!({ "kind": o.manifest.kind, "name": o.manifest.name, "namespace": o.namespace, "resourceVersion": obj.metadata.resource_version }),
        );
        done.push(result(o, "applied", None));
        if o.manifest.kind == "CustomResourceDefinition"
            && o.resource.group == "apiextensions.k8s.io"
        {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            let established = tokio::time::timeout(
                CRD_WAIT,
                await_condition(crds, &o.manifest.name, conditions::is_crd_established()),
            )
            .await;
            match established {
                Ok(Ok(_)) => progress.emit("steady", format!("{} is Established", o.label())),
                Ok(Err(e)) => {
                    return Err((done, Problem::of(&o.manifest).with(
                        "CRD_NOT_ESTABLISHED",
                        format!("cannot watch {} until it is Established: {e}", o.label()),
                        "check the CRD with `kubectl get crd -o yaml`",
                    )))
                }
                Err(_) => {
                    return Err((done, Problem::of(&o.manifest).with(
                        "CRD_NOT_ESTABLISHED",
                        format!("{} was not Established within {CRD_WAIT:?}", o.label()),
                        "look at its status conditions (kubectl get crd NAME -o yaml): a name conflict or an invalid schema keeps it from being served",
                    )))
                }
            }
        }
    }
    Ok(done)
}

pub fn result(o: &Resolved, status: &str, detail: Option<String>) -> ObjectResult {
    ObjectResult {
        api_version: o.manifest.api_version.clone(),
        kind: o.manifest.kind.clone(),
        name: o.manifest.name.clone(),
        namespace: o.namespace.clone(),
        status: status.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_crds_come_first_then_a_stable_order() {
        let mut kinds = vec![
            "Deployment",
            "Widget",
            "ConfigMap",
            "CustomResourceDefinition",
            "Namespace",
            "Service",
        ];
        kinds.sort_by_key(|k| (rank(k), *k));
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ConfigMap",
                "Service",
                "Deployment",
                "Widget"
            ]
        );
    }
}
