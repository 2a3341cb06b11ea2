//! The REST API through the real binary: errors, scopes, references, limits, and
//! the promise that secret values never come back out.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tether_testenv::TetherServer;

struct Api<'a> {
    http: Client,
    server: &'a TetherServer,
    token: String,
    /// Every response body seen, to search for secret values afterwards.
    seen: std::cell::RefCell<Vec<String>>,
}

impl<'a> Api<'a> {
    fn new(server: &'a TetherServer, token: &str) -> Self {
        Api {
            http: Client::new(),
            server,
            token: token.to_string(),
            seen: Default::default(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        accept: &str,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.server.url, path))
            .bearer_auth(&self.token)
            .header("accept", accept);
        if let Some((ctype, bytes)) = body {
            req = req.header("content-type", ctype).body(bytes);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        self.seen.borrow_mut().push(text.clone());
        (status, text)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, t) = self
            .call(reqwest::Method::GET, path, None, "application/json")
            .await;
        (s, serde_json::from_str(&t).unwrap_or(Value::Null))
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        v: Value,
    ) -> (StatusCode, Value) {
        let (s, t) = self
            .call(
                method,
                path,
                Some(("application/json", v.to_string().into_bytes())),
                "application/json",
            )
            .await;
        (s, serde_json::from_str(&t).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, v: Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, v).await
    }
}

