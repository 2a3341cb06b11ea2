//! Cluster onboarding through the real binary: `tether rbac manifest`,
//! `tether connector import-kubeconfig` and `tether cluster add|token|rotate-token|
//! remove`, against the real control plane and a real `tether server` (with a
//! real delegate, which runs the connection test).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::Api;
use secrecy::SecretString;
use serde_json::Value;
use tether_kube::{ClusterAccess, Credentials};
use tether_testenv::{unique, KubeEnv, TetherServer};

use common::{bin, cli};

const NO_TEST_ENDPOINT: &str = "connection test not available on this manager";

/// A manager with a delegate connected to it (the connection test runs there).
struct Manager {
    server: TetherServer,
    delegate: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some(d) = &mut self.delegate {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Manager {
    /// Starts `tether server` and, when this manager knows delegates, one delegate
    /// serving the account (and so every scope), waiting until it is connected.
    fn start() -> Result<Manager> {
        let server = TetherServer::start(bin(), &[])?;
        let dir = tempfile::tempdir()?;
        let token = cli(
            &server,
            &server.admin_token,
            &["delegate", "token", "create", "--name", "test"],
            None,
        );
        let mut manager = Manager {
            server,
            delegate: None,
            _dir: dir,
        };
        if !token.status.success() {
            // A manager without delegates: the connection test is not available.
            return Ok(manager);
        }
        let token_file = manager._dir.path().join("delegate-token");
        std::fs::write(&token_file, String::from_utf8(token.stdout)?.trim())?;
        let log = std::fs::File::create(manager._dir.path().join("delegate.log"))?;
        let child = Command::new(bin())
            .args([
                "delegate",
                "run",
                "--manager",
                &manager.server.url,
                "--name",
                "test-delegate",
            ])
            .env("TETHER_DELEGATE_TOKEN_FILE", &token_file)
            .env_remove("TETHER_DELEGATE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("start a delegate")?;
        manager.delegate = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = manager.ok(&["delegate", "list", "-o", "json"])?;
            let items: Value = serde_json::from_str(&list)?;
            let connected = items
                .as_array()
                .is_some_and(|a| a.iter().any(|d| d["connected"].as_bool() == Some(true)));
            if connected {
                return Ok(manager);
            }
            ensure!(
                Instant::now() < deadline,
                "the delegate did not connect in 30s:\n{}",
                std::fs::read_to_string(manager._dir.path().join("delegate.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        cli(&self.server, &self.server.admin_token, args, None)
    }

    /// Runs a client command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args);
        ensure!(
            out.status.success(),
            "tether {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs a client command that must fail; stdout and stderr.
    fn fails(&self, args: &[&str]) -> Result<(String, String)> {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        ensure!(
            !out.status.success(),
            "tether {args:?} succeeded:\n{stdout}{stderr}"
        );
        Ok((stdout, stderr))
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&all)?)?)
    }

    /// The identifiers of the secrets of a scope.
    fn secrets(&self, scope: &[&str]) -> Result<Vec<String>> {
        let mut args = vec!["secret", "list"];
        args.extend(scope);
        let page = self.json(&args)?;
        Ok(page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["identifier"].as_str().map(str::to_string))
            .collect())
    }

    /// The connector document, or `None` when it does not exist.
    fn connector(&self, id: &str, scope: &[&str]) -> Result<Option<Value>> {
        let mut args = vec!["connector", "get", id];
        args.extend(scope);
        args.extend(["-o", "json"]);
        let out = self.run(&args);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            ensure!(err.contains("404"), "{err}");
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&out.stdout)?))
    }
}

/// The connection test step of `add`/`rotate-token`: SUCCESS, or a manager that
/// does not have the endpoint (then nothing more can be asserted).
fn assert_tested(stdout: &str, step: &str) -> Result<bool> {
    if stdout.contains(NO_TEST_ENDPOINT) {
        return Ok(false);
    }
    ensure!(
        stdout.contains(&format!(
            "{step} connection test through the manager ... SUCCESS"
        )),
        "expected a SUCCESS report:\n{stdout}"
    );
    ensure!(
        stdout.contains("Connection test of connector "),
        "the report is printed: {stdout}"
    );
    Ok(true)
}

fn kubectl(env: &KubeEnv, args: &[&str]) -> Result<Output> {
    Ok(env.kubectl().args(args).output()?)
}

