//! "May this identity do verb V on group/resource R in namespace N, and if
//! not, which RBAC rule would allow it?" — one `SelfSubjectAccessReview` per
//! question, asked of the API server as the client's own identity.
//!
//! The connection test's authorization stage, the deploy's pre-flight and
//! the builds' checks all ask through [`can_i`] / [`can_i_all`]; the rule text
//! is [`rule_yaml`], a `rules` item of a Role (or, cluster-wide, a
//! ClusterRole).

use futures::StreamExt as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

/// How many reviews [`can_i_all`] runs at once.
const CONCURRENCY: usize = 8;

/// One question: `verb` on `group`/`resource` (`pods`, or `pods/log` for a
/// subresource) in `namespace` (`None`: cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
}

impl Access {
    pub fn new(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        Access {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
        }
    }

    /// The RBAC rule that grants exactly this.
    pub fn rule(&self) -> String {
        rule_yaml(
            &self.group,
            &[self.resource.as_str()],
            &[self.verb.as_str()],
        )
    }
}

/// The API server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The authorizer's reason (or evaluation error), when it gave one.
    pub reason: Option<String>,
    /// When denied: the RBAC rule that would allow it.
    pub rule: Option<String>,
}

/// `pods/log` -> (`pods`, Some(`log`)).
pub fn split_subresource(resource: &str) -> (&str, Option<&str>) {
    match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    }
}

/// Asks one question with a `SelfSubjectAccessReview`.
pub async fn can_i(client: &Client, access: &Access) -> Result<Verdict, kube::Error> {
    let (resource, subresource) = split_subresource(&access.resource);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: access.namespace.clone(),
                verb: Some(access.verb.clone()),
                group: Some(access.group.clone()),
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
    Ok(Verdict {
        allowed: status.allowed,
        reason,
        rule: (!status.allowed).then(|| access.rule()),
    })
}

/// Asks every question, a few at a time; answers in the order asked.
pub async fn can_i_all(
    client: &Client,
    accesses: Vec<Access>,
) -> Vec<(Access, Result<Verdict, kube::Error>)> {
    // Each future owns its client handle and question: a closure borrowing
    // them makes the future non-`Send` for some callers (a higher-ranked
    // lifetime that `tokio::spawn` cannot prove), and both are cheap to clone.
    futures::stream::iter(accesses.into_iter().map(|a| {
        let client = client.clone();
        async move {
            let r = can_i(&client, &a).await;
            (a, r)
        }
    }))
    .buffered(CONCURRENCY)
    .collect()
    .await
}

fn yaml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The RBAC rule (a YAML list item of a Role's `rules`) granting `verbs` on
/// `resources` of `group`.
pub fn rule_yaml(group: &str, resources: &[&str], verbs: &[&str]) -> String {
    format!(
        "- apiGroups: {}\n  resources: {}\n  verbs: {}\n",
        yaml_list(&[group]),
        yaml_list(resources),
        yaml_list(verbs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            Access::new("get", "", "pods/log", Some("a")).rule(),
            rule_yaml("", &["pods/log"], &["get"])
        );
    }

    #[test]
    fn subresources_split() {
        assert_eq!(split_subresource("pods/log"), ("pods", Some("log")));
        assert_eq!(split_subresource("pods"), ("pods", None));
    }
}
