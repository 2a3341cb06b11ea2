//! Builds through a connector end to end: the real `tether server`, real
//! `tether delegate run`s, the real control plane and node, driven through
//! `tether build run`. Each case ends with nothing labelled with the build
//! left in the namespace: success, a failure (exit code passed through, the
//! last lines of an immediately exiting container all printed), a secret env
//! (visible to the command, absent from the Pod object, the delegate's log,
//! the manager's log and store), a sidecar service answering the build, an
//! image that does not exist (diagnosed), a timeout, Ctrl-C (cancel), and
//! the delegate killed with SIGKILL mid-build: the build is reported
//! `DELEGATE_LOST` at once and its clean-up is handed to another delegate, or
//! waits (queued, no deadline) until the only delegate is back.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tether_testenv::{service_account_token, KubeEnv, TetherServer};

use common::{bin, cli};

/// How long the quota controller may take to count a new quota.
const WAIT_QUOTA: Duration = Duration::from_secs(60);

const SECRET_VALUE: &str = "s3cr3t-build-value-9f2c";
const IMAGE: &str = "tether-test/busybox:1";

struct Setup {
    server: TetherServer,
    delegates: Mutex<Vec<Child>>,
    dtoken: String,
    dir: tempfile::TempDir,
    ns: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for d in self.delegates.lock().unwrap().iter_mut() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Setup {
    fn run(&self, args: &[&str]) -> Output {
        cli(&self.server, &self.server.admin_token, args, None)
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args);
        ensure!(
            out.status.success(),
            "tether {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    fn build_args<'a>(&'a self, ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["build", "run", "--connector", "cluster", "--namespace", ns];
        args.extend(extra);
        args
    }

    /// `tether build run ...` in the test's namespace: exit code, stdout, stderr.
    fn build(&self, extra: &[&str]) -> (i32, String, String) {
        self.build_in(&self.ns, extra)
    }

    /// `tether build run ...` in namespace `ns`.
    fn build_in(&self, ns: &str, extra: &[&str]) -> (i32, String, String) {
        let out = self.run(&self.build_args(ns, extra));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn start_delegate(&self, name: &str) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("delegate.log"))?;
        let child = Command::new(bin())
            .args([
                "delegate",
                "run",
                "--manager",
                &self.server.url,
                "--name",
                name,
                "--tags",
                "build",
            ])
            .env("TETHER_DELEGATE_TOKEN", &self.dtoken)
            .env("RUST_LOG", "debug")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        self.delegates.lock().unwrap().push(child);
        Ok(())
    }

    /// SIGKILL to the `i`th delegate started.
    fn kill_delegate(&self, i: usize) -> Result<()> {
        let mut ds = self.delegates.lock().unwrap();
        ds[i].kill()?;
        ds[i].wait()?;
        Ok(())
    }

    fn wait_connected(&self, name: &str) -> Result<()> {
        common::wait_delegate_connected(&self.server, Some(name))
    }

    /// Starts `tether build run` in the background; returns the child and
    /// a receiver of its stderr lines.
    fn spawn_build(&self, extra: &[&str]) -> Result<(Child, std::sync::mpsc::Receiver<String>)> {
        let mut cmd = self.server.cli(bin(), &self.server.admin_token);
        cmd.args(self.build_args(&self.ns, extra))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().context("stderr")?;
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok((child, rx))
    }
}

/// Waits for a stderr line containing `what`; returns every line read.
fn wait_line(rx: &std::sync::mpsc::Receiver<String>, what: &str) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(120))
            .with_context(|| format!("no line with '{what}'; saw:\n{}", seen.join("\n")))?;
        let hit = l.contains(what);
        seen.push(l);
        if hit {
            return Ok(seen);
        }
    }
}

async fn grant_edit(admin: &Client, ns: &str, sa: &str) -> Result<()> {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{sa}-edit")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// Lets service account `sa` of `ns` read namespaces (a ClusterRole shared by
/// the test runs, bound for this namespace's account).
async fn grant_namespace_reads(admin: &Client, ns: &str, sa: &str) -> Result<()> {
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tether-test-read-namespaces"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
    }))?;
    match Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{ns}-{sa}-read-namespaces")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tether-test-read-namespaces"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
    }))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

