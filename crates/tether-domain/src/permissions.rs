//! The Kubernetes permissions a connector's account needs, as profiles
//! (REFERENCE.md section 1) or a custom list. The connection test checks them; the
//! onboarding manifests grant exactly them.

use serde::{Deserialize, Serialize};

/// One RBAC-style rule: these verbs on these resources of one API group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionRule {
    pub verbs: Vec<String>,
    /// `""` is the core group.
    #[serde(default)]
    pub api_group: String,
    pub resources: Vec<String>,
}

impl PermissionRule {
    fn new(verbs: &[&str], api_group: &str, resources: &[&str]) -> Self {
        PermissionRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_group: api_group.to_string(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Every (verb, group, resource) triple the rule names.
    pub fn triples(&self) -> impl Iterator<Item = (&str, &str, &str)> + '_ {
        self.resources.iter().flat_map(move |r| {
            self.verbs
                .iter()
                .map(move |v| (v.as_str(), self.api_group.as_str(), r.as_str()))
        })
    }
}

/// Named permission sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum PermissionProfile {
    /// What deploying workloads needs.
    Deployments,
    /// What running CI build pods needs.
    Builds,
    /// Rules listed in `ConnectionTestSettings::rules`.
    Custom,
}

impl PermissionProfile {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deployments" => Some(Self::Deployments),
            "builds" => Some(Self::Builds),
            "custom" => Some(Self::Custom),
            _ => None,
        }
    }

    /// The rules of a named profile (empty for `Custom`).
    pub fn rules(self) -> Vec<PermissionRule> {
        const RW: &[&str] = &[
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        match self {
            PermissionProfile::Deployments => vec![
                PermissionRule::new(RW, "", &["configmaps", "secrets", "events", "pods"]),
                PermissionRule::new(RW, "apps", &["deployments"]),
            ],
            PermissionProfile::Builds => vec![
                PermissionRule::new(
                    &["get", "list", "watch", "create", "update", "delete"],
                    "",
                    &["pods", "secrets", "services", "persistentvolumeclaims"],
                ),
                PermissionRule::new(&["list", "watch"], "", &["events"]),
                // The build's log (`tether build run` streams it).
                PermissionRule::new(&["get"], "", &["pods/log"]),
            ],
            PermissionProfile::Custom => Vec::new(),
        }
    }
}

/// How the connection test checks authorization for one connector. Optional on the
/// connector; absent means the `deployments` profile in the `default` namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionTestSettings {
    #[serde(default = "default_profile")]
    pub profile: PermissionProfile,
    /// Only with `profile: custom`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PermissionRule>,
    /// Namespaces to check in; empty means `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

fn default_profile() -> PermissionProfile {
    PermissionProfile::Deployments
}

impl Default for ConnectionTestSettings {
    fn default() -> Self {
        ConnectionTestSettings {
            profile: PermissionProfile::Deployments,
            rules: Vec::new(),
            namespaces: Vec::new(),
        }
    }
}

impl ConnectionTestSettings {
    /// The rules to check: the profile's, or the custom list.
    pub fn effective_rules(&self) -> Vec<PermissionRule> {
        match self.profile {
            PermissionProfile::Custom => self.rules.clone(),
            p => p.rules(),
        }
    }

    pub fn effective_namespaces(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec!["default".to_string()]
        } else {
            self.namespaces.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_profile_matches_the_documented_minimum() {
        let rules = PermissionProfile::Deployments.rules();
        let triples: Vec<_> = rules.iter().flat_map(|r| r.triples()).collect();
        assert!(triples.contains(&("watch", "", "pods")));
        assert!(triples.contains(&("patch", "apps", "deployments")));
        assert_eq!(triples.len(), 7 * 5);
    }

    #[test]
    fn builds_profile_lists_events_read_only() {
        let rules = PermissionProfile::Builds.rules();
        let triples: Vec<_> = rules.iter().flat_map(|r| r.triples()).collect();
        assert!(triples.contains(&("watch", "", "events")));
        assert!(!triples.contains(&("create", "", "events")));
        assert!(!triples.contains(&("patch", "", "pods")));
    }
}
