//! Deploying through a connector end to end: the real `tether server`, a real
//! `tether delegate run`, the real control plane, driven through the CLI.
//! The connector's account starts with no permission at all: pre-flight
//! refuses (exit 2) naming every missing rule, and nothing is created; with
//! the Role `tether rbac for` prints, the same deploy succeeds (exit 0) as
//! release 1; a deploy without the ConfigMap and with `--prune` deletes it
//! (release 2); a rollback brings it back (release 3); `deploy history` lists
//! the three. Bad YAML is refused with its document and line.
//!
//! On the cluster's node: a Deployment + Service + ConfigMap becomes
//! available with the cluster's own events streamed in order, an update rolls
//! out with `N/3 updated` progress, a StatefulSet, DaemonSet, Job, Pod and a
//! bound claim become steady; and each known failure (image pull, crash loop,
//! missing ConfigMap, missing Secret key, Unschedulable, OOMKilled, failing
//! readiness probe, progressDeadlineSeconds, the step's --timeout, failed
//! Job, failed Pod, a claim nothing binds) ends with its own reason. The
//! Role `tether rbac for` prints for a Deployment + Service + ConfigMap is
//! enough, and with any one of its rules removed pre-flight names exactly
//! that rule. A delegate killed (SIGKILL) mid-deploy: another takes the
//! task over, the CLI follows it to the end, and release 1 is recorded once;
//! the manager killed and restarted mid-deploy: the CLI follows the same
//! task to the end through the restarted one, every event once. Claims whose
//! class never provisions end early; a deploy goes only to a delegate that
//! may receive the connector's secrets.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use serde_json::Value;
use tether_testenv::{service_account_token, KubeEnv, TetherServer};

use common::bin;
use common::deploy::{start, Setup};

