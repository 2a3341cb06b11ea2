//! The benchmark of the Kubernetes proxy (issue 12): requests through a real
//! `tether server` (HTTPS) and a real `tether delegate run` against the same
//! requests sent directly to the API server, interleaved in one run:
//! - GET latency (p50, p99) and the added latency;
//! - throughput of a large list, and of a port-forward download (kubectl
//!   1.33, or the newest on this machine), through the proxy vs direct;
//! - 1,000 watches open through one delegate: RSS of the manager and the
//!   delegate, and the extra delay of a watch event against a direct watch.
//!
//! Uses the cluster named by TETHER_TEST_KUBE_DIR (or starts one); the
//! port-forward needs its node. TETHER_BENCH_WATCHES changes the 1,000;
//! TETHER_BENCH_PROXY_PARTS (latency,list,port-forward,watches) picks parts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tether_testenv::{bind_cluster_role, service_account_token, KubeEnv, TestCa};

use crate::dispatch::start_agent;
use crate::manager::{cpu_time, memory_kib, mib, percentile, sorted, Manager};

pub struct Params {
    pub requests: usize,
    pub watches: usize,
}

/// One side of the comparison: a base URL and a client that trusts it.
struct Side {
    http: reqwest::Client,
    base: String,
    ca_pem: String,
    token: String,
}

impl Side {
    fn new(base: &str, ca_pem: &str, token: &str, max_idle: usize) -> Result<Side> {
        Ok(Side {
            http: reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
                .http1_only()
                .pool_max_idle_per_host(max_idle)
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            ca_pem: ca_pem.to_string(),
            token: token.to_string(),
        })
    }

