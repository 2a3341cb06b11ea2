//! The `K8sCluster` connector, field for field as our users' existing YAML has it
//! (REFERENCE.md section 1), so a team can bring its connector files unchanged.
//!
//! Serde does the shape (unknown fields and wrong types are refused while parsing);
//! [`Connector::validate`] does the rules that serde cannot express.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identifier::{validate_identifier, validate_name};
use crate::permissions::{ConnectionTestSettings, PermissionProfile};
use crate::scope::Scope;
use crate::secret_ref::SecretRef;
use crate::validation::ValidationErrors;

/// The `connector:` envelope used by YAML files and by `Content-Type: application/yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConnectorDocument {
    pub connector: Connector,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connector {
    pub name: String,
    /// Derived from the name when absent on create; immutable afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    pub spec: K8sClusterSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConnectorType {
    K8sCluster,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sClusterSpec {
    /// Empty means "any available delegate".
    #[serde(default)]
    pub delegate_selectors: Vec<String>,
    pub credential: Credential,
    /// tether's addition: which permissions the connection test checks, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_test: Option<ConnectionTestSettings>,
    /// tether's addition: how the cluster's API is used through tether
    /// (`/k8s/...`); absent means mode `Connector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::proxy::ProxySettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "spec", deny_unknown_fields)]
// ManualConfig is much larger than the unit variant; boxing it would change the
// public shape every caller matches on, for no gain: connectors are few and
// short-lived in memory.
#[allow(clippy::large_enum_variant)]
pub enum Credential {
    ManualConfig(ManualConfig),
    /// The delegate's own identity; has no spec.
    InheritFromDelegate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManualConfig {
    pub master_url: String,
    pub auth: Auth,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "spec", deny_unknown_fields)]
pub enum Auth {
    ServiceAccount(ServiceAccountAuth),
    UsernamePassword(UsernamePasswordAuth),
    ClientKeyCert(ClientKeyCertAuth),
    OpenIdConnect(OpenIdConnectAuth),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountAuth {
    pub service_account_token_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsernamePasswordAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_ref: Option<String>,
    pub password_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientKeyCertAuth {
    pub client_cert_ref: String,
    pub client_key_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_passphrase_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_algo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenIdConnectAuth {
    pub oidc_issuer_url: String,
    pub oidc_client_id_ref: String,
    pub oidc_password_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_username_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_secret_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oidc_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
}

/// Result of the last connection test, kept beside the connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConnectivityStatus {
    pub status: ConnectivityState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_summary: Option<String>,
    #[serde(default)]
    pub errors: Vec<ConnectivityError>,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connected_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_id: Option<String>,
}

impl Default for ConnectivityStatus {
    fn default() -> Self {
        ConnectivityStatus {
            status: ConnectivityState::Unknown,
            error_summary: None,
            errors: Vec::new(),
            tested_at: None,
            last_connected_at: None,
            delegate_id: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectivityState {
    Success,
    Failure,
    Partial,
    Unknown,
    Pending,
}

impl ConnectivityState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectivityState::Success => "SUCCESS",
            ConnectivityState::Failure => "FAILURE",
            ConnectivityState::Partial => "PARTIAL",
            ConnectivityState::Unknown => "UNKNOWN",
            ConnectivityState::Pending => "PENDING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Success,
            Self::Failure,
            Self::Partial,
            Self::Unknown,
            Self::Pending,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectivityError {
    pub reason: String,
    pub message: String,
    pub code: i32,
}

/// A secret reference found in a connector, with the document path of its field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef<'a> {
    pub field: &'static str,
    pub reference: &'a str,
}

const AUTH: &str = "spec.credential.spec.auth";

impl Connector {
    /// The scope named by `orgIdentifier` / `projectIdentifier`.
    pub fn scope(&self) -> Result<Scope, String> {
        Scope::from_parts(
            self.org_identifier.as_deref(),
            self.project_identifier.as_deref(),
        )
    }

    /// `ManualConfig`/`InheritFromDelegate`, as stored and filtered on.
    pub fn credential_type(&self) -> &'static str {
        match self.spec.credential {
            Credential::ManualConfig(_) => "ManualConfig",
            Credential::InheritFromDelegate => "InheritFromDelegate",
        }
    }

    /// The auth type, `None` for `InheritFromDelegate`.
    pub fn auth_type(&self) -> Option<&'static str> {
        match &self.spec.credential {
            Credential::ManualConfig(m) => Some(match m.auth {
                Auth::ServiceAccount(_) => "ServiceAccount",
                Auth::UsernamePassword(_) => "UsernamePassword",
                Auth::ClientKeyCert(_) => "ClientKeyCert",
                Auth::OpenIdConnect(_) => "OpenIdConnect",
            }),
            Credential::InheritFromDelegate => None,
        }
    }

    /// Every secret reference of the connector with the path of its field.
    pub fn secret_refs(&self) -> Vec<FieldRef<'_>> {
        let Credential::ManualConfig(m) = &self.spec.credential else {
            return Vec::new();
        };
        let mut refs: Vec<(&'static str, Option<&String>)> = Vec::new();
        match &m.auth {
            Auth::ServiceAccount(a) => {
                refs.push((
                    "spec.credential.spec.auth.spec.serviceAccountTokenRef",
                    Some(&a.service_account_token_ref),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.caCertRef",
                    a.ca_cert_ref.as_ref(),
                ));
            }
            Auth::UsernamePassword(a) => {
                refs.push((
                    "spec.credential.spec.auth.spec.usernameRef",
                    a.username_ref.as_ref(),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.passwordRef",
                    Some(&a.password_ref),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.caCertRef",
                    a.ca_cert_ref.as_ref(),
                ));
            }
            Auth::ClientKeyCert(a) => {
                refs.push((
                    "spec.credential.spec.auth.spec.clientCertRef",
                    Some(&a.client_cert_ref),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.clientKeyRef",
                    Some(&a.client_key_ref),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.caCertRef",
                    a.ca_cert_ref.as_ref(),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.clientKeyPassphraseRef",
                    a.client_key_passphrase_ref.as_ref(),
                ));
            }
            Auth::OpenIdConnect(a) => {
                refs.push((
                    "spec.credential.spec.auth.spec.oidcClientIdRef",
                    Some(&a.oidc_client_id_ref),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.oidcPasswordRef",
                    Some(&a.oidc_password_ref),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.oidcUsernameRef",
                    a.oidc_username_ref.as_ref(),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.oidcSecretRef",
                    a.oidc_secret_ref.as_ref(),
                ));
                refs.push((
                    "spec.credential.spec.auth.spec.caCertRef",
                    a.ca_cert_ref.as_ref(),
                ));
            }
        }
        refs.into_iter()
            .filter_map(|(field, r)| {
                r.map(|r| FieldRef {
                    field,
                    reference: r,
                })
            })
            .collect()
    }

    /// Checks every rule serde cannot: names, identifiers, URLs, selectors, "exactly
    /// one of" pairs and the syntax and level of secret references. Whether the
    /// referenced secrets exist is the store's question.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if let Err(e) = validate_name(&self.name) {
            errs.push("name", e);
        }
        if let Some(id) = &self.identifier {
            if let Err(e) = validate_identifier(id) {
                errs.push("identifier", e);
            }
        }
        for (field, value) in [
            ("orgIdentifier", &self.org_identifier),
            ("projectIdentifier", &self.project_identifier),
        ] {
            if let Some(v) = value {
                if let Err(e) = validate_identifier(v) {
                    errs.push(field, e);
                }
            }
        }
        let scope = match self.scope() {
            Ok(s) => Some(s),
            Err(e) => {
                errs.push("projectIdentifier", e);
                None
            }
        };
        if let Some(d) = &self.description {
            if d.chars().count() > 1024 {
                errs.push("description", "description is longer than 1024 characters");
            }
        }
        for (i, sel) in self.spec.delegate_selectors.iter().enumerate() {
            if sel.trim().is_empty() {
                errs.push(
                    format!("spec.delegateSelectors[{i}]"),
                    "a delegate selector must not be blank",
                );
            }
        }
        if let Some(t) = &self.spec.connection_test {
            match (t.profile, t.rules.is_empty()) {
                (PermissionProfile::Custom, true) => errs.push(
                    "spec.connectionTest.rules",
                    "profile 'custom' needs at least one rule {verbs, apiGroup, resources}",
                ),
                (PermissionProfile::Custom, false) => {}
                (_, false) => errs.push(
                    "spec.connectionTest.rules",
                    "rules are only read with profile 'custom'; remove them or set profile: custom",
                ),
                _ => {}
            }
            for (i, ns) in t.namespaces.iter().enumerate() {
                if !is_dns_label(ns) {
                    errs.push(
                        format!("spec.connectionTest.namespaces[{i}]"),
                        format!("'{ns}' is not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)"),
                    );
                }
            }
        }
        match &self.spec.credential {
            Credential::InheritFromDelegate => {
                if self.spec.delegate_selectors.is_empty() {
                    errs.push(
                        "spec.delegateSelectors",
                        "InheritFromDelegate uses the identity of the delegate that runs the task, so name at least one delegate selector (a tag of the delegate in that cluster)",
                    );
                }
            }
            Credential::ManualConfig(m) => {
                if let Err(e) = check_url(&m.master_url) {
                    errs.push("spec.credential.spec.masterUrl", e);
                }
                check_auth(&m.auth, &mut errs);
            }
        }
        for r in self.secret_refs() {
            match SecretRef::parse(r.reference) {
                Err(e) => errs.push(r.field, e),
                Ok(sr) => {
                    if let Some(scope) = &scope {
                        if let Err(e) = sr.resolve_scope(scope) {
                            errs.push(r.field, e);
                        }
                    }
                }
            }
        }
        errs.into_result()
    }
}

fn check_auth(auth: &Auth, errs: &mut ValidationErrors) {
    match auth {
        Auth::UsernamePassword(a) => {
            exactly_one(
                errs,
                (&a.username, "username"),
                (&a.username_ref, "usernameRef"),
            );
        }
        Auth::OpenIdConnect(a) => {
            exactly_one(
                errs,
                (&a.oidc_username, "oidcUsername"),
                (&a.oidc_username_ref, "oidcUsernameRef"),
            );
            if let Err(e) = check_url(&a.oidc_issuer_url) {
                errs.push(format!("{AUTH}.spec.oidcIssuerUrl"), e);
            }
        }
        Auth::ServiceAccount(_) | Auth::ClientKeyCert(_) => {}
    }
}

fn exactly_one(
    errs: &mut ValidationErrors,
    (a, a_name): (&Option<String>, &str),
    (b, b_name): (&Option<String>, &str),
) {
    match (a, b) {
        (Some(_), Some(_)) => errs.push(
            format!("{AUTH}.spec.{b_name}"),
            format!("give either {a_name} or {b_name}, not both"),
        ),
        (None, None) => errs.push(
            format!("{AUTH}.spec.{a_name}"),
            format!("give {a_name} (plain text) or {b_name} (a secret reference)"),
        ),
        _ => {}
    }
}

/// RFC 1123 label, as Kubernetes requires of namespace names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An absolute http(s) URL with a host. `http://` is accepted here; the connection
/// test explains why it fails against a real API server.
fn check_url(raw: &str) -> Result<(), String> {
    let u = url::Url::parse(raw.trim()).map_err(|e| {
        format!("'{raw}' is not a URL ({e}); expected something like https://10.0.0.1:6443 — `kubectl cluster-info` prints it")
    })?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(format!(
            "'{raw}' uses the scheme '{}'; use https://",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{raw}' has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: &str = r#"
connector:
  name: prod cluster
  identifier: prod_cluster
  orgIdentifier: default
  projectIdentifier: web
  tags:
    team: payments
  type: K8sCluster
  spec:
    delegateSelectors: [eu]
    credential:
      type: ManualConfig
      spec:
        masterUrl: https://10.0.0.1:6443
        auth:
          type: ServiceAccount
          spec:
            serviceAccountTokenRef: org.sa_token
            caCertRef: account.ca
"#;

    #[test]
    fn parses_and_validates_service_account() {
        let doc: ConnectorDocument = serde_yaml::from_str(SA).unwrap();
        doc.connector.validate().unwrap();
        assert_eq!(doc.connector.auth_type(), Some("ServiceAccount"));
        assert_eq!(doc.connector.secret_refs().len(), 2);
        let again: ConnectorDocument =
            serde_yaml::from_str(&serde_yaml::to_string(&doc).unwrap()).unwrap();
        assert_eq!(again, doc);
    }

    #[test]
    fn inherit_from_delegate_needs_a_selector() {
        let yaml = r#"
connector:
  name: in cluster
  identifier: in_cluster
  type: K8sCluster
  spec:
    credential:
      type: InheritFromDelegate
"#;
        let doc: ConnectorDocument = serde_yaml::from_str(yaml).unwrap();
        let errs = doc.connector.validate().unwrap_err();
        assert_eq!(errs.first().unwrap().field, "spec.delegateSelectors");
        // `spec: null`, as some exports write it, is accepted too.
        let with_null = yaml.replace(
            "type: InheritFromDelegate",
            "type: InheritFromDelegate\n      spec: null",
        );
        serde_yaml::from_str::<ConnectorDocument>(&with_null).unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = SA.replace("caCertRef", "caCertificateRef");
        let err = serde_yaml::from_str::<ConnectorDocument>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("caCertificateRef"), "{err}");
    }

    #[test]
    fn username_and_username_ref_are_exclusive() {
        let yaml = SA.replace(
            "type: ServiceAccount\n          spec:\n            serviceAccountTokenRef: org.sa_token\n            caCertRef: account.ca",
            "type: UsernamePassword\n          spec:\n            username: admin\n            usernameRef: user\n            passwordRef: pw",
        );
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        let errs = doc.connector.validate().unwrap_err();
        assert_eq!(
            errs.first().unwrap().field,
            "spec.credential.spec.auth.spec.usernameRef"
        );
    }

    #[test]
    fn account_connector_cannot_use_org_secret() {
        let yaml = SA
            .replace("  orgIdentifier: default\n", "")
            .replace("  projectIdentifier: web\n", "");
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        let errs = doc.connector.validate().unwrap_err();
        assert_eq!(
            errs.first().unwrap().field,
            "spec.credential.spec.auth.spec.serviceAccountTokenRef"
        );
    }

    #[test]
    fn bad_master_url_names_the_field() {
        let yaml = SA.replace("https://10.0.0.1:6443", "10.0.0.1:6443");
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        let errs = doc.connector.validate().unwrap_err();
        assert_eq!(
            errs.first().unwrap().field,
            "spec.credential.spec.masterUrl"
        );
    }
}
