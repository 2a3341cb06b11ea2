//! The `K8sCluster` connector, field for field as our users' existing YAML has it
//! (REFERENCE.md section 1), so a team can bring its connector files unchanged.
//!
//! Serde does the shape (unknown fields and wrong types are refused while parsing);
//! [`Connector::validate`] does the rules that serde cannot express.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::cloud_auth::{AksAuth, EksAuth, GkeAuth};
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
    /// Amazon EKS: tether signs the aws-iam-authenticator token itself.
    #[serde(rename = "EKS")]
    Eks(EksAuth),
    /// Google GKE: an OAuth2 access token of a service account.
    #[serde(rename = "GKE")]
    Gke(GkeAuth),
    /// Azure AKS with Entra ID: a token for the AKS server application.
    #[serde(rename = "AKS")]
    Aks(AksAuth),
}

impl Auth {
    /// True for the cloud types that, without a secret, use the cloud identity
    /// of the delegate's pod.
    pub fn uses_delegate_cloud_identity(&self) -> bool {
        match self {
            Auth::Eks(a) => a.uses_delegate_identity(),
            Auth::Gke(a) => a.uses_delegate_identity(),
            Auth::Aks(a) => a.uses_delegate_identity(),
            _ => false,
        }
    }
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
    /// A list, or one string as in Harness's documents (`"openid email"`);
    /// kept in the form given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_scopes: Option<crate::oidc_scopes::OidcScopes>,
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
                Auth::Eks(_) => "EKS",
                Auth::Gke(_) => "GKE",
                Auth::Aks(_) => "AKS",
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
            Auth::Eks(a) => refs.extend(a.refs()),
            Auth::Gke(a) => refs.extend(a.refs()),
            Auth::Aks(a) => refs.extend(a.refs()),
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
                if let Err(e) = check_url(&m.master_url, "masterUrl") {
                    errs.push("spec.credential.spec.masterUrl", e);
                }
                check_auth(&m.auth, &mut errs);
                if m.auth.uses_delegate_cloud_identity() && self.spec.delegate_selectors.is_empty()
                {
                    errs.push(
                        "spec.delegateSelectors",
                        "without a secret this auth type uses the cloud identity of the delegate's pod (EKS IRSA or Pod Identity, the GKE metadata server, AKS workload identity), so name at least one delegate selector (a tag of a delegate that has that identity), or give the secret",
                    );
                }
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
            if let Err(e) = check_url(&a.oidc_issuer_url, "oidcIssuerUrl") {
                errs.push(format!("{AUTH}.spec.oidcIssuerUrl"), e);
            }
        }
        Auth::Eks(a) => a.check(errs),
        Auth::Aks(a) => a.check(errs),
        Auth::ServiceAccount(_) | Auth::ClientKeyCert(_) | Auth::Gke(_) => {}
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

