//! The connection test against a real Kubernetes control plane, and against small
//! servers started here that fail in exactly one way each: one test per diagnosis.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use kube::Client;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::Decode as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use secrecy::SecretString;
use tether_domain::connector::ConnectivityState;
use tether_domain::ConnectionTestSettings;
use tether_kube::connection_test::{
    run, ConnectionReport, IdentitySource, ResolvedAuth, StageName, StageStatus, TestInput,
    TestTarget,
};
use tether_kube::{ClusterAccess, Credentials};
use tether_testenv::{bind_cluster_role, service_account_token, KubeEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ------------------------------------------------------------------ helpers

/// Every test that needs one binds its account to cluster-admin the same way.
async fn bind_cluster_admin(admin: &Client, ns: &str, sa: &str) -> Result<()> {
    bind_cluster_role(admin, ns, sa, "cluster-admin").await
}

fn settings(ns: &str) -> ConnectionTestSettings {
    ConnectionTestSettings {
        namespaces: vec![ns.to_string()],
        ..Default::default()
    }
}

fn manual(url: &str, ca: Option<&str>, auth: ResolvedAuth) -> TestInput {
    TestInput {
        target: TestTarget::Manual {
            master_url: url.to_string(),
            ca_pem: ca.map(str::to_string),
            auth,
        },
        settings: settings("default"),
        stage_timeout: Duration::from_secs(10),
        on_stage: Default::default(),
    }
}

fn token(t: &str) -> ResolvedAuth {
    ResolvedAuth::ServiceAccountToken(SecretString::from(t.to_string()))
}

fn json(r: &ConnectionReport) -> String {
    serde_json::to_string_pretty(r).unwrap()
}

fn hints(r: &ConnectionReport) -> String {
    r.hints.join("\n")
}

/// FAILURE at `stage` with `reason`: the stages before passed, the ones after
/// were skipped, and there is a summary and at least one hint.
fn assert_failed_at(r: &ConnectionReport, stage: StageName, reason: &str) {
    let pretty = json(r);
    assert_eq!(r.status, ConnectivityState::Failure, "{pretty}");
    assert_eq!(r.reason(), Some(reason), "{pretty}");
    assert_eq!(r.stages.len(), 6, "{pretty}");
    let at = StageName::ALL.iter().position(|s| *s == stage).unwrap();
    for (i, s) in r.stages.iter().enumerate() {
        assert_eq!(s.name, StageName::ALL[i], "{pretty}");
        let want = match i.cmp(&at) {
            std::cmp::Ordering::Less => StageStatus::Passed,
            std::cmp::Ordering::Equal => StageStatus::Failed,
            std::cmp::Ordering::Greater => StageStatus::Skipped,
        };
        assert_eq!(s.status, want, "stage {:?}: {pretty}", s.name);
    }
    assert!(
        r.error_summary
            .as_deref()
            .is_some_and(|s| s.starts_with(stage.as_str())),
        "{pretty}"
    );
    assert!(!r.hints.is_empty(), "{pretty}");
    assert!(r.tested_at > 1_600_000_000_000);
}

fn assert_no_secret(r: &ConnectionReport, secret: &str) {
    let text = serde_json::to_string(r).unwrap();
    assert!(!text.contains(secret), "the report leaks a secret: {text}");
    assert!(
        !format!("{r:?}").contains(secret),
        "the report's Debug leaks a secret"
    );
}

/// A private CA made for one test.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// The test cluster's own CA, with its key (for certificates the cluster trusts).
fn cluster_ca(env: &KubeEnv) -> Issuer<'static, KeyPair> {
    let key_pem = std::fs::read_to_string(env.dir.join("pki/ca.key")).expect("cluster CA key");
    let key = KeyPair::from_pem(&key_pem).expect("cluster CA key parses");
    Issuer::from_ca_cert_pem(&env.ca_pem, key).expect("cluster CA certificate parses")
}

struct Leaf {
    cert_pem: String,
    key: KeyPair,
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    orgs: &[&str],
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
    not_after: Option<time::OffsetDateTime>,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    for o in orgs {
        params.distinguished_name.push(DnType::OrganizationName, *o);
    }
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(2);
    params.not_after = not_after.unwrap_or(now + time::Duration::days(365));
    let cert = params.signed_by(&key, issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key,
    }
}

type Handler = Arc<dyn Fn(&Request) -> (u16, &'static str, String) + Send + Sync>;

#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    host: String,
    body: String,
}

