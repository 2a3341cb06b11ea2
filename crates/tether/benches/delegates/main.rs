//! Delegate benchmarks: issue 4 (delegates) and the end-to-end ratio of issue 5
//! (connection test). It prints figures and asserts nothing about speed; it is
//! a bench target, so `cargo test` never builds or runs it.
//!
//!   cargo bench -p tether --bench delegates                   # everything
//!   cargo bench -p tether --bench delegates -- fleet          # 1 + 2 only
//!   cargo bench -p tether --bench delegates -- dispatch agent connection-test
//!   cargo bench -p tether --bench delegates -- proxy
//!
//! - `fleet`: N simulated delegates (TETHER_BENCH_DELEGATES, default 10000)
//!   speaking the real protocol over one WebSocket each against a real
//!   `tether server` (release build, SQLite, heartbeat TETHER_BENCH_HEARTBEAT,
//!   default 15s): the manager's RSS (/proc/PID/status VmRSS) and CPU
//!   (/proc/PID/stat utime+stime over TETHER_BENCH_WINDOW, default 60s) at steady
//!   heartbeat; then a restart of the manager (SIGTERM, start again on the same
//!   data and port) and the time until every delegate has registered again, with
//!   the failed connection attempts. The simulated delegates reconnect with the
//!   real agent's backoff (capped exponential, full jitter).
//! - `dispatch`: 100 simulated delegates; echo tasks created one at a time
//!   through `POST /api/v1/tasks`; API answer -> `task` message at a delegate.
//! - `agent`: idle RSS of one real `tether delegate run`.
//! - `failover`: a real delegate holding a task is killed (SIGKILL); time until
//!   the task runs, and finishes, on another real delegate (manager defaults).
//! - `connection-test`: a connector test through the API, the manager and a real
//!   delegate, against the same test run directly in this process, interleaved;
//!   then tests per second through one delegate. Uses the control plane named by
//!   TETHER_TEST_KUBE_DIR (`scripts/kube-testenv up`) or starts one.
//!
//! - `proxy`: the Kubernetes API through the manager (HTTPS) and a real
//!   delegate against the API server directly, interleaved: GET latency, a
//!   large list and a port-forward download, RSS with 1,000 watches open
//!   (TETHER_BENCH_WATCHES) and a watch event's extra delay (see proxy.rs).
//!
//! Also: TETHER_BENCH_BATCH (500) delegates are started at a time while the
//! fleet fills; TETHER_BENCH_KEEP=1 keeps the fleet's data directory and the
//! manager's log; TETHER_BENCH_MANAGER_LOG sets the managers' TETHER_LOG.
//!
//! Each connection costs a file descriptor on both sides: the bench raises its
//! soft open-files limit to the hard limit (the manager it starts inherits it);
//! with a hard limit below N + 1000, run `ulimit -n 65536` as root first.
//! Connections come from 127.0.0.1-127.0.0.8 so ephemeral ports do not run out.
#![forbid(unsafe_code)]

mod conntest;
mod dispatch;
mod failover;
mod fleet;
mod manager;
mod proxy;
mod sim;

use std::time::Duration;

use anyhow::Result;

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_duration(name: &str, default: &str) -> Duration {
    let v = std::env::var(name).unwrap_or_else(|_| default.to_string());
    humantime::parse_duration(&v).unwrap_or_else(|e| panic!("{name}={v}: {e}"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; anything else (cargo test --benches) skips.
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "delegates bench: skipped (run it with `cargo bench -p tether --bench delegates`)"
        );
        return Ok(());
    }
    let names: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let want = |n: &str| names.is_empty() || names.contains(&n);
    let delegates: usize = env_or("TETHER_BENCH_DELEGATES", 10_000);
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    println!("open files limit: {limit}");
    if want("fleet") && limit < delegates as u64 + 1000 {
        println!("warning: {delegates} delegates need about {} open files per process; run `ulimit -n 65536` as root", delegates + 1000);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if want("fleet") {
            fleet::run(fleet::FleetParams {
                delegates,
                heartbeat: env_duration("TETHER_BENCH_HEARTBEAT", "15s"),
                window: env_duration("TETHER_BENCH_WINDOW", "60s"),
                tokens: 10,
            })
            .await?;
        }
        if want("proxy") {
            proxy::run(proxy::Params {
                requests: env_or("TETHER_BENCH_PROXY_REQUESTS", 1000),
                watches: env_or("TETHER_BENCH_WATCHES", 1000),
            })
            .await?;
        }
        if !(want("dispatch") || want("agent") || want("failover") || want("connection-test")) {
            return Ok(());
        }
        let tmp = tempfile::tempdir()?;
        let manager = manager::Manager::start(
            &tmp.path().join("data"),
            0,
            &["--delegate-heartbeat", "15s"],
        )?;
        if want("dispatch") {
            dispatch::dispatch(&manager, 100, 500).await?;
        }
        let _idle_agent = if want("agent") {
            let api = manager.api();
            let agent = dispatch::start_agent(&manager, &api, "idle-agent", "idle").await?;
            dispatch::agent_rss(&agent, Duration::from_secs(20)).await?;
            Some(agent)
        } else {
            None
        };
        if want("failover") {
            failover::run(&manager, 3).await?;
        }
        if want("connection-test") {
            conntest::run(
                &manager,
                conntest::Params {
                    rounds: 40,
                    concurrency: 8,
                    throughput_window: Duration::from_secs(15),
                },
            )
            .await?;
        }
        Ok(())
    })
}