    /// The same side with room for `n` connections (one per watch).
    fn with_pool(&self, n: usize) -> Result<Side> {
        Side::new(&self.base, &self.ca_pem, &self.token, n)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// GETs `path`, reads the whole body; its length.
    async fn fetch(&self, path: &str) -> Result<usize> {
        let mut r = self.get(path).send().await?;
        ensure!(r.status() == 200, "GET {path}: {}", r.status());
        let mut n = 0;
        while let Some(chunk) = r.chunk().await? {
            n += chunk.len();
        }
        Ok(n)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(p: Params) -> Result<()> {
    println!("\n## Kubernetes proxy: through manager (HTTPS) + one real delegate vs. direct to the API server");
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("bench-proxy").await;
    let sa_token = service_account_token(&admin, &ns, "proxy-sa").await?;
    bind_cluster_role(&admin, &ns, "proxy-sa", "cluster-admin").await?;

    let tmp = tempfile::tempdir()?;
    let ca = TestCa::new("tether-bench-ca");
    let (chain, key) = ca.server_pem();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem)?;
    std::fs::write(tmp.path().join("chain.pem"), chain)?;
    std::fs::write(tmp.path().join("key.pem"), key)?;
    let cert_arg = tmp.path().join("chain.pem").display().to_string();
    let key_arg = tmp.path().join("key.pem").display().to_string();
    let mut manager = Manager::start(
        &tmp.path().join("data"),
        0,
        &[
            "--tls-cert-file",
            &cert_arg,
            "--tls-key-file",
            &key_arg,
            "--retest-interval",
            "0",
            "--test-on-change=false",
        ],
    )?;
    manager.ca_file = Some(ca_file.clone());
    let api = manager.api();
    api.post(
        "/api/v1/secrets",
        &json!({"name": "proxy_sa", "identifier": "proxy_sa", "value": sa_token}),
    )
    .await?;
    api.post(
        "/api/v1/secrets",
        &json!({"name": "proxy_ca", "identifier": "proxy_ca", "value": env.ca_pem}),
    )
    .await?;
    api.post(
        "/api/v1/connectors",
        &json!({"connector": {
            "name": "bench proxy",
            "identifier": "bench_proxy",
            "type": "K8sCluster",
            "spec": {
                "delegateSelectors": ["proxy-bench"],
                "credential": {"type": "ManualConfig", "spec": {
                    "masterUrl": env.url,
                    "auth": {"type": "ServiceAccount", "spec": {
                        "serviceAccountTokenRef": "proxy_sa",
                        "caCertRef": "proxy_ca"
                    }}
                }}
            }
        }}),
    )
    .await?;
    let token = api
        .post(
            "/api/v1/tokens",
            &json!({"name": "bench", "role": "viewer", "kubeAccess": true}),
        )
        .await?["value"]
        .as_str()
        .context("token value")?
        .to_string();
    let agent = start_agent(&manager, &api, "proxy-agent", "proxy-bench").await?;
    let base = format!("{}/k8s/connectors/bench_proxy", manager.url);
    // The tunnel opens right after registration: wait for the first answer.
    let proxied = Side::new(&base, &ca.pem, &token, 64)?;
    let direct = Side::new(&env.url, &env.ca_pem, &sa_token, 64)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxied.fetch("/version").await.is_err() {
        ensure!(
            Instant::now() < deadline,
            "no answer through the proxy within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // TETHER_BENCH_PROXY_HOLD=1: keep the manager and delegate up until
    // SIGINT, to poke them by hand (curl, perf).
    if std::env::var_os("TETHER_BENCH_PROXY_HOLD").is_some() {
        println!(
            "holding until SIGINT: {base} (token {token}, CA {}); direct {} (token in {})",
            ca_file.display(),
            env.url,
            tmp.path().join("sa.token").display()
        );
        std::fs::write(tmp.path().join("sa.token"), &sa_token)?;
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    // TETHER_BENCH_PROXY_PARTS=list,port-forward (say): only those parts.
    let parts = std::env::var("TETHER_BENCH_PROXY_PARTS")
        .unwrap_or_else(|_| "latency,list,port-forward,watches".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    if part("latency") {
        latency(&proxied, &direct, &ns, p.requests).await?;
    }
    if part("list") {
        bulk_list(&admin, &proxied, &direct, &ns).await?;
    }
    if !part("port-forward") {
    } else if env.node.is_some() {
        port_forward(env, &manager, &token, &ns, tmp.path()).await?;
    } else {
        println!("port-forward: skipped (the cluster has no node)");
    }
    if !part("watches") {
        return Ok(());
    }
    let apiserver_pid: Option<u32> = std::fs::read_to_string(env.dir.join("kube-apiserver.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    watches(
        &manager,
        agent.child.id(),
        apiserver_pid,
        &proxied,
        &direct,
        &ns,
        p.watches,
    )
    .await?;
    Ok(())
}

async fn latency(proxied: &Side, direct: &Side, ns: &str, n: usize) -> Result<()> {
    let path = format!("/api/v1/namespaces/{ns}");
    for _ in 0..50 {
        proxied.fetch(&path).await?;
        direct.fetch(&path).await?;
    }
    let (mut through, mut straight) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        proxied.fetch(&path).await?;
        through.push(ms(t.elapsed()));
        let t = Instant::now();
        direct.fetch(&path).await?;
        straight.push(ms(t.elapsed()));
    }
    let (through, straight) = (sorted(through), sorted(straight));
    let (p50, p99) = (percentile(&through, 0.5), percentile(&through, 0.99));
    let (d50, d99) = (percentile(&straight, 0.5), percentile(&straight, 0.99));
    println!(
        "GET {path} x{n} (keep-alive, interleaved): proxy p50 {p50:.2} ms p99 {p99:.2} ms; direct p50 {d50:.2} ms p99 {d99:.2} ms; added p50 {:.2} ms p99 {:.2} ms; ratio p50 {:.2}x",
        p50 - d50,
        p99 - d99,
        p50 / d50
    );
    Ok(())
}

async fn bulk_list(admin: &kube::Client, proxied: &Side, direct: &Side, ns: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(admin.clone(), ns);
    let blob = "x".repeat(100_000);
    for i in 0..200 {
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("bulk-{i}")),
                ..Default::default()
            },
            data: Some([("blob".to_string(), blob.clone())].into()),
            ..Default::default()
        };
        api.create(&Default::default(), &cm).await?;
    }
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let size = direct.fetch(&path).await?;
    proxied.fetch(&path).await?;
    let (mut through, mut straight) = (Duration::ZERO, Duration::ZERO);
    let rounds = 10;
    for _ in 0..rounds {
        let t = Instant::now();
        ensure!(
            proxied.fetch(&path).await? == size,
            "the list through the proxy differs in size"
        );
        through += t.elapsed();
        let t = Instant::now();
        direct.fetch(&path).await?;
        straight += t.elapsed();
    }
    let mbs = |d: Duration| (size * rounds) as f64 / d.as_secs_f64() / 1e6;
    println!(
        "list of 200 ConfigMaps ({:.1} MB) x{rounds}: proxy {:.0} MB/s, direct {:.0} MB/s: {:.0}% of direct",
        size as f64 / 1e6,
        mbs(through),
        mbs(straight),
        100.0 * mbs(through) / mbs(straight)
    );
    Ok(())
}

/// A running `kubectl port-forward`, killed when dropped.
struct PortForward(Child, u16);

impl PortForward {
    fn start(kubectl: &Path, kubeconfig: &Path, ns: &str) -> Result<PortForward> {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["port-forward", "-n", ns, "pod/srv", ":8080"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(out).lines();
        while let Some(l) = lines.next() {
            if let Some(port) = l?
                .strip_prefix("Forwarding from 127.0.0.1:")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse().ok())
            {
                // kubectl goes on writing a line per connection: keep reading.
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(PortForward(child, port));
            }
        }
        let _ = child.kill();
        bail!("kubectl port-forward never said where it listens")
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn newest_kubectl(env: &KubeEnv) -> PathBuf {
    (27..=40)
        .rev()
        .map(|m| PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{m}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| env.bin_dir.join("kubectl"))
}

async fn port_forward(
    env: &KubeEnv,
    manager: &Manager,
    token: &str,
    ns: &str,
    dir: &Path,
) -> Result<()> {
    use base64::Engine as _;
    let node = env.node();
    let pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: srv, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: {}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && head -c 200000000 /dev/zero > /www/big && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec: {{command: ["test", "-f", "/tmp/ready"]}}
      periodSeconds: 1
"#,
        node.busybox_image
    );
    let mut apply = env
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    {
        use std::io::Write;
        apply
            .stdin
            .take()
            .context("stdin")?
            .write_all(pod.as_bytes())?;
    }
    ensure!(apply.wait()?.success(), "kubectl apply of the pod failed");
    let ready = env
        .kubectl()
        .args([
            "wait",
            "-n",
            ns,
            "--for=condition=Ready",
            "--timeout=180s",
            "pod/srv",
        ])
        .stdout(Stdio::null())
        .status()?;
    ensure!(ready.success(), "the port-forward pod is not Ready");

    let kubeconfig = dir.join("proxy.kubeconfig");
    let ca = base64::engine::general_purpose::STANDARD.encode(std::fs::read(
        manager.ca_file.as_ref().context("the manager's CA")?,
    )?);
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}/k8s/connectors/bench_proxy\n    certificate-authority-data: {ca}\nusers:\n- name: t\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context: {{cluster: t, user: t}}\ncurrent-context: t\n",
            manager.url
        ),
    )?;
    let kubectl = newest_kubectl(env);
    let http = reqwest::Client::new();
    let download = |port: u16| {
        let http = http.clone();
        async move {
            let t = Instant::now();
            let mut r = http
                .get(format!("http://127.0.0.1:{port}/big"))
                .send()
                .await
                .with_context(|| format!("GET /big through the port-forward on {port}"))?;
            let mut n = 0usize;
            while let Some(c) = r.chunk().await? {
                n += c.len();
            }
            ensure!(n == 200_000_000, "downloaded {n} bytes");
            anyhow::Ok(t.elapsed())
        }
    };
    let through_pf = PortForward::start(&kubectl, &kubeconfig, ns)?;
    let direct_pf = PortForward::start(&kubectl, &env.kubeconfig, ns)?;
    download(through_pf.1).await?;
    download(direct_pf.1).await?;
    let (mut through, mut straight) = (Duration::ZERO, Duration::ZERO);
    let rounds = 3;
    for _ in 0..rounds {
        through += download(through_pf.1).await?;
        straight += download(direct_pf.1).await?;
    }
    let mbs = |d: Duration| 200.0 * rounds as f64 / d.as_secs_f64();
    println!(
        "port-forward download of 200 MB x{rounds} ({}): proxy {:.0} MB/s, direct {:.0} MB/s: {:.0}% of direct",
        kubectl.file_name().unwrap_or_default().to_string_lossy(),
        mbs(through),
        mbs(straight),
        100.0 * mbs(through) / mbs(straight)
    );
    Ok(())
}

/// Reads one watch stream; sends (watch, event name, arrival) for each line.
/// The returned handle stops it (the connection is dropped).
fn follow(
    side: &Side,
    path: String,
    tx: tokio::sync::mpsc::UnboundedSender<(usize, String, Instant)>,
    who: usize,
    opened: tokio::sync::mpsc::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    let req = side.get(&path);
    tokio::spawn(async move {
        let mut r = match req.send().await {
            Ok(r) if r.status() == 200 => r,
            Ok(r) => {
                let status = r.status();
                let why: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                eprintln!("watch {who}: {status} {why}");
                return;
            }
            Err(e) => {
                eprintln!("watch {who}: {:#}", anyhow::Error::from(e));
                return;
            }
        };
        let _ = opened.send(()).await;
        let mut buf = Vec::new();
        while let Ok(Some(c)) = r.chunk().await {
            let now = Instant::now();
            buf.extend_from_slice(&c);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    if let Some(n) = v["object"]["metadata"]["name"].as_str() {
                        let _ = tx.send((who, n.to_string(), now));
                    }
                }
            }
        }
    })
}

