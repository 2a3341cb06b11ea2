use super::*;

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAA\n-----END CERTIFICATE-----\n";
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIICAAAAAAAA\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEAAAAAAAA\n-----END PRIVATE KEY-----\n";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.super-secret-token";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A kubeconfig with two contexts sharing one cluster; `user` is the YAML of the
/// `user:` mapping of the first context's user (indented by 4).
fn kubeconfig(user: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
current-context: main
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    certificate-authority-data: {ca}
contexts:
- name: main
  context: {{cluster: prod, user: main-user}}
- name: other
  context: {{cluster: prod, user: other-user}}
users:
- name: main-user
  user:
{user}
- name: other-user
  user:
    username: bob
    password: hunter2
"#,
        ca = b64(CA),
    )
}

fn import(yaml: &str, context: Option<&str>) -> Result<ImportedCluster, ImportError> {
    import_kubeconfig_yaml(yaml, context, FileAccess::NONE)
}

#[test]
fn token_user_imports_server_ca_and_token() {
    let got = import(&kubeconfig(&format!("    token: {TOKEN}")), None).unwrap();
    assert_eq!(got.server, "https://prod.example:6443");
    assert_eq!(got.ca_pem.as_deref(), Some(CA));
    assert_eq!(
        (
            got.context.as_str(),
            got.cluster_name.as_str(),
            got.user_name.as_str()
        ),
        ("main", "prod", "main-user")
    );
    let ImportedAuth::Token(token) = &got.auth else {
        panic!("{got:?}")
    };
    assert_eq!(token.expose_secret(), TOKEN);
    let debug = format!("{got:?}");
    assert!(!debug.contains("super-secret"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(matches!(got.access().credentials, Credentials::Token(_)));
}

#[test]
fn client_certificate_user_imports_cert_and_key() {
    let user = format!(
        "    client-certificate-data: {}\n    client-key-data: {}",
        b64(CERT),
        b64(KEY)
    );
    let got = import(&kubeconfig(&user), Some("main")).unwrap();
    let ImportedAuth::ClientCert { cert_pem, key_pem } = &got.auth else {
        panic!("{got:?}")
    };
    assert_eq!(cert_pem, CERT);
    assert_eq!(key_pem.expose_secret(), KEY);
    let debug = format!("{:?}", got.auth);
    assert!(!debug.contains("MIIE"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn basic_auth_user_of_another_context() {
    let got = import(&kubeconfig(&format!("    token: {TOKEN}")), Some("other")).unwrap();
    let ImportedAuth::Basic { username, password } = &got.auth else {
        panic!("{got:?}")
    };
    assert_eq!(username, "bob");
    assert_eq!(password.expose_secret(), "hunter2");
    assert!(!format!("{got:?}").contains("hunter2"));
}

#[test]
fn file_paths_are_read_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [("ca.crt", CA), ("client.crt", CERT), ("client.key", KEY)] {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    // Relative paths: resolved against the kubeconfig's directory.
    let yaml = r#"apiVersion: v1
kind: Config
current-context: certs
clusters:
- name: c
  cluster: {server: "https://10.0.0.1", certificate-authority: ca.crt}
contexts:
- name: certs
  context: {cluster: c, user: certs}
- name: token
  context: {cluster: c, user: token}
users:
- name: certs
  user: {client-certificate: client.crt, client-key: client.key}
- name: token
  user: {tokenFile: token}
"#;
    let path = dir.path().join("config");
    std::fs::write(&path, yaml).unwrap();

    let got = import_kubeconfig_file(&path, None, FileAccess::ALL).unwrap();
    assert_eq!(got.ca_pem.as_deref(), Some(CA));
    let ImportedAuth::ClientCert { cert_pem, key_pem } = &got.auth else {
        panic!("{got:?}")
    };
    assert_eq!((cert_pem.as_str(), key_pem.expose_secret()), (CERT, KEY));

    let got = import_kubeconfig_file(&path, Some("token"), FileAccess::ALL).unwrap();
    let ImportedAuth::Token(token) = &got.auth else {
        panic!("{got:?}")
    };
    assert_eq!(token.expose_secret(), TOKEN, "trailing newline trimmed");

    for context in ["certs", "token"] {
        let err = import_kubeconfig_file(&path, Some(context), FileAccess::NONE).unwrap_err();
        let ImportError::FilePathRefused { path: refused, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            refused.starts_with(&dir.path().display().to_string()),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("--flatten"), "{msg}");
    }
    // The CA is the first file the certs context needs.
    let err = import_kubeconfig_file(&path, Some("certs"), FileAccess::NONE).unwrap_err();
    assert!(
        err.to_string()
            .contains("reads certificate-authority from the file"),
        "{err}"
    );

    // Even when files may be read: only regular files of credential size,
    // and a tokenFile must hold a token (issue 10: /dev/zero, /etc/shadow,
    // /proc/self/environ).
    let shadow_like = dir.path().join("shadow");
    std::fs::write(
        &shadow_like,
        "root:$6$abc:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n",
    )
    .unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 300 * 1024]).unwrap();
    for (file, why) in [
        ("/dev/zero".to_string(), "not a regular file"),
        ("/proc/self/environ".to_string(), "not a regular file"),
        (shadow_like.display().to_string(), "not a token"),
        (big.display().to_string(), "larger than"),
    ] {
        let config = dir.path().join("evil");
        std::fs::write(
            &config,
            yaml.replace("{tokenFile: token}", &format!("{{tokenFile: \"{file}\"}}")),
        )
        .unwrap();
        let err = import_kubeconfig_file(&config, Some("token"), FileAccess::ALL).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(why), "{file}: {msg}");
        assert!(
            !msg.contains("root:$6$"),
            "{file}: the content is quoted: {msg}"
        );
    }

    let missing = dir.path().join("gone");
    std::fs::remove_file(dir.path().join("client.key")).unwrap();
    let err = import_kubeconfig_file(&path, Some("certs"), FileAccess::ALL).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::ReadFile {
                field: "client-key",
                ..
            }
        ),
        "{err}"
    );
    let err = import_kubeconfig_file(&missing, None, FileAccess::ALL).unwrap_err();
    assert!(matches!(err, ImportError::Read { .. }), "{err}");
}

