//! Connectors whose token expires, and an encrypted client key, through the
//! proxy: EKS (access keys, and a role assumed with them), GKE (a
//! service-account key), AKS (client credentials), against the API server of
//! `CloudWorld`, whose token webhook checks each token with botocore and
//! google-auth; a client key encrypted with a passphrase against the same API
//! server; OpenID Connect (the password grant at an issuer of the test, whose
//! ID tokens the webhook accepts). And the refresh: a GKE token and an ID
//! token that outlive the delegate's refresh margin by two seconds are
//! fetched again for a later request, while the delegate keeps its client for
//! the connector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tether_testenv::cloud::*;
use tether_testenv::{HttpsServer, TestCa};

use super::*;

/// The refresh margin of `tether_kube::cloud_auth::gke` (5 minutes): a token
/// of this lifetime is good for two seconds, then the delegate makes another.
const GKE_SHORT_LIFETIME: u64 = 5 * 60 + 2;

fn cloud_connector(id: &str, url: &str, auth: &str) -> String {
    format!(
        "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: {ORG}
  projectIdentifier: {PROJECT}
  type: K8sCluster
  spec:
    delegateSelectors: [cloud]
    credential:
      type: ManualConfig
      spec:
        masterUrl: {url}
        auth:
{auth}"
    )
}

/// `tether_kube::bearer::OIDC_REFRESH_MARGIN` (60 s) and two seconds.
const OIDC_LIFETIME: u64 = 60 + 2;
const OIDC_USER: &str = "oidc-bob";

