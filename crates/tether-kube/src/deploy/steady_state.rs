//! Steady state, watched (kube's watcher), not polled: each applied object
//! until it is ready by the rules of `kubectl rollout status` and Argo CD's
//! health checks, and, beside them, the pods of the workloads and the events
//! of the namespaces, streamed as progress. Failures that waiting will not
//! heal end the deploy at once with a diagnosis and a fix:
//! ErrImagePull/ImagePullBackOff, CrashLoopBackOff (exit code and the last log
//! lines), CreateContainerConfigError (the missing ConfigMap/Secret/key),
//! Unschedulable, OOMKilled, a failing readiness probe, and a Deployment's
//! `ProgressDeadlineExceeded`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::LogParams;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::preflight::Resolved;
use super::{Problem, Progress};

/// What an object's status says now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Ready(String),
    Progressing(String),
    /// reason, message, fix
    Failed(&'static str, String, String),
}

pub fn deployment(d: &Deployment) -> Verdict {
    let generation = d.metadata.generation.unwrap_or(0);
    let want = d.spec.replicas.unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or(0) < generation {
        return Verdict::Progressing(format!(
            "waiting for the controller to observe generation {generation}"
        ));
    }
    if let Some(c) = st.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Verdict::Failed(
            "PROGRESS_DEADLINE_EXCEEDED",
            format!(
                "the rollout made no progress within spec.progressDeadlineSeconds: {}",
                c.message.clone().unwrap_or_default()
            ),
            "look at the pod events above for why new pods do not become available".into(),
        );
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let line = format!("{updated}/{want} updated, {available} available");
    if updated < want {
        return Verdict::Progressing(line);
    }
    if total > updated {
        return Verdict::Progressing(format!(
            "{line}, {} old replica(s) pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Verdict::Progressing(line);
    }
    Verdict::Ready(line)
}

pub fn stateful_set(s: &StatefulSet) -> Verdict {
    let generation = s.metadata.generation.unwrap_or(0);
    let want = s.spec.replicas.unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or(0) < generation {
        return Verdict::Progressing(format!(
            "waiting for the controller to observe generation {generation}"
        ));
    }
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let line = format!("{updated}/{want} updated, {ready} ready");
    let rolling = s
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        != Some("OnDelete");
    if ready < want
        || (rolling
            && (updated < want
                || (st.update_revision.is_some() && st.update_revision != st.current_revision)))
    {
        return Verdict::Progressing(line);
    }
    Verdict::Ready(line)
}

pub fn daemon_set(d: &DaemonSet) -> Verdict {
    let generation = d.metadata.generation.unwrap_or(0);
    let st = d.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or(0) < generation {
        return Verdict::Progressing(format!(
            "waiting for the controller to observe generation {generation}"
        ));
    }
    let want = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    let line = format!("{updated}/{want} updated, {available} available");
    if updated < want || available < want {
        return Verdict::Progressing(line);
    }
    Verdict::Ready(line)
}

pub fn job(j: &Job) -> Verdict {
    let st = j.status.clone().unwrap_or_default();
    for c in st.conditions.iter().flatten() {
        if c.status == "True" && c.type_ == "Complete" {
            return Verdict::Ready("complete".into());
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Verdict::Failed(
                "JOB_FAILED",
                format!(
                    "the job failed ({}): {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                ),
                "see the pod events and logs above; fix the job's command or image".into(),
            );
        }
    }
    Verdict::Progressing(format!(
        "{} active, {} succeeded, {} failed",
        st.active.unwrap_or(0),
        st.succeeded.unwrap_or(0),
        st.failed.unwrap_or(0)
    ))
}

pub fn pod(p: &Pod) -> Verdict {
    let st = p.status.clone().unwrap_or_default();
    let phase = st.phase.clone().unwrap_or_else(|| "Pending".into());
    match phase.as_str() {
        "Succeeded" => Verdict::Ready("succeeded".into()),
        "Failed" => Verdict::Failed(
            "POD_FAILED",
            format!("the pod failed: {}", st.message.clone().unwrap_or_default()),
            "see the pod's events and logs".into(),
        ),
        "Running"
            if st
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True") =>
        {
            Verdict::Ready("running and ready".into())
        }
        other => Verdict::Progressing(other.to_lowercase()),
    }
}

pub fn pvc(p: &PersistentVolumeClaim) -> Verdict {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Bound") => Verdict::Ready("bound".into()),
        Some("Lost") => Verdict::Failed(
            "PVC_LOST",
            "the claim lost its volume".into(),
            "restore the PersistentVolume or recreate the claim".into(),
        ),
        other => Verdict::Progressing(other.unwrap_or("pending").to_lowercase()),
    }
}

pub fn service(s: &Service) -> Verdict {
    let lb = s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    if !lb {
        return Verdict::Ready("ready".into());
    }
    let ingress = s
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.clone())
        .unwrap_or_default();
    match ingress.first() {
        Some(i) => Verdict::Ready(format!(
            "load balancer at {}",
            i.ip.clone().or(i.hostname.clone()).unwrap_or_default()
        )),
        None => Verdict::Progressing("waiting for the load balancer's address".into()),
    }
}

/// Watches one object until its verdict is ready or failed.
async fn watch_object<K>(
    api: Api<K>,
    o: &Resolved,
    progress: &Progress,
    verdict: fn(&K) -> Verdict,
) -> Result<String, Problem>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={}", o.manifest.name));
    let mut stream = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let label = o.label();
    let mut last = String::new();
    loop {
        match stream.try_next().await {
            Ok(Some(obj)) => match verdict(&obj) {
                Verdict::Ready(m) => {
                    progress.emit("steady", format!("{label}: {m}"));
                    return Ok(m);
                }
                Verdict::Progressing(m) => {
                    if m != last {
                        progress.state(&label, "progress", format!("{label}: {m}"));
                        last = m;
                    }
                }
                Verdict::Failed(reason, message, fix) => {
                    return Err(Problem::of(&o.manifest).with(
                        reason,
                        format!("{label}: {message}"),
                        fix,
                    ))
                }
            },
            Ok(None) => {
                return Err(Problem::of(&o.manifest).with(
                    "WATCH_ENDED",
                    format!("the watch of {label} ended"),
                    "retry the deploy",
                ))
            }
            Err(e) => {
                tracing::debug!(error = %e, object = %label, "watch error; the watcher retries")
            }
        }
    }
}