#[test]
fn a_token_file_is_read_only_when_the_operator_allows_it() {
    // One printable line, like tether's own key file or admin token: the
    // content check cannot tell it from a token, so the operator must say.
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, format!("{}\n", "ab12".repeat(16))).unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: c\n  cluster: {{server: \"https://attacker.example\"}}\ncontexts:\n- name: t\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user: {{tokenFile: \"{}\"}}\n",
        kek.display()
    );
    let config = dir.path().join("config");
    std::fs::write(&config, yaml).unwrap();
    let files = FileAccess {
        paths: true,
        token_file: false,
    };
    let err = import_kubeconfig_file(&config, None, files).unwrap_err();
    assert!(matches!(err, ImportError::TokenFileRefused { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&kek.display().to_string()), "{msg}");
    assert!(msg.contains("--allow-token-file"), "{msg}");
    assert!(!msg.contains("ab12"), "the content is quoted: {msg}");
    // Allowed: read as the token it is said to be.
    let got = import_kubeconfig_file(&config, None, FileAccess::ALL).unwrap();
    let ImportedAuth::Token(t) = &got.auth else {
        panic!("{got:?}")
    };
    assert_eq!(t.expose_secret(), "ab12".repeat(16));
}

#[test]
fn exec_users_are_refused_with_the_alternative() {
    let user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: my-token-helper\n      args: [get, --cluster-name, prod]";
    let err = import(&kubeconfig(user), None).unwrap_err();
    assert!(matches!(err, ImportError::ExecRefused { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`my-token-helper get --cluster-name prod`"),
        "{msg}"
    );
    assert!(msg.contains("never runs commands"), "{msg}");
    assert!(msg.contains("tether cluster add"), "{msg}");
}

#[test]
fn cloud_exec_plugins_get_the_native_auth_type() {
    for (exec, auth_type, field) in [
        ("command: aws\n      args: [--region, eu-west-1, eks, get-token, --cluster-name, prod]", "EKS", "clusterName: prod"),
        ("command: aws-iam-authenticator\n      args: [token, -i, prod]", "EKS", "clusterName: prod"),
        ("command: gke-gcloud-auth-plugin", "GKE", "serviceAccountKeyRef"),
        ("command: kubelogin\n      args: [get-token, --login, spn, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630, --tenant-id, t-1, --client-id, c-1]", "AKS", "tenantId: t-1"),
    ] {
        let user = format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      {exec}");
        let err = import(&kubeconfig(&user), None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ImportError::CloudExecRecognised { .. }), "{msg}");
        assert!(msg.contains(&format!("type: {auth_type}")), "{msg}");
        assert!(msg.contains(field), "{msg}");
        assert!(msg.contains("never runs commands"), "{msg}");
    }
}

#[test]
fn auth_provider_users_are_refused_with_the_alternative() {
    let user = "    auth-provider:\n      name: oidc\n      config: {id-token: abc, idp-issuer-url: https://issuer}";
    let err = import(&kubeconfig(user), None).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ImportError::AuthProviderRefused { .. }),
        "{msg}"
    );
    assert!(msg.contains("'oidc'"), "{msg}");
    assert!(msg.contains("tether cluster add"), "{msg}");
    assert!(!msg.contains("abc"), "{msg}");
}

