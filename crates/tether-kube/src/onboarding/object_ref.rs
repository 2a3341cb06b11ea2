//! Naming one Kubernetes object in reports and errors.

use std::fmt;

/// The kinds of object onboarding creates (and `delete` looks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    // Declared in the order deletion goes: who grants first, the account last.
    ClusterRoleBinding,
    RoleBinding,
    ClusterRole,
    Role,
    Secret,
    ServiceAccount,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ClusterRoleBinding => "ClusterRoleBinding",
            ObjectKind::RoleBinding => "RoleBinding",
            ObjectKind::ClusterRole => "ClusterRole",
            ObjectKind::Role => "Role",
            ObjectKind::Secret => "Secret",
            ObjectKind::ServiceAccount => "ServiceAccount",
        }
    }

    pub fn is_namespaced(self) -> bool {
        !matches!(
            self,
            ObjectKind::ClusterRoleBinding | ObjectKind::ClusterRole
        )
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object: kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `ClusterRole tether:ns:ci:builds`, `RoleBinding team-a/tether:ns:ci:builds`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
