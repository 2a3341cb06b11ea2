//! The connection test history: recorded with the status in one transaction,
//! newest first, trimmed to the newest N, gone with the connector; and the
//! whole-database summaries `/metrics` and the re-tests read.

use serde_json::json;
use tether_domain::connector::ConnectivityState;
use tether_domain::{ConnectivityStatus, Scope};
use tether_store::{NewTestResult, StoreError, TaskState, TestTrigger};

use crate::common::*;

both_backends!(
    history_is_newest_first_and_trimmed,
    status_and_history_agree_and_keep_last_connected_at,
    history_goes_with_its_connector,
    history_of_unknown_connector_is_not_found,
    concurrent_results_keep_exactly_n,
    summaries_cover_every_scope,
);

fn result(status: ConnectivityState, tested_at: i64, trigger: TestTrigger) -> NewTestResult {
    NewTestResult {
        trigger,
        status,
        tested_at,
        duration_ms: 42,
        delegate_id: Some("d1".into()),
        task_id: Some(format!("task-{tested_at}")),
        report: json!({"status": status.as_str(), "testedAt": tested_at, "stages": []}),
    }
}

fn status_of(r: &NewTestResult) -> ConnectivityStatus {
    ConnectivityStatus {
        status: r.status,
        error_summary: (r.status != ConnectivityState::Success).then(|| "broken".to_string()),
        tested_at: Some(r.tested_at),
        delegate_id: r.delegate_id.clone(),
        ..Default::default()
    }
}

/// Org, project, a token secret and connector `c` in the project.
async fn with_connector(env: &TestEnv, id: &str) -> Scope {
    let s = &env.store;
    let p = project();
    setup_scopes(s).await;
    secret(s, &p, "tok", "token value").await;
    s.create_connector(sa_connector(&p, id, Some(id), "tok"))
        .await
        .unwrap();
    p
}

async fn history_is_newest_first_and_trimmed(env: TestEnv) {
    let p = with_connector(&env, "c").await;
    let s = &env.store;
    assert!(s
        .connection_test_history(&p, "c", None)
        .await
        .unwrap()
        .is_empty());
    for i in 0..7 {
        let r = result(ConnectivityState::Failure, 1_000 + i, TestTrigger::Schedule);
        s.record_connection_test(&p, "c", status_of(&r), r, 5)
            .await
            .unwrap();
    }
    let h = s.connection_test_history(&p, "c", None).await.unwrap();
    let times: Vec<i64> = h.iter().map(|r| r.tested_at).collect();
    assert_eq!(
        times,
        vec![1006, 1005, 1004, 1003, 1002],
        "newest 5, newest first"
    );
    assert!(h.windows(2).all(|w| w[0].id > w[1].id));
    let first = &h[0];
    assert_eq!(first.trigger, TestTrigger::Schedule);
    assert_eq!(first.status, ConnectivityState::Failure);
    assert_eq!(first.duration_ms, 42);
    assert_eq!(first.delegate_id.as_deref(), Some("d1"));
    assert_eq!(first.task_id.as_deref(), Some("task-1006"));
    assert_eq!(first.report["testedAt"], 1006);
    assert!(first.recorded_at > 0);
    // A limit on reading; a smaller keep trims at the next write.
    assert_eq!(
        s.connection_test_history(&p, "c", Some(2))
            .await
            .unwrap()
            .len(),
        2
    );
    let r = result(ConnectivityState::Success, 2_000, TestTrigger::Api);
    s.record_connection_test(&p, "c", status_of(&r), r, 2)
        .await
        .unwrap();
    let h = s.connection_test_history(&p, "c", None).await.unwrap();
    assert_eq!(
        h.iter().map(|r| r.tested_at).collect::<Vec<_>>(),
        vec![2000, 1006]
    );
    // keep 0 still keeps the result just recorded.
    let r = result(ConnectivityState::Partial, 3_000, TestTrigger::Change);
    s.record_connection_test(&p, "c", status_of(&r), r, 0)
        .await
        .unwrap();
    let h = s.connection_test_history(&p, "c", None).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].trigger, TestTrigger::Change);
}