/// Names (`kind/name`) of every object labelled for service account `sa`, in all
/// namespaces, of the kinds onboarding creates.
fn labelled(env: &KubeEnv, sa: &str) -> Result<Vec<String>> {
    let out = kubectl(
        env,
        &[
            "get",
            "sa,secret,rolebinding,clusterrolebinding,clusterrole",
            "-A",
            "-o",
            "name",
            "-l",
            &format!("tether.dev/service-account={sa}"),
        ],
    )?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// May the bearer of `token` do `verb` on `group/resource` in `namespace`?
async fn can_i(
    env: &KubeEnv,
    token: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
) -> Result<bool> {
    let client = ClusterAccess::new(
        &env.url,
        Credentials::Token(SecretString::from(token.to_string())),
    )
    .with_ca(&env.ca_pem)
    .client()?;
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Api::<SelfSubjectAccessReview>::all(client)
        .create(&PostParams::default(), &review)
        .await?;
    Ok(out.status.context("review without status")?.allowed)
}

/// Waits until the API server rejects `token` (401), as it does once the token
/// Secret it came from is gone.
async fn wait_until_rejected(env: &KubeEnv, token: &str, namespace: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match can_i(env, token, "get", "", "pods", namespace).await {
            Err(e) if matches!(e.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 401) => {
                return Ok(())
            }
            other => ensure!(
                Instant::now() < deadline,
                "old token still accepted after 30s: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `tether cluster token` for `namespace/sa`; the token alone on stdout.
fn cluster_token(m: &Manager, env: &KubeEnv, namespace: &str, sa: &str) -> Result<String> {
    let kc = env.kubeconfig.to_str().unwrap();
    let out = m.ok(&[
        "cluster",
        "token",
        "--service-account",
        sa,
        "-n",
        namespace,
        "--kubeconfig",
        kc,
    ])?;
    ensure!(out.lines().count() == 1, "only the token is printed: {out}");
    Ok(out.trim().to_string())
}

fn kubectl_apply_dry_run(env: &KubeEnv, yaml: &str) -> Result<String> {
    let mut child = env
        .kubectl()
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "kubectl refused the manifest: {}\n{stdout}\n--- manifest ---\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[tokio::test]
async fn rbac_manifest_output_passes_a_server_side_dry_run() -> Result<()> {
    let env = KubeEnv::get();
    let home = env.namespace("rbac-home").await;
    let target = env.namespace("rbac-target").await;
    let sa = unique("deployer");
    let cases: Vec<(&str, Vec<&str>, usize)> = vec![
        ("deployments", vec![&target, &home], 5),
        ("deployments", vec![], 4),
        ("builds", vec![&target], 4),
        ("namespace-admin", vec![&target], 3),
        ("cluster-admin", vec![], 3),
    ];
    for (profile, targets, objects) in cases {
        let mut args = vec![
            "rbac",
            "manifest",
            "--service-account",
            &sa,
            "--namespace",
            &home,
            "--profile",
            profile,
        ];
        for t in targets {
            args.extend(["--target-namespace", t]);
        }
        // Works without a manager: no TETHER_URL is needed.
        let out = Command::new(bin())
            .args(&args)
            .env_remove("TETHER_URL")
            .output()?;
        ensure!(
            out.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout)?;
        ensure!(!yaml.contains("v1beta1"), "{yaml}");
        let applied =
            tokio::task::spawn_blocking(move || kubectl_apply_dry_run(env, &yaml)).await??;
        ensure!(
            applied.lines().count() == objects && applied.contains("(server dry run)"),
            "{profile}: kubectl said\n{applied}"
        );
    }
    ensure!(labelled(env, &sa)?.is_empty(), "a dry run creates nothing");

    // Impossible combinations are refused with what to do instead.
    let out = Command::new(bin())
        .args([
            "rbac",
            "manifest",
            "--service-account",
            "ops",
            "--profile",
            "namespace-admin",
        ])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("--target-namespace"),
        "{err}"
    );
    let out = Command::new(bin())
        .args([
            "rbac",
            "manifest",
            "--service-account",
            "ops",
            "--profile",
            "admin",
        ])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("namespace-admin"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn import_kubeconfig_of_a_client_certificate_context() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let kc = env.kubeconfig.to_str().unwrap();
    let name = unique("imported");
    let id = name.replace('-', "");

    let out = m.ok(&[
        "connector",
        "import-kubeconfig",
        kc,
        "--name",
        &name,
        "--identifier",
        &id,
        "--delegate-selectors",
        "eu,prod",
    ])?;
    ensure!(
        out.contains("client certificate") && out.contains(&format!("connector/{id} created")),
        "{out}"
    );
    ensure!(
        !out.contains("PRIVATE KEY") && !out.contains("BEGIN"),
        "no credential printed: {out}"
    );
    let mut expected = vec![
        format!("{id}_ca"),
        format!("{id}_client_cert"),
        format!("{id}_client_key"),
    ];
    expected.sort();
    let mut secrets = m.secrets(&[])?;
    secrets.sort();
    ensure!(secrets == expected, "{secrets:?}");

    let r = m.connector(&id, &[])?.context("connector exists")?;
    let c = &r["connector"];
    let spec = &c["spec"]["credential"]["spec"];
    ensure!(spec["masterUrl"] == env.url.as_str(), "{c}");
    ensure!(spec["auth"]["type"] == "ClientKeyCert", "{c}");
    let auth = &spec["auth"]["spec"];
    ensure!(
        auth["clientCertRef"] == format!("{id}_client_cert").as_str(),
        "{c}"
    );
    ensure!(
        auth["clientKeyRef"] == format!("{id}_client_key").as_str(),
        "{c}"
    );
    ensure!(auth["caCertRef"] == format!("{id}_ca").as_str(), "{c}");
    ensure!(
        c["spec"]["delegateSelectors"] == serde_json::json!(["eu", "prod"]),
        "{c}"
    );

    // Again: an update, not a duplicate.
    let out = m.ok(&[
        "connector",
        "import-kubeconfig",
        kc,
        "--name",
        &name,
        "--identifier",
        &id,
    ])?;
    ensure!(out.contains(&format!("connector/{id} updated")), "{out}");
    let mut again = m.secrets(&[])?;
    again.sort();
    ensure!(again == expected, "{again:?}");
    let list = m.json(&["connector", "list"])?;
    ensure!(list["total"] == 1, "{list}");

    // The `cluster` commands leave a connector they did not make alone.
    let (_, err) = m.fails(&[
        "cluster",
        "add",
        "--kubeconfig",
        kc,
        "--name",
        &name,
        "--identifier",
        &id,
    ])?;
    ensure!(
        err.contains("was not created by `tether cluster add`"),
        "{err}"
    );
    ensure!(err.contains("Nothing had been changed yet"), "{err}");
    let (_, err) = m.fails(&["cluster", "remove", &id, "--kubeconfig", kc])?;
    ensure!(
        err.contains(&format!("tether connector delete {id}")),
        "{err}"
    );
    let (_, err) = m.fails(&["cluster", "rotate-token", &id, "--kubeconfig", kc])?;
    ensure!(err.contains("not created by `tether cluster add`"), "{err}");
    ensure!(m.connector(&id, &[])?.is_some() && m.secrets(&[])?.len() == 3);

    Ok(())
}

fn write_kubeconfig(dir: &Path, name: &str, env: &KubeEnv, user: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, &env.ca_pem)?;
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: someone\n  user:\n{user}\ncontexts:\n- name: ctx\n  context: {{cluster: test, user: someone}}\ncurrent-context: ctx\n",
            env.url,
            ca.display()
        ),
    )?;
    Ok(path)
}

#[tokio::test]
async fn import_kubeconfig_refuses_exec_and_auth_provider_users() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let dir = tempfile::tempdir()?;
    let exec = write_kubeconfig(
        dir.path(),
        "exec.kubeconfig",
        env,
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: my-credential-helper\n      args: [get-token]\n",
    )?;
    let (_, err) = m.fails(&[
        "connector",
        "import-kubeconfig",
        exec.to_str().unwrap(),
        "--name",
        "eks",
    ])?;
    ensure!(
        err.contains("exec plugin") && err.contains("my-credential-helper"),
        "{err}"
    );
    ensure!(
        err.contains("tether cluster add"),
        "suggests cluster add: {err}"
    );
    // A known cloud plugin is still never run; its native auth type is offered.
    let aws = write_kubeconfig(
        dir.path(),
        "aws.kubeconfig",
        env,
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token, --cluster-name, prod]\n",
    )?;
    let (_, err) = m.fails(&[
        "connector",
        "import-kubeconfig",
        aws.to_str().unwrap(),
        "--name",
        "eks",
    ])?;
    ensure!(
        err.contains("never runs commands")
            && err.contains("aws eks get-token")
            && err.contains("type: EKS")
            && err.contains("clusterName: prod"),
        "{err}"
    );

    let provider = write_kubeconfig(
        dir.path(),
        "provider.kubeconfig",
        env,
        "    auth-provider:\n      name: gcp\n      config: {access-token: secret-access-token-value}\n",
    )?;
    let (_, err) = m.fails(&[
        "connector",
        "import-kubeconfig",
        provider.to_str().unwrap(),
        "--name",
        "gke",
    ])?;
    ensure!(
        err.contains("auth-provider") && err.contains("tether cluster add"),
        "{err}"
    );
    ensure!(!err.contains("secret-access-token-value"), "{err}");

    ensure!(m.secrets(&[])?.is_empty(), "nothing stored");
    ensure!(m.connector("eks", &[])?.is_none() && m.connector("gke", &[])?.is_none());
    Ok(())
}

