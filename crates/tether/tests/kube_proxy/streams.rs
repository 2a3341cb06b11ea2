//! Upgraded streams through the proxy on the real node: `exec` with stdin and
//! its exit code, `attach`, `cp` both ways, `port-forward` carrying 50 MB both
//! ways intact, `logs -f`, with the oldest, a middle and the newest kubectl
//! (1.30+ ask for WebSockets first; the 1.20 API server refuses them and kubectl
//! falls back to SPDY/3.1, which tether splices), and the audit entries of the
//! sessions. Then what no stream may do to another: a paused port-forward
//! reader does not stall a second transfer, other requests or the delegate's
//! heartbeats, and loses nothing when it reads again; a watch with no data for
//! two minutes still delivers the event that comes after.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use sha2::{Digest, Sha256};

use super::*;

/// Bounds each wait on the cluster so a broken node fails the test, never hangs it.
const WAIT: &str = "180s";

/// A namespace whose `default` service account exists (pods are refused before).
async fn pod_namespace(env: &KubeEnv, prefix: &str) -> Result<String> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let ns = env.namespace(prefix).await;
    let sas: kube::Api<ServiceAccount> = kube::Api::namespaced(env.admin_client().await, &ns);
    let found =
        kube::runtime::wait::await_condition(sas, "default", |s: Option<&ServiceAccount>| {
            s.is_some()
        });
    tokio::time::timeout(Duration::from_secs(60), found)
        .await
        .context("no default service account within 60 s")??;
    Ok(ns)
}

/// Applies `yaml` as the cluster's admin and waits for the pods to be Ready.
fn pods_ready(env: &KubeEnv, ns: &str, yaml: &str, names: &[&str]) -> Result<()> {
    let admin = env.bin_dir.join("kubectl");
    stdin_kubectl(
        &admin,
        &env.kubeconfig,
        &["apply", "-n", ns, "-f", "-"],
        yaml,
    )?;
    let mut args = vec!["wait", "-n", ns, "--for=condition=Ready", "--timeout", WAIT];
    let pods: Vec<String> = names.iter().map(|n| format!("pod/{n}")).collect();
    args.extend(pods.iter().map(String::as_str));
    kubectl_ok(&admin, &env.kubeconfig, &args)?;
    Ok(())
}

/// A pod serving: `httpd` on 8080 (`/big`: 50 MB of random bytes), an echo
/// server on 9000 (`nc -ll -e cat`), and a line on stdout every 200 ms. Ready
/// once `/big` is written.
fn server_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: srv}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && head -c 50000000 /dev/urandom > /www/big && touch /tmp/ready && httpd -p 8080 -h /www && (nc -ll -p 9000 -e cat </dev/null >/dev/null 2>&1 &) && i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
    readinessProbe:
      exec: {{command: ["test", "-f", "/tmp/ready"]}}
      periodSeconds: 1
"#
    )
}

/// A pod whose only process echoes its stdin, then exits (`stdinOnce`).
fn attach_pod(image: &str, name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while read l; do echo got:$l; done; echo bye"]
    stdin: true
    stdinOnce: true
"#
    )
}

/// kubectl with stdin from `input`: its output and exit status.
fn kubectl_input(k: &Path, kubeconfig: &Path, args: &[&str], input: &[u8]) -> Result<Output> {
    let mut child = Command::new(k)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread so a kubectl that answers before reading it all cannot block us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out)
}

