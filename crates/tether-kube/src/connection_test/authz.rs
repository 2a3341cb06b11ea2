//! The `authorization` stage: every (verb, group, resource) of the connector's
//! permission profile, in every target namespace, and for each missing one the
//! RBAC rule to add and the `kubectl auth can-i` command that verifies it.
//!
//! One `SelfSubjectRulesReview` per namespace lists every rule the account has
//! there; when the API server says that list is complete (`incomplete: false`,
//! as with RBAC alone) it decides each permission locally. What it cannot
//! decide (an incomplete answer, a rule limited to `resourceNames`, a review
//! that failed) is asked one by one with a `SelfSubjectAccessReview` (a few at
//! a time): 35 reviews cost about nine times one rules review.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use k8s_openapi::api::authorization::v1::{
    ResourceRule, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tether_domain::ConnectionTestSettings;

use crate::access::{self, rule_yaml, split_subresource, Access};

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

/// The rules of one namespace, when the API server says they are complete.
async fn rules_of(client: &Client, namespace: &str) -> Option<Vec<ResourceRule>> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..Default::default()
    };
    match Api::<SelfSubjectRulesReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(out) => out
            .status
            .filter(|s| !s.incomplete)
            .map(|s| s.resource_rules),
        // Access reviews then say what is wrong, one by one.
        Err(_) => None,
    }
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// RBAC's matching of a rule's resources: `*`, the resource, `resource/sub`
/// for a subresource, or `*/sub`.
fn matches_resource(list: &[String], resource: &str) -> bool {
    let (_, sub) = split_subresource(resource);
    list.iter()
        .any(|r| r == "*" || r == resource || sub.is_some_and(|s| r.strip_prefix("*/") == Some(s)))
}

/// What a complete rule list says about one permission: allowed (by a rule
/// without `resourceNames`), denied (no rule covers it), or `None` when only a
/// rule limited to some names covers it (an access review decides).
fn decide(rules: &[ResourceRule], t: &Triple) -> Option<Verdict> {
    let mut named_only = false;
    for r in rules {
        let groups = r.api_groups.as_deref().unwrap_or_default();
        let resources = r.resources.as_deref().unwrap_or_default();
        if !(matches(&r.verbs, &t.verb)
            && matches(groups, &t.group)
            && matches_resource(resources, &t.resource))
        {
            continue;
        }
        if r.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
            named_only = true;
            continue;
        }
        return Some((
            true,
            Some(format!(
                "allowed by the rule verbs [{}] on [{}] in group(s) [{}] (SelfSubjectRulesReview)",
                r.verbs.join(", "),
                resources.join(", "),
                groups.join(", ")
            )),
        ));
    }
    (!named_only).then_some((false, None))
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
    // One rules review per namespace, at once.
    let namespaces: Vec<String> = wanted
        .iter()
        .map(|t| t.namespace.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rules: BTreeMap<String, Option<Vec<ResourceRule>>> =
        futures::stream::iter(namespaces.into_iter().map(|ns| {
            let client = client.clone();
            async move {
                let r = rules_of(&client, &ns).await;
                (ns, r)
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut ordered: Vec<Option<Verdict>> = wanted
        .iter()
        .map(|t| {
            rules
                .get(&t.namespace)
                .and_then(Option::as_ref)
                .and_then(|r| decide(r, t))
        })
        .collect();
    let undecided: Vec<usize> = (0..wanted.len())
        .filter(|i| ordered[*i].is_none())
        .collect();
    let access_reviews = undecided.len();
    let questions: Vec<Access> = undecided
        .iter()
        .map(|i| {
            let t = &wanted[*i];
            Access::new(&t.verb, &t.group, &t.resource, Some(&t.namespace))
        })
        .collect();
    let asked = access::can_i_all(client, questions).await;
    let results = undecided
        .into_iter()
        .zip(asked)
        .map(|(i, (_, r))| (i, r.map(|v| (v.allowed, v.reason))));
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
    let by_rules = total - access_reviews;
    let detail = format!(
        "{allowed} of {total} permissions allowed in {} ({by_rules} decided by the rules review of each namespace, {access_reviews} by access reviews)",
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

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> ResourceRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ResourceRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            resource_names: (!names.is_empty()).then(|| v(names)),
        }
    }

    fn t(verb: &str, group: &str, resource: &str) -> Triple {
        Triple {
            namespace: "ns".into(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn rules_decide_as_rbac_matches_and_leave_named_rules_to_access_reviews() {
        let rules = vec![
            rule(&["get", "list"], &[""], &["pods", "pods/log"], &[]),
            rule(&["*"], &["apps"], &["*"], &[]),
            rule(&["get"], &[""], &["*/status"], &[]),
            rule(&["update"], &[""], &["configmaps"], &["only-this"]),
        ];
        let allowed = |v: Option<Verdict>| v.map(|(a, _)| a);
        assert_eq!(allowed(decide(&rules, &t("get", "", "pods"))), Some(true));
        assert_eq!(
            allowed(decide(&rules, &t("list", "", "pods/log"))),
            Some(true)
        );
        assert_eq!(
            allowed(decide(&rules, &t("watch", "", "pods"))),
            Some(false)
        );
        assert_eq!(
            allowed(decide(&rules, &t("delete", "apps", "deployments/scale"))),
            Some(true)
        );
        assert_eq!(
            allowed(decide(&rules, &t("get", "", "services/status"))),
            Some(true)
        );
        assert_eq!(
            allowed(decide(&rules, &t("get", "", "secrets"))),
            Some(false)
        );
        assert_eq!(
            allowed(decide(&rules, &t("get", "batch", "jobs"))),
            Some(false)
        );
        // Only a rule limited to resourceNames covers it: undecided.
        assert_eq!(decide(&rules, &t("update", "", "configmaps")), None);
        assert!(decide(&rules, &t("get", "", "pods"))
            .unwrap()
            .1
            .unwrap()
            .contains("SelfSubjectRulesReview"));
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