/// The four cloud exec plugins, each an executable here that would leave a
/// mark if it ran: `import-kubeconfig` names each one's native auth type with
/// the fields its arguments give, and runs none of them (issue 15).
#[tokio::test]
async fn import_kubeconfig_offers_the_native_auth_type_for_each_cloud_plugin_without_running_it(
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let dir = tempfile::tempdir()?;
    let ran = dir.path().join("ran");
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "aws",
            "args: [--region, eu-west-1, eks, get-token, --cluster-name, prod, --role-arn, arn:aws:iam::123456789012:role/deployer]",
            &["type: EKS", "region: eu-west-1", "clusterName: prod", "roleArn: arn:aws:iam::123456789012:role/deployer", "accessKeyIdRef"],
        ),
        (
            "aws-iam-authenticator",
            "args: [token, -i, staging]",
            &["type: EKS", "clusterName: staging"],
        ),
        (
            "gke-gcloud-auth-plugin",
            "provideClusterInfo: true",
            &["type: GKE", "serviceAccountKeyRef"],
        ),
        (
            "kubelogin",
            "args: [get-token, --login, spn, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --tenant-id, 72f988bf-86f1-41af-91ab-2d7cd011db47, --client-id, 0d6a3c3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5]",
            &["type: AKS", "tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47", "clientId: 0d6a3c3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5", "clientSecretRef"],
        ),
    ];
    for (program, rest, want) in cases {
        let exe = dir.path().join(program);
        std::fs::write(
            &exe,
            format!("#!/bin/sh\necho {program} >> {}\n", ran.display()),
        )?;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
        let kubeconfig = write_kubeconfig(
            dir.path(),
            &format!("{program}.kubeconfig"),
            env,
            &format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}\n      {rest}\n",
                exe.display()
            ),
        )?;
        let (_, err) = m.fails(&[
            "connector",
            "import-kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--name",
            "cloud",
        ])?;
        ensure!(err.contains("never runs commands"), "{program}: {err}");
        for w in want {
            ensure!(err.contains(w), "{program}: no '{w}' in {err}");
        }
    }
    ensure!(
        !ran.exists(),
        "a plugin was run: {}",
        std::fs::read_to_string(&ran).unwrap_or_default()
    );
    ensure!(m.secrets(&[])?.is_empty(), "nothing stored");
    ensure!(m.connector("cloud", &[])?.is_none());
    Ok(())
}

