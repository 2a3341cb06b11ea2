//! Failover (issue 10, item 6): a real delegate holding a task is killed with
//! SIGKILL; how long until the task runs on another real delegate, and until it
//! has finished there. The manager runs with its default heartbeat (15 s),
//! heartbeat timeout (45 s) and reconnect grace (5 s): the closed connection,
//! not the lapsed lease, moves the task. Goal: running elsewhere <= 15 s.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::dispatch::start_agent;
use crate::manager::{percentile, sorted, Manager};

pub async fn run(manager: &Manager, rounds: usize) -> Result<()> {
    println!(
        "\n## Failover: kill -9 the delegate holding a task, {rounds} rounds (manager defaults: heartbeat 15 s, timeout 45 s, reconnect grace 5 s)"
    );
    let api = manager.api();
    let mut to_running = Vec::new();
    let mut to_done = Vec::new();
    for round in 0..rounds {
        let tag = format!("failover{round}");
        let mut agents = vec![
            start_agent(manager, &api, &format!("fo-a-{round}"), &tag).await?,
            start_agent(manager, &api, &format!("fo-b-{round}"), &tag).await?,
        ];
        let hold_ms = 2_000;
        let task = api
            .post(
                "/api/v1/tasks",
                &json!({ "kind": "echo", "payload": { "message": "failover", "holdMs": hold_ms }, "selectors": [tag] }),
            )
            .await?;
        let id = task["id"].as_str().context("no task id")?.to_string();
        let path = format!("/api/v1/tasks/{id}");
        let holder = poll(&api, &path, Duration::from_secs(30), |t| {
            (t["state"] == "assigned").then(|| t["delegateId"].clone())
        })
        .await?;
        let a = api
            .get(&format!("/api/v1/delegates/{}", agents[0].name))
            .await?;
        // Kill whichever of the two holds it; the other takes over.
        let mut victim = if a["id"] == holder {
            agents.remove(0)
        } else {
            agents.remove(1)
        };
        let survivor = agents.remove(0);
        // The manager sent it the task; give it a moment to start it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let killed = Instant::now();
        victim.child.kill()?;
        victim.child.wait()?;
        poll(&api, &path, Duration::from_secs(120), |t| {
            (t["attempt"].as_u64() >= Some(2) && t["state"] != "queued").then_some(())
        })
        .await?;
        let running = killed.elapsed();
        let done = poll(&api, &path, Duration::from_secs(120), |t| {
            matches!(t["state"].as_str(), Some("succeeded" | "failed")).then(|| t.clone())
        })
        .await?;
        let finished = killed.elapsed();
        if done["output"]["delegate"] != survivor.name.as_str() {
            bail!("the task did not finish on the other delegate: {done:#}");
        }
        println!(
            "round {round}: killed -> running on '{}' in {:.2} s; finished there (hold {} ms) in {:.2} s",
            survivor.name,
            running.as_secs_f64(),
            hold_ms,
            finished.as_secs_f64()
        );
        to_running.push(running.as_secs_f64());
        to_done.push(finished.as_secs_f64());
    }
    let r = sorted(to_running);
    let d = sorted(to_done);
    println!(
        "kill -9 -> task running on another delegate: median {:.2} s, max {:.2} s (goal <= 15 s)",
        percentile(&r, 0.5),
        r.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "kill -9 -> task finished on another delegate: median {:.2} s, max {:.2} s",
        percentile(&d, 0.5),
        d.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Polls a task every 50 ms until `done` says, or fails after `limit`.
async fn poll<T>(
    api: &crate::manager::Api,
    path: &str,
    limit: Duration,
    mut done: impl FnMut(&Value) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        let t = api.get(path).await?;
        if let Some(v) = done(&t) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("gave up after {limit:?} waiting on {path}: {t:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