/// Reads one HTTP/1.1 request (head and Content-Length body).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let mut len = 0usize;
    let mut host = String::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "host" => host = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        host,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// A tiny HTTPS server on loopback, one request per connection.
async fn https_server(leaf: &Leaf, handler: Handler) -> u16 {
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Some(req) = read_request(&mut tls).await else {
                    return;
                };
                let (status, content_type, body) = handler(&req);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// A port on which nothing listens.
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
    // dropped here: the port is closed again
}

// ------------------------------------------------------------------ success and partial

#[tokio::test]
async fn cluster_admin_service_account_succeeds_with_every_permission() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("ct-ok").await;
    let t = service_account_token(&admin, &ns, "deployer").await?;
    bind_cluster_admin(&admin, &ns, "deployer").await?;

    let mut input = manual(&env.url, Some(&env.ca_pem), token(&t));
    input.settings = settings(&ns);
    let r = run(input).await;
    let pretty = json(&r);
    assert_eq!(r.status, ConnectivityState::Success, "{pretty}");
    assert!(
        r.stages.iter().all(|s| s.status == StageStatus::Passed),
        "{pretty}"
    );
    assert!(r.errors.is_empty() && r.error_summary.is_none(), "{pretty}");
    assert_eq!(r.server_version.as_deref(), Some("v1.20.2"), "{pretty}");
    let id = r.identity.as_ref().expect("identity");
    assert_eq!(
        id.user,
        format!("system:serviceaccount:{ns}:deployer"),
        "{pretty}"
    );
    // A cluster-admin is allowed everything, so the API server names nobody:
    // the name comes from the token, and the report says so.
    assert_eq!(id.source, IdentitySource::TokenClaims, "{pretty}");
    assert!(!id.confirmed_by_server);
    assert_eq!(r.permissions.len(), 35, "{pretty}");
    assert!(
        r.permissions.iter().all(|p| p.allowed && p.namespace == ns),
        "{pretty}"
    );
    assert!(r.missing.is_empty());
    // RBAC alone answers a complete rules review: it decided every one
    // (issue 10 item 11), no access review was needed.
    assert!(
        r.permissions.iter().all(|p| p
            .reason
            .as_deref()
            .is_some_and(|x| x.contains("(SelfSubjectRulesReview)"))),
        "{pretty}"
    );
    let tls = r.stage(StageName::Tls).unwrap().detail.clone().unwrap();
    assert!(
        tls.contains("IP:127.0.0.1") && tls.contains("tether-test-ca"),
        "{tls}"
    );
    assert_no_secret(&r, &t);
    Ok(())
}

/// A TCP forwarder to the API server that counts the connections made through it.
async fn counting_forwarder(env: &KubeEnv) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let target = env
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), count)
}

/// The TLS stage's connection carries every API call of the test (issue 10,
/// item 11): anonymous and authenticated `/version`, the identity, and a
/// rules review per namespace, for a token and for a client certificate.
#[tokio::test]
async fn the_whole_test_uses_the_tls_stage_connection() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns1 = env.namespace("ct-one-a").await;
    let ns2 = env.namespace("ct-one-b").await;
    let t = service_account_token(&admin, &ns1, "deployer").await?;
    bind_cluster_admin(&admin, &ns1, "deployer").await?;
    let ca = cluster_ca(env);
    let l = leaf(
        &ca,
        "ct-one-admin",
        &["system:masters"],
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        None,
    );
    let cases = [
        ("token", token(&t)),
        (
            "client certificate",
            client_cert(&l.cert_pem, &l.key.serialize_pem(), None),
        ),
    ];
    for (what, auth) in cases {
        let (url, count) = counting_forwarder(env).await;
        let mut input = manual(&url, Some(&env.ca_pem), auth);
        input.settings = ConnectionTestSettings {
            namespaces: vec![ns1.clone(), ns2.clone()],
            ..Default::default()
        };
        let r = run(input).await;
        let pretty = json(&r);
        assert_eq!(r.status, ConnectivityState::Success, "{what}: {pretty}");
        assert_eq!(r.permissions.len(), 70, "{what}: {pretty}");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{what}: the test opened more than one connection"
        );
    }
    Ok(())
}