#[tokio::test]
async fn cluster_add_token_rotate_remove() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    m.ok(&["org", "create", "Default", "--identifier", "default"])?;
    m.ok(&[
        "project",
        "create",
        "Web",
        "--org",
        "default",
        "--identifier",
        "web",
    ])?;
    let scope = ["--org", "default", "--project", "web"];
    let kc = env.kubeconfig.to_str().unwrap();
    // A namespace `add` has to create, and the namespaces it grants access to.
    let home = unique("add-home");
    let target = env.namespace("add-target").await;
    let other = env.namespace("add-other").await;
    let name = unique("prod");
    // The identifier derived from the name drops the '-'.
    let id = name.replace('-', "");
    let sa = format!("tether-{id}");

    let add: Vec<&str> = [
        "cluster",
        "add",
        "--kubeconfig",
        kc,
        "--name",
        &name,
        "--namespace",
        &home,
        "--target-namespace",
        &target,
    ]
    .into_iter()
    .chain(scope)
    .collect();
    let out = m.ok(&add)?;
    for step in 1..=8 {
        ensure!(
            out.contains(&format!("[{step}/8] ")),
            "step {step} shown:\n{out}"
        );
    }
    ensure!(
        out.contains(&format!("namespace {home} ... created")),
        "{out}"
    );
    let tested = assert_tested(&out, "[8/8]")?;

    // In tether: the connector (ServiceAccount auth + caCertRef) and two secrets.
    let r = m.connector(&id, &scope)?.context("connector exists")?;
    let c = &r["connector"];
    let cred = &c["spec"]["credential"]["spec"];
    ensure!(cred["masterUrl"] == env.url.as_str(), "{c}");
    ensure!(cred["auth"]["type"] == "ServiceAccount", "{c}");
    ensure!(
        cred["auth"]["spec"]["serviceAccountTokenRef"] == format!("{id}_token").as_str(),
        "{c}"
    );
    ensure!(
        cred["auth"]["spec"]["caCertRef"] == format!("{id}_ca").as_str(),
        "{c}"
    );
    ensure!(
        c["spec"]["connectionTest"]
            == serde_json::json!({"profile": "deployments", "namespaces": [target]}),
        "{c}"
    );
    ensure!(c["tags"]["tether.dev/cluster-add"] == "true", "{c}");
    ensure!(
        c["tags"]["tether.dev/service-account"] == format!("{home}/{sa}").as_str(),
        "{c}"
    );
    if tested {
        ensure!(
            r["status"]["status"] == "SUCCESS",
            "the test result is stored: {r}"
        );
    }
    let mut secrets = m.secrets(&scope)?;
    secrets.sort();
    ensure!(
        secrets == [format!("{id}_ca"), format!("{id}_token")],
        "{secrets:?}"
    );

    // In the cluster: the account, its token Secret, the role and the binding.
    let mut objects = labelled(env, &sa)?;
    objects.sort();
    let role = format!("tether:{home}:{sa}:deployments");
    let mut expected = vec![
        format!("clusterrole.rbac.authorization.k8s.io/{role}"),
        format!("rolebinding.rbac.authorization.k8s.io/{role}"),
        format!("secret/{sa}-token"),
        format!("serviceaccount/{sa}"),
    ];
    expected.sort();
    ensure!(objects == expected, "{objects:?}");

    // The token `cluster token` prints (the one tether stored; values cannot be
    // read back through the API, by design) works, with exactly the profile.
    let token = cluster_token(&m, env, &home, &sa)?;
    ensure!(!out.contains(&token), "add never prints the token");
    ensure!(can_i(env, &token, "create", "apps", "deployments", &target).await?);
    ensure!(can_i(env, &token, "watch", "", "pods", &target).await?);
    ensure!(!can_i(env, &token, "create", "apps", "deployments", &other).await?);
    ensure!(!can_i(env, &token, "create", "apps", "statefulsets", &target).await?);
    let out = m.ok(&[
        "cluster",
        "token",
        "--service-account",
        &sa,
        "-n",
        &home,
        "--kubeconfig",
        kc,
        "--ttl",
        "1h",
    ])?;
    let expiring = out.trim();
    ensure!(expiring != token && out.lines().count() == 1);
    ensure!(can_i(env, expiring, "get", "", "secrets", &target).await?);

    // Again: updates, no duplicates.
    let again = m.ok(&add)?;
    ensure!(
        again.contains("exists (made by `tether cluster add`), updating it"),
        "{again}"
    );
    ensure!(
        again.contains(&format!("namespace {home} ... exists")),
        "{again}"
    );
    ensure!(again.contains("0 created"), "{again}");
    ensure!(
        again.contains("token updated, CA updated")
            && again.contains(&format!("connector {id} ... updated")),
        "{again}"
    );
    assert_tested(&again, "[8/8]")?;
    let list = m.json(&["connector", "list", "--org", "default", "--project", "web"])?;
    ensure!(list["total"] == 1, "{list}");
    ensure!(m.secrets(&scope)?.len() == 2);
    let mut after = labelled(env, &sa)?;
    after.sort();
    ensure!(after == expected, "{after:?}");
    ensure!(
        m.connector(&id, &scope)?.context("still there")?["connector"]["tags"]
            ["tether.dev/created-namespace"]
            == "true"
    );

    // Rotate: a new token Secret, stored, tested; the old one deleted and dead.
    let rotate: Vec<&str> = ["cluster", "rotate-token", &name, "--kubeconfig", kc]
        .into_iter()
        .chain(scope)
        .collect();
    let out = m.ok(&rotate)?;
    assert_tested(&out, "[5/6]")?;
    ensure!(out.contains(&format!("deleted {home}/{sa}-token")), "{out}");
    let objects = labelled(env, &sa)?;
    let secrets_left: Vec<&String> = objects
        .iter()
        .filter(|o| o.starts_with("secret/"))
        .collect();
    ensure!(
        secrets_left.len() == 1 && secrets_left[0].starts_with(&format!("secret/{sa}-token-")),
        "exactly the new token Secret: {objects:?}"
    );
    let new_token = cluster_token(&m, env, &home, &sa)?;
    ensure!(new_token != token);
    ensure!(!out.contains(&new_token), "rotate never prints the token");
    ensure!(can_i(env, &new_token, "create", "apps", "deployments", &target).await?);
    wait_until_rejected(env, &token, &target).await?;
    let r = m.connector(&id, &scope)?.context("connector exists")?;
    ensure!(
        r["connector"]["tags"]["tether.dev/token-secret"].as_str()
            == Some(&secrets_left[0]["secret/".len()..]),
        "{r}"
    );

    // Remove: nothing left in the cluster, nor in tether.
    let remove: Vec<&str> = ["cluster", "remove", &name, "--kubeconfig", kc]
        .into_iter()
        .chain(scope)
        .collect();
    let out = m.ok(&remove)?;
    ensure!(
        out.contains(&format!(
            "namespace {home} was created by `tether cluster add` and is kept"
        )),
        "{out}"
    );
    ensure!(
        labelled(env, &sa)?.is_empty(),
        "left in the cluster: {:?}",
        labelled(env, &sa)?
    );
    ensure!(m.connector(&id, &scope)?.is_none(), "connector deleted");
    ensure!(
        m.secrets(&scope)?.is_empty(),
        "secrets deleted: {:?}",
        m.secrets(&scope)?
    );
    let (_, err) = m.fails(&remove)?;
    ensure!(err.contains("found nothing to remove"), "{err}");
    kubectl(env, &["delete", "namespace", &home, "--wait=false"])?;
    Ok(())
}

