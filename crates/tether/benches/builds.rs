//! `tether build run` against `kubectl run --rm -i --restart=Never` of the
//! same pod, in the same run, on the test cluster's node: time to the first
//! log line and in all, median of a few rounds, and the ratio.
//!
//! `scripts/kube-testenv up`, export its env, then
//! `cargo bench --workspace --bench builds --profile dev`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tether_testenv::{service_account_token, KubeEnv, TetherServer};

const IMAGE: &str = "tether-test/busybox:1";
const ROUNDS: usize = 5;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tether"))
}

/// Runs `cmd`, returns (time to the first stdout line, total).
fn timed(mut cmd: Command) -> Result<(Duration, Duration)> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let out = child.stdout.take().context("stdout")?;
    let mut first = None;
    for l in BufReader::new(out).lines() {
        let l = l?;
        if first.is_none() && l.contains("first") {
            first = Some(start.elapsed());
        }
    }
    let status = child.wait()?;
    ensure!(status.success(), "{cmd:?}: {status}");
    Ok((first.context("no first line")?, start.elapsed()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn cli(server: &TetherServer, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = server.cli(bin(), &server.admin_token);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(s) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), s.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "tether {args:?}: {}", out.status);
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let admin = env.admin_client().await;
    let ns = env.namespace("bench-build").await;
    let token = service_account_token(&admin, &ns, "builder").await?;
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("builder-edit".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "edit".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "builder".into(),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await?;
    let server = TetherServer::start(bin(), &["--retest-interval", "0", "--test-on-change=false"])?;
    let dtoken = cli(
        &server,
        &["delegate", "token", "create", "--name", "d"],
        None,
    )?;
    let mut delegate = Command::new(bin())
        .args(["delegate", "run", "--manager", &server.url, "--name", "d1"])
        .env("TETHER_DELEGATE_TOKEN", dtoken.trim())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    for (id, value) in [
        ("cluster_ca", env.ca_pem.as_str()),
        ("cluster_token", token.as_str()),
    ] {
        cli(
            &server,
            &["secret", "create", "--name", id, "--identifier", id],
            Some(value),
        )?;
    }
    let connector = format!(
        "connector:\n  name: cluster\n  identifier: cluster\n  type: K8sCluster\n  spec:\n    credential:\n      type: ManualConfig\n      spec:\n        masterUrl: {}\n        auth:\n          type: ServiceAccount\n          spec:\n            serviceAccountTokenRef: account.cluster_token\n            caCertRef: account.cluster_ca\n",
        env.url
    );
    cli(
        &server,
        &["connector", "apply", "-f", "-"],
        Some(&connector),
    )?;
    // Wait for the delegate (no event says it connected: poll the list).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cli(&server, &["delegate", "list", "-o", "json"], None)?.contains("\"connected\": true")
        && !cli(&server, &["delegate", "list", "-o", "json"], None)?.contains("\"connected\":true")
    {
        ensure!(Instant::now() < deadline, "the delegate did not connect");
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = "echo first; echo second";
    let (mut t_first, mut t_total, mut k_first, mut k_total) = (vec![], vec![], vec![], vec![]);
    for i in 0..ROUNDS {
        let mut t = server.cli(bin(), &server.admin_token);
        t.args([
            "build",
            "run",
            "--connector",
            "cluster",
            "--namespace",
            &ns,
            "--image",
            IMAGE,
            "--",
            "sh",
            "-c",
            script,
        ]);
        let (f, a) = timed(t)?;
        t_first.push(f);
        t_total.push(a);
        let mut k = env.kubectl();
        k.args([
            "run",
            &format!("bench-{i}"),
            "--rm",
            "-i",
            "--restart=Never",
            "--image",
            IMAGE,
            "-n",
            &ns,
            "--",
            "sh",
            "-c",
            script,
        ]);
        let (f, a) = timed(k)?;
        k_first.push(f);
        k_total.push(a);
    }
    let (tf, tt, kf, kt) = (
        median(t_first),
        median(t_total),
        median(k_first),
        median(k_total),
    );
    println!("builds: median of {ROUNDS} rounds, same pod (busybox, `{script}`), same node");
    println!("  tether build run:         first line {tf:>8.2?}   total {tt:>8.2?}   (pod deleted and gone before exit)");
    println!("  kubectl run --rm -i:      first line {kf:>8.2?}   total {kt:>8.2?}");
    println!(
        "  ratio tether/kubectl:     first line {:.2}        total {:.2}",
        tf.as_secs_f64() / kf.as_secs_f64(),
        tt.as_secs_f64() / kt.as_secs_f64()
    );
    let _ = delegate.kill();
    let _ = delegate.wait();
    Ok(())
}
