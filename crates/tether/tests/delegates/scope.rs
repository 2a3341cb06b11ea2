//! Which delegate may run what: a project's delegate serves only its project (no
//! task, no secret of another project ever reaches it), an account delegate
//! serves every project, and a task nobody can run is refused at once with
//! every delegate considered and why.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tether_testenv::TetherServer;

use crate::common::bin;
use crate::support::*;

/// A connector whose token is the secret `cluster_token` of its scope. The API
/// server is a closed loopback port: the test fails fast, wherever it runs.
fn connector(identifier: &str) -> Value {
    json!({ "connector": {
        "name": identifier,
        "identifier": identifier,
        "type": "K8sCluster",
        "spec": {
            "credential": {
                "type": "ManualConfig",
                "spec": {
                    "masterUrl": format!("https://127.0.0.1:{}", free_port()),
                    "auth": { "type": "ServiceAccount", "spec": { "serviceAccountTokenRef": "cluster_token" } }
                }
            }
        }
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_delegate_never_gets_another_projects_task_or_secret() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token_a) = api.delegate_token(PROJECT_A, "a-only").await;
    let d = Delegate::spawn(&server.url, &token_a, "a-runner", &[]);
    let a_runner = api.connected(PROJECT_A, "a-runner", 0).await;

    // B's task: refused at once. A's delegate is another project's business:
    // counted in the explanation, never named (a project learns nothing of
    // another project).
    let (s, err) = api.try_echo(PROJECT_B, "for b", 0, &[]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "NO_ELIGIBLE_DELEGATE", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("1 delegate(s) registered in other projects of this org cannot serve it"),
        "{message}"
    );
    assert!(!message.contains("a-runner"), "{message}");
    assert!(
        err["considered"].as_array().is_none_or(|c| c.is_empty()),
        "{err}"
    );
    // A's own task runs there, so the refusal above is about scope alone.
    let t = api.echo(PROJECT_A, "for a", 0, &[]).await;
    let t = api.succeeded(t["id"].as_str().unwrap()).await;
    assert_eq!(t["delegateId"], a_runner["id"]);

    // B's secrets: a connection test of B's connector is not handed to A's
    // delegate. The same test in A is, which shows the delegate would have
    // received it (secret value included) had the scope allowed it.
    let b_value = "value-b-token-0b0b0b";
    let a_value = "value-a-token-0a0a0a";
    for (scope, value) in [(PROJECT_B, b_value), (PROJECT_A, a_value)] {
        let (s, v) = api
            .post(
                &format!("{scope}/secrets"),
                json!({ "name": "cluster_token", "identifier": "cluster_token", "value": value }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = api
            .post(&format!("{scope}/connectors"), connector("cluster"))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, report) = api
        .post(
            &format!("{PROJECT_B}/connectors/cluster/test?stageTimeoutMs=2000"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "FAILURE", "{report}");
    assert_eq!(
        report["errors"][0]["reason"], "NO_ELIGIBLE_DELEGATE",
        "{report}"
    );
    assert!(report["delegateId"].is_null(), "{report}");
    let (s, report) = api
        .post(
            &format!("{PROJECT_A}/connectors/cluster/test?stageTimeoutMs=2000"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["delegateId"], a_runner["id"], "{report}");
    // The manager also tests each connector by itself when it is created; wait
    // for those to be over, then check every task A's delegate ever started.
    for scope in [PROJECT_A, PROJECT_B] {
        eventually("the connectors' own tests to finish", || async {
            let (_, c) = api.get(&format!("{scope}/connectors/cluster")).await;
            (c["status"]["status"] != "PENDING").then_some(())
        })
        .await;
    }
    let started: Vec<String> = d
        .log_lines("task started")
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("task="))
                .map(str::to_string)
        })
        .collect();
    assert!(
        d.log_lines("kind=connectionTest").len() >= 2,
        "A's delegate ran A's connection tests:\n{}",
        d.log()
    );
    for id in &started {
        let t = api.task(id).await;
        assert_eq!(t["projectIdentifier"], "a", "A's delegate ran {t:#}");
    }
    let log = d.log();
    assert!(!log.contains(b_value) && !log.contains(a_value), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_delegate_runs_a_projects_task() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(ACCOUNT, "everywhere").await;
    let _d = Delegate::spawn(&server.url, &token, "shared", &["--tags", "shared"]);
    let d = api.connected(ACCOUNT, "shared", 0).await;
    assert!(d["orgIdentifier"].is_null(), "{d}");
    // Only the account lists it.
    let (_, in_a) = api.get(&format!("{PROJECT_A}/delegates")).await;
    assert_eq!(in_a, json!([]));
    for scope in [PROJECT_A, PROJECT_B, "/api/v1/orgs/default", ACCOUNT] {
        let t = api.echo(scope, scope, 0, &["shared"]).await;
        let t = api.succeeded(t["id"].as_str().unwrap()).await;
        assert_eq!(t["output"]["delegate"], "shared", "{scope}");
        assert_eq!(t["output"]["echo"], scope);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_selector_explains_every_delegate_considered() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token_a) = api.delegate_token(PROJECT_A, "a").await;
    let (_, token_b) = api.delegate_token(PROJECT_B, "b").await;
    let (_, token_acc) = api.delegate_token(ACCOUNT, "acc").await;
    let _eu = Delegate::spawn(&server.url, &token_a, "eu-only", &["--tags", "eu"]);
    let mut gone = Delegate::spawn(&server.url, &token_a, "gone", &["--tags", "eu,gpu"]);
    let _b = Delegate::spawn(&server.url, &token_b, "b-gpu", &["--tags", "eu,gpu"]);
    let _acc = Delegate::spawn(&server.url, &token_acc, "plain", &[]);
    api.connected(PROJECT_A, "eu-only", 0).await;
    api.connected(PROJECT_A, "gone", 0).await;
    api.connected(PROJECT_B, "b-gpu", 0).await;
    api.connected(ACCOUNT, "plain", 0).await;
    gone.signal("TERM");
    assert!(gone.exit().await.success());
    api.disconnected(PROJECT_A, "gone").await;

    let (s, err) = api.try_echo(PROJECT_A, "x", 0, &["eu", "gpu"]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["code"], "NO_ELIGIBLE_DELEGATE");
    let message = err["message"].as_str().unwrap();
    let reasons: Vec<(String, Value)> = err["considered"]
        .as_array()
        .expect("considered")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["ineligible"].clone(),
            )
        })
        .collect();
    let reason = |name: &str| -> Value {
        reasons
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("'{name}' not considered: {err}"))
            .1
            .clone()
    };
    assert_eq!(reasons.len(), 3, "{err}");
    assert_eq!(
        reason("eu-only"),
        json!({ "reason": "missingTags", "missing": ["gpu"] })
    );
    assert_eq!(
        reason("plain"),
        json!({ "reason": "missingTags", "missing": ["eu", "gpu"] })
    );
    assert_eq!(reason("gone")["reason"], "disconnected", "{err}");
    assert!(
        reasons.iter().all(|(n, _)| n != "b-gpu"),
        "another project's delegate is not named: {err}"
    );
    for needle in [
        "[eu, gpu]",
        "'eu-only': lacks the selector tag(s) gpu",
        "'plain': lacks the selector tag(s) eu, gpu",
        "'gone': disconnected",
        "1 delegate(s) registered in other projects of this org",
    ] {
        assert!(message.contains(needle), "'{needle}' not in: {message}");
    }
    // With a selector someone carries, the same call succeeds.
    let t = api.echo(PROJECT_A, "x", 0, &["eu"]).await;
    let t = api.succeeded(t["id"].as_str().unwrap()).await;
    assert_eq!(t["output"]["delegate"], "eu-only");
}