#[tokio::test]
async fn cluster_add_namespace_admin_is_tested_for_what_admin_grants() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let kc = env.kubeconfig.to_str().unwrap();
    let target = env.namespace("nsadmin").await;
    let name = unique("ops");
    let id = name.replace('-', "");
    let sa = format!("tether-{id}");
    let out = m.ok(&[
        "cluster",
        "add",
        "--kubeconfig",
        kc,
        "--name",
        &name,
        "--profile",
        "namespace-admin",
        "--target-namespace",
        &target,
    ])?;
    assert_tested(&out, "[8/8]")?;
    let r = m.connector(&id, &[])?.context("connector")?;
    let settings = &r["connector"]["spec"]["connectionTest"];
    ensure!(
        settings["profile"] == "custom" && settings["namespaces"] == serde_json::json!([target]),
        "{r}"
    );
    let objects = labelled(env, &sa)?;
    ensure!(
        objects.contains(&format!(
            "rolebinding.rbac.authorization.k8s.io/tether:kube-system:{sa}:namespace-admin"
        )),
        "{objects:?}"
    );
    m.ok(&["cluster", "remove", &id, "--kubeconfig", kc])?;
    ensure!(labelled(env, &sa)?.is_empty(), "{:?}", labelled(env, &sa)?);
    Ok(())
}

