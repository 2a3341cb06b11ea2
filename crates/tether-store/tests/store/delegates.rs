//! Delegates and tasks: which delegates are near a scope (to explain why none
//! can run a task), and which tasks a delegate still holds.

use serde_json::json;
use tether_domain::Scope;
use tether_store::NewTask;

use crate::common::*;

both_backends!(
    delegates_near_a_scope_stay_in_its_org,
    tasks_held_by_a_delegate
);

fn proj(org: &str, project: &str) -> Scope {
    Scope::Project {
        org: org.into(),
        project: project.into(),
    }
}

fn names(ds: &[tether_store::DelegateRecord]) -> Vec<&str> {
    ds.iter().map(|d| d.name.as_str()).collect()
}

async fn delegates_near_a_scope_stay_in_its_org(env: TestEnv) {
    let s = &env.store;
    // `_` is a LIKE wildcard and SQLite's LIKE ignores case: neither
    // `myXorg` nor `My_Org` is `my_org`.
    for org in ["my_org", "myXorg", "My_Org"] {
        s.create_org(org, org, None).await.unwrap();
        for p in ["a", "b"] {
            s.create_project(org, p, p, None).await.unwrap();
        }
    }
    register_delegate(s, &Scope::Account, "acc").await;
    register_delegate(s, &Scope::Org("my_org".into()), "org").await;
    register_delegate(s, &proj("my_org", "a"), "in-a").await;
    register_delegate(s, &proj("my_org", "b"), "in-b").await;
    register_delegate(s, &Scope::Org("myXorg".into()), "x-org").await;
    register_delegate(s, &proj("myXorg", "a"), "x-a").await;
    register_delegate(s, &proj("My_Org", "a"), "case-a").await;

    let a = proj("my_org", "a");
    let covering = s.delegates_covering(&a).await.unwrap();
    assert_eq!(names(&covering), ["acc", "in-a", "org"]);
    let near = s.delegates_near(&a).await.unwrap();
    assert_eq!(names(&near), ["acc", "in-a", "in-b", "org"]);
    let near = s
        .delegates_near(&Scope::Org("my_org".into()))
        .await
        .unwrap();
    assert_eq!(names(&near), ["acc", "in-a", "in-b", "org"]);
    let near = s.delegates_near(&Scope::Account).await.unwrap();
    assert_eq!(names(&near), ["acc"]);
}

async fn tasks_held_by_a_delegate(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let d = register_delegate(s, &project(), "d").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = s
            .create_task(NewTask {
                kind: "echo".into(),
                scope: project(),
                payload: json!({ "message": i }),
                selectors: vec![],
                timeout_ms: 1_000,
                max_attempts: 3,
                deadline_ms: 60_000,
                connector: None,
                on_lost: None,
            })
            .await
            .unwrap();
        ids.push(t.id);
    }
    assert!(s.tasks_held_by(&d).await.unwrap().is_empty());
    for id in &ids[..2] {
        s.claim_task(id, &d, 10_000).await.unwrap().unwrap();
    }
    s.complete_task(&ids[0], 1, &d, Ok(json!("done")))
        .await
        .unwrap();
    assert_eq!(s.tasks_held_by(&d).await.unwrap(), vec![ids[1].clone()]);
    assert!(s.tasks_held_by("someone-else").await.unwrap().is_empty());
}
