//! What kubectl prints when tether cannot carry a request: no eligible
//! delegate, or a connector whose credentials the delegate cannot use (an
//! OpenIdConnect issuer that cannot be reached, so no ID token; an encrypted
//! client key that its passphrase does not open). kubectl's discovery prints
//! no `Status` body, so these failures must reach it as text.

use super::*;

fn more_connectors(url: &str) -> [(&'static str, String); 2] {
    let head = |id: &str| {
        format!(
            "connector:
  name: {id}
  identifier: {id}
  orgIdentifier: {ORG}
  projectIdentifier: {PROJECT}
  type: K8sCluster
  spec:
    delegateSelectors: [proxy]
    credential:
      type: ManualConfig
      spec:
        masterUrl: {url}
        auth:
"
        )
    };
    [
        (
            "oidc",
            head("oidc")
                + "          type: OpenIdConnect
          spec:
            oidcIssuerUrl: https://127.0.0.1:1/issuer
            oidcClientIdRef: oidc_client
            oidcPasswordRef: oidc_password
            oidcUsername: alice
            caCertRef: cluster_ca
",
        ),
        (
            "enckey",
            head("enckey")
                + "          type: ClientKeyCert
          spec:
            clientCertRef: client_cert
            clientKeyRef: client_key
            clientKeyPassphraseRef: key_passphrase
            caCertRef: cluster_ca
",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_why_tether_cannot_carry_a_request() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("proxy-refused").await;
    let sa_token = service_account_token(&admin, &ns, "proxy-sa").await?;

    let mut e = Env::new()?;
    let args = e.tls_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = TetherServer::start(bin(), &args)?;
    seed(&e, &m, env, &sa_token)?;
    for (id, value) in [
        ("oidc_client", "tether"),
        ("oidc_password", "not-a-password"),
        (
            "client_cert",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ),
        (
            "client_key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ),
        ("key_passphrase", "not-a-passphrase"),
    ] {
        let mut args = vec!["secret", "create", "--name", id, "--identifier", id];
        args.extend(SCOPE);
        admin_stdin(&e, &m, &args, value)?;
    }
    for (_, doc) in more_connectors(&env.url) {
        admin_stdin(&e, &m, &["connector", "apply", "-f", "-"], &doc)?;
    }
    e.start_delegate(&m, "d1", "proxy")?;
    let ci = e.ci_token(&m)?;

    let cases = [
        ("nowhere", "absent-tag"),
        (
            "oidc",
            "cannot get a token for the connector's OpenIdConnect credentials",
        ),
        (
            "enckey",
            "the client key (clientKeyRef with clientKeyPassphraseRef) cannot be used",
        ),
    ];
    for (id, why) in cases {
        let kc = e.kubeconfig(&m, &ci, id, &format!("{id}.yaml"))?;
        for k in kubectls(env) {
            let out = kubectl(&k, &kc, &["get", "pods", "-n", &ns]);
            let err = String::from_utf8_lossy(&out.stderr);
            ensure!(
                !out.status.success() && err.contains(why),
                "{} through {id}: kubectl does not say why ({why}):\n{err}",
                k.display()
            );
        }
        // Client libraries past discovery get the Kubernetes Status.
        let (status, body) = e
            .raw(&m, &ci, &format!("{K8S}/{id}/api/v1/namespaces/{ns}/pods"))
            .await?;
        ensure!(
            (status == 503 || status == 502)
                && body["kind"] == "Status"
                && body["message"].as_str().unwrap_or_default().contains(why),
            "{id}: {status} {body}"
        );
    }
    // What the delegate received is in none of its logs.
    ensure!(
        ["not-a-password", "not-a-passphrase"]
            .iter()
            .all(|v| !e.logs().contains(v) && !m.log().contains(v)),
        "a secret value is in a log"
    );
    Ok(())
}
