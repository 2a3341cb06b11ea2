//! The `authorization` stage: every (verb, group, resource) of the connector's
//! permission profile, in every target namespace, asked of the API server with a
//! `SelfSubjectAccessReview` (a few at a time), and for each missing one the RBAC
//! rule to add and the `kubectl auth can-i` command that verifies it.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tether_domain::ConnectionTestSettings;

use super::diagnosis::{self, Failure, Reason};
use super::oidc::error_chain;
use super::{Identity, IdentitySource, MissingPermission, PermissionCheck};

/// How many reviews run at once.
const CONCURRENCY: usize = 8;

/// Allowed, and the authorizer's reason.
type Verdict = (bool, Option<String>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Triple {
    namespace: String,
    verb: String,
    group: String,
    resource: String,
}

fn triples(settings: &ConnectionTestSettings) -> Vec<Triple> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let rules = settings.effective_rules();
    for ns in settings.effective_namespaces() {
        for rule in &rules {
            for (verb, group, resource) in rule.triples() {
                let t = Triple {
                    namespace: ns.clone(),
                    verb: verb.to_string(),
                    group: group.to_string(),
                    resource: resource.to_string(),
                };
                if seen.insert(t.clone()) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// `pods/log` -> (`pods`, Some(`log`)).
fn split_subresource(resource: &str) -> (&str, Option<&str>) {
    match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    }
}

async fn review(client: &Client, t: &Triple) -> Result<Verdict, kube::Error> {
    let (resource, subresource) = split_subresource(&t.resource);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(t.namespace.clone()),
                verb: Some(t.verb.clone()),
                group: Some(t.group.clone()),
                resource: Some(resource.to_string()),
                subresource: subresource.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = out.status.unwrap_or_default();
    let reason = status
        .reason
        .filter(|r| !r.is_empty())
        .or(status.evaluation_error.filter(|e| !e.is_empty()));
    Ok((status.allowed, reason))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@=,+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `kubectl auth can-i VERB RESOURCE[.group] [--subresource=S] -n NS --as=USER [--as-group=G]...`
pub(crate) fn verify_command(
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    identity: Option<&Identity>,
) -> String {
    let (res, sub) = split_subresource(resource);
    let target = if group.is_empty() {
        res.to_string()
    } else {
        format!("{res}.{group}")
    };
    let mut cmd = format!(
        "kubectl auth can-i {} {}",
        shell_quote(verb),
        shell_quote(&target)
    );
    if let Some(sub) = sub {
        cmd.push_str(&format!(" --subresource={}", shell_quote(sub)));
    }
    cmd.push_str(&format!(" -n {}", shell_quote(namespace)));
    if let Some(id) = identity {
        cmd.push_str(&format!(" --as={}", shell_quote(&id.user)));
        // Service-account groups come with --as; certificate groups (O=) do not.
        if id.source == IdentitySource::ClientCertificate {
            for g in id
                .groups
                .iter()
                .filter(|g| g.as_str() != "system:authenticated")
            {
                cmd.push_str(&format!(" --as-group={}", shell_quote(g)));
            }
        }
    }
    cmd
}

fn yaml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The RBAC rule (a YAML list item of a Role's `rules`).
pub(crate) fn rule_yaml(group: &str, resources: &[&str], verbs: &[&str]) -> String {
    format!(
        "- apiGroups: {}\n  resources: {}\n  verbs: {}\n",
        yaml_list(&[group]),
        yaml_list(resources),
        yaml_list(verbs)
    )
}

/// A Role and RoleBinding granting everything missing in one namespace.
fn role_manifest(
    namespace: &str,
    missing: &[&MissingPermission],
    identity: Option<&Identity>,
) -> String {
    // group -> resource -> verbs
    let mut by_group: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for m in missing {
        by_group
            .entry(&m.group)
            .or_default()
            .entry(&m.resource)
            .or_default()
            .insert(&m.verb);
    }
    let mut rules = String::new();
    for (group, resources) in by_group {
        // Resources needing the same verbs share a rule.
        let mut by_verbs: BTreeMap<Vec<&str>, Vec<&str>> = BTreeMap::new();
        for (resource, verbs) in resources {
            by_verbs
                .entry(verbs.into_iter().collect())
                .or_default()
                .push(resource);
        }
        for (verbs, resources) in by_verbs {
            rules.push_str(&rule_yaml(group, &resources, &verbs));
        }
    }
    let subject = match identity {
        Some(id) => match id
            .user
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, name)) => {
                format!("- kind: ServiceAccount\n  name: {name}\n  namespace: {ns}\n")
            }
            None => format!(
                "- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: \"{}\"\n",
                id.user
            ),
        },
        None => {
            "- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: <the connector's user>\n"
                .to_string()
        }
    };
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: tether-connector\n  namespace: {namespace}\nrules:\n{rules}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: tether-connector\n  namespace: {namespace}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: tether-connector\nsubjects:\n{subject}"
    )
}

pub(crate) struct AuthzOutcome {
    pub permissions: Vec<PermissionCheck>,
    pub missing: Vec<MissingPermission>,
    pub detail: String,
    /// Set when permissions are missing: the PARTIAL error and its fixes.
    pub partial: Option<Failure>,
}

/// The `authorization` stage.
pub(crate) async fn check(
    client: &Client,
    settings: &ConnectionTestSettings,
    identity: Option<&Identity>,
    endpoint: &str,
) -> Result<AuthzOutcome, Failure> {
    let wanted = triples(settings);
    if wanted.is_empty() {
        return Ok(AuthzOutcome {
            permissions: Vec::new(),
            missing: Vec::new(),
            detail: "no permissions to check (custom profile without rules)".to_string(),
            partial: None,
        });
    }
    // Each future owns its client handle and triple: a closure borrowing them
    // makes the future non-`Send` for some callers (a higher-ranked lifetime
    // that `tokio::spawn` cannot prove), and both are cheap to clone.
    let results: Vec<(usize, Result<Verdict, kube::Error>)> =
        futures::stream::iter(wanted.iter().cloned().enumerate().map(|(i, t)| {
            let client = client.clone();
            async move { (i, review(&client, &t).await) }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut ordered: Vec<Option<Verdict>> = vec![None; wanted.len()];
    for (i, r) in results {
        match r {
            Ok(v) => ordered[i] = Some(v),
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Err(Failure::new(
                    Reason::AuthorizationCheckFailed,
                    format!(
                        "the account may not ask the API server at {endpoint} what it may do (SelfSubjectAccessReview: {})",
                        status.message
                    ),
                )
                .code(403)
                .hint("Every authenticated user may create SelfSubjectAccessReviews through the system:basic-user ClusterRole: restore that ClusterRole and its binding to system:authenticated.".to_string()));
            }
            Err(kube::Error::Api(status)) => {
                return Err(diagnosis::api_error(
                    endpoint,
                    "SelfSubjectAccessReview",
                    status.code,
                    &status.message,
                ))
            }
            Err(e) => {
                return Err(diagnosis::request_failed(
                    endpoint,
                    "SelfSubjectAccessReview",
                    &error_chain(&e),
                ))
            }
        }
    }
    let permissions: Vec<PermissionCheck> = wanted
        .iter()
        .zip(ordered)
        .map(|(t, r)| {
            let (allowed, reason) = r.unwrap_or((false, None));
            PermissionCheck {
                verb: t.verb.clone(),
                group: t.group.clone(),
                resource: t.resource.clone(),
                namespace: t.namespace.clone(),
                allowed,
                reason,
            }
        })
        .collect();
    let missing: Vec<MissingPermission> = permissions
        .iter()
        .filter(|p| !p.allowed)
        .map(|p| MissingPermission {
            verb: p.verb.clone(),
            group: p.group.clone(),
            resource: p.resource.clone(),
            namespace: p.namespace.clone(),
            rule: rule_yaml(&p.group, &[p.resource.as_str()], &[p.verb.as_str()]),
            verify_command: verify_command(&p.verb, &p.group, &p.resource, &p.namespace, identity),
        })
        .collect();
    let total = permissions.len();
    let allowed = total - missing.len();
    let namespaces = settings.effective_namespaces();
    let detail = format!(
        "{allowed} of {total} permissions allowed in {}",
        diagnosis::namespaces_phrase(&namespaces)
    );
    let partial = (!missing.is_empty()).then(|| {
        let who = identity.map(|i| i.user.as_str()).unwrap_or("the connector's account");
        let mut f = diagnosis::missing_permissions(who, missing.len(), total, &namespaces);
        let missing_ns: BTreeSet<&str> = missing.iter().map(|m| m.namespace.as_str()).collect();
        for ns in missing_ns {
            let in_ns: Vec<&MissingPermission> = missing.iter().filter(|m| m.namespace == ns).collect();
            let none_allowed = permissions.iter().filter(|p| p.namespace == ns).all(|p| !p.allowed);
            let lead = if none_allowed {
                format!("{who} has none of the required permissions in namespace {ns} (no RoleBinding or ClusterRoleBinding grants it anything there).")
            } else {
                format!("{who} lacks {} permissions in namespace {ns}.", in_ns.len())
            };
            f = f.hint(format!(
                "{lead} Grant them with `kubectl apply -f -` and this Role and RoleBinding (or bind a ClusterRole to cover every namespace):\n{}",
                role_manifest(ns, &in_ns, identity)
            ));
        }
        let example = &missing[0];
        f.hint(format!(
            "Each missing permission is listed with the RBAC rule that grants it and a command that checks it, e.g. `{}`.",
            example.verify_command
        ))
    });
    Ok(AuthzOutcome {
        permissions,
        missing,
        detail,
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> Identity {
        Identity {
            user: "system:serviceaccount:ci:deployer".into(),
            groups: vec![],
            source: IdentitySource::ForbiddenResponse,
            confirmed_by_server: true,
            label: None,
        }
    }

    #[test]
    fn verify_commands_name_group_namespace_and_identity() {
        assert_eq!(
            verify_command("patch", "apps", "deployments", "prod", Some(&sa())),
            "kubectl auth can-i patch deployments.apps -n prod --as=system:serviceaccount:ci:deployer"
        );
        assert_eq!(
            verify_command("get", "", "pods/log", "default", None),
            "kubectl auth can-i get pods --subresource=log -n default"
        );
        let cert = Identity {
            user: "alice".into(),
            groups: vec!["devs".into()],
            source: IdentitySource::ClientCertificate,
            confirmed_by_server: false,
            label: None,
        };
        assert_eq!(
            verify_command("list", "", "secrets", "a", Some(&cert)),
            "kubectl auth can-i list secrets -n a --as=alice --as-group=devs"
        );
        let oidc = Identity {
            user: "https://idp#a b".into(),
            ..cert
        };
        assert!(
            verify_command("list", "", "pods", "a", Some(&oidc)).contains("--as='https://idp#a b'")
        );
    }

    #[test]
    fn rules_are_rbac_yaml() {
        assert_eq!(
            rule_yaml("", &["pods"], &["get"]),
            "- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n"
        );
        let parsed: serde_yaml::Value =
            serde_yaml::from_str(&rule_yaml("apps", &["deployments"], &["get", "patch"])).unwrap();
        assert_eq!(parsed[0]["apiGroups"][0], "apps");
        assert_eq!(parsed[0]["verbs"][1], "patch");
    }

    #[test]
    fn role_manifest_groups_resources_with_the_same_verbs() {
        let m = |verb: &str, group: &str, resource: &str| MissingPermission {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: "prod".into(),
            rule: String::new(),
            verify_command: String::new(),
        };
        let all = [
            m("get", "", "pods"),
            m("list", "", "pods"),
            m("get", "", "secrets"),
            m("list", "", "secrets"),
            m("get", "apps", "deployments"),
        ];
        let refs: Vec<&MissingPermission> = all.iter().collect();
        let yaml = role_manifest("prod", &refs, Some(&sa()));
        let docs: Vec<serde_yaml::Value> = yaml
            .split("---\n")
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        let rules = docs[0]["rules"].as_sequence().unwrap();
        assert_eq!(rules.len(), 2, "{yaml}");
        assert_eq!(
            rules[0]["resources"].as_sequence().unwrap().len(),
            2,
            "{yaml}"
        );
        assert_eq!(docs[1]["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(docs[1]["subjects"][0]["namespace"], "ci");
    }

    #[test]
    fn triples_cover_rules_times_namespaces_without_duplicates() {
        let settings = ConnectionTestSettings {
            namespaces: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert_eq!(triples(&settings).len(), 2 * 35);
    }
}