fn app(ns: &str, with_config: bool) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    protocol: TCP\n"
    );
    if with_config {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: {ns}\ndata:\n  greeting: hello\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_rbac_for_release_prune_rollback_and_failure() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    let s = start(env, &token)?;
    let files = s.write("app.yaml", &app(&ns, true));
    let configs: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);

    // --- No permission: refused by pre-flight, every missing rule named, nothing created.
    let (code, out, err) = s.deploy(&["-f", &files, "--namespace", &ns, "--release", "web"]);
    ensure!(code == 2, "exit {code}\n{out}\n{err}");
    ensure!(out.contains("MISSING_PERMISSION"), "{out}");
    for needed in ["configmaps", "services", "secrets"] {
        ensure!(
            out.contains(&format!("resources: [\"{needed}\"]")),
            "no rule for {needed}:\n{out}"
        );
    }
    ensure!(
        configs.get_opt("web-config").await?.is_none(),
        "pre-flight changed the cluster"
    );

    // --- Bad YAML: document and line.
    let bad = s.write(
        "bad.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{}}\n",
            app(&ns, false)
        ),
    );
    let (code, out, err) = s.deploy(&["-f", &bad, "--namespace", &ns]);
    ensure!(code == 2, "exit {code}\n{out}\n{err}");
    ensure!(
        out.contains("#1 (line 12)") && out.contains("MISSING_NAME"),
        "{out}"
    );

    // --- The Role `tether rbac for` prints is enough.
    let rbac = s.ok(&[
        "rbac",
        "for",
        "-f",
        &files,
        "--service-account",
        &format!("{ns}/deployer"),
        "--namespace",
        &ns,
        "--prune",
    ])?;
    let mut kubectl = env.kubectl();
    kubectl
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = kubectl.spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), rbac.as_bytes())?;
    let applied = child.wait_with_output()?;
    ensure!(
        applied.status.success(),
        "kubectl apply of\n{rbac}\n{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let (code, out, err) = s.deploy(&[
        "-f",
        &files,
        "--namespace",
        &ns,
        "--release",
        "web",
        "--prune",
    ]);
    ensure!(code == 0, "exit {code}\n{out}\n{err}");
    // Progress lines came before the report, in the order things happened.
    let pos = |needle: &str| {
        out.find(needle)
            .with_context(|| format!("no '{needle}' in:\n{out}"))
    };
    ensure!(pos("pre-flight")? < pos("applied ConfigMap")?, "{out}");
    ensure!(pos("applied ConfigMap")? < pos("applied Service")?, "{out}");
    ensure!(
        pos("applied Service")? < pos("revision 1 deployed")?,
        "{out}"
    );
    ensure!(configs.get_opt("web-config").await?.is_some());
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    ensure!(
        secrets.get_opt("tether.release.web.v1").await?.is_some(),
        "no release secret"
    );

    // --- Without the ConfigMap and with --prune: it is deleted (release 2).
    let smaller = s.write("smaller.yaml", &app(&ns, false));
    let (code, out, err) = s.deploy(&[
        "-f",
        &smaller,
        "--namespace",
        &ns,
        "--release",
        "web",
        "--prune",
        "-o",
        "json",
    ]);
    ensure!(code == 0, "exit {code}\n{out}\n{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| l.to_string()))
        .collect::<Result<_>>()?;
    let report = lines.last().unwrap();
    ensure!(report["release"]["revision"] == 2, "{report}");
    ensure!(lines.iter().any(|e| e["kind"] == "pruned"), "{out}");
    ensure!(configs.get_opt("web-config").await?.is_none(), "not pruned");

    // --- Rollback to 1: the ConfigMap is back, as release 3.
    let out = s.run(&[
        "deploy",
        "rollback",
        "web",
        "--connector",
        "cluster",
        "--namespace",
        &ns,
        "--to",
        "1",
    ]);
    ensure!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        configs.get_opt("web-config").await?.is_some(),
        "rollback did not restore it"
    );
    let history: Value = serde_json::from_str(&s.ok(&[
        "deploy",
        "history",
        "web",
        "--connector",
        "cluster",
        "-o",
        "json",
    ])?)?;
    let revisions: Vec<u64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["revision"].as_u64())
        .collect();
    ensure!(revisions == [3, 2, 1], "{history}");

    // --- A Deployment whose pods cannot run here (no node: they stay
    // Pending) is not steady: it fails at its timeout (exit 1), its progress
    // streamed before the report.
    let dep = s.write("dep.yaml", &format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n    spec:\n      containers:\n      - name: c\n        image: tether-test/busybox:1\n"));
    let rbac = s.ok(&[
        "rbac",
        "for",
        "-f",
        &dep,
        "--service-account",
        &format!("{ns}/deployer"),
        "--namespace",
        &ns,
    ])?;
    let mut kubectl = env.kubectl();
    kubectl
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = kubectl.spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), rbac.as_bytes())?;
    ensure!(child.wait_with_output()?.status.success());
    if env.node.is_none() {
        let (code, out, err) = s.deploy(&[
            "-f",
            &dep,
            "--namespace",
            &ns,
            "--release",
            "api",
            "--timeout",
            "5s",
        ]);
        ensure!(code == 1, "exit {code}\n{out}\n{err}");
        ensure!(
            pos_of(&out, "applied Deployment")?
                < pos_of(&out, "Deployment ")?.max(pos_of(&out, "TIMEOUT")?),
            "{out}"
        );
        ensure!(out.contains("TIMEOUT"), "{out}");
    }
    // --- `tether connector test` prints each stage as it completes, then
    // the report (its exit code unchanged: PARTIAL, the account may not do
    // everything the deployments profile checks).
    let out = s.run(&["connector", "test", "cluster"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let url = pos_of(&text, "stage     url passed")?;
    let tls = pos_of(&text, "stage     tls passed")?;
    let auth = pos_of(&text, "stage     authorization failed")?;
    let report = pos_of(&text, "connector cluster")?;
    ensure!(url < tls && tls < auth && auth < report, "{text}");
    ensure!(out.status.code() == Some(2), "{:?}\n{text}", out.status);
    Ok(())
}

fn pos_of(out: &str, needle: &str) -> Result<usize> {
    out.find(needle)
        .with_context(|| format!("no '{needle}' in:\n{out}"))
}

/// `tether deploy apply ... -o json`: exit code, the streamed events, the report.
fn deploy_json(s: &Setup, extra: &[&str]) -> Result<(i32, Vec<Value>, Value)> {
    let mut args = extra.to_vec();
    args.extend(["-o", "json"]);
    let (code, out, err) = s.deploy(&args);
    let mut lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("{l}\n{err}")))
        .collect::<Result<_>>()?;
    let report = lines.pop().with_context(|| format!("no report: {err}"))?;
    Ok((code, lines, report))
}

