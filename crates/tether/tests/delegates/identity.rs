//! A delegate's identity (issue 10, item 4 and 5): its name belongs to the
//! token that registered it, registrations are bounded, and delegates not seen
//! for `--delegate-expiry` go away.

use tether_testenv::TetherServer;

use crate::common::{bin, cli_ok};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_token_cannot_take_over_a_delegate_by_its_name() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (owner_id, owner) = api.delegate_token(PROJECT_A, "owner").await;
    let (_, other) = api.delegate_token(PROJECT_A, "other").await;
    let _real = Delegate::spawn(&server.url, &owner, "runner", &["--tags", "real"]);
    let real = api.connected(PROJECT_A, "runner", 0).await;

    // The same name with the other token of the same scope: refused, and the
    // impostor is told why and what to do.
    let mut impostor = Delegate::spawn(&server.url, &other, "runner", &["--tags", "real"]);
    let status = impostor.exit().await;
    assert!(!status.success(), "{}", impostor.log());
    let log = impostor.log();
    assert!(
        log.contains("the delegate name 'runner' is taken")
            && log.contains("another delegate token ('owner'")
            && log.contains("another --name"),
        "{log}"
    );
    assert!(
        !log.contains(&owner) && !log.contains(&other),
        "no token value in: {log}"
    );
    // The real one was not replaced: same id, same connection, and its tasks
    // still go to it.
    let now = api.delegate(PROJECT_A, "runner").await;
    assert_eq!(now["id"], real["id"]);
    assert_eq!(now["connectedAt"], real["connectedAt"], "{now}");
    assert_eq!(now["connected"], true);
    let task = api.echo(PROJECT_A, "mine", 0, &["real"]).await;
    let done = api.succeeded(task["id"].as_str().unwrap()).await;
    assert_eq!(done["delegateId"], real["id"]);

    // The other token may use other names.
    let _second = Delegate::spawn(&server.url, &other, "runner-2", &[]);
    api.connected(PROJECT_A, "runner-2", 0).await;

    // Revoking the owner's token frees the name: a new delegate (a new id)
    // may take it.
    cli_ok(&server, &["delegate", "token", "revoke", &owner_id], None);
    api.disconnected(PROJECT_A, "runner").await;
    let _heir = Delegate::spawn(&server.url, &other, "runner", &[]);
    let heir = eventually("the name to be taken by the other token", || async {
        let (s, v) = api.get(&format!("{PROJECT_A}/delegates/runner")).await;
        (s.is_success() && v["connected"] == true && v["id"] != real["id"]).then_some(v)
    })
    .await;
    assert_ne!(heir["id"], real["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_bounded_and_unseen_delegates_expire() {
    let mut flags = FAST.to_vec();
    flags.extend(["--delegate-expiry", "2s"]);
    let server = TetherServer::start(bin(), &flags).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "t").await;

    let tags: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let tags = tags.join(",");
    let mut many = Delegate::spawn(&server.url, &token, "many-tags", &["--tags", &tags]);
    assert!(!many.exit().await.success());
    assert!(
        many.log()
            .contains("65 tags; a delegate may carry at most 64"),
        "{}",
        many.log()
    );
    let (s, _) = api.get(&format!("{PROJECT_A}/delegates/many-tags")).await;
    assert_eq!(s, reqwest::StatusCode::NOT_FOUND, "nothing stored");

    let gone = Delegate::spawn(&server.url, &token, "short-lived", &[]);
    api.connected(PROJECT_A, "short-lived", 0).await;
    gone.signal("KILL");
    api.disconnected(PROJECT_A, "short-lived").await;
    eventually("the unseen delegate to expire", || async {
        let (s, _) = api.get(&format!("{PROJECT_A}/delegates/short-lived")).await;
        (s == reqwest::StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let (_, list) = api.get(&format!("{PROJECT_A}/delegates")).await;
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_token_registers_at_most_the_configured_number_of_delegates() {
    let mut flags = FAST.to_vec();
    flags.extend(["--max-delegates-per-token", "2"]);
    let server = TetherServer::start(bin(), &flags).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (_, token) = api.delegate_token(PROJECT_A, "small").await;
    let (_, other) = api.delegate_token(PROJECT_A, "other").await;
    let mut first = Delegate::spawn(&server.url, &token, "d-1", &[]);
    api.connected(PROJECT_A, "d-1", 0).await;
    let _second = Delegate::spawn(&server.url, &token, "d-2", &[]);
    api.connected(PROJECT_A, "d-2", 0).await;

    // A third name with the same token: refused, and told why and what to do.
    let mut third = Delegate::spawn(&server.url, &token, "d-3", &[]);
    assert!(!third.exit().await.success(), "{}", third.log());
    let log = third.log();
    assert!(
        log.contains("the delegate token 'small'")
            && log.contains("already has 2 delegates")
            && log.contains("--max-delegates-per-token 2")
            && log.contains("tether delegate token create"),
        "{log}"
    );
    assert!(!log.contains(&token), "no token value in: {log}");
    let (s, _) = api.get(&format!("{PROJECT_A}/delegates/d-3")).await;
    assert_eq!(s.as_u16(), 404, "the refused delegate is not listed");

    // A name the token already has reconnects; another token has room of its own.
    first.signal("KILL");
    first.exit().await;
    api.disconnected(PROJECT_A, "d-1").await;
    let since = now_ms();
    let _again = Delegate::spawn(&server.url, &token, "d-1", &[]);
    api.connected(PROJECT_A, "d-1", since).await;
    let _elsewhere = Delegate::spawn(&server.url, &other, "d-3", &[]);
    api.connected(PROJECT_A, "d-3", 0).await;
}
