//! Which service account an onboarding is for: its validated name, the labels that
//! mark every object created for it, and the names of those objects.

use std::collections::BTreeMap;
use std::fmt;

use super::OnboardingProfile;

/// `app.kubernetes.io/managed-by: tether` on everything tether creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "tether";
/// The service account an object was created for.
pub const SERVICE_ACCOUNT_LABEL: &str = "tether.dev/service-account";
/// The namespace of that service account (two namespaces may hold accounts of
/// the same name; this keeps their objects apart).
pub const SERVICE_ACCOUNT_NAMESPACE_LABEL: &str = "tether.dev/service-account-namespace";
/// The profile an RBAC object implements.
pub const PROFILE_LABEL: &str = "tether.dev/profile";

/// A service account, by namespace and name, both validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccountRef {
    namespace: String,
    name: String,
}

/// A service-account or namespace name Kubernetes (or tether's labels) would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{value}': {reason}")]
pub struct InvalidName {
    pub what: &'static str,
    pub value: String,
    pub reason: String,
}

impl ServiceAccountRef {
    pub fn new(namespace: &str, name: &str) -> Result<Self, InvalidName> {
        validate_namespace(namespace, "namespace")?;
        validate_service_account(name)?;
        Ok(ServiceAccountRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The labels every object created for this account carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            (MANAGED_BY_LABEL, MANAGED_BY_VALUE),
            (SERVICE_ACCOUNT_LABEL, self.name.as_str()),
            (SERVICE_ACCOUNT_NAMESPACE_LABEL, self.namespace.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A label selector matching exactly the objects created for this account.
    pub fn selector(&self) -> String {
        format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{SERVICE_ACCOUNT_LABEL}={},{SERVICE_ACCOUNT_NAMESPACE_LABEL}={}",
            self.name, self.namespace
        )
    }

    /// The name of the token Secret: `<sa>-token`.
    pub fn token_secret_name(&self) -> String {
        format!("{}-token", self.name)
    }

    /// The name of the ClusterRole (for profiles with their own rules) and of every
    /// binding: `tether:<namespace>:<sa>:<profile>`. The namespace is part of it
    /// because cluster-scoped names are shared by all namespaces, and `:` (which no
    /// namespace or service-account name can contain) keeps `team-a`/`ci` and
    /// `team`/`a-ci` apart.
    pub fn rbac_name(&self, profile: OnboardingProfile) -> String {
        format!("tether:{}:{}:{}", self.namespace, self.name, profile)
    }
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A namespace name: an RFC 1123 label.
pub(crate) fn validate_namespace(value: &str, what: &'static str) -> Result<(), InvalidName> {
    let fail = |reason: &str| InvalidName {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.is_empty() {
        return Err(fail("it is empty"));
    }
    if value.len() > 63 {
        return Err(fail("namespace names have at most 63 characters"));
    }
    if !is_dns_label(value) {
        return Err(fail(
            "use lowercase letters, digits and '-', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// A service-account name: an RFC 1123 subdomain, and at most 63 characters so it
/// fits in a label value (tether labels every object with it).
fn validate_service_account(value: &str) -> Result<(), InvalidName> {
    let fail = |reason: &str| InvalidName {
        what: "service account name",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.is_empty() {
        return Err(fail("it is empty"));
    }
    if value.len() > 63 {
        return Err(fail(
            "tether labels every object with the account name, and label values have at most 63 characters: choose a shorter name",
        ));
    }
    if !value.split('.').all(is_dns_label) {
        return Err(fail(
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_names() {
        let sa = ServiceAccountRef::new("team-a", "ci.deployer-1").unwrap();
        assert_eq!(sa.to_string(), "team-a/ci.deployer-1");
        assert_eq!(
            sa.rbac_name(OnboardingProfile::Builds),
            "tether:team-a:ci.deployer-1:builds"
        );
        assert_eq!(sa.token_secret_name(), "ci.deployer-1-token");
        assert_eq!(
            sa.selector(),
            "app.kubernetes.io/managed-by=tether,tether.dev/service-account=ci.deployer-1,tether.dev/service-account-namespace=team-a"
        );
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for (ns, sa) in [
            ("", "a"),
            ("Team", "a"),
            ("a.b", "a"),
            ("-a", "a"),
            ("ns", ""),
            ("ns", "CI"),
            ("ns", "a..b"),
            ("ns", "a_b"),
            ("ns", "ci-"),
        ] {
            let err = ServiceAccountRef::new(ns, sa).unwrap_err();
            assert!(!err.reason.is_empty(), "{ns}/{sa}");
        }
        let long = "a".repeat(64);
        let err = ServiceAccountRef::new("ns", &long).unwrap_err();
        assert!(err.to_string().contains("63"), "{err}");
    }
}
