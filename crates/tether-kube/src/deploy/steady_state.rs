//! Steady state, watched (kube's watcher), not polled: each applied object
//! until it is ready by the rules of `kubectl rollout status` and Argo CD's
//! health checks, and, beside them, the pods of the workloads and the events
//! of the namespaces, streamed as progress. Failures that waiting will not
//! heal end the deploy at once with a diagnosis and a fix:
//! ErrImagePull/ImagePullBackOff, CrashLoopBackOff (exit code and the last log
//! lines), CreateContainerConfigError (the missing ConfigMap/Secret/key),
//! Unschedulable, OOMKilled, a failing readiness probe, a Job's or Pod's
//! failed container (exit code and last log lines), a claim no volume will
//! come for, and a Deployment's `ProgressDeadlineExceeded` (told apart from
//! the deploy's own `--timeout`, which says what was still waiting). Only
//! pods of the template being deployed are diagnosed: an older ReplicaSet's
//! failing pods, which the rollout replaces, are not a failure of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, LogParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

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

/// The objects not steady yet, with what they last said.
type Waiting = Arc<Mutex<BTreeMap<String, String>>>;

/// Watches one object until its verdict is ready or failed.
async fn watch_object<K>(
    api: Api<K>,
    o: &Resolved,
    progress: &Progress,
    waiting: &Waiting,
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
                    waiting.lock().unwrap().remove(&label);
                    progress.emit("steady", format!("{label}: {m}"));
                    return Ok(m);
                }
                Verdict::Progressing(m) => {
                    waiting.lock().unwrap().insert(label.clone(), m.clone());
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

/// How to watch the pods of a workload, and the pod template they run (for
/// a Pod, the Pod itself): `None` for kinds without pods.
fn pod_watch(o: &Resolved) -> Option<(watcher::Config, Value)> {
    let spec = &o.manifest.object["spec"];
    match o.manifest.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" => {
            let sel: LabelSelector = serde_json::from_value(spec["selector"].clone()).ok()?;
            Some((
                watcher::Config::default().labels(&selector_string(&sel)?),
                spec["template"].clone(),
            ))
        }
        // The job controller labels its pods with the job's name.
        "Job" => Some((
            watcher::Config::default().labels(&format!("job-name={}", o.manifest.name)),
            spec["template"].clone(),
        )),
        "Pod" => Some((
            watcher::Config::default().fields(&format!("metadata.name={}", o.manifest.name)),
            o.manifest.object.clone(),
        )),
        _ => None,
    }
}

/// `want` is contained in `have`: every field of `want` is in `have` with a
/// contained value (the API server only adds defaults), lists item by item.
fn contained(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| v.is_null() || h.get(k).is_some_and(|hv| contained(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| contained(a, b))
        }
        (w, h) => w == h,
    }
}

/// The pod runs the containers of `template` (an older ReplicaSet's pods,
/// still failing during a rollout that replaces them, do not). Containers
/// are compared field by field as the manifest writes them, except
/// `resources`, whose quantities the API server rewrites (`0.5` -> `500m`).
fn runs_template(p: &Pod, template: &Value) -> bool {
    let Ok(have) = serde_json::to_value(p.spec.clone().unwrap_or_default()) else {
        return true;
    };
    ["containers", "initContainers"].iter().all(|field| {
        let Some(want) = template["spec"][field].as_array() else {
            return true;
        };
        want.iter().all(|w| {
            let name = &w["name"];
            let Some(h) = have[field]
                .as_array()
                .and_then(|l| l.iter().find(|c| &c["name"] == name))
            else {
                return false;
            };
            let mut w = w.clone();
            if let Some(o) = w.as_object_mut() {
                o.remove("resources");
            }
            contained(&w, h)
        })
    })
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

/// How long the last log lines of a failed container may take (the kubelet
/// reads them from the node; a busy node is slow).
const LOGS_TIMEOUT: Duration = Duration::from_secs(20);

/// What the failed containers of a pod said: exit code, reason, last log
/// lines ("" when none terminated with an error).
pub async fn terminated_detail(client: &Client, p: &Pod) -> String {
    let name = p.metadata.name.clone().unwrap_or_default();
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    // Owned before any await: a borrowed iterator held across one makes the
    // future non-`Send` for `tokio::spawn` (a higher-ranked lifetime).
    let failed: Vec<(String, i32, String)> = p
        .status
        .iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter_map(|cs| {
            let t = cs.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| {
                (
                    cs.name.clone(),
                    t.exit_code,
                    t.reason.clone().unwrap_or_default(),
                )
            })
        })
        .collect();
    let mut out = String::new();
    for (container, code, reason) in failed {
        let logs = logs_of(client, &ns, &name, &container, false).await;
        out.push_str(&format!(
            "; container {container} of pod {name} exited with code {code} ({reason}){logs}"
        ));
    }
    out
}

