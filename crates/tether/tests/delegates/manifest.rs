//! `tether delegate manifest` prints YAML that the real Kubernetes API server
//! accepts (server-side dry run, so admission and validation run), for every
//! permission choice, and the equivalent `docker run` line on stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use tether_testenv::KubeEnv;

use crate::common::bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_passes_a_server_side_dry_run() {
    let env = KubeEnv::get();
    // The namespaced objects need their namespace to exist for the dry run (a
    // real apply creates it first, from the manifest's own Namespace).
    let ns = env.namespace("delegate-manifest").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "tdt_manifest-test-token-5a5a5a";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();

    for (permissions, rbac) in [
        ("cluster-admin", &["clusterrolebinding"][..]),
        (
            "namespace-admin",
            // The built-in admin role, and writing events, which it lacks.
            &[
                "rolebinding.rbac.authorization.k8s.io/tether-delegate-x-admin",
                "role.rbac.authorization.k8s.io/tether-delegate-x-events",
                "rolebinding.rbac.authorization.k8s.io/tether-delegate-x-events",
            ][..],
        ),
        ("cluster-viewer", &["clusterrolebinding"][..]),
        ("none", &[][..]),
    ] {
        let out = Command::new(bin())
            .args([
                "delegate",
                "manifest",
                "--name",
                "x",
                "--namespace",
                &ns,
                "--tags",
                "eu,prod",
                "--permissions",
                permissions,
                "--token-file",
                token_file.to_str().unwrap(),
                "--manager",
                "https://tether.example.com",
            ])
            .env_remove("TETHER_URL")
            .env_remove("TETHER_TOKEN")
            .output()
            .unwrap();
        let yaml = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{permissions}: {stderr}");
        assert!(
            yaml.contains(token),
            "{permissions}: the Secret holds the token"
        );
        assert!(
            stderr.contains("docker run")
                && stderr.contains("-e TETHER_DELEGATE_TOKEN ")
                && stderr.contains("TETHER_MANAGER_URL=https://tether.example.com")
                && stderr.contains("TETHER_DELEGATE_TAGS=eu,prod"),
            "{permissions}: {stderr}"
        );
        assert!(
            !stderr.contains(token),
            "{permissions}: the docker line shows the token"
        );

        let mut kubectl = env
            .kubectl()
            .args(["apply", "--dry-run=server", "-f", "-"])
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
        let applied = kubectl.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&applied.stdout).to_string();
        assert!(
            applied.status.success(),
            "{permissions}: kubectl apply --dry-run=server refused it:\n{}\n{report}\n--- manifest ---\n{yaml}",
            String::from_utf8_lossy(&applied.stderr)
        );
        let mut kinds = vec![
            "namespace/",
            "serviceaccount/tether-delegate-x",
            "secret/tether-delegate-x",
            "deployment.apps/tether-delegate-x",
        ];
        kinds.extend(rbac);
        for k in &kinds {
            assert!(
                report.contains(k) && report.contains("(server dry run)"),
                "{permissions}: no {k} in:\n{report}"
            );
        }
        assert_eq!(
            report.lines().count(),
            kinds.len(),
            "{permissions}: unexpected objects:\n{report}"
        );
    }
}
