//! Releases: each deploy of a name is release N, stored in the cluster (as
//! Helm does) as a Secret `tether.release.NAME.vN` in the release namespace,
//! labelled `app.kubernetes.io/managed-by=tether`, `tether.io/release=NAME`,
//! `tether.io/revision=N`, holding the manifests, the objects applied and the
//! outcome. The cluster stays the source of truth; the manager keeps a summary.
//!
//! A release is tied to the task that makes it (annotation
//! `tether.io/task-id`): a delegate that resumes the task after another one
//! died continues that release instead of recording a second one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use super::preflight::{patch_params, Resolved};
use super::{ManifestSource, Problem, Progress};

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_RELEASE: &str = "tether.io/release";
pub const LABEL_REVISION: &str = "tether.io/revision";
pub const ANNOTATION_TASK: &str = "tether.io/task-id";
const DATA_KEY: &str = "release";

/// An object a release applied, with what it takes to delete it later.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseObject {
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ReleaseObject {
    pub fn of(o: &Resolved) -> ReleaseObject {
        ReleaseObject {
            api_version: o.manifest.api_version.clone(),
            kind: o.manifest.kind.clone(),
            plural: o.resource.plural.clone(),
            name: o.manifest.name.clone(),
            namespace: o.namespace.clone(),
        }
    }

    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// Same object (apiVersion may change between releases: group and kind count).
    fn same(&self, other: &ReleaseObject) -> bool {
        let group = |a: &str| {
            a.rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default()
        };
        group(&self.api_version) == group(&other.api_version)
            && self.kind == other.kind
            && self.name == other.name
            && self.namespace == other.namespace
    }

    fn api(&self, client: &Client) -> Api<DynamicObject> {
        let (group, version) = match self.api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &self.kind),
            &self.plural,
        );
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        }
    }
}

/// One release as stored in its Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    /// `pending`, `deployed`, `failed`, `superseded`.
    pub status: String,
    pub task_id: String,
    pub manifests: Vec<ManifestSource>,
    pub objects: Vec<ReleaseObject>,
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// What a deploy report says about its release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// The Secret holding it.
    pub secret: String,
}

impl Release {
    pub fn summary(&self, previous: Option<u32>, pruned: Vec<String>) -> ReleaseSummary {
        ReleaseSummary {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            revision: self.revision,
            status: self.status.clone(),
            previous,
            pruned,
            secret: secret_name(&self.name, self.revision),
        }
    }
}

pub fn secret_name(name: &str, revision: u32) -> String {
    format!("tether.release.{name}.v{revision}")
}

/// A release name: lower-case letters, digits and `-`, at most 53 characters
/// (it is part of a Secret name and a label value).
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 53
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("release name '{name}' must be 1-53 lower-case letters, digits or '-', starting and ending with a letter or digit"))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every release of `name` in `namespace`, oldest first.
pub async fn list(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Release>, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let lp =
        ListParams::default().labels(&format!("{LABEL_MANAGED_BY}=tether,{LABEL_RELEASE}={name}"));
    let mut out: Vec<Release> = secrets
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter_map(|s| {
            let data = s.data?.remove(DATA_KEY)?;
            serde_json::from_slice(&data.0).ok()
        })
        .collect();
    out.sort_by_key(|r| r.revision);
    Ok(out)
}

fn secret(r: &Release) -> Secret {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_MANAGED_BY.to_string(), "tether".to_string());
    labels.insert(LABEL_RELEASE.to_string(), r.name.clone());
    labels.insert(LABEL_REVISION.to_string(), r.revision.to_string());
    labels.insert("tether.io/status".to_string(), r.status.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_TASK.to_string(), r.task_id.clone());
    let mut data = BTreeMap::new();
    data.insert(
        DATA_KEY.to_string(),
        ByteString(serde_json::to_vec(r).unwrap_or_default()),
    );
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name(&r.name, r.revision)),
            namespace: Some(r.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("tether.io/release.v1".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The release this task makes: the one it already started (a resumed task),
/// or the next revision. Also returns the releases before it.
pub async fn begin(
    client: &Client,
    namespace: &str,
    name: &str,
    task_id: &str,
    manifests: &[ManifestSource],
    objects: Vec<ReleaseObject>,
) -> Result<(Release, Vec<Release>), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    loop {
        let all = list(client, namespace, name).await?;
        if let Some(mine) = all
            .iter()
            .find(|r| !task_id.is_empty() && r.task_id == task_id)
        {
            let before = all
                .iter()
                .filter(|r| r.revision < mine.revision)
                .cloned()
                .collect();
            let mut mine = mine.clone();
            mine.objects = objects;
            mine.status = "pending".into();
            return Ok((mine, before));
        }
        let revision = all.last().map(|r| r.revision + 1).unwrap_or(1);
        let r = Release {
            name: name.to_string(),
            namespace: namespace.to_string(),
            revision,
            status: "pending".into(),
            task_id: task_id.to_string(),
            manifests: manifests.to_vec(),
            objects: objects.clone(),
            started_at: now_ms(),
            finished_at: None,
            summary: None,
        };
        match secrets.create(&PostParams::default(), &secret(&r)).await {
            Ok(_) => return Ok((r, all)),
            // Another deploy of the same name took this revision: look again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes the release's current state to its Secret.
pub async fn save(client: &Client, r: &Release) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
    let mut s = serde_json::to_value(secret(r)).unwrap_or_default();
    s["apiVersion"] = "v1".into();
    s["kind"] = "Secret".into();
    secrets
        .patch(
            &secret_name(&r.name, r.revision),
            &patch_params(true, false),
            &Patch::Apply(&s),
        )
        .await?;
    Ok(())
}

/// Deletes what `previous` applied that `current` no longer has; returns
/// what was deleted.
pub async fn prune(
    client: &Client,
    previous: &Release,
    current: &[ReleaseObject],
    progress: &Progress,
) -> Result<Vec<String>, Problem> {
    let mut pruned = Vec::new();
    for old in previous
        .objects
        .iter()
        .filter(|o| !current.iter().any(|c| c.same(o)))
    {
        match old
            .api(client)
            .delete(&old.name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(Problem::general().with(
                    "PRUNE_FAILED",
                    format!(
                        "cannot delete {} (in release {} but not in this one): {e}",
                        old.label(),
                        previous.revision
                    ),
                    "delete it by hand, or grant the connector's account delete on it",
                ))
            }
        }
        progress.emit(
            "pruned",
            format!(
                "deleted {} (release {} had it, this one does not)",
                old.label(),
                previous.revision
            ),
        );
        pruned.push(old.label());
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names_are_checked() {
        assert!(validate_name("web-app").is_ok());
        assert!(validate_name("Web").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name(&"a".repeat(54)).is_err());
    }

    #[test]
    fn same_object_ignores_the_version() {
        let a = ReleaseObject {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            name: "web".into(),
            namespace: Some("n".into()),
        };
        let mut b = a.clone();
        b.api_version = "apps/v1beta2".into();
        assert!(a.same(&b));
        b.name = "api".into();
        assert!(!a.same(&b));
    }
}
