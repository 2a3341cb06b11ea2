//! Printing a connection test report for people.
//!
//! Reads the report as JSON (`status`, `errorSummary`, `hints[]`, `stages[]`,
//! `identity`, `permissions[]`, `missing[]`) and prints what is there, so a newer
//! manager's extra fields never break an older CLI.

use std::fmt::Write as _;

use serde_json::Value;

/// The report's `status`: `SUCCESS`, `PARTIAL` or `FAILURE`.
pub fn status(report: &Value) -> &str {
    report["status"].as_str().unwrap_or("UNKNOWN")
}

/// The report as indented text lines.
pub fn render(report: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let _ = write!(out, "  result: {}", status(report));
    if let Some(ms) = report["durationMs"].as_u64() {
        let _ = write!(out, " ({ms} ms)");
    }
    out.push('\n');
    if let Some(summary) = report["errorSummary"].as_str() {
        let _ = writeln!(out, "  error: {summary}");
    }
    let stages = report["stages"].as_array().cloned().unwrap_or_default();
    if !stages.is_empty() {
        let width = stages
            .iter()
            .map(|st| s(&st["name"]).len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "  stages:");
        for st in &stages {
            let _ = write!(
                out,
                "    {:<width$}  {:<7}",
                s(&st["name"]),
                s(&st["status"])
            );
            if let Some(ms) = st["durationMs"].as_u64() {
                let _ = write!(out, " {ms:>5} ms");
            }
            if let Some(detail) = st["detail"].as_str() {
                let _ = write!(out, "  {detail}");
            }
            out.push('\n');
        }
    }
    if let Some(version) = report["serverVersion"].as_str() {
        let _ = writeln!(out, "  server version: {version}");
    }
    if let Some(user) = report["identity"]["user"].as_str() {
        let _ = writeln!(out, "  identity: {user}");
    }
    let permissions = report["permissions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !permissions.is_empty() {
        let allowed = permissions
            .iter()
            .filter(|p| p["allowed"].as_bool() == Some(true))
            .count();
        let _ = writeln!(
            out,
            "  permissions: {allowed} of {} checked allowed",
            permissions.len()
        );
    }
    let missing = report["missing"].as_array().cloned().unwrap_or_default();
    if !missing.is_empty() {
        let _ = writeln!(out, "  missing permissions:");
        for m in &missing {
            let group = s(&m["group"]);
            let resource = if group.is_empty() {
                s(&m["resource"])
            } else {
                format!("{}.{group}", s(&m["resource"]))
            };
            let _ = write!(
                out,
                "    - {} {resource} in namespace {}",
                s(&m["verb"]),
                s(&m["namespace"])
            );
            if let Some(cmd) = m["verifyCommand"].as_str() {
                let _ = write!(out, " (check: {cmd})");
            }
            out.push('\n');
        }
    }
    let hints = report["hints"].as_array().cloned().unwrap_or_default();
    if !hints.is_empty() {
        let _ = writeln!(out, "  hints:");
        for h in &hints {
            let _ = writeln!(out, "    - {}", s(h));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_is_there() {
        let report = serde_json::json!({
            "status": "PARTIAL",
            "errorSummary": "1 permission missing",
            "hints": ["grant it"],
            "stages": [
                {"name": "tls", "status": "passed", "durationMs": 3},
                {"name": "authorization", "status": "failed", "durationMs": 40, "detail": "34 of 35"}
            ],
            "identity": {"user": "system:serviceaccount:kube-system:tether-x"},
            "permissions": [{"allowed": true}, {"allowed": false}],
            "missing": [{"verb": "create", "group": "apps", "resource": "deployments",
                         "namespace": "web", "verifyCommand": "kubectl auth can-i ..."}],
            "futureField": 1
        });
        let text = render(&report);
        assert_eq!(status(&report), "PARTIAL");
        for want in [
            "result: PARTIAL",
            "error: 1 permission missing",
            "authorization  failed     40 ms  34 of 35",
            "identity: system:serviceaccount:kube-system:tether-x",
            "permissions: 1 of 2 checked allowed",
            "- create deployments.apps in namespace web (check: kubectl auth can-i ...)",
            "- grant it",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert_eq!(render(&serde_json::json!({})), "  result: UNKNOWN\n");
    }
}