fn selector_string(s: &LabelSelector) -> Option<String> {
    let labels = s.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The pod selector of a workload, when it has one.
fn pod_selector(o: &Resolved) -> Option<String> {
    let spec = &o.manifest.object["spec"];
    let sel: LabelSelector = serde_json::from_value(spec["selector"].clone()).ok()?;
    match o.manifest.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" => selector_string(&sel),
        "Job" => None,
        _ => None,
    }
}

/// Why a pod will not become ready without a change, if it will not.
pub async fn diagnose_pod(client: &Client, p: &Pod) -> Option<(&'static str, String, String)> {
    let name = p.metadata.name.clone().unwrap_or_default();
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let st = p.status.as_ref()?;
    if let Some(c) = st.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    }) {
        return Some((
            "UNSCHEDULABLE",
            format!("pod {name} cannot be scheduled: {}", c.message.clone().unwrap_or_default()),
            "lower the pod's resource requests, relax its node selector, affinity or tolerations, or add nodes".into(),
        ));
    }
    let image_of = |container: &str| {
        p.spec
            .as_ref()
            .and_then(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .find(|c| c.name == container)
            })
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let statuses = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    for cs in statuses {
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting
            .and_then(|w| w.reason.as_deref())
            .unwrap_or_default();
        let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                return Some((
                    "IMAGE_PULL",
                    format!(
                        "container {} of pod {name} cannot pull image {} ({reason}): {message}",
                        cs.name,
                        image_of(&cs.name)
                    ),
                    "check that the image name and tag exist and that the node may pull it (imagePullSecrets for a private registry)".into(),
                ));
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                return Some((
                    "CONTAINER_CONFIG",
                    format!("container {} of pod {name} cannot be created: {message}", cs.name),
                    "create the ConfigMap or Secret (or the key in it) the container refers to, or fix the reference".into(),
                ));
            }
            "CrashLoopBackOff" => {
                let oom = last.and_then(|t| t.reason.as_deref()) == Some("OOMKilled");
                let code = last.map(|t| t.exit_code).unwrap_or_default();
                let logs = last_logs(client, &ns, &name, &cs.name).await;
                if oom {
                    return Some((
                        "OOM_KILLED",
                        format!("container {} of pod {name} was killed for using more memory than its limit (OOMKilled, restarted {} times){logs}", cs.name, cs.restart_count),
                        "raise resources.limits.memory of the container, or make it use less".into(),
                    ));
                }
                return Some((
                    "CRASH_LOOP",
                    format!(
                        "container {} of pod {name} keeps crashing (CrashLoopBackOff, exit code {code}, restarted {} times){logs}",
                        cs.name, cs.restart_count
                    ),
                    "fix the container's command, configuration or image; its last log lines are above".into(),
                ));
            }
            _ => {}
        }
        if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            if t.reason.as_deref() == Some("OOMKilled") {
                return Some((
                    "OOM_KILLED",
                    format!("container {} of pod {name} was killed for using more memory than its limit (OOMKilled)", cs.name),
                    "raise resources.limits.memory of the container, or make it use less".into(),
                ));
            }
        }
    }
    None
}

