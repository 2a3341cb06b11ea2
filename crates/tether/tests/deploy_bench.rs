//! Benchmark (prints figures, asserts nothing about speed; `#[ignore]`d so a
//! plain `cargo test` skips it):
//!
//!   cargo test -p tether --test deploy_bench -- --ignored --nocapture
//!
//! `tether deploy apply` of N objects (TETHER_BENCH_OBJECTS, default 200:
//! TETHER_BENCH_DEPLOYMENTS Deployments, default 10, of one busybox pod each
//! with a readiness probe, the rest ConfigMaps), through the real manager and
//! a real delegate, until steady; against `kubectl apply --server-side` of the
//! same manifests followed by `kubectl rollout status` of each Deployment,
//! both on the test cluster's node, in the same run, alternating which goes
//! first, each in a fresh namespace (TETHER_BENCH_ROUNDS, default 3).

mod common;

use common::deploy::start;

use std::time::Instant;

use anyhow::{ensure, Result};
use tether_testenv::{service_account_token, KubeEnv};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// All the objects, and the Deployments alone.
fn manifests(ns: &str, objects: usize, deployments: usize) -> (String, String) {
    let mut deps = String::new();
    for i in 0..deployments {
        deps.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{i}\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: d{i}}}\n  template:\n    metadata:\n      labels: {{app: d{i}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: tether-test/busybox:1\n        command: [sleep, '3600']\n        readinessProbe:\n          exec: {{command: ['true']}}\n          periodSeconds: 1\n"
        ));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn deploy_apply_against_kubectl_apply_and_rollout_status() -> Result<()> {
    let env = KubeEnv::get();
    env.node();
    let objects = env_num("TETHER_BENCH_OBJECTS", 200);
    let deployments = env_num("TETHER_BENCH_DEPLOYMENTS", 10).min(objects);
    let rounds = env_num("TETHER_BENCH_ROUNDS", 3);
    let admin = env.admin_client().await;
    let home = env.namespace("bench-sa").await;
    let token = service_account_token(&admin, &home, "deployer").await?;
    let s = start(env, &token)?;
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let tns = env.namespace("bench-tether").await;
        let kns = env.namespace("bench-kubectl").await;
        kubectl(
            env,
            &[
                "create",
                "rolebinding",
                "deployer-admin",
                "--clusterrole=admin",
                &format!("--serviceaccount={home}:deployer"),
                "-n",
                &tns,
            ],
        )?;
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
            ]);
            ensure!(code == 0, "exit {code}\n{out}\n{err}");
            Ok(t0.elapsed().as_secs_f64())
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
        for ns in [&tns, &kns] {
            let _ = env
                .kubectl()
                .args(["delete", "namespace", ns, "--wait=false"])
                .output();
        }
        let ratio = tether / k_total;
        ratios.push(ratio);
        println!(
            "figure: round {round}: {objects} objects ({deployments} Deployments): tether deploy apply {tether:.2}s; kubectl apply --server-side {k_apply:.2}s + rollout status = {k_total:.2}s; ratio tether/kubectl {ratio:.2}"
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "figure: median ratio tether/kubectl over {rounds} round(s): {:.2} (tether: debug build of the binary under test, through manager and delegate, including pre-flight: discovery, access reviews and a server-side dry run of every object, and the release record)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}
