//! Pre-flight: everything that would make the deploy fail, found before any
//! change and reported at once.
//!
//! 1. Every kind is served by the cluster (discovery), or defined by a
//!    CustomResourceDefinition of the same deploy.
//! 2. SelfSubjectAccessReview of every verb the deploy uses, per resource and
//!    namespace (see [`required_permissions`]); a missing one comes with the
//!    RBAC rule that grants it.
//! 3. A server-side dry run of every object: invalid fields, admission
//!    refusals and conflicts with other field managers (named with the field
//!    and its owner) show up here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::{stream, StreamExt};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client};
use serde_json::Value;

use super::{DeployRequest, Manifest, Problem};
use crate::access::{self, Access};
use crate::onboarding::apply::FIELD_MANAGER;

/// An object with everything needed to apply it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: Manifest,
    pub resource: ApiResource,
    pub namespaced: bool,
    /// The namespace it goes to (`None` when cluster-scoped).
    pub namespace: Option<String>,
    /// Its kind is defined by a CRD of this deploy (not served yet).
    pub from_bundle_crd: bool,
}

impl Resolved {
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.manifest.kind, self.manifest.name),
            None => format!("{} {}", self.manifest.kind, self.manifest.name),
        }
    }

    /// The object as it is applied: the namespace set when it goes in one.
    pub fn body(&self) -> Value {
        let mut v = self.manifest.object.clone();
        if let Some(ns) = &self.namespace {
            v["metadata"]["namespace"] = Value::String(ns.clone());
        }
        v
    }

    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// A permission the deploy needs.
pub type Permission = Access;

fn gvk(m: &Manifest) -> GroupVersionKind {
    let (group, version) = match m.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", m.api_version.as_str()),
    };
    GroupVersionKind::gvk(group, version, &m.kind)
}

