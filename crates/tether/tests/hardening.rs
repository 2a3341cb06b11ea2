//! What an attacker or a careless client tried against the real binary (issue
//! 10): bodies that cost the manager too much, media types in other cases,
//! locking every admin out.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tether_testenv::TetherServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound on every request here: a manager whose workers are busy parsing does
/// not answer within it (before the fix, one such body took 57 s of CPU).
const PATIENCE: Duration = Duration::from_secs(60);

fn client() -> Client {
    Client::builder().timeout(PATIENCE).build().unwrap()
}

async fn token(server: &TetherServer, role: &str) -> String {
    let (s, v) = post_json(
        server,
        &server.admin_token,
        "/api/v1/tokens",
        json!({"name": format!("a {role}"), "role": role}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["value"].as_str().unwrap().to_string()
}

async fn post_json(
    server: &TetherServer,
    token: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// A task document whose payload is `depth` nested flow sequences (200 KB for
/// 100,000).
fn deep_task(depth: usize) -> String {
    format!(
        "kind: echo\npayload: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deeply_nested_yaml_is_refused_at_once_and_the_manager_keeps_answering() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    let body = deep_task(100_000);
    let send = |token: String| {
        let (url, body) = (server.url.clone(), body.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client()
                .post(format!("{url}/api/v1/tasks"))
                .bearer_auth(token)
                .header("content-type", "application/yaml")
                .body(body)
                .send()
                .await
                .expect("the manager answers a deep body");
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v, started.elapsed())
        })
    };
    // Several at once: more than the manager has worker threads.
    let in_flight: Vec<_> = (0..6).map(|_| send(server.admin_token.clone())).collect();
    let health = client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("/healthz answers while deep bodies are in flight");
    assert_eq!(health.status(), StatusCode::OK);
    for h in in_flight {
        let (status, v, took) = h.await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["code"], "INVALID_REQUEST", "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains("nests deeper than 128 levels") && message.contains("line 2"),
            "{message}"
        );
        eprintln!(
            "figure: a 100,000-deep YAML body (200 KB) refused in {} ms",
            took.as_millis()
        );
    }
    // The limit is the parser's own: 128 levels still parse (and here reach
    // the task route's own checks).
    let r = client()
        .post(format!("{}/api/v1/tasks", server.url))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/yaml")
        .body(deep_task(126))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(
        !v["message"].as_str().unwrap_or("").contains("nests deeper"),
        "{v}"
    );
}

/// Sends the head of a POST announcing a 1 MB body, and none of the body: a
/// manager that reads bodies before authorizing waits for it forever.
async fn head_only(server: &TetherServer, token: &str, path: &str) -> String {
    let addr = server.url.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/yaml\r\nContent-Length: 1000000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, sock.read(&mut answer))
        .await
        .expect("the manager answers before the body arrives")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).to_string()
}

