//! The test cluster's node is real: a Deployment of a locally built image rolls
//! out, and `kubectl logs`, `exec` and `port-forward` reach its container through
//! the API server and the kubelet, with every kubectl version on this machine.
//! Image pull failures and crash loops are reported as on any cluster. Each test
//! fails without a working node (pods would stay Pending).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use tether_testenv::KubeEnv;

/// Bounds each wait so a broken node fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(180);

async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    F: Fn(Option<&K>) -> bool,
{
    let last = std::sync::Mutex::new(None::<K>);
    let cond = |k: Option<&K>| {
        *last.lock().unwrap() = k.cloned();
        cond(k)
    };
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(k))) => k,
        Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("watching {name} for {what}: {e}"),
        Err(_) => panic!(
            "{name}: no {what} within {WAIT:?}; last seen: {:#?}",
            last.lock().unwrap()
        ),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

/// The built 1.20 kubectl and the newer ones this machine may carry (1.30+ try
/// WebSocket streaming first and fall back to SPDY, which the 1.20 API serves).
fn kubectls(env: &KubeEnv) -> Vec<PathBuf> {
    let mut out = vec![env.bin_dir.join("kubectl")];
    for p in [
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
        "/usr/bin/kubectl",
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
    ] {
        if Path::new(p).exists() {
            out.push(PathBuf::from(p));
        }
    }
    out
}

fn kubectl(env: &KubeEnv, bin: &Path, ns: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["-n", ns, "--request-timeout", "60s"]);
    c
}

fn run_ok(mut c: Command) -> String {
    let out = c.output().expect("run kubectl");
    assert!(
        out.status.success(),
        "{c:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl port-forward` to the pod's port 8080, then one HTTP GET through it.
fn get_through_port_forward(env: &KubeEnv, bin: &Path, ns: &str, pod: &str) -> String {
    let mut child = kubectl(env, bin, ns)
        .args(["port-forward", &format!("pod/{pod}"), ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubectl port-forward");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("Forwarding from 127.0.0.1:")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or_else(|| panic!("{bin:?} port-forward did not say where it listens"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: web\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read the response");
    let _ = child.kill();
    let _ = child.wait();
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_rolls_out_and_logs_exec_and_port_forward_reach_it() {
    let env = KubeEnv::get();
    let node = env.node();
    let client = env.admin_client().await;
    let ns = env.namespace("node-web").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let d: Deployment = from_json(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            // Available then means a pod is really ready, not "0 of 1 may be missing".
            "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "web",
                        "image": node.busybox_image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "echo web-started; exec httpd -f -v -p 8080 -h /www"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
                    }]
                }
            }
        }
    }));
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    wait_for(&deployments, "web", "Available with 1 ready replica", |d| {
        let Some(s) = d.and_then(|d| d.status.as_ref()) else {
            return false;
        };
        s.available_replicas == Some(1)
            && s.conditions.iter().flatten().any(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
            })
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list pods");
    assert_eq!(list.items.len(), 1, "one pod for one replica");
    let pod = &list.items[0];
    let pod_name = pod.metadata.name.clone().unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node.name.as_str()));

    for bin in kubectls(env) {
        let logs = run_ok({
            let mut c = kubectl(env, &bin, &ns);
            c.args(["logs", &pod_name]);
            c
        });
        assert!(
            logs.contains("web-started"),
            "{bin:?} logs: the container's output, got {logs:?}"
        );
        let echoed = run_ok({
            let mut c = kubectl(env, &bin, &ns);
            c.args(["exec", &pod_name, "--", "echo", "hello-from-exec"]);
            c
        });
        assert_eq!(echoed.trim(), "hello-from-exec", "{bin:?} exec");
        let response = get_through_port_forward(env, &bin, &ns, &pod_name);
        assert!(
            response.starts_with("HTTP/1.") && response.contains("tether test image"),
            "{bin:?} port-forward: httpd's index page, got {response:?}"
        );
    }
}

fn waiting_reason(p: Option<&Pod>) -> Option<String> {
    p?.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_reports_err_image_pull() {
    let env = KubeEnv::get();
    env.node();
    let client = env.admin_client().await;
    let ns = env.namespace("node-pull").await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pod: Pod = from_json(serde_json::json!({
        "metadata": {"name": "missing"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "tether-test/no-such-image:1"}]
        }
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let p = wait_for(&pods, "missing", "ErrImagePull or ImagePullBackOff", |p| {
        matches!(
            waiting_reason(p).as_deref(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    })
    .await;
    assert_eq!(
        p.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "a pod without its image stays Pending"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_container_reports_crash_loop_back_off() {
    let env = KubeEnv::get();
    let node = env.node();
    let client = env.admin_client().await;
    let ns = env.namespace("node-crash").await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pod: Pod = from_json(serde_json::json!({
        "metadata": {"name": "crash"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": node.busybox_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo crashing; exit 3"]
            }]
        }
    }));
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let p = wait_for(&pods, "crash", "CrashLoopBackOff", |p| {
        waiting_reason(p).as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let status = &p.status.unwrap().container_statuses.unwrap()[0];
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("the last run's termination");
    assert_eq!(last.exit_code, 3, "the container's own exit code");
    assert!(status.restart_count >= 1);
}