#[tokio::test]
async fn service_account_without_bindings_is_partial_with_rules_and_commands() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("ct-partial").await;
    let t = service_account_token(&admin, &ns, "nobody").await?;

    let mut input = manual(&env.url, Some(&env.ca_pem), token(&t));
    input.settings = settings(&ns);
    let r = run(input).await;
    let pretty = json(&r);
    let user = format!("system:serviceaccount:{ns}:nobody");
    assert_eq!(r.status, ConnectivityState::Partial, "{pretty}");
    assert_eq!(r.reason(), Some("MISSING_PERMISSIONS"), "{pretty}");
    assert_eq!(r.errors[0].code, 403);
    assert!(
        r.error_summary.as_deref().unwrap().contains("35 of 35"),
        "{pretty}"
    );
    assert_eq!(
        r.stage(StageName::Authentication).unwrap().status,
        StageStatus::Passed
    );
    assert_eq!(
        r.stage(StageName::Authorization).unwrap().status,
        StageStatus::Failed
    );
    // Named by the API server itself.
    let id = r.identity.as_ref().unwrap();
    assert_eq!(id.user, user, "{pretty}");
    assert_eq!(id.source, IdentitySource::ForbiddenResponse, "{pretty}");
    assert!(id.confirmed_by_server);

    assert_eq!(r.missing.len(), 35, "{pretty}");
    let patch = r
        .missing
        .iter()
        .find(|m| m.verb == "patch" && m.resource == "deployments")
        .expect("patch deployments is missing");
    assert_eq!(patch.group, "apps");
    assert_eq!(
        patch.rule,
        "- apiGroups: [\"apps\"]\n  resources: [\"deployments\"]\n  verbs: [\"patch\"]\n"
    );
    assert_eq!(
        patch.verify_command,
        format!("kubectl auth can-i patch deployments.apps -n {ns} --as={user}")
    );
    let h = hints(&r);
    assert!(
        h.contains("kind: RoleBinding") && h.contains("name: nobody"),
        "{h}"
    );

    // The verify command really answers "no" for this account, as the report says.
    let out = env
        .kubectl()
        .args([
            "auth",
            "can-i",
            "patch",
            "deployments.apps",
            "-n",
            &ns,
            &format!("--as={user}"),
        ])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    assert_no_secret(&r, &t);
    Ok(())
}

#[tokio::test]
async fn inherited_delegate_identity_is_labelled() -> Result<()> {
    let env = KubeEnv::get();
    let access = ClusterAccess::new(
        &env.url,
        Credentials::ClientCert {
            cert_pem: env.admin_cert_pem.clone(),
            key_pem: SecretString::from(env.admin_key_pem.clone()),
        },
    )
    .with_ca(&env.ca_pem);
    let r = run(TestInput::new(TestTarget::Inherited {
        access,
        identity_label: "kubeconfig context tether-test".into(),
    }))
    .await;
    let pretty = json(&r);
    assert_eq!(r.status, ConnectivityState::Success, "{pretty}");
    let id = r.identity.unwrap();
    assert_eq!(id.user, "tether-admin");
    assert_eq!(id.groups, vec!["system:masters".to_string()]);
    assert_eq!(id.label.as_deref(), Some("kubeconfig context tether-test"));
    // The CA came from the delegate, not from a caCertRef the connector lacks.
    let tls = r.stages.iter().find(|s| s.name == StageName::Tls).unwrap();
    let detail = tls.detail.as_deref().unwrap_or_default();
    assert!(!detail.contains("caCertRef"), "{detail}");
    assert!(
        detail.contains("trusted via the delegate's CA (kubeconfig context tether-test)"),
        "{detail}"
    );
    Ok(())
}

// ------------------------------------------------------------------ authentication

#[tokio::test]
async fn bogus_token_is_unauthorized() {
    let env = KubeEnv::get();
    let secret = "bogus-token-d41d8cd98f00b204";
    let r = run(manual(&env.url, Some(&env.ca_pem), token(secret))).await;
    assert_failed_at(&r, StageName::Authentication, "UNAUTHORIZED");
    assert_eq!(r.errors[0].code, 401);
    // The version is known even though the credentials are not accepted.
    assert_eq!(r.server_version.as_deref(), Some("v1.20.2"));
    assert!(
        hints(&r).contains("not a service-account token"),
        "{}",
        json(&r)
    );
    assert!(hints(&r).contains("serviceAccountTokenRef"), "{}", json(&r));
    assert_no_secret(&r, secret);
}

