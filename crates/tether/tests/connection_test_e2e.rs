//! The connection test end to end: the real `tether server`, real `tether
//! delegate run` processes and the real control plane, driven through the CLI
//! and the API. Covers the outcomes (SUCCESS, PARTIAL, 401 FAILURE, a missing
//! secret refused before dispatch, no eligible delegate, InheritFromDelegate),
//! the CLI's report and exit codes, the stored status and history, the test
//! that follows a create or update, the periodic re-test and `/metrics`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use reqwest::StatusCode;
use serde_json::Value;
use tether_testenv::{
    bind_cluster_role, service_account_token, KubeEnv, TestDatabase, TetherServer,
};

use common::{bin, cli};

const ORG: &str = "default";
const PROJECT: &str = "web";
const SCOPE_FLAGS: [&str; 4] = ["--org", ORG, "--project", PROJECT];
const API: &str = "/api/v1/orgs/default/projects/web";

/// A manager with delegates connected to it. Everything is killed on drop.
struct Manager {
    server: TetherServer,
    delegates: Vec<(String, Child)>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Drop for Manager {
    fn drop(&mut self) {
        for (_, d) in &mut self.delegates {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Manager {
    fn start(args: &[&str]) -> Result<Manager> {
        Self::on(TetherServer::start(bin(), args)?)
    }

    fn on(server: TetherServer) -> Result<Manager> {
        Ok(Manager {
            server,
            delegates: Vec::new(),
            http: reqwest::Client::new(),
            dir: tempfile::tempdir()?,
        })
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        cli(&self.server, &self.server.admin_token, args, stdin)
    }

    /// A client command that must succeed; its stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run(args, stdin);
        ensure!(
            out.status.success(),
            "tether {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Starts `tether delegate run` with an account-scope token (so it serves
    /// every scope) and waits until the manager lists it as connected.
    fn start_delegate(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        let token = self.ok(
            &[
                "delegate",
                "token",
                "create",
                "--name",
                &format!("{name}-token"),
            ],
            None,
        )?;
        let token_file = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&token_file, token.trim())?;
        let log = std::fs::File::create(self.delegate_log(name))?;
        let child = Command::new(bin())
            .args([
                "delegate",
                "run",
                "--manager",
                &self.server.url,
                "--name",
                name,
            ])
            .args(extra)
            .env("TETHER_DELEGATE_TOKEN_FILE", &token_file)
            .env_remove("TETHER_DELEGATE_TOKEN")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("start a delegate")?;
        self.delegates.push((name.to_string(), child));
        // No event tells a client that a delegate connected: poll the list.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list: Value =
                serde_json::from_str(&self.ok(&["delegate", "list", "-o", "json"], None)?)?;
            if list.as_array().is_some_and(|a| {
                a.iter()
                    .any(|d| d["name"] == name && d["connected"].as_bool() == Some(true))
            }) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "delegate {name} did not connect in 30 s:\n{}",
                std::fs::read_to_string(self.delegate_log(name)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn delegate_log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn logs(&self) -> String {
        let mut all = format!("--- server log\n{}", self.server.log());
        for (name, _) in &self.delegates {
            all.push_str(&format!(
                "\n--- delegate {name}\n{}",
                std::fs::read_to_string(self.delegate_log(name)).unwrap_or_default()
            ));
        }
        all
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.server.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("manager reachable");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn connector(&self, id: &str) -> Result<Value> {
        let (status, v) = self
            .api(
                reqwest::Method::GET,
                &format!("{API}/connectors/{id}"),
                None,
            )
            .await;
        ensure!(status == StatusCode::OK, "GET connector {id}: {status} {v}");
        Ok(v)
    }

    /// Waits for the background test of a created or updated connector to
    /// store its result, and returns the connector. The API has no event for
    /// that, so this polls (bounded, 100 ms apart).
    async fn settled(&self, id: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let c = self.connector(id).await?;
            if c["status"]["status"] != "PENDING" {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!("connector {id} still PENDING after 90 s:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn history(&self, id: &str) -> Result<Vec<Value>> {
        let (status, v) = self
            .api(
                reqwest::Method::GET,
                &format!("{API}/connectors/{id}/test-history"),
                None,
            )
            .await;
        ensure!(status == StatusCode::OK, "history of {id}: {status} {v}");
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    async fn metrics(&self) -> Result<String> {
        // No token: Prometheus scrapes without one.
        let resp = self
            .http
            .get(format!("{}/metrics", self.server.url))
            .send()
            .await?;
        ensure!(
            resp.status() == StatusCode::OK,
            "GET /metrics: {}",
            resp.status()
        );
        let ctype = resp.headers()["content-type"].to_str()?.to_string();
        ensure!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        Ok(resp.text().await?)
    }

    fn secret(&self, id: &str, value: &str) -> Result<()> {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        args.extend(SCOPE_FLAGS);
        self.ok(&args, Some(value))?;
        Ok(())
    }

    /// `tether connector apply -f -` with a YAML document in the project.
    fn apply(&self, yaml: &str) -> Result<()> {
        self.ok(&["connector", "apply", "-f", "-"], Some(yaml))?;
        Ok(())
    }

    /// `tether connector test ID` in the project, with extra arguments.
    fn test_cli(&self, id: &str, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["connector", "test", id];
        args.extend(SCOPE_FLAGS);
        args.extend(extra);
        let out = self.run(&args, None);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `tether connector test ID -o json`: exit code and the response.
    fn test_json(&self, id: &str) -> Result<(i32, Value)> {
        let (code, out, err) = self.test_cli(id, &["-o", "json"]);
        let v = serde_json::from_str(&out)
            .with_context(|| format!("not JSON (exit {code}):\n{out}\n{err}"))?;
        Ok((code, v))
    }
}

fn seed(m: &Manager) -> Result<()> {
    m.ok(&["org", "create", "Default", "--identifier", ORG], None)?;
    m.ok(
        &[
            "project",
            "create",
            "Web",
            "--org",
            ORG,
            "--identifier",
            PROJECT,
        ],
        None,
    )?;
    Ok(())
}

/// A ServiceAccount-token connector trusting the secret `cluster_ca`.
fn sa_connector(id: &str, url: &str, token_ref: &str, selectors: &[&str]) -> String {
    format!(
        "{}            caCertRef: cluster_ca\n",
        sa_connector_without_ca(id, url, token_ref, selectors)
    )
}

/// A ServiceAccount-token connector trusting the system roots.
fn sa_connector_without_ca(id: &str, url: &str, token_ref: &str, selectors: &[&str]) -> String {
    let selectors: Vec<String> = selectors.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: {ORG}
  projectIdentifier: {PROJECT}
  type: K8sCluster
  spec:
    delegateSelectors: [{}]
    credential:
      type: ManualConfig
      spec:
        masterUrl: {url}
        auth:
          type: ServiceAccount
          spec:
            serviceAccountTokenRef: {token_ref}
",
        selectors.join(", ")
    )
}

fn inherit_connector(id: &str, selector: &str) -> String {
    format!(
        "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: {ORG}
  projectIdentifier: {PROJECT}
  type: K8sCluster
  spec:
    delegateSelectors: [\"{selector}\"]
    credential:
      type: InheritFromDelegate
"
    )
}

fn reason(report: &Value) -> &str {
    report["errors"][0]["reason"].as_str().unwrap_or_default()
}

fn hints(report: &Value) -> String {
    report["hints"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The value of one sample line of the metrics page, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn tasks_in_db(data_dir: &Path) -> Result<i64> {
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        data_dir.join("tether.db").display()
    ))
    .await?;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(n)
}

/// Every outcome through manager, delegates and the real cluster, plus the CLI,
/// the stored status, the history and the metrics. One manager and two
/// delegates serve the whole scenario: `general` (no kubeconfig) and `inherit`
/// (started with the test cluster's admin kubeconfig).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_tests_through_manager_and_delegates() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("conntest").await;
    let admin_token = service_account_token(&admin, &ns, "deployer").await?;
    bind_cluster_role(&admin, &ns, "deployer", "cluster-admin").await?;
    let nobody_token = service_account_token(&admin, &ns, "nobody").await?;

    // The periodic re-test is off here, so every test is one this test caused.
    let mut m = Manager::start(&["--retest-interval", "0"])?;
    seed(&m)?;
    m.start_delegate("general", &["--tags", "general"])?;
    let kubeconfig = env.kubeconfig.to_str().context("kubeconfig path")?;
    m.start_delegate(
        "inherit",
        &["--tags", "inherit", "--kubeconfig", kubeconfig],
    )?;
    m.secret("cluster_ca", &env.ca_pem)?;
    m.secret("admin_token", &admin_token)?;
    m.secret("nobody_token", &nobody_token)?;
    m.secret("bogus_token", "not-a-real-token")?;
    m.secret("orphan_token", &admin_token)?;

    // --- Test on create: the API answers PENDING, the background test stores
    // SUCCESS without any explicit call.
    let doc: Value = serde_yaml::from_str(&sa_connector("admin", &env.url, "admin_token", &[]))?;
    let (status, created) = m
        .api(
            reqwest::Method::POST,
            &format!("{API}/connectors"),
            Some(doc),
        )
        .await;
    ensure!(status == StatusCode::CREATED, "{status} {created}");
    ensure!(created["status"]["status"] == "PENDING", "{created}");
    let c = m.settled("admin").await?;
    let st = &c["status"];
    ensure!(
        st["status"] == "SUCCESS",
        "test on create: {c}\n{}",
        m.logs()
    );
    ensure!(
        st["testedAt"].is_i64() && st["lastConnectedAt"] == st["testedAt"],
        "{st}"
    );
    ensure!(st["delegateId"].is_string(), "{st}");
    let first_connected = st["lastConnectedAt"].as_i64().unwrap();
    let h = m.history("admin").await?;
    ensure!(h.len() == 1 && h[0]["trigger"] == "change", "{h:?}");

    // --- SUCCESS through the CLI: readable report, exit code 0.
    let (code, out, err) = m.test_cli("admin", &[]);
    ensure!(code == 0, "exit {code}\n{out}\n{err}");
    for want in [
        "Connection test of connector admin: SUCCESS",
        "Stages:",
        "  url             ok",
        "  authorization   ok",
        "Server version: v1.20",
        &format!("Identity: system:serviceaccount:{ns}:deployer"),
        "Permissions: 35 of 35 allowed",
        "  default    pods              yes  yes   yes    yes     yes     yes    yes",
    ] {
        ensure!(out.contains(want), "{want:?} not in\n{out}");
    }
    ensure!(!out.contains("Missing permissions"), "{out}");
    let (code, r) = m.test_json("admin")?;
    ensure!(code == 0 && r["status"] == "SUCCESS", "{r}");
    ensure!(
        r["delegateId"].is_string() && r["taskId"].is_string(),
        "{r}"
    );
    ensure!(r["stages"].as_array().map(Vec::len) == Some(6), "{r}");

    // --- PARTIAL: an account without bindings. Exit code 2, and every missing
    // permission with its rule and the command that verifies it.
    m.apply(&sa_connector("nobody", &env.url, "nobody_token", &[]))?;
    m.settled("nobody").await?;
    let (code, out, err) = m.test_cli("nobody", &[]);
    ensure!(code == 2, "exit {code}\n{out}\n{err}");
    let who = format!("system:serviceaccount:{ns}:nobody");
    for want in [
        "Connection test of connector nobody: PARTIAL".to_string(),
        "Permissions: 0 of 35 allowed".to_string(),
        "Missing permissions (35):".to_string(),
        "  - get, list, watch, create, update, patch, delete deployments.apps in namespace default"
            .to_string(),
        "    rule (add to a Role in default):".to_string(),
        "        resources: [\"deployments\"]".to_string(),
        format!("      kubectl auth can-i create deployments.apps -n default --as={who}"),
        "Hints:".to_string(),
    ] {
        ensure!(out.contains(&want), "{want:?} not in\n{out}");
    }
    let (code, r) = m.test_json("nobody")?;
    ensure!(code == 2 && r["status"] == "PARTIAL", "{r}");
    let missing = r["missing"].as_array().context("missing[]")?;
    ensure!(missing.len() == 35, "{r}");
    ensure!(
        missing.iter().all(
            |p| p["rule"].as_str().is_some_and(|s| s.contains("apiGroups"))
                && p["verifyCommand"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("kubectl auth can-i") && s.contains(&who))
        ),
        "{r}"
    );
    ensure!(m.connector("nobody").await?["status"]["status"] == "PARTIAL");

    // --- 401: a token the cluster never issued. Exit code 1, with the hint.
    m.apply(&sa_connector("bogus", &env.url, "bogus_token", &[]))?;
    m.settled("bogus").await?;
    let (code, out, err) = m.test_cli("bogus", &[]);
    ensure!(code == 1, "exit {code}\n{out}\n{err}");
    ensure!(out.contains("authentication  FAILED"), "{out}");
    ensure!(
        out.contains("serviceAccountTokenRef"),
        "the hint names the field:\n{out}"
    );
    let (code, r) = m.test_json("bogus")?;
    ensure!(code == 1 && r["status"] == "FAILURE", "{r}");
    ensure!(reason(&r) == "UNAUTHORIZED", "{r}");
    ensure!(hints(&r).contains("401"), "{r}");
    let c = m.connector("bogus").await?;
    ensure!(c["status"]["status"] == "FAILURE", "{c}");
    ensure!(
        c["status"]["lastConnectedAt"].is_null(),
        "never connected: {c}"
    );
    ensure!(
        c["status"]["errorSummary"].is_string()
            && c["status"]["errors"][0]["reason"] == "UNAUTHORIZED",
        "{c}"
    );

    // --- A token with a line break (issue 10 item 5): it used to panic inside
    // the delegate's task. Now a diagnosis, exit code 1, and the delegates
    // keep working.
    m.secret("broken_token", "first-half-5f2b\nsecond-half-9c1e")?;
    m.apply(&sa_connector("broken", &env.url, "broken_token", &[]))?;
    m.settled("broken").await?;
    let (code, r) = m.test_json("broken")?;
    ensure!(
        code == 1 && reason(&r) == "INVALID_TOKEN",
        "{r}\n{}",
        m.logs()
    );
    ensure!(r["taskId"].is_string(), "a delegate ran it: {r}");
    ensure!(
        !r.to_string().contains("second-half-9c1e") && !m.logs().contains("second-half-9c1e"),
        "the token is quoted: {r}"
    );
    ensure!(!m.logs().contains("panicked"), "{}", m.logs());
    let list: Value = serde_json::from_str(&m.ok(&["delegate", "list", "-o", "json"], None)?)?;
    ensure!(
        list.as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|d| d["connected"] == true)),
        "both delegates still connected: {list}"
    );

    // --- Status on failure (REFERENCE.md §1): updating `admin` to the bogus
    // token tests it again by itself; the old lastConnectedAt stays.
    let c = m.connector("admin").await?;
    let last_connected = c["status"]["lastConnectedAt"]
        .as_i64()
        .context("connected")?;
    ensure!(last_connected >= first_connected, "{c}");
    m.apply(&sa_connector("admin", &env.url, "bogus_token", &[]))?;
    let c = m.settled("admin").await?;
    let st = &c["status"];
    ensure!(st["status"] == "FAILURE", "test on update: {c}");
    ensure!(
        st["lastConnectedAt"] == last_connected,
        "kept on failure: {st}"
    );
    ensure!(st["testedAt"].as_i64().unwrap() >= last_connected, "{st}");
    m.apply(&sa_connector("admin", &env.url, "admin_token", &[]))?;
    let c = m.settled("admin").await?;
    let st = &c["status"];
    ensure!(st["status"] == "SUCCESS", "{c}");
    ensure!(st["lastConnectedAt"] == st["testedAt"], "{st}");
    ensure!(
        st["lastConnectedAt"].as_i64().unwrap() >= last_connected,
        "{st}"
    );

    // --- History: every result above, newest first, with what started it.
    let h = m.history("admin").await?;
    let triggers: Vec<&str> = h.iter().filter_map(|e| e["trigger"].as_str()).collect();
    let statuses: Vec<&str> = h.iter().filter_map(|e| e["status"].as_str()).collect();
    ensure!(
        triggers == ["change", "change", "api", "api", "change"],
        "{triggers:?}"
    );
    ensure!(
        statuses == ["SUCCESS", "FAILURE", "SUCCESS", "SUCCESS", "SUCCESS"],
        "{statuses:?}"
    );
    ensure!(
        h.windows(2)
            .all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()),
        "{h:?}"
    );
    ensure!(
        h[1]["report"]["errors"][0]["reason"] == "UNAUTHORIZED",
        "{}",
        h[1]
    );
    ensure!(
        h[2]["taskId"].is_string() && h[2]["delegateId"].is_string(),
        "{}",
        h[2]
    );
    let table = m.ok(
        &[
            "connector",
            "history",
            "admin",
            "--org",
            ORG,
            "--project",
            PROJECT,
        ],
        None,
    )?;
    let lines: Vec<&str> = table.lines().collect();
    ensure!(
        lines.len() == 6 && lines[0].starts_with("TESTED AT"),
        "{table}"
    );
    ensure!(
        lines[2].contains("FAILURE")
            && lines[2].contains("UNAUTHORIZED")
            && lines[2].contains("change"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&m.ok(
        &[
            "connector",
            "history",
            "admin",
            "--org",
            ORG,
            "--project",
            PROJECT,
            "-o",
            "json",
            "--limit",
            "2",
        ],
        None,
    )?)?;
    ensure!(json["items"].as_array().map(Vec::len) == Some(2), "{json}");
    ensure!(json["items"][0]["id"] == h[0]["id"], "{json}");
    let reports = m.ok(
        &[
            "connector",
            "history",
            "admin",
            "--org",
            ORG,
            "--project",
            PROJECT,
            "--reports",
            "--limit",
            "2",
        ],
        None,
    )?;
    ensure!(
        reports.contains("Connection test of connector admin (change): SUCCESS"),
        "{reports}"
    );
    ensure!(
        reports.contains("Connection test of connector admin (change): FAILURE"),
        "{reports}"
    );

    // --- A secret that vanished (here removed behind the manager's back, as a
    // restored backup could) is refused before anything is sent: no task.
    m.apply(&sa_connector("orphan", &env.url, "orphan_token", &[]))?;
    ensure!(m.settled("orphan").await?["status"]["status"] == "SUCCESS");
    {
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            m.server.data_dir.join("tether.db").display()
        ))
        .await?;
        sqlx::query("DELETE FROM connector_secret_refs WHERE secret_id IN (SELECT id FROM secrets WHERE identifier = 'orphan_token')")
            .execute(&pool)
            .await?;
        sqlx::query("DELETE FROM secrets WHERE identifier = 'orphan_token'")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let tasks_before = tasks_in_db(&m.server.data_dir).await?;
    let (code, r) = m.test_json("orphan")?;
    ensure!(code == 1 && r["status"] == "FAILURE", "{r}");
    ensure!(reason(&r) == "SECRET_NOT_FOUND", "{r}");
    ensure!(r["taskId"].is_null() && r["delegateId"].is_null(), "{r}");
    ensure!(hints(&r).contains("nothing was sent to a delegate"), "{r}");
    ensure!(
        r["stages"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["status"] == "skipped")),
        "{r}"
    );
    ensure!(
        tasks_in_db(&m.server.data_dir).await? == tasks_before,
        "no task was created"
    );
    ensure!(m.connector("orphan").await?["status"]["errors"][0]["reason"] == "SECRET_NOT_FOUND");

    // --- No eligible delegate: the report names every delegate considered.
    m.apply(&sa_connector(
        "nowhere",
        &env.url,
        "admin_token",
        &["nobody-has-this"],
    ))?;
    let c = m.settled("nowhere").await?;
    ensure!(
        c["status"]["errors"][0]["reason"] == "NO_ELIGIBLE_DELEGATE",
        "test on create: {c}"
    );
    let (code, r) = m.test_json("nowhere")?;
    ensure!(code == 1 && r["status"] == "FAILURE", "{r}");
    ensure!(reason(&r) == "NO_ELIGIBLE_DELEGATE", "{r}");
    let message = r["errorSummary"].as_str().unwrap_or_default();
    for want in ["nobody-has-this", "'general'", "'inherit'"] {
        ensure!(message.contains(want), "{want:?} not in {message:?}");
    }
    ensure!(r["taskId"].is_null(), "{r}");

    // --- InheritFromDelegate: the delegate's own kubeconfig, named in the report.
    m.apply(&inherit_connector("inherited", "inherit"))?;
    ensure!(
        m.settled("inherited").await?["status"]["status"] == "SUCCESS",
        "{}",
        m.logs()
    );
    let (code, out, _) = m.test_cli("inherited", &[]);
    ensure!(code == 0, "{out}");
    ensure!(out.contains("used: kubeconfig"), "{out}");
    let (code, r) = m.test_json("inherited")?;
    ensure!(code == 0 && r["status"] == "SUCCESS", "{r}");
    let label = r["identity"]["label"].as_str().unwrap_or_default();
    ensure!(
        label.contains("kubeconfig") && label.contains("'inherit'") && label.contains(kubeconfig),
        "{r}"
    );
    // And without a delegate that has credentials to inherit: a clear FAILURE.
    m.apply(&inherit_connector("inherit_nothing", "general"))?;
    let c = m.settled("inherit_nothing").await?;
    ensure!(
        c["status"]["errors"][0]["reason"] == "NO_DELEGATE_CREDENTIALS",
        "{c}"
    );

    // --- /metrics: the connectivity gauge of every connector, durations,
    // tasks and delegates.
    let metrics = m.metrics().await?;
    let gauge = |id: &str, status: &str| {
        sample(
            &metrics,
            &format!("tether_connector_connectivity{{scope=\"project/default/web\",connector=\"{id}\",status=\"{status}\"}}"),
        )
    };
    for (id, status) in [
        ("admin", "SUCCESS"),
        ("nobody", "PARTIAL"),
        ("bogus", "FAILURE"),
        ("orphan", "FAILURE"),
        ("nowhere", "FAILURE"),
        ("inherited", "SUCCESS"),
    ] {
        ensure!(gauge(id, status) == Some(1.0), "{id} {status}:\n{metrics}");
        ensure!(gauge(id, "PENDING") == Some(0.0), "{id}:\n{metrics}");
    }
    ensure!(
        sample(&metrics, "tether_connectors{status=\"SUCCESS\"}") == Some(2.0),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, "tether_delegates_connected") == Some(2.0),
        "{metrics}"
    );
    let api_successes = sample(
        &metrics,
        "tether_connection_test_duration_seconds_count{status=\"SUCCESS\",trigger=\"api\"}",
    )
    .unwrap_or_default();
    ensure!(api_successes >= 4.0, "{metrics}");
    ensure!(
        sample(
            &metrics,
            "tether_connection_test_duration_seconds_bucket{status=\"SUCCESS\",trigger=\"api\",le=\"+Inf\"}"
        ) == Some(api_successes),
        "{metrics}"
    );
    ensure!(
        sample(&metrics, "tether_tasks{state=\"succeeded\"}").unwrap_or_default() >= 10.0,
        "{metrics}"
    );
    ensure!(
        sample(&metrics, "tether_tasks{state=\"queued\"}") == Some(0.0),
        "{metrics}"
    );
    ensure!(
        sample(
            &metrics,
            "tether_connector_last_connected_timestamp_seconds{scope=\"project/default/web\",connector=\"admin\"}"
        )
        .is_some(),
        "{metrics}"
    );
    ensure!(
        !metrics.contains(&admin_token) && !metrics.contains(&env.url),
        "no secrets, no URLs"
    );

    // --- The history goes with the connector.
    m.ok(
        &[
            "connector",
            "delete",
            "admin",
            "--org",
            ORG,
            "--project",
            PROJECT,
        ],
        None,
    )?;
    let (status, _) = m
        .api(
            reqwest::Method::GET,
            &format!("{API}/connectors/admin/test-history"),
            None,
        )
        .await;
    ensure!(status == StatusCode::NOT_FOUND);
    let out = m.run(
        &[
            "connector",
            "history",
            "admin",
            "--org",
            ORG,
            "--project",
            PROJECT,
        ],
        None,
    );
    ensure!(
        !out.status.success(),
        "history of a deleted connector fails"
    );
    ensure!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    Ok(())
}

/// A port nothing listens on (bound, read, released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The periodic re-test runs by itself, and a cluster that never answers holds
/// up nobody: while its test hangs (stage limit 120 s), another connector is
/// re-tested again and again. Without test-on-change, a new connector stays
/// UNKNOWN until its first re-test. Both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_retest_keeps_going_past_a_hanging_cluster() -> Result<()> {
    let mut backends = vec![("sqlite", None)];
    if let Some(db) = TestDatabase::create().await? {
        backends.push(("postgres", Some(db.url)));
    }
    for (backend, url) in backends {
        let mut args = vec![
            "--retest-interval",
            "1s",
            "--test-on-change=false",
            "--test-stage-timeout",
            "120s",
            "--test-concurrency",
            "2",
            "--test-history",
            "3",
        ];
        if let Some(u) = &url {
            args.extend(["--database-url", u.as_str()]);
        }
        let mut m = Manager::start(&args)?;
        seed(&m)?;
        m.start_delegate("d", &[])?;
        m.secret("tok", "not used: no test gets that far")?;

        // Accepts TCP connections and never says a word: the TLS stage of a test
        // against it waits for its whole 120 s limit.
        let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
        let silent_url = format!("https://127.0.0.1:{}", silent.local_addr()?.port());
        let refused_url = format!("https://127.0.0.1:{}", closed_port());

        let doc: Value =
            serde_yaml::from_str(&sa_connector_without_ca("hangs", &silent_url, "tok", &[]))?;
        let (status, c) = m
            .api(
                reqwest::Method::POST,
                &format!("{API}/connectors"),
                Some(doc),
            )
            .await;
        ensure!(status == StatusCode::CREATED, "{status} {c}");
        ensure!(
            c["status"]["status"] == "UNKNOWN",
            "{backend}: no test on change: {c}"
        );
        m.apply(&sa_connector_without_ca(
            "refused",
            &refused_url,
            "tok",
            &[],
        ))?;

        // Re-tests come by themselves: wait (bounded; no event to await) until
        // `refused` has been re-tested more times than its history keeps.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            for e in m.history("refused").await? {
                seen.insert(e["id"].as_i64().unwrap_or_default());
            }
            if seen.len() > 3 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{backend}: only {} re-tests of `refused` in 60 s:\n{}",
                seen.len(),
                m.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let h = m.history("refused").await?;
        ensure!(
            h.len() == 3,
            "{backend}: --test-history 3 keeps three: {h:?}"
        );
        ensure!(
            h.iter().all(|e| e["trigger"] == "schedule"
                && e["status"] == "FAILURE"
                && e["report"]["errors"][0]["reason"] == "CONNECTION_REFUSED"),
            "{backend}: {h:?}"
        );
        // The hanging test is still running: nothing recorded for it yet, and
        // it holds one of the two slots.
        ensure!(m.history("hangs").await?.is_empty(), "{backend}");
        ensure!(
            m.connector("hangs").await?["status"]["status"] == "UNKNOWN",
            "{backend}"
        );
        let metrics = m.metrics().await?;
        ensure!(
            sample(&metrics, "tether_connection_tests_in_flight").unwrap_or_default() >= 1.0,
            "{metrics}"
        );
        ensure!(
            sample(
                &metrics,
                "tether_connection_test_duration_seconds_count{status=\"FAILURE\",trigger=\"schedule\"}"
            )
            .unwrap_or_default()
                > 3.0,
            "{metrics}"
        );
        ensure!(
            sample(
                &metrics,
                "tether_connector_connectivity{scope=\"project/default/web\",connector=\"refused\",status=\"FAILURE\"}"
            ) == Some(1.0),
            "{metrics}"
        );
        drop(silent);
    }
    Ok(())
}
