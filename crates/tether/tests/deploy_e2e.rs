//! Deploying through a connector end to end: the real `tether server`, a real
//! `tether delegate run`, the real control plane, driven through the CLI.
//! The connector's account starts with no permission at all: pre-flight
//! refuses (exit 2) naming every missing rule, and nothing is created; with
//! the Role `tether rbac for` prints, the same deploy succeeds (exit 0) as
//! release 1; a deploy without the ConfigMap and with `--prune` deletes it
//! (release 2); a rollback brings it back (release 3); `deploy history` lists
//! the three. Bad YAML is refused with its document and line. A Deployment
//! whose pods cannot run (no node: they stay Pending) fails at its timeout
//! with its progress streamed before the report.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use serde_json::Value;
use tether_testenv::{service_account_token, KubeEnv, TetherServer};

use common::{bin, cli};

struct Setup {
    server: TetherServer,
    delegate: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.delegate.kill();
        let _ = self.delegate.wait();
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

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn deploy(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["deploy", "apply", "--connector", "cluster"];
        args.extend(extra);
        let out = self.run(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn start(env: &KubeEnv, token: &str) -> Result<Setup> {
    let server = TetherServer::start(bin(), &["--retest-interval", "0", "--test-on-change=false"])?;
    let dir = tempfile::tempdir()?;
    let dtoken = {
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
        String::from_utf8(out.stdout)?.trim().to_string()
    };
    let log = std::fs::File::create(dir.path().join("delegate.log"))?;
    let delegate = Command::new(bin())
        .args([
            "delegate",
            "run",
            "--manager",
            &server.url,
            "--name",
            "d",
            "--tags",
            "deploy",
        ])
        .env("TETHER_DELEGATE_TOKEN", &dtoken)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()?;
    let s = Setup {
        server,
        delegate,
        dir,
    };
    for (id, value) in [
        ("cluster_ca", env.ca_pem.as_str()),
        ("cluster_token", token),
    ] {
        let out = cli(
            &s.server,
            &s.server.admin_token,
            &["secret", "create", "--name", id, "--identifier", id],
            Some(value),
        );
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let connector = format!(
        "connector:\n  name: cluster\n  identifier: cluster\n  type: K8sCluster\n  spec:\n    delegateSelectors: [deploy]\n    credential:\n      type: ManualConfig\n      spec:\n        masterUrl: {}\n        auth:\n          type: ServiceAccount\n          spec:\n            serviceAccountTokenRef: account.cluster_token\n            caCertRef: account.cluster_ca\n",
        env.url
    );
    let out = cli(
        &s.server,
        &s.server.admin_token,
        &["connector", "apply", "-f", "-"],
        Some(&connector),
    );
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No event tells a client that a delegate connected: poll the list.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list: Value = serde_json::from_str(&s.ok(&["delegate", "list", "-o", "json"])?)?;
        if list
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["connected"] == true))
        {
            break;
        }
        ensure!(Instant::now() < deadline, "the delegate did not connect");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(s)
}

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
