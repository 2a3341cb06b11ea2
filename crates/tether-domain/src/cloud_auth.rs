//! The cloud auth types of a `ManualConfig` connector: `EKS`, `GKE` and `AKS`.
//! tether makes the cloud's Kubernetes token itself from these credentials (no
//! `exec` plugin, no cloud CLI on the delegate) and refreshes it before it expires.
//!
//! Each type may leave out its secret: then the token comes from the cloud
//! identity of the delegate's pod (EKS IRSA / Pod Identity, the GKE metadata
//! server, AKS workload identity), which needs a delegate selector naming a
//! delegate that has one.

use serde::{Deserialize, Serialize};

use crate::validation::ValidationErrors;

/// The AKS server application: Entra ID issues AKS tokens for this audience.
pub const AKS_SERVER_APP_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// Where Entra ID tokens come from when `authorityHost` is not set.
pub const AKS_DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Amazon EKS: an aws-iam-authenticator token (a presigned STS
/// `GetCallerIdentity`) from access keys, from a role assumed with them, or from
/// the delegate's own AWS identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EksAuth {
    /// The cluster's region, e.g. `eu-west-1`.
    pub region: String,
    /// The EKS cluster name (`aws eks list-clusters`), signed into the token.
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_ref: Option<String>,
    /// A role to assume (STS AssumeRole) with the keys, or with the delegate's
    /// identity when no keys are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The STS endpoint; default `https://sts.<region>.amazonaws.com`
    /// (FIPS, VPC endpoints, or a test double).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_endpoint: Option<String>,
    /// The EKS API endpoint the connection test asks about the cluster; default
    /// `https://eks.<region>.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
}

/// Google GKE: an OAuth2 access token for a service account, from its JSON key
/// (JWT-bearer grant) or from the delegate's metadata server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GkeAuth {
    /// A secret holding the service account's JSON key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
}

/// Azure AKS with Entra ID: a token for the AKS server application from a
/// service principal's client credentials, or from the delegate's workload
/// identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AksAuth {
    /// The Entra ID tenant (directory) id, or its domain.
    pub tenant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<String>,
    /// Default `https://login.microsoftonline.com` (sovereign clouds differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_ref: Option<String>,
}

impl EksAuth {
    /// No keys: the delegate's AWS identity is the base credential.
    pub fn uses_delegate_identity(&self) -> bool {
        self.access_key_id_ref.is_none() && self.secret_access_key_ref.is_none()
    }

