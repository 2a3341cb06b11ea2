//! Attaching to (or starting) the shared test control plane.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// What a test needs to talk to the control plane as its administrator.
#[derive(Debug, Clone)]
pub struct KubeEnv {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The cluster CA, PEM.
    pub ca_pem: String,
    /// Admin client certificate (`O=system:masters`) and key, PEM.
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// Admin kubeconfig file.
    pub kubeconfig: PathBuf,
    /// Directory holding kube-apiserver, kube-controller-manager and kubectl.
    pub bin_dir: PathBuf,
    pub dir: PathBuf,
    /// The node, unless the environment was started with `TETHER_KUBE_NODE=0`.
    pub node: Option<Node>,
}

/// The environment's one node (`scripts/kube-testenv`: containerd + kubelet in
/// their own namespaces, pods on a bridge reachable from this host).
#[derive(Debug, Clone)]
pub struct Node {
    /// The Node object's name.
    pub name: String,
    /// This host's address as pods see it: bind a server here (port 0) for pods
    /// to reach it. Nothing beyond this machine is reachable from a pod.
    pub host_ip: String,
    /// A locally built busybox image with `sh`, `httpd`, `nc`, `sleep`, ...
    /// (`imagePullPolicy: IfNotPresent`; there is no registry).
    pub busybox_image: String,
}

/// A control plane started by [`KubeEnv::start_own`]; holding it holds the
/// control plane's stdin open.
pub struct OwnedKube {
    pub env: KubeEnv,
    _child: Child,
}

/// The control plane this process started, if it started one. Holding the child
/// holds its stdin open; when this process exits for any reason (pass, fail,
/// panic, kill -9) the pipe closes and `kube-testenv` tears everything down.
static OWNED: Mutex<Option<Child>> = Mutex::new(None);
static ENV: OnceLock<KubeEnv> = OnceLock::new();

