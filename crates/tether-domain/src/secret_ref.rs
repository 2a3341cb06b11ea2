//! Secret references as written in connector documents: `x` (the connector's own
//! scope), `org.x` (its org) and `account.x` (the account).
//!
//! A connector may use secrets at its own scope or above, never below: an account
//! connector cannot reach into an org, an org connector cannot use a project secret.

use crate::identifier::validate_identifier;
use crate::scope::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefLevel {
    /// No prefix: the scope of the entity that holds the reference.
    Own,
    Org,
    Account,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub level: RefLevel,
    pub identifier: String,
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        let (level, id) = match s.split_once('.') {
            None => (RefLevel::Own, s),
            Some(("org", id)) => (RefLevel::Org, id),
            Some(("account", id)) => (RefLevel::Account, id),
            Some((prefix, _)) => {
                return Err(format!(
                "secret reference '{s}' has the prefix '{prefix}'; use 'x', 'org.x' or 'account.x'"
            ))
            }
        };
        validate_identifier(id).map_err(|e| format!("secret reference '{s}': {e}"))?;
        Ok(SecretRef {
            level,
            identifier: id.to_string(),
        })
    }

    /// The scope the referenced secret lives in, for an entity at `holder`.
    /// Refuses references below the holder's scope, with the reason.
    pub fn resolve_scope(&self, holder: &Scope) -> Result<Scope, String> {
        match (&self.level, holder) {
            (RefLevel::Own, s) => Ok(s.clone()),
            (RefLevel::Account, _) => Ok(Scope::Account),
            (RefLevel::Org, Scope::Org(o)) | (RefLevel::Org, Scope::Project { org: o, .. }) => {
                Ok(Scope::Org(o.clone()))
            }
            (RefLevel::Org, Scope::Account) => Err(format!(
                "'org.{}' points to an org secret, but an account-level connector can only use account secrets ('account.{}')",
                self.identifier, self.identifier
            )),
        }
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.level {
            RefLevel::Own => write!(f, "{}", self.identifier),
            RefLevel::Org => write!(f, "org.{}", self.identifier),
            RefLevel::Account => write!(f, "account.{}", self.identifier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        let p = Scope::Project {
            org: "o".into(),
            project: "p".into(),
        };
        let own = SecretRef::parse("tok").unwrap();
        assert_eq!(own.resolve_scope(&p).unwrap(), p);
        let org = SecretRef::parse("org.tok").unwrap();
        assert_eq!(org.resolve_scope(&p).unwrap(), Scope::Org("o".into()));
        assert!(org.resolve_scope(&Scope::Account).is_err());
        let acc = SecretRef::parse("account.tok").unwrap();
        assert_eq!(acc.resolve_scope(&p).unwrap(), Scope::Account);
        assert_eq!(acc.to_string(), "account.tok");
        assert!(SecretRef::parse("project.tok").is_err());
        assert!(SecretRef::parse("org.1x").is_err());
        assert!(SecretRef::parse("").is_err());
    }
}
