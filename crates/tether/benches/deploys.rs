//! Deploy figures (issue 13), printed, never asserted; on the test cluster's
//! node, through the real manager and a real delegate:
//!
//! (a) from a Deployment becoming steady (as `kubectl rollout status` decides
//!     it, seen by a watch of this process) to the report of `tether deploy
//!     apply` (goal p50 <= 1 s);
//! (b) from the first failing pod event (ErrImagePull, seen by a watch of the
//!     namespace's events) to the failure report (goal <= 10 s);
//! (c) `tether deploy apply` of N objects (TETHER_BENCH_OBJECTS, default 200:
//!     TETHER_BENCH_DEPLOYMENTS Deployments, default 10, of one busybox pod
//!     each with a readiness probe, the rest ConfigMaps) until steady, against
//!     `kubectl apply --server-side` of the same manifests followed by
//!     `kubectl rollout status` of each Deployment, in the same run,
//!     alternating which goes first, each in a fresh namespace
//!     (TETHER_BENCH_ROUNDS, default 3), with the ratio.
//!
//! `scripts/kube-testenv up`, export its env, then
//! `cargo bench --workspace --bench deploys --profile dev` (the dev profile
//! when a release build is too slow for the machine; the figures say which
//! profile the binary under test was built with). TETHER_BENCH_LATENCY_ROUNDS
//! (default 5) sets the rounds of (a) and (b); TETHER_BENCH_ONLY=a,b,c picks.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use futures_util::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::Value;
use tether_testenv::{service_account_token, KubeEnv};

use common::deploy::{start, Setup};

const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wanted(part: &str) -> bool {
    std::env::var("TETHER_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p.trim() == part))
}

/// One Deployment of one busybox pod with a readiness probe (so "available"
/// means ready, and tether watches no extra seconds).
fn deployment(ns: &str, name: &str, image: &str) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: {image}\n        imagePullPolicy: IfNotPresent\n        command: [sleep, '3600']\n        readinessProbe:\n          exec: {{command: ['true']}}\n          periodSeconds: 1\n"
    )
}

/// All the objects, and the Deployments alone.
fn manifests(ns: &str, objects: usize, deployments: usize) -> (String, String) {
    let mut deps = String::new();
    for i in 0..deployments {
        deps.push_str(&deployment(ns, &format!("d{i}"), "tether-test/busybox:1"));
    }
    let mut all = deps.clone();
    for i in 0..objects.saturating_sub(deployments) {
        all.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: {ns}\ndata:\n  k: v{i}\n"
        ));
    }
    (all, deps)
}

fn kubectl(env: &KubeEnv, args: &[&str]) -> Result<()> {
    let out = env.kubectl().args(args).output()?;
    ensure!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn bind_admin(env: &KubeEnv, home: &str, ns: &str) -> Result<()> {
    kubectl(
        env,
        &[
            "create",
            "rolebinding",
            "deployer-admin",
            "--clusterrole=admin",
            &format!("--serviceaccount={home}:deployer"),
            "-n",
            ns,
        ],
    )
}

fn drop_namespace(env: &KubeEnv, ns: &str) {
    let _ = env
        .kubectl()
        .args(["delete", "namespace", ns, "--wait=false"])
        .output();
}

/// `tether deploy apply -o json` on a thread: the instant the report (the
/// last line, after the events) was printed, the report, the exit code.
fn deploy_timed(
    s: &Setup,
    file: &str,
    ns: &str,
    release: &str,
) -> std::thread::JoinHandle<Result<(Instant, Value, i32)>> {
    let mut cmd = s.server.cli(common::bin(), &s.server.admin_token);
    cmd.args([
        "deploy",
        "apply",
        "--connector",
        "cluster",
        "-f",
        file,
        "--namespace",
        ns,
        "--release",
        release,
        "--timeout",
        "5m",
        "-o",
        "json",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    std::thread::spawn(move || {
        let mut child = cmd.spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let mut report = None;
        for line in BufReader::new(out).lines() {
            let line = line?;
            let at = Instant::now();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v.get("outcome").is_some() {
                    report = Some((at, v));
                }
            }
        }
        let code = child.wait()?.code().unwrap_or(-1);
        let (at, v) = report.context("no report printed")?;
        Ok((at, v, code))
    })
}

/// `kubectl rollout status`'s rule: the controller saw this generation, every
/// replica is updated and available, no old one is left.
fn rolled_out(d: &Deployment) -> bool {
    let (Some(st), Some(generation)) = (d.status.as_ref(), d.metadata.generation) else {
        return false;
    };
    let want = d.spec.replicas.unwrap_or(1);
    st.observed_generation.unwrap_or(0) >= generation
        && st.updated_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
}

/// The instant this process's own watch first sees `name` rolled out.
async fn steady_seen(api: Api<Deployment>, name: String) -> Result<Instant> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    while let Some(d) = stream.try_next().await? {
        if rolled_out(&d) {
            return Ok(Instant::now());
        }
    }
    anyhow::bail!("the watch of {name} ended")
}

/// The instant this process's own watch first sees a pod's pull failure.
async fn pull_failure_seen(api: Api<Event>) -> Result<Instant> {
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects());
    while let Some(e) = stream.try_next().await? {
        let pod = e.involved_object.kind.as_deref() == Some("Pod");
        let message = e.message.unwrap_or_default();
        if pod && (message.contains("ErrImagePull") || message.contains("Failed to pull image")) {
            return Ok(Instant::now());
        }
    }
    anyhow::bail!("the event watch ended")
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.0} ms, min {:.0} ms, max {:.0} ms over {} round(s)",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