    pub(crate) fn refs(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            (
                "spec.credential.spec.auth.spec.accessKeyIdRef",
                self.access_key_id_ref.as_ref(),
            ),
            (
                "spec.credential.spec.auth.spec.secretAccessKeyRef",
                self.secret_access_key_ref.as_ref(),
            ),
            (
                "spec.credential.spec.auth.spec.sessionTokenRef",
                self.session_token_ref.as_ref(),
            ),
            (
                "spec.credential.spec.auth.spec.caCertRef",
                self.ca_cert_ref.as_ref(),
            ),
        ]
    }

    pub(crate) fn check(&self, errs: &mut ValidationErrors) {
        let f = |n: &str| format!("{AUTH}.spec.{n}");
        if !is_aws_region(&self.region) {
            errs.push(
                f("region"),
                format!("'{}' is not an AWS region; expected something like eu-west-1 (the region is in the cluster's endpoint, https://<id>.<x>.<region>.eks.amazonaws.com)", self.region),
            );
        }
        if !is_eks_cluster_name(&self.cluster_name) {
            errs.push(
                f("clusterName"),
                "clusterName must be the EKS cluster's name: 1-100 letters, digits, '-' and '_', starting with a letter or digit (`aws eks list-clusters` lists them)",
            );
        }
        match (&self.access_key_id_ref, &self.secret_access_key_ref) {
            (Some(_), None) => errs.push(
                f("secretAccessKeyRef"),
                "accessKeyIdRef needs secretAccessKeyRef: give both, or neither to use the delegate's AWS identity",
            ),
            (None, Some(_)) => errs.push(
                f("accessKeyIdRef"),
                "secretAccessKeyRef needs accessKeyIdRef: give both, or neither to use the delegate's AWS identity",
            ),
            _ => {}
        }
        if self.session_token_ref.is_some() && self.uses_delegate_identity() {
            errs.push(
                f("sessionTokenRef"),
                "sessionTokenRef belongs to temporary access keys: give accessKeyIdRef and secretAccessKeyRef with it",
            );
        }
        if let Some(arn) = &self.role_arn {
            if !is_role_arn(arn) {
                errs.push(
                    f("roleArn"),
                    format!("'{arn}' is not an IAM role ARN; expected arn:aws:iam::123456789012:role/NAME"),
                );
            }
        }
        if let Some(id) = &self.external_id {
            if self.role_arn.is_none() {
                errs.push(f("externalId"), "externalId is only sent when assuming a role: set roleArn, or remove externalId");
            } else if id.len() < 2 || id.len() > 1224 {
                errs.push(
                    f("externalId"),
                    "externalId must be 2 to 1224 characters long",
                );
            }
        }
        for (name, value) in [
            ("stsEndpoint", &self.sts_endpoint),
            ("eksEndpoint", &self.eks_endpoint),
        ] {
            if let Some(u) = value {
                if let Err(e) = check_endpoint(u) {
                    errs.push(f(name), e);
                }
            }
        }
    }
}

impl GkeAuth {
    pub fn uses_delegate_identity(&self) -> bool {
        self.service_account_key_ref.is_none()
    }

    pub(crate) fn refs(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            (
                "spec.credential.spec.auth.spec.serviceAccountKeyRef",
                self.service_account_key_ref.as_ref(),
            ),
            (
                "spec.credential.spec.auth.spec.caCertRef",
                self.ca_cert_ref.as_ref(),
            ),
        ]
    }
}

impl AksAuth {
    pub fn uses_delegate_identity(&self) -> bool {
        self.client_secret_ref.is_none()
    }

    /// The Entra ID authority the client credentials are posted to.
    pub fn authority(&self) -> &str {
        self.authority_host
            .as_deref()
            .unwrap_or(AKS_DEFAULT_AUTHORITY)
    }

    pub(crate) fn refs(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            (
                "spec.credential.spec.auth.spec.clientIdRef",
                self.client_id_ref.as_ref(),
            ),
            (
                "spec.credential.spec.auth.spec.clientSecretRef",
                self.client_secret_ref.as_ref(),
            ),
            (
                "spec.credential.spec.auth.spec.caCertRef",
                self.ca_cert_ref.as_ref(),
            ),
        ]
    }

    pub(crate) fn check(&self, errs: &mut ValidationErrors) {
        let f = |n: &str| format!("{AUTH}.spec.{n}");
        if !is_tenant(&self.tenant_id) {
            errs.push(
                f("tenantId"),
                format!("'{}' is not an Entra ID tenant: give the directory (tenant) id, a GUID (`az account show --query tenantId`), or the tenant's domain", self.tenant_id),
            );
        }
        match (&self.client_id, &self.client_id_ref) {
            (Some(_), Some(_)) => errs.push(
                f("clientIdRef"),
                "give either clientId or clientIdRef, not both",
            ),
            (None, None) if self.client_secret_ref.is_some() => errs.push(
                f("clientId"),
                "give clientId (plain text) or clientIdRef (a secret reference): the application (client) id of the service principal whose secret clientSecretRef holds",
            ),
            _ => {}
        }
        if let Some(id) = &self.client_id {
            if !is_guid(id) {
                errs.push(
                    f("clientId"),
                    format!("'{id}' is not an application (client) id; expected a GUID like 00000000-0000-0000-0000-000000000000"),
                );
            }
        }
        if let Some(u) = &self.authority_host {
            if let Err(e) = check_endpoint(u) {
                errs.push(f("authorityHost"), e);
            }
        }
    }
}