#[tokio::test]
async fn a_caller_who_may_not_send_a_body_is_refused_before_it_is_read() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    let viewer = token(&server, "viewer").await;
    let editor = token(&server, "editor").await;
    for (token, path, who) in [
        (
            viewer.as_str(),
            "/api/v1/tasks",
            "a viewer submitting a task",
        ),
        (
            viewer.as_str(),
            "/api/v1/connectors",
            "a viewer creating a connector",
        ),
        (
            editor.as_str(),
            "/api/v1/tokens",
            "an editor creating a token",
        ),
        (editor.as_str(), "/api/v1/orgs", "an editor creating an org"),
        ("tth_not-a-token", "/api/v1/secrets", "an unknown token"),
    ] {
        let answer = head_only(&server, token, path).await;
        let status = answer.split_whitespace().nth(1).unwrap_or("");
        assert!(status == "403" || status == "401", "{who}: {answer}");
        assert!(
            answer.contains("\"code\""),
            "{who}: the API's error shape: {answer}"
        );
    }
    // An editor may send one: the manager waits for it (and gets a small one).
    let (s, v) = post_json(&server, &editor, "/api/v1/tasks", json!({"kind": "nope"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "kind", "{v}");
}

#[tokio::test]
async fn media_types_are_compared_as_the_rfc_says() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    for (i, ctype) in [
        "APPLICATION/JSON",
        "Application/Json; Charset=UTF-8",
        "application/json ; charset=utf-8",
    ]
    .into_iter()
    .enumerate()
    {
        let r = client()
            .post(format!("{}/api/v1/orgs", server.url))
            .bearer_auth(&server.admin_token)
            .header("content-type", ctype)
            .header("accept", "APPLICATION/YAML")
            .body(json!({"name": format!("Org {i}")}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{ctype}");
        assert_eq!(r.headers()["content-type"], "application/yaml", "{ctype}");
        let text = r.text().await.unwrap();
        assert!(text.contains(&format!("identifier: Org_{i}")), "{text}");
    }
    let r = client()
        .post(format!("{}/api/v1/orgs", server.url))
        .bearer_auth(&server.admin_token)
        .header("content-type", "TEXT/YAML; charset=utf-8")
        .body("name: Yaml Org\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .post(format!("{}/api/v1/orgs", server.url))
        .bearer_auth(&server.admin_token)
        .header("content-type", "text/plain")
        .body("name: x\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn the_last_admin_token_of_the_account_cannot_be_revoked() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    let http = client();
    let whoami: Value = http
        .get(format!("{}/api/v1/whoami", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = whoami["id"].as_str().unwrap().to_string();
    let revoke = |token: String, id: String| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let r = http
                .delete(format!("{url}/api/v1/tokens/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = revoke(server.admin_token.clone(), first.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("last live admin token") && message.contains("tether token create"),
        "{message}"
    );
    // With a second admin token the first may go; then the second is the last.
    let (s, second) = post_json(
        &server,
        &server.admin_token,
        "/api/v1/tokens",
        json!({"name": "second admin", "role": "admin"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    let second_value = second["value"].as_str().unwrap().to_string();
    let second_id = second["token"]["id"].as_str().unwrap().to_string();
    let (s, v) = revoke(second_value.clone(), first).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = revoke(second_value, second_id).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

/// Signs in through the login form with `next`; returns the redirect's status
/// and `Location`.
async fn sign_in(server: &TetherServer, next: &str) -> (StatusCode, String) {
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/login", server.url))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{}/login", server.url))
        .header("cookie", cookie)
        .form(&[
            ("token", server.admin_token.as_str()),
            ("csrf", &csrf),
            ("next", next),
        ])
        .send()
        .await
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status(), location)
}

#[tokio::test]
async fn sign_in_sends_the_browser_only_to_paths_of_this_site() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    assert_eq!(
        sign_in(&server, "/connectors?status=SUCCESS").await,
        (
            StatusCode::SEE_OTHER,
            "/connectors?status=SUCCESS".to_string()
        )
    );
    // A browser drops the tab: `/\t/evil.example/x` would be `//evil.example/x`.
    for next in [
        "/\t/evil.example/x",
        "/\n/evil.example",
        "/a\r\nSet-Cookie: x=y",
    ] {
        assert_eq!(
            sign_in(&server, next).await,
            (StatusCode::SEE_OTHER, "/".to_string()),
            "{next:?}"
        );
    }
}

/// The recovery for an operator who lost every admin token (issue 10, item
/// 5): `tether server admin-token` on the manager host, with the server's
/// database and key, prints a new account admin token once and stores only its
/// hash. Where there is no database or key it creates none.
#[tokio::test]
async fn an_operator_who_lost_every_admin_token_recovers_on_the_manager_host() {
    for (backend, server) in servers().await {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["server", "admin-token", "--name", "recovered", "--data-dir"])
            .arg(&server.data_dir)
            .env_remove("TETHER_KEK");
        if let Some(url) = &server.database_url {
            cmd.args(["--database-url", url]);
        }
        let out = cmd.output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{backend}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = said
            .split_whitespace()
            .find(|w| w.starts_with(tether_store::TOKEN_PREFIX))
            .unwrap_or_else(|| panic!("{backend}: no token in {said}"))
            .to_string();
        assert_ne!(token, server.admin_token, "{backend}");
        // The running manager takes it at once, as an account admin.
        let http = client();
        let me: Value = http
            .get(format!("{}/api/v1/whoami", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["name"], "recovered", "{backend}: {me}");
        assert_eq!(me["role"], "admin", "{backend}: {me}");
        assert!(me.get("orgIdentifier").is_none(), "{backend}: {me}");
        let (s, v) = post_json(
            &server,
            &token,
            "/api/v1/tokens",
            json!({"name": "made by the recovered admin", "role": "admin"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{backend}: {v}");
        // Shown once: not written to the admin-token file, not in the database.
        let file =
            std::fs::read_to_string(server.data_dir.join(tether_store::ADMIN_TOKEN_FILE_NAME))
                .unwrap_or_default();
        assert!(!file.contains(&token), "{backend}");
        if server.database_url.is_none() {
            for name in ["tether.db", "tether.db-wal"] {
                let bytes = std::fs::read(server.data_dir.join(name)).unwrap_or_default();
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{backend}: the token is in {name} in clear"
                );
            }
        }
    }
    // A directory without a database: refused, and nothing is created.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["server", "admin-token", "--data-dir"])
        .arg(empty.path())
        .env_remove("TETHER_KEK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no tether database") && err.contains("--data-dir"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}