#[test]
fn a_missing_context_lists_the_available_ones() {
    let err = import(&kubeconfig(&format!("    token: {TOKEN}")), Some("staging")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "context 'staging' is not in the kubeconfig (available contexts: main, other)"
    );
    let no_current =
        kubeconfig(&format!("    token: {TOKEN}")).replace("current-context: main\n", "");
    let err = import(&no_current, None).unwrap_err();
    assert!(
        err.to_string().contains("available contexts: main, other"),
        "{err}"
    );
}

#[test]
fn ambiguous_insecure_and_impersonating_users_are_refused() {
    let both = format!(
        "    token: {TOKEN}\n    client-certificate-data: {}",
        b64(CERT)
    );
    let err = import(&kubeconfig(&both), None).unwrap_err();
    assert!(
        err.to_string().contains("a token and a client certificate"),
        "{err}"
    );

    let insecure = kubeconfig(&format!("    token: {TOKEN}")).replace(
        "    server:",
        "    insecure-skip-tls-verify: true\n    server:",
    );
    let err = import(&insecure, None).unwrap_err();
    assert!(
        matches!(err, ImportError::InsecureSkipTlsVerify { .. }),
        "{err}"
    );

    let impersonating = format!("    token: {TOKEN}\n    as: system:admin");
    let err = import(&kubeconfig(&impersonating), None).unwrap_err();
    assert!(
        matches!(err, ImportError::ImpersonationRefused { .. }),
        "{err}"
    );

    let err = import(&kubeconfig("    username: alice"), None).unwrap_err();
    assert!(err.to_string().contains("no password"), "{err}");
    let err = import(
        &kubeconfig(&format!("    client-certificate-data: {}", b64(CERT))),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no client key"), "{err}");
    let err = import(&kubeconfig("    {}"), None).unwrap_err();
    assert!(matches!(err, ImportError::NoCredentials { .. }), "{err}");
}

#[test]
fn bad_data_is_reported_without_quoting_it() {
    let user = "    client-certificate-data: not*base64\n    client-key-data: c2VjcmV0LWtleQ==";
    let err = import(&kubeconfig(user), None).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::BadBase64 {
                field: "client-certificate-data",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("not*base64"), "{err}");

    let user = format!(
        "    client-certificate-data: {}\n    client-key-data: {}",
        b64(CERT),
        b64("secret-key")
    );
    let err = import(&kubeconfig(&user), None).unwrap_err();
    assert!(err.to_string().contains("not a PEM private key"), "{err}");
    assert!(!err.to_string().contains("secret-key"), "{err}");

    // A YAML error must not echo the file (which holds credentials).
    let broken = format!("{}\n  - : [\n", kubeconfig(&format!("    token: {TOKEN}")));
    let err = import(&broken, None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::Parse { .. }), "{msg}");
    assert!(!msg.contains("super-secret"), "{msg}");
    assert!(!format!("{err:?}").contains("super-secret"), "{err:?}");
}

#[test]
fn raw_pem_in_data_fields_is_accepted() {
    let yaml = kubeconfig(&format!("    token: {TOKEN}")).replace(&b64(CA), &format!("{CA:?}"));
    let got = import(&yaml, None).unwrap();
    assert_eq!(got.ca_pem.as_deref(), Some(CA));
}
