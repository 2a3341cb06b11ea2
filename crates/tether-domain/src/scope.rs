//! Scopes: every entity lives in the account, in an org, or in a project of an org.
//! A scope covers itself and the scopes below it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Account,
    Org(String),
    Project { org: String, project: String },
}

impl Scope {
    /// Builds a scope from the optional `orgIdentifier` / `projectIdentifier` pair of a
    /// document. A project without an org is refused.
    pub fn from_parts(org: Option<&str>, project: Option<&str>) -> Result<Scope, String> {
        match (org, project) {
            (None, None) => Ok(Scope::Account),
            (Some(o), None) => Ok(Scope::Org(o.to_string())),
            (Some(o), Some(p)) => Ok(Scope::Project {
                org: o.to_string(),
                project: p.to_string(),
            }),
            (None, Some(_)) => Err(
                "projectIdentifier needs orgIdentifier: a project always belongs to an org".into(),
            ),
        }
    }

    pub fn org(&self) -> Option<&str> {
        match self {
            Scope::Account => None,
            Scope::Org(o) | Scope::Project { org: o, .. } => Some(o),
        }
    }

    pub fn project(&self) -> Option<&str> {
        match self {
            Scope::Project { project, .. } => Some(project),
            _ => None,
        }
    }

    /// The scope one level up, `None` for the account.
    pub fn parent(&self) -> Option<Scope> {
        match self {
            Scope::Account => None,
            Scope::Org(_) => Some(Scope::Account),
            Scope::Project { org, .. } => Some(Scope::Org(org.clone())),
        }
    }

    /// True when `self` is `other` or above it: an org scope covers its projects.
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Account, _) => true,
            (Scope::Org(a), Scope::Org(b)) => a == b,
            (Scope::Org(a), Scope::Project { org, .. }) => a == org,
            (Scope::Project { .. }, Scope::Project { .. }) => self == other,
            _ => false,
        }
    }

    /// A stable string key for storage: `account`, `org/<o>`, `project/<o>/<p>`.
    /// Identifiers cannot contain `/`, so the key is unambiguous.
    pub fn key(&self) -> String {
        match self {
            Scope::Account => "account".into(),
            Scope::Org(o) => format!("org/{o}"),
            Scope::Project { org, project } => format!("project/{org}/{project}"),
        }
    }

    /// Inverse of [`Scope::key`].
    pub fn from_key(key: &str) -> Option<Scope> {
        let mut parts = key.split('/');
        let scope = match (parts.next()?, parts.next(), parts.next()) {
            ("account", None, None) => Scope::Account,
            ("org", Some(o), None) => Scope::Org(o.into()),
            ("project", Some(o), Some(p)) => Scope::Project {
                org: o.into(),
                project: p.into(),
            },
            _ => return None,
        };
        parts.next().is_none().then_some(scope)
    }

    /// `account`, `org`, `project`: the level, as users name it.
    pub fn level(&self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Org(_) => "org",
            Scope::Project { .. } => "project",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Account => f.write_str("account"),
            Scope::Org(o) => write!(f, "org '{o}'"),
            Scope::Project { org, project } => write!(f, "project '{org}/{project}'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(o: &str, p: &str) -> Scope {
        Scope::Project {
            org: o.into(),
            project: p.into(),
        }
    }

    #[test]
    fn covers_itself_and_below_only() {
        let org = Scope::Org("a".into());
        assert!(Scope::Account.covers(&project("a", "x")));
        assert!(org.covers(&project("a", "x")));
        assert!(!org.covers(&project("b", "x")));
        assert!(!org.covers(&Scope::Account));
        assert!(!project("a", "x").covers(&project("a", "y")));
        assert!(!project("a", "x").covers(&org));
    }

    #[test]
    fn key_round_trips() {
        for s in [Scope::Account, Scope::Org("o".into()), project("o", "p")] {
            assert_eq!(Scope::from_key(&s.key()), Some(s));
        }
        assert_eq!(Scope::from_key("project/o"), None);
        assert_eq!(Scope::from_key("org/o/p"), None);
    }

    #[test]
    fn project_needs_org() {
        assert!(Scope::from_parts(None, Some("p")).is_err());
    }
}
