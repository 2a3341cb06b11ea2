//! Faults, with real processes: a delegate killed mid-task, a manager restarted
//! with tasks queued and running, a delegate whose frames stop (SIGSTOP), and a
//! delegate asked to stop (SIGTERM). The work is never lost and never finished
//! twice.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use tether_testenv::TetherServer;

use crate::common::bin;
use crate::support::*;

/// The delegates' log lines for each attempt of a task (`task finished`).
fn finished_counts(delegates: &[&Delegate]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in delegates {
        for id in finished_task_ids(&d.log()) {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

/// The most tasks a delegate's log shows running at once.
fn max_running(d: &Delegate) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for line in d.log().lines() {
        if line.contains("task started") {
            now += 1;
            max = max.max(now);
        } else if line.contains("task finished") {
            now = now.saturating_sub(1);
        }
    }
    max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_a_killed_delegate_completes_on_another() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    let mut first = Delegate::spawn(&server.url, &token, "first", &["--capacity", "1"]);
    let first_rec = api.connected(PROJECT_A, "first", 0).await;
    let task = api.echo(PROJECT_A, "survive", 2_000, &[]).await;
    let id = task["id"].as_str().unwrap();
    let t = api.assigned(id).await;
    assert_eq!(t["delegateId"], first_rec["id"]);
    // It holds the task; only now does a second delegate appear.
    let second = Delegate::spawn(&server.url, &token, "second", &["--capacity", "1"]);
    let second_rec = api.connected(PROJECT_A, "second", 0).await;
    eventually("the first delegate to start the task", || async {
        (!first.log_lines("task started").is_empty()).then_some(())
    })
    .await;

    let killed = Instant::now();
    first.signal("KILL");
    let status = first.exit().await;
    assert!(!status.success());
    let t = api.succeeded(id).await;
    eprintln!(
        "figure: delegate killed -> task finished elsewhere in {} ms (heartbeat timeout 3 s, hold 2 s)",
        killed.elapsed().as_millis()
    );
    assert_eq!(t["output"]["delegate"], "second", "{t:#}");
    assert_eq!(t["delegateId"], second_rec["id"]);
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{t:#}");
    assert_eq!(history[0]["delegateId"], first_rec["id"]);
    assert!(
        history[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("taken back"),
        "{t:#}"
    );
    assert_eq!(history[1]["delegateId"], second_rec["id"]);
    assert_eq!(history[1]["outcome"], "succeeded");
    assert_eq!(t["attempt"], 2);
    assert_eq!(finished_counts(&[&second]).get(id), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_restart_loses_no_task_and_finishes_none_twice() {
    let mut server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    // Delegates reach the manager through a proxy, as through a load balancer:
    // the restarted manager listens on another port.
    let proxy = Proxy::start(&server.url).await;
    let backoff = ["--capacity", "1", "--max-backoff", "1s"];
    let d1 = Delegate::spawn(&proxy.url, &token, "d1", &backoff);
    let d2 = Delegate::spawn(&proxy.url, &token, "d2", &backoff);
    api.connected(PROJECT_A, "d1", 0).await;
    api.connected(PROJECT_A, "d2", 0).await;

    // Two running (one per delegate), two queued; the running ones outlast
    // the manager's downtime.
    let mut ids = Vec::new();
    for i in 0..4 {
        let t = api.echo(PROJECT_A, &format!("m{i}"), 5_000, &[]).await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    eventually("two tasks to be running", || async {
        let mut running = 0;
        for id in &ids {
            if api.task(id).await["state"] == "assigned" {
                running += 1;
            }
        }
        (running == 2).then_some(())
    })
    .await;
    let before: Vec<Value> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(api.task(id).await);
        }
        v
    };
    assert_eq!(
        before.iter().filter(|t| t["state"] == "queued").count(),
        2,
        "{before:#?}"
    );

    server.kill();
    let killed_at = now_ms();
    // The scenario: down longer than a lease (the heartbeat timeout, 3 s), so
    // the running tasks' leases lapse before their delegates can renew them,
    // and long enough for each delegate to fail a few reconnects.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    eventually("both delegates to retry a few times", || async {
        [&d1, &d2]
            .iter()
            .all(|d| d.log_lines("cannot connect to the manager").len() >= 3)
            .then_some(())
    })
    .await;
    let restarted = TetherServer::start_in(bin(), &server.data_dir, FAST).unwrap();
    let up_at = now_ms();
    proxy.point_to(&restarted.url);
    let api = Api::new(&restarted);
    api.connected(PROJECT_A, "d1", killed_at).await;
    api.connected(PROJECT_A, "d2", killed_at).await;
    let back = now_ms();

    for id in &ids {
        let t = api.succeeded(id).await;
        let history = t["history"].as_array().unwrap();
        let succeeded = history
            .iter()
            .filter(|a| a["outcome"] == "succeeded")
            .count();
        assert_eq!(succeeded, 1, "task {id}: {t:#}");
        assert_eq!(history.len(), 1, "task {id} was run again: {t:#}");
    }
    let counts = finished_counts(&[&d1, &d2]);
    for id in &ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "task {id} finished {:?} times on the delegates",
            counts.get(id)
        );
    }
    // The restarted manager knew what each delegate was still running and
    // did not hand it a queued task on top (capacity 1).
    for d in [&d1, &d2] {
        assert_eq!(
            max_running(d),
            1,
            "{} ran tasks at once:\n{}",
            d.name,
            d.log()
        );
    }
    eprintln!(
        "figure: manager down for {} ms; both delegates back {} ms after it was up again",
        up_at - killed_at,
        back - up_at
    );

    // Their backoff: jittered delays, never above --max-backoff.
    for d in [&d1, &d2] {
        let delays: Vec<u64> = d
            .log_lines("reconnecting after a jittered backoff")
            .iter()
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("delay_ms="))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        eprintln!("figure: {} reconnect delays (ms): {delays:?}", d.name);
        assert!(delays.len() >= 3, "{}:\n{}", d.name, d.log());
        assert!(delays.iter().all(|ms| *ms <= 1_000), "{delays:?}");
        // The first retry after a healthy session waits at most the base (500 ms).
        assert!(delays[0] <= 500, "{delays:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_delegate_is_disconnected_and_its_task_moves_on() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    let frozen = Delegate::spawn(&server.url, &token, "frozen", &[]);
    let frozen_rec = api.connected(PROJECT_A, "frozen", 0).await;
    let task = api.echo(PROJECT_A, "thaw", 1_500, &[]).await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(api.assigned(id).await["delegateId"], frozen_rec["id"]);
    eventually("the frozen delegate to start the task", || async {
        (!frozen.log_lines("task started").is_empty()).then_some(())
    })
    .await;
    let _warm = Delegate::spawn(&server.url, &token, "warm", &[]);
    api.connected(PROJECT_A, "warm", 0).await;

    // No clean close: the process stops, its socket stays open.
    frozen.signal("STOP");
    let stopped = Instant::now();
    let stopped_ms = now_ms();
    api.disconnected(PROJECT_A, "frozen").await;
    let disconnected_after = stopped.elapsed();
    let t = api.succeeded(id).await;
    eprintln!(
        "figure: frozen delegate shown disconnected after {} ms, its task finished elsewhere after {} ms (heartbeat timeout 3 s)",
        disconnected_after.as_millis(),
        stopped.elapsed().as_millis()
    );
    frozen.signal("CONT");
    assert_eq!(t["output"]["delegate"], "warm", "{t:#}");
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{t:#}");
    assert!(history[0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("taken back"));
    assert!(
        server
            .log()
            .contains("no frame within the heartbeat timeout; disconnecting it"),
        "disconnected by the heartbeat timeout, not by a closed socket"
    );

    // Thawed, it reconnects by itself and reports its now-stale result, which
    // the manager acknowledges and ignores: the task keeps one result.
    api.connected(PROJECT_A, "frozen", stopped_ms).await;
    eventually(
        "the thawed delegate's stale result to be ignored",
        || async {
            server
                .log()
                .contains("ignored a result for an attempt that is no longer live")
                .then_some(())
        },
    )
    .await;
    let again = api.task(id).await;
    assert_eq!(again["output"], t["output"]);
    assert_eq!(again["history"], t["history"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_running_task_takes_no_new_one_and_exits_0() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    let mut leaving = Delegate::spawn(&server.url, &token, "leaving", &["--capacity", "4"]);
    let leaving_rec = api.connected(PROJECT_A, "leaving", 0).await;
    let task = api.echo(PROJECT_A, "last words", 3_000, &[]).await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(api.assigned(id).await["delegateId"], leaving_rec["id"]);
    eventually("the task to start", || async {
        (!leaving.log_lines("task started").is_empty()).then_some(())
    })
    .await;
    let _staying = Delegate::spawn(&server.url, &token, "staying", &["--capacity", "4"]);
    api.connected(PROJECT_A, "staying", 0).await;

    leaving.signal("TERM");
    eventually("the manager to see it draining", || async {
        (api.delegate(PROJECT_A, "leaving").await["draining"] == true).then_some(())
    })
    .await;
    let mut later = Vec::new();
    for i in 0..4 {
        let t = api.echo(PROJECT_A, &format!("later {i}"), 0, &[]).await;
        later.push(t["id"].as_str().unwrap().to_string());
    }
    for id in &later {
        let t = api.succeeded(id).await;
        assert_eq!(t["output"]["delegate"], "staying", "{t:#}");
        assert_eq!(t["history"].as_array().unwrap().len(), 1, "{t:#}");
    }
    let status = leaving.exit().await;
    assert!(status.success(), "{status}:\n{}", leaving.log());
    let t = api.succeeded(id).await;
    assert_eq!(t["output"]["delegate"], "leaving");
    assert_eq!(t["history"].as_array().unwrap().len(), 1, "{t:#}");
    assert_eq!(
        leaving.log_lines("task started").len(),
        1,
        "{}",
        leaving.log()
    );
    assert!(leaving.log_lines("not starting a new task").is_empty());
    api.disconnected(PROJECT_A, "leaving").await;
}

/// A lease far longer than any wait here: only the closed connection can move
/// the task in time.
const LONG_LEASE: &[&str] = &[
    "--delegate-heartbeat",
    "1s",
    "--delegate-timeout",
    "600s",
    "--delegate-reconnect-grace",
    "1s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_delegates_task_moves_on_after_the_reconnect_grace_not_the_lease() {
    let server = TetherServer::start(bin(), LONG_LEASE).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    let mut first = Delegate::spawn(&server.url, &token, "first", &["--capacity", "1"]);
    let first_rec = api.connected(PROJECT_A, "first", 0).await;
    let task = api.echo(PROJECT_A, "grace", 1_000, &[]).await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(api.assigned(id).await["delegateId"], first_rec["id"]);
    let second = Delegate::spawn(&server.url, &token, "second", &["--capacity", "1"]);
    api.connected(PROJECT_A, "second", 0).await;
    eventually("the first delegate to start the task", || async {
        (!first.log_lines("task started").is_empty()).then_some(())
    })
    .await;

    let killed = Instant::now();
    first.signal("KILL");
    first.exit().await;
    // With a 600 s lease, only the closed connection (plus the 1 s grace) can
    // get it to the second delegate within the test's patience.
    let t = api.succeeded(id).await;
    eprintln!(
        "figure: delegate killed -> task finished elsewhere in {} ms (lease 600 s, grace 1 s, hold 1 s)",
        killed.elapsed().as_millis()
    );
    assert_eq!(t["output"]["delegate"], "second", "{t:#}");
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{t:#}");
    let outcome = history[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("connection closed and it did not reconnect within 1s"),
        "{t:#}"
    );
    assert_eq!(finished_counts(&[&second]).get(id), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_that_reconnects_within_the_grace_keeps_its_task() {
    // A grace long enough for the delegate's reconnect (its first retry waits
    // at most 500 ms), a lease far longer than the test.
    let server = TetherServer::start(
        bin(),
        &[
            "--delegate-heartbeat",
            "1s",
            "--delegate-timeout",
            "600s",
            "--delegate-reconnect-grace",
            "20s",
        ],
    )
    .unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    let proxy = Proxy::start(&server.url).await;
    let flaky = Delegate::spawn(&proxy.url, &token, "flaky", &["--capacity", "1"]);
    let flaky_rec = api.connected(PROJECT_A, "flaky", 0).await;
    let task = api.echo(PROJECT_A, "hold on", 3_000, &[]).await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(api.assigned(id).await["delegateId"], flaky_rec["id"]);
    cut_and_check(&server, &api, &proxy, &flaky, id, flaky_rec).await;
}

/// Cuts the proxied delegate's connection mid-task: it reconnects within the
/// grace, so the task is neither taken back nor run again (a second attempt,
/// even on the same delegate, would show in the history).
async fn cut_and_check(
    server: &TetherServer,
    api: &Api,
    proxy: &Proxy,
    flaky: &Delegate,
    id: &str,
    flaky_rec: Value,
) {
    eventually("the proxied delegate to start the task", || async {
        (!flaky.log_lines("task started").is_empty()).then_some(())
    })
    .await;
    let cut_at = now_ms();
    proxy.cut();
    api.connected(PROJECT_A, "flaky", cut_at).await;
    let t = api.succeeded(id).await;
    assert_eq!(t["output"]["delegate"], "flaky", "{t:#}");
    assert_eq!(t["delegateId"], flaky_rec["id"]);
    assert_eq!(t["history"].as_array().unwrap().len(), 1, "{t:#}");
    assert!(
        server
            .log()
            .contains("they go to another delegate unless it reconnects within the grace"),
        "the manager saw the connection close:\n{}",
        server.log()
    );
    assert!(!server
        .log()
        .contains("took back a task of a delegate that did not reconnect"));
}

/// A TCP listener that accepts and never says a word: a cluster so slow that
/// the connection test waits out its stage limits.
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (port, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_connection_test_is_bounded_and_the_cli_follows_the_task() {
    // The test's wait on the manager would be stage timeout (4 s) x 8 x 3
    // attempts + 30 s = 126 s; the shutdown bound is 3 s.
    let args = [
        "--delegate-heartbeat",
        "1s",
        "--delegate-timeout",
        "3s",
        "--test-on-change",
        "false",
        "--shutdown-timeout",
        "3s",
    ];
    let mut server = TetherServer::start(bin(), &args).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "pool").await;
    // Clients and delegates reach the manager through a proxy, as through a
    // Service: the restarted manager listens on another port.
    let proxy = Proxy::start(&server.url).await;
    let delegate = Delegate::spawn(&proxy.url, &token, "d", &["--max-backoff", "1s"]);
    api.connected(PROJECT_A, "d", 0).await;
    let (port, _silent) = silent_listener().await;
    crate::common::cli_ok(
        &server,
        &[
            "secret",
            "create",
            "--name",
            "tok",
            "--identifier",
            "tok",
            "--org",
            "default",
            "--project",
            "a",
        ],
        Some("value-of-tok"),
    );
    let doc = format!(
        "connector:\n  name: slow\n  identifier: slow\n  type: K8sCluster\n  spec:\n    credential:\n      type: ManualConfig\n      spec:\n        masterUrl: https://127.0.0.1:{port}\n        auth:\n          type: ServiceAccount\n          spec:\n            serviceAccountTokenRef: tok\n"
    );
    let (s, v) = api
        .call(
            reqwest::Method::POST,
            &format!("{PROJECT_A}/connectors"),
            Some(serde_yaml::from_str::<Value>(&doc).unwrap()),
        )
        .await;
    assert!(s.is_success(), "{v}");

    let cli = tokio::process::Command::new(bin())
        .args([
            "connector",
            "test",
            "slow",
            "--org",
            "default",
            "--project",
            "a",
            "--stage-timeout",
            "4s",
        ])
        .env("TETHER_URL", &proxy.url)
        .env("TETHER_TOKEN", &server.admin_token)
        .env(
            "TETHER_CONFIG",
            server.data_dir.join("no-client-config.yaml"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("the delegate to start the test", || async {
        (!delegate.log_lines("task started").is_empty()).then_some(())
    })
    .await;

    server.signal("TERM").unwrap();
    let exited = server.wait_exit(PATIENCE).unwrap();
    assert!(
        exited.is_some_and(|s| s.success()),
        "the manager did not stop in time after SIGTERM ({exited:?}):\n{}",
        server.log()
    );
    let restarted = TetherServer::start_in(bin(), &server.data_dir, &args).unwrap();
    proxy.point_to(&restarted.url);

    let out = tokio::time::timeout(PATIENCE, cli.wait_with_output())
        .await
        .expect("the CLI followed the test to its end")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let task_id = stderr
        .split("following the test (task ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("the CLI did not say it follows the task:\n{stderr}\n{stdout}"))
        .to_string();
    assert!(
        stdout.contains("FAILURE"),
        "the report is printed:\n{stdout}\n{stderr}"
    );
    // Exit code 1: FAILURE (the cluster never answered TLS).
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    // Recorded once, with the task the CLI followed; the task ran once.
    let api = Api::new(&restarted);
    let (s, history) = api
        .get(&format!("{PROJECT_A}/connectors/slow/test-history"))
        .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{history}");
    let items = history["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(items.len(), 1, "{history:#}");
    assert_eq!(items[0]["taskId"], task_id.as_str(), "{history:#}");
    let t = api.task(&task_id).await;
    assert_eq!(t["history"].as_array().unwrap().len(), 1, "{t:#}");
    let (_, c) = api.get(&format!("{PROJECT_A}/connectors/slow")).await;
    assert_eq!(c["status"]["status"], "FAILURE", "{c:#}");
}