/// A token with a line break inside used to panic in the HTTP client (the
/// Authorization header cannot carry it) and kill the delegate's task.
#[tokio::test]
async fn a_token_with_a_line_break_is_diagnosed_not_a_panic() {
    let env = KubeEnv::get();
    let secret = "first-half-5f2b\nsecond-half-9c1e";
    let r = run(manual(&env.url, Some(&env.ca_pem), token(secret))).await;
    assert_failed_at(&r, StageName::Authentication, "INVALID_TOKEN");
    assert_eq!(r.errors[0].code, 400);
    assert!(
        r.errors[0].message.contains("serviceAccountTokenRef")
            && r.errors[0].message.contains("line break"),
        "{}",
        json(&r)
    );
    assert!(hints(&r).contains("on one line"), "{}", json(&r));
    assert_no_secret(&r, "first-half-5f2b");
    assert_no_secret(&r, "second-half-9c1e");
}

#[tokio::test]
async fn base64_wrapped_token_is_unauthorized_with_decode_hint() -> Result<()> {
    let env = KubeEnv::get();
    let admin = env.admin_client().await;
    let ns = env.namespace("ct-b64").await;
    let t = service_account_token(&admin, &ns, "wrapped").await?;
    let wrapped = base64::engine::general_purpose::STANDARD.encode(&t);
    let r = run(manual(&env.url, Some(&env.ca_pem), token(&wrapped))).await;
    assert_failed_at(&r, StageName::Authentication, "UNAUTHORIZED");
    assert!(
        r.hints[0].contains("base64-encoded") && r.hints[0].contains("base64 -d"),
        "{}",
        json(&r)
    );
    assert_no_secret(&r, &t);
    assert_no_secret(&r, &wrapped);
    Ok(())
}

/// This API server has no basic-auth file: it does not answer 401 but ignores the
/// `Authorization: Basic` header and serves the request as system:anonymous. The
/// report says exactly that, and why.
#[tokio::test]
async fn basic_auth_is_ignored_with_a_specific_hint() {
    let env = KubeEnv::get();
    let password = "pa55-w0rd-never-shown";
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        ResolvedAuth::Basic {
            username: "admin".into(),
            password: SecretString::from(password.to_string()),
        },
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "CREDENTIALS_IGNORED");
    assert_eq!(r.errors[0].code, 401);
    assert!(
        r.errors[0].message.contains("system:anonymous"),
        "{}",
        json(&r)
    );
    assert_eq!(r.identity.as_ref().unwrap().user, "system:anonymous");
    let h = hints(&r);
    assert!(h.contains("runs v1.20.2"), "{h}");
    assert!(
        h.contains("removed basic authentication (--basic-auth-file) in 1.19"),
        "{h}"
    );
    assert!(
        h.contains("ServiceAccount") && h.contains("ClientKeyCert"),
        "{h}"
    );
    assert_no_secret(&r, password);
}

fn client_cert(cert_pem: &str, key_pem: &str, passphrase: Option<&str>) -> ResolvedAuth {
    ResolvedAuth::ClientCert {
        cert_pem: cert_pem.to_string(),
        key_pem: SecretString::from(key_pem.to_string()),
        passphrase: passphrase.map(|p| SecretString::from(p.to_string())),
    }
}

#[tokio::test]
async fn client_cert_from_an_unknown_ca_is_unauthorized() {
    let env = KubeEnv::get();
    let rogue = test_ca("rogue-ca");
    let l = leaf(
        &rogue.issuer,
        "mallory",
        &["system:masters"],
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        None,
    );
    let key = l.key.serialize_pem();
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        client_cert(&l.cert_pem, &key, None),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "UNAUTHORIZED");
    let h = hints(&r);
    assert!(
        h.contains("'CN=rogue-ca'") && h.contains("--client-ca-file"),
        "{h}"
    );
    assert!(h.contains("'CN=tether-test-ca'"), "{h}");
    assert_no_secret(&r, key.lines().nth(1).unwrap());
}

/// PKCS#8 body of a key, re-encoded as SEC1 `EC PRIVATE KEY` PEM.
fn sec1_pem(key: &KeyPair) -> String {
    let der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
    pkcs8::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, info.private_key).unwrap()
}