async fn last_logs(client: &Client, ns: &str, pod: &str, container: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = LogParams {
        container: Some(container.to_string()),
        previous: true,
        tail_lines: Some(10),
        ..Default::default()
    };
    match tokio::time::timeout(Duration::from_secs(5), pods.logs(pod, &params)).await {
        Ok(Ok(text)) if !text.trim().is_empty() => format!(
            "; last log lines:\n{}",
            text.lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        _ => String::new(),
    }
}

/// Watches the pods of one workload: reports phase changes and restarts,
/// returns the first failure that will not heal.
async fn watch_pods(
    client: Client,
    ns: String,
    selector: String,
    progress: Progress,
    tracked: Arc<Mutex<BTreeSet<String>>>,
) -> Problem {
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut stream = watcher(api, watcher::Config::default().labels(&selector))
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut seen: HashMap<String, (String, i32)> = HashMap::new();
    loop {
        let p = match stream.try_next().await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Problem::general().with(
                    "WATCH_ENDED",
                    "the pod watch ended",
                    "retry the deploy",
                )
            }
            Err(_) => continue,
        };
        let name = p.metadata.name.clone().unwrap_or_default();
        tracked.lock().unwrap().insert(name.clone());
        let phase = match pod(&p) {
            Verdict::Ready(m) | Verdict::Progressing(m) => m,
            Verdict::Failed(_, m, _) => m,
        };
        let restarts: i32 = p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .map(|c| c.restart_count)
            .sum();
        let before = seen.insert(name.clone(), (phase.clone(), restarts));
        match before {
            Some((old_phase, old_restarts)) => {
                if restarts > old_restarts {
                    progress.emit(
                        "restart",
                        format!(
                            "pod {ns}/{name}: a container restarted ({restarts} restart(s) in all)"
                        ),
                    );
                }
                if old_phase != phase {
                    progress.emit("pod", format!("pod {ns}/{name}: {phase}"));
                }
            }
            None => progress.emit("pod", format!("pod {ns}/{name}: {phase}")),
        }
        if let Some((reason, message, fix)) = diagnose_pod(&client, &p).await {
            return Problem::general().with(reason, message, fix);
        }
    }
}

/// How many failed readiness probes of one pod end the deploy.
const READINESS_FAILURES: i32 = 3;

/// Streams the events of the namespaces about the deploy's objects and their
/// pods; returns when a readiness probe keeps failing.
async fn watch_events(
    client: Client,
    ns: String,
    names: BTreeSet<String>,
    since: k8s_openapi::jiff::Timestamp,
    progress: Progress,
    tracked: Arc<Mutex<BTreeSet<String>>>,
) -> Problem {
    let api: Api<Event> = Api::namespaced(client, &ns);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut announced: HashMap<String, i32> = HashMap::new();
    loop {
        let e = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => {
                return Problem::general().with(
                    "WATCH_ENDED",
                    "the event watch ended",
                    "retry the deploy",
                )
            }
            Err(_) => continue,
        };
        let when = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        if when.is_some_and(|w| w < since) {
            continue;
        }
        let obj = &e.involved_object;
        let oname = obj.name.clone().unwrap_or_default();
        let ours = names.contains(&oname)
            || tracked.lock().unwrap().contains(&oname)
            || names.iter().any(|n| oname.starts_with(&format!("{n}-")));
        if !ours {
            continue;
        }
        let count = e.count.unwrap_or(1);
        let uid = e.metadata.uid.clone().unwrap_or_default();
        if announced.get(&uid) == Some(&count) {
            continue;
        }
        announced.insert(uid, count);
        let reason = e.reason.clone().unwrap_or_default();
        let message = e.message.clone().unwrap_or_default();
        let times = if count > 1 {
            format!(" (x{count})")
        } else {
            String::new()
        };
        progress.emit_data(
            "event",
            format!(
                "{} {}/{}: {} {reason}: {message}{times}",
                obj.kind.clone().unwrap_or_default(),
                ns,
                oname,
                e.type_.clone().unwrap_or_default()
            ),
            serde_json::json!({ "reason": reason, "involvedObject": oname, "count": count, "uid": e.metadata.uid }),
        );
        if reason == "Unhealthy"
            && message.starts_with("Readiness probe failed")
            && count >= READINESS_FAILURES
        {
            return Problem::general().with(
                "READINESS_PROBE_FAILING",
                format!("pod {ns}/{oname} never becomes ready: its readiness probe failed {count} times: {message}"),
                "fix the probe (path, port, initialDelaySeconds) or what the container serves there",
            );
        }
    }
}

