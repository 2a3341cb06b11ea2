//! Task events: stored once per (attempt, seq), only from the delegate that
//! holds the attempt, read back in order after a cursor, and still there for
//! another store handle (a restarted manager).

use serde_json::json;
use tether_domain::delegate_protocol::TaskEvent;
use tether_store::{EventCursor, NewTask};

use crate::common::*;

both_backends!(events_are_stored_once_in_order_by_their_holder);

fn ev(seq: u64, message: &str) -> TaskEvent {
    TaskEvent {
        seq,
        at_ms: 1_000 + seq as i64,
        kind: "info".into(),
        message: message.into(),
        data: (seq == 2).then(|| json!({ "n": 2 })),
    }
}

async fn events_are_stored_once_in_order_by_their_holder(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    let d = register_delegate(s, &project(), "d").await;
    let other = register_delegate(s, &project(), "other").await;
    let t = s
        .create_task(NewTask {
            kind: "echo".into(),
            scope: project(),
            payload: json!({}),
            selectors: vec![],
            timeout_ms: 1_000,
            max_attempts: 3,
            deadline_ms: 60_000,
            connector: None,
            on_lost: None,
        })
        .await
        .unwrap();
    // Not claimed yet: nobody may write its events.
    assert_eq!(
        s.append_task_events(&t.id, 1, &d, &[ev(1, "a")])
            .await
            .unwrap(),
        0
    );
    s.claim_task(&t.id, &d, 10_000).await.unwrap().unwrap();
    assert_eq!(
        s.append_task_events(&t.id, 1, &d, &[ev(1, "a"), ev(2, "b")])
            .await
            .unwrap(),
        2
    );
    // Re-sent after a reconnect, with one new: only the new one is stored.
    assert_eq!(
        s.append_task_events(&t.id, 1, &d, &[ev(2, "b"), ev(3, "c")])
            .await
            .unwrap(),
        1
    );
    // Another delegate, or a stale attempt, writes nothing.
    assert_eq!(
        s.append_task_events(&t.id, 1, &other, &[ev(4, "x")])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.append_task_events(&t.id, 2, &d, &[ev(1, "x")])
            .await
            .unwrap(),
        0
    );

    let all = s.task_events_after(&t.id, None, 100).await.unwrap();
    let msgs: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs, ["a", "b", "c"]);
    assert_eq!(all[1].data, Some(json!({ "n": 2 })));
    assert_eq!(all[2].id, "1.3");
    let after = s
        .task_events_after(&t.id, EventCursor::parse("1.1"), 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(s.task_events_after(&t.id, None, 1).await.unwrap().len(), 1);

    // The second attempt (another delegate took the task over) follows the first.
    s.release_delegate_tasks(&d, "test").await.unwrap();
    s.claim_task(&t.id, &other, 10_000).await.unwrap().unwrap();
    assert_eq!(
        s.append_task_events(&t.id, 2, &other, &[ev(1, "d")])
            .await
            .unwrap(),
        1
    );
    let after = s
        .task_events_after(&t.id, EventCursor::parse("1.3"), 100)
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["2.1"]
    );

    // A restarted manager (a new handle on the same database) reads them all.
    let reopened = env.reopen(env.kek.clone()).await.unwrap();
    assert_eq!(
        reopened
            .task_events_after(&t.id, None, 100)
            .await
            .unwrap()
            .len(),
        4
    );
}