const PROJECT: &str = "/api/v1/orgs/default/projects/web";

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[tokio::test]
async fn secret_values_never_leave_the_server() {
    for (backend, server) in servers().await {
        seed(&server);
        for (file, _) in FIXTURES {
            cli_ok(
                &server,
                &["connector", "apply", "-f", fixture(file).to_str().unwrap()],
                None,
            );
        }
        let api = Api::new(&server, &server.admin_token);
        // Read everything there is to read, in both formats.
        for path in [
            "/api/v1/secrets",
            "/api/v1/orgs/default/secrets",
            &format!("{PROJECT}/secrets"),
            &format!("{PROJECT}/secrets/sa_token"),
            &format!("{PROJECT}/connectors"),
            &format!("{PROJECT}/connectors/prod_cluster"),
            &format!("{PROJECT}/connectors/oidc_cluster"),
        ] {
            for accept in ["application/json", "application/yaml"] {
                let (status, _) = api.call(reqwest::Method::GET, path, None, accept).await;
                assert_eq!(status, StatusCode::OK, "{backend} {path}");
            }
        }
        // An update that changes the value, and a failed create, go through too.
        let (s, _) = api
            .send_json(
                reqwest::Method::PUT,
                &format!("{PROJECT}/secrets/sa_token"),
                json!({"name": "sa_token", "value": "value-rotated-sa-token-77aa"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = api
            .post(
                &format!("{PROJECT}/secrets"),
                json!({"name": "sa token", "identifier": "sa_token", "value": "value-dup-5e5e"}),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let mut cli_out = cli_ok(
            &server,
            &[
                "secret",
                "list",
                "--org",
                "default",
                "--project",
                "web",
                "-o",
                "json",
            ],
            None,
        );
        cli_out += &cli_ok(
            &server,
            &[
                "secret",
                "get",
                "sa_token",
                "--org",
                "default",
                "--project",
                "web",
                "-o",
                "yaml",
            ],
            None,
        );

        let mut values: Vec<&str> = SECRETS.iter().map(|s| s.2).collect();
        values.extend(["value-rotated-sa-token-77aa", "value-dup-5e5e"]);
        let responses = api.seen.borrow().join("\n") + &cli_out;
        let log = server.log();
        assert!(log.contains("secret created"), "the log is captured: {log}");
        let mut files = String::new();
        for entry in std::fs::read_dir(&server.data_dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                files.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            }
        }
        let dump = if backend == "postgres" {
            pg_dump(&server).await
        } else {
            String::new()
        };
        for v in values {
            assert!(!responses.contains(v), "{backend}: a response contains {v}");
            assert!(!log.contains(v), "{backend}: the log contains {v}");
            assert!(!files.contains(v), "{backend}: a data file contains {v}");
            assert!(!dump.contains(v), "{backend}: the database contains {v}");
        }
    }
}

/// Every row of every table of the server's PostgreSQL database, as text.
async fn pg_dump(server: &TetherServer) -> String {
    use sqlx::{Connection, Row};
    let url = server.database_url.clone().expect("a PostgreSQL server");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert!(!tables.is_empty());
    let mut out = String::new();
    for t in tables {
        for r in sqlx::query(&format!("SELECT t::text FROM {t} t"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            out.push_str(&r.get::<String, _>(0));
            out.push('\n');
        }
    }
    out
}

/// POSTs a body over a plain socket and reads the answer even when the server
/// stops reading early (as it does for a body over the limit), which HTTP
/// client libraries report as a broken connection instead of the 413.
async fn raw_post(server: &TetherServer, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.url.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.admin_token,
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let _ = sock.write_all(body).await; // may fail once the server has answered
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_project_token_cannot_reach_another_project() {
    for (backend, server) in servers().await {
        seed(&server);
        cli_ok(
            &server,
            &[
                "project",
                "create",
                "Other",
                "--org",
                "default",
                "--identifier",
                "other",
            ],
            None,
        );
        cli_ok(
            &server,
            &[
                "secret",
                "create",
                "--name",
                "b_secret",
                "--org",
                "default",
                "--project",
                "other",
            ],
            Some("value-b"),
        );
        let token = cli_ok(
            &server,
            &[
                "token",
                "create",
                "--name",
                "web-ci",
                "--role",
                "editor",
                "--org",
                "default",
                "--project",
                "web",
            ],
            None,
        );
        let api = Api::new(&server, token.trim());
        let other = "/api/v1/orgs/default/projects/other";

        let (s, _) = api.get(&format!("{PROJECT}/secrets")).await;
        assert_eq!(s, StatusCode::OK, "{backend}: own project is readable");
        for path in [
            format!("{other}/secrets"),
            format!("{other}/secrets/b_secret"),
            format!("{other}/connectors"),
            "/api/v1/secrets".into(),
            "/api/v1/orgs/default/connectors".into(),
        ] {
            let (s, body) = api.get(&path).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{backend} GET {path}: {body}");
            assert_eq!(body["code"], "FORBIDDEN");
        }
        let (s, _) = api
            .post(
                &format!("{other}/secrets"),
                json!({"name": "x", "value": "v"}),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{backend}: cannot write into another project"
        );
        let (s, _) = api
            .call(
                reqwest::Method::DELETE,
                &format!("{other}/secrets/b_secret"),
                None,
                "application/json",
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // An editor cannot mint tokens, even for its own project.
        let (s, _) = api
            .post(
                &format!("{PROJECT}/tokens"),
                json!({"name": "t", "role": "admin"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // The other project's secret is untouched.
        let admin = Api::new(&server, &server.admin_token);
        let (s, _) = admin.get(&format!("{other}/secrets/b_secret")).await;
        assert_eq!(s, StatusCode::OK);

        // A viewer may read but not write; a revoked token is refused at once.
        let viewer = cli_ok(
            &server,
            &[
                "token",
                "create",
                "--name",
                "ro",
                "--role",
                "viewer",
                "--org",
                "default",
                "--project",
                "web",
            ],
            None,
        );
        let ro = Api::new(&server, viewer.trim());
        assert_eq!(
            ro.get(&format!("{PROJECT}/connectors")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            ro.post(
                &format!("{PROJECT}/secrets"),
                json!({"name": "x", "value": "v"})
            )
            .await
            .0,
            StatusCode::FORBIDDEN
        );
        let (_, me) = ro.get("/api/v1/whoami").await;
        cli_ok(
            &server,
            &["token", "revoke", me["id"].as_str().unwrap()],
            None,
        );
        assert_eq!(
            ro.get(&format!("{PROJECT}/connectors")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            Api::new(&server, "tth_wrong").get("/api/v1/whoami").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_nothing_is_stored() {
    for (backend, server) in servers().await {
        seed(&server);
        let api = Api::new(&server, &server.admin_token);
        let url = format!("{PROJECT}/connectors");
        let sa = fixture_text("sa.yaml");
        let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
            (
                "unknown field",
                "application/yaml",
                sa.replace("caCertRef", "caCertificateRef").into_bytes(),
                StatusCode::BAD_REQUEST,
                "caCertificateRef",
            ),
            (
                "wrong type",
                "application/yaml",
                sa.replace("delegateSelectors:\n    - eu-west", "delegateSelectors: 7")
                    .into_bytes(),
                StatusCode::BAD_REQUEST,
                "delegateSelectors",
            ),
            (
                "malformed yaml",
                "application/yaml",
                b"connector: [unclosed".to_vec(),
                StatusCode::BAD_REQUEST,
                "YAML",
            ),
            (
                "malformed json",
                "application/json",
                b"{\"connector\": ".to_vec(),
                StatusCode::BAD_REQUEST,
                "JSON",
            ),
            (
                "invalid utf-8",
                "application/yaml",
                [sa.as_bytes(), &[0xff, 0xfe]].concat(),
                StatusCode::BAD_REQUEST,
                "UTF-8",
            ),
            (
                "unsupported type",
                "text/plain",
                sa.clone().into_bytes(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/yaml",
            ),
            (
                "invalid name",
                "application/yaml",
                sa.replace("name: prod cluster", "name: prod;cluster")
                    .into_bytes(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
            ),
            (
                "reserved identifier",
                "application/yaml",
                sa.replace("identifier: prod_cluster", "identifier: class")
                    .into_bytes(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "reserved",
            ),
            (
                "wrong scope",
                "application/yaml",
                sa.replace("projectIdentifier: web", "projectIdentifier: other")
                    .into_bytes(),
                StatusCode::BAD_REQUEST,
                "project",
            ),
            (
                "credentials in masterUrl",
                "application/yaml",
                sa.replace("https://", "https://admin:pw-in-url-77e1@")
                    .into_bytes(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "UsernamePassword",
            ),
            (
                "query in masterUrl",
                "application/yaml",
                sa.replace(":6443", ":6443?insecure=true").into_bytes(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "query",
            ),
            (
                "plain http masterUrl",
                "application/yaml",
                sa.replace("https://", "http://").into_bytes(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unencrypted",
            ),
        ];
        for (what, ctype, body, status, needle) in cases {
            let (s, text) = api
                .call(
                    reqwest::Method::POST,
                    &url,
                    Some((ctype, body)),
                    "application/json",
                )
                .await;
            assert_eq!(s, status, "{backend} {what}: {text}");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{what}: not our JSON error shape: {text}"));
            assert!(
                v["code"].is_string() && v["message"].is_string(),
                "{what}: {text}"
            );
            assert!(text.contains(needle), "{backend} {what}: {text}");
            if what.contains("masterUrl") {
                assert_eq!(
                    v["field"], "spec.credential.spec.masterUrl",
                    "{backend} {what}: {text}"
                );
                assert!(!text.contains("pw-in-url-77e1"), "{what}: {text}");
            }
        }
        let (status, text) = raw_post(&server, &url, &vec![b'#'; 2 << 20]).await;
        assert_eq!(status, 413, "{backend} oversized: {text}");
        assert!(
            text.contains("PAYLOAD_TOO_LARGE") && text.contains("1 MiB"),
            "{text}"
        );
        let (_, text) = api
            .call(
                reqwest::Method::POST,
                &url,
                Some((
                    "application/yaml",
                    sa.replace("name: prod cluster", "name: prod;cluster")
                        .into_bytes(),
                )),
                "application/json",
            )
            .await;
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["field"], "name", "validation errors name the field");
        let (s, list) = api.get(&url).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["total"], 0, "{backend}: nothing was stored: {list}");
        // The list parameters are checked too.
        assert_eq!(
            api.get(&format!("{url}?limit=1001")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            api.get(&format!("{url}?sort=color")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            api.get(&format!("{url}?colour=red")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            api.get("/api/v1/orgs/nope/connectors").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            api.get(&format!("{url}/nope")).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn deleting_a_referenced_secret_names_the_connectors() {
    for (backend, server) in servers().await {
        seed(&server);
        cli_ok(
            &server,
            &[
                "connector",
                "apply",
                "-f",
                fixture("sa.yaml").to_str().unwrap(),
            ],
            None,
        );
        cli_ok(
            &server,
            &[
                "connector",
                "apply",
                "-f",
                fixture("clientcert.yaml").to_str().unwrap(),
            ],
            None,
        );
        let api = Api::new(&server, &server.admin_token);
        let (s, body) = api
            .call(
                reqwest::Method::DELETE,
                "/api/v1/orgs/default/secrets/cluster_ca",
                None,
                "application/json",
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{backend}: {body}");
        assert!(
            body.contains("prod_cluster") && body.contains("edge"),
            "{backend}: {body}"
        );
        cli_ok(
            &server,
            &[
                "connector",
                "delete",
                "prod_cluster",
                "--org",
                "default",
                "--project",
                "web",
            ],
            None,
        );
        cli_ok(
            &server,
            &[
                "connector",
                "delete",
                "edge",
                "--org",
                "default",
                "--project",
                "web",
            ],
            None,
        );
        let (s, _) = api
            .call(
                reqwest::Method::DELETE,
                "/api/v1/orgs/default/secrets/cluster_ca",
                None,
                "application/json",
            )
            .await;
        assert_eq!(
            s,
            StatusCode::NO_CONTENT,
            "{backend}: free once no connector uses it"
        );
    }
}

#[tokio::test]
async fn lists_page_search_filter_and_sort() {
    for (backend, server) in servers().await {
        seed(&server);
        for (file, _) in FIXTURES {
            cli_ok(
                &server,
                &["connector", "apply", "-f", fixture(file).to_str().unwrap()],
                None,
            );
        }
        let api = Api::new(&server, &server.admin_token);
        let url = format!("{PROJECT}/connectors");
        let ids = |v: &Value| -> Vec<String> {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["connector"]["identifier"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, v) = api.get(&format!("{url}?limit=2&page=1")).await;
        assert_eq!(v["total"], 5, "{backend}");
        assert_eq!(
            ids(&v),
            vec!["legacy", "oidc_cluster"],
            "{backend}: by name, second page (pages count from 0)"
        );
        let (_, v) = api.get(&format!("{url}?search=CLUSTER")).await;
        assert_eq!(
            ids(&v),
            vec!["in_cluster", "legacy", "oidc_cluster", "prod_cluster"],
            "{backend}"
        );
        let (_, v) = api.get(&format!("{url}?authType=ClientKeyCert")).await;
        assert_eq!(ids(&v), vec!["edge"]);
        let (_, v) = api
            .get(&format!("{url}?credentialType=InheritFromDelegate"))
            .await;
        assert_eq!(ids(&v), vec!["in_cluster"]);
        // Each apply started a connection test in the background; without a
        // delegate each ends FAILURE (NO_ELIGIBLE_DELEGATE). No event says
        // when: poll, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, v) = api.get(&format!("{url}?status=FAILURE")).await;
            if v["total"] == 5 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{backend}: {v}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (_, v) = api.get(&format!("{url}?status=UNKNOWN")).await;
        assert_eq!(v["total"], 0);
        let (_, v) = api
            .get(&format!("{url}?sort=created&order=desc&limit=1"))
            .await;
        assert_eq!(ids(&v), vec!["in_cluster"], "{backend}: newest first");
    }
}

#[tokio::test]
async fn rotating_the_key_keeps_every_secret_usable() {
    let mut server = TetherServer::start(bin(), &[]).unwrap();
    seed(&server);
    let data_dir = server.data_dir.clone();
    let old_key = std::fs::read_to_string(data_dir.join("kek")).unwrap();
    server.kill();
    let out = std::process::Command::new(bin())
        .args(["server", "rotate-key", "--data-dir"])
        .arg(&data_dir)
        .env_remove("TETHER_KEK")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("Re-encrypted {} secrets", SECRETS.len())),
        "{said}"
    );
    let new_key = std::fs::read_to_string(data_dir.join("kek")).unwrap();
    assert_ne!(old_key, new_key);
    // The server starts with the new key (a wrong key would refuse to start) and
    // the secrets still resolve.
    let server = TetherServer::start_in(bin(), &data_dir, &[]).unwrap();
    cli_ok(
        &server,
        &[
            "connector",
            "apply",
            "-f",
            fixture("sa.yaml").to_str().unwrap(),
        ],
        None,
    );
    drop(server);
    // With the old key, the server refuses to start and says why.
    let old_file = data_dir.with_extension("oldkek");
    std::fs::write(&old_file, old_key).unwrap();
    let err = TetherServer::start_in(
        bin(),
        &data_dir,
        &["--kek-file", old_file.to_str().unwrap()],
    )
    .err()
    .expect("the old key must be refused")
    .to_string();
    assert!(err.contains("key-encryption key"), "{err}");
}

#[tokio::test]
async fn body_errors_name_the_document_path_of_the_field() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    seed(&server);
    let api = Api::new(&server, &server.admin_token);
    let url = format!("{PROJECT}/connectors");
    let sa = fixture_text("sa.yaml");
    let auth = "spec.credential.spec.auth.spec";
    let missing_yaml = sa.replace("            serviceAccountTokenRef: sa_token\n", "");
    let mut missing_json: Value = serde_yaml::from_str(&sa).unwrap();
    missing_json["connector"]["spec"]["credential"]["spec"]["auth"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccountTokenRef");
    let cases: Vec<(&str, &str, Vec<u8>, String)> = vec![
        (
            "missing field, YAML",
            "application/yaml",
            missing_yaml.into_bytes(),
            format!("{auth}.serviceAccountTokenRef"),
        ),
        (
            "missing field, JSON",
            "application/json",
            missing_json.to_string().into_bytes(),
            format!("{auth}.serviceAccountTokenRef"),
        ),
        (
            "unknown field",
            "application/yaml",
            sa.replace("caCertRef", "caCertificateRef").into_bytes(),
            format!("{auth}.caCertificateRef"),
        ),
        (
            "wrong type",
            "application/yaml",
            sa.replace("delegateSelectors:\n    - eu-west", "delegateSelectors: 7")
                .into_bytes(),
            "spec.delegateSelectors".to_string(),
        ),
    ];
    for (what, ctype, body, field) in cases {
        let (s, text) = api
            .call(
                reqwest::Method::POST,
                &url,
                Some((ctype, body)),
                "application/json",
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["code"], "INVALID_REQUEST", "{what}: {text}");
        assert_eq!(v["field"], field.as_str(), "{what}: {text}");
    }
}

#[tokio::test]
async fn harness_oidc_scopes_as_one_string_are_accepted_and_exported_as_given() {
    let server = TetherServer::start(bin(), &[]).unwrap();
    seed(&server);
    let api = Api::new(&server, &server.admin_token);
    let url = format!("{PROJECT}/connectors");
    let mut doc: Value = serde_json::from_str(&fixture_text("oidc.json")).unwrap();
    for (id, scopes) in [
        ("harness_spaces", json!("openid email")),
        ("harness_commas", json!("openid,email")),
        ("as_a_list", json!(["openid", "email"])),
    ] {
        doc["connector"]["identifier"] = json!(id);
        doc["connector"]["name"] = json!(id);
        doc["connector"]["spec"]["credential"]["spec"]["auth"]["spec"]["oidcScopes"] =
            scopes.clone();
        let (s, v) = api.post(&url, doc.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{id}: {v}");
        let (s, got) = api.get(&format!("{url}/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            got["connector"]["spec"]["credential"]["spec"]["auth"]["spec"]["oidcScopes"], scopes,
            "{id}: exported as given: {got:#}"
        );
    }
}
