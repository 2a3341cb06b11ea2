//! A world of clouds for the cloud-auth tests: `scripts/cloud-verifier.py` (STS,
//! the EKS API, Google's token endpoint and an Entra ID-shaped one, built on
//! botocore and google-auth) and a control plane of its own whose API server
//! authenticates bearer tokens through that verifier's token webhook (and asks
//! its authorization webhook after RBAC), and whose certificate also names an
//! AKS host (so it looks like AKS to tether).
//!
//! One world serves a whole test process; it stops when the process exits (the
//! verifier and `kube-testenv` both end when their stdin closes).

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::kube_env::{repo_root, KubeEnv, OwnedKube};

pub const AWS_REGION: &str = "eu-west-1";
pub const EKS_CLUSTER: &str = "tether-test";
pub const AWS_ACCOUNT: &str = "111122223333";
/// Mapped to the Kubernetes user `ci` (cluster-admin); may assume the role.
pub const AWS_CI_KEY_ID: &str = "AKIATETHERCI00000001";
pub const AWS_CI_SECRET: &str = "tetherCiSecretKey/K7MDENG+bPxRfiCYEXAMPLE";
/// Known to STS, mapped to nothing in the cluster.
pub const AWS_STRANGER_KEY_ID: &str = "AKIATETHERSTRANGER01";
pub const AWS_STRANGER_SECRET: &str = "tetherStrangerSecret/K7MDENG+bPxRfiCYEXAM";
/// Mapped (`nodescribe`, cluster-admin), but may not call eks:DescribeCluster.
pub const AWS_NODESCRIBE_KEY_ID: &str = "AKIATETHERNODESCRIB1";
pub const AWS_NODESCRIBE_SECRET: &str = "tetherNoDescribeSecret/K7MDENG+bPxRfiCYEX";
/// Temporary keys (with [`AWS_EXPIRED_SESSION_TOKEN`]) whose session has
/// ended: STS answers `ExpiredToken`.
pub const AWS_EXPIRED_KEY_ID: &str = "ASIATETHEREXPIRED001";
pub const AWS_EXPIRED_SECRET: &str = "tetherExpiredSecret/K7MDENG+bPxRfiCYEXAMP";
pub const AWS_EXPIRED_SESSION_TOKEN: &str = "FQoGZXIvYXdzEXPIRED//tether-session-token-0001";
/// Trusts the ci user with [`AWS_EXTERNAL_ID`]; mapped to `deployer`.
pub const AWS_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/deployer";
pub const AWS_EXTERNAL_ID: &str = "tether-external-id-1";
/// The web identity token STS accepts for [`AWS_ROLE_ARN`].
pub const AWS_WEB_IDENTITY_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGV0aGVyOmRlbGVnYXRlIn0.c2ln";
/// The EKS Pod Identity agent's token for a pod of [`AWS_ROLE_ARN`].
pub const AWS_POD_IDENTITY_TOKEN: &str = "eks-pod-identity-token.tether-test.0001";
/// The service-account issuer and subject an Entra federated credential of
/// [`AZURE_CLIENT_ID`] trusts (AKS workload identity).
pub const AZURE_FEDERATED_ISSUER: &str = "https://oidc.tether-test.example/issuer";
pub const AZURE_FEDERATED_SUBJECT: &str = "system:serviceaccount:tether:delegate";
pub const GCP_EMAIL: &str = "tether-ci@tether-test.iam.gserviceaccount.com";
/// Google issues tokens for it; the cluster refuses them.
pub const GCP_DENIED_EMAIL: &str = "unbound@tether-test.iam.gserviceaccount.com";
pub const AZURE_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const AZURE_CLIENT_ID: &str = "0d6a3c3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5";
pub const AZURE_CLIENT_SECRET: &str = "tether~AzureClientSecret.value-1";
/// A service principal whose client secret has expired (AADSTS7000222).
pub const AZURE_EXPIRED_CLIENT_ID: &str = "5e1b7c2a-9d3f-4e6a-8b0c-1d2e3f405162";
pub const AZURE_EXPIRED_CLIENT_SECRET: &str = "tether~AzureExpiredSecret.value-2";
/// A user the API server's authorization webhook allows to create
/// ConfigMaps, which no RBAC rule of the world grants: only a
/// SelfSubjectAccessReview learns it (the rules review is incomplete).
pub const WEBHOOK_AUTHORIZED_USER: &str = "webhook-authorized";
/// The AKS host the API server's certificate names.
pub const AKS_HOST: &str = "tether-test-dns-1a2b3c4d.hcp.westeurope.azmk8s.io";

