//! The Kubernetes API of a connector through tether, end to end: the real
//! `tether server` (HTTPS), real `tether delegate run` processes, the real
//! control plane, and the kubectl versions on this machine (oldest, middle,
//! newest). Plain requests, server-side apply, delete, a large list, a watch
//! that sees events and ends when its token is revoked, the forged
//! `Impersonate-User` header, a token without the grant, no eligible
//! delegate, impersonation mode decided by the cluster's RBAC, the audit log,
//! and a secret written through the proxy found nowhere in tether's files.
//! `two_managers_and_a_dying_delegate`: a request through a manager the
//! delegate is not connected to, and a delegate killed mid-watch.

#[path = "kube_proxy/cloud.rs"]
mod cloud;
mod common;
#[path = "kube_proxy/refusals.rs"]
mod refusals;
#[path = "kube_proxy/streams.rs"]
mod streams;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use tether_testenv::{
    bind_cluster_role, service_account_token, KubeEnv, TestDatabase, TetherServer,
};

use common::bin;

const ORG: &str = "default";
const PROJECT: &str = "web";
const SCOPE: [&str; 4] = ["--org", ORG, "--project", PROJECT];
const K8S: &str = "/k8s/orgs/default/projects/web/connectors";

/// kubectl binaries present here, oldest first: Google Cloud CLI's, else ours.
fn kubectls(env: &KubeEnv) -> Vec<PathBuf> {
    let gcloud = Path::new("/usr/lib/google-cloud-sdk/bin");
    let mut found: Vec<PathBuf> = (27..=33)
        .map(|m| gcloud.join(format!("kubectl.1.{m}")))
        .filter(|p| p.exists())
        .collect();
    if found.is_empty() {
        return vec![env.bin_dir.join("kubectl")];
    }
    // Oldest, middle, newest.
    let mid = found[found.len() / 2].clone();
    let last = found.pop().unwrap();
    let first = found.remove(0);
    let mut picked = vec![first, mid, last];
    picked.dedup();
    picked
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
struct Certs {
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

fn certs(dir: &Path) -> Result<Certs> {
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tether-test-ca",
    ])?;
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=tether",
    ])?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])?;
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("leaf.pem"))?,
        std::fs::read_to_string(dir.join("ca.pem"))?
    );
    std::fs::write(dir.join("chain.pem"), chain)?;
    Ok(Certs {
        ca: dir.join("ca.pem"),
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
    })
}

struct Env {
    dir: tempfile::TempDir,
    certs: Certs,
    delegates: Vec<(String, Child)>,
    http: reqwest::Client,
}

impl Drop for Env {
    fn drop(&mut self) {
        for (_, d) in &mut self.delegates {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Env {
    fn new() -> Result<Env> {
        let dir = tempfile::tempdir()?;
        let certs = certs(dir.path())?;
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca)?)?;
        Ok(Env {
            dir,
            certs,
            delegates: Vec::new(),
            http: reqwest::Client::builder()
                .add_root_certificate(ca)
                .build()?,
        })
    }

    fn tls_args(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.certs.chain.display().to_string(),
            "--tls-key-file".into(),
            self.certs.key.display().to_string(),
            "--retest-interval".into(),
            "0".into(),
            "--test-on-change=false".into(),
        ]
    }

    fn cli(&self, server: &TetherServer, token: &str, args: &[&str]) -> Output {
        server
            .cli(bin(), token)
            .env("TETHER_CA_FILE", &self.certs.ca)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tether")
    }

