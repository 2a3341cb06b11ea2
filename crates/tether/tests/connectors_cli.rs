//! Connectors through the real binary: `tether connector apply` then `export`
//! gives back the same document, for every auth type, on every backend.

mod common;

use common::*;

#[tokio::test]
async fn every_auth_type_survives_apply_then_export() {
    for (backend, server) in servers().await {
        seed(&server);
        for (file, id) in FIXTURES {
            let path = fixture(file);
            let out = cli_ok(
                &server,
                &["connector", "apply", "-f", path.to_str().unwrap()],
                None,
            );
            assert_eq!(out.trim(), format!("connector/{id} created"), "{backend}");
            let exported = cli_ok(
                &server,
                &[
                    "connector",
                    "export",
                    id,
                    "--org",
                    "default",
                    "--project",
                    "web",
                ],
                None,
            );
            let original: serde_yaml::Value =
                serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let back: serde_yaml::Value = serde_yaml::from_str(&exported).unwrap();
            assert_eq!(
                back, original,
                "{backend}: {file} changed on the way:\n{exported}"
            );
            // Applying the export again is an update, not a duplicate.
            let again = cli(
                &server,
                &server.admin_token,
                &["connector", "apply", "-f", "-"],
                Some(&exported),
            );
            assert!(
                again.status.success(),
                "{}",
                String::from_utf8_lossy(&again.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&again.stdout).trim(),
                format!("connector/{id} configured")
            );
        }
        let list = cli_ok(
            &server,
            &["connector", "list", "--org", "default", "--project", "web"],
            None,
        );
        assert_eq!(
            list.lines().count(),
            1 + FIXTURES.len(),
            "{backend}: {list}"
        );
        assert!(list.lines().next().unwrap().starts_with("IDENTIFIER"));
    }
}

#[tokio::test]
async fn apply_reports_the_field_of_a_bad_reference() {
    for (backend, server) in servers().await {
        seed(&server);
        let doc = std::fs::read_to_string(fixture("sa.yaml"))
            .unwrap()
            .replace(
                "serviceAccountTokenRef: sa_token",
                "serviceAccountTokenRef: missing_token",
            );
        let out = cli(
            &server,
            &server.admin_token,
            &["connector", "apply", "-f", "-"],
            Some(&doc),
        );
        assert!(!out.status.success(), "{backend}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("spec.credential.spec.auth.spec.serviceAccountTokenRef"),
            "{backend}: {err}"
        );
        assert!(
            err.contains("missing_token") && err.contains("project 'default/web'"),
            "{backend}: {err}"
        );
        assert!(err.contains("422"), "{backend}: {err}");
    }
}