async fn status_and_history_agree_and_keep_last_connected_at(env: TestEnv) {
    let p = with_connector(&env, "c").await;
    let s = &env.store;
    let ok = result(ConnectivityState::Success, 100, TestTrigger::Api);
    let stored = s
        .record_connection_test(&p, "c", status_of(&ok), ok, 20)
        .await
        .unwrap();
    assert_eq!(stored.last_connected_at, Some(100));
    let bad = result(ConnectivityState::Failure, 200, TestTrigger::Schedule);
    let stored = s
        .record_connection_test(&p, "c", status_of(&bad), bad, 20)
        .await
        .unwrap();
    assert_eq!(stored.status, ConnectivityState::Failure);
    assert_eq!(stored.tested_at, Some(200));
    assert_eq!(stored.last_connected_at, Some(100), "kept on failure");
    let rec = s.get_connector(&p, "c").await.unwrap();
    assert_eq!(rec.status, stored);
    // The status does not count as a modification of the connector.
    assert_eq!(rec.last_modified_at, rec.created_at);
}

async fn history_goes_with_its_connector(env: TestEnv) {
    let p = with_connector(&env, "c").await;
    let s = &env.store;
    for i in 0..3 {
        let r = result(ConnectivityState::Success, i, TestTrigger::Api);
        s.record_connection_test(&p, "c", status_of(&r), r, 20)
            .await
            .unwrap();
    }
    s.delete_connector(&p, "c").await.unwrap();
    let pool = env.raw().await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connection_test_results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the history is deleted with the connector");
    // A new connector of the same identifier starts with an empty history.
    s.create_connector(sa_connector(&p, "c", Some("c"), "tok"))
        .await
        .unwrap();
    assert!(s
        .connection_test_history(&p, "c", None)
        .await
        .unwrap()
        .is_empty());
}

async fn history_of_unknown_connector_is_not_found(env: TestEnv) {
    let p = with_connector(&env, "c").await;
    let s = &env.store;
    let err = s
        .connection_test_history(&p, "nope", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("'nope'"), "{err}");
    let r = result(ConnectivityState::Success, 1, TestTrigger::Api);
    let err = s
        .record_connection_test(&p, "nope", status_of(&r), r, 20)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn concurrent_results_keep_exactly_n(env: TestEnv) {
    let p = with_connector(&env, "c").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = env.store.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let r = result(ConnectivityState::Failure, i, TestTrigger::Schedule);
            s.record_connection_test(&p, "c", status_of(&r), r, 5)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = env
        .store
        .connection_test_history(&p, "c", None)
        .await
        .unwrap();
    assert_eq!(h.len(), 5, "{h:?}");
}

async fn summaries_cover_every_scope(env: TestEnv) {
    let s = &env.store;
    let p = with_connector(&env, "c").await;
    secret(s, &Scope::Account, "acc", "v").await;
    s.create_connector(sa_connector(&Scope::Account, "top", Some("top"), "acc"))
        .await
        .unwrap();
    let r = result(ConnectivityState::Partial, 5, TestTrigger::Api);
    s.record_connection_test(&p, "c", status_of(&r), r, 20)
        .await
        .unwrap();
    let all = s.all_connector_connectivity().await.unwrap();
    let got: Vec<(String, String, ConnectivityState)> = all
        .iter()
        .map(|c| (c.scope.key(), c.identifier.clone(), c.status.status))
        .collect();
    assert_eq!(
        got,
        vec![
            ("account".into(), "top".into(), ConnectivityState::Unknown),
            (p.key(), "c".into(), ConnectivityState::Partial),
        ]
    );
    assert_eq!(all[1].status.tested_at, Some(5));
    assert!(all[0].created_at > 0);

    let counts = s.task_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![
            (TaskState::Queued, 0),
            (TaskState::Assigned, 0),
            (TaskState::Succeeded, 0),
            (TaskState::Failed, 0),
        ]
    );
    s.create_task(tether_store::NewTask {
        kind: "echo".into(),
        scope: p.clone(),
        payload: json!({}),
        selectors: vec![],
        timeout_ms: 1000,
        max_attempts: 1,
        deadline_ms: 60_000,
        connector: None,
        on_lost: None,
    })
    .await
    .unwrap();
    let counts = s.task_counts().await.unwrap();
    assert_eq!(counts[0], (TaskState::Queued, 1));
}