impl KubeEnv {
    /// The shared control plane, started on first use. Panics with the reason when
    /// it cannot be had: a test that needs Kubernetes must not pass without one.
    pub fn get() -> &'static KubeEnv {
        ENV.get_or_init(|| match Self::attach_or_start() {
            Ok(env) => env,
            Err(e) => panic!("cannot get a test Kubernetes control plane: {e:#}"),
        })
    }

    fn attach_or_start() -> Result<KubeEnv> {
        if let Ok(dir) = std::env::var("TETHER_TEST_KUBE_DIR") {
            let env = read_env_file(&Path::new(&dir).join("env"))?;
            return Self::from_env(&env);
        }
        let (env, child) = Self::spawn(&[])?;
        *OWNED.lock().unwrap() = Some(child);
        Ok(env)
    }

    /// A control plane of the caller's own, started with extra environment for
    /// `scripts/kube-testenv` (`TETHER_KUBE_APISERVER_ARGS`,
    /// `TETHER_KUBE_EXTRA_SANS`), for tests that need API server flags the
    /// shared one must not have. It stops when the returned [`OwnedKube`] is
    /// dropped or this process exits.
    pub fn start_own(envs: &[(&str, &str)]) -> Result<OwnedKube> {
        let (env, child) = Self::spawn(envs)?;
        Ok(OwnedKube { env, _child: child })
    }

    fn spawn(envs: &[(&str, &str)]) -> Result<(KubeEnv, Child)> {
        let script = repo_root().join("scripts/kube-testenv");
        let mut child = Command::new(&script)
            .args(["up", "--foreground"])
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut env = HashMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if line == "READY" {
                return Ok((Self::from_env(&env)?, child));
            }
            if let Some((k, v)) = line.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
        let status = child.wait()?;
        bail!(
            "{} exited ({status}) before the control plane was ready",
            script.display()
        )
    }

    fn from_env(env: &HashMap<String, String>) -> Result<KubeEnv> {
        let dir = PathBuf::from(
            env.get("TETHER_TEST_KUBE_DIR")
                .context("no TETHER_TEST_KUBE_DIR")?,
        );
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .with_context(|| format!("reading {f} in {}", dir.display()))
        };
        Ok(KubeEnv {
            url: env
                .get("TETHER_TEST_KUBE_URL")
                .context("no TETHER_TEST_KUBE_URL")?
                .clone(),
            ca_pem: read("ca.crt")?,
            admin_cert_pem: read("admin.crt")?,
            admin_key_pem: read("admin.key")?,
            kubeconfig: dir.join("kubeconfig"),
            bin_dir: PathBuf::from(
                env.get("TETHER_TEST_KUBE_BIN")
                    .context("no TETHER_TEST_KUBE_BIN")?,
            ),
            node: match env.get("TETHER_TEST_KUBE_NODE") {
                Some(name) if !name.is_empty() => Some(Node {
                    name: name.clone(),
                    host_ip: env
                        .get("TETHER_TEST_KUBE_HOST_IP")
                        .context("no TETHER_TEST_KUBE_HOST_IP")?
                        .clone(),
                    busybox_image: env
                        .get("TETHER_TEST_KUBE_BUSYBOX_IMAGE")
                        .context("no TETHER_TEST_KUBE_BUSYBOX_IMAGE")?
                        .clone(),
                }),
                _ => None,
            },
            dir,
        })
    }

    /// The node. Panics when the environment has none: a test that needs pods
    /// to run must not pass without them.
    pub fn node(&self) -> &Node {
        self.node.as_ref().unwrap_or_else(|| {
            panic!(
                "this test needs the test cluster's node, but {} was started without one \
                 (TETHER_KUBE_NODE=0); start it with the node",
                self.dir.display()
            )
        })
    }

    /// Imports a docker archive into the node's containerd, so pods can use the
    /// image with `imagePullPolicy: IfNotPresent`.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        self.node();
        let out = Command::new(repo_root().join("scripts/kube-testenv"))
            .arg("import")
            .arg(&self.dir)
            .arg(archive)
            .output()
            .context("running scripts/kube-testenv import")?;
        if !out.status.success() {
            bail!(
                "importing {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Builds the tether image around `binary` with `scripts/image` (the same
    /// script users run, under the tag `tether delegate manifest` names by
    /// default) and imports it into the node; once per process. Returns the tag.
    pub fn tether_image(&self, binary: &Path) -> &'static str {
        static IMAGE: OnceLock<String> = OnceLock::new();
        IMAGE.get_or_init(|| {
            let tag = concat!("tether:", env!("CARGO_PKG_VERSION"));
            let out = Command::new(repo_root().join("scripts/image"))
                .arg("--binary")
                .arg(binary)
                .args(["--tag", tag])
                .stderr(Stdio::inherit())
                .output()
                .expect("running scripts/image");
            assert!(out.status.success(), "scripts/image failed");
            let archive = String::from_utf8_lossy(&out.stdout);
            let archive = archive
                .lines()
                .last()
                .expect("scripts/image prints the archive");
            self.import_image(Path::new(archive.trim()))
                .expect("import the tether image");
            tag.to_string()
        })
    }

    /// The admin kubeconfig's client configuration, with short timeouts so a test
    /// fails fast instead of hanging (kube's read timeout is unset by default).
    pub async fn admin_config(&self) -> Config {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("admin kubeconfig");
        let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("admin config");
        cfg.connect_timeout = Some(std::time::Duration::from_secs(5));
        cfg.read_timeout = Some(std::time::Duration::from_secs(30));
        cfg
    }

    pub async fn admin_client(&self) -> Client {
        Client::try_from(self.admin_config().await).expect("admin client")
    }

    /// A fresh namespace for one test, named `<prefix>-<random>`, ready for
    /// Pods: its `default` service account exists and, before Kubernetes 1.24,
    /// has the token Secret the ServiceAccount admission plugin waits for
    /// (a Pod created before that is refused with `500 ServerTimeout`).
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = crate::unique(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("tether.dev/test".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.admin_client().await)
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        self.await_default_service_account(&name).await;
        name
    }

    async fn await_default_service_account(&self, ns: &str) {
        let client = self.admin_client().await;
        let version = client.apiserver_version().await.expect("server version");
        let minor: u32 = version
            .minor
            .trim_end_matches('+')
            .parse()
            .expect("numeric minor version");
        let needs_token_secret = version.major == "1" && minor < 24;
        let sas: Api<ServiceAccount> = Api::namespaced(client, ns);
        let ready = kube::runtime::wait::await_condition(
            sas,
            "default",
            move |sa: Option<&ServiceAccount>| {
                sa.is_some_and(|sa| {
                    !needs_token_secret || sa.secrets.as_ref().is_some_and(|s| !s.is_empty())
                })
            },
        );
        tokio::time::timeout(std::time::Duration::from_secs(60), ready)
            .await
            .unwrap_or_else(|_| {
                panic!("namespace {ns}: no default service account (with its token) after 60 s; is the controller manager running?")
            })
            .expect("watch the default service account");
    }

    /// A client certificate made as many runbooks make them: `openssl x509 -req`
    /// without extensions, so X.509 version 1, signed by the cluster's client CA.
    pub fn v1_client_cert(&self, cn: &str, org: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let ca_crt = self.dir.join("pki/ca.crt");
        let ca_key = self.dir.join("pki/ca.key");
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "v1.key",
            "-out",
            "v1.csr",
            "-subj",
            &format!("/O={org}/CN={cn}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "v1.csr",
            "-CA",
            ca_crt.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-CAcreateserial",
            "-CAserial",
            "v1.srl",
            "-out",
            "v1.crt",
            "-days",
            "1",
        ]);
        let text = run(&["x509", "-noout", "-text", "-in", "v1.crt"]);
        assert!(
            text.contains("Version: 1 (0x0)"),
            "openssl made a v1 certificate:\n{text}"
        );
        (
            std::fs::read_to_string(dir.path().join("v1.crt")).unwrap(),
            std::fs::read_to_string(dir.path().join("v1.key")).unwrap(),
        )
    }

    /// `kubectl` built with the control plane, pointed at it as admin.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.bin_dir.join("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }
}

fn read_env_file(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "TETHER_TEST_KUBE_DIR is set but {} cannot be read; unset it or start one with scripts/kube-testenv up",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The workspace root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/<name> sits two levels below the root")
        .to_path_buf()
}