/// Waits until every object is steady, or the first failure, or `timeout`.
pub async fn wait(
    client: &Client,
    objects: &[Resolved],
    timeout: Duration,
    since: k8s_openapi::jiff::Timestamp,
    progress: &Progress,
) -> Result<(), Problem> {
    let tracked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut diagnostics = Vec::new();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    let mut names = BTreeSet::new();
    for o in objects {
        if let (Some(ns), Some(sel)) = (&o.namespace, pod_selector(o)) {
            diagnostics.push(
                watch_pods(
                    client.clone(),
                    ns.clone(),
                    sel,
                    progress.clone(),
                    tracked.clone(),
                )
                .boxed(),
            );
        }
        // Events are read where workloads run (pre-flight checks that the
        // account may list and watch them there).
        let workload = matches!(
            o.manifest.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod"
        );
        if let (Some(ns), true) = (&o.namespace, workload) {
            namespaces.insert(ns.clone());
            names.insert(o.manifest.name.clone());
        }
        if o.manifest.kind == "Pod" {
            tracked.lock().unwrap().insert(o.manifest.name.clone());
        }
    }
    for ns in namespaces {
        diagnostics.push(
            watch_events(
                client.clone(),
                ns,
                names.clone(),
                since,
                progress.clone(),
                tracked.clone(),
            )
            .boxed(),
        );
    }
    let checks = objects
        .iter()
        .filter_map(|o| {
            let c = client.clone();
            let ns = o.namespace.clone().unwrap_or_default();
            let f = match (o.resource.group.as_str(), o.manifest.kind.as_str()) {
                ("apps", "Deployment") => watch_object(
                    Api::<Deployment>::namespaced(c, &ns),
                    o,
                    progress,
                    deployment,
                )
                .boxed(),
                ("apps", "StatefulSet") => watch_object(
                    Api::<StatefulSet>::namespaced(c, &ns),
                    o,
                    progress,
                    stateful_set,
                )
                .boxed(),
                ("apps", "DaemonSet") => watch_object(
                    Api::<DaemonSet>::namespaced(c, &ns),
                    o,
                    progress,
                    daemon_set,
                )
                .boxed(),
                ("batch", "Job") => {
                    watch_object(Api::<Job>::namespaced(c, &ns), o, progress, job).boxed()
                }
                ("", "Pod") => {
                    watch_object(Api::<Pod>::namespaced(c, &ns), o, progress, pod).boxed()
                }
                ("", "PersistentVolumeClaim") => watch_object(
                    Api::<PersistentVolumeClaim>::namespaced(c, &ns),
                    o,
                    progress,
                    pvc,
                )
                .boxed(),
                ("", "Service") => {
                    watch_object(Api::<Service>::namespaced(c, &ns), o, progress, service).boxed()
                }
                _ => return None,
            };
            Some(f)
        })
        .collect::<Vec<_>>();
    let all = future::try_join_all(checks);
    let failing = async move {
        if diagnostics.is_empty() {
            return future::pending().await;
        }
        future::select_all(diagnostics).await.0
    };
    let run = async {
        tokio::select! {
            r = all => r.map(|_| ()),
            p = failing => Err(p),
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(Problem::general().with(
            "TIMEOUT",
            format!("not steady within {}s (the deploy's --timeout)", timeout.as_secs()),
            "see the last progress lines for what was still waiting; raise --timeout if it was only slow",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_rules_follow_rollout_status() {
        let base = |status: serde_json::Value| {
            deploy(
                json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3, "selector": {}, "template": {}}, "status": status}),
            )
        };
        assert!(
            matches!(deployment(&base(json!({"observedGeneration": 1}))), Verdict::Progressing(m) if m.contains("generation 2"))
        );
        assert_eq!(
            deployment(&base(
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 1})
            )),
            Verdict::Progressing("2/3 updated, 1 available".into())
        );
        assert!(
            matches!(deployment(&base(json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}))), Verdict::Progressing(m) if m.contains("old replica"))
        );
        assert!(matches!(
            deployment(&base(
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})
            )),
            Verdict::Ready(_)
        ));
        assert!(matches!(
            deployment(&base(
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."}]})
            )),
            Verdict::Failed("PROGRESS_DEADLINE_EXCEEDED", _, _)
        ));
    }

    #[test]
    fn jobs_pvcs_and_load_balancers() {
        let j: Job = serde_json::from_value(json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}})).unwrap();
        assert!(
            matches!(job(&j), Verdict::Failed("JOB_FAILED", m, _) if m.contains("BackoffLimitExceeded"))
        );
        let c: PersistentVolumeClaim =
            serde_json::from_value(json!({"status": {"phase": "Bound"}})).unwrap();
        assert!(matches!(pvc(&c), Verdict::Ready(_)));
        let s: Service = serde_json::from_value(
            json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}}),
        )
        .unwrap();
        assert!(matches!(service(&s), Verdict::Progressing(_)));
        let s: Service = serde_json::from_value(json!({"spec": {"type": "ClusterIP"}})).unwrap();
        assert!(matches!(service(&s), Verdict::Ready(_)));
    }
}
