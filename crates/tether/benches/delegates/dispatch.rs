//! Benchmark 3 of the delegates issue: how long from `POST /api/v1/tasks`
//! answering until a delegate holds the task, with 100 connected delegates.
//! Benchmark 4: the idle RSS of one real `tether delegate run`.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tether_delegate::backoff::Backoff;

use crate::fleet::wait_until;
use crate::manager::{bin, memory_kib, mib, percentile, sorted, Api, Manager};
use crate::sim::{task_arrival, Fleet, SimConfig};

pub async fn dispatch(manager: &Manager, delegates: usize, tasks: usize) -> Result<()> {
    println!(
        "\n## Dispatch: {tasks} echo tasks one after another, {delegates} simulated delegates"
    );
    let api = manager.api();
    let token = api.delegate_token("dispatch").await?;
    let cfg = SimConfig {
        manager: format!("127.0.0.1:{}", manager.port).parse()?,
        sources: vec![Ipv4Addr::LOCALHOST],
        capacity: 4,
        answer_tasks: true,
        backoff: Backoff::default(),
    };
    let mut fleet = Fleet::new();
    for i in 0..delegates {
        fleet.spawn(&cfg, format!("dispatch-{i:03}"), token.clone());
    }
    let stats = fleet.stats.clone();
    wait_until(Duration::from_secs(60), || {
        stats.connected.load(Ordering::SeqCst) >= delegates
    })
    .await
    .map_err(|_| anyhow::anyhow!("the dispatch delegates did not all register"))?;

    let mut after_response = Vec::new(); // ms, negative when it arrived first
    let mut after_request = Vec::new();
    let mut api_latency = Vec::new();
    let warmup = 20;
    for i in 0..tasks + warmup {
        let body = json!({ "kind": "echo", "payload": { "message": format!("task {i}") } });
        let sent = Instant::now();
        let task = api.post("/api/v1/tasks", &body).await?;
        let answered = Instant::now();
        let id = task["id"].as_str().context("task without id")?;
        let Some(held) = task_arrival(&stats, id, Duration::from_secs(10)).await else {
            bail!("task {id} did not reach a delegate within 10 s");
        };
        if i < warmup {
            continue;
        }
        let ms = |a: Instant, b: Instant| {
            if a >= b {
                a.duration_since(b).as_secs_f64() * 1e3
            } else {
                -(b.duration_since(a).as_secs_f64() * 1e3)
            }
        };
        after_response.push(ms(held, answered));
        after_request.push(ms(held, sent));
        api_latency.push(ms(answered, sent));
    }
    let before = after_response.iter().filter(|v| **v < 0.0).count();
    let line = |what: &str, v: Vec<f64>| {
        let v = sorted(v);
        println!(
            "{what}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&v, 0.5),
            percentile(&v, 0.9),
            percentile(&v, 0.99),
            percentile(&v, 1.0)
        );
    };
    line(
        "task created (API answered) -> delegate holds it",
        after_response,
    );
    println!("  ({before} of {tasks} arrived before the API answer: counted as negative)");
    line("request sent -> delegate holds it", after_request);
    line("POST /api/v1/tasks round trip", api_latency);
    fleet.stop().await;
    Ok(())
}

/// A real `tether delegate run`, killed on drop.
pub struct Agent {
    pub child: Child,
    pub name: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a real delegate with `tags` and waits (polling the API, which has no
/// event for it) until the manager lists it connected.
pub async fn start_agent(manager: &Manager, api: &Api, name: &str, tags: &str) -> Result<Agent> {
    let token = api.delegate_token(name).await?;
    let token_file = manager.data_dir.with_extension(format!("{name}.token"));
    std::fs::write(&token_file, token)?;
    let log = std::fs::File::create(manager.data_dir.with_extension(format!("{name}.log")))?;
    let mut command = Command::new(bin());
    command.args([
        "delegate",
        "run",
        "--manager",
        &manager.url,
        "--name",
        name,
        "--tags",
        tags,
    ]);
    if let Some(ca) = &manager.ca_file {
        command.arg("--ca-file").arg(ca);
    }
    let child = command
        .env("TETHER_DELEGATE_TOKEN_FILE", &token_file)
        .env_remove("TETHER_DELEGATE_TOKEN")
        .env_remove("TETHER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting tether delegate run")?;
    let agent = Agent {
        child,
        name: name.to_string(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(d) = api.get(&format!("/api/v1/delegates/{name}")).await {
            if d["connected"] == true {
                return Ok(agent);
            }
        }
        if Instant::now() > deadline {
            bail!("delegate {name} did not connect within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Idle RSS of a connected agent, sampled once a second for `idle`.
pub async fn agent_rss(agent: &Agent, idle: Duration) -> Result<()> {
    println!("\n## Idle RSS of one real `tether delegate run` (release build)");
    let pid = agent.child.id();
    let mut max = 0;
    let start = Instant::now();
    while start.elapsed() < idle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        max = max.max(memory_kib(pid)?.0);
    }
    let (rss, hwm) = memory_kib(pid)?;
    println!(
        "delegate '{}' connected and idle for {:.0} s: RSS {:.1} MiB (max sampled {:.1} MiB, peak VmHWM {:.1} MiB)",
        agent.name,
        idle.as_secs_f64(),
        mib(rss),
        mib(max),
        mib(hwm)
    );
    Ok(())
}