/// A running `kubectl port-forward`, killed when dropped.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    fn start(k: &Path, kubeconfig: &Path, ns: &str, remote: u16) -> Result<PortForward> {
        let mut child = Command::new(k)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["port-forward", "-n", ns, "pod/srv", &format!(":{remote}")])
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        // "Forwarding from 127.0.0.1:PORT -> REMOTE"
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(l) = rx.recv_timeout(left) else { break };
            let port = l
                .strip_prefix("Forwarding from 127.0.0.1:")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            if let Some(port) = port {
                return Ok(PortForward { child, port });
            }
        }
        let _ = child.kill();
        bail!("{} port-forward never said where it listens", k.display())
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Random-looking bytes, different per `seed` (no RNG needed to compare them).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Sends `len` bytes to the echo server through a port-forward while reading
/// them back; what came back must be what went.
fn echo_through(port: u16, len: usize, seed: u64) -> Result<()> {
    let data = payload(len, seed);
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = s.try_clone()?;
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent));
    let mut got = vec![0u8; len];
    s.read_exact(&mut got)
        .with_context(|| format!("reading {len} echoed bytes"))?;
    writer.join().unwrap()?;
    ensure!(
        Sha256::digest(&got) == Sha256::digest(&data),
        "the echoed bytes differ from those sent"
    );
    Ok(())
}

