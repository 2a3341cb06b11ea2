//! Two real manager processes sharing one PostgreSQL database act as one: a task
//! created through either reaches a delegate connected to the other, a delegate
//! reconnects to either, and a token revoked through one disconnects its
//! delegates on the other.

use std::time::Instant;

use tether_testenv::{TestDatabase, TetherServer};

use crate::common::bin;
use crate::support::*;

/// Manager A on a fresh database, and manager B on the same database with A's
/// key and admin token (as two replicas share them in production).
async fn two_managers() -> Option<(TetherServer, TetherServer, tempfile::TempDir)> {
    let db = TestDatabase::create().await.expect("test database")?;
    let mut args = vec!["--database-url", db.url.as_str()];
    args.extend_from_slice(FAST);
    let a = TetherServer::start(bin(), &args).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    for f in ["admin-token", "kek"] {
        std::fs::copy(a.data_dir.join(f), b_dir.join(f)).unwrap();
    }
    let b = TetherServer::start_in(bin(), &b_dir, &args).unwrap();
    assert_eq!(a.admin_token, b.admin_token);
    Some((a, b, tmp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_on_one_postgres_act_as_one() {
    let Some((a, b, _tmp)) = two_managers().await else {
        return; // TestDatabase said why (and fails instead when PostgreSQL is required)
    };
    seed_projects(&a);
    let api_a = Api::new(&a);
    let api_b = Api::new(&b);
    let (_, token) = api_a.delegate_token(PROJECT_A, "pool").await;

    // A delegate behind a load balancer that sends it to B.
    let lb = Proxy::start(&b.url).await;
    let d = Delegate::spawn(&lb.url, &token, "roamer", &[]);
    let rec = api_a.connected(PROJECT_A, "roamer", 0).await;

    // Created through A, run by the delegate on B.
    let mut latencies = Vec::new();
    for i in 0..5 {
        let t = api_a.echo(PROJECT_A, &format!("via a {i}"), 0, &[]).await;
        let id = t["id"].as_str().unwrap().to_string();
        let t = api_a.succeeded(&id).await;
        // Both timestamps are the managers' own (one machine, one clock).
        latencies.push(
            t["history"][0]["assignedAt"].as_i64().unwrap() - t["createdAt"].as_i64().unwrap(),
        );
        assert_eq!(t["output"]["delegate"], "roamer");
        assert_eq!(t["delegateId"], rec["id"]);
        assert!(
            b.log().contains(&format!("task assigned task={id}")),
            "manager B handed it over"
        );
        assert!(!a.log().contains(&format!("task assigned task={id}")));
    }
    eprintln!(
        "figure: task created on manager A -> assigned by manager B to its delegate, ms: {latencies:?}"
    );

    // The load balancer fails over to A: the delegate reconnects there by itself.
    let moved = now_ms();
    lb.point_to(&a.url);
    lb.cut();
    api_b.connected(PROJECT_A, "roamer", moved).await;
    let t = api_b.echo(PROJECT_A, "via b", 0, &[]).await;
    let id = t["id"].as_str().unwrap().to_string();
    let t = api_b.succeeded(&id).await;
    assert_eq!(t["output"]["delegate"], "roamer");
    assert!(a.log().contains(&format!("task assigned task={id}")));
    drop(d);

    // Revoked through A, disconnected on B.
    let (revoked_id, revoked) = api_a.delegate_token(PROJECT_A, "doomed").await;
    let mut on_b = Delegate::spawn(&b.url, &revoked, "on-b", &[]);
    api_a.connected(PROJECT_A, "on-b", 0).await;
    let started = Instant::now();
    let (s, _) = api_a
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/delegate-tokens/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::NO_CONTENT);
    let status = on_b.exit().await;
    eprintln!(
        "figure: token revoked on manager A -> delegate on manager B exited in {} ms",
        started.elapsed().as_millis()
    );
    assert!(!status.success());
    assert!(
        on_b.log().contains("the delegate token was revoked"),
        "{}",
        on_b.log()
    );
    api_a.disconnected(PROJECT_A, "on-b").await;
}
