//! The web UI in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver), against the real `tether server`, a real
//! `tether delegate run` and the real Kubernetes control plane.
//!
//! Each test saves a screenshot of every page it visits in
//! `<target>/ui-screenshots/<test>/NN-<page>.png` and prints the folder.
//! Without Chromium the tests say so and pass, unless TETHER_TEST_REQUIRE_BROWSER
//! is set (scripts/test sets it): then a missing browser fails them.

mod common;

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::Api;
use serde_json::{json, Value};
use tether_testenv::{KubeEnv, TetherServer};

use common::{bin, cli, cli_ok};

/// One browser at a time: the machine has two cores, and Chromium is heavy.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn run(test: impl Future<Output = Result<()>>) -> Result<()> {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(test)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium and chromedriver, or `None` (the test is skipped) when they are
/// missing and not required.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let found = which("chromium")
        .or_else(|| which("chromium-browser"))
        .zip(which("chromedriver"));
    if found.is_none() {
        let required = std::env::var("TETHER_TEST_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty());
        assert!(
            !required,
            "TETHER_TEST_REQUIRE_BROWSER is set but chromium or chromedriver is not on PATH; install Debian's chromium and chromium-driver packages (scripts/install-deps does)"
        );
        eprintln!("SKIPPED: chromium or chromedriver is not installed (scripts/install-deps installs them); set TETHER_TEST_REQUIRE_BROWSER=1 to make this a failure");
    }
    found
}