/// An OpenID Connect issuer on loopback (a certificate of `ca`): discovery,
/// and the password grant for `bob`, whose ID tokens (with `exp`) live
/// [`OIDC_LIFETIME`] seconds and are accepted by the API server's token
/// webhook as [`OIDC_USER`] for that long. `grants` counts the tokens issued.
async fn oidc_issuer(w: &'static CloudWorld, ca: &TestCa, grants: Arc<AtomicU64>) -> HttpsServer {
    HttpsServer::start(
        ca,
        Arc::new(move |req| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => {
                let h = req.header("host").unwrap_or_default();
                (
                    200,
                    "application/json".into(),
                    format!(r#"{{"issuer":"https://{h}","token_endpoint":"https://{h}/token"}}"#),
                )
            }
            ("POST", "/token")
                if req.body.contains("grant_type=password")
                    && req.body.contains("username=bob&")
                    && req.body.contains("password=bob-pw-9") =>
            {
                use base64::Engine as _;
                let n = grants.fetch_add(1, Ordering::SeqCst);
                let exp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    + OIDC_LIFETIME;
                let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
                let id_token = format!(
                    "{}.{}.c2ln",
                    e(r#"{"alg":"RS256"}"#),
                    e(&format!(
                        r#"{{"sub":"bob","aud":"kubernetes","exp":{exp},"jti":"{n}"}}"#
                    ))
                );
                match w.accept_token(&id_token, OIDC_USER, OIDC_LIFETIME) {
                    Ok(()) => (
                        200,
                        "application/json".into(),
                        format!(r#"{{"token_type":"Bearer","id_token":"{id_token}"}}"#),
                    ),
                    Err(e) => (500, "text/plain".into(), e.to_string()),
                }
            }
            ("POST", "/token") => (
                400,
                "application/json".into(),
                r#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#
                    .into(),
            ),
            _ => (404, "text/plain".into(), "not found".into()),
        }),
    )
    .await
}

/// Requests through `kubeconfig` until `fetched()` grows past what it was:
/// the delegate, which keeps its client for the connector, made a new token
/// for a later request. Every request must succeed.
fn refreshed(k: &Path, kc: &Path, what: &str, fetched: &dyn Fn() -> Result<u64>) -> Result<()> {
    let first = fetched()?;
    ensure!(first >= 1, "the short-lived {what} token was never fetched");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut requests = 0;
    while fetched()? <= first {
        ensure!(
            Instant::now() < deadline,
            "after {requests} requests in 30 s the delegate still uses the {what} token it fetched first (it should refresh it before expiry)"
        );
        kubectl_ok(k, kc, &["get", "namespaces", "default", "-o", "name"])?;
        requests += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    kubectl_ok(k, kc, &["get", "namespaces", "default", "-o", "name"])?;
    Ok(())
}

/// `openssl pkcs8 -topk8 -v2 aes-256-cbc`: the key as kubectl users encrypt it.
fn encrypt_key(dir: &Path, key_pem: &str, passphrase: &str) -> Result<String> {
    let plain = dir.join("client.key");
    std::fs::write(&plain, key_pem)?;
    let out = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
        .arg(&plain)
        .args(["-passout", &format!("pass:{passphrase}")])
        .output()?;
    ensure!(
        out.status.success(),
        "openssl pkcs8: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&plain)?;
    let text = String::from_utf8(out.stdout)?;
    ensure!(text.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{text}");
    Ok(text)
}

/// A CertificateSigningRequest named `whoami-NAME` (nobody signs it; the API
/// server fills in who asked).
fn csr_document(dir: &Path) -> Result<String> {
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=whoami",
            "-keyout",
        ])
        .arg(dir.join("whoami.key"))
        .output()?;
    ensure!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine as _;
    let request = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
    Ok(serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "whoami-NAME"},
        "spec": {"request": request, "signerName": "tether.test/whoami", "usages": ["client auth"]},
    })
    .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_and_encrypted_key_connectors_through_the_proxy() -> Result<()> {
    let w = CloudWorld::get();
    let mut e = Env::new()?;
    let args = e.tls_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = TetherServer::start(bin(), &args)?;
    e.admin(&m, &["org", "create", "Default", "--identifier", ORG])?;
    e.admin(
        &m,
        &[
            "project",
            "create",
            "Web",
            "--org",
            ORG,
            "--identifier",
            PROJECT,
        ],
    )?;
    let passphrase = "proxy passphrase 7Qx";
    let encrypted = encrypt_key(e.dir.path(), &w.kube.admin_key_pem, passphrase)?;
    let mut short_key: Value = serde_json::from_str(&w.gcp_key_json)?;
    let short_route = format!("/google/lifetime/{GKE_SHORT_LIFETIME}/token");
    short_key["token_uri"] = Value::String(format!("{}{short_route}", w.verifier));
    let short_key = short_key.to_string();
    let idp_ca = TestCa::new("tether-test-idp");
    let grants = Arc::new(AtomicU64::new(0));
    let idp = oidc_issuer(w, &idp_ca, grants.clone()).await;
    let out = w
        .kube
        .kubectl()
        .args([
            "create",
            "clusterrolebinding",
            OIDC_USER,
            "--clusterrole=cluster-admin",
        ])
        .arg(format!("--user={OIDC_USER}"))
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One caCertRef for the API server and the issuer: both CAs.
    let both_cas = format!("{}{}", w.kube.ca_pem, idp_ca.pem);
    for (id, value) in [
        ("cluster_ca", w.kube.ca_pem.as_str()),
        ("aws_key_id", AWS_CI_KEY_ID),
        ("aws_secret", AWS_CI_SECRET),
        ("gcp_key", w.gcp_key_json.as_str()),
        ("gcp_short_key", short_key.as_str()),
        ("azure_secret", AZURE_CLIENT_SECRET),
        ("client_cert", w.kube.admin_cert_pem.as_str()),
        ("client_key", encrypted.as_str()),
        ("key_passphrase", passphrase),
        ("both_cas", both_cas.as_str()),
        ("oidc_client", "kubernetes"),
        ("oidc_password", "bob-pw-9"),
    ] {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        args.extend(SCOPE);
        admin_stdin(&e, &m, &args, value)?;
    }
    let eks = format!(
        "          type: EKS
          spec:
            region: {AWS_REGION}
            clusterName: {EKS_CLUSTER}
            accessKeyIdRef: aws_key_id
            secretAccessKeyRef: aws_secret
            stsEndpoint: {}
            eksEndpoint: {}
            caCertRef: cluster_ca
",
        w.url(0, "/sts"),
        w.url(0, "/eks")
    );
    let eks_role = eks.replace(
        "            caCertRef: cluster_ca\n",
        &format!(
            "            roleArn: {AWS_ROLE_ARN}\n            externalId: {AWS_EXTERNAL_ID}\n            caCertRef: cluster_ca\n"
        ),
    );
    let gke = |key: &str| {
        format!(
            "          type: GKE
          spec:
            serviceAccountKeyRef: {key}
            caCertRef: cluster_ca
"
        )
    };
    let aks = format!(
        "          type: AKS
          spec:
            tenantId: {AZURE_TENANT}
            clientId: {AZURE_CLIENT_ID}
            clientSecretRef: azure_secret
            authorityHost: {}
            caCertRef: cluster_ca
",
        w.url(0, "/entra")
    );
    let enckey = "          type: ClientKeyCert
          spec:
            clientCertRef: client_cert
            clientKeyRef: client_key
            clientKeyPassphraseRef: key_passphrase
            caCertRef: cluster_ca
"
    .to_string();
    let oidc = format!(
        "          type: OpenIdConnect
          spec:
            oidcIssuerUrl: {}
            oidcClientIdRef: oidc_client
            oidcPasswordRef: oidc_password
            oidcUsername: bob
            caCertRef: both_cas
",
        idp.url
    );
    // Who the API server says each one is (the webhook's user, or the
    // client certificate's common name, see scripts/kube-testenv).
    let connectors = [
        ("eks_keys", eks, "ci"),
        ("eks_role", eks_role, "deployer"),
        ("gke_key", gke("gcp_key"), GCP_EMAIL),
        ("aks_secret", aks, "aks-deployer"),
        ("enckey", enckey, "tether-admin"),
        ("gke_short", gke("gcp_short_key"), GCP_EMAIL),
        ("oidc", oidc, OIDC_USER),
    ];
    for (id, auth, _) in &connectors {
        admin_stdin(
            &e,
            &m,
            &["connector", "apply", "-f", "-"],
            &cloud_connector(id, &w.kube.url, auth),
        )?;
    }
    e.start_delegate(&m, "cloud", "cloud")?;
    let ci = e.ci_token(&m)?;
    let k = kubectls(&w.kube).pop().context("no kubectl")?;

    // Each through kubectl with the kubeconfig tether prints: discovery, a
    // get, and who the API server took the caller for.
    let csr = csr_document(e.dir.path())?;
    for (id, _, user) in &connectors {
        let kc = e.kubeconfig(&m, &ci, id, &format!("{id}.yaml"))?;
        kubectl_ok(&k, &kc, &["get", "namespaces", "default", "-o", "name"])
            .with_context(|| format!("{id}\n{}", e.logs()))?;
        // Who the API server took the request for: it writes the
        // requester into a CertificateSigningRequest's spec.username.
        let csr: Value = serde_json::from_str(&stdin_kubectl(
            &k,
            &kc,
            &["create", "-f", "-", "-o", "json"],
            &csr.replace("NAME", &id.replace('_', "-")),
        )?)?;
        ensure!(
            csr["spec"]["username"] == *user,
            "{id}: the API server took the request for {} (want {user})",
            csr["spec"]["username"]
        );
    }

    // The refresh: the delegate's clients stay cached, and a later request
    // after a token's two good seconds gets a new one (awaited as the token
    // endpoint's count of tokens issued).
    let kc = e.dir.path().join("gke_short.yaml");
    refreshed(&k, &kc, "GKE", &|| w.requests(&short_route)).with_context(|| e.logs())?;
    let kc = e.dir.path().join("oidc.yaml");
    refreshed(&k, &kc, "OpenID Connect", &|| {
        Ok(grants.load(Ordering::SeqCst))
    })
    .with_context(|| e.logs())?;

    let everything = format!("{}\n{}", m.log(), e.logs());
    for s in [
        AWS_CI_SECRET,
        AZURE_CLIENT_SECRET,
        passphrase,
        "k8s-aws-v1.",
        "X-Amz-Signature",
        "ya29.",
        "ENCRYPTED PRIVATE KEY",
        "bob-pw-9",
        "eyJhbGciOiJSUzI1NiJ9.",
    ] {
        ensure!(!everything.contains(s), "a secret ({s}) is in a log");
    }
    Ok(())
}