fn encrypted_pkcs8_pem(key_der: &[u8], passphrase: &str) -> String {
    let info = pkcs8::PrivateKeyInfo::from_der(key_der).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"tether-salt", &[9; 16])
            .unwrap();
    info.encrypt_with_params(params, passphrase.as_bytes())
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn client_certs_signed_by_the_cluster_ca_succeed_in_every_key_format() {
    let env = KubeEnv::get();
    let ca = cluster_ca(env);
    let l = leaf(
        &ca,
        "ct-admin",
        &["system:masters"],
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        None,
    );
    let passphrase = "open sesame 42";
    // RSA PKCS#8 (the admin key written by openssl), EC SEC1, EC PKCS#8, and an
    // encrypted PKCS#8 key with its passphrase.
    let rsa_pkcs8_der =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(env.admin_key_pem.as_bytes()).unwrap();
    let rsa_pkcs1 = pkcs8::der::pem::encode_string(
        "RSA PRIVATE KEY",
        LineEnding::LF,
        pkcs8::PrivateKeyInfo::from_der(rsa_pkcs8_der.secret_der())
            .unwrap()
            .private_key,
    )
    .unwrap();
    let cases: Vec<(&str, String, String, Option<&str>)> = vec![
        (
            "RSA PKCS#8",
            env.admin_cert_pem.clone(),
            env.admin_key_pem.clone(),
            None,
        ),
        ("RSA PKCS#1", env.admin_cert_pem.clone(), rsa_pkcs1, None),
        ("EC SEC1", l.cert_pem.clone(), sec1_pem(&l.key), None),
        ("EC PKCS#8", l.cert_pem.clone(), l.key.serialize_pem(), None),
        (
            "EC encrypted PKCS#8",
            l.cert_pem.clone(),
            encrypted_pkcs8_pem(&l.key.serialize_der(), passphrase),
            Some(passphrase),
        ),
    ];
    for (what, cert, key, pass) in cases {
        let r = run(manual(
            &env.url,
            Some(&env.ca_pem),
            client_cert(&cert, &key, pass),
        ))
        .await;
        let pretty = json(&r);
        assert_eq!(r.status, ConnectivityState::Success, "{what}: {pretty}");
        let id = r.identity.as_ref().unwrap();
        assert!(
            id.groups.contains(&"system:masters".to_string()),
            "{what}: {pretty}"
        );
        assert_eq!(
            id.source,
            IdentitySource::ClientCertificate,
            "{what}: {pretty}"
        );
        let auth = r
            .stage(StageName::Authentication)
            .unwrap()
            .detail
            .clone()
            .unwrap();
        assert!(
            auth.contains(what.split(' ').next().unwrap()),
            "{what}: {auth}"
        );
        assert_no_secret(&r, key.lines().nth(1).unwrap());
        assert_no_secret(&r, passphrase);
    }

    // The same encrypted key with a wrong passphrase: the key is the problem.
    let enc = encrypted_pkcs8_pem(&l.key.serialize_der(), passphrase);
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        client_cert(&l.cert_pem, &enc, Some("wrong")),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "INVALID_CLIENT_KEY");
    assert!(hints(&r).contains("clientKeyPassphraseRef"), "{}", json(&r));
    // ... and without one.
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        client_cert(&l.cert_pem, &enc, None),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "INVALID_CLIENT_KEY");
    assert!(
        r.errors[0].message.contains("encrypted and no passphrase"),
        "{}",
        json(&r)
    );
    // A key that belongs to another certificate.
    let other = KeyPair::generate().unwrap().serialize_pem();
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        client_cert(&l.cert_pem, &other, None),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "CLIENT_KEY_MISMATCH");
}

// ------------------------------------------------------------------ tls

#[tokio::test]
async fn cluster_ca_unknown_to_the_system_roots_names_the_issuer() {
    let env = KubeEnv::get();
    let r = run(manual(&env.url, None, token("x"))).await;
    assert_failed_at(&r, StageName::Tls, "UNKNOWN_CA");
    assert!(
        r.errors[0].message.contains("'CN=tether-test-ca'"),
        "{}",
        json(&r)
    );
    assert!(
        r.hints[0].contains("Set caCertRef") && r.hints[0].contains("CN=tether-test-ca"),
        "{}",
        json(&r)
    );
}

#[tokio::test]
async fn a_different_ca_in_ca_cert_ref_is_named_beside_the_real_issuer() {
    let env = KubeEnv::get();
    let other = test_ca("some-other-ca");
    let r = run(manual(&env.url, Some(&other.pem), token("x"))).await;
    assert_failed_at(&r, StageName::Tls, "UNKNOWN_CA");
    let msg = &r.errors[0].message;
    assert!(
        msg.contains("CN=some-other-ca") && msg.contains("CN=tether-test-ca"),
        "{msg}"
    );
    assert!(
        r.hints[0].contains("caCertRef holds a different CA"),
        "{}",
        json(&r)
    );
}