async fn start(env: &KubeEnv, admin: &Client, ns: &str) -> Result<Setup> {
    let token = service_account_token(admin, ns, "builder").await?;
    grant_edit(admin, ns, "builder").await?;
    let server = TetherServer::start(bin(), &["--retest-interval", "0", "--test-on-change=false"])?;
    let out = cli(
        &server,
        &server.admin_token,
        &["delegate", "token", "create", "--name", "d"],
        None,
    );
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dtoken = String::from_utf8(out.stdout)?.trim().to_string();
    let s = Setup {
        server,
        delegates: Mutex::new(Vec::new()),
        dtoken,
        dir: tempfile::tempdir()?,
        ns: ns.to_string(),
    };
    s.start_delegate("d1")?;
    common::cluster_connector(
        &s.server,
        env,
        &token,
        "build",
        &[("build_token", SECRET_VALUE)],
    )?;
    s.wait_connected("d1")?;
    Ok(s)
}

/// Nothing labelled as a build's is left in `ns`.
async fn nothing_left(admin: &Client, ns: &str, case: &str) -> Result<()> {
    let lp = ListParams::default().labels("tether.dev/build");
    let pods = Api::<Pod>::namespaced(admin.clone(), ns).list(&lp).await?;
    let secrets = Api::<Secret>::namespaced(admin.clone(), ns)
        .list(&lp)
        .await?;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(admin.clone(), ns)
        .list(&lp)
        .await?;
    ensure!(
        pods.items.is_empty() && secrets.items.is_empty() && pvcs.items.is_empty(),
        "{case}: left behind: {} pod(s), {} secret(s), {} claim(s)",
        pods.items.len(),
        secrets.items.len(),
        pvcs.items.len()
    );
    Ok(())
}

