//! Connectors whose token expires, and an encrypted client key, through the
//! proxy: EKS (access keys, and a role assumed with them), GKE (a
//! service-account key), AKS (client credentials), against the API server of
//! `CloudWorld`, whose token webhook checks each token with botocore and
//! google-auth; a client key encrypted with a passphrase against the same API
//! server. And the refresh: a GKE token that outlives the delegate's refresh
//! margin by two seconds is fetched again for a later request, while the
//! delegate keeps its client for the connector.

use tether_testenv::cloud::*;

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
    // Who the API server says each one is (the webhook's user, or the
    // client certificate's common name, see scripts/kube-testenv).
    let connectors = [
        ("eks_keys", eks, "ci"),
        ("eks_role", eks_role, "deployer"),
        ("gke_key", gke("gcp_key"), GCP_EMAIL),
        ("aks_secret", aks, "aks-deployer"),
        ("enckey", enckey, "tether-admin"),
        ("gke_short", gke("gcp_short_key"), GCP_EMAIL),
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
    let mut create = vec![
        "token",
        "create",
        "--name",
        "ci",
        "--role",
        "viewer",
        "--kube-access",
    ];
    create.extend(SCOPE);
    let ci = e.admin(&m, &create)?.trim().to_string();
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

    // The refresh: the delegate's client for gke_short stays cached, and a
    // later request after the token's two good seconds gets a new one
    // (awaited as the token endpoint's request count, every request
    // answered).
    let kc = e.dir.path().join("gke_short.yaml");
    let fetched = w.requests(&short_route)?;
    ensure!(fetched >= 1, "the short-lived GKE token was never fetched");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut requests = 0;
    while w.requests(&short_route)? <= fetched {
        ensure!(
            Instant::now() < deadline,
            "after {requests} requests in 30 s the delegate still uses the GKE token it fetched first (it should refresh 5 minutes before expiry)\n{}",
            e.logs()
        );
        kubectl_ok(&k, &kc, &["get", "namespaces", "default", "-o", "name"])?;
        requests += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    kubectl_ok(&k, &kc, &["get", "namespaces", "default", "-o", "name"])?;

    let everything = format!("{}\n{}", m.log(), e.logs());
    for s in [
        AWS_CI_SECRET,
        AZURE_CLIENT_SECRET,
        passphrase,
        "k8s-aws-v1.",
        "X-Amz-Signature",
        "ya29.",
        "ENCRYPTED PRIVATE KEY",
    ] {
        ensure!(!everything.contains(s), "a secret ({s}) is in a log");
    }
    Ok(())
}