#[tokio::test]
async fn certificate_without_the_ip_san_is_a_name_mismatch_listing_the_sans() {
    let ca = test_ca("mismatch-ca");
    let l = leaf(
        &ca.issuer,
        "api",
        &[],
        &["api.internal.example", "kubernetes.default"],
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
    );
    let port = https_server(&l, Arc::new(|_| (200, "text/plain", "unused".into()))).await;
    let r = run(manual(
        &format!("https://127.0.0.1:{port}"),
        Some(&ca.pem),
        token("x"),
    ))
    .await;
    assert_failed_at(&r, StageName::Tls, "CERTIFICATE_NAME_MISMATCH");
    let msg = &r.errors[0].message;
    assert!(msg.contains("not valid for '127.0.0.1'"), "{msg}");
    assert!(
        msg.contains("DNS:api.internal.example, DNS:kubernetes.default"),
        "{msg}"
    );
    assert!(r.hints[0].contains("IP:127.0.0.1"), "{}", json(&r));
}

#[tokio::test]
async fn expired_server_certificate_says_when() {
    let ca = test_ca("expiry-ca");
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let l = leaf(
        &ca.issuer,
        "api",
        &[],
        &["127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        Some(past),
    );
    let port = https_server(&l, Arc::new(|_| (200, "text/plain", "unused".into()))).await;
    let r = run(manual(
        &format!("https://127.0.0.1:{port}"),
        Some(&ca.pem),
        token("x"),
    ))
    .await;
    assert_failed_at(&r, StageName::Tls, "CERTIFICATE_EXPIRED");
    assert!(r.errors[0].message.contains("expired on"), "{}", json(&r));
}

#[tokio::test]
async fn ca_cert_ref_that_is_not_pem_says_what_it_is() {
    let env = KubeEnv::get();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(env.ca_pem.as_bytes()).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let cases = [
        (
            b64(env.ca_pem.as_bytes()),
            "base64-wrapped PEM",
            "base64 -d",
        ),
        (
            b64(&der),
            "base64 of a binary DER",
            "openssl x509 -inform DER",
        ),
        (
            String::from_utf8_lossy(&der).into_owned(),
            "binary DER",
            "openssl x509 -inform DER",
        ),
        (
            env.admin_key_pem.clone(),
            "private key",
            "not a private key",
        ),
    ];
    for (ca, says, fix) in cases {
        let r = run(manual(&env.url, Some(&ca), token("x"))).await;
        assert_failed_at(&r, StageName::Tls, "INVALID_CA_CERTIFICATE");
        assert!(r.errors[0].message.contains(says), "{says}: {}", json(&r));
        assert!(r.hints[0].contains(fix), "{says}: {}", json(&r));
        // The key is never echoed back.
        assert_no_secret(&r, env.admin_key_pem.lines().nth(1).unwrap());
    }
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_recognised() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let r = run(manual(
        &format!("https://127.0.0.1:{port}"),
        None,
        token("x"),
    ))
    .await;
    assert_failed_at(&r, StageName::Tls, "PLAIN_HTTP");
    assert!(
        r.errors[0].message.contains("answered in plain HTTP"),
        "{}",
        json(&r)
    );
}

// ------------------------------------------------------------------ url, dns, tcp, timeouts

#[tokio::test]
async fn http_scheme_is_refused_before_connecting() {
    let r = run(manual("http://127.0.0.1:6443", None, token("x"))).await;
    assert_failed_at(&r, StageName::Url, "PLAIN_HTTP");
    assert!(
        r.hints[0].contains("Use https://127.0.0.1:6443"),
        "{}",
        json(&r)
    );
}

#[tokio::test]
async fn unresolvable_name_fails_dns() {
    let r = run(manual(
        "https://does-not-exist.invalid:6443",
        None,
        token("x"),
    ))
    .await;
    assert_failed_at(&r, StageName::Dns, "DNS_RESOLUTION_FAILED");
    assert!(
        r.errors[0]
            .message
            .contains("'does-not-exist.invalid' does not resolve"),
        "{}",
        json(&r)
    );
    assert!(r.hints[0].contains("typos"), "{}", json(&r));
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let port = closed_port().await;
    let r = run(manual(
        &format!("https://127.0.0.1:{port}"),
        None,
        token("x"),
    ))
    .await;
    assert_failed_at(&r, StageName::Tcp, "CONNECTION_REFUSED");
    assert!(
        r.errors[0].message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        json(&r)
    );
    assert!(r.hints[0].contains("6443"), "{}", json(&r));
}

#[tokio::test]
async fn silent_listener_times_out_in_the_tls_stage() {
    // Accepts connections and never says a word: a blackhole, on loopback.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel::<TcpStream>();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = held_tx.send(s);
        }
    });
    let mut input = manual(&format!("https://127.0.0.1:{port}"), None, token("x"));
    input.stage_timeout = Duration::from_secs(1);
    let r = run(input).await;
    assert_failed_at(&r, StageName::Tls, "TIMEOUT");
    assert_eq!(r.errors[0].code, 504);
    let tls = r.stage(StageName::Tls).unwrap();
    assert!((900..3000).contains(&tls.duration_ms), "{}", json(&r));
    assert!(r.duration_ms < 5000, "{}", json(&r));
    assert!(
        r.errors[0]
            .message
            .contains("did not answer the TLS handshake within 1 s"),
        "{}",
        json(&r)
    );
    assert!(
        held_rx.try_recv().is_ok(),
        "the listener saw the connection"
    );
}