pub struct CloudWorld {
    /// The control plane whose API server asks the verifier about tokens.
    pub kube: KubeEnv,
    /// `http://127.0.0.1:PORT` of the verifier.
    pub verifier: String,
    /// The JSON key of [`GCP_EMAIL`], its token_uri pointing at the verifier.
    pub gcp_key_json: String,
    /// A key for [`GCP_EMAIL`] signed with a private key Google does not know
    /// (as after the key was deleted).
    pub gcp_deleted_key_json: String,
    /// A valid key of [`GCP_DENIED_EMAIL`].
    pub gcp_denied_key_json: String,
    /// The projected service-account token of a pod with AKS workload
    /// identity (minted by the verifier: [`AZURE_FEDERATED_ISSUER`],
    /// [`AZURE_FEDERATED_SUBJECT`], audience `api://AzureADTokenExchange`).
    pub azure_federated_token_file: PathBuf,
    /// `host:port` of the verifier, as `GCE_METADATA_HOST` takes it.
    pub metadata_host: String,
    pub dir: PathBuf,
    _kube: OwnedKube,
}

static WORLD: OnceLock<CloudWorld> = OnceLock::new();
static VERIFIER: Mutex<Option<Child>> = Mutex::new(None);

impl CloudWorld {
    /// The world, started on first use; panics with the reason when it cannot
    /// be had (a test that needs it must not pass without it).
    pub fn get() -> &'static CloudWorld {
        WORLD.get_or_init(|| match Self::start() {
            Ok(w) => w,
            Err(e) => panic!("cannot start the cloud-auth test world: {e:#}"),
        })
    }

    /// A GKE key file of `email` for `token_uri`, with the PEM key in `key`.
    pub fn gcp_key(email: &str, key_pem: &str, key_id: &str, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "tether-test",
            "private_key_id": key_id,
            "private_key": key_pem,
            "client_email": email,
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        })
        .to_string()
    }

    /// The verifier's URL for `path`, judged by a clock `skew` seconds ahead.
    pub fn url(&self, skew: i64, path: &str) -> String {
        if skew == 0 {
            format!("{}{path}", self.verifier)
        } else {
            format!("{}/skew/{skew}{path}", self.verifier)
        }
    }

    /// The API server accepts `token` as `user` for `lifetime` seconds from
    /// now (its token webhook asks the verifier).
    pub fn accept_token(&self, token: &str, user: &str, lifetime: u64) -> Result<()> {
        let body = json!({"token": token, "user": user, "lifetime": lifetime}).to_string();
        let answer = self.http(&format!(
            "POST /issued HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.verifier_addr(),
            body.len()
        ))?;
        if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
            bail!("the verifier refused /issued: {answer}");
        }
        Ok(())
    }

    fn verifier_addr(&self) -> &str {
        self.verifier.trim_start_matches("http://")
    }

    /// One request to the verifier, its whole answer.
    fn http(&self, request: &str) -> Result<String> {
        use std::io::Read as _;
        let mut c = std::net::TcpStream::connect(self.verifier_addr())?;
        c.write_all(request.as_bytes())?;
        let mut text = String::new();
        c.read_to_string(&mut text)?;
        Ok(text)
    }

    /// How many requests the verifier has had at `route` (e.g.
    /// `/google/token`), so a test can await a token being fetched.
    pub fn requests(&self, route: &str) -> Result<u64> {
        let text = self.http(&format!(
            "GET /counts HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.verifier_addr()
        ))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .context("the verifier's /counts answer has no body")?;
        let counts: serde_json::Value = serde_json::from_str(body)?;
        Ok(counts[route].as_u64().unwrap_or(0))
    }

    fn start() -> Result<CloudWorld> {
        let dir = tempfile::Builder::new()
            .prefix("tether-cloud.")
            .tempdir()?
            .keep();
        let (ci_key, ci_pub) = rsa_key(&dir, "ci")?;
        let (other_key, _) = rsa_key(&dir, "other")?;
        let federated_token_file = dir.join("azure-federated-token");
        let config = json!({
            "aws": {
                "region": AWS_REGION,
                "cluster": EKS_CLUSTER,
                "keys": {
                    AWS_CI_KEY_ID: {"secret": AWS_CI_SECRET, "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:user/ci")},
                    AWS_STRANGER_KEY_ID: {"secret": AWS_STRANGER_SECRET, "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:user/stranger")},
                    AWS_NODESCRIBE_KEY_ID: {"secret": AWS_NODESCRIBE_SECRET, "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:user/nodescribe")},
                    AWS_EXPIRED_KEY_ID: {"secret": AWS_EXPIRED_SECRET, "token": AWS_EXPIRED_SESSION_TOKEN, "expired": true, "arn": format!("arn:aws:sts::{AWS_ACCOUNT}:assumed-role/deployer/ended")},
                },
                "roles": {
                    AWS_ROLE_ARN: {"trusted": [format!("arn:aws:iam::{AWS_ACCOUNT}:user/ci")], "external_id": AWS_EXTERNAL_ID},
                },
                "web_identity": {"token": AWS_WEB_IDENTITY_TOKEN, "role": AWS_ROLE_ARN},
                "pod_identity": {"token": AWS_POD_IDENTITY_TOKEN, "role": AWS_ROLE_ARN},
                "mapped": {
                    format!("arn:aws:iam::{AWS_ACCOUNT}:user/ci"): "ci",
                    format!("arn:aws:iam::{AWS_ACCOUNT}:user/nodescribe"): "nodescribe",
                    AWS_ROLE_ARN: "deployer",
                },
                "no_describe": [format!("arn:aws:iam::{AWS_ACCOUNT}:user/nodescribe")],
            },
            "google": {"certs": {GCP_EMAIL: ci_pub, GCP_DENIED_EMAIL: ci_pub}, "metadata_email": GCP_EMAIL},
            "azure": {
                "tenant": AZURE_TENANT,
                "clients": {AZURE_CLIENT_ID: {
                    "secret": AZURE_CLIENT_SECRET,
                    "oid": "aks-deployer",
                    "federated": {"issuer": AZURE_FEDERATED_ISSUER, "subject": AZURE_FEDERATED_SUBJECT},
                },
                AZURE_EXPIRED_CLIENT_ID: {
                    "secret": AZURE_EXPIRED_CLIENT_SECRET,
                    "secret_expired": true,
                    "oid": "aks-expired",
                }},
                "federated": {"cert": ci_pub, "key": ci_key, "token_file": federated_token_file, "issuer": AZURE_FEDERATED_ISSUER, "subject": AZURE_FEDERATED_SUBJECT},
            },
            "denied": [GCP_DENIED_EMAIL],
            "authz_allow": [{"user": WEBHOOK_AUTHORIZED_USER, "verb": "create", "resource": "configmaps"}],
        });
        let config_path = dir.join("verifier.json");
        std::fs::write(&config_path, config.to_string())?;
        let verifier = start_verifier(&config_path, &dir)?;

        let webhook = dir.join("webhook.kubeconfig");
        std::fs::write(
            &webhook,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: verifier\n  cluster:\n    server: {verifier}/webhook\nusers:\n- name: apiserver\n  user: {{}}\ncontexts:\n- name: webhook\n  context: {{cluster: verifier, user: apiserver}}\ncurrent-context: webhook\n"
            ),
        )?;
        let authz = dir.join("authz-webhook.kubeconfig");
        std::fs::write(
            &authz,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: verifier\n  cluster:\n    server: {verifier}/authorize\nusers:\n- name: apiserver\n  user: {{}}\ncontexts:\n- name: webhook\n  context: {{cluster: verifier, user: apiserver}}\ncurrent-context: webhook\n"
            ),
        )?;
        // The authorization webhook comes after kube-testenv's Node,RBAC (a
        // repeated --authorization-mode appends).
        let args = format!(
            "--authentication-token-webhook-config-file={} --authorization-mode=Webhook --authorization-webhook-config-file={}",
            webhook.display(),
            authz.display()
        );
        let sans = format!("DNS:{AKS_HOST}");
        let own = KubeEnv::start_own(&[
            ("TETHER_KUBE_APISERVER_ARGS", args.as_str()),
            ("TETHER_KUBE_EXTRA_SANS", sans.as_str()),
        ])?;
        let kube = own.env.clone();
        // The cloud identities' Kubernetes users may do anything; the
        // stranger and the denied service account have no binding (and are
        // refused before RBAC anyway).
        let out = kube
            .kubectl()
            .args([
                "create",
                "clusterrolebinding",
                "cloud-users",
                "--clusterrole=cluster-admin",
                "--user=ci",
                "--user=nodescribe",
                "--user=deployer",
                "--user=aks-deployer",
            ])
            .arg(format!("--user={GCP_EMAIL}"))
            .output()?;
        if !out.status.success() {
            bail!(
                "kubectl create clusterrolebinding: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let token_uri = format!("{verifier}/google/token");
        Ok(CloudWorld {
            gcp_key_json: Self::gcp_key(GCP_EMAIL, &ci_key, "k-ci-0001", &token_uri),
            gcp_deleted_key_json: Self::gcp_key(GCP_EMAIL, &other_key, "k-deleted-01", &token_uri),
            gcp_denied_key_json: Self::gcp_key(
                GCP_DENIED_EMAIL,
                &ci_key,
                "k-unbound-1",
                &token_uri,
            ),
            azure_federated_token_file: federated_token_file,
            metadata_host: verifier.trim_start_matches("http://").to_string(),
            kube,
            verifier,
            dir,
            _kube: own,
        })
    }
}

