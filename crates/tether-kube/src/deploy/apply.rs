//! Server-side apply of every object (field manager `tether`): Namespaces
//! first, then CustomResourceDefinitions (waiting until each is Established,
//! so the resources it defines can be applied), then the rest in a stable
//! order: by kind (what others depend on first, as Helm orders them), then
//! namespace, then name; the objects of one kind a few at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
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

/// How many objects of one kind are applied at once.
const APPLY_CONCURRENCY: usize = 8;

/// Applies every object in order, kind after kind; the objects of one kind
/// (CRDs apart, each waited Established before the next) a few at a time, as
/// nothing of one kind depends on another of the same kind. Stops at the first
/// refusal: nothing more is started, what was applied is in the list.
pub async fn apply_all(
    client: &Client,
    objects: &[Resolved],
    force: bool,
    progress: &Progress,
) -> Result<Vec<ObjectResult>, (Vec<ObjectResult>, Problem)> {
    let pp = patch_params(force, false);
    let mut done = Vec::new();
    let stop = AtomicBool::new(false);
    for group in objects
        .chunk_by(|a, b| a.manifest.kind == b.manifest.kind && a.resource.group == b.resource.group)
    {
        let crds = group[0].manifest.kind == "CustomResourceDefinition"
            && group[0].resource.group == "apiextensions.k8s.io";
        let futures: Vec<_> = group
            .iter()
            .map(|o| apply_one(client, o, &pp, &stop))
            .collect();
        let mut applies = stream::iter(futures).buffered(if crds { 1 } else { APPLY_CONCURRENCY });
        let mut failed = None;
        while let Some((o, applied)) = applies.next().await {
            let obj = match applied {
                None => continue,
                Some(Ok(obj)) => obj,
                Some(Err(e)) => {
                    failed.get_or_insert_with(|| apply_problem(o, &e, false));
                    continue;
                }
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
            if crds {
                if let Err(p) = established(client, o, progress).await {
                    failed = Some(p);
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        if let Some(p) = failed {
            return Err((done, p));
        }
    }
    Ok(done)
}

/// One server-side apply, unless an earlier one of its kind was refused.
async fn apply_one<'a>(
    client: &Client,
    o: &'a Resolved,
    pp: &PatchParams,
    stop: &AtomicBool,
) -> (&'a Resolved, Option<kube::Result<kube::api::DynamicObject>>) {
    if stop.load(Ordering::Relaxed) {
        return (o, None);
    }
    let api = o.api(client);
    let body = o.body();
    let patch = Patch::Apply(&body);
    let r = retrying(|| api.patch(&o.manifest.name, pp, &patch)).await;
    if r.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    (o, Some(r))
}

/// Waits until the CRD `o` is Established, so what it defines can be applied.
async fn established(client: &Client, o: &Resolved, progress: &Progress) -> Result<(), Problem> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = tokio::time::timeout(
        CRD_WAIT,
        await_condition(crds, &o.manifest.name, conditions::is_crd_established()),
    )
    .await;
    match established {
        Ok(Ok(_)) => {
            progress.emit("steady", format!("{} is Established", o.label()));
            Ok(())
        }
        Ok(Err(e)) => Err(Problem::of(&o.manifest).with(
            "CRD_NOT_ESTABLISHED",
            format!("cannot watch {} until it is Established: {e}", o.label()),
            "check the CRD with `kubectl get crd -o yaml`",
        )),
        Err(_) => Err(Problem::of(&o.manifest).with(
            "CRD_NOT_ESTABLISHED",
            format!("{} was not Established within {CRD_WAIT:?}", o.label()),
            "look at its status conditions (kubectl get crd NAME -o yaml): a name conflict or an invalid schema keeps it from being served",
        )),
    }
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