// ------------------------------------------------------------------ not kubernetes, oidc

#[tokio::test]
async fn https_server_that_is_not_kubernetes_is_named() {
    let ca = test_ca("web-ca");
    let l = leaf(
        &ca.issuer,
        "web",
        &[],
        &["127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
    );
    let port = https_server(&l, Arc::new(|_| (200, "text/plain", "hello".into()))).await;
    let r = run(manual(
        &format!("https://127.0.0.1:{port}"),
        Some(&ca.pem),
        token("x"),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "NOT_KUBERNETES");
    let msg = &r.errors[0].message;
    assert!(
        msg.contains("not a Kubernetes API server") && msg.contains("'hello'"),
        "{msg}"
    );
    assert!(r.server_version.is_none());
}

/// An OIDC issuer whose certificate is signed by the cluster CA (so the
/// connector's caCertRef covers both): `alice` is refused, `bob` gets an ID token.
async fn oidc_issuer(env: &KubeEnv) -> u16 {
    let ca = cluster_ca(env);
    let l = leaf(
        &ca,
        "idp",
        &[],
        &["127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        None,
    );
    https_server(
        &l,
        Arc::new(|req: &Request| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => (
                200,
                "application/json",
                format!(
                    r#"{{"issuer":"https://{h}","token_endpoint":"https://{h}/token","jwks_uri":"https://{h}/keys"}}"#,
                    h = req.host
                ),
            ),
            ("POST", "/token") if req.body.contains("grant_type=password") && req.body.contains("username=bob") => {
                let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
                let id_token = format!(
                    "{}.{}.c2ln",
                    e(r#"{"alg":"RS256"}"#),
                    e(&format!(r#"{{"iss":"https://{}","sub":"bob-123","aud":"kubernetes"}}"#, req.host))
                );
                (
                    200,
                    "application/json",
                    format!(r#"{{"access_token":"at","token_type":"Bearer","id_token":"{id_token}"}}"#),
                )
            }
            ("POST", "/token") => (
                400,
                "application/json",
                r#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#.to_string(),
            ),
            _ => (404, "text/plain", "not found".to_string()),
        }),
    )
    .await
}

fn oidc(port: u16, username: &str, password: &str) -> ResolvedAuth {
    ResolvedAuth::Oidc {
        issuer_url: format!("https://127.0.0.1:{port}"),
        client_id: "kubernetes".into(),
        client_secret: Some(SecretString::from("client-secret-xyz".to_string())),
        username: username.into(),
        password: SecretString::from(password.to_string()),
        scopes: vec!["groups".into()],
    }
}

#[tokio::test]
async fn oidc_issuer_that_rejects_the_grant_is_named() {
    let env = KubeEnv::get();
    let port = oidc_issuer(env).await;
    let password = "alice-secret-pw";
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        oidc(port, "alice", password),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "OIDC_GRANT_REJECTED");
    assert_eq!(r.errors[0].code, 400);
    assert!(
        r.errors[0]
            .message
            .contains("invalid_grant (Invalid user credentials)"),
        "{}",
        json(&r)
    );
    assert!(
        r.hints[0].contains("oidcUsernameRef") && r.hints[0].contains("oidcPasswordRef"),
        "{}",
        json(&r)
    );
    // The user name is not quoted: it may be a secret (oidcUsernameRef).
    assert_no_secret(&r, "alice");
    assert_no_secret(&r, password);
    assert_no_secret(&r, "client-secret-xyz");
}

#[tokio::test]
async fn oidc_token_the_cluster_does_not_accept_explains_the_api_server_flags() {
    let env = KubeEnv::get();
    let port = oidc_issuer(env).await;
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        oidc(port, "bob", "bob-pw-123"),
    ))
    .await;
    assert_failed_at(&r, StageName::Authentication, "UNAUTHORIZED");
    let h = hints(&r);
    assert!(
        h.contains(&format!("--oidc-issuer-url=https://127.0.0.1:{port}")),
        "{h}"
    );
    assert!(
        h.contains("--oidc-client-id set to the client id of oidcClientIdRef"),
        "{h}"
    );
    assert!(
        !h.contains("=kubernetes"),
        "the client id is not quoted: {h}"
    );
    let id = r.identity.as_ref().unwrap();
    assert_eq!(id.user, format!("https://127.0.0.1:{port}#bob-123"));
    assert_eq!(id.source, IdentitySource::OidcIdToken);
    assert_no_secret(&r, "bob-pw-123");
}

// ------------------------------------------------------------------ X.509 v1

#[tokio::test]
async fn an_x509_v1_client_certificate_is_accepted_as_kubectl_accepts_it() {
    let env = KubeEnv::get();
    let (cert, key) = env.v1_client_cert("v1-user", "system:masters");
    // kubectl (Go) accepts it: the API server authenticates it.
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    std::fs::write(
        kubeconfig.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            env.url,
            b64(&env.ca_pem),
            b64(&cert),
            b64(&key)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env.bin_dir.join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig.path())
        .args(["auth", "can-i", "get", "pods"])
        .output();
    if let Ok(out) = out {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "yes",
            "kubectl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // ClientKeyCert connector.
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        client_cert(&cert, &key, None),
    ))
    .await;
    let pretty = json(&r);
    assert_eq!(r.status, ConnectivityState::Success, "{pretty}");
    assert_eq!(r.identity.as_ref().unwrap().user, "v1-user", "{pretty}");

    // InheritFromDelegate through a kubeconfig.
    let access = ClusterAccess::new(
        &env.url,
        Credentials::ClientCert {
            cert_pem: cert.clone(),
            key_pem: SecretString::from(key.clone()),
        },
    )
    .with_ca(&env.ca_pem);
    let r = run(TestInput::new(TestTarget::Inherited {
        access,
        identity_label: "kubeconfig context x".into(),
    }))
    .await;
    assert_eq!(r.status, ConnectivityState::Success, "{}", json(&r));

    // The kube client the CLI builds from a kubeconfig (`cluster add`, ...).
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig.path()).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = tether_kube::client_cert::client_from_config(config)
        .expect("a client for a v1 certificate");
    client
        .apiserver_version()
        .await
        .expect("the API server answers the v1 certificate's client");
}

#[tokio::test]
async fn a_key_of_another_certificate_is_named_as_a_mismatch_of_both_fields() {
    let env = KubeEnv::get();
    let (cert, _) = env.v1_client_cert("v1-a", "g");
    let (_, other_key) = env.v1_client_cert("v1-b", "g");
    let r = run(manual(
        &env.url,
        Some(&env.ca_pem),
        client_cert(&cert, &other_key, None),
    ))
    .await;
    let pretty = json(&r);
    assert_failed_at(&r, StageName::Authentication, "CLIENT_KEY_MISMATCH");
    assert!(
        pretty.contains("clientKeyRef")
            && pretty.contains("clientCertRef")
            && pretty.contains("CN=v1-a"),
        "{pretty}"
    );
    // Through a delegate's kubeconfig the fields are the kubeconfig's.
    let access = ClusterAccess::new(
        &env.url,
        Credentials::ClientCert {
            cert_pem: cert,
            key_pem: SecretString::from(other_key),
        },
    )
    .with_ca(&env.ca_pem);
    let r = run(TestInput::new(TestTarget::Inherited {
        access,
        identity_label: "kubeconfig /etc/kube.conf (context x) of delegate 'd'".into(),
    }))
    .await;
    let pretty = json(&r);
    assert!(!pretty.contains("clientKeyRef"), "{pretty}");
    assert!(
        pretty.contains("client-key-data of kubeconfig /etc/kube.conf"),
        "{pretty}"
    );
}