/// `<target>/ui-screenshots/<test>`: the test binary is `<target>/debug/deps/<name>`.
fn screenshot_dir(test: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is not under <target>/<profile>/deps")?;
    let dir = target.join("ui-screenshots").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

const WIDTH: u32 = 1366;
const HEIGHT: u32 = 900;
/// How long a page may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium session; chromedriver is killed on drop.
struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
    count: usize,
    base: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// chromedriver leads its own process group, which Chromium's processes
    /// join: killing the group leaves nothing behind, even when a test failed
    /// before closing the session.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start(test: &str, base: &str) -> Result<Option<Browser>> {
        let Some((chromium, chromedriver)) = browser_binaries() else {
            return Ok(None);
        };
        let profile = tempfile::tempdir()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let mut driver = Command::new(&chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        // chromedriver says on stdout when it listens.
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("started successfully") => break,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = driver.kill();
                    bail!("chromedriver exited before listening");
                }
            }
        }
        // Drain the rest so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--disable-crash-reporter", "--disable-breakpad",
                    "--force-device-scale-factor=1", "--lang=en-US",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("opening a Chromium session through chromedriver")?;
        client.set_window_size(WIDTH, HEIGHT).await?;
        let shots = screenshot_dir(test)?;
        // Straight to stdout, past the test harness's capture, so the folder
        // is in the test output whether the test passes or fails.
        let _ = writeln!(
            std::io::stdout().lock(),
            "screenshots of {test}: {}",
            shots.display()
        );
        Ok(Some(Browser {
            client,
            driver,
            shots,
            count: 0,
            base: base.trim_end_matches('/').to_string(),
            _profile: profile,
        }))
    }

    async fn goto(&self, path: &str) -> Result<()> {
        self.client.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }

    async fn path(&self) -> Result<String> {
        Ok(self.client.current_url().await?.path().to_string())
    }

    /// Saves the whole page: the window grows to the page's height for it.
    async fn shot(&mut self, label: &str) -> Result<()> {
        self.count += 1;
        let dims = self
            .js("window.scrollTo(0, 0); return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight, window.innerHeight];")
            .await?;
        let (page, chrome, inner) = (
            dims[0].as_u64().unwrap_or(0) as u32,
            dims[1].as_u64().unwrap_or(0) as u32,
            dims[2].as_u64().unwrap_or(0) as u32,
        );
        let grow = page > inner;
        if grow {
            self.client
                .set_window_size(WIDTH, page.min(5000) + chrome)
                .await?;
        }
        // Let the browser lay out and paint the new size before capturing.
        self.client
            .execute_async(
                "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await?;
        let png = self.client.screenshot().await?;
        if grow {
            self.client.set_window_size(WIDTH, HEIGHT).await?;
        }
        let file = self.shots.join(format!("{:02}-{label}.png", self.count));
        std::fs::write(&file, png)?;
        Ok(())
    }

    async fn js(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    async fn js_args(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    async fn click(&self, css: &str) -> Result<()> {
        self.wait_for(css).await?.click().await?;
        Ok(())
    }

    async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let e = self.wait_for(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    /// Sets a (long) value at once and fires `input`, as pasting does.
    async fn paste(&self, css: &str, text: &str) -> Result<()> {
        self.wait_for(css).await?;
        self.js_args(
            "const e = document.querySelector(arguments[0]); e.focus(); e.value = arguments[1]; e.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![json!(css), json!(text)],
        )
        .await?;
        Ok(())
    }

    async fn select(&self, css: &str, value: &str) -> Result<()> {
        self.wait_for(css).await?.select_by_value(value).await?;
        Ok(())
    }

    async fn wait_for(&self, css: &str) -> Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element '{css}' on {}", self.base))
    }

    /// Waits until `check` (a JS expression over `document`) is true.
    /// WebDriver has no event for "the page now shows X": poll the DOM every
    /// 100 ms, up to `limit`.
    async fn until(&mut self, what: &str, check: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let script = format!("return !!({check});");
        loop {
            if self.js(&script).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.shot("timeout").await;
                let text = self
                    .js("return document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText;")
                    .await
                    .unwrap_or_default();
                bail!(
                    "waited {limit:?} for {what} on {}; the page says:\n{}",
                    self.path().await.unwrap_or_default(),
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Form controls without a label (`<label for>`, a wrapping label or
    /// `aria-label`) on the current page: must be none.
    async fn check_labels(&self) -> Result<()> {
        let missing = self
            .js("return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')].filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.outerHTML);")
            .await?;
        ensure!(
            missing == json!([]),
            "controls without a label on {}: {missing}",
            self.path().await?
        );
        Ok(())
    }

    async fn text(&self, css: &str) -> Result<String> {
        Ok(self.wait_for(css).await?.text().await?)
    }

    async fn value(&self, css: &str) -> Result<String> {
        Ok(self
            .js_args(
                "return document.querySelector(arguments[0]).value;",
                vec![json!(css)],
            )
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    async fn source(&self) -> Result<String> {
        Ok(self.client.source().await?)
    }

    /// Signs in on the login page with `token`.
    async fn login(&mut self, token: &str) -> Result<()> {
        self.goto("/").await?;
        self.wait_for("#login-token").await?;
        ensure!(
            self.path().await? == "/login",
            "/ should send a signed-out browser to /login"
        );
        self.shot("login").await?;
        self.fill("#login-token", token).await?;
        self.click("#login-submit").await?;
        self.until(
            "the connectors page",
            "document.body.dataset.page === 'connectors'",
            WAIT,
        )
        .await
    }

    async fn close(self) -> Result<()> {
        let Browser { client, .. } = &self;
        client.clone().close().await?;
        Ok(())
    }
}

/// A quoted JS string.
fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A `tether delegate run` process, killed on drop.
struct Delegate(Child, PathBuf);

impl Drop for Delegate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Delegate {
    fn start(
        server: &TetherServer,
        dir: &Path,
        name: &str,
        tags: &str,
        token: &str,
    ) -> Result<Delegate> {
        let token_file = dir.join(format!("{name}.token"));
        std::fs::write(&token_file, token)?;
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin())
            .args(["delegate", "run"])
            .env("TETHER_MANAGER_URL", &server.url)
            .env("TETHER_DELEGATE_NAME", name)
            .env("TETHER_DELEGATE_TAGS", tags)
            .env("TETHER_DELEGATE_TOKEN_FILE", &token_file)
            .env_remove("TETHER_DELEGATE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()
            .context("start a delegate")?;
        Ok(Delegate(child, log))
    }
}

/// A service account bound to cluster-admin, and its token from the Secret the
/// token controller creates (Kubernetes 1.20 still does).
async fn cluster_admin_token(env: &KubeEnv) -> Result<String> {
    let admin = env.admin_client().await;
    let ns = env.namespace("ui").await;
    let name = "tether-ui-test";
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(format!("{ns}-cluster-admin")),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "cluster-admin".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.into(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await?;
    let has_secret = |sa: Option<&ServiceAccount>| {
        sa.and_then(|sa| sa.secrets.as_ref())
            .is_some_and(|s| !s.is_empty())
    };
    let sa = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(sas.clone(), name, has_secret),
    )
    .await??
    .context("service account exists")?;
    let secret_name = sa.secrets.unwrap()[0].name.clone().context("secret name")?;
    let secret = Api::<Secret>::namespaced(admin, &ns)
        .get(&secret_name)
        .await?;
    let token = secret.data.context("secret data")?["token"].0.clone();
    Ok(String::from_utf8(token)?)
}

/// The token in the `Secret` of an install manifest.
fn token_from_manifest(yaml: &str) -> Result<String> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if v["kind"] == "Secret" {
            return v["stringData"]["token"]
                .as_str()
                .map(str::to_string)
                .context("the manifest's Secret has no stringData.token");
        }
    }
    Err(anyhow!("the manifest has no Secret:\n{yaml}"))
}

/// GET on the API as admin.
async fn api_get(server: &TetherServer, path: &str) -> Result<Value> {
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1{path}", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .await?;
    ensure!(res.status().is_success(), "GET {path}: {}", res.status());
    Ok(res.json().await?)
}

/// Creates a secret through an in-place "Create a new secret" form of a picker.
async fn create_secret_in_place(
    b: &mut Browser,
    picker: &str,
    name: &str,
    value: &str,
) -> Result<()> {
    b.click(&format!("[aria-controls='{picker}-new']")).await?;
    b.fill(&format!("#{picker}-new-name"), name).await?;
    b.paste(&format!("#{picker}-new-value"), value).await?;
    b.click(&format!("#{picker}-new .ns-create")).await?;
    let id = tether_domain::derive_identifier(name, "secret", |_| false);
    b.until(
        &format!("the picker {picker} to select the new secret {id}"),
        &format!(
            "document.querySelector('#{picker}').value === {}",
            js_str(&id)
        ),
        WAIT,
    )
    .await
}

#[test]
fn the_wizard_creates_a_secret_and_a_connector_whose_test_succeeds() -> Result<()> {
    run(async {
        let env = KubeEnv::get();
        let sa_token = cluster_admin_token(env).await?;
        let server = TetherServer::start(bin(), &[])?;
        let Some(mut b) = Browser::start("wizard_success", &server.url).await? else {
            return Ok(());
        };
        let work = tempfile::tempdir()?;
        cli_ok(
            &server,
            &["org", "create", "Payments", "--identifier", "payments"],
            None,
        );
        cli_ok(
            &server,
            &[
                "project",
                "create",
                "Web shop",
                "--org",
                "payments",
                "--identifier",
                "web",
            ],
            None,
        );

        b.login(&server.admin_token).await?;
        b.shot("connectors-account").await?;
        // The org/project switcher: the org list comes from the API.
        b.until(
            "the org switcher to list 'payments'",
            "[...document.querySelectorAll('#scope-org option')].some(o => o.value === 'payments')",
            WAIT,
        )
        .await?;
        b.select("#scope-org", "payments").await?;
        b.until(
            "the org's page",
            "location.pathname === '/orgs/payments/connectors'",
            WAIT,
        )
        .await?;
        b.until(
            "the project switcher to list 'web'",
            "[...document.querySelectorAll('#scope-project option')].some(o => o.value === 'web')",
            WAIT,
        )
        .await?;
        b.select("#scope-project", "web").await?;
        b.until(
            "the project's page",
            "location.pathname === '/orgs/payments/projects/web/connectors' && !document.querySelector('#connectors-body').innerText.includes('Loading')",
            WAIT,
        )
        .await?;
        b.shot("connectors-empty").await?;

        // 1. Overview: the Id follows the name as it is typed.
        b.click("#new-connector").await?;
        b.wait_for("#c-name").await?;
        b.fill("#c-name", "Prod cluster EU").await?;
        b.until(
            "the derived id",
            "document.querySelector('#c-identifier').value === 'Prod_cluster_EU'",
            WAIT,
        )
        .await?;
        b.check_labels().await?;
        b.fill("#c-description", "The EU production cluster")
            .await?;
        b.fill("#c-tags", "team:payments, prod").await?;
        b.shot("wizard-overview").await?;
        b.click("#step-1 button[type=submit]").await?;

        // 2. Details: master URL, service account token and CA, both created in place.
        b.wait_for("#c-master-url").await?;
        b.until("step 2", "!document.querySelector('#step-2').hidden", WAIT)
            .await?;
        b.fill("#c-master-url", &env.url).await?;
        create_secret_in_place(&mut b, "sa-token", "prod sa token", &sa_token).await?;
        create_secret_in_place(&mut b, "sa-ca", "cluster ca", &env.ca_pem).await?;
        b.check_labels().await?;
        b.shot("wizard-details").await?;
        ensure!(
            !b.source().await?.contains(&sa_token),
            "the token's value is still in the page after the secret was created"
        );
        b.click("#step-2 button[type=submit]").await?;

        // 3. Delegates: only those tagged 'eu'; none is connected yet.
        b.until("step 3", "!document.querySelector('#step-3').hidden", WAIT)
            .await?;
        b.click("input[name=delegates][value=tags]").await?;
        b.fill("#c-selector-input", "eu").await?;
        b.click("#c-selector-add").await?;
        b.until(
            "the 'no delegate' warning",
            "document.querySelector('#no-matching-delegate')",
            WAIT,
        )
        .await?;
        // Install new delegate: the manifest, then a live wait for it to connect.
        b.click("#wz-open").await?;
        b.fill("#wz-name", "eu-1").await?;
        ensure!(
            b.value("#wz-tags").await? == "eu",
            "the install form takes the selector tags"
        );
        b.click("#wz-panel .in-generate").await?;
        b.until(
            "the manifest",
            "document.querySelector('#wz-panel .in-yaml').textContent.includes('kind: Deployment')",
            WAIT,
        )
        .await?;
        b.until(
            "the wait for the delegate",
            "document.querySelector('#wz-panel .in-status').textContent.includes('Waiting for delegate')",
            WAIT,
        )
        .await?;
        b.shot("wizard-install-delegate").await?;
        let yaml = b.text("#wz-panel .in-yaml").await?;
        ensure!(
            yaml.contains("TETHER_DELEGATE_TAGS") && yaml.contains("value: eu"),
            "{yaml}"
        );
        let delegate_token = token_from_manifest(&yaml)?;
        let delegate = Delegate::start(&server, work.path(), "eu-1", "eu", &delegate_token)?;
        b.until(
            "the delegate to connect",
            "document.querySelector('#wz-panel .in-status').textContent.includes('connected from')",
            Duration::from_secs(60),
        )
        .await
        .with_context(|| std::fs::read_to_string(&delegate.1).unwrap_or_default())?;
        b.until(
            "the delegate among the matching ones",
            "document.querySelector('#matching-delegates') && document.querySelector('#matching-delegates').innerText.includes('eu-1')",
            WAIT,
        )
        .await?;
        b.shot("wizard-delegates").await?;

        // Save and Continue: the connection test runs and succeeds.
        b.click("#save-continue").await?;
        b.until("step 4", "!document.querySelector('#step-4').hidden", WAIT)
            .await?;
        b.until(
            "the test result",
            "document.querySelector('#test-report .report-head .badge') && !document.querySelector('#test-report .badge-pending')",
            Duration::from_secs(120),
        )
        .await?;
        b.shot("wizard-test").await?;
        let status = b.text("#test-report .report-head .badge").await?;
        ensure!(
            status == "SUCCESS",
            "the connection test says {status}: {}",
            b.text("#test-report").await?
        );
        let passed = b
            .js("return document.querySelectorAll('#report-stages [data-status=passed]').length;")
            .await?;
        ensure!(passed == json!(6), "every stage passes, got {passed}");
        let verbs = b
            .js("return [document.querySelectorAll('#report-permissions .allowed-yes').length, document.querySelectorAll('#report-permissions .allowed-no').length];")
            .await?;
        ensure!(
            verbs[0].as_u64() > Some(10) && verbs[1] == json!(0),
            "permissions allowed/denied: {verbs}"
        );

        // Finish: the connector's page.
        b.click("#finish").await?;
        b.until(
            "the connector page",
            "document.body.dataset.page === 'connector' && document.querySelector('#d-status').textContent === 'SUCCESS'",
            WAIT,
        )
        .await?;
        ensure!(b.path().await? == "/orgs/payments/projects/web/connectors/Prod_cluster_EU");
        b.check_labels().await?;
        b.shot("connector-overview").await?;
        b.click("#tab-history").await?;
        b.until(
            "the history",
            "!document.querySelector('#d-history-body').innerText.includes('Loading')",
            WAIT,
        )
        .await?;
        b.shot("connector-history").await?;
        b.click("#tab-yaml").await?;
        b.until(
            "the YAML",
            "document.querySelector('#d-yaml').value.includes('serviceAccountTokenRef: prod_sa_token')",
            WAIT,
        )
        .await?;
        b.shot("connector-yaml").await?;

        // Edit: the wizard opens filled in; saving re-runs the test.
        b.click("#d-edit").await?;
        b.until(
            "the wizard filled in",
            "document.querySelector('#c-name').value === 'Prod cluster EU' && document.querySelector('#sa-token').value === 'prod_sa_token'",
            WAIT,
        )
        .await?;
        ensure!(
            b.js("return document.querySelector('#c-identifier').readOnly;")
                .await?
                == json!(true),
            "the id of a saved connector cannot change"
        );
        b.fill("#c-description", "EU production, edited in the UI")
            .await?;
        b.shot("wizard-edit").await?;
        b.click("#step-1 button[type=submit]").await?;
        b.until("step 2", "!document.querySelector('#step-2').hidden", WAIT)
            .await?;
        b.click("#step-2 button[type=submit]").await?;
        b.until(
            "step 3 with the stored selector",
            "!document.querySelector('#step-3').hidden && document.querySelector('#c-selectors').innerText.includes('eu')",
            WAIT,
        )
        .await?;
        b.click("#save-continue").await?;
        b.until(
            "the test result after the edit",
            "!document.querySelector('#step-4').hidden && document.querySelector('#test-report .report-head .badge') && !document.querySelector('#test-report .badge-pending')",
            Duration::from_secs(120),
        )
        .await?;
        ensure!(b.text("#test-report .report-head .badge").await? == "SUCCESS");

        // What the API now holds.
        let c = api_get(
            &server,
            "/orgs/payments/projects/web/connectors/Prod_cluster_EU",
        )
        .await?;
        ensure!(
            c["connector"]["description"] == "EU production, edited in the UI",
            "{c}"
        );
        let spec = &c["connector"]["spec"];
        ensure!(spec["delegateSelectors"] == json!(["eu"]), "{c}");
        ensure!(
            spec["credential"]["spec"]["auth"]["spec"]
                == json!({"serviceAccountTokenRef": "prod_sa_token", "caCertRef": "cluster_ca"}),
            "{c}"
        );
        ensure!(
            c["connector"]["tags"] == json!({"team": "payments", "prod": ""}),
            "{c}"
        );
        ensure!(c["status"]["status"] == "SUCCESS", "{c}");

        // The list, the delegates and the secrets pages.
        b.goto("/orgs/payments/projects/web/connectors").await?;
        b.until(
            "the connector in the list",
            "document.querySelector('#connectors-body tr[data-id=Prod_cluster_EU]')",
            WAIT,
        )
        .await?;
        let row = b
            .text("#connectors-body tr[data-id=Prod_cluster_EU]")
            .await?;
        ensure!(
            row.contains("SUCCESS") && row.contains("Service account token"),
            "{row}"
        );
        b.shot("connectors-list").await?;
        b.goto("/orgs/payments/projects/web/delegates").await?;
        b.until(
            "the delegate in the table",
            "document.querySelector('#delegates-body tr[data-name=\"eu-1\"]')",
            WAIT,
        )
        .await?;
        ensure!(b
            .text("#delegates-body tr[data-name=\"eu-1\"]")
            .await?
            .contains("CONNECTED"));
        b.check_labels().await?;
        b.shot("delegates").await?;
        b.goto("/orgs/payments/projects/web/secrets").await?;
        b.until(
            "the secrets",
            "document.querySelector('#secrets-body tr[data-id=prod_sa_token]') && document.querySelector('#secrets-body tr[data-id=cluster_ca]')",
            WAIT,
        )
        .await?;
        let page = b.source().await?;
        ensure!(
            !page.contains(&sa_token) && !page.contains(env.ca_pem.lines().nth(1).unwrap_or("-")),
            "a secret value is on the secrets page"
        );
        b.check_labels().await?;
        b.shot("secrets").await?;
        drop(delegate);
        b.close().await
    })
}

/// A manager with one untagged delegate of the account, connected.
async fn manager_with_delegate(dir: &Path) -> Result<(TetherServer, Delegate)> {
    let server = TetherServer::start(bin(), &[])?;
    let out = cli(
        &server,
        &server.admin_token,
        &["delegate", "token", "create", "--name", "ui-test"],
        None,
    );
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let d = Delegate::start(&server, dir, "any-1", "", &token)?;
    // The API has no event for "connected": ask it every 200 ms, 30 s at most.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = api_get(&server, "/delegates").await?;
        if list
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["connected"] == json!(true)))
        {
            return Ok((server, d));
        }
        ensure!(
            Instant::now() < deadline,
            "the delegate did not connect in 30 s:\n{}",
            std::fs::read_to_string(&d.1).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_wrong_token_shows_the_401_diagnosis_next_to_the_test() -> Result<()> {
    run(async {
        let env = KubeEnv::get();
        let work = tempfile::tempdir()?;
        let (server, _delegate) = manager_with_delegate(work.path()).await?;
        let Some(mut b) = Browser::start("wrong_token", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;

        // The CA through the Secrets page, then picked in the wizard.
        b.goto("/secrets").await?;
        b.fill("#s-name", "cluster ca").await?;
        ensure!(b.value("#s-identifier").await? == "cluster_ca");
        b.paste("#s-value", &env.ca_pem).await?;
        b.click("#secret-form button[type=submit]").await?;
        b.until(
            "the new secret in the list",
            "document.querySelector('#secrets-body tr[data-id=cluster_ca]')",
            WAIT,
        )
        .await?;
        ensure!(
            b.value("#s-value").await?.is_empty(),
            "the value field is emptied"
        );
        b.shot("secrets").await?;

        b.goto("/connectors/new").await?;
        b.fill("#c-name", "staging").await?;
        b.click("#step-1 button[type=submit]").await?;
        b.until("step 2", "!document.querySelector('#step-2').hidden", WAIT)
            .await?;
        b.fill("#c-master-url", &env.url).await?;
        create_secret_in_place(&mut b, "sa-token", "stale token", "not-a-real-token").await?;
        b.until(
            "the CA secret in the picker",
            "[...document.querySelectorAll('#sa-ca option')].some(o => o.value === 'cluster_ca')",
            WAIT,
        )
        .await?;
        b.select("#sa-ca", "cluster_ca").await?;
        b.click("#step-2 button[type=submit]").await?;
        b.until("step 3", "!document.querySelector('#step-3').hidden", WAIT)
            .await?;
        b.until(
            "the connected delegate",
            "document.querySelector('#matching-delegates')",
            WAIT,
        )
        .await?;
        b.click("#save-continue").await?;
        b.until(
            "the test result",
            "document.querySelector('#test-report .report-head .badge') && !document.querySelector('#test-report .badge-pending')",
            Duration::from_secs(120),
        )
        .await?;
        b.shot("wizard-test-401").await?;
        let report = b.text("#test-report").await?;
        ensure!(
            b.text("#test-report .report-head .badge").await? == "FAILURE",
            "{report}"
        );
        let auth = b
            .js("return document.querySelector('#report-stages [data-stage=authentication]').dataset.status;")
            .await?;
        ensure!(
            auth == json!("failed"),
            "authentication stage: {auth}\n{report}"
        );
        let diagnosis = b.text("#report-diagnosis").await?;
        ensure!(diagnosis.contains("401"), "{diagnosis}");
        let hints = b.text("#report-hints").await?;
        ensure!(hints.contains("serviceAccountTokenRef"), "{hints}");
        // One test per save: the one the manager runs after the create.
        let history = api_get(&server, "/connectors/staging/test-history").await?;
        let triggers: Vec<&str> = history["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|h| h["trigger"].as_str()).collect())
            .unwrap_or_default();
        ensure!(
            triggers == ["change"],
            "the save ran these tests: {triggers:?}"
        );

        // The same diagnosis on the connector's page, by its Test connection button.
        b.click("#finish").await?;
        b.until(
            "the connector page",
            "document.querySelector('#d-status').textContent === 'FAILURE'",
            WAIT,
        )
        .await?;
        b.click("#d-test").await?;
        b.until(
            "the new test result",
            "document.querySelector('#d-report .report-head .badge') && !document.querySelector('#d-report .badge-pending')",
            Duration::from_secs(120),
        )
        .await?;
        ensure!(b.text("#d-report #report-diagnosis").await?.contains("401"));
        b.shot("connector-test-401").await?;

        // YAML edit: the API's error shows next to the document.
        b.click("#tab-yaml").await?;
        b.until(
            "the YAML",
            "document.querySelector('#d-yaml').value.includes('masterUrl:')",
            WAIT,
        )
        .await?;
        b.js("const t = document.querySelector('#d-yaml'); t.value = t.value.replace(/masterUrl: .*/, 'masterUrl: ftp://cluster.example.com');")
            .await?;
        b.click("#d-yaml-save").await?;
        b.until(
            "the YAML's error",
            "!document.querySelector('#d-yaml-error').hidden",
            WAIT,
        )
        .await?;
        let err = b.text("#d-yaml-error").await?;
        ensure!(err.contains("scheme 'ftp'"), "{err}");
        b.shot("connector-yaml-error").await?;

        // The list's status filter and search.
        b.goto("/connectors?status=FAILURE").await?;
        b.until(
            "the failing connector",
            "document.querySelector('#connectors-body tr[data-id=staging]')",
            WAIT,
        )
        .await?;
        b.select("#f-status", "SUCCESS").await?;
        b.until(
            "no match",
            "document.querySelector('#connectors-body').innerText.includes('No connector matches')",
            WAIT,
        )
        .await?;
        b.select("#f-status", "").await?;
        b.fill("#f-search", "stag").await?;
        b.until(
            "the search result",
            "document.querySelector('#connectors-body tr[data-id=staging]') && location.search === '?search=stag'",
            WAIT,
        )
        .await?;
        b.shot("connectors-search").await?;

        // The referenced secret cannot be deleted: the 409 explains why.
        b.goto("/secrets").await?;
        b.click("#secrets-body tr[data-id=stale_token] button.danger")
            .await?;
        b.click("#s-delete-confirm").await?;
        b.until(
            "the 409 explanation",
            "!document.querySelector('#s-delete-error').hidden",
            WAIT,
        )
        .await?;
        let why = b.text("#s-delete-error").await?;
        ensure!(why.contains("staging"), "{why}");
        b.shot("secret-delete-409").await?;

        // Deleting the connector goes back to the list.
        b.goto("/connectors/staging").await?;
        b.click("#d-delete").await?;
        b.click("#d-delete-confirm").await?;
        b.until("the list", "location.pathname === '/connectors'", WAIT)
            .await?;
        b.close().await
    })
}

#[test]
fn an_invalid_name_and_api_errors_show_next_to_their_fields() -> Result<()> {
    run(async {
        let server = TetherServer::start(bin(), &[])?;
        let Some(mut b) = Browser::start("field_errors", &server.url).await? else {
            return Ok(());
        };
        // A wrong token is refused next to the token field.
        b.goto("/login").await?;
        b.fill("#login-token", "tth_not-a-token").await?;
        b.click("#login-submit").await?;
        b.until(
            "the login error",
            "!document.querySelector('#login-token-error').hidden",
            WAIT,
        )
        .await?;
        ensure!(b
            .text("#login-token-error")
            .await?
            .contains("unknown or revoked"));
        b.shot("login-error").await?;
        b.login(&server.admin_token).await?;

        // The name is validated as it is typed.
        b.goto("/connectors/new").await?;
        b.fill("#c-name", "prod*cluster").await?;
        b.until(
            "the name's error",
            "!document.querySelector('#c-name-error').hidden",
            WAIT,
        )
        .await?;
        let err = b.text("#c-name-error").await?;
        ensure!(err.contains("name contains '*'"), "{err}");
        ensure!(
            b.js("return document.querySelector('#c-name').getAttribute('aria-invalid');")
                .await?
                == json!("true")
        );
        b.click("#step-1 button[type=submit]").await?;
        ensure!(
            b.js("return document.querySelector('#step-2').hidden;")
                .await?
                == json!(true),
            "Continue must not pass an invalid name"
        );
        b.shot("wizard-invalid-name").await?;
        // A reserved id typed by hand.
        b.fill("#c-name", "prod cluster").await?;
        b.fill("#c-identifier", "null").await?;
        b.until(
            "the id's error",
            "!document.querySelector('#c-identifier-error').hidden",
            WAIT,
        )
        .await?;
        ensure!(b
            .text("#c-identifier-error")
            .await?
            .contains("reserved word"));
        b.shot("wizard-reserved-id").await?;
        b.fill("#c-identifier", "prod_cluster").await?;
        b.until(
            "no id error",
            "document.querySelector('#c-identifier-error').hidden",
            WAIT,
        )
        .await?;
        // The keyboard alone goes on: Enter in a field submits the step.
        b.wait_for("#c-identifier")
            .await?
            .send_keys(&fantoccini::key::Key::Enter.to_string())
            .await?;

        // The API refuses the master URL: the wizard goes back to its field.
        b.until("step 2", "!document.querySelector('#step-2').hidden", WAIT)
            .await?;
        b.fill("#c-master-url", "ftp://cluster.example.com").await?;
        create_secret_in_place(&mut b, "sa-token", "some token", "abc").await?;
        b.click("#step-2 button[type=submit]").await?;
        b.until("step 3", "!document.querySelector('#step-3').hidden", WAIT)
            .await?;
        b.click("#save-continue").await?;
        b.until(
            "the master URL's error from the API",
            "!document.querySelector('#step-2').hidden && !document.querySelector('#c-master-url-error').hidden",
            WAIT,
        )
        .await?;
        let err = b.text("#c-master-url-error").await?;
        ensure!(err.contains("scheme 'ftp'"), "{err}");
        b.shot("wizard-api-field-error").await?;

        // Issue 10 item 12: credentials, a query or plain http in the URL
        // are refused at save with the reason; the password is never shown.
        for (url, reason) in [
            (
                "https://admin:s3cr3t-in-url@10.0.0.1:6443",
                "carries credentials",
            ),
            ("https://10.0.0.1:6443?insecure=true", "has a query"),
            ("http://10.0.0.1:6443", "unencrypted"),
        ] {
            b.fill("#c-master-url", url).await?;
            // The step's own submit, as Continue or Enter sends it.
            b.js("document.querySelector('#step-2').requestSubmit();")
                .await?;
            let shown = format!(
                "!document.querySelector('#c-master-url-error').hidden && document.querySelector('#c-master-url-error').textContent.includes({})",
                js_str(reason)
            );
            b.until(
                "step 3 or the URL's error",
                &format!("!document.querySelector('#step-3').hidden || ({shown})"),
                WAIT,
            )
            .await?;
            if b.js("return !document.querySelector('#step-3').hidden;")
                .await?
                .as_bool()
                == Some(true)
            {
                b.click("#save-continue").await?;
            }
            b.until(&format!("the error for {url}"), &shown, WAIT)
                .await?;
            let err = b.text("#c-master-url-error").await?;
            ensure!(
                !err.contains("s3cr3t-in-url"),
                "the password is shown: {err}"
            );
        }
        b.shot("wizard-url-credentials-error").await?;

        // The JavaScript port of the identifier and name rules agrees with Rust.
        let names = [
            "  My  prod cluster ",
            "k8s-prod.eu/west",
            "cost$ center",
            "1st cluster",
            "---",
            "$$$",
            "null",
            "Account",
            "stepGroup",
            "  ",
            "日本",
            "9",
            "a\tb",
            "x y\u{a0}z",
            "naïve café",
            "Ünïcödé 1",
            "tab\tin",
            "\u{feff}bom",
            "end\u{85}",
            &"x".repeat(300),
        ];
        for name in names {
            let js = b
                .js_args(
                    "return [Tether.deriveIdentifier(arguments[0], 'connector'), Tether.validateName(arguments[0])];",
                    vec![json!(name)],
                )
                .await?;
            let rust_id = tether_domain::derive_identifier(name, "connector", |_| false);
            ensure!(
                js[0] == json!(rust_id),
                "derive {name:?}: JS {} Rust {rust_id}",
                js[0]
            );
            let rust_name = tether_domain::validate_name(name).err();
            ensure!(
                js[1] == json!(rust_name),
                "validate_name {name:?}: JS {} Rust {rust_name:?}",
                js[1]
            );
        }
        for id in [
            "ok",
            "_x$",
            "9a",
            "a-b",
            "null",
            "NULL",
            "",
            &"a".repeat(129),
        ] {
            let js = b
                .js_args(
                    "return Tether.validateIdentifier(arguments[0]);",
                    vec![json!(id)],
                )
                .await?;
            let rust = tether_domain::validate_identifier(id).err();
            ensure!(
                js == json!(rust),
                "validate_identifier {id:?}: JS {js} Rust {rust:?}"
            );
        }

        // Signing out ends the session.
        b.click("#logout").await?;
        b.until("the login page", "location.pathname === '/login'", WAIT)
            .await?;
        b.goto("/connectors").await?;
        b.until(
            "the login page again",
            "location.pathname === '/login'",
            WAIT,
        )
        .await?;
        b.close().await
    })
}

/// A call on the API as admin: the status and the JSON body.
async fn api_send(
    server: &TetherServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(reqwest::StatusCode, Value)> {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", server.url))
        .bearer_auth(&server.admin_token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status();
    let text = res.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Creates a secret of the account through the API.
async fn api_secret(server: &TetherServer, id: &str, value: &str) -> Result<()> {
    let (s, v) = api_send(
        server,
        reqwest::Method::POST,
        "/secrets",
        Some(json!({"name": id, "identifier": id, "value": value})),
    )
    .await?;
    ensure!(s.is_success(), "secret {id}: {s} {v}");
    Ok(())
}

/// A ServiceAccount connector of the account through the API.
async fn api_connector(
    server: &TetherServer,
    name: &str,
    id: &str,
    url: &str,
    auth: Value,
) -> Result<()> {
    let (s, v) = api_send(
        server,
        reqwest::Method::POST,
        "/connectors",
        Some(json!({"connector": {
            "name": name, "identifier": id, "type": "K8sCluster",
            "spec": {"credential": {"type": "ManualConfig", "spec": {
                "masterUrl": url, "auth": {"type": "ServiceAccount", "spec": auth}}}}
        }})),
    )
    .await?;
    ensure!(s.is_success(), "connector {id}: {s} {v}");
    Ok(())
}

/// Waits for the background test that follows a create: the API has no event
/// for it, so ask every 200 ms, a minute at most.
async fn settled_status(server: &TetherServer, id: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = api_get(server, &format!("/connectors/{id}")).await?;
        if c["status"]["status"] != "PENDING" {
            return Ok(c["status"].clone());
        }
        ensure!(Instant::now() < deadline, "{id} still PENDING after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_partial_report_shows_its_fix_as_a_block_and_hints_for_people() -> Result<()> {
    run(async {
        let env = KubeEnv::get();
        let work = tempfile::tempdir()?;
        let (server, _delegate) = manager_with_delegate(work.path()).await?;
        let delegates = api_get(&server, "/delegates").await?;
        let delegate_id = delegates[0]["id"]
            .as_str()
            .context("delegate id")?
            .to_string();
        // An account that may read but not change anything: PARTIAL.
        let admin = env.admin_client().await;
        let ns = env.namespace("uipartial").await;
        let token = tether_testenv::service_account_token(&admin, &ns, "reader").await?;
        tether_testenv::bind_cluster_role(&admin, &ns, "reader", "view").await?;
        api_secret(&server, "reader_token", &token).await?;
        api_secret(&server, "cluster_ca", &env.ca_pem).await?;
        api_connector(
            &server,
            "read only",
            "read_only",
            &env.url,
            json!({"serviceAccountTokenRef": "reader_token", "caCertRef": "cluster_ca"}),
        )
        .await?;
        let status = settled_status(&server, "read_only").await?;
        ensure!(status["status"] == "PARTIAL", "{status}");

        let Some(mut b) = Browser::start("partial_report", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.goto("/connectors/read_only").await?;
        b.until(
            "the overview",
            "document.querySelector('#d-status').textContent === 'PARTIAL'",
            WAIT,
        )
        .await?;
        // The stored report is on the Connection test tab without a new test.
        b.click("#tab-test").await?;
        b.until(
            "the latest stored report",
            "document.querySelector('#d-report .report-head .badge')",
            WAIT,
        )
        .await?;
        b.shot("connector-test-tab-partial").await?;
        ensure!(b.text("#d-report .report-head .badge").await? == "PARTIAL");
        // The delegate by name, its id on hover.
        let head = b.text("#d-report .report-head").await?;
        ensure!(
            head.contains("any-1") && !head.contains(&delegate_id),
            "{head}"
        );
        let hover = b
            .js("return [...document.querySelectorAll('#d-report .report-head [title]')].map(e => e.title).join(' ');")
            .await?;
        ensure!(
            hover.as_str().unwrap_or_default().contains(&delegate_id),
            "{hover}"
        );
        // Hints: inline code as code, no API field names, the Role and
        // RoleBinding as a block of lines with a copy button.
        let hints = b.text("#d-report #report-hints").await?;
        ensure!(!hints.contains('`'), "literal backticks: {hints}");
        ensure!(
            !hints.contains("[object"),
            "an element shown as text: {hints}"
        );
        ensure!(
            hints.contains("Grant them with kubectl apply -f - and this Role"),
            "{hints}"
        );
        ensure!(!hints.contains("under missing"), "{hints}");
        let code = b
            .js("return document.querySelectorAll('#d-report #report-hints li code').length;")
            .await?;
        ensure!(code.as_u64() > Some(0), "no inline code in the hints");
        let block = b
            .js("const p = document.querySelector('#d-report #report-hints .code-block pre'); return p ? p.textContent : '';")
            .await?;
        let block = block.as_str().unwrap_or_default();
        ensure!(
            block.contains("kind: Role\n") && block.contains("kind: RoleBinding\n"),
            "the Role and RoleBinding are not a block of lines: {block:?}"
        );
        ensure!(
            b.js("return !!document.querySelector('#d-report #report-hints .code-block button');")
                .await?
                == json!(true),
            "no copy button next to the manifest"
        );
        b.click("#d-report #report-hints .code-block button")
            .await?;
        b.until(
            "the copy button's answer",
            "/Copied|Select and copy/.test(document.querySelector('#d-report #report-hints .code-block button').textContent)",
            WAIT,
        )
        .await?;
        // The history names the delegate too.
        b.click("#tab-history").await?;
        b.until(
            "the history",
            "!document.querySelector('#d-history-body').innerText.includes('Loading')",
            WAIT,
        )
        .await?;
        let row = b.text("#d-history-body tr").await?;
        ensure!(
            row.contains("any-1") && !row.contains(&delegate_id),
            "{row}"
        );
        b.shot("connector-history-delegate-name").await?;
        b.close().await
    })
}

#[test]
fn long_names_keep_status_and_actions_on_screen_and_a_deleted_connector_has_no_actions(
) -> Result<()> {
    run(async {
        let server = TetherServer::start(bin(), &[])?;
        let name = format!(
            "{}X",
            &"Production cluster of the payments team".repeat(4)[..127]
        );
        let id = "a".repeat(128);
        api_secret(&server, "tok", "not-a-token").await?;
        api_connector(
            &server,
            &name,
            &id,
            "https://127.0.0.1:1",
            json!({"serviceAccountTokenRef": "tok"}),
        )
        .await?;
        let long_word = "x".repeat(128);
        api_connector(
            &server,
            &long_word,
            "long_word",
            "https://127.0.0.1:1",
            json!({"serviceAccountTokenRef": "tok"}),
        )
        .await?;
        let Some(mut b) = Browser::start("long_names", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.until(
            "both connectors",
            "document.querySelectorAll('#connectors-body tr[data-id]').length === 2",
            WAIT,
        )
        .await?;
        b.shot("connectors-long-names").await?;
        let off = b
            .js("const w = document.querySelector('.table-wrap').getBoundingClientRect().right; return [...document.querySelectorAll('#connectors-body tr[data-id]')].filter(r => r.cells[3].getBoundingClientRect().right > w + 1).map(r => r.dataset.id);")
            .await?;
        ensure!(off == json!([]), "status cells off-screen: {off}");
        let titles = b
            .js("return [...document.querySelectorAll('#connectors-body td.name a')].map(a => a.title);")
            .await?;
        ensure!(
            titles
                .as_array()
                .is_some_and(|t| t.contains(&json!(name)) && t.contains(&json!(long_word))),
            "full names on hover: {titles}"
        );
        for (cid, full) in [
            (id.as_str(), name.as_str()),
            ("long_word", long_word.as_str()),
        ] {
            b.goto(&format!("/connectors/{cid}")).await?;
            b.until(
                "the connector's name",
                &format!(
                    "document.querySelector('#d-name').textContent === {}",
                    js_str(full)
                ),
                WAIT,
            )
            .await?;
            b.shot("connector-long-name").await?;
            let off = b
                .js("return ['#d-status', '#d-test', '#d-edit', '#d-delete'].filter(s => { const r = document.querySelector(s).getBoundingClientRect(); return r.right > window.innerWidth || r.width === 0; });")
                .await?;
            ensure!(off == json!([]), "{cid}: off-screen: {off}");
            ensure!(
                b.js("return document.documentElement.scrollWidth <= window.innerWidth;")
                    .await?
                    == json!(true),
                "{cid}: the page scrolls sideways"
            );
            ensure!(
                b.js("return document.querySelector('#d-name').title;")
                    .await?
                    == json!(full),
                "{cid}: the full name on hover"
            );
        }

        // A connector that is gone: no Test, Edit or Delete.
        let (s, _) = api_send(
            &server,
            reqwest::Method::DELETE,
            "/connectors/long_word",
            None,
        )
        .await?;
        ensure!(s.is_success(), "delete: {s}");
        for path in ["/connectors/long_word", "/connectors/long_word/edit"] {
            b.goto(path).await?;
            b.until(
                "the deleted connector's page",
                "document.querySelector('main') && document.querySelector('main').innerText.includes('long_word')",
                WAIT,
            )
            .await?;
            b.shot("connector-deleted").await?;
            let actions = b
                .js("return ['#d-test', '#d-edit', '#d-delete', '#save-continue'].filter(s => { const e = document.querySelector(s); return e && e.getClientRects().length > 0; });")
                .await?;
            ensure!(
                actions == json!([]),
                "{path}: a deleted connector offers {actions}"
            );
            let text = b.text("main").await?;
            ensure!(text.contains("deleted"), "{path}: {text}");
        }
        b.close().await
    })
}

#[test]
fn installing_a_delegate_checks_the_request_before_it_creates_a_token() -> Result<()> {
    run(async {
        let server = TetherServer::start(bin(), &[])?;
        let Some(mut b) = Browser::start("install_checks", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.goto("/delegates").await?;
        b.click("#dp-open").await?;
        b.wait_for("#dp-namespace").await?;
        let tokens = |v: Value| v.as_array().map(Vec::len).unwrap_or(usize::MAX);
        for (field, value, error) in [
            (
                "#dp-namespace",
                "Not_A_Namespace",
                "[data-field=namespace] .field-error",
            ),
            (
                "#dp-manager",
                "ftp://tether.example.com",
                "[data-field=managerUrl] .field-error",
            ),
        ] {
            b.fill(field, value).await?;
            b.click("#dp-panel .in-generate").await?;
            b.until(
                "the refusal",
                &format!("!document.querySelector('#dp-panel {error}').hidden"),
                WAIT,
            )
            .await?;
            b.shot("install-refused").await?;
            let list = api_get(&server, "/delegate-tokens").await?;
            ensure!(
                tokens(list.clone()) == 0,
                "a refused request ({field} = {value}) created a delegate token: {list}"
            );
            b.fill(
                field,
                if field == "#dp-namespace" {
                    "tether-delegate"
                } else {
                    "http://127.0.0.1:8080"
                },
            )
            .await?;
        }
        // A loopback address (the page's own, pre-filled): a pod cannot dial it.
        b.until(
            "the loopback warning",
            "(() => { const w = document.querySelector('#dp-panel .in-manager-warning'); return w && !w.hidden && w.textContent.includes('loopback'); })()",
            WAIT,
        )
        .await?;
        b.shot("install-loopback-warning").await?;
        b.fill("#dp-manager", "https://tether.example.com").await?;
        b.until(
            "no loopback warning for a real address",
            "document.querySelector('#dp-panel .in-manager-warning').hidden",
            WAIT,
        )
        .await?;
        b.click("#dp-panel .in-generate").await?;
        b.until(
            "the manifest",
            "document.querySelector('#dp-panel .in-yaml').textContent.includes('kind: Deployment')",
            WAIT,
        )
        .await?;
        ensure!(tokens(api_get(&server, "/delegate-tokens").await?) == 1);
        b.shot("install-manifest").await?;
        b.close().await
    })
}

#[test]
fn orgs_and_projects_are_created_in_the_ui_and_project_setup_leads_to_connectors() -> Result<()> {
    run(async {
        let server = TetherServer::start(bin(), &[])?;
        let Some(mut b) = Browser::start("project_setup", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.click("#nav-projects").await?;
        b.until("the orgs page", "location.pathname === '/orgs'", WAIT)
            .await?;
        b.fill("#org-name", "Payments").await?;
        ensure!(b.value("#org-identifier").await? == "Payments");
        b.check_labels().await?;
        b.click("#org-form button[type=submit]").await?;
        b.until(
            "the new org in the list",
            "document.querySelector('#orgs-body tr[data-id=Payments]')",
            WAIT,
        )
        .await?;
        b.shot("orgs").await?;
        b.click("#orgs-body tr[data-id=Payments] a").await?;
        b.until(
            "the org's projects",
            "location.pathname === '/orgs/Payments/projects'",
            WAIT,
        )
        .await?;
        b.fill("#project-name", "Web shop").await?;
        b.check_labels().await?;
        b.click("#project-form button[type=submit]").await?;
        b.until(
            "the new project in the list",
            "document.querySelector('#projects-body tr[data-id=Web_shop]')",
            WAIT,
        )
        .await?;
        b.shot("projects").await?;
        b.click("#projects-body tr[data-id=Web_shop] a.project-setup")
            .await?;
        b.until(
            "Project Setup",
            "location.pathname === '/orgs/Payments/projects/Web_shop/setup'",
            WAIT,
        )
        .await?;
        ensure!(b.text("h1").await?.contains("Project Setup"));
        b.shot("project-setup").await?;
        b.click("#setup-connectors").await?;
        b.until(
            "the project's connectors",
            "location.pathname === '/orgs/Payments/projects/Web_shop/connectors' && document.body.dataset.page === 'connectors'",
            WAIT,
        )
        .await?;
        let p = api_get(&server, "/orgs/Payments/projects/Web_shop").await?;
        ensure!(p["name"] == "Web shop", "{p}");
        b.close().await
    })
}

#[test]
fn the_connector_page_says_how_to_get_a_kubeconfig_and_shows_its_audit_log() -> Result<()> {
    run(async {
        let server = TetherServer::start(bin(), &["--retest-interval", "0"])?;
        api_secret(&server, "tok", "not-a-token").await?;
        api_connector(
            &server,
            "Kube prod",
            "kubeprod",
            "https://127.0.0.1:1",
            json!({"serviceAccountTokenRef": "tok"}),
        )
        .await?;
        let (s, created) = api_send(
            &server,
            reqwest::Method::POST,
            "/tokens",
            Some(json!({"name": "ci-job", "role": "viewer", "kubeAccess": true})),
        )
        .await?;
        ensure!(s.is_success(), "token: {s} {created}");
        let ci = created["value"].as_str().context("token value")?;
        // No delegate carries it: a 503, and an audit entry for it.
        let r = reqwest::Client::new()
            .get(format!(
                "{}/k8s/connectors/kubeprod/api/v1/namespaces/web/pods",
                server.url
            ))
            .bearer_auth(ci)
            .send()
            .await?;
        ensure!(r.status() == 503, "{}", r.status());
        // Entries are written as each request ends: ask until it is in (bounded).
        let deadline = Instant::now() + WAIT;
        while api_get(&server, "/audit?connector=kubeprod").await?["items"]
            .as_array()
            .is_none_or(|i| i.is_empty())
        {
            ensure!(Instant::now() < deadline, "no audit entry");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let Some(mut b) = Browser::start("kube_api_tab", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.goto("/connectors/kubeprod").await?;
        b.wait_for("#tab-kube").await?;
        b.click("#tab-kube").await?;
        b.until(
            "the audit entry",
            "document.querySelector('#d-audit-body').innerText.includes('ci-job')",
            WAIT,
        )
        .await?;
        b.shot("connector-kube-api").await?;
        let cmd = b.text("#d-kube-cmd").await?;
        ensure!(
            cmd.contains("tether connector kubeconfig kubeprod --ttl 1h"),
            "{cmd}"
        );
        let grant = b.text("#d-kube-grant").await?;
        ensure!(grant.contains("--kube-access"), "{grant}");
        let row = b.text("#d-audit-body tr").await?;
        for want in ["ci-job", "list", "pods", "web", "503"] {
            ensure!(row.contains(want), "the audit row lacks {want}: {row}");
        }
        ensure!(
            b.text("#d-kube-mode").await?.contains("Connector"),
            "the proxy mode is not shown"
        );
        b.close().await
    })
}

/// A secret's use grants and host binding (issue 10, item 1) are set when it
/// is created, shown in the list, and changed in the Access dialog, with the
/// API's field errors next to their field.
#[test]
fn the_secrets_page_shows_and_edits_who_may_use_a_secret() -> Result<()> {
    run(async {
        let server = TetherServer::start(bin(), &[])?;
        for (path, body) in [
            (
                "/orgs",
                json!({"name": "payments", "identifier": "payments"}),
            ),
            (
                "/orgs/payments/projects",
                json!({"name": "web", "identifier": "web"}),
            ),
        ] {
            let (s, v) = api_send(&server, reqwest::Method::POST, path, Some(body)).await?;
            ensure!(s.is_success(), "{path}: {s} {v}");
        }
        let Some(mut b) = Browser::start("secret_access", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.goto("/secrets").await?;
        b.wait_for("#secret-form").await?;
        b.check_labels().await?;
        b.fill("#s-name", "shared token").await?;
        b.fill("#s-value", "tether-ui-access-value-0123").await?;
        b.fill("#s-usable-from", "org/payments").await?;
        b.fill("#s-allowed-hosts", "127.0.0.1, *.example.com")
            .await?;
        b.click("#secret-form button[type=submit]").await?;
        b.until(
            "the new secret with its grants in the list",
            "(document.querySelector('#secrets-body tr[data-id=shared_token] .secret-use') || {}).textContent?.includes('org/payments')",
            WAIT,
        )
        .await?;
        let shown = b
            .text("#secrets-body tr[data-id=shared_token] .secret-use")
            .await?;
        ensure!(
            shown.contains("this scope and org/payments")
                && shown.contains("sent only to 127.0.0.1, *.example.com"),
            "{shown}"
        );
        b.shot("created").await?;
        let v = api_get(&server, "/secrets/shared_token").await?;
        ensure!(v["usableFrom"] == json!(["org/payments"]), "{v}");
        ensure!(
            v["allowedHosts"] == json!(["127.0.0.1", "*.example.com"]),
            "{v}"
        );

        // A grant to a project that does not exist: the API's error at the field.
        b.click("#secrets-body tr[data-id=shared_token] button.secondary")
            .await?;
        b.until(
            "the access dialog, filled in",
            "document.querySelector('#s-access-dialog').open && document.querySelector('#sa-usable-from').value === 'org/payments'",
            WAIT,
        )
        .await?;
        b.check_labels().await?;
        b.fill("#sa-usable-from", "project/payments/nope").await?;
        b.click("#sa-save").await?;
        b.until(
            "the error next to 'Usable from'",
            "!document.querySelector('#sa-usable-from-error').hidden",
            WAIT,
        )
        .await?;
        let err = b.text("#sa-usable-from-error").await?;
        ensure!(err.contains("does not exist"), "{err}");
        b.shot("grant-error").await?;

        // Grant the project instead and drop the host binding.
        b.fill("#sa-usable-from", "project/payments/web").await?;
        b.fill("#sa-allowed-hosts", "").await?;
        b.click("#sa-save").await?;
        b.until(
            "the list to show the new grant",
            "!document.querySelector('#s-access-dialog').open && (document.querySelector('#secrets-body tr[data-id=shared_token] .secret-use') || {}).textContent?.includes('project/payments/web')",
            WAIT,
        )
        .await?;
        let shown = b
            .text("#secrets-body tr[data-id=shared_token] .secret-use")
            .await?;
        ensure!(shown.contains("sent to any host"), "{shown}");
        let v = api_get(&server, "/secrets/shared_token").await?;
        ensure!(v["usableFrom"] == json!(["project/payments/web"]), "{v}");
        ensure!(v["allowedHosts"] == json!([]), "{v}");
        ensure!(v["name"] == "shared token", "{v}");
        ensure!(
            !b.source().await?.contains("tether-ui-access-value-0123"),
            "the value is in the page"
        );
        b.shot("edited").await?;
        b.close().await
    })
}

/// An EKS connector made in the wizard (its own form: region, cluster name,
/// keys from secrets, the endpoints) is tested through a real delegate against
/// the API server whose token webhook checks the token with botocore; the
/// report shows the cloud token stage. Editing it fills the same form.
#[test]
fn the_wizard_makes_an_eks_connector_whose_report_shows_the_cloud_token() -> Result<()> {
    use tether_testenv::cloud::*;
    run(async {
        let w = CloudWorld::get();
        let server = TetherServer::start(bin(), &[])?;
        let work = tempfile::tempdir()?;
        cli_ok(
            &server,
            &["org", "create", "Default", "--identifier", "default"],
            None,
        );
        cli_ok(
            &server,
            &[
                "project",
                "create",
                "Web",
                "--org",
                "default",
                "--identifier",
                "web",
            ],
            None,
        );
        for (id, value) in [
            ("cluster_ca", w.kube.ca_pem.as_str()),
            ("aws_key_id", AWS_CI_KEY_ID),
            ("aws_secret", AWS_CI_SECRET),
        ] {
            cli_ok(
                &server,
                &[
                    "secret",
                    "create",
                    "--name",
                    id,
                    "--identifier",
                    id,
                    "--org",
                    "default",
                    "--project",
                    "web",
                ],
                Some(value),
            );
        }
        let token = cli_ok(
            &server,
            &["delegate", "token", "create", "--name", "aws"],
            None,
        );
        let delegate = Delegate::start(&server, work.path(), "aws-1", "aws", token.trim())?;
        let Some(mut b) = Browser::start("wizard_eks", &server.url).await? else {
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.goto("/orgs/default/projects/web/connectors/new").await?;
        b.wait_for("#c-name").await?;
        b.fill("#c-name", "prod eks").await?;
        b.click("#step-1 button[type=submit]").await?;
        b.until("step 2", "!document.querySelector('#step-2').hidden", WAIT)
            .await?;
        b.fill("#c-master-url", &w.kube.url).await?;
        b.select("#c-auth-type", "EKS").await?;
        b.until(
            "the EKS form",
            "!document.querySelector('.auth-group[data-auth=EKS]').hidden && document.querySelector('.auth-group[data-auth=ServiceAccount]').hidden",
            WAIT,
        )
        .await?;
        // Required fields are asked for before anything is sent.
        b.click("#step-2 button[type=submit]").await?;
        b.until(
            "the region to be asked for",
            "!document.querySelector('#eks-region-error').hidden",
            WAIT,
        )
        .await?;
        b.fill("#eks-region", AWS_REGION).await?;
        b.fill("#eks-cluster", EKS_CLUSTER).await?;
        b.until(
            "the secrets in the pickers",
            "[...document.querySelectorAll('#eks-key-id option')].some(o => o.value === 'aws_key_id')",
            WAIT,
        )
        .await?;
        b.select("#eks-key-id", "aws_key_id").await?;
        b.select("#eks-secret-key", "aws_secret").await?;
        b.fill("#eks-sts", &w.url(0, "/sts")).await?;
        b.fill("#eks-api", &w.url(0, "/eks")).await?;
        b.select("#eks-ca", "cluster_ca").await?;
        b.check_labels().await?;
        b.shot("eks-details").await?;
        b.click("#step-2 button[type=submit]").await?;
        b.until("step 3", "!document.querySelector('#step-3').hidden", WAIT)
            .await?;
        b.click("input[name=delegates][value=tags]").await?;
        b.fill("#c-selector-input", "aws").await?;
        b.click("#c-selector-add").await?;
        b.until(
            "the delegate among the matching ones",
            "document.querySelector('#matching-delegates') && document.querySelector('#matching-delegates').innerText.includes('aws-1')",
            Duration::from_secs(60),
        )
        .await
        .with_context(|| std::fs::read_to_string(&delegate.1).unwrap_or_default())?;
        b.click("#save-continue").await?;
        b.until(
            "the test result",
            "document.querySelector('#test-report .report-head .badge') && !document.querySelector('#test-report .badge-pending')",
            Duration::from_secs(120),
        )
        .await?;
        b.shot("eks-report").await?;
        let status = b.text("#test-report .report-head .badge").await?;
        ensure!(
            status == "SUCCESS",
            "the connection test says {status}: {}",
            b.text("#test-report").await?
        );
        let token_stage = b
            .text("#report-stages li[data-stage=token]")
            .await
            .context("the report has no cloud token stage")?;
        ensure!(
            token_stage.contains("Cloud token")
                && token_stage.contains("arn:aws:iam::111122223333:user/ci"),
            "{token_stage}"
        );
        let passed = b
            .js("return document.querySelectorAll('#report-stages [data-status=passed]').length;")
            .await?;
        ensure!(passed == json!(7), "every stage passes, got {passed}");
        let text = b.text("#test-report").await?;
        ensure!(
            !text.contains(AWS_CI_SECRET),
            "the secret key is in the report"
        );

        // The stored document is the EKS one, and editing fills the same form.
        let c = api_get(&server, "/orgs/default/projects/web/connectors/prod_eks").await?;
        let spec = &c["connector"]["spec"]["credential"]["spec"]["auth"];
        ensure!(spec["type"] == "EKS", "{c}");
        ensure!(spec["spec"]["secretAccessKeyRef"] == "aws_secret", "{c}");
        ensure!(spec["spec"]["clusterName"] == EKS_CLUSTER, "{c}");
        b.goto("/orgs/default/projects/web/connectors/prod_eks/edit")
            .await?;
        b.click("#step-1 button[type=submit]").await?;
        b.until(
            "the EKS form, filled in",
            "document.querySelector('#c-auth-type').value === 'EKS' && document.querySelector('#eks-cluster').value === 'tether-test' && document.querySelector('#eks-secret-key').value === 'aws_secret'",
            WAIT,
        )
        .await?;
        b.close().await
    })
}

/// A busybox Deployment on the test node; `version` goes in its environment,
/// so each version is a new rollout.
fn ui_deployment(ns: &str, name: &str, image: &str, version: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: {image}\n        imagePullPolicy: IfNotPresent\n        command: [sleep, '3600']\n        env:\n        - name: VERSION\n          value: '{version}'\n"
    )
}

/// Fills the Deploy tab's form and submits it.
async fn ui_deploy(b: &mut Browser, yaml: &str, ns: &str, release: &str) -> Result<()> {
    b.paste("#dp-yaml", yaml).await?;
    b.fill("#dp-namespace", ns).await?;
    b.fill("#dp-release", release).await?;
    b.click("#dp-submit").await
}

/// The outcome badge of the deploy shown in the Deploy tab, once there.
async fn ui_deploy_outcome(b: &mut Browser, what: &str) -> Result<String> {
    b.until(
        what,
        "document.querySelector('#dp-result [data-outcome]') || document.querySelector('#dp-result [role=alert]')",
        Duration::from_secs(180),
    )
    .await?;
    Ok(b
        .js("const e = document.querySelector('#dp-result [data-outcome]'); return e ? e.dataset.outcome : document.querySelector('#dp-result').innerText;")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Issue 13's deploy UI on the real node: a Deployment deployed from the
/// connector page shows the cluster's events while it rolls out (before its
/// result), then "deployed"; a missing image ends with the ErrImagePull
/// diagnosis and its fix; an unknown kind is refused by pre-flight naming its
/// document and line; a rollback from the release history deploys revision
/// 1's manifests again (the cluster has them back) as revision 3 with its
/// live events. Revision 2 comes from an uploaded file. A viewer sees the
/// history without a form or Rollback button.
#[test]
fn the_deploy_tab_deploys_shows_live_events_failures_refusals_and_rolls_back() -> Result<()> {
    run(async {
        let env = KubeEnv::get();
        env.node();
        let token = cluster_admin_token(env).await?;
        let ns = env.namespace("ui-deploy").await;
        let s = common::deploy::start(env, &token)?;
        let busybox = env.node().busybox_image.clone();
        let Some(mut b) = Browser::start("deploy_tab", &s.server.url).await? else {
            return Ok(());
        };
        b.login(&s.server.admin_token).await?;
        b.goto("/connectors/cluster").await?;
        b.click("#tab-deploy").await?;
        b.until(
            "the empty release history",
            "document.querySelector('#dp-releases-body').innerText.includes('No release yet')",
            WAIT,
        )
        .await?;
        b.check_labels().await?;
        b.shot("deploy-tab").await?;

        // --- Revision 1: live events while it rolls out, then deployed.
        ui_deploy(
            &mut b,
            &ui_deployment(&ns, "web", &busybox, "1"),
            &ns,
            "web",
        )
        .await?;
        // The cluster's pod events are on the page while the result is not
        // (a workload without readiness probe is watched 5 s more after it
        // is available, so this state lasts).
        b.until(
            "pod events shown while the deploy runs",
            "document.querySelector('#dp-events [data-kind=pod]') && !document.querySelector('#dp-result').children.length",
            Duration::from_secs(120),
        )
        .await?;
        b.shot("deploy-running").await?;
        let outcome = ui_deploy_outcome(&mut b, "the first deploy's result").await?;
        ensure!(outcome == "deployed", "first deploy: {outcome}");
        let events = b.text("#dp-events").await?;
        ensure!(
            events.contains("steady") && events.contains("Deployment"),
            "no steady event: {events}"
        );
        b.shot("deploy-steady").await?;
        b.until(
            "revision 1 in the history",
            "document.querySelector('#dp-releases-body tr[data-release=web][data-revision=\"1\"]')",
            WAIT,
        )
        .await?;
        let row = b
            .text("#dp-releases-body tr[data-release=web][data-revision='1']")
            .await?;
        ensure!(
            row.contains("deployed") && row.contains("1 object"),
            "{row}"
        );

        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(env.admin_client().await, &ns);
        let version = |d: &k8s_openapi::api::apps::v1::Deployment| {
            d.spec
                .template
                .spec
                .as_ref()
                .and_then(|p| p.containers[0].env.as_ref()?[0].value.clone())
        };
        // --- Revision 2 of the same release, another version, from an uploaded
        // file (namespace and release stay as typed).
        let work = tempfile::tempdir()?;
        let upload = work.path().join("web-v2.yaml");
        std::fs::write(&upload, ui_deployment(&ns, "web", &busybox, "2"))?;
        b.paste("#dp-yaml", "").await?;
        b.wait_for("#dp-files")
            .await?
            .send_keys(&upload.display().to_string())
            .await?;
        b.until(
            "the uploaded file listed",
            "document.querySelector('#dp-files-list').innerText.includes('1 file: web-v2.yaml')",
            WAIT,
        )
        .await?;
        b.click("#dp-submit").await?;
        b.until(
            "the second deploy to start",
            "document.querySelector('#dp-state')",
            WAIT,
        )
        .await?;
        let outcome = ui_deploy_outcome(&mut b, "the second deploy's result").await?;
        ensure!(outcome == "deployed", "second deploy: {outcome}");
        ensure!(
            version(&deployments.get("web").await?).as_deref() == Some("2"),
            "the uploaded file was not what was deployed"
        );
        // Later deploys are pasted: no file with them.
        b.js("const f = document.querySelector('#dp-files'); f.value = ''; f.dispatchEvent(new Event('change'));")
            .await?;
        b.until(
            "no file listed",
            "document.querySelector('#dp-files-list').innerText === ''",
            WAIT,
        )
        .await?;

        // --- A missing image: the ErrImagePull diagnosis and its fix.
        ui_deploy(
            &mut b,
            &ui_deployment(&ns, "broken", "tether-test/no-such-image:1", "1"),
            &ns,
            "broken",
        )
        .await?;
        b.until(
            "the failing deploy to start",
            "document.querySelector('#dp-state')",
            WAIT,
        )
        .await?;
        let outcome = ui_deploy_outcome(&mut b, "the failing deploy's result").await?;
        ensure!(outcome == "failed", "missing image: {outcome}");
        let problems = b.text("#dp-problems").await?;
        ensure!(
            problems.contains("IMAGE_PULL")
                && problems.contains("tether-test/no-such-image:1")
                && problems.contains("Fix:"),
            "{problems}"
        );
        b.shot("deploy-image-pull").await?;

        // --- Pre-flight: an unknown kind in the paste's second document (#1).
        let unknown = format!(
            "{}---\napiVersion: example.com/v1\nkind: Frobnicator\nmetadata:\n  name: x\n  namespace: {ns}\n",
            ui_deployment(&ns, "web", &busybox, "9")
        );
        ui_deploy(&mut b, &unknown, &ns, "web").await?;
        b.until(
            "pre-flight to start",
            "document.querySelector('#dp-state')",
            WAIT,
        )
        .await?;
        let outcome = ui_deploy_outcome(&mut b, "the refusal").await?;
        ensure!(outcome == "refused", "unknown kind: {outcome}");
        let problems = b.text("#dp-problems").await?;
        // A document starts at its `---` line, right after the first one.
        let doc2_line = ui_deployment(&ns, "web", &busybox, "9").lines().count() + 1;
        ensure!(
            problems.contains("UNKNOWN_KIND")
                && problems.contains("Frobnicator")
                && problems.contains(&format!("pasted#1 (line {doc2_line})")),
            "{problems}"
        );
        b.shot("deploy-refused").await?;
        ensure!(
            version(&deployments.get("web").await?).as_deref() == Some("2"),
            "the refused deploy changed the Deployment"
        );

        // --- Rollback to revision 1 from the history: confirm, live events, revision 3.
        b.click("#dp-releases-body tr[data-release=web][data-revision='1'] .dp-rollback")
            .await?;
        b.until(
            "the rollback dialog",
            "document.querySelector('#dp-rollback-dialog').open",
            WAIT,
        )
        .await?;
        ensure!(
            b.text("#dp-rollback-text").await?.contains("revision 3"),
            "the dialog does not say what the rollback becomes"
        );
        b.shot("rollback-confirm").await?;
        b.click("#dp-rollback-confirm").await?;
        b.until(
            "the rollback's events",
            "document.querySelector('#dp-events li')",
            Duration::from_secs(120),
        )
        .await?;
        let outcome = ui_deploy_outcome(&mut b, "the rollback's result").await?;
        ensure!(outcome == "deployed", "rollback: {outcome}");
        b.until(
            "revision 3 in the history",
            "document.querySelector('#dp-releases-body tr[data-release=web][data-revision=\"3\"]')",
            WAIT,
        )
        .await?;
        let row = b
            .text("#dp-releases-body tr[data-release=web][data-revision='3']")
            .await?;
        ensure!(row.contains("rollback to 1"), "{row}");
        ensure!(
            version(&deployments.get("web").await?).as_deref() == Some("1"),
            "the rollback did not bring revision 1's template back"
        );
        b.shot("rolled-back").await?;

        // --- A viewer: the history, no form, no rollback.
        let (st, created) = api_send(
            &s.server,
            reqwest::Method::POST,
            "/tokens",
            Some(json!({"name": "watcher", "role": "viewer"})),
        )
        .await?;
        ensure!(st.is_success(), "token: {st} {created}");
        let viewer = created["value"]
            .as_str()
            .context("token value")?
            .to_string();
        b.click("#logout").await?;
        b.wait_for("#login-token").await?;
        b.fill("#login-token", &viewer).await?;
        b.click("#login-submit").await?;
        b.until(
            "the connectors page",
            "document.body.dataset.page === 'connectors'",
            WAIT,
        )
        .await?;
        b.goto("/connectors/cluster").await?;
        b.click("#tab-deploy").await?;
        b.until(
            "the history for a viewer",
            "document.querySelector('#dp-releases-body tr[data-revision=\"3\"]')",
            WAIT,
        )
        .await?;
        let controls = b
            .js("return [!!document.querySelector('#dp-form'), document.querySelectorAll('.dp-rollback').length, !!document.querySelector('#dp-viewer')];")
            .await?;
        ensure!(
            controls == json!([false, 0, true]),
            "viewer sees {controls}"
        );
        b.shot("viewer-history").await?;
        b.close().await
    })
}

/// The Builds tab (issue 14): a finished build shows its status, duration,
/// exit code and log; a running build's log grows on screen as the container
/// writes it (the task's events followed over SSE), and the row shows how it
/// ended once it is cancelled.
#[test]
fn the_builds_tab_shows_finished_builds_and_follows_a_running_one() -> Result<()> {
    run(async {
        let env = KubeEnv::get();
        env.node();
        let work = tempfile::tempdir()?;
        let token = cluster_admin_token(env).await?;
        let ns = env.namespace("ui-builds").await;
        let (server, _delegate) = manager_with_delegate(work.path()).await?;
        common::cluster_connector(&server, env, &token, "", &[])?;
        let image = "tether-test/busybox:1";
        let build = |extra: &[&str]| {
            let mut args = vec![
                "build",
                "run",
                "--connector",
                "cluster",
                "--namespace",
                &ns,
                "--image",
                image,
                "--",
            ];
            args.extend_from_slice(extra);
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };

        // A finished build: exit code 3 after two lines.
        let args = build(&[
            "sh",
            "-c",
            "echo finished-line-1; echo finished-line-2; exit 3",
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli(&server, &server.admin_token, &args, None);
        ensure!(
            out.status.code() == Some(3),
            "{:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let list = api_get(&server, "/connectors/cluster/builds").await?;
        let done = list["items"][0].clone();
        let done_id = done["taskId"].as_str().context("task id")?.to_string();
        // As T.duration shows it: milliseconds under a second.
        let ms = done["durationMs"].as_u64().context("duration")?;
        let secs = if ms < 1000 {
            format!("{ms} ms")
        } else {
            format!("{:.1} s", ms as f64 / 1000.0)
        };

        // A running build that writes a line every 300 ms.
        let args = build(&[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done",
        ]);
        let mut cmd = server.cli(bin(), &server.admin_token);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut running = cmd.spawn()?;
        let mut err = BufReader::new(running.stderr.take().context("stderr")?).lines();
        let mut live_id = None;
        for l in err.by_ref() {
            let l = l?;
            if let Some(rest) = l.strip_prefix("build task ") {
                live_id = rest.split_whitespace().next().map(str::to_string);
            }
            if l.contains(": running") {
                break;
            }
        }
        let live_id = live_id.context("the CLI named no build task")?;
        std::thread::spawn(move || for _ in err {});

        let Some(mut b) = Browser::start("builds_tab", &server.url).await? else {
            let _ = running.kill();
            return Ok(());
        };
        b.login(&server.admin_token).await?;
        b.goto("/connectors/cluster").await?;
        b.click("#tab-builds").await?;
        let done_row = format!("#d-builds-body tr[data-task={}]", js_str(&done_id));
        let live_row = format!("#d-builds-body tr[data-task={}]", js_str(&live_id));
        b.until(
            "both builds listed",
            &format!(
                "document.querySelector({}) && document.querySelector({})",
                js_str(&done_row),
                js_str(&live_row)
            ),
            WAIT,
        )
        .await?;
        let row = b.text(&done_row).await?;
        for want in ["FAILED", "3", &secs, image] {
            ensure!(
                row.contains(want),
                "the finished build's row lacks {want}: {row}"
            );
        }
        ensure!(
            b.text(&live_row).await?.contains("RUNNING"),
            "the running build is not shown running"
        );
        b.click(&format!("{done_row} button")).await?;
        b.until(
            "the finished build's log",
            "document.querySelector('#d-build-log').dataset.state === 'ended'",
            WAIT,
        )
        .await?;
        let log = b.text("#d-build-log").await?;
        ensure!(
            log.contains("finished-line-1\nfinished-line-2"),
            "the log lacks the build's lines: {log}"
        );
        b.shot("builds-finished-log").await?;

        // The running build's log grows while the page stays as it is.
        b.click(&format!("{live_row} button")).await?;
        b.until(
            "a first tick",
            "document.querySelector('#d-build-log').textContent.includes('tick-')",
            WAIT,
        )
        .await?;
        let last_tick = |text: &str| {
            text.lines()
                .filter_map(|l| l.strip_prefix("tick-")?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        };
        let first = last_tick(&b.text("#d-build-log").await?);
        b.until(
            "later ticks arriving live",
            &format!(
                "Math.max(0, ...document.querySelector('#d-build-log').textContent.split('\\n').filter(l => l.startsWith('tick-')).map(l => +l.slice(5))) >= {}",
                first + 3
            ),
            WAIT,
        )
        .await?;
        ensure!(
            b.js("return document.querySelector('#d-build-log').dataset.state")
                .await?
                == json!("following"),
            "the log of a running build should still be followed"
        );
        b.shot("builds-live-log").await?;

        // Cancelled: the stream ends and the row says how.
        cli_ok(&server, &["task", "cancel", &live_id], None);
        b.until(
            "the live log to end",
            "document.querySelector('#d-build-log').dataset.state === 'ended'",
            Duration::from_secs(90),
        )
        .await?;
        b.until(
            "the cancelled build's row",
            &format!(
                "document.querySelector({}).innerText.includes('CANCELLED')",
                js_str(&live_row)
            ),
            WAIT,
        )
        .await?;
        b.shot("builds-cancelled").await?;
        let code = running.wait()?.code();
        ensure!(
            code == Some(130),
            "the cancelled build's CLI exited {code:?}"
        );
        b.close().await
    })
}