/// The kinds the CRDs of this deploy define: (group, kind) -> (plural, version, namespaced).
fn bundle_crds(manifests: &[Manifest]) -> HashMap<(String, String), (String, Vec<String>, bool)> {
    let mut out = HashMap::new();
    for m in manifests {
        if m.kind != "CustomResourceDefinition" {
            continue;
        }
        let spec = &m.object["spec"];
        let (Some(group), Some(kind), Some(plural)) = (
            spec["group"].as_str(),
            spec["names"]["kind"].as_str(),
            spec["names"]["plural"].as_str(),
        ) else {
            continue;
        };
        let versions = spec["versions"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| v["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        out.insert(
            (group.to_string(), kind.to_string()),
            (plural.to_string(), versions, namespaced),
        );
    }
    out
}

/// Resolves each object's resource and namespace. Problems for kinds the
/// cluster does not serve.
pub async fn resolve(
    client: &Client,
    req: &DeployRequest,
    manifests: &[Manifest],
) -> Result<Vec<Resolved>, Vec<Problem>> {
    let groups: BTreeSet<String> = manifests.iter().map(|m| m.group().to_string()).collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let discovery = Discovery::new(client.clone())
        .filter(&group_refs)
        .run()
        .await
        .map_err(|e| {
            vec![Problem::general().with(
                "DISCOVERY_FAILED",
                format!("cannot ask the cluster which kinds it serves: {e}"),
                "check the connector with `tether connector test`",
            )]
        })?;
    let crds = bundle_crds(manifests);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for m in manifests {
        let gvk = gvk(m);
        let (resource, namespaced, from_bundle_crd) = match discovery.resolve_gvk(&gvk) {
            Some((ar, caps)) => (ar, caps.scope == Scope::Namespaced, false),
            None => match crds.get(&(gvk.group.clone(), gvk.kind.clone())) {
                Some((plural, versions, namespaced)) if versions.contains(&gvk.version) => (
                    ApiResource::from_gvk_with_plural(&gvk, plural),
                    *namespaced,
                    true,
                ),
                _ => {
                    let served: Vec<String> = discovery
                        .groups()
                        .flat_map(|g| g.recommended_resources())
                        .filter(|(ar, _)| ar.kind == m.kind)
                        .map(|(ar, _)| ar.api_version.clone())
                        .collect();
                    let fix = if served.is_empty() {
                        format!("the cluster has no kind {}: install its CustomResourceDefinition first (or add it to this deploy), or fix the kind", m.kind)
                    } else {
                        format!(
                            "the cluster serves {} as {}: change apiVersion",
                            m.kind,
                            served.join(", ")
                        )
                    };
                    problems.push(Problem::of(m).with(
                        "UNKNOWN_KIND",
                        format!("the cluster does not serve {} {}", m.api_version, m.kind),
                        fix,
                    ));
                    continue;
                }
            },
        };
        let namespace = namespaced.then(|| {
            m.namespace
                .clone()
                .unwrap_or_else(|| req.default_namespace().to_string())
        });
        if !namespaced && m.namespace.is_some() {
            // kubectl ignores it too, but it is usually a mistake worth saying.
            tracing::debug!(object = %m.label(), "namespace set on a cluster-scoped object is ignored");
        }
        out.push(Resolved {
            manifest: m.clone(),
            resource,
            namespaced,
            namespace,
            from_bundle_crd,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Kinds whose steady state is watched, so the deploy needs `list` and `watch`.
pub fn watched(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "Pod"
            | "PersistentVolumeClaim"
            | "Service"
            | "CustomResourceDefinition"
    )
}

/// Every permission the deploy uses, with the objects that need each:
/// `get`, `create`, `patch` on every object (`delete` when pruning), `list`
/// and `watch` on the kinds whose steady state is watched, pods, their logs
/// and events in each namespace with workloads, and the release Secrets.
pub fn required_permissions(
    objects: &[Resolved],
    prune: bool,
    release_namespace: &str,
) -> BTreeMap<Permission, Vec<String>> {
    let mut out: BTreeMap<Permission, Vec<String>> = BTreeMap::new();
    let mut add = |verb: &str, group: &str, resource: &str, ns: Option<&str>, who: &str| {
        let list = out
            .entry(Permission {
                verb: verb.into(),
                group: group.into(),
                resource: resource.into(),
                namespace: ns.map(str::to_string),
            })
            .or_default();
        if !list.iter().any(|w| w == who) {
            list.push(who.to_string());
        }
    };
    for o in objects {
        let (g, r, ns) = (
            o.resource.group.as_str(),
            o.resource.plural.as_str(),
            o.namespace.as_deref(),
        );
        let who = o.label();
        for verb in ["get", "create", "patch"] {
            add(verb, g, r, ns, &who);
        }
        if prune {
            add("delete", g, r, ns, &who);
        }
        if watched(&o.manifest.kind) {
            add("list", g, r, ns, &who);
            add("watch", g, r, ns, &who);
        }
        if matches!(
            o.manifest.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod"
        ) {
            for verb in ["list", "watch"] {
                add(verb, "", "pods", ns, "steady-state checks");
                add(verb, "", "events", ns, "pod events");
            }
            add("get", "", "pods/log", ns, "logs of failing containers");
        }
        if o.manifest.kind == "PersistentVolumeClaim" {
            for verb in ["list", "watch"] {
                add(verb, "", "events", ns, "claim events");
            }
        }
    }
    for verb in ["list", "create", "patch"] {
        add(
            verb,
            "",
            "secrets",
            Some(release_namespace),
            "the release record",
        );
    }
    out
}

/// The RBAC rule granting `verbs` on `resource`, as a Role's (or, without a
/// namespace, a ClusterRole's) `rules` item.
pub fn rule_for(group: &str, resource: &str, verbs: &[&str]) -> String {
    access::rule_yaml(group, &[resource], verbs)
}

/// Checks every permission; a problem per missing one (verbs of one resource
/// and namespace together), naming the objects that need it.
pub async fn check_permissions(
    client: &Client,
    needed: &BTreeMap<Permission, Vec<String>>,
) -> Vec<Problem> {
    let results = access::can_i_all(client, needed.keys().cloned().collect()).await;
    // (group, resource, namespace) -> missing verbs
    let mut missing: BTreeMap<(String, String, Option<String>), Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (p, r) in results {
        match r {
            Ok(v) if v.allowed => {}
            Ok(_) => missing
                .entry((p.group.clone(), p.resource.clone(), p.namespace.clone()))
                .or_default()
                .push(p.verb.clone()),
            Err(e) => problems.push(Problem::general().with(
                "ACCESS_REVIEW_FAILED",
                format!("cannot check permission {} {}: {e}", p.verb, p.resource),
                "check the connector with `tether connector test`",
            )),
        }
    }
    for ((group, resource, ns), mut verbs) in missing {
        verbs.sort();
        let who: Vec<String> = needed
            .iter()
            .filter(|(p, _)| p.group == group && p.resource == resource && p.namespace == ns)
            .flat_map(|(_, w)| w.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let target = if group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{group}")
        };
        let verb_refs: Vec<&str> = verbs.iter().map(String::as_str).collect();
        let (where_, holder) = match &ns {
            Some(ns) => (
                format!("in namespace {ns}"),
                format!("a Role in namespace {ns}"),
            ),
            None => ("cluster-wide".to_string(), "a ClusterRole".to_string()),
        };
        let mut p = Problem::general().with(
            "MISSING_PERMISSION",
            format!(
                "the connector's account may not {} {target} {where_} (needed for {})",
                verbs.join(", "),
                who.join(", ")
            ),
            format!("add this rule to {holder} bound to the connector's account (or print the whole Role with `tether rbac for`)"),
        );
        p.object = who.first().cloned();
        p.rule = Some(rule_for(&group, &resource, &verb_refs));
        problems.push(p);
    }
    problems
}

/// `Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas`
/// -> [("kubectl", ".spec.replicas")].
pub fn conflicts(message: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in message.split(" with \"").skip(1) {
        let Some((owner, rest)) = part.split_once('"') else {
            continue;
        };
        let after = rest.split_once(':').map(|(_, f)| f).unwrap_or_default();
        let mut fields = Vec::new();
        for line in after.lines() {
            let t = line.trim().trim_start_matches("- ").trim();
            if t.starts_with('.') {
                fields.push(t.to_string());
            } else if !t.is_empty() {
                break;
            }
        }
        out.push((owner.to_string(), fields.join(", ")));
    }
    out
}

/// A problem for a refused apply (dry run or real).
pub fn apply_problem(o: &Resolved, e: &kube::Error, dry_run: bool) -> Problem {
    let p = Problem::of(&o.manifest);
    let what = if dry_run {
        "the server-side dry run"
    } else {
        "applying"
    };
    match e {
        kube::Error::Api(s) if s.code == 409 && s.message.contains("conflict") => {
            let list: Vec<String> = conflicts(&s.message)
                .into_iter()
                .map(|(owner, field)| format!("{field} (owned by field manager \"{owner}\")"))
                .collect();
            p.with(
                "CONFLICT",
                format!("{what} of {} conflicts with another field manager: {}", o.label(), list.join("; ")),
                "leave these fields out of the manifest, change them with their owner, or take them over with --force-conflicts",
            )
        }
        kube::Error::Api(s) if s.code == 422 => p.with(
            "INVALID",
            format!("{} is invalid: {}", o.label(), s.message),
            "fix the fields named in the message",
        ),
        kube::Error::Api(s) if s.code == 404 && s.message.contains("namespaces") => p.with(
            "NAMESPACE_NOT_FOUND",
            format!("{}: {}", o.label(), s.message),
            format!(
                "create the namespace first or add a Namespace document for {} to this deploy",
                o.namespace.as_deref().unwrap_or_default()
            ),
        ),
        kube::Error::Api(s) => p.with(
            "DRY_RUN_FAILED",
            format!(
                "{what} of {} was refused ({} {}): {}",
                o.label(),
                s.code,
                s.reason,
                s.message
            ),
            "fix the object, or the cluster policy that refuses it",
        ),
        other => p.with(
            "DRY_RUN_FAILED",
            format!("{what} of {} failed: {other}", o.label()),
            "check the connector with `tether connector test`",
        ),
    }
}

pub fn patch_params(force: bool, dry_run: bool) -> PatchParams {
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    if force {
        pp = pp.force();
    }
    if dry_run {
        pp = pp.dry_run();
    }
    pp
}

/// A server-side dry run of every object that can be tried now: not those
/// whose kind a CRD of this deploy defines, nor those going into a namespace
/// this deploy creates (both are applied in order later).
pub async fn dry_run(client: &Client, objects: &[Resolved], force: bool) -> Vec<Problem> {
    let new_namespaces: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.manifest.kind == "Namespace" && o.resource.group.is_empty())
        .map(|o| o.manifest.name.as_str())
        .collect();
    let pp = patch_params(force, true);
    let results: Vec<Option<Problem>> = stream::iter(objects.iter().cloned())
        .map(|o| {
            let pp = pp.clone();
            let client = client.clone();
            let new_ns = o
                .namespace
                .as_deref()
                .is_some_and(|ns| new_namespaces.contains(ns));
            async move {
                let client = &client;
                let o = &o;
                if o.from_bundle_crd {
                    return None;
                }
                let r = o
                    .api(client)
                    .patch(&o.manifest.name, &pp, &Patch::Apply(&o.body()))
                    .await;
                match r {
                    Ok(_) => None,
                    Err(kube::Error::Api(s)) if s.code == 404 && new_ns => None,
                    // Already reported by the access reviews.
                    Err(kube::Error::Api(s)) if s.code == 403 => None,
                    Err(e) => Some(apply_problem(o, &e, true)),
                }
            }
        })
        .buffered(8)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_owner_and_field() {
        let m = r#"Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:
- .spec.replicas
conflict with "helm" using v1: .data.key"#;
        let c = conflicts(m);
        assert_eq!(
            c[0],
            ("kubectl-edit".to_string(), ".spec.replicas".to_string())
        );
        assert_eq!(c[1], ("helm".to_string(), ".data.key".to_string()));
        let one = conflicts(
            r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas"#,
        );
        assert_eq!(
            one,
            vec![("kubectl".to_string(), ".spec.replicas".to_string())]
        );
    }
}