/// Every Pod object the namespace shows while the test runs.
fn record_pods(admin: &Client, ns: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let out = seen.clone();
    tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(p)) = s.try_next().await {
            out.lock()
                .unwrap()
                .push(serde_json::to_string(&p).unwrap_or_default());
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_run_report_and_always_clean_up() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("build").await;
    let pods_seen = record_pods(&admin, &ns);
    let s = start(env, &admin, &ns).await?;

    // --- Success: the command's output on stdout, exit 0.
    let (code, out, err) = s.build(&[
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "echo hello from the build",
    ]);
    ensure!(code == 0, "exit {code}\n{out}\n{err}");
    ensure!(out.contains("hello from the build"), "{out}\n{err}");
    ensure!(err.contains("the build succeeded"), "{err}");
    nothing_left(&admin, &ns, "success").await?;

    // --- Pre-flight: the account may do nothing in `default`: refused, every
    // missing rule named, nothing created.
    let (code, _, err) = s.build_in(
        "default",
        &[
            "--image",
            IMAGE,
            "--secret-env",
            "TOKEN=account.build_token",
            "--",
            "true",
        ],
    );
    ensure!(code == 125, "exit {code}\n{err}");
    ensure!(err.contains("MISSING_PERMISSION"), "{err}");
    for needed in ["pods", "pods/log", "secrets"] {
        ensure!(
            err.contains(&format!("resources: [\"{needed}\"]")),
            "no rule for {needed}:\n{err}"
        );
    }
    nothing_left(&admin, "default", "pre-flight").await?;

    // --- A namespace that does not exist: said so, with the fix (the
    // account may read namespaces; one that may not is told what it lacks).
    grant_namespace_reads(&admin, &ns, "builder").await?;
    let (code, _, err) = s.build_in(&format!("{ns}-missing"), &["--image", IMAGE, "--", "true"]);
    ensure!(code == 125, "exit {code}\n{err}");
    ensure!(
        err.contains("NAMESPACE_NOT_FOUND") && err.contains("kubectl create namespace"),
        "{err}"
    );
    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(
            &format!("{ns}-builder-read-namespaces"),
            &Default::default(),
        )
        .await?;

    // --- A secret bound to hosts cannot be a build's env: refused before any task.
    let out = cli(
        &s.server,
        &s.server.admin_token,
        &[
            "secret",
            "create",
            "--name",
            "bound",
            "--identifier",
            "bound",
            "--allowed-host",
            "example.com",
        ],
        Some("bound-value-123"),
    );
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out, err) = s.build(&[
        "--image",
        IMAGE,
        "--secret-env",
        "B=account.bound",
        "--",
        "true",
    ]);
    ensure!(
        code != 0 && err.contains("SECRET_USE_DENIED") && err.contains("secretEnv.B"),
        "exit {code}\n{out}\n{err}"
    );

    // --- Failure, exiting at once after many lines: every line, in order, and
    // its exit code. More lines than a task may send events (2000): log lines
    // travel joined, on a byte budget of their own.
    let (code, out, err) = s.build(&[
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "for i in $(seq 1 5000); do echo line-$i; done; exit 7",
    ]);
    ensure!(code == 7, "exit {code}\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    let want: Vec<String> = (1..=5000).map(|i| format!("line-{i}")).collect();
    ensure!(lines == want, "log lines differ:\n{out}\n{err}");
    ensure!(err.contains("exit code 7"), "{err}");
    nothing_left(&admin, &ns, "failure").await?;

    // --- Secret env: the command sees it; the Pod object, the logs and the store do not.
    let (code, out, err) = s.build(&[
        "--image",
        IMAGE,
        "--secret-env",
        "TOKEN=account.build_token",
        "--env",
        "MODE=ci",
        "--",
        "sh",
        "-c",
        // Upper-cased, the value is no longer the secret: it shows the command saw it.
        "echo \"seen: $(echo $TOKEN | tr a-z A-Z) $MODE\"; echo \"echoed: $TOKEN\"",
    ]);
    ensure!(code == 0, "exit {code}\n{out}\n{err}");
    ensure!(
        out.contains(&format!("seen: {} ci", SECRET_VALUE.to_uppercase())),
        "{out}\n{err}"
    );
    ensure!(
        out.contains("echoed: <secret account.build_token>"),
        "the echoed value is not redacted:\n{out}"
    );
    ensure!(
        !out.contains(SECRET_VALUE) && !err.contains(SECRET_VALUE),
        "value printed"
    );
    nothing_left(&admin, &ns, "secret env").await?;
    {
        let pods = pods_seen.lock().unwrap();
        ensure!(!pods.is_empty(), "the pod watch saw no pod");
        ensure!(
            pods.iter().all(|p| !p.contains(SECRET_VALUE)),
            "a Pod object holds the secret value"
        );
        ensure!(
            pods.iter().any(|p| p.contains("secretKeyRef")),
            "no pod referred to the secret by key"
        );
    }
    let task_json = s.ok(&["build", "list", "--connector", "cluster", "-o", "json"])?;
    ensure!(!task_json.contains(SECRET_VALUE), "{task_json}");
    let delegate_log = std::fs::read_to_string(s.dir.path().join("delegate.log"))?;
    ensure!(
        !delegate_log.contains(SECRET_VALUE),
        "the delegate logged the value"
    );
    ensure!(
        !s.server.log().contains(SECRET_VALUE),
        "the manager logged the value"
    );
    for f in std::fs::read_dir(&s.server.data_dir)? {
        let f = f?.path();
        if f.is_file() {
            let bytes = std::fs::read(&f)?;
            ensure!(
                !bytes
                    .windows(SECRET_VALUE.len())
                    .any(|w| w == SECRET_VALUE.as_bytes()),
                "{} holds the value in clear",
                f.display()
            );
        }
    }

    // --- A sidecar service answers the build on localhost.
    let (code, out, err) = s.build(&[
        "--image",
        IMAGE,
        "--service",
        "tether-test/busybox:1:8080=httpd -f -p 8080 -h /etc",
        "--",
        "sh",
        "-c",
        "for i in $(seq 1 100); do wget -q -O- http://localhost:8080/hostname && exit 0; sleep 0.2; done; exit 1",
    ]);
    ensure!(
        code == 0,
        "the service did not answer: exit {code}\n{out}\n{err}"
    );
    ensure!(out.contains("tether-build-"), "{out}");
    nothing_left(&admin, &ns, "service").await?;

    // --- An image that does not exist: diagnosed, exit 125.
    let (code, out, err) = s.build(&["--image", "tether-test/does-not-exist:1", "--", "true"]);
    ensure!(code == 125, "exit {code}\n{out}\n{err}");
    ensure!(err.contains("IMAGE_PULL"), "{err}");
    ensure!(err.contains("does-not-exist"), "{err}");
    nothing_left(&admin, &ns, &format!("missing image\n{err}")).await?;

    // --- A workspace no volume will come for (the test cluster has no
    // StorageClass): diagnosed as such, not a timeout; the claim is deleted too.
    let (code, out, err) = s.build(&["--image", IMAGE, "--workspace", "64Mi", "--", "true"]);
    ensure!(code == 125, "exit {code}\n{out}\n{err}");
    ensure!(err.contains("PVC_NOT_BOUND"), "{err}");
    ensure!(err.contains("StorageClass"), "the fix is not named: {err}");
    nothing_left(&admin, &ns, &format!("unbound workspace\n{err}")).await?;

    // --- Admission denied: a quota of no pods in the namespace refuses the
    // build's Pod; the reason is the cluster's, and nothing is left.
    let quotas: Api<ResourceQuota> = Api::namespaced(admin.clone(), &ns);
    let quota: ResourceQuota = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}}
    }))?;
    quotas.create(&PostParams::default(), &quota).await?;
    // The quota admission counts from the status the quota controller writes.
    tokio::time::timeout(
        WAIT_QUOTA,
        await_condition(quotas.clone(), "no-pods", |q: Option<&ResourceQuota>| {
            q.and_then(|q| q.status.as_ref())
                .and_then(|s| s.hard.as_ref())
                .is_some_and(|h| h.contains_key("pods"))
        }),
    )
    .await
    .context("the quota controller never counted the quota")??;
    let (code, out, err) = s.build(&["--image", IMAGE, "--", "true"]);
    quotas.delete("no-pods", &Default::default()).await?;
    ensure!(code == 125, "exit {code}\n{out}\n{err}");
    ensure!(err.contains("ADMISSION_DENIED"), "{err}");
    ensure!(
        err.contains("quota"),
        "the cluster's reason is not named: {err}"
    );
    nothing_left(&admin, &ns, &format!("admission denied\n{err}")).await?;

    // --- Timeout: the cluster's deadline ends it, exit 124.
    let (code, out, err) = s.build(&["--image", IMAGE, "--timeout", "3s", "--", "sleep", "600"]);
    ensure!(code == 124, "exit {code}\n{out}\n{err}");
    nothing_left(&admin, &ns, "timeout").await?;

    // --- Ctrl-C: the build is cancelled, its objects deleted, exit 130.
    let (mut child, rx) = s.spawn_build(&[
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "echo started; sleep 600",
    ])?;
    wait_line(&rx, ": running")?;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let lines = wait_line(&rx, "cancelled")?;
    let code = child.wait()?.code();
    ensure!(code == Some(130), "exit {code:?}\n{}", lines.join("\n"));
    nothing_left(&admin, &ns, "cancel").await?;

    // --- The delegate killed mid-build: reported lost, and the other
    // delegate deletes what it left.
    let (mut child, rx) = s.spawn_build(&["--image", IMAGE, "--", "sleep", "600"])?;
    wait_line(&rx, ": running")?;
    s.start_delegate("d2")?;
    s.wait_connected("d2")?;
    s.kill_delegate(0)?;
    let lines = wait_line(&rx, "DELEGATE_LOST")?;
    let code = child.wait()?.code();
    ensure!(code == Some(125), "exit {code:?}\n{}", lines.join("\n"));
    let cleanup = cleanup_task(&lines)?;
    s.ok(&["task", "events", &cleanup])?;
    all_gone(&admin, &ns).await?;
    Ok(())
}

