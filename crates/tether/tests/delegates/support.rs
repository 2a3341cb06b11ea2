//! What the delegate tests share: real `tether delegate run` child processes, a
//! small API client, bounded waits on the API, and a TCP proxy that stands in
//! for the load balancer in front of the manager(s).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tether_testenv::TetherServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::{bin, cli_ok};

/// Short heartbeats so the fault tests take seconds, not minutes.
pub const FAST: &[&str] = &["--delegate-heartbeat", "1s", "--delegate-timeout", "3s"];

/// How long any wait in these tests may take before it fails the test. Generous:
/// the machine is shared and busy.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const PROJECT_A: &str = "/api/v1/orgs/default/projects/a";
pub const PROJECT_B: &str = "/api/v1/orgs/default/projects/b";
pub const ACCOUNT: &str = "/api/v1";

/// Polls `probe` every 100 ms until it returns `Some`, or panics after
/// [`PATIENCE`] with `what`. Used where nothing pushes an event to the test
/// (the API has no watch endpoint; process logs are files).
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("gave up after {PATIENCE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The REST API as one token sees it.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub url: String,
    token: String,
}

impl Api {
    pub fn new(server: &TetherServer) -> Api {
        Api::at(&server.url, &server.admin_token)
    }

    pub fn at(url: &str, token: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: url.to_string(),
            token: token.to_string(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a delegate token in `scope` (an API path prefix); returns (id, value).
    pub async fn delegate_token(&self, scope: &str, name: &str) -> (String, String) {
        let (s, v) = self
            .post(&format!("{scope}/delegate-tokens"), json!({ "name": name }))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["token"]["id"].as_str().unwrap().to_string(),
            v["value"].as_str().unwrap().to_string(),
        )
    }

    pub async fn delegate(&self, scope: &str, name: &str) -> Value {
        let (s, v) = self.get(&format!("{scope}/delegates/{name}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Waits until the delegate shows connected with a connection made at or
    /// after `since` (ms since the epoch; 0 for any), and returns it.
    pub async fn connected(&self, scope: &str, name: &str, since: i64) -> Value {
        eventually(&format!("delegate '{name}' to be connected"), || async {
            let (s, v) = self.get(&format!("{scope}/delegates/{name}")).await;
            (s == StatusCode::OK
                && v["connected"] == true
                && v["connectedAt"].as_i64().unwrap_or(0) >= since)
                .then_some(v)
        })
        .await
    }

    pub async fn disconnected(&self, scope: &str, name: &str) -> Value {
        eventually(&format!("delegate '{name}' to be disconnected"), || async {
            let v = self.delegate(scope, name).await;
            (v["connected"] == false).then_some(v)
        })
        .await
    }

    /// Submits an `echo` task; returns the created task.
    pub async fn echo(
        &self,
        scope: &str,
        message: &str,
        hold_ms: u64,
        selectors: &[&str],
    ) -> Value {
        let (s, v) = self.try_echo(scope, message, hold_ms, selectors).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    pub async fn try_echo(
        &self,
        scope: &str,
        message: &str,
        hold_ms: u64,
        selectors: &[&str],
    ) -> (StatusCode, Value) {
        self.post(
            &format!("{scope}/tasks"),
            json!({
                "kind": "echo",
                "payload": { "message": message, "holdMs": hold_ms },
                "selectors": selectors,
            }),
        )
        .await
    }

    pub async fn task(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Waits until the task is held by a delegate; returns the task.
    pub async fn assigned(&self, id: &str) -> Value {
        eventually(&format!("task {id} to be assigned"), || async {
            let t = self.task(id).await;
            (t["state"] == "assigned").then_some(t)
        })
        .await
    }

    /// Waits until the task succeeded or failed; returns the task.
    pub async fn finished(&self, id: &str) -> Value {
        eventually(&format!("task {id} to finish"), || async {
            let t = self.task(id).await;
            matches!(t["state"].as_str(), Some("succeeded" | "failed")).then_some(t)
        })
        .await
    }

    /// Waits until the task succeeded (a failure fails the test); returns it.
    pub async fn succeeded(&self, id: &str) -> Value {
        let t = self.finished(id).await;
        assert_eq!(t["state"], "succeeded", "task {id}: {t:#}");
        t
    }
}

/// Creates org `default` with projects `a` and `b`.
pub fn seed_projects(server: &TetherServer) {
    cli_ok(
        server,
        &["org", "create", "Default", "--identifier", "default"],
        None,
    );
    for p in ["a", "b"] {
        cli_ok(
            server,
            &[
                "project",
                "create",
                &p.to_uppercase(),
                "--org",
                "default",
                "--identifier",
                p,
            ],
            None,
        );
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A real `tether delegate run` process, token in `TETHER_DELEGATE_TOKEN`, log
/// in a file. Killed (SIGKILL) on drop.
pub struct Delegate {
    pub name: String,
    child: tokio::process::Child,
    log_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Delegate {
    /// Starts `tether delegate run --manager URL --name NAME EXTRA...`.
    pub fn spawn(manager: &str, token: &str, name: &str, extra: &[&str]) -> Delegate {
        let dir = tempfile::tempdir().unwrap();
        let log_file = dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_file).unwrap();
        let child = tokio::process::Command::new(bin())
            .args(["delegate", "run", "--manager", manager, "--name", name])
            .args(extra)
            .env("TETHER_DELEGATE_TOKEN", token)
            .env("TETHER_LOG", "info")
            .env_remove("TETHER_URL")
            .env_remove("TETHER_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("start tether delegate run");
        Delegate {
            name: name.to_string(),
            child,
            log_file,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the delegate is still running")
    }

    /// Sends a signal by name (`KILL`, `TERM`, `STOP`, `CONT`).
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {}", self.pid());
    }

    /// Waits for the process to exit (bounded) and returns how it ended.
    pub async fn exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(s) => s.unwrap(),
            Err(_) => panic!(
                "delegate '{}' did not exit within {PATIENCE:?}; its log:\n{}",
                self.name,
                self.log()
            ),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Lines of its log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

/// A free loopback port (bound then released: a small race, fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP proxy standing in for a load balancer: delegates dial it, it forwards
/// to whichever manager is its backend now. `cut` drops every connection, as a
/// load balancer does when its backend goes away.
pub struct Proxy {
    pub url: String,
    backend: Arc<Mutex<String>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(backend_url: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let backend = Arc::new(Mutex::new(host_port(backend_url)));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (b, c) = (backend.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = b.lock().unwrap().clone();
                let handle = tokio::spawn(async move {
                    // A backend that is down: close, as a load balancer with
                    // no healthy target does.
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut c = c.lock().unwrap();
                c.retain(|h| !h.is_finished());
                c.push(handle);
            }
        });
        Proxy {
            url,
            backend,
            conns,
            accept,
        }
    }

    /// New connections go to `backend_url` from now on.
    pub fn point_to(&self, backend_url: &str) {
        *self.backend.lock().unwrap() = host_port(backend_url);
    }

    /// Drops every connection in flight.
    pub fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// The ids of the tasks a delegate's log says it finished.
pub fn finished_task_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("task finished"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("task="))
                .map(str::to_string)
        })
        .collect()
}