/// `kubectl logs -f`: two successive lines arrive while it follows.
fn follows_logs(k: &Path, kubeconfig: &Path, ns: &str) -> Result<()> {
    let mut child = Command::new(k)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["logs", "-f", "--tail=1", "-n", ns, "srv"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 3 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("tick ") => seen.push(l),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    ensure!(
        seen.len() == 3,
        "{} logs -f showed {seen:?}, not 3 lines as they were written",
        k.display()
    );
    Ok(())
}

/// One kubectl version: exec, attach, cp both ways, port-forward, logs -f.
fn streams_with(k: &Path, kc: &Path, dir: &Path, ns: &str, i: usize) -> Result<()> {
    let v = k.display();
    // exec with stdin, and the remote exit code as kubectl's.
    let out = kubectl_input(
        k,
        kc,
        &[
            "exec",
            "-i",
            "-n",
            ns,
            "srv",
            "--",
            "sh",
            "-c",
            "cat; exit 7",
        ],
        b"through tether\n",
    )?;
    ensure!(
        String::from_utf8_lossy(&out.stdout) == "through tether\n" && out.status.code() == Some(7),
        "{v} exec: {out:?}"
    );
    // attach with stdin.
    let out = kubectl_input(
        k,
        kc,
        &["attach", "-i", "-n", ns, &format!("att{i}")],
        b"one\ntwo\n",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains("got:one\ngot:two\nbye"),
        "{v} attach: {out:?}"
    );
    // cp there and back.
    let up = dir.join(format!("cp-up-{i}"));
    let down = dir.join(format!("cp-down-{i}"));
    let data = payload(3_000_000, i as u64);
    std::fs::write(&up, &data)?;
    let remote = format!("srv:/tmp/cp-{i}");
    kubectl_ok(k, kc, &["cp", "-n", ns, &up.display().to_string(), &remote])?;
    kubectl_ok(
        k,
        kc,
        &["cp", "-n", ns, &remote, &down.display().to_string()],
    )?;
    ensure!(
        std::fs::read(&down)? == data,
        "{v} cp: the file came back different"
    );
    // port-forward: 50 MB each way.
    let pf = PortForward::start(k, kc, ns, 9000)?;
    echo_through(pf.port, 50_000_000, 100 + i as u64)
        .with_context(|| format!("{v} port-forward"))?;
    drop(pf);
    follows_logs(k, kc, ns)
}

fn sessions_audited(audit: &Value, ns: &str, versions: usize) -> Result<()> {
    let items = audit.as_array().context("audit items")?;
    let sessions = |kind: &str| -> Vec<&Value> {
        items
            .iter()
            .filter(|a| a["session"] == kind && a["status"] == 101 && a["namespace"] == ns)
            .collect()
    };
    for kind in ["exec", "attach", "portforward"] {
        let s = sessions(kind);
        ensure!(
            s.len() >= versions,
            "{} {kind} sessions audited, not {versions}: {audit}",
            s.len()
        );
        for a in &s {
            ensure!(
                a["startedAt"].as_i64() <= a["endedAt"].as_i64()
                    && a["startedAt"].as_i64() > Some(0)
                    && a["name"].is_string()
                    && a["delegateId"].is_string()
                    && a["bytesIn"].as_i64() > Some(0)
                    && a["bytesOut"].as_i64() > Some(0)
                    && a.get("error").is_none(),
                "{kind} session entry: {a}"
            );
        }
    }
    ensure!(
        sessions("portforward")
            .iter()
            .filter(|a| a["bytesIn"].as_i64() >= Some(50_000_000)
                && a["bytesOut"].as_i64() >= Some(50_000_000))
            .count()
            >= versions,
        "the 50 MB port-forwards are not counted: {audit}"
    );
    ensure!(
        sessions("exec").iter().any(|a| a["name"] == "srv")
            && sessions("attach").iter().any(|a| a["name"] == "att0"),
        "the sessions' pods are not named: {audit}"
    );
    // The target: the container (kubectl names the default one), the
    // program an exec ran (`sh`, `tar` for cp), never its arguments.
    let execs = sessions("exec");
    ensure!(
        execs
            .iter()
            .filter(|a| a["container"] == "srv" && a["program"] == "sh")
            .count()
            >= versions
            && execs.iter().any(|a| a["program"] == "tar"),
        "exec sessions without their container and program: {audit}"
    );
    ensure!(
        sessions("attach")
            .iter()
            .all(|a| a["container"] == "c" && a.get("program").is_none()),
        "attach sessions without their container: {audit}"
    );
    // kubectl names a port-forward's ports only in its SPDY stream headers.
    ensure!(
        sessions("portforward").iter().all(|a| a["ports"] == "9000"),
        "port-forward sessions without their port: {audit}"
    );
    let text = audit.to_string();
    ensure!(
        !text.contains("exit 7") && !text.contains("cat;"),
        "an exec's arguments are in the audit log: {audit}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_streams_on_the_node() -> Result<()> {
    let env = KubeEnv::get();
    let image = env.node().busybox_image.clone();
    let admin = env.admin_client().await;
    let ns = pod_namespace(env, "proxy-streams").await?;
    let sa_token = service_account_token(&admin, &ns, "proxy-sa").await?;
    bind_cluster_role(&admin, &ns, "proxy-sa", "cluster-admin").await?;
    let versions = kubectls(env);
    let mut pods = server_pod(&image);
    let names: Vec<String> = (0..versions.len()).map(|i| format!("att{i}")).collect();
    for n in &names {
        pods.push_str("---\n");
        pods.push_str(&attach_pod(&image, n));
    }
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("srv");
    pods_ready(env, &ns, &pods, &all)?;

    let mut e = Env::new()?;
    let args = e.tls_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = TetherServer::start(bin(), &args)?;
    seed(&e, &m, env, &sa_token)?;
    e.start_delegate(&m, "d1", "proxy")?;
    let ci = e.ci_token(&m)?;
    let kc = e.kubeconfig(&m, &ci, "direct", "direct.yaml")?;

    for (i, k) in versions.iter().enumerate() {
        streams_with(k, &kc, e.dir.path(), &ns, i)
            .with_context(|| format!("server log:\n{}\n{}", m.log(), e.logs()))?;
    }

    let mut args = vec!["audit", "list", "-o", "json", "--limit", "1000"];
    args.extend(SCOPE);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let audit: Value = serde_json::from_str(&e.admin(&m, &args)?)?;
        match sessions_audited(&audit, &ns, versions.len()) {
            Ok(()) => break,
            Err(err) if Instant::now() > deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(())
}

/// The delegate's last heartbeat as the manager has it.
fn last_heartbeat(e: &Env, m: &TetherServer) -> Result<i64> {
    let list: Value = serde_json::from_str(&e.admin(m, &["delegate", "list", "-o", "json"])?)?;
    list.as_array()
        .and_then(|l| l.iter().find(|d| d["name"] == "d1"))
        .and_then(|d| d["lastHeartbeat"].as_i64())
        .context("d1's lastHeartbeat")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_and_an_idle_watch() -> Result<()> {
    let env = KubeEnv::get();
    let image = env.node().busybox_image.clone();
    let admin = env.admin_client().await;
    let ns = pod_namespace(env, "proxy-slow").await?;
    let sa_token = service_account_token(&admin, &ns, "proxy-sa").await?;
    bind_cluster_role(&admin, &ns, "proxy-sa", "cluster-admin").await?;

    let mut e = Env::new()?;
    let mut args = e.tls_args();
    args.extend(["--delegate-heartbeat".to_string(), "1s".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = TetherServer::start(bin(), &args)?;
    seed(&e, &m, env, &sa_token)?;
    e.start_delegate(&m, "d1", "proxy")?;
    let ci = e.ci_token(&m)?;
    let kc = e.kubeconfig(&m, &ci, "direct", "direct.yaml")?;
    let k = kubectls(env).pop().unwrap();

    // A watch on which nothing happens (no object has the label) while the
    // rest of the test runs.
    let watch = Watch::spawn(
        &k,
        &kc,
        &[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-l",
            "idle=yes",
            "--watch",
            "-o",
            "name",
        ],
    )?;
    let watch_opened = Instant::now();

    pods_ready(env, &ns, &server_pod(&image), &["srv"])?;
    let sum = kubectl_ok(
        &k,
        &kc,
        &["exec", "-n", &ns, "srv", "--", "sha256sum", "/www/big"],
    )?;
    let sum = sum
        .split_whitespace()
        .next()
        .context("sha256sum")?
        .to_string();

    // The paused reader: asks for 50 MB and reads 1 KB of it.
    let slow_pf = PortForward::start(&k, &kc, &ns, 8080)?;
    let mut slow = TcpStream::connect(("127.0.0.1", slow_pf.port))?;
    slow.set_read_timeout(Some(Duration::from_secs(60)))?;
    slow.write_all(b"GET /big HTTP/1.0\r\nHost: srv\r\n\r\n")?;
    let mut first = vec![0u8; 1024];
    slow.read_exact(&mut first)?;
    let paused_at = now_ms();

    // Meanwhile another port-forward carries 50 MB each way, requests are
    // answered, and the delegate's heartbeats go on.
    let pf = PortForward::start(&k, &kc, &ns, 9000)?;
    echo_through(pf.port, 50_000_000, 7).context("a transfer beside the paused reader")?;
    drop(pf);
    let out = kubectl_ok(&k, &kc, &["get", "pods", "-n", &ns, "-o", "name"])?;
    ensure!(out.contains("pod/srv"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_heartbeat(&e, &m)? <= paused_at {
        ensure!(
            Instant::now() < deadline,
            "no heartbeat from d1 while a reader is paused\n{}",
            e.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The paused reader resumes and gets all 50 MB, intact.
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest)?;
    let mut all = first;
    all.extend_from_slice(&rest);
    let body_at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header from httpd")?
        + 4;
    let body = &all[body_at..];
    ensure!(
        body.len() == 50_000_000 && format!("{:x}", Sha256::digest(body)) == sum,
        "the paused reader got {} bytes, not the 50 MB file intact",
        body.len()
    );
    drop(slow_pf);

    // The watch has seen nothing for two minutes and still delivers.
    let idle = Duration::from_secs(120);
    if let Some(left) = idle.checked_sub(watch_opened.elapsed()) {
        tokio::time::sleep(left).await;
    }
    kubectl_ok(
        &env.bin_dir.join("kubectl"),
        &env.kubeconfig,
        &["create", "configmap", "after-idle", "-n", &ns],
    )?;
    kubectl_ok(
        &env.bin_dir.join("kubectl"),
        &env.kubeconfig,
        &["label", "configmap", "after-idle", "-n", &ns, "idle=yes"],
    )?;
    watch.expect("after-idle").with_context(|| m.log())?;
    Ok(())
}