/// The verifier's Python: `TETHER_PYENV` or `~/.cache/tether/pyenv`, made by
/// `scripts/install-deps`.
pub fn python() -> Result<PathBuf> {
    let env = match std::env::var_os("TETHER_PYENV") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("no HOME")?).join(".cache/tether/pyenv")
        }
    };
    let py = env.join("bin/python3");
    if !py.exists() {
        bail!(
            "{} does not exist: run scripts/install-deps (it installs botocore and google-auth into that venv)",
            py.display()
        );
    }
    Ok(py)
}

fn rsa_key(dir: &Path, name: &str) -> Result<(String, String)> {
    let key = dir.join(format!("{name}.key"));
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl").args(args).output()?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    let key_s = key.to_string_lossy().to_string();
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &key_s,
    ])?;
    let pubf = dir.join(format!("{name}.pub"));
    let pub_s = pubf.to_string_lossy().to_string();
    run(&["pkey", "-in", &key_s, "-pubout", "-out", &pub_s])?;
    Ok((
        std::fs::read_to_string(&key)?,
        std::fs::read_to_string(&pubf)?,
    ))
}

fn start_verifier(config: &Path, dir: &Path) -> Result<String> {
    let script = repo_root().join("scripts/cloud-verifier.py");
    let log = std::fs::File::create(dir.join("verifier.log"))?;
    let mut child = Command::new(python()?)
        .arg(&script)
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(port) = line.trim().strip_prefix("READY ") else {
        let _ = child.kill();
        bail!(
            "the verifier did not start (see {}): {line:?}",
            dir.join("verifier.log").display()
        );
    };
    let url = format!("http://127.0.0.1:{port}");
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.flush();
    }
    *VERIFIER.lock().unwrap() = Some(child);
    Ok(url)
}
