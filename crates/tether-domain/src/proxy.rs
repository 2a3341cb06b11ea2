//! Using a connector's cluster through tether: how requests are authorised in
//! the cluster (`spec.proxy.mode`), and the header the manager sends the
//! delegate at the start of each proxied stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Connector, Scope};

/// As whom a proxied request reaches the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProxyMode {
    /// As the connector's own account (its credentials, unchanged).
    #[default]
    Connector,
    /// With the connector's credentials, impersonating `tether:<token name>`
    /// with groups for the caller's scope: the cluster's RBAC decides per
    /// caller (the connector's account needs `impersonate` on users and groups).
    Impersonate,
}

/// The connector's `spec.proxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxySettings {
    #[serde(default)]
    pub mode: ProxyMode,
}

/// Who a request impersonates in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Impersonation {
    pub user: String,
    pub groups: Vec<String>,
}

impl Impersonation {
    /// `tether:<name>` with `tether:authenticated` and the group of the
    /// token's scope (`tether:account`, `tether:org:<org>` or
    /// `tether:project:<org>/<project>`).
    pub fn for_token(name: &str, scope: &Scope) -> Impersonation {
        let scope_group = match scope {
            Scope::Account => "tether:account".to_string(),
            Scope::Org(o) => format!("tether:org:{o}"),
            Scope::Project { org, project } => format!("tether:project:{org}/{project}"),
        };
        Impersonation {
            user: format!("tether:{name}"),
            groups: vec!["tether:authenticated".into(), scope_group],
        }
    }
}

/// First bytes of a proxied stream (manager to delegate): which cluster, with
/// which credentials, as whom. HTTP/1.1 follows on the same stream.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStreamHeader {
    /// Ties the delegate's log lines to the manager's audit record.
    pub request_id: String,
    pub connector: Connector,
    /// Secret values by reference, resolved for this delegate only.
    pub secrets: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonate: Option<Impersonation>,
}

impl std::fmt::Debug for ProxyStreamHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyStreamHeader")
            .field("request_id", &self.request_id)
            .field("connector", &self.connector.identifier)
            .field("secrets", &format!("<{} redacted>", self.secrets.len()))
            .field("impersonate", &self.impersonate)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_names_the_token_and_its_scope() {
        let i = Impersonation::for_token(
            "ci",
            &Scope::Project {
                org: "pay".into(),
                project: "web".into(),
            },
        );
        assert_eq!(i.user, "tether:ci");
        assert_eq!(
            i.groups,
            vec!["tether:authenticated", "tether:project:pay/web"]
        );
    }
}
