//! EKS credentials end to end: the real `tether server` and `tether delegate
//! run`, driven through the CLI, against the API server whose token webhook
//! checks the EKS token with botocore (`tether_testenv::CloudWorld`). Keys kept
//! as secrets; the delegate's own web identity (IRSA environment); a wrong
//! secret key diagnosed; no secret value in any output or log.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_testenv::cloud::*;
use tether_testenv::TetherServer;

use common::{bin, cli, cli_ok, seed_scopes};

const SCOPE: [&str; 4] = ["--org", "default", "--project", "web"];

struct Delegate(Child);

impl Drop for Delegate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tether delegate run` with `env`, connected before this returns.
fn delegate(
    server: &TetherServer,
    dir: &std::path::Path,
    name: &str,
    env: &[(&str, String)],
) -> (Delegate, PathBuf) {
    let token = cli_ok(
        server,
        &["delegate", "token", "create", "--name", name],
        None,
    );
    let token_file = dir.join(format!("{name}.token"));
    std::fs::write(&token_file, token.trim()).unwrap();
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(bin())
        .args([
            "delegate",
            "run",
            "--manager",
            &server.url,
            "--name",
            name,
            "--tags",
            name,
        ])
        .env("TETHER_DELEGATE_TOKEN_FILE", &token_file)
        .env_remove("TETHER_DELEGATE_TOKEN")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("AWS_ROLE_ARN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Delegate(child);
    // No event tells a client that a delegate connected: poll the list.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: Value =
            serde_json::from_str(&cli_ok(server, &["delegate", "list", "-o", "json"], None))
                .unwrap();
        if list.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["name"] == name && x["connected"].as_bool() == Some(true))
        }) {
            return (d, log);
        }
        assert!(
            Instant::now() < deadline,
            "delegate {name} did not connect:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `secret_ref` None: no keys, the delegate's web identity (its AWS_ROLE_ARN)
/// signs.
fn eks_connector(id: &str, selector: &str, secret_ref: Option<&str>, w: &CloudWorld) -> String {
    let keys = match secret_ref {
        Some(r) => {
            format!("            accessKeyIdRef: aws_key_id\n            secretAccessKeyRef: {r}\n")
        }
        None => String::new(),
    };
    format!(
        "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: default
  projectIdentifier: web
  type: K8sCluster
  spec:
    delegateSelectors: [{selector}]
    connectionTest:
      namespaces: [default]
    credential:
      type: ManualConfig
      spec:
        masterUrl: {}
        auth:
          type: EKS
          spec:
            region: {AWS_REGION}
            clusterName: {EKS_CLUSTER}
{keys}            stsEndpoint: {}
            eksEndpoint: {}
            caCertRef: cluster_ca
",
        w.kube.url,
        w.url(0, "/sts"),
        w.url(0, "/eks"),
    )
}

#[test]
fn eks_connectors_are_tested_through_a_real_delegate() {
    let w = CloudWorld::get();
    let server = TetherServer::start(bin(), &["--test-on-change=false"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed_scopes(&server);
    let secret = |id: &str, value: &str| {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        args.extend(SCOPE);
        cli_ok(&server, &args, Some(value));
    };
    secret("cluster_ca", &w.kube.ca_pem);
    secret("aws_key_id", AWS_CI_KEY_ID);
    secret("aws_secret", AWS_CI_SECRET);

    // Keys from secrets, through a delegate without any AWS identity.
    let (_plain, plain_log) = delegate(&server, dir.path(), "plain", &[]);
    cli_ok(
        &server,
        &["connector", "apply", "-f", "-"],
        Some(&eks_connector("eks_keys", "plain", Some("aws_secret"), w)),
    );
    let test = |id: &str, extra: &[&str]| {
        let mut args = vec!["connector", "test", id];
        args.extend(SCOPE);
        args.extend(extra);
        let out = cli(&server, &server.admin_token, &args, None);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = test("eks_keys", &[]);
    assert_eq!(code, 0, "{out}\n{err}\n{}", server.log());
    assert!(
        out.contains("token"),
        "the report shows the token stage: {out}"
    );
    assert!(out.contains("arn:aws:iam::111122223333:user/ci"), "{out}");

    // The delegate's own web identity (IRSA environment), no secret at all.
    let token_file = dir.path().join("web-identity-token");
    std::fs::write(&token_file, AWS_WEB_IDENTITY_TOKEN).unwrap();
    let (_irsa, irsa_log) = delegate(
        &server,
        dir.path(),
        "irsa",
        &[
            ("AWS_ROLE_ARN", AWS_ROLE_ARN.to_string()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.display().to_string(),
            ),
        ],
    );
    cli_ok(
        &server,
        &["connector", "apply", "-f", "-"],
        Some(&eks_connector("eks_irsa", "irsa", None, w)),
    );
    let (code, out, err) = test("eks_irsa", &["-o", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let token_stage = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "token")
        .cloned()
        .unwrap_or_else(|| panic!("no token stage: {out}"));
    let detail = token_stage["detail"].as_str().unwrap();
    assert!(detail.contains("web identity"), "{detail}");
    assert!(detail.contains("assumed-role/deployer"), "{detail}");

    // A wrong secret key: FAILURE, diagnosed, exit 1.
    secret("aws_wrong_secret", "wrong/K7MDENG+bPxRfiCYEXAMPLEKEY00");
    cli_ok(
        &server,
        &["connector", "apply", "-f", "-"],
        Some(&eks_connector(
            "eks_bad",
            "plain",
            Some("aws_wrong_secret"),
            w,
        )),
    );
    let (code, out, _) = test("eks_bad", &["-o", "json"]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["errors"][0]["reason"], "CLOUD_CREDENTIALS_REJECTED",
        "{out}"
    );

    let everything = format!(
        "{}\n{}\n{}\n{out}",
        server.log(),
        std::fs::read_to_string(plain_log).unwrap_or_default(),
        std::fs::read_to_string(irsa_log).unwrap_or_default()
    );
    for s in [
        AWS_CI_SECRET,
        AWS_WEB_IDENTITY_TOKEN,
        "k8s-aws-v1.",
        "X-Amz-Signature",
    ] {
        assert!(
            !everything.contains(s),
            "a secret ({s}) leaked into output or logs"
        );
    }
}

/// A connector of `auth_yaml` (the `auth:` spec lines) in project web, tested
/// by delegates tagged `selector`.
fn cloud_connector(id: &str, selector: &str, auth_yaml: &str, w: &CloudWorld) -> String {
    format!(
        "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: default
  projectIdentifier: web
  type: K8sCluster
  spec:
    delegateSelectors: [{selector}]
    connectionTest:
      namespaces: [default]
    credential:
      type: ManualConfig
      spec:
        masterUrl: {}
        auth:
{auth_yaml}",
        w.kube.url,
    )
}

/// Applies `doc` and runs `tether connector test ID -o json`: SUCCESS (exit
/// 0); the report's text and its token stage's detail.
fn tested_ok(server: &TetherServer, doc: &str, id: &str) -> (String, String) {
    cli_ok(server, &["connector", "apply", "-f", "-"], Some(doc));
    let mut args = vec!["connector", "test", id];
    args.extend(SCOPE);
    args.extend(["-o", "json"]);
    let out = cli(server, &server.admin_token, &args, None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{id}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["status"], "SUCCESS", "{id}: {text}");
    let token = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "token")
        .and_then(|s| s["detail"].as_str())
        .unwrap_or_else(|| panic!("{id}: no token stage: {text}"))
        .to_string();
    (text, token)
}

/// The delegate's own cloud identity, as each cloud's standard environment
/// describes it in a pod, through a real delegate (issue 15): the GKE metadata
/// server (`GCE_METADATA_HOST`), AKS workload identity (the projected token in
/// `AZURE_FEDERATED_TOKEN_FILE`, verified by google-auth's JWT code at the
/// Entra stand-in) and EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_FULL_URI`
/// with the token file; the EKS token signed with the agent's keys is checked
/// by botocore). No secret in the connectors; none of those tokens in any
/// output or log.
#[test]
fn delegates_use_their_pods_cloud_identity_on_gke_aks_and_eks_pod_identity() {
    let w = CloudWorld::get();
    let server = TetherServer::start(bin(), &["--test-on-change=false"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed_scopes(&server);
    let mut args = vec![
        "secret",
        "create",
        "--name",
        "cluster_ca",
        "--identifier",
        "cluster_ca",
    ];
    args.extend(SCOPE);
    cli_ok(&server, &args, Some(&w.kube.ca_pem));
    let pod_token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&pod_token_file, AWS_POD_IDENTITY_TOKEN).unwrap();

    let (_gke, gke_log) = delegate(
        &server,
        dir.path(),
        "gke-wi",
        &[("GCE_METADATA_HOST", w.metadata_host.clone())],
    );
    let (_aks, aks_log) = delegate(
        &server,
        dir.path(),
        "aks-wi",
        &[
            ("AZURE_TENANT_ID", AZURE_TENANT.to_string()),
            ("AZURE_CLIENT_ID", AZURE_CLIENT_ID.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                w.azure_federated_token_file.display().to_string(),
            ),
        ],
    );
    let (_pod, pod_log) = delegate(
        &server,
        dir.path(),
        "eks-pod",
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                w.url(0, "/aws/pod-identity"),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                pod_token_file.display().to_string(),
            ),
        ],
    );
    let connectors = [
        (
            "gke_wi",
            "gke-wi",
            "          type: GKE\n          spec:\n            caCertRef: cluster_ca\n".to_string(),
            "metadata server",
            GCP_EMAIL.to_string(),
        ),
        (
            "aks_wi",
            "aks-wi",
            format!(
                "          type: AKS\n          spec:\n            tenantId: {AZURE_TENANT}\n            clientId: {AZURE_CLIENT_ID}\n            authorityHost: {}\n            caCertRef: cluster_ca\n",
                w.url(0, "/entra")
            ),
            "workload identity",
            AZURE_CLIENT_ID.to_string(),
        ),
        (
            "eks_pod",
            "eks-pod",
            format!(
                "          type: EKS\n          spec:\n            region: {AWS_REGION}\n            clusterName: {EKS_CLUSTER}\n            stsEndpoint: {}\n            eksEndpoint: {}\n            caCertRef: cluster_ca\n",
                w.url(0, "/sts"),
                w.url(0, "/eks")
            ),
            "EKS Pod Identity",
            "assumed-role/deployer/eks-pod-identity".to_string(),
        ),
    ];
    let mut outputs = String::new();
    for (id, selector, auth, source, who) in &connectors {
        let (text, token) = tested_ok(&server, &cloud_connector(id, selector, auth, w), id);
        assert!(token.contains(source), "{id}: {token}");
        assert!(
            text.contains(who.as_str()),
            "{id}: the identity {who} is not in {text}"
        );
        outputs.push_str(&text);
    }
    let federated = std::fs::read_to_string(&w.azure_federated_token_file).unwrap();
    let everything = format!(
        "{}\n{}\n{}\n{}\n{outputs}",
        server.log(),
        std::fs::read_to_string(gke_log).unwrap_or_default(),
        std::fs::read_to_string(aks_log).unwrap_or_default(),
        std::fs::read_to_string(pod_log).unwrap_or_default(),
    );
    for s in [
        federated.trim(),
        AWS_POD_IDENTITY_TOKEN,
        "ya29.",
        "k8s-aws-v1.",
    ] {
        assert!(
            !everything.contains(s),
            "a secret ({s}) leaked into output or logs"
        );
    }
}

