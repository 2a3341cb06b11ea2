//! The delegate in its cluster, as a user installs it: `tether delegate manifest`
//! piped into `kubectl apply` runs the real tether image (built by
//! `scripts/image` around the binary under test) as a pod on the test node. It
//! dials the manager, which listens on the host side of the node's network (the
//! only host address pods reach), registers with its tags and passes its
//! readiness probe; `InheritFromDelegate` connectors test with the pod's
//! service account; a deleted pod disconnects and its replacement reconnects.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{json, Value};
use tether_testenv::{KubeEnv, TetherServer};

use crate::common::{bin, cli, cli_ok};
use crate::support::{now_ms, Api as TetherApi, ACCOUNT, FAST};

const WAIT: Duration = Duration::from_secs(180);

async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    F: Fn(Option<&K>) -> bool,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(k))) => k,
        Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("watching {name} for {what}: {e}"),
        Err(_) => panic!(
            "{name}: no {what} within {WAIT:?}: {:#?}",
            api.get(name).await
        ),
    }
}

fn ready_replicas(d: Option<&Deployment>) -> i32 {
    d.and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `tether delegate manifest ...` (a delegate token created through the API)
/// applied with kubectl.
fn install(env: &KubeEnv, server: &TetherServer, name: &str, ns: &str, permissions: &str) {
    let yaml = cli_ok(
        server,
        &[
            "delegate",
            "manifest",
            "--name",
            name,
            "--namespace",
            ns,
            "--tags",
            name,
            "--permissions",
            permissions,
            "--manager",
            &server.url,
        ],
        None,
    );
    let mut kubectl = env
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    kubectl
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = kubectl.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply refused the manifest: {}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn connector(id: &str, selector: &str, ns: &str) -> String {
    format!(
        "connector:
  name: {id}
  identifier: {id}
  type: K8sCluster
  spec:
    delegateSelectors: [\"{selector}\"]
    credential:
      type: InheritFromDelegate
    connectionTest:
      profile: deployments
      namespaces: [\"{ns}\"]
"
    )
}

/// `tether connector test ID -o json`: exit code and report.
fn test_connector(server: &TetherServer, id: &str) -> (i32, Value) {
    let out = cli(
        server,
        &server.admin_token,
        &["connector", "test", id, "-o", "json"],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "connector test {id}: not JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

async fn pod_of(pods: &Api<Pod>, instance: &str, not: Option<&str>) -> String {
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={instance}"));
    let list = pods.list(&lp).await.expect("list delegate pods");
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name.clone())
        .find(|n| Some(n.as_str()) != not)
        .unwrap_or_else(|| panic!("no pod of delegate {instance}: {list:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_delegate_runs_in_the_cluster_and_tests_with_its_service_account() {
    let env = KubeEnv::get();
    let node = env.node();
    let image = env.tether_image(bin());
    assert_eq!(
        image,
        concat!("tether:", env!("CARGO_PKG_VERSION")),
        "the manifest's default image"
    );
    // Pods reach this host only at the node network's host address.
    let listen = format!("{}:0", node.host_ip);
    let mut args = vec!["--listen", listen.as_str()];
    args.extend(FAST);
    let server = TetherServer::start(bin(), &args).expect("start the manager");
    let api = TetherApi::new(&server);
    let client = env.admin_client().await;
    let ns = tether_testenv::unique("dlg-admin");
    let ns_view = tether_testenv::unique("dlg-view");

    let since = now_ms();
    install(env, &server, "incluster", &ns, "namespace-admin");
    // Too narrow for the deployments profile: `view` reads but never writes.
    install(env, &server, "viewer", &ns_view, "cluster-viewer");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &deployments,
        "tether-delegate-incluster",
        "a ready replica (readiness probe passed)",
        |d| ready_replicas(d) == 1,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let first_pod = pod_of(&pods, "incluster", None).await;
    let d = api.connected(ACCOUNT, "incluster", since).await;
    assert_eq!(d["tags"], json!(["incluster"]), "{d}");
    assert_eq!(d["inCluster"], true, "{d}");
    assert_eq!(
        d["hostname"],
        first_pod.as_str(),
        "registered from its pod: {d}"
    );

    // SUCCESS with the pod's own service account.
    cli_ok(
        &server,
        &["connector", "apply", "-f", "-"],
        Some(&connector("incluster", "incluster", &ns)),
    );
    let (code, r) = test_connector(&server, "incluster");
    assert_eq!((code, r["status"].as_str()), (0, Some("SUCCESS")), "{r:#}");
    assert_eq!(
        r["identity"]["user"],
        format!("system:serviceaccount:{ns}:tether-delegate-incluster"),
        "{r:#}"
    );
    assert_eq!(r["identity"]["confirmedByServer"], true, "{r:#}");
    assert!(
        r["identity"]["label"]
            .as_str()
            .is_some_and(|l| l.contains("in-cluster service account")),
        "{r:#}"
    );

    // PARTIAL, naming the rules `view` lacks.
    let view_deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_view);
    wait_for(
        &view_deployments,
        "tether-delegate-viewer",
        "a ready replica",
        |d| ready_replicas(d) == 1,
    )
    .await;
    api.connected(ACCOUNT, "viewer", since).await;
    cli_ok(
        &server,
        &["connector", "apply", "-f", "-"],
        Some(&connector("viewer", "viewer", &ns_view)),
    );
    let (code, r) = test_connector(&server, "viewer");
    assert_eq!((code, r["status"].as_str()), (2, Some("PARTIAL")), "{r:#}");
    assert_eq!(
        r["identity"]["user"],
        format!("system:serviceaccount:{ns_view}:tether-delegate-viewer"),
        "{r:#}"
    );
    let missing = r["missing"].as_array().cloned().unwrap_or_default();
    let has = |verb: &str, resource: &str| {
        missing.iter().any(|m| {
            m["verb"] == verb && m["resource"] == resource && m["namespace"] == ns_view.as_str()
        })
    };
    assert!(
        has("create", "deployments") && has("delete", "pods"),
        "{r:#}"
    );
    assert!(
        !has("get", "deployments"),
        "view may read deployments: {r:#}"
    );

    // Delete the pod while its namespace admits no new pods (a ResourceQuota of
    // zero): the delegate shows disconnected. Without the quota the Deployment's
    // replacement pod is created, starts and reconnects.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "hold"},
        "spec": {"hard": {"pods": "0"}}
    }))
    .unwrap();
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("create quota");
    let deleted = env
        .kubectl()
        .args(["-n", &ns, "delete", "pod", &first_pod, "--wait=true"])
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{deleted:?}");
    let gone = api.disconnected(ACCOUNT, "incluster").await;
    assert_eq!(gone["connected"], false, "{gone}");
    let reconnect_since = now_ms();
    quotas
        .delete("hold", &DeleteParams::default())
        .await
        .expect("delete quota");
    let again = api.connected(ACCOUNT, "incluster", reconnect_since).await;
    let second_pod = pod_of(&pods, "incluster", Some(&first_pod)).await;
    assert_eq!(again["hostname"], second_pod.as_str(), "{again}");
    let (code, r) = test_connector(&server, "incluster");
    assert_eq!((code, r["status"].as_str()), (0, Some("SUCCESS")), "{r:#}");

    for n in [&ns, &ns_view] {
        let _ = env
            .kubectl()
            .args(["delete", "namespace", n, "--wait=false"])
            .output();
    }
}