/// The connector's account may do anything in `ns` (the `admin` ClusterRole).
fn grant_admin(env: &KubeEnv, ns: &str) -> Result<()> {
    let out = env
        .kubectl()
        .args([
            "create",
            "rolebinding",
            "deployer-admin",
            "--clusterrole=admin",
            &format!("--serviceaccount={ns}:deployer"),
            "-n",
            ns,
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Deletes a test's namespace (its pods would otherwise keep running on the
/// one node for the rest of the run).
fn drop_namespace(env: &KubeEnv, ns: &str) {
    let _ = env
        .kubectl()
        .args(["delete", "namespace", ns, "--wait=false"])
        .output();
}

fn kubectl_apply(env: &KubeEnv, yaml: &str) -> Result<()> {
    let mut child = env
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kubectl apply of\n{yaml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A Deployment of busybox's httpd, ready when it serves; `version` goes in
/// its arguments and its page, so changing it rolls the pods.
fn web(ns: &str, replicas: u32, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: {replicas}
  minReadySeconds: 1
  strategy:
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: tether-test/busybox:1
        command: ["sh", "-c", "mkdir -p /www && echo $0 > /www/index.html && exec httpd -f -p 8080 -h /www"]
        args: ["{version}"]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
"#
    )
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .filter_map(|e| e["message"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_on_the_node_become_steady_with_pod_events_in_order() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-node").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    grant_admin(env, &ns)?;
    let s = start(env, &token)?;

    // --- A Deployment + Service + ConfigMap becomes available.
    let first = s.write(
        "web-a.yaml",
        &format!("{}---\n{}", web(&ns, 3, "a"), app(&ns, true)),
    );
    let (code, events, report) =
        deploy_json(&s, &["-f", &first, "--namespace", &ns, "--release", "web"])?;
    ensure!(code == 0, "exit {code}\n{events:#?}\n{report}");
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    let at = |needle: &str| {
        messages
            .iter()
            .position(|m| m.contains(needle))
            .with_context(|| format!("no '{needle}' in {messages:#?}"))
    };
    let steady = at(&format!("Deployment {ns}/web: 3/3 updated, 3 available"))?;
    ensure!(at("applied Deployment")? < steady, "{messages:#?}");

    // The cluster's own events are in the stream: each one is what `kubectl
    // get events` lists (by uid), the first the ReplicaSet's and the
    // scheduler's after tether applied the Deployment, each pod's in the
    // order the kubelet went through them. (The kubelet writes its events
    // asynchronously, here up to seconds after the fact: those written after
    // the Deployment is available are not waited for.)
    let listed = env
        .kubectl()
        .args(["get", "events", "-n", &ns, "-o", "json"])
        .output()?;
    let listed: Value = serde_json::from_slice(&listed.stdout)?;
    let listed: std::collections::HashMap<&str, &Value> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["metadata"]["uid"].as_str()?, e)))
        .collect();
    let streamed: Vec<(usize, &Value)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["kind"] == "event")
        .collect();
    ensure!(
        !streamed.is_empty(),
        "no cluster event streamed: {messages:#?}"
    );
    let applied = at("applied Deployment")?;
    let order = ["Scheduled", "Pulled", "Created", "Started"];
    let mut reached: std::collections::HashMap<&str, usize> = Default::default();
    let mut scheduled = std::collections::BTreeSet::new();
    for (i, e) in &streamed {
        let uid = e["data"]["uid"].as_str().unwrap_or_default();
        let k = listed
            .get(uid)
            .with_context(|| format!("streamed event {e} is not in kubectl get events"))?;
        ensure!(
            k["reason"] == e["data"]["reason"]
                && k["involvedObject"]["name"] == e["data"]["involvedObject"],
            "{e} vs {k}"
        );
        ensure!(*i > applied, "event {e} before the apply: {messages:#?}");
        let pod = e["data"]["involvedObject"].as_str().unwrap_or_default();
        let reason = e["data"]["reason"].as_str().unwrap_or_default();
        if let Some(step) = order.iter().position(|r| *r == reason) {
            let before = reached.insert(pod, step);
            ensure!(
                before.is_none_or(|b| b < step),
                "pod {pod}: {reason} streamed after {:?}: {messages:#?}",
                before.map(|b| order[b])
            );
            if step == 0 {
                scheduled.insert(pod);
            }
        }
    }
    ensure!(
        scheduled.len() == 3,
        "the scheduler's event of each of the 3 pods: {scheduled:?}\n{messages:#?}"
    );

    // --- An update rolls out pod by pod: progress in between.
    let second = s.write(
        "web-b.yaml",
        &format!("{}---\n{}", web(&ns, 3, "b"), app(&ns, true)),
    );
    let (code, events, report) =
        deploy_json(&s, &["-f", &second, "--namespace", &ns, "--release", "web"])?;
    ensure!(code == 0, "exit {code}\n{events:#?}\n{report}");
    let progress = events_of(&events, "progress");
    let partial = regex_like_partial(&progress, &ns);
    ensure!(
        partial.is_some(),
        "no progress like 'N/3 updated, M available' with N < 3: {progress:#?}"
    );
    ensure!(
        events_of(&events, "steady")
            .contains(&format!("Deployment {ns}/web: 3/3 updated, 3 available").as_str()),
        "{events:#?}"
    );

    // --- StatefulSet, DaemonSet, Job, Pod and a claim bound to a volume.
    let pv = format!("{ns}-pv");
    kubectl_apply(
        env,
        &format!("apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {pv}\nspec:\n  capacity: {{storage: 1Mi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: /tmp/{pv}}}\n  claimRef: {{namespace: {ns}, name: data}}\n"),
    )?;
    let pod_spec = "spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: tether-test/busybox:1\n        command: [sleep, '3600']";
    let kinds = format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: {ns}\nspec:\n  serviceName: db\n  replicas: 1\n  selector:\n    matchLabels: {{app: db}}\n  template:\n    metadata:\n      labels: {{app: db}}\n    {pod_spec}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: agent}}\n  template:\n    metadata:\n      labels: {{app: agent}}\n    {pod_spec}\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\n  namespace: {ns}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: tether-test/busybox:1\n        command: [sh, -c, 'echo done']\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: single\n  namespace: {ns}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: tether-test/busybox:1\n    command: [sleep, '3600']\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: {ns}\nspec:\n  storageClassName: ''\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {{storage: 1Mi}}\n"
    );
    let kinds = s.write("kinds.yaml", &kinds);
    let (code, events, report) = deploy_json(
        &s,
        &["-f", &kinds, "--namespace", &ns, "--release", "kinds"],
    )?;
    ensure!(code == 0, "exit {code}\n{events:#?}\n{report}");
    let steady = events_of(&events, "steady");
    for expected in [
        format!("StatefulSet {ns}/db: 1/1 updated, 1 ready"),
        format!("DaemonSet {ns}/agent: 1/1 updated, 1 available"),
        format!("Job {ns}/once: complete"),
        format!("Pod {ns}/single: running and ready"),
        format!("PersistentVolumeClaim {ns}/data: bound"),
    ] {
        ensure!(
            steady.contains(&expected.as_str()),
            "no '{expected}' in {steady:#?}"
        );
    }
    let _ = env
        .kubectl()
        .args(["delete", "pv", &pv, "--wait=false"])
        .output();
    drop_namespace(env, &ns);
    Ok(())
}

