//! No report, hint, error, history row, task or log holds a resolved secret
//! value: known values in every secret field of every auth type, connection
//! tests run by a real delegate against a listener, an identity provider and
//! stand-ins for STS and Entra ID that echo back everything they were sent,
//! and every answer scanned.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tether_testenv::{HttpRequest, HttpsServer, TestCa, TetherServer};

use super::grants::{doc, project_token, PROJECT};
use crate::common::{bin, cli_ok};
use crate::support::{Api, Delegate, ACCOUNT};

/// Every planted value starts with this, so any piece of one is found.
const MARK: &str = "planted-";

/// Answers like an API server that quotes the credentials it got, and like an
/// OIDC issuer whose errors quote the whole token request. The issuer's
/// answer depends on its path: `/grant`, `/client`, `/unauth`.
fn echo(req: &HttpRequest) -> (u16, String, String) {
    let json = "application/json".to_string();
    let host = req.header("host").unwrap_or("127.0.0.1").to_string();
    if let Some(base) = req.path.strip_suffix("/.well-known/openid-configuration") {
        let issuer = format!("https://{host}{base}");
        return (
            200,
            json,
            json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token")}).to_string(),
        );
    }
    if let Some(kind) = req.path.strip_suffix("/token") {
        let error = match kind {
            "/client" => "invalid_client",
            "/unauth" => "unauthorized_client",
            _ => "invalid_grant",
        };
        return (
            400,
            json,
            json!({"error": error, "error_description": format!("request was {}", req.body)})
                .to_string(),
        );
    }
    match req.header("authorization") {
        None => (
            200,
            json,
            json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2"}).to_string(),
        ),
        Some(auth) => {
            // Basic credentials decoded, as a proxy logging them would.
            let decoded = auth
                .strip_prefix("Basic ")
                .and_then(|b| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                })
                .map(|b| String::from_utf8_lossy(&b).to_string())
                .unwrap_or_else(|| auth.to_string());
            (
                401,
                json,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": format!("Unauthorized: you sent {decoded}"),
                       "reason": "Unauthorized", "code": 401})
                .to_string(),
            )
        }
    }
}

/// Answers like STS and Entra ID would if their errors quoted the request:
/// STS the presigned URL (access key id, session token), Entra ID the form
/// (client id and secret).
fn cloud_echo(req: &HttpRequest) -> (u16, String, String) {
    if req.path.ends_with("/oauth2/v2.0/token") {
        return (
            401,
            "application/json".into(),
            json!({"error": "invalid_client",
                   "error_description": format!("AADSTS7000215: request was {}", req.body)})
            .to_string(),
        );
    }
    (
        403,
        "text/xml".into(),
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>request was {} {}</Message></Error></ErrorResponse>",
            req.method,
            req.path.replace('&', "&amp;")
        ),
    )
}

