//! Printing a connection test report for people, and the exit code it stands
//! for. Shared by `tether connector test`, `tether connector history` and any
//! command that runs a test (`tether cluster add` can print with [`render`]).
//!
//! The report is read as JSON (`POST …/connectors/{id}/test` answers with it):
//! only the fields present are printed, so a newer manager's extra fields never
//! break an older CLI, and an older manager's missing ones leave a section out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::Value;

/// The report's `status`: `SUCCESS`, `PARTIAL` or `FAILURE` (`UNKNOWN` when absent).
pub fn status(report: &Value) -> &str {
    report["status"].as_str().unwrap_or("UNKNOWN")
}

/// 0 for SUCCESS, 2 for PARTIAL, 1 for anything else.
pub fn exit_code(report: &Value) -> ExitCode {
    ExitCode::from(exit_status(status(report)))
}

/// [`exit_code`] as a number, for a status string.
pub fn exit_status(status: &str) -> u8 {
    match status {
        "SUCCESS" => 0,
        "PARTIAL" => 2,
        _ => 1,
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// `resource` or `resource.group`, as kubectl names it.
fn resource_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// A duration in milliseconds, short.
pub fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Indents every line of `text` by `pad`.
fn indent(out: &mut String, pad: &str, text: &str) {
    for line in text.trim_end().lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
}

/// The whole report as text: the headline, the stages with their durations,
/// server version and identity, the permissions table, every missing
/// permission with its RBAC rule and `kubectl auth can-i` command, errors and
/// hints. `title` names what was tested (e.g. `connector prod_cluster`).
pub fn render(report: &Value, title: &str) -> String {
    let mut out = String::new();
    let _ = write!(out, "Connection test of {title}: {}", status(report));
    let mut about = Vec::new();
    if let Some(ms) = report["durationMs"].as_u64() {
        about.push(millis(ms));
    }
    match (
        report["delegateName"].as_str(),
        report["delegateId"].as_str(),
    ) {
        (Some(name), Some(id)) => about.push(format!("delegate {name} ({id})")),
        (None, Some(id)) => about.push(format!("delegate {id}")),
        _ => {}
    }
    if let Some(t) = report["taskId"].as_str() {
        about.push(format!("task {t}"));
    }
    if let Some(at) = report["testedAt"].as_i64() {
        about.push(format!("at {}", super::output::time(Some(at))));
    }
    if !about.is_empty() {
        let _ = write!(out, " ({})", about.join(", "));
    }
    out.push('\n');
    if let Some(summary) = report["errorSummary"].as_str() {
        indent(&mut out, "  ", summary);
    }

    stages(&mut out, report);

    let version = report["serverVersion"].as_str();
    let identity = &report["identity"];
    if version.is_some() || identity.is_object() {
        out.push('\n');
    }
    if let Some(v) = version {
        let _ = writeln!(out, "Server version: {v}");
    }
    if let Some(user) = identity["user"].as_str() {
        let source = match s(&identity["source"]) {
            "selfSubjectReview" => "as the API server says",
            "forbiddenResponse" => "as the API server named it in a 403 answer",
            "tokenClaims" => "from the token's claims, not confirmed by the API server",
            "clientCertificate" => "from the client certificate",
            "oidcIdToken" => "from the OIDC ID token",
            "basicAuthUsername" => "the basic-auth user name",
            "delegateLabel" => "the delegate's identity",
            _ => "",
        };
        let _ = write!(out, "Identity: {user}");
        if !source.is_empty() {
            let _ = write!(out, " ({source})");
        }
        out.push('\n');
        let groups: Vec<&str> = identity["groups"]
            .as_array()
            .map(|g| g.iter().map(s).collect())
            .unwrap_or_default();
        if !groups.is_empty() {
            let _ = writeln!(out, "  groups: {}", groups.join(", "));
        }
    }
    if let Some(label) = identity["label"].as_str() {
        let _ = writeln!(out, "  used: {label}");
    }

    permissions(&mut out, report);
    missing(&mut out, report);

    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    // The summary already says what one error says.
    let shown: Vec<&Value> = errors
        .iter()
        .filter(|e| errors.len() > 1 || e["message"].as_str() != report["errorSummary"].as_str())
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(out, "\nErrors:");
        for e in shown {
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                s(&e["reason"]),
                e["code"].as_i64().unwrap_or_default(),
                s(&e["message"])
            );
        }
    } else if let Some(reason) = errors.first().and_then(|e| e["reason"].as_str()) {
        let _ = writeln!(out, "  reason: {reason}");
    }

    let hints = report["hints"].as_array().cloned().unwrap_or_default();
    if !hints.is_empty() {
        let _ = writeln!(out, "\nHints:");
        for h in &hints {
            let text = s(h).trim_end();
            let mut lines = text.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(out, "  - {first}");
            }
            for line in lines {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
}

fn stages(out: &mut String, report: &Value) {
    let stages = report["stages"].as_array().cloned().unwrap_or_default();
    if stages.is_empty() {
        return;
    }
    let width = stages
        .iter()
        .map(|st| s(&st["name"]).len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "\nStages:");
    for st in &stages {
        let status = s(&st["status"]);
        let mark = match status {
            "passed" => "ok",
            "failed" => "FAILED",
            "skipped" => "skipped",
            other => other,
        };
        let _ = write!(out, "  {:<width$}  {mark:<7}", s(&st["name"]));
        if status != "skipped" {
            if let Some(ms) = st["durationMs"].as_u64() {
                let _ = write!(out, " {:>8}", millis(ms));
            }
            if let Some(detail) = st["detail"].as_str() {
                let _ = write!(out, "  {detail}");
            }
        }
        out.push('\n');
    }
}

/// One row per (namespace, resource), one column per verb: `yes`, `NO`, or `-`
/// when that verb was not checked.
fn permissions(out: &mut String, report: &Value) {
    let perms = report["permissions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if perms.is_empty() {
        return;
    }
    let mut verbs: Vec<String> = Vec::new();
    // (namespace, resource) -> verb -> allowed; in the report's order.
    let mut rows: Vec<((String, String), BTreeMap<String, bool>)> = Vec::new();
    for p in &perms {
        let verb = s(&p["verb"]).to_string();
        if !verbs.contains(&verb) {
            verbs.push(verb.clone());
        }
        let key = (
            s(&p["namespace"]).to_string(),
            resource_name(s(&p["group"]), s(&p["resource"])),
        );
        let allowed = p["allowed"].as_bool() == Some(true);
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, cells)) => {
                cells.insert(verb, allowed);
            }
            None => rows.push((key, BTreeMap::from([(verb, allowed)]))),
        }
    }
    let allowed = perms
        .iter()
        .filter(|p| p["allowed"].as_bool() == Some(true))
        .count();
    let _ = writeln!(out, "\nPermissions: {allowed} of {} allowed", perms.len());
    let mut table = vec![{
        let mut h = vec!["NAMESPACE".to_string(), "RESOURCE".to_string()];
        h.extend(verbs.iter().cloned());
        h
    }];
    for ((ns, res), cells) in &rows {
        let mut row = vec![ns.clone(), res.clone()];
        for v in &verbs {
            row.push(
                match cells.get(v) {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                }
                .to_string(),
            );
        }
        table.push(row);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
}