/// A GKE service-account key and AKS client credentials kept as secrets,
/// tested by `tether connector test` through a real delegate without any
/// cloud identity of its own: each SUCCESS, its token stage naming the
/// identity and until when the token is good; neither secret in any output
/// or log.
#[test]
fn gke_keys_and_aks_client_secrets_are_tested_through_a_real_delegate() {
    let w = CloudWorld::get();
    let server = TetherServer::start(bin(), &["--test-on-change=false"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    seed_scopes(&server);
    for (id, value) in [
        ("cluster_ca", w.kube.ca_pem.as_str()),
        ("gcp_key", w.gcp_key_json.as_str()),
        ("aks_secret", AZURE_CLIENT_SECRET),
    ] {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        args.extend(SCOPE);
        cli_ok(&server, &args, Some(value));
    }
    let (_plain, plain_log) = delegate(&server, dir.path(), "plain", &[]);
    let connectors = [
        (
            "gke_key",
            "          type: GKE\n          spec:\n            serviceAccountKeyRef: gcp_key\n            caCertRef: cluster_ca\n".to_string(),
            GCP_EMAIL,
        ),
        (
            "aks_sp",
            format!(
                "          type: AKS\n          spec:\n            tenantId: {AZURE_TENANT}\n            clientId: {AZURE_CLIENT_ID}\n            clientSecretRef: aks_secret\n            authorityHost: {}\n            caCertRef: cluster_ca\n",
                w.url(0, "/entra")
            ),
            AZURE_CLIENT_ID,
        ),
    ];
    let mut outputs = String::new();
    for (id, auth, who) in &connectors {
        let (text, token) = tested_ok(&server, &cloud_connector(id, "plain", auth, w), id);
        assert!(
            token.contains(who) && token.contains("valid until"),
            "{id}: {token}"
        );
        outputs.push_str(&text);
    }
    let key: Value = serde_json::from_str(&w.gcp_key_json).unwrap();
    let key_line = key["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.len() >= 60 && !l.starts_with("-----"))
        .unwrap()
        .to_string();
    let everything = format!(
        "{}\n{}\n{outputs}",
        server.log(),
        std::fs::read_to_string(plain_log).unwrap_or_default()
    );
    for s in [
        AZURE_CLIENT_SECRET,
        key_line.as_str(),
        "PRIVATE KEY",
        "ya29.",
    ] {
        assert!(
            !everything.contains(s),
            "a secret ({s}) leaked into output or logs"
        );
    }
}