    fn ok(&self, server: &TetherServer, token: &str, args: &[&str]) -> Result<String> {
        let out = self.cli(server, token, args);
        ensure!(
            out.status.success(),
            "tether {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    fn admin(&self, server: &TetherServer, args: &[&str]) -> Result<String> {
        self.ok(server, &server.admin_token, args)
    }

    /// A project viewer token named `ci` with the kubeAccess grant: what a
    /// CI job holds.
    fn ci_token(&self, server: &TetherServer) -> Result<String> {
        let mut create = vec![
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "viewer",
            "--kube-access",
        ];
        create.extend(SCOPE);
        Ok(self.admin(server, &create)?.trim().to_string())
    }

    fn delegate_log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// A delegate with an account-scope token, connected to `server`.
    fn start_delegate(&mut self, server: &TetherServer, name: &str, tags: &str) -> Result<()> {
        let token = self.admin(server, &["delegate", "token", "create", "--name", name])?;
        let token_file = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&token_file, token.trim())?;
        let child = Command::new(bin())
            .args([
                "delegate",
                "run",
                "--manager",
                &server.url,
                "--name",
                name,
                "--tags",
                tags,
            ])
            .arg("--ca-file")
            .arg(&self.certs.ca)
            .env("TETHER_DELEGATE_TOKEN_FILE", &token_file)
            .env("TETHER_LOG", "debug")
            .env_remove("TETHER_DELEGATE_TOKEN")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.delegate_log(name))?))
            .spawn()?;
        self.delegates.push((name.to_string(), child));
        // No event says a delegate's tunnel is open: poll its log (bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(self.delegate_log(name)).unwrap_or_default();
            if log.contains("tunnel to the manager open") {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "delegate {name} opened no tunnel:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_delegate(&mut self, name: &str) {
        if let Some((_, c)) = self.delegates.iter_mut().find(|(n, _)| n == name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn logs(&self) -> String {
        self.delegates
            .iter()
            .map(|(n, _)| {
                format!(
                    "--- delegate {n}\n{}",
                    std::fs::read_to_string(self.delegate_log(n)).unwrap_or_default()
                )
            })
            .collect()
    }

    /// `tether connector kubeconfig ID` as `token`, written to a file.
    fn kubeconfig(
        &self,
        server: &TetherServer,
        token: &str,
        id: &str,
        file: &str,
    ) -> Result<PathBuf> {
        let mut args = vec!["connector", "kubeconfig", id, "--ttl", "1h"];
        args.extend(SCOPE);
        let text = self.ok(server, token, &args)?;
        let path = self.dir.path().join(file);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    async fn raw(&self, server: &TetherServer, token: &str, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}{path}", server.url))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn kubectl(k: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(k)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl")
}

fn kubectl_ok(k: &Path, kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let out = kubectl(k, kubeconfig, args);
    ensure!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        k.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn stdin_kubectl(k: &Path, kubeconfig: &Path, args: &[&str], input: &str) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new(k)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "{} {args:?}: {}",
        k.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// A running `kubectl get --watch`, its output lines on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(k: &Path, kubeconfig: &Path, ns: &str) -> Result<Watch> {
        Watch::spawn(
            k,
            kubeconfig,
            &["get", "configmaps", "-n", ns, "--watch", "-o", "name"],
        )
    }

    /// Any kubectl command whose output lines are watched.
    fn spawn(k: &Path, kubeconfig: &Path, args: &[&str]) -> Result<Watch> {
        let mut child = Command::new(k)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Ok(Watch { child, lines })
    }

    /// Waits (bounded) for a line naming `what`.
    fn expect(&self, what: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return Ok(()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        bail!("the watch never showed {what}")
    }

    /// Waits (bounded) for kubectl to exit; its status.
    fn ended(&mut self) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            ensure!(Instant::now() < deadline, "the watch is still open");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connector(id: &str, url: &str, selectors: &str, mode: &str) -> String {
    format!(
        "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: {ORG}
  projectIdentifier: {PROJECT}
  type: K8sCluster
  spec:
    delegateSelectors: [{selectors}]
    proxy:
      mode: {mode}
    credential:
      type: ManualConfig
      spec:
        masterUrl: {url}
        auth:
          type: ServiceAccount
          spec:
            serviceAccountTokenRef: proxy_sa
            caCertRef: cluster_ca
"
    )
}

fn seed(e: &Env, m: &TetherServer, env: &KubeEnv, sa_token: &str) -> Result<()> {
    e.admin(m, &["org", "create", "Default", "--identifier", ORG])?;
    e.admin(
        m,
        &[
            "project",
            "create",
            "Web",
            "--org",
            ORG,
            "--identifier",
            PROJECT,
        ],
    )?;
    for (id, value) in [("proxy_sa", sa_token), ("cluster_ca", env.ca_pem.as_str())] {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        args.extend(SCOPE);
        admin_stdin(e, m, &args, value)?;
    }
    for (id, sel, mode) in [
        ("direct", "\"proxy\"", "Connector"),
        ("imp", "\"proxy\"", "Impersonate"),
        ("nowhere", "\"absent-tag\"", "Connector"),
    ] {
        admin_stdin(
            e,
            m,
            &["connector", "apply", "-f", "-"],
            &connector(id, &env.url, sel, mode),
        )?;
    }
    Ok(())
}

/// `tether ARGS` as the admin, `input` on stdin.
fn admin_stdin(e: &Env, m: &TetherServer, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write;
    let mut c = m
        .cli(bin(), &m.admin_token)
        .env("TETHER_CA_FILE", &e.certs.ca)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    c.stdin.take().unwrap().write_all(input.as_bytes())?;
    let out = c.wait_with_output()?;
    ensure!(
        out.status.success(),
        "tether {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Every file under `dir`, as bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

fn audit_complete(audit: &Value, ns: &str) -> Result<()> {
    let items = audit.as_array().context("audit items")?;
    let has = |f: &dyn Fn(&Value) -> bool| items.iter().any(f);
    ensure!(
        has(&|a| a["verb"] == "watch"
            && a["resource"] == "configmaps"
            && a["namespace"] == ns
            && a["caller"] == "ci"),
        "no watch entry: {audit}"
    );
    ensure!(
        has(&|a| a["verb"] == "create"
            && a["resource"] == "secrets"
            && a["status"] == 201
            && a["bytesIn"].as_i64() > Some(0)),
        "no secret create: {audit}"
    );
    ensure!(
        has(&|a| a["status"] == 400 && a["connector"] == "imp"),
        "no refused impersonation: {audit}"
    );
    ensure!(
        has(&|a| a["verb"] == "list"
            && a["resource"] == "configmaps"
            && a["status"] == 200
            && a["bytesOut"].as_i64() > Some(0)
            && a["delegateId"].is_string()),
        "no bulk list: {audit}"
    );
    ensure!(
        has(&|a| a["status"] == 503 && a["connector"] == "nowhere"),
        "no 503: {audit}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_the_proxy() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("proxy").await;
    let sa_token = service_account_token(&admin, &ns, "proxy-sa").await?;
    bind_cluster_role(&admin, &ns, "proxy-sa", "cluster-admin").await?;

    let mut e = Env::new()?;
    let args = e.tls_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = TetherServer::start(bin(), &args)?;
    ensure!(m.url.starts_with("https://"), "{}", m.url);
    seed(&e, &m, env, &sa_token)?;
    e.start_delegate(&m, "d1", "proxy")?;

    // A viewer token with the grant, and the kubeconfigs it gets.
    let ci = e.ci_token(&m)?;
    let kc = e.kubeconfig(&m, &ci, "direct", "direct.yaml")?;
    let kc_imp = e.kubeconfig(&m, &ci, "imp", "imp.yaml")?;

    // --- get, server-side apply, delete with each kubectl version.
    let versions = kubectls(env);
    for (i, k) in versions.iter().enumerate() {
        let out = kubectl_ok(k, &kc, &["get", "namespaces", "-o", "name"])?;
        ensure!(
            out.contains(&format!("namespace/{ns}")),
            "{}: {out}",
            k.display()
        );
        let name = format!("applied-{i}");
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: v{i}}}\n"
        );
        let out = stdin_kubectl(k, &kc, &["apply", "--server-side", "-f", "-"], &manifest)?;
        ensure!(out.contains("serverside-applied"), "{out}");
        let v = kubectl_ok(
            k,
            &kc,
            &[
                "get",
                "configmap",
                &name,
                "-n",
                &ns,
                "-o",
                "jsonpath={.data.k}",
            ],
        )?;
        ensure!(v == format!("v{i}"), "{v}");
        kubectl_ok(k, &kc, &["delete", "configmap", &name, "-n", &ns])?;
        let gone = kubectl(k, &kc, &["get", "configmap", &name, "-n", &ns]);
        ensure!(
            !gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
            "{gone:?}"
        );
    }
    let newest = versions.last().unwrap().clone();

    // --- A secret written through the proxy.
    let secret_value = format!("s3cr3t-{}", tether_testenv::unique("v"));
    kubectl_ok(
        &newest,
        &kc,
        &[
            "create",
            "secret",
            "generic",
            "through-proxy",
            "-n",
            &ns,
            &format!("--from-literal=password={secret_value}"),
        ],
    )?;

    // --- A large list, streamed: 40 ConfigMaps of 20 KB.
    {
        use k8s_openapi::api::core::v1::ConfigMap;
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(admin.clone(), &ns);
        for i in 0..40 {
            let cm = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(format!("bulk-{i}")),
                    ..Default::default()
                },
                data: Some([("blob".to_string(), "x".repeat(20_000))].into()),
                ..Default::default()
            };
            api.create(&Default::default(), &cm).await?;
        }
    }
    let listed: Value = serde_json::from_str(&kubectl_ok(
        &newest,
        &kc,
        &["get", "configmaps", "-n", &ns, "-o", "json"],
    )?)?;
    let bulk = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("bulk-"))
        })
        .count();
    ensure!(bulk == 40, "listed {bulk} of 40");

    // --- A forged Impersonate-User header is refused, in both modes.
    for (k, id) in [(&kc, "direct"), (&kc_imp, "imp")] {
        let out = kubectl(
            &newest,
            k,
            &["--as", "system:admin", "get", "pods", "-n", &ns],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        // kubectl shows "BadRequest"; for a failed discovery not the message.
        ensure!(!out.status.success() && err.contains("BadRequest"), "{err}");
        let r = e
            .http
            .get(format!("{}{K8S}/{id}/api/v1/namespaces/{ns}/pods", m.url))
            .bearer_auth(&ci)
            .header("Impersonate-User", "system:admin")
            .header("Impersonate-Group", "system:masters")
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        let msg = body["message"].as_str().unwrap_or_default();
        ensure!(
            status == 400 && body["kind"] == "Status" && msg.contains("refuses the impersonate-"),
            "{status} {body}"
        );
    }

    // --- Impersonation mode: the cluster's RBAC decides for tether:ci.
    let out = kubectl(&newest, &kc_imp, &["get", "configmaps", "-n", &ns]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("\"tether:ci\" cannot list"),
        "{err}"
    );
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: cm-reader, namespace: {ns}}}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: cm-reader, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"tether:project:default/web\"}}\n"
    );
    stdin_kubectl(
        &env.bin_dir.join("kubectl"),
        &env.kubeconfig,
        &["apply", "-f", "-"],
        &rbac,
    )?;
    let out = kubectl_ok(
        &newest,
        &kc_imp,
        &["get", "configmaps", "-n", &ns, "-o", "name"],
    )?;
    ensure!(out.contains("configmap/bulk-0"), "{out}");
    let out = kubectl(&newest, &kc_imp, &["get", "pods", "-n", &ns]);
    ensure!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("\"tether:ci\" cannot list resource \"pods\""),
        "{out:?}"
    );

    // --- A token without the grant (even an admin's): a Kubernetes Status.
    let (status, body) = e
        .raw(
            &m,
            &m.admin_token,
            &format!("{K8S}/direct/api/v1/namespaces"),
        )
        .await?;
    ensure!(
        status == 403 && body["kind"] == "Status" && body["reason"] == "Forbidden",
        "{status} {body}"
    );
    ensure!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no kubeAccess grant"),
        "{body}"
    );
    // A kubeconfig token is limited to its connector.
    let kc_token = std::fs::read_to_string(&kc)?;
    let kc_token = kc_token
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .context("token in kubeconfig")?
        .to_string();
    let (status, body) = e
        .raw(&m, &kc_token, &format!("{K8S}/imp/api/v1/namespaces"))
        .await?;
    ensure!(
        status == 403
            && body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("another connector"),
        "{status} {body}"
    );
    // No token at all.
    let (status, body) = e.raw(&m, "", &format!("{K8S}/direct/version")).await?;
    ensure!(status == 401 && body["kind"] == "Status", "{status} {body}");

    // --- No eligible delegate: at once, naming the selector and the delegate.
    let (status, body) = e
        .raw(&m, &ci, &format!("{K8S}/nowhere/api/v1/namespaces"))
        .await?;
    let msg = body["message"].as_str().unwrap_or_default();
    ensure!(
        status == 503
            && body["kind"] == "Status"
            && msg.contains("absent-tag")
            && msg.contains("d1"),
        "{status} {body}"
    );

    // --- A watch stays open while events arrive, and ends when its token is revoked.
    let (status, created) = {
        let r = e
            .http
            .post(format!(
                "{}/api/v1/orgs/{ORG}/projects/{PROJECT}/connectors/direct/kubeconfig",
                m.url
            ))
            .bearer_auth(&ci)
            .send()
            .await?;
        (r.status().as_u16(), r.json::<Value>().await?)
    };
    ensure!(status == 201, "{status} {created}");
    let watch_token = created["value"].as_str().unwrap().to_string();
    let watch_kc = e.dir.path().join("watch.yaml");
    std::fs::write(
        &watch_kc,
        std::fs::read_to_string(&kc)?.replace(&kc_token, &watch_token),
    )?;
    let mut watch = Watch::start(&newest, &watch_kc, &ns)?;
    watch.expect("bulk-0")?;
    for name in ["w-1", "w-2", "w-3"] {
        kubectl_ok(
            &env.bin_dir.join("kubectl"),
            &env.kubeconfig,
            &["create", "configmap", name, "-n", &ns],
        )?;
        watch.expect(name)?;
    }
    let r = e
        .http
        .delete(format!(
            "{}/api/v1/tokens/{}",
            m.url,
            created["token"]["id"].as_str().unwrap()
        ))
        .bearer_auth(&m.admin_token)
        .send()
        .await?;
    ensure!(r.status() == 204, "revoke: {}", r.status());
    watch.ended()?;
    let out = kubectl(&newest, &watch_kc, &["get", "namespaces"]);
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("revoked"),
        "{out:?}"
    );

    // --- The audit log: who, what, where; never the secret.
    // Entries are written as each request ends: poll (bounded) until all are in.
    let mut args = vec!["audit", "list", "-o", "json", "--limit", "1000"];
    args.extend(SCOPE);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let audit: Value = serde_json::from_str(&e.admin(&m, &args)?)?;
        match audit_complete(&audit, &ns) {
            Ok(()) => break,
            Err(err) if Instant::now() > deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }

    // The secret's value is in no file of the manager, and no log.
    for (path, bytes) in files_under(&m.data_dir) {
        ensure!(
            !bytes
                .windows(secret_value.len())
                .any(|w| w == secret_value.as_bytes()),
            "the secret is in {}",
            path.display()
        );
    }
    ensure!(
        !m.log().contains(&secret_value),
        "the secret is in the server log"
    );
    ensure!(
        !e.logs().contains(&secret_value),
        "the secret is in a delegate log"
    );
    ensure!(
        !e.logs().contains(&sa_token),
        "the connector's token is in a delegate log"
    );
    ensure!(
        !m.log().contains(&sa_token),
        "the connector's token is in the server log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_and_a_dying_delegate() -> Result<()> {
    let Some(db) = TestDatabase::create().await? else {
        return Ok(()); // TestDatabase said why (and fails when PostgreSQL is required)
    };
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("proxy2").await;
    let sa_token = service_account_token(&admin, &ns, "proxy-sa").await?;
    bind_cluster_role(&admin, &ns, "proxy-sa", "cluster-admin").await?;

    let mut e = Env::new()?;
    let mut args = e.tls_args();
    args.extend(["--database-url".to_string(), db.url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = TetherServer::start(bin(), &args)?;
    let b_dir = e.dir.path().join("b");
    std::fs::create_dir_all(&b_dir)?;
    for f in ["admin-token", "kek"] {
        std::fs::copy(a.data_dir.join(f), b_dir.join(f))?;
    }
    let b = TetherServer::start_in(bin(), &b_dir, &args)?;
    seed(&e, &a, env, &sa_token)?;
    e.start_delegate(&a, "d1", "proxy")?;

    let ci = e.ci_token(&a)?;
    // Through B, which holds no tunnel: B passes the request to A.
    let kc_b = e.kubeconfig(&b, &ci, "direct", "via-b.yaml")?;
    let k = kubectls(env).pop().unwrap();
    let out = kubectl_ok(&k, &kc_b, &["get", "namespaces", "-o", "name"])?;
    ensure!(
        out.contains(&format!("namespace/{ns}")),
        "{out}\n{}\n{}",
        b.log(),
        a.log()
    );
    let w = Watch::start(&k, &kc_b, &ns)?;
    kubectl_ok(
        &env.bin_dir.join("kubectl"),
        &env.kubeconfig,
        &["create", "configmap", "via-b", "-n", &ns],
    )?;
    w.expect("via-b")?;
    drop(w);

    // A watch through d1 ends when d1 dies; the next request goes to d2.
    let kc_a = e.kubeconfig(&a, &ci, "direct", "via-a.yaml")?;
    let mut w = Watch::start(&k, &kc_a, &ns)?;
    kubectl_ok(
        &env.bin_dir.join("kubectl"),
        &env.kubeconfig,
        &["create", "configmap", "before-death", "-n", &ns],
    )?;
    w.expect("before-death")?;
    e.start_delegate(&a, "d2", "proxy")?;
    e.kill_delegate("d1");
    w.ended()?;
    let out = kubectl_ok(&k, &kc_a, &["get", "configmaps", "-n", &ns, "-o", "name"])?;
    ensure!(
        out.contains("configmap/before-death"),
        "{out}\n{}",
        e.logs()
    );
    Ok(())
}