#[tokio::test]
async fn no_secret_value_reaches_a_report_history_task_or_log() {
    let ca = TestCa::new("echo-ca");
    let listener = HttpsServer::start(&ca, Arc::new(echo)).await;
    let cloud = HttpsServer::start_plain(Arc::new(cloud_echo)).await;
    let server =
        TetherServer::start(bin(), &["--test-on-change=false", "--retest-interval", "0"]).unwrap();
    let admin = Api::new(&server);
    let editor = Api::at(&server.url, &project_token(&server, "editor").await);
    let secrets = [
        ("ca", ca.pem.clone()),
        ("sa_tok", format!("{MARK}sa-token-11aa11")),
        ("user", format!("{MARK}username-22bb22")),
        ("pw", format!("{MARK}password-33cc33")),
        ("cert", format!("{MARK}client-cert-44dd44")),
        ("key", format!("{MARK}client-key-55ee55")),
        ("pass", format!("{MARK}passphrase-66ff66")),
        ("cid", format!("{MARK}client-id-7a7a7a")),
        ("opw", format!("{MARK}oidc-password-8b8b8b")),
        ("ouser", format!("{MARK}oidc-user-9c9c9c")),
        ("osec", format!("{MARK}oidc-secret-0d0d0d")),
        ("akid", format!("{MARK}aws-key-id-1e1e1e")),
        ("sak", format!("{MARK}aws-secret-key-2f2f2f")),
        ("stok", format!("{MARK}aws-session-token-3a3a3a")),
        ("aks_cid", format!("{MARK}aks-client-id-4b4b4b")),
        ("aks_sec", format!("{MARK}aks-client-secret-5c5c5c")),
    ];
    for (id, value) in &secrets {
        cli_ok(
            &server,
            &[
                "secret",
                "create",
                "--name",
                id,
                "--identifier",
                id,
                "--org",
                "default",
                "--project",
                "web",
            ],
            Some(value),
        );
    }
    let (_, token) = admin.delegate_token(ACCOUNT, "scrub").await;
    let delegate = Delegate::spawn(&server.url, &token, "scrubber", &[]);
    admin.connected(ACCOUNT, "scrubber", 0).await;

    let url = &listener.url;
    let oidc = |path: &str| {
        json!({"oidcIssuerUrl": format!("{url}{path}"), "oidcClientIdRef": "cid",
               "oidcPasswordRef": "opw", "oidcUsernameRef": "ouser",
               "oidcSecretRef": "osec", "caCertRef": "ca"})
    };
    let cases = [
        (
            "sa",
            "ServiceAccount",
            json!({"serviceAccountTokenRef": "sa_tok", "caCertRef": "ca"}),
            "UNAUTHORIZED",
        ),
        (
            "up",
            "UsernamePassword",
            json!({"usernameRef": "user", "passwordRef": "pw", "caCertRef": "ca"}),
            "UNAUTHORIZED",
        ),
        (
            "ckc",
            "ClientKeyCert",
            json!({"clientCertRef": "cert", "clientKeyRef": "key",
                   "clientKeyPassphraseRef": "pass", "caCertRef": "ca"}),
            "",
        ),
        (
            "oidc_grant",
            "OpenIdConnect",
            oidc("/grant"),
            "OIDC_GRANT_REJECTED",
        ),
        (
            "oidc_client",
            "OpenIdConnect",
            oidc("/client"),
            "OIDC_CLIENT_REJECTED",
        ),
        (
            "oidc_unauth",
            "OpenIdConnect",
            oidc("/unauth"),
            "OIDC_GRANT_NOT_ALLOWED",
        ),
        (
            "eks",
            "EKS",
            json!({"region": "eu-west-1", "clusterName": "prod", "accessKeyIdRef": "akid",
                   "secretAccessKeyRef": "sak", "sessionTokenRef": "stok",
                   "stsEndpoint": cloud.url, "eksEndpoint": cloud.url, "caCertRef": "ca"}),
            "CLOUD_CREDENTIALS_REJECTED",
        ),
        (
            "aks",
            "AKS",
            json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "clientIdRef": "aks_cid",
                   "clientSecretRef": "aks_sec", "authorityHost": cloud.url, "caCertRef": "ca"}),
            "CLOUD_CREDENTIALS_REJECTED",
        ),
    ];
    let mut seen: Vec<(String, Value)> = Vec::new();
    for (id, auth, spec, want) in &cases {
        let (s, v) = editor
            .post(
                &format!("{PROJECT}/connectors"),
                doc(id, url, auth, spec.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{id}: {v:#}");
        let (s, report) = editor
            .post(&format!("{PROJECT}/connectors/{id}/test"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{id}: {report:#}");
        assert_eq!(report["status"], "FAILURE", "{id}: {report:#}");
        assert!(
            report["taskId"].is_string(),
            "a delegate ran it: {report:#}"
        );
        if !want.is_empty() {
            assert_eq!(report["errors"][0]["reason"], *want, "{id}: {report:#}");
        }
        let task = admin.task(report["taskId"].as_str().unwrap()).await;
        seen.push((format!("{id} task"), task));
        seen.push((format!("{id} report"), report));
        seen.push((
            format!("{id} connector"),
            editor.get(&format!("{PROJECT}/connectors/{id}")).await.1,
        ));
        seen.push((
            format!("{id} history"),
            editor
                .get(&format!("{PROJECT}/connectors/{id}/test-history"))
                .await
                .1,
        ));
    }
    // The OIDC hint names the fields, not what they resolved to.
    let grant = &seen
        .iter()
        .find(|(w, _)| w == "oidc_grant report")
        .unwrap()
        .1;
    assert!(
        grant["hints"][0]
            .as_str()
            .unwrap()
            .contains("oidcUsernameRef"),
        "{grant:#}"
    );

    let ca_line = ca
        .pem
        .lines()
        .find(|l| l.len() >= 60 && !l.starts_with("-----"))
        .unwrap()
        .to_string();
    let logs = [
        ("server log", server.log()),
        ("delegate log", delegate.log()),
    ];
    for (what, text) in seen
        .iter()
        .map(|(w, v)| (w.as_str(), v.to_string()))
        .chain(logs.iter().map(|(w, t)| (*w, t.clone())))
    {
        assert!(
            !text.contains(MARK),
            "{what} holds (a piece of) a secret value: {text}"
        );
        assert!(!text.contains(&ca_line), "{what} quotes the CA PEM: {text}");
    }
    // The echoes did arrive: what is in the reports is their redacted form.
    let all: String = seen.iter().map(|(_, v)| v.to_string()).collect();
    assert!(all.contains("<secret sa_tok>"), "{all}");
    assert!(all.contains("<secret ouser>"), "{all}");
    assert!(all.contains("<secret akid>"), "{all}");
    assert!(all.contains("<secret aks_sec>"), "{all}");
}