/// The only delegate killed mid-build: the build is reported `DELEGATE_LOST`
/// without waiting for any delegate; its objects stay (no delegate can reach
/// the cluster) while the clean-up waits queued; the delegate restarted with
/// the same name and token runs it, and every object goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_builds_clean_up_waits_for_a_delegate() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("build-lost").await;
    let s = start(env, &admin, &ns).await?;
    let (mut child, rx) = s.spawn_build(&[
        "--image",
        IMAGE,
        "--secret-env",
        "TOKEN=account.build_token",
        "--",
        "sleep",
        "600",
    ])?;
    wait_line(&rx, ": running")?;
    s.kill_delegate(0)?;
    let lines = wait_line(&rx, "DELEGATE_LOST")?;
    let code = child.wait()?.code();
    ensure!(code == Some(125), "exit {code:?}\n{}", lines.join("\n"));
    let cleanup = cleanup_task(&lines)?;

    // Nobody to clean up yet: the objects are there, the clean-up queued.
    let lp = ListParams::default().labels("tether.dev/build");
    let pods = Api::<Pod>::namespaced(admin.clone(), &ns).list(&lp).await?;
    let secrets = Api::<Secret>::namespaced(admin.clone(), &ns)
        .list(&lp)
        .await?;
    ensure!(
        pods.items.len() == 1 && secrets.items.len() == 1,
        "the lost build's pod and secret should still be there"
    );
    let task: serde_json::Value =
        serde_json::from_str(&s.ok(&["task", "get", &cleanup, "-o", "json"])?)?;
    ensure!(task["state"] == "queued", "{task}");
    ensure!(task["kind"] == "buildCleanup", "{task}");
    let builds = s.ok(&["build", "list", "--connector", "cluster", "-o", "json"])?;
    ensure!(
        builds.contains("DELEGATE_LOST") && builds.contains("\"failed\""),
        "{builds}"
    );

    // The same delegate back (same name, same token): it runs the clean-up.
    s.start_delegate("d1")?;
    s.ok(&["task", "events", &cleanup])?;
    all_gone(&admin, &ns).await?;
    let task: serde_json::Value =
        serde_json::from_str(&s.ok(&["task", "get", &cleanup, "-o", "json"])?)?;
    ensure!(task["state"] == "succeeded", "{task}");
    ensure!(
        task["output"]["cleanup"]["deleted"]
            .as_array()
            .is_some_and(|d| d.len() == 2),
        "the pod and the secret: {task}"
    );
    Ok(())
}

