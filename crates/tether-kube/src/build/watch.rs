//! The build pod, watched (kube's watcher) until its build container starts
//! or ends, or the pod cannot run: the deploy's pod diagnosis (image pull,
//! unschedulable, config errors), an unbound workspace claim, the deadline.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use super::objects::BUILD_CONTAINER;
use crate::deploy::steady_state::diagnose_pod;
use crate::deploy::{Problem, Progress};

/// Where the build pod is.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// The build container runs (or ran).
    Started,
    /// The build container ended.
    Ended { exit_code: i32, reason: String },
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// It will not run without a change.
    CannotRun(Problem),
}

/// The state of the build container in `p`, if it started.
fn container_state(p: &Pod) -> Option<PodState> {
    let st = p.status.as_ref()?;
    if st.reason.as_deref() == Some("DeadlineExceeded") {
        return Some(PodState::DeadlineExceeded);
    }
    let cs = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == BUILD_CONTAINER)?;
    let state = cs.state.as_ref()?;
    if let Some(t) = &state.terminated {
        return Some(PodState::Ended {
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_default(),
        });
    }
    state.running.as_ref().map(|_| PodState::Started)
}

/// An Unschedulable pod whose workspace claim is not bound: why, and the fix.
async fn unbound_claim(client: &Client, p: &Pod, claim: &str) -> Option<Problem> {
    let st = p.status.as_ref()?;
    let c = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let message = c.message.clone().unwrap_or_default();
    // "unbound immediate PersistentVolumeClaims", or, when the scheduler has
    // not seen the new claim yet, `persistentvolumeclaim "x" not found`.
    if !message.to_lowercase().contains("persistentvolumeclaim") {
        return None;
    }
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .get_opt(claim)
        .await
        .ok()
        .flatten();
    let phase = pvc
        .as_ref()
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let class = pvc
        .as_ref()
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.storage_class_name.clone());
    Some(Problem::general().with(
        "PVC_NOT_BOUND",
        format!(
            "the workspace claim {ns}/{claim} is not bound ({phase}, storage class {}): {message}",
            class.as_deref().unwrap_or("none: the cluster has no default StorageClass")
        ),
        "give the cluster a default StorageClass with a provisioner (or a PersistentVolume the claim fits), or run the build without --workspace",
    ))
}

/// Watches pod `name` until the build container has started (`to_end`:
/// ended), or the pod cannot run.
pub async fn until(
    client: &Client,
    ns: &str,
    name: &str,
    workspace: bool,
    to_end: bool,
    progress: &Progress,
) -> PodState {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut last_phase = String::new();
    loop {
        let p = match stream.try_next().await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return PodState::CannotRun(Problem::general().with(
                    "WATCH_ENDED",
                    format!("the watch of pod {ns}/{name} ended"),
                    "run the build again",
                ))
            }
            Err(e) => {
                tracing::debug!(error = %e, pod = %name, "pod watch error; the watcher retries");
                continue;
            }
        };
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into());
        if phase != last_phase {
            progress.emit("pod", format!("pod {ns}/{name}: {}", phase.to_lowercase()));
            last_phase = phase;
        }
        match container_state(&p) {
            Some(s @ (PodState::Ended { .. } | PodState::DeadlineExceeded)) => return s,
            Some(PodState::Started) if !to_end => return PodState::Started,
            Some(_) => continue,
            None => {}
        }
        if workspace {
            if let Some(problem) = unbound_claim(client, &p, name).await {
                return PodState::CannotRun(problem);
            }
        }
        if let Some((reason, message, fix)) = diagnose_pod(client, &p).await {
            return PodState::CannotRun(Problem::general().with(reason, message, fix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "b" },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_build_containers_state() {
        assert_eq!(container_state(&pod(serde_json::json!({}))), None);
        let ended = pod(serde_json::json!({ "containerStatuses": [
            { "name": "service-0", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": { "running": {} } },
            { "name": "build", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": { "terminated": { "exitCode": 3, "reason": "Error" } } },
        ]}));
        assert_eq!(
            container_state(&ended),
            Some(PodState::Ended {
                exit_code: 3,
                reason: "Error".into()
            })
        );
        let late = pod(serde_json::json!({ "phase": "Failed", "reason": "DeadlineExceeded" }));
        assert_eq!(container_state(&late), Some(PodState::DeadlineExceeded));
    }
}