/// An exec plugin that hands out the test cluster's admin client certificate, as
/// cloud logins hand out short-lived credentials.
fn exec_kubeconfig(dir: &Path, env: &KubeEnv) -> Result<PathBuf> {
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"clientCertificateData": env.admin_cert_pem, "clientKeyData": env.admin_key_pem},
    });
    let json = dir.join("credential.json");
    std::fs::write(&json, credential.to_string())?;
    let script = dir.join("login.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec cat '{}'\n", json.display()),
    )?;
    Command::new("chmod").arg("+x").arg(&script).status()?;
    write_kubeconfig(
        dir,
        "exec.kubeconfig",
        env,
        &format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {}\n", script.display()),
    )
}

#[tokio::test]
async fn cluster_add_with_an_exec_kubeconfig_and_an_expiring_token() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let dir = tempfile::tempdir()?;
    let kc = exec_kubeconfig(dir.path(), env)?;
    let kc = kc.to_str().unwrap();
    let name = unique("ci");
    let id = name.replace('-', "");
    let sa = format!("tether-{id}");

    // import refuses this kubeconfig; `cluster add` uses it (on the operator's machine).
    let (_, err) = m.fails(&["connector", "import-kubeconfig", kc, "--name", &name])?;
    ensure!(err.contains("tether cluster add"), "{err}");
    let out = m.ok(&[
        "cluster",
        "add",
        "--kubeconfig",
        kc,
        "--name",
        &name,
        "--profile",
        "builds",
        "--token-ttl",
        "1h",
    ])?;
    ensure!(
        out.contains(
            "requesting a token valid for 3600s from the TokenRequest API ... done (expires at"
        ),
        "{out}"
    );
    ensure!(
        out.contains("rotate-token"),
        "says to rotate before expiry: {out}"
    );
    assert_tested(&out, "[8/8]")?;
    let r = m.connector(&id, &[])?.context("connector")?;
    let tags = &r["connector"]["tags"];
    ensure!(
        tags["tether.dev/token-ttl"] == "3600s" && tags["tether.dev/token-expires-at"].is_string(),
        "{r}"
    );
    ensure!(
        tags["tether.dev/service-account"] == format!("kube-system/{sa}").as_str(),
        "{r}"
    );
    ensure!(
        r["connector"]["spec"]["connectionTest"] == serde_json::json!({"profile": "builds"}),
        "{r}"
    );
    // No long-lived token of tether's is left for the account.
    let objects = labelled(env, &sa)?;
    ensure!(
        !objects.iter().any(|o| o.starts_with("secret/")),
        "{objects:?}"
    );
    ensure!(
        objects.contains(&format!(
            "clusterrolebinding.rbac.authorization.k8s.io/tether:kube-system:{sa}:builds"
        )),
        "{objects:?}"
    );

    let out = m.ok(&["cluster", "rotate-token", &id, "--kubeconfig", kc])?;
    ensure!(
        out.contains("requesting a new token valid for 3600s"),
        "{out}"
    );
    ensure!(
        out.contains("TokenRequest tokens cannot be revoked"),
        "{out}"
    );
    assert_tested(&out, "[5/6]")?;

    m.ok(&["cluster", "remove", &name, "--kubeconfig", kc])?;
    ensure!(labelled(env, &sa)?.is_empty(), "{:?}", labelled(env, &sa)?);
    ensure!(m.connector(&id, &[])?.is_none());
    ensure!(m.secrets(&[])?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_failed_add_says_what_was_done_and_remove_cleans_it_up() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let kc = env.kubeconfig.to_str().unwrap();
    let name = unique("half");
    let id = name.replace('-', "");
    let sa = format!("tether-{id}");
    let target = env.namespace("half-target").await;
    // A scope that does not exist: refused before anything is touched.
    let (_, err) = m.fails(&[
        "cluster",
        "add",
        "--kubeconfig",
        kc,
        "--name",
        &name,
        "--org",
        "nope",
    ])?;
    ensure!(err.contains("step 1/8") && err.contains("nope"), "{err}");
    ensure!(
        err.contains("Nothing had been changed yet") && !err.contains("cluster remove"),
        "{err}"
    );
    ensure!(labelled(env, &sa)?.is_empty());

    // A secret of the name `add` wants, belonging to someone else.
    let value = tempfile::NamedTempFile::new()?;
    std::fs::write(value.path(), "someone else's token")?;
    let value = value.path().to_str().unwrap();
    m.ok(&[
        "secret",
        "create",
        "--name",
        "theirs",
        "--identifier",
        &format!("{id}_token"),
        "--value-file",
        value,
    ])?;

    let (stdout, err) = m.fails(&[
        "cluster",
        "add",
        "--kubeconfig",
        kc,
        "--name",
        &name,
        "--target-namespace",
        &target,
    ])?;
    ensure!(
        stdout.contains("[6/8] storing secrets") && stdout.trim_end().ends_with("failed"),
        "{stdout}"
    );
    ensure!(err.contains("step 6/8 (storing secrets"), "{err}");
    ensure!(err.contains("tether does not overwrite it"), "{err}");
    ensure!(
        err.contains(&format!(
            "Already done: created ServiceAccount kube-system/{sa}"
        )),
        "{err}"
    );
    ensure!(
        err.contains(&format!("tether cluster remove {id} --kubeconfig {kc}")),
        "{err}"
    );
    ensure!(err.contains("again is safe"), "{err}");
    ensure!(!labelled(env, &sa)?.is_empty());

    // No connector was stored; remove finds the account by its labels.
    let out = m.ok(&["cluster", "remove", &name, "--kubeconfig", kc])?;
    ensure!(
        out.contains("no connector; looking for what a partial"),
        "{out}"
    );
    ensure!(
        out.contains(&format!("ServiceAccount kube-system/{sa}")),
        "{out}"
    );
    ensure!(labelled(env, &sa)?.is_empty(), "{:?}", labelled(env, &sa)?);
    ensure!(
        m.secrets(&[])? == [format!("{id}_token")],
        "someone else's secret is kept"
    );
    Ok(())
}

