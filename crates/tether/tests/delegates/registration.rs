//! Registering a delegate, seeing it through the API and the CLI, its health
//! endpoint, and its tokens: create, list, revoke (which disconnects it), and a
//! bad token (which stops it with a message that says what to do).

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::Value;
use tether_testenv::TetherServer;

use crate::common::{bin, cli, cli_ok};
use crate::support::*;

const A_FLAGS: &[&str] = &["--org", "default", "--project", "a"];

fn with_a<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(A_FLAGS);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_delegate_is_listed_with_its_details_and_health() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);

    // Token through the CLI: the value on stdout, once; the list never shows it.
    let out = cli(
        &server,
        &server.admin_token,
        &with_a(&["delegate", "token", "create", "--name", "eu-runners"]),
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("tdt_"), "{token}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shown once"), "{stderr}");
    let listed = cli_ok(
        &server,
        &with_a(&["delegate", "token", "list", "-o", "json"]),
        None,
    );
    let tokens: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(tokens.len(), 1, "{listed}");
    assert_eq!(tokens[0]["name"], "eu-runners");
    assert!(tokens[0]["revokedAt"].is_null());
    assert!(!listed.contains(&token), "the token list shows the value");

    let health = free_port();
    let health_addr = format!("127.0.0.1:{health}");
    let _d = Delegate::spawn(
        &server.url,
        &token,
        "runner-1",
        &[
            "--tags",
            "eu,prod",
            "--capacity",
            "2",
            "--health-listen",
            &health_addr,
        ],
    );
    let d = api.connected(PROJECT_A, "runner-1", 0).await;
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(d["tags"], serde_json::json!(["eu", "prod"]));
    assert_eq!(d["capacity"], 2);
    assert_eq!(d["runningTasks"], 0);
    assert_eq!(d["inCluster"], false);
    assert_eq!(d["orgIdentifier"], "default");
    assert_eq!(d["projectIdentifier"], "a");
    assert!(!d["hostname"].as_str().unwrap().is_empty(), "{d}");
    assert!(d["lastHeartbeat"].as_i64().is_some(), "{d}");

    // The health endpoint a Kubernetes probe would use. The manager records the
    // registration before the delegate reads the answer, so the API may show it
    // connected a moment before the delegate calls itself ready.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{health_addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "/healthz");
    eventually("/readyz to answer 200", || {
        let http = http.clone();
        let url = format!("http://{health_addr}/readyz");
        async move {
            let r = http.get(url).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        }
    })
    .await;

    // A running task shows in the list, through the API and the CLI.
    let task = api.echo(PROJECT_A, "hello", 6_000, &["eu"]).await;
    let id = task["id"].as_str().unwrap();
    let t = api.assigned(id).await;
    assert_eq!(t["delegateId"], d["id"]);
    let (s, list) = api.get(&format!("{PROJECT_A}/delegates")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], "runner-1");
    assert_eq!(list[0]["connected"], true);
    assert_eq!(list[0]["runningTasks"], 1, "{list}");
    let table = cli_ok(&server, &with_a(&["delegate", "list"]), None);
    let row = table
        .lines()
        .find(|l| l.starts_with("runner-1"))
        .unwrap_or_else(|| panic!("no row for runner-1:\n{table}"));
    for cell in ["connected", "eu,prod", env!("CARGO_PKG_VERSION"), "1/2"] {
        assert!(row.contains(cell), "'{cell}' missing from: {row}");
    }
    let got: Value = serde_json::from_str(&cli_ok(
        &server,
        &with_a(&["delegate", "get", "runner-1", "-o", "json"]),
        None,
    ))
    .unwrap();
    assert_eq!(got["id"], d["id"]);
    assert_eq!(got["connected"], true);
    // By id too.
    let by_id = cli_ok(
        &server,
        &with_a(&["delegate", "get", d["id"].as_str().unwrap()]),
        None,
    );
    assert!(by_id.contains("runner-1"), "{by_id}");

    let done = api.succeeded(id).await;
    assert_eq!(done["output"]["echo"], "hello");
    assert_eq!(done["output"]["delegate"], "runner-1");
    let shown: Value =
        serde_json::from_str(&cli_ok(&server, &["task", "get", id, "-o", "json"], None)).unwrap();
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(shown["output"], done["output"]);
    let table = cli_ok(&server, &["task", "get", id], None);
    assert!(
        table.contains("succeeded") && table.contains("1/3"),
        "{table}"
    );

    // A delegate that cannot reach a manager is alive but not ready.
    let lonely_health = format!("127.0.0.1:{}", free_port());
    let _lonely = Delegate::spawn(
        &format!("http://127.0.0.1:{}", free_port()),
        &token,
        "lonely",
        &["--health-listen", &lonely_health],
    );
    let alive = eventually("the lonely delegate's /healthz", || async {
        http.get(format!("http://{lonely_health}/healthz"))
            .send()
            .await
            .ok()
            .map(|r| r.status())
    })
    .await;
    assert_eq!(alive, StatusCode::OK);
    let ready = http
        .get(format!("http://{lonely_health}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_disconnects_its_delegate_and_a_bad_token_stops_one() {
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (token_id, token) = api.delegate_token(PROJECT_A, "short-lived").await;
    let (_, other_token) = api.delegate_token(PROJECT_A, "keeper").await;
    let mut d = Delegate::spawn(&server.url, &token, "doomed", &[]);
    let _keeper = Delegate::spawn(&server.url, &other_token, "keeper", &[]);
    api.connected(PROJECT_A, "doomed", 0).await;
    api.connected(PROJECT_A, "keeper", 0).await;

    let started = Instant::now();
    let out = cli_ok(&server, &["delegate", "token", "revoke", &token_id], None);
    assert!(out.contains("revoked"), "{out}");
    let status = d.exit().await;
    let exit_after = started.elapsed();
    let v = api.disconnected(PROJECT_A, "doomed").await;
    let disconnected_after = started.elapsed();
    eprintln!(
        "figure: token revoked -> delegate process exited in {} ms, shown disconnected in {} ms",
        exit_after.as_millis(),
        disconnected_after.as_millis()
    );
    assert!(
        !status.success(),
        "a delegate whose token was revoked exits non-zero"
    );
    let log = d.log();
    assert!(
        log.contains("the delegate token was revoked")
            && log.contains("tether delegate token create"),
        "the delegate says why it stopped and what to do:\n{log}"
    );
    eprintln!(
        "the revoked delegate said: {}",
        log.lines().last().unwrap_or_default()
    );
    assert_eq!(v["connected"], false);
    // Only that token's delegate went away.
    assert_eq!(api.delegate(PROJECT_A, "keeper").await["connected"], true);
    let (_, tokens) = api.get(&format!("{PROJECT_A}/delegate-tokens")).await;
    let revoked = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == token_id.as_str())
        .unwrap();
    assert!(revoked["revokedAt"].as_i64().is_some(), "{tokens}");

    // The revoked token cannot connect again, and neither can a made-up one.
    for (name, bad) in [
        ("revoked", token.as_str()),
        ("made-up", "tdt_this-is-not-a-token"),
    ] {
        let mut d = Delegate::spawn(&server.url, bad, name, &[]);
        let status = d.exit().await;
        assert!(!status.success(), "{name}");
        let log = d.log();
        assert!(
            log.contains("refused the delegate token")
                && log.contains("tether delegate token create"),
            "{name}: the delegate says what is wrong and what to do:\n{log}"
        );
        assert!(!log.contains(bad), "{name}: the log shows the token");
    }
    // A token revoked twice, or one that does not exist.
    let again = cli(
        &server,
        &server.admin_token,
        &["delegate", "token", "revoke", "nope"],
        None,
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not found"),
        "{again:?}"
    );
}

/// A revocation written by another manager whose event never arrived (its
/// LISTEN connection dropped) still disconnects the delegate: each manager
/// re-checks the tokens of its connections. The event is skipped here by
/// revoking straight in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_event_was_lost_still_disconnects() {
    use sqlx::Connection;
    let server = TetherServer::start(bin(), FAST).unwrap();
    seed_projects(&server);
    let api = Api::new(&server);
    let (token_id, token) = api.delegate_token(PROJECT_A, "quiet").await;
    let mut d = Delegate::spawn(&server.url, &token, "unaware", &[]);
    api.connected(PROJECT_A, "unaware", 0).await;

    let db = server.data_dir.join("tether.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE delegate_tokens SET revoked_at = 1 WHERE id = $1")
        .bind(&token_id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let status = d.exit().await;
    assert!(!status.success(), "a revoked delegate stops: {}", d.log());
    assert!(d.log().contains("revoked"), "{}", d.log());
    api.disconnected(PROJECT_A, "unaware").await;
}