/// The clean-up task named in the CLI's `DELEGATE_LOST` line.
fn cleanup_task(lines: &[String]) -> Result<String> {
    let line = lines
        .iter()
        .find(|l| l.contains("DELEGATE_LOST"))
        .context("no DELEGATE_LOST line")?;
    let id = line
        .split("clean-up task ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("no clean-up task named: {line}"))?;
    Ok(id.to_string())
}

/// Waits, watching each, until every object labelled as a build's in `ns` is
/// gone (the clean-up may still be finishing when its task is reported).
async fn all_gone(admin: &Client, ns: &str) -> Result<()> {
    async fn gone<K>(api: Api<K>) -> Result<()>
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default,
    {
        let lp = ListParams::default().labels("tether.dev/build");
        for o in api.list(&lp).await?.items {
            let name = kube::ResourceExt::name_any(&o);
            let uid = kube::ResourceExt::uid(&o).unwrap_or_default();
            tokio::time::timeout(
                Duration::from_secs(120),
                await_condition(
                    api.clone(),
                    &name,
                    kube::runtime::conditions::is_deleted(&uid),
                ),
            )
            .await
            .with_context(|| format!("{name} was not deleted"))??;
        }
        Ok(())
    }
    gone(Api::<Pod>::namespaced(admin.clone(), ns)).await?;
    gone(Api::<Secret>::namespaced(admin.clone(), ns)).await?;
    gone(Api::<PersistentVolumeClaim>::namespaced(admin.clone(), ns)).await?;
    nothing_left(admin, ns, "lost build").await
}