/// A set of open watches and what they receive.
struct Watches {
    rx: tokio::sync::mpsc::UnboundedReceiver<(usize, String, Instant)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watches {
    /// Opens one watch per `(who, side)`; watch `who` sees the ConfigMaps
    /// labelled `ev=all` or `ev=w<who>` (`who` 0 sees every `ev`).
    async fn open(watchers: &[(usize, &Side)], ns: &str, rv: &str) -> Result<Watches> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (open_tx, mut open_rx) = tokio::sync::mpsc::channel(watchers.len() + 1);
        let tasks = watchers
            .iter()
            .map(|(who, side)| {
                let selector = if *who == 0 {
                    "ev".to_string()
                } else {
                    format!("ev+in+%28all%2Cw{who}%29")
                };
                let path = format!(
                    "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&labelSelector={selector}"
                );
                follow(side, path, tx.clone(), *who, open_tx.clone())
            })
            .collect();
        for k in 0..watchers.len() {
            tokio::time::timeout(Duration::from_secs(120), open_rx.recv())
                .await
                .with_context(|| {
                    format!("only {k} of {} watches opened within 120 s", watchers.len())
                })?;
        }
        Ok(Watches { rx, tasks })
    }

    /// Waits until event `name` reached every watch in `whom`; their arrivals.
    async fn arrivals(&mut self, name: &str, whom: usize) -> Result<Vec<(usize, Instant)>> {
        let mut got = Vec::with_capacity(whom);
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < whom {
            let left = deadline
                .checked_duration_since(Instant::now())
                .with_context(|| {
                    format!(
                        "event {name} reached {} of {whom} watches within 60 s",
                        got.len()
                    )
                })?;
            let Ok(Some((who, event, at))) = tokio::time::timeout(left, self.rx.recv()).await
            else {
                bail!("event {name} reached {} of {whom} watches", got.len());
            };
            if event == name {
                got.push((who, at));
            }
        }
        Ok(got)
    }