/// (a) and (b).
async fn latencies(env: &KubeEnv, s: &Setup, home: &str, rounds: usize) -> Result<()> {
    let admin = env.admin_client().await;
    let (mut steady, mut failing) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if wanted("a") {
            let ns = env.namespace("bench-steady").await;
            bind_admin(env, home, &ns)?;
            let file = s.write(
                &format!("steady{round}.yaml"),
                &deployment(&ns, "web", "tether-test/busybox:1"),
            );
            let seen = tokio::spawn(steady_seen(
                Api::namespaced(admin.clone(), &ns),
                "web".into(),
            ));
            let (reported, report, code) = tokio::task::spawn_blocking({
                let h = deploy_timed(s, &file, &ns, "web");
                move || h.join().expect("deploy thread")
            })
            .await??;
            ensure!(code == 0, "steady deploy exit {code}: {report}");
            let seen = seen.await??;
            let d = millis(reported.saturating_duration_since(seen));
            println!("figure: (a) round {round}: Deployment steady -> tether's report {d:.0} ms");
            steady.push(d);
            drop_namespace(env, &ns);
        }
        if wanted("b") {
            let ns = env.namespace("bench-fail").await;
            bind_admin(env, home, &ns)?;
            let file = s.write(
                &format!("fail{round}.yaml"),
                &deployment(&ns, "broken", "tether-test/no-such-image:1"),
            );
            let seen = tokio::spawn(pull_failure_seen(Api::namespaced(admin.clone(), &ns)));
            let (reported, report, code) = tokio::task::spawn_blocking({
                let h = deploy_timed(s, &file, &ns, "broken");
                move || h.join().expect("deploy thread")
            })
            .await??;
            let reason = report["problems"][0]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ensure!(
                code == 1 && reason == "IMAGE_PULL",
                "failing deploy: exit {code}: {report}"
            );
            let seen = seen.await??;
            let d = millis(reported.saturating_duration_since(seen));
            println!("figure: (b) round {round}: first ErrImagePull event -> tether's failure report {d:.0} ms");
            failing.push(d);
            drop_namespace(env, &ns);
        }
    }
    if !steady.is_empty() {
        println!(
            "figure: (a) steady -> report: {} (goal p50 <= 1000 ms; {PROFILE} build)",
            summary(steady)
        );
    }
    if !failing.is_empty() {
        println!(
            "figure: (b) first failing pod event -> report: {} (goal <= 10000 ms; {PROFILE} build)",
            summary(failing)
        );
    }
    Ok(())
}

/// Where a deploy's time went, from its events' times (`-o json` lines):
/// pre-flight (to the dry run passing), apply (to the last object applied),
/// steady (to the end).
fn phases(out: &str) -> String {
    let events: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("kind").is_some() && v.get("atMs").is_some())
        .collect();
    let at = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .filter(|e| pred(e))
            .filter_map(|e| e["atMs"].as_i64())
            .next_back()
    };
    let first = events.first().and_then(|e| e["atMs"].as_i64());
    let dry = at(&|e| {
        e["kind"] == "preflight" && e["message"].as_str().is_some_and(|m| m.contains("dry run"))
    });
    let applied = at(&|e| e["kind"] == "applied");
    let end = events.last().and_then(|e| e["atMs"].as_i64());
    match (first, dry, applied, end) {
        (Some(a), Some(b), Some(c), Some(d)) => format!(
            "pre-flight {:.2}s, release + apply {:.2}s, steady {:.2}s",
            (b - a) as f64 / 1000.0,
            (c - b) as f64 / 1000.0,
            (d - c) as f64 / 1000.0
        ),
        _ => "unknown (events missing)".into(),
    }
}