/// The URL of a server the delegate sends credentials to (`masterUrl`,
/// `oidcIssuerUrl`): absolute `https://` with a host, and nothing that belongs
/// elsewhere. Credentials in the URL would be stored and shown in clear text
/// (they go in secrets); a query or fragment is not part of a server's address
/// (and `?token=...` is one more way to leak a secret); plain `http://` would
/// send the credentials unencrypted. Messages never quote a password.
fn check_url(raw: &str, field: &str) -> Result<(), String> {
    let shown = without_userinfo(raw);
    let u = url::Url::parse(raw.trim()).map_err(|e| {
        format!("'{shown}' is not a URL ({e}); expected something like https://10.0.0.1:6443 — `kubectl cluster-info` prints it")
    })?;
    if !u.username().is_empty() || u.password().is_some() {
        let fix = if field == "masterUrl" {
            "use auth type UsernamePassword with username (or usernameRef) and passwordRef, a secret, instead"
        } else {
            "put the user's password in oidcPasswordRef and the client secret in oidcSecretRef, secrets, instead"
        };
        return Err(format!(
            "{field} '{shown}' carries credentials (user:password@); they would be stored and shown in clear text: remove them from the URL and {fix}"
        ));
    }
    if !matches!(u.scheme(), "https" | "http") {
        return Err(format!(
            "'{shown}' uses the scheme '{}'; use https://",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{shown}' has no host"));
    }
    if u.scheme() == "http" {
        let rest = shown.trim().split_once("://").map_or("", |(_, r)| r);
        let https = format!("https://{rest}");
        return Err(format!(
            "{field} '{shown}' uses http://, which would send the credentials unencrypted (and Kubernetes API servers and OIDC issuers serve HTTPS): use {https}"
        ));
    }
    if u.query().is_some() {
        return Err(format!(
            "{field} '{shown}' has a query ('?{}'); a server's address has none: remove it (credentials go in secrets, TLS settings in caCertRef)",
            u.query().unwrap_or_default()
        ));
    }
    if u.fragment().is_some() {
        return Err(format!(
            "{field} '{shown}' has a fragment ('#...'); a server's address has none: remove it"
        ));
    }
    Ok(())
}

/// `raw` with anything between `scheme://` and the last `@` of the authority
/// replaced by `***`, for messages.
fn without_userinfo(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
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

    fn master_url_error(url: &str) -> Option<String> {
        let yaml = SA.replace("https://10.0.0.1:6443", url);
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        let errs = doc.connector.validate().err()?;
        let e = errs.first().unwrap();
        assert_eq!(e.field, "spec.credential.spec.masterUrl", "{url}");
        Some(e.message.clone())
    }

    #[test]
    fn master_urls_with_credentials_query_or_plain_http_are_refused_with_the_reason() {
        let m = master_url_error("https://admin:s3cr3t-pw@10.0.0.1:6443").expect("userinfo");
        assert!(m.contains("UsernamePassword"), "{m}");
        assert!(m.contains("passwordRef"), "{m}");
        assert!(!m.contains("s3cr3t-pw"), "the password is quoted: {m}");
        let m = master_url_error("https://admin@10.0.0.1:6443").expect("username only");
        assert!(m.contains("UsernamePassword"), "{m}");
        let m = master_url_error("https://10.0.0.1:6443?token=abc").expect("query");
        assert!(m.contains("query"), "{m}");
        let m = master_url_error("https://10.0.0.1:6443/#frag").expect("fragment");
        assert!(m.contains("fragment"), "{m}");
        let m = master_url_error("http://10.0.0.1:8080").expect("plain http");
        assert!(m.contains("https://10.0.0.1:8080"), "{m}");
        assert!(m.contains("unencrypted"), "{m}");
        // A URL whose parse fails never quotes its password either.
        let m = master_url_error("https://u:pw-9f8e@").expect("no host");
        assert!(!m.contains("pw-9f8e"), "{m}");
        // A path prefix (an API server behind a proxy) stays allowed.
        assert_eq!(
            master_url_error("https://rancher.example.com/k8s/clusters/c-1"),
            None
        );
        assert_eq!(master_url_error("https://[::1]:6443"), None);
    }

    #[test]
    fn oidc_issuer_urls_follow_the_same_rules() {
        let yaml = r#"
connector:
  name: oidc
  identifier: oidc
  type: K8sCluster
  spec:
    credential:
      type: ManualConfig
      spec:
        masterUrl: https://10.0.0.1:6443
        auth:
          type: OpenIdConnect
          spec:
            oidcIssuerUrl: ISSUER
            oidcClientIdRef: cid
            oidcPasswordRef: pw
            oidcUsername: alice
"#;
        for (issuer, needle) in [
            ("https://u:p@login.example.com", "oidcPasswordRef"),
            ("https://login.example.com?x=1", "query"),
            ("http://login.example.com", "unencrypted"),
        ] {
            let doc: ConnectorDocument =
                serde_yaml::from_str(&yaml.replace("ISSUER", issuer)).unwrap();
            let errs = doc.connector.validate().unwrap_err();
            let e = errs.first().unwrap();
            assert_eq!(e.field, "spec.credential.spec.auth.spec.oidcIssuerUrl");
            assert!(e.message.contains(needle), "{issuer}: {}", e.message);
        }
    }

    fn cloud(auth: &str) -> String {
        SA.replace(
            "type: ServiceAccount\n          spec:\n            serviceAccountTokenRef: org.sa_token\n            caCertRef: account.ca",
            auth,
        )
    }

    #[test]
    fn eks_with_keys_and_role_parses_with_its_refs() {
        let yaml = cloud("type: EKS\n          spec:\n            region: eu-west-1\n            clusterName: prod\n            accessKeyIdRef: aws_key_id\n            secretAccessKeyRef: org.aws_secret\n            sessionTokenRef: aws_session\n            roleArn: arn:aws:iam::123456789012:role/deployer\n            externalId: tether-ext");
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        doc.connector.validate().unwrap();
        assert_eq!(doc.connector.auth_type(), Some("EKS"));
        let refs: Vec<_> = doc
            .connector
            .secret_refs()
            .into_iter()
            .map(|r| (r.field, r.reference))
            .collect();
        assert_eq!(
            refs,
            vec![
                (
                    "spec.credential.spec.auth.spec.accessKeyIdRef",
                    "aws_key_id"
                ),
                (
                    "spec.credential.spec.auth.spec.secretAccessKeyRef",
                    "org.aws_secret"
                ),
                (
                    "spec.credential.spec.auth.spec.sessionTokenRef",
                    "aws_session"
                ),
            ]
        );
        let again: ConnectorDocument =
            serde_yaml::from_str(&serde_yaml::to_string(&doc).unwrap()).unwrap();
        assert_eq!(again, doc);
    }

    #[test]
    fn eks_rules_name_their_fields() {
        let yaml = cloud("type: EKS\n          spec:\n            region: Ireland\n            clusterName: -x\n            accessKeyIdRef: k\n            roleArn: arn:aws:iam::123456789012:user/alice\n            stsEndpoint: http://sts.example.com");
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        let fields: Vec<String> = doc
            .connector
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        for f in [
            "region",
            "clusterName",
            "secretAccessKeyRef",
            "roleArn",
            "stsEndpoint",
        ] {
            assert!(
                fields.contains(&format!("spec.credential.spec.auth.spec.{f}")),
                "{f}: {fields:?}"
            );
        }
        // externalId without a role, a session token without keys.
        let yaml = cloud("type: EKS\n          spec:\n            region: eu-west-1\n            clusterName: prod\n            sessionTokenRef: s\n            externalId: abc");
        let doc: ConnectorDocument = serde_yaml::from_str(&yaml).unwrap();
        let fields: Vec<String> = doc
            .connector
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(
            fields.contains(&"spec.credential.spec.auth.spec.externalId".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.credential.spec.auth.spec.sessionTokenRef".to_string()),
            "{fields:?}"
        );
    }

    #[test]
    fn cloud_types_without_a_secret_need_a_delegate_selector() {
        for auth in [
            "type: EKS\n          spec:\n            region: eu-west-1\n            clusterName: prod\n            roleArn: arn:aws:iam::123456789012:role/deployer",
            "type: GKE\n          spec: {}",
            "type: AKS\n          spec:\n            tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47",
        ] {
            let with = cloud(auth);
            let doc: ConnectorDocument = serde_yaml::from_str(&with).unwrap();
            doc.connector.validate().unwrap();
            assert!(doc.connector.secret_refs().is_empty());
            let without = with.replace("delegateSelectors: [eu]", "delegateSelectors: []");
            let doc: ConnectorDocument = serde_yaml::from_str(&without).unwrap();
            let errs = doc.connector.validate().unwrap_err();
            assert_eq!(errs.first().unwrap().field, "spec.delegateSelectors", "{auth}");
        }
    }

    #[test]
    fn gke_and_aks_parse_with_their_refs() {
        let doc: ConnectorDocument = serde_yaml::from_str(&cloud(
            "type: GKE\n          spec:\n            serviceAccountKeyRef: gcp_key\n            caCertRef: ca",
        ))
        .unwrap();
        doc.connector.validate().unwrap();
        assert_eq!(doc.connector.auth_type(), Some("GKE"));
        assert_eq!(
            doc.connector.secret_refs()[0].field,
            "spec.credential.spec.auth.spec.serviceAccountKeyRef"
        );

        let aks = "type: AKS\n          spec:\n            tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47\n            clientIdRef: aks_client\n            clientSecretRef: aks_secret";
        let doc: ConnectorDocument = serde_yaml::from_str(&cloud(aks)).unwrap();
        doc.connector.validate().unwrap();
        assert_eq!(doc.connector.auth_type(), Some("AKS"));
        assert_eq!(doc.connector.secret_refs().len(), 2);
        // A secret needs to know whose secret it is; both ids is one too many.
        let doc: ConnectorDocument = serde_yaml::from_str(&cloud(
            &aks.replace("            clientIdRef: aks_client\n", ""),
        ))
        .unwrap();
        assert_eq!(
            doc.connector.validate().unwrap_err().first().unwrap().field,
            "spec.credential.spec.auth.spec.clientId"
        );
        let doc: ConnectorDocument = serde_yaml::from_str(&cloud(&aks.replace(
            "clientIdRef: aks_client",
            "clientIdRef: aks_client\n            clientId: 6dae42f8-4368-4678-94ff-3960e28e3630",
        )))
        .unwrap();
        assert_eq!(
            doc.connector.validate().unwrap_err().first().unwrap().field,
            "spec.credential.spec.auth.spec.clientIdRef"
        );
        let doc: ConnectorDocument = serde_yaml::from_str(&cloud(
            &aks.replace("72f988bf-86f1-41af-91ab-2d7cd011db47", "my tenant"),
        ))
        .unwrap();
        assert_eq!(
            doc.connector.validate().unwrap_err().first().unwrap().field,
            "spec.credential.spec.auth.spec.tenantId"
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