    fn close(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Creates ConfigMap `name` labelled `ev=<label>`; when it was sent.
async fn event(admin: &crate::manager::Api, ns: &str, name: &str, label: &str) -> Result<Instant> {
    let sent = Instant::now();
    admin
        .post(
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            &json!({"metadata": {"name": name, "labels": {"ev": label}}}),
        )
        .await?;
    Ok(sent)
}

fn print_delays(what: &str, v: Vec<f64>) {
    let v = sorted(v);
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

/// CPU time used so far by each of these processes (0 for one not known).
fn cpu_of(pids: &[Option<u32>]) -> Vec<Duration> {
    pids.iter()
        .map(|p| p.and_then(|p| cpu_time(p).ok()).unwrap_or_default())
        .collect()
}

/// CPU per event of the manager, the delegate, the API server and this
/// process between two [`cpu_of`] snapshots.
fn print_cpu(what: &str, before: &[Duration], after: &[Duration], events: usize) {
    let per = |i: usize| ms(after[i].saturating_sub(before[i])) / events as f64;
    println!(
        "{what}: CPU per event: manager {:.1} ms, delegate {:.1} ms, API server {:.1} ms, this bench's readers {:.1} ms",
        per(0),
        per(1),
        per(2),
        per(3)
    );
}

fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        ms(later - earlier)
    } else {
        -ms(earlier - later)
    }
}

/// 1,000 watches through one delegate: memory, then a watch event's extra
/// delay two ways.
/// - One watch's event: each event is for one of the open watches (its own
///   label); its arrival there against a direct watch that sees every event.
/// - Fan-out: every event goes to all the watches at once, so the delegate and
///   the manager pass on 1,000 copies of it (and this process reads them).
///   Its delay from the create request is compared with the same fan-out
///   to 1,000 direct watches, measured next, with the proxied ones closed.
async fn watches(
    manager: &Manager,
    delegate_pid: u32,
    apiserver_pid: Option<u32>,
    proxied: &Side,
    direct: &Side,
    ns: &str,
    n: usize,
) -> Result<()> {
    let (m0, d0) = (memory_kib(manager.pid())?.0, memory_kib(delegate_pid)?.0);
    let list: Value = proxied
        .get(&format!("/api/v1/namespaces/{ns}/configmaps?limit=1"))
        .send()
        .await?
        .json()
        .await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("resourceVersion")?
        .to_string();
    let through = proxied.with_pool(n)?;
    let t = Instant::now();
    let mut watchers: Vec<(usize, &Side)> = vec![(0, direct)];
    watchers.extend((1..=n).map(|i| (i, &through)));
    let mut open = Watches::open(&watchers, ns, &rv).await?;
    println!(
        "{n} watches through one delegate opened in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (m1, d1) = (memory_kib(manager.pid())?.0, memory_kib(delegate_pid)?.0);
    println!(
        "RSS with {n} open watches: manager {:.1} MiB (idle {:.1}), delegate {:.1} MiB (idle {:.1})",
        mib(m1),
        mib(m0),
        mib(d1),
        mib(d0)
    );

    let admin = crate::manager::Api {
        http: direct.http.clone(),
        base: direct.base.clone(),
        token: direct.token.clone(),
    };
    // One watch's event, with all the others open.
    let events = 50;
    let mut extra = Vec::new();
    for e in 0..events {
        let who = 1 + e * n / events;
        let name = format!("one-{e}");
        event(&admin, ns, &name, &format!("w{who}")).await?;
        let got = open.arrivals(&name, 2).await?;
        let at = |w: usize| got.iter().find(|(x, _)| *x == w).map(|(_, a)| *a);
        let (d, p) = (at(0).context("direct")?, at(who).context("proxied")?);
        extra.push(signed_ms(p, d));
    }
    print_delays(
        &format!("watch event extra delay, one watch's event with {n} open ({events} events; proxied arrival - direct arrival)"),
        extra,
    );

    // Fan-out: each event to every watch (TETHER_BENCH_FANOUT_EVENTS of them).
    let events = crate::env_or("TETHER_BENCH_FANOUT_EVENTS", 10);
    let pids = [
        Some(manager.pid()),
        Some(delegate_pid),
        apiserver_pid,
        Some(std::process::id()),
    ];
    let cpu0 = cpu_of(&pids);
    let (mut extra, mut proxied_delay) = (Vec::new(), Vec::new());
    for e in 0..events {
        let name = format!("all-{e}");
        let sent = event(&admin, ns, &name, "all").await?;
        let got = open.arrivals(&name, n + 1).await?;
        let d = got.iter().find(|(w, _)| *w == 0).context("direct")?.1;
        for (w, at) in got {
            if w != 0 {
                extra.push(signed_ms(at, d));
                proxied_delay.push(ms(at - sent));
            }
        }
    }
    print_cpu(
        &format!("fan-out to {n} proxied watches"),
        &cpu0,
        &cpu_of(&pids),
        events,
    );
    print_delays(
        &format!("fan-out to {n} proxied watches ({events} events), arrival - one direct watch's arrival"),
        extra,
    );
    let (m2, d2) = (memory_kib(manager.pid())?, memory_kib(delegate_pid)?);
    println!(
        "RSS after the events: manager {:.1} MiB (peak {:.1}), delegate {:.1} MiB (peak {:.1})",
        mib(m2.0),
        mib(m2.1),
        mib(d2.0),
        mib(d2.1)
    );
    open.close();

    // The same fan-out to direct watches.
    let straight = direct.with_pool(n)?;
    let watchers: Vec<(usize, &Side)> = (1..=n).map(|i| (i, &straight)).collect();
    let mut open = Watches::open(&watchers, ns, &rv).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut direct_delay = Vec::new();
    let cpu0 = cpu_of(&pids);
    for e in 0..events {
        let name = format!("all-direct-{e}");
        let sent = event(&admin, ns, &name, "all").await?;
        direct_delay.extend(
            open.arrivals(&name, n)
                .await?
                .into_iter()
                .map(|(_, at)| ms(at - sent)),
        );
    }
    print_cpu(
        &format!("fan-out to {n} direct watches"),
        &cpu0,
        &cpu_of(&pids),
        events,
    );
    open.close();
    let (p, d) = (sorted(proxied_delay), sorted(direct_delay));
    println!(
        "fan-out, create -> arrival at each of {n} watches: proxied p50 {:.2} ms, p99 {:.2} ms; direct p50 {:.2} ms, p99 {:.2} ms; extra p50 {:.2} ms",
        percentile(&p, 0.5),
        percentile(&p, 0.99),
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        percentile(&p, 0.5) - percentile(&d, 0.5)
    );
    Ok(())
}
