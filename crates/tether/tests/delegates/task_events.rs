//! Live task events end to end: a real delegate emits them while its task
//! runs, the manager stores them, and `tether task events` prints them as
//! they come, once each and in order, across a manager restart in the middle
//! (the delegate re-sends what was not acknowledged; the CLI resumes after the
//! last event it printed).

use std::process::Stdio;

use serde_json::{json, Value};
use tether_testenv::TetherServer;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::bin;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_events_stream_live_once_each_across_a_manager_restart() {
    let mut server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    // Delegate and CLI reach the manager through one proxy, as through a load
    // balancer: the restarted manager listens on another port.
    let proxy = Proxy::start(&server.url).await;
    let _d = Delegate::spawn(&proxy.url, &token, "d1", &["--max-backoff", "1s"]);
    api.connected(PROJECT_A, "d1", 0).await;

    let names: Vec<String> = (1..=8).map(|i| format!("event {i}")).collect();
    let (s, task) = api
        .post(
            &format!("{PROJECT_A}/tasks"),
            json!({ "kind": "echo", "payload": { "message": "m", "events": names, "eventIntervalMs": 400 } }),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_string();

    let mut cli = tokio::process::Command::new(bin())
        .args(["task", "events", &id, "-o", "json"])
        .env("TETHER_URL", &proxy.url)
        .env("TETHER_TOKEN", &server.admin_token)
        .env("TETHER_CONFIG", server.data_dir.join("none.yaml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(cli.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["message"], "event 1");
    assert_eq!(first["id"], "1.1");
    // Live: the first event is printed while the task still runs.
    assert_eq!(api.task(&id).await["state"], "assigned");

    // The manager crashes in the middle and comes back on the same database.
    server.kill();
    let restarted = TetherServer::start_in(bin(), &server.data_dir, FAST).unwrap();
    proxy.point_to(&restarted.url);

    let mut got = vec![first];
    while let Some(line) = lines.next_line().await.unwrap() {
        got.push(serde_json::from_str(&line).unwrap());
    }
    let status = cli.wait().await.unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut cli.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    let messages: Vec<&str> = got.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(
        messages, names,
        "every event once, in order; stderr: {stderr}"
    );
    let ids: Vec<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let want: Vec<String> = (1..=8).map(|i| format!("1.{i}")).collect();
    assert_eq!(ids, want);
    assert!(status.success(), "{status}: {stderr}");

    // Stored with the task: the restarted manager serves them all again, and
    // a reader resuming after 1.6 gets only the last two, then the end.
    let api = Api::new(&restarted);
    api.succeeded(&id).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/tasks/{id}/events", restarted.url))
        .bearer_auth(&restarted.admin_token)
        .header("last-event-id", "1.6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let data: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(data.len(), 3, "{body}");
    assert_eq!(data[0]["message"], "event 7");
    assert_eq!(data[1]["message"], "event 8");
    assert_eq!(data[2]["state"], "succeeded");
    assert!(body.contains("event: end"), "{body}");
}