/// Issue 10 item 8 through the CLI: a kubeconfig whose client certificate is
/// X.509 version 1 (`openssl x509 -req` without extensions, which kubectl
/// accepts) works for `cluster add`, `rotate-token` and `remove`, and
/// `connector import-kubeconfig` makes a ClientKeyCert connector of it that a
/// real delegate tests SUCCESS.
#[tokio::test]
async fn an_x509_v1_client_certificate_kubeconfig_works_for_every_cluster_command() -> Result<()> {
    use base64::Engine as _;
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = env.v1_client_cert("v1-operator", "system:masters");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kc = write_kubeconfig(
        dir.path(),
        "v1.kubeconfig",
        env,
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert),
            b64(&key)
        ),
    )?;
    let kc = kc.to_str().unwrap();

    let name = unique("v1cert");
    let id = name.replace('-', "");
    let out = m.ok(&[
        "connector",
        "import-kubeconfig",
        kc,
        "--name",
        &name,
        "--identifier",
        &id,
    ])?;
    ensure!(out.contains(&format!("connector/{id} created")), "{out}");
    let r = m.connector(&id, &[])?.context("connector")?;
    ensure!(
        r["connector"]["spec"]["credential"]["spec"]["auth"]["type"] == "ClientKeyCert",
        "{r}"
    );
    let test = m.run(&["connector", "test", &id, "-o", "json"]);
    let report: Value = serde_json::from_slice(&test.stdout)
        .with_context(|| String::from_utf8_lossy(&test.stderr).to_string())?;
    ensure!(report["status"] == "SUCCESS", "{report:#}");
    ensure!(report["identity"]["user"] == "v1-operator", "{report:#}");
    m.ok(&["connector", "delete", &id])?;

    let name = unique("v1add");
    let id = name.replace('-', "");
    let sa = format!("tether-{id}");
    let out = m.ok(&["cluster", "add", "--kubeconfig", kc, "--name", &name])?;
    assert_tested(&out, "[8/8]")?;
    let out = m.ok(&["cluster", "rotate-token", &id, "--kubeconfig", kc])?;
    assert_tested(&out, "[5/6]")?;
    m.ok(&["cluster", "remove", &name, "--kubeconfig", kc])?;
    ensure!(labelled(env, &sa)?.is_empty(), "{:?}", labelled(env, &sa)?);
    ensure!(m.connector(&id, &[])?.is_none());
    Ok(())
}

