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

use common::{bin, cli, cli_ok};

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
    cli_ok(
        &server,
        &["org", "create", "Default", "--identifier", "default"],
        None,
    );
    cli_ok(
        &server,
        &[
            "project",
            "create",
            "Web",
            "--org",
            "default",
            "--identifier",
            "web",
        ],
        None,
    );
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
