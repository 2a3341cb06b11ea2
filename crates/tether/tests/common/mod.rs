//! Shared setup for tests that run the real `tether` binary.
#![allow(dead_code)]

pub mod deploy;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use tether_testenv::{TestDatabase, TetherServer};

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tether"))
}

/// One server per storage backend: SQLite always, PostgreSQL when configured.
pub async fn servers() -> Vec<(&'static str, TetherServer)> {
    let mut out = vec![(
        "sqlite",
        TetherServer::start(bin(), &[]).expect("start sqlite server"),
    )];
    if let Some(db) = TestDatabase::create().await.expect("test database") {
        out.push((
            "postgres",
            TetherServer::start(bin(), &["--database-url", &db.url])
                .expect("start postgres server"),
        ));
    }
    out
}

/// Runs a client command against `server` as `token`, feeding `stdin`.
pub fn cli(server: &TetherServer, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = server.cli(bin(), token);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tether");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().expect("wait for tether")
}

/// Like [`cli`] but fails the test, with both streams, when the command fails.
pub fn cli_ok(server: &TetherServer, args: &[&str], stdin: Option<&str>) -> String {
    let out = cli(server, &server.admin_token, args, stdin);
    assert!(
        out.status.success(),
        "tether {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The secrets the fixtures reference, with values unique enough to grep for.
pub const SECRETS: &[(&str, &str, &str)] = &[
    // (scope flags, identifier, value)
    ("project", "sa_token", "value-sa-token-7f3a9c"),
    ("org", "cluster_ca", "value-cluster-ca-51be07"),
    ("account", "admin_password", "value-admin-password-c0ffee"),
    ("project", "client_cert", "value-client-cert-2b2b2b"),
    ("project", "client_key", "value-client-key-9d9d9d"),
    ("project", "key_passphrase", "value-passphrase-4e4e4e"),
    ("project", "oidc_client_id", "value-oidc-client-id-1a1a1a"),
    ("project", "oidc_password", "value-oidc-password-6c6c6c"),
    ("project", "oidc_user", "value-oidc-user-8f8f8f"),
    ("project", "oidc_client_secret", "value-oidc-secret-3d3d3d"),
];

/// Creates org `default` and its project `web`.
pub fn seed_scopes(server: &TetherServer) {
    cli_ok(
        server,
        &["org", "create", "Default", "--identifier", "default"],
        None,
    );
    cli_ok(
        server,
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
}

/// Creates org `default`, project `web` and every secret of [`SECRETS`].
pub fn seed(server: &TetherServer) {
    seed_scopes(server);
    for (level, id, value) in SECRETS {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        // The fixtures are connectors of project web: secrets of the org and
        // the account are granted to it (without a grant it may not use them).
        match *level {
            "project" => args.extend(["--org", "default", "--project", "web"]),
            "org" => args.extend(["--org", "default", "--usable-from", "project/default/web"]),
            _ => args.extend(["--usable-from", "project/default/web"]),
        }
        cli_ok(server, &args, Some(value));
    }
}

pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub const FIXTURES: &[(&str, &str)] = &[
    ("sa.yaml", "prod_cluster"),
    ("userpass.yaml", "legacy"),
    ("clientcert.yaml", "edge"),
    ("oidc.json", "oidc_cluster"),
    ("inherit.yaml", "in_cluster"),
];

/// Secrets `cluster_ca` and `cluster_token` (plus `extra` secrets, by
/// identifier and value) and a connector `cluster` to the test cluster with
/// that service-account token, run by delegates tagged `selector`.
pub fn cluster_connector(
    server: &TetherServer,
    env: &tether_testenv::KubeEnv,
    token: &str,
    selector: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    cluster_connector_of(server, env, token, selector, extra, None)
}

/// [`cluster_connector`] for a connector of project `default/web` (see
/// [`seed_scopes`]), its account secrets granted to that project.
pub fn project_cluster_connector(
    server: &TetherServer,
    env: &tether_testenv::KubeEnv,
    token: &str,
    selector: &str,
) -> anyhow::Result<()> {
    cluster_connector_of(server, env, token, selector, &[], Some(("default", "web")))
}

fn cluster_connector_of(
    server: &TetherServer,
    env: &tether_testenv::KubeEnv,
    token: &str,
    selector: &str,
    extra: &[(&str, &str)],
    project: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let base = [
        ("cluster_ca", env.ca_pem.as_str()),
        ("cluster_token", token),
    ];
    let grant = project.map(|(o, p)| format!("project/{o}/{p}"));
    for (id, value) in base.iter().chain(extra) {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        if let Some(g) = &grant {
            args.extend(["--usable-from", g]);
        }
        let out = cli(server, &server.admin_token, &args, Some(value));
        anyhow::ensure!(
            out.status.success(),
            "secret {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let connector = format!(
        "connector:\n  name: cluster\n  identifier: cluster\n{}  type: K8sCluster\n  spec:\n    delegateSelectors: [{selector}]\n    credential:\n      type: ManualConfig\n      spec:\n        masterUrl: {}\n        auth:\n          type: ServiceAccount\n          spec:\n            serviceAccountTokenRef: account.cluster_token\n            caCertRef: account.cluster_ca\n",
        project
            .map(|(o, p)| format!("  orgIdentifier: {o}\n  projectIdentifier: {p}\n"))
            .unwrap_or_default(),
        env.url
    );
    let out = cli(
        server,
        &server.admin_token,
        &["connector", "apply", "-f", "-"],
        Some(&connector),
    );
    anyhow::ensure!(
        out.status.success(),
        "connector: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits (up to a minute) until a delegate named `name` (any, when `None`)
/// is connected. No event tells a client that a delegate connected: this
/// polls the list.
pub fn wait_delegate_connected(server: &TetherServer, name: Option<&str>) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = cli(
            server,
            &server.admin_token,
            &["delegate", "list", "-o", "json"],
            None,
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if list.as_array().is_some_and(|a| {
            a.iter()
                .any(|d| d["connected"] == true && name.is_none_or(|n| d["name"] == n))
        }) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "delegate {} did not connect",
            name.unwrap_or("(any)")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
