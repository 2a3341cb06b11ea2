//! Deleting a build's objects, found by label, and waiting (by watching) until
//! they are gone. Bounded by its own limit, so a cancel or a timeout ends.

use std::fmt::Debug;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{DeleteParams, ListParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Watches of one object's deletion started before giving up.
const WATCH_RESTARTS: usize = 20;
/// How long a graceful deletion may take before the object is deleted at once.
const GRACEFUL: Duration = Duration::from_secs(15);

/// What the clean-up did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleanup {
    /// `Pod ns/name`, ... deleted and seen gone.
    #[serde(default)]
    pub deleted: Vec<String>,
    /// What could not be deleted or did not go away in time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Nothing with the build's label is left.
    pub complete: bool,
}

async fn delete_all<K>(api: Api<K>, kind: &str, selector: &str, out: &mut Cleanup)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let list = match api.list(&ListParams::default().labels(selector)).await {
        Ok(l) => l,
        Err(e) => {
            out.errors.push(format!(
                "cannot list {kind}s labelled {selector}: {e}; delete them with `kubectl delete {} -l {selector}`",
                kind.to_lowercase()
            ));
            return;
        }
    };
    let dp = DeleteParams {
        grace_period_seconds: Some(1),
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..Default::default()
    };
    let mut gone = Vec::new();
    for o in list.items {
        let name = o.name_any();
        let label = format!("{kind} {}/{name}", o.namespace().unwrap_or_default());
        match api.delete(&name, &dp).await {
            Ok(_) => gone.push((name, o.uid().unwrap_or_default(), label)),
            Err(kube::Error::Api(s)) if s.code == 404 => out.deleted.push(label),
            Err(e) => out.errors.push(format!("cannot delete {label}: {e}")),
        }
    }
    let waits = gone.into_iter().map(|(name, uid, label)| {
        let api = api.clone();
        async move {
            // Gracefully first. The kubelet can take more than a minute to
            // confirm the end of a pod stuck in an image pull back-off: then
            // the object is deleted at once (its containers, if any, are
            // stopped by the kubelet after).
            if let Ok(r) = tokio::time::timeout(GRACEFUL, gone_by_watch(&api, &name, &uid)).await {
                return (label, r);
            }
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            match api.delete(&name, &now).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return (label, Ok(())),
                Err(e) => return (label, Err(e.to_string())),
            }
            (label, gone_by_watch(&api, &name, &uid).await)
        }
    });
    for (label, r) in join_all(waits).await {
        match r {
            Ok(_) => out.deleted.push(label),
            Err(e) => out
                .errors
                .push(format!("cannot watch {label} go away: {e}")),
        }
    }
}

/// Waits, watching, until object `name` of `uid` is gone. The connector's
/// client bounds each read, so a watch that stays quiet longer ends and is
/// started again (the caller bounds it all).
async fn gone_by_watch<K>(api: &Api<K>, name: &str, uid: &str) -> Result<(), String>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let mut last = String::new();
    for _ in 0..WATCH_RESTARTS {
        match await_condition(api.clone(), name, conditions::is_deleted(uid)).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Deletes every Pod, Secret and PersistentVolumeClaim matching `selector`
/// in `namespace` and waits until they are gone, for at most `limit`.
pub async fn cleanup(client: &Client, namespace: &str, selector: &str, limit: Duration) -> Cleanup {
    let mut out = Cleanup::default();
    let work = async {
        // The pod first: its containers stop, then what it used goes.
        delete_all::<Pod>(
            Api::namespaced(client.clone(), namespace),
            "Pod",
            selector,
            &mut out,
        )
        .await;
        delete_all::<Secret>(
            Api::namespaced(client.clone(), namespace),
            "Secret",
            selector,
            &mut out,
        )
        .await;
        delete_all::<PersistentVolumeClaim>(
            Api::namespaced(client.clone(), namespace),
            "PersistentVolumeClaim",
            selector,
            &mut out,
        )
        .await;
    };
    if tokio::time::timeout(limit, work).await.is_err() {
        out.errors.push(format!(
            "clean-up did not finish within {limit:?}; delete what is left with `kubectl delete pod,secret,pvc -n {namespace} -l {selector}`"
        ));
    }
    out.complete = out.errors.is_empty();
    out
}
