//! A project editor may not use account or org secrets without a use grant,
//! for any auth type, through the API and `connector apply`; with a grant it
//! may; host binding refuses foreign URLs; a revoked grant stops the test.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tether_testenv::TetherServer;

use crate::common::{bin, cli, cli_ok};
use crate::support::Api;

pub const PROJECT: &str = "/api/v1/orgs/default/projects/web";
const AUTH: &str = "spec.credential.spec.auth.spec";

/// A connector document of the project `default/web`.
pub fn doc(id: &str, master_url: &str, auth_type: &str, spec: Value) -> Value {
    json!({"connector": {
        "name": id, "identifier": id, "type": "K8sCluster",
        "spec": {"credential": {"type": "ManualConfig", "spec": {
            "masterUrl": master_url,
            "auth": {"type": auth_type, "spec": spec}
        }}}
    }})
}

/// Org `default`, project `web`, and a token of the project with `role`.
pub async fn project_token(server: &TetherServer, role: &str) -> String {
    for args in [
        &["org", "create", "Default", "--identifier", "default"][..],
        &[
            "project",
            "create",
            "Web",
            "--org",
            "default",
            "--identifier",
            "web",
        ],
    ] {
        let out = cli(server, &server.admin_token, args, None);
        assert!(
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("exists"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (s, v) = Api::new(server)
        .post(
            &format!("{PROJECT}/tokens"),
            json!({"name": format!("project {role}"), "role": role}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["value"].as_str().unwrap().to_string()
}

/// Creates secret `id` with `value` at the account (`org` None) or in org `default`.
pub fn secret(server: &TetherServer, org: bool, id: &str, value: &str, extra: &[&str]) {
    let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
    if org {
        args.extend(["--org", "default"]);
    }
    args.extend(extra);
    cli_ok(server, &args, Some(value));
}

/// `tether secret update ID [--org default] ARGS...` as the admin.
pub fn update_secret(server: &TetherServer, org: bool, id: &str, args: &[&str]) -> String {
    let mut all = vec!["secret", "update", id];
    if org {
        all.extend(["--org", "default"]);
    }
    all.extend(args);
    cli_ok(server, &all, None)
}

/// `tether connector test ID` of project `default/web` as `token`: refused
/// with SECRET_USE_DENIED (exit 1) before any task was made; its summary.
fn refused_test(server: &TetherServer, token: &str, id: &str) -> String {
    let args = [
        "connector",
        "test",
        id,
        "--org",
        "default",
        "--project",
        "web",
        "-o",
        "json",
    ];
    let out = cli(server, token, &args, None);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(
        report["errors"][0]["reason"], "SECRET_USE_DENIED",
        "{report:#}"
    );
    assert_eq!(report["errors"][0]["code"], 403, "{report:#}");
    assert!(report["taskId"].is_null(), "nothing was sent: {report:#}");
    report["errorSummary"].as_str().unwrap().to_string()
}

/// Fields named by a 403 SECRET_USE_DENIED.
fn denied_fields(status: StatusCode, body: &Value) -> BTreeSet<String> {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body:#}");
    assert_eq!(body["code"], "SECRET_USE_DENIED", "{body:#}");
    assert!(body["field"].is_string(), "{body:#}");
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

fn fields(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| format!("{AUTH}.{n}")).collect()
}

#[tokio::test]
async fn a_project_editor_needs_a_grant_for_every_auth_type() {
    let server = TetherServer::start(bin(), &["--test-on-change=false"]).unwrap();
    let editor = project_token(&server, "editor").await;
    let api = Api::at(&server.url, &editor);
    for id in [
        "sa_tok", "ca", "user", "pw", "cert", "key", "pass", "opw", "ouser", "osec",
    ] {
        secret(&server, false, id, &format!("planted-{id}-value"), &[]);
    }
    secret(&server, true, "cid", "planted-cid-value", &[]);

    let url = "https://10.0.0.1:6443";
    let cases = [
        (
            "sa",
            doc(
                "sa",
                url,
                "ServiceAccount",
                json!({"serviceAccountTokenRef": "account.sa_tok", "caCertRef": "account.ca"}),
            ),
            fields(&["serviceAccountTokenRef", "caCertRef"]),
        ),
        (
            "up",
            doc(
                "up",
                url,
                "UsernamePassword",
                json!({"usernameRef": "account.user", "passwordRef": "account.pw"}),
            ),
            fields(&["usernameRef", "passwordRef"]),
        ),
        (
            "ckc",
            doc(
                "ckc",
                url,
                "ClientKeyCert",
                json!({"clientCertRef": "account.cert", "clientKeyRef": "account.key",
                       "clientKeyPassphraseRef": "account.pass"}),
            ),
            fields(&["clientCertRef", "clientKeyRef", "clientKeyPassphraseRef"]),
        ),
        (
            "oidc",
            doc(
                "oidc",
                url,
                "OpenIdConnect",
                json!({"oidcIssuerUrl": "https://idp.example/realms/k8s",
                       "oidcClientIdRef": "org.cid", "oidcPasswordRef": "account.opw",
                       "oidcUsernameRef": "account.ouser", "oidcSecretRef": "account.osec"}),
            ),
            fields(&[
                "oidcClientIdRef",
                "oidcPasswordRef",
                "oidcUsernameRef",
                "oidcSecretRef",
            ]),
        ),
    ];
    for (id, body, want) in &cases {
        let (s, v) = api
            .post(&format!("{PROJECT}/connectors"), body.clone())
            .await;
        assert_eq!(&denied_fields(s, &v), want, "{id}: {v:#}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains("--usable-from project/default/web"),
            "{id}: the message says how to get the grant: {message}"
        );
        // PUT (what `connector apply` sends) is refused the same way.
        let (s, v) = api
            .call(
                reqwest::Method::PUT,
                &format!("{PROJECT}/connectors/{id}"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(&denied_fields(s, &v), want, "{id} (PUT): {v:#}");
    }
    // `connector apply` as the editor: refused, with the field.
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut yaml_doc = cases[1].1.clone();
    yaml_doc["connector"]["orgIdentifier"] = json!("default");
    yaml_doc["connector"]["projectIdentifier"] = json!("web");
    std::fs::write(file.path(), serde_yaml::to_string(&yaml_doc).unwrap()).unwrap();
    let out = cli(
        &server,
        &editor,
        &["connector", "apply", "-f", file.path().to_str().unwrap()],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("SECRET_USE_DENIED") && stderr.contains(&format!("{AUTH}.usernameRef")),
        "{stderr}"
    );

    // Granted (the org secret to the whole org, the rest to the project): the
    // same documents are accepted.
    for id in [
        "sa_tok", "ca", "user", "pw", "cert", "key", "pass", "opw", "ouser", "osec",
    ] {
        let said = update_secret(
            &server,
            false,
            id,
            &["--usable-from", "project/default/web"],
        );
        assert!(said.contains("project/default/web"), "{said}");
    }
    update_secret(&server, true, "cid", &["--usable-from", "org/default"]);
    let meta: Value = serde_json::from_str(&cli_ok(
        &server,
        &["secret", "get", "cid", "--org", "default", "-o", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(meta["usableFrom"], json!(["org/default"]), "{meta:#}");
    for (id, body, _) in &cases {
        let (s, v) = api
            .post(&format!("{PROJECT}/connectors"), body.clone())
            .await;
        assert_eq!(s, StatusCode::CREATED, "{id}: {v:#}");
    }
    let out = cli(
        &server,
        &editor,
        &["connector", "apply", "-f", file.path().to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Host binding: the token may only go to 10.0.0.1:6443.
    update_secret(
        &server,
        false,
        "sa_tok",
        &["--allowed-host", "10.0.0.1:6443"],
    );
    let mut foreign = cases[0].1.clone();
    foreign["connector"]["spec"]["credential"]["spec"]["masterUrl"] =
        json!("https://127.0.0.1:9443");
    let (s, v) = api
        .call(
            reqwest::Method::PUT,
            &format!("{PROJECT}/connectors/sa"),
            Some(foreign),
        )
        .await;
    assert_eq!(
        denied_fields(s, &v),
        BTreeSet::from(["spec.credential.spec.masterUrl".to_string()]),
        "{v:#}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("127.0.0.1:9443"),
        "{v:#}"
    );
    // OpenIdConnect: the issuer is dialled too.
    update_secret(
        &server,
        false,
        "opw",
        &[
            "--allowed-host",
            "10.0.0.1:6443",
            "--allowed-host",
            "idp.example",
        ],
    );
    let mut evil_issuer = cases[3].1.clone();
    evil_issuer["connector"]["spec"]["credential"]["spec"]["auth"]["spec"]["oidcIssuerUrl"] =
        json!("https://listener.attacker.example");
    let (s, v) = api
        .call(
            reqwest::Method::PUT,
            &format!("{PROJECT}/connectors/oidc"),
            Some(evil_issuer),
        )
        .await;
    assert_eq!(
        denied_fields(s, &v),
        BTreeSet::from([format!("{AUTH}.oidcIssuerUrl")]),
        "{v:#}"
    );
    let meta: Value = serde_json::from_str(&cli_ok(
        &server,
        &["secret", "get", "opw", "-o", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(
        meta["allowedHosts"],
        json!(["10.0.0.1:6443", "idp.example"]),
        "{meta:#}"
    );

    // Revoked: the stored connector's test is refused before anything is sent.
    let said = update_secret(&server, false, "pw", &["--no-usable-from"]);
    assert!(said.contains("no other scope"), "{said}");
    let message = refused_test(&server, &editor, "up");
    assert!(
        message.contains(&format!("{AUTH}.passwordRef")) && message.contains("--usable-from"),
        "{message}"
    );
}

/// The cloud auth types' secrets need grants like the others', and an AKS
/// client secret, which is posted in clear to the Entra ID authority, is bound
/// to `authorityHost` as well as to `masterUrl`: an editor who points
/// `authorityHost` at a listener of its own is refused at save, and a secret
/// bound after the connector was saved stops its test before anything is sent.
#[tokio::test]
async fn cloud_secrets_need_grants_and_an_aks_secret_goes_only_to_allowed_authorities() {
    let server = TetherServer::start(bin(), &["--test-on-change=false"]).unwrap();
    let editor = project_token(&server, "editor").await;
    let api = Api::at(&server.url, &editor);
    for id in [
        "akid", "sak", "stok", "eks_ca", "gkey", "aks_cid", "aks_sec",
    ] {
        secret(&server, false, id, &format!("planted-{id}-value"), &[]);
    }
    let url = "https://10.0.0.1:6443";
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let aks_spec = |authority: Option<&str>| {
        let mut spec = json!({"tenantId": tenant, "clientIdRef": "account.aks_cid",
                              "clientSecretRef": "account.aks_sec"});
        if let Some(a) = authority {
            spec["authorityHost"] = json!(a);
        }
        doc("aks", url, "AKS", spec)
    };
    let cases = [
        (
            "eks",
            doc(
                "eks",
                url,
                "EKS",
                json!({"region": "eu-west-1", "clusterName": "prod",
                       "accessKeyIdRef": "account.akid", "secretAccessKeyRef": "account.sak",
                       "sessionTokenRef": "account.stok", "caCertRef": "account.eks_ca"}),
            ),
            fields(&[
                "accessKeyIdRef",
                "secretAccessKeyRef",
                "sessionTokenRef",
                "caCertRef",
            ]),
        ),
        (
            "gke",
            doc(
                "gke",
                url,
                "GKE",
                json!({"serviceAccountKeyRef": "account.gkey"}),
            ),
            fields(&["serviceAccountKeyRef"]),
        ),
        (
            "aks",
            aks_spec(None),
            fields(&["clientIdRef", "clientSecretRef"]),
        ),
    ];
    for (id, body, want) in &cases {
        let (s, v) = api
            .post(&format!("{PROJECT}/connectors"), body.clone())
            .await;
        assert_eq!(&denied_fields(s, &v), want, "{id}: {v:#}");
    }
    for id in [
        "akid", "sak", "stok", "eks_ca", "gkey", "aks_cid", "aks_sec",
    ] {
        update_secret(
            &server,
            false,
            id,
            &["--usable-from", "project/default/web"],
        );
    }
    for (id, body, _) in &cases[..2] {
        let (s, v) = api
            .post(&format!("{PROJECT}/connectors"), body.clone())
            .await;
        assert_eq!(s, StatusCode::CREATED, "{id}: {v:#}");
    }

    // Bound to the API server and Entra ID: the editor's own authority is
    // refused, on the field that would have sent it there.
    update_secret(
        &server,
        false,
        "aks_sec",
        &[
            "--allowed-host",
            "10.0.0.1:6443",
            "--allowed-host",
            "login.microsoftonline.com",
        ],
    );
    let (s, v) = api
        .post(
            &format!("{PROJECT}/connectors"),
            aks_spec(Some("https://listener.attacker.example")),
        )
        .await;
    assert_eq!(
        denied_fields(s, &v),
        BTreeSet::from([format!("{AUTH}.authorityHost")]),
        "{v:#}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("listener.attacker.example"),
        "{v:#}"
    );
    // Entra ID itself, named or by default, is where it may go.
    let (s, v) = api
        .post(
            &format!("{PROJECT}/connectors"),
            aks_spec(Some("https://login.microsoftonline.com")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v:#}");
    let (s, v) = api
        .call(
            reqwest::Method::PUT,
            &format!("{PROJECT}/connectors/aks"),
            Some(aks_spec(None)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v:#}");

    // Bound to the API server alone after the connector was saved: its test
    // is refused before any task is made, naming the authority.
    update_secret(
        &server,
        false,
        "aks_sec",
        &["--allowed-host", "10.0.0.1:6443"],
    );
    let message = refused_test(&server, &editor, "aks");
    assert!(
        message.contains("authorityHost") && message.contains("login.microsoftonline.com"),
        "{message}"
    );
}