/// Issue 10 item 5: a kubeconfig from elsewhere may name any one-line secret
/// of the operator's machine as its `tokenFile` (here the manager's own key
/// file and admin token), which `import-kubeconfig` would store and send to
/// the kubeconfig's server. A tokenFile is read only with
/// `--allow-token-file`; without it nothing is read or stored.
#[tokio::test]
async fn import_kubeconfig_reads_a_token_file_only_when_allowed() -> Result<()> {
    let env = KubeEnv::get();
    let m = Manager::start()?;
    let dir = tempfile::tempdir()?;
    for file in ["kek", "admin-token"] {
        let path = m.server.data_dir.join(file);
        let content = std::fs::read_to_string(&path)?;
        let kc = write_kubeconfig(
            dir.path(),
            &format!("{file}.kubeconfig"),
            env,
            &format!("    tokenFile: {}\n", path.display()),
        )?;
        let (_, err) = m.fails(&[
            "connector",
            "import-kubeconfig",
            kc.to_str().unwrap(),
            "--name",
            "stolen",
        ])?;
        ensure!(
            err.contains(&path.display().to_string()) && err.contains("--allow-token-file"),
            "{file}: {err}"
        );
        ensure!(!err.contains(content.trim()), "{file}: quoted: {err}");
        ensure!(m.secrets(&[])?.is_empty(), "{file}: nothing stored");
        ensure!(m.connector("stolen", &[])?.is_none());
    }
    // A token file the operator means: imported with the flag.
    let token_file = dir.path().join("sa.token");
    std::fs::write(&token_file, "a-static-token-of-this-cluster\n")?;
    let kc = write_kubeconfig(
        dir.path(),
        "sa.kubeconfig",
        env,
        &format!("    tokenFile: {}\n", token_file.display()),
    )?;
    let out = m.ok(&[
        "connector",
        "import-kubeconfig",
        kc.to_str().unwrap(),
        "--name",
        "meant",
        "--allow-token-file",
    ])?;
    ensure!(out.contains("connector/meant created"), "{out}");
    Ok(())
}
