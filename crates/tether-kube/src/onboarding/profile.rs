//! What an onboarded service account may do: one of four profiles.

use std::fmt;
use std::str::FromStr;

use tether_domain::{PermissionProfile, PermissionRule};

/// The permission profile an onboarding manifest grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnboardingProfile {
    /// The `deployments` rules of [`PermissionProfile::Deployments`], nothing more.
    Deployments,
    /// The `builds` rules of [`PermissionProfile::Builds`], nothing more.
    Builds,
    /// The built-in `admin` ClusterRole, bound in each target namespace only.
    NamespaceAdmin,
    /// The built-in `cluster-admin` ClusterRole, cluster-wide.
    ClusterAdmin,
}

impl OnboardingProfile {
    pub const ALL: [OnboardingProfile; 4] = [
        OnboardingProfile::Deployments,
        OnboardingProfile::Builds,
        OnboardingProfile::NamespaceAdmin,
        OnboardingProfile::ClusterAdmin,
    ];

    /// The name used on the command line and in object names.
    pub fn as_str(self) -> &'static str {
        match self {
            OnboardingProfile::Deployments => "deployments",
            OnboardingProfile::Builds => "builds",
            OnboardingProfile::NamespaceAdmin => "namespace-admin",
            OnboardingProfile::ClusterAdmin => "cluster-admin",
        }
    }

    /// The rules tether writes into its own ClusterRole, or `None` when the profile
    /// binds a built-in ClusterRole instead.
    pub fn rules(self) -> Option<Vec<PermissionRule>> {
        match self {
            OnboardingProfile::Deployments => Some(PermissionProfile::Deployments.rules()),
            OnboardingProfile::Builds => Some(PermissionProfile::Builds.rules()),
            OnboardingProfile::NamespaceAdmin | OnboardingProfile::ClusterAdmin => None,
        }
    }

    /// The built-in ClusterRole the profile binds, if it binds one.
    pub fn builtin_cluster_role(self) -> Option<&'static str> {
        match self {
            OnboardingProfile::NamespaceAdmin => Some("admin"),
            OnboardingProfile::ClusterAdmin => Some("cluster-admin"),
            OnboardingProfile::Deployments | OnboardingProfile::Builds => None,
        }
    }
}

impl fmt::Display for OnboardingProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile '{0}': use one of deployments, builds, namespace-admin, cluster-admin")]
pub struct UnknownProfile(pub String);

impl FromStr for OnboardingProfile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OnboardingProfile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProfile(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in OnboardingProfile::ALL {
            assert_eq!(p.as_str().parse::<OnboardingProfile>(), Ok(p));
        }
        let err = "admin".parse::<OnboardingProfile>().unwrap_err();
        assert!(err.to_string().contains("namespace-admin"), "{err}");
    }

    #[test]
    fn own_rules_only_for_the_narrow_profiles() {
        assert!(OnboardingProfile::Deployments.rules().is_some());
        assert!(OnboardingProfile::Builds.rules().is_some());
        assert_eq!(
            OnboardingProfile::NamespaceAdmin.builtin_cluster_role(),
            Some("admin")
        );
        assert_eq!(
            OnboardingProfile::ClusterAdmin.builtin_cluster_role(),
            Some("cluster-admin")
        );
    }
}