/// (c).
fn against_kubectl(
    env: &KubeEnv,
    s: &Setup,
    home: &str,
    rounds: usize,
    rt: &tokio::runtime::Handle,
) -> Result<()> {
    let objects = env_num("TETHER_BENCH_OBJECTS", 200);
    let deployments = env_num("TETHER_BENCH_DEPLOYMENTS", 10).min(objects);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let tns = rt.block_on(env.namespace("bench-tether"));
        let kns = rt.block_on(env.namespace("bench-kubectl"));
        bind_admin(env, home, &tns)?;
        let (t_all, _) = manifests(&tns, objects, deployments);
        let (k_all, _) = manifests(&kns, objects, deployments);
        let t_file = s.write(&format!("t{round}.yaml"), &t_all);
        let k_file = s.write(&format!("k{round}.yaml"), &k_all);
        let run_tether = || -> Result<f64> {
            let t0 = Instant::now();
            let (code, out, err) = s.deploy(&[
                "-f",
                &t_file,
                "--namespace",
                &tns,
                "--release",
                "bench",
                "--timeout",
                "10m",
                "-o",
                "json",
            ]);
            ensure!(code == 0, "exit {code}\n{out}\n{err}");
            let total = t0.elapsed().as_secs_f64();
            println!(
                "figure: (c) round {round}: tether's phases: {}",
                phases(&out)
            );
            Ok(total)
        };
        let run_kubectl = || -> Result<(f64, f64)> {
            let t0 = Instant::now();
            kubectl(env, &["apply", "--server-side", "-f", &k_file])?;
            let applied = t0.elapsed().as_secs_f64();
            // kubectl 1.20 follows one workload per `rollout status`, as
            // Harness runs it: one after the other.
            for i in 0..deployments {
                kubectl(
                    env,
                    &[
                        "rollout",
                        "status",
                        "--timeout=10m",
                        "-n",
                        &kns,
                        &format!("deployment/d{i}"),
                    ],
                )?;
            }
            Ok((applied, t0.elapsed().as_secs_f64()))
        };
        let (tether, (k_apply, k_total)) = if round % 2 == 0 {
            let t = run_tether()?;
            (t, run_kubectl()?)
        } else {
            let k = run_kubectl()?;
            (run_tether()?, k)
        };
        // Gone before the next round, so its terminating pods do not slow
        // whichever goes first there.
        kubectl(env, &["delete", "namespace", &tns, &kns, "--timeout=5m"])?;
        let ratio = tether / k_total;
        ratios.push(ratio);
        println!(
            "figure: (c) round {round}: {objects} objects ({deployments} Deployments): tether deploy apply {tether:.2}s; kubectl apply --server-side {k_apply:.2}s + rollout status = {k_total:.2}s; ratio tether/kubectl {ratio:.2}"
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "figure: (c) median ratio tether/kubectl over {rounds} round(s): {:.2} (tether: {PROFILE} build of the binary under test, through manager and delegate, including pre-flight: discovery, access reviews and a server-side dry run of every object, and the release record)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let env = KubeEnv::get();
    env.node();
    let (home, token) = rt.block_on(async {
        let admin = env.admin_client().await;
        let home = env.namespace("bench-sa").await;
        let token = service_account_token(&admin, &home, "deployer").await;
        (home, token)
    });
    let s = start(env, &token?)?;
    if wanted("a") || wanted("b") {
        rt.block_on(latencies(
            env,
            &s,
            &home,
            env_num("TETHER_BENCH_LATENCY_ROUNDS", 5),
        ))?;
    }
    if wanted("c") {
        against_kubectl(
            env,
            &s,
            &home,
            env_num("TETHER_BENCH_ROUNDS", 3),
            rt.handle(),
        )?;
    }
    drop_namespace(env, &home);
    Ok(())
}