/// A progress line of the Deployment with fewer than 3 updated replicas.
fn regex_like_partial<'a>(progress: &[&'a str], ns: &str) -> Option<&'a str> {
    let prefix = format!("Deployment {ns}/web: ");
    progress.iter().copied().find(|m| {
        m.strip_prefix(&prefix)
            .and_then(|r| r.split_once("/3 updated, "))
            .is_some_and(|(n, rest)| {
                n.parse::<u32>().is_ok_and(|n| n < 3) && rest.ends_with("available")
            })
    })
}

/// One failing workload: the file's body, the reason the deploy must end
/// with, and words its message must hold.
struct Failing {
    name: &'static str,
    yaml: String,
    timeout: &'static str,
    reason: &'static str,
    says: Vec<String>,
}

/// Deploys every case at once (one delegate runs them side by side, each its
/// own release) and expects each to fail (exit 1) with its reason, saying
/// what it must, with a fix.
fn expect_failures(s: &Setup, ns: &str, cases: &[Failing]) -> Result<()> {
    // All at once (one delegate runs them side by side), each its own release.
    type Outcome = Result<(i32, Vec<Value>, Value)>;
    let results: Vec<(String, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                let file = s.write(&format!("{}.yaml", c.name), &c.yaml);
                let ns = ns.to_string();
                scope.spawn(move || {
                    deploy_json(
                        s,
                        &[
                            "-f",
                            &file,
                            "--namespace",
                            &ns,
                            "--release",
                            c.name,
                            "--timeout",
                            c.timeout,
                        ],
                    )
                })
            })
            .collect();
        cases
            .iter()
            .zip(handles)
            .map(|(c, h)| (c.name.to_string(), h.join().unwrap()))
            .collect()
    });
    let mut wrong = Vec::new();
    for (c, (name, r)) in cases.iter().zip(results) {
        let (code, events, report) = r?;
        let problem = &report["problems"][0];
        let message = problem["message"].as_str().unwrap_or_default();
        let ok = code == 1
            && problem["reason"] == c.reason
            && c.says.iter().all(|w| message.contains(w.as_str()))
            && !problem["fix"].as_str().unwrap_or_default().is_empty();
        if !ok {
            wrong.push(format!(
                "{name}: exit {code}, wanted {} saying {:?}, got {problem}\nevents: {:#?}",
                c.reason,
                c.says,
                events_of(&events, "event")
            ));
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    Ok(())
}

fn deployment_with(ns: &str, name: &str, extra_pod: &str, container: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n{extra_pod}      containers:\n      - name: c\n{container}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_known_failure_on_the_node_ends_early_with_its_diagnosis() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-fail").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    grant_admin(env, &ns)?;
    kubectl_apply(
        env,
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: {ns}\nstringData:\n  user: u\n"),
    )?;
    let s = start(env, &token)?;
    let busybox = "        image: tether-test/busybox:1\n";
    let sleep = format!("{busybox}        command: [sleep, '3600']\n");
    let cases = vec![
        Failing {
            name: "pull",
            yaml: deployment_with(&ns, "pull", "", "        image: registry.invalid/nothing:1\n"),
            timeout: "5m",
            reason: "IMAGE_PULL",
            says: vec!["registry.invalid/nothing:1".into()],
        },
        Failing {
            name: "crash",
            yaml: deployment_with(&ns, "crash", "", &format!("{busybox}        command: [sh, -c, 'echo the-last-words; exit 3']\n")),
            timeout: "5m",
            reason: "CRASH_LOOP",
            says: vec!["exit code 3".into(), "the-last-words".into()],
        },
        Failing {
            name: "nocm",
            yaml: deployment_with(&ns, "nocm", "", &format!("{sleep}        envFrom:\n        - configMapRef: {{name: not-there}}\n")),
            timeout: "5m",
            reason: "CONTAINER_CONFIG",
            says: vec!["configmap \"not-there\" not found".into()],
        },
        Failing {
            name: "nokey",
            yaml: deployment_with(&ns, "nokey", "", &format!("{sleep}        env:\n        - name: P\n          valueFrom:\n            secretKeyRef: {{name: creds, key: password}}\n")),
            timeout: "5m",
            reason: "CONTAINER_CONFIG",
            says: vec!["password".into(), "creds".into()],
        },
        Failing {
            name: "nowhere",
            yaml: deployment_with(&ns, "nowhere", "      nodeSelector: {tether-test/nowhere: 'true'}\n", &sleep),
            timeout: "5m",
            reason: "UNSCHEDULABLE",
            says: vec!["0/1 nodes are available".into(), "didn't match".into()],
        },
        Failing {
            name: "oom",
            yaml: deployment_with(&ns, "oom", "", &format!("{busybox}        command: [tail, /dev/zero]\n        resources:\n          limits: {{memory: 16Mi}}\n")),
            timeout: "5m",
            reason: "OOM_KILLED",
            says: vec!["OOMKilled".into()],
        },
        Failing {
            name: "unready",
            yaml: deployment_with(&ns, "unready", "", &format!("{sleep}        readinessProbe:\n          exec: {{command: [cat, /no/such/file]}}\n          periodSeconds: 1\n")),
            timeout: "5m",
            reason: "READINESS_PROBE_FAILING",
            says: vec!["Readiness probe failed".into()],
        },
        // Running, never ready, no probe failure to see (its first probe is
        // an hour away): the Deployment's own deadline ends it...
        Failing {
            name: "deadline",
            yaml: deployment_with(&ns, "deadline", "", &format!("{sleep}        readinessProbe:\n          exec: {{command: [cat, /no/such/file]}}\n          initialDelaySeconds: 3600\n")).replace("  replicas: 1\n", "  replicas: 1\n  progressDeadlineSeconds: 3\n"),
            timeout: "5m",
            reason: "PROGRESS_DEADLINE_EXCEEDED",
            says: vec!["progressDeadlineSeconds".into()],
        },
        // ... and without one that short, the deploy's --timeout, told apart.
        Failing {
            name: "slow",
            yaml: deployment_with(&ns, "slow", "", &format!("{sleep}        readinessProbe:\n          exec: {{command: [cat, /no/such/file]}}\n          initialDelaySeconds: 3600\n")),
            timeout: "8s",
            reason: "TIMEOUT",
            says: vec!["--timeout".into(), "progressDeadlineSeconds, 600s, had not run out".into(), "0 available".into()],
        },
        Failing {
            name: "job",
            yaml: format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: job\n  namespace: {ns}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n{busybox}        command: [sh, -c, 'echo job-says-no; exit 4']\n"),
            timeout: "5m",
            reason: "JOB_FAILED",
            says: vec!["exited with code 4".into(), "job-says-no".into()],
        },
        Failing {
            name: "pod",
            yaml: format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod\n  namespace: {ns}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n{busybox}    command: [sh, -c, 'echo pod-says-no; exit 5']\n").replace("        image", "    image"),
            timeout: "5m",
            reason: "POD_FAILED",
            says: vec!["exited with code 5".into(), "pod-says-no".into()],
        },
        // No PersistentVolume matches and nothing provisions one.
        Failing {
            name: "claim",
            yaml: format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: claim\n  namespace: {ns}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {{storage: 1Ti}}\n"),
            timeout: "5m",
            reason: "VOLUME_UNAVAILABLE",
            says: vec!["no storage class is set".into()],
        },
    ];
    expect_failures(&s, &ns, &cases)?;
    drop_namespace(env, &ns);
    Ok(())
}

/// Claims whose class will never give them a volume end early, not at the
/// step's --timeout: an external provisioner that does not run (the PV
/// controller waits for it and nobody answers), `kubernetes.io/no-provisioner`
/// (no volume plugin), and an in-tree cloud provisioner without its cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_whose_class_provisions_nothing_end_early() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-claims").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    grant_admin(env, &ns)?;
    let class = |kind: &str, provisioner: &str| {
        format!("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {ns}-{kind}\nprovisioner: {provisioner}\n")
    };
    let classes = [
        class("external", "example.com/not-running"),
        class("none", "kubernetes.io/no-provisioner"),
        class("cloud", "kubernetes.io/aws-ebs"),
    ];
    kubectl_apply(env, &classes.join("---\n"))?;
    let claim = |name: &str, kind: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  storageClassName: {ns}-{kind}\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {{storage: 1Mi}}\n")
    };
    let s = start(env, &token)?;
    // Each well inside its limit: before the diagnosis, each waited for it.
    let cases = vec![
        Failing {
            name: "external",
            yaml: claim("external", "external"),
            timeout: "3m",
            reason: "NO_PROVISIONER",
            says: vec!["example.com/not-running".into(), "has not answered".into()],
        },
        Failing {
            name: "noplugin",
            yaml: claim("noplugin", "none"),
            timeout: "3m",
            reason: "VOLUME_UNAVAILABLE",
            says: vec!["no volume plugin matched".into()],
        },
        Failing {
            name: "cloud",
            yaml: claim("cloud", "cloud"),
            timeout: "3m",
            reason: "VOLUME_PROVISIONING_FAILED",
            says: vec!["AWS".into()],
        },
    ];
    let result = expect_failures(&s, &ns, &cases);
    let mut delete = env.kubectl();
    delete.args(["delete", "storageclass", "--wait=false"]);
    for kind in ["external", "none", "cloud"] {
        delete.arg(format!("{ns}-{kind}"));
    }
    let _ = delete.stdout(Stdio::null()).stderr(Stdio::null()).status();
    drop_namespace(env, &ns);
    result
}

