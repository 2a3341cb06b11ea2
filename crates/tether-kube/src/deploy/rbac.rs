//! `tether rbac for`: the least-privilege RBAC (rbac.authorization.k8s.io/v1)
//! that lets a service account deploy exactly a set of manifests: a Role per
//! namespace and a ClusterRole for cluster-scoped objects, each with the
//! verbs pre-flight checks (see `preflight::required_permissions`), and their
//! bindings. Computed without a cluster, from the kinds Kubernetes ships;
//! other kinds are taken as namespaced, with a lower-case plural.

use std::collections::BTreeMap;

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde_json::{json, Value};

use super::preflight::{required_permissions, Resolved};
use super::Manifest;

/// (kind, plural, namespaced) of the built-in kinds.
const KINDS: &[(&str, &str, bool)] = &[
    ("Namespace", "namespaces", false),
    (
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    ("ClusterRole", "clusterroles", false),
    ("ClusterRoleBinding", "clusterrolebindings", false),
    ("PersistentVolume", "persistentvolumes", false),
    ("StorageClass", "storageclasses", false),
    ("PriorityClass", "priorityclasses", false),
    ("APIService", "apiservices", false),
    (
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    ("IngressClass", "ingressclasses", false),
    ("ConfigMap", "configmaps", true),
    ("Secret", "secrets", true),
    ("Service", "services", true),
    ("ServiceAccount", "serviceaccounts", true),
    ("Pod", "pods", true),
    ("PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("Deployment", "deployments", true),
    ("StatefulSet", "statefulsets", true),
    ("DaemonSet", "daemonsets", true),
    ("ReplicaSet", "replicasets", true),
    ("Job", "jobs", true),
    ("CronJob", "cronjobs", true),
    ("Ingress", "ingresses", true),
    ("NetworkPolicy", "networkpolicies", true),
    ("Role", "roles", true),
    ("RoleBinding", "rolebindings", true),
    ("HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    ("PodDisruptionBudget", "poddisruptionbudgets", true),
    ("ResourceQuota", "resourcequotas", true),
    ("LimitRange", "limitranges", true),
    ("Endpoints", "endpoints", true),
];

fn offline(m: &Manifest, default_ns: &str) -> Resolved {
    let (group, version) = match m.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", m.api_version.as_str()),
    };
    let (plural, namespaced) = KINDS
        .iter()
        .find(|(k, _, _)| *k == m.kind)
        .map(|(_, p, n)| (p.to_string(), *n))
        .unwrap_or_else(|| (format!("{}s", m.kind.to_lowercase()), true));
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &m.kind), &plural);
    Resolved {
        manifest: m.clone(),
        resource,
        namespaced,
        namespace: namespaced.then(|| {
            m.namespace
                .clone()
                .unwrap_or_else(|| default_ns.to_string())
        }),
        from_bundle_crd: false,
    }
}

/// `rules` of a Role/ClusterRole: one rule per (group, resource) with its verbs.
fn rules(perms: &BTreeMap<(String, String), Vec<String>>) -> Vec<Value> {
    perms
        .iter()
        .map(|((group, resource), verbs)| {
            json!({ "apiGroups": [group], "resources": [resource], "verbs": verbs })
        })
        .collect()
}

/// (group, resource) -> verbs.
type RulesOf = BTreeMap<(String, String), Vec<String>>;

/// The Role(s), ClusterRole and bindings, as objects in apply order.
pub fn minimal_rbac(
    manifests: &[Manifest],
    default_ns: &str,
    prune: bool,
    sa_namespace: &str,
    sa_name: &str,
) -> Vec<Value> {
    let objects: Vec<Resolved> = manifests.iter().map(|m| offline(m, default_ns)).collect();
    let needed = required_permissions(&objects, prune, default_ns);
    // namespace (None: cluster) -> (group, resource) -> verbs
    let mut by_ns: BTreeMap<Option<String>, RulesOf> = BTreeMap::new();
    for p in needed.keys() {
        let verbs = by_ns
            .entry(p.namespace.clone())
            .or_default()
            .entry((p.group.clone(), p.resource.clone()))
            .or_default();
        if !verbs.contains(&p.verb) {
            verbs.push(p.verb.clone());
        }
    }
    let role_name = format!("tether-deploy-{sa_name}");
    let subject = json!([{ "kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace }]);
    let mut out = Vec::new();
    for (ns, perms) in &by_ns {
        match ns {
            None => {
                out.push(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": { "name": role_name }, "rules": rules(perms),
                }));
                out.push(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": { "name": role_name },
                    "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name },
                    "subjects": subject,
                }));
            }
            Some(ns) => {
                out.push(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": { "name": role_name, "namespace": ns }, "rules": rules(perms),
                }));
                out.push(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": { "name": role_name, "namespace": ns },
                    "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name },
                    "subjects": subject,
                }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::manifests::{parse, ManifestSource};
    use super::*;

    #[test]
    fn a_role_per_namespace_and_a_cluster_role_for_cluster_objects() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n";
        let ms = parse(&[ManifestSource {
            source: "a.yaml".into(),
            text: text.into(),
        }])
        .unwrap();
        let objs = minimal_rbac(&ms, "default", false, "ci", "deployer");
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Role",
                "RoleBinding"
            ]
        );
        assert_eq!(objs[0]["rules"][0]["resources"][0], "namespaces");
        let shop = objs
            .iter()
            .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == "shop")
            .unwrap();
        let deploy = shop["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resources"][0] == "deployments")
            .unwrap();
        assert_eq!(
            deploy["verbs"],
            json!(["create", "get", "list", "patch", "watch"])
        );
        // No delete unless pruning.
        assert!(!shop.to_string().contains("delete"));
        let pruning = minimal_rbac(&ms, "default", true, "ci", "deployer");
        assert!(pruning.iter().any(|o| o.to_string().contains("delete")));
    }
}
