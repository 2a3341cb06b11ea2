//! Tasks: a lost task that must not run twice leaves its follow-up queued
//! with no deadline; a connector's tasks of one kind are one query, whatever
//! other connectors ran.

use serde_json::json;
use tether_store::{FollowUp, NewTask, TaskState};

use crate::common::*;

both_backends!(
    a_lost_task_fails_and_queues_its_follow_up,
    a_connectors_newest_tasks_whatever_others_ran
);

fn task(kind: &str, connector: &str, on_lost: Option<FollowUp>) -> NewTask {
    NewTask {
        kind: kind.into(),
        scope: project(),
        payload: json!({ "connector": connector }),
        selectors: vec!["build".into()],
        timeout_ms: 1_000,
        max_attempts: 3,
        deadline_ms: 60_000,
        connector: Some(connector.into()),
        on_lost,
    }
}

async fn a_lost_task_fails_and_queues_its_follow_up(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let d = register_delegate(s, &project(), "d").await;
    let follow = FollowUp {
        kind: "buildCleanup".into(),
        payload: json!({ "connector": "c", "namespace": "ns" }),
        selectors: vec!["build".into()],
        timeout_ms: 120_000,
        max_attempts: 50,
        error: "LOST: {reason}; clean-up {followUp}".into(),
    };
    let build = s
        .create_task(task("build", "c", Some(follow)))
        .await
        .unwrap();
    let plain = s.create_task(task("deploy", "c", None)).await.unwrap();
    s.claim_task(&build.id, &d, 10_000).await.unwrap().unwrap();
    s.claim_task(&plain.id, &d, 10_000).await.unwrap().unwrap();

    let released = s.release_delegate_tasks(&d, "it went away").await.unwrap();
    assert_eq!(released.len(), 2);
    let lost = s.get_task(&build.id).await.unwrap();
    assert_eq!(lost.state, TaskState::Failed);
    // Without a follow-up, a task is offered again.
    assert_eq!(
        s.get_task(&plain.id).await.unwrap().state,
        TaskState::Queued
    );

    let queued = s.queued_tasks(10).await.unwrap();
    let next = queued
        .iter()
        .find(|t| t.kind == "buildCleanup")
        .expect("the follow-up is queued");
    assert_eq!(
        lost.error.as_deref(),
        Some(format!("LOST: it went away; clean-up {}", next.id).as_str())
    );
    assert_eq!(next.payload["lostTask"], build.id.as_str());
    assert_eq!(next.payload["namespace"], "ns");
    assert_eq!(next.scope, project());
    assert_eq!(next.selectors, ["build"]);
    assert_eq!(next.connector.as_deref(), Some("c"));
    assert_eq!(next.max_attempts, 50);
    assert_eq!(next.timeout_ms, 120_000);

    // Dispatch sees other queued tasks first, however old the follow-up.
    let later = s.create_task(task("deploy", "c", None)).await.unwrap();
    let order: Vec<String> = s
        .queued_tasks(10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(order, [plain.id.clone(), later.id.clone(), next.id.clone()]);

    // No deadline: a year on, with no delegate ever connected, it still waits.
    let year = 365 * 24 * 3_600_000;
    s.expire_task_deadlines(next.created_at + year)
        .await
        .unwrap();
    assert_eq!(s.get_task(&next.id).await.unwrap().state, TaskState::Queued);
    assert_eq!(
        s.get_task(&plain.id).await.unwrap().state,
        TaskState::Failed
    );

    // The follow-up itself is offered again when its own delegate is lost.
    s.claim_task(&next.id, &d, 10_000).await.unwrap().unwrap();
    s.release_delegate_tasks(&d, "again").await.unwrap();
    assert_eq!(s.get_task(&next.id).await.unwrap().state, TaskState::Queued);
}

async fn a_connectors_newest_tasks_whatever_others_ran(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(s.create_task(task("build", "mine", None)).await.unwrap().id);
    }
    s.create_task(task("deploy", "mine", None)).await.unwrap();
    // More builds of another connector than a page of newest tasks.
    for _ in 0..600 {
        s.create_task(task("build", "busy", None)).await.unwrap();
    }
    let listed = s
        .connector_tasks(&project(), "mine", "build", 50)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    mine.reverse();
    assert_eq!(ids, mine, "newest first, only its own builds");
    let busy = s
        .connector_tasks(&project(), "busy", "build", 50)
        .await
        .unwrap();
    assert_eq!(busy.len(), 50);
    assert!(busy.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    assert!(s
        .connector_tasks(&org(), "mine", "build", 50)
        .await
        .unwrap()
        .is_empty());
}
