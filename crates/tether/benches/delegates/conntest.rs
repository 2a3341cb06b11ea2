//! The benchmark of the connection-test issue: one test end to end (REST API ->
//! manager -> a real delegate -> the real Kubernetes control plane -> back) against
//! the same test run directly in this process (`tether_kube::connection_test::run`),
//! interleaved in one run; then tests per second through one delegate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api as KubeApi, Client};
use secrecy::SecretString;
use serde_json::{json, Value};
use tether_domain::ConnectionTestSettings;
use tether_kube::connection_test::{run as run_direct, ResolvedAuth, TestInput, TestTarget};
use tether_testenv::KubeEnv;

use crate::dispatch::start_agent;
use crate::manager::{memory_kib, mib, percentile, sorted, Manager};

pub struct Params {
    pub rounds: usize,
    pub concurrency: usize,
    pub throughput_window: Duration,
}

pub async fn run(manager: &Manager, p: Params) -> Result<()> {
    println!(
        "\n## Connection test: through manager + one real delegate vs. directly in one process"
    );
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("bench-ct").await;
    let sa_token = service_account_token(&admin, &ns, "deployer").await?;
    bind_cluster_admin(&admin, &ns, "deployer").await?;

    let api = manager.api();
    api.post(
        "/api/v1/secrets",
        &json!({"name": "bench_sa_token", "identifier": "bench_sa_token", "value": sa_token}),
    )
    .await?;
    api.post(
        "/api/v1/secrets",
        &json!({"name": "bench_ca", "identifier": "bench_ca", "value": env.ca_pem}),
    )
    .await?;
    api.post(
        "/api/v1/connectors",
        &json!({"connector": {
            "name": "bench cluster",
            "identifier": "bench_cluster",
            "type": "K8sCluster",
            "spec": {
                "delegateSelectors": ["bench"],
                "connectionTest": {"namespaces": [ns]},
                "credential": {"type": "ManualConfig", "spec": {
                    "masterUrl": env.url,
                    "auth": {"type": "ServiceAccount", "spec": {
                        "serviceAccountTokenRef": "bench_sa_token",
                        "caCertRef": "bench_ca"
                    }}
                }}
            }
        }}),
    )
    .await?;
    let agent = start_agent(manager, &api, "bench-agent", "bench").await?;
    let direct_input = TestInput {
        target: TestTarget::Manual {
            master_url: env.url.clone(),
            ca_pem: Some(env.ca_pem.clone()),
            auth: ResolvedAuth::ServiceAccountToken(SecretString::from(sa_token.clone())),
        },
        settings: ConnectionTestSettings {
            namespaces: vec![ns.clone()],
            ..Default::default()
        },
        stage_timeout: Duration::from_secs(10),
        on_stage: Default::default(),
    };
    let e2e = || async {
        let t = Instant::now();
        let v: Value = api
            .post("/api/v1/connectors/bench_cluster/test", &json!({}))
            .await?;
        let el = t.elapsed();
        ensure!(
            v["status"] == "SUCCESS",
            "the end-to-end test did not succeed: {}",
            v["errorSummary"]
        );
        ensure!(
            v["permissions"].as_array().is_some_and(|a| !a.is_empty()),
            "no permissions checked"
        );
        Ok::<_, anyhow::Error>(el)
    };
    let direct = || async {
        let t = Instant::now();
        let r = run_direct(direct_input.clone()).await;
        let el = t.elapsed();
        ensure!(
            r.status.as_str() == "SUCCESS",
            "the direct test did not succeed: {:?}",
            r.error_summary
        );
        Ok::<_, anyhow::Error>(el)
    };
    // The floor the test is measured against (issue 10, item 11): a fresh
    // client (so TCP + TLS), GET /version, and one SelfSubjectRulesReview per
    // namespace the test checks.
    let floor = || async {
        let t = Instant::now();
        let client = tether_kube::ClusterAccess::new(
            env.url.clone(),
            tether_kube::Credentials::Token(SecretString::from(sa_token.clone())),
        )
        .with_ca(env.ca_pem.clone())
        .client()?;
        client.apiserver_version().await?;
        for ns in &direct_input.settings.namespaces {
            let review = SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some(ns.clone()),
                },
                ..Default::default()
            };
            KubeApi::<SelfSubjectRulesReview>::all(client.clone())
                .create(&PostParams::default(), &review)
                .await?;
        }
        Ok::<_, anyhow::Error>(t.elapsed())
    };
    for _ in 0..3 {
        e2e().await?;
        direct().await?;
        floor().await?;
    }
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..p.rounds {
        // Alternate which goes first, so drift on the shared machine hits all.
        if i % 2 == 0 {
            a.push(e2e().await?.as_secs_f64() * 1e3);
            b.push(direct().await?.as_secs_f64() * 1e3);
            c.push(floor().await?.as_secs_f64() * 1e3);
        } else {
            c.push(floor().await?.as_secs_f64() * 1e3);
            b.push(direct().await?.as_secs_f64() * 1e3);
            a.push(e2e().await?.as_secs_f64() * 1e3);
        }
    }
    let mc = c.iter().sum::<f64>() / c.len() as f64;
    let c = sorted(c);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(&a), mean(&b));
    let (a, b) = (sorted(a), sorted(b));
    println!(
        "{} rounds, interleaved; the deployments profile in one namespace (a SelfSubjectRulesReview, access reviews for what it cannot decide), ServiceAccount token, private CA",
        p.rounds
    );
    println!(
        "end to end (POST .../connectors/bench_cluster/test): p50 {:.1} ms, p90 {:.1} ms, mean {:.1} ms",
        percentile(&a, 0.5),
        percentile(&a, 0.9),
        ma
    );
    println!(
        "directly in one process:                          p50 {:.1} ms, p90 {:.1} ms, mean {:.1} ms",
        percentile(&b, 0.5),
        percentile(&b, 0.9),
        mb
    );
    println!(
        "floor: new client (TCP+TLS) + GET /version + one SelfSubjectRulesReview per namespace: p50 {:.1} ms, p90 {:.1} ms, mean {:.1} ms",
        percentile(&c, 0.5),
        percentile(&c, 0.9),
        mc
    );
    println!(
        "ratio direct test / floor: {:.2}x at p50, {:.2}x on the mean (goal <= 1.5x)",
        percentile(&b, 0.5) / percentile(&c, 0.5),
        mb / mc
    );
    println!(
        "ratio end to end / direct: {:.2}x at p50, {:.2}x on the mean (overhead {:.1} ms at p50)",
        percentile(&a, 0.5) / percentile(&b, 0.5),
        ma / mb,
        percentile(&a, 0.5) - percentile(&b, 0.5)
    );

    // Throughput: `concurrency` callers keep the delegate (capacity 4) busy.
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..p.concurrency {
        let (api, done, failed, window) = (
            api.clone(),
            done.clone(),
            failed.clone(),
            p.throughput_window,
        );
        callers.push(tokio::spawn(async move {
            while t.elapsed() < window {
                match api
                    .post("/api/v1/connectors/bench_cluster/test", &json!({}))
                    .await
                {
                    Ok(v) if v["status"] == "SUCCESS" => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for c in callers {
        c.await?;
    }
    let el = t.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "through one delegate (capacity 4), {} concurrent callers for {:.0} s: {n} tests, {:.1} tests/s ({} failed)",
        p.concurrency,
        el,
        n as f64 / el,
        failed.load(Ordering::Relaxed)
    );
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (done, input, window) = (done.clone(), direct_input.clone(), p.throughput_window);
        callers.push(tokio::spawn(async move {
            while t.elapsed() < window {
                let r = run_direct(input.clone()).await;
                if r.status.as_str() == "SUCCESS" {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for c in callers {
        c.await?;
    }
    let el = t.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "for comparison, directly with 4 at once: {n} tests, {:.1} tests/s",
        n as f64 / el
    );
    let (rss, hwm) = memory_kib(agent.child.id())?;
    println!(
        "the delegate after all that: RSS {:.1} MiB, peak {:.1} MiB",
        mib(rss),
        mib(hwm)
    );
    Ok(())
}

/// A service account and the token of the Secret Kubernetes 1.20 creates for it.
async fn service_account_token(admin: &Client, ns: &str, name: &str) -> Result<String> {
    let sas: KubeApi<ServiceAccount> = KubeApi::namespaced(admin.clone(), ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create(&PostParams::default(), &sa).await?;
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
    let secret = KubeApi::<Secret>::namespaced(admin.clone(), ns)
        .get(&secret_name)
        .await?;
    let token = secret.data.context("secret data")?["token"].0.clone();
    Ok(String::from_utf8(token)?)
}

async fn bind_cluster_admin(admin: &Client, ns: &str, sa: &str) -> Result<()> {
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{ns}-{sa}-admin")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    KubeApi::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}