async fn last_logs(client: &Client, ns: &str, pod: &str, container: &str) -> String {
    logs_of(client, ns, pod, container, true).await
}

/// The last log lines of a container (`previous`: of its last run).
async fn logs_of(client: &Client, ns: &str, pod: &str, container: &str, previous: bool) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = LogParams {
        container: Some(container.to_string()),
        previous,
        tail_lines: Some(10),
        ..Default::default()
    };
    let flag = if previous { " --previous" } else { "" };
    match tokio::time::timeout(LOGS_TIMEOUT, pods.logs(pod, &params)).await {
        Ok(Ok(text)) if !text.trim().is_empty() => format!(
            "; last log lines:\n{}",
            text.lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Ok(Ok(_)) => "; it wrote no log lines".to_string(),
        Ok(Err(e)) => format!(
            "; its logs could not be read ({e}): `kubectl logs {pod} -c {container} -n {ns}{flag}`"
        ),
        Err(_) => format!(
            "; its logs did not come within {}s: `kubectl logs {pod} -c {container} -n {ns}{flag}`",
            LOGS_TIMEOUT.as_secs()
        ),
    }
}

/// Watches the pods of one workload: reports phase changes and restarts,
/// returns the first failure that will not heal.
async fn watch_pods(
    client: Client,
    ns: String,
    (config, template): (watcher::Config, Value),
    progress: Progress,
    tracked: Arc<Mutex<BTreeSet<String>>>,
) -> Problem {
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut stream = watcher(api, config)
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
        if !runs_template(&p, &template) {
            continue;
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
    // Claims some provisioner other than the PV controller spoke about.
    let mut provisioner_answered: BTreeSet<String> = BTreeSet::new();
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
        if obj.kind.as_deref() == Some("PersistentVolumeClaim") {
            let source = e.source.as_ref().and_then(|s| s.component.as_deref());
            if source.is_some_and(|s| s != PV_CONTROLLER) {
                provisioner_answered.insert(oname.clone());
            }
            let claim = ClaimEvent {
                reason: &reason,
                message: &message,
                count,
                provisioner_answered: provisioner_answered.contains(&oname),
            };
            if let Some(p) = unbindable_claim(&ns, &oname, &claim) {
                return p;
            }
        }
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

/// The PersistentVolume controller's name as the source of its events.
const PV_CONTROLLER: &str = "persistentvolume-controller";

/// How many times the PV controller says it waits for an external
/// provisioner, with no word from any provisioner, before the deploy says none
/// runs. It repeats this on every claim sync (15 s by default), and a running
/// provisioner answers the first one with a `Provisioning` event.
const UNANSWERED_PROVISIONING: i32 = 3;

/// An event about a claim, and whether a provisioner spoke about it before.
struct ClaimEvent<'a> {
    reason: &'a str,
    message: &'a str,
    count: i32,
    provisioner_answered: bool,
}

/// A claim no volume will come for: no PersistentVolume matches and no
/// StorageClass is set (nothing would provision one); its class does not
/// exist; its class's provisioner is no plugin the cluster has, or fails each
/// time; or it waits for an external provisioner that never answers. A claim
/// waiting for its first consumer, or for a provisioner at work, waits on.
fn unbindable_claim(ns: &str, name: &str, e: &ClaimEvent) -> Option<Problem> {
    let (reason, message) = (e.reason, e.message);
    let (code, fix) = match reason {
        "FailedBinding" if message.contains("no storage class is set") => (
            "VOLUME_UNAVAILABLE",
            "create a PersistentVolume that matches the claim (size, access modes), or set spec.storageClassName to a class with a provisioner (`kubectl get storageclass`; this cluster may have none)".to_string(),
        ),
        "ProvisioningFailed" if message.contains("not found") => (
            "VOLUME_UNAVAILABLE",
            "set spec.storageClassName to a class that exists (`kubectl get storageclass`)".to_string(),
        ),
        "ProvisioningFailed" if message.contains("no volume plugin matched") => (
            "VOLUME_UNAVAILABLE",
            "the class's provisioner is no volume plugin of this cluster (`kubernetes.io/no-provisioner` provisions nothing: create a PersistentVolume for the claim by hand), or set spec.storageClassName to a class with a working provisioner (`kubectl get storageclass`)".to_string(),
        ),
        // The PV controller retries an in-tree provisioner with the same
        // answer (no cloud provider, bad class parameters): twice is enough.
        "ProvisioningFailed" if e.count >= 2 && !e.provisioner_answered => (
            "VOLUME_PROVISIONING_FAILED",
            "fix what the message names (the class's parameters, the cloud provider's configuration or quota), or set spec.storageClassName to a class that provisions here (`kubectl get storageclass`)".to_string(),
        ),
        "ExternalProvisioning"
            if e.count >= UNANSWERED_PROVISIONING && !e.provisioner_answered =>
        {
            let provisioner = message
                .split('"')
                .nth(1)
                .unwrap_or("the class's provisioner");
            return Some(Problem::general().with(
                "NO_PROVISIONER",
                format!(
                    "PersistentVolumeClaim {ns}/{name} will not be bound: its class's provisioner {provisioner} has not answered ({} times: {message})",
                    e.count
                ),
                format!("start the provisioner `{provisioner}` in the cluster (its CSI driver and external-provisioner), or create a PersistentVolume for the claim by hand, or set spec.storageClassName to a class whose provisioner runs (`kubectl get storageclass`)"),
            ));
        }
        _ => return None,
    };
    Some(Problem::general().with(
        code,
        format!("PersistentVolumeClaim {ns}/{name} will not be bound: {message}"),
        fix,
    ))
}

/// A failed Job or Pod, with what its failed containers said.
async fn with_pod_detail(
    r: Result<String, Problem>,
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<String, Problem> {
    let Err(mut p) = r else { return r };
    if p.reason != "JOB_FAILED" && p.reason != "POD_FAILED" {
        return Err(p);
    }
    let params = if selector.starts_with("metadata.name=") {
        ListParams::default().fields(selector)
    } else {
        ListParams::default().labels(selector)
    };
    if let Ok(pods) = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&params)
        .await
    {
        // The last pod that failed says the most.
        let mut pods = pods.items;
        pods.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        for pod in pods.iter().rev() {
            let detail = terminated_detail(client, pod).await;
            if !detail.is_empty() {
                p.message.push_str(&detail);
                break;
            }
        }
    }
    Err(p)
}

/// The step timeout, told apart from a Deployment's own deadline: what was
/// still waiting, and for Deployments that the cluster had not given up
/// (their `progressDeadlineSeconds` would say PROGRESS_DEADLINE_EXCEEDED).
fn timed_out(
    objects: &[Resolved],
    timeout: Duration,
    waiting: &BTreeMap<String, String>,
) -> Problem {
    let mut still = Vec::new();
    for o in objects {
        let label = o.label();
        let Some(state) = waiting.get(&label) else {
            continue;
        };
        let mut line = format!("{label}: {state}");
        if o.manifest.kind == "Deployment" {
            let deadline = o.manifest.object["spec"]["progressDeadlineSeconds"]
                .as_u64()
                .unwrap_or(600);
            line.push_str(&format!(
                " (its progressDeadlineSeconds, {deadline}s, had not run out)"
            ));
        }
        still.push(line);
    }
    let what = if still.is_empty() {
        "the watches had not answered yet".to_string()
    } else {
        format!("still waiting: {}", still.join("; "))
    };
    Problem::general().with(
        "TIMEOUT",
        format!(
            "not steady within {}s, the deploy's --timeout; {what}",
            timeout.as_secs()
        ),
        "if it was only slow, raise --timeout; otherwise see the progress and pod events above for what it waits for",
    )
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
        if let (Some(ns), Some(watch)) = (&o.namespace, pod_watch(o)) {
            diagnostics.push(
                watch_pods(
                    client.clone(),
                    ns.clone(),
                    watch,
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
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "Pod" | "PersistentVolumeClaim"
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
    let waiting: Waiting = Arc::default();
    let waiting = &waiting;
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
                    waiting,
                    deployment,
                )
                .boxed(),
                ("apps", "StatefulSet") => watch_object(
                    Api::<StatefulSet>::namespaced(c, &ns),
                    o,
                    progress,
                    waiting,
                    stateful_set,
                )
                .boxed(),
                ("apps", "DaemonSet") => watch_object(
                    Api::<DaemonSet>::namespaced(c, &ns),
                    o,
                    progress,
                    waiting,
                    daemon_set,
                )
                .boxed(),
                ("batch", "Job") => async move {
                    let r = watch_object(
                        Api::<Job>::namespaced(c.clone(), &ns),
                        o,
                        progress,
                        waiting,
                        job,
                    )
                    .await;
                    with_pod_detail(r, &c, &ns, &format!("job-name={}", o.manifest.name)).await
                }
                .boxed(),
                ("", "Pod") => async move {
                    let r = watch_object(
                        Api::<Pod>::namespaced(c.clone(), &ns),
                        o,
                        progress,
                        waiting,
                        pod,
                    )
                    .await;
                    with_pod_detail(r, &c, &ns, &format!("metadata.name={}", o.manifest.name)).await
                }
                .boxed(),
                ("", "PersistentVolumeClaim") => watch_object(
                    Api::<PersistentVolumeClaim>::namespaced(c, &ns),
                    o,
                    progress,
                    waiting,
                    pvc,
                )
                .boxed(),
                ("", "Service") => watch_object(
                    Api::<Service>::namespaced(c, &ns),
                    o,
                    progress,
                    waiting,
                    service,
                )
                .boxed(),
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
    let window = objects.iter().any(available_at_start);
    let run = async {
        tokio::pin!(failing);
        tokio::select! {
            r = all => r?,
            p = &mut failing => return Err(p),
        };
        if window {
            progress.emit(
                "progress",
                format!(
                    "watching the pods for {}s: a workload without a readiness probe or minReadySeconds counts as available as soon as its process starts",
                    STARTUP_WINDOW.as_secs()
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(STARTUP_WINDOW) => {}
                p = &mut failing => return Err(p),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(objects, timeout, &waiting.lock().unwrap())),
    }
}

/// How long the pods of a workload that Kubernetes calls available the
/// moment its container starts are still watched for a crash.
const STARTUP_WINDOW: Duration = Duration::from_secs(5);

/// A long-running workload whose pods count as available as soon as their
/// containers start: no readiness probe on any container and no
/// `minReadySeconds`. A container that exits at once is then "available"
/// for an instant (as `kubectl rollout status` would say), so the deploy
/// keeps watching its pods for [`STARTUP_WINDOW`] before calling it steady.
fn available_at_start(o: &Resolved) -> bool {
    let spec = &o.manifest.object["spec"];
    let pod_spec = match o.manifest.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" => &spec["template"]["spec"],
        "Pod" => spec,
        _ => return false,
    };
    if spec["minReadySeconds"].as_u64().unwrap_or(0) > 0 {
        return false;
    }
    pod_spec["containers"]
        .as_array()
        .is_some_and(|cs| cs.iter().all(|c| c["readinessProbe"].is_null()))
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
    fn pods_of_an_older_template_are_told_apart() {
        let template = json!({"spec": {"containers": [{"name": "c", "image": "app:2", "args": ["b"], "resources": {"limits": {"cpu": "0.5"}}}]}});
        let pod = |image: &str, args: &[&str]| -> Pod {
            serde_json::from_value(json!({"spec": {"containers": [{
                "name": "c", "image": image, "args": args,
                "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                "resources": {"limits": {"cpu": "500m"}}
            }]}}))
            .unwrap()
        };
        assert!(runs_template(&pod("app:2", &["b"]), &template));
        assert!(!runs_template(&pod("app:1", &["b"]), &template));
        assert!(!runs_template(&pod("app:2", &["a"]), &template));
        assert!(!runs_template(&pod("app:2", &["b", "c"]), &template));
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

    /// The PV controller's words on this cluster (1.20), as seen on the test node.
    #[test]
    fn claims_no_volume_will_come_for() {
        let ev = |reason, message, count, provisioner_answered| ClaimEvent {
            reason,
            message,
            count,
            provisioner_answered,
        };
        let waiting = "waiting for a volume to be created, either by external provisioner \"example.com/none\" or manually created by system administrator";
        // The controller's first words: a running provisioner would answer them.
        assert!(
            unbindable_claim("ns", "c", &ev("ExternalProvisioning", waiting, 2, false)).is_none()
        );
        let p =
            unbindable_claim("ns", "c", &ev("ExternalProvisioning", waiting, 3, false)).unwrap();
        assert_eq!(p.reason, "NO_PROVISIONER");
        assert!(p.fix.contains("`example.com/none`"), "{}", p.fix);
        // A provisioner at work (it said `Provisioning`): wait on.
        assert!(
            unbindable_claim("ns", "c", &ev("ExternalProvisioning", waiting, 9, true)).is_none()
        );
        let p = unbindable_claim(
            "ns",
            "c",
            &ev(
                "ProvisioningFailed",
                "no volume plugin matched name: kubernetes.io/no-provisioner",
                1,
                false,
            ),
        )
        .unwrap();
        assert_eq!(p.reason, "VOLUME_UNAVAILABLE");
        let cloud = "Failed to provision volume with StorageClass \"x\": Failed to get AWS Cloud Provider. GetCloudProvider returned <nil> instead";
        assert!(unbindable_claim("ns", "c", &ev("ProvisioningFailed", cloud, 1, false)).is_none());
        let p = unbindable_claim("ns", "c", &ev("ProvisioningFailed", cloud, 2, false)).unwrap();
        assert_eq!(p.reason, "VOLUME_PROVISIONING_FAILED");
        // An external provisioner's own failure may be transient: it retries.
        assert!(unbindable_claim("ns", "c", &ev("ProvisioningFailed", cloud, 5, true)).is_none());
        let first = "waiting for first consumer to be created before binding";
        assert!(
            unbindable_claim("ns", "c", &ev("WaitForFirstConsumer", first, 9, false)).is_none()
        );
    }
}