/// The account's rules in `ns` are `role` (kubectl apply replaces the list);
/// returns once the API server's authorizer says so for `probe` (RBAC
/// reads Roles through an informer, a moment after they change).
fn set_role(env: &KubeEnv, ns: &str, role: &Value, probe: &[String], allowed: bool) -> Result<()> {
    kubectl_apply(env, &serde_json::to_string(role)?)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = env
            .kubectl()
            .arg("auth")
            .arg("can-i")
            .args(probe)
            .args([
                "-n",
                ns,
                &format!("--as=system:serviceaccount:{ns}:deployer"),
            ])
            .output()?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        ensure!(
            answer == "yes" || answer == "no",
            "kubectl auth can-i {probe:?}: {answer} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if (answer == "yes") == allowed {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the authorizer did not take the Role: can-i {probe:?} is still {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl auth can-i` arguments for a rule's first verb and resource:
/// `VERB resource.group [--subresource=S]`.
fn can_i_args(rule: &Value) -> Vec<String> {
    let group = rule["apiGroups"][0].as_str().unwrap_or_default();
    let resource = rule["resources"][0].as_str().unwrap_or_default();
    let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
    let mut args = vec![rule["verbs"][0].as_str().unwrap_or_default().to_string()];
    args.push(if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    });
    if !sub.is_empty() {
        args.push(format!("--subresource={sub}"));
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_rbac_for_prints_is_enough_and_each_rule_is_needed() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-rbac").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    let s = start(env, &token)?;
    let files = s.write(
        "app.yaml",
        &format!("{}---\n{}", web(&ns, 1, "a"), app(&ns, true)),
    );
    let printed = s.ok(&[
        "rbac",
        "for",
        "-f",
        &files,
        "--service-account",
        &format!("{ns}/deployer"),
        "--namespace",
        &ns,
        "--prune",
    ])?;
    let objects: Vec<Value> = printed
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(serde_yaml::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(
        objects
            .iter()
            .map(|o| o["kind"].as_str())
            .collect::<Vec<_>>()
            == [Some("Role"), Some("RoleBinding")],
        "{printed}"
    );
    let role = objects[0].clone();
    kubectl_apply(env, &serde_json::to_string(&objects[1])?)?;
    let rules = role["rules"].as_array().context("rules")?.clone();
    ensure!(rules.len() >= 6, "{printed}");

    // Any one rule removed: pre-flight refuses (exit 2) naming exactly it.
    for (i, removed) in rules.iter().enumerate() {
        let mut fewer = role.clone();
        fewer["rules"].as_array_mut().unwrap().remove(i);
        set_role(env, &ns, &fewer, &can_i_args(removed), false)?;
        let (code, events, report) = deploy_json(
            &s,
            &[
                "-f",
                &files,
                "--namespace",
                &ns,
                "--release",
                "web",
                "--prune",
            ],
        )?;
        let problems = report["problems"].as_array().cloned().unwrap_or_default();
        let named: Vec<Value> = problems
            .iter()
            .filter_map(|p| p["rule"].as_str())
            .map(|r| serde_yaml::from_str::<Vec<Value>>(r).map(|mut l| l.remove(0)))
            .collect::<Result<_, _>>()?;
        ensure!(
            code == 2 && problems.len() == 1 && named == [removed.clone()],
            "without rule {removed}: exit {code}, problems {problems:#?}\n{events:#?}"
        );
    }

    // The whole Role: the deploy succeeds, pods and all.
    // The last rule removed is the one to see back.
    set_role(env, &ns, &role, &can_i_args(rules.last().unwrap()), true)?;
    let (code, events, report) = deploy_json(
        &s,
        &[
            "-f",
            &files,
            "--namespace",
            &ns,
            "--release",
            "web",
            "--prune",
        ],
    )?;
    ensure!(code == 0, "exit {code}\n{events:#?}\n{report}");
    drop_namespace(env, &ns);
    Ok(())
}

/// `tether deploy apply` of one Deployment whose pod is Ready only 8 s after
/// it starts, so the deploy is mid-way for a while; its stdout is piped.
fn spawn_slow_deploy(s: &Setup, ns: &str) -> Result<std::process::Child> {
    let slow = web(ns, 1, "a").replace(
        "          periodSeconds: 1\n",
        "          periodSeconds: 1\n          initialDelaySeconds: 8\n",
    );
    let file = s.write("slow.yaml", &slow);
    Ok(s.server
        .cli(bin(), &s.server.admin_token)
        .args([
            "deploy",
            "apply",
            "--connector",
            "cluster",
            "-f",
            &file,
            "--namespace",
            ns,
            "--release",
            "web",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

fn spawn_delegate(s: &Setup, name: &str) -> Result<std::process::Child> {
    let token = s.ok(&["delegate", "token", "create", "--name", name])?;
    let log = std::fs::File::create(s.dir.path().join(format!("{name}.log")))?;
    Ok(Command::new(bin())
        .args([
            "delegate",
            "run",
            "--manager",
            &s.server.url,
            "--name",
            name,
            "--tags",
            "deploy",
        ])
        .env("TETHER_DELEGATE_TOKEN", token.trim())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_killed_mid_deploy_hands_it_on_and_the_release_is_recorded_once() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-kill").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    grant_admin(env, &ns)?;
    let mut s = start(env, &token)?;
    let mut other = spawn_delegate(&s, "d2")?;
    let mut cli = spawn_slow_deploy(&s, &ns)?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(cli.stdout.take().unwrap()));
    let mut seen = Vec::new();
    let mut task = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(id) = line
            .strip_prefix("deploy task ")
            .and_then(|r| r.strip_suffix(" queued"))
        {
            task = Some(id.to_string());
        }
        let applied = line.contains("applied Deployment");
        seen.push(line);
        if applied {
            break;
        }
    }
    let task = task.with_context(|| format!("no task id in {seen:#?}"))?;
    // Kill -9 whichever delegate runs it.
    let running: Value = serde_json::from_str(&s.ok(&["task", "get", &task, "-o", "json"])?)?;
    let delegates: Value = serde_json::from_str(&s.ok(&["delegate", "list", "-o", "json"])?)?;
    let runner = delegates
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["id"] == running["delegateId"])
        .and_then(|d| d["name"].as_str())
        .with_context(|| format!("who runs {running}? {delegates}"))?
        .to_string();
    if runner == "d" {
        s.delegate.kill()?;
        s.delegate.wait()?;
    } else {
        other.kill()?;
        other.wait()?;
    }
    let rest: Vec<String> = lines.collect::<Result<_, _>>()?;
    let out = cli.wait_with_output()?;
    seen.extend(rest);
    let text = seen.join("\n");
    let _ = other.kill();
    let _ = other.wait();
    ensure!(
        out.status.success(),
        "after killing {runner}: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(text.contains("release web revision 1 deployed"), "{text}");
    let done: Value = serde_json::from_str(&s.ok(&["task", "get", &task, "-o", "json"])?)?;
    ensure!(
        done["attempt"] == 2 && done["delegateId"] != running["delegateId"],
        "{done}"
    );
    // One release, deployed, in the cluster and in tether.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let names: Vec<String> = secrets
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .filter(|n| n.starts_with("tether.release."))
        .collect();
    ensure!(names == ["tether.release.web.v1"], "{names:?}");
    let history: Value = serde_json::from_str(&s.ok(&[
        "deploy",
        "history",
        "web",
        "--connector",
        "cluster",
        "-o",
        "json",
    ])?)?;
    let items = history["items"].as_array().context("items")?;
    ensure!(
        items.len() == 1 && items[0]["status"] == "deployed",
        "{history}"
    );
    drop_namespace(env, &ns);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_restarted_mid_deploy_loses_neither_task_nor_events() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-restart").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    grant_admin(env, &ns)?;
    let mut s = start(env, &token)?;
    let mut cli = spawn_slow_deploy(&s, &ns)?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(cli.stdout.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        let applied = line.contains("applied Deployment");
        seen.push(line);
        if applied {
            break;
        }
    }
    // SIGKILL, then the same data directory and address again.
    let addr = s
        .server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    s.server.kill();
    let restarted = TetherServer::start_in(
        bin(),
        &s.server.data_dir,
        &[
            "--listen",
            &addr,
            "--retest-interval",
            "0",
            "--test-on-change=false",
        ],
    )?;
    // The first server's temporary directory holds the data: keep it.
    let _first = std::mem::replace(&mut s.server, restarted);
    let rest: Vec<String> = lines.collect::<Result<_, _>>()?;
    let out = cli.wait_with_output()?;
    let before = seen.len();
    seen.extend(rest);
    let text = seen.join("\n");
    ensure!(
        out.status.success(),
        "{}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Events of the rest of the rollout came through the restarted manager,
    // each once.
    let after = &seen[before..];
    ensure!(
        after
            .iter()
            .any(|l| l.contains(&format!("Deployment {ns}/web: 1/1 updated, 1 available"))),
        "{text}"
    );
    let applied = seen
        .iter()
        .filter(|l| l.contains("applied Deployment"))
        .count();
    ensure!(applied == 1, "{text}");
    ensure!(text.contains("release web revision 1 deployed"), "{text}");
    let history: Value = serde_json::from_str(&s.ok(&[
        "deploy",
        "history",
        "web",
        "--connector",
        "cluster",
        "-o",
        "json",
    ])?)?;
    let items = history["items"].as_array().context("items")?;
    ensure!(
        items.len() == 1 && items[0]["status"] == "deployed",
        "{history}"
    );
    drop_namespace(env, &ns);
    Ok(())
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A deploy goes only to a delegate that may receive its connector's secrets
/// (issue 13 with issue 10's grants): a project connector uses account
/// secrets granted to the project. An org delegate, which those grants do not
/// cover, is not eligible (409, `secretNotGranted` with the fix); with a
/// delegate of the project beside it, that one deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_go_only_to_delegates_that_may_receive_the_connectors_secrets() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("deploy-grants").await;
    let token = service_account_token(&admin, &ns, "deployer").await?;
    grant_admin(env, &ns)?;
    let server = TetherServer::start(bin(), &["--retest-interval", "0", "--test-on-change=false"])?;
    let dir = tempfile::tempdir()?;
    let run = |args: &[&str], stdin: Option<&str>| -> Result<String> {
        let out = common::cli(&server, &server.admin_token, args, stdin);
        ensure!(
            out.status.success(),
            "tether {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    common::seed_scopes(&server);
    common::project_cluster_connector(&server, env, &token, "deploy")?;
    // A real delegate registered with a token of `scope`.
    let delegate = |name: &str, scope: &[&str]| -> Result<Killed> {
        let mut args = vec!["delegate", "token", "create", "--name", name];
        args.extend(scope);
        let dtoken = run(&args, None)?.trim().to_string();
        let child = common::deploy::spawn_delegate(
            &server,
            name,
            &dtoken,
            &dir.path().join(format!("{name}.log")),
        )?;
        Ok(Killed(child))
    };
    let connected = |name: &str, scope: &[&str]| -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut args = vec!["delegate", "list", "-o", "json"];
            args.extend(scope);
            let list: Value = serde_json::from_str(&run(&args, None)?)?;
            if let Some(d) = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["name"] == name && d["connected"] == true)
            {
                return Ok(d["id"].as_str().unwrap_or_default().to_string());
            }
            ensure!(Instant::now() < deadline, "delegate {name} did not connect");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let org = ["--org", "default"];
    let project = ["--org", "default", "--project", "web"];
    let _org_delegate = delegate("org-d", &org)?;
    connected("org-d", &org)?;

    let http = reqwest::Client::new();
    let deploy = |name: &str| {
        let body = serde_json::json!({
            "manifests": [{"source": "cm.yaml", "text": format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")}],
            "namespace": ns,
            "release": name,
        });
        http.post(format!(
            "{}/api/v1/orgs/default/projects/web/connectors/cluster/deploy",
            server.url
        ))
        .bearer_auth(&server.admin_token)
        .json(&body)
        .send()
    };

    // --- Only the org delegate: not eligible, and it says why and how to fix it.
    let res = deploy("first").await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(status == 409, "{status} {body:#}");
    ensure!(body["code"] == "NO_ELIGIBLE_DELEGATE", "{body:#}");
    let org_d = &body["considered"][0];
    ensure!(
        org_d["name"] == "org-d"
            && org_d["ineligible"]["reason"] == "secretNotGranted"
            && org_d["ineligible"]["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("account.cluster_")),
        "{body:#}"
    );
    ensure!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--usable-from"),
        "the message does not say how to grant it: {body:#}"
    );
    // --- A delegate of the project beside it: that one deploys.
    let _project_delegate = delegate("project-d", &project)?;
    let project_id = connected("project-d", &project)?;
    let res = deploy("second").await?;
    ensure!(res.status() == 201, "{}", res.status());
    let task: Value = res.json().await?;
    let id = task["id"].as_str().context("task id")?.to_string();
    // Follow the task's events to its end.
    run(&["task", "events", &id, "-o", "json"], None)?;
    let task: Value = serde_json::from_str(&run(&["task", "get", &id, "-o", "json"], None)?)?;
    ensure!(
        task["state"] == "succeeded" && task["output"]["outcome"] == "deployed",
        "{task:#}"
    );
    ensure!(
        task["delegateId"] == project_id.as_str(),
        "run by {} instead of the project's delegate {project_id}",
        task["delegateId"]
    );
    ensure!(
        Api::<ConfigMap>::namespaced(admin, &ns)
            .get_opt("second")
            .await?
            .is_some(),
        "the ConfigMap was not deployed"
    );
    drop_namespace(env, &ns);
    Ok(())
}