/// Namespace, API group, resource.
type MissingKey = (String, String, String);

/// Each missing permission, grouped by namespace and resource: the RBAC rule
/// that grants the missing verbs and one `kubectl auth can-i` per verb.
fn missing(out: &mut String, report: &Value) {
    let missing = report["missing"].as_array().cloned().unwrap_or_default();
    if missing.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nMissing permissions ({}):", missing.len());
    // (namespace, group, resource) -> entries, in the report's order.
    let mut groups: Vec<(MissingKey, Vec<&Value>)> = Vec::new();
    for m in &missing {
        let key = (
            s(&m["namespace"]).to_string(),
            s(&m["group"]).to_string(),
            s(&m["resource"]).to_string(),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(m),
            None => groups.push((key, vec![m])),
        }
    }
    for ((ns, group, resource), entries) in &groups {
        let verbs: Vec<&str> = entries.iter().map(|m| s(&m["verb"])).collect();
        let _ = writeln!(
            out,
            "  - {} {} in namespace {ns}",
            verbs.join(", "),
            resource_name(group, resource)
        );
        // The report's own rule for a single verb; the same rule with every
        // missing verb otherwise.
        let rule = match entries.as_slice() {
            [one] if one["rule"].is_string() => s(&one["rule"]).to_string(),
            _ => {
                let quoted = |items: &[&str]| {
                    items
                        .iter()
                        .map(|i| format!("\"{i}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "- apiGroups: [{}]\n  resources: [{}]\n  verbs: [{}]\n",
                    quoted(&[group]),
                    quoted(&[resource]),
                    quoted(&verbs)
                )
            }
        };
        let _ = writeln!(out, "    rule (add to a Role in {ns}):");
        indent(out, "      ", &rule);
        let commands: Vec<&str> = entries
            .iter()
            .filter_map(|m| m["verifyCommand"].as_str())
            .collect();
        if !commands.is_empty() {
            let _ = writeln!(out, "    verify:");
            for c in commands {
                let _ = writeln!(out, "      {c}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial() -> Value {
        serde_json::json!({
            "status": "PARTIAL",
            "errorSummary": "2 of 4 required permissions are missing",
            "errors": [{"reason": "PERMISSIONS_MISSING", "message": "2 of 4 required permissions are missing", "code": 403}],
            "hints": ["grant them:\n- apiGroups: [\"apps\"]"],
            "stages": [
                {"name": "tls", "status": "passed", "durationMs": 3, "detail": "chain ok"},
                {"name": "authorization", "status": "failed", "durationMs": 1500, "detail": "2 of 4"},
                {"name": "later", "status": "skipped", "durationMs": 0}
            ],
            "serverVersion": "v1.20.2",
            "identity": {"user": "system:serviceaccount:ns:sa", "source": "forbiddenResponse",
                         "groups": ["system:serviceaccounts"], "confirmedByServer": true},
            "permissions": [
                {"verb": "get", "group": "", "resource": "pods", "namespace": "web", "allowed": true},
                {"verb": "list", "group": "", "resource": "pods", "namespace": "web", "allowed": true},
                {"verb": "get", "group": "apps", "resource": "deployments", "namespace": "web", "allowed": false},
                {"verb": "create", "group": "apps", "resource": "deployments", "namespace": "web", "allowed": false}
            ],
            "missing": [
                {"verb": "get", "group": "apps", "resource": "deployments", "namespace": "web",
                 "rule": "- apiGroups: [\"apps\"]\n  resources: [\"deployments\"]\n  verbs: [\"get\"]\n",
                 "verifyCommand": "kubectl auth can-i get deployments.apps -n web --as=system:serviceaccount:ns:sa"},
                {"verb": "create", "group": "apps", "resource": "deployments", "namespace": "web",
                 "rule": "- apiGroups: [\"apps\"]\n  resources: [\"deployments\"]\n  verbs: [\"create\"]\n",
                 "verifyCommand": "kubectl auth can-i create deployments.apps -n web --as=system:serviceaccount:ns:sa"}
            ],
            "testedAt": 0,
            "durationMs": 1503,
            "delegateId": "d1",
            "futureField": {"ignored": true}
        })
    }

    #[test]
    fn renders_every_section() {
        let r = partial();
        let text = render(&r, "connector prod");
        for want in [
            "Connection test of connector prod: PARTIAL (1.5 s, delegate d1, at 1970-01-01T00:00:00Z)",
            "  2 of 4 required permissions are missing",
            "  reason: PERMISSIONS_MISSING",
            "  tls            ok          3 ms  chain ok",
            "  authorization  FAILED     1.5 s  2 of 4",
            "  later          skipped\n",
            "Server version: v1.20.2",
            "Identity: system:serviceaccount:ns:sa (as the API server named it in a 403 answer)",
            "Permissions: 2 of 4 allowed",
            "  NAMESPACE  RESOURCE          get  list  create",
            "  web        pods              yes  yes   -",
            "  web        deployments.apps  NO   -     NO",
            "Missing permissions (2):",
            "  - get, create deployments.apps in namespace web",
            "      - apiGroups: [\"apps\"]\n        resources: [\"deployments\"]\n        verbs: [\"get\", \"create\"]",
            "      kubectl auth can-i create deployments.apps -n web --as=system:serviceaccount:ns:sa",
            "Hints:\n  - grant them:\n    - apiGroups: [\"apps\"]",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert!(
            !text.contains("Errors:"),
            "one error, said by the summary:\n{text}"
        );
        assert_eq!(exit_status(status(&r)), 2);
    }

    #[test]
    fn a_single_missing_verb_uses_the_reports_rule() {
        let mut r = partial();
        r["missing"].as_array_mut().unwrap().pop();
        r["missing"][0]["rule"] = "- apiGroups: [\"apps\"]\n  resources: [\"deployments\"]\n  verbs: [\"get\"] # as reported\n".into();
        let text = render(&r, "x");
        assert!(text.contains("verbs: [\"get\"] # as reported"), "{text}");
    }

    #[test]
    fn exit_codes_follow_the_status() {
        assert_eq!(exit_status("SUCCESS"), 0);
        assert_eq!(exit_status("PARTIAL"), 2);
        assert_eq!(exit_status("FAILURE"), 1);
        assert_eq!(exit_status("UNKNOWN"), 1);
        assert_eq!(status(&serde_json::json!({})), "UNKNOWN");
        assert_eq!(
            render(&serde_json::json!({}), "x"),
            "Connection test of x: UNKNOWN\n"
        );
    }
}
