//! Store benchmark: creates N connectors (default 2000), fetches each, lists them
//! page by page and by search, records connection-test results, and reads secret
//! values and tokens, printing ops/s and p50/p99 latency per operation.
//!
//!   cargo bench -p tether-store                       # SQLite
//!   TETHER_TEST_DATABASE_URL=postgres://... cargo bench -p tether-store   # + PostgreSQL
//!   TETHER_BENCH_N=500 cargo bench -p tether-store    # another N
//!
//! One client issues the operations one after another (the latency an API
//! request sees), except the "concurrent" row, where 8 tasks share the store.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_domain::connector::ConnectivityState;
use tether_domain::{ConnectivityStatus, Connector, Scope};
use tether_store::{ConnectorQuery, Kek, Role, SecretInput, SecretValue, Store, StoreConfig};

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: usize = std::env::var("TETHER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run("SQLite (WAL, synchronous=FULL)", None, dir.path(), n).await;
        match std::env::var("TETHER_TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => {
                let (url, name) = create_pg_database(&server).await;
                let dir = tempfile::tempdir().unwrap();
                run("PostgreSQL", Some(url), dir.path(), n).await;
                drop_pg_database(&server, &name).await;
            }
            _ => println!(
                "\nPostgreSQL: skipped (set TETHER_TEST_DATABASE_URL, e.g. from scripts/pg-testenv up)"
            ),
        }
    });
}

fn project() -> Scope {
    Scope::Project {
        org: "o".into(),
        project: "p".into(),
    }
}

fn connector(i: usize) -> Connector {
    serde_json::from_value(json!({
        "name": format!("bench cluster {i}"),
        "identifier": format!("c{i}"),
        "orgIdentifier": "o",
        "projectIdentifier": "p",
        "tags": {"team": "bench", "n": i.to_string()},
        "type": "K8sCluster",
        "spec": {
            "delegateSelectors": ["eu"],
            "credential": {
                "type": "ManualConfig",
                "spec": {
                    "masterUrl": "https://10.0.0.1:6443",
                    "auth": {
                        "type": "ServiceAccount",
                        "spec": {"serviceAccountTokenRef": "tok", "caCertRef": "org.ca"}
                    }
                }
            }
        }
    }))
    .unwrap()
}

struct Stats {
    name: &'static str,
    samples: Vec<Duration>,
    wall: Duration,
}

impl Stats {
    fn print(&self) {
        let mut s = self.samples.clone();
        s.sort();
        let pct = |p: f64| {
            let i = ((s.len() as f64 - 1.0) * p).round() as usize;
            s[i].as_secs_f64() * 1000.0
        };
        println!(
            "  {:<28} {:>6} ops {:>10.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
            self.name,
            s.len(),
            s.len() as f64 / self.wall.as_secs_f64(),
            pct(0.50),
            pct(0.99)
        );
    }
}

/// Runs `op(i)` for i in 0..count, one at a time, timing each call.
async fn measure<F, Fut>(name: &'static str, count: usize, mut op: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        op(i).await;
        samples.push(t.elapsed());
    }
    Stats {
        name,
        samples,
        wall: start.elapsed(),
    }
}

async fn run(label: &str, url: Option<String>, data_dir: &std::path::Path, n: usize) {
    let store = Store::open(StoreConfig {
        database_url: url,
        data_dir: data_dir.to_path_buf(),
        key: Kek::generate(),
    })
    .await
    .unwrap();
    let p = project();
    store.create_org("o", "o", None).await.unwrap();
    store.create_project("o", "p", "p", None).await.unwrap();
    for (scope, id) in [(p.clone(), "tok"), (Scope::Org("o".into()), "ca")] {
        store
            .create_secret(
                &scope,
                SecretInput {
                    usable_from: Vec::new(),
                    allowed_hosts: Vec::new(),
                    identifier: Some(id.into()),
                    name: id.into(),
                    description: None,
                    tags: Default::default(),
                    value: SecretValue::new("x".repeat(1200)),
                },
            )
            .await
            .unwrap();
    }
    let (_, token) = store
        .create_token("bench", &Scope::Account, Role::Viewer)
        .await
        .unwrap();

    println!("\n{label}, N = {n}");
    let s = &store;
    let p = &p;
    let mut all = Vec::new();
    all.push(
        measure("create_connector", n, |i| async move {
            s.create_connector(connector(i)).await.unwrap();
        })
        .await,
    );
    all.push(
        measure("get_connector", n, |i| async move {
            s.get_connector(p, &format!("c{i}")).await.unwrap();
        })
        .await,
    );
    let pages = n.div_ceil(30);
    all.push(
        measure("list_connectors (30/page)", pages, |i| async move {
            let page = s
                .list_connectors(
                    p,
                    ConnectorQuery {
                        page: i as u32,
                        limit: Some(30),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.total as usize, n);
        })
        .await,
    );
    all.push(
        measure("list_connectors (search)", 200, |i| async move {
            s.list_connectors(
                p,
                ConnectorQuery {
                    search: Some(format!("cluster {}", i % 10)),
                    limit: Some(30),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        })
        .await,
    );
    all.push(
        measure("set_connectivity", n.min(1000), |i| async move {
            s.set_connectivity(
                p,
                &format!("c{i}"),
                ConnectivityStatus {
                    status: ConnectivityState::Success,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        })
        .await,
    );
    all.push(
        measure("read_secret_value", 1000, |_| async move {
            s.read_secret_value(p, "tok").await.unwrap();
        })
        .await,
    );
    let token = token.expose();
    all.push(
        measure("authenticate", 1000, |_| async move {
            assert!(s.authenticate(token).await.unwrap().is_some());
        })
        .await,
    );
    // 8 tasks fetching concurrently: what the pool sustains.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::new();
            for i in (t..n).step_by(8) {
                let t0 = Instant::now();
                s.get_connector(&p, &format!("c{i}")).await.unwrap();
                v.push(t0.elapsed());
            }
            v
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    all.push(Stats {
        name: "get_connector (8 concurrent)",
        samples,
        wall: start.elapsed(),
    });
    for st in &all {
        st.print();
    }
    store.close().await;
}

async fn create_pg_database(server: &str) -> (String, String) {
    let name = format!("bench_{}", std::process::id());
    let admin = sqlx::PgPool::connect(server).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}

async fn drop_pg_database(server: &str, name: &str) {
    let admin = sqlx::PgPool::connect(server).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
}