const AUTH: &str = "spec.credential.spec.auth";

fn is_aws_region(s: &str) -> bool {
    // e.g. us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4, cn-north-1
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn is_eks_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_role_arn(s: &str) -> bool {
    // arn:PARTITION:iam::ACCOUNT:role/PATH/NAME
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty())
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_tenant(s: &str) -> bool {
    is_guid(s)
        || (s.contains('.')
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

/// An https URL, or http on a loopback address (a local test double or proxy).
fn check_endpoint(raw: &str) -> Result<(), String> {
    let u = url::Url::parse(raw.trim()).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
    let loopback = matches!(
        u.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || u.host_str() == Some("localhost");
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "'{raw}' uses http://: credentials would travel in clear text; use https://"
        )),
        other => Err(format!("'{raw}' uses the scheme '{other}'; use https://")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_aws_region("eu-west-1"));
        assert!(is_aws_region("us-gov-west-1"));
        assert!(!is_aws_region("eu-west"));
        assert!(!is_aws_region("EU-WEST-1"));
        assert!(is_role_arn("arn:aws:iam::123456789012:role/deployer"));
        assert!(is_role_arn(
            "arn:aws-cn:iam::123456789012:role/path/deployer"
        ));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/alice"));
        assert!(!is_role_arn("arn:aws:iam::1234:role/x"));
        assert!(is_guid("6dae42f8-4368-4678-94ff-3960e28e3630"));
        assert!(!is_guid("6dae42f8-4368-4678-94ff-3960e28e363"));
        assert!(is_tenant("contoso.onmicrosoft.com"));
        assert!(check_endpoint("http://127.0.0.1:8443/").is_ok());
        assert!(check_endpoint("http://sts.example.com/").is_err());
        assert!(is_eks_cluster_name("prod-eu_1"));
        assert!(!is_eks_cluster_name("-prod"));
    }

    /// The README's example of each cloud auth type is a valid connector: the
    /// full EKS document, and the GKE and AKS `auth:` blocks in its place.
    #[test]
    fn the_readme_examples_are_valid_connectors() {
        use crate::connector::{Auth, ConnectorDocument, Credential};
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let section = readme
            .split("## Cloud clusters without exec plugins")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("the README has its cloud section");
        let blocks: Vec<&str> = section
            .split("```yaml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert_eq!(blocks.len(), 3, "EKS, GKE and AKS: {blocks:?}");
        let eks = blocks[0];
        let at = eks
            .find("        auth:\n")
            .expect("the EKS example's auth block");
        for (i, want) in ["EKS", "GKE", "AKS"].into_iter().enumerate() {
            let text = if i == 0 {
                eks.to_string()
            } else {
                format!("{}{}", &eks[..at], blocks[i])
            };
            let doc: ConnectorDocument = serde_yaml::from_str(&text)
                .unwrap_or_else(|e| panic!("README's {want} example: {e}\n{text}"));
            doc.connector
                .validate()
                .unwrap_or_else(|e| panic!("README's {want} example: {e:?}"));
            let Credential::ManualConfig(m) = &doc.connector.spec.credential else {
                panic!("{want}: not ManualConfig");
            };
            let secret_refs = doc.connector.secret_refs().len();
            match (&m.auth, want) {
                (Auth::Eks(a), "EKS") => {
                    assert!(a.role_arn.is_some() && a.external_id.is_some());
                    assert_eq!(secret_refs, 3, "keys and CA");
                }
                (Auth::Gke(a), "GKE") => assert!(!a.uses_delegate_identity()),
                (Auth::Aks(a), "AKS") => {
                    assert!(!a.uses_delegate_identity());
                    assert_eq!(a.authority(), AKS_DEFAULT_AUTHORITY);
                }
                (other, _) => panic!("{want}: {other:?}"),
            }
        }
    }
}
